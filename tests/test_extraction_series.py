"""extraction/: series from local folders and an offline hub cache, resume, shards, duplicates, failures."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import extraction.run
from extraction.__main__ import main
from extraction.measure import measure_unit
from extraction.store import COLUMNS
from extraction.units import PYTHIA_STEPS, hub_units, shard

from .conftest import REPO, save_checkpoint, tiny_config

FAST = ["--seq-len", "32", "--n-seq", "2"]


def test_pythia_preset_has_154_checkpoints():
    units = hub_units("EleutherAI/pythia-14m", "pythia")
    assert len(units) == 154 == len(PYTHIA_STEPS)
    assert units[0].revision == "step0" and units[-1].step == 143000 and units[11].step == 1000


def test_local_series_gives_one_row_per_unit_and_layer(make_series, tmp_path):
    run = make_series("gpt_neox", steps=(0, 1, 4))
    assert main(["--dirs", str(run), "--out", str(tmp_path / "out"), *FAST]) == 0
    frame = pd.read_parquet(tmp_path / "out" / "metrics.parquet")
    assert list(frame.columns[: len(COLUMNS)]) == list(COLUMNS)
    assert len(frame) == 3 * 3 and sorted(frame["step"].unique()) == [0, 1, 4]
    assert frame["n_seq"].eq(2).all() and frame["seq_len"].eq(32).all()
    assert frame.groupby("revision")["weights_sha256"].nunique().eq(1).all()
    assert frame["weights_sha256"].nunique() == 3


def test_identical_weights_are_flagged_as_duplicates(make_series, tmp_path):
    run = make_series("llama", steps=(0, 1))
    shutil.copytree(run / "step1", run / "step2")  # a defective series: step2 re-publishes step1
    main(["--dirs", str(run), "--out", str(tmp_path / "out"), *FAST])
    frame = pd.read_parquet(tmp_path / "out" / "metrics.parquet")
    dup = frame.groupby("revision")["duplicate_of"].first()
    assert dup["step2"] == "step1" and dup["step1"] == "" and dup["step0"] == ""


def test_corrupt_and_unsupported_units_fail_alone(make_series, tmp_path, capsys):
    run = make_series("llama", steps=(0, 1, 2))
    (run / "step1" / "model.safetensors").write_bytes(b"this is not a safetensors file")
    config = json.loads((run / "step2" / "config.json").read_text())
    (run / "step2" / "config.json").write_text(json.dumps({**config, "model_type": "no_such_family"}))
    assert main(["--dirs", str(run), "--out", str(tmp_path / "out"), *FAST]) == 0
    frame = pd.read_parquet(tmp_path / "out" / "metrics.parquet")
    assert sorted(frame["revision"].unique()) == ["step0"]
    failures = sorted(p.name for p in (tmp_path / "out" / "failures").iterdir())
    assert failures == ["run__step1.txt", "run__step2.txt"]
    err = capsys.readouterr().err
    assert "failed 2" in err and "run__step1" in err


def test_shards_merge_without_duplicates(make_series, tmp_path):
    run = make_series("gpt2", steps=(0, 1, 2, 3, 4))
    out = tmp_path / "out"
    for i in range(3):
        main(["--dirs", str(run), "--out", str(out), "--shard", f"{i}/3", *FAST])
        assert len(list((out / "units").glob("*.parquet"))) == [2, 4, 5][i]  # each shard adds only its share
    main(["--out", str(out), "--merge"])
    frame = pd.read_parquet(out / "metrics.parquet")
    assert len(frame) == 5 * 3 and not frame.duplicated(["model_id", "revision", "layer"]).any()


def test_shard_spec_is_validated():
    with pytest.raises(ValueError, match="i/N"):
        shard([], "1-3")
    with pytest.raises(ValueError, match="0 <= i < N"):
        shard([], "3/3")


def test_interrupted_run_resumes_with_every_unit_once(make_series, tmp_path, monkeypatch):
    """Interrupted inside the third of six units (no timing: the interruption comes from the third unit's first
    batch), then run again: the two finished units are kept as they are, only the other four are measured."""
    run = make_series("llama", steps=tuple(range(6)))
    out = tmp_path / "out"
    args = ["--dirs", str(run), "--out", str(out), *FAST]
    measured: list[str] = []

    def interrupted_in_unit(k: int):
        def measure(unit, probe, settings, on_batch=None, on_start=None):
            measured.append(unit.revision)

            def batch():
                if len(measured) == k:
                    raise KeyboardInterrupt  # what Ctrl-C does in the middle of a unit
                if on_batch:
                    on_batch()

            return measure_unit(unit, probe, settings, on_batch=batch, on_start=on_start)

        return measure

    monkeypatch.setattr(extraction.run, "measure_unit", interrupted_in_unit(3))
    with pytest.raises(KeyboardInterrupt):
        main(args)
    assert measured == ["step0", "step1", "step2"]
    units = sorted((out / "units").iterdir())
    assert [p.name for p in units] == ["run__step0.parquet", "run__step1.parquet"]  # no half-written third
    assert not (out / "metrics.parquet").exists()
    before = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in units}

    measured.clear()
    monkeypatch.setattr(extraction.run, "measure_unit", interrupted_in_unit(0))  # never interrupts
    assert main(args) == 0
    assert measured == ["step2", "step3", "step4", "step5"]  # the finished units are not measured again
    assert {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in units} == before
    frame = pd.read_parquet(out / "metrics.parquet")
    assert sorted(frame["revision"].unique()) == [f"step{i}" for i in range(6)]
    assert not frame.duplicated(["model_id", "revision", "layer"]).any() and len(frame) == 6 * 3


def test_a_unit_interrupted_while_being_written_is_measured_again(make_series, tmp_path, monkeypatch):
    """Killed halfway through writing the second unit's file: no half file is left to pass for a finished unit."""
    run = make_series("llama", steps=(0, 1, 2))
    out = tmp_path / "out"
    args = ["--dirs", str(run), "--out", str(out), *FAST]
    real_to_parquet, writes = pd.DataFrame.to_parquet, []

    def half_then_interrupt(frame, path, *a, **kw):
        writes.append(path)
        if len(writes) == 2:
            Path(path).write_bytes(b"PAR1 half a file")
            raise KeyboardInterrupt
        return real_to_parquet(frame, path, *a, **kw)

    monkeypatch.setattr(pd.DataFrame, "to_parquet", half_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        main(args)
    monkeypatch.setattr(pd.DataFrame, "to_parquet", real_to_parquet)
    assert sorted(p.name for p in (out / "units").iterdir()) == ["run__step0.parquet"]
    assert main(args) == 0
    frame = pd.read_parquet(out / "metrics.parquet")
    assert sorted(frame["revision"].unique()) == ["step0", "step1", "step2"] and len(frame) == 3 * 3


def test_hub_revisions_load_offline_from_a_hub_cache(tmp_path, tokenizer):
    """A folder laid out like the HF hub cache: refs/<branch> → snapshots/<commit>/ files."""
    cache = tmp_path / "hub"
    repo = cache / "models--acme--tiny-lm"
    config = tiny_config("gpt_neox", tokenizer)
    for i, branch in enumerate(["step0", "step1000"]):
        commit = f"{i + 1:040x}"
        save_checkpoint(repo / "snapshots" / commit, config, tokenizer, seed=i)
        (repo / "refs").mkdir(parents=True, exist_ok=True)
        (repo / "refs" / branch).write_text(commit)
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(cache)}
    cmd = [
        sys.executable,
        "-m",
        "extraction",
        "--model",
        "acme/tiny-lm",
        "--revisions",
        "step0,step1000",
        "--out",
        str(out),
        *FAST,
    ]
    result = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    frame = pd.read_parquet(out / "metrics.parquet")
    assert sorted(frame["step"].unique()) == [0, 1000] and frame["model_id"].eq("acme/tiny-lm").all()
    assert frame.groupby("step")["weights_sha256"].first().nunique() == 2


def test_bad_arguments_are_rejected_with_a_message(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["--out", str(tmp_path)])
    assert "--dirs" in capsys.readouterr().err
    with pytest.raises(ValueError, match="no checkpoint folders"):
        main(["--dirs", str(tmp_path / "nothing*"), "--out", str(tmp_path / "o")])


def test_an_output_folder_is_never_mixed_across_settings(make_series, tmp_path):
    run = make_series("llama", steps=(0, 1))
    out = tmp_path / "out"
    main(["--dirs", str(run / "step0"), "--model-id", "run", "--out", str(out), *FAST])
    main(["--dirs", str(run / "step1"), "--model-id", "run", "--out", str(out), *FAST])
    manifest = json.loads((out / "manifest.json").read_text())
    assert len(manifest["units"]) == 2  # invocations accumulate
    with pytest.raises(ValueError, match="other settings"):
        main(["--dirs", str(run), "--out", str(out), "--seq-len", "16", "--n-seq", "2"])
    assert len(pd.read_parquet(out / "metrics.parquet")) == 2 * 3  # nothing finished was lost
