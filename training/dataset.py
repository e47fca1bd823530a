"""Fits + architecture features → the regression table: one row per (model, layer), grouped by model."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from features import FEATURES, ArchcastError, featurize, read_spec
from features.curve import PARAMS, to_target
from training.solvers import USABLE_R2

MIN_FIT_R2 = USABLE_R2  # a layer whose fit explains less than this is not a target to learn


def target_name(metric: str, param: str) -> str:
    return f"{metric}__{param}"


def load_configs(folder: Path) -> dict[str, dict]:
    """model_id → config dict, from folder/<model_id>.json (ids with '/' use '__' in file names)."""
    configs = {}
    for path in sorted(Path(folder).glob("*.json")):
        configs[path.stem.replace("__", "/")] = json.loads(path.read_text())
    if not configs:
        raise ArchcastError(str(folder), "no config .json files in this folder")
    return configs


def build(fits: pd.DataFrame, configs: dict[str, dict], metrics=None) -> pd.DataFrame:
    """Columns: model_id, layer, model_type, FEATURES…, then one transformed target per (metric, param).

    A target is NaN where that layer's fit failed, explained less than MIN_FIT_R2, or was atypical of
    its population (training.fit).
    """
    metrics = sorted(fits["metric"].unique()) if metrics is None else list(metrics)
    unknown = sorted(set(fits["model_id"]) - set(configs))
    if unknown:
        raise ArchcastError("configs", f"no config for models {unknown}")
    frames = []
    for model_id in sorted(set(fits["model_id"])):
        rows = featurize(configs[model_id]).reset_index(drop=True)
        rows.insert(0, "model_type", read_spec(configs[model_id]).model_type)
        rows.insert(0, "layer", np.arange(1, len(rows) + 1))
        rows.insert(0, "model_id", model_id)
        frames.append(rows)
    table = pd.concat(frames, ignore_index=True)
    for metric in metrics:
        sub = fits[fits["metric"] == metric].set_index(["model_id", "layer"])
        good = sub["r2"].ge(MIN_FIT_R2) & sub[list(PARAMS)].notna().all(axis=1)
        if "atypical" in sub:  # fitted only under a weakened pull: outlying parameters, kept out of the targets
            good &= ~sub["atypical"].fillna(False).astype(bool)
        for param in PARAMS:
            values = pd.Series(np.where(good, to_target(param, sub[param].where(good)), np.nan), index=sub.index)
            table[target_name(metric, param)] = table.set_index(["model_id", "layer"]).index.map(values).astype(float)
    return table


def data_hash(table: pd.DataFrame) -> str:
    return hashlib.sha256(pd.util.hash_pandas_object(table, index=False).values.tobytes()).hexdigest()


def feature_array(table: pd.DataFrame) -> np.ndarray:
    return table[list(FEATURES)].to_numpy(dtype=np.float32)


@dataclass(frozen=True)
class TargetData:
    """One regression target's training data: the layers where it is known."""

    X: np.ndarray  # (n, len(FEATURES)) float32
    y: np.ndarray  # (n,)
    groups: np.ndarray  # (n,) model ids: the grouping of leave-architecture-out CV


def target_data(table: pd.DataFrame, target: str) -> TargetData:
    rows = table[target].notna().to_numpy()
    known = table.loc[rows]
    return TargetData(feature_array(known), known[target].to_numpy(), known["model_id"].to_numpy())
