"""Generative adversarial networks: MLP or DCGAN, non-saturating or WGAN-GP: no likelihood.

Fitting streams (``capabilities().streams``): the standardisation of continuous data (the
networks' ``loc`` and ``scale``) is the mean and standard deviation summed over batches
(:func:`~ptheta.models.neural.streamed_location_scale`), and the Trainer reads the
examples a batch at a time: a memory-mapped file is never read whole.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm as _spectral_norm

from ptheta.data.batch_stats import streamed_location_scale
from ptheta.data.spec import DataSpec, check_values
from ptheta.data.stream import Source
from ptheta.errors import CapabilityError, DataError, ParameterError
from ptheta.models.neural import NeuralModel
from ptheta.nn.mlp import dense_layers
from ptheta.nn.shapes import batched, sampled
from ptheta.params import Bool, Choice, Config, Float, Int, IntList, Param

LOSSES: tuple[str, ...] = ("non-saturating", "wgan-gp")
ARCHITECTURES: tuple[str, ...] = ("auto", "mlp", "dcgan")
# architecture="auto" picks the DCGAN networks for images at least this high and wide
DCGAN_MIN_SIZE = 8
SCORE_CHUNK = 1024  # examples per forward pass of discriminator_score
NO_LIKELIHOOD = (
    "gan has no likelihood (implicit model); use sample-based metrics (ptheta compare: "
    "FD/precision/recall/MMD) or discriminator_score(X) for anomaly scores"
)


# ---------------------------------------------------------------------------------------
# Module level


class GANNetwork(nn.Module):
    """A generator G(z, y) and a discriminator D(x, y) trained in alternating phases.

    Data live in a normalised space where both networks work: continuous values are
    standardised per dimension with ``loc`` and ``scale`` (buffers, saved with the weights);
    discrete levels 0..K−1 are mapped to the level centres 2k/(K−1) − 1 in [−1, 1], the
    generator ends in tanh, and ``sample`` rounds its outputs to the nearest level, so
    samples are always valid levels (a continuous relaxation: the discriminator sees real
    data only at the level centres).

    Training (the shared Trainer calls these): ``optim_groups()`` gives the two players'
    parameters with Adam betas (β1, 0.999); ``phase(step)`` gives ``n_critic``
    discriminator steps then one generator step; ``loss(x, y, phase)`` is the per-example
    loss of that phase, its noise z ~ N(0, I) (and the WGAN-GP interpolation weights)
    drawn from torch's global RNG:

    - ``"non-saturating"``: D minimises −log σ(D(x)) − log(1 − σ(D(G(z)))), G minimises
      −log σ(D(G(z))) (Goodfellow et al. 2014, §3);
    - ``"wgan-gp"``: the critic minimises D(G(z)) − D(x) + λ (‖∇D(x̂)‖₂ − 1)² with
      x̂ = ε x + (1 − ε) G(z), ε ~ U(0, 1) per example; G minimises −D(G(z))
      (Gulrajani et al. 2017).

    ``loss(x, y)`` without a phase returns the discriminator's loss: a GAN has no
    likelihood, and that is what the Trainer records as ``val_loss`` (not an NLL).

    **No** ``log_prob``: the generator is an implicit model, a push-forward of N(0, I) with
    no density to evaluate, so the module has no ``log_prob`` attribute at all
    (``hasattr(net, "log_prob")`` is False: the Trainer scores modules with one), and the
    discriminator's score is no likelihood either. Shapes (:mod:`ptheta.nn.shapes`):
    ``loss`` and ``discriminator_score`` take x (*batch, *event_shape) and y (*batch) and
    return (*batch); ``sample`` takes a sample shape.

    Architectures: ``"mlp"`` (ReLU generator, LeakyReLU(0.2) discriminator, hidden sizes
    ``hidden``) on flattened examples; ``"dcgan"`` on images (C, H, W) with H, W ≥ 4: the
    generator maps z to (2c, ⌈H/4⌉, ⌈W/4⌉) and up-samples twice with 4×4 transposed
    convolutions of stride 2 (cropped to H×W), the discriminator mirrors it with strided
    convolutions (c = ``channels``). No batch normalisation, so a sample never depends on
    the others drawn with it and WGAN-GP's per-example penalty is well defined. With
    ``n_classes``, G reads z concatenated with a learned label embedding and D uses a
    projection head: D(x, y) = w·φ(x) + e_y·φ(x) (Miyato & Koyama 2018).

    Arguments:
        event_shape: shape of one example.
        n_categories: K levels of discrete data; None for continuous data.
        latent_dim: size of z.
        hidden: hidden layer sizes of the MLP networks.
        architecture: ``"mlp"`` or ``"dcgan"``.
        channels: base number of channels c of the DCGAN networks.
        image_shape: (C, H, W) to view examples as, for ``"dcgan"``.
        loss: ``"non-saturating"`` or ``"wgan-gp"``.
        gp_weight: λ of the gradient penalty (WGAN-GP).
        n_critic: discriminator steps per generator step.
        spectral_norm: spectrally normalise every discriminator weight (Miyato et al. 2018).
        beta1: Adam's β1 for both players (β2 = 0.999).
        n_classes: number of classes for G(z, y) and D(x, y); None: unconditional.
        loc, scale: per-dimension standardisation of continuous data, each
            (*event_shape,); default 0 and 1.

    Example:
        >>> import torch
        >>> from ptheta.models.gan import GANNetwork
        >>> net = GANNetwork((2,), latent_dim=2, hidden=[32, 32])
        >>> x = torch.randn(8, 2)
        >>> net.loss(x, phase="discriminator").shape, net.phase(0), net.phase(1)
        (torch.Size([8]), 'discriminator', 'generator')
        >>> net.sample(5, generator=torch.Generator().manual_seed(0)).shape
        torch.Size([5, 2])

    References:
        Goodfellow et al. (2014), Generative Adversarial Nets, NeurIPS. Radford, Metz &
        Chintala (2016), Unsupervised Representation Learning with Deep Convolutional GANs,
        ICLR. Gulrajani et al. (2017), Improved Training of Wasserstein GANs, NeurIPS.
        Miyato et al. (2018), Spectral Normalization for GANs, ICLR. Miyato & Koyama
        (2018), cGANs with Projection Discriminator, ICLR.
    """

    # its loss does not measure fit: the Trainer records a validation loss, selects nothing
    validation_measures_fit = False

    @classmethod
    def from_config(
        cls, config: Config, spec: DataSpec, n_classes: int | None = None
    ) -> GANNetwork:
        """The networks of a :class:`GAN`'s config (``latent_dim``, ``hidden``,
        ``channels``, ``loss``, ``gp_weight``, ``spectral_norm``, ``beta1``, and the
        ``architecture``, ``image_shape``, ``n_critic``, ``loc``, ``scale`` the estimator
        resolved for the data)."""
        return cls(
            spec.event_shape,
            n_categories=spec.n_categories if spec.is_discrete else None,
            latent_dim=config.latent_dim,
            hidden=config.hidden,
            architecture=config.architecture,
            channels=config.channels,
            image_shape=config.image_shape,
            loss=config.loss,
            gp_weight=config.gp_weight,
            n_critic=config.n_critic,
            spectral_norm=config.spectral_norm,
            beta1=config.beta1,
            n_classes=n_classes,
            loc=config.loc,
            scale=config.scale,
        )

    def __init__(
        self,
        event_shape: Sequence[int],
        *,
        n_categories: int | None = None,
        latent_dim: int = 8,
        hidden: Sequence[int] = (128, 128),
        architecture: str = "mlp",
        channels: int = 32,
        image_shape: Sequence[int] | None = None,
        loss: str = "non-saturating",
        gp_weight: float = 10.0,
        n_critic: int = 1,
        spectral_norm: bool = False,
        beta1: float = 0.5,
        n_classes: int | None = None,
        loc: Any = None,
        scale: Any = None,
    ) -> None:
        super().__init__()
        if loss not in LOSSES or architecture not in ("mlp", "dcgan"):
            raise ValueError(f"unknown loss {loss!r} or architecture {architecture!r}")
        self.event_shape = tuple(event_shape)
        self.n_categories, self.latent_dim, self.n_classes = n_categories, latent_dim, n_classes
        self.loss_kind, self.gp_weight, self.n_critic, self.beta1 = loss, gp_weight, n_critic, beta1
        d = math.prod(self.event_shape)
        shape = self.event_shape
        loc = torch.zeros(shape) if loc is None else torch.as_tensor(loc).reshape(shape)
        scale = torch.ones(shape) if scale is None else torch.as_tensor(scale).reshape(shape)
        self.register_buffer("loc", loc.float())  # (*event_shape)
        self.register_buffer("scale", scale.float())  # (*event_shape)
        g_in = latent_dim * (2 if n_classes else 1)
        self.g_embed = nn.Embedding(n_classes, latent_dim) if n_classes else None
        if architecture == "mlp":
            self.view = (d,)
            sizes = [g_in, *hidden, d]
            # the generator's last layer is linear: no activation after it
            self.generator = nn.Sequential(*dense_layers(sizes, nn.ReLU)[:-1])
            d_layers = dense_layers([d, *hidden], lambda: nn.LeakyReLU(0.2))
            features = [d, *hidden][-1]
        else:
            if image_shape is None or len(image_shape) != 3 or math.prod(image_shape) != d:
                raise ValueError(f"dcgan needs an image_shape (C, H, W) of {d} values")
            if min(image_shape[1:]) < 4:
                raise ValueError(f"dcgan needs images of at least 4×4, got {image_shape}")
            c, h, w = self.view = tuple(image_shape)
            h0, w0 = -(-h // 4), -(-w // 4)
            self.generator = nn.Sequential(
                nn.Linear(g_in, 2 * channels * h0 * w0),
                nn.ReLU(),
                nn.Unflatten(1, (2 * channels, h0, w0)),  # (B, 2c, ⌈H/4⌉, ⌈W/4⌉)
                nn.ConvTranspose2d(2 * channels, channels, 4, 2, 1),  # (B, c, 2h0, 2w0)
                nn.ReLU(),
                nn.ConvTranspose2d(channels, c, 4, 2, 1),  # (B, C, 4h0, 4w0), cropped later
            )
            d_layers = [
                nn.Conv2d(c, channels, 4, 2, 1),  # (B, c, ⌊H/2⌋, ⌊W/2⌋)
                nn.LeakyReLU(0.2),
                nn.Conv2d(channels, 2 * channels, 4, 2, 1),  # (B, 2c, ⌊H/4⌋, ⌊W/4⌋)
                nn.LeakyReLU(0.2),
                nn.Flatten(),
            ]
            features = 2 * channels * (h // 4) * (w // 4)
        self.features = nn.Sequential(*d_layers)  # φ(x): the discriminator's body
        self.head = nn.Linear(features, 1)
        self.d_embed = nn.Embedding(n_classes, features) if n_classes else None
        if spectral_norm:
            for layer in [*self.features, self.head]:
                if isinstance(layer, (nn.Linear, nn.Conv2d)):
                    _spectral_norm(layer)

    def extra_repr(self) -> str:
        parts = [
            f"event_shape={self.event_shape}",
            f"latent_dim={self.latent_dim}",
            f"loss={self.loss_kind}",
            f"n_critic={self.n_critic}",
        ]
        if self.n_classes:
            parts.append(f"n_classes={self.n_classes}")
        return ", ".join(parts)

    # ----------------------------------------------------------------- data space
    def encode(self, x: Tensor) -> Tensor:
        """Data (N, *event_shape) → the networks' normalised space, float (N, *event_shape)."""
        if self.n_categories is None:
            return (x - self.loc) / self.scale
        return x.to(self.loc.dtype) * (2.0 / max(self.n_categories - 1, 1)) - 1.0

    def decode(self, v: Tensor) -> Tensor:
        """Normalised values → data: un-standardised, or rounded to the nearest level."""
        if self.n_categories is None:
            return v * self.scale + self.loc
        k = self.n_categories - 1
        return ((v + 1.0) * (k / 2.0)).round().clamp(0, k).long()

    # ----------------------------------------------------------------- the two players
    def _check_y(self, y: Tensor | None, n: int) -> None:
        if self.n_classes and (y is None or y.shape != (n,)):
            raise ValueError(f"this GAN is class-conditional: pass y, a LongTensor ({n},)")
        if not self.n_classes and y is not None:
            raise ValueError("this GAN is unconditional; call it without y")

    def generate(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        """G(z, y) in the normalised space: z (N, latent_dim) → (N, *event_shape)."""
        self._check_y(y, len(z))
        if self.g_embed is not None:
            z = torch.cat([z, self.g_embed(y)], 1)  # (N, 2L)
        out = self.generator(z)  # (N, D) or (N, C, 4h0, 4w0)
        if len(self.view) == 3:
            out = out[:, :, : self.view[1], : self.view[2]]  # (N, C, H, W)
        out = out.reshape(len(z), *self.event_shape)
        return out if self.n_categories is None else torch.tanh(out)

    def critic(self, v: Tensor, y: Tensor | None = None) -> Tensor:
        """D(v, y): logits (or critic values) of normalised examples v, (N,)."""
        self._check_y(y, len(v))
        h = self.features(v.reshape(len(v), *self.view))  # (N, F)
        out = self.head(h).squeeze(1)  # (N,)
        if self.d_embed is not None:
            out = out + (self.d_embed(y) * h).sum(1)  # projection of the label
        return out

    @batched
    def discriminator_score(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """D's logits (critic values for WGAN-GP) of data x, (*batch): higher = judged more
        real."""
        return self.critic(self.encode(x), y)

    def gradient_penalty(self, real: Tensor, fake: Tensor, y: Tensor | None = None) -> Tensor:
        """(‖∇D(x̂)‖₂ − 1)² per example at x̂ = ε real + (1 − ε) fake, ε ~ U(0, 1), (N,)."""
        eps = torch.rand(len(real), *[1] * (real.dim() - 1), dtype=real.dtype, device=real.device)
        mixed = (eps * real + (1 - eps) * fake).requires_grad_(True)  # (N, *event_shape)
        differentiable = torch.is_grad_enabled()  # the penalty itself is trained on
        with torch.enable_grad():  # also when the Trainer validates under no_grad
            # D treats examples independently, so the gradient of the sum is each one's own
            (grad,) = torch.autograd.grad(
                self.critic(mixed, y).sum(), mixed, create_graph=differentiable
            )
        return (grad.reshape(len(real), -1).norm(dim=1) - 1) ** 2

    # ----------------------------------------------------------------- training interface
    def optim_groups(self) -> dict[str, dict[str, Any]]:
        """Each player's parameters and Adam betas (β1, 0.999), for the Trainer."""
        d_modules = [self.features, self.head, self.d_embed]
        d_params = [p for m in d_modules if m is not None for p in m.parameters()]
        d_ids = {id(p) for p in d_params}
        g_params = [p for p in self.parameters() if id(p) not in d_ids]
        betas = (self.beta1, 0.999)
        return {
            "discriminator": {"params": d_params, "betas": betas},
            "generator": {"params": g_params, "betas": betas},
        }

    def phase(self, step: int) -> str:
        """The player step ``step`` updates: n_critic discriminator steps, then G once."""
        return "generator" if step % (self.n_critic + 1) == self.n_critic else "discriminator"

    @batched
    def loss(self, x: Tensor, y: Tensor | None = None, phase: str | None = None) -> Tensor:
        """Per-example loss of ``phase`` (None: the discriminator's), (*batch); see the class."""
        real = self.encode(x)  # (N, *event_shape)
        z = torch.randn(len(x), self.latent_dim, dtype=real.dtype, device=real.device)
        fake = self.generate(z, y)  # (N, *event_shape)
        wgan = self.loss_kind == "wgan-gp"
        if phase == "generator":
            score = self.critic(fake, y)
            return -score if wgan else F.softplus(-score)  # −log σ(D(G(z)))
        if phase not in (None, "discriminator"):
            raise ValueError(f"unknown phase {phase!r}: 'discriminator' or 'generator'")
        fake = fake.detach()
        real_score, fake_score = self.critic(real, y), self.critic(fake, y)
        if wgan:
            penalty = self.gradient_penalty(real, fake, y) if self.gp_weight else 0.0
            return fake_score - real_score + self.gp_weight * penalty
        return F.softplus(-real_score) + F.softplus(fake_score)  # BCE: real → 1, fake → 0

    @sampled
    @torch.no_grad()
    def sample(
        self, n: int, y: Tensor | None = None, generator: torch.Generator | None = None
    ) -> Tensor:
        """Draw examples, (*sample_shape, *event_shape) for an int n, a tuple, or () for one
        (LongTensor of levels for discrete data).

        z comes from ``generator`` (on the network's device), so sampling is reproducible.
        """
        dtype, device = self.loc.dtype, self.loc.device
        z = torch.randn(n, self.latent_dim, generator=generator, dtype=dtype, device=device)
        return self.decode(self.generate(z, y))


# ---------------------------------------------------------------------------------------
# Estimator level


class GAN(NeuralModel):
    """GAN: an implicit generative model — samples, but no likelihood.

    A generator maps Gaussian noise to examples; a discriminator learns to tell them from
    the data, and the generator learns to fool it (see :class:`GANNetwork`). The shared
    Trainer alternates the two players' updates: ``n_critic`` discriminator steps, then
    one generator step, each with Adam (β1 = ``beta1``, β2 = 0.999). An epoch is one pass
    of batches over the data, whichever player each batch updates.

    **No likelihood.** ``likelihood = "none"``: ``score_samples``, ``score`` and
    ``predict_proba`` are absent (``hasattr`` is False; reaching for one, or calling
    ``bits_per_dim``, raises a :class:`CapabilityError` that says what to use instead).
    Judge a GAN by its samples (``ptheta compare``: Fréchet distance, precision/recall,
    MMD); for anomaly scores use :meth:`discriminator_score` — though a discriminator is
    trained to separate data from the *current* generator, not to rank data by density, so
    it is a heuristic score. By default nothing is held out (``validation_fraction=0``): there is
    no honest validation criterion. With a fraction (or ``validation_data``) the history's
    ``val_loss`` is the discriminator's loss, not an NLL: it is recorded for watching, and
    never stops training or selects weights (the last weights are kept).

    **Discrete data** are modelled as continuous values at the level centres in [−1, 1];
    the generator ends in tanh and samples are rounded to the nearest level, so they are
    always valid values of the data's kind. Continuous data are standardised per
    dimension internally (samples come back in the data's units).

    Arguments:
        hidden: hidden layer sizes of the MLP generator and discriminator: a list, or an
            int for one layer.
        latent_dim: size of the noise z.
        architecture: ``"auto"`` (DCGAN networks for image data at least 8×8, e.g.
            digits' (1, 8, 8), else MLP), ``"mlp"`` or ``"dcgan"``.
        channels: base channel count of the DCGAN networks.
        loss: ``"non-saturating"`` (Goodfellow et al.) or ``"wgan-gp"`` (Gulrajani et al.).
        gp_weight: λ of WGAN-GP's gradient penalty.
        n_critic: discriminator steps per generator step; None: 2 for the non-saturating
            loss (1 collapsed onto a few of 8gaussians' modes for some seeds; 2 covered all
            8 for every seed tried, see bench/gan_modes.py), 5 for WGAN-GP.
        spectral_norm: spectral normalisation of every discriminator weight.
        beta1: Adam's β1 (0.5, as in DCGAN).
        class_conditional: fit G(z, y) and D(x, y) with ``fit(X, y)``; then
            ``sample(n, y=...)`` draws examples of class y.
        **training: the shared training arguments (epochs, lr, batch_size, dtype, device,
            random_state, ema_decay...; see ``ptheta.models.neural.TRAINING_PARAMS``);
            here ``validation_fraction`` defaults to 0.

    Fitted attributes:
        module: the trained :class:`GANNetwork`; history_ (per-epoch mean training loss
        over both players' steps), n_steps_.

    Example:
        >>> import ptheta
        >>> data = ptheta.datasets.load("toy2d-8gaussians")
        >>> gan = ptheta.make("gan", epochs=2, device="cpu").fit(data.train)
        >>> gan.sample(5, random_state=0).shape, gan.discriminator_score(data.test.x).shape
        ((5, 2), (1000,))

    References:
        Goodfellow et al. (2014), Generative Adversarial Nets, NeurIPS. Radford, Metz &
        Chintala (2016), DCGAN, ICLR. Gulrajani et al. (2017), Improved Training of
        Wasserstein GANs, NeurIPS. Miyato et al. (2018), Spectral Normalization for GANs,
        ICLR.
    """

    name: ClassVar[str] = "gan"
    family: ClassVar[str] = "implicit"
    likelihood: ClassVar[str] = "none"
    abilities: ClassVar[dict[str, Any]] = {
        "anomaly_score": "discriminator",
        "validation_measures_fit": False,
    }
    data_kinds: ClassVar[tuple[str, ...]] = ("continuous", "binary", "categorical")
    quick_params: ClassVar[dict[str, Any]] = {
        "hidden": [16],
        "latent_dim": 2,
        "epochs": 3,
        "batch_size": 64,
        "dtype": "float64",
        "device": "cpu",
    }

    validation_measures_fit = False  # its loss does not measure fit: no early stopping
    presets: ClassVar[dict[str, dict[str, Any]]] = {"demo": {"device": "cpu"}}
    parameters: ClassVar[dict[str, Param]] = {
        "hidden": IntList(),
        "latent_dim": Int(low=1),
        "architecture": Choice(*ARCHITECTURES),
        "channels": Int(low=1),
        "loss": Choice(*LOSSES),
        "gp_weight": Float(low=0),
        "n_critic": Int(low=1, none=True),
        "spectral_norm": Bool(),
        "beta1": Float(low=0, high=1, high_open=True),
        "class_conditional": Bool(),
    }

    def __init__(
        self,
        hidden: int | Sequence[int] = (128, 128),
        *,
        latent_dim: int = 8,
        architecture: str = "auto",
        channels: int = 32,
        loss: str = "non-saturating",
        gp_weight: float = 10.0,
        n_critic: int | None = None,
        spectral_norm: bool = False,
        beta1: float = 0.5,
        class_conditional: bool = False,
        **training: Any,
    ) -> None:
        super().__init__(**{"validation_fraction": 0.0, **training})
        self.hidden = hidden
        self.latent_dim = latent_dim
        self.architecture = architecture
        self.channels = channels
        self.loss = loss
        self.gp_weight = gp_weight
        self.n_critic = n_critic
        self.spectral_norm = spectral_norm
        self.beta1 = beta1
        self.class_conditional = class_conditional

    def _fit_stream(self, data: Source, y: np.ndarray | None, spec: DataSpec, **kwargs: Any):
        # continuous data are standardised inside the network (its loc/scale buffers): mean
        # and std (1 for a constant entry) from sums over batches
        self._standardise = None
        if not spec.is_discrete:
            self._standardise = streamed_location_scale(data)
        super()._fit_stream(data, y, spec, **kwargs)

    def _image_shape(self, spec: DataSpec) -> tuple[int, ...] | None:
        image = spec.image_shape
        if image is None or len(image) != 3 or math.prod(image) != spec.n_dims:
            image = spec.event_shape if len(spec.event_shape) == 3 else None
        return image

    def _build_module(self, spec: DataSpec, n_classes: int | None) -> GANNetwork:
        name, architecture = self.name, self.architecture
        image = self._image_shape(spec)
        if architecture == "auto":
            large = image is not None and min(image[1:]) >= DCGAN_MIN_SIZE
            architecture = "dcgan" if large else "mlp"
        elif architecture == "dcgan" and (image is None or min(image[1:]) < 4):
            raise DataError(
                f"{name}: architecture='dcgan' needs images of at least 4×4: examples of shape "
                "(C, H, W), or flat examples whose data set declares an image_shape (digits: "
                f"(1, 8, 8)); got examples of shape {spec.event_shape}. Use architecture='mlp'"
            )
        loc, scale = getattr(self, "_standardise", None) or (None, None)
        n_critic = self.n_critic or (5 if self.loss == "wgan-gp" else 2)
        config = self.config(
            architecture=architecture, image_shape=image, n_critic=n_critic, loc=loc, scale=scale
        )
        return GANNetwork.from_config(config, spec, n_classes)

    # ----------------------------------------------------------------- no likelihood
    def _no_likelihood(self) -> str:
        return NO_LIKELIHOOD

    def _score_samples(self, x: np.ndarray) -> np.ndarray:
        raise CapabilityError(NO_LIKELIHOOD)

    @torch.no_grad()
    def discriminator_score(self, X: Any, y: Any = None) -> np.ndarray:
        """The discriminator's logit (WGAN-GP: critic value) of each example, shape (N,).

        Higher means judged more like the training data — a heuristic anomaly score (low =
        anomalous), not a log-density: its scale is arbitrary and it reflects what the
        discriminator learned to separate from the last generator.

        Arguments:
            X: (N, *event_shape) examples of the fitted kind.
            y: class labels (N,), needed by a class-conditional GAN (D(x, y)).

        Returns:
            float64 array (N,).
        """
        self._check_fitted()
        x = check_values(X, self.fitted_spec, what="X")
        labels = None
        if self._conditional():
            if y is None:
                raise DataError(
                    "a class-conditional GAN scores D(x, y): pass y, one label per example"
                )
            labels = self._index_of(self._check_sample_labels(y, len(x)))
        elif y is not None:
            raise ParameterError("this GAN is not class-conditional: call it without y")
        device, out = self._device(), []
        # in chunks: memory stays bounded however many examples are scored
        for start in range(0, len(x), SCORE_CHUNK):
            part = slice(start, start + SCORE_CHUNK)
            xt = self._tensors(x[part], None, self.fitted_spec)[0].to(device)
            yt = None if labels is None else torch.as_tensor(labels[part], device=device)
            out.append(self._module.discriminator_score(xt, yt).double().cpu().numpy())
        return np.concatenate(out)
