"""Rational-quadratic splines and spline flow layers: exact inverses, derivatives, Jacobians."""

from __future__ import annotations

import pytest
import torch
from torch.autograd.functional import jacobian

from ptheta.nn.flows import alternating_mask
from ptheta.nn.splines import (
    MADESpline,
    SplineCoupling,
    _derivatives,
    _knots,
    rational_quadratic_spline,
)

B = 2.0  # the tail bound of the tests


def _params(shape: tuple[int, ...], k: int, seed: int = 0, scale: float = 2.0):
    """Raw widths, heights and derivatives (*shape, K), (*shape, K), (*shape, K − 1): far from
    zero (zero is the identity, which would test nothing)."""
    g = torch.Generator().manual_seed(seed)
    return tuple(
        scale * torch.randn(*shape, n, generator=g, dtype=torch.float64) for n in (k, k, k - 1)
    )


def _spline(x, params, inverse=False):
    return rational_quadratic_spline(x, *params, tail_bound=B, inverse=inverse)


def _points(shape, seed: int = 1) -> torch.Tensor:
    """Points (*shape) spread over [−1.5B, 1.5B]: inside and outside the interval."""
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(*shape, generator=g, dtype=torch.float64) * 2 - 1) * 1.5 * B


# --------------------------------------------------------------------------- the spline
@pytest.mark.parametrize("k", [2, 5, 10])
def test_inverse_undoes_forward_both_ways_inside_and_outside(k):
    shape = (7, 3, 40)  # any batch shape
    params = _params(shape, k)
    x = _points(shape)
    assert (x.abs() > B).any() and (x.abs() < B).any()
    y, logdet = _spline(x, params)
    assert y.shape == logdet.shape == shape
    back, logdet_inv = _spline(y, params, inverse=True)
    torch.testing.assert_close(back, x, atol=1e-9, rtol=0)
    torch.testing.assert_close(logdet_inv, -logdet, atol=1e-9, rtol=0)
    # forward ∘ inverse: start from points of the output space
    z = _points(shape, seed=2)
    x2, logdet_inv2 = _spline(z, params, inverse=True)
    z2, logdet2 = _spline(x2, params)
    torch.testing.assert_close(z2, z, atol=1e-9, rtol=0)
    torch.testing.assert_close(logdet2, -logdet_inv2, atol=1e-9, rtol=0)


@pytest.mark.parametrize("inverse", [False, True])
def test_log_derivative_equals_autograd_derivative(inverse):
    shape = (500,)
    params = _params(shape, 6)
    x = _points(shape).requires_grad_()
    y, logdet = _spline(x, params, inverse=inverse)
    (grad,) = torch.autograd.grad(y.sum(), x)  # elementwise: the diagonal Jacobian
    assert (grad > 0).all()
    torch.testing.assert_close(logdet, grad.log(), atol=1e-10, rtol=0)


@pytest.mark.parametrize("inverse", [False, True])
def test_gradients_in_the_parameters_equal_finite_differences(inverse):
    # what training follows: d(output, log-slope) / d(raw widths, heights, derivatives,
    # points) by autograd against central differences (the bins' softmax, knots and picks)
    params = _params((12,), 4, seed=5)
    x = _points((12,), seed=6)
    inputs = tuple(t.clone().requires_grad_() for t in (x, *params))

    def f(x, w, h, d):
        y, logdet = rational_quadratic_spline(x, w, h, d, tail_bound=B, inverse=inverse)
        return y, logdet

    assert torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-6, rtol=1e-5)


def test_strictly_monotone_maps_the_interval_onto_itself_and_is_identity_outside():
    k = 8
    line = torch.linspace(-2 * B, 2 * B, 20001, dtype=torch.float64)
    params = tuple(p.expand(len(line), -1) for p in _params((1,), k, seed=3, scale=3.0))
    y, logdet = _spline(line, params)
    assert (y.diff() > 0).all()
    outside = line.abs() > B
    assert torch.equal(y[outside], line[outside]) and (logdet[outside] == 0).all()
    ends = _spline(torch.tensor([-B, B], dtype=torch.float64), tuple(p[:2] for p in params))[0]
    torch.testing.assert_close(ends, torch.tensor([-B, B], dtype=torch.float64))


def test_continuous_with_continuous_derivative_at_every_knot_and_at_the_bounds():
    k = 6
    raw_w, raw_h, raw_d = _params((1,), k, seed=4, scale=3.0)
    x_knots = _knots(raw_w, B, 1e-3)
    y_knots = _knots(raw_h, B, 1e-3)
    deriv = _derivatives(raw_d, 1e-3)
    points = x_knots[0]  # the K + 1 knots, ±B included
    n = len(points)
    params = tuple(p.expand(n, -1) for p in (raw_w, raw_h, raw_d))
    # the knots map to the knots, and the slope there is the knot derivative
    y, logdet = _spline(points, params)
    torch.testing.assert_close(y, y_knots[0], atol=1e-12, rtol=0)
    torch.testing.assert_close(logdet.exp(), deriv[0], atol=1e-9, rtol=0)
    assert deriv[0, 0] == deriv[0, -1] == 1  # the tails' slope

    def jumps(eps: float) -> tuple[torch.Tensor, torch.Tensor]:
        """Across each knot: the change of value minus the linear part, and of log-slope."""
        left, log_left = _spline(points - eps, params)
        right, log_right = _spline(points + eps, params)
        return (right - left - 2 * eps * deriv[0]).abs(), (log_right - log_left).abs()

    # both vanish with the step (a jump would not): O(eps²) and O(eps)
    (value_big, slope_big), (value_small, slope_small) = jumps(1e-6), jumps(1e-8)
    assert (value_small <= 1e-3 * value_big + 1e-13).all(), (value_small, value_big)
    assert (slope_small <= 0.05 * slope_big + 1e-12).all(), (slope_small, slope_big)


