"""The `archcast` command. Each subcommand is a thin wrapper over the package that owns the work.

`zoo` and `extract` forward their arguments to `python -m zoo` / `python -m extraction`
(argparse there, so those packages run on a bare GPU image without typer); the
options are declared once, in those packages.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.console import Console

app = typer.Typer(
    name="archcast",
    help="Predict massive-activation emergence and layer linearity from a transformer's config.",
    no_args_is_help=True,
    add_completion=False,
)
err = Console(stderr=True)


@app.callback()
def _group() -> None:
    """Keeps `archcast` a command group even while it has a single subcommand."""


FORWARD = {"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []}


@app.command("features")
def features_cmd(
    config: Path = typer.Argument(..., help="A config.json file, or a folder holding one."),
    out: Path | None = typer.Option(None, "--out", help="Write the rows to .csv/.parquet instead of printing."),
) -> None:
    """Show the feature rows (one per layer) that the predictor sees for CONFIG.

    Example: archcast features tests/data/configs/pythia-160m.json
    """
    from features import featurize

    frame = featurize(config)
    if out is None:
        typer.echo(frame.T.to_string())
    elif out.suffix == ".parquet":
        frame.to_parquet(out)
    else:
        frame.to_csv(out)


@app.command("extract", context_settings=FORWARD, add_help_option=False)
def extract_cmd(ctx: typer.Context) -> None:
    """Measure massive activations and linearity over checkpoint series (see --help)."""
    from extraction.__main__ import main as extraction_main

    raise typer.Exit(extraction_main(list(ctx.args)))


def main() -> None:
    """Entry point: the one place that turns expected failures into short messages."""
    from features import FeatureError

    try:
        app()
    except FeatureError as exc:
        err.print(f"[bold red]config error[/] {exc}")
        sys.exit(2)
    except (FileNotFoundError, ValueError) as exc:
        err.print(f"[bold red]error[/] {exc}")
        sys.exit(2)


if __name__ == "__main__":
    main()
