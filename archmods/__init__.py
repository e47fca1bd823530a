"""Architecture changes from the literature, applied on top of transformers' own models.

Both zoo/ (which trains models with them) and extraction/ (which must rebuild
them to load a zoo checkpoint) import this package; it imports only torch and
transformers. The changes a model carries are recorded in its config under the
key `archcast` (features/ reads the same key):

- `kv_bias`: a learned key/value slot per KV head that every query can attend to
  (Sun et al.'s "explicit attention bias"); a zero slot equals softmax-plus-one.
- `norm: "dyt"`: Dynamic Tanh, γ·tanh(αx)+β with a learnable scalar α, in place of
  every LayerNorm/RMSNorm. α starts at 0.5 everywhere unless `dyt_alpha` gives
  [before attention, other block norms, final norm], as the DyT paper does for LLMs
  (larger before attention, smaller for wider models).
- `embed_scale: true`: a learnable scalar (init √d) multiplies the token embeddings;
  the DyT paper adds it to LLaMA, whose small embeddings would sit in tanh's linear range.
- `glu: false`: a plain up → act → down MLP in a family whose MLP is gated.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoConfig, AutoModelForCausalLM, PretrainedConfig
from transformers.activations import ACT2FN
from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, eager_mask
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

from contracts import CONFIG_KEY

KEY = CONFIG_KEY
KV_BIAS_ATTENTION = "archcast_kv_bias"


class DyT(nn.Module):
    """Dynamic Tanh: weight · tanh(alpha · x) + bias, alpha a learnable scalar."""

    def __init__(self, dim: int, alpha_init: float = 0.5):
        super().__init__()
        self.alpha = nn.Parameter(torch.full((1,), alpha_init))
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (..., d) → (..., d)
        return self.weight * torch.tanh(self.alpha * x) + self.bias


class PlainMLP(nn.Module):
    """Ungated MLP: down(act(up(x))), for GLU-vs-not comparisons inside one family."""

    def __init__(self, d: int, d_ff: int, activation: str, bias: bool):
        super().__init__()
        self.up_proj = nn.Linear(d, d_ff, bias=bias)
        self.down_proj = nn.Linear(d_ff, d, bias=bias)
        self.act_fn = ACT2FN[activation]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(self.act_fn(self.up_proj(x)))


def kv_bias_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    """Attention with a learned key/value slot prepended to every sequence.

    query (B, H, Sq, hd); key, value (B, Hkv, Sk, hd); attention_mask additive (B, 1, Sq, Sk) or None.
    """
    batch, kv_heads, _, head_dim = key.shape
    slot_k = module.kv_slot_k.to(key.dtype).expand(batch, kv_heads, 1, head_dim)
    slot_v = module.kv_slot_v.to(value.dtype).expand(batch, kv_heads, 1, head_dim)
    key = torch.cat([slot_k, key], dim=2)  # (B, Hkv, 1+Sk, hd)
    value = torch.cat([slot_v, value], dim=2)
    groups = query.shape[1] // kv_heads
    if groups > 1:
        key, value = key.repeat_interleave(groups, dim=1), value.repeat_interleave(groups, dim=1)
    q_len, k_len = query.shape[2], key.shape[2] - 1
    if attention_mask is None:
        keep = torch.ones(q_len, k_len, dtype=torch.bool, device=query.device).tril(k_len - q_len)
        mask = torch.zeros(q_len, k_len, dtype=query.dtype, device=query.device).masked_fill(~keep, float("-inf"))
        mask = mask.expand(batch, 1, q_len, k_len)
    else:
        mask = attention_mask[..., :k_len].to(query.dtype)
    mask = torch.cat([torch.zeros_like(mask[..., :1]), mask], dim=-1)  # the slot is always visible
    out = F.scaled_dot_product_attention(
        query, key, value, attn_mask=mask, dropout_p=dropout if module.training else 0.0, scale=scaling
    )
    return out.transpose(1, 2).contiguous(), None  # (B, Sq, H, hd)


ALL_ATTENTION_FUNCTIONS.register(KV_BIAS_ATTENTION, kv_bias_attention)
ALL_MASK_ATTENTION_FUNCTIONS.register(KV_BIAS_ATTENTION, eager_mask)


def changes_of(config: PretrainedConfig | Mapping[str, Any]) -> dict[str, Any]:
    raw = config.get(KEY) if isinstance(config, Mapping) else getattr(config, KEY, None)
    return dict(raw or {})


def needs_rebuild(config: PretrainedConfig) -> bool:
    """Whether loading this config needs archmods: any registered change applies to it."""
    changes = changes_of(config)
    return any(change.applies(changes) for change in CHANGES)


def decoder_blocks(model: nn.Module) -> nn.ModuleList:
    """The list of decoder blocks: the ModuleList whose length is the layer count."""
    n_layers = model.config.num_hidden_layers
    for _, module in model.named_modules():
        if isinstance(module, nn.ModuleList) and len(module) == n_layers and n_layers > 0:
            if len({type(m) for m in module}) == 1:
                return module
    raise ValueError(f"no list of {n_layers} decoder blocks found in {type(model).__name__}")


ATTENTION_NORMS = ("input_layernorm", "ln_1")  # the norm in front of attention, by family


def _dyt_for(name: str, in_block: bool, d: int, alphas: list[float]) -> DyT:
    """alphas: [before attention, other norms in a block, final norm]."""
    if not in_block:
        return DyT(d, alphas[2])
    return DyT(d, alphas[0] if name in ATTENTION_NORMS else alphas[1])


def _scale_embeddings(embedding: nn.Module, init: float) -> None:
    """Multiply the embedding's output by a learnable scalar kept on the module (state dict: `embed_scale`)."""
    embedding.embed_scale = nn.Parameter(torch.full((1,), init))
    embedding.register_forward_hook(lambda module, args, output: output * module.embed_scale.to(output.dtype))


