"""The fits a held-out evaluation may read: the training side's series fitted towards a population curve of the
training side alone.

The served fits pull every series towards the median series of all models (training.fit), so their shapes have
seen every design; a fold that read its shapes from them would have seen its held-out designs. Each training set
is fitted once (memoised here and, where a folder is given, on disk: the same training set recurs across
metrics, LightGBM seeds and the champion's evaluation).
"""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from training.fit import DEFAULT_METRICS, FitWarning, curve_shapes, fit_table


class HeldOutFits:
    def __init__(self, metrics: pd.DataFrame, metric_names=DEFAULT_METRICS, cache: Path | None = None, key: str = ""):
        """`metrics`: every measured series; `cache`: a folder for the fitted tables, named by `key` (what the fits
        depend on besides the training set: the series and the fitting code) and the training set."""
        self.metrics = metrics
        self.metric_names = tuple(metric_names)
        self.cache, self.key = cache, key
        self._fits: dict[frozenset, pd.DataFrame] = {}

    def fits(self, train_models) -> pd.DataFrame:
        """fit_table of the `train_models`' series alone."""
        models = frozenset(str(m) for m in train_models)
        if models not in self._fits:
            self._fits[models] = self._load_or_fit(models)
        return self._fits[models]

    def shapes(self, metric: str, last_step: float, train_models) -> np.ndarray:
        """The projector's shapes for a fold whose training side is `train_models` (training.fit.curve_shapes)."""
        return curve_shapes(self.fits(train_models), metric, last_step)

    def _load_or_fit(self, models: frozenset) -> pd.DataFrame:
        path = None
        if self.cache is not None:
            name = hashlib.sha256((self.key + "\n" + "\n".join(sorted(models))).encode()).hexdigest()[:16]
            path = self.cache / f"heldout-fits-{name}.parquet"
            if path.is_file():
                return pd.read_parquet(path)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FitWarning)
            fits = fit_table(self.metrics[self.metrics["model_id"].isin(models)], self.metric_names, workers=2)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            fits.to_parquet(path, index=False)
        return fits
