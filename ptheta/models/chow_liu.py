"""Graphical models: the Chow–Liu tree and its class-conditional (TAN) variant."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import numpy as np
from scipy.sparse.csgraph import breadth_first_order, minimum_spanning_tree
from scipy.special import logsumexp, xlogy

from ptheta.data.spec import DataSpec, check_values
from ptheta.data.stream import ArraySource, Source, accumulate
from ptheta.errors import CapabilityError, DataError, ParameterError
from ptheta.models.base import GenerativeModel, only_where, why_not_classify
from ptheta.models.classifier import encode_labels
from ptheta.models.missing import one_hot
from ptheta.models.sampling import sample_categorical
from ptheta.params import Bool, Choice, Float, Int, OneOf, Param, parameter_error

# float32 sums of 0/1 indicators are exact integers up to 2**24: use it below that, it is
# about four times faster than float64 in the count product.
_FLOAT32_EXACT = 2**24
# the count product reads rows in chunks of about this many indicators (32 MB in float32),
# whatever the batch: 256 levels make each row's indicators 255 times wider than the row
_CHUNK_CELLS = 1 << 23
# Peak memory of a fit, in copies of one class's pairwise count tables (D²·K² float64):
# a·C + b for C classes, from the batch's and the running sums (the counts of levels ≥ 1,
# the products of rows with missing entries), the tables (C, D, D, K, K) and the mutual
# information's temporaries; structural EM (missing entries) holds expected counts besides.
# Measured with tracemalloc: 4.97 (C = 1) and 11.6 (C = 3) copies, 11.3 and 29.4 with
# missing entries (tests/models/test_real_size_messages.py checks the bound).
_COPIES = {"complete": (4, 2), "missing": (10, 5)}


def memory_budget() -> int:
    """Bytes a fit may take for its pairwise tables: half the machine's physical memory
    (8 GiB where the platform does not say)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")) // 2
    except (AttributeError, OSError, ValueError):
        return 8 << 30


def pairwise_bytes(d: int, k: int, n_classes: int = 1, *, missing: bool = False) -> int:
    """Peak bytes of a Chow–Liu fit's pairwise count tables: D² variable pairs × K² level
    pairs, 8 bytes a count, in (a·C + b) copies (``_COPIES``; more with missing entries).

    Example:
        >>> round(pairwise_bytes(784, 256) / 2**30)  # GiB: 28×28 grey images, 256 levels
        1801
    """
    a, b = _COPIES["missing" if missing else "complete"]
    return 8 * d * d * k * k * (a * n_classes + b)


def _gib(n_bytes: int) -> str:
    gib = n_bytes / 2**30
    return f"{gib:,.0f}" if gib >= 100 else f"{gib:.3g}"


def check_pairwise_memory(
    d: int, k: int, n_classes: int = 1, *, missing: bool = False, who: str = "'chow-liu'"
) -> None:
    """Refuse, with a DataError naming the sizes and the fixes, a fit whose pairwise count
    tables (:func:`pairwise_bytes`) exceed :func:`memory_budget` — before any is allocated."""
    need, budget = pairwise_bytes(d, k, n_classes, missing=missing), memory_budget()
    if need <= budget:
        return
    per_class = f" × {n_classes} classes" if n_classes > 1 else ""
    others = (
        "fit a family whose size grows with D·K instead: independent, categorical-mixture, "
        "or a neural one (made, pixelcnn)"
    )
    if pairwise_bytes(d, 2, n_classes, missing=missing) > budget:  # binary would not fit
        fix = f"even binary data would not fit: use fewer variables (smaller images), or {others}"
    else:
        fewer = 1 << int(np.log2(max(2.0, np.sqrt(budget / need) * k)))  # fits the budget
        fix = (
            f"binarise the data (e.g. --data mnist-binary, or x > {k // 2 - 1} before "
            f"saving), use fewer levels (e.g. x * {fewer} // {k}, read with --kind "
            f"categorical:{fewer}), or {others}"
        )
    raise DataError(
        f"{who} on {d} variables of {k} levels needs about {_gib(need)} GiB of memory: "
        f"its pairwise count tables hold {d}² variable pairs × {k}² level pairs{per_class}, "
        f"8 bytes a count, several copies while fitting; this machine allows "
        f"{_gib(budget)} GiB (half its memory): {fix}"
    )


