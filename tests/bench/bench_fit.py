"""Fits per second, and ONNX vs LightGBM per-row prediction time, measured in one run.

Run: python tests/bench/bench_fit.py [data/zoo/metrics.parquet]
Targets: >= 200 fits/s on 2 cores (fits run in 2 worker processes).
"""

from __future__ import annotations

import sys
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from training.fit import fit_series

REPO = Path(__file__).resolve().parents[2]


def series_of(metrics: pd.DataFrame) -> list[tuple[np.ndarray, np.ndarray]]:
    out = []
    for _, s in metrics.sort_values("step").groupby(["model_id", "layer"]):
        for metric in ("ma_ratio", "linearity", "linearity_nores"):
            out.append((s["step"].to_numpy(float), s[metric].to_numpy(float)))
    return out


def fit_chunk(chunk):
    warnings.simplefilter("ignore")
    return [fit_series(t, y).r2 for t, y in chunk]


def main() -> None:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "data" / "zoo" / "metrics.parquet"
    series = series_of(pd.read_parquet(path))
    start = time.perf_counter()
    fit_chunk(series)
    one = len(series) / (time.perf_counter() - start)
    start = time.perf_counter()
    with ProcessPoolExecutor(2) as pool:
        list(pool.map(fit_chunk, [series[0::2], series[1::2]]))
    two = len(series) / (time.perf_counter() - start)
    print(f"{len(series)} series: {one:,.0f} fits/s on 1 core, {two:,.0f} fits/s on 2 processes (target >= 200)")

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
