"""`python -m extraction` (also `archcast extract`): measure behaviour metrics over checkpoint series.

Examples:
  python -m extraction --dirs 'runs/zoo/llama-base/step*' --out out/llama
  python -m extraction --model EleutherAI/pythia-14m --revisions pythia --device cuda --out out/p14m
  python -m extraction --model EleutherAI/pythia-70m --revisions step0,step1000 --shard 0/4 --out out/p70m
  python -m extraction --merge --out out/p70m     # after all shards finished
  python -m extraction --gguf gemma-3-270m-q4_k_m.gguf --seq-len 256 --out out/gemma
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from extraction.measure import Settings
from extraction.probe import DEFAULT_PROBE
from extraction.store import merge
from extraction.units import gguf_unit, hub_units, local_units, shard


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="archcast extract", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    source = p.add_mutually_exclusive_group()
    source.add_argument("--dirs", help="glob of checkpoint folders, or of run folders holding them")
    source.add_argument("--model", help="hub model id (with --revisions)")
    source.add_argument("--gguf", type=Path, help="a GGUF file (llama.cpp / Ollama), dequantised by transformers")
    p.add_argument("--model-id", help="name to record for --dirs units (default: the parent folder's name)")
    p.add_argument("--revisions", default="pythia", help="'pythia' (154 step branches) or a comma list")
    p.add_argument("--probe", type=Path, default=DEFAULT_PROBE, help="probe text file (default: data/probe)")
    p.add_argument("--out", type=Path, required=True, help="output folder (units/, manifest.json, metrics.parquet)")
    p.add_argument("--n-seq", type=int, default=10, help="probe sequences N (default 10)")
    p.add_argument("--seq-len", type=int, default=2048, help="tokens per sequence S, capped at the context")
    p.add_argument("--batch-size", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--bos", choices=["auto", "on", "off"], default="auto", help="BOS token first (auto: if any)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 …")
    p.add_argument("--dtype", default="auto", help="auto (float32 on every device), float32, bfloat16, float16")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--no-linearity", action="store_true", help="skip the linearity metrics (saves d² memory)")
    p.add_argument("--attention", action="store_true", help="also attn_bos_share per layer (eager attention)")
    p.add_argument("--shard", help="i/N: run only this worker's share of the units")
    p.add_argument("--overwrite", action="store_true", help="re-measure units already finished")
    p.add_argument("--merge", action="store_true", help="only merge finished units into metrics.parquet")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.merge:
        frame = merge(args.out)
        print(f"merged {frame[['model_id', 'revision']].drop_duplicates().shape[0]} units into {args.out}")
        return 0
    if not (args.dirs or args.model or args.gguf):
        parser().error("give --dirs GLOB, --model ID or --gguf FILE")
    for name in ("n_seq", "seq_len", "batch_size"):
        if getattr(args, name) <= 0:
            parser().error(f"--{name.replace('_', '-')} must be positive")
    if not args.probe.is_file():
        parser().error(f"probe file {args.probe} does not exist")
    if args.gguf:
        units = [gguf_unit(args.gguf, args.model_id)]
    elif args.dirs:
        units = local_units(args.dirs, args.model_id)
    else:
        units = hub_units(args.model, args.revisions)
    settings = Settings(
        n_seq=args.n_seq,
        seq_len=args.seq_len,
        batch_size=args.batch_size,
        seed=args.seed,
        bos={"auto": None, "on": True, "off": False}[args.bos],
        device=args.device,
        dtype=args.dtype,
        linearity=not args.no_linearity,
        attention=args.attention,
    )
    settings.resolved_dtype()  # fail early on a bad --dtype
    if args.threads > 0:
        import torch

        torch.set_num_threads(args.threads)

    from extraction.run import run

    summary = run(shard(units, args.shard), args.probe, args.out, settings, overwrite=args.overwrite)
    return 1 if summary.failed and not (summary.done or summary.skipped) else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
