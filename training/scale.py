"""The scale term's slopes (emergence.scale), measured between runs that differ in one axis alone.

Per metric and axis (width, depth): the runs are grouped into designs that agree on every feature that does not
move with the axis (emergence.scale.MOVES_WITH), each run summarised by the median over its layers of log(metric)
at each projection step; the slope is the within-design least-squares slope of that on log(axis) (design fixed
effects: what differs between designs does not leak in), with its standard error. Seed replicates sit in their
design and so weigh in the noise.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from emergence.curve import to_log_value
from emergence.scale import AXES, MOVES_WITH, AxisSlope
from training.dataset import measured_by_step, reference_recipe_rows
from training.design import design_key


def axis_slopes(table: pd.DataFrame, metrics: pd.DataFrame, metric: str, steps: np.ndarray) -> dict[str, AxisSlope]:
    """axis → AxisSlope at `steps` (the projection steps) for one metric; an axis no design varies is left out.
    Only the runs of the reference recipe count (dataset.reference_recipe_rows): another recipe is another design."""
    table = reference_recipe_rows(table)
    measured_steps, values = measured_by_step(table, metrics, metric)
    logs = np.where(np.isfinite(values), to_log_value(values), np.nan)
    per_run = (
        pd.DataFrame(_read_at(measured_steps, logs, np.asarray(steps, dtype=np.float64)),
                     index=table["model_id"].to_numpy())
        .groupby(level=0, sort=True)
        .median()
    )  # (runs, T)  # fmt: skip
    first = table.drop_duplicates("model_id").set_index("model_id").loc[per_run.index]
    runs = dict(tuple(table.groupby("model_id", sort=False)))
    out = {}
    for axis, feature in AXES.items():
        # the designs that differ along this axis alone (training.design, its features ignored)
        design = pd.Series([design_key(runs[m], ignoring=MOVES_WITH[axis]) for m in first.index], index=first.index)
        raw = first[feature].to_numpy(np.float64)
        x = np.log(raw)
        varied = pd.Series(x, index=first.index).groupby(design.to_numpy()).transform("nunique").to_numpy() >= 2
        if not varied.any():
            continue
        keys, xs, ys = design.to_numpy()[varied], x[varied], per_run.to_numpy()[varied]
        codes = pd.factorize(keys)[0]
        fits = _held(np.array([_within_slope(codes, xs, y) for y in ys.T]))
        span = (float(raw[varied].min()), float(raw[varied].max()))
        out[axis] = AxisSlope(
            tuple(f[0] for f in fits), tuple(f[1] for f in fits), int(varied.sum()), int(len(np.unique(codes))), span
        )
    return out


def _demeaned(codes: np.ndarray, v: np.ndarray) -> np.ndarray:
    return v - (np.bincount(codes, v) / np.maximum(np.bincount(codes), 1))[codes]


def _within_slope(codes: np.ndarray, x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(slope, standard error) of y on x with one intercept per design (codes), over the finite y."""
    known = np.isfinite(y)
    codes, x, y = pd.factorize(codes[known])[0], x[known], y[known]
    xd, yd = _demeaned(codes, x), _demeaned(codes, y)
    sxx = float(np.sum(xd**2))
    if sxx <= 1e-12 * max(1.0, float(np.sum(x**2))):  # no design varies here (what is left is round-off)
        return float("nan"), float("nan")
    slope = float(np.sum(xd * yd) / sxx)
    dof = len(y) - (codes.max() + 1) - 1  # one intercept per design and the slope
    rss = float(np.sum((yd - slope * xd) ** 2))
    return slope, float(np.sqrt(rss / dof / sxx)) if dof > 0 else float("nan")


def _read_at(measured: np.ndarray, logs: np.ndarray, steps: np.ndarray) -> np.ndarray:
    """(rows, len(steps)): each row's log values at `steps`, interpolated in log(1 + step) between its own measured
    checkpoints (runs of other recipes are measured at other steps); NaN outside a row's measured range."""
    out = np.full((len(logs), len(steps)), np.nan)
    x, at = np.log1p(measured), np.log1p(steps)
    for i, row in enumerate(logs):
        known = np.isfinite(row)
        if known.sum() >= 2:
            inside = (at >= x[known][0]) & (at <= x[known][-1])
            out[i, inside] = np.interp(at[inside], x[known], row[known])
    return out


def _held(fits: np.ndarray) -> list[tuple[float, float]]:
    """Past the last step any compared run measured, the slope of that step held (as the curves' plateau is)."""
    finite = np.flatnonzero(np.isfinite(fits[:, 0]))
    if len(finite):
        fits[finite[-1] + 1 :] = fits[finite[-1]]
    return [(float(a), float(b)) for a, b in fits]
