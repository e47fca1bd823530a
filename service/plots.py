"""The CLI's figures: per config, predicted curves per layer and a layer × step heatmap of the massive-activation
ratio; per sweep, the first designs' curves and every design's quantity against its parameter count."""

from __future__ import annotations

from pathlib import Path

import matplotlib.cm
import matplotlib.colors
import matplotlib.ticker
import numpy as np

# Figure, not pyplot: a figure written to a file needs none of pyplot's window state, and pyplot's import costs
# ~0.3 s of a command
from matplotlib.figure import Figure

from service.prediction import Prediction


def plain_log_ticks(axis) -> None:
    """A log or symlog axis labelled in plain numbers (100, 1e+06), as the default 10ⁿ labels are not: those
    go through mathtext, whose parser costs about a second a figure."""
    axis.set_major_formatter(matplotlib.ticker.LogFormatter())
    axis.set_minor_formatter(matplotlib.ticker.LogFormatter(labelOnlyBase=False))


def plot_prediction(name: str, prediction: Prediction, out_dir: Path) -> Path:
    """Writes out_dir/<name>.png and returns its path."""
    steps = prediction.steps
    metrics = list(prediction.metrics)
    curves = {m: p.curves.values for m, p in prediction.metrics.items()}
    n_layers = prediction.n_layers
    panels = ["ma_ratio_curves", "ma_ratio_heatmap"] + [m for m in metrics if m != "ma_ratio"]
    panels = [p for p in panels if not p.startswith("ma_ratio") or "ma_ratio" in metrics]
    ncols = 2 if len(panels) > 1 else 1
    nrows = -(-len(panels) // ncols)
    fig = Figure(figsize=(6.2 * ncols, 4.4 * nrows))
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for ax in axes.flat[len(panels) :]:
        ax.axis("off")
    # one colour per layer on a colour bar (a legend of 32 layers reads as nothing); steps on a symlog axis,
    # linear up to 1, so step 0 sits at 0 instead of a stub at 1
    layer_colors = matplotlib.cm.ScalarMappable(
        matplotlib.colors.Normalize(vmin=1, vmax=max(n_layers, 2)), cmap="viridis"
    )
    order = np.argsort(steps, kind="stable")  # requests may list steps in any order
    steps, curves = steps[order], {m: c[:, order] for m, c in curves.items()}
    for ax, panel in zip(axes.flat, panels, strict=False):
        if panel == "ma_ratio_heatmap":
            edges = _step_edges(steps)
            layer_edges = np.arange(n_layers + 1) + 0.5
            image = ax.pcolormesh(edges, layer_edges, curves["ma_ratio"], cmap="magma", shading="flat")
            ax.set_xscale("symlog", linthresh=1)
            ax.set_xlim(edges[0], edges[-1])
            ax.set_xlabel("training step (symlog)")
            ax.set_ylabel("layer")
            ax.set_title("top-1 / median |activation| (layer × step)")
            fig.colorbar(image, ax=ax, label="ratio")
            continue
        metric = "ma_ratio" if panel == "ma_ratio_curves" else panel
        for i in range(n_layers):
            ax.plot(steps, curves[metric][i], color=layer_colors.to_rgba(i + 1), lw=1.2)
        ax.set_xscale("symlog", linthresh=1)
        ax.set_xlim(left=0)
        ax.set_xlabel("training step (symlog)")
        ax.set_ylabel(
            {
                "ma_ratio": "top-1 / median |activation|",
                "linearity": "linearity score (R²)",
                "linearity_nores": "linearity without residual (R²)",
            }.get(metric, metric)
        )
        ax.set_title(f"predicted {metric} per layer")
        ax.grid(alpha=0.3)
        fig.colorbar(layer_colors, ax=ax, label="layer")
    warn = f" — {len(prediction.warnings)} warnings (see the table)" if prediction.warnings else ""
    fig.suptitle(
        f"{name} ({prediction.model_type}, {n_layers} layers), model {prediction.model_version}{warn}", fontsize=10
    )
    fig.tight_layout()
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name.replace('/', '__')}.png"
    fig.savefig(path, dpi=110)
    return path


