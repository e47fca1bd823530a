"""features/: every family's key/value heads (GQA, MQA) are read as transformers builds them.

For a shrunk copy of each real config with its family's own key/value-head key set (`num_key_value_heads`;
Falcon: `num_kv_heads` in the new decoder architecture, `multi_query` in the old one), the features' kv-head
count and the parameters it implies must change exactly as the instantiated transformers model's do. Most
real configs are multi-head (kv = heads), where a family that ignored its key would still look right.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM

from features import read_spec

CONFIG_DIR = Path(__file__).parent / "data" / "configs"
HEADS = 4
SHRINK = {
    "hidden_size": 64,
    "n_embd": 64,
    "n_embed": 64,
    "num_hidden_layers": 2,
    "n_layer": 2,
    "intermediate_size": 128,
    "ffn_dim": 128,
    "n_inner": 128,
    "vocab_size": 101,
    "max_position_embeddings": 64,
    "n_positions": 64,
    "head_dim": 16,
    "num_attention_heads": HEADS,
    "n_head": HEADS,
    "word_embed_proj_dim": 64,
    "rotary_dim": 8,
    "num_local_experts": 2,
    "pad_token_id": 0,  # token ids inside the shrunk vocabulary
    "bos_token_id": 1,
    "eos_token_id": 2,
}
# The families whose transformers model has grouped key/value heads, and the key each spells them with.
GQA_KEY = {
    "llama": "num_key_value_heads",
    "mistral": "num_key_value_heads",
    "mixtral": "num_key_value_heads",
    "qwen2": "num_key_value_heads",
    "qwen3": "num_key_value_heads",
    "gemma": "num_key_value_heads",
    "gemma2": "num_key_value_heads",
    "gemma3_text": "num_key_value_heads",
    "phi": "num_key_value_heads",
    "phi3": "num_key_value_heads",
    "olmo": "num_key_value_heads",
    "olmo2": "num_key_value_heads",
    "stablelm": "num_key_value_heads",
    "falcon": "num_kv_heads",  # with new_decoder_architecture
}
NO_GQA = {
    "gpt2",
    "opt",
    "bloom",
    "gptj",
    "gpt_neox",
}  # always multi-head: a num_key_value_heads in their config means nothing


def tiny(path: Path, **extra) -> dict:
    raw = json.loads(path.read_text())
    raw = {k: (SHRINK[k] if k in SHRINK else v) for k, v in raw.items()}
    return {**raw, **extra}


def model_params(config: dict) -> int:
    """Weights and biases of the instantiated model, norms left out (OLMo-2's k_norm spans every key/value head;
    the features' parameter count leaves QK-norm weights out)."""
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(AutoConfig.for_model(**config))
    return sum(p.numel() for name, p in model.named_parameters() if "norm" not in name)


def configs_of(families) -> list[Path]:
    paths = sorted(CONFIG_DIR.glob("*.json"))
    return [p for p in paths if json.loads(p.read_text())["model_type"] in families]


def test_every_family_of_the_real_configs_is_classified():
    families = {json.loads(p.read_text())["model_type"] for p in CONFIG_DIR.glob("*.json")}
    assert families == set(GQA_KEY) | NO_GQA


@pytest.mark.parametrize("path", configs_of(GQA_KEY), ids=lambda p: p.stem)
def test_grouped_and_single_kv_heads_are_read_as_transformers_builds_them(path):
    family = json.loads(path.read_text())["model_type"]
    base = {"new_decoder_architecture": True} if family == "falcon" else {}
    key = GQA_KEY[family]
    full = tiny(path, **base, **{key: HEADS})
    assert read_spec(full).kv_heads == HEADS
    for kv in (2, 1):
        grouped = tiny(path, **base, **{key: kv})
        spec = read_spec(grouped)
        assert spec.kv_heads == kv, (key, kv)
        removed = model_params(full) - model_params(grouped)
        assert removed > 0  # the model really has fewer key/value weights
        assert read_spec(full).n_params - spec.n_params == removed, (key, kv)


def test_old_falcon_has_one_kv_head_with_multi_query_and_all_without():
    path = CONFIG_DIR / "falcon-7b.json"
    multi = tiny(path, new_decoder_architecture=False, multi_query=True)
    every = tiny(path, new_decoder_architecture=False, multi_query=False)
    assert read_spec(multi).kv_heads == 1 and read_spec(every).kv_heads == HEADS
    assert read_spec(every).n_params - read_spec(multi).n_params == model_params(every) - model_params(multi) > 0


@pytest.mark.parametrize("path", configs_of(NO_GQA), ids=lambda p: p.stem)
def test_families_without_grouped_heads_ignore_a_kv_key(path):
    config = tiny(path, num_key_value_heads=1)
    assert read_spec(config).kv_heads == HEADS
    assert read_spec(config).n_params == read_spec(tiny(path)).n_params
    assert model_params(config) == model_params(tiny(path))


def test_gpt_neox_ignores_a_kv_key():  # it read num_key_value_heads once, which GPTNeoXConfig does not have
    path = CONFIG_DIR / "pythia-160m.json"
    config = tiny(path, num_key_value_heads=1)
    assert model_params(config) == model_params(tiny(path))  # transformers: no effect
    assert read_spec(config).kv_heads == HEADS
