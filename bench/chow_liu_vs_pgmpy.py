"""Benchmark: ptheta's chow-liu against pgmpy's Chow–Liu structure learning (TreeSearch).

Data: digits-binary (train split) and rows of a binary tree network from
`ptheta.data.groundtruth.random_tree_network` (seed 7): 10 000 × 50 (50 000 × 100 with
--full).

The same work, timed with bench/harness.py (threads pinned, warm-up, interleaved rounds):
the maximum spanning tree of the plain empirical pairwise mutual information. ptheta runs
with alpha=0 (plain, unsmoothed mutual information, as pgmpy uses; its default alpha=0.5
smooths the counts) and its time is the whole `fit` from a numpy array: input validation,
mutual information, spanning tree, orientation and the conditional tables. pgmpy's time is
its structure learning only, `TreeSearch(df, n_jobs=threads).estimate("chow-liu")` (the
DataFrame is built outside the timer; no parameters are fitted); n_jobs is the thread count
of the round, so both sides use the same number of cores. The objective printed next to
each time is the total plain mutual information of the tree found (nats): equal totals,
equally good trees. pgmpy leaves variables whose mutual information with every other is 0
(digits' constant pixels) unconnected: a forest with fewer edges and the same total.

    .venv-bench/bin/python bench/chow_liu_vs_pgmpy.py [--full] [--threads 1 2]
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from harness import Side, compare, parser, print_comparison, script_name

import ptheta
from ptheta.data.groundtruth import random_tree_network
from ptheta.models.chow_liu import pairwise_mutual_information

warnings.filterwarnings("ignore", category=FutureWarning)  # pgmpy's deprecation notices
from pgmpy.estimators import TreeSearch  # noqa: E402


def undirected(edges) -> set[frozenset[int]]:
    return {frozenset(int(v) for v in e) for e in edges}


def sides(x: np.ndarray, threads: int) -> list[Side]:
    mi = pairwise_mutual_information(x, 2)  # plain empirical MI: both sides' edge weights
    frame = pd.DataFrame(x, columns=[str(i) for i in range(x.shape[1])])

    def total_mi(edges) -> float:
        return float(sum(mi[tuple(e)] for e in undirected(edges)))

    def ours():
        return ptheta.make("chow-liu", alpha=0.0).fit(x).edges_

    def theirs():
        search = TreeSearch(frame, n_jobs=threads)
        return search.estimate(estimator_type="chow-liu", show_progress=False).edges()

    return [
        Side("ptheta chow-liu (alpha=0)", ours, objective=total_mi),
        Side(f"pgmpy TreeSearch (n_jobs={threads})", theirs, objective=total_mi),
    ]


def main() -> None:
    args = parser(__doc__.splitlines()[0]).parse_args()
    n, d = (50_000, 100) if args.full else (10_000, 50)
    net = random_tree_network(d, 2, strength=0.9, seed=7)
    sets = {
        "digits-binary train": ptheta.datasets.load("digits-binary").train.x,
        "tree network": net.sample(n, np.random.default_rng(0)),
    }
    for label, x in sets.items():
        for threads in args.threads:
            result = compare(
                f"chow-liu structure, {label} ({x.shape[0]:,} × {x.shape[1]})",
                sides(x, threads),
                threads=threads,
                script=script_name(__file__),
                rounds=args.rounds,
                warmup=args.warmup,
                objective="Σ MI of the tree (nats)",
                rtol=1e-9,
                params={"shape": list(x.shape)},
                record=args.record,
            )
            print_comparison(result)


if __name__ == "__main__":
    main()
