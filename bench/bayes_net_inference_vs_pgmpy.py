"""Benchmark: ptheta's bayesian-network exact queries against pgmpy's VariableElimination.

Networks: ptheta's hill-climbing fit (BIC, tabu 10, ≤ 4 parents) of rows sampled from the
known random networks of bench/bayes_net_vs_pgmpy.py — 20 variables (10 000 rows) and 50
variables (20 000 rows), binary and ternary. pgmpy's `DiscreteBayesianNetwork` is built
from ptheta's fitted tables: one `TabularCPD` per variable from `cpts()[j]`, of shape
(*cards[parents_[j]], cards[j]), with the evidence in `parents_[j]` order (the first
parent most significant in both libraries), so both answer from the same distribution.

Queries: P(A | evidence) for a random variable A and 2–5 other random variables observed
at their values in a random training row (so the evidence has positive probability).
Both sides get the same queries, each answered from scratch: ptheta
`model.query(A, evidence={...})` (a pandas DataFrame), pgmpy
`VariableElimination(model).query([A], evidence={...})` (a DiscreteFactor; the inference
object is built once, outside the timer; its default elimination order and pruning). The
timer holds each library's answer in its own form; reading the probabilities out of it
and checking the levels come after. The answers must be equal: the largest absolute
difference over every query and level is printed (< 1e-9).

ptheta's batched path: `score_samples` of rows with A and the evidence set and every other
cell NaN is the exact log P(A = a, evidence); all queries' rows (one per level of A) go in
one call, grouped internally by pattern of missing cells (one elimination per pattern,
vectorised over the rows that share it), and P(A | evidence) is their softmax over a.
"one pattern": 200 queries of one A and one evidence set (4 variables) at the values of
200 training rows — the case batching is for (one elimination for all of them).

Timing: one thread; a warm-up pass, then interleaved rounds (per query: ptheta, pgmpy, in
turn); per query the median over rounds, then the median over queries; the batched call
is timed once per round, divided by the number of queries. The load average is printed
before and after (the machine is shared: timings are noisy). One JSON line per workload
goes to bench/results/bayes_net_inference_vs_pgmpy.jsonl (bench/summary.py reads it; the
batched path is recorded under "batched", not as a peer).

    .venv-bench/bin/python bench/bayes_net_inference_vs_pgmpy.py [--quick] [--rounds 3]
"""

from __future__ import annotations

import datetime as dt
import statistics
import sys
import time
import warnings
from typing import Any

import numpy as np
from bayes_net_vs_pgmpy import SEARCH, as_table, random_network
from harness import (
    append_record,
    console,
    load_average,
    machine,
    parser,
    pinned,
    script_name,
    spread,
)
from rich.table import Table
from scipy.special import logsumexp

import ptheta

warnings.filterwarnings("ignore")  # pgmpy's deprecation notices
from pgmpy.factors.discrete import TabularCPD  # noqa: E402
from pgmpy.inference import VariableElimination  # noqa: E402
from pgmpy.models import DiscreteBayesianNetwork  # noqa: E402

Query = tuple[int, dict[int, int]]  # (the variable asked, {variable: level})


def to_pgmpy(model: Any) -> DiscreteBayesianNetwork:
    """pgmpy's network with ptheta's fitted structure and tables."""
    names, cards = model.columns_, [int(c) for c in model.cards_]
    net = DiscreteBayesianNetwork()
    net.add_nodes_from(names)
    net.add_edges_from((names[p], names[c]) for p, c in model.edges_)
    for j, (table, parents) in enumerate(zip(model.cpts(), model.parents_, strict=True)):
        if table.shape != (*(cards[p] for p in parents), cards[j]):
            raise AssertionError(f"cpts()[{j}] has shape {table.shape}, not parents × levels")
        net.add_cpds(
            TabularCPD(
                names[j],
                cards[j],
                table.reshape(-1, cards[j]).T,  # columns: parent configurations, in order
                evidence=[names[p] for p in parents] or None,
                evidence_card=[cards[p] for p in parents] or None,
            )
        )
    net.check_model()
    return net


def random_queries(x: np.ndarray, n: int, seed: int) -> list[Query]:
    """``n`` queries P(A | 2–5 others at the values of a random row of ``x``)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        a, *given = rng.choice(x.shape[1], size=1 + int(rng.integers(2, 6)), replace=False)
        row = x[rng.integers(len(x))]
        out.append((int(a), {int(v): int(row[v]) for v in given}))
    return out


def one_pattern(x: np.ndarray, n: int, seed: int) -> list[Query]:
    """``n`` queries of one variable and one evidence set of 4, at ``n`` rows' values."""
    rng = np.random.default_rng(seed)
    a, *given = (int(v) for v in rng.choice(x.shape[1], size=5, replace=False))
    rows = x[rng.choice(len(x), size=n, replace=False)]
    return [(a, {v: int(row[v]) for v in given}) for row in rows]


