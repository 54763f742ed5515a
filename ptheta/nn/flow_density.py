"""The density of a normalizing flow: a base (a standard or learned Gaussian, or a MADE
MoG) under an invertible transform, with the dequantisation of discrete data and its
Monte-Carlo bound. realnvp, maf, glow and nsf each build their transform and wrap it here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from ptheta.nn.flows import Flow, one_hot_context
from ptheta.nn.made_mixture import MADEMixture
from ptheta.nn.noise import example_keys, mean_and_stderr
from ptheta.nn.shapes import batched, sampled

if TYPE_CHECKING:
    from ptheta.data.spec import DataSpec
    from ptheta.params import Config

BASES = ("normal", "learned", "mog")
# Gaussians per conditional of the MADE MoG base (the MAF paper's MAF MoG used 10)
MOG_COMPONENTS = 10
# Units of the MADE MoG base's one hidden layer (the flows' default, see _Flow._mog_base):
# the MADE family's width (ptheta.models.made.HIDDEN). On 28×28 binary digits in five CPU
# minutes (maf, one MADE layer; test bound): with hidden=256, whose base then had two
# layers of 256 units and 10 components, 150.1 nats; hidden=64 over a base of one layer
# of 1,024 units and 3 components (K + 1 for binary data), 144.5; with weight decay 1,
# 125.8 with 3 components and 133.8 with 10 (whose steps are slower: 19 epochs in the
# budget against 64)
MOG_HIDDEN = 1024
# At most this many weights in the MADE MoG base's output layer (D · 3K rows): 1,024 units
# on 784 binary pixels hold 7.2 M; on 3 × 32 × 32 images of 256 levels (10 components) the
# layer narrows to 91 units rather than hold 94 M
MOG_WEIGHTS = 2**23
_LOG_2PI = math.log(2 * math.pi)


class FlowDensity(nn.Module):
    """A normalizing flow density, optionally of dequantised discrete data (module level).

    ``transform`` maps an example x (N, *event_shape) to a flat latent z (N, D) with
    log |det ∂z/∂x|; the base is a diagonal Gaussian N(loc, exp(log_scale)²) (standard
    normal unless ``base="learned"``), or with ``base="mog"`` a MADE whose conditionals are
    mixtures of ``n_components`` Gaussians (:class:`~ptheta.nn.made_mixture.MADEMixture`,
    the MAF paper's MADE MoG). Then:

    - continuous data: ``log_prob(x) = log p_z(f(x)) + log |det ∂f/∂x|``, exact;
    - discrete data (``n_categories`` = K): x is an integer vector, and ``log_prob`` is the
      mean of log p(x + u_s) − log q(u_s | x) over ``n_dequant_samples`` independent draws
      u_s ~ q(u | x): an unbiased *estimate* of the dequantisation bound
      E_u[log p(x + u) − log q(u | x)] ≤ log P(x), not a bound itself (one score can exceed
      the bound by its Monte-Carlo error; :meth:`log_prob_with_std` gives that error). Since
      exp(mean of logs) ≤ mean of exp, E[exp(log_prob)] ≤ E_q[p(x + u)/q(u | x)] = P(x).
      The draws of an example are a fixed function of (``seed``, the example's values)
      (:func:`~ptheta.nn.noise.example_keys`): scores are deterministic and do not
      depend on the batch. ``loss`` uses one fresh draw from torch's global RNG (the
      Trainer seeds it).
    - ``sample`` pushes base draws through the inverse; discrete samples are floor(x),
      clipped to 0..K−1 (mass that the density puts outside [0, K)^D goes to the edge
      cells; it is small once fitted).

    Shapes (:mod:`ptheta.nn.shapes`): ``log_prob``, ``log_prob_with_std`` and ``loss``
    take x (*batch, *event_shape) (reals of any float or integer dtype, or discrete levels
    of any integer dtype) and y (*batch), and return (*batch); ``sample`` takes a sample
    shape.

    Arguments:
        transform: the :class:`~ptheta.nn.flows.Flow` from data to latent, ending flat.
        event_shape: shape of one example.
        n_categories: K for discrete data (then ``dequantizer`` is required); None: continuous.
        n_classes: classes of a conditional flow (one-hot context); None: unconditional.
        base: ``"normal"`` (fixed N(0, I)), ``"learned"`` (learned diagonal Gaussian) or
            ``"mog"`` (MADE MoG).
        base_hidden: hidden layer sizes of the MADE MoG base.
        n_components: Gaussians per conditional of the MADE MoG base.
        dequantizer: :class:`~ptheta.nn.dequantize.UniformDequantizer` or
            :class:`~ptheta.nn.dequantize.VariationalDequantizer`.
        n_dequant_samples: draws of u per example in ``log_prob``.
        seed: with each example's values, seeds its draws in ``log_prob``.

    Example:
        >>> import torch
        >>> from ptheta.nn.flow_density import FlowDensity
        >>> from ptheta.nn.flows import FlowSequence, alternating_mask, vector_coupling
        >>> layers = [vector_coupling(alternating_mask(2, i % 2), [16]) for i in range(4)]
        >>> flow = FlowDensity(FlowSequence(layers), (2,))
        >>> x = flow.sample(5, generator=torch.Generator().manual_seed(0))
        >>> x.shape, flow.log_prob(x).shape
        (torch.Size([5, 2]), torch.Size([5]))

    References:
        Dinh, Sohl-Dickstein & Bengio (2017); Papamakarios et al. (2021), Normalizing Flows
        for Probabilistic Modeling and Inference, JMLR.
    """

    @classmethod
    def from_config(
        cls,
        config: Config,
        spec: DataSpec,
        n_classes: int | None = None,
        *,
        transform: Flow,
        dequantizer: nn.Module | None = None,
        base_hidden: Sequence[int] = (),
        n_components: int = MOG_COMPONENTS,
    ) -> FlowDensity:
        """The density of a flow family's config (``base``, ``n_dequant_samples``,
        ``seed``) around the estimator's ``transform`` (and ``dequantizer`` on discrete
        data) for data of ``spec``; ``base_hidden`` and ``n_components`` shape a MADE MoG
        base (``base_hidden`` empty: two layers of the config's ``hidden``)."""
        return cls(
            transform,
            spec.event_shape,
            n_categories=spec.n_categories if spec.is_discrete else None,
            n_classes=n_classes,
            base=config.base,
            base_hidden=list(base_hidden) or [config.hidden] * 2,
            n_components=n_components,
            dequantizer=dequantizer,
            n_dequant_samples=config.n_dequant_samples,
            seed=config.seed,
        )

    def __init__(
        self,
        transform: Flow,
        event_shape: Sequence[int],
        *,
        n_categories: int | None = None,
        n_classes: int | None = None,
        base: str = "normal",
        base_hidden: Sequence[int] = (64, 64),
        n_components: int = MOG_COMPONENTS,
        dequantizer: nn.Module | None = None,
        n_dequant_samples: int = 16,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if n_categories is not None and dequantizer is None:
            raise ValueError("discrete data (n_categories) needs a dequantizer")
        self.transform = transform
        self.event_shape = tuple(event_shape)
        self.n_dims = math.prod(self.event_shape)
        self.n_categories, self.n_classes = n_categories, n_classes
        self.dequantizer = dequantizer
        self.n_dequant_samples, self.seed = n_dequant_samples, seed
        if base not in BASES:
            raise ValueError(f"base must be one of {BASES}, got {base!r}")
        self.base = base
        loc, log_scale = torch.zeros(self.n_dims), torch.zeros(self.n_dims)
        self.learned_base = base == "learned"
        if self.learned_base:
            self.loc, self.log_scale = nn.Parameter(loc), nn.Parameter(log_scale)
        else:  # (the MADE MoG base leaves them at 0: they give the dtype and device)
            self.register_buffer("loc", loc)
            self.register_buffer("log_scale", log_scale)
        self.base_net = (
            MADEMixture(
                self.n_dims,
                list(base_hidden),
                n_components=n_components,
                context_features=n_classes or 0,
            )
            if base == "mog"
            else None
        )

    def extra_repr(self) -> str:
        parts = [f"event_shape={self.event_shape}", f"base={self.base}"]
        if self.n_categories is not None:
            parts.append(f"n_categories={self.n_categories}")
        if self.n_classes is not None:
            parts.append(f"n_classes={self.n_classes}")
        return ", ".join(parts)

    def _context(self, y: Tensor | None) -> Tensor | None:
        return one_hot_context(y, self.n_classes, self.loc.dtype)

    def base_log_prob(self, z: Tensor, context: Tensor | None = None) -> Tensor:
        """The base log-density of flat latents (N, D) → (N,): log N(z; loc,
        diag(exp(2·log_scale))), or the MADE MoG's (which alone reads ``context``)."""
        if self.base_net is not None:
            return self.base_net.log_prob(z, context)
        if not self.learned_base:
            return -0.5 * (z**2).sum(1) - 0.5 * self.n_dims * _LOG_2PI
        u = (z - self.loc) * (-self.log_scale).exp()
        return -0.5 * (u**2).sum(1) - 0.5 * self.n_dims * _LOG_2PI - self.log_scale.sum()

    def density(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """Exact log-density of real-valued x (N, *event_shape) in nats, (N,)."""
        context = self._context(y)
        z, logdet = self.transform(x.to(self.loc.dtype), context)
        return self.base_log_prob(z.flatten(1), context) + logdet

    def base_sample(
        self, n: int, context: Tensor | None = None, generator: torch.Generator | None = None
    ) -> Tensor:
        """n base draws (n, D); all randomness from ``generator``."""
        if self.base_net is not None:
            return self.base_net.sample(n, context, generator)
        eps = torch.randn(
            n, self.n_dims, generator=generator, device=self.loc.device, dtype=self.loc.dtype
        )
        return self.loc + self.log_scale.exp() * eps

    def dequantized(self, x: Tensor, noise: Tensor) -> tuple[Tensor, Tensor]:
        """(x + u, log q(u | x)) for integer x and the dequantiser's ``noise``."""
        return self.dequantizer(x, noise)

    def dequantization_draws(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """log p(x + u_s) − log q(u_s | x) for the ``n_dequant_samples`` draws u_s of each
        (integer) example, (S, N); each row's draws depend on ``seed`` and its values only."""
        keys = example_keys(x, self.seed)
        terms = []
        for s in range(self.n_dequant_samples):
            # CPU float64 draws: the same on every device
            noise = self.dequantizer.keyed_noise(keys, s, self.event_shape)
            v, log_q = self.dequantized(x, noise.to(device=self.loc.device, dtype=self.loc.dtype))
            terms.append(self.density(v, y) - log_q)
        return torch.stack(terms)

    @batched(outputs=2)
    def log_prob_with_std(self, x: Tensor, y: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """:meth:`log_prob` and its Monte-Carlo standard error, (*batch) each (zeros on
        continuous data, NaN with a single draw)."""
        if self.n_categories is None:
            lp = self.density(x, y)
            return lp, torch.zeros_like(lp)
        return mean_and_stderr(self.dequantization_draws(x, y))

    @batched
    def log_prob(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """Exact log-density (continuous) or the estimate of the dequantisation bound
        (discrete), (*batch)."""
        if self.n_categories is None:
            return self.density(x, y)
        return self.dequantization_draws(x, y).mean(0)

    @batched
    def loss(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """Per-example −log p(x) (continuous) or −(log p(x + u) − log q(u | x)), (*batch)."""
        if self.n_categories is None:
            return -self.density(x, y)
        noise = self.dequantizer.noise(x.shape, device=self.loc.device, dtype=self.loc.dtype)
        v, log_q = self.dequantized(x, noise)
        return log_q - self.density(v, y)

    @sampled
    @torch.no_grad()
    def sample(
        self, n: int, y: Tensor | None = None, generator: torch.Generator | None = None
    ) -> Tensor:
        """Draws (*sample_shape, *event_shape), ``sample_shape`` an int n, a tuple, or ()
        for one: float, or LongTensor levels for discrete data.

        All randomness comes from ``generator`` (on the module's device).
        """
        context = self._context(y)
        x, _ = self.transform.inverse(self.base_sample(n, context, generator), context)
        x = x.reshape(n, *self.event_shape)
        if self.n_categories is None:
            return x
        return x.floor().clamp(0, self.n_categories - 1).long()

    def _point(self, x: Tensor) -> Tensor:
        # discrete data: the centre of the unit cell, x + ½
        return x.to(self.loc.dtype) + (0.5 if self.n_categories is not None else 0.0)

    def embed(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """z = f(x) (discrete data: of the cell centre x + ½), flat (N, D)."""
        return self.transform(self._point(x), self._context(y))[0].flatten(1)

    def steps(self, x: Tensor, y: Tensor | None = None) -> list[Tensor]:
        """x (cell centres for discrete data), then the points after every layer."""
        return self.transform.steps(self._point(x), self._context(y))
