"""The general discrete Bayesian network: a DAG over the columns, its CPTs, exact inference."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
from scipy.sparse.csgraph import breadth_first_order
from scipy.special import logsumexp, xlogy

from ptheta.data.spec import DataSpec
from ptheta.errors import DataError, ParameterError
from ptheta.models.base import GenerativeModel
from ptheta.models.chow_liu import maximum_spanning_tree, pairwise_mutual_information
from ptheta.models.dag_search import (
    Edges,
    FamilyScorer,
    ancestors,
    hill_climb,
    topological_order,
)
from ptheta.models.elimination import (
    Factor,
    calibrate,
    eliminate,
    log_total,
    marginal,
    min_fill_order,
    product,
    traceback,
)
from ptheta.models.missing import missing_patterns
from ptheta.models.sampling import sample_categorical
from ptheta.params import Choice, Float, Int, Param, is_integer, parameter_error

# Structure learning uses the complete rows when at least this many are complete.
MIN_COMPLETE_ROWS = 10


class BayesianNetwork(GenerativeModel):
    """Discrete Bayesian network p(x) = ∏_j p(x_j | x_parents(j)) on a given or learned DAG.

    **Structure.** Given (a list of [parent, child] edges or DOT text, over column names or
    indices) or learned: ``"hill-climb"`` searches DAGs by single-edge additions, removals
    and reversals with a tabu list, maximising BIC or BDeu (decomposable scores, each
    family's score cached, counts by ``np.bincount`` over mixed-radix codes), with at most
    ``max_parents`` parents and black / white lists of edges; ``"chow-liu"`` is the
    maximum-likelihood tree, ``"naive"`` the star from the most central column (the
    structure of naive Bayes with that column as the class), ``"empty"`` no edge at all.

    **Tables.** p(x_j = k | parents = c) = (N_ck + α) / (N_c + r_j α) (Dirichlet
    pseudo-counts ``alpha``); the likelihood is exact.

    **Inference.** Exact, by variable elimination in log space with a greedy min-fill
    order, one elimination per pattern of missing entries, vectorised over the examples
    that share it. ``score_samples`` with NaN entries is the exact log-marginal of the
    observed ones (barren variables pruned); ``impute(method="mode")`` is the most probable
    completion (max-product, then traceback); ``impute(method="sample")`` and
    ``sample(n, given=...)`` draw exactly from p(x_missing | x_observed) (sum-product, then
    sampling backwards through the elimination). ``query(["A"], evidence={"B": 1})`` is
    P(A | B = 1) as a labelled table, ``map_query`` its most probable assignment.

    **Missing values in training.** ``fit`` takes NaN: the structure is learned on the
    complete rows (an approximation to structural EM; on the rows with every column's most
    frequent level filled in where fewer than 10 rows are complete), then the tables by EM:
    expected counts from the exact family posteriors of each example (the elimination
    order's junction tree, calibrated), starting from the available-case counts. With
    α > 0 this is MAP-EM under Dirichlet(α + 1) priors: its objective, the observed-data
    log-likelihood plus Σ α log θ, never decreases (α = 0: the likelihood itself);
    ``history_`` records both per example.

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
        black_list: edges hill climbing may not add.
        white_list: edges hill climbing must keep.
        alpha: Dirichlet pseudo-count added to every cell of every table.
        em_max_iter: most EM iterations when the training data have missing entries.
        em_tol: EM stops when its objective per example changes by less than this.

    Fitted attributes:
        columns_: the variables' names (a DataFrame's columns, else ``x0``, ``x1``, …).
        cards_: (D,) levels of each variable. parents_: each variable's parents (sorted).
        edges_: [parent, child] pairs. order_: (D,) a topological order.
        cpt_: every table flattened, variable after variable; a table is
            (*cards[parents], cards[j]), the first parent most significant (see ``cpts()``).
        structure_score_: the BIC or BDeu of the DAG on the rows it was learned from.
        edge_weights_: empirical mutual information (nats) of each edge's two variables.
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

    References:
        Koller & Friedman, "Probabilistic Graphical Models" (2009), ch. 9, 10, 18, 19;
        Heckerman, Geiger & Chickering, "Learning Bayesian networks: the combination of
        knowledge and statistical data", Machine Learning (1995); Friedman, "The Bayesian
        structural EM algorithm", UAI (1998).
    """

    name: ClassVar[str] = "bayesian-network"
    family: ClassVar[str] = "graphical"
    likelihood: ClassVar[str] = "exact"
    abilities: ClassVar[dict[str, Any]] = {"exports_structure": True}
    data_kinds: ClassVar[tuple[str, ...]] = ("binary", "categorical")
    can_marginalise: ClassVar[bool] = True
    fits_missing: ClassVar[bool] = True
    quick_params: ClassVar[dict[str, Any]] = {"max_iter": 30, "em_max_iter": 20}
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "explorer": {"scoring": "bdeu", "max_parents": 2}
    }
    parameters: ClassVar[dict[str, Param]] = {
        "structure": Edges("hill-climb", "chow-liu", "naive", "empty"),
        "scoring": Choice("bic", "bdeu"),
        "equivalent_sample_size": Float(low=0, low_open=True),
        "max_parents": Int(low=0, none=True),
        "tabu_length": Int(low=0),
        "max_iter": Int(low=0),
        "black_list": Edges(none=True),
        "white_list": Edges(none=True),
        "alpha": Float(low=0),
        "em_max_iter": Int(low=1),
        "em_tol": Float(low=0),
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
        black_list: Sequence[Sequence[int | str]] | str | None = None,
        white_list: Sequence[Sequence[int | str]] | str | None = None,
        alpha: float = 0.5,
        em_max_iter: int = 100,
        em_tol: float = 1e-6,
    ) -> None:
        self.structure = structure
        self.scoring = scoring
        self.equivalent_sample_size = equivalent_sample_size
        self.max_parents = max_parents
        self.tabu_length = tabu_length
        self.max_iter = max_iter
        self.black_list = black_list
        self.white_list = white_list
        self.alpha = alpha
        self.em_max_iter = em_max_iter
        self.em_tol = em_tol

    def _check_params_together(self, params: Any) -> None:
        for key in ("black_list", "white_list"):
            if params[key] is not None and params["structure"] != "hill-climb":
                what = "None unless structure='hill-climb' (lists constrain the search)"
                raise parameter_error(self.name, key, what, getattr(self, key))

    # ----------------------------------------------------------------- fitting
    def fit(self, X: Any, y: Any = None, **fit_params: Any) -> BayesianNetwork:
        """Fit the structure and the tables to ``X`` (N, D) of levels 0..K−1 (NaN: missing).

        A pandas DataFrame's column names name the variables (in queries, edges and DOT).
        """
        columns = getattr(X, "columns", None)
        self._columns_in = None if columns is None else [str(c) for c in columns]
        try:
            super().fit(X, y, **fit_params)
        finally:
            del self._columns_in
        return self

    def _fit(self, x: np.ndarray, y: np.ndarray | None, spec: DataSpec) -> None:
        params = self._params()
        flat = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
        n, d = flat.shape
        missing = np.isnan(flat)
        values = np.where(missing, 0, flat).astype(np.int64)
        cards = np.full(d, int(spec.n_categories), dtype=np.int64)
        self.columns_ = self._columns_in or [f"x{i}" for i in range(d)]
        if len(self.columns_) != d:
            raise DataError(f"{len(self.columns_)} column names for {d} variables")
        complete = ~missing.any(axis=1)
        if complete.sum() >= min(MIN_COMPLETE_ROWS, n):
            rows = values[complete]
        else:  # too few complete rows: fill each column with its most frequent level
            modes = [np.bincount(values[~missing[:, j], j]).argmax() for j in range(d)]
            rows = np.where(missing, np.asarray(modes), values)
        scorer = FamilyScorer(rows, cards, params.scoring, params.equivalent_sample_size)
        parents = self._learn_structure(rows, cards, scorer, params)
        self.cards_ = cards
        self.parents_ = [sorted(int(p) for p in ps) for ps in parents]
        self.order_ = topological_order(self._adjacency())
        self.edges_ = [[p, j] for j in self.order_.tolist() for p in self.parents_[j]]
        self.structure_score_ = float(scorer.total(self.parents_))
        self.edge_weights_ = [_pair_information(rows, cards, p, c) for p, c in self.edges_]
        alpha = float(params.alpha)
        zeros = [np.zeros(tuple(cards[[*ps, j]])) for j, ps in enumerate(self.parents_)]
        _, counts = self._observed_families(zeros, values, missing)  # available cases
        tables = [_normalise(c + alpha) for c in counts]
        if missing.any():
            tables = self._em(flat, tables, alpha, params.em_max_iter, params.em_tol)
        self.cpt_ = np.concatenate([t.ravel() for t in tables])

    def _learn_structure(
        self, rows: np.ndarray, cards: np.ndarray, scorer: FamilyScorer, params: Any
    ) -> list[list[int]]:
        d = rows.shape[1]
        how = params.structure
        if isinstance(how, list):
            adj = self._edge_matrix(how, "structure")
            try:
                topological_order(adj)
            except ValueError as e:
                raise parameter_error(
                    self.name, "structure", "an acyclic graph", how, str(e)
                ) from None
            return [np.flatnonzero(adj[:, j]).tolist() for j in range(d)]
        if how == "empty" or d == 1:
            return [[] for _ in range(d)]
        if how in ("chow-liu", "naive"):
            mi = pairwise_mutual_information(rows, int(cards.max()))
            root = int(np.argmax(mi.sum(axis=1)))
            parents: list[list[int]] = [[] if j == root else [root] for j in range(d)]
            if how == "chow-liu":
                tree = np.zeros((d, d))
                edges = maximum_spanning_tree(mi)
                tree[edges[:, 0], edges[:, 1]] = 1.0
                _, pred = breadth_first_order(tree, root, directed=False)
                parents = [[] if pred[j] < 0 else [int(pred[j])] for j in range(d)]
            return parents
        black = (
            None
            if params.black_list is None
            else self._edge_matrix(params.black_list, "black_list")
        )
        white = (
            None
            if params.white_list is None
            else self._edge_matrix(params.white_list, "white_list")
        )
        if white is not None:
            try:
                topological_order(white)
            except ValueError as e:
                raise parameter_error(
                    self.name, "white_list", "acyclic", self.white_list, str(e)
                ) from None
            if black is not None and (white & black).any():
                raise ParameterError(f"{self.name}: white_list and black_list share an edge")
        return hill_climb(
            scorer,
            max_parents=params.max_parents,
            tabu_length=params.tabu_length,
            max_iter=params.max_iter,
            black=black,
            white=white,
        )

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
        self, flat: np.ndarray, tables: list[np.ndarray], alpha: float, max_iter: int, tol: float
    ) -> list[np.ndarray]:
        """EM over the tables with exact expected counts; records ``history_``."""
        n, missing = len(flat), np.isnan(flat)
        values = np.where(missing, 0, flat).astype(np.int64)
        plans = []  # per missing pattern: its rows, mask, the families it touches, an order
        for rows, observed in missing_patterns(flat):
            touching = [j for j in range(len(tables)) if not observed[[*self.parents_[j], j]].all()]
            scopes = [[v for v in [*self.parents_[j], j] if not observed[v]] for j in touching]
            free = np.flatnonzero(~observed).tolist()
            if touching:
                plans.append((rows, observed, touching, min_fill_order(scopes, free, self.cards_)))
        history: list[dict[str, float]] = []
        prev = -math.inf
        for step in range(1, max_iter + 1):
            logt = _logs(tables)
            per_row, counts = self._observed_families(logt, values, missing)
            loglik = float(per_row.sum())
            for rows, observed, touching, order in plans:
                vals = values[rows]
                factors = [self._factor(j, logt[j], vals, observed) for j in touching]
                pool, steps = eliminate(factors, order, self.cards_)
                loglik += float(log_total(pool, len(rows)).sum())
                beliefs = calibrate(steps, len(rows))
                where = {i: s for s, st in enumerate(steps) for i in st.absorbed}
                for i, (j, f) in enumerate(zip(touching, factors, strict=True)):
                    post = np.exp(marginal(beliefs[where[i]], f.vars))
                    counts[j] += self._expected(j, vals, observed, post)
            prior = sum(float(xlogy(alpha, t).sum()) for t in tables)
            objective = (loglik + prior) / n
            history.append({"step": step, "objective": objective, "log_likelihood": loglik / n})
            tables = [_normalise(c + alpha) for c in counts]
            if abs(objective - prev) < tol:
                break
            prev = objective
        self.history_ = history
        self.n_iter_ = len(history)
        return tables

    def _observed_families(
        self, logt: list[np.ndarray], values: np.ndarray, missing: np.ndarray
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """Over the rows where a family is all observed: the sum of its log-probabilities per
        row (N,), and its counts (*cards[family]), for every family."""
        per_row = np.zeros(len(values))
        counts = []
        for j, table in enumerate(logt):
            fam = [*self.parents_[j], j]
            seen = ~missing[:, fam].any(axis=1)
            code = _codes(values[seen][:, fam], self.cards_[fam])
            per_row[seen] += table.ravel()[code]
            counts.append(np.bincount(code, minlength=table.size).reshape(table.shape) * 1.0)
        return per_row, counts

    def _expected(
        self, j: int, vals: np.ndarray, observed: np.ndarray, post: np.ndarray | None
    ) -> np.ndarray:
        """Expected counts (*cards[family]) of family j from examples ``vals`` sharing the
        ``observed`` mask, given the posterior ``post`` (n, *cards[free family vars])."""
        fam = np.array([*self.parents_[j], j])
        cards = self.cards_[fam]
        strides = np.append(np.cumprod(cards[::-1])[::-1][1:], 1)
        seen = observed[fam]
        base = vals[:, fam[seen]] @ strides[seen]  # (n,)
        size = int(np.prod(cards))
        if post is None:
            return np.bincount(base, minlength=size).reshape(cards).astype(float)
        free_cards = cards[~seen]
        grid = sum(
            np.arange(c).reshape([-1 if a == i else 1 for a in range(len(free_cards))]) * s
            for i, (c, s) in enumerate(zip(free_cards, strides[~seen], strict=True))
        )
        index = base.reshape(-1, *([1] * len(free_cards))) + grid
        return np.bincount(index.ravel(), weights=post.ravel(), minlength=size).reshape(cards)

    # ----------------------------------------------------------------- tables and factors
    def cpts(self) -> list[np.ndarray]:
        """Each variable's table p(x_j | parents), shape (*cards[parents_[j]], cards_[j])."""
        self._check_fitted()
        out, start = [], 0
        for j in range(len(self.cards_)):
            shape = tuple(int(c) for c in self.cards_[[*self.parents_[j], j]])
            size = int(np.prod(shape))
            out.append(self.cpt_[start : start + size].reshape(shape))
            start += size
        return out

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

    # ----------------------------------------------------------------- scoring
    def _score_samples(self, x: np.ndarray) -> np.ndarray:
        flat = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
        logt = _logs(self.cpts())
        missing = np.isnan(flat)
        values = np.where(missing, 0, flat).astype(np.int64)
        out, _ = self._observed_families(logt, values, missing)
        if not missing.any():
            return out
        anc = ancestors(self._adjacency())
        for rows, observed in missing_patterns(flat):
            # barren variables (missing, with no observed descendant) sum to one: drop them;
            # families all observed are in ``out`` already
            relevant = observed | anc[observed].any(axis=0)
            touching = [
                j for j in np.flatnonzero(relevant) if not observed[[*self.parents_[j], j]].all()
            ]
            if not touching:
                continue
            vals = values[rows]
            factors = [self._factor(j, logt[j], vals, observed) for j in touching]
            free = np.flatnonzero(relevant & ~observed).tolist()
            order = min_fill_order([f.vars for f in factors], free, self.cards_)
            pool, _ = eliminate(factors, order, self.cards_)
            out[rows] += log_total(pool, len(rows))
        return out

    # ----------------------------------------------------------------- sampling
    def _sample(self, n: int, y: Any, rng: np.random.Generator) -> np.ndarray:
        tables = self.cpts()
        out = np.zeros((n, len(self.cards_)), dtype=np.int64)
        for j in self.order_:  # ancestral: parents first
            probs = tables[j][tuple(out[:, p] for p in self.parents_[j])]
            probs = np.broadcast_to(probs, (n, probs.shape[-1]))  # (n, r_j), roots too
            out[:, j] = sample_categorical(probs, rng)
        return out

    def _impute(self, x: np.ndarray, method: str, rng: np.random.Generator) -> np.ndarray:
        flat = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
        out = flat.copy()
        logt = _logs(self.cpts())
        values = np.where(np.isnan(flat), 0, flat).astype(np.int64)
        mode = "max" if method == "mode" else "sum"

        def choose(logits: np.ndarray) -> np.ndarray:
            if mode == "max":
                return logits.argmax(axis=-1)
            return sample_categorical(logits, rng, log=True)

        for rows, observed in missing_patterns(flat):
            if observed.all():
                continue
            vals = values[rows]
            factors = [self._factor(j, logt[j], vals, observed) for j in range(len(logt))]
            free = np.flatnonzero(~observed).tolist()
            order = min_fill_order([f.vars for f in factors], free, self.cards_)
            _, steps = eliminate(factors, order, self.cards_, mode)
            for v, drawn in traceback(steps, len(rows), choose).items():
                out[rows, v] = drawn
        return out

    # ----------------------------------------------------------------- queries
    def query(self, variables: Any, evidence: dict[Any, Any] | None = None) -> Any:
        """P(variables | evidence) as a table: a pandas DataFrame with one column per
        query variable (its levels) and ``probability``, one row per joint configuration
        (the first variable slowest).

        Arguments:
            variables: a column name (or index), or a list of them.
            evidence: {column: level} of observed variables (none by default).
        """
        q, pool = self._eliminate_others(variables, evidence)
        table = product([f for f in pool if f.vars], self.cards_)
        log_p = np.transpose(table.log, [0, *(table.vars.index(v) + 1 for v in q)])[0]
        log_p = log_p - logsumexp(log_p)
        import pandas as pd  # a dependency of statsmodels; only queries need it

        configs = list(itertools.product(*(self._levels(v) for v in q)))
        frame = pd.DataFrame(configs, columns=[self.columns_[v] for v in q])
        frame["probability"] = np.exp(log_p).ravel()
        return frame

    def map_query(self, variables: Any, evidence: dict[Any, Any] | None = None) -> dict[str, Any]:
        """The most probable joint levels of ``variables`` given ``evidence``,
        argmax P(variables | evidence) (the others summed out first: exact marginal MAP),
        as {column: level}."""
        q, pool = self._eliminate_others(variables, evidence)
        order = min_fill_order([f.vars for f in pool], q, self.cards_)
        _, steps = eliminate(pool, order, self.cards_, "max")
        best = traceback(steps, 1, lambda logits: logits.argmax(axis=-1))
        return {self.columns_[v]: self._levels(v)[int(best[v][0])] for v in q}

    def _eliminate_others(
        self, variables: Any, evidence: dict[Any, Any] | None
    ) -> tuple[list[int], list[Factor]]:
        """The query's variable indices and the factors left once every other unobserved
        variable is summed out (evidence fixed, barren variables pruned)."""
        self._check_fitted()
        names = [variables] if isinstance(variables, (str, int, np.integer)) else list(variables)
        q = [self._index(v) for v in names]
        if not q or len(set(q)) < len(q):
            raise DataError(f"query variables must be distinct and at least one, got {names!r}")
        d = len(self.cards_)
        observed = np.zeros(d, dtype=bool)
        vals = np.zeros((1, d), dtype=np.int64)
        for key, level in (evidence or {}).items():
            v = self._index(key)
            if v in q:
                raise DataError(f"{self.columns_[v]!r} is both queried and given as evidence")
            observed[v] = True
            vals[0, v] = self._level(v, level)
        keep = np.zeros(d, dtype=bool)
        keep[q] = True
        anc = ancestors(self._adjacency())
        relevant = observed | keep | anc[observed | keep].any(axis=0)
        logt = _logs(self.cpts())
        factors = [self._factor(j, logt[j], vals, observed) for j in np.flatnonzero(relevant)]
        free = np.flatnonzero(relevant & ~observed & ~keep).tolist()
        order = min_fill_order([f.vars for f in factors], free, self.cards_)
        pool, _ = eliminate(factors, order, self.cards_)
        if np.isneginf(log_total(pool, 1)[0]) or any(
            np.isneginf(f.log).all() for f in pool if f.vars
        ):
            raise DataError(f"the evidence {evidence!r} has probability 0 under the model")
        return q, pool

    def _index(self, name: Any) -> int:
        """A variable's index from its column name (or its index)."""
        if isinstance(name, str) and name in self.columns_:
            return self.columns_.index(name)
        if is_integer(name) and 0 <= int(name) < len(self.columns_):
            return int(name)
        shown = ", ".join(self.columns_[:8]) + (", …" if len(self.columns_) > 8 else "")
        raise DataError(f"unknown variable {name!r}; the network's variables are {shown}")

    def _levels(self, v: int) -> list[Any]:
        """The labels of variable v's levels (0..K−1 today; a table's labels later)."""
        return list(range(int(self.cards_[v])))

    def _level(self, v: int, label: Any) -> int:
        labels = self._levels(v)
        for i, known in enumerate(labels):
            if type(label) is not bool and label == known:
                return i
        raise DataError(f"{self.columns_[v]!r} has no level {label!r}; its levels are {labels}")

    # ----------------------------------------------------------------- size, state
    def _n_parameters(self) -> int:
        return sum(int(t.size // t.shape[-1]) * (t.shape[-1] - 1) for t in self.cpts())

    def _required_attributes(self) -> tuple[str, ...]:
        return ("columns_", "cards_", "parents_", "order_", "edges_", "cpt_")

    def _expected_shapes(self, spec: DataSpec) -> dict[str, tuple[int, ...]]:
        d = int(np.prod(spec.event_shape))
        shapes: dict[str, tuple[int, ...]] = {"cards_": (d,), "order_": (d,)}
        parents, cards = getattr(self, "parents_", None), getattr(self, "cards_", None)
        if isinstance(parents, list) and len(parents) == d and np.shape(cards) == (d,):
            sizes = [int(np.prod(np.asarray(cards)[[*ps, j]])) for j, ps in enumerate(parents)]
            shapes["cpt_"] = (sum(sizes),)
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


# --------------------------------------------------------------------------- helpers
def _codes(values: np.ndarray, cards: np.ndarray) -> np.ndarray:
    """Mixed-radix codes (N,) of rows (N, k), the first column most significant."""
    code = np.zeros(len(values), dtype=np.int64)
    for col, card in zip(values.T, cards, strict=True):
        code = code * int(card) + col
    return code


def _normalise(counts: np.ndarray) -> np.ndarray:
    """Counts (…, r) to conditional probabilities along the last axis (uniform where a
    row has no count, possible only with alpha = 0)."""
    total = counts.sum(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, counts / total, 1.0 / counts.shape[-1])


def _logs(tables: Sequence[np.ndarray]) -> list[np.ndarray]:
    with np.errstate(divide="ignore"):
        return [np.log(t) for t in tables]


def _pair_information(rows: np.ndarray, cards: np.ndarray, a: int, b: int) -> float:
    """Empirical mutual information (nats) of columns a and b of ``rows``."""
    joint = np.bincount(rows[:, a] * cards[b] + rows[:, b], minlength=int(cards[a] * cards[b]))
    joint = joint.reshape(int(cards[a]), int(cards[b])) / max(len(rows), 1)
    outer = joint.sum(axis=1, keepdims=True) * joint.sum(axis=0, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.where(joint > 0, joint * np.log(joint / outer), 0.0).sum())
