"""Neural spline flows: normalised exact densities, dequantised estimates, inverses, bad input."""

from __future__ import annotations

import functools
import itertools
import warnings

import numpy as np
import pytest
import torch
from scipy import stats

import ptheta
from ptheta.data.spec import DataSpec, Split
from ptheta.errors import ParameterError
from ptheta.models.nsf import NSF

FAST = {"dtype": "float64", "device": "cpu", "batch_size": 256, "lr": 1e-2}
KINDS = ["coupling", "autoregressive"]


def _fit(model, *args):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model.fit(*args)


def _grid(half: float, n: int) -> tuple[np.ndarray, float]:
    t = np.linspace(-half, half, n)
    gx, gy = np.meshgrid(t, t, indexing="ij")
    return np.column_stack([gx.ravel(), gy.ravel()]), (t[1] - t[0]) ** 2


@functools.cache
def _moons(transform_type: str) -> NSF:
    data = ptheta.datasets.load("toy2d-moons")
    model = NSF(16, transform_type=transform_type, n_layers=3, n_bins=6, epochs=4, **FAST)
    return _fit(model, data.train.x[:2000])


# --------------------------------------------------------------------------- continuous data
@pytest.mark.parametrize("transform_type", KINDS)
def test_fitted_density_is_exact_and_integrates_to_one(transform_type):
    model = _moons(transform_type)
    assert model.likelihood_ == "exact" and model.units_ == "continuous"
    _, stderr = model.score_samples(np.zeros((3, 2)), return_std=True)
    assert np.all(stderr == 0)  # nothing random in an exact density
    points, area = _grid(12.0, 401)
    mass = np.exp(model.score_samples(points)).sum() * area
    assert mass == pytest.approx(1.0, abs=0.02)


@pytest.mark.parametrize("transform_type", KINDS)
def test_it_learns_moons_better_than_the_best_gaussian(transform_type):
    data = ptheta.datasets.load("toy2d-moons")
    train, test = data.train.x[:2000], data.test.x
    # the maximum-likelihood Gaussian of the training data
    gauss = stats.multivariate_normal(train.mean(0), np.cov(train.T, bias=True))
    gauss_nll = -gauss.logpdf(test).mean()
    nll = -_moons(transform_type).score(test)
    assert nll < gauss_nll - 0.3, (nll, gauss_nll)


def test_class_conditional_densities_integrate_to_one_per_class():
    rng = np.random.default_rng(0)
    y = rng.integers(2, size=600)
    x = rng.normal(size=(600, 2)) * 0.5 + np.where(y[:, None] == 1, 2.0, -2.0)
    model = _fit(NSF(16, n_layers=2, n_bins=4, epochs=15, class_conditional=True, **FAST), x, y)
    points, area = _grid(10.0, 201)
    for label in (0, 1):
        mass = np.exp(model._log_prob(points, label)).sum() * area
        assert mass == pytest.approx(1.0, abs=0.02)
    assert (model.predict(x) == y).mean() > 0.95
    ones, zeros = (model.sample(200, y=c, random_state=0).mean() for c in (1, 0))
    assert ones - zeros > 2.0  # the cluster centres are 4 apart


@pytest.mark.parametrize("transform_type", KINDS)
def test_samples_pushed_back_through_the_flow_are_standard_normal(transform_type):
    model = _moons(transform_type)
    z = model.embed(model.sample(2000, random_state=0))
    for j in range(2):
        assert stats.kstest(z[:, j], "norm").pvalue > 1e-3, j


def test_partial_flows_go_from_the_base_to_the_model():
    model = _moons("coupling")
    points, area = _grid(12.0, 241)
    n_layers = model.n_flow_layers()
    np.testing.assert_allclose(
        model.partial_log_prob(points[:50], n_layers), model.score_samples(points[:50])
    )
    base = stats.multivariate_normal(np.zeros(2)).logpdf(points[:50])
    np.testing.assert_allclose(model.partial_log_prob(points[:50], 0), base)
    for k in (2, n_layers - 2):
        assert np.exp(model.partial_log_prob(points, k)).sum() * area == pytest.approx(1, abs=0.02)
    assert model.partial_sample(5, 3).shape == (5, 2)


# --------------------------------------------------------------------------- discrete data
PROBS_8 = np.array([0.25, 0.05, 0.10, 0.05, 0.05, 0.10, 0.05, 0.35])  # 3 binary variables
CONFIGS = np.array(list(itertools.product(range(2), repeat=3)), dtype=np.int64)


