"""The general Bayesian network: a DAG over the columns, its tables, exact inference."""

from __future__ import annotations

import math
import warnings
import weakref
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import numpy as np
from scipy.sparse.csgraph import breadth_first_order
from scipy.special import xlogy

from ptheta.data.spec import DataSpec
from ptheta.data.stream import ArraySource, Source, accumulate
from ptheta.data.table import LABEL_TYPES, ColumnSpec
from ptheta.errors import DataError, ParameterError
from ptheta.models.base import GenerativeModel
from ptheta.models.baselines import first_observed
from ptheta.models.chow_liu import maximum_spanning_tree, pairwise_mutual_information
from ptheta.models.dag_search import (
    Edges,
    FamilyScorer,
    Leaf,
    ancestors,
    clg_estimate,
    clg_log_likelihood,
    clg_prior,
    hill_climb,
    topological_order,
)
from ptheta.models.elimination import (
    Factor,
    calibrate,
    eliminate,
    linked_scopes,
    log_total,
    marginal,
    min_fill_order,
    product,
    reduce_log,
    traceback,
)
from ptheta.models.em import Deadline
from ptheta.models.missing import missing_patterns
from ptheta.models.sampling import sample_categorical
from ptheta.params import Choice, Float, Int, OneOf, Param, is_integer, parameter_error

# Structure learning uses the complete rows when at least this many are complete.
MIN_COMPLETE_ROWS = 10
# Hill climbing searches every pair of label columns up to this many columns; beyond, each
# column's parents are drawn from its AUTO_CANDIDATES partners of highest mutual information.
MAX_FULL_SEARCH = 100
AUTO_CANDIDATES = 10
# A column's kind in the network: a discrete variable, or a leaf of one of these types.
DISCRETE = "discrete"


