"""Baum–Welch's pieces for :mod:`ptheta.models.hmm`: emission densities, initial posteriors,
the checked starting values, and :class:`BaumWelch`, the E-step's expected counts summed
over batches of sequences and the M-step (end probabilities included) from them, with
missing (NaN) entries marginalised in the E-step: observed level counts, and the expected
moments of Gaussians given each step's observed features."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
from scipy.special import gammaln
from sklearn.cluster import kmeans_plusplus

from ptheta.data.spec import DataSpec, location_scale
from ptheta.errors import DataError, ParameterError
from ptheta.models.em import Stats, blend_moments
from ptheta.models.hmm_inference import (
    _buffer,
    _forward_backward_time_major,
    _log,
    _loglik_time_major,
    fold_lengths,
    step_masks,
)
from ptheta.models.missing import gaussian_conditionals, missing_patterns, one_hot

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


def _log_gauss_observed(
    prep: dict[str, Any], means: np.ndarray, cov: np.ndarray, full: bool
) -> np.ndarray:
    """log N(z_s,O; μ_c,O, Σ_c,OO) of the observed entries O of each standardised step
    (``prep``'s z with NaN where missing), shape (S, C); 0 for a step with none observed."""
    if full:
        z = prep["z"]
        out = np.zeros((len(z), len(means)))
        for rows, obs in prep["patterns"]:
            if obs.any():
                sub = cov[:, obs][:, :, obs]
                out[rows] = _log_gauss(z[np.ix_(rows, obs)], means[:, obs], sub, True)
        return out
    if np.any(cov <= 0):
        raise DataError("an hmm emission Gaussian has zero variance; raise min_covar")
    # Σ_f o_f ((z_f − μ_f)² / σ²_f + log 2π σ²_f), expanded as in _log_gauss; o masks
    inv, observed, z0 = 1.0 / cov, prep["observed"], prep["z0"]
    out = prep["zz"] @ inv.T
    out -= 2 * (z0 @ (means * inv).T)
    out += observed @ (means * means * inv).T
    np.maximum(out, 0.0, out=out)
    out += observed @ (_LOG_2PI + np.log(cov)).T
    out *= -0.5
    return out


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


def _end_probs(ends: np.ndarray, visits: np.ndarray, alpha: float) -> np.ndarray:
    """End probabilities e_k (K,) from the expected ends in state k and the expected visits
    to k (each a Beta(α + 1, α + 1) MAP estimate), kept in [ε, 1 − ε]."""
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


def _check_observed(steps: np.ndarray, spec: DataSpec) -> np.ndarray | None:
    """The (S, F) mask of observed entries of the training steps ``steps`` (S, F), or None
    where none is missing; a DataError for a feature that is missing at every step (nothing
    to estimate its emissions or its standardisation from)."""
    if not np.issubdtype(steps.dtype, np.floating):
        return None
    missing = np.isnan(steps)
    if not missing.any():
        return None
    empty = np.flatnonzero(missing.all(axis=0))
    if len(empty):
        shape = spec.event_shape[1:]
        where = np.unravel_index(int(empty[0]), shape) if len(shape) > 1 else (int(empty[0]),)
        index = ", ".join(map(str, where))
        more = f"; so are {len(empty) - 1} other features" if len(empty) > 1 else ""
        raise DataError(
            f"hmm: feature [{index}] of each step has no observed value in the training data "
            f"(it is NaN at every step{more}); drop such features from the data"
        )
    return ~missing


def _positive_definite(cov: np.ndarray) -> bool:
    if not np.allclose(cov, np.swapaxes(cov, -1, -2)):
        return False
    try:
        np.linalg.cholesky(cov)
    except np.linalg.LinAlgError:
        return False
    return True


class BaumWelch:
    """Baum–Welch as an :class:`~ptheta.models.em.EMProblem`: the E-step's expected counts
    (forward–backward over a batch of sequences at once) summed over batches of sequences,
    the rows of the padded array, and the M-step from those sums.

    EM's parameters are a tuple of float64 arrays: π (K,), A (K, K), the emission's (θ
    (K, F, L); or mixture weights (K, M), means (K, M, F) and covariances (K, M, F[, F]) of
    the standardised steps z = (x − shift) / scale), then, for variable-length data, the
    end probabilities (K,). The examples EM's driver reads are the sequences' numbers, a
    source of shape (N, 1) (`ids`); each batch of them is looked up in ``x3`` here, its
    steps laid out time-major once (kept for the batches that come back every step).

    NaN entries of ``x3`` are missing: the emission factors are those of the observed
    features (a missing categorical entry points at a row of log 1; a Gaussian's density
    is that of the observed block), the log-Jacobian counts the observed entries only, and
    the sums are the observed level counts or the expected Gaussian moments (see
    :meth:`_posterior_sums`). A batch without NaN takes exactly the complete-data path.
    """

    def __init__(
        self,
        x3: np.ndarray,
        lengths: np.ndarray | None,
        spec: DataSpec,
        emission: str,
        *,
        k: int,
        n_mix: int,
        full: bool,
        smooth: float,
        alpha: float,
        init: str,
        initial: Mapping[str, Any] | None,
    ) -> None:
        n, t_len, f = x3.shape
        self.x3, self.lengths, self.emission = x3, lengths, emission
        self.n, self.t_len, self.f, self.k, self.n_mix = n, t_len, f, k, n_mix
        self.full, self.smooth, self.alpha, self.init_method = full, smooth, alpha, init
        steps = x3.transpose(1, 0, 2).reshape(t_len * n, f)  # (S, F), time-major: S = T·N
        real = steps if lengths is None else steps[step_masks(lengths, t_len)[0].T.ravel()]
        if k * n_mix > len(real):
            what = f"n_states={k}" + (f" × n_mix={n_mix}" if n_mix > 1 else "")
            raise DataError(
                f"{what} is more than the {len(real)} steps of the training data; "
                "use fewer states (or components) or more data"
            )
        seen = _check_observed(real, spec)  # (S, F) mask of observed entries, or None
        self.missing = seen is not None
        # log-normaliser of the Dirichlet(α + 1) priors on π and every row of A (and the
        # Beta(α + 1, α + 1) priors on the end probabilities)
        self.log_norm = (k + 1) * _log_dirichlet_norm(k, alpha)
        if lengths is not None:
            self.log_norm += k * _log_dirichlet_norm(2, alpha)
        if emission == "categorical":
            self.levels = int(spec.n_categories)
            self.log_norm += k * f * _log_dirichlet_norm(self.levels, alpha)
            self.shift, self.scale = np.zeros(f), np.ones(f)
        else:
            self.levels = 0
            if seen is None:
                self.shift, self.scale = location_scale(real)
            else:  # each feature's mean and spread over the steps where it is observed
                pairs = [location_scale(real[seen[:, j], j]) for j in range(f)]
                self.shift = np.array([float(a) for a, _ in pairs])
                self.scale = np.array([float(b) for _, b in pairs])
            self.log_norm += k * _log_dirichlet_norm(n_mix, alpha)
        self.log_scale = float(np.log(self.scale).sum())  # one step's log-Jacobian
        self.given = _check_initial(
            initial, emission, k, f, n_mix, full, spec, self.shift, self.scale
        )
        # EM's tuple: π, A, the emission's, then (variable length) the end probabilities
        self.n_params = (3 if emission == "categorical" else 5) + (lengths is not None)
        # sequences per batch of the E-step: about 2²² values in each (T, rows, K·M) array
        self.rows = max(1, 2**22 // (t_len * k * n_mix))
        self._prepared: dict[tuple[int, int], dict[str, Any]] = {}
        self._buffers: dict[int, dict[str, np.ndarray]] = {}  # per batch size

    # ----------------------------------------------------------------- batches
    def _prepare(self, ids: np.ndarray) -> dict[str, Any]:
        """The steps of sequences ``ids``, time-major: standardised z (T·b, F) or emission
        table indices (T·b, F), the (T, b) masks of real and of last steps (None for one
        length) and the sequences' summed log-Jacobian."""
        contiguous = len(ids) > 0 and ids[-1] - ids[0] == len(ids) - 1
        key = (int(ids[0]), len(ids)) if contiguous else None
        if key is not None and key in self._prepared:
            return self._prepared[key]
        t_len, f = self.t_len, self.f
        steps = self.x3[ids].transpose(1, 0, 2).reshape(t_len * len(ids), f)
        prep: dict[str, Any] = {"b": len(ids), "valid": None, "last": None, "missing": None}
        if self.lengths is not None:
            valid, last = step_masks(self.lengths[ids], t_len)
            prep["valid"], prep["last"] = valid.T, last.T  # (T, b) each
            prep["jacobian"] = -float(self.lengths[ids].sum()) * self.log_scale
        else:
            prep["jacobian"] = -float(t_len * len(ids)) * self.log_scale
        missing = np.isnan(steps) if self.missing else None
        if missing is not None and missing.any():
            # the Jacobian of the observed entries only: −Σ_t Σ_{f observed} log scale_f
            seen = ~missing if prep["valid"] is None else ~missing & prep["valid"].reshape(-1, 1)
            prep["jacobian"] = -float(seen.sum(axis=0) @ np.log(self.scale))
            prep["missing"] = missing
        if self.emission == "categorical":
            # each entry's index into the (F·L) emission table: gathers, not a one-hot (S, F·L)
            if prep["missing"] is None:
                codes = steps.astype(np.intp) + self.levels * np.arange(f)  # (S, F)
            else:  # a missing entry points at an extra row of zeros (factor one)
                codes = np.where(missing, 0, steps).astype(np.intp) + self.levels * np.arange(f)
                codes[missing] = f * self.levels
            prep["codes"], prep["steps"] = codes, steps
        else:
            z = (steps - self.shift) / self.scale  # (S, F) standardised steps
            if prep["missing"] is not None:
                # NaN where missing; z0 holds 0 there (the observed mean) for the products
                prep["observed"] = (~missing).astype(np.float64)
                prep["z0"] = np.where(missing, 0.0, z)
                prep["patterns"] = list(missing_patterns(z)) if self.full else None
            prep["z"] = z
            if not self.full:
                prep["zz"] = z * z if prep["missing"] is None else prep["z0"] ** 2
        if key is not None:
            self._prepared[key] = prep
        return prep

    def _log_emission(
        self, prep: dict[str, Any], params: tuple[np.ndarray, ...], buffers: dict[str, Any]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """(T, b, K) log emission factors, plain and those EM maximises (smoothed), and for
        the GMM the components' posteriors p(m | k, x_t) (S, K, M) under the latter."""
        k, n_mix, f, smooth = self.k, self.n_mix, self.f, self.smooth
        shape = (self.t_len, prep["b"], k)
        if self.emission == "categorical":
            codes = prep["codes"]
            table = np.ascontiguousarray(_log(params[2]).reshape(k, -1).T)  # (F·L, K)
            if prep["missing"] is not None:  # the row of a missing entry: log 1
                table = np.vstack([table, np.zeros((1, k))])
            plain = _buffer(buffers, "log_emit", (len(codes), k))
            np.take(table, codes[:, 0], axis=0, out=plain)
            for j in range(1, f):
                plain += table[codes[:, j]]
            plain = plain.reshape(shape)
            return plain, plain, None
        log_w, means, cov = _log(params[2]), params[3], params[4]
        means_c, cov_c = means.reshape(k * n_mix, f), _flat(cov, k * n_mix)
        if prep["missing"] is None:
            dens = _log_gauss(prep["z"], means_c, cov_c, self.full)
        else:
            dens = _log_gauss_observed(prep, means_c, cov_c, self.full)
        dens = dens.reshape(-1, k, n_mix)  # (S, K, M)
        smoothed_dens = dens
        if smooth > 0:
            trace_prec = (
                np.trace(np.linalg.inv(cov), axis1=2, axis2=3) if self.full else (1 / cov).sum(2)
            )  # (K, M)
            smoothed_dens = dens - 0.5 * smooth * trace_prec
        if n_mix == 1:
            plain, smoothed, resp = dens[:, :, 0], smoothed_dens[:, :, 0], None
        else:
            joint = smoothed_dens + log_w  # (S, K, M)
            smoothed = _logsumexp_last(joint)
            resp = np.exp(joint - smoothed[:, :, None])
            plain = smoothed if smooth == 0 else _logsumexp_last(dens + log_w)
        plain = plain.reshape(shape)
        return plain, plain if smooth == 0 else smoothed.reshape(shape), resp

    def _posterior_sums(
        self,
        prep: dict[str, Any],
        gamma: np.ndarray,
        xi: np.ndarray,
        resp: np.ndarray | None,
        ref: np.ndarray | None,
        cov: np.ndarray | None = None,
    ) -> dict[str, np.ndarray]:
        """The expected counts of a batch from its posteriors γ (T, b, K) (zero at padded
        steps), ξ (K, K) and, for the GMM, p(m | k, x_t) (S, K, M): starts, transitions,
        (variable length) ends and visits, and the emission's: level counts (K, F·L), or
        per Gaussian c the weight n_c, Σ q (z − r_c) and Σ q (z − r_c)(z − r_c)ᵀ (diagonal:
        Σ q (z − r_c)²) about ``ref`` r (C, F) (None: the weighted means themselves).

        With missing entries the level counts are those of the observed entries, and the
        Gaussians' moments are expected ones: z at its conditional mean E[z | z_O, c] and
        Cov[z | z_O, c] added to the second moment, under the Gaussians whose means are
        ``ref`` and covariances ``cov`` (C, F[, F]), the parameters of the E-step."""
        k, f = self.k, self.f
        out: dict[str, np.ndarray] = {"start": gamma[0].sum(axis=0), "trans": xi}
        if prep["last"] is not None:
            out["ends"] = gamma[prep["last"]].sum(axis=0)
            out["visits"] = gamma.sum(axis=(0, 1))
        w = gamma.reshape(-1, k)  # (S, K)
        if self.emission == "categorical":
            w_t, flat_codes = np.ascontiguousarray(w.T), prep["codes"].ravel()  # (K, S)
            cells = f * self.levels + (prep["missing"] is not None)  # missing: the last cell
            out["counts"] = np.stack(
                [
                    np.bincount(flat_codes, np.repeat(w_t[j], f) if f > 1 else w_t[j],
                                minlength=cells)[: f * self.levels]
                    for j in range(k)
                ]
            )  # fmt: skip
            return out
        q = w[:, :, None] if resp is None else w[:, :, None] * resp  # (S, K, M)
        q = q.reshape(len(w), -1)  # (S, C)
        if prep["missing"] is not None:
            assert ref is not None and cov is not None
            out["n"], out["ref"] = q.sum(axis=0), ref
            moments = self._expected_moments_full if self.full else self._expected_moments_diag
            out["first"], out["second"] = moments(prep, q, ref, cov)
            return out
        z, weight = prep["z"], q.sum(axis=0)  # (C,)
        qz = q.T @ z  # (C, F)
        if ref is None:
            ref = qz / (weight + _EPS)[:, None]
        out["n"], out["ref"] = weight, ref
        if self.full:
            first, second = np.empty_like(qz), np.empty((len(weight), f, f))
            for c in range(len(weight)):
                diff = z - ref[c]  # (S, F): not Σ q z zᵀ − n r rᵀ, which cancels
                weighted = q[:, c, None] * diff
                first[c], second[c] = weighted.sum(axis=0), weighted.T @ diff
        else:
            # Σ q (z − r)² = Σ q z² − 2 r Σ q z + n r², two products for every Gaussian;
            # where that cancels (the result below 1e-6 of Σ q z², fewer than ~10 digits
            # left) the Gaussian is redone from the differences z − r
            qzz = q.T @ prep["zz"]
            first = qz - weight[:, None] * ref
            second = qzz - 2 * ref * qz + weight[:, None] * ref * ref
            for c in np.flatnonzero((second < 1e-6 * qzz).any(axis=1)):
                diff = z - ref[c]
                first[c], second[c] = q[:, c] @ diff, q[:, c] @ (diff * diff)
        out["first"], out["second"] = first, second
        return out

    def _expected_moments_diag(
        self, prep: dict[str, Any], q: np.ndarray, ref: np.ndarray, var: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Σ_s q_sc E[z_s − r_c] and Σ_s q_sc E[(z_s − r_c)²] (C, F) given the observed
        entries, for diagonal Gaussians with means r and variances ``var`` (C, F): a missing
        entry is at the mean r_c with variance σ²_c (features are independent given c), so
        it adds 0 to the first sum and q σ²_c to the second."""
        observed, z0 = prep["observed"], prep["z0"]  # z0: 0 where missing
        seen = q.T @ observed  # (C, F): each Gaussian's weight on the observed entries
        unseen = q.sum(axis=0)[:, None] - seen
        qz, qzz = q.T @ z0, q.T @ prep["zz"]
        first = qz - seen * ref
        second = qzz - 2 * ref * qz + seen * ref * ref
        for c in np.flatnonzero((second < 1e-6 * qzz).any(axis=1)):  # cancelled: redone
            diff = observed * (z0 - ref[c])
            first[c], second[c] = q[:, c] @ diff, q[:, c] @ (diff * diff)
        return first, second + unseen * var

    def _expected_moments_full(
        self, prep: dict[str, Any], q: np.ndarray, ref: np.ndarray, cov: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Σ_s q_sc E[z_s − r_c] and Σ_s q_sc E[(z_s − r_c)(z_s − r_c)ᵀ] (C, F[, F]) given
        the observed entries, for full Gaussians with means r and covariances ``cov``, by
        :func:`~ptheta.models.missing.gaussian_conditionals`, one pattern of observed
        features at a time: E[z z ᵀ | z_O, c] = filled filledᵀ + Cov[z | z_O, c]."""
        z, f = prep["z"], self.f
        first, second = np.zeros((len(ref), f)), np.zeros((len(ref), f, f))
        for rows, obs in prep["patterns"]:
            q_rows = q[rows]  # (R, C)
            if obs.all():
                filled, extra = None, None
            else:
                _, filled, extra = gaussian_conditionals(z[rows], obs, ref, cov)
            for c in range(len(ref)):
                diff = (z[rows] if filled is None else filled[:, c]) - ref[c]  # (R, F)
                weighted = q_rows[:, c, None] * diff
                first[c] += weighted.sum(axis=0)
                second[c] += weighted.T @ diff
                if extra is not None:
                    second[c] += q_rows[:, c].sum() * extra[c]
        return first, second

    def _moments(self, sums: Mapping[str, np.ndarray], ref: np.ndarray) -> tuple[np.ndarray, ...]:
        """Weights (C,), means (C, F) and covariances (C, F[, F]) without smoothing of the
        Gaussians, from their sums about ``ref``."""
        n = sums["n"]
        delta = sums["first"] / (n + _EPS)[:, None]
        if self.full:
            cov = sums["second"] / (n + _EPS)[:, None, None] - np.einsum("ci,cj->cij", delta, delta)
        else:
            cov = np.maximum(sums["second"] / (n + _EPS)[:, None] - delta * delta, 0.0)
        return n, ref + delta, cov

    # ----------------------------------------------------------------- EMProblem
    def statistics(self, params: tuple[np.ndarray, ...]) -> Any:
        log_start, log_trans = _log(params[0]), _log(params[1])
        ref = None if self.emission == "categorical" else params[3].reshape(-1, self.f)

        def sums(ids: np.ndarray, _labels: Any) -> dict[str, Any]:
            ids = np.asarray(ids, dtype=np.int64).reshape(-1)
            if not len(ids):
                return self._zero_sums()
            prep = self._prepare(ids)
            buffers = self._buffers.setdefault(len(ids), {})
            plain, smoothed, resp = self._log_emission(prep, params, buffers)
            valid = prep["valid"]
            if valid is not None:  # the end events, as factors of the emissions
                for log_emit in (plain,) if smoothed is plain else (plain, smoothed):
                    fold_lengths(log_emit, valid, prep["last"], params[-1])
            ll_obj, gamma, xi = _forward_backward_time_major(
                log_start, log_trans, smoothed, valid, buffers=buffers
            )
            if valid is not None:
                gamma *= valid[:, :, None]  # a padded step is in no state
            cov = None if ref is None else _flat(params[4], len(ref))
            out: dict[str, Any] = self._posterior_sums(prep, gamma, xi, resp, ref, cov)
            if smoothed is plain:
                ll = ll_obj
            else:  # the plain log-likelihood, recorded next to the objective
                plain_buffers = self._buffers.setdefault(-len(ids), {})
                ll = _loglik_time_major(log_start, log_trans, plain, plain_buffers)
            out.pop("ref", None)
            out["objective"] = float(ll_obj.sum()) + prep["jacobian"]
            out["log_likelihood"] = float(ll.sum()) + prep["jacobian"]
            return out

        return sums

    def _zero_sums(self) -> dict[str, Any]:
        """Sums over no sequence (a process without a share of a small batch)."""
        k, f, c = self.k, self.f, self.k * self.n_mix
        out: dict[str, Any] = {"start": np.zeros(k), "trans": np.zeros((k, k))}
        if self.lengths is not None:
            out["ends"], out["visits"] = np.zeros(k), np.zeros(k)
        if self.emission == "categorical":
            out["counts"] = np.zeros((k, f * self.levels))
        else:
            out["n"], out["first"] = np.zeros(c), np.zeros((c, f))
            out["second"] = np.zeros((c, f, f) if self.full else (c, f))
        return out | {"objective": 0.0, "log_likelihood": 0.0}

    def _log_prior(self, params: tuple[np.ndarray, ...]) -> float:
        """log p(θ) of the Dirichlet (and Beta) priors with pseudo-count α."""
        log_prior = self.log_norm + self.alpha * float(
            _log(params[0]).sum() + _log(params[1]).sum() + _log(params[2]).sum()
        )
        if self.lengths is not None:
            end = params[-1]
            log_prior += self.alpha * float(_log(end).sum() + _log(1 - end).sum())
        return log_prior

    def _stats(self, sums: Mapping[str, np.ndarray], ref: np.ndarray | None, scale: float) -> Stats:
        """Sums over some sequences as statistics of the whole data set (× ``scale``)."""
        linear = ("start", "trans", "ends", "visits", "counts")
        stats = {key: sums[key] * scale for key in linear if key in sums}
        if ref is not None:
            n, mean, cov = self._moments(sums, ref)
            stats |= {"n": n * scale, "mean": mean, "cov": cov}
        return stats

    def expected(
        self, sums: Mapping[str, np.ndarray], params: tuple[np.ndarray, ...], count: int
    ) -> tuple[float, float, Stats]:
        ref = None if self.emission == "categorical" else params[3].reshape(-1, self.f)
        stats = self._stats(sums, ref, self.n / count)
        objective = float(sums["objective"]) / count + self._log_prior(params) / self.n
        return objective, float(sums["log_likelihood"]) / count, stats

    def m_step(self, stats: Stats) -> tuple[np.ndarray, ...]:
        alpha, k, f = self.alpha, self.k, self.f
        start = _normalise(stats["start"] + alpha)
        trans = _normalise(stats["trans"] + alpha)
        end = () if self.lengths is None else (_end_probs(stats["ends"], stats["visits"], alpha),)
        if self.emission == "categorical":
            emit = _normalise(stats["counts"].reshape(k, f, self.levels) + alpha)
            return start, trans, emit, *end
        n, means, cov = stats["n"], stats["mean"], stats["cov"]
        weights = _normalise(n.reshape(k, self.n_mix) + alpha)  # (K, M)
        empty = n <= _EPS  # a Gaussian without weight: the standardised data's unit variance
        if self.full:
            cov = cov + self.smooth * np.eye(f)
            cov[empty] = np.eye(f)
        else:
            cov = cov + self.smooth
            cov[empty] = 1.0
        shape = (k, self.n_mix)
        return (
            start,
            trans,
            weights,
            means.reshape(*shape, f),
            cov.reshape(*shape, *cov.shape[1:]),
            *end,
        )

    def blend(self, stats: Stats, new: Stats, rho: float) -> Stats:
        out = {
            key: (1 - rho) * stats[key] + rho * new[key]
            for key in stats
            if key not in ("n", "mean", "cov")
        }
        if "n" in stats:
            n, mean, cov = blend_moments((1 - rho) * stats["n"], stats["mean"], stats["cov"],
                                         rho * new["n"], new["mean"], new["cov"])  # fmt: skip
            out |= {"n": n, "mean": mean, "cov": cov}
        return out

    def init(self, seed: np.random.SeedSequence) -> tuple[tuple[np.ndarray, ...], Stats | None]:
        """A restart's parameters: ``initial`` where it gives them all; else the M-step of
        initial posteriors (:func:`_initial_posteriors` of every real step), with any part
        ``initial`` gives put in. The statistics they come from, None where ``initial``
        gave a part (stepwise EM then starts from a full E-step's)."""
        n_params, given = self.n_params, self.given
        if len(given) == n_params:  # every part given: nothing to initialise
            return tuple(given[i] for i in range(n_params)), None
        t_len, k, n_mix = self.t_len, self.k, self.n_mix
        prep = self._prepare(np.arange(self.n))
        valid = prep["valid"]
        if prep["missing"] is not None and self.emission != "categorical":
            # k-means and the first M-step on a copy with each missing entry at its
            # feature's observed mean (0 in standardised units)
            prep = prep | {"z": prep["z0"], "missing": None}
        # (S', F'): the features of the steps that are data
        if self.emission == "categorical":
            steps = prep["steps"] if valid is None else prep["steps"][valid.ravel()]
            features = one_hot(steps, self.levels)
        else:
            features = prep["z"] if valid is None else prep["z"][valid.ravel()]
        gamma, resp = _initial_posteriors(features, k, n_mix, self.init_method, seed)
        if valid is not None:  # back onto the padded batch, padded steps in no state
            gamma = _scatter(gamma, valid.ravel())
            resp = None if resp is None else _scatter(resp, valid.ravel(), fill=1.0 / n_mix)
        gamma = gamma.reshape(t_len, self.n, k)
        # expected transitions of independent soft assignments: every count positive
        xi = gamma[:-1].reshape(-1, k).T @ gamma[1:].reshape(-1, k)
        sums = self._posterior_sums(prep, gamma, xi, resp, None)
        stats = self._stats(sums, sums.get("ref"), 1.0)
        params = list(self.m_step(stats))
        for i, value in given.items():
            params[i] = value
        return tuple(params), (None if given else stats)
