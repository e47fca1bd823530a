"""Record in a version's manifest what it answers for its reference configs, and with which library versions,
so that a machine whose libraries compute other numbers refuses to serve it (service.predictor.check_expected).

    .venv/bin/python -m training.expected models/<version>

The pipeline records them at export; this adds them to a version exported before they existed (its files and
answers unchanged: only the manifest gains the `expected` entry).
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from modelstore import Manifest, read_manifest
from service.predictor import Predictor, expected_block


def record_expected(folder: Path, manifest: Manifest | None = None) -> Manifest:
    """Load `folder` through the served predictor (checking any answers it already records), store its answers.
    `manifest`: the one just written there, as the exporter holds it (its NaN scores still NaN, not JSON's null)."""
    folder = Path(folder)
    expected = expected_block(Predictor(folder.parent, folder.name))
    manifest = read_manifest(folder) if manifest is None else manifest
    manifest = replace(manifest, info={**manifest.info, "expected": expected})
    manifest.write(folder)
    return manifest


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folder", type=Path, help="a version folder, e.g. models/<version>")
    args = p.parse_args()
    answers = record_expected(args.folder).info["expected"]
    print(f"{args.folder}: answers for {len(answers['outputs'])} reference configs, with {answers['libraries']}")


if __name__ == "__main__":
    main()
