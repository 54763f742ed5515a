"""Tests of the DDPM family: forward process, posterior, bound, decoder, DDIM, guidance."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from scipy import stats

from ptheta.data.spec import DataSpec, Split
from ptheta.data.toy2d import moons
from ptheta.errors import CapabilityError, DataError, ParameterError
from ptheta.models import diffusion
from ptheta.models.diffusion import (
    ACTIVATIONS_PER_VALUE,
    BOUND_ROWS,
    DDPM,
    DiffusionNetwork,
    beta_schedule,
    bound_rows,
    log_discretised_gaussian,
)
from ptheta.nn.noise import example_keys
from ptheta.runs.store import load_run, save_run

F64 = torch.float64
QUICK = {"hidden": 16, "n_blocks": 1, "dtype": "float64", "device": "cpu"}


def _net(**kwargs) -> DiffusionNetwork:
    """A tiny float64 network whose denoiser is not zero (perturbed output layer)."""
    torch.manual_seed(0)
    shape = kwargs.pop("event_shape", (2,))
    args = {"n_categories": 3, "timesteps": 6, "hidden": 8, "n_blocks": 1, **kwargs}
    net = DiffusionNetwork(shape, **args, dtype=F64).eval()
    last = net.net.conv_out if net.architecture == "unet" else net.net.out
    with torch.no_grad():
        last.weight.normal_(0, 0.3)
        last.bias.normal_(0, 0.3)
    return net


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# --------------------------------------------------------------------------- schedules, q
@pytest.mark.parametrize("name", ["linear", "cosine"])
def test_schedules(name):
    betas = beta_schedule(name, 1000)
    assert betas.shape == (1000,) and torch.all(betas > 0) and torch.all(betas <= 0.999)
    alphas_bar = torch.cumprod(1 - betas, 0)
    assert alphas_bar[-1] < 1e-4  # the prior term vanishes
    if name == "linear":
        # Ho et al.'s end points, and the continuous form's ᾱ for every T
        assert betas[0] == pytest.approx(1.1e-4, rel=0.01) and betas[-1] == pytest.approx(
            0.02, rel=0.02
        )
        coarse = torch.cumprod(1 - beta_schedule(name, 10), 0)
        assert float(coarse[4]) == pytest.approx(math.exp(-0.05 - 9.95 / 4), rel=1e-12)
    else:  # ᾱ_t = cos²(π/2 (t/T + s)/(1 + s)) / f(0)
        f = lambda t: math.cos((t / 1000 + 0.008) / 1.008 * math.pi / 2) ** 2  # noqa: E731
        assert float(alphas_bar[499]) == pytest.approx(f(500) / f(0), rel=1e-9)


def test_forward_process_matches_its_closed_form_and_the_one_step_chain():
    net = _net(event_shape=(1,), n_categories=None, timesteps=8, noise_schedule="cosine")
    n, x0 = 200_000, torch.full((200_000, 1), 0.7, dtype=F64)
    gen = _gen(0)
    chain = x0.clone()
    for t in range(1, 9):  # plain loop: x_t = √α_t x_{t−1} + √β_t ε
        beta = float(net.betas[t])
        chain = math.sqrt(1 - beta) * chain + math.sqrt(beta) * torch.randn(n, 1, generator=gen)
        ab = float(net.alphas_bar[t])
        direct = net.q_sample(x0, torch.full((n,), t), torch.randn(n, 1, generator=gen, dtype=F64))
        for draws in (chain, direct):
            se = math.sqrt((1 - ab) / n)
            assert abs(float(draws.mean()) - math.sqrt(ab) * 0.7) < 5 * se
            assert float(draws.var()) == pytest.approx(1 - ab, rel=0.02)


@pytest.mark.parametrize("t", [2, 4, 6])
def test_posterior_matches_bayes_rule_on_a_grid(t):
    net = _net(n_categories=None)
    x0, x_t = torch.tensor([[0.4, -1.3]], dtype=F64), torch.tensor([[0.1, 0.8]], dtype=F64)
    mean, var = net.q_posterior(x0, x_t, t)
    ab_prev, beta = float(net.alphas_bar[t - 1]), float(net.betas[t])
    grid = np.linspace(-6, 6, 200_001)
    for d in range(2):
        # q(x_{t−1} | x_0) · q(x_t | x_{t−1}), normalised numerically
        log_w = stats.norm.logpdf(
            grid, math.sqrt(ab_prev) * float(x0[0, d]), math.sqrt(1 - ab_prev)
        )
        log_w += stats.norm.logpdf(float(x_t[0, d]), math.sqrt(1 - beta) * grid, math.sqrt(beta))
        w = np.exp(log_w - log_w.max())
        w /= w.sum()
        m = (w * grid).sum()
        assert float(mean[0, d]) == pytest.approx(m, abs=1e-7)
        assert float(var) == pytest.approx((w * (grid - m) ** 2).sum(), rel=1e-6)


# --------------------------------------------------------------------------- decoder
@pytest.mark.parametrize("k_levels", [2, 5, 17])
def test_discretised_gaussian_pmf_sums_to_one_and_matches_the_cdf(k_levels):
    k = torch.arange(k_levels)
    for mean, std in [(0.0, 0.5), (0.93, 0.01), (-5.0, 0.3), (40.0, 1.0), (0.1, 1e-4)]:
        lp = log_discretised_gaussian(k, torch.full((k_levels,), mean, dtype=F64), std, k_levels)
        assert torch.isfinite(lp).all()
        assert float(torch.logsumexp(lp, 0)) == pytest.approx(0.0, abs=1e-12)
    # a middle level against scipy, in the far tail where a naive difference underflows
    j, mean, std = k_levels // 2, -3.0, 0.2
    lo, hi = (2 * j) / k_levels - 1, (2 * j + 2) / k_levels - 1
    expected = stats.norm.logsf(lo, mean, std) + math.log(
        -math.expm1(stats.norm.logsf(hi, mean, std) - stats.norm.logsf(lo, mean, std))
    )
    got = log_discretised_gaussian(
        torch.tensor([j]), torch.tensor([mean], dtype=F64), std, k_levels
    )
    assert float(got) == pytest.approx(expected, rel=1e-9)


# --------------------------------------------------------------------------- the bound
def _path_elbo(net: DiffusionNetwork, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """−log p(x_{0:T}) + log q(x_{1:T} | x_0) on one forward trajectory per row: a plain-loop
    single-sample estimate of the same bound (its mean equals the bound's)."""
    T, n = net.timesteps, len(x)
    x0 = net.to_unit(x)
    path = [x0]
    for t in range(1, T + 1):
        beta = net.betas[t]
        path.append(
            (1 - beta).sqrt() * path[-1]
            + beta.sqrt() * torch.randn(x0.shape, generator=gen, dtype=F64)
        )

    def log_normal(v, mean, var):
        return (-0.5 * ((v - mean) ** 2 / var + torch.log(2 * math.pi * var))).sum(1)

    log_q = sum(
        log_normal(path[t], (1 - net.betas[t]).sqrt() * path[t - 1], net.betas[t])
        for t in range(1, T + 1)
    )
    log_p = log_normal(path[T], torch.zeros_like(x0), torch.ones(()))
    for t in range(T, 0, -1):
        mean = net.p_mean(path[t], t, net.eps(path[t], torch.full((n,), t)))
        if t > 1:
            log_p = log_p + log_normal(path[t - 1], mean, net.sigma2[t])
        else:
            log_p = log_p + log_discretised_gaussian(x, mean, net.sigma2[1].sqrt(), 3).sum(1)
    return log_q - log_p


@pytest.mark.parametrize("variance", ["posterior", "beta"])
def test_closed_form_bound_equals_the_plain_loop_path_estimate(variance):
    net = _net(variance=variance)
    x = torch.tensor([[0, 2]]).repeat(40_000, 1)
    with torch.no_grad():
        closed = net.bound_terms(x, generator=_gen(1)).sum(1)  # (N,)
        path = _path_elbo(net, x, _gen(2))
    se = math.sqrt(float(closed.var() + path.var()) / len(x))
    assert abs(float(closed.mean() - path.mean())) < 5 * se
    assert se < 0.05 * abs(float(closed.mean()))  # the comparison has power


def test_bound_on_a_tiny_discrete_distribution():
    # 2 variables with 3 levels, a known distribution with dependence
    p = np.array([[0.30, 0.05, 0.01], [0.05, 0.20, 0.05], [0.01, 0.05, 0.28]])
    configs = np.array(list(itertools.product(range(3), repeat=2)))
    rng = np.random.default_rng(0)
    x = configs[rng.choice(9, size=600, p=p.ravel())]
    model = DDPM(10, **QUICK, epochs=30, batch_size=64, lr=3e-3).fit(x)
    scores, stderr = model.score_samples(configs, return_std=True)
    # an estimate of a lower bound on log P: over-counts by no more than its Monte Carlo error
    p_hat = np.exp(scores)
    assert p_hat.sum() <= 1.0 + 3 * np.sqrt(((p_hat * stderr) ** 2).sum())
    entropy = -(p * np.log(p)).sum()
    cross_entropy = -(p.ravel() * scores).sum()
    assert cross_entropy >= entropy
    assert cross_entropy < entropy + 2.0  # the bound is informative, not vacuous
    # score_samples is the sum of the terms; column 0 is the decoder, T the prior term
    terms = model.bound_terms(configs)
    assert terms.shape == (9, 11) and np.all(terms[:, 1:] >= -1e-12)
    np.testing.assert_allclose(-terms.sum(1), scores, rtol=1e-12)
    assert model.units_ == "discrete" and model.likelihood_ == "estimate"


def test_bound_estimate_is_unbiased_for_the_full_bound():
    x, _ = _moons(200)
    model = DDPM(8, **QUICK, epochs=2).fit(x)
    estimates = np.stack([model.bound_estimate(x[:3], 4, random_state=s) for s in range(1000)])
    # the full bound's expectation over x_t ~ q(x_t | x_0): many draws per example
    rows = torch.as_tensor(np.repeat(x[:3], 2000, axis=0))
    with torch.no_grad():
        full = -model.module.bound_terms(rows, generator=_gen(0)).sum(1).reshape(3, 2000)
    se = np.hypot(estimates.std(0) / math.sqrt(1000), full.std(1).numpy() / math.sqrt(2000))
    assert np.all(np.abs(estimates.mean(0) - full.mean(1).numpy()) < 5 * se)
    assert np.all(se < 0.25)  # the comparison has power


def _moons(n: int) -> tuple[np.ndarray, np.ndarray]:
    x = moons(n, np.random.default_rng(0))
    return x, (x[:, 1] > 0.25).astype(int)


def test_continuous_bound_includes_the_standardisation_jacobian():
    x, _ = _moons(200)
    a = DDPM(6, **QUICK, epochs=2).fit(x)
    b = DDPM(6, **QUICK, epochs=2).fit(10 * x + 3)
    assert a.units_ == "continuous"
    # the same model in standardised units; with the same draws of x_t, densities differ
    # by the Jacobian 10² exactly (score_samples keys each row's draws by its raw values)
    keys = example_keys(x[:20], 0)
    with torch.no_grad():
        bound_a = -a.module.bound_terms(torch.as_tensor(x[:20]), keys=keys).sum(1)
        bound_b = -b.module.bound_terms(torch.as_tensor(10 * x[:20] + 3), keys=keys).sum(1)
    np.testing.assert_allclose(bound_b, bound_a - 2 * math.log(10), atol=1e-6)


@pytest.mark.parametrize("variance", ["posterior", "beta"])
def test_checkpoints_and_run_directories_save(tmp_path, variance):
    # every buffer owns its storage: safetensors refuses tensors that share memory
    x, _ = _moons(100)
    model = DDPM(6, **QUICK, variance=variance, epochs=1).fit(x, run_dir=tmp_path / "ckpt")
    save_run(model, tmp_path / "run")
    np.testing.assert_array_equal(
        load_run(tmp_path / "run").score_samples(x), model.score_samples(x)
    )


def test_training_on_a_2d_toy_tightens_the_bound():
    x, _ = _moons(1000)
    params = {**QUICK, "hidden": 32, "batch_size": 100, "lr": 3e-3, "validation_fraction": 0}
    before = DDPM(20, **params, epochs=1).fit(x).score(x[:300])
    after = DDPM(20, **params, epochs=40).fit(x).score(x[:300])
    assert after > before + 0.3


def test_validation_loss_uses_common_random_numbers():
    # the Trainer validates a DDPM with loss() in eval mode: the same (t, ε) draws every
    # epoch, so early stopping compares weights, not noise; training draws fresh ones
    net = _net(n_categories=None)
    x = torch.randn(64, 2, generator=_gen(0), dtype=F64)
    torch.manual_seed(1)
    first = net.eval().loss(x)
    torch.manual_seed(2)
    assert torch.equal(net.loss(x), first)
    torch.manual_seed(1)
    assert not torch.equal(net.train().loss(x), net.loss(x))


# --------------------------------------------------------------------------- sampling
@pytest.mark.parametrize("t", [2, 3, 6])
def test_ddim_with_eta_one_and_full_steps_is_the_ancestral_step(t):
    net = _net(variance="posterior", n_categories=None)
    x_t = torch.randn(4, 2, generator=_gen(0), dtype=F64)
    eps = net.eps(x_t, torch.full((4,), t))
    a_mean, a_std = net.ancestral_step(x_t, t, eps)
    d_mean, d_std = net.ddim_step(x_t, t, t - 1, eps, eta=1.0)
    torch.testing.assert_close(d_mean, a_mean, rtol=1e-10, atol=1e-12)
    assert float(d_std) == pytest.approx(float(a_std), rel=1e-10)
    assert net.ddim_times(6) == [1, 2, 3, 4, 5, 6] and net.ddim_times(3) == [2, 4, 6]
    assert net.ddim_times(1) == [6] and net.ddim_times(4) == [2, 3, 5, 6]


def test_ddim_default_steps_fit_a_short_schedule():
    x, _ = _moons(60)
    model = DDPM(5, **QUICK, epochs=1).fit(x)
    # the default is min(50, T), like sampler="ddim" without sampling_steps
    np.testing.assert_array_equal(
        model.sample_ddim(3, random_state=0), model.sample_ddim(3, 5, random_state=0)
    )


def test_deterministic_ddim_depends_on_the_start_noise_alone():
    net = _net()
    x_T = torch.randn(5, 2, generator=_gen(0), dtype=F64)
    a = net.ddim(x_T, 4, eta=0.0, generator=_gen(1))
    b = net.ddim(x_T, 4, eta=0.0, generator=_gen(2))
    assert torch.equal(a, b) and a.dtype == torch.long
    c = net.ddim(x_T, 6, eta=1.0, generator=_gen(1))
    d = net.ddim(x_T, 6, eta=1.0, generator=_gen(2))
    assert not torch.equal(c, d)  # η = 1 draws fresh noise


@pytest.mark.parametrize(
    ("kind", "shape", "levels"),
    [("binary", (6,), 2), ("categorical", (1, 2, 3), 5), ("continuous", (2,), None)],
)
def test_sample_shapes_kinds_and_reproducibility(kind, shape, levels):
    rng = np.random.default_rng(0)
    n = 120
    if levels is None:
        x = rng.normal(size=(n, *shape))
    else:
        x = rng.integers(0, levels, size=(n, *shape))
    spec = DataSpec(kind, shape, levels, image_shape=shape if len(shape) == 3 else None)
    model = DDPM(5, **QUICK, epochs=1).fit(Split(x, None, spec))
    assert model._module.architecture == ("unet" if len(shape) == 3 else "mlp")
    for draw in (
        lambda s: model.sample(7, random_state=s),
        lambda s: model.sample_ancestral(7, random_state=s),
        lambda s: model.sample_ddim(7, 3, random_state=s),
        lambda s: model.sample_ddim(7, 5, eta=1.0, random_state=s),
    ):
        out = draw(0)
        assert out.shape == (7, *shape)
        if levels is None:
            assert out.dtype == np.float64 and np.isfinite(out).all()
        else:
            assert out.dtype == np.int64 and out.min() >= 0 and out.max() < levels
        np.testing.assert_array_equal(out, draw(0))


def test_guidance_zero_is_the_conditional_model_and_w_mixes_as_stated():
    net = _net(n_classes=2)
    x_t, t = torch.randn(4, 2, generator=_gen(0), dtype=F64), torch.tensor([1, 3, 5, 6])
    y = torch.tensor([0, 1, 1, 0])
    cond, uncond = net.eps(x_t, t, y), net.eps(x_t, t, None)
    assert torch.equal(net.eps(x_t, t, y, guidance=0.0), cond)
    assert not torch.allclose(cond, uncond)  # the label matters
    torch.testing.assert_close(net.eps(x_t, t, y, guidance=2.0), 3 * cond - 2 * uncond)

    x, y = _moons(100)
    model = DDPM(5, **QUICK, epochs=1, class_conditional=True).fit(x, y)
    base = model.sample(6, y=1, random_state=0)
    np.testing.assert_array_equal(
        model.sample_ancestral(6, y=1, guidance=0.0, random_state=0), base
    )
    assert not np.allclose(model.sample_ancestral(6, y=1, guidance=3.0, random_state=0), base)
    assert model.guidance == 0.0 and model._module.guidance == 0.0  # restored after use


def test_class_conditional_score_is_bayes_over_the_class_bounds():
    x, y = _moons(100)
    model = DDPM(5, **QUICK, epochs=1, class_conditional=True).fit(x, y)
    per_class = np.stack([-model.bound_terms(x[:8], y=c).sum(1) for c in (0, 1)], axis=1)
    expected = np.logaddexp.reduce(per_class + model.class_log_prior_, axis=1)
    np.testing.assert_allclose(model.score_samples(x[:8]), expected, rtol=1e-12)
    np.testing.assert_allclose(model.predict_proba(x[:8]).sum(1), 1.0)


# --------------------------------------------------------------------------- bad input
def test_bad_settings_and_calls_are_clear_errors():
    x, y = _moons(60)
    with pytest.raises(ParameterError, match="architecture='unet' needs image-shaped"):
        DDPM(5, **QUICK, architecture="unet").fit(x)
    with pytest.raises(ParameterError, match="sampling_steps"):
        DDPM(5, **QUICK, sampling_steps=3).fit(x)
    with pytest.raises(ParameterError, match="sampling_steps"):
        DDPM(5, **QUICK, sampler="ddim", sampling_steps=6).fit(x)
    with pytest.raises(ParameterError, match=r"guidance.*class_conditional=True"):
        DDPM(5, **QUICK, guidance=1.0).fit(x)
    model = DDPM(5, **QUICK, epochs=1).fit(x)
    with pytest.raises(ParameterError, match="steps"):
        model.sample_ddim(2, 6)
    with pytest.raises(ParameterError, match="eta"):
        model.sample_ddim(2, 3, eta=-1.0)
    with pytest.raises(CapabilityError, match="guidance"):
        model.sample_ancestral(2, guidance=1.0)
    with pytest.raises(CapabilityError, match="not class-conditional"):
        model.bound_terms(x[:2], y=[0, 1])
    with pytest.raises(ParameterError, match="n_t"):
        model.bound_estimate(x[:2], 0)
    cond = DDPM(5, **QUICK, epochs=1, class_conditional=True).fit(x, y)
    with pytest.raises(DataError, match="pass y"):
        cond.bound_terms(x[:2])
    with pytest.raises(DataError, match="unknown class"):
        cond.bound_terms(x[:2], y=7)
    with pytest.raises(DataError, match="unconditional"):
        _net().loss(torch.zeros(2, 2, dtype=torch.long), torch.zeros(2, dtype=torch.long))


# --------------------------------------------------------------------------- bounded memory
def test_bound_rows_shrink_with_the_example_size_width_and_free_memory(monkeypatch):
    budget = 2**28
    sizes = [2, 64, 784, 3 * 32 * 32, 3 * 64 * 64, 10**7]
    rows = [bound_rows(d, 64, budget=budget) for d in sizes]
    assert rows == sorted(rows, reverse=True) and rows[0] == BOUND_ROWS and rows[-1] == 1
    for d, r in zip(sizes, rows, strict=True):
        per_row = d * 64 * ACTIVATIONS_PER_VALUE * 4
        # the largest count within the budget (or the cap, or one row)
        assert r == BOUND_ROWS or r == 1 or r * per_row <= budget < (r + 1) * per_row
    assert bound_rows(784, 128, budget=budget) < bound_rows(784, 64, budget=budget)
    assert bound_rows(784, 64, 8, budget=budget) < bound_rows(784, 64, 4, budget=budget)
    # by default: a few hundred MB, or a quarter of the memory available if less
    monkeypatch.setattr(diffusion, "_available_bytes", lambda device=None: 4 * 784 * 64 * 64 * 7)
    assert bound_rows(784, 64) == 7
    monkeypatch.setattr(diffusion, "_available_bytes", lambda device=None: None)
    assert bound_rows(784, 64) == bound_rows(784, 64, budget=diffusion.BOUND_BYTES)


@pytest.mark.parametrize("strata", [None, 2])
def test_scores_do_not_depend_on_the_chunk_size_and_calls_stay_bounded(monkeypatch, strata):
    # a U-Net on 1×4×4 binary images; the chunk sizes follow the memory budget
    x = (np.random.default_rng(0).random((40, 1, 4, 4)) < 0.4).astype(np.int64)
    model = DDPM(5, **QUICK, epochs=1, bound_strata=strata).fit(x)
    assert model.module.architecture == "unet"
    seen = []
    eps = model.module.eps

    def counting(x_t, *args, **kwargs):
        seen.append(len(x_t))
        return eps(x_t, *args, **kwargs)

    monkeypatch.setattr(model.module, "eps", counting)
    big, big_std = model.score_samples(x, return_std=True)  # 40 × 4 draws × 5 t: 1 call
    terms = model.bound_terms(x[:7])
    assert max(seen) == 40 * 4 * (5 if strata is None else strata)  # stratified: 2 t a draw
    per_row = 16 * 16 * ACTIVATIONS_PER_VALUE * 8  # 16 values, width 16, float64
    for rows in (1, 3, 9, 50):
        monkeypatch.setattr(diffusion, "BOUND_BYTES", rows * per_row)
        monkeypatch.setattr(diffusion, "_available_bytes", lambda device=None: None)
        assert model.module.bound_rows() == rows
        seen.clear()
        small, small_std = model.score_samples(x, return_std=True)
        assert max(seen) <= max(rows, 4)  # one example's 4 draws at one t at least
        np.testing.assert_allclose(small, big, rtol=1e-10)
        np.testing.assert_allclose(small_std, big_std, rtol=1e-8)
        np.testing.assert_allclose(model.bound_terms(x[:7]), terms, rtol=1e-10, atol=1e-12)
        if rows >= 4:
            assert max(seen) <= rows
    # and one example scored alone, as in any chunk
    np.testing.assert_allclose(model.score_samples(x[5:6]), big[5:6], rtol=1e-10)


# --------------------------------------------------------------------------- independent base
PI = torch.tensor([[0.6, 0.3, 0.1], [0.2, 0.2, 0.6]], dtype=F64)  # 2 entries, 3 levels


def _base_net(T: int) -> DiffusionNetwork:
    """An untrained network (f_θ = 0) whose base is the independent model PI."""
    torch.manual_seed(0)
    net = DiffusionNetwork((2,), n_categories=3, timesteps=T, hidden=4, dtype=F64).eval()
    net.level_logits.copy_(PI.log())
    return net


def test_independent_base_is_the_posterior_mean_of_the_noise():
    net = _base_net(50)
    gen = _gen(0)
    n = 200_000
    k = torch.stack(
        [torch.multinomial(PI[d], n, replacement=True, generator=gen) for d in (0, 1)], 1
    )
    t = torch.full((n,), 20)
    noise = torch.randn((n, 2), generator=gen, dtype=F64)
    x_t = net.q_sample(net.to_unit(k), t, noise)
    with torch.no_grad():
        base = net.base_eps(x_t, t)
    # E[ε | x_t] in bins of x_t: the base's bin means match the noise's (Bayes by sampling)
    for d in (0, 1):
        bins = torch.bucketize(x_t[:, d].contiguous(), torch.linspace(-1.2, 1.2, 13))
        for b in bins.unique():
            rows = bins == b
            if rows.sum() < 2000:
                continue
            se = float(noise[rows, d].std()) / math.sqrt(int(rows.sum()))
            assert abs(float(noise[rows, d].mean() - base[rows, d].mean())) < 5 * se + 0.01
    # where the noise is small next to the levels' spacing (t = 1 of T = 1000: σ ≈ 0.01) the
    # level is certain and the base is the exact noise; at t = T it is ≈ √(1 − ᾱ) x_t
    fine, one = _base_net(1000), torch.ones(n, dtype=torch.long)
    x_1 = fine.q_sample(fine.to_unit(k), one, noise)
    torch.testing.assert_close(fine.base_eps(x_1, one), noise, rtol=0, atol=1e-6)
    big = torch.full((n,), 50)
    torch.testing.assert_close(
        net.base_eps(x_t, big), (1 - net.alphas_bar[50]).sqrt() * x_t, rtol=0, atol=0.02
    )


def test_untrained_bound_approaches_the_independent_nll_from_above():
    x = torch.tensor([[0, 2], [1, 0], [2, 1]])
    exact = -(PI[0, x[:, 0]].log() + PI[1, x[:, 1]].log())  # −log P(x) of the base model
    gaps = []
    for T in (50, 200):
        with torch.no_grad():
            bound = _base_net(T).bound_terms(x.repeat(3000, 1), generator=_gen(T)).sum(1)
        bound = bound.reshape(3000, 3)
        se = bound.std(0) / math.sqrt(3000)
        gap = bound.mean(0) - exact
        assert torch.all(gap > -4 * se)  # a bound: never below −log P (in expectation)
        gaps.append(gap)
    # and tight as T grows (the gap is the time discretisation's, ~1/T)
    assert torch.all(gaps[1] < gaps[0] / 3) and torch.all(gaps[1] < 0.35)


def test_the_gaussian_base_is_the_old_linear_denoiser():
    net = DiffusionNetwork((2,), n_categories=3, timesteps=10, hidden=4, base="gaussian")
    x_t, t = torch.randn(5, 2), torch.arange(1, 6)
    assert not hasattr(net, "level_logits")
    torch.testing.assert_close(net.base_eps(x_t, t), (1 - net.alphas_bar[t]).sqrt()[:, None] * x_t)
    assert DiffusionNetwork((2,), timesteps=10, hidden=4).base == "gaussian"  # continuous


def test_fit_sets_the_level_frequencies_from_the_training_counts():
    x = np.array([[0, 2], [0, 2], [1, 2], [0, 1]])
    model = DDPM(5, **QUICK, epochs=1, validation_fraction=0).fit(x)
    expected = (np.array([[3, 1, 0], [0, 1, 3]]) + 0.5) / (4 + 1.5)
    np.testing.assert_allclose(model.module.level_logits.exp().numpy(), expected, rtol=1e-12)
    np.testing.assert_array_equal(diffusion.level_counts(x, 3), [[3, 1, 0], [0, 1, 3]])


# --------------------------------------------------------------------------- stratified bound
def test_stratified_bound_is_unbiased_for_the_full_sum_with_an_honest_error():
    net = _net(timesteps=20)
    x = torch.tensor([[0, 2]]).repeat(30_000, 1)
    with torch.no_grad():
        full = net.bound_terms(x, generator=_gen(1)).sum(1)  # every t, one draw each
        _, strat, stderr = net.bound_with_stderr(x, generator=_gen(2), n_draws=2, strata=4)
    strat = -strat
    se = math.sqrt(float(full.var() + strat.var()) / len(x))
    assert abs(float(full.mean() - strat.mean())) < 5 * se
    assert se < 0.01 * float(full.mean())  # the comparison has power
    # each row's reported error is the spread of its own estimate
    assert float((stderr**2).mean()) == pytest.approx(float(strat.var()), rel=0.1)
    # all strata at once is the full sum itself
    assert [len(r) for r in net.strata(19)] == [1] * 19
    assert net.strata(4)[0].start == 2 and net.strata(4)[-1].stop == 21


def test_stratified_scores_are_per_example_and_cheaper(monkeypatch):
    x = np.random.default_rng(0).integers(0, 3, size=(60, 4))
    model = DDPM(40, **QUICK, epochs=1, bound_strata=5, n_bound_samples=3).fit(x)
    calls = []
    real = model.module.eps
    monkeypatch.setattr(
        model.module, "eps", lambda *a, **k: calls.append(len(a[0])) or real(*a, **k)
    )
    scores, stderr = model.score_samples(x[:7], return_std=True)
    assert sum(calls) == 7 * 3 * (1 + 5)  # (decoder + 5 strata) per draw, not 40 steps
    assert np.all(np.isfinite(stderr)) and np.all(stderr > 0)
    # a row's score is a function of the row: alone, or among others, the same
    np.testing.assert_allclose(model.score_samples(x[3:4]), scores[3:4], rtol=1e-12)
    full = DDPM(40, **QUICK, epochs=1, bound_strata=None, n_bound_samples=3).fit(x)
    assert np.allclose(full.score_samples(x[:7]), scores, atol=6 * stderr.max())


def test_runs_saved_before_the_independent_base_load_with_the_gaussian_one():
    x = np.random.default_rng(0).integers(0, 3, size=(50, 4))
    model = DDPM(6, **QUICK, epochs=1, base="gaussian").fit(x)
    arrays, meta = model.get_state()  # no level frequencies, as in a run from before
    loaded = DDPM(6, **QUICK, epochs=1).set_state(arrays, meta)  # the config's default base
    assert loaded.base == "gaussian" and loaded.module.base == "gaussian"
    np.testing.assert_array_equal(loaded.score_samples(x[:5]), model.score_samples(x[:5]))


def test_independent_base_in_blocks_of_rows_is_the_same(monkeypatch):
    net = _base_net(50)
    x_t, t = torch.randn(13, 2, dtype=F64), torch.randint(1, 51, (13,))
    whole = net.base_eps(x_t, t)
    monkeypatch.setattr(diffusion, "BASE_VALUES", 2 * 3 * 4)  # 4 rows of (2 entries, 3 levels)
    torch.testing.assert_close(net.base_eps(x_t, t), whole, rtol=0, atol=0)
