"""Probe inputs: N windows of S tokens from a text file, deterministic given a seed."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch

DEFAULT_PROBE = Path(__file__).resolve().parents[1] / "data" / "probe" / "probe.txt"


def probe_hash(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def probe_windows(tokenizer, text_path: Path, n_seq: int, seq_len: int, seed: int = 0, bos: bool | None = None):
    """Token windows (n_seq, seq_len), int64.

    `bos=None` puts the tokenizer's BOS token first where it has one. Windows start
    at distinct random offsets of the tokenised text (non-overlapping when the text
    is long enough).
    """
    text = Path(text_path).read_text(encoding="utf-8", errors="replace")
    bos_id = tokenizer.bos_token_id
    use_bos = (bos_id is not None) if bos is None else bos
    if use_bos and bos_id is None:
        raise ValueError("--bos was asked for but the tokenizer has no BOS token")
    body = seq_len - 1 if use_bos else seq_len
    ids = np.asarray(tokenizer(text, add_special_tokens=False)["input_ids"], dtype=np.int64)
    if len(ids) < body:
        raise ValueError(f"probe text {text_path} has {len(ids)} tokens; a window needs {body}")
    rng = np.random.default_rng(seed)
    slots = len(ids) // body
    if slots >= n_seq:  # non-overlapping windows
        starts = rng.choice(slots, size=n_seq, replace=False) * body
    else:
        starts = rng.integers(0, len(ids) - body + 1, size=n_seq)
    windows = np.stack([ids[s : s + body] for s in np.sort(starts)])
    if use_bos:
        windows = np.concatenate([np.full((n_seq, 1), bos_id, dtype=np.int64), windows], axis=1)
    return torch.from_numpy(windows)
