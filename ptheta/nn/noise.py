"""Per-example noise and the Monte-Carlo errors of stochastic scores.

Stochastic scores (dequantisation, the DDPM bound, IWAE) draw their noise with
:func:`example_keys` and :func:`keyed_uniform` / :func:`keyed_normal`: every example's
noise is a fixed function of (the model's seed, the example's values), never of its
position in the batch or of its neighbours, so a row scores the same alone, in any batch
and in any order, and different examples get independent draws. The keys are a keyed
BLAKE2b hash of the row (hashlib); the draws are a counter-based splitmix64 stream per
key, vectorised over rows (numpy's bit generators draw one stream per generator object,
which costs a Python object per row).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor

# Offset of the seed of a model's scoring noise (IWAE, the DDPM bound): with the model's
# random_state and an example's values it keys that example's draws.
SCORE_SEED = 7919

_GOLDEN = 0x9E3779B97F4A7C15  # 2^64 / φ, the Weyl increment of splitmix64
_MASK64 = (1 << 64) - 1


def _splitmix64(z: np.ndarray) -> np.ndarray:
    """The splitmix64 output function, elementwise on uint64 (wrapping arithmetic)."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def example_keys(x: Tensor | np.ndarray, seed: int) -> np.ndarray:
    """One 64-bit key per example, a hash of (``seed``, the example's values), (N,) uint64.

    Values are hashed as float64 (so int and float copies of an example agree; −0.0 and
    0.0 too, and every NaN alike).
    """
    if isinstance(x, Tensor):
        x = x.detach().cpu().numpy()
    rows = np.asarray(x, dtype=np.float64).reshape(len(x), -1) + 0.0  # −0.0 → 0.0
    rows = np.ascontiguousarray(np.where(np.isnan(rows), np.nan, rows))
    salt = str(int(seed)).encode()[:64]
    digests = (hashlib.blake2b(r.tobytes(), digest_size=8, key=salt).digest() for r in rows)
    return np.fromiter((int.from_bytes(d, "little") for d in digests), np.uint64, len(rows))


def keyed_uniform(keys: np.ndarray, stream: int, shape: Sequence[int]) -> Tensor:
    """Uniforms in (0, 1), float64 (N, *shape) on the CPU: entry j of row i is a fixed
    function of (keys[i], stream, j), so each row's draws depend on its key alone.

    ``stream`` (an integer ≥ 0) names one use of the noise (a draw, a time step): different
    streams give independent-looking draws.
    """
    m = math.prod(shape)
    keys = np.asarray(keys, dtype=np.uint64)
    base = _splitmix64(keys + np.uint64((int(stream) * _GOLDEN + 1) & _MASK64))  # (N,)
    steps = np.arange(1, m + 1, dtype=np.uint64) * np.uint64(_GOLDEN)  # (M,), wraps
    bits = _splitmix64(base[:, None] + steps[None, :]) >> np.uint64(11)  # 53 random bits
    u = (bits.astype(np.float64) + 0.5) * 2.0**-53  # never 0 or 1
    return torch.from_numpy(u.reshape(len(keys), *shape))


def keyed_normal(keys: np.ndarray, stream: int, shape: Sequence[int]) -> Tensor:
    """Standard normals, float64 (N, *shape) on the CPU, as :func:`keyed_uniform`."""
    return torch.special.ndtri(keyed_uniform(keys, stream, shape))


def mean_and_stderr(draws: Tensor, dim: int = 0) -> tuple[Tensor, Tensor]:
    """Mean of i.i.d. draws along ``dim`` and its standard error s/√n (NaN for one draw)."""
    n = draws.shape[dim]
    if n < 2:
        mean = draws.mean(dim)
        return mean, torch.full_like(mean, math.nan)
    return draws.mean(dim), draws.std(dim) / math.sqrt(n)


def marginal_with_stderr(
    log_prob_with_std: Callable[[int], tuple[np.ndarray, np.ndarray]],
    log_prior: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """log Σ_c p(c) p(x | c) from per-class estimates, and its standard error, (N,) each.

    ``log_prob_with_std(c)`` gives (log p(x | c), its standard error) for class c. The error
    is Σ_c w_c se_c with w_c = p(c | x) (the delta method; a sum of standard errors, so it
    holds however the classes' draws are correlated).
    """
    parts = [log_prob_with_std(c) for c in range(len(log_prior))]
    joint = np.stack([p[0] for p in parts], axis=1) + log_prior  # (N, C)
    se = np.stack([p[1] for p in parts], axis=1)
    total = np.logaddexp.reduce(joint, axis=1)
    return total, (np.exp(joint - total[:, None]) * se).sum(1)
