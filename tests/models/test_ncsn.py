"""NCSN: denoising score matching against analytic scores, annealed Langevin against exact
moments, the units of the score field, the anomaly score, paths, and what the model refuses."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

import ptheta
from ptheta.data.spec import DataSpec, Split
from ptheta.errors import CapabilityError, ParameterError
from ptheta.eval.anomaly import anomaly_scores
from ptheta.models.ncsn import NCSN, ScoreNetwork, annealed_langevin, largest_distance, sigma_ladder
from ptheta.nn.noise import SCORE_SEED, example_keys, keyed_normal

F64 = torch.float64
QUICK = {**NCSN.quick_params, "validation_fraction": 0.0}


def _mixture_score(x: torch.Tensor, sigma, weights, means, stds) -> torch.Tensor:
    """∇ log of Σ_k w_k N(μ_k, (s_k² + σ²) I) at x (N, D): a mixture of isotropic Gaussians
    smoothed by N(0, σ² I)."""
    var = stds**2 + sigma**2  # (K,)
    diff = x[:, None, :] - means[None]  # (N, K, D)
    log_c = torch.log(weights) - (diff**2).sum(-1) / (2 * var) - x.shape[1] / 2 * torch.log(var)
    resp = torch.softmax(log_c, dim=1)  # (N, K)
    return (resp[..., None] * (-diff / var[None, :, None])).sum(1)


def _draw_mixture(n, sigma, weights, means, stds, generator) -> torch.Tensor:
    """n points of the same smoothed mixture."""
    k = torch.multinomial(weights, n, replacement=True, generator=generator)
    std = torch.sqrt(stds[k] ** 2 + sigma**2)[:, None]
    return means[k] + std * torch.randn(n, means.shape[1], generator=generator, dtype=F64)


def _fit(x, **params) -> NCSN:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return NCSN(**{**QUICK, **params}).fit(x)


# --------------------------------------------------------------------------- the maths
def test_denoising_score_matching_recovers_the_analytic_score_at_every_level():
    """A tiny network trained 400 steps of DSM on a 1-D two-component mixture learns the
    score of the mixture smoothed by each of the ladder's σ: E|s_θ − s| / E|s| < 0.3 at
    every level and < 0.2 on average, over points drawn from p_σ (the untrained network,
    the score of N(0, 1 + σ²), is off by 0.2 at σ_1 and by 0.75 or more below)."""
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    weights, means = torch.tensor([0.4, 0.6], dtype=F64), torch.tensor([[-1.0], [0.8]], dtype=F64)
    stds = torch.tensor([0.3, 0.4], dtype=F64)
    data = _draw_mixture(4000, 0.0, weights, means, stds, gen)
    net = ScoreNetwork((1,), sigmas=sigma_ladder(1.0, 0.1, 4), hidden=32, n_blocks=1, dtype=F64)

    def errors() -> np.ndarray:
        out = []
        with torch.no_grad():
            for sigma in net.sigmas:
                points = _draw_mixture(2000, sigma, weights, means, stds, torch.Generator())
                truth = _mixture_score(points, sigma, weights, means, stds)
                diff = net.score(points, sigma) - truth
                out.append(float(diff.abs().mean() / truth.abs().mean()))
        return np.array(out)

    assert errors().mean() > 0.6  # the untrained network, the score of N(0, 1 + σ²)
    steps = 400
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    decay = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: 1 - i / steps)
    for _ in range(steps):
        loss = net.loss(data[torch.randint(0, len(data), (256,), generator=gen)]).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        decay.step()
    net.eval()
    err = errors()
    assert err.max() < 0.3 and err.mean() < 0.2, err


def test_validation_loss_is_the_mean_over_levels_and_depends_on_the_example_alone():
    net = ScoreNetwork((3,), sigmas=sigma_ladder(2.0, 0.1, 5), hidden=8, dtype=F64).eval()
    x = torch.randn(6, 3, generator=torch.Generator().manual_seed(0), dtype=F64)
    with torch.no_grad():
        batch = net.loss(x)
        alone = torch.cat([net.loss(x[i : i + 1]) for i in range(6)])
        torch.testing.assert_close(alone, batch)
        torch.testing.assert_close(net.loss(x.flip(0)).flip(0), batch)
        # untrained: σ s = −σ x̃/(1 + σ²), so each level's error has a closed form given z
        keys = example_keys(x, SCORE_SEED)
        expected = torch.zeros(6, dtype=F64)
        for i, sigma in enumerate(net.sigmas):
            z = keyed_normal(keys, i, (3,))
            expected += ((-sigma * (x + sigma * z) / (1 + sigma**2) + z) ** 2).mean(1) / 5
        torch.testing.assert_close(batch, expected)


def _gaussian_recursion(mean, cov, start_std, sigmas, steps, step_size, denoise):
    """Exact mean and covariance after annealed Langevin on N(mean, cov) from N(0, start² I):
    each step x ← A x + b + √α z is linear, so m ← A m + b and C ← A C Aᵀ + α I."""
    d = len(mean)
    eye = torch.eye(d, dtype=F64)
    m, c = torch.zeros(d, dtype=F64), start_std**2 * eye
    for sigma in sigmas:
        precision = torch.linalg.inv(cov + sigma**2 * eye)
        alpha = step_size * (sigma / sigmas[-1]) ** 2
        a = eye - alpha / 2 * precision
        for _ in range(steps):
            m = a @ m + alpha / 2 * precision @ mean
            c = a @ c @ a.T + alpha * eye
    if denoise:
        precision = torch.linalg.inv(cov + sigmas[-1] ** 2 * eye)
        b = eye - sigmas[-1] ** 2 * precision
        m = b @ m + sigmas[-1] ** 2 * precision @ mean
        c = b @ c @ b.T
    return m, c


@pytest.mark.parametrize("denoise", [True, False])
def test_annealed_langevin_matches_the_exact_moments_of_the_gaussian_chain(denoise):
    """On a Gaussian target the sampler's output moments equal the linear recursion's,
    within 5 Monte-Carlo standard errors (a wrong α_i, drift factor, noise scale or final
    step moves them by far more); the target's own moments are not reached in so few steps."""
    mean = torch.tensor([1.0, -2.0], dtype=F64)
    cov = torch.tensor([[1.0, 0.6], [0.6, 0.5]], dtype=F64)
    sigmas = torch.tensor(sigma_ladder(4.0, 0.2, 5))
    steps, step_size, start, n = 10, 0.4 * 0.2**2, 4.0, 20_000
    chol = torch.linalg.cholesky(cov)

    def score(x, sigma):
        return -torch.linalg.solve(cov + sigma**2 * torch.eye(2, dtype=F64), (x - mean).T).T

    gen = torch.Generator().manual_seed(0)
    x0 = start * torch.randn(n, 2, generator=gen, dtype=F64)
    x = annealed_langevin(score, x0, sigmas, steps, step_size, gen, denoise=denoise)
    m, c = _gaussian_recursion(mean, cov, start, sigmas, steps, step_size, denoise)
    se_mean = torch.sqrt(torch.diag(c) / n)
    assert torch.all((x.mean(0) - m).abs() < 5 * se_mean)
    se_cov = torch.sqrt((c**2 + torch.outer(torch.diag(c), torch.diag(c))) / n)  # Wishart
    assert torch.all((torch.cov(x.T) - c).abs() < 5 * se_cov)
    assert not torch.allclose(c, chol @ chol.T, rtol=0.01)  # the recursion is not the target


