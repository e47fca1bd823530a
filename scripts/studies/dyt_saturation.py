"""How far a DyT design of the cpu2 tier trains in its first steps, and how much of each DyT's input saturates tanh.

Trains the tier's recipe (its lr schedule, batches and seed) for a few steps in memory, one thread, and prints
every 25 steps the mean loss and, per DyT, the share of inputs with |tanh(αx)| > 0.99 and the current α:

    .venv/bin/python scripts/studies/dyt_saturation.py llama-dyt --steps 100 --dyt-alpha 1.0 1.0 1.0
    .venv/bin/python scripts/studies/dyt_saturation.py llama-dyt --steps 300 --dyt-alpha 0.05 0.01 0.01
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

SATURATED = 0.99  # |tanh(αx)| above this: the input's size is lost


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("design", help="a cpu2 run name, e.g. llama-dyt")
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--dyt-alpha", type=float, nargs=3, metavar=("ATTN", "OTHER", "FINAL"))
    args = p.parse_args(argv)

    import numpy as np
    import torch
    from transformers import PreTrainedTokenizerFast

    import archmods
    from zoo.__main__ import DEFAULT_CACHE
    from zoo.grid import tier
    from zoo.pipeline import prepare
    from zoo.train import Batches, optimizer_for, train_step

    torch.set_num_threads(1)
    spec = next(r for r in tier("cpu2") if r.name == args.design)
    if args.dyt_alpha:
        spec = replace(spec, changes={**spec.changes, "dyt_alpha": list(args.dyt_alpha)})
    recipe = spec.recipe
    data = prepare("cpu2", DEFAULT_CACHE)
    tokenizer = PreTrainedTokenizerFast.from_pretrained(data.tokenizer_dir)
    torch.manual_seed(recipe.seed)
    model = archmods.build_model(spec.config(len(tokenizer), tokenizer.bos_token_id, tokenizer.eos_token_id)).train()
    optimizer = optimizer_for(model, recipe)  # and each step below as the tier trains (zoo.train)
    batches = Batches(np.load(data.tokens), recipe, tokenizer.bos_token_id)
    saturation: dict[str, tuple[float, float]] = {}

    def watch(name: str):
        def hook(module, inputs, output):
            with torch.no_grad():
                share = (torch.tanh(module.alpha * inputs[0]).abs() > SATURATED).float().mean()
            saturation[name] = float(share), float(module.alpha.detach())

        return hook

    for name, module in model.named_modules():
        if isinstance(module, archmods.DyT):
            module.register_forward_hook(watch(name))
    print(f"{spec.name}: changes {spec.changes}, lr {recipe.lr}")
    losses = []
    for step in range(args.steps):
        losses.append(train_step(model, optimizer, batches.next(), step, recipe, spec.name))
        if (step + 1) % 25 == 0:
            shares = "  ".join(f"{n}: {s:.2f} (α {a:.2f})" for n, (s, a) in saturation.items())
            print(f"step {step + 1}: loss {np.mean(losses[-25:]):.3f}  saturated  {shares}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
