"""One recipe pilot for the cpu2 tier: a base design of the tier with its recipe changed, trained on one thread
and measured with the tier's extraction settings; results go to data/zoo/cpu2/pilots/ (metrics + run summary).

    .venv/bin/python scripts/studies/cpu2_pilot.py gpt2 --name gpt2-wd01 --weight-decay 0.1
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from dataclasses import asdict, replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from zoo.__main__ import DEFAULT_CACHE  # noqa: E402
from zoo.grid import tier  # noqa: E402
from zoo.pipeline import prepare  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("design", help="a cpu2 run name, e.g. gpt2")
    p.add_argument("--name", required=True)
    p.add_argument("--lr", type=float)
    p.add_argument("--weight-decay", type=float)
    p.add_argument("--steps", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument(
        "--dyt-alpha",
        type=float,
        nargs=3,
        metavar=("ATTN", "OTHER", "FINAL"),
        help="DyT's initial alpha before attention, at the other block norms and at the final norm",
    )
    args = p.parse_args(argv)
    spec = next(r for r in tier("cpu2") if r.name == args.design)
    changes = {k: v for k, v in (("lr", args.lr), ("weight_decay", args.weight_decay), ("steps", args.steps),
                                 ("batch_size", args.batch_size)) if v is not None}  # fmt: skip
    spec = replace(spec, name=args.name, recipe=replace(spec.recipe, **changes))
    if args.dyt_alpha:
        spec = replace(spec, changes={**spec.changes, "dyt_alpha": list(args.dyt_alpha)})
        changes["dyt_alpha"] = list(args.dyt_alpha)

    import torch

    from zoo.pipeline import _train_one

    torch.set_num_threads(1)
    data = prepare("cpu2", DEFAULT_CACHE)
    pilots = replace(data, runs_dir=data.runs_dir.parent / "pilot-runs")
    summary = _train_one(spec, pilots, threads=1, device="cpu")
    run = pilots.runs_dir / args.name
    out = REPO / "runs" / "cpu2-pilots" / args.name
    settings = ["--seq-len", "128", "--n-seq", "10", "--batch-size", "5", "--threads", "1"]  # the tier's
    command = [str(REPO / ".venv" / "bin" / "archcast"), "extract", "--dirs", str(run), "--model-id", args.name,
               "--out", str(out), *settings]  # fmt: skip
    subprocess.run(command, check=True)
    target = REPO / "data" / "zoo" / "cpu2" / "pilots"
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy(out / "metrics.parquet", target / f"{args.name}.parquet")
    record = {"spec": asdict(spec), "changes_from_tier_recipe": changes,
              "training": {k: summary[k] for k in ("n_params", "final_loss", "seconds")}, "threads": 1,
              "commands": [" ".join(["python", "scripts/studies/cpu2_pilot.py", *(argv or sys.argv[1:])]),
                           " ".join(["archcast", *command[1:]])]}  # fmt: skip
    (target / f"{args.name}.json").write_text(json.dumps(record, indent=2, default=str) + "\n")
    print(json.dumps(record["training"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
