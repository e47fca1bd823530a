"""How much a retrain's figures owe to LightGBM's seed: each held-out and real-model figure of one version,
evaluated under several seeds, as its values, mean and range. A score whose sign changes from one seed to the
next says nothing, and the promotion rule reads the means (training.pipeline.should_promote)."""

from __future__ import annotations

import math

import numpy as np

from training.onset_error import ONSET_DESIGNS


def seed_figures(curves: list[dict], mechanism: dict, recipes: list[dict], cv_mean_r2: float, real: dict) -> dict:
    """The figures of one seed's evaluation (training.pipeline.Evaluation's parts) and real-model check, flat."""
    out = {"cv_mean_r2": cv_mean_r2}
    for c in curves:
        m = c["metric"]
        out[f"heldout {m} median |log|"] = c["median_abs_log_ratio"]
        out[f"heldout {m} × model-free baseline"] = c["median_abs_log_ratio"] / c["baseline_median_curve"]
        if "interval" in c:
            out[f"heldout {m} 80 % band coverage"] = c["interval"]["heldout_coverage"]
    if ONSET_DESIGNS in mechanism:
        out["heldout onset layer exact (designs)"] = mechanism[ONSET_DESIGNS]
    for r in recipes:
        if r.get("cells"):
            out[f"recipe variants {r['metric']} median |log|"] = r["median_abs_log_ratio"]
            for baseline in ("design", "recipe"):
                out[f"recipe variants {r['metric']} × {baseline} baseline"] = (
                    r["median_abs_log_ratio"] / r[f"baseline_{baseline}_curve"]
                )
    for entry in real.get("models", []):
        name = entry["model"]
        out[f"{name} ratio rank correlation"] = entry["ratio_spearman"]
        out[f"{name} ratio median |log|"] = entry["ratio_median_abs_log"]
        if "mechanism_layers_agree" in entry:
            out[f"{name} mechanism yes/no agrees"] = entry["mechanism_layers_agree"]
    return out


def stability(seeds: list[int], per_seed: list[dict]) -> dict:
    """{"seeds", "figures": {name: {"values", "mean", "min", "max"}}} over the seeds that report each figure;
    NaN values (a constant profile has no rank order) are kept in `values` and left out of the summary."""
    names = list(dict.fromkeys(name for figures in per_seed for name in figures))
    out = {}
    for name in names:
        values = [float(figures.get(name, math.nan)) for figures in per_seed]
        known = np.array([v for v in values if math.isfinite(v)])
        summary = (
            {"mean": float(known.mean()), "min": float(known.min()), "max": float(known.max())}
            if len(known)
            else {"mean": math.nan, "min": math.nan, "max": math.nan}
        )
        out[name] = {"values": values, **summary}
    return {"seeds": list(seeds), "figures": out}


def stability_lines(block: dict) -> list[str]:
    """The model card's table: every figure per seed, its mean and range."""
    if not block or len(block.get("seeds", [])) < 2:
        return []
    seeds = block["seeds"]
    lines = [
        "",
        f"## Stability over LightGBM seeds ({', '.join(str(s) for s in seeds)})",
        "",
        "Every held-out and real-model figure with the same data and hyperparameters, the regressors trained under "
        "each seed (the served files are the first seed's). The promotion rule compares the means.",
        "",
        f"| figure | {' | '.join(f'seed {s}' for s in seeds)} | mean | range |",
        f"|---|{'---|' * len(seeds)}---|---|",
    ]
    for name, f in block["figures"].items():
        values = " | ".join(_number(v) for v in f["values"])
        shown = name.replace("|", "\\|")  # a figure named with |log| must not split its table row
        lines.append(f"| {shown} | {values} | {_number(f['mean'])} | {_number(f['min'])} to {_number(f['max'])} |")
    return lines


def _number(value: float) -> str:
    return "—" if not math.isfinite(value) else f"{value:.3f}"
