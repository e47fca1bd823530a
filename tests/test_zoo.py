"""zoo/: the smoke tier trains, checkpoints and reloads every family and mitigation; modules behave as specified."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoTokenizer

import archmods
from contracts import STEP_FILE
from zoo.corpus import SLICE_TRAIN
from zoo.grid import tier
from zoo.spec import Recipe
from zoo.train import train_run, tvr_rescale_

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


@pytest.mark.slow
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


def _train_smoke_llama(tokenizer, folder, seed: int) -> dict:
    """The smallest smoke run (llama, d=32, 2 layers, batches of 2 × 32 tokens), cut to 8 steps, into `folder`."""
    [spec] = [r for r in tier("smoke") if r.name == "llama"]
    text = SLICE_TRAIN.read_text(encoding="utf-8")[:50_000]
    tokens = np.asarray(tokenizer(text, add_special_tokens=False)["input_ids"], dtype=np.uint16)
    return train_run(
        spec.with_recipe(steps=8, n_linear_checkpoints=1, seed=seed),
        tokens,
        tokenizer,
        folder,
        log=lambda message: None,
    )


def _weights(step_dir):
    return load_file(str(step_dir / "model.safetensors"))


def test_training_changes_the_weights_and_is_deterministic(tokenizer, tmp_path):
    first = _train_smoke_llama(tokenizer, tmp_path / "a", seed=0)
    again = _train_smoke_llama(tokenizer, tmp_path / "b", seed=0)
    other = _train_smoke_llama(tokenizer, tmp_path / "c", seed=1)
    last = f"step{first['checkpoints'][-1]}"
    start, end = _weights(tmp_path / "a" / "step0"), _weights(tmp_path / "a" / last)
    assert not torch.equal(start["lm_head.weight"], end["lm_head.weight"])  # training moved the weights
    assert first["final_loss"] < first["initial_loss"]
    # the same seed: bit-identical weights at every checkpoint and identical losses
    for step in first["checkpoints"]:
        a, b = _weights(tmp_path / "a" / f"step{step}"), _weights(tmp_path / "b" / f"step{step}")
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), step
        same = [json.loads((tmp_path / run / f"step{step}" / STEP_FILE).read_text()) for run in ("a", "b")]
        assert same[0] == same[1]
    assert (first["initial_loss"], first["final_loss"]) == (again["initial_loss"], again["final_loss"])
    # another seed: other initial weights, other batches, other losses
    c0, c_end = _weights(tmp_path / "c" / "step0"), _weights(tmp_path / "c" / last)
    assert not torch.equal(start["lm_head.weight"], c0["lm_head.weight"])
    assert not torch.equal(end["lm_head.weight"], c_end["lm_head.weight"])
    assert first["final_loss"] != other["final_loss"]


def test_dyt_computes_scaled_tanh():
    dyt = archmods.DyT(4)
    assert dyt.alpha.shape == (1,) and dyt.alpha.item() == 0.5  # a learnable scalar, 0.5 by default
    assert archmods.DyT(4, alpha_init=1.25).alpha.item() == 1.25
    assert torch.equal(dyt.weight, torch.ones(4)) and torch.equal(dyt.bias, torch.zeros(4))
    assert {name for name, _ in dyt.named_parameters()} == {"alpha", "weight", "bias"}
    # by default (weight 1, bias 0, alpha 0.5) DyT is tanh(x / 2)
    x = [-3.0, -0.5, 0.0, 2.0]
    out = dyt(torch.tensor([x]))
    assert out.shape == (1, 4)
    assert out[0].tolist() == pytest.approx([math.tanh(v / 2) for v in x], abs=1e-6)
    weight, bias, alpha = [1.0, 2.0, -3.0, 0.5], [0.5, -1.0, 0.0, 2.0], 1.5
    with torch.no_grad():
        dyt.alpha.fill_(alpha)
        dyt.weight.copy_(torch.tensor(weight))
        dyt.bias.copy_(torch.tensor(bias))
    rows = [[0.0, 0.0, 0.0, 0.0], [1.0, -2.0, 0.5, 3.0], [-0.25, 0.75, -1.0, 0.1]]
    out = dyt(torch.tensor(rows).reshape(3, 1, 4))  # any leading shape; the last axis is the feature
    assert out.shape == (3, 1, 4)
    expected = [[w * math.tanh(alpha * v) + b for v, w, b in zip(row, weight, bias, strict=True)] for row in rows]
    np.testing.assert_allclose(out.reshape(3, 4).detach().numpy(), expected, atol=1e-6)
    assert out[0, 0].tolist() == pytest.approx(bias)  # tanh(0) = 0 leaves the bias
    # a large input saturates at ±weight + bias, whatever its size
    huge = dyt(torch.tensor([[1e4] * 4, [-1e4] * 4]))
    assert huge[0].tolist() == pytest.approx([w + b for w, b in zip(weight, bias, strict=True)])
    assert huge[1].tolist() == pytest.approx([-w + b for w, b in zip(weight, bias, strict=True)])
    # the gradient reaches alpha: d/dalpha of w·tanh(alpha·x) + b is w·x·(1 − tanh²(alpha·x))
    dyt.zero_grad()
    dyt(torch.tensor([[1.0, 0.0, 0.0, 0.0]])).sum().backward()
    assert dyt.alpha.grad.item() == pytest.approx(1.0 * 1.0 * (1 - math.tanh(alpha) ** 2), rel=1e-5)


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
