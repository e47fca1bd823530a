"""Read any supported HF config into one normalised, validated `ArchSpec`."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from contracts import CONFIG_KEY
from features import hf_defaults, values
from features.errors import FeatureError
from features.families import REGISTRY, SUPPORTED_MODEL_TYPES, Adapter

# Key under which the zoo records its architecture changes inside a saved config.
ZOO_KEY = CONFIG_KEY  # the architecture changes a config records (contracts)

# Upper bounds past which a config is rejected as absurd rather than featurised.
LIMITS = {
    "layers": 1000,
    "hidden": 131_072,
    "heads": 16_384,
    "head_dim": 16_384,
    "ffn": 1_048_576,
    "vocab": 10_000_000,
    "context": 16_777_216,
    "experts": 4096,
}


@dataclass(frozen=True)
class ArchSpec:
    """Architecture facts, the same names whatever family the config came from."""

    model_type: str
    d: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    d_ff: int
    vocab: int
    context: int
    activation: str
    glu: bool
    norm: str  # layernorm | rmsnorm | dyt
    norm_placement: str  # pre | post | sandwich
    qk_norm: bool
    position: str  # rotary | alibi | learned
    rotary_fraction: float
    rope_theta: float | None
    parallel_residual: bool
    attn_bias: bool
    mlp_bias: bool
    tied: bool
    sliding_window: int | None
    experts: int
    experts_active: int
    kv_bias: bool
    tvr: bool

    @property
    def n_params(self) -> int:
        return count_parameters(self)


def load_raw(config: Any) -> dict[str, Any]:
    """A dict from a dict, a `config.json` path (or its folder) or a PretrainedConfig."""
    if isinstance(config, Mapping):
        return dict(config)
    if isinstance(config, (str, Path)):
        path = Path(config)
        if path.is_dir():
            path = path / "config.json"
        try:
            text = path.read_text()
        except OSError as exc:
            raise FeatureError("config", f"cannot read {path}: {exc.strerror or exc}") from exc
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as exc:
            raise FeatureError("config", f"{path} is not valid JSON ({exc})") from exc
        if not isinstance(raw, dict):
            raise FeatureError("config", f"{path} must hold a JSON object")
        return raw
    to_dict = getattr(config, "to_dict", None)
    if callable(to_dict):  # transformers.PretrainedConfig
        return to_dict()
    raise FeatureError("config", f"expected a dict, a path or a PretrainedConfig, got {type(config).__name__}")


def _check_limit(field: str, value: int, limit_name: str) -> None:
    if value > LIMITS[limit_name]:
        raise FeatureError(field, f"{value} is beyond the supported maximum of {LIMITS[limit_name]}")


def _activation_name(raw: Mapping[str, Any], adapter: Adapter) -> str:
    _, value = values.lookup(raw, adapter.activation)
    value = adapter.activation_default if value is None else value
    if not isinstance(value, str):
        raise FeatureError(adapter.activation[0], f"expected an activation name, got {value!r}")
    return value


def read_spec(config: Any) -> ArchSpec:
    """Normalise and validate a config; raises FeatureError naming the bad field."""
    raw = load_raw(config)
    model_type = raw.get("model_type")
    adapter = REGISTRY.get(model_type) if isinstance(model_type, str) else None
    if adapter is None:
        raise FeatureError(
            "model_type",
            f"unsupported model_type {model_type!r}; supported: {', '.join(SUPPORTED_MODEL_TYPES)}",
        )
    # a key the config leaves out reads as transformers' default for the family (features.hf_defaults)
    raw = {**hf_defaults.table().get(model_type, {}), **raw}
    d = values.size(raw, adapter.hidden, "hidden size")
    _check_limit(_key(raw, adapter.hidden, "hidden_size"), d, "hidden")
    layers = values.size(raw, adapter.layers, "number of layers")
    _check_limit(_key(raw, adapter.layers, "num_hidden_layers"), layers, "layers")
    heads = values.size(raw, adapter.heads, "number of attention heads")
    _check_limit(_key(raw, adapter.heads, "num_attention_heads"), heads, "heads")
    kv_heads = values.size(raw, adapter.kv_heads, "number of key/value heads", default=heads)
    explicit_head_dim = values.lookup(raw, adapter.head_dim)[0] is not None
    if not explicit_head_dim and d % heads:
        raise FeatureError(
            _key(raw, adapter.hidden, "hidden_size"), f"hidden size {d} is not divisible by the {heads} attention heads"
        )
    head_dim = values.size(raw, adapter.head_dim, "head dimension", default=d // heads if d >= heads else None)
    _check_limit(_key(raw, adapter.head_dim, "head_dim"), head_dim, "head_dim")
    d_ff = values.size(raw, adapter.ffn, "FFN size", default=max(1, round(adapter.ffn_default_mult * d)))
    _check_limit(_key(raw, adapter.ffn, "intermediate_size"), d_ff, "ffn")
    vocab = values.size(raw, adapter.vocab, "vocabulary size", default=adapter.vocab_default)
    _check_limit(_key(raw, adapter.vocab, "vocab_size"), vocab, "vocab")
    context = values.size(raw, adapter.context, "context length", default=adapter.context_default)
    _check_limit(_key(raw, adapter.context, "max_position_embeddings"), context, "context")

    sliding = None  # absent or null: no sliding window
    if adapter.sliding_window and values.lookup(raw, adapter.sliding_window)[0] is not None:
        sliding = values.size(raw, adapter.sliding_window, "sliding window")
    experts = values.size(raw, adapter.experts, "number of experts", default=1)
    _check_limit(_key(raw, adapter.experts, "num_local_experts"), experts, "experts")
    spec: dict[str, Any] = dict(
        model_type=model_type,
        d=d,
        layers=layers,
        heads=heads,
        kv_heads=kv_heads,
        head_dim=head_dim,
        d_ff=d_ff,
        vocab=vocab,
        context=context,
        activation=_activation_name(raw, adapter),
        glu=adapter.glu,
        norm=adapter.norm,
        norm_placement=adapter.norm_placement,
        qk_norm=adapter.qk_norm,
        position=adapter.position,
        rotary_fraction=values.number(
            raw, adapter.rotary_fraction, adapter.rotary_fraction_default, "rotary fraction", (0.0, 1.0), zero=True
        ),
        rope_theta=values.number(raw, adapter.rope_theta, adapter.rope_theta_default, "rotary base"),
        parallel_residual=values.flag(raw, adapter.parallel_residual, adapter.parallel_residual_default),
        attn_bias=values.flag(raw, adapter.attn_bias, adapter.attn_bias_default),
        mlp_bias=values.flag(raw, adapter.mlp_bias, adapter.mlp_bias_default),
        tied=values.flag(raw, adapter.tied, adapter.tied_default),
        sliding_window=sliding,
        experts=experts,
        experts_active=values.size(raw, adapter.experts_active, "experts per token", default=1),
        kv_bias=False,
        tvr=False,
    )
    if adapter.special is not None:
        adapter.special(raw, spec)
    _apply_zoo_changes(raw, spec)
    _check_consistency(spec, raw, adapter)
    return ArchSpec(**spec)


def _key(raw: Mapping[str, Any], keys: tuple[str, ...], fallback: str) -> str:
    """The key as this config spells it (values.named)."""
    return values.named(raw, keys, fallback)


def _apply_zoo_changes(raw: Mapping[str, Any], spec: dict[str, Any]) -> None:
    """The zoo's architecture changes override what the base family implies."""
    zoo = raw.get(ZOO_KEY) or {}
    if not isinstance(zoo, Mapping):
        raise FeatureError(ZOO_KEY, f"expected an object, got {zoo!r}")
    for key in ("glu", "kv_bias", "tvr"):
        if key in zoo:
            try:
                spec[key] = values.flag(zoo, (key,), False)
            except FeatureError as exc:
                raise exc.within(ZOO_KEY) from None
    if zoo.get("norm") is not None:
        if zoo["norm"] not in ("layernorm", "rmsnorm", "dyt"):
            raise FeatureError(f"{ZOO_KEY}.norm", f"expected layernorm, rmsnorm or dyt, got {zoo['norm']!r}")
        spec["norm"] = zoo["norm"]


