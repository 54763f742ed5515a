"""Tests of the 2-D toy densities: shapes, exact densities and entropies."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import multivariate_normal

from ptheta.data import toy2d


def _grid(lo: float, hi: float, h: float) -> tuple[np.ndarray, float]:
    """Midpoints of a square grid over [lo, hi]² with step h: (M, 2), and the cell area."""
    t = np.arange(lo + h / 2, hi, h)
    gx, gy = np.meshgrid(t, t, indexing="ij")
    return np.stack([gx.ravel(), gy.ravel()], axis=1), h * h


@pytest.mark.parametrize("name", sorted(toy2d.SAMPLERS))
def test_samplers_give_seeded_2d_points_in_the_box(name):
    x = toy2d.SAMPLERS[name](3000, np.random.default_rng(1))
    assert x.shape == (3000, 2)
    assert x.dtype == np.float64
    assert np.isfinite(x).all()
    # All the mass sits in about [-2, 2]²; a few noisy points may stray slightly outside.
    assert np.mean(np.abs(x).max(axis=1) < 2.5) > 0.99
    assert np.abs(x).max() < 4
    np.testing.assert_array_equal(x, toy2d.SAMPLERS[name](3000, np.random.default_rng(1)))
    assert not np.array_equal(x, toy2d.SAMPLERS[name](3000, np.random.default_rng(2)))


def test_gaussians8_log_density_integrates_to_one():
    pts, area = _grid(-4, 4, 0.02)
    total = np.exp(toy2d.gaussians8_log_density(pts)).sum() * area
    assert abs(total - 1) < 1e-3


def test_gaussians8_log_density_matches_a_mixture_of_scipy_normals():
    x = np.random.default_rng(0).normal(0, 2, size=(50, 2))
    angles = np.arange(8) * np.pi / 4
    p = sum(
        multivariate_normal(2 * np.array([np.cos(a), np.sin(a)]), 0.04 * np.eye(2)).pdf(x) / 8
        for a in angles
    )
    np.testing.assert_allclose(toy2d.gaussians8_log_density(x), np.log(p), rtol=1e-10)


def test_gaussians8_samples_fall_evenly_near_the_eight_centres():
    x = toy2d.gaussians8(40_000, np.random.default_rng(0))
    angle = np.mod(np.arctan2(x[:, 1], x[:, 0]) + np.pi / 8, 2 * np.pi)
    counts = np.bincount((angle // (np.pi / 4)).astype(int), minlength=8)
    np.testing.assert_allclose(counts / len(x), 1 / 8, atol=0.01)
    np.testing.assert_allclose(np.linalg.norm(x, axis=1).mean(), 2.0, atol=0.02)


def test_gaussians8_entropy_matches_monte_carlo():
    x = toy2d.gaussians8(200_000, np.random.default_rng(3))
    nll = -toy2d.gaussians8_log_density(x)
    stderr = nll.std() / math.sqrt(len(x))
    h = toy2d.entropy("8gaussians")
    assert abs(nll.mean() - h) < 4 * stderr
    # Overlapping components make it slightly below log 8 + the entropy of one component.
    separated = math.log(8) + 1 + math.log(2 * math.pi * 0.2**2)
    assert separated - 1e-3 < h < separated


def test_checkerboard_density_integrates_to_one_and_is_zero_off_the_board():
    pts, area = _grid(-3, 3, 0.05)
    logp = toy2d.checkerboard_log_density(pts)
    assert abs(np.exp(logp).sum() * area - 1) < 1e-9
    assert set(np.unique(logp)) == {-np.inf, -math.log(8)}
    assert np.all(logp[np.abs(pts).max(axis=1) > 2] == -np.inf)


def test_checkerboard_black_and_white_squares():
    logp = toy2d.checkerboard_log_density(
        np.array([[-1.5, -1.5], [-0.5, -1.5], [0.5, 0.5], [1.5, 0.5], [2.5, 2.5]])
    )
    np.testing.assert_array_equal(logp, [-math.log(8), -np.inf, -math.log(8), -np.inf, -np.inf])


def test_checkerboard_samples_lie_in_the_support_and_match_the_entropy():
    x = toy2d.checkerboard(20_000, np.random.default_rng(0))
    logp = toy2d.checkerboard_log_density(x)
    assert np.isfinite(logp).all()
    assert -logp.mean() == pytest.approx(toy2d.entropy("checkerboard"), abs=1e-12)
    assert toy2d.entropy("checkerboard") == pytest.approx(math.log(8))
    # Uniform over the 8 squares: every black square gets about 1/8 of the points.
    cells = np.floor(x + 2).astype(int)
    counts = np.bincount(cells[:, 0] * 4 + cells[:, 1], minlength=16)
    assert np.count_nonzero(counts) == 8
    np.testing.assert_allclose(counts[counts > 0] / len(x), 1 / 8, atol=0.01)


def test_spirals_are_point_reflections_of_each_other():
    x = toy2d.spirals(4000, np.random.default_rng(0))
    # A symmetric pair: the cloud and its reflection through the origin look alike.
    np.testing.assert_allclose(x.mean(axis=0), 0, atol=0.1)
    assert np.linalg.norm(x, axis=1).max() < 2.3


def test_entropy_is_unknown_for_densities_without_a_closed_form():
    assert toy2d.entropy("moons") is None
    assert set(toy2d.LOG_DENSITIES) == {"8gaussians", "checkerboard"}
