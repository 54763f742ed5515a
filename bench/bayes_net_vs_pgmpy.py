"""Benchmark: ptheta's bayesian-network hill climbing against pgmpy's HillClimbSearch.

Data: rows sampled from known random networks — 10, 20 and 50 binary / ternary variables
(seeded, a random topological order, at most 3 parents each, tables of clear dependence:
each row 0.9 · Dirichlet(0.5) + 0.1 · uniform), 5 000, 10 000 and 20 000 rows, sampled
ancestrally in numpy — plus the original two sets of this script: 20 000 rows of a random
20-variable binary DAG (noisy averages of up to three parents) and digits-binary (train
split; no true DAG). The known networks are given to ptheta as a table (binary
and categorical columns, each with its own number of levels), so both sides count the
same parameters in BIC.

Fairness: the same search settings on both sides — start from the empty DAG, add /
remove / reverse moves, BIC, tabu list of 10, at most 4 parents, at most 1000 moves. The
stopping rules differ: pgmpy stops at the first move that gains less than 1e-4; ptheta
goes on for up to 10 (the tabu length) moves past a local optimum and keeps the best DAG
seen (more work on ptheta's side). pgmpy's time is `HillClimbSearch(df).estimate(...)`
alone (the DataFrame and the search object are built outside the timer; no parameters
fitted). ptheta's time is its whole `fit` (validation, the search, the tables). Both
learned DAGs are scored by the same BIC (ptheta's `FamilyScorer`, equal to pgmpy's BIC up
to rounding), so "BIC" compares the optima they reach (higher is better). Timed with
bench/harness.py: one thread, interleaved rounds (ptheta, pgmpy, ptheta, pgmpy, …),
medians, the load average before and after (the machine is shared: timings are noisy).

Distance to the true DAG: the structural Hamming distance (SHD) of the directed graphs
(node pairs whose edge differs: missing, extra or reversed, each 1), and the SHD of their
CPDAGs (Markov equivalence classes; a pair differs when it is absent / undirected /
directed one way in one and not the same in the other), since BIC cannot tell apart DAGs
of one class. The CPDAG is computed here (skeleton, v-structures, then Meek's rules 1–3
to a fixed point) and checked against pgmpy's `DAG.to_pdag` (Chickering's edge-labelling
algorithm) on every DAG the bench meets.

One JSON line per workload is appended to bench/results/bayes_net_vs_pgmpy.jsonl.

    .venv-bench/bin/python bench/bayes_net_vs_pgmpy.py [--quick] [--rounds 3]
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from harness import Side, append_record, compare, console, parser, script_name
from rich.table import Table

import ptheta
from ptheta.data.spec import DataSpec, Split
from ptheta.data.table import ColumnSpec
from ptheta.models.dag_search import FamilyScorer

warnings.filterwarnings("ignore")  # pgmpy's deprecation notices
from pgmpy.base import DAG  # noqa: E402
from pgmpy.estimators import HillClimbSearch  # noqa: E402

SEARCH = {"tabu_length": 10, "max_parents": 4, "max_iter": 1000}
Parents = list[list[int]]


# --------------------------------------------------------------------------- known networks
@dataclass
class Network:
    """A discrete Bayesian network: ``parents[j]`` (sorted), ``cards`` (D,), ``cpts[j]``
    of shape (∏ cards[parents[j]], cards[j]) (the first parent most significant),
    ``order`` a topological order."""

    parents: Parents
    cards: np.ndarray
    cpts: list[np.ndarray]
    order: np.ndarray

    def sample(self, n: int, seed: int) -> np.ndarray:
        """(n, D) int64 rows by ancestral sampling."""
        rng = np.random.default_rng(seed)
        x = np.zeros((n, len(self.cards)), dtype=np.int64)
        for j in self.order:
            code = np.zeros(n, dtype=np.int64)
            for p in self.parents[j]:
                code = code * self.cards[p] + x[:, p]
            cum = np.cumsum(self.cpts[j][code], axis=1)
            x[:, j] = (rng.random((n, 1)) > cum[:, :-1]).sum(axis=1)
        return x


def random_network(d: int, seed: int, max_in: int = 3) -> Network:
    """A random DAG over ``d`` binary / ternary variables in a random topological order,
    each with 0..``max_in`` parents drawn from the variables before it, and tables whose
    rows are 0.9 · Dirichlet(0.5) + 0.1 · uniform (every parent configuration its own,
    clearly different distribution)."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(d)
    cards = rng.choice([2, 3], size=d, p=[0.6, 0.4]).astype(np.int64)
    parents: Parents = [[] for _ in range(d)]
    for k, j in enumerate(order):
        m = int(rng.integers(0, min(k, max_in) + 1))
        if m:
            parents[j] = sorted(int(p) for p in rng.choice(order[:k], size=m, replace=False))
    cpts = []
    for j in range(d):
        q = int(np.prod(cards[parents[j]]))
        rows = rng.dirichlet(np.full(cards[j], 0.5), size=q)
        cpts.append(0.9 * rows + 0.1 / cards[j])
    return Network(parents, cards, cpts, order)


