"""Fits + architecture features → the regression table: one row per (model, layer), grouped by design (the
architecture as the features see it, shared by seed replicates)."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from emergence.curve import TRANSFORM_FORMS, curve_rows, to_log_value
from emergence.mechanism import MECHANISM, MECHANISM_TARGETS
from features import FEATURES, ArchcastError, featurize, read_spec
from features.recipe import RECIPE_FEATURES, Recipe, recipe_vector
from features.recipe import reference_recipe as read_run_recipe
from training.design import design_key
from training.fit import without_duplicates

CURVE = "curve"  # the target of a metric's curve regressor: log(metric) at (features, step)


@dataclass(frozen=True)
class MeasuredData:
    """The measured series a predictor learns from, wherever they are kept."""

    metrics: pd.DataFrame
    digest: str  # of the table's contents: the resume key of everything fitted on it
    configs_dirs: tuple[Path, ...]  # <model_id>.json for every model, in one of these folders
    provenance: Path  # the file or folder that records how the series were measured (the first source's)
    recipe: dict  # the reference recipe (the most runs'): what a predicted step means by default
    recipes: dict[str, Recipe] = field(default_factory=dict)  # model_id → its recipe, where more than one differ
    reference: Recipe | None = None  # `recipe` as the regressors read it, where recipes differ


def stated_recipe(recipe: dict) -> dict:
    """The recipe as a response states it: the schedule and the tokens a step sees."""
    keys = ("steps", "batch_size", "seq_len", "lr", "min_lr_frac", "warmup", "weight_decay", "betas", "bos")
    out = {k: recipe[k] for k in keys if k in recipe}
    out["tokens_per_step"] = int(recipe["batch_size"] * recipe["seq_len"])
    out["schedule"] = (f"AdamW, linear warm-up over {recipe.get('warmup')} steps to lr {recipe.get('lr')}, then cosine "
                       f"to {recipe.get('min_lr_frac')} of it at step {recipe.get('steps')}")  # fmt: skip
    return out


def _recipe_key(recipe: dict) -> str:
    return json.dumps({k: v for k, v in recipe.items() if k != "seed"}, sort_keys=True)


def _reference(recipes: dict[str, dict]) -> dict:
    """The recipe most runs share (seeds aside; a tie goes to the one first by run name): the time axis a
    request without a recipe is answered on."""
    counts = Counter(_recipe_key(recipes[name]) for name in sorted(recipes))
    return json.loads(counts.most_common(1)[0][0]) if counts else {}


class _Source(NamedTuple):
    """What one metrics file or tier folder holds."""

    metrics: pd.DataFrame
    provenance: Path
    configs_dir: Path
    recipes: dict[str, dict]  # model_id → its run's recipe (a zoo spec's)


def _one_source(source: Path) -> _Source:
    if source.is_dir():
        files = sorted((source / "runs").glob("*.parquet"))
        if not files:
            raise ArchcastError(str(source), "neither a metrics.parquet file nor a tier folder with runs/*.parquet")
        metrics = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
        runs = {
            f.stem: json.loads(f.with_suffix(".json").read_text()) for f in files if f.with_suffix(".json").exists()
        }
        return _Source(metrics, source / "runs", source / "configs", {n: r["spec"]["recipe"] for n, r in runs.items()})
    if source.is_file():
        metrics = pd.read_parquet(source)
        provenance = source.parent / "PROVENANCE.json"
        record = json.loads(provenance.read_text()) if provenance.exists() else {}
        recipes = {m: record["recipe"] for m in metrics["model_id"].unique()} if "recipe" in record else {}
        return _Source(metrics, provenance, source.parent / "configs", recipes)
    raise ArchcastError(str(source), "no such metrics file or tier folder")


def load_measured(sources: Path | Sequence[Path], configs: Path | None = None) -> MeasuredData:
    """Metrics.parquet files (configs in the sibling folder configs/) or zoo tiers committed run by run
    (data/zoo/<tier>: runs/<run>.parquet + runs/<run>.json provenance, configs/), one or several. Where the runs
    were trained with more than one recipe, each model's recipe is kept (the predictor then reads it)."""
    sources = [Path(sources)] if isinstance(sources, (str, Path)) else [Path(s) for s in sources]
    if not sources:
        raise ArchcastError("metrics", "no metrics file or tier folder given")
    parts = [_one_source(s) for s in sources]
    metrics = pd.concat([p.metrics for p in parts], ignore_index=True)
    twice = metrics.drop_duplicates(["model_id", "step", "layer"]).shape[0] != len(metrics)
    if len(parts) > 1 and twice:
        raise ArchcastError("metrics", "a model is measured in more than one of the sources given")
    runs = {name: recipe for p in parts for name, recipe in p.recipes.items()}
    digest = hashlib.sha256(pd.util.hash_pandas_object(metrics, index=False).values.tobytes()).hexdigest()
    reference = _reference(runs)
    several = len({_recipe_key(r) for r in runs.values()}) > 1
    if several and set(metrics["model_id"]) - set(runs):
        missing = sorted(set(metrics["model_id"]) - set(runs))[:3]
        raise ArchcastError("metrics", f"models {missing} record no training recipe, and the others differ in theirs")
    recipes = {name: read_run_recipe(r) for name, r in runs.items()} if several else {}
    dirs = (Path(configs),) if configs else tuple(p.configs_dir for p in parts)
    stated = stated_recipe(reference) if reference else {}
    return MeasuredData(metrics, digest, dirs, parts[0].provenance, stated, recipes,
                        read_run_recipe(reference) if several else None)  # fmt: skip


