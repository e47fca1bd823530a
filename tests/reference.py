"""The independent float64 reference the linearity scores are checked against."""

from __future__ import annotations

import numpy as np


def lstsq_linearity(x: np.ndarray, y: np.ndarray) -> float:
    """1 − ‖X̂A − Ŷ‖² for centred, Frobenius-normalised X̂, Ŷ, A from numpy's lstsq (SVD), in float64."""
    x = x - x.mean(0)
    y = y - y.mean(0)
    x, y = x / np.linalg.norm(x), y / np.linalg.norm(y)
    a = np.linalg.lstsq(x, y, rcond=None)[0]
    return 1.0 - float(np.linalg.norm(x @ a - y) ** 2)
