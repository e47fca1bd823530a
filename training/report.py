"""The training report (report.json and report.md): fits, target scores, curve error and the mechanism's
held-out scores, in the words the model card reuses."""

from __future__ import annotations

import json
from pathlib import Path

from emergence.curve import (
    PUBLISHED_LAYERS,
    PUBLISHED_MEAN_R2,
)
from training.onset_error import ONSET_DESIGNS
from training.scores import GROUPED_BASELINES, OURS, RANDOM_SPLIT


def write_report(
    folder: Path, evaluation: dict, fit_summary: dict, curve_errors: list[dict], mechanism: dict | None = None
) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "report.json").write_text(
        json.dumps(
            {"evaluation": evaluation, "fits": fit_summary, "curve_error": curve_errors}, indent=2, default=float
        )
    )
    lines = ["# archcast training report", "", "## Emergence fits", ""]
    for metric, s in fit_summary.items():
        lines.append(
            f"- `{metric}`: mean R² {s['mean_r2']:.3f} over {s['n']} layers "
            f"({s['fitted']} fitted; published Pythia mean: {PUBLISHED_MEAN_R2} over {PUBLISHED_LAYERS} layers)"
        )
    models = [OURS, *GROUPED_BASELINES, "median_by_step", *RANDOM_SPLIT]
    lines += [
        "",
        "## Targets: R² (MAE), grouped CV by model unless marked random split",
        "",
        "| target | n | " + " | ".join(models) + " |",
        "|" + "---|" * (len(models) + 2),
    ]
    for target, ev in evaluation.items():
        cells = [
            f"{ev['scores'][m]['r2']:.3f} ({ev['scores'][m]['mae']:.3f})" if m in ev["scores"] else "—" for m in models
        ]
        lines.append(f"| {target} | {ev['n']} | " + " | ".join(cells) + " |")
    lines += ["", "## Curve-level error on held-out models", ""]
    for c in curve_errors:
        lines.append(
            f"- `{c['metric']}`: median |log(pred/measured)| = {c['median_abs_log_ratio']:.3f} "
            f"over {c['points']} checkpoints of {c['layers']} layers "
            f"(model-free baseline, the training models' median measured curve: {c['baseline_median_curve']:.3f}; "
            f"the bare emergence curves, without the correction: "
            f"{c.get('emergence_median_abs_log_ratio', float('nan')):.3f}; "
            f"the curve regressor read at every checkpoint: {c['direct_median_abs_log_ratio']:.3f})"
        )
        for axis, beyond in c.get("extrapolated", {}).items():
            lines.append(
                f"  - {beyond['layers']} held-out layers of models past their fold's training {axis}: "
                f"{beyond['with_scale_term']:.3f} with the scale term, {beyond['without_scale_term']:.3f} without"
            )
        if "interval" in c:
            lines.append(
                f"  - central {c['interval']['level']:.0%} band (split-conformal by step on held-out residuals): "
                f"covers {c['interval']['heldout_coverage']:.1%} of {c['interval']['points']} held-out checkpoints "
                "when calibrated without their own fold"
            )
    if mechanism:
        lines += [
            "",
            "## Where the BOS mechanism forms, on held-out models",
            "",
            f"- onset layer exact in {mechanism['onset_layer_exact']:.0%} of {mechanism['models']} models "
            f"(model-free baseline, the training models' most common onset layer: "
            f"{mechanism['baseline_most_common_onset_layer']:.0%}); {mechanism['models_with_mechanism']} of them "
            "show the mechanism somewhere",
            *design_onset_lines(mechanism),
            *seed_ceiling_lines(mechanism),
            f"- mechanism or not, per layer: {mechanism['layer_accuracy']:.0%} right",
            f"- onset step: median |log(pred/measured)| {mechanism['onset_step_median_abs_log_ratio']:.3f} over "
            f"{mechanism['layers_with_onset']} layers",
        ]
    (folder / "report.md").write_text("\n".join(lines) + "\n")


def design_onset_lines(mechanism: dict) -> list[str]:
    """The onset layer scored per design, against its seeds' most common one (where the report has it)."""
    if ONSET_DESIGNS not in mechanism:
        return []
    return [
        f"- per design (its seeds' most common onset layer as the truth, one vote each; designs whose seeds tie "
        f"left out): exact in {mechanism['onset_layer_exact_designs']:.0%} of "
        f"{mechanism.get('designs_scored', mechanism['designs'])} designs{_by_agreement(mechanism)}"
    ]


AGREEMENT_WORDS = {"single": "trained once", "unanimous": "whose seeds all agree", "split": "whose seeds disagree"}


def _by_agreement(mechanism: dict) -> str:
    """The per-design score split by what the seeds say (": 80 % of the 45 trained once, …"), where the report
    has it."""
    parts = mechanism.get("onset_layer_exact_designs_by_seed_agreement")
    if not parts:
        return ""
    return ": " + ", ".join(
        f"{part['exact']:.0%} of the {part['designs']} {AGREEMENT_WORDS[kind]}" for kind, part in parts.items()
    )


def seed_ceiling_lines(mechanism: dict) -> list[str]:
    """The line that says how often two seeds of one design agree on the onset layer, where there are seeds."""
    if not mechanism.get("seed_pairs"):
        return []
    return [
        f"- seed noise: of the {mechanism['replicated_runs']} runs of designs trained with several seeds, "
        f"{mechanism['replicated_runs_at_design_mode']:.0%} have their design's most common onset layer (the most "
        f"any prediction from the architecture alone gets right on them); two seeds of one design agree in "
        f"{mechanism['seed_pairs_same_onset_layer']:.0%} of {mechanism['seed_pairs']} pairs"
    ]
