"""Baum–Welch's pieces for :mod:`ptheta.models.hmm`: emission densities, M-steps (end
probabilities included), initial posteriors and the checked starting values."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from scipy.special import gammaln
from sklearn.cluster import kmeans_plusplus

from ptheta.data.spec import DataSpec
from ptheta.errors import DataError, ParameterError
from ptheta.models.em import Params

_EPS = 10 * np.finfo(np.float64).eps
_TINY = np.finfo(np.float64).tiny
# End probabilities stay in [ε, 1 − ε]: an end (or a going on) never seen in training keeps
# a finite log-probability, and EM on the clipped interval still never lowers its objective.
_END_FLOOR = 1e-10
_LOG_2PI = math.log(2 * math.pi)
# What ``fit(X, initial=...)`` accepts per emission, in the order of EM's parameter tuple.
_INITIAL_KEYS = {
    "categorical": ("startprob", "transmat", "emissionprob"),
    "gaussian": ("startprob", "transmat", "means", "covars"),
    "gmm": ("startprob", "transmat", "weights", "means", "covars"),
}


def _logsumexp_last(x: np.ndarray) -> np.ndarray:
    """log Σ exp over the last (short) axis of ``x`` (..., M), one slice at a time (a
    reduction along a short last axis is many times slower in numpy)."""
    top = x[..., 0].copy()
    for j in range(1, x.shape[-1]):
        np.maximum(top, x[..., j], out=top)
    total = np.zeros_like(top)
    for j in range(x.shape[-1]):
        total += np.exp(x[..., j] - top)
    return top + np.log(total)


def _as_steps(x: np.ndarray) -> np.ndarray:
    """Examples (N, T, ...) as steps (N, T, F): the time axis first, the rest flattened."""
    return x.reshape(x.shape[0], x.shape[1], -1)


def _as_params(arrays: tuple[np.ndarray, ...]) -> Params:
    return tuple(torch.from_numpy(np.ascontiguousarray(a)) for a in arrays)


def _flat(cov: np.ndarray, c: int) -> np.ndarray:
    """Covariances (K, M, F[, F]) as (K·M, F[, F])."""
    return cov.reshape(c, *cov.shape[2:])


def _normalise(counts: np.ndarray) -> np.ndarray:
    """Rows along the last axis divided by their totals; an all-zero row becomes uniform."""
    total = counts.sum(axis=-1, keepdims=True)
    uniform = np.full_like(counts, 1.0 / counts.shape[-1])
    return np.where(total > 0, counts / np.maximum(total, _TINY), uniform)


def _log_dirichlet_norm(cells: int, alpha: float) -> float:
    """log of the normaliser of a Dirichlet(α + 1, …) density over ``cells`` cells."""
    return float(gammaln(cells * (alpha + 1)) - cells * gammaln(alpha + 1))


def _log_gauss(z: np.ndarray, means: np.ndarray, cov: np.ndarray, full: bool) -> np.ndarray:
    """log N(z_s; μ_c, Σ_c), shape (S, C), for z (S, F), means (C, F), cov (C, F[, F])."""
    f = z.shape[1]
    if full:
        try:
            chol = np.linalg.cholesky(cov)  # (C, F, F)
        except np.linalg.LinAlgError:
            raise DataError(
                "an hmm emission covariance is singular; raise min_covar or use "
                "covariance_type='diag'"
            ) from None
        diff = z[None] - means[:, None]  # (C, S, F)
        y = np.linalg.solve(chol, diff.transpose(0, 2, 1))  # L⁻¹ (z − μ), (C, F, S)
        maha = (y * y).sum(axis=1)  # (C, S)
        log_det = 2 * np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(axis=1)
        return (-0.5 * (f * _LOG_2PI + log_det[:, None] + maha)).T
    if np.any(cov <= 0):
        raise DataError("an hmm emission Gaussian has zero variance; raise min_covar")
    inv = 1.0 / cov  # (C, F)
    out = (z * z) @ inv.T  # (S, C): the Mahalanobis distance, expanded
    out -= 2 * (z @ (means * inv).T)
    out += (means * means * inv).sum(axis=1)
    np.maximum(out, 0.0, out=out)
    out += f * _LOG_2PI + np.log(cov).sum(axis=1)
    out *= -0.5
    return out


def _gauss_m_step(
    z: np.ndarray, w: np.ndarray, full: bool, smooth: float
) -> tuple[np.ndarray, np.ndarray]:
    """Means (C, F) and covariances (C, F[, F]) of steps z (S, F) weighted by w (S, C); a
    Gaussian without weight gets the standardised data's unit variance."""
    nk = w.sum(axis=0)  # (C,)
    means = (w.T @ z) / (nk[:, None] + _EPS)
    f = z.shape[1]
    if not full:
        # E[z²] − μ² by two products; where it cancels (a variance below 1e-6 of μ², so
        # fewer than ~10 digits left) the component is redone from the differences z − μ
        var = (w.T @ (z * z)) / (nk[:, None] + _EPS) - means * means
        for c in np.flatnonzero((var < 1e-6 * means * means).any(axis=1)):
            diff = z - means[c]
            var[c] = (w[:, c] @ (diff * diff)) / (nk[c] + _EPS)
        var = np.maximum(var, 0.0) + smooth
        var[nk <= _EPS] = 1.0
        return means, var
    covs = []
    for c in range(w.shape[1]):
        diff = z - means[c]  # (S, F): not E[zzᵀ] − μμᵀ, which cancels
        cov = (w[:, c, None] * diff).T @ diff / (nk[c] + _EPS) + smooth * np.eye(f)
        covs.append(cov if nk[c] > _EPS else np.eye(f))
    return means, np.stack(covs)


