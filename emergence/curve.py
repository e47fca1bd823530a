"""The emergence curve and its derived quantities: the one definition training and service share.

    f(t) = A · exp(−λ·x) · ln(x) + K,   x = γ·t + t0

t is the training step. A amplitude, λ ≥ 0 decay, γ > 0 time scale, t0 > 0 offset,
K the asymptote (f → K as t → ∞ when λ > 0). The emergence package is the model of
the phenomenon that training/ fits and service/ serves (docs/architecture.md).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, fields

import numpy as np
from scipy.special import lambertw

PARAMS: tuple[str, ...] = ("A", "lam", "gamma", "t0", "K")

# The published fit of this curve to 188 Pythia layers: the figure our fits are reported beside.
PUBLISHED_MEAN_R2 = 0.984
PUBLISHED_LAYERS = 188
# What each metric can be: top-1 ≥ median, so the ratio is ≥ 1; the linearity scores are R² in [0, 1].
# Curves are clipped to this range wherever they are read (`evaluate`: served, scored, or fitted).
METRIC_RANGE = {"ma_ratio": (1.0, np.inf), "linearity": (0.0, 1.0), "linearity_nores": (0.0, 1.0)}


def curve_parts(t, lam, gamma, t0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """x = γt + t0, exp(−λx) and ln x: what the curve and its Jacobian are built from (a fitter evaluating
    both at one point computes them once)."""
    x = gamma * np.asarray(t, dtype=np.float64) + t0
    return x, np.exp(-lam * x), np.log(x)


def curve(t, A, lam, gamma, t0, K, parts=None):
    """f(t) for steps t (array-like); parameters may broadcast (e.g. one per layer)."""
    _, decay, log_x = curve_parts(t, lam, gamma, t0) if parts is None else parts
    return A * decay * log_x + K


def jacobian(t, A, lam, gamma, t0, K, parts=None) -> np.ndarray:
    """∂f/∂(A, λ, γ, t0, K) at each t, shape (len(t), 5)."""
    t = np.asarray(t, dtype=np.float64)
    x, decay, log_x = curve_parts(t, lam, gamma, t0) if parts is None else parts
    phi = decay * log_x
    d_x = A * (decay / x - lam * phi)  # ∂f/∂x
    out = np.empty((len(t), 5))
    out[:, 0], out[:, 1], out[:, 2], out[:, 3], out[:, 4] = phi, -A * x * phi, d_x * t, d_x, 1.0
    return out


def peak_step(lam, gamma, t0):
    """Step of the extremum: x* = exp(W(1/λ)) solves d/dx[e^{−λx} ln x] = 0; t* = (x* − t0)/γ.

    λ = 0 has no finite extremum (inf). Works elementwise on arrays.
    """
    lam = np.asarray(lam, dtype=np.float64)
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        x_peak = np.where(lam > 0, np.exp(np.real(lambertw(1.0 / np.where(lam > 0, lam, 1.0)))), np.inf)
        return (x_peak - t0) / gamma


@dataclass(frozen=True)
class Curves:
    """A set of emergence curves (one per layer or series) read the way archcast serves and scores them: every
    value clipped to the metric's range (METRIC_RANGE), the steady state and extremum included."""

    values: np.ndarray  # (L, T): the curve at the steps
    clipped: np.ndarray  # (L, T) bool: the raw served curve (corrected, where a correction is given) left the range
    steady_state: np.ndarray  # (L,): the value the curve settles to: K where it decays (λ > 0); without decay
    # (λ = 0) it grows as A·ln(x) without bound, to the top (A > 0) or bottom (A < 0) of the metric's range
    extremum_kind: np.ndarray  # (L,) "peak" (A > 0: rises then decays), "dip" (A < 0) or "none"
    peak_step: np.ndarray  # (L,): the extremum's step; inf without decay (λ = 0)
    peak_observable: np.ndarray  # (L,) bool: the extremum lies after step 0
    peak_value: np.ndarray  # (L,): the (corrected) curve at that step, not necessarily its maximum; NaN if unobservable
    final_value: np.ndarray  # (L,): the curve at the last step


