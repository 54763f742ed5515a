"""Tests of the Chow–Liu tree and its class-conditional (TAN) variant against exact maths."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import stats
from scipy.special import logsumexp

import ptheta
from ptheta.data.groundtruth import random_tree_network
from ptheta.data.spec import DataSpec
from ptheta.errors import CapabilityError, DataError, ParameterError
from ptheta.models.baselines import Independent
from ptheta.models.chow_liu import (
    ChowLiuTree,
    maximum_spanning_tree,
    pairwise_mutual_information,
)
from ptheta.runs.pictures import save_figure, structure_figure
from ptheta.runs.store import load_run, save_run


def _configs(k: int, d: int) -> np.ndarray:
    return np.array(list(itertools.product(range(k), repeat=d)), dtype=np.int64)


def _tree_data(d: int, k: int = 2, n: int = 300, seed: int = 0, strength: float = 0.8):
    """Examples (n, d) from a random tree network, and labels that shift the root's level."""
    rng = np.random.default_rng(seed)
    x = random_tree_network(d, k, strength=strength, seed=seed).sample(n, rng)
    # labels depend on x (the root and a leaf), so p(x | y) differs between classes
    y = (x[:, 0] + (rng.random(n) < 0.3)) % 2
    return x, y


def _chi_square_p(index: np.ndarray, probs: np.ndarray) -> float:
    """p-value of sampled cell indices against exact cell probabilities (rare cells pooled)."""
    counts = np.bincount(index, minlength=len(probs))
    expected = probs * len(index)
    keep = expected >= 5
    obs, exp = counts[keep], expected[keep]
    if (~keep).any():
        obs, exp = np.append(obs, counts[~keep].sum()), np.append(exp, expected[~keep].sum())
    return stats.chisquare(obs, exp * obs.sum() / exp.sum()).pvalue


def _fit(class_conditional: bool, d: int = 8, **kw) -> tuple[ChowLiuTree, np.ndarray, np.ndarray]:
    x, y = _tree_data(d, **kw)
    model = ChowLiuTree(class_conditional=class_conditional)
    return model.fit(x, y if class_conditional else None), x, y


# --------------------------------------------------------------------------- exact probabilities
@pytest.mark.parametrize(
    ("k", "d", "class_conditional"), [(2, 10, False), (3, 6, False), (2, 8, True), (3, 5, True)]
)
def test_probabilities_sum_to_one_over_every_configuration(k, d, class_conditional):
    x, y = _tree_data(d, k)
    model = ChowLiuTree(class_conditional=class_conditional).fit(x, y)
    assert np.exp(model.score_samples(_configs(k, d))).sum() == pytest.approx(1.0, abs=1e-10)


@pytest.mark.parametrize("class_conditional", [False, True])
def test_sampler_histogram_matches_exact_probabilities(class_conditional):
    model, _, _ = _fit(class_conditional, d=6)
    configs = _configs(2, 6)
    weights = 2 ** np.arange(6)[::-1]  # binary code -> row of `configs`
    log_p = model.score_samples(configs)
    samples = model.sample(20_000, random_state=1)
    assert _chi_square_p(samples @ weights, np.exp(log_p)) > 1e-4
    if class_conditional:  # p(x | y) = p(x) p(y | x) / p(y)
        log_post = np.log(model.predict_proba(configs)[:, 1])
        p_given = np.exp(log_p + log_post - np.log(model.class_prior_[1]))
        assert p_given.sum() == pytest.approx(1.0)
        samples = model.sample(20_000, y=model.classes_[1], random_state=2)
        assert _chi_square_p(samples @ weights, p_given) > 1e-4


# --------------------------------------------------------------------------- structure
def _plain_mutual_information(x: np.ndarray, k: int, alpha: float) -> np.ndarray:
    d = x.shape[1]
    out = np.zeros((d, d))
    for i, j in itertools.permutations(range(d), 2):
        joint = np.full((k, k), float(alpha))
        for a, b in zip(x[:, i], x[:, j], strict=True):
            joint[a, b] += 1
        joint /= joint.sum()
        pi, pj = joint.sum(axis=1), joint.sum(axis=0)
        out[i, j] = sum(
            joint[a, b] * math.log(joint[a, b] / (pi[a] * pj[b]))
            for a in range(k)
            for b in range(k)
            if joint[a, b] > 0
        )
    return out


