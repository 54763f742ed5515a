"""Invertible layers: exact inverses and log-determinants equal to the autograd Jacobian's."""

from __future__ import annotations

import math

import pytest
import torch
from torch.autograd.functional import jacobian

from ptheta.nn.dequantize import Logit, Scale, UniformDequantizer, VariationalDequantizer
from ptheta.nn.flows import (
    ActNorm,
    BatchNorm,
    ConvNet,
    Coupling,
    FactorOut,
    FlowSequence,
    InvConv1x1,
    MADEAffine,
    Permutation,
    Reshape,
    Squeeze,
    alternating_mask,
    channel_coupling,
    channel_mask,
    checkerboard_mask,
    vector_coupling,
)


def _perturb(layer: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Random parameters (nets start at zero = identity, which would test nothing)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in layer.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return layer.double().eval()  # float64: the checks are to 1e-8


def _cases():
    img = (2, 4, 4)
    ctx = torch.eye(3, dtype=torch.float64)[torch.tensor([0, 2, 1])]  # one-hot classes
    ctx_img = torch.randn(3, 2, 4, 4, generator=torch.Generator().manual_seed(5)).double()
    bn = BatchNorm(4)
    bn.running_mean.copy_(torch.tensor([0.1, -0.2, 0.3, 0.0]))
    bn.running_var.copy_(torch.tensor([0.5, 2.0, 1.5, 1.0]))
    return {
        "affine coupling": (vector_coupling(alternating_mask(4, 0), [8]), (4,), None),
        "additive coupling": (
            vector_coupling(alternating_mask(4, 1), [8], additive=True),
            (4,),
            None,
        ),
        "conditional coupling": (
            vector_coupling(alternating_mask(4, 1), [8], context_features=3),
            (4,),
            ctx,
        ),
        "one-variable coupling": (
            vector_coupling(alternating_mask(1, 1), [4], context_features=3),  # context only
            (1,),
            ctx,
        ),
        "checkerboard coupling": (Coupling(checkerboard_mask(img, 0), ConvNet(2, 6, 4)), img, None),
        "channel coupling": (Coupling(channel_mask(2, 1), ConvNet(1, 6, 2)), img, None),
        "conditional channel coupling": (
            channel_coupling(4, 0, 6, context_features=3),
            (4, 2, 2),
            ctx,
        ),
        "conditional conv coupling": (
            Coupling(checkerboard_mask(img, 1), ConvNet(2, 6, 4, context_features=3)),
            img,
            ctx,
        ),
        "image-context coupling": (
            Coupling(checkerboard_mask(img, 1), ConvNet(2, 6, 4, context_features=2)),
            img,
            ctx_img,
        ),
        "squeeze": (Squeeze(), img, None),
        "actnorm": (ActNorm(4), (4,), None),
        "actnorm image": (ActNorm(2), img, None),
        "batchnorm (eval)": (bn, (4,), None),
        "1x1 conv": (InvConv1x1(3, torch.Generator().manual_seed(1)), (3, 2, 2), None),
        "lu linear, permutation start": (
            InvConv1x1(5, torch.Generator().manual_seed(1), init="permutation"),
            (5,),
            None,
        ),
        "made affine": (MADEAffine(4, [12, 12], ordering=torch.tensor([2, 0, 3, 1])), (4,), None),
        "conditional made": (MADEAffine(4, [12], context_features=3), (4,), ctx),
        "logit": (Logit(0.05), (4,), None),
        "scale": (Scale(1 / 17), (4,), None),
        "permutation": (Permutation(torch.tensor([3, 1, 0, 2])), (4,), None),
        "reshape": (Reshape((4,), (2, 2)), (4,), None),
        "factor out": (
            FactorOut(img, 1, FlowSequence([Squeeze(), InvConv1x1(4), Reshape((4, 2, 2), (16,))])),
            img,
            None,
        ),
        "sequence": (
            FlowSequence(
                [
                    ActNorm(2),
                    InvConv1x1(2),
                    channel_coupling(2, 0, 6),
                    Squeeze(),
                    Coupling(checkerboard_mask((8, 2, 2), 1), ConvNet(8, 6, 16)),
                ]
            ),
            img,
            None,
        ),
    }


CASES = list(_cases())


def _input(shape, name: str) -> torch.Tensor:
    x = torch.randn(3, *shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    return torch.sigmoid(x) if name == "logit" else x  # logit's domain is (0, 1)


@pytest.mark.parametrize("name", CASES)
def test_inverse_undoes_forward_and_negates_logdet(name):
    layer, shape, ctx = _cases()[name]
    layer = _perturb(layer)
    x = _input(shape, name)
    y, logdet = layer(x, ctx)
    assert logdet.shape == (3,)
    back, logdet_inv = layer.inverse(y, ctx)
    torch.testing.assert_close(back, x, atol=1e-10, rtol=1e-10)
    torch.testing.assert_close(logdet_inv, -logdet, atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize("name", CASES)
def test_logdet_equals_log_abs_det_of_autograd_jacobian(name):
    layer, shape, ctx = _cases()[name]
    layer = _perturb(layer)
    x = _input(shape, name)
    logdet = layer(x, ctx)[1].detach()
    for i in range(len(x)):
        c = None if ctx is None else ctx[i : i + 1]

        def f(v, c=c):
            return layer(v.reshape(1, *shape), c)[0].flatten()

        jac = jacobian(f, x[i].flatten())  # (D, D)
        assert jac.shape[0] == jac.shape[1]
        _, expected = torch.linalg.slogdet(jac)
        assert float(logdet[i]) == pytest.approx(float(expected), abs=1e-8)


def test_made_affine_is_autoregressive_in_its_ordering():
    order = torch.tensor([2, 0, 3, 1])
    layer = _perturb(MADEAffine(4, [16, 16], ordering=order))
    x = torch.randn(4, dtype=torch.float64)
    jac = jacobian(lambda v: layer(v[None])[0][0], x)  # (D, D): ∂z_i / ∂x_j
    rank = torch.empty(4, dtype=torch.long)
    rank[order] = torch.arange(4)
    for i in range(4):
        for j in range(4):
            if rank[j] > rank[i]:  # x_j comes after x_i: z_i must not depend on it
                assert jac[i, j] == 0
    # and it is not trivially diagonal: the earliest variable reaches the last one
    assert jac[1, 2] != 0


def test_actnorm_initialises_from_the_first_training_batch_only_once():
    layer = ActNorm(3).double()
    x = (
        torch.randn(50, 3, dtype=torch.float64) * torch.tensor([1.0, 5.0, 0.1]).double()
        + torch.tensor([2.0, -1.0, 0.0]).double()
    )
    y, _ = layer(x)
    torch.testing.assert_close(y.mean(0), torch.zeros_like(y[0]), atol=1e-10, rtol=0)
    torch.testing.assert_close(y.std(0), torch.ones_like(y[0]), atol=1e-10, rtol=0)
    state = {k: v.clone() for k, v in layer.state_dict().items()}
    layer(x * 3)
    for k, v in layer.state_dict().items():
        torch.testing.assert_close(v, state[k])
    fresh = ActNorm(3).double()
    fresh.load_state_dict(state)
    torch.testing.assert_close(fresh(x * 3)[0], layer(x * 3)[0])  # no re-initialisation


def test_coupling_starts_as_identity_and_keeps_conditioning_entries():
    layer = vector_coupling(alternating_mask(5, 0), [8]).double()
    x = torch.randn(4, 5, dtype=torch.float64)
    y, logdet = layer(x)
    torch.testing.assert_close(y, x)
    assert torch.all(logdet == 0)
    y, _ = _perturb(layer)(x)
    torch.testing.assert_close(y[:, ::2], x[:, ::2])  # the mask-1 entries pass unchanged


def test_squeeze_moves_each_2x2_block_into_channels():
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    y, _ = Squeeze()(x)
    assert y.shape == (1, 4, 2, 2)
    assert y[0, :, 0, 0].tolist() == [0.0, 1.0, 4.0, 5.0]  # the top-left block


def test_variational_dequantizer_log_q_is_the_change_of_variables_density():
    deq = _perturb(VariationalDequantizer((2,), 3, hidden=8, n_layers=2))
    x = torch.tensor([[0, 2], [1, 1]])
    eps = torch.randn(2, 2, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    v, log_q = (t.detach() for t in deq(x, eps))
    u = v - x
    assert torch.all((u > 0) & (u < 1))
    for i in range(2):
        jac = jacobian(lambda e, i=i: deq(x[i : i + 1], e[None])[0][0], eps[i])  # ∂u/∂ε
        log_normal = -0.5 * float((eps[i] ** 2).sum()) - math.log(2 * math.pi)
        expected = log_normal - float(torch.linalg.slogdet(jac)[1])
        assert float(log_q[i]) == pytest.approx(expected, abs=1e-9)


def test_variational_dequantizer_density_integrates_to_one_over_the_cell():
    # one variable: q(u | x) on (0, 1) integrates to 1 (midpoint rule on u via its inverse)
    deq = _perturb(VariationalDequantizer((1,), 4, hidden=8, n_layers=3), seed=4)
    eps = torch.linspace(-9, 9, 20001, dtype=torch.float64)[:, None]
    x = torch.full((len(eps), 1), 2)
    with torch.no_grad():
        v, log_q = deq(x, eps)
    u = (v - x)[:, 0]
    assert torch.all(torch.diff(u) > 0)  # monotone in ε
    mass = torch.trapezoid(log_q.exp(), u)
    assert float(mass) == pytest.approx(1.0, abs=1e-4)


def test_uniform_dequantizer_noise_is_in_the_unit_cell():
    deq = UniformDequantizer()
    x = torch.randint(5, (100, 3))
    v, log_q = deq(x, deq.noise(x.shape, torch.Generator().manual_seed(0), dtype=torch.float64))
    assert torch.all((v >= x) & (v < x + 1)) and torch.all(log_q == 0)


def test_a_permutation_start_is_a_permutation_with_unit_determinant():
    layer = InvConv1x1(6, torch.Generator().manual_seed(3), init="permutation")
    w = layer.weight().detach()
    assert torch.equal(w.abs().sum(0), torch.ones(6)) and torch.equal(w.abs().sum(1), torch.ones(6))
    assert set(w.unique().tolist()) == {0.0, 1.0} and not torch.equal(w, torch.eye(6))
    x = torch.randn(4, 6)
    y, logdet = layer(x)
    assert torch.equal(logdet, torch.zeros(4)) and torch.equal(y.sort(1).values, x.sort(1).values)
    with pytest.raises(ValueError, match="rotation"):
        InvConv1x1(3, init="identity")
