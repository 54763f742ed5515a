"""The shared ODE layer (ptheta/nn/ode.py): the probability-flow likelihood is exact where
the truth is known, Hutchinson's estimator is unbiased, fixed grids are per example, and
every solve reports its function evaluations."""

from __future__ import annotations

import math

import pytest
import torch

from ptheta.nn import ode
from ptheta.nn.sde import VPSDE

# A 2-D Gaussian mixture; under a linear SDE p_t is again a Gaussian mixture, with means
# m(t) μ_k and variances m(t)² s_k² + std(t)² (closed-form density and score)
MEANS = torch.tensor([[-1.5, 0.0], [1.2, 0.8], [0.3, -1.4]], dtype=torch.float64)
STDS = torch.tensor([0.5, 0.35, 0.3], dtype=torch.float64)
WEIGHTS = torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64)


def _components(x, t, sde):
    m, std = sde.kernel(torch.as_tensor(t, dtype=torch.float64))
    var = m**2 * STDS**2 + std**2  # (K,)
    diff = x[:, None, :] - m * MEANS[None]  # (N, K, 2)
    log_c = WEIGHTS.log() - 0.5 * (diff**2).sum(-1) / var - torch.log(2 * math.pi * var)
    return log_c, diff, var


def mixture_log_prob(x, t, sde):
    """log p_t(x) of the perturbed mixture, (N,)."""
    return torch.logsumexp(_components(x, t, sde)[0], 1)


def mixture_score(x, t, sde):
    """∇ₓ log p_t(x) of the perturbed mixture, x's shape."""
    log_c, diff, var = _components(x, t, sde)
    r = torch.softmax(log_c, 1)
    return -(r[..., None] * diff / var[None, :, None]).sum(1)


def _flow(sde):
    return lambda x, t: sde.reverse_drift(x, t, mixture_score(x, t, sde), probability_flow=True)


EPS = 1e-5


def test_probability_flow_likelihood_is_exact_for_an_analytic_score():
    sde = VPSDE()
    x = torch.tensor([[-1.5, 0.1], [1.0, 1.0], [0.2, -1.2], [2.5, -2.0], [0.0, 0.0]])
    x = x.to(torch.float64)
    solver = ode.ODESolver("dopri5", rtol=1e-7, atol=1e-7)
    # with the exact p_1 at the noise end, the only error left is the solver's
    lp, end, nfe = ode.log_prob(
        _flow(sde),
        x,
        lambda z: mixture_log_prob(z, 1.0, sde),
        t_data=EPS,
        t_noise=1.0,
        solver=solver,
    )
    torch.testing.assert_close(lp, mixture_log_prob(x, EPS, sde), rtol=0, atol=1e-5)
    assert nfe > 20 and end.shape == x.shape
    # the data end at ε = 1e-5 is the mixture itself to within its smoothing
    torch.testing.assert_close(lp, mixture_log_prob(x, 0.0, sde), rtol=1e-4, atol=1e-4)


def test_probability_flow_density_integrates_to_one_on_a_grid():
    # the model's own prior N(0, I) at t = 1 (not the exact p_1): still a normalised
    # density, the push-forward of the prior by the flow
    sde = VPSDE()
    side = torch.linspace(-4.5, 4.5, 91, dtype=torch.float64)
    grid = torch.cartesian_prod(side, side)  # (8281, 2)
    lp, _, _ = ode.log_prob(
        _flow(sde),
        grid,
        ode.standard_normal_log_prob,
        t_data=EPS,
        t_noise=1.0,
        solver=ode.ODESolver("rk4", steps=40),
    )
    cell = float(side[1] - side[0]) ** 2
    assert float(lp.exp().sum()) * cell == pytest.approx(1.0, abs=0.02)
    # and it is close to the true mixture, whose mass the grid holds
    truth = mixture_log_prob(grid, EPS, sde)
    assert float(truth.exp().sum()) * cell == pytest.approx(1.0, abs=1e-3)
    assert float((lp - truth)[truth > -6].abs().max()) < 0.05


def _field(x, t):
    """A fixed nonlinear field of 5-D x with a non-symmetric Jacobian (trace ≈ 15 + …)."""
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(5, 7, dtype=torch.float64, generator=gen)
    v = torch.randn(7, 5, dtype=torch.float64, generator=gen)
    return torch.tanh(x @ w + t) @ v + 0.3 * x.roll(1, dims=1) + 3.0 * x


