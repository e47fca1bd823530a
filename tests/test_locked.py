"""Served numbers that survive a fresh install: the installed packages are the locked ones, the Bento installs
the locked closure of what it serves with, and the served model refuses answers other than those recorded
with it (and warns where the libraries computing them changed version)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
from packaging.utils import canonicalize_name

from service.predictor import LibraryVersionWarning, ModelError, Predictor

from .conftest import REPO


def pins(path) -> dict[str, str]:
    lines = [line for line in path.read_text().splitlines() if line and not line.startswith("#")]
    return {canonicalize_name(name): version for name, version in (line.split("==") for line in lines)}


def test_every_installed_package_is_at_its_locked_version():
    sys.path.insert(0, str(REPO / "scripts"))
    from lock import installed

    locked = pins(REPO / "requirements.lock")
    got = {name: dist.version.split("+")[0] for name, dist in installed().items()}
    assert {n: v for n, v in got.items() if locked.get(n) != v} == {}


def test_the_serve_lock_is_the_served_closure_at_the_locked_versions():
    locked, serve = pins(REPO / "requirements.lock"), pins(REPO / "requirements-serve.lock")
    assert serve and all(locked[name] == version for name, version in serve.items())
    assert {"bentoml", "onnxruntime", "numpy", "scipy", "onnx"} <= set(serve)
    assert 'requirements_txt: "./requirements-serve.lock"' in (REPO / "bentofile.yaml").read_text()
    # the lock files are what scripts/lock.py writes from this environment
    check = subprocess.run([sys.executable, str(REPO / "scripts" / "lock.py"), "--check"], capture_output=True)
    assert check.returncode == 0, check.stderr.decode()


@pytest.fixture
def committed(tmp_path):
    version = (REPO / "models" / "CURRENT").read_text().strip()
    shutil.copytree(REPO / "models" / version, tmp_path / version)
    (tmp_path / "CURRENT").write_text(version + "\n")
    return tmp_path / version


def rewrite(folder, change) -> None:
    manifest = json.loads((folder / "manifest.json").read_text())
    change(manifest["expected"])
    (folder / "manifest.json").write_text(json.dumps(manifest))


def test_the_committed_model_records_its_answers_and_gives_them_here(committed):
    expected = json.loads((committed / "manifest.json").read_text())["expected"]
    assert set(expected["outputs"]) == set(json.loads((committed / "manifest.json").read_text())["reference_rows"])
    Predictor(committed.parent)  # loads: the check passes on the locked libraries


def test_an_answer_other_than_the_recorded_one_is_refused(committed):
    def nudge(expected):
        name = next(iter(expected["outputs"]))
        curves = expected["outputs"][name]["ma_ratio"]
        curves[0][-1] *= 1.001  # beyond float rounding, far below anything a user would see

    rewrite(committed, nudge)
    with pytest.raises(ModelError, match=r"answers reference config .* \(ma_ratio\) differently"):
        Predictor(committed.parent)


def test_other_library_versions_warn_but_serve_when_the_answers_agree(committed):
    rewrite(committed, lambda expected: expected["libraries"].update(onnxruntime="0.0.1"))
    with pytest.warns(LibraryVersionWarning, match=r"onnxruntime 0\.0\.1 → "):
        Predictor(committed.parent)