def _is_norm(module: nn.Module) -> bool:
    name = type(module).__name__
    return isinstance(module, nn.LayerNorm) or name.endswith("RMSNorm") or name.endswith("LayerNorm")


def attention_of(block: nn.Module) -> nn.Module:
    """A decoder block's self-attention: the child whose class name says attention (LlamaAttention, …)."""
    for child in block.children():
        if "Attention" in type(child).__name__:
            return child
    raise ValueError(f"no attention module found in {type(block).__name__}")


def _dyt_norms(model: nn.Module, changes: dict[str, Any]) -> None:
    """Every norm becomes a Dynamic Tanh (fresh parameters), α per norm position."""
    alphas = list(changes.get("dyt_alpha") or [0.5, 0.5, 0.5])
    d = model.config.hidden_size
    block_ids = {id(m) for block in decoder_blocks(model) for m in block.modules()}
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if _is_norm(child):
                setattr(parent, name, _dyt_for(name, id(child) in block_ids, d, alphas))


def _embedding_scale(model: nn.Module, changes: dict[str, Any]) -> None:
    _scale_embeddings(model.get_input_embeddings(), model.config.hidden_size**0.5)


def _ungated_mlp(model: nn.Module, changes: dict[str, Any]) -> None:
    """A gated MLP (gate_proj) becomes a plain two-layer one of the same width and activation."""
    config = model.config
    bias = bool(getattr(config, "mlp_bias", False))
    for block in decoder_blocks(model):
        if not hasattr(getattr(block, "mlp", None), "gate_proj"):
            raise ValueError(f"{KEY}.glu=false needs a gated MLP; {config.model_type} has none")
        block.mlp = PlainMLP(config.hidden_size, config.intermediate_size, config.hidden_act, bias)


def _kv_bias_slots(model: nn.Module, changes: dict[str, Any]) -> None:
    """A learnable key/value slot per KV head that every query attends to (zero-initialised)."""
    config = model.config
    heads = config.num_attention_heads
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    for block in decoder_blocks(model):
        attention = attention_of(block)
        attention.kv_slot_k = nn.Parameter(torch.zeros(kv_heads, 1, head_dim))
        attention.kv_slot_v = nn.Parameter(torch.zeros(kv_heads, 1, head_dim))
    config._attn_implementation = KV_BIAS_ATTENTION


@dataclass(frozen=True)
class Change:
    """One architecture change: the config.archcast entry that asks for it, and how a model gets it."""

    key: str
    applies: Callable[[dict[str, Any]], bool]
    apply: Callable[[nn.Module, dict[str, Any]], None]


# In the order they are applied (norms before the embedding scale, as the models were trained). A change
# that only a recipe reads (tvr: weight rescaling during training) needs no rebuild and is not here.
CHANGES: tuple[Change, ...] = (
    Change("norm", lambda c: c.get("norm") == "dyt", _dyt_norms),
    Change("embed_scale", lambda c: bool(c.get("embed_scale")), _embedding_scale),
    Change("glu", lambda c: c.get("glu") is False, _ungated_mlp),
    Change("kv_bias", lambda c: bool(c.get("kv_bias")), _kv_bias_slots),
)


def apply_changes(model: nn.Module) -> nn.Module:
    """Rebuild the modules named under config.archcast in place (fresh parameters)."""
    changes = changes_of(model.config)
    for change in CHANGES:
        if change.applies(changes):
            change.apply(model, changes)
    return model


def build_model(config: PretrainedConfig) -> nn.Module:
    """A freshly initialised causal LM for `config`, with its archcast changes applied."""
    model = AutoModelForCausalLM.from_config(config)
    return apply_changes(model)


def save_causal_lm(model: nn.Module, folder: str | Path) -> None:
    """Save config and weights so that `load_causal_lm` (and, without changes, transformers) reloads them.

    Weights are written under the model's own state-dict names: save_pretrained
    renames some (GPT-NeoX's lm_head → embed_out), which a rebuilt model could not map back.
    """
    from safetensors.torch import save_model

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model.config.save_pretrained(folder)
    save_model(model, str(folder / "model.safetensors"), metadata={"format": "pt"})


def load_causal_lm(
    source: str | Path, revision: str | None = None, dtype: torch.dtype = torch.float32, **hub
) -> nn.Module:
    """Load a causal LM from a hub id or folder, rebuilding archcast changes where present."""
    config = AutoConfig.from_pretrained(source, revision=revision, **hub)
    if not needs_rebuild(config):
        return AutoModelForCausalLM.from_pretrained(source, revision=revision, dtype=dtype, **hub).eval()
    from safetensors.torch import load_file

    model = build_model(config)
    weights = Path(source) / "model.safetensors"
    state = load_file(str(weights))
    missing, unexpected = model.load_state_dict(state, strict=False)
    # save_model stores a tied tensor once; a name missing for that reason shares storage with a loaded one.
    params = model.state_dict()
    loaded = {params[k].data_ptr() for k in state if k in params}
    untied_missing = [k for k in missing if params[k].data_ptr() not in loaded]
    if unexpected or untied_missing:
        raise ValueError(
            f"{weights}: weights do not match the architecture (missing {untied_missing}, unexpected {unexpected})"
        )
    return model.to(dtype).eval()
