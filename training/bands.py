"""Split-conformal bands from held-out residuals: the central INTERVAL_LEVEL band at each step, and its coverage
measured one level further out (each fold against the band calibrated on the other folds)."""

from __future__ import annotations

import numpy as np

INTERVAL_LEVEL = 0.8  # central intervals: 10th to 90th percentile


def _band_at_each_step(residuals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per step (column): split-conformal bounds of a central INTERVAL_LEVEL band of the residuals, i.e. the
    ⌊(n+1)·α/2⌋-th and ⌈(n+1)·(1−α/2)⌉-th smallest of the n residuals there (α = 1 − INTERVAL_LEVEL)."""
    tail = (1 - INTERVAL_LEVEL) / 2
    low, high = np.full(residuals.shape[1], np.nan), np.full(residuals.shape[1], np.nan)
    for j in range(residuals.shape[1]):
        r = np.sort(residuals[np.isfinite(residuals[:, j]), j])
        if len(r):
            low[j] = r[max(0, int(np.floor((len(r) + 1) * tail)) - 1)]
            high[j] = r[min(len(r) - 1, int(np.ceil((len(r) + 1) * (1 - tail))) - 1)]
    return low, high


def target_band(residual: np.ndarray, fold_of: np.ndarray) -> dict:
    """A per-layer target's central INTERVAL_LEVEL band of (measured − predicted) in its target space, with its
    coverage measured one level further out (conformal_band at a single step)."""
    band = conformal_band(np.zeros(1), residual[:, None], fold_of)
    return {"level": band["level"], "low": band["log_low"][0], "high": band["log_high"][0],
            "heldout_coverage": band["heldout_coverage"], "points": band["points"]}  # fmt: skip


def conformal_band(steps: np.ndarray, residuals: np.ndarray, fold_of: np.ndarray) -> dict:
    """The central INTERVAL_LEVEL band of log(measured / predicted) at each step, from the held-out layers of
    grouped CV (whole architectures left out), and its coverage measured the same way one level further out:
    each fold's points against the band calibrated on the other folds alone."""
    covered, counted = 0, 0
    for k in np.unique(fold_of[fold_of >= 0]):
        low, high = _band_at_each_step(residuals[fold_of != k])
        r = residuals[fold_of == k]
        known = np.isfinite(r) & np.isfinite(low) & np.isfinite(high)
        covered += int(((r >= low) & (r <= high) & known).sum())
        counted += int(known.sum())
    low, high = _band_at_each_step(residuals)
    return {
        "level": INTERVAL_LEVEL,
        "steps": steps.tolist(),
        "log_low": low.tolist(),
        "log_high": high.tolist(),
        "heldout_coverage": covered / counted if counted else float("nan"),
        "points": counted,
    }
