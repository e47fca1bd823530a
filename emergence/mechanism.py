"""Reading one model's metrics as the BOS massive-activation mechanism or not, and saying so in a sentence.

Shared by the measure report, the zoo's data card and the predictor's targets (one definition).

The mechanism of trained LMs: the top-1 |h| sits on the first token (BOS) in one or a few fixed dimensions,
from an early layer on, well above the largest value elsewhere. A layer shows it here when the top-1 is at
position 0 in at least BOS_SHARE of the probe windows and stands at least ABOVE_REST× above the largest
value at positions ≥ 1. A large ratio that fails either test is a generic outlier.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd
from scipy.special import ndtr  # the normal CDF as a bare ufunc: scipy.stats' norm.cdf costs 0.1 ms a call

BOS_SHARE = 0.9  # share of windows whose top-1 is at position 0
ABOVE_REST = 2.0  # BOS top-1 over the largest value away from BOS


@dataclass(frozen=True)
class Mechanism:
    """One checkpoint's reading. Layers are 1-based; None where there is no such layer."""

    layers: tuple[int, ...]  # layers that show the mechanism
    onset_layer: int | None  # the first of them
    dims: tuple[int, ...]  # their modal top-1 dimensions, most frequent first
    peak_layer: int  # the layer with the largest ratio, mechanism or not
    peak_ratio: float
    peak_at_bos: bool
    n_layers: int

    def summary(self) -> str:
        peak = f"peak ratio {self.peak_ratio:,.0f} at layer {self.peak_layer}"
        if self.onset_layer is None:
            where = "on the first token" if self.peak_at_bos else "away from the first token"
            return f"No BOS massive-activation mechanism in any of {self.n_layers} layers; {peak} ({where})."
        dims = ", ".join(str(d) for d in self.dims[:3])
        return (
            f"Massive activations from layer {self.onset_layer} on the first token, in dimension"
            f"{'s' if len(self.dims) > 1 else ''} {dims}; present in {len(self.layers)} of {self.n_layers} layers; "
            f"{peak}."
        )


def shows_mechanism(rows: pd.DataFrame) -> pd.Series:
    """Per row (one layer of one checkpoint): BOS-anchored and well above the rest."""
    return (rows["top1_bos_share"] >= BOS_SHARE) & (rows["ma_ratio"] >= ABOVE_REST * rows["ma_ratio_nonbos"])


def read_mechanism(rows: pd.DataFrame) -> Mechanism:
    """rows: the layers of one checkpoint (columns of metrics.parquet)."""
    rows = rows.sort_values("layer")
    hits = rows[shows_mechanism(rows)]
    peak = rows.loc[rows["ma_ratio"].idxmax()]
    dims = hits["top1_dim_mode"].astype(int).value_counts()
    return Mechanism(
        layers=tuple(int(x) for x in hits["layer"]),
        onset_layer=int(hits["layer"].iloc[0]) if len(hits) else None,
        dims=tuple(int(d) for d in dims.index),
        peak_layer=int(peak["layer"]),
        peak_ratio=float(peak["ma_ratio"]),
        peak_at_bos=bool(peak["top1_bos_share"] >= BOS_SHARE),
        n_layers=len(rows),
    )


# What the predictor learns of the mechanism, per layer, at the end of training (the reference recipe's last
# checkpoint), and the transform each target is learned in: the share of windows whose top-1 is at BOS, the
# margin log(ratio / non-BOS ratio), and the step from which the layer shows the mechanism to the end.
MECHANISM = "mechanism"  # the "metric" these targets go under in a model's manifest
MECHANISM_TARGETS: dict[str, str] = {
    "bos_share": "identity",
    "bos_margin": "identity",
    "onset_step": "log1p",
}
# Whether a layer carries the mechanism is read off its predicted margin: margin ≥ log ABOVE_REST. Measured on
# the cpu2 zoo: every layer whose measured margin passes also has its top-1 on BOS in ≥ BOS_SHARE of windows (64
# of 64), and on held-out designs the margin's call was never worse than a regressor of the 0/1 flag (73 %
# against 67 % of runs with the onset layer right on 55 runs, 60 % each on 57): one regressor fewer, and the
# margin's size informs where the flag's sign does not (docs/architecture.md).
MARGIN_CUT = math.log(ABOVE_REST)


