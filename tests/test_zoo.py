"""zoo/: the smoke tier trains, checkpoints and reloads every family and mitigation; modules behave as specified."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from transformers import AutoTokenizer

import archmods
from zoo.grid import tier
from zoo.spec import Recipe
from zoo.train import tvr_rescale_

from .conftest import tiny_config


def test_cpu_tier_varies_every_axis_at_least_twice():
    runs = tier("cpu")
    assert len(runs) >= 24
    assert len(runs[0].recipe.checkpoint_steps()) >= 30
    count = lambda pred: sum(1 for r in runs if pred(r))  # noqa: E731
    base = {"llama": (64, 4, 4, 4.0), "gpt_neox": (64, 4, 4, 4.0), "gpt2": (64, 4, 4, 4.0)}
    assert count(lambda r: r.layers != base[r.family][1]) >= 2
    assert count(lambda r: r.d != 64) >= 2
    assert count(lambda r: r.heads != 4) >= 2
    assert count(lambda r: r.ffn_ratio != 4.0) >= 2
    assert count(lambda r: r.changes.get("glu") is False) >= 2
    assert count(lambda r: r.changes.get("norm") == "dyt") >= 2
    assert count(lambda r: r.family == "gpt2") >= 2  # learned positions
    assert count(lambda r: r.overrides.get("use_parallel_residual") is False) >= 2
    assert count(lambda r: "attention_bias" in r.overrides) >= 2
    assert count(lambda r: "tie_word_embeddings" in r.overrides) >= 2
    assert count(lambda r: r.changes.get("kv_bias")) >= 2
    assert count(lambda r: r.changes.get("tvr")) >= 2


def test_checkpoint_schedule_is_log_then_linear():
    steps = Recipe(steps=800, n_linear_checkpoints=56).checkpoint_steps()
    assert steps[:11] == [0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512]
    gaps = np.diff(steps[11:])
    assert steps[-1] == 800 and gaps.max() - gaps.min() <= 1


def test_smoke_tier_trains_and_reloads_every_run_with_identical_logits(smoke_zoo):
    _, _, runs = smoke_zoo
    names = sorted(p.name for p in runs.iterdir())
    assert names == sorted(r.name for r in tier("smoke"))
    ids = torch.randint(2, 500, (2, 16))
    for run in runs.iterdir():
        summary = json.loads((run / "run.json").read_text())
        assert summary["checkpoints"] == sorted(int(p.name[4:]) for p in run.glob("step*"))
        last = run / f"step{summary['checkpoints'][-1]}"
        first = archmods.load_causal_lm(last)
        second = archmods.load_causal_lm(last)
        assert torch.equal(first(input_ids=ids).logits, second(input_ids=ids).logits)
        assert AutoTokenizer.from_pretrained(last).bos_token == "<|bos|>"
        changes = json.loads((last / "config.json").read_text())["archcast"]
        if changes.get("norm") == "dyt":
            assert any(isinstance(m, archmods.DyT) for m in first.modules())
        if changes.get("kv_bias"):
            assert first.config._attn_implementation == archmods.KV_BIAS_ATTENTION
        if changes.get("glu") is False:
            assert any(isinstance(m, archmods.PlainMLP) for m in first.modules())


def test_training_changes_the_weights_and_is_deterministic(smoke_zoo, tmp_path):
    _, _, runs = smoke_zoo
    run = runs / "llama"
    start, end = archmods.load_causal_lm(run / "step0"), archmods.load_causal_lm(run / "step24")
    assert not torch.equal(start.lm_head.weight, end.lm_head.weight)
    loss = json.loads((run / "step24" / "archcast_checkpoint.json").read_text())["loss"]
    assert loss < json.loads((run / "run.json").read_text())["initial_loss"]


def test_dyt_computes_scaled_tanh():
    dyt = archmods.DyT(4)
    assert dyt.alpha.item() == 0.5
    with torch.no_grad():
        dyt.weight.copy_(torch.tensor([1.0, 2.0, 3.0, 4.0]))
        dyt.bias.fill_(0.5)
    x = torch.randn(3, 4)
    assert torch.allclose(dyt(x), dyt.weight * torch.tanh(0.5 * x) + 0.5)


def test_kv_bias_slot_is_attended_and_keeps_causality(tokenizer):
    config = tiny_config("llama", tokenizer)
    config.archcast = {"kv_bias": True}
    torch.manual_seed(0)
    model = archmods.build_model(config).eval()
    ids = torch.randint(2, 200, (1, 12))
    base = model(input_ids=ids).logits
    attention = archmods.decoder_blocks(model)[0].self_attn
    with torch.no_grad():
        attention.kv_slot_v.fill_(1.0)
    changed = model(input_ids=ids).logits
    assert not torch.allclose(base, changed)  # every query sees the slot
    later = ids.clone()
    later[0, -1] = (later[0, -1] + 1) % 200
    assert torch.allclose(model(input_ids=later).logits[:, :-1], changed[:, :-1], atol=1e-6)  # still causal


def test_zero_kv_slot_equals_softmax_plus_one(tokenizer):
    """With a zero key and value the slot adds exp(0) = 1 to each softmax denominator."""
    q, k, v = torch.randn(1, 2, 5, 8), torch.randn(1, 2, 5, 8), torch.randn(1, 2, 5, 8)
    module = torch.nn.Module()
    module.kv_slot_k = torch.nn.Parameter(torch.zeros(2, 1, 8))
    module.kv_slot_v = torch.nn.Parameter(torch.zeros(2, 1, 8))
    out, _ = archmods.kv_bias_attention(module, q, k, v, None, scaling=8**-0.5)
    scores = (q @ k.transpose(-1, -2)) * 8**-0.5
    scores = scores.masked_fill(torch.ones(5, 5, dtype=torch.bool).triu(1), float("-inf"))
    weights = scores.exp() / (1 + scores.exp().sum(-1, keepdim=True))
    assert torch.allclose(out, (weights @ v).transpose(1, 2), atol=1e-5)


def test_tvr_rescales_only_matrices_above_threshold(tokenizer):
    torch.manual_seed(0)
    model = archmods.build_model(tiny_config("llama", tokenizer))
    blocks = archmods.decoder_blocks(model)
    big, small = blocks[0].self_attn.q_proj.weight, blocks[0].self_attn.k_proj.weight
    with torch.no_grad():
        big.normal_(0, 0.1)
        small.normal_(0, 0.02)
    small_before = small.clone()
    count = tvr_rescale_(model, sigma=0.02, threshold=1.2)
    assert count >= 1
    assert big.std().item() == pytest.approx(0.02, rel=1e-4)
    assert small_before.std() < 0.024 and torch.equal(small, small_before)
