"""Flow families: normalised densities, dequantisation bounds, inverse sampling, bad input."""

from __future__ import annotations

import functools
import itertools
import warnings

import numpy as np
import pytest
import torch
from scipy import stats
from scipy.special import logsumexp

import ptheta
from ptheta.data import BUILTIN
from ptheta.data.spec import DataSpec, Split
from ptheta.errors import CapabilityError, DataError, ParameterError
from ptheta.models.flows import MAF, Glow, RealNVP

FAST = {"dtype": "float64", "device": "cpu", "batch_size": 256, "lr": 1e-2}
TOYS = [name for name in BUILTIN if name.startswith("toy2d-")]


def _fit(model, *args):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model.fit(*args)


def _grid(half: float, n: int) -> tuple[np.ndarray, float]:
    t = np.linspace(-half, half, n)
    gx, gy = np.meshgrid(t, t, indexing="ij")
    return np.column_stack([gx.ravel(), gy.ravel()]), (t[1] - t[0]) ** 2


@pytest.mark.parametrize("name", TOYS)
def test_fitted_density_integrates_to_one_on_every_toy(name):
    data = ptheta.datasets.load(name)
    cls = RealNVP if TOYS.index(name) % 2 == 0 else MAF
    model = _fit(cls(16, n_layers=4, epochs=1, **FAST), data.train.x[:2000])
    assert model.likelihood_ == "exact" and model.units_ == "continuous"
    points, area = _grid(12.0, 401)
    mass = np.exp(model.score_samples(points)).sum() * area
    assert mass == pytest.approx(1.0, abs=0.01)


def test_conditional_density_integrates_to_one_per_class():
    rng = np.random.default_rng(0)
    y = rng.integers(2, size=600)
    x = rng.normal(size=(600, 2)) * 0.5 + np.where(y[:, None] == 1, 2.0, -2.0)
    model = _fit(RealNVP(16, n_layers=4, epochs=20, class_conditional=True, **FAST), x, y)
    points, area = _grid(12.0, 301)
    for label in (0, 1):
        mass = np.exp(model._log_prob(points, label)).sum() * area
        assert mass == pytest.approx(1.0, abs=0.01)
    # the classes are separated: Bayes' rule and class-conditional sampling see that
    assert (model.predict(x) == y).mean() > 0.95
    ones, zeros = (model.sample(200, y=c, random_state=0).mean() for c in (1, 0))
    assert ones - zeros > 2.0  # the cluster centres are 4 apart


# --------------------------------------------------------------------------- dequantisation
# Two variables with 3 levels and known probabilities: H(P) is the floor of any NLL.
PROBS = np.array([[0.30, 0.05, 0.05], [0.05, 0.20, 0.05], [0.02, 0.08, 0.20]])
CONFIGS = np.array(list(itertools.product(range(3), repeat=2)), dtype=np.int64)


def _cell_log_probs(model) -> np.ndarray:
    """log ∫_cell p for every configuration: midpoint rule on a fine grid in each cell."""
    m = 40
    offsets = (np.arange(m) + 0.5) / m
    u = np.stack(np.meshgrid(offsets, offsets, indexing="ij"), -1).reshape(-1, 2)  # (m², 2)
    module = model.module
    out = []
    for cfg in CONFIGS:
        v = torch.as_tensor(cfg + u, dtype=torch.float64)
        with torch.no_grad():
            log_p = module.density(v).numpy()
        out.append(logsumexp(log_p) - 2 * np.log(m))
    return np.array(out)


@functools.cache
def _discrete_fit(dequantization: str):
    """A flow fitted to 1500 draws of PROBS, its bound per configuration and cell log-probs."""
    rng = np.random.default_rng(1)
    x = CONFIGS[rng.choice(9, size=1500, p=PROBS.ravel())]
    split = Split(x, None, DataSpec("categorical", (2,), 3))
    model = RealNVP(
        16, n_layers=4, epochs=15, dequantization=dequantization, n_dequant_samples=4, **FAST
    )
    _fit(model, split)
    # the bound is an expectation: estimate it precisely enough that Monte Carlo error
    # (≈ 0.03 nats with 64 draws here) cannot pass for a violation
    model.module.n_dequant_samples = 4096
    return model, model.score_samples(CONFIGS), _cell_log_probs(model)


