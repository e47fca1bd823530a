"""`archcast retrain`: fit → data set → tune → evaluate → export → compare with the champion → promote.

Every stage writes its output under the work folder and is skipped when that
output exists, so an interrupted retrain resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from rich.console import Console

import features.curve
import training.fit
import training.tune
from features import FEATURES
from features.curve import PARAMS
from training.dataset import build, data_hash, load_configs, target_name
from training.evaluate import curve_error, evaluate_target, write_report
from training.export import current_version, promote, write_version
from training.fit import DEFAULT_METRICS, FitWarning, fit_table
from training.tune import cv_predictions, grouped_folds, lgbm, r2, tune

REPO = Path(__file__).resolve().parents[1]
DEFAULTS = {
    "metrics": REPO / "data" / "zoo" / "metrics.parquet",
    "configs": REPO / "data" / "zoo" / "configs",
    "models": REPO / "models",
}


@dataclass(frozen=True)
class RetrainResult:
    version: str
    promoted: bool
    challenger_score: float
    champion_score: float | None
    folder: Path


def _cached_json(path: Path, compute):
    if path.exists():
        return json.loads(path.read_text())
    value = compute()
    path.write_text(json.dumps(value, indent=2, default=float))
    return value


def fit_summary(fits: pd.DataFrame) -> dict:
    out = {}
    for metric, sub in fits.groupby("metric"):
        ok = sub["r2"].notna()
        out[metric] = {
            "mean_r2": float(sub.loc[ok, "r2"].mean()),
            "median_r2": float(sub.loc[ok, "r2"].median()),
            "n": int(len(sub)),
            "fitted": int(ok.sum()),
            "converged": int(sub["converged"].sum()),
        }
    return out


def grouped_r2(table: pd.DataFrame, best: dict[str, dict], seed: int) -> float:
    """Mean grouped-CV R² over all targets for a set of per-target hyperparameters."""
    scores = []
    for target, params in best.items():
        rows = table[target].notna().to_numpy()
        X, y = table.loc[rows, list(FEATURES)].to_numpy(np.float32), table.loc[rows, target].to_numpy()
        groups = table.loc[rows, "model_id"].to_numpy()
        pred = cv_predictions(lambda p=params: lgbm(p, seed), X, y, grouped_folds(groups))
        scores.append(r2(y, pred))
    return float(np.nanmean(scores))


def should_promote(
    challenger_r2: float,
    champion_r2: float | None,
    challenger_curves: dict[str, float],
    champion_curves: dict[str, float] | None,
    force: bool = False,
) -> tuple[bool, str]:
    """Promote a challenger only if it beats the champion on the same data in grouped-CV mean R² over
    the parameter targets *and* predicts no metric's held-out curves worse (median |log ratio|):
    parameters can score better while the curves users see get worse, the curve is ill-conditioned."""
    if force:
        return True, "forced"
    if champion_r2 is None or champion_curves is None:
        return True, "no comparable champion"
    if not challenger_r2 > champion_r2:
        return False, f"mean R² {challenger_r2:.4f} does not beat {champion_r2:.4f}"
    worse = [
        f"{m} {challenger_curves[m]:.3f} > {champion_curves[m]:.3f}"
        for m in champion_curves
        if not challenger_curves.get(m, float("inf")) <= champion_curves[m]
    ]
    if worse:
        return False, "held-out curves worse: " + ", ".join(worse)
    return True, "better mean R² and no held-out curve worse"


def fits_key(metrics_path: Path, metrics_names) -> str:
    """Resume key of the fits: the metrics file, the metrics fitted and the fitting code. A rerun after
    any of them changed refits instead of reusing stale fits."""
    digest = hashlib.sha256(Path(metrics_path).read_bytes())
    for module in (training.fit, features.curve):
        digest.update(Path(module.__file__).read_bytes())
    digest.update(",".join(metrics_names).encode())
    return digest.hexdigest()[:12]


def tuning_key(data_digest: str, n_trials: int, seed: int) -> str:
    """Resume key of the tuned hyperparameters: the data, the budget, the seed and the tuning code."""
    digest = hashlib.sha256(f"{data_digest}:{n_trials}:{seed}".encode())
    digest.update(Path(training.tune.__file__).read_bytes())
    return digest.hexdigest()[:12]


def retrain(
    metrics_path: Path = DEFAULTS["metrics"],
    configs_dir: Path = DEFAULTS["configs"],
    models_dir: Path = DEFAULTS["models"],
    work: Path = Path("runs/retrain"),
    n_trials: int = 40,
    seed: int = 0,
    storage: str | None = None,
    force: bool = False,
    metrics_names=DEFAULT_METRICS,
    console: Console | None = None,
) -> RetrainResult:
    console = console or Console(stderr=True)
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    metrics = pd.read_parquet(metrics_path)
    fits_path = work / f"fits-{fits_key(metrics_path, metrics_names)}.parquet"
    if not fits_path.exists():
        console.print(f"[bold]fit[/] {metrics_path}")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FitWarning)
            fit_table(metrics, metrics_names).to_parquet(fits_path, index=False)
    fits = pd.read_parquet(fits_path)
    table = build(fits, load_configs(configs_dir), metrics_names)
    digest = data_hash(table)
    table.to_parquet(work / "dataset.parquet", index=False)
    storage = storage or f"sqlite:///{(work / 'optuna.db').resolve()}"
    tuning = tuning_key(digest, n_trials, seed)

    best: dict[str, dict] = {}
    for metric in metrics_names:
        for param in PARAMS:
            name = target_name(metric, param)
            rows = table[name].notna().to_numpy()
            X, y = table.loc[rows, list(FEATURES)].to_numpy(np.float32), table.loc[rows, name].to_numpy()
            groups = table.loc[rows, "model_id"].to_numpy()
            console.print(f"[bold]tune[/] {name}: {rows.sum()} layers of {len(set(groups))} models")
            cache = work / f"tuned-{tuning}-{name}.json"
            if not cache.exists():
                tuned = tune(name, X, y, groups, n_trials, storage, seed, study_prefix=f"{tuning}-{time.time_ns()}")
                cache.write_text(json.dumps(tuned.__dict__, indent=2))
            tuned = json.loads(cache.read_text())
            best[name] = tuned["params"]
    # The version names the data and the hyperparameters: a retrain that tunes differently on the same data
    # the same day is a different model and must not overwrite the folder of the one it is compared with.
    hyper = hashlib.sha256(json.dumps(best, sort_keys=True).encode()).hexdigest()[:6]
    version = time.strftime("%Y%m%d") + f"-{digest[:8]}-{hyper}-s{seed}"

    def evaluate_all():
        out = {}
        for name in best:
            rows = table[name].notna().to_numpy()
            X, y = table.loc[rows, list(FEATURES)].to_numpy(np.float32), table.loc[rows, name].to_numpy()
            out[name] = {
                "n": int(rows.sum()),
                "scores": evaluate_target(X, y, table.loc[rows, "model_id"].to_numpy(), best[name], seed),
            }
        return out

    console.print("[bold]evaluate[/] grouped CV against baselines")
    evaluation = _cached_json(work / f"evaluation-{digest[:8]}-{hyper}.json", evaluate_all)
    curves = [curve_error(table, metrics, m, best, seed) for m in metrics_names]
    summary = fit_summary(fits)
    write_report(work, evaluation, summary, curves)

    challenger = grouped_r2(table, best, seed)
    challenger_curves = {c["metric"]: c["median_abs_log_ratio"] for c in curves}
    champion_version = current_version(models_dir)
    champion, champion_curves = None, None
    if champion_version and (models_dir / champion_version / "manifest.json").exists():
        manifest = json.loads((models_dir / champion_version / "manifest.json").read_text())
        champion_params = {t["name"]: t["params"] for t in manifest["targets"]}
        if set(champion_params) == set(best):
            champion = grouped_r2(table, champion_params, seed)
            champion_curves = {
                m: curve_error(table, metrics, m, champion_params, seed)["median_abs_log_ratio"] for m in metrics_names
            }
    promote_it, reason = should_promote(challenger, champion, challenger_curves, champion_curves, force)
    console.print(
        f"challenger grouped-CV mean R² {challenger:.4f}; champion "
        f"{'none' if champion is None else f'{champion:.4f}'} → {'promote' if promote_it else 'keep champion'}"
        f" ({reason})"
    )

    candidate = work / "candidate" / version
    provenance_file = Path(metrics_path).parent / "PROVENANCE.json"
    info = {
        "cv_scores": {k: v["scores"] for k, v in evaluation.items()},
        "cv_mean_r2": challenger,
        "fit_summary": summary,
        "curve_error": curves,
        "data_hash": digest,
        "data_provenance": str(provenance_file.relative_to(REPO))
        if provenance_file.is_relative_to(REPO)
        else str(provenance_file),
        "default_steps": sorted(int(s) for s in metrics["step"].unique()),
        "n_trials": n_trials,
    }
    write_version(candidate, table, best, list(metrics_names), info, seed)
    (candidate / "report.md").write_text((work / "report.md").read_text())
    if promote_it:
        promote(candidate, models_dir)
        console.print(f"[green]promoted[/] {version} → {models_dir / version}")
    return RetrainResult(version, promote_it, challenger, champion, candidate)
