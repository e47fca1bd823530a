"""The scale term: slopes measured between runs of one design at several sizes, applied past the trained range."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from features import feature_matrix
from features.scale import AxisSlope, ScaleTerm
from training.dataset import build
from training.scale import axis_slopes
from zoo.grid import cpu2_one_factor

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


def test_the_scale_term_is_zero_inside_the_range_and_grows_with_log_width_past_it():
    term = _term(0.5)
    inside = feature_matrix(_config("llama-d192"))
    assert not term.shift(inside).any()
    wide = feature_matrix(
        {**_config("llama"), "hidden_size": 1024, "num_attention_heads": 32, "num_key_value_heads": 32}
    )
    wider = feature_matrix(
        {**_config("llama"), "hidden_size": 2048, "num_attention_heads": 64, "num_key_value_heads": 64}
    )
    assert term.shift(wide)[0].tolist() == pytest.approx([0.0, 0.5 * math.log(1024 / 256)])
    # two designs past the edge that differ in width get different curves (trees alone would give the same)
    assert term.shift(wider)[0, 1] - term.shift(wide)[0, 1] == pytest.approx(0.5 * math.log(2))
    assert term.beyond(wide).tolist() == pytest.approx([math.log(4), 0.0])  # (width, depth), in log units


def test_slopes_for_another_number_of_steps_are_refused():
    width = AxisSlope((0.1, 0.2, 0.3), (0.0, 0.0, 0.0), 3, 1, (128.0, 256.0))
    with pytest.raises(ValueError, match="3 slopes for 2 steps"):
        ScaleTerm({"ma_ratio": {"width": width}}, {"d_model": [128, 256], "n_layers": [2, 10]}, n_steps=2)
