"""Linearity stays exact where massive activations are: equal to a direct float64 lstsq to 1e-6, in [0, 1].

Each case is built so that a normal-equations (XᵀX) solve, or centring after accumulation, goes wrong.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from extraction.metrics import LinearFit

from .reference import lstsq_linearity as reference


def streamed(x: np.ndarray, y: np.ndarray, batches: int = 4) -> tuple[float, float, str]:
    fit = None
    for rows in np.array_split(np.arange(len(x)), batches):
        xb, yb = torch.from_numpy(x[rows]), torch.from_numpy(y[rows])
        fit = fit or LinearFit.start(xb, yb)
        fit.update(xb, yb)
    return fit.scores()


def float32(a: np.ndarray) -> np.ndarray:
    """What a hook sees from a float32 model, held in float64 for the reference."""
    return a.astype(np.float32).astype(np.float64)


def planted_massive(rng, n=2048, d=48, seq=256, value=5000.0):
    """One dimension at `value` on the first token of every sequence, the rest near 0.03 (a real model's spread)."""
    x = 0.03 * rng.normal(size=(n, d))
    x[::seq, 7] = value
    y = x @ (rng.normal(size=(d, d)) * 0.2) + x + 0.01 * rng.normal(size=(n, d))
    y[::seq, 7] = 1.2 * value
    return x, y


def large_mean(rng, mean, n=1500, d=32):
    """A column of mean `mean` and spread 0.03 that Y depends on."""
    x = rng.normal(size=(n, d))
    x[:, 0] = mean + 0.03 * rng.normal(size=n)
    y = 0.5 * x + 0.1 * rng.normal(size=(n, d))
    y[:, 3] += 40.0 * (x[:, 0] - mean)
    return x, y


def small_direction(rng, n=4096, d=96, seq=256):
    """Y reads a direction 1,000× smaller than the ordinary channels (spread 0.03), next to a 5,000-valued one.

    Its eigenvalue sits ~1e-14 below the largest, under the eigenvalue cut-off ε·d·λ_max of a Gram solve.
    """
    basis, _ = np.linalg.qr(rng.normal(size=(d - 1, d - 1)))
    scales = np.full(d - 1, 0.03)
    scales[-1] = 3e-5
    rotated = (rng.normal(size=(n, d - 1)) * scales) @ basis.T  # the small direction is no single column
    massive = 0.03 * rng.normal(size=(n, 1))
    massive[::seq] = 5000.0
    x = np.concatenate([massive, rotated], axis=1)
    small = rotated @ basis[:, -1]  # the small direction's coordinate
    y = np.outer(small, rng.normal(size=d)) * 1e3 + 1e-4 * rng.normal(size=(n, d))
    return x, y


CASES = {
    "planted massive activation": lambda rng: planted_massive(rng),
    "large mean 5e3": lambda rng: large_mean(rng, 5e3),
    "large mean 3e4": lambda rng: large_mean(rng, 3e4),
    "small direction next to a massive one": small_direction,
    "rank-deficient X": lambda rng: (lambda x: (x, x @ rng.normal(size=(24, 24)) + rng.normal(size=x.shape)))(
        np.repeat(rng.normal(size=(500, 12)), 2, axis=1)
    ),
    "fewer rows than d": lambda rng: (rng.normal(size=(40, 64)), rng.normal(size=(40, 64))),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_linearity_equals_lstsq_to_1e6_and_stays_in_unit_interval(case):
    rng = np.random.default_rng(3)
    x, y = (float32(a) for a in CASES[case](rng))
    linearity, nores, note = streamed(x, y)
    assert note == ""
    assert linearity == pytest.approx(reference(x, y), abs=1e-6)
    assert nores == pytest.approx(reference(x, y - x), abs=1e-6)
    assert 0.0 <= linearity <= 1.0 and 0.0 <= nores <= 1.0


def test_small_direction_is_found_not_cut_off():
    # The signal lives entirely in the direction a Gram-matrix cut-off of sqrt(eps·d) discards.
    x, y = (float32(a) for a in small_direction(np.random.default_rng(5)))
    linearity, _, _ = streamed(x, y)
    assert linearity > 0.99


def test_fewer_rows_than_d_gives_exactly_one_not_more():
    x, y = float32(np.random.default_rng(0).normal(size=(2, 40, 64)))
    linearity, _, _ = streamed(x, y, batches=2)
    assert linearity == 1.0


def test_target_without_variance_is_nan_with_a_reason():
    x = np.random.default_rng(0).normal(size=(100, 8))
    linearity, nores, note = streamed(x, np.ones((100, 8)))
    assert np.isnan(linearity) and not np.isnan(nores)
    assert "h_l has no variance" in note


def test_batching_does_not_change_the_scores():
    x, y = (float32(a) for a in planted_massive(np.random.default_rng(2)))
    one = streamed(x, y, batches=1)
    many = streamed(x, y, batches=9)
    assert one[0] == pytest.approx(many[0], abs=1e-12) and one[1] == pytest.approx(many[1], abs=1e-12)


def test_a_block_that_leaves_its_input_unchanged_has_no_nores_score():
    # h_l == h_{l-1} (a zero-initialised residual branch): the update has no variance; round-off in the QR's
    # coordinates must not pass for a score
    x = float32(np.random.default_rng(5).normal(size=(700, 24)) * 3 + 10)
    linearity, nores, note = streamed(x, x.copy())
    assert linearity == pytest.approx(1.0, abs=1e-9)
    assert np.isnan(nores) and "h_l − h_{l-1}" in note
