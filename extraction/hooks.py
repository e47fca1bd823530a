"""Hooks on every decoder block that reduce its output into per-layer statistics."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

import archmods
from extraction.metrics import LayerStats


def block_output(output) -> torch.Tensor:
    """A block returns a tensor or a tuple whose first tensor is the hidden state."""
    if isinstance(output, torch.Tensor):
        return output
    for item in output:
        if isinstance(item, torch.Tensor):
            return item
    raise TypeError(f"block returned no tensor: {type(output).__name__}")


@contextmanager
def measure_blocks(
    blocks: nn.ModuleList, stats: list[LayerStats], linearity: bool = True, attention: bool = False
) -> Iterator[None]:
    """While active, each forward pass adds its batch to `stats` (one per block).

    h_0 (the input of block 1, i.e. the embeddings) is taken with a pre-hook. Only
    the previous layer's activation is held, for the linearity pair.
    """
    previous: dict[str, torch.Tensor | None] = {"h": None}

    def before_first(module, args, kwargs):
        previous["h"] = args[0] if args else kwargs["hidden_states"]

    def after(index: int):
        def hook(module, args, output):
            h = block_output(output)  # (B, S, d)
            stats[index].add_magnitudes(h)
            if linearity or stats[index].geometry:
                stats[index].add_pair(previous["h"], h)
            previous["h"] = h

        return hook

    def weights_of(index: int):
        def hook(module, args, output):
            # a transformers attention module returns (attn_output, attn_weights); the weights are None unless
            # the attention is eager
            stats[index].add_attention(output[1] if isinstance(output, tuple) and len(output) > 1 else None)

        return hook

    handles = [blocks[0].register_forward_pre_hook(before_first, with_kwargs=True)]
    try:
        handles += [block.register_forward_hook(after(i)) for i, block in enumerate(blocks)]
        if attention:
            handles += [
                archmods.attention_of(block).register_forward_hook(weights_of(i)) for i, block in enumerate(blocks)
            ]
        yield
    finally:
        for handle in handles:
            handle.remove()
        previous["h"] = None
