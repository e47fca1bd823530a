"""`bentoml build` with the repository's bentofile gives a Bento that serves the committed model from an
environment made of the Bento's own requirements only (not this checkout's virtual environment)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request

import pytest

from service.launch import free_port, wait_ready

from .conftest import REPO


@pytest.mark.slow
def test_the_built_bento_serves_the_committed_model_in_its_own_environment(tmp_path):
    env = {**os.environ, "BENTOML_HOME": str(tmp_path / "bentoml")}
    env.pop("ARCHCAST_MODELS", None)
    bentoml = [sys.executable, "-m", "bentoml"]
    subprocess.run([*bentoml, "build", str(REPO)], cwd=REPO, env=env, check=True, capture_output=True)
    [bento] = [p for p in (tmp_path / "bentoml" / "bentos" / "archcast").iterdir() if p.is_dir()]  # and `latest`
    # the Bento installs the locked closure of what it serves with (scripts/lock.py), not whatever is newest
    requirements = (bento / "env" / "python" / "requirements.txt").read_text()
    for line in (REPO / "requirements-serve.lock").read_text().splitlines():
        if line.startswith(("onnxruntime==", "numpy==", "scipy==")):
            assert line in requirements.splitlines(), line
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, "-r", str(bento / "env" / "python" / "requirements.txt")], check=True, capture_output=True)
    port = free_port()
    server = subprocess.Popen(
        [str(venv / "bin" / "python"), "-m", "bentoml", "serve", ".", "--port", str(port)],
        cwd=bento / "src", env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
    )  # fmt: skip
    try:
        wait_ready(server, port)
        config = json.loads((REPO / "examples" / "configs" / "gpt2.json").read_text())
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/predict",
            data=json.dumps({"config": config, "steps": [0, 100]}).encode(),
            headers={"content-type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            body = json.loads(response.read())
        assert body["n_layers"] == 12 and len(body["layers"][0]["metrics"]["ma_ratio"]["curve"]) == 2
        assert body["model_version"] == (REPO / "models" / "CURRENT").read_text().strip()
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)
