"""EM under a time budget (``max_time``): it stops after the step that passes it, keeps the
best run so far, says so, and every process of a torchrun world stops at the same step."""

from __future__ import annotations

import time
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

import ptheta
from ptheta.data import stream
from ptheta.models import em
from tests.models.test_streaming_contract import _TwoProcesses

X = np.random.default_rng(0).normal(size=(400, 3))
FAMILIES = {
    "gmm": {"n_components": 3},
    "categorical-mixture": {"n_components": 3},
    "latent-class": {"n_components": 3},
    "hmm": {"n_states": 2},
}


def _data(name: str) -> np.ndarray:
    return (X > 0).astype(np.int64) if name == "categorical-mixture" else X


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_a_spent_budget_stops_em_after_one_step_and_says_so(name):
    model = ptheta.make(name, **FAMILIES[name], max_iter=50, tol=0.0, n_init=3,
                        max_time=1e-9)  # fmt: skip
    with pytest.warns(ConvergenceWarning, match="stopped at max_time"):
        model.fit(_data(name))
    assert model.n_iter_ == 1 and len(model.history_) == 1
    assert model.best_init_ == 0  # no restart began after the deadline
    unlimited = ptheta.make(name, **FAMILIES[name], max_iter=5, tol=0.0, n_init=1)
    with pytest.warns(ConvergenceWarning, match="did not converge in max_iter"):
        unlimited.fit(_data(name))
    assert unlimited.n_iter_ == 5  # without a budget: max_iter steps


def test_the_deadline_is_measured_from_the_start():
    early = em.Deadline(600.0)  # no machine is that slow between two lines
    assert not early.passed() and not early.hit
    late = em.Deadline(0.01)
    time.sleep(0.05)
    assert late.passed() and late.hit
    assert not em.Deadline(None).passed()


def test_every_process_stops_at_the_same_step(monkeypatch):
    # rank 1 is never late by its own clock, rank 0 always is: both stop after one step
    world = _TwoProcesses()
    monkeypatch.setattr(stream, "process_share", world.share)
    monkeypatch.setattr(stream, "all_reduce_sum", world.all_reduce_sum)
    real, calls = time.monotonic, {0: 0, 1: 0}

    def clock() -> float:  # rank 0's clock jumps ahead once its deadline is set
        rank = world.share()[0]
        calls[rank] += 1
        return real() + (1e6 if rank == 0 and calls[rank] > 1 else 0.0)

    monkeypatch.setattr(em.time, "monotonic", clock)

    def fit():
        model = ptheta.make("gmm", n_components=2, max_iter=20, tol=0.0, max_time=1e3)
        return model.fit(X).n_iter_

    with warnings.catch_warnings():  # warnings are not captured per thread
        warnings.simplefilter("ignore", ConvergenceWarning)
        assert world.run(fit) == [1, 1]