def test_annealed_langevin_with_the_analytic_score_draws_the_mixture():
    """Mixture 0.3 N((−1.5, 0), 0.5²) + 0.7 N((1.5, 0.5), 0.4²): with 10 levels from 5 to
    0.05 and 100 steps each, the samples' mean is within 0.1, the covariance within 0.1
    per entry and the weight of the right component within 0.04 (4 standard errors) of
    the target's."""
    weights = torch.tensor([0.3, 0.7], dtype=F64)
    means = torch.tensor([[-1.5, 0.0], [1.5, 0.5]], dtype=F64)
    stds = torch.tensor([0.5, 0.4], dtype=F64)
    mean = (weights[:, None] * means).sum(0)
    cov = sum(
        w * (s**2 * torch.eye(2, dtype=F64) + torch.outer(mu - mean, mu - mean))
        for w, mu, s in zip(weights, means, stds, strict=True)
    )
    gen = torch.Generator().manual_seed(0)
    x0 = math.sqrt(1 + 5.0**2) * torch.randn(2000, 2, generator=gen, dtype=F64)

    def score(x, sigma):
        return _mixture_score(x, sigma, weights, means, stds)

    x = annealed_langevin(score, x0, sigma_ladder(5.0, 0.05, 10), 100, 0.2 * 0.05**2, gen)
    assert torch.all((x.mean(0) - mean).abs() < 0.1), x.mean(0)
    assert torch.all((torch.cov(x.T) - cov).abs() < 0.1), torch.cov(x.T)
    assert abs(float((x[:, 0] > 0).double().mean()) - 0.7) < 0.04


