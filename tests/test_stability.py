"""Figures over LightGBM seeds, the promotion rule on their means, evaluations cached by code, and held-out folds
whose shapes never saw the held-out designs."""

import json
import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from training.fit import fit_table
from training.heldout_fits import HeldOutFits
from training.pipeline import EVALUATED_BY, Evaluation, code_digest, seed_means, should_promote
from training.stability import stability, stability_lines

ZOO = Path(__file__).resolve().parents[1] / "data" / "zoo" / "cpu2"


def _zoo_metrics(names: list[str]) -> pd.DataFrame:
    return pd.concat([pd.read_parquet(ZOO / "runs" / f"{n}.parquet") for n in names], ignore_index=True)


def test_a_folds_fits_do_not_move_when_the_held_out_models_series_do():
    names = ["llama", "neox", "gpt2", "qwen2", "llama-kvbias"]
    metrics = _zoo_metrics(names)
    held_out = metrics["model_id"] == "llama-kvbias"
    changed = metrics.assign(ma_ratio=np.where(held_out, metrics["ma_ratio"] * 50.0, metrics["ma_ratio"]))
    train = names[:-1]
    before = HeldOutFits(metrics, ["ma_ratio"]).fits(train)
    after = HeldOutFits(changed, ["ma_ratio"]).fits(train)
    pd.testing.assert_frame_equal(before, after)
    assert set(before["model_id"]) == set(train)
    # the served fits' population prior has seen every model: fitted over all, the training side moves
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        served = [fit_table(m, ["ma_ratio"]) for m in (metrics, changed)]
    kept = [f[f["model_id"].isin(train)].reset_index(drop=True) for f in served]
    assert not np.allclose(kept[0]["A"], kept[1]["A"], equal_nan=True)


def test_held_out_fits_are_kept_on_disk_and_read_back(tmp_path):
    metrics = _zoo_metrics(["llama", "neox", "gpt2"])
    first = HeldOutFits(metrics, ["ma_ratio"], tmp_path, key="k").fits(["llama", "neox"])
    assert len(list(tmp_path.glob("heldout-fits-*.parquet"))) == 1
    again = HeldOutFits(metrics.iloc[:0], ["ma_ratio"], tmp_path, key="k").fits(["neox", "llama"])  # no series
    pd.testing.assert_frame_equal(first, again)


def test_the_evaluation_cache_key_follows_the_code(tmp_path):
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "a.py").write_text("x = 1\n")
    first = code_digest(("pkg",), tmp_path)
    (package / "a.py").write_text("x = 2\n")
    assert code_digest(("pkg",), tmp_path) != first
    (package / "a.py").write_text("x = 1\n")
    assert code_digest(("pkg",), tmp_path) == first
    assert {"training", "emergence", "features"} <= set(EVALUATED_BY)


def test_promotion_refuses_worse_held_out_recipe_variants():
    curves = {"ma_ratio": 0.2}
    better = (0.3, 0.2, {"ma_ratio": 0.19}, curves)
    promoted, reason = should_promote(
        *better, challenger_recipes={"ma_ratio": 0.25}, champion_recipes={"ma_ratio": 0.2}
    )
    assert not promoted and "recipe variants worse" in reason
    assert should_promote(*better, challenger_recipes={"ma_ratio": 0.2}, champion_recipes={"ma_ratio": 0.2})[0]
    assert should_promote(*better, challenger_recipes=None, champion_recipes=None)[0]


def _evaluation(seed: int, r2: float, curve: float, onset: float) -> Evaluation:
    return Evaluation({}, [{"metric": "ma_ratio", "median_abs_log_ratio": curve}], r2,
                      {"onset_layer_exact_designs": onset}, [], seed)  # fmt: skip


def test_promotion_reads_the_mean_over_seeds_not_the_first_seed():
    # seed 0 alone would promote the challenger; over three seeds it is worse
    challenger = [_evaluation(0, 0.50, 0.10, 0.9), _evaluation(1, 0.30, 0.30, 0.7), _evaluation(2, 0.31, 0.30, 0.7)]
    champion = [_evaluation(0, 0.40, 0.20, 0.8), _evaluation(1, 0.40, 0.20, 0.8), _evaluation(2, 0.40, 0.20, 0.8)]
    first = should_promote(0.50, 0.40, {"ma_ratio": 0.10}, {"ma_ratio": 0.20})
    mine, theirs = seed_means(challenger), seed_means(champion)
    assert first[0] and mine["r2"] == pytest.approx(0.37) and mine["onset"] == pytest.approx(0.7667, abs=1e-4)
    assert not should_promote(mine["r2"], theirs["r2"], mine["curves"], theirs["curves"])[0]


def test_stability_gives_each_figure_per_seed_with_its_mean_and_range():
    block = stability([0, 1, 2], [{"rank": 0.8, "x": 1.0}, {"rank": -0.2, "x": 2.0}, {"rank": math.nan, "x": 3.0}])
    assert block["figures"]["x"] == {"values": [1.0, 2.0, 3.0], "mean": 2.0, "min": 1.0, "max": 3.0}
    rank = block["figures"]["rank"]  # a NaN seed (a flat profile) is shown, and left out of the summary
    assert math.isnan(rank["values"][2]) and rank["mean"] == pytest.approx(0.3) and rank["min"] == -0.2
    lines = stability_lines(block)
    assert any(line.startswith("| rank | 0.800 | -0.200 | — | 0.300 | -0.200 to 0.800 |") for line in lines)
    assert stability_lines(stability([0], [{"x": 1.0}])) == []  # one seed: no table
    named = stability_lines(stability([0, 1], [{"a median |log|": 0.1}, {"a median |log|": 0.2}]))
    assert named[-1] == "| a median \\|log\\| | 0.100 | 0.200 | 0.150 | 0.100 to 0.200 |"  # one row, six cells


@pytest.mark.slow
def test_a_retrain_reports_every_figure_over_its_seeds(smoke_models):
    models, result = smoke_models
    manifest = json.loads((models / result.version / "manifest.json").read_text())
    block = manifest["seed_stability"]
    assert block["seeds"] == [0, 1]
    figures = block["figures"]
    assert figures["cv_mean_r2"]["values"][0] == pytest.approx(manifest["cv_mean_r2"])
    assert all(len(f["values"]) == 2 for f in figures.values())
    assert "heldout ma_ratio × model-free baseline" in figures
    real = [name for name in figures if "rank correlation" in name]
    assert real, "the real-model check runs under every seed"
    card = (models / result.version / "MODEL_CARD.md").read_text()
    assert "## Stability over LightGBM seeds (0, 1)" in card
