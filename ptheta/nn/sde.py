"""The forward SDEs of score-based models: variance preserving (VP), sub-VP and variance
exploding (VE), with their perturbation kernels, priors and reverse-time drifts.

Each is a linear SDE on t ∈ [0, 1],

    dx = a(t) x dt + g(t) dW,

so that x(t) given the data x(0) is Gaussian, N(m(t) x(0), std(t)² I) (the *perturbation
kernel*), with m(t) = exp ∫₀ᵗ a and std(t)² solving the moment equation
d var/dt = 2 a(t) var + g(t)². The reverse-time SDE runs from t = 1 to 0 with drift
f(x, t) − g(t)² ∇ₓ log p_t(x); the *probability-flow ODE* dx/dt = f(x, t) − ½ g(t)²
∇ₓ log p_t(x) has the same marginals p_t (Song et al. 2021, eqs. 6 and 13).

- **VP** (DDPM in continuous time): β(t) = β_min + t (β_max − β_min), a = −½ β,
  g = √β; m(t) = exp(−½ B(t)), B(t) = ∫₀ᵗ β = β_min t + ½ t² (β_max − β_min), and
  std(t)² = 1 − exp(−B(t)). Prior N(0, I).
- **sub-VP**: the same drift, g(t)² = β(t) (1 − exp(−2 B(t))); std(t) = 1 − exp(−B(t)),
  below VP's everywhere. Prior N(0, I).
- **VE** (NCSN in continuous time): σ(t) = σ_min (σ_max/σ_min)ᵗ, a = 0,
  g(t) = σ(t) √(2 log(σ_max/σ_min)); m = 1 and std(t) = σ(t). As in Song et al., the
  process starts from the data already perturbed by N(0, σ_min² I) (var(0) = σ_min², so
  std(t)² = σ(t)² solves the moment equation exactly). Prior N(0, σ_max² I). σ_max is
  chosen from the data by Song & Ermon (2020)'s heuristic: the largest Euclidean distance
  between two training examples (:func:`largest_pairwise_distance`), so that the prior
  covers every path between data points.

Times ``t`` are floats, scalar tensors or (N,) tensors (one per example); coefficients
come back as tensors broadcast against x (N, *event) by :func:`expand_as`.

Example:
    >>> import torch
    >>> sde = VPSDE()
    >>> m, std = sde.kernel(torch.tensor(1.0, dtype=torch.float64))
    >>> round(float(m), 4), round(float(std), 4)  # nearly all signal gone at t = 1
    (0.0066, 1.0)
    >>> SubVPSDE().kernel(0.5)[1] < sde.kernel(0.5)[1]
    tensor(True)

References:
    Song, Sohl-Dickstein, Kingma, Kumar, Ermon & Poole (2021), Score-Based Generative
    Modeling through Stochastic Differential Equations, ICLR; Song & Ermon (2020), Improved
    Techniques for Training Score-Based Generative Models, NeurIPS.
"""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor

from ptheta.nn.ode import standard_normal_log_prob

SDES: tuple[str, ...] = ("vp", "subvp", "ve")
# Largest number of examples the σ_max heuristic compares pairwise (a seeded subset above).
MAX_PAIRWISE_ROWS = 4096


def _time(t: float | Tensor, like: Tensor | None = None) -> Tensor:
    if isinstance(t, Tensor):
        return t if like is None else t.to(dtype=like.dtype, device=like.device)
    if like is None:
        return torch.tensor(float(t), dtype=torch.float64)
    return torch.tensor(float(t), dtype=like.dtype, device=like.device)


def expand_as(c: Tensor, x: Tensor) -> Tensor:
    """A coefficient of a scalar t (shape ()) or of one t per example ((N,)) shaped to
    broadcast against x (N, *event)."""
    return c if c.dim() == 0 else c.reshape(-1, *[1] * (x.dim() - 1))


