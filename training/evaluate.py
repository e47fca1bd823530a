"""Side-by-side evaluation of the tuned LightGBM against baselines, and curve-level error."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.dummy import DummyRegressor
from sklearn.ensemble import RandomForestRegressor
from sklearn.linear_model import Ridge
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from features import FEATURES
from features.curve import PARAMS, PUBLISHED_LAYERS, PUBLISHED_MEAN_R2, TRANSFORMS, evaluate, from_target
from training.dataset import feature_array, target_name
from training.fit import without_duplicates
from training.tune import cv_predictions, grouped_folds, lgbm, r2

# The models every target is scored with: ours, the baselines under the same grouped CV, and the published
# protocol (random 80/20 split of layers, which lets a model's own layers into training) for comparison.
OURS = "lightgbm_optuna"
GROUPED_BASELINES = ("mean", "ridge", "paper_rf_grouped")
RANDOM_SPLIT = ("paper_rf_random_split", "lightgbm_random_split")

# The published baseline's inputs: depth, width, heads and the per-layer position terms.
PAPER_FEATURES: tuple[str, ...] = (
    "n_layers",
    "d_model",
    "n_heads",
    "layer_index",
    "layer_frac",
    "layer_frac_sq",
    "layer_frac_sqrt",
    "layer_x_layers",
    "heads_per_d",
    "d_per_layer",
    "heads_per_layer",
    "log_d",
)
PAPER_COLUMNS = [FEATURES.index(f) for f in PAPER_FEATURES]


def _scores(y, pred) -> dict:
    return {"r2": r2(y, pred), "mae": float(np.mean(np.abs(y - pred)))}


def evaluate_target(X, y, groups, params: dict, seed: int = 0) -> dict:
    """Grouped-CV scores of every model, plus the published protocol (RF, random 80/20 split)."""
    folds = grouped_folds(groups)
    makers = {
        OURS: lambda: lgbm(params, seed),
        "mean": lambda: DummyRegressor(),
        "ridge": lambda: make_pipeline(StandardScaler(), Ridge(alpha=1.0)),
    }
    out = {name: _scores(y, cv_predictions(make, X, y, folds)) for name, make in makers.items()}
    rf = lambda: RandomForestRegressor(n_estimators=200, random_state=seed, n_jobs=1)  # noqa: E731
    Xp = X[:, PAPER_COLUMNS]
    out["paper_rf_grouped"] = _scores(y, cv_predictions(rf, Xp, y, folds))
    train, test = train_test_split(np.arange(len(y)), test_size=0.2, random_state=seed)
    out["paper_rf_random_split"] = _scores(y[test], rf().fit(Xp[train], y[train]).predict(Xp[test]))
    out["lightgbm_random_split"] = _scores(y[test], lgbm(params, seed).fit(X[train], y[train]).predict(X[test]))
    return out


def _abs_log_ratio(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """|log(pred / truth)| at the measured points; NaN (0 against non-zero, or the reverse) counts as infinite."""
    with np.errstate(all="ignore"):
        ratio = np.abs(np.log(pred / truth))
    known = np.isfinite(truth)
    return np.where(np.isnan(ratio[known]), np.inf, ratio[known])


def _median(parts: list[np.ndarray]) -> float:
    flat = np.concatenate(parts) if parts else np.array([])
    return float(np.median(flat)) if len(flat) else float("nan")


def curve_error(table: pd.DataFrame, metrics: pd.DataFrame, metric: str, best: dict[str, dict], seed: int = 0) -> dict:
    """Median |log(predicted / measured)| over held-out models' checkpoints (grouped CV), beside a model-free
    baseline: the median measured curve of the training models' layers, step by step.

    Every layer of a held-out model is scored, whether or not its own fit was good enough to be a training
    target (which layers count must not depend on the fitter being compared). Each fold's LightGBM models
    learn from the training models' usable layers and predict the five parameters of the held-out layers;
    the curve is evaluated at the measured steps and clipped to the metric's range, as the service serves
    it. Every checkpoint counts: a prediction of 0 where the measurement is not is an infinite error.
    """
    targets = [target_name(metric, p) for p in PARAMS]
    rows = table.reset_index(drop=True)
    X = feature_array(rows)
    usable = rows[targets].notna().all(axis=1).to_numpy()
    folds = grouped_folds(rows["model_id"].to_numpy())
    by_step = without_duplicates(metrics).pivot_table(
        index=["model_id", "layer"], columns="step", values=metric, aggfunc="first"
    )
    by_step = by_step.reindex(pd.MultiIndex.from_frame(rows[["model_id", "layer"]]))
    steps = by_step.columns.to_numpy(float)
    truth = by_step.to_numpy(float)
    model_errors, baseline_errors = [], []
    for train, test in folds:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a step no training layer measured
            baseline = np.nanmedian(truth[train], axis=0)
        train = train[usable[train]]
        if len(train) == 0:
            continue
        params = []
        for param, target in zip(PARAMS, targets, strict=True):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                raw = lgbm(best[target], seed).fit(X[train], rows[target].to_numpy()[train]).predict(X[test])
            params.append(from_target(TRANSFORMS[param], raw))
        predicted = evaluate(np.stack(params, axis=1), steps, metric).values
        for i, row in enumerate(test):
            model_errors.append(_abs_log_ratio(predicted[i], truth[row]))
            baseline_errors.append(_abs_log_ratio(baseline, truth[row]))
    return {
        "metric": metric,
        "median_abs_log_ratio": _median(model_errors),
        "baseline_median_curve": _median(baseline_errors),
        "layers": len(model_errors),
        "points": int(sum(len(e) for e in model_errors)),
    }


def write_report(folder: Path, evaluation: dict, fit_summary: dict, curve_errors: list[dict]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "report.json").write_text(
        json.dumps(
            {"evaluation": evaluation, "fits": fit_summary, "curve_error": curve_errors}, indent=2, default=float
        )
    )
    lines = ["# archcast training report", "", "## Emergence fits", ""]
    for metric, s in fit_summary.items():
        lines.append(
            f"- `{metric}`: mean R² {s['mean_r2']:.3f} over {s['n']} layers "
            f"({s['fitted']} fitted; published Pythia mean: {PUBLISHED_MEAN_R2} over {PUBLISHED_LAYERS} layers)"
        )
    models = [OURS, *GROUPED_BASELINES, *RANDOM_SPLIT]
    lines += [
        "",
        "## Targets: R² (MAE), grouped CV by model unless marked random split",
        "",
        "| target | n | " + " | ".join(models) + " |",
        "|" + "---|" * (len(models) + 2),
    ]
    for target, ev in evaluation.items():
        cells = [f"{ev['scores'][m]['r2']:.3f} ({ev['scores'][m]['mae']:.3f})" for m in models]
        lines.append(f"| {target} | {ev['n']} | " + " | ".join(cells) + " |")
    lines += ["", "## Curve-level error on held-out models", ""]
    for c in curve_errors:
        lines.append(
            f"- `{c['metric']}`: median |log(pred/measured)| = {c['median_abs_log_ratio']:.3f} "
            f"over {c['points']} checkpoints of {c['layers']} layers "
            f"(model-free baseline, the training models' median measured curve: {c['baseline_median_curve']:.3f})"
        )
    (folder / "report.md").write_text("\n".join(lines) + "\n")
