"""extraction/: metrics equal brute-force references from the same activations, for several families."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import archmods
from extraction.measure import Settings, load, measure
from extraction.probe import probe_windows
from extraction.units import single_unit
from zoo.corpus import PROBE_TEXT

from .conftest import REPO, TINY, tiny_config
from .reference import lstsq_linearity as reference_linearity


def captured_activations(model, windows):
    """Independent path: keep every block's full input and output, and transformers' hidden_states."""
    blocks = archmods.decoder_blocks(model)
    inputs, outputs = [], [[] for _ in blocks]

    def grab(i):
        return lambda m, a, o: outputs[i].append((o if isinstance(o, torch.Tensor) else o[0]).detach().clone())

    handles = [b.register_forward_hook(grab(i)) for i, b in enumerate(blocks)]
    handles.append(
        blocks[0].register_forward_pre_hook(
            lambda m, a, k: inputs.append((a[0] if a else k["hidden_states"]).detach().clone()), with_kwargs=True
        )
    )
    hidden = []
    with torch.no_grad():
        for batch in windows.split(2):
            hidden.append(model(input_ids=batch, output_hidden_states=True).hidden_states)
    for h in handles:
        h.remove()
    layers = [torch.cat(inputs)] + [torch.cat(o) for o in outputs]  # h_0 … h_L, each (N, S, d)
    return [x.double().numpy() for x in layers], hidden


def assert_rows_match_reference(rows, layers, n_layers):
    """Every per-layer metric equals its brute-force float64 value from the captured activations."""
    assert len(rows) == len(layers) - 1 == n_layers
    n = len(layers[0])
    for ell, row in enumerate(rows, start=1):
        h = np.abs(layers[ell]).reshape(n, -1)  # (N, S·d)
        top = np.sort(h, axis=1)[:, ::-1][:, :3].mean(0)
        median = np.median(h, axis=1).mean()
        np.testing.assert_allclose([row["ma_top1"], row["ma_top2"], row["ma_top3"]], top, rtol=1e-6)
        np.testing.assert_allclose(row["ma_median"], median, rtol=1e-6)
        np.testing.assert_allclose(row["ma_ratio"], top[0] / median, rtol=1e-6)
        per_seq = np.abs(layers[ell])  # (N, S, d)
        where = [np.unravel_index(np.argmax(a), a.shape) for a in per_seq]  # (position, dim) per sequence
        assert row["top1_bos_share"] == pytest.approx(np.mean([pos == 0 for pos, _ in where]))
        dims = np.array([dim for _, dim in where])
        assert row["top1_dim_share"] == pytest.approx(np.mean(dims == row["top1_dim_mode"]))
        assert row["top1_dim_share"] == pytest.approx(np.bincount(dims).max() / len(dims))
        np.testing.assert_allclose(row["ma_ratio_nonbos"], per_seq[:, 1:].max((1, 2)).mean() / median, rtol=1e-6)
        flat = layers[ell].reshape(-1, layers[ell].shape[-1])
        prev = layers[ell - 1].reshape(-1, flat.shape[-1])
        assert abs(row["linearity"] - reference_linearity(prev, flat)) < 1e-6
        assert abs(row["linearity_nores"] - reference_linearity(prev, flat - prev)) < 1e-6


@pytest.mark.parametrize("family", sorted(TINY))
def test_metrics_match_brute_force(family, tokenizer):
    torch.manual_seed(0)
    model = archmods.build_model(tiny_config(family, tokenizer)).eval()
    windows = probe_windows(tokenizer, PROBE_TEXT, n_seq=4, seq_len=48, seed=1)
    rows = measure(model, windows, Settings(batch_size=2))
    layers, hidden = captured_activations(model, windows)
    assert_rows_match_reference(rows, layers, model.config.num_hidden_layers)
    # hidden_states agree with block outputs except the last, which is after the final norm
    for ell in range(1, len(rows)):
        np.testing.assert_allclose(torch.cat([h[ell] for h in hidden]).double().numpy(), layers[ell], atol=1e-5)
    last_hf = torch.cat([h[-1] for h in hidden]).double().numpy()
    assert not np.allclose(last_hf, layers[-1], atol=1e-3)


def test_metrics_of_a_trained_zoo_checkpoint_match_brute_force():
    # A model trained for 400 steps (committed with the zoo data), not a random one: real activation spread.
    unit = single_unit(str(REPO / "data" / "zoo" / "checkpoints" / "llama-L2" / "step400"))
    model, tokenizer, _ = load(unit, Settings())
    windows = probe_windows(tokenizer, PROBE_TEXT, n_seq=6, seq_len=96, seed=3)
    rows = measure(model, windows, Settings(batch_size=3))
    layers, _ = captured_activations(model, windows)
    assert_rows_match_reference(rows, layers, model.config.num_hidden_layers)


def test_planted_massive_activation_is_found_where_planted(tokenizer):
    torch.manual_seed(0)
    model = archmods.build_model(tiny_config("llama", tokenizer)).eval()
    token, dim, position, value = 7, 5, 9, 3000.0
    with torch.no_grad():
        model.model.embed_tokens.weight[token, dim] = value
    windows = torch.randint(10, len(tokenizer), (4, 32))
    windows[:, position] = token  # the planted token only at this position
    rows = measure(model, windows, Settings(batch_size=4))
    for row in rows:
        assert (row["top1_token"], row["top1_dim"]) == (position, dim)
        assert row["ma_top1"] == pytest.approx(value, rel=0.01)  # carried by the residual stream
        assert row["ma_ratio"] == pytest.approx(row["ma_top1"] / row["ma_median"])
        # away from the first token: a generic outlier, not the BOS mechanism
        assert row["top1_bos_share"] == 0.0
        assert (row["top1_dim_mode"], row["top1_dim_share"]) == (dim, 1.0)
        assert row["ma_ratio_nonbos"] == pytest.approx(row["ma_ratio"])
    assert rows[0]["ma_ratio"] >= 1000 and rows[0]["sun_massive"]  # > 100 and ≥ 1000× the median


@pytest.mark.parametrize("family", ["llama", "gpt_neox"])
def test_planted_bos_massive_activation_gives_the_mechanism_columns_and_exact_linearity(family, tokenizer):
    # One dimension at 5,000 on the BOS token, every other value near 0.03: the spread of a real model with
    # massive activations, where a Gram-matrix solve left [0, 1].
    torch.manual_seed(0)
    model = archmods.build_model(tiny_config(family, tokenizer)).eval()
    dim, value = 11, 5000.0
    with torch.no_grad():
        model.get_input_embeddings().weight[tokenizer.bos_token_id, dim] = value
    windows = probe_windows(tokenizer, PROBE_TEXT, n_seq=6, seq_len=64, seed=2)
    assert (windows[:, 0] == tokenizer.bos_token_id).all()
    rows = measure(model, windows, Settings(batch_size=2))
    layers, _ = captured_activations(model, windows)
    for ell, row in enumerate(rows, start=1):
        assert row["top1_bos_share"] == 1.0
        assert (row["top1_dim_mode"], row["top1_dim_share"]) == (dim, 1.0)
        assert row["ma_ratio"] > 1000 > row["ma_ratio_nonbos"]
        x = layers[ell - 1].reshape(-1, layers[ell].shape[-1])
        y = layers[ell].reshape(-1, x.shape[-1])
        assert 0.0 <= row["linearity"] <= 1.0 and 0.0 <= row["linearity_nores"] <= 1.0
        assert abs(row["linearity"] - reference_linearity(x, y)) < 1e-6
        assert abs(row["linearity_nores"] - reference_linearity(x, y - x)) < 1e-6


def test_statistics_are_float32_or_wider_for_half_precision_models(tokenizer):
    # float16 holds a 60,000 activation (its largest value is 65,504) but not its square: a linearity solve or a
    # median kept in float16 overflows or rounds to three digits. Every figure must equal the float64 reference
    # computed from the same float16 activations.
    torch.manual_seed(0)
    model = archmods.build_model(tiny_config("llama", tokenizer)).eval().to(torch.float16)
    with torch.no_grad():
        model.model.embed_tokens.weight[7, 3] = 60000.0
    windows = torch.randint(10, len(tokenizer), (2, 16))
    windows[:, 4] = 7
    rows = measure(model, windows, Settings(batch_size=2))
    layers, _ = captured_activations(model, windows)
    for ell, row in enumerate(rows, start=1):
        x = layers[ell - 1].astype(np.float64).reshape(-1, layers[ell].shape[-1])
        y = layers[ell].astype(np.float64).reshape(-1, x.shape[-1])
        per_window = np.abs(layers[ell].astype(np.float64)).reshape(len(windows), -1)  # the mean over windows
        assert row["ma_top1"] == pytest.approx(per_window.max(1).mean(), rel=1e-9) and row["ma_top1"] > 50000
        assert row["ma_median"] == pytest.approx(np.median(per_window, axis=1).mean(), rel=1e-9)
        assert np.isfinite(row["linearity"]) and np.isfinite(row["linearity_nores"])
        assert abs(row["linearity"] - reference_linearity(x, y)) < 1e-5


@pytest.mark.parametrize("case", ["full rank", "duplicated column", "fewer rows than dims", "huge column offset"])
def test_linearity_solve_matches_lstsq_reference(case):
    # The scores come from a QR accumulated over batches; they must equal a direct least-squares
    # solve, rank-deficient X included.
    from extraction.metrics import LinearFit

    rng = np.random.default_rng(0)
    n, d = (40, 64) if case == "fewer rows than dims" else (300, 24)
    x = rng.normal(size=(n, d))
    if case == "duplicated column":
        x[:, 5] = x[:, 3]
    if case == "huge column offset":  # a massive-activation-like dimension: mean ≫ spread
        x[:, 0] = 3000.0 + 0.01 * rng.normal(size=n)
    y = x @ rng.normal(size=(d, d)) * 0.3 + x + rng.normal(size=(n, d))
    stats = None
    for rows in np.array_split(np.arange(n), 3):
        xb, yb = torch.from_numpy(x[rows]).float(), torch.from_numpy(y[rows]).float()
        stats = stats or LinearFit.start(xb, yb)
        stats.update(xb, yb)
    xf, yf = x.astype(np.float32).astype(np.float64), y.astype(np.float32).astype(np.float64)
    linearity, nores, _ = stats.scores()
    assert abs(linearity - reference_linearity(xf, yf)) < 1e-6
    assert abs(nores - reference_linearity(xf, yf - xf)) < 1e-6


@pytest.mark.parametrize("shape", [(3, 4, 5), (2, 3, 3), (4, 6, 8)])
def test_median_and_top3_match_numpy_with_ties(shape):
    # Few distinct values, so the two middle values often tie (and sometimes do not).
    from extraction.metrics import magnitude_stats

    rng = np.random.default_rng(1)
    for _ in range(20):
        h = torch.from_numpy(rng.integers(-3, 4, size=shape).astype(np.float32) * 0.5)
        top3, median, argmax = magnitude_stats(h)
        a = h.abs().flatten(1).numpy()
        np.testing.assert_array_equal(median.numpy(), np.median(a, axis=1))
        np.testing.assert_array_equal(top3.numpy(), -np.sort(-a, axis=1)[:, :3])
        np.testing.assert_array_equal(a[np.arange(len(a)), argmax.numpy()], a.max(1))


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_activations_give_nan_metrics_with_the_reason(tokenizer, bad):
    torch.manual_seed(0)
    model = archmods.build_model(tiny_config("llama", tokenizer)).eval()
    token = 7
    with torch.no_grad():
        model.model.embed_tokens.weight[token, 3] = bad
    windows = torch.randint(10, len(tokenizer), (4, 16))
    windows[1, 5] = token
    rows = measure(model, windows, Settings(batch_size=2))
    for row in rows:
        assert row["nonfinite_values"] > 0 and "non-finite" in row["linearity_note"]
        assert np.isnan([row["ma_ratio"], row["ma_top1"], row["linearity"], row["linearity_nores"]]).all()
        assert row["top1_token"] == -1 and not row["sun_massive"]  # an inf is not a massive activation


def test_a_non_finite_input_gives_a_nan_linearity_not_zero():
    from extraction.metrics import LinearFit

    x, y = torch.randn(64, 4, dtype=torch.float64), torch.randn(64, 4, dtype=torch.float64)
    x[3, 1] = float("nan")
    fit = LinearFit.start(x, y)
    fit.update(x, y)
    linearity, nores, note = fit.scores()
    assert np.isnan(linearity) and np.isnan(nores) and "non-finite" in note


def test_each_dims_largest_value_is_located_for_outliers(tokenizer):
    torch.manual_seed(0)
    model = archmods.build_model(tiny_config("llama", tokenizer)).eval()
    token, dim, value = 7, 5, 3000.0
    with torch.no_grad():
        model.model.embed_tokens.weight[token, dim] = value
    windows = torch.randint(10, len(tokenizer), (5, 24))
    windows[3, 11] = token  # once: window 3 (the second batch of two), position 11
    rows = measure(model, windows, Settings(batch_size=2, dim_profile=True))
    layers, _ = captured_activations(model, windows)
    for ell, row in enumerate(rows, start=1):
        assert row["dim_where"][dim] == [3, 11]
        h = np.abs(layers[ell])  # (N, S, d)
        for d in range(h.shape[-1]):
            window, position = np.unravel_index(np.argmax(h[:, :, d]), h.shape[:2])
            assert row["dim_where"][d] == [window, position]
            assert row["dim_max"][d] == pytest.approx(h[:, :, d].max(), rel=1e-6)


def test_the_default_dtype_is_float32_on_every_device():
    assert Settings(device="cpu").resolved_dtype() == torch.float32
    assert Settings(device="cuda").resolved_dtype() == torch.float32
    assert Settings(device="cuda", dtype="bfloat16").resolved_dtype() == torch.bfloat16


@pytest.mark.parametrize("family", ["llama", "gpt_neox", "gpt2"])
def test_attention_on_the_first_token_equals_transformers_own_weights(family, tokenizer):
    torch.manual_seed(0)
    model = archmods.build_model(tiny_config(family, tokenizer)).eval()
    windows = torch.randint(10, len(tokenizer), (3, 20))
    before = model.config._attn_implementation
    rows = measure(model, windows, Settings(batch_size=2, attention=True))
    assert model.config._attn_implementation == before  # the model is given back as it came
    model.set_attn_implementation("eager")
    with torch.no_grad():
        attentions = model(input_ids=windows, output_attentions=True).attentions  # L × (N, H, S, S)
    for row, weights in zip(rows, attentions, strict=True):
        heads = weights[:, :, 1:, 0].double().mean((0, 2)).numpy()
        np.testing.assert_allclose(row["attn_bos_share_heads"], heads, rtol=1e-5, atol=1e-7)
        assert row["attn_bos_share"] == pytest.approx(heads.mean(), rel=1e-5) and 0 <= row["attn_bos_share"] <= 1
    assert "attn_bos_share" not in measure(model, windows, Settings(batch_size=2))[0]  # only when asked


def test_an_attention_that_returns_no_weights_gives_nan_with_the_reason(tokenizer):
    config = tiny_config("llama", tokenizer)
    config.archcast = {"kv_bias": True}
    model = archmods.build_model(config).eval()
    rows = measure(model, torch.randint(10, len(tokenizer), (2, 12)), Settings(batch_size=2, attention=True))
    assert all(np.isnan(r["attn_bos_share"]) and "no weights" in r["attn_note"] for r in rows)
