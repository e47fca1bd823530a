"""The emergence curve and its derived quantities: the one definition training and service share.

    f(t) = A · exp(−λ·x) · ln(x) + K,   x = γ·t + t0

t is the training step. A amplitude, λ ≥ 0 decay, γ > 0 time scale, t0 > 0 offset,
K the asymptote (f → K as t → ∞ when λ > 0). It lives in features/ because that
is the one package both training/ and service/ may import (docs/architecture.md).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

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
    clipped: np.ndarray  # (L, T) bool: the raw curve left the metric's range there
    steady_state: np.ndarray  # (L,): K, the value the curve settles to
    extremum_kind: np.ndarray  # (L,) "peak" (A > 0: rises then decays), "dip" (A < 0) or "none"
    peak_step: np.ndarray  # (L,): the extremum's step; inf without decay (λ = 0)
    peak_observable: np.ndarray  # (L,) bool: the extremum lies after step 0
    peak_value: np.ndarray  # (L,): the curve there; NaN where not observable
    final_value: np.ndarray  # (L,): the curve at the last step


def evaluate(params, steps, metric: str | None = None, last_step=None) -> Curves:
    """The one curve path: parameters (L, 5) in PARAMS order → curves at `steps` and their derived values,
    clipped to `metric`'s range. `last_step` (scalar or (L,)) is where `final_value` is read; default: the
    largest step asked for (0 when none is)."""
    p = np.atleast_2d(np.asarray(params, dtype=np.float64))
    A, lam, gamma, t0, K = (p[:, i] for i in range(len(PARAMS)))
    t = np.asarray(steps, dtype=np.float64).reshape(-1)
    low, high = METRIC_RANGE.get(metric, (-np.inf, np.inf))
    with np.errstate(all="ignore"):
        raw = curve(t[None, :], *(c[:, None] for c in (A, lam, gamma, t0, K)))
        t_peak = peak_step(lam, gamma, t0)
        observable = np.isfinite(t_peak) & (t_peak > 0)
        peak = np.where(observable, curve(np.where(observable, t_peak, 0.0), A, lam, gamma, t0, K), np.nan)
        if last_step is None:
            last_step = float(t.max()) if len(t) else 0.0
        final = curve(np.asarray(last_step, dtype=np.float64), A, lam, gamma, t0, K)
    return Curves(
        values=np.clip(raw, low, high),
        clipped=(raw < low) | (raw > high),
        steady_state=np.clip(K, low, high),
        extremum_kind=np.where(A > 0, "peak", np.where(A < 0, "dip", "none")),
        peak_step=t_peak,
        peak_observable=observable,
        peak_value=np.clip(peak, low, high),  # NaN stays NaN
        final_value=np.clip(final, low, high),
    )


@dataclass(frozen=True)
class Transform:
    """How a parameter becomes a regression target and back (ranges differ by decades): the array forms, and
    the scalar form and its slope for the fitter's inner loop, where numpy's per-call cost dominates."""

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
# Which transform each parameter's target uses (the exported manifest records it per target).
TRANSFORMS: dict[str, str] = {"A": "asinh", "lam": "log1p", "gamma": "log", "t0": "log", "K": "asinh"}


def to_target(param: str, values):
    return TRANSFORM_FORMS[TRANSFORMS[param]].forward(np.asarray(values, dtype=np.float64))


def from_target(transform: str, values):
    if transform not in TRANSFORM_FORMS:
        raise ValueError(f"unknown target transform {transform!r}; known: {', '.join(TRANSFORM_FORMS)}")
    return TRANSFORM_FORMS[transform].inverse(np.asarray(values, dtype=np.float64))