def as_table(x: np.ndarray, cards: np.ndarray) -> Split:
    """Rows of codes as a table split: binary / categorical columns ``x0``, … with levels
    "0".."K−1", each its own K."""
    columns = tuple(
        ColumnSpec(
            f"x{j}",
            "binary" if k == 2 else "categorical",
            levels=tuple(str(i) for i in range(k)),
        )
        for j, k in enumerate(cards)
    )
    spec = DataSpec("table", (x.shape[1],), columns=columns)
    return Split(x.astype(np.float64), None, spec)


def random_dag_data(d: int, n: int, seed: int) -> tuple[np.ndarray, Parents]:
    """Rows of a random binary DAG: each variable a noisy average of up to 3 earlier ones;
    the rows and the true parents."""
    rng = np.random.default_rng(seed)
    x = np.zeros((n, d), dtype=np.int64)
    parents: Parents = []
    for j in range(d):
        pa = rng.choice(j, size=min(j, int(rng.integers(0, 4))), replace=False) if j else []
        mean = x[:, pa].mean(axis=1) if len(pa) else np.full(n, 0.5)
        x[:, j] = rng.random(n) < 0.1 + 0.8 * mean
        parents.append(sorted(int(p) for p in pa))
    return x, parents


# --------------------------------------------------------------------------- graph distances
def adjacency(parents: Sequence[Sequence[int]]) -> np.ndarray:
    """(D, D) bool, ``a[i, j]``: the edge i → j."""
    d = len(parents)
    a = np.zeros((d, d), dtype=bool)
    for j, ps in enumerate(parents):
        a[list(ps), j] = True
    return a


def cpdag(parents: Sequence[Sequence[int]]) -> np.ndarray:
    """The CPDAG of a DAG as (D, D) bool: ``c[i, j] and c[j, i]``: i — j undirected,
    ``c[i, j]`` alone: i → j compelled.

    The skeleton, every v-structure a → c ← b (a, b not adjacent) oriented, then Meek's
    rules to a fixed point: R1 a → b — c, a, c not adjacent ⇒ b → c; R2 a → b → c, a — c
    ⇒ a → c; R3 a — b, a — c → b, a — d → b, c, d not adjacent ⇒ a → b (R4 is never
    needed when the only knowledge is a DAG's v-structures: Meek 1995)."""
    dag = adjacency(parents)
    d = len(dag)
    adj = dag | dag.T
    c = adj.copy()  # start: every edge undirected
    for k in range(d):
        pa = np.flatnonzero(dag[:, k])
        for x, a in enumerate(pa):
            for b in pa[x + 1 :]:
                if not adj[a, b]:
                    c[k, a] = c[k, b] = False  # a → k ← b
    changed = True
    while changed:
        changed = False
        directed = c & ~c.T
        undirected = c & c.T
        for a, b in zip(*np.nonzero(undirected), strict=True):
            if not undirected[a, b]:
                continue  # oriented earlier in this sweep
            # R1: some x → a with x not adjacent to b  ⇒  a → b
            r1 = np.any(directed[:, a] & ~adj[:, b] & (np.arange(d) != b))
            # R2: a → x → b  ⇒  a → b
            r2 = np.any(directed[a, :] & directed[:, b])
            # R3: a — x → b and a — y → b, x, y not adjacent  ⇒  a → b
            mids = np.flatnonzero(undirected[a, :] & directed[:, b])
            r3 = any(not adj[x, y] for i, x in enumerate(mids) for y in mids[i + 1 :])
            if r1 or r2 or r3:
                c[b, a] = False
                undirected[a, b] = undirected[b, a] = False
                directed[a, b] = True
                changed = True
    return c


