"""2-D toy densities: samplers, and the exact log-density and entropy where they are known."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import numpy as np

Sampler = Callable[[int, np.random.Generator], np.ndarray]


def _sklearn_seed(rng: np.random.Generator) -> int:
    # scikit-learn's generators take an int seed, not a numpy Generator.
    return int(rng.integers(2**31 - 1))


def moons(n: int, rng: np.random.Generator) -> np.ndarray:
    """Two interleaved half circles (scikit-learn's `make_moons`, noise 0.05), centred and
    scaled to lie in about [-2, 2]²; returns (n, 2) float64."""
    from sklearn.datasets import make_moons  # on first use: `import ptheta` stays light

    x, _ = make_moons(n, noise=0.05, random_state=_sklearn_seed(rng))
    # make_moons spans about [-1, 2] x [-0.5, 1]: centre it, then stretch to the ±2 box.
    return ((x - [0.5, 0.25]) * 1.3).astype(np.float64)


def circles(n: int, rng: np.random.Generator) -> np.ndarray:
    """Two concentric rings of radius 2 and 1 (scikit-learn's `make_circles`, noise 0.05,
    factor 0.5, scaled by 2); returns (n, 2) float64."""
    from sklearn.datasets import make_circles

    x, _ = make_circles(n, noise=0.05, factor=0.5, random_state=_sklearn_seed(rng))
    return (2.0 * x).astype(np.float64)


# 8gaussians: equal-weight mixture of isotropic Gaussians centred on a circle of radius 2.
_G8_RADIUS = 2.0
_G8_STD = 0.2
_G8_ANGLES = np.arange(8) * (np.pi / 4)
_G8_CENTRES = _G8_RADIUS * np.stack([np.cos(_G8_ANGLES), np.sin(_G8_ANGLES)], axis=1)  # (8, 2)


def gaussians8(n: int, rng: np.random.Generator) -> np.ndarray:
    """Mixture of 8 Gaussians (std 0.2) with centres at angles k·π/4 on a circle of
    radius 2; returns (n, 2) float64."""
    k = rng.integers(8, size=n)
    return _G8_CENTRES[k] + _G8_STD * rng.standard_normal((n, 2))


def gaussians8_log_density(x: np.ndarray) -> np.ndarray:
    """Exact log-density (nats) of `gaussians8` at points `x` (N, 2); returns (N,)."""
    x = np.asarray(x, dtype=np.float64)
    sq = ((x[:, None, :] - _G8_CENTRES[None, :, :]) ** 2).sum(-1)  # (N, 8)
    log_comp = -0.5 * sq / _G8_STD**2 - math.log(2 * math.pi * _G8_STD**2)
    from scipy.special import logsumexp

    return logsumexp(log_comp, axis=1) - math.log(8)


@functools.lru_cache(maxsize=1)
def gaussians8_entropy() -> float:
    """Entropy (nats) of `gaussians8`, by quadrature (midpoint rule) on a fine grid.

    The mixture has no closed-form entropy. The grid covers every centre ± 8 std, with a
    step of std/20; for a smooth density decaying this fast the midpoint rule is accurate
    far beyond 1e-6, so the value is exact for every purpose here. Computed once, lazily.
    """
    h = _G8_STD / 20
    half = _G8_RADIUS + 8 * _G8_STD
    t = np.arange(-half + h / 2, half, h)
    gx, gy = np.meshgrid(t, t, indexing="ij")
    log_p = gaussians8_log_density(np.stack([gx.ravel(), gy.ravel()], axis=1))
    return float(-(np.exp(log_p) * log_p).sum() * h * h)


def checkerboard(n: int, rng: np.random.Generator) -> np.ndarray:
    """Uniform on the 8 black unit squares of a 4×4 board covering [-2, 2]² (density 1/8
    on them, 0 elsewhere); returns (n, 2) float64."""
    # Black squares are those with (column + row) even; pick one of the 8, then a point in it.
    cells = np.array([(i, j) for i in range(4) for j in range(4) if (i + j) % 2 == 0])
    k = rng.integers(len(cells), size=n)
    return cells[k] - 2.0 + rng.random((n, 2))


def checkerboard_log_density(x: np.ndarray) -> np.ndarray:
    """Exact log-density (nats) of `checkerboard` at `x` (N, 2): log(1/8) on the black
    squares, -inf elsewhere; returns (N,)."""
    x = np.asarray(x, dtype=np.float64)
    inside = np.all(np.abs(x) <= 2.0, axis=1)
    # clip so that the board's closed outer edge (x = 2) belongs to the last square
    cell = np.clip(np.floor(x + 2.0), 0, 3).astype(np.int64)
    black = inside & ((cell[:, 0] + cell[:, 1]) % 2 == 0)
    return np.where(black, -math.log(8), -np.inf)


CHECKERBOARD_ENTROPY = math.log(8)


def pinwheel(n: int, rng: np.random.Generator) -> np.ndarray:
    """Five curved arms: a Gaussian blob stretched along the radius, then twisted by an
    angle that grows with the distance from the centre; returns (n, 2) float64."""
    arm = rng.integers(5, size=n)
    radial = 1.0 + 0.3 * rng.standard_normal(n)
    tangential = 0.06 * rng.standard_normal(n)
    # The twist grows exponentially with the radius, which is what bends the arms.
    angle = 2 * np.pi * arm / 5 + 0.25 * np.exp(radial)
    c, s = np.cos(angle), np.sin(angle)
    pts = np.stack([c * radial - s * tangential, s * radial + c * tangential], axis=1)
    return 1.2 * pts


def spirals(n: int, rng: np.random.Generator) -> np.ndarray:
    """Two interleaved spirals (one the point reflection of the other) of 1.5 turns,
    reaching radius 2, with Gaussian noise of std 0.05; returns (n, 2) float64."""
    # sqrt(u) spreads the points evenly along the arm's length rather than its angle.
    theta = np.sqrt(rng.random(n)) * 3 * np.pi
    radius = 2.0 * theta / (3 * np.pi)
    pts = radius[:, None] * np.stack([np.cos(theta), np.sin(theta)], axis=1)
    sign = np.where(rng.random(n) < 0.5, 1.0, -1.0)
    return sign[:, None] * pts + 0.05 * rng.standard_normal((n, 2))


SAMPLERS: dict[str, Sampler] = {
    "moons": moons,
    "circles": circles,
    "8gaussians": gaussians8,
    "checkerboard": checkerboard,
    "pinwheel": pinwheel,
    "spirals": spirals,
}

LOG_DENSITIES: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "8gaussians": gaussians8_log_density,
    "checkerboard": checkerboard_log_density,
}

DESCRIPTIONS: dict[str, str] = {
    "moons": "two interleaved half circles (2-D toy)",
    "circles": "two concentric rings (2-D toy)",
    "8gaussians": "mixture of 8 Gaussians on a circle; exact density (2-D toy)",
    "checkerboard": "uniform on the black squares of a 4x4 board; exact density (2-D toy)",
    "pinwheel": "five curved arms (2-D toy)",
    "spirals": "two interleaved spirals (2-D toy)",
}


def entropy(name: str) -> float | None:
    """True entropy (nats) of toy density `name`, or None where it is not known."""
    if name == "checkerboard":
        return CHECKERBOARD_ENTROPY
    if name == "8gaussians":
        return gaussians8_entropy()
    return None
