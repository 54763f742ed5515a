"""Output heads for the columns of a table: one exact distribution per column type.

A network computes, for each row, a vector of raw parameters per column; the column's
head reads them and gives the exact log-probability (or log-density) of the column's
value and draws values. Every head is a normalised distribution whatever the parameters:

- :class:`CategoricalHead`: a softmax over K levels (binary, categorical, ordinal);
- :class:`CumulativeLogitHead`: an ordinal column by a cumulative logit (proportional
  odds) model, P(x ≤ k) = σ(θ_k − η), with learned increasing thresholds θ;
- :class:`NegativeBinomialMixtureHead`: counts 0, 1, 2, ... by a mixture of negative
  binomials (overdispersed counts; a large dispersion r approaches a Poisson);
- :class:`GaussianMixtureHead`: a real value (in standardised units) by a mixture of
  Gaussians.

``log_prob(params, x)`` takes params (N, n_params) and values x (N,) (codes and counts
as floats) and returns (N,); ``sample(params, generator)`` returns (N,) values as floats,
all randomness from ``generator``. The likelihood maths runs in float32 or better (float64
for the negative binomial's log-gamma differences), whatever precision computed the
parameters (a training step under autocast computes them in bfloat16 or float16).

Example:
    >>> import torch
    >>> head = CumulativeLogitHead(4)
    >>> params = torch.randn(3, head.n_params)
    >>> head.log_probs(params).exp().sum(-1)  # every row a distribution over the 4 levels
    tensor([1.0000, 1.0000, 1.0000], grad_fn=<SumBackward1>)
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

LOG_2PI = math.log(2 * math.pi)
# The negative binomial's log-dispersion is kept within ±LOG_R_MAX: r from 3e-4 (almost
# every count 0, a long tail) to 3e3 (within 1 + μ/3000 of a Poisson's variance), where
# log Γ(k + r) − log Γ(r) stays accurate.
LOG_R_MAX = 8.0


def full_precision(params: Tensor) -> Tensor:
    """``params`` in float32 or float64 (half-precision parameters are cast to float32)."""
    return params if params.dtype in (torch.float32, torch.float64) else params.float()


class ColumnHead(nn.Module):
    """A distribution over one column's values given ``n_params`` raw parameters per row."""

    n_params: int

    def log_prob(self, params: Tensor, x: Tensor) -> Tensor:
        """Exact log p(x | params): params (N, n_params), x (N,) → (N,)."""
        raise NotImplementedError

    def sample(self, params: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """x ~ p(x | params), (N,) as floats in the params' dtype."""
        raise NotImplementedError


class LevelHead(ColumnHead):
    """A head over the levels 0..K−1 of a label column: :meth:`log_probs` gives all K."""

    def __init__(self, n_levels: int) -> None:
        super().__init__()
        if n_levels < 2:
            raise ValueError(f"a label column has at least 2 levels, got {n_levels}")
        self.n_levels = n_levels

    def log_probs(self, params: Tensor) -> Tensor:
        """log p(x = k | params) for every level k, (N, K)."""
        raise NotImplementedError

    def log_prob(self, params: Tensor, x: Tensor) -> Tensor:
        return self.log_probs(params).gather(-1, x.long()[:, None]).squeeze(-1)

    def sample(self, params: Tensor, generator: torch.Generator | None = None) -> Tensor:
        probs = self.log_probs(params).exp()
        return torch.multinomial(probs, 1, generator=generator)[:, 0].to(params.dtype)


class CategoricalHead(LevelHead):
    """p(x = k) = softmax(params)_k over K levels (K raw parameters: the logits)."""

    def __init__(self, n_levels: int) -> None:
        super().__init__(n_levels)
        self.n_params = n_levels

    def extra_repr(self) -> str:
        return f"levels={self.n_levels}"

    def log_probs(self, params: Tensor) -> Tensor:
        return full_precision(params).log_softmax(-1)


class CumulativeLogitHead(LevelHead):
    """An ordinal column by the cumulative logit model: P(x ≤ k) = σ(θ_{k+1} − η).

    One raw parameter per row, the location η; the K − 1 thresholds θ_1 < … < θ_{K−1}
    are learned parameters of the head (shared by every row: the proportional-odds model),
    kept increasing by θ_{k+1} = θ_k + softplus(g_k) + 1e-6. A level's probability is a
    difference of the logistic CDF, σ(θ_{k+1} − η) − σ(θ_k − η) (θ_0 = −∞, θ_K = +∞),
    computed as log σ(b) + log σ(−a) + log(1 − e^{a−b}) so that it stays accurate in the
    tails. The thresholds start at the logits of k / K: equal probabilities at η = 0.

    References:
        McCullagh (1980), Regression models for ordinal data, JRSS B 42(2).
    """

    def __init__(self, n_levels: int) -> None:
        super().__init__(n_levels)
        self.n_params = 1
        start = torch.logit(torch.arange(1, n_levels, dtype=torch.float64) / n_levels)
        self.first = nn.Parameter(start[:1].clone().float())
        gaps = (start[1:] - start[:-1] - 1e-6).expm1().log()  # inverse softplus
        self.gaps = nn.Parameter(gaps.float())

    def extra_repr(self) -> str:
        return f"levels={self.n_levels}, thresholds={self.n_levels - 1}"

    def thresholds(self) -> Tensor:
        """θ_1 < … < θ_{K−1}, (K − 1,)."""
        steps = F.softplus(self.gaps) + 1e-6
        return torch.cat([self.first, self.first + steps.cumsum(0)])

    def log_probs(self, params: Tensor) -> Tensor:
        params = full_precision(params)
        theta = self.thresholds().to(params.dtype)  # (K−1,)
        c = theta - params[:, :1]  # (N, K−1): θ_k − η
        lowest = F.logsigmoid(c[:, :1])
        highest = F.logsigmoid(-c[:, -1:])
        # level k in 1..K−2: σ(b) − σ(a) = σ(b) σ(−a) (1 − e^{a−b}), a = θ_k − η, b = θ_{k+1} − η
        gap = torch.log(-torch.expm1(theta[:-1] - theta[1:]))  # (K−2,)
        middle = F.logsigmoid(c[:, 1:]) + F.logsigmoid(-c[:, :-1]) + gap
        return torch.cat([lowest, middle, highest], dim=-1)


class NegativeBinomialMixtureHead(ColumnHead):
    """Counts 0, 1, 2, … by a mixture of C negative binomials.

    p(k) = Σ_c π_c NB(k; μ_c, r_c), NB(k; μ, r) = Γ(k + r) / (Γ(r) k!) (r / (r + μ))^r
    (μ / (r + μ))^k: mean μ, variance μ + μ² / r. The 3C raw parameters are the mixing
    logits, log μ_c − ``log_mean`` (so the counts' mean is where training starts) and the
    pre-dispersions (log r_c = 8 tanh(pre / 8)). Draws are Poisson(Gamma(r, μ / r)).

    Arguments:
        n_components: C ≥ 1.
        log_mean: the offset of log μ (the log of the column's mean count).
    """

    def __init__(self, n_components: int, log_mean: float = 0.0) -> None:
        super().__init__()
        self.n_components = n_components
        self.n_params = 3 * n_components
        self.register_buffer("log_mean", torch.tensor(float(log_mean)))

    def extra_repr(self) -> str:
        return f"n_components={self.n_components}"

    def components(self, params: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """log π (N, C), log μ (N, C) and log r (N, C), in float64."""
        log_w, a, b = params.double().split(self.n_components, dim=-1)
        log_r = LOG_R_MAX * torch.tanh(b / LOG_R_MAX)
        return log_w.log_softmax(-1), a + self.log_mean.double(), log_r

    def log_prob(self, params: Tensor, x: Tensor) -> Tensor:
        log_w, log_mu, log_r = self.components(params)
        k = x.double()[:, None]  # (N, 1)
        r = log_r.exp()
        log_nb = (
            torch.lgamma(k + r) - torch.lgamma(r) - torch.lgamma(k + 1)
            - r * F.softplus(log_mu - log_r) - k * F.softplus(log_r - log_mu)
        )  # fmt: skip
        out = torch.logsumexp(log_w + log_nb, dim=-1)
        return out.to(full_precision(params).dtype)

    def sample(self, params: Tensor, generator: torch.Generator | None = None) -> Tensor:
        log_w, log_mu, log_r = self.components(params)
        c = torch.multinomial(log_w.exp(), 1, generator=generator)  # (N, 1)
        mu, r = log_mu.gather(-1, c)[:, 0].exp(), log_r.gather(-1, c)[:, 0].exp()
        rate = sample_gamma(r, generator) * mu / r
        return torch.poisson(rate, generator=generator).to(params.dtype)


class GaussianMixtureHead(ColumnHead):
    """A real value (standardised units) by a mixture of C Gaussians.

    p(z) = Σ_c π_c N(z; m_c, s_c²) with s_c = softplus(pre_c) + ``min_scale`` (bounded
    below, so no component collapses onto one training value). The 3C raw parameters are
    the mixing logits, the means (plus fixed offsets spread over [−1, 1], so the components
    start apart) and the pre-scales.

    Arguments:
        n_components: C ≥ 1.
        min_scale: the smallest s, > 0.
    """

    def __init__(self, n_components: int, min_scale: float = 1e-3) -> None:
        super().__init__()
        self.n_components = n_components
        self.n_params = 3 * n_components
        self.min_scale = float(min_scale)
        spread = torch.linspace(-1.0, 1.0, n_components) if n_components > 1 else torch.zeros(1)
        self.register_buffer("spread", spread)

    def extra_repr(self) -> str:
        return f"n_components={self.n_components}, min_scale={self.min_scale:g}"

    def components(self, params: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """log π, m and s, each (N, C)."""
        log_w, means, pre = full_precision(params).split(self.n_components, dim=-1)
        scales = F.softplus(pre) + self.min_scale
        return log_w.log_softmax(-1), means + self.spread.to(means.dtype), scales

    def log_prob(self, params: Tensor, x: Tensor) -> Tensor:
        log_w, means, scales = self.components(params)
        z = (x.to(means.dtype)[:, None] - means) / scales  # (N, C)
        log_normal = -0.5 * (z**2 + LOG_2PI) - scales.log()
        return torch.logsumexp(log_w + log_normal, dim=-1)

    def sample(self, params: Tensor, generator: torch.Generator | None = None) -> Tensor:
        log_w, means, scales = self.components(params)
        c = torch.multinomial(log_w.exp(), 1, generator=generator)  # (N, 1)
        eps = torch.randn(len(c), generator=generator, dtype=means.dtype, device=means.device)
        return (means.gather(-1, c)[:, 0] + scales.gather(-1, c)[:, 0] * eps).to(params.dtype)


def sample_gamma(shape: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Gamma(shape, 1) draws, elementwise, all randomness from ``generator``.

    Marsaglia & Tsang's squeeze-free rejection method for shape ≥ 1 (accepts about 95% or
    more of its proposals); a shape a < 1 draws Gamma(a + 1) · U^{1/a}.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> draws = sample_gamma(torch.full((20000,), 2.5, dtype=torch.float64), g)
        >>> round(float(draws.mean()), 1), round(float(draws.var()), 1)  # mean = var = 2.5
        (2.5, 2.5)

    References:
        Marsaglia & Tsang (2000), A simple method for generating gamma variables, ACM
        TOMS 26(3).
    """
    small = shape < 1
    a = torch.where(small, shape + 1, shape)
    d = a - 1.0 / 3.0
    c = 1.0 / torch.sqrt(9.0 * d)
    out = torch.empty_like(a)
    todo = torch.ones_like(a, dtype=torch.bool)
    while bool(todo.any()):
        idx = todo.nonzero().squeeze(1)
        opts = {"generator": generator, "dtype": a.dtype, "device": a.device}
        x, u = torch.randn(len(idx), **opts), torch.rand(len(idx), **opts)
        dd, cc = d[idx], c[idx]
        v = (1 + cc * x) ** 3
        positive = v > 0
        log_v = torch.log(torch.where(positive, v, torch.ones_like(v)))
        ok = positive & (torch.log(u) < 0.5 * x**2 + dd - dd * v + dd * log_v)
        out[idx[ok]] = (dd * v)[ok]
        todo[idx[ok]] = False
    u = torch.rand(a.shape, generator=generator, dtype=a.dtype, device=a.device)
    return torch.where(small, out * u ** (1.0 / shape), out)
