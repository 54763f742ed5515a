"""Sample metrics against cases with known answers: closed forms, plain-loop references."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy.linalg import sqrtm

import ptheta
from ptheta.errors import DataError, ParameterError
from ptheta.eval.features import FeatureExtractor
from ptheta.eval.metrics import (
    COPYING_THRESHOLD,
    flags_copying,
    frechet_distance,
    median_bandwidth,
    memorisation_ratio,
    mmd,
    precision_recall,
    sample_quality,
)


def _gauss(n, mean, cov, seed):
    return np.random.default_rng(seed).multivariate_normal(mean, cov, size=n)


# --------------------------------------------------------------------------- Fréchet
def test_frechet_of_identical_sets_is_zero():
    x = np.random.default_rng(0).normal(size=(300, 5))
    assert frechet_distance(x, x) == pytest.approx(0.0, abs=1e-6)


def test_frechet_matches_the_closed_form_on_sample_moments():
    # reference: the textbook formula with scipy's general matrix square root
    a = _gauss(400, [0, 0, 0], [[2, 0.5, 0], [0.5, 1, 0.3], [0, 0.3, 0.5]], 1)
    b = _gauss(300, [1, -1, 0.5], [[1, -0.4, 0.2], [-0.4, 3, 0], [0.2, 0, 1]], 2)
    ca, cb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    diff = a.mean(0) - b.mean(0)
    ref = diff @ diff + np.trace(ca + cb - 2 * np.real(sqrtm(ca @ cb)))
    assert frechet_distance(a, b) == pytest.approx(ref, rel=1e-9)


def test_frechet_of_two_gaussians_approaches_the_population_value():
    # N(0, I) vs N(m, diag(s²)): |m|² + Σ (1 − s)²
    m, s = np.array([1.0, -2.0]), np.array([2.0, 0.5])
    a = _gauss(40_000, [0, 0], np.eye(2), 3)
    b = _gauss(40_000, m, np.diag(s**2), 4)
    exact = m @ m + ((1 - s) ** 2).sum()  # 5 + 1.25
    assert frechet_distance(a, b) == pytest.approx(exact, rel=0.02)


# --------------------------------------------------------------------------- precision / recall
def test_identical_sets_have_precision_and_recall_one():
    x = np.random.default_rng(0).normal(size=(200, 4))
    assert precision_recall(x, x, k=3) == (1.0, 1.0)


def test_far_apart_sets_have_precision_and_recall_zero():
    x = np.random.default_rng(0).normal(size=(150, 3))
    y = np.random.default_rng(1).normal(size=(120, 3)) + 100.0
    assert precision_recall(x, y) == (0.0, 0.0)


def test_precision_counts_exactly_the_samples_on_the_real_manifold():
    real = np.random.default_rng(0).normal(size=(200, 2))
    fake = np.concatenate([real[:60], real[:40] + 50.0])  # 60 on the manifold, 40 far off
    precision, _ = precision_recall(real, fake, k=3)
    assert precision == pytest.approx(0.6)


def test_precision_recall_matches_a_plain_loop():
    rng = np.random.default_rng(5)
    real, fake, k = rng.normal(size=(40, 2)), rng.normal(size=(30, 2)) + 0.7, 2

    def radii(x):
        d = np.linalg.norm(x[:, None] - x[None], axis=-1)
        return np.sort(d, axis=1)[:, k]  # column 0 is the point itself

    def covered(points, centres, r):
        return np.mean(
            [
                any(np.linalg.norm(p - c) <= rc for c, rc in zip(centres, r, strict=True))
                for p in points
            ]
        )

    expected = (covered(fake, real, radii(real)), covered(real, fake, radii(fake)))
    assert precision_recall(real, fake, k=k) == pytest.approx(expected)


# --------------------------------------------------------------------------- MMD
def test_mmd_matches_the_unbiased_plain_loop_formula():
    rng = np.random.default_rng(0)
    a, b, h = rng.normal(size=(12, 3)), rng.normal(size=(9, 3)) + 0.5, 1.3

    def k(x, y):
        return np.exp(-np.sum((x - y) ** 2) / (2 * h * h))

    def within(x):
        pairs = [(i, j) for i, j in itertools.product(range(len(x)), repeat=2) if i != j]
        return sum(k(x[i], x[j]) for i, j in pairs) / len(pairs)

    cross = np.mean([k(x, y) for x in a for y in b])
    assert mmd(a, b, bandwidth=h) == pytest.approx(within(a) + within(b) - 2 * cross, rel=1e-12)


def test_mmd_is_unbiased_for_same_distribution_and_positive_for_shifted():
    same = [
        mmd(_gauss(100, [0, 0], np.eye(2), s), _gauss(100, [0, 0], np.eye(2), 100 + s))
        for s in range(30)
    ]
    mean, se = np.mean(same), np.std(same, ddof=1) / np.sqrt(len(same))
    assert abs(mean) < 3 * se + 1e-4  # a biased estimate (with i = j) would sit near +0.01
    assert min(same) < 0  # unbiased: noise goes both ways
    shifted = mmd(_gauss(100, [0, 0], np.eye(2), 0), _gauss(100, [1.5, 0], np.eye(2), 1))
    assert shifted > 20 * max(abs(mean), se)


def test_median_bandwidth_is_the_median_pairwise_distance():
    a, b = np.array([[0.0], [1.0]]), np.array([[3.0]])  # distances 1, 3, 2
    assert median_bandwidth(a, b) == pytest.approx(2.0)
    assert median_bandwidth(np.zeros((3, 2)), np.zeros((2, 2))) == 1.0


# --------------------------------------------------------------------------- memorisation
def test_copies_of_the_training_set_are_flagged_fresh_samples_are_not():
    rng = np.random.default_rng(0)
    train, heldout, fresh = (rng.normal(size=(500, 4)) for _ in range(3))
    copies = train[rng.integers(0, 500, size=300)]
    ratio = memorisation_ratio(copies, train, heldout)
    assert ratio == 0.0 and flags_copying(ratio)
    noisy_copies = copies + 0.05 * rng.normal(size=copies.shape)
    assert memorisation_ratio(noisy_copies, train, heldout) < 0.2
    fresh_ratio = memorisation_ratio(fresh, train, heldout)
    assert fresh_ratio == pytest.approx(1.0, abs=0.15) and not flags_copying(fresh_ratio)
    assert COPYING_THRESHOLD < 0.85


def test_memorisation_with_zero_heldout_distance():
    train = np.array([[0.0], [1.0]])
    assert memorisation_ratio(train, train, train) == 1.0
    assert memorisation_ratio(train + 0.5, train, train) == np.inf


# --------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("a", "b", "match"),
    [
        (np.zeros((5, 3)), np.zeros((5, 2)), "has 3 features per row but .* has 2"),
        (np.zeros((0, 3)), np.zeros((5, 3)), "has 0 rows"),
        (np.full((5, 3), np.nan), np.zeros((5, 3)), "NaN"),
        (np.zeros(5), np.zeros((5, 1)), r"shape \(N, D\)"),
    ],
)
def test_bad_input_is_one_clear_data_error(a, b, match):
    for metric in (frechet_distance, mmd, precision_recall):
        with pytest.raises(DataError, match=match):
            metric(a, b)
    with pytest.raises(DataError):
        memorisation_ratio(a, b, b)


def test_bad_parameters():
    x = np.zeros((5, 2))
    with pytest.raises(ParameterError, match="k must"):
        precision_recall(x, x, k=0)
    with pytest.raises(DataError, match="at least 4"):
        precision_recall(x[:3], x, k=3)
    with pytest.raises(ParameterError, match="bandwidth"):
        mmd(x, x, bandwidth=-1.0)


# --------------------------------------------------------------------------- sample_quality
def test_sample_quality_on_raw_features():
    data = ptheta.datasets.load("toy2d-moons")
    row = sample_quality(data.val.x, data, max_n=400)
    assert row["feature_space"] == "raw-toy2d-moons"
    assert row["n_samples"] == 400 and row["n_real"] == 400
    assert row["precision"] > 0.9 and row["recall"] > 0.9 and row["fd"] < 0.05
    assert not row["copying"]
    copied = sample_quality(data.train.x[:500], data, max_n=400)
    assert copied["memorisation"] == 0.0 and copied["copying"]
    far = sample_quality(data.val.x + 50.0, data, max_n=400)
    assert far["precision"] == far["recall"] == 0.0 and far["mmd"] > 0.5


def test_sample_quality_uses_the_extractor_given_and_checks_shapes():
    data = ptheta.datasets.load("digits-binary")
    ones = np.ones(64)
    fx = FeatureExtractor("raw-test", data.spec, np.zeros(64), ones)
    row = sample_quality(data.val.x, data, extractor=fx)
    assert set(row) >= {"feature_space", "fd", "precision", "recall", "mmd", "memorisation"}
    assert row["feature_space"] == "raw-test"
    # in this (unscaled) space FD is the plain Gaussian Fréchet distance of the pixels
    assert row["fd"] == pytest.approx(frechet_distance(data.test.x, data.val.x))
    with pytest.raises(DataError, match=r"expected \(N, 64\)"):
        sample_quality(np.zeros((10, 8, 8)), data, extractor=fx)
