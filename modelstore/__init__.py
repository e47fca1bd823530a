"""The model store: where exported predictors live and which one is served.

Layout: <models>/<version>/{<target>.onnx, manifest.json, MODEL_CARD.md} plus the pointer file
<models>/CURRENT naming the served version. training/ writes versions and promotes them; service/ resolves,
verifies and loads them; both go through this module (docs/architecture.md, "The model store").

A version folder is immutable once written: its name carries the data and hyperparameter hashes, so a
different model never needs the same name, and the served folder is never touched while it is served.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from contracts import CURRENT_POINTER
from features import FEATURES, SCHEMA_HASH, SCHEMA_VERSION, feature_matrix

MANIFEST = "manifest.json"
CARD = "MODEL_CARD.md"
# Feature rows may differ by float32 rounding of the same arithmetic, nothing more.
REFERENCE_TOLERANCE = 1e-5


class ModelError(RuntimeError):
    """A model folder cannot be served (missing, tampered, or built for other feature code)."""


@dataclass(frozen=True)
class TargetEntry:
    """One exported regressor: which parameter of which metric it predicts, in which transform."""

    name: str
    metric: str
    param: str
    transform: str
    file: str
    sha256: str
    rows: int
    params: dict[str, Any]  # its LightGBM hyperparameters
    parity_max_rel_error: float
    kind: str = "layer"  # "layer": reads a layer's features; "curve": the features and log1p(step)


@dataclass(frozen=True)
class Manifest:
    """manifest.json, typed. `reference_rows` holds the feature rows of a few configs as computed when the
    model was trained: the schema hash covers feature names only, these catch a change in how a feature is
    computed. Keys this class does not name (scores, provenance, curve errors …) travel in `info`."""

    version: str
    schema: dict[str, Any]  # {"version", "hash", "features"}
    targets: list[TargetEntry]
    metrics: list[str]
    domain: dict[str, Any]  # {"feature_ranges", "model_types", "models", "layers"}
    default_steps: list[int] = field(default_factory=list)
    projection_steps: list[float] = field(default_factory=list)  # where the curve regressors are read (emergence.curve)
    recipe: dict[str, Any] = field(default_factory=dict)  # the training recipe the steps refer to
    intervals: dict[str, dict[str, Any]] = field(default_factory=dict)  # metric → conformal band by step
    shapes: dict[str, list[list[float]]] = field(default_factory=dict)  # metric → curve shapes (λ, γ, t0)
    scale: dict[str, dict[str, Any]] = field(default_factory=dict)  # metric → axis → slope (emergence.scale)
    reference_rows: dict[str, dict[str, Any]] = field(default_factory=dict)  # name → {"config", "rows"}
    info: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Manifest:
        named = {f for f in cls.__dataclass_fields__ if f != "info"}
        missing = [k for k in ("version", "schema", "targets", "metrics", "domain") if k not in data]
        if missing:
            raise ModelError(f"manifest lacks {missing}")
        values = {k: data[k] for k in named if k in data}
        values["targets"] = [TargetEntry(**t) for t in data["targets"]]
        return cls(**values, info={k: v for k, v in data.items() if k not in named})

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        return {**{k: v for k, v in out.items() if k != "info"}, **self.info}

    def write(self, folder: Path) -> None:
        # strict JSON (NaN and ±inf as null): /metadata serves it as is, and JSON has neither
        text = json.dumps(_json_safe(self.to_json()), indent=2, default=float, allow_nan=False)
        (Path(folder) / MANIFEST).write_text(text + "\n")


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if np.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def schema_block() -> dict[str, Any]:
    return {"version": SCHEMA_VERSION, "hash": SCHEMA_HASH, "features": list(FEATURES)}


def reference_rows(configs: dict[str, dict]) -> dict[str, dict[str, Any]]:
    """The feature rows of each config, to store in a manifest."""
    return {name: {"config": c, "rows": feature_matrix(c).astype(float).tolist()} for name, c in configs.items()}


def sha256_file(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def current_version(models_dir: Path) -> str | None:
    pointer = Path(models_dir) / CURRENT_POINTER
    return pointer.read_text().strip() if pointer.exists() else None


def resolve(models_dir: Path, version: str | None = None) -> Path:
    """The folder of `version`, or of the served one (CURRENT) when None."""
    models_dir = Path(models_dir)
    if version is None:
        version = current_version(models_dir)
        if version is None:
            raise ModelError(f"no served model: {models_dir / CURRENT_POINTER} is missing (run `archcast retrain`)")
    folder = models_dir / version
    if not (folder / MANIFEST).exists():
        raise ModelError(f"model version {version!r} has no {MANIFEST} under {models_dir}")
    return folder


def read_manifest(folder: Path) -> Manifest:
    try:
        return Manifest.from_json(json.loads((Path(folder) / MANIFEST).read_text()))
    except (OSError, json.JSONDecodeError, TypeError) as exc:
        raise ModelError(f"{Path(folder) / MANIFEST} cannot be read: {exc}") from None


def verify(folder: Path, manifest: Manifest) -> dict[str, bytes]:
    """Check that this code can serve the version: same feature schema, the same feature rows for the
    reference configs, every file present with its recorded sha256. Returns target name → ONNX bytes."""
    folder = Path(folder)
    schema = manifest.schema
    if schema.get("hash") != SCHEMA_HASH or schema.get("features") != list(FEATURES):
        raise ModelError(
            f"{folder.name} was trained on feature schema {str(schema.get('hash', '?'))[:12]}, this code has "
            f"{SCHEMA_HASH[:12]}: retrain it (`archcast retrain`) or install the matching archcast version"
        )
    for name, ref in manifest.reference_rows.items():
        now = feature_matrix(ref["config"]).astype(np.float64)
        then = np.asarray(ref["rows"], dtype=np.float64)
        if now.shape != then.shape or not np.allclose(now, then, rtol=REFERENCE_TOLERANCE, atol=1e-6):
            differ = [FEATURES[i] for i in np.nonzero(~np.isclose(now, then, rtol=REFERENCE_TOLERANCE).all(0))[0]]
            raise ModelError(
                f"{folder.name}: the features of reference config {name!r} are computed differently now than "
                f"when it was trained ({', '.join(differ) or 'layer count'}): retrain it (`archcast retrain`)"
            )
    blobs = {}
    for entry in manifest.targets:
        path = folder / entry.file
        if not path.exists():
            raise ModelError(f"{path} is missing")
        data = path.read_bytes()
        if hashlib.sha256(data).hexdigest() != entry.sha256:
            raise ModelError(f"{path} does not match the sha256 in its manifest: refusing a tampered model")
        blobs[entry.name] = data
    return blobs


def same_files(a: Path, b: Path) -> bool:
    names = sorted(p.name for p in a.iterdir())
    return names == sorted(p.name for p in b.iterdir()) and all(
        (a / n).read_bytes() == (b / n).read_bytes() for n in names
    )


def promote(candidate: Path, models_dir: Path) -> Path:
    """Make `candidate` (a finished version folder) the served version. The folder is copied in under a
    temporary name and renamed into place, then the pointer is switched by an atomic rename; the version
    being served is never removed or rewritten on the way, so a reader always finds a whole model."""
    candidate, models_dir = Path(candidate), Path(models_dir)
    models_dir.mkdir(parents=True, exist_ok=True)
    target = models_dir / candidate.name
    if target.resolve() != candidate.resolve():
        if target.exists() and not same_files(target, candidate):
            if current_version(models_dir) == candidate.name:
                raise ModelError(f"{target} is served and differs from {candidate}: it is never rewritten in place")
            trash = models_dir / f".{candidate.name}.old"
            shutil.rmtree(trash, ignore_errors=True)
            os.replace(target, trash)
            shutil.rmtree(trash)
        if not target.exists():
            tmp = models_dir / f".{candidate.name}.tmp"
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.copytree(candidate, tmp)
            os.replace(tmp, target)
    pointer_tmp = models_dir / f".{CURRENT_POINTER}.tmp"
    pointer_tmp.write_text(candidate.name + "\n")
    os.replace(pointer_tmp, models_dir / CURRENT_POINTER)
    return target
