"""Work units: one (model, revision) checkpoint each; how series expand and shard."""

from __future__ import annotations

import glob
import json
import re
from dataclasses import dataclass
from pathlib import Path

from contracts import STEP_FILE

# Pythia's 154 public checkpoints: 0, 1, 2, 4, …, 512, then every 1,000 steps to 143,000.
PYTHIA_STEPS: tuple[int, ...] = (0,) + tuple(2**i for i in range(10)) + tuple(range(1000, 143_001, 1000))
PRESETS = {"pythia": [f"step{s}" for s in PYTHIA_STEPS]}

UNKNOWN_STEP = -1  # a single model (a GGUF file, a hub model without revisions): its training step is not known


@dataclass(frozen=True)
class Unit:
    """One checkpoint: a hub id plus revision, or a local folder."""

    model_id: str
    revision: str
    step: int
    path: str | None = None  # local folder or .gguf file; None for hub units

    @property
    def key(self) -> str:
        return re.sub(r"[^A-Za-z0-9._-]+", "_", f"{self.model_id}__{self.revision}")

    @property
    def source(self) -> str:
        return self.path or self.model_id


def step_of(name: str, folder: Path | None = None) -> int:
    """Training step of a checkpoint: the zoo's step file, else the digits in its name."""
    if folder is not None and (folder / STEP_FILE).exists():
        return int(json.loads((folder / STEP_FILE).read_text())["step"])
    match = re.search(r"(\d+)(?!.*\d)", name)
    if match is None:
        raise ValueError(f"cannot tell the training step of {name!r}: name it like step1000 or checkpoint-1000")
    return int(match.group(1))


def gguf_step(name: str) -> int:
    """A GGUF name carries a step only as step1000 / checkpoint-1000 (its other digits are sizes and quant types)."""
    match = re.search(r"(?:step|checkpoint)[-_]?(\d+)", name)
    return int(match.group(1)) if match else UNKNOWN_STEP


def gguf_unit(path: str | Path, model_id: str | None = None) -> Unit:
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"GGUF file {path} does not exist")
    return Unit(model_id or path.stem, path.stem, gguf_step(path.stem), str(path))


def single_unit(source: str, model_id: str | None = None, step: int | None = None) -> Unit:
    """One model: a .gguf file, a checkpoint folder (with config.json) or a hub id (its main revision)."""
    path = Path(source)
    if source.lower().endswith(".gguf"):
        unit = gguf_unit(path, model_id)
    elif path.is_dir():
        if not (path / "config.json").exists():
            raise ValueError(f"{path} has no config.json: give a checkpoint folder, a .gguf file or a hub id")
        name = path.resolve().name
        unit = Unit(model_id or name, name, step_of(name, path) if _has_step(name, path) else UNKNOWN_STEP, str(path))
    elif path.exists():
        raise ValueError(f"{path} is a file but not .gguf: give a checkpoint folder, a .gguf file or a hub id")
    else:
        unit = Unit(model_id or source, "main", UNKNOWN_STEP)
    return unit if step is None else Unit(unit.model_id, unit.revision, step, unit.path)


def _has_step(name: str, folder: Path) -> bool:
    return (folder / STEP_FILE).exists() or re.search(r"(?:step|checkpoint)[-_]?\d+", name) is not None


def hub_units(model_id: str, revisions: str) -> list[Unit]:
    """`revisions` is a preset name (pythia) or a comma-separated list such as step0,step1000."""
    names = PRESETS.get(revisions) or [r.strip() for r in revisions.split(",") if r.strip()]
    if not names:
        raise ValueError("--revisions is empty")
    return [Unit(model_id, name, step_of(name)) for name in names]


def _is_final(folder: Path) -> bool:
    """Hidden or *.tmp folders are checkpoints still being written."""
    return not (folder.name.startswith(".") or folder.name.endswith(".tmp"))


def local_units(pattern: str, model_id: str | None = None) -> list[Unit]:
    """Checkpoint folders matching a glob (or a run folder holding step folders)."""
    matches = sorted(glob.glob(pattern))
    ggufs = [gguf_unit(p, model_id) for p in matches if p.lower().endswith(".gguf") and Path(p).is_file()]
    folders = [Path(p) for p in matches if Path(p).is_dir()]
    expanded: list[Path] = []
    for folder in folders:
        if (folder / "config.json").exists():
            expanded.append(folder)
        else:  # a run directory: its checkpoint sub-folders
            expanded += sorted(p for p in folder.iterdir() if (p / "config.json").exists() and _is_final(p))
    if not (expanded or ggufs):
        raise ValueError(f"no checkpoint folders (with a config.json) or .gguf files match {pattern!r}")
    units = ggufs + [
        Unit(model_id or folder.parent.name, folder.name, step_of(folder.name, folder), str(folder))
        for folder in expanded
    ]
    return sorted(units, key=lambda u: (u.model_id, u.step))


def shard(units: list[Unit], spec: str | None) -> list[Unit]:
    """`i/N` keeps every N-th unit starting at i (0-based), in a deterministic order."""
    if not spec:
        return units
    try:
        index, count = (int(x) for x in spec.split("/"))
    except ValueError:
        raise ValueError(f"--shard must look like i/N, got {spec!r}") from None
    if not 0 <= index < count:
        raise ValueError(f"--shard {spec}: need 0 <= i < N")
    ordered = sorted(units, key=lambda u: u.key)
    return [u for k, u in enumerate(ordered) if k % count == index]
