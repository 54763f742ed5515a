"""Naive Bayes fitted on features with missing entries: the closed-form estimates are the
counts and moments of the observed cells (by hand), they are a local maximum of the
observed-data log-likelihood (plus log prior), a streamed fit (and two processes) give the
in-memory model, predictions are p(y | x_observed), and what cannot be estimated is refused."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from scipy.special import logsumexp

from ptheta.data import stream
from ptheta.data.spec import DataSpec, Split
from ptheta.data.stream import NpySource
from ptheta.errors import DataError
from ptheta.models.naive_bayes import NaiveBayes
from tests.models.test_streaming_contract import _CountingSource, _TwoProcesses


def _discrete(n: int, d: int, k: int, seed: int, missing: float):
    """Three classes with their own level probabilities per feature; MCAR cells NaN."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, size=n)
    probs = rng.dirichlet(np.ones(k), size=(3, d))  # (C, D, K)
    x = (rng.random((n, d, 1)) > np.cumsum(probs[y], axis=2)).sum(axis=2).astype(float)
    x = np.minimum(x, k - 1)
    x[rng.random(x.shape) < missing] = np.nan
    return x, y


def _gaussian(n: int, d: int, seed: int, missing: float):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, size=n)
    x = (
        100.0
        + rng.normal(size=(3, d))[y] * 3
        + rng.normal(size=(n, d)) * rng.uniform(0.5, 2, size=(3, d))[y]
    )
    x[rng.random(x.shape) < missing] = np.nan
    return x, y


def _kind(k: int) -> DataSpec:
    return DataSpec("binary" if k == 2 else "categorical", (5,), k)


# --------------------------------------------------------------------------- hand computation
@pytest.mark.parametrize("k", [2, 4])
def test_discrete_tables_are_the_smoothed_counts_of_the_observed_cells(k):
    x, y = _discrete(300, 5, k, seed=0, missing=0.25)
    x[:, 4] = np.nan  # a feature never observed: its prior, 1/K, in every class
    x[y == 1, 3] = np.nan  # never observed in class 1: 1/K there
    model = NaiveBayes(alpha=0.7).fit(Split(x, y, _kind(k)))
    for c in range(3):
        for i in range(5):
            seen = x[(y == c) & ~np.isnan(x[:, i]), i]
            hand = (np.bincount(seen.astype(int), minlength=k) + 0.7) / (len(seen) + 0.7 * k)
            np.testing.assert_allclose(np.exp(model.feature_log_prob_[c, i]), hand, rtol=1e-12)
    np.testing.assert_allclose(np.exp(model.feature_log_prob_[:, 4]), 1.0 / k, rtol=1e-12)
    np.testing.assert_allclose(np.exp(model.feature_log_prob_[1, 3]), 1.0 / k, rtol=1e-12)
    np.testing.assert_array_equal(model.class_count_, np.bincount(y))  # rows, observed or not


def test_gaussian_means_and_variances_are_the_moments_of_the_observed_values():
    x, y = _gaussian(400, 4, seed=1, missing=0.3)
    x[np.flatnonzero(y == 2)[0], :2] = np.nan  # class 2's first row: shift by its mean
    model = NaiveBayes(var_smoothing=1e-3).fit(x, y)
    means = np.stack([np.nanmean(x[y == c], axis=0) for c in range(3)])
    variances = np.stack([np.nanvar(x[y == c], axis=0) for c in range(3)])
    epsilon = 1e-3 * np.nanvar(x, axis=0).max()  # pooled over classes: all observed values
    np.testing.assert_allclose(model.theta_, means, rtol=1e-12)
    assert model.epsilon_ == pytest.approx(epsilon, rel=1e-10)
    np.testing.assert_allclose(model.var_, variances + epsilon, rtol=1e-10)


# --------------------------------------------------------------------------- local maximum
def _objective(model: NaiveBayes, x: np.ndarray, y: np.ndarray) -> float:
    """Σ_n log p(x_n,observed, y_n) plus the log prior of the pseudo-counts (Σ α log θ)."""
    joint = model._joint_log_likelihood(x)[np.arange(len(x)), np.searchsorted(model.classes_, y)]
    if not hasattr(model, "feature_log_prob_"):  # Gaussians: no prior
        return float(joint.sum())
    return float(joint.sum() + model.alpha * model.feature_log_prob_.sum())


