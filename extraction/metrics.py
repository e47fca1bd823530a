"""Behaviour metrics of DESIGN.md, reduced per batch so memory does not grow with L × tokens.

Per layer ℓ the accumulator keeps: per-sequence top-3 and median of |h_ℓ| (float32
or wider), the location of the largest value, and float64 Gram statistics
(XᵀX, XᵀY, column sums, squared norms) from which the least-squares linearity
score of X = h_{ℓ-1} → Y = h_ℓ (and of X → Y − X) is solved exactly at the end.
"""

from __future__ import annotations

from dataclasses import dataclass, field

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
    if n % 2:
        return top3, lower, top_idx[:, 0]
    # the upper middle value without a second selection: `lower` again if it occurs past the middle,
    # else the smallest value above it
    greater = a > lower[:, None]
    past_middle = n - greater.sum(1) > n // 2
    above = torch.where(greater, a, torch.inf).amin(1)
    median = (lower + torch.where(past_middle, lower, above)) / 2
    return top3, median, top_idx[:, 0]


@dataclass
class GramStats:
    """Running float64 sufficient statistics of X (n×d) and Y (n×d) for least squares."""

    xtx: torch.Tensor
    xty: torch.Tensor
    sum_x: torch.Tensor
    sum_y: torch.Tensor
    sq_y: float = 0.0  # ‖Y‖²_F; ‖X‖²_F is the trace of XᵀX
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
        products = x.T @ torch.cat([x, y], dim=1)  # XᵀX and XᵀY in one product (cheaper than two on CPU)
        d_in = x.shape[1]
        self.xtx += products[:, :d_in]
        self.xty += products[:, d_in:]
        self.sum_x += x.sum(0)
        self.sum_y += y.sum(0)
        flat_y = y.reshape(-1)
        self.sq_y += float(flat_y @ flat_y)
        self.n += x.shape[0]

    def scores(self) -> tuple[float, float]:
        """(linearity, linearity_nores): 1 − ‖X̂A − Ŷ‖²_F for column-centred, Frobenius-normalised X̂ and
        Ŷ = Y (resp. Y − X), with least-squares A.

        At the least-squares optimum the score is tr(ĉᵀ Ĝ⁺ ĉ) for the normalised Gram Ĝ and cross ĉ; the
        normalisation of X cancels, leaving ‖W^-½ Vᵀ C‖²_F / ‖Y_c‖²_F with X_cᵀX_c = V W Vᵀ. One symmetric
        eigendecomposition serves both targets (they share X); eigenvalues at or below the cut-off that
        numpy's lstsq uses (ε · d · largest) are dropped, i.e. the minimum-norm solution of a rank-deficient X.
        """
        n = self.n
        mx = self.sum_x / n
        gram = self.xtx - n * torch.outer(mx, mx)  # X_cᵀ X_c
        sq_x = float(torch.trace(self.xtx))  # ‖X‖²_F
        if sq_x - n * float(mx @ mx) <= 0:
            return float("nan"), float("nan")
        w, v = torch.linalg.eigh(gram)
        keep = w > w.max() * torch.finfo(w.dtype).eps * gram.shape[0]
        whiten = v[:, keep] / w[keep].sqrt()  # Ĝ⁺ = whiten · whitenᵀ on the kept eigenvectors
        cross_xy = float(torch.trace(self.xty))  # Σ⟨x, y⟩ over rows, for ‖Y − X‖²

        def score(xty: torch.Tensor, sum_y: torch.Tensor, sq_y: float) -> float:
            my = sum_y / n
            norm_y2 = sq_y - n * float(my @ my)
            if norm_y2 <= 0:
                return float("nan")
            cross = xty - n * torch.outer(mx, my)  # X_cᵀ Y_c
            return float((whiten.T @ cross).square().sum()) / norm_y2

        return (
            score(self.xty, self.sum_y, self.sq_y),
            score(self.xty - self.xtx, self.sum_y - self.sum_x, self.sq_y - 2 * cross_xy + sq_x),
        )


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
        linearity, linearity_nores = self.linear.scores() if self.linear else (float("nan"), float("nan"))
        return {
            "ma_top1": float(top3[0]),
            "ma_top2": float(top3[1]),
            "ma_top3": float(top3[2]),
            "ma_median": median,
            "ma_ratio": ratio,
            "top1_token": self.best_location[0],
            "top1_dim": self.best_location[1],
            "sun_massive": bool(float(top3[0]) > SUN_MIN_VALUE and ratio >= SUN_MIN_RATIO),
            "linearity": linearity,
            "linearity_nores": linearity_nores,
        }
