"""MODEL_CARD.md of an exported model version, written from its manifest."""

from __future__ import annotations

from features.curve import PUBLISHED_MEAN_R2
from training.evaluate import GROUPED_BASELINES, OURS


def _span(ranges: dict, feature: str) -> str:
    low, high = ranges.get(feature, (float("nan"), float("nan")))
    return f"{low:g}–{high:g}"


def model_card(m: dict) -> str:
    scores = m.get("cv_scores", {})
    ranges = m["domain"].get("feature_ranges", {})
    lines = [
        f"# archcast predictor {m['version']}",
        "",
        "Predicts, from a transformer's config.json alone, the five parameters of the emergence curve "
        "f(t) = A·exp(−λx)·ln(x) + K, x = γt + t0, per layer, for each metric below; derived quantities "
        "(steady state K, peak step and value, value at the last step) follow from them.",
        "",
        f"- Metrics: {', '.join(m['metrics'])}",
        f"- Trained on: {m['domain']['models']} models, {m['domain']['layers']} layers "
        f"(families {', '.join(m['domain']['model_types'])}); data hash `{m.get('data_hash', '?')[:16]}`",
        f"- Data provenance: {m.get('data_provenance', 'see data/')}",
        f"- Feature schema {m['schema']['version']} (`{m['schema']['hash'][:16]}`)",
        "",
        "## Scores (grouped cross-validation: whole architectures held out)",
        "",
        "| target | LightGBM R² | mean R² | ridge R² | paper RF R² | paper RF (random split) R² | beats all grouped |",
        "|---|---|---|---|---|---|---|",
    ]
    for target, s in scores.items():
        beats = all(s[OURS]["r2"] > s[b]["r2"] for b in GROUPED_BASELINES if b in s)
        lines.append(
            f"| {target} | {s['lightgbm_optuna']['r2']:.3f} | {s['mean']['r2']:.3f} | {s['ridge']['r2']:.3f} "
            f"| {s.get('paper_rf_grouped', {}).get('r2', float('nan')):.3f} "
            f"| {s['paper_rf_random_split']['r2']:.3f} | {'yes' if beats else 'no'} |"
        )
    curves = m.get("curve_error", [])
    if curves:
        lines += [
            "",
            "## Curves (held-out models, as served: clipped to each metric's range, every checkpoint)",
            "",
            "| metric | median abs. log(predicted / measured) | model-free baseline: median measured curve "
            "of the training models | checkpoints |",
            "|---|---|---|---|",
        ]
        for c in curves:
            lines.append(
                f"| {c['metric']} | {c['median_abs_log_ratio']:.3f} "
                f"| {c.get('baseline_median_curve', float('nan')):.3f} | {c['points']} |"
            )
    fits = m.get("fit_summary", {})
    if fits:
        lines += ["", "## Emergence fits behind the targets", ""]
        lines += [
            f"- {metric}: mean R² {f['mean_r2']:.3f} over {f['fitted']} of {f['n']} layers "
            f"(published Pythia mean {PUBLISHED_MEAN_R2})"
            for metric, f in fits.items()
        ]
        lines.append(
            "- Each metric's series are fitted towards its population curve (training.fit): fits trade a "
            "little R² for parameters that are consistent across layers, and so predictable."
        )
    lines += [
        "",
        "## Domain and limits",
        "",
        f"- Trained on small models from the archcast zoo: {_span(ranges, 'n_layers')} layers, d_model "
        f"{_span(ranges, 'd_model')}, checkpoints up to step {max(m.get('default_steps') or [0])}. "
        "Predictions for large models are extrapolations; the service flags every feature outside the "
        "training range and every family not seen in training.",
        "- The emergence curve is ill-conditioned: quite different parameter sets draw similar curves, so "
        "per-parameter R² understates how well curves are predicted; see the curve-level error in report.md.",
        "- Ratios are relative to random init (≈6–10 for these sizes), not Sun et al.'s absolute rule.",
        "",
    ]
    return "\n".join(lines)
