"""Design sweeps: vary the what-if page's knobs over a base config, predict every design on the batch path, and
rank them by one derived quantity (`archcast sweep`).

A knob writes the config key the page writes for it (service.knobs: the family's own spelling, or the `archcast`
key for the zoo's architecture changes) and nothing else: varying the width of a config that sets its FFN size
keeps that FFN size. A combination features/ refuses (a width the heads do not divide, say) is listed with the
reason and skipped.
"""

from __future__ import annotations

import copy
import itertools
import json
import random
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from features import ZOO_KEY, ArchcastError, ArchSpec, FeatureError, read_spec
from service.batch import predict_all, table_records
from service.knobs import BY_NAME, KNOBS, NORMS, knobs
from service.prediction_batch import PredictionBatch
from service.predictor import Predictor

MAX_DESIGNS = 100_000  # a cross product past this is a typo, not a sweep: --samples draws from it instead
TRUE, FALSE = ("true", "yes", "1", "on"), ("false", "no", "0", "off")


@dataclass(frozen=True)
class Quantity:
    """What designs are ranked by: `final` or `peak` value of a metric, read at one layer or over the layers
    (max, min, mean), or the predicted onset layer of the BOS mechanism."""

    kind: str  # final | peak | onset_layer
    metric: str | None = None
    layer: int | str = "max"  # a 1-based layer, or max | min | mean over the layers

    @property
    def label(self) -> str:
        if self.kind == "onset_layer":
            return "onset_layer"
        where = f"layer {self.layer}" if isinstance(self.layer, int) else f"{self.layer} over layers"
        return f"{self.kind} {self.metric} ({where})"


REDUCERS = {"max": np.fmax.reduceat, "min": np.fmin.reduceat}


def read_quantity(text: str, metrics: list[str]) -> Quantity:
    """`final:ma_ratio`, `peak:ma_ratio@max`, `final:linearity@3`, `final:linearity@mean`, `onset_layer`."""
    if text == "onset_layer":
        return Quantity("onset_layer")
    match = re.fullmatch(r"(final|peak):([a-z_]+)(?:@(max|min|mean|\d+))?", text)
    if not match:
        raise ArchcastError("--rank-by", f"expected final:METRIC[@LAYER|max|min|mean], peak:… or onset_layer, got "
                            f"{text!r}")  # fmt: skip
    kind, metric, layer = match.groups()
    if metric not in metrics:
        raise ArchcastError("--rank-by", f"unknown metric {metric!r}; this model predicts {', '.join(metrics)}")
    if layer is not None and layer.isdigit():
        if int(layer) < 1:
            raise ArchcastError("--rank-by", f"layers count from 1, got {layer}")
        return Quantity(kind, metric, int(layer))
    return Quantity(kind, metric, layer or "max")


def parse_value(knob: str, text: str) -> Any:
    """One knob value as the page would write it; a bad one names the knob."""
    kind = BY_NAME[knob].kind
    word = text.strip().lower()
    if kind == "bool":
        if word in TRUE or word in FALSE:
            return word in TRUE
        raise ArchcastError(f"--vary {knob}", f"expected true or false, got {text!r}")
    if kind == "choice":
        if word not in NORMS:
            raise ArchcastError(f"--vary {knob}", f"expected one of {', '.join(NORMS)}, got {text!r}")
        return word
    try:
        number = float(word)
    except ValueError:
        raise ArchcastError(f"--vary {knob}", f"expected a number, got {text!r}") from None
    if kind == "int":
        if not number.is_integer():
            raise ArchcastError(f"--vary {knob}", f"expected a whole number, got {text!r}")
        return int(number)
    return number


def parse_vary(option: str) -> tuple[str, list[Any]]:
    """`KEY=V1,V2,…` or, for whole-number knobs, `KEY=START:STOP:STEP` (STOP included)."""
    key, sep, values = option.partition("=")
    key = key.strip()
    if not sep or not values.strip():
        raise ArchcastError("--vary", f"expected KEY=V1,V2,… such as layers=4,8,16, got {option!r}")
    if key not in BY_NAME:
        raise ArchcastError("--vary", f"unknown knob {key!r}; knobs: {', '.join(k.name for k in KNOBS)}")
    if ":" in values and BY_NAME[key].kind == "int":
        parts = [parse_value(key, p) for p in values.split(":")]
        if len(parts) != 3 or parts[2] <= 0 or parts[1] < parts[0]:
            raise ArchcastError(f"--vary {key}", f"expected START:STOP:STEP with STEP > 0, got {values!r}")
        span = range(parts[0], parts[1] + 1, parts[2])
        if len(span) > MAX_DESIGNS:  # counted before it is listed: 1:10**12:1 must not fill the memory
            raise ArchcastError(f"--vary {key}", f"{len(span):,} values (at most {MAX_DESIGNS:,})")
        return key, list(span)
    return key, list(dict.fromkeys(parse_value(key, v) for v in values.split(",")))


