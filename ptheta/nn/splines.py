"""Monotone rational-quadratic splines and the flow layers built on them (neural spline flows).

:func:`rational_quadratic_spline` is the elementwise bijection of Durkan et al. (2019): on
[−B, B] a monotone piecewise rational-quadratic function through K + 1 knots, outside it
the identity (linear tails; the derivatives at ±B are 1, so value and slope are continuous
there). Its parameters come straight from a network's unconstrained outputs: K bin widths
and K heights by a softmax (each at least a minimum size) and the K − 1 interior knot
derivatives by a softplus (each at least a minimum). A network output of zeros gives equal
bins and unit derivatives: the identity, so layers whose last network layer starts at
zero start as the identity, like the affine layers of :mod:`ptheta.nn.flows`.

Two :class:`~ptheta.nn.flows.Flow` layers use it: :class:`SplineCoupling` (a mask's
features condition splines of the others through an MLP, inverse in one pass) and
:class:`MADESpline` (a MADE gives the splines of every feature from the features before it,
density in one pass, inverse in D passes).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ptheta.nn.flows import MLP, Flow
from ptheta.nn.masked import made_layers, made_outputs, reuse_masked_weights

MIN_BIN_WIDTH = 1e-3  # as fractions of 2B
MIN_BIN_HEIGHT = 1e-3
MIN_DERIVATIVE = 1e-3


def spline_n_params(n_bins: int) -> int:
    """Unconstrained parameters of one spline with ``n_bins`` bins: K widths, K heights and
    K − 1 interior derivatives, 3K − 1."""
    return 3 * n_bins - 1


def _knots(raw: Tensor, bound: float, min_size: float) -> Tensor:
    """Knots (..., K + 1) from −B to B exactly; bin k, knots k to k + 1, is at least
    2B·min_size wide."""
    k = raw.shape[-1]
    if min_size * k >= 1:
        raise ValueError(f"{k} bins of at least {min_size} of the interval do not fit in it")
    # the softmax written out: torch's softmax over a last axis of K ≈ 8 entries runs ~10×
    # slower on the CPU than these elementwise operations (it vectorises along that axis);
    # the max only keeps exp in range (softmax ignores a shift), so no gradient goes to it
    e = (raw - raw.detach().amax(-1, keepdim=True)).exp()
    fractions = min_size + (1 - min_size * k) * (e / e.sum(-1, keepdim=True))  # sum 1
    inner = 2 * bound * torch.cumsum(fractions, -1)[..., :-1] - bound  # (..., K − 1)
    edge = torch.full_like(raw[..., :1], bound)
    return torch.cat([-edge, inner, edge], -1)  # (..., K + 1)


def _derivatives(raw: Tensor, min_derivative: float) -> Tensor:
    """Knot derivatives (..., K + 1): 1 at ±B (matching the identity tails), and
    min + softplus(raw + c) inside, with c chosen so that raw = 0 gives exactly 1."""
    shift = math.log(math.expm1(1 - min_derivative))
    inner = min_derivative + F.softplus(raw + shift)  # (..., K − 1)
    one = raw.new_ones(*raw.shape[:-1], 1)
    return torch.cat([one, inner, one], -1)


def rational_quadratic_spline(
    x: Tensor,
    raw_widths: Tensor,
    raw_heights: Tensor,
    raw_derivatives: Tensor,
    *,
    tail_bound: float,
    inverse: bool = False,
    min_bin_width: float = MIN_BIN_WIDTH,
    min_bin_height: float = MIN_BIN_HEIGHT,
    min_derivative: float = MIN_DERIVATIVE,
) -> tuple[Tensor, Tensor]:
    """The monotone rational-quadratic spline g on [−B, B], identity outside, elementwise.

    In bin k (knots x_k < x_{k+1} with values y_k < y_{k+1}, widths w_k, heights h_k,
    slope s_k = h_k / w_k, knot derivatives δ_k, δ_{k+1}) and with ξ = (x − x_k) / w_k:

        g(x) = y_k + h_k (s_k ξ² + δ_k ξ(1 − ξ)) / (s_k + σ_k ξ(1 − ξ)),
        σ_k = δ_k + δ_{k+1} − 2 s_k,
        g'(x) = s_k² (δ_{k+1} ξ² + 2 s_k ξ(1 − ξ) + δ_k (1 − ξ)²) / (s_k + σ_k ξ(1 − ξ))²

    (Durkan et al., 2019, eqs. 4–5). The inverse solves the quadratic a ξ² + b ξ + c = 0
    for y in bin k, with Δ = y − y_k: a = h_k (s_k − δ_k) + Δ σ_k, b = h_k δ_k − Δ σ_k,
    c = −s_k Δ, by the root ξ = 2c / (−b − √(b² − 4ac)), which has no cancellation.

    Arguments:
        x: the points (*batch) (of g in the forward direction, of g⁻¹ with ``inverse``).
        raw_widths: unconstrained (*batch, K): widths by a softmax, scaled to 2B.
        raw_heights: unconstrained (*batch, K): heights likewise.
        raw_derivatives: unconstrained (*batch, K − 1): interior knot derivatives by a
            softplus (shifted so that 0 gives 1).
        tail_bound: B; outside [−B, B] the spline is the identity.
        inverse: compute g⁻¹ instead of g.
        min_bin_width, min_bin_height: smallest bin, as a fraction of 2B.
        min_derivative: smallest interior knot derivative.

    Returns:
        (g(x), log g'(x)) or (g⁻¹(x), log |∂g⁻¹/∂x| = −log g'(g⁻¹(x))), each (*batch).

    Example:
        >>> import torch
        >>> from ptheta.nn.splines import rational_quadratic_spline
        >>> g = torch.Generator().manual_seed(0)
        >>> x, w, h, d = (torch.randn(5, *s, generator=g) for s in [(), (4,), (4,), (3,)])
        >>> y, logdet = rational_quadratic_spline(x, w, h, d, tail_bound=3.0)
        >>> back, logdet_inv = rational_quadratic_spline(y, w, h, d, tail_bound=3.0, inverse=True)
        >>> torch.allclose(back, x, atol=1e-5), torch.allclose(logdet_inv, -logdet, atol=1e-5)
        (True, True)

    References:
        Durkan, Bekasov, Murray & Papamakarios (2019), Neural Spline Flows, NeurIPS.
        Gregory & Delbourgo (1982), Piecewise rational quadratic interpolation to monotonic
        data, IMA Journal of Numerical Analysis.
    """
    k = raw_widths.shape[-1]
    batch = tuple(x.shape)
    shapes = (tuple(raw_widths.shape), tuple(raw_heights.shape), tuple(raw_derivatives.shape))
    if shapes != ((*batch, k), (*batch, k), (*batch, k - 1)):
        raise ValueError(
            f"spline parameters of shapes {shapes} for points of shape {batch}: expected "
            f"(*batch, K), (*batch, K) and (*batch, K - 1)"
        )
    bound = float(tail_bound)
    inside = (x >= -bound) & (x <= bound)
    v = x.clamp(-bound, bound)  # outside values would give NaN gradients in the masked branch
    x_knots = _knots(raw_widths, bound, min_bin_width)
    y_knots = _knots(raw_heights, bound, min_bin_height)
    deriv = _derivatives(raw_derivatives, min_derivative)  # (*batch, K + 1)

    knots = (y_knots if inverse else x_knots).detach()
    # bin of each point: how many interior knots lie at or below it, 0..K − 1
    index = torch.searchsorted(knots[..., 1:-1].contiguous(), v[..., None].contiguous(), right=True)
    # the values at both ends of each point's bin, gathered from the knots (only the
    # picked entries enter the graph: no slices or differences of whole tables)
    at, after = index, index + 1

    def pick(t: Tensor, i: Tensor) -> Tensor:
        return t.gather(-1, i)[..., 0]  # (*batch)

    x_k, y_k, d_k = pick(x_knots, at), pick(y_knots, at), pick(deriv, at)
    w_k, h_k = pick(x_knots, after) - x_k, pick(y_knots, after) - y_k
    d_k1 = pick(deriv, after)
    s_k = h_k / w_k
    sigma = d_k + d_k1 - 2 * s_k
    if inverse:
        delta = v - y_k
        a = h_k * (s_k - d_k) + delta * sigma
        b = h_k * d_k - delta * sigma
        c = -s_k * delta
        root = (b * b - 4 * a * c).clamp_min(0).sqrt()
        xi = (2 * c / (-b - root)).clamp(0, 1)
        out = x_k + xi * w_k
    else:
        xi = ((v - x_k) / w_k).clamp(0, 1)
    t = xi * (1 - xi)
    denominator = s_k + sigma * t
    if not inverse:
        out = y_k + h_k * (s_k * xi * xi + d_k * t) / denominator
    numerator = s_k * s_k * (d_k1 * xi * xi + 2 * s_k * t + d_k * (1 - xi) ** 2)
    log_deriv = torch.log(numerator) - 2 * torch.log(denominator)  # log g'(point in x space)
    out = torch.where(inside, out, x)
    log_deriv = torch.where(inside, log_deriv, torch.zeros_like(log_deriv))
    return out, -log_deriv if inverse else log_deriv


def _split(params: Tensor, n_bins: int) -> tuple[Tensor, Tensor, Tensor]:
    """(..., 3K − 1) network outputs → raw widths (..., K), heights (..., K), derivatives."""
    return params.split([n_bins, n_bins, n_bins - 1], dim=-1)


# --------------------------------------------------------------------------- coupling
class SplineCoupling(Flow):
    """Rational-quadratic spline coupling on (N, D) vectors (Durkan et al., 2019, RQ-NSF (C)).

    With m the 0/1 mask (as :class:`~ptheta.nn.flows.Coupling`'s vector masks, e.g.
    :func:`~ptheta.nn.flows.alternating_mask`), an :class:`~ptheta.nn.flows.MLP` of the
    conditioning features x_m (and the context) gives 3K − 1 spline parameters for every
    other feature, and

        y_m = x_m,    y_i = g_i(x_i) for m_i = 0,    log |det ∂y/∂x| = Σ_{m_i = 0} log g_i'(x_i).

    The conditioning features pass unchanged, so the inverse sees the same splines and
    inverts them in one pass. The network's last layer starts at zero: the identity.

    Arguments:
        mask: (D,) 0/1 tensor; 1 marks the conditioning features.
        hidden: sizes of the MLP's hidden layers.
        n_bins: K, bins of each spline.
        tail_bound: B; each spline is the identity outside [−B, B].
        context_features: size of a context input (one-hot class); 0: none.

    Example:
        >>> import torch
        >>> from ptheta.nn.flows import alternating_mask
        >>> from ptheta.nn.splines import SplineCoupling
        >>> layer = SplineCoupling(alternating_mask(4, 0), [16], n_bins=5)
        >>> x = torch.randn(3, 4)
        >>> torch.allclose(layer.inverse(layer(x)[0])[0], x, atol=1e-5)
        True
    """

    def __init__(
        self,
        mask: Tensor,
        hidden: Sequence[int],
        *,
        n_bins: int = 8,
        tail_bound: float = 3.0,
        context_features: int = 0,
    ) -> None:
        super().__init__()
        if mask.dim() != 1:
            raise ValueError(
                f"SplineCoupling takes a (D,) mask of vectors, got {tuple(mask.shape)}"
            )
        self.register_buffer("mask", mask.clone())
        self.register_buffer("cond", torch.nonzero(mask)[:, 0])
        self.register_buffer("free", torch.nonzero(mask == 0)[:, 0])
        self.n_bins, self.tail_bound = int(n_bins), float(tail_bound)
        n_out = len(self.free) * spline_n_params(self.n_bins)
        # a mask of all ones transforms nothing: no network to build
        self.net = (
            MLP(len(self.cond), hidden, n_out, context_features=context_features)
            if len(self.free)
            else nn.Identity()
        )

    def extra_repr(self) -> str:
        return (
            f"conditioning={len(self.cond)}/{len(self.mask)}, n_bins={self.n_bins}, "
            f"tail_bound={self.tail_bound}"
        )

    def _couple(self, x: Tensor, context: Tensor | None, inverse: bool) -> tuple[Tensor, Tensor]:
        if not len(self.free):
            return x, x.new_zeros(len(x))
        params = self.net(x[:, self.cond], context).reshape(len(x), len(self.free), -1)
        raw = _split(params, self.n_bins)  # (N, n_free, ·) each
        part, logdet = rational_quadratic_spline(
            x[:, self.free], *raw, tail_bound=self.tail_bound, inverse=inverse
        )
        return x.index_copy(1, self.free, part), logdet.sum(1)

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self._couple(x, context, inverse=False)

    def inverse(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self._couple(y, context, inverse=True)


# --------------------------------------------------------------------------- autoregressive
class MADESpline(Flow):
    """Masked autoregressive rational-quadratic spline transform on (N, D) vectors
    (Durkan et al., 2019, RQ-NSF (AR)).

    A MADE (:mod:`ptheta.nn.masked`) with 3K − 1 outputs per variable gives, for variable
    σ_i, the parameters of a spline g_i that depend on x_{σ_<i} only (as
    :class:`~ptheta.nn.flows.MADEAffine` gives a shift and a scale); then

        forward (density, one pass):   z_i = g_i(x_i; x_{σ_<i}),
        inverse (sampling, D passes):  x_i = g_i⁻¹(z_i; x_{σ_<i}), along σ,

    with log |det ∂z/∂x| = Σ log g_i'(x_i) (the Jacobian is triangular in the order σ).
    The output layer starts at zero: the identity.

    Arguments:
        n_features: D.
        hidden: sizes of the MADE's hidden layers.
        n_bins: K, bins of each spline.
        tail_bound: B; each spline is the identity outside [−B, B].
        ordering: LongTensor (D,), the autoregressive order (default 0..D−1).
        context_features: size of an unmasked context (one-hot class) input; 0: none.
        spread_degrees: spread the hidden units' degrees over all D variables when a layer
            is narrower than D (see :func:`~ptheta.nn.masked.made_degrees`); False keeps
            the lowest degrees (the layers of runs saved before this option).

    Example:
        >>> import torch
        >>> from ptheta.nn.splines import MADESpline
        >>> layer = MADESpline(3, [16], n_bins=4)
        >>> x = torch.randn(4, 3)
        >>> torch.allclose(layer.inverse(layer(x)[0])[0], x, atol=1e-5)
        True

    References:
        Durkan, Bekasov, Murray & Papamakarios (2019), Neural Spline Flows, NeurIPS.
        Papamakarios, Pavlakou & Murray (2017), Masked Autoregressive Flow, NeurIPS.
    """

    def __init__(
        self,
        n_features: int,
        hidden: Sequence[int],
        *,
        n_bins: int = 8,
        tail_bound: float = 3.0,
        ordering: Tensor | None = None,
        context_features: int = 0,
        spread_degrees: bool = False,
    ) -> None:
        super().__init__()
        d = n_features
        ordering = torch.arange(d) if ordering is None else torch.as_tensor(ordering)
        self.register_buffer("ordering", ordering.long())
        self.n_bins, self.tail_bound = int(n_bins), float(tail_bound)
        per = spline_n_params(self.n_bins)
        self.layers = made_layers(
            ordering, hidden, per, context_features=context_features, spread=spread_degrees
        )
        nn.init.zeros_(self.layers[-1].weight)
        nn.init.zeros_(self.layers[-1].bias)

    def extra_repr(self) -> str:
        hidden = [layer.out_features for layer in self.layers[:-1]]
        return (
            f"n_features={len(self.ordering)}, hidden={hidden}, n_bins={self.n_bins}, "
            f"tail_bound={self.tail_bound}"
        )

    def _params(self, x: Tensor, context: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
        # unit d·(3K − 1) + j belongs to variable d
        return _split(made_outputs(self.layers, x, context), self.n_bins)  # (N, D, ·) each

    def _spline(self, x: Tensor, point: Tensor, context: Tensor | None, inverse: bool):
        return rational_quadratic_spline(
            point, *self._params(x, context), tail_bound=self.tail_bound, inverse=inverse
        )

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        z, logdet = self._spline(x, x, context, inverse=False)
        return z, logdet.sum(1)

    def inverse(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        x = torch.zeros_like(y)
        with reuse_masked_weights(self):
            for d in self.ordering.tolist():  # x_d needs the x before it in the ordering
                step, _ = self._spline(x, y, context, inverse=True)
                x = x.clone()
                x[:, d] = step[:, d]
            # the splines of the finished x are those each x_d was solved with
            x, logdet = self._spline(x, y, context, inverse=True)
        return x, logdet.sum(1)