def test_the_fit_is_a_local_maximum_of_the_observed_data_objective():
    x, y = _discrete(200, 5, 3, seed=2, missing=0.3)
    model = NaiveBayes(alpha=0.5).fit(Split(x, y, _kind(3)))
    base = _objective(model, x, y)
    for c, i, a, b in [(0, 0, 0, 1), (1, 3, 2, 0), (2, 4, 1, 2)]:
        for step in (1e-3, -1e-3):  # move probability between two levels of one factor
            moved = copy.deepcopy(model)
            probs = np.exp(moved.feature_log_prob_[c, i])
            probs[a] += step
            probs[b] -= step
            moved.feature_log_prob_[c, i] = np.log(probs)
            assert _objective(moved, x, y) < base
    x, y = _gaussian(200, 3, seed=3, missing=0.3)
    model = NaiveBayes(var_smoothing=0.0).fit(x, y)  # the maximum-likelihood Gaussians
    base = _objective(model, x, y)
    for attr, c, i in [("theta_", 0, 0), ("theta_", 2, 1), ("var_", 1, 2), ("var_", 0, 1)]:
        for step in (1e-4, -1e-4):
            moved = copy.deepcopy(model)
            getattr(moved, attr)[c, i] *= 1 + step
            assert _objective(moved, x, y) < base


# --------------------------------------------------------------------------- streaming
@pytest.mark.parametrize("kind", ["categorical", "continuous"])
def test_streamed_and_two_process_fits_give_the_in_memory_model(kind, tmp_path, monkeypatch):
    if kind == "continuous":
        x, y = _gaussian(150, 5, seed=4, missing=0.2)
        spec = DataSpec("continuous", (5,))
    else:
        x, y = _discrete(150, 5, 3, seed=4, missing=0.2)
        spec = _kind(3)
    x[:30] = np.nan_to_num(x[:30], nan=1.0)  # batches with no NaN (integer codes) too
    x[np.flatnonzero(y == 0)[0], 0] = np.nan  # a class's first value is missing
    in_memory = NaiveBayes().fit(Split(x, y, spec))
    path = tmp_path / "x.npy"
    np.save(path, x)
    source = NpySource(path, y=y)

    def fit():
        return NaiveBayes().fit(Split(_CountingSource(source, rows_per_batch=15), y, spec))

    world = _TwoProcesses()
    streamed = fit()
    monkeypatch.setattr(stream, "process_share", world.share)
    monkeypatch.setattr(stream, "all_reduce_sum", world.all_reduce_sum)
    for model in (streamed, *world.run(fit)):
        for attr in ("feature_log_prob_", "theta_", "var_"):
            if hasattr(in_memory, attr):
                np.testing.assert_allclose(getattr(model, attr), getattr(in_memory, attr), 1e-10)
        np.testing.assert_allclose(model.score_samples(x), in_memory.score_samples(x), 1e-10)


# --------------------------------------------------------------------------- prediction
def test_predictions_on_rows_with_missing_features_are_p_y_given_the_observed_ones():
    x, y = _discrete(300, 5, 3, seed=5, missing=0.3)
    model = NaiveBayes().fit(Split(x, y, _kind(3)))
    rows = x[:20]
    assert np.isnan(rows).any()
    probs = np.exp(model.feature_log_prob_)  # (C, D, K)
    for row, got in zip(rows, model.predict_proba(rows), strict=True):
        seen = np.flatnonzero(~np.isnan(row))
        log_joint = model.class_log_prior_ + np.log(probs[:, seen, row[seen].astype(int)]).sum(
            axis=1
        )  # the missing features' factors summed out: each sums to 1
        np.testing.assert_allclose(got, np.exp(log_joint - logsumexp(log_joint)), atol=1e-12)
    np.testing.assert_array_equal(
        model.predict(rows), model.classes_[model.predict_proba(rows).argmax(1)]
    )


# --------------------------------------------------------------------------- bad input
def test_what_cannot_be_estimated_is_refused_clearly():
    x, y = _gaussian(60, 3, seed=6, missing=0.1)
    x[y == 1, 2] = np.nan
    with pytest.raises(DataError, match=r"feature 2 is never observed in class 1.*drop the"):
        NaiveBayes().fit(x, y)
    x, y = _discrete(60, 5, 3, seed=6, missing=0.1)
    labels = y.astype(float)
    labels[3] = np.nan
    with pytest.raises(DataError, match=r"class label\(s\) are missing"):
        NaiveBayes().fit(Split(x, labels, _kind(3)))
