"""Chow–Liu trees fitted by structural EM on data with missing entries: the E-step's
expected pair counts equal enumeration over the missing cells, the objective never goes
down, the history's log-likelihood is the scorer's, the fit is a fixed point and a local
maximum, a known tree is recovered with 20 % of the cells missing, a streamed fit (and
two processes) give the in-memory model, and a variable never observed is refused."""

from __future__ import annotations

import copy
import itertools

import numpy as np
import pytest
from scipy.special import logsumexp, xlogy

from ptheta.data import stream
from ptheta.data.groundtruth import random_tree_network
from ptheta.data.spec import DataSpec, Split
from ptheta.data.stream import NpySource
from ptheta.errors import DataError
from ptheta.models.chow_liu import ChowLiuTree
from tests.models.test_streaming_contract import _CountingSource, _TwoProcesses


def _draw(d: int, k: int, n: int, seed: int, missing: float, strength: float = 0.8):
    """n rows of a random tree network, MCAR cells set to NaN; labels that shift x0."""
    rng = np.random.default_rng(seed)
    x = random_tree_network(d, k, strength=strength, seed=seed).sample(n, rng).astype(float)
    y = (x[:, 0] + (rng.random(n) < 0.3)) % 2
    x[rng.random(x.shape) < missing] = np.nan
    return x, y


def _spec(d: int, k: int) -> DataSpec:
    return DataSpec("binary" if k == 2 else "categorical", (d,), k)


def _log_tables(model: ChowLiuTree) -> np.ndarray:
    return np.log(model.cpts_ if model.cpts_.ndim == 4 else model.cpts_[None])


def _brute_force(model: ChowLiuTree, x: np.ndarray, cls: np.ndarray):
    """Expected pair counts (C, D, D, K, K) and Σ log p(x_obs | class), by enumerating
    every completion of every row's missing cells."""
    logt = _log_tables(model)
    n_classes, d, k = logt.shape[0], logt.shape[1], logt.shape[-1]
    counts, loglik = np.zeros((n_classes, d, d, k, k)), 0.0
    for row, c in zip(x, cls, strict=True):
        gaps = np.flatnonzero(np.isnan(row))
        fills = np.array(list(itertools.product(range(k), repeat=len(gaps))), dtype=np.int64)
        full = np.repeat(np.where(np.isnan(row), 0, row)[None], len(fills), 0).astype(np.int64)
        full[:, gaps] = fills
        parent_vals = np.where(model.parents_ >= 0, full[:, np.maximum(model.parents_, 0)], 0)
        log_p = logt[c, np.arange(d), parent_vals, full].sum(axis=1)  # (F,) every completion
        loglik += logsumexp(log_p)
        weight = np.exp(log_p - logsumexp(log_p))
        for w, r in zip(weight, full, strict=True):
            counts[c, np.arange(d)[:, None], np.arange(d), r[:, None], r] += w
    return counts, loglik


# --------------------------------------------------------------------------- the E-step
@pytest.mark.parametrize(("k", "tan"), [(2, False), (3, False), (3, True)])
def test_expected_pair_counts_equal_enumeration_over_the_missing_cells(k, tan):
    x, y = _draw(4, k, 150, seed=1, missing=0.35)
    x[0] = np.nan  # a row with nothing observed adds the model's own pair marginals
    model = ChowLiuTree(class_conditional=tan, em_max_iter=3).fit(x, y if tan else None)
    cls = np.searchsorted(model.classes_, y) if tan else np.zeros(len(x), dtype=np.int64)
    counts, loglik = model._expected_counts(x, y if tan else None)
    truth, truth_loglik = _brute_force(model, x, cls)
    np.testing.assert_allclose(counts, truth, rtol=1e-10, atol=1e-10)
    log_class = np.log(model.class_prior_[cls]).sum() if tan else 0.0
    assert loglik == pytest.approx(truth_loglik + log_class, rel=1e-12)
    if not tan:  # the E-step's likelihood is the scorer's exact marginal
        assert loglik == pytest.approx(model.score_samples(x).sum(), rel=1e-12)