def _check_consistency(spec: dict[str, Any], raw: Mapping[str, Any], adapter: Adapter) -> None:
    """Checks across values; errors name the keys as the family spells them."""
    if spec["kv_heads"] > spec["heads"] or spec["heads"] % spec["kv_heads"]:
        raise FeatureError(
            _key(raw, adapter.kv_heads, "num_key_value_heads"),
            f"{spec['kv_heads']} key/value heads do not divide the {spec['heads']} attention heads",
        )
    if spec["experts_active"] > spec["experts"]:
        raise FeatureError(
            _key(raw, adapter.experts_active, "num_experts_per_tok"),
            f"{spec['experts_active']} exceeds {spec['experts']} experts",
        )
    if not 0.0 <= spec["rotary_fraction"] <= 1.0:
        raise FeatureError(
            _key(raw, adapter.rotary_fraction, "partial_rotary_factor"),
            f"must lie in [0, 1], got {spec['rotary_fraction']}",
        )


def count_parameters(spec: ArchSpec) -> int:
    """Parameter count implied by the architecture (embeddings and head included)."""
    d, hd = spec.d, spec.head_dim
    q_width, kv_width = spec.heads * hd, spec.kv_heads * hd
    attention = d * q_width + 2 * d * kv_width + q_width * d
    if spec.attn_bias:
        attention += q_width + 2 * kv_width + d
    if spec.kv_bias:
        attention += 2 * kv_width  # the learned key/value slot
    mlp_mats = 3 if spec.glu else 2
    mlp = mlp_mats * d * spec.d_ff + (spec.d_ff * (mlp_mats - 1) + d if spec.mlp_bias else 0)
    if spec.experts > 1:
        mlp = spec.experts * mlp + d * spec.experts  # experts plus the router
    norm_size = 2 * d if spec.norm == "layernorm" else d
    norms_per_layer = (4 if spec.norm_placement == "sandwich" else 2) * norm_size
    per_layer = attention + mlp + norms_per_layer
    embeddings = spec.vocab * d * (1 if spec.tied else 2)
    if spec.position == "learned":
        embeddings += spec.context * d
    return int(spec.layers * per_layer + embeddings + norm_size)
