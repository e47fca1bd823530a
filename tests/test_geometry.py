"""extraction.geometry: anisotropy, intrinsic dimension and the token-level nonlinearity on point sets whose
answers are known, then through `archcast measure --geometry` on a tiny checkpoint."""

from __future__ import annotations

import json
import math

import pytest
import torch
from typer.testing import CliRunner

import archmods
from archcast.cli import app
from extraction.geometry import anisotropy, intrinsic_dimension, residual_share
from extraction.measure import Settings, measure

from .conftest import save_checkpoint, tiny_config


def test_anisotropy_is_one_on_a_line_and_one_over_d_when_isotropic():
    g = torch.Generator().manual_seed(0)
    line = torch.randn(500, 1, generator=g, dtype=torch.float64) * torch.randn(1, 16, generator=g, dtype=torch.float64)
    assert anisotropy(line + 3.0) == pytest.approx(1.0, abs=1e-9)  # a shift changes nothing: the points are centred
    cloud = torch.randn(20000, 8, generator=g, dtype=torch.float64)
    assert anisotropy(cloud) == pytest.approx(1 / 8, rel=0.1)


@pytest.mark.parametrize("dim", [2, 5])
def test_twonn_finds_the_dimension_of_points_on_a_flat_subspace(dim):
    g = torch.Generator().manual_seed(1)
    basis = torch.linalg.qr(torch.randn(24, dim, generator=g, dtype=torch.float64)).Q  # dim directions in 24-D
    points = torch.randn(3000, dim, generator=g, dtype=torch.float64) @ basis.T
    assert intrinsic_dimension(points) == pytest.approx(dim, rel=0.15)


def test_the_residual_share_finds_the_few_tokens_a_linear_map_cannot_follow():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(400, 6, generator=g, dtype=torch.float64)
    y = x @ torch.randn(6, 6, generator=g, dtype=torch.float64)
    planted = torch.tensor([17, 230, 391, 5])
    y[planted] += 40 * torch.randn(4, 6, generator=g, dtype=torch.float64)  # 1 % of the tokens, nonlinear
    y += 1e-3 * torch.randn(400, 6, generator=g, dtype=torch.float64)
    share, rows = residual_share(x, y)
    assert share > 0.95
    assert set(rows.tolist()) == set(planted.tolist())
    exact, none = residual_share(x, x @ torch.eye(6, dtype=torch.float64))
    assert math.isnan(exact) and len(none) == 0  # a linear layer has no residual to share


def test_measure_reports_the_geometry_per_layer_and_the_tokens_it_names(tokenizer):
    torch.manual_seed(0)
    model = archmods.build_model(tiny_config("llama", tokenizer)).eval()
    windows = torch.randint(10, len(tokenizer), (6, 40))
    rows = measure(model, windows, Settings(batch_size=4, geometry=True))
    plain = measure(model, windows, Settings(batch_size=4))
    for row, before in zip(rows, plain, strict=True):
        assert 0 < row["anisotropy"] <= 1 and row["intrinsic_dim"] > 0
        assert 0.01 <= row["nonlin_top1pct_share"] <= 1
        assert len(row["nonlin_top_where"]) == math.ceil(0.01 * 6 * 39)  # positions ≥ 1 of every window
        for (w, p), token in zip(row["nonlin_top_where"], row["nonlin_top_token_ids"], strict=True):
            assert p >= 1 and int(windows[w, p]) == token
        assert row["linearity"] == before["linearity"]  # the geometry changes nothing already measured
    assert "anisotropy" not in plain[0]


def test_measure_cli_writes_the_nonlinear_tokens_with_their_text(tokenizer, tmp_path):
    folder = tmp_path / "ckpt"
    save_checkpoint(folder, tiny_config("llama", tokenizer), tokenizer)
    out = tmp_path / "out"
    args = ["measure", str(folder), "--out", str(out), "--n-seq", "3", "--seq-len", "48", "--geometry"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "geometry: anisotropy" in result.output
    found = json.loads((out / "nonlinear_tokens.json").read_text())
    layer = found["layers"][0]
    assert layer["tokens"] and all(t["position"] >= 1 and isinstance(t["text"], str) for t in layer["tokens"])
    assert tokenizer.decode([layer["tokens"][0]["id"]]) == layer["tokens"][0]["text"]
