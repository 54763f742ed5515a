"""Variational autoencoders: ELBO training, IWAE estimates of log p(x), conditional VAE.

The latent-variable machinery (ELBO, IWAE, scoring keys) is in :mod:`ptheta.models.latent`;
this file holds the VAE's networks (MLP and convolutional) and its estimator.
"""

from __future__ import annotations

import itertools
import math
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ptheta.data.spec import DataSpec, check_values
from ptheta.errors import CapabilityError, DataError
from ptheta.models.capabilities import Capabilities
from ptheta.models.latent import LatentModel, LatentVariableModule, latent_args
from ptheta.models.neural import CONDITIONAL
from ptheta.nn.decoders import (
    DECODERS,
    DiscretisedLogisticMixtureOutput,
    DiscretisedLogisticOutput,
    Output,
    make_output,
)
from ptheta.nn.mlp import dense_layers
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

ARCHITECTURES: tuple[str, ...] = ("auto", "mlp", "conv")
# architecture="auto" picks the conv networks for images at least this high and wide
CONV_MIN_SIZE = 8
# hidden="auto": widths of the MLP, channels of the conv networks
AUTO_HIDDEN: dict[str, list[int]] = {"mlp": [512, 256], "conv": [32, 64]}
# Discrete inputs with at most this many levels enter the encoder one-hot (K numbers per
# entry); more levels (17-level digits, 8-bit images) enter as one number per entry, the
# intensity scaled to [-1, 1]: a one-hot of 256 levels made a 784-pixel MLP's first layer
# 103 M weights. decoder="auto" follows the same line: a K-way softmax up to it, a
# discretised mixture of logistics (3·n_mix numbers per entry) above it.
ONE_HOT_LEVELS = 16
# The encoder's log-variance is kept in [LOGVAR_MIN, LOGVAR_MAX] by a smooth clamp
# (posterior standard deviations between e^-6 and e^4): a bound on exp(logvar) whatever
# the encoder outputs, so one large optimiser step cannot overflow z or the KL to inf.
LOGVAR_MIN, LOGVAR_MAX = -12.0, 8.0
# Importance samples of the validation NLL the Trainer computes every epoch (the fitted
# model scores with iwae_samples): IWAE_100 on the held-out examples cost ten times a
# training epoch, so a time budget went to validation, not training.
VALIDATION_SAMPLES = 10
# Output parameters (rows × entries × numbers per entry) decoded at once by log_px: 64 MB
# of float32, whatever the rows, the image size and the decoder
DECODE_NUMBERS = 1 << 24
# The VAE's epochs="auto" without max_time (the other neural families': 50): the conv VAE
# on digits stops early by itself near epoch 95 (−ELBO ≈ 92 nats) where 50 epochs left it
# at ≈ 96
EPOCHS = 200


