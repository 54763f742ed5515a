"""Baselines: the fully independent model (Bernoulli, categorical or Gaussian per variable,
one factor per column type on a table), fitted from sums over batches.

Also the helpers the classical families share to fit from sufficient statistics summed
over the batches of a :class:`~ptheta.data.stream.Source` (:func:`first_observed`: the
shift of centred moment sums; :func:`level_counts`: counts of levels per variable).
"""

from __future__ import annotations

import warnings
from typing import Any, ClassVar

import numpy as np

from ptheta.data.batch_stats import first_observed
from ptheta.data.spec import DataSpec
from ptheta.data.stream import ArraySource, Source, accumulate, flat_rows
from ptheta.data.table import LABEL_TYPES, ColumnSpec
from ptheta.errors import DataError
from ptheta.models.base import GenerativeModel
from ptheta.models.sampling import sample_categorical
from ptheta.params import Float, Param


class Independent(GenerativeModel):
    """Every variable on its own: p(x) = ∏_d p(x_d).

    The factor is chosen by the data kind: Bernoulli for binary data, categorical for
    categorical data (both with additive smoothing ``alpha``), Gaussian for continuous data
    (variance floored by ``min_var``). Fitted in closed form; the log-likelihood is exact.

    **Fitted from sums over batches** (``capabilities().streams``): the level counts of
    each variable, and each variable's count, Σ(x − s) and Σ(x − s)² about a shift s, its
    first observed value (:func:`first_observed`: no precision is lost to a mean far from
    0, and a constant variable's sums are exactly 0), summed over the batches of the data
    with :func:`~ptheta.data.stream.accumulate` — under ``torchrun`` each process sums its
    share and the sums are all-reduced. An in-memory fit is the same computation over the
    array's batches, so a memory-mapped file gives the model of the array (counts exactly,
    moments to rounding).

    Missing entries (NaN) are marginalised exactly by dropping their factors; ``impute``
    fills them with each variable's mode (discrete) or mean (continuous), or a sample.
    ``fit`` takes missing entries too: each variable is fitted on its observed entries,
    which is the maximum-likelihood fit under missing-at-random (the factors share no
    parameter), smoothing aside.

    On a table (:mod:`ptheta.data.table`) each column gets the factor of its type:

    - binary, categorical, ordinal: a categorical over its levels, smoothed by ``alpha``
      (an ordinal column's order is not used: its levels get free probabilities);
    - count: a negative binomial with the mean and variance of the observed counts
      (method of moments: real counts are mostly overdispersed, variance > mean, which a
      Poisson cannot fit), or a Poisson with their mean when the variance is not above the
      mean (the negative binomial's limit); the mean is floored at ``alpha / n`` so that a
      column of zeros still leaves positive counts some probability;
    - continuous: a Gaussian with the observed mean and variance (+ ``min_var``),
      truncated to the column's bounds with its exact normaliser where it has bounds
      (the moments are the data's, not the truncated Gaussian's maximum likelihood).

    ``units_`` is then ``discrete``, ``continuous`` or ``mixed`` by the column types; samples
    are rows of codes (:func:`ptheta.data.table.decode` gives back the labels).

    Arguments:
        alpha: pseudo-count added to every level of every variable (0.5 is the
            Krichevsky–Trofimov estimator; 0 is the maximum-likelihood estimate, which gives
            −inf to levels never seen in training).
        min_var: added to each Gaussian variance so that constant features keep a density.

    Fitted attributes:
        probs_: (D, K) level probabilities (discrete data).
        mean_, var_: (D,) Gaussian means and variances (continuous data).
        table_probs_: (D, K_max) level probabilities of a table's label columns (rows of
            other columns are 0), table data.
        table_mean_, table_var_: (D,) the mean and variance of each count and continuous
            column of a table (0 for label columns).

    Example:
        >>> import ptheta
        >>> data = ptheta.datasets.load("digits-binary")
        >>> m = ptheta.make("independent").fit(data.train.x)
        >>> m.score_samples(data.test.x).shape
        (447,)
    """

    name: ClassVar[str] = "independent"
    family: ClassVar[str] = "baselines"
    likelihood: ClassVar[str] = "exact"
    data_kinds: ClassVar[tuple[str, ...]] = ("binary", "categorical", "continuous", "table")
    can_marginalise: ClassVar[bool] = True
    fits_missing: ClassVar[bool] = True
    abilities: ClassVar[dict[str, Any]] = {"closed_form": True, "streams": True}
    presets: ClassVar[dict[str, dict[str, Any]]] = {"demo": {}, "explorer": {}}
    parameters: ClassVar[dict[str, Param]] = {"alpha": Float(low=0), "min_var": Float(low=0)}

    def __init__(self, *, alpha: float = 0.5, min_var: float = 1e-6) -> None:
        self.alpha = alpha
        self.min_var = min_var

    def _fit(self, x: np.ndarray, y: Any, spec: DataSpec) -> None:
        self._fit_stream(ArraySource(x), y, spec)  # one computation, in memory or streamed

    def _fit_stream(self, data: Source, y: Any, spec: DataSpec) -> None:
        alpha, min_var = float(self.alpha), float(self.min_var)
        columns = spec.columns if spec.kind == "table" else None
        d = int(np.prod(spec.event_shape))
        if columns is not None:
            labelled = np.array([c.type in LABEL_TYPES for c in columns])
            k = max([c.n_levels for c in columns if c.type in LABEL_TYPES] or [1])
        else:
            labelled = np.full(d, spec.is_discrete)
            k = int(spec.n_categories or 1)
        moments = ~labelled
        # the shift of the centred sums: a value of each variable (a constant one sums to 0)
        shift = first_observed(data)[moments] if moments.any() else np.zeros(0)

        def statistics(batch: np.ndarray, _: Any) -> dict[str, Any]:
            flat = flat_rows(batch)
            out: dict[str, Any] = {"observed": _observed(flat).sum(axis=0)}
            if labelled.any():
                out["levels"] = level_counts(flat[:, labelled], k)  # (D_labelled, K)
            if moments.any():
                z = flat[:, moments] - shift
                z = np.where(np.isnan(z), 0.0, z)  # a missing entry adds nothing
                out["sum"], out["sum_sq"] = z.sum(axis=0), (z * z).sum(axis=0)
            return out

        stats = accumulate(data, statistics)
        empty = np.flatnonzero(stats["observed"] == 0)
        if empty.size:
            name = columns[empty[0]].name if columns is not None else int(empty[0])
            raise DataError(
                f"variable {name!r} of the training data has no observed value (every entry "
                "is NaN); drop it"
            )
        n = stats["observed"][moments]
        mean, var, constant = np.zeros(0), np.zeros(0), np.zeros(0, dtype=bool)
        if moments.any():
            mean = shift + stats["sum"] / n
            var = np.maximum(stats["sum_sq"] / n - (stats["sum"] / n) ** 2, 0.0)
            constant = stats["sum_sq"] == 0  # exactly: every value equals the shift
        if columns is not None:
            self._fit_table(columns, stats.get("levels"), n, mean, var, constant)
        elif spec.is_discrete:
            counts = stats["levels"] + alpha
            self.probs_ = counts / counts.sum(axis=1, keepdims=True)
        else:
            self.mean_ = mean
            if constant.any():
                which = np.flatnonzero(constant)
                warnings.warn(
                    f"{which.size} feature(s) are constant in the training data (first: "
                    f"{which[:5].tolist()}); their variance is min_var={min_var:g}, so "
                    "held-out values that differ get almost no density. If the data are "
                    "discrete, declare their kind; otherwise raise min_var.",
                    UserWarning,
                    stacklevel=4,
                )
            self.var_ = var + min_var

    def _fit_table(
        self,
        columns: tuple[ColumnSpec, ...],
        levels: np.ndarray | None,
        n: np.ndarray,
        mean: np.ndarray,
        var: np.ndarray,
        constant: np.ndarray,
    ) -> None:
        """One factor per column from its observed cells' statistics: the level counts
        (D_labelled, K_max) of the label columns, and the count, mean, variance and
        constancy of the others, in column order."""
        alpha, min_var = float(self.alpha), float(self.min_var)
        d = len(columns)
        k_max = max([c.n_levels for c in columns if c.type in LABEL_TYPES] or [1])
        self.table_probs_ = np.zeros((d, k_max))
        self.table_mean_ = np.zeros(d)
        self.table_var_ = np.zeros(d)
        i_label = i_moment = 0
        for j, col in enumerate(columns):
            if col.type in LABEL_TYPES:
                counts = levels[i_label, : col.n_levels] + alpha
                self.table_probs_[j, : col.n_levels] = counts / counts.sum()
                i_label += 1
                continue
            m, v, i = mean[i_moment], var[i_moment], i_moment
            i_moment += 1
            if col.type == "count":
                self.table_mean_[j] = max(m, alpha / n[i])
                self.table_var_[j] = v
                continue
            self.table_mean_[j] = m
            self.table_var_[j] = v + min_var
            if constant[i]:
                warnings.warn(
                    f"column {col.name!r} is constant in the training data; its variance "
                    f"is min_var={min_var:g}, so held-out values that differ get almost "
                    "no density; declare it a label column, or raise min_var.",
                    UserWarning,
                    stacklevel=5,
                )

    def _columns(self) -> tuple[ColumnSpec, ...] | None:
        """The table's columns (a model of a table), else None."""
        return self.fitted_spec.columns

    def _log_factors(self, flat: np.ndarray) -> np.ndarray:
        """log p(x_d) for every entry, shape (N, D); 0 where x_d is missing (NaN)."""
        missing = np.isnan(flat) if flat.dtype.kind == "f" else np.zeros(flat.shape, bool)
        columns = self._columns()
        if columns is not None:
            out = np.zeros(flat.shape)
            for j, col in enumerate(columns):
                seen = ~missing[:, j]
                out[seen, j] = self._column_log_prob(j, col, flat[seen, j])
            return out
        if hasattr(self, "probs_"):
            with np.errstate(divide="ignore"):
                logp = np.log(self.probs_)  # (D, K)
            levels = np.where(missing, 0, flat).astype(np.int64)
            out = logp[np.arange(flat.shape[1])[None, :], levels]
        else:
            z = (flat - self.mean_) ** 2 / self.var_
            out = -0.5 * (z + np.log(2 * np.pi * self.var_))
        return np.where(missing, 0.0, out)

    def _score_samples(self, x: np.ndarray) -> np.ndarray:
        # a missing entry's factor integrates (sums) to one: dropping it is exact
        return self._log_factors(x.reshape(len(x), -1)).sum(axis=1)

    def _column_log_prob(self, j: int, col: ColumnSpec, v: np.ndarray) -> np.ndarray:
        """log p(x_j) of observed cells ``v`` (n,) of table column ``j``."""
        from scipy.special import gammaln, xlogy

        mean, var = self.table_mean_[j], self.table_var_[j]
        if col.type in LABEL_TYPES:
            with np.errstate(divide="ignore"):
                return np.log(self.table_probs_[j, v.astype(np.int64)])
        if col.type == "count":
            if var > mean:  # negative binomial: r successes, success probability p
                r, p = mean**2 / (var - mean), mean / var
                return (
                    gammaln(v + r) - gammaln(r) - gammaln(v + 1) + r * np.log(p) + v * np.log1p(-p)
                )
            return xlogy(v, mean) - mean - gammaln(v + 1)  # Poisson
        std = np.sqrt(var)
        log_pdf = -0.5 * ((v - mean) ** 2 / var + np.log(2 * np.pi * var))
        a, b = _standard_bounds(col, mean, std)
        return log_pdf - _log_normal_mass(a, b)

    def _impute(self, x: np.ndarray, method: str, rng: np.random.Generator) -> np.ndarray:
        flat = x.reshape(len(x), -1).copy()
        missing = np.isnan(flat)
        columns = self._columns()
        if method == "sample":
            fill = self._sample(len(flat), None, rng).astype(np.float64)
        elif columns is not None:
            fill = np.broadcast_to(self._table_modes(columns), flat.shape)
        elif hasattr(self, "probs_"):
            fill = np.broadcast_to(self.probs_.argmax(axis=1).astype(np.float64), flat.shape)
        else:
            fill = np.broadcast_to(self.mean_, flat.shape)
        flat[missing] = fill[missing]
        return flat

    def _table_modes(self, columns: tuple[ColumnSpec, ...]) -> np.ndarray:
        """(D,) the most probable value of each column: the likeliest level, the mode of
        the count distribution, the Gaussian's mean clipped to the bounds."""
        modes = np.empty(len(columns))
        for j, col in enumerate(columns):
            mean, var = self.table_mean_[j], self.table_var_[j]
            if col.type in LABEL_TYPES:
                modes[j] = self.table_probs_[j, : col.n_levels].argmax()
            elif col.type == "count":
                if var > mean:
                    r, p = mean**2 / (var - mean), mean / var
                    modes[j] = np.floor((r - 1) * (1 - p) / p) if r > 1 else 0.0
                else:
                    modes[j] = np.floor(mean)  # a Poisson's mode (the lower one of a tie)
            else:
                lo = -np.inf if col.lower is None else col.lower
                hi = np.inf if col.upper is None else col.upper
                modes[j] = np.clip(mean, lo, hi)
        return modes

    def _sample_table(
        self, n: int, columns: tuple[ColumnSpec, ...], rng: np.random.Generator
    ) -> np.ndarray:
        """n rows (n, D), drawn column by column."""
        from scipy.stats import truncnorm

        out = np.empty((n, len(columns)))
        for j, col in enumerate(columns):
            mean, var = self.table_mean_[j], self.table_var_[j]
            if col.type in LABEL_TYPES:
                out[:, j] = sample_categorical(self.table_probs_[j, : col.n_levels], rng, size=n)
            elif col.type == "count" and var > mean:
                out[:, j] = rng.negative_binomial(mean**2 / (var - mean), mean / var, size=n)
            elif col.type == "count":
                out[:, j] = rng.poisson(mean, size=n)
            elif col.lower is None and col.upper is None:
                out[:, j] = mean + np.sqrt(var) * rng.standard_normal(n)
            else:  # the inverse CDF of the truncated Gaussian at uniform draws
                std = np.sqrt(var)
                a, b = _standard_bounds(col, mean, std)
                drawn = truncnorm.ppf(rng.random(n), a, b, loc=mean, scale=std)
                out[:, j] = np.clip(drawn, col.lower, col.upper)  # rounding at a bound
        return out

    def _sample(self, n: int, y: Any, rng: np.random.Generator) -> np.ndarray:
        columns = self._columns()
        if columns is not None:
            return self._sample_table(n, columns, rng)
        if hasattr(self, "probs_"):
            return sample_categorical(self.probs_, rng, size=n)  # (n, D)
        return self.mean_ + np.sqrt(self.var_) * rng.standard_normal((n, self.mean_.size))

    def closed_form(self) -> dict[str, np.ndarray] | None:
        """The fitted distribution for closed-form entropy and KL: ``{"probs": (D, K)}``
        (independent categorical factors) or ``{"mean": (D,), "cov": (D,)}`` (a diagonal
        Gaussian); None for a table (its count and bounded factors have neither form)."""
        self._check_fitted()
        if self._columns() is not None:  # counts and truncated Gaussians: neither form
            return None
        if hasattr(self, "probs_"):
            return {"probs": np.asarray(self.probs_, dtype=np.float64)}
        return {
            "mean": np.asarray(self.mean_, np.float64),
            "cov": np.asarray(self.var_, np.float64),
        }

    def _n_parameters(self) -> int:
        columns = self._columns()
        if columns is not None:  # K - 1 per label column, 1 per Poisson, 2 otherwise
            return sum(
                c.n_levels - 1
                if c.type in LABEL_TYPES
                else 1
                if c.type == "count" and self.table_var_[j] <= self.table_mean_[j]
                else 2
                for j, c in enumerate(columns)
            )
        if hasattr(self, "probs_"):
            return self.probs_.shape[0] * (self.probs_.shape[1] - 1)
        return 2 * self.mean_.size

    def _expected_shapes(self, spec: DataSpec) -> dict[str, tuple[int, ...]]:
        if spec.kind != "table":
            return {}
        d = len(spec.columns)
        k_max = max([c.n_levels for c in spec.columns if c.type in LABEL_TYPES] or [1])
        return {"table_probs_": (d, k_max), "table_mean_": (d,), "table_var_": (d,)}