def carries_mechanism(bos_margin) -> np.ndarray:
    """Per layer, from its (predicted or measured) margin log(ratio / non-BOS ratio): the mechanism or not."""
    with np.errstate(invalid="ignore"):
        return np.asarray(bos_margin, dtype=np.float64) >= MARGIN_CUT


@dataclass(frozen=True)
class MarginError:
    """The held-out error of a predicted margin, split in two: an offset that one model's layers share (a design
    whose whole margin profile sits high or low) and what is left per layer. Measured on the cpu2 zoo the shared
    part is most of it, so the layers of one model are far from independent."""

    model_sd: float  # sd of the offset a model's layers share
    layer_sd: float  # sd of each layer's error about that offset

    @property
    def total_sd(self) -> float:
        """The sd of one layer's error, both parts together: what each layer's own chance is read with."""
        return math.hypot(self.model_sd, self.layer_sd)

    def widened(self, factor: float) -> MarginError:
        """Both parts times `factor` (≥ 1): outside the training domain the held-out error says too little."""
        return MarginError(model_sd=self.model_sd * factor, layer_sd=self.layer_sd * factor)

    @classmethod
    def from_scores(cls, scores: dict) -> MarginError | None:
        """From a manifest's mechanism scores (training.onset_error.mechanism_error): the split where it is there;
        an older model with only the whole sd takes its layers as independent; none without any."""
        whole, shared, own = (scores.get(f"margin_residual_sd{part}") for part in ("", "_model", "_layer"))
        if shared is not None and own is not None:
            return cls(model_sd=float(shared), layer_sd=float(own))
        return None if whole is None else cls(model_sd=0.0, layer_sd=float(whole))


def mechanism_probability(bos_margin, residual_sd: float) -> np.ndarray:
    """Per layer, the chance that the measured margin passes, for a predicted margin whose held-out error is
    normal with this sd: ≥ 0.5 exactly where carries_mechanism() says yes."""
    return ndtr((np.asarray(bos_margin, dtype=np.float64) - MARGIN_CUT) / residual_sd)


def onset_chances(bos_margin, error: MarginError) -> np.ndarray:
    """(L + 1,) the chance that the measured onset is no layer (index 0) or layer k (index k), for one model's
    predicted margins (NaN where any margin is not finite): given the shared offset u the layers pass
    independently, layer k first with chance p_k(u) · Π_{j<k}(1 − p_j(u)), and u is averaged out. Taking the
    layers as independent (model_sd = 0) overstates how likely some early layer is to pass when the whole
    profile is off together."""
    margin = np.asarray(bos_margin, dtype=np.float64).reshape(-1)
    return onset_chances_many(margin, np.array([0, len(margin)]), error)[0, : len(margin) + 1]


# configs × offset nodes × layers a chunk of onset_chances_many holds at once (16 MB of float64)
_CHUNK_CELLS = 1 << 21


