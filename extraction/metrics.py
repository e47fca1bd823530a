"""Behaviour metrics of DESIGN.md, reduced per batch so memory does not grow with L × tokens.

Per layer ℓ the accumulator keeps: per-sequence top-3 and median of |h_ℓ| (float32
or wider), the location of the largest value, and float64 Gram statistics
(XᵀX, XᵀY, column sums, squared norms) from which the least-squares linearity
score of X = h_{ℓ-1} → Y = h_ℓ (and of X → Y − X) is solved exactly at the end.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

SUN_MIN_VALUE = 100.0  # Sun et al.: a massive activation exceeds 100 in magnitude ...
SUN_MIN_RATIO = 1000.0  # ... and 1000× the median


def magnitude_stats(h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-sequence top-3 |a|, median |a| and flat argmax over S×d.

    h: (B, S, d) any dtype. Returns top3 (B, 3) float32+, median (B,), argmax (B,) int64.
    The median of an even count is the mean of the two middle values (as numpy's).
    """
    a = h.detach().abs().flatten(1)  # (B, S·d)
    if a.dtype in (torch.float16, torch.bfloat16):
        a = a.float()
    top3, top_idx = a.topk(3, dim=1)  # (B, 3)
    n = a.shape[1]
    lower = a.kthvalue((n + 1) // 2, dim=1).values
    upper = a.kthvalue(n // 2 + 1, dim=1).values
    median = (lower + upper) / 2 if n % 2 == 0 else lower
    return top3, median, top_idx[:, 0]


@dataclass
class GramStats:
    """Running float64 sufficient statistics of X (n×d) and Y (n×d) for least squares."""

    xtx: torch.Tensor
    xty: torch.Tensor
    sum_x: torch.Tensor
    sum_y: torch.Tensor
    sq_x: float = 0.0
    sq_y: float = 0.0
    n: int = 0

    @classmethod
    def zeros(cls, d_in: int, d_out: int, device) -> GramStats:
        z = dict(dtype=torch.float64, device=device)
        return cls(
            torch.zeros(d_in, d_in, **z), torch.zeros(d_in, d_out, **z), torch.zeros(d_in, **z), torch.zeros(d_out, **z)
        )

    def update(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """x: (n, d_in), y: (n, d_out), cast to float64 here."""
        x, y = x.double(), y.double()
        self.xtx += x.T @ x
        self.xty += x.T @ y
        self.sum_x += x.sum(0)
        self.sum_y += y.sum(0)
        self.sq_x += float((x * x).sum())
        self.sq_y += float((y * y).sum())
        self.n += x.shape[0]

    def of_residual(self) -> GramStats:
        """The statistics of X → (Y − X), derived without a second pass: Xᵀ(Y−X) = XᵀY − XᵀX."""
        cross = float(torch.trace(self.xty))  # Σ⟨x, y⟩ over rows
        return GramStats(
            self.xtx,
            self.xty - self.xtx,
            self.sum_x,
            self.sum_y - self.sum_x,
            self.sq_x,
            self.sq_y - 2 * cross + self.sq_x,
            self.n,
        )

    def r2(self) -> float:
        """1 − ‖X̂A − Ŷ‖²_F for column-centred, Frobenius-normalised X̂, Ŷ and least-squares A."""
        n = self.n
        mx, my = self.sum_x / n, self.sum_y / n
        g = self.xtx - n * torch.outer(mx, mx)  # X_cᵀ X_c
        c = self.xty - n * torch.outer(mx, my)  # X_cᵀ Y_c
        norm_x2 = self.sq_x - n * float(mx @ mx)
        norm_y2 = self.sq_y - n * float(my @ my)
        if norm_x2 <= 0 or norm_y2 <= 0:
            return float("nan")
        g, c = g / norm_x2, c / np.sqrt(norm_x2 * norm_y2)  # Gram and cross of the normalised matrices
        g_np, c_np = g.cpu().numpy(), c.cpu().numpy()
        a = np.linalg.lstsq(g_np, c_np, rcond=None)[0]  # normal equations; min-norm when rank-deficient
        residual = 1.0 - 2.0 * np.sum(a * c_np) + np.sum(a * (g_np @ a))
        return float(1.0 - residual)


@dataclass
class LayerStats:
    """Everything measured for one layer over all probe batches."""

    top3: list[torch.Tensor] = field(default_factory=list)  # each (B, 3)
    median: list[torch.Tensor] = field(default_factory=list)  # each (B,)
    best_value: float = -1.0
    best_location: tuple[int, int] = (-1, -1)  # (token position, feature dim)
    linear: GramStats | None = None

    def add_magnitudes(self, h: torch.Tensor) -> None:
        top3, median, argmax = magnitude_stats(h)
        self.top3.append(top3.cpu())
        self.median.append(median.cpu())
        seq = int(top3[:, 0].argmax())
        value = float(top3[seq, 0])
        if value > self.best_value:
            d = h.shape[-1]
            flat = int(argmax[seq])
            self.best_value, self.best_location = value, (flat // d, flat % d)

    def add_pair(self, prev: torch.Tensor, cur: torch.Tensor) -> None:
        """prev = h_{ℓ-1}, cur = h_ℓ, both (B, S, d)."""
        x = prev.reshape(-1, prev.shape[-1])
        y = cur.reshape(-1, cur.shape[-1])
        if self.linear is None:
            self.linear = GramStats.zeros(x.shape[1], y.shape[1], x.device)
        self.linear.update(x, y)

    def row(self) -> dict:
        top3 = torch.cat(self.top3).double().mean(0)  # mean over the N sequences
        median = float(torch.cat(self.median).double().mean())
        ratio = float(top3[0]) / median if median > 0 else float("inf")
        return {
            "ma_top1": float(top3[0]),
            "ma_top2": float(top3[1]),
            "ma_top3": float(top3[2]),
            "ma_median": median,
            "ma_ratio": ratio,
            "top1_token": self.best_location[0],
            "top1_dim": self.best_location[1],
            "sun_massive": bool(float(top3[0]) > SUN_MIN_VALUE and ratio >= SUN_MIN_RATIO),
            "linearity": self.linear.r2() if self.linear else float("nan"),
            "linearity_nores": self.linear.of_residual().r2() if self.linear else float("nan"),
        }