def apply_knobs(base: Mapping[str, Any], keys: Mapping[str, str], values: Mapping[str, Any]) -> dict[str, Any]:
    """The base config with each knob's value written at its key (`archcast.<knob>` under the zoo key)."""
    config = copy.deepcopy(dict(base))
    for knob, value in values.items():
        key = keys[knob]
        if key.startswith(f"{ZOO_KEY}."):
            config.setdefault(ZOO_KEY, {})
            config[ZOO_KEY] = {**(config[ZOO_KEY] or {}), key.split(".", 1)[1]: value}
        else:
            config[key] = value
    return config


@dataclass(frozen=True)
class Sweep:
    designs: list[dict[str, Any]]  # each predicted design's knob values
    specs: list[ArchSpec]
    skipped: list[tuple[dict[str, Any], str]]  # the combinations features/ refused, with the reason


# knob → the knob it keeps its base ratio to while that one varies and it does not
FOLLOWERS = {"ffn": "width", "kv_heads": "heads"}


def expand(
    base: Mapping[str, Any],
    vary: list[tuple[str, list[Any]]],
    samples: int | None = None,
    seed: int = 0,
    limit: int = MAX_DESIGNS,
) -> Sweep:
    """Every combination of the varied knobs (or `samples` of them drawn at random), read by features/. Where
    the width varies and the FFN size does not, the FFN keeps the base's ratio to the width; likewise the
    key/value heads to the heads (a multi-head base stays multi-head, a 4:1 grouped one stays 4:1)."""
    page = {k["name"]: k for k in knobs(base)["knobs"]}  # raises FeatureError for a bad base config
    names = [name for name, _ in vary]
    keys, ratios = {}, {}
    for name in names + [f for f, leader in FOLLOWERS.items() if leader in names and f not in names]:
        if page[name]["key"] is None and name not in names:
            continue  # a follower the family fixes (GPT-2's key/value heads are its heads): nothing to write
        if page[name]["key"] is None:
            raise ArchcastError(f"--vary {name}", page[name].get("note", "this family has no key for it"))
        keys[name] = page[name]["key"]
        if name not in names:
            ratios[name] = page[name]["value"] / page[FOLLOWERS[name]]["value"]
    if len(set(names)) < len(names):
        raise ArchcastError("--vary", "a knob is varied twice")
    total = int(np.prod([len(v) for _, v in vary])) if vary else 1
    if samples is None and total > limit:
        raise ArchcastError("--vary", f"{total:,} combinations (at most {limit:,}): use --samples N")
    if samples is not None and samples > limit:
        raise ArchcastError("--samples", f"at most {limit:,} designs, got {samples:,}")
    if samples is not None and samples < total:
        rng = random.Random(seed)
        picks = sorted(rng.sample(range(total), samples))
        combos = [_nth(vary, i) for i in picks]
    else:
        combos = list(itertools.product(*(v for _, v in vary)))
    designs, specs, skipped = [], [], []
    for combo in combos:
        values = dict(zip(names, combo, strict=True))
        written = {**values, **{f: round(r * values[FOLLOWERS[f]]) for f, r in ratios.items()}}
        try:
            specs.append(read_spec(apply_knobs(base, keys, written)))
            designs.append(values)
        except FeatureError as exc:
            skipped.append((values, str(exc)))
    return Sweep(designs, specs, skipped)


def _nth(vary: list[tuple[str, list[Any]]], index: int) -> tuple:
    """The index-th combination of the cross product, in itertools.product's order."""
    out = []
    for _, values in reversed(vary):
        index, at = divmod(index, len(values))
        out.append(values[at])
    return tuple(reversed(out))


def quantity_values(batch: PredictionBatch, quantity: Quantity) -> np.ndarray:
    """(N,) the quantity per design (NaN where a design has no such layer or no onset)."""
    if quantity.kind == "onset_layer":
        if batch.mechanism is None:
            raise ArchcastError("--rank-by", f"{batch.model_version} predicts no BOS mechanism")
        return np.array([np.nan if k is None else k for k in batch.mechanism.onset_layer], dtype=np.float64)
    curves = batch.metrics[quantity.metric].curves
    values = curves.final_value if quantity.kind == "final" else np.where(curves.peak_observable, curves.peak_value,
                                                                          np.nan)  # fmt: skip
    starts, lengths = batch.offsets[:-1], batch.n_layers
    if isinstance(quantity.layer, int):
        inside = quantity.layer <= lengths
        return np.where(inside, values[np.minimum(starts + quantity.layer - 1, len(values) - 1)], np.nan)
    if quantity.layer == "mean":
        finite = np.isfinite(values)
        with np.errstate(invalid="ignore", divide="ignore"):  # no finite layer: NaN
            return np.add.reduceat(np.where(finite, values, 0.0), starts) / np.add.reduceat(finite, starts)
    return REDUCERS[quantity.layer](values, starts)