def pair_shd(a: np.ndarray, b: np.ndarray) -> int:
    """Node pairs {i, j} whose edge status (none, i → j, j → i, undirected) differs between
    the (partially) directed graphs ``a`` and ``b`` (bool, ``a[i, j]``: a mark i → j)."""
    i, j = np.triu_indices(len(a), k=1)
    return int(np.sum((a[i, j] != b[i, j]) | (a[j, i] != b[j, i])))


def shd(p: Parents, q: Parents) -> int:
    """Structural Hamming distance of two DAGs (a reversal counts 1)."""
    return pair_shd(adjacency(p), adjacency(q))


def cpdag_shd(p: Parents, q: Parents) -> int:
    """Structural Hamming distance of the two DAGs' CPDAGs (equivalence classes)."""
    return pair_shd(cpdag(p), cpdag(q))


def check_cpdag(parents: Parents) -> None:
    """Our CPDAG equals pgmpy's ``DAG.to_pdag`` (an independent algorithm)."""
    d = len(parents)
    dag = DAG()
    dag.add_nodes_from(range(d))
    dag.add_edges_from((p, j) for j, ps in enumerate(parents) for p in ps)
    pdag = dag.to_pdag()
    theirs = np.zeros((d, d), dtype=bool)
    for u, v in pdag.directed_edges:
        theirs[u, v] = True
    for u, v in pdag.undirected_edges:
        theirs[u, v] = theirs[v, u] = True
    if not np.array_equal(cpdag(parents), theirs):
        raise AssertionError("the CPDAG differs from pgmpy's DAG.to_pdag")


def covered_reversal(parents: Parents) -> Parents | None:
    """The DAG with one covered edge a → b (Pa(b) = Pa(a) ∪ {a}) reversed: Markov
    equivalent (Chickering 1995), so its CPDAG must be the same; None if none is covered."""
    for b, pb in enumerate(parents):
        for a in pb:
            if set(pb) == {*parents[a], a}:
                out = [list(ps) for ps in parents]
                out[b].remove(a)
                out[a] = sorted([*out[a], b])
                return out
    return None


# --------------------------------------------------------------------------- the comparison
def sides(data: Any, x: np.ndarray, outputs: dict[str, Parents], scorer: FamilyScorer):
    """ptheta's fit of ``data`` and pgmpy's search on the DataFrame of ``x``; each side's
    objective is the BIC of its DAG (``scorer``), its last DAG kept in ``outputs``."""
    d = x.shape[1]
    frame = pd.DataFrame(x, columns=[str(i) for i in range(d)]).astype("category")
    search = HillClimbSearch(frame)

    def ours() -> Parents:
        return ptheta.make("bayesian-network", **SEARCH).fit(data).parents_

    def theirs() -> Parents:
        dag = search.estimate(
            scoring_method="bic-d",
            tabu_length=SEARCH["tabu_length"],
            max_indegree=SEARCH["max_parents"],
            max_iter=SEARCH["max_iter"],
            show_progress=False,
        )
        return [sorted(int(p) for p in dag.get_parents(str(j))) for j in range(d)]

    def bic(key: str):
        def objective(parents: Parents) -> float:
            outputs[key] = [list(map(int, ps)) for ps in parents]
            return scorer.total(outputs[key])

        return objective

    return [
        Side("ptheta bayesian-network", ours, objective=bic("ptheta")),
        Side("pgmpy HillClimbSearch", theirs, objective=bic("pgmpy")),
    ]