@pytest.mark.parametrize("dequantization", ["uniform", "variational"])
def test_dequantisation_bound_is_below_the_exact_discrete_log_likelihood(dequantization):
    model, bound, cells = _discrete_fit(dequantization)
    assert model.likelihood_ == "estimate" and model.units_ == "discrete"
    assert np.exp(cells).sum() <= 1.0 + 1e-6  # the cells of the flow's own density
    assert np.all(bound <= cells)  # Jensen: E_q log(p/q) ≤ log ∫_cell p, per configuration
    entropy = -(PROBS * np.log(PROBS)).sum()
    cross_entropy = -(PROBS.ravel() * bound).sum()
    assert cross_entropy >= entropy
    assert cross_entropy < entropy + 0.6  # and it learned something (uniform: log 9 = +1.1)


def test_variational_dequantisation_tightens_the_bound():
    gaps = {}
    for deq in ("uniform", "variational"):
        _, bound, cells = _discrete_fit(deq)
        gaps[deq] = (PROBS.ravel() * (cells - bound)).sum()  # mean Jensen gap
    assert gaps["variational"] < gaps["uniform"]


def test_discrete_scores_are_deterministic_and_per_example():
    data = ptheta.datasets.load("digits")
    model = _fit(MAF(16, n_layers=2, epochs=1, n_dequant_samples=3, **FAST), data.train.x[:200])
    x = data.test.x[:20]
    np.testing.assert_array_equal(model.score_samples(x), model.score_samples(x))
    np.testing.assert_allclose(model.score_samples(x[5:9]), model.score_samples(x)[5:9])
    assert np.all(model.score_samples(x) < 0)  # a bound on a log-probability


def test_validation_takes_two_dequantisation_draws_and_scoring_all_of_them():
    """The epoch's validation NLL is the bound from VALIDATION_DRAWS draws per row (the
    same draws every epoch); the fitted model scores with n_dequant_samples."""
    data = ptheta.datasets.load("digits")
    train, val = data.train.x[:200], data.val.x[:60]
    params = dict(n_layers=2, epochs=3, n_dequant_samples=5, patience=None, **FAST)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = MAF(16, **params).fit(train, validation_data=val)
    assert model.module.n_dequant_samples == 5
    best = min(h["val_nll"] for h in model.history_)  # the fit keeps the best epoch's weights
    x = torch.as_tensor(val, dtype=torch.float64)
    with torch.no_grad():
        model.module.n_dequant_samples = 2
        two = -float(model.module.log_prob(x).mean())
        model.module.n_dequant_samples = 5
        five = -float(model.module.log_prob(x).mean())
    assert best == pytest.approx(two, rel=1e-9)
    assert five != pytest.approx(two, rel=1e-9)  # five draws: another estimate
    np.testing.assert_allclose(-model.score_samples(val).mean(), five, rtol=1e-9)


# --------------------------------------------------------------------------- sampling
def _assert_standard_normal(z: np.ndarray) -> None:
    for j in range(z.shape[1]):
        assert stats.kstest(z[:, j], "norm").pvalue > 1e-3, j


@pytest.mark.parametrize("cls", [RealNVP, MAF])
def test_samples_pushed_back_through_the_inverse_are_standard_normal(cls):
    data = ptheta.datasets.load("toy2d-moons")
    model = _fit(cls(16, n_layers=4, epochs=2, **FAST), data.train.x[:2000])
    samples = model.sample(2000, random_state=0)
    _assert_standard_normal(model.embed(samples))


