"""Per-config figure: predicted curves per layer and a layer × step heatmap of the massive-activation ratio."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def plot_prediction(name: str, result: dict[str, Any], out_dir: Path) -> Path:
    """Writes out_dir/<name>.png and returns its path."""
    steps = np.asarray(result["steps"], dtype=float)
    metrics = list(result["layers"][0]["metrics"])
    curves = {
        m: np.array([[np.nan if v is None else v for v in layer["metrics"][m]["curve"]] for layer in result["layers"]])
        for m in metrics
    }
    n_layers = len(result["layers"])
    panels = ["ma_ratio_curves", "ma_ratio_heatmap"] + [m for m in metrics if m != "ma_ratio"]
    panels = [p for p in panels if not p.startswith("ma_ratio") or "ma_ratio" in metrics]
    ncols = 2 if len(panels) > 1 else 1
    nrows = -(-len(panels) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(6.2 * ncols, 4.4 * nrows), squeeze=False)
    for ax in axes.flat[len(panels) :]:
        ax.axis("off")
    colors = plt.cm.viridis(np.linspace(0, 1, n_layers))
    x = np.maximum(steps, 1)  # log axis: step 0 drawn at 1
    for ax, panel in zip(axes.flat, panels, strict=False):
        if panel == "ma_ratio_heatmap":
            image = ax.imshow(
                curves["ma_ratio"],
                aspect="auto",
                origin="lower",
                cmap="magma",
                extent=(0, len(steps), 0.5, n_layers + 0.5),
            )
            ticks = np.linspace(0, len(steps) - 1, min(6, len(steps))).astype(int)
            ax.set_xticks(ticks + 0.5, [f"{int(steps[t]):,}" for t in ticks], rotation=30)
            ax.set_xlabel("training step")
            ax.set_ylabel("layer")
            ax.set_title("top-1 / median |activation| (layer × step)")
            fig.colorbar(image, ax=ax, label="ratio")
            continue
        metric = "ma_ratio" if panel == "ma_ratio_curves" else panel
        for i, color in enumerate(colors):
            ax.plot(x, curves[metric][i], color=color, label=f"layer {i + 1}" if n_layers <= 12 else None)
        ax.set_xscale("log")
        ax.set_xlabel("training step (log; 0 shown at 1)")
        ax.set_ylabel(
            {
                "ma_ratio": "top-1 / median |activation|",
                "linearity": "linearity score (R²)",
                "linearity_nores": "linearity without residual (R²)",
            }.get(metric, metric)
        )
        ax.set_title(f"predicted {metric} per layer")
        ax.grid(alpha=0.3)
        if n_layers <= 12:
            ax.legend(fontsize=7, ncol=2)
    warn = f" — {len(result['warnings'])} domain warnings (outside training data)" if result["warnings"] else ""
    fig.suptitle(
        f"{name} ({result['model_type']}, {n_layers} layers), model {result['model_version']}{warn}", fontsize=10
    )
    fig.tight_layout()
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name.replace('/', '__')}.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
