"""data/: the committed zoo ground truth is complete, and re-measuring committed checkpoints reproduces it."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from extraction.__main__ import main as extract
from extraction.store import COLUMNS, MECHANISM_COLUMNS, read_metrics
from features import read_spec

from .conftest import REPO

DATA = REPO / "data" / "zoo"
METRICS = ("ma_top1", "ma_top2", "ma_top3", "ma_median", "ma_ratio", "linearity", "linearity_nores")


def test_committed_data_covers_every_architecture_checkpoint_layer_and_metric():
    raw = pd.read_parquet(DATA / "metrics.parquet")
    assert set(COLUMNS) - set(raw.columns) == set(MECHANISM_COLUMNS)  # measured before those columns existed
    frame = read_metrics(DATA / "metrics.parquet")
    assert list(frame.columns[: len(COLUMNS)]) == list(COLUMNS)
    models = sorted(frame["model_id"].unique())
    assert len(models) >= 24
    for model_id, sub in frame.groupby("model_id"):
        layers = read_spec(DATA / "configs" / f"{model_id}.json").layers
        assert sub["step"].nunique() >= 30
        assert sorted(sub["layer"].unique()) == list(range(1, layers + 1))
        assert len(sub) == sub["step"].nunique() * layers
    assert frame[list(METRICS[:-1])].notna().all().all()
    # linearity_nores is undefined (NaN) only where a block left its input unchanged up to a constant,
    # so its update h_l − h_{l−1} has no variance; linearity is then exactly 1.
    undefined = frame["linearity_nores"].isna()
    assert (frame.loc[undefined, "linearity"] > 1 - 1e-9).all()
    provenance = json.loads((DATA / "PROVENANCE.json").read_text())
    assert provenance["corpus"]["sha256"] and provenance["commands"] and provenance["versions"]["torch"]


def test_remeasuring_committed_checkpoints_reproduces_the_committed_metrics(tmp_path):
    committed = pd.read_parquet(DATA / "metrics.parquet")
    settings = json.loads((DATA / "PROVENANCE.json").read_text())["extraction"]
    runs = sorted((DATA / "checkpoints").iterdir())
    assert runs and all(any(run.glob("step*/model.safetensors")) for run in runs)  # an empty folder must fail
    for run in runs:
        out = tmp_path / run.name
        args = [
            "--dirs",
            str(run),
            "--model-id",
            run.name,
            "--out",
            str(out),
            "--seq-len",
            str(settings["seq_len"]),
            "--n-seq",
            str(settings["n_seq"]),
            "--batch-size",
            str(settings["batch_size"]),
        ]
        assert extract(args) == 0
        fresh = pd.read_parquet(out / "metrics.parquet").set_index(["revision", "layer"]).sort_index()
        ref = committed[committed["model_id"] == run.name].set_index(["revision", "layer"]).loc[fresh.index]
        assert (fresh["weights_sha256"] == ref["weights_sha256"]).all()
        np.testing.assert_allclose(fresh[list(METRICS)].to_numpy(), ref[list(METRICS)].to_numpy(), rtol=1e-5)
        assert (fresh[["top1_token", "top1_dim"]].to_numpy() == ref[["top1_token", "top1_dim"]].to_numpy()).all()
