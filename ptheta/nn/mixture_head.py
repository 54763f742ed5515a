"""A mixture-of-Gaussians output head: K diagonal Gaussians over a D-dimensional value.

A network's features h map linearly to the mixture's parameters, and the head gives the
exact log-density of a value under them and draws values from them (Bishop's mixture
density network; Graves' handwriting model uses it at every step of a sequence).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ptheta.params import check_float, check_int

LOG_2PI = math.log(2 * math.pi)


class DiagonalMixture(nn.Module):
    """The density Σ_k π_k N(x; μ_k, diag σ_k²) over x ∈ R^D of raw parameters (…, P).

    No weights of its own: a network computes the raw parameters, P = K · (1 + 2D) per
    value: the K mixing logits, the K·D means and the K·D pre-scales, in that order. The
    scales are σ = softplus(pre-scale) + ``min_scale`` (bounded below, so no component
    collapses onto a training point and the density stays finite); the log-density is
    exact. :class:`MixtureHead` computes the parameters by a linear map;
    :class:`~ptheta.nn.made_mixture.MADEMixture` by a MADE, one univariate mixture per
    variable.

    Arguments:
        dims: D, the dimension of a value.
        n_components: K ≥ 1.
        min_scale: the smallest σ, > 0 (in the units of x: standardised data, usually).
    """

    def __init__(self, dims: int, *, n_components: int = 5, min_scale: float = 1e-3) -> None:
        super().__init__()
        self.dims = check_int("mixture head", "dims", dims, low=1)
        self.n_components = check_int("mixture head", "n_components", n_components, low=1)
        self.min_scale = check_float("mixture head", "min_scale", min_scale, low=0, low_open=True)
        self.n_params = self.n_components * (1 + 2 * self.dims)

    def extra_repr(self) -> str:
        return f"dims={self.dims}, n_components={self.n_components}"

    def components(self, params: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """log π (…, K), μ (…, K, D) and σ (…, K, D) of raw parameters (…, P)."""
        k, d = self.n_components, self.dims
        logits, means, pre = params.split([k, k * d, k * d], dim=-1)
        shape = (*params.shape[:-1], k, d)
        scales = F.softplus(pre).reshape(shape) + self.min_scale
        return logits.log_softmax(-1), means.reshape(shape), scales

    def log_prob(self, params: Tensor, x: Tensor) -> Tensor:
        """Exact log p(x | params) in nats: params (…, P), x (…, D) → (…)."""
        log_weights, means, scales = self.components(params)
        z = (x.unsqueeze(-2) - means) / scales  # (…, K, D)
        log_normal = -0.5 * (z**2 + LOG_2PI).sum(-1) - scales.log().sum(-1)  # (…, K)
        return torch.logsumexp(log_weights + log_normal, dim=-1)

    def sample(self, params: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """x ~ p(x | params), (…, D); all randomness from ``generator`` (K uniforms for
        the component by the Gumbel-max trick, then D normals, per value)."""
        log_weights, means, scales = self.components(params)
        u = torch.rand(
            log_weights.shape, generator=generator, device=params.device, dtype=params.dtype
        )
        gumbel = -torch.log(-torch.log(u.clamp_min(torch.finfo(u.dtype).tiny)))
        k = (log_weights + gumbel).argmax(-1, keepdim=True)  # (…, 1)
        index = k.unsqueeze(-1).expand(*k.shape, self.dims)  # (…, 1, D)
        mean = means.gather(-2, index).squeeze(-2)
        scale = scales.gather(-2, index).squeeze(-2)
        eps = torch.randn(mean.shape, generator=generator, device=params.device, dtype=params.dtype)
        return mean + scale * eps


class MixtureHead(DiagonalMixture):
    """p(x | h) = Σ_k π_k N(x; μ_k, diag σ_k²) over x ∈ R^D, the parameters a linear map of h.

    ``forward(h)`` gives the raw parameters (…, P) of :class:`DiagonalMixture`, which
    :meth:`log_prob` and :meth:`sample` read (so a sequence model computes them once per
    step).

    Arguments:
        in_features: width of h.
        dims: D, the dimension of a value.
        n_components: K ≥ 1.
        min_scale: the smallest σ, > 0 (in the units of x: standardised data, usually).

    Example:
        >>> head = MixtureHead(8, 2, n_components=3)
        >>> params = head(torch.randn(5, 8))
        >>> x = head.sample(params, generator=torch.Generator().manual_seed(0))
        >>> x.shape, head.log_prob(params, x).shape
        (torch.Size([5, 2]), torch.Size([5]))

    References:
        Bishop, "Mixture density networks", Aston University report NCRG/94/004, 1994;
        Graves, "Generating sequences with recurrent neural networks", arXiv:1308.0850.
    """

    def __init__(
        self, in_features: int, dims: int, *, n_components: int = 5, min_scale: float = 1e-3
    ) -> None:
        super().__init__(dims, n_components=n_components, min_scale=min_scale)
        self.linear = nn.Linear(in_features, self.n_params)

    def forward(self, h: Tensor) -> Tensor:
        """Raw mixture parameters (…, P) of features h (…, in_features)."""
        return self.linear(h)
