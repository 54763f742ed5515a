"""Output distributions of decoders: p(x | params) per entry for each data kind.

A decoder network emits ``n_params`` numbers per data entry, a tensor ``params`` of shape
(..., P); an output distribution turns them into a factorised distribution over the entries
x of shape (...). As in ``torch.distributions`` with no event dimensions, ``log_prob``
returns one value per entry (shape of x) and callers sum over the entries they model, which
also lets them drop the factors of missing entries to get a marginal.

All sampling draws its randomness from the ``generator`` argument, so it is reproducible.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from ptheta.errors import ParameterError

# Scales of the continuous outputs are kept in a range where float32 stays finite.
MIN_LOG_SCALE, MAX_LOG_SCALE = -7.0, 7.0
DECODERS: tuple[str, ...] = ("bernoulli", "categorical", "gaussian", "discretised-logistic")


def _uniform(shape: torch.Size, like: Tensor, generator: torch.Generator | None) -> Tensor:
    """Uniforms in (0, 1), never exactly 0 or 1, in the dtype and device of ``like``."""
    u = torch.rand(shape, generator=generator, device=like.device, dtype=like.dtype)
    tiny = torch.finfo(like.dtype).eps
    return u.clamp(tiny, 1 - tiny)


def _log_scale(raw: Tensor) -> Tensor:
    return raw.clamp(MIN_LOG_SCALE, MAX_LOG_SCALE)


class Output:
    """A factorised output distribution; see the module docstring.

    Attributes:
        n_params: P, numbers per entry the decoder emits.
        discrete: whether entries are levels 0..K−1 (LongTensor samples) or reals.
        n_categories: K for discrete outputs, None for continuous ones.
    """

    n_params: int = 1
    discrete: bool = True
    n_categories: int | None = None

    def log_prob(self, x: Tensor, params: Tensor) -> Tensor:
        """log p(x | params) per entry in nats: x (...), params (..., P) → (...)."""
        raise NotImplementedError

    def sample(self, params: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """One draw per entry: params (..., P) → (...) (LongTensor when discrete)."""
        raise NotImplementedError

    def mode(self, params: Tensor) -> Tensor:
        """The most probable value of each entry (the mean for a Gaussian): (..., P) → (...)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class BernoulliOutput(Output):
    """Bernoulli entries in {0, 1} with one logit each (P = 1).

    Example:
        >>> import torch
        >>> out = BernoulliOutput()
        >>> logits = torch.zeros(2, 3, 1)
        >>> out.log_prob(torch.ones(2, 3, dtype=torch.long), logits).exp()
        tensor([[0.5000, 0.5000, 0.5000],
                [0.5000, 0.5000, 0.5000]])
    """

    n_params, discrete, n_categories = 1, True, 2

    def log_prob(self, x: Tensor, params: Tensor) -> Tensor:
        logits = params[..., 0]
        # log σ(l) for x = 1, log σ(−l) for x = 0
        return -F.softplus(torch.where(x.bool(), -logits, logits))

    def sample(self, params: Tensor, generator: torch.Generator | None = None) -> Tensor:
        u = _uniform(params.shape[:-1], params, generator)
        return (u < torch.sigmoid(params[..., 0])).long()

    def mode(self, params: Tensor) -> Tensor:
        return (params[..., 0] > 0).long()


class CategoricalOutput(Output):
    """Categorical entries over K levels with K logits each (P = K).

    Arguments:
        n_categories: K ≥ 2.

    Example:
        >>> import torch
        >>> out = CategoricalOutput(4)
        >>> params = torch.randn(5, 4)
        >>> levels = torch.arange(4).expand(5, 4)
        >>> out.log_prob(levels, params[:, None].expand(5, 4, 4)).exp().sum(1)
        tensor([1.0000, 1.0000, 1.0000, 1.0000, 1.0000])
    """

    discrete = True

    def __init__(self, n_categories: int) -> None:
        if n_categories < 2:
            raise ParameterError(f"a categorical output needs K >= 2 levels, got {n_categories}")
        self.n_categories = self.n_params = int(n_categories)

    def log_prob(self, x: Tensor, params: Tensor) -> Tensor:
        return params.log_softmax(-1).gather(-1, x.long().unsqueeze(-1)).squeeze(-1)

    def sample(self, params: Tensor, generator: torch.Generator | None = None) -> Tensor:
        # Gumbel-max: argmax(logits + G) with G ~ Gumbel(0, 1) is a draw from softmax(logits)
        gumbel = -torch.log(-torch.log(_uniform(params.shape, params, generator)))
        return (params.log_softmax(-1) + gumbel).argmax(-1)

    def mode(self, params: Tensor) -> Tensor:
        return params.argmax(-1)

    def __repr__(self) -> str:
        return f"CategoricalOutput({self.n_categories})"


