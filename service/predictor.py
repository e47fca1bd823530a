"""The predictor shared by the HTTP service and the batch CLI: ONNX models + curve maths.

Loads the served version from models/ (the CURRENT pointer), refuses a model whose
feature schema or file hashes disagree with this code and the manifest, and turns
a config into per-layer curve parameters, derived quantities, curves and warnings.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnx.compose
import onnxruntime

from features import FEATURES, SCHEMA_HASH, feature_matrix, read_spec
from features.curve import METRIC_RANGE, PARAMS, curve, from_target, peak_step

REPO = Path(__file__).resolve().parents[1]


def default_models_dir() -> Path:
    """Where the served model is read from, in this order: $ARCHCAST_MODELS; models/ of this checkout (an
    editable install or a run from the repository); else the copy that ships inside the wheel
    (the package `archcast_models`, built from the same folder)."""
    if "ARCHCAST_MODELS" in os.environ:
        return Path(os.environ["ARCHCAST_MODELS"])
    if (REPO / "models" / "CURRENT").is_file():
        return REPO / "models"
    import importlib.util

    spec = importlib.util.find_spec("archcast_models")  # a folder of data, no __init__.py: a namespace package
    if spec is None or not spec.submodule_search_locations:
        raise ModelError("no served model: set ARCHCAST_MODELS or pass --models (this install has no models/)")
    shipped = [Path(p) for p in spec.submodule_search_locations if (Path(p) / "CURRENT").is_file()]
    if not shipped:
        raise ModelError("no served model: set ARCHCAST_MODELS or pass --models (this install has no models/)")
    return shipped[0]


MAX_STEPS = 10_000  # points per requested curve
MAX_STEP_VALUE = 1e12


class ModelError(RuntimeError):
    """The model folder cannot be served (missing, tampered, or built for another feature schema)."""


class RequestError(ValueError):
    """A prediction request is invalid; `field` names the offending field."""

    def __init__(self, field: str, message: str):
        self.field = field
        super().__init__(f"{field}: {message}")


@dataclass(frozen=True)
class Target:
    metric: str
    param: str
    transform: str


def combined_model(models: list[onnx.ModelProto]) -> onnx.ModelProto:
    """The per-target models side by side in one graph: the shared input `features` feeds each
    (renamed apart by a prefix), and output i is target i's prediction."""
    nodes, initializers, outputs = [], [], []
    for i, model in enumerate(models):
        graph = onnx.compose.add_prefix(model, f"t{i}_").graph
        (source,) = graph.input
        nodes.append(onnx.helper.make_node("Identity", ["features"], [source.name]))
        nodes.extend(graph.node)
        initializers.extend(graph.initializer)
        outputs.append(graph.output[0])
    graph = onnx.helper.make_graph(nodes, "archcast", [models[0].graph.input[0]], outputs, initializers)
    combined = onnx.helper.make_model(graph, opset_imports=models[0].opset_import)
    combined.ir_version = models[0].ir_version
    return combined


def cpu_threads() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def resolve_version(models_dir: Path, version: str | None) -> Path:
    models_dir = Path(models_dir)
    if version is None:
        pointer = models_dir / "CURRENT"
        if not pointer.exists():
            raise ModelError(f"no served model: {pointer} is missing (run `archcast retrain` first)")
        version = pointer.read_text().strip()
    folder = models_dir / version
    if not (folder / "manifest.json").exists():
        raise ModelError(f"model version {version!r} has no manifest.json under {models_dir}")
    return folder