@pytest.mark.parametrize("alpha", [0.0, 0.5])
def test_mutual_information_matches_a_plain_loop_over_counts(alpha):
    rng = np.random.default_rng(3)
    x, _ = _tree_data(5, 3, n=150, seed=3)
    x[:, 2] = np.minimum(x[:, 2], 1)  # a level never seen: zero cells when alpha = 0
    y = rng.integers(0, 3, size=len(x))
    expected = _plain_mutual_information(x, 3, alpha)
    np.testing.assert_allclose(pairwise_mutual_information(x, 3, alpha=alpha), expected, atol=1e-12)
    # conditional on the class: Σ_c p(c) I(x_i; x_j | y = c)
    cond = sum(np.mean(y == c) * _plain_mutual_information(x[y == c], 3, alpha) for c in range(3))
    got = pairwise_mutual_information(x, 3, y=y, alpha=alpha)
    np.testing.assert_allclose(got, cond, atol=1e-12)
    spec = DataSpec("categorical", (5,), 3)
    tan = ChowLiuTree(alpha=alpha, class_conditional=True).fit(ptheta.data.Split(x, y, spec))
    np.testing.assert_allclose(tan.mutual_info_, cond, atol=1e-12)


def _pruefer_tree(code: tuple[int, ...], d: int) -> frozenset:
    degree = np.ones(d, dtype=int)
    np.add.at(degree, list(code), 1)
    edges = []
    for node in code:
        leaf = int(np.flatnonzero(degree == 1)[0])
        edges.append(frozenset((leaf, node)))
        degree[leaf] -= 1
        degree[node] -= 1
    edges.append(frozenset(np.flatnonzero(degree == 1).tolist()))
    return frozenset(edges)


def test_learned_tree_is_a_maximum_spanning_tree_among_all_trees():
    d = 5
    trees = {_pruefer_tree(code, d) for code in itertools.product(range(d), repeat=d - 2)}
    assert len(trees) == d ** (d - 2)  # Cayley: every labelled tree exactly once
    for seed in range(3):
        x, _ = _tree_data(d, 2, n=80, seed=seed, strength=0.65)
        model = ChowLiuTree().fit(x)
        mi = model.mutual_info_
        best = max(sum(mi[tuple(e)] for e in tree) for tree in trees)
        learned = sum(mi[p, c] for p, c in model.edges_)
        assert learned == pytest.approx(best, rel=1e-12)
        # edges_, parents_ and order_ describe one tree, directed away from the root
        assert sorted(model.edges_) == sorted(
            [int(model.parents_[c]), c] for c in range(d) if c != model.root_
        )
        position = np.argsort(model.order_)
        assert model.order_[0] == model.root_ and model.parents_[model.root_] == -1
        assert all(position[p] < position[c] for p, c in model.edges_)


def test_zero_mutual_information_still_gives_one_spanning_tree():
    assert len(maximum_spanning_tree(np.zeros((6, 6)))) == 5
    # every configuration once: the empirical pairwise joints are products, every MI is zero
    model = ChowLiuTree(alpha=0.0).fit(_configs(2, 6))
    assert np.all(model.mutual_info_ < 1e-12)
    assert len(model.edges_) == 5 and sorted(model.order_.tolist()) == list(range(6))


def test_maximum_likelihood_tree_identities_with_alpha_zero():
    x, _ = _tree_data(7, 3, n=400, seed=5)
    spec = DataSpec("categorical", (7,), 3)
    split = ptheta.data.Split(x, None, spec)
    model = ChowLiuTree(alpha=0.0).fit(split)
    # Chow–Liu: mean training log-likelihood = Σ_edges I(x_p; x_c) − Σ_d H(x_d)
    freq = np.stack([np.bincount(x[:, j], minlength=3) / len(x) for j in range(7)])
    entropies = -(freq * np.log(np.where(freq > 0, freq, 1))).sum()
    total_mi = sum(model.mutual_info_[p, c] for p, c in model.edges_)
    assert model.score(x) == pytest.approx(total_mi - entropies, abs=1e-10)
    # with maximum-likelihood tables the distribution does not depend on the root
    other = ChowLiuTree(alpha=0.0, root=3).fit(split)
    assert other.root_ == 3 and other.order_[0] == 3
    assert {frozenset(e) for e in other.edges_} == {frozenset(e) for e in model.edges_}
    np.testing.assert_allclose(other.score_samples(x), model.score_samples(x), atol=1e-10)


