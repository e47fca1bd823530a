"""The mechanism targets of one (model, layer), read from its measured series (emergence.mechanism defines them).

- has_mechanism: 1 where the layer shows the mechanism at the last checkpoint, else 0;
- bos_share: top1_bos_share at the last checkpoint;
- bos_margin: log(ma_ratio / ma_ratio_nonbos) at the last checkpoint (≥ log 2 where the BOS value stands out);
- onset_step: the first checkpoint from which the layer shows the mechanism at every later checkpoint
  (NaN where it does not show it at the end).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from emergence.mechanism import MECHANISM_TARGETS, shows_mechanism

COLUMNS = ("model_id", "layer", "has_mechanism", *MECHANISM_TARGETS)  # the flag: the truth the margin call is scored on


def onset_step(steps: np.ndarray, shows: np.ndarray) -> float:
    """First step of the final unbroken run of checkpoints that show the mechanism; NaN if the last does not."""
    order = np.argsort(steps)
    steps, shows = np.asarray(steps)[order], np.asarray(shows, dtype=bool)[order]
    if not len(shows) or not shows[-1]:
        return float("nan")
    failing = np.nonzero(~shows)[0]
    return float(steps[failing[-1] + 1] if len(failing) else steps[0])


def mechanism_targets(metrics: pd.DataFrame) -> pd.DataFrame:
    """One row per (model_id, layer) of a metrics table with the BOS columns (the cpu2 tier on)."""
    needed = {"top1_bos_share", "ma_ratio_nonbos", "ma_ratio", "step"}
    if not needed <= set(metrics):
        return pd.DataFrame(columns=list(COLUMNS))
    rows = []
    for (model_id, layer), unit in metrics.groupby(["model_id", "layer"], sort=True):
        unit = unit.sort_values("step")
        last = unit.iloc[-1]
        shows = shows_mechanism(unit).to_numpy()
        rows.append({
            "model_id": model_id,
            "layer": int(layer),
            "has_mechanism": float(shows[-1]),
            "bos_share": float(last["top1_bos_share"]),
            "bos_margin": float(np.log(last["ma_ratio"] / last["ma_ratio_nonbos"])),
            "onset_step": onset_step(unit["step"].to_numpy(), shows),
        })  # fmt: skip
    return pd.DataFrame(rows, columns=list(COLUMNS))
