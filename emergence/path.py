"""The one path from curve regressors' values to curves, shared by the service (service.predictor), the
real-model check and grouped CV (training.curve_error): each regressor's log values at the reference steps, moved
by the scale term's log shift, projected onto the emergence curve with the correction that takes each curve
through those values (curve.project), then evaluated at the steps asked for (curve.evaluate_metrics)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from emergence.curve import Correction, Curves, Projector, evaluate_metrics, project


@dataclass(frozen=True)
class ProjectedCurves:
    """Per metric, a design's emergence curves as the service serves them, before any step is chosen."""

    params: dict[str, np.ndarray]  # metric → (L, 5) in PARAMS order
    corrections: dict[str, Correction]  # metric → the correction through the regressor's values

    def at(self, steps) -> dict[str, Curves]:
        """metric → its curves at `steps`, clipped to the metric's range, in the order of `params`."""
        return evaluate_metrics(self.params, steps, self.corrections)


def project_curves(
    log_values: np.ndarray, shift: np.ndarray, projector: Projector, metrics: list[str], wanted=None
) -> ProjectedCurves:
    """log_values (M, L, T): the curve regressors' log values at projector.steps, block i for metrics[i] (the
    projector's group i); shift: the scale term's log shift, (M, T) for every layer alike or (M, L, T). Gives
    the `wanted` metrics (default: all), in that order."""
    logs = np.asarray(log_values, dtype=np.float64)
    shift = np.asarray(shift, dtype=np.float64)
    moved = logs + (shift[:, None, :] if shift.ndim == 2 else shift)
    params, corrections = project(moved, projector, metrics)
    index = {m: i for i, m in enumerate(metrics)}
    wanted = metrics if wanted is None else wanted
    return ProjectedCurves({m: params[index[m]] for m in wanted}, {m: corrections[index[m]] for m in wanted})
