"""Variational autoencoders: ELBO training, IWAE estimates of log p(x), conditional VAE."""

from __future__ import annotations

import itertools
import math
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ptheta.data.spec import DataSpec, Split, check_values
from ptheta.errors import CapabilityError, DataError
from ptheta.models.capabilities import Capabilities
from ptheta.models.neural import CONDITIONAL, NeuralModel
from ptheta.nn.decoders import DECODERS, Output, make_output
from ptheta.nn.device import resolve_dtype
from ptheta.nn.noise import example_keys, keyed_normal
from ptheta.nn.shapes import batched, sampled
from ptheta.params import (
    Choice,
    Config,
    Float,
    Int,
    IntList,
    OneOf,
    Param,
    check_int,
)

LOG_2PI = math.log(2 * math.pi)
# Rows (examples × importance samples) the decoder sees at once when estimating log p(x).
IWAE_ROWS = 8192
# Seed offset of the importance-sampling noise of score_samples / elbo (see LatentModel).
SCORE_SEED = 7919
ARCHITECTURES: tuple[str, ...] = ("mlp", "conv")
# Posterior-mean variance above which a latent dimension counts as active (Burda et al.).
ACTIVE_THRESHOLD = 0.01


# ---------------------------------------------------------------------------------------
# Module level


class LatentVariableModule(nn.Module):
    """What every VAE-like module shares: p(z) = N(0, I), a diagonal Gaussian q(z | x),
    the β-weighted ELBO with KL warm-up and free bits, and the IWAE estimate of log p(x).

    Subclasses implement ``encode(x, y) → (mean, logvar)`` (each (N, L)),
    ``log_px(x, z, y, mask=None) → (N,)`` (log p(x | z, y), over the entries where
    ``mask`` is True when given) and ``decode_sample(z, y, generator) → x``.

    The KL weight rises linearly from 0 to ``beta`` over the first ``warmup_steps``
    training steps: β_t = beta · min(1, t / warmup_steps), t the number of ``loss`` calls
    made in training mode so far. The counter t is a registered buffer (``step``), so it is
    saved in checkpoints and a resumed run continues the schedule exactly.

    With ``free_bits`` λ > 0 the KL of latent dimension j enters the loss as
    max(λ, KL_j averaged over the batch) (Kingma et al. 2016): a dimension whose average KL
    is below λ nats is not pushed further towards the prior. Per example this is
    KL_ij where the batch mean of dimension j is ≥ λ, and the constant λ elsewhere, so the
    batch mean of ``loss`` is exactly the free-bits objective.

    Shapes (:mod:`ptheta.nn.shapes`): ``loss``, ``log_prob``, ``log_prob_with_std`` and
    ``elbo`` take x (*batch, *event_shape) (discrete levels of any integer dtype, or reals),
    y and ``keys`` (*batch), and return (*batch); ``sample`` takes a sample shape. Subclasses
    set ``event_shape`` and ``n_categories`` (None for real inputs).
    """

    def __init__(
        self,
        latent_dim: int,
        *,
        beta: float = 1.0,
        warmup_steps: int = 0,
        free_bits: float = 0.0,
        k: int = 100,
        n_classes: int | None = None,
    ) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.beta = beta
        self.warmup_steps = warmup_steps
        self.free_bits = free_bits
        self.k = k
        self.n_classes = n_classes
        self.register_buffer("step", torch.zeros((), dtype=torch.long))

    def extra_repr(self) -> str:
        classes = f", n_classes={self.n_classes}" if self.n_classes else ""
        return f"latent_dim={self.latent_dim}, beta={self.beta}, k={self.k}{classes}"

    # ----------------------------------------------------------------- to implement
    def encode(self, x: Tensor, y: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Mean and log-variance of q(z | x, y), each (N, L)."""
        raise NotImplementedError

    def log_px(self, x: Tensor, z: Tensor, y: Tensor | None = None, mask=None) -> Tensor:
        """log p(x | z, y) in nats, (N,)."""
        raise NotImplementedError

    def decode_sample(
        self, z: Tensor, y: Tensor | None = None, generator: torch.Generator | None = None
    ) -> Tensor:
        """x ~ p(x | z, y), (N, *event_shape)."""
        raise NotImplementedError

    # ----------------------------------------------------------------- shared
    def _check_labels(self, y: Tensor | None) -> None:
        if self.n_classes is None and y is not None:
            raise DataError("this model is unconditional (n_classes=None): call it without y")
        if self.n_classes is not None and y is None:
            raise DataError(f"this model is conditional on {self.n_classes} classes: pass y")

    def _one_hot_labels(self, y: Tensor | None, like: Tensor) -> Tensor | None:
        self._check_labels(y)
        return None if y is None else F.one_hot(y, self.n_classes).to(like.dtype)

    @property
    def current_beta(self) -> float:
        """β of the next training step (see the class docstring)."""
        if self.warmup_steps <= 0:
            return float(self.beta)
        return float(self.beta) * min(1.0, int(self.step) / self.warmup_steps)

    @staticmethod
    def kl(mean: Tensor, logvar: Tensor) -> Tensor:
        """KL(N(mean, e^logvar) ‖ N(0, 1)) per dimension, (N, L)."""
        return 0.5 * (mean**2 + logvar.exp() - 1.0 - logvar)

    def _noise(self, shape: tuple[int, ...], like: Tensor, generator) -> Tensor:
        return torch.randn(shape, generator=generator, device=like.device, dtype=like.dtype)

    def _draws(self, like: Tensor, first: int, count: int, generator, keys) -> Tensor:
        """ε of draws ``first`` … ``first + count − 1`` for every example, (count, N, L):
        from each example's key (:func:`~ptheta.nn.noise.example_keys`) when ``keys``
        is given, so that its draws do not depend on the batch; else from ``generator``."""
        if keys is None:
            return self._noise((count, *like.shape), like, generator)
        eps = [keyed_normal(keys, s, like.shape[1:]) for s in range(first, first + count)]
        return torch.stack(eps).to(device=like.device, dtype=like.dtype)

    @batched
    def loss(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """−ELBO with the current β and free bits, per example, (*batch); one z per example.

        In training mode each call advances the warm-up counter by one step.
        """
        mean, logvar = self.encode(x, y)  # (N, L) each
        z = mean + (0.5 * logvar).exp() * torch.randn_like(mean)  # reparameterised
        reconstruction = -self.log_px(x, z, y)  # (N,)
        kl = self.kl(mean, logvar)  # (N, L)
        if self.free_bits > 0:
            below = kl.detach().mean(0) < self.free_bits  # (L,)
            kl = torch.where(below, torch.full_like(kl, self.free_bits), kl)
        beta = self.current_beta
        if self.training:
            self.step += 1
        return reconstruction + beta * kl.sum(1)

    def elbo_terms(
        self, x: Tensor, y: Tensor | None = None, k: int = 1, generator=None, *, keys=None
    ) -> tuple[Tensor, Tensor]:
        """E_q[log p(x | z)] estimated with k samples, (N,), and the exact KL per latent
        dimension, (N, L); ELBO = first − second.sum(1). Noise: see :meth:`_draws`."""
        mean, logvar = self.encode(x, y)
        log_px = torch.zeros(len(x), dtype=mean.dtype, device=mean.device)
        for s in range(k):
            eps = self._draws(mean, s, 1, generator, keys)[0]
            log_px = log_px + self.log_px(x, mean + (0.5 * logvar).exp() * eps, y)
        return log_px / k, self.kl(mean, logvar)

    @batched(per_example={"keys": 0})
    def elbo(
        self, x: Tensor, y: Tensor | None = None, k: int = 1, generator=None, *, keys=None
    ) -> Tensor:
        """The evidence lower bound E_q[log p(x | z)] − KL(q(z | x) ‖ p(z)) in nats, (*batch)
        (reconstruction term averaged over k draws of z, the KL exact; β is not applied)."""
        log_px, kl = self.elbo_terms(x, y, k, generator, keys=keys)
        return log_px - kl.sum(1)

    def iwae(
        self,
        x: Tensor,
        y: Tensor | None = None,
        k: int | None = None,
        generator: torch.Generator | None = None,
        *,
        mask: Tensor | None = None,
        keys=None,
    ) -> Tensor:
        """The importance-weighted estimate of log p(x) with k samples, (N,):
        log (1/k) Σ_s p(x, z_s) / q(z_s | x), z_s ~ q(z | x) (Burda et al. 2016).

        E[IWAE_k] ≤ E[IWAE_{k+1}] ≤ log p(x), IWAE_1 is the ELBO in expectation, and
        IWAE_k → log p(x) as k → ∞. The k samples go through the decoder in chunks of at
        most :data:`IWAE_ROWS` rows, so memory stays bounded. With ``mask`` (x's shape,
        True = observed) only the observed entries' factors enter p(x | z): an estimate of
        the marginal of the observed entries (x must still hold some value elsewhere for
        the encoder; see ``VAE.marginal_log_prob``). Noise: see :meth:`_draws`.
        """
        return self.iwae_with_stderr(x, y, k, generator, mask=mask, keys=keys)[0]

    def iwae_with_stderr(
        self,
        x: Tensor,
        y: Tensor | None = None,
        k: int | None = None,
        generator: torch.Generator | None = None,
        *,
        mask: Tensor | None = None,
        keys=None,
    ) -> tuple[Tensor, Tensor]:
        """:meth:`iwae` and its standard error, (N,) each: by the delta method,
        sd(w) / (√k · mean(w)) for the importance weights w_s (NaN for k = 1)."""
        k = self.k if k is None else k
        n = len(x)
        mean, logvar = self.encode(x, y)  # (N, L)
        std = (0.5 * logvar).exp()
        chunk = max(1, IWAE_ROWS // max(n, 1))
        log_w = []
        for start in range(0, k, chunk):
            c = min(chunk, k - start)
            eps = self._draws(mean, start, c, generator, keys)  # (c, N, L)
            z = mean + std * eps
            log_q = -0.5 * (eps**2 + logvar + LOG_2PI).sum(-1)  # (c, N)
            log_p = -0.5 * (z**2 + LOG_2PI).sum(-1)
            log_px = self.log_px(
                _repeat(x, c), z.reshape(c * n, -1), _repeat(y, c), _repeat(mask, c)
            ).reshape(c, n)
            log_w.append(log_px + log_p - log_q)
        log_w = torch.cat(log_w)  # (k, N)
        estimate = torch.logsumexp(log_w, dim=0) - math.log(k)
        if k < 2:
            return estimate, torch.full_like(estimate, math.nan)
        w = (log_w - log_w.max(0).values).exp()  # weights over their largest, in (0, 1]
        return estimate, w.std(0) / (math.sqrt(k) * w.mean(0))

    @batched(per_example={"keys": 0})
    def log_prob(
        self,
        x: Tensor,
        y: Tensor | None = None,
        generator: torch.Generator | None = None,
        *,
        keys=None,
    ) -> Tensor:
        """IWAE estimate of log p(x) (or log p(x | y)) with ``self.k`` samples, (*batch).

        For discrete data it is capped at 0, which log P(x) never exceeds (the cap only
        moves the estimate closer to the truth). Noise: see :meth:`_draws`.
        """
        return self.log_prob_with_std(x, y, generator, keys=keys)[0]

    @batched(per_example={"keys": 0}, outputs=2)
    def log_prob_with_std(
        self,
        x: Tensor,
        y: Tensor | None = None,
        generator: torch.Generator | None = None,
        *,
        keys=None,
    ) -> tuple[Tensor, Tensor]:
        """:meth:`log_prob` and its standard error (see :meth:`iwae_with_stderr`)."""
        out, stderr = self.iwae_with_stderr(x, y, self.k, generator, keys=keys)
        return (out.clamp(max=0.0) if self.discrete else out), stderr

    @sampled
    @torch.no_grad()
    def sample(
        self, n: int, y: Tensor | None = None, generator: torch.Generator | None = None
    ) -> Tensor:
        """z ~ N(0, I), then x ~ p(x | z, y): (*sample_shape, *event_shape), ``sample_shape``
        an int n, a tuple, or () for one example; all randomness from ``generator``."""
        ref = next(self.parameters())
        self._check_labels(y)
        z = self._noise((n, self.latent_dim), ref, generator)
        return self.decode_sample(z, y, generator)


def latent_args(config: Config, n_classes: int | None) -> dict[str, Any]:
    """:class:`LatentVariableModule`'s arguments from a latent family's config
    (``latent_dim``, ``beta``, ``free_bits``, ``iwae_samples`` as ``k``, and the
    ``warmup_steps`` the estimator derives from ``beta_warmup_epochs``)."""
    return {
        "latent_dim": config.latent_dim,
        "beta": config.beta,
        "warmup_steps": config.warmup_steps,
        "free_bits": config.free_bits,
        "k": config.iwae_samples,
        "n_classes": n_classes,
    }


class VAENetwork(LatentVariableModule):
    """A variational autoencoder over flat or image-shaped examples (module level).

    q(z | x, y) = N(μ(x, y), diag σ²(x, y)), p(z) = N(0, I), and a factorised decoder
    p(x | z, y) = ∏_d p(x_d | params_d(z, y)) with one of the output distributions of
    :mod:`ptheta.nn.decoders`. Discrete inputs enter the encoder one-hot.

    ``architecture="mlp"``: fully connected encoder (D_in → hidden … → 2L) and mirrored
    decoder (L → … hidden → D·P), ReLU. ``"conv"``: 3×3 convolutions (padding 1, stride 1)
    with ``hidden`` channels each over the (C, H, W) image, flattened into a linear map to
    2L; the decoder maps z linearly to hidden[-1]·H·W, applies the convolutions in reverse
    order and a 1×1 convolution to C·P output channels. The label y (conditional VAE) is
    concatenated one-hot to the encoder's flat features and to z.

    Arguments:
        event_shape: shape of one example; D = its size.
        output: the decoder's output distribution (e.g. ``CategoricalOutput(17)``).
        latent_dim: L.
        hidden: widths (mlp) or channels (conv) of the hidden layers.
        architecture: ``"mlp"`` or ``"conv"``.
        image_shape: (C, H, W) with C·H·W = D, needed by ``"conv"``.
        n_categories: K of discrete inputs (one-hot in the encoder); None: real inputs.
        n_classes: classes of a conditional VAE; None: unconditional.
        beta, warmup_steps, free_bits, k: see :class:`LatentVariableModule`.

    Example:
        >>> import torch
        >>> from ptheta.nn.decoders import BernoulliOutput
        >>> net = VAENetwork((6,), BernoulliOutput(), latent_dim=2, hidden=[16], n_categories=2)
        >>> x = net.sample(4, generator=torch.Generator().manual_seed(0))
        >>> x.shape, net.loss(x).shape, net.iwae(x, k=10).shape
        (torch.Size([4, 6]), torch.Size([4]), torch.Size([4]))

    References:
        Kingma & Welling (2014), Auto-Encoding Variational Bayes, ICLR; Rezende, Mohamed &
        Wierstra (2014), Stochastic Backpropagation and Approximate Inference in Deep
        Generative Models, ICML; Sohn, Lee & Yan (2015), Learning Structured Output
        Representation using Deep Conditional Generative Models, NeurIPS.
    """

    @classmethod
    def from_config(
        cls, config: Config, spec: DataSpec, n_classes: int | None = None
    ) -> VAENetwork:
        """The network of a :class:`VAE`'s config (``hidden``, ``architecture``, the
        latent ones of :func:`latent_args`, and the ``output`` and ``image_shape`` the
        estimator resolved for the data) for data of ``spec``."""
        return cls(
            spec.event_shape,
            config.output,
            hidden=config.hidden,
            architecture=config.architecture,
            image_shape=config.image_shape,
            n_categories=spec.n_categories if spec.is_discrete else None,
            **latent_args(config, n_classes),
        )

    def __init__(
        self,
        event_shape: tuple[int, ...],
        output: Output,
        *,
        latent_dim: int = 16,
        hidden: list[int] | tuple[int, ...] = (256, 256),
        architecture: str = "mlp",
        image_shape: tuple[int, int, int] | None = None,
        n_categories: int | None = None,
        n_classes: int | None = None,
        beta: float = 1.0,
        warmup_steps: int = 0,
        free_bits: float = 0.0,
        k: int = 100,
    ) -> None:
        super().__init__(
            latent_dim,
            beta=beta,
            warmup_steps=warmup_steps,
            free_bits=free_bits,
            k=k,
            n_classes=n_classes,
        )
        self.event_shape = tuple(event_shape)
        self.n_dims = math.prod(self.event_shape)
        self.output = output
        self.discrete = output.discrete
        self.n_categories = n_categories
        self.architecture = architecture
        self.image_shape = None if image_shape is None else tuple(image_shape)
        hidden = list(hidden)
        n_cls = n_classes or 0
        per_entry = n_categories or 1  # one-hot width of an input entry
        p = output.n_params
        if architecture == "mlp":
            sizes = [self.n_dims * per_entry + n_cls, *hidden]
            self.encoder = _mlp(sizes, 2 * latent_dim)
            self.decoder = _mlp([latent_dim + n_cls, *hidden[::-1]], self.n_dims * p)
        else:
            c, h, w = self.image_shape
            chans = [c * per_entry, *hidden]
            self.encoder_conv = nn.Sequential(*_convs(chans))
            self.encoder = nn.Linear(hidden[-1] * h * w + n_cls, 2 * latent_dim)
            self.decoder_in = nn.Linear(latent_dim + n_cls, hidden[-1] * h * w)
            self.decoder = nn.Sequential(*_convs(hidden[::-1]), nn.Conv2d(hidden[0], c * p, 1))

    def extra_repr(self) -> str:
        return (
            f"event_shape={self.event_shape}, output={self.output!r}, "
            f"architecture={self.architecture}, {super().extra_repr()}"
        )

    def _features(self, x: Tensor) -> Tensor:
        """Encoder input: (N, D·K) flat (mlp) or (N, C·K, H, W) (conv), K = 1 for reals."""
        dtype = next(self.parameters()).dtype
        x = x.reshape(len(x), self.n_dims)
        f = x.to(dtype) if self.n_categories is None else F.one_hot(x.long(), self.n_categories)
        f = f.to(dtype)  # (N, D) or (N, D, K)
        if self.architecture == "mlp":
            return f.reshape(len(x), -1)
        c, h, w = self.image_shape
        f = f.reshape(len(x), c, h, w, -1).permute(0, 1, 4, 2, 3)  # (N, C, K, H, W)
        return f.reshape(len(x), -1, h, w)

    def encode(self, x: Tensor, y: Tensor | None = None) -> tuple[Tensor, Tensor]:
        f = self._features(x)
        if self.architecture == "conv":
            f = self.encoder_conv(f).flatten(1)  # (N, F·H·W)
        labels = self._one_hot_labels(y, f)
        if labels is not None:
            f = torch.cat([f, labels], dim=1)
        mean, logvar = self.encoder(f).chunk(2, dim=1)  # (N, L) each
        return mean, logvar

    def decode(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        """Output parameters of p(x | z, y), (N, D, P) with entries in raster order."""
        labels = self._one_hot_labels(y, z)
        if labels is not None:
            z = torch.cat([z, labels], dim=1)
        if self.architecture == "mlp":
            return self.decoder(z).reshape(len(z), self.n_dims, -1)
        c, h, w = self.image_shape
        hidden = F.relu(self.decoder_in(z)).reshape(len(z), -1, h, w)
        out = self.decoder(hidden).reshape(len(z), c, -1, h, w)  # (N, C, P, H, W)
        return out.permute(0, 1, 3, 4, 2).reshape(len(z), self.n_dims, -1)

    def log_px(
        self, x: Tensor, z: Tensor, y: Tensor | None = None, mask: Tensor | None = None
    ) -> Tensor:
        per_entry = self.output.log_prob(x.reshape(len(x), -1), self.decode(z, y))  # (N, D)
        if mask is not None:
            per_entry = per_entry * mask.reshape(len(x), -1)
        return per_entry.sum(1)

    def decode_sample(
        self, z: Tensor, y: Tensor | None = None, generator: torch.Generator | None = None
    ) -> Tensor:
        return self.output.sample(self.decode(z, y), generator).reshape(len(z), *self.event_shape)

    def decode_mode(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        """The most probable x (the mean for Gaussian outputs) given z, (N, *event_shape)."""
        return self.output.mode(self.decode(z, y)).reshape(len(z), *self.event_shape)

    @torch.no_grad()
    def impute(
        self,
        x: Tensor,
        missing: Tensor,
        n_steps: int = 50,
        *,
        sample: bool = False,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Fill the entries of x where ``missing`` is True; x's shape and dtype.

        ``sample=True``: Metropolis-within-Gibbs (Mattei & Frellsen 2018), a Markov chain
        whose stationary law is p(z, x_missing | x_observed). It starts from z ~ p(z) and
        x_missing ~ p(x_missing | z); each of the ``n_steps`` rounds proposes z' ~ q(z | x)
        for the current completion x, accepts it with probability
        min(1, p(x, z') q(z | x) / (p(x, z) q(z' | x))), then draws x_missing ~
        p(x_missing | z). Plain pseudo-Gibbs (Rezende et al. 2014) accepts every z'; its
        chain can drift to where encoder and decoder amplify each other, up to inf and NaN.
        ``sample=False``: coordinate ascent on log p(x, z) from z = 0: x_missing = the mode
        of p(x_missing | z) (the mean of a Gaussian), z = the mean of q(z | x) where that
        does not lower log p(x, z). Both stay where log p(x, z) is finite. Observed entries
        are never changed; rejected or non-finite proposals keep the current z.
        """
        ref = next(self.parameters())
        missing = missing.reshape(x.shape)

        def complete(z: Tensor) -> Tensor:
            guess = self.decode_sample(z, None, generator) if sample else self.decode_mode(z)
            return torch.where(missing, guess.to(x.dtype), x)

        def log_joint(xs: Tensor, z: Tensor) -> Tensor:  # log p(x, z) up to a constant, (N,)
            return self.log_px(xs, z) - 0.5 * (z**2).sum(1)

        z = self._noise((len(x), self.latent_dim), ref, generator)  # (N, L)
        if not sample:
            z = torch.zeros_like(z)
        out = complete(z)
        for _ in range(n_steps):
            mean, logvar = self.encode(out)
            if sample:
                eps = self._noise(mean.shape, mean, generator)
                proposal = mean + (0.5 * logvar).exp() * eps
                log_q_new = -0.5 * (eps**2 + logvar).sum(1)
                log_q_old = -0.5 * ((z - mean) ** 2 * (-logvar).exp() + logvar).sum(1)
                log_ratio = log_joint(out, proposal) - log_joint(out, z) + log_q_old - log_q_new
                u = torch.rand(len(x), generator=generator, device=ref.device, dtype=ref.dtype)
                accept = torch.log(u) < log_ratio  # False where the ratio is NaN
            else:
                proposal = mean
                accept = log_joint(out, proposal) >= log_joint(out, z)
            z = torch.where(accept[:, None] & proposal.isfinite().all(1, keepdim=True), proposal, z)
            out = complete(z)
        return out


