"""Predictor v2's building blocks: mechanism targets from measured series, split-conformal bands by step."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from emergence.mechanism import BOS_SHARE, MarginError, carries_mechanism, onset_layer
from training.bands import INTERVAL_LEVEL, conformal_band
from training.dataset import load_measured
from training.mechanism import mechanism_targets, onset_step

REPO = Path(__file__).resolve().parents[1]


def test_onset_is_the_start_of_the_last_unbroken_run_of_the_mechanism():
    steps = np.array([0, 100, 200, 300, 400, 500])
    assert onset_step(steps, [0, 1, 0, 1, 1, 1]) == 300  # a flicker at 100 is not the onset
    assert onset_step(steps, [1, 1, 1, 1, 1, 1]) == 0
    assert np.isnan(onset_step(steps, [0, 0, 1, 1, 1, 0]))  # lost by the end: no mechanism
    assert onset_step(steps[::-1], [1, 1, 1, 0, 1, 0]) == 300  # order of the rows does not matter


def test_mechanism_targets_read_share_margin_and_onset_per_layer():
    steps = [0, 10, 20, 30]
    rows = []
    for layer, (shares, ratio, nonbos) in enumerate(
        [([0.0, 0.2, 1.0, 1.0], 40.0, 10.0), ([0.0, 1.0, 1.0, 1.0], 12.0, 10.0)], start=1
    ):
        for s, share in zip(steps, shares, strict=True):
            rows.append({"model_id": "m", "layer": layer, "step": s, "top1_bos_share": share,
                         "ma_ratio": ratio, "ma_ratio_nonbos": nonbos})  # fmt: skip
    got = mechanism_targets(pd.DataFrame(rows)).set_index("layer")
    assert got.loc[1, "bos_share"] == 1.0 and got.loc[1, "bos_margin"] == pytest.approx(np.log(4.0))
    assert got.loc[1, "onset_step"] == 20
    # on BOS in every window from step 10, but only 1.2× above the rest: a generic outlier, no onset
    assert np.isnan(got.loc[2, "onset_step"])
    assert got["has_mechanism"].tolist() == [1.0, 0.0]
    assert onset_layer(got["has_mechanism"] >= 0.5) == 1 and onset_layer([False, False]) is None
    # the call the predictor makes from a margin agrees with the measured flag here
    assert carries_mechanism(got["bos_margin"]).tolist() == [True, False]


def test_in_the_zoo_a_margin_that_passes_comes_with_the_top1_on_bos():
    """Why the predictor reads mechanism-or-not off its predicted margin alone: in the committed cpu2 zoo the
    share test never binds where the margin passes (emergence.mechanism)."""
    measured = mechanism_targets(load_measured(REPO / "data" / "zoo" / "cpu2").metrics)
    passes = carries_mechanism(measured["bos_margin"])
    assert passes.sum() >= 20
    # all of them on 61 runs; runs that land later may bring the odd exception, not a pattern
    assert (measured.loc[passes, "bos_share"] >= BOS_SHARE).mean() >= 0.95
    assert (passes == (measured["has_mechanism"] == 1)).mean() >= 0.98


def test_a_table_without_the_bos_columns_has_no_mechanism_targets():
    frame = pd.DataFrame({"model_id": ["m"], "layer": [1], "step": [0], "ma_ratio": [5.0]})
    assert mechanism_targets(frame).empty


def test_conformal_bands_cover_their_level_on_data_they_were_not_calibrated_on():
    rng = np.random.default_rng(0)
    n_layers, steps = 400, np.array([0.0, 10.0, 100.0])
    # residuals whose spread grows with the step, as held-out curves do
    residuals = rng.normal(0.0, [0.01, 0.2, 0.5], size=(n_layers, len(steps)))
    residuals[::17, 1] = np.nan  # a step some layers lack
    band = conformal_band(steps, residuals, np.arange(n_layers) % 5)
    assert band["level"] == INTERVAL_LEVEL
    assert abs(band["heldout_coverage"] - INTERVAL_LEVEL) < 0.04
    width = np.array(band["log_high"]) - np.array(band["log_low"])
    assert width[0] < width[1] < width[2]  # per step: a wide late band does not swell the early one
    assert band["log_low"][2] == pytest.approx(-1.2816 * 0.5, rel=0.15)


def test_the_likeliest_onset_weighs_every_layer_and_agrees_with_the_margin_call_at_even_odds():
    from emergence.mechanism import MARGIN_CUT, MarginError, likeliest_onset, mechanism_probability, onset_chances

    independent = MarginError(model_sd=0.0, layer_sd=0.3)
    sure, unlikely = MARGIN_CUT + 1.0, MARGIN_CUT - 1.0
    assert likeliest_onset(onset_chances([sure, sure, sure], independent)) == 1
    assert likeliest_onset(onset_chances([unlikely, unlikely], independent)) is None
    assert likeliest_onset(onset_chances([unlikely, sure, sure], independent)) == 2
    # each of four layers a little under even odds: thresholding says none, yet with independent layers layer 1
    # is the likeliest onset (≈ 0.45 against 0.55⁴ ≈ 0.09 for none)
    under = MARGIN_CUT - 0.04
    chances = onset_chances([under] * 4, independent)
    assert chances.sum() == pytest.approx(1.0) and chances[0] == pytest.approx((1 - chances[1]) ** 4, rel=1e-6)
    assert likeliest_onset(chances) == 1
    chance = mechanism_probability([MARGIN_CUT - 0.3, MARGIN_CUT, MARGIN_CUT + 0.3], residual_sd=0.3)
    assert chance[1] == pytest.approx(0.5) and chance[0] == pytest.approx(1 - chance[2]) and chance[0] < 0.2
    assert ((chance >= 0.5) == carries_mechanism([MARGIN_CUT - 0.3, MARGIN_CUT, MARGIN_CUT + 0.3])).all()


def test_an_offset_shared_by_a_models_layers_makes_no_onset_likelier_than_independent_layers_would():
    from emergence.mechanism import MARGIN_CUT, MarginError, likeliest_onset, onset_chances

    # the same total error; when most of it moves all four layers together, "none of them passes" is about as
    # likely as one layer failing, so the four near-even layers no longer make layer 1 a near certainty
    under = [MARGIN_CUT - 0.04] * 4
    independent = onset_chances(under, MarginError(model_sd=0.0, layer_sd=0.3))
    shared = onset_chances(under, MarginError(model_sd=0.29, layer_sd=0.05))
    assert shared.sum() == pytest.approx(1.0)
    assert shared[0] > 4 * independent[0]
    assert likeliest_onset(shared) is None and likeliest_onset(independent) == 1
    # with no error left per layer and none shared, a layer passes exactly where its margin does
    exact = onset_chances([MARGIN_CUT - 0.1, MARGIN_CUT + 0.1, MARGIN_CUT + 0.2], MarginError(0.0, 0.0))
    assert exact.tolist() == [0.0, 0.0, 1.0, 0.0]


def test_a_manifest_gives_its_margin_error_and_an_older_one_independent_layers():
    assert MarginError.from_scores({}) is None
    assert MarginError.from_scores({"margin_residual_sd": 0.3}) == MarginError(model_sd=0.0, layer_sd=0.3)
    # half a split (a hand-edited or partial manifest) reads as the whole sd, not a crash
    assert MarginError.from_scores({"margin_residual_sd": 0.3, "margin_residual_sd_model": 0.2}).model_sd == 0.0
    scores = {"margin_residual_sd": 0.27, "margin_residual_sd_model": 0.24, "margin_residual_sd_layer": 0.13}
    assert MarginError.from_scores(scores) == MarginError(model_sd=0.24, layer_sd=0.13)


@pytest.mark.parametrize("model_sd, layer_sd", [(0.236, 0.131), (0.29, 0.05), (0.3, 0.02), (0.3, 0.0), (0.0, 0.3)])
def test_onset_chances_match_a_monte_carlo_of_the_shared_offset_and_per_layer_errors(model_sd, layer_sd):
    from emergence.mechanism import MARGIN_CUT, onset_chances

    rng = np.random.default_rng(7)
    n = 400_000
    for margins in ([MARGIN_CUT + 0.05, MARGIN_CUT - 0.1], [MARGIN_CUT - 0.02, MARGIN_CUT + 0.5],
                    [0.3, 0.7, 0.9, 0.6, 0.8]):  # fmt: skip
        error = MarginError(model_sd, layer_sd)
        drawn = np.asarray(margins)[None, :] + rng.standard_normal((n, 1)) * model_sd
        passes = drawn + rng.standard_normal((n, len(margins))) * layer_sd >= MARGIN_CUT
        first = np.where(passes.any(axis=1), passes.argmax(axis=1) + 1, 0)
        expected = np.bincount(first, minlength=len(margins) + 1) / n
        got = onset_chances(margins, error)
        np.testing.assert_allclose(got, expected, atol=0.004)  # ~5 sd of the draw's noise
        assert got.sum() == pytest.approx(1.0)


def test_a_margin_the_model_could_not_give_falls_back_to_the_first_layer_that_passes():
    from emergence.mechanism import MARGIN_CUT, onset_chances
    from service.prediction import mechanism_prediction

    margins = np.array([MARGIN_CUT + 1.0, np.nan, MARGIN_CUT - 1.0])
    assert np.isnan(onset_chances(margins, MarginError(0.2, 0.1))).all()
    got = mechanism_prediction({"bos_margin": margins}, MarginError(0.2, 0.1))
    assert got.onset_layer == 1 and got.to_json()["onset_chance"] is None


def test_mechanism_bands_hold_the_prediction_stay_in_range_and_give_no_onset_band_without_the_mechanism():
    from service.prediction import mechanism_prediction

    targets = {"bos_share": np.array([0.95, 0.2]), "bos_margin": np.array([1.2, 0.1]),
               "onset_step": np.array([300.0, 50.0])}  # fmt: skip
    bands = {"bos_share": {"low": -0.3, "high": 0.2}, "bos_margin": {"low": -0.4, "high": 0.3},
             "onset_step": {"low": -0.5, "high": 0.5}}  # fmt: skip
    got = mechanism_prediction(targets, MarginError(model_sd=0.0, layer_sd=0.3), intervals=bands)
    low, high = got.intervals["bos_share"]
    assert low.tolist() == pytest.approx([0.65, 0.0]) and high.tolist() == pytest.approx([1.0, 0.4])
    low, high = got.intervals["bos_margin"]
    assert (low <= got.bos_margin).all() and (got.bos_margin <= high).all() and low[1] == 0.0
    low, high = got.intervals["onset_step"]  # learned in log(1 + step): the band is multiplicative there
    assert low[0] == pytest.approx(np.expm1(np.log1p(300) - 0.5)) and np.isnan(low[1]) and np.isnan(high[1])
    row = got.to_json()["layers"][0]
    assert row["intervals"]["bos_share"] == pytest.approx([0.65, 1.0])


def test_the_served_onset_says_how_likely_it_is_and_an_older_model_says_nothing():
    from emergence.mechanism import MARGIN_CUT, onset_chances
    from service.prediction import mechanism_prediction

    margins = np.array([MARGIN_CUT - 0.2, MARGIN_CUT + 0.3, MARGIN_CUT + 0.4])
    error = MarginError(model_sd=0.2, layer_sd=0.1)
    got = mechanism_prediction({"bos_margin": margins}, error)
    assert got.onset_layer == 2
    assert got.onset_chance == pytest.approx(onset_chances(margins, error)[2]) and 0.3 < got.onset_chance < 1
    assert got.to_json()["onset_chance"] == pytest.approx(got.onset_chance)
    assert f"from layer 2 (chance {got.onset_chance:.0%})" in got.describe()
    older = mechanism_prediction({"bos_margin": margins})
    assert older.onset_layer == 2 and older.to_json()["onset_chance"] is None and "chance" not in older.describe()


def test_the_onset_chance_calibration_counts_each_run_in_its_bin():
    from training.onset_error import chance_calibration

    chance = {"a": 0.3, "b": 0.45, "c": 0.6, "d": 0.95, "e": 1.0}
    right = {"a": False, "b": True, "c": True, "d": True, "e": False}
    bins = chance_calibration(chance, right)
    assert [(b["low"], b["runs"]) for b in bins] == [(0.0, 2), (0.5, 1), (0.8, 2)]  # a chance of 1 is in the last
    assert bins[0]["mean_chance"] == pytest.approx(0.375) and bins[0]["right"] == 0.5
    assert bins[2]["right"] == 0.5 and bins[1]["right"] == 1.0


def test_designs_are_scored_on_their_seeds_most_common_onset_and_split_by_seed_agreement():
    from training.onset_error import score_designs
    from training.report import design_onset_lines

    onsets = {"once": [2], "agree": [1, 1, 1], "split": [2, 1, 2], "tie": [1, None], "none": [None, None, 3]}
    guess = {"once": 2, "agree": 1, "split": 1, "tie": 1, "none": None}
    scored = score_designs(onsets, guess)
    assert scored["designs"] == 4  # the tie has no most common onset and is left out
    assert scored["exact"] == 0.75
    assert scored["by_seed_agreement"] == {
        "single": {"designs": 1, "exact": 1.0},
        "unanimous": {"designs": 1, "exact": 1.0},
        "split": {"designs": 2, "exact": 0.5},  # "split" guessed 1 against its mode 2; "none" right on None
    }
    report = {"onset_layer_exact_designs": scored["exact"], "designs_scored": scored["designs"], "designs": 5,
              "onset_layer_exact_designs_by_seed_agreement": scored["by_seed_agreement"]}  # fmt: skip
    (line,) = design_onset_lines(report)
    assert (
        "exact in 75% of 4 designs: 100% of the 1 trained once" in line and "50% of the 2 whose seeds disagree" in line
    )


def test_outside_the_training_domain_the_mechanism_is_read_with_a_wider_error_and_inside_it_is_not():
    from emergence.mechanism import MARGIN_CUT, onset_chances
    from service.prediction import mechanism_prediction

    targets = {"bos_share": np.array([0.9, 0.3, 0.95]), "bos_margin": MARGIN_CUT + np.array([0.4, -0.5, 0.2])}
    bands = {"bos_share": {"low": -0.2, "high": 0.1}, "bos_margin": {"low": -0.3, "high": 0.25}}
    error = MarginError(model_sd=0.2, layer_sd=0.1)
    inside = mechanism_prediction(targets, error, bands)
    assert mechanism_prediction(targets, error, bands, widen=np.ones(3)).to_json() == inside.to_json()
    outside = mechanism_prediction(targets, error, bands, widen=np.array([1.0, 3.0, 2.0]))
    # each layer's chance nearer even odds, on the same side of them: the margin's call does not change
    assert (np.abs(outside.probability - 0.5) < np.abs(inside.probability - 0.5)).all()
    assert ((outside.probability >= 0.5) == (inside.probability >= 0.5)).all()
    assert outside.onset_chance == pytest.approx(float(onset_chances(targets["bos_margin"], error.widened(3.0))[1]))
    assert (outside.has_mechanism == inside.has_mechanism).all()
    # the bands stretch per layer by that layer's factor, around the same prediction
    (low_in, high_in), (low_out, high_out) = inside.intervals["bos_margin"], outside.intervals["bos_margin"]
    assert (high_out - outside.bos_margin) == pytest.approx((high_in - inside.bos_margin) * np.array([1, 3, 2]))
    assert (low_out <= low_in).all()
    for bad in (np.array([1.0, np.nan, 2.0]), np.array([1.0, 0.5, 2.0]), np.ones(2)):  # no silent NaN or narrowing
        with pytest.raises(ValueError, match="widen"):
            mechanism_prediction(targets, error, bands, widen=bad)


def test_a_config_far_from_the_zoo_says_its_mechanism_chances_are_widened():
    import json

    from emergence.mechanism import MECHANISM
    from features import read_spec, spec_matrix
    from service.prediction import mechanism_prediction
    from service.predictor import Predictor

    config = json.loads((REPO / "examples" / "configs" / "llama-2-7b.json").read_text())
    predictor = Predictor()
    got = predictor.predict(config)
    (widened,) = [w for w in got.warnings if w.code == "interval_widened"]
    assert "mechanism's chances" in widened.message and widened.value > 1
    # the same regressor outputs read with the zoo's own error: every layer's chance moves towards even odds
    _, layer_outputs = predictor.run(predictor.with_recipe(spec_matrix(read_spec(config)), None))
    targets = predictor.layer_values(layer_outputs)[MECHANISM]
    plain = mechanism_prediction(targets, predictor._margin_error, predictor._mechanism_bands)
    assert (np.abs(got.mechanism.probability - 0.5) < np.abs(plain.probability - 0.5)).all()
    # far out, no layer is called with the zoo's confidence either way
    assert (np.abs(got.mechanism.probability - 0.5) < 0.3).all()


def test_the_response_tells_the_likeliest_onset_from_the_first_layer_that_passes():
    """Margins each a little under the cut: no layer passes, yet with a shared offset an onset is likelier than
    none. The response names both, and its definition says which is which."""
    from emergence.mechanism import MARGIN_CUT
    from service.prediction import mechanism_prediction

    margins = np.full(6, MARGIN_CUT - 0.05)
    got = mechanism_prediction({"bos_margin": margins}, MarginError(model_sd=1.0, layer_sd=0.1)).to_json()
    assert got["first_layer_with_mechanism"] is None and not any(row["has_mechanism"] for row in got["layers"])
    assert got["onset_layer"] == 1  # an onset somewhere is likelier than none, the first layer likeliest
    assert "first_layer_with_mechanism" in got["definition"] and "onset_layer" in got["definition"]
    passing = mechanism_prediction({"bos_margin": margins + 0.5}).to_json()
    assert passing["first_layer_with_mechanism"] == passing["onset_layer"] == 1


def test_a_feature_the_zoo_never_varied_widens_with_distance_not_as_a_step():
    """Every zoo run has a vocabulary of 4,096 (a training span of zero): one token more is a small distance from
    it, a ReLU where the zoo had none a whole unit; before, both were infinitely far and took the cap."""
    import json

    from features import read_spec, spec_matrix
    from service.predictor import MAX_WIDENING, Predictor

    predictor = Predictor()
    config = json.loads((REPO / "data" / "zoo" / "cpu2" / "configs" / "llama.json").read_text())
    rows = lambda c: spec_matrix(read_spec(c)).astype(np.float64)  # noqa: E731
    assert (predictor.widening(rows(config)) == 1.0).all()
    one_more = predictor.widening(rows({**config, "vocab_size": config["vocab_size"] + 1}))
    assert (one_more > 1.0).all() and (one_more < 1.001).all()
    relu = predictor.widening(rows({**config, "hidden_act": "relu"}))
    assert (relu == pytest.approx(2.0)) and (relu < 1 + MAX_WIDENING).all()
