"""What every archcast package agrees on: the names written into files that one package writes and another
reads, where archcast keeps its cache, and the error type for bad input. The standard library only, no
imports of ours or anyone's, so each package, from the GPU-image ones (zoo/, extraction/) to the service, can
import it.
"""

from __future__ import annotations

import os
from pathlib import Path

# The key of a config.json under which archcast's architecture changes are recorded (archmods/ builds
# them, zoo/ writes them, features/ reads them): {"archcast": {"kv_bias": true, "norm": "dyt", ...}}.
CONFIG_KEY = "archcast"

# Written by zoo/ beside each checkpoint it saves ({"step", "loss", "tokens"}); extraction/ reads the step.
STEP_FILE = "archcast_checkpoint.json"


# $ARCHCAST_CACHE, else ~/.cache/archcast: what archcast keeps between commands (the zoo's corpus and
# checkpoints, the service's combined graph, dequantised GGUF files). Read when asked, so a test can move it.
def cache_root() -> Path:
    return Path(os.environ.get("ARCHCAST_CACHE", Path.home() / ".cache" / "archcast"))


# models/CURRENT names the served model version (the model store's pointer).
CURRENT_POINTER = "CURRENT"


class ArchcastError(ValueError):
    """Bad input: `field` names where (a config key, a request field such as configs[1].n_layer, an option, a
    file) and the message says what is wrong. The CLI prints it as one line; the service answers it with 400."""

    def __init__(self, field: str | None, message: str):
        self.field, self.message = field, message
        super().__init__(f"{field}: {message}" if field else message)

    def within(self, prefix: str) -> ArchcastError:
        """The same error located inside `prefix` (config → config.n_layer, configs[1] → configs[1].n_layer)."""
        return type(self)(f"{prefix}.{self.field}" if self.field else prefix, self.message)
