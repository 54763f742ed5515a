"""score-sde (ptheta/models/score_sde.py): denoising score matching finds the analytic score,
the samplers draw the target with the analytic score, the likelihood is in the right
units, class-conditional sampling, the score field, and clear errors."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from scipy.spatial.distance import pdist
from scipy.stats import norm

import ptheta
from ptheta.data.spec import DataSpec, Split
from ptheta.errors import CapabilityError, DataError, ParameterError
from ptheta.models.score_sde import EPS, ScoreSDE, ScoreSDEDensity
from ptheta.nn.ode import ODESolver
from ptheta.nn.sde import VESDE, VPSDE, SubVPSDE
from ptheta.runs.store import load_run, save_run

# A 2-D Gaussian mixture in model units; under a linear SDE p_t is again a mixture, with
# means m(t) μ_k and variances m(t)² s_k² + std(t)²: its score in closed form
MEANS = torch.tensor([[-1.5, 0.0], [1.5, 0.5]], dtype=torch.float64)
STDS = torch.tensor([0.5, 0.4], dtype=torch.float64)
WEIGHTS = torch.tensor([0.4, 0.6], dtype=torch.float64)


def draw_mixture(n: int, gen: torch.Generator) -> torch.Tensor:
    k = torch.multinomial(WEIGHTS, n, replacement=True, generator=gen)
    return MEANS[k] + STDS[k, None] * torch.randn(n, 2, dtype=torch.float64, generator=gen)


def mixture_score(x: torch.Tensor, t, sde) -> torch.Tensor:
    m, std = sde.kernel(torch.as_tensor(t, dtype=torch.float64))
    var = m**2 * STDS**2 + std**2  # (K,)
    diff = x[:, None, :] - m * MEANS[None]  # (N, K, 2)
    log_c = WEIGHTS.log() - 0.5 * (diff**2).sum(-1) / var - torch.log(2 * math.pi * var)
    r = torch.softmax(log_c, 1)
    return -(r[..., None] * diff / var[None, :, None]).sum(1)


class AnalyticScore(ScoreSDEDensity):
    """The module with its network replaced by the mixture's exact score."""

    def score(self, z, t, y=None, guidance=0.0):
        return mixture_score(z, t, self.sde)


