"""Benchmark: ptheta's chow-liu against pgmpy's Chow–Liu structure learning (TreeSearch).

Two data sets: digits-binary (train split, 1000 × 64) and 50 000 rows of a 100-dimensional
binary tree network from `ptheta.data.groundtruth.random_tree_network` (seed 7).

Fairness: pgmpy's time is its structure learning only, `TreeSearch(df).estimate("chow-liu")`
(the pairwise mutual information, the spanning tree and the root; the DataFrame and the
TreeSearch object are built outside the timer, and no parameters are fitted). ptheta's time
is the whole `fit` from a numpy array: input validation, mutual information, spanning tree,
orientation and the conditional tables. pgmpy runs once with n_jobs=1 (one process) and once
with its default n_jobs=-1 (joblib workers); ptheta uses numpy's BLAS threads. ptheta's time
is the median of 5 fits, pgmpy's a single run (it is the slow side).

Edges are compared as undirected sets, for ptheta's default (alpha=0.5: mutual information of
smoothed counts) and for alpha=0 (plain empirical mutual information, as pgmpy uses), and by
the total plain mutual information of each tree (equal totals: equally good trees).

    .venv-bench/bin/python bench/chow_liu_vs_pgmpy.py
"""

from __future__ import annotations

import os
import statistics
import time
import warnings

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

import ptheta
from ptheta.data.groundtruth import random_tree_network
from ptheta.models.chow_liu import pairwise_mutual_information

warnings.filterwarnings("ignore", category=FutureWarning)  # pgmpy's deprecation notices
from pgmpy.estimators import TreeSearch  # noqa: E402

REPEATS = 5


def undirected(edges) -> set[frozenset[int]]:
    return {frozenset(int(v) for v in e) for e in edges}


def ours(x: np.ndarray, alpha: float = 0.5) -> tuple[float, set[frozenset[int]]]:
    times, model = [], None
    for _ in range(REPEATS):
        model = ptheta.make("chow-liu", alpha=alpha)
        start = time.perf_counter()
        model.fit(x)
        times.append(time.perf_counter() - start)
    return statistics.median(times), undirected(model.edges_)


def theirs(x: np.ndarray, n_jobs: int) -> tuple[float, set[frozenset[int]]]:
    frame = pd.DataFrame(x, columns=[str(i) for i in range(x.shape[1])])
    search = TreeSearch(frame, n_jobs=n_jobs)
    start = time.perf_counter()
    dag = search.estimate(estimator_type="chow-liu", show_progress=False)
    return time.perf_counter() - start, undirected(dag.edges())


def main() -> None:
    net = random_tree_network(100, 2, strength=0.9, seed=7)
    sets = {
        "digits-binary train": (ptheta.datasets.load("digits-binary").train.x, None),
        "tree network": (net.sample(50_000, np.random.default_rng(0)), net),
    }
    times = Table(
        title="fit time — ptheta: whole fit (median of 5); pgmpy: structure learning only (1 run)"
    )
    for col in ("data (N × D)", "ptheta (s)", "pgmpy n_jobs=1 (s)", "speed-up"):
        times.add_column(col, justify="left" if col.startswith("data") else "right")
    times.add_column("pgmpy n_jobs=-1 (s)", justify="right")
    times.add_column("speed-up", justify="right")
    edges = Table(title="edges (undirected); Σ MI = total plain mutual information of the tree")
    for col in (
        "data",
        "ptheta edges",
        "pgmpy edges",
        "shared, α=0.5",
        "shared, α=0",
        "Σ MI ptheta α=0 − pgmpy",
        "true edges found",
    ):
        edges.add_column(col, justify="left" if col == "data" else "right")
    for label, (x, truth) in sets.items():
        d = x.shape[1]
        t_ours, e_ours = ours(x)
        _, e_ml = ours(x, alpha=0.0)
        t_one, e_pg = theirs(x, n_jobs=1)
        t_all, _ = theirs(x, n_jobs=-1)
        times.add_row(
            f"{label} ({x.shape[0]} × {d})",
            f"{t_ours:.3f}",
            f"{t_one:.2f}",
            f"{t_one / t_ours:.0f}×",
            f"{t_all:.2f}",
            f"{t_all / t_ours:.0f}×",
        )
        mi = pairwise_mutual_information(x, 2)  # plain empirical MI, as pgmpy's weights
        total = {name: sum(mi[tuple(e)] for e in es) for name, es in (("ml", e_ml), ("pg", e_pg))}
        found = "—" if truth is None else f"{len(e_ours & undirected(truth.edges))}/{d - 1}"
        edges.add_row(
            label,
            str(len(e_ours)),
            str(len(e_pg)),
            str(len(e_ours & e_pg)),
            str(len(e_ml & e_pg)),
            f"{total['ml'] - total['pg']:.2e}",
            found,
        )
    console = Console(width=140)
    console.print(times)
    console.print(edges)
    print(
        f"{os.cpu_count()} CPU cores. pgmpy leaves variables whose mutual information with "
        "every other is 0 (digits' constant pixels) unconnected: its result is then a forest "
        "with fewer edges, of the same total mutual information; ptheta always returns one "
        "spanning tree."
    )


if __name__ == "__main__":
    main()
