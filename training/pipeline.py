"""`archcast retrain` in stages: fit → data set → tune → evaluate → export → decide (→ promote).

Each stage is a function with a typed input and output. Stages that cost minutes write their output under
the work folder, keyed on everything they depend on, so an interrupted retrain resumes where it stopped and
a changed input is never served from a stale cache.
"""

from __future__ import annotations

import hashlib
import json
import time
import warnings
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
from rich.console import Console

import emergence.curve
import training.fit
import training.solvers
import training.tune
from emergence.curve import projection_steps
from features.recipe import Recipe
from modelstore import CARD, current_version, promote, read_manifest, same_files
from training.curve_error import curve_error
from training.dataset import (
    CURVE,
    MeasuredData,
    TargetData,
    build,
    curve_data,
    curve_target,
    data_hash,
    layer_targets,
    load_configs,
    load_measured,
    reference_recipe_rows,
    target_data,
    target_parts,
)
from training.expected import record_expected
from training.export import reference_configs, write_version
from training.fit import DEFAULT_METRICS, FitWarning, curve_shapes, fit_table
from training.heldout_fits import HeldOutFits
from training.mechanism import mechanism_targets
from training.model_card import model_card
from training.onset_error import ONSET_DESIGNS, mechanism_error
from training.real_check import real_model_check
from training.recipe_error import recipe_error
from training.report import write_report
from training.scale import axis_slopes
from training.scores import OURS, evaluate_curve_target, evaluate_target
from training.stability import seed_figures, stability
from training.tune import tune

REPO = Path(__file__).resolve().parents[1]
DEFAULTS = {
    "metrics": REPO / "data" / "zoo" / "cpu2",  # the tier where the BOS mechanism forms
    "models": REPO / "models",
}


# A curve regressor is evaluated at every projection step of every layer of a request, so its size is its
# latency: capped at 60 trees (on cpu2, 60 trees scored the held-out ma_ratio curves like 277: 0.199 / 0.199).
CURVE_MAX_TREES = 60


@dataclass(frozen=True)
class RetrainConfig:
    """Everything a retrain depends on besides the code."""

    metrics: Path | tuple[Path, ...] = DEFAULTS["metrics"]  # metrics.parquet files or zoo tier folders, one or more
    configs: Path | None = None  # <model_id>.json for every model (default: configs/ beside the metrics)
    models: Path = DEFAULTS["models"]  # the model store the challenger is compared with and promoted into
    work: Path = Path("runs/retrain")
    n_trials: int = 40  # Optuna trials per target
    seed: int = 0
    seeds: int = 3  # LightGBM seeds (seed, seed + 1, …) every held-out and real-model figure is evaluated under
    storage: str | None = None  # Optuna RDB URL; default: SQLite in the work folder
    worker: int = 0  # processes sharing one storage give themselves different numbers
    force: bool = False
    metric_names: tuple[str, ...] = DEFAULT_METRICS


@dataclass(frozen=True)
class DataSet:
    metrics: pd.DataFrame  # the measured series (for curve-level scores)
    fits: pd.DataFrame
    configs: dict[str, dict]
    table: pd.DataFrame  # one row per (model, layer): features and the mechanism targets
    targets: dict[str, TargetData]  # every target's rows: curve regressors' per checkpoint, the rest per layer
    digest: str  # of the data every target learns from
    provenance: Path  # how the series were measured
    recipe: dict  # the reference recipe (what a step means by default)
    recipes: dict = field(default_factory=dict)  # model_id → its Recipe, where the runs' recipes differ
    reference: Recipe | None = None  # `recipe` as a Recipe, where the runs' recipes differ (load_measured's choice)
    heldout: HeldOutFits | None = None  # the fits a held-out fold may read: its training side's alone