# --------------------------------------------------------------------------- training
# bounds on the relative squared error E‖s_θ − ∇ log p_t‖² / E‖∇ log p_t‖² after 200 steps
# (measured: 0.034, 0.019, 0.0016 for VP with uniform times, 0.082, 0.015, 0.0019 with mixed
# times, 0.038 for VE; a loss whose target is 0.8 z instead of z gives 0.097, 0.044, 0.038)
@pytest.mark.parametrize(
    ("sde", "time_sampling", "bounds"),
    [
        (VPSDE(), "uniform", {0.05: 0.06, 0.2: 0.03, 0.5: 0.005}),
        (VPSDE(), "mixed", {0.05: 0.15, 0.2: 0.03, 0.5: 0.005}),
        (VESDE(0.01, 5.0), "mixed", {0.5: 0.06}),
    ],
    ids=["vp-uniform", "vp-mixed", "ve-mixed"],
)
def test_denoising_score_matching_recovers_the_analytic_score(sde, time_sampling, bounds):
    torch.manual_seed(0)
    module = ScoreSDEDensity((2,), sde=sde, hidden=32, n_blocks=1, time_sampling=time_sampling)
    module = module.double()
    opt = torch.optim.Adam(module.parameters(), lr=1e-2)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, 200)
    gen = torch.Generator().manual_seed(0)
    for _ in range(200):
        loss = module.loss(draw_mixture(256, gen)).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    untrained = ScoreSDEDensity((2,), sde=sde, hidden=32, n_blocks=1).double()
    x0 = draw_mixture(2000, torch.Generator().manual_seed(1))
    noise = torch.randn(x0.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    for t, bound in bounds.items():
        m, std = sde.kernel(t)
        xt = m * x0 + std * noise
        truth = mixture_score(xt, t, sde)
        with torch.no_grad():
            err = ((module.score(xt, t) - truth) ** 2).sum(1).mean() / (truth**2).sum(1).mean()
            err0 = ((untrained.score(xt, t) - truth) ** 2).sum(1).mean() / (truth**2).sum(1).mean()
        assert float(err) < bound, (t, float(err))
        # better than the untrained model (its analytic part alone) everywhere, and much
        # better where that part alone is poor
        assert float(err) < float(err0), (t, float(err), float(err0))
        if err0 > 0.1:
            assert float(err) < 0.2 * float(err0), (t, float(err), float(err0))


# --------------------------------------------------------------------------- samplers
TARGET_MEAN = (WEIGHTS[:, None] * MEANS).sum(0)
TARGET_VAR = (WEIGHTS[:, None] * (MEANS**2 + STDS[:, None] ** 2)).sum(0) - TARGET_MEAN**2


@pytest.mark.parametrize("sampler", ["euler-maruyama", "pc", "ode"])
@pytest.mark.parametrize("sde", [VPSDE(), SubVPSDE(), VESDE(0.01, 10.0)], ids=repr)
def test_samplers_with_the_analytic_score_draw_the_target(sde, sampler):
    module = AnalyticScore(
        (2,),
        sde=sde,
        hidden=4,
        sampler=sampler,
        sampling_steps=150,
        solver=ODESolver("rk4", steps=50),
    ).double()
    n = 3000
    x = module.sample(n, generator=torch.Generator().manual_seed(0))
    assert x.shape == (n, 2) and torch.isfinite(x).all()
    se = (TARGET_VAR / n).sqrt()
    assert torch.all((x.mean(0) - TARGET_MEAN).abs() < 4 * se + 0.02), x.mean(0)
    assert torch.all((x.var(0) / TARGET_VAR - 1).abs() < 0.1), x.var(0)
    # the mixture weights: the share of samples in the left mode
    left, p = float((x[:, 0] < 0).double().mean()), float(WEIGHTS[0])
    assert abs(left - p) < 4 * math.sqrt(p * (1 - p) / n) + 0.01


# --------------------------------------------------------------------------- estimator
def _data(kind: str, n: int = 160):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, n)
    if kind == "continuous":
        x = rng.normal(size=(n, 2)) * 0.4 + np.where(y[:, None] == 1, [2.0, 2.0], [-2.0, 0.0])
        return Split(x, y, DataSpec("continuous", (2,)))
    x = np.clip(np.where(y[:, None] == 1, 3, 1) + rng.integers(-1, 2, (n, 4)), 0, 4)
    return Split(x, y, DataSpec("categorical", (4,), 5))


def _fit(kind: str = "continuous", labels: bool = False, **params) -> ScoreSDE:
    split = _data(kind)
    model = ScoreSDE(**{**ScoreSDE.quick_params, **params})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model.fit(split, split.y if labels else None)


@pytest.mark.parametrize("kind", ["continuous", "categorical"])
def test_every_sampler_gives_examples_of_the_data_kind(kind):
    model = _fit(kind, sde="ve")
    spec = model.fitted_spec
    draws = {
        "ode": model.sample_ode(5, random_state=0),
        "euler-maruyama": model.sample_euler_maruyama(5, 10, random_state=0),
        "pc": model.sample_pc(5, 10, corrector_steps=2, snr=0.1, random_state=0),
    }
    for name, x in draws.items():
        assert x.shape == (5, *spec.event_shape), name
        if spec.is_discrete:
            assert x.dtype == np.int64 and x.min() >= 0 and x.max() <= 4, name
        else:
            assert x.dtype == np.float64 and np.isfinite(x).all(), name
    np.testing.assert_array_equal(
        draws["pc"], model.sample_pc(5, 10, corrector_steps=2, snr=0.1, random_state=0)
    )
    np.testing.assert_array_equal(model.sample(5, random_state=0), draws["ode"])
    assert model.module.sampler == "ode"  # the explicit methods restore the module's own
    # the sampler parameter picks what sample() runs
    em = _fit(kind, sde="ve", sampler="euler-maruyama", sampling_steps=10)
    np.testing.assert_array_equal(em.sample(5, random_state=0), draws["euler-maruyama"])


