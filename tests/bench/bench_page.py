"""The what-if page's speed targets, measured in a real headless Chromium against a real `archcast serve`.

Runs tests/test_page.py's timing test (it writes what it measured beside its screenshots) and compares the
figures with the targets: from an edit to the redrawn curves ≤ 150 ms median. The first load's size
(≤ 300 KB) is a plain test, since it does not depend on the machine's load.

  .venv/bin/python tests/bench/bench_page.py
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
REDRAW_TARGET_MS = 150


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        test = "tests/test_page.py::test_every_edit_is_timed_from_the_input_to_the_redrawn_curves"
        command = [sys.executable, "-m", "pytest", "-q", "-s", "-m", "slow", test, f"--basetemp={tmp}"]
        if subprocess.run(command, cwd=REPO).returncode != 0:
            return 1
        (found,) = Path(tmp).rglob("redraw.json")
        figures = json.loads(found.read_text())
    median = statistics.median(figures["durations_ms"])
    verdict = "met" if median <= REDRAW_TARGET_MS else "NOT met"
    print(
        f"edit → redraw median {median:.1f} ms over {len(figures['durations_ms'])} edits (max "
        f"{max(figures['durations_ms']):.1f} ms; /predict {figures['request_ms']:.1f} ms, drawing "
        f"{figures['render_ms']:.1f} ms, to the next frame {figures['frame_ms']:.1f} ms): "
        f"target ≤ {REDRAW_TARGET_MS} ms {verdict}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
