"""Write the locked dependency sets from the environment they were tested in (.venv):

    .venv/bin/python scripts/lock.py          # rewrite requirements.lock and requirements-serve.lock
    .venv/bin/python scripts/lock.py --check  # exit 1 where either differs from what is installed

requirements.lock pins every installed package (scripts/setup installs under it, so a fresh machine gets the
versions the tests and the committed model were checked with); requirements-serve.lock pins the closure of
what the Bento needs to serve (bentofile.yaml installs from it). torch is written without its local label
(+cpu): `torch==2.13.0` matches the CPU build and the plain one alike.
"""

from __future__ import annotations

import argparse
import sys
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[1]
LOCK, SERVE_LOCK = REPO / "requirements.lock", REPO / "requirements-serve.lock"
# what the Bento imports (bentofile.yaml, service/): their dependencies follow
SERVE_ROOTS = ("bentoml", "numpy", "pandas", "scipy", "onnx", "onnxruntime", "starlette", "orjson", "threadpoolctl")
HEADER = "# written by scripts/lock.py from the tested environment; do not edit by hand\n"


def installed() -> dict[str, metadata.Distribution]:
    """canonical name → distribution, archcast and the packaging tools left out."""
    out = {canonicalize_name(d.metadata["Name"]): d for d in metadata.distributions()}
    # ours, what every venv brings with it, and uv, which `bentoml build` installs into the running
    # environment on its first build (tests/test_bento.py)
    for tool in ("archcast", "pip", "setuptools", "wheel", "uv"):
        out.pop(tool, None)
    return out


def pin(dist: metadata.Distribution) -> str:
    return f"{dist.metadata['Name']}=={dist.version.split('+')[0]}"


def closure(roots, dists: dict[str, metadata.Distribution]) -> set[str]:
    """The roots and every package they need, as their markers read on this machine (no extras)."""
    seen, todo = set(), [canonicalize_name(r) for r in roots]
    while todo:
        name = todo.pop()
        if name in seen or name not in dists:
            continue
        seen.add(name)
        for text in dists[name].requires or []:
            req = Requirement(text)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(canonicalize_name(req.name))
    return seen


def lock_text(names, dists) -> str:
    return HEADER + "".join(pin(dists[n]) + "\n" for n in sorted(names))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--check", action="store_true", help="compare instead of writing")
    args = p.parse_args()
    dists = installed()
    wanted = {LOCK: lock_text(dists, dists), SERVE_LOCK: lock_text(closure(SERVE_ROOTS, dists), dists)}
    if args.check:
        stale = [path.name for path, text in wanted.items() if not path.exists() or path.read_text() != text]
        if stale:
            print(f"{', '.join(stale)} differ from the installed packages: run scripts/lock.py", file=sys.stderr)
        return 1 if stale else 0
    for path, text in wanted.items():
        path.write_text(text)
        print(f"{path.name}: {text.count(chr(10)) - 1} packages")
    return 0


if __name__ == "__main__":
    sys.exit(main())
