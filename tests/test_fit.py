"""training.fit: known curves are recovered; degenerate series are recorded, not raised."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from emergence.curve import PARAMS, curve, evaluate, jacobian, peak_step
from features import ArchcastError
from training.fit import FitWarning, fit_table
from training.solvers import _Penalised, _transformed, fit_series, fit_towards

STEPS = np.array([0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512] + list(range(1000, 143_001, 3000)), dtype=float)
CASES = [
    (30.0, 0.3, 1 / 5000, 1.0, 50.0),  # rise, peak near step 10k, then decay to K
    (8.0, 0.05, 1 / 2000, 1.5, 10.0),  # slow rise, late peak
    (-4.0, 0.8, 1 / 800, 1.2, 20.0),  # early dip, recovery
]


@pytest.mark.parametrize("true", CASES)
def test_noisy_synthetic_curves_are_recovered(true):
    rng = np.random.default_rng(0)
    clean = curve(STEPS, *true)
    noisy = clean + rng.normal(0, 0.01 * np.ptp(clean), len(STEPS))
    fit = fit_series(STEPS, noisy)
    assert fit.converged and fit.r2 >= 0.99
    got, want = evaluate(fit.params, STEPS), evaluate(true, STEPS)
    assert got.steady_state[0] == pytest.approx(want.steady_state[0], rel=0.05, abs=0.05 * np.ptp(clean))
    assert got.peak_observable[0] == want.peak_observable[0]
    assert got.peak_step[0] == pytest.approx(want.peak_step[0], rel=0.15)


def test_jacobian_matches_finite_differences():
    p = np.array([3.0, 0.4, 0.01, 1.3, 2.0])
    t = np.linspace(0, 500, 20)
    numeric = np.stack([(curve(t, *(p + e)) - curve(t, *(p - e))) / (2 * 1e-6) for e in np.eye(5) * 1e-6], axis=1)
    np.testing.assert_allclose(jacobian(t, *p), numeric, rtol=1e-5, atol=1e-6)


def test_peak_step_solves_the_derivative():
    lam, gamma, t0 = 0.3, 0.01, 1.0
    t = peak_step(lam, gamma, t0)
    x = gamma * t + t0
    assert 1 / x - lam * np.log(x) == pytest.approx(0.0, abs=1e-10)
    assert np.isinf(peak_step(0.0, gamma, t0))


@pytest.mark.parametrize(
    "values, reason",
    [
        (np.full(len(STEPS), 7.0), "flat"),
        (np.arange(4.0), "too short"),
        (np.full(len(STEPS), np.nan), "too short"),
    ],
)
def test_degenerate_series_are_recorded_as_failures(values, reason):
    fit = fit_series(STEPS[: len(values)], values)
    assert not fit.converged and np.isnan(fit.A) and reason in fit.message


def test_fit_table_keeps_failures_and_skips_duplicate_units():
    rows = []
    for step in STEPS[:20]:
        for layer in (1, 2):
            value = curve(step, *CASES[0]) if layer == 1 else 3.0
            rows.append(
                {
                    "model_id": "m",
                    "revision": f"step{int(step)}",
                    "step": step,
                    "layer": layer,
                    "ma_ratio": value,
                    "duplicate_of": "",
                }
            )
    rows.append({"model_id": "m", "revision": "copy", "step": 1e9, "layer": 1, "ma_ratio": 1e6, "duplicate_of": "x"})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fits = fit_table(pd.DataFrame(rows), ["ma_ratio"])
    assert len(fits) == 2
    assert fits.set_index("layer").loc[1, "r2"] > 0.99 and fits.set_index("layer").loc[1, "n_points"] == 20
    assert "flat" in fits.set_index("layer").loc[2, "message"]
    assert any(issubclass(w.category, FitWarning) for w in caught)


def test_projected_jacobian_is_exact_where_the_curve_fits_exactly():
    # Kaufman's Jacobian drops a term proportional to the residual: on noise-free data at the
    # true parameters it must equal a finite-difference Jacobian of the projected residual.
    from training.solvers import _Projected

    tn = STEPS / STEPS[-1]
    A, lam, gamma, t0, K = 2.0, 0.3, 25.0, 1.0, 0.5
    problem = _Projected(tn, curve(tn, A, lam, gamma, t0, K))
    q = np.log([lam, gamma, t0])
    assert np.abs(problem.residual(q)).max() < 1e-12
    numeric = np.stack([(problem.residual(q + e) - problem.residual(q - e)) / 2e-6 for e in np.eye(3) * 1e-6], axis=1)
    np.testing.assert_allclose(problem.jacobian(q), numeric, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(problem.params(q), (A, lam, gamma, t0, K), rtol=1e-9)


def test_fits_of_measured_zoo_series_stay_inside_the_parameter_box():
    # Unbounded, the projected optimum of a rise-then-fall series can run off to λ → ∞ with A
    # compensating: a good R² with parameters that mean nothing. Fits must stay in the box.
    from pathlib import Path

    from training.solvers import LOWER, UPPER

    metrics = pd.read_parquet(Path(__file__).resolve().parents[1] / "data" / "zoo" / "metrics.parquet")
    for _, s in list(metrics.sort_values("step").groupby(["model_id", "layer"]))[::15]:
        t, y = s["step"].to_numpy(float), s["ma_ratio"].to_numpy(float)
        fit = fit_series(t, y)
        span = np.ptp(y)
        normalised = np.array([fit.A / span, fit.lam, fit.gamma * t.max(), fit.t0, (fit.K - y.min()) / span])
        assert np.all(normalised >= LOWER - 1e-6) and np.all(normalised <= UPPER + 1e-6), normalised


@pytest.mark.parametrize("true", CASES)
def test_fits_towards_a_distant_prior_still_follow_the_data(true):
    # A weak pull decides only what the data leave open: from another case's parameters (a
    # different basin) the fit must still recover this curve, rescued by the grid start if need be.
    rng = np.random.default_rng(0)
    clean = curve(STEPS, *true)
    noisy = clean + rng.normal(0, 0.01 * np.ptp(clean), len(STEPS))
    for other in CASES:
        fit = fit_towards(STEPS, noisy, other, strength=1e-3)
        assert fit.converged and fit.r2 >= 0.99, (other, fit)
        got, want = evaluate(fit.params, STEPS), evaluate(true, STEPS)
        assert got.steady_state[0] == pytest.approx(want.steady_state[0], rel=0.1, abs=0.1 * np.ptp(clean))
        assert got.peak_step[0] == pytest.approx(want.peak_step[0], rel=0.2)


def test_the_prior_pulls_in_proportion_to_its_strength():
    true = np.array(CASES[0])
    y = curve(STEPS, *true)
    assert fit_towards(STEPS, y, true).params == pytest.approx(tuple(true), rel=1e-5)  # no conflict, no pull
    prior = true * np.array([0.5, 2.0, 2.0, 2.0, 1.0])
    distance = [
        np.linalg.norm(_transformed(np.array(fit_towards(STEPS, y, prior, s).params)) - _transformed(prior))
        for s in (1e-4, 1e-1, 10.0)
    ]
    assert distance[0] > distance[1] > distance[2]


def test_penalised_jacobian_matches_finite_differences():
    t = STEPS
    y = curve(t, *CASES[1]) + np.random.default_rng(1).normal(0, 0.1, len(t))
    problem = _Penalised(t, y, np.array(CASES[2]), 0.05, np.array([0.5, 1.0, 2.0, 1.0, 0.3]))
    v = np.array([3.0, np.log(0.2), np.log(1e-3), np.log(1.4), 9.0])
    numeric = np.stack([(problem.residual(v + e) - problem.residual(v - e)) / 2e-6 for e in np.eye(5) * 1e-6], axis=1)
    np.testing.assert_allclose(problem.jacobian(v), numeric, rtol=1e-5, atol=1e-7)


def test_a_prior_that_is_not_a_curve_is_refused():
    with pytest.raises(ValueError, match="prior"):
        fit_towards(STEPS, curve(STEPS, *CASES[0]), (1.0, 0.1, -1.0, 1.0, 0.0))


def test_fit_table_pools_each_metric_and_tightens_the_parameters_of_measured_series():
    # On measured zoo series the population prior must narrow the spread of the fitted (transformed)
    # parameters against independent fits, while the fits still describe their series.
    from pathlib import Path

    metrics = pd.read_parquet(Path(__file__).resolve().parents[1] / "data" / "zoo" / "metrics.parquet")
    metrics = metrics[metrics["model_id"].isin(sorted(metrics["model_id"].unique())[::3])]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitWarning)
        pooled = fit_table(metrics, ["ma_ratio"])
        alone = fit_table(metrics, ["ma_ratio"], prior_strength=None)

    def spread(fits):
        u = np.stack([_transformed(p) for p in fits[list(PARAMS)].to_numpy()])
        return np.median(np.abs(u - np.median(u, axis=0)), axis=0)

    assert np.sum(spread(pooled)) < 0.5 * np.sum(spread(alone))
    assert pooled["converged"].all() and pooled["r2"].median() > 0.9


def test_fit_command_writes_fits_and_plots_in_both_modes(tmp_path):
    from pathlib import Path

    from typer.testing import CliRunner

    from archcast.cli import app

    metrics = pd.read_parquet(Path(__file__).resolve().parents[1] / "data" / "zoo" / "metrics.parquet")
    small = tmp_path / "metrics.parquet"
    metrics[metrics["model_id"].isin(sorted(metrics["model_id"].unique())[:2])].to_parquet(small)
    fits = {}
    for mode in ("--no-independent", "--independent"):
        out = tmp_path / f"fits{mode}.parquet"
        result = CliRunner().invoke(
            app, ["fit", "--metrics", str(small), "--out", str(out), "--plots", str(tmp_path), mode]
        )
        assert result.exit_code == 0, result.output
        assert "mean R²" in result.output and list(tmp_path.glob("*.png"))
        fits[mode] = pd.read_parquet(out)
    assert len(fits["--independent"]) == len(fits["--no-independent"]) == 2 * 4 * 3  # models × layers × metrics
    assert not np.allclose(fits["--independent"]["A"], fits["--no-independent"]["A"])


def test_fit_table_gives_the_same_fits_in_two_processes():
    from pathlib import Path

    metrics = pd.read_parquet(Path(__file__).resolve().parents[1] / "data" / "zoo" / "metrics.parquet")
    metrics = metrics[metrics["model_id"].isin(sorted(metrics["model_id"].unique())[::4])]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitWarning)
        pd.testing.assert_frame_equal(fit_table(metrics, workers=1), fit_table(metrics, workers=2))


def _table(curves: dict[str, tuple[np.ndarray, np.ndarray]]) -> pd.DataFrame:
    rows = [
        {"model_id": name, "layer": 1, "step": s, "ma_ratio": v, "duplicate_of": ""}
        for name, (steps, values) in curves.items()
        for s, v in zip(steps, values, strict=True)
    ]
    return pd.DataFrame(rows)


def test_runs_on_different_checkpoint_schedules_get_their_own_population():
    # γ is per step: a 400-step run and a 143k-step run sharing one prior (and one median series) would
    # pull each other's time scales. Every run here is fitted well only if each schedule has its own.
    rng = np.random.default_rng(3)
    short = np.array([0, 1, 2, 4, 8, 16, 32, 64, 128, 256] + list(range(262, 401, 6)), dtype=float)
    curves = {}
    for k in range(4):
        long_truth = (30.0 * (1 + 0.1 * k), 0.3, 1 / 5000, 1.0, 50.0)
        short_truth = (8.0 * (1 + 0.1 * k), 0.5, 1 / 20, 1.2, 5.0)
        for name, steps, truth in (("long", STEPS, long_truth), ("short", short, short_truth)):
            clean = curve(steps, *truth)
            curves[f"{name}{k}"] = (steps, clean + rng.normal(0, 0.01 * np.ptp(clean), len(steps)))
    fits = fit_table(_table(curves), ["ma_ratio"])
    assert fits["r2"].min() > 0.95, fits[["model_id", "r2"]]


def test_the_pull_gives_way_where_it_would_leave_a_series_unusable():
    # An atypical series (a fall where the population rises) must still be fitted well enough to be a
    # regression target: the pull is weakened for it, not for the others.
    rng = np.random.default_rng(4)
    curves = {}
    for k in range(6):
        clean = curve(STEPS, 30.0 * (1 + 0.05 * k), 0.3, 1 / 5000, 1.0, 50.0)
        curves[f"typical{k}"] = (STEPS, clean + rng.normal(0, 0.01 * np.ptp(clean), len(STEPS)))
    clean = curve(STEPS, -4.0, 0.8, 1 / 800, 1.2, 20.0)
    curves["atypical"] = (STEPS, clean + rng.normal(0, 0.01 * np.ptp(clean), len(STEPS)))
    fits = fit_table(_table(curves), ["ma_ratio"]).set_index("model_id")
    assert fits.loc["atypical", "r2"] >= 0.9 and fits.loc["atypical", "atypical"]
    assert (fits.drop(index="atypical")["r2"] > 0.95).all() and not fits.drop(index="atypical")["atypical"].any()


def test_curves_are_read_clipped_to_what_the_metric_can_be():
    # K = 0.5 and a dip: a raw ma_ratio curve below 1 everywhere, which no ratio can be
    params = [[-0.2, 0.01, 1.0, 2.0, 0.5], [0.0, 0.0, 1.0, 2.0, 3.0]]
    steps = np.array([0.0, 10.0, 100.0])
    raw = evaluate(params, steps)
    assert (raw.values[0] < 1).all() and raw.steady_state[0] == 0.5 and not raw.clipped.any()
    ratio = evaluate(params, steps, "ma_ratio")
    assert (ratio.values[0] == 1).all() and ratio.clipped[0].all() and not ratio.clipped[1].any()
    assert ratio.steady_state.tolist() == [1.0, 3.0] and ratio.final_value[0] == 1.0
    assert ratio.extremum_kind.tolist() == ["dip", "none"] and np.isinf(ratio.peak_step[1])
    assert evaluate(params, steps, "linearity").steady_state.tolist() == [0.5, 1.0]
    # without decay (λ = 0) the curve grows as A·ln(x): no plateau at K, but the edge of the metric's range
    growing = [[2.0, 0.0, 0.1, 1.0, 4.0], [-0.1, 0.0, 0.1, 1.0, 0.9]]
    assert evaluate(growing, steps).steady_state.tolist() == [np.inf, -np.inf]
    assert evaluate(growing, steps, "ma_ratio").steady_state.tolist() == [np.inf, 1.0]
    assert evaluate(growing, steps, "linearity").steady_state.tolist() == [1.0, 0.0]


def test_a_metrics_table_without_steps_is_refused_by_name():
    frame = pd.DataFrame({"model_id": ["m"] * 3, "layer": [1] * 3, "ma_ratio": [1.0, 2.0, 3.0]})
    with pytest.raises(ArchcastError, match=r"lacks the columns \['step'"):
        fit_table(frame, ["ma_ratio"])
