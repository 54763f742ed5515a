"""Neural energy-based model: contrastive divergence with Langevin dynamics and a replay buffer.

Fitting streams (``capabilities().streams``): the standardisation (mean, standard
deviation) and the box of the replay buffer's noise (smallest and largest value of each
entry) are computed from the training data a batch at a time, under ``torchrun`` over every
process's share (:func:`streamed_range`), so a memory-mapped file never has to be read whole.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm as _spectral_norm

from ptheta.data.batch_stats import streamed_location_scale, streamed_range
from ptheta.data.spec import DataSpec, check_values
from ptheta.data.stream import Source
from ptheta.errors import ParameterError
from ptheta.models.neural import NeuralModel
from ptheta.nn.mlp import dense_layers
from ptheta.nn.shapes import batched, sampled
from ptheta.params import Bool, Choice, Config, Float, Int, Param

# seed of the validation chains (eval-mode loss): the same negatives every epoch
VALIDATION_SEED = 7919


class EnergyNetwork(nn.Module):
    """Energy E_θ(z) of standardised continuous data, with Langevin sampling (module level).

    The data are standardised inside: z = (x − shift) / scale. The density model is
    p(z) ∝ exp(−E_θ(z)); ``energy(x)`` = E_θ(standardise(x)). Negatives for training and
    samples come from stochastic-gradient Langevin dynamics in z:

        z_{k+1} = z_k − (step_size / 2) · ∇_z E_θ(z_k) + noise_scale · ε_k,   ε_k ~ N(0, I)

    with noise_scale = sqrt(step_size) for true Langevin dynamics, or smaller (the common
    "larger step, smaller noise" choice, which samples a colder distribution). ``loss``
    (training mode) takes chains from a replay buffer (a registered buffer, updated in
    place, so checkpoints hold it), restarts each with probability ``reinit`` from uniform
    noise over the box [low, high] of the standardised training data, runs
    ``langevin_steps`` steps, writes them back and returns per example

        E_θ(z+) − E_θ(z−) + energy_weight · (E_θ(z+)² + E_θ(z−)²).

    Training randomness comes from torch's global RNG; ``langevin`` and ``sample`` take a
    generator. In eval mode ``loss`` runs chains from noise seeded with ``VALIDATION_SEED``
    (buffer untouched), so validation compares epochs on the same draws.

    **No** ``log_prob``: exp(−E_θ) is unnormalised and its normaliser Z_θ is unknown, so the
    module has no ``log_prob`` attribute at all (``hasattr(net, "log_prob")`` is False: the
    Trainer scores modules with one); ``energy`` ranks examples as −log p would, up to the
    unknown constant log Z_θ. Shapes (:mod:`ptheta.nn.shapes`): ``energy`` and ``loss`` take
    x (*batch, *event_shape) of any float or integer dtype and return (*batch); ``sample``
    takes a sample shape.

    Arguments:
        event_shape: shape of one example: (D,) for ``"mlp"``, (C, H, W) for ``"cnn"``.
        architecture: ``"mlp"`` (SiLU layers) or ``"cnn"`` (3×3 convolutions, mean pool).
        hidden: units (mlp) or channels (cnn) per layer.
        n_layers: hidden layers.
        spectral_norm: spectral normalisation of every layer (a Lipschitz energy).
        langevin_steps, step_size, noise_scale, buffer_size, reinit, energy_weight: see above.
        sample_steps: Langevin steps of ``sample`` (from uniform noise).
        shift, scale: Tensors of ``event_shape``, the standardisation; low, high: the
            noise box in z. Defaults: 0, 1, −1, 1.

    Example:
        >>> import torch
        >>> from ptheta.models.ebm import EnergyNetwork
        >>> net = EnergyNetwork((2,), hidden=16, sample_steps=5)
        >>> net.energy(torch.randn(4, 2)).shape, net.sample(3, generator=torch.Generator()).shape
        (torch.Size([4]), torch.Size([3, 2]))

    References:
        Du & Mordatch (2019), Implicit generation and modeling with energy-based models,
        NeurIPS. Welling & Teh (2011), Bayesian learning via stochastic gradient Langevin
        dynamics. Nijkamp et al. (2019), On the anatomy of MCMC-based maximum likelihood
        learning of energy-based models.
    """

    # its loss does not measure fit: the Trainer records a validation loss, selects nothing
    validation_measures_fit = False

    @classmethod
    def from_config(
        cls, config: Config, spec: DataSpec, n_classes: int | None = None
    ) -> EnergyNetwork:
        """The network of an :class:`EBM`'s config (``architecture``, ``hidden``,
        ``n_layers``, ``spectral_norm``, ``langevin_steps``, ``step_size``,
        ``noise_scale``, ``buffer_size``, ``reinit``, ``energy_weight``,
        ``sample_steps``, and the ``shape``, ``shift``, ``scale``, ``low``, ``high`` the
        estimator took from the data)."""
        return cls(
            config.shape,
            architecture=config.architecture,
            hidden=config.hidden,
            n_layers=config.n_layers,
            spectral_norm=config.spectral_norm,
            langevin_steps=config.langevin_steps,
            step_size=config.step_size,
            noise_scale=config.noise_scale,
            buffer_size=config.buffer_size,
            reinit=config.reinit,
            energy_weight=config.energy_weight,
            sample_steps=config.sample_steps,
            shift=config.shift,
            scale=config.scale,
            low=config.low,
            high=config.high,
        )

    def __init__(
        self,
        event_shape: tuple[int, ...],
        *,
        architecture: str = "mlp",
        hidden: int = 128,
        n_layers: int = 2,
        spectral_norm: bool = False,
        langevin_steps: int = 20,
        step_size: float = 0.01,
        noise_scale: float | None = None,
        buffer_size: int = 10_000,
        reinit: float = 0.05,
        energy_weight: float = 0.1,
        sample_steps: int = 500,
        shift: Tensor | None = None,
        scale: Tensor | None = None,
        low: Tensor | None = None,
        high: Tensor | None = None,
    ) -> None:
        super().__init__()
        self.event_shape = tuple(event_shape)
        self.langevin_steps, self.step_size = langevin_steps, step_size
        self.noise_scale = math.sqrt(step_size) if noise_scale is None else noise_scale
        self.reinit, self.energy_weight, self.sample_steps = reinit, energy_weight, sample_steps
        norm = _spectral_norm if spectral_norm else (lambda layer: layer)
        layers: list[nn.Module] = []
        if architecture == "cnn":
            channels = self.event_shape[0]
            for _ in range(n_layers):
                layers += [norm(nn.Conv2d(channels, hidden, 3, padding=1)), nn.SiLU()]
                channels = hidden
            # mean over positions: works for any image size, even 2×3
            layers += [nn.Flatten(2), _Mean(), norm(nn.Linear(channels, 1))]
        else:
            sizes = [math.prod(self.event_shape), *[hidden] * n_layers]
            layers += [nn.Flatten(), *dense_layers(sizes, nn.SiLU, wrap=norm)]
            layers.append(norm(nn.Linear(sizes[-1], 1)))
        self.net = nn.Sequential(*layers)  # (B, *event_shape) → (B, 1); smooth for Langevin
        ones = torch.ones(self.event_shape)
        self.register_buffer("shift", ones * 0 if shift is None else torch.as_tensor(shift))
        self.register_buffer("scale", ones if scale is None else torch.as_tensor(scale))
        self.register_buffer("low", -ones if low is None else torch.as_tensor(low))
        self.register_buffer("high", ones if high is None else torch.as_tensor(high))
        self.register_buffer("buffer", self._noise(buffer_size))  # (buffer_size, *event_shape)

    def extra_repr(self) -> str:
        return (
            f"event_shape={self.event_shape}, langevin_steps={self.langevin_steps}, "
            f"step_size={self.step_size}, buffer_size={len(self.buffer)}, "
            f"sample_steps={self.sample_steps}"
        )

    def _noise(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        u = torch.rand((n, *self.event_shape), generator=generator, dtype=self.low.dtype,
                       device=self.low.device)  # fmt: skip
        return self.low + (self.high - self.low) * u  # uniform over the box in z

    def standardise(self, x: Tensor) -> Tensor:
        return (x.to(self.scale.dtype) - self.shift) / self.scale

    def net_energy(self, z: Tensor) -> Tensor:
        """E_θ(z) of standardised inputs, shape (N,)."""
        return self.net(z).squeeze(-1)

    @batched
    def energy(self, x: Tensor) -> Tensor:
        """E_θ(standardise(x)) of inputs in data units, shape (*batch); lower = more typical.

        In data units the density is exp(−E) / Z up to the constant Jacobian of the
        standardisation, so energies rank examples as log-densities do (shifted by a
        constant, unnormalised)."""
        return self.net_energy(self.standardise(x))

    def langevin(self, z: Tensor, steps: int, generator: torch.Generator | None = None) -> Tensor:
        """Run ``steps`` Langevin updates (class docstring) from ``z`` (N, *event_shape), in
        standardised units; returns the detached chains."""
        with torch.enable_grad():  # also when sampling under no_grad
            for _ in range(steps):
                z = z.detach().requires_grad_(True)
                (grad,) = torch.autograd.grad(self.net_energy(z).sum(), z)  # no weight grads
                eps = torch.randn(z.shape, generator=generator, dtype=z.dtype, device=z.device)
                z = z - 0.5 * self.step_size * grad + self.noise_scale * eps
        return z.detach()

    @batched
    def loss(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """Contrastive-divergence loss with regularisation per example, shape (*batch)."""
        z_pos = self.standardise(x)  # (B, *event_shape)
        if self.training:
            with torch.no_grad():
                idx = torch.randint(len(self.buffer), (len(x),), device=x.device)
                start = self.buffer[idx]
                restart = torch.rand(len(x), device=x.device) < self.reinit
                start[restart] = self._noise(int(restart.sum()))
            z_neg = self.langevin(start, self.langevin_steps)
            self.buffer[idx] = z_neg  # in place: the buffer is saved in checkpoints
        else:  # validation: the same seeded chains every epoch (common random numbers)
            gen = torch.Generator(device=z_pos.device).manual_seed(VALIDATION_SEED)
            z_neg = self.langevin(self._noise(len(x), gen), self.langevin_steps, gen)
        e_pos, e_neg = self.net_energy(z_pos), self.net_energy(z_neg)  # (B,), (B,)
        return e_pos - e_neg + self.energy_weight * (e_pos**2 + e_neg**2)

    @sampled
    @torch.no_grad()
    def sample(
        self, n: int, y: Tensor | None = None, generator: torch.Generator | None = None
    ) -> Tensor:
        """``sample_steps`` Langevin steps from uniform noise; (*sample_shape, *event_shape)
        in data units, for an int n, a tuple, or () for one."""
        z = self.langevin(self._noise(n, generator), self.sample_steps, generator)
        return z * self.scale + self.shift


class _Mean(nn.Module):
    def extra_repr(self) -> str:
        return "mean over the last axis"

    def forward(self, h: Tensor) -> Tensor:
        return h.mean(-1)  # (B, C, H·W) → (B, C)


class EBM(NeuralModel):
    """Neural energy-based model of continuous data: p(x) ∝ exp(−E_θ(x)), no likelihood.

    E_θ is an MLP or a small CNN on standardised data (see :class:`EnergyNetwork` for the
    exact Langevin update and loss). Trained by contrastive divergence with short-run
    Langevin chains kept in a replay buffer, through the shared Trainer (AdamW). The
    normalising constant is intractable, so ``score_samples`` and ``score`` are absent
    (``hasattr`` is False; reaching for one raises a CapabilityError that says so):
    use :meth:`energy` (lower = more typical) as an anomaly score and sample-based
    metrics for quality. Discrete data are refused (dequantise them first, or use a
    discrete family such as ``rbm``). No validation split by default
    (``validation_fraction=0``): the contrastive loss does not measure fit, so early
    stopping on it would pick arbitrary epochs; with validation data it watches the loss
    with fresh chains from noise.

    Arguments:
        architecture: ``"mlp"`` or ``"cnn"`` (image-shaped data (C, H, W), or flat data
            whose spec gives an image shape).
        hidden: units (mlp) or channels (cnn), an int: every layer has it.
        n_layers: hidden layers.
        spectral_norm: spectral normalisation of every layer.
        langevin_steps: Langevin steps per training step (from the replay buffer).
        step_size: step of the update z ← z − (step_size/2) ∇E(z) + noise_scale · ε.
        noise_scale: std of the noise; None: sqrt(step_size) (true Langevin).
        buffer_size: chains in the replay buffer.
        reinit: probability of restarting a chain from uniform noise.
        energy_weight: weight of the energy regulariser energy_weight · (E(x+)² + E(x−)²);
            was ``alpha``.
        sample_steps: Langevin steps from noise for ``sample``.
        **training: the shared training arguments (see ``ptheta.models.neural``).

    Fitted attributes:
        shift_, scale_: the standardisation (per element, event-shaped); low_, high_: the
        noise box in standardised units; module, history_.

    Example:
        >>> import ptheta
        >>> data = ptheta.datasets.load("toy2d-moons")
        >>> m = ptheta.make("ebm", epochs=2, device="cpu").fit(data.train)
        >>> m.energy(data.test.x[:5]).shape
        (5,)

    References:
        Du & Mordatch (2019), Implicit generation and modeling with energy-based models.
        Grathwohl et al. (2020), Your classifier is secretly an energy based model (the
        replay buffer with 5% restarts).
    """

    name: ClassVar[str] = "ebm"
    family: ClassVar[str] = "energy-based"
    likelihood: ClassVar[str] = "none"
    abilities: ClassVar[dict[str, Any]] = {
        "anomaly_score": "energy",
        "validation_measures_fit": False,
    }
    data_kinds: ClassVar[tuple[str, ...]] = ("continuous",)
    quick_params: ClassVar[dict[str, Any]] = {
        "hidden": 16,
        "epochs": 2,
        "langevin_steps": 5,
        "buffer_size": 100,
        "sample_steps": 10,
        "dtype": "float64",
        "device": "cpu",
    }

    validation_measures_fit = False  # its loss does not measure fit: no early stopping
    presets: ClassVar[dict[str, dict[str, Any]]] = {"explorer": {"max_time": 60}}
    parameters: ClassVar[dict[str, Param]] = {
        "architecture": Choice("mlp", "cnn"),
        "hidden": Int(low=1),
        "n_layers": Int(low=1),
        "spectral_norm": Bool(),
        "langevin_steps": Int(low=1),
        "step_size": Float(low=0, low_open=True),
        "noise_scale": Float(low=0, none=True, hint="None means sqrt(step_size)"),
        "buffer_size": Int(low=1),
        "reinit": Float(low=0, high=1),
        "energy_weight": Float(low=0),
        "sample_steps": Int(low=0),
    }
    renamed: ClassVar[dict[str, str]] = {"alpha": "energy_weight"}

    def __init__(
        self,
        architecture: str = "mlp",
        *,
        hidden: int = 128,
        n_layers: int = 2,
        spectral_norm: bool = False,
        langevin_steps: int = 20,
        step_size: float = 0.01,
        noise_scale: float | None = None,
        buffer_size: int = 10_000,
        reinit: float = 0.05,
        energy_weight: float = 0.1,
        sample_steps: int = 500,
        **training: Any,
    ) -> None:
        super().__init__(**{"validation_fraction": 0.0, **training})
        self.architecture = architecture
        self.hidden = hidden
        self.n_layers = n_layers
        self.spectral_norm = spectral_norm
        self.langevin_steps = langevin_steps
        self.step_size = step_size
        self.noise_scale = noise_scale
        self.buffer_size = buffer_size
        self.reinit = reinit
        self.energy_weight = energy_weight
        self.sample_steps = sample_steps

    def _kind_fix(self, spec: DataSpec) -> str:
        return (
            "dequantise it first (add uniform noise in [0, 1) to the levels), or use a "
            "discrete family (rbm for binary data)"
        )

    def _fit_stream(self, data: Source, y: np.ndarray | None, spec: DataSpec, **kw: Any) -> None:
        # the standardisation (a constant entry keeps scale 1) and the noise box, from
        # batches; (x − shift) / scale is increasing in x, so the box of the standardised
        # data is the standardised box of the data, exactly
        self.shift_, self.scale_ = streamed_location_scale(data)
        low, high = streamed_range(data)
        self.low_ = (low - self.shift_) / self.scale_
        self.high_ = (high - self.shift_) / self.scale_
        super()._fit_stream(data, y, spec, **kw)

    def _build_module(self, spec: DataSpec, n_classes: int | None) -> EnergyNetwork:
        name = self.name
        shape = spec.event_shape
        if self.architecture == "cnn":
            shape = spec.event_shape if len(spec.event_shape) == 3 else spec.image_shape
            if shape is None or len(shape) != 3:
                raise ParameterError(
                    f"{name}: architecture='cnn' needs image-shaped data (C, H, W), got event "
                    f"shape {spec.event_shape}; use architecture='mlp'"
                )

        def view(a: np.ndarray) -> Tensor:
            return torch.as_tensor(np.asarray(a, dtype=np.float64).reshape(shape))

        config = self.config(
            shape=shape,
            shift=view(self.shift_),
            scale=view(self.scale_),
            low=view(self.low_),
            high=view(self.high_),
        )
        module = EnergyNetwork.from_config(config, spec)
        return _Reshaped(module, spec.event_shape) if shape != spec.event_shape else module

    def _required_attributes(self) -> tuple[str, ...]:
        return ("shift_", "scale_", "low_", "high_")

    def _no_likelihood(self) -> str:
        # score_samples and score are absent (hasattr is False); this says why
        return (
            "'ebm' has no normalised likelihood (its log Z is intractable); use "
            "model.energy(X) as an anomaly score (lower = more typical), and sample-based "
            "metrics (Fréchet distance, MMD, precision/recall) to judge its samples"
        )

    @torch.no_grad()
    def energy(self, X: Any) -> np.ndarray:
        """Energy E_θ(standardise(x)) of each example, shape (N,); lower = more typical.

        The standardisation is a change of variable with a constant Jacobian, so in data
        units −energy is the log-density up to one unknown constant (log Z + Σ log scale):
        energies rank examples, they are not log-likelihoods.
        """
        self._check_fitted()
        x = check_values(X, self.fitted_spec)
        out = []
        for chunk in np.array_split(x, max(1, int(np.ceil(len(x) / 1024)))):
            xt = self._tensors(chunk, None, self.fitted_spec)[0].to(self._device())
            out.append(self._module.energy(xt).double().cpu().numpy())
        return np.concatenate(out)


class _Reshaped(nn.Module):
    """Views flat examples (N, D) as images for a CNN energy, and samples back as flat.

    Like :class:`EnergyNetwork`, it has no ``log_prob``; shapes as there.
    """

    def __init__(self, inner: EnergyNetwork, event_shape: tuple[int, ...]) -> None:
        super().__init__()
        self.inner, self.event_shape = inner, tuple(event_shape)

    def extra_repr(self) -> str:
        return f"event_shape={self.event_shape}"

    def _view(self, x: Tensor) -> Tensor:
        return x.reshape(len(x), *self.inner.event_shape)

    @batched
    def energy(self, x: Tensor) -> Tensor:
        return self.inner.energy(self._view(x))

    @batched
    def loss(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        return self.inner.loss(self._view(x))

    @sampled
    def sample(self, n: int, y: Tensor | None = None, generator: Any = None) -> Tensor:
        return self.inner.sample(n, generator=generator).reshape(n, *self.event_shape)
