"""The feature schema: names, order and dtype of a feature row, versioned and hashed.

Every exported model carries SCHEMA_HASH; the service refuses a model whose hash
differs from this file's, so change SCHEMA_VERSION whenever FEATURES changes.
"""

from __future__ import annotations

import hashlib
import json

SCHEMA_VERSION = "1"
DTYPE = "float32"

# Per-model features, then per-layer features; the order is the model input order.
MODEL_FEATURES: tuple[str, ...] = (
    "d_model",
    "n_layers",
    "n_heads",
    "n_kv_heads",
    "head_dim",
    "d_ff",
    "ffn_ratio",
    "glu",
    "act_gelu",
    "act_silu",
    "act_relu",
    "act_other",
    "norm_layernorm",
    "norm_rmsnorm",
    "norm_dyt",
    "norm_post",
    "norm_sandwich",
    "qk_norm",
    "pos_rotary",
    "pos_alibi",
    "pos_learned",
    "rotary_fraction",
    "log_rope_theta",
    "parallel_residual",
    "attn_bias",
    "mlp_bias",
    "tied_embeddings",
    "log_vocab",
    "log_context",
    "sliding_window_frac",
    "n_experts",
    "n_experts_active",
    "log_params",
    "kv_bias",
    "tvr",
    "heads_per_d",
    "d_per_layer",
    "heads_per_layer",
    "log_d",
)
LAYER_FEATURES: tuple[str, ...] = (
    "layer_index",
    "layer_frac",
    "layer_frac_sq",
    "layer_frac_sqrt",
    "layer_x_layers",
)
FEATURES: tuple[str, ...] = MODEL_FEATURES + LAYER_FEATURES


def schema_dict() -> dict:
    return {"version": SCHEMA_VERSION, "dtype": DTYPE, "features": list(FEATURES)}


SCHEMA_HASH = hashlib.sha256(json.dumps(schema_dict(), sort_keys=True).encode()).hexdigest()