def _initial_posteriors(
    features: np.ndarray,
    k: int,
    n_mix: int,
    init: str,
    seed: np.random.SeedSequence,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Initial (γ (S, K), p(m | k, x_t) (S, K, M) or None when M = 1) from the steps'
    features (S, F'): each step softly assigned to its nearest k-means++ centre (0.9 on
    it, the rest spread), and, for M > 1, to the nearest of M k-means++ centres of the
    steps nearest to each state; or random."""
    rs = np.random.RandomState(seed.generate_state(1)[0])
    s = len(features)
    if init == "random":
        gamma = rs.uniform(size=(s, k))
        gamma /= gamma.sum(axis=1, keepdims=True)
        resp = None if n_mix == 1 else rs.uniform(size=(s, k, n_mix))
    else:
        nearest = _nearest(features, kmeans_plusplus(features, k, random_state=rs)[0])
        gamma = np.full((s, k), 0.1 / k)
        gamma[np.arange(s), nearest] += 0.9
        resp = None if n_mix == 1 else np.full((s, k, n_mix), 0.1 / n_mix)
        for state in range(k if n_mix > 1 else 0):
            own = features[nearest == state]
            own = own if len(own) >= n_mix else features
            centres, _ = kmeans_plusplus(own, n_mix, random_state=rs)
            resp[np.arange(s), state, _nearest(features, centres)] += 0.9
    if resp is not None:
        resp /= resp.sum(axis=2, keepdims=True)
    return gamma, resp


def _scatter(rows: np.ndarray, where: np.ndarray, fill: float = 0.0) -> np.ndarray:
    """``rows`` (S', ...) placed at the True entries of ``where`` (S,), ``fill`` elsewhere."""
    out = np.full((len(where), *rows.shape[1:]), fill)
    out[where] = rows
    return out


def _end_m_step(gamma: np.ndarray, last: np.ndarray, alpha: float) -> np.ndarray:
    """End probabilities e_k (K,) from the posteriors γ (T, N, K) (zero at padded steps) and
    the (T, N) mask of each sequence's last step: the expected ends in state k over the
    expected visits to k, each a Beta(α + 1, α + 1) MAP estimate, kept in [ε, 1 − ε]."""
    ends = gamma[last].sum(axis=0)  # (K,)
    visits = gamma.sum(axis=(0, 1))
    with np.errstate(invalid="ignore", divide="ignore"):
        end = (ends + alpha) / (visits + 2 * alpha)
    end = np.where(visits + 2 * alpha > 0, end, 0.5)  # a state never visited: no evidence
    return np.clip(end, _END_FLOOR, 1.0 - _END_FLOOR)


def _nearest(features: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """Index of the nearest centre (C, F') of every row of ``features`` (S, F')."""
    dist = (features * features).sum(1)[:, None] - 2 * features @ centres.T
    return (dist + (centres * centres).sum(1)).argmin(axis=1)


def _check_initial(
    initial: Mapping[str, Any] | None,
    emission: str,
    k: int,
    f: int,
    n_mix: int,
    full: bool,
    spec: DataSpec,
    shift: np.ndarray,
    scale: np.ndarray,
) -> dict[int, np.ndarray]:
    """The starting values of ``fit(X, initial=...)``, checked: {index in EM's parameter
    tuple: array in EM's units (standardised for Gaussians; GMM axes for the Gaussian)}."""
    if initial is None:
        return {}
    keys = _INITIAL_KEYS[emission]
    if not isinstance(initial, Mapping) or not set(initial) <= set(keys):
        raise ParameterError(
            f"hmm: initial must be a dict with keys among {', '.join(map(repr, keys))} for "
            f"emission={emission!r}, got {initial!r:.80}"
        )
    cov = (f, f) if full else (f,)
    mix = (n_mix,) if emission == "gmm" else ()
    shapes = {
        "startprob": (k,),
        "transmat": (k, k),
        "emissionprob": (k, f, int(spec.n_categories) if spec.is_discrete else 0),
        "weights": (k, n_mix),
        "means": (k, *mix, f),
        "covars": (k, *mix, *cov),
    }
    out: dict[int, np.ndarray] = {}
    for key, value in initial.items():
        try:
            a = np.array(value, dtype=np.float64)
        except (TypeError, ValueError):
            a = np.full(1, np.nan)
        if a.shape != shapes[key] or not np.isfinite(a).all():
            raise ParameterError(
                f"hmm: initial[{key!r}] must be a finite array of shape {shapes[key]}, got "
                f"shape {a.shape}"
            )
        if key in ("startprob", "transmat", "emissionprob", "weights"):
            if (a < 0).any() or not np.allclose(a.sum(axis=-1), 1.0, rtol=0, atol=1e-6):
                raise ParameterError(
                    f"hmm: initial[{key!r}] must hold probabilities summing to one along "
                    "its last axis"
                )
            a = a / a.sum(axis=-1, keepdims=True)
        elif key == "means":
            a = (a - shift) / scale
        else:  # covariances
            a = a / (np.outer(scale, scale) if full else scale**2)
            definite = (a > 0).all() if not full else _positive_definite(a)
            if not definite:
                what = "symmetric positive definite" if full else "positive"
                raise ParameterError(f"hmm: initial['covars'] must be {what}")
        if emission == "gaussian" and key in ("means", "covars"):
            a = a[:, None]  # one component per state
        out[keys.index(key)] = a
    if emission == "gaussian" and out:  # EM's tuple has the (unit) mixture weights at 2
        out = {i + (i >= 2): a for i, a in out.items()} | {2: np.ones((k, 1))}
    return out


def _positive_definite(cov: np.ndarray) -> bool:
    if not np.allclose(cov, np.swapaxes(cov, -1, -2)):
        return False
    try:
        np.linalg.cholesky(cov)
    except np.linalg.LinAlgError:
        return False
    return True
