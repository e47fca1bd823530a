"""Fit the emergence curve to every (model, layer, metric) series of a metrics table (the population fit).

training.solvers fits one series on its own (`fit_series`). On its own, though, a series'
parameters sit wherever its flat directions let them drift: quite different parameter
sets draw the same curve, so the parameters of similar layers scatter, and a regressor
that predicts them one by one draws poor curves (median held-out |log ratio| 0.67 for
ma_ratio on the zoo). `fit_table` therefore fits each metric empirical-Bayes style:
1. the population curve: `fit_series` of the metric's median series (the median over
   all series of the values at each step);
2. the population's spread: the robust spread of each transformed parameter over fits
   of a sample of the series towards the population curve;
3. every series by Levenberg–Marquardt over (A, log λ, log γ, log t0, K) from the
   population parameters, least squares in units of the series' range plus a penalty
   PRIOR_STRENGTH·Σ((u − u_population) / spread)², u the transformed parameters
   (emergence.curve.TRANSFORMS). The data decide the directions they determine; the population
   decides the rest. A fit that ends worse than the best point of the coarse grid is
   also started from that point, and where the pull leaves a series unusable as a
   regression target (R² < 0.5) it is weakened tenfold at a time while that helps.
Each checkpoint schedule gets its own population (γ is per step).
This is also what makes fitting fast: one start per series, no bounded refit.
"""

from __future__ import annotations

import math
import warnings
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace

import numpy as np
import pandas as pd

from emergence.curve import PARAMS, evaluate
from features import ArchcastError
from training.solvers import (
    PRIOR_STRENGTH,
    USABLE_R2,
    Fit,
    _clean,
    _degenerate,
    _transformed,
    fit_series,
    fit_towards,
)

DEFAULT_METRICS: tuple[str, ...] = ("ma_ratio", "linearity", "linearity_nores")
FIT_COLUMNS: tuple[str, ...] = (
    "model_id",
    "layer",
    "metric",
    *PARAMS,
    "r2",
    "rmse",
    "aic",
    "converged",
    "t_peak",
    "peak_observable",
    "peak_value",
    "final_value",
    "n_points",
    "message",
    "atypical",
)


class FitWarning(UserWarning):
    """A series could not be fitted; its row records why."""


MAD_TO_SD = 1.4826  # the median absolute deviation of a normal sample times this estimates its σ
SPREAD_FLOOR = 1e-3  # a parameter the population agrees on exactly still gets a finite pull


@dataclass(frozen=True)
class FitConfig:
    """How fit_table fits: the pull towards each population (None: every series on its own), the sample of
    series that measures the population's spread and the (weaker) pull they are fitted with, whether units
    flagged as duplicates count, and the processes used (results are identical for any number)."""

    prior_strength: float | None = PRIOR_STRENGTH
    spread_sample: int = 32
    spread_scout_strength: float = 1e-2
    include_duplicates: bool = False
    workers: int = 1


def population_fit(series: list[tuple[np.ndarray, np.ndarray]]) -> Fit:
    """The population curve of a metric: the bounded multi-start fit (fit_series) of its median series, the
    median over all series of the values measured at each step (a typical layer, robust to outlying ones)."""
    t = np.concatenate([s[0] for s in series]) if series else np.array([])
    y = np.concatenate([s[1] for s in series]) if series else np.array([])
    median = pd.Series(y).groupby(t).median()
    return fit_series(median.index.to_numpy(np.float64), median.to_numpy(np.float64))


def _fit_job(job: tuple) -> Fit:
    """One series (t, y, prior, strength, spread): towards the prior, or on its own where prior is None."""
    t, y, prior, strength, spread = job
    return fit_series(t, y) if prior is None else fit_towards(t, y, prior, strength, spread)


