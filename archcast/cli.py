"""The `archcast` command. Each subcommand is a thin wrapper over the package that owns the work.

`zoo` and `extract` forward their arguments to `python -m zoo` / `python -m extraction`
(argparse there, so those packages run on a bare GPU image without typer); the
options are declared once, in those packages.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer
from rich.console import Console

app = typer.Typer(
    name="archcast",
    help="Predict massive-activation emergence and layer linearity from a transformer's config.",
    no_args_is_help=True,
    add_completion=False,
    # plain click help: typer's rich panels print `--help <bool>` and cut option names at 80 columns
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)
err = Console(stderr=True)


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"archcast {version('archcast')}")
        try:
            from service.predictor import Predictor

            typer.echo(f"served model {Predictor().version}")
        except Exception as exc:  # noqa: BLE001 — the version prints even where no model is served
            typer.echo(f"served model: none ({str(exc).splitlines()[0]})")
        raise typer.Exit()


@app.callback()
def _group(
    version: bool = typer.Option(
        False,
        "--version",
        callback=_print_version,
        is_eager=True,
        help="Print archcast's version and the served model's, and exit.",
    ),
) -> None:
    """Predict massive-activation emergence and layer linearity from a transformer's config."""


FORWARD = {"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []}


@app.command("features")
def features_cmd(
    config: Path = typer.Argument(..., metavar="CONFIG", help="A config.json file, or a folder holding one."),
    out: Path | None = typer.Option(None, "--out", help="Write the rows to .csv/.parquet instead of printing."),
) -> None:
    """Show the feature rows (one per layer) that the predictor sees for CONFIG.

    Example: archcast features tests/data/configs/pythia-160m.json
    """
    from features import featurize

    frame = featurize(config)
    if out is None:  # the features shared by every layer once, then the ones that vary as a narrow table
        varying = [c for c in frame.columns if frame[c].nunique() > 1]
        shared = frame.iloc[0].drop(varying)
        typer.echo(f"config-level features ({len(shared)}):")
        typer.echo(shared.to_string())
        typer.echo(f"\nper-layer features ({len(frame)} layers):")
        typer.echo(frame[varying].to_string(index=False))
    elif out.suffix == ".parquet":
        frame.to_parquet(out)
    else:
        frame.to_csv(out)


@app.command("extract", context_settings=FORWARD, add_help_option=False)
def extract_cmd(ctx: typer.Context) -> None:
    """Measure massive activations and linearity over checkpoint series (see --help)."""
    from extraction.__main__ import main as extraction_main

    raise typer.Exit(extraction_main(list(ctx.args)))


@app.command("measure")
def measure_cmd(
    source: str = typer.Argument(..., metavar="SOURCE", help="A checkpoint folder, a .gguf file or a hub model id."),
    out: Path = typer.Option(..., "--out", help="Folder for metrics.parquet, report.png and report.html."),
    probe: Path | None = typer.Option(None, "--probe", help="Probe text file (default: data/probe/probe.txt)."),
    n_seq: int = typer.Option(10, "--n-seq", min=1, help="Probe windows N."),
    seq_len: int = typer.Option(2048, "--seq-len", min=2, help="Tokens per window S, capped at the context."),
    batch_size: int = typer.Option(2, "--batch-size", min=1, help="Windows per forward pass."),
    dtype: str = typer.Option("auto", "--dtype", help="auto (float32 on every device), float32, bfloat16, float16."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:1 …"),
    threads: int = typer.Option(0, "--threads", min=0, help="Torch CPU threads (0: torch's default)."),
    model_id: str | None = typer.Option(None, "--model-id", help="Name recorded in the table (default: from SOURCE)."),
    attention: bool = typer.Option(
        False, "--attention", help="Also attn_bos_share per layer (attention.parquet per head); eager attention."
    ),
    interventions: bool = typer.Option(
        False, "--interventions", help="Also perplexity with the massive activations zeroed and set to their mean."
    ),
    ratio: float = typer.Option(
        100.0, "--intervention-ratio", min=1.0, help="An entry counts as massive at this many × its layer's median."
    ),
    per_layer: bool = typer.Option(
        True, "--per-layer/--no-per-layer", help="With --interventions: also each layer's zeroed alone (a pass each)."
    ),
    geometry: bool = typer.Option(
        False, "--geometry", help="Also anisotropy, intrinsic dimension and the most nonlinear tokens per layer."
    ),
) -> None:
    """Measure one model and write its metrics plus a one-page report (PNG and self-contained HTML).

    Example: archcast measure gemma-3-270m-q4_k_m.gguf --seq-len 256 --out out/gemma
    """
    import pandas as pd

    from archcast.measure_report import write_report
    from extraction.measure import Settings
    from extraction.outliers import outliers
    from extraction.probe import DEFAULT_PROBE
    from extraction.run import run
    from extraction.units import single_unit
    from features import ArchcastError

    probe = probe or DEFAULT_PROBE
    if not probe.is_file():
        raise ArchcastError("--probe", f"probe file {probe} does not exist")
    if threads:
        import torch

        torch.set_num_threads(threads)
    # extraction/ has no archcast dependencies (it runs on a bare GPU image): its input errors are ValueErrors
    try:
        unit = single_unit(source, model_id)
        settings = Settings(n_seq=n_seq, seq_len=seq_len, batch_size=batch_size, dtype=dtype, device=device,
                            dim_profile=True, attention=attention, geometry=geometry)  # fmt: skip
        settings.resolved_dtype()  # fail early on a bad --dtype
    except ValueError as exc:
        raise ArchcastError(None, str(exc)) from None
    summary = run([unit], probe, out, settings, console=err)
    if summary.failed:
        raise ArchcastError(source, f"could not be measured: {next(iter(summary.failed.values()))}")
    metrics = pd.read_parquet(out / "metrics.parquet")
    rows = metrics[metrics["model_id"] == unit.model_id]
    png, page, text = write_report(rows, out, f"{unit.model_id}")
    found = outliers(rows)
    (out / "outliers.json").write_text(json.dumps({"model_id": unit.model_id, **found}, indent=1))
    typer.echo(text)
    broken = rows[rows["nonfinite_values"] > 0]["layer"].tolist() if "nonfinite_values" in rows else []
    if broken:
        err.print(f"[yellow]layers {broken} hold non-finite activations (NaN or ±inf): their metrics are NaN[/]")
    counts = ", ".join(f"{sum(layer['over'][k] or 0 for layer in found['layers'])} over {k}"
                       for k in found["layers"][0]["over"])  # fmt: skip
    typer.echo(f"outlier channels (layer × channel): {counts} → {out / 'outliers.json'}")
    if attention:
        heads = [{"model_id": unit.model_id, "layer": int(r.layer), "head": h, "attn_bos_share": float(v)}
                 for r in rows.itertuples() for h, v in enumerate(r.attn_bos_share_heads)]  # fmt: skip
        pd.DataFrame(heads, columns=["model_id", "layer", "head", "attn_bos_share"]).to_parquet(
            out / "attention.parquet"
        )
        shares = rows["attn_bos_share"]
        if shares.notna().any():
            top = rows.loc[shares.idxmax()]
            typer.echo(f"attention on the first token: {shares.mean():.2f} over layers and heads, most in layer "
                       f"{int(top['layer'])} ({top['attn_bos_share']:.2f}) → {out / 'attention.parquet'}")  # fmt: skip
        else:
            typer.echo(f"attention on the first token: not measured ({rows['attn_note'].iloc[0]})")
    if geometry:
        _write_geometry(rows, out, unit.model_id)
    if interventions:
        _intervene(unit, probe, settings, rows, ratio, out, per_layer)
    typer.echo(f"report: {png} and {page}")


def _write_geometry(rows, out: Path, model_id: str) -> None:
    """nonlinear_tokens.json: per layer, the share of the linear fit's residual on its most nonlinear 1 % of
    tokens, and which tokens they are; the per-layer figures are metrics.parquet columns too."""
    layers = [
        {"layer": int(r.layer), "anisotropy": r.anisotropy, "intrinsic_dim": r.intrinsic_dim,
         "top1pct_residual_share": r.nonlin_top1pct_share,
         "tokens": [{"window": int(w), "position": int(p), "id": int(i), "text": t}
                    for (w, p), i, t in zip(r.nonlin_top_where, r.nonlin_top_token_ids, r.nonlin_top_tokens,
                                            strict=True)]}
        for r in rows.sort_values("layer").itertuples()
    ]  # fmt: skip
    rule = ("per layer, the least-squares fit of h_l on h_(l-1) over the probe tokens at positions >= 1 "
            "(column-centred, Frobenius-normalised, as linearity); each token's squared residual, and the share "
            "of their sum on the largest 1 %")  # fmt: skip
    (out / "nonlinear_tokens.json").write_text(
        json.dumps({"model_id": model_id, "rule": rule, "layers": layers}, indent=1, default=float)
    )
    share = rows["nonlin_top1pct_share"]
    typer.echo(
        f"geometry: anisotropy {rows['anisotropy'].min():.3f}–{rows['anisotropy'].max():.3f}, intrinsic dimension "
        f"{rows['intrinsic_dim'].min():.1f}–{rows['intrinsic_dim'].max():.1f}; the most nonlinear 1 % of tokens "
        f"carry {share.median():.0%} of a layer's residual (median) → {out / 'nonlinear_tokens.json'}"
    )


def _intervene(unit, probe: Path, settings, rows, ratio: float, out: Path, per_layer: bool) -> None:
    """interventions.json: perplexity with the massive activations left alone, zeroed and set to their mean."""
    from extraction.interventions import interventions
    from extraction.measure import load_with_windows

    model, windows, _, _ = load_with_windows(unit, probe, settings)
    medians = rows.sort_values("layer")["ma_median"].tolist()
    result = interventions(model, windows, medians, settings.batch_size, ratio, per_layer=per_layer)
    (out / "interventions.json").write_text(json.dumps({"model_id": unit.model_id, **result}, indent=1))
    ppl = {how: "overflow" if value is None else f"{value:.4g}" for how, value in result["perplexity"].items()}
    if "note" in result:
        typer.echo(f"interventions: {result['note']} (perplexity {ppl['none']})")
        return
    layers = [entry["layer"] for entry in result["layers"]]
    typer.echo(
        f"perplexity on the probe: {ppl['none']} as is, {ppl['zero']} with the massive activations "
        f"zeroed, {ppl['mean']} set to the other tokens' mean, {ppl['own_mean']} to their own mean "
        f"(layers {layers}) → {out / 'interventions.json'}"
    )


@app.command("zoo", context_settings=FORWARD, add_help_option=False)
def zoo_cmd(ctx: typer.Context) -> None:
    """Train the reference zoo: `archcast zoo run --tier smoke|cpu|gpu` (see --help)."""
    from zoo.__main__ import main as zoo_main

    raise typer.Exit(zoo_main(list(ctx.args)))


@app.command("fit")
def fit_cmd(
    metrics: Path = typer.Option(..., "--metrics", exists=True, dir_okay=False, help="metrics.parquet"),
    out: Path = typer.Option(..., "--out", help="fits.parquet to write"),
    plots: Path | None = typer.Option(None, "--plots", help="folder for data-vs-fit PNGs, one per model"),
    include_duplicates: bool = typer.Option(False, help="also fit units flagged as duplicate weights"),
    independent: bool = typer.Option(
        False, help="fit every series on its own, without the pull towards each metric's population curve"
    ),
    workers: int = typer.Option(1, "--workers", min=1, help="processes to fit in (same results for any number)"),
) -> None:
    """Fit the emergence curve to every (model, layer, metric) series.

    Example: archcast fit --metrics data/zoo/metrics.parquet --out fits.parquet --plots fit-plots/
    """
    import warnings

    import pandas as pd

    from emergence.curve import PUBLISHED_MEAN_R2
    from training.fit import FitWarning, fit_table
    from training.solvers import PRIOR_STRENGTH

    frame = pd.read_parquet(metrics)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitWarning)
        fits = fit_table(
            frame,
            include_duplicates=include_duplicates,
            prior_strength=None if independent else PRIOR_STRENGTH,
            workers=workers,
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    fits.to_parquet(out, index=False)
    ok = fits["r2"].notna()
    for metric, sub in fits[ok].groupby("metric"):
        typer.echo(
            f"{metric}: mean R² {sub['r2'].mean():.3f} over {len(sub)} layers "
            f"(published Pythia mean: {PUBLISHED_MEAN_R2})"
        )
    typer.echo(f"{int((~ok).sum())} series could not be fitted (see the 'message' column); wrote {out}")
    if fits["atypical"].any():
        typer.echo(
            f"{int(fits['atypical'].sum())} series needed a weaker pull towards their population "
            "('atypical' column); they are not used as regression targets"
        )
    if plots is not None:
        from training.plots import plot_fits

        for path in plot_fits(frame, fits, plots):
            typer.echo(f"plot {path}")


@app.command("retrain")
def retrain_cmd(
    metrics: list[Path] = typer.Option(
        None,
        "--metrics",
        help="metrics.parquet, or a zoo tier folder committed run by run (default: data/zoo/cpu2); give it more "
        "than once to learn from several tiers: where their recipes differ, the model reads the recipe",
    ),
    configs: Path = typer.Option(
        None, "--configs", help="folder of <model_id>.json configs (default: configs/ beside it)"
    ),
    models: Path = typer.Option(None, "--models", help="models folder (default: models/)"),
    work: Path = typer.Option(Path("runs/retrain"), "--work", help="work folder; a rerun resumes from it"),
    trials: int = typer.Option(40, "--trials", min=1, help="Optuna trials per target"),
    seed: int = typer.Option(0, "--seed", help="LightGBM seed of the served files (and the first evaluated)"),
    seeds: int = typer.Option(
        3,
        "--seeds",
        min=1,
        help="LightGBM seeds every held-out and real-model figure is evaluated under (from --seed "
        "on); the promotion rule compares their means",
    ),
    storage: str | None = typer.Option(None, "--storage", help="Optuna RDB URL (default: SQLite in --work)"),
    worker: int = typer.Option(0, "--worker", min=0, help="this process's number when several share --storage"),
    force: bool = typer.Option(False, "--force", help="promote even if the champion scores better"),
) -> None:
    """Fit → data set → tune → evaluate → export; promote the challenger if it beats the served champion.

    Example: archcast retrain --trials 40
    """
    from training.pipeline import DEFAULTS, RetrainConfig, retrain

    models = models or DEFAULTS["models"]
    rule = "promoted regardless (--force)" if force else "promoted only if it beats the served model"
    sources = tuple(metrics) if metrics else DEFAULTS["metrics"]
    shown = ", ".join(str(m) for m in metrics) if metrics else DEFAULTS["metrics"]
    err.print(f"retraining on {shown}; work files in {work}; the new version is written to "
              f"{models}/ and {rule}")  # fmt: skip
    config = RetrainConfig(
        metrics=sources, configs=configs, models=models, work=work,
        n_trials=trials, seed=seed, seeds=seeds, storage=storage, worker=worker, force=force,
    )  # fmt: skip
    result = retrain(config)
    typer.echo(
        f"{result.version}: {'promoted' if result.promoted else 'not promoted'} "
        f"(challenger {result.challenger_score:.4f}, champion "
        f"{'none' if result.champion_score is None else f'{result.champion_score:.4f}'}; {result.reason})"
    )


SUMMARY_LIMIT = 10  # configs whose summaries are printed without --summary
# the knobs `sweep --vary` takes, as the what-if page names them (service.knobs; listed in --help)
KNOB_NAMES = ("layers", "width", "heads", "kv_heads", "ffn", "glu", "norm", "rotary_fraction", "rope_theta",
              "parallel_residual", "attn_bias", "mlp_bias", "tied", "kv_bias", "tvr")  # fmt: skip


@app.command("predict")
def predict_cmd(
    sources: list[str] = typer.Argument(
        ..., metavar="SOURCES", help="config.json files, folders, .jsonl files or hub ids"
    ),
    out: Path = typer.Option(..., "--out", help="output table: .parquet, .csv or .json"),
    steps: str | None = typer.Option(None, "--steps", help="comma list of steps (default: the training steps)"),
    metrics: str | None = typer.Option(None, "--metrics", help="comma list (default: all)"),
    recipe: str | None = typer.Option(
        None,
        "--recipe",
        help="training recipe: a JSON object or file, e.g. '{\"lr\": 0.003}' (default: the trained one)",
    ),
    plot: Path | None = typer.Option(None, "--plots", "--plot", help="folder for one PNG per config"),
    models: Path | None = typer.Option(None, "--models", help="models folder (default: models/ or $ARCHCAST_MODELS)"),
    summary: bool = typer.Option(
        False, "--summary", help=f"print each config's summary even for more than {SUMMARY_LIMIT} configs"
    ),
) -> None:
    """Predict per-layer emergence curves for each config with the served model.

    Every config is read and checked first; they are then predicted together, a few hundred at a time. With up
    to 10 configs (or --summary) each one's summary is printed.

    Example: archcast predict examples/configs --out predictions.csv --plots plots/
    """
    from rich.progress import Progress

    from service.batch import (
        check_out,
        predict_chunks,
        read_recipe_option,
        read_specs,
        warning_counts,
        warning_summary,
        write_table,
    )
    from service.prediction_batch import concat_batches, step_columns
    from service.predictor import Predictor

    # everything that can be refused is refused before any prediction is computed
    check_out(out)
    recipe_request = read_recipe_option(recipe)
    step_list = _steps_option(steps)
    predictor = Predictor(models)
    request = predictor.check_request(step_list, metrics.split(",") if metrics else None, recipe_request)
    step_columns(request.steps)
    names, specs = read_specs(sources)
    talk = summary or len(specs) <= SUMMARY_LIMIT
    batches = []
    with Progress(console=err, transient=True, disable=talk) as progress:
        task = progress.add_task("predicting", total=len(specs))
        for start, batch in predict_chunks(predictor, specs, request):
            chunk_names = names[start : start + len(batch)]
            batches.append(batch)
            if talk or plot is not None:
                for i, name in enumerate(chunk_names):
                    prediction = batch.prediction(i)
                    if talk:
                        for line in prediction.summary():
                            err.print(f"[dim]{name}[/] {line['text']}", highlight=False)
                        if text := warning_summary(name, prediction):
                            err.print(f"[yellow]warning[/] {text}")
                    if plot is not None:
                        from service.plots import plot_prediction

                        plot_prediction(name, prediction, plot)
            progress.advance(task, len(batch))
    frame = concat_batches(batches).to_frame(names)  # one table: cheaper than joining one per chunk
    write_table(frame, out)
    counts = warning_counts(batches)
    warned = sum(bool(w) for batch in batches for w in batch.warnings)
    kinds = "; ".join(f"{code.replace('_', ' ')}: {n}" for code, n in counts.items())
    typer.echo(
        f"{_count(len(specs), 'config')}, {len(frame)} rows → {out} (model {predictor.version}; "
        f"{_count(warned, 'config')} with warnings{f' — {kinds}' if kinds and not talk else ''})"
    )


def _steps_option(text: str | None) -> list[float] | None:
    if not text:
        return None
    try:
        return [float(s) for s in text.split(",")]
    except ValueError:
        from features import ArchcastError

        raise ArchcastError("--steps", f"expected a comma list of numbers such as 0,100,1000, got {text!r}") from None


@app.command("sweep")
def sweep_cmd(
    base: Path = typer.Argument(..., metavar="BASE", help="The base config.json (or a folder holding one)."),
    vary: list[str] = typer.Option(
        ...,
        "--vary",
        metavar="KNOB=V1,V2,…",
        help="A knob and its values (whole numbers also START:STOP:STEP); "
        "repeat for more knobs. Knobs: " + ", ".join(k for k in KNOB_NAMES),
    ),  # fmt: skip
    rank_by: str = typer.Option(
        "final:ma_ratio",
        "--rank-by",
        metavar="QUANTITY",
        help="final:METRIC or peak:METRIC, at @LAYER or over the layers (@max, the default; @min, @mean); or "
        "onset_layer",
    ),  # fmt: skip
    out: Path = typer.Option(..., "--out", help="ranked table: .parquet, .csv or .json"),
    lowest_first: bool = typer.Option(False, "--lowest-first", help="rank the smallest values first"),
    samples: int | None = typer.Option(None, "--samples", min=1, help="draw this many designs at random instead"),
    seed: int = typer.Option(0, "--seed", help="seed of the --samples draw"),
    steps: str | None = typer.Option(None, "--steps", help="comma list of steps (default: the training steps)"),
    recipe: str | None = typer.Option(None, "--recipe", help="training recipe: a JSON object or file"),
    plot: Path | None = typer.Option(None, "--plot", help="PNG of the first designs' curves and the scatter"),
    top: int = typer.Option(10, "--top", min=1, help="designs shown in the plot and printed"),
    models: Path | None = typer.Option(None, "--models", help="models folder (default: models/ or $ARCHCAST_MODELS)"),
) -> None:
    """Vary knobs over a base config, predict every design and rank them by one quantity.

    Example: archcast sweep examples/configs/llama-2-7b.json --vary layers=8:32:4 --vary width=1024,2048,4096
    --vary kv_bias=true,false --rank-by final:ma_ratio --lowest-first --out sweep.csv --plot sweep.png
    """
    from features import ArchcastError
    from service.batch import check_out, iter_configs, read_recipe_option, write_table
    from service.predictor import Predictor
    from service.sweep import expand, parse_vary, read_quantity, sweep_table

    check_out(out)
    if plot is not None and plot.suffix != ".png":
        raise ArchcastError("--plot", f"must end in .png, got {plot.name!r}")
    recipe_request = read_recipe_option(recipe)
    varied = [parse_vary(v) for v in vary]
    predictor = Predictor(models)
    request = predictor.check_request(_steps_option(steps), None, recipe_request)
    quantity = read_quantity(rank_by, predictor.metrics)
    configs = list(iter_configs([str(base)]))
    if len(configs) != 1:
        raise ArchcastError(str(base), f"expected one base config, found {len(configs)}")
    sweep = expand(configs[0][1], varied, samples, seed)
    table, batch = sweep_table(predictor, sweep, quantity, request.steps, recipe_request, lowest_first)
    write_table(table, out)
    ranked = table[table["skipped"] == ""]
    shown = ranked.head(top)
    columns = [c for c in shown.columns if c not in ("skipped", "n_warnings")]
    typer.echo(shown[columns].to_string(index=False))
    for values, reason in sweep.skipped[:5]:
        err.print(f"[yellow]skipped[/] {values}: {reason}", highlight=False)
    if plot is not None and batch is not None:
        from service.plots import plot_sweep

        plot_sweep(table, batch, quantity, plot, top)
    more = f"; plot {plot}" if plot is not None else ""
    typer.echo(f"{_count(len(ranked), 'design')} ranked by {quantity.label}, {len(sweep.skipped)} skipped → {out} "
               f"(model {predictor.version}){more}")  # fmt: skip


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


@app.command("serve")
def serve_cmd(
    port: int = typer.Option(3000, "--port", min=1, max=65535, help="Port to listen on."),
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to bind (0.0.0.0: every interface)."),
    models: Path | None = typer.Option(None, "--models", help="models folder (default: models/ or $ARCHCAST_MODELS)"),
) -> None:
    """Serve POST /predict, POST /predict_batch and GET /metadata with BentoML.

    Prints a line with the URL once the server answers (about 5-10 s); scripts can wait on GET /readyz.
    SIGTERM or Ctrl-C stops the server and all its workers.

    Example: archcast serve --port 3000
    """
    import os

    from service.launch import run_server
    from service.predictor import Predictor

    if models is not None:
        os.environ["ARCHCAST_MODELS"] = str(models.resolve())  # read by the server's workers
    Predictor()  # fail here, with a clear message, if the served model is missing or tampered

    def ready(url: str) -> None:
        typer.echo(f"archcast: serving on {url}  (POST /predict, POST /predict_batch, GET /metadata; "
                   f"OpenAPI at {url}/docs.json; Ctrl-C to stop)")  # fmt: skip

    raise typer.Exit(run_server(host, port, ready))


def main() -> None:
    """Entry point: the one place that turns expected failures into short messages."""
    from features import ArchcastError, FeatureError
    from service.predictor import ModelError

    try:
        app()
    except FeatureError as exc:
        err.print(f"[bold red]config error[/] {exc}", highlight=False)
        sys.exit(2)
    except ArchcastError as exc:
        err.print(f"[bold red]error[/] {exc}", highlight=False)
        sys.exit(2)
    except ModelError as exc:
        err.print(f"[bold red]model error[/] {exc}", highlight=False)
        sys.exit(2)
    except FileNotFoundError as exc:
        err.print(f"[bold red]error[/] {exc}", highlight=False)
        sys.exit(2)


if __name__ == "__main__":
    main()
