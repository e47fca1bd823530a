"""The real-model check of an exported version: its predicted end state against a finished real model measured
in data/real/ (its config.json beside its metrics.parquet). The real models are never training data here: they
are the test of how far the zoo's lessons carry to a model trained on trillions of tokens."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from emergence.mechanism import shows_mechanism
from service.predictor import Predictor

REAL = Path(__file__).resolve().parents[1] / "data" / "real"


def predicted_end_state(predictor: Predictor, config: dict) -> pd.DataFrame:
    """Per layer: each metric's curve at the recipe's last step, and where the BOS mechanism is, as the service
    answers them (the served code on the exported files, not a copy of its maths)."""
    prediction = predictor.predict(config, [max(predictor.default_steps)])
    out = pd.DataFrame({"layer": np.arange(1, prediction.n_layers + 1)})
    for metric, predicted in prediction.metrics.items():
        out[metric] = predicted.curves.values[:, 0]
    if prediction.mechanism is not None:
        out["has_mechanism"] = prediction.mechanism.has_mechanism
    return out


def _rank(a, b) -> float:
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")  # a constant profile has no rank order
    return float(spearmanr(a, b).statistic)


def real_model_check(folder: Path, real: Path = REAL) -> dict:
    """{"models": [...], "text", "table"} for every data/real/<model>/ with a config.json; {} if none.
    `folder` is the exported version (its manifest written), read through the served predictor."""
    predictor = Predictor(folder.parent, folder.name)
    results, table = [], []
    for model_dir in sorted(p for p in Path(real).iterdir() if (p / "config.json").exists()):
        measured = pd.read_parquet(model_dir / "metrics.parquet").sort_values("layer")
        predicted = predicted_end_state(predictor, json.loads((model_dir / "config.json").read_text()))
        both = measured.merge(predicted, on="layer", suffixes=("", "_pred"))
        ratio, ratio_pred = both["ma_ratio"].to_numpy(), both["ma_ratio_pred"].to_numpy()
        has = shows_mechanism(both).to_numpy()
        entry = {
            "model": model_dir.name,
            "role": "test only: never in training",
            "layers": len(both),
            "ratio_spearman": _rank(ratio, ratio_pred),
            "ratio_median_abs_log": float(np.median(np.abs(np.log(ratio_pred / ratio)))),
            # how far apart the layers are, largest over smallest: a rank order over a near-flat predicted
            # profile rests on small differences and moves from one retrain to the next
            "ratio_spread_measured": float(ratio.max() / ratio.min()),
            "ratio_spread_predicted": float(ratio_pred.max() / ratio_pred.min()),
            "linearity_spearman": _rank(both["linearity"], both["linearity_pred"]),
            "linearity_median_abs_diff": float(np.median(np.abs(both["linearity"] - both["linearity_pred"]))),
        }
        if "has_mechanism" in both:
            entry["mechanism_layers_agree"] = float(np.mean(has == both["has_mechanism"].to_numpy()))
        results.append(entry)
        table += [
            f"**{model_dir.name}** ({entry['role']}): ratio rank correlation across layers "
            f"{entry['ratio_spearman']:.2f}, median |log(pred/measured)| {entry['ratio_median_abs_log']:.2f} "
            f"(largest over smallest layer: {entry['ratio_spread_predicted']:.2f}× predicted, "
            f"{entry['ratio_spread_measured']:.1f}× measured); "
            f"linearity rank correlation {entry['linearity_spearman']:.2f}, median |difference| "
            f"{entry['linearity_median_abs_diff']:.3f}"
            + (f"; mechanism or not agrees in {entry['mechanism_layers_agree']:.0%} of layers" if has.size else ""),
            "",
            "| layer | ratio measured | ratio predicted | top-1 on BOS measured | mechanism measured | predicted "
            "| linearity measured | predicted |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for r in both.itertuples():
            predicted_has = "yes" if getattr(r, "has_mechanism", False) else "no"
            table.append(
                f"| {r.layer} | {r.ma_ratio:,.0f} | {r.ma_ratio_pred:,.1f} | {r.top1_bos_share:.0%} "
                f"| {'yes' if has[r.Index] else 'no'} | {predicted_has} | {r.linearity:.3f} | {r.linearity_pred:.3f} |"
            )
        table.append("")
    if not results:
        return {}
    text = (
        "Predicted at the last step of the reference recipe, measured on the finished model (so the real model "
        "has trained for orders of magnitude more tokens than any zoo run: the scale gap is the expected miss)."
    )
    return {"models": results, "text": text, "table": table}
