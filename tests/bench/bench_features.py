"""Featurisation throughput on one core (paid on every prediction request).

Run: OMP_NUM_THREADS=1 python tests/bench/bench_features.py
Target: >= 5,000 configs/s for `feature_matrix` (the service's path).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from features import feature_matrix, featurize

CONFIGS = [json.loads(p.read_text()) for p in sorted((Path(__file__).parents[1] / "data" / "configs").glob("*.json"))]


def throughput(fn, seconds: float = 3.0) -> float:
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for config in CONFIGS:
            fn(config)
        count += len(CONFIGS)
    return count / (time.perf_counter() - start)


if __name__ == "__main__":
    fast = throughput(feature_matrix)
    frame = throughput(featurize)
    print(f"feature_matrix: {fast:,.0f} configs/s  (target >= 5,000)")
    print(f"featurize (DataFrame): {frame:,.0f} configs/s")
    print(f"configs: {len(CONFIGS)} public configs, one per family")
