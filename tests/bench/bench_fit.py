"""Fits per second, and ONNX vs LightGBM per-row prediction time, measured in one run.

Run: python tests/bench/bench_fit.py [data/zoo/metrics.parquet]
Targets: >= 200 fits/s on 2 cores. Timed as `fit_table` fits: one population fit per metric
(counted in the time), then every series towards it, split over 2 worker processes; the
independent multi-start fit (`fit_table(..., prior_strength=None)`) is timed beside it.
"""

from __future__ import annotations

import sys
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from training.fit import DEFAULT_METRICS, fit_series, fit_towards, population_fit

REPO = Path(__file__).resolve().parents[2]


def series_of(metrics: pd.DataFrame) -> dict[str, list[tuple[np.ndarray, np.ndarray]]]:
    units = [s for _, s in metrics.sort_values("step").groupby(["model_id", "layer"])]
    return {m: [(s["step"].to_numpy(float), s[m].to_numpy(float)) for s in units] for m in DEFAULT_METRICS}


def towards_chunk(chunk):
    warnings.simplefilter("ignore")
    return [fit_towards(t, y, prior).r2 for t, y, prior in chunk]


def alone_chunk(chunk):
    warnings.simplefilter("ignore")
    return [fit_series(t, y).r2 for t, y in chunk]


def timed_pooled(series: dict, workers: int) -> float:
    """Fits per second of the fit_table path: population fits here, series fits in `workers` processes."""
    start = time.perf_counter()
    jobs = []
    for items in series.values():
        prior = population_fit(items).params
        jobs += [(t, y, prior) for t, y in items]
    if workers == 1:
        towards_chunk(jobs)
    else:
        with ProcessPoolExecutor(workers) as pool:
            list(pool.map(towards_chunk, [jobs[i::workers] for i in range(workers)]))
    return len(jobs) / (time.perf_counter() - start)


def main() -> None:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "data" / "zoo" / "metrics.parquet"
    metrics = pd.read_parquet(path)
    if "duplicate_of" in metrics:
        metrics = metrics[metrics["duplicate_of"].fillna("") == ""]
    series = series_of(metrics)
    flat = [s for items in series.values() for s in items]
    one, two = timed_pooled(series, 1), timed_pooled(series, 2)
    start = time.perf_counter()
    with ProcessPoolExecutor(2) as pool:
        list(pool.map(alone_chunk, [flat[0::2], flat[1::2]]))
    alone = len(flat) / (time.perf_counter() - start)
    print(
        f"{len(flat)} series: {one:,.0f} fits/s on 1 core, {two:,.0f} fits/s on 2 processes (target >= 200); "
        f"independent multi-start fits: {alone:,.0f} fits/s on 2 processes"
    )

    import json

    import lightgbm  # noqa: F401
    import onnxruntime

    from features import FEATURES
    from training.tune import lgbm

    manifest_dir = REPO / "models" / (REPO / "models" / "CURRENT").read_text().strip()
    target = json.loads((manifest_dir / "manifest.json").read_text())["targets"][0]
    table = (
        pd.read_parquet(REPO / "runs" / "retrain" / "dataset.parquet")
        if (REPO / "runs" / "retrain" / "dataset.parquet").exists()
        else None
    )
    X = (
        table[list(FEATURES)].to_numpy(np.float32)
        if table is not None
        else np.random.default_rng(0).normal(size=(200, len(FEATURES))).astype(np.float32)
    )
    y = np.random.default_rng(0).normal(size=len(X))
    model = lgbm(target["params"]).fit(X, y)
    session = onnxruntime.InferenceSession(str(manifest_dir / target["file"]), providers=["CPUExecutionProvider"])
    row = X[:1]
    reps = 2000
    start = time.perf_counter()
    for _ in range(reps):
        model.predict(row)
    t_lgbm = (time.perf_counter() - start) / reps
    start = time.perf_counter()
    for _ in range(reps):
        session.run(None, {"features": row})
    t_onnx = (time.perf_counter() - start) / reps
    print(
        f"per-row prediction: LightGBM {t_lgbm * 1e6:.0f} µs, ONNX Runtime {t_onnx * 1e6:.0f} µs, "
        f"ratio ONNX/LightGBM {t_onnx / t_lgbm:.3f}"
    )


if __name__ == "__main__":
    main()
