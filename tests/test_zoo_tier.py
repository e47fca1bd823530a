"""The cpu2 tier's design, the DyT set-up it uses, and a tier committed run by run."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

import archmods
from emergence.mechanism import read_mechanism, shows_mechanism
from training.zoo_tier import add_run, load_provenance, load_tier
from zoo.grid import CPU2_SEEDED, CPU2_TIED, tier
from zoo.pipeline import is_committed

from .conftest import REPO


def test_cpu2_tier_has_48_designs_at_d128_plus_two_more_seeds_of_each_seeded_design_and_a_third_of_the_tied():
    runs = tier("cpu2")
    seeds = [r for r in runs if r.recipe.seed != 0]
    designs = [r for r in runs if r.recipe.seed == 0]
    assert len(designs) >= 48 and all(r.d >= 128 for r in runs)
    assert len({r.name for r in runs}) == len(runs)
    assert Counter(r.name.rsplit("-s", 1)[0] for r in seeds) == {n: 2 + (n in CPU2_TIED) for n in CPU2_SEEDED}
    assert set(CPU2_TIED) <= set(CPU2_SEEDED)
    assert {r.family for r in designs} == {"llama", "qwen2", "gpt_neox", "gpt2"}
    assert sum(r.name.startswith("mix") for r in designs) >= 12
    assert {r.layers for r in designs} >= {2, 4, 10, 16} and {r.d for r in designs} >= {128, 256, 320}
    changes = [r.changes for r in designs]
    for change in ({"kv_bias": True}, {"tvr": True}, {"glu": False}, {"norm": "dyt"}):
        ((key, value),) = change.items()
        assert sum(c.get(key) == value for c in changes) >= 2, change
    assert any(c.get("tvr") and c.get("kv_bias") for c in changes) and any(
        c.get("tvr") and c.get("norm") for c in changes
    )
    steps = runs[0].recipe.checkpoint_steps()
    assert len(steps) >= 40 and steps[0] == 0 and steps[-1] == runs[0].recipe.steps


def test_cpu_tier_keeps_its_schedule():
    assert len(tier("cpu")[0].recipe.checkpoint_steps()) == 33


def test_dyt_llm_setup_sets_alpha_per_norm_position_and_scales_embeddings():
    spec = next(r for r in tier("cpu2") if r.name == "llama-dyt")
    spec = spec.with_recipe()
    config = spec.config(300, 0, 1)
    config.archcast["dyt_alpha"] = [0.8, 0.2, 0.3]
    model = archmods.build_model(config)
    block = archmods.decoder_blocks(model)[0]
    assert float(block.input_layernorm.alpha.detach()) == pytest.approx(0.8)
    assert float(block.post_attention_layernorm.alpha.detach()) == pytest.approx(0.2)
    assert float(model.model.norm.alpha.detach()) == pytest.approx(0.3)
    embed = model.get_input_embeddings()
    assert float(embed.embed_scale.detach()) == pytest.approx(128**0.5)
    ids = torch.tensor([[3, 4]])
    torch.testing.assert_close(embed(ids), embed.weight[ids] * 128**0.5)
    assert archmods.needs_rebuild(config)


def _rows(layer, ratio, nonbos, bos_share, dim):
    return {"layer": layer, "ma_ratio": ratio, "ma_ratio_nonbos": nonbos, "top1_bos_share": bos_share,
            "top1_dim_mode": dim}  # fmt: skip


def test_mechanism_needs_bos_and_a_margin_over_the_rest():
    rows = pd.DataFrame([
        _rows(1, 30, 25, 1.0, 5),   # on BOS but not above the rest: a generic outlier
        _rows(2, 60, 20, 1.0, 7),   # the mechanism
        _rows(3, 90, 20, 0.95, 7),
        _rows(4, 200, 200, 0.0, 9),  # large, away from BOS
    ])  # fmt: skip
    assert list(shows_mechanism(rows)) == [False, True, True, False]
    reading = read_mechanism(rows)
    assert (reading.onset_layer, reading.layers, reading.dims) == (2, (2, 3), (7,))
    assert (reading.peak_layer, reading.peak_at_bos) == (4, False)
    assert reading.summary().startswith("Massive activations from layer 2 on the first token, in dimension 7")
    none = read_mechanism(rows.iloc[[0, 3]])
    assert none.onset_layer is None and "No BOS massive-activation mechanism" in none.summary()


@pytest.mark.slow
def test_a_measured_run_is_committed_with_provenance_and_read_back(smoke_zoo, tmp_path):
    metrics, _, runs = smoke_zoo
    run = runs / "llama"
    measured = tmp_path / "measured"
    measured.mkdir()
    frame = pd.read_parquet(metrics)
    frame.to_parquet(measured / "metrics.parquet")
    (measured / "manifest.json").write_text(json.dumps(
        {"settings": {"seq_len": 32}, "probe_sha256": "p", "torch": "t", "transformers": "x"}))  # fmt: skip
    tier_dir = tmp_path / "smoke"
    target = add_run(run, measured, tier_dir, "archcast extract …")
    back = load_tier(tier_dir)
    assert set(back["model_id"]) == {"llama"}
    assert len(back) == len(frame[frame["model_id"] == "llama"])
    record = load_provenance(tier_dir)["llama"]
    assert record["corpus"]["sha256"] and record["training"]["seconds"] > 0 and record["hardware"]["cpus"] >= 1
    assert (tier_dir / "configs" / "llama.json").exists() and target.exists()
    recipe = json.loads((run / "run.json").read_text())["spec"]["recipe"]
    assert record["recipe"] == recipe and record["sittings"][0]["from_step"] == 0
    assert (back["recipe_lr"] == recipe["lr"]).all() and (back["recipe_bos"] == recipe["bos"]).all()
    assert (back["tokens"] == back["step"] * recipe["batch_size"] * recipe["seq_len"]).all()
    frame[frame["model_id"] == "llama"].query("step > 0").to_parquet(measured / "metrics.parquet")
    with pytest.raises(ValueError, match="checkpoints measured"):
        add_run(run, measured, tier_dir, "archcast extract …")


def test_committed_runs_are_not_trained_again(tmp_path):
    from zoo.corpus import committed_slice
    from zoo.pipeline import ZooData, run_all

    assert is_committed("cpu2", "llama") and not is_committed("cpu2", "no-such-run")
    committed = next(r for r in tier("cpu2") if r.name == "llama")
    # no tokenizer and no tokens here: any attempt to train the committed run would fail and be reported
    data = ZooData("cpu2", committed_slice(), tmp_path / "no-tokenizer", tmp_path / "no-tokens.npy", tmp_path / "runs")
    assert run_all([committed], data) == {}
    assert not (tmp_path / "runs").exists()
    unseen = replace(committed, name="no-such-run")
    assert "no-such-run" in run_all([unseen], data)  # the same call does try a run that is not committed


def _series(name, seed, ratios, shares, spec_extra=None):
    """A synthetic run: one layer, a checkpoint per value; its provenance record."""
    rows = pd.DataFrame({"model_id": name, "step": [0, 10, 20, 30], "layer": 1, "ma_ratio": ratios,
                         "ma_ratio_nonbos": [r / 3 for r in ratios], "top1_bos_share": shares,
                         "top1_dim_mode": 5, "linearity": 0.9, "linearity_nores": 0.5})  # fmt: skip
    spec = {"name": name, "family": "llama", "d": 128, "layers": 1, "heads": 4, "ffn_ratio": 4.0, "overrides": {},
            "changes": {}, "recipe": {"steps": 30, "seed": seed}, **(spec_extra or {})}  # fmt: skip
    record = {"spec": spec, "training": {"n_params": 1, "final_loss": 3.0, "seconds": 1.0}}
    return rows, record


def test_tier_card_numbers_equal_hand_computed_values():
    from training.tier_card import noise_floor, one_factor, variance_decomposition
    from training.zoo_tables import bos_onset, run_table
    from zoo.spec import RunSpec

    # BOS onset: the first step from which the top-1 stays on BOS to the end
    a, pa = _series("llama", 0, [10, 20, 40, 80], [1.0, 0.0, 1.0, 1.0])
    b, pb = _series("llama-s1", 1, [11, 22, 44, 88], [1.0, 0.0, 0.0, 1.0])
    c, pc = _series("llama-kvbias", 0, [10, 10, 10, 20], [0.0, 0.0, 0.0, 0.0], {"changes": {"kv_bias": True}})
    assert (bos_onset(a), bos_onset(b), str(bos_onset(c))) == (20.0, 30.0, "nan")
    metrics = pd.concat([a, b, c])
    records = {"llama": pa, "llama-s1": pb, "llama-kvbias": pc}
    configs = {
        name: RunSpec(name, "llama", d=128, layers=1, heads=4, changes=r["spec"]["changes"]).config(64, 1, 2).to_dict()
        for name, r in records.items()
    }
    table = run_table(metrics, records, configs)
    designs = table.set_index("run")["design"]  # seeds share a design; a change the features see does not
    assert designs["llama"] == designs["llama-s1"] != designs["llama-kvbias"]
    floor = noise_floor(metrics, table).set_index("metric")
    assert floor.loc["ma_ratio", "median"] == pytest.approx(np.log(1.1), abs=1e-4)  # every value 10 % apart
    assert floor.loc["linearity", "median"] == 0 and floor.loc["ma_ratio", "pairs"] == 1
    # one replicated design (log 80, log 88) and one single run (log 20)
    v = variance_decomposition(table, "ratio_end")
    seed_var = np.var(np.log([80, 88]), ddof=1)
    means = [np.log([80, 88]).mean(), np.log(20)]
    assert v["seed_var"] == pytest.approx(seed_var, abs=1e-4)
    assert v["arch_var"] == pytest.approx(np.var(means, ddof=1) - seed_var * (1 / 2 + 1) / 2, abs=1e-4)
    effect = one_factor(table).set_index("variant").loc["llama-kvbias"]
    assert effect["base"] == "llama" and effect["log_ratio_effect"] == pytest.approx(np.log(20 / 80), abs=1e-3)
    assert effect["mechanism_layers"] == "0/1" and effect["base_mechanism_layers"] == "1/1"


@pytest.mark.slow
def test_tier_card_is_written_from_committed_runs(smoke_zoo, tmp_path):
    from training.tier_card import main as tier_card

    metrics, _, runs = smoke_zoo
    measured = tmp_path / "measured"
    measured.mkdir()
    pd.read_parquet(metrics).to_parquet(measured / "metrics.parquet")
    (measured / "manifest.json").write_text(json.dumps(
        {"settings": {"seq_len": 32}, "probe_sha256": "p", "torch": "t", "transformers": "x"}))  # fmt: skip
    tier_dir = tmp_path / "smoke"
    for run in sorted(runs.iterdir()):
        add_run(run, measured, tier_dir, "archcast extract …")
    assert tier_card(["--tier-dir", str(tier_dir)]) == 0
    text = (tier_dir / "README.md").read_text()
    for section in ("## Seed noise floor", "## How much the architecture decides", "## One-factor effects", "## Runs"):
        assert section in text
    assert "| neox-kvbias | neox |" in text  # the one-factor table pairs a variant with its base
    assert {p.name for p in (tier_dir / "figures").iterdir()} == {"llama.png", "gpt_neox.png", "gpt2.png"}
    assert len(pd.read_csv(tier_dir / "runs.csv")) == len(list(runs.iterdir()))


def test_a_fine_tuned_run_is_committed_with_its_validation_losses_and_carded(tokenizer, tmp_path):
    """A tiny run pretrained and fine-tuned for real, measured by the extractor, committed and carded: the card's
    fine-tuning table compares its end of pretraining with its end of fine-tuning."""
    from extraction.__main__ import main as extract
    from training.tier_card import finetuned
    from training.tier_card import main as tier_card
    from zoo.spec import FineTune, Recipe, RunSpec
    from zoo.train import train_run

    text = (REPO / "data" / "corpus" / "train_slice.txt").read_text()
    ids = lambda t: np.asarray(tokenizer(t, add_special_tokens=False)["input_ids"], dtype=np.uint16)  # noqa: E731
    recipe = Recipe(steps=20, batch_size=2, seq_len=16, warmup=2, n_linear_checkpoints=2, log_until=4)
    spec = RunSpec("tiny-ft", "llama", d=32, layers=2, heads=2, recipe=recipe, finetune=FineTune(steps=10, every=5))
    runs = tmp_path / "cache" / "zoo" / "finetune" / "runs"
    (runs.parent / "corpus.json").parent.mkdir(parents=True)
    (runs.parent / "corpus.json").write_text(json.dumps(
        {"source": "slice", "sha256": "s", "finetune": {"source": "faq", "sha256": "f"}}))  # fmt: skip
    train_run(spec, ids(text[:40_000]), tokenizer, runs / "tiny-ft", log=lambda m: None,
              probe_tokens=ids(text[40_000:50_000]), finetune_tokens=ids(text[-20_000:].upper()))  # fmt: skip
    measured = tmp_path / "measured"
    assert extract(["--dirs", str(runs / "tiny-ft"), "--out", str(measured), "--seq-len", "16", "--n-seq", "2"]) == 0
    tier_dir = tmp_path / "finetune"
    add_run(runs / "tiny-ft", measured, tier_dir, "archcast extract …")
    back = load_tier(tier_dir)
    assert back["val_loss"].notna().all() and back["step"].max() == 30
    assert back.loc[back["step"] == 30, "tokens"].iloc[0] == 20 * 2 * 16 + 10 * 8 * 16
    table = finetuned(back, load_provenance(tier_dir))
    assert list(table["phase"]) == ["pretrained", "fine-tuned"] and list(table["step"]) == [20, 30]
    assert tier_card(["--tier-dir", str(tier_dir)]) == 0
    card = (tier_dir / "README.md").read_text()
    assert "## Fine-tuning" in card and "continued 10 steps of 8 × 16 tokens on faq" in card
