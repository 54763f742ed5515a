"""The forward SDEs (ptheta/nn/sde.py): closed-form kernels against their moment equations,
priors against the kernel at t = 1, the reverse drifts, and the σ_max heuristic."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.integrate import solve_ivp
from scipy.spatial.distance import pdist

from ptheta.nn.sde import (
    MAX_PAIRWISE_ROWS,
    SDES,
    VESDE,
    VPSDE,
    SubVPSDE,
    largest_pairwise_distance,
    make_sde,
)

SDE_CASES = [VPSDE(), SubVPSDE(), VPSDE(0.5, 5.0), SubVPSDE(1.0, 12.0), VESDE(0.01, 20.0)]


def _f(value) -> float:
    return float(torch.as_tensor(value))


@pytest.mark.parametrize("sde", SDE_CASES, ids=repr)
def test_kernels_solve_the_moment_equations(sde):
    # d m/dt = a(t) m and d var/dt = 2 a(t) var + g(t)² from m(0) = 1, var(0) = std(0)²,
    # integrated numerically from a(t) and g(t) alone: the closed forms must follow them
    def moments(t, state):
        a, g = _f(sde.drift_coefficient(t)), _f(sde.diffusion(t))
        return [a * state[0], 2 * a * state[1] + g**2]

    m0, std0 = sde.kernel(0.0)
    times = [0.01, 0.1, 0.37, 0.8, 1.0]
    sol = solve_ivp(
        moments, (0.0, 1.0), [_f(m0), _f(std0) ** 2], t_eval=times, rtol=1e-11, atol=1e-13
    )
    for i, t in enumerate(times):
        m, std = sde.kernel(t)
        assert _f(m) == pytest.approx(sol.y[0, i], rel=1e-7)
        assert _f(std) ** 2 == pytest.approx(sol.y[1, i], rel=1e-7, abs=1e-12)


@pytest.mark.parametrize("sde", SDE_CASES, ids=repr)
def test_forward_simulation_matches_the_kernel(sde):
    # Euler–Maruyama paths of dx = a x dt + g dW from one point: an independent check of
    # the drift and diffusion that the kernel's closed form summarises
    gen = torch.Generator().manual_seed(0)
    n, steps, x0 = 20_000, 400, 1.5
    _, std0 = sde.kernel(0.0)
    x = x0 + _f(std0) * torch.randn(n, 1, dtype=torch.float64, generator=gen)
    dt = 0.5 / steps
    for i in range(steps):
        t = torch.tensor(i * dt, dtype=torch.float64)
        dw = math.sqrt(dt) * torch.randn(x.shape, dtype=torch.float64, generator=gen)
        x = x + sde.drift(x, t) * dt + sde.diffusion(t) * dw
    m, std = sde.kernel(0.5)
    se = _f(std) / math.sqrt(n)
    assert float(x.mean()) == pytest.approx(_f(m) * x0, abs=5 * se + 2e-3)
    assert float(x.std()) == pytest.approx(_f(std), rel=0.03)


def test_sub_vp_std_is_at_most_vp_std():
    t = torch.linspace(0, 1, 201, dtype=torch.float64)
    for beta_min, beta_max in [(0.1, 20.0), (0.5, 5.0)]:
        vp, sub = VPSDE(beta_min, beta_max), SubVPSDE(beta_min, beta_max)
        assert torch.all(sub.kernel(t)[1] <= vp.kernel(t)[1] + 1e-15)
        assert torch.all(sub.kernel(t)[1][1:] < vp.kernel(t)[1][1:])  # strictly, after 0
        torch.testing.assert_close(sub.kernel(t)[0], vp.kernel(t)[0])  # the same mean


@pytest.mark.parametrize("sde", [VPSDE(), SubVPSDE()], ids=repr)
def test_vp_priors_match_the_kernel_at_one(sde):
    m, std = sde.kernel(1.0)
    assert _f(m) < 0.01 and _f(std) == pytest.approx(1.0, abs=1e-4)
    assert sde.prior_std == 1.0
    # KL(N(m x0, std²) ‖ N(0, 1)) per dimension for data within ±3: small
    x0 = 3.0
    kl = 0.5 * (_f(std) ** 2 + (_f(m) * x0) ** 2 - 1 - math.log(_f(std) ** 2))
    assert kl < 1e-3


def test_ve_prior_covers_the_data():
    x = np.random.default_rng(0).normal(size=(300, 3))
    sde = VESDE(0.01, largest_pairwise_distance(x))
    m, std = sde.kernel(1.0)
    assert _f(m) == 1.0 and _f(std) == pytest.approx(sde.prior_std, rel=1e-12)
    # every example lies within σ_max of the data mean, so N(x, σ_max²) ≈ N(0, σ_max²)
    assert np.linalg.norm(x - x.mean(0), axis=1).max() <= sde.prior_std


@pytest.mark.parametrize("sde", SDE_CASES, ids=repr)
def test_prior_log_prob_and_sampler(sde):
    gen = torch.Generator().manual_seed(1)
    z = sde.prior_sample((50_000, 2), gen, dtype=torch.float64)
    assert z.shape == (50_000, 2)
    assert float(z.std()) == pytest.approx(sde.prior_std, rel=0.02)
    point = torch.tensor([[0.3, -0.7]], dtype=torch.float64)
    s = sde.prior_std
    expected = -0.5 * (0.09 + 0.49) / s**2 - 2 * math.log(s) - math.log(2 * math.pi)
    assert float(sde.prior_log_prob(point)) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("sde", SDE_CASES, ids=repr)
def test_reverse_drifts(sde):
    x = torch.tensor([[0.5, -1.0], [2.0, 0.1]], dtype=torch.float64)
    score = torch.tensor([[1.0, 2.0], [-0.5, 0.3]], dtype=torch.float64)
    t = torch.tensor(0.3, dtype=torch.float64)
    a, g = sde.drift_coefficient(t), sde.diffusion(t)
    torch.testing.assert_close(sde.reverse_drift(x, t, score), a * x - g**2 * score)
    torch.testing.assert_close(
        sde.reverse_drift(x, t, score, probability_flow=True), a * x - 0.5 * g**2 * score
    )
    # one time per example broadcasts against the rows
    ts = torch.tensor([0.3, 0.8], dtype=torch.float64)
    rows = sde.reverse_drift(x, ts, score)
    torch.testing.assert_close(rows[1], sde.reverse_drift(x[1:], ts[1], score[1:])[0])


def test_an_exact_gaussian_score_makes_the_vp_probability_flow_stand_still():
    # N(0, I) data stay N(0, I) under VP: its score −x makes the probability-flow drift 0
    sde = VPSDE()
    x = torch.randn(4, 3, dtype=torch.float64)
    for t in (0.01, 0.5, 1.0):
        assert sde.reverse_drift(x, t, -x, probability_flow=True).abs().max() < 1e-12


def test_make_sde_and_bad_settings():
    assert {make_sde(name).name for name in SDES} == set(SDES)
    assert make_sde("ve", sigma_max=7.0).prior_std == 7.0
    with pytest.raises(ValueError, match="sde must be one of"):
        make_sde("vpp")
    with pytest.raises(ValueError, match="sigma_min < sigma_max"):
        VESDE(0.5, 0.1)


def test_largest_pairwise_distance_is_the_brute_force_maximum():
    x = np.random.default_rng(2).normal(size=(200, 5)) * [1, 2, 3, 4, 5] + 100.0
    assert largest_pairwise_distance(x) == pytest.approx(pdist(x).max(), rel=1e-9)
    assert largest_pairwise_distance(x.reshape(200, 5, 1)) == pytest.approx(pdist(x).max())
    many = np.random.default_rng(3).normal(size=(MAX_PAIRWISE_ROWS + 10, 2))
    subset = largest_pairwise_distance(many, seed=4)
    assert subset == largest_pairwise_distance(many, seed=4)  # seeded
    assert 0 < subset <= pdist(many).max() + 1e-9  # a subset's maximum: a lower bound