@dataclass(frozen=True)
class Evaluation:
    scores: dict  # target → {"n", "scores": {model: {"r2", "mae"}}}
    curves: list[dict]  # per metric: held-out curve error beside the model-free baseline, and its 80 % band
    cv_mean_r2: float
    mechanism: dict = field(default_factory=dict)  # where the BOS mechanism forms, on held-out models
    recipes: list[dict] = field(default_factory=list)  # per metric: held-out recipe variants (training.recipe_error)
    seed: int = 0  # the LightGBM seed of every regressor behind these figures

    @property
    def curve_errors(self) -> dict[str, float]:
        return {c["metric"]: c["median_abs_log_ratio"] for c in self.curves}

    @property
    def recipe_errors(self) -> dict[str, float]:
        return {r["metric"]: r["median_abs_log_ratio"] for r in self.recipes if r.get("cells")}


def mean_of(values: list[dict[str, float]]) -> dict[str, float]:
    """Key by key, the mean over seeds (the keys every seed has)."""
    keys = set.intersection(*(set(v) for v in values)) if values else set()
    return {k: float(np.mean([v[k] for v in values])) for k in sorted(keys)}


@dataclass(frozen=True)
class Decision:
    promote: bool
    reason: str
    champion_score: float | None = None
    champion_params: dict[str, dict] | None = None  # its hyperparameters, where comparable
    champion_data: str | None = None  # the data hash it was trained on
    champion_evaluations: list[Evaluation] | None = None  # its hyperparameters on the challenger's data, per seed


@dataclass(frozen=True)
class RetrainResult:
    version: str
    promoted: bool
    challenger_score: float
    champion_score: float | None
    folder: Path
    reason: str = ""
    evaluation: Evaluation | None = field(default=None, repr=False)


def _digest(*parts: bytes | str) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part if isinstance(part, bytes) else part.encode())
    return h.hexdigest()[:12]


def fits_key(metrics_digest: str, metric_names) -> str:
    """Resume key of the fits: the measured series, the metrics fitted and the fitting code."""
    code = [Path(m.__file__).read_bytes() for m in (training.fit, training.solvers, emergence.curve)]
    return _digest(metrics_digest, *code, ",".join(metric_names))


def tuning_key(data_digest: str, n_trials: int, seed: int) -> str:
    """Names the Optuna studies and the tuned cache: the data, the budget, the seed and the tuning code. The
    same inputs give the same study names, so a rerun or a second worker on shared storage joins the study."""
    return _digest(f"{data_digest}:{n_trials}:{seed}:{CURVE_MAX_TREES}", Path(training.tune.__file__).read_bytes())


def fit_stage(config: RetrainConfig, console: Console) -> tuple[MeasuredData, pd.DataFrame]:
    """(measured, fits): every (model, layer, metric) series fitted to the emergence curve."""
    measured = load_measured(config.metrics, config.configs)
    path = config.work / f"fits-{fits_key(measured.digest, config.metric_names)}.parquet"
    if not path.exists():
        console.print(f"[bold]fit[/] {config.metrics}")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FitWarning)
            fit_table(measured.metrics, config.metric_names).to_parquet(path, index=False)
    return measured, pd.read_parquet(path)


def dataset_stage(config: RetrainConfig, measured: MeasuredData, fits: pd.DataFrame) -> DataSet:
    configs = load_configs(measured.configs_dirs)
    table = build(measured.metrics["model_id"], configs, mechanism_targets(measured.metrics), measured.recipes,
                  measured.reference)  # fmt: skip
    table.to_parquet(config.work / "dataset.parquet", index=False)
    targets = {curve_target(m): curve_data(table, measured.metrics, m) for m in config.metric_names}
    targets |= {name: target_data(table, name) for name in layer_targets(table)}
    digest = _digest(data_hash(table), measured.digest)
    heldout = HeldOutFits(measured.metrics, config.metric_names, config.work,
                          fits_key(measured.digest, config.metric_names))  # fmt: skip
    return DataSet(measured.metrics, fits, configs, table, targets, digest, measured.provenance, measured.recipe,
                   measured.recipes, measured.reference, heldout)  # fmt: skip


