"""The data card of a zoo tier committed run by run (data/zoo/<tier>/): run table, figures, noise floor,
variance decomposition, one-factor effects, and which changes remove or delay the BOS mechanism.

Reads only the committed run files, so it can be regenerated whenever runs land:
  python -m training.tier_card --tier-dir data/zoo/cpu2
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from emergence.mechanism import BOS_SHARE, shows_mechanism  # noqa: E402
from training.zoo_tables import DID_NOT_TRAIN, family_figures, markdown_table, run_table  # noqa: E402
from training.zoo_tier import load_provenance, load_tier  # noqa: E402

FLOOR_METRICS = ("ma_ratio", "ma_ratio_nonbos", "linearity", "linearity_nores")


def noise_floor(metrics: pd.DataFrame, table: pd.DataFrame) -> pd.DataFrame:
    """Per metric: median |log(curve_a / curve_b)| over every pair of seeds of a design, layer and step."""
    rows = []
    for _, runs in table.groupby("design"):
        for a, b in itertools.combinations(sorted(runs["run"]), 2):
            pair = metrics[metrics["model_id"] == a].merge(
                metrics[metrics["model_id"] == b], on=["step", "layer"], suffixes=("_a", "_b")
            )
            for metric in FLOOR_METRICS:
                x, y = pair[f"{metric}_a"].to_numpy(), pair[f"{metric}_b"].to_numpy()
                ok = (x > 0) & (y > 0)
                rows += [{"metric": metric, "pair": f"{a} / {b}", "value": v} for v in np.abs(np.log(x[ok] / y[ok]))]
            share = np.abs(pair["top1_bos_share_a"] - pair["top1_bos_share_b"])
            rows += [{"metric": "top1_bos_share (absolute)", "pair": f"{a} / {b}", "value": v} for v in share]
    if not rows:
        return pd.DataFrame(columns=["metric", "median", "p90", "pairs"])
    frame = pd.DataFrame(rows)
    return (
        frame.groupby("metric")
        .agg(median=("value", "median"), p90=("value", lambda v: v.quantile(0.9)), pairs=("pair", "nunique"))
        .round(4)
        .reset_index()
    )


def variance_decomposition(table: pd.DataFrame, column: str, transform=np.log) -> dict:
    """Seed variance: pooled within-design variance over replicated designs. Architecture variance: variance
    of the design means over all designs, less the part seed noise contributes to a mean of n runs."""
    data = table[table["trained"]].dropna(subset=[column]).copy()
    data["y"] = transform(data[column].astype(float))
    groups = data.groupby("design")["y"]
    replicated = [g for _, g in groups if len(g) > 1]
    if not replicated:
        return {"designs": groups.ngroups, "replicated": 0}
    dof = sum(len(g) - 1 for g in replicated)
    seed_var = sum(((g - g.mean()) ** 2).sum() for g in replicated) / dof
    means, sizes = groups.mean(), groups.size()
    arch_var = max(float(means.var(ddof=1)) - seed_var * float((1 / sizes).mean()), 0.0)
    return {
        "designs": int(groups.ngroups),
        "replicated": len(replicated),
        "seed_var": round(float(seed_var), 4),
        "arch_var": round(arch_var, 4),
        "ratio": round(arch_var / seed_var, 2) if seed_var > 0 else float("inf"),
    }


def base_of(name: str, names: set[str]) -> str | None:
    """The one-factor base of a variant: its family's base run (llama-kvbias → llama); None for bases/mixes."""
    head = name.split("-")[0]
    return head if head != name and head in names and not name.startswith("mix") else None


def one_factor(table: pd.DataFrame) -> pd.DataFrame:
    """Each variant's effect on its base: final strongest-layer ratio (log), mechanism layers, BOS onset."""
    seeds = table[table["seed"] == 0].set_index("run")
    spread = table.groupby("design")["ratio_end"].agg(lambda r: float(np.log(r).std(ddof=1)) if len(r) > 1 else np.nan)
    names = set(seeds.index)
    rows = []
    for name, row in seeds.iterrows():
        base = base_of(name, names)
        if base is None:
            continue
        b = seeds.loc[base]
        rows.append(
            {
                "variant": name,
                "base": base,
                "log_ratio_effect": round(float(np.log(row["ratio_end"] / b["ratio_end"])), 3),
                "base_seed_sd": round(float(spread.get(b["design"], np.nan)), 3),
                "variant_seed_sd": round(float(spread.get(row["design"], np.nan)), 3),
                "ratio_end": row["ratio_end"],
                "base_ratio_end": b["ratio_end"],
                "mechanism_layers": row["mechanism_layers"],
                "base_mechanism_layers": b["mechanism_layers"],
                "bos_onset_step": row["bos_onset_step"],
                "base_bos_onset_step": b["bos_onset_step"],
                "trained": bool(row["trained"]),
            }
        )
    return pd.DataFrame(rows)


