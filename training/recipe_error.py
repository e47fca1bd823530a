"""Curve error on held-out recipe variants: each run trained with a recipe other than the reference is held out
with its seed replicates (its design under its recipe, one cell), the curve regressor is trained on every other
run (the same design under other recipes, other designs under the same recipe) and its curves are served as
the service serves them (emergence.path, without the scale term: a variant's design lies inside the domain).

Two baselines that know part of the answer, as the held-out model does:
- `design`: the design's own curve under the reference recipe, measured, step by step;
- `recipe`: the median measured curve of the other designs' runs under the held-out recipe, step by step.
Every figure is a median |log(predicted / measured)| over the held-out checkpoints where both baselines are
defined, so the three are read on the same points."""

from __future__ import annotations

import warnings
from dataclasses import asdict

import numpy as np
import pandas as pd

from emergence.curve import Projector, curve_rows, to_log_value
from emergence.path import project_curves
from features.recipe import Recipe
from training.curve_error import abs_log_ratio
from training.dataset import DESIGN, feature_array, measured_by_step
from training.heldout_fits import HeldOutFits
from training.tune import lgbm


def recipe_label(recipe: Recipe, reference: Recipe) -> str:
    """The fields a recipe changes from the reference, as `lr=0.012, steps=4000`; the reference itself: ''."""
    mine, ref = asdict(recipe), asdict(reference)
    return ", ".join(f"{k}={mine[k]}" for k in mine if mine[k] != ref[k])


def recipe_error(
    table: pd.DataFrame,
    metrics: pd.DataFrame,
    fits: HeldOutFits,
    metric: str,
    params: dict,
    recipes: dict[str, Recipe],
    reference: Recipe,
    read_at: np.ndarray,
    seed: int = 0,
) -> dict:
    """Held-out (design, recipe) cells against the `design` and `recipe` baselines, in all and per recipe."""
    rows = table.reset_index(drop=True)
    steps, truth = measured_by_step(rows, metrics, metric)  # (T,), (L_all, T)
    X = feature_array(rows)
    model_ids, designs = rows["model_id"].to_numpy(), rows[DESIGN].to_numpy()
    labels = np.array([recipe_label(recipes[m], reference) for m in model_ids])
    cells = pd.factorize(pd.Series(designs) + "|" + labels)[0]
    known = np.isfinite(truth).reshape(-1)
    X_points = curve_rows(X, steps)[known]
    y_points = to_log_value(truth.reshape(-1)[known])
    cell_of_point = np.repeat(cells, len(steps))[known]
    by_recipe: dict[str, dict[str, list]] = {}
    for cell in np.unique(cells[labels != ""]):
        test = np.flatnonzero(cells == cell)
        label, design = labels[test[0]], designs[test[0]]
        own = (designs == design) & (labels == "")
        peers = (designs != design) & (labels == label)
        if not own.any() or not peers.any():
            continue  # a baseline is undefined: the cell is not scored
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a step no layer of the baseline measured
            design_curve = np.nanmedian(truth[own], axis=0)
            recipe_curve = np.nanmedian(truth[peers], axis=0)
        learn = cell_of_point != cell
        train_models = set(model_ids[cells != cell])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            regressor = lgbm(params, seed).fit(X_points[learn], y_points[learn])
            log_values = regressor.predict(curve_rows(X[test], read_at)).reshape(len(test), len(read_at))
        projector = Projector(read_at, fits.shapes(metric, float(steps.max()), train_models))
        served = project_curves(log_values[None], np.zeros((1, len(read_at))), projector, [metric])
        predicted = served.at(steps)[metric].values  # (n, T)
        scored = np.isfinite(truth[test]) & np.isfinite(design_curve)[None] & np.isfinite(recipe_curve)[None]
        parts = by_recipe.setdefault(label, {"model": [], "design": [], "recipe": [], "cells": []})
        parts["cells"].append(str(model_ids[test[0]]))
        for name, values in (("model", predicted), ("design", design_curve[None]), ("recipe", recipe_curve[None])):
            parts[name].append(abs_log_ratio(np.broadcast_to(values, truth[test].shape)[scored], truth[test][scored]))

    def summary(parts: dict[str, list]) -> dict:
        medians = {k: float(np.median(np.concatenate(parts[k]))) for k in ("model", "design", "recipe")}
        return {"median_abs_log_ratio": medians["model"], "baseline_design_curve": medians["design"],
                "baseline_recipe_curve": medians["recipe"], "cells": len(parts["cells"]),
                "points": int(sum(len(p) for p in parts["model"]))}  # fmt: skip

    if not by_recipe:
        return {"metric": metric, "cells": 0}
    pooled = {k: [p for parts in by_recipe.values() for p in parts[k]] for k in ("model", "design", "recipe", "cells")}
    return {"metric": metric, **summary(pooled), "by_recipe": {label: summary(p) for label, p in by_recipe.items()}}