def ask_ptheta(model: Any, query: Query) -> Any:
    """ptheta's answer as it gives it (timed): a DataFrame of levels and probabilities."""
    a, evidence = query
    names = model.columns_
    return model.query(names[a], evidence={names[v]: str(k) for v, k in evidence.items()})


def ptheta_probabilities(model: Any, query: Query, table: Any) -> np.ndarray:
    """The probabilities of ptheta's answer, its rows checked to be A's levels in order
    (outside the timer, like pgmpy's)."""
    name = model.columns_[query[0]]
    levels = [str(k) for k in range(int(model.cards_[query[0]]))]
    if table[name].tolist() != levels:
        raise AssertionError(f"query rows {table[name].tolist()} are not levels {levels}")
    return table["probability"].to_numpy()


def ask_pgmpy(infer: VariableElimination, names: list[str], query: Query) -> Any:
    """pgmpy's answer as it gives it (timed): a DiscreteFactor."""
    a, evidence = query
    return infer.query(
        [names[a]], evidence={names[v]: k for v, k in evidence.items()}, show_progress=False
    )


def pgmpy_probabilities(factor: Any) -> np.ndarray:
    return np.asarray(factor.values, dtype=np.float64)


def batched_rows(model: Any, queries: list[Query]) -> tuple[np.ndarray, np.ndarray]:
    """One row per (query, level of A): A at the level, the evidence, NaN elsewhere; and
    each row's query index."""
    rows, owner = [], []
    for i, (a, evidence) in enumerate(queries):
        for level in range(int(model.cards_[a])):
            row = np.full(len(model.cards_), np.nan)
            row[list(evidence)] = list(evidence.values())
            row[a] = level
            rows.append(row)
            owner.append(i)
    return np.array(rows), np.array(owner)


def ask_batched(model: Any, rows: np.ndarray, owner: np.ndarray) -> list[np.ndarray]:
    """Every query's P(A | evidence) from one ``score_samples`` call."""
    log_joint = model.score_samples(rows)
    cuts = np.flatnonzero(np.diff(owner)) + 1
    return [np.exp(part - logsumexp(part)) for part in np.split(log_joint, cuts)]


