"""Bayes classifier: Bayes' rule over per-class densities of any family, and its saved state."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest
from scipy import stats
from scipy.special import logsumexp

import ptheta
from ptheta.data.spec import DataSpec, Split
from ptheta.errors import CapabilityError, DataError, ParameterError, UnknownNameError
from ptheta.models import REGISTRY
from ptheta.models.baselines import Independent
from ptheta.models.classifier import BayesClassifier
from ptheta.models.naive_bayes import NaiveBayes
from ptheta.runs.store import load_run, save_run


def _configs(d: int, k: int) -> np.ndarray:
    return np.array(list(itertools.product(range(k), repeat=d)), dtype=np.int64)


def _blobs(n: int = 300, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """2-D, three labelled classes; class 1 is itself two blobs (a gmm's job)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, size=n)
    centres = np.array([[-2.0, 0.0], [2.0, 2.0], [0.0, -2.0]])[y]
    centres[y == 1] *= np.where(rng.random((y == 1).sum()) < 0.5, 1.0, -1.0)[:, None]
    return centres + 0.6 * rng.standard_normal((n, 2)), y


@pytest.mark.parametrize("kind", ["binary", "categorical", "continuous"])
def test_independent_density_is_naive_bayes(kind):
    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, size=200)
    if kind == "continuous":
        x = rng.normal(size=(200, 4)) + y[:, None]
        spec = DataSpec("continuous", (4,))
    else:
        k = 2 if kind == "binary" else 4
        x = np.clip(rng.integers(0, k, size=(200, 4)) + (y[:, None] == 1), 0, k - 1)
        spec = DataSpec(kind, (4,), k)
    split = Split(x, y, spec)
    # the same model when the smoothing agrees: alpha per level; an absolute variance floor
    nb = NaiveBayes(alpha=0.8, var_smoothing=1e-2 / x.var(axis=0).max(), prior_alpha=1.5)
    nb.fit(split)
    clf = BayesClassifier(density_params={"alpha": 0.8, "min_var": 1e-2}, prior_alpha=1.5)
    clf.fit(split)
    test = x[:50].astype(np.float64)
    test[::3, 1] = np.nan  # missing entries on both paths
    np.testing.assert_allclose(clf.predict_proba(test), nb.predict_proba(test), atol=1e-10)
    np.testing.assert_allclose(clf.score_samples(test), nb.score_samples(test), atol=1e-10)
    assert clf.n_parameters() == nb.n_parameters()


def test_gmm_density_follows_bayes_rule_from_per_class_gmms():
    x, y = _blobs()
    params = {"n_components": 2, "random_state": 0, "max_iter": 50}
    clf = BayesClassifier("gmm", density_params=params).fit(x, y)
    # Bayes' rule by hand from separately fitted per-class mixtures
    scores = np.column_stack(
        [ptheta.make("gmm", **params).fit(x[y == c]).score_samples(x) for c in range(3)]
    )
    joint = np.log(np.bincount(y) / len(y)) + scores  # (N, C)
    np.testing.assert_allclose(clf.score_samples(x), logsumexp(joint, axis=1), atol=1e-9)
    bayes = np.exp(joint - logsumexp(joint, axis=1, keepdims=True))
    np.testing.assert_allclose(clf.predict_proba(x), bayes, atol=1e-9)
    assert (clf.predict(x) == y).mean() > 0.9  # chance is about 1/3
    # class 1 is bimodal: one Gaussian per class (independent) classifies it worse
    single = BayesClassifier(density_params={"min_var": 1e-6}).fit(x, y)
    assert (single.predict(x) == y).mean() < (clf.predict(x) == y).mean()


def test_save_load_round_trip_keeps_every_class_density(tmp_path):
    x, y = _blobs(seed=2)
    labels = np.array(["a", "b", "c"])[y]
    clf = BayesClassifier(
        "gmm", density_params={"n_components": 2, "random_state": 0}, prior="uniform"
    )
    clf.fit(x, labels)
    save_run(clf, tmp_path / "run", data={"name": "blobs"})
    loaded = load_run(tmp_path / "run")
    assert type(loaded) is BayesClassifier and loaded.get_params() == clf.get_params()
    assert [type(d) for d in loaded.densities_] == [type(d) for d in clf.densities_]
    np.testing.assert_array_equal(loaded.classes_, clf.classes_)
    np.testing.assert_array_equal(loaded.predict_proba(x), clf.predict_proba(x))
    np.testing.assert_array_equal(loaded.predict(x), clf.predict(x))
    np.testing.assert_array_equal(
        loaded.sample(9, y="b", random_state=4), clf.sample(9, y="b", random_state=4)
    )
    for ours, theirs in zip(loaded.densities_, clf.densities_, strict=True):
        np.testing.assert_array_equal(ours.means_, theirs.means_)


def test_class_conditional_samples_and_likelihood_follow_the_density():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, size=300)
    x = (rng.random((300, 3)) < np.where(y[:, None] == 1, 0.8, 0.3)).astype(np.int64)
    clf = BayesClassifier().fit(x, y)
    configs = _configs(3, 2)
    expected = np.exp(clf.densities_[1].score_samples(configs))  # p(x | y = 1)
    samples = clf.sample(10_000, y=1, random_state=0)
    counts = np.bincount(samples @ np.array([4, 2, 1]), minlength=8)
    assert stats.chisquare(counts, expected * 10_000)[1] > 1e-4
    assert np.exp(clf.score_samples(configs)).sum() == pytest.approx(1.0, abs=1e-12)
    assert (clf.likelihood_, clf.units_) == ("exact", "discrete")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dequantised = BayesClassifier("gmm", density_params={"n_components": 1}).fit(x, y)
    assert (dequantised.likelihood_, dequantised.units_) == ("bound", "discrete")