class Predictor:
    def __init__(self, models_dir: Path | None = None, version: str | None = None, threads: int | None = None):
        self.folder = resolve_version(models_dir or default_models_dir(), version)
        self.manifest: dict[str, Any] = json.loads((self.folder / "manifest.json").read_text())
        schema = self.manifest.get("schema", {})
        if schema.get("hash") != SCHEMA_HASH or schema.get("features") != list(FEATURES):
            raise ModelError(
                f"{self.folder.name} was trained on feature schema {schema.get('hash', '?')[:12]}, this code has "
                f"{SCHEMA_HASH[:12]}: retrain it (`archcast retrain`) or install the matching archcast version"
            )
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads or cpu_threads()
        options.inter_op_num_threads = 1
        self.targets: list[Target] = []
        graphs = []
        for entry in self.manifest["targets"]:
            path = self.folder / entry["file"]
            if not path.exists():
                raise ModelError(f"{path} is missing")
            data = path.read_bytes()
            if hashlib.sha256(data).hexdigest() != entry["sha256"]:
                raise ModelError(f"{path} does not match the sha256 in its manifest: refusing a tampered model")
            graphs.append(onnx.load_from_string(data))
            self.targets.append(Target(entry["metric"], entry["param"], entry["transform"]))
        # One session over all targets: a request then costs one onnxruntime call, not one per target.
        self.session = onnxruntime.InferenceSession(
            combined_model(graphs).SerializeToString(), options, providers=["CPUExecutionProvider"]
        )
        self.metrics: list[str] = list(self.manifest["metrics"])
        self.default_steps: list[int] = list(self.manifest.get("default_steps", []))
        ranges = self.manifest["domain"]["feature_ranges"]
        self._low = np.array([ranges[f][0] for f in FEATURES], dtype=np.float64)
        self._high = np.array([ranges[f][1] for f in FEATURES], dtype=np.float64)
        self._families = set(self.manifest["domain"]["model_types"])

    @property
    def version(self) -> str:
        return self.manifest["version"]

    def check_steps(self, steps) -> np.ndarray:
        if steps is None:
            return np.asarray(self.default_steps, dtype=np.float64)
        if not isinstance(steps, (list, tuple)) or not steps:
            raise RequestError("steps", "expected a non-empty list of training steps")
        if len(steps) > MAX_STEPS:
            raise RequestError("steps", f"at most {MAX_STEPS} steps per request, got {len(steps)}")
        for s in steps:
            if (
                isinstance(s, bool)
                or not isinstance(s, (int, float))
                or (isinstance(s, float) and not math.isfinite(s))
            ):
                raise RequestError("steps", f"every step must be a finite number, got {s!r}")
            if not 0 <= s <= MAX_STEP_VALUE:
                raise RequestError("steps", f"steps must lie in [0, {MAX_STEP_VALUE:.0e}], got {str(s)[:24]}")
        return np.asarray(steps, dtype=np.float64)

    def check_metrics(self, metrics) -> list[str]:
        if metrics is None:
            return self.metrics
        if not isinstance(metrics, (list, tuple)) or not metrics:
            raise RequestError("metrics", "expected a non-empty list of metric names")
        unknown = [m for m in metrics if m not in self.metrics]
        if unknown:
            raise RequestError("metrics", f"unknown {unknown}; this model predicts {', '.join(self.metrics)}")
        return list(dict.fromkeys(metrics))

    def domain_warnings(self, rows: np.ndarray, model_type: str) -> list[dict[str, Any]]:
        warnings = []
        if model_type not in self._families:
            seen = ", ".join(sorted(self._families))
            warnings.append(warning("family_unseen", f"family {model_type!r} was never seen in training (seen: {seen})",
                                    feature="model_type", value=model_type))  # fmt: skip
        below = (rows < self._low - 1e-6).any(axis=0)
        above = (rows > self._high + 1e-6).any(axis=0)
        for i in np.where(below | above)[0]:
            value = float(rows[:, i].min() if below[i] else rows[:, i].max())
            low, high = float(self._low[i]), float(self._high[i])
            warnings.append(warning(
                "feature_out_of_range",
                f"feature {FEATURES[i]}={value:g} is outside the training range [{low:g}, {high:g}]",
                feature=FEATURES[i], value=value, range=[low, high],
            ))  # fmt: skip
        return warnings

    def step_warnings(self, t: np.ndarray) -> list[dict[str, Any]]:
        """Steps past the last training checkpoint read the fitted curve beyond any data."""
        trained = max(self.default_steps) if self.default_steps else None
        if trained is None or not len(t) or float(t.max()) <= trained:
            return []
        beyond = int((t > trained).sum())
        return [warning(
            "steps_beyond_training",
            f"{beyond} of the requested steps lie beyond the last training step ({trained:g}); the curves there "
            "extend the fitted shape past any data (mostly its plateau) and are extrapolation",
            feature="steps", value=float(t.max()), range=[0.0, float(trained)],
        )]  # fmt: skip

    def parameters(self, rows: np.ndarray, metrics: list[str]) -> dict[str, dict[str, np.ndarray]]:
        """metric → param → values per layer (L,), in original units."""
        out: dict[str, dict[str, np.ndarray]] = {m: {} for m in metrics}
        for target, raw in zip(self.targets, self.session.run(None, {"features": rows}), strict=True):
            if target.metric in out:
                out[target.metric][target.param] = from_target(target.transform, raw.reshape(-1))
        return out

    def predict(self, config: Any, steps=None, metrics=None) -> dict[str, Any]:
        """Per layer: the five parameters, derived quantities and the curve at `steps` for each metric.

        Raises features.FeatureError for a bad config and RequestError for bad steps/metrics.
        """
        t = self.check_steps(steps)
        metrics = self.check_metrics(metrics)
        rows = feature_matrix(config)  # (L, F) float32
        model_type = read_spec(config).model_type
        params = self.parameters(rows, metrics)
        last = float(t.max()) if len(t) else 0.0
        layers = [{"layer": i + 1, "metrics": {}} for i in range(len(rows))]
        clipped: list[dict[str, Any]] = []
        for metric, p in params.items():
            values = curve(t[None, :], *(p[name][:, None] for name in PARAMS))  # (L, T)
            low, high = METRIC_RANGE.get(metric, (-np.inf, np.inf))
            outside = (values < low) | (values > high)
            if outside.any():
                layers_out = sorted({int(i) + 1 for i in np.nonzero(outside)[0]})
                clipped.append(warning(
                    "curve_clipped",
                    f"{metric}: curve values outside its possible range [{low:g}, {high:g}] were clipped to it "
                    f"(layers {layers_out}); unreliable there",
                    feature=metric, value=layers_out, range=[low, high],
                ))  # fmt: skip
                values = np.clip(values, low, high)
            t_peak = peak_step(p["lam"], p["gamma"], p["t0"])
            observable = np.isfinite(t_peak) & (t_peak > 0)
            peak_value = np.where(observable, curve(np.where(observable, t_peak, 0.0), *(p[n] for n in PARAMS)), np.nan)
            final = np.clip(curve(last, *(p[n] for n in PARAMS)), low, high)
            peak_value = np.clip(peak_value, low, high)  # NaN (no observable peak) stays NaN
            columns = {name: _nums(p[name]) for name in PARAMS}
            derived = {
                "steady_state": columns["K"],
                # A > 0: the curve rises to a peak then decays; A < 0: it falls to a dip and recovers
                "extremum_kind": np.where(p["A"] > 0, "peak", np.where(p["A"] < 0, "dip", "none")).tolist(),
                "peak_step": _nums(t_peak),
                "peak_observable": observable.tolist(),
                "peak_value": _nums(peak_value),
                "final_value": _nums(final),
            }
            curves = _nums(values)
            for i, layer in enumerate(layers):
                layer["metrics"][metric] = {
                    "params": {name: column[i] for name, column in columns.items()},
                    "derived": {name: column[i] for name, column in derived.items()},
                    "curve": curves[i],
                }
        return {
            "model_version": self.version,
            "model_type": model_type,
            "n_layers": len(rows),
            "steps": _nums(t),
            "warnings": self.domain_warnings(rows.astype(np.float64), model_type) + self.step_warnings(t) + clipped,
            "layers": layers,
        }


def warning(code: str, message: str, feature: str | None = None, value=None, range=None) -> dict[str, Any]:
    """One warning of a prediction: a code to act on, the input it concerns, and a sentence.
    Infinite bounds (a ratio has no upper one) become null: JSON has no infinity."""

    def safe(v):
        return None if isinstance(v, float) and not math.isfinite(v) else v

    bounds = None if range is None else [safe(float(b)) for b in range]
    return {"code": code, "feature": feature, "value": safe(value), "range": bounds, "message": message}


def warning_text(warnings: list[dict[str, Any]]) -> str:
    """The warnings as one readable cell (csv, parquet)."""
    return " | ".join(w["message"] for w in warnings)


def _nums(values: np.ndarray) -> list:
    """JSON-safe (nested) list of floats: NaN and ±inf become null."""
    values = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(values)
    if finite.all():
        return values.tolist()
    return np.where(finite, values, None).tolist()
