"""The package floors of docs/architecture.md: each package imports only the ones below it."""

from __future__ import annotations

import ast
import sys

from .conftest import REPO

OURS = (
    "contracts",
    "features",
    "emergence",
    "modelstore",
    "archmods",
    "extraction",
    "zoo",
    "training",
    "service",
    "archcast",
)
ALLOWED = {
    "contracts": set(),
    "features": {"contracts"},
    "emergence": {"features"},
    "modelstore": {"features", "contracts"},
    "archmods": {"contracts"},
    "extraction": {"archmods", "contracts"},
    "zoo": {"archmods", "contracts"},
    "training": {"features", "emergence", "modelstore", "service", "contracts"},  # service: the served predictor
    "service": {"features", "emergence", "modelstore", "contracts"},
    "archcast": set(OURS),
}


def imports_of(package: str) -> dict[str, set[str]]:
    """module path → the packages of ours it imports (at any depth in the file, lazy imports included)."""
    out = {}
    for path in sorted((REPO / package).rglob("*.py")):
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            found |= {n.split(".")[0] for n in names} & set(OURS)
        out[str(path.relative_to(REPO))] = found - {package}
    return out


def test_every_package_imports_only_the_floors_below_it():
    wrong = {
        module: sorted(found - ALLOWED[package])
        for package in OURS
        for module, found in imports_of(package).items()
        if found - ALLOWED[package]
    }
    assert not wrong, wrong


def test_the_contracts_need_nothing_but_python():
    """The standard library only: every package, the GPU image's included, can import them."""
    for path in (REPO / "contracts").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import | ast.ImportFrom):
                module = node.module if isinstance(node, ast.ImportFrom) else node.names[0].name
                assert module.split(".")[0] in sys.stdlib_module_names, (path.name, module)


def test_features_holds_no_curve_scale_or_mechanism_maths():
    assert not {"curve.py", "scale.py", "mechanism.py"} & {p.name for p in (REPO / "features").glob("*.py")}
