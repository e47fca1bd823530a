"""emergence/curve.py: every value `evaluate` reads off a curve (the curve, its steady state, its extremum and its
final value) lies inside what the metric can be, and `clipped` marks exactly the steps where the raw curve left it."""

from __future__ import annotations

import numpy as np
import pytest

from emergence.curve import METRIC_RANGE, evaluate

STEPS = np.array([0.0, 5.0, 30.0, 100.0, 1000.0])
# (A, λ, γ, t0, K): the extremum sits near step 27 (x* = exp(W(1/λ)) ≈ 29.5), |A·e^{−λx*}·ln x*| ≈ 2.5·|A|
OVERSHOOT = {
    "ma_ratio": [[-2.0, 0.01, 1.0, 2.0, 1.2], [-0.5, 0.01, 1.0, 2.0, 0.5]],  # a dip below 1; the same and K < 1
    "linearity": [[1.0, 0.01, 1.0, 2.0, 0.5], [-1.0, 0.01, 1.0, 2.0, 0.5]],  # a peak above 1; a dip below 0
    "linearity_nores": [[1.0, 0.01, 1.0, 2.0, 0.9], [-1.0, 0.01, 1.0, 2.0, -0.3]],  # above 1; below 0 and K < 0
}


def test_every_metric_has_a_case():
    assert set(OVERSHOOT) == set(METRIC_RANGE)


@pytest.mark.parametrize("metric", sorted(METRIC_RANGE))
def test_curves_steady_states_extrema_and_final_values_are_clipped_to_the_metric(metric):
    low, high = METRIC_RANGE[metric]
    params = OVERSHOOT[metric]
    raw, read = evaluate(params, STEPS), evaluate(params, STEPS, metric)
    outside = lambda v: (np.asarray(v) < low) | (np.asarray(v) > high)  # noqa: E731
    # the cases mean something: each raw extremum leaves the range, and so does part of each raw curve
    assert raw.peak_observable.all() and outside(raw.peak_value).all()
    assert outside(raw.values).any(axis=1).all() and not raw.clipped.any()
    assert read.clipped.tolist() == outside(raw.values).tolist()
    for name in ("values", "steady_state", "peak_value", "final_value"):
        got, ref = getattr(read, name), getattr(raw, name)
        assert (~outside(got)).all(), name
        np.testing.assert_array_equal(got, np.clip(ref, low, high), err_msg=name)
    # what clipping leaves alone: where the extremum is, and what kind it is
    np.testing.assert_array_equal(read.peak_step, raw.peak_step)
    assert read.extremum_kind.tolist() == raw.extremum_kind.tolist()


def test_several_metrics_evaluated_in_one_pass_equal_each_evaluated_alone():
    from dataclasses import fields

    from emergence.curve import evaluate_metrics

    rng = np.random.default_rng(0)
    steps = [0, 3, 50, 400, 5000]
    params = {
        m: np.column_stack(
            [
                rng.normal(0, 3, n),
                rng.uniform(0, 0.01, n),
                rng.uniform(0.01, 2, n),
                rng.uniform(0.5, 5, n),
                rng.normal(1, 2, n),
            ]
        )  # fmt: skip
        for m, n in (("ma_ratio", 4), ("linearity", 7), ("linearity_nores", 1))
    }
    together = evaluate_metrics(params, steps)
    assert list(together) == list(params)
    for metric, p in params.items():
        alone = evaluate(p, steps, metric)
        for f in fields(alone):
            np.testing.assert_array_equal(getattr(together[metric], f.name), getattr(alone, f.name), err_msg=f.name)
    # and with each metric's own correction
    from emergence.curve import Correction

    read_at = np.array([0.0, 10.0, 300.0, 2000.0])
    corrections = {m: Correction(read_at, rng.normal(0, 0.3, (len(p), len(read_at)))) for m, p in params.items()}
    together = evaluate_metrics(params, steps, corrections)
    for metric, p in params.items():
        alone = evaluate(p, steps, metric, correction=corrections[metric])
        for f in fields(alone):
            np.testing.assert_array_equal(getattr(together[metric], f.name), getattr(alone, f.name), err_msg=f.name)


