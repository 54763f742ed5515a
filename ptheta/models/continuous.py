"""What continuous-time families share: an ODE from noise to data, its likelihood by the
instantaneous change of variables, and its sampling paths.

A family here (``score-sde``'s probability-flow ODE, ``flow-matching``) is a module with a
velocity field v(z, t, y) in model units, the times of the data and of the noise, the
noise end's density and sampler, and a training loss. This file gives it the rest:

- **units**: continuous data are standardised by the estimator (the log-Jacobian goes into
  the score); discrete levels k of K become points of [−1, 1]: v = 2(k + u)/K − 1 with
  u ~ U[0, 1)^D (uniform dequantisation; training draws u afresh, scoring with keyed
  draws), so the density of k + u is p(v)·(2/K)^D; or (Gaussian dequantisation)
  v = c_k + σ ε around the cell's centre c_k = (2k + 1)/K − 1, σ =
  :data:`GAUSSIAN_DEQUANT_WIDTH` · 2/K, ε ~ N(0, I): the model is then z ~ p, k_d ~
  P(k_d | z_d) ∝ N(z_d; c_k, σ²) (a decoder), q(z | k) = N(c_k, σ² I), and
  log p(z) − Σ_d log Σ_j N(z_d; c_j, σ²) at z ~ q is the evidence lower bound
  E_q[log p(z) + log P(k | z) − log q(z | k)] ≤ log P(k) (the decoder's numerator cancels
  q); sampling draws k from the decoder. Cells with no sharp edges are easier for a
  smooth field to fit than uniform boxes (see :data:`GAUSSIAN_DEQUANT_WIDTH`);
- **likelihood** (:meth:`ContinuousTimeDensity.log_prob_with_std`): log p by
  :func:`ptheta.nn.ode.log_prob` with the exact divergence (``"exact"`` up to the ODE
  solver's error: controlled by ``rtol``/``atol`` with ``dopri5``, not bounded on a fixed
  grid — measured about 0.005 nats per example (at most 0.015) for 32 rk4 steps on fitted
  2-D models against dopri5 at 1e-7; raise ``ode_steps`` or use ``dopri5`` when it
  matters) or Hutchinson's estimator with keyed Rademacher probes (``"estimate"``,
  its error from ``n_probes`` solves). On discrete data the mean over
  ``n_dequant_samples`` dequantisation draws estimates a bound on log P(k): E_u log p(k +
  u) (uniform) or the evidence lower bound above (Gaussian), an *estimate* with its
  standard error, as for the flows.
  Every draw is a function of (the seed, the example): a score never depends on the batch
  (with a fixed-grid solver; the adaptive ``dopri5`` shares its steps across a batch);
- **sampling**: the ODE integrated from the noise end to the data end (discrete data: the
  cell the end falls in, or a level drawn from the decoder); :meth:`path`
  returns the frames in between.

Example:
    dz/dt = −z carries N(0, 1) at t = 0 to N(0, e⁻²) at t = 1, so with that noise end the
    ODE's log-density is the standard normal's:

    >>> import math, torch
    >>> from ptheta.nn.ode import ODESolver, standard_normal_log_prob
    >>> class Shrink(ContinuousTimeDensity):
    ...     def velocity(self, z, t, y=None, guidance=0.0):
    ...         return -z
    ...     def prior_log_prob(self, z):
    ...         return standard_normal_log_prob(z, math.exp(-1))
    >>> m = Shrink((2,), solver=ODESolver("rk4", steps=20)).double()
    >>> x = torch.tensor([[0.5, -1.0]], dtype=torch.float64)
    >>> lp, se = m.log_prob_with_std(x)
    >>> abs(float(lp - standard_normal_log_prob(x))) < 1e-6, float(se)
    (True, 0.0)
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from ptheta.data.spec import DataSpec
from ptheta.errors import ParameterError
from ptheta.models.neural import CONDITIONAL, NeuralModel
from ptheta.nn import ode
from ptheta.nn.noise import example_keys, keyed_normal, keyed_uniform, mean_and_stderr
from ptheta.nn.shapes import batched, sampled
from ptheta.nn.timenet import ARCHITECTURES
from ptheta.params import Choice, Float, Int, OneOf, Param

# "auto" divergence: exact (one gradient per dimension) up to this many dimensions
EXACT_DIVERGENCE_MAX_DIMS = 16
DEQUANTIZATIONS: tuple[str, ...] = ("uniform", "gaussian")
# σ of Gaussian dequantisation, in widths of a level's cell (2/K in model units). On 28×28
# binary digits in five CPU minutes (flow-matching, 32 channels, batches of 32; test bound
# on 20 rows) the bound went from 216.9 nats (uniform) to 107.8 / 100.9 / 108.4 / 133.3 /
# 263.2 at 0.1 / 0.15 / 0.2 / 0.25 / 0.4: wider, the decoder P(k | z) errs more often
# (|z − c| past half a cell); narrower, the field must be sharper. On digits 8×8 (17
# levels, 60 s) 0.25 was level with uniform (146.4 against 144.4 nats), so "auto" takes it
# on binary data only.
GAUSSIAN_DEQUANT_WIDTH = 0.15
DIVERGENCES: tuple[str, ...] = ("auto", *ode.DIVERGENCES)
_PROBE_STREAM = 1 << 20  # keyed streams of Hutchinson's probes, apart from dequantisation's
_SCORE_CHUNK = 512


class ContinuousTimeDensity(nn.Module):
    """A density defined by an ODE from a noise distribution to the data (module level).

    Subclasses set ``t_data`` and ``t_noise`` and implement :meth:`velocity`,
    :meth:`prior_log_prob`, :meth:`prior_sample` and :meth:`loss` (per example, in model
    units as given by :meth:`to_unit`).

    Arguments:
        event_shape: shape of one example.
        n_categories: K of discrete data; None: continuous.
        n_classes: classes of a class-conditional model; None: unconditional.
        solver: the ODE solver of likelihoods and samples.
        divergence: ``"exact"`` or ``"hutchinson"``.
        n_probes: Hutchinson probes per example on continuous data.
        n_dequant_samples: dequantisation draws per example on discrete data.
        guidance: classifier-free guidance weight of sampling (never of likelihoods).
        seed: with each example's values, keys its scoring noise.
        dequantization: ``"uniform"`` or ``"gaussian"`` (discrete data; see the module
            docstring).
    """

    validate_with_loss: ClassVar[bool] = True  # log_prob integrates an ODE: too slow
    t_data: ClassVar[float] = 0.0
    t_noise: ClassVar[float] = 1.0

    def __init__(
        self,
        event_shape: tuple[int, ...],
        *,
        n_categories: int | None = None,
        n_classes: int | None = None,
        solver: ode.ODESolver | None = None,
        divergence: str = "exact",
        n_probes: int = 1,
        n_dequant_samples: int = 1,
        guidance: float = 0.0,
        seed: int = 0,
        dequantization: str = "uniform",
    ) -> None:
        super().__init__()
        if divergence not in ode.DIVERGENCES:
            raise ParameterError(f"divergence must be one of {ode.DIVERGENCES}, got {divergence!r}")
        if dequantization not in DEQUANTIZATIONS:
            raise ParameterError(
                f"dequantization must be one of {DEQUANTIZATIONS}, got {dequantization!r}"
            )
        self.dequantization = dequantization
        self.event_shape = tuple(event_shape)
        self.n_dims = math.prod(self.event_shape)
        self.n_categories, self.n_classes = n_categories, n_classes
        self.solver = solver or ode.ODESolver()
        self.divergence = divergence
        self.n_probes, self.n_dequant_samples = n_probes, n_dequant_samples
        self.guidance, self.seed = guidance, seed
        self.last_nfe = 0  # function evaluations of the last ODE solve
        # carries the module's dtype and device even before a subclass adds parameters
        self.register_buffer("_anchor", torch.zeros(0), persistent=False)

    def extra_repr(self) -> str:
        parts = [f"event_shape={self.event_shape}"]
        if self.n_categories is not None:
            parts.append(f"n_categories={self.n_categories}, dequantization={self.dequantization}")
        if self.n_classes is not None:
            parts.append(f"n_classes={self.n_classes}")
        return ", ".join([*parts, f"solver={self.solver.solver}", f"divergence={self.divergence}"])

    # ----------------------------------------------------------------- to implement
    def velocity(
        self, z: Tensor, t: Tensor, y: Tensor | None = None, guidance: float = 0.0
    ) -> Tensor:
        """dz/dt at (z, t) in model units, z's shape; t a scalar tensor. ``guidance`` w
        (sampling only, class-conditional networks): the classifier-free guided field."""
        raise NotImplementedError

    def prior_log_prob(self, z: Tensor) -> Tensor:
        """log-density of the noise end, (N, *event) → (N,)."""
        raise NotImplementedError

    def prior_sample(self, n: int, generator: torch.Generator | None) -> Tensor:
        """n draws of the noise end, (n, *event) in the module's dtype and device."""
        raise NotImplementedError

    def loss(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """Per-example training loss (N,) of data x (levels or standardised reals)."""
        raise NotImplementedError

    # ----------------------------------------------------------------- units
    @property
    def _dtype(self) -> torch.dtype:
        return self._anchor.dtype

    def dequantization_noise(
        self, shape: tuple[int, ...], generator: torch.Generator | None = None
    ) -> Tensor:
        """Fresh noise of one dequantisation draw of ``shape`` (training): uniforms in
        [0, 1), or standard normals with Gaussian dequantisation."""
        draw = torch.randn if self.dequantization == "gaussian" else torch.rand
        return draw(shape, generator=generator, dtype=self._dtype, device=self._anchor.device)

    def _sigma(self) -> float:
        """σ of Gaussian dequantisation in model units (a level's cell is 2/K wide)."""
        return GAUSSIAN_DEQUANT_WIDTH * 2.0 / self.n_categories

    def to_unit(self, x: Tensor, u: Tensor | None = None) -> Tensor:
        """Data → model units: reals as they are; levels k to 2(k + u)/K − 1, or to
        c_k + σ u with Gaussian dequantisation (u fresh noise when None)."""
        if self.n_categories is None:
            return x.to(self._dtype)
        if u is None:
            u = self.dequantization_noise(tuple(x.shape)).to(x.device)
        k = self.n_categories
        if self.dequantization == "gaussian":
            return (2.0 * x.to(self._dtype) + 1.0) / k - 1.0 + self._sigma() * u
        return 2.0 * (x.to(self._dtype) + u) / k - 1.0

    def from_unit(self, z: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Model units → data: reals as they are; levels by the cell z falls in, or drawn
        from the decoder P(k | z) ∝ N(z; c_k, σ²) with Gaussian dequantisation."""
        if self.n_categories is None:
            return z
        k = self.n_categories
        if self.dequantization != "gaussian":
            return ((z + 1.0) * k / 2.0).floor().clamp(0, k - 1).long()
        best = torch.full_like(z, -math.inf)
        level = torch.zeros(z.shape, dtype=torch.long, device=z.device)
        for j in range(k):  # Gumbel-max over the levels, one (N, *E) array at a time
            u = torch.rand(z.shape, generator=generator, dtype=z.dtype, device=z.device)
            score = self._level_log_density(z, j) - torch.log(-torch.log(u))
            level = torch.where(score > best, j, level)
            best = torch.maximum(best, score)
        return level

    def _level_log_density(self, z: Tensor, j: int) -> Tensor:
        """log N(z; c_j, σ²) entrywise."""
        sigma, k = self._sigma(), self.n_categories
        centre = (2.0 * j + 1.0) / k - 1.0
        return -0.5 * ((z - centre) / sigma) ** 2 - math.log(sigma) - 0.5 * math.log(2 * math.pi)

    def _dequantization_term(self, z: Tensor) -> Tensor | float:
        """What turns log p(z) of a dequantised draw z (N, *E) into its term of the
        bound, (N,) or a number: D log(2/K) (log |dv/d(k + u)|) for uniform draws;
        −Σ_d log Σ_j N(z_d; c_j, σ²) for Gaussian ones (see the module docstring); 0 for
        continuous data."""
        if self.n_categories is None:
            return 0.0
        if self.dequantization != "gaussian":
            return self.n_dims * math.log(2.0 / self.n_categories)
        total = self._level_log_density(z, 0)
        for j in range(1, self.n_categories):  # log Σ_j, one (N, *E) array at a time
            total = torch.logaddexp(total, self._level_log_density(z, j))
        return -total.reshape(len(z), -1).sum(1)

    # ----------------------------------------------------------------- likelihood
    def _draws(self) -> int:
        if self.n_categories is not None:
            return self.n_dequant_samples
        return self.n_probes if self.divergence == "hutchinson" else 1

    def log_prob_draws(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """One ODE log-density per draw and example, (S, N) in x's units: S dequantisation
        draws (discrete) or Hutchinson probes (continuous), each keyed by the example."""
        keys = example_keys(x, self.seed)
        shape = self.event_shape
        out = []
        for s in range(self._draws()):
            u = None
            if self.n_categories is not None:
                keyed = keyed_normal if self.dequantization == "gaussian" else keyed_uniform
                u = keyed(keys, s, shape).to(device=x.device, dtype=self._dtype)
            probe = None
            if self.divergence == "hutchinson":  # Rademacher ±1: the lowest-variance probe
                r = keyed_uniform(keys, _PROBE_STREAM + s, shape)
                probe = torch.where(r < 0.5, -1.0, 1.0).to(device=x.device, dtype=self._dtype)
            z = self.to_unit(x, u)
            lp, _, nfe = ode.log_prob(
                lambda v, t: self.velocity(v, t, y),
                z,
                self.prior_log_prob,
                t_data=self.t_data,
                t_noise=self.t_noise,
                solver=self.solver,
                probe=probe,
            )
            self.last_nfe = nfe
            out.append(lp + self._dequantization_term(z))
        return torch.stack(out)

    @batched(outputs=2)
    def log_prob_with_std(self, x: Tensor, y: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """log p(x) per example and its Monte-Carlo standard error, (*batch) each for x
        (*batch, *event): exact divergence on continuous data gives zero error; otherwise
        the mean of the draws and its error (NaN with a single draw)."""
        draws = self.log_prob_draws(x, y)
        if len(draws) == 1 and self.n_categories is None and self.divergence == "exact":
            return draws[0], torch.zeros_like(draws[0])
        return mean_and_stderr(draws)

    @batched
    def log_prob(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """log p(x) per example, (*batch) for x (*batch, *event) (see
        :meth:`log_prob_with_std`)."""
        return self.log_prob_with_std(x, y)[0]

    # ----------------------------------------------------------------- sampling
    @torch.no_grad()
    def path(
        self,
        n: int,
        y: Tensor | None = None,
        generator: torch.Generator | None = None,
        n_frames: int = 2,
    ) -> Tensor:
        """The sampler's states from the noise end to the data end in model units,
        (n_frames, n, *event) (n_frames ≥ 2; the first frame is the noise)."""
        z0 = self.prior_sample(n, generator)
        out, nfe = ode.integrate(
            lambda z, t: self.velocity(z, t, y, self.guidance),
            z0,
            self.t_noise,
            self.t_data,
            solver=self.solver.solver,
            rtol=self.solver.rtol,
            atol=self.solver.atol,
            steps=self.solver.steps,
            n_frames=n_frames,
        )
        self.last_nfe = nfe
        return torch.stack([z0, out]) if n_frames <= 2 else out

    @sampled
    @torch.no_grad()
    def sample(
        self, n: int, y: Tensor | None = None, generator: torch.Generator | None = None
    ) -> Tensor:
        """Draws in data units (reals, or levels for discrete data), (*sample_shape,
        *event) for an int n, a tuple, or () for one example."""
        return self.from_unit(self.path(n, y, generator)[-1], generator)


class ContinuousTimeModel(NeuralModel):
    """Estimator-level base of the continuous-time families (see the module docstring).

    Subclasses implement ``_build_module`` returning a :class:`ContinuousTimeDensity`
    (with :meth:`_solver`, :meth:`_divergence` and :meth:`_architecture` to resolve the
    shared hyper-parameters) and declare their own ``parameters`` next to
    :data:`ContinuousTimeModel.parameters`.
    """

    likelihood: ClassVar[str] = "exact"  # continuous data, exact divergence: up to the ODE error
    data_kinds: ClassVar[tuple[str, ...]] = ("binary", "categorical", "continuous")
    standardize_input: ClassVar[bool] = True
    abilities: ClassVar[dict[str, Any]] = {"dequantises_discrete": True, "sample_paths": "ode"}
    parameters: ClassVar[dict[str, Param]] = {
        "architecture": Choice("auto", *ARCHITECTURES),
        "hidden": OneOf(Choice("auto"), Int(low=1)),
        "n_blocks": Int(low=1),
        "ode_solver": Choice(*ode.SOLVERS),
        "ode_steps": Int(low=1),
        "ode_rtol": Float(low=0, low_open=True),
        "ode_atol": Float(low=0, low_open=True),
        "divergence": Choice(*DIVERGENCES),
        "n_probes": Int(low=1),
        "n_dequant_samples": Int(low=1),
        "dequantization": Choice("auto", *DEQUANTIZATIONS),
        "guidance": Float(low=0),
        **CONDITIONAL,
    }

    # ----------------------------------------------------------------- resolved settings
    def _solver(self) -> ode.ODESolver:
        return ode.ODESolver(self.ode_solver, self.ode_rtol, self.ode_atol, self.ode_steps)

    def _divergence(self, spec: DataSpec) -> str:
        """The divergence the likelihood uses on data of ``spec`` ("auto": exact up to
        :data:`EXACT_DIVERGENCE_MAX_DIMS` dimensions, Hutchinson above)."""
        if self.divergence != "auto":
            return self.divergence
        return "exact" if spec.n_dims <= EXACT_DIVERGENCE_MAX_DIMS else "hutchinson"

    def _dequantization(self, spec: DataSpec) -> str:
        """How discrete data of ``spec`` are dequantised: the fit's (``dequantization_``: a
        loaded model rebuilds the model it scored with), else ``dequantization`` with
        ``"auto"`` resolved: ``"gaussian"`` on binary data (the measured case, see
        :data:`GAUSSIAN_DEQUANT_WIDTH`), ``"uniform"`` on more levels. Runs saved before
        the choice existed dequantised uniformly; continuous data: ``"none"``."""
        saved = getattr(self, "dequantization_", None)
        if saved is not None:
            return str(saved)
        if not spec.is_discrete:
            return "none"
        if getattr(self, "spec_", None) is not None:  # fitted before the attribute existed
            return "uniform"
        choice = self._params()["dequantization"]
        if choice != "auto":
            return choice
        return "gaussian" if spec.n_categories == 2 else "uniform"

    def _module_dequantization(self, spec: DataSpec) -> str:
        """The module's ``dequantization`` argument ("uniform" stands in for continuous
        data, which are not dequantised)."""
        found = self._dequantization(spec)
        return "uniform" if found == "none" else found

    def _fit_stream(self, data, y, spec, **fit_params) -> None:
        self.dequantization_ = self._dequantization(spec)
        self.hidden_ = self._denoiser_width(self._architecture(spec)[0])
        super()._fit_stream(data, y, spec, **fit_params)

    def _check_params_together(self, params: Any) -> None:
        if params["guidance"] and not params["class_conditional"]:
            raise ParameterError(
                f"{self.name}: guidance={params['guidance']!r} needs class_conditional=True "
                "(it mixes the conditional and unconditional fields); set guidance=0"
            )

    def _dequantised(self) -> bool:
        return self.fitted_spec.is_discrete

    def _fitted_likelihood(self, spec: DataSpec) -> str:
        # dequantisation draws or Hutchinson probes make the score a Monte-Carlo estimate
        if spec.is_discrete or self._divergence(spec) == "hutchinson":
            return "estimate"
        return "exact"

    # ----------------------------------------------------------------- scoring
    @torch.no_grad()
    def _log_prob_with_std(self, x: np.ndarray, label: int | None) -> tuple[np.ndarray, ...]:
        spec, device = self.fitted_spec, self._device()
        scores, errors = [], []
        for chunk in np.array_split(x, max(1, int(np.ceil(len(x) / _SCORE_CHUNK)))):
            xt = self._tensors(chunk, None, spec)[0].to(device)
            y = None if label is None else torch.full((len(xt),), label, device=device)
            lp, se = self._module.log_prob_with_std(xt, y)
            scores.append(lp.double().cpu().numpy())
            errors.append(se.double().cpu().numpy())
        return np.concatenate(scores), np.concatenate(errors)

    def _log_prob(self, x: np.ndarray, label: int | None) -> np.ndarray:
        return self._log_prob_with_std(x, label)[0]

    def likelihood_details(self) -> dict[str, Any]:
        module = self._module
        details = module.solver.details(module.last_nfe)
        details["divergence"] = module.divergence
        if module.divergence == "hutchinson" and module.n_categories is None:
            details["n_probes"] = module.n_probes
        if module.n_categories is not None:
            details["n_dequant_samples"] = module.n_dequant_samples
            details["dequantization"] = module.dequantization
        return details

    # ----------------------------------------------------------------- paths
    def sample_paths(
        self, n_samples: int, *, n_frames: int = 20, y: Any = None, random_state: Any = 0
    ) -> np.ndarray:
        """The ODE's path from noise to data for ``n_samples`` draws, (n_frames, n_samples,
        *event_shape) in data units (discrete data: the dequantised levels as reals, k + u,
        or k + ½ + the Gaussian noise in level units, before the last frame becomes samples:
        the cell it falls in, or levels drawn from the decoder)."""
        self._check_fitted()
        if not isinstance(n_frames, int) or n_frames < 2:
            raise ParameterError(f"n_frames must be an integer ≥ 2, got {n_frames!r}")
        if not isinstance(n_samples, int) or n_samples < 1:
            raise ParameterError(f"n_samples must be a positive integer, got {n_samples!r}")
        device = self._device()
        seed = int(np.random.default_rng(random_state).integers(2**62))
        generator = torch.Generator(device=device).manual_seed(seed)
        index = self._class_index(y, n_samples, why="the path depends on the class")
        labels = None if index is None else torch.as_tensor(index, device=device)
        frames = self._module.path(n_samples, labels, generator, n_frames).double().cpu().numpy()
        k = self.fitted_spec.n_categories if self.fitted_spec.is_discrete else None
        if k is not None:
            return (frames + 1.0) * k / 2.0
        return self._from_model_units(frames)
