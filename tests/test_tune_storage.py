"""Tuning scales out on Optuna's storage: deterministic study names, resumed and shared studies."""

from __future__ import annotations

import subprocess
import sys

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


@pytest.mark.slow
def test_two_processes_share_one_study_and_the_best_is_chosen_from_all_trials(tmp_path):
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
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


def test_a_rerun_resumes_its_study_instead_of_starting_another(tmp_path):
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    rng = np.random.default_rng(1)
    X = rng.normal(size=(40, 3)).astype(np.float32)
    groups = np.repeat(np.arange(8), 5)
    tune("t", X, X[:, 1], groups, n_trials=4, storage=storage, study_prefix="run")
    tune("t", X, X[:, 1], groups, n_trials=7, storage=storage, study_prefix="run")  # a larger budget: 3 more
    (summary,) = optuna.get_all_study_summaries(storage)
    assert summary.study_name == "run-t" and summary.n_trials == 7
