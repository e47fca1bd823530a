"""Fits per second, and ONNX vs LightGBM per-row prediction time, measured in one run.

Run: python tests/bench/bench_fit.py [data/zoo/metrics.parquet]
Targets: >= 200 fits/s on 2 cores. Timed end to end as `fit_table` (per metric the population
curve and its parameters' spread, then every series towards it) in 1 and in 2 worker processes;
the independent multi-start fit (`prior_strength=None`) is timed beside it.
"""

from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from training.fit import fit_table

REPO = Path(__file__).resolve().parents[2]


def fits_per_second(metrics: pd.DataFrame, **options) -> tuple[float, int]:
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fits = fit_table(metrics, **options)
    return len(fits) / (time.perf_counter() - start), len(fits)


def main() -> None:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "data" / "zoo" / "metrics.parquet"
    metrics = pd.read_parquet(path)
    one, n = fits_per_second(metrics, workers=1)
    two, _ = fits_per_second(metrics, workers=2)
    alone, _ = fits_per_second(metrics, workers=2, prior_strength=None)
    print(
        f"{n} series: {one:,.0f} fits/s on 1 process, {two:,.0f} fits/s on 2 (target >= 200); "
        f"independent multi-start fits: {alone:,.0f} fits/s on 2"
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
