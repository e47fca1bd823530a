"""The wheel carries the served model: an installed (non-editable) archcast predicts without a checkout."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile

from .conftest import REPO


def test_an_installed_wheel_serves_the_committed_model_without_the_repository(tmp_path):
    build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", str(REPO)]
    subprocess.run([*build, "-w", str(tmp_path)], check=True, capture_output=True)
    [wheel] = tmp_path.glob("archcast-*.whl")
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    current = (REPO / "models" / "CURRENT").read_text().strip()
    assert (site / "archcast_models" / "CURRENT").read_text().strip() == current
    script = (
        "import json, service, service.predictor as p; m = p.Predictor(); "
        "print(json.dumps([service.__file__, str(p.default_models_dir()), m.version, "
        "m.predict(json.load(open(p.REPO.parent / 'cfg.json'))).n_layers]))"
    )
    (tmp_path / "cfg.json").write_text((REPO / "examples" / "configs" / "gpt2.json").read_text())
    env = {k: v for k, v in os.environ.items() if k != "ARCHCAST_MODELS"}
    env["PYTHONPATH"] = str(site)  # ahead of the editable install of this checkout
    out = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    module, models, version, n_layers = json.loads(out.stdout.strip().splitlines()[-1])
    assert module.startswith(str(site)) and models.startswith(str(site / "archcast_models"))
    assert version == current and n_layers == 12