def test_glow_sampling_inverts_its_density_on_images():
    spec = DataSpec("continuous", (2, 4, 4))
    model = Glow(8, n_steps=2, n_levels=2, **FAST)
    module = model._build_module(spec, None).double().eval()  # eval: no actnorm init
    with torch.no_grad():  # random weights: the identity at init would test nothing
        for p in module.parameters():
            p.add_(0.2 * torch.randn_like(p))
    x = module.sample(1500, generator=torch.Generator().manual_seed(0))
    assert x.shape == (1500, 2, 4, 4)
    with torch.no_grad():
        z = module.embed(x).numpy()
    _assert_standard_normal(z)
    with torch.no_grad():
        back = module.transform.inverse(torch.as_tensor(z))[0]
    torch.testing.assert_close(back, x, atol=1e-8, rtol=1e-8)


@pytest.mark.parametrize("cls", [RealNVP, MAF, Glow])
def test_whole_flows_invert_exactly_on_digits(cls):
    data = ptheta.datasets.load("digits")
    train = Split(data.train.x[:100], None, data.spec)  # the spec says (64,) is (1, 8, 8)
    model = _fit(cls(8, epochs=1, n_dequant_samples=2, **FAST), train)
    module = model.module
    with torch.no_grad():
        x = torch.as_tensor(data.test.x[:8], dtype=torch.float64) + 0.5
        z, logdet = module.transform(x)
        back, logdet_inv = module.transform.inverse(z)
    torch.testing.assert_close(back, x, atol=1e-8, rtol=1e-8)
    torch.testing.assert_close(logdet_inv, -logdet)
    steps = model.transform_steps(data.test.x[:8])
    np.testing.assert_allclose(steps[0], x.numpy())
    np.testing.assert_allclose(steps[-1], model.embed(data.test.x[:8]))
    assert len(steps) == len(module.transform.layers) + 1


# --------------------------------------------------------------------------- bad input
def test_glow_refuses_data_that_is_not_image_shaped():
    x = np.random.default_rng(0).integers(2, size=(50, 6))
    with pytest.raises(DataError, match="glow needs image-shaped data"):
        _fit(Glow(8, epochs=1, **FAST), x)
    with pytest.raises(DataError, match="does not model continuous"):
        _fit(Glow(8, epochs=1, **FAST), np.random.default_rng(0).normal(size=(50, 1, 2, 2)))


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"coupling": "multiplicative"}, "coupling"),
        ({"norm": "layer"}, "norm"),
        ({"base": "mixture"}, "base"),
        ({"dequantization": "gaussian"}, "dequantization"),
        ({"n_dequant_samples": 0}, "n_dequant_samples"),
        ({"logit_alpha": 0.5}, "logit_alpha"),
        ({"hidden": 0}, "hidden"),
        ({"n_layers": 1.5}, "n_layers"),
    ],
)
def test_bad_parameters_are_one_clear_error(params, match):
    x = np.random.default_rng(0).normal(size=(30, 2))
    with pytest.raises(ParameterError, match=match):
        _fit(RealNVP(**{"epochs": 1, **FAST, **params}), x)


def test_bad_input_to_fitted_flows():
    x = np.random.default_rng(0).normal(size=(60, 2))
    model = _fit(RealNVP(8, n_layers=2, epochs=1, **FAST), x)
    bad = x[:3].copy()
    bad[0, 0] = np.nan
    with pytest.raises(DataError, match="NaN"):
        model.score_samples(bad)
    with pytest.raises(DataError, match="NaN"):
        model.embed(bad)
    with pytest.raises(CapabilityError, match="not class-conditional; omit y"):
        model.embed(x, y=np.zeros(60))
    labels = np.arange(60) % 2
    conditional = _fit(RealNVP(8, n_layers=2, epochs=1, class_conditional=True, **FAST), x, labels)
    with pytest.raises(DataError, match="class_conditional=True: pass y"):
        conditional.embed(x)
    assert conditional.embed(x, y=1).shape == (60, 2)
    with pytest.raises(DataError, match="with class_conditional=True needs fit"):
        _fit(RealNVP(8, epochs=1, class_conditional=True, **FAST), x)
