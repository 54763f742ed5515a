"""Naive Bayes: the generative classifier p(y) ∏_i p(x_i | y) (Bernoulli, categorical, Gaussian)."""

from __future__ import annotations

import warnings
from typing import Any, ClassVar

import numpy as np

from ptheta.data.spec import DataSpec
from ptheta.data.stream import ArraySource, Source, accumulate
from ptheta.errors import DataError
from ptheta.models.base import GenerativeModel
from ptheta.models.classifier import PRIOR_PARAMS, BayesRule
from ptheta.models.sampling import sample_categorical
from ptheta.params import Float, Param

# values in one block of the Gaussian scoring's (rows, 2D) products (~8 MB)
_BLOCK_VALUES = 2**20
# up to this many classes the Gaussian moments are summed class by class (numpy reductions,
# no BLAS products with C rows: at 2 threads OpenBLAS spends more on such thin products
# than they compute); above, one product with the one-hot codes
_FEW_CLASSES = 64


class NaiveBayes(BayesRule, GenerativeModel):
    """Naive Bayes: p(x, y) = p(y) ∏_i p(x_i | y), fitted in closed form.

    The factor p(x_i | y) follows the data kind: Bernoulli for binary data, categorical for
    categorical data (both smoothed by the pseudo-count ``alpha``, as scikit-learn's
    BernoulliNB and CategoricalNB), Gaussian for continuous data (each class variance plus
    ``var_smoothing`` × the largest feature variance, as scikit-learn's GaussianNB). With the
    same smoothing, ``predict_proba`` equals scikit-learn's.

    **Fitted from sums over batches** (``capabilities().streams``): the counts of
    (class, feature, level) cells, or each class's count, Σ(x − s_c) and Σ(x − s_c)² per
    feature about the class's first example s_c (a constant feature's sums are exactly
    0), summed over the batches of the data with :func:`~ptheta.data.stream.accumulate`
    (all-reduced over the processes under ``torchrun``); the labels are held in memory.
    The variance over all classes that scales ``var_smoothing`` merges the classes'
    moments (Chan, Golub & LeVeque's update). An in-memory fit is the same computation.

    ``score_samples(X)`` is the exact marginal log p(x) = log Σ_y p(x, y) in nats.
    Missing entries (NaN) are marginalised exactly, by dropping their factors, in
    ``score_samples`` and in ``predict_proba`` (so ``predict`` is the Bayes rule of
    p(y | x_observed)).

    **Missing data in training.** ``fit`` takes NaN features (the labels must all be
    given). With x_i missing summed out, the observed-data likelihood
    Π_n p(y_n) Π_{i observed in n} p(x_ni | y_n) still factorises over (class, feature),
    so its maximiser (with the pseudo-counts α: the MAP estimate) is closed form and no
    iteration is needed: each (class, feature) factor is estimated from the rows of that
    class where that feature is observed — the level counts, or the count, Σ(x − s) and
    Σ(x − s)² of the observed values. This is the exact maximiser of the observed-data
    likelihood (missing at random), the fixed point EM would reach in one step. A
    discrete feature never observed in a class keeps its prior: p(x_i = k | y) = 1/K
    (its counts are all α), also for a column that is entirely NaN. A continuous
    feature never observed in a class has no Gaussian to estimate: ``fit`` refuses it
    with a DataError naming the feature and the class. The shift s of a class's
    continuous sums is its first example's value, or, where that is missing, the
    class's mean of the observed values (one extra pass over the data, only then);
    the variance over all classes that scales ``var_smoothing`` merges the classes'
    moments of the observed values, each with its own count. ``impute(method="sample")`` draws
    y ~ p(y | x_obs), then every missing x_i ~ p(x_i | y); ``method="mode"`` fills each
    missing entry on its own with the mode of p(x_i | x_obs) = Σ_y p(y | x_obs) p(x_i | y)
    (the lowest level on ties) for discrete data, and with its mean
    Σ_y p(y | x_obs) μ_{y,i} for continuous data. (Entry by entry: not the joint mode.)

    Arguments:
        alpha: pseudo-count added to every level of every feature in every class (> 0;
            1.0 is Laplace smoothing, scikit-learn's default). Where a class has fewer
            training examples than the K > 2 levels (256-level images from a small
            folder), most levels are never seen in a class, their probability
            α / (n_c + K α) is set by the class size, and no α helps: ``fit`` warns and
            suggests fewer levels or continuous data.
        var_smoothing: fraction of the largest feature variance added to every Gaussian
            variance (scikit-learn's GaussianNB default, 1e-9).
        prior: ``"empirical"`` (smoothed class frequencies) or ``"uniform"`` (1 / C).
        prior_alpha: pseudo-count added to every class count of the empirical prior
            (0 is scikit-learn's prior).

    Fitted attributes:
        classes_ (C,) sorted labels; class_count_ (C,); class_log_prior_ (C,);
        feature_log_prob_ (C, D, K): log p(x_i = k | y) (discrete data);
        theta_, var_ (C, D): Gaussian means and variances, epsilon_ (continuous data).

    Returns (of ``predict_proba``): p(y | x), shape (N, C), columns in ``classes_`` order.

    Example:
        >>> import ptheta
        >>> data = ptheta.datasets.load("digits-binary")
        >>> m = ptheta.make("naive-bayes").fit(data.train.x, data.train.y)
        >>> m.predict_proba(data.test.x).shape
        (447, 10)
        >>> float((m.predict(data.test.x) == data.test.y).mean()) > 0.8
        True
    """

    name: ClassVar[str] = "naive-bayes"
    family: ClassVar[str] = "graphical"
    likelihood: ClassVar[str] = "exact"
    abilities: ClassVar[dict[str, Any]] = {"embeds": True, "streams": True}
    data_kinds: ClassVar[tuple[str, ...]] = ("binary", "categorical", "continuous")
    needs_labels: ClassVar[bool] = True
    class_conditional: ClassVar[bool] = True
    can_marginalise: ClassVar[bool] = True
    fits_missing: ClassVar[bool] = True
    # the explorer's spam view fits it with its defaults
    presets: ClassVar[dict[str, dict[str, Any]]] = {"explorer": {}}
    parameters: ClassVar[dict[str, Param]] = {
        "alpha": Float(
            low=0,
            low_open=True,
            hint="0 gives levels unseen in a class probability 0, and undefined posteriors; "
            "try 1.0",
        ),
        "var_smoothing": Float(low=0),
        **PRIOR_PARAMS,
    }

    def __init__(
        self,
        alpha: float = 1.0,
        *,
        var_smoothing: float = 1e-9,
        prior: str = "empirical",
        prior_alpha: float = 0.0,
    ) -> None:
        self.alpha = alpha
        self.var_smoothing = var_smoothing
        self.prior = prior
        self.prior_alpha = prior_alpha

    # ----------------------------------------------------------------- fitting
    def _fit(self, x: np.ndarray, y: np.ndarray | None, spec: DataSpec) -> None:
        self._fit_stream(ArraySource(x), y, spec)  # one computation, in memory or streamed

    def _fit_stream(self, data: Source, y: np.ndarray | None, spec: DataSpec) -> None:
        alpha, var_smoothing = float(self.alpha), float(self.var_smoothing)
        assert y is not None  # the base checks needs_labels
        index = self._fit_prior(y, self.prior, self.prior_alpha)
        n_classes, d = len(self.classes_), int(np.prod(spec.event_shape))
        if spec.is_discrete:
            k = int(spec.n_categories)

            def counts(batch: np.ndarray, cls: np.ndarray) -> dict[str, np.ndarray]:
                # count of (class, feature, level) cells in one pass: cell = (c·D + i)·K + x_i
                flat = batch.reshape(len(batch), d)
                if flat.dtype.kind == "f":  # NaN marks missing entries: count observed cells
                    seen = ~np.isnan(flat)
                    cell = (cls[:, None] * d + np.arange(d)) * k + np.where(seen, flat, 0)
                    cell = cell.astype(np.int64)[seen]
                else:
                    cell = (cls[:, None] * d + np.arange(d)) * k + flat
                return {"counts": np.bincount(cell.ravel(), minlength=n_classes * d * k)}

            stats = accumulate(data, counts, y=index)
            cells = stats["counts"].reshape(n_classes, d, k) + alpha  # (C, D, K)
            self.feature_log_prob_ = np.log(cells) - np.log(cells.sum(axis=2, keepdims=True))
            self._warn_many_levels(k)
            return
        if len(index) == 1:  # no variance at all, hence no smoothing either
            raise DataError(
                f"{self.name!r} cannot fit Gaussian variances to 1 sample; fit it on two "
                "examples or more, or declare the data discrete"
            )
        # moments about each class's first example (a constant feature sums to exactly 0)
        first = np.full(n_classes, len(index))
        np.minimum.at(first, index, np.arange(len(index)))  # (C,) rows, in class order
        shift = data.read(first).reshape(n_classes, d).astype(np.float64)
        if np.isnan(shift).any():  # a missing first value: shift by the observed mean
            shift = self._observed_means(data, index, shift)

        work: list[np.ndarray] = []  # one (rows, D) array the batches reuse

        def moments(batch: np.ndarray, cls: np.ndarray) -> dict[str, np.ndarray]:
            flat = batch.reshape(len(batch), d).astype(np.float64, copy=False)
            if n_classes <= _FEW_CLASSES:  # class by class, each class's rows gathered once
                if not work or len(work[0]) < len(flat):
                    work[:] = [np.empty((len(flat), d))]
                out = {k: np.zeros((n_classes, d)) for k in ("sum", "sum_sq", "seen")}
                for c in range(n_classes):
                    rows = np.flatnonzero(cls == c)
                    z = np.take(flat, rows, axis=0, out=work[0][: len(rows)])
                    z -= shift[c]  # (n_c, D), NaN where missing
                    total = z.sum(axis=0)
                    if np.isnan(total).any():  # missing entries add nothing
                        seen = ~np.isnan(z)
                        z[~seen] = 0.0
                        total, out["seen"][c] = z.sum(axis=0), seen.sum(axis=0)
                    else:
                        out["seen"][c] = len(z)
                    out["sum"][c], out["sum_sq"][c] = total, np.square(z, out=z).sum(axis=0)
                return out
            # many classes: class sums as products with the one-hot codes
            z = np.take(shift, cls, axis=0)
            np.subtract(flat, z, out=z)  # (n, D), NaN where missing
            seen = ~np.isnan(z)
            z[~seen] = 0.0  # a missing entry adds nothing to the sums
            one_hot = (cls[:, None] == np.arange(n_classes)).astype(np.float64)  # (n, C)
            return {"sum": one_hot.T @ z, "sum_sq": one_hot.T @ (z * z),
                    "seen": one_hot.T @ seen.astype(np.float64)}  # fmt: skip

        stats = accumulate(data, moments, y=index)
        n = stats["seen"]  # (C, D): the observed values of each class and feature
        if (n == 0).any():
            c, i = np.argwhere(n == 0)[0]
            raise DataError(
                f"feature {i} is never observed in class {self.classes_.tolist()[c]!r} (every "
                "entry is NaN): no Gaussian to estimate; drop the feature, add examples of "
                "that class where it is observed, or declare the data discrete"
            )
        self.theta_ = shift + stats["sum"] / n  # (C, D)
        # Σ (x − mean)², exactly 0 for a feature constant in a class (its sums are 0)
        scatter = np.maximum(stats["sum_sq"] - stats["sum"] ** 2 / n, 0.0)
        self.var_ = scatter / n
        # the variance of each feature over all the classes (Chan et al.'s merge of the
        # classes' scatters), whose largest value scales the smoothing
        if (n == self.class_count_[:, None]).all():  # every entry observed
            overall = (self.class_count_ @ self.theta_) / len(index)
            total = scatter.sum(axis=0) + self.class_count_ @ (self.theta_ - overall) ** 2
            largest = float((total / len(index)).max())
        else:  # each feature's classes merged with their own counts of observed values
            seen = n.sum(axis=0)  # (D,)
            overall = (n * self.theta_).sum(axis=0) / seen
            total = scatter.sum(axis=0) + (n * (self.theta_ - overall) ** 2).sum(axis=0)
            largest = float((total / seen).max())
        self.epsilon_ = var_smoothing * largest
        self.var_ += self.epsilon_
        if (self.var_ <= 0).any():
            c, i = np.argwhere(self.var_ <= 0)[0]
            raise DataError(
                f"feature {i} is constant in class {self.classes_.tolist()[c]!r} and the "
                f"smoothing var_smoothing × largest variance ({largest:g}) is 0: no Gaussian "
                "density; drop constant features or declare the data discrete"
            )

    def _warn_many_levels(self, k: int) -> None:
        """Warn where a class has fewer training examples than levels (K > 2): most levels
        of a feature are then never seen in the class, and their probability
        α / (n_c + K α) — which decides the prediction wherever a test value was not seen
        — depends on the class's size n_c, not on the data."""
        counts = self.class_count_.astype(np.int64)
        smallest = int(counts.min())
        if k <= 2 or smallest >= k:
            return
        fewer = 1 << int(np.log2(max(2, smallest // 3)))  # 3 examples a level or more
        names = self.classes_.tolist()[:10]
        shown = ", ".join(f"{c}: {n}" for c, n in zip(names, counts[:10], strict=True))
        more = ", …" if len(counts) > 10 else ""
        warnings.warn(
            f"{self.name} over {k} levels with alpha={float(self.alpha):g}: the smallest "
            f"class has {smallest} training examples (per class: {shown}{more}), fewer than "
            f"its {k} levels, so most levels of each feature are never seen in a class: a "
            f"value unseen in class c gets alpha / (n_c + {k}·alpha), set by the class's "
            "size rather than by the data, and such values weigh on every prediction (a "
            "smaller alpha hands the predictions to the class sizes; no alpha cures it). "
            f"Use fewer levels (e.g. {fewer}: x * {fewer} // {k}, read with --kind "
            f"categorical:{fewer}) or read the data as continuous (--kind continuous: a "
            "Gaussian per feature and class)",
            UserWarning,
            stacklevel=4,
        )

    @staticmethod
    def _observed_means(data: Source, index: np.ndarray, shift: np.ndarray) -> np.ndarray:
        """``shift`` (C, D) with each NaN replaced by the mean of its class's observed values
        of that feature (0 where there is none: the fit refuses those later)."""
        n_classes, d = shift.shape

        def sums(batch: np.ndarray, cls: np.ndarray) -> dict[str, np.ndarray]:
            flat = batch.reshape(len(batch), d)
            seen = ~np.isnan(flat)
            one_hot = (cls[:, None] == np.arange(n_classes)).astype(np.float64)  # (n, C)
            return {"sum": one_hot.T @ np.where(seen, flat, 0.0), "seen": one_hot.T @ seen}

        stats = accumulate(data, sums, y=index)
        with np.errstate(invalid="ignore", divide="ignore"):
            means = np.where(stats["seen"] > 0, stats["sum"] / stats["seen"], 0.0)
        return np.where(np.isnan(shift), means, shift)

    # ----------------------------------------------------------------- inference
    def _joint_log_likelihood(self, x: np.ndarray) -> np.ndarray:
        """log p(y) + Σ_{i observed} log p(x_i | y), shape (N, C); NaN entries are dropped."""
        flat = x.reshape(len(x), -1)  # (N, D)
        missing = np.isnan(flat) if flat.dtype.kind == "f" else None
        observed = None if missing is None or not missing.any() else (~missing).astype(np.float64)
        if hasattr(self, "feature_log_prob_"):
            logp = self.feature_log_prob_  # (C, D, K)
            n_classes, d, k = logp.shape
            levels = flat if observed is None else np.where(missing, 0, flat)
            if k == 2:
                # as BernoulliNB: Σ_i log p(0 | y) + x_i log(p(1 | y) / p(0 | y)), one product
                base = logp[:, :, 0]  # (C, D)
                jll = levels.astype(np.float64) @ (logp[:, :, 1] - base).T  # (N, C)
                jll += base.sum(axis=1) if observed is None else observed @ base.T
            else:
                # look the row log p(x_i | ·) (C,) up at i·K + x_i of a (D·K + 1, C) table and
                # sum the D rows of each example: the product of the examples' one-hot codes,
                # a sparse (N, D·K + 1) matrix with D ones per row, and the table — one fused
                # gather-and-sum, linear in N, never an (N, D, C) array. A missing entry looks
                # up the appended row of zeros: its factor is dropped.
                from scipy import sparse

                table = np.concatenate([logp.reshape(n_classes, d * k).T, np.zeros((1, n_classes))])
                pos = np.asarray(levels, dtype=np.int64) + np.arange(d) * k  # (N, D)
                if observed is not None:
                    pos[missing] = d * k
                n = len(pos)
                one_hot = sparse.csr_matrix(
                    (np.ones(n * d), pos.ravel(), np.arange(0, n * d + 1, d)),
                    shape=(n, d * k + 1),
                )
                jll = np.asarray(one_hot @ table)  # (N, C)
        else:
            jll = self._gaussian_log_likelihood(flat, missing if observed is not None else None)
        return jll + self.class_log_prior_

    def _gaussian_log_likelihood(self, flat: np.ndarray, missing: np.ndarray | None) -> np.ndarray:
        """Σ_{i observed} log N(x_i; θ_ci, σ²_ci) for every row and class, (N, C).

        The quadratic forms as products: with z = x − s and m_c = θ_c − s about the
        classes' mean s, Σ_i (z_i − m_ci)² / σ²_ci = [z², z] · [1/σ²_c, −2 m_c/σ²_c] +
        Σ_i m_ci²/σ²_ci, one (rows, 2D) @ (2D, C) product per block of rows (linear in N, no
        pass per class). The expansion's rounding is about 1e-16 × Σ_i (z_i² + m_ci²)/σ²_ci
        per entry: centring on s keeps it to that of the data's spread, not its offset. A
        missing entry has z = 0 and drops its class terms (``missing`` (N, D) or None).
        """
        n_classes, d = self.theta_.shape
        centre = self.class_count_ @ self.theta_ / self.class_count_.sum()  # (D,)
        inverse = 1.0 / self.var_  # (C, D)
        offset = self.theta_ - centre  # m_c, (C, D)
        coef = np.concatenate([inverse, -2.0 * offset * inverse], axis=1).T  # (2D, C)
        per_feature = offset**2 * inverse + np.log(2 * np.pi * self.var_)  # (C, D)
        out = np.empty((len(flat), n_classes))
        rows = max(1, _BLOCK_VALUES // (2 * d))
        block = np.empty((min(rows, len(flat)), 2 * d))
        for lo in range(0, len(flat), rows):
            part = block[: min(rows, len(flat) - lo)]
            z = part[:, d:]
            np.subtract(flat[lo : lo + len(part)], centre, out=z)
            if missing is not None:
                z[missing[lo : lo + len(part)]] = 0.0
            np.square(z, out=part[:, :d])
            np.matmul(part, coef, out=out[lo : lo + len(part)])
        if missing is None:
            out += per_feature.sum(axis=1)
        else:
            out += (~missing).astype(np.float64) @ per_feature.T
        out *= -0.5
        return out

    def _sample_features(self, index: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """x ~ p(x | y = classes_[index]) for class indices (N,), shape (N, D)."""
        n = len(index)
        if hasattr(self, "feature_log_prob_"):
            log_probs = self.feature_log_prob_  # (C, D, K)
            out = np.empty((n, log_probs.shape[1]), dtype=np.int64)
            for c in range(len(log_probs)):  # per class: no (N, D, K) copy of the table
                rows = index == c
                out[rows] = sample_categorical(log_probs[c], rng, log=True, size=int(rows.sum()))
            return out
        return self.theta_[index] + np.sqrt(self.var_[index]) * rng.standard_normal(
            (n, self.theta_.shape[1])
        )

    def _sample(self, n: int, y: Any, rng: np.random.Generator) -> np.ndarray:
        return self._sample_features(self._class_index(n, y, rng), rng)

    def _impute(self, x: np.ndarray, method: str, rng: np.random.Generator) -> np.ndarray:
        flat = x.reshape(len(x), -1).copy()  # (N, D)
        missing = np.isnan(flat)
        post = self._posterior(flat)  # p(y | x_obs), (N, C)
        if method == "sample":
            # x_mis ⊥ x_obs given y: draw y from its posterior, then x | y
            fill = self._sample_features(sample_categorical(post, rng), rng).astype(np.float64)
            flat[missing] = fill[missing]
        elif hasattr(self, "feature_log_prob_"):
            rows, cols = np.nonzero(missing)
            # p(x_i = k | x_obs) for each missing entry (M, K)
            marginal = np.einsum(
                "mc,cmk->mk", post[rows], np.exp(self.feature_log_prob_[:, cols, :])
            )
            flat[rows, cols] = marginal.argmax(axis=1)
        else:
            flat[missing] = (post @ self.theta_)[missing]  # conditional means (N, D)
        return flat

    def _n_parameters(self) -> int:
        n_classes = len(self.classes_)
        n_prior = n_classes - 1 if self.prior == "empirical" else 0
        if hasattr(self, "feature_log_prob_"):
            _, d, k = self.feature_log_prob_.shape
            return n_prior + n_classes * d * (k - 1)
        return n_prior + 2 * self.theta_.size
