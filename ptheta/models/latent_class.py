"""The latent-class model: a mixture over the mixed-type columns of a table, fitted by EM
from sums over batches, with missing cells marginalised exactly."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import numpy as np
from scipy.optimize import minimize
from scipy.special import gammaln, log_ndtr, logsumexp, softmax
from sklearn.cluster import kmeans_plusplus

from ptheta.data.spec import DataSpec, check_values
from ptheta.data.stream import ArraySource, Source, accumulate, flat_rows
from ptheta.data.table import LABEL_TYPES
from ptheta.errors import DataError
from ptheta.models.base import GenerativeModel
from ptheta.models.em import Params, Stats, fit_em
from ptheta.models.sampling import sample_categorical
from ptheta.params import Choice, Float, Int, Param, Seed

# The initialisation sees at most this many examples, drawn by the restart's seed.
_INIT_ROWS = 10_000
# Values in one block of the E-step's temporaries ((rows, K, D) deviations, one-hot codes).
_BLOCK_VALUES = 2**18
_EPS = 10 * np.finfo(np.float64).eps
_TINY = np.finfo(np.float64).tiny
_LOG_2PI = math.log(2.0 * math.pi)
# A truncated Gaussian's M-step keeps its location and scale within this many of the
# component's standard deviations of the data (a maximum on that box: an exponential- or
# uniform-like column, which a Gaussian reaches only in a limit).
_BOX = 1e3


class _Layout:
    """Which flattened variable carries which factor: label columns (levels), counts
    (Poisson) and reals (Gaussian, truncated to bounds where given). Any other kind of
    data is a table of one type: binary or categorical levels, or unbounded reals."""

    def __init__(self, spec: DataSpec) -> None:
        if spec.kind == "table":
            columns = spec.columns
            types = [c.type for c in columns]
            levels = [c.n_levels if c.type in LABEL_TYPES else 0 for c in columns]
            lower = [-np.inf if c.lower is None else c.lower for c in columns]
            upper = [np.inf if c.upper is None else c.upper for c in columns]
            self.names = [c.name for c in columns]
        else:
            d = math.prod(spec.event_shape)
            kind = "categorical" if spec.is_discrete else "continuous"
            types = [kind] * d
            levels = [int(spec.n_categories or 0)] * d
            lower, upper = [-np.inf] * d, [np.inf] * d
            self.names = [str(j) for j in range(d)]
        self.d = len(types)
        self.label = np.array([j for j, t in enumerate(types) if t in LABEL_TYPES], dtype=int)
        self.count = np.array([j for j, t in enumerate(types) if t == "count"], dtype=int)
        self.real = np.array([j for j, t in enumerate(types) if t == "continuous"], dtype=int)
        self.levels = np.array([levels[j] for j in self.label], dtype=int)  # (D_label,)
        self.l_max = int(self.levels.max()) if self.levels.size else 1
        self.offsets = np.concatenate([[0], np.cumsum(self.levels)]).astype(int)
        # the (column, level) of each entry of the concatenated one-hot code, (ΣL,)
        self.flat_column = np.repeat(self.label, self.levels)
        self.flat_level = np.concatenate([np.arange(n) for n in self.levels] or [[]]).astype(int)
        self.flat_block = np.repeat(np.arange(len(self.label)), self.levels)
        self.lower = np.array([lower[j] for j in self.real], dtype=np.float64)
        self.upper = np.array([upper[j] for j in self.real], dtype=np.float64)
        self.bounded = np.isfinite(self.lower) | np.isfinite(self.upper)

    @property
    def n_codes(self) -> int:
        return int(self.offsets[-1])

    def parts(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """The rows (b, D) by factor type: one-hot codes of the label columns (b, ΣL), the
        counts and reals (missing: 0) with their masks of observed cells, and
        Σ log x! over the observed counts (b,)."""
        flat = flat_rows(batch).astype(np.float64)
        out: dict[str, np.ndarray] = {}
        codes = flat[:, self.label]
        seen = ~np.isnan(codes)
        onehot = np.zeros((len(flat), self.n_codes))
        rows, cols = np.nonzero(seen)
        onehot[rows, self.offsets[cols] + codes[rows, cols].astype(int)] = 1.0
        out["onehot"] = onehot
        for key, index in (("count", self.count), ("real", self.real)):
            values = flat[:, index]
            seen = ~np.isnan(values)
            out[key], out[key + "_seen"] = np.where(seen, values, 0.0), seen.astype(np.float64)
        out["log_factorial"] = gammaln(out["count"] + 1.0).sum(axis=1)  # 0 where missing
        return out

    def flat_probs(self, probs: np.ndarray) -> np.ndarray:
        """(K, ΣL) level probabilities in one-hot order, from (K, D, L_max)."""
        return probs[:, self.flat_column, self.flat_level]

    def log_mass(self, means: np.ndarray, variances: np.ndarray) -> np.ndarray:
        """(K, D_real) log of each real factor's Gaussian mass within its bounds (0 where
        unbounded)."""
        out = np.zeros((len(means), len(self.real)))
        if self.bounded.any():
            mu, sd = means[:, self.real][:, self.bounded], np.sqrt(variances[:, self.real])
            sd = sd[:, self.bounded]
            out[:, self.bounded] = _log_mass(
                (self.lower[self.bounded] - mu) / sd, (self.upper[self.bounded] - mu) / sd
            )
        return out


def _log_mass(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """log(Φ(b) − Φ(a)) elementwise for a < b, on the side of the smaller tails (log Φ of
    a negative argument is accurate)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    flip = a > 0  # Φ(b) − Φ(a) = Φ(−a) − Φ(−b)
    lo, hi = np.where(flip, -b, a), np.where(flip, -a, b)
    top = log_ndtr(hi)
    return top + np.log1p(-np.exp(log_ndtr(lo) - top))