class GaussianOutput(Output):
    """Gaussian entries N(μ, σ²): ``variance="learned"`` (P = 2: μ and log σ per entry, log σ
    kept in [−7, 7]) or a fixed variance σ² > 0 (P = 1: μ only).

    Example:
        >>> import torch
        >>> out = GaussianOutput(1.0)
        >>> round(float(out.log_prob(torch.zeros(1), torch.zeros(1, 1))[0]), 6)  # −½ log 2π
        -0.918939
    """

    discrete, n_categories = False, None

    def __init__(self, variance: str | float = "learned") -> None:
        if variance == "learned":
            self.n_params, self.log_scale = 2, None
        elif isinstance(variance, (int, float)) and not isinstance(variance, bool) and variance > 0:
            self.n_params, self.log_scale = 1, 0.5 * math.log(variance)
        else:
            raise ParameterError(
                f"decoder_variance must be 'learned' or a number > 0, got {variance!r}"
            )
        self.variance = variance

    def _mean_log_scale(self, params: Tensor) -> tuple[Tensor, Tensor]:
        if self.log_scale is None:
            return params[..., 0], _log_scale(params[..., 1])
        return params[..., 0], torch.full_like(params[..., 0], self.log_scale)

    def log_prob(self, x: Tensor, params: Tensor) -> Tensor:
        mean, log_scale = self._mean_log_scale(params)
        z = (x - mean) * torch.exp(-log_scale)
        return -0.5 * z**2 - log_scale - 0.5 * math.log(2 * math.pi)

    def sample(self, params: Tensor, generator: torch.Generator | None = None) -> Tensor:
        mean, log_scale = self._mean_log_scale(params)
        eps = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        return mean + log_scale.exp() * eps

    def mode(self, params: Tensor) -> Tensor:
        return params[..., 0]

    def __repr__(self) -> str:
        return f"GaussianOutput({self.variance!r})"


class DiscretisedLogisticOutput(Output):
    """Discretised logistic over the levels 0..K−1 (P = 2: location μ and log-scale log s).

    P(x = k) = σ((k + ½ − μ)/s) − σ((k − ½ − μ)/s) for interior levels; the first level
    takes all the mass below ½ and the last all the mass above K − 3/2, so the K
    probabilities telescope to exactly one: a proper pmf over the levels, ordered, with two
    numbers per entry instead of K (Salimans et al. 2017, in level units).

    Arguments:
        n_categories: K ≥ 2.

    Example:
        >>> import torch
        >>> out = DiscretisedLogisticOutput(17)
        >>> levels = torch.arange(17)
        >>> params = torch.tensor([[8.0, 0.5]]).expand(17, 2)
        >>> round(float(out.log_prob(levels, params).exp().sum()), 6)
        1.0

    References:
        Salimans, Karpathy, Chen & Kingma (2017), PixelCNN++: Improving the PixelCNN with
        Discretized Logistic Mixture Likelihood and Other Modifications, ICLR.
    """

    discrete, n_params = True, 2

    def __init__(self, n_categories: int) -> None:
        if n_categories < 2:
            raise ParameterError(
                f"a discretised logistic output needs K >= 2 levels, got {n_categories}"
            )
        self.n_categories = int(n_categories)

    def log_prob(self, x: Tensor, params: Tensor) -> Tensor:
        mean, log_scale = params[..., 0], _log_scale(params[..., 1])
        x = x.to(mean.dtype)
        inv = torch.exp(-log_scale)
        upper = (x + 0.5 - mean) * inv  # a
        lower = (x - 0.5 - mean) * inv  # b = a − 1/s
        # σ(a) − σ(b) = σ(a) σ(−b) (1 − e^{b − a}): stable in logs, with b − a = −1/s
        interior = F.logsigmoid(upper) + F.logsigmoid(-lower) + torch.log(-torch.expm1(-inv))
        out = torch.where(x == 0, F.logsigmoid(upper), interior)
        return torch.where(x == self.n_categories - 1, F.logsigmoid(-lower), out)

    def sample(self, params: Tensor, generator: torch.Generator | None = None) -> Tensor:
        mean, log_scale = params[..., 0], _log_scale(params[..., 1])
        u = _uniform(mean.shape, mean, generator)
        value = mean + log_scale.exp() * (torch.log(u) - torch.log1p(-u))  # a logistic draw
        # the level whose bin holds the draw: exactly the discretised distribution
        return value.round().clamp(0, self.n_categories - 1).long()

    def mode(self, params: Tensor) -> Tensor:
        levels = torch.arange(self.n_categories, device=params.device)
        table = self.log_prob(levels, params.unsqueeze(-2))  # (..., K)
        return table.argmax(-1)

    def __repr__(self) -> str:
        return f"DiscretisedLogisticOutput({self.n_categories})"


def make_output(
    decoder: str, n_categories: int | None = None, variance: str | float = "learned"
) -> Output:
    """The output distribution named ``decoder`` (one of :data:`DECODERS`).

    Arguments:
        decoder: ``"bernoulli"``, ``"categorical"``, ``"gaussian"`` or
            ``"discretised-logistic"``.
        n_categories: K for the categorical and discretised-logistic outputs.
        variance: the Gaussian's ``"learned"`` or fixed variance.
    """
    if decoder == "bernoulli":
        return BernoulliOutput()
    if decoder == "categorical":
        return CategoricalOutput(n_categories)
    if decoder == "discretised-logistic":
        return DiscretisedLogisticOutput(n_categories)
    if decoder == "gaussian":
        return GaussianOutput(variance)
    raise ParameterError(f"decoder must be one of {', '.join(DECODERS)}, got {decoder!r}")