def card(
    tier: str, metrics: pd.DataFrame, table: pd.DataFrame, provenance: dict, figures: list[Path], has_pilots=False
) -> str:
    last = metrics[metrics["step"] == metrics.groupby("model_id")["step"].transform("max")]
    bos_pairs = float((last["top1_bos_share"] >= BOS_SHARE).mean())
    mech_pairs = float(shows_mechanism(last).mean())
    floor = noise_floor(metrics, table)
    ratio_var = variance_decomposition(table, "ratio_end")
    onset_var = variance_decomposition(table, "bos_onset_step", transform=lambda s: np.log(np.maximum(s, 1)))
    effects = one_factor(table)
    recipes = {json.dumps({k: v for k, v in p["spec"]["recipe"].items() if k != "seed"}) for p in provenance.values()}
    recipe_line = (
        f"- Recipe: {next(iter(recipes))} (seeds aside)"
        if len(recipes) == 1
        else f"- Recipes: {len(recipes)} different (each run's is in its provenance and `recipe_*` columns)"
    )
    corpus = next(iter(provenance.values()))["corpus"]
    stalled = table[~table["trained"]]
    lines = [
        f"# Zoo ground truth, tier `{tier}`",
        "",
        f"{len(table)} runs committed ({table['design'].nunique()} architectures and "
        f"{len(table) - table['design'].nunique()} seed replicates), "
        f"{table['checkpoints'].min()}–{table['checkpoints'].max()} checkpoints each, every layer "
        f"({len(metrics):,} rows in `runs/*.parquet`, one file per run with its provenance in `runs/<run>.json`; "
        "`training.zoo_tier.load_tier` reads them as one table). Training continues in the background across "
        "sessions; this card is regenerated as runs land:",
        "",
        "```bash",
        f"nohup bash scripts/zoo_tier.sh {tier} > runs/{tier}-driver.log 2>&1 &   # train, measure, commit run by run",
        f".venv/bin/python -m training.tier_card --tier-dir data/zoo/{tier}    # this card, its figures and tables",
        "```",
        "",
        f"- Corpus: {corpus['source']}, train text sha256 `{corpus['sha256'][:16]}…`; probe `data/probe/probe.txt`.",
        recipe_line,
        f"- The mechanism at the last checkpoint: top-1 on BOS (share ≥ {BOS_SHARE}) in **{bos_pairs:.0%}** of "
        f"(run, layer) pairs ({len(last)} pairs); BOS top-1 also ≥ 2× the largest non-BOS value in "
        f"{mech_pairs:.0%}. The `cpu` tier had its top-1 on BOS in 19 % of pairs.",
    ]
    if not stalled.empty:
        lines.append(
            f"- Did not train (final loss > median + {DID_NOT_TRAIN}): "
            + ", ".join(f"`{r}` ({loss})" for r, loss in zip(stalled["run"], stalled["final_loss"], strict=True))
            + "; kept in the data, left out of the variance decomposition."
        )
    if has_pilots:
        lines.append("- Recipe pilots, and why DyT starts at a small α here: `pilots/README.md`.")
    lines += ["", "## Seed noise floor", ""]
    if floor.empty:
        lines.append("No design has two seeds committed yet.")
    else:
        lines += [
            "Median and 90th percentile of |log(curve_a / curve_b)| between two seeds of one design, over every "
            "layer and checkpoint (for the BOS share: the absolute difference).",
            "",
            markdown_table(floor),
        ]
    lines += [
        "",
        "## How much the architecture decides",
        "",
        "Seed variance: the pooled within-design variance over replicated designs; architecture variance: the "
        "variance of the design means, less what seed noise adds to them.",
        "",
        "| quantity | designs | replicated | seed variance | architecture variance | ratio |",
        "|---|---|---|---|---|---|",
    ]
    for label, v in (("log final strongest-layer ratio", ratio_var), ("log BOS onset step", onset_var)):
        lines.append(
            f"| {label} | {v['designs']} | {v['replicated']} | {v.get('seed_var', '–')} | "
            f"{v.get('arch_var', '–')} | {v.get('ratio', '–')} |"
        )
    lines += ["", "## One-factor effects (seed 0 runs, against their family's base)", ""]
    if effects.empty:
        lines.append("No variant committed yet.")
    else:
        lines += [
            "`log_ratio_effect` = log(variant's final strongest-layer ratio / base's); compare it with the seed "
            "standard deviations of the same quantity where the design is replicated.",
            "",
            markdown_table(effects),
            "",
            "Changes that remove or delay the BOS mechanism (fewer mechanism layers than the base, or no BOS onset, "
            "or an onset later than the base's by more than 2×):",
            "",
        ]
        removed = [
            f"- `{r.variant}`: mechanism layers {r.mechanism_layers} vs {r.base_mechanism_layers}, "
            f"BOS onset {r.bos_onset_step} vs {r.base_bos_onset_step}"
            for r in effects.itertuples()
            if int(r.mechanism_layers.split("/")[0]) < int(r.base_mechanism_layers.split("/")[0])
            or (np.isnan(r.bos_onset_step) and not np.isnan(r.base_bos_onset_step))
            or r.bos_onset_step > 2 * r.base_bos_onset_step
        ]
        lines += removed or ["- none so far"]
    lines += finetune_lines(metrics, provenance)
    shown = table.drop(columns=["design", "trained"])
    lines += ["", "## Runs", "", markdown_table(shown), "", "## Figures", ""]
    lines += [f"![{p.stem}](figures/{p.name})" for p in figures]
    lines.append("")
    return "\n".join(lines)


