"""Naive Bayes: agreement with scikit-learn, exact normalisation, Bayes' rule, exact marginals."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import stats
from scipy.special import logsumexp
from sklearn.datasets import load_iris
from sklearn.naive_bayes import BernoulliNB, CategoricalNB, GaussianNB

import ptheta
from ptheta.data.spec import DataSpec, Split
from ptheta.errors import DataError, ParameterError
from ptheta.models.naive_bayes import NaiveBayes
from ptheta.runs.store import load_run, save_run


def _configs(d: int, k: int) -> np.ndarray:
    return np.array(list(itertools.product(range(k), repeat=d)), dtype=np.int64)


def _toy(n: int, d: int, k: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Three classes, each with its own level probabilities per feature."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, size=n)
    probs = rng.dirichlet(np.ones(k), size=(3, d))  # (C, D, K)
    u = rng.random((n, d, 1))
    x = np.minimum((u > np.cumsum(probs[y], axis=2)).sum(axis=2), k - 1)
    return x.astype(np.int64), y


def _hand_joint(x_fit, y_fit, x, k, alpha, prior_alpha=0.0) -> np.ndarray:
    """log p(x, y) for every row of x and class, shape (N, C), written out term by term."""
    classes = np.unique(y_fit)
    out = np.zeros((len(x), len(classes)))
    for c, label in enumerate(classes):
        rows = x_fit[y_fit == label]
        out[:, c] = np.log((len(rows) + prior_alpha) / (len(x_fit) + len(classes) * prior_alpha))
        for n, row in enumerate(x):
            for i, value in enumerate(row):
                out[n, c] += np.log(((rows[:, i] == value).sum() + alpha) / (len(rows) + k * alpha))
    return out


# --------------------------------------------------------------------------- scikit-learn
@pytest.mark.parametrize(
    ("data_name", "reference"),
    [
        ("digits-binary", BernoulliNB(alpha=1.0)),
        ("digits", CategoricalNB(alpha=1.0, min_categories=17)),
    ],
)
def test_discrete_matches_scikit_learn(data_name, reference):
    data = ptheta.datasets.load(data_name)
    ours = NaiveBayes(alpha=1.0).fit(data.train)
    reference.fit(data.train.x, data.train.y)
    np.testing.assert_allclose(
        ours.predict_proba(data.test.x), reference.predict_proba(data.test.x), rtol=0, atol=1e-8
    )
    ours_acc = (ours.predict(data.test.x) == data.test.y).mean()
    assert ours_acc == pytest.approx(reference.score(data.test.x, data.test.y), abs=0.01)
    assert ours_acc > 0.8


def test_gaussian_matches_scikit_learn():
    x, y = load_iris(return_X_y=True)
    train, test = np.arange(150) % 3 != 0, np.arange(150) % 3 == 0
    for smoothing in (1e-9, 1e-2):
        ours = NaiveBayes(var_smoothing=smoothing).fit(x[train], y[train])
        reference = GaussianNB(var_smoothing=smoothing).fit(x[train], y[train])
        np.testing.assert_allclose(
            ours.predict_proba(x[test]), reference.predict_proba(x[test]), rtol=0, atol=1e-8
        )
        np.testing.assert_allclose(ours.var_, reference.var_, rtol=1e-12)
    # digits as continuous: constant pixels make the posteriors extreme; accuracy still agrees
    data = ptheta.datasets.load("digits", kind="continuous")
    ours = NaiveBayes().fit(data.train)
    reference = GaussianNB().fit(data.train.x, data.train.y)
    assert (ours.predict(data.test.x) == data.test.y).mean() == pytest.approx(
        reference.score(data.test.x, data.test.y), abs=0.01
    )


# --------------------------------------------------------------------------- exact maths
def test_joint_sums_to_one_over_all_1024_binary_configurations():
    x, y = _toy(300, 10, 2)
    model = NaiveBayes().fit(x, y)
    assert np.exp(model.score_samples(_configs(10, 2))).sum() == pytest.approx(1.0, abs=1e-10)


@pytest.mark.parametrize(("k", "prior_alpha"), [(2, 0.0), (4, 2.5)])
def test_scores_and_posteriors_equal_the_hand_computed_joint(k, prior_alpha):
    x, y = _toy(80, 3, k, seed=k)
    spec = DataSpec("categorical", (3,), k) if k > 2 else DataSpec("binary", (3,))
    model = NaiveBayes(alpha=0.7, prior_alpha=prior_alpha).fit(Split(x, y, spec))
    configs = _configs(3, k)
    joint = _hand_joint(x, y, configs, k, 0.7, prior_alpha)  # (K^3, C)
    np.testing.assert_allclose(model.score_samples(configs), logsumexp(joint, axis=1), atol=1e-12)
    bayes = np.exp(joint - logsumexp(joint, axis=1, keepdims=True))
    np.testing.assert_allclose(model.predict_proba(configs), bayes, atol=1e-12)
    assert np.array_equal(model.predict(configs), model.classes_[bayes.argmax(axis=1)])


def test_gaussian_score_is_the_closed_form_mixture_of_products():
    rng = np.random.default_rng(4)
    y = rng.integers(0, 2, size=200)
    x = rng.normal(size=(200, 3)) * np.where(y[:, None] == 1, 2.0, 0.5) + y[:, None]
    model = NaiveBayes(var_smoothing=1e-3).fit(x, y)
    eps = 1e-3 * x.var(axis=0).max()
    parts = []
    for c in (0, 1):
        rows = x[y == c]
        log_px = stats.norm(rows.mean(0), np.sqrt(rows.var(0) + eps)).logpdf(x).sum(1)
        parts.append(np.log((y == c).mean()) + log_px)
    np.testing.assert_allclose(model.score_samples(x), logsumexp(parts, axis=0), rtol=1e-12)
    # missing entries: the density of the observed coordinates alone
    partial = x.copy()
    partial[:, 1] = np.nan
    parts = [
        np.log((y == c).mean())
        + stats.norm(x[y == c].mean(0), np.sqrt(x[y == c].var(0) + eps)).logpdf(x)[:, [0, 2]].sum(1)
        for c in (0, 1)
    ]
    np.testing.assert_allclose(model.score_samples(partial), logsumexp(parts, axis=0), rtol=1e-12)
    post = np.exp(np.array(parts).T - logsumexp(parts, axis=0)[:, None])
    np.testing.assert_allclose(model.predict_proba(partial), post, atol=1e-12)


def test_missing_entries_marginal_and_posterior_equal_brute_force():
    x, y = _toy(120, 4, 3, seed=5)
    model = NaiveBayes().fit(Split(x, y, DataSpec("categorical", (4,), 3)))
    partial = x[:6].astype(np.float64)
    partial[:, [0, 2]] = np.nan
    for row in partial:
        filled = np.repeat(row[None], 9, axis=0)
        filled[:, [0, 2]] = _configs(2, 3)
        filled = filled.astype(np.int64)
        # p(x, y) for every completion, from the full-data code path: (9, C)
        joint = model.predict_proba(filled) * np.exp(model.score_samples(filled))[:, None]
        assert model.score_samples(row[None])[0] == pytest.approx(np.log(joint.sum()), abs=1e-12)
        np.testing.assert_allclose(
            model.predict_proba(row[None])[0], joint.sum(0) / joint.sum(), atol=1e-12
        )


def test_class_conditional_samples_follow_p_x_given_y():
    x, y = _toy(200, 4, 2, seed=6)
    model = NaiveBayes().fit(x, y)
    configs = _configs(4, 2)
    # p(x | y) = p(y | x) p(x) / p(y)
    p_x_given_y = model.predict_proba(configs)[:, 2] * np.exp(model.score_samples(configs))
    p_x_given_y /= np.exp(model.class_log_prior_[2])
    assert p_x_given_y.sum() == pytest.approx(1.0, abs=1e-12)
    samples = model.sample(20_000, y=2, random_state=0)
    counts = np.bincount(samples @ (2 ** np.arange(4)[::-1]), minlength=16)
    _, p_value = stats.chisquare(counts, p_x_given_y * 20_000)
    assert p_value > 1e-4
    # the wrong class would fail the same test
    wrong = model.predict_proba(configs)[:, 0] * np.exp(model.score_samples(configs))
    wrong /= wrong.sum()
    assert stats.chisquare(counts, wrong * 20_000)[1] < 1e-10


def test_impute_mode_and_sample_follow_the_posterior_predictive():
    x, y = _toy(150, 3, 3, seed=7)
    model = NaiveBayes().fit(Split(x, y, DataSpec("categorical", (3,), 3)))
    partial = np.array([[np.nan, 1.0, np.nan], [2.0, np.nan, 0.0]])
    filled = model.impute(partial, method="mode")
    configs = _configs(3, 3)
    joint = np.exp(model.score_samples(configs))  # p(x) for every configuration
    for n, row in enumerate(partial):
        consistent = np.all(np.isnan(row) | (configs == row), axis=1)
        for i in np.flatnonzero(np.isnan(row)):
            # p(x_i = k, x_obs) by enumeration of every completion
            marginal = np.bincount(configs[:, i], weights=joint * consistent, minlength=3)
            assert filled[n, i] == marginal.argmax()
    # one missing entry: its draws follow p(x_0 | x_1, x_2)
    row = np.array([[np.nan, 1.0, 2.0]])
    cands = np.array([[k, 1, 2] for k in range(3)])
    expected = np.exp(model.score_samples(cands))
    expected /= expected.sum()
    draws = model.impute(np.repeat(row, 6000, axis=0), method="sample", random_state=0)[:, 0]
    _, p_value = stats.chisquare(np.bincount(draws, minlength=3), expected * 6000)
    assert p_value > 1e-4


def test_gaussian_impute_mode_is_the_posterior_mean():
    rng = np.random.default_rng(8)
    y = rng.integers(0, 2, size=100)
    x = rng.normal(size=(100, 2)) + 3.0 * y[:, None]
    model = NaiveBayes().fit(x, y)
    partial = np.array([[0.2, np.nan], [np.nan, 2.9]])
    post = model.predict_proba(partial)
    filled = model.impute(partial)
    assert filled[0, 1] == pytest.approx(post[0] @ model.theta_[:, 1])
    assert filled[1, 0] == pytest.approx(post[1] @ model.theta_[:, 0])


# --------------------------------------------------------------------------- labels and priors
def test_string_labels_priors_and_save_load(tmp_path):
    x, y = _toy(90, 3, 2, seed=9)
    labels = np.array(["cat", "dog", "emu"])[y]
    model = NaiveBayes(prior="uniform").fit(x, labels)
    assert model.classes_.tolist() == ["cat", "dog", "emu"]
    np.testing.assert_allclose(model.class_log_prior_, np.log(np.full(3, 1 / 3)))
    assert set(model.predict(x).tolist()) <= {"cat", "dog", "emu"}
    assert model.n_parameters() == 3 * 3 * 1  # uniform prior: no free prior parameter
    save_run(model, tmp_path / "run")
    loaded = load_run(tmp_path / "run")
    np.testing.assert_array_equal(loaded.classes_, model.classes_)
    np.testing.assert_array_equal(loaded.predict_proba(x), model.predict_proba(x))
    np.testing.assert_array_equal(
        loaded.sample(5, y="emu", random_state=1), model.sample(5, y="emu", random_state=1)
    )


def test_bad_input_gives_one_clear_error():
    x, y = _toy(30, 3, 2)
    with pytest.raises(DataError, match="needs class labels"):
        NaiveBayes().fit(x)
    with pytest.raises(DataError, match=r"labels must have shape \(30,\)"):
        NaiveBayes().fit(x, y[:-1])
    with pytest.raises(ParameterError, match="alpha must be"):
        NaiveBayes(alpha=0).fit(x, y)
    with pytest.raises(ParameterError, match="prior must be"):
        NaiveBayes(prior="flat").fit(x, y)
    with pytest.raises(ParameterError, match="var_smoothing"):
        NaiveBayes(var_smoothing=-1.0).fit(x + 0.5, y)
    model = NaiveBayes().fit(x, y)
    with pytest.raises(DataError, match=r"unknown class label\(s\) \[7\]"):
        model.sample(3, y=7)
    with pytest.raises(DataError, match="shape"):
        model.predict_proba(x[:, :2])
    with pytest.raises(DataError, match="constant in class"):
        NaiveBayes(var_smoothing=0.0).fit(np.ones((4, 2)) * 0.5, [0, 0, 1, 1])