class SDE:
    """A linear forward SDE dx = a(t) x dt + g(t) dW on [0, 1] (see the module docstring).

    Subclasses give :meth:`drift_coefficient` a(t), :meth:`diffusion` g(t),
    :meth:`kernel` (m(t), std(t)) in closed form and :attr:`prior_std`.
    """

    name: ClassVar[str] = ""

    @property
    def prior_std(self) -> float:
        """The standard deviation of the prior N(0, prior_std² I) at t = 1."""
        raise NotImplementedError

    def drift_coefficient(self, t: float | Tensor) -> Tensor:
        """a(t), the drift is f(x, t) = a(t) x."""
        raise NotImplementedError

    def diffusion(self, t: float | Tensor) -> Tensor:
        """g(t)."""
        raise NotImplementedError

    def kernel(self, t: float | Tensor) -> tuple[Tensor, Tensor]:
        """(m(t), std(t)): x(t) | x(0) ~ N(m(t) x(0), std(t)² I)."""
        raise NotImplementedError

    def drift(self, x: Tensor, t: float | Tensor) -> Tensor:
        """f(x, t) = a(t) x, x's shape."""
        return expand_as(self.drift_coefficient(_time(t, x)), x) * x

    def marginal_std(self, t: float | Tensor) -> Tensor:
        """√(m(t)² + std(t)²): the scale of x(t) when the data have unit variance."""
        m, std = self.kernel(t)
        return (m**2 + std**2).sqrt()

    def prior_log_prob(self, z: Tensor) -> Tensor:
        """log N(z; 0, prior_std² I) per example, (N, *event) → (N,)."""
        return standard_normal_log_prob(z, self.prior_std)

    def prior_sample(
        self,
        shape: tuple[int, ...],
        generator: torch.Generator | None = None,
        *,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> Tensor:
        """Draws of the prior, ``shape`` = (n, *event)."""
        z = torch.randn(shape, generator=generator, dtype=dtype, device=device)
        return z * self.prior_std

    def reverse_drift(
        self, x: Tensor, t: float | Tensor, score: Tensor, *, probability_flow: bool = False
    ) -> Tensor:
        """dx/dt of the reverse-time SDE, f(x, t) − g(t)² score, or with
        ``probability_flow`` the probability-flow ODE's f(x, t) − ½ g(t)² score, given the
        score ∇ₓ log p_t(x) (x's shape)."""
        g2 = expand_as(self.diffusion(_time(t, x)) ** 2, x)
        return self.drift(x, t) - (0.5 if probability_flow else 1.0) * g2 * score

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.extra_repr()})"

    def extra_repr(self) -> str:
        return ""


class VPSDE(SDE):
    """Variance preserving: dx = −½ β(t) x dt + √β(t) dW, β linear from β_min to β_max.

    Arguments:
        beta_min, beta_max: β(0) and β(1) (defaults 0.1 and 20, Song et al.).
    """

    name: ClassVar[str] = "vp"

    def __init__(self, beta_min: float = 0.1, beta_max: float = 20.0) -> None:
        self.beta_min, self.beta_max = float(beta_min), float(beta_max)

    def extra_repr(self) -> str:
        return f"beta_min={self.beta_min}, beta_max={self.beta_max}"

    @property
    def prior_std(self) -> float:
        return 1.0

    def beta(self, t: float | Tensor) -> Tensor:
        """β(t)."""
        t = _time(t)
        return self.beta_min + t * (self.beta_max - self.beta_min)

    def integrated_beta(self, t: float | Tensor) -> Tensor:
        """B(t) = ∫₀ᵗ β(s) ds."""
        t = _time(t)
        return self.beta_min * t + 0.5 * t**2 * (self.beta_max - self.beta_min)

    def drift_coefficient(self, t: float | Tensor) -> Tensor:
        return -0.5 * self.beta(t)

    def diffusion(self, t: float | Tensor) -> Tensor:
        return self.beta(t).sqrt()

    def kernel(self, t: float | Tensor) -> tuple[Tensor, Tensor]:
        b = self.integrated_beta(t)
        return torch.exp(-0.5 * b), (-torch.expm1(-b)).sqrt()


