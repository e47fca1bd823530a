"""Fits + architecture features → the regression table: one row per (model, layer), grouped by design (the
architecture as the features see it, shared by seed replicates)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from emergence.curve import TRANSFORM_FORMS, curve_rows, to_log_value
from emergence.mechanism import MECHANISM, MECHANISM_TARGETS
from features import FEATURES, ArchcastError, featurize, read_spec
from training.design import design_key
from training.fit import without_duplicates

CURVE = "curve"  # the target of a metric's curve regressor: log(metric) at (features, step)


@dataclass(frozen=True)
class MeasuredData:
    """The measured series a predictor learns from, wherever they are kept."""

    metrics: pd.DataFrame
    digest: str  # of the table's contents: the resume key of everything fitted on it
    configs_dir: Path  # <model_id>.json for every model
    provenance: Path  # the file or folder that records how the series were measured
    recipe: dict  # the training recipe every series shares: what a predicted step means


def reference_recipe(recipe: dict) -> dict:
    """The recipe as a response states it: the schedule and the tokens a step sees."""
    keys = ("steps", "batch_size", "seq_len", "lr", "min_lr_frac", "warmup", "weight_decay", "betas", "bos")
    out = {k: recipe[k] for k in keys if k in recipe}
    out["tokens_per_step"] = int(recipe["batch_size"] * recipe["seq_len"])
    out["schedule"] = (f"AdamW, linear warm-up over {recipe.get('warmup')} steps to lr {recipe.get('lr')}, then cosine "
                       f"to {recipe.get('min_lr_frac')} of it at step {recipe.get('steps')}")  # fmt: skip
    return out


def _shared_recipe(recipes: dict[str, dict]) -> dict:
    """The one recipe of a set of runs (seeds aside); a mixture has no single time axis and is refused."""
    distinct = {json.dumps({k: v for k, v in r.items() if k != "seed"}, sort_keys=True) for r in recipes.values()}
    if len(distinct) > 1:
        raise ArchcastError("metrics", f"the runs were trained with {len(distinct)} different recipes; a predictor "
                            "learns one time axis: train on one tier at a time")  # fmt: skip
    return reference_recipe(json.loads(distinct.pop())) if distinct else {}


def load_measured(source: Path, configs: Path | None = None) -> MeasuredData:
    """A metrics.parquet file (its configs in the sibling folder configs/), or a zoo tier committed run by
    run (data/zoo/<tier>: runs/<run>.parquet + runs/<run>.json provenance, configs/)."""
    source = Path(source)
    if source.is_dir():
        files = sorted((source / "runs").glob("*.parquet"))
        if not files:
            raise ArchcastError(str(source), "neither a metrics.parquet file nor a tier folder with runs/*.parquet")
        metrics = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
        provenance = source / "runs"
        default_configs = source / "configs"
        runs = {
            f.stem: json.loads(f.with_suffix(".json").read_text()) for f in files if f.with_suffix(".json").exists()
        }
        recipe = _shared_recipe({name: run["spec"]["recipe"] for name, run in runs.items()})
    elif source.is_file():
        metrics = pd.read_parquet(source)
        provenance = source.parent / "PROVENANCE.json"
        default_configs = source.parent / "configs"
        record = json.loads(provenance.read_text()) if provenance.exists() else {}
        recipe = reference_recipe(record["recipe"]) if "recipe" in record else {}
    else:
        raise ArchcastError(str(source), "no such metrics file or tier folder")
    digest = hashlib.sha256(pd.util.hash_pandas_object(metrics, index=False).values.tobytes()).hexdigest()
    return MeasuredData(metrics, digest, Path(configs) if configs else default_configs, provenance, recipe)


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


DESIGN = "design"  # the regression table's column that leave-architecture-out CV groups by


def design_keys(table: pd.DataFrame) -> pd.Series:
    """Per row, its model's design (training.design): seed replicates (and any models the features cannot tell
    apart) share one, so that grouped CV never has one on each side: a held-out architecture whose replicate
    was trained on is not held out."""
    digests = {model_id: design_key(rows) for model_id, rows in table.groupby("model_id", sort=False)}
    return table["model_id"].map(digests)


MEASURED_FLAG = "has_mechanism"  # a column of the regression table (no "__": not a target)


def build(model_ids, configs: dict[str, dict], mechanism: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per (model, layer): model_id, layer, model_type, design (design_keys), FEATURES…, then the
    mechanism targets (training.mechanism, transformed) and the measured flag MEASURED_FLAG where `mechanism` gives
    them (NaN where undefined: no onset without a mechanism)."""
    model_ids = sorted(set(model_ids))
    unknown = sorted(set(model_ids) - set(configs))
    if unknown:
        raise ArchcastError("configs", f"no config for models {unknown}")
    frames = []
    for model_id in model_ids:
        rows = featurize(configs[model_id]).reset_index(drop=True)
        rows.insert(0, "model_type", read_spec(configs[model_id]).model_type)
        rows.insert(0, "layer", np.arange(1, len(rows) + 1))
        rows.insert(0, "model_id", model_id)
        frames.append(rows)
    table = pd.concat(frames, ignore_index=True)
    table.insert(3, DESIGN, design_keys(table))
    if mechanism is not None and len(mechanism):
        keyed = mechanism.set_index(["model_id", "layer"])
        index = table.set_index(["model_id", "layer"]).index
        for name, transform in MECHANISM_TARGETS.items():
            values = TRANSFORM_FORMS[transform].forward(keyed[name].to_numpy(np.float64))
            table[target_name(MECHANISM, name)] = index.map(pd.Series(values, index=keyed.index)).astype(float)
        # the measured mechanism-or-not: what the predicted margin's call is scored on, never a target itself
        table[MEASURED_FLAG] = index.map(keyed["has_mechanism"]).astype(float)
    return table


