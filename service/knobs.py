"""The knobs the what-if page edits, for one config: which config key each one writes and its current value.

The keys come from features/ (each family's adapter, and the `archcast` key for the zoo's architecture changes)
and the values from `read_spec`, so the page never guesses a family's spelling or defaults. The page only
writes keys; /predict stays the one judge of whether the edited config is valid.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from features import ZOO_KEY, read_spec
from features import values as config_values
from features.families import REGISTRY

NORMS = ("rmsnorm", "layernorm", "dyt")


@dataclass(frozen=True)
class Knob:
    name: str  # the page's id for it
    label: str
    kind: str  # int | float | bool | choice
    field: str  # the ArchSpec field that holds its value
    adapter_keys: str | None = None  # the Adapter attribute listing the family's keys; None: under `archcast`


KNOBS = (
    Knob("layers", "Layers", "int", "layers", "layers"),
    Knob("width", "Width (hidden size)", "int", "d", "hidden"),
    Knob("heads", "Attention heads", "int", "heads", "heads"),
    Knob("kv_heads", "Key/value heads", "int", "kv_heads", "kv_heads"),
    Knob("ffn", "FFN size", "int", "d_ff", "ffn"),
    Knob("glu", "Gated MLP (GLU)", "bool", "glu"),
    Knob("norm", "Norm", "choice", "norm"),
    Knob("rotary_fraction", "Rotary fraction", "float", "rotary_fraction", "rotary_fraction"),
    Knob("rope_theta", "Rotary base", "float", "rope_theta", "rope_theta"),
    Knob("parallel_residual", "Parallel residual", "bool", "parallel_residual", "parallel_residual"),
    Knob("attn_bias", "Attention biases", "bool", "attn_bias", "attn_bias"),
    Knob("mlp_bias", "MLP biases", "bool", "mlp_bias", "mlp_bias"),
    Knob("tied", "Tied embeddings", "bool", "tied", "tied"),
    Knob("kv_bias", "Attention KV bias", "bool", "kv_bias"),
    Knob("tvr", "TVR (weight rescaling)", "bool", "tvr"),
)


BY_NAME = {knob.name: knob for knob in KNOBS}
# Defaults that follow another knob while the config leaves them unset: the page updates them without asking.
FOLLOWS = {
    "ffn": lambda adapter: (BY_NAME["width"], adapter.ffn_default_mult),
    "kv_heads": lambda adapter: (BY_NAME["heads"], 1),
}


def knobs(config: Mapping[str, Any]) -> dict[str, Any]:
    """The page's knobs for a config; raises FeatureError (naming the key) when the config is invalid."""
    spec = read_spec(config)
    adapter = REGISTRY[spec.model_type]
    changes = config.get(ZOO_KEY) or {}
    out = []
    for knob in KNOBS:
        entry: dict[str, Any] = {"name": knob.name, "label": knob.label, "kind": knob.kind}
        entry["value"] = getattr(spec, knob.field)
        if knob.adapter_keys is None:
            entry["key"] = f"{ZOO_KEY}.{knob.name}"
            entry["set"] = changes.get(knob.name) is not None
        else:
            keys = getattr(adapter, knob.adapter_keys)
            present, _ = config_values.lookup(config, keys)
            entry["key"] = present or (keys[0] if keys else None)  # the config's own spelling, else the family's
            entry["set"] = present is not None
            if not keys:
                entry["note"] = f"fixed in {spec.model_type}: its configs have no key for it"
        if knob.name in ("rotary_fraction", "rope_theta") and spec.position != "rotary":
            entry["key"], entry["note"] = None, f"{spec.model_type} uses {spec.position} positions"
        if knob.kind == "choice":
            entry["options"] = list(NORMS)
        follows = FOLLOWS.get(knob.name)
        if follows and not entry["set"]:
            leader, times = follows(adapter)
            if entry["value"] == round(times * getattr(spec, leader.field)):  # not where a quirk decides it
                entry["follows"] = {"knob": leader.name, "times": times}
        out.append(entry)
    return {"model_type": spec.model_type, "position": spec.position, "n_params": spec.n_params, "knobs": out}
