"""features/curve.py: every value `evaluate` reads off a curve (the curve, its steady state, its extremum and its
final value) lies inside what the metric can be, and `clipped` marks exactly the steps where the raw curve left it."""

from __future__ import annotations

import numpy as np
import pytest

from features.curve import METRIC_RANGE, evaluate

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