def level_counts(flat: np.ndarray, k: int) -> np.ndarray:
    """(D, K) counts of each level 0..K−1 of each column of ``flat`` (N, D) (int codes, or
    floats with NaN for missing entries, which are counted nowhere), as float64."""
    d = flat.shape[1]
    if flat.dtype.kind == "f":
        seen = ~np.isnan(flat)
        cols = np.broadcast_to(np.arange(d), flat.shape)[seen]
        cell = cols * k + flat[seen].astype(np.int64)
    else:
        cell = (np.arange(d) * k + flat.astype(np.int64, copy=False)).ravel()
    return np.bincount(cell, minlength=d * k).reshape(d, k).astype(np.float64)


def _observed(flat: np.ndarray) -> np.ndarray:
    """(N, D) bool: the entries that are not NaN (all of them in an integer array)."""
    return ~np.isnan(flat) if flat.dtype.kind == "f" else np.ones(flat.shape, dtype=bool)


def _standard_bounds(col: ColumnSpec, mean: float, std: float) -> tuple[float, float]:
    """A continuous column's bounds in standard units, (lower − mean) / std and
    (upper − mean) / std, ∓inf where unbounded."""
    a = -np.inf if col.lower is None else (col.lower - mean) / std
    b = np.inf if col.upper is None else (col.upper - mean) / std
    return a, b


def _log_normal_mass(a: float, b: float) -> float:
    """log(Φ(b) − Φ(a)) for a < b without cancellation: on the side of the mass where
    the smaller tail is computed (log Φ of a negative argument is accurate)."""
    from scipy.special import log_ndtr

    if a > 0:  # Φ(b) − Φ(a) = Φ(−a) − Φ(−b), both small
        a, b = -b, -a
    hi, lo = log_ndtr(b), log_ndtr(a)
    return float(hi + np.log1p(-np.exp(lo - hi)))
