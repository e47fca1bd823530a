"""The predictor shared by the HTTP service and the batch CLI: ONNX models + curve maths.

Loads the served version from models/ (the CURRENT pointer), refuses a model whose
feature schema or file hashes disagree with this code and the manifest, and turns
a config into per-layer curve parameters, derived quantities, curves and warnings.
"""

from __future__ import annotations

import math
import numbers
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from contracts import CURRENT_POINTER
from emergence.curve import METRIC_RANGE, Projector, clip_between, curve_rows, from_target
from emergence.mechanism import MECHANISM, MarginError
from emergence.path import ProjectedCurves, project_curves
from emergence.scale import AXES, scale_term
from features import FEATURES, ArchcastError, ArchSpec, read_spec, spec_matrix
from features.recipe import FIELDS as RECIPE_FIELDS
from features.recipe import RECIPE_FEATURES, Recipe, read_recipe, recipe_vector, reference_recipe
from modelstore import ModelError, read_manifest, resolve, verify
from service.prediction import MetricPrediction, Prediction, PredictionWarning, mechanism_predictions, per_layer
from service.prediction_batch import PredictionBatch
from service.session import CURVE_INPUT, LAYER_INPUT, session

__all__ = ["LibraryVersionWarning", "ModelError", "Predictor", "RequestError", "default_models_dir", "expected_block"]

REPO = Path(__file__).resolve().parents[1]


def default_models_dir() -> Path:
    """Where the served model is read from, in this order: $ARCHCAST_MODELS; models/ of this checkout (an
    editable install or a run from the repository); else the copy that ships inside the wheel
    (the package `archcast_models`, built from the same folder)."""
    if "ARCHCAST_MODELS" in os.environ:
        return Path(os.environ["ARCHCAST_MODELS"])
    if (REPO / "models" / CURRENT_POINTER).is_file():
        return REPO / "models"
    import importlib.util

    spec = importlib.util.find_spec("archcast_models")  # a folder of data, no __init__.py: a namespace package
    if spec is None or not spec.submodule_search_locations:
        raise ModelError("no served model: set ARCHCAST_MODELS or pass --models (this install has no models/)")
    shipped = [Path(p) for p in spec.submodule_search_locations if (Path(p) / CURRENT_POINTER).is_file()]
    if not shipped:
        raise ModelError("no served model: set ARCHCAST_MODELS or pass --models (this install has no models/)")
    return shipped[0]


MAX_STEPS = 10_000  # points per requested curve
# What the served numbers are computed with: a version change warns, and the stored answers decide
SERVING_LIBRARIES = ("numpy", "scipy", "onnx", "onnxruntime")
# Answers may differ by float32 rounding in another build of the same libraries, nothing more
EXPECTED_RTOL, EXPECTED_ATOL = 1e-4, 1e-6


class LibraryVersionWarning(UserWarning):
    """The served model's answers were recorded with other versions of the libraries that compute them."""


def serving_libraries() -> dict[str, str]:
    from importlib.metadata import version

    return {name: version(name) for name in SERVING_LIBRARIES}


MAX_WIDENING = 4.0  # bands grow at most 5× (in log space) with distance from the training domain
MAX_STEP_VALUE = 1e12


class RequestError(ArchcastError):
    """A prediction request's steps or metrics are invalid; `field` names which."""


@dataclass(frozen=True)
class Target:
    metric: str
    param: str
    transform: str


def cpu_threads() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class CheckedRequest:
    """A prediction request's parts once checked: steps (T,), metric names, the recipe (None: the model has none)."""

    steps: np.ndarray
    metrics: list[str]
    recipe: Recipe | None
    recipe_given: bool  # whether the request named a recipe (the response then echoes it)


