"""Data-vs-fit figures: one PNG per model, one panel per metric, a line per layer."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from emergence.curve import PARAMS, curve  # noqa: E402


def plot_fits(metrics: pd.DataFrame, fits: pd.DataFrame, out_dir: Path) -> list[Path]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for model_id, series in metrics.groupby("model_id"):
        names = list(fits.loc[fits["model_id"] == model_id, "metric"].unique())
        fig, axes = plt.subplots(1, len(names), figsize=(5 * len(names), 4), squeeze=False)
        layers = sorted(series["layer"].unique())
        colors = plt.cm.viridis(np.linspace(0, 1, len(layers)))
        for ax, metric in zip(axes[0], names, strict=True):
            for layer, color in zip(layers, colors, strict=True):
                s = series[series["layer"] == layer].sort_values("step")
                ax.scatter(np.maximum(s["step"], 1), s[metric], s=8, color=color)
                fit = fits[(fits["model_id"] == model_id) & (fits["layer"] == layer) & (fits["metric"] == metric)]
                if len(fit) and np.isfinite(fit["r2"].iloc[0]):
                    t = np.geomspace(1, max(2, s["step"].max()), 200)
                    params = [fit[p].iloc[0] for p in PARAMS]
                    ax.plot(t, curve(t, *params), color=color, label=f"L{layer} R²={fit['r2'].iloc[0]:.2f}")
            ax.set_xscale("log")
            ax.set_xlabel("training step (log; 0 shown at 1)")
            ax.set_ylabel(metric)
            ax.set_title(f"{model_id}: {metric}")
            ax.legend(fontsize=7)
            ax.grid(alpha=0.3)
        fig.tight_layout()
        path = out_dir / f"{str(model_id).replace('/', '__')}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        paths.append(path)
    return paths