def test_a_grouped_projection_equals_each_groups_own_projection():
    # The service projects every metric in one pass; each row must take the best shape of its own metric only.
    from emergence.curve import Projector, curve

    rng = np.random.default_rng(1)
    steps = np.array([0, 1, 4, 16, 64, 256, 1000], dtype=float)
    shapes = {m: np.column_stack([rng.uniform(0, 0.01, s), rng.uniform(0.01, 1, s), rng.uniform(1, 5, s)])
              for m, s in (("a", 30), ("b", 12), ("c", 50))}  # fmt: skip
    values = {m: np.exp(rng.normal(0, 0.3, (5, len(steps)))) * (2 + curve(steps, 1, *shapes[m][0], 0))
              for m in shapes}  # fmt: skip
    values["b"][2, 3] = np.inf  # a broken row stays broken in its own group
    together = Projector.grouped(steps, shapes)(np.stack(list(values.values())))
    for i, m in enumerate(shapes):
        alone = Projector(steps, shapes[m])(values[m])
        np.testing.assert_allclose(together[i], alone, rtol=1e-9, equal_nan=True)
        assert {tuple(s) for s in together[i][:, 1:4]} <= {tuple(s) for s in shapes[m]}
    assert np.isnan(together[1, 2, [0, 4]]).all() and np.isfinite(together[1, [0, 1, 3, 4]]).all()


def test_shapes_that_draw_one_curve_are_kept_once_so_ties_do_not_depend_on_rounding():
    # λ = 0 with γ and t0 scaled alike draws ln(c·x) = ln c + ln x: the same curve up to K. The projection
    # keeps the first; a flat row stays flat (A = 0 to rounding, not a spurious dip).
    from emergence.curve import Projector, curve

    steps = np.array([0, 2, 8, 32, 128, 512, 1000], dtype=float)
    shapes = np.array([[0.0, 1.0, 1.0], [0.0, 0.1, 0.1], [0.0, 0.01, 0.01], [0.002, 0.5, 2.0], [0.0, 0.05, 1.0]])
    projector = Projector(steps, shapes)
    assert projector.shapes[0].tolist() == [[0.0, 1.0, 1.0], [0.002, 0.5, 2.0], [0.0, 0.05, 1.0]]
    target = 3 + 2 * curve(steps, 1.0, 0.0, 0.1, 0.1, 0.0)  # one of the dropped twins
    (A, lam, gamma, t0, K) = projector(target[None, :])[0]
    assert (lam, gamma, t0) == (0.0, 1.0, 1.0) and A == pytest.approx(2.0)
    np.testing.assert_allclose(curve(steps, A, lam, gamma, t0, K), target, rtol=1e-12)
    flat = projector(np.full((1, len(steps)), 0.7))[0]
    assert abs(flat[0]) < 1e-20 and flat[4] == pytest.approx(0.7)


def test_the_summary_says_which_layers_settle_and_which_keep_growing():
    from service.prediction import describe

    steps = np.array([0.0, 10.0, 100.0, 1000.0])
    params = [[3.0, 0.01, 1.0, 2.0, 5.0], [2.0, 0.0, 0.1, 1.0, 4.0], [2.0, 0.0, 0.1, 1.0, 6.0]]
    text = describe("ma_ratio", evaluate(params, steps, "ma_ratio"), steps)
    assert "settles at 5" in text and "no plateau in layers 2–3" in text
    assert "; peak in layer 1" in text and "layers 1" not in text  # one layer is said as one
    one = describe("ma_ratio", evaluate(params[:2], steps, "ma_ratio"), steps)
    assert "no plateau in layer 2 " in one