def tune_stage(config: RetrainConfig, data: DataSet, console: Console) -> dict[str, dict]:
    """Per target, the LightGBM hyperparameters with the best grouped-CV error."""
    storage = config.storage or f"sqlite:///{(config.work / 'optuna.db').resolve()}"
    key = tuning_key(data.digest, config.n_trials, config.seed)
    best = {}
    for name, target in data.targets.items():
        console.print(f"[bold]tune[/] {name}: {len(target.y)} rows of {len(set(target.groups))} architectures")
        cache = config.work / f"tuned-{key}-{name}.json"
        if not cache.exists():
            curve = target_parts(name)[1] == CURVE
            tuned = tune(name, target.X, target.y, target.groups, config.n_trials, storage, config.seed,
                         study_prefix=key, worker=config.worker, loss="median_abs" if curve else "mse",
                         max_trees=CURVE_MAX_TREES if curve else 400)  # fmt: skip
            cache.write_text(json.dumps(tuned.__dict__, indent=2))
        best[name] = json.loads(cache.read_text())["params"]
    return best


def hyper_hash(best: dict[str, dict]) -> str:
    return hashlib.sha256(json.dumps(best, sort_keys=True).encode()).hexdigest()[:6]


def version_name(data: DataSet, best: dict[str, dict], seed: int) -> str:
    """The version names the data and the hyperparameters: a differently tuned model on the same data the same
    day is a different model and must not take the name of the one it is compared with."""
    return time.strftime("%Y%m%d") + f"-{data.digest[:8]}-{hyper_hash(best)}-s{seed}"


def unused_version(name: str, models_dir: Path) -> str:
    """`name`, or the first of `name-r2`, `-r3`, … not yet in models_dir: a different export of the same data and
    hyperparameters the same day (new evaluation code, a new field in the manifest) is a new version, and a
    served folder is never rewritten."""
    taken, revision = name, 1
    while (models_dir / taken).exists():
        revision += 1
        taken = f"{name}-r{revision}"
    return taken


# What a held-out evaluation computes with: a change in any of these packages is a new evaluation, never one
# read from the cache of the old code
EVALUATED_BY = ("training", "emergence", "features")


def code_digest(packages=EVALUATED_BY, root: Path = REPO) -> str:
    """Of the source files of `packages` under `root` (their *.py, in order of path)."""
    h = hashlib.sha256()
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            h.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:12]


def evaluation_key(data: DataSet, best: dict[str, dict], seed: int) -> str:
    """Names a cached evaluation: the data, the hyperparameters, the seed and the code that evaluates."""
    return f"{data.digest[:8]}-{hyper_hash(best)}-s{seed}-{code_digest()}"


def evaluate_stage(
    config: RetrainConfig, data: DataSet, best: dict[str, dict], console: Console, seed: int
) -> Evaluation:
    """Grouped-CV scores, held-out curve errors, onset scores and held-out recipe variants of `best` on `data`,
    every regressor trained under LightGBM seed `seed`; cached in the work folder (evaluation_key)."""
    cache = config.work / f"evaluation-{evaluation_key(data, best, seed)}.json"
    if cache.exists():
        return Evaluation(**json.loads(cache.read_text()))
    console.print(f"[bold]evaluate[/] grouped CV against baselines (seed {seed})")
    scores = {}
    for name, params in best.items():
        target = data.targets[name]
        score = evaluate_curve_target if target_parts(name)[1] == CURVE else evaluate_target
        scores[name] = {"n": len(target.y), "scores": score(target.X, target.y, target.groups, params, seed)}
    curves = [
        curve_error(data.table, data.metrics, data.heldout, m, best[curve_target(m)], seed, reference_steps(data))
        for m in config.metric_names
    ]
    mechanism = mechanism_error(data.table, best, seed)
    recipes = []
    if data.recipes:  # the runs' recipes differ: each variant's cells held out against recipe-aware baselines
        console.print(f"[bold]evaluate[/] held-out recipe variants (seed {seed})")
        recipes = [
            recipe_error(
                data.table,
                data.metrics,
                data.heldout,
                m,
                best[curve_target(m)],
                data.recipes,
                data.reference,
                reference_steps(data),
                seed,
            )  # fmt: skip
            for m in config.metric_names
        ]
    cv_mean_r2 = float(np.nanmean([scores[name]["scores"][OURS]["r2"] for name in best]))
    evaluation = Evaluation(scores, curves, cv_mean_r2, mechanism, recipes, seed)
    cache.write_text(json.dumps(asdict(evaluation), indent=1, default=float))
    return evaluation


