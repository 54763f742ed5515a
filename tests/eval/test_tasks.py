"""Generative-vs-discriminative tasks: learning curves, crossover, missing-data marginalisation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ptheta.data.spec import Dataset, DataSpec, Split
from ptheta.errors import CapabilityError, DataError, ParameterError, UnknownNameError
from ptheta.eval import tasks
from ptheta.models import BayesClassifier, NaiveBayes


def _tiny(n_train: int = 90, n_test: int = 60, d: int = 6, seed: int = 0) -> Dataset:
    """Three classes of binary vectors, each class its own Bernoulli means."""
    rng = np.random.default_rng(seed)
    means = rng.uniform(0.1, 0.9, size=(3, d))  # (C, D)

    def draw(n: int) -> Split:
        y = np.arange(n) % 3
        x = (rng.random((n, d)) < means[y]).astype(np.int64)
        return Split(x, y, spec)

    spec = DataSpec("binary", (d,))
    return Dataset("tiny", spec, draw(n_train), draw(n_test), draw(n_test))


@pytest.fixture(scope="module")
def tiny() -> Dataset:
    return _tiny()


def test_stratified_subsample_has_the_requested_counts_per_class():
    y = np.array([0] * 7 + [1] * 4 + [2] * 9)
    rows = tasks.stratified_subsample(y, 3, np.random.default_rng(1))
    assert np.bincount(y[rows]).tolist() == [3, 3, 3]
    assert len(set(rows.tolist())) == 9  # without replacement
    with pytest.raises(DataError, match="only 4"):
        tasks.stratified_subsample(y, 5, np.random.default_rng(1))


def test_learning_curves_shape_and_error_bars_from_the_repeats(tiny):
    result = tasks.learning_curves(tiny, ["naive-bayes"], [5, 2], repeats=2, random_state=3)
    assert result["sizes"] == [2, 5] and result["n_train"] == [6, 15]
    assert set(result["curves"]) == {"naive-bayes", tasks.LOGISTIC}
    for curve in result["curves"].values():
        errors = np.asarray(curve["errors"])
        assert errors.shape == (2, 2) and ((errors >= 0) & (errors <= 1)).all()
        assert np.allclose(curve["mean"], errors.mean(axis=0))
        assert all(se >= 0 for se in curve["stderr"])
    # one error bar by hand: sample std (n - 1) over the 2 repeats, over sqrt(2)
    a, b = np.asarray(result["curves"]["naive-bayes"]["errors"])[:, 1]
    mean = (a + b) / 2
    by_hand = math.sqrt(((a - mean) ** 2 + (b - mean) ** 2) / 1) / math.sqrt(2)
    assert result["curves"]["naive-bayes"]["stderr"][1] == pytest.approx(by_hand)
    # one error by hand: the same stratified subsample, fitted directly
    rng = np.random.default_rng([3, 1, 0])  # (random_state, repeat, size index)
    rows = tasks.stratified_subsample(tiny.train.y, 2, rng)
    model = NaiveBayes().fit(tiny.train.x[rows], tiny.train.y[rows])
    error = np.mean(model.predict(tiny.test.x) != tiny.test.y)
    assert result["curves"]["naive-bayes"]["errors"][1][0] == pytest.approx(error)
    assert result["crossover"]["naive-bayes"] in (None, 2, 5)


def test_learning_curves_on_the_full_set_have_no_spread(tiny):
    result = tasks.learning_curves(tiny, ["naive-bayes"], ["all"], repeats=2)
    assert result["n_train"] == [90]
    assert result["curves"]["naive-bayes"]["stderr"] == [0.0]


@pytest.mark.parametrize(
    "gen, disc, expected",
    [
        ([0.30, 0.20, 0.15, 0.12], [0.40, 0.25, 0.10, 0.05], 10),  # crosses once
        ([0.30, 0.20, 0.15, 0.12], [0.40, 0.25, 0.20, 0.15], None),  # never below
        ([0.30, 0.20, 0.15, 0.12], [0.40, 0.20, 0.10, 0.12], None),  # touches at the end
        ([0.30, 0.20, 0.15, 0.12], [0.40, 0.20, 0.10, 0.05], 10),  # touches, then below
        ([0.30, 0.20, 0.15, 0.12], [0.20, 0.10, 0.16, 0.11], 20),  # below, above, below again
        ([0.30, 0.20, 0.15, 0.12], [0.20, 0.10, 0.10, 0.05], None),  # below everywhere
    ],
)
def test_crossover_on_hand_made_curves(gen, disc, expected):
    assert tasks.crossover([2, 5, 10, 20], gen, disc) == expected


def test_crossover_refuses_curves_of_different_lengths():
    with pytest.raises(DataError, match="differ in length"):
        tasks.crossover([2, 5], [0.1, 0.2], [0.1])


def test_describe_crossover_says_why_there_is_none():
    result = {
        "crossover": {"nb": None},
        "curves": {"nb": {"mean": [0.3, 0.2]}, tasks.LOGISTIC: {"mean": [0.2, 0.1]}},
    }
    assert "every size" in tasks.describe_crossover(result, "nb")
    result["curves"]["nb"]["mean"] = [0.3, 0.1]
    assert "better at the largest size" in tasks.describe_crossover(result, "nb")
    result["crossover"]["nb"] = 5
    assert "from 5 examples per class" in tasks.describe_crossover(result, "nb")


def test_missing_data_at_fraction_zero_is_plain_accuracy(tiny):
    result = tasks.missing_data_experiment(tiny, ["naive-bayes"], [0.0, 0.5], repeats=2)
    plain = {row["model"]: row["accuracy"] for row in tasks.classify(tiny, "naive-bayes")}
    curves = result["curves"]
    assert curves["naive-bayes"]["mean"][0] == pytest.approx(plain["naive-bayes"])
    lr = curves[f"{tasks.LOGISTIC} (mean-imputed)"]
    assert lr["mean"][0] == pytest.approx(plain[tasks.LOGISTIC])
    assert curves["naive-bayes"]["stderr"][0] == 0.0  # no mask at fraction 0: no spread
    assert np.asarray(curves["naive-bayes"]["accuracy"]).shape == (2, 2)
    # fraction 0.5, every repeat, by hand: the mask seeded (random_state, r, j); naive Bayes
    # on the NaN-marked test split (exact marginal), logistic regression on training means
    nb = NaiveBayes().fit(tiny.train.x, tiny.train.y)
    logistic = tasks.logistic_regression(tiny.spec).fit(tiny.train.x, tiny.train.y)
    means = tiny.train.x.mean(0)
    masked = []
    for r in range(2):
        x = tasks.remove_at_random(tiny.test.x, 0.5, np.random.default_rng([0, r, 1]))
        masked.append(x)
        nb_acc = np.mean(nb.predict(x) == tiny.test.y)
        assert curves["naive-bayes"]["accuracy"][r][1] == pytest.approx(nb_acc)
        lr_acc = np.mean(logistic.predict(np.where(np.isnan(x), means, x)) == tiny.test.y)
        assert lr["accuracy"][r][1] == pytest.approx(lr_acc)
    assert 0.4 < np.isnan(masked[0]).mean() < 0.6
    assert not np.array_equal(np.isnan(masked[0]), np.isnan(masked[1]))  # a mask per repeat


def test_naive_bayes_marginal_equals_a_model_of_the_observed_columns(tiny):
    missing = np.array([1, 4])
    observed = np.setdiff1d(np.arange(6), missing)
    x = tiny.test.x.astype(np.float64)
    x[:, missing] = np.nan
    full = NaiveBayes().fit(tiny.train.x, tiny.train.y)
    small = NaiveBayes().fit(tiny.train.x[:, observed], tiny.train.y)
    # summing out a factor of naive Bayes is dropping it: the same posterior, to rounding
    np.testing.assert_allclose(
        full.predict_proba(x), small.predict_proba(tiny.test.x[:, observed]), atol=1e-12
    )
    assert (full.predict(x) == small.predict(tiny.test.x[:, observed])).all()


def test_remove_at_random_hits_the_fraction_and_keeps_the_rest():
    x = np.ones((200, 50), dtype=np.int64)
    out = tasks.remove_at_random(x, 0.3, np.random.default_rng(0))
    assert abs(np.isnan(out).mean() - 0.3) < 0.02
    assert (out[~np.isnan(out)] == 1).all()
    assert not np.isnan(tasks.remove_at_random(x, 0.0, np.random.default_rng(0))).any()


def test_make_classifier_names():
    model = tasks.make_classifier("bayes-classifier:chow-liu")
    assert isinstance(model, BayesClassifier) and model.density == "chow-liu"
    assert tasks.make_classifier("chow-liu").class_conditional is True
    assert tasks.can_marginalise(model) and tasks.can_marginalise(NaiveBayes())
    assert not tasks.can_marginalise(tasks.make_classifier("made"))


def test_bad_input_gives_one_clear_error(tiny):
    with pytest.raises(DataError, match="smallest class"):
        tasks.learning_curves(tiny, ["naive-bayes"], [2, 31], repeats=1)
    with pytest.raises(ParameterError, match="per class"):
        tasks.learning_curves(tiny, ["naive-bayes"], [0], repeats=1)
    with pytest.raises(ParameterError, match="repeats"):
        tasks.learning_curves(tiny, ["naive-bayes"], [2], repeats=0)
    with pytest.raises(ParameterError, match=r"\[0, 1\)"):
        tasks.missing_data_experiment(tiny, ["naive-bayes"], [0.0, 1.0])
    with pytest.raises(ParameterError, match=r"\[0, 1\)"):
        tasks.missing_data_experiment(tiny, ["naive-bayes"], [-0.1])
    with pytest.raises(UnknownNameError, match="naive-bayes"):
        tasks.make_classifier("naive-bayse")
    with pytest.raises(UnknownNameError):
        tasks.make_classifier("bayes-classifier:nonsense")
    with pytest.raises(CapabilityError, match="bayes-classifier:independent"):
        tasks.make_classifier("independent")
    with pytest.raises(ParameterError, match="only a classifier with a density parameter"):
        tasks.make_classifier("naive-bayes:chow-liu")
    with pytest.raises(CapabilityError, match="cannot marginalise"):
        tasks.missing_data_experiment(tiny, ["made"], [0.1])
    unlabelled = Dataset("u", tiny.spec, Split(tiny.train.x, None, tiny.spec), tiny.val, tiny.test)
    with pytest.raises(DataError, match="no labels"):
        tasks.classify(unlabelled, "naive-bayes")


def test_subsamples_keep_the_declared_kind():
    # level 4 occurs only in the test split: a subsample read as "categorical(4)" would fail
    spec = DataSpec("categorical", (3,), 5)
    rng = np.random.default_rng(0)
    y = np.arange(12) % 2
    train = Split(rng.integers(0, 4, size=(12, 3)), y, spec)
    test = Split(np.full((4, 3), 4), np.array([0, 1, 0, 1]), spec)
    data = Dataset("cat", spec, train, test, test)
    result = tasks.learning_curves(data, ["naive-bayes"], [2], repeats=1)
    assert np.isnan(result["curves"]["naive-bayes"]["stderr"][0])  # one repeat: no error bar
