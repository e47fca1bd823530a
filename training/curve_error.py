"""Curve-level error on held-out designs, as served: each fold's curve regressor read at the reference steps,
moved by the scale term, projected and corrected (emergence.path), against the model-free median curve; the
scale term tested axis by axis (which axes are served), and the conformal band of the residuals."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from emergence.curve import (
    Projector,
    curve_rows,
    evaluate,
    projection_steps,
)
from emergence.path import project_curves
from emergence.scale import AXES, ScaleTerm
from training.bands import conformal_band
from training.dataset import (
    DESIGN,
    curve_data,
    feature_array,
    measured_by_step,
)
from training.heldout_fits import HeldOutFits
from training.scale import axis_slopes
from training.tune import grouped_folds, lgbm


def abs_log_ratio(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """|log(pred / truth)| at the measured points; NaN (0 against non-zero, or the reverse) counts as infinite."""
    with np.errstate(all="ignore"):
        ratio = np.abs(np.log(pred / truth))
    known = np.isfinite(truth)
    return np.where(np.isnan(ratio[known]), np.inf, ratio[known])


def _median(parts: list[np.ndarray]) -> float:
    flat = np.concatenate(parts) if parts else np.array([])
    return float(np.median(flat)) if len(flat) else float("nan")


def curve_error(
    table: pd.DataFrame,
    metrics: pd.DataFrame,
    fits: HeldOutFits,
    metric: str,
    params: dict,
    seed: int = 0,
    read_at: np.ndarray | None = None,
) -> dict:
    """Median |log(predicted / measured)| over held-out models' checkpoints (grouped CV), beside a model-free
    baseline: the median measured curve of the training models' layers, step by step.

    Each fold's curve regressor learns from the training models' checkpoints; its predictions for the held-out
    layers at the measured steps are projected onto the emergence curve over shapes from the training models'
    fits alone, fitted towards their own population (training.heldout_fits), and corrected to pass through the
    regressor's values (emergence.curve.project), evaluated and clipped as the service serves them. Every
    checkpoint of every held-out layer counts.
    `direct_median_abs_log_ratio` is the regressor's own error read at every measured step, and
    `emergence_median_abs_log_ratio` that of the bare emergence curves, without the correction.

    The scale term (emergence.scale) is tested axis by axis: a held-out model past its fold's training range on
    an axis where that fold measured a slope is predicted with that axis's shift alone and without it
    (`extrapolated`); an axis is served (`applied`) unless its shift did harm there, or where nothing tested
    it. The scores and the band are those of the served model: only the applied axes' shifts.
    """
    data = curve_data(table, metrics, metric)
    rows = table.reset_index(drop=True)
    steps, truth = measured_by_step(rows, metrics, metric)
    X_layers = feature_array(rows)
    model_ids, designs = rows["model_id"].to_numpy(), rows[DESIGN].to_numpy()
    # the reference steps the export serves (the pipeline passes them); by default those of this metric's steps
    read_at = projection_steps(steps) if read_at is None else np.asarray(read_at, dtype=np.float64)
    folds = []  # per fold: (test rows, log values at read_at (n, T), per-axis shifts (A, n, T), projector)
    direct_errors, baseline_errors = [], []
    for train, test in grouped_folds(designs):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a step no training layer measured
            baseline = np.nanmedian(truth[train], axis=0)
        train_models = set(model_ids[train])
        learn = np.isin(data.groups, list(set(designs[train])))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            regressor = lgbm(params, seed).fit(data.X[learn], data.y[learn])
            log_values = regressor.predict(curve_rows(X_layers[test], read_at)).reshape(len(test), len(read_at))
            direct = np.exp(regressor.predict(curve_rows(X_layers[test], steps)).reshape(len(test), len(steps)))
        projector = Projector(read_at, fits.shapes(metric, float(steps.max()), train_models))
        term = fold_scale_term(rows.iloc[train], metrics, metric, read_at)
        shifts = np.zeros((len(AXES), len(test), len(read_at)))
        for model in dict.fromkeys(model_ids[test]):
            mine = model_ids[test] == model
            shifts[:, mine] = term.axis_shifts(X_layers[test][mine])[:, 0][:, None, :]
        folds.append((test, log_values, shifts, projector))
        for i, row in enumerate(test):
            direct_errors.append(abs_log_ratio(direct[i], truth[row]))
            baseline_errors.append(abs_log_ratio(baseline, truth[row]))

    def predicted(log_values, shift, projector) -> np.ndarray:  # the served curves (emergence.path)
        return project_curves(log_values[None], shift[None], projector, [metric]).at(steps)[metric].values

    extrapolated = {}
    for j, axis in enumerate(AXES):
        with_term, without = [], []
        for test, log_values, shifts, projector in folds:
            moved = np.flatnonzero(shifts[j].any(axis=1))
            if len(moved):
                moved_with = predicted(log_values[moved], shifts[j][moved], projector)
                moved_without = predicted(log_values[moved], np.zeros_like(log_values[moved]), projector)
                for i, p_with, p_without in zip(moved, moved_with, moved_without, strict=True):
                    with_term.append(abs_log_ratio(p_with, truth[test[i]]))
                    without.append(abs_log_ratio(p_without, truth[test[i]]))
        if with_term:
            e_with, e_without = _median(with_term), _median(without)
            extrapolated[axis] = {"layers": len(with_term), "with_scale_term": e_with,
                                  "without_scale_term": e_without, "applied": bool(e_with <= e_without)}  # fmt: skip
    applied = np.array([extrapolated.get(axis, {}).get("applied", True) for axis in AXES])
    model_errors, bare_errors = [], []
    residuals = np.full(truth.shape, np.nan)  # log(measured / predicted) of held-out layers, as served
    fold_of = np.full(len(rows), -1)
    for k, (test, log_values, shifts, projector) in enumerate(folds):
        projected = project_curves(log_values[None], shifts[applied].sum(axis=0)[None], projector, [metric])
        served = projected.at(steps)[metric].values
        bare = evaluate(projected.params[metric], steps, metric).values  # the same emergence curves, uncorrected
        bare_errors += [abs_log_ratio(bare[i], truth[row]) for i, row in enumerate(test)]
        with np.errstate(all="ignore"):
            residuals[test] = np.log(truth[test] / served)
        fold_of[test] = k
        model_errors += [abs_log_ratio(served[i], truth[row]) for i, row in enumerate(test)]
    return {
        "metric": metric,
        "median_abs_log_ratio": _median(model_errors),
        "direct_median_abs_log_ratio": _median(direct_errors),
        "emergence_median_abs_log_ratio": _median(bare_errors),
        "baseline_median_curve": _median(baseline_errors),
        "layers": len(model_errors),
        "points": int(sum(len(e) for e in model_errors)),
        "extrapolated": extrapolated,
        "interval": conformal_band(steps, residuals, fold_of),
    }


def fold_scale_term(train_rows: pd.DataFrame, metrics: pd.DataFrame, metric: str, read_at: np.ndarray) -> ScaleTerm:
    """The scale term a fold's training models give one metric, with their ranges as the domain."""
    ranges = {
        feature: [float(train_rows[feature].min()), float(train_rows[feature].max())] for feature in AXES.values()
    }
    slopes = axis_slopes(train_rows, metrics, metric, read_at)
    return ScaleTerm({metric: slopes}, ranges, len(read_at))
