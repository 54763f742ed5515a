"""Synthetic data with known ground truth: random tree-structured Bayesian networks."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ptheta.data.spec import Dataset, DataSpec, Split
from ptheta.errors import ParameterError

# groundtruth-tree: 30 binary variables, one fixed network, fixed splits.
TREE_DIMS = 30
TREE_SPLIT = (10_000, 2_000, 2_000)
TREE_SEED = 314_159
# Half-width of the uniform jitter around `strength`, so that edges differ in strength.
STRENGTH_JITTER = 0.05


@dataclass(frozen=True)
class TreeNetwork:
    """A tree-structured Bayesian network over ``D`` discrete variables with ``K`` levels.

    Attributes:
        parents: (D,) parent of each variable, −1 for the root.
        order: (D,) a topological order (every parent before its children).
        cpts: (D, K, K) tables, ``cpts[d, a, b] = p(x_d = b | x_parent(d) = a)``; the root's
            rows all equal its marginal.
    """

    parents: np.ndarray
    order: np.ndarray
    cpts: np.ndarray

    @property
    def edges(self) -> list[tuple[int, int]]:
        """The (parent, child) pairs, in topological order of the child."""
        return [(int(self.parents[d]), int(d)) for d in self.order if self.parents[d] >= 0]

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """Draw ``n`` examples by ancestral sampling, shape (n, D), int64."""
        d, k, _ = self.cpts.shape
        x = np.zeros((n, d), dtype=np.int64)
        u = rng.random((n, d))
        for node in self.order:
            parent_vals = x[:, self.parents[node]] if self.parents[node] >= 0 else 0
            cdf = np.cumsum(self.cpts[node, parent_vals], axis=-1)  # (n, K) or (K,)
            # inverse CDF; the clip guards a last cdf entry just below 1 by rounding
            x[:, node] = np.minimum((u[:, node, None] > cdf).sum(axis=-1), k - 1)
        return x

    def log_prob(self, x: np.ndarray) -> np.ndarray:
        """Exact log p(x) in nats of examples (N, D) of integer levels, shape (N,)."""
        x = np.asarray(x, dtype=np.int64).reshape(len(x), -1)
        parent_vals = np.where(self.parents >= 0, x[:, np.maximum(self.parents, 0)], 0)  # (N, D)
        with np.errstate(divide="ignore"):
            logt = np.log(self.cpts)
        return logt[np.arange(x.shape[1]), parent_vals, x].sum(axis=1)

    def marginals(self) -> np.ndarray:
        """Exact marginal p(x_d) of every variable, shape (D, K)."""
        d, k, _ = self.cpts.shape
        out = np.zeros((d, k))
        for node in self.order:
            parent = self.parents[node]
            out[node] = self.cpts[node, 0] if parent < 0 else out[parent] @ self.cpts[node]
        return out

    def entropy(self) -> float:
        """Exact entropy in nats: H(root) + Σ_d H(x_d | x_parent(d)) along the tree."""
        marg = self.marginals()
        from scipy.special import xlogy  # scipy on first use: `import ptheta` stays light

        row_h = -xlogy(self.cpts, self.cpts).sum(axis=2)  # (D, K): H of each table row
        parent_marg = np.where((self.parents >= 0)[:, None], marg[np.maximum(self.parents, 0)], 0.0)
        root = int(np.flatnonzero(self.parents < 0)[0])
        parent_marg[root, 0] = 1.0  # the root's rows are all its marginal: take one
        return float((parent_marg * row_h).sum())


def random_tree_network(
    n_dims: int,
    n_categories: int = 2,
    *,
    strength: float = 0.9,
    seed: int | None = 0,
) -> TreeNetwork:
    """A random tree-structured network with strong parent → child dependencies.

    The tree is a random recursive tree (each variable picks a parent among the earlier
    ones) whose variables are then shuffled, so neither the root nor the edges follow the
    index order. Each child copies its parent's level with probability ``strength`` plus a
    uniform jitter of ±0.05 (per edge) and otherwise takes one of the other levels uniformly;
    the root's marginal is drawn from a Dirichlet(2, …, 2).

    Arguments:
        n_dims: number of variables D (≥ 1).
        n_categories: levels per variable K (≥ 2).
        strength: probability that a child copies its parent, in (1/K, 1).
        seed: seed of the structure and the tables.

    Returns:
        a :class:`TreeNetwork` with ``parents``, ``order``, ``cpts``, ``sample(n, rng)``,
        ``log_prob(x)`` and ``entropy()``.

    Example:
        >>> net = random_tree_network(5, seed=1)
        >>> x = net.sample(1000, np.random.default_rng(0))
        >>> x.shape, float(-net.log_prob(x).mean()) > 0
        ((1000, 5), True)
    """
    if isinstance(n_dims, bool) or not isinstance(n_dims, (int, np.integer)) or n_dims < 1:
        raise ParameterError(f"n_dims must be a positive integer, got {n_dims!r}")
    if (
        isinstance(n_categories, bool)
        or not isinstance(n_categories, (int, np.integer))
        or n_categories < 2
    ):
        raise ParameterError(f"n_categories must be an integer >= 2, got {n_categories!r}")
    k = int(n_categories)
    if not 1.0 / k < strength < 1.0:
        raise ParameterError(
            f"strength must lie strictly between 1/n_categories = {1 / k:.3g} and 1 (a child "
            f"copies its parent with that probability), got {strength!r}"
        )
    rng = np.random.default_rng(seed)
    d = int(n_dims)
    # random recursive tree on positions 0..D-1 (parent position < child position) ...
    parent_pos = np.array([-1] + [int(rng.integers(0, i)) for i in range(1, d)])
    # ... then variable perm[i] sits at position i: positions are a topological order
    perm = rng.permutation(d)
    parents = np.full(d, -1, dtype=np.int64)
    parents[perm[1:]] = perm[parent_pos[1:]]
    lo, hi = max(1.0 / k, strength - STRENGTH_JITTER), min(1.0, strength + STRENGTH_JITTER)
    keep = rng.uniform(lo, hi, size=d)  # (D,) copy probability of each child
    other = (1.0 - keep) / (k - 1)  # (D,) probability of each other level
    cpts = np.where(np.eye(k, dtype=bool), keep[:, None, None], other[:, None, None])  # (D, K, K)
    root = perm[0]
    cpts[root] = rng.dirichlet(np.full(k, 2.0))[None, :]
    return TreeNetwork(parents=parents, order=perm.astype(np.int64), cpts=cpts)


def tree_dataset() -> Dataset:
    """The built-in ``groundtruth-tree``: 30 binary variables from a fixed random tree network.

    Returns:
        a :class:`Dataset` with 10 000 / 2 000 / 2 000 examples, the exact ``entropy``
        (nats), ``log_density`` (the exact log-probability of the true network) and
        ``extra["true_edges"]`` (the network's (parent, child) pairs).

    Example:
        >>> data = tree_dataset()
        >>> data.train.x.shape, round(data.entropy, 2) > 0
        ((10000, 30), True)
    """
    net = random_tree_network(TREE_DIMS, 2, strength=0.9, seed=TREE_SEED)
    x = net.sample(sum(TREE_SPLIT), np.random.default_rng([TREE_SEED, 1]))  # (14000, 30)
    spec = DataSpec("binary", (TREE_DIMS,))
    a, b = TREE_SPLIT[0], TREE_SPLIT[0] + TREE_SPLIT[1]
    train, val, test = (Split(x[s], None, spec) for s in (slice(0, a), slice(a, b), slice(b, None)))
    return Dataset(
        name="groundtruth-tree",
        spec=spec,
        train=train,
        val=val,
        test=test,
        description=DESCRIPTION,
        log_density=net.log_prob,
        entropy=net.entropy(),
        extra={
            "source": "ptheta.data.groundtruth.random_tree_network",
            "seed": TREE_SEED,
            # tuples: the Dataset copy handed to callers shares this value
            "true_edges": tuple(net.edges),
        },
    )


DESCRIPTION = (
    f"{TREE_DIMS} binary variables from a fixed random tree-structured Bayesian network "
    "(each child copies its parent with probability 0.9 ± 0.05); exact entropy and log p(x)"
)
