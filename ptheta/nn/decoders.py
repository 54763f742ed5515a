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
DECODERS: tuple[str, ...] = (
    "bernoulli",
    "categorical",
    "gaussian",
    "discretised-logistic",
    "discretised-logistic-mixture",
)
# Entries of the table of every level's probability that :meth:`Output.mode` builds at once
# for the mixture (entries × K × components numbers): bounded, whatever the batch
MODE_CHUNK = 1 << 22


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


class DiscretisedLogisticMixtureOutput(Output):
    """Discretised mixture of logistics over the levels 0..K−1 (P = 3M numbers per entry).

    Level k is the bin of width 2/(K − 1) centred on c_k = 2k/(K − 1) − 1 in [−1, 1]; the
    first bin extends to −∞ and the last to +∞. Each of the M components is a logistic
    with location μ_m and scale s_m = exp(log s_m) on that axis, discretised by its bins:

        P(x = k) = Σ_m π_m [σ((c_k + h − μ_m)/s_m) − σ((c_k − h − μ_m)/s_m)],  h = 1/(K − 1),

    with σ(+∞) = 1 and σ(−∞) = 0 at the ends, so each component's K probabilities
    telescope to one (Salimans et al. 2017, PixelCNN++). The decoder's P numbers per entry
    are laid out as [mixture logits (M), locations (M), log-scales (M)]; log-scales are
    kept in [−7, 7] like the other outputs'. Each bin's mass is computed in logs without
    the paper's midpoint-density fallback: σ(a) − σ(b) = σ(a) σ(−b) (1 − e^{b − a}), so
    log P = log σ(a) + log σ(−b) + log(−expm1(−(a − b))) is finite for every location and
    scale, and so are its gradients. Components are combined with a logsumexp.

    Arguments:
        n_categories: K ≥ 2.
        n_mix: M ≥ 1, the number of logistic components.

    Example:
        >>> import torch
        >>> out = DiscretisedLogisticMixtureOutput(256, n_mix=3)
        >>> params = torch.randn(1, 9, generator=torch.Generator().manual_seed(0)).double()
        >>> levels = torch.arange(256)
        >>> round(float(out.log_prob(levels, params.expand(256, 9)).exp().sum()), 12)
        1.0

    References:
        Salimans, Karpathy, Chen & Kingma (2017), PixelCNN++: Improving the PixelCNN with
        Discretized Logistic Mixture Likelihood and Other Modifications, ICLR.
    """

    discrete = True

    def __init__(self, n_categories: int, n_mix: int = 5) -> None:
        if n_categories is None or int(n_categories) < 2:
            raise ParameterError(
                f"a discretised logistic mixture needs K >= 2 levels, got {n_categories}"
            )
        if isinstance(n_mix, bool) or not isinstance(n_mix, int) or n_mix < 1:
            raise ParameterError(f"n_mix must be an int >= 1 (logistic components), got {n_mix!r}")
        self.n_categories, self.n_mix = int(n_categories), int(n_mix)
        self.n_params = 3 * self.n_mix

    def initial_bias(self) -> Tensor:
        """A starting point for the P = 3M outputs of an untrained decoder (its last
        layer's bias): equal weights, locations at the middles of M equal parts of
        [−1, 1] and scales 1/(M + 1) (a logistic's sd is 1.8 s: neighbours overlap). The
        mixture starts close to uniform over the levels (at 256 levels and M = 5, 5.65
        nats per entry against log 256 = 5.55; one logistic of scale 1 at 0, what zero
        outputs give, 6.3) and its components differ from the first step.

        Example:
            >>> bias = DiscretisedLogisticMixtureOutput(9, n_mix=2).initial_bias()
            >>> [round(v, 4) for v in bias.tolist()]
            [0.0, 0.0, -0.5, 0.5, -1.0986, -1.0986]
        """
        m = self.n_mix
        loc = torch.linspace(-1 + 1 / m, 1 - 1 / m, m, dtype=torch.float64)
        log_scale = torch.full((m,), -math.log(m + 1), dtype=torch.float64)
        return torch.cat([torch.zeros(m, dtype=torch.float64), loc, log_scale])

    def centres(self, x: Tensor, dtype: torch.dtype | None = None) -> Tensor:
        """Levels 0..K−1 → their bin centres 2x/(K − 1) − 1 in [−1, 1], in ``dtype`` (the
        dtype of a floating ``x`` by default): the axis the locations live on."""
        x = x.to(dtype or (x.dtype if x.is_floating_point() else torch.get_default_dtype()))
        return x * (2.0 / (self.n_categories - 1)) - 1.0

    def _split(self, params: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(..., 3M) → mixture logits (unnormalised), locations, log-scales, (..., M) each."""
        logits, loc, raw = params.split(self.n_mix, dim=-1)
        return logits, loc, _log_scale(raw)

    def log_prob(self, x: Tensor, params: Tensor) -> Tensor:
        logits, loc, log_scale = self._split(params)
        k = x.unsqueeze(-1)  # (..., 1): broadcast against the components
        centre = self.centres(k, loc.dtype)
        half = 1.0 / (self.n_categories - 1)
        inv = torch.exp(-log_scale)
        upper = (centre + half - loc) * inv  # a
        lower = (centre - half - loc) * inv  # b = a − 2h/s
        # σ(a) − σ(b) = σ(a) σ(−b) (1 − e^{b − a}): every factor in logs, with a − b = 2h/s;
        # the first level is σ(a) − σ(−∞) = σ(a), the last σ(∞) − σ(b) = σ(−b)
        first, last = k == 0, k == self.n_categories - 1  # (..., 1)
        per = (
            torch.where(last, 0.0, F.logsigmoid(upper))
            + torch.where(first, 0.0, F.logsigmoid(-lower))
            + torch.where(first | last, 0.0, torch.log(-torch.expm1(-2 * half * inv)))
        )
        # Σ_m softmax(logits)_m P_m, in logs (log_softmax over a strided last axis of M
        # numbers cost a quarter of the whole on a CPU; two logsumexps do not)
        return torch.logsumexp(logits + per, dim=-1) - torch.logsumexp(logits, dim=-1)

    def sample(self, params: Tensor, generator: torch.Generator | None = None) -> Tensor:
        logits, loc, log_scale = self._split(params)
        # the component by Gumbel-max (argmax(logits + G) ~ softmax(logits)), then one
        # logistic draw from it
        gumbel = -torch.log(-torch.log(_uniform(logits.shape, logits, generator)))
        m = (logits + gumbel).argmax(-1, keepdim=True)  # (..., 1)
        mu, s = loc.gather(-1, m)[..., 0], log_scale.gather(-1, m)[..., 0].exp()
        u = _uniform(mu.shape, mu, generator)
        value = mu + s * (torch.log(u) - torch.log1p(-u))  # on the [−1, 1] axis
        # the level whose bin holds the draw: exactly the discretised distribution
        level = ((value + 1.0) * (0.5 * (self.n_categories - 1))).round()
        return level.clamp(0, self.n_categories - 1).long()

    def mode(self, params: Tensor) -> Tensor:
        shape, k = params.shape[:-1], self.n_categories
        flat = params.reshape(-1, 1, self.n_params)  # (E, 1, P)
        levels = torch.arange(k, device=params.device)
        step = max(1, MODE_CHUNK // (k * self.n_mix))
        out = [self.log_prob(levels, part).argmax(-1) for part in flat.split(step)]  # (e,)
        return torch.cat(out).reshape(shape) if out else torch.zeros(shape, dtype=torch.long)

    def __repr__(self) -> str:
        return f"DiscretisedLogisticMixtureOutput({self.n_categories}, n_mix={self.n_mix})"


def make_output(
    decoder: str,
    n_categories: int | None = None,
    variance: str | float = "learned",
    n_mix: int = 5,
) -> Output:
    """The output distribution named ``decoder`` (one of :data:`DECODERS`).

    Arguments:
        decoder: ``"bernoulli"``, ``"categorical"``, ``"gaussian"``,
            ``"discretised-logistic"`` or ``"discretised-logistic-mixture"``.
        n_categories: K for the categorical and discretised-logistic outputs.
        variance: the Gaussian's ``"learned"`` or fixed variance.
        n_mix: the mixture's number of logistic components.
    """
    if decoder == "bernoulli":
        return BernoulliOutput()
    if decoder == "categorical":
        return CategoricalOutput(n_categories)
    if decoder == "discretised-logistic":
        return DiscretisedLogisticOutput(n_categories)
    if decoder == "discretised-logistic-mixture":
        return DiscretisedLogisticMixtureOutput(n_categories, n_mix)
    if decoder == "gaussian":
        return GaussianOutput(variance)
    raise ParameterError(f"decoder must be one of {', '.join(DECODERS)}, got {decoder!r}")