def seeds_of(config: RetrainConfig) -> list[int]:
    return [config.seed + k for k in range(max(1, config.seeds))]


def evaluate_seeds(config: RetrainConfig, data: DataSet, best: dict[str, dict], console: Console) -> list[Evaluation]:
    """evaluate_stage under every seed of the config, the first seed's (the served files') first."""
    return [evaluate_stage(config, data, best, console, seed) for seed in seeds_of(config)]


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


def reference_steps(data: DataSet) -> np.ndarray:
    """The steps the curve regressors are read at (emergence.curve.projection_steps): one list for scoring, the
    scale term and the export alike."""
    return projection_steps(sorted(int(s) for s in data.metrics["step"].unique()))


def reference_steps_measured(data: DataSet) -> list[int]:
    """The checkpoints of the runs trained with the reference recipe: a request's steps by default."""
    models = reference_recipe_rows(data.table)["model_id"].unique()
    return sorted(int(s) for s in data.metrics.loc[data.metrics["model_id"].isin(models), "step"].unique())


def recipe_ranges(recipes: dict[str, Recipe]) -> dict[str, list]:
    """Per recipe field, the smallest and largest value the runs were trained with (a request outside is warned)."""
    values = [r.to_json() for r in recipes.values()]
    return {k: [min(v[k] for v in values), max(v[k] for v in values)] for k in values[0]} if values else {}


def scale_slopes(data: DataSet, curves: list[dict]) -> dict[str, dict[str, dict]]:
    """metric → axis → the scale term's slope at the projection steps (training.scale), with its held-out test
    and the decision curve_error made on it (`extrapolated`: served unless the models held out past their
    fold's range on that axis were predicted worse with it than without; untested where none lay past it)."""
    read_at = reference_steps(data)
    out = {}
    for c in curves:
        slopes = axis_slopes(data.table, data.metrics, c["metric"], read_at)
        out[c["metric"]] = {}
        for axis, s in slopes.items():
            test = c.get("extrapolated", {}).get(axis)
            applied = test is None or test["applied"]
            out[c["metric"]][axis] = replace(s, applied=applied, heldout=test).to_json()
    return out


def export_new_version(
    config: RetrainConfig, data: DataSet, best: dict[str, dict], evaluations: list[Evaluation]
) -> Path:
    """The challenger under its version name, or, where models/ already holds a different model of that name (the
    same data and hyperparameters exported the same day by other code), under the next free revision. A rerun
    that gives the same files keeps the name. `evaluations`: one per seed, the served files' seed first."""
    others = [seed_real_check(config, data, best, e) for e in evaluations[1:]]
    candidate = export_stage(config, data, best, evaluations, others, version_name(data, best, config.seed))
    served = config.models / candidate.name
    if served.exists() and not same_files(served, candidate):
        name = unused_version(candidate.name, config.models)
        candidate = export_stage(config, data, best, evaluations, others, name)
    return candidate


def seed_real_check(config: RetrainConfig, data: DataSet, best: dict[str, dict], evaluation: Evaluation) -> dict:
    """The real-model check of `best` trained under another seed: exported to the work folder (never served)."""
    seed = evaluation.seed
    work = config.work / "seeds" / f"s{seed}"
    work.mkdir(parents=True, exist_ok=True)
    folder = export_stage(replace(config, seed=seed, work=work), data, best, [evaluation], [], f"seed-{seed}")
    return read_manifest(folder).info.get("real_model_check", {})


