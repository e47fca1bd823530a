"""`python -m zoo` (also `archcast zoo`): train the reference zoo.

Examples:
  python -m zoo list --tier cpu
  python -m zoo corpus --cache ~/.cache/archcast          # fetch the pinned corpus (apt-get)
  python -m zoo run --tier smoke --cache /tmp/zoo          # seconds, uses the committed slice
  python -m zoo run --tier cpu --jobs 2 --threads 1        # the default data set (~1 h on 2 cores)
  python -m zoo run --tier gpu --device cuda               # larger and longer, for a CUDA machine
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from contracts import cache_root
from zoo.grid import TIERS

DEFAULT_CACHE = cache_root()


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="archcast zoo", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = p.add_subparsers(dest="command", required=True)
    for name in ("run", "list", "corpus"):
        s = sub.add_parser(name)
        s.add_argument("--tier", default="cpu", choices=list(TIERS))
        s.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="corpus, tokenizer and checkpoints go here")
        if name == "run":
            s.add_argument("--only", help="comma list of run names (default: the whole tier)")
            s.add_argument("--jobs", type=int, default=1, help="runs trained in parallel processes")
            s.add_argument("--threads", type=int, default=0, help="torch threads per run (0: torch's default)")
            s.add_argument("--device", default="cpu")
            s.add_argument(
                "--cheapest-first",
                action="store_true",
                help="train the missing runs in order of cost, so an interrupted sitting lands the most designs",
            )
    return p


def main(argv: list[str] | None = None) -> int:
    from zoo.grid import tier

    args = parser().parse_args(argv)
    runs = tier(args.tier)
    if args.command == "list":
        for r in runs:
            print(
                f"{r.name:20s} {r.family:9s} d={r.d:<4d} L={r.layers:<2d} H={r.heads:<2d} ffn={r.ffn_ratio:g} "
                f"{json.dumps(r.overrides)} {json.dumps(r.changes)}"
            )
        print(f"{len(runs)} runs, {len(runs[0].checkpoint_steps())} checkpoints each, recipe {runs[0].recipe}")
        return 0
    from zoo.pipeline import prepare, run_all

    data = prepare(args.tier, args.cache)
    if args.command == "corpus":
        print(f"corpus {data.corpus.train} sha256={data.corpus.sha256} ({data.corpus.source})")
        return 0
    if args.only:
        wanted = set(args.only.split(","))
        unknown = wanted - {r.name for r in runs}
        if unknown:
            raise ValueError(f"unknown runs {sorted(unknown)}; see `archcast zoo list --tier {args.tier}`")
        runs = [r for r in runs if r.name in wanted]
    if args.cheapest_first:
        runs = sorted(runs, key=lambda r: r.relative_cost())
    failed = run_all(runs, data, args.jobs, args.threads, args.device)
    return 1 if failed else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (ValueError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