def test_the_summary_does_not_say_a_layer_settles_where_it_is_still_far_from_its_limit_at_the_last_step():
    from service.prediction import describe

    steps = np.array([0.0, 10.0, 100.0, 1000.0])
    # layer 1 has reached K = 5 by step 1000; layer 2 peaks late (λ small) and is still ~12 there, its K = 2
    params = [[3.0, 0.01, 1.0, 2.0, 5.0], [20.0, 0.001, 1.0, 2.0, 2.0]]
    curves = evaluate(params, steps, "ma_ratio")
    assert abs(curves.final_value[0] - 5.0) < 0.01 and curves.final_value[1] > 5.0
    text = describe("ma_ratio", curves, steps)
    assert "settles at 5 in layer 1;" in text
    assert "layer 2 still far from the fitted limit (2) at step 1000: where it settles is an extrapolation" in text
    # 10 % of the steady state itself: a layer ending at 2.3 against a limit of 2 has not settled
    near = [[0.12, 0.001, 1.0, 2.0, 2.0]]
    assert 2.25 < evaluate(near, steps, "ma_ratio").final_value[0] < 2.35
    assert "settles at" not in describe("ma_ratio", evaluate(near, steps, "ma_ratio"), steps)
    late = describe("ma_ratio", evaluate(params[1:], steps, "ma_ratio"), steps)
    assert "settles" not in late.replace("it settles", "") and "layer 1 still far" in late


def _dip_then_rise(steps):
    """A measured-like ratio curve: the initialisation's outliers fade over the first steps, then the mechanism
    grows to a plateau. No emergence curve follows both."""
    steps = np.asarray(steps, dtype=np.float64)
    return 1.0 + 5.0 * np.exp(-steps / 6.0) + 20.0 * (1.0 - np.exp(-steps / 300.0))


def test_a_corrected_curve_passes_through_the_values_it_was_projected_from():
    from emergence.curve import Projector, project, projection_steps

    steps = np.array([0, 1, 2, 4, 8, 16, 32, *range(50, 1001, 25)], dtype=np.float64)
    read_at = projection_steps(steps)
    shapes = [(lam, g, t0) for lam in (0.0, 0.003, 0.03) for g in (0.01, 0.1, 1.0) for t0 in (0.5, 1.0, 3.0)]
    values = np.stack([_dip_then_rise(read_at), 2.0 * _dip_then_rise(read_at)])
    params, (correction,) = project(np.log(values)[None], Projector(read_at, shapes), ["ma_ratio"])
    log_factor = correction.log_factor[None]
    bare, served = (
        evaluate(params[0], read_at, "ma_ratio"),
        evaluate(params[0], read_at, "ma_ratio", correction=correction),
    )
    np.testing.assert_allclose(served.values, values, rtol=1e-9)
    assert np.abs(np.log(bare.values / values)).max() > 0.2  # the bare emergence curve misses the transient
    # between the reference steps the correction is interpolated in log(1 + step), row by row
    between = np.array([3.0, 60.0, 700.0])
    for row in range(2):
        want = np.interp(np.log1p(between), np.log1p(read_at), log_factor[0, row])
        np.testing.assert_allclose(correction.at(between)[row], want, rtol=1e-12)
        np.testing.assert_allclose(correction.at_each(np.full(2, between[1]))[row], want[1], rtol=1e-12)
    np.testing.assert_allclose(served.final_value, values[:, -1], rtol=1e-9)  # the last step's value: the curve's


def test_steady_state_and_peak_value_are_read_off_the_corrected_curve():
    from emergence.curve import Correction

    params = np.array([[3.0, 0.01, 1.0, 2.0, 20.0], [2.0, 0.02, 0.5, 1.0, 10.0]])  # both decay to K in range
    read_at = np.array([0.0, 10.0, 1000.0])
    correction = Correction(read_at, np.array([[0.0, 0.2, -0.3], [0.1, -0.1, 0.25]]))
    served = evaluate(params, read_at, "ma_ratio", correction=correction)
    # past the last reference step the correction holds: the steady state is K times its last value
    np.testing.assert_allclose(served.steady_state, params[:, 4] * np.exp([-0.3, 0.25]))
    far = evaluate(params, [1e9], "ma_ratio", correction=correction)
    np.testing.assert_allclose(far.values[:, 0], served.steady_state, rtol=1e-6)
    # the peak value is the corrected curve at the emergence curve's extremum step
    assert served.peak_observable.all()
    for row in range(2):
        one = Correction(read_at, correction.log_factor[row : row + 1])
        at_peak = evaluate(params[row : row + 1], [served.peak_step[row]], "ma_ratio", correction=one)
        np.testing.assert_allclose(served.peak_value[row], at_peak.values[0, 0], rtol=1e-12)
        bare = evaluate(params[row : row + 1], [served.peak_step[row]], "ma_ratio")
        assert abs(served.peak_value[row] / bare.values[0, 0] - 1) > 1e-3  # the correction moved it


