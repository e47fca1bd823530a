"""Export tuned LightGBM models to ONNX with a manifest and model card, as a version folder of the model
store (modelstore: layout, pointer, verification and promotion live there)."""

from __future__ import annotations

import platform
import warnings
from pathlib import Path

import lightgbm
import numpy as np
import onnx
import onnxmltools
import onnxruntime
import optuna
import pandas as pd
import sklearn
from onnxmltools.convert.common.data_types import FloatTensorType

from features import FEATURES, SCHEMA_HASH
from modelstore import CARD, Manifest, TargetEntry, reference_rows, schema_block, sha256_file
from training.dataset import CURVE, TargetData, feature_columns, target_parts
from training.model_card import model_card
from training.tune import lgbm

PARITY_TOLERANCE = 1e-4  # relative to max(1, |LightGBM prediction|)


def to_onnx(model: lightgbm.LGBMRegressor, path: Path, n_inputs: int = len(FEATURES)) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        proto = onnxmltools.convert_lightgbm(
            model, initial_types=[("features", FloatTensorType([None, n_inputs]))], target_opset=15
        )
    proto.doc_string = f"archcast {path.stem}; feature schema {SCHEMA_HASH}"
    proto.graph.name = path.stem  # the converter names the graph with a random uuid: the same model, other bytes
    onnx.save_model(proto, str(path))


def onnx_predict(path: Path, X: np.ndarray) -> np.ndarray:
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"features": X.astype(np.float32)})[0].reshape(-1)


def check_parity(model, path: Path, X: np.ndarray) -> float:
    """Largest relative difference between ONNX and LightGBM on X; raises past the tolerance."""
    expected = model.predict(X)
    got = onnx_predict(path, X)
    worst = float(np.max(np.abs(got - expected) / np.maximum(1.0, np.abs(expected)))) if len(X) else 0.0
    if worst > PARITY_TOLERANCE:
        raise ValueError(f"{path.name}: ONNX differs from LightGBM by {worst:.2e} (> {PARITY_TOLERANCE})")
    return worst


def library_versions() -> dict:
    return {
        "python": platform.python_version(),
        "lightgbm": lightgbm.__version__,
        "onnx": onnx.__version__,
        "onnxmltools": onnxmltools.__version__,
        "onnxruntime": onnxruntime.__version__,
        "optuna": optuna.__version__,
        "scikit-learn": sklearn.__version__,
        "pandas": pd.__version__,
    }


def reference_configs(table: pd.DataFrame, configs: dict[str, dict]) -> dict[str, dict]:
    """One training config per family (the first by name): the manifest keeps their feature rows."""
    first = table.drop_duplicates("model_type").sort_values("model_type")
    return {row.model_id: configs[row.model_id] for row in first.itertuples() if row.model_id in configs}


def write_version(
    folder: Path,
    table: pd.DataFrame,
    target_rows: dict[str, TargetData],
    best: dict[str, dict],
    metrics: list[str],
    info: dict,
    seed: int = 0,
    references: dict[str, dict] | None = None,
) -> Manifest:
    """Train each target on all its rows, export, check parity, write manifest and card. A curve regressor reads
    the features plus the step (emergence.curve.curve_rows); the others read the features."""
    folder.mkdir(parents=True, exist_ok=True)
    targets = []
    for name, data in target_rows.items():
        metric, param, transform = target_parts(name)
        model = lgbm(best[name], seed).fit(data.X, data.y)
        path = folder / f"{name}.onnx"
        to_onnx(model, path, data.X.shape[1])
        worst = check_parity(model, path, data.X)
        targets.append(TargetEntry(
            name=name, metric=metric, param=param, transform=transform, file=path.name,
            sha256=sha256_file(path), rows=len(data.y), params=best[name], parity_max_rel_error=worst,
            kind="curve" if param == CURVE else "layer",
        ))  # fmt: skip
    info = dict(info)
    recipe_columns = feature_columns(table)[len(FEATURES) :]
    if not recipe_columns:
        info.pop("recipe_ranges", None)
    manifest = Manifest(
        version=folder.name,
        schema=schema_block(),
        targets=targets,
        metrics=list(metrics),
        domain={
            "feature_ranges": {f: [float(table[f].min()), float(table[f].max())] for f in FEATURES},
            "model_types": sorted(table["model_type"].unique()),
            "models": int(table["model_id"].nunique()),
            "layers": len(table),
            # where the runs' recipes differ, the regressors read these after FEATURES (features.recipe)
            **(
                {"recipe_features": recipe_columns, "recipe_ranges": info.pop("recipe_ranges", {})}
                if recipe_columns
                else {}
            ),
        },
        default_steps=list(info.pop("default_steps", [])),
        projection_steps=list(info.pop("projection_steps", [])),
        recipe=info.pop("recipe", {}),
        shapes=info.pop("shapes", {}),
        scale=info.pop("scale", {}),
        intervals=info.pop("intervals", {}),
        reference_rows=reference_rows(references or {}),
        info={"libraries": library_versions(), "seed": seed, **info},
    )
    manifest.write(folder)
    (folder / CARD).write_text(model_card(manifest.to_json()))
    return manifest
