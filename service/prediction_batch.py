"""Many configs' predictions as stacked arrays (what Predictor.predict_specs returns), and the one table every
prediction is written as: rows per (config, layer, metric), built array-wise so that a table of thousands of
configs costs about what their feature rows do."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields
from functools import cached_property

import numpy as np
import pandas as pd

from contracts import ArchcastError
from emergence.curve import EXTREMUM_KINDS, PARAMS, Curves
from service.prediction import MetricPrediction, Prediction, PredictionWarning, StackedMechanism, warning_text

_CURVE_FIELDS = tuple(f.name for f in fields(Curves))
Bands = dict[str, tuple[np.ndarray, np.ndarray] | None]


@dataclass(frozen=True)
class PredictionBatch:
    """N configs' predictions: every per-layer array stacks their layers (config i's are offsets[i]:offsets[i+1]);
    `prediction(i)` is config i's Prediction, the same numbers Predictor.predict gives for it alone."""

    model_version: str
    model_types: list[str]  # (N,)
    offsets: np.ndarray  # (N + 1,)
    steps: np.ndarray  # (T,)
    metrics: dict[str, MetricPrediction]  # each array (ΣL, …); their bands are `intervals`
    warnings: list[list[PredictionWarning]]  # (N,)
    mechanism: StackedMechanism | None
    recipe: dict
    tokens: np.ndarray | None
    recipe_requested: dict | None
    band_source: Callable[[], Bands] = field(repr=False, compare=False)

    @cached_property
    def intervals(self) -> Bands:
        """metric → the (ΣL, T) low and high of its 80 % band (None where the model gives none), computed on first
        use: a table of thousands of designs carries no bands, and they cost a sixth of its predictions."""
        return self.band_source()

    def __len__(self) -> int:
        return len(self.model_types)

    @property
    def n_layers(self) -> np.ndarray:
        return np.diff(self.offsets)

    def prediction(self, i: int) -> Prediction:
        a, b = int(self.offsets[i]), int(self.offsets[i + 1])
        metrics = {}
        for metric, p in self.metrics.items():
            curves = Curves(*(getattr(p.curves, name)[a:b] for name in _CURVE_FIELDS))
            band = self.intervals[metric]
            interval = None if band is None else (band[0][a:b], band[1][a:b])
            metrics[metric] = MetricPrediction(p.params[a:b], curves, interval)
        mechanism = None if self.mechanism is None else self.mechanism.one(i)
        return Prediction(self.model_version, self.model_types[i], self.steps, metrics, self.warnings[i], mechanism,
                          self.recipe, self.tokens, self.recipe_requested)  # fmt: skip

    def to_frame(self, names: list[str]) -> pd.DataFrame:
        return prediction_table(names, self.model_types, self.n_layers, self.steps, self.metrics, self.mechanism,
                                self.warnings)  # fmt: skip


def concat_batches(batches: list[PredictionBatch]) -> PredictionBatch:
    """Consecutive batches (of one request) as one, config i of the whole being batch k's config i − start_k."""
    if len(batches) == 1:
        return batches[0]
    first = batches[0]
    offsets = np.concatenate([[0], np.cumsum(np.concatenate([b.n_layers for b in batches]))])

    def stack(parts):  # per-layer arrays, or (low, high) bands of them, or None throughout
        if parts[0] is None:
            return None
        if isinstance(parts[0], tuple):
            return tuple(np.concatenate(side) for side in zip(*parts, strict=True))
        return np.concatenate(parts)

    metrics = {}
    for metric in first.metrics:
        each = [b.metrics[metric] for b in batches]
        curves = Curves(*(stack([getattr(m.curves, name) for m in each]) for name in _CURVE_FIELDS))
        metrics[metric] = MetricPrediction(stack([m.params for m in each]), curves)
    mechanism = None
    if first.mechanism is not None:
        each = [b.mechanism for b in batches]
        per_layer = {name: stack([getattr(m, name) for m in each])
                     for name in ("bos_share", "bos_margin", "has_mechanism", "onset_step", "probability")}  # fmt: skip
        intervals = {name: stack([m.intervals[name] for m in each]) for name in first.mechanism.intervals}
        mechanism = StackedMechanism(offsets=offsets, **per_layer,
                                     onset_layer=[k for m in each for k in m.onset_layer],
                                     onset_chance=np.concatenate([m.onset_chance for m in each]),
                                     intervals=intervals)  # fmt: skip
    return PredictionBatch(first.model_version, [t for b in batches for t in b.model_types], offsets, first.steps,
                           metrics, [w for b in batches for w in b.warnings], mechanism, first.recipe, first.tokens,
                           first.recipe_requested,
                           lambda: {m: stack([b.intervals[m] for b in batches]) for m in first.metrics})  # fmt: skip


