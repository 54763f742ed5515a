"""MADE MoG: a normalised, autoregressive density whose sampler draws from it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.special import logsumexp

from ptheta.nn.made_mixture import MADEMixture


def _random(d: int, k: int, *, ordering=None, context: int = 0, seed: int = 0) -> MADEMixture:
    """A MADE MoG with random weights (the zero-initialised output layer would make every
    conditional the same fixed mixture, which tests nothing)."""
    torch.manual_seed(seed)
    base = MADEMixture(d, [12, 12], n_components=k, ordering=ordering, context_features=context)
    base = base.double()
    with torch.no_grad():
        for p in base.parameters():
            p.add_(0.4 * torch.randn_like(p))
    return base


def _grid(half: float, n: int) -> tuple[torch.Tensor, float]:
    t = np.linspace(-half, half, n)
    gx, gy = np.meshgrid(t, t, indexing="ij")
    points = np.column_stack([gx.ravel(), gy.ravel()])
    return torch.as_tensor(points), (t[1] - t[0]) ** 2


@pytest.mark.parametrize("ordering", [None, [1, 0]])
def test_density_integrates_to_one(ordering):
    base = _random(2, 3, ordering=ordering)
    points, area = _grid(10.0, 501)
    with torch.no_grad():
        log_p = base.log_prob(points).numpy()
    assert np.exp(logsumexp(log_p)) * area == pytest.approx(1.0, abs=2e-3)


def test_each_conditional_sees_only_the_variables_before_it():
    order = [2, 0, 3, 1]
    base = _random(4, 2, ordering=torch.tensor(order), context=3)
    c = torch.eye(3, dtype=torch.float64)[1]
    reach = torch.zeros(4, 4, dtype=torch.bool)  # (i, j): do i's parameters move with z_j
    for z in torch.randn(20, 4, dtype=torch.float64):  # several points: ReLUs switch off
        jac = torch.autograd.functional.jacobian(lambda v: base.params(v[None], c[None])[0], z)
        reach |= jac.abs().sum(1) > 0
    rank = {v: r for r, v in enumerate(order)}
    expected = torch.tensor([[rank[j] < rank[i] for j in range(4)] for i in range(4)])
    assert not bool((reach & ~expected).any())  # never a variable at or after i
    paths = base.layers[0].masks[0].T  # (inputs, units): how many paths reach each unit
    for layer in base.layers[1:]:
        paths = paths @ layer.masks[0].T
    per_variable = paths.reshape(4, 4, -1).sum(-1).T > 0  # (output variable, input)
    assert torch.equal(per_variable, expected)  # and every variable before i may be seen
    assert bool(reach[1].sum() == 3)  # the last in the order does see all three, here
    # the class context reaches every conditional, the first one included
    jac_c = torch.autograd.functional.jacobian(lambda v: base.params(z[None], v[None])[0], c)
    assert bool((jac_c.abs().sum((1, 2)) > 0).all())


@pytest.mark.parametrize("ordering", [None, [1, 0]])
def test_samples_follow_the_density(ordering):
    base = _random(2, 3, ordering=ordering, seed=1)
    draws = base.sample(40_000, generator=torch.Generator().manual_seed(0)).numpy()
    points, area = _grid(10.0, 501)
    with torch.no_grad():
        weight = np.exp(base.log_prob(points).numpy()) * area  # mass of each grid cell
    x = points.numpy()
    for f in (lambda v: v[:, 0], lambda v: v[:, 1], lambda v: v[:, 0] * v[:, 1]):
        values = f(draws)
        exact = float((weight * f(x)).sum())
        assert abs(values.mean() - exact) < 4 * values.std() / np.sqrt(len(values)) + 1e-3


def test_sampling_is_seeded_and_the_start_is_one_fixed_mixture():
    base = MADEMixture(3, [8], n_components=4).double()
    one = base.sample(5, generator=torch.Generator().manual_seed(3))
    two = base.sample(5, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(one, two)
    z = torch.randn(6, 3, dtype=torch.float64)
    params = base.params(z)
    torch.testing.assert_close(params, params[:1, :1].expand_as(params))  # the same everywhere