@contextmanager
def _mapper(workers: int):
    """map(fn, jobs) as a list, in this process or over `workers` processes (the same results either way)."""
    if workers <= 1:
        yield lambda fn, jobs: [fn(job) for job in jobs]
        return
    with ProcessPoolExecutor(workers) as pool:
        yield lambda fn, jobs: list(pool.map(fn, jobs, chunksize=max(1, len(jobs) // (4 * workers))))


def _spread_sample(series: list[tuple[np.ndarray, np.ndarray]], size: int) -> list[tuple[np.ndarray, np.ndarray]]:
    return series[:: max(1, math.ceil(len(series) / size))]  # up to `size`, evenly spaced


def _spread_of(fits: list[Fit]) -> np.ndarray:
    """Robust spread (MAD_TO_SD·MAD) of each transformed parameter over fits, floored; ones if < 2 fits."""
    u = np.array([_transformed(np.array(f.params)) for f in fits if np.all(np.isfinite(f.params))])
    if len(u) < 2:
        return np.ones(len(PARAMS))
    return np.maximum(MAD_TO_SD * np.median(np.abs(u - np.median(u, axis=0)), axis=0), SPREAD_FLOOR)


def without_duplicates(metrics: pd.DataFrame) -> pd.DataFrame:
    """The rows of units that are not flagged as duplicates (weights equal to an earlier revision's)."""
    return metrics[metrics["duplicate_of"].fillna("") == ""] if "duplicate_of" in metrics else metrics


def fit_table(
    metrics: pd.DataFrame, metric_names=DEFAULT_METRICS, config: FitConfig | None = None, **overrides
) -> pd.DataFrame:
    """One row per (model_id, layer, metric) with FIT_COLUMNS.

    Each metric's series are fitted towards that metric's population curve (see the module
    docstring), one population per checkpoint schedule; `config` (or keyword overrides of its
    fields, e.g. prior_strength=None to fit every series on its own) says how.
    """
    config = replace(config or FitConfig(), **overrides)
    include_duplicates, prior_strength, workers = config.include_duplicates, config.prior_strength, config.workers
    missing = [c for c in ("model_id", "layer", "step", *metric_names) if c not in metrics]
    if missing:
        raise ArchcastError("metrics", f"the metrics table lacks the columns {missing}")
    if not include_duplicates:
        metrics = without_duplicates(metrics)
    units = list(metrics.sort_values("step").groupby(["model_id", "layer"], sort=True))
    series = {(m, i): _clean(unit["step"], unit[m]) for m in metric_names for i, (_, unit) in enumerate(units)}
    # A population per (metric, checkpoint schedule): γ is per step, so runs of different lengths or
    # spacing must not share a prior, nor a median series.
    groups: dict[tuple[str, bytes], list[tuple[str, int]]] = {}
    for i, (_, unit) in enumerate(units):
        schedule = unit["step"].to_numpy(np.float64).tobytes()
        for m in metric_names:
            groups.setdefault((m, schedule), []).append((m, i))
    priors: dict[tuple, np.ndarray | None] = dict.fromkeys(groups)
    usable = {g: [series[k] for k in keys if not _degenerate(*series[k])] for g, keys in groups.items()}
    if prior_strength:
        for g in groups:
            population = population_fit(usable[g])
            priors[g] = population.params if np.all(np.isfinite(population.params)) else None
    with _mapper(workers) as run:
        # every group's spread sample in one batch, then every series in one batch
        sampled = {g: _spread_sample(usable[g], config.spread_sample) for g in groups if priors[g] is not None}
        scouts = [(g, t, y) for g, sample in sampled.items() for t, y in sample]
        scouted = run(_fit_job, [(t, y, priors[g], config.spread_scout_strength, None) for g, t, y in scouts])
        typical = [(h, f) for (h, *_), f in zip(scouts, scouted, strict=True) if not f.atypical]
        spreads = {g: _spread_of([f for h, f in typical if h == g]) for g in groups}
        keys = [(k, g) for g, members in groups.items() for k in members]
        jobs = [(*series[k], priors[g], prior_strength, spreads[g]) for k, g in keys]
        fitted = {(units[i][0], m): fit for ((m, i), _), fit in zip(keys, run(_fit_job, jobs), strict=True)}
    rows = []
    for (model_id, layer), unit in units:
        last_step = float(unit["step"].max())
        for metric in metric_names:
            fit = fitted[(model_id, layer), metric]
            if not fit.converged and math.isnan(fit.r2):
                warnings.warn(f"{model_id} layer {layer} {metric}: {fit.message}", FitWarning, stacklevel=2)
            d = evaluate(fit.params, [], metric, last_step) if not math.isnan(fit.A) else None
            rows.append(
                {
                    "model_id": model_id,
                    "layer": int(layer),
                    "metric": metric,
                    **asdict(fit),
                    "t_peak": float(d.peak_step[0]) if d else float("nan"),
                    "peak_observable": bool(d.peak_observable[0]) if d else False,
                    "peak_value": float(d.peak_value[0]) if d else float("nan"),
                    "final_value": float(d.final_value[0]) if d else float("nan"),
                }
            )
    return pd.DataFrame(rows, columns=list(FIT_COLUMNS))


MAX_SHAPES = 256  # curve shapes a metric's predictions are projected onto (emergence.curve.Projector)


def curve_shapes(fits: pd.DataFrame, metric: str, last_step: float, models=None) -> np.ndarray:
    """(S, 3) shapes (λ, γ, t0) in steps: those of the usable fits of `metric` (of `models` only, where given),
    at most MAX_SHAPES of them evenly over their peak steps, plus a fixed coarse grid (decay none to fast, time
    scales from a tenth to a thousand per run), so that a curve unlike any fitted one still finds a shape."""
    sub = fits[(fits["metric"] == metric) & (fits["r2"] >= USABLE_R2)]
    if models is not None:
        sub = sub[sub["model_id"].isin(set(models))]
    fitted = sub[["lam", "gamma", "t0"]].to_numpy(np.float64)
    ok = np.isfinite(fitted).all(1) & (fitted[:, 1] > 0) & (fitted[:, 2] > 0)
    fitted, peaks = fitted[ok], sub["t_peak"].to_numpy(np.float64)[ok]
    if len(fitted) > MAX_SHAPES:
        order = np.argsort(np.nan_to_num(peaks, nan=np.inf), kind="stable")
        fitted = fitted[order[np.linspace(0, len(order) - 1, MAX_SHAPES).astype(int)]]
    grid = np.array(
        [(lam, scale / max(last_step, 1.0), t0) for lam in (0.0, 0.03, 0.3, 3.0)
         for scale in (0.1, 1.0, 10.0, 100.0, 1000.0) for t0 in (0.1, 1.0, 3.0)]
    )  # fmt: skip
    return np.unique(np.round(np.vstack([fitted, grid]), 10), axis=0)