def _repeat(t: Tensor | None, c: int) -> Tensor | None:
    """(N, ...) → (c·N, ...): c copies of the batch, copy-major (None stays None)."""
    return None if t is None else t.expand(c, *t.shape).reshape(c * len(t), *t.shape[1:])


def _mlp(sizes: list[int], out: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for a, b in itertools.pairwise(sizes):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*layers, nn.Linear(sizes[-1], out))


def _convs(channels: list[int]) -> list[nn.Module]:
    """3×3 convolutions (padding 1) between successive channel counts, each with a ReLU."""
    layers: list[nn.Module] = []
    for a, b in itertools.pairwise(channels):
        layers += [nn.Conv2d(a, b, 3, padding=1), nn.ReLU()]
    return layers


# ---------------------------------------------------------------------------------------
# Estimator level


class LatentModel(NeuralModel):
    """Estimator-level behaviour shared by :class:`VAE` and ``SeqVAE`` (see :class:`VAE`).

    ``score_samples`` is the IWAE estimate with ``iwae_samples`` samples (``likelihood_ =
    "estimate"``; ``score_samples(X, return_std=True)`` adds its standard error); it and
    :meth:`elbo` draw each example's noise from a key hashed from ``random_state`` (plus a
    fixed offset) and the example's values, so they are deterministic given the fitted
    model and X, and an example's score does not depend on the rest of the batch. After
    fit, the diagnostics ``reconstruction_`` (mean −E_q log p(x | z)), ``kl_`` (mean
    KL(q ‖ p)), ``kl_per_dim_`` (L,) and ``active_units_`` (latent
    dimensions whose posterior means vary across examples with variance > 0.01, Burda et
    al. 2016) are computed on the validation data, or the training data without any; so
    −ELBO = ``reconstruction_`` + ``kl_`` and posterior collapse shows as ``kl_`` ≈ 0.
    """

    family: ClassVar[str] = "latent variable"
    # continuous data are standardised for the network; scores stay densities of the data
    standardize_input: ClassVar[bool] = True
    likelihood: ClassVar[str] = "estimate"
    abilities: ClassVar[dict[str, Any]] = {"embeds": True}
    # what every latent family shares (see latent_args)
    parameters: ClassVar[dict[str, Param]] = {
        "latent_dim": Int(low=1),
        "beta": Float(low=0),
        "beta_warmup_epochs": Float(low=0),
        "free_bits": Float(low=0),
        "iwae_samples": Int(low=1),
    }
    renamed: ClassVar[dict[str, str]] = {"k": "iwae_samples"}

    def _warmup_steps(self) -> int:
        saved = getattr(self, "beta_warmup_steps_", None)  # a loaded model
        if saved is not None:
            return int(saved)
        return round(self.beta_warmup_epochs * getattr(self, "_steps_per_epoch", 1))

    # ----------------------------------------------------------------- fitting
    def _validation_split(self, x, labels, validation_data, spec):
        parts = super()._validation_split(x, labels, validation_data, spec)
        x_train, y_train, x_val, y_val = parts
        self._steps_per_epoch = math.ceil(len(x_train) / self.batch_size)
        self._diagnostic_data = (x_train, y_train) if x_val is None else (x_val, y_val)
        return parts

    def _fit(self, x, y, spec, **fit_params) -> None:
        try:
            super()._fit(x, y, spec, **fit_params)
            self.beta_warmup_steps_ = int(self._module.warmup_steps)
            self._diagnose(*self._diagnostic_data, spec)
        finally:  # only needed during fit
            for key in ("_steps_per_epoch", "_diagnostic_data"):
                self.__dict__.pop(key, None)

    @torch.no_grad()
    def _diagnose(self, x: np.ndarray, labels: np.ndarray | None, spec: DataSpec) -> None:
        rec, kl, means = [], [], []
        for xt, yt, keys in self._batches(x, labels, spec=spec):
            log_px, kl_dims = self._module.elbo_terms(xt, yt, 1, keys=keys)
            rec.append(-log_px.double().cpu())
            kl.append(kl_dims.double().cpu())
            means.append(self._module.encode(xt, yt)[0].double().cpu())
        kl_dims = torch.cat(kl)
        self.reconstruction_ = float(torch.cat(rec).mean())
        self.kl_ = float(kl_dims.sum(1).mean())
        self.kl_per_dim_ = kl_dims.mean(0).numpy()
        variance = torch.cat(means).var(0, unbiased=False) if len(x) > 1 else torch.zeros(1)
        self.active_units_ = int((variance > ACTIVE_THRESHOLD).sum())

    # ----------------------------------------------------------------- helpers
    def _labels(self, y: Any, n: int) -> np.ndarray | None:
        """Class indices (n,) of labels y for a conditional model; None otherwise."""
        if not self._conditional():
            if y is not None:
                raise CapabilityError(f"this {self.name!r} is not class-conditional; pass y=None")
            return None
        if y is None:
            raise DataError(
                f"this {self.name!r} was fitted with class_conditional=True: pass y (the "
                "class of each example)"
            )
        labels = self._check_sample_labels(y, n)  # one label or n known labels
        lookup = {c: i for i, c in enumerate(self.classes_.tolist())}
        return np.array([lookup[v] for v in labels.tolist()], dtype=np.int64)

    def _batches(
        self, x: np.ndarray, labels: np.ndarray | None, size: int = 1024, spec: DataSpec = None
    ):
        """(x, y, keys) per chunk: tensors, and each example's noise key (a hash of
        random_state and its values, see :func:`~ptheta.nn.noise.example_keys`)."""
        device, spec = self._device(), spec or self.fitted_spec
        for start in range(0, len(x), size):
            chunk = x[start : start + size]
            xt = self._tensors(chunk, None, spec)[0].to(device)
            yt = None if labels is None else torch.as_tensor(labels[start : start + size])
            yield xt, None if yt is None else yt.to(device), self._keys(chunk)

    def _keys(self, x: np.ndarray) -> np.ndarray:
        return example_keys(x, self._seed() + SCORE_SEED)

    @torch.no_grad()
    def _log_prob_with_std(self, x: np.ndarray, label: int | None) -> tuple[np.ndarray, ...]:
        labels = None if label is None else np.full(len(x), label)
        parts = [
            self._module.log_prob_with_std(xt, yt, keys=keys)
            for xt, yt, keys in self._batches(x, labels)
        ]
        scores = torch.cat([p[0] for p in parts]).double().cpu().numpy()
        return scores, torch.cat([p[1] for p in parts]).double().cpu().numpy()

    def _log_prob(self, x: np.ndarray, label: int | None) -> np.ndarray:
        return self._log_prob_with_std(x, label)[0]

    def _inputs(self, X: Any, y: Any) -> tuple[np.ndarray, np.ndarray | None]:
        self._check_fitted()
        x = check_values(X, self.fitted_spec)
        if isinstance(X, Split) and y is None and self._conditional():
            y = X.y
        return x, self._labels(y, len(x))

    # ----------------------------------------------------------------- public extras
    @torch.no_grad()
    def elbo(self, X: Any, y: Any = None, *, k: int = 1) -> np.ndarray:
        """The evidence lower bound per example in nats, (N,), with the reconstruction term
        averaged over ``k`` draws of z (the KL term is exact).

        −ELBO ≥ −IWAE_k ≥ −IWAE_{k+1} ≥ … ≥ −log p(x) in expectation; ``score_samples``
        is IWAE_k. Deterministic given the fitted model and X, and per example (the same
        value in any batch). Conditional models need ``y`` and give the bound on
        log p(x | y).
        """
        k = check_int(self.name, "k", k, low=1)
        x, labels = self._inputs(X, y)
        out = [self._module.elbo(xt, yt, k, keys=kk) for xt, yt, kk in self._batches(x, labels)]
        return torch.cat(out).double().cpu().numpy() + self._log_jacobian()

    @torch.no_grad()
    def embed(self, X: Any, y: Any = None) -> np.ndarray:
        """Posterior means E_q[z | x] (the representation), (N, latent_dim)."""
        x, labels = self._inputs(X, y)
        out = [self._module.encode(xt, yt)[0] for xt, yt, _ in self._batches(x, labels)]
        return torch.cat(out).double().cpu().numpy()


