"""The real-model check of the model card, recomputed from the committed model and the measured real model."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from modelstore import read_manifest, resolve
from training.real_check import real_model_check

REPO = Path(__file__).resolve().parents[1]
REAL = REPO / "data" / "real"


def test_the_committed_cards_real_model_figures_are_what_the_check_gives_on_the_measured_model(tmp_path):
    folder = resolve(REPO / "models")
    manifest = read_manifest(folder)
    stored = {m["model"]: m for m in manifest.info["real_model_check"]["models"]}
    got = real_model_check(folder, manifest, REAL)
    for entry in got["models"]:
        for key in ("layers", "ratio_spearman", "ratio_median_abs_log", "linearity_spearman"):
            assert entry[key] == pytest.approx(stored[entry["model"]][key], rel=1e-6), key
        measured = pd.read_parquet(REAL / entry["model"] / "metrics.parquet")["ma_ratio"]
        assert entry["ratio_spread_measured"] == pytest.approx(measured.max() / measured.min())
        assert entry["ratio_spread_predicted"] >= 1.0
        assert f"{entry['ratio_spread_measured']:.1f}× measured" in got["table"][0]
    # the table has one row per layer under each model's header
    rows = [line for line in got["table"] if line.startswith("| ") and line[2].isdigit()]
    assert len(rows) == sum(e["layers"] for e in got["models"])


def test_a_real_model_whose_layer_order_is_turned_over_gets_the_opposite_rank(tmp_path):
    folder = resolve(REPO / "models")
    manifest = read_manifest(folder)
    for name, flip in (("as-measured", False), ("reversed", True)):
        shutil.copy(REAL / "gemma-3-270m" / "config.json", (tmp_path / name).mkdir() or tmp_path / name)
        metrics = pd.read_parquet(REAL / "gemma-3-270m" / "metrics.parquet").sort_values("layer")
        if flip:  # a decreasing map of the ratio: every layer's rank turned over, the values still ratios ≥ 1
            metrics["ma_ratio"] = 1e6 / metrics["ma_ratio"]
        metrics.to_parquet(tmp_path / name / "metrics.parquet")
    got = {m["model"]: m for m in real_model_check(folder, manifest, tmp_path)["models"]}
    assert np.isfinite(got["as-measured"]["ratio_spearman"])
    assert got["reversed"]["ratio_spearman"] == pytest.approx(-got["as-measured"]["ratio_spearman"], abs=1e-9)
