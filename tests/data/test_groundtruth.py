"""Tests of the ground-truth tree networks and the built-in `groundtruth-tree` data set."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import stats

import ptheta.data as data
from ptheta.data.groundtruth import TREE_DIMS, TREE_SEED, random_tree_network
from ptheta.errors import ParameterError


def _configs(k: int, d: int) -> np.ndarray:
    return np.array(list(itertools.product(range(k), repeat=d)), dtype=np.int64)


def _is_tree(parents: np.ndarray, order: np.ndarray) -> bool:
    position = np.argsort(order)
    roots = np.flatnonzero(parents < 0)
    children = np.flatnonzero(parents >= 0)
    return (
        sorted(order.tolist()) == list(range(len(parents)))
        and len(roots) == 1
        and order[0] == roots[0]
        and bool(np.all(position[parents[children]] < position[children]))
    )


@pytest.mark.parametrize(("d", "k"), [(8, 2), (5, 3)])
def test_network_is_a_normalised_tree_with_exact_entropy_and_marginals(d, k):
    net = random_tree_network(d, k, strength=0.8, seed=d)
    assert _is_tree(net.parents, net.order)
    assert len(net.edges) == d - 1
    np.testing.assert_allclose(net.cpts.sum(axis=2), 1.0)
    configs = _configs(k, d)
    log_p = net.log_prob(configs)
    p = np.exp(log_p)
    assert p.sum() == pytest.approx(1.0, abs=1e-12)
    assert net.entropy() == pytest.approx(-(p * log_p).sum(), abs=1e-12)
    brute = np.stack([np.bincount(configs[:, j], weights=p, minlength=k) for j in range(d)])
    np.testing.assert_allclose(net.marginals(), brute, atol=1e-12)


def test_children_copy_their_parent_with_the_given_strength():
    net = random_tree_network(40, 3, strength=0.9, seed=1)
    child = net.parents >= 0
    diag = np.diagonal(net.cpts, axis1=1, axis2=2)[child]  # (39, 3)
    assert np.all((diag >= 0.85) & (diag <= 0.95))
    assert np.all(diag == diag[:, :1])  # the same copy probability whatever the parent's level
    # the shuffle: the root is not always variable 0 and parents are not all lower indices
    assert np.any(net.parents[child] > np.flatnonzero(child))


def test_sampler_matches_log_prob():
    net = random_tree_network(5, 2, seed=2)
    configs = _configs(2, 5)
    x = net.sample(20_000, np.random.default_rng(0))
    counts = np.bincount(x @ (2 ** np.arange(5)[::-1]), minlength=32)
    expected = np.exp(net.log_prob(configs)) * len(x)
    keep = expected >= 5
    obs = np.append(counts[keep], counts[~keep].sum())
    exp = np.append(expected[keep], expected[~keep].sum())
    assert stats.chisquare(obs, exp * obs.sum() / exp.sum()).pvalue > 1e-4


def test_networks_are_seeded():
    a, b = random_tree_network(12, seed=3), random_tree_network(12, seed=3)
    np.testing.assert_array_equal(a.parents, b.parents)
    np.testing.assert_array_equal(a.cpts, b.cpts)
    np.testing.assert_array_equal(
        a.sample(10, np.random.default_rng(1)), b.sample(10, np.random.default_rng(1))
    )
    assert not np.array_equal(a.parents, random_tree_network(12, seed=4).parents)
    one = random_tree_network(1, seed=0)
    assert one.edges == [] and one.entropy() > 0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_dims": 0}, "n_dims"),
        ({"n_dims": 3.5}, "n_dims"),
        ({"n_dims": 3, "n_categories": 1}, "n_categories"),
        ({"n_dims": 3, "strength": 1.0}, "strength"),
        ({"n_dims": 3, "n_categories": 4, "strength": 0.2}, "strength"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ParameterError, match=match):
        random_tree_network(**kwargs)


def test_groundtruth_tree_data_set():
    d = data.load("groundtruth-tree")
    assert d.name == "groundtruth-tree" and d.kind == "binary"
    assert d.event_shape == (TREE_DIMS,)
    assert (len(d.train), len(d.val), len(d.test)) == (10_000, 2_000, 2_000)
    assert d.train.y is None and d.classes is None
    assert d.train.x.dtype == np.int64 and set(np.unique(d.train.x)) == {0, 1}
    net = random_tree_network(TREE_DIMS, 2, strength=0.9, seed=TREE_SEED)
    assert d.entropy == pytest.approx(net.entropy())
    assert d.extra["true_edges"] == tuple(net.edges)
    assert len(d.extra["true_edges"]) == TREE_DIMS - 1
    np.testing.assert_allclose(d.log_density(d.test.x), net.log_prob(d.test.x))
    # the held-out NLL of the true network is its entropy up to sampling error
    nll = -d.log_density(np.concatenate([d.val.x, d.test.x]))
    assert abs(nll.mean() - d.entropy) < 4 * nll.std() / math.sqrt(len(nll))
    # the splits are disjoint pieces of one sample, and loading is deterministic
    assert not np.array_equal(d.train.x[:2000], d.test.x)
    assert d.fingerprint() == data.load("groundtruth-tree").fingerprint()
    assert "groundtruth-tree" in [r["name"] for r in data.list_datasets()]
