"""What every zoo data card shows: the run table (one row per run) and one figure per family, for the first
CPU tier's card (training.datacard) and the cards of tiers committed run by run (training.tier_card)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from emergence.mechanism import BOS_SHARE, shows_mechanism  # noqa: E402
from training.design import config_rows, design_key  # noqa: E402
from training.mechanism import onset_step  # noqa: E402

DID_NOT_TRAIN = 1.0  # final loss this far above the tier's median: the run did not learn


def design_columns(spec: dict) -> dict:
    """A run's design as table columns (the spec saved in run.json)."""
    return {
        "family": spec["family"],
        "d": spec["d"],
        "layers": spec["layers"],
        "heads": spec["heads"],
        "ffn_ratio": spec["ffn_ratio"],
        "changes": json.dumps({**spec["overrides"], **spec["changes"]}, sort_keys=True),
    }


def bos_onset(run: pd.DataFrame) -> float:
    """First step from which at least half of the layers keep the top-1 on BOS (share ≥ 0.9) to the end."""
    by_step = run.groupby("step")["top1_bos_share"].apply(lambda s: (s >= BOS_SHARE).mean() >= 0.5)
    return onset_step(by_step.index.to_numpy(), by_step.to_numpy())


def run_table(metrics: pd.DataFrame, provenance: dict[str, dict], configs: dict[str, dict]) -> pd.DataFrame:
    """One row per run: its design, training summary and what it measured at the end (the strongest layer's
    ratio at init, at the end and at its peak; the BOS mechanism's layers and onset). `provenance`: run name →
    {"spec", "training": {"n_params", "final_loss", "seconds"}}; `configs`: run name → its HF config."""
    rows = []
    for name, run in metrics.groupby("model_id"):
        record = provenance[name]
        spec = record["spec"]
        last = run[run["step"] == run["step"].max()].set_index("layer").sort_index()
        strongest = int(last["ma_ratio"].idxmax())
        first = run[run["step"] == run["step"].min()].set_index("layer")
        init, end = float(first.loc[strongest, "ma_ratio"]), float(last.loc[strongest, "ma_ratio"])
        series = run[run["layer"] == strongest].set_index("step")["ma_ratio"]
        rows.append(
            {
                "run": name,
                **design_columns(spec),
                "seed": spec["recipe"]["seed"],
                "params": record["training"]["n_params"],
                "final_loss": round(record["training"]["final_loss"], 3),
                # on the held-out text, where the run recorded it (runs trained since validation was measured)
                **({"val_loss": round(record["training"]["val_loss"], 3)} if "val_loss" in record["training"] else {}),
                "seconds": record["training"]["seconds"],
                "checkpoints": run["step"].nunique(),
                "strongest_layer": strongest,
                "ratio_init": round(init, 2),
                "ratio_end": round(end, 2),
                "growth": round(end / init, 2),
                "peak_step": int(series.idxmax()),  # of the strongest layer, over all checkpoints
                "peak_growth": round(float(series.max()) / init, 2),
                "nonbos_end": round(float(last.loc[strongest, "ma_ratio_nonbos"]), 2),
                "bos_layers": f"{int((last['top1_bos_share'] >= BOS_SHARE).sum())}/{len(last)}",
                "mechanism_layers": f"{int(shows_mechanism(last).sum())}/{len(last)}",
                "top1_dim": int(last.loc[strongest, "top1_dim_mode"]),
                "bos_onset_step": bos_onset(run),
                "design": design_key(config_rows(configs[name]), spec["recipe"]),
            }
        )
    table = pd.DataFrame(rows)
    table["trained"] = table["final_loss"] <= table["final_loss"].median() + DID_NOT_TRAIN
    return table


