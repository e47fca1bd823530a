"""archcast sweep: knob values over a base config, every design on the batch path, ranked by one quantity."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from archcast.cli import app as cli_app
from features import ArchcastError, read_spec
from service.predictor import Predictor
from service.sweep import Quantity, expand, parse_vary, quantity_values, read_quantity, sweep_table

from .conftest import REPO

LLAMA = json.loads((REPO / "examples" / "configs" / "llama-2-7b.json").read_text())
METRICS = ["ma_ratio", "linearity", "linearity_nores"]


@pytest.fixture(scope="module")
def predictor() -> Predictor:
    return Predictor(REPO / "models")


def test_vary_options_read_as_the_page_writes_them():
    assert parse_vary("layers=4:12:4") == ("layers", [4, 8, 12])
    assert parse_vary("kv_bias=true,no") == ("kv_bias", [True, False])
    assert parse_vary("norm=rmsnorm,dyt") == ("norm", ["rmsnorm", "dyt"])
    assert parse_vary("rope_theta=1e4,5e5") == ("rope_theta", [1e4, 5e5])
    for bad, message in (("depth=4", "unknown knob 'depth'"), ("glu=maybe", "true or false"),
                         ("layers=4.5", "whole number"), ("layers", "KEY=V1"), ("layers=8:4:1", "START:STOP"),
                         ("norm=batchnorm", "rmsnorm")):  # fmt: skip
        with pytest.raises(ArchcastError, match=message):
            parse_vary(bad)


def test_expand_writes_each_knob_at_its_key_keeps_followers_in_ratio_and_lists_refusals():
    sweep = expand(LLAMA, [parse_vary("width=2048,4096,4100"), parse_vary("layers=2,4")])
    assert [d["width"] for d in sweep.designs] == [2048, 2048, 4096, 4096]
    assert [s.layers for s in sweep.specs] == [2, 4, 2, 4]
    # the FFN keeps Llama-2's 11008 / 4096 to the width; 4100 is not divided by the 32 heads
    assert sweep.specs[0].d_ff == round(11008 / 4096 * 2048) and sweep.specs[2].d_ff == 11008
    assert len(sweep.skipped) == 2 and all("4100" in reason or "divide" in reason for _, reason in sweep.skipped)
    # a multi-head base stays multi-head as the heads vary
    assert [s.kv_heads for s in expand(LLAMA, [parse_vary("heads=8,16")]).specs] == [8, 16]
    # the zoo's changes go under the archcast key
    assert [s.kv_bias for s in expand(LLAMA, [parse_vary("kv_bias=true,false")]).specs] == [True, False]
    with pytest.raises(ArchcastError, match="use --samples"):
        expand(LLAMA, [parse_vary(f"{k}=1:100:1") for k in ("layers", "heads", "kv_heads")])


def test_a_follower_the_family_fixes_is_left_alone_and_varying_it_is_refused():
    gpt2 = json.loads((REPO / "tests" / "data" / "configs" / "gpt2.json").read_text())
    sweep = expand(gpt2, [parse_vary("heads=4,12")])
    assert [(s.heads, s.kv_heads) for s in sweep.specs] == [(4, 4), (12, 12)] and not sweep.skipped
    with pytest.raises(ArchcastError, match="fixed in gpt2"):
        expand(gpt2, [parse_vary("kv_heads=1,2")])


def test_samples_draw_distinct_designs_reproducibly():
    vary = [parse_vary("layers=2:40:2"), parse_vary("width=1024,2048,4096"), parse_vary("glu=true,false")]
    one, again = expand(LLAMA, vary, samples=25, seed=3), expand(LLAMA, vary, samples=25, seed=3)
    assert one.designs == again.designs and len(one.designs) == 25
    assert len({tuple(d.values()) for d in one.designs}) == 25
    assert expand(LLAMA, vary, samples=25, seed=4).designs != one.designs


def test_quantities_read_the_predictions_of_each_design(predictor):
    sweep = expand(LLAMA, [parse_vary("layers=2,5,9"), parse_vary("width=1024,4096")])
    batch = predictor.predict_specs(sweep.specs)
    predictions = [batch.prediction(i) for i in range(len(batch))]
    finals = [p.metrics["ma_ratio"].curves.final_value for p in predictions]
    np.testing.assert_allclose(quantity_values(batch, read_quantity("final:ma_ratio", METRICS)),
                               [f.max() for f in finals])  # fmt: skip
    np.testing.assert_allclose(quantity_values(batch, Quantity("final", "ma_ratio", "min")), [f.min() for f in finals])
    np.testing.assert_allclose(
        quantity_values(batch, Quantity("final", "ma_ratio", "mean")), [f.mean() for f in finals]
    )
    at_five = quantity_values(batch, read_quantity("final:ma_ratio@5", METRICS))
    assert np.isnan(at_five[:2]).all() and np.allclose(at_five[2:], [f[4] for f in finals[2:]])
    onset = quantity_values(batch, read_quantity("onset_layer", METRICS))
    assert [None if np.isnan(v) else v for v in onset] == [p.mechanism.onset_layer for p in predictions]
    for bad in ("final:loss", "last:ma_ratio", "final:ma_ratio@0"):
        with pytest.raises(ArchcastError, match="rank-by"):
            read_quantity(bad, METRICS)


def test_the_table_ranks_every_design_and_puts_the_refused_last(predictor):
    sweep = expand(LLAMA, [parse_vary("layers=2,6,12"), parse_vary("width=1024,1000")])
    quantity = read_quantity("final:ma_ratio", METRICS)
    table, _ = sweep_table(predictor, sweep, quantity)
    ranked = table[table["skipped"] == ""]
    assert ranked["rank"].tolist() == [1, 2, 3] and ranked[quantity.label].is_monotonic_decreasing
    assert table["skipped"].iloc[3:].str.contains("not divisible").all() and table["rank"].iloc[3:].isna().all()
    lowest, _ = sweep_table(predictor, sweep, quantity, lowest_first=True)
    assert lowest[lowest["skipped"] == ""][quantity.label].is_monotonic_increasing
    first = {**LLAMA, "num_hidden_layers": int(table["layers"].iloc[0]), "hidden_size": 1024, "intermediate_size": 2752}
    assert table["n_params"].iloc[0] == read_spec(first).n_params


@pytest.mark.slow
def test_cli_sweep_writes_the_table_and_the_plot_and_refuses_bad_options_first(tmp_path):
    out, plot = tmp_path / "s.csv", tmp_path / "s.png"
    args = ["sweep", "examples/configs/llama-2-7b.json", "--vary", "layers=2:8:2", "--vary", "glu=true,false",
            "--rank-by", "final:ma_ratio@2", "--lowest-first", "--out", str(out), "--plot", str(plot)]  # fmt: skip
    run = CliRunner().invoke(cli_app, args)
    assert run.exit_code == 0, run.output
    table = pd.read_csv(out)
    assert len(table) == 8 and table["rank"].tolist() == list(range(1, 9)) and plot.stat().st_size > 20_000
    assert "8 designs ranked by final ma_ratio (layer 2)" in run.output
    for option, value, message in (("--rank-by", "median:ma_ratio", "rank-by"), ("--out", "s.txt", "--out"),
                                   ("--vary", "depth=2", "unknown knob")):  # fmt: skip
        bad = [*args[: args.index(option) + 1], value, *args[args.index(option) + 2 :]]
        run = CliRunner().invoke(cli_app, bad)
        assert run.exit_code != 0 and message in str(run.exception), (option, run.output)


def test_the_sweep_help_lists_the_knobs_the_page_has():
    from archcast.cli import KNOB_NAMES
    from service.knobs import KNOBS

    assert KNOB_NAMES == tuple(knob.name for knob in KNOBS)  # cli spells them out to keep --help import-light
