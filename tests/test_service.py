"""service/: the BentoML app in-process and as a real server, the CLI, integrity checks, fuzzing."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request

import hypothesis
import numpy as np
import pandas as pd
import pytest
import schemathesis
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from starlette.testclient import TestClient
from typer.testing import CliRunner

from archcast.cli import app as cli_app
from service.launch import free_port, serve_command, wait_ready
from service.predictor import ModelError, Predictor, RequestError

from .conftest import REPO

CONFIGS = REPO / "tests" / "data" / "configs"
GPT2 = json.loads((CONFIGS / "gpt2.json").read_text())
FALCON = json.loads((CONFIGS / "falcon-7b.json").read_text())


@pytest.fixture(scope="module")
def models_env(smoke_models):
    models, _ = smoke_models
    old = os.environ.get("ARCHCAST_MODELS")
    os.environ["ARCHCAST_MODELS"] = str(models)
    import service.service as svc

    svc._predictor = None  # the shared predictor picks up this folder
    yield models
    svc._predictor = None
    if old is None:
        os.environ.pop("ARCHCAST_MODELS")
    else:
        os.environ["ARCHCAST_MODELS"] = old


@pytest.fixture(scope="module")
def asgi_app(models_env):
    """One ASGI app per process: BentoML registers its Prometheus metrics once per app built."""
    from service.service import Archcast

    return Archcast.to_asgi()


@pytest.fixture(scope="module")
def client(asgi_app):
    with TestClient(asgi_app, raise_server_exceptions=False) as c:
        yield c


@pytest.mark.slow
def test_predict_returns_parameters_derived_values_and_curves(client):
    response = client.post("/predict", json={"config": GPT2, "steps": [0, 10, 100], "metrics": ["ma_ratio"]})
    assert response.status_code == 200
    body = response.json()
    assert body["n_layers"] == 12 and len(body["layers"]) == 12 and body["steps"] == [0, 10, 100]
    layer = body["layers"][0]["metrics"]["ma_ratio"]
    assert set(layer["params"]) == {"A", "lam", "gamma", "t0", "K"}
    assert {"steady_state", "peak_step", "peak_observable", "peak_value", "final_value"} <= set(layer["derived"])
    assert len(layer["curve"]) == 3
    out_of_range = [w for w in body["warnings"] if w["code"] == "feature_out_of_range"]  # gpt2-124m is far out
    assert out_of_range and all("outside the training range" in w["message"] for w in out_of_range)
    assert all(w["feature"] and len(w["range"]) == 2 for w in out_of_range)
    assert layer["derived"]["extremum_kind"] == ("peak" if layer["params"]["A"] > 0 else "dip")


@pytest.mark.slow
def test_default_steps_and_metrics_come_from_the_model(client, models_env):
    manifest = json.loads((models_env / (models_env / "CURRENT").read_text().strip() / "manifest.json").read_text())
    body = client.post("/predict", json={"config": GPT2}).json()
    assert body["steps"] == manifest["default_steps"]
    assert set(body["layers"][0]["metrics"]) == set(manifest["metrics"])


@pytest.mark.slow
@pytest.mark.parametrize(
    "payload, field",
    [
        ({"config": {**GPT2, "n_layer": 0}}, "n_layer"),
        ({"config": {**GPT2, "model_type": "rwkv"}}, "model_type"),
        ({"config": {**FALCON, "new_decoder_architecture": True, "num_kv_heads": "8"}}, "num_kv_heads"),
        ({"config": GPT2, "steps": [-5]}, "steps"),
        ({"config": GPT2, "steps": list(range(10_001))}, "steps"),
        ({"config": GPT2, "metrics": ["loss"]}, "metrics"),
        ({"config": GPT2, "recipe": {"lrr": 0.003}}, "recipe.lrr"),
        ({"config": GPT2, "recipe": {"batch_size": 0}}, "recipe.batch_size"),
        ({"config": GPT2, "recipe": {"bos": "yes"}}, "recipe.bos"),
        ({"config": GPT2, "recipe": [1]}, "recipe"),
        ({"config": "not an object"}, "config"),
        ({}, "config"),
    ],
)
def test_bad_input_gets_a_400_naming_the_field(client, payload, field, caplog):
    with caplog.at_level(logging.INFO):
        response = client.post("/predict", json=payload)
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/problem+json")  # one shape for every 4xx
    body = response.json()
    assert body["status"] == 400 and body["title"] == "Bad Request" and field in body["detail"]
    assert field in body["field"]  # the path of the offending input, e.g. config.n_layer
    # a client's mistake is one INFO line, not a server error with a traceback
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


def test_a_recipe_is_echoed_and_a_field_outside_the_trained_ones_warned(client):
    plain = client.post("/predict", json={"config": GPT2, "steps": [0, 100]}).json()
    body = client.post("/predict", json={"config": GPT2, "steps": [0, 100], "recipe": {"lr": 1e-4}}).json()
    assert "recipe_requested" not in plain and body["recipe_requested"]["lr"] == 1e-4
    assert body["recipe_requested"]["batch_size"] == plain["recipe"]["batch_size"]  # the rest: the trained recipe
    (warning,) = [w for w in body["warnings"] if w["code"] == "recipe_out_of_range"]
    assert warning["feature"] == "recipe.lr" and warning["range"] == [plain["recipe"]["lr"]] * 2
    assert body["layers"] == plain["layers"]  # one recipe trained: its curves, as the warning says
    batch = client.post("/predict_batch", json={"configs": [GPT2], "recipe": {"lr": 1e-4}}).json()
    assert [w["code"] for w in batch[0]["warnings"]].count("recipe_out_of_range") == 1


@pytest.mark.slow
def test_oversized_body_is_refused(client):
    response = client.post("/predict", content=b" " * 2_000_000, headers={"content-type": "application/json"})
    assert response.status_code == 413 and response.json()["status"] == 413


@pytest.mark.slow
def test_oversized_chunked_body_is_refused_by_the_bytes_received(client):
    def chunks():  # no Content-Length: the body arrives in chunks
        for _ in range(40):
            yield b" " * 50_000

    response = client.post("/predict", content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 413 and response.headers["connection"] == "close"
    assert response.headers["content-type"].startswith("application/problem+json")
    small = client.post("/predict", content=iter([json.dumps({"config": GPT2, "steps": [1]}).encode()]),
                        headers={"content-type": "application/json"})  # fmt: skip
    assert small.status_code == 200 and small.json()["n_layers"] == 12


@pytest.mark.slow
def test_steps_beyond_the_training_data_are_announced(client, models_env):
    manifest = json.loads((models_env / (models_env / "CURRENT").read_text().strip() / "manifest.json").read_text())
    last = max(manifest["default_steps"])
    inside = client.post("/predict", json={"config": GPT2, "steps": [0, last]}).json()
    assert not [w for w in inside["warnings"] if w["code"] == "steps_beyond_training"]
    beyond = client.post("/predict", json={"config": GPT2, "steps": [0, last, 100 * last]}).json()
    [w] = [w for w in beyond["warnings"] if w["code"] == "steps_beyond_training"]
    assert w["value"] == 100 * last and w["range"] == [0, last] and "1 of the requested steps" in w["message"]


@pytest.mark.slow
def test_batch_and_metadata_and_health(client):
    response = client.post("/predict_batch", json={"configs": [GPT2, GPT2], "steps": [1, 2]})
    assert response.status_code == 200 and len(response.json()) == 2
    bad = client.post("/predict_batch", json={"configs": [GPT2, {**GPT2, "n_head": 5}]})
    assert bad.status_code == 400 and bad.json()["field"].startswith("configs[1].")
    meta = client.get("/metadata").json()
    assert meta["manifest"]["schema"]["features"] and meta["model_card"].startswith("# archcast predictor")
    assert client.get("/readyz").status_code == 200 and client.get("/livez").status_code == 200


@pytest.mark.slow
def test_sweep_answers_as_the_cli_ranks_and_names_bad_fields(client, models_env, tmp_path):
    body = {"base": GPT2, "vary": {"layers": "2:6:2", "width": [384, 768, 770], "kv_bias": [True, False]},
            "rank_by": "final:ma_ratio@max", "steps": [0, 100, 1000]}  # fmt: skip
    response = client.post("/sweep", json=body)
    assert response.status_code == 200, response.text
    answer = response.json()
    out = tmp_path / "sweep.json"
    result = CliRunner().invoke(cli_app, ["sweep", str(CONFIGS / "gpt2.json"), "--vary", "layers=2:6:2", "--vary",
                                          "width=384,768,770", "--vary", "kv_bias=true,false", "--rank-by",
                                          "final:ma_ratio@max", "--steps", "0,100,1000", "--out", str(out),
                                          "--models", str(models_env)])  # fmt: skip
    assert result.exit_code == 0, result.output
    cli = [r for r in json.loads(out.read_text()) if not r["skipped"]]
    assert [r["design"] for r in answer["designs"]] == [r["design"] for r in cli]
    label = answer["quantity"]
    assert [r[label] for r in answer["designs"]] == pytest.approx([r[label] for r in cli], rel=1e-12)
    assert [r["rank"] for r in answer["designs"]] == list(range(1, 13))  # 3 × 2 × 2 designs with width 384, 768
    assert len(answer["skipped"]) == 6 and all("770" in s["reason"] or "divis" in s["reason"] for s in
                                                answer["skipped"])  # fmt: skip
    for vary, field in (({"depth": [2]}, "vary"), ({"layers": ["x"]}, "vary.layers"), ({"layers": []}, "vary.layers"),
                        ({"layers": "1:1000000000000:1"}, "vary.layers"),
                        ({"layers": "1:100:1", "width": "64:6400:64"}, "vary")):  # fmt: skip
        refused = client.post("/sweep", json={"base": GPT2, "vary": vary})
        assert refused.status_code == 400 and refused.json()["field"] == field, (vary, refused.text)
    for extra, field in (({"rank_by": "best"}, "rank_by"), ({"samples": 10**6}, "samples"),
                         ({"base": {**GPT2, "n_head": 5}}, "base.n_embd"),
                         ({"recipe": {"lr": -1}}, "recipe.lr")):  # fmt: skip
        refused = client.post("/sweep", json={"base": GPT2, "vary": {"layers": [2, 4]}, **extra})
        assert refused.status_code == 400 and refused.json()["field"] == field, (extra, refused.text)


def test_cli_and_http_give_identical_numbers(client, models_env, tmp_path):
    steps = [0, 5, 50]
    http = client.post("/predict", json={"config": GPT2, "steps": steps}).json()
    out = tmp_path / "p.json"
    result = CliRunner().invoke(
        cli_app,
        [
            "predict",
            str(CONFIGS / "gpt2.json"),
            "--out",
            str(out),
            "--steps",
            "0,5,50",
            "--plots",
            str(tmp_path / "plots"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "1 config, " in result.output  # one config is not "1 configs"
    table = pd.DataFrame(json.loads(out.read_text()))
    for layer in http["layers"]:
        for metric, values in layer["metrics"].items():
            row = table[(table["layer"] == layer["layer"]) & (table["metric"] == metric)].iloc[0]
            assert [row["A"], row["lam"], row["gamma"], row["t0"], row["K"]] == list(values["params"].values())
            assert [row[f"at_step_{s}"] for s in steps] == values["curve"]
    assert (tmp_path / "plots" / "gpt2.png").stat().st_size > 10_000


@pytest.mark.slow
def test_cli_reads_folders_and_jsonl_and_reports_bad_configs(models_env, tmp_path):
    lines = [json.dumps({**GPT2, "name": "a"}), json.dumps({**GPT2, "n_layer": 2, "name": "b"})]
    (tmp_path / "many.jsonl").write_text("\n".join(lines))
    out = tmp_path / "p.csv"
    result = CliRunner().invoke(cli_app, ["predict", str(tmp_path / "many.jsonl"), str(CONFIGS), "--out", str(out)])
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out)
    assert {"a", "b", "gpt2", "llama-2-7b"} <= set(table["name"])
    # the warnings' text, not a count: every config here is outside the smoke model's training range
    assert table["warnings"].str.contains("outside the training range").all() and (table["n_warnings"] > 0).all()
    assert "feature out of range" in result.output  # the per-config summary on the terminal
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**GPT2, "n_embd": 770}))
    result = CliRunner().invoke(cli_app, ["predict", str(bad), "--out", str(out)])
    assert result.exit_code != 0


@pytest.mark.slow
def test_hub_ids_fail_clearly_when_offline(models_env, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ValueError, match="neither a local file"):
        list(__import__("service.batch", fromlist=["iter_configs"]).iter_configs(["acme/not-here"]))


def test_a_missing_file_is_named_not_sent_to_the_hub_and_a_bad_out_is_refused_first(tmp_path, monkeypatch):
    from service.batch import iter_configs

    monkeypatch.setattr("service.batch._hub_config", lambda model_id: pytest.fail(f"{model_id} sent to the hub"))
    for typo in ("nosuch.json", str(tmp_path / "cfgs"), "./here.jsonl"):
        with pytest.raises(ValueError, match="no such file or folder"):
            list(iter_configs([typo]))
    monkeypatch.setattr("service.predictor.Predictor.__init__", lambda *a, **k: pytest.fail("model loaded"))
    result = CliRunner().invoke(cli_app, ["predict", "examples/configs", "--out", str(tmp_path / "x.txt")])
    assert getattr(result.exception, "field", None) == "--out"  # the CLI's main prints it as one line, exit 2


@pytest.mark.slow
def test_tampered_or_foreign_models_are_refused(models_env, tmp_path):
    copy = tmp_path / "models"
    shutil.copytree(models_env, copy)
    version = (copy / "CURRENT").read_text().strip()
    Predictor(copy)  # the intact copy loads
    onnx_file = next((copy / version).glob("*.onnx"))
    onnx_file.write_bytes(onnx_file.read_bytes() + b"\0")
    with pytest.raises(ModelError, match="sha256"):
        Predictor(copy)
    shutil.copytree(models_env, tmp_path / "schema")
    manifest_path = tmp_path / "schema" / version / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["schema"]["hash"] = "0" * 64
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(ModelError, match="feature schema"):
        Predictor(tmp_path / "schema")
    with pytest.raises(ModelError, match="CURRENT"):
        Predictor(tmp_path / "nothing")
    # an export that does not say where its curve regressors are read: refused, not read at guessed steps
    shutil.copytree(models_env, tmp_path / "older")
    manifest_path = tmp_path / "older" / version / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    del manifest["projection_steps"]
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(ModelError, match="does not name the steps"):
        Predictor(tmp_path / "older")


def test_committed_default_model_serves_the_example_configs():
    predictor = Predictor(REPO / "models")
    for path in sorted((REPO / "examples" / "configs").glob("*.json")):
        prediction = predictor.predict(json.loads(path.read_text()))
        body = prediction.to_json()
        assert prediction.n_layers == body["n_layers"] == len(body["layers"]) > 0
        assert np.isfinite(prediction.metrics["ma_ratio"].curves.values).all()
        extra = ["mechanism"] if prediction.mechanism is not None else []
        assert [s["metric"] for s in body["summary"]] == list(prediction.metrics) + extra


@pytest.mark.slow
def test_real_bentoml_server_answers_on_loopback(models_env):
    port = free_port()
    env = {**os.environ, "ARCHCAST_MODELS": str(models_env), "BENTOML_HOME": str(models_env.parent / "bentoml")}
    server = subprocess.Popen(
        serve_command(port=port), cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        wait_ready(server, port)
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/predict",
            data=json.dumps({"config": GPT2, "steps": [1, 2]}).encode(),
            headers={"content-type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as r:
            assert r.status == 200 and json.loads(r.read())["n_layers"] == 12
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.mark.slow
def test_fuzzed_requests_get_no_server_error_and_match_the_documented_schema(client, asgi_app):
    # Schemathesis' pytest integration (from_fixture) breaks on pytest 9, so each operation's
    # strategy is driven by Hypothesis directly, with valid and invalid inputs alike; every response must
    # be a non-5xx with a documented status, content type and body schema.
    api = schemathesis.openapi.from_asgi("/docs.json", asgi_app)
    ours = {"/predict", "/predict_batch", "/metadata"}  # the APIs in the schema; BentoML's /metrics … are not ours
    operations = [op for op in (result.ok() for result in api.get_all_operations()) if op.path in ours]
    assert {op.path for op in operations} == ours
    checks = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
    for operation in operations:
        # invalid inputs exist only where there is a body to break (GET operations take none)
        modes = [GenerationMode.POSITIVE] + ([GenerationMode.NEGATIVE] if operation.method.upper() == "POST" else [])
        for mode in modes:

            @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
            @hypothesis.settings(max_examples=25, deadline=None, suppress_health_check=list(hypothesis.HealthCheck))
            def fuzz(case):
                case.call_and_validate(checks=checks)

            fuzz()


@pytest.mark.slow
def test_openapi_document_and_docs_page_are_archcasts_own(client):
    spec = client.get("/docs.json").json()
    assert spec["info"]["title"] == "archcast" and "model" in spec["info"]["version"]
    assert "None" not in spec["info"]["version"] and "BentoML" not in spec["info"]["description"]
    predict = spec["paths"]["/predict"]["post"]["responses"]
    assert predict["200"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Prediction"}
    assert "application/problem+json" in predict["400"]["content"] and "413" in predict
    assert "/metadata" in spec["paths"]
    # /metrics is off unless ARCHCAST_METRICS=1: the document lists only what answers
    assert "/metrics" not in spec["paths"] and client.get("/metrics").status_code == 404
    from service.openapi import describe

    assert (
        "/metrics" in describe({"paths": {"/metrics": {"get": {}}, **spec["paths"]}}, "v", metrics_served=True)["paths"]
    )
    for path, marker in (("/", "what-if explorer"), ("/docs", "swagger-ui")):  # / is the what-if page
        page = client.get(path)
        assert page.status_code == 200 and marker in page.text
        # nothing served calls out: every URL on the page is relative to the service
        assert not re.findall(r"(?:src|href)=\"(?:https?:)?//", page.text), page.text
    assert client.get("/static_content/swagger-ui-bundle.js").status_code == 200
    head = client.head("/docs.json")
    assert head.status_code == 200 and int(head.headers["content-length"]) == len(client.get("/docs.json").content)
    missing = client.get("/no-such-route")  # Starlette's plain-text 404 gets the same problem shape
    assert missing.status_code == 404 and missing.headers["content-type"].startswith("application/problem+json")
    bad_type = client.post("/predict_batch", json={"configs": [GPT2, 5]})
    assert bad_type.status_code == 400 and bad_type.json()["field"].startswith("configs[1]")


def test_curves_stay_within_what_each_metric_can_be():
    # The committed model extrapolates far outside its zoo for a 12-layer, d=768 config; whatever the
    # parameters, a ratio is >= 1 and a linearity score lies in [0, 1], and clipping is announced.
    from emergence.curve import METRIC_RANGE

    config = json.loads((REPO / "examples" / "configs" / "pythia-160m.json").read_text())
    result = Predictor(REPO / "models").predict(config).to_json()  # the committed model, whatever the env says
    for layer in result["layers"]:
        for metric, out in layer["metrics"].items():
            low, high = METRIC_RANGE[metric]
            values = [v for v in out["curve"] + [out["derived"]["final_value"]] if v is not None]
            assert all(low <= v <= high for v in values), (metric, layer["layer"])
    assert all(isinstance(w["message"], str) and w["code"] for w in result["warnings"])


def test_the_metrics_asked_for_come_back_in_the_order_asked_for():
    predictor = Predictor(REPO / "models", threads=1)
    both = predictor.predict(GPT2, [0, 100], ["linearity", "ma_ratio"])
    body = both.to_json()
    assert list(body["layers"][0]["metrics"]) == ["linearity", "ma_ratio"]
    assert [s["metric"] for s in body["summary"]][:2] == ["linearity", "ma_ratio"]
    assert both.to_frame("gpt2")["metric"].iloc[:2].tolist() == ["linearity", "ma_ratio"]
    alone = predictor.predict(GPT2, [0, 100], ["ma_ratio"]).to_json()["layers"][3]["metrics"]["ma_ratio"]
    assert body["layers"][3]["metrics"]["ma_ratio"] == alone  # asking for more metrics changes none of them


def test_one_combined_onnx_session_equals_one_session_per_model_file():
    # The predictor runs every target in one graph; each output must equal its own file's session.
    import numpy as np
    import onnxruntime

    from emergence.curve import curve_rows
    from features import feature_matrix

    predictor = Predictor(REPO / "models", threads=1)
    rows = np.concatenate([feature_matrix(json.loads(p.read_text())) for p in sorted(CONFIGS.glob("*.json"))])
    rows = predictor.with_recipe(rows, None)  # the served model reads the reference recipe after the features
    inputs = {"layer": rows, "curve": curve_rows(rows, predictor.projection_steps)}
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1  # as the predictor's (summation order, hence rounding, depends on threads)
    curve_outputs, layer_outputs = predictor.run(rows)
    for kind, combined in (("curve", curve_outputs), ("layer", layer_outputs)):
        entries = [t for t in predictor.manifest["targets"] if t["kind"] == kind]
        assert len(combined) == len(entries) >= 3
        for entry, output in zip(entries, combined, strict=True):
            own = onnxruntime.InferenceSession(str(predictor.folder / entry["file"]), options)
            np.testing.assert_array_equal(output, own.run(None, {"features": inputs[kind]})[0])


def test_the_served_curve_passes_through_the_curve_regressors_values_at_the_reference_steps():
    # The emergence curve alone misses the first steps; the served curve is it corrected to the regressor's own
    # values at the reference steps (moved by the scale term where it applies), and the params stay the curve's.
    import numpy as np

    from emergence.curve import METRIC_RANGE, curve
    from features import read_spec, spec_matrix

    predictor = Predictor(REPO / "models", threads=1)
    config = json.loads((CONFIGS / "pythia-160m.json").read_text())
    rows = spec_matrix(read_spec(config))
    curve_outputs, _ = predictor.run(predictor.with_recipe(rows, None))
    shift = predictor.scale.shift(rows)
    steps = predictor.projection_steps
    prediction = predictor.predict(config, steps.tolist())
    moved_apart = 0.0
    for i, metric in enumerate(predictor.metrics):
        low, high = METRIC_RANGE[metric]
        regressor = np.exp(curve_outputs[i].reshape(len(rows), len(steps)) + shift[i])
        served = prediction.metrics[metric]
        np.testing.assert_allclose(served.curves.values, np.clip(regressor, low, high), rtol=1e-5)
        bare = np.clip(curve(steps[None, :], *(served.params[:, [k]] for k in range(5))), low, high)
        moved_apart = max(moved_apart, float(np.abs(np.log(bare / served.curves.values)).max()))
    assert moved_apart > 0.05  # the correction does something: the bare emergence curves are elsewhere


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_archcast_serve_stops_its_whole_server_on_a_signal_to_itself(models_env, signum):
    # What `kill PID`, a supervisor or `docker stop` does: the signal reaches the archcast process only.
    port = free_port()
    env = {**os.environ, "ARCHCAST_MODELS": str(models_env), "BENTOML_HOME": str(models_env.parent / "bentoml")}
    serve = subprocess.Popen(
        [sys.executable, "-m", "archcast.cli", "serve", "--port", str(port)],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        ready = f"archcast: serving on http://127.0.0.1:{port}"  # printed once /readyz answers
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=lambda: [lines.put(x) for x in serve.stdout], daemon=True).start()
        deadline, line = time.time() + 120, ""
        while not line.startswith(ready) and time.time() < deadline:
            with contextlib.suppress(queue.Empty):
                line = lines.get(timeout=1)
        assert line.startswith(ready) and _listening(port)
        serve.send_signal(signum)
        assert serve.wait(timeout=60) in (0, 128 + signum)
        deadline = time.time() + 10
        while _listening(port) and time.time() < deadline:
            time.sleep(0.2)
        assert not _listening(port), "a server process still listens after archcast exited"
        leftover = subprocess.run(["pgrep", "-f", f"--port {port}"], capture_output=True, text=True).stdout
        assert not leftover.strip(), f"server processes left behind: {leftover}"
    finally:
        if serve.poll() is None:  # a failed assertion: stop it the way the test meant to, then hard
            serve.send_signal(signal.SIGTERM)
            try:
                serve.wait(timeout=60)
            except subprocess.TimeoutExpired:
                serve.kill()


def test_responses_for_real_configs_match_the_documented_schema():
    """Every warning code and value shape a real config draws (out of range, clipped curves, widened bands, the
    scale term) is in the OpenAPI document: the committed model, a response per config in tests/data/configs."""
    import jsonschema_rs

    from service.openapi import describe
    from service.service import Archcast

    predictor = Predictor(REPO / "models")
    document = describe(Archcast.openapi_spec.asdict(), predictor.version)
    schema = {**document["components"]["schemas"]["Prediction"], "components": document["components"]}
    validator = jsonschema_rs.validator_for(schema)
    codes = set()
    for path in sorted(CONFIGS.glob("*.json")):
        body = json.loads(json.dumps(predictor.predict(json.loads(path.read_text())).to_json()))
        errors = [f"{'/'.join(map(str, e.instance_path))}: {e.message}" for e in validator.iter_errors(body)]
        assert not errors, f"{path.name}: {errors[:3]}"
        codes |= {w["code"] for w in body["warnings"]}
    assert {"feature_out_of_range", "interval_widened", "scale_extrapolated"} <= codes


def test_a_python_caller_may_pass_numpy_steps_but_not_booleans():
    predictor = Predictor(REPO / "models", threads=1)
    config = json.loads((CONFIGS / "pythia-160m.json").read_text())
    as_list = predictor.predict(config, [0, 250, 1000]).to_json()
    for steps in (np.array([0, 250, 1000]), [np.int64(0), np.int64(250), np.float64(1000.0)]):
        assert predictor.predict(config, steps).to_json() == as_list
    for bad in ([0, np.bool_(True)], [0, True], [0, np.float64("nan")], np.zeros((2, 2)), ["1"], [0, 10**400]):
        with pytest.raises(RequestError, match="steps"):
            predictor.predict(config, bad)
