"""features/: real public configs of every family, agreement with transformers, bad input."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from transformers import AutoConfig

import features
from features import FEATURES, FeatureError, featurize, read_spec

CONFIG_DIR = Path(__file__).parent / "data" / "configs"
CONFIG_FILES = sorted(CONFIG_DIR.glob("*.json"))
REQUIRED_FAMILIES = {
    "gpt_neox",
    "llama",
    "mistral",
    "mixtral",
    "qwen2",
    "qwen3",
    "gemma",
    "gemma2",
    "gemma3_text",
    "gpt2",
    "opt",
    "falcon",
    "phi",
    "phi3",
    "olmo",
    "olmo2",
    "stablelm",
    "bloom",
    "gptj",
}


def _hf(path: Path):
    raw = json.loads(path.read_text())
    return AutoConfig.for_model(**raw)


def test_every_required_family_has_a_real_config():
    families = {json.loads(p.read_text())["model_type"] for p in CONFIG_FILES}
    assert REQUIRED_FAMILIES <= families
    assert REQUIRED_FAMILIES <= set(features.SUPPORTED_MODEL_TYPES)


@pytest.mark.parametrize("path", CONFIG_FILES, ids=lambda p: p.stem)
def test_reading_agrees_with_transformers(path):
    spec, hf = read_spec(path), _hf(path)
    assert spec.layers == hf.num_hidden_layers
    assert spec.d == hf.hidden_size
    assert spec.heads == hf.num_attention_heads
    assert spec.tied == bool(hf.tie_word_embeddings)
    kv = getattr(hf, "num_key_value_heads", None)
    if kv is not None and spec.model_type != "falcon":
        assert spec.kv_heads == kv
    hf_ffn = next(
        (
            getattr(hf, k)
            for k in ("intermediate_size", "ffn_dim", "n_inner", "ffn_hidden_size")
            if getattr(hf, k, None)
        ),
        4 * hf.hidden_size,
    )
    assert spec.d_ff == hf_ffn


@pytest.mark.parametrize("path", CONFIG_FILES, ids=lambda p: p.stem)
def test_rows_are_finite_float32_in_schema_order(path):
    frame = featurize(path)
    spec = read_spec(path)
    assert list(frame.columns) == list(FEATURES)
    assert len(frame) == spec.layers
    assert (frame.dtypes == np.float32).all()
    assert np.isfinite(frame.to_numpy()).all()
    assert frame["layer_index"].tolist() == list(range(1, spec.layers + 1))
    assert frame["layer_frac"].iloc[-1] == 1.0


@pytest.mark.parametrize(
    "name, expected_millions",
    [
        ("gpt2", 124),
        ("pythia-160m", 162),
        ("llama-2-7b", 6738),
        ("mistral-7b-v0.1", 7242),
        ("mixtral-8x7b", 46703),
        ("qwen2-0.5b", 494),
        ("bloom-560m", 559),
        ("gpt-j-6b", 6051),
    ],
)
def test_parameter_count_matches_published_sizes(name, expected_millions):
    n = read_spec(CONFIG_DIR / f"{name}.json").n_params
    assert abs(n / 1e6 - expected_millions) / expected_millions < 0.01


@pytest.mark.parametrize("name", ["gpt2", "pythia-160m", "llama-2-7b", "qwen3-0.6b", "opt-125m", "phi-2", "gemma-2b"])
def test_parameter_count_matches_an_instantiated_tiny_model(name):
    import torch
    from transformers import AutoModelForCausalLM

    raw = json.loads((CONFIG_DIR / f"{name}.json").read_text())
    shrink = {
        "hidden_size": 64,
        "n_embd": 64,
        "num_hidden_layers": 2,
        "n_layer": 2,
        "intermediate_size": 128,
        "ffn_dim": 128,
        "vocab_size": 101,
        "max_position_embeddings": 64,
        "n_positions": 64,
        "head_dim": 16,
        "num_attention_heads": 4,
        "n_head": 4,
        "num_key_value_heads": 2,
        "word_embed_proj_dim": 64,
    }
    tiny = {k: (shrink[k] if k in shrink else v) for k, v in raw.items()}
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(AutoConfig.for_model(**tiny))
    real = sum(p.numel() for p in model.parameters())
    assert abs(read_spec(tiny).n_params - real) / real < 0.03


def test_gqa_mqa_rotary_and_alibi_are_read():
    falcon = read_spec(CONFIG_DIR / "falcon-7b.json")
    assert falcon.kv_heads == 1 and falcon.parallel_residual
    assert read_spec(CONFIG_DIR / "bloom-560m.json").position == "alibi"
    assert read_spec(CONFIG_DIR / "gpt-j-6b.json").rotary_fraction == 64 / 256
    assert read_spec(CONFIG_DIR / "pythia-160m.json").rotary_fraction == 0.25
    assert read_spec(CONFIG_DIR / "gemma-2-2b.json").norm_placement == "sandwich"
    assert read_spec(CONFIG_DIR / "mistral-7b-v0.1.json").sliding_window == 4096
    assert read_spec(CONFIG_DIR / "qwen2-0.5b.json").sliding_window is None  # use_sliding_window false


@pytest.mark.parametrize(
    ("key", "value", "ok"),
    [
        ("rotary_pct", 0, True),  # no rotary dimensions: the lower end of its range
        ("rotary_pct", 1.0, True),
        ("rotary_pct", 1.5, False),
        ("rotary_pct", -0.1, False),
        ("rotary_emb_base", 0, False),  # a rotary base of 0 means nothing
        ("use_parallel_residual", 0, True),  # old configs write switches as 0/1
        ("use_parallel_residual", 2, False),
        ("use_parallel_residual", "yes", False),
    ],
)
def test_numbers_and_switches_at_the_ends_of_their_range(key, value, ok):
    raw = json.loads((CONFIG_DIR / "pythia-160m.json").read_text()) | {key: value}
    if ok:
        read_spec(raw)
    else:
        with pytest.raises(FeatureError, match=key):
            read_spec(raw)


def test_accepts_dict_path_folder_and_pretrained_config(tmp_path):
    path = CONFIG_DIR / "gpt2.json"
    (tmp_path / "config.json").write_text(path.read_text())
    reference = featurize(path)
    for source in (json.loads(path.read_text()), str(path), tmp_path, _hf(path)):
        assert featurize(source).equals(reference)


def test_zoo_key_switches_norm_glu_and_mitigations():
    raw = json.loads((CONFIG_DIR / "llama-2-7b.json").read_text())
    base = featurize(raw).iloc[0]
    changed = featurize({**raw, "archcast": {"norm": "dyt", "glu": False, "kv_bias": True, "tvr": True}}).iloc[0]
    assert base["norm_dyt"] == 0 and changed["norm_dyt"] == 1 and changed["norm_rmsnorm"] == 0
    assert base["glu"] == 1 and changed["glu"] == 0
    assert changed["kv_bias"] == 1 and changed["tvr"] == 1
    assert changed["log_params"] < base["log_params"]  # a plain MLP has two matrices, not three


GPT2 = json.loads((CONFIG_DIR / "gpt2.json").read_text())


@pytest.mark.parametrize(
    "change, field",
    [
        ({"model_type": "mamba"}, "model_type"),
        ({"model_type": None}, "model_type"),
        ({"n_layer": None, "num_hidden_layers": None}, "num_hidden_layers"),  # the alias transformers reads first
        ({"n_layer": 0}, "n_layer"),
        ({"n_layer": -3}, "n_layer"),
        ({"n_layer": 2.5}, "n_layer"),
        ({"n_layer": "12"}, "n_layer"),
        ({"n_layer": True}, "n_layer"),
        ({"n_layer": 1001}, "n_layer"),
        ({"n_embd": 770}, "n_embd"),
        ({"n_embd": 262144, "n_head": 2}, "n_embd"),
        ({"vocab_size": 20_000_000}, "vocab_size"),
        ({"n_inner": float("nan")}, "n_inner"),
    ],
)
def test_bad_configs_raise_an_error_naming_the_field(change, field):
    with pytest.raises(FeatureError) as info:
        featurize({**GPT2, **change})
    assert info.value.field == field
    assert isinstance(info.value, ValueError)


def test_unknown_family_error_lists_supported_ones():
    with pytest.raises(FeatureError, match="llama") as info:
        featurize({**GPT2, "model_type": "rwkv"})
    assert "rwkv" in str(info.value)


def test_unreadable_and_malformed_files_raise(tmp_path):
    with pytest.raises(FeatureError, match="cannot read"):
        featurize(tmp_path / "missing.json")
    broken = tmp_path / "config.json"
    broken.write_text("{not json")
    with pytest.raises(FeatureError, match="not valid JSON"):
        featurize(broken)


def test_kv_heads_must_divide_heads():
    raw = json.loads((CONFIG_DIR / "mistral-7b-v0.1.json").read_text())
    with pytest.raises(FeatureError) as info:
        featurize({**raw, "num_key_value_heads": 5})
    assert info.value.field == "num_key_value_heads"
    assert not math.isnan(featurize(raw).to_numpy().sum())


def test_features_command_prints_shared_features_once_and_a_narrow_per_layer_table():
    from typer.testing import CliRunner

    from archcast.cli import app

    result = CliRunner().invoke(app, ["features", str(CONFIG_DIR / "llama-2-7b.json")])
    assert result.exit_code == 0, result.output
    assert "config-level features" in result.output and "per-layer features (32 layers)" in result.output
    assert max(len(line) for line in result.output.splitlines()) <= 100  # was 467 characters wide
