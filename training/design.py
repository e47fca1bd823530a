"""What a design is, defined once: what the predictor sees of a run (its model_type and feature rows), and for
the data cards also its recipe less the seed. Runs that differ only in name and seed are one design; so are runs
the features cannot tell apart. Grouped CV holds designs out whole (training.dataset), the data cards pool seed
noise within them (training.tier_card), and the scale term compares designs that differ along one axis only
(training.scale, with that axis's features ignored)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection

import pandas as pd

from features import FEATURES, featurize, read_spec


def design_key(rows: pd.DataFrame, recipe: dict | None = None, ignoring: Collection[str] = ()) -> str:
    """rows: one run's feature rows with its model_type (one row per layer). `recipe` (a run's spec recipe) adds
    the recipe less the seed. `ignoring` leaves features out; the rows left are then taken as a set, so that
    runs of other depths meet where every feature that moves with depth is ignored."""
    part = rows[["model_type", *(f for f in FEATURES if f not in ignoring)]]
    if ignoring:
        part = part.drop_duplicates().sort_values(list(part.columns))
    digest = hashlib.sha256(pd.util.hash_pandas_object(part, index=False).values.tobytes())
    if recipe is not None:
        digest.update(json.dumps({k: v for k, v in recipe.items() if k != "seed"}, sort_keys=True).encode())
    return digest.hexdigest()[:12]


def config_rows(config: dict) -> pd.DataFrame:
    """A config's feature rows with its model_type, as design_key reads them."""
    rows = featurize(config).reset_index(drop=True)
    rows.insert(0, "model_type", read_spec(config).model_type)
    return rows
