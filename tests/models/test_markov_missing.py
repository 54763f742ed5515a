"""The discrete Markov chain fitted on data with missing entries: MAP-EM whose E-step is a
forward-backward over the state (the last k values). Its expected counts equal brute-force
enumeration over the missing entries, its objective never goes down, its log-likelihood is
the scorer's, its fixed point is a local maximum, it beats the complete-case fit, and a
streamed fit is the in-memory one."""

from __future__ import annotations

import copy
import itertools

import numpy as np
import pytest

import ptheta
from ptheta.data.spec import DataSpec, Split
from ptheta.data.stream import ArraySource, NpySource
from ptheta.errors import DataError, ParameterError
from ptheta.models.markov import MarkovChain, _contexts, _expected_counts


def _spec(d: int, k_levels: int) -> DataSpec:
    return DataSpec("binary" if k_levels == 2 else "categorical", (d,), k_levels)


def _random_chain(d: int, k_levels: int, order: int, seed: int) -> MarkovChain:
    """A chain with random (Dirichlet) tables, fitted on a few rows for its spec."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, k_levels, (20, d))
    model = MarkovChain(order).fit(Split(x, None, _spec(d, k_levels)))
    model.probs_ = rng.dirichlet(np.ones(k_levels), size=model.probs_.shape[:2])
    for t in range(order):  # the first positions ignore the padding digits
        model.probs_[t] = model.probs_[t, np.arange(k_levels**order) % k_levels**t]
    return model


def _with_missing(x: np.ndarray, rate: float, seed: int) -> np.ndarray:
    out = x.astype(np.float64)
    out[np.random.default_rng(seed).random(x.shape) < rate] = np.nan
    return out


def _fit(x: np.ndarray, k_levels: int, order: int = 1, **params) -> MarkovChain:
    return MarkovChain(order, **params).fit(Split(x, None, _spec(x.shape[1], k_levels)))


@pytest.mark.parametrize(("k_levels", "order"), [(2, 1), (3, 1), (2, 2), (3, 2)])
def test_expected_counts_equal_brute_force_enumeration(k_levels, order):
    d = 5
    model = _random_chain(d, k_levels, order, seed=k_levels * 10 + order)
    rows = _with_missing(model.sample(6, random_state=order), 0.4, seed=k_levels)
    rows[0] = np.nan  # a row with nothing observed
    logp = np.log(model.probs_)
    loglik, counts = _expected_counts(rows, logp, order)
    want_counts, want_loglik = np.zeros_like(counts), np.empty(len(rows))
    for i, row in enumerate(rows):
        miss = np.flatnonzero(np.isnan(row))
        fills = np.array(list(itertools.product(range(k_levels), repeat=len(miss))))
        full = np.repeat(row[None], len(fills), axis=0)
        full[:, miss] = fills
        full = full.astype(np.int64)
        ctx = _contexts(full, k_levels, order)
        joint = np.exp(logp[np.arange(d), ctx, full].sum(axis=1))  # p(completion)
        want_loglik[i] = np.log(joint.sum())
        for w, c, v in zip(joint / joint.sum(), ctx, full, strict=True):
            want_counts[np.arange(d), c, v] += w
    np.testing.assert_allclose(loglik, want_loglik, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(counts, want_counts, atol=1e-12)
    np.testing.assert_allclose(loglik, model.score_samples(rows), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(("order", "homogeneous", "alpha"), [(1, False, 0.5), (2, True, 0.0)])
def test_em_never_lowers_the_objective_and_records_the_scorer(order, homogeneous, alpha):
    truth = _random_chain(8, 3, order, seed=3)
    x = _with_missing(truth.sample(300, random_state=4), 0.25, seed=5)
    model = _fit(x, 3, order, homogeneous=homogeneous, alpha=alpha, em_tol=1e-10)
    objective = np.array([h["objective"] for h in model.history_])
    assert len(objective) > 3
    assert np.all(np.diff(objective) >= -1e-9 * np.abs(objective[1:]))
    last = model.history_[-1]  # the fitted tables' record
    np.testing.assert_allclose(last["log_likelihood"], model.score_samples(x).mean(), rtol=1e-12)
    prior = model._log_prior() / len(x)
    np.testing.assert_allclose(last["objective"], last["log_likelihood"] + prior, rtol=1e-12)
    assert model.n_iter_ == len(model.history_) < model.em_max_iter


def test_the_fixed_point_is_a_local_maximum_of_the_map_objective():
    truth = _random_chain(6, 3, 1, seed=7)
    x = _with_missing(truth.sample(200, random_state=8), 0.3, seed=9)
    model = _fit(x, 3, 1, alpha=0.5, em_tol=1e-13, em_max_iter=2000)
    assert model.n_iter_ < 2000

    def objective(m: MarkovChain) -> float:
        return float(m.score_samples(x).sum()) + m._log_prior()

    best = objective(model)
    eps = 1e-4
    for t, s, (a, b) in itertools.product([1, 3, 5], range(3), [(0, 1), (1, 2), (2, 0)]):
        for sign in (1, -1):  # probability moved between two levels of one row
            moved = copy.deepcopy(model)
            moved.probs_[t, s, a] += sign * eps
            moved.probs_[t, s, b] -= sign * eps
            assert objective(moved) <= best + 1e-9, (t, s, a, b, sign)


def test_a_known_chain_is_recovered_better_than_from_the_complete_rows_only():
    truth = _random_chain(8, 3, 1, seed=11)
    x_full = truth.sample(3000, random_state=12)
    x = _with_missing(x_full, 0.2, seed=13)
    test = truth.sample(2000, random_state=14)
    model = _fit(x, 3, 1, alpha=0.5)
    complete = x[~np.isnan(x).any(axis=1)].astype(np.int64)  # about 0.8^8 ≈ 17 % of rows
    assert 300 < len(complete) < 700
    cc = _fit(complete, 3, 1, alpha=0.5)
    assert np.abs(model.probs_ - truth.probs_).max() < 0.1
    assert (
        np.abs(model.probs_ - truth.probs_).mean() < 0.5 * np.abs(cc.probs_ - truth.probs_).mean()
    )
    assert model.score(test) > cc.score(test) + 0.01  # nats per example
    oracle = _fit(x_full, 3, 1, alpha=0.5).score(test)  # no entries missing at all
    assert oracle + 0.05 > model.score(test)


def test_a_streamed_fit_in_tiny_batches_is_the_in_memory_fit(tmp_path, monkeypatch):
    truth = _random_chain(7, 3, 2, seed=15)
    x = _with_missing(truth.sample(200, random_state=16), 0.2, seed=17)
    in_memory = _fit(x, 3, 2, em_tol=1e-8)
    path = tmp_path / "x.npy"
    np.save(path, x)
    monkeypatch.setenv("PTHETA_BATCH_BYTES", str(9 * 8 * 7))  # 9 rows a batch
    for source in (NpySource(path), ArraySource(x)):
        assert source.batch_rows() == 9
        source.spec = _spec(7, 3)
        streamed = MarkovChain(2, em_tol=1e-8).fit(source)
        assert streamed.n_iter_ == in_memory.n_iter_ > 2
        np.testing.assert_allclose(streamed.probs_, in_memory.probs_, rtol=1e-10)
        np.testing.assert_allclose(
            streamed.score_samples(x), in_memory.score_samples(x), rtol=1e-10
        )


def test_complete_data_fit_in_one_pass_without_em():
    x = _random_chain(6, 2, 2, seed=18).sample(100, random_state=19)
    model = _fit(x, 2, 2)
    assert not hasattr(model, "history_")
    ctx = _contexts(x, 2, 2)  # smoothed counts of position 4's windows, by hand
    counts = np.zeros((4, 2))
    np.add.at(counts, (ctx[:, 4], x[:, 4]), 1)
    want = (counts + 0.5) / (counts + 0.5).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(model.probs_[4], want, rtol=1e-12)


def test_bad_data_and_sizes_are_clear_errors():
    x = _with_missing(_random_chain(5, 2, 1, seed=20).sample(50, random_state=21), 0.2, 22)
    x[:, 2] = np.nan
    with pytest.raises(DataError, match=r"position\(s\) \[2\].*no observed value"):
        _fit(x, 2)
    cont = np.random.default_rng(0).normal(size=(40, 4))
    cont[3, 1] = np.nan
    with pytest.raises(DataError, match="state-space"):
        ptheta.make("markov").fit(cont)
    with pytest.raises(DataError, match="variable-length"):
        ptheta.make("markov").fit([[0, 1, np.nan], [1, 0]])
    big = _with_missing(np.random.default_rng(1).integers(0, 17, (30, 4)), 0.2, 23)
    with pytest.raises(ParameterError, match=r"4913 states .* 83521 transitions"):
        _fit(big, 17, 3)
    assert MarkovChain(3).fit(Split(big[~np.isnan(big).any(axis=1)], None, _spec(4, 17)))
