"""data/: the committed zoo ground truth is complete, and re-measuring committed checkpoints reproduces it."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from contracts import STEP_FILE
from extraction.__main__ import main as extract
from extraction.store import COLUMNS, MECHANISM_COLUMNS, read_metrics
from features import read_spec

from .conftest import REPO

DATA = REPO / "data" / "zoo"
METRICS = ("ma_top1", "ma_top2", "ma_top3", "ma_median", "ma_ratio", "linearity", "linearity_nores")
# The checkpoints committed beside the metrics (data/zoo/checkpoints/<run>/<revision>): the first and the last
# of a run's series, re-measured below; tests/test_extraction_metrics.py also reads llama-L2/step400.
COMMITTED_CHECKPOINTS = {"llama-L2": ["step0", "step400"]}
CHECKPOINT_FILES = ("config.json", "model.safetensors", STEP_FILE, "tokenizer.json", "tokenizer_config.json")


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


def committed_checkpoints() -> dict[str, list[str]]:
    """{run: [revision, …]} of the checkpoint folders under data/zoo/checkpoints (missing folder: empty)."""
    root = DATA / "checkpoints"
    if not root.is_dir():
        return {}
    return {run.name: sorted(p.name for p in run.iterdir() if p.is_dir()) for run in root.iterdir() if run.is_dir()}


def test_the_expected_checkpoints_are_committed_complete():
    found = committed_checkpoints()
    assert found, f"{DATA / 'checkpoints'} is missing or empty"
    assert found == COMMITTED_CHECKPOINTS
    committed = pd.read_parquet(DATA / "metrics.parquet")
    for run, revisions in found.items():
        steps = committed.loc[committed["model_id"] == run, "step"]
        assert not steps.empty, f"{run} has checkpoints but no committed metrics"
        assert {f"step{steps.min()}", f"step{steps.max()}"} <= set(revisions)  # its first and last checkpoint
        for revision in revisions:
            folder = DATA / "checkpoints" / run / revision
            for name in CHECKPOINT_FILES:
                assert (folder / name).is_file() and (folder / name).stat().st_size > 0, folder / name
            assert json.loads((folder / STEP_FILE).read_text())["step"] == int(revision.removeprefix("step"))
            assert revision in set(committed.loc[committed["model_id"] == run, "revision"])  # and was measured


def test_remeasuring_committed_checkpoints_reproduces_the_committed_metrics(tmp_path):
    committed = pd.read_parquet(DATA / "metrics.parquet")
    settings = json.loads((DATA / "PROVENANCE.json").read_text())["extraction"]
    expected = committed_checkpoints()
    assert expected == COMMITTED_CHECKPOINTS  # an empty or partial folder must fail, not compare nothing
    runs = [DATA / "checkpoints" / name for name in sorted(expected)]
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
        layers = read_spec(DATA / "configs" / f"{run.name}.json").layers
        assert sorted(fresh.index.get_level_values("revision").unique()) == sorted(expected[run.name])
        assert len(fresh) == len(expected[run.name]) * layers  # every checkpoint measured, every layer
        ref = committed[committed["model_id"] == run.name].set_index(["revision", "layer"]).loc[fresh.index]
        assert (fresh["weights_sha256"] == ref["weights_sha256"]).all()
        np.testing.assert_allclose(fresh[list(METRICS)].to_numpy(), ref[list(METRICS)].to_numpy(), rtol=1e-5)
        assert (fresh[["top1_token", "top1_dim"]].to_numpy() == ref[["top1_token", "top1_dim"]].to_numpy()).all()
