"""What a quantizer reads: per layer, the feature channels whose largest |h| over the probe exceeds 20× and 100×
the layer's median |h|, with their values and where they sit (`archcast measure` writes DIR/outliers.json).

Read from a model's metrics rows measured with the per-dimension profile (extraction.metrics: dim_max, the
largest |h| of each channel over every probe token, and dim_where, its (window, token position)).
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

THRESHOLDS = (20.0, 100.0)  # × the layer's median |h|


def outliers(rows: pd.DataFrame, thresholds: tuple[float, ...] = THRESHOLDS) -> dict[str, Any]:
    """{unit, thresholds, layers: [{layer, median, channels: [{dim, value, ratio, window, position}], over}]}:
    each layer's channels past the lowest threshold, largest first, and for each threshold how many pass it."""
    if "dim_max" not in rows or "dim_where" not in rows:
        raise ValueError("outliers need the per-dimension profile (measure with dim_profile=True)")
    low = min(thresholds)
    layers = []
    for row in rows.sort_values("layer").itertuples():
        median = float(row.ma_median)
        entry: dict[str, Any] = {"layer": int(row.layer), "median": median}
        if not math.isfinite(median) or median <= 0:
            entry.update(channels=[], over={f"{t:g}x": None for t in thresholds},
                         note=row.linearity_note or "the layer's median |h| is zero")  # fmt: skip
            layers.append(entry)
            continue
        channels = [
            {"dim": d, "value": float(v), "ratio": float(v) / median, "window": int(w[0]), "position": int(w[1])}
            for d, (v, w) in enumerate(zip(row.dim_max, row.dim_where, strict=True))
            if float(v) > low * median
        ]
        channels.sort(key=lambda c: -c["value"])
        entry["channels"] = channels
        entry["over"] = {f"{t:g}x": sum(c["ratio"] > t for c in channels) for t in thresholds}
        layers.append(entry)
    return {
        "unit": "|h| of each decoder block's output (the residual stream), in float32; window and position index "
        "the probe windows (position 0: the first token)",
        "thresholds": [f"{t:g}x the layer's median |h|" for t in thresholds],
        "layers": layers,
    }
