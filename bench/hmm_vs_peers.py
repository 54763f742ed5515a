"""Benchmark: ptheta's hmm against hmmlearn and pomegranate, Baum–Welch from the same start.

300 sequences (1,000 with --full) × 100 steps from a known 8-state HMM, with (a) 20
symbols (hmmlearn's ``CategoricalHMM``) and (b) 4-D diagonal Gaussians (``GaussianHMM``);
pomegranate's ``DenseHMM`` with ``Categorical`` / ``Normal(covariance_type="diag")`` states. Every
implementation starts from the same parameters (ptheta: ``fit(X, initial=...)``;
hmmlearn: ``init_params=""`` and the attributes set; pomegranate: the distributions and
matrices passed in, float64) and runs the same number of EM iterations without priors or
variance floors, with tolerances no change can meet (nobody stops early). Timed with
bench/harness.py: threads pinned equal (torch and numpy/BLAS), 1 and 2; one warm-up fit
each, then interleaved rounds (A B C D, A B C D, ...): the median time and its spread.
Each timed run is the fit plus one scoring of the data by the implementation itself (the
final mean log-likelihood per sequence, printed next to the time with its relative
difference from ptheta's: the same EM iterates give the same number, the same work).

pomegranate's ``DenseHMM`` has an explicit end state whose probabilities it learns (its
transition rows and end probability sum to one), a different model from ptheta's and
hmmlearn's. Here its end probabilities are frozen at one and their counts left out of the
transition update, and the loop is its own ``fit`` loop (``summarize`` over the data, then
``from_summaries``) without the tolerance check: the same model, pomegranate's E- and
M-steps.

A ptheta-only scaling table (1 thread) follows (more sizes with --full).

    .venv-bench/bin/python bench/hmm_vs_peers.py [--full] [--rounds 3] [--iters 10] [--threads 1 2]
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
from harness import Side, compare, console, parser, pinned, print_comparison, script_name
from rich.table import Table

import ptheta

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
def versus_peers(args: argparse.Namespace) -> None:
    n = N if args.full else args.n
    for kind, label in (("categorical", f"{L} symbols"), ("gaussian", f"{F}-D diagonal Gaussians")):
        x, start = make_data(kind, n, T)
        # a fresh copy of the start per run: pomegranate updates its parameters in place
        sides = [
            Side(f.name, lambda f=f, x=x, s=start: f.fit(x, copy.deepcopy(s), args.iters))
            for f in fitters()
        ]
        for threads in args.threads:
            result = compare(
                f"hmm K={K}, {label}, {n:,} seq × {T} steps, {args.iters} EM iters",
                sides,
                threads=threads,
                script=script_name(__file__),
                rounds=args.rounds,
                warmup=args.warmup,
                objective="final log-lik / sequence",
                rtol=1e-6,
                params={"N": n, "T": T, "K": K, "iters": args.iters, "kind": kind},
                record=args.record,
            )
            print_comparison(result)


def scaling(iters: int, rounds: int, full: bool) -> None:
    table = Table(
        title=f"ptheta hmm scaling: {L} symbols, K={K}, {iters} EM iterations, 1 thread, "
        f"median of {rounds}"
    )
    for col in ("sequences N", "steps T", "steps N·T", "fit time (s)", "µs per step·iteration"):
        table.add_column(col, justify="right")
    sizes = [(250, T), (1000, T), (4000, T), (N, 25), (N, 400)] if full else [(250, T), (1000, T)]
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
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--iters", type=int, default=10, help="EM iterations (default 10)")
    p.add_argument("--n", type=int, default=300, help=f"sequences (--full: {N})")
    p.add_argument("--no-scaling", action="store_true")
    args = p.parse_args()
    versus_peers(args)
    if not args.no_scaling:
        scaling(args.iters, args.rounds, args.full)


if __name__ == "__main__":
    main()
