"""Benchmark: ptheta's hmm against hmmlearn and pomegranate, Baum–Welch from the same start.

1,000 sequences × 100 steps from a known 8-state HMM, with (a) 20 symbols (hmmlearn's
``CategoricalHMM``) and (b) 4-D diagonal Gaussians (``GaussianHMM``); pomegranate's
``DenseHMM`` with ``Categorical`` / ``Normal(covariance_type="diag")`` states. Every
implementation starts from the same parameters (ptheta: ``fit(X, initial=...)``;
hmmlearn: ``init_params=""`` and the attributes set; pomegranate: the distributions and
matrices passed in, float64) and runs the same number of EM iterations without priors or
variance floors, with tolerances no change can meet (nobody stops early). Threads are
pinned equal (``torch.set_num_threads`` and ``threadpoolctl`` for numpy/BLAS), 1 and 2.
One warm-up fit each, then interleaved rounds (A B C D, A B C D, ...): the median fit time
and its spread (min–max). Next to each time, the final mean log-likelihood per sequence of
the fitted parameters, scored by the implementation itself, and its relative difference
from ptheta's: the same EM iterates give the same number (the work was the same).

pomegranate's ``DenseHMM`` has an explicit end state whose probabilities it learns (its
transition rows and end probability sum to one), a different model from ptheta's and
hmmlearn's. Here its end probabilities are frozen at one and their counts left out of the
transition update, and the loop is its own ``fit`` loop (``summarize`` over the data, then
``from_summaries``) without the tolerance check: the same model, pomegranate's E- and
M-steps.

    .venv-bench/bin/python bench/hmm_vs_peers.py [--rounds 3] [--iters 10] [--threads 1 2]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from rich.console import Console
from rich.table import Table
from threadpoolctl import threadpool_limits

import ptheta

console = Console(width=170)
N, T, K, L, F = 1000, 100, 8, 20, 4

try:
    from hmmlearn import hmm as hmmlearn_hmm
except ImportError:  # only in .venv-bench
    hmmlearn_hmm = None
try:
    import pomegranate.distributions as pg_dist
    import pomegranate.hmm as pg_hmm
except ImportError:
    pg_hmm = None


# --------------------------------------------------------------------------- data and start
def make_data(kind: str, n: int, t_len: int, seed: int = 0) -> tuple[np.ndarray, dict[str, Any]]:
    """Sequences (n, t_len) of symbols or (n, t_len, F) of Gaussians from a random sticky
    8-state HMM, and random starting parameters for EM (not the truth)."""
    rng = np.random.default_rng(seed)
    trans = 0.7 * np.eye(K) + 0.3 * rng.dirichlet(np.ones(K), size=K)
    states = np.empty((n, t_len), dtype=np.int64)
    states[:, 0] = rng.integers(0, K, size=n)
    for t in range(1, t_len):
        u = rng.random(n)[:, None]
        states[:, t] = (u > np.cumsum(trans[states[:, t - 1]], axis=1)).sum(axis=1)
    start = {"startprob": rng.dirichlet(np.ones(K)), "transmat": rng.dirichlet(np.ones(K), K)}
    if kind == "categorical":
        probs = rng.dirichlet(np.full(L, 0.3), size=K)  # (K, L)
        u = rng.random((n, t_len))[..., None]
        x = (u > np.cumsum(probs[states], axis=-1)).sum(axis=-1)
        start["emissionprob"] = rng.dirichlet(np.ones(L), size=K)[:, None]  # (K, F=1, L)
        return x, start
    means = rng.normal(scale=3.0, size=(K, F))
    x = means[states] + rng.normal(size=(n, t_len, F)) * rng.uniform(0.5, 1.5, size=(K, F))[states]
    start["means"] = x.reshape(-1, F)[rng.choice(n * t_len, K, replace=False)]
    start["covars"] = np.tile(x.reshape(-1, F).var(axis=0), (K, 1))
    return x, start


# --------------------------------------------------------------------------- the fitters
@dataclass
class Fitter:
    name: str
    fit: Callable[[np.ndarray, dict[str, Any], int], float]  # -> mean log-lik per sequence


def ptheta_fit(x: np.ndarray, start: dict[str, Any], iters: int) -> float:
    kind = "categorical" if "emissionprob" in start else "gaussian"
    model = ptheta.make("hmm", n_states=K, emission=kind, covariance_type="diag", alpha=0.0,
                        min_covar=0.0, max_iter=iters, tol=0.0)  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "did not converge": the iterations are fixed
        model.fit(x, initial=start)
    return model.score(x)


def hmmlearn_fit(implementation: str) -> Callable[[np.ndarray, dict[str, Any], int], float]:
    def fit(x: np.ndarray, start: dict[str, Any], iters: int) -> float:
        common = {"n_components": K, "n_iter": iters, "tol": -np.inf, "init_params": "",
                  "implementation": implementation}  # fmt: skip
        if "emissionprob" in start:
            model = hmmlearn_hmm.CategoricalHMM(n_features=L, **common)
            model.emissionprob_ = start["emissionprob"][:, 0]
            steps = x.reshape(-1, 1)
        else:  # ML: no prior on the covariances (hmmlearn's default adds 0.01 / count)
            model = hmmlearn_hmm.GaussianHMM(covariance_type="diag", covars_prior=0.0, **common)
            model.means_, model.covars_ = start["means"], start["covars"]
            steps = x.reshape(-1, F)
        model.startprob_, model.transmat_ = start["startprob"], start["transmat"]
        lengths = [x.shape[1]] * len(x)
        model.fit(steps, lengths)
        return model.score(steps, lengths) / len(x)

    return fit


def pomegranate_fit(x: np.ndarray, start: dict[str, Any], iters: int) -> float:
    if "emissionprob" in start:
        # torch.tensor copies: pomegranate updates its parameters in place
        dists = [pg_dist.Categorical(torch.tensor(p)) for p in start["emissionprob"]]
        data = torch.as_tensor(x[..., None])
    else:
        dists = [
            pg_dist.Normal(torch.tensor(m), torch.tensor(c), covariance_type="diag")
            for m, c in zip(start["means"], start["covars"], strict=True)
        ]
        data = torch.as_tensor(x)
    model = pg_hmm.DenseHMM(
        dists,
        edges=torch.tensor(start["transmat"]),
        starts=torch.tensor(start["startprob"]),
        ends=torch.ones(K, dtype=torch.float64),
        max_iter=iters,
    ).double()  # its bookkeeping parameters are float32, which sets the model's dtype
    model.ends.frozen = True  # no end state: p(end | s_T) = 1, as in ptheta and hmmlearn
    for _ in range(iters):  # DenseHMM.fit's loop, minus the tolerance check
        model.summarize(data)
        model._xw_ends_sum.zero_()  # transition rows normalised without the end counts
        model.from_summaries()
    return float(model.log_probability(data).sum()) / len(x)


def fitters() -> list[Fitter]:
    out = [Fitter("ptheta hmm", ptheta_fit)]
    if hmmlearn_hmm is None:
        console.print("[yellow]hmmlearn is not installed: skipped (pip install hmmlearn)")
    else:
        out += [
            Fitter("hmmlearn (implementation='log', default)", hmmlearn_fit("log")),
            Fitter("hmmlearn (implementation='scaling')", hmmlearn_fit("scaling")),
        ]
    if pg_hmm is None:
        console.print("[yellow]pomegranate is not installed: skipped (pip install pomegranate)")
    else:
        out.append(Fitter("pomegranate DenseHMM (float64)", pomegranate_fit))
    return out


# --------------------------------------------------------------------------- measuring
def interleaved(
    runners: list[Fitter], x: np.ndarray, start: dict[str, Any], iters: int, rounds: int
) -> dict[str, tuple[list[float], float]]:
    """Times of ``rounds`` interleaved fits each (after one warm-up) and the final mean
    log-likelihood per sequence of each."""
    times: dict[str, list[float]] = {r.name: [] for r in runners}
    final: dict[str, float] = {}
    for r in runners:
        final[r.name] = r.fit(x, copy.deepcopy(start), iters)  # warm-up
    for _ in range(rounds):
        for r in runners:
            fresh = copy.deepcopy(start)  # no fitter can change another's start
            begin = time.perf_counter()
            ll = r.fit(x, fresh, iters)
            times[r.name].append(time.perf_counter() - begin)
            same = abs(ll - final[r.name]) <= 1e-9 * abs(final[r.name])
            assert same, f"{r.name}: another result than its warm-up"
    return {name: (times[name], final[name]) for name in times}


def pinned(threads: int) -> threadpool_limits:
    torch.set_num_threads(threads)
    return threadpool_limits(threads)


def versus_peers(iters: int, rounds: int, thread_counts: list[int]) -> None:
    runners = fitters()
    for kind, label in (("categorical", f"{L} symbols"), ("gaussian", f"{F}-D diagonal Gaussians")):
        x, start = make_data(kind, N, T)
        table = Table(
            title=f"{label}: {N} sequences × {T} steps, K={K}, {iters} EM iterations from the "
            f"same start; median fit time (min–max) of {rounds} interleaved rounds"
        )
        columns = (
            "implementation",
            "threads",
            "fit time (s)",
            "s / iteration",
            "slower than ptheta",
            "final log-lik / sequence",
            "rel. diff vs ptheta",
        )
        for col in columns:
            table.add_column(col, justify="left" if col == "implementation" else "right")
        for threads in thread_counts:
            with pinned(threads):
                results = interleaved(runners, x, start, iters, rounds)
            ours = statistics.median(results["ptheta hmm"][0])
            ours_ll = results["ptheta hmm"][1]
            for name, (times, ll) in results.items():
                med = statistics.median(times)
                table.add_row(
                    name,
                    str(threads),
                    f"{med:.3f} ({min(times):.3f}–{max(times):.3f})",
                    f"{med / iters:.4f}",
                    "—" if name == "ptheta hmm" else f"{med / ours:.1f}×",
                    f"{ll:.4f}",
                    "—" if name == "ptheta hmm" else f"{abs(ll - ours_ll) / abs(ours_ll):.1e}",
                )
        console.print(table)


def scaling(iters: int, rounds: int) -> None:
    table = Table(
        title=f"ptheta hmm scaling: {L} symbols, K={K}, {iters} EM iterations, 1 thread, "
        f"median of {rounds}"
    )
    for col in ("sequences N", "steps T", "steps N·T", "fit time (s)", "µs per step·iteration"):
        table.add_column(col, justify="right")
    sizes = [(250, T), (1000, T), (4000, T), (N, 25), (N, 400)]
    with pinned(1):
        for n, t_len in sizes:
            x, start = make_data("categorical", n, t_len)
            ptheta_fit(x, start, 1)  # warm-up
            times = []
            for _ in range(rounds):
                begin = time.perf_counter()
                ptheta_fit(x, start, iters)
                times.append(time.perf_counter() - begin)
            med = statistics.median(times)
            table.add_row(str(n), str(t_len), f"{n * t_len:,}", f"{med:.3f}",
                          f"{med / (n * t_len * iters) * 1e6:.3f}")  # fmt: skip
    console.print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--no-scaling", action="store_true")
    args = parser.parse_args()
    versus_peers(args.iters, args.rounds, args.threads)
    if not args.no_scaling:
        scaling(args.iters, args.rounds)


if __name__ == "__main__":
    main()
