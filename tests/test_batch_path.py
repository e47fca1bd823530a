"""The vectorised batch path (Predictor.predict_specs): the same answers as predict() one config at a time, one
table for every prediction, and the CLI around it."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from archcast.cli import app as cli_app
from features import ArchcastError, read_spec
from service.batch import predict_all, predict_chunks
from service.prediction_batch import concat_batches, step_columns
from service.predictor import Predictor

from .conftest import REPO

SOURCES = sorted((REPO / "tests" / "data" / "configs").glob("*.json")) + sorted(
    (REPO / "examples" / "configs").glob("*.json")
)
CONFIGS = [json.loads(p.read_text()) for p in SOURCES]
NAMES = [p.stem for p in SOURCES]


def _close(a, b) -> bool:
    """Equal to float tolerance (a batch's products run over other row counts than one config's), NaN alike."""
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-7, abs_tol=1e-9)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b, strict=True))
    return a == b


@pytest.fixture(scope="module")
def predictor() -> Predictor:
    return Predictor(REPO / "models")  # the committed model: its domain makes every warning kind appear


@pytest.mark.parametrize("steps", [None, [0, 10.5, 250, 1000, 20_000]])
def test_a_batch_answers_every_config_as_predict_does_alone(predictor, steps):
    batch = predictor.predict_specs([read_spec(c) for c in CONFIGS], steps)
    assert len(batch) == len(CONFIGS) and batch.offsets[-1] == sum(batch.n_layers)
    codes = set()
    for i, config in enumerate(CONFIGS):
        alone = predictor.predict(config, steps).to_json()
        together = batch.prediction(i).to_json()
        assert _close(alone, together), NAMES[i]
        codes |= {w["code"] for w in together["warnings"]}
    # the configs reach the per-config warning branches (domain, clipping, scale, widening, family)
    assert {"feature_out_of_range", "curve_clipped", "scale_extrapolated", "interval_widened"} <= codes


def test_the_batch_table_is_the_configs_tables_one_after_another(predictor):
    specs = [read_spec(c) for c in CONFIGS]
    half = len(specs) // 2
    together = concat_batches([predictor.predict_specs(specs[:half]), predictor.predict_specs(specs[half:])]
                              ).to_frame(NAMES)  # fmt: skip
    alone = pd.concat([predictor.predict(c).to_frame(n) for c, n in zip(CONFIGS, NAMES, strict=True)],
                      ignore_index=True)  # fmt: skip
    assert list(together.columns) == list(alone.columns) and len(together) == len(alone)
    for column in together.columns:
        a, b = together[column].to_numpy(), alone[column].to_numpy()
        if a.dtype.kind == "f":
            np.testing.assert_allclose(a, b.astype(float), rtol=1e-7, atol=1e-9, equal_nan=True, err_msg=column)
        else:
            assert (a.astype(str) == b.astype(str)).all(), column


def test_chunks_on_two_threads_joined_answer_as_one_batch(predictor):
    specs = [read_spec(c) for c in CONFIGS]
    request = predictor.check_request(None, None, None)
    whole = predictor.predict_checked(specs, request)
    chunks = list(predict_chunks(predictor, specs, request, chunk=3, workers=2))
    assert [start for start, _ in chunks] == list(range(0, len(specs), 3))  # in order, whatever finished first
    joined = concat_batches([batch for _, batch in chunks])
    assert len(joined) == len(specs) and np.array_equal(joined.offsets, whole.offsets)
    for i in range(len(specs)):  # one onnxruntime thread per call: the same numbers, not only close ones
        assert joined.prediction(i).to_json() == whole.prediction(i).to_json(), NAMES[i]
    assert (
        predict_all(predictor, specs, request).prediction(len(specs) - 1).to_json()
        == joined.prediction(len(specs) - 1).to_json()
    )


def test_step_columns_keep_fractional_steps_apart_and_refuse_a_step_twice():
    assert step_columns([0, 10.0, 10.2, 10.7, 1e6]) == [
        "at_step_0", "at_step_10", "at_step_10.2", "at_step_10.7", "at_step_1000000",
    ]  # fmt: skip
    with pytest.raises(ArchcastError, match="step 10 is asked for twice"):
        step_columns([10, 10.0])


@pytest.mark.slow
def test_cli_writes_fractional_steps_and_refuses_bad_options_before_any_work(tmp_path):
    out = tmp_path / "p.parquet"
    run = CliRunner().invoke(cli_app, ["predict", "examples/configs", "--out", str(out), "--steps", "10.2,10.7"])
    assert run.exit_code == 0, run.output
    assert {"at_step_10.2", "at_step_10.7"} <= set(pd.read_parquet(out).columns)
    for steps, message in (("10,10", "asked for twice"), ("ten", "comma list of numbers")):
        bad = tmp_path / f"bad-{steps}.parquet"
        run = CliRunner().invoke(cli_app, ["predict", "examples/configs", "--out", str(bad), "--steps", steps])
        assert run.exit_code != 0 and message in str(run.exception or run.output) and not bad.exists()


@pytest.mark.slow
def test_cli_prints_summaries_for_a_few_configs_and_a_count_for_many(tmp_path):
    many = tmp_path / "many.jsonl"
    many.write_text("\n".join(json.dumps({**CONFIGS[0], "name": f"c{i}"}) for i in range(12)))
    run = CliRunner().invoke(cli_app, ["predict", str(many), "--out", str(tmp_path / "a.csv")])
    assert run.exit_code == 0, run.output
    assert "ma_ratio: ends" not in run.output and "12 configs" in run.output
    run = CliRunner().invoke(cli_app, ["predict", str(many), "--out", str(tmp_path / "b.csv"), "--summary"])
    assert run.output.count("ma_ratio: ends") == 12
    assert pd.read_csv(tmp_path / "a.csv").equals(pd.read_csv(tmp_path / "b.csv"))


def test_a_summary_names_no_highest_layer_where_every_layer_ends_alike():
    from emergence.curve import evaluate
    from service.prediction import describe

    same = evaluate(np.array([[0.0, 0.0, 1.0, 1.0, 1.0]] * 3), [0, 10], "linearity")
    assert describe("linearity", same, np.array([0.0, 10.0])).startswith("linearity: ends at 1 in every layer")
    apart = evaluate(np.array([[0.0, 0.0, 1.0, 1.0, 0.5], [0.0, 0.0, 1.0, 1.0, 0.9]]), [0, 10], "linearity")
    assert "ends highest in layer 2 (0.9), lowest in 1 (0.5)" in describe("linearity", apart, np.array([0.0, 10.0]))