def sweep_table(
    predictor: Predictor,
    sweep: Sweep,
    quantity: Quantity,
    steps=None,
    recipe=None,
    lowest_first: bool = False,
    workers: int = 0,
) -> tuple[pd.DataFrame, PredictionBatch | None]:
    """One row per design, ranked (1 = first), then the skipped combinations with their reason. `workers`: the
    threads predicting (0: one per core; the service's workers are a process per core already)."""
    request = predictor.check_request(steps, None, recipe)
    batch = predict_all(predictor, sweep.specs, request, workers) if sweep.specs else None
    frame = pd.DataFrame(sweep.designs)
    frame.insert(0, "design", np.arange(1, len(frame) + 1))  # its place in the sweep: batch.prediction(design - 1)
    if batch is not None:
        value = quantity_values(batch, quantity)
        frame["n_params"] = [spec.n_params for spec in sweep.specs]
        frame["n_layers"] = batch.n_layers
        frame[quantity.label] = value
        if quantity.kind != "onset_layer" and batch.mechanism is not None:
            frame["onset_layer"] = [np.nan if k is None else k for k in batch.mechanism.onset_layer]
        frame["n_warnings"] = [len(w) for w in batch.warnings]
        order = np.argsort(value if lowest_first else -value, kind="stable")  # NaN last either way
        frame["rank"] = 0
        frame.loc[order, "rank"] = np.arange(1, len(order) + 1)
        frame["skipped"] = ""
    skipped = pd.DataFrame([values for values, _ in sweep.skipped])
    if len(skipped):
        skipped["skipped"] = [reason for _, reason in sweep.skipped]
    table = pd.concat([frame.sort_values("rank", kind="stable") if len(frame) else frame, skipped],
                      ignore_index=True)  # fmt: skip
    for column in ("rank", "design", "n_params", "n_layers", "onset_layer", "n_warnings"):
        if column in table:  # whole numbers, empty on the skipped rows
            table[column] = table[column].astype("Int64")
    first = ["rank"] if "rank" in table else []
    return table[first + [c for c in table.columns if c not in first]], batch


# the CLI options the sweep's errors name, as a /sweep request spells them
REQUEST_FIELDS = {"--vary": "vary", "--rank-by": "rank_by", "--samples": "samples"}


def read_request_vary(vary: Any) -> list[tuple[str, list[Any]]]:
    """/sweep's `vary`: knob → a list of values, or "START:STOP:STEP" for a whole-number knob."""
    if not isinstance(vary, Mapping):
        raise ArchcastError("vary", 'expected an object such as {"layers": [4, 8], "width": "256:1024:256"}')
    out = []
    for knob, values in vary.items():
        if isinstance(values, str):
            out.append(parse_vary(f"{knob}={values}"))
        elif isinstance(values, list) and values:
            texts = [v if isinstance(v, str) else json.dumps(v) for v in values]
            if knob not in BY_NAME:
                parse_vary(f"{knob}=0")  # names the unknown knob and lists the known ones
            out.append((knob, list(dict.fromkeys(parse_value(knob, t) for t in texts))))
        else:
            raise ArchcastError(f"vary.{knob}", f"expected a non-empty list of values or START:STOP:STEP, got "
                                f"{values!r}")  # fmt: skip
    return out


def sweep_response(
    predictor: Predictor,
    base: Any,
    vary: Any,
    rank_by: str = "final:ma_ratio",
    lowest_first: bool = False,
    samples: int | None = None,
    seed: int = 0,
    steps=None,
    recipe=None,
    limit: int = MAX_DESIGNS,
) -> dict[str, Any]:
    """POST /sweep: the same sweep as `archcast sweep`, answered as JSON (the ranked table's rows, then the
    skipped combinations with their reason). Errors name the request's fields (vary.layers, rank_by)."""
    try:
        if not isinstance(base, Mapping):
            raise ArchcastError("base", "expected a config.json object")
        quantity = read_quantity(rank_by, predictor.metrics)
        try:
            sweep = expand(base, read_request_vary(vary), samples, seed, limit)
        except FeatureError as exc:
            raise exc.within("base") from None
        table, _ = sweep_table(predictor, sweep, quantity, steps, recipe, lowest_first, workers=1)
    except ArchcastError as exc:
        option, _, rest = (exc.field or "").partition(" ")
        if option in REQUEST_FIELDS:
            raise type(exc)(".".join(p for p in (REQUEST_FIELDS[option], rest) if p), exc.message) from None
        raise
    rows = table_records(table)
    ranked = [r for r in rows if not r.get("skipped")]
    for row in ranked:
        row.pop("skipped", None)
    return {
        "model_version": predictor.version,
        "quantity": quantity.label,
        "lowest_first": lowest_first,
        "designs": ranked,
        "skipped": [{"values": values, "reason": reason} for values, reason in sweep.skipped],
    }