def step_columns(steps) -> list[str]:
    """A table's curve columns: at_step_100, at_step_10.5 (a fractional step keeps its fraction); a step asked for
    twice would name two columns alike, which no table format keeps apart, so it is refused."""
    names = [f"at_step_{int(s)}" if float(s).is_integer() else f"at_step_{float(s)!r}" for s in steps]
    if len(set(names)) < len(names):
        twice = next(n for n in names if names.count(n) > 1).removeprefix("at_step_")
        raise ArchcastError("steps", f"step {twice} is asked for twice")
    return names


def prediction_table(
    names: list[str],
    model_types: list[str],
    n_layers,
    steps: np.ndarray,
    metrics: dict[str, MetricPrediction],
    mechanism,
    warnings: list[list[PredictionWarning]],
) -> pd.DataFrame:
    """One row per (config, layer, metric), in that order: parameters, derived values, the mechanism's per-layer
    values, the curve as at_step_<s> columns, and the config's warnings as a count and one readable cell.
    `metrics` and `mechanism` (a MechanismPrediction or StackedMechanism) hold the configs' layers stacked."""
    lengths = np.asarray(n_layers, dtype=np.int64)
    total, count = int(lengths.sum()), len(metrics)
    per_row = lengths * count  # table rows per config

    def by_layer(values) -> np.ndarray:  # a (ΣL,) per-layer array → one value per table row
        return np.repeat(np.asarray(values), count)

    def by_metric(part) -> np.ndarray:  # each metric's (ΣL, …) array → (ΣL · M, …), metrics innermost
        stacked = np.stack([part(p) for p in metrics.values()], axis=1)
        return stacked.reshape(total * count, *stacked.shape[2:])

    starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
    metric_codes = np.tile(np.arange(count), total)
    columns = {
        "name": _labels(names, per_row),
        "model_type": _labels(model_types, per_row),
        "layer": by_layer(np.arange(total) - starts + 1),
        "metric": pd.Categorical.from_codes(metric_codes, categories=list(metrics)),
    }
    params = by_metric(lambda p: p.params)
    columns.update({name: params[:, i] for i, name in enumerate(PARAMS)})
    for name in ("steady_state", "extremum_kind", "peak_step", "peak_observable", "peak_value", "final_value"):
        columns[name] = by_metric(lambda p, name=name: getattr(p.curves, name))
    kinds = np.asarray(EXTREMUM_KINDS)
    columns["extremum_kind"] = pd.Categorical.from_codes(np.searchsorted(kinds, columns["extremum_kind"]), kinds)
    if mechanism is not None:
        columns["bos_share"] = by_layer(mechanism.bos_share)
        columns["has_mechanism"] = by_layer(mechanism.has_mechanism)
        columns["mechanism_probability"] = by_layer(mechanism.probability)
        columns["onset_step"] = by_layer(mechanism.onset_step)
    values = by_metric(lambda p: p.curves.values)
    columns.update({name: values[:, j] for j, name in enumerate(step_columns(steps))})
    columns["n_warnings"] = np.repeat([len(w) for w in warnings], per_row)
    columns["warnings"] = _labels([warning_text(w) for w in warnings], per_row)
    return pd.DataFrame(columns)


def _labels(values: list[str], repeats: np.ndarray) -> pd.Categorical:
    """A text column as codes into its distinct values: tens of thousands of rows repeat a few thousand
    names and warning texts, and a table of strings cost more to build than the predictions in it."""
    codes, distinct = pd.factorize(np.asarray(values, dtype=object))
    return pd.Categorical.from_codes(np.repeat(codes, repeats), categories=distinct)
