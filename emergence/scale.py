"""The scale term: how a predicted curve moves with width and depth past the range the trees were trained on.

A tree holds the value of its last split past the edge of the data, so without this two models wider or deeper
than any trained one get the same curves. Past the training range of an axis, log(metric) at each step moves by
slope × (log x − log edge), the slope measured between zoo runs that differ in that axis alone
(training.scale); inside the range the term is 0 and the trees decide. The trend is carried at most as far past
the edge as the sizes it was measured over span (its reach: 128–192 wide reaches to 288): further out the data
says nothing, and the shift holds there (a warning says so). Where the data has no such runs, or held-out
models past the range were predicted worse with the slope, the term stays 0 (the model card says which).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from features.schema import FEATURES

# axis → the feature it is measured by, and the features that move with it when only that axis changes (the
# zoo's width runs scale the heads with d, keeping the head dim; its depth runs change the layer count alone).
# Models that agree on every other feature are "the same design at another width/depth".
AXES: dict[str, str] = {"width": "d_model", "depth": "n_layers"}
MOVES_WITH: dict[str, tuple[str, ...]] = {
    "width": ("d_model", "n_heads", "n_kv_heads", "d_ff", "log_d", "log_params", "d_per_layer", "heads_per_layer"),
    "depth": (
        "n_layers", "log_params", "d_per_layer", "heads_per_layer",
        "layer_index", "layer_frac", "layer_frac_sq", "layer_frac_sqrt", "layer_x_layers",
    ),
}  # fmt: skip
_INDEX = {name: i for i, name in enumerate(FEATURES)}


@dataclass(frozen=True)
class AxisSlope:
    """d log(metric) / d log(axis) at each projection step, its standard error, and the runs behind it."""

    slope: tuple[float, ...]  # (T,) at the projection steps; NaN where unknown
    se: tuple[float, ...]
    runs: int  # runs in designs measured at ≥ 2 values of the axis
    designs: int  # such designs
    span: tuple[float, float]  # the axis values those runs cover
    applied: bool = True  # served; False where held-out models past the range were predicted worse with it
    heldout: dict | None = None  # that test: {"layers", "with_scale_term", "without_scale_term"}; None: untested

    def to_json(self) -> dict:
        return {"slope": list(self.slope), "se": list(self.se), "runs": self.runs, "designs": self.designs,
                "span": list(self.span), "applied": self.applied, "heldout": self.heldout}  # fmt: skip

    @classmethod
    def from_json(cls, data: dict) -> AxisSlope:
        nan = float("nan")
        return cls(tuple(nan if v is None else v for v in data["slope"]),
                   tuple(nan if v is None else v for v in data["se"]),
                   int(data["runs"]), int(data["designs"]), tuple(data["span"]),
                   bool(data.get("applied", True)), data.get("heldout"))  # fmt: skip


class ScaleTerm:
    """Per metric, the log shift of the curve regressors' values at the projection steps for a design's rows."""

    def __init__(self, slopes: dict[str, dict[str, AxisSlope]], ranges: dict[str, list[float]], n_steps: int):
        """slopes: metric → axis → AxisSlope at the n_steps projection steps; ranges: the training domain's
        feature ranges."""
        self.metrics = list(slopes)
        self._axes = [(axis, _INDEX[feature], *ranges[feature]) for axis, feature in AXES.items()]
        table = np.zeros((len(self.metrics), len(self._axes), n_steps))  # (M, A, T): an unknown slope adds nothing
        reach = np.zeros((len(self.metrics), len(self._axes)))  # (M, A) log units past the edge a slope carries
        for i, m in enumerate(self.metrics):
            for j, (axis, *_) in enumerate(self._axes):
                s = slopes[m].get(axis)
                if s is None or not s.applied:
                    continue
                if len(s.slope) != n_steps:
                    raise ValueError(f"{m} {axis}: {len(s.slope)} slopes for {n_steps} steps")
                table[i, j] = np.nan_to_num(np.asarray(s.slope, dtype=np.float64))
                reach[i, j] = math.log(s.span[1] / s.span[0])
        self._table, self._reach = table, reach
        self._served = reach > 0  # (M, A): an applied slope (a measured span is never empty)

    def beyond(self, rows: np.ndarray) -> np.ndarray:
        """(A,): how far past the training range the design lies on each axis, in log units (0 inside)."""
        return self.beyond_many(rows[:1])[0]

    def beyond_many(self, first_rows: np.ndarray) -> np.ndarray:
        """(N, A): beyond() for N designs, each given by its first feature row (the axes are model features)."""
        first = np.asarray(first_rows, dtype=np.float64)
        out = np.zeros((len(first), len(self._axes)))
        for j, (_, index, low, high) in enumerate(self._axes):
            x = first[:, index]
            # the ratio to the edge passed, 1 (log 0) inside the range: no log of a non-positive number
            above = np.where(x > high, x, high) / high if high > 0 else np.ones(len(x))
            below = np.where((0 < x) & (x < low), x, low) / low if low > 0 else np.ones(len(x))
            out[:, j] = np.log(above * below)
        return out

    def carried(self, beyond: np.ndarray) -> np.ndarray:
        """(M, A), or (N, M, A) for (N, A): the distances past the edge each metric's slopes are applied over
        (capped at their reach)."""
        return np.minimum(np.maximum(beyond[..., None, :], -self._reach), self._reach)  # np.clip's dispatch costs more

    def shift(self, rows: np.ndarray) -> np.ndarray:
        """(M, T) log shift for a design's (L, F) feature rows, in self.metrics order; zeros inside the range."""
        return self.axis_shifts(rows).sum(axis=0)

    def shift_many(self, beyond: np.ndarray) -> np.ndarray:
        """(N, M, T): shift() for N designs from their (N, A) distances past the range (beyond_many)."""
        return np.einsum("mat,nma->nmt", self._table, self.carried(beyond))

    def axis_shifts(self, rows: np.ndarray) -> np.ndarray:
        """(A, M, T): the shift axis by axis (they add up to shift()), for testing each axis on its own."""
        return np.einsum("mat,ma->amt", self._table, self.carried(self.beyond(rows)))

    def moving(self, beyond: np.ndarray) -> list[int]:
        """The axes (indices) on which a design lies past the range and some metric's slope is applied."""
        return [j for j in range(len(self._axes)) if beyond[j] and self._served[:, j].any()]

    def held(self, beyond: np.ndarray) -> list[str]:
        """The axes on which a design lies past some applied slope's reach (its shift holds there)."""
        return [axis for j, (axis, *_) in enumerate(self._axes)
                if (self._served[:, j] & (np.abs(beyond[j]) > self._reach[:, j])).any()]  # fmt: skip


def scale_term(manifest_scale: dict, ranges: dict[str, list[float]], metrics: list[str], n_steps: int) -> ScaleTerm:
    """From a manifest's "scale" entry (metric → axis → AxisSlope JSON), its rows in `metrics` order; a metric
    or axis it lacks (an older export, an axis no runs varied) gets no term."""
    slopes = {m: {a: AxisSlope.from_json(s) for a, s in manifest_scale.get(m, {}).items()} for m in metrics}
    return ScaleTerm(slopes, ranges, n_steps)
