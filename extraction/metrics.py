"""Behaviour metrics (docs/architecture.md), reduced per batch so memory does not grow with L × tokens.

Per layer ℓ the accumulator keeps: per-sequence top-3 and median of |h_ℓ| (float32
or wider), where each sequence's largest value sits (token position, feature dim), the
largest value away from position 0, and the float64 R factor of a streaming QR from
which the least-squares linearity of X = h_{ℓ-1} → Y = h_ℓ (and of X → Y − X) is exact.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from extraction.geometry import TokenSample

SUN_MIN_VALUE = 100.0  # Sun et al.: a massive activation exceeds 100 in magnitude ...
SUN_MIN_RATIO = 1000.0  # ... and 1000× the median


def magnitude_stats(h: torch.Tensor, a: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-sequence top-3 |a|, median |a| and flat argmax over S×d.

    h: (B, S, d) any dtype; a: its |h| as (B, S·d) float32+ when the caller has it already.
    Returns top3 (B, 3) float32+, median (B,), argmax (B,) int64.
    The median of an even count is the mean of the two middle values (as numpy's).
    """
    a = absolute(h) if a is None else a
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


def absolute(h: torch.Tensor) -> torch.Tensor:
    """|h| as (B, S·d), in float32 or wider: computed once per batch and layer, read by every statistic."""
    a = h.detach().abs().flatten(1)
    return a.float() if a.dtype in (torch.float16, torch.bfloat16) else a


