"""The training recipe in a request: defaults, refusals naming the field, and what the predictor answers."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from archcast.cli import app as cli_app
from contracts import ArchcastError
from features.recipe import Recipe, read_recipe
from service.predictor import Predictor

from .conftest import REPO

REFERENCE = Recipe(steps=1000, batch_size=32, seq_len=128, lr=0.006, weight_decay=0.0, bos=True, warmup=50,
                   schedule="cosine")  # fmt: skip
GPT2 = json.loads((REPO / "examples" / "configs" / "gpt2.json").read_text())


def test_a_recipe_fills_what_it_does_not_give_from_the_reference():
    assert read_recipe(None, REFERENCE) is REFERENCE
    got = read_recipe({"lr": 3e-3, "steps": 4000.0, "bos": False}, REFERENCE)
    assert (got.lr, got.steps, got.bos, got.batch_size) == (3e-3, 4000, False, 32)
    assert isinstance(got.steps, int) and got.tokens_per_step == 32 * 128


@pytest.mark.parametrize(
    ("given", "field"),
    [
        ({"learning_rate": 1e-3}, "recipe.learning_rate"),  # an unknown key is refused, not ignored
        ({"lr": 0}, "recipe.lr"),
        ({"lr": math.nan}, "recipe.lr"),
        ({"lr": "fast"}, "recipe.lr"),
        ({"steps": 10.5}, "recipe.steps"),
        ({"steps": True}, "recipe.steps"),
        ({"steps": 10**400}, "recipe.steps"),
        ({"bos": 1}, "recipe.bos"),
        ({"schedule": "step"}, "recipe.schedule"),
        ({"warmup": 2000}, "recipe.warmup"),  # longer than the run
        ("lr=0.1", "recipe"),
    ],
)
def test_a_bad_recipe_is_refused_naming_its_field(given, field):
    with pytest.raises(ArchcastError) as caught:
        read_recipe(given, REFERENCE)
    assert caught.value.field == field


def test_the_served_predictor_reads_the_recipe_and_warns_outside_what_its_runs_covered():
    predictor = Predictor()
    assert predictor.recipe_features  # the served model learnt from runs of several recipes
    plain = predictor.predict(GPT2, [0, 1000])
    trained = {k: v for k, v in predictor.reference_recipe.to_json().items() if k != "tokens_per_step"}
    same = predictor.predict(GPT2, [0, 1000], recipe=trained)
    assert not [w for w in same.warnings if w.code == "recipe_out_of_range"]
    for metric in plain.metrics:
        assert (same.metrics[metric].curves.values == plain.metrics[metric].curves.values).all()
    covered = predictor.predict(GPT2, [0, 1000], recipe={"weight_decay": 0.1})  # a recipe tier change
    assert not [w for w in covered.warnings if w.code == "recipe_out_of_range"]
    assert not (covered.metrics["ma_ratio"].curves.values == plain.metrics["ma_ratio"].curves.values).all()
    other = predictor.predict(GPT2, [0, 1000], recipe={"seq_len": 256})
    warned = {w.feature: w for w in other.warnings if w.code == "recipe_out_of_range"}
    assert set(warned) == {"recipe.seq_len"} and warned["recipe.seq_len"].range == (128, 128)
    assert "extrapolation" in warned["recipe.seq_len"].message
    assert other.recipe_requested["seq_len"] == 256 and other.recipe == plain.recipe
    assert (other.tokens == other.steps * 32 * 256).all()  # tokens under the recipe the curves answer for


def test_the_cli_takes_a_recipe_as_json_or_a_file_and_names_a_bad_field(tmp_path):
    runner = CliRunner()
    config = tmp_path / "gpt2.json"
    config.write_text(json.dumps(GPT2))
    recipe = tmp_path / "recipe.json"
    recipe.write_text(json.dumps({"lr": 1e-3}))
    out = tmp_path / "p.json"
    for given in (str(recipe), '{"lr": 1e-3}'):
        result = runner.invoke(cli_app, ["predict", str(config), "--out", str(out), "--recipe", given])
        assert result.exit_code == 0, result.output
        assert "recipe.lr=0.001 is outside" in json.loads(out.read_text())[0]["warnings"]
    archcast = Path(sys.executable).parent / "archcast"  # the console command: its one-line error, not a traceback
    command = [str(archcast), "predict", str(config), "--out", str(tmp_path / "q.json"), "--recipe", '{"lr": -1}']
    bad = subprocess.run(command, capture_output=True, text=True)
    assert bad.returncode == 2 and "recipe.lr: must lie in" in bad.stderr and "Traceback" not in bad.stderr
    assert not (tmp_path / "q.json").exists()