def export_stage(
    config: RetrainConfig,
    data: DataSet,
    best: dict[str, dict],
    evaluations: list[Evaluation],
    other_real_checks: list[dict],
    name: str,
) -> Path:
    """The challenger as the version folder work/candidate/<name>, with its manifest, card and report: trained
    under the first evaluation's seed; every evaluation's figures (and `other_real_checks`, those of the others'
    seeds) in its seed-stability table."""
    evaluation = evaluations[0]
    summary = fit_summary(data.fits)
    write_report(config.work, evaluation.scores, summary, evaluation.curves, evaluation.mechanism)
    candidate = config.work / "candidate" / name
    last_step = float(data.metrics["step"].max())
    provenance = data.provenance
    info = {
        "cv_scores": {k: v["scores"] for k, v in evaluation.scores.items()},
        "cv_mean_r2": evaluation.cv_mean_r2,
        "fit_summary": summary,
        "curve_error": [{k: v for k, v in c.items() if k != "interval"} for c in evaluation.curves],
        "intervals": {c["metric"]: c["interval"] for c in evaluation.curves},
        "mechanism_error": evaluation.mechanism,
        **({"recipe_error": evaluation.recipes} if evaluation.recipes else {}),
        "recipe": data.recipe,
        "shapes": {m: curve_shapes(data.fits, m, last_step).tolist() for m in config.metric_names},
        "scale": scale_slopes(data, evaluation.curves),
        "data_hash": data.digest,
        "data_provenance": str(provenance.relative_to(REPO)) if provenance.is_relative_to(REPO) else str(provenance),
        "default_steps": reference_steps_measured(data),
        "recipe_ranges": recipe_ranges(data.recipes),
        "projection_steps": reference_steps(data).tolist(),
        "n_trials": config.n_trials,
    }
    references = reference_configs(data.table, data.configs)
    manifest = write_version(
        candidate, data.table, data.targets, best, list(config.metric_names), info, config.seed, references
    )
    # what the exported files answer, so that another machine's libraries cannot serve other numbers unseen
    manifest = record_expected(candidate, manifest)
    real = real_model_check(candidate)
    extra = {"real_model_check": real} if real else {}
    if len(evaluations) > 1:
        checks = [real, *other_real_checks]
        per_seed = [
            seed_figures(e.curves, e.mechanism, e.recipes, e.cv_mean_r2, check)
            for e, check in zip(evaluations, checks, strict=True)
        ]
        extra["seed_stability"] = stability([e.seed for e in evaluations], per_seed)
    if extra:  # the exported files themselves are checked against the real models, then the card says how
        manifest = replace(manifest, info={**manifest.info, **extra})
        manifest.write(candidate)
        (candidate / CARD).write_text(model_card(manifest.to_json()))
    (candidate / "report.md").write_text((config.work / "report.md").read_text())
    return candidate


def should_promote(
    challenger_r2: float,
    champion_r2: float | None,
    challenger_curves: dict[str, float],
    champion_curves: dict[str, float] | None,
    force: bool = False,
    *,
    challenger_onset: float | None = None,
    champion_onset: float | None = None,
    challenger_recipes: dict[str, float] | None = None,
    champion_recipes: dict[str, float] | None = None,
) -> tuple[bool, str]:
    """Promote a challenger only if it beats the champion on the same data in grouped-CV mean R² over
    the parameter targets *and* predicts no metric's held-out curves worse (median |log ratio|) *and*, where
    both give one, places the BOS onset layer exactly in no smaller share of held-out designs *and* predicts no
    metric's held-out recipe variants worse: parameters can score better while the curves users see get worse
    (the curve is ill-conditioned), and the margin regressor's R² can rise while the onset it is read for gets
    worse (on 133 cpu2 runs: 80.0 % of designs against the champion's 81.5 %). The pipeline passes each figure's
    mean over the LightGBM seeds (RetrainConfig.seeds): one seed's score can flip from one retrain to the next."""
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
    if challenger_onset is not None and champion_onset is not None and not challenger_onset >= champion_onset:
        return False, f"onset layer exact in fewer held-out designs: {challenger_onset:.1%} < {champion_onset:.1%}"
    worse = [
        f"{m} {challenger_recipes[m]:.3f} > {champion_recipes[m]:.3f}"
        for m in (champion_recipes or {})
        if m in (challenger_recipes or {}) and not challenger_recipes[m] <= champion_recipes[m]
    ]
    if worse:
        return False, "held-out recipe variants worse: " + ", ".join(worse)
    return True, "better mean R² and no held-out curve, onset or recipe variant worse"