def family_figures(metrics: pd.DataFrame, table: pd.DataFrame, out: Path) -> list[Path]:
    """One figure per family, a row per run (seeds side by side), readable at a glance for dozens of runs: the
    strongest layer's ratio over training, each layer's ratio at the end (a dot where it shows the BOS mechanism),
    and the mean linearity over training."""
    paths = []
    for family, runs in table.groupby("family"):
        names = sorted(runs["run"])
        mine = metrics[metrics["model_id"].isin(names)]
        last = mine[mine["step"] == mine.groupby("model_id")["step"].transform("max")]
        ratio = mine.groupby(["model_id", "step"])["ma_ratio"].max().unstack().reindex(names)
        linearity = mine.groupby(["model_id", "step"])["linearity"].mean().unstack().reindex(names)
        end = last.pivot(index="model_id", columns="layer", values="ma_ratio").reindex(names)
        shows = last.assign(hit=shows_mechanism(last)).pivot(index="model_id", columns="layer", values="hit")
        height = 1.6 + 0.17 * len(names)
        fig, axes = plt.subplots(1, 3, figsize=(14, height), gridspec_kw={"width_ratios": [3, 1.4, 3]})
        rows = np.arange(len(names) + 1) - 0.5
        top = max(2.0, float(np.nanmax(ratio.to_numpy())), float(np.nanmax(end.to_numpy())))
        ratio_scale = matplotlib.colors.LogNorm(vmin=1, vmax=top)  # one scale for both ratio panels
        lowest = float(np.nanmin(linearity.to_numpy()))
        linearity_scale = matplotlib.colors.Normalize(math.floor(lowest * 10) / 10 if lowest < 1 else 0.0, 1)
        for ax, frame, title, norm, cmap in (
            (axes[0], ratio, "largest layer's top-1 / median |h|", ratio_scale, "magma"),
            (axes[2], linearity, "mean linearity over layers", linearity_scale, "viridis"),
        ):
            image = ax.pcolormesh(_step_edges(frame.columns.to_numpy()), rows, frame.to_numpy(), norm=norm, cmap=cmap)
            fig.colorbar(image, ax=ax, fraction=0.04, pad=0.01)
            ticks = [t for t in (0, 10, 100, 1000, 10000) if t <= frame.columns.max()]
            ax.set_xticks(np.log10(1 + np.array(ticks)), [f"{t:,}" for t in ticks], fontsize=7)
            ax.set_xlabel("training step (log 1 + step)", fontsize=8)
            ax.set_title(title, fontsize=9)
        image = axes[1].pcolormesh(np.arange(end.shape[1] + 1) + 0.5, rows, end.to_numpy(), norm=ratio_scale,
                                   cmap="magma")  # fmt: skip
        fig.colorbar(image, ax=axes[1], fraction=0.08, pad=0.02)
        hit_rows, hit_layers = np.nonzero(shows.reindex(index=names, columns=end.columns).fillna(False).to_numpy())
        axes[1].scatter(end.columns.to_numpy()[hit_layers], hit_rows, s=9, c="#39d353", edgecolors="black", lw=0.4)
        axes[1].set_xticks(end.columns.to_numpy(), [str(c) for c in end.columns], fontsize=6)
        axes[1].set_xlabel("layer", fontsize=8)
        axes[1].set_title("ratio at the end (dot: BOS mechanism)", fontsize=9)
        for ax in axes:
            ax.set_ylim(len(names) - 0.5, -0.5)
            ax.set_yticks(np.arange(len(names)), names if ax is axes[0] else [""] * len(names), fontsize=6)
        fig.suptitle(f"{family}: {len(names)} runs, the massive-activation ratio and linearity over training",
                     fontsize=10)  # fmt: skip
        paths.append(save_figure(fig, out / "figures" / f"{family}.png", dpi=80))
    return paths


def _step_edges(steps: np.ndarray) -> np.ndarray:
    """Cell edges on a log(1 + step) axis (log10) for checkpoints at `steps`: midway between neighbours."""
    x = np.log10(1.0 + np.asarray(steps, dtype=np.float64))
    if len(x) == 1:
        return np.array([x[0] - 0.5, x[0] + 0.5])
    mid = (x[1:] + x[:-1]) / 2
    return np.concatenate([[x[0] - (mid[0] - x[0])], mid, [x[-1] + (x[-1] - mid[-1])]])


def save_figure(fig, path: Path, dpi: int) -> Path:
    """Lay out, write and close a data-card figure."""
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def markdown_table(frame: pd.DataFrame) -> str:
    header = "| " + " | ".join(frame.columns) + " |"
    rule = "|" + "---|" * len(frame.columns)
    body = ["| " + " | ".join(str(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *body])
