"""Audit: reported bounds and estimates of bounds never integrate above one (issue 14).

A lower bound on log p, exponentiated and summed over every configuration (integrated over
a fine grid for densities), is at most one. A Monte-Carlo estimate of such a bound may
exceed it by its Monte-Carlo error, so the check allows three standard errors of the sum
(each example's standard error from ``score_samples(X, return_std=True)``, propagated by
the delta method: se(Σ e^s) = √Σ (e^s · se(s))², examples' draws being independent), plus
the grid's quadrature error for densities.
"""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest

import ptheta
from ptheta.data.spec import DataSpec, Split
from ptheta.models.diffusion import DDPM
from ptheta.models.flows import MAF, Glow, RealNVP
from ptheta.models.mixtures import GaussianMixture
from ptheta.models.nsf import NSF

HALF_WIDTH, STEP = 6.0, 0.15  # the grid: midpoints of STEP-squares covering [−6, 6]²


def _sum_and_stderr(model, points: np.ndarray, cell: float = 1.0) -> tuple[float, float]:
    scores, stderr = model.score_samples(points, return_std=True)
    assert scores.shape == stderr.shape == (len(points),)
    assert np.all(np.isfinite(stderr)) and np.all(stderr >= 0)
    mass = np.exp(scores) * cell
    return float(mass.sum()), float(np.sqrt(((mass * stderr) ** 2).sum()))


def _configs(n_dims: int, levels: int) -> np.ndarray:
    return np.array(list(itertools.product(range(levels), repeat=n_dims)), dtype=np.int64)


def _discrete(probs: np.ndarray, shape: tuple[int, ...], levels: int, n: int = 600) -> Split:
    """n draws from ``probs`` over every configuration of ``shape`` with ``levels`` levels."""
    configs = _configs(int(np.prod(shape)), levels)
    rng = np.random.default_rng(0)
    x = configs[rng.choice(len(configs), size=n, p=probs)].reshape(n, *shape)
    kind = "binary" if levels == 2 else "categorical"
    image = shape if len(shape) == 3 else None
    spec = DataSpec(kind, shape, None if levels == 2 else levels, image_shape=image)
    return Split(x, None, spec)


def _fit(model, data):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence warnings of quick fits
        return model.fit(data)


# --------------------------------------------------------------------------- DDPM


@pytest.mark.parametrize("name", ["toy2d-moons", "toy2d-8gaussians"])
def test_ddpm_density_estimate_integrates_to_at_most_one(name):
    data = ptheta.datasets.load(name)
    model = _fit(DDPM(**DDPM.quick_params), data.train.x[:600])
    assert model.likelihood_ == "estimate" and model.units_ == "continuous"
    axis = np.arange(-HALF_WIDTH, HALF_WIDTH, STEP) + STEP / 2
    grid = np.stack(np.meshgrid(axis, axis), -1).reshape(-1, 2)
    total, stderr = _sum_and_stderr(model, grid, STEP**2)
    # quadrature error: the same rule on the sub-grid of spacing 2·STEP
    scores = model.score_samples(grid).reshape(len(axis), len(axis))
    coarse = float(np.exp(scores[::2, ::2]).sum() * (2 * STEP) ** 2)
    assert total <= 1.0 + 3 * stderr + abs(total - coarse), (total, stderr, coarse)


def test_ddpm_discrete_estimate_sums_to_at_most_one():
    probs = np.array([0.30, 0.05, 0.01, 0.05, 0.20, 0.05, 0.01, 0.05, 0.28])
    model = _fit(DDPM(**DDPM.quick_params), _discrete(probs, (2,), 3))
    assert model.likelihood_ == "estimate" and model.units_ == "discrete"
    total, stderr = _sum_and_stderr(model, _configs(2, 3))
    assert total <= 1.0 + 3 * stderr, (total, stderr)


# --------------------------------------------------------------------------- flows

PROBS_8 = np.array([0.25, 0.05, 0.10, 0.05, 0.05, 0.10, 0.05, 0.35])  # 3 binary variables


@pytest.mark.parametrize("cls", [RealNVP, MAF, NSF])
@pytest.mark.parametrize("dequantization", ["uniform", "variational"])
def test_dequantised_flow_estimate_sums_to_at_most_one(cls, dequantization):
    params = {**cls.quick_params, "n_dequant_samples": 4, "dequantization": dequantization}
    model = _fit(cls(**params), _discrete(PROBS_8, (3,), 2))
    assert model.likelihood_ == "estimate" and model.units_ == "discrete"
    total, stderr = _sum_and_stderr(model, _configs(3, 2))
    assert total <= 1.0 + 3 * stderr, (total, stderr)


def test_dequantised_glow_estimate_sums_to_at_most_one():
    # 2×2 binary images (16 configurations): one squeeze to (4, 1, 1), then couplings
    probs = np.full(16, 0.5 / 14)
    probs[[0, 15]] = 0.25
    params = {**Glow.quick_params, "n_dequant_samples": 4}
    model = _fit(Glow(**params), _discrete(probs, (1, 2, 2), 2))
    assert model.likelihood_ == "estimate" and model.units_ == "discrete"
    total, stderr = _sum_and_stderr(model, _configs(4, 2).reshape(-1, 1, 2, 2))
    assert total <= 1.0 + 3 * stderr, (total, stderr)


# --------------------------------------------------------------------------- GMM


@pytest.mark.parametrize(("shape", "levels"), [((3,), 2), ((2,), 4)])
def test_gmm_dequantisation_bound_is_exact_and_sums_to_at_most_one(shape, levels):
    n = int(np.prod(shape))
    rng = np.random.default_rng(1)
    probs = rng.dirichlet(np.ones(levels**n))
    model = _fit(GaussianMixture(3, random_state=0), _discrete(probs, shape, levels))
    assert model.likelihood_ == "bound" and model.units_ == "discrete"
    scores, stderr = model.score_samples(_configs(n, levels), return_std=True)
    np.testing.assert_array_equal(stderr, 0.0)  # closed form: no Monte-Carlo error
    assert np.exp(scores).sum() <= 1.0 + 1e-12
