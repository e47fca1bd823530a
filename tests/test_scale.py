"""The scale term: slopes measured between runs of one design at several sizes, applied past the trained range."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from emergence.scale import AxisSlope, ScaleTerm
from features import feature_matrix
from service.predictor import Predictor
from training.dataset import build
from training.scale import axis_slopes
from zoo.grid import cpu2_one_factor

REPO = Path(__file__).resolve().parents[1]
SPECS = {spec.name: spec for spec in cpu2_one_factor()}
STEPS = np.array([0.0, 100.0])


def _config(name: str) -> dict:
    return SPECS[name].config(vocab_size=4096, bos_id=1, eos_id=2).to_dict()


def _measured(table: pd.DataFrame, value) -> pd.DataFrame:
    """Every layer of every model at STEPS, ma_ratio = value(model_id, step)."""
    rows = [
        {"model_id": r.model_id, "layer": r.layer, "step": s, "ma_ratio": value(r.model_id, s)}
        for r in table[["model_id", "layer"]].itertuples()
        for s in STEPS
    ]
    return pd.DataFrame(rows)


def test_the_width_slope_comes_from_runs_of_one_design_at_several_widths():
    # llama at d 128/192/256 (heads scaled with d), neox at 128/192, and llama-H8: d 128 like llama, but another
    # head dim, so another design; its very different ratio must not pull the slope
    names = ["llama", "llama-d192", "llama-d256", "neox", "neox-d192", "llama-H8"]
    table = build(names, {n: _config(n) for n in names})
    d = {n: SPECS[n].d for n in names}
    base = {"llama": 3.0, "llama-d192": 3.0, "llama-d256": 3.0, "neox": 1.0, "neox-d192": 1.0, "llama-H8": 9.0}
    truth = {0.0: 0.0, 100.0: 0.8}  # the slope of log ratio on log d at each step
    slopes = axis_slopes(
        table, _measured(table, lambda m, s: math.exp(base[m] + truth[s] * math.log(d[m]))), "ma_ratio", STEPS
    )
    width = slopes["width"]
    assert width.slope == pytest.approx((0.0, 0.8), abs=1e-9)
    assert width.runs == 5 and width.designs == 2 and width.span == (128.0, 256.0)
    assert "depth" not in slopes  # no design was trained at two depths


def test_the_depth_slope_holds_seed_noise_in_its_standard_error():
    names = ["llama", "llama-L2", "llama-L6"]
    table = build(names, {n: _config(n) for n in names})
    noise = {"llama": 0.1, "llama-L2": -0.05, "llama-L6": -0.05}
    value = lambda m, s: math.exp(2.0 - 0.5 * math.log(SPECS[m].layers) + noise[m])  # noqa: E731
    depth = axis_slopes(table, _measured(table, value), "ma_ratio", STEPS)["depth"]
    assert depth.slope[0] == pytest.approx(-0.5, abs=0.2) and depth.se[0] > 0


def _term(slope_last: float) -> ScaleTerm:
    ranges = {"d_model": [128.0, 256.0], "n_layers": [2.0, 10.0]}
    width = AxisSlope((0.0, slope_last), (0.0, 0.1), 5, 2, (128.0, 256.0))
    return ScaleTerm({"ma_ratio": {"width": width}}, ranges, n_steps=2)


def _llama_at(d: int) -> np.ndarray:
    return feature_matrix(
        {**_config("llama"), "hidden_size": d, "num_attention_heads": d // 32, "num_key_value_heads": d // 32}
    )


def test_the_scale_term_is_zero_inside_the_range_grows_with_log_width_past_it_and_holds_past_its_reach():
    term = _term(0.5)  # measured over 128–256: reaches to 512
    assert not term.shift(feature_matrix(_config("llama-d192"))).any()
    # two designs past the edge that differ in width get different curves (trees alone would give the same)
    assert term.shift(_llama_at(320))[0].tolist() == pytest.approx([0.0, 0.5 * math.log(320 / 256)])
    assert term.shift(_llama_at(384))[0, 1] == pytest.approx(0.5 * math.log(384 / 256))
    assert term.beyond(_llama_at(1024)).tolist() == pytest.approx([math.log(4), 0.0])  # (width, depth), log units
    # past the reach of the measured trend the data says nothing more: the shift holds, and says so
    assert term.shift(_llama_at(1024))[0, 1] == term.shift(_llama_at(2048))[0, 1] == pytest.approx(0.5 * math.log(2))
    assert term.held(term.beyond(_llama_at(1024))) == ["width"] and term.held(term.beyond(_llama_at(384))) == []


def test_a_slope_that_failed_its_held_out_test_is_not_applied():
    ranges = {"d_model": [128.0, 256.0], "n_layers": [2.0, 10.0]}
    rejected = AxisSlope((0.0, 0.5), (0.0, 0.1), 5, 2, (128.0, 256.0), applied=False)
    term = ScaleTerm({"ma_ratio": {"width": rejected}}, ranges, n_steps=2)
    assert not term.shift(_llama_at(384)).any()


def test_slopes_for_another_number_of_steps_are_refused():
    width = AxisSlope((0.1, 0.2, 0.3), (0.0, 0.0, 0.0), 3, 1, (128.0, 256.0))
    with pytest.raises(ValueError, match="3 slopes for 2 steps"):
        ScaleTerm({"ma_ratio": {"width": width}}, {"d_model": [128, 256], "n_layers": [2, 10]}, n_steps=2)


def test_the_served_model_tells_apart_designs_past_its_trained_size_within_the_reach_of_its_slopes():
    """Trees alone give every design past the widest or deepest trained one the same curves; where the served
    model applies a slope, two sizes past the edge but within the slope's reach get different curves, and the
    response says the scale term moved them."""
    predictor = Predictor(REPO / "models")
    ranges = predictor.manifest["domain"]["feature_ranges"]
    applied = [(m, axis, s) for m, axes in predictor.manifest["scale"].items() for axis, s in axes.items()
               if s["applied"] and s["slope"][-1]]  # fmt: skip
    assert applied, "the served model applies no scale slope: every design past its range gets the edge's curves"
    metric, axis, slope = applied[0]
    llama = _config("llama")
    if axis == "width":
        edge = ranges["d_model"][1]
        sizes = [int(edge * f) // 32 * 32 for f in (1.2, 1.4)]
        a, b = (
            {**llama, "hidden_size": d, "num_attention_heads": d // 32, "num_key_value_heads": d // 32} for d in sizes
        )
    else:
        edge = ranges["n_layers"][1]
        a, b = ({**llama, "num_hidden_layers": int(edge) + k} for k in (1, 2))
    first, second = predictor.predict(a, [1000]), predictor.predict(b, [1000])
    assert not np.allclose(first.metrics[metric].curves.values, second.metrics[metric].curves.values)
    assert "scale_extrapolated" in {w.code for w in first.warnings}


def _depth_series(factor):
    """(table, metrics, held-out fits): llama at 2, 4 (three seeds), 6 and 8 layers, ma_ratio = factor(layers) × one
    emergence curve."""
    from training.dataset import load_configs
    from training.heldout_fits import HeldOutFits

    names = ["llama", "llama-s1", "llama-s2", "llama-L2", "llama-L6", "llama-L8"]
    configs = load_configs(REPO / "data" / "zoo" / "cpu2" / "configs")
    table = build(names, {n: configs[n] for n in names})
    steps = [0.0, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 100.0, 300.0, 600.0, 1000.0]
    layers = dict(zip(table["model_id"], table["n_layers"], strict=False))
    metrics = pd.DataFrame(
        [{"model_id": m, "layer": layer, "step": s,
          "ma_ratio": factor(layers[m]) * (8.0 + 20.0 * np.exp(-0.002 * (s + 5)) * np.log(s + 5) / 6)}
         for m, layer in zip(table["model_id"], table["layer"], strict=True) for s in steps]
    )  # fmt: skip
    return table, metrics, HeldOutFits(metrics, ["ma_ratio"])


def test_a_depth_slope_that_holds_past_the_range_is_served_and_one_that_overshoots_is_not():
    from training.curve_error import curve_error

    params = {"n_estimators": 30, "min_child_samples": 2}
    # log ratio linear in log depth: the held-out 8- (and 2-) layer models are predicted better with the slope
    table, metrics, fits = _depth_series(lambda L: L**-0.5)
    linear = curve_error(table, metrics, fits, "ma_ratio", params)["extrapolated"]["depth"]
    assert linear["applied"] and linear["with_scale_term"] < linear["without_scale_term"]
    # flat from 4 layers on, lower at 2: the slope through 2–6 overshoots at 8, and is not served
    table, metrics, fits = _depth_series(lambda L: 0.5 if L == 2 else 1.0)
    flat = curve_error(table, metrics, fits, "ma_ratio", params)["extrapolated"]["depth"]
    assert not flat["applied"] and flat["with_scale_term"] > flat["without_scale_term"]


def test_slopes_are_read_between_a_runs_own_checkpoints_and_held_past_the_last():
    """Runs of another recipe are measured at other steps: a reference step between two of a run's checkpoints is
    interpolated (in log step), and past the last step any run measured the last slope is held, not zero."""
    from training.scale import _held, _read_at

    measured = np.array([0.0, 10.0, 100.0, 1000.0])
    logs = np.array([[0.0, 1.0, 2.0, 3.0], [np.nan, 1.0, np.nan, 3.0]])
    got = _read_at(measured, logs, np.array([10.0, 100.0, 4000.0]))
    assert got[0, :2].tolist() == [1.0, 2.0] and np.isnan(got[:, 2]).all()
    assert 1.0 < got[1, 1] < 3.0  # between its own two checkpoints
    fits = _held(np.array([[0.5, 0.1], [0.7, 0.2], [np.nan, np.nan], [np.nan, np.nan]]))
    assert fits[2:] == [(0.7, 0.2), (0.7, 0.2)]