def test_a_correction_reads_nan_as_nan_past_the_ends_as_the_ends_and_one_step_everywhere():
    from emergence.curve import Correction

    two = Correction(np.array([0.0, 100.0]), np.array([[0.0, 1.0]]))
    got = two.at_each(np.array([np.nan]))
    assert np.isnan(got).all()
    assert two.at_each(np.array([np.inf]))[0] == 1.0 and two.at([1e12, 0.0]).tolist() == [[1.0, 0.0]]
    np.testing.assert_allclose(two.at([np.expm1(np.log1p(100.0) / 2)]), [[0.5]])
    one = Correction(np.array([10.0]), np.array([[0.5], [0.2]]))
    assert one.at([0, 5, 1e6]).tolist() == [[0.5] * 3, [0.2] * 3]
    assert np.isnan(one.at_each(np.array([np.nan, 3.0]))[0]) and one.at_each(np.array([np.nan, 3.0]))[1] == 0.2


def test_clipped_marks_where_the_served_corrected_curve_leaves_the_range():
    from emergence.curve import Correction

    params = np.array([[3.0, 0.01, 1.0, 2.0, 1.0]])  # a ratio curve that stays above 1 …
    steps = np.array([0.0, 10.0, 100.0])
    down = Correction(steps, np.array([[0.0, -3.0, 0.0]]))  # … corrected below 1 at step 10
    served = evaluate(params, steps, "ma_ratio", correction=down)
    assert not evaluate(params, steps, "ma_ratio").clipped.any()
    assert served.clipped.tolist() == [[False, True, False]] and served.values[0, 1] == 1.0


def test_a_zero_correction_changes_nothing():
    from dataclasses import fields

    from emergence.curve import Correction

    params = np.array(OVERSHOOT["ma_ratio"] + [[3.0, 0.0, 0.1, 1.0, 2.0]])
    zero = Correction(np.array([0.0, 10.0, 1000.0]), np.zeros((len(params), 3)))
    plain, corrected = evaluate(params, STEPS, "ma_ratio"), evaluate(params, STEPS, "ma_ratio", correction=zero)
    for f in fields(plain):
        if f.name != "clipped":  # under a correction it marks the served (corrected) curve, already in range here
            np.testing.assert_array_equal(getattr(corrected, f.name), getattr(plain, f.name), err_msg=f.name)
    assert plain.clipped.any() and not corrected.clipped.any()


def test_reference_steps_are_spread_evenly_in_log_step_over_the_measured_ones():
    from emergence.curve import projection_steps

    steps = [0, 1, 2, 4, 8, 16, 32, *range(50, 1001, 25)]
    read_at = projection_steps(steps, 11)
    assert read_at.tolist() == [0, 1, 4, 8, 16, 32, 75, 125, 250, 500, 1000]
    assert set(read_at) <= set(steps)
    assert projection_steps([0, 10, 20], 11).tolist() == [0, 10, 20]  # fewer measured steps: all of them


def test_extremum_kind_follows_the_sign_of_a_and_the_final_value_the_largest_step_in_any_order():
    params = np.array([[1.0, 0.01, 1.0, 2.0, 3.0], [-1.0, 0.01, 1.0, 2.0, 3.0], [0.0, 0.01, 1.0, 2.0, 3.0],
                       [np.nan, 0.01, 1.0, 2.0, 3.0]])  # fmt: skip
    unsorted = np.array([30.0, 1000.0, 0.0, 5.0])
    curves = evaluate(params, unsorted, "ma_ratio")
    assert curves.extremum_kind.tolist() == ["peak", "dip", "none", "none"]
    at_last = evaluate(params, unsorted, "ma_ratio", last_step=1000.0)  # read at that step, not off the curves
    np.testing.assert_array_equal(curves.final_value[:3], at_last.final_value[:3])
    np.testing.assert_array_equal(curves.final_value[:3], curves.values[:3, 1])
    assert np.isnan(curves.final_value[3])
