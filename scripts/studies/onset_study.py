"""The onset layer on held-out designs, with the margin error's shared offset and with independent layers.

    .venv/bin/python scripts/studies/onset_study.py [--seeds 5] [--tier-dir data/zoo/cpu2]

One design held out at a time, as training.onset_error.mechanism_error, with the served model's hyperparameters,
repeated for several LightGBM seeds (the folds' regressors move with the seed: one seed's figure is not the
method's).
Prints how many runs it reads (beside the served model's count), then, per seed, the share of held-out runs
and of designs whose onset layer is exact, both ways; then the designs' score split by what their seeds say (one
run, seeds that all agree, seeds that disagree).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from modelstore import read_manifest, resolve
from training.dataset import build, load_configs, load_measured
from training.mechanism import mechanism_targets
from training.onset_error import ONSET_DESIGNS, mechanism_error
from training.report import AGREEMENT_WORDS

REPO = Path(__file__).resolve().parents[2]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--tier-dir", type=Path, default=REPO / "data" / "zoo" / "cpu2")
    args = p.parse_args()
    manifest = read_manifest(resolve(REPO / "models"))
    best = {t.name: t.params for t in manifest.targets}
    measured = load_measured(args.tier_dir, None)
    # which runs these figures are on: the served model's count, or more (runs that landed after its retrain)
    runs, trained = measured.metrics["model_id"].nunique(), manifest.domain["models"]
    print(f"{runs} runs in {args.tier_dir} (the served {manifest.version} was trained on {trained})")
    configs = load_configs(measured.configs_dirs)
    table = build(measured.metrics["model_id"], configs, mechanism_targets(measured.metrics))
    scores = {"shared offset": [], "independent layers": []}
    bins = {name: [] for name in scores}
    parts = {name: [] for name in scores}  # per seed: the designs' score by what their seeds say
    print(f"{'seed':>4}  {'shared offset (runs, designs)':>30}  {'independent layers (runs, designs)':>36}")
    for seed in range(args.seeds):
        row = []
        for name, shared in (("shared offset", True), ("independent layers", False)):
            got = mechanism_error(table, best, seed, shared_offset=shared)
            scores[name].append((got["onset_layer_exact"], got[ONSET_DESIGNS]))
            row.append(f"{got['onset_layer_exact']:.1%}, {got[ONSET_DESIGNS]:.1%}")
            bins[name].append(got["onset_chance_calibration"])
            parts[name].append(got["onset_layer_exact_designs_by_seed_agreement"])
        print(f"{seed:>4}  {row[0]:>30}  {row[1]:>36}")
    for name, values in scores.items():
        runs, designs = np.array(values).T
        print(f"{name}: runs {runs.min():.1%}–{runs.max():.1%} (mean {runs.mean():.1%}), "
              f"designs {designs.min():.1%}–{designs.max():.1%} (mean {designs.mean():.1%})")  # fmt: skip
        for kind, words in AGREEMENT_WORDS.items():
            exact = [seed[kind]["exact"] for seed in parts[name] if kind in seed]
            if exact:
                n = parts[name][0][kind]["designs"]
                print(f"  designs {words}: {n}, exact in {min(exact):.1%}–{max(exact):.1%} (mean {np.mean(exact):.1%})")
        # whether the onset's chance means what it says, pooled over the seeds: per bin of chance
        for low in sorted({b["low"] for seed in bins[name] for b in seed}):
            pooled = [b for seed in bins[name] for b in seed if b["low"] == low]
            n = sum(b["runs"] for b in pooled)
            chance = sum(b["mean_chance"] * b["runs"] for b in pooled) / n
            right = sum(b["right"] * b["runs"] for b in pooled) / n
            print(f"  onset chance from {low:.1f}: {n} held-out runs, mean chance {chance:.2f}, right in {right:.0%}")


if __name__ == "__main__":
    main()