class SubVPSDE(VPSDE):
    """sub-VP: VP's drift with g(t)² = β(t) (1 − e^{−2B(t)}); std(t) = 1 − e^{−B(t)} ≤ VP's.

    Arguments:
        beta_min, beta_max: as for :class:`VPSDE`.
    """

    name: ClassVar[str] = "subvp"

    def diffusion(self, t: float | Tensor) -> Tensor:
        return (self.beta(t) * -torch.expm1(-2.0 * self.integrated_beta(t))).sqrt()

    def kernel(self, t: float | Tensor) -> tuple[Tensor, Tensor]:
        b = self.integrated_beta(t)
        return torch.exp(-0.5 * b), -torch.expm1(-b)


class VESDE(SDE):
    """Variance exploding: dx = √(d σ(t)²/dt) dW, σ(t) = σ_min (σ_max/σ_min)ᵗ.

    Arguments:
        sigma_min: σ(0) (default 0.01).
        sigma_max: σ(1), the prior's standard deviation (see
            :func:`largest_pairwise_distance`); must exceed ``sigma_min``.
    """

    name: ClassVar[str] = "ve"

    def __init__(self, sigma_min: float = 0.01, sigma_max: float = 50.0) -> None:
        if not 0 < sigma_min < sigma_max:
            raise ValueError(f"need 0 < sigma_min < sigma_max, got {sigma_min}, {sigma_max}")
        self.sigma_min, self.sigma_max = float(sigma_min), float(sigma_max)
        self.log_ratio = math.log(self.sigma_max / self.sigma_min)

    def extra_repr(self) -> str:
        return f"sigma_min={self.sigma_min}, sigma_max={self.sigma_max:.4g}"

    @property
    def prior_std(self) -> float:
        return self.sigma_max

    def sigma(self, t: float | Tensor) -> Tensor:
        """σ(t)."""
        return self.sigma_min * torch.exp(_time(t) * self.log_ratio)

    def drift_coefficient(self, t: float | Tensor) -> Tensor:
        return torch.zeros_like(_time(t))

    def drift(self, x: Tensor, t: float | Tensor) -> Tensor:
        return torch.zeros_like(x)

    def diffusion(self, t: float | Tensor) -> Tensor:
        return self.sigma(t) * math.sqrt(2.0 * self.log_ratio)

    def kernel(self, t: float | Tensor) -> tuple[Tensor, Tensor]:
        sigma = self.sigma(t)
        return torch.ones_like(sigma), sigma


def make_sde(
    name: str,
    *,
    beta_min: float = 0.1,
    beta_max: float = 20.0,
    sigma_min: float = 0.01,
    sigma_max: float = 50.0,
) -> SDE:
    """The SDE called ``name`` (one of :data:`SDES`) with its parameters (the others are
    ignored)."""
    if name == "vp":
        return VPSDE(beta_min, beta_max)
    if name == "subvp":
        return SubVPSDE(beta_min, beta_max)
    if name == "ve":
        return VESDE(sigma_min, sigma_max)
    raise ValueError(f"sde must be one of {SDES}, got {name!r}")


def largest_pairwise_distance(x: np.ndarray, *, seed: int = 0) -> float:
    """The largest Euclidean distance between two rows of ``x`` (N, ...): σ_max of a VE
    SDE by Song & Ermon (2020)'s heuristic (technique 1). Above
    :data:`MAX_PAIRWISE_ROWS` rows, over a seeded random subset of that many (a lower
    bound on the true maximum).

    Example:
        >>> largest_pairwise_distance(np.array([[0.0, 0.0], [3.0, 4.0], [1.0, 1.0]]))
        5.0
    """
    flat = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    if len(flat) > MAX_PAIRWISE_ROWS:
        rows = np.random.default_rng(seed).choice(len(flat), MAX_PAIRWISE_ROWS, replace=False)
        flat = flat[rows]
    flat = flat - flat.mean(0)  # smaller numbers in the expansion below
    sq = (flat**2).sum(1)
    d2 = sq[:, None] + sq[None, :] - 2.0 * flat @ flat.T  # (N, N)
    return float(np.sqrt(max(d2.max(), 0.0)))
