"""Config → one feature row per layer, in schema order, float32."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from features.errors import FeatureError
from features.schema import FEATURES, MODEL_FEATURES
from features.spec import ArchSpec, read_spec

_ACTIVATIONS = {"gelu": "act_gelu", "silu": "act_silu", "swish": "act_silu", "relu": "act_relu"}


def _activation_family(name: str) -> str:
    for prefix, feature in _ACTIVATIONS.items():
        if name.lower().startswith(prefix):
            return feature
    return "act_other"


def model_vector(spec: ArchSpec) -> np.ndarray:
    """The per-model part of a row, shape (len(MODEL_FEATURES),)."""
    d, layers, heads = spec.d, spec.layers, spec.heads
    act = _activation_family(spec.activation)
    window = spec.sliding_window
    values = {
        "d_model": d,
        "n_layers": layers,
        "n_heads": heads,
        "n_kv_heads": spec.kv_heads,
        "head_dim": spec.head_dim,
        "d_ff": spec.d_ff,
        "ffn_ratio": spec.d_ff / d,
        "glu": spec.glu,
        "act_gelu": act == "act_gelu",
        "act_silu": act == "act_silu",
        "act_relu": act == "act_relu",
        "act_other": act == "act_other",
        "norm_layernorm": spec.norm == "layernorm",
        "norm_rmsnorm": spec.norm == "rmsnorm",
        "norm_dyt": spec.norm == "dyt",
        "norm_post": spec.norm_placement == "post",
        "norm_sandwich": spec.norm_placement == "sandwich",
        "qk_norm": spec.qk_norm,
        "pos_rotary": spec.position == "rotary" and spec.rotary_fraction > 0,
        "pos_alibi": spec.position == "alibi",
        "pos_learned": spec.position == "learned",
        "rotary_fraction": spec.rotary_fraction if spec.position == "rotary" else 0.0,
        "log_rope_theta": math.log(spec.rope_theta) if spec.rope_theta and spec.position == "rotary" else 0.0,
        "parallel_residual": spec.parallel_residual,
        "attn_bias": spec.attn_bias,
        "mlp_bias": spec.mlp_bias,
        "tied_embeddings": spec.tied,
        "log_vocab": math.log(spec.vocab),
        "log_context": math.log(spec.context),
        "sliding_window_frac": 1.0 if window is None else min(1.0, window / spec.context),
        "n_experts": spec.experts,
        "n_experts_active": spec.experts_active,
        "log_params": math.log(spec.n_params),
        "kv_bias": spec.kv_bias,
        "tvr": spec.tvr,
        "heads_per_d": heads / d,
        "d_per_layer": d / layers,
        "heads_per_layer": heads / layers,
        "log_d": math.log(d),
    }
    return np.array([float(values[name]) for name in MODEL_FEATURES], dtype=np.float64)


def feature_matrix(config: Any) -> np.ndarray:
    """Feature rows as an array of shape (L, len(FEATURES)), float32.

    The fast path used per prediction request; `featurize` wraps it in a DataFrame.
    """
    return spec_matrix(read_spec(config))


def spec_matrix(spec: ArchSpec) -> np.ndarray:
    """feature_matrix of a spec already read (a caller that needs the spec too reads the config once)."""
    layers = spec.layers
    ell = np.arange(1, layers + 1, dtype=np.float64)  # (L,)
    frac = ell / layers
    per_layer = np.stack([ell, frac, frac**2, np.sqrt(frac), ell * layers], axis=1)  # (L, 5)
    per_model = np.broadcast_to(model_vector(spec), (layers, len(MODEL_FEATURES)))
    rows = np.concatenate([per_model, per_layer], axis=1).astype(np.float32)
    if not np.isfinite(rows).all():  # a guard: validation should make this unreachable
        bad = [FEATURES[i] for i in np.where(~np.isfinite(rows).all(axis=0))[0]]
        raise FeatureError(bad[0], f"non-finite feature values in {bad}")
    return rows


def featurize(config: Any) -> pd.DataFrame:
    """One row per layer (index: layer 1..L), columns in schema order, float32.

    `config` is a dict, a path to a config.json (or its folder), or a
    transformers PretrainedConfig. Raises FeatureError (a ValueError) on bad input.
    """
    rows = feature_matrix(config)
    return pd.DataFrame(rows, columns=list(FEATURES), index=pd.RangeIndex(1, len(rows) + 1, name="layer"))
