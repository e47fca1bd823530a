"""What one zoo run is: an architecture (a base family plus controlled changes) and a recipe."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

from transformers import AutoConfig, PretrainedConfig


@dataclass(frozen=True)
class Recipe:
    """Training recipe, identical across a tier so that runs differ by architecture only."""

    steps: int = 1000
    batch_size: int = 32  # sequences per step
    seq_len: int = 128  # tokens per sequence, BOS included
    lr: float = 6e-3
    min_lr_frac: float = 0.1  # cosine decays to lr · min_lr_frac
    warmup: int = 100
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.95)
    grad_clip: float = 1.0
    bos: bool = True  # a fixed first token: makes massive activations emerge sooner (docs/ground-truth.md)
    seed: int = 0
    n_linear_checkpoints: int = 40
    log_until: int = 512  # powers of two up to here, then the evenly spaced ones past it
    tvr_every: int = 10  # TVR: every k steps …
    tvr_threshold: float = 1.2  # … rescale a 2-D block weight whose std exceeds 1.2·σ back to σ
    tvr_sigma: float = 0.02

    def checkpoint_steps(self) -> list[int]:
        """Pythia-like: 0, 1, 2, 4 … log_until (512 as Pythia), then evenly spaced to the end."""
        log = [0] + [2**i for i in range(10) if 2**i <= min(self.steps, self.log_until)]
        linear = [round(self.steps * (k + 1) / self.n_linear_checkpoints) for k in range(self.n_linear_checkpoints)]
        return sorted(set(log) | {s for s in linear if s > log[-1]})


@dataclass(frozen=True)
class FineTune:
    """A continuation after pretraining: more steps on text of another kind (zoo.corpus.FINETUNE_PACKAGE), at the
    constant learning rate the pretraining ended at, the optimizer's state carried over."""

    steps: int = 200
    batch_size: int = 8  # a small fine-tuning set: 200 × 8 × 128 tokens are ~4.5 passes over the Debian FAQ
    lr: float = 6e-4
    seed: int = 1  # of the fine-tuning batches (the pretraining's are the recipe's seed)
    every: int = 20  # a checkpoint every this many fine-tuning steps

    def checkpoint_steps(self, start: int) -> list[int]:
        return [start + k for k in range(self.every, self.steps + 1, self.every)]


@dataclass(frozen=True)
class RunSpec:
    """One architecture of the zoo. `family` is the transformers model_type; `overrides` its config keys."""

    name: str
    family: str  # llama | qwen2 | gpt_neox | gpt2
    d: int = 64
    layers: int = 4
    heads: int = 4
    ffn_ratio: float = 4.0
    overrides: dict[str, Any] = field(default_factory=dict)  # extra transformers config keys
    changes: dict[str, Any] = field(default_factory=dict)  # archcast key: glu, norm, kv_bias, tvr
    recipe: Recipe = field(default_factory=Recipe)
    finetune: FineTune | None = None  # continued on other text after the recipe's steps (the finetune tier)

    def relative_cost(self, vocab_size: int = 4096) -> float:
        """Weights touched per token (blocks plus the LM head), × tokens trained: orders runs by training time."""
        block = self.d * self.d * (4 + 3 * self.ffn_ratio)  # attention 4·d², MLP ≤ 3·d·d_ff (gated)
        return (self.layers * block + vocab_size * self.d) * self.recipe.steps * self.recipe.batch_size

    def with_recipe(self, **kw) -> RunSpec:
        return replace(self, recipe=replace(self.recipe, **kw))

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        if out["finetune"] is None:  # the record of a run without one reads as before fine-tuning existed
            del out["finetune"]
        return out

    def checkpoint_steps(self) -> list[int]:
        own = self.recipe.checkpoint_steps()
        return own + (self.finetune.checkpoint_steps(self.recipe.steps) if self.finetune else [])

    def config(self, vocab_size: int, bos_id: int, eos_id: int) -> PretrainedConfig:
        d_ff = int(round(self.ffn_ratio * self.d))
        llama_like = dict(
            hidden_size=self.d,
            num_hidden_layers=self.layers,
            num_attention_heads=self.heads,
            num_key_value_heads=self.heads,
            intermediate_size=d_ff,
            max_position_embeddings=1024,
        )
        sizes = {
            "llama": llama_like,
            "qwen2": llama_like,
            "gpt_neox": dict(hidden_size=self.d, num_hidden_layers=self.layers, num_attention_heads=self.heads,
                             intermediate_size=d_ff, max_position_embeddings=1024),
            "gpt2": dict(n_embd=self.d, n_layer=self.layers, n_head=self.heads, n_inner=d_ff, n_positions=1024,
                         resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0),
        }[self.family]  # fmt: skip
        config = AutoConfig.for_model(
            self.family, vocab_size=vocab_size, bos_token_id=bos_id, eos_token_id=eos_id, **{**sizes, **self.overrides}
        )
        config.archcast = {"kv_bias": False, "tvr": False, **self.changes, "run": self.name}  # fmt: skip
        return config
