"""MODEL_CARD.md of an exported model version, written from its manifest."""

from __future__ import annotations

import math

from emergence.curve import PUBLISHED_MEAN_R2
from emergence.scale import AXES
from training.report import design_onset_lines, seed_ceiling_lines
from training.scores import GROUPED_BASELINES, OURS
from training.stability import stability_lines


def _span(ranges: dict, feature: str) -> str:
    low, high = ranges.get(feature, (float("nan"), float("nan")))
    return f"{low:g}–{high:g}"


def model_card(m: dict) -> str:
    scores = m.get("cv_scores", {})
    ranges = m["domain"].get("feature_ranges", {})
    lines = [
        f"# archcast predictor {m['version']}",
        "",
        "Predicts, from a transformer's config.json alone, per layer and for each metric below, the emergence "
        "curve f(t) = A·exp(−λx)·ln(x) + K, x = γt + t0, over training steps, and where the BOS "
        "massive-activation mechanism forms. One LightGBM regressor per metric reads a layer's features and the "
        "step and predicts log(metric) there; its values at the reference steps are projected onto the emergence "
        "curve (A and K exact, (λ, γ, t0) from the shapes the training series took), which gives the five "
        "parameters; the served curve is that emergence curve times a correction, interpolated in log step, that "
        "takes it through the regressor's values at the reference steps (the emergence curve alone cannot follow "
        "the first steps, where the ratio at initialisation falls before the mechanism grows). Derived values "
        "are read off the served curve (steady state: K times the last correction where the curve decays; peak "
        "or dip where the emergence curve has it; final value). "
        "Chosen by measurement over regressing each of the five parameters separately (docs/architecture.md, "
        '"Predicting a curve").',
        "",
        f"- Metrics: {', '.join(m['metrics'])}",
        *(
            [f"- Reference steps (where the curve regressors are read): {', '.join(f'{s:g}' for s in steps)}"]
            if (steps := m.get("projection_steps"))
            else []
        ),
        f"- Trained on: {m['domain']['models']} models, {m['domain']['layers']} layers "
        f"(families {', '.join(m['domain']['model_types'])}); data hash `{m.get('data_hash', '?')[:16]}`",
        f"- Data provenance: {m.get('data_provenance', 'see data/')}",
        f"- Feature schema {m['schema']['version']} (`{m['schema']['hash'][:16]}`)",
        "",
        "## Scores (grouped cross-validation: whole architectures held out)",
        "",
        "R² of each target on held-out models. A curve regressor's target is log(metric) at every checkpoint, "
        "scored beside the training models' median at that step; the mechanism targets are per layer, scored "
        "beside the mean, ridge regression and the published random forest.",
        "",
        "| target | LightGBM R² | median at the step R² | mean R² | ridge R² | paper RF R² | beats all grouped |",
        "|---|---|---|---|---|---|---|",
    ]

    def cell(s: dict, name: str) -> str:
        return f"{s[name]['r2']:.3f}" if name in s else "—"

    for target, s in scores.items():
        others = [b for b in (*GROUPED_BASELINES, "median_by_step") if b in s]
        beats = all(s[OURS]["r2"] > s[b]["r2"] for b in others)
        lines.append(
            f"| {target} | {cell(s, OURS)} | {cell(s, 'median_by_step')} | {cell(s, 'mean')} | {cell(s, 'ridge')} "
            f"| {cell(s, 'paper_rf_grouped')} | {'yes' if beats else 'no'} |"
        )
    curves = m.get("curve_error", [])
    if curves:
        lines += [
            "",
            "## Curves (held-out models, as served: clipped to each metric's range, every checkpoint)",
            "",
            "The served curve is the emergence curve closest to the curve regressor's values at the reference "
            "steps, times a correction that takes it through those values (interpolated in log step between "
            "them); the five parameters reported are that emergence curve's.",
            "",
            "| metric | median abs. log(predicted / measured) | model-free baseline: median measured curve "
            "of the training models | the bare emergence curves (no correction) | the curve regressor read at "
            "every checkpoint | checkpoints |",
            "|---|---|---|---|---|---|",
        ]
        for c in curves:
            lines.append(
                f"| {c['metric']} | {c['median_abs_log_ratio']:.3f} "
                f"| {c.get('baseline_median_curve', float('nan')):.3f} "
                f"| {c.get('emergence_median_abs_log_ratio', float('nan')):.3f} "
                f"| {c.get('direct_median_abs_log_ratio', float('nan')):.3f} | {c['points']} |"
            )
    lines += recipe_lines(m)
    lines += scale_lines(m)
    intervals = m.get("intervals", {})
    if intervals:
        lines += [
            "",
            "## 80 % intervals",
            "",
            "Split-conformal by step: the 10th and 90th percentiles of log(measured / predicted) over the held-out "
            "layers of grouped CV, at each training step. Coverage is measured one level further out: each fold's "
            "checkpoints against the band calibrated on the other folds alone. Outside the training domain the "
            "service widens the band with distance from the training range (a rule, not calibrated there).",
            "",
            "| metric | held-out coverage | checkpoints | band at the last step (× predicted) |",
            "|---|---|---|---|",
        ]
        for metric, band in intervals.items():
            lo, hi = band["log_low"][-1], band["log_high"][-1]
            lines.append(
                f"| {metric} | {band['heldout_coverage']:.1%} | {band['points']} "
                f"| {math.exp(lo):.2f}–{math.exp(hi):.2f} |"
            )
    mechanism = m.get("mechanism_error", {})
    if mechanism:
        lines += [
            "",
            "## Where the BOS mechanism forms (held-out models)",
            "",
            f"- Onset layer (the first layer whose top-1 sits on BOS and stands ≥ 2× above the rest at the end; "
            "predicted as the likeliest one from the predicted margins and the margin's held-out error"
            f"{margin_error_text(mechanism)}) predicted exactly for "
            f"{mechanism['onset_layer_exact']:.0%} of {mechanism['models']} held-out models; "
            f"the training models' most common onset layer gets {mechanism['baseline_most_common_onset_layer']:.0%}.",
            *[line.replace("- per", "- Per") + "." for line in design_onset_lines(mechanism)],
            *chance_lines(mechanism),
            *[line.replace("- seed", "- Seed") + "." for line in seed_ceiling_lines(mechanism)],
            *mechanism_band_lines(mechanism),
            f"- Mechanism or not, per layer (the predicted margin log(BOS ratio / largest elsewhere) ≥ log 2): "
            f"{mechanism['layer_accuracy']:.0%} right; onset step median "
            f"|log(pred/measured)| {mechanism['onset_step_median_abs_log_ratio']:.3f} "
            f"over {mechanism['layers_with_onset']} layers.",
        ]
    real = m.get("real_model_check", {})
    if real:
        lines += ["", "## Real-model check (not used in training)", "", real["text"], ""]
        lines += real["table"]
    lines += stability_lines(m.get("seed_stability", {}))
    recipe = m.get("recipe", {})
    if recipe:
        lines += [
            "",
            "## Time axis: the reference recipe",
            "",
            f"Every predicted curve is for the training recipe all the zoo runs shared: {recipe.get('schedule')}; "
            f"{recipe.get('batch_size')} sequences of {recipe.get('seq_len')} tokens a step "
            f"({recipe.get('tokens_per_step'):,} tokens), weight decay {recipe.get('weight_decay')}, "
            f"{'a BOS token first in every sequence' if recipe.get('bos') else 'no BOS token'}. Responses give the "
            "curve against steps and against tokens seen (steps × tokens per step). A step is only meaningful "
            "under this recipe; another learning rate or batch moves the curve in time.",
        ]
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
        f"{_span(ranges, 'd_model')}, {_span(ranges, 'n_heads')} heads, checkpoints up to step "
        f"{max(m.get('default_steps') or [0])}. That box is what the data backs: LightGBM predicts a constant "
        "past the edge of every feature it splits on (trees do not extrapolate). "
        + _moving_axes_sentence(m)
        + " The service flags every feature outside the training range and every family not seen in training, "
        "and widens the 80 % bands there.",
        "- The emergence curve is ill-conditioned: quite different parameter sets draw similar curves, so "
        "per-parameter R² understates how well curves are predicted; see the curve-level error in report.md.",
        "- Ratios are relative to random init (≈6–10 for these sizes), not Sun et al.'s absolute rule.",
        "",
    ]
    return "\n".join(lines)


