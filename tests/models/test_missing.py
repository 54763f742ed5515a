"""The Gaussian conditionals EM with missing entries uses, against the textbook formulas
with explicit inverses and scipy's marginal densities."""

import numpy as np
import pytest
from scipy.stats import multivariate_normal

from ptheta.models.missing import gaussian_conditionals, row_gaussian_conditionals


def _random_gaussians(k: int, d: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(k, d, d))
    return rng.normal(size=(k, d)), a @ a.transpose(0, 2, 1) + 0.5 * np.eye(d)


@pytest.mark.parametrize("observed", [[1, 0, 1, 0], [0, 0, 0, 1], [1, 1, 1, 1], [0, 0, 0, 0]])
def test_conditionals_match_explicit_inverses_and_scipy(observed):
    means, covs = _random_gaussians(3, 4, seed=1)
    seen = np.array(observed, dtype=bool)
    z = np.random.default_rng(2).normal(size=(5, 4))
    z[:, ~seen] = np.nan
    log_p, filled, extra = gaussian_conditionals(z, seen, means, covs)
    o, m = np.flatnonzero(seen), np.flatnonzero(~seen)
    for c in range(3):
        if len(o):
            marginal = multivariate_normal(means[c, o], covs[c][np.ix_(o, o)])
            np.testing.assert_allclose(log_p[:, c], marginal.logpdf(z[:, o]), rtol=1e-10)
        else:
            np.testing.assert_array_equal(log_p[:, c], 0.0)
        gain = covs[c][np.ix_(m, o)] @ np.linalg.inv(covs[c][np.ix_(o, o)]) if len(o) else None
        for n in range(5):
            want = z[n].copy()
            want[m] = means[c, m] + (gain @ (z[n, o] - means[c, o]) if len(o) else 0.0)
            np.testing.assert_allclose(filled[n, c], want, rtol=1e-10, atol=1e-12)
        block = covs[c][np.ix_(m, m)] - (gain @ covs[c][np.ix_(o, m)] if len(o) else 0.0)
        want_extra = np.zeros((4, 4))
        want_extra[np.ix_(m, m)] = block
        np.testing.assert_allclose(extra[c], want_extra, rtol=1e-10, atol=1e-12)


def test_second_moments_integrate_the_missing_block():
    # E[z zᵀ | z_o] by a fine grid over one missing entry equals filled filledᵀ + extra
    means, covs = _random_gaussians(1, 2, seed=3)
    z = np.array([[0.7, np.nan]])
    _, filled, extra = gaussian_conditionals(z, np.array([True, False]), means, covs)
    grid = np.linspace(-30, 30, 200001)
    joint = multivariate_normal(means[0], covs[0]).pdf(np.c_[np.full_like(grid, 0.7), grid])
    w = joint / joint.sum()
    np.testing.assert_allclose((w * grid).sum(), filled[0, 0, 1], rtol=1e-6)
    second = (w * grid**2).sum()
    np.testing.assert_allclose(second, filled[0, 0, 1] ** 2 + extra[0, 1, 1], rtol=1e-6)


def test_row_conditionals_equal_the_per_pattern_ones():
    means, covs = _random_gaussians(3, 5, seed=4)
    rng = np.random.default_rng(5)
    z = rng.normal(size=(40, 5))
    z[rng.random(z.shape) < 0.35] = np.nan
    z[0] = np.nan  # a row with nothing observed
    log_p, filled, extra, trace = row_gaussian_conditionals(z, means, covs, traces=True)
    for n in range(len(z)):
        seen = ~np.isnan(z[n])
        want = gaussian_conditionals(z[n : n + 1], seen, means, covs)
        np.testing.assert_allclose(log_p[n], want[0][0], rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(filled[n], want[1][0], rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(extra[n], want[2], rtol=1e-9, atol=1e-12)
        inverse = np.linalg.inv(covs[:, seen][:, :, seen]) if seen.any() else np.zeros((3, 0, 0))
        np.testing.assert_allclose(trace[n], np.trace(inverse, axis1=1, axis2=2), rtol=1e-10)
