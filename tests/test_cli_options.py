"""The `archcast` command answers -h and --version as a user expects."""

from __future__ import annotations

from importlib.metadata import version

from typer.testing import CliRunner

from archcast.cli import app


def test_short_help_works_on_the_group_and_on_a_command():
    runner = CliRunner()
    top = runner.invoke(app, ["-h"])
    assert top.exit_code == 0 and "predict" in top.output and "No such option" not in top.output
    sub = runner.invoke(app, ["predict", "-h"])
    assert sub.exit_code == 0 and "SOURCES" in sub.output


def test_version_prints_the_installed_version_and_the_served_model():
    from service.predictor import Predictor

    result = CliRunner().invoke(app, ["--version"])
    lines = result.output.strip().splitlines()
    assert result.exit_code == 0 and lines == [f"archcast {version('archcast')}", f"served model {Predictor().version}"]
