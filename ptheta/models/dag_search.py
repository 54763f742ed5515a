"""Structure learning for Bayesian networks: decomposable scores and tabu hill climbing.

A network's BIC or BDeu score is a sum of one term per variable, a function of the
variable and its parent set alone ("family scores"). :class:`FamilyScorer` computes them
from counts (``np.bincount`` over mixed-radix codes of the family's values) and caches
each (variable, parent set) it has seen. A count or continuous column of a table is a
:class:`Leaf`: a Poisson or a Gaussian per configuration of its discrete parents, scored by
BIC from its weighted sufficient statistics (n, Σx, Σx²) per configuration; a continuous
column with continuous parents is a conditional linear Gaussian (:func:`clg_estimate`: one
weighted least squares per configuration from Σ w u uᵀ), scored by BIC from the same sums.
:func:`hill_climb` searches DAGs by adding, removing and reversing one edge at a time:
toggling a parent changes one family's score, so the gain of every move is read from one
(D, D) table whose column j is recomputed only when j's parents change, and acyclicity is
checked for all moves at once from the ancestor matrix.

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> a = rng.integers(0, 2, 2000)
    >>> b = a ^ (rng.random(2000) < 0.1)  # b copies a, with 10% flips
    >>> c = rng.integers(0, 2, 2000)  # independent of both
    >>> x = np.column_stack([a, b, c])
    >>> parents = hill_climb(FamilyScorer(x, np.array([2, 2, 2]), "bic"))
    >>> sorted(sorted(p) + [j] for j, p in enumerate(parents) if p)  # one edge a - b
    [[0, 1]]
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from scipy.special import gammaln, log_ndtr, xlogy

from ptheta.params import Param, is_integer, parameter_error

# Parent configurations beyond this use np.unique rather than a dense bincount.
_DENSE_CELLS = 1 << 22
# A Gaussian leaf's variance is at least this fraction of its column's variance (the
# maximum likelihood of one row, or of equal values, would be an infinite density).
VAR_FLOOR = 1e-6


def _counts(code: np.ndarray, q: int, child: np.ndarray, r: int) -> np.ndarray:
    """Counts (q, r) from parent codes (N,) in 0..q−1 and child levels (N,)."""
    if q * r <= _DENSE_CELLS:
        return np.bincount(code * r + child, minlength=q * r).reshape(q, r)
    seen, inverse = np.unique(code, return_inverse=True)
    return np.bincount(inverse * r + child, minlength=len(seen) * r).reshape(-1, r)


def bic_family(counts: np.ndarray, q: int, n: int) -> float:
    """Σ N_jk log(N_jk / N_j) − ½ log(n) · q (r − 1): a family's BIC (nats)."""
    r = counts.shape[1]
    totals = counts.sum(axis=1)
    loglik = float(xlogy(counts, counts).sum() - xlogy(totals, totals).sum())
    return loglik - 0.5 * math.log(n) * q * (r - 1)


def bdeu_family(counts: np.ndarray, q: int, ess: float) -> float:
    """The log marginal likelihood of a family under BDeu(ess) (Heckerman et al., 1995):
    Σ_j [lnΓ(a_j) − lnΓ(a_j + N_j)] + Σ_jk [lnΓ(a_jk + N_jk) − lnΓ(a_jk)], with
    a_j = ess / q and a_jk = ess / (q r); unseen parent configurations add 0."""
    r = counts.shape[1]
    a_j, a_jk = ess / q, ess / (q * r)
    totals = counts.sum(axis=1)
    return float(
        (gammaln(a_j) - gammaln(a_j + totals)).sum()
        + (gammaln(a_jk + counts) - gammaln(a_jk)).sum()
    )