@pytest.mark.parametrize("transform_type", KINDS)
def test_discrete_data_get_the_dequantised_estimate_like_the_other_flows(transform_type):
    x = CONFIGS[np.random.default_rng(0).choice(8, size=600, p=PROBS_8)]
    params = {**NSF.quick_params, "epochs": 5, "batch_size": 64, "n_dequant_samples": 4}
    params["transform_type"] = transform_type
    model = _fit(NSF(**params), Split(x, None, DataSpec("binary", (3,))))
    assert model.likelihood_ == "estimate" and model.units_ == "discrete"
    assert model.capabilities().dequantised
    scores, stderr = model.score_samples(CONFIGS, return_std=True)
    assert np.all(stderr > 0) and np.all(scores < 0)
    # an estimate of a lower bound: the probabilities sum to at most 1 up to its error
    mass = np.exp(scores)
    assert mass.sum() <= 1.0 + 3 * np.sqrt(((mass * stderr) ** 2).sum())
    # each example's draws are its own: the same scores alone, in a batch, permuted
    np.testing.assert_array_equal(model.score_samples(CONFIGS), scores)
    alone = np.concatenate([model.score_samples(CONFIGS[i : i + 1]) for i in range(8)])
    np.testing.assert_allclose(alone, scores, rtol=1e-6)
    np.testing.assert_allclose(model.score_samples(CONFIGS[::-1])[::-1], scores, rtol=1e-6)
    # and it learned the distribution: below the uniform's 3 log 2 on average
    assert -(PROBS_8 * scores).sum() < 3 * np.log(2)


def test_digits_are_flattened_and_the_whole_flow_inverts_exactly():
    data = ptheta.datasets.load("digits")
    train = Split(data.train.x[:100], None, data.spec)  # the spec says (64,) is (1, 8, 8)
    params = {"n_layers": 2, "n_bins": 4, "epochs": 1, "n_dequant_samples": 2}
    model = _fit(NSF(8, transform_type="autoregressive", **params, **FAST), train)
    module = model.module
    with torch.no_grad():
        x = torch.as_tensor(data.test.x[:6], dtype=torch.float64) + 0.5
        z, logdet = module.transform(x)
        back, logdet_inv = module.transform.inverse(z)
    assert z.shape == (6, 64)
    torch.testing.assert_close(back, x, atol=1e-8, rtol=1e-8)
    torch.testing.assert_close(logdet_inv, -logdet)
    assert model.sample(3, random_state=0).shape == (3, 64)


# --------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"transform_type": "affine"}, "transform_type"),
        ({"n_bins": 1}, "n_bins must be an integer >= 2, got 1; one bin is the identity"),
        ({"tail_bound": 0.0}, "tail_bound"),
        ({"mixing": "random"}, "mixing"),
        ({"norm": "layer"}, "norm"),
    ],
)
def test_bad_parameters_are_one_clear_error(params, match):
    x = np.random.default_rng(0).normal(size=(30, 2))
    with pytest.raises(ParameterError, match=match):
        _fit(NSF(**{"epochs": 1, **FAST, **params}), x)


def test_the_explorer_draws_its_density_and_the_surface_integrates_to_one(tmp_path):
    from ptheta.explorer import views

    assert "nsf" in views.surface_models()
    out = views.Explorer(tmp_path, quick=True).surface("toy2d-moons", "nsf", grid=60)
    assert out["likelihood"] == "exact" and out["integral"] == pytest.approx(1.0, abs=0.02)


def test_lu_mixing_of_many_variables_trains_steadily_from_its_permutation_start():
    """400 binary variables: from a random rotation's LU factors, Adam's first steps on
    every entry of L and U raised the training loss (341.9 → 361.0 nats); from a
    permutation it falls every epoch."""
    rng = np.random.default_rng(0)
    x = (rng.random((96, 400)) < np.linspace(0.05, 0.6, 400)).astype(int)
    params = dict(hidden=8, n_layers=2, epochs=3, batch_size=32, n_dequant_samples=2)
    # LU mixing over a Gaussian base, as before the defaults followed the MoG base
    params.update(base="normal", mixing="lu", weight_decay=0.0)
    model = NSF(**params, device="cpu", random_state=0).fit(x)
    losses = [h["train_loss"] for h in model.history_]
    assert losses[0] > losses[1] > losses[2]
