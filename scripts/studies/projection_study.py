"""Where to read a curve regressor, and whether to correct its emergence curve: held-out curve error per choice.

    .venv/bin/python scripts/studies/projection_study.py [--metric ma_ratio] [--tier-dir data/zoo/cpu2]

Grouped CV by design, as training.curve_error.curve_error, with the served model's hyperparameters; the regressors
are fitted once per fold and read at every measured step, then each choice of reference steps is projected
(emergence.curve.project) and scored bare and corrected (emergence.curve.Correction), without the scale term.
Prints the median |log(predicted / measured)| over every held-out checkpoint, and the error step by step.
"""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path

import numpy as np

from emergence.curve import Projector, curve_rows, evaluate, projection_steps
from emergence.path import project_curves
from modelstore import read_manifest, resolve
from training.dataset import DESIGN, build, curve_data, feature_array, load_configs, load_measured, measured_by_step
from training.fit import FitWarning, curve_shapes, fit_table
from training.mechanism import mechanism_targets
from training.tune import grouped_folds, lgbm

REPO = Path(__file__).resolve().parents[2]


def nearest(steps: np.ndarray, targets) -> np.ndarray:
    return steps[np.unique(np.abs(steps[None, :] - np.asarray(targets)[:, None]).argmin(axis=1))]


def earlier_rule(steps: np.ndarray, count: int = 11) -> np.ndarray:
    """The reference steps before 2026-12-02: every step of the first 5 %, the rest evenly to the last."""
    early, late = steps[steps <= steps[-1] / 20], steps[steps > steps[-1] / 20]
    keep = np.unique(np.linspace(0, len(late) - 1, max(2, count - len(early))).round().astype(int))
    return np.concatenate([early, late[keep]])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--metric", default="ma_ratio")
    p.add_argument("--tier-dir", type=Path, default=REPO / "data" / "zoo" / "cpu2")
    args = p.parse_args()
    manifest = read_manifest(resolve(REPO / "models"))
    params = next(t.params for t in manifest.targets if t.name == f"{args.metric}__curve")
    measured = load_measured(args.tier_dir, None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitWarning)
        fits = fit_table(measured.metrics, (args.metric,))
    configs = load_configs(measured.configs_dirs)
    table = build(measured.metrics["model_id"], configs, mechanism_targets(measured.metrics))
    data, rows = curve_data(table, measured.metrics, args.metric), table.reset_index(drop=True)
    steps, truth = measured_by_step(rows, measured.metrics, args.metric)
    X, designs, models = feature_array(rows), rows[DESIGN].to_numpy(), rows["model_id"].to_numpy()
    folds = []  # (test rows, log values at every measured step, the fold's shapes)
    for train, test in grouped_folds(designs):
        learn = np.isin(data.groups, list(set(designs[train])))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            regressor = lgbm(params, 0).fit(data.X[learn], data.y[learn])
            logs = regressor.predict(curve_rows(X[test], steps)).reshape(len(test), len(steps))
        folds.append((test, logs, curve_shapes(fits, args.metric, float(steps.max()), set(models[train]))))

    metric = args.metric

    def errors(read_at: np.ndarray | None, corrected: bool) -> np.ndarray:
        out = []
        for test, logs, shapes in folds:
            if read_at is None:  # the regressor itself
                predicted = np.exp(logs)
            else:
                at = np.searchsorted(steps, read_at)
                projected = project_curves(
                    logs[None, :, at], np.zeros((1, len(at))), Projector(read_at, shapes), [metric]
                )
                if corrected:  # as served (emergence.path), without the scale term
                    predicted = projected.at(steps)[metric].values
                else:
                    predicted = evaluate(projected.params[metric], steps, metric).values
            with np.errstate(all="ignore"):
                out.append(np.abs(np.log(predicted / truth[test])))
        return np.vstack(out)

    choices = {
        "11 evenly in log(1 + step) (served)": projection_steps(steps, 11),
        "9 evenly in log(1 + step)": projection_steps(steps, 9),
        "13 evenly in log(1 + step)": projection_steps(steps, 13),
        "11 evenly in sqrt(step)": nearest(steps, np.linspace(0, np.sqrt(steps[-1]), 11) ** 2),
        "11 by the earlier rule": earlier_rule(steps),
    }
    direct = errors(None, False)
    print(f"{args.metric}: {len(rows)} held-out layers, {np.isfinite(truth).sum()} checkpoints")
    print(f"  the regressor read at every measured step: {np.nanmedian(direct):.4f}")
    table_rows = {}
    for name, read_at in choices.items():
        bare, corrected = errors(read_at, False), errors(read_at, True)
        table_rows[name] = (bare, corrected)
        print(f"  {name:38s} bare {np.nanmedian(bare):.4f}  corrected {np.nanmedian(corrected):.4f}  "
              f"at {json.dumps([int(s) for s in read_at])}")  # fmt: skip
    bare, corrected = table_rows["11 evenly in log(1 + step) (served)"]
    print("  step by step (served reference steps): regressor / bare / corrected")
    for j in [j for j in range(len(steps)) if j < 10 or j % 5 == 0 or j == len(steps) - 1]:
        print(f"    step {steps[j]:6.0f}  {np.nanmedian(direct[:, j]):.3f} / {np.nanmedian(bare[:, j]):.3f} / "
              f"{np.nanmedian(corrected[:, j]):.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