def test_annealed_langevin_frames_run_from_the_start_to_the_end():
    def score(x, sigma):
        return -x / (1 + sigma**2)

    x0 = torch.randn(5, 3, generator=torch.Generator().manual_seed(1), dtype=F64)
    end = annealed_langevin(score, x0, [2.0, 0.5], 4, 0.01, torch.Generator().manual_seed(0))
    frames = annealed_langevin(
        score, x0, [2.0, 0.5], 4, 0.01, torch.Generator().manual_seed(0), n_frames=10
    )
    assert frames.shape == (10, 5, 3)  # all 2 · 4 + 1 moves and the start
    torch.testing.assert_close(frames[0], x0)
    torch.testing.assert_close(frames[-1], end)
    with pytest.raises(ParameterError, match="n_frames"):
        annealed_langevin(score, x0, [2.0, 0.5], 4, 0.01, n_frames=11)
    with pytest.raises(ParameterError, match="decreasing"):
        annealed_langevin(score, x0, [0.5, 2.0], 4, 0.01)


# --------------------------------------------------------------------------- units
def _zero_field(model: NCSN) -> NCSN:
    """The model with its learned part f_θ set to 0: the exact score of N(0, I) in model
    units, s(z, σ) = −z / (1 + σ²)."""
    last = model.module.f.net
    last = last.out if hasattr(last, "out") else last.conv_out
    with torch.no_grad():
        last.weight.zero_()
        last.bias.zero_()
    return model


def test_score_field_applies_the_chain_rule_of_the_standardisation():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 2)) * [0.01, 300.0] + [5.0, -1e4]
    model = _zero_field(_fit(x))
    shift, scale = x.mean(0), x.std(0)
    points = x[:7] + np.array([0.003, 50.0])
    for sigma in (None, float(model.sigmas_[1])):
        s = model.sigmas_[-1] if sigma is None else sigma
        # the data are N(shift, scale²) to this model; noise σ in model units is σ·scale here
        expected = -(points - shift) / (scale**2 * (1 + s**2))
        np.testing.assert_allclose(model.score_field(points, sigma), expected, rtol=1e-9)
    # a trained field: rescaling the data rescales the field by the inverse factor
    a, b = _fit(x), _fit(1000.0 * x + 7.0)
    np.testing.assert_allclose(
        1000.0 * b.score_field(1000.0 * points + 7.0), a.score_field(points), rtol=1e-6
    )


def test_score_field_of_discrete_data_is_per_level_step():
    x = np.random.default_rng(0).integers(0, 5, size=(200, 3))
    model = _zero_field(_fit(x))
    z = (2 * x[:6] + 1) / 5 - 1  # level centres in [−1, 1]
    s = model.sigmas_[-1]
    expected = -(2 / 5) * z / (1 + s**2)
    np.testing.assert_allclose(model.score_field(x[:6]), expected, rtol=1e-9)
    assert model.score_field(x[:6]).shape == (6, 3)


