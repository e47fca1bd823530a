"""training/: the retrain pipeline on the smoke zoo — report, export parity, promotion, determinism."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from features import FEATURES, SCHEMA_HASH
from training.dataset import build, load_configs
from training.export import PARITY_TOLERANCE, current_version, onnx_predict
from training.pipeline import retrain
from training.tune import grouped_folds


def test_retrain_writes_a_complete_promoted_version(smoke_models):
    models, result = smoke_models
    assert result.promoted and current_version(models) == result.version
    folder = models / result.version
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["schema"]["hash"] == SCHEMA_HASH and manifest["schema"]["features"] == list(FEATURES)
    assert len(manifest["targets"]) == 15  # 3 metrics × 5 parameters
    for target in manifest["targets"]:
        assert (folder / target["file"]).exists()
        assert target["parity_max_rel_error"] <= PARITY_TOLERANCE
    assert {"lightgbm_optuna", "mean", "ridge", "paper_rf_grouped", "paper_rf_random_split"} <= set(
        manifest["cv_scores"]["ma_ratio__K"]
    )
    assert (folder / "MODEL_CARD.md").read_text().startswith("# archcast predictor")
    report = (result.folder.parent.parent / "report.md").read_text()
    assert "published Pythia mean: 0.984" in report and "median |log(pred/measured)|" in report


def test_onnx_matches_lightgbm_on_training_rows(smoke_zoo, smoke_models):
    from training.tune import lgbm

    models, result = smoke_models
    metrics, configs, _ = smoke_zoo
    table = pd.read_parquet(result.folder.parent.parent / "dataset.parquet")
    manifest = json.loads((models / result.version / "manifest.json").read_text())
    target = manifest["targets"][0]
    rows = table[target["name"]].notna()
    X = table.loc[rows, list(FEATURES)].to_numpy(np.float32)
    expected = lgbm(target["params"]).fit(X, table.loc[rows, target["name"]]).predict(X)
    got = onnx_predict(models / result.version / target["file"], X)
    assert np.max(np.abs(got - expected) / np.maximum(1, np.abs(expected))) <= PARITY_TOLERANCE


def test_grouped_folds_never_split_a_model(smoke_zoo):
    metrics, configs, _ = smoke_zoo
    from training.fit import fit_table

    table = build(fit_table(pd.read_parquet(metrics)), load_configs(configs))
    for train, test in grouped_folds(table["model_id"].to_numpy()):
        assert not set(table["model_id"].iloc[train]) & set(table["model_id"].iloc[test])


def test_same_seed_retrains_give_identical_models_and_champion_is_kept(smoke_zoo, smoke_models, tmp_path):
    metrics, configs, _ = smoke_zoo
    models, first = smoke_models
    second = retrain(metrics, configs, models, tmp_path / "work", n_trials=3, seed=0)
    a = json.loads((models / first.version / "manifest.json").read_text())["targets"]
    b = json.loads((second.folder / "manifest.json").read_text())["targets"]
    assert [t["params"] for t in a] == [t["params"] for t in b]
    X = np.random.default_rng(0).normal(size=(7, len(FEATURES))).astype(np.float32)
    for ta, tb in zip(a, b, strict=True):
        np.testing.assert_array_equal(
            onnx_predict(models / first.version / ta["file"], X), onnx_predict(second.folder / tb["file"], X)
        )
    # the same data and seed cannot beat the champion, so it stays served
    assert second.champion_score == pytest.approx(second.challenger_score)
    assert not second.promoted and current_version(models) == first.version


def test_retrain_needs_configs_for_every_model(smoke_zoo, tmp_path):
    metrics, configs, _ = smoke_zoo
    partial = tmp_path / "configs"
    partial.mkdir()
    (partial / "llama.json").write_text((configs / "llama.json").read_text())
    with pytest.raises(ValueError, match="no config for models"):
        retrain(metrics, partial, tmp_path / "models", tmp_path / "work", n_trials=1)


def test_fits_are_refitted_when_the_metrics_change(smoke_zoo, tmp_path):
    # The retrain resumes from cached fits; the cache key must follow the metrics it was fitted on.
    from training.pipeline import fits_key

    metrics, _, _ = smoke_zoo
    copy = tmp_path / "metrics.parquet"
    frame = pd.read_parquet(metrics)
    frame.to_parquet(copy, index=False)
    key = fits_key(copy, ("ma_ratio",))
    assert fits_key(copy, ("ma_ratio",)) == key
    assert fits_key(copy, ("ma_ratio", "linearity")) != key
    frame.loc[0, "ma_ratio"] += 1.0
    frame.to_parquet(copy, index=False)
    assert fits_key(copy, ("ma_ratio",)) != key


def test_promotion_needs_better_parameters_and_no_worse_curves():
    from training.pipeline import should_promote

    curves = {"ma_ratio": 0.70, "linearity": 0.04}
    assert should_promote(0.20, 0.15, {"ma_ratio": 0.69, "linearity": 0.04}, curves)[0]
    promoted, reason = should_promote(0.20, 0.15, {"ma_ratio": 0.84, "linearity": 0.03}, curves)
    assert not promoted and "ma_ratio 0.840 > 0.700" in reason
    assert not should_promote(0.15, 0.15, {"ma_ratio": 0.5, "linearity": 0.01}, curves)[0]
    assert should_promote(0.10, 0.15, {"ma_ratio": 0.9, "linearity": 0.1}, curves, force=True)[0]
    assert should_promote(0.10, None, {"ma_ratio": 0.9}, None)[0]


def test_curve_error_scores_every_held_out_layer_beside_the_median_curve_baseline():
    # Which layers count must not depend on the fitter: a layer whose fit was too poor to be a training
    # target is still predicted and scored. The baseline is the training models' median measured curve.
    import warnings
    from pathlib import Path

    from training.dataset import target_name
    from training.evaluate import curve_error
    from training.fit import fit_table

    zoo = Path(__file__).resolve().parents[1] / "data" / "zoo"
    metrics = pd.read_parquet(zoo / "metrics.parquet")
    metrics = metrics[metrics["model_id"].isin(sorted(metrics["model_id"].unique())[::3])]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = build(fit_table(metrics, ["ma_ratio"]), load_configs(zoo / "configs"))
    table.loc[:4, [target_name("ma_ratio", p) for p in ("A", "lam", "gamma", "t0", "K")]] = np.nan
    params = {target_name("ma_ratio", p): {"n_estimators": 5} for p in ("A", "lam", "gamma", "t0", "K")}
    result = curve_error(table, metrics, "ma_ratio", params)
    unique = metrics[metrics["duplicate_of"].fillna("") == ""]
    assert result["layers"] == len(table) and result["points"] == int(unique["ma_ratio"].notna().sum())
    assert 0 < result["baseline_median_curve"] < 1 and 0 < result["median_abs_log_ratio"] < np.inf

    same = unique.assign(ma_ratio=unique["step"].map(lambda s: 2.0 + np.log1p(s)))  # every layer the same curve
    assert curve_error(table, same, "ma_ratio", params)["baseline_median_curve"] == 0.0


def test_tuning_is_redone_when_its_budget_or_seed_changes():
    from training.pipeline import tuning_key

    key = tuning_key("abc", 40, 0)
    assert key == tuning_key("abc", 40, 0)
    assert len({key, tuning_key("abd", 40, 0), tuning_key("abc", 41, 0), tuning_key("abc", 40, 1)}) == 4


def test_atypical_fits_are_recorded_but_are_not_regression_targets():
    from pathlib import Path

    from training.dataset import target_name

    zoo = Path(__file__).resolve().parents[1] / "data" / "zoo"
    configs = load_configs(zoo / "configs")
    model = sorted(configs)[0]
    fits = pd.DataFrame(
        [
            {"model_id": model, "layer": layer, "metric": "ma_ratio", "A": 1.0, "lam": 0.1, "gamma": 0.01,
             "t0": 1.0, "K": 5.0, "r2": 0.9, "atypical": layer == 2}
            for layer in range(1, 5)
        ]
    )  # fmt: skip
    table = build(fits, {model: configs[model]}).set_index("layer")
    assert np.isnan(table.loc[2, target_name("ma_ratio", "A")])
    assert table.drop(index=2)[target_name("ma_ratio", "A")].notna().all()
