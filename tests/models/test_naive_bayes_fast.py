"""naive-bayes, Gaussian: the blocked product form of the scores and the class-by-class (or
one-hot) moments equal the direct per-class formulas, far from the origin, with missing
entries."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from scipy.special import logsumexp

import ptheta.models.naive_bayes as nb
from ptheta.models.naive_bayes import NaiveBayes


def _data(offset: float, n: int = 300, d: int = 4, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, size=n)
    x = offset + rng.normal(size=(n, d)) * (1.0 + y[:, None]) + 3.0 * y[:, None]
    return x, y


@pytest.mark.parametrize("few", [64, 1])  # class by class, or one-hot products
@pytest.mark.parametrize("offset", [0.0, 1e6])
def test_gaussian_fit_moments_are_each_class_mean_and_variance(monkeypatch, offset, few):
    monkeypatch.setattr(nb, "_FEW_CLASSES", few)
    x, y = _data(offset)
    model = NaiveBayes(var_smoothing=0.0).fit(x, y)
    for c in range(3):
        np.testing.assert_allclose(model.theta_[c], x[y == c].mean(0), rtol=1e-13, atol=1e-12)
        np.testing.assert_allclose(model.var_[c], x[y == c].var(0), rtol=1e-9)
    missing = x.copy()
    missing[::7, 1] = np.nan  # the masked path: each feature's observed values only
    model = NaiveBayes(var_smoothing=0.0).fit(missing, y)
    seen = ~np.isnan(missing[:, 1])
    for c in range(3):
        rows = x[(y == c) & seen, 1]
        assert model.theta_[c, 1] == pytest.approx(rows.mean(), rel=1e-13)
        assert model.var_[c, 1] == pytest.approx(rows.var(), rel=1e-9)
        np.testing.assert_allclose(model.theta_[c, [0, 2, 3]], x[y == c][:, [0, 2, 3]].mean(0))


@pytest.mark.parametrize("offset", [0.0, 1e6])
def test_blocked_gaussian_scores_equal_the_per_class_densities(monkeypatch, offset):
    x, y = _data(offset)
    model = NaiveBayes(var_smoothing=1e-3).fit(x, y)
    monkeypatch.setattr(nb, "_BLOCK_VALUES", 8 * 7)  # blocks of 7 rows: 300 = 42 × 7 + 6
    test = _data(offset, n=50, seed=1)[0]
    test[::3, 2] = np.nan
    seen = ~np.isnan(test)
    parts = []
    for c in range(3):
        logpdf = stats.norm(model.theta_[c], np.sqrt(model.var_[c])).logpdf(test)
        parts.append(model.class_log_prior_[c] + np.where(seen, logpdf, 0.0).sum(1))
    joint = np.array(parts).T  # (N, C)
    # the expansion rounds at 1e-16 × (x − centre)² / σ² per entry, here ~1e-14 nats
    np.testing.assert_allclose(model._joint_log_likelihood(test), joint, rtol=1e-12, atol=1e-10)
    np.testing.assert_allclose(model.score_samples(test), logsumexp(joint, axis=1), rtol=1e-12)
