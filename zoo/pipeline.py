"""Tier-level orchestration: corpus → tokenizer → token stream → every run, resumable run by run."""

from __future__ import annotations

import json
import multiprocessing
import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from zoo.corpus import REPO_DATA, Corpus, committed_slice, fetch, fetch_finetune
from zoo.spec import RunSpec
from zoo.tokenizer import load_or_train
from zoo.train import RUN_FILE, train_run

VOCAB_SIZE = {"smoke": 512, "cpu": 4096, "cpu2": 4096, "gpu": 8192}
# the v3 tiers extend cpu2 along tokens and recipe: the same tokenizer and token stream, so runs compare
TOKENS_OF = {"long": "cpu2", "recipe": "cpu2", "finetune": "cpu2"}


@dataclass(frozen=True)
class ZooData:
    tier: str
    corpus: Corpus
    tokenizer_dir: Path
    tokens: Path  # uint16 token ids of the train text
    runs_dir: Path
    probe_tokens: Path | None = None  # of the held-out text: each checkpoint's validation loss
    finetune_tokens: Path | None = None  # of the fine-tuning text (the finetune tier)


def prepare(tier: str, cache: Path) -> ZooData:
    cache = Path(cache)
    corpus = committed_slice() if tier == "smoke" else fetch(cache / "corpus")
    base = cache / "zoo" / tier
    base.mkdir(parents=True, exist_ok=True)
    shared = cache / "zoo" / TOKENS_OF.get(tier, tier)
    tok_dir = shared / "tokenizer"
    tokenizer = load_or_train(tok_dir, corpus.train, VOCAB_SIZE[shared.name])
    tokens = token_file(tokenizer, corpus.train, shared / "tokens.npy")
    probe_tokens = token_file(tokenizer, corpus.probe, shared / "probe_tokens.npy")
    record = {"source": corpus.source, "sha256": corpus.sha256, "train": str(corpus.train), "probe": str(corpus.probe)}
    finetune_tokens = None
    if tier == "finetune":
        text, digest, source = fetch_finetune(cache / "corpus")
        finetune_tokens = token_file(tokenizer, text, base / "finetune_tokens.npy")
        record["finetune"] = {"source": source, "sha256": digest, "text": str(text)}
    (base / "corpus.json").write_text(json.dumps(record, indent=2))
    return ZooData(tier, corpus, tok_dir, tokens, base / "runs", probe_tokens, finetune_tokens)


def token_file(tokenizer, text: Path, path: Path) -> Path:
    """`path`: the uint16 token ids of `text`, written once."""
    if not path.exists():
        ids = tokenizer(text.read_text(encoding="utf-8"), add_special_tokens=False)["input_ids"]
        np.save(path, np.asarray(ids, dtype=np.uint16))
    return path


def is_finished(run_dir: Path) -> bool:
    return (run_dir / RUN_FILE).exists()


def is_committed(tier: str, name: str) -> bool:
    """A run whose measurements are committed (data/zoo/<tier>/runs/<name>.json) is not trained again."""
    return (REPO_DATA / "zoo" / tier / "runs" / f"{name}.json").exists()


def _train_one(spec: RunSpec, data: ZooData, threads: int, device: str) -> dict:
    import torch
    from transformers import PreTrainedTokenizerFast

    if threads:
        torch.set_num_threads(threads)
    tokenizer = PreTrainedTokenizerFast.from_pretrained(data.tokenizer_dir)
    tokens = np.load(data.tokens)
    run_dir = data.runs_dir / spec.name  # an unfinished run continues from its last complete checkpoint
    probe = np.load(data.probe_tokens) if data.probe_tokens else None
    tuning = np.load(data.finetune_tokens) if data.finetune_tokens else None
    return train_run(spec, tokens, tokenizer, run_dir, device=device, log=lambda m: print(m, flush=True),
                     probe_tokens=probe, finetune_tokens=tuning)  # fmt: skip


def run_all(runs: list[RunSpec], data: ZooData, jobs: int = 1, threads: int = 0, device: str = "cpu") -> dict:
    """Train every unfinished run; returns {name: error} for the runs that failed."""
    todo = [r for r in runs if not (is_finished(data.runs_dir / r.name) or is_committed(data.tier, r.name))]
    print(
        f"{len(runs) - len(todo)} of {len(runs)} runs already finished or committed; training {len(todo)}", flush=True
    )
    failed: dict[str, str] = {}

    def report(name: str, result) -> None:
        try:
            summary = result()
            print(f"finished {name}: loss {summary['final_loss']:.3f} in {summary['seconds']:.0f}s", flush=True)
        except Exception as exc:
            failed[name] = f"{type(exc).__name__}: {exc}"
            print(f"FAILED {name}: {failed[name]}\n{traceback.format_exc()}", flush=True)

    if jobs <= 1:  # in-process: forking after torch has started its thread pools can deadlock
        for r in todo:
            report(r.name, lambda r=r: _train_one(r, data, threads, device))
        return failed
    with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pool.submit(_train_one, r, data, threads, device): r for r in todo}
        for future in as_completed(futures):
            report(futures[future].name, future.result)
    return failed
