"""The one-page report of `archcast measure`: one model's metrics as a PNG and the same as a self-contained HTML page.

Panels: the massive-activation ratio per layer (log axis) with the share of probe windows whose top-1 is on
the first token; a layer × feature-dimension map of the largest |h|; linearity per layer; and the summary
sentence of extraction.mechanism.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.colors import LogNorm  # noqa: E402

from emergence.mechanism import read_mechanism, shows_mechanism  # noqa: E402


def figure(rows: pd.DataFrame, title: str, summary: str) -> plt.Figure:
    rows = rows.sort_values("layer")
    layers = rows["layer"].to_numpy()
    fig, axes = plt.subplots(2, 2, figsize=(13, 8.5), gridspec_kw={"height_ratios": [1, 1]})
    ratio_ax, map_ax, lin_ax, text_ax = axes.flat

    share = ratio_ax.twinx()
    share.bar(layers, rows["top1_bos_share"], color="tab:orange", alpha=0.25, width=0.8, label="BOS share")
    share.set_ylim(0, 1.05)
    share.set_ylabel("share of windows with the top-1 on the first token", color="tab:orange", fontsize=8)
    ratio_ax.set_zorder(share.get_zorder() + 1)
    ratio_ax.patch.set_visible(False)
    ratio_ax.plot(layers, rows["ma_ratio"], "o-", color="tab:blue", label="top-1 / median")
    ratio_ax.plot(
        layers, rows["ma_ratio_nonbos"], "s--", color="tab:gray", ms=4, label="largest away from BOS / median"
    )
    hits = rows[shows_mechanism(rows)]
    ratio_ax.plot(hits["layer"], hits["ma_ratio"], "o", mfc="none", mec="tab:red", ms=11, label="BOS mechanism")
    ratio_ax.set_yscale("log")
    ratio_ax.set_xlabel("layer")
    ratio_ax.set_ylabel("|h| ratio to the median (log)")
    ratio_ax.set_title("Massive-activation ratio per layer")
    ratio_ax.legend(fontsize=7, loc="lower left", framealpha=0.9)
    ratio_ax.xaxis.get_major_locator().set_params(integer=True)
    ratio_ax.grid(alpha=0.3)

    if "dim_max" in rows and rows["dim_max"].notna().all():
        # relative to each layer's median |h|, so that the dimensions that carry the outliers stand out in every
        # layer even where the whole residual stream grows with depth
        grid = np.stack([np.asarray(v, dtype=float) for v in rows["dim_max"]]) / rows["ma_median"].to_numpy()[:, None]
        floor = max(float(grid[grid > 0].min()), 1e-6) if (grid > 0).any() else 1e-6
        image = map_ax.imshow(
            np.maximum(grid, floor), aspect="auto", origin="lower", cmap="magma", norm=LogNorm(floor, grid.max()),
            extent=(-0.5, grid.shape[1] - 0.5, layers[0] - 0.5, layers[-1] + 0.5), interpolation="nearest",
        )  # fmt: skip
        fig.colorbar(image, ax=map_ax, label="largest |h| over probe tokens / layer median (log)")
        map_ax.set_xlabel("feature dimension")
        map_ax.set_ylabel("layer")
        map_ax.set_title("Largest value per layer and dimension, over the layer's median")
    else:
        map_ax.text(0.5, 0.5, "no per-dimension profile in these metrics", ha="center", va="center")
        map_ax.axis("off")

    lin_ax.plot(layers, rows["linearity"], "o-", label="linearity (h_l from h_{l-1})")
    lin_ax.plot(layers, rows["linearity_nores"], "s-", label="without the residual (h_l − h_{l-1})")
    if "attn_bos_share" in rows and rows["attn_bos_share"].notna().any():
        lin_ax.plot(layers, rows["attn_bos_share"], "^-", color="tab:purple", ms=4,
                    label="attention on the first token (mean over heads)")  # fmt: skip
    lin_ax.set_ylim(-0.02, 1.02)
    lin_ax.set_xlabel("layer")
    lin_ax.xaxis.get_major_locator().set_params(integer=True)
    lin_ax.set_ylabel("least-squares R²")
    lin_ax.set_title("Linearity per layer" + (" and attention on the first token" if "attn_bos_share" in rows else ""))
    lin_ax.legend(fontsize=7)
    lin_ax.grid(alpha=0.3)

    text_ax.axis("off")
    text_ax.text(0, 1, _wrap(summary, 70), va="top", fontsize=11)
    text_ax.text(0, 0.35, _wrap(_settings_line(rows), 80), va="top", fontsize=8, color="0.3")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def _wrap(text: str, width: int) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width))


def _settings_line(rows: pd.DataFrame) -> str:
    first = rows.iloc[0]
    parts = [
        f"{int(first['n_seq'])} probe windows of {int(first['seq_len'])} tokens",
        f"dtype {first.get('dtype', '?')}",
    ]
    if first.get("quantization"):
        parts.append(f"GGUF {first['quantization']} (dequantised), file sha256 {first['source_sha256'][:12]}…")
    parts.append(f"weights sha256 {str(first['weights_sha256'])[:12]}…")
    return "; ".join(parts)


def html_page(rows: pd.DataFrame, title: str, summary: str, png: Path) -> str:
    image = base64.b64encode(png.read_bytes()).decode()
    columns = ["layer", "ma_top1", "ma_median", "ma_ratio", "ma_ratio_nonbos", "top1_bos_share", "top1_dim_mode",
               "top1_dim_share", "linearity", "linearity_nores"]  # fmt: skip
    columns += [c for c in ("attn_bos_share", "nonfinite_values") if c in rows]
    table = rows.sort_values("layer")[columns].to_html(index=False, float_format=lambda v: f"{v:,.4g}", border=0)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font:15px/1.5 system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}}
img{{max-width:100%}} table{{border-collapse:collapse;font-size:13px}} td,th{{padding:2px 8px;text-align:right}}
tr:nth-child(even){{background:#f4f4f4}} .summary{{font-size:18px;margin:1em 0}}
.meta{{color:#666;font-size:13px}}</style>
</head><body><h1>{html.escape(title)}</h1>
<p class="summary">{html.escape(summary)}</p>
<p class="meta">{html.escape(_settings_line(rows))}</p>
<img alt="ratio, BOS share, layer × dimension map and linearity per layer" src="data:image/png;base64,{image}">
<h2>Per layer</h2>{table}
</body></html>
"""


def write_report(metrics: pd.DataFrame, out_dir: Path, title: str) -> tuple[Path, Path, str]:
    """Report on the last checkpoint in `metrics`; returns (png, html, summary)."""
    rows = metrics[metrics["step"] == metrics["step"].max()]
    summary = read_mechanism(rows).summary()
    out_dir.mkdir(parents=True, exist_ok=True)
    png, page = out_dir / "report.png", out_dir / "report.html"
    fig = figure(rows, title, summary)
    fig.savefig(png, dpi=100)
    plt.close(fig)
    page.write_text(html_page(rows, title, summary, png), encoding="utf-8")
    return png, page, summary
