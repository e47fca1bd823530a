"""A predictor trained on runs of several recipes reads the request's recipe: committed zoo runs of five designs,
each under the reference recipe and at half and twice its learning rate, retrained with a tiny Optuna budget."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from features.recipe import RECIPE_FEATURES
from service.predictor import Predictor
from training.dataset import DESIGN, build, load_configs, load_measured, reference_recipe_rows
from training.pipeline import RetrainConfig, retrain

ZOO = Path(__file__).resolve().parents[1] / "data" / "zoo"
DESIGNS = ("llama", "neox", "gpt2", "qwen2", "llama-kvbias")
VARIANTS = ("lr0.5", "lr2")


def _copy_runs(tier: str, names: list[str], to: Path) -> Path:
    for sub in ("runs", "configs"):
        (to / tier / sub).mkdir(parents=True, exist_ok=True)
    for name in names:
        for suffix in (".parquet", ".json"):
            shutil.copy(ZOO / tier / "runs" / f"{name}{suffix}", to / tier / "runs" / f"{name}{suffix}")
        shutil.copy(ZOO / tier / "configs" / f"{name}.json", to / tier / "configs" / f"{name}.json")
    return to / tier


@pytest.fixture(scope="module")
def tiers(tmp_path_factory):
    base = tmp_path_factory.mktemp("tiers")
    reference = _copy_runs("cpu2", list(DESIGNS), base)
    variants = _copy_runs("recipe", [f"{d}-{v}" for d in DESIGNS for v in VARIANTS], base)
    return reference, variants


@pytest.fixture(scope="module")
def recipe_models(tiers, tmp_path_factory):
    base = tmp_path_factory.mktemp("recipe-retrain")
    retrain(RetrainConfig(tiers, None, base / "models", base / "work", n_trials=2, seed=0, seeds=1))
    return base / "models"


def _llama_config() -> dict:
    return json.loads((ZOO / "cpu2" / "configs" / "llama.json").read_text())


def test_runs_of_several_recipes_keep_each_models_recipe_and_group_by_architecture(tiers):
    measured = load_measured(tiers)
    assert measured.recipe["lr"] == 0.006  # the most runs' recipe is the reference: cpu2's
    assert measured.recipes["llama-lr2"].lr == 0.012 and measured.recipes["llama"].lr == 0.006
    configs = load_configs(measured.configs_dirs)
    table = build(measured.metrics["model_id"], configs, recipes=measured.recipes, reference=measured.reference)
    assert set(RECIPE_FEATURES) <= set(table.columns)
    # a design is its architecture: grouped CV holds it out under every recipe at once
    designs = table.drop_duplicates("model_id").set_index("model_id")[DESIGN]
    for design in DESIGNS:
        assert designs[f"{design}-lr0.5"] == designs[f"{design}-lr2"] == designs[design]
    assert set(reference_recipe_rows(table)["model_id"]) == set(DESIGNS)


def test_the_reference_rows_are_those_of_the_recipe_load_measured_chose(tiers):
    # three recipes of five runs each: a tie, which load_measured breaks once; the table's rows follow that choice
    measured = load_measured(tiers)
    configs = load_configs(measured.configs_dirs)
    chosen = build(measured.metrics["model_id"], configs, recipes=measured.recipes, reference=measured.reference)
    assert measured.reference.lr == measured.recipe["lr"] == 0.006
    assert set(reference_recipe_rows(chosen)["model_id"]) == set(DESIGNS)
    other = build(measured.metrics["model_id"], configs, recipes=measured.recipes,
                  reference=measured.recipes["llama-lr2"])  # fmt: skip
    assert set(reference_recipe_rows(other)["model_id"]) == {f"{d}-lr2" for d in DESIGNS}
    with pytest.raises(ValueError, match="reference recipe"):
        build(measured.metrics["model_id"], configs, recipes=measured.recipes)


def test_one_tier_alone_gives_the_model_without_recipe_features(tiers):
    measured = load_measured(tiers[0])
    assert measured.recipes == {}
    table = build(measured.metrics["model_id"], load_configs(measured.configs_dirs), recipes=measured.recipes)
    assert not set(RECIPE_FEATURES) & set(table.columns)


def test_a_model_measured_in_two_sources_is_refused(tiers):
    with pytest.raises(Exception, match="more than one of the sources"):
        load_measured([tiers[0], tiers[0]])


def test_the_manifest_names_the_recipe_features_and_the_range_the_runs_covered(recipe_models):
    predictor = Predictor(recipe_models)
    domain = predictor.manifest["domain"]
    assert domain["recipe_features"] == list(RECIPE_FEATURES)
    assert domain["recipe_ranges"]["lr"] == [0.003, 0.012]
    assert domain["recipe_ranges"]["steps"] == [1000, 1000]
    # each design under each variant held out against the two baselines that know part of it
    [ratio] = [r for r in predictor.manifest["recipe_error"] if r["metric"] == "ma_ratio"]
    assert ratio["cells"] == len(DESIGNS) * len(VARIANTS)
    assert set(ratio["by_recipe"]) == {"lr=0.003", "lr=0.012"}
    figures = ("median_abs_log_ratio", "baseline_design_curve", "baseline_recipe_curve")
    assert all(np.isfinite(ratio[k]) for k in figures)
    card = (recipe_models / predictor.version / "MODEL_CARD.md").read_text()
    assert "## Recipes (held-out recipe variants)" in card and "| ma_ratio | lr=0.012 | 5 |" in card


def test_a_recipe_change_moves_the_curves_and_is_warned_only_outside_the_runs(recipe_models):
    predictor = Predictor(recipe_models)
    config = _llama_config()
    reference = predictor.predict(config)
    slow, fast = predictor.predict(config, recipe={"lr": 0.003}), predictor.predict(config, recipe={"lr": 0.012})
    curves = [p.metrics["ma_ratio"].curves.values for p in (slow, reference, fast)]
    assert not np.allclose(curves[0], curves[2])  # the recipe reaches the regressors
    assert not any(w.code == "recipe_out_of_range" for p in (slow, fast) for w in p.warnings)
    far = predictor.predict(config, recipe={"lr": 0.1})
    [warning] = [w for w in far.warnings if w.code == "recipe_out_of_range"]
    assert warning.feature == "recipe.lr" and "extrapolation" in warning.message


def test_two_recipes_the_data_says_differ_get_curves_that_differ_the_same_way(tiers, recipe_models):
    """The measured end state under half and twice the learning rate, median over the five designs' layers,
    against the predicted one for the same designs: the same sign."""
    measured = load_measured(tiers)
    metrics = measured.metrics
    last = metrics[metrics["step"] == metrics.groupby("model_id")["step"].transform("max")]
    end = last.groupby("model_id")["ma_ratio"].median()
    measured_gap = np.median([np.log(end[f"{d}-lr2"] / end[f"{d}-lr0.5"]) for d in DESIGNS])
    predictor = Predictor(recipe_models)
    configs = load_configs(measured.configs_dirs)
    predicted_gap = []
    for design in DESIGNS:
        ends = [predictor.predict(configs[design], steps=[1000], recipe={"lr": lr}) for lr in (0.003, 0.012)]
        slow, fast = (np.median(p.metrics["ma_ratio"].curves.values[:, -1]) for p in ends)
        predicted_gap.append(np.log(fast / slow))
    assert abs(measured_gap) > 0.1  # the data says they differ
    assert np.sign(np.median(predicted_gap)) == np.sign(measured_gap)


def test_a_longer_run_is_answered_over_its_own_steps_and_tokens(recipe_models):
    predictor = Predictor(recipe_models)
    longer = predictor.predict(_llama_config(), recipe={"steps": 2000, "batch_size": 64})
    assert longer.steps.max() == 2000
    assert np.allclose(longer.tokens, longer.steps * 64 * 128)
