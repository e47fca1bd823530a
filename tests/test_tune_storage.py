"""Tuning scales out on Optuna's storage: deterministic study names, resumed and shared studies."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import optuna
import pytest

from training.tune import tune

from .conftest import REPO

# Two worker processes tune one target on one SQLite file; each prints the best it chose.
WORKER = """
import sys, numpy as np
from training.tune import tune
rng = np.random.default_rng(0)
X = rng.normal(size=(60, 4)).astype(np.float32)
y = X[:, 0] * 2 + rng.normal(0, 0.1, 60)
groups = np.repeat(np.arange(12), 5)
tuned = tune("t", X, y, groups, n_trials=int(sys.argv[2]), storage=sys.argv[1], study_prefix="shared",
             worker=int(sys.argv[3]))
print(tuned.cv_loss)
"""


def _two_workers_share_one_study(storage: str) -> None:
    """Two worker processes tune one target on `storage`; both sets of trials land and the best is chosen
    from all of them."""
    optuna.create_study(study_name="shared-t", storage=storage)  # created once, as a first worker would
    workers = [
        subprocess.Popen([sys.executable, "-c", WORKER, storage, "10", str(k)], cwd=REPO, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
        for k in (0, 1)
    ]  # fmt: skip
    outputs = [w.communicate(timeout=300) for w in workers]
    assert all(w.returncode == 0 for w in workers), [err[-2000:] for _, err in outputs]
    study = optuna.load_study(study_name="shared-t", storage=storage)
    finished = [
        t for t in study.trials if t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    ]
    assert 10 <= len(finished) <= 11  # together they stop at the budget (one may be in flight as it is reached)
    assert {t.user_attrs["worker"] for t in finished} == {0, 1}  # both sets of trials landed in it
    # a third call finds the budget spent: it runs no trial and reports the best over every trial
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 4)).astype(np.float32)
    again = tune("t", X, X[:, 0], np.repeat(np.arange(12), 5), n_trials=10, storage=storage, study_prefix="shared")
    assert again.n_trials == len(study.trials)
    assert again.cv_loss == min(t.value for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE)
    assert all(float(out.strip()) >= again.cv_loss for out, _ in outputs)


@pytest.mark.slow
def test_two_processes_share_one_study_and_the_best_is_chosen_from_all_trials(tmp_path):
    _two_workers_share_one_study(f"sqlite:///{tmp_path / 'optuna.db'}")


def _postgres_bin() -> Path | None:
    """The folder of Debian's PostgreSQL server programs (scripts/setup installs the package when missing)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return found[-1].parent if found else None


@pytest.fixture
def postgres():
    """A throwaway PostgreSQL server of its own (a fresh cluster, a Unix socket in its folder, no TCP port):
    the storage URL of its `postgres` database. The server refuses to run as root: then it runs as the
    `postgres` user the Debian package creates."""
    programs = _postgres_bin()
    if programs is None:
        pytest.fail("PostgreSQL is not installed: run scripts/setup (it installs Debian's postgresql)")
    root = Path(tempfile.mkdtemp(prefix="archcast-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    data = root / "data"

    def run(*command: str) -> None:
        subprocess.run(as_user + list(command), check=True, capture_output=True, timeout=120)

    run(str(programs / "initdb"), "-D", str(data), "-U", "archcast", "--auth=trust", "-E", "UTF8")
    run(str(programs / "pg_ctl"), "-D", str(data), "-l", str(root / "server.log"), "-w", "-o",
        f"-k {root} -c listen_addresses=''", "start")  # fmt: skip
    try:
        yield f"postgresql+psycopg2://archcast@/postgres?host={root}"
    finally:
        run(str(programs / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop")
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.slow
def test_two_processes_share_one_study_on_a_real_postgresql_server(postgres):
    _two_workers_share_one_study(postgres)
    assert optuna.get_all_study_summaries(postgres)[0].study_name == "shared-t"  # the rows are in PostgreSQL


def test_a_rerun_resumes_its_study_instead_of_starting_another(tmp_path):
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    rng = np.random.default_rng(1)
    X = rng.normal(size=(40, 3)).astype(np.float32)
    groups = np.repeat(np.arange(8), 5)
    tune("t", X, X[:, 1], groups, n_trials=4, storage=storage, study_prefix="run")
    tune("t", X, X[:, 1], groups, n_trials=7, storage=storage, study_prefix="run")  # a larger budget: 3 more
    (summary,) = optuna.get_all_study_summaries(storage)
    assert summary.study_name == "run-t" and summary.n_trials == 7