def _step_edges(steps: np.ndarray) -> np.ndarray:
    """Cell edges around each (sorted) step for the heatmap: the midpoints between neighbouring steps."""
    if len(steps) == 1:
        return np.array([max(steps[0] - 0.5, 0.0), steps[0] + 0.5])
    mids = (steps[:-1] + steps[1:]) / 2
    return np.concatenate([[max(steps[0] - (mids[0] - steps[0]), 0.0)], mids, [steps[-1] + (steps[-1] - mids[-1])]])


def plot_sweep(table, batch, quantity, path: Path, top: int = 10) -> Path:
    """The ranked designs at a glance: the first `top` designs' predicted curves (the layer the quantity is read
    at; the mean over layers for a mean, ma_ratio's largest for the onset layer), and the quantity of every
    design against its parameter count, the first `top` marked."""
    ranked = table[table["rank"].notna() & (table["rank"] > 0)].sort_values("rank") if "rank" in table else table[:0]
    fig = Figure(figsize=(13, 6.2))
    left, right = fig.subplots(1, 2)
    metric = quantity.metric or "ma_ratio"
    colors = matplotlib.colormaps["viridis"](np.linspace(0, 0.9, max(1, min(top, len(ranked)))))
    varied = [c for c in table.columns if c not in SWEEP_COLUMNS and c != quantity.label]
    for color, (_, row) in zip(colors, ranked.head(top).iterrows(), strict=False):
        prediction = batch.prediction(int(row["design"]) - 1)
        values = prediction.metrics[metric].curves.values
        order = np.argsort(prediction.steps, kind="stable")
        if isinstance(quantity.layer, int):
            curve, where = values[quantity.layer - 1], f"layer {quantity.layer}"
        elif quantity.layer == "mean":
            curve, where = np.nanmean(values, axis=0), "mean"
        else:
            finals = prediction.metrics[metric].curves.final_value
            layer = int(np.nanargmin(finals) if quantity.layer == "min" else np.nanargmax(finals))
            curve, where = values[layer], f"layer {layer + 1}"
        label = f"#{int(row['rank'])}  " + ", ".join(f"{row[k]}" for k in varied) + f" ({where})"
        left.plot(prediction.steps[order], curve[order], color=color, label=label)
    left.set_xscale("symlog", linthresh=1.0)
    left.set_yscale("log" if metric == "ma_ratio" else "linear")
    plain_log_ticks(left.xaxis)
    if metric == "ma_ratio":
        plain_log_ticks(left.yaxis)
    left.set_xlabel("training step")
    left.set_ylabel(f"predicted {metric}")
    left.set_title(f"the first {min(top, len(ranked))} designs by {quantity.label}")
    # legends below the axes, where they hide no curve or point (and "best" would search every point: ~0.4 s)
    left.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, title_fontsize=7,
                title="rank  " + ", ".join(varied) + " (the layer drawn)")  # fmt: skip
    label = quantity.label
    right.scatter(ranked["n_params"], ranked[label], s=12, color="0.6", label="every design")
    head = ranked.head(top)
    right.scatter(head["n_params"], head[label], s=28, color="crimson", label=f"the first {len(head)}")
    right.set_xscale("log")
    plain_log_ticks(right.xaxis)
    right.set_xlabel("parameters")
    right.set_ylabel(label)
    right.set_title(f"{len(ranked)} designs ranked; {int((table['skipped'] != '').sum())} skipped")
    right.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path


# the sweep table's own columns; the others are the varied knobs
SWEEP_COLUMNS = ("rank", "design", "n_params", "n_layers", "onset_layer", "n_warnings", "skipped")
