"""Grouped-CV scores of each regression target beside its baselines: the mean, ridge and the published random
forest under the same grouped CV, and the published protocol (a random 80/20 split of layers) for comparison."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.dummy import DummyRegressor
from sklearn.ensemble import RandomForestRegressor
from sklearn.linear_model import Ridge
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from features import FEATURES
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


def evaluate_curve_target(X, y, groups, params: dict, seed: int = 0) -> dict:
    """Grouped-CV scores of a curve regressor (log metric at every checkpoint) beside the model-free baseline,
    the training models' median at the same step."""
    folds = grouped_folds(groups)
    pred = cv_predictions(lambda: lgbm(params, seed), X, y, folds)
    baseline = np.full(len(y), np.nan)
    step = X[:, -1]
    for train, test in folds:
        medians = pd.Series(y[train]).groupby(step[train]).median()
        baseline[test] = medians.reindex(step[test]).to_numpy()
    known = np.isfinite(baseline)
    return {OURS: _scores(y, pred), "median_by_step": _scores(y[known], baseline[known])}
