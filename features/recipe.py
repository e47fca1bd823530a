"""A training recipe as a request gives it: how the model will be trained, which decides when and how strongly
the mechanism forms as much as the architecture does. Every field is optional and defaults to the recipe the
served model was trained on; an unknown key or a bad value is an ArchcastError naming `recipe.<key>`."""

from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from contracts import ArchcastError

SCHEDULES = ("cosine", "wsd", "constant", "linear")  # the lr after warm-up: cosine, warmup-stable-decay, …


@dataclass(frozen=True)
class Recipe:
    steps: int  # the run's length in optimizer steps (a cosine schedule decays over it)
    batch_size: int  # sequences per step
    seq_len: int  # tokens per sequence
    lr: float  # peak learning rate
    weight_decay: float
    bos: bool  # every sequence starts with a fixed first token
    warmup: int  # linear warm-up steps
    schedule: str  # one of SCHEDULES

    @property
    def tokens_per_step(self) -> int:
        return self.batch_size * self.seq_len

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "tokens_per_step": self.tokens_per_step}


# field → (kind, smallest, largest): integers and floats within bounds that no real run leaves
LIMITS: dict[str, tuple[str, float, float]] = {
    "steps": ("int", 1, 1e9),
    "batch_size": ("int", 1, 1e8),
    "seq_len": ("int", 1, 1e8),
    "lr": ("float", 1e-9, 10.0),
    "weight_decay": ("float", 0.0, 10.0),
    "warmup": ("int", 0, 1e9),
}
FIELDS = tuple(Recipe.__dataclass_fields__)


def reference_recipe(manifest_recipe: dict[str, Any]) -> Recipe:
    """The recipe a model was trained on, from its manifest's `recipe` (the zoo's recipe of its runs)."""
    return Recipe(
        steps=int(manifest_recipe["steps"]),
        batch_size=int(manifest_recipe["batch_size"]),
        seq_len=int(manifest_recipe["seq_len"]),
        lr=float(manifest_recipe["lr"]),
        weight_decay=float(manifest_recipe.get("weight_decay", 0.0)),
        bos=bool(manifest_recipe.get("bos", True)),
        warmup=int(manifest_recipe.get("warmup", 0)),
        schedule="cosine",  # every zoo recipe decays by cosine over its run's length
    )


def read_recipe(given: Any, reference: Recipe) -> Recipe:
    """A request's recipe (a dict of some of FIELDS, or None) over the reference's defaults, checked."""
    if given is None:
        return reference
    if not isinstance(given, dict):
        raise ArchcastError("recipe", f"expected an object with any of {', '.join(FIELDS)}")
    unknown = [k for k in given if k not in FIELDS]
    if unknown:
        raise ArchcastError(f"recipe.{unknown[0]}", f"unknown recipe key; known: {', '.join(FIELDS)}")
    values = asdict(reference)
    for key, value in given.items():
        values[key] = _checked(key, value)
    if values["warmup"] > values["steps"]:
        raise ArchcastError("recipe.warmup", f"{values['warmup']} warm-up steps exceed the run's {values['steps']}")
    return Recipe(**values)


def _checked(key: str, value: Any) -> Any:
    field = f"recipe.{key}"
    if key == "bos":
        if not isinstance(value, bool):
            raise ArchcastError(field, f"expected true or false, got {str(value)[:24]}")
        return value
    if key == "schedule":
        if value not in SCHEDULES:
            raise ArchcastError(field, f"expected one of {', '.join(SCHEDULES)}, got {str(value)[:24]}")
        return value
    kind, low, high = LIMITS[key]
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ArchcastError(field, f"expected a number, got {str(value)[:24]}")
    if kind == "int" and not (isinstance(value, numbers.Integral) or float(value).is_integer()):
        raise ArchcastError(field, f"expected a whole number, got {value}")
    if not (isinstance(value, numbers.Integral) or math.isfinite(value)) or not low <= value <= high:
        raise ArchcastError(field, f"must lie in [{low:g}, {high:g}], got {str(value)[:24]}")
    return int(value) if kind == "int" else float(value)


# The recipe as the predictor reads it, beside a layer's architecture features, where the runs it learnt from
# were trained with more than one recipe: logs where a factor matters more than a difference. The schedule is
# not among them: every run so far decays by cosine over its own length.
RECIPE_FEATURES = (
    "recipe_log_lr",
    "recipe_weight_decay",
    "recipe_bos",
    "recipe_log_tokens_per_step",
    "recipe_log_steps",  # the run's length: a cosine schedule is read against it
    "recipe_warmup_frac",
)


def recipe_vector(recipe: Recipe) -> np.ndarray:
    """(len(RECIPE_FEATURES),) float32: what the regressors read of a recipe."""
    return np.array([math.log(recipe.lr), recipe.weight_decay, float(recipe.bos), math.log(recipe.tokens_per_step),
                     math.log(recipe.steps), recipe.warmup / recipe.steps], dtype=np.float32)  # fmt: skip
