"""Load one checkpoint and measure every layer on the probe windows."""

from __future__ import annotations

import gc
import hashlib
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass

import pandas as pd
import torch
from transformers import AutoTokenizer

import archmods
from extraction import gguf
from extraction.hooks import measure_blocks
from extraction.metrics import LayerStats
from extraction.units import Unit

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass(frozen=True)
class Settings:
    n_seq: int = 10
    seq_len: int = 2048  # capped at the model's context
    batch_size: int = 2
    seed: int = 0
    bos: bool | None = None  # None: BOS first where the tokenizer has one
    device: str = "auto"
    dtype: str = "auto"  # float32 on every device: massive activations are precision-sensitive, and one
    # checkpoint must measure alike on CPU and GPU (bfloat16 or float16 only when asked for)
    linearity: bool = True
    dim_profile: bool = False  # keep each layer's largest |h| per feature dim (column dim_max, a list)
    attention: bool = False  # attn_bos_share per layer (and per head), with eager attention while measuring
    geometry: bool = False  # anisotropy, intrinsic_dim and the token-level nonlinearity per layer (geometry.py)

    def resolved_device(self) -> str:
        if self.device == "auto":
            return "cuda" if torch.cuda.is_available() else "cpu"
        return self.device

    def resolved_dtype(self) -> torch.dtype:
        if self.dtype == "auto":
            return torch.float32
        if self.dtype not in DTYPES:
            raise ValueError(f"--dtype must be one of {', '.join(DTYPES)} or auto, got {self.dtype!r}")
        return DTYPES[self.dtype]


def weights_sha256(model: torch.nn.Module) -> str:
    """Hash of every parameter and buffer (name and bytes), in name order."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class Source:
    """What was loaded, beyond the weights: recorded with the metrics."""

    sha256: str = ""  # of the source file (GGUF); "" for folders and hub revisions
    quantization: str = ""  # GGUF file type, e.g. MOSTLY_Q4_K_M; "" when the weights are not quantised


def load(unit: Unit, settings: Settings):
    """(model, tokenizer, Source) of one unit, on the settings' device and dtype."""
    if unit.path and gguf.is_gguf(unit.path):
        info = gguf.describe(unit.path)
        model, tokenizer = gguf.load(info, settings.resolved_dtype())
        return model.to(settings.resolved_device()), tokenizer, Source(info.sha256, info.quantization)
    hub = {} if unit.path else {"revision": unit.revision}
    tokenizer = AutoTokenizer.from_pretrained(unit.source, **hub)
    model = archmods.load_causal_lm(
        unit.source, revision=None if unit.path else unit.revision, dtype=settings.resolved_dtype()
    )
    return model.to(settings.resolved_device()), tokenizer, Source()


def context_length(config) -> int:
    for key in ("max_position_embeddings", "n_positions", "seq_length"):
        value = getattr(config, key, None)
        if isinstance(value, int) and value > 0:
            return value
    return 2048


@torch.no_grad()
def measure(model, windows: torch.Tensor, settings: Settings, on_batch: Callable[[], None] | None = None) -> list[dict]:
    """One dict of metrics per layer (1..L). windows: (N, S) token ids."""
    blocks = archmods.decoder_blocks(model)
    stats = [LayerStats(profile=settings.dim_profile, attention=settings.attention, geometry=settings.geometry)
             for _ in blocks]  # fmt: skip
    device = next(model.parameters()).device
    body = model.base_model  # the decoder without the LM head: the logits are not needed (a 262k vocab costs more
    # than all blocks of a 270M model)
    with measure_blocks(blocks, stats, linearity=settings.linearity, attention=settings.attention):
        with eager_attention(model, settings.attention):
            for batch in windows.split(settings.batch_size):
                body(input_ids=batch.to(device), use_cache=False)
                if on_batch:
                    on_batch()
    rows = [{"layer": i + 1, **s.row()} for i, s in enumerate(stats)]
    if settings.geometry:  # the most nonlinear tokens by id, read from the windows they sit in
        for row in rows:
            row["nonlin_top_token_ids"] = [int(windows[w, p]) for w, p in row["nonlin_top_where"]]
    return rows


@contextmanager
def eager_attention(model, wanted: bool):
    """While measuring attention: transformers' eager attention, the one implementation that returns its weights
    (SDPA and flash kernels never form them). The same numbers up to rounding; a custom attention (the zoo's KV
    bias) is left as it is, and its layers report why attn_bos_share is NaN."""
    before = getattr(model.config, "_attn_implementation", None)
    if not wanted or before not in ("sdpa", "flash_attention_2", "flex_attention"):  # eager already, or custom
        yield
        return
    model.set_attn_implementation("eager")
    try:
        yield
    finally:
        model.set_attn_implementation(before)


def load_with_windows(unit: Unit, probe_path, settings: Settings):
    """(model, probe windows, Source, tokenizer): the unit loaded and its probe windows (S capped at its
    context)."""
    from extraction.probe import probe_windows

    model, tokenizer, source = load(unit, settings)
    seq_len = min(settings.seq_len, context_length(model.config))
    windows = probe_windows(tokenizer, probe_path, settings.n_seq, seq_len, settings.seed, settings.bos)
    return model, windows, source, tokenizer


def measure_unit(unit: Unit, probe_path, settings: Settings, on_batch=None, on_start=None) -> pd.DataFrame:
    from extraction.probe import probe_hash

    model, windows, source, tokenizer = load_with_windows(unit, probe_path, settings)
    try:
        if on_start:
            on_start(len(windows.split(settings.batch_size)))
        rows = measure(model, windows, settings, on_batch)
        for row in rows if settings.geometry else ():
            row["nonlin_top_tokens"] = [tokenizer.decode([i]) for i in row["nonlin_top_token_ids"]]
        digest = weights_sha256(model)
    finally:
        del model
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    frame = pd.DataFrame(rows)
    frame.insert(0, "step", unit.step)
    frame.insert(0, "revision", unit.revision)
    frame.insert(0, "model_id", unit.model_id)
    frame["weights_sha256"] = digest
    frame["n_seq"] = len(windows)
    frame["seq_len"] = windows.shape[1]
    frame["duplicate_of"] = ""
    frame["probe_sha256"] = probe_hash(probe_path)
    frame["dtype"] = str(settings.resolved_dtype()).removeprefix("torch.")
    frame["device"] = settings.resolved_device()
    frame["source_sha256"] = source.sha256
    frame["quantization"] = source.quantization
    return frame
