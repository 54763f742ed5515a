"""The shared EM driver (ptheta/models/em.py): monotone objective, best restart, warnings."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from sklearn.exceptions import ConvergenceWarning

from ptheta.models.em import run_em

X = torch.as_tensor(
    np.concatenate([np.random.default_rng(0).normal(-2, 0.5, 200),
                    np.random.default_rng(1).normal(3, 1.0, 300)])
)  # fmt: skip


def _steps():
    """EM for a two-component 1-D Gaussian mixture, written out by hand."""

    def log_joint(params):
        w, mu, var = params
        return torch.log(w) - 0.5 * ((X[:, None] - mu) ** 2 / var + torch.log(2 * math.pi * var))

    def e_step(params):
        lj = log_joint(params)
        ll = torch.logsumexp(lj, dim=1)
        return float(ll.mean()), float(ll.mean()), torch.softmax(lj, dim=1)

    def m_step(resp):
        nk = resp.sum(0)
        mu = (resp * X[:, None]).sum(0) / nk
        var = (resp * (X[:, None] - mu) ** 2).sum(0) / nk + 1e-6
        return nk / nk.sum(), mu, var

    def init(seed):
        rs = np.random.default_rng(seed)
        return m_step(torch.as_tensor(rs.dirichlet([1, 1], size=len(X))))

    return init, e_step, m_step


def test_em_never_lowers_the_objective_and_finds_the_components():
    result = run_em(*_steps(), n_init=3, max_iter=200, tol=1e-10, random_state=0)
    objective = [h["objective"] for h in result.history]
    assert all(b >= a - 1e-12 for a, b in itertools.pairwise(objective))
    assert result.converged and 0 <= result.best_init < 3
    w, mu, _ = result.params
    np.testing.assert_allclose(np.sort(mu), [-2, 3], atol=0.15)
    np.testing.assert_allclose(np.sort(w), [0.4, 0.6], atol=0.02)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")  # 3 steps only
def test_the_best_restart_is_kept_and_the_seed_decides_it():
    a = run_em(*_steps(), n_init=4, max_iter=3, tol=0.0, random_state=7)
    b = run_em(*_steps(), n_init=4, max_iter=3, tol=0.0, random_state=7)
    assert a.objective == b.objective and a.best_init == b.best_init
    # the first restart of four is the one restart of n_init=1 (same seed): never better
    first = run_em(*_steps(), n_init=1, max_iter=3, tol=0.0, random_state=7)
    assert a.objective >= first.objective


def test_a_run_that_does_not_converge_warns():
    with pytest.warns(ConvergenceWarning, match="raise max_iter or tol"):
        result = run_em(*_steps(), n_init=1, max_iter=2, tol=0.0, random_state=0)
    assert not result.converged and result.n_iter == 2