class VAE(LatentModel):
    """Variational autoencoder: p(x) = ∫ p(x | z) N(z; 0, I) dz, fitted by the ELBO.

    The encoder q(z | x) is a diagonal Gaussian (reparameterised), the decoder is matched to
    the data kind: Bernoulli (binary), categorical over the K levels (categorical), Gaussian
    with learned or fixed variance (continuous); ``decoder="discretised-logistic"`` gives
    image-like categorical data an ordered pmf with two numbers per entry. A Gaussian
    decoder on discrete data is refused (it would be a density, not a pmf). See
    :class:`VAENetwork` for the MLP and convolutional architectures.

    What it reports (all per example, in nats): ``score_samples`` = IWAE_k with k =
    ``iwae_samples``, an estimate of log p(x) (``likelihood_ = "estimate"``; exp(IWAE_k) is
    unbiased for p(x), and IWAE_k → log p(x) as k grows); :meth:`elbo` = the evidence lower
    bound. In expectation −ELBO ≥ −IWAE_1 ≥ … ≥ −IWAE_k ≥ −log p(x). Both are deterministic
    given the fitted model and X, each example's noise seeded from ``random_state`` and its
    own values (never its position or neighbours in the batch);
    ``score_samples(X, return_std=True)`` adds the standard error of IWAE_k. See
    :class:`LatentModel` for the diagnostics ``reconstruction_``, ``kl_``, ``kl_per_dim_``,
    ``active_units_``.

    Missing data: ``score_samples`` refuses NaN (its marginal would only be an estimate);
    :meth:`marginal_log_prob` is the IWAE estimate of the log-marginal of the observed
    entries (the decoder factorises, so missing factors are dropped); ``impute`` and
    ``sample(given=...)`` fill NaN entries by pseudo-Gibbs sampling (``impute_steps``
    rounds of Metropolis-within-Gibbs, or of coordinate ascent for the mode, see
    :meth:`VAENetwork.impute`; unconditional models only). Observed entries come back
    exactly as given.

    Arguments:
        latent_dim: L, the size of z.
        hidden: hidden widths (mlp) or channels (conv) of the encoder's layers, mirrored by
            the decoder: a list, or an int for one layer.
        architecture: ``"mlp"`` or ``"conv"`` (image-shaped data: (C, H, W) examples or a
            data set with an ``image_shape``, like digits' (1, 8, 8)).
        decoder: ``"auto"`` (matched to the data kind), ``"bernoulli"``, ``"categorical"``,
            ``"gaussian"`` or ``"discretised-logistic"``.
        decoder_variance: the Gaussian decoder's variance: ``"learned"`` (per entry, output
            by the decoder) or a fixed number > 0.
        beta: weight of the KL term once warmed up (1: the ELBO).
        beta_warmup_epochs: epochs over which β rises linearly from 0 to ``beta`` (counted in
            optimisation steps, kept in the module's ``step`` buffer so resumed runs continue
            exactly); 0: no warm-up.
        free_bits: λ ≥ 0 nats per latent dimension (Kingma et al. 2016; 0: off): see
            :class:`LatentVariableModule`.
        iwae_samples: importance samples k of ``score_samples`` (and of the validation
            NLL); was ``k``.
        impute_steps: pseudo-Gibbs rounds of ``impute`` / ``sample(given=...)``.
        class_conditional: fit p(x | y) with q(z | x, y) and p(x | z, y) (``fit(X, y)``);
            ``sample(n, y=...)`` and ``predict_proba`` (Bayes' rule on IWAE estimates) work.
        **training: the shared training arguments (``epochs``, ``lr``, ``dtype``, ...; see
            :data:`ptheta.models.neural.TRAINING_PARAMS`).

    Fitted attributes:
        module: the trained :class:`VAENetwork`; history_, best_epoch_, n_steps_: training
        record; beta_warmup_steps_; the diagnostics above; classes_ for conditional models.

    Example:
        >>> import ptheta
        >>> data = ptheta.datasets.load("digits-binary")
        >>> m = ptheta.make("vae", latent_dim=8, epochs=2, device="cpu").fit(data.train)
        >>> m.score_samples(data.test).shape, m.embed(data.test).shape
        ((447,), (447, 8))

    References:
        Kingma & Welling (2014), Auto-Encoding Variational Bayes, ICLR; Burda, Grosse &
        Salakhutdinov (2016), Importance Weighted Autoencoders, ICLR; Kingma et al. (2016),
        Improved Variational Inference with Inverse Autoregressive Flow (free bits), NeurIPS;
        Bowman et al. (2016), Generating Sentences from a Continuous Space (KL annealing);
        Sohn, Lee & Yan (2015) (conditional VAE); Rezende, Mohamed & Wierstra (2014)
        (pseudo-Gibbs imputation).
    """

    name: ClassVar[str] = "vae"
    data_kinds: ClassVar[tuple[str, ...]] = ("binary", "categorical", "continuous")
    quick_params: ClassVar[dict[str, Any]] = {
        "latent_dim": 2,
        "hidden": 16,
        "epochs": 8,
        "batch_size": 32,
        "lr": 1e-2,
        "iwae_samples": 20,
        "dtype": "float64",
        "device": "cpu",
    }
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "demo": {"latent_dim": 8, "hidden": [128], "lr": 3e-3, "batch_size": 64, "device": "cpu"}
    }
    parameters: ClassVar[dict[str, Param]] = {
        "hidden": IntList(empty=False),
        "architecture": Choice(*ARCHITECTURES),
        "decoder": Choice("auto", *DECODERS),
        "decoder_variance": OneOf(
            Choice("learned"), Float(low=0, low_open=True), what="'learned' or a number > 0"
        ),
        "impute_steps": Int(low=0),
        **CONDITIONAL,
    }

    def __init__(
        self,
        latent_dim: int = 16,
        *,
        hidden: int | list[int] = (512, 256),
        architecture: str = "mlp",
        decoder: str = "auto",
        decoder_variance: str | float = "learned",
        beta: float = 1.0,
        beta_warmup_epochs: float = 0.0,
        free_bits: float = 0.0,
        iwae_samples: int = 100,
        impute_steps: int = 50,
        class_conditional: bool = False,
        **training: Any,
    ) -> None:
        super().__init__(**training)
        self.latent_dim = latent_dim
        self.hidden = hidden
        self.architecture = architecture
        self.decoder = decoder
        self.decoder_variance = decoder_variance
        self.beta = beta
        self.beta_warmup_epochs = beta_warmup_epochs
        self.free_bits = free_bits
        self.iwae_samples = iwae_samples
        self.impute_steps = impute_steps
        self.class_conditional = class_conditional

    def _output(self, spec: DataSpec) -> Output:
        name = self.name
        matched = {"binary": "bernoulli", "categorical": "categorical", "continuous": "gaussian"}
        allowed = {
            "binary": ("bernoulli", "categorical", "discretised-logistic"),
            "categorical": ("categorical", "discretised-logistic"),
            "continuous": ("gaussian",),
        }[spec.kind]
        decoder = matched[spec.kind] if self.decoder == "auto" else self.decoder
        if decoder not in allowed:
            raise DataError(
                f"{name}: a {decoder} decoder does not model {spec.describe()} data; use "
                f"decoder='auto' or one of {', '.join(allowed)}"
                + (" (discrete data needs a pmf, not a density)" if decoder == "gaussian" else "")
            )
        return make_output(decoder, spec.n_categories, self._params()["decoder_variance"])

    def _build_module(self, spec: DataSpec, n_classes: int | None) -> VAENetwork:
        config = self.config(
            output=self._output(spec),
            image_shape=self._image(spec),
            warmup_steps=self._warmup_steps(),
        )
        return VAENetwork.from_config(config, spec, n_classes)

    def _image(self, spec: DataSpec) -> tuple[int, ...] | None:
        """The (C, H, W) of a conv VAE's examples; None for an MLP."""
        name = self.name
        image = None
        if self.architecture == "conv":
            image = spec.image_shape
            if image is None or len(image) != 3 or math.prod(image) != spec.n_dims:
                image = spec.event_shape if len(spec.event_shape) == 3 else None
            if image is None:
                raise DataError(
                    f"{name}: architecture='conv' needs image-shaped data: examples of shape "
                    f"(C, H, W), or flat examples whose data set declares an image_shape "
                    f"(digits: (1, 8, 8)); got examples of shape {spec.event_shape}. Reshape "
                    "X to (N, C, H, W), or use architecture='mlp'"
                )
        return image

    # ----------------------------------------------------------------- representations
    @torch.no_grad()
    def reconstruct(self, X: Any, y: Any = None) -> np.ndarray:
        """The decoder's most probable x (mean, for a Gaussian) at z = E_q[z | x], X's shape."""
        x, labels = self._inputs(X, y)
        out = []
        for xt, yt, _ in self._batches(x, labels):
            out.append(self._module.decode_mode(self._module.encode(xt, yt)[0], yt).cpu())
        return self._finish(self._from_model_units(torch.cat(out).numpy()), len(x))

    @torch.no_grad()
    def interpolate(self, x1: Any, x2: Any, steps: int = 8, y: Any = None) -> np.ndarray:
        """Decode (mode or mean) ``steps`` points on the line between the posterior means
        of two examples, (steps, *event_shape); the first and last rows decode the
        endpoints' own means (= :meth:`reconstruct` of x1 and x2).

        Arguments:
            x1, x2: one example each, shape event_shape or (1, *event_shape).
            steps: number of points ≥ 2, endpoints included.
            y: the class of conditional models (one label, used for both ends).
        """
        steps = check_int(self.name, "steps", steps, low=2)
        shape = self.fitted_spec.event_shape
        ends = [
            np.asarray(v).reshape(-1, *shape) if np.ndim(v) == len(shape) else v for v in (x1, x2)
        ]
        means = [self.embed(v, y) for v in ends]
        if any(len(m) != 1 for m in means):
            raise DataError("interpolate takes one example for x1 and one for x2")
        t = np.linspace(0.0, 1.0, steps)[:, None]
        z = torch.as_tensor((1 - t) * means[0] + t * means[1], device=self._device())
        z = z.to(resolve_dtype(self.dtype))
        labels = self._labels(y, steps)
        yt = None if labels is None else torch.as_tensor(labels, device=self._device())
        with torch.no_grad():
            out = self._module.decode_mode(z, yt).cpu().numpy()
        return self._finish(self._from_model_units(out), steps)

    def _capabilities(self) -> Capabilities:
        # imputes by its decoder (not exactly); the class is unknown in a conditional VAE
        return super()._capabilities().replace(imputes=not self._conditional())

    # ----------------------------------------------------------------- missing data
    def _check_partial(self, X: Any) -> np.ndarray:
        if self._conditional():
            raise CapabilityError(
                f"{self.name!r} fitted with class_conditional=True cannot impute (the class is "
                "unknown); fit an unconditional VAE for missing data"
            )
        x = check_values(X, self.fitted_spec, allow_nan=True, what="partial examples")
        return np.asarray(x, dtype=np.float64)

    @torch.no_grad()
    def _impute(self, x: np.ndarray, method: str, rng: np.random.Generator) -> np.ndarray:
        device, dtype = self._device(), resolve_dtype(self.dtype)
        generator = torch.Generator(device=device).manual_seed(int(rng.integers(2**62)))
        given = x
        x = self._to_model_units(x)  # the network's units (NaN stays NaN)
        missing = torch.as_tensor(np.isnan(x), device=device)
        filled = torch.as_tensor(np.nan_to_num(x), device=device)
        filled = filled.long() if self.fitted_spec.is_discrete else filled.to(dtype)
        out = self._module.impute(
            filled, missing, self.impute_steps, sample=method == "sample", generator=generator
        )
        # observed entries exactly as given (a float32 round trip would perturb them)
        filled_in = self._from_model_units(out.cpu().numpy().astype(np.float64))
        return np.where(np.isnan(given), filled_in, given)

    @torch.no_grad()
    def marginal_log_prob(self, X: Any) -> np.ndarray:
        """IWAE estimate (k samples) of log p(x_observed) per example, (N,), X with NaN at
        missing entries.

        The decoder factorises given z, so p(x_obs | z) drops the missing factors; the
        proposal is q(z | x̂) with x̂ the ``impute(X, method="mode")`` completion (a fixed
        function of the observed entries, so the estimate stays consistent). An estimate
        of the marginal, like ``score_samples``; rows with nothing observed get 0.
        """
        x = self._check_partial(X)
        observed = ~np.isnan(x)
        filled = self._impute(x, "mode", np.random.default_rng(0))
        device, spec = self._device(), self.fitted_spec
        out = []
        for start in range(0, len(x), 1024):
            xt = self._tensors(filled[start : start + 1024], None, spec)[0].to(device)
            mt = torch.as_tensor(observed[start : start + 1024], device=device)
            keys = self._keys(x[start : start + 1024])  # of the partial rows, NaN included
            estimate = self._module.iwae(xt, None, self.iwae_samples, mask=mt, keys=keys)
            out.append(estimate.double().cpu())
        result = torch.cat(out).numpy() + self._log_jacobian(observed)
        if spec.is_discrete:
            result = np.minimum(result, 0.0)
        result[~observed.reshape(len(x), -1).any(1)] = 0.0
        return result