# --------------------------------------------------------------------------- monotone EM
@pytest.mark.parametrize(("k", "tan"), [(2, False), (3, False), (2, True)])
def test_objective_never_decreases_and_the_history_is_the_scorers_likelihood(k, tan):
    x, y = _draw(6, k, 300, seed=2, missing=0.25)
    labels = y if tan else None
    fit = ChowLiuTree(class_conditional=tan, em_max_iter=8, em_tol=0.0).fit(x, labels)
    objective = np.array([h["objective"] for h in fit.history_])
    assert len(objective) == 8 and objective[-1] > objective[0]
    assert (np.diff(objective) >= -1e-9 * np.abs(objective[1:])).all(), np.diff(objective)
    # entry t is of the parameters before the t-th M-step, i.e. of the fit that stopped
    # after t − 1 iterations: check the 6th entry against the fit of 5 iterations
    shorter = ChowLiuTree(class_conditional=tan, em_max_iter=5).fit(x, labels)
    scores = shorter.score_samples(x)  # log p(x_obs)
    if tan:  # the classifier's objective is log p(x_obs, y) = log p(x_obs) + log p(y | x_obs)
        proba = shorter.predict_proba(x)[np.arange(len(x)), np.searchsorted(fit.classes_, y)]
        scores = scores + np.log(proba)
    assert fit.history_[5]["log_likelihood"] == pytest.approx(scores.mean(), rel=1e-12)
    logt = _log_tables(shorter)
    children = shorter.order_[1:]
    prior = xlogy(shorter.alpha, np.exp(logt[:, children])).sum()
    prior += xlogy(shorter.alpha, np.exp(logt[:, shorter.root_, 0])).sum()
    assert fit.history_[5]["objective"] == pytest.approx(scores.mean() + prior / len(x), 1e-12)


# --------------------------------------------------------------------------- fixed point
def _objective(model: ChowLiuTree, x: np.ndarray) -> float:
    """Observed-data log-likelihood plus the log prior of the smoothing (Σ α log θ)."""
    tables = model.cpts_
    children = model.order_[1:]
    prior = (
        xlogy(model.alpha, tables[children]).sum()
        + xlogy(model.alpha, tables[model.root_, 0]).sum()
    )
    return float(model.score_samples(x).sum() + prior)


def test_a_converged_fit_is_a_fixed_point_and_a_local_maximum():
    x, _ = _draw(4, 3, 200, seed=3, missing=0.3)
    model = ChowLiuTree(em_max_iter=2000, em_tol=1e-14).fit(x)
    assert model.converged_
    # one more EM step by hand, from brute-force expected counts: the same tree and tables
    counts, _ = _brute_force(model, x, np.zeros(len(x), dtype=np.int64))
    alpha, k = model.alpha, 3
    joint = (counts[0] + alpha) / (len(x) + alpha * k * k)
    marg = joint.sum(axis=3)
    mi = -xlogy(marg, marg).sum(2) - xlogy(marg, marg).sum(2).T + xlogy(joint, joint).sum((2, 3))
    np.fill_diagonal(mi, 0.0)
    best = max(
        (frozenset(map(frozenset, tree)) for tree in itertools.combinations(
            itertools.combinations(range(4), 2), 3)
         if len({v for e in tree for v in e}) == 4 and _connected(tree, 4)),
        key=lambda t: sum(mi[tuple(e)] for e in t),
    )  # fmt: skip
    assert {frozenset(e) for e in model.edges_} == best
    for p, c in model.edges_:
        table = counts[0, p, c] + alpha
        np.testing.assert_allclose(model.cpts_[c], table / table.sum(1, keepdims=True), atol=1e-7)
    root = np.diagonal(counts[0, model.root_, model.root_]) + alpha
    np.testing.assert_allclose(model.cpts_[model.root_, 0], root / root.sum(), atol=1e-7)
    # a local maximum: moving probability between two levels of any row lowers the objective
    base = _objective(model, x)
    for node, a, b, c in itertools.product(range(4), range(3), range(3), range(3)):
        if b == c or (node == model.root_ and a > 0):
            continue
        for step in (1e-3, -1e-3):
            moved = copy.deepcopy(model)
            rows = slice(None) if node == model.root_ else a  # the root's rows are one table
            moved.cpts_[node, rows, b] += step
            moved.cpts_[node, rows, c] -= step
            assert _objective(moved, x) < base, (node, a, b, c, step)


