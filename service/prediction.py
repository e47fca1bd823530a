"""A prediction as arrays: what the predictor returns, and the one place that turns it into JSON, a table
row set, and the sentences that summarise it (CLI, web page and HTTP responses read the same ones)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from emergence.curve import PARAMS, TRANSFORM_FORMS, Curves, clip_between
from emergence.mechanism import (
    ABOVE_REST,
    BOS_SHARE,
    MECHANISM_TARGETS,
    MarginError,
    carries_mechanism,
    likeliest_onset,
    mechanism_probability,
    onset_chances_many,
    onset_layer,
)

# every warning a prediction can carry (the OpenAPI document lists these)
WARNING_CODES = (
    "family_unseen",  # a model_type no training model had
    "feature_out_of_range",  # a feature outside the training range
    "steps_beyond_training",  # steps past the last training checkpoint
    "curve_clipped",  # a curve left its metric's possible range and was clipped to it
    "interval_widened",  # the 80 % bands (and the mechanism's error) widened with distance from the training domain
    "scale_extrapolated",  # past the trained width or depth, the scale term moved the curves
    "recipe_out_of_range",  # a requested recipe field outside what the training runs covered
)


@dataclass(frozen=True)
class PredictionWarning:
    """One warning: a code to act on (WARNING_CODES), the input it concerns, its value and range, a sentence."""

    code: str
    message: str
    feature: str | None = None
    value: Any = None
    range: tuple[float, float] | None = None

    def to_json(self) -> dict[str, Any]:
        # JSON has no infinity: an open bound (a ratio has no upper one) becomes null
        bounds = None if self.range is None else [_num(b) for b in self.range]
        value = _num(self.value) if isinstance(self.value, float) else self.value
        return {"code": self.code, "feature": self.feature, "value": value, "range": bounds, "message": self.message}


@dataclass(frozen=True)
class MetricPrediction:
    params: np.ndarray  # (L, 5) in PARAMS order, original units
    curves: Curves  # evaluated at the prediction's steps, clipped to the metric's range
    interval: tuple[np.ndarray, np.ndarray] | None = None  # (L, T) central 80 % band, where the model gives one


@dataclass(frozen=True)
class MechanismPrediction:
    """Where the BOS massive-activation mechanism forms at the end of the reference recipe, per layer."""

    bos_share: np.ndarray  # (L,) share of probe windows whose top-1 |h| is on the first token, in [0, 1]
    bos_margin: np.ndarray  # (L,) log(top-1 ratio / largest ratio away from the first token)
    has_mechanism: np.ndarray  # (L,) bool: whether the layer shows the mechanism (its predicted margin passes)
    onset_step: np.ndarray  # (L,) the step from which the layer shows it (NaN where it does not)
    onset_layer: int | None  # the likeliest first layer that shows it (emergence.mechanism.likeliest_onset)
    probability: np.ndarray  # (L,) the chance that the layer shows it (NaN for a model without residuals)
    onset_chance: float = float("nan")  # the chance that onset_layer is the measured onset (NaN: no residuals)
    intervals: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)  # name → (L,) 80 % band

    def to_json(self) -> dict[str, Any]:
        bands = {name: (_nums(low), _nums(high)) for name, (low, high) in self.intervals.items()}
        return {
            "onset_layer": self.onset_layer,
            "onset_chance": self.onset_chance if math.isfinite(self.onset_chance) else None,
            "first_layer_with_mechanism": onset_layer(self.has_mechanism),
            "definition": f"a layer shows the mechanism when its top-1 |h| is on the first token in ≥ {BOS_SHARE:.0%} "
            f"of windows and ≥ {ABOVE_REST:g}× the largest value elsewhere, at the last step of the recipe; "
            "has_mechanism: the layer's predicted margin passes that rule; first_layer_with_mechanism: the first "
            "such layer; onset_layer: the layer most likely to be the measured first one given the margins' "
            "held-out error (it can differ from first_layer_with_mechanism, and be a layer under even odds itself)",
            "layers": [
                {
                    "layer": i + 1,
                    "bos_share": share,
                    "bos_margin": margin,
                    "has_mechanism": has,
                    "probability": chance,
                    "onset_step": step,
                    "intervals": {name: [low[i], high[i]] for name, (low, high) in bands.items()},
                }
                for i, (share, margin, has, chance, step) in enumerate(
                    zip(
                        _nums(self.bos_share),
                        _nums(self.bos_margin),
                        self.has_mechanism.tolist(),
                        _nums(self.probability),
                        _nums(self.onset_step),
                        strict=True,
                    )
                )
            ],  # fmt: skip
        }

    def describe(self) -> str:
        known = math.isfinite(self.onset_chance)
        if self.onset_layer is None:
            odds = f" (chance that none does: {self.onset_chance:.0%})" if known else ""
            return f"mechanism: no layer is predicted to carry the BOS massive activation{odds}"
        odds = f" (chance {self.onset_chance:.0%})" if known else ""
        layers = np.arange(1, len(self.has_mechanism) + 1)[self.has_mechanism]
        step = self.onset_step[self.onset_layer - 1]
        when = f", from about step {step:,.0f}" if np.isfinite(step) else ""
        where = f"; in {_layers(layers)}" if len(layers) else "; no single layer is more likely than not"
        return f"mechanism: BOS massive activation most likely from layer {self.onset_layer}{odds}{when}{where}"


@dataclass(frozen=True)
class StackedMechanism:
    """MechanismPrediction for several configs at once: each per-layer array stacks their layers (config i's are
    offsets[i]:offsets[i + 1]); the onset and its chance are per config."""

    offsets: np.ndarray  # (N + 1,)
    bos_share: np.ndarray  # (ΣL,) each as in MechanismPrediction
    bos_margin: np.ndarray
    has_mechanism: np.ndarray
    onset_step: np.ndarray
    probability: np.ndarray
    onset_layer: list[int | None]  # (N,)
    onset_chance: np.ndarray  # (N,)
    intervals: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)

    def one(self, i: int) -> MechanismPrediction:
        a, b = int(self.offsets[i]), int(self.offsets[i + 1])
        return MechanismPrediction(
            self.bos_share[a:b], self.bos_margin[a:b], self.has_mechanism[a:b], self.onset_step[a:b],
            self.onset_layer[i], self.probability[a:b], float(self.onset_chance[i]),
            {name: (low[a:b], high[a:b]) for name, (low, high) in self.intervals.items()},
        )  # fmt: skip


def mechanism_prediction(
    targets: dict[str, np.ndarray],
    error: MarginError | None = None,
    intervals: dict[str, dict] | None = None,
    widen: np.ndarray | None = None,
) -> MechanismPrediction | None:
    """One config's mechanism (mechanism_predictions for a batch of one)."""
    if "bos_margin" not in targets:
        return None
    stacked = mechanism_predictions(targets, np.array([0, len(targets["bos_margin"])]), error, intervals, widen)
    return stacked.one(0)