class BayesianNetwork(GenerativeModel):
    """Bayesian network p(x) = ∏_j p(x_j | x_parents(j)) on a given or learned DAG.

    **Structure.** Given (a list of [parent, child] edges or DOT text, over column names or
    indices) or learned: ``"hill-climb"`` searches DAGs by single-edge additions, removals
    and reversals with a tabu list, maximising BIC or BDeu (decomposable scores, each
    family's score cached, counts by ``np.bincount`` over mixed-radix codes), with at most
    ``max_parents`` parents and black / white lists of edges; ``"chow-liu"`` is the
    maximum-likelihood tree, ``"naive"`` the star from the most central column (the
    structure of naive Bayes with that column as the class), ``"empty"`` no edge at all.

    **Tables.** p(x_j = k | parents = c) = (N_ck + α) / (N_c + r_j α) (Dirichlet
    pseudo-counts ``alpha``); the likelihood is exact.

    **Table data** (``kind="table"``, :mod:`ptheta.data.table`). Binary, categorical and
    ordinal columns are discrete variables, each with its own number of levels (an
    ordinal's order is not used: its levels get free probabilities); queries, evidence and
    results use their labels. Count and continuous columns follow the conditional linear
    Gaussian (CLG) restriction: a label column never has a count or continuous parent.
    A count is a Poisson leaf of discrete parents; a continuous column with bounds is a
    Gaussian leaf of discrete parents truncated to its bounds (exact normaliser); each
    has one distribution per configuration of its parents, estimated with ``alpha``
    pseudo-rows at the column's pooled mean and variance (see
    :class:`~ptheta.models.dag_search.Leaf`). An unbounded continuous column may also have
    unbounded continuous parents x_c: x | d, x_c ~ N(a_d + b_dᵀ x_c, σ²_d), one
    regression per configuration d of its discrete parents, by weighted least squares from
    the sums Σ w u uᵀ, u = (1, x_c, x), over the batches, plus ``alpha`` pseudo-rows of
    the pooled mean and covariance of u (:func:`~ptheta.models.dag_search.clg_estimate`:
    a 10⁻¹² relative ridge on the slopes, the variance floored at 10⁻⁶ × the column's).
    Structure search scores these families by BIC with their own parameter counts (1, 2
    or k + 2 per configuration; BDeu, which has no form for them, scores the discrete
    families only) and proposes continuous → continuous edges only between unbounded
    columns. Inference stays exact:
    an observed leaf is a factor over its missing parents (its density at the value), a
    missing leaf integrates to 1 and drops out, and continuous columns coupled by missing
    cells are, for each configuration of their discrete parents, one multivariate Gaussian
    whose observed part's density (the missing ones integrated out in closed form) is a
    factor over the discrete parents; imputation and ``sample(given=)`` draw the missing
    ones from its conditional Gaussian.
    ``units_`` is ``discrete``, ``continuous`` or ``mixed`` by the column types.

    **Inference.** Exact, by variable elimination in log space with a greedy min-fill
    order, one elimination per pattern of missing entries, vectorised over the examples
    that share it. ``score_samples`` with NaN entries is the exact log-marginal of the
    observed ones (barren variables pruned); ``impute(method="mode")`` is the most probable
    completion (max-product, then traceback; a missing leaf at its mode given its parents);
    ``impute(method="sample")`` and ``sample(n, given=...)`` draw exactly from
    p(x_missing | x_observed) (sum-product, then sampling backwards through the
    elimination); ``given`` takes rows of codes with NaN, or by name a DataFrame of some
    columns or a dict {column: value}, with a table's labels.
    ``query(["A"], evidence={"B": "x"})`` is P(A | B = x) as a labelled
    table over discrete variables (evidence may also give count and continuous values),
    ``map_query`` its most probable assignment.

    **Missing values in training.** ``fit`` takes NaN: the structure is learned on the
    complete rows (an approximation to structural EM; on the rows with every column's most
    frequent level (a leaf's median) filled in where fewer than 10 rows are complete), then
    the parameters by EM: expected counts (and a leaf's weighted n, Σx, Σx²) from the exact
    family posteriors of each example (the elimination order's junction tree, calibrated),
    starting from the available-case counts; a missing leaf is integrated out, not filled
    in. Continuous columns coupled by missing cells through continuous → continuous edges
    are one Gaussian per configuration of their discrete parents (as in inference): each
    column's statistics Σ w u uᵀ, u = (1, continuous parents, itself), take E[u uᵀ] =
    ū ūᵀ + Cov(u | observed) with the missing cells at their conditional means, weighted
    by the exact posterior of the discrete parents (their pooled moments for the
    pseudo-rows are from pairwise-observed rows, made positive semi-definite). With α > 0
    this is MAP-EM under Dirichlet(α + 1) priors (and the leaves' pseudo-row priors): its
    objective, the observed-data log-likelihood plus the log prior, never decreases (α = 0:
    the likelihood itself; a bounded continuous column's moment-matched M-step is not an
    exact maximisation); ``history_`` records both per example.

    **Data read in batches** (``capabilities().streams``). The parameters come from
    sums over the batches of the data (:func:`~ptheta.data.stream.accumulate`, all-reduced
    over the processes under ``torchrun``): the available-case counts and leaf statistics,
    each EM iteration's expected counts and log-likelihood, and the leaves' pooled moments
    (a continuous leaf's sums are taken about its first value, so a mean far from 0 costs
    no precision). The structure search needs the counts of many families of columns, so
    the rows it learns and scores the structure on (the complete rows, see above) are held
    in memory as compact codes — one byte a cell for up to 255 levels — with the leaves'
    values (float64): N × D bytes rather than the float64 data. Every process reads all of
    them and runs the same search. An in-memory fit is the same computation.

    Arguments:
        structure: ``"hill-climb"``, ``"chow-liu"``, ``"naive"``, ``"empty"``, or the DAG
            itself: a list of [parent, child] pairs or DOT text (``"x0 -> x1; x1 -> x2"``).
        scoring: ``"bic"`` or ``"bdeu"`` (Bayesian Dirichlet, equivalent uniform prior).
        equivalent_sample_size: the BDeu prior's total pseudo-count.
        max_parents: most parents of any variable in hill climbing (None: no limit beyond
            tables of at most 2**22 cells).
        tabu_length: moves remembered as tabu; the search also continues this many moves
            past a local optimum and keeps the best DAG seen (0: plain greedy ascent).
        max_iter: most moves of hill climbing.
        candidates: hill climbing considers, as parents of each column, only its
            ``candidates`` partners of highest mutual information (either way round: the
            sparse-candidate restriction of Friedman, Nachman & Pe'er 1999), so that the
            search scales to hundreds of columns; ``"auto"``: every column when there are
            at most 100 label columns, else 10; None: every column.
        black_list: edges hill climbing may not add.
        white_list: edges hill climbing must keep.
        alpha: Dirichlet pseudo-count added to every cell of every table, and the number of
            pseudo-rows of a count or continuous leaf's configurations.
        em_max_iter: most EM iterations when the training data have missing entries.
        em_tol: EM stops when its objective per example changes by less than this.
        max_time: seconds the structure search and EM may take together (None: no
            limit): hill climbing stops after the move that passes it and keeps the best
            DAG found by then (the empty graph, with the white list, if scoring every
            variable's first candidates took all of it), and EM stops after the iteration
            that passes it; both warn. Under ``ptheta compare --budget`` it is the budget.

    Fitted attributes:
        columns_: the variables' names (a table's or DataFrame's columns, else ``x0``, …).
        kinds_: each column's kind: ``"discrete"``, ``"count"`` or ``"continuous"``.
        cards_: (D,) levels of each variable (1 for a count or continuous leaf).
        parents_: each variable's parents (sorted).
        edges_: [parent, child] pairs. order_: (D,) a topological order.
        cpt_: every discrete variable's table flattened, one after another; a table is
            (*cards[parents], cards[j]), the first parent most significant (see ``cpts()``).
        leaf_params_: (Σ q_j, 2) the ``[mean, variance]`` of each leaf's configurations,
            leaf after leaf (a Poisson's variance is its mean; with continuous parents
            ``[intercept, variance]``).
        slopes_: the regression slopes of the continuous columns with continuous parents,
            (q_j, k_j) each, column after column (``cpts()`` puts them together).
        structure_score_: the BIC or BDeu of the DAG on the rows it was learned from.
        edge_weights_: empirical mutual information (nats) of each edge's two variables
            (a leaf's: the plug-in gain of its log-likelihood per row).
        history_: EM records (only when the training data had missing entries).

    Example:
        >>> import numpy as np, ptheta
        >>> rng = np.random.default_rng(0)
        >>> rain = rng.random(4000) < 0.3
        >>> sprinkler = rng.random(4000) < np.where(rain, 0.05, 0.5)
        >>> wet = rng.random(4000) < np.where(rain | sprinkler, 0.9, 0.05)
        >>> x = np.column_stack([rain, sprinkler, wet]).astype(int)
        >>> m = ptheta.make("bayesian-network", structure="x0 -> x1; x0 -> x2; x1 -> x2")
        >>> table = m.fit(x).query("x0", evidence={"x2": 1})  # P(rain | wet grass)
        >>> [round(p, 2) for p in table["probability"]]
        [0.55, 0.45]
        >>> m.map_query(["x0", "x1"], evidence={"x2": 1})
        {'x0': 0, 'x1': 1}

        On a table, with labels and a continuous column:

        >>> data = ptheta.datasets.load("groundtruth-table")
        >>> m = ptheta.make("bayesian-network").fit(data.train)
        >>> sorted(m.columns_[p] + " -> " + m.columns_[c] for p, c in m.edges_)[:3]
        ['busy -> spend', 'busy -> visitors', 'rain -> temperature']
        >>> evidence = {"temperature": 15.0, "rain": "yes"}
        >>> m.query("season", evidence=evidence).round(2).values.tolist()
        [['winter', 0.0], ['spring', 0.26], ['summer', 0.31], ['autumn', 0.43]]

        A continuous column with a continuous parent (a regression per level of a label):

        >>> import pandas as pd
        >>> from ptheta.data.table import table_dataset
        >>> group = rng.choice(["a", "b"], 2000)
        >>> u = rng.normal(size=2000)
        >>> v = np.where(group == "a", 1.0 + 2.0 * u, -1.0 - u) + 0.5 * rng.normal(size=2000)
        >>> frame = pd.DataFrame({"group": group, "u": u, "v": v})
        >>> m = ptheta.make("bayesian-network").fit(table_dataset(frame).train)
        >>> sorted(m.columns_[p] + " -> " + m.columns_[c] for p, c in m.edges_)
        ['group -> v', 'u -> v']
        >>> m.cpts()[2][:, 0, [0, 2]].round(1).tolist()  # [intercept, slope] per group
        [[1.0, 2.0], [-1.0, -1.0]]
        >>> m.sample(2, given={"group": "b", "u": 1.0}, random_state=0)[:, :2].tolist()
        [[1.0, 1.0], [1.0, 1.0]]

    References:
        Koller & Friedman, "Probabilistic Graphical Models" (2009), ch. 9, 10, 14.3, 18, 19;
        Lauritzen, "Propagation of probabilities, means and variances in mixed graphical
        association models", JASA (1992); Heckerman, Geiger & Chickering, "Learning Bayesian
        networks: the combination of knowledge and statistical data", Machine Learning
        (1995); Friedman, "The Bayesian structural EM algorithm", UAI (1998).
    """

    name: ClassVar[str] = "bayesian-network"
    family: ClassVar[str] = "graphical"
    likelihood: ClassVar[str] = "exact"
    abilities: ClassVar[dict[str, Any]] = {"exports_structure": True, "streams": True}
    data_kinds: ClassVar[tuple[str, ...]] = ("binary", "categorical", "table")
    can_marginalise: ClassVar[bool] = True
    fits_missing: ClassVar[bool] = True
    quick_params: ClassVar[dict[str, Any]] = {"max_iter": 30, "em_max_iter": 20}
    # no "explorer" preset: the explorer's views fit families on up to 784 binary pixels,
    # where a hill-climbing search over every pair of variables takes far too long
    parameters: ClassVar[dict[str, Param]] = {
        "structure": Edges("hill-climb", "chow-liu", "naive", "empty"),
        "scoring": Choice("bic", "bdeu"),
        "equivalent_sample_size": Float(low=0, low_open=True),
        "max_parents": Int(low=0, none=True),
        "tabu_length": Int(low=0),
        "max_iter": Int(low=0),
        "candidates": OneOf(Choice("auto"), Int(low=1, none=True)),
        "black_list": Edges(none=True),
        "white_list": Edges(none=True),
        "alpha": Float(low=0),
        "em_max_iter": Int(low=1),
        "em_tol": Float(low=0),
        "max_time": Float(low=0, low_open=True, none=True),
    }

    def __init__(
        self,
        *,
        structure: str | Sequence[Sequence[int | str]] = "hill-climb",
        scoring: str = "bic",
        equivalent_sample_size: float = 10.0,
        max_parents: int | None = 4,
        tabu_length: int = 10,
        max_iter: int = 1000,
        candidates: int | str | None = "auto",
        black_list: Sequence[Sequence[int | str]] | str | None = None,
        white_list: Sequence[Sequence[int | str]] | str | None = None,
        alpha: float = 0.5,
        em_max_iter: int = 100,
        em_tol: float = 1e-6,
        max_time: float | None = None,
    ) -> None:
        self.structure = structure
        self.scoring = scoring
        self.equivalent_sample_size = equivalent_sample_size
        self.max_parents = max_parents
        self.tabu_length = tabu_length
        self.max_iter = max_iter
        self.candidates = candidates
        self.black_list = black_list
        self.white_list = white_list
        self.alpha = alpha
        self.em_max_iter = em_max_iter
        self.em_tol = em_tol
        self.max_time = max_time

    def _check_params_together(self, params: Any) -> None:
        for key in ("black_list", "white_list"):
            if params[key] is not None and params["structure"] != "hill-climb":
                what = "None unless structure='hill-climb' (lists constrain the search)"
                raise parameter_error(self.name, key, what, getattr(self, key))

    def _kind_error(self, X: Any, spec: DataSpec) -> str:
        message = super()._kind_error(X, spec)
        if spec.kind != "continuous" or message.startswith("Negative"):
            return message
        from ptheta.data.spec import Split, as_array

        if not isinstance(X, Split) and np.nanmin(as_array(X, "training data")) < 0:
            # scikit-learn's phrase for negative values given to a model of levels
            return f"Negative values in data passed to {self.name!r}: {message}"
        return message

    # ----------------------------------------------------------------- fitting
    def fit(self, X: Any, y: Any = None, **fit_params: Any) -> BayesianNetwork:
        """Fit the structure and the parameters to ``X``: (N, D) levels 0..K−1, or a
        table (a `Split` of kind ``table``); NaN: missing.

        A pandas DataFrame's column names name the variables (in queries, edges and DOT);
        a table's columns are named by its schema.
        """
        columns = getattr(X, "columns", None)
        self._columns_in = None if columns is None else [str(c) for c in columns]
        try:
            super().fit(X, y, **fit_params)
        finally:
            del self._columns_in
        return self

    def _fit(self, x: np.ndarray, y: np.ndarray | None, spec: DataSpec) -> None:
        self._fit_stream(ArraySource(x), y, spec)  # one computation, in memory or streamed

    def _fit_stream(self, data: Source, y: np.ndarray | None, spec: DataSpec) -> None:
        params = self._params()
        alpha = float(params.alpha)
        n, d = data.n, int(np.prod(spec.event_shape))
        table = spec.columns if spec.kind == "table" else None
        if table is not None:
            self.columns_ = [c.name for c in table]
            self.kinds_ = [DISCRETE if c.type in LABEL_TYPES else c.type for c in table]
            cards = np.array([c.n_levels or 1 for c in table], dtype=np.int64)
        else:
            self.columns_ = self._columns_in or [f"x{i}" for i in range(d)]
            self.kinds_ = [DISCRETE] * d
            cards = np.full(d, int(spec.n_categories), dtype=np.int64)
        if len(self.columns_) != d:
            raise DataError(f"{len(self.columns_)} column names for {d} variables")
        leaves = _make_leaves(self.kinds_, table)
        is_leaf = self._leaf_mask()
        # one pass: observed cells per column, complete rows, the leaves' pooled moments
        # about their first values (sums over batches, all-reduced under torchrun)
        shift = first_observed(data)[is_leaf] if leaves else np.zeros(0)

        def census(batch: np.ndarray, _: Any) -> dict[str, Any]:
            flat = batch.reshape(len(batch), d).astype(np.float64, copy=False)
            missing = np.isnan(flat)
            z = np.where(missing[:, is_leaf], 0.0, flat[:, is_leaf] - shift)
            seen = (~missing[:, is_leaf]).astype(np.float64)
            return {
                "observed": (~missing).sum(axis=0),
                "complete": (~missing.any(axis=1)).sum(),
                "sum": z.sum(axis=0),
                "sum_sq": (z * z).sum(axis=0),
                "cross": z.T @ z,  # over the rows where both are observed
                "pairs": seen.T @ seen,
            }

        stats = accumulate(data, census)
        empty = np.flatnonzero(stats["observed"] == 0)
        if empty.size:
            raise DataError(
                f"column {self.columns_[empty[0]]!r} of the training data has no observed "
                "value (every entry is NaN); drop it"
            )
        seen = stats["observed"][is_leaf]
        means = shift + stats["sum"] / seen
        variances = np.maximum(stats["sum_sq"] / seen - (stats["sum"] / seen) ** 2, 0.0)
        pooled = {j: (float(m), float(v)) for j, m, v in zip(leaves, means, variances, strict=True)}
        # pooled covariances of the leaves (pairwise observed rows), for the pseudo-rows of a
        # continuous column with continuous parents
        covariance = np.full((d, d), np.nan)
        centred = stats["sum"] / seen
        with np.errstate(invalid="ignore", divide="ignore"):
            cov = stats["cross"] / stats["pairs"] - np.outer(centred, centred)
        np.fill_diagonal(cov, variances)
        covariance[np.ix_(is_leaf, is_leaf)] = cov
        # continuous columns that may be parents of continuous columns: unbounded (their
        # joint is Gaussian, so EM's expected statistics are exact with missing cells)
        continuous = np.array([k == "continuous" for k in self.kinds_])
        bounded = continuous & [
            table is not None and (table[j].lower is not None or table[j].upper is not None)
            for j in range(d)
        ]
        linkable = continuous & ~bounded
        if (stats["observed"][is_leaf] < n).any():  # pairwise-observed moments: made PSD
            covariance[np.ix_(is_leaf, is_leaf)] = _nearest_psd(np.nan_to_num(cov, nan=0.0))
        # a continuous leaf's statistics [n, Σx, Σx²] are summed about its first value (no
        # precision lost to a mean far from 0); a count's are exact integers as they are
        centre = {
            j: float(c) if leaf.kind == "continuous" else 0.0
            for (j, leaf), c in zip(leaves.items(), shift, strict=True)
        }
        complete_only = stats["complete"] >= min(MIN_COMPLETE_ROWS, n)
        rows, real = self._structure_rows(data, cards, complete_only)
        scorer = FamilyScorer(
            rows, cards, params.scoring, params.equivalent_sample_size, alpha=alpha,
            leaves={j: (leaf, real[j], pooled[j]) for j, leaf in leaves.items()},
            covariance=covariance,
        )  # fmt: skip
        deadline = Deadline(params.max_time)
        parents = self._learn_structure(
            rows, cards, scorer, params, linkable, bounded, deadline.passed
        )
        if deadline.hit:
            self._warn_out_of_time("the structure search (hill climbing)")
        self.cards_ = cards
        self.parents_ = [sorted(int(p) for p in ps) for ps in parents]
        self.order_ = topological_order(self._adjacency())
        self.edges_ = [[p, j] for j in self.order_.tolist() for p in self.parents_[j]]
        self.structure_score_ = float(scorer.total(self.parents_))
        self.edge_weights_ = [
            scorer.information(c, p) if c in leaves else _pair_information(rows, cards, p, c)
            for p, c in self.edges_
        ]
        del scorer, rows, real

        def available(batch: np.ndarray, _: Any) -> dict[str, np.ndarray]:
            flat = batch.reshape(len(batch), d).astype(np.float64, copy=False)
            missing = np.isnan(flat)
            values = np.where(missing | is_leaf, 0, flat).astype(np.int64)
            _, counts = self._observed_families(None, values, flat, missing, leaves, centre)
            return {str(j): c for j, c in enumerate(counts)}

        sums = accumulate(data, available)  # the available-case counts
        priors = self._priors(leaves, pooled, covariance, centre)
        theta = self._estimate([sums[str(j)] for j in range(d)], alpha, priors, leaves, centre)
        if stats["observed"].sum() < n * d:
            theta = self._em(
                data, theta, alpha, priors, leaves, centre, params.em_max_iter, params.em_tol,
                deadline,
            )  # fmt: skip
        self._store(theta, leaves)

    def _structure_rows(
        self, data: Source, cards: np.ndarray, complete_only: bool
    ) -> tuple[np.ndarray, dict[int, np.ndarray]]:
        """The rows the structure is learned and scored on, held in memory: the discrete
        codes (N', D) in the smallest unsigned integer type that holds them (leaves as 0),
        and each leaf's values (N',). The complete rows; or, where fewer than
        ``MIN_COMPLETE_ROWS`` are complete, every row with each column's most frequent level
        (a leaf's median) in its missing cells. Every process reads every row (the search
        is repeated on each, with the same result)."""
        d = len(cards)
        is_leaf = self._leaf_mask()
        dtype = next(t for t in (np.uint8, np.uint16, np.uint32) if cards.max() <= np.iinfo(t).max)
        gap = np.iinfo(dtype).max  # a missing discrete cell, until it is filled
        codes, reals = [], []
        for _, batch in data.batches():
            flat = batch.reshape(len(batch), d).astype(np.float64, copy=False)
            missing = np.isnan(flat)
            if complete_only:
                flat, missing = flat[~missing.any(axis=1)], missing[~missing.any(axis=1)]
            filled = np.where(missing, gap, np.where(is_leaf, 0.0, flat))
            codes.append(filled.astype(dtype))
            reals.append(flat[:, is_leaf])
        rows, leaf_values = np.concatenate(codes), np.concatenate(reals)
        real = {int(j): leaf_values[:, i] for i, j in enumerate(np.flatnonzero(is_leaf))}
        if not complete_only:
            for j in range(d):
                if is_leaf[j]:
                    v = real[j]
                    real[j] = np.where(np.isnan(v), np.nanmedian(v), v)
                    rows[:, j] = 0
                else:
                    column = rows[:, j]
                    column[column == gap] = np.bincount(column[column != gap]).argmax()
        return rows, real

    def _store(self, theta: list[np.ndarray], leaves: dict[int, Leaf]) -> None:
        """Keep the parameters: discrete tables in ``cpt_``, leaves' in ``leaf_params_``."""
        tables = [t.ravel() for j, t in enumerate(theta) if j not in leaves]
        rows = [t.reshape(-1, t.shape[-1])[:, :2] for j, t in enumerate(theta) if j in leaves]
        slopes = [t[..., 2:].ravel() for j, t in enumerate(theta) if j in leaves]
        self.cpt_ = np.concatenate(tables) if tables else np.zeros(0)
        self.leaf_params_ = np.concatenate(rows) if rows else np.zeros((0, 2))
        self.slopes_ = np.concatenate(slopes) if slopes else np.zeros(0)

    def _priors(
        self,
        leaves: dict[int, Leaf],
        pooled: dict[int, tuple[float, float]],
        covariance: np.ndarray,
        centre: dict[int, float],
    ) -> dict[int, Any]:
        """Each leaf's pseudo-row prior: its pooled ``(mean, variance)``; for a continuous
        column with continuous parents, E[u uᵀ] (:func:`clg_prior`) of u = (1, parents,
        itself) under the pooled moments, about ``centre``."""
        out: dict[int, Any] = {}
        for j in leaves:
            linked = self._linked_parents(j)
            if not linked:
                out[j] = pooled[j]
                continue
            cols = [*linked, j]
            mean = [pooled[c][0] - centre[c] for c in cols]
            out[j] = clg_prior(np.array(mean), covariance[np.ix_(cols, cols)])
        return out

    def _estimate(
        self,
        counts: list[np.ndarray],
        alpha: float,
        priors: dict[int, Any],
        leaves: dict[int, Leaf],
        centre: dict[int, float],
    ) -> list[np.ndarray]:
        """Parameters from (expected) counts: smoothed tables, and each leaf's
        ``[mean, variance]`` per configuration (*cards[parents], 2) from its statistics,
        which are of its values less ``centre[j]``; a continuous column with k continuous
        parents gets ``[intercept, variance, slope_1, …, slope_k]`` (*cards[parents], 2 + k)
        by weighted least squares (:func:`clg_estimate`)."""
        theta = []
        for j, c in enumerate(counts):
            if j not in leaves:
                theta.append(_normalise(c + alpha))
                continue
            shape = tuple(int(k) for k in self.cards_[self.parents_[j]])
            linked = self._linked_parents(j)
            if linked:
                coef, var = clg_estimate(c, alpha, priors[j])
                slopes = coef[:, 1:]
                shift = np.array([centre[p] for p in linked])
                intercept = coef[:, 0] + centre[j] - slopes @ shift
                params = np.column_stack([intercept, var, slopes])
                theta.append(params.reshape(*shape, 2 + len(linked)))
                continue
            m, v = priors[j]
            params = leaves[j].estimate(c, alpha, (m - centre[j], v))
            params[:, 0] += centre[j]
            theta.append(params.reshape(*shape, 2))
        return theta

    def _linked_parents(self, j: int) -> list[int]:
        """Variable j's continuous parents (a conditional linear Gaussian's regressors)."""
        kinds = self._kinds()
        return [p for p in self.parents_[j] if kinds[p] != DISCRETE]

    def _linked(self) -> np.ndarray:
        """(D,) bool: continuous columns in a continuous → continuous edge (computed once
        per structure and kinds)."""

        def compute() -> np.ndarray:
            out = np.zeros(len(self.parents_), dtype=bool)
            for j in range(len(self.parents_)):
                linked = self._linked_parents(j)
                if linked:
                    out[[*linked, j]] = True
            out.setflags(write=False)
            return out

        return _derived(self, "linked", (self.parents_, getattr(self, "kinds_", None)), compute)

    def _centred_coef(self, j: int, theta_j: np.ndarray, centre: dict[int, float]):
        """A conditional linear Gaussian's (intercept, slopes) (q, k + 1) and variances
        (q,) about ``centre``, from its parameters (*shape, 2 + k)."""
        flat = theta_j.reshape(-1, theta_j.shape[-1])
        slopes = flat[:, 2:]
        shift = np.array([centre[p] for p in self._linked_parents(j)])
        intercept = flat[:, 0] - centre[j] + slopes @ shift
        return np.column_stack([intercept, slopes]), flat[:, 1]

    def _learn_structure(
        self,
        rows: np.ndarray,
        cards: np.ndarray,
        scorer: FamilyScorer,
        params: Any,
        linkable: np.ndarray,
        bounded: np.ndarray,
        out_of_time: Callable[[], bool] | None = None,
    ) -> list[list[int]]:
        d = rows.shape[1]
        how = params.structure
        is_leaf = self._leaf_mask()
        if isinstance(how, list):
            adj = self._edge_matrix(how, "structure")
            self._refuse_leaf_parents(adj, "structure", linkable, bounded)
            try:
                topological_order(adj)
            except ValueError as e:
                raise parameter_error(
                    self.name, "structure", "an acyclic graph", how, str(e)
                ) from None
            return [np.flatnonzero(adj[:, j]).tolist() for j in range(d)]
        discrete = np.flatnonzero(~is_leaf)
        parents: list[list[int]] = [[] for _ in range(d)]
        if how == "empty" or d == 1 or discrete.size == 0:
            return parents
        if how in ("chow-liu", "naive"):
            mi = pairwise_mutual_information(rows[:, discrete], int(cards[discrete].max()))
            root = int(np.argmax(mi.sum(axis=1)))
            if how == "naive":
                return [[] if j == discrete[root] else [int(discrete[root])] for j in range(d)]
            if discrete.size > 1:
                tree = np.zeros((discrete.size, discrete.size))
                edges = maximum_spanning_tree(mi)
                tree[edges[:, 0], edges[:, 1]] = 1.0
                _, pred = breadth_first_order(tree, root, directed=False)
                for i, j in enumerate(discrete):
                    if pred[i] >= 0:
                        parents[j] = [int(discrete[pred[i]])]
            for j in np.flatnonzero(is_leaf):  # each leaf below its most informative column
                gains = [scorer.information(int(j), int(p)) for p in discrete]
                parents[j] = [int(discrete[int(np.argmax(gains))])]
            return parents
        black = np.zeros((d, d), dtype=bool)
        black[is_leaf] = True  # a count or continuous column is never a parent ...
        black[np.ix_(linkable, linkable)] = False  # ... but of a continuous column
        k = params.candidates
        if k == "auto":
            k = None if discrete.size <= MAX_FULL_SEARCH else AUTO_CANDIDATES
        if k is not None and k < discrete.size - 1:
            # sparse candidates: only the k partners of highest mutual information
            mi = pairwise_mutual_information(rows[:, discrete], int(cards[discrete].max()))
            np.fill_diagonal(mi, -np.inf)
            top = np.argsort(-mi, axis=1)[:, :k]  # (D', k)
            near = np.zeros((discrete.size, discrete.size), dtype=bool)
            near[np.repeat(np.arange(discrete.size), k), top.ravel()] = True
            near |= near.T
            black[np.ix_(discrete, discrete)] |= ~near
        if params.black_list is not None:
            black |= self._edge_matrix(params.black_list, "black_list")
        white = (
            None
            if params.white_list is None
            else self._edge_matrix(params.white_list, "white_list")
        )
        if white is not None:
            self._refuse_leaf_parents(white, "white_list", linkable, bounded)
            try:
                topological_order(white)
            except ValueError as e:
                raise parameter_error(
                    self.name, "white_list", "acyclic", self.white_list, str(e)
                ) from None
            if params.black_list is not None and (white & black).any():
                raise ParameterError(f"{self.name}: white_list and black_list share an edge")
        return hill_climb(
            scorer,
            max_parents=params.max_parents,
            tabu_length=params.tabu_length,
            max_iter=params.max_iter,
            black=black,
            white=white,
            out_of_time=out_of_time,
        )

    def _warn_out_of_time(self, what: str) -> None:
        warnings.warn(
            f"{self.name}: {what} stopped at max_time={float(self.max_time):g} s and kept "
            "what it had found by then; raise max_time, or search less (a smaller "
            "candidates, max_parents or max_iter, or structure='chow-liu')",
            UserWarning,
            stacklevel=4,
        )

    def _refuse_leaf_parents(
        self, adj: np.ndarray, key: str, linkable: np.ndarray, bounded: np.ndarray
    ) -> None:
        """A ParameterError for an edge out of a count or continuous column, but for one
        between two continuous columns (a conditional linear Gaussian), which needs both
        unbounded."""
        is_leaf = self._leaf_mask()
        continuous = np.array([k == "continuous" for k in self._kinds()])
        out_of_leaf = adj & is_leaf[:, None] & ~(continuous[:, None] & continuous[None, :])
        if out_of_leaf.any():
            p, c = (int(i) for i in np.argwhere(out_of_leaf)[0])
            raise parameter_error(
                self.name, key, "edges whose parents are label columns", getattr(self, key),
                f"{self.columns_[p]!r} -> {self.columns_[c]!r} starts at a "
                f"{self.kinds_[p]} column; count and continuous columns have discrete "
                "parents only (a continuous column may also be a parent of a continuous "
                "column): reverse the edge or drop it",
            )  # fmt: skip
        between = adj & continuous[:, None] & continuous[None, :]
        for p, c in np.argwhere(between & ~(linkable[:, None] & linkable[None, :])):
            which = self.columns_[p if bounded[p] else c]
            raise parameter_error(
                self.name, key, "edges between unbounded continuous columns", getattr(self, key),
                f"{self.columns_[p]!r} -> {self.columns_[c]!r}: {which!r} has bounds, so it "
                "is a truncated Gaussian, which has discrete parents only (truncated "
                "Gaussians have no closed-form joint): drop the edge, or the column's bounds "
                "from the schema",
            )  # fmt: skip

    def _edge_matrix(self, edges: list[list[Any]], key: str) -> np.ndarray:
        """(D, D) bool adjacency of user edges over column names or indices."""
        d = len(self.columns_)
        adj = np.zeros((d, d), dtype=bool)
        for parent, child in edges:
            try:
                adj[self._index(parent), self._index(child)] = True
            except DataError as e:
                raise parameter_error(
                    self.name, key, "edges between the data's columns", getattr(self, key), str(e)
                ) from None
        return adj

    def _em(
        self,
        data: Source,
        theta: list[np.ndarray],
        alpha: float,
        priors: dict[int, Any],
        leaves: dict[int, Leaf],
        centre: dict[int, float],
        max_iter: int,
        tol: float,
        deadline: Deadline | None = None,
    ) -> list[np.ndarray]:
        """EM over the parameters with exact expected statistics, the E-step summed over
        the batches of ``data`` (all-reduced under torchrun); a leaf's statistics are of
        its values less ``centre[j]``. Records ``history_``."""
        n, d = data.n, len(theta)
        is_leaf = self._leaf_mask()
        discrete = ~is_leaf
        plans: dict[bytes, tuple[list[int], list[int]]] = {}  # per pattern of missing cells

        def plan(observed: np.ndarray) -> tuple[list[int], list[list[int]], list[int]]:
            """The families a pattern's missing cells touch, the Gaussian blocks of
            continuous columns they couple, and an elimination order."""
            key = observed.tobytes()
            if key not in plans:
                blocks = self._gaussian_blocks(observed, np.ones(d, dtype=bool))
                inside = {v for block in blocks for v in block}
                # a missing leaf outside a block has no child: it integrates to 1
                touching = [
                    j
                    for j in range(d)
                    if not observed[[*self.parents_[j], j]].all()
                    and (j not in leaves or observed[j])
                    and j not in inside
                ]
                scopes = [[v for v in [*self.parents_[j], j] if not observed[v]] for j in touching]
                scopes += [
                    sorted({p for j in block for p in self.parents_[j]
                            if discrete[p] and not observed[p]})
                    for block in blocks
                ]  # fmt: skip
                free = np.flatnonzero(~observed & discrete).tolist()
                plans[key] = (touching, blocks, min_fill_order(scopes, free, self.cards_))
            return plans[key]

        def expected(batch: np.ndarray, logt: list[np.ndarray]) -> dict[str, Any]:
            """The batch's log-likelihood and expected counts of every family."""
            flat = batch.reshape(len(batch), d).astype(np.float64, copy=False)
            missing = np.isnan(flat)
            values = np.where(missing | is_leaf, 0, flat).astype(np.int64)
            per_row, counts = self._observed_families(logt, values, flat, missing, leaves, centre)
            loglik = float(per_row.sum())
            for rows, observed in missing_patterns(flat):
                touching, blocks, order = plan(observed)
                if not touching and not blocks:
                    continue
                vals, xs = values[rows], flat[rows]
                factors = [self._family_factor(j, logt[j], vals, xs, observed, leaves)
                           for j in touching]  # fmt: skip
                gaussian = [_GaussianBlock(self, b, logt, vals, xs, observed) for b in blocks]
                pool, steps = eliminate(
                    [*factors, *(g.factor for g in gaussian)], order, self.cards_
                )
                loglik += float(log_total(pool, len(rows)).sum())
                beliefs = calibrate(steps, len(rows))
                where = {i: s for s, st in enumerate(steps) for i in st.absorbed}
                for i, (j, f) in enumerate(zip(touching, factors, strict=True)):
                    post = np.exp(marginal(beliefs[where[i]], f.vars))
                    if j in leaves:
                        terms, shape = self._stat_terms(j, xs, centre)
                        counts[j] += np.stack(
                            [self._expected(j, vals, observed, post, w).ravel() for w in terms],
                            axis=1,
                        ).reshape(shape)
                    else:
                        counts[j] += self._expected(j, vals, observed, post)
                for i, g in enumerate(gaussian, start=len(factors)):
                    vars_ = g.factor.vars  # its free discrete parents (none: not eliminated)
                    post = np.exp(marginal(beliefs[where[i]], vars_)) if vars_ else None
                    for j, stats in g.expected_stats(post, vals, xs, centre).items():
                        counts[j] += stats
            return {"loglik": loglik, **{str(j): c for j, c in enumerate(counts)}}

        history: list[dict[str, float]] = []
        prev = -math.inf
        for step in range(1, max_iter + 1):
            logt = _logs(theta, leaves)
            sums = accumulate(data, lambda batch, _, logt=logt: expected(batch, logt))
            loglik = float(sums["loglik"])
            counts = [sums[str(j)] for j in range(d)]
            prior = sum(self._log_prior(j, t, alpha, priors, leaves, centre)
                        for j, t in enumerate(theta))  # fmt: skip
            objective = (loglik + prior) / n
            history.append({"step": step, "objective": objective, "log_likelihood": loglik / n})
            theta = self._estimate(counts, alpha, priors, leaves, centre)
            if abs(objective - prev) < tol:
                break
            if deadline is not None and deadline.passed():
                self._warn_out_of_time("EM over the missing entries")
                break
            prev = objective
        self.history_ = history
        self.n_iter_ = len(history)
        return theta

    def _log_prior(
        self,
        j: int,
        theta_j: np.ndarray,
        alpha: float,
        priors: dict[int, Any],
        leaves: dict[int, Leaf],
        centre: dict[int, float],
    ) -> float:
        """Family j's log prior (up to a constant): Σ α log θ of a table, α E_prior[log f]
        of a leaf (the pseudo-rows' log-likelihood)."""
        if j not in leaves:
            return float(xlogy(alpha, theta_j).sum())
        if not self._linked_parents(j):
            return leaves[j].log_prior(theta_j.reshape(-1, 2), alpha, priors[j])
        coef, var = self._centred_coef(j, theta_j, centre)
        return clg_log_likelihood(np.broadcast_to(alpha * priors[j], (len(var), *priors[j].shape)),
                                  coef, var)  # fmt: skip

    def _stat_terms(
        self, j: int, xs: np.ndarray, centre: dict[int, float] | None
    ) -> tuple[list[np.ndarray | None], tuple[int, ...]]:
        """Leaf j's per-row statistics (weights to sum per configuration), and the shape
        of their sums: 1, x, x² → (q, 3); for a continuous column with continuous parents
        every u_a u_b of u = (1, parents, x) → (q, m, m) (:func:`clg_stats`); values less
        ``centre`` (0 where None)."""
        q = int(np.prod(self.cards_[self.parents_[j]]))
        cols = [*self._linked_parents(j), j]
        z = xs[:, cols] - np.array([(centre or {}).get(c, 0.0) for c in cols])
        if len(cols) == 1:
            return [None, z[:, 0], z[:, 0] ** 2], (q, 3)
        u = np.column_stack([np.ones(len(z)), z])
        m = u.shape[1]
        return [u[:, a] * u[:, b] for a in range(m) for b in range(m)], (q, m, m)

    def _observed_families(
        self,
        logt: list[np.ndarray] | None,
        values: np.ndarray,
        flat: np.ndarray,
        missing: np.ndarray,
        leaves: dict[int, Leaf],
        centre: dict[int, float] | None = None,
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """Over the rows where a family is all observed: the sum of its log-probabilities
        (and leaves' log-densities) per row (N,) (zeros without ``logt``), and its counts
        (*cards[family]) — a leaf's statistics (q, 3) ``[n, Σx, Σx²]`` of its values less
        ``centre[j]`` (0 without ``centre``) — for every family."""
        per_row = np.zeros(len(values))
        counts = []
        for j, ps in enumerate(self.parents_):
            fam = [*ps, j]
            seen = ~missing[:, fam].any(axis=1)
            if j in leaves:
                q = int(np.prod(self.cards_[ps]))
                code = _codes(values[seen][:, ps], self.cards_[ps])
                x_seen = flat[seen]
                if logt is not None:
                    at = self._leaf_at(j, logt[j], x_seen)  # (1 or n, q, 2)
                    rows = np.arange(len(code)) if len(at) > 1 else np.zeros(len(code), int)
                    per_row[seen] += leaves[j].log_density(x_seen[:, j], at[rows, code])
                terms, shape = self._stat_terms(j, x_seen, centre)
                counts.append(
                    np.stack([np.bincount(code, weights=w, minlength=q) for w in terms], axis=1)
                    .reshape(shape) * 1.0
                )  # fmt: skip
                continue
            size = int(np.prod(self.cards_[fam]))
            code = _codes(values[seen][:, fam], self.cards_[fam])
            if logt is not None:
                per_row[seen] += logt[j].ravel()[code]
            shape = tuple(int(c) for c in self.cards_[fam])
            counts.append(np.bincount(code, minlength=size).reshape(shape) * 1.0)
        return per_row, counts

    def _expected(
        self,
        j: int,
        vals: np.ndarray,
        observed: np.ndarray,
        post: np.ndarray | None,
        weights: np.ndarray | None = None,
    ) -> np.ndarray:
        """Expected counts (*cards[family]) of family j from examples ``vals`` sharing the
        ``observed`` mask, given the posterior ``post`` (n, *cards[free family vars]), each
        example weighted by ``weights`` (n,) where given."""
        fam = np.array([*self.parents_[j], j])
        cards = self.cards_[fam]
        strides = np.append(np.cumprod(cards[::-1])[::-1][1:], 1)
        seen = observed[fam]
        base = vals[:, fam[seen]] @ strides[seen]  # (n,)
        size = int(np.prod(cards))
        if post is None:
            return np.bincount(base, weights=weights, minlength=size).reshape(cards) * 1.0
        if weights is not None:
            post = post * weights.reshape(-1, *([1] * (post.ndim - 1)))
        free_cards = cards[~seen]
        grid = sum(
            np.arange(c).reshape([-1 if a == i else 1 for a in range(len(free_cards))]) * s
            for i, (c, s) in enumerate(zip(free_cards, strides[~seen], strict=True))
        )
        index = base.reshape(-1, *([1] * len(free_cards))) + grid
        return np.bincount(index.ravel(), weights=post.ravel(), minlength=size).reshape(cards)

    # ----------------------------------------------------------------- tables and factors
    def _ancestors(self) -> np.ndarray:
        """(D, D) bool: [i, j] when i is an ancestor of j (computed once per structure)."""
        return _derived(self, "ancestors", (self.parents_,),
                        lambda: ancestors(self._adjacency()))  # fmt: skip

    def _log_tables(self, leaves: dict[int, Leaf]) -> list[np.ndarray]:
        """The log-tables (leaves: their parameters) of the fitted parameters, read-only,
        computed once per set of parameter arrays."""
        slopes = getattr(self, "slopes_", None)

        def compute() -> list[np.ndarray]:
            tables = _logs(self.cpts(), leaves)
            for t in tables:
                t.setflags(write=False)
            return tables

        return _derived(self, "log_tables", (self.cpt_, self.leaf_params_, slopes), compute)

    def cpts(self) -> list[np.ndarray]:
        """Each variable's parameters: a discrete variable's table p(x_j | parents), shape
        (*cards_[parents_[j]], cards_[j]); a count or continuous leaf's ``[mean, variance]``
        per configuration of its parents, shape (*cards_[parents_[j]], 2); a continuous
        column with k continuous parents (its axes of size 1) ``[intercept, variance,
        slope_1, …, slope_k]``, shape (*cards_[parents_[j]], 2 + k): its mean is the
        intercept + Σ slope_i × parent_i (the continuous parents in ``parents_`` order)."""
        self._check_fitted()
        out, start, row, at = [], 0, 0, 0
        slopes = getattr(self, "slopes_", np.zeros(0))
        for j, ps in enumerate(self.parents_):
            shape = tuple(int(c) for c in self.cards_[ps])
            q = int(np.prod(shape))
            if self._kinds()[j] != DISCRETE:
                k = len(self._linked_parents(j))
                params = self.leaf_params_[row : row + q]
                if k:
                    params = np.column_stack([params, slopes[at : at + q * k].reshape(q, k)])
                out.append(params.reshape(*shape, 2 + k))
                row, at = row + q, at + q * k
                continue
            shape = (*shape, int(self.cards_[j]))
            out.append(self.cpt_[start : start + q * shape[-1]].reshape(shape))
            start += q * shape[-1]
        return out

    def _kinds(self) -> list[str]:
        return list(getattr(self, "kinds_", None) or [DISCRETE] * len(self.cards_))

    def _leaf_mask(self) -> np.ndarray:
        return np.array([k != DISCRETE for k in self._kinds()], dtype=bool)

    def _leaves(self) -> dict[int, Leaf]:
        """The count and continuous columns' conditional models, by column index."""
        return _make_leaves(self._kinds(), self.fitted_spec.columns)

    def _adjacency(self) -> np.ndarray:
        d = len(self.parents_)
        adj = np.zeros((d, d), dtype=bool)
        for j, ps in enumerate(self.parents_):
            adj[ps, j] = True
        return adj

    def _factor(self, j: int, logt: np.ndarray, vals: np.ndarray, observed: np.ndarray) -> Factor:
        """Variable j's log-table with the observed entries of ``vals`` (n, D) fixed:
        a factor (n, *cards) over its family's unobserved variables, or (1, …) if none is
        observed."""
        fam = [*self.parents_[j], j]
        seen = [a for a, v in enumerate(fam) if observed[v]]
        free = [a for a, v in enumerate(fam) if not observed[v]]
        table = np.transpose(logt, seen + free)
        table = table[tuple(vals[:, fam[a]] for a in seen)] if seen else table[None]
        return Factor(tuple(fam[a] for a in free), table)

    def _family_factor(
        self,
        j: int,
        theta_j: np.ndarray,
        vals: np.ndarray,
        xs: np.ndarray,
        observed: np.ndarray,
        leaves: dict[int, Leaf],
        missing_leaf: str = "drop",
    ) -> Factor | None:
        """Family j as a factor over its unobserved discrete variables, for examples with
        codes ``vals`` and values ``xs`` (n, D) sharing the ``observed`` mask. A leaf's is
        its log-density at the observed value per configuration of its missing parents;
        a missing leaf gives None (it integrates to 1), or with ``missing_leaf="max"`` its
        largest log-density (at its mode) per configuration, for max-product."""
        if j not in leaves:
            return self._factor(j, theta_j, vals, observed)
        leaf, ps = leaves[j], self.parents_[j]
        params = self._leaf_at(j, theta_j, xs)  # continuous parents: observed here
        shape = tuple(int(c) for c in self.cards_[ps])
        if observed[j]:
            table = leaf.log_density(xs[:, j, None], params).reshape(len(xs), *shape)
        elif missing_leaf == "max":
            table = leaf.log_density(leaf.mode(params), params).reshape(len(params), *shape)
        else:
            return None
        seen = [a for a, v in enumerate(ps) if observed[v]]
        free = [a for a, v in enumerate(ps) if not observed[v]]
        table = np.transpose(table, [0, *(a + 1 for a in seen + free)])
        if seen:
            batch = np.arange(len(vals)) if len(table) > 1 else np.zeros(len(vals), np.int64)
            table = table[(batch, *(vals[:, ps[a]] for a in seen))]
        return Factor(tuple(ps[a] for a in free), table)

    def _gaussian_blocks(self, observed: np.ndarray, keep: np.ndarray) -> list[list[int]]:
        """Continuous columns that missing cells couple: among the columns in ``keep`` that
        have or are a continuous parent and whose family has a missing cell, the connected
        components (by continuous → continuous edges) that hold a missing column, each in
        topological order. A column whose family is observed stays an ordinary factor, and
        an input (a known value) to its children's means."""
        linked = self._linked() & keep
        nodes = [
            j
            for j in range(len(observed))
            if linked[j] and not observed[[*self.parents_[j], j]].all()
        ]
        if not any(not observed[j] for j in nodes):
            return []
        group = {j: j for j in nodes}

        def root(j: int) -> int:
            while group[j] != j:
                j = group[j]
            return j

        for j in nodes:
            for p in self._linked_parents(j):
                if p in group:
                    group[root(p)] = root(j)
        rank = {int(v): i for i, v in enumerate(self.order_)}
        parts: dict[int, list[int]] = {}
        for j in nodes:
            parts.setdefault(root(j), []).append(j)
        return [
            sorted(part, key=rank.__getitem__)
            for part in parts.values()
            if not observed[part].all()
        ]

    def _leaf_at(self, j: int, theta_j: np.ndarray, xs: np.ndarray) -> np.ndarray:
        """Leaf j's ``[mean, variance]`` per configuration of its discrete parents:
        (1, q, 2), or (n, q, 2) at the continuous parents' values of the rows ``xs``."""
        flat = theta_j.reshape(-1, theta_j.shape[-1])
        linked = self._linked_parents(j)
        if not linked:
            return flat[None, :, :2]
        mean = flat[None, :, 0] + xs[:, linked] @ flat[:, 2:].T
        return np.stack([mean, np.broadcast_to(flat[None, :, 1], mean.shape)], axis=-1)

    def _rows(self, flat: np.ndarray) -> np.ndarray:
        """The discrete codes of ``flat`` (NaN and leaves as 0), int64 (N, D)."""
        return np.where(np.isnan(flat) | self._leaf_mask(), 0, flat).astype(np.int64)

    # ----------------------------------------------------------------- scoring
    def _score_samples(self, x: np.ndarray) -> np.ndarray:
        flat = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
        leaves = self._leaves()
        logt = self._log_tables(leaves)
        missing = np.isnan(flat)
        values = self._rows(flat)
        out, _ = self._observed_families(logt, values, flat, missing, leaves)
        if not missing.any():
            return out
        anc = self._ancestors()
        discrete = ~self._leaf_mask()
        for rows, observed in missing_patterns(flat):
            # barren variables (missing, with no observed descendant) sum to one: drop them
            # (a missing leaf among them); families all observed are in ``out`` already
            relevant = observed | anc[observed].any(axis=0)
            blocks = self._gaussian_blocks(observed, relevant)
            inside = {v for block in blocks for v in block}
            touching = [
                j
                for j in np.flatnonzero(relevant)
                if not observed[[*self.parents_[j], j]].all() and j not in inside
            ]
            if not touching and not blocks:
                continue
            vals, xs = values[rows], flat[rows]
            factors = [
                self._family_factor(j, logt[j], vals, xs, observed, leaves) for j in touching
            ]
            factors += [_GaussianBlock(self, b, logt, vals, xs, observed).factor for b in blocks]
            free = np.flatnonzero(relevant & ~observed & discrete).tolist()
            order = min_fill_order([f.vars for f in factors], free, self.cards_)
            pool, _ = eliminate(factors, order, self.cards_)
            out[rows] += log_total(pool, len(rows))
        return out

    # ----------------------------------------------------------------- sampling
    def _sample(self, n: int, y: Any, rng: np.random.Generator) -> np.ndarray:
        theta, leaves = self.cpts(), self._leaves()
        codes = np.zeros((n, len(self.cards_)), dtype=np.int64)
        out = np.zeros((n, len(self.cards_)))
        for j in self.order_:  # ancestral: parents first
            at = theta[j][tuple(codes[:, p] for p in self.parents_[j])]
            if j in leaves:
                at = np.broadcast_to(at, (n, at.shape[-1]))
                linked = self._linked_parents(j)  # drawn before j: the mean moves with them
                mean = at[:, 0] + (out[:, linked] * at[:, 2:]).sum(axis=1)
                out[:, j] = leaves[j].sample(np.column_stack([mean, at[:, 1]]), rng)
                continue
            probs = np.broadcast_to(at, (n, at.shape[-1]))  # (n, r_j), roots too
            codes[:, j] = sample_categorical(probs, rng)
            out[:, j] = codes[:, j]
        return out

    def _impute(self, x: np.ndarray, method: str, rng: np.random.Generator) -> np.ndarray:
        flat = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
        out = flat.copy()
        leaves = self._leaves()
        theta = self.cpts()
        logt = _logs(theta, leaves)
        values = self._rows(flat)
        discrete = ~self._leaf_mask()
        mode = "max" if method == "mode" else "sum"

        def choose(logits: np.ndarray) -> np.ndarray:
            if mode == "max":
                return logits.argmax(axis=-1)
            return sample_categorical(logits, rng, log=True)

        for rows, observed in missing_patterns(flat):
            if observed.all():
                continue
            vals, xs = values[rows], flat[rows]
            blocks = [
                _GaussianBlock(self, b, logt, vals, xs, observed, mode)
                for b in self._gaussian_blocks(observed, np.ones(len(observed), dtype=bool))
            ]
            inside = {v for block in blocks for v in block.nodes}
            factors = [
                f
                for j in range(len(logt))
                if j not in inside
                and (f := self._family_factor(j, logt[j], vals, xs, observed, leaves, mode))
                is not None
            ]
            factors += [block.factor for block in blocks]
            free = np.flatnonzero(~observed & discrete).tolist()
            order = min_fill_order([f.vars for f in factors], free, self.cards_)
            _, steps = eliminate(factors, order, self.cards_, mode)
            codes = vals.copy()
            for v, drawn in traceback(steps, len(rows), choose).items():
                out[rows, v] = drawn
                codes[:, v] = drawn
            for block in blocks:  # its missing columns given the discrete ones, jointly
                out[np.ix_(rows, block.missing)] = block.fill(codes, mode, rng)
            for j, leaf in leaves.items():  # a missing leaf given its parents, now all known
                if observed[j] or j in inside:
                    continue
                at = theta[j][tuple(codes[:, p] for p in self.parents_[j])]
                at = np.broadcast_to(at, (len(rows), 2))
                out[rows, j] = leaf.mode(at) if mode == "max" else leaf.sample(at, rng)
        return out

    # ----------------------------------------------------------------- labelled evidence
    def sample(
        self,
        n_samples: int = 1,
        *,
        y: Any = None,
        given: Any = None,
        random_state: int | np.random.Generator | None = None,
    ) -> np.ndarray:
        """Draw ``n_samples`` rows (codes: a table's with :func:`ptheta.data.table.decode`
        as labels). ``given`` fixes some cells and draws the others exactly from
        p(x_missing | x_observed): rows with NaN where missing (codes), or by name — a
        pandas DataFrame of any of the columns, or a dict {column: value or one value per
        row} — with a table's labels for its label columns (numbers for count and
        continuous columns), levels 0..K−1 otherwise; unnamed columns are drawn."""
        partial = self._named_partial(given)
        return super().sample(n_samples, y=y, given=partial, random_state=random_state)

    def impute(
        self,
        X: Any,
        *,
        method: str = "mode",
        random_state: int | np.random.Generator | None = None,
    ) -> np.ndarray:
        """Fill the NaN cells of ``X`` (rows of codes, or by name as in :meth:`sample`'s
        ``given``): ``"mode"`` the most probable completion, ``"sample"`` exact draws."""
        partial = self._named_partial(X)
        return super().impute(partial, method=method, random_state=random_state)

    def _named_partial(self, given: Any) -> Any:
        """Partial rows given by name (a DataFrame of some columns, or a dict) as (n, D)
        float64 codes with NaN in the cells not given; anything else as it is."""
        from ptheta.data.table import encode, is_frame

        if not (isinstance(given, dict) or is_frame(given)) or not self.is_fitted():
            return given
        import pandas as pd

        if isinstance(given, dict):
            lengths = {len(v) for v in given.values() if np.ndim(v) == 1}
            if len(lengths) > 1 or any(np.ndim(v) > 1 for v in given.values()):
                raise DataError(
                    "given= as a dict takes one value, or one list of values of the same "
                    f"length, per column; got lengths {sorted(lengths)}"
                )
            n = lengths.pop() if lengths else 1
            given = pd.DataFrame(
                {k: list(v) if np.ndim(v) == 1 else [v] * n for k, v in given.items()}
            )
        names = [self.columns_[self._index(c)] for c in given.columns]
        if len(set(names)) < len(names):
            raise DataError(f"given= names a column twice: {list(given.columns)}")
        frame = given.set_axis(names, axis=1)
        absent = [c for c in self.columns_ if c not in names]
        frame = frame.assign(**{c: [None] * len(frame) for c in absent})[self.columns_]
        columns = self.fitted_spec.columns
        if columns is not None:
            return encode(frame, columns, "given")
        out = frame.astype("float64").to_numpy()  # levels 0..K−1 (checked by sample)
        return out

    # ----------------------------------------------------------------- queries
    def query(self, variables: Any, evidence: dict[Any, Any] | None = None) -> Any:
        """P(variables | evidence) as a table: a pandas DataFrame with one column per
        query variable (its levels: a table's labels) and ``probability``, one row per
        joint configuration (the first variable slowest).

        Arguments:
            variables: a discrete column's name (or index), or a list of them.
            evidence: {column: level} of observed variables (none by default): a table's
                label columns take their labels, count and continuous columns numbers.
        """
        q, pool = self._eliminate_others(variables, evidence)
        table = product([f for f in pool if f.vars], self.cards_)
        log_p = np.transpose(table.log, [0, *(table.vars.index(v) + 1 for v in q)])[0]
        log_p = log_p + log_total(pool, 1)[0]  # what the evidence alone left
        if np.isneginf(log_p).all():  # the product, not one factor: zeros may not overlap
            raise self._impossible(evidence)
        log_p = log_p - reduce_log(log_p.reshape(-1), 0, "sum")  # scipy's costs 0.2 ms
        import pandas as pd  # a dependency of statsmodels; only queries need it

        labels = self._label_arrays()
        if len(q) == 1:  # the common case: the levels in order
            columns = {self.columns_[q[0]]: labels[q[0]].copy()}
        else:
            grid = np.indices([len(labels[v]) for v in q]).reshape(len(q), -1)  # first slowest
            columns = {
                self.columns_[v]: labels[v].take(row) for v, row in zip(q, grid, strict=True)
            }
        columns["probability"] = np.exp(log_p).ravel()
        # one construction of arrays already typed (no inference) and the table's own, so
        # nothing to copy; no column added afterwards
        return pd.DataFrame(columns, copy=False)

    def map_query(self, variables: Any, evidence: dict[Any, Any] | None = None) -> dict[str, Any]:
        """The most probable joint levels of ``variables`` given ``evidence``,
        argmax P(variables | evidence) (the others summed out first: exact marginal MAP),
        as {column: level} (a table's labels)."""
        q, pool = self._eliminate_others(variables, evidence)
        order = min_fill_order([f.vars for f in pool], q, self.cards_)
        rest, steps = eliminate(pool, order, self.cards_, "max")
        if np.isneginf(log_total(rest, 1)[0]):  # the best joint level has probability 0
            raise self._impossible(evidence)
        best = traceback(steps, 1, lambda logits: logits.argmax(axis=-1))
        return {self.columns_[v]: self._levels(v)[int(best[v][0])] for v in q}

    @staticmethod
    def _impossible(evidence: dict[Any, Any] | None) -> DataError:
        return DataError(f"the evidence {evidence!r} has probability 0 under the model")

    def _eliminate_others(
        self, variables: Any, evidence: dict[Any, Any] | None
    ) -> tuple[list[int], list[Factor]]:
        """The query's variable indices and the factors left once every other unobserved
        variable is summed out (evidence fixed, barren and cut-off variables pruned); the
        caller checks that their product does not vanish (impossible evidence)."""
        self._check_fitted()
        names = [variables] if isinstance(variables, (str, int, np.integer)) else list(variables)
        q = [self._index(v) for v in names]
        if not q or len(set(q)) < len(q):
            raise DataError(f"query variables must be distinct and at least one, got {names!r}")
        for v in q:
            if self._kinds()[v] != DISCRETE:
                raise DataError(
                    f"{self.columns_[v]!r} is a {self._kinds()[v]} column; queries ask for "
                    "label columns (its conditional distribution: sample(n, given=...), or "
                    "give it as evidence)"
                )
        d = len(self.cards_)
        leaves = self._leaves()
        observed = np.zeros(d, dtype=bool)
        vals = np.zeros((1, d), dtype=np.int64)
        xs = np.zeros((1, d))
        for key, level in (evidence or {}).items():
            v = self._index(key)
            if v in q:
                raise DataError(f"{self.columns_[v]!r} is both queried and given as evidence")
            observed[v] = True
            if v in leaves:
                xs[0, v] = self._leaf_value(v, level)
            else:
                vals[0, v] = self._level(v, level)
        keep = np.zeros(d, dtype=bool)
        keep[q] = True
        anc = self._ancestors()
        relevant = observed | keep | anc[observed | keep].any(axis=0)
        logt = self._log_tables(leaves)
        blocks = self._gaussian_blocks(observed, relevant)
        inside = {v for block in blocks for v in block}
        families = [j for j in np.flatnonzero(relevant).tolist() if j not in inside]
        if not blocks:
            families = self._linked_families(families, q, observed, logt, vals, xs, leaves)
        factors = [self._family_factor(j, logt[j], vals, xs, observed, leaves) for j in families]
        factors = [f for f in factors if f is not None]  # missing leaves: integrated out
        factors += [_GaussianBlock(self, b, logt, vals, xs, observed).factor for b in blocks]
        held = {v for f in factors for v in f.vars}
        free = [v for v in np.flatnonzero(~observed & ~keep & ~self._leaf_mask()) if v in held]
        order = min_fill_order([f.vars for f in factors], free, self.cards_)
        pool, _ = eliminate(factors, order, self.cards_)
        return q, pool

    def _linked_families(
        self,
        families: list[int],
        q: list[int],
        observed: np.ndarray,
        logt: list[np.ndarray],
        vals: np.ndarray,
        xs: np.ndarray,
        leaves: dict[int, Leaf],
    ) -> list[int]:
        """The ``families`` whose factors link to the query ``q`` through unobserved
        variables (d-connected to it given the evidence). The others' product, summed over
        their variables, only scales the answer; unless it can vanish (a zero in one of
        their tables): then every family is kept, so that impossible evidence is found."""
        scopes = [
            ()
            if j in leaves and not observed[j]  # a missing leaf integrates to 1
            else tuple(u for u in (*self.parents_[j], j) if not observed[u])
            for j in families
        ]
        link = linked_scopes(scopes, q)
        for j, linked in zip(families, link, strict=True):
            if linked:
                continue
            table = logt[j]
            if j in leaves:  # its log-densities at the observed value
                factor = self._family_factor(j, logt[j], vals, xs, observed, leaves)
                table = factor.log if factor is not None else np.zeros(1)
            if np.isneginf(table).any():
                return families
        return [j for j, linked in zip(families, link, strict=True) if linked]

    def _index(self, name: Any) -> int:
        """A variable's index from its column name (or its index)."""
        if isinstance(name, str) and name in self.columns_:
            return self.columns_.index(name)
        if is_integer(name) and 0 <= int(name) < len(self.columns_):
            return int(name)
        shown = ", ".join(self.columns_[:8]) + (", …" if len(self.columns_) > 8 else "")
        raise DataError(f"unknown variable {name!r}; the network's variables are {shown}")

    def _label_arrays(self) -> list[Any]:
        """Each discrete variable's level labels (:meth:`_levels`) as the pandas array of
        a :meth:`query` table's column, None for the others (computed once per fitted data
        description)."""
        import pandas as pd

        def compute() -> list[Any]:
            return [
                pd.Series(self._levels(v)).array if kind == DISCRETE else None
                for v, kind in enumerate(self._kinds())
            ]

        return _derived(self, "label_arrays", (self.fitted_spec, self.cards_), compute)

    def _levels(self, v: int) -> list[Any]:
        """The labels of variable v's levels: a table's labels, else 0..K−1."""
        columns = self.fitted_spec.columns
        if columns is not None:
            return list(columns[v].levels)
        return list(range(int(self.cards_[v])))

    def _level(self, v: int, label: Any) -> int:
        """The code of ``label``: one of a table column's labels (a number matches the
        label it is written as, ``1`` → ``"1"``), else a level 0..K−1."""
        labels = self._levels(v)
        text = label
        if self.fitted_spec.columns is not None and not isinstance(label, str):
            text = _label_text(label)
        for i, known in enumerate(labels):
            if type(label) is not bool and text == known:
                return i
        raise DataError(f"{self.columns_[v]!r} has no level {label!r}; its levels are {labels}")

    def _leaf_value(self, v: int, value: Any) -> float:
        """Evidence on a count or continuous column: a number of its kind, within bounds."""
        col = self.fitted_spec.columns[v]
        ok = not isinstance(value, (bool, str)) and isinstance(value, (int, float, np.number))
        number = float(value) if ok else math.nan
        if (
            not math.isfinite(number)
            or (col.type == "count" and (number < 0 or number != round(number)))
            or (col.lower is not None and number < col.lower)
            or (col.upper is not None and number > col.upper)
        ):
            raise DataError(
                f"{col.name!r} is {col.describe()}; evidence on it must be such a number, "
                f"got {value!r}"
            )
        return number

    # ----------------------------------------------------------------- size, state
    def _n_parameters(self) -> int:
        leaves = self._leaves()
        return sum(
            int(t.size // t.shape[-1])
            * (leaves[j].n_params + t.shape[-1] - 2 if j in leaves else t.shape[-1] - 1)
            for j, t in enumerate(self.cpts())
        )

    def _required_attributes(self) -> tuple[str, ...]:
        return ("columns_", "cards_", "parents_", "order_", "edges_", "cpt_")

    def _after_set_state(self) -> None:
        if not hasattr(self, "kinds_"):  # a network saved before tables had leaves
            self.kinds_ = [DISCRETE] * len(self.cards_)
        if not hasattr(self, "leaf_params_") or np.size(self.leaf_params_) == 0:
            self.leaf_params_ = np.zeros((0, 2))
        if not hasattr(self, "slopes_"):  # a network saved before continuous parents
            self.slopes_ = np.zeros(0)

    def _expected_shapes(self, spec: DataSpec) -> dict[str, tuple[int, ...]]:
        d = int(np.prod(spec.event_shape))
        shapes: dict[str, tuple[int, ...]] = {"cards_": (d,), "order_": (d,)}
        parents, cards = getattr(self, "parents_", None), getattr(self, "cards_", None)
        kinds = getattr(self, "kinds_", None) or [DISCRETE] * d
        if isinstance(parents, list) and len(parents) == d and np.shape(cards) == (d,):
            cards = np.asarray(cards)
            sizes = [int(np.prod(cards[ps])) for ps in parents]
            shapes["cpt_"] = (
                sum(s * int(cards[j]) for j, s in enumerate(sizes) if kinds[j] == DISCRETE),
            )
            n_leaf_rows = sum(s for j, s in enumerate(sizes) if kinds[j] != DISCRETE)
            if n_leaf_rows:
                shapes["leaf_params_"] = (n_leaf_rows, 2)
            n_slopes = sum(
                s * sum(kinds[p] != DISCRETE for p in parents[j])
                for j, s in enumerate(sizes)
                if kinds[j] != DISCRETE
            )
            if n_slopes:
                shapes["slopes_"] = (n_slopes,)
        return shapes

    # ----------------------------------------------------------------- export
    def to_dot(self, labels: Sequence[str] | None = None) -> str:
        """The DAG as Graphviz DOT text (nodes by column name, edges labelled with their
        mutual information in nats); ``structure=`` reads it back.

        Example:
            >>> import numpy as np, ptheta
            >>> x = np.random.default_rng(0).integers(0, 2, (50, 3))
            >>> print(ptheta.make("bayesian-network").fit(x).to_dot().splitlines()[0])
            digraph bayesian_network {
        """
        self._check_fitted()
        names = list(self.columns_) if labels is None else [str(s) for s in labels]
        if len(names) != len(self.columns_):
            raise ParameterError(
                f"labels must name all {len(self.columns_)} variables, got {len(names)}"
            )

        def quote(s: str) -> str:
            return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'

        lines = ["digraph bayesian_network {", "  // edge labels: mutual information in nats"]
        lines += [f"  {quote(s)};" for s in names]
        lines += [
            f'  {quote(names[p])} -> {quote(names[c])} [label="{w:.4f}"];'
            for (p, c), w in zip(self.edges_, self.edge_weights_, strict=True)
        ]
        return "\n".join([*lines, "}"]) + "\n"

    def structure_graph(self) -> dict[str, Any]:
        """The DAG for drawing: ``n_nodes``, ``edges``, ``weights`` (mutual information),
        ``roots`` (variables without parents), ``layout`` (D, 2) and ``title``."""
        self._check_fitted()
        d = len(self.cards_)
        depth = np.zeros(d, dtype=np.int64)
        for j in self.order_:
            depth[j] = max((depth[p] + 1 for p in self.parents_[j]), default=0)
        pos = np.zeros((d, 2))
        for level in range(int(depth.max()) + 1):
            nodes = np.flatnonzero(depth == level)
            pos[nodes, 0] = np.arange(len(nodes)) - (len(nodes) - 1) / 2
            pos[nodes, 1] = -level
        return {
            "n_nodes": d,
            "edges": [(int(p), int(c)) for p, c in self.edges_],
            "weights": [float(w) for w in self.edge_weights_],
            "roots": [j for j in range(d) if not self.parents_[j]],
            "layout": pos,
            "title": f"Bayesian network, {d} variables, {len(self.edges_)} edges",
        }


# --------------------------------------------------------------------------- Gaussian blocks
class _GaussianBlock:
    """Continuous columns ``nodes`` (topological order) of a network, coupled by missing
    cells, for examples ``vals`` / ``xs`` (n, D) sharing the ``observed`` mask. Given a
    configuration d of their discrete parents, they are a linear Gaussian network,
    x = a_d + B_d x + ε with ε ~ N(0, diag σ²_d) (inputs from observed continuous parents
    outside the block in a_d), so one multivariate Gaussian N((I − B_d)⁻¹ a_d,
    (I − B_d)⁻¹ diag σ²_d (I − B_d)⁻ᵀ). ``factor`` is the exact log-density of the observed
    columns with the missing ones integrated out, per configuration of the discrete parents
    not observed (with ``mode="max"``, plus the largest log-density of the missing ones
    given them: the Gaussian's at its conditional mean); :meth:`fill` draws the missing
    columns (or takes their conditional mean) given the discrete values."""

    def __init__(
        self,
        net: BayesianNetwork,
        nodes: list[int],
        theta: list[np.ndarray],
        vals: np.ndarray,
        xs: np.ndarray,
        observed: np.ndarray,
        mode: str = "sum",
    ) -> None:
        kinds = net._kinds()
        self.net, self.nodes = net, nodes
        where = {v: i for i, v in enumerate(nodes)}
        self.discrete = sorted({p for j in nodes for p in net.parents_[j] if kinds[p] == DISCRETE})
        self.cards = net.cards_[self.discrete]
        q = int(np.prod(self.cards))
        config = np.indices(self.cards).reshape(len(self.discrete), q).T  # (Q, d) codes
        n, g = len(xs), len(nodes)
        intercept = np.zeros((n, q, g))
        slopes = np.zeros((q, g, g))
        var = np.zeros((q, g))
        for i, j in enumerate(nodes):
            index = tuple(
                config[:, self.discrete.index(p)] if kinds[p] == DISCRETE else 0
                for p in net.parents_[j]
            )
            at = np.broadcast_to(theta[j][index], (q, theta[j].shape[-1]))
            intercept[:, :, i] = at[:, 0]
            var[:, i] = at[:, 1]
            for c, p in enumerate(net._linked_parents(j)):
                if p in where:
                    slopes[:, i, where[p]] = at[:, 2 + c]
                else:  # an observed parent outside the block: a known input
                    intercept[:, :, i] += xs[:, p, None] * at[None, :, 2 + c]
        spread = np.linalg.inv(np.eye(g) - slopes)  # (Q, g, g)
        mean = np.einsum("qab,nqb->nqa", spread, intercept)
        cov = np.einsum("qab,qb,qcb->qac", spread, var, spread)
        seen = [i for i, j in enumerate(nodes) if observed[j]]
        gone = [i for i, j in enumerate(nodes) if not observed[j]]
        self.missing = [nodes[i] for i in gone]
        s_oo = cov[:, seen][:, :, seen]
        s_mo = cov[:, gone][:, :, seen]
        s_mm = cov[:, gone][:, :, gone]
        inv_oo = np.linalg.inv(s_oo) if seen else np.zeros((q, 0, 0))
        resid = xs[:, [nodes[i] for i in seen]][:, None, :] - mean[:, :, seen]  # (n, Q, o)
        _, logdet = np.linalg.slogdet(s_oo) if seen else (None, np.zeros(q))
        maha = np.einsum("nqa,qab,nqb->nq", resid, inv_oo, resid)
        log_p = -0.5 * (len(seen) * np.log(2 * np.pi) + logdet + maha)  # (n, Q)
        gain = np.einsum("qab,qbc->qac", s_mo, inv_oo)  # (Q, m, o)
        self.mean = mean[:, :, gone] + np.einsum("qac,nqc->nqa", gain, resid)  # (n, Q, m)
        self.cov = s_mm - np.einsum("qac,qbc->qab", gain, s_mo)  # (Q, m, m)
        if mode == "max":
            _, logdet_m = np.linalg.slogdet(self.cov)
            log_p = log_p - 0.5 * (len(gone) * np.log(2 * np.pi) + logdet_m)
        table = log_p.reshape(n, *(int(c) for c in self.cards))
        fixed = [a for a, v in enumerate(self.discrete) if observed[v]]
        free = [a for a, v in enumerate(self.discrete) if not observed[v]]
        table = np.transpose(table, [0, *(a + 1 for a in fixed + free)])
        if fixed:
            table = table[(np.arange(n), *(vals[:, self.discrete[a]] for a in fixed))]
        self.factor = Factor(tuple(self.discrete[a] for a in free), table)

    def expected_stats(
        self,
        post: np.ndarray | None,
        vals: np.ndarray,
        xs: np.ndarray,
        centre: dict[int, float],
    ) -> dict[int, np.ndarray]:
        """EM's expected statistics E[u uᵀ | observed] (q, m, m) of every column j of the
        block, u = (1, j's continuous parents, x_j) less ``centre``, summed over the
        examples and grouped by the configuration of j's discrete parents ((q, 3)
        ``[n, Σx, Σx²]`` for a column without continuous parents).

        Given a configuration d of the block's discrete parents the block is Gaussian, so
        E[u uᵀ | observed, d] = ū ūᵀ + C_d with ū the observed values and the missing
        ones' conditional means, C_d their conditional covariance (zero elsewhere); each
        is weighted by p(d | observed): ``post`` (n, *cards of the free discrete parents,
        the block factor's variables), None when every one is observed."""
        net, n = self.net, len(xs)
        nodes, q = self.nodes, int(np.prod(self.cards))
        config = np.indices(self.cards).reshape(len(self.discrete), q).T  # (Q, d) codes
        weight = np.ones((n, q))
        for a, v in enumerate(self.discrete):
            if v not in self.factor.vars:  # observed: only its own configuration counts
                weight = weight * (config[None, :, a] == vals[:, v, None])
        if post is not None:
            free = tuple(config[:, self.discrete.index(v)] for v in self.factor.vars)
            weight = weight * post[(slice(None), *free)]
        where = {v: i for i, v in enumerate(nodes)}
        gone = {v: i for i, v in enumerate(self.missing)}
        value = np.empty((n, q, len(nodes)))
        extra = np.zeros((q, len(nodes), len(nodes)))
        for v, i in where.items():
            value[:, :, i] = self.mean[:, :, gone[v]] if v in gone else xs[:, v, None]
        index = [where[v] for v in self.missing]
        extra[:, np.array(index)[:, None], index] = self.cov
        out: dict[int, np.ndarray] = {}
        for j in nodes:
            ps = net.parents_[j]
            cols = [*net._linked_parents(j), j]
            u = np.ones((n, q, len(cols) + 1))
            for c, v in enumerate(cols, start=1):
                u[:, :, c] = (value[:, :, where[v]] if v in where else xs[:, v, None]) - centre[v]
            inner = [c for c, v in enumerate(cols, start=1) if v in where]
            cov = np.zeros((q, len(cols) + 1, len(cols) + 1))
            block = [where[cols[c - 1]] for c in inner]
            cov[:, np.array(inner)[:, None], inner] = extra[:, np.array(block)[:, None], block]
            sums = np.einsum("nq,nqa,nqb->qab", weight, u, u)
            sums += weight.sum(axis=0)[:, None, None] * cov
            own = np.zeros(q, dtype=np.int64)  # the configuration of j's discrete parents
            for p in ps:  # a continuous parent has one "level"
                level = config[:, self.discrete.index(p)] if p in self.discrete else 0
                own = own * int(net.cards_[p]) + level
            stats = np.zeros((int(np.prod(net.cards_[ps])), *sums.shape[1:]))
            np.add.at(stats, own, sums)
            # a column without continuous parents keeps [n, Σx, Σx²] (Leaf statistics)
            out[j] = stats if len(cols) > 1 else stats.reshape(len(stats), 4)[:, [0, 1, 3]]
        return out

    def fill(self, codes: np.ndarray, mode: str, rng: np.random.Generator) -> np.ndarray:
        """The missing columns (n, m) given the discrete values ``codes`` (n, D): their
        conditional mean (``mode="max"``) or a draw from their conditional Gaussian."""
        q = _codes(codes[:, self.discrete], self.cards)
        mean = self.mean[np.arange(len(q)), q]
        if mode == "max":
            return mean
        chol = np.linalg.cholesky(self.cov)[q]  # (n, m, m)
        return mean + np.einsum("nab,nb->na", chol, rng.standard_normal(mean.shape))


# --------------------------------------------------------------------------- helpers
# What a fitted network derives from its parameters (ancestors, log-tables), kept beside
# the model rather than in it (reading a model leaves its __dict__ alone), while the very
# objects it was derived from are the model's.
_DERIVED: weakref.WeakKeyDictionary[Any, dict[str, tuple[tuple[Any, ...], Any]]] = (
    weakref.WeakKeyDictionary()
)


def _derived(model: Any, name: str, sources: tuple[Any, ...], compute: Callable[[], Any]) -> Any:
    slot = _DERIVED.setdefault(model, {})
    hit = slot.get(name)
    if hit is not None and all(a is b for a, b in zip(hit[0], sources, strict=True)):
        return hit[1]
    value = compute()
    slot[name] = (sources, value)
    return value


def _codes(values: np.ndarray, cards: np.ndarray) -> np.ndarray:
    """Mixed-radix codes (N,) of rows (N, k), the first column most significant."""
    code = np.zeros(len(values), dtype=np.int64)
    for col, card in zip(values.T, cards, strict=True):
        code = code * int(card) + col
    return code


def _nearest_psd(cov: np.ndarray) -> np.ndarray:
    """``cov`` with its negative eigenvalues set to 0: moments from pairwise-observed rows
    need not be a covariance matrix."""
    values, vectors = np.linalg.eigh(0.5 * (cov + cov.T))
    return (vectors * np.maximum(values, 0.0)) @ vectors.T


def _normalise(counts: np.ndarray) -> np.ndarray:
    """Counts (…, r) to conditional probabilities along the last axis (uniform where a
    row has no count, possible only with alpha = 0)."""
    total = counts.sum(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, counts / total, 1.0 / counts.shape[-1])


def _logs(theta: Sequence[np.ndarray], leaves: dict[int, Leaf]) -> list[np.ndarray]:
    """Log-tables of the discrete variables; a leaf's parameters as they are."""
    with np.errstate(divide="ignore"):
        return [t if j in leaves else np.log(t) for j, t in enumerate(theta)]


def _make_leaves(kinds: Sequence[str], columns: Sequence[ColumnSpec] | None) -> dict[int, Leaf]:
    """A :class:`Leaf` for every count or continuous column (with its bounds)."""
    return {
        j: Leaf(k, columns[j].lower, columns[j].upper)
        for j, k in enumerate(kinds)
        if k != DISCRETE and columns is not None
    }


def _label_text(value: Any) -> str:
    """A number as the label text a table gives it: ``1`` and ``1.0`` → ``"1"``."""
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if is_integer(value):
        return str(int(value))
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)


def _pair_information(rows: np.ndarray, cards: np.ndarray, a: int, b: int) -> float:
    """Empirical mutual information (nats) of columns a and b of ``rows``."""
    joint = np.bincount(rows[:, a] * cards[b] + rows[:, b], minlength=int(cards[a] * cards[b]))
    joint = joint.reshape(int(cards[a]), int(cards[b])) / max(len(rows), 1)
    outer = joint.sum(axis=1, keepdims=True) * joint.sum(axis=0, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.where(joint > 0, joint * np.log(joint / outer), 0.0).sum())