def mechanism_band_lines(mechanism: dict) -> list[str]:
    """The mechanism targets' held-out 80 % bands: their width in each target's space and their coverage."""
    bands = mechanism.get("intervals", {})
    if not bands:
        return []
    spaces = {"bos_share": "share", "bos_margin": "log ratio", "onset_step": "log(1 + step)"}
    parts = [
        f"{name} {b['low']:+.2f} to {b['high']:+.2f} ({spaces.get(name, 'target space')}), covering "
        f"{b['heldout_coverage']:.0%} of {b['points']} held-out layers"
        for name, b in bands.items()
        if b.get("low") is not None and b.get("high") is not None
    ]
    return [f"- 80 % bands (measured − predicted, split-conformal on held-out designs): {'; '.join(parts)}."]


def _moving_axes_sentence(m: dict) -> str:
    """Which axes the served scale term moves past the trained range (the others hold their edge values)."""
    served = sorted({axis for axes in m.get("scale", {}).values() for axis, s in axes.items() if s.get("applied")})
    if not served:
        return "No scale term is served (see above): every feature, width and depth included, holds its edge value."
    return (
        f"Past the trained {' and '.join(served)} the scale term (above) moves the curves, within its reach; "
        "every other feature holds its edge value."
    )


def scale_lines(m: dict) -> list[str]:
    """The scale term: its slopes at the last step with their standard errors and the runs behind them, the
    held-out test each passed or failed, and so whether it is served."""
    scale, ranges = m.get("scale", {}), m.get("domain", {}).get("feature_ranges", {})
    lines = [
        "",
        "## Scale: past the trained width and depth",
        "",
        "Trees hold the value of the edge past it. Past the trained range of width (d_model) or depth (layers), "
        "log(metric) at each step moves by slope × log(x / edge), the slope measured between zoo runs of one "
        "design at several widths (heads scaled with d) or depths, design by design (training.scale). The data "
        f"backs widths {_span(ranges, 'd_model')} and depths {_span(ranges, 'n_layers')}; beyond, a slope is an "
        "assumption that the trend between the trained sizes goes on, carried at most as far past the edge as "
        "the sizes it was measured over span (its reach, below); further out the shift holds and the response "
        "says so. It is tested held out: the models of each grouped-CV fold that lie past the range of that "
        "fold's training models, predicted with the fold's own slope and without it; a slope that does harm "
        "there is not served.",
        "",
        "| metric | axis | slope at the last step (± s.e.) | runs | designs | sizes measured | reaches to "
        "| held out past the range: error with / without (layers) | served |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for metric in m.get("metrics", []):
        for axis in ("width", "depth"):
            s = scale.get(metric, {}).get(axis)
            if s is None:
                lines.append(
                    f"| {metric} | {axis} | none: no design was trained at two {axis}s | 0 | 0 | — | — | — | no |"
                )
                continue
            slope, se, test = s["slope"][-1], s["se"][-1], s.get("heldout")
            if slope is None:  # no design measured the last step at two sizes
                lines.append(f"| {metric} | {axis} | none at the last step | {s['runs']} | {s['designs']} "
                             "| — | — | — | no |")  # fmt: skip
                continue
            spread = f" ± {se:.2f}" if se is not None else ""
            tested = (
                f"{test['with_scale_term']:.3f} / {test['without_scale_term']:.3f} ({test['layers']})"
                if test
                else "untested"
            )
            low, high = s["span"]
            edge = ranges.get(AXES[axis], (float("nan"), float("nan")))[1]
            lines.append(
                f"| {metric} | {axis} | {slope:+.2f}{spread} | {s['runs']} | {s['designs']} | {low:g}–{high:g} "
                f"| {edge * high / low:.3g} | {tested} | {'yes' if s.get('applied', True) else 'no'} |"
            )
    return lines


def margin_error_text(mechanism: dict) -> str:
    """How the margin's held-out error enters the onset, as the card says it (an older model has one sd)."""
    if "margin_residual_sd_model" not in mechanism:
        return f", sd {mechanism.get('margin_residual_sd', float('nan')):.2f}, layers taken as independent"
    return (
        f": sd {mechanism['margin_residual_sd_model']:.2f} shared by a model's layers and "
        f"{mechanism['margin_residual_sd_layer']:.2f} per layer"
    )


def chance_lines(mechanism: dict) -> list[str]:
    """The onset chance's calibration on held-out runs, where the model has it."""
    bins = mechanism.get("onset_chance_calibration")
    if not bins:
        return []
    parts = [f"{b['low']:.1f}–{b['high']:.1f}: {b['runs']} runs, mean chance {b['mean_chance']:.2f}, right in "
             f"{b['right']:.0%}" for b in bins]  # fmt: skip
    return [f"- The served onset chance against how often the onset was right, by chance: {'; '.join(parts)}."]


def recipe_lines(m: dict) -> list[str]:
    """The held-out recipe variants (training.recipe_error), where the model reads the recipe."""
    parts = [r for r in m.get("recipe_error", []) if r.get("cells")]
    if not parts:
        return []
    lines = [
        "",
        "## Recipes (held-out recipe variants)",
        "",
        "Each run trained with a recipe other than the reference is held out with its seed replicates (its design "
        "under its recipe) and predicted by a curve regressor trained on every other run. Baselines that know part "
        "of the answer: the design's own measured curve under the reference recipe, and the median measured curve "
        "of the other designs under the held-out recipe. Median abs. log(predicted / measured) on the checkpoints "
        "where both baselines are defined.",
        "",
        "| metric | recipe | held-out cells | ours | design's reference curve | recipe's median curve |",
        "|---|---|---|---|---|---|",
    ]
    for r in parts:
        rows = [("all", r), *r.get("by_recipe", {}).items()]
        for label, s in rows:
            lines.append(
                f"| {r['metric']} | {label} | {s['cells']} | {s['median_abs_log_ratio']:.3f} "
                f"| {s['baseline_design_curve']:.3f} | {s['baseline_recipe_curve']:.3f} |"
            )
    return lines