def onset_chances_many(bos_margin, offsets, error: MarginError, factors=None) -> np.ndarray:
    """onset_chances for many models at once: `bos_margin` stacks their layers (model i's are
    offsets[i]:offsets[i + 1]) and model i's error is `error` widened by factors[i] (default 1). Gives
    (N, Lmax + 1), row i's chances in its first L_i + 1 columns and zeros after (a NaN row where a margin of the
    model is not finite)."""
    margin = np.asarray(bos_margin, dtype=np.float64)
    offsets = np.asarray(offsets, dtype=np.int64)
    lengths = np.diff(offsets)
    n, width = len(lengths), int(lengths.max(initial=0))
    factors = np.ones(n) if factors is None else np.asarray(factors, dtype=np.float64)
    broken = ~np.logical_and.reduceat(np.isfinite(margin), offsets[:-1]) if len(margin) else np.zeros(n, bool)
    if n == 1:  # one model (a request): nothing to pad
        padded = margin[None, :].copy()
    else:  # padded with −inf: a layer that is not there never passes
        padded = np.full((n, width), -np.inf)
        padded[np.arange(width)[None, :] < lengths[:, None]] = margin
    padded[broken] = -np.inf
    model_sd, layer_sd = error.model_sd * factors, error.layer_sd * factors
    if error.model_sd > 0 and error.layer_sd == 0:
        # every layer passes where the offset clears its own bar t_j: layer k is first for u in
        # [t_k, min_{j<k} t_j), none for u below every bar
        bars = (MARGIN_CUT - padded) / model_sd[:, None]
        lowest_before = np.minimum.accumulate(np.hstack([np.full((n, 1), np.inf), bars]), axis=1)
        first = np.maximum(0.0, ndtr(lowest_before[:, :-1]) - ndtr(bars))
        out = np.hstack([ndtr(lowest_before[:, -1:]), first])
    else:
        z, weights = _offset_grid(error.layer_sd / error.model_sd if error.model_sd > 0 else math.inf)
        out = np.zeros((n, width + 1))
        if n == 1:  # one model (a request): its own 2-D block, with scalar errors
            out[0] = _chances_block(padded[0], model_sd[0], layer_sd[0], z, weights, error.layer_sd > 0)
        else:  # chunks of similar depth, so that little padding is computed
            order = np.argsort(lengths, kind="stable")
            rows = max(1, _CHUNK_CELLS // max(1, len(z) * width))
            for a in range(0, n, rows):
                take = order[a : a + rows]
                w = int(lengths[take].max())
                block = _chances_block(padded[take, :w], model_sd[take], layer_sd[take], z, weights, error.layer_sd > 0)
                out[take, : w + 1] = block
    out[broken] = np.nan
    return out


def _chances_block(margins, model_sd, layer_sd, z, weights, smooth: bool) -> np.ndarray:
    """onset_chances' expectation over the shared offset for margins (..., L) whose errors are model_sd and
    layer_sd (... each; scalars for one model): (..., L + 1). `smooth`: the per-layer part is not zero."""
    shifted = margins[..., None, :] + (z * np.asarray(model_sd)[..., None])[..., :, None] - MARGIN_CUT  # (…, K, L)
    if smooth:
        passes = ndtr(shifted / np.asarray(layer_sd)[..., None, None])
    else:
        passes = (shifted >= 0).astype(np.float64)
    ones = np.ones((*passes.shape[:-1], 1))
    none_before = np.cumprod(np.concatenate([ones, 1.0 - passes], axis=-1), axis=-1)  # (…, K, L + 1)
    first = np.concatenate([none_before[..., -1:], passes * none_before[..., :-1]], axis=-1)
    return np.matmul(weights, first)  # (K,) @ (…, K, L + 1)


@lru_cache(maxsize=8)
def _offset_grid(ratio: float) -> tuple[np.ndarray, np.ndarray]:
    """Nodes z (in units of the shared offset's sd) and weights for the normal expectation over the shared
    offset, ±6 sd, for a per-layer sd `ratio` times the shared one (inf: no shared part, one node): spaced at a
    quarter of the per-layer sd or finer, so that each layer's chance, a normal CDF of that width in u, is
    resolved (a fixed Gauss–Hermite rule is off by up to 0.1 when the per-layer part is small). The grid depends
    on the ratio alone, so an error widened by any factor shares it. Read-only: the arrays are shared."""
    if math.isinf(ratio):
        z, weights = np.zeros(1), np.ones(1)
    else:
        step = min(0.25, 0.25 * ratio)
        half = min(1000, math.ceil(6.0 / step))
        z = np.linspace(-6.0, 6.0, 2 * half + 1)
        weights = np.exp(-0.5 * z * z)
        weights = weights / weights.sum()
    z.flags.writeable = weights.flags.writeable = False
    return z, weights


def likeliest_onset(chances) -> int | None:
    """The onset layer most likely to be the measured one (from onset_chances), None if no onset is likeliest.
    Thresholding each layer on its own picks a later onset (or none) whenever the early layers are each a little
    under even odds."""
    best = int(np.argmax(chances))
    return best or None


def onset_layer(has_mechanism) -> int | None:
    """The first layer (1-based) that shows the mechanism, or None."""
    hits = [i + 1 for i, hit in enumerate(has_mechanism) if hit]
    return hits[0] if hits else None
