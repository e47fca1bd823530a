"""zoo/: a run killed mid-way and started again ends with the weights of a run that was never interrupted."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from zoo.train import RUN_FILE, STATE_FILE, latest_state

# trains one small run (TVR on, so its rescale count is part of the state) in a process of its own
WORKER = """
import sys, numpy as np, torch
from pathlib import Path
from transformers import PreTrainedTokenizerFast
from zoo.spec import Recipe, RunSpec
from zoo.train import train_run
torch.set_num_threads(1)
tok_dir, tokens, run_dir = sys.argv[1:4]
recipe = Recipe(steps=400, batch_size=2, seq_len=32, warmup=5, n_linear_checkpoints=10, log_until=8, tvr_every=5)
spec = RunSpec("resume-llama", "llama", d=32, layers=2, heads=2, changes={"tvr": True}, recipe=recipe)
train_run(spec, np.load(tokens), PreTrainedTokenizerFast.from_pretrained(tok_dir), Path(run_dir), log=lambda m: None)
"""


def _sha256s(run_dir: Path) -> dict[str, str]:
    return {p.parent.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in run_dir.glob("step*/model.safetensors")}


def _worker(tok_dir: Path, tokens: Path, run_dir: Path) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-c", WORKER, str(tok_dir), str(tokens), str(run_dir)], env=env)


def test_a_run_killed_mid_way_resumes_to_the_weights_of_an_uninterrupted_run(tokenizer, tmp_path):
    tok_dir, tokens = tmp_path / "tokenizer", tmp_path / "tokens.npy"
    tokenizer.save_pretrained(tok_dir)
    text = Path(__file__).resolve().parents[1].joinpath("data", "corpus", "train_slice.txt").read_text()
    np.save(tokens, np.asarray(tokenizer(text[:200_000], add_special_tokens=False)["input_ids"], dtype=np.uint16))

    whole, cut = tmp_path / "whole", tmp_path / "cut"
    assert _worker(tok_dir, tokens, whole).wait(timeout=600) == 0

    killed = _worker(tok_dir, tokens, cut)
    deadline = time.time() + 600
    # killed once checkpoint 120 (a third of the way in) is complete: its state written and the older ones
    # dropped (the trainer drops them right after the new folder is in place; a kill inside that window
    # leaves both, and latest_state still picks the newer)
    while not ((cut / "step120" / STATE_FILE).exists() and len(list(cut.glob(f"step*/{STATE_FILE}"))) == 1):
        assert killed.poll() is None and time.time() < deadline, "the run ended before it could be killed"
        time.sleep(0.005)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert not (cut / RUN_FILE).exists(), "the run finished before the kill: nothing was resumed"
    state = latest_state(cut)
    assert state is not None and len(list(cut.glob(f"step*/{STATE_FILE}"))) == 1  # only the latest is kept
    assert len(_sha256s(cut)) < len(_sha256s(whole))

    assert _worker(tok_dir, tokens, cut).wait(timeout=600) == 0
    assert _sha256s(cut) == _sha256s(whole)  # every checkpoint, the last included, bit for bit
    summary, reference = (json.loads((d / RUN_FILE).read_text()) for d in (cut, whole))
    assert summary["final_loss"] == reference["final_loss"] and summary["tvr_rescales"] == reference["tvr_rescales"]
    assert [s["from_step"] for s in summary["sittings"]][0] == 0 and summary["sittings"][-1]["from_step"] > 0
    assert not list(cut.glob(f"step*/{STATE_FILE}"))  # a finished run keeps no trainer state


def test_a_run_folder_of_another_spec_is_refused_not_resumed(tokenizer, tmp_path):
    from zoo.spec import Recipe, RunSpec
    from zoo.train import train_run

    text = Path(__file__).resolve().parents[1].joinpath("data", "corpus", "train_slice.txt").read_text()
    ids = np.asarray(tokenizer(text[:50_000], add_special_tokens=False)["input_ids"], dtype=np.uint16)
    recipe = Recipe(steps=6, batch_size=2, seq_len=16, warmup=1, n_linear_checkpoints=3)
    spec = RunSpec("a", "llama", d=32, layers=1, heads=2, recipe=recipe)
    run_dir = tmp_path / "a"

    def crash(message):  # the trainer logs after step 0, once checkpoint 0 and its state are written
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_run(spec, ids, tokenizer, run_dir, log=crash)
    assert latest_state(run_dir) == run_dir / "step0" / STATE_FILE
    with pytest.raises(ValueError, match="another spec"):
        train_run(spec.with_recipe(lr=1e-3), ids, tokenizer, run_dir, log=lambda m: None)
    summary = train_run(spec, ids, tokenizer, run_dir, log=lambda m: None)  # the same spec resumes
    assert summary["sittings"][-1]["from_step"] == 0 and len(summary["sittings"]) == 2


def test_a_fine_tuned_run_resumes_inside_the_fine_tuning_and_keeps_the_pretrained_runs_weights(tokenizer, tmp_path):
    """Pretraining checkpoints equal those of the same run without fine-tuning; a run stopped inside the
    fine-tuning resumes to the weights of one that never stopped; every checkpoint has its validation loss."""
    from zoo.spec import FineTune, Recipe, RunSpec
    from zoo.train import train_run

    text = Path(__file__).resolve().parents[1].joinpath("data", "corpus", "train_slice.txt").read_text()
    ids = np.asarray(tokenizer(text[:60_000], add_special_tokens=False)["input_ids"], dtype=np.uint16)
    other = np.asarray(tokenizer(text[-30_000:].upper(), add_special_tokens=False)["input_ids"], dtype=np.uint16)
    held_out = np.asarray(tokenizer(text[60_000:70_000], add_special_tokens=False)["input_ids"], dtype=np.uint16)
    recipe = Recipe(steps=50, batch_size=2, seq_len=16, warmup=5, n_linear_checkpoints=5, log_until=4)
    plain = RunSpec("p", "llama", d=32, layers=1, heads=2, recipe=recipe)
    tuned = RunSpec("t", "llama", d=32, layers=1, heads=2, recipe=recipe, finetune=FineTune(steps=100, every=25))
    kw = dict(probe_tokens=held_out, log=lambda m: None)
    train_run(plain, ids, tokenizer, tmp_path / "plain", **kw)
    whole = train_run(tuned, ids, tokenizer, tmp_path / "whole", finetune_tokens=other, **kw)

    def stop_in_fine_tuning(message):  # logged at step 100: fine-tuning step 50 of 100, checkpoint 100 written
        if "step 100/" in message:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_run(tuned, ids, tokenizer, tmp_path / "cut", probe_tokens=held_out, log=stop_in_fine_tuning,
                  finetune_tokens=other)  # fmt: skip
    assert latest_state(tmp_path / "cut").parent.name == "step100"
    resumed = train_run(tuned, ids, tokenizer, tmp_path / "cut", finetune_tokens=other, **kw)

    plain_sha, whole_sha, cut_sha = (_sha256s(tmp_path / d) for d in ("plain", "whole", "cut"))
    assert {k: whole_sha[k] for k in plain_sha} == plain_sha  # pretraining is the plain run's, bit for bit
    assert set(whole_sha) - set(plain_sha) == {"step75", "step100", "step125", "step150"}
    assert cut_sha == whole_sha and resumed["val_losses"] == whole["val_losses"]
    assert set(whole["val_losses"]) == {str(s) for s in tuned.checkpoint_steps()}
    assert whole["val_loss"] == whole["val_losses"]["150"] and "pretrained_final_loss" in whole
    step = json.loads((tmp_path / "whole" / "step150" / "archcast_checkpoint.json").read_text())
    assert step["tokens"] == 50 * 2 * 16 + 100 * 8 * 16 and step["val_loss"] == whole["val_loss"]
    with pytest.raises(ValueError, match="fine-tuning text"):
        train_run(tuned, ids, tokenizer, tmp_path / "none", **kw)
