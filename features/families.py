"""Per-family adapters: where each HF `config.json` keeps the architecture facts.

A registry of small, mostly-data adapters keyed on `model_type` (the habit of
TransformerLens): each lists the keys to try for a field, in order, and the
family's defaults for keys a config.json may omit (the defaults of the matching
transformers config class). Family quirks that data cannot express go in a
`special` function that edits the normalised dict.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from features import values

Keys = tuple[str, ...]


@dataclass(frozen=True)
class Adapter:
    model_types: Keys
    hidden: Keys = ("hidden_size",)
    layers: Keys = ("num_hidden_layers",)
    heads: Keys = ("num_attention_heads",)
    kv_heads: Keys = ("num_key_value_heads",)  # absent → equal to heads (MHA)
    head_dim: Keys = ("head_dim",)  # absent → hidden / heads
    ffn: Keys = ("intermediate_size",)
    ffn_default_mult: float = 4.0  # d_ff = mult · d when the config has none
    vocab: Keys = ("vocab_size",)
    vocab_default: int | None = None
    context: Keys = ("max_position_embeddings",)
    context_default: int = 2048
    activation: Keys = ("hidden_act",)
    activation_default: str = "silu"
    glu: bool = False
    norm: str = "rmsnorm"  # layernorm | rmsnorm
    norm_placement: str = "pre"  # pre | post | sandwich
    qk_norm: bool = False
    position: str = "rotary"  # rotary | alibi | learned
    rotary_fraction: Keys = ("partial_rotary_factor",)
    rotary_fraction_default: float = 1.0
    rope_theta: Keys = ("rope_theta",)
    rope_theta_default: float = 10000.0
    parallel_residual: Keys = ()
    parallel_residual_default: bool = False
    attn_bias: Keys = ("attention_bias",)
    attn_bias_default: bool = False
    mlp_bias: Keys = ("mlp_bias",)
    mlp_bias_default: bool = False
    tied: Keys = ("tie_word_embeddings",)
    tied_default: bool = False
    sliding_window: Keys = ()
    experts: Keys = ()
    experts_active: Keys = ()
    special: Callable[[Mapping[str, Any], dict[str, Any]], None] | None = None


def _sliding_window_if_enabled(raw: Mapping[str, Any], spec: dict[str, Any]) -> None:
    # Qwen configs carry a sliding_window value that is off unless use_sliding_window.
    if not values.flag(raw, ("use_sliding_window",), False):
        spec["sliding_window"] = None


def _opt_post_norm(raw: Mapping[str, Any], spec: dict[str, Any]) -> None:
    if not values.flag(raw, ("do_layer_norm_before",), True):  # OPT-350m is post-LN
        spec["norm_placement"] = "post"


def _falcon(raw: Mapping[str, Any], spec: dict[str, Any]) -> None:
    if values.flag(raw, ("alibi",), False):
        spec["position"] = "alibi"
        spec["rotary_fraction"] = 0.0
    # num_kv_heads (read and checked like every family's kv key) counts only in the new decoder architecture
    if values.flag(raw, ("new_decoder_architecture",), False):
        return
    spec["kv_heads"] = 1 if values.flag(raw, ("multi_query",), True) else spec["heads"]


def _gptj_rotary(raw: Mapping[str, Any], spec: dict[str, Any]) -> None:
    # rotary_dim counts rotated channels per head (null: all); a head narrower than it is rotated fully
    if "rotary_dim" in raw and raw["rotary_dim"] is None:
        spec["rotary_fraction"] = 1.0
        return
    rotary_dim = values.size(raw, ("rotary_dim",), "rotary dimension", default=64)
    spec["rotary_fraction"] = min(1.0, rotary_dim / spec["head_dim"])


def _gemma_tanh_gelu(raw: Mapping[str, Any], spec: dict[str, Any]) -> None:
    # GemmaConfig reads the released configs' hidden_act "gelu" as the tanh approximation they were trained with
    if spec["activation"] == "gelu":
        spec["activation"] = "gelu_pytorch_tanh"


def _no_rotary(raw: Mapping[str, Any], spec: dict[str, Any]) -> None:
    spec["rotary_fraction"] = 0.0
    spec["rope_theta"] = None


_LLAMA_LIKE = dict(glu=True, norm="rmsnorm", activation_default="silu")
# GPT-2-era designs: LayerNorm and biases on every projection, with no config key for either.
_BIASED_LAYERNORM = dict(norm="layernorm", attn_bias=(), attn_bias_default=True, mlp_bias=(), mlp_bias_default=True)

ADAPTERS: tuple[Adapter, ...] = (
    Adapter(
        ("gpt_neox",),
        kv_heads=(),  # GPTNeoXConfig has no grouped heads: transformers' model is always multi-head
        activation_default="gelu",
        norm="layernorm",
        rotary_fraction=("rotary_pct", "partial_rotary_factor"),
        rotary_fraction_default=0.25,
        rope_theta=("rotary_emb_base", "rope_theta"),
        parallel_residual=("use_parallel_residual",),
        parallel_residual_default=True,
        attn_bias_default=True,
        mlp_bias=(),
        mlp_bias_default=True,
    ),
    Adapter(("llama",), **_LLAMA_LIKE),
    Adapter(("mistral",), context_default=131072, sliding_window=("sliding_window",), **_LLAMA_LIKE),
    Adapter(
        ("mixtral",),
        context_default=131072,
        sliding_window=("sliding_window",),
        experts=("num_experts", "num_local_experts"),  # MixtralConfig's attribute_map: num_experts wins
        experts_active=("num_experts_per_tok",),
        **_LLAMA_LIKE,
    ),
    Adapter(
        ("qwen2",),
        context_default=32768,
        attn_bias=(),  # q, k, v always carry a bias in Qwen2
        attn_bias_default=True,
        sliding_window=("sliding_window",),
        special=_sliding_window_if_enabled,
        **_LLAMA_LIKE,
    ),
    Adapter(
        ("qwen3",),
        context_default=32768,
        qk_norm=True,
        sliding_window=("sliding_window",),
        special=_sliding_window_if_enabled,
        **_LLAMA_LIKE,
    ),
    Adapter(
        ("gemma",),
        glu=True,
        activation=("hidden_act",),  # GemmaConfig has no hidden_activation (Gemma 2 and 3 read only that)
        activation_default="gelu_pytorch_tanh",
        special=_gemma_tanh_gelu,
        context_default=8192,
        tied_default=True,
    ),
    Adapter(
        ("gemma2",),
        glu=True,
        activation=("hidden_activation", "hidden_act"),
        activation_default="gelu_pytorch_tanh",
        norm_placement="sandwich",
        context_default=8192,
        tied_default=True,
        sliding_window=("sliding_window",),
    ),
    Adapter(
        ("gemma3_text",),
        glu=True,
        activation=("hidden_activation", "hidden_act"),
        activation_default="gelu_pytorch_tanh",
        norm_placement="sandwich",
        qk_norm=True,
        context_default=131072,
        rope_theta_default=1_000_000.0,
        tied_default=True,
        sliding_window=("sliding_window",),
    ),
    Adapter(
        ("gpt2",),
        hidden=("hidden_size", "n_embd"),
        layers=("num_hidden_layers", "n_layer"),
        heads=("num_attention_heads", "n_head"),
        kv_heads=(),
        ffn=("n_inner",),
        vocab_default=50257,
        context=("max_position_embeddings", "n_positions"),
        context_default=1024,
        activation=("activation_function",),
        activation_default="gelu_new",
        position="learned",
        tied_default=True,
        special=_no_rotary,
        **_BIASED_LAYERNORM,
    ),
    Adapter(
        ("opt",),
        kv_heads=(),
        ffn=("ffn_dim",),
        vocab_default=50272,
        activation=("activation_function",),
        activation_default="relu",
        norm="layernorm",
        position="learned",
        attn_bias=("enable_bias",),
        attn_bias_default=True,
        mlp_bias=("enable_bias",),
        mlp_bias_default=True,
        tied_default=True,
        special=lambda raw, spec: (_opt_post_norm(raw, spec), _no_rotary(raw, spec)),
    ),
    Adapter(
        ("falcon",),
        hidden=("n_embed", "hidden_size"),  # FalconConfig takes a legacy n_embed over hidden_size; n_layer and
        # n_head it ignores (RefinedWeb's spellings, not the falcon model_type's)
        kv_heads=("num_kv_heads",),  # used by the new decoder architecture only (see _falcon)
        ffn=("ffn_hidden_size",),
        vocab_default=65024,
        activation=("activation",),
        activation_default="gelu",
        norm="layernorm",
        parallel_residual=("parallel_attn",),
        parallel_residual_default=True,
        attn_bias=("bias",),
        mlp_bias=("bias",),
        tied_default=True,
        special=_falcon,
    ),
    Adapter(
        ("phi",),
        activation_default="gelu_new",
        norm="layernorm",
        rotary_fraction_default=0.5,
        parallel_residual_default=True,  # attention and MLP read one shared LayerNorm
        attn_bias_default=True,
        attn_bias=(),
        mlp_bias=(),
        mlp_bias_default=True,
    ),
    Adapter(("phi3",), context_default=4096, sliding_window=("sliding_window",), **_LLAMA_LIKE),
    Adapter(("olmo",), norm_placement="pre", **{**_LLAMA_LIKE, "norm": "layernorm"}),
    Adapter(("olmo2",), norm_placement="post", qk_norm=True, context_default=2048, **_LLAMA_LIKE),
    Adapter(
        ("stablelm",),
        glu=True,
        activation_default="silu",
        norm="layernorm",
        context_default=4096,
        rotary_fraction_default=0.25,
        parallel_residual=("use_parallel_residual",),
        attn_bias=("use_qkv_bias",),
    ),
    Adapter(
        ("bloom",),
        hidden=("n_embed", "hidden_size"),  # BloomConfig takes a legacy n_embed over hidden_size
        layers=("num_hidden_layers", "n_layer"),
        heads=("num_attention_heads", "n_head"),
        kv_heads=(),
        ffn=(),
        vocab_default=250880,
        context=("seq_length",),
        activation=(),
        activation_default="gelu",
        position="alibi",
        tied_default=True,
        special=_no_rotary,
        **_BIASED_LAYERNORM,
    ),
    Adapter(
        ("gptj",),
        hidden=("hidden_size", "n_embd"),
        layers=("num_hidden_layers", "n_layer"),
        heads=("num_attention_heads", "n_head"),
        kv_heads=(),
        ffn=("n_inner",),
        vocab_default=50400,
        context=("max_position_embeddings", "n_positions"),
        activation=("activation_function",),
        activation_default="gelu_new",
        norm="layernorm",
        parallel_residual_default=True,
        attn_bias=(),
        mlp_bias=(),
        mlp_bias_default=True,
        special=_gptj_rotary,
    ),
)

REGISTRY: dict[str, Adapter] = {t: a for a in ADAPTERS for t in a.model_types}
SUPPORTED_MODEL_TYPES: tuple[str, ...] = tuple(sorted(REGISTRY))
