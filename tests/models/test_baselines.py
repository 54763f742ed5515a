"""The independent model: exact normalisation, closed-form parameters, faithful sampling."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import stats

import ptheta
from ptheta.data.spec import DataSpec, Split


def _all_configs(d: int, k: int) -> np.ndarray:
    return np.array(list(itertools.product(range(k), repeat=d)), dtype=np.int64)


def test_binary_probabilities_sum_to_one_over_all_1024_configurations():
    rng = np.random.default_rng(0)
    x = (rng.random((200, 10)) < rng.random(10)).astype(np.int64)
    model = ptheta.make("independent").fit(x)
    total = np.exp(model.score_samples(_all_configs(10, 2))).sum()
    assert abs(total - 1.0) < 1e-6


def test_categorical_probabilities_sum_to_one_and_match_smoothed_counts():
    rng = np.random.default_rng(1)
    x = rng.integers(0, 3, size=(50, 4))
    split = Split(x, None, DataSpec("categorical", (4,), 4))  # level 3 never seen
    model = ptheta.make("independent", alpha=0.5).fit(split)
    assert np.exp(model.score_samples(_all_configs(4, 4))).sum() == pytest.approx(1.0, abs=1e-9)
    expected = ((x[:, 0] == 0).sum() + 0.5) / (50 + 4 * 0.5)
    assert model.probs_[0, 0] == pytest.approx(expected)
    assert model.probs_[0, 3] == pytest.approx(0.5 / 52)


def test_gaussian_matches_closed_form():
    rng = np.random.default_rng(2)
    x = rng.normal(loc=[1.0, -2.0, 0.5], scale=[0.5, 2.0, 1.0], size=(300, 3))
    model = ptheta.make("independent", min_var=0.0).fit(x)
    expected = stats.norm(x.mean(0), x.std(0)).logpdf(x).sum(1)
    np.testing.assert_allclose(model.score_samples(x), expected, rtol=1e-12)


def test_sampler_histogram_matches_model_probabilities():
    rng = np.random.default_rng(3)
    x = rng.integers(0, 3, size=(100, 2))
    model = ptheta.make("independent").fit(x)
    configs = _all_configs(2, 3)
    probs = np.exp(model.score_samples(configs))
    samples = model.sample(20000, random_state=0)
    counts = np.array([np.all(samples == c, axis=1).sum() for c in configs])
    assert counts.sum() == 20000
    _, p_value = stats.chisquare(counts, probs * 20000)
    assert p_value > 1e-3


def test_constant_continuous_feature_warns():
    x = np.column_stack([np.linspace(0, 1, 20), np.full(20, 3.3)])
    with pytest.warns(UserWarning, match="constant"):
        ptheta.make("independent").fit(x)
