"""Missing entries (NaN) in families that sum them out exactly: masks, one-hot codes and
the Gaussian conditionals EM needs.

Example:
    >>> import numpy as np
    >>> x = np.array([[0.0, np.nan], [1.0, 2.0], [np.nan, 1.0], [2.0, 0.0]])
    >>> [(rows.tolist(), seen.tolist()) for rows, seen in missing_patterns(x)]
    [([1, 3], [True, True]), ([0], [True, False]), ([2], [False, True])]
    >>> one_hot(np.array([[1.0, np.nan]]), 3).tolist()
    [[0.0, 1.0, 0.0, 0.0, 0.0, 0.0]]
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import torch
from scipy.linalg import solve_triangular


def missing_patterns(flat: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(rows, observed) for every distinct pattern of NaN entries in ``flat`` (N, D):
    the row indices sharing the pattern and the (D,) mask of their observed entries."""
    missing = np.isnan(flat)
    if not missing.any():
        yield np.arange(len(flat)), np.ones(flat.shape[1], dtype=bool)
        return
    patterns, inverse = np.unique(missing, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    for p, pattern in enumerate(patterns):
        yield np.flatnonzero(inverse == p), ~pattern


def one_hot(flat: np.ndarray, levels: int) -> np.ndarray:
    """One-hot codes (N, D·L) of values (N, D) in 0..L−1; a NaN (missing) entry gets an
    all-zero block, so its factor drops out of a product of categorical probabilities."""
    return (
        (flat[..., None] == np.arange(levels))
        .reshape(len(flat), flat.shape[1] * levels)
        .astype(np.float64)
    )


def gaussian_conditionals(
    z: np.ndarray, observed: np.ndarray, means: np.ndarray, covs: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What EM with missing entries needs of K Gaussians N(μ_k, Σ_k) on D features, for
    rows ``z`` (N, D) that share one pattern of observed entries ``observed`` (D,) bool.

    Returns ``(log_density, filled, extra)``:

    - ``log_density`` (N, K): log N(z_o; μ_k,o, Σ_k,oo), the density of the observed
      entries (the missing ones integrated out; 0 when nothing is observed);
    - ``filled`` (N, K, D): E[z | z_o, k], the observed entries as given and each
      missing one at its conditional mean μ_m + Σ_mo Σ_oo⁻¹ (z_o − μ_o);
    - ``extra`` (K, D, D): Cov[z | z_o, k], zero outside the missing block and
      Σ_mm − Σ_mo Σ_oo⁻¹ Σ_om inside it (the same for every row of the pattern).

    So E[z | z_o, k] = filled and E[z zᵀ | z_o, k] = filled filledᵀ + extra: the expected
    sufficient statistics of a Gaussian under its posterior (Ghahramani & Jordan 1994).
    A diagonal Σ is passed as a (K, D, D) diagonal matrix.

    Example:
        >>> cov = np.array([[[2.0, 1.0], [1.0, 2.0]]])
        >>> log_p, filled, extra = gaussian_conditionals(
        ...     np.array([[1.0, np.nan]]), np.array([True, False]), np.zeros((1, 2)), cov)
        >>> np.round(filled[0, 0], 12).tolist(), np.round(extra[0], 12).tolist()
        ([1.0, 0.5], [[0.0, 0.0], [0.0, 1.5]])
    """
    n, d = z.shape
    k = len(means)
    o, m = np.flatnonzero(observed), np.flatnonzero(~observed)
    filled = np.broadcast_to(np.where(observed, z, 0.0)[:, None, :], (n, k, d)).copy()
    extra = np.zeros((k, d, d))
    if len(o) == 0:
        filled[:] = means[None]
        extra[:] = covs
        return np.zeros((n, k)), filled, extra
    s_oo = covs[:, o[:, None], o]  # (K, O, O)
    chol = np.linalg.cholesky(s_oo)
    diff = z[:, o][None] - means[:, None, o]  # (K, N, O)
    # solve L w = diff per component: w = L⁻¹ (z_o − μ_o)
    w = np.stack([_lower_solve(chol[c], diff[c].T).T for c in range(k)])  # (K, N, O)
    log_det = 2.0 * np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(axis=1)  # (K,)
    log_density = -0.5 * ((w**2).sum(axis=2) + log_det[:, None] + len(o) * np.log(2 * np.pi))
    if len(m):
        s_mo = covs[:, m[:, None], o]  # (K, M, O)
        # gain Σ_mo Σ_oo⁻¹ through the factor: v = L⁻¹ Σ_om, so Σ_mo Σ_oo⁻¹ x = vᵀ L⁻¹ x
        v = np.stack([_lower_solve(chol[c], s_mo[c].T) for c in range(k)])  # (K, O, M)
        filled[:, :, m] = (means[:, None, m] + np.einsum("kom,kno->knm", v, w)).transpose(1, 0, 2)
        block = covs[:, m[:, None], m] - np.einsum("kom,kop->kmp", v, v)
        extra[:, m[:, None], m] = 0.5 * (block + block.transpose(0, 2, 1))
    return log_density.T, filled, extra


def _lower_solve(lower: np.ndarray, b: np.ndarray) -> np.ndarray:
    return solve_triangular(lower, b, lower=True)


def row_gaussian_conditionals(
    z: np.ndarray, means: np.ndarray, covs: np.ndarray, traces: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """:func:`gaussian_conditionals` for rows ``z`` (n, D) with any pattern of NaN each,
    all at once: per row and component (batched Cholesky factors in float64 torch).

    Row n's observed entries O select Σ_OO through M = P Σ P + (I − P), P = diag(O): M is
    Σ_OO on O and the identity elsewhere, so log det M = log det Σ_OO and, for d = P(z − μ),
    M⁻¹ d is Σ_OO⁻¹ d_O padded with zeros. Then E[z | z_O, k] = μ + Σ M⁻¹ d on the missing
    entries, and Cov[z | z_O, k] = Σ − Σ P M⁻¹ P Σ on the missing block. Returns
    ``(log_density (n, K), filled (n, K, D), extra (n, K, D, D), trace)``, ``trace``
    (n, K) = tr Σ_OO⁻¹ when ``traces`` (else None). Memory: n·K·D² floats a few times —
    callers pass chunks of rows.

    Example:
        >>> cov = np.array([[[2.0, 1.0], [1.0, 2.0]]])
        >>> z = np.array([[1.0, np.nan], [np.nan, np.nan], [1.0, 0.0]])
        >>> log_p, filled, extra, _ = row_gaussian_conditionals(z, np.zeros((1, 2)), cov)
        >>> np.round(filled[:, 0], 12).tolist(), np.round(extra[0, 0], 12).tolist()
        ([[1.0, 0.5], [0.0, 0.0], [1.0, 0.0]], [[0.0, 0.0], [0.0, 1.5]])
    """
    d = z.shape[1]
    seen = ~np.isnan(z)
    p = torch.as_tensor(seen, dtype=torch.float64)  # (n, D)
    sigma = torch.as_tensor(covs, dtype=torch.float64)  # (K, D, D)
    mu = torch.as_tensor(means, dtype=torch.float64)  # (K, D)
    values = torch.as_tensor(np.where(seen, z, 0.0), dtype=torch.float64)
    outer = p[:, None, :, None] * p[:, None, None, :]  # (n, 1, D, D)
    m = sigma[None] * outer + torch.diag_embed(1.0 - p)[:, None]  # (n, K, D, D)
    chol = torch.linalg.cholesky(m)
    diff = (values[:, None, :] - mu[None]) * p[:, None, :]  # (n, K, D)
    solved = torch.cholesky_solve(diff[..., None], chol)[..., 0]  # M⁻¹ d
    log_det = 2.0 * torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(-1)
    maha = (diff * solved).sum(-1)
    log_density = -0.5 * (maha + log_det + p.sum(1)[:, None] * math.log(2 * math.pi))
    gone = 1.0 - p
    mean = mu[None] + torch.einsum("kij,nkj->nki", sigma, solved)
    filled = torch.where(torch.as_tensor(seen)[:, None, :], values[:, None, :], mean)
    right = torch.cholesky_solve(p[:, None, :, None] * sigma[None], chol)  # M⁻¹ P Σ
    reduced = sigma[None] - torch.einsum("kij,nkjl->nkil", sigma, p[:, None, :, None] * right)
    extra = reduced * (gone[:, None, :, None] * gone[:, None, None, :])
    extra = 0.5 * (extra + extra.transpose(-1, -2))
    trace = None
    if traces:  # tr M⁻¹ = ‖L⁻¹‖², less one per missing entry
        inv = torch.linalg.solve_triangular(chol, torch.eye(d, dtype=torch.float64), upper=False)
        trace = ((inv**2).sum((-1, -2)) - gone.sum(1)[:, None]).numpy()
    return log_density.numpy(), filled.numpy(), extra.numpy(), trace
