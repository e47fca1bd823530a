"""Per-unit Parquet files written atomically, a manifest, and the merge into metrics.parquet."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pandas as pd

# The metrics.parquet columns of docs/architecture.md, in order; extra columns may follow.
COLUMNS: tuple[str, ...] = (
    "model_id",
    "revision",
    "step",
    "layer",
    "ma_top1",
    "ma_top2",
    "ma_top3",
    "ma_median",
    "ma_ratio",
    "top1_token",
    "top1_dim",
    "sun_massive",
    "top1_bos_share",
    "ma_ratio_nonbos",
    "top1_dim_mode",
    "top1_dim_share",
    "linearity",
    "linearity_nores",
    "weights_sha256",
    "n_seq",
    "seq_len",
)
EXTRA_COLUMNS: tuple[str, ...] = (
    "linearity_note",
    "duplicate_of",
    "probe_sha256",
    "dtype",
    "device",
    "source_sha256",
    "quantization",
)
MECHANISM_COLUMNS: tuple[str, ...] = ("top1_bos_share", "ma_ratio_nonbos", "top1_dim_mode", "top1_dim_share")


def atomic_write(path: Path, write) -> None:
    """Write through a temp file in the same folder, then rename: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def unit_path(out_dir: Path, key: str) -> Path:
    return out_dir / "units" / f"{key}.parquet"


def write_unit(out_dir: Path, key: str, frame: pd.DataFrame) -> None:
    atomic_write(unit_path(out_dir, key), lambda p: frame.to_parquet(p, index=False))


def write_json(path: Path, payload: dict) -> None:
    atomic_write(path, lambda p: p.write_text(json.dumps(payload, indent=2, sort_keys=True, default=str)))


def check_columns(frame: pd.DataFrame, source: str) -> pd.DataFrame:
    """The documented columns first, in order. Tables measured before the mechanism columns existed (the `cpu`
    zoo tier) get them as NaN: not measured, rather than refused."""
    missing = [c for c in COLUMNS if c not in frame.columns and c not in MECHANISM_COLUMNS]
    if missing:
        raise ValueError(f"{source} lacks metrics columns {missing}")
    frame = frame.assign(**{c: float("nan") for c in MECHANISM_COLUMNS if c not in frame.columns})
    return frame[list(COLUMNS) + [c for c in frame.columns if c not in COLUMNS]]


def read_metrics(path: Path) -> pd.DataFrame:
    return check_columns(pd.read_parquet(path), str(path))


def mark_duplicates(frame: pd.DataFrame) -> pd.DataFrame:
    """`duplicate_of` names the earlier revision (same model) whose weights are byte-identical."""
    firsts = (
        frame.sort_values("step")
        .drop_duplicates(["model_id", "weights_sha256"])
        .set_index(["model_id", "weights_sha256"])["revision"]
    )
    original = frame.set_index(["model_id", "weights_sha256"]).index.map(firsts)
    frame = frame.copy()
    frame["duplicate_of"] = [o if o != r else "" for o, r in zip(original, frame["revision"], strict=True)]
    return frame


def merge(out_dir: Path) -> pd.DataFrame:
    """All unit files (from any shard) → one metrics.parquet, one row per (model, revision, layer)."""
    files = sorted((out_dir / "units").glob("*.parquet"))
    if not files:
        raise ValueError(f"no finished units under {out_dir / 'units'}")
    frame = pd.concat([read_metrics(f) for f in files], ignore_index=True)
    frame = frame.drop_duplicates(["model_id", "revision", "layer"], keep="last")
    frame = mark_duplicates(frame).sort_values(["model_id", "step", "layer"]).reset_index(drop=True)
    atomic_write(out_dir / "metrics.parquet", lambda p: frame.to_parquet(p, index=False))
    return frame