def test_recovers_the_groundtruth_tree_and_reaches_its_entropy():
    data = ptheta.datasets.load("groundtruth-tree")
    model = ChowLiuTree().fit(data.train.x)
    truth = {frozenset(e) for e in data.extra["true_edges"]}
    assert {frozenset(e) for e in model.edges_} == truth
    x, h = data.test.x, data.entropy
    nll, true_nll = -model.score_samples(x), -data.log_density(x)
    # excess over the true network on the same examples (an estimate of the KL): < 1 % of H
    assert 0 <= (nll - true_nll).mean() < 0.01 * h
    # and the test NLL agrees with H up to the sampling error of 2000 examples
    assert abs(nll.mean() - h) < 4 * nll.std() / math.sqrt(len(nll))
    # structure matters: the independent model is far above the floor
    indep = -Independent().fit(data.train.x).score(x)
    assert indep > 1.1 * h and indep > nll.mean() + 0.1 * h


# --------------------------------------------------------------------------- missing data
def _completions(row: np.ndarray, k: int) -> np.ndarray:
    missing = np.flatnonzero(np.isnan(row))
    filled = np.repeat(row[None], k ** len(missing), axis=0)
    filled[:, missing] = _configs(k, len(missing))
    return filled.astype(np.int64)


@pytest.mark.parametrize("class_conditional", [False, True])
def test_marginals_with_missing_entries_match_brute_force(class_conditional):
    model, x, _ = _fit(class_conditional, d=10)
    rng = np.random.default_rng(4)
    partial = x[:12].astype(np.float64)
    partial[rng.random(partial.shape) < 0.4] = np.nan
    partial[0] = np.nan  # nothing observed: log 1
    partial[1] = x[1]  # everything observed
    brute = [logsumexp(model.score_samples(_completions(row, 2))) for row in partial]
    np.testing.assert_allclose(model.score_samples(partial), brute, atol=1e-10)
    assert model.score_samples(partial[:1])[0] == pytest.approx(0.0, abs=1e-12)
    if class_conditional:  # the Bayes rule sums the missing entries out too
        for row, got in zip(partial[2:6], model.predict_proba(partial[2:6]), strict=True):
            filled = _completions(row, 2)
            joint = model.predict_proba(filled) * np.exp(model.score_samples(filled))[:, None]
            np.testing.assert_allclose(got, joint.sum(axis=0) / joint.sum(), atol=1e-10)


@pytest.mark.parametrize("class_conditional", [False, True])
def test_conditional_sampling_matches_brute_force_conditional(class_conditional):
    model, x, _ = _fit(class_conditional, d=8)
    row = x[0].astype(np.float64)
    row[[0, 3, 6]] = np.nan
    filled = _completions(row, 2)
    probs = np.exp(model.score_samples(filled))
    drawn = model.sample(20_000, given=row[None], random_state=5)
    index = drawn[:, [0, 3, 6]] @ np.array([4, 2, 1])  # row of `filled`
    assert _chi_square_p(index, probs / probs.sum()) > 1e-4
    imputed = model.impute(np.repeat(row[None], 4000, axis=0), method="sample", random_state=6)
    assert _chi_square_p(imputed[:, [0, 3, 6]] @ np.array([4, 2, 1]), probs / probs.sum()) > 1e-4


@pytest.mark.parametrize("class_conditional", [False, True])
def test_mode_is_the_brute_force_argmax(class_conditional):
    model, x, _ = _fit(class_conditional, d=9)
    rng = np.random.default_rng(7)
    partial = x[:15].astype(np.float64)
    partial[rng.random(partial.shape) < 0.5] = np.nan
    modes = model.impute(partial, method="mode")
    for row, mode in zip(partial, modes, strict=True):
        filled = _completions(row, 2)
        log_p = model.score_samples(filled)
        if class_conditional:  # the most probable (class, completion) pair
            log_p = (log_p[:, None] + np.log(model.predict_proba(filled))).max(axis=1)
        np.testing.assert_array_equal(mode, filled[np.argmax(log_p)])