def test_missing_entries_marginalise_and_impute_under_the_most_probable_class():
    rng = np.random.default_rng(5)
    y = rng.integers(0, 2, size=200)
    x = np.clip(rng.integers(0, 3, size=(200, 3)) + y[:, None], 0, 3)
    clf = BayesClassifier().fit(Split(x, y, DataSpec("categorical", (3,), 4)), y)
    row = np.array([[np.nan, 2.0, np.nan]])
    filled = np.repeat(row, 16, axis=0)
    filled[:, [0, 2]] = _configs(2, 4)
    brute = logsumexp(clf.score_samples(filled.astype(np.int64)))
    assert clf.score_samples(row)[0] == pytest.approx(brute, abs=1e-12)
    best = clf.predict_proba(row)[0].argmax()
    expected = clf.densities_[best].impute(row)
    np.testing.assert_array_equal(clf.impute(row), expected)


def test_bad_input_gives_one_clear_error():
    x, y = _blobs(60)
    with pytest.raises(DataError, match="needs class labels"):
        BayesClassifier().fit(x)
    with pytest.raises(DataError, match=r"labels must have shape \(60,\)"):
        BayesClassifier().fit(x, y[:10])
    with pytest.raises(ParameterError, match=r"density must be .*did you mean 'gmm'"):
        BayesClassifier("gmn").fit(x, y)
    with pytest.raises(UnknownNameError, match="n_components"):
        BayesClassifier("gmm", density_params={"n_component": 2}).fit(x, y)
    with pytest.raises(ParameterError, match="itself a classifier"):
        BayesClassifier("naive-bayes").fit(x, y)
    with pytest.raises(ParameterError, match="prior must be"):
        BayesClassifier(prior="flat").fit(x, y)
    # a class with fewer examples than mixture components: the error names the class
    few = np.concatenate([y[:20], [7, 7]])
    with pytest.raises(DataError, match=r"class 7 \(2 examples\).*n_components=3"):
        BayesClassifier("gmm", density_params={"n_components": 3}).fit(x[:22], few)
    clf = BayesClassifier("gmm", density_params={"n_components": 1}).fit(x, y)
    with pytest.raises(DataError, match=r"unknown class label\(s\) \[5\]"):
        clf.sample(2, y=5)


class _NoMarginals(Independent):
    """A density that cannot marginalise (every registered one can, at the time of writing)."""

    name = "no-marginals"
    can_marginalise = False


class _NoLikelihood(Independent):
    name = "no-likelihood"
    likelihood = "none"


def test_densities_that_cannot_answer_say_so(monkeypatch):
    monkeypatch.setitem(REGISTRY, _NoMarginals.name, _NoMarginals)
    monkeypatch.setitem(REGISTRY, _NoLikelihood.name, _NoLikelihood)
    x, y = _blobs(60)
    with pytest.raises(CapabilityError, match="has no likelihood"):
        BayesClassifier("no-likelihood").fit(x, y)
    clf = BayesClassifier("no-marginals").fit(x, y)
    partial = x[:3].copy()
    partial[0, 0] = np.nan
    with pytest.raises(CapabilityError, match="cannot marginalise"):
        clf.score_samples(partial)
    with pytest.raises(CapabilityError, match="cannot marginalise"):
        clf.predict_proba(partial)
    with pytest.raises(CapabilityError, match="cannot marginalise"):
        clf.impute(partial)
    assert clf.score_samples(x[:3]).shape == (3,)  # complete rows are fine


def test_fits_with_missing_entries_where_its_class_densities_do():
    # each class's density is fitted on its own rows, NaN included: the classifier's
    # joint log p(x, y) is log p(y) + that density's exact marginal of the observed entries
    rng = np.random.default_rng(3)
    x = (rng.random((300, 5)) < 0.5).astype(float)
    y = (x[:, 0] + rng.random(300) > 1.0).astype(int)
    x[rng.random(x.shape) < 0.2] = np.nan
    model = BayesClassifier(density="chow-liu").fit(x, y)
    assert model.capabilities().fits_missing
    by_hand = np.stack(
        [ptheta.make("chow-liu").fit(x[y == c]).score_samples(x) + np.log(np.mean(y == c))
         for c in (0, 1)], axis=1,
    )  # fmt: skip
    np.testing.assert_allclose(
        model.predict_proba(x), np.exp(by_hand - logsumexp(by_hand, 1)[:, None]), rtol=1e-9
    )
    made = BayesClassifier(density="made")
    assert not made.capabilities().fits_missing
    with pytest.raises(DataError, match="NaN"):
        made.fit(x, y)


def test_small_integer_labels_encode_as_a_sort_would():
    from ptheta.models.classifier import encode_labels

    rng = np.random.default_rng(0)
    for dtype in (np.int64, np.int32, np.uint8):
        y = rng.choice([0, 3, 4, 9, 200], size=500).astype(dtype)
        classes, index = encode_labels("m", y)
        expected_classes, expected_index = np.unique(y, return_inverse=True)
        np.testing.assert_array_equal(classes, expected_classes)
        np.testing.assert_array_equal(index, expected_index.reshape(-1))
        assert classes.dtype == y.dtype
    big = np.array([2**40, 1, 2**40])  # beyond the counting range: sorted as before
    np.testing.assert_array_equal(encode_labels("m", big)[1], [1, 0, 1])