def _phi_ratio(t: np.ndarray, log_z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """φ(t) / Z and t·φ(t) / Z, 0 at t = ±inf."""
    finite = np.isfinite(t)
    tt = np.where(finite, t, 0.0)
    ratio = np.where(finite, np.exp(-0.5 * tt * tt - 0.5 * _LOG_2PI - log_z), 0.0)
    return ratio, ratio * tt


def truncated_gaussian_fit(
    mean: float,
    var: float,
    lower: float,
    upper: float,
    min_var: float,
    start: tuple[float, float] | None = None,
) -> tuple[float, float]:
    """The (μ, σ²) of the Gaussian truncated to [lower, upper] that maximises the
    log-likelihood of weighted data with mean ``mean`` and variance ``var`` (its
    sufficient statistics), subject to σ² >= ``min_var``.

    A truncated Gaussian on fixed bounds is an exponential family in (x, x²), so the
    weighted mean and variance are all the data it needs. The maximum is found by
    L-BFGS-B over (μ, log σ) in the data's standard units, within `_BOX` standard
    deviations; from ``start`` (the current parameters of EM), the result is kept only
    if it is at least as likely as ``start`` (a generalised EM step: the likelihood never
    falls).

    Example:
        >>> from scipy import stats
        >>> x = stats.truncnorm(-1.0, 2.0, loc=1.0, scale=2.0).rvs(200_000, random_state=0)
        >>> mu, var = truncated_gaussian_fit(x.mean(), x.var(), -1.0, 5.0, 0.0)
        >>> round(mu, 1), round(var, 1)
        (1.0, 4.0)
    """
    s = math.sqrt(max(var, min_var))
    if s == 0.0:
        raise DataError("a truncated Gaussian of constant data has zero variance; raise min_var")
    a, b, v = (lower - mean) / s, (upper - mean) / s, var / (s * s)

    def objective(p: np.ndarray) -> tuple[float, np.ndarray]:
        # −(log-likelihood per unit weight) − ½ log 2π − log s, in standard units
        mu, tau = float(p[0]), float(p[1])
        inv = math.exp(-2.0 * tau)
        lo, hi = (a - mu) * math.exp(-tau), (b - mu) * math.exp(-tau)
        log_z = _log_mass(lo, hi)
        r_lo, t_lo = _phi_ratio(lo, log_z)
        r_hi, t_hi = _phi_ratio(hi, log_z)
        value = 0.5 * (v + mu * mu) * inv + tau + float(log_z)
        d_mu = mu * inv + float(r_lo - r_hi) * math.exp(-tau)
        d_tau = -(v + mu * mu) * inv + 1.0 + float(t_lo - t_hi)
        return value, np.array([d_mu, d_tau])

    low_tau = 0.5 * math.log(min_var / (s * s)) if min_var > 0 else -math.inf
    bounds = np.array([(-_BOX, _BOX), (max(low_tau, -math.log(_BOX)), math.log(_BOX))])
    x0 = np.zeros(2)
    if start is not None:
        x0 = np.array([(start[0] - mean) / s, 0.5 * math.log(start[1] / (s * s))])
    found = minimize(
        objective, np.clip(x0, bounds[:, 0], bounds[:, 1]), jac=True, method="L-BFGS-B",
        bounds=bounds, options={"ftol": 1e-14, "gtol": 1e-10, "maxiter": 500},
    )  # fmt: skip
    best = _newton_polish(objective, found.x, bounds)
    if start is not None:  # never a step down (beyond rounding), nor to NaN
        before = objective(x0)[0]
        if not objective(best)[0] <= before + 8 * np.finfo(float).eps * (1.0 + abs(before)):
            best = x0
    return float(mean + s * best[0]), float((s * math.exp(best[1])) ** 2)


def _newton_polish(
    objective: Callable[[np.ndarray], tuple[float, np.ndarray]],
    p: np.ndarray,
    bounds: np.ndarray,
) -> np.ndarray:
    """Newton steps on the gradient of ``objective`` from ``p`` (an interior minimum found
    to an optimiser's tolerance) to machine precision, the Hessian by central differences
    of the gradient: the result is then a smooth function of the data's statistics, so
    sums that differ in rounding (batches of another size) give the same fit."""
    for _ in range(8):
        inside = (p > bounds[:, 0] + 1e-9) & (p < bounds[:, 1] - 1e-9)
        if not inside.all():
            break
        gradient = objective(p)[1]
        h = 1e-6
        hessian = np.column_stack(
            [(objective(p + h * e)[1] - objective(p - h * e)[1]) / (2 * h) for e in np.eye(2)]
        )
        try:
            step = np.linalg.solve(0.5 * (hessian + hessian.T), gradient)
        except np.linalg.LinAlgError:
            break
        q = p - step
        if not np.all(np.isfinite(q)) or not (
            np.linalg.norm(objective(q)[1]) < np.linalg.norm(gradient)
        ):
            break
        p = q
        if np.linalg.norm(step) < 1e-15 * (1.0 + np.linalg.norm(p)):
            break
    return p


class _LatentClassEM:
    """EM's pieces (:class:`~ptheta.models.em.EMProblem`) for a latent-class model.

    Parameters are (weights (K,), probs (K, D, L_max), means (K, D), variances (K, D)),
    float64: level probabilities of the label columns, Poisson rates (in ``means``) of
    the counts, and the Gaussians of the reals. Statistics, as totals over the data:
    ``n`` (K,), level counts (K, ΣL), per count column the observed weight and sum
    (K, C), per real column the observed weight, mean and variance (K, R) of the weighted
    cells, and the real factors' current parameters (the start of the truncated
    Gaussians' M-step)."""

    def __init__(
        self,
        data: Source,
        layout: _Layout,
        k: int,
        alpha: float,
        min_var: float,
        rate_floor: np.ndarray,
        init: str,
    ) -> None:
        self.data, self.layout, self.k, self.alpha, self.min_var = data, layout, k, alpha, min_var
        self.rate_floor, self.init_method = rate_floor, init
        width = k * (len(layout.real) + 1) + layout.n_codes + 2 * len(layout.count)
        self.rows = int(np.clip(_BLOCK_VALUES // max(1, width), 64, 65536))
        # log-normalisers of the Dirichlet(α + 1) priors of every θ_k,j and of the flat one
        # on π (MAP-EM: the objective is the log-posterior)
        levels = layout.levels
        self.log_norm = k * float(
            (gammaln(levels * (alpha + 1.0)) - levels * gammaln(alpha + 1.0)).sum()
        )
        self.log_norm += float(gammaln(k))

    # ------------------------------------------------------------------ E-step pieces
    def _stats(
        self, parts: Mapping[str, np.ndarray], resp: np.ndarray, dev: np.ndarray
    ) -> dict[str, Any]:
        """Sums over the rows of their responsibilities ``resp`` (b, K), expected level
        counts, and per count / real column the weighted observed cells, their sums, and
        their first and second moments about the centres that ``dev`` (b, K, R) is taken
        from."""
        seen = parts["real_seen"][:, None, :]  # (b, 1, R)
        weighted = resp[:, :, None] * seen * dev  # (b, K, R)
        return {
            "n": resp.sum(axis=0),
            "levels": resp.T @ parts["onehot"],
            "count_n": resp.T @ parts["count_seen"],
            "count_sum": resp.T @ parts["count"],
            "real_n": resp.T @ parts["real_seen"],
            "real_first": weighted.sum(axis=0),
            "real_second": (weighted * dev).sum(axis=0),
        }

    def _blocks(self, batch: np.ndarray, one: Callable[[np.ndarray], dict[str, Any]]) -> dict:
        sums: dict[str, Any] | None = None
        for i in range(0, max(1, len(batch)), self.rows):
            part = one(batch[i : i + self.rows])
            if sums is None:
                sums = {key: np.array(v, dtype=np.float64) for key, v in part.items()}
            else:
                for key, v in part.items():
                    sums[key] += v
        assert sums is not None
        return sums

    def statistics(self, params: Params) -> Callable[..., dict[str, Any]]:
        def one(block: np.ndarray) -> dict[str, Any]:
            parts = self.layout.parts(block)
            log_w, dev = _log_joint(self.layout, parts, params)
            log_p = logsumexp(log_w, axis=1)  # (b,)
            resp = np.exp(log_w - log_p[:, None])
            out = self._stats(parts, resp, dev)
            out["log_likelihood"] = out["objective"] = log_p.sum()
            return out

        return lambda batch, _labels: self._blocks(batch, one)

    def _moments(self, sums: Mapping[str, np.ndarray], centres: np.ndarray) -> Stats:
        """Statistics from sums whose real deviations were taken about ``centres`` (K, R)."""
        n = sums["real_n"]
        shift = sums["real_first"] / np.where(n > 0, n, 1.0)
        var = np.maximum(sums["real_second"] / np.where(n > 0, n, 1.0) - shift**2, 0.0)
        stats = {key: np.asarray(sums[key], dtype=np.float64) for key in
                 ("n", "levels", "count_n", "count_sum", "real_n")}  # fmt: skip
        stats["real_mean"], stats["real_var"] = centres + shift, var
        return stats

    def expected(
        self, sums: Mapping[str, np.ndarray], params: Params, count: int
    ) -> tuple[float, float, Stats]:
        n = len(self.data)
        real = self.layout.real
        stats = self._moments(sums, params[2][:, real])
        for key in ("n", "levels", "count_n", "count_sum", "real_n"):
            stats[key] = stats[key] * (n / count)
        stats["start_mean"], stats["start_var"] = params[2][:, real], params[3][:, real]
        loglik = float(sums["log_likelihood"]) / count
        flat = self.layout.flat_probs(params[1])
        log_prior = self.log_norm + self.alpha * float(np.log(np.maximum(flat, _TINY)).sum())
        return loglik + log_prior / n, loglik, stats

    # ------------------------------------------------------------------ M-step
    def m_step(self, stats: Stats) -> Params:
        layout, k = self.layout, self.k
        nk = stats["n"] + _EPS
        weights = nk / nk.sum()
        probs = np.zeros((k, layout.d, layout.l_max))
        if layout.label.size:
            counts = stats["levels"] + self.alpha  # (K, ΣL)
            blocks = np.zeros((layout.n_codes, len(layout.label)))
            blocks[np.arange(layout.n_codes), layout.flat_block] = 1.0
            total = (counts @ blocks)[:, layout.flat_block]  # each entry's column total
            pooled = stats["levels"].sum(axis=0)
            pooled = pooled / (pooled @ blocks)[layout.flat_block]
            # a component that saw none of a column's cells (only possible with alpha=0):
            # the column's pooled frequencies (its likelihood does not depend on them)
            flat = np.where(total > 0, counts / np.where(total > 0, total, 1.0), pooled)
            probs[:, layout.flat_column, layout.flat_level] = flat
        means = np.zeros((k, layout.d))
        variances = np.zeros((k, layout.d))
        if layout.count.size:
            n, total = stats["count_n"], stats["count_sum"]
            pooled = total.sum(axis=0) / n.sum(axis=0)
            rate = np.where(n > 0, total / np.where(n > 0, n, 1.0), pooled)
            means[:, layout.count] = np.maximum(rate, self.rate_floor)
        if layout.real.size:
            mean, var = self._real_m_step(stats)
            means[:, layout.real], variances[:, layout.real] = mean, var
        return weights, probs, means, variances

    def _real_m_step(self, stats: Stats) -> tuple[np.ndarray, np.ndarray]:
        """The Gaussians' means and variances (K, R): the weighted moments (variance
        floored at min_var), or the truncated Gaussian's maximum likelihood."""
        layout = self.layout
        n, mean, var = stats["real_n"], stats["real_mean"], stats["real_var"]
        total = n.sum(axis=0)  # a component without observed cells: the pooled moments
        pooled_mean = (n * mean).sum(axis=0) / total
        pooled_var = (n * (var + (mean - pooled_mean) ** 2)).sum(axis=0) / total
        empty = ~(n > 0)
        mean = np.where(empty, pooled_mean, mean)
        var = np.maximum(np.where(empty, pooled_var, var), self.min_var)
        start = stats.get("start_mean"), stats.get("start_var")
        for i, j in np.argwhere(np.broadcast_to(layout.bounded, mean.shape)):
            begin = None
            if start[0] is not None and not empty[i, j]:
                begin = (float(start[0][i, j]), float(start[1][i, j]))
            mean[i, j], var[i, j] = truncated_gaussian_fit(
                float(mean[i, j]), float(var[i, j]), float(layout.lower[j]),
                float(layout.upper[j]), self.min_var, begin,
            )  # fmt: skip
        if (var <= 0).any():
            i, j = np.argwhere(var <= 0)[0]
            raise DataError(
                f"component {i}'s variance of column {layout.names[layout.real[j]]!r} is 0 "
                "(its cells hold one value); raise min_var (default 1e-6) or use fewer "
                "components"
            )
        return mean, var

    def blend(self, stats: Stats, new: Stats, rho: float) -> Stats:
        out = {key: (1 - rho) * stats[key] + rho * new[key] for key in
               ("n", "levels", "count_n", "count_sum", "real_n")}  # fmt: skip
        n_a, n_b = (1 - rho) * stats["real_n"], rho * new["real_n"]
        n = n_a + n_b
        w_b = np.divide(n_b, n, out=np.zeros_like(n), where=n > 0)
        delta = new["real_mean"] - stats["real_mean"]
        out["real_mean"] = stats["real_mean"] + w_b * delta
        out["real_var"] = (1 - w_b) * stats["real_var"] + w_b * new["real_var"]
        out["real_var"] += (1 - w_b) * w_b * delta**2
        for key in ("start_mean", "start_var"):
            if key in new:
                out[key] = new[key]
        return out

    # ------------------------------------------------------------------ initialisation
    def init(self, seed: np.random.SeedSequence) -> tuple[Params, Stats]:
        """k-means++ centres of (at most `_INIT_ROWS`) examples coded as one-hot levels
        and standardised numbers (a missing cell: zeros, the mean), then every example
        assigned to its nearest centre; or random responsibilities of those examples."""
        n, k, layout = len(self.data), self.k, self.layout
        rs = np.random.RandomState(seed.generate_state(1)[0])
        index = np.arange(n) if n <= _INIT_ROWS else np.sort(rs.choice(n, _INIT_ROWS, False))
        size = self.data.batch_rows()
        sample = np.concatenate(
            [self.data.read(index[i : i + size]) for i in range(0, len(index), size)]
        )
        sample = sample.reshape(len(sample), -1).astype(np.float64)
        numeric = np.concatenate([layout.count, layout.real])
        with warnings.catch_warnings():  # a column without an observed cell in the sample
            warnings.simplefilter("ignore", RuntimeWarning)
            centre = np.nan_to_num(np.nanmean(sample[:, numeric], axis=0))
            scale = np.nan_to_num(np.nanstd(sample[:, numeric], axis=0))
        scale = np.where(scale > 0, scale, 1.0)
        real_centre = centre[len(layout.count) :]
        centres = np.broadcast_to(real_centre, (k, len(layout.real)))

        def code(block: np.ndarray) -> np.ndarray:
            parts = layout.parts(block)
            flat = flat_rows(block).astype(np.float64)[:, numeric]
            z = np.nan_to_num((flat - centre) / scale)  # missing: 0, the mean
            return np.concatenate([parts["onehot"], z], axis=1)

        def sums_given(block: np.ndarray, resp: np.ndarray) -> dict[str, Any]:
            parts = layout.parts(block)
            dev = parts["real"][:, None, :] - centres[None]  # (b, K, R)
            return self._stats(parts, resp, dev)

        if self.init_method == "random":
            resp = rs.uniform(size=(len(sample), k))
            resp /= resp.sum(axis=1, keepdims=True)
            sums = sums_given(sample, resp)
            count = len(sample)
        else:
            seeds, _ = kmeans_plusplus(code(sample), k, random_state=rs)  # (K, E)
            norms = (seeds * seeds).sum(axis=1)

            def nearest(block: np.ndarray) -> dict[str, Any]:
                distance = norms - 2.0 * code(block) @ seeds.T  # ‖c‖² − 2 c·x, (b, K)
                resp = (np.arange(k) == distance.argmin(axis=1)[:, None]).astype(np.float64)
                return sums_given(block, resp)

            sums = accumulate(self.data, lambda b, _: self._blocks(b, nearest))
            count = n
        stats = self._moments(sums, centres)
        for key in ("n", "levels", "count_n", "count_sum", "real_n"):
            stats[key] = stats[key] * (n / count)
        return self.m_step(stats), stats


def _log_joint(
    layout: _Layout, parts: Mapping[str, np.ndarray], params: Params
) -> tuple[np.ndarray, np.ndarray]:
    """log π_k + Σ_{j observed} log p_k(x_j) of rows given by their ``parts``, (b, K), and
    the reals' deviations x_j − μ_k,j (b, K, R) (0 − μ where missing: masked out)."""
    weights, probs, means, variances = params
    with np.errstate(divide="ignore"):
        log_w = np.broadcast_to(np.log(weights), (len(parts["count"]), len(weights))).copy()
    if layout.label.size:  # a missing cell has an all-zero one-hot block: its factor drops
        log_w += parts["onehot"] @ np.log(np.maximum(layout.flat_probs(probs), _TINY)).T
    if layout.count.size:  # x log λ − λ − log x!, over the observed counts
        rate = means[:, layout.count]  # (K, C)
        log_w += parts["count"] @ np.log(np.maximum(rate, _TINY)).T
        log_w -= parts["count_seen"] @ rate.T + parts["log_factorial"][:, None]
    dev = parts["real"][:, None, :] - means[None, :, layout.real]  # (b, K, R)
    if layout.real.size:
        var = variances[:, layout.real]  # (K, R)
        cell = dev * dev / var + np.log(var) + _LOG_2PI  # −2 log N(x; μ, σ²), (b, K, R)
        log_w -= 0.5 * (cell * parts["real_seen"][:, None, :]).sum(axis=2)
        log_w -= parts["real_seen"] @ layout.log_mass(means, variances).T  # truncation
    return log_w, dev


class LatentClass(GenerativeModel):
    """Latent-class model: p(x) = Σ_k π_k ∏_j p_k(x_j), a mixture over the mixed-type
    columns of a table, fitted by EM with missing cells marginalised exactly.

    Within component k the columns are independent, each with the factor of its type
    (:mod:`ptheta.data.table`):

    - binary, categorical, ordinal: level probabilities θ_k,j (an ordinal's order is not
      used), smoothed by the pseudo-count ``alpha`` (MAP-EM, see below);
    - count: a Poisson with rate λ_k,j (a mixture of Poissons is overdispersed: the
      components carry what one negative binomial would), floored at ``alpha / n_j``
      (n_j the observed cells of the column) so that no count gets probability 0;
    - continuous: a Gaussian N(μ_k,j, σ²_k,j) with σ² >= ``min_var`` (a floor in the
      column's squared units), truncated to the column's bounds with its exact
      normaliser where it has bounds.

    Binary, categorical and continuous arrays are tables of one column type (flattened):
    the model is then the categorical (Bernoulli) mixture or a diagonal Gaussian mixture.

    **Missing cells.** A missing cell's factor sums (integrates) to one in every
    component, so it drops out of its row's product: ``score_samples`` returns the exact
    log Σ_k π_k ∏_{j observed} p_k(x_j), and EM maximises that observed-data likelihood
    (the component is the only latent variable; a column's parameters are fitted from the
    cells where it is observed, weighted by the component posteriors given each row's
    observed cells) — the maximum-likelihood fit under missing-at-random.
    ``impute(method="sample")`` and ``sample(given=...)`` draw k ~ p(k | x_observed), then
    each missing cell from its factor in component k: exact conditional sampling.
    ``impute(method="mode")`` fills cell by cell from p(x_j | x_observed) =
    Σ_k p(k | x_observed) p_k(x_j): its most probable level (label columns) or count, and
    its **mean** for a continuous cell (the mean of the truncated Gaussians where bounded).

    **EM over batches.** Each E-step sums, over the batches of the data, the
    responsibilities, the expected level counts, and per count and real column the
    responsibility-weighted observed cells, their sums and their squared deviations from
    the current means (nothing cancels near convergence), with
    :func:`~ptheta.data.stream.accumulate` (under ``torchrun`` each process sums its
    share and the sums are all-reduced); an in-memory fit is the same computation over the
    array's batches. The M-step is closed form but for a bounded continuous column,
    whose truncated Gaussian is fitted by L-BFGS-B from its weighted mean and variance
    (its sufficient statistics), starting at the current parameters and kept only if the
    likelihood does not fall (a generalised EM step). The objective is the log-posterior
    per example: the log-likelihood plus the log-density of a Dirichlet(α + 1) prior on
    every θ_k,j (a flat one on π), under the floors on λ and σ² as constraints, so it never
    decreases from one EM step to the next; ``history_`` records it per step next to the
    plain mean log-likelihood (monotone too when ``alpha=0``).
    The initialisation sees at most 10,000 rows drawn by the restart's seed: k-means++
    centres of their codes (one-hot levels, standardised numbers, a missing cell at the
    mean), then every row assigned to its nearest centre in one pass; ``init="random"``
    gives those rows random responsibilities. ``em="minibatch"`` is stepwise EM on the
    same statistics, as documented in :class:`~ptheta.models.mixtures.GaussianMixture`.

    Arguments:
        n_components: number of latent classes K.
        alpha: pseudo-count added to every level in the M-step (0: maximum likelihood,
            levels a component never saw get probability 0), and the counts' floor
            ``alpha / n_j``.
        min_var: the floor of every Gaussian variance, in the column's squared units.
        max_iter: EM iterations per initialisation.
        tol: stop when the objective per example improves by less than this.
        n_init: number of initialisations; the one with the best objective is kept.
        init: ``"kmeans++"`` or ``"random"`` (see above).
        em: ``"full"`` (full-batch EM) or ``"minibatch"`` (stepwise EM).
        batch_size: rows per batch: of each read for full-batch EM (None: about 32 MB),
            of each step for mini-batch EM (None: 1024).
        step_decay: α of mini-batch EM's step sizes ρ_t = (t + 2)^−α, in (0.5, 1].
        random_state: seed of the initialisation: an integer, or None for fresh randomness.
        max_time: seconds EM may take (all restarts together; None: no limit): it stops
            after the iteration that passes them, keeps the best run so far and warns.
        verbose: 1 shows a progress bar.

    Fitted attributes:
        weights_ (K,); probs_ (K, D, L_max) level probabilities of the label columns (0
        elsewhere); means_ (K, D): Poisson rates of the counts, Gaussian locations of the
        reals (0 for label columns); variances_ (K, D): Gaussian scales² of the reals (0
        elsewhere; before truncation where bounded); converged_, n_iter_, history_,
        best_init_.

    Example:
        >>> import ptheta
        >>> data = ptheta.datasets.load("groundtruth-table")
        >>> m = LatentClass(n_components=3, random_state=0).fit(data.train)
        >>> m.units_, m.predict_proba(data.test.x[:2]).shape
        ('mixed', (2, 3))

    References:
        Lazarsfeld & Henry (1968), Latent Structure Analysis; Goodman (1974),
        Biometrika 61, 215–231; Vermunt & Magidson (2002), Latent class cluster
        analysis (mixed indicators); Dempster, Laird & Rubin (1977) and Little & Rubin
        (2019), Statistical Analysis with Missing Data, ch. 11 (EM with missing values);
        Cohen (1950) for the truncated Gaussian's maximum likelihood.
    """

    name: ClassVar[str] = "latent-class"
    family: ClassVar[str] = "mixtures"
    likelihood: ClassVar[str] = "exact"
    data_kinds: ClassVar[tuple[str, ...]] = ("table", "binary", "categorical", "continuous")
    can_marginalise: ClassVar[bool] = True
    fits_missing: ClassVar[bool] = True
    abilities: ClassVar[dict[str, Any]] = {"embeds": True, "streams": True}
    quick_params: ClassVar[dict[str, Any]] = {"n_components": 2, "max_iter": 30, "random_state": 0}
    parameters: ClassVar[dict[str, Param]] = {
        "n_components": Int(low=1),
        "alpha": Float(low=0),
        "min_var": Float(low=0),
        "max_iter": Int(low=1),
        "tol": Float(low=0),
        "n_init": Int(low=1),
        "init": Choice("kmeans++", "random"),
        "em": Choice("full", "minibatch"),
        "batch_size": Int(low=1, none=True),
        "step_decay": Float(low=0.5, high=1.0, low_open=True),
        "random_state": Seed(),
        "max_time": Float(low=0, low_open=True, none=True),
        "verbose": Int(low=0, flag=True),
    }

    def __init__(
        self,
        n_components: int = 4,
        *,
        alpha: float = 0.5,
        min_var: float = 1e-6,
        max_iter: int = 200,
        tol: float = 1e-4,
        n_init: int = 1,
        init: str = "kmeans++",
        em: str = "full",
        batch_size: int | None = None,
        step_decay: float = 0.6,
        random_state: int | None = 0,
        max_time: float | None = None,
        verbose: int = 0,
    ) -> None:
        self.n_components = n_components
        self.alpha = alpha
        self.min_var = min_var
        self.max_iter = max_iter
        self.tol = tol
        self.n_init = n_init
        self.init = init
        self.em = em
        self.batch_size = batch_size
        self.step_decay = step_decay
        self.random_state = random_state
        self.max_time = max_time
        self.verbose = verbose

    # ------------------------------------------------------------------ fitting
    def _fit(self, x: np.ndarray, y: Any, spec: DataSpec) -> None:
        self._fit_stream(ArraySource(x), y, spec)  # one computation, in memory or streamed

    def _fit_stream(self, data: Source, y: Any, spec: DataSpec) -> None:
        k = int(self.n_components)
        if k > len(data):
            raise DataError(
                f"n_components={k} is more than the {len(data)} training examples; "
                "use fewer components or more data"
            )
        layout = _Layout(spec)
        observed = accumulate(
            data, lambda b, _: {"seen": (~np.isnan(flat_rows(b).astype(float))).sum(0)}
        )["seen"]
        if (observed == 0).any():
            name = layout.names[int(np.flatnonzero(observed == 0)[0])]
            raise DataError(
                f"column {name!r} of the training data has no observed value (every cell is "
                "missing); drop it"
            )
        rate_floor = float(self.alpha) / observed[layout.count]
        problem = _LatentClassEM(
            data, layout, k, float(self.alpha), float(self.min_var), rate_floor, self.init
        )
        result = fit_em(
            problem, data, em=self.em, batch_size=self.batch_size, step_decay=self.step_decay,
            n_init=self.n_init, max_iter=self.max_iter, tol=self.tol,
            random_state=self.random_state, label=f"EM {self.name}", verbose=bool(self.verbose),
            max_time=self.max_time,
        )  # fmt: skip
        self.weights_, self.probs_, self.means_, self.variances_ = result.params
        self.converged_ = result.converged
        self.n_iter_ = result.n_iter
        self.history_ = result.history
        self.best_init_ = result.best_init

    # ------------------------------------------------------------------ scoring
    def _log_joint(self, x: np.ndarray) -> np.ndarray:
        """log π_k + Σ_{j observed} log p_k(x_j), shape (N, K)."""
        layout = _Layout(self.fitted_spec)
        params = (self.weights_, self.probs_, self.means_, self.variances_)
        k = len(self.weights_)
        rows = int(np.clip(_BLOCK_VALUES // max(1, k * (len(layout.real) + 1)), 64, 65536))
        flat = x.reshape(len(x), -1)
        return np.concatenate(
            [
                _log_joint(layout, layout.parts(flat[i : i + rows]), params)[0]
                for i in range(0, len(flat), rows)
            ]
        )

    def _score_samples(self, x: np.ndarray) -> np.ndarray:
        return logsumexp(self._log_joint(x), axis=1)

    def predict_proba(self, X: Any) -> np.ndarray:
        """Responsibilities p(class | x), shape (N, K); missing (NaN) cells are
        marginalised out."""
        self._check_fitted()
        x = check_values(X, self.fitted_spec, allow_nan=True)
        return softmax(self._log_joint(np.asarray(x, dtype=np.float64)), axis=1)

    def predict(self, X: Any) -> np.ndarray:
        """The most probable class of each example, shape (N,)."""
        return self.predict_proba(X).argmax(axis=1)

    def embed(self, X: Any) -> np.ndarray:
        """Representation: the class responsibilities, shape (N, K)."""
        return self.predict_proba(X)

    # ------------------------------------------------------------------ sampling
    def _draw(self, comp: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One row (n, D) per entry of ``comp`` (n,), every cell drawn from its factor in
        that component."""
        from scipy.stats import truncnorm

        layout, n = _Layout(self.fitted_spec), len(comp)
        out = np.empty((n, layout.d))
        for i, j in enumerate(layout.label):
            out[:, j] = sample_categorical(self.probs_[comp, j, : layout.levels[i]], rng)
        for j in layout.count:
            out[:, j] = rng.poisson(self.means_[comp, j])
        for i, j in enumerate(layout.real):
            mean, sd = self.means_[comp, j], np.sqrt(self.variances_[comp, j])
            if not layout.bounded[i]:
                out[:, j] = mean + sd * rng.standard_normal(n)
                continue
            lo, hi = layout.lower[i], layout.upper[i]
            drawn = truncnorm.ppf(rng.random(n), (lo - mean) / sd, (hi - mean) / sd, mean, sd)
            out[:, j] = np.clip(drawn, lo, hi)  # rounding at a bound
        return out

    def _sample(self, n: int, y: Any, rng: np.random.Generator) -> np.ndarray:
        comp = sample_categorical(self.weights_, rng, size=n)  # (n,)
        return self._draw(comp, rng)

    def _impute(self, x: np.ndarray, method: str, rng: np.random.Generator) -> np.ndarray:
        flat = x.reshape(len(x), -1).astype(np.float64)  # (N, D)
        missing = np.isnan(flat)
        resp = softmax(self._log_joint(flat), axis=1)  # p(k | x_observed), (N, K)
        if method == "sample":
            fill = self._draw(sample_categorical(resp, rng), rng)
        else:
            fill = self._conditional_modes(resp, missing)
        flat[missing] = fill[missing]
        return flat

    def _conditional_modes(self, resp: np.ndarray, missing: np.ndarray) -> np.ndarray:
        """(N, D): per cell, the most probable level or count of p(x_j | x_observed), or
        the mean of a continuous cell (filled where ``missing``, 0 elsewhere)."""
        from scipy.stats import poisson, truncnorm

        layout = _Layout(self.fitted_spec)
        out = np.zeros(missing.shape)
        for i, j in enumerate(layout.label):
            levels = self.probs_[:, j, : layout.levels[i]]  # (K, L)
            out[:, j] = (resp @ levels).argmax(axis=1)
        for j in layout.count:
            rows = np.flatnonzero(missing[:, j])
            rate = self.means_[:, j]  # (K,)
            top = int(np.ceil(rate.max() + 10.0 * np.sqrt(rate.max()) + 10.0))
            values = np.arange(top + 1)
            pmf = poisson.pmf(values[:, None], rate[None, :])  # (V, K)
            out[rows, j] = (resp[rows] @ pmf.T).argmax(axis=1)
        for i, j in enumerate(layout.real):
            mean, sd = self.means_[:, j], np.sqrt(self.variances_[:, j])
            if layout.bounded[i]:
                lo, hi = layout.lower[i], layout.upper[i]
                mean = truncnorm.mean((lo - mean) / sd, (hi - mean) / sd, mean, sd)
                mean = np.clip(mean, lo, hi)
            out[:, j] = resp @ mean
        return out

    # ------------------------------------------------------------------ bookkeeping
    def _n_parameters(self) -> int:
        layout = _Layout(self.fitted_spec)
        k = len(self.weights_)
        per_class = int((layout.levels - 1).sum()) + len(layout.count) + 2 * len(layout.real)
        return (k - 1) + k * per_class

    def _expected_shapes(self, spec: DataSpec) -> dict[str, tuple[int, ...]]:
        layout, k = _Layout(spec), int(self.n_components)
        return {
            "weights_": (k,),
            "probs_": (k, layout.d, layout.l_max),
            "means_": (k, layout.d),
            "variances_": (k, layout.d),
        }

    def _required_attributes(self) -> tuple[str, ...]:
        return ("weights_", "probs_", "means_", "variances_")