def _connected(edges, d: int) -> bool:
    seen, frontier = {0}, [0]
    while frontier:
        v = frontier.pop()
        for e in edges:
            if v in e:
                w = e[1] if e[0] == v else e[0]
                if w not in seen:
                    seen.add(w)
                    frontier.append(w)
    return len(seen) == d


# --------------------------------------------------------------------------- recovery
def test_a_known_tree_is_recovered_with_20_percent_of_the_cells_missing():
    truth = random_tree_network(6, 2, strength=0.6, seed=4)
    rng = np.random.default_rng(4)
    x = truth.sample(3000, rng).astype(float)
    test = truth.sample(2000, rng)
    x[rng.random(x.shape) < 0.2] = np.nan
    complete = x[~np.isnan(x).any(axis=1)]
    assert len(complete) < 0.3 * len(x)  # the complete-case fit sees far fewer rows
    em = ChowLiuTree().fit(Split(x, None, _spec(6, 2)))
    cc = ChowLiuTree().fit(Split(complete.astype(np.int64), None, _spec(6, 2)))
    edges = {frozenset(e) for e in truth.edges}
    assert {frozenset(e) for e in em.edges_} == edges
    assert em.score_samples(test).mean() > cc.score_samples(test).mean()
    exact = truth.log_prob(test).mean()  # the known tree's own test log-likelihood
    assert exact - em.score_samples(test).mean() < 0.01


# --------------------------------------------------------------------------- streaming
def test_streamed_and_two_process_fits_with_missing_cells_give_the_in_memory_model(
    tmp_path, monkeypatch
):
    x, y = _draw(5, 3, 200, seed=5, missing=0.2)
    x[:40] = np.nan_to_num(x[:40])  # whole batches without NaN are read as integer codes
    spec = _spec(5, 3)
    in_memory = ChowLiuTree(class_conditional=True).fit(Split(x, y, spec))
    path = tmp_path / "x.npy"
    np.save(path, x)
    source = NpySource(path, y=y)

    def fit():
        small = _CountingSource(source, rows_per_batch=20)
        return ChowLiuTree(class_conditional=True).fit(Split(small, y, spec))

    streamed = fit()
    assert streamed.history_ and len(streamed.history_) == len(in_memory.history_)
    world = _TwoProcesses()
    monkeypatch.setattr(stream, "process_share", world.share)
    monkeypatch.setattr(stream, "all_reduce_sum", world.all_reduce_sum)
    for model in (streamed, *world.run(fit)):
        assert model.edges_ == in_memory.edges_
        np.testing.assert_allclose(model.cpts_, in_memory.cpts_, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(model.score_samples(x), in_memory.score_samples(x), 1e-9)
    assert world.reductions == 1 + len(in_memory.history_)  # one pass per EM iteration


def test_complete_data_keeps_the_one_pass_fit_and_a_never_observed_variable_is_refused():
    x, _ = _draw(4, 2, 100, seed=6, missing=0.0)
    assert not hasattr(ChowLiuTree().fit(x), "history_")
    x[:, 2] = np.nan
    with pytest.raises(DataError, match=r"variable 2 .*no observed value.*drop it"):
        ChowLiuTree().fit(x)
