"""A zoo tier committed run by run: data/zoo/<tier>/runs/<run>.parquet (its metrics) + <run>.json (provenance).

Runs of a long tier land one at a time, over several sessions, so each finished run is committed on its own
and the tier's table is the union of its run files: nothing is rewritten when a run is added, and
`archcast zoo run --tier <tier>` trains only the runs that have no file here.

Usage (what scripts/zoo_tier.sh runs for each finished run):
  python -m training.zoo_tier add --run ~/.cache/archcast/zoo/cpu2/runs/llama --metrics runs/cpu2/llama \
      --tier-dir data/zoo/cpu2 --command "archcast extract …"
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
from pathlib import Path

import pandas as pd

# the recipe fields written beside each run's metrics as recipe_<field> (zoo.spec.Recipe's names)
RECIPE_COLUMNS = ("steps", "batch_size", "seq_len", "lr", "min_lr_frac", "warmup", "weight_decay", "bos", "seed")


def run_files(tier_dir: Path) -> list[Path]:
    return sorted((Path(tier_dir) / "runs").glob("*.parquet"))


def load_tier(tier_dir: Path) -> pd.DataFrame:
    """Every committed run of the tier, one metrics table."""
    files = run_files(tier_dir)
    if not files:
        raise ValueError(f"no run files under {Path(tier_dir) / 'runs'}")
    return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)


def load_provenance(tier_dir: Path) -> dict[str, dict]:
    """run name → its provenance record."""
    return {p.stem: json.loads(p.read_text()) for p in sorted((Path(tier_dir) / "runs").glob("*.json"))}


def add_run(run_dir: Path, metrics_dir: Path, tier_dir: Path, command: str) -> Path:
    """Copy one measured run into the tier: metrics, config and provenance. Returns the metrics file."""
    run_dir, metrics_dir, tier_dir = Path(run_dir), Path(metrics_dir), Path(tier_dir)
    summary = json.loads((run_dir / "run.json").read_text())
    metrics = pd.read_parquet(metrics_dir / "metrics.parquet")
    name = run_dir.name
    metrics = metrics[metrics["model_id"] == name].copy()
    recipe = summary["spec"]["recipe"]
    # the recipe travels with every row, so a run's table is readable on its own (training reads these columns)
    for key in RECIPE_COLUMNS:
        metrics[f"recipe_{key}"] = recipe[key]
    steps = metrics["step"].astype("int64")
    metrics["tokens"] = steps.clip(upper=recipe["steps"]) * int(summary["tokens_per_step"])
    finetune = summary["spec"].get("finetune")
    if finetune:  # the continuation's steps see its own batches
        metrics["tokens"] += (steps - recipe["steps"]).clip(lower=0) * finetune["batch_size"] * recipe["seq_len"]
    if "val_losses" in summary:  # each checkpoint's loss on the held-out text
        metrics["val_loss"] = steps.astype(str).map(summary["val_losses"]).astype(float)
    expected = len(summary["checkpoints"])
    if metrics["step"].nunique() != expected:
        raise ValueError(f"{name}: {metrics['step'].nunique()} checkpoints measured, the run saved {expected}")
    (tier_dir / "runs").mkdir(parents=True, exist_ok=True)
    (tier_dir / "configs").mkdir(parents=True, exist_ok=True)
    last = run_dir / f"step{max(summary['checkpoints'])}"
    shutil.copy(last / "config.json", tier_dir / "configs" / f"{name}.json")
    corpus = json.loads((run_dir.parent.parent / "corpus.json").read_text())
    manifest = json.loads((metrics_dir / "manifest.json").read_text())
    provenance = {
        "run": name,
        "spec": summary["spec"],
        "training": {
            k: summary[k]
            for k in (
                "n_params",
                "initial_loss",
                "final_loss",
                "seconds",
                "tokens_per_step",
                "val_loss",
                "pretrained_final_loss",
            )
            if k in summary
        },  # fmt: skip
        "training_threads": summary.get("threads"),
        "recipe": recipe,
        "sittings": summary.get("sittings", []),  # one entry per start or resume of the training
        "tvr_rescales": summary.get("tvr_rescales"),
        "corpus": {k: corpus[k] for k in ("source", "sha256", "finetune") if k in corpus},
        "commands": [f"archcast zoo run --tier {tier_dir.name} --only {name} --threads {summary['threads']}", command],
        "extraction": manifest["settings"],
        "probe_sha256": manifest["probe_sha256"],
        "versions": {
            "torch": manifest["torch"],
            "transformers": manifest["transformers"],
            "python": platform.python_version(),
        },  # fmt: skip
        "hardware": {"machine": platform.machine(), "cpus": len(os.sched_getaffinity(0)), "device": "cpu"},
    }
    target = tier_dir / "runs" / f"{name}.parquet"
    metrics.to_parquet(target, index=False)
    (tier_dir / "runs" / f"{name}.json").write_text(json.dumps(provenance, indent=2, default=str) + "\n")
    return target


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    add = sub.add_parser("add", help="commit-ready files for one measured run")
    add.add_argument("--run", type=Path, required=True, help="the trained run folder (with run.json)")
    add.add_argument("--metrics", type=Path, required=True, help="the extraction output folder of that run")
    add.add_argument("--tier-dir", type=Path, required=True, help="e.g. data/zoo/cpu2")
    add.add_argument("--command", required=True, help="the extraction command, recorded in provenance")
    args = p.parse_args(argv)
    print(add_run(args.run, args.metrics, args.tier_dir, args.command))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
