"""README stays the user's document: short, every warning code the service can send listed, its two commands
the ones CI and a new user run, and every local link pointing at a file that exists."""

from __future__ import annotations

import re

from service.prediction import WARNING_CODES

from .conftest import REPO

README = (REPO / "README.md").read_text()


def test_readme_is_short_and_has_no_wall_of_text():
    lines = README.splitlines()
    assert len(lines) <= 250
    assert [i + 1 for i, line in enumerate(lines) if len(line) > 400] == []


def test_every_warning_code_is_listed():
    assert [code for code in WARNING_CODES if f"`{code}`" not in README] == []


def test_the_test_command_is_the_one_ci_runs_and_the_main_job_uses_the_committed_model():
    ci = (REPO / ".ci" / "run").read_text()
    test_command = re.search(r"^bash scripts/setup && \.venv/bin/ruff .*$", README, re.M).group(0)
    assert test_command in ci
    assert "bash scripts/setup && .venv/bin/archcast predict examples/configs --out" in README


def test_local_links_point_at_files_that_exist():
    targets = re.findall(r"\]\(((?!https?://)[^)#\s]+)", README)
    assert targets and [t for t in targets if not (REPO / t).exists()] == []