class VAENetwork(LatentVariableModule):
    """A variational autoencoder over flat or image-shaped examples (module level).

    q(z | x, y) = N(μ(x, y), diag σ²(x, y)), p(z) = N(0, I), and a factorised decoder
    p(x | z, y) = ∏_d p(x_d | params_d(z, y)) with one of the output distributions of
    :mod:`ptheta.nn.decoders`. Discrete inputs with K ≤ :data:`ONE_HOT_LEVELS` levels enter
    the encoder one-hot; with more levels as one number per entry, 2x/(K − 1) − 1 ∈ [−1, 1].
    The encoder's log σ² is kept in [:data:`LOGVAR_MIN`, :data:`LOGVAR_MAX`] by a smooth
    clamp (≈ the identity inside). A discretised-logistic decoder emits its location and
    log-scale in units of the half range (K − 1)/2 about the middle level: an untrained
    decoder (outputs ≈ 0) spreads its mass over all K levels instead of piling it on
    level 0 with a scale of one level. The discretised logistic mixture's locations and
    scales already live on [−1, 1] (levels at 2k/(K − 1) − 1), so it needs no such map;
    its decoder's last bias starts at the mixture's ``initial_bias`` (near uniform).

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
        n_categories: K of discrete inputs; None: real inputs.
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
        iwae_samples: int = 100,
    ) -> None:
        super().__init__(
            latent_dim,
            beta=beta,
            warmup_steps=warmup_steps,
            free_bits=free_bits,
            iwae_samples=iwae_samples,
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
        self.one_hot = n_categories is not None and n_categories <= ONE_HOT_LEVELS
        per_entry = n_categories if self.one_hot else 1  # encoder inputs per data entry
        p = output.n_params
        if isinstance(output, DiscretisedLogisticOutput):
            # location = c·(1 + raw), log-scale = raw' + log c with c = (K − 1)/2; saved
            # with the weights (a run written before this map existed fails to load)
            half = (output.n_categories - 1) / 2
            self.register_buffer("level_map", torch.tensor([half, math.log(half)]))
        else:
            self.level_map = None
        if architecture == "mlp":
            sizes = [self.n_dims * per_entry + n_cls, *hidden]
            self.encoder = _mlp(sizes, 2 * latent_dim)
            self.decoder = _mlp([latent_dim + n_cls, *hidden[::-1]], self.n_dims * p)
        else:
            c, h, w = self.image_shape
            # each layer halves the resolution while the image is 12 pixels or more on a
            # side (28 → 14 → 7, 32 → 16 → 8; 8×8 digits keep their resolution): the
            # flattened features stay small and the encoder's variance stays stable
            strides, size = [], (h, w)
            for _ in hidden:
                halve = min(size) >= 12 and size[0] % 2 == 0 and size[1] % 2 == 0
                strides.append(2 if halve else 1)
                size = (size[0] // 2, size[1] // 2) if halve else size
            self.inner_shape = (hidden[-1], *size)
            flat = math.prod(self.inner_shape)
            self.encoder_conv = nn.Sequential(*_convs([c * per_entry, *hidden], strides))
            self.encoder = nn.Linear(flat + n_cls, 2 * latent_dim)
            self.decoder_in = nn.Linear(latent_dim + n_cls, flat)
            self.decoder = nn.Sequential(
                *_convs([*hidden[::-1], hidden[0]], strides[::-1], transpose=True),
                nn.Conv2d(hidden[0], c * p, 1),
            )
        if isinstance(output, DiscretisedLogisticMixtureOutput):
            # start near uniform over the levels, components apart (see initial_bias)
            per = self.n_dims if architecture == "mlp" else self.image_shape[0]
            with torch.no_grad():
                self.decoder[-1].bias.copy_(output.initial_bias().repeat(per))

    def extra_repr(self) -> str:
        return (
            f"event_shape={self.event_shape}, output={self.output!r}, "
            f"architecture={self.architecture}, {super().extra_repr()}"
        )

    def _features(self, x: Tensor) -> Tensor:
        """Encoder input: (N, D·K) flat (mlp) or (N, C·K, H, W) (conv), K = 1 for reals
        and for levels given as scaled intensities."""
        dtype = next(self.parameters()).dtype
        x = x.reshape(len(x), self.n_dims)
        if self.one_hot:
            f = F.one_hot(x.long(), self.n_categories).to(dtype)  # (N, D, K)
        elif self.n_categories is not None:
            f = x.to(dtype) * (2.0 / (self.n_categories - 1)) - 1.0  # (N, D) in [−1, 1]
        else:
            f = x.to(dtype)  # (N, D)
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
        mean, raw = self.encoder(f).chunk(2, dim=1)  # (N, L) each
        return mean, bounded_logvar(raw)

    def decode(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        """Output parameters of p(x | z, y), (N, D, P) with entries in raster order."""
        labels = self._one_hot_labels(y, z)
        if labels is not None:
            z = torch.cat([z, labels], dim=1)
        if self.architecture == "mlp":
            out = self.decoder(z).reshape(len(z), self.n_dims, -1)
        else:
            c, h, w = self.image_shape
            hidden = F.relu(self.decoder_in(z)).reshape(len(z), *self.inner_shape)
            out = self.decoder(hidden).reshape(len(z), c, -1, h, w)  # (N, C, P, H, W)
            out = out.permute(0, 1, 3, 4, 2).reshape(len(z), self.n_dims, -1)
        if self.level_map is not None:  # (location, log-scale) in level units
            half, log_half = self.level_map
            out = torch.stack([half * (1.0 + out[..., 0]), out[..., 1] + log_half], -1)
        return out

    def log_px(
        self, x: Tensor, z: Tensor, y: Tensor | None = None, mask: Tensor | None = None
    ) -> Tensor:
        """log p(x | z, y) per row, (N,); decoded in chunks of rows whose output parameters
        hold at most :data:`DECODE_NUMBERS` numbers (IWAE scoring sends thousands of rows
        at once: 8,192 rows of a 32×32×3 image with a 15-number mixture were 1.5 GB of
        parameters and several times that in the mixture's intermediates)."""
        x, mask = x.reshape(len(x), -1), None if mask is None else mask.reshape(len(x), -1)
        rows = max(1, DECODE_NUMBERS // (self.n_dims * self.output.n_params))
        out = []
        for start in range(0, len(x), rows):
            part = slice(start, start + rows)
            params = self.decode(z[part], None if y is None else y[part])  # (n, D, P)
            per_entry = self.output.log_prob(x[part], params)  # (n, D)
            if mask is not None:
                per_entry = per_entry * mask[part]
            out.append(per_entry.sum(1))
        return torch.cat(out) if out else z.new_zeros(0)

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


def _image_shape(spec: DataSpec) -> tuple[int, ...] | None:
    """The (C, H, W) of ``spec``'s examples: its ``image_shape`` or a 3-axis event shape;
    None for data that are not images."""
    image = spec.image_shape
    if image is None or len(image) != 3 or math.prod(image) != spec.n_dims:
        image = spec.event_shape if len(spec.event_shape) == 3 else None
    return image


def bounded_logvar(raw: Tensor) -> Tensor:
    """A smooth clamp of ``raw`` to [:data:`LOGVAR_MIN`, :data:`LOGVAR_MAX`]: ``raw`` up to
    e^(bound distance) inside (4·10⁻⁴ at 0), never beyond the bounds, gradients never
    exactly zero.

    Example:
        >>> import torch
        >>> [round(v, 4) for v in bounded_logvar(torch.tensor([-1e4, 0.0, 1e4])).tolist()]
        [-12.0, -0.0003, 8.0]
    """
    upper = LOGVAR_MAX - F.softplus(LOGVAR_MAX - raw)
    # (the outer softplus may overshoot the upper bound by softplus(LOGVAR_MIN − LOGVAR_MAX)
    # ≈ 2·10⁻⁹: the clamp removes that, nothing else)
    return (LOGVAR_MIN + F.softplus(upper - LOGVAR_MIN)).clamp(max=LOGVAR_MAX)


def _mlp(sizes: list[int], out: int) -> nn.Sequential:
    return nn.Sequential(*dense_layers(sizes, nn.ReLU), nn.Linear(sizes[-1], out))


def _convs(
    channels: list[int], strides: list[int] | None = None, *, transpose: bool = False
) -> list[nn.Module]:
    """Convolutions between successive channel counts, each with a ReLU: 3×3 (padding 1)
    at stride 1; 4×4 (padding 1) at stride 2, halving the resolution, or doubling it
    with ``transpose`` (the decoder's mirror of the encoder)."""
    strides = strides or [1] * (len(channels) - 1)
    layers: list[nn.Module] = []
    for (a, b), stride in zip(itertools.pairwise(channels), strides, strict=True):
        if stride == 1:
            layers += [nn.Conv2d(a, b, 3, padding=1), nn.ReLU()]
        elif transpose:
            layers += [nn.ConvTranspose2d(a, b, 4, stride=2, padding=1), nn.ReLU()]
        else:
            layers += [nn.Conv2d(a, b, 4, stride=2, padding=1), nn.ReLU()]
    return layers


class VAE(LatentModel):
    """Variational autoencoder: p(x) = ∫ p(x | z) N(z; 0, I) dz, fitted by the ELBO.

    The encoder q(z | x) is a diagonal Gaussian (reparameterised), the decoder is matched to
    the data kind: Bernoulli (binary), categorical over the K levels (categorical; above 16
    levels a discretised mixture of logistics, Salimans et al. 2017: an ordered pmf with
    3·n_mix numbers per entry instead of K), Gaussian with learned or fixed variance
    (continuous); ``decoder="discretised-logistic"`` is the single logistic (two numbers
    per entry). A Gaussian
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
            the decoder: a list, an int for one layer, or ``"auto"``: [512, 256] for the
            MLP, [32, 64] for the conv networks (:data:`AUTO_HIDDEN`).
        architecture: ``"auto"`` (conv for image-shaped data of at least 8×8 pixels, mlp
            otherwise), ``"mlp"`` or ``"conv"`` (image-shaped data: (C, H, W) examples or a
            data set with an ``image_shape``, like digits' (1, 8, 8)). The conv encoder
            halves the resolution with each layer while the image is 12 pixels or more a
            side (28 → 14 → 7, 32 → 16 → 8). The choice is kept as ``architecture_`` and
            ``hidden_``.
        decoder: ``"auto"`` (matched to the data kind: Bernoulli for binary data, a K-way
            softmax for up to 16 levels, a discretised mixture of ``n_mix`` logistics for
            more (8-bit images), a Gaussian for continuous data), ``"bernoulli"``,
            ``"categorical"``, ``"gaussian"``, ``"discretised-logistic"`` (one logistic, two
            numbers per entry) or ``"discretised-logistic-mixture"``. Inputs with more
            than 16 levels enter the encoder as scaled intensities, not one-hot
            (:data:`ONE_HOT_LEVELS`). The choice is kept as ``decoder_``.
        decoder_variance: the Gaussian decoder's variance: ``"learned"`` (per entry, output
            by the decoder) or a fixed number > 0.
        n_mix: M ≥ 1, the logistic components of the ``"discretised-logistic-mixture"``
            decoder (3M numbers per entry).
        beta: weight of the KL term once warmed up (1: the ELBO).
        beta_warmup_epochs: epochs over which β rises linearly from 0 to ``beta`` (counted in
            optimisation steps, kept in the module's ``step`` buffer so resumed runs continue
            exactly); 0: no warm-up.
        free_bits: λ ≥ 0 nats per latent dimension (Kingma et al. 2016; 0: off): see
            :class:`LatentVariableModule`.
        iwae_samples: importance samples k of ``score_samples``; was ``k``. The validation
            NLL that early stopping watches during fit uses min(k, 10)
            (:data:`VALIDATION_SAMPLES`): IWAE_100 every epoch cost ten times the epoch.
        impute_steps: pseudo-Gibbs rounds of ``impute`` / ``sample(given=...)``.
        class_conditional: fit p(x | y) with q(z | x, y) and p(x | z, y) (``fit(X, y)``);
            ``sample(n, y=...)`` and ``predict_proba`` (Bayes' rule on IWAE estimates) work.
        **training: the shared training arguments (``epochs``, ``lr``, ``dtype``, ...; see
            :data:`ptheta.models.neural.TRAINING_PARAMS`); ``epochs="auto"`` means 200
            here without ``max_time`` (early stopping with ``patience`` usually ends the
            fit first), and no epoch limit with it.

    Fitted attributes:
        module: the trained :class:`VAENetwork`; architecture_ (``"mlp"`` or ``"conv"``) and
        hidden_ (a list): the network chosen for the data; decoder_: the decoder's name
        (``"auto"`` resolved); history_, best_epoch_, n_steps_:
        training record; beta_warmup_steps_; the diagnostics above; classes_ for
        conditional models.

    Example:
        >>> import ptheta
        >>> data = ptheta.datasets.load("digits-binary")
        >>> m = ptheta.make("vae", latent_dim=8, epochs=2, device="cpu").fit(data.train)
        >>> m.architecture_, m.hidden_  # "auto" on 8×8 images
        ('conv', [32, 64])
        >>> m.score_samples(data.test).shape, m.embed(data.test).shape
        ((447,), (447, 8))

    References:
        Kingma & Welling (2014), Auto-Encoding Variational Bayes, ICLR; Burda, Grosse &
        Salakhutdinov (2016), Importance Weighted Autoencoders, ICLR; Kingma et al. (2016),
        Improved Variational Inference with Inverse Autoregressive Flow (free bits), NeurIPS;
        Bowman et al. (2016), Generating Sentences from a Continuous Space (KL annealing);
        Salimans, Karpathy, Chen & Kingma (2017), PixelCNN++ (discretised logistic mixture);
        Sohn, Lee & Yan (2015) (conditional VAE); Rezende, Mohamed & Wierstra (2014)
        (pseudo-Gibbs imputation).
    """

    name: ClassVar[str] = "vae"
    auto_epochs: ClassVar[int] = EPOCHS
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
        # the demo keeps to a minute: on 8×8 digits the MLP reaches the conv's ELBO (91.8
        # against 91.75 nats, bench/vae_defaults.py) about ten times faster
        "demo": {
            "latent_dim": 8,
            "epochs": 50,
            "lr": 2e-3,
            "batch_size": 64,
            "device": "cpu",
            "architecture": "mlp",
        },
    }
    parameters: ClassVar[dict[str, Param]] = {
        "hidden": OneOf(
            Choice("auto"), IntList(empty=False), what="'auto', an int >= 1 or a list of them"
        ),
        "architecture": Choice(*ARCHITECTURES),
        "decoder": Choice("auto", *DECODERS),
        "n_mix": Int(low=1),
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
        hidden: str | int | list[int] = "auto",
        architecture: str = "auto",
        decoder: str = "auto",
        decoder_variance: str | float = "learned",
        n_mix: int = 5,
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
        self.n_mix = n_mix
        self.beta = beta
        self.beta_warmup_epochs = beta_warmup_epochs
        self.free_bits = free_bits
        self.iwae_samples = iwae_samples
        self.impute_steps = impute_steps
        self.class_conditional = class_conditional

    def _decoder(self, spec: DataSpec, *, legacy: bool = False) -> str:
        """The decoder's name for data of ``spec``: what the fit chose (``decoder_``: a
        loaded model rebuilds the network it saved), else ``decoder`` with "auto" matched to
        the data; ``legacy``: "auto" as it was before ``decoder_`` was recorded (one
        discretised logistic above :data:`ONE_HOT_LEVELS` levels)."""
        saved = getattr(self, "decoder_", None)
        if saved is not None:
            return saved
        if self.decoder != "auto":
            return self.decoder
        if spec.kind == "categorical" and spec.n_categories > ONE_HOT_LEVELS:
            # 3·n_mix numbers per entry, not K
            return "discretised-logistic" if legacy else "discretised-logistic-mixture"
        return {"binary": "bernoulli", "categorical": "categorical", "continuous": "gaussian"}[
            spec.kind
        ]

    def _output(self, spec: DataSpec) -> Output:
        name = self.name
        ordered = ("discretised-logistic", "discretised-logistic-mixture")
        allowed = {
            "binary": ("bernoulli", "categorical", *ordered),
            "categorical": ("categorical", *ordered),
            "continuous": ("gaussian",),
        }[spec.kind]
        decoder = self._decoder(spec)
        if decoder not in allowed:
            raise DataError(
                f"{name}: a {decoder} decoder does not model {spec.describe()} data; use "
                f"decoder='auto' or one of {', '.join(allowed)}"
                + (" (discrete data needs a pmf, not a density)" if decoder == "gaussian" else "")
            )
        params = self._params()
        return make_output(
            decoder, spec.n_categories, params["decoder_variance"], n_mix=params["n_mix"]
        )

    def _build_module(self, spec: DataSpec, n_classes: int | None) -> VAENetwork:
        architecture, hidden = self._architecture(spec)
        config = self.config(
            output=self._output(spec),
            architecture=architecture,
            hidden=hidden,
            image_shape=self._image(spec) if architecture == "conv" else None,
            warmup_steps=self._warmup_steps(),
        )
        if getattr(self, "_fitting", False):
            config = config.replace(iwae_samples=min(self.iwae_samples, VALIDATION_SAMPLES))
        return VAENetwork.from_config(config, spec, n_classes)

    def _fit_stream(self, data, y, spec, **fit_params) -> None:
        self.architecture_, self.hidden_ = self._architecture(spec)
        self.decoder_ = self._decoder(spec)
        super()._fit_stream(data, y, spec, **fit_params)

    def _scoring_settings(self, module: nn.Module) -> None:
        # the Trainer's validation NLL each epoch is IWAE with VALIDATION_SAMPLES samples
        # (IWAE_100 cost ten times a training epoch); the fitted module scores with
        # iwae_samples
        module.iwae_samples = self.iwae_samples

    def _after_set_state(self) -> None:
        super()._after_set_state()
        if getattr(self, "decoder_", None) is None:  # a run saved before decoder_ existed
            self.decoder_ = self._decoder(self.fitted_spec, legacy=True)

    def _architecture(self, spec: DataSpec) -> tuple[str, list[int]]:
        """The architecture and hidden sizes for data of ``spec``: what the fit chose
        (``architecture_``, ``hidden_``: a loaded model rebuilds the network it saved),
        else ``architecture`` and ``hidden`` with "auto" resolved: conv on images of at
        least :data:`CONV_MIN_SIZE` pixels a side, mlp otherwise; :data:`AUTO_HIDDEN`."""
        saved = getattr(self, "architecture_", None), getattr(self, "hidden_", None)
        if saved[0] is not None and saved[1] is not None:
            return saved[0], [int(h) for h in saved[1]]
        params = self._params()
        architecture = params["architecture"]
        if architecture == "auto":
            image = _image_shape(spec)
            large = image is not None and min(image[1:]) >= CONV_MIN_SIZE
            architecture = "conv" if large else "mlp"
        hidden = params["hidden"]
        return architecture, list(AUTO_HIDDEN[architecture] if hidden == "auto" else hidden)

    def _image(self, spec: DataSpec) -> tuple[int, ...]:
        """The (C, H, W) of a conv VAE's examples."""
        image = _image_shape(spec)
        if image is None:
            raise DataError(
                f"{self.name}: architecture='conv' needs image-shaped data: examples of shape "
                f"(C, H, W), or flat examples whose data set declares an image_shape "
                f"(digits: (1, 8, 8)); got examples of shape {spec.event_shape}. Reshape "
                "X to (N, C, H, W), or use architecture='mlp' (or 'auto')"
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
        z = z.to(self._weights_dtype())
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
        device, dtype = self._device(), self._weights_dtype()
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