class Predictor:
    def __init__(self, models_dir: Path | None = None, version: str | None = None, threads: int | None = None):
        self.folder = resolve(models_dir or default_models_dir(), version)
        manifest = read_manifest(self.folder)
        blobs = verify(self.folder, manifest)  # schema, reference feature rows, file hashes
        self.manifest: dict[str, Any] = manifest.to_json()
        self.metrics: list[str] = list(manifest.metrics)
        curves = {t.metric: t for t in manifest.targets if t.kind == "curve"}
        if set(curves) != set(self.metrics) or set(manifest.shapes) < set(self.metrics):
            raise ModelError(
                f"{self.folder.name} has no curve regressor and shapes for every metric (an export of an older "
                "archcast, which regressed the five parameters one by one): retrain it (`archcast retrain`)"
            )
        self.curve_targets = [curves[m] for m in self.metrics]
        # each curve regressor is read at the reference steps its export names and projected (emergence.curve)
        if not manifest.projection_steps:
            raise ModelError(
                f"{self.folder.name} does not name the steps its curve regressors are read at (an export of an "
                "older archcast, whose curves were bare emergence curves): retrain it (`archcast retrain`)"
            )
        self.projection_steps = np.asarray(manifest.projection_steps, dtype=np.float64)
        if not (np.isfinite(self.projection_steps).all() and (np.diff(self.projection_steps) > 0).all()):
            raise ModelError(f"{self.folder.name}: projection_steps must be finite and increasing")
        # one projector over every metric's shapes (group i: metric i), so a request projects in one pass
        self.projector = Projector.grouped(self.projection_steps, {m: manifest.shapes[m] for m in self.metrics})

        # One session over every target (service.session): a request costs one onnxruntime call. Curve
        # regressors read (features, log1p step) rows, the per-layer targets a layer's features. One thread
        # unless asked: a tree ensemble's sums depend on how its work is split, and the CLI and each server
        # worker must give the same numbers for the same request.
        self.layer_targets = [Target(t.metric, t.param, t.transform) for t in manifest.targets if t.kind == "layer"]
        graphs = [(blobs[t.name], CURVE_INPUT) for t in self.curve_targets]
        graphs += [(blobs[t.name], LAYER_INPUT) for t in manifest.targets if t.kind == "layer"]
        self.session = session(graphs, threads or 1)
        self.default_steps: list[int] = list(manifest.default_steps)
        ranges = manifest.domain["feature_ranges"]
        self._low = np.array([ranges[f][0] for f in FEATURES], dtype=np.float64)
        self._high = np.array([ranges[f][1] for f in FEATURES], dtype=np.float64)
        # each feature's warning text but its value, and its range as JSON gives it: made once, not per request
        self._range_text = [f"is outside the training range [{ranges[f][0]:g}, {ranges[f][1]:g}]" for f in FEATURES]
        self._ranges = [(float(ranges[f][0]), float(ranges[f][1])) for f in FEATURES]
        # the unit a distance outside the range is counted in: the feature's training span, or where the training
        # runs all had one value, that value's size (at least 1, a whole step of a 0/1 feature): a vocabulary of
        # 4,097 against the trained 4,096 is then a step of 3e-5, not an infinite one
        span, size = self._high - self._low, np.maximum(np.abs(self._low), np.abs(self._high))
        self._span = np.where(span > 1e-9 * np.maximum(size, 1.0), span, np.maximum(size, 1.0))
        self._families = set(manifest.domain["model_types"])
        # past the trained widths and depths the curves move by the slopes measured between zoo runs
        self.scale = scale_term(manifest.scale, ranges, self.metrics, len(self.projection_steps))
        self._band_nodes = {m: n for m, i in manifest.intervals.items() if i and (n := band_nodes(i)) is not None}
        self.recipe = manifest.recipe
        self.reference_recipe = reference_recipe(manifest.recipe) if manifest.recipe else None
        # a model trained on runs of several recipes reads the request's after the architecture features
        self.recipe_features: list[str] = list(manifest.domain.get("recipe_features", []))
        if self.recipe_features and (self.recipe_features != list(RECIPE_FEATURES) or not self.reference_recipe):
            raise ModelError(
                f"{self.folder.name} reads recipe features {self.recipe_features} where this archcast knows "
                f"{list(RECIPE_FEATURES)} (or records no reference recipe): retrain it (`archcast retrain`)"
            )
        # the range of each recipe field the training runs covered (one recipe: its own values)
        covered = manifest.domain.get("recipe_ranges") or {}
        reference = self.reference_recipe.to_json() if self.reference_recipe else {}
        self._recipe_ranges = {k: covered.get(k, [reference[k], reference[k]]) for k in RECIPE_FIELDS if k in reference}
        self._beyond = (
            "the regressors read it past their data: an extrapolation"
            if self.recipe_features
            else "the curves are those of the trained recipe, which the response's `recipe` gives"
        )
        # the margin regressor's held-out error: each layer's chance and the onset's (an older model: none)
        self._margin_error = MarginError.from_scores(manifest.info.get("mechanism_error", {}))
        self._mechanism_bands = manifest.info.get("mechanism_error", {}).get("intervals", {})  # held-out 80 % bands
        self._reference_configs = {name: ref["config"] for name, ref in manifest.reference_rows.items()}
        if "expected" in manifest.info:  # an export of an older archcast stored no answers to compare with
            self.check_expected(manifest.info["expected"])

    def reference_answers(self) -> dict[str, dict[str, list]]:
        """What this predictor answers for the manifest's reference configs: per config, each metric's curves
        at the projection steps and the mechanism's per-layer values (the numbers every response is made of)."""
        out = {}
        for name, config in self._reference_configs.items():
            prediction = self.predict(config, self.projection_steps)
            answer = {m: p.curves.values.tolist() for m, p in prediction.metrics.items()}
            if prediction.mechanism is not None:
                answer["bos_margin"] = prediction.mechanism.bos_margin.tolist()
                answer["bos_share"] = prediction.mechanism.bos_share.tolist()
            out[name] = answer
        return out

    def check_expected(self, expected: dict[str, Any]) -> None:
        """Refuse to serve answers that differ from those recorded with the model beyond float tolerance (another
        build of onnxruntime or numpy can change a tree ensemble's sums); warn where the libraries that compute
        them are of other versions than when they were recorded, as scikit-learn warns when unpickling."""
        import warnings

        then, now = expected.get("libraries", {}), serving_libraries()
        changed = {k: (then[k], v) for k, v in now.items() if k in then and then[k] != v}
        if changed:
            text = ", ".join(f"{k} {a} → {b}" for k, (a, b) in changed.items())
            warnings.warn(
                f"{self.folder.name}'s answers were recorded with other library versions ({text}); they still "
                "agree within tolerance. Install requirements.lock to serve with the tested versions",
                LibraryVersionWarning,
                stacklevel=3,
            )
        got = self.reference_answers()
        for name, answer in expected.get("outputs", {}).items():
            for key, values in answer.items():
                a = np.asarray(got.get(name, {}).get(key, []), dtype=np.float64)
                a = np.where(np.isfinite(a), a, np.nan)  # as the manifest stores them: JSON has no NaN or ±inf
                b = np.asarray(values, dtype=np.float64)
                if a.shape != b.shape or not np.allclose(a, b, rtol=EXPECTED_RTOL, atol=EXPECTED_ATOL, equal_nan=True):
                    libraries = ", ".join(f"{k} {v}" for k, v in now.items())
                    raise ModelError(
                        f"{self.folder.name} answers reference config {name!r} ({key}) differently from when it was "
                        f"exported (recorded with {then or 'unknown libraries'}, now {libraries}): install "
                        "requirements.lock, or retrain (`archcast retrain`)"
                    )

    @property
    def version(self) -> str:
        return self.manifest["version"]

    def check_steps(self, steps, recipe: Recipe | None = None) -> np.ndarray:
        if steps is None:
            return self.default_steps_for(recipe)
        if isinstance(steps, np.ndarray) and steps.ndim == 1:
            steps = steps.tolist()  # a Python caller's np.arange(...) reads as the list it holds
        if not isinstance(steps, (list, tuple)) or not steps:
            raise RequestError("steps", "expected a non-empty list of training steps")
        if len(steps) > MAX_STEPS:
            raise RequestError("steps", f"at most {MAX_STEPS} steps per request, got {len(steps)}")
        for s in steps:
            # numpy's integers and floats are numbers.Real too; booleans (Python's or numpy's) are not steps, and
            # an integer is always finite (math.isfinite would overflow on one past a float's range)
            if (
                isinstance(s, (bool, np.bool_))
                or not isinstance(s, numbers.Real)
                or (not isinstance(s, numbers.Integral) and not math.isfinite(s))
            ):
                raise RequestError("steps", f"every step must be a finite number, got {str(s)[:24]}")
            if not 0 <= s <= MAX_STEP_VALUE:
                raise RequestError("steps", f"steps must lie in [0, {MAX_STEP_VALUE:.0e}], got {str(s)[:24]}")
        return np.asarray(steps, dtype=np.float64)

    def default_steps_for(self, recipe: Recipe | None) -> np.ndarray:
        """The reference runs' checkpoints, stretched to the requested run's length where the model reads the
        recipe (a request for a 4,000-step run is answered over its 4,000 steps)."""
        steps = np.asarray(self.default_steps, dtype=np.float64)
        if not self.recipe_features or recipe is None or recipe.steps == self.reference_recipe.steps:
            return steps
        return np.unique(np.round(steps * (recipe.steps / self.reference_recipe.steps)))

    def check_metrics(self, metrics) -> list[str]:
        if metrics is None:
            return self.metrics
        if not isinstance(metrics, (list, tuple)) or not metrics:
            raise RequestError("metrics", "expected a non-empty list of metric names")
        unknown = [m for m in metrics if m not in self.metrics]
        if unknown:
            raise RequestError("metrics", f"unknown {unknown}; this model predicts {', '.join(self.metrics)}")
        return list(dict.fromkeys(metrics))

    def domain_warnings_many(
        self, rows: np.ndarray, offsets: np.ndarray, model_types: list[str]
    ) -> list[list[PredictionWarning]]:
        """Per design (its rows offsets[i]:offsets[i + 1] of the stacked rows): its family unseen, its features
        outside the training range."""
        out: list[list[PredictionWarning]] = [[] for _ in model_types]
        for i, model_type in enumerate(model_types):
            if model_type not in self._families:
                seen = ", ".join(sorted(self._families))
                message = f"family {model_type!r} was never seen in training (seen: {seen})"
                out[i].append(PredictionWarning("family_unseen", message, feature="model_type", value=model_type))
        # each feature's extremes per design (two reductions), then plain Python over the few that leave the range
        smallest, largest = np.minimum.reduceat(rows, offsets[:-1]), np.maximum.reduceat(rows, offsets[:-1])
        below, above = smallest < self._low - 1e-6, largest > self._high + 1e-6
        for i in np.flatnonzero((below | above).any(axis=1)).tolist():
            low_values, high_values, below_flags = smallest[i].tolist(), largest[i].tolist(), below[i].tolist()
            for j in np.flatnonzero(below[i] | above[i]).tolist():
                value = low_values[j] if below_flags[j] else high_values[j]
                out[i].append(PredictionWarning(
                    "feature_out_of_range", f"feature {FEATURES[j]}={value:g} {self._range_text[j]}",
                    feature=FEATURES[j], value=value, range=self._ranges[j],
                ))  # fmt: skip
        return out

    def step_warnings(self, t: np.ndarray) -> list[PredictionWarning]:
        """Steps past the last training checkpoint read the fitted curve beyond any data."""
        # a model that reads the recipe learnt from runs of several lengths: the longest bounds what was measured
        last = float(self.projection_steps[-1]) if self.recipe_features else None
        trained = last or (max(self.default_steps) if self.default_steps else None)
        if trained is None or not len(t) or float(t.max()) <= trained:
            return []
        beyond = int((t > trained).sum())
        return [PredictionWarning(
            "steps_beyond_training",
            f"{beyond} of the requested steps lie beyond the last training step ({trained:g}); the curves there "
            "extend the fitted shape past any data (mostly its plateau) and are extrapolation",
            feature="steps", value=float(t.max()), range=(0.0, float(trained)),
        )]  # fmt: skip

    def scale_warnings(self, beyond: np.ndarray, shift: np.ndarray, metrics: list[str]) -> list[PredictionWarning]:
        """Where the scale term moved a design's curves (its (A,) distances past the range, its (M, T) shift):
        along which axes, by how much at the last step, and whether past the reach of the measured trend
        (emergence.scale)."""
        moving = self.scale.moving(beyond)
        if not moving or not shift.any():
            return []
        names = list(AXES)
        axes = [f"{names[j]} ({AXES[names[j]]} {math.exp(beyond[j]):.3g}× the trained "
                f"{'maximum' if beyond[j] > 0 else 'minimum'})" for j in moving]  # fmt: skip
        last = {m: float(s) for m, s in zip(self.metrics, shift[:, -1], strict=True) if m in metrics}
        factors = ", ".join(f"{m} ×{math.exp(s):.3g}" for m, s in last.items() if s) or "no change at the last step"
        held = self.scale.held(beyond)
        where = f"; past the reach of the measured trend in {' and '.join(held)}, held there" if held else ""
        return [PredictionWarning(
            "scale_extrapolated",
            f"past the trained range in {' and '.join(axes)} the curves are moved by the slope measured between "
            f"zoo runs of one design at several sizes (at the last step: {factors}){where}; an extrapolation",
            feature="scale", value={m: round(s, 4) for m, s in last.items()},  # log shift at the last step
        )]  # fmt: skip

    def with_recipe(self, rows: np.ndarray, recipe: Recipe | None) -> np.ndarray:
        """The regressors' input: the (L, F) architecture rows, then the recipe's features where the model reads
        them (the same for every row of a request)."""
        if not self.recipe_features:
            return rows
        vector = recipe_vector(recipe or self.reference_recipe)
        return np.hstack([rows, np.broadcast_to(vector, (len(rows), len(vector)))])

    def run(self, rows: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Every regressor on a design's (L, F) feature rows in one onnxruntime call: the curve regressors'
        (L·T,) log values at the projection steps, and the per-layer targets' (L,) raw outputs."""
        feeds = {CURVE_INPUT: curve_rows(rows, self.projection_steps)}
        if self.layer_targets:  # the graph has the layer input only where there are layer targets
            feeds[LAYER_INPUT] = rows
        outputs = self.session.run(None, feeds)
        return outputs[: len(self.curve_targets)], outputs[len(self.curve_targets) :]

    def curves(self, curve_outputs: list[np.ndarray], metrics: list[str], shift: np.ndarray) -> ProjectedCurves:
        """The `metrics`' curves from the curve regressors' outputs, moved by the scale term's `shift`, (M, T) for
        every layer alike or (M, L, T) per layer (emergence.path, all metrics in one pass)."""
        M, T = len(curve_outputs), len(self.projection_steps)
        logs = np.concatenate(curve_outputs, axis=None).astype(np.float64).reshape(M, -1, T)
        return project_curves(logs, shift, self.projector, [t.metric for t in self.curve_targets], metrics)

    def layer_values(self, layer_outputs: list[np.ndarray]) -> dict[str, dict[str, np.ndarray]]:
        """metric → name → (L,) for the per-layer targets (the mechanism's), in original units."""
        out: dict[str, dict[str, np.ndarray]] = {}
        for target, raw in zip(self.layer_targets, layer_outputs, strict=True):
            out.setdefault(target.metric, {})[target.param] = from_target(target.transform, raw.reshape(-1))
        return out

    def check_recipe(self, recipe) -> Recipe | None:
        if recipe is not None and self.reference_recipe is None:
            raise RequestError("recipe", f"{self.version} records no training recipe to answer one for")
        return None if self.reference_recipe is None else read_recipe(recipe, self.reference_recipe)

    def recipe_warnings(self, requested: Recipe | None) -> list[PredictionWarning]:
        """Recipe fields outside what the training runs covered: the curves are those of the covered recipe."""
        if requested is None or requested == self.reference_recipe:
            return []
        out = []
        for key, value in requested.to_json().items():
            if key not in self._recipe_ranges:
                continue
            low, high = self._recipe_ranges[key]
            inside = value in (low, high) if isinstance(value, (bool, str)) else low <= value <= high
            if not inside:
                trained = f"{low}" if low == high else f"[{low:g}, {high:g}]"
                out.append(PredictionWarning(
                    "recipe_out_of_range",
                    f"recipe.{key}={value} is outside what the training runs covered ({trained}); " + self._beyond,
                    feature=f"recipe.{key}", value=value, range=(low, high),
                ))  # fmt: skip
        return out

    def predict(self, config: Any, steps=None, metrics=None, recipe=None) -> Prediction:
        """Per layer and metric: the five parameters and the curves at `steps` with their derived values, for
        the training `recipe` (a dict of features.recipe.FIELDS; default: the recipe the model was trained on).

        Raises features.FeatureError for a bad config and RequestError or ArchcastError for bad steps, metrics
        or recipe.
        """
        request = self.check_request(steps, metrics, recipe)  # before the config: a bad request names its field
        return self.predict_checked([read_spec(config)], request).prediction(0)

    def check_request(self, steps, metrics, recipe) -> CheckedRequest:
        """The request's steps, metrics and recipe checked (RequestError or ArchcastError naming the field)."""
        checked = self.check_recipe(recipe)
        return CheckedRequest(self.check_steps(steps, checked), self.check_metrics(metrics), checked,
                              recipe is not None)  # fmt: skip

    def predict_specs(self, specs: list[ArchSpec], steps=None, metrics=None, recipe=None) -> PredictionBatch:
        """predict() for many designs at once (read by features.read_spec): one feature matrix, one onnxruntime
        call, and the curves, bands, mechanism and warnings computed over all their layers together."""
        return self.predict_checked(specs, self.check_request(steps, metrics, recipe))

    def predict_checked(self, specs: list[ArchSpec], request: CheckedRequest) -> PredictionBatch:
        t, metrics, requested = request.steps, request.metrics, request.recipe
        if not specs:
            raise RequestError("configs", "expected at least one config")
        matrices = [spec_matrix(spec) for spec in specs]  # (L_i, F) float32 each
        lengths = np.array([len(m) for m in matrices], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(lengths)])
        rows = np.concatenate(matrices)
        curve_outputs, layer_outputs = self.run(self.with_recipe(rows, requested))
        first = rows[offsets[:-1]]
        beyond = self.scale.beyond_many(first)  # (N, A)
        shift = self.scale.shift_many(beyond)  # (N, M, T)
        layer_shift = per_layer(shift, lengths)  # (M, T) for one design, else (ΣL, M, T) → (M, ΣL, T)
        projected = self.curves(
            curve_outputs, metrics, layer_shift if len(specs) == 1 else layer_shift.transpose(1, 0, 2)
        )
        rows64 = rows.astype(np.float64)
        widen = self.widening(rows64)  # (ΣL,)
        out: dict[str, MetricPrediction] = {}
        clipped: list[list[PredictionWarning]] = [[] for _ in specs]
        for metric, curves in projected.at(t).items():  # in `metrics` order
            layer_clipped = curves.clipped.any(axis=1)
            for i in np.flatnonzero(np.logical_or.reduceat(layer_clipped, offsets[:-1])).tolist():
                low, high = METRIC_RANGE[metric]
                layers_out = (np.flatnonzero(layer_clipped[offsets[i] : offsets[i + 1]]) + 1).tolist()
                clipped[i].append(PredictionWarning(
                    "curve_clipped",
                    f"{metric}: curve values outside its possible range [{low:g}, {high:g}] were clipped to it "
                    f"(layers {layers_out}); unreliable there",
                    feature=metric, value=layers_out, range=(low, high),
                ))  # fmt: skip
            out[metric] = MetricPrediction(projected.params[metric], curves)
        model_types = [spec.model_type for spec in specs]
        warnings = self.domain_warnings_many(rows64, offsets, model_types)
        shared = self.step_warnings(t)
        recipe_warnings = self.recipe_warnings(requested)
        widest = np.maximum.reduceat(widen, offsets[:-1])
        widened = self.widened_parts()
        for i, own in enumerate(warnings):
            own += shared + clipped[i]
            if beyond[i].any():
                own += self.scale_warnings(beyond[i], shift[i], metrics)
            own += recipe_warnings
            if widest[i] > 1 and widened:
                own.append(PredictionWarning(
                    "interval_widened",
                    f"outside the training domain, by up to {widest[i]:.1f}× with distance from the training range "
                    f"(a rule, not calibrated there): {'; '.join(widened)}",
                    feature="interval", value=float(widest[i]), range=(1.0, 1.0 + MAX_WIDENING),
                ))  # fmt: skip
        layer = self.layer_values(layer_outputs)
        mechanism = mechanism_predictions(layer.get(MECHANISM, {}), offsets, self._margin_error,
                                          self._mechanism_bands, widen)  # fmt: skip
        # tokens under the recipe the curves answer for: the requested one only where the model reads it
        answered = requested if self.recipe_features and requested is not None else None
        tokens = answered.tokens_per_step if answered else self.recipe.get("tokens_per_step")
        asked = requested.to_json() if request.recipe_given and requested is not None else None
        values = {metric: p.curves.values for metric, p in out.items()}
        return PredictionBatch(self.version, model_types, offsets, t, out, warnings, mechanism, self.recipe,
                               t * tokens if tokens else None, asked,
                               lambda: {m: self.band(m, t, v, widen) for m, v in values.items()})  # fmt: skip

    def widened_parts(self) -> list[str]:
        """What this model widens outside the training domain, in the interval_widened warning's words."""
        parts = []
        if self._band_nodes:
            parts.append("the curves' 80 % bands are widened (in log space)")
        if self._mechanism_bands:
            parts.append("the BOS mechanism's 80 % bands are widened")
        if self._margin_error:
            parts.append("the BOS mechanism's chances are read with an error as much larger")
        return parts

    def widening(self, rows: np.ndarray) -> np.ndarray:
        """(L,): 1 inside the training range of every feature; 1 + the largest distance outside it (in units of
        that feature's training span, or of its one trained value's size), capped at 1 + MAX_WIDENING."""
        outside = np.maximum(0.0, np.maximum(rows - self._high, self._low - rows)) / self._span
        return 1.0 + np.minimum(MAX_WIDENING, outside.max(axis=1))

    def band(self, metric: str, t: np.ndarray, values: np.ndarray, widen: np.ndarray):
        """The central 80 % band around the curves: the held-out residual quantiles of this step (interpolated
        over log steps), widened by distance from the training domain, clipped to the metric's range."""
        nodes = self._band_nodes.get(metric)
        if nodes is None:
            return None
        x, low, high = nodes
        at = np.log1p(t)
        q_low, q_high = np.interp(at, x, low), np.interp(at, x, high)  # (T,)
        lo, hi = METRIC_RANGE.get(metric, (-np.inf, np.inf))
        with np.errstate(over="ignore"):
            return (
                clip_between(values * np.exp(q_low[None, :] * widen[:, None]), lo, hi),
                clip_between(values * np.exp(q_high[None, :] * widen[:, None]), lo, hi),
            )


def band_nodes(interval: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """A manifest interval's (log1p step, log low, log high) nodes where both quantiles are known."""
    x = np.log1p(np.asarray(interval["steps"], dtype=np.float64))
    low = np.asarray(interval["log_low"], dtype=np.float64)
    high = np.asarray(interval["log_high"], dtype=np.float64)
    known = np.isfinite(low) & np.isfinite(high)
    return (x[known], low[known], high[known]) if known.any() else None


def expected_block(predictor: Predictor) -> dict[str, Any]:
    """The manifest's `expected` entry: the predictor's answers for its reference configs and the versions of
    the libraries that computed them (training.export records it; Predictor.check_expected compares at load)."""
    return {
        "libraries": serving_libraries(),
        "rtol": EXPECTED_RTOL,
        "atol": EXPECTED_ATOL,
        "outputs": predictor.reference_answers(),
    }