def test_zero_parameters_are_the_identity_and_bad_shapes_are_refused():
    x = _points((50,))
    y, logdet = _spline(x, (torch.zeros(50, 4), torch.zeros(50, 4), torch.zeros(50, 3)))
    torch.testing.assert_close(y, x.float(), check_dtype=False)
    assert logdet.abs().max() < 1e-6
    with pytest.raises(ValueError, match="expected"):
        _spline(x, (torch.zeros(50, 4), torch.zeros(50, 4), torch.zeros(50, 4)))


def test_extreme_parameters_stay_finite_and_invertible():
    # bins at their minimum width and derivatives at their minimum: the stiffest splines
    params = _params((2000,), 12, seed=5, scale=30.0)
    x = _points((2000,), seed=6)
    y, logdet = _spline(x, params)
    back, _ = _spline(y, params, inverse=True)
    assert torch.isfinite(y).all() and torch.isfinite(logdet).all()
    torch.testing.assert_close(back, x, atol=1e-6, rtol=0)


# --------------------------------------------------------------------------- layers
def _perturb(layer: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Random parameters (the last layers start at zero = identity, which would test nothing)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in layer.parameters():
            p.add_(0.5 * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return layer.double().eval()


CTX = torch.eye(3, dtype=torch.float64)[torch.tensor([0, 2, 1, 1])]  # one-hot classes (4, 3)


def _layers():
    order = torch.tensor([2, 0, 4, 1, 3])
    return {
        "coupling": (
            SplineCoupling(alternating_mask(5, 0), [12, 12], n_bins=5, tail_bound=B),
            None,
        ),
        "coupling odd": (
            SplineCoupling(alternating_mask(5, 1), [12], n_bins=3, tail_bound=B),
            None,
        ),
        "conditional coupling": (
            SplineCoupling(
                alternating_mask(5, 1), [12], n_bins=4, tail_bound=B, context_features=3
            ),
            CTX,
        ),
        "one-variable coupling": (
            SplineCoupling(alternating_mask(1, 1), [6], n_bins=4, tail_bound=B, context_features=3),
            CTX,
        ),
        "made spline": (MADESpline(5, [16, 16], n_bins=5, tail_bound=B, ordering=order), None),
        "conditional made spline": (
            MADESpline(5, [16], n_bins=4, tail_bound=B, context_features=3),
            CTX,
        ),
    }


LAYERS = list(_layers())


def _layer_input(name: str) -> torch.Tensor:
    d = 1 if name.startswith("one-variable") else 5
    return _points((4, d), seed=7)


@pytest.mark.parametrize("name", LAYERS)
def test_layer_inverse_undoes_forward_and_negates_logdet(name):
    layer, ctx = _layers()[name]
    layer = _perturb(layer)
    x = _layer_input(name)
    y, logdet = layer(x, ctx)
    assert logdet.shape == (4,) and not torch.allclose(y, x)
    back, logdet_inv = layer.inverse(y, ctx)
    torch.testing.assert_close(back, x, atol=1e-9, rtol=0)
    torch.testing.assert_close(logdet_inv, -logdet, atol=1e-9, rtol=0)


@pytest.mark.parametrize("name", LAYERS)
def test_layer_logdet_equals_log_abs_det_of_autograd_jacobian(name):
    layer, ctx = _layers()[name]
    layer = _perturb(layer)
    x = _layer_input(name)
    logdet = layer(x, ctx)[1].detach()
    for i in range(len(x)):
        c = None if ctx is None else ctx[i : i + 1]
        jac = jacobian(lambda v, c=c: layer(v[None], c)[0][0], x[i])  # (D, D)
        _, expected = torch.linalg.slogdet(jac)
        assert float(logdet[i]) == pytest.approx(float(expected), abs=1e-9)


def test_made_spline_is_autoregressive_in_its_ordering():
    order = torch.tensor([2, 0, 3, 1])
    layer = _perturb(MADESpline(4, [16, 16], n_bins=4, tail_bound=B, ordering=order))
    x = _points((4,), seed=8) / 2  # inside the interval: every spline is at work
    jac = jacobian(lambda v: layer(v[None])[0][0], x)  # ∂z_i / ∂x_j
    rank = torch.empty(4, dtype=torch.long)
    rank[order] = torch.arange(4)
    for i in range(4):
        for j in range(4):
            if rank[j] > rank[i]:  # x_j comes after x_i: z_i must not depend on it
                assert jac[i, j] == 0
    assert jac[1, 2] != 0 and jac[1, 0] != 0  # and not trivially diagonal


def test_coupling_keeps_its_conditioning_features_and_starts_as_the_identity():
    layer = SplineCoupling(alternating_mask(4, 0), [8], n_bins=4, tail_bound=B).double()
    x = _points((6, 4))
    y, logdet = layer(x)
    torch.testing.assert_close(y, x)
    assert logdet.abs().max() < 1e-12
    y, _ = _perturb(layer)(x)
    torch.testing.assert_close(y[:, 0::2], x[:, 0::2], rtol=0, atol=0)
    assert not torch.allclose(y[:, 1::2], x[:, 1::2])