def seed_means(evaluations: list[Evaluation]) -> dict:
    """should_promote's figures of one set of hyperparameters: each the mean over the seeds' evaluations."""
    onsets = [e.mechanism[ONSET_DESIGNS] for e in evaluations if ONSET_DESIGNS in e.mechanism]
    return {
        "r2": float(np.mean([e.cv_mean_r2 for e in evaluations])),
        "curves": mean_of([e.curve_errors for e in evaluations]),
        "onset": float(np.mean(onsets)) if len(onsets) == len(evaluations) else None,
        "recipes": mean_of([e.recipe_errors for e in evaluations]) or None,
    }


def decide_stage(config: RetrainConfig, data: DataSet, evaluations: list[Evaluation], console: Console) -> Decision:
    """The champion's hyperparameters evaluated on the challenger's data under the same seeds, then
    should_promote on the means over the seeds."""
    champion, params, trained_on = None, None, None
    version = current_version(config.models)
    if version and (config.models / version / "manifest.json").exists():
        manifest = read_manifest(config.models / version)
        params = {t.name: t.params for t in manifest.targets}
        trained_on = manifest.info.get("data_hash")
        if set(params) != set(data.targets):
            params = None
        else:
            champion = evaluate_seeds(config, data, params, console)
    mine, theirs = seed_means(evaluations), seed_means(champion) if champion else None
    promote_it, reason = should_promote(
        mine["r2"], theirs and theirs["r2"], mine["curves"], theirs and theirs["curves"], config.force,
        challenger_onset=mine["onset"], champion_onset=theirs and theirs["onset"],
        challenger_recipes=mine["recipes"], champion_recipes=theirs and theirs["recipes"],
    )  # fmt: skip
    return Decision(promote_it, reason, theirs and theirs["r2"], params, trained_on, champion)


def retrain(config: RetrainConfig, console: Console | None = None) -> RetrainResult:
    console = console or Console(stderr=True)
    config.work.mkdir(parents=True, exist_ok=True)
    measured, fits = fit_stage(config, console)
    data = dataset_stage(config, measured, fits)
    best = tune_stage(config, data, console)
    evaluations = evaluate_seeds(config, data, best, console)
    candidate = export_new_version(config, data, best, evaluations)
    decision = decide_stage(config, data, evaluations, console)
    challenger = seed_means(evaluations)["r2"]
    champion = "none" if decision.champion_score is None else f"{decision.champion_score:.4f}"
    console.print(
        f"challenger grouped-CV mean R² {challenger:.4f} (mean over {len(evaluations)} seeds); champion {champion} "
        f"→ {'promote' if decision.promote else 'keep champion'} ({decision.reason})"
    )
    reason = decision.reason
    if not decision.promote and decision.champion_params and decision.champion_data != data.digest:
        # The champion's hyperparameters won on the new data, but the served files learnt from the old: serve
        # those hyperparameters trained on what is measured now, or new runs would never reach the service.
        console.print("[bold]refresh[/] the champion's hyperparameters, trained on the new data")
        evaluations = decision.champion_evaluations
        candidate = export_new_version(config, data, decision.champion_params, evaluations)
        decision = replace(decision, promote=True)
        reason += "; the champion's hyperparameters retrained on the new data are served instead"
    if decision.promote:
        promote(candidate, config.models)
        console.print(f"[green]promoted[/] {candidate.name} → {config.models / candidate.name}")
    return RetrainResult(
        candidate.name, decision.promote, challenger, decision.champion_score, candidate, reason, evaluations[0],
    )  # fmt: skip
