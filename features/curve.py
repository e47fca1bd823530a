"""The emergence curve and its derived quantities: the one definition training and service share.

    f(t) = A · exp(−λ·x) · ln(x) + K,   x = γ·t + t0

t is the training step. A amplitude, λ ≥ 0 decay, γ > 0 time scale, t0 > 0 offset,
K the asymptote (f → K as t → ∞ when λ > 0). It lives in features/ because that
is the one package both training/ and service/ may import (docs/architecture.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import lambertw

PARAMS: tuple[str, ...] = ("A", "lam", "gamma", "t0", "K")

# What each metric can be: top-1 ≥ median, so the ratio is ≥ 1; the linearity scores are R² in [0, 1].
# Predicted curves are clipped to this range wherever they are used (served, or scored in evaluation).
# The published fit of this curve to 188 Pythia layers: the figure our fits are reported beside.
PUBLISHED_MEAN_R2 = 0.984
PUBLISHED_LAYERS = 188
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
class Derived:
    K: float  # steady state
    t_peak: float
    peak_observable: bool  # the extremum lies after step 0
    peak_value: float
    final_value: float  # at the last step asked for


def derived(A, lam, gamma, t0, K, last_step: float) -> Derived:
    t_peak = float(peak_step(lam, gamma, t0))
    observable = bool(np.isfinite(t_peak) and t_peak > 0)
    peak_value = float(curve(t_peak, A, lam, gamma, t0, K)) if observable else float("nan")
    return Derived(float(K), t_peak, observable, peak_value, float(curve(last_step, A, lam, gamma, t0, K)))


# How each parameter is transformed into a regression target (and back): ranges differ by decades.
TRANSFORMS: dict[str, str] = {"A": "asinh", "lam": "log1p", "gamma": "log", "t0": "log", "K": "asinh"}
_FORWARD = {"asinh": np.arcsinh, "log1p": np.log1p, "log": np.log, "identity": lambda v: v}
_INVERSE = {"asinh": np.sinh, "log1p": np.expm1, "log": np.exp, "identity": lambda v: v}


def to_target(param: str, values):
    return _FORWARD[TRANSFORMS[param]](np.asarray(values, dtype=np.float64))


def from_target(transform: str, values):
    if transform not in _INVERSE:
        raise ValueError(f"unknown target transform {transform!r}; known: {', '.join(_INVERSE)}")
    return _INVERSE[transform](np.asarray(values, dtype=np.float64))