def test_score_norm_is_the_rms_of_the_noise_scaled_fields_over_the_ladder():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(100, 3)) * 20.0 + 4.0
    model = _zero_field(_fit(x))
    z = (x[:5] - x.mean(0)) / x.std(0)  # model units, where s(z, σ) = −z / (1 + σ²)
    sig = model.sigmas_[:, None]  # (L, 1)
    per_level = sig**2 * (z**2).sum(1) / (1 + sig**2) ** 2  # σ² ‖s‖², (L, 5)
    expected = np.sqrt(per_level.mean(0) / 3)
    np.testing.assert_allclose(model.score_norm(x[:5]), expected, rtol=1e-9)


def test_sigma_max_is_the_largest_distance_between_examples_in_model_units():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 3)) * [1.0, 10.0, 0.1]
    z = (x - x.mean(0)) / x.std(0)
    brute = max(np.linalg.norm(a - b) for a in z for b in z)
    model = _fit(x)
    assert model.sigma_max_ == pytest.approx(brute, rel=1e-9)
    np.testing.assert_allclose(model.sigmas_, np.geomspace(brute, 0.01, model.n_sigmas))
    assert float(model.module.sigmas[0]) == pytest.approx(brute)
    # a subsample of at most max_points rows, and at least 1 for data without spread
    big = rng.normal(size=(300, 2))
    assert largest_distance(big, np.random.default_rng(0), 100) <= largest_distance(
        big, np.random.default_rng(0)
    )
    assert _fit(np.ones((20, 2))).sigma_max_ == 1.0
    assert _fit(x, sigma_max=3.0).sigmas_[0] == 3.0


# --------------------------------------------------------------------------- scores, paths
def test_score_norm_is_per_example_and_grows_away_from_the_data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 2)) * 0.3 + [1.0, -1.0]
    model = _fit(x, epochs=10)
    rows = np.concatenate([x[:5], x[:3] + 5.0])
    batch = model.score_norm(rows)
    alone = np.concatenate([model.score_norm(rows[i : i + 1]) for i in range(len(rows))])
    np.testing.assert_allclose(alone, batch, rtol=1e-9)
    np.testing.assert_array_equal(model.score_norm(rows), batch)  # deterministic
    assert batch[5:].min() > batch[:5].max()  # far points pull harder
    scores, kind = anomaly_scores(model, rows)
    np.testing.assert_array_equal(scores, batch)
    assert kind == "score norm"


@pytest.mark.parametrize("kind", ["continuous", "categorical"])
def test_sample_paths_end_at_sample_and_start_at_the_noise(kind):
    rng = np.random.default_rng(0)
    if kind == "continuous":
        x = rng.normal(size=(200, 2)) * [2.0, 0.5] + 10.0
    else:
        x = rng.integers(0, 4, size=(200, 3))
    model = _fit(x)
    paths = model.sample_paths(400, n_frames=5, random_state=3)
    assert paths.shape == (5, 400, *x.shape[1:]) and paths.dtype == np.float64
    samples = model.sample(400, random_state=3)
    np.testing.assert_array_equal(paths[-1], samples)
    # frame 0: N(0, (1 + σ_1²) I) in model units
    spread = math.sqrt(1 + model.sigmas_[0] ** 2)
    if kind == "continuous":
        z0 = (paths[0] - model.input_shift_) / model.input_scale_
        assert samples.dtype == np.float64
    else:
        z0 = (2 * paths[0] + 1) / 4 - 1
        assert samples.dtype == np.int64 and samples.min() >= 0 and samples.max() <= 3
    assert abs(z0.std() / spread - 1) < 0.1
    default = model.sample_paths(2, random_state=0)
    assert len(default) == min(20, model.n_sigmas * model.steps_per_level + 2)
    with pytest.raises(ParameterError, match="n_frames"):
        model.sample_paths(2, n_frames=model.n_sigmas * model.steps_per_level + 3)


