"""Noise-conditional score networks (NCSN): denoising score matching over a geometric ladder
of noise levels, annealed Langevin sampling, no likelihood.

Fitting streams (``capabilities().streams``): the standardisation is summed over batches,
and σ_1 (the largest distance between training examples) is taken over a bounded seeded
sample of rows (:func:`seeded_rows`) read a batch at a time, so a memory-mapped file is
never read whole.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from ptheta.data.batch_stats import seeded_rows, streamed_location_scale
from ptheta.data.spec import DataSpec, check_values
from ptheta.data.stream import Source
from ptheta.errors import CapabilityError, DataError, ParameterError
from ptheta.models.neural import EXPLORER_QUICK, NeuralModel
from ptheta.nn.noise import SCORE_SEED, example_keys, keyed_normal
from ptheta.nn.shapes import batched, sampled
from ptheta.nn.timenet import TimeConditioned
from ptheta.params import (
    Bool,
    Choice,
    Config,
    Float,
    Int,
    Param,
    check_float,
    check_int,
    is_real,
    parameter_error,
)
from ptheta.progress import progress_bar

ARCHITECTURES: tuple[str, ...] = ("auto", "mlp", "unet")
# Langevin step relative to the noise variance, α_i / σ_i² = ε / σ_L², when step_size is
# None: Song & Ermon (2019) used ε = 2e-5 with σ_L = 0.01, i.e. 0.2.
STEP_RATIO = 0.2
# α_i / σ_i² must stay below this: on N(0, σ²) a step multiplies x by 1 − α/(2σ²), which
# flips sign beyond 2 (the chain oscillates) and diverges beyond 4.
MAX_STEP_RATIO = 2.0
# σ_1 by Song & Ermon (2020)'s technique 1 is the largest distance between training examples
# (in model units), over at most this many of them (a seeded subsample), and at least 1.
DISTANCE_SUBSAMPLE = 1000
SIGMA_MAX_FLOOR = 1.0
SCORE_ROWS = 8192  # rows (examples × levels) the network sees at once when scoring
DEFAULT_FRAMES = 20


def sigma_ladder(sigma_max: float, sigma_min: float, n_sigmas: int) -> np.ndarray:
    """The geometric ladder σ_1 = ``sigma_max`` > … > σ_L = ``sigma_min``, float64 (L,):
    σ_{i+1}/σ_i is the same for every i (Song & Ermon 2019, §4.2).

    Example:
        >>> sigma_ladder(1.0, 0.01, 3).tolist()
        [1.0, 0.1, 0.01]
    """
    if not (sigma_max > sigma_min > 0) or n_sigmas < 2:
        raise ParameterError(
            f"a ladder needs sigma_max > sigma_min > 0 and n_sigmas >= 2, got {sigma_max!r}, "
            f"{sigma_min!r}, {n_sigmas!r}"
        )
    return np.geomspace(float(sigma_max), float(sigma_min), int(n_sigmas))


def largest_distance(z: np.ndarray, rng: np.random.Generator, max_points: int = 1000) -> float:
    """The largest Euclidean distance between two rows of ``z`` (N, ...), over a random
    subsample of at most ``max_points`` rows (0 for one row).

    Example:
        >>> points = np.array([[0.0, 0.0], [3.0, 4.0], [1.0, 1.0]])
        >>> largest_distance(points, np.random.default_rng(0))
        5.0
    """
    flat = np.asarray(z, dtype=np.float64).reshape(len(z), -1)
    if len(flat) > max_points:
        flat = flat[rng.choice(len(flat), size=max_points, replace=False)]
    flat = flat - flat.mean(0)  # distances do not change; the squares below stay small
    sq = (flat**2).sum(1)
    d2 = sq[:, None] + sq[None, :] - 2 * flat @ flat.T  # (M, M)
    return float(np.sqrt(max(float(d2.max()), 0.0)))


def check_sigma(model: str, sigma: Any, sigmas: Sequence[float]) -> float:
    """``sigma`` as a float in [σ_L, σ_1] of the ladder ``sigmas`` (a rounding error outside
    is clamped), or the ParameterError "<model>: sigma must be …"."""
    low, high = float(min(sigmas)), float(max(sigmas))
    ok = is_real(sigma) and math.isfinite(sigma)
    if not (ok and low * (1 - 1e-6) <= sigma <= high * (1 + 1e-6)):  # float32 ladders
        what = f"a noise level in [{low:.6g}, {high:.6g}], the ends of the ladder (model units)"
        raise parameter_error(model, "sigma", what, sigma)
    return min(max(float(sigma), low), high)


def _frame_steps(total: int, n_frames: int) -> list[int]:
    """The steps 0 … ``total`` at which :func:`annealed_langevin` keeps the state: evenly
    spaced from the start (0) to the end (``total``); the end alone for one frame."""
    if n_frames == 1:
        return [total]
    return np.floor(np.linspace(0, total, n_frames) + 0.5).astype(int).tolist()


def annealed_langevin(
    score: Callable[[Tensor, Tensor], Tensor],
    x0: Tensor,
    sigmas: Sequence[float] | Tensor,
    steps_per_level: int,
    step_size: float,
    generator: torch.Generator | None = None,
    *,
    denoise: bool = True,
    n_frames: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> Tensor:
    """Annealed Langevin dynamics (Song & Ermon 2019, Algorithm 1) with any score function.

    For each level i = 1 … L (``sigmas`` decreasing), T = ``steps_per_level`` steps

        x ← x + (α_i / 2) · score(x, σ_i) + √α_i · z,   z ~ N(0, I),   α_i = ε σ_i² / σ_L²

    (ε = ``step_size``), so that α_i / σ_i² = ε / σ_L² is the same at every level. With
    ``denoise`` a last step x ← x + σ_L² · score(x, σ_L) returns E[x_clean | x] under
    p_σ_L (Tweedie's formula, as NCSNv2's sampler ends; Jolicoeur-Martineau et al. 2021)
    instead of a sample carrying noise of size σ_L.

    Arguments:
        score: ``score(x, sigma)`` → ∇ₓ log p_σ(x), x's shape; ``sigma`` is a 0-dim tensor
            of x's dtype.
        x0: the starting points (N, *event_shape).
        sigmas: σ_1 > … > σ_L > 0.
        steps_per_level: T ≥ 1.
        step_size: ε > 0.
        generator: source of all the noise.
        denoise: end with the denoising step.
        n_frames: None: return the end points; else return that many states along the
            chain (n_frames, N, *event_shape), evenly spaced over the L·T (+1) moves from
            ``x0`` (the first frame, if n_frames ≥ 2) to the end points (the last).
        progress: called with T after each level.

    Returns:
        the end points (N, *event_shape), or the frames.

    Example:
        >>> import torch
        >>> def gaussian(x, sigma):  # N(0, I) smoothed by N(0, σ² I)
        ...     return -x / (1 + sigma**2)
        >>> gen = torch.Generator().manual_seed(0)
        >>> start = 10 * torch.randn(4000, 1, generator=gen)
        >>> sigmas = torch.logspace(1, -1, 10)  # 10 … 0.1
        >>> x = annealed_langevin(gaussian, start, sigmas, 100, 0.002, gen)
        >>> round(float(x.std()), 1)
        1.0

    References:
        Song & Ermon (2019), Generative Modeling by Estimating Gradients of the Data
        Distribution, NeurIPS; Song & Ermon (2020), Improved Techniques for Training
        Score-Based Generative Models, NeurIPS; Jolicoeur-Martineau et al. (2021),
        Adversarial Score Matching and Improved Sampling for Image Generation, ICLR.
    """
    sig = torch.as_tensor(sigmas, dtype=torch.float64).to(device=x0.device, dtype=x0.dtype)
    if (
        sig.dim() != 1
        or not len(sig)
        or bool((sig <= 0).any())
        or bool((sig[1:] >= sig[:-1]).any())
    ):
        raise ParameterError(f"sigmas must be positive and decreasing, got {sig.tolist()}")
    check_int("annealed_langevin", "steps_per_level", steps_per_level, low=1)
    check_float("annealed_langevin", "step_size", step_size, low=0, low_open=True)
    total = len(sig) * steps_per_level + int(denoise)
    keep: set[int] = set()
    if n_frames is not None:
        check_int("annealed_langevin", "n_frames", n_frames, low=1, high=total + 1)
        keep = set(_frame_steps(total, n_frames))
    frames = [x0] if 0 in keep else []
    x, step, last = x0, 0, sig[-1]
    for sigma in sig:
        alpha = step_size * (sigma / last) ** 2
        for _ in range(steps_per_level):
            z = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
            x = x + alpha / 2 * score(x, sigma) + alpha.sqrt() * z
            step += 1
            if step in keep:
                frames.append(x)
        if progress is not None:
            progress(steps_per_level)
    if denoise:
        x = x + last**2 * score(x, last)
        step += 1
        if step in keep:
            frames.append(x)
    return x if n_frames is None else torch.stack(frames)


# ---------------------------------------------------------------------------------------
# Module level


class ScoreNetwork(nn.Module):
    """A noise-conditional score network s_θ(x, σ) over a ladder of noise levels (module level).

    Model units: discrete levels k of K enter as the centres (2k + 1)/K − 1 in [−1, 1];
    continuous values enter as given (the estimator standardises them first, so they have
    mean 0 and standard deviation 1 per entry). In model units p_σ is the data density
    smoothed by N(0, σ² I), and

        s_θ(x, σ) = −x / (1 + σ²) + f_θ(x / √(1 + σ²), t(σ)) / σ

    where f_θ is a :class:`~ptheta.nn.timenet.TimeConditioned` network (output zero at
    first) and t(σ) = (log σ − log σ_L) / (log σ_1 − log σ_L) ∈ [0, 1]. The first term is
    the exact score of N(0, I) smoothed by σ (unit-variance data), so the untrained network
    is a sane model whose samples are about N(0, I); the 1/σ scaling of the learned part is
    Song & Ermon (2020)'s technique 3 (‖s‖ grows like 1/σ); dividing its input by
    √(1 + σ²) gives the network inputs of unit variance at every level (c_in of Karras et
    al. 2022; without it a fit on 8gaussians left one level unlearned).

    Training (:meth:`loss`): denoising score matching with λ(σ) = σ², per example
    ‖σ s_θ(x + σ z, σ) + z‖² / D, z ~ N(0, I), σ uniform on the ladder (D = entries per
    example: the mean over entries, so the loss does not grow with D). In eval mode (the
    Trainer's validation) it is averaged over all L levels, with z keyed by each example's
    values and the level (:func:`~ptheta.nn.noise.example_keys` with
    :data:`~ptheta.nn.noise.SCORE_SEED`), so every epoch is validated on the same draws,
    whatever the batch. Class-conditional networks replace the label by the null label ∅
    with probability ``p_uncond`` in training, so the same network gives the unconditional
    score (y = None or −1) and classifier-free guidance f̂ = (1 + w) f(x, y) − w f(x, ∅) in
    sampling.

    Sampling (:meth:`sample`, :meth:`sample_paths`): :func:`annealed_langevin` from
    x ~ N(0, (1 + σ_1²) I), the Gaussian that p_σ_1 of unit-variance data is close to;
    discrete samples are rounded to the nearest level.

    **No** ``log_prob``: a score field never gives the normalising constant of the density
    it is the gradient of (and a learned field need not be a gradient at all), so the
    module has no ``log_prob`` attribute (the Trainer validates with the loss).

    Shapes (:mod:`ptheta.nn.shapes`): ``loss`` and ``score_norm`` take x (*batch,
    *event_shape) (levels of any integer dtype, or reals) and y (*batch) and return
    (*batch); ``score_field`` returns (*batch, *event_shape); ``sample`` takes a sample
    shape. :meth:`score` works on flat batches in model units.

    Arguments:
        event_shape: shape of one example; D = its size.
        sigmas: σ_1 > … > σ_L, in model units.
        n_categories: K of discrete data; None: continuous.
        architecture: ``"mlp"`` or ``"unet"`` (needs ``image_shape``).
        hidden: MLP width, or U-Net channels at full resolution.
        n_blocks: residual blocks of the MLP.
        image_shape: (C, H, W) with C·H·W = D, for the U-Net.
        n_classes: classes of a class-conditional network; None: unconditional.
        p_uncond: probability of dropping the label in training.
        guidance: w of sampling (0: the conditional score itself).
        steps_per_level: T of annealed Langevin sampling.
        step_size: ε of annealed Langevin sampling; None: ``STEP_RATIO`` · σ_L².
        denoise: end sampling with the denoising step.
        dtype: of parameters and buffers (default: torch's default dtype).

    Example:
        >>> import torch
        >>> net = ScoreNetwork((2,), sigmas=[1.0, 0.1], hidden=16, steps_per_level=3)
        >>> x = net.sample(5, generator=torch.Generator().manual_seed(0))
        >>> x.shape, net.loss(x).shape, net.score_field(x).shape
        (torch.Size([5, 2]), torch.Size([5]), torch.Size([5, 2]))

    References:
        Vincent (2011), A Connection Between Score Matching and Denoising Autoencoders,
        Neural Computation; Song & Ermon (2019), NeurIPS; Song & Ermon (2020), NeurIPS;
        Ho & Salimans (2021), Classifier-Free Diffusion Guidance; Karras et al. (2022),
        Elucidating the Design Space of Diffusion-Based Generative Models, NeurIPS.
    """

    @classmethod
    def from_config(
        cls, config: Config, spec: DataSpec, n_classes: int | None = None
    ) -> ScoreNetwork:
        """The network of an :class:`NCSN`'s config (``hidden``, ``n_blocks``, ``p_uncond``,
        ``guidance``, ``steps_per_level``, ``step_size``, ``denoise``, and the ``sigmas``,
        ``architecture``, ``image_shape`` and ``dtype`` the estimator resolved) for data
        of ``spec``."""
        return cls(
            spec.event_shape,
            sigmas=config.sigmas,
            n_categories=spec.n_categories if spec.is_discrete else None,
            architecture=config.architecture,
            hidden=config.hidden,
            n_blocks=config.n_blocks,
            image_shape=config.image_shape,
            n_classes=n_classes,
            p_uncond=config.p_uncond,
            guidance=config.guidance,
            steps_per_level=config.steps_per_level,
            step_size=config.step_size,
            denoise=config.denoise,
            dtype=config.dtype,
        )

    def __init__(
        self,
        event_shape: tuple[int, ...],
        *,
        sigmas: Sequence[float],
        n_categories: int | None = None,
        architecture: str = "mlp",
        hidden: int = 128,
        n_blocks: int = 2,
        image_shape: tuple[int, int, int] | None = None,
        n_classes: int | None = None,
        p_uncond: float = 0.1,
        guidance: float = 0.0,
        steps_per_level: int = 100,
        step_size: float | None = None,
        denoise: bool = True,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        ladder = torch.as_tensor(np.asarray(sigmas, dtype=np.float64))
        if ladder.dim() != 1 or len(ladder) < 2 or bool((ladder[1:] >= ladder[:-1]).any()):
            raise ParameterError(f"sigmas must be 2 or more decreasing levels, got {sigmas!r}")
        if not bool(ladder[-1] > 0):
            raise ParameterError(f"sigmas must be positive, got {sigmas!r}")
        self.event_shape = tuple(event_shape)
        self.n_dims = math.prod(self.event_shape)
        self.n_categories = n_categories
        self.n_classes = n_classes
        self.p_uncond = p_uncond
        self.guidance = guidance
        self.steps_per_level = steps_per_level
        sigma_min = float(ladder[-1])
        self.step_size = STEP_RATIO * sigma_min**2 if step_size is None else float(step_size)
        self.denoise = denoise
        self.register_buffer("sigmas", ladder)  # (L,), σ_1 first
        self.f = TimeConditioned(
            self.event_shape,
            architecture=architecture,
            hidden=hidden,
            n_blocks=n_blocks,
            image_shape=image_shape,
            n_classes=n_classes,
        )
        self.to(dtype or torch.get_default_dtype())

    def extra_repr(self) -> str:
        parts = [f"event_shape={self.event_shape}"]
        if self.n_categories is not None:
            parts.append(f"n_categories={self.n_categories}")
        s = self.sigmas
        parts.append(f"sigmas={len(s)} from {float(s[0]):.4g} to {float(s[-1]):.4g}")
        if self.n_classes is not None:
            parts.append(f"n_classes={self.n_classes}, guidance={self.guidance}")
        parts.append(f"steps_per_level={self.steps_per_level}, step_size={self.step_size:.3g}")
        return ", ".join(parts)

    # ----------------------------------------------------------------- units
    @property
    def _dtype(self) -> torch.dtype:
        return self.sigmas.dtype

    @property
    def unit_scale(self) -> float:
        """d(model units)/d(input units): 2/K for levels, 1 for real inputs."""
        return 1.0 if self.n_categories is None else 2.0 / self.n_categories

    def to_unit(self, x: Tensor) -> Tensor:
        """Inputs → model units: level centres in [−1, 1], or real values unchanged."""
        if self.n_categories is not None:
            return (2 * x.to(self._dtype) + 1) / self.n_categories - 1
        return x.to(self._dtype)

    def from_unit(self, z: Tensor) -> Tensor:
        """Model units → inputs: the nearest level (LongTensor), or the values themselves."""
        if self.n_categories is not None:
            k = torch.floor((z + 1) * self.n_categories / 2)
            return k.clamp(0, self.n_categories - 1).long()
        return z

    def level_units(self, z: Tensor) -> Tensor:
        """Model units → input units without rounding (levels as reals: k = ((z + 1)K − 1)/2)."""
        if self.n_categories is not None:
            return ((z + 1) * self.n_categories - 1) / 2
        return z

    # ----------------------------------------------------------------- the score
    def _check_labels(self, y: Tensor | None) -> None:
        if self.n_classes is None and y is not None:
            raise DataError("this score network is unconditional (n_classes=None): omit y")

    def _t(self, sigma: Tensor) -> Tensor:
        log_max, log_min = self.sigmas[0].log(), self.sigmas[-1].log()
        return (sigma.log() - log_min) / (log_max - log_min)

    def score(
        self, z: Tensor, sigma: Tensor | float, y: Tensor | None = None, guidance: float = 0.0
    ) -> Tensor:
        """s_θ(z, σ) ≈ ∇_z log p_σ(z) in model units, z's shape (N, *event_shape).

        ``sigma``: a number, a 0-dim tensor or one σ per row (N,). ``y``: labels (N,) of a
        class-conditional network, −1 or None for ∅; ``guidance`` w > 0 mixes the
        conditional and unconditional fields, (1 + w) s(z, y) − w s(z, ∅).
        """
        self._check_labels(y)
        n = len(z)
        sigma = torch.as_tensor(sigma, dtype=z.dtype, device=z.device)
        rows = sigma.expand(n) if sigma.dim() == 0 else sigma  # (N,)
        s = rows.reshape(-1, *[1] * (z.dim() - 1))  # (N, 1, …)
        # the network sees unit-variance inputs at every level (c_in of Karras et al. 2022)
        f = self.f.guided(z / (1 + s**2).sqrt(), self._t(rows), y, guidance)
        return -z / (1 + s**2) + f / s

    # ----------------------------------------------------------------- training
    @batched
    def loss(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """Denoising score matching ‖σ s_θ(x̃, σ) + z‖² / D, x̃ = x + σ z, per example (N,)."""
        self._check_labels(y)
        z0 = self.to_unit(x)
        n, n_levels = len(z0), len(self.sigmas)
        if not self.training:
            return self._validation_loss(x, z0, y)
        level = torch.randint(0, n_levels, (n,), device=z0.device)
        noise = torch.randn(z0.shape, dtype=z0.dtype, device=z0.device)
        if y is not None and self.p_uncond > 0:
            drop = torch.rand(len(y), device=y.device) < self.p_uncond
            y = torch.where(drop, -1, y)
        return self._dsm(z0, self.sigmas[level], noise, y)

    def _dsm(self, z0: Tensor, sigma: Tensor, noise: Tensor, y: Tensor | None) -> Tensor:
        """‖σ s_θ(z0 + σ noise, σ) + noise‖² / D per row, (N,); σ (N,)."""
        s = sigma.reshape(-1, *[1] * (z0.dim() - 1))
        err = (s * self.score(z0 + s * noise, sigma, y) + noise) ** 2
        return err.reshape(len(z0), -1).mean(1)

    def _validation_loss(self, x: Tensor, z0: Tensor, y: Tensor | None) -> Tensor:
        """The DSM loss averaged over every level (the expectation over σ, not a draw),
        with z keyed by the example and the level: the same draws in every epoch and any
        batch, so epochs are compared on the weights alone."""
        keys = example_keys(x, SCORE_SEED)
        n, n_levels = len(z0), len(self.sigmas)
        total = torch.zeros(n, dtype=z0.dtype, device=z0.device)
        per = max(1, SCORE_ROWS // max(n, 1))  # levels per network call
        for start in range(0, n_levels, per):
            levels = range(start, min(start + per, n_levels))
            noise = torch.cat([keyed_normal(keys, i, self.event_shape) for i in levels])
            rows = self.sigmas[start : levels.stop].repeat_interleave(n)
            ys = None if y is None else y.repeat(len(levels))
            zs = z0.repeat(len(levels), *[1] * (z0.dim() - 1))
            err = self._dsm(zs, rows, noise.to(z0.device, z0.dtype), ys)
            total = total + err.reshape(len(levels), n).sum(0)
        return total / n_levels

    # ----------------------------------------------------------------- scoring
    def _sigma(self, sigma: float | None) -> Tensor:
        if sigma is None:
            return self.sigmas[-1]
        sigma = check_sigma("score_field", sigma, self.sigmas.tolist())
        return torch.as_tensor(sigma, dtype=self._dtype, device=self.sigmas.device)

    @batched
    def score_field(
        self, x: Tensor, y: Tensor | None = None, *, sigma: float | None = None
    ) -> Tensor:
        """∇ₓ log p_σ(x) with respect to the inputs (levels as reals for discrete data:
        the model-unit score times 2/K), (N, *event_shape); σ in model units, default
        σ_L. Unconditional, or given y where the network is class-conditional."""
        return self.score(self.to_unit(x), self._sigma(sigma), y) * self.unit_scale

    @batched
    def score_norm(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """√(mean over the L levels of σ_i² ‖s_θ(x, σ_i)‖² / D) in model units, (N,): how
        far the learned fields pull x, in units of each level's noise (about 1 or less on
        noisy data, since E‖σ ∇ log p_σ‖² ≤ D; large far from the data). A function of x
        alone: no noise."""
        z = self.to_unit(x)
        n, n_levels = len(z), len(self.sigmas)
        total = torch.zeros(n, dtype=z.dtype, device=z.device)
        per = max(1, SCORE_ROWS // max(n, 1))  # levels per network call
        for start in range(0, n_levels, per):
            sig = self.sigmas[start : start + per]  # (g,)
            zs = z.repeat(len(sig), *[1] * (z.dim() - 1))  # (g·N, *E)
            rows = sig.repeat_interleave(n)
            ys = None if y is None else y.repeat(len(sig))
            s = self.score(zs, rows, ys) * rows.reshape(-1, *[1] * (z.dim() - 1))
            total = total + (s.reshape(len(sig), n, -1) ** 2).sum((0, 2))
        return (total / (n_levels * self.n_dims)).sqrt()

    # ----------------------------------------------------------------- sampling
    def chains(
        self,
        n: int,
        y: Tensor | None = None,
        generator: torch.Generator | None = None,
        *,
        n_frames: int | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> Tensor:
        """Annealed Langevin in model units from N(0, (1 + σ_1²) I): the end points (n,
        *event_shape), or ``n_frames`` states along the chains (see
        :func:`annealed_langevin`)."""
        self._check_labels(y)
        device = self.sigmas.device
        start = (
            torch.randn(
                (n, *self.event_shape), generator=generator, dtype=self._dtype, device=device
            )
            * (1 + self.sigmas[0] ** 2).sqrt()
        )

        def score(z: Tensor, sigma: Tensor) -> Tensor:
            return self.score(z, sigma, y, self.guidance)

        with torch.no_grad():
            return annealed_langevin(
                score,
                start,
                self.sigmas,
                self.steps_per_level,
                self.step_size,
                generator,
                denoise=self.denoise,
                n_frames=n_frames,
                progress=progress,
            )

    @property
    def n_moves(self) -> int:
        """Moves of one sampling chain: L·T Langevin steps (+1 denoising step)."""
        return len(self.sigmas) * self.steps_per_level + int(self.denoise)

    @sampled
    def sample(
        self, n: int, y: Tensor | None = None, generator: torch.Generator | None = None
    ) -> Tensor:
        """Examples by annealed Langevin dynamics, (*sample_shape, *event_shape); LongTensor
        levels for discrete data. All randomness comes from ``generator``."""
        return self.from_unit(self.chains(n, y, generator))

    def sample_paths(
        self,
        n: int,
        y: Tensor | None = None,
        generator: torch.Generator | None = None,
        *,
        n_frames: int = DEFAULT_FRAMES,
    ) -> Tensor:
        """``n_frames`` states of ``n`` chains from noise to samples, (n_frames, n,
        *event_shape) in input units (discrete: levels as reals, the last frame rounded);
        with the same generator the last frame equals :meth:`sample`."""
        frames = self.chains(n, y, generator, n_frames=n_frames)
        out = self.level_units(frames)
        out[-1] = self.from_unit(frames[-1]).to(out.dtype)
        return out


# ---------------------------------------------------------------------------------------
# Estimator level


class NCSN(NeuralModel):
    """Noise-conditional score network: denoising score matching, annealed Langevin, no likelihood.

    The network (:class:`ScoreNetwork`) learns the score s_θ(x, σ) ≈ ∇ₓ log p_σ(x) of the
    data smoothed by Gaussian noise, at every level of a geometric ladder σ_1 > … > σ_L
    (``sigma_max``, ``sigma_min``, ``n_sigmas``), by denoising score matching (Vincent
    2011) with λ(σ) = σ²; it samples by annealed Langevin dynamics (Song & Ermon 2019,
    Algorithm 1): ``steps_per_level`` steps of size α_i = ε σ_i²/σ_L² at each level, from
    the largest σ to the smallest, then one denoising step x + σ_L² s_θ(x, σ_L)
    (``denoise``, Song & Ermon 2020).

    **Model units.** Continuous data are standardised with the training mean and standard
    deviation (``input_shift_``, ``input_scale_``); discrete levels k of K go to the centres
    (2k + 1)/K − 1 in [−1, 1], and samples are rounded to the nearest level, so they are
    always valid values. The σ's are in these units: noise σ on a continuous entry is noise
    σ · ``input_scale_`` in the data's units.

    **σ_1.** ``sigma_max=None`` (default) takes Song & Ermon (2020)'s technique 1: σ_1 is
    the largest Euclidean distance between two training examples in model units (over a
    seeded sample of at most 1000, read a batch at a time: :func:`seeded_rows`), so that at
    the top level the noise mixes every example with every other; at least 1, the data's
    own scale, so one example or constant data still give a ladder. It is chosen at fit and
    stored with the ladder in ``sigmas_``.

    **No likelihood.** ``likelihood = "none"``: the network gives ∇ₓ log p_σ(x) only, and a
    gradient never determines the normalising constant of the density (nor is a learned
    field guaranteed to be a gradient), so ``score_samples``, ``score`` and
    ``predict_proba`` are absent (``hasattr`` is False; reaching for one raises a
    CapabilityError that says what to use instead). Judge samples with sample-based metrics
    (``ptheta compare``); for the probability-flow ODE likelihood of a score model use
    ``score-sde``. What the model does give:

    - :meth:`score_field`: ∇ₓ log p_σ(x) in the data's units (the chain rule through the
      standardisation divides by ``input_scale_``; discrete data: per level step), at
      σ = σ_L by default;
    - :meth:`score_norm`: the anomaly score (``capabilities().anomaly_score ==
      "score_norm"``): √(mean_i σ_i² ‖s_θ(x, σ_i)‖² / D) over all L levels, in model units,
      at x itself (no noise, so a function of the example alone). σ_i ‖s‖ is how far the
      level-i field pulls x in units of that level's noise: about 1 or less for data like
      the training data (E‖σ ∇ log p_σ‖² ≤ D under p_σ), and growing like distance/σ_i far
      from them. It summarises the multiscale score norms of Mahmood et al. (2021) in one
      number;
    - :meth:`sample_paths`: the Langevin chains from noise to data.

    Validation: the DSM loss (the Fisher divergence to p_σ up to a constant, so it measures
    fit) on the held-out data, averaged over every level with z keyed by each example and
    level: the same draws every epoch, so early stopping compares weights, not noise.

    Arguments:
        sigma_max: σ_1 in model units; None: the data-driven choice above.
        sigma_min: σ_L in model units (default 0.01, as both papers).
        n_sigmas: L ≥ 2 (default 10, as Song & Ermon 2019).
        steps_per_level: T, Langevin steps per level (default 100).
        step_size: ε (model units squared); None: 0.2 σ_L² (2e-5 at σ_L = 0.01, Song &
            Ermon 2019). ε/σ_L² = α_i/σ_i² must be below 2.
        denoise: end sampling with the denoising step (default True).
        architecture: ``"auto"`` (U-Net for image-shaped data, else MLP), ``"mlp"``,
            ``"unet"``; the resolved one is in the module's config.
        hidden: MLP width, or U-Net channels at full resolution.
        n_blocks: residual blocks of the MLP.
        class_conditional: fit s_θ(x, σ, y) with ``fit(X, y)``; ``sample(n, y=...)``.
        p_uncond: label dropout in training (the unconditional field, guidance).
        guidance: classifier-free guidance weight w ≥ 0 for sampling.
        **training: the shared training arguments of :class:`NeuralModel` (Song & Ermon
            2020's technique 5 is ``ema_decay=0.999`` for long fits).

    Fitted attributes:
        sigmas_ (L,), sigma_max_; input_shift_, input_scale_ (continuous data); module,
        history_, n_steps_.

    Example:
        >>> import numpy as np
        >>> from ptheta.models.ncsn import NCSN
        >>> x = np.random.default_rng(0).normal(size=(200, 2))
        >>> model = NCSN(n_sigmas=4, steps_per_level=5, hidden=16, epochs=2, device="cpu").fit(x)
        >>> model.sample(3, random_state=0).shape, model.score_field(x[:4]).shape
        ((3, 2), (4, 2))
        >>> model.score_norm(x[:4]).shape, hasattr(model, "score_samples")
        ((4,), False)

    References:
        Vincent (2011), A Connection Between Score Matching and Denoising Autoencoders,
        Neural Computation. Song & Ermon (2019), Generative Modeling by Estimating
        Gradients of the Data Distribution, NeurIPS. Song & Ermon (2020), Improved
        Techniques for Training Score-Based Generative Models, NeurIPS. Mahmood, Lopez &
        Fleet (2021), Multiscale Score Matching for Out-of-Distribution Detection, ICLR.
    """

    name: ClassVar[str] = "ncsn"
    family: ClassVar[str] = "score-based"
    likelihood: ClassVar[str] = "none"
    abilities: ClassVar[dict[str, Any]] = {
        "anomaly_score": "score_norm",
        "score_field": True,
        "sample_paths": "langevin",
    }
    data_kinds: ClassVar[tuple[str, ...]] = ("continuous", "binary", "categorical")
    standardize_input: ClassVar[bool] = True
    quick_params: ClassVar[dict[str, Any]] = {
        "n_sigmas": 4,
        "steps_per_level": 5,
        "hidden": 16,
        "n_blocks": 1,
        "epochs": 3,
        "dtype": "float64",
        "device": "cpu",
    }
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        # digits on a CPU budget: the MLP takes ~8× the U-Net's steps in the same time;
        # σ_L = 0.03 is a quarter of a gray level's bin (2/17), finer noise is rounded away;
        # sampling costs n_sigmas · steps_per_level + 1 network passes
        "demo": {
            "architecture": "mlp",
            "hidden": 256,
            "sigma_min": 0.03,
            "steps_per_level": 20,
            "device": "cpu",
        },
        # the 2-D toys: σ_L = 0.05 (a third of 8gaussians' blobs) is learned within the
        # minute; the view draws the field at σ_L and runs chains of 10 · 50 steps
        "explorer": {"sigma_min": 0.05, "steps_per_level": 50, "hidden": 128, "max_time": 60},
        "explorer-quick": {
            "sigma_min": 0.05,
            "n_sigmas": 5,
            "steps_per_level": 10,
            "hidden": 16,
            **EXPLORER_QUICK,
        },
    }
    parameters: ClassVar[dict[str, Param]] = {
        "sigma_max": Float(low=0, low_open=True, none=True, hint="None: from the data"),
        "sigma_min": Float(low=0, low_open=True),
        "n_sigmas": Int(low=2),
        "steps_per_level": Int(low=1),
        "step_size": Float(low=0, low_open=True, none=True, hint="None: 0.2 sigma_min²"),
        "denoise": Bool(),
        "architecture": Choice(*ARCHITECTURES),
        "hidden": Int(low=1),
        "n_blocks": Int(low=1),
        "class_conditional": Bool(),
        "p_uncond": Float(low=0, high=1, high_open=True),
        "guidance": Float(low=0),
    }

    def __init__(
        self,
        sigma_max: float | None = None,
        *,
        sigma_min: float = 0.01,
        n_sigmas: int = 10,
        steps_per_level: int = 100,
        step_size: float | None = None,
        denoise: bool = True,
        architecture: str = "auto",
        hidden: int = 64,
        n_blocks: int = 2,
        class_conditional: bool = False,
        p_uncond: float = 0.1,
        guidance: float = 0.0,
        **training: Any,
    ) -> None:
        super().__init__(**training)
        self.sigma_max = sigma_max
        self.sigma_min = sigma_min
        self.n_sigmas = n_sigmas
        self.steps_per_level = steps_per_level
        self.step_size = step_size
        self.denoise = denoise
        self.architecture = architecture
        self.hidden = hidden
        self.n_blocks = n_blocks
        self.class_conditional = class_conditional
        self.p_uncond = p_uncond
        self.guidance = guidance

    # ----------------------------------------------------------------- parameters
    def _check_params_together(self, params: Any) -> None:
        name = self.name
        high, low = params["sigma_max"], params["sigma_min"]
        if high is not None and high <= low:
            raise ParameterError(
                f"{name}: sigma_max={high!r} must be above sigma_min={low!r} (the ladder runs "
                "from sigma_max down to sigma_min); raise sigma_max or set it to None"
            )
        step = params["step_size"]
        if step is not None and step / low**2 >= MAX_STEP_RATIO:
            raise ParameterError(
                f"{name}: step_size={step!r} must be below {MAX_STEP_RATIO:g} · sigma_min² = "
                f"{MAX_STEP_RATIO * low**2:.3g}: α_i/σ_i² = step_size/sigma_min² ≥ 2 makes "
                "Langevin oscillate or diverge; lower it, or None for 0.2 · sigma_min²"
            )
        if params["guidance"] and not params["class_conditional"]:
            raise ParameterError(
                f"{name}: guidance={params['guidance']!r} needs class_conditional=True (it "
                "mixes the conditional and unconditional scores); set guidance=0"
            )

    # ----------------------------------------------------------------- building
    def _build_module(self, spec: DataSpec, n_classes: int | None) -> ScoreNetwork:
        architecture, image = self._architecture(spec)
        sigmas = getattr(self, "sigmas_", None)
        if sigmas is None:  # build_module before any fit: the ladder from a unit σ_1
            top = self.sigma_max if self.sigma_max is not None else SIGMA_MAX_FLOOR
            sigmas = sigma_ladder(max(top, 2 * self.sigma_min), self.sigma_min, self.n_sigmas)
        config = self.config(
            architecture=architecture,
            image_shape=image,
            sigmas=[float(s) for s in sigmas],
            dtype=self._weights_dtype(),
        )
        return ScoreNetwork.from_config(config, spec, n_classes)

    def _sampled_model_units(self, data: Source, spec: DataSpec) -> np.ndarray:
        """The seeded sample of at most `DISTANCE_SUBSAMPLE` training examples
        (:func:`seeded_rows`) in model units, float64 (as the network sees them: continuous
        data standardised with the moments of all the training data, summed over batches)."""
        rows = seeded_rows(data, DISTANCE_SUBSAMPLE, self.seed_)
        if spec.is_discrete:
            return (2 * rows + 1) / spec.n_categories - 1
        shift, scale = streamed_location_scale(data)
        return (rows - shift) / scale

    def _fit_stream(self, data: Source, y: np.ndarray | None, spec: DataSpec, **fit_params: Any):
        self.seed_ = self._seed()  # fixed before the ladder's subsample draws from it
        if self.sigma_max is None:
            units = self._sampled_model_units(data, spec)  # at most DISTANCE_SUBSAMPLE rows
            rng = np.random.default_rng(self.seed_)
            spread = largest_distance(units, rng, DISTANCE_SUBSAMPLE)
            top = max(spread, SIGMA_MAX_FLOOR)
            if top <= self.sigma_min:
                raise ParameterError(
                    f"{self.name}: the data-driven sigma_max ({top:.4g}, the largest distance "
                    f"between training examples in model units) is not above sigma_min="
                    f"{self.sigma_min!r}; lower sigma_min or set sigma_max"
                )
        else:
            top = float(self.sigma_max)
        self.sigma_max_ = top
        self.sigmas_ = sigma_ladder(top, self.sigma_min, self.n_sigmas)
        super()._fit_stream(data, y, spec, **fit_params)

    def _required_attributes(self) -> tuple[str, ...]:
        return ("sigmas_", "sigma_max_")

    def _expected_shapes(self, spec: DataSpec) -> dict[str, tuple[int, ...]]:
        return {"sigmas_": (int(self.n_sigmas),)}

    # ----------------------------------------------------------------- no likelihood
    def _no_likelihood(self) -> str:
        return (
            "'ncsn' has no likelihood: it learns the score ∇ₓ log p_σ(x), which never gives "
            "the normalising constant; use score_norm(X) for anomaly scores, score_field(X) "
            "for the field, sample-based metrics (ptheta compare) for samples, or score-sde "
            "for an ODE likelihood"
        )

    def _score_samples(self, x: np.ndarray) -> np.ndarray:
        raise CapabilityError(self._no_likelihood())

    # ----------------------------------------------------------------- score field
    def _labels(self, y: Any, n: int, what: str) -> Tensor | None:
        """Class indices of ``y`` on the device, or None: the unconditional field (∅ for a
        class-conditional network, which needs label dropout to have learned it)."""
        if y is None:
            if self._conditional() and not self.p_uncond:
                raise CapabilityError(
                    f"this {self.name!r} was fitted with p_uncond=0, so it never learned the "
                    f"unconditional score: pass y to {what}, or refit with p_uncond > 0"
                )
            return None
        index = self._class_index(y, n)
        return torch.as_tensor(index, device=self._device())

    def _per_chunk(self, X: Any, y: Any, what: str, compute: Callable) -> np.ndarray:
        self._check_fitted()
        x = check_values(X, self.fitted_spec, what="X")
        labels = self._labels(y, len(x), what)
        out = []
        for start in range(0, len(x), 1024):
            part = slice(start, start + 1024)
            xt = self._tensors(x[part], None, self.fitted_spec)[0].to(self._device())
            yt = None if labels is None else labels[part]
            with torch.no_grad():
                out.append(compute(xt, yt).double().cpu().numpy())
        return np.concatenate(out)

    def score_field(self, X: Any, sigma: float | None = None, *, y: Any = None) -> np.ndarray:
        """The learned score ∇ₓ log p_σ(x) in the data's units, (N, *event_shape) float64.

        p_σ is the data density smoothed by noise σ in model units (σ · ``input_scale_`` in
        the data's units for continuous data). The network's score in model units is
        divided by ``input_scale_`` (the chain rule through the standardisation); for
        discrete data it is per level step (times 2/K), the levels read as reals.

        Arguments:
            X: examples (N, *event_shape) of the fitted kind.
            sigma: a noise level in [σ_L, σ_1] in model units (``sigmas_``); None: σ_L, the
                smallest, the closest to the data's own score.
            y: labels (one, or one per example) of a class-conditional model: the score of
                p_σ(x | y); None: the unconditional score (learned by label dropout).
        """
        self._check_fitted()
        if sigma is not None:
            sigma = check_sigma(self.name, sigma, self.sigmas_.tolist())
        field = self._per_chunk(
            X, y, "score_field", lambda x, y: self._module.score_field(x, y, sigma=sigma)
        )
        scale = getattr(self, "input_scale_", None)
        return field if scale is None else field / np.asarray(scale, dtype=np.float64)

    def score_norm(self, X: Any, *, y: Any = None) -> np.ndarray:
        """The anomaly score of each example, (N,) float64, larger = more anomalous:
        √(mean over the L levels of σ_i² ‖s_θ(x, σ_i)‖² / D) in model units, at x itself
        (see the class docstring). A deterministic function of the model and the example.
        ``y``: as for :meth:`score_field`."""
        return self._per_chunk(X, y, "score_norm", lambda x, y: self._module.score_norm(x, y))

    # ----------------------------------------------------------------- sampling
    def _chains(self, n: int, y: Any, rng: np.random.Generator, n_frames: int | None) -> np.ndarray:
        """The chains of ``sample`` (n_frames None: the samples) or their frames, in data
        units; the same draws from ``rng`` either way, chunk by chunk as NeuralModel's."""
        device = self._device()
        generator = torch.Generator(device=device).manual_seed(int(rng.integers(2**62)))
        labels = None
        if self._conditional():
            if y is None:
                idx = rng.choice(len(self.classes_), size=n, p=np.exp(self.class_log_prior_))
            else:
                idx = self._index_of(y)
            labels = torch.as_tensor(idx, dtype=torch.long, device=device)
        net = self._module
        size = 4096  # NeuralModel's sampling chunk
        chunks = range(0, n, size)
        out = []
        with progress_bar(len(chunks) * net.n_moves, "langevin", enabled=bool(self.verbose)) as go:
            for start in chunks:
                part = None if labels is None else labels[start : start + size]
                m = min(size, n - start)
                if n_frames is None:
                    z = net.chains(m, part, generator, progress=go)
                    out.append(net.from_unit(z).cpu().numpy())
                else:
                    frames = net.chains(m, part, generator, n_frames=n_frames, progress=go)
                    path = net.level_units(frames)
                    path[-1] = net.from_unit(frames[-1]).to(path.dtype)
                    out.append(path.double().cpu().numpy())
                if net.denoise:
                    go(1)
        return self._from_model_units(np.concatenate(out, axis=0 if n_frames is None else 1))

    def _sample(self, n: int, y: Any, rng: np.random.Generator) -> np.ndarray:
        return self._chains(n, y, rng, None)

    def sample_paths(
        self,
        n_samples: int = 1,
        *,
        n_frames: int | None = None,
        y: Any = None,
        random_state: Any = None,
    ) -> np.ndarray:
        """The annealed Langevin chains from noise to samples, (n_frames, n_samples,
        *event_shape) float64 in the data's units.

        Frame 0 is the starting noise (for n_frames ≥ 2), the last the samples (equal to
        ``sample(n_samples, y=y, random_state=random_state)``); the others evenly spaced
        over the L·T Langevin moves and the denoising step. Discrete data: the levels as
        reals (k = ((z + 1)K − 1)/2), the last frame rounded to the nearest level.

        Arguments:
            n_samples: chains.
            n_frames: states kept, 1 … L·T + 1 (+1 with ``denoise``); None: 20 or all moves
                if fewer.
            y: labels for a class-conditional model (as for ``sample``).
            random_state: seed or numpy Generator.
        """
        self._check_fitted()
        moves = self._module.n_moves
        if n_frames is None:
            n_frames = min(DEFAULT_FRAMES, moves + 1)
        check_int(self.name, "n_frames", n_frames, low=1, high=moves + 1)
        check_int(self.name, "n_samples", n_samples, low=1)
        if y is not None and not self._conditional():
            raise CapabilityError(f"{self.name!r} is not class-conditional; sample without y")
        labels = None if y is None else self._check_sample_labels(y, n_samples)
        rng = np.random.default_rng(random_state)
        paths = self._chains(int(n_samples), labels, rng, int(n_frames))
        return paths.reshape(n_frames, n_samples, *self.fitted_spec.event_shape)
