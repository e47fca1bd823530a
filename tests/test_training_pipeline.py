"""training/: the retrain pipeline on the smoke zoo — report, export parity, promotion, determinism."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from features import FEATURES, SCHEMA_HASH
from modelstore import current_version
from training.dataset import DESIGN, build, curve_data, load_configs
from training.export import PARITY_TOLERANCE, onnx_predict
from training.pipeline import RetrainConfig, retrain
from training.tune import design_folds, grouped_folds


@pytest.mark.slow
def test_retrain_writes_a_complete_promoted_version(smoke_models):
    models, result = smoke_models
    assert result.promoted and current_version(models) == result.version
    folder = models / result.version
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["schema"]["hash"] == SCHEMA_HASH and manifest["schema"]["features"] == list(FEATURES)
    curves = [t for t in manifest["targets"] if t["kind"] == "curve"]
    assert [t["metric"] for t in curves] == ["ma_ratio", "linearity", "linearity_nores"]  # one regressor each
    for target in manifest["targets"]:
        assert (folder / target["file"]).exists()
        assert target["parity_max_rel_error"] <= PARITY_TOLERANCE
    assert {"lightgbm_optuna", "median_by_step"} <= set(manifest["cv_scores"]["ma_ratio__curve"])
    assert all(len(manifest["shapes"][m]) >= 60 for m in manifest["metrics"])  # fitted shapes and the grid
    for metric, band in manifest["intervals"].items():
        assert band["steps"] == manifest["default_steps"] and 0 < band["heldout_coverage"] <= 1, metric
    assert manifest["recipe"]["tokens_per_step"] == 2 * 32  # the smoke recipe: 2 sequences of 32 tokens
    assert manifest["reference_rows"]
    assert (folder / "MODEL_CARD.md").read_text().startswith("# archcast predictor")
    report = (result.folder.parent.parent / "report.md").read_text()
    assert "published Pythia mean: 0.984" in report and "median |log(pred/measured)|" in report


@pytest.mark.slow
def test_onnx_matches_lightgbm_on_training_rows(smoke_zoo, smoke_models):
    from training.tune import lgbm

    models, result = smoke_models
    metrics, configs, _ = smoke_zoo
    from training.dataset import curve_data, load_measured

    table = pd.read_parquet(result.folder.parent.parent / "dataset.parquet")
    manifest = json.loads((models / result.version / "manifest.json").read_text())
    target = manifest["targets"][0]  # the ma_ratio curve regressor: features and the step in
    data = curve_data(table, load_measured(metrics).metrics, "ma_ratio")
    assert target["name"] == "ma_ratio__curve" and data.X.shape[1] == len(FEATURES) + 1
    expected = lgbm(target["params"]).fit(data.X, data.y).predict(data.X)
    got = onnx_predict(models / result.version / target["file"], data.X)
    assert np.max(np.abs(got - expected) / np.maximum(1, np.abs(expected))) <= PARITY_TOLERANCE


@pytest.mark.slow
def test_grouped_folds_never_split_a_design_as_the_pipeline_groups_them(smoke_zoo):
    metrics, configs, _ = smoke_zoo
    from training.fit import fit_table

    table = build(fit_table(pd.read_parquet(metrics))["model_id"], load_configs(configs))
    data = curve_data(table, pd.read_parquet(metrics), "ma_ratio")  # the groups the pipeline's CV is given
    assert set(data.groups) == set(table[DESIGN])
    for train, test in grouped_folds(data.groups):
        assert not set(data.groups[train]) & set(data.groups[test])


def test_design_folds_hold_out_each_design_once_with_its_seed_replicates():
    designs = np.array(["a", "a", "b", "c", "c", "c", "b"])  # rows: layers of runs, seeds of one design alike
    folds = design_folds(designs)
    assert len(folds) == 3
    held = [set(designs[test]) for _, test in folds]
    assert sorted(d for h in held for d in h) == ["a", "b", "c"] and all(len(h) == 1 for h in held)
    for train, test in folds:
        assert len(train) + len(test) == len(designs) and not set(designs[train]) & set(designs[test])
    with pytest.raises(ValueError, match="at least 2"):
        design_folds(np.array(["a", "a"]))


@pytest.mark.slow
def test_same_seed_retrains_give_identical_models_and_champion_is_kept(smoke_zoo, smoke_models, tmp_path):
    metrics, configs, _ = smoke_zoo
    models, first = smoke_models
    second = retrain(RetrainConfig(metrics, configs, models, tmp_path / "work", n_trials=3, seed=0, seeds=2))
    a = json.loads((models / first.version / "manifest.json").read_text())["targets"]
    b = json.loads((second.folder / "manifest.json").read_text())["targets"]
    assert [t["params"] for t in a] == [t["params"] for t in b]
    for ta, tb in zip(a, b, strict=True):
        width = len(FEATURES) + (ta["kind"] == "curve")  # a curve regressor also reads the step
        X = np.random.default_rng(0).normal(size=(7, width)).astype(np.float32)
        np.testing.assert_array_equal(
            onnx_predict(models / first.version / ta["file"], X), onnx_predict(second.folder / tb["file"], X)
        )
    # the same data and seed cannot beat the champion, so it stays served
    assert second.champion_score == pytest.approx(second.challenger_score)
    assert not second.promoted and current_version(models) == first.version
    # and the same data, hyperparameters and code export the same files under the same name, not a revision
    assert second.version == first.version


@pytest.mark.slow
def test_retrain_needs_configs_for_every_model(smoke_zoo, tmp_path):
    metrics, configs, _ = smoke_zoo
    partial = tmp_path / "configs"
    partial.mkdir()
    (partial / "llama.json").write_text((configs / "llama.json").read_text())
    with pytest.raises(ValueError, match="no config for models"):
        retrain(RetrainConfig(metrics, partial, tmp_path / "models", tmp_path / "work", n_trials=1, seeds=1))


@pytest.mark.slow
def test_fits_are_refitted_when_the_metrics_change(smoke_zoo, tmp_path):
    # The retrain resumes from cached fits; the cache key must follow the metrics it was fitted on.
    from training.dataset import load_measured
    from training.pipeline import fits_key

    metrics, _, _ = smoke_zoo
    copy = tmp_path / "metrics.parquet"
    frame = pd.read_parquet(metrics)
    frame.to_parquet(copy, index=False)
    key = fits_key(load_measured(copy).digest, ("ma_ratio",))
    assert fits_key(load_measured(copy).digest, ("ma_ratio",)) == key
    assert fits_key(load_measured(copy).digest, ("ma_ratio", "linearity")) != key
    frame.loc[0, "ma_ratio"] += 1.0
    frame.to_parquet(copy, index=False)
    assert fits_key(load_measured(copy).digest, ("ma_ratio",)) != key


def test_promotion_needs_better_parameters_and_no_worse_curves():
    from training.pipeline import should_promote

    curves = {"ma_ratio": 0.70, "linearity": 0.04}
    assert should_promote(0.20, 0.15, {"ma_ratio": 0.69, "linearity": 0.04}, curves)[0]
    promoted, reason = should_promote(0.20, 0.15, {"ma_ratio": 0.84, "linearity": 0.03}, curves)
    assert not promoted and "ma_ratio 0.840 > 0.700" in reason
    assert not should_promote(0.15, 0.15, {"ma_ratio": 0.5, "linearity": 0.01}, curves)[0]
    assert should_promote(0.10, 0.15, {"ma_ratio": 0.9, "linearity": 0.1}, curves, force=True)[0]
    assert should_promote(0.10, None, {"ma_ratio": 0.9}, None)[0]


def test_promotion_refuses_a_challenger_that_places_the_onset_layer_in_fewer_held_out_designs():
    from training.pipeline import should_promote

    curves = {"ma_ratio": 0.70}
    better = (0.20, 0.15, {"ma_ratio": 0.69}, curves)
    promoted, reason = should_promote(*better, challenger_onset=0.800, champion_onset=0.815)
    assert not promoted and "80.0% < 81.5%" in reason
    assert should_promote(*better, challenger_onset=0.815, champion_onset=0.815)[0]  # a tie is no worse
    assert should_promote(*better, challenger_onset=0.8, champion_onset=None)[0]  # an older champion: no score
    assert should_promote(*better, force=True, challenger_onset=0.5, champion_onset=0.9)[0]


def test_seed_replicates_share_a_design_and_never_straddle_a_fold():
    # Leave-architecture-out: a seed replicate (the same config under another run name) has the same feature
    # rows, so holding one out while training on the other would score the predictor on a design it has seen.
    from pathlib import Path

    from training.dataset import DESIGN, target_data

    tier = Path(__file__).resolve().parents[1] / "data" / "zoo" / "cpu2" / "configs"
    configs = load_configs(tier)
    names = ["llama", "llama-s1", "llama-s2", "llama-kvbias", "gpt2", "gpt2-s1", "neox", "neox-L2", "qwen2"]
    table = build(names, {n: configs[n] for n in names})
    design = table.groupby("model_id")[DESIGN].first()
    assert design["llama"] == design["llama-s1"] == design["llama-s2"] and design["gpt2"] == design["gpt2-s1"]
    assert design[["llama", "llama-kvbias", "gpt2", "neox", "neox-L2", "qwen2"]].nunique() == 6
    table["target"] = np.arange(len(table), dtype=float)
    data = target_data(table, "target")
    seeds = {"llama", "llama-s1", "llama-s2"}
    for train, test in grouped_folds(data.groups):
        held_out = set(table["model_id"].iloc[test])
        assert not held_out & set(table["model_id"].iloc[train])
        assert not seeds & held_out or seeds <= held_out


def test_curve_error_scores_every_held_out_layer_beside_the_median_curve_baseline():
    # Which layers count must not depend on the fitter: a layer whose fit was too poor to be a training
    # target is still predicted and scored. The baseline is the training models' median measured curve.
    from pathlib import Path

    from training.curve_error import curve_error
    from training.heldout_fits import HeldOutFits

    zoo = Path(__file__).resolve().parents[1] / "data" / "zoo"
    metrics = pd.read_parquet(zoo / "metrics.parquet")
    metrics = metrics[metrics["model_id"].isin(sorted(metrics["model_id"].unique())[::3])]
    fits = HeldOutFits(metrics, ["ma_ratio"])
    table = build(metrics["model_id"], load_configs(zoo / "configs"))
    params = {"n_estimators": 20}
    result = curve_error(table, metrics, fits, "ma_ratio", params)
    unique = metrics[metrics["duplicate_of"].fillna("") == ""]
    assert result["layers"] == len(table) and result["points"] == int(unique["ma_ratio"].notna().sum())
    assert 0 < result["baseline_median_curve"] < 1 and 0 < result["median_abs_log_ratio"] < np.inf
    assert 0 < result["direct_median_abs_log_ratio"] < np.inf and 0 < result["interval"]["heldout_coverage"] <= 1

    same = unique.assign(ma_ratio=unique["step"].map(lambda s: 2.0 + np.log1p(s)))  # every layer the same curve
    assert curve_error(table, same, HeldOutFits(same, ["ma_ratio"]), "ma_ratio", params)["baseline_median_curve"] == 0.0


def test_tuning_is_redone_when_its_budget_or_seed_changes():
    from training.pipeline import tuning_key

    key = tuning_key("abc", 40, 0)
    assert key == tuning_key("abc", 40, 0)
    assert len({key, tuning_key("abd", 40, 0), tuning_key("abc", 41, 0), tuning_key("abc", 40, 1)}) == 4


def test_curve_shapes_come_from_usable_fits_of_the_given_models_plus_a_grid():
    from training.fit import MAX_SHAPES, curve_shapes

    rows = [
        {"model_id": f"m{i % 3}", "layer": i, "metric": "ma_ratio", "lam": 0.1 + i, "gamma": 0.01, "t0": 1.0,
         "r2": 0.2 if i == 4 else 0.9, "t_peak": float(i)}
        for i in range(1, 7)
    ]  # fmt: skip
    fits = pd.DataFrame(rows)
    shapes = curve_shapes(fits, "ma_ratio", 1000.0)
    grid = curve_shapes(fits.iloc[:0], "ma_ratio", 1000.0)
    assert len(grid) == 60 and len(shapes) == 60 + 5  # the poor fit (R² 0.2) lends no shape
    assert 4.1 not in shapes[:, 0] and 1.1 in shapes[:, 0]
    only = curve_shapes(fits, "ma_ratio", 1000.0, models=["m1"])  # layers 1 and 4 (poor) of m1
    assert len(only) == 61 and 1.1 in only[:, 0]
    many = pd.concat([fits.assign(lam=fits["lam"] + 10 * k, layer=fits["layer"] + 10 * k) for k in range(100)])
    assert len(curve_shapes(many, "ma_ratio", 1000.0)) == MAX_SHAPES + 60


@pytest.mark.slow
def test_a_champion_that_keeps_its_place_is_retrained_on_the_new_data(smoke_zoo, smoke_models, tmp_path, monkeypatch):
    import shutil

    import training.pipeline as pipeline

    metrics, configs, _ = smoke_zoo
    models, first = smoke_models
    store = tmp_path / "models"
    shutil.copytree(models, store)
    fewer = tmp_path / "metrics.parquet"  # new data: one run less
    frame = pd.read_parquet(metrics)
    frame[frame["model_id"] != sorted(frame["model_id"].unique())[0]].to_parquet(fewer, index=False)
    (tmp_path / "PROVENANCE.json").write_text((metrics.parent / "PROVENANCE.json").read_text())
    monkeypatch.setattr(pipeline, "should_promote", lambda *a, **k: (False, "the champion wins"))
    result = retrain(RetrainConfig(fewer, configs, store, tmp_path / "work", n_trials=2, seed=0, seeds=1))
    assert result.promoted and "retrained on the new data" in result.reason
    served = json.loads((store / current_version(store) / "manifest.json").read_text())
    champion = json.loads((models / first.version / "manifest.json").read_text())
    assert current_version(store) != first.version and served["data_hash"] != champion["data_hash"]
    assert [t["params"] for t in served["targets"]] == [t["params"] for t in champion["targets"]]


def test_a_second_export_under_a_taken_version_name_gets_the_next_revision(tmp_path):
    from training.pipeline import unused_version

    assert unused_version("20261202-abc-def-s0", tmp_path) == "20261202-abc-def-s0"
    (tmp_path / "20261202-abc-def-s0").mkdir()
    assert unused_version("20261202-abc-def-s0", tmp_path) == "20261202-abc-def-s0-r2"
    (tmp_path / "20261202-abc-def-s0-r2").mkdir()
    assert unused_version("20261202-abc-def-s0", tmp_path) == "20261202-abc-def-s0-r3"