def test_image_data_get_the_unet_and_sample_levels():
    x = np.random.default_rng(0).integers(0, 2, size=(64, 1, 4, 4))
    spec = DataSpec("binary", (1, 4, 4), image_shape=(1, 4, 4))
    model = _fit(Split(x, None, spec), hidden=8, epochs=1)
    assert model.module.f.architecture == "unet"
    samples = model.sample(6, random_state=0)
    assert samples.shape == (6, 1, 4, 4) and set(np.unique(samples)) <= {0, 1}
    flat = _fit(x.reshape(64, -1), hidden=8, epochs=1)
    assert flat.module.f.architecture == "mlp"


# --------------------------------------------------------------------------- class-conditional
def test_class_conditional_samples_follow_the_label_and_the_field_needs_dropout():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, size=400)
    x = rng.normal(size=(400, 2)) * 0.3 + np.where(y[:, None] == 1, 2.0, -2.0)
    params = {**QUICK, "class_conditional": True, "epochs": 30, "lr": 1e-2}
    params.update(n_sigmas=6, sigma_min=0.05, steps_per_level=30)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = NCSN(**params).fit(x, y)
    for label, sign in ((0, -1), (1, 1)):
        samples = model.sample(100, y=label, random_state=0)
        assert np.mean(np.sign(samples[:, 0]) == sign) > 0.9
    assert model.score_field(x[:3], y=1).shape == (3, 2)
    assert model.score_norm(x[:3]).shape == (3,)  # the unconditional field, ∅
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        blind = NCSN(**{**params, "p_uncond": 0.0, "epochs": 1}).fit(x, y)
    with pytest.raises(CapabilityError, match="p_uncond"):
        blind.score_norm(x[:3])
    assert blind.score_norm(x[:3], y=[0, 1, 0]).shape == (3,)


# --------------------------------------------------------------------------- refusals
def test_no_likelihood_at_all():
    model = _fit(np.random.default_rng(0).normal(size=(50, 2)))
    for method in ("score_samples", "score", "predict_proba"):
        assert not hasattr(model, method)
    with pytest.raises(CapabilityError, match="normalising constant"):
        model.score_samples(np.zeros((1, 2)))
    assert not hasattr(model.module, "log_prob")
    caps = model.capabilities()
    assert caps.likelihood == caps.fitted_likelihood == "none"
    assert (caps.anomaly_score, caps.score_field, caps.sample_paths) == (
        "score_norm",
        True,
        "langevin",
    )
    assert model.nll_summary(np.zeros((3, 2)))["nll_nats"] is None


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"sigma_max": 0.01, "sigma_min": 0.01}, "sigma_max=0.01 must be above sigma_min"),
        ({"sigma_max": 0.5, "sigma_min": 1.0}, "must be above sigma_min"),
        ({"step_size": 2e-4, "sigma_min": 0.01}, "step_size=0.0002 must be below"),
        ({"guidance": 1.0}, "needs class_conditional=True"),
        ({"n_sigmas": 1}, "n_sigmas must be"),
        ({"sigma_min": 100.0, "sigma_max": None}, "data-driven sigma_max"),
    ],
)
def test_bad_parameters_are_one_clear_error(params, match):
    x = np.random.default_rng(0).normal(size=(30, 2)) * 0.01
    with pytest.raises(ParameterError, match=match):
        NCSN(**{**QUICK, **params}).fit(x)


def test_bad_noise_levels_at_use_are_clear_errors():
    model = _fit(np.random.default_rng(0).normal(size=(50, 2)))
    with pytest.raises(ParameterError, match="sigma must be"):
        model.score_field(np.zeros((2, 2)), sigma=model.sigmas_[0] * 2)
    with pytest.raises(ParameterError, match="sigma must be"):
        model.score_field(np.zeros((2, 2)), sigma=0.0)
    with pytest.raises(CapabilityError, match="not class-conditional"):
        model.sample_paths(2, y=1)
    with pytest.raises(ptheta.errors.DataError, match="shape"):
        model.score_norm(np.zeros((2, 3)))
