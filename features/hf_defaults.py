"""What transformers reads for a key a config.json leaves out: each supported family's config-class defaults,
for the keys archcast reads (features/hf_defaults.json, written from the installed transformers).

read_spec takes a missing key's value from that table, so a sparse config means what transformers builds from
it. A default that transformers derives from other keys (LlamaConfig's head_dim = hidden / heads, its
num_key_value_heads = heads, Falcon's ffn_hidden_size = 4 · hidden) is not a constant and is left out: the
family adapter's rule gives it, and tests/test_transformers_reading.py checks both against transformers.

Regenerate after a transformers upgrade (a test fails until then):
    .venv/bin/python -m features.hf_defaults
"""

from __future__ import annotations

import json
import warnings
from functools import cache
from pathlib import Path
from typing import Any

TABLE = Path(__file__).with_name("hf_defaults.json")
# keys the family quirks read (families.py), beside the keys the adapters list
QUIRK_KEYS = ("use_sliding_window", "do_layer_norm_before", "alibi", "new_decoder_architecture", "multi_query",
              "rotary_dim")  # fmt: skip
_ADAPTER_FIELDS = ("hidden", "layers", "heads", "kv_heads", "head_dim", "ffn", "vocab", "context", "activation",
                   "rotary_fraction", "rope_theta", "parallel_residual", "attn_bias", "mlp_bias", "tied",
                   "sliding_window", "experts", "experts_active")  # fmt: skip


@cache
def table() -> dict[str, dict[str, Any]]:
    """model_type → {key: transformers' default}, as committed."""
    return json.loads(TABLE.read_text())


def read_keys(model_type: str) -> list[str]:
    from features.families import REGISTRY

    adapter = REGISTRY[model_type]
    keys = [k for name in _ADAPTER_FIELDS for k in getattr(adapter, name)]
    return list(dict.fromkeys([*keys, *QUIRK_KEYS]))


def from_transformers(model_type: str) -> dict[str, Any]:
    """The family's constant defaults from its transformers config class: each key archcast reads that the
    default config holds (the rotary ones under rope_parameters, where transformers 5 keeps them), less those that
    change when the hidden size, the depth or the head count does (derived, not constant)."""
    from transformers import CONFIG_MAPPING

    from features.families import REGISTRY

    cls, adapter = CONFIG_MAPPING[model_type], REGISTRY[model_type]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        base = cls().to_dict()
        # the three facts others follow, as the config class stores them (GPT2Config: n_embd, n_layer, n_head)
        leaders = [next((k for k in getattr(adapter, name) if isinstance(base.get(k), int)), None)
                   for name in ("hidden", "layers", "heads")]  # fmt: skip
        moved = [(key, cls(**{key: base[key] * 2}).to_dict()) for key in leaders if key is not None]
    rope = base.get("rope_parameters") or {}  # transformers 5 keeps the rotary settings here
    out: dict[str, Any] = {}
    for key in read_keys(model_type):
        top = base.get(key) is not None
        value = base.get(key) if top else rope.get(key)
        if value is None or isinstance(value, dict):
            continue
        if any((m.get(key) if top else (m.get("rope_parameters") or {}).get(key)) != value
               for leader, m in moved if leader != key):  # fmt: skip
            continue  # derived from the hidden size, depth or head count
        if top:
            out[key] = value
        else:  # below a config's own rope_parameters, as there
            out.setdefault("rope_parameters", {})[key] = value
    return out


def write() -> Path:
    from features.families import SUPPORTED_MODEL_TYPES

    TABLE.write_text(json.dumps({t: from_transformers(t) for t in SUPPORTED_MODEL_TYPES}, indent=1, sort_keys=True)
                     + "\n")  # fmt: skip
    table.cache_clear()
    return TABLE


if __name__ == "__main__":
    print(f"wrote {write()}")
