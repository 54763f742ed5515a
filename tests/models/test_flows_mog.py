"""The MADE MoG base of the flows (issue 19): maf's default on discrete data, exact and
normalised on continuous data, per class, recorded in the run and reloaded."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch
from scipy import stats

import ptheta
from ptheta.data.spec import DataSpec, Split
from ptheta.models.flows import MAF, RealNVP
from ptheta.nn.flow_density import MOG_COMPONENTS, MOG_WEIGHTS
from ptheta.nn.made_mixture import MADEMixture
from ptheta.runs.store import load_run, save_run

FAST = {"dtype": "float64", "device": "cpu", "batch_size": 128, "lr": 1e-2}


def _fit(model, *args):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model.fit(*args)


def _digits(n: int = 80) -> Split:
    data = ptheta.datasets.load("digits")
    return Split(data.train.x[:n], None, data.spec)


def _grid(half: float, n: int) -> tuple[np.ndarray, float]:
    t = np.linspace(-half, half, n)
    gx, gy = np.meshgrid(t, t, indexing="ij")
    return np.column_stack([gx.ravel(), gy.ravel()]), (t[1] - t[0]) ** 2


def test_maf_takes_the_mog_base_on_discrete_data_only():
    assert MAF().base == "auto" and RealNVP().base == "normal"
    discrete = _fit(MAF(8, n_layers=2, epochs=1, n_dequant_samples=2, **FAST), _digits())
    assert discrete.base_ == "mog" and isinstance(discrete.module.base_net, MADEMixture)
    x = np.random.default_rng(0).normal(size=(100, 2))
    continuous = _fit(MAF(8, n_layers=2, epochs=1, **FAST), x)
    assert continuous.base_ == "normal" and continuous.module.base_net is None
    other = _fit(
        RealNVP(8, n_layers=2, epochs=1, base="auto", n_dequant_samples=2, **FAST), _digits()
    )
    assert other.base_ == "normal"  # "auto" is the mog for maf only
    assert MAF(8, base="normal").build_module(_digits().spec).base_net is None


@pytest.mark.parametrize("cls", [MAF, RealNVP])
def test_a_fitted_mog_base_density_integrates_to_one(cls):
    data = ptheta.datasets.load("toy2d-moons")
    model = _fit(cls(16, n_layers=2, epochs=3, base="mog", **FAST), data.train.x[:1500])
    assert model.base_ == "mog" and model.likelihood_ == "exact"
    points, area = _grid(12.0, 401)
    mass = np.exp(model.score_samples(points)).sum() * area
    assert mass == pytest.approx(1.0, abs=0.01)
    # sampling goes through the base's own sampler, then the inverse of the flow
    samples = model.sample(500, random_state=0)
    assert samples.shape == (500, 2) and np.isfinite(samples).all()
    np.testing.assert_array_equal(samples, model.sample(500, random_state=0))


def test_the_mog_base_is_conditioned_on_the_class():
    rng = np.random.default_rng(0)
    y = rng.integers(2, size=600)
    x = rng.normal(size=(600, 2)) * 0.5 + np.where(y[:, None] == 1, 2.0, -2.0)
    model = _fit(MAF(16, n_layers=1, epochs=20, base="mog", class_conditional=True, **FAST), x, y)
    points, area = _grid(12.0, 301)
    for label in (0, 1):
        mass = np.exp(model._log_prob(points, label)).sum() * area
        assert mass == pytest.approx(1.0, abs=0.01)
    assert (model.predict(x) == y).mean() > 0.95
    ones, zeros = (model.sample(200, y=c, random_state=0).mean() for c in (1, 0))
    assert ones - zeros > 2.0
    # the base itself reads the class (not only the MADE layers above it)
    module = model.module
    z = torch.randn(50, 2, dtype=torch.float64)
    with torch.no_grad():
        per_class = [module.base_log_prob(z, module._context(torch.full((50,), c))) for c in (0, 1)]
    assert float((per_class[0] - per_class[1]).abs().max()) > 1e-3


def test_partial_flows_start_from_the_mog_base():
    """After k = 0 sampling layers a draw is a base draw: its density is the base's and
    partial_sample draws from it (grid integrals of x and x² against the draws)."""
    data = ptheta.datasets.load("toy2d-8gaussians")
    model = _fit(MAF(16, n_layers=2, epochs=3, base="mog", **FAST), data.train.x[:1500])
    points, area = _grid(12.0, 301)
    for k in (0, model.n_flow_layers()):
        weight = np.exp(model.partial_log_prob(points, k)) * area
        assert weight.sum() == pytest.approx(1.0, abs=0.01)
        draws = model.partial_sample(20_000, k, random_state=0)
        for f in (lambda v: v, lambda v: v**2):
            exact = (weight[:, None] * f(points)).sum(0)
            values = f(draws)
            error = 4 * values.std(0) / np.sqrt(len(values)) + 0.02
            assert np.all(np.abs(values.mean(0) - exact) < error), (k, exact, values.mean(0))


def test_the_base_is_in_the_run_and_reloads(tmp_path):
    split = _digits()
    model = _fit(MAF(8, n_layers=2, epochs=1, n_dequant_samples=2, **FAST), split)
    save_run(model, tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["params"]["base"] == "auto" and config["fitted"]["base_"] == "mog"
    assert config["fitted"]["base_hidden_"] == [1024] and config["fitted"]["base_components_"] == 10
    loaded = load_run(tmp_path)
    assert isinstance(loaded.module.base_net, MADEMixture)
    np.testing.assert_array_equal(loaded.score_samples(split.x), model.score_samples(split.x))
    np.testing.assert_array_equal(loaded.sample(3, random_state=1), model.sample(3, random_state=1))


def test_a_run_saved_before_the_mog_base_reloads_with_its_gaussian(tmp_path):
    """A maf run of an earlier version: base="normal" in its parameters, no base_."""
    split = _digits()
    old = _fit(MAF(8, n_layers=2, epochs=1, base="normal", n_dequant_samples=2, **FAST), split)
    del old.base_
    save_run(old, tmp_path)
    loaded = load_run(tmp_path)
    assert loaded.module.base_net is None
    np.testing.assert_array_equal(loaded.score_samples(split.x), old.score_samples(split.x))


@pytest.mark.parametrize(
    ("kind", "shape", "k", "components"),
    [("binary", (20,), 2, 3), ("categorical", (6,), 3, 4), ("categorical", (6,), 17, 10),
     ("continuous", (2,), None, 10)],
)  # fmt: skip
def test_the_mog_base_is_one_wide_layer_with_a_component_per_level(kind, shape, k, components):
    """One hidden layer of MOG_HIDDEN units, whatever ``hidden``; K + 1 Gaussians per
    conditional on data of K levels (at most MOG_COMPONENTS), MOG_COMPONENTS otherwise."""
    spec = DataSpec(kind, shape, n_categories=k) if k else DataSpec(kind, shape)
    base = MAF(8, n_layers=1, base="mog").build_module(spec).base_net
    widths = [layer.out_features for layer in base.layers[:-1]]
    assert widths == [1024] and base.mixture.n_components == components
    assert base.layers[-1].out_features == shape[0] * 3 * components


@pytest.mark.parametrize(
    ("shape", "k", "width"), [((3, 32, 32), 256, 91), ((784,), 2, 1024), ((20000,), 2, 64)]
)
def test_the_mog_base_narrows_on_wide_data(shape, k, width):
    """Its output layer (D · 3K units) holds at most MOG_WEIGHTS weights, with at least 64
    units."""
    spec = DataSpec("categorical" if k > 2 else "binary", shape, n_categories=k)
    hidden, components = MAF()._mog_base(spec)
    assert hidden == [width] and components == min(k + 1, MOG_COMPONENTS)
    assert width == 64 or width * spec.n_dims * 3 * components <= MOG_WEIGHTS


def test_a_mog_run_saved_before_its_shape_was_recorded_reloads_with_it(tmp_path, monkeypatch):
    """A MoG base fitted before base_hidden_ / base_components_ existed had two layers of
    ``hidden`` units and 10 components: its run reloads into that network, same scores."""
    split = _digits()
    monkeypatch.setattr(MAF, "_mog_base", lambda self, spec: ([8, 8], 10))
    old = _fit(MAF(8, n_layers=1, epochs=1, n_dequant_samples=2, **FAST), split)
    monkeypatch.undo()
    del old.base_hidden_, old.base_components_
    save_run(old, tmp_path)
    loaded = load_run(tmp_path)
    widths = [layer.out_features for layer in loaded.module.base_net.layers[:-1]]
    assert widths == [8, 8] and loaded.module.base_net.mixture.n_components == 10
    np.testing.assert_array_equal(loaded.score_samples(split.x), old.score_samples(split.x))


def test_the_mog_base_holds_modes_that_a_gaussian_base_cannot():
    """x1 from two well-separated modes, x2 = x1 + noise: one affine MADE layer over a
    Gaussian base gives x1 a unimodal density; over the MADE MoG it matches the data's
    exact density (its cross-entropy is within Monte-Carlo error of the entropy)."""
    rng = np.random.default_rng(0)
    n = 4000
    x1 = rng.choice([-2.0, 2.0], size=n) + 0.3 * rng.normal(size=n)
    x = np.column_stack([x1, x1 + 0.3 * rng.normal(size=n)])
    train, test = x[:3000], x[3000:]
    log_p1 = np.logaddexp(
        stats.norm.logpdf(test[:, 0], -2, 0.3), stats.norm.logpdf(test[:, 0], 2, 0.3)
    )
    exact = -(log_p1 - np.log(2) + stats.norm.logpdf(test[:, 1], test[:, 0], 0.3))
    nll = {}
    for base in ("normal", "mog"):
        model = _fit(MAF(32, n_layers=1, epochs=40, base=base, **FAST), train)
        nll[base] = -model.score_samples(test)
    assert nll["mog"].mean() < nll["normal"].mean() - 0.3
    gap = nll["mog"] - exact  # E[gap] = KL(data || model) ≥ 0
    assert gap.mean() < 0.05 + 3 * gap.std() / np.sqrt(len(gap))