def mechanism_predictions(
    targets: dict[str, np.ndarray],
    offsets: np.ndarray,
    error: MarginError | None = None,
    intervals: dict[str, dict] | None = None,
    widen: np.ndarray | None = None,
) -> StackedMechanism | None:
    """From the mechanism regressors' outputs for the stacked layers of several configs (config i's are
    offsets[i]:offsets[i + 1]); None where the model has none (a zoo without the BOS columns). A target the model
    could not learn (too few models measured it, e.g. no onset anywhere) reads as NaN. With the margin's held-out
    error, each layer gets its chance (both parts of the error together) and the onset is the likeliest one
    (emergence.mechanism.onset_chances); without (an older model), or for a config with a margin that is not
    finite, the first layer whose margin passes.
    `intervals` (name → the held-out band of measured − predicted in the target's own space, training.onset_error)
    give each target its central 80 % band per layer; the onset step's only where the layer shows the mechanism.
    `widen` ((ΣL,), ≥ 1; the service's distance from the training domain) stretches each layer's band, and each
    config's margin error by its largest: the chances move towards even odds far from the data."""
    if "bos_margin" not in targets:
        return None
    offsets = np.asarray(offsets, dtype=np.int64)
    raw_margin = np.asarray(targets["bos_margin"], dtype=np.float64)
    nan = np.full(len(raw_margin), np.nan)
    share = _within("bos_share", targets.get("bos_share", nan))
    margin = _within("bos_margin", raw_margin)
    has = carries_mechanism(margin)
    onset = np.where(has, _within("onset_step", targets.get("onset_step", nan)), np.nan)
    widen = np.ones(len(margin)) if widen is None else np.asarray(widen, dtype=np.float64)
    if widen.shape != margin.shape or not (np.isfinite(widen) & (widen >= 1)).all():
        raise ValueError(f"widen must be one finite factor ≥ 1 per layer, got {widen}")
    bands = {name: mechanism_band(name, targets[name], band, has, widen) for name, band in (intervals or {}).items()
             if name in targets and band.get("low") is not None and band.get("high") is not None}  # fmt: skip
    starts, n = offsets[:-1], len(offsets) - 1
    if error is None or not error.total_sd > 0:
        first = [onset_layer(has[a:b]) for a, b in zip(starts.tolist(), offsets[1:].tolist(), strict=True)]
        return StackedMechanism(offsets, share, margin, has, onset, nan, first, np.full(n, np.nan), bands)
    finite = np.logical_and.reduceat(np.isfinite(raw_margin), starts)
    factor = np.maximum(1.0, np.maximum.reduceat(widen, starts))  # one factor per config, for all its layers
    lengths = offsets[1:] - offsets[:-1]
    sd = error.total_sd * per_layer(factor, lengths)
    chance = np.where(per_layer(finite, lengths), mechanism_probability(raw_margin, sd), np.nan)
    chances = onset_chances_many(raw_margin, offsets, error, factor)
    # where a margin is not finite no chance is read: the first layer whose margin passes
    bounds = zip(chances, finite.tolist(), starts.tolist(), offsets[1:].tolist(), strict=True)
    onset_layers = [likeliest_onset(c) if ok else onset_layer(has[a:b]) for c, ok, a, b in bounds]
    onset_chance = np.where(finite, chances[np.arange(n), [k or 0 for k in onset_layers]], np.nan)
    return StackedMechanism(offsets, share, margin, has, onset, chance, onset_layers, onset_chance, bands)