@dataclass(frozen=True)
class Correction:
    """How a served curve departs from its emergence curve: log(predicted / emergence curve) at the reference
    steps the curve regressor was read at, interpolated linearly in log(1 + step) between them and held at the
    end values outside them. A curve that is an emergence curve has a correction of zero everywhere."""

    steps: np.ndarray  # (R,) the reference steps, increasing
    log_factor: np.ndarray  # (L, R)

    def at(self, steps) -> np.ndarray:
        """(L, T): every row at the same (T,) steps."""
        i, w = self._bracket(np.asarray(steps, dtype=np.float64))
        f = self.log_factor
        return f[:, i - 1] * (1.0 - w) + f[:, i] * w

    def at_each(self, steps) -> np.ndarray:
        """(L,): row l at step steps[l] (NaN stays NaN, +inf reads the last value)."""
        i, w = self._bracket(np.asarray(steps, dtype=np.float64))
        rows, f = np.arange(len(self.log_factor)), self.log_factor
        return f[rows, i - 1] * (1.0 - w) + f[rows, i] * w

    def _bracket(self, steps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if len(self.steps) == 1:  # one reference step: the same correction everywhere (column 0 on both sides)
            return np.zeros(steps.shape, dtype=np.int64), np.where(np.isnan(steps), np.nan, 1.0)
        x, xp = np.log1p(steps), np.log1p(np.asarray(self.steps, dtype=np.float64))
        i = np.clip(np.searchsorted(xp, x, side="right"), 1, len(xp) - 1)
        with np.errstate(invalid="ignore"):
            return i, np.minimum(np.maximum((x - xp[i - 1]) / (xp[i] - xp[i - 1]), 0.0), 1.0)


def evaluate(params, steps, metric: str | None = None, last_step=None, correction: Correction | None = None) -> Curves:
    """The one curve path: parameters (L, 5) in PARAMS order, and where given the correction that takes each
    emergence curve through its curve regressor's values (project), → curves at `steps` and their derived
    values, clipped to `metric`'s range. `last_step` (scalar or (L,)) is where `final_value` is read; default:
    the largest step asked for (0 when none is)."""
    p = np.atleast_2d(np.asarray(params, dtype=np.float64))
    low, high = METRIC_RANGE.get(metric, (-np.inf, np.inf))
    return _evaluate(p, steps, np.full(len(p), low), np.full(len(p), high), last_step, correction)


def evaluate_metrics(
    params: dict[str, np.ndarray], steps, corrections: dict[str, Correction] | None = None
) -> dict[str, Curves]:
    """evaluate() for several metrics' (L, 5) parameters (and their corrections, all or none, at the same
    reference steps) in one pass (the service asks for all of them at once, and numpy's per-call cost is most
    of the work for a few dozen layers): metric → its Curves."""
    names = list(params)
    arrays = [np.atleast_2d(np.asarray(params[m], dtype=np.float64)) for m in names]
    stacked, sizes = np.concatenate(arrays), [len(a) for a in arrays]
    low = np.repeat([METRIC_RANGE.get(m, (-np.inf, np.inf))[0] for m in names], sizes)
    high = np.repeat([METRIC_RANGE.get(m, (-np.inf, np.inf))[1] for m in names], sizes)
    correction = None
    if corrections:
        first = corrections[names[0]].steps
        correction = Correction(first, np.concatenate([corrections[m].log_factor for m in names]))
    both = _evaluate(stacked, steps, low, high, None, correction)
    edges = np.cumsum([0, *sizes])
    parts = [getattr(both, name) for name in _CURVES_FIELDS]
    return {m: Curves(*(part[a:b] for part in parts)) for m, a, b in zip(names, edges[:-1], edges[1:], strict=True)}


_CURVES_FIELDS = tuple(f.name for f in fields(Curves))


def clip_between(values, low, high) -> np.ndarray:
    """np.clip by its two ufuncs: the same values (NaN stays NaN), without np.clip's Python-level dispatch, a
    few µs a call that a request pays a dozen times (curves, bands, the mechanism's values)."""
    return np.minimum(np.maximum(values, low), high)


def _evaluate(
    p: np.ndarray, steps, low: np.ndarray, high: np.ndarray, last_step, correction: Correction | None = None
) -> Curves:
    """evaluate() with each row's range given: (L,) lower and upper bounds. With a correction, each value is
    the emergence curve's (clipped and floored, corrected_base) times exp(correction) there; the steady state
    takes the correction's last value (it is held past the last reference step), the extremum stays where the
    emergence curve has it."""
    A, lam, gamma, t0, K = (p[:, i] for i in range(len(PARAMS)))
    t = np.asarray(steps, dtype=np.float64).reshape(-1)
    with np.errstate(all="ignore"):
        raw = curve(t[None, :], *(c[:, None] for c in (A, lam, gamma, t0, K)))
        t_peak = peak_step(lam, gamma, t0)
        observable = np.isfinite(t_peak) & (t_peak > 0)
        peak_at = np.where(observable, t_peak, 0.0)
        peak = np.where(observable, curve(peak_at, A, lam, gamma, t0, K), np.nan)
        # read at the largest step asked for, the final value is that column of the curves (the same operations
        # on the same numbers), taken after the correction and the clip below
        last_column = int(np.argmax(t)) if last_step is None and len(t) else None
        if last_column is None:  # a step given (scalar or per row), or no steps asked for: step 0
            last_at = np.asarray(0.0 if last_step is None else last_step, dtype=np.float64)
            final = curve(last_at, A, lam, gamma, t0, K)
        steady = np.where((lam > 0) | (A == 0), K, np.where(A > 0, np.inf, -np.inf))
        low_t, high_t = low[:, None], high[:, None]
        if correction is not None:  # on the emergence curve as the correction was measured from (corrected_base)
            raw = corrected_base(raw, low_t, high_t) * np.exp(correction.at(t))
            peak = corrected_base(peak, low, high) * np.exp(correction.at_each(peak_at))
            if last_column is None:
                final = corrected_base(final, low, high) * np.exp(correction.at_each(np.broadcast_to(last_at, A.shape)))
            steady = corrected_base(steady, low, high) * np.exp(correction.log_factor[:, -1])
        outside = (raw < low_t) | (raw > high_t)  # what is served: the corrected curve, where there is a correction
    values = clip_between(raw, low_t, high_t)
    return Curves(
        values=values,
        clipped=outside,
        steady_state=clip_between(steady, low, high),
        extremum_kind=_EXTREMA[(A > 0).view(np.int8) - (A < 0).view(np.int8) + 1],  # NaN: neither, "none"
        peak_step=t_peak,
        peak_observable=observable,
        peak_value=clip_between(peak, low, high),  # NaN stays NaN
        final_value=values[:, last_column].copy() if last_column is not None else clip_between(final, low, high),
    )


EXTREMUM_KINDS = ("dip", "none", "peak")  # by sign of A, −1 … 1 (sorted)
_EXTREMA = np.array(EXTREMUM_KINDS)


@dataclass(frozen=True)
class Transform:
    """A target transform and its inverse (ranges differ by decades): the mechanism's regression targets, and
    the space the fitter pulls each curve parameter towards the population in (training.fit). The array forms,
    and the scalar form and its slope for the fitter's inner loop, where numpy's per-call cost dominates."""

    forward: Callable[[np.ndarray], np.ndarray]
    inverse: Callable[[np.ndarray], np.ndarray]
    scalar: Callable[[float], float]
    slope: Callable[[float], float]  # d forward / d parameter


TRANSFORM_FORMS: dict[str, Transform] = {
    "asinh": Transform(np.arcsinh, np.sinh, math.asinh, lambda p: 1.0 / math.sqrt(1.0 + p * p)),
    "log1p": Transform(np.log1p, np.expm1, math.log1p, lambda p: 1.0 / (1.0 + p)),
    "log": Transform(np.log, np.exp, math.log, lambda p: 1.0 / p),
    "identity": Transform(lambda v: v, lambda v: v, float, lambda p: 1.0),
}
# The space each curve parameter is pulled towards the population in (training.fit's penalty).
TRANSFORMS: dict[str, str] = {"A": "asinh", "lam": "log1p", "gamma": "log", "t0": "log", "K": "asinh"}


def from_target(transform: str, values):
    if transform not in TRANSFORM_FORMS:
        raise ValueError(f"unknown target transform {transform!r}; known: {', '.join(TRANSFORM_FORMS)}")
    return TRANSFORM_FORMS[transform].inverse(np.asarray(values, dtype=np.float64))


# ---- Predicting a curve directly -------------------------------------------------------------------------
# The served curves come from one regressor per metric that reads a layer's features plus the step and predicts
# log(metric) there (learned over every measured checkpoint of every layer). Its values at the reference steps
# are projected onto the emergence curve (Projector): for each of a set of curve shapes (λ, γ, t0) A and K are
# solved in closed form, and the shape with the least squared error is kept. Those five parameters are what a
# prediction reports; the served curve is that emergence curve times a correction (Correction) which takes it
# through the regressor's own values at the reference steps: the emergence curve cannot follow the first
# steps' transient (the ratio at initialisation falls before the mechanism grows). On cpu2 (73 runs) the
# held-out ma_ratio curves missed by 0.175 as bare emergence curves, 0.151 corrected (the regressor read at
# every step: 0.152; scripts/studies/projection_study.py). Every derived value (evaluate) is read off the
# corrected curve.
STEP_FEATURE = "log1p_step"  # the one input a curve regressor has beyond the feature schema
LOG_FLOOR = 1e-4  # a linearity score of 0 is learned as log(1e-4)


def curve_rows(rows: np.ndarray, steps) -> np.ndarray:
    """(L, F) feature rows × T steps → (L·T, F+1) float32 inputs of a curve regressor, layer-major."""
    t = np.log1p(np.asarray(steps, dtype=np.float64)).astype(np.float32)
    L, T = len(rows), len(t)
    out = np.empty((L * T, rows.shape[1] + 1), dtype=np.float32)
    out[:, :-1] = np.repeat(np.asarray(rows, dtype=np.float32), T, axis=0)
    out[:, -1] = np.tile(t, L)
    return out


def to_log_value(values) -> np.ndarray:
    return np.log(np.maximum(np.asarray(values, dtype=np.float64), LOG_FLOOR))


# Steps a curve regressor is read at (the reference steps): its cost per request. On cpu2 (73 runs), corrected
# held-out ma_ratio curves: 0.152 at 11 points evenly in log(1 + step), 0.154 at 9, 0.151 at 13; 0.163 at 11
# evenly in sqrt(step); 0.154 at the 11 of the earlier rule (every step of the first 5 %, 3 after).
PROJECTION_POINTS = 11


def projection_steps(steps, count: int = PROJECTION_POINTS) -> np.ndarray:
    """The steps a predicted curve is read at: `count` points evenly spaced in log(1 + step) from the first
    measured step to the last, each moved to the nearest measured one (fewer where two meet)."""
    steps = np.unique(np.asarray(steps, dtype=np.float64))
    if len(steps) <= count:
        return steps
    x = np.log1p(steps)
    nearest = np.abs(x[None, :] - np.linspace(x[0], x[-1], count)[:, None]).argmin(axis=1)
    return steps[np.unique(nearest)]


class Projector:
    """Projection onto the emergence curve over a fixed set of shapes and steps, the shapes' basis computed
    once: a request then costs one (L, T) × (T, S) product. Shapes may come in groups (one per metric): values
    (G, L, T) then take the best shape of their own group, all groups in one pass.

    Shapes that draw the same curve at these steps up to A and K (λ = 0 with γ and t0 scaled alike, say) are
    kept once, the first of them: which one wins an exact tie must not depend on rounding."""

    def __init__(self, steps, shapes, groups=None):
        self.steps = np.asarray(steps, dtype=np.float64)
        shapes = np.asarray(shapes, dtype=np.float64).reshape(-1, 3)
        groups = np.zeros(len(shapes), dtype=np.int64) if groups is None else np.asarray(groups)
        kept = [_distinct_shapes(self.steps, shapes[groups == g]) for g in range(int(groups.max(initial=0)) + 1)]
        for g, (s, _) in enumerate(kept):
            if not len(s):
                raise ValueError(f"no usable curve shape in group {g} at steps {self.steps.tolist()}")
        G, S, T = len(kept), max(len(s) for s, _ in kept), len(self.steps)
        # padded to the largest group: a padding column has φ = 0 and can never win (score −inf)
        self.shapes, self.phi_mean = np.zeros((G, S, 3)), np.zeros((G, S))
        self.phi_c, self.inv_var, self.outside = np.zeros((G, S, T)), np.zeros((G, S)), np.full((G, S), -np.inf)
        for g, (s, phi) in enumerate(kept):
            n = len(s)
            self.shapes[g, :n], self.phi_mean[g, :n] = s, phi.mean(1)
            self.phi_c[g, :n] = phi - self.phi_mean[g, :n, None]
            var = (self.phi_c[g, :n] ** 2).sum(1)
            self.inv_var[g, :n] = np.where(var > 0, 1.0 / np.where(var > 0, var, 1.0), 0.0)
            self.outside[g, :n] = 0.0
        self.phi_t = np.ascontiguousarray(self.phi_c.transpose(0, 2, 1))  # (G, T, S): the product's right side

    @classmethod
    def grouped(cls, steps, shapes: dict[str, np.ndarray]) -> Projector:
        """One projector over several metrics' shapes; group i is the i-th metric of `shapes`."""
        stacked = [np.asarray(s, dtype=np.float64).reshape(-1, 3) for s in shapes.values()]
        labels = np.repeat(np.arange(len(stacked)), [len(s) for s in stacked])
        return cls(steps, np.concatenate(stacked), labels)

    def __call__(self, values: np.ndarray) -> np.ndarray:
        """values (L, T) at self.steps → (L, 5) parameters of the closest emergence curves (least squares);
        values (G, L, T), one block per group, → (G, L, 5)."""
        v = np.asarray(values, dtype=np.float64)
        single = v.ndim < 3
        v = np.atleast_2d(v)[None] if single else v
        if len(v) != len(self.shapes):
            raise ValueError(f"values for {len(v)} groups, this projector has {len(self.shapes)}")
        if v.shape[1] > _PROJECT_ROWS:  # many designs at once: in pieces whose products stay in cache
            pieces = [self(v[:, a : a + _PROJECT_ROWS]) for a in range(0, v.shape[1], _PROJECT_ROWS)]
            out = np.concatenate(pieces, axis=1)
            return out[0] if single else out
        mean = np.add.reduce(v, 2) / v.shape[2]  # (G, L)
        broken = ~np.isfinite(mean)  # a row with a non-finite value: its group's first shape, A and K NaN
        if broken.any():
            v, mean = np.where(broken[..., None], 0.0, v), np.where(broken, 0.0, mean)
        v_c = v - mean[..., None]
        # A BLAS product: 8× faster than einsum here (16 against 123 µs for 3 × 12 layers × 269 shapes). BLAS
        # would thread it from ~13 layers on, and a thread pool in each of the server's worker processes cost
        # milliseconds a request: the service holds BLAS to one thread per worker (service.service). The
        # least-squares A is dot/var and its SSE |v_c|² − dot²/var, so the best shape maximises dot²/var.
        # (Numpy's Python-level helpers, mean, clip, stack, are avoided: their call overhead was most of a
        # small request's cost.)
        dot = np.matmul(v_c, self.phi_t)  # (G, L, S)
        score = np.multiply(dot, dot)  # then in place: one temporary of that size, not three
        score *= self.inv_var[:, None, :]
        score += self.outside[:, None, :]
        best = np.argmax(score, axis=2)  # (G, L)
        g, rows = np.arange(len(v))[:, None], np.arange(v.shape[1])[None, :]
        A = dot[g, rows, best] * self.inv_var[g, best]
        A[broken] = np.nan
        out = np.empty((*best.shape, 5))
        out[..., 0] = A
        out[..., 1:4] = self.shapes[g, best]
        out[..., 4] = mean - A * self.phi_mean[g, best]
        return out[0] if single else out


_PROJECT_ROWS = 256  # rows a projection computes at once: (G, rows, S) products of a few MB


def _distinct_shapes(steps: np.ndarray, shapes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The shapes whose curve is finite at `steps`, each curve (up to A and K) once, and their φ (S, T)."""
    lam, gamma, t0 = (shapes[:, i : i + 1] for i in range(3))  # (S, 1) each
    with np.errstate(all="ignore"):
        phi = curve(steps[None, :], 1.0, lam, gamma, t0, 0.0)  # (S, T): the shape with A = 1, K = 0
    usable = np.isfinite(phi).all(1)
    shapes, phi = shapes[usable], phi[usable]
    centred = phi - phi.mean(1, keepdims=True)
    norm = np.sqrt((centred**2).sum(1, keepdims=True))
    unit = np.where(norm > 0, centred / np.where(norm > 0, norm, 1.0), 0.0)
    lead = np.argmax(np.abs(unit) > 1e-6, axis=1)  # φ and −φ fit alike (A takes the sign): one direction each
    unit *= np.where(unit[np.arange(len(unit)), lead] < 0, -1.0, 1.0)[:, None]
    _, first = np.unique(np.round(unit, 9), axis=0, return_index=True)
    keep = np.sort(first)
    return shapes[keep], phi[keep]


def project(log_values, projector: Projector, metrics: list[str]) -> tuple[np.ndarray, list[Correction]]:
    """Curve regressors' log values at projector.steps (already moved by the scale term, emergence.scale), one
    (L, T) block per group of the projector (group i: metrics[i]) as (G, L, T), → the emergence curves closest to
    them, (G, L, 5), and per group the Correction that takes each curve through its values at those steps
    (each curve clipped to its metric's range and both floored as the regressor's targets are, to_log_value)."""
    logs = np.asarray(log_values, dtype=np.float64)
    params = projector(np.exp(logs))
    bounds = np.array([METRIC_RANGE.get(m, (-np.inf, np.inf)) for m in metrics])[:, :, None, None]  # (G, 2, 1, 1)
    with np.errstate(all="ignore"):
        fitted = curve(projector.steps, *(params[..., i, None] for i in range(len(PARAMS))))
        fitted = np.log(corrected_base(fitted, bounds[:, 0], bounds[:, 1]))
    log_factor = np.maximum(logs, math.log(LOG_FLOOR)) - fitted
    return params, [Correction(projector.steps, f) for f in log_factor]


def corrected_base(values, low, high) -> np.ndarray:
    """What a correction multiplies: the emergence curve clipped to the metric's range and floored as the
    regressor's targets are (a ratio curve below 1 or a linearity below 0 is no base to scale from)."""
    return np.maximum(clip_between(values, low, high), LOG_FLOOR)
