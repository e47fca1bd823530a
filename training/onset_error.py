"""Where the BOS mechanism forms, scored on held-out designs: the onset layer per run and per design against
the most common onset and the seed-noise ceiling, how well the onset chance is calibrated, and the margin
error split into the offset a model's layers share and the rest (what the service weighs chances with)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd

from emergence.mechanism import MECHANISM, MarginError, carries_mechanism, likeliest_onset, onset_chances, onset_layer
from training.bands import target_band
from training.dataset import (
    DESIGN,
    MEASURED_FLAG,
    feature_array,
    target_name,
    target_parts,
)
from training.tune import design_folds, lgbm

# the onset score the model card leads with and the promotion rule weighs: the share of held-out designs whose onset
# layer is exact (mechanism_error)
ONSET_DESIGNS = "onset_layer_exact_designs"


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
            target_parts(t)[1]: target_band(rows[t].to_numpy() - predicted[t], fold_of)
            for t in (margin, share, step)
            if t in best
        },
        "models_with_mechanism": int(sum(v is not None for v in truth.values())),
        "onset_step_median_abs_log_ratio": float(np.median(step_error)) if len(step_error) else float("nan"),
        "layers_with_onset": int(with_onset.sum()),
    }
