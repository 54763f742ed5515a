"""Score-based generative models through SDEs: denoising score matching under a VP, sub-VP or
VE SDE, reverse-SDE and predictor–corrector sampling, and the probability-flow ODE's
likelihood.

Fitting streams (``capabilities().streams``): the standardisation is summed over batches,
and the VE SDE's data-driven σ_max (the largest distance between training examples) is
taken over a bounded seeded sample of rows read a batch at a time
(:func:`~ptheta.models.ncsn.seeded_rows`), so a memory-mapped file is never read whole.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from ptheta.data.batch_stats import seeded_rows, streamed_location_scale
from ptheta.data.spec import Data, DataSpec, check_values
from ptheta.data.stream import Source
from ptheta.errors import CapabilityError, DataError, ParameterError
from ptheta.models.continuous import ContinuousTimeDensity, ContinuousTimeModel
from ptheta.models.neural import DIFFUSION_TRAINING, EXPLORER_QUICK
from ptheta.nn import ode
from ptheta.nn.noise import SCORE_SEED
from ptheta.nn.sde import (
    MAX_PAIRWISE_ROWS,
    SDE,
    SDES,
    expand_as,
    largest_pairwise_distance,
    make_sde,
)
from ptheta.nn.shapes import batched, sampled
from ptheta.nn.timenet import TimeConditioned
from ptheta.params import Choice, Config, Float, Int, Param, check_float, check_int

SAMPLERS: tuple[str, ...] = ("ode", "euler-maruyama", "pc")
TIME_SAMPLINGS: tuple[str, ...] = ("uniform", "mixed")
# ε, the data end of every SDE: the smallest time of training, sampling and likelihoods (the
# kernel's std is 0 at t = 0 for VP and sub-VP, so the score is unbounded there). Song et
# al.'s likelihoods and training use the same ε = 1e-5.
EPS = 1e-5
_FIELD_CHUNK = 4096


def _time(t: float | Tensor, like: Tensor) -> Tensor:
    return torch.as_tensor(t, dtype=like.dtype, device=like.device)


# ---------------------------------------------------------------------------------------
# Module level


class ScoreSDEDensity(ContinuousTimeDensity):
    """A score network s_θ(x, t[, y]) under a forward SDE, and the density of its
    probability-flow ODE (module level).

    Score: s_θ(x, t, y) = −x / v(t) + f_θ(x / √v(t), t, y) / std(t), with
    v(t) = m(t)² + std(t)² the variance of x(t) for unit-variance data and f_θ a
    :class:`~ptheta.nn.timenet.TimeConditioned` network (zero at initialisation). The
    first term is the exact score when the data (in model units) are N(0, I), so an
    untrained model is that Gaussian; dividing f_θ by std(t) keeps the network's target,
    std(t) · ∇ log p_t, of unit scale at every t, and its input is scaled to unit variance
    too (which matters for VE, where x(t) grows to σ_max).

    Training (:meth:`loss`): denoising score matching with Song et al.'s standard weighting
    λ(t) = std(t)²: for x(t) = m(t) x + std(t) z, z ~ N(0, I), the loss is the mean over
    entries of ‖std(t) s_θ(x(t), t) + z‖² (std(t) s_θ should be −z, as
    ∇ log N(x(t); m x, std² I) = −z/std). The times: ``time_sampling="uniform"`` draws
    t ~ U(ε, 1) (Song et al.); ``"mixed"`` draws half of them so and half on the solvers'
    clock (below), t = ε + (1 − ε) u² with u ~ U(0, 1), whose density 1/(2√((t − ε)(1 − ε)))
    favours the small times that shape the density. The weighting per unit of t becomes
    std(t)² p(t), p(t) the mixture's density; either way the optimum is the true score.
    Class-conditional networks drop the label with probability ``p_uncond``
    (classifier-free guidance).

    Density (:meth:`log_prob`, from :class:`ContinuousTimeDensity`): the probability-flow ODE
    dx/dt = f(x, t) − ½ g(t)² s_θ(x, t) (:meth:`probability_flow`) from t = ε to 1, with
    the instantaneous change of variables and the SDE's prior at t = 1 (N(0, I) for VP and
    sub-VP, N(0, σ_max² I) for VE). It is the exact density, up to the ODE solver's error,
    of the model that the ODE sampler draws from; with a perfect score it is p_ε, the data
    smoothed by the kernel at t = ε (std ≈ 1e-3 for VP, ≈ σ_min for VE, in model units);
    with VE the prior N(0, σ_max²) stands in for the data smoothed by σ_max (the small
    mismatch every VE model makes). The solvers integrate the ODE on the clock s ∈ [0, 1]
    with t = ε + (1 − ε) s² (:meth:`time`; ``t_data`` = 0 and ``t_noise`` = 1 are clock
    values and :meth:`velocity` is dx/ds = dt/ds · dx/dt): the same ODE and likelihood,
    with steps packed near the data end, where VP's drift grows like t^(−1/2). On a fitted
    8gaussians model, 20 equal rk4 steps in s are within 0.005 nats per example of a tight
    dopri5 solve; 20 equal steps in t were 0.26 off.

    Sampling (:meth:`sample`, by ``sampler``): ``"ode"`` integrates the probability-flow ODE
    (the likelihood's model); ``"euler-maruyama"`` (:meth:`euler_maruyama`) and ``"pc"``
    (:meth:`predictor_corrector`) run the reverse-time SDE over ``sampling_steps`` steps,
    equal on the clock s (smaller near the data).
    ``guidance`` w mixes (1 + w) f_θ(x, t, y) − w f_θ(x, t, ∅) in sampling, never in
    likelihoods.

    Arguments:
        event_shape: shape of one example.
        sde: the forward SDE (:mod:`ptheta.nn.sde`).
        n_categories, n_classes, solver, divergence, n_probes, n_dequant_samples, guidance,
            seed: see :class:`ContinuousTimeDensity`.
        architecture, hidden, n_blocks, image_shape: of the network (TimeConditioned).
        p_uncond: probability of dropping the label in training.
        time_sampling: ``"uniform"`` or ``"mixed"``, how training draws t.
        sampler: ``"ode"``, ``"euler-maruyama"`` or ``"pc"``.
        sampling_steps: steps of the SDE samplers.
        corrector_steps: Langevin corrector steps per predictor step (``"pc"``).
        snr: the corrector's signal-to-noise ratio r (``"pc"``).
        eps: ε, the SDE time of the data end.

    Example:
        >>> import torch
        >>> from ptheta.nn.sde import VPSDE
        >>> m = ScoreSDEDensity((2,), sde=VPSDE(), hidden=8, sampling_steps=10).double()
        >>> x = torch.zeros(3, 2, dtype=torch.float64)
        >>> m.probability_flow(x, 0.5).abs().max().item()  # untrained: N(0, I) stays
        0.0
        >>> m.loss(x).shape, m.sample(4, generator=torch.Generator().manual_seed(0)).shape
        (torch.Size([3]), torch.Size([4, 2]))

    References:
        Song, Sohl-Dickstein, Kingma, Kumar, Ermon & Poole (2021), Score-Based Generative
        Modeling through Stochastic Differential Equations, ICLR; Vincent (2011), A
        Connection Between Score Matching and Denoising Autoencoders, Neural Computation;
        Ho & Salimans (2021), Classifier-Free Diffusion Guidance.
    """

    @classmethod
    def from_config(
        cls, config: Config, spec: DataSpec, n_classes: int | None = None
    ) -> ScoreSDEDensity:
        """The module of a :class:`ScoreSDE`'s config (its own hyper-parameters plus the
        resolved ``architecture``, ``image_shape``, ``sigma_max``, ``divergence`` and
        ``seed``) for data of ``spec``."""
        sde = make_sde(
            config.sde,
            beta_min=config.beta_min,
            beta_max=config.beta_max,
            sigma_min=config.sigma_min,
            sigma_max=config.sigma_max,
        )
        return cls(
            spec.event_shape,
            sde=sde,
            n_categories=spec.n_categories if spec.is_discrete else None,
            n_classes=n_classes,
            solver=ode.ODESolver(
                config.ode_solver, config.ode_rtol, config.ode_atol, config.ode_steps
            ),
            divergence=config.divergence,
            n_probes=config.n_probes,
            n_dequant_samples=config.n_dequant_samples,
            dequantization=config.dequantization,
            guidance=config.guidance,
            seed=config.seed,
            architecture=config.architecture,
            hidden=config.hidden,
            n_blocks=config.n_blocks,
            image_shape=config.image_shape,
            p_uncond=config.p_uncond,
            time_sampling=config.time_sampling,
            sampler=config.sampler,
            sampling_steps=config.sampling_steps,
            corrector_steps=config.corrector_steps,
            snr=config.snr,
        )

    def __init__(
        self,
        event_shape: tuple[int, ...],
        *,
        sde: SDE,
        n_categories: int | None = None,
        n_classes: int | None = None,
        solver: ode.ODESolver | None = None,
        divergence: str = "exact",
        n_probes: int = 1,
        n_dequant_samples: int = 1,
        guidance: float = 0.0,
        seed: int = 0,
        dequantization: str = "uniform",
        architecture: str = "mlp",
        hidden: int = 64,
        n_blocks: int = 2,
        image_shape: tuple[int, int, int] | None = None,
        p_uncond: float = 0.1,
        time_sampling: str = "uniform",
        sampler: str = "ode",
        sampling_steps: int = 500,
        corrector_steps: int = 1,
        snr: float = 0.16,
        eps: float = EPS,
    ) -> None:
        super().__init__(
            event_shape,
            n_categories=n_categories,
            n_classes=n_classes,
            solver=solver,
            divergence=divergence,
            n_probes=n_probes,
            n_dequant_samples=n_dequant_samples,
            guidance=guidance,
            seed=seed,
            dequantization=dequantization,
        )
        if sampler not in SAMPLERS:
            raise ParameterError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")
        self.sde = sde
        self.eps = float(eps)
        if time_sampling not in TIME_SAMPLINGS:
            raise ParameterError(
                f"time_sampling must be one of {TIME_SAMPLINGS}, got {time_sampling!r}"
            )
        self.p_uncond, self.time_sampling = p_uncond, time_sampling
        self.sampler, self.sampling_steps = sampler, sampling_steps
        self.corrector_steps, self.snr = corrector_steps, snr
        self.net = TimeConditioned(
            self.event_shape,
            architecture=architecture,
            hidden=hidden,
            n_blocks=n_blocks,
            image_shape=image_shape,
            n_classes=n_classes,
        )

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, sde={self.sde!r}, sampler={self.sampler}"

    # ----------------------------------------------------------------- the score
    def score(
        self, z: Tensor, t: float | Tensor, y: Tensor | None = None, guidance: float = 0.0
    ) -> Tensor:
        """s_θ(z, t[, y]) ≈ ∇_z log p_t(z) in model units, z's shape (N, *event); t a
        scalar or one time per example (N,). ``guidance`` w: the classifier-free guided
        score (labels y needed; w = 0 or y None: the score itself). Times below ε are read
        as ε: an adaptive solver may probe just past the data end, where std(t) → 0."""
        t = _time(t, z).clamp(min=self.eps)
        m, std = self.sde.kernel(t)
        var = expand_as(m**2 + std**2, z)
        f = self.net.guided(z / var.sqrt(), t, y, guidance)
        return -z / var + f / expand_as(std, z)

    def time(self, s: float | Tensor) -> Tensor | float:
        """The SDE time t = ε + (1 − ε) s² of clock value s (s = 0: the data end ε;
        s = 1: the noise end)."""
        return self.eps + (1.0 - self.eps) * s**2

    def probability_flow(
        self, z: Tensor, t: float | Tensor, y: Tensor | None = None, guidance: float = 0.0
    ) -> Tensor:
        """The probability-flow ODE's dz/dt = f(z, t) − ½ g(t)² s_θ(z, t) at SDE time t."""
        t = _time(t, z).clamp(min=self.eps)
        score = self.score(z, t, y, guidance)
        return self.sde.reverse_drift(z, t, score, probability_flow=True)

    def velocity(
        self, z: Tensor, t: Tensor, y: Tensor | None = None, guidance: float = 0.0
    ) -> Tensor:
        """dz/ds on the solvers' clock s (the base class's ``t``): dt/ds ·
        :meth:`probability_flow` at t = :meth:`time` (s), dt/ds = 2 (1 − ε) s."""
        s = _time(t, z)
        return 2.0 * (1.0 - self.eps) * s * self.probability_flow(z, self.time(s), y, guidance)

    def prior_log_prob(self, z: Tensor) -> Tensor:
        return self.sde.prior_log_prob(z)

    def prior_sample(self, n: int, generator: torch.Generator | None) -> Tensor:
        shape = (n, *self.event_shape)
        return self.sde.prior_sample(
            shape, generator, dtype=self._dtype, device=self._anchor.device
        )

    # ----------------------------------------------------------------- training
    @batched
    def loss(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """Denoising score matching at one t per example (``time_sampling``), weighted by
        std(t)²: the mean over entries of ‖std(t) s_θ(x(t), t) + z‖², (N,) (see the class
        docstring). Discrete levels get fresh dequantisation noise.

        In eval mode (the Trainer's validation) t, z and the dequantisation come from a
        generator seeded with :data:`~ptheta.nn.noise.SCORE_SEED`, so every epoch is
        validated on the same draws.
        """
        device, dtype = self._anchor.device, self._dtype
        gen = None if self.training else torch.Generator(device=device).manual_seed(SCORE_SEED)
        u = None
        if self.n_categories is not None:
            u = self.dequantization_noise(tuple(x.shape), gen)
        x0 = self.to_unit(x.to(device), u)
        n = len(x0)
        r = torch.rand(n, generator=gen, device=device, dtype=dtype)
        t = self.eps + (1 - self.eps) * r
        if self.time_sampling == "mixed":  # half the draws on the clock
            clock = torch.rand(n, generator=gen, device=device, dtype=dtype) < 0.5
            t = torch.where(clock, self.time(r), t)
        z = torch.randn(x0.shape, generator=gen, device=device, dtype=dtype)
        m, std = self.sde.kernel(t)
        xt = expand_as(m, x0) * x0 + expand_as(std, x0) * z
        if y is not None and self.training and self.p_uncond > 0:
            drop = torch.rand(len(y), device=y.device) < self.p_uncond
            y = torch.where(drop, -1, y)
        residual = expand_as(std, x0) * self.score(xt, t, y) + z
        return residual.reshape(n, -1).pow(2).mean(1)

    # ----------------------------------------------------------------- sampling
    def _noise(self, like: Tensor, generator: torch.Generator | None) -> Tensor:
        return torch.randn(like.shape, generator=generator, dtype=like.dtype, device=like.device)

    def _grid(self, steps: int) -> Tensor:
        """SDE times from 1 down to ε, equal steps on the clock s, (steps + 1,)."""
        s = torch.linspace(1.0, 0.0, steps + 1, dtype=self._dtype, device=self._anchor.device)
        return self.time(s)

    def _predictor(
        self, x: Tensor, t: Tensor, dt: Tensor, y: Tensor | None, generator
    ) -> tuple[Tensor, Tensor]:
        """One Euler–Maruyama step of the reverse SDE from t to t − dt: (x, its mean)."""
        drift = self.sde.reverse_drift(x, t, self.score(x, t, y, self.guidance))
        mean = x - drift * dt
        return mean + self.sde.diffusion(t) * dt.sqrt() * self._noise(x, generator), mean

    def _corrector(self, x: Tensor, t: Tensor, y: Tensor | None, generator, snr: float) -> Tensor:
        """One Langevin step at t with Song et al.'s step size 2 (r ‖z‖ / ‖s_θ‖)², the norms
        averaged over the batch (a per-example ratio explodes where one score is near 0)."""
        grad = self.score(x, t, y, self.guidance)
        noise = self._noise(x, generator)
        n = len(x)
        grad_norm = grad.reshape(n, -1).norm(dim=1).mean()
        noise_norm = noise.reshape(n, -1).norm(dim=1).mean()
        step = 2.0 * (snr * noise_norm / grad_norm.clamp_min(torch.finfo(x.dtype).tiny)) ** 2
        return x + step * grad + (2.0 * step).sqrt() * noise

    @torch.no_grad()
    def euler_maruyama(
        self,
        n: int,
        y: Tensor | None = None,
        generator: torch.Generator | None = None,
        *,
        steps: int | None = None,
    ) -> Tensor:
        """The reverse-time SDE by Euler–Maruyama over ``steps`` (default
        ``sampling_steps``) steps from t = 1 to ε (equal on the clock s, see :meth:`time`),
        starting from the prior; returns the last step's mean (no noise added at the end,
        as Song et al.), in model units (n, *event)."""
        return self.predictor_corrector(n, y, generator, steps=steps, corrector_steps=0)

    @torch.no_grad()
    def predictor_corrector(
        self,
        n: int,
        y: Tensor | None = None,
        generator: torch.Generator | None = None,
        *,
        steps: int | None = None,
        corrector_steps: int | None = None,
        snr: float | None = None,
    ) -> Tensor:
        """Predictor–corrector sampling (Song et al., Algorithm 1 with an Euler–Maruyama
        predictor): at each of ``steps`` times from 1 down, ``corrector_steps`` Langevin
        steps x ← x + η s_θ + √(2η) z with η = 2 (r ‖z‖/‖s_θ‖)² (r = ``snr``; the norms
        averaged over the batch, as Song et al.'s code does, so the step size, and through
        it a sample, depends on the batch), then one reverse-SDE step. Returns the last
        predictor's mean in model units (n, *event)."""
        steps = self.sampling_steps if steps is None else steps
        k = self.corrector_steps if corrector_steps is None else corrector_steps
        snr = self.snr if snr is None else snr
        x = self.prior_sample(n, generator)
        times = self._grid(steps)
        mean = x
        for i in range(steps):
            t, dt = times[i], times[i] - times[i + 1]
            for _ in range(k):
                x = self._corrector(x, t, y, generator, snr)
            x, mean = self._predictor(x, t, dt, y, generator)
        return mean

    @sampled
    def sample(
        self, n: int, y: Tensor | None = None, generator: torch.Generator | None = None
    ) -> Tensor:
        """n draws in data units (reals, or levels for discrete data) by ``sampler``."""
        if self.sampler == "ode":
            z = self.path(n, y, generator)[-1]
        elif self.sampler == "euler-maruyama":
            z = self.euler_maruyama(n, y, generator)
        else:
            z = self.predictor_corrector(n, y, generator)
        return self.from_unit(z, generator)


# ---------------------------------------------------------------------------------------
# Estimator level


class ScoreSDE(ContinuousTimeModel):
    """Score-based generative model through an SDE (Song et al. 2021): a score network
    trained by denoising score matching under a VP, sub-VP or VE SDE, sampled by the
    reverse-time SDE or the probability-flow ODE, with the ODE's likelihood.

    The module is :class:`ScoreSDEDensity`: an MLP for vectors, the U-Net for image-shaped
    data (``architecture="auto"``); continuous data are standardised (the Jacobian goes into
    the score), discrete levels k of K are dequantised into [−1, 1] (``dequantization``:
    uniformly in each level's cell, or around its centre with a decoder in the model).

    What it reports (``score_samples``, nats per example): log p(x) of the probability-flow
    ODE from t = ε = 1e-5 to 1 by the instantaneous change of variables (FFJORD), with the
    SDE's prior at t = 1. On continuous data with the exact divergence (``"auto"`` below 17
    dimensions) that is the *exact* log-density of the ODE's model up to the solver's error
    (``likelihood_ = "exact"``; its standard error is 0); with Hutchinson's divergence
    (``"auto"`` above, ``n_probes`` Rademacher probes per example) it is an unbiased
    *estimate* of it, with its standard error. On discrete data it is an estimate of a
    dequantisation bound on log P(k) in discrete units (mean over ``n_dequant_samples``
    draws, with its error; :mod:`ptheta.models.continuous`). Every probe and
    dequantisation draw is a function of (``random_state``, the example): with a fixed-grid
    solver a score does not depend on the rest of the batch; the adaptive ``dopri5`` shares
    one step sequence across a batch, so a score moves within the tolerance with it.
    ``nll_summary`` states the solver, tolerance or steps, the NFE of the last solve, the
    divergence and the SDE. ``guidance`` changes sampling only, never a likelihood.

    Sampling (``sampler``): ``"ode"`` (the probability-flow ODE with ``ode_solver``: the
    model whose likelihood is reported), ``"euler-maruyama"`` (the reverse SDE in
    ``sampling_steps`` steps) or ``"pc"`` (predictor–corrector: ``corrector_steps`` Langevin
    steps at signal-to-noise ratio ``snr`` before each Euler–Maruyama step);
    :meth:`sample_ode`, :meth:`sample_euler_maruyama` and :meth:`sample_pc` choose
    explicitly. ``sample_paths`` returns the ODE's path from noise to data (frames equally
    spaced on the clock s of :meth:`ScoreSDEDensity.time`, denser near the data) and
    :meth:`score_field` the learned score ∇ₓ log p_t(x) in data units.

    Arguments:
        sde: ``"vp"`` (variance preserving), ``"subvp"`` or ``"ve"`` (variance exploding);
            see :mod:`ptheta.nn.sde`.
        beta_min, beta_max: the linear β(t) of VP and sub-VP (0.1 and 20).
        sigma_min, sigma_max: the σ(t) of VE, in model units; ``sigma_max=None`` takes the
            largest distance between two training examples (Song & Ermon 2020; over a
            seeded sample of 4096 of them in larger data sets), kept as ``sigma_max_``.
        architecture: ``"auto"`` (U-Net for image-shaped data, else MLP), ``"mlp"``,
            ``"unet"``.
        hidden: MLP width, or U-Net channels at full resolution; ``"auto"``: 32 channels
            for the U-Net, 64 units for the MLP (as ddpm; see ``hidden_``). The family
            trains in batches of 32 (``batch_size``, as ddpm: more steps in a budget).
        n_blocks: residual blocks of the MLP.
        class_conditional: fit p(x | y) with ``fit(X, y)``.
        p_uncond: label dropout in training (classifier-free guidance).
        time_sampling: how training draws t: ``"uniform"`` (t ~ U(ε, 1), Song et al.) or
            ``"mixed"`` (half of them t = ε + (1 − ε) u², u ~ U(0, 1): more small times).
            With 30 s of training ``"mixed"`` reached a test NLL of 1.72 nats against 1.88
            on 8gaussians and 0.94 against 1.04 on moons (the explorer preset takes it), the
            same on digits (2.200 against 2.198 bits/dim); in the first few dozen steps its
            tiny-t draws make training noisier.
        guidance: guidance weight w ≥ 0 of sampling.
        sampler: ``"ode"``, ``"euler-maruyama"`` or ``"pc"``.
        sampling_steps: steps of the SDE samplers.
        corrector_steps: Langevin steps per step of ``"pc"``.
        snr: the corrector's signal-to-noise ratio.
        ode_solver, ode_steps, ode_rtol, ode_atol: how the ODE is integrated: by default a
            fixed grid of 32 ``"rk4"`` steps on the warped clock (within 0.005 nats of a
            tight ``dopri5`` solve on a fitted 2-D model, and a score that depends on its
            example alone); also ``"heun2"``, ``"midpoint"``, ``"euler"``, or the adaptive
            ``"dopri5"`` with its tolerances ``ode_rtol`` and ``ode_atol``.
        divergence: ``"auto"``, ``"exact"`` or ``"hutchinson"``.
        n_probes: Hutchinson probes per example on continuous data.
        n_dequant_samples: dequantisation draws per example on discrete data.
        dequantization: how discrete data become reals: ``"uniform"`` (k + u, u ~ U[0, 1)),
            ``"gaussian"`` (c_k + σ ε around each level's centre, with the decoder P(k | z)
            in the model: see :mod:`ptheta.models.continuous`) or ``"auto"``
            (``"gaussian"`` on binary data, ``"uniform"`` on more levels; see
            ``dequantization_``). On 28×28 binary digits in five CPU minutes (32 channels,
            batches of 32) flow-matching's bound went from 216.9 nats (uniform) to 100.9
            (Gaussian); see the README for score-sde's. On digits 8×8 (17 levels) the two
            were level (flow-matching, σ = 0.25 of a cell).
        **training: the shared training arguments of :class:`NeuralModel`.

    Example:
        >>> import numpy as np
        >>> from ptheta.models.score_sde import ScoreSDE
        >>> x = np.random.default_rng(0).normal(size=(100, 2))
        >>> model = ScoreSDE(hidden=8, epochs=2, ode_solver="rk4", ode_steps=4, device="cpu")
        >>> s = model.fit(x).score_samples(x[:3])
        >>> s.shape, model.likelihood_, model.nll_summary(x[:5])["nfe"]
        ((3,), 'exact', 16)
        >>> model.sample_pc(2, 5, random_state=0).shape, model.score_field(x[:4]).shape
        ((2, 2), (4, 2))

    References:
        Song, Sohl-Dickstein, Kingma, Kumar, Ermon & Poole (2021), Score-Based Generative
        Modeling through Stochastic Differential Equations, ICLR; Song & Ermon (2020),
        Improved Techniques for Training Score-Based Generative Models, NeurIPS; Grathwohl et
        al. (2019), FFJORD, ICLR; Ho & Salimans (2021), Classifier-Free Diffusion Guidance.
    """

    name: ClassVar[str] = "score-sde"
    family: ClassVar[str] = "score-based"
    abilities: ClassVar[dict[str, Any]] = {"score_field": True, "sample_paths": "ode"}
    quick_params: ClassVar[dict[str, Any]] = {
        "hidden": 16,
        "n_blocks": 1,
        "epochs": 3,
        "batch_size": 32,
        "lr": 1e-2,
        "ode_solver": "rk4",
        "ode_steps": 4,
        "sampling_steps": 20,
        "n_probes": 2,
        "n_dequant_samples": 2,
        "dtype": "float64",
        "device": "cpu",
    }
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        # no "demo" preset: ddpm already stands for diffusion in `ptheta demo`, and scoring
        # the digits test split through the ODE takes about a minute on two cores. On
        # digits: hidden=32, epochs=50, lr=2e-3, ode_steps=25, n_dequant_samples=2 (a fixed
        # rk4 grid bounds the scoring time: NFE = 4 · steps, within 0.1 nats of dopri5)
        # 2-D toys: large batches, 60 s; 20 rk4 steps are within 0.005 nats of dopri5
        "explorer": {
            "time_sampling": "mixed",
            "hidden": 64,
            "epochs": 400,
            "batch_size": 512,
            "lr": 1e-2,
            "patience": None,
            "max_time": 60,
            "ode_solver": "rk4",
            "ode_steps": 20,
        },
        "explorer-quick": {
            "hidden": 16,
            "n_blocks": 1,
            "ode_solver": "rk4",
            "ode_steps": 6,
            **EXPLORER_QUICK,
        },
    }
    parameters: ClassVar[dict[str, Param]] = {
        "sde": Choice(*SDES),
        "beta_min": Float(low=0, low_open=True),
        "beta_max": Float(low=0, low_open=True),
        "sigma_min": Float(low=0, low_open=True),
        "sigma_max": Float(low=0, low_open=True, none=True, hint="None: from the data"),
        "p_uncond": Float(low=0, high=1, high_open=True),
        "time_sampling": Choice(*TIME_SAMPLINGS),
        "sampler": Choice(*SAMPLERS),
        "sampling_steps": Int(low=1),
        "corrector_steps": Int(low=0),
        "snr": Float(low=0, low_open=True),
    }

    def __init__(
        self,
        sde: str = "vp",
        *,
        beta_min: float = 0.1,
        beta_max: float = 20.0,
        sigma_min: float = 0.01,
        sigma_max: float | None = None,
        architecture: str = "auto",
        hidden: int | str = "auto",
        n_blocks: int = 2,
        class_conditional: bool = False,
        p_uncond: float = 0.1,
        time_sampling: str = "uniform",
        guidance: float = 0.0,
        sampler: str = "ode",
        sampling_steps: int = 500,
        corrector_steps: int = 1,
        snr: float = 0.16,
        ode_solver: str = "rk4",
        ode_steps: int = 32,
        ode_rtol: float = 1e-5,
        ode_atol: float = 1e-5,
        divergence: str = "auto",
        n_probes: int = 4,
        n_dequant_samples: int = 4,
        dequantization: str = "auto",
        **training: Any,
    ) -> None:
        super().__init__(**{**DIFFUSION_TRAINING, **training})
        self.dequantization = dequantization
        self.sde = sde
        self.beta_min = beta_min
        self.beta_max = beta_max
        self.sigma_min = sigma_min
        self.sigma_max = sigma_max
        self.architecture = architecture
        self.hidden = hidden
        self.n_blocks = n_blocks
        self.class_conditional = class_conditional
        self.p_uncond = p_uncond
        self.time_sampling = time_sampling
        self.guidance = guidance
        self.sampler = sampler
        self.sampling_steps = sampling_steps
        self.corrector_steps = corrector_steps
        self.snr = snr
        self.ode_solver = ode_solver
        self.ode_steps = ode_steps
        self.ode_rtol = ode_rtol
        self.ode_atol = ode_atol
        self.divergence = divergence
        self.n_probes = n_probes
        self.n_dequant_samples = n_dequant_samples

    # ----------------------------------------------------------------- building
    def _check_params_together(self, params: Any) -> None:
        super()._check_params_together(params)
        name = self.name
        if params["beta_max"] < params["beta_min"]:
            raise ParameterError(
                f"{name}: beta_max={params['beta_max']!r} must be at least "
                f"beta_min={params['beta_min']!r} (β(t) rises from beta_min to beta_max)"
            )
        sigma_max = params["sigma_max"]
        if sigma_max is not None and sigma_max <= params["sigma_min"]:
            raise ParameterError(
                f"{name}: sigma_max={sigma_max!r} must exceed sigma_min="
                f"{params['sigma_min']!r} (σ(t) grows from sigma_min to sigma_max); or set "
                "sigma_max=None to take it from the data"
            )

    def _sigma_max(self, spec: DataSpec) -> float:
        """σ_max of a VE SDE: the fitted ``sigma_max_``, the given ``sigma_max``, or (for an
        unfitted :meth:`build_module`) the diameter 2√D of [−1, 1]^D as a placeholder."""
        fitted = getattr(self, "sigma_max_", None)
        if fitted is not None:
            return float(fitted)
        if self.sigma_max is not None:
            return float(self.sigma_max)
        return max(2.0 * math.sqrt(spec.n_dims), 2.0 * self.sigma_min)

    def _build_module(self, spec: DataSpec, n_classes: int | None) -> ScoreSDEDensity:
        architecture, image = self._architecture(spec)
        config = self.config(
            architecture=architecture,
            image_shape=image,
            sigma_max=self._sigma_max(spec) if self.sde == "ve" else None,
            divergence=self._divergence(spec),
            dequantization=self._module_dequantization(spec),
            hidden=self._denoiser_width(architecture),
        )
        return ScoreSDEDensity.from_config(config, spec, n_classes)

    def _fit_stream(self, data: Source, y: np.ndarray | None, spec: DataSpec, **fit_params: Any):
        if self.sde == "ve":
            self.seed_ = self._seed()  # fixed before the sample draws from it
            self.sigma_max_ = self._choose_sigma_max(data, spec)
        super()._fit_stream(data, y, spec, **fit_params)

    def _choose_sigma_max(self, data: Source, spec: DataSpec) -> float:
        """The given ``sigma_max``, or the largest distance between two training examples
        in model units (values standardised with the moments of all the training data, or
        level centres (2k + 1)/K − 1), at least 1: over every example up to
        ``MAX_PAIRWISE_ROWS``, else over a seeded sample of that many (a lower bound on the
        true maximum), read a batch at a time (:func:`~ptheta.models.ncsn.seeded_rows`)."""
        if self.sigma_max is not None:
            return float(self.sigma_max)
        rows = seeded_rows(data, MAX_PAIRWISE_ROWS, self._seed())
        if spec.is_discrete:
            units = (2.0 * rows + 1.0) / spec.n_categories - 1.0
        else:
            shift, scale = streamed_location_scale(data)
            units = (rows - shift) / scale
        found = max(largest_pairwise_distance(units, seed=self._seed()), 1.0)
        if found <= self.sigma_min:
            raise ParameterError(
                f"{self.name}: sigma_min={self.sigma_min!r} must be below the sigma_max "
                f"{found:.4g} chosen from the data (the largest distance between two "
                "examples in model units); lower sigma_min or set sigma_max"
            )
        return found

    def _required_attributes(self) -> tuple[str, ...]:
        return ("sigma_max_",) if self.sde == "ve" else ()

    def likelihood_details(self) -> dict[str, Any]:
        details = super().likelihood_details()
        details.update(sde=self.sde, t_data=self._module.eps)
        return details

    # ----------------------------------------------------------------- sampling
    def _steps(self, steps: int | None) -> int:
        if steps is None:
            return int(self.sampling_steps)
        return check_int(self.name, "steps", steps, low=1)

    def sample_ode(
        self,
        n_samples: int = 1,
        *,
        y: Any = None,
        guidance: float | None = None,
        random_state: Any = None,
    ) -> np.ndarray:
        """Draw ``n_samples`` by the probability-flow ODE (``ode_solver``): samples of the
        model whose likelihood ``score_samples`` reports. Like :meth:`sample`."""
        self._check_fitted()
        w = self._guidance(guidance)
        with self._sampling(sampler="ode", guidance=w):
            return self.sample(n_samples, y=y, random_state=random_state)

    def sample_euler_maruyama(
        self,
        n_samples: int = 1,
        steps: int | None = None,
        *,
        y: Any = None,
        guidance: float | None = None,
        random_state: Any = None,
    ) -> np.ndarray:
        """Draw ``n_samples`` by the reverse-time SDE with Euler–Maruyama over ``steps``
        (None: ``sampling_steps``) equal steps. Like :meth:`sample`."""
        self._check_fitted()
        w, steps = self._guidance(guidance), self._steps(steps)
        with self._sampling(sampler="euler-maruyama", sampling_steps=steps, guidance=w):
            return self.sample(n_samples, y=y, random_state=random_state)

    def sample_pc(
        self,
        n_samples: int = 1,
        steps: int | None = None,
        *,
        corrector_steps: int | None = None,
        snr: float | None = None,
        y: Any = None,
        guidance: float | None = None,
        random_state: Any = None,
    ) -> np.ndarray:
        """Draw ``n_samples`` by predictor–corrector sampling: ``steps`` Euler–Maruyama
        steps (None: ``sampling_steps``), each after ``corrector_steps`` Langevin steps at
        signal-to-noise ratio ``snr`` (None: the model's). Like :meth:`sample`."""
        self._check_fitted()
        w, steps = self._guidance(guidance), self._steps(steps)
        k = self.corrector_steps if corrector_steps is None else corrector_steps
        k = check_int(self.name, "corrector_steps", k, low=0)
        r = check_float(self.name, "snr", self.snr if snr is None else snr, low=0, low_open=True)
        settings = dict(sampler="pc", sampling_steps=steps, corrector_steps=k, snr=r, guidance=w)
        with self._sampling(**settings):
            return self.sample(n_samples, y=y, random_state=random_state)

    # ----------------------------------------------------------------- the score field
    def score_field(self, X: Data, t: float | None = None, *, y: Any = None) -> np.ndarray:
        """The learned score ∇ₓ log p_t(x) at examples ``X``, in data units, X's shape.

        ``t`` in [ε, 1] (default ε = 1e-5, the data end: the score of the data smoothed by
        the kernel at ε). Continuous data: by the chain rule through the standardisation,
        ∇ₓ = ∇_z / input_scale_. Discrete data: levels k are read at the cell centres
        k + ½ of the dequantised density (c_k with Gaussian dequantisation), and the
        gradient is with respect to k + u (∇_z · 2/K). A class-conditional model takes
        ``y`` (one label or one per example) for ∇ log p_t(x | y); without it, the
        unconditional score its label dropout trained (refused when ``p_uncond=0``).
        """
        self._check_fitted()
        module, spec = self._module, self.fitted_spec
        if t is None:
            t = module.eps
        t = check_float(self.name, "t", t, low=module.eps, high=1.0)
        x = check_values(X, spec)
        labels = None
        if self._conditional():
            if y is not None:
                labels = self._class_index(y, len(x))
            elif not self.p_uncond:
                raise DataError(
                    f"this {self.name!r} was fitted with p_uncond=0, so it has no unconditional "
                    "score: pass y (one label or one per example)"
                )
        elif y is not None:
            raise CapabilityError(f"this {self.name!r} is not class-conditional; omit y")
        device = self._device()
        out = []
        for start in range(0, len(x), _FIELD_CHUNK):
            xt = self._tensors(x[start : start + _FIELD_CHUNK], None, spec)[0].to(device)
            u = None
            if spec.is_discrete:  # the cell's centre: k + ½, or c_k itself (Gaussian)
                centre = 0.0 if module.dequantization == "gaussian" else 0.5
                u = torch.full(xt.shape, centre, dtype=module._dtype, device=device)
            part = None
            if labels is not None:
                part = torch.as_tensor(labels[start : start + _FIELD_CHUNK], device=device)
            with torch.no_grad():
                s = module.score(module.to_unit(xt, u), t, part)
            out.append(s.double().cpu().numpy())
        score = np.concatenate(out).reshape(x.shape)
        if spec.is_discrete:
            return score * (2.0 / spec.n_categories)
        scale = getattr(self, "input_scale_", None)
        return score if scale is None else score / scale