def per_layer(values: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """(N, …) per-config values → one per layer (ΣL, …); for one config its row, which broadcasts over its
    layers (a request pays np.repeat's dispatch several times otherwise)."""
    return values[0] if len(lengths) == 1 else np.repeat(values, lengths, axis=0)


def mechanism_band(
    name: str, predicted: np.ndarray, band: dict, has: np.ndarray, widen: np.ndarray | float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """(L,) low and high of a mechanism target's 80 % band: the held-out residual quantiles (times `widen`, per
    layer) added in the target's own space (emergence.mechanism.MECHANISM_TARGETS), back in its units, clipped to
    what it can be."""
    form = TRANSFORM_FORMS[MECHANISM_TARGETS[name]]
    raw = form.forward(np.asarray(predicted, dtype=np.float64))
    low, high = (_within(name, form.inverse(raw + band[end] * widen)) for end in ("low", "high"))
    if name == "onset_step":  # an onset only where the layer shows the mechanism
        return np.where(has, low, np.nan), np.where(has, high, np.nan)
    return low, high


# what each mechanism target can be: a share of windows; a margin never negative (the BOS value is the top-1 or
# below); a step. Predictions and their bands alike are clipped to it.
MECHANISM_RANGE = {"bos_share": (0.0, 1.0), "bos_margin": (0.0, np.inf), "onset_step": (0.0, np.inf)}


def _within(name: str, values) -> np.ndarray:
    low, high = MECHANISM_RANGE[name]
    return clip_between(np.asarray(values, dtype=np.float64), low, high)


@dataclass(frozen=True)
class Prediction:
    model_version: str
    model_type: str
    steps: np.ndarray  # (T,)
    metrics: dict[str, MetricPrediction]
    warnings: list[PredictionWarning] = field(default_factory=list)
    mechanism: MechanismPrediction | None = None
    recipe: dict[str, Any] = field(default_factory=dict)  # the training recipe the steps refer to
    tokens: np.ndarray | None = None  # (T,) tokens seen by each step under that recipe
    recipe_requested: dict[str, Any] | None = None  # the request's recipe, where it gave one (features.recipe)

    @property
    def n_layers(self) -> int:
        return len(next(iter(self.metrics.values())).params)

    def summary(self) -> list[dict[str, str]]:
        """One sentence per metric: where and when it moves, what it settles to, peaks or dips."""
        lines = [{"metric": m, "text": describe(m, p.curves, self.steps)} for m, p in self.metrics.items()]
        if self.mechanism is not None:
            lines.append({"metric": "mechanism", "text": self.mechanism.describe()})
        return lines

    def to_json(self) -> dict[str, Any]:
        layers = [{"layer": i + 1, "metrics": {}} for i in range(self.n_layers)]
        for metric, p in self.metrics.items():
            c = p.curves
            # a metric's per-layer numbers in one (L, 9 + 3T) table, made JSON-safe in one pass (the per-array
            # conversions were most of the cost of a small response), then cut into its fields per layer
            T = c.values.shape[1]
            parts = [p.params, c.steady_state[:, None], c.peak_step[:, None], c.peak_value[:, None],
                     c.final_value[:, None], c.values]  # fmt: skip
            if p.interval is not None:
                parts += list(p.interval)
            table = _nums(np.concatenate(parts, axis=1))
            kinds, observable = c.extremum_kind.tolist(), c.peak_observable.tolist()
            for i, (layer, row) in enumerate(zip(layers, table, strict=True)):
                entry = {
                    "params": dict(zip(PARAMS, row[:5], strict=True)),
                    "derived": {
                        "steady_state": row[5],
                        "extremum_kind": kinds[i],
                        "peak_step": row[6],
                        "peak_observable": observable[i],
                        "peak_value": row[7],
                        "final_value": row[8],
                    },
                    "curve": row[9 : 9 + T],
                }
                if p.interval is not None:
                    entry["interval"] = {"low": row[9 + T : 9 + 2 * T], "high": row[9 + 2 * T :]}
                layer["metrics"][metric] = entry
        return {
            "model_version": self.model_version,
            "model_type": self.model_type,
            "n_layers": self.n_layers,
            "steps": _nums(self.steps),
            "tokens": None if self.tokens is None else _nums(self.tokens),
            "recipe": self.recipe,
            **({"recipe_requested": self.recipe_requested} if self.recipe_requested is not None else {}),
            "warnings": [w.to_json() for w in self.warnings],
            "summary": self.summary(),
            "mechanism": None if self.mechanism is None else self.mechanism.to_json(),
            "layers": layers,
        }

    def to_frame(self, name: str) -> pd.DataFrame:
        """One row per (layer, metric): parameters, derived values, the curve as at_step_<s> columns, and the
        warnings as a count and one readable cell (service.prediction_batch.prediction_table)."""
        from service.prediction_batch import prediction_table

        return prediction_table([name], [self.model_type], [self.n_layers], self.steps, self.metrics, self.mechanism,
                                [self.warnings])  # fmt: skip


def describe(metric: str, curves: Curves, steps: np.ndarray) -> str:
    """A sentence an architect reads: which layers end highest and lowest, when the largest moves, where it
    settles, and which layers peak or dip on the way. (Plain Python over a few dozen layers: cheaper per request
    than numpy's nan-aware helpers.)"""
    final = [(v, i + 1) for i, v in enumerate(curves.final_value.tolist()) if math.isfinite(v)]
    if not final:
        return f"{metric}: no finite prediction"
    (high, top), (low, bottom) = max(final, key=_first), min(final, key=_first)  # the first layer on a tie
    if _fmt(high) == _fmt(low):  # every layer alike, to the digits shown: no highest or lowest to name
        text = f"{metric}: ends at {_fmt(high)} in every layer" if len(final) > 1 else f"{metric}: ends at {_fmt(high)}"
    else:
        text = f"{metric}: ends highest in layer {top} ({_fmt(high)}), lowest in {bottom} ({_fmt(low)})"
    when = _half_way_step(curves.values[top - 1].tolist(), steps.tolist())
    if when is not None:
        text += f"; layer {top} half-way by step {when:g}"
    # without decay (λ = 0) a curve grows as log(step) and has no plateau: its layers are said apart
    kinds = zip(curves.peak_step.tolist(), curves.extremum_kind.tolist(), strict=True)
    endless = [i + 1 for i, (step, kind) in enumerate(kinds) if kind != "none" and math.isinf(step)]
    # a layer has settled where its last value is already near its limit; elsewhere the limit is where the
    # fitted curve goes past the last step asked for, which no data backs
    limits = [(i + 1, v, f) for i, (v, f) in enumerate(zip(curves.steady_state.tolist(), curves.final_value.tolist(),
              strict=True)) if math.isfinite(v) and i + 1 not in endless]  # fmt: skip
    settled = [(layer, v) for layer, v, f in limits if abs(f - v) <= SETTLED * abs(v)]
    unsettled = [(layer, v) for layer, v, f in limits if not abs(f - v) <= SETTLED * abs(v)]  # NaN final: not
    if settled:
        text += f"; settles at {_span([v for _, v in settled])}"
        if unsettled:
            text += f" in {_layers([layer for layer, _ in settled])}"
    if unsettled:
        layers, last = [layer for layer, _ in unsettled], max(steps.tolist(), default=0)
        plural, verb = ("s", "they settle") if len(layers) > 1 else ("", "it settles")
        text += (
            f"; layer{plural} {_ranges(layers)} still far from the fitted limit ({_span([v for _, v in unsettled])}) "
            f"at step {last:g}: where {verb} is an extrapolation"
        )
    if endless:
        text += f"; no plateau in {_layers(endless)} (still moving as log step)"
    last = max(steps.tolist(), default=0)
    extrema = zip(
        curves.peak_observable.tolist(), curves.extremum_kind.tolist(), curves.peak_step.tolist(), strict=True
    )
    where = [(kind, i + 1) for i, (seen, kind, step) in enumerate(extrema) if seen and step <= last]
    for kind in ("peak", "dip"):
        layers = [layer for k, layer in where if k == kind]
        if layers:
            text += f"; {kind} in {_layers(layers)}"
    return text


# a layer whose last value is within this fraction of its steady state (of the steady state's size) has settled
SETTLED = 0.1


def _span(values: list[float]) -> str:
    low, high = _fmt(min(values)), _fmt(max(values))
    return low if low == high else f"{low}–{high}"


def _first(pair: tuple[float, int]) -> float:
    return pair[0]


def warning_text(warnings: list[PredictionWarning]) -> str:
    """The warnings as one readable cell (csv, parquet)."""
    return " | ".join(w.message for w in warnings)


def _half_way_step(values: list[float], steps: list[float]) -> float | None:
    """The first step (in step order) at which the curve has covered half of its change from the first step."""
    if len(steps) < 2:
        return None
    pairs = sorted(zip(steps, values, strict=True), key=_first)  # stable: equal steps keep their order
    first, change = pairs[0][1], pairs[-1][1] - pairs[0][1]
    if not math.isfinite(change) or abs(change) < 1e-12:
        return None
    return next((float(t) for t, v in pairs if (v - first) / change >= 0.5), None)


def _layers(layers) -> str:
    """[3] → "layer 3"; [1, 2, 3, 5] → "layers 1–3, 5"."""
    return f"layer{'s' if len(layers) > 1 else ''} {_ranges(layers)}"


def _ranges(layers) -> str:
    """1, 2, 3, 5 → "1–3, 5"."""
    out, start = [], None
    for i, n in enumerate(layers):
        if start is None:
            start = n
        if i + 1 == len(layers) or layers[i + 1] != n + 1:
            out.append(f"{start}" if start == n else f"{start}–{n}")
            start = None
    return ", ".join(out)


def _fmt(value: float) -> str:
    return f"{value:.3g}" if abs(value) < 1e4 else f"{value:,.0f}"


def _num(value) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def _nums(values: np.ndarray) -> list:
    """JSON-safe (nested) list of floats: NaN and ±inf become null."""
    values = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(values)
    if finite.all():
        return values.tolist()
    out = values.tolist()  # the non-finite few replaced in Python: numpy's object path costs more than them
    if values.ndim == 2:
        for i, j in zip(*np.nonzero(~finite), strict=True):
            out[i][j] = None
    else:
        for i in np.flatnonzero(~finite):
            out[i] = None
    return out
