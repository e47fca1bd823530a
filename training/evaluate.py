"""Side-by-side evaluation of the tuned LightGBM against baselines, and curve-level error."""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.dummy import DummyRegressor
from sklearn.ensemble import RandomForestRegressor
from sklearn.linear_model import Ridge
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from emergence.curve import (
    PUBLISHED_LAYERS,
    PUBLISHED_MEAN_R2,
    Projector,
    curve_rows,
    evaluate,
    projection_steps,
)
from emergence.mechanism import MECHANISM, MarginError, carries_mechanism, likeliest_onset, onset_chances, onset_layer
from emergence.path import project_curves
from emergence.scale import AXES, ScaleTerm
from features import FEATURES
from training.dataset import (
    DESIGN,
    MEASURED_FLAG,
    curve_data,
    feature_array,
    measured_by_step,
    target_name,
    target_parts,
)
from training.fit import curve_shapes
from training.scale import axis_slopes
from training.tune import cv_predictions, design_folds, grouped_folds, lgbm, r2

# The models every target is scored with: ours, the baselines under the same grouped CV, and the published
# protocol (random 80/20 split of layers, which lets a model's own layers into training) for comparison.
OURS = "lightgbm_optuna"
GROUPED_BASELINES = ("mean", "ridge", "paper_rf_grouped")
RANDOM_SPLIT = ("paper_rf_random_split", "lightgbm_random_split")

INTERVAL_LEVEL = 0.8  # central intervals: 10th to 90th percentile

# The published baseline's inputs: depth, width, heads and the per-layer position terms.
PAPER_FEATURES: tuple[str, ...] = (
    "n_layers",
    "d_model",
    "n_heads",
    "layer_index",
    "layer_frac",
    "layer_frac_sq",
    "layer_frac_sqrt",
    "layer_x_layers",
    "heads_per_d",
    "d_per_layer",
    "heads_per_layer",
    "log_d",
)
PAPER_COLUMNS = [FEATURES.index(f) for f in PAPER_FEATURES]


# the onset score the model card leads with and the promotion rule weighs: the share of held-out designs whose onset
# layer is exact (mechanism_error)
ONSET_DESIGNS = "onset_layer_exact_designs"


def _scores(y, pred) -> dict:
    return {"r2": r2(y, pred), "mae": float(np.mean(np.abs(y - pred)))}


def evaluate_target(X, y, groups, params: dict, seed: int = 0) -> dict:
    """Grouped-CV scores of every model, plus the published protocol (RF, random 80/20 split)."""
    folds = grouped_folds(groups)
    makers = {
        OURS: lambda: lgbm(params, seed),
        "mean": lambda: DummyRegressor(),
        "ridge": lambda: make_pipeline(StandardScaler(), Ridge(alpha=1.0)),
    }
    out = {name: _scores(y, cv_predictions(make, X, y, folds)) for name, make in makers.items()}
    rf = lambda: RandomForestRegressor(n_estimators=200, random_state=seed, n_jobs=1)  # noqa: E731
    Xp = X[:, PAPER_COLUMNS]
    out["paper_rf_grouped"] = _scores(y, cv_predictions(rf, Xp, y, folds))
    train, test = train_test_split(np.arange(len(y)), test_size=0.2, random_state=seed)
    out["paper_rf_random_split"] = _scores(y[test], rf().fit(Xp[train], y[train]).predict(Xp[test]))
    out["lightgbm_random_split"] = _scores(y[test], lgbm(params, seed).fit(X[train], y[train]).predict(X[test]))
    return out