def curve_target(metric: str) -> str:
    return target_name(metric, CURVE)


def target_parts(name: str) -> tuple[str, str, str]:
    """(metric, what is predicted, transform) of a target name."""
    metric, param = name.split("__", 1)
    if param == CURVE:
        return metric, param, "log"
    return metric, param, MECHANISM_TARGETS[param]


MIN_MODELS = 5  # a target measured on fewer models than this cannot be cross-validated by model: not learned


def layer_targets(table: pd.DataFrame) -> list[str]:
    """The per-layer targets a regression table holds (the mechanism's) that enough models measure."""
    return [c for c in table.columns if "__" in c and table.loc[table[c].notna(), "model_id"].nunique() >= MIN_MODELS]


def measured_by_step(table: pd.DataFrame, metrics: pd.DataFrame, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """(steps (T,), values (len(table), T)): each layer of `table`'s measured series, NaN where unmeasured
    (units flagged as duplicates left out)."""
    by_step = without_duplicates(metrics).pivot_table(
        index=["model_id", "layer"], columns="step", values=metric, aggfunc="first"
    )
    by_step = by_step.reindex(pd.MultiIndex.from_frame(table[["model_id", "layer"]]))
    return by_step.columns.to_numpy(np.float64), by_step.to_numpy(np.float64)


def curve_data(table: pd.DataFrame, metrics: pd.DataFrame, metric: str) -> TargetData:
    """Every measured checkpoint of every layer in `table`: (features, log1p step) → log(metric)."""
    steps, values = measured_by_step(table, metrics, metric)  # (T,), (L_all, T)
    X = curve_rows(feature_array(table), steps)
    known = np.isfinite(values).reshape(-1)
    groups = np.repeat(table[DESIGN].to_numpy(), len(steps))
    return TargetData(X[known], to_log_value(values.reshape(-1)[known]), groups[known])


def data_hash(table: pd.DataFrame) -> str:
    return hashlib.sha256(pd.util.hash_pandas_object(table, index=False).values.tobytes()).hexdigest()


def feature_array(table: pd.DataFrame) -> np.ndarray:
    return table[list(FEATURES)].to_numpy(dtype=np.float32)


@dataclass(frozen=True)
class TargetData:
    """One regression target's training data: the layers where it is known."""

    X: np.ndarray  # (n, len(FEATURES)) float32
    y: np.ndarray  # (n,)
    groups: np.ndarray  # (n,) design keys (design_keys): the grouping of leave-architecture-out CV


def target_data(table: pd.DataFrame, target: str) -> TargetData:
    rows = table[target].notna().to_numpy()
    known = table.loc[rows]
    return TargetData(feature_array(known), known[target].to_numpy(), known[DESIGN].to_numpy())
