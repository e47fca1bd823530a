"""Batch prediction: many configs (files, folders, JSONL, hub ids) → one table, optional plots."""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pandas as pd
from threadpoolctl import threadpool_limits

from features import ArchcastError, ArchSpec, read_spec
from service.prediction import Prediction
from service.prediction_batch import PredictionBatch, concat_batches
from service.predictor import CheckedRequest, Predictor, cpu_threads


def _hub_config(model_id: str) -> dict[str, Any]:
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(model_id).to_dict()
    except OSError as exc:
        raise ArchcastError(
            None,
            f"{model_id!r} is neither a local file or folder nor a reachable hub model "
            f"(offline, or no such repository): {str(exc).splitlines()[0]}",
        ) from None


def _config(text: str, where: str) -> dict[str, Any]:
    try:
        config = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ArchcastError(where, f"not valid JSON ({exc})") from None
    if not isinstance(config, dict):
        raise ArchcastError(where, f"a config must be a JSON object, got {type(config).__name__}")
    return config


def iter_configs(sources: list[str]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(name, config) for each source: a .json file, a folder (its config.json or *.json), a .jsonl
    file (one config per line; an optional "name" key names it), or a hub id."""
    for source in sources:
        path = Path(source)
        if path.is_dir():
            files = [path / "config.json"] if (path / "config.json").exists() else sorted(path.glob("*.json"))
            if not files:
                raise ArchcastError(str(path), "this folder holds no config.json or .json files")
            for f in files:
                yield (f.parent.name if f.name == "config.json" else f.stem), _config(f.read_text(), str(f))
        elif path.suffix == ".jsonl" and path.exists():
            for n, line in enumerate(path.read_text().splitlines(), start=1):
                if line.strip():
                    config = _config(line, f"{path}:{n}")
                    yield str(config.pop("name", f"{path.stem}:{n}")), config
        elif path.exists():
            yield path.stem, _config(path.read_text(), str(path))
        elif path.suffix in (".json", ".jsonl") or source.startswith((".", "/", "~")):
            # a hub id is owner/name: a file name that is not there is a typo, not a model to download
            raise ArchcastError(source, "no such file or folder")
        else:
            yield source, _hub_config(source)


def warning_summary(name: str, prediction: Prediction) -> str | None:
    """One short line per config for the terminal: how many warnings of which kind."""
    if not prediction.warnings:
        return None
    codes: dict[str, int] = {}
    for w in prediction.warnings:
        codes[w.code] = codes.get(w.code, 0) + 1
    kinds = ", ".join(f"{n} {code.replace('_', ' ')}" for code, n in codes.items())
    return f"{name}: {kinds} (see the warnings column)"


OUT_SUFFIXES = (".parquet", ".csv", ".json")


def check_out(out: Path) -> None:
    """Refuse an output name before any prediction is computed."""
    if out.suffix not in OUT_SUFFIXES:
        raise ArchcastError("--out", f"must end in .parquet, .csv or .json, got {out.name!r}")


def table_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """A table's rows as JSON-ready dicts: missing values (NaN, pandas' NA) become None, i.e. null."""
    return frame.astype(object).where(frame.notna(), None).to_dict(orient="records")


def write_table(frame: pd.DataFrame, out: Path) -> None:
    check_out(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".parquet":
        # dictionary-encode the text columns only: on the float columns the encoder's attempt (given up on once
        # the values prove distinct) was half the writing time
        text = [name for name, dtype in frame.dtypes.items() if isinstance(dtype, pd.CategoricalDtype)]
        frame.to_parquet(out, index=False, use_dictionary=text)
    elif out.suffix == ".csv":
        # Arrow's writer: the shortest text that reads back as the same float, 10-20× faster than pandas' to_csv
        # on a table of a hundred thousand rows
        import pyarrow
        import pyarrow.csv

        pyarrow.csv.write_csv(pyarrow.Table.from_pandas(frame, preserve_index=False), out)
    elif out.suffix == ".json":
        # json.dumps keeps every float exactly (pandas' to_json rounds to 15 digits)
        records = table_records(frame)
        out.write_text(json.dumps(records, indent=1))


def read_recipe_option(text: str | None) -> dict | None:
    """--recipe: a JSON object, or a file holding one; None when not given."""
    if text is None:
        return None
    path = Path(text)
    if path.suffix == ".json" and not path.is_file():
        raise ArchcastError("--recipe", f"no such file {text!r}")
    source = path.read_text() if path.is_file() else text
    try:
        recipe = json.loads(source)
    except json.JSONDecodeError as exc:
        raise ArchcastError("--recipe", f"not a JSON object or a file holding one: {exc.msg}") from None
    if not isinstance(recipe, dict):
        raise ArchcastError("--recipe", 'expected a JSON object such as {"lr": 0.003}')
    return recipe


# configs predicted together: one onnxruntime call each, the progress bar's step, and the memory held at once
CHUNK = 512


def read_specs(sources: list[str]) -> tuple[list[str], list[ArchSpec]]:
    """Every source's configs read and checked before any is predicted: a bad one raises, named by its config,
    with nothing computed yet."""
    names, specs = [], []
    for name, config in iter_configs(sources):
        try:
            specs.append(read_spec(config))
        except ArchcastError as exc:
            raise type(exc)(name, str(exc)) from None  # same kind (config error or not), named by its config
        names.append(name)
    return names, specs


def predict_chunks(
    predictor: Predictor, specs: list[ArchSpec], request: CheckedRequest, chunk: int = CHUNK, workers: int = 0
) -> Iterator[tuple[int, PredictionBatch]]:
    """(first index, PredictionBatch) for each `chunk` of consecutive designs, in order.

    `workers` chunks are computed at once (0: one per core): onnxruntime and numpy release the GIL for most of
    a chunk's time, and each chunk's numbers are those it gets alone (one onnxruntime thread per call).
    """
    starts = list(range(0, len(specs), chunk))
    workers = min(workers or cpu_threads(), len(starts))
    # one BLAS thread: the projection's products are a few MB each, and BLAS threads on top of the chunk
    # threads would only fight them for the cores
    with threadpool_limits(1, user_api="blas"):
        if workers <= 1:
            for start in starts:
                yield start, predictor.predict_checked(specs[start : start + chunk], request)
            return
        yield from _in_threads(predictor, specs, request, chunk, starts, workers)


def _in_threads(predictor, specs, request, chunk, starts, workers) -> Iterator[tuple[int, PredictionBatch]]:
    with ThreadPoolExecutor(workers) as pool:
        pending = deque()
        for start in starts:
            pending.append((start, pool.submit(predictor.predict_checked, specs[start : start + chunk], request)))
            if len(pending) > workers:  # at most one chunk waits finished: memory stays a few chunks
                first, future = pending.popleft()
                yield first, future.result()
        while pending:
            first, future = pending.popleft()
            yield first, future.result()


def predict_all(
    predictor: Predictor, specs: list[ArchSpec], request: CheckedRequest, workers: int = 0
) -> PredictionBatch:
    """predict_checked over many designs, computed in chunks on `workers` threads (predict_chunks), as one."""
    return concat_batches([batch for _, batch in predict_chunks(predictor, specs, request, workers=workers)])


def warning_counts(batches: list[PredictionBatch]) -> dict[str, int]:
    """How many configs carry each warning code."""
    counts: dict[str, int] = {}
    for batch in batches:
        for warnings in batch.warnings:
            for code in dict.fromkeys(w.code for w in warnings):
                counts[code] = counts.get(code, 0) + 1
    return counts
