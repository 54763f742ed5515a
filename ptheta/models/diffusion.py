"""Denoising diffusion (DDPM): ε-prediction, estimates of the variational bound, ancestral and
DDIM sampling.

Fitting streams (``capabilities().streams``): the standardisation of continuous data (the
network's ``shift`` and ``scale`` buffers) is the mean and standard deviation summed over
batches (:func:`~ptheta.models.neural.streamed_location_scale`), and the Trainer reads the
examples a batch at a time: a memory-mapped file is never read whole.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from ptheta.data.batch_stats import streamed_location_scale
from ptheta.data.spec import DataSpec, check_values
from ptheta.data.stream import Source, accumulate
from ptheta.errors import DataError, ParameterError
from ptheta.models.neural import (  # noqa: F401  (UNET_HIDDEN, MLP_HIDDEN: ddpm's docs)
    DIFFUSION_TRAINING,
    MLP_HIDDEN,
    UNET_HIDDEN,
    NeuralModel,
)
from ptheta.nn.noise import SCORE_SEED, example_keys, keyed_normal, keyed_uniform
from ptheta.nn.shapes import batched, sampled
from ptheta.nn.unet import MLPDenoiser, TimeEmbedding, UNet
from ptheta.params import (
    Bool,
    Choice,
    Config,
    Float,
    Int,
    OneOf,
    Param,
    check_float,
    check_int,
    check_random_state,
)
from ptheta.progress import progress_bar

LOG_2PI = math.log(2 * math.pi)
SCHEDULES: tuple[str, ...] = ("linear", "cosine")
VARIANCES: tuple[str, ...] = ("posterior", "beta")
ARCHITECTURES: tuple[str, ...] = ("auto", "mlp", "unet")
SAMPLERS: tuple[str, ...] = ("ancestral", "ddim")
BASES: tuple[str, ...] = ("independent", "gaussian")
# Rows (examples × time steps × draws) the denoiser sees at once when the bound is
# evaluated: at most BOUND_ROWS, and fewer for large examples (see bound_rows).
BOUND_ROWS = 8192
# Bytes of denoiser activations one such call may hold: a few hundred MB (or a quarter of
# the memory available, when that is less).
BOUND_BYTES = 256 * 2**20
# Activation values a denoiser holds at its peak per input value and channel of its
# width: about 13-15 for the U-Net at 28×28 (measured, max RSS of a forward pass), an
# upper estimate for the MLP.
ACTIVATIONS_PER_VALUE = 16
# noise stream of the stratified bound's time steps (keyed_uniform): no draw's stream
STRATA_STREAM = 2**63 - 1
# values of the (rows, D, K) temporaries of the independent base per block of rows (a few
# tens of MB: 256-level 32×32×3 images would need 0.4 GB per temporary for a batch of 128)
BASE_VALUES = 2**22
MAX_BETA = 0.999  # β_t = 1 would make 1/√α_t infinite (Nichol & Dhariwal clip the same way)


def _available_bytes(device: torch.device | None = None) -> int | None:
    """Memory free for new allocations on ``device`` (CUDA: the device's; otherwise the
    host's MemAvailable, or less under a cgroup memory limit), or None where unknown."""
    if device is not None and device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    free = []
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    free.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    try:  # cgroup v2: the limit of this process's group, less what it uses
        with open("/sys/fs/cgroup/memory.max", encoding="ascii") as f:
            limit = f.read().strip()
        if limit != "max":
            with open("/sys/fs/cgroup/memory.current", encoding="ascii") as f:
                free.append(int(limit) - int(f.read().strip()))
    except (OSError, ValueError):
        pass
    return max(min(free), 0) if free else None


def bound_rows(
    n_values: int,
    width: int,
    itemsize: int = 4,
    *,
    budget: int | None = None,
    device: torch.device | None = None,
) -> int:
    """Rows per denoiser call when the bound is evaluated, for examples of ``n_values``
    values and a denoiser ``width`` channels wide (``itemsize`` bytes per value): at most
    :data:`BOUND_ROWS`, and at most what keeps rows × n_values × width ×
    :data:`ACTIVATIONS_PER_VALUE` × itemsize within ``budget`` bytes (None:
    :data:`BOUND_BYTES`, or a quarter of the memory available on ``device`` if less).
    At least 1.

    Example:
        >>> [bound_rows(d, 64, budget=BOUND_BYTES) for d in (2, 64, 784, 3 * 32 * 32)]
        [8192, 1024, 83, 21]
    """
    if budget is None:
        budget = BOUND_BYTES
        free = _available_bytes(device)
        if free is not None:
            budget = min(budget, free // 4)
    per_row = max(n_values, 1) * max(width, 1) * ACTIVATIONS_PER_VALUE * itemsize
    return int(max(1, min(BOUND_ROWS, budget // per_row)))


def level_counts(data: Source | np.ndarray, n_levels: int) -> np.ndarray:
    """How often each entry takes each level, (D, K) float64, summed a batch at a time
    (:func:`~ptheta.data.stream.accumulate`: under torchrun, over every process).

    Example:
        >>> level_counts(np.array([[0, 2], [1, 2]]), 3).tolist()
        [[1.0, 1.0, 0.0], [0.0, 0.0, 2.0]]
    """

    def counts(x: np.ndarray, _: Any) -> dict[str, np.ndarray]:
        flat = x.reshape(len(x), -1).astype(np.int64)  # (B, D)
        index = flat + n_levels * np.arange(flat.shape[1])  # entry d, level k → d·K + k
        n = np.bincount(index.ravel(), minlength=flat.shape[1] * n_levels)
        return {"counts": n.reshape(flat.shape[1], n_levels)}

    return accumulate(data, counts)["counts"]


def beta_schedule(name: str, timesteps: int) -> Tensor:
    """β_1 … β_T of a named schedule, float64 (T,).

    ``"linear"``: Ho et al.'s linear schedule (β from 1e-4 to 0.02 over T = 1000) in its
    continuous form β(s) = 0.1 + 19.9 s, s ∈ [0, 1] (the VP process of Song et al.), so that
    ᾱ_t = exp(−0.1 s − 9.95 s²) at s = t/T and β_t = 1 − ᾱ_t/ᾱ_{t−1}: the same ᾱ curve and
    valid β_t < 1 for every T (Ho's end points scaled by 1000/T exceed 1 for T < 50).
    ``"cosine"``: ᾱ_t = f(t) / f(0), f(t) = cos²(π/2 · (t/T + s)/(1 + s)), s = 0.008.
    Both are clipped to ≤ 0.999.

    Example:
        >>> [round(b, 5) for b in beta_schedule("linear", 1000)[[0, -1]].tolist()]
        [0.00011, 0.01979]

    References:
        Ho, Jain & Abbeel (2020), DDPM, NeurIPS; Song et al. (2021), Score-Based Generative
        Modeling through Stochastic Differential Equations, ICLR; Nichol & Dhariwal (2021),
        Improved Denoising Diffusion Probabilistic Models, ICML.
    """
    steps = torch.arange(timesteps + 1, dtype=torch.float64) / timesteps  # s = t/T
    if name == "linear":
        log_alphas_bar = -0.1 * steps - 9.95 * steps**2
        betas = -torch.expm1(log_alphas_bar[1:] - log_alphas_bar[:-1])
    elif name == "cosine":
        f = torch.cos((steps + 0.008) / 1.008 * math.pi / 2) ** 2  # (T+1,)
        betas = 1 - f[1:] / f[:-1]
    else:
        raise ParameterError(f"unknown noise schedule {name!r}; use one of {SCHEDULES}")
    return betas.clamp(max=MAX_BETA)


def log_discretised_gaussian(k: Tensor, mean: Tensor, std: Tensor | float, n_levels: int) -> Tensor:
    """log P(level k) when x ~ N(mean, std²) is read off on K level centres in [−1, 1].

    Level k has centre c_k = (2k + 1)/K − 1 and bin [c_k − 1/K, c_k + 1/K]; the first and
    last bins extend to −∞ and +∞, so the K probabilities sum to one exactly.

    Arguments:
        k: levels, LongTensor of any shape.
        mean, std: of the Gaussian, broadcastable to k's shape.
        n_levels: K.

    Returns:
        log-probabilities in nats, k's shape.

    Example:
        >>> import torch
        >>> k = torch.arange(3)
        >>> round(float(log_discretised_gaussian(k, torch.zeros(3), 0.5, 3).exp().sum()), 6)
        1.0

    References:
        Ho, Jain & Abbeel (2020), DDPM, NeurIPS, eq. (13).
    """
    centre = (2 * k.to(mean.dtype) + 1) / n_levels - 1
    half = 1.0 / n_levels
    lo = torch.where(k == 0, -math.inf, (centre - half - mean) / std)
    hi = torch.where(k == n_levels - 1, math.inf, (centre + half - mean) / std)
    # log(Φ(hi) − Φ(lo)) in the tail where it is accurate: mirror bins right of 0
    flip = lo > 0
    a, b = torch.where(flip, -hi, lo), torch.where(flip, -lo, hi)  # Φ(b) − Φ(a), a < b
    log_b, log_a = torch.special.log_ndtr(b), torch.special.log_ndtr(a)
    gap = (log_a - log_b).clamp(max=-torch.finfo(log_b.dtype).tiny)  # < 0: Φ(a) < Φ(b)
    return log_b + torch.log(-torch.expm1(gap))


def _gaussian_kl(mean1: Tensor, var1: Tensor, mean2: Tensor, var2: Tensor) -> Tensor:
    """KL(N(mean1, var1) ‖ N(mean2, var2)) per entry."""
    return 0.5 * (torch.log(var2 / var1) + (var1 + (mean1 - mean2) ** 2) / var2 - 1)


# ---------------------------------------------------------------------------------------
# Module level


class DiffusionNetwork(nn.Module):
    """A DDPM with ε-prediction over flat or image-shaped examples (module level).

    Forward process q(x_t | x_{t−1}) = N(√α_t x_{t−1}, β_t I), t = 1 … T, α_t = 1 − β_t,
    so q(x_t | x_0) = N(√ᾱ_t x_0, (1 − ᾱ_t) I), ᾱ_t = ∏_{s≤t} α_s. Data enter as x_0 in
    model units: discrete levels k of K go to the centres (2k + 1)/K − 1 in [−1, 1];
    continuous values are standardised, z = (x − shift)/scale (buffers, set from the
    training data by the estimator).

    Reverse process p(x_{t−1} | x_t) = N(μ_θ(x_t, t), σ_t² I) with
    μ_θ = (x_t − β_t/√(1 − ᾱ_t) · ε_θ(x_t, t)) / √α_t. Variances (``variance``):
    ``"posterior"`` σ_t² = β̃_t = β_t (1 − ᾱ_{t−1})/(1 − ᾱ_t), ``"beta"`` σ_t² = β_t, for
    t ≥ 2; the decoder p(x_0 | x_1) has σ_1² = β_1 in both (β̃_1 = 0). The decoder is the
    discretised Gaussian of Ho et al. on discrete data (a pmf over the K levels), a Gaussian
    density on continuous data. The same σ_t² are used by the bound and by ancestral
    sampling, so the bound is the bound of the model that ancestral sampling draws from.

    Bound (nats per example; :meth:`bound_terms`): −log p(x) ≤ L_0 + L_1 + … + L_{T−1} + L_T
    with L_0 = E_q[−log p(x_0 | x_1)], L_{t−1} = E_q[KL(q(x_{t−1} | x_t, x_0) ‖
    p(x_{t−1} | x_t))], L_T = KL(q(x_T | x_0) ‖ N(0, I)). The expectations over
    x_t ~ q(x_t | x_0) are estimated by averaging ``n_draws`` draws per term (unbiased; the
    KLs given x_t are closed-form), so what is computed is an *estimate* of the bound, with
    the standard error of :meth:`bound_with_stderr`. On continuous data L_0 includes the
    standardisation's log-Jacobian Σ log scale, so the bound is on the density of x, not
    of z. Draws come from ``generator`` or, with ``keys``
    (:func:`~ptheta.nn.noise.example_keys`), from each example's own key, so that an
    example's estimate does not depend on the rest of the batch.

    Shapes (:mod:`ptheta.nn.shapes`): ``log_prob`` and ``loss`` take x (*batch,
    *event_shape) (levels of any integer dtype, or reals) and y (*batch), and return
    (*batch); ``sample`` takes a sample shape. The other methods work on flat batches.

    Training loss (:meth:`loss`): Ho et al.'s simple objective, the mean over entries of
    ‖ε − ε_θ(√ᾱ_t x_0 + √(1 − ᾱ_t) ε, t)‖², t uniform on 1 … T. Class-conditional
    networks (``n_classes``) add a label embedding to the time embedding; in training the
    label is replaced by a null token with probability ``p_uncond``, so the same network
    also predicts the unconditional ε(x, ∅) (y=None), and sampling can use classifier-free
    guidance ε̂ = (1 + w) ε(x, y) − w ε(x, ∅).

    Arguments:
        event_shape: shape of one example; D = its size.
        n_categories: K of discrete data; None: continuous.
        timesteps: T.
        noise_schedule: ``"linear"`` or ``"cosine"`` (:func:`beta_schedule`).
        variance: ``"posterior"`` or ``"beta"`` (see above).
        architecture: ``"mlp"`` (:class:`~ptheta.nn.unet.MLPDenoiser`) or ``"unet"``
            (:class:`~ptheta.nn.unet.UNet`, needs ``image_shape``).
        hidden: MLP width, or U-Net channels at full resolution.
        n_blocks: residual blocks of the MLP.
        image_shape: (C, H, W) with C·H·W = D, for the U-Net.
        n_classes: classes of a class-conditional model; None: unconditional.
        p_uncond: probability of dropping the label in training.
        guidance: w of :meth:`sample` (0: the conditional ε itself).
        sampler: ``"ancestral"`` (T steps) or ``"ddim"`` in :meth:`sample`.
        sampling_steps: DDIM steps in :meth:`sample` (None: min(50, T)).
        eta: DDIM's η in :meth:`sample` (0: deterministic).
        base: the unlearned part of ε_θ (:meth:`base_eps`): ``"independent"`` (discrete
            data: the denoiser of independent levels with frequencies ``level_logits``) or
            ``"gaussian"`` (√(1 − ᾱ_t) x_t, that of N(0, I)); continuous data always use the
            latter.
        dtype: of parameters and buffers (default: torch's default dtype).

    Example:
        >>> import torch
        >>> net = DiffusionNetwork((4,), n_categories=3, timesteps=10, hidden=16)
        >>> x = net.sample(5, generator=torch.Generator().manual_seed(0))
        >>> x.shape, net.loss(x).shape, net.bound_terms(x).shape
        (torch.Size([5, 4]), torch.Size([5]), torch.Size([5, 11]))

    References:
        Sohl-Dickstein et al. (2015), Deep Unsupervised Learning using Nonequilibrium
        Thermodynamics, ICML; Ho, Jain & Abbeel (2020), Denoising Diffusion Probabilistic
        Models, NeurIPS; Song, Meng & Ermon (2021), Denoising Diffusion Implicit Models,
        ICLR; Nichol & Dhariwal (2021), Improved DDPM, ICML; Ho & Salimans (2021),
        Classifier-Free Diffusion Guidance.
    """

    # the Trainer validates with loss(): log_prob sums T network passes
    validate_with_loss: ClassVar[bool] = True

    @classmethod
    def from_config(
        cls, config: Config, spec: DataSpec, n_classes: int | None = None
    ) -> DiffusionNetwork:
        """The network of a :class:`DDPM`'s config (``timesteps``, ``noise_schedule``,
        ``variance``, ``hidden``, ``n_blocks``, ``p_uncond``, ``guidance``, ``sampler``,
        ``sampling_steps``, ``base``, and the ``architecture``, ``image_shape`` and ``dtype`` the
        estimator resolved) for data of ``spec``."""
        return cls(
            spec.event_shape,
            n_categories=spec.n_categories if spec.is_discrete else None,
            timesteps=config.timesteps,
            noise_schedule=config.noise_schedule,
            variance=config.variance,
            architecture=config.architecture,
            hidden=config.hidden,
            n_blocks=config.n_blocks,
            image_shape=config.image_shape,
            n_classes=n_classes,
            p_uncond=config.p_uncond,
            guidance=config.guidance,
            sampler=config.sampler,
            sampling_steps=config.sampling_steps,
            base=config.base,
            dtype=config.dtype,
        )

    def __init__(
        self,
        event_shape: tuple[int, ...],
        *,
        n_categories: int | None = None,
        timesteps: int = 1000,
        noise_schedule: str = "linear",
        variance: str = "posterior",
        architecture: str = "mlp",
        hidden: int = 128,
        n_blocks: int = 2,
        image_shape: tuple[int, int, int] | None = None,
        n_classes: int | None = None,
        p_uncond: float = 0.1,
        guidance: float = 0.0,
        sampler: str = "ancestral",
        sampling_steps: int | None = None,
        eta: float = 0.0,
        base: str = "independent",
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        if base not in BASES:
            raise ParameterError(f"unknown base {base!r}; use one of {BASES}")
        self.event_shape = tuple(event_shape)
        self.n_dims = math.prod(self.event_shape)
        self.n_categories = n_categories
        self.timesteps = T = timesteps
        self.architecture = architecture
        self.image_shape = None if image_shape is None else tuple(image_shape)
        self.n_classes = n_classes
        self.p_uncond = p_uncond
        self.guidance = guidance
        self.sampler = sampler
        self.sampling_steps = sampling_steps
        self.eta = eta
        self.hidden = hidden
        # the independent base needs levels; on continuous data both bases are N(0, I)'s
        self.base = base if n_categories is not None else "gaussian"

        zero = torch.zeros(1, dtype=torch.float64)
        betas = torch.cat([zero, beta_schedule(noise_schedule, T)])  # (T+1,), β_0 = 0
        alphas_bar = torch.cumprod(1 - betas, 0)  # (T+1,), ᾱ_0 = 1
        posterior = betas.clone()  # β̃_t; β̃_1 = 0 so the decoder keeps β_1
        posterior[2:] = betas[2:] * (1 - alphas_bar[1:-1]) / (1 - alphas_bar[2:])
        sigma2 = (posterior if variance == "posterior" else betas).clone()  # own storage
        sigma2[1] = betas[1]
        # index t = 0 … T; schedules are buffers so checkpoints and .to(dtype) carry them
        self.register_buffer("betas", betas)
        self.register_buffer("alphas_bar", alphas_bar)
        self.register_buffer("posterior_var", posterior)
        self.register_buffer("sigma2", sigma2)
        self.register_buffer("shift", torch.zeros(self.event_shape, dtype=torch.float64))
        self.register_buffer("scale", torch.ones(self.event_shape, dtype=torch.float64))
        if self.base == "independent":
            # log π_{d,k}, the level frequencies of each entry (uniform until the estimator
            # sets them from the training data)
            uniform = torch.full((self.n_dims, n_categories), -math.log(n_categories))
            self.register_buffer("level_logits", uniform.to(torch.float64))

        emb_dim = 2 * hidden
        self.time_embed = TimeEmbedding(emb_dim)
        # one extra row: the null label ∅ of classifier-free guidance
        self.label_embed = None if n_classes is None else nn.Embedding(n_classes + 1, emb_dim)
        if architecture == "unet":
            if self.image_shape is None:
                raise ParameterError("architecture='unet' needs image_shape (C, H, W)")
            self.net = UNet(self.image_shape[0], hidden=hidden, emb_dim=emb_dim)
            last = self.net.conv_out
        else:
            self.net = MLPDenoiser(self.n_dims, hidden=hidden, n_blocks=n_blocks, emb_dim=emb_dim)
            last = self.net.out
        # f_θ starts at 0: the untrained model is the exact one for x_0 ~ N(0, I) (see eps)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        # the schedule was computed in float64: cast once, without a float32 detour
        self.to(dtype or torch.get_default_dtype())

    def extra_repr(self) -> str:
        parts = [f"event_shape={self.event_shape}"]
        if self.n_categories is not None:
            parts.append(f"n_categories={self.n_categories}")
        parts += [f"timesteps={self.timesteps}", f"architecture={self.architecture}"]
        if self.n_classes is not None:
            parts.append(f"n_classes={self.n_classes}, guidance={self.guidance}")
        return ", ".join([*parts, f"sampler={self.sampler}"])

    # ----------------------------------------------------------------- units
    @property
    def _dtype(self) -> torch.dtype:
        return self.betas.dtype

    def to_unit(self, x: Tensor) -> Tensor:
        """Data → model units x_0: level centres in [−1, 1], or standardised values."""
        if self.n_categories is not None:
            return (2 * x.to(self._dtype) + 1) / self.n_categories - 1
        return (x.to(self._dtype) - self.shift) / self.scale

    def from_unit(self, x0: Tensor) -> Tensor:
        """Model units → data: the nearest level (LongTensor), or de-standardised values."""
        if self.n_categories is not None:
            k = torch.floor((x0 + 1) * self.n_categories / 2)
            return k.clamp(0, self.n_categories - 1).long()
        return x0 * self.scale + self.shift

    # ----------------------------------------------------------------- denoiser
    def _check_labels(self, y: Tensor | None) -> None:
        if self.n_classes is None and y is not None:
            raise DataError("this diffusion model is unconditional (n_classes=None): omit y")

    def eps(self, x_t: Tensor, t: Tensor, y: Tensor | None = None, guidance: float = 0.0) -> Tensor:
        """Predicted noise ε_θ(x_t, t[, y]) with x_t's shape (N, *event_shape).

        ε_θ = :meth:`base_eps` + s_t f_θ(x_t, t, y): the first term is E[ε | x_t] when the
        entries of x_0 are independent (N(0, I) for standardised continuous data, the
        training frequencies of the levels for discrete data), so the network f_θ (output
        layer zero-initialised) learns a correction to the best denoiser of the independent
        model; s_t = √(1 − ᾱ_t) with ``base="independent"`` (the correction vanishes at
        small t, where that base is exact), else 1. This keeps x̂_0 and μ_θ bounded from
        the first step even where α_t is close to 0 (β_t near 1 at large t for small T),
        and the untrained model's bound near the independent model's NLL.

        ``t``: LongTensor (N,) in 1 … T. ``y``: labels (N,) of a class-conditional network,
        −1 or None for the null label ∅. ``guidance`` w > 0 returns the classifier-free
        guided (1 + w) ε(x, y) − w ε(x, ∅); w = 0 returns ε(x, y) itself.
        """
        self._check_labels(y)
        if guidance and y is not None:
            both = self.eps(
                torch.cat([x_t, x_t]), torch.cat([t, t]), torch.cat([y, torch.full_like(y, -1)])
            )
            cond, uncond = both.chunk(2)
            return (1 + guidance) * cond - guidance * uncond
        # the bound and the samplers give many rows the same t: embed each distinct t once
        steps, index = torch.unique(t, return_inverse=True)
        emb = self.time_embed(steps)[index]  # (N, E)
        if self.label_embed is not None:
            null = torch.full_like(t, self.n_classes)
            labels = null if y is None else torch.where(y < 0, null, y)
            emb = emb + self.label_embed(labels)
        n = len(x_t)
        if self.architecture == "unet":
            f = self.net(x_t.reshape(n, *self.image_shape), emb).reshape(x_t.shape)
        else:
            f = self.net(x_t.reshape(n, self.n_dims), emb).reshape(x_t.shape)
        if self.base == "independent":
            # where the base is exact (small t: the level is certain) the correction must
            # vanish: any error there is weighted ~1/t in the bound (a network trained a
            # few dozen steps put a 28×28 bound at 3,200 nats, the base alone at 364)
            f = f * (1 - self.alphas_bar[t]).sqrt().reshape(-1, *[1] * (x_t.dim() - 1))
        return self.base_eps(x_t, t) + f

    def base_eps(self, x_t: Tensor, t: Tensor) -> Tensor:
        """E[ε | x_t] when the entries of x_0 are independent: the part of ε_θ that is not
        learned, x_t's shape.

        ``base="gaussian"`` (and continuous data, standardised): x_0 ~ N(0, I), so
        E[ε | x_t] = √(1 − ᾱ_t) x_t. ``base="independent"`` on K levels: entry d of x_0 is
        level k with probability π_{d,k} (``level_logits``, the training frequencies), so
        P(k | x_t,d) ∝ π_{d,k} N(x_t,d; √ᾱ_t c_k, 1 − ᾱ_t), x̂_0 = Σ_k P(k | x_t,d) c_k and
        E[ε | x_t] = (x_t − √ᾱ_t x̂_0)/√(1 − ᾱ_t). At small t the level is certain and this
        is the exact ε, which a network fed x_t could only learn by amplifying x_t by
        1/√(1 − ᾱ_t) (100 at t = 1): without it those steps dominate the bound.
        """
        view = (-1, *[1] * (x_t.dim() - 1))  # (N, 1, …)
        ab = self.alphas_bar[t]
        skip = (1 - ab).sqrt()
        if self.base != "independent":
            return skip.reshape(view) * x_t
        k = self.n_categories
        centres = (2 * torch.arange(k, device=x_t.device, dtype=x_t.dtype) + 1) / k - 1  # (K,)
        n = len(x_t)
        flat = x_t.reshape(n, self.n_dims, 1)
        x0_hat = torch.empty(n, self.n_dims, dtype=x_t.dtype, device=x_t.device)
        rows = max(1, BASE_VALUES // (self.n_dims * k))  # (rows, D, K) temporaries at most
        for a in range(0, n, rows):
            part = slice(a, a + rows)
            mean = ab[part].sqrt()[:, None, None] * centres  # (R, 1, K)
            logits = (
                self.level_logits - (flat[part] - mean) ** 2 / (2 * (1 - ab[part]))[:, None, None]
            )
            x0_hat[part] = (torch.softmax(logits, -1) * centres).sum(-1)
        x0_hat = x0_hat.reshape(x_t.shape)
        return (x_t - ab.sqrt().reshape(view) * x0_hat) / skip.reshape(view)

    def q_sample(self, x0: Tensor, t: Tensor, noise: Tensor) -> Tensor:
        """x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε, a draw of q(x_t | x_0); t LongTensor (N,)."""
        ab = self.alphas_bar[t].reshape(-1, *[1] * (x0.dim() - 1))  # (N, 1, …)
        return ab.sqrt() * x0 + (1 - ab).sqrt() * noise

    def q_posterior(self, x0: Tensor, x_t: Tensor, t: int) -> tuple[Tensor, Tensor]:
        """Mean and variance β̃_t of q(x_{t−1} | x_t, x_0) for one t ≥ 1."""
        ab, ab_prev, beta = self.alphas_bar[t], self.alphas_bar[t - 1], self.betas[t]
        mean = (ab_prev.sqrt() * beta * x0 + (1 - beta).sqrt() * (1 - ab_prev) * x_t) / (1 - ab)
        return mean, self.posterior_var[t]

    def p_mean(self, x_t: Tensor, t: int, eps: Tensor) -> Tensor:
        """μ_θ(x_t, t) = (x_t − β_t/√(1 − ᾱ_t) ε) / √α_t given the predicted ε."""
        beta, ab = self.betas[t], self.alphas_bar[t]
        return (x_t - beta / (1 - ab).sqrt() * eps) / (1 - beta).sqrt()

    # ----------------------------------------------------------------- training
    @batched
    def loss(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """Simple ε-MSE (mean over entries) at one uniform t per example, (*batch).

        In eval mode (the Trainer's validation) t and ε come from a generator seeded with
        :data:`SCORE_SEED`: every epoch is validated on the same draws, so early stopping
        compares weights rather than Monte-Carlo noise.
        """
        self._check_labels(y)
        x0 = self.to_unit(x)
        gen = None
        if not self.training:
            gen = torch.Generator(device=x0.device).manual_seed(SCORE_SEED)
        t = torch.randint(1, self.timesteps + 1, (len(x0),), device=x0.device, generator=gen)
        noise = torch.randn(x0.shape, generator=gen, device=x0.device, dtype=x0.dtype)
        if y is not None and self.training and self.p_uncond > 0:
            drop = torch.rand(len(y), device=y.device) < self.p_uncond
            y = torch.where(drop, -1, y)
        err = (self.eps(self.q_sample(x0, t, noise), t, y) - noise) ** 2
        return err.reshape(len(x0), -1).mean(1)

    # ----------------------------------------------------------------- the bound
    def prior_term(self, x: Tensor) -> Tensor:
        """L_T = KL(q(x_T | x_0) ‖ N(0, I)), (N,)."""
        x0 = self.to_unit(x)
        ab = self.alphas_bar[-1]
        kl = _gaussian_kl(ab.sqrt() * x0, 1 - ab, torch.zeros_like(x0), torch.ones_like(ab))
        return kl.reshape(len(x0), -1).sum(1)

    def _forward_noise(
        self, like: Tensor, t: int, draw: int, generator: torch.Generator | None, keys
    ) -> Tensor:
        """ε of draw ``draw`` at time t for every example, like's shape (N, *E)."""
        if keys is None:
            return torch.randn(
                like.shape, generator=generator, device=like.device, dtype=like.dtype
            )
        # stream (draw, t): draw s at time t is the same whatever the number of draws
        eps = keyed_normal(keys, draw * 2**32 + t, self.event_shape)
        return eps.to(device=like.device, dtype=like.dtype)

    def draw_terms(
        self,
        x: Tensor,
        ts: list[int],
        y: Tensor | None = None,
        generator: torch.Generator | None = None,
        progress: Callable[[int], None] | None = None,
        *,
        n_draws: int = 1,
        keys: Any = None,
        first_draw: int = 0,
    ) -> Tensor:
        """L_{t−1} for each t of ``ts`` (t = 1: the decoder term L_0) at ``n_draws``
        independent draws x_t ~ q(x_t | x_0) each, (n_draws, N, len(ts)).

        The noise comes from ``keys`` (one :func:`~ptheta.nn.noise.example_keys` entry
        per example: each example's draws depend on its key alone; draws number
        ``first_draw`` … ``first_draw + n_draws − 1``) or else from ``generator``, in the
        order of ``ts``, then of the draws. The denoiser sees at most :meth:`bound_rows`
        rows (examples × time steps × draws) at once: with ``keys``, examples are taken a
        group at a time where all of them at one t would be more (the result is the same,
        each example's noise being its own); with ``generator`` at least one t for every
        example. ``progress(k)`` is called after every k time steps done (of every
        example).
        """
        self._check_labels(y)
        n = len(x)
        rows = self.bound_rows()
        if keys is not None and n > 1 and n * n_draws > rows:  # examples a group at a time
            size = max(1, rows // n_draws)
            parts = []
            for start in range(0, n, size):
                part = slice(start, start + size)
                parts.append(
                    self.draw_terms(
                        x[part],
                        ts,
                        None if y is None else y[part],
                        None,
                        n_draws=n_draws,
                        keys=keys[part],
                        first_draw=first_draw,
                    )
                )
            if progress is not None:
                progress(len(ts))
            return torch.cat(parts, dim=1)
        x0 = self.to_unit(x)  # (N, *E)
        group = max(1, rows // max(n * n_draws, 1))
        out = []
        for start in range(0, len(ts), group):
            chunk = ts[start : start + group]
            draws = range(first_draw, first_draw + n_draws)
            pairs = [(t, s) for t in chunk for s in draws]  # row block j = pairs[j]
            t_vec = torch.tensor([t for t, _ in pairs], device=x0.device).repeat_interleave(n)
            noise = torch.cat([self._forward_noise(x0, t, s, generator, keys) for t, s in pairs])
            x0s = x0.repeat(len(pairs), *[1] * (x0.dim() - 1))  # (P·N, *E)
            x_t = self.q_sample(x0s, t_vec, noise)
            eps = self.eps(x_t, t_vec, None if y is None else y.repeat(len(pairs)))
            terms = []
            for j, (t, _) in enumerate(pairs):
                rows = slice(j * n, (j + 1) * n)
                mean = self.p_mean(x_t[rows], t, eps[rows])  # (N, *E)
                if t == 1:
                    term = -self._decoder_log_prob(x, x0, mean)
                else:
                    q_mean, q_var = self.q_posterior(x0, x_t[rows], t)
                    kl = _gaussian_kl(q_mean, q_var, mean, self.sigma2[t])
                    term = kl.reshape(n, -1).sum(1)
                terms.append(term)
            out.append(torch.stack(terms).reshape(len(chunk), n_draws, n))  # (g, S, N)
            if progress is not None:
                progress(len(chunk))
        return torch.cat(out).permute(1, 2, 0)  # (S, N, len(ts))

    def bound_rows(self) -> int:
        """Rows (examples × time steps × draws) per denoiser call in the bound:
        :func:`bound_rows` for this network's example size, width and dtype, on its
        device (the independent base holds ~4 (N, D, K) temporaries: K/4 more channels)."""
        width = self.hidden + (self.n_categories // 4 if self.base == "independent" else 0)
        return bound_rows(self.n_dims, width, self._dtype.itemsize, device=self.betas.device)

    def terms_at(
        self,
        x: Tensor,
        ts: list[int],
        y: Tensor | None = None,
        generator: torch.Generator | None = None,
        progress: Callable[[int], None] | None = None,
        *,
        n_draws: int = 1,
        keys: Any = None,
    ) -> Tensor:
        """L_{t−1} for each t of ``ts``, averaged over ``n_draws`` draws, (N, len(ts));
        see :meth:`draw_terms`."""
        return self.draw_terms(x, ts, y, generator, progress, n_draws=n_draws, keys=keys).mean(0)

    def _decoder_log_prob(self, x: Tensor, x0: Tensor, mean: Tensor) -> Tensor:
        """log p(x_0 | x_1) in data units, (N,)."""
        std = self.sigma2[1].sqrt()
        n = len(x0)
        if self.n_categories is not None:
            lp = log_discretised_gaussian(x.long(), mean, std, self.n_categories)
            return lp.reshape(n, -1).sum(1)
        lp = -0.5 * (((x0 - mean) / std) ** 2 + LOG_2PI) - torch.log(std)
        # density of x = density of z / ∏ scale
        return lp.reshape(n, -1).sum(1) - torch.log(self.scale).sum()

    def _keys(self, x: Tensor, generator: torch.Generator | None, keys: Any) -> Any:
        # neither given: each example's draws are seeded by SCORE_SEED and its values
        return example_keys(x, SCORE_SEED) if keys is None and generator is None else keys

    def bound_terms(
        self,
        x: Tensor,
        y: Tensor | None = None,
        generator: torch.Generator | None = None,
        progress: Callable[[int], None] | None = None,
        *,
        n_draws: int = 1,
        keys: Any = None,
    ) -> Tensor:
        """The bound's terms per example, (N, T + 1): column j is L_j (j = 0: the decoder,
        1 … T−1: the KLs, T: the prior term), each averaged over ``n_draws`` draws of x_t;
        their sum is ≥ −log p(x) in expectation. Noise: see :meth:`draw_terms`; with neither
        ``generator`` nor ``keys``, each example's draws are seeded by :data:`SCORE_SEED`
        and its values."""
        keys = self._keys(x, generator, keys)
        ts = list(range(1, self.timesteps + 1))
        steps = self.terms_at(x, ts, y, generator, progress, n_draws=n_draws, keys=keys)
        return torch.cat([steps, self.prior_term(x)[:, None]], dim=1)

    def bound_with_stderr(
        self,
        x: Tensor,
        y: Tensor | None = None,
        generator: torch.Generator | None = None,
        progress: Callable[[int], None] | None = None,
        *,
        n_draws: int = 2,
        keys: Any = None,
        strata: int | None = None,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """(terms, the estimate −Σ terms of the bound on log p(x) (N,), its Monte-Carlo
        standard error (N,)).

        ``strata=None`` (or ≥ T − 1): every t, terms (N, T + 1) as :meth:`bound_terms`. The
        terms' draws are independent across t, so the error is √(Σ_t s_t² / n_draws), s_t²
        the sample variance of term t over its draws (NaN for a single draw; the prior
        term is exact).

        ``strata=J`` < T − 1: a stratified estimate of the same sum at 1 + J time steps per
        draw instead of T. t = 2 … T is cut into J ranges (:meth:`strata`) of m_j steps;
        draw i of an example takes one t_ij uniform in each (from the example's key, or
        ``generator``) and its own x_t, and estimates the sum by L_0 + Σ_j m_j L_{t_ij − 1}:
        unbiased for the sum over all t, independent across draws (so the error is the
        draws' standard deviation / √n_draws) and across examples. Terms are then
        (N, J + 2): L_0, the J weighted stratum estimates m_j L_{t_ij − 1}, L_T.
        """
        keys = self._keys(x, generator, keys)
        if strata is not None and strata < self.timesteps - 1:
            return self._stratified(x, y, generator, progress, n_draws, keys, strata)
        ts = list(range(1, self.timesteps + 1))
        draws = self.draw_terms(x, ts, y, generator, progress, n_draws=n_draws, keys=keys)
        terms = torch.cat([draws.mean(0), self.prior_term(x)[:, None]], dim=1)
        if n_draws < 2:
            stderr = torch.full((len(x),), math.nan, dtype=terms.dtype, device=terms.device)
        else:
            stderr = (draws.var(0).sum(1) / n_draws).sqrt()
        return terms, -terms.sum(1), stderr

    def strata(self, n_strata: int) -> list[range]:
        """t = 2 … T in ``n_strata`` ≤ T − 1 contiguous, non-empty ranges of (nearly)
        equal width in log SNR_t = log(ᾱ_t/(1 − ᾱ_t)): the bound's terms change fastest
        with t where the SNR does, so equal ranges of t would put most of the variance in
        the few strata of small t.

        Example:
            >>> net = DiffusionNetwork((1,), timesteps=1000, hidden=4)
            >>> [(r.start, r.stop) for r in net.strata(4)]
            [(2, 44), (44, 344), (344, 736), (736, 1001)]
        """
        T = self.timesteps
        ab = self.alphas_bar.double()[2:].cpu()
        log_snr = (torch.log(ab) - torch.log1p(-ab)).numpy()  # decreasing in t = 2 … T
        targets = np.linspace(log_snr[0], log_snr[-1], n_strata + 1)[1:-1]
        edges = [2]
        for j, target in enumerate(targets, start=1):  # the first t below each level
            t = 2 + int(np.searchsorted(-log_snr, -target, side="right"))
            edges.append(min(max(t, edges[-1] + 1), T + 1 - (n_strata - j)))
        edges.append(T + 1)
        return [range(a, b) for a, b in itertools.pairwise(edges)]

    def _stratified(self, x, y, generator, progress, n_draws, keys, n_strata):
        """(terms, bound, stderr) of the stratified estimate (see :meth:`bound_with_stderr`)."""
        n, rows = len(x), self.bound_rows()
        if keys is not None and n > 1 and n * n_draws > rows:  # examples a group at a time
            size = max(1, rows // n_draws)
            parts = [
                self._stratified(
                    x[a : a + size], None if y is None else y[a : a + size], None,
                    progress, n_draws, keys[a : a + size], n_strata,
                )
                for a in range(0, n, size)
            ]  # fmt: skip
            return tuple(torch.cat([p[i] for p in parts]) for i in range(3))
        ranges = self.strata(n_strata)
        start = torch.tensor([r.start for r in ranges])
        sizes = torch.tensor([len(r) for r in ranges])
        # t of example n, draw i, stratum j: uniform on the stratum, from the example's key
        if keys is not None:
            u = keyed_uniform(keys, STRATA_STREAM, (n_draws, n_strata))
        else:
            u = torch.rand((n, n_draws, n_strata), generator=generator, dtype=torch.float64)
        times = start + (u * sizes).long().clamp(max=sizes - 1)  # (N, S, J)
        decoder = self.draw_terms(x, [1], y, generator, progress, n_draws=n_draws, keys=keys)
        x0 = self.to_unit(x)
        pairs = [(i, j) for i in range(n_draws) for j in range(n_strata)]
        group = max(1, rows // max(n, 1))
        kl = []
        for a in range(0, len(pairs), group):
            chunk = pairs[a : a + group]
            # stream of draw i in stratum j: past every t's (≤ T), so new noise
            noise = torch.cat(
                [
                    self._forward_noise(x0, self.timesteps + 1 + j, i, generator, keys)
                    for i, j in chunk
                ]
            )
            t_vec = torch.cat([times[:, i, j] for i, j in chunk]).to(x0.device)
            x0s = x0.repeat(len(chunk), *[1] * (x0.dim() - 1))
            x_t = self.q_sample(x0s, t_vec, noise)
            eps = self.eps(x_t, t_vec, None if y is None else y.repeat(len(chunk)))
            kl.append(self._kl_terms(x0s, x_t, t_vec, eps).reshape(len(chunk), n))
            if progress is not None:
                progress(len(chunk))
        kl = torch.cat(kl).reshape(n_draws, n_strata, n).permute(0, 2, 1)  # (S, N, J)
        weighted = kl * sizes.to(kl)  # m_j L_{t_ij}: unbiased for stratum j's sum
        totals = decoder[:, :, 0] + weighted.sum(2)  # (S, N), independent over draws
        prior = self.prior_term(x)
        terms = torch.cat([decoder.mean(0), weighted.mean(0), prior[:, None]], dim=1)
        if n_draws < 2:
            stderr = torch.full((n,), math.nan, dtype=terms.dtype, device=terms.device)
        else:
            stderr = (totals.var(0) / n_draws).sqrt()
        return terms, -(totals.mean(0) + prior), stderr

    def _kl_terms(self, x0: Tensor, x_t: Tensor, t: Tensor, eps: Tensor) -> Tensor:
        """KL(q(x_{t−1} | x_t, x_0) ‖ p(x_{t−1} | x_t)) per row, t ≥ 2 a LongTensor (R,)."""
        view = (-1, *[1] * (x0.dim() - 1))
        beta, ab = self.betas[t].reshape(view), self.alphas_bar[t].reshape(view)
        ab_prev = self.alphas_bar[t - 1].reshape(view)
        q_mean = (ab_prev.sqrt() * beta * x0 + (1 - beta).sqrt() * (1 - ab_prev) * x_t) / (1 - ab)
        p_mean = (x_t - beta / (1 - ab).sqrt() * eps) / (1 - beta).sqrt()
        kl = _gaussian_kl(
            q_mean, self.posterior_var[t].reshape(view), p_mean, self.sigma2[t].reshape(view)
        )
        return kl.reshape(len(x0), -1).sum(1)

    @batched
    def log_prob(
        self, x: Tensor, y: Tensor | None = None, generator: torch.Generator | None = None
    ) -> Tensor:
        """−(the bound's terms), one draw of x_t per term: an unbiased estimate of the lower
        bound on log p(x) (or log p(x | y)) in nats, (*batch).

        Without ``generator`` each example's draws are seeded by :data:`SCORE_SEED` and its
        values: deterministic, and independent of the rest of the batch.
        """
        return -self.bound_terms(x, y, generator).sum(1)

    # ----------------------------------------------------------------- sampling
    def ancestral_step(self, x_t: Tensor, t: int, eps: Tensor) -> tuple[Tensor, Tensor]:
        """Mean and standard deviation of p(x_{t−1} | x_t) (t = 1: the decoder's)."""
        return self.p_mean(x_t, t, eps), self.sigma2[t].sqrt()

    def ddim_step(
        self, x_t: Tensor, t: int, s: int, eps: Tensor, eta: float
    ) -> tuple[Tensor, Tensor]:
        """Mean and standard deviation of DDIM's x_s given x_t, s < t (Song et al. eq. 12).

        x̂_0 = (x_t − √(1 − ᾱ_t) ε)/√ᾱ_t, σ = η √((1 − ᾱ_s)/(1 − ᾱ_t)) √(1 − ᾱ_t/ᾱ_s),
        mean = √ᾱ_s x̂_0 + √(1 − ᾱ_s − σ²) ε. With η = 1 and s = t − 1, σ² = β̃_t and the
        mean is μ_θ: the ancestral step with σ_t² = β̃_t.
        """
        ab_t, ab_s = self.alphas_bar[t], self.alphas_bar[s]
        x0_hat = (x_t - (1 - ab_t).sqrt() * eps) / ab_t.sqrt()
        std = eta * ((1 - ab_s) / (1 - ab_t) * (1 - ab_t / ab_s)).sqrt()
        mean = ab_s.sqrt() * x0_hat + (1 - ab_s - std**2).clamp(min=0).sqrt() * eps
        return mean, std

    def _noise(self, n: int, generator: torch.Generator | None) -> Tensor:
        return torch.randn(
            (n, *self.event_shape), generator=generator, device=self.betas.device, dtype=self._dtype
        )

    def _t(self, t: int, n: int) -> Tensor:
        return torch.full((n,), t, dtype=torch.long, device=self.betas.device)

    @torch.no_grad()
    def ancestral(
        self,
        n: int,
        y: Tensor | None = None,
        generator: torch.Generator | None = None,
        *,
        guidance: float | None = None,
    ) -> Tensor:
        """T ancestral steps from x_T ~ N(0, I); the last draws from the decoder
        (discrete: the level whose bin holds x_0). Returns (n, *event_shape) in data units."""
        w = self.guidance if guidance is None else guidance
        x = self._noise(n, generator)
        for t in range(self.timesteps, 0, -1):
            mean, std = self.ancestral_step(x, t, self.eps(x, self._t(t, n), y, w))
            x = mean + std * self._noise(n, generator)
        return self.from_unit(x)

    def ddim_times(self, steps: int) -> list[int]:
        """The DDIM time steps τ_1 < … < τ_S, τ_i = round(i T / S): evenly spaced, ending
        at T (S = T: every step; S = 1: one jump from T to 0). Needs 1 ≤ S ≤ T."""
        taus = np.floor(np.arange(1, steps + 1) * self.timesteps / steps + 0.5)
        return np.unique(taus).astype(int).tolist()

    @torch.no_grad()
    def ddim(
        self,
        x_T: Tensor,
        steps: int,
        eta: float = 0.0,
        y: Tensor | None = None,
        generator: torch.Generator | None = None,
        *,
        guidance: float | None = None,
    ) -> Tensor:
        """DDIM from the given x_T (n, *event_shape) over ``steps`` steps; the final step
        returns x̂_0 (no noise). η = 0 is deterministic: the result depends on x_T alone."""
        w = self.guidance if guidance is None else guidance
        x, n = x_T, len(x_T)
        times = self.ddim_times(steps)
        for i in range(len(times) - 1, -1, -1):
            t, s = times[i], times[i - 1] if i > 0 else 0
            mean, std = self.ddim_step(x, t, s, self.eps(x, self._t(t, n), y, w), eta)
            x = mean + std * self._noise(n, generator) if float(std) > 0 else mean
        return self.from_unit(x)

    @sampled
    def sample(
        self, n: int, y: Tensor | None = None, generator: torch.Generator | None = None
    ) -> Tensor:
        """Examples with the configured ``sampler``, (*sample_shape, *event_shape) for an int
        n, a tuple, or () for one; LongTensor levels for discrete data. All randomness comes
        from ``generator``."""
        if self.sampler == "ddim":
            steps = self.sampling_steps or min(50, self.timesteps)
            return self.ddim(self._noise(n, generator), steps, self.eta, y, generator)
        return self.ancestral(n, y, generator)


# ---------------------------------------------------------------------------------------
# Estimator level


class DDPM(NeuralModel):
    """Denoising diffusion probabilistic model: ε-prediction, the bound on log p(x), DDIM.

    The network is :class:`DiffusionNetwork`: an MLP denoiser for vectors, a small U-Net
    for image-shaped data (``architecture="auto"``), the simple ε-MSE training loss, and
    σ_t² = β̃_t (``variance="posterior"``) or β_t (``"beta"``) in the reverse process.

    The unlearned part of ε_θ (``base``, :meth:`DiffusionNetwork.base_eps`) is the exact
    denoiser of the independent model: on discrete data the posterior mean under each
    entry's level frequencies in the training data (``"independent"``), on continuous
    (standardised) data that of N(0, I). So the untrained model's bound is already close to
    the independent model's NLL (tight as T grows), and the steps at small t, where the
    level is certain and ε is an exact function of x_t, cost nothing; with
    ``base="gaussian"`` (the earlier default) a network must learn to amplify x_t by
    1/√(1 − ᾱ_t) there, and on 8×8 binary digits the bound was 39 nats at defaults (the
    independent model: 25; now 21).

    What it reports (``likelihood_ = "estimate"``, nats per example): ``score_samples`` is
    an unbiased Monte-Carlo *estimate* of the variational bound −(L_0 + … + L_T), not a
    bound itself: a single score can exceed the bound (and, rarely, log p(x)) by its
    Monte-Carlo error, which ``score_samples(X, return_std=True)`` returns. With
    ``bound_strata=J`` < T − 1 (default 50) the sum over t = 2 … T is estimated by
    stratified sampling (:meth:`DiffusionNetwork.bound_with_stderr`): J ranges of equal
    width in log SNR, one t drawn in each per draw, weighted by the range's size, so each
    of the ``n_bound_samples`` draws costs 1 + J network passes instead of T (about 20×
    cheaper at T = 1000), and the error is the spread of the independent draws. With
    ``bound_strata=None`` every t is evaluated, each term's expectation over x_t ~
    q(x_t | x_0) estimated by ``n_bound_samples`` draws. On discrete data (binary,
    categorical(K)) the decoder is the discretised Gaussian on the K level centres, so the
    bound is on log P(x) of the discrete data (units ``"discrete"``); on continuous data it
    is on the density of x including the standardisation's Jacobian (units
    ``"continuous"``). Each example's draws (its x_t and its t) are a fixed function of
    ``random_state`` and its values: scores are deterministic and do not depend on the rest
    of the batch. :meth:`bound_terms` gives the terms of the full sum, :meth:`bound_estimate`
    a cheaper estimate over random t shared by the examples. Class-conditional models
    score log Σ_y p(y) exp(bound(x | y)).

    Sampling: ``sampler="ancestral"`` (T steps) or ``"ddim"`` (``sampling_steps``,
    deterministic); :meth:`sample_ancestral` and :meth:`sample_ddim` choose explicitly.
    ``guidance`` (class-conditional only) applies to sampling, never to the bound.

    **Defaults for a time budget.** The bound keeps improving with the number of training
    steps, so ddpm trains in batches of 32 (``batch_size``, :data:`DIFFUSION_TRAINING`)
    and its U-Net has 32 channels at full resolution (``hidden="auto"``: 64 units for the
    MLP; see ``hidden_``). On 28×28 binary digits in five CPU minutes the bound went from
    194.9 nats (64 channels, batches of 128: 6 epochs) to 99.0, below the Chow–Liu tree's
    134.9; on digits 8×8 at 50 epochs from 92.4 to 91.5 in about half the time (64
    channels in batches of 32: 90.6).

    Arguments:
        timesteps: T (default 1000).
        noise_schedule: ``"linear"`` or ``"cosine"`` (named so, because ``schedule`` is the
            learning-rate schedule of the shared training arguments).
        variance: ``"posterior"`` (β̃_t) or ``"beta"`` (β_t).
        architecture: ``"auto"`` (U-Net for image-shaped data, else MLP), ``"mlp"``, ``"unet"``.
        hidden: MLP width, or U-Net channels at full resolution; ``"auto"``:
            :data:`UNET_HIDDEN` channels, :data:`MLP_HIDDEN` units.
        n_blocks: residual blocks of the MLP denoiser.
        class_conditional: fit p(x | y) with ``fit(X, y)``.
        p_uncond: label dropout in training (classifier-free guidance).
        guidance: guidance weight w ≥ 0 for sampling.
        sampler: ``"ancestral"`` or ``"ddim"``.
        sampling_steps: DDIM steps (None: min(50, T)); only with ``sampler="ddim"``.
        n_bound_samples: draws of x_t (and of t in each stratum) in ``score_samples`` (≥ 2
            gives a standard error; 1: NaN).
        bound_strata: strata of the stratified estimate of the sum over t in
            ``score_samples``; None (or ≥ T − 1): every t.
        base: ``"independent"`` or ``"gaussian"``, the unlearned part of ε_θ (see above).
        **training: the shared training arguments of :class:`NeuralModel` (ddpm's own
            default: ``batch_size=32``).

    Fitted attributes:
        hidden_: the denoiser's width this fit used (``"auto"`` resolved).

    Example:
        >>> import numpy as np
        >>> from ptheta.models.diffusion import DDPM
        >>> x = np.random.default_rng(0).integers(0, 3, size=(100, 4))
        >>> model = DDPM(10, hidden=16, epochs=2, device="cpu").fit(x)
        >>> model.score_samples(x[:3]).shape, model.sample_ddim(2, 5, random_state=0).shape
        ((3,), (2, 4))

    References:
        Ho, Jain & Abbeel (2020), DDPM, NeurIPS; Song, Meng & Ermon (2021), DDIM, ICLR;
        Nichol & Dhariwal (2021), Improved DDPM, ICML; Ho & Salimans (2021),
        Classifier-Free Diffusion Guidance.
    """

    name: ClassVar[str] = "ddpm"
    family: ClassVar[str] = "diffusion"
    likelihood: ClassVar[str] = "estimate"  # a Monte-Carlo estimate of the variational bound
    data_kinds: ClassVar[tuple[str, ...]] = ("binary", "categorical", "continuous")
    quick_params: ClassVar[dict[str, Any]] = {
        "timesteps": 20,
        "hidden": 16,
        "n_blocks": 1,
        "epochs": 3,
        "n_bound_samples": 4,
        "dtype": "float64",
        "device": "cpu",
    }
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        # T = 1000 as by default: the bound's cost follows bound_strata, not T, and T = 100
        # left a 10 s demo fit at 123.3 test nats on digits, worse than independent pixels
        # (106.4); T = 1000 gives 101.3 in the same time
        # (measured in batches of 128, the default then: kept for this preset)
        "demo": {"hidden": 32, "lr": 2e-3, "batch_size": 128, "sampler": "ddim", "device": "cpu"},
        "explorer": {"max_time": 60},
    }
    parameters: ClassVar[dict[str, Param]] = {
        "timesteps": Int(low=1),
        "noise_schedule": Choice(*SCHEDULES),
        "variance": Choice(*VARIANCES),
        "architecture": Choice(*ARCHITECTURES),
        "hidden": OneOf(Choice("auto"), Int(low=1)),
        "n_blocks": Int(low=1),
        "class_conditional": Bool(),
        "p_uncond": Float(low=0, high=1, high_open=True),
        "guidance": Float(low=0),
        "sampler": Choice(*SAMPLERS),
        "sampling_steps": Int(low=1, none=True),  # ≤ timesteps: _check_params_together
        "n_bound_samples": Int(low=1),
        "bound_strata": Int(low=1, none=True),
        "base": Choice(*BASES),
    }

    def __init__(
        self,
        timesteps: int = 1000,
        *,
        noise_schedule: str = "linear",
        variance: str = "posterior",
        architecture: str = "auto",
        hidden: int | str = "auto",
        n_blocks: int = 2,
        class_conditional: bool = False,
        p_uncond: float = 0.1,
        guidance: float = 0.0,
        sampler: str = "ancestral",
        sampling_steps: int | None = None,
        n_bound_samples: int = 4,
        bound_strata: int | None = 50,
        base: str = "independent",
        **training: Any,
    ) -> None:
        super().__init__(**{**DIFFUSION_TRAINING, **training})
        self.timesteps = timesteps
        self.noise_schedule = noise_schedule
        self.variance = variance
        self.architecture = architecture
        self.hidden = hidden
        self.n_blocks = n_blocks
        self.class_conditional = class_conditional
        self.p_uncond = p_uncond
        self.guidance = guidance
        self.sampler = sampler
        self.sampling_steps = sampling_steps
        self.n_bound_samples = n_bound_samples
        self.bound_strata = bound_strata
        self.base = base

    # ----------------------------------------------------------------- building
    def _check_params_together(self, params: Any) -> None:
        name, T = self.name, params["timesteps"]
        check_int(name, "sampling_steps", params["sampling_steps"], low=1, high=T, allow_none=True)
        if self.guidance and not self.class_conditional:
            raise ParameterError(
                f"{name}: guidance={self.guidance!r} needs class_conditional=True (it mixes "
                "the conditional and unconditional ε); set guidance=0"
            )
        if self.sampling_steps is not None and self.sampler != "ddim":
            raise ParameterError(
                f"{name}: sampling_steps={self.sampling_steps!r} applies to sampler='ddim'; "
                "ancestral sampling takes all T steps: set sampler='ddim' or sampling_steps=None"
            )

    def _build_module(self, spec: DataSpec, n_classes: int | None) -> DiffusionNetwork:
        if getattr(self, "_no_levels", False) and spec.is_discrete:  # see set_state
            self.base = "gaussian"
        architecture, image = self._architecture(spec)
        config = self.config(
            architecture=architecture,
            image_shape=image,
            hidden=self._denoiser_width(architecture),
            dtype=self._weights_dtype(),
        )
        module = DiffusionNetwork.from_config(config, spec, n_classes)
        stats = getattr(self, "_standardise", None)
        if stats is not None and not spec.is_discrete:  # overwritten by saved buffers on load
            module.shift.copy_(torch.as_tensor(stats[0]).reshape(module.shift.shape))
            module.scale.copy_(torch.as_tensor(stats[1]).reshape(module.scale.shape))
        counts = getattr(self, "_level_counts", None)
        if counts is not None and module.base == "independent":
            # Jeffreys-smoothed frequencies: no level has probability 0
            freq = (counts + 0.5) / (counts.sum(1, keepdims=True) + 0.5 * counts.shape[1])
            module.level_logits.copy_(torch.as_tensor(np.log(freq)))
        return module

    def _fit_stream(self, data: Source, y: np.ndarray | None, spec: DataSpec, **fit_params: Any):
        self.hidden_ = self._denoiser_width(self._architecture(spec)[0])
        # continuous data: mean and std (1 for a constant entry) from sums over batches,
        # copied into the network's buffers by _build_module
        # discrete data: the counts of each level of each entry, for the independent base
        if not spec.is_discrete:
            self._standardise = streamed_location_scale(data)
        elif self.base == "independent":
            self._level_counts = level_counts(data, spec.n_categories)
        try:
            super()._fit_stream(data, y, spec, **fit_params)
        finally:
            self._standardise = self._level_counts = None

    def set_state(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> DDPM:
        # runs saved before base="independent" existed hold no level frequencies: their
        # denoiser was the Gaussian base's (continuous data use that one anyway)
        self._no_levels = not any(k.endswith("level_logits") for k in arrays)
        try:
            return super().set_state(arrays, meta)
        finally:
            self._no_levels = False

    # ----------------------------------------------------------------- the bound
    def _labels(self, y: Any, n: int) -> Tensor | None:
        index = self._class_index(
            y, n, why="its bound is on log p(x | y); score_samples(X) gives the one on log p(x)"
        )
        return None if index is None else torch.as_tensor(index, device=self._device())

    def _keys(self, x: np.ndarray, seed: int | None = None) -> np.ndarray:
        """Each example's noise key: a hash of (seed, default random_state, its values)."""
        return example_keys(x, self._seed() if seed is None else seed)

    def bound_terms(self, X: Any, y: Any = None) -> np.ndarray:
        """The estimated bound's terms in nats, (N, T + 1): column 0 is L_0 = −log p(x_0 |
        x_1) (continuous data: with the standardisation's Jacobian), columns 1 … T−1 the KL
        terms L_{t−1}, column T the prior term L_T; each averaged over ``n_bound_samples``
        draws of x_t (the draws of ``score_samples`` with ``bound_strata=None``, whose
        score is then −row sums for unconditional models). Costs T · ``n_bound_samples``
        network passes per example. Class-conditional models need ``y``: the terms of the
        bound on log p(x | y).
        """
        self._check_fitted()
        x = check_values(X, self.fitted_spec)
        labels = self._labels(y, len(x))
        xt = self._tensors(x, None, self.fitted_spec)[0].to(self._device())
        with torch.no_grad():
            terms = self._module.bound_terms(
                xt, labels, n_draws=int(self.n_bound_samples), keys=self._keys(x)
            )
        return terms.double().cpu().numpy()

    def bound_estimate(
        self, X: Any, n_t: int = 16, *, y: Any = None, random_state: Any = None
    ) -> np.ndarray:
        """Unbiased Monte-Carlo estimate of the bound on log p(x) (or log p(x | y)), (N,):
        −(L_0 + L_T + (T − 1)/n_t Σ_{i ≤ n_t} L_{t_i − 1}), t_i uniform on 2 … T (with
        replacement), the same t_i for every example, one draw of x_t each (a function of
        the seed and the example, not of the batch). Costs n_t + 1 network passes instead
        of T."""
        self._check_fitted()
        check_int(self.name, "n_t", n_t, low=1)
        check_random_state(self.name, "random_state", random_state)
        x = check_values(X, self.fitted_spec)
        labels = self._labels(y, len(x))
        rng = np.random.default_rng(random_state)
        T = self.timesteps
        ts = rng.integers(2, T + 1, size=n_t).tolist() if T > 1 else []
        net = self._module
        xt = self._tensors(x, None, self.fitted_spec)[0].to(self._device())
        keys = self._keys(x, int(rng.integers(2**62)))
        with torch.no_grad():
            # draw i of the noise at t_i: the same t drawn twice gets two different x_t
            terms = torch.stack(
                [
                    net.draw_terms(xt, [t], labels, keys=keys, first_draw=i)[0, :, 0]
                    for i, t in enumerate([1, *ts])
                ],
                dim=1,
            )  # (N, 1 + n_t)
            total = terms[:, 0] + net.prior_term(xt)
            if ts:
                total = total + (T - 1) * terms[:, 1:].mean(1)
        return -total.double().cpu().numpy()

    @torch.no_grad()
    def _log_prob_with_std(self, x: np.ndarray, label: int | None) -> tuple[np.ndarray, ...]:
        """The estimated bound on log p(x) (or log p(x | class)) and its standard error."""
        # chunks of examples whose draws fill one denoiser call (bound_rows: fewer for
        # larger examples), with a progress bar over all T steps of every chunk
        size = max(1, min(1024, self._module.bound_rows() // int(self.n_bound_samples)))
        chunks = np.array_split(x, max(1, int(np.ceil(len(x) / size))))
        strata = self._strata()
        per_chunk = self.timesteps if strata is None else 1 + strata * int(self.n_bound_samples)
        total = len(chunks) * per_chunk
        scores, errors = [], []
        with progress_bar(total, "bound", enabled=bool(self.verbose)) as advance:
            for chunk in chunks:
                xt = self._tensors(chunk, None, self.fitted_spec)[0].to(self._device())
                y = None if label is None else torch.full((len(xt),), label, device=xt.device)
                _, bound, stderr = self._module.bound_with_stderr(
                    xt,
                    y,
                    progress=advance,
                    n_draws=int(self.n_bound_samples),
                    keys=self._keys(chunk),
                    strata=strata,
                )
                scores.append(bound.double().cpu().numpy())
                errors.append(stderr.double().cpu().numpy())
        return np.concatenate(scores), np.concatenate(errors)

    def _log_prob(self, x: np.ndarray, label: int | None) -> np.ndarray:
        return self._log_prob_with_std(x, label)[0]

    def _strata(self) -> int | None:
        """Strata of the score's sum over t, or None: every t (``bound_strata`` ≥ T − 1)."""
        strata = self.bound_strata
        return None if strata is None or strata >= self.timesteps - 1 else int(strata)

    # ----------------------------------------------------------------- sampling
    def sample_ddim(
        self,
        n_samples: int = 1,
        steps: int | None = None,
        *,
        eta: float = 0.0,
        y: Any = None,
        guidance: float | None = None,
        random_state: Any = None,
    ) -> np.ndarray:
        """Draw ``n_samples`` with DDIM over ``steps`` ≤ T steps (None: min(50, T); η = 0:
        deterministic given x_T; η = 1 with steps = T: ancestral sampling with σ_t² = β̃_t).
        Like :meth:`sample`.
        """
        self._check_fitted()
        if steps is None:
            steps = min(50, self.timesteps)
        check_int(self.name, "steps", steps, low=1, high=self.timesteps)
        check_float(self.name, "eta", eta, low=0)
        w = self._guidance(guidance)
        with self._sampling(sampler="ddim", sampling_steps=steps, eta=float(eta), guidance=w):
            return self.sample(n_samples, y=y, random_state=random_state)

    def sample_ancestral(
        self,
        n_samples: int = 1,
        *,
        y: Any = None,
        guidance: float | None = None,
        random_state: Any = None,
    ) -> np.ndarray:
        """Draw ``n_samples`` by T ancestral steps (the model the bound is about)."""
        self._check_fitted()
        w = self._guidance(guidance)
        with self._sampling(sampler="ancestral", guidance=w):
            return self.sample(n_samples, y=y, random_state=random_state)