class ChowLiuTree(GenerativeModel):
    """Tree-structured Bayesian network p(x) = p(x_r) ∏_{d≠r} p(x_d | x_parent(d)), Chow–Liu.

    **Structure.** The tree maximises the total pairwise mutual information, which makes it
    the maximum-likelihood tree (Chow & Liu, 1968). All D² joint count tables come from one
    matrix product of the one-hot data (N, D·K); the mutual information is that of the
    smoothed pairwise joints p(a, b) ∝ count(a, b) + ``alpha``; the tree is a maximum
    spanning tree (scipy's ``minimum_spanning_tree`` on shifted costs, so that zero-MI pairs
    still connect: the result is always one tree, never a forest). Edges are directed away
    from ``root`` by breadth-first search.

    **Fitted from sums over batches** (``capabilities().streams``): the pairwise counts
    are sums over rows, one product of the indicators per batch (per class for TAN), summed
    with :func:`~ptheta.data.stream.accumulate` (all-reduced over the processes under
    ``torchrun``); the tree and the tables follow from the D × D × K × K counts alone, so
    memory does not grow with N (60,000 binary images of 784 pixels: about a second on
    two CPU cores). An in-memory fit is the same computation.

    **Tables.** p(x_d = b | x_parent = a) = (count(a, b) + α) / (count(a) + K α), which is the
    conditional of the same smoothed pairwise joint; the root's marginal is
    (count(b) + α) / (N + K α), as in the ``independent`` model. The likelihood is exact, and
    except for the smoothing it does not depend on which variable is the root.

    **Missing data.** ``score_samples`` takes NaN for missing entries and returns the exact
    log-marginal of the observed ones by sum-product (messages from the leaves to the root,
    in log space, vectorised over examples). ``impute(method="sample")`` and
    ``sample(given=...)`` draw from the exact conditional p(x_missing | x_observed) (the same
    upward pass, then sampling downwards from the root); ``impute(method="mode")`` returns the
    exact most probable completion, argmax p(x_missing, x_observed), by max-product.

    **Missing values in training: structural EM** (Friedman 1998; for trees, Meilă &
    Jordan 2000). ``fit`` takes NaN entries and maximises the observed-data
    log-likelihood Σ_n log p(x_n,observed) plus the log prior of the smoothing (the
    pseudo-count α makes each table the MAP estimate under a Dirichlet(α + 1) prior).
    It starts from the available-case counts (each pair's counts over the rows where
    both are observed: its own total, its own normalisation of the mutual information).
    Each E-step sums over the batches of the data (``accumulate``: all-reduced under
    ``torchrun``, one pass over the data per iteration) the expected pairwise counts
    Σ_n p(x_i = a, x_j = b | x_n,observed) of every pair (i, j) under the current tree,
    computed exactly by belief propagation on the tree, vectorised over the rows (a
    missing entry has all-ones evidence): a pair with both entries observed adds its
    plain count, one missing adds the posterior marginal of the other, and both missing
    add p(x_i | observed) p(x_j | x_i, observed) from K clamped passes for each variable
    i over the rows where it is missing. A complete row adds its plain counts (the
    complete-data product). The M-step is the complete-data fit on the expected counts:
    mutual information → maximum spanning tree → tables (with α). It maximises the
    expected complete-data log-likelihood plus log prior over trees and tables jointly
    (the root is kept fixed during EM: ``"auto"`` picks it from the available-case
    mutual information; for TAN the classes' informations are weighted by n_c + K²α,
    which makes the tree the exact maximiser), so the objective never decreases.
    ``history_`` records, per iteration, the ``objective`` (log-likelihood plus log
    prior, per example) and ``log_likelihood`` (per example; log p(x_obs, y) for TAN)
    of the parameters the E-step used, and whether the following M-step changed the
    tree (``tree_changed``); EM stops when the objective changes by less than
    ``em_tol`` with the tree unchanged, or after ``em_max_iter`` iterations. Cost of
    one E-step: O(N D K²) for the posterior marginals and O(M D² K³) for the clamped
    passes, with M the rows that have a missing entry (about D·K passes over the rows
    where each variable is missing). A variable never observed is refused. Without NaN
    the fit is the one-pass complete-data fit above, unchanged.

    **Class-conditional (TAN).** With ``class_conditional=True``, ``fit(X, y)`` learns one
    tree shared by all classes from the mutual information conditioned on the class,
    I(x_i; x_j | y) = Σ_y p(y) I(x_i; x_j | y), and tables conditioned on (parent, class):
    the tree-augmented naive Bayes classifier of Friedman, Geiger & Goldszmidt (1997).
    ``score_samples`` is log Σ_y p(y) p(x | y), ``predict_proba`` the Bayes rule p(y | x)
    (missing entries are summed out exactly there too), ``sample(n, y=...)`` draws from
    p(x | y). Its ``mode`` is the most probable (class, completion) pair: the class is
    maximised over with the missing entries, not summed out. This hyper-parameter shadows
    the class attribute of the same name, so each instance says whether it is conditional.

    Arguments:
        alpha: pseudo-count added to every cell of every pairwise count table (0.5 is the
            Krichevsky–Trofimov estimator; 0 gives the maximum-likelihood tree and tables,
            with −inf for level pairs never seen in training).
        root: the index of the root variable, or ``"auto"``: the variable with the largest
            total mutual information with all others (the most central one, which keeps
            the tree shallow; ties go to the lowest index).
        class_conditional: fit a TAN classifier on ``fit(X, y)``.
        em_max_iter: most structural-EM iterations when the training data have missing
            entries.
        em_tol: EM stops when its objective per example changes by less than this (and
            the tree did not change).

    Fitted attributes:
        edges_: list of [parent, child] pairs, in breadth-first order of the child.
        parents_: (D,) parent of each variable, −1 for the root.
        order_: (D,) breadth-first (topological) order, starting at the root.
        root_: index of the root.
        mutual_info_: (D, D) pairwise mutual information in nats (conditional on the class
            for TAN) with zeros on the diagonal.
        cpts_: (D, K, K) tables, ``cpts_[d, a, b] = p(x_d = b | x_parent(d) = a)``; the
            root's rows all hold its marginal. (C, D, K, K) per class for TAN.
        classes_, class_prior_: (C,) class labels and their frequencies (TAN only).
        history_, n_iter_, converged_: structural-EM records (only when the training data
            had missing entries).

    Example:
        >>> import ptheta
        >>> data = ptheta.datasets.load("groundtruth-tree")
        >>> m = ptheta.make("chow-liu").fit(data.train.x)
        >>> truth = {frozenset(e) for e in data.extra["true_edges"]}
        >>> {frozenset(e) for e in m.edges_} == truth
        True

    References:
        Chow & Liu, "Approximating discrete probability distributions with dependence
        trees", IEEE Trans. Inf. Theory (1968); Friedman, Geiger & Goldszmidt, "Bayesian
        network classifiers", Machine Learning (1997); Friedman, "The Bayesian structural
        EM algorithm", UAI (1998); Meilă & Jordan, "Learning with mixtures of trees",
        JMLR (2000).
    """

    name: ClassVar[str] = "chow-liu"
    family: ClassVar[str] = "graphical"
    likelihood: ClassVar[str] = "exact"
    abilities: ClassVar[dict[str, Any]] = {"exports_structure": True, "streams": True}
    data_kinds: ClassVar[tuple[str, ...]] = ("binary", "categorical")
    can_marginalise: ClassVar[bool] = True
    fits_missing: ClassVar[bool] = True
    presets: ClassVar[dict[str, dict[str, Any]]] = {"demo": {}, "explorer": {}}
    parameters: ClassVar[dict[str, Param]] = {
        "alpha": Float(low=0),
        "root": OneOf(Choice("auto"), Int(low=0)),
        "class_conditional": Bool(),
        "em_max_iter": Int(low=1),
        "em_tol": Float(low=0),
    }

    def __init__(
        self,
        *,
        alpha: float = 0.5,
        root: int | str = "auto",
        class_conditional: bool = False,
        em_max_iter: int = 100,
        em_tol: float = 1e-6,
    ) -> None:
        self.alpha = alpha
        self.root = root
        self.class_conditional = class_conditional
        self.em_max_iter = em_max_iter
        self.em_tol = em_tol

    # ----------------------------------------------------------------- fitting
    def _check_root(self, n_dims: int) -> None:
        """The root is one of the data's variables (a rule of the data)."""
        if self.root != "auto" and not self.root < n_dims:
            what = f"'auto' or a variable index in 0..{n_dims - 1}"
            raise parameter_error(self.name, "root", what, self.root)

    def _fit(self, x: np.ndarray, y: np.ndarray | None, spec: DataSpec) -> None:
        self._fit_stream(ArraySource(x), y, spec)  # one computation, in memory or streamed

    def _fit_stream(self, data: Source, y: np.ndarray | None, spec: DataSpec) -> None:
        d = int(np.prod(spec.event_shape))
        k = int(spec.n_categories)
        self._check_root(d)
        if self.class_conditional:
            if y is None:
                raise DataError(
                    f"{self.name!r} with class_conditional=True needs class labels: it "
                    "requires y to be passed, but the target y is None; call fit(X, y), or "
                    "set class_conditional=False"
                )
            classes, index = encode_labels(self.name, y)
        else:
            classes, index = None, None
        n_classes = 1 if classes is None else len(classes)
        check_pairwise_memory(d, k, n_classes, who=repr(self.name))  # before any table

        def statistics(batch: np.ndarray, cls: np.ndarray | None) -> dict[str, np.ndarray]:
            flat = batch.reshape(len(batch), d)
            if classes is None:
                cls = np.zeros(len(flat), dtype=np.int64)
            if flat.dtype.kind != "f":  # no missing entry: the complete-data counts
                return {
                    **_pair_sums(flat, k, cls, n_classes),
                    "available": np.zeros((n_classes, d * k, d * k)),
                    "incomplete": np.zeros(n_classes),
                    "seen": np.full(d, float(len(flat))),
                }
            missing = np.isnan(flat)
            partial = missing.any(axis=1)
            whole = flat[~partial].astype(np.int64)
            # the rows with a missing entry: counts of each pair over the rows where both
            # entries are observed (a missing entry's one-hot block is all zeros)
            codes = one_hot(flat[partial], k)  # (M, D·K)
            part = cls[partial]
            available = np.stack([codes[part == c].T @ codes[part == c] for c in range(n_classes)])
            return {
                **_pair_sums(whole, k, cls[~partial], n_classes),
                "available": available,
                "incomplete": np.bincount(part, minlength=n_classes).astype(np.float64),
                "seen": (~missing).sum(axis=0).astype(np.float64),
            }

        # the pairwise counts, summed over batches (all-reduced under torchrun)
        stats = accumulate(data, statistics, y=index)
        if stats["incomplete"].any():  # missing entries: structural EM
            self._fit_em(data, index, classes, stats, d, k)
            return
        counts = _counts_from_sums(stats["high"], stats["n"], d, k)  # (C, D, D, K, K)
        n = float(stats["n"].sum())
        alpha = float(self.alpha)
        mi = _mutual_information(counts, alpha)  # (D, D)
        root = int(np.argmax(mi.sum(axis=1))) if self.root == "auto" else int(self.root)
        parents, order = _orient(maximum_spanning_tree(mi), root)
        self._store(_tables(counts, parents, order, alpha), parents, order, mi, classes)
        if classes is not None:
            self.class_prior_ = stats["n"] / n

    def _store(
        self,
        tables: np.ndarray,
        parents: np.ndarray,
        order: np.ndarray,
        mi: np.ndarray,
        classes: np.ndarray | None,
    ) -> None:
        """Set the fitted tree and its tables (C, D, K, K)."""
        self.parents_ = parents
        self.order_ = order
        self.root_ = int(order[0])
        self.edges_ = [[int(parents[c]), int(c)] for c in order[1:]]
        self.mutual_info_ = mi
        if classes is None:
            self.cpts_ = tables[0]
        else:
            self.cpts_ = tables
            self.classes_ = classes

    def _fit_em(
        self,
        data: Source,
        index: np.ndarray | None,
        classes: np.ndarray | None,
        stats: dict[str, np.ndarray],
        d: int,
        k: int,
    ) -> None:
        """Structural EM on data with missing entries (see the class docstring), from the
        available-case counts of the first pass ``stats``. Records ``history_``."""
        # structural EM holds expected counts besides: refused before its first E-step
        check_pairwise_memory(d, k, len(stats["n"]), missing=True, who=repr(self.name))
        never = np.flatnonzero(stats["seen"] == 0)
        if never.size:
            raise DataError(
                f"variable {int(never[0])} of the training data has no observed value (every "
                "entry is NaN): nothing to learn its tables from; drop it"
            )
        alpha = float(self.alpha)
        class_rows = stats["n"] + stats["incomplete"]  # (C,)
        n = float(class_rows.sum())
        available = _counts_from_sums(stats["high"], stats["n"], d, k) + _blocks(
            stats["available"], d, k
        )
        mi = _expected_information(available, alpha, class_rows)
        root = int(np.argmax(mi.sum(axis=1))) if self.root == "auto" else int(self.root)
        parents, order = _orient(maximum_spanning_tree(mi), root)
        tables = _tables(available, parents, order, alpha)
        log_class = np.zeros(1) if classes is None else np.log(class_rows / n)

        history: list[dict[str, Any]] = []
        prev, converged = -np.inf, False
        for step in range(1, int(self.em_max_iter) + 1):
            with np.errstate(divide="ignore"):  # alpha = 0 leaves zero probabilities
                logt = np.log(tables)

            def expected(
                batch: np.ndarray, cls: np.ndarray | None, logt: np.ndarray = logt,
                parents: np.ndarray = parents, order: np.ndarray = order,
            ) -> dict[str, Any]:  # fmt: skip
                if classes is None:
                    cls = np.zeros(len(batch), dtype=np.int64)
                return _expected_sums(batch.reshape(len(batch), d), cls, logt, parents, order,
                                      log_class)  # fmt: skip

            sums = accumulate(data, expected, y=index)
            loglik = float(sums["loglik"])
            if not np.isfinite(loglik):
                raise DataError(
                    f"{self.name!r} with alpha=0: a training example has probability 0 under "
                    "the tree fitted so far (its observed entries never occur together in the "
                    "counts); use alpha > 0"
                )
            children = order[1:]
            log_prior = float(
                xlogy(alpha, tables[:, children]).sum() + xlogy(alpha, tables[:, root, 0]).sum()
            )
            objective = (loglik + log_prior) / n
            counts = _counts_from_sums(sums["high"], sums["n"], d, k) + _blocks(
                sums["expected"], d, k
            )
            counts = (counts + counts.transpose(0, 2, 1, 4, 3)) / 2  # exact symmetry
            mi = _expected_information(counts, alpha, class_rows)
            new_parents, order = _orient(maximum_spanning_tree(mi), root)
            changed = bool((new_parents != parents).any())
            parents = new_parents
            tables = _tables(counts, parents, order, alpha)
            history.append(
                {"step": step, "objective": objective, "log_likelihood": loglik / n,
                 "tree_changed": changed}
            )  # fmt: skip
            if not changed and abs(objective - prev) < float(self.em_tol):
                converged = True
                break
            prev = objective
        self._store(tables, parents, order, mi, classes)
        if classes is not None:
            self.class_prior_ = class_rows / n
        self.history_ = history
        self.n_iter_ = len(history)
        self.converged_ = converged

    def _expected_counts(self, x: Any, y: Any = None) -> tuple[np.ndarray, float]:
        """The E-step at the fitted parameters: expected pairwise counts (C, D, D, K, K) of
        examples ``x`` (NaN: missing) with labels ``y`` (TAN), and Σ log p(x_obs[, y])."""
        self._check_fitted()
        flat = check_values(x, self.fitted_spec, allow_nan=True).reshape(len(x), -1)
        d, k = flat.shape[1], self.cpts_.shape[-1]
        tables = self.cpts_ if self._is_tan else self.cpts_[None]
        cls = (
            np.zeros(len(flat), dtype=np.int64) if y is None else np.searchsorted(self.classes_, y)
        )
        with np.errstate(divide="ignore"):
            sums = _expected_sums(flat, cls, np.log(tables), self.parents_, self.order_,
                                  self._log_prior())  # fmt: skip
        counts = _counts_from_sums(sums["high"], sums["n"], d, k) + _blocks(sums["expected"], d, k)
        return counts, float(sums["loglik"])

    # ----------------------------------------------------------------- scoring
    @property
    def _is_tan(self) -> bool:
        return self.cpts_.ndim == 4

    def _log_tables(self) -> np.ndarray:
        """log p(x_d = b | x_parent = a, class c), shape (C, D, K, K); C = 1 without classes."""
        tables = self.cpts_ if self._is_tan else self.cpts_[None]
        with np.errstate(divide="ignore"):  # alpha = 0 leaves zero probabilities
            return np.log(tables)

    def _log_prior(self) -> np.ndarray:
        """log p(class), shape (C,): just [0] without classes."""
        return np.log(self.class_prior_) if self._is_tan else np.zeros(1)

    def _log_joint(self, flat: np.ndarray) -> np.ndarray:
        """log p(x_observed, class) of validated examples (N, D), shape (N, C)."""
        if flat.dtype.kind == "f" and np.isnan(flat).any():
            _, total = self._upward(flat, logsumexp)
            return self._log_prior() + total
        logt = self._log_tables()
        x = flat.astype(np.int64)
        parent_vals = np.where(self.parents_ >= 0, x[:, np.maximum(self.parents_, 0)], 0)
        nodes = np.arange(x.shape[1])
        per_class = [lt[nodes, parent_vals, x].sum(axis=1) for lt in logt]  # C × (N,)
        return self._log_prior() + np.stack(per_class, axis=1)

    def _upward(
        self, flat: np.ndarray, reduce: Callable[..., np.ndarray]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Upward pass from the leaves to the root in log space, for every example and class.

        ``reduce`` is ``logsumexp`` (sum-product) or ``np.max`` (max-product). Returns
        ``beta`` (N, C, D, K): log of the evidence at each variable times the messages from
        its children, i.e. (the max of) p(x_observed below d | x_d, class), and the root's
        total (N, C): log p(x_observed | class), or its max over completions.
        """
        logt = self._log_tables()  # (C, D, K, K)
        k = logt.shape[-1]
        missing = np.isnan(flat)  # (N, D)
        levels = np.where(missing, 0, flat).astype(np.int64)
        hit = missing[..., None] | (levels[..., None] == np.arange(k))  # (N, D, K)
        beta = np.repeat(np.where(hit, 0.0, -np.inf)[:, None], logt.shape[0], axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            for node in self.order_[:0:-1]:  # reverse topological: children before parents
                # m(a) = reduce_b log p(x_node = b | x_parent = a) + beta_node(b): (N, C, K)
                msg = reduce(logt[None, :, node] + beta[:, :, node, None, :], axis=-1)
                beta[:, :, self.parents_[node]] += msg
            total = reduce(logt[None, :, self.root_, 0] + beta[:, :, self.root_], axis=-1)
        return beta, total

    def _score_samples(self, x: np.ndarray) -> np.ndarray:
        return logsumexp(self._log_joint(x.reshape(len(x), -1)), axis=1)

    @only_where(why_not_classify)
    def predict_proba(self, X: Any) -> np.ndarray:
        """Class posterior p(y | x) by Bayes rule, shape (N, C) in the order of ``classes_``.

        Missing entries (NaN) are summed out exactly. Only for ``class_conditional=True``:
        absent otherwise (``hasattr`` is False; calling it raises a CapabilityError).
        """
        self._check_fitted()
        if not self._is_tan:
            raise CapabilityError(
                f"this {self.name!r} model was fitted without classes; refit it with "
                "class_conditional=True and fit(X, y) to classify"
            )
        x = check_values(X, self.fitted_spec, allow_nan=True)
        joint = self._log_joint(x.reshape(len(x), -1))  # (N, C)
        return np.exp(joint - logsumexp(joint, axis=1, keepdims=True))

    @only_where(why_not_classify)
    def predict(self, X: Any) -> np.ndarray:
        """Most probable class of each example, shape (N,) (``class_conditional=True``)."""
        index = self.predict_proba(X).argmax(axis=1)  # checks first that there are classes
        return self.classes_[index]

    # ----------------------------------------------------------------- sampling
    def _sample(self, n: int, y: Any, rng: np.random.Generator) -> np.ndarray:
        tables = self.cpts_ if self._is_tan else self.cpts_[None]  # (C, D, K, K)
        if y is not None:
            cls = np.searchsorted(self.classes_, y)  # labels already checked against classes_
        elif self._is_tan:
            cls = rng.choice(len(self.classes_), size=n, p=self.class_prior_)
        else:
            cls = np.zeros(n, dtype=np.int64)
        out = np.zeros((n, tables.shape[1]), dtype=np.int64)
        for node in self.order_:  # ancestral: every parent is drawn before its children
            parent = self.parents_[node]
            probs = tables[cls, node, out[:, parent] if parent >= 0 else 0]  # (n, K)
            out[:, node] = sample_categorical(probs, rng)
        return out

    def _impute(self, x: np.ndarray, method: str, rng: np.random.Generator) -> np.ndarray:
        flat = x.reshape(len(x), -1)
        if method == "mode":  # max-product, then follow the best choices down from the root

            def choose(logits: np.ndarray) -> np.ndarray:
                return logits.argmax(axis=-1)

            beta, total = self._upward(flat, np.max)
        else:  # sum-product, then sample downwards: exact draws from p(x_missing | x_observed)

            def choose(logits: np.ndarray) -> np.ndarray:
                return sample_categorical(logits, rng, log=True)

            beta, total = self._upward(flat, logsumexp)
        logt = self._log_tables()
        rows = np.arange(len(flat))
        cls = choose(self._log_prior() + total)  # (N,): the class too, for TAN
        out = np.zeros(flat.shape, dtype=np.int64)
        for node in self.order_:
            parent = self.parents_[node]
            parent_vals = out[:, parent] if parent >= 0 else 0
            # p(x_node | x_parent, observed entries below node, class) ∝ exp(logits)
            out[:, node] = choose(logt[cls, node, parent_vals] + beta[rows, cls, node])
        # observed entries come back unchanged (beta already forces them)
        return np.where(np.isnan(flat), out, flat)

    def _n_parameters(self) -> int:
        n_classes = len(self.classes_) if self._is_tan else 1
        d, k = self.cpts_.shape[-3], self.cpts_.shape[-1]
        return n_classes * ((k - 1) + (d - 1) * k * (k - 1)) + (n_classes - 1)

    # ----------------------------------------------------------------- export
    def to_dot(self, labels: Sequence[str] | None = None) -> str:
        """The tree as Graphviz DOT text, edges directed parent → child, labelled with
        their mutual information in nats.

        Arguments:
            labels: one name per variable (default ``x0``, ``x1``, …).

        Returns:
            the DOT source, e.g. for ``dot -Tpng``.

        Example:
            >>> import numpy as np, ptheta
            >>> x = np.random.default_rng(0).integers(0, 2, (50, 3))
            >>> print(ptheta.make("chow-liu").fit(x).to_dot().splitlines()[0])
            digraph chow_liu {
        """
        self._check_fitted()
        d = len(self.parents_)
        names = [f"x{i}" for i in range(d)] if labels is None else [str(s) for s in labels]
        if len(names) != d:
            raise ParameterError(f"labels must name all {d} variables, got {len(names)} names")

        def quote(s: str) -> str:
            return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'

        lines = ["digraph chow_liu {", "  // edge labels: mutual information in nats"]
        lines += [f"  {i} [label={quote(s)}];" for i, s in enumerate(names)]
        lines += [f'  {p} -> {c} [label="{self.mutual_info_[p, c]:.4f}"];' for p, c in self.edges_]
        return "\n".join([*lines, "}"]) + "\n"

    def structure_graph(self) -> dict[str, Any]:
        """The tree for drawing: ``n_nodes``, ``edges`` (parent, child), ``weights`` (each
        edge's mutual information, nats), ``roots``, ``layout`` (D, 2) and ``title``."""
        self._check_fitted()
        d = len(self.parents_)
        return {
            "n_nodes": d,
            "edges": [(int(p), int(c)) for p, c in self.edges_],
            "weights": [float(self.mutual_info_[p, c]) for p, c in self.edges_],
            "roots": [int(self.root_)],
            "layout": self.layered_layout(),
            "title": f"Chow–Liu tree, {d} variables (edge width ∝ mutual information)",
        }

    def layered_layout(self) -> np.ndarray:
        """(D, 2) positions: depth below the root downwards, breadth-first order across.

        Placing each layer in breadth-first order keeps children grouped in the order of
        their parents, so edges never cross.
        """
        self._check_fitted()
        d = len(self.parents_)
        depth = np.zeros(d, dtype=np.int64)
        for node in self.order_[1:]:
            depth[node] = depth[self.parents_[node]] + 1
        pos = np.zeros((d, 2))
        for level in range(depth.max() + 1):
            nodes = self.order_[depth[self.order_] == level]
            pos[nodes, 0] = np.arange(len(nodes)) - (len(nodes) - 1) / 2
            pos[nodes, 1] = -level
        return pos


# --------------------------------------------------------------------------- helpers
def pairwise_mutual_information(
    x: Any, n_categories: int, *, y: Any = None, alpha: float = 0.0
) -> np.ndarray:
    """Mutual information (nats) of every pair of discrete variables, shape (D, D).

    From the smoothed pairwise joints p(a, b) ∝ count(a, b) + ``alpha`` (and their
    marginals), conditioned on the class when labels ``y`` are given:
    I(x_i; x_j | y) = Σ_c p(c) I(x_i; x_j | y = c). The diagonal is zero.

    Arguments:
        x: examples (N, D) of integer levels 0..n_categories−1.
        n_categories: levels per variable K.
        y: optional class labels (N,).
        alpha: pseudo-count per cell of each K×K table.

    Returns:
        the symmetric (D, D) matrix.

    Example:
        >>> x = np.array([[0, 0, 1], [1, 1, 0], [0, 0, 0], [1, 1, 1]])
        >>> np.round(pairwise_mutual_information(x, 2), 3)[0]
        array([0.   , 0.693, 0.   ])
    """
    flat = np.asarray(x).reshape(len(x), -1)
    if y is None:
        index, n_classes = np.zeros(len(flat), dtype=np.int64), 1
    else:
        classes, index = np.unique(np.asarray(y), return_inverse=True)
        n_classes = len(classes)
    # the counts' sums over chunks of rows: no int64 or float copy of all of x at once
    k, d = int(n_categories), flat.shape[1]
    check_pairwise_memory(d, k, n_classes, who="the pairwise mutual information")
    sums = {"high": np.zeros((n_classes, d * (k - 1), d * (k - 1))), "n": np.zeros(n_classes)}
    step = max(1, _CHUNK_CELLS // max(1, d * (k - 1)))
    for start in range(0, len(flat), step):
        rows = flat[start : start + step].astype(np.int64)
        part = _pair_sums(rows, k, index[start : start + step], n_classes)
        sums["high"] += part["high"]
        sums["n"] += part["n"]
    return _mutual_information(_counts_from_sums(sums["high"], sums["n"], d, k), alpha)


def maximum_spanning_tree(weights: np.ndarray) -> np.ndarray:
    """Undirected edges (D−1, 2), i < j, of a maximum-weight spanning tree of a complete graph.

    Arguments:
        weights: symmetric (D, D) edge weights; the diagonal is ignored.

    Returns:
        the edges as an int64 array; always a spanning tree, even where weights are zero.

    Example:
        >>> w = np.array([[0, 3, 1], [3, 0, 2], [1, 2, 0]])
        >>> maximum_spanning_tree(w).tolist()
        [[0, 1], [1, 2]]
    """
    w = np.asarray(weights, dtype=np.float64)
    # scipy reads a zero entry as "no edge", so zero weights would split the tree into a
    # forest; costs c − w with c > max w are all positive, and since every spanning tree
    # has D − 1 edges the shift does not change which tree is optimal.
    cost = np.triu(w.max() + 1.0 - w, k=1)
    tree = minimum_spanning_tree(cost).tocoo()
    edges = np.column_stack([tree.row, tree.col]).astype(np.int64)
    edges.sort(axis=1)
    return edges[np.lexsort((edges[:, 1], edges[:, 0]))]


def _orient(edges: np.ndarray, root: int) -> tuple[np.ndarray, np.ndarray]:
    """Parents (D,) with −1 at the root, and breadth-first order (D,) from the root."""
    d = len(edges) + 1
    adjacency = np.zeros((d, d))
    adjacency[edges[:, 0], edges[:, 1]] = 1.0
    order, pred = breadth_first_order(adjacency, root, directed=False, return_predecessors=True)
    return np.where(pred < 0, -1, pred).astype(np.int64), order.astype(np.int64)


def _pair_sums(
    flat: np.ndarray, k: int, index: np.ndarray, n_classes: int
) -> dict[str, np.ndarray]:
    """The sufficient statistics of every pairwise count table, per class, of the rows
    ``flat`` (N, D) with class indices ``index`` (N,): ``high`` (C, D·(K−1), D·(K−1)), the
    counts of every pair of levels a, b ≥ 1 of every pair of variables, and ``n`` (C,),
    the rows of each class. Sums over batches of rows are the statistics of all the rows.

    One matrix product of the indicators of levels 1..K−1 gives every ``high`` cell (for
    binary data the indicators are the data itself, a quarter of the work of a full
    one-hot product); float32 sums of 0/1 products are exact below 2**24 rows, and about
    four times faster than float64.
    """
    n, d = flat.shape
    high = np.zeros((n_classes, d * (k - 1), d * (k - 1)))
    step = max(1, _CHUNK_CELLS // max(1, d * (k - 1)))  # bounded indicators at any K
    for start in range(0, n, step):
        part, where = flat[start : start + step], index[start : start + step]
        dtype = np.float32 if len(part) < _FLOAT32_EXACT else np.float64
        if k == 2:
            ind = part.astype(dtype)  # (n, D)
        else:
            ind = np.zeros((len(part), d * (k - 1)), dtype=dtype)  # column d·(K−1) + a − 1
            rows, cols = np.nonzero(part)  # is [x_d = a]
            ind[rows, cols * (k - 1) + part[rows, cols] - 1] = 1.0
        for c in range(n_classes):
            sub = ind if n_classes == 1 else ind[where == c]
            high[c] += sub.T @ sub  # (D·(K−1), D·(K−1)): every table's a, b ≥ 1 cells
    return {"high": high, "n": np.bincount(index, minlength=n_classes).astype(np.float64)}


def _counts_from_sums(high: np.ndarray, n: np.ndarray, d: int, k: int) -> np.ndarray:
    """The pairwise count tables (C, D, D, K, K) from :func:`_pair_sums`' statistics: the
    level-0 row and column of each table follow from the level counts (the diagonal of
    ``high``) and the number of rows."""
    out = np.empty((len(n), d, d, k, k))
    for c in range(len(n)):
        pairs = high[c].reshape(d, k - 1, d, k - 1).transpose(0, 2, 1, 3)  # (D, D, K−1, K−1)
        high_levels = np.diagonal(np.diagonal(pairs), axis1=0, axis2=1)  # (D, K−1): n(a ≥ 1)
        levels = np.column_stack([n[c] - high_levels.sum(axis=1), high_levels])  # (D, K)
        counts = out[c]  # (D, D, K, K)
        counts[:, :, 1:, 1:] = pairs
        counts[:, :, 1:, 0] = high_levels[:, None, :] - pairs.sum(axis=3)  # n_i(a) − Σ_{b≥1}
        counts[:, :, 0, :] = levels[None] - counts[:, :, 1:, :].sum(axis=2)  # n_j(b) − Σ_{a≥1}
    return out


def _mutual_information(counts: np.ndarray, alpha: float) -> np.ndarray:
    """Σ_c p(c) I_c(x_i; x_j) from per-class counts (C, D, D, K, K), shape (D, D)."""
    k = counts.shape[-1]
    n_c = np.einsum("cii->c", counts[:, 0, 0])  # (C,) examples per class
    mi = np.zeros(counts.shape[1:3])
    for c in range(len(counts)):
        joint = (counts[c] + alpha) / (n_c[c] + alpha * k * k)  # (D, D, K, K)
        marg = joint.sum(axis=3)  # (D, D, K): p(x_i) from the pair (i, j), the same for all j
        h_joint = -xlogy(joint, joint).sum(axis=(2, 3))  # (D, D)
        h_marg = -xlogy(marg, marg).sum(axis=2)  # (D, D): H(x_i) in every column
        mi += n_c[c] / n_c.sum() * (h_marg + h_marg.T - h_joint)
    mi = np.maximum((mi + mi.T) / 2, 0.0)  # exact symmetry; rounding can dip below zero
    np.fill_diagonal(mi, 0.0)
    return mi


def _normalise(counts: np.ndarray) -> np.ndarray:
    """Counts (…, K) to probabilities along the last axis; rows with no counts (possible
    only with alpha = 0) become uniform."""
    total = counts.sum(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, counts / total, 1.0 / counts.shape[-1])


def _tables(counts: np.ndarray, parents: np.ndarray, order: np.ndarray, alpha: float) -> np.ndarray:
    """The tree's tables (C, D, K, K) from pairwise counts (C, D, D, K, K), smoothed by
    ``alpha``: p(x_d = b | x_parent = a) ∝ count(a, b) + α, the root's ∝ count(b) + α."""
    n_classes, d, k = counts.shape[0], counts.shape[1], counts.shape[-1]
    root, children = order[0], order[1:]
    pair = counts[:, parents[children], children] + alpha  # (C, D-1, K, K)
    root_counts = np.diagonal(counts[:, root, root], axis1=1, axis2=2) + alpha  # (C, K)
    tables = np.empty((n_classes, d, k, k))
    tables[:, children] = _normalise(pair)
    tables[:, root] = _normalise(root_counts)[:, None, :]
    return tables


def _blocks(matrix: np.ndarray, d: int, k: int) -> np.ndarray:
    """(C, D·K, D·K) products of one-hot codes as pairwise count tables (C, D, D, K, K)."""
    return matrix.reshape(len(matrix), d, k, d, k).transpose(0, 1, 3, 2, 4)


def _expected_information(counts: np.ndarray, alpha: float, class_rows: np.ndarray) -> np.ndarray:
    """Σ_c w_c I_c(x_i; x_j) (D, D) from pairwise counts (C, D, D, K, K) whose tables may
    have different totals (available-case counts): each table is smoothed and normalised
    by its own total, p(a, b) = (count(a, b) + α) / (total + K²α); the classes weigh
    w_c ∝ n_c + K²α (``class_rows`` n_c), their smoothed totals, so that the maximum
    spanning tree maximises the expected complete-data log-likelihood plus log prior."""
    k = counts.shape[-1]
    weights = class_rows + alpha * k * k
    weights = weights / weights.sum()
    mi = np.zeros(counts.shape[1:3])
    for c in range(len(counts)):
        total = counts[c].sum(axis=(2, 3))[..., None, None] + alpha * k * k  # (D, D, 1, 1)
        with np.errstate(invalid="ignore", divide="ignore"):
            joint = np.where(total > 0, (counts[c] + alpha) / total, 0.0)  # (D, D, K, K)
        marg = joint.sum(axis=3)
        h_joint = -xlogy(joint, joint).sum(axis=(2, 3))
        h_marg = -xlogy(marg, marg).sum(axis=2)
        mi += weights[c] * (h_marg + h_marg.T - h_joint)
    mi = np.maximum((mi + mi.T) / 2, 0.0)
    np.fill_diagonal(mi, 0.0)
    return mi


def _lse(x: np.ndarray, axis: int) -> np.ndarray:
    """log Σ exp(x) along ``axis`` (−inf where every term is −inf)."""
    top = x.max(axis=axis, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    with np.errstate(divide="ignore"):
        return np.log(np.exp(x - top).sum(axis=axis)) + np.squeeze(top, axis=axis)


def _tree_posteriors(
    logt: np.ndarray, parents: np.ndarray, order: np.ndarray, log_ev: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Sum-product on the tree for M rows at once: log p(evidence) (M,) and the posterior
    marginals p(x_d = b | evidence) (M, D, K).

    ``logt`` (D, K, K) log tables (the root's rows all its marginal); ``log_ev``
    (M, D, K): 0 where a level is allowed, −inf where it is not (an observed entry allows
    its level, a missing one all). Upward messages from the leaves to the root, then
    downward (outside) messages from the root; a row with zero probability gets zero
    posteriors.
    """
    m, d, k = log_ev.shape
    beta = log_ev.copy()  # evidence at d times the messages from its children
    up = np.zeros((m, d, k))  # message from d to its parent, over the parent's levels
    with np.errstate(invalid="ignore"):
        for node in order[:0:-1]:  # children before parents
            up[:, node] = _lse(logt[node][None] + beta[:, node, None, :], axis=2)
            beta[:, parents[node]] += up[:, node]
        root = order[0]
        log_z = _lse(logt[root, 0][None] + beta[:, root], axis=1)  # (M,)
        outside = np.empty((m, d, k))  # log p(x_d, evidence outside d's subtree)
        outside[:, root] = logt[root, 0]
        for node in order[1:]:  # parents before children
            parent = parents[node]
            # the parent's outside and evidence times its other children's messages; where
            # this child's message is −inf (a parent level it rules out) the term is −inf
            rest = np.where(
                np.isneginf(up[:, node]),
                -np.inf,
                outside[:, parent] + beta[:, parent] - up[:, node],
            )
            outside[:, node] = _lse(rest[:, :, None] + logt[node][None], axis=1)
        post = np.exp(outside + beta - log_z[:, None, None])
    post[~np.isfinite(log_z)] = 0.0
    return log_z, post


def _expected_sums(
    flat: np.ndarray,
    cls: np.ndarray,
    logt: np.ndarray,
    parents: np.ndarray,
    order: np.ndarray,
    log_class: np.ndarray,
) -> dict[str, Any]:
    """One batch's E-step: the complete rows' :func:`_pair_sums` (``high``, ``n``), the
    expected one-hot products (C, D·K, D·K) of the rows with missing entries
    (``expected``), and Σ log p(x_obs, class) (``loglik``). ``logt`` (C, D, K, K)."""
    n_classes, d, k = logt.shape[0], logt.shape[1], logt.shape[-1]
    missing = np.isnan(flat) if flat.dtype.kind == "f" else np.zeros(flat.shape, dtype=bool)
    partial = missing.any(axis=1)
    whole = flat[~partial].astype(np.int64)
    out: dict[str, Any] = _pair_sums(whole, k, cls[~partial], n_classes)
    # complete rows: log p(x, class) by looking up each variable's table
    parent_vals = np.where(parents >= 0, whole[:, np.maximum(parents, 0)], 0)
    with np.errstate(invalid="ignore"):
        lookup = logt[cls[~partial][:, None], np.arange(d), parent_vals, whole].sum(axis=1)
    loglik = float(lookup.sum() + log_class[cls[~partial]].sum())
    expected = np.zeros((n_classes, d * k, d * k))
    for c in range(n_classes):
        rows = np.flatnonzero(partial & (cls == c))
        if rows.size == 0:
            continue
        x, miss = flat[rows], missing[rows]
        codes = one_hot(x, k).reshape(len(rows), d, k)  # observed entries' indicators
        log_ev = np.where(miss[..., None] | (codes > 0), 0.0, -np.inf)  # (M, D, K)
        log_z, post = _tree_posteriors(logt[c], parents, order, log_ev)
        loglik += float(log_z.sum()) + len(rows) * float(log_class[c])
        # rows of the product whose first variable is observed: its indicator × posteriors
        block = codes.reshape(len(rows), d * k).T @ post.reshape(len(rows), d * k)
        for i in np.flatnonzero(miss.any(axis=0)):
            where = np.flatnonzero(miss[:, i])  # rows where variable i is missing
            clamped = log_ev[where]
            for a in range(k):  # p(x_i = a | obs) p(x_· | x_i = a, obs), one pass per level
                clamped[:, i] = np.where(np.arange(k) == a, 0.0, -np.inf)
                _, given = _tree_posteriors(logt[c], parents, order, clamped)
                block[i * k + a] += post[where, i, a] @ given.reshape(len(where), d * k)
        expected[c] = block
    out["expected"] = expected
    out["loglik"] = loglik
    return out
