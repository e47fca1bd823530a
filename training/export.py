"""Export tuned LightGBM models to ONNX, with a manifest and model card; promote atomically.

Layout: models/<version>/{<target>.onnx, manifest.json, MODEL_CARD.md} and the
pointer file models/CURRENT naming the served version (switched last).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
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

from features import FEATURES, SCHEMA_HASH, SCHEMA_VERSION
from features.curve import PARAMS, PUBLISHED_MEAN_R2, TRANSFORMS
from training.dataset import feature_array, target_name
from training.tune import lgbm

POINTER = "CURRENT"
PARITY_TOLERANCE = 1e-4  # relative to max(1, |LightGBM prediction|)


def sha256_file(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def to_onnx(model: lightgbm.LGBMRegressor, path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        proto = onnxmltools.convert_lightgbm(
            model, initial_types=[("features", FloatTensorType([None, len(FEATURES)]))], target_opset=15
        )
    proto.doc_string = f"archcast {path.stem}; feature schema {SCHEMA_HASH}"
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


def write_version(
    folder: Path, table: pd.DataFrame, best: dict[str, dict], metrics: list[str], info: dict, seed: int = 0
) -> dict:
    """Train each target on all its rows, export, check parity, write manifest and card. Returns the manifest."""
    folder.mkdir(parents=True, exist_ok=True)
    X_all = feature_array(table)
    targets = []
    for metric in metrics:
        for param in PARAMS:
            name = target_name(metric, param)
            rows = table[name].notna().to_numpy()
            model = lgbm(best[name], seed).fit(X_all[rows], table.loc[rows, name].to_numpy())
            path = folder / f"{name}.onnx"
            to_onnx(model, path)
            worst = check_parity(model, path, X_all[rows])
            targets.append(
                {
                    "name": name,
                    "metric": metric,
                    "param": param,
                    "transform": TRANSFORMS[param],
                    "file": path.name,
                    "sha256": sha256_file(path),
                    "rows": int(rows.sum()),
                    "params": best[name],
                    "parity_max_rel_error": worst,
                }
            )
    ranges = {f: [float(table[f].min()), float(table[f].max())] for f in FEATURES}
    manifest = {
        "version": folder.name,
        "schema": {"version": SCHEMA_VERSION, "hash": SCHEMA_HASH, "features": list(FEATURES)},
        "targets": targets,
        "metrics": metrics,
        "domain": {
            "feature_ranges": ranges,
            "model_types": sorted(table["model_type"].unique()),
            "models": int(table["model_id"].nunique()),
            "layers": len(table),
        },
        "libraries": library_versions(),
        "seed": seed,
        **info,
    }
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2, default=float) + "\n")
    (folder / "MODEL_CARD.md").write_text(model_card(manifest))
    return manifest


def _span(ranges: dict, feature: str) -> str:
    low, high = ranges.get(feature, (float("nan"), float("nan")))
    return f"{low:g}–{high:g}"


def model_card(m: dict) -> str:
    scores = m.get("cv_scores", {})
    ranges = m["domain"].get("feature_ranges", {})
    lines = [
        f"# archcast predictor {m['version']}",
        "",
        "Predicts, from a transformer's config.json alone, the five parameters of the emergence curve "
        "f(t) = A·exp(−λx)·ln(x) + K, x = γt + t0, per layer, for each metric below; derived quantities "
        "(steady state K, peak step and value, value at the last step) follow from them.",
        "",
        f"- Metrics: {', '.join(m['metrics'])}",
        f"- Trained on: {m['domain']['models']} models, {m['domain']['layers']} layers "
        f"(families {', '.join(m['domain']['model_types'])}); data hash `{m.get('data_hash', '?')[:16]}`",
        f"- Data provenance: {m.get('data_provenance', 'see data/')}",
        f"- Feature schema {m['schema']['version']} (`{m['schema']['hash'][:16]}`)",
        "",
        "## Scores (grouped cross-validation: whole architectures held out)",
        "",
        "| target | LightGBM R² | mean R² | ridge R² | paper RF R² | paper RF (random split) R² | beats all grouped |",
        "|---|---|---|---|---|---|---|",
    ]
    grouped_baselines = ("mean", "ridge", "paper_rf_grouped")
    for target, s in scores.items():
        beats = all(s["lightgbm_optuna"]["r2"] > s[b]["r2"] for b in grouped_baselines if b in s)
        lines.append(
            f"| {target} | {s['lightgbm_optuna']['r2']:.3f} | {s['mean']['r2']:.3f} | {s['ridge']['r2']:.3f} "
            f"| {s.get('paper_rf_grouped', {}).get('r2', float('nan')):.3f} "
            f"| {s['paper_rf_random_split']['r2']:.3f} | {'yes' if beats else 'no'} |"
        )
    curves = m.get("curve_error", [])
    if curves:
        lines += [
            "",
            "## Curves (held-out models, as served: clipped to each metric's range, every checkpoint)",
            "",
            "| metric | median abs. log(predicted / measured) | model-free baseline: median measured curve "
            "of the training models | checkpoints |",
            "|---|---|---|---|",
        ]
        for c in curves:
            lines.append(
                f"| {c['metric']} | {c['median_abs_log_ratio']:.3f} "
                f"| {c.get('baseline_median_curve', float('nan')):.3f} | {c['points']} |"
            )
    fits = m.get("fit_summary", {})
    if fits:
        lines += ["", "## Emergence fits behind the targets", ""]
        lines += [
            f"- {metric}: mean R² {f['mean_r2']:.3f} over {f['fitted']} of {f['n']} layers "
            f"(published Pythia mean {PUBLISHED_MEAN_R2})"
            for metric, f in fits.items()
        ]
        lines.append(
            "- Each metric's series are fitted towards its population curve (training.fit): fits trade a "
            "little R² for parameters that are consistent across layers, and so predictable."
        )
    lines += [
        "",
        "## Domain and limits",
        "",
        f"- Trained on small models from the archcast zoo: {_span(ranges, 'n_layers')} layers, d_model "
        f"{_span(ranges, 'd_model')}, checkpoints up to step {max(m.get('default_steps') or [0])}. "
        "Predictions for large models are extrapolations; the service flags every feature outside the "
        "training range and every family not seen in training.",
        "- The emergence curve is ill-conditioned: quite different parameter sets draw similar curves, so "
        "per-parameter R² understates how well curves are predicted; see the curve-level error in report.md.",
        "- Ratios are relative to random init (≈6–10 for these sizes), not Sun et al.'s absolute rule.",
        "",
    ]
    return "\n".join(lines)


def current_version(models_dir: Path) -> str | None:
    pointer = Path(models_dir) / POINTER
    return pointer.read_text().strip() if pointer.exists() else None


def promote(candidate: Path, models_dir: Path) -> Path:
    """Copy the finished version folder into models/, then switch the pointer (atomic rename) last."""
    models_dir = Path(models_dir)
    target = models_dir / candidate.name
    if target.resolve() != candidate.resolve():
        tmp = models_dir / f".{candidate.name}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(candidate, tmp)
        shutil.rmtree(target, ignore_errors=True)
        os.replace(tmp, target)
    pointer_tmp = models_dir / f".{POINTER}.tmp"
    pointer_tmp.write_text(candidate.name + "\n")
    os.replace(pointer_tmp, models_dir / POINTER)
    return target