@dataclass
class LinearFit:
    """Least squares of Y on X (with intercept) from a streaming float64 QR, for the linearity scores.

    Householder QR of [1, X − c_x] only, with the same reflections applied to Y − c_y (geqrf + ormqr):
    kept are the triangle R_x (k×k, k = 1 + d_in), Qᵀ(Y − c_y) in its rows (R_xy, k × d_out) and the
    squared norm of what falls below them (`outside`, Y's part no X can reach). Each step stacks R_x over
    the buffered rows; rows are buffered until there are k of them, so a narrow batch does not pay for
    re-factorising R each time. Triangularising only X costs ¾ of a QR of [1, X, Y] (measured 0.18 s vs
    0.25–0.37 s for 5,120 rows at d = 256). The shifts c are the first batch's column means: the intercept
    column makes centring exact, the shift keeps a massive-activation column (mean ≫ spread) from costing
    precision. Unlike normal equations (XᵀX), QR does not square the condition number.
    """

    shift_x: torch.Tensor
    shift_y: torch.Tensor
    r_x: torch.Tensor  # (≤k, k) upper-triangular R of [1, X − c_x] over the rows factorised so far
    r_xy: torch.Tensor  # (≤k, d_out) Qᵀ(Y − c_y) in the rows of r_x
    outside: float = 0.0  # ‖rows of Qᵀ(Y − c_y) below r_x‖²
    update_sum: torch.Tensor | None = None  # Σ of (Y − c_y) − (X − c_x) over rows, (d,)
    update_sumsq: float = 0.0  # Σ of its squares: the update's variance in data space, exactly
    pending: list[tuple[torch.Tensor, torch.Tensor]] = field(default_factory=list)  # fewer than k rows in all
    n: int = 0

    @classmethod
    def start(cls, x: torch.Tensor, y: torch.Tensor) -> LinearFit:
        x, y = x.double(), y.double()
        k = 1 + x.shape[1]
        return cls(x.mean(0), y.mean(0), x.new_zeros(0, k), y.new_zeros(0, y.shape[1]))

    def update(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """x: (n, d_in), y: (n, d_out), cast to float64 here."""
        x, y = x.double() - self.shift_x, y.double() - self.shift_y
        self.pending.append((torch.cat([x.new_ones(len(x), 1), x], dim=1), y))
        if y.shape == x.shape:  # Y − X, the block's update: its total is taken here, not from R_xy − R_xx,
            z = y - x  # whose two terms round differently (an unchanged block would score round-off)
            self.update_sum = z.sum(0) if self.update_sum is None else self.update_sum + z.sum(0)
            self.update_sumsq += float(z.square().sum())
        self.n += len(x)
        if sum(len(rows) for rows, _ in self.pending) >= self.r_x.shape[1]:
            self.factorise()

    def factorise(self) -> None:
        if not self.pending:
            return
        a = torch.cat([self.r_x, *(rows for rows, _ in self.pending)])
        b = torch.cat([self.r_xy, *(y for _, y in self.pending)])
        self.pending = []
        reflectors, tau = torch.geqrf(a)
        b = torch.ormqr(reflectors, tau, b, left=True, transpose=True)  # Qᵀ b
        top = min(len(a), a.shape[1])
        self.r_x, self.r_xy = torch.triu(reflectors[:top]), b[:top]
        self.outside += float(b[top:].square().sum())

    def scores(self) -> tuple[float, float, str]:
        """(linearity, linearity_nores, note): 1 − ‖X̂A − Ŷ‖²_F for column-centred, Frobenius-normalised X̂, Ŷ
        (Ŷ from Y, resp. Y − X) and least-squares A; NaN with a note where a matrix has no variance.

        In the QR's coordinates, after the intercept row, X_c ↦ R_xx, Y_c ↦ R_xy plus `outside`. The residual
        of any target T is its part outside the column space of R_xx, which is spanned by the left singular
        vectors whose singular values pass numpy lstsq's cut-off (ε · max(rows, d) · largest): the
        minimum-norm solution for a rank-deficient X, as the reference computes it. Y − X ↦ R_xy − R_xx, with
        the same `outside`.
        """
        self.factorise()
        finite = torch.isfinite(self.r_x).all() and torch.isfinite(self.r_xy).all() and math.isfinite(self.outside)
        if not finite:  # NaN compares as nothing: clamping it to [0, 1] would report a linearity of 0
            return float("nan"), float("nan"), "h_{l-1} or h_l holds non-finite values (NaN or ±inf)"
        k = self.r_x.shape[1]
        r_x = self.r_x.new_zeros(k, k)
        r_xy = self.r_xy.new_zeros(k, self.r_xy.shape[1])
        r_x[: len(self.r_x)], r_xy[: len(self.r_xy)] = self.r_x, self.r_xy  # fewer rows than k: the rest is zero
        r_xx, r_xy = r_x[1:, 1:], r_xy[1:]  # row 0 holds the intercept
        u, sv, _ = torch.linalg.svd(r_xx)
        if float(sv[0]) == 0.0:
            return float("nan"), float("nan"), "h_{l-1} has no variance over the probe tokens"
        kept = u[:, sv > sv[0] * torch.finfo(torch.float64).eps * max(self.n, k - 1)]

        def score(target: torch.Tensor, total: float | None = None) -> float:
            total = float(target.square().sum()) + self.outside if total is None else total
            if total <= 0.0:
                return float("nan")
            residual = target - kept @ (kept.T @ target)
            return min(1.0, max(0.0, 1.0 - (float(residual.square().sum()) + self.outside) / total))

        update_total = None
        if self.update_sum is not None:
            update_total = self.update_sumsq - float(self.update_sum.square().sum()) / self.n
        linearity, nores = score(r_xy), score(r_xy - r_xx, update_total)
        notes = [m for m, v in (("h_l", linearity), ("h_l − h_{l-1}", nores)) if v != v]
        return linearity, nores, "; ".join(f"{m} has no variance over the probe tokens" for m in notes)


@dataclass
class LayerStats:
    """Everything measured for one layer over all probe batches."""

    top3: list[torch.Tensor] = field(default_factory=list)  # each (B, 3)
    median: list[torch.Tensor] = field(default_factory=list)  # each (B,)
    top1_position: list[torch.Tensor] = field(default_factory=list)  # each (B,) token position of the top-1
    top1_dim: list[torch.Tensor] = field(default_factory=list)  # each (B,) feature dim of the top-1
    nonbos_max: list[torch.Tensor] = field(default_factory=list)  # each (B,) largest |h| at positions ≥ 1
    best_value: float = -1.0
    best_location: tuple[int, int] = (-1, -1)  # (token position, feature dim)
    linear: LinearFit | None = None
    profile: bool = False  # also keep the largest |h| of each feature dim (the layer × dim map, outliers.json)
    dim_max: torch.Tensor | None = None  # (d,) float32
    dim_where: torch.Tensor | None = None  # (d, 2) int64: (window, token position) of each dim's largest |h|
    windows: int = 0  # probe windows seen so far
    attention: bool = False  # also measure how much attention goes to the first token (attn_bos_share)
    attn_head_sum: torch.Tensor | None = None  # (H,) float64: Σ over windows of each head's mean weight on key 0
    attn_windows: int = 0
    attn_note: str = ""  # why attn_bos_share is NaN
    nonfinite: int = 0  # NaN or ±inf values seen in h_l: the layer's metrics are then NaN, not numbers
    geometry: bool = False  # also anisotropy, intrinsic dimension and the token-level nonlinearity (geometry.py)
    sample: TokenSample = field(default_factory=TokenSample)  # the tokens those read, where geometry is on

    def add_magnitudes(self, h: torch.Tensor) -> None:
        bad = int((~torch.isfinite(h)).sum())
        if bad:  # a NaN sorts and compares as nothing meaningful: no statistic of this layer can be trusted
            self.nonfinite += bad
        a = absolute(h)  # (B, S·d)
        top3, median, argmax = magnitude_stats(h, a)
        d = h.shape[-1]
        self.top3.append(top3.cpu())
        self.median.append(median.cpu())
        self.top1_position.append((argmax // d).cpu())
        self.top1_dim.append((argmax % d).cpu())
        rest = a[:, d:]  # positions ≥ 1 (position-major flattening)
        self.nonbos_max.append(rest.amax(1).float().cpu() if rest.shape[1] else torch.zeros(len(h)))
        if self.profile:
            per_dim, at = a.view(-1, d).max(0)  # over every (window, position) of the batch: (d,)
            per_dim, seq = per_dim.float().cpu(), a.shape[1] // d
            where = torch.stack([self.windows + at // seq, at % seq], dim=1).cpu()
            if self.dim_max is None:
                self.dim_max, self.dim_where = per_dim, where
            else:
                higher = per_dim > self.dim_max  # ties keep the earlier window
                self.dim_max = torch.where(higher, per_dim, self.dim_max)
                self.dim_where = torch.where(higher[:, None], where, self.dim_where)
        self.windows += len(h)
        seq = int(top3[:, 0].argmax())
        value = float(top3[seq, 0])
        if value > self.best_value:
            flat = int(argmax[seq])
            self.best_value, self.best_location = value, (flat // d, flat % d)

    def add_pair(self, prev: torch.Tensor, cur: torch.Tensor) -> None:
        """prev = h_{ℓ-1}, cur = h_ℓ, both (B, S, d)."""
        x = prev.reshape(-1, prev.shape[-1])
        y = cur.reshape(-1, cur.shape[-1])
        if self.linear is None:
            self.linear = LinearFit.start(x, y)
        self.linear.update(x, y)
        if self.geometry:
            self.sample.add(prev, cur)

    def add_attention(self, weights: torch.Tensor | None) -> None:
        """weights (B, H, Sq, Sk) of one batch, or None where the attention function returns none: each head's
        mean weight on key 0 over query positions ≥ 1 (position 0 can attend to nothing else)."""
        if weights is None:
            self.attn_note = "this model's attention function returns no weights (eager attention is needed)"
            return
        if weights.shape[2] < 2:
            self.attn_note = "windows of one token have no query position ≥ 1"
            return
        on_first = weights[:, :, 1:, 0].double().mean(2).sum(0).cpu()  # (H,) summed over the batch
        self.attn_head_sum = on_first if self.attn_head_sum is None else self.attn_head_sum + on_first
        self.attn_windows += weights.shape[0]

    def attention_columns(self) -> dict:
        if not self.attention:
            return {}
        if self.attn_head_sum is None:
            return {"attn_bos_share": float("nan"), "attn_bos_share_heads": [], "attn_note": self.attn_note}
        heads = self.attn_head_sum / self.attn_windows
        return {"attn_bos_share": float(heads.mean()), "attn_bos_share_heads": heads.tolist(), "attn_note": ""}

    def mechanism(self, median: float) -> dict:
        """Where the top-1 sits across the N sequences: at BOS (position 0)? in one fixed dimension?"""
        positions, dims = torch.cat(self.top1_position), torch.cat(self.top1_dim)
        counts = torch.bincount(dims)
        mode = int(counts.argmax())  # ties: the lowest dimension
        nonbos = float(torch.cat(self.nonbos_max).double().mean())
        return {
            "top1_bos_share": float((positions == 0).double().mean()),
            "ma_ratio_nonbos": nonbos / median if median > 0 else float("inf"),
            "top1_dim_mode": mode,
            "top1_dim_share": float(counts[mode]) / len(dims),
        }

    def row(self) -> dict:
        if self.nonfinite:
            return self.nonfinite_row()
        top3 = torch.cat(self.top3).double().mean(0)  # mean over the N sequences
        median = float(torch.cat(self.median).double().mean())
        ratio = float(top3[0]) / median if median > 0 else float("inf")
        nan = float("nan")
        linearity, linearity_nores, note = self.linear.scores() if self.linear else (nan, nan, "not measured")
        return {
            "ma_top1": float(top3[0]),
            "ma_top2": float(top3[1]),
            "ma_top3": float(top3[2]),
            "ma_median": median,
            "ma_ratio": ratio,
            "top1_token": self.best_location[0],
            "top1_dim": self.best_location[1],
            "sun_massive": bool(float(top3[0]) > SUN_MIN_VALUE and ratio >= SUN_MIN_RATIO),
            **self.mechanism(median),
            "linearity": linearity,
            "linearity_nores": linearity_nores,
            "linearity_note": note,
            "nonfinite_values": 0,
            **self.profile_columns(),
            **self.attention_columns(),
            **(self.sample.columns() if self.geometry else {}),
        }

    def profile_columns(self) -> dict:
        if not self.profile:
            return {}
        return {"dim_max": self.dim_max.tolist(), "dim_where": self.dim_where.tolist()}

    def nonfinite_row(self) -> dict:
        """Every metric NaN (a count or position −1, no flag set), the reason in linearity_note."""
        nan = float("nan")
        reason = f"h_l holds {self.nonfinite} non-finite values (NaN or ±inf) over the probe: not measured"
        return {
            "ma_top1": nan, "ma_top2": nan, "ma_top3": nan, "ma_median": nan, "ma_ratio": nan,
            "top1_token": -1, "top1_dim": -1, "sun_massive": False,
            "top1_bos_share": nan, "ma_ratio_nonbos": nan, "top1_dim_mode": -1, "top1_dim_share": nan,
            "linearity": nan, "linearity_nores": nan, "linearity_note": reason,
            "nonfinite_values": self.nonfinite,
            **self.profile_columns(),
            **self.attention_columns(),
            **(TokenSample().columns() if self.geometry else {}),
        }  # fmt: skip
