"""The single-series solvers of the emergence curve.

Each series is normalised (t by its last step, y to [0, 1]). The curve is linear in
A and K, so they are solved in closed form for any (λ, γ, t0) and only those three
are searched (variable projection): Levenberg–Marquardt (MINPACK, through scipy)
over (log λ, log γ, log t0), which keeps λ ≥ 0, γ > 0 and x = γt + t0 > 0 by
construction, with the analytic Jacobian of the projected residual (Kaufman's form,
built from the curve's own Jacobian). Several starts (the published initial guess
and the best points of a coarse grid); the best is kept and mapped back to steps
and metric units. Projecting out A and K makes the problem far better conditioned
than the five-parameter one. Where the projected optimum leaves the parameter box
(λ running off with A compensating), all five are refitted inside the box by bounded
trust-region least squares, so fitted parameters stay meaningful and predictable.

`fit_series` fits one series on its own; `fit_towards` fits one series pulled towards a prior
(the population fit of training.fit uses both).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
from scipy.optimize import least_squares

from emergence.curve import PARAMS, TRANSFORM_FORMS, TRANSFORMS, curve, curve_parts, jacobian

MIN_POINTS = 6  # five parameters need at least one degree of freedom
# Box on the normalised problem (A, λ, γ, t0, K; t and y scaled to [0, 1]): A up to 100 series ranges, decay
# up to 50 per run length, the time scale from 10⁻⁴ to 10⁴ per run, K within 10 ranges of the series.
# Parameters outside it mean nothing even where their curve fits, so they are refitted inside it.
LOWER = np.array([-100.0, 0.0, 1e-4, 1e-4, -10.0])
UPPER = np.array([100.0, 50.0, 1e4, 1e3, 10.0])
INSIDE = 1e-9  # starts are clipped this far inside the box (the bounded solver needs strictly feasible ones)
BOXED_NFEV = 100  # evaluations of the bounded five-parameter refit
FLAT = 1e-12  # a series whose range is below this (relative to its level) has nothing to fit


@dataclass(frozen=True)
class Fit:
    A: float
    lam: float
    gamma: float
    t0: float
    K: float
    r2: float
    rmse: float
    aic: float
    converged: bool
    n_points: int
    message: str = ""
    atypical: bool = False  # the pull towards the population had to be weakened to fit this series

    @property
    def params(self) -> tuple[float, ...]:
        return (self.A, self.lam, self.gamma, self.t0, self.K)


def _failed(n: int, message: str) -> Fit:
    nan = float("nan")
    return Fit(nan, nan, nan, nan, nan, nan, nan, nan, False, n, message)


# Coarse grid over the nonlinear parameters of the normalised problem (t in [0, 1]; A and K are linear and
# solved per point): decay from none to fast, time scales from a tenth to 10⁴ of the run, offsets near 0 to 5.
GRID_LAMBDA = (0.0, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0)
GRID_GAMMA = tuple(np.logspace(-1, 4, 16))
GRID_T0 = (1e-3, 0.01, 0.1, 0.5, 1.0, 2.0, 5.0)
_GRID = np.array(np.meshgrid(GRID_LAMBDA, GRID_GAMMA, GRID_T0, indexing="ij")).reshape(3, -1).T


def grid_starts(tn: np.ndarray, yn: np.ndarray, count: int = 2) -> list[np.ndarray]:
    """The best `count` grid points, each with its least-squares A and K (closed form)."""
    lam, gamma, t0 = (_GRID[:, i : i + 1] for i in range(3))
    x = gamma * tn[None, :] + t0  # (G, n)
    phi = np.exp(-lam * x) * np.log(x)
    phi_c = phi - phi.mean(1, keepdims=True)
    var = (phi_c**2).sum(1)
    A = np.where(var > 0, (phi_c * (yn - yn.mean())).sum(1) / np.where(var > 0, var, 1.0), 0.0)
    A = np.clip(A, LOWER[0], UPPER[0])
    K = np.clip(yn.mean() - A * phi.mean(1), LOWER[4], UPPER[4])
    sse = ((A[:, None] * phi + K[:, None] - yn) ** 2).sum(1)
    best = np.argsort(sse)[:count]
    return [np.array([A[i], *_GRID[i], K[i]]) for i in best]


def starts(tn: np.ndarray, yn: np.ndarray) -> list[np.ndarray]:
    """The published initial guess, then the best points of a coarse grid."""
    span = float(np.ptp(yn)) or 1.0
    published = [span, 1.0 / max(float(np.std(yn)), 1e-3), 1.0 / span, 1.0, float(yn.min()) + span / 2]
    guesses = [np.asarray(published, dtype=float)] + grid_starts(tn, yn)
    return [np.clip(g, LOWER + INSIDE, UPPER - INSIDE) for g in guesses]


LAMBDA_FLOOR = 1e-8  # λ = 0 (pure log growth) is searched as log λ = log 1e-8
TOL = 1e-5
SCOUT_NFEV, MAX_NFEV = 8, 300  # evaluations per start in the scouting round, and for the final run


class _Projected:
    """The normalised problem with A and K projected out; q = (log λ, log γ, log t0)."""

    def __init__(self, tn: np.ndarray, yn: np.ndarray):
        self.tn, self.yn, self.yc = tn, yn, yn - yn.mean()
        self._last: tuple[bytes, tuple] | None = None

    def _linear(self, q):
        key = np.asarray(q, dtype=np.float64).tobytes()  # MINPACK asks for residual and Jacobian at the same q
        if self._last is None or self._last[0] != key:
            self._last = (key, self._solve(q))
        return self._last[1]

    def _solve(self, q):
        lam, gamma, t0 = np.exp(q)
        phi = curve(self.tn, 1.0, lam, gamma, t0, 0.0)  # the curve with A = 1, K = 0
        pc = phi - phi.mean()
        var = float(pc @ pc)
        A = float(pc @ self.yc) / var if var > 0 else 0.0  # closed-form least squares for A (K from the means)
        return (lam, gamma, t0), phi, pc, var, A

    def residual(self, q) -> np.ndarray:
        *_, pc, _, A = self._linear(q)
        return A * pc - self.yc

    def jacobian(self, q) -> np.ndarray:
        """Kaufman's variable-projection Jacobian: A·P⊥ ∂φ/∂q, with P⊥ projecting out span{φ, 1}.

        ∂φ/∂(λ, γ, t0) come from the curve's own Jacobian (A = 1), times (λ, γ, t0) for the log parametrisation.
        """
        (lam, gamma, t0), _, pc, var, A = self._linear(q)
        d_phi = jacobian(self.tn, 1.0, lam, gamma, t0, 0.0)[:, 1:4] * np.array([lam, gamma, t0])
        d_c = d_phi - d_phi.mean(0)
        if var > 0:
            d_c = d_c - np.outer(pc, pc @ d_c) / var
        return A * d_c

    def params(self, q) -> tuple[float, float, float, float, float]:
        (lam, gamma, t0), phi, _, _, A = self._linear(q)
        return A, lam, gamma, t0, float(self.yn.mean() - A * phi.mean())


def _lowest_cost(residual, x0s, **options):
    """The lowest-cost finite scipy least-squares result over the starts x0s, or None."""
    best = None
    for x0 in x0s:
        with np.errstate(all="ignore"):
            try:
                result = least_squares(residual, x0, **options)
            except (ValueError, FloatingPointError):
                continue
        if np.all(np.isfinite(result.fun)) and (best is None or result.cost < best.cost):
            best = result
    return best


def _best(problem: _Projected, q0s: list[np.ndarray], max_nfev: int):
    """Levenberg–Marquardt on the projected problem from each start; the best result, or None."""
    return _lowest_cost(
        problem.residual, q0s, jac=problem.jacobian, method="lm", xtol=TOL, ftol=TOL, gtol=TOL, max_nfev=max_nfev
    )


def _boxed_fit(tn: np.ndarray, yn: np.ndarray, extra_starts: list[np.ndarray]):
    """All five by bounded trust-region least squares (the curve's analytic Jacobian) from the clipped projected
    optimum and the best grid point; the better is kept."""
    p0s = [np.clip(g, LOWER + INSIDE, UPPER - INSIDE) for g in extra_starts + grid_starts(tn, yn, 1)]
    return _lowest_cost(
        lambda p: curve(tn, *p) - yn, p0s, jac=lambda p: jacobian(tn, *p), bounds=(LOWER, UPPER),
        method="trf", x_scale="jac", max_nfev=BOXED_NFEV, ftol=TOL, xtol=TOL, gtol=TOL,
    )  # fmt: skip


def _to_units(normalised, t_scale: float, y_min: float, y_span: float) -> np.ndarray:
    """Parameters of the normalised problem (tn = t / t_scale, yn = (y − y_min) / y_span) in steps and metric units."""
    A, lam, gamma, t0, K = map(float, normalised)
    return np.array([A * y_span, lam, gamma / t_scale, t0, K * y_span + y_min])


def _degenerate(t: np.ndarray, y: np.ndarray) -> str:
    """Why a (finite) series cannot be fitted, or ''."""
    if len(t) < MIN_POINTS:
        return f"too short: {len(t)} finite points, need {MIN_POINTS}"
    if float(np.ptp(y)) <= FLAT * max(1.0, abs(float(y.min()))):
        return "flat series: no emergence to fit"
    return ""


def fit_series(steps, values) -> Fit:
    """Fit one series (steps, values); failures come back as a Fit with converged=False and a message."""
    t, y = _clean(steps, values)
    n = len(t)
    reason = _degenerate(t, y)
    if reason:
        return _failed(n, reason)
    t_scale, y_min, y_span = float(t.max()) or 1.0, float(y.min()), float(np.ptp(y))
    tn, yn = t / t_scale, (y - y_min) / y_span
    problem = _Projected(tn, yn)
    # every start gets a short run; the best of them is then run to convergence
    best = _best(problem, [np.log([max(p[1], LAMBDA_FLOOR), p[2], p[3]]) for p in starts(tn, yn)], SCOUT_NFEV)
    if best is not None:
        best = _best(problem, [best.x], MAX_NFEV) or best
    params = np.array(problem.params(best.x)) if best is not None else np.full(len(PARAMS), np.nan)
    success, message = (bool(best.success), best.message) if best is not None else (False, "")
    finite = bool(np.all(np.isfinite(params)))
    if not (finite and np.all((params >= LOWER) & (params <= UPPER))):
        # The projected optimum left the box (typically λ huge with A compensating: a curve that fits but
        # whose parameters mean nothing and cannot be predicted): refit all five inside the box.
        boxed = _boxed_fit(tn, yn, [params] if finite else [])
        if boxed is None:
            return _failed(n, "every start failed")
        params, success, message = boxed.x, bool(boxed.success), boxed.message
    return _with_scores(_to_units(params, t_scale, y_min, y_span), t, y, success, message)


# Weight of the pull towards the population against the sum of squared residuals in units of the series'
# range, per squared spread of a transformed parameter. Chosen on the zoo's held-out curve error (median
# |log ratio|) at fixed LightGBM hyperparameters: 3e-2 gave ma_ratio 0.12-0.16, linearity 0.025, linearity_nores
# 0.12 at mean fit R² 0.86-0.91 (independent fits: 0.67, 0.041, 0.18 at 0.88-0.94); 1e-1 and 3e-1 were no
# better on curves and worse on R²; a pull without the spread, or a noise-scaled residual, was worse.
PRIOR_STRENGTH = 3e-2
USABLE_R2 = 0.5  # a fit explaining less is no regression target (training.dataset); the pull is weakened
MIN_STRENGTH = 1e-5  # ... down to this at the weakest
GOOD_R2 = 0.95  # a fit from the prior this good is not compared with the coarse grid's best point
MIN_R2_GAIN = 0.01  # a weaker pull is kept only if it raises R² by more than this
# Searched coordinates v = (A, log λ, log γ, log t0, K): λ, γ, t0 > 0 (so x > 0) by construction.
_LOG_COORDS = slice(1, 4)
# The target transforms (emergence.curve) as scalar functions and slopes, in PARAMS order.
_FORWARDS = [TRANSFORM_FORMS[TRANSFORMS[name]].scalar for name in PARAMS]
_SLOPES = [TRANSFORM_FORMS[TRANSFORMS[name]].slope for name in PARAMS]


def _from_coords(v: np.ndarray) -> np.ndarray:
    p = np.array(v, dtype=np.float64)
    p[_LOG_COORDS] = np.exp(p[_LOG_COORDS])
    return p


def _to_coords(p) -> np.ndarray:
    v = np.array(p, dtype=np.float64)
    v[_LOG_COORDS] = np.log(np.maximum(v[_LOG_COORDS], LAMBDA_FLOOR))
    return v


def _transformed(p) -> np.ndarray:
    """The parameters in the penalty's space (emergence.curve.TRANSFORMS), one float at a time: this runs in
    the fit's inner loop."""
    return np.array([forward(float(value)) for forward, value in zip(_FORWARDS, p, strict=True)])


class _Penalised:
    """Least squares in units of the series' range plus strength·Σ((u(p) − u(prior)) / spread)², u the target
    transforms, over v = (A, log λ, log γ, log t0, K)."""

    def __init__(self, t: np.ndarray, y: np.ndarray, prior: np.ndarray, strength: float, spread: np.ndarray):
        self.t, self.y, self.scale = t, y, float(np.ptp(y))
        self.weight = math.sqrt(strength) / spread  # per parameter: deviations count in units of the spread
        self.u_prior = _transformed(prior)
        self._last: tuple[bytes, np.ndarray, tuple] | None = None

    def _at(self, v) -> tuple[np.ndarray, tuple]:
        key = np.asarray(v, dtype=np.float64).tobytes()  # the Jacobian is asked for where the residual just was
        if self._last is None or self._last[0] != key:
            p = _from_coords(v)
            self._last = (key, p, curve_parts(self.t, p[1], p[2], p[3]))
        return self._last[1], self._last[2]

    def residual(self, v) -> np.ndarray:
        p, parts = self._at(v)
        fit = (curve(self.t, *p, parts=parts) - self.y) / self.scale
        return np.concatenate([fit, self.weight * (_transformed(p) - self.u_prior)])

    def jacobian(self, v) -> np.ndarray:
        p, parts = self._at(v)
        chain = p.copy()
        chain[[0, 4]] = 1.0  # dp/dv: 1 for A and K, p itself for the log coordinates
        du = np.array([slope(float(value)) for slope, value in zip(_SLOPES, p, strict=True)])
        out = np.empty((len(self.t) + len(p), len(p)))
        out[: len(self.t)] = jacobian(self.t, *p, parts=parts) * (chain / self.scale)
        out[len(self.t) :] = np.diag(self.weight * du * chain)
        return out


def _clean(steps, values) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(steps, dtype=np.float64)
    y = np.asarray(values, dtype=np.float64)
    keep = np.isfinite(t) & np.isfinite(y)
    return t[keep], y[keep]


def _sse(params, t: np.ndarray, y: np.ndarray) -> float:
    return float(np.sum((curve(t, *params) - y) ** 2))


def _r2(params, t: np.ndarray, y: np.ndarray, sse: float | None = None) -> float:
    return 1.0 - (_sse(params, t, y) if sse is None else sse) / float(np.sum((y - y.mean()) ** 2))


def _with_scores(params, t: np.ndarray, y: np.ndarray, success: bool, message: str) -> Fit:
    n, sse = len(t), _sse(params, t, y)
    aic = n * math.log(max(sse, 1e-300) / n) + 2 * len(PARAMS)
    return Fit(*map(float, params), _r2(params, t, y, sse), math.sqrt(sse / n), aic, success, n, message)


def fit_towards(steps, values, prior, strength: float = PRIOR_STRENGTH, spread=None) -> Fit:
    """Fit one series with its parameters pulled towards `prior` (A, λ, γ, t0, K in the series' units);
    `spread` (five positive numbers, default ones) is the population's spread of each transformed parameter."""
    t, y = _clean(steps, values)
    reason = _degenerate(t, y)
    if reason:
        return _failed(len(t), reason)
    prior = np.asarray(prior, dtype=np.float64)
    if not (np.all(np.isfinite(prior)) and prior[1] >= 0 and prior[2] > 0 and prior[3] > 0):
        raise ValueError(f"prior {tuple(prior)} is not a curve: need finite (A, λ ≥ 0, γ > 0, t0 > 0, K)")
    spread = np.ones(len(PARAMS)) if spread is None else np.asarray(spread, dtype=np.float64)
    fit = _towards_once(t, y, prior, strength, spread)
    # The pull may not cost a series its usability: an atypical series gets a weaker one, tenfold at a time
    # for as long as that helps (a series the curve cannot describe at all stops at once).
    while fit.r2 < USABLE_R2 and strength > MIN_STRENGTH:
        strength /= 10
        weaker = _towards_once(t, y, prior, strength, spread)
        if not weaker.r2 > fit.r2 + MIN_R2_GAIN:
            break
        fit = replace(weaker, atypical=True, message=f"{weaker.message} (pull weakened to {strength:.0e})")
    return fit


def _towards_once(t: np.ndarray, y: np.ndarray, prior: np.ndarray, strength: float, spread: np.ndarray) -> Fit:
    problem = _Penalised(t, y, prior, strength, spread)
    options = {"jac": problem.jacobian, "method": "lm", "xtol": TOL, "ftol": TOL, "gtol": TOL, "max_nfev": MAX_NFEV}
    best = _lowest_cost(problem.residual, [_to_coords(prior)], **options)
    r2 = _r2(_from_coords(best.x), t, y) if best is not None else -np.inf
    if r2 < GOOD_R2:
        t_scale, y_min, y_span = float(t.max()) or 1.0, float(y.min()), float(np.ptp(y))
        grid = _to_units(grid_starts(t / t_scale, (y - y_min) / y_span, 1)[0], t_scale, y_min, y_span)
        if r2 < _r2(grid, t, y):
            # stuck in a basin worse than the coarse grid's best point: also start from that point
            rescue = _lowest_cost(problem.residual, [_to_coords(grid)], **options)
            if rescue is not None and (best is None or rescue.cost < best.cost):
                best = rescue
    if best is None:
        return _failed(len(t), "every start failed")
    return _with_scores(_from_coords(best.x), t, y, bool(best.success), best.message)
