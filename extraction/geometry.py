"""A layer's geometry over the probe tokens, the linearity study's companion measures: anisotropy, intrinsic
dimension, and where the linear fit's residual (the layer's nonlinearity) sits among the tokens.

Every measure reads a sample of the probe's tokens (at most MAX_POINTS, in probe order) and leaves out position
0: the first token's massive activation alone would be the first principal component and every nearest
neighbour's outlier, and a measure of the other tokens' geometry is what these are for.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

MAX_POINTS = 4096  # tokens kept per layer: the whole default probe (10 × 256) fits
TOP_SHARE = 0.01  # the tokens whose residual share is reported: the largest 1 %
TWONN_KEEP = 0.9  # TwoNN fits the smallest 90 % of the distance ratios (the largest are noise-dominated)


@dataclass
class TokenSample:
    """The (h_{l-1}, h_l) pairs of the first MAX_POINTS tokens at positions ≥ 1, with where each came from."""

    inputs: list[torch.Tensor] = field(default_factory=list)  # each (n, d) float32
    outputs: list[torch.Tensor] = field(default_factory=list)
    where: list[torch.Tensor] = field(default_factory=list)  # each (n, 2): (window, position)
    windows: int = 0
    kept: int = 0

    def add(self, prev: torch.Tensor, cur: torch.Tensor) -> None:
        """prev, cur: (B, S, d) of one batch."""
        B, S, _ = cur.shape
        room = MAX_POINTS - self.kept
        if room > 0 and S > 1:
            x = prev[:, 1:].reshape(-1, prev.shape[-1])[:room]
            y = cur[:, 1:].reshape(-1, cur.shape[-1])[:room]
            window = torch.arange(B).repeat_interleave(S - 1)[: len(y)] + self.windows
            position = torch.arange(1, S).repeat(B)[: len(y)]
            self.inputs.append(x.float().cpu())
            self.outputs.append(y.float().cpu())
            self.where.append(torch.stack([window, position], dim=1))
            self.kept += len(y)
        self.windows += B

    def columns(self) -> dict:
        nan = float("nan")
        if not self.kept:
            return {"anisotropy": nan, "intrinsic_dim": nan, "nonlin_top1pct_share": nan, "nonlin_top_where": []}
        x, y = torch.cat(self.inputs).double(), torch.cat(self.outputs).double()
        share, top = residual_share(x, y)
        where = torch.cat(self.where)[top].tolist() if len(top) else []
        return {"anisotropy": anisotropy(y), "intrinsic_dim": intrinsic_dimension(y),
                "nonlin_top1pct_share": share, "nonlin_top_where": where}  # fmt: skip


def anisotropy(points: torch.Tensor) -> float:
    """The share of the variance along the first principal component: σ₁² / Σσ² of the centred points (1: all on
    one line; 1/d: isotropic). NaN without variance."""
    centred = points - points.mean(0)
    sv = torch.linalg.svdvals(centred)
    total = float(sv.square().sum())
    return float(sv[0].square()) / total if total > 0 else float("nan")


def intrinsic_dimension(points: torch.Tensor) -> float:
    """TwoNN (Facco et al. 2017): with μ the ratio of each point's second to first nearest-neighbour distance,
    −log(1 − F(μ)) = d · log μ; d is the slope through the origin over the smallest TWONN_KEEP of the μ. Points
    that coincide with another are left out (a ratio needs a first distance above zero)."""
    if len(points) < 3:
        return float("nan")
    distances = torch.cdist(points, points)
    distances.fill_diagonal_(math.inf)
    nearest = distances.topk(2, dim=1, largest=False).values  # (n, 2), ascending
    r1, r2 = nearest[:, 0], nearest[:, 1]
    mu = (r2 / r1)[r1 > 0].sort().values
    n = len(mu)
    keep = int(n * TWONN_KEEP)
    if keep < 2:
        return float("nan")
    x = torch.log(mu[:keep])
    y = -torch.log1p(-torch.arange(1, keep + 1, dtype=torch.float64) / n)
    denominator = float(x.square().sum())
    return float((x * y).sum()) / denominator if denominator > 0 else float("nan")


def residual_share(x: torch.Tensor, y: torch.Tensor) -> tuple[float, torch.Tensor]:
    """(share, rows): the share of the least-squares residual of ŷ on x̂ (column-centred, Frobenius-normalised,
    as `linearity` fits them) carried by the TOP_SHARE of tokens with the largest residual, and those tokens'
    rows, largest first. NaN where the fit leaves no residual (no more tokens than dimensions)."""
    xc, yc = x - x.mean(0), y - y.mean(0)
    nx, ny = float(xc.norm()), float(yc.norm())
    if nx == 0 or ny == 0:
        return float("nan"), torch.empty(0, dtype=torch.int64)
    xc, yc = xc / nx, yc / ny
    solution = torch.linalg.lstsq(xc, yc, driver="gelsd").solution
    per_token = (xc @ solution - yc).square().sum(1)
    total = float(per_token.sum())
    if total <= 1e-12:
        return float("nan"), torch.empty(0, dtype=torch.int64)
    k = max(1, math.ceil(TOP_SHARE * len(per_token)))
    top = per_token.topk(k)
    return float(top.values.sum()) / total, top.indices
