"""Shared fixtures: a small tokenizer and tiny real checkpoints of several families, saved locally."""

from __future__ import annotations

import json
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no test touches the network; set before transformers loads
from pathlib import Path

import pytest
import torch
from transformers import AutoConfig

import archmods
from zoo.corpus import SLICE_TRAIN
from zoo.tokenizer import train_tokenizer

REPO = Path(__file__).resolve().parents[1]

TINY = {
    "gpt_neox": dict(hidden_size=32, num_hidden_layers=3, num_attention_heads=4, intermediate_size=64),
    "llama": dict(
        hidden_size=32, num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2, intermediate_size=64
    ),
    "gpt2": dict(n_embd=32, n_layer=3, n_head=4),
    "opt": dict(hidden_size=32, num_hidden_layers=3, num_attention_heads=4, ffn_dim=64, word_embed_proj_dim=32),
    "qwen2": dict(
        hidden_size=32, num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2, intermediate_size=64
    ),
    "phi": dict(hidden_size=32, num_hidden_layers=3, num_attention_heads=4, intermediate_size=64),
}


@pytest.fixture(scope="session", autouse=True)
def own_cache(tmp_path_factory):
    """What commands keep between runs (dequantised GGUF files, the combined onnxruntime graph) goes to a folder
    of this test run's, not to the user's cache; servers the tests start inherit it."""
    os.environ["ARCHCAST_CACHE"] = str(tmp_path_factory.mktemp("archcast-cache"))


@pytest.fixture(scope="session")
def tokenizer():
    return train_tokenizer(SLICE_TRAIN, vocab_size=300, max_chars=200_000)


def tiny_config(family: str, tokenizer, **extra):
    context = {"gpt2": "n_positions"}.get(family, "max_position_embeddings")
    return AutoConfig.for_model(
        family,
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=None,
        **{context: 256},
        **TINY[family],
        **extra,
    )


def save_checkpoint(folder: Path, config, tokenizer, seed: int = 0, step: int | None = None) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = archmods.build_model(config).eval()
    archmods.save_causal_lm(model, folder)
    tokenizer.save_pretrained(folder)
    if step is not None:
        (folder / "archcast_checkpoint.json").write_text(f'{{"step": {step}}}')
    return model


@pytest.fixture
def make_series(tmp_path, tokenizer):
    """make_series(family, steps) → run folder with one checkpoint folder per step."""

    def make(family: str = "llama", steps=(0, 1, 2), name: str = "run", **extra) -> Path:
        run = tmp_path / name
        for step in steps:
            save_checkpoint(run / f"step{step}", tiny_config(family, tokenizer, **extra), tokenizer, seed=step)
        return run

    return make


@pytest.fixture(scope="session")
def smoke_zoo(tmp_path_factory):
    """The smoke tier trained from scratch and measured: (metrics.parquet, configs folder, runs folder)."""
    import shutil

    from extraction.__main__ import main as extract
    from zoo.__main__ import main as zoo

    cache = tmp_path_factory.mktemp("zoo-cache")
    assert zoo(["run", "--tier", "smoke", "--cache", str(cache)]) == 0
    runs = cache / "zoo" / "smoke" / "runs"
    out = tmp_path_factory.mktemp("zoo-metrics")
    assert extract(["--dirs", str(runs / "*"), "--out", str(out), "--seq-len", "32", "--n-seq", "2"]) == 0
    configs = out / "configs"
    configs.mkdir()
    for run in runs.iterdir():
        shutil.copy(run / "step0" / "config.json", configs / f"{run.name}.json")
    # the recipe the runs shared, as training.datacard records it beside a tier's metrics: the time axis
    spec = json.loads(next(runs.glob("*/run.json")).read_text())["spec"]
    (out / "PROVENANCE.json").write_text(json.dumps({"recipe": spec["recipe"]}))
    return out / "metrics.parquet", configs, runs


@pytest.fixture(scope="session")
def smoke_models(smoke_zoo, tmp_path_factory):
    """A predictor retrained on the smoke zoo with a tiny Optuna budget: (models folder, RetrainResult)."""
    from training.pipeline import RetrainConfig, retrain

    metrics, configs, _ = smoke_zoo
    base = tmp_path_factory.mktemp("retrain")
    result = retrain(RetrainConfig(metrics, configs, base / "models", base / "work", n_trials=3, seed=0, seeds=2))
    return base / "models", result