def _abs_log_ratio(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """|log(pred / truth)| at the measured points; NaN (0 against non-zero, or the reverse) counts as infinite."""
    with np.errstate(all="ignore"):
        ratio = np.abs(np.log(pred / truth))
    known = np.isfinite(truth)
    return np.where(np.isnan(ratio[known]), np.inf, ratio[known])


def _median(parts: list[np.ndarray]) -> float:
    flat = np.concatenate(parts) if parts else np.array([])
    return float(np.median(flat)) if len(flat) else float("nan")


def evaluate_curve_target(X, y, groups, params: dict, seed: int = 0) -> dict:
    """Grouped-CV scores of a curve regressor (log metric at every checkpoint) beside the model-free baseline,
    the training models' median at the same step."""
    folds = grouped_folds(groups)
    pred = cv_predictions(lambda: lgbm(params, seed), X, y, folds)
    baseline = np.full(len(y), np.nan)
    step = X[:, -1]
    for train, test in folds:
        medians = pd.Series(y[train]).groupby(step[train]).median()
        baseline[test] = medians.reindex(step[test]).to_numpy()
    known = np.isfinite(baseline)
    return {OURS: _scores(y, pred), "median_by_step": _scores(y[known], baseline[known])}


def curve_error(
    table: pd.DataFrame,
    metrics: pd.DataFrame,
    fits: pd.DataFrame,
    metric: str,
    params: dict,
    seed: int = 0,
    read_at: np.ndarray | None = None,
) -> dict:
    """Median |log(predicted / measured)| over held-out models' checkpoints (grouped CV), beside a model-free
    baseline: the median measured curve of the training models' layers, step by step.

    Each fold's curve regressor learns from the training models' checkpoints; its predictions for the held-out
    layers at the measured steps are projected onto the emergence curve over shapes from the training models'
    fits alone and corrected to pass through the regressor's values (emergence.curve.project), evaluated and
    clipped as the service serves them. Every checkpoint of every held-out layer counts.
    `direct_median_abs_log_ratio` is the regressor's own error read at every measured step, and
    `emergence_median_abs_log_ratio` that of the bare emergence curves, without the correction.

    The scale term (emergence.scale) is tested axis by axis: a held-out model past its fold's training range on
    an axis where that fold measured a slope is predicted with that axis's shift alone and without it
    (`extrapolated`); an axis is served (`applied`) unless its shift did harm there, or where nothing tested
    it. The scores and the band are those of the served model: only the applied axes' shifts.
    """
    data = curve_data(table, metrics, metric)
    rows = table.reset_index(drop=True)
    steps, truth = measured_by_step(rows, metrics, metric)
    X_layers = feature_array(rows)
    model_ids, designs = rows["model_id"].to_numpy(), rows[DESIGN].to_numpy()
    # the reference steps the export serves (the pipeline passes them); by default those of this metric's steps
    read_at = projection_steps(steps) if read_at is None else np.asarray(read_at, dtype=np.float64)
    folds = []  # per fold: (test rows, log values at read_at (n, T), per-axis shifts (A, n, T), projector)
    direct_errors, baseline_errors = [], []
    for train, test in grouped_folds(designs):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a step no training layer measured
            baseline = np.nanmedian(truth[train], axis=0)
        train_models = set(model_ids[train])
        learn = np.isin(data.groups, list(set(designs[train])))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            regressor = lgbm(params, seed).fit(data.X[learn], data.y[learn])
            log_values = regressor.predict(curve_rows(X_layers[test], read_at)).reshape(len(test), len(read_at))
            direct = np.exp(regressor.predict(curve_rows(X_layers[test], steps)).reshape(len(test), len(steps)))
        projector = Projector(read_at, curve_shapes(fits, metric, float(steps.max()), train_models))
        term = fold_scale_term(rows.iloc[train], metrics, metric, read_at)
        shifts = np.zeros((len(AXES), len(test), len(read_at)))
        for model in dict.fromkeys(model_ids[test]):
            mine = model_ids[test] == model
            shifts[:, mine] = term.axis_shifts(X_layers[test][mine])[:, 0][:, None, :]
        folds.append((test, log_values, shifts, projector))
        for i, row in enumerate(test):
            direct_errors.append(_abs_log_ratio(direct[i], truth[row]))
            baseline_errors.append(_abs_log_ratio(baseline, truth[row]))

    def predicted(log_values, shift, projector) -> np.ndarray:  # the served curves (emergence.path)
        return project_curves(log_values[None], shift[None], projector, [metric]).at(steps)[metric].values

    extrapolated = {}
    for j, axis in enumerate(AXES):
        with_term, without = [], []
        for test, log_values, shifts, projector in folds:
            moved = np.flatnonzero(shifts[j].any(axis=1))
            if len(moved):
                moved_with = predicted(log_values[moved], shifts[j][moved], projector)
                moved_without = predicted(log_values[moved], np.zeros_like(log_values[moved]), projector)
                for i, p_with, p_without in zip(moved, moved_with, moved_without, strict=True):
                    with_term.append(_abs_log_ratio(p_with, truth[test[i]]))
                    without.append(_abs_log_ratio(p_without, truth[test[i]]))
        if with_term:
            e_with, e_without = _median(with_term), _median(without)
            extrapolated[axis] = {"layers": len(with_term), "with_scale_term": e_with,
                                  "without_scale_term": e_without, "applied": bool(e_with <= e_without)}  # fmt: skip
    applied = np.array([extrapolated.get(axis, {}).get("applied", True) for axis in AXES])
    model_errors, bare_errors = [], []
    residuals = np.full(truth.shape, np.nan)  # log(measured / predicted) of held-out layers, as served
    fold_of = np.full(len(rows), -1)
    for k, (test, log_values, shifts, projector) in enumerate(folds):
        projected = project_curves(log_values[None], shifts[applied].sum(axis=0)[None], projector, [metric])
        served = projected.at(steps)[metric].values
        bare = evaluate(projected.params[metric], steps, metric).values  # the same emergence curves, uncorrected
        bare_errors += [_abs_log_ratio(bare[i], truth[row]) for i, row in enumerate(test)]
        with np.errstate(all="ignore"):
            residuals[test] = np.log(truth[test] / served)
        fold_of[test] = k
        model_errors += [_abs_log_ratio(served[i], truth[row]) for i, row in enumerate(test)]
    return {
        "metric": metric,
        "median_abs_log_ratio": _median(model_errors),
        "direct_median_abs_log_ratio": _median(direct_errors),
        "emergence_median_abs_log_ratio": _median(bare_errors),
        "baseline_median_curve": _median(baseline_errors),
        "layers": len(model_errors),
        "points": int(sum(len(e) for e in model_errors)),
        "extrapolated": extrapolated,
        "interval": conformal_band(steps, residuals, fold_of),
    }


def fold_scale_term(train_rows: pd.DataFrame, metrics: pd.DataFrame, metric: str, read_at: np.ndarray) -> ScaleTerm:
    """The scale term a fold's training models give one metric, with their ranges as the domain."""
    ranges = {
        feature: [float(train_rows[feature].min()), float(train_rows[feature].max())] for feature in AXES.values()
    }
    slopes = axis_slopes(train_rows, metrics, metric, read_at)
    return ScaleTerm({metric: slopes}, ranges, len(read_at))


def _band_at_each_step(residuals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per step (column): split-conformal bounds of a central INTERVAL_LEVEL band of the residuals, i.e. the
    ⌊(n+1)·α/2⌋-th and ⌈(n+1)·(1−α/2)⌉-th smallest of the n residuals there (α = 1 − INTERVAL_LEVEL)."""
    tail = (1 - INTERVAL_LEVEL) / 2
    low, high = np.full(residuals.shape[1], np.nan), np.full(residuals.shape[1], np.nan)
    for j in range(residuals.shape[1]):
        r = np.sort(residuals[np.isfinite(residuals[:, j]), j])
        if len(r):
            low[j] = r[max(0, int(np.floor((len(r) + 1) * tail)) - 1)]
            high[j] = r[min(len(r) - 1, int(np.ceil((len(r) + 1) * (1 - tail))) - 1)]
    return low, high


def _target_band(residual: np.ndarray, fold_of: np.ndarray) -> dict:
    """A per-layer target's central INTERVAL_LEVEL band of (measured − predicted) in its target space, with its
    coverage measured one level further out (conformal_band at a single step)."""
    band = conformal_band(np.zeros(1), residual[:, None], fold_of)
    return {"level": band["level"], "low": band["log_low"][0], "high": band["log_high"][0],
            "heldout_coverage": band["heldout_coverage"], "points": band["points"]}  # fmt: skip


def conformal_band(steps: np.ndarray, residuals: np.ndarray, fold_of: np.ndarray) -> dict:
    """The central INTERVAL_LEVEL band of log(measured / predicted) at each step, from the held-out layers of
    grouped CV (whole architectures left out), and its coverage measured the same way one level further out:
    each fold's points against the band calibrated on the other folds alone."""
    covered, counted = 0, 0
    for k in np.unique(fold_of[fold_of >= 0]):
        low, high = _band_at_each_step(residuals[fold_of != k])
        r = residuals[fold_of == k]
        known = np.isfinite(r) & np.isfinite(low) & np.isfinite(high)
        covered += int(((r >= low) & (r <= high) & known).sum())
        counted += int(known.sum())
    low, high = _band_at_each_step(residuals)
    return {
        "level": INTERVAL_LEVEL,
        "steps": steps.tolist(),
        "log_low": low.tolist(),
        "log_high": high.tolist(),
        "heldout_coverage": covered / counted if counted else float("nan"),
        "points": counted,
    }


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


def split_margin_error(residual: np.ndarray, models: np.ndarray) -> MarginError:
    """Held-out margin residuals (predicted − measured) split into the sd of the offset a model's layers share
    and of each layer's error about it: one-way random-effects estimates, σ_layer² = SS_within / (N − G) and
    σ_model² = var(model means) − mean(σ_layer² / n_g), at least 0 (the spread of the means alone also holds
    the per-layer part, and the plain sd about each mean understates it: ~4 layers a model here)."""
    frame = pd.DataFrame({"model": models, "residual": residual})
    groups = frame.groupby("model", sort=False)["residual"]
    means, sizes = groups.mean(), groups.size()
    within = float(((frame["residual"] - groups.transform("mean")) ** 2).sum())
    layer_var = within / max(len(frame) - len(means), 1)
    model_var = max(0.0, float(means.var(ddof=1)) - float(np.mean(layer_var / sizes))) if len(means) > 1 else 0.0
    return MarginError(model_sd=math.sqrt(model_var), layer_sd=math.sqrt(layer_var))


ONSET_CHANCE_BINS = (0.0, 0.5, 0.8, 1.0)


def chance_calibration(chance: dict[str, float], right: dict[str, bool]) -> list[dict]:
    """Whether the served onset chance means what it says: per bin of chance, how many held-out runs fell in it,
    their mean chance and the share whose onset layer was right."""
    values, hits = np.array([chance[m] for m in right]), np.array([right[m] for m in right])
    out = []
    for low, high in zip(ONSET_CHANCE_BINS[:-1], ONSET_CHANCE_BINS[1:], strict=True):
        inside = (values >= low) & ((values < high) | (high == ONSET_CHANCE_BINS[-1]))
        if inside.any():
            out.append({"low": low, "high": high, "runs": int(inside.sum()),
                        "mean_chance": float(values[inside].mean()), "right": float(hits[inside].mean())})  # fmt: skip
    return out


def score_designs(design_onsets: dict[str, list], guess: dict[str, int | None]) -> dict:
    """The onset layer scored per design: each design's truth is its seeds' most common onset (a design whose
    seeds tie has none and is left out), and the share exact is given over all designs and split by what the
    seeds say: one run, seeds that all agree, or seeds that disagree (whose most common onset is a close vote
    between seeds rather than a property of the design alone)."""
    hits: dict[str, list[bool]] = {"single": [], "unanimous": [], "split": []}
    for d, onsets in design_onsets.items():
        counts = {v: onsets.count(v) for v in onsets}
        modes = [v for v, c in counts.items() if c == max(counts.values())]
        if len(modes) > 1:
            continue
        kind = "single" if len(onsets) == 1 else "unanimous" if len(counts) == 1 else "split"
        hits[kind].append(guess[d] == modes[0])
    every = [hit for kind_hits in hits.values() for hit in kind_hits]
    return {
        "exact": float(np.mean(every)) if every else float("nan"),
        "designs": len(every),
        "by_seed_agreement": {k: {"designs": len(h), "exact": float(np.mean(h))} for k, h in hits.items() if h},
    }


def mechanism_error(table: pd.DataFrame, best: dict[str, dict], seed: int = 0, shared_offset: bool = True) -> dict:
    """Where the BOS mechanism forms, on held-out models (one design left out at a time, tune.design_folds):
    the share of models whose onset layer (the first layer that shows it at the end; none counts as a value) is
    predicted exactly, per run and per design (against the design's most common onset over its seeds), beside a
    model-free baseline (the training models' most common onset layer) and the seed-noise ceiling, the per-layer
    accuracy of mechanism-or-not (the predicted margin's call, emergence.mechanism.carries_mechanism), and the
    median |log(pred/measured)| of the onset step where it is measured. The onset is the likeliest one
    (emergence.mechanism.onset_chances) under the held-out margin error of the other folds, split into the offset
    a model's layers share and the rest (the split over all folds, `margin_residual_sd_model` / `_layer`, is
    what the service uses; with shared_offset=False the layers are taken as independent, for
    scripts/studies/onset_study.py)."""
    margin, step = target_name(MECHANISM, "bos_margin"), target_name(MECHANISM, "onset_step")
    share = target_name(MECHANISM, "bos_share")
    rows = table.reset_index(drop=True)
    if margin not in best or MEASURED_FLAG not in rows:
        return {}
    X = feature_array(rows)
    measured = rows[MEASURED_FLAG].to_numpy() >= 0.5
    models, designs = rows["model_id"].to_numpy(), rows[DESIGN].to_numpy()
    folds = design_folds(designs)
    fold_of = np.zeros(len(rows), dtype=int)
    for k, (_, test) in enumerate(folds):
        fold_of[test] = k
    predicted = {}
    for target in (margin, share, step):
        predicted[target] = np.full(len(rows), np.nan)
        if target not in best:
            continue
        known = rows[target].notna().to_numpy()
        for train, test in folds:
            train = train[known[train]]
            if len(train) == 0:
                continue
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model = lgbm(best[target], seed).fit(X[train], rows[target].to_numpy()[train])
            predicted[target][test] = model.predict(X[test])
    has = carries_mechanism(predicted[margin])
    residual = predicted[margin] - rows[margin].to_numpy()
    guess, chance = {}, {}
    for m in dict.fromkeys(models):
        mine = models == m
        others = np.isfinite(residual) & (fold_of != fold_of[mine][0])
        error = split_margin_error(residual[others], models[others])
        if not shared_offset:  # the layers taken as independent, with the same total error (for comparison)
            error = MarginError(model_sd=0.0, layer_sd=error.total_sd)
        chances = onset_chances(predicted[margin][mine], error)
        guess[m] = likeliest_onset(chances)
        chance[m] = float(chances[guess[m] or 0])  # what the service serves as onset_chance

    def onsets(flags):
        return {m: onset_layer(flags[models == m]) for m in dict.fromkeys(models)}

    truth = onsets(measured)
    baseline_hits = 0
    for train, test in folds:
        train_onsets = pd.Series([truth[m] for m in dict.fromkeys(models[train])], dtype=object)
        common = train_onsets.fillna(0).mode().iloc[0] or None
        baseline_hits += sum(truth[m] == common for m in dict.fromkeys(models[test]))
    # what seed noise leaves to any prediction from the architecture alone: over the designs trained with several
    # seeds, the share of runs whose onset layer is their design's most common one (the best such a prediction
    # can do on them), and how often two seeds agree
    by_design: dict[str, list] = {}
    for m, d in dict(zip(models, designs, strict=True)).items():
        by_design.setdefault(d, []).append(m)
    design_onsets = {d: [truth[m] for m in runs] for d, runs in by_design.items()}
    replicated = [onsets for onsets in design_onsets.values() if len(onsets) > 1]
    n_replicated = sum(len(onsets) for onsets in replicated)
    at_mode = sum(max(onsets.count(v) for v in onsets) for onsets in replicated)
    pairs = [(a, b) for onsets in replicated for i, a in enumerate(onsets) for b in onsets[i + 1 :]]
    # runs of one design share one guess (grouped folds hold them out together)
    designs_scored = score_designs(design_onsets, {d: guess[runs[0]] for d, runs in by_design.items()})
    finite = np.isfinite(residual)
    whole = split_margin_error(residual[finite], models[finite])
    with_onset = rows[step].notna().to_numpy() & np.isfinite(predicted[step])
    step_error = np.abs(
        np.log(np.expm1(predicted[step][with_onset]).clip(1) / np.expm1(rows[step].to_numpy()[with_onset]).clip(1))
    )
    return {
        "models": len(truth),
        "onset_layer_exact": float(np.mean([truth[m] == guess[m] for m in truth])),
        "onset_chance_calibration": chance_calibration(chance, {m: truth[m] == guess[m] for m in truth}),
        ONSET_DESIGNS: designs_scored["exact"],
        "designs_scored": designs_scored["designs"],  # the designs whose seeds do not tie
        "onset_layer_exact_designs_by_seed_agreement": designs_scored["by_seed_agreement"],
        "baseline_most_common_onset_layer": baseline_hits / len(truth),
        "designs": len(by_design),
        "replicated_runs": n_replicated,
        "replicated_runs_at_design_mode": at_mode / n_replicated if replicated else None,
        "seed_pairs": len(pairs),
        "seed_pairs_same_onset_layer": float(np.mean([a == b for a, b in pairs])) if pairs else None,
        "layer_accuracy": float(np.mean(measured == has)),
        "margin_residual_sd": float(np.nanstd(residual)),
        # the same residuals split into the offset a model's layers share and the rest (the service's onset)
        "margin_residual_sd_model": whole.model_sd,
        "margin_residual_sd_layer": whole.layer_sd,
        # each mechanism target's central band, in its target space (measured − predicted), calibrated held out
        "intervals": {
            target_parts(t)[1]: _target_band(rows[t].to_numpy() - predicted[t], fold_of)
            for t in (margin, share, step)
            if t in best
        },
        "models_with_mechanism": int(sum(v is not None for v in truth.values())),
        "onset_step_median_abs_log_ratio": float(np.median(step_error)) if len(step_error) else float("nan"),
        "layers_with_onset": int(with_onset.sum()),
    }