def run(label: str, model: Any, queries: list[Query], rounds: int, warmup: int) -> dict[str, Any]:
    """Time both sides on ``queries`` and check their answers; the result record."""
    names = list(model.columns_)
    infer = VariableElimination(to_pgmpy(model))
    rows, owner = batched_rows(model, queries)
    load_before = load_average()
    started = time.perf_counter()
    n = len(queries)
    t_ours = np.zeros((rounds, n))
    t_theirs = np.zeros((rounds, n))
    t_batch: list[float] = []
    with pinned(1):
        for q in queries[: warmup * 5]:
            ask_ptheta(model, q)
            ask_pgmpy(infer, names, q)
        if warmup:
            ask_batched(model, rows, owner)
        for r in range(rounds):
            ours, theirs = [], []
            for i, q in enumerate(queries):
                begin = time.perf_counter()
                table = ask_ptheta(model, q)
                t_ours[r, i] = time.perf_counter() - begin
                begin = time.perf_counter()
                factor = ask_pgmpy(infer, names, q)
                t_theirs[r, i] = time.perf_counter() - begin
                ours.append(ptheta_probabilities(model, q, table))
                theirs.append(pgmpy_probabilities(factor))
            begin = time.perf_counter()
            batched = ask_batched(model, rows, owner)
            t_batch.append((time.perf_counter() - begin) / n)
    load_after = load_average()
    diff = max(float(np.abs(a - b).max()) for a, b in zip(ours, theirs, strict=True))
    diff_batch = max(float(np.abs(a - b).max()) for a, b in zip(ours, batched, strict=True))
    per_query = {
        "ptheta query": np.median(t_ours, axis=0).tolist(),
        "pgmpy VariableElimination": np.median(t_theirs, axis=0).tolist(),
    }
    objective = {  # Σ over queries of P(A = level 0 | evidence): the same answers, same sum
        "ptheta query": float(sum(p[0] for p in ours)),
        "pgmpy VariableElimination": float(sum(p[0] for p in theirs)),
        "ptheta score_samples (batched)": float(sum(p[0] for p in batched)),
    }
    sides = [
        {"name": name, "times": times, **spread(times), "objective": objective[name],
         "objective_spread": 0.0, "info": {}}
        for name, times in per_query.items()
    ]  # fmt: skip
    ours, theirs = sides
    ours["info"] = {"answers": "DataFrame"}
    theirs["ratio"] = theirs["median"] / ours["median"]
    rel = abs(theirs["objective"] - ours["objective"]) / abs(ours["objective"])
    theirs["objective_rel_diff"] = rel
    theirs["objective_equal"] = bool(rel <= 1e-9)
    batch = {  # ptheta's own other path (not a peer): kept out of "sides"
        "name": "ptheta score_samples (batched)",
        "times": t_batch,
        **spread(t_batch),
        "objective": objective["ptheta score_samples (batched)"],
        "pgmpy_over_batched": theirs["median"] / statistics.median(t_batch),
    }
    evidence_sizes = [len(e) for _, e in queries]
    return {
        "script": script_name(__file__),
        "workload": f"bayes-net queries, {label}",
        "threads": 1,
        "rounds": rounds,
        "warmup": warmup,
        "objective": "Σ_queries P(A = level 0 | evidence)",
        "rtol": 1e-9,
        "params": {
            "queries": n,
            "variables": len(names),
            "edges": len(model.edges_),
            "evidence_sizes": [min(evidence_sizes), max(evidence_sizes)],
            "unit": "seconds per query (median over queries of the median over rounds)",
        },
        "sides": sides,
        "batched": batch,
        "max_abs_diff": diff,
        "max_abs_diff_batched": diff_batch,
        "load_before": load_before,
        "load_after": load_after,
        "wall_seconds": time.perf_counter() - started,
        "time": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "argv": sys.argv[1:],
    }


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="the 20-variable network, 30 queries")
    p.add_argument("--queries", type=int, default=200, help="random queries per network")
    args = p.parse_args()
    rounds = 1 if args.quick else args.rounds
    warmup = min(args.warmup, 1)
    n_queries = 30 if args.quick else args.queries
    sizes = [(20, 10_000)] if args.quick else [(20, 10_000), (50, 20_000)]
    table = Table(
        title=f"exact inference, P(A | 2–5 observed) — 1 thread, seconds per query: median over "
        f"queries of the median of {rounds} interleaved round(s)",
        title_justify="left",
    )
    for col in (
        "network (fitted)",
        "queries",
        "ptheta query",
        "pgmpy VE",
        "pgmpy / ptheta",
        "ptheta batched",
        "pgmpy / batched",
        "max |Δp| query",
        "max |Δp| batched",
        "load before → after",
    ):
        table.add_column(col, justify="left" if col.startswith("network") else "right")
    for d, n in sizes:
        net = random_network(d, seed=d)  # the networks of bayes_net_vs_pgmpy.py
        x = net.sample(n, seed=d + 1)
        model = ptheta.make("bayesian-network", **SEARCH).fit(as_table(x, net.cards))
        label = f"D={d}, {len(model.edges_)} edges"
        for kind, queries in (
            ("random", random_queries(x, n_queries, seed=d + 2)),
            ("one pattern", one_pattern(x, n_queries, seed=d + 3)),
        ):
            result = run(f"{label}, {kind}", model, queries, rounds, warmup)
            if args.record:
                append_record(script_name(__file__), result)
            ours, theirs = result["sides"]
            batch = result["batched"]
            lb, la = result["load_before"], result["load_after"]
            table.add_row(
                f"{label}, {kind}",
                str(len(queries)),
                f"{ours['median'] * 1e3:.2f} ms",
                f"{theirs['median'] * 1e3:.2f} ms",
                f"{theirs['ratio']:.1f}×",
                f"{batch['median'] * 1e3:.3f} ms",
                f"{batch['pgmpy_over_batched']:.0f}×",
                f"{result['max_abs_diff']:.1e}",
                f"{result['max_abs_diff_batched']:.1e}",
                f"{lb[0]:.2f} → {la[0]:.2f}",
            )
            for what in ("max_abs_diff", "max_abs_diff_batched"):
                if not result[what] < 1e-9:
                    console.print(f"[red]{label}, {kind}: {what} = {result[what]:.2e} ≥ 1e-9")
    table.caption = (
        "pgmpy / ptheta > 1: ptheta is faster; batched: one score_samples call for all the "
        "queries, divided by their number; max |Δp|: largest difference from ptheta's query"
    )
    console.print(table)


if __name__ == "__main__":
    main()