def test_class_conditional_sampling_and_guidance():
    model = _fit(
        labels=True,
        class_conditional=True,
        epochs=30,
        hidden=32,
        ode_steps=8,
        validation_fraction=0,
    )
    centres = {0: np.array([-2.0, 0.0]), 1: np.array([2.0, 2.0])}
    for label, centre in centres.items():
        x = model.sample_ode(200, y=label, random_state=0)
        assert np.linalg.norm(x.mean(0) - centre) < 0.6, (label, x.mean(0))
        guided = model.sample_ode(200, y=label, guidance=2.0, random_state=0)
        assert not np.allclose(guided, x)  # guidance changes sampling ...
    # ... and never the likelihood
    split = _data("continuous")
    before = model.score_samples(split.x[:5])
    model.module.guidance = 3.0  # what a model fitted with guidance=3 samples with
    np.testing.assert_array_equal(model.score_samples(split.x[:5]), before)
    model.module.guidance = 0.0
    assert (model.predict(split.x[:40]) == split.y[:40]).mean() > 0.9


def test_nll_summary_states_how_the_likelihood_was_computed():
    model = _fit(ode_solver="dopri5", ode_rtol=1e-4, ode_atol=1e-4)
    x = _data("continuous").x[:8]
    summary = model.nll_summary(x)
    assert summary["likelihood"] == "exact" and summary["units"] == "continuous"
    assert summary["ode_solver"] == "dopri5" and summary["ode_rtol"] == 1e-4
    assert summary["ode_atol"] == 1e-4 and summary["nfe"] > 0 and (summary["nfe"] - 2) % 6 == 0
    assert summary["divergence"] == "exact" and summary["sde"] == "vp"
    assert summary["t_data"] == EPS and summary["mc_std_err"] == 0.0
    wide = np.random.default_rng(0).normal(size=(60, 20))
    model = ScoreSDE(**ScoreSDE.quick_params).fit(wide)  # auto: Hutchinson above 16 dims
    summary = model.nll_summary(wide[:4])
    assert model.likelihood_ == "estimate" and summary["divergence"] == "hutchinson"
    assert summary["n_probes"] == 2 and summary["ode_steps"] == 4 and summary["mc_std_err"] > 0


def _zero_network(model: ScoreSDE) -> ScoreSDE:
    """Make the model its analytic part alone: N(0, I) data in model units."""
    last = model.module.net.net.out
    torch.nn.init.zeros_(last.weight)
    torch.nn.init.zeros_(last.bias)
    return model


@pytest.mark.parametrize(("sde", "tol"), [("vp", 1e-6), ("subvp", 1e-3)])
def test_likelihood_units_through_the_standardisation(sde, tol):
    # with f_θ = 0 the model is N(0, I) in model units, i.e. N(shift, diag(scale²)) in data
    # units (exactly for VP, whose flow then stands still; sub-VP's prior is off by 4e-5)
    model = _zero_network(_fit(sde=sde, ode_solver="dopri5", ode_rtol=1e-7, ode_atol=1e-7))
    x = _data("continuous").x[:7] * [1.0, 3.0]
    truth = norm.logpdf(x, model.input_shift_, model.input_scale_).sum(1)
    np.testing.assert_allclose(model.score_samples(x), truth, rtol=0, atol=tol)


def test_score_field_is_the_score_in_data_units():
    model = _zero_network(_fit())
    x = _data("continuous").x[:6]
    shift, scale = model.input_shift_, model.input_scale_
    expected = -(x - shift) / scale**2  # ∇ₓ log N(x; shift, scale²)
    np.testing.assert_allclose(model.score_field(x), expected, rtol=1e-9)
    # the gradient of the model's own log-density, by central differences
    h = 1e-5
    for j in range(2):
        step = np.zeros(2)
        step[j] = h
        fd = (model.score_samples(x + step) - model.score_samples(x - step)) / (2 * h)
        np.testing.assert_allclose(model.score_field(x)[:, j], fd, rtol=1e-4, atol=1e-6)
    # VE at t = 0.5: the data (unit variance in model units) plus σ(0.5)² of noise
    ve = _zero_network(_fit(sde="ve"))
    sigma = float(VESDE(0.01, ve.sigma_max_).sigma(0.5))
    z = (x - ve.input_shift_) / ve.input_scale_
    expected = -z / (1 + sigma**2) / ve.input_scale_
    np.testing.assert_allclose(ve.score_field(x, 0.5), expected, rtol=1e-9)


