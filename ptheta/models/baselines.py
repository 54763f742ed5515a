"""Baselines: the fully independent model (Bernoulli, categorical or Gaussian per variable)."""

from __future__ import annotations

import warnings
from typing import Any, ClassVar

import numpy as np

from ptheta.data.spec import DataSpec
from ptheta.models.base import GenerativeModel
from ptheta.models.sampling import sample_categorical
from ptheta.params import Float, Param


class Independent(GenerativeModel):
    """Every variable on its own: p(x) = ∏_d p(x_d).

    The factor is chosen by the data kind: Bernoulli for binary data, categorical for
    categorical data (both with additive smoothing ``alpha``), Gaussian for continuous data
    (variance floored by ``min_var``). Fitted in closed form; the log-likelihood is exact.
    Missing entries (NaN) are marginalised exactly by dropping their factors; ``impute``
    fills them with each variable's mode (discrete) or mean (continuous), or a sample.

    Arguments:
        alpha: pseudo-count added to every level of every variable (0.5 is the
            Krichevsky–Trofimov estimator; 0 is the maximum-likelihood estimate, which gives
            −inf to levels never seen in training).
        min_var: added to each Gaussian variance so that constant features keep a density.

    Fitted attributes:
        probs_: (D, K) level probabilities (discrete data).
        mean_, var_: (D,) Gaussian means and variances (continuous data).

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
    data_kinds: ClassVar[tuple[str, ...]] = ("binary", "categorical", "continuous")
    can_marginalise: ClassVar[bool] = True
    abilities: ClassVar[dict[str, Any]] = {"closed_form": True}
    presets: ClassVar[dict[str, dict[str, Any]]] = {"demo": {}, "explorer": {}}
    parameters: ClassVar[dict[str, Param]] = {"alpha": Float(low=0), "min_var": Float(low=0)}

    def __init__(self, *, alpha: float = 0.5, min_var: float = 1e-6) -> None:
        self.alpha = alpha
        self.min_var = min_var

    def _fit(self, x: np.ndarray, y: Any, spec: DataSpec) -> None:
        alpha, min_var = float(self.alpha), float(self.min_var)
        flat = x.reshape(len(x), -1)
        if spec.is_discrete:
            k = spec.n_categories
            counts = np.zeros((flat.shape[1], k))
            for level in range(k):
                counts[:, level] = (flat == level).sum(axis=0)
            counts += alpha
            self.probs_ = counts / counts.sum(axis=1, keepdims=True)
        else:
            self.mean_ = flat.mean(axis=0)
            var = flat.var(axis=0)
            constant = np.flatnonzero(np.ptp(flat, axis=0) == 0)
            if constant.size:
                warnings.warn(
                    f"{constant.size} feature(s) are constant in the training data (first: "
                    f"{constant[:5].tolist()}); their variance is min_var={min_var:g}, so "
                    "held-out values that differ get almost no density. If the data are "
                    "discrete, declare their kind; otherwise raise min_var.",
                    UserWarning,
                    stacklevel=3,
                )
            self.var_ = var + min_var

    def _log_factors(self, flat: np.ndarray) -> np.ndarray:
        """log p(x_d) for every entry, shape (N, D); 0 where x_d is missing (NaN)."""
        missing = np.isnan(flat) if flat.dtype.kind == "f" else np.zeros(flat.shape, bool)
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

    def _impute(self, x: np.ndarray, method: str, rng: np.random.Generator) -> np.ndarray:
        flat = x.reshape(len(x), -1).copy()
        missing = np.isnan(flat)
        if method == "sample":
            fill = self._sample(len(flat), None, rng).astype(np.float64)
        elif hasattr(self, "probs_"):
            fill = np.broadcast_to(self.probs_.argmax(axis=1).astype(np.float64), flat.shape)
        else:
            fill = np.broadcast_to(self.mean_, flat.shape)
        flat[missing] = fill[missing]
        return flat

    def _sample(self, n: int, y: Any, rng: np.random.Generator) -> np.ndarray:
        if hasattr(self, "probs_"):
            return sample_categorical(self.probs_, rng, size=n)  # (n, D)
        return self.mean_ + np.sqrt(self.var_) * rng.standard_normal((n, self.mean_.size))

    def closed_form(self) -> dict[str, np.ndarray]:
        """The fitted distribution for closed-form entropy and KL: ``{"probs": (D, K)}``
        (independent categorical factors) or ``{"mean": (D,), "cov": (D,)}`` (a diagonal
        Gaussian)."""
        self._check_fitted()
        if hasattr(self, "probs_"):
            return {"probs": np.asarray(self.probs_, dtype=np.float64)}
        return {
            "mean": np.asarray(self.mean_, np.float64),
            "cov": np.asarray(self.var_, np.float64),
        }

    def _n_parameters(self) -> int:
        if hasattr(self, "probs_"):
            return self.probs_.shape[0] * (self.probs_.shape[1] - 1)
        return 2 * self.mean_.size