def test_exact_divergence_is_the_jacobian_trace():
    x = torch.randn(3, 5, dtype=torch.float64).requires_grad_(True)
    div = ode.divergence(_field(x, 0.2), x)
    for i in range(3):
        jac = torch.autograd.functional.jacobian(lambda r: _field(r[None], 0.2)[0], x[i].detach())
        assert float(div[i]) == pytest.approx(float(jac.trace()), rel=1e-12)


@pytest.mark.parametrize("kind", ["rademacher", "gaussian"])
def test_hutchinson_estimate_is_unbiased(kind):
    point = torch.randn(1, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    x0 = point.requires_grad_(True)
    exact = float(ode.divergence(_field(x0, 0.2), x0))
    n = 50_000
    gen = torch.Generator().manual_seed(2)
    if kind == "rademacher":
        probe = torch.randint(0, 2, (n, 5), generator=gen).to(torch.float64) * 2 - 1
    else:
        probe = torch.randn(n, 5, dtype=torch.float64, generator=gen)
    x = point.detach().repeat(n, 1).requires_grad_(True)
    draws = ode.divergence(_field(x, 0.2), x, probe=probe)
    se = float(draws.std()) / math.sqrt(n)
    assert se > 0.005  # the draws vary, yet finely enough to see a 2 % bias
    assert 4 * se < 0.02 * abs(exact)
    assert abs(float(draws.mean()) - exact) < 4 * se


@pytest.mark.parametrize("solver", ode.FIXED_SOLVERS)
def test_fixed_grid_results_do_not_depend_on_the_batch(solver):
    sde = VPSDE()
    x = torch.tensor([[-1.0, 0.5], [0.3, 0.3], [2.0, -1.0]], dtype=torch.float64)
    how = ode.ODESolver(solver, steps=12)

    def score(rows):
        return ode.log_prob(
            _flow(sde), rows, ode.standard_normal_log_prob, t_data=EPS, t_noise=1.0, solver=how
        )[0]

    batch = score(x)
    alone = torch.cat([score(x[i : i + 1]) for i in range(3)])
    torch.testing.assert_close(alone, batch, rtol=1e-12, atol=1e-12)
    padded = score(torch.cat([x.flip(0) * 3, x]))[3:]
    torch.testing.assert_close(padded, batch, rtol=1e-12, atol=1e-12)
    ends = [ode.integrate(_flow(sde), r, 1.0, EPS, solver=solver, steps=12)[0] for r in x[:, None]]
    together, _ = ode.integrate(_flow(sde), x, 1.0, EPS, solver=solver, steps=12)
    torch.testing.assert_close(torch.cat(ends), together, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    ("solver", "per_step"), [("rk4", 4), ("heun2", 2), ("midpoint", 2), ("euler", 1)]
)
def test_fixed_grid_solvers_count_their_evaluations(solver, per_step):
    calls = []

    def v(x, t):
        calls.append(1)
        return -x

    x = torch.ones(2, 3, dtype=torch.float64)
    _, nfe = ode.integrate(v, x, 0.0, 1.0, solver=solver, steps=9)
    assert nfe == len(calls) == 9 * per_step
    calls.clear()
    how = ode.ODESolver(solver, steps=5)
    _, _, nfe = ode.log_prob(
        v, x, ode.standard_normal_log_prob, t_data=0.0, t_noise=1.0, solver=how
    )
    assert nfe == len(calls) == 5 * per_step
    assert how.details(nfe) == {"ode_solver": solver, "nfe": 5 * per_step, "ode_steps": 5}


def test_adaptive_solver_counts_its_evaluations_and_meets_tighter_tolerances_with_more():
    x = torch.tensor([[1.0, -0.5]], dtype=torch.float64)
    truth = x * math.exp(-2.0)  # dx/dt = −4t x: x(1) = x e^{−2}
    counts, errors = [], []
    for tol in (1e-3, 1e-6, 1e-9):
        calls = []

        def v(z, t, calls=calls):
            calls.append(1)
            return -4 * t * z

        end, nfe = ode.integrate(v, x, 0.0, 1.0, solver="dopri5", rtol=tol, atol=tol)
        assert nfe == len(calls) and (nfe - 2) % 6 == 0  # f0, the first step's probe, 6 a step
        counts.append(nfe)
        errors.append(float((end - truth).abs().max()))
    assert counts[0] < counts[1] < counts[2]
    assert errors[2] < 1e-8 and errors[0] > errors[2]
    details = ode.ODESolver("dopri5", 1e-6, 1e-7).details(counts[1])
    assert details == {"ode_solver": "dopri5", "nfe": counts[1], "ode_rtol": 1e-6, "ode_atol": 1e-7}