# --------------------------------------------------------------------------- TAN classifier
def test_tan_tables_and_bayes_rule_match_a_plain_computation():
    model, x, y = _fit(True, d=6, n=200)
    alpha = model.alpha
    for p, c in model.edges_[:3]:
        for label in (0, 1):
            sub = x[y == label]
            for a, b in itertools.product(range(2), repeat=2):
                num = np.sum((sub[:, p] == a) & (sub[:, c] == b)) + alpha
                den = np.sum(sub[:, p] == a) + 2 * alpha
                assert model.cpts_[label, c, a, b] == pytest.approx(num / den)
    np.testing.assert_allclose(model.class_prior_, np.bincount(y) / len(y))
    configs = _configs(2, 6)
    joint = np.zeros((len(configs), 2))
    for i, row in enumerate(configs):
        for label in (0, 1):
            log_p = np.log(model.class_prior_[label])
            for node in range(6):
                parent = model.parents_[node]
                a = row[parent] if parent >= 0 else 0
                log_p += np.log(model.cpts_[label, node, a, row[node]])
            joint[i, label] = log_p
    expected = np.exp(joint - logsumexp(joint, axis=1, keepdims=True))
    np.testing.assert_allclose(model.predict_proba(configs), expected, atol=1e-12)
    np.testing.assert_allclose(model.score_samples(configs), logsumexp(joint, axis=1))
    np.testing.assert_array_equal(model.predict(configs), expected.argmax(axis=1))


def test_tan_classifies_digits_well_above_chance():
    data = ptheta.datasets.load("digits-binary")
    model = ChowLiuTree(class_conditional=True).fit(data.train.x, data.train.y)
    accuracy = np.mean(model.predict(data.test.x) == data.test.y)
    print(f"TAN accuracy on digits-binary test: {accuracy:.3f}")
    assert accuracy > 0.8  # chance is 0.1


def test_tan_round_trip_with_string_labels(tmp_path):
    x, y = _tree_data(6)
    labels = np.array(["cat", "dog"])[y]
    model = ChowLiuTree(class_conditional=True).fit(x, labels)
    save_run(model, tmp_path / "run", data={"name": "synthetic"})
    loaded = load_run(tmp_path / "run")
    assert loaded.class_conditional and list(loaded.classes_) == ["cat", "dog"]
    np.testing.assert_array_equal(loaded.predict_proba(x), model.predict_proba(x))
    np.testing.assert_array_equal(
        loaded.sample(5, y="dog", random_state=0), model.sample(5, y="dog", random_state=0)
    )


# --------------------------------------------------------------------------- export
def test_to_dot_lists_every_edge_with_its_mutual_information():
    model, _, _ = _fit(False, d=7)
    dot = model.to_dot()
    assert dot.startswith("digraph chow_liu {") and dot.rstrip().endswith("}")
    for p, c in model.edges_:
        assert f'{p} -> {c} [label="{model.mutual_info_[p, c]:.4f}"];' in dot
    named = model.to_dot(labels=[f'v"{i}' for i in range(7)])
    assert 'label="v\\"3"' in named
    with pytest.raises(ParameterError, match="name all 7"):
        model.to_dot(labels=["a", "b"])


def test_tree_picture_is_written(tmp_path):
    data = ptheta.datasets.load("digits-binary")
    model = ChowLiuTree().fit(data.train)  # image data: nodes at pixel positions
    save_figure(structure_figure(model), tmp_path / "digits.png")
    layered, _, _ = _fit(False, d=7)
    save_figure(structure_figure(layered), tmp_path / "tree.png")
    for name in ("digits.png", "tree.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ParameterError, match="pixels"):
        structure_figure(layered, image_shape=(3, 3))


# --------------------------------------------------------------------------- bad input
def test_bad_input_and_parameters_give_clear_errors():
    x, y = _tree_data(4)
    with pytest.raises(DataError, match="does not model continuous data"):
        ChowLiuTree().fit(np.random.default_rng(0).normal(size=(20, 3)))
    with pytest.raises(DataError, match="class_conditional=True needs class labels"):
        ChowLiuTree(class_conditional=True).fit(x)
    for params, match in [
        ({"alpha": -1.0}, "alpha"),
        ({"alpha": "big"}, "alpha"),
        ({"root": 4}, "root"),
        ({"root": "centre"}, "root"),
        ({"class_conditional": "yes"}, "class_conditional"),
    ]:
        with pytest.raises(ParameterError, match=match):
            ChowLiuTree(**params).fit(x)
    plain = ChowLiuTree().fit(x)
    with pytest.raises(CapabilityError, match="class_conditional=True"):
        plain.predict_proba(x)
    with pytest.raises(CapabilityError, match="not class-conditional"):
        plain.sample(3, y=0)
    tan = ChowLiuTree(class_conditional=True).fit(x, y)
    with pytest.raises(DataError, match="unknown class"):
        tan.sample(2, y=7)
    assert plain.n_parameters() == 1 + 3 * 2 and tan.n_parameters() == 2 * (1 + 3 * 2) + 1