# --------------------------------------------------------------------------- leaves
def _log_normal_mass(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """log(Φ(b) − Φ(a)) elementwise for a < b, without cancellation: computed on the side
    where the smaller tail lies (log Φ of a negative argument is accurate)."""
    a, b = np.broadcast_arrays(np.asarray(a, np.float64), np.asarray(b, np.float64))
    flip = a > 0  # Φ(b) − Φ(a) = Φ(−a) − Φ(−b)
    lo, hi = np.where(flip, -b, a), np.where(flip, -a, b)
    top, bottom = log_ndtr(hi), log_ndtr(lo)
    with np.errstate(divide="ignore"):
        return top + np.log1p(-np.exp(bottom - top))


class Leaf:
    """The conditional model of a count or continuous column given its discrete parents,
    one distribution per parent configuration c:

    - ``count``: Poisson(λ_c);
    - ``continuous``: Gaussian(μ_c, σ²_c), truncated to the column's ``lower`` / ``upper``
      bounds with its exact normaliser where it has them.

    Parameters are rows ``[mean, variance]`` (a Poisson's variance is its mean), estimated
    from the weighted sufficient statistics ``[n, Σx, Σx²]`` of each configuration plus
    ``alpha`` pseudo-rows with the column's pooled mean m and variance v:
    mean = (Σx + α m) / (n + α), variance = (Σx² + α (v + m²)) / (n + α) − mean². This is
    the maximum of Σ log f(x_i) + α E_pooled[log f(x)], the MAP estimate under that prior
    (exact for a Poisson and an unbounded Gaussian; for a bounded column the moments of the
    data give the truncated Gaussian's parameters, not its maximum likelihood). The
    variance is floored at ``VAR_FLOOR`` · v; a configuration without data (α = 0) gets the
    pooled moments.
    """

    def __init__(self, kind: str, lower: float | None = None, upper: float | None = None) -> None:
        if kind not in ("count", "continuous"):
            raise ValueError(f"a leaf is a count or continuous column, not {kind!r}")
        self.kind, self.lower, self.upper = kind, lower, upper

    @property
    def n_params(self) -> int:
        """Free parameters per parent configuration."""
        return 1 if self.kind == "count" else 2

    @staticmethod
    def stats(code: np.ndarray, x: np.ndarray, q: int, weights: np.ndarray | None = None):
        """(q, 3) weighted ``[n, Σx, Σx²]`` of values ``x`` (N,) by configuration ``code``."""
        w = np.ones(len(x)) if weights is None else weights
        return np.stack(
            [np.bincount(code, weights=w * p, minlength=q) for p in (1.0, x, x * x)], axis=1
        )

    def estimate(self, stats: np.ndarray, alpha: float, pooled: tuple[float, float]):
        """Parameters (q, 2) ``[mean, variance]`` from ``stats`` (q, 3) (see the class)."""
        m, v = pooled
        n = stats[:, 0] + alpha
        empty = n <= 0
        safe = np.where(empty, 1.0, n)
        mean = np.where(empty, m, (stats[:, 1] + alpha * m) / safe)
        if self.kind == "count":
            return np.stack([mean, mean], axis=1)
        var = np.where(empty, v, (stats[:, 2] + alpha * (v + m * m)) / safe - mean**2)
        floor = VAR_FLOOR * v if v > 0 else VAR_FLOOR
        return np.stack([mean, np.maximum(var, floor)], axis=1)

    def log_density(self, x: np.ndarray, params: np.ndarray) -> np.ndarray:
        """log f(x | parameters), elementwise over ``x`` (...) and ``params`` (..., 2)
        broadcast together: a log-probability (count) or a log-density (continuous)."""
        mean, var = params[..., 0], params[..., 1]
        if self.kind == "count":
            return xlogy(x, mean) - mean - gammaln(x + 1.0)
        out = -0.5 * ((x - mean) ** 2 / var + np.log(2 * np.pi * var))
        if self.lower is None and self.upper is None:
            return out
        std = np.sqrt(var)
        a = -np.inf if self.lower is None else (self.lower - mean) / std
        b = np.inf if self.upper is None else (self.upper - mean) / std
        outside = np.zeros(np.shape(out), dtype=bool)
        if self.lower is not None:
            outside |= x < self.lower
        if self.upper is not None:
            outside |= x > self.upper
        return np.where(outside, -np.inf, out - _log_normal_mass(a, b))

    def mode(self, params: np.ndarray) -> np.ndarray:
        """The most probable value (...,) of each parameter row: a Poisson's ⌊λ⌋, a
        Gaussian's mean clipped to the bounds."""
        mean = params[..., 0]
        if self.kind == "count":
            return np.floor(mean)
        lo = -np.inf if self.lower is None else self.lower
        hi = np.inf if self.upper is None else self.upper
        return np.clip(mean, lo, hi)

    def sample(self, params: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One draw per parameter row of ``params`` (n, 2)."""
        mean, var = params[:, 0], params[:, 1]
        if self.kind == "count":
            return rng.poisson(mean).astype(np.float64)
        if self.lower is None and self.upper is None:
            return mean + np.sqrt(var) * rng.standard_normal(len(mean))
        from scipy.stats import truncnorm

        std = np.sqrt(var)
        a = -np.inf if self.lower is None else (self.lower - mean) / std
        b = np.inf if self.upper is None else (self.upper - mean) / std
        drawn = truncnorm.ppf(rng.random(len(mean)), a, b, loc=mean, scale=std)
        return np.clip(drawn, self.lower, self.upper)  # rounding at a bound

    def log_prior(self, params: np.ndarray, alpha: float, pooled: tuple[float, float]):
        """α E_pooled[log f(x)] summed over configurations, up to a constant: the prior
        term that :meth:`estimate` maximises along with the log-likelihood."""
        m, v = pooled
        mean, var = params[:, 0], params[:, 1]
        if self.kind == "count":
            return float(alpha * (xlogy(m, mean) - mean).sum())
        return float(
            alpha * (-0.5 * np.log(2 * np.pi * var) - (v + (m - mean) ** 2) / var / 2).sum()
        )


# --------------------------------------------------------------------------- linear Gaussians
# A conditional linear Gaussian's normal equations get this ridge, relative to their largest
# diagonal entry, on the slopes (not the intercept): it only keeps a configuration with
# fewer rows than coefficients solvable and moves a well-determined fit by ~1e-12.
RIDGE = 1e-12


def clg_stats(code: np.ndarray, u: np.ndarray, q: int, weights: np.ndarray | None = None):
    """(q, m, m) weighted Σ w u uᵀ per configuration ``code`` (N,) in 0..q−1 of rows
    ``u`` (N, m) = (1, parents' values, the child's value): the sufficient statistics of a
    conditional linear Gaussian (Σ w at [0, 0], Σ w x at [0, :])."""
    m = u.shape[1]
    w = np.ones(len(u)) if weights is None else weights
    pairs = (u[:, :, None] * u[:, None, :]).reshape(len(u), m * m)
    out = np.stack([np.bincount(code, weights=w * p, minlength=q) for p in pairs.T], axis=1)
    return out.reshape(q, m, m)


def clg_prior(mean: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """E[u uᵀ] (m, m) of one pseudo-row u = (1, z) with z ~ (``mean``, ``cov``): the pooled
    moments that ``alpha`` pseudo-rows add to every configuration's statistics."""
    mean = np.asarray(mean, np.float64)
    out = np.empty((len(mean) + 1, len(mean) + 1))
    out[0, 0], out[0, 1:], out[1:, 0] = 1.0, mean, mean
    out[1:, 1:] = cov + np.outer(mean, mean)
    return out


def clg_estimate(stats: np.ndarray, alpha: float, prior: np.ndarray):
    """Weighted least squares of a conditional linear Gaussian per configuration, from
    ``stats`` (q, m, m) (:func:`clg_stats`) plus ``alpha`` pseudo-rows of ``prior`` (m, m)
    (:func:`clg_prior`): the coefficients (q, m − 1) = (intercept, slopes) solving
    A_xx β = A_xy with A = stats + α prior (a ridge ``RIDGE`` · max diag on the slopes),
    and the variances (q,) = (A_yy − 2 βᵀA_xy + βᵀA_xx β) / A_00, floored at
    ``VAR_FLOOR`` · the prior's variance of the child. A configuration without rows
    (α = 0) gets the prior's regression. With one row per pseudo-row this is the
    maximum of Σ log f(x_i) + α E_prior[log f(x)] (with m = 2: :meth:`Leaf.estimate`)."""
    m = stats.shape[1]
    a = stats + alpha * prior
    empty = a[:, 0, 0] <= 0
    a = np.where(empty[:, None, None], prior, a)
    xx, xy = a[:, :-1, :-1], a[:, :-1, -1]
    ridge = np.zeros(m - 1)
    ridge[1:] = 1.0
    scale = np.abs(np.diagonal(xx, axis1=1, axis2=2)).max(axis=1, initial=0.0)
    xx = xx + RIDGE * np.maximum(scale, 1e-300)[:, None, None] * np.diag(ridge)
    coef = np.linalg.solve(xx, xy[..., None])[..., 0]
    var = _rss(a, coef) / a[:, 0, 0]
    child_var = prior[-1, -1] - prior[0, -1] ** 2
    floor = VAR_FLOOR * child_var if child_var > 0 else VAR_FLOOR
    return coef, np.maximum(var, floor)


def _rss(stats: np.ndarray, coef: np.ndarray) -> np.ndarray:
    """Σ w (x − βᵀ(1, parents))² per configuration from the statistics (q, m, m)."""
    xx, xy, yy = stats[:, :-1, :-1], stats[:, :-1, -1], stats[:, -1, -1]
    return yy - 2 * (coef * xy).sum(axis=1) + np.einsum("qa,qab,qb->q", coef, xx, coef)


def clg_log_likelihood(stats: np.ndarray, coef: np.ndarray, var: np.ndarray) -> float:
    """Σ_i w_i log N(x_i; βᵀ(1, parents_i), σ²) over the rows whose statistics are
    ``stats`` (q, m, m), at coefficients (q, m − 1) and variances (q,)."""
    n = stats[:, 0, 0]
    return float(-0.5 * (n * np.log(2 * np.pi * var) + _rss(stats, coef) / var).sum())


# --------------------------------------------------------------------------- scores
class FamilyScorer:
    """Cached decomposable score of (child, parent set) on data ``x`` (N, D) of levels
    0..cards−1: ``"bic"`` or ``"bdeu"`` (with ``ess``, the equivalent sample size).
    Unsigned integer codes are kept as they are (one byte a cell for up to 256 levels);
    other integers become int64.

    ``leaves`` maps a count or continuous column j to ``(Leaf, values (N,), pooled)``;
    its column of ``x`` is ignored (0) and its card is 1. A leaf's family is scored by BIC
    whatever ``score`` is (BDeu has no form for it; BIC approximates the same log marginal
    likelihood): Σ log f(x_i | the :meth:`Leaf.estimate` with ``alpha`` of x_i's
    configuration) − ½ log N · q · (parameters per configuration). A continuous column
    whose parents include continuous columns is a conditional linear Gaussian: its BIC is
    :func:`clg_log_likelihood` at :func:`clg_estimate` (from :func:`clg_stats` of the values
    less their pooled means, and ``alpha`` pseudo-rows of the pooled moments, whose
    covariances are ``covariance`` (D, D)) − ½ log N · q · (k + 2) for k continuous parents.
    """

    def __init__(
        self,
        x: np.ndarray,
        cards: np.ndarray,
        score: str,
        ess: float = 1.0,
        *,
        leaves: dict[int, tuple[Leaf, np.ndarray, tuple[float, float]]] | None = None,
        alpha: float = 0.0,
        covariance: np.ndarray | None = None,
    ) -> None:
        x = np.asarray(x)
        # compact codes (uint8, uint16: a structure search over many rows) stay compact
        self.x = np.ascontiguousarray(x if x.dtype.kind == "u" else x.astype(np.int64))
        self.cards = np.asarray(cards, dtype=np.int64)
        self.score = score
        self.ess = float(ess)
        self.leaves = dict(leaves or {})
        self.alpha = float(alpha)
        self.covariance = covariance
        self.cache: dict[tuple[int, frozenset[int]], float] = {}

    @property
    def n_vars(self) -> int:
        return self.x.shape[1]

    def __call__(
        self, child: int, parents: Sequence[int], base: tuple[np.ndarray, list[int]] | None = None
    ) -> float:
        """The family's score; ``base`` = (codes, their parents) of a subset of ``parents``
        whose codes are known, which saves recomputing them (one more parent: one step)."""
        key = (child, frozenset(parents))
        found = self.cache.get(key)
        if found is None:
            code, known = base if base is not None else (np.zeros(len(self.x), np.int64), [])
            for p in sorted(set(parents) - set(known)):
                code = code * int(self.cards[p]) + self.x[:, p]
            q = int(np.prod(self.cards[list(parents)])) if len(parents) else 1
            linked = [p for p in sorted(parents) if p in self.leaves]
            if linked:
                found = self.clg_log_likelihood(child, linked, code, q) - 0.5 * math.log(
                    len(self.x)
                ) * q * (len(linked) + 2)
                self.cache[key] = found
                return found
            if child in self.leaves:
                leaf = self.leaves[child][0]
                found = (
                    self.leaf_log_likelihood(child, code, q)
                    - 0.5 * math.log(len(self.x)) * q * leaf.n_params
                )
                self.cache[key] = found
                return found
            counts = _counts(code, q, self.x[:, child], int(self.cards[child]))
            if self.score == "bic":
                found = bic_family(counts, q, len(self.x))
            else:
                found = bdeu_family(counts, q, self.ess)
            self.cache[key] = found
        return found

    def leaf_log_likelihood(self, child: int, code: np.ndarray, q: int) -> float:
        """Σ log f(x_i) of leaf ``child`` at its estimates, rows coded by ``code`` in 0..q−1."""
        leaf, values, pooled = self.leaves[child]
        params = leaf.estimate(Leaf.stats(code, values, q), self.alpha, pooled)
        return float(leaf.log_density(values, params[code]).sum())

    def clg_log_likelihood(
        self, child: int, linked: Sequence[int], code: np.ndarray, q: int
    ) -> float:
        """Σ log f(x_i) of the conditional linear Gaussian of ``child`` on the continuous
        columns ``linked`` (and the discrete parents coded by ``code`` in 0..q−1), at its
        estimates (values taken about their pooled means: shifts change no likelihood)."""
        if self.covariance is None:
            raise ValueError("a continuous parent needs the pooled covariance= matrix")
        cols = [*linked, child]
        z = np.column_stack([self.leaves[c][1] - self.leaves[c][2][0] for c in cols])
        u = np.column_stack([np.ones(len(z)), z])
        stats = clg_stats(code, u, q)
        prior = clg_prior(np.zeros(len(cols)), self.covariance[np.ix_(cols, cols)])
        coef, var = clg_estimate(stats, self.alpha, prior)
        return clg_log_likelihood(stats, coef, var)

    def information(self, child: int, parent: int) -> float:
        """The plug-in mutual information (nats) of a leaf and one parent: the gain in its
        log-likelihood per row when a discrete parent's levels split it; for two continuous
        columns, the Gaussian's −½ log(1 − ρ²)."""
        n = len(self.x)
        if parent in self.leaves:
            with np.errstate(invalid="ignore", divide="ignore"):
                rho = np.corrcoef(self.leaves[child][1], self.leaves[parent][1])[0, 1]
            rho = float(np.nan_to_num(rho))  # a constant column: no information
            return float(-0.5 * np.log1p(-min(rho * rho, 1.0 - 1e-15)))
        zero = np.zeros(n, dtype=np.int64)
        with_parent = self.leaf_log_likelihood(child, self.x[:, parent], int(self.cards[parent]))
        return (with_parent - self.leaf_log_likelihood(child, zero, 1)) / max(n, 1)

    def codes(self, parents: Sequence[int]) -> tuple[np.ndarray, list[int]]:
        """Mixed-radix codes (N,) of ``parents``' values, for :meth:`__call__`'s ``base``."""
        code = np.zeros(len(self.x), dtype=np.int64)
        for p in parents:
            code = code * int(self.cards[p]) + self.x[:, p]
        return code, list(parents)

    def total(self, parents: Sequence[Sequence[int]]) -> float:
        """The network's score: the sum of its family scores."""
        return sum(self(j, p) for j, p in enumerate(parents))


def ancestors(adjacency: np.ndarray) -> np.ndarray:
    """(D, D) bool: ``anc[a, b]`` when b is a proper ancestor of a (a path b → … → a)."""
    d = len(adjacency)
    anc = np.zeros((d, d), dtype=bool)
    for node in topological_order(adjacency):
        parents = np.flatnonzero(adjacency[:, node])
        if len(parents):
            anc[node] = anc[parents].any(axis=0)
            anc[node, parents] = True
    return anc


def with_edge_ancestors(anc: np.ndarray, i: int, j: int) -> None:
    """Update :func:`ancestors`' matrix in place for a new edge i → j of a DAG (one that
    makes no cycle): j and its descendants gain i and i's ancestors."""
    below = anc[:, j].copy()
    below[j] = True
    anc[below] |= anc[i]
    anc[below, i] = True


def topological_order(adjacency: np.ndarray) -> np.ndarray:
    """Nodes (D,) with every parent before its children (Kahn; lowest index first);
    a ValueError naming a cycle's nodes if the graph has one."""
    indegree = adjacency.sum(axis=0).astype(np.int64)
    ready = sorted(np.flatnonzero(indegree == 0).tolist())
    order: list[int] = []
    while ready:
        node = ready.pop(0)
        order.append(node)
        for child in np.flatnonzero(adjacency[node]):
            indegree[child] -= 1
            if indegree[child] == 0:
                ready.append(int(child))
        ready.sort()
    if len(order) < len(adjacency):
        stuck = sorted(set(range(len(adjacency))) - set(order))
        raise ValueError(f"the graph has a cycle through the variables {stuck}")
    return np.asarray(order, dtype=np.int64)


def hill_climb(
    scorer: FamilyScorer,
    *,
    start: np.ndarray | None = None,
    max_parents: int | None = None,
    tabu_length: int = 0,
    max_iter: int = 1000,
    black: np.ndarray | None = None,
    white: np.ndarray | None = None,
    tol: float = 1e-9,
    out_of_time: Callable[[], bool] | None = None,
) -> list[list[int]]:
    """Tabu hill climbing over DAGs by single-edge additions, removals and reversals.

    Each step takes the best legal move whose reverse is not among the last
    ``tabu_length`` moves, even if it lowers the score; the search stops after
    ``tabu_length`` steps without beating the best DAG seen (at the first step without a
    gain when ``tabu_length`` is 0), or after ``max_iter`` moves, and returns the best DAG
    seen: parent lists, one per variable. ``black`` (D, D) bool forbids edges, ``white``
    forces edges (they are in the start graph and never removed or reversed).
    ``out_of_time()`` is asked after each variable's first scores and after each move;
    when it answers yes the search stops there (with the start graph if the first scores
    were not all done).

    Returns:
        parents of each variable, sorted.
    """
    d = scorer.n_vars
    adj = np.zeros((d, d), dtype=bool) if start is None else start.astype(bool).copy()
    black = np.zeros((d, d), dtype=bool) if black is None else black.astype(bool)
    white = np.zeros((d, d), dtype=bool) if white is None else white.astype(bool)
    adj |= white
    limit = d if max_parents is None else int(max_parents)
    # gain[i, j]: change of j's family score when i joins (i ∉ Pa_j) or leaves (i ∈ Pa_j)
    gain = np.zeros((d, d))
    own = np.zeros(d)

    def refresh(j: int) -> None:
        parents = np.flatnonzero(adj[:, j]).tolist()
        own[j] = scorer(j, parents)
        base = scorer.codes(parents)  # shared by every added parent below
        for i in range(d):
            if i == j:
                continue
            if black[i, j] and not adj[i, j]:  # never added: no need to score it
                gain[i, j] = -np.inf
                continue
            toggled = [p for p in parents if p != i] if adj[i, j] else [*parents, i]
            cells = int(np.prod(scorer.cards[[*toggled, j]]))
            if adj[i, j] or (len(toggled) <= limit and cells <= _DENSE_CELLS):
                gain[i, j] = scorer(j, toggled, None if adj[i, j] else base) - own[j]
            else:
                gain[i, j] = -np.inf

    late = out_of_time or (lambda: False)
    for j in range(d):
        refresh(j)
        if late():
            return [np.flatnonzero(adj[:, j]).tolist() for j in range(d)]
    eye = np.eye(d, dtype=bool)
    best_adj, best_score = adj.copy(), own.sum()
    current = best_score
    tabu: list[tuple[str, int, int]] = []  # moves that would undo a recent one
    stale = 0
    anc = ancestors(adj)  # kept up to date move by move
    for _ in range(int(max_iter)):
        n_parents = adj.sum(axis=0)
        can_add = ~adj & ~adj.T & ~eye & ~black & ~anc & (n_parents < limit)[None, :]
        can_remove = adj & ~white
        # reversing i → j is acyclic unless another path leads from i to j: a parent
        # k ≠ i of j that descends from i (checked for the edges only, not all D² pairs)
        tails, heads = np.nonzero(adj)
        other = (anc[:, tails] & adj[:, heads]).any(axis=0)
        other_path = np.zeros((d, d), dtype=bool)
        other_path[tails[other], heads[other]] = True
        can_reverse = adj & ~white & ~black.T & ~other_path & (n_parents < limit)[:, None]
        moves = {
            "add": np.where(can_add, gain, -np.inf),
            "remove": np.where(can_remove, gain, -np.inf),
            "reverse": np.where(can_reverse, gain + gain.T, -np.inf),
        }
        for kind, i, j in tabu:
            moves[kind][i, j] = -np.inf
        kind, i, j, delta = _best_move(moves)
        if not np.isfinite(delta) or (tabu_length == 0 and delta <= tol):
            break
        if kind == "add":
            adj[i, j] = True
            undo = ("remove", i, j)
        elif kind == "remove":
            adj[i, j] = False
            undo = ("add", i, j)
        else:
            adj[i, j], adj[j, i] = False, True
            undo = ("reverse", j, i)
            refresh(i)
        refresh(j)
        if kind == "add":
            with_edge_ancestors(anc, i, j)
        else:  # a removed edge may cut paths: recompute
            anc = ancestors(adj)
        current = own.sum()
        if tabu_length:
            tabu = [*tabu, undo][-int(tabu_length) :]
        if current > best_score + tol:
            best_adj, best_score, stale = adj.copy(), current, 0
        else:
            stale += 1
            if stale > tabu_length:
                break
        if late():
            break
    return [np.flatnonzero(best_adj[:, j]).tolist() for j in range(d)]


def _best_move(moves: dict[str, np.ndarray]) -> tuple[str, int, int, float]:
    """The move of largest gain (the first kind, then the lowest (i, j) on ties)."""
    best: tuple[str, int, int, float] = ("add", 0, 0, -np.inf)
    for kind, table in moves.items():
        flat = int(np.argmax(table))
        value = float(table.flat[flat])
        if value > best[3]:
            i, j = divmod(flat, table.shape[1])
            best = (kind, i, j, value)
    return best


# --------------------------------------------------------------------------- given structures
_EDGE = re.compile(r'("(?:[^"\\]|\\.)*"|[\w.]+)')


def parse_dot(text: str) -> list[list[str]]:
    """The edges [parent, child] of a Graphviz ``digraph`` (``a -> b -> c;`` chains, names
    bare or quoted, ``[...]`` attributes ignored); nodes declared as ``0 [label="x0"]``
    stand for their label. A ValueError where a statement has an edge it cannot read."""
    wrapped = re.match(r"\s*(?:strict\s+)?digraph\b[^{]*\{(.*)\}\s*$", text, flags=re.S)
    body = wrapped.group(1) if wrapped else text
    body = re.sub(r"//[^\n]*|/\*.*?\*/", "", body, flags=re.S)
    labels: dict[str, str] = {}
    chains: list[list[str]] = []
    for statement in re.split(r"[;\n]", body):
        attrs = re.search(r"\[(.*)\]", statement)
        head = statement[: attrs.start()] if attrs else statement
        if "->" not in head:
            label = (
                re.search(r'label\s*=\s*("(?:[^"\\]|\\.)*"|[\w.]+)', attrs.group(1))
                if attrs
                else None
            )
            name = head.strip()
            if label and _EDGE.fullmatch(name):
                labels[_unquote(name)] = _unquote(label.group(1))
            continue
        parts = [p.strip() for p in head.split("->")]
        if not all(_EDGE.fullmatch(p) for p in parts):
            raise ValueError(f"cannot read the edge statement {statement.strip()!r}")
        chains.append([_unquote(p) for p in parts])
    edges = []
    for chain in chains:
        named = [labels.get(p, p) for p in chain]
        edges += [[a, b] for a, b in itertools.pairwise(named)]
    return edges


def _unquote(token: str) -> str:
    token = token.strip()
    if token.startswith('"'):
        return token[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    return token


class Edges(Param):
    """Edges between columns: a list of [parent, child] pairs (column indices or names),
    or DOT text (``"a -> b; b -> c"``); None for none where ``none``. With ``choices``,
    those strings (ways to learn a structure) are accepted too."""

    __slots__ = ("choices", "none")

    def __init__(self, *choices: str, none: bool = False) -> None:
        object.__setattr__(self, "choices", tuple(choices))
        object.__setattr__(self, "none", none)

    def __setattr__(self, key: str, value: Any) -> None:
        raise AttributeError("a declaration is frozen")

    def __repr__(self) -> str:
        return f"Edges({', '.join(map(repr, self.choices))}, none={self.none})"

    def check(self, model: str, name: str, value: Any) -> Any:
        what = self.describe()
        if value is None and self.none:
            return None
        if isinstance(value, str):
            if value in self.choices:
                return value
            if "->" not in value:
                raise parameter_error(model, name, what, value)
            try:
                return parse_dot(value)
            except ValueError as e:
                raise parameter_error(model, name, what, value, str(e)) from None
        if isinstance(value, np.ndarray):
            value = value.tolist()
        ok = isinstance(value, (list, tuple)) and all(
            isinstance(e, (list, tuple))
            and len(e) == 2
            and all((is_integer(v) and v >= 0) or (isinstance(v, str) and v) for v in e)
            and e[0] != e[1]
            for e in value
        )
        if not ok:
            raise parameter_error(model, name, what, value, "e.g. [['x0', 'x1'], [1, 2]]")
        return [[v if isinstance(v, str) else int(v) for v in e] for e in value]

    def describe(self) -> str:
        text = "list of [parent, child] pairs or DOT text"
        text = " | ".join([*map(repr, self.choices), text]) if self.choices else text
        return self._or_none(text)

    def bad_values(self) -> list[Any]:
        return ["nope", 1, [[0, 0]], [[0]], [1, 2], "a -> {b c}", *self._bad_none()]