def test_score_field_of_discrete_data_is_per_unit_level():
    model = _zero_network(_fit("categorical"))
    x = _data("categorical").x[:5]
    k = 5
    z = (2 * (x + 0.5) / k - 1).astype(np.float64)  # the cell centres in model units
    np.testing.assert_allclose(model.score_field(x), -z * 2 / k, rtol=1e-9)
    assert model.capabilities().score_field


def test_ve_sigma_max_is_the_largest_distance_in_model_units(tmp_path):
    model = _fit(sde="ve")
    x = _data("continuous").x
    z = (x - x.mean(0)) / x.std(0)
    assert model.sigma_max_ == pytest.approx(pdist(z).max(), rel=1e-9)
    assert model.module.sde.prior_std == model.sigma_max_
    save_run(model, tmp_path / "run", data={"name": "synthetic"})
    loaded = load_run(tmp_path / "run")
    assert loaded.sigma_max_ == model.sigma_max_
    np.testing.assert_array_equal(loaded.score_samples(x[:4]), model.score_samples(x[:4]))
    assert _fit(sde="ve", sigma_max=12.0).sigma_max_ == 12.0
    levels = _fit("categorical", sde="ve")
    centres = (2 * _data("categorical").x + 1) / 5 - 1
    assert levels.sigma_max_ == pytest.approx(pdist(centres).max(), rel=1e-9)
    assert ScoreSDE(sde="ve").build_module(DataSpec("continuous", (4,))).sde.prior_std == 4.0


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"beta_min": 5.0, "beta_max": 1.0}, "beta_max=1.0 must be at least beta_min"),
        ({"sde": "ve", "sigma_min": 0.5, "sigma_max": 0.2}, "sigma_max=0.2 must exceed"),
        ({"sde": "ve", "sigma_min": 50.0}, "sigma_min=50.0 must be below the sigma_max"),
        ({"architecture": "unet"}, "needs image-shaped data"),
        ({"guidance": 1.0}, "needs class_conditional=True"),
        ({"sampler": "sde"}, "score-sde: sampler must be .ode."),
        ({"corrector_steps": -1}, "score-sde: corrector_steps must be"),
    ],
)
def test_bad_parameters_are_one_clear_error(params, match):
    with pytest.raises(ParameterError, match=match):
        _fit(**params)


def test_bad_method_arguments_are_clear_errors():
    model = _fit()
    x = _data("continuous").x[:3]
    with pytest.raises(ParameterError, match="t must be"):
        model.score_field(x, t=0.0)
    with pytest.raises(ParameterError, match="t must be"):
        model.score_field(x, t=1.5)
    with pytest.raises(CapabilityError, match="not class-conditional"):
        model.score_field(x, y=0)
    with pytest.raises(CapabilityError, match="guidance must be 0"):
        model.sample_ode(2, guidance=1.0)
    with pytest.raises(ParameterError, match="steps must be"):
        model.sample_euler_maruyama(2, 0)
    with pytest.raises(ParameterError, match="snr must be"):
        model.sample_pc(2, 5, snr=0.0)
    with pytest.raises(DataError, match="shape"):
        model.score_field(x[:, :1])
    conditional = _fit(labels=True, class_conditional=True, p_uncond=0.0)
    with pytest.raises(DataError, match="p_uncond=0"):
        conditional.score_field(x)
    assert conditional.score_field(x, y=1).shape == x.shape


def test_registry_and_capabilities():
    model = ptheta.make("score-sde")
    caps = model.capabilities()
    assert model.family == "score-based" and caps.likelihood == "exact"
    assert caps.score_field and caps.sample_paths == "ode" and caps.dequantises_discrete
    assert caps.can_condition and caps.trains_in_steps
    for preset in ("quick", "explorer", "explorer-quick"):
        ScoreSDE(**ScoreSDE.preset(preset)).check_params()
    assert ScoreSDE.preset("demo") is None  # ddpm stands for diffusion in `ptheta demo`