def target_name(metric: str, param: str) -> str:
    return f"{metric}__{param}"


def load_configs(folders: Path | Sequence[Path]) -> dict[str, dict]:
    """model_id → config dict, from <folder>/<model_id>.json (ids with '/' use '__' in file names)."""
    configs = {}
    for folder in [folders] if isinstance(folders, (str, Path)) else folders:
        found = sorted(Path(folder).glob("*.json"))
        if not found:
            raise ArchcastError(str(folder), "no config .json files in this folder")
        for path in found:
            configs[path.stem.replace("__", "/")] = json.loads(path.read_text())
    return configs


DESIGN = "design"  # the regression table's column that leave-architecture-out CV groups by
REFERENCE_ROW = "reference_recipe"  # … and the one that marks the models trained with the reference recipe


def design_keys(table: pd.DataFrame) -> pd.Series:
    """Per row, its model's design (training.design): seed replicates (and any models the features cannot tell
    apart) share one, so that grouped CV never has one on each side: a held-out architecture whose replicate
    was trained on is not held out."""
    digests = {model_id: design_key(rows) for model_id, rows in table.groupby("model_id", sort=False)}
    return table["model_id"].map(digests)


MEASURED_FLAG = "has_mechanism"  # a column of the regression table (no "__": not a target)


def build(
    model_ids,
    configs: dict[str, dict],
    mechanism: pd.DataFrame | None = None,
    recipes: dict[str, Recipe] | None = None,
    reference: Recipe | None = None,
) -> pd.DataFrame:
    """One row per (model, layer): model_id, layer, model_type, design (design_keys), FEATURES…, then the
    mechanism targets (training.mechanism, transformed) and the measured flag MEASURED_FLAG where `mechanism` gives
    them (NaN where undefined: no onset without a mechanism). Given `recipes` (model_id → its recipe) and the
    `reference` recipe (load_measured's choice), the RECIPE_FEATURES follow FEATURES, the regressors then read how
    each model was trained, and REFERENCE_ROW marks the models trained with the reference."""
    model_ids = sorted(set(model_ids))
    unknown = sorted(set(model_ids) - set(configs))
    if unknown:
        raise ArchcastError("configs", f"no config for models {unknown}")
    if recipes and reference is None:
        raise ValueError("a table of several recipes needs the reference recipe (MeasuredData.reference)")
    frames = []
    for model_id in model_ids:
        rows = featurize(configs[model_id]).reset_index(drop=True)
        rows.insert(0, "model_type", read_spec(configs[model_id]).model_type)
        rows.insert(0, "layer", np.arange(1, len(rows) + 1))
        rows.insert(0, "model_id", model_id)
        if recipes:
            rows[list(RECIPE_FEATURES)] = recipe_vector(recipes[model_id])
            rows[REFERENCE_ROW] = recipes[model_id] == reference
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


def feature_columns(table: pd.DataFrame) -> list[str]:
    """What the regressors read of a row: FEATURES, then the RECIPE_FEATURES where the table has them."""
    return [*FEATURES, *(RECIPE_FEATURES if RECIPE_FEATURES[0] in table.columns else ())]


def feature_array(table: pd.DataFrame) -> np.ndarray:
    return table[feature_columns(table)].to_numpy(dtype=np.float32)


def reference_recipe_rows(table: pd.DataFrame) -> pd.DataFrame:
    """The rows of the models trained with the reference recipe (all rows where the table has no recipes): what
    compares designs along one axis must not mix recipes. The reference is chosen once, by load_measured."""
    return table.loc[table[REFERENCE_ROW]] if REFERENCE_ROW in table.columns else table


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
