"""Side-by-side evaluation of the tuned LightGBM against baselines, and curve-level error."""

from __future__ import annotations

import json
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
from features.curve import METRIC_RANGE, PARAMS, curve, from_target
from features.curve import TRANSFORMS as PARAM_TRANSFORMS
from training.dataset import target_name
from training.tune import cv_predictions, grouped_folds, lgbm, r2

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
        "lightgbm_optuna": lambda: lgbm(params, seed),
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


def curve_error(table: pd.DataFrame, metrics: pd.DataFrame, metric: str, best: dict[str, dict], seed: int = 0) -> dict:
    """Median |log(predicted / measured)| over held-out models' checkpoints (grouped CV).

    Each fold's LightGBM models predict the five parameters of its held-out layers; the curve is
    evaluated at the measured steps and clipped to the metric's range, as the service serves it.
    Every checkpoint counts: a prediction of 0 where the measurement is not (or the reverse) is an
    infinite error, not a dropped point.
    """
    targets = [target_name(metric, p) for p in PARAMS]
    usable = table.dropna(subset=targets).reset_index(drop=True)
    X = usable[list(FEATURES)].to_numpy(np.float32)
    groups = usable["model_id"].to_numpy()
    folds = grouped_folds(groups)
    predicted = {}
    for param, target in zip(PARAMS, targets, strict=True):
        raw = cv_predictions(lambda t=target: lgbm(best[t], seed), X, usable[target].to_numpy(), folds)
        predicted[param] = from_target(PARAM_TRANSFORMS[param], raw)
    low, high = METRIC_RANGE.get(metric, (-np.inf, np.inf))
    errors = []
    series = metrics.set_index(["model_id", "layer"]).sort_index()
    for i, row in usable.iterrows():
        measured = series.loc[(row["model_id"], row["layer"])]
        pred = np.clip(curve(measured["step"].to_numpy(float), *(predicted[p][i] for p in PARAMS)), low, high)
        truth = measured[metric].to_numpy(float)
        with np.errstate(all="ignore"):
            ratio = np.abs(np.log(pred / truth))
        known = np.isfinite(truth)
        errors.append(np.where(np.isnan(ratio[known]), np.inf, ratio[known]))
    flat = np.concatenate(errors) if errors else np.array([])
    return {
        "metric": metric,
        "median_abs_log_ratio": float(np.median(flat)) if len(flat) else float("nan"),
        "layers": len(usable),
        "points": int(len(flat)),
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
            f"({s['fitted']} fitted; published Pythia mean: 0.984 over 188 layers)"
        )
    models = ["lightgbm_optuna", "mean", "ridge", "paper_rf_grouped", "paper_rf_random_split", "lightgbm_random_split"]
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
            f"over {c['points']} checkpoints of {c['layers']} layers"
        )
    (folder / "report.md").write_text("\n".join(lines) + "\n")