def workloads(quick: bool) -> list[tuple[str, Any, np.ndarray, np.ndarray, Parents | None]]:
    """(label, what ptheta fits, codes, cards, true parents or None) per data set."""
    sizes = [(10, 5_000), (20, 10_000)] if quick else [(10, 5_000), (20, 10_000), (50, 20_000)]
    out = []
    for d, n in sizes:
        net = random_network(d, seed=d)
        x = net.sample(n, seed=d + 1)
        out.append((f"known network D={d}", as_table(x, net.cards), x, net.cards, net.parents))
    if not quick:
        x, truth = random_dag_data(20, 20_000, seed=0)
        out.append(("noisy-average DAG D=20", x, x, np.full(20, 2), truth))
        x = ptheta.datasets.load("digits-binary").train.x.astype(np.int64)
        out.append(("digits-binary train", x, x, np.full(x.shape[1], 2), None))
    return out


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="10 and 20 variables, 1 round")
    args = p.parse_args()
    rounds, warmup = (1, 0) if args.quick else (args.rounds, args.warmup)
    threads = args.threads[0] if args.threads != [1, 2] else 1  # the searches: one thread
    table = Table(
        title=f"hill climbing from the empty DAG, BIC, tabu 10, ≤ 4 parents, ≤ 1000 moves — "
        f"{threads} thread, median of {rounds} interleaved round(s) after {warmup} warm-up",
        title_justify="left",
    )
    for col in (
        "data (N × D)",
        "true edges",
        "ptheta (s)",
        "pgmpy (s)",
        "speed-up",
        "true BIC",
        "ptheta BIC",
        "pgmpy BIC",
        "edges ptheta / pgmpy",
        "SHD ptheta / pgmpy",
        "CPDAG SHD ptheta / pgmpy",
        "load before → after",
    ):
        table.add_column(col, justify="left" if col.startswith("data") else "right")
    for label, data, x, cards, truth in workloads(args.quick):
        scorer = FamilyScorer(x, cards, "bic")
        outputs: dict[str, Parents] = {}
        result = compare(
            f"bayes-net structure, {label} ({x.shape[0]:,} × {x.shape[1]})",
            sides(data, x, outputs, scorer),
            threads=threads,
            script=script_name(__file__),
            rounds=rounds,
            warmup=warmup,
            objective="BIC of the learned DAG (nats)",
            rtol=None,  # different searches: the optima may differ
            params={"shape": list(x.shape), "cards": np.bincount(cards).tolist(), **SEARCH},
            record=False,
        )
        ours, theirs = outputs["ptheta"], outputs["pgmpy"]
        for dag in (ours, theirs, *([truth] if truth is not None else [])):
            check_cpdag(dag)
        if truth is not None:
            twin = covered_reversal(truth)
            if twin is not None and cpdag_shd(truth, twin) != 0:
                raise AssertionError("a covered edge reversal changed the CPDAG")
        dist: dict[str, Any] = {
            "edges": {"ptheta": sum(map(len, ours)), "pgmpy": sum(map(len, theirs))},
            "parents": {"ptheta": ours, "pgmpy": theirs},
        }
        if truth is not None:
            dist |= {
                "true_edges": sum(map(len, truth)),
                "true_bic": scorer.total(truth),
                "shd": {"ptheta": shd(truth, ours), "pgmpy": shd(truth, theirs)},
                "cpdag_shd": {"ptheta": cpdag_shd(truth, ours), "pgmpy": cpdag_shd(truth, theirs)},
            }
        result["structure"] = dist
        if args.record:
            append_record(script_name(__file__), result)
        s_ours, s_theirs = result["sides"]
        lb, la = result["load_before"], result["load_after"]
        na = "—"
        table.add_row(
            f"{label.split()[0]}, {x.shape[0]:,} × {x.shape[1]}",
            na if truth is None else str(dist["true_edges"]),
            f"{s_ours['median']:.3f}",
            f"{s_theirs['median']:.2f}",
            f"{s_theirs['ratio']:.1f}×",
            na if truth is None else f"{dist['true_bic']:.1f}",
            f"{s_ours['objective']:.1f}",
            f"{s_theirs['objective']:.1f}",
            f"{dist['edges']['ptheta']} / {dist['edges']['pgmpy']}",
            na if truth is None else f"{dist['shd']['ptheta']} / {dist['shd']['pgmpy']}",
            na
            if truth is None
            else f"{dist['cpdag_shd']['ptheta']} / {dist['cpdag_shd']['pgmpy']}",
            f"{lb[0]:.2f} → {la[0]:.2f}",
        )
    table.caption = (
        "BIC: higher is better (the same scorer for every DAG); SHD: pairs of variables whose "
        "edge differs from the true DAG's (lower is better); speed-up: pgmpy / ptheta medians"
    )
    console.print(table)


if __name__ == "__main__":
    main()