def finetuned(metrics: pd.DataFrame, provenance: dict) -> pd.DataFrame:
    """Per fine-tuned run: at the end of pretraining and at the end of the fine-tuning, the validation loss (on
    the held-out pretraining text), the median layer linearity (with and without the residual), the strongest
    layer's ratio and the mechanism's layers."""
    rows = []
    for name, record in sorted(provenance.items()):
        tuning = record["spec"].get("finetune")
        if not tuning:
            continue
        run = metrics[metrics["model_id"] == name]
        for phase, step in (("pretrained", record["spec"]["recipe"]["steps"]), ("fine-tuned", int(run["step"].max()))):
            at = run[run["step"] == step]
            rows.append({
                "run": name, "phase": phase, "step": step,
                "val_loss": round(float(at["val_loss"].iloc[0]), 3) if "val_loss" in at else float("nan"),
                "linearity": round(float(at["linearity"].median()), 4),
                "linearity_nores": round(float(at["linearity_nores"].median()), 4),
                "ratio_max": round(float(at["ma_ratio"].max()), 2),
                "mechanism_layers": f"{int(shows_mechanism(at).sum())}/{len(at)}",
            })  # fmt: skip
    return pd.DataFrame(rows)


def finetune_lines(metrics: pd.DataFrame, provenance: dict) -> list[str]:
    table = finetuned(metrics, provenance)
    if table.empty:
        return []
    record = next(p for p in provenance.values() if p["spec"].get("finetune"))
    tuning, source = record["spec"]["finetune"], record["corpus"].get("finetune", {}).get("source", "?")
    wide = table.pivot(index="run", columns="phase", values="linearity_nores")
    fell = int((wide["fine-tuned"] > wide["pretrained"]).sum())
    return [
        "",
        "## Fine-tuning",
        "",
        f"Each run pretrained as its cpu2 namesake, then continued {tuning['steps']} steps of {tuning['batch_size']} "
        f"× {record['recipe']['seq_len']} tokens on {source} at lr {tuning['lr']:g} (the pretraining's final lr), "
        "the optimizer's state carried over; measured with the same probe. `val_loss` is the loss on the held-out "
        "pretraining text (16 windows). Nonlinearity (1 − linearity without the residual, median over layers) "
        f"fell in the fine-tuning in {fell} of {len(wide)} runs.",
        "",
        markdown_table(table),
    ]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tier-dir", type=Path, default=Path("data/zoo/cpu2"))
    args = p.parse_args(argv)
    metrics, provenance = load_tier(args.tier_dir), load_provenance(args.tier_dir)
    configs = {name: json.loads((args.tier_dir / "configs" / f"{name}.json").read_text()) for name in provenance}
    table = run_table(metrics, provenance, configs)
    table.drop(columns=["design"]).to_csv(args.tier_dir / "runs.csv", index=False)
    figures = family_figures(metrics, table, args.tier_dir)
    has_pilots = (args.tier_dir / "pilots" / "README.md").exists()
    text = card(args.tier_dir.name, metrics, table, provenance, figures, has_pilots=has_pilots)
    (args.tier_dir / "README.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
