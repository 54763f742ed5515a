"""The benchmark harness every peer comparison in bench/ uses (issue 20).

One rule for every comparison of ptheta with a peer library:

- both sides do the whole workload (the same data, the same start, the same number of
  iterations — or, where those cannot match, the work is described next to the result),
  each as a callable; the *final objective* of each side (a log-likelihood, a loss) is
  computed outside the timer and printed next to its time, so a reader sees it was the
  same work;
- threads are pinned to the same count for both sides: torch's intra-op threads
  (``torch.set_num_threads``) and every BLAS / OpenMP pool numpy or scikit-learn use
  (threadpoolctl); each comparison runs at 1 and at 2 threads by default;
- one warm-up run per side, then interleaved rounds A B A B … (3 by default), so load
  from other processes falls on both sides alike;
- the median time and its spread (min–max and the interquartile range) per side, and
  the ratio peer / ptheta of the medians (> 1: ptheta is faster);
- ``os.getloadavg()`` before and after, the machine and library versions;
- one JSON line per comparison appended to ``bench/results/<script>.jsonl`` (git-ignored:
  machine-specific); ``bench/summary.py`` reads the latest record of every comparison.

Also :func:`matmul_peak`: this machine's dense float32 matmul rate (GFLOP/s) at a thread
count, the physical limit the MLP families' training rate is compared with.

    from harness import Side, compare, print_comparison, parser
    result = compare("gmm K=10 ...", [Side("ptheta gmm", run_ours, objective=ll),
                                      Side("sklearn GaussianMixture", run_theirs, ll)],
                     threads=1, script="gmm_vs_sklearn")
    print_comparison(result)
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import math
import os
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from rich.table import Table
from threadpoolctl import threadpool_limits

RESULTS = Path(__file__).resolve().parent / "results"
console = Console(width=170)


@dataclass
class Side:
    """One side of a comparison.

    Arguments:
        name: label, e.g. ``"ptheta gmm"`` or ``"scikit-learn GaussianMixture"``.
        run: does the whole workload once, from scratch, and returns either the final
            objective (a float) or whatever ``objective`` needs (a fitted model).
        objective: the final objective of ``run``'s result, computed outside the timer;
            None: ``run`` returns the objective itself.
        info: anything printed and recorded with this side (parameter counts, settings).
    """

    name: str
    run: Callable[[], Any]
    objective: Callable[[Any], float] | None = None
    info: dict[str, Any] = field(default_factory=dict)


@contextlib.contextmanager
def pinned(threads: int) -> Iterator[None]:
    """torch's intra-op threads and every BLAS / OpenMP pool limited to ``threads``."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with threadpool_limits(limits=threads):
            yield
    finally:
        torch.set_num_threads(before)


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages (NaN where the system has none)."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return [math.nan] * 3


def spread(times: Sequence[float]) -> dict[str, float]:
    """Median, min, max and the quartiles of ``times`` (seconds)."""
    if len(times) > 1:
        q1, _, q3 = statistics.quantiles(times, n=4, method="inclusive")
    else:
        q1 = q3 = times[0]
    return {
        "median": statistics.median(times),
        "min": min(times),
        "max": max(times),
        "q1": q1,
        "q3": q3,
    }


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    return {
        "host": platform.node(),
        "cpu_count": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
    }


def _objective(side: Side, out: Any) -> float:
    value = side.objective(out) if side.objective is not None else out
    return float(value)


def compare(
    workload: str,
    sides: Sequence[Side],
    *,
    threads: int,
    script: str,
    rounds: int = 3,
    warmup: int = 1,
    objective: str = "objective",
    rtol: float | None = 1e-6,
    params: dict[str, Any] | None = None,
    record: bool = True,
) -> dict[str, Any]:
    """Time ``sides`` (ptheta first, then its peers) on one workload; the result record.

    Arguments:
        workload: what was done, e.g. ``"gmm K=10 full, 5 EM iterations, N=10000, D=64"``.
        sides: ptheta's :class:`Side` first, then one per peer.
        threads: thread count for every side (see :func:`pinned`).
        script: the bench script's name (the results file ``results/<script>.jsonl``).
        rounds: interleaved timed rounds after the warm-up.
        warmup: untimed runs per side before the rounds.
        objective: what the objective is, e.g. ``"mean log-lik (nats)"``.
        rtol: objectives within this relative tolerance of ptheta's count as equal (the
            same work); None: they are not expected to be equal (say why in ``params``).
        params: the workload's settings, recorded with the result.
        record: append the result to ``results/<script>.jsonl``.

    Returns:
        The record: per side the times, their median / min / max / quartiles and the final
        objective (the last round's; ``objective_spread`` is the range over the rounds),
        the ratio peer / ptheta of the medians per peer, whether the objectives agree, the
        load averages before and after, and the machine.
    """
    if len(sides) < 2:
        raise ValueError("compare needs ptheta's side and at least one peer")
    load_before = load_average()
    times: dict[str, list[float]] = {s.name: [] for s in sides}
    cpu: dict[str, list[float]] = {s.name: [] for s in sides}  # process CPU seconds
    objectives: dict[str, list[float]] = {s.name: [] for s in sides}
    started = time.perf_counter()
    with pinned(threads), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # peers' convergence / deprecation notices
        for side in sides:
            for _ in range(warmup):
                side.run()
        for _ in range(rounds):
            for side in sides:
                begin, begin_cpu = time.perf_counter(), time.process_time()
                out = side.run()
                times[side.name].append(time.perf_counter() - begin)
                cpu[side.name].append(time.process_time() - begin_cpu)
                objectives[side.name].append(_objective(side, out))
    load_after = load_average()
    ours = sides[0].name
    ours_median = statistics.median(times[ours])
    ours_cpu = statistics.median(cpu[ours])
    ours_obj = objectives[ours][-1]
    record_sides = []
    for side in sides:
        obj = objectives[side.name][-1]
        rel = abs(obj - ours_obj) / max(abs(ours_obj), 1e-300)
        entry: dict[str, Any] = {
            "name": side.name,
            "times": times[side.name],
            **spread(times[side.name]),
            "cpu_times": cpu[side.name],
            "cpu_median": statistics.median(cpu[side.name]),
            "objective": obj,
            "objective_spread": max(objectives[side.name]) - min(objectives[side.name]),
            "info": side.info,
        }
        if side.name != ours:
            entry["ratio"] = entry["median"] / ours_median
            # CPU time is what a loaded machine dilutes least (at the same thread count)
            entry["cpu_ratio"] = entry["cpu_median"] / max(ours_cpu, 1e-12)
            entry["objective_rel_diff"] = rel
            entry["objective_equal"] = None if rtol is None else bool(rel <= rtol)
        record_sides.append(entry)
    result = {
        "script": script,
        "workload": workload,
        "threads": threads,
        "rounds": rounds,
        "warmup": warmup,
        "objective": objective,
        "rtol": rtol,
        "params": params or {},
        "sides": record_sides,
        "load_before": load_before,
        "load_after": load_after,
        "wall_seconds": time.perf_counter() - started,
        "time": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "argv": sys.argv[1:],
    }
    if record:
        append_record(script, result)
    return result


def append_record(script: str, result: dict[str, Any]) -> Path:
    """Append ``result`` as one JSON line to ``results/<script>.jsonl``; its path."""
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{script}.jsonl"
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps(result, default=_jsonable) + "\n")
    return path


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def _seconds(s: float) -> str:
    return f"{s:.4f}" if s < 1 else f"{s:.3f}" if s < 100 else f"{s:.1f}"


def _objective_text(value: float) -> str:
    return f"{value:.6g}" if math.isfinite(value) else str(value)


def print_comparison(result: dict[str, Any], title: str | None = None) -> None:
    """A table of one comparison: per side the median time, its spread, the ratio to
    ptheta, the final objective and its relative difference from ptheta's."""
    table = Table(
        title=title
        or f"{result['workload']} — {result['threads']} thread(s), median of "
        f"{result['rounds']} interleaved rounds after {result['warmup']} warm-up",
        title_justify="left",
    )
    for col in (
        "implementation",
        "median (s)",
        "min–max (s)",
        "IQR (s)",
        "peer / ptheta",
        "CPU s (ratio)",
        result["objective"],
        "rel. diff vs ptheta",
        "info",
    ):
        table.add_column(col, justify="left" if col in ("implementation", "info") else "right")
    for side in result["sides"]:
        ratio = side.get("ratio")
        equal = side.get("objective_equal")
        diff = "—"
        if "objective_rel_diff" in side:
            diff = f"{side['objective_rel_diff']:.1e}"
            diff += "" if equal is None else (" (equal)" if equal else " [red](differs)[/red]")
        table.add_row(
            side["name"],
            _seconds(side["median"]),
            f"{_seconds(side['min'])}–{_seconds(side['max'])}",
            f"{_seconds(side['q1'])}–{_seconds(side['q3'])}",
            "—" if ratio is None else f"{ratio:.2f}×",
            _seconds(side["cpu_median"])
            + ("" if side.get("cpu_ratio") is None else f" ({side['cpu_ratio']:.2f}×)"),
            _objective_text(side["objective"]),
            diff,
            ", ".join(f"{k}={v}" for k, v in side["info"].items()),
        )
    lb, la = result["load_before"], result["load_after"]
    table.caption = (
        f"load average before {lb[0]:.2f} / {lb[1]:.2f} / {lb[2]:.2f}, after "
        f"{la[0]:.2f} / {la[1]:.2f} / {la[2]:.2f} on {result['machine']['cpu_count']} CPUs; "
        "peer / ptheta > 1: ptheta is faster"
    )
    console.print(table)


def training_side(
    name: str,
    make: Callable[[], tuple[Callable[[torch.Tensor], torch.Tensor], list[torch.nn.Parameter]]],
    batches: Sequence[torch.Tensor],
    x: torch.Tensor,
    lr: float = 1e-4,
    fused: bool = True,
) -> Side:
    """A side that trains a fresh network for a fixed number of AdamW steps.

    ``make()`` builds the network from a fixed seed and returns its per-example loss
    function and its parameters; one run takes one AdamW step (learning rate ``lr``) per
    batch of ``batches`` (the same batches for every side); ``fused``: the one-kernel
    AdamW that ptheta's Trainer uses, for both sides alike; the objective is the trained
    network's mean loss on all of ``x``, computed outside the timer. The parameter count
    is recorded in ``info``.
    """

    def run() -> Callable[[torch.Tensor], torch.Tensor]:
        loss, params = make()
        opt = torch.optim.AdamW(params, lr=lr, fused=fused)
        for b in batches:
            value = loss(b).mean()
            opt.zero_grad(set_to_none=True)
            value.backward()
            opt.step()
        return loss

    def objective(loss: Callable[[torch.Tensor], torch.Tensor]) -> float:
        with torch.no_grad():
            return float(loss(x).mean())

    n_params = sum(p.numel() for p in make()[1])
    return Side(name, run, objective=objective, info={"params": f"{n_params:,}"})


def step_times(
    nets: dict[Any, tuple[torch.nn.Module, torch.Tensor]], rounds: int, lr: float = 1e-3
) -> dict[Any, list[float]]:
    """Seconds per Adam training step (loss ``net.loss(x).mean()``) of each network on its
    batch: one untimed warm-up step each, then ``rounds`` interleaved rounds, so a burst of
    load hits every configuration alike. Keys are the caller's."""
    steps = {}
    for key, (net, x) in nets.items():
        opt = torch.optim.Adam(net.parameters(), lr=lr)

        def step(net=net, opt=opt, x=x) -> None:
            opt.zero_grad()
            net.loss(x).mean().backward()
            opt.step()

        step()  # warm-up
        steps[key] = step
    times: dict[Any, list[float]] = {key: [] for key in steps}
    for _ in range(rounds):
        for key, step in steps.items():
            start = time.perf_counter()
            step()
            times[key].append(time.perf_counter() - start)
    return times


# --------------------------------------------------------------------------- physical limit
_PEAKS: dict[int, dict[str, Any]] = {}


def matmul_peak(threads: int, sizes: Sequence[int] = (512, 1024, 2048), repeats: int = 5) -> dict:
    """This machine's dense float32 matmul rate at ``threads`` threads.

    Times ``torch.mm`` of n × n float32 matrices (2 n³ FLOPs) for each n in ``sizes``, best
    of ``repeats`` after a warm-up (the best run: interference only ever slows one down),
    and returns ``{"gflops": the highest rate, "by_size": {n: GFLOP/s}, "threads": ...}``.
    Cached per thread count for the process.
    """
    if threads in _PEAKS:
        return _PEAKS[threads]
    g = torch.Generator().manual_seed(0)
    by_size: dict[int, float] = {}
    with pinned(threads), torch.no_grad():
        for n in sizes:
            a = torch.randn(n, n, generator=g)
            b = torch.randn(n, n, generator=g)
            out = torch.empty(n, n)
            torch.mm(a, b, out=out)  # warm-up
            best = math.inf
            for _ in range(repeats):
                begin = time.perf_counter()
                torch.mm(a, b, out=out)
                best = min(best, time.perf_counter() - begin)
            by_size[n] = 2 * n**3 / best / 1e9
    _PEAKS[threads] = {
        "gflops": max(by_size.values()),
        "by_size": by_size,
        "threads": threads,
        "load": load_average(),
    }
    return _PEAKS[threads]


# --------------------------------------------------------------------------- command lines
def parser(description: str) -> argparse.ArgumentParser:
    """The options every peer script shares: --rounds, --warmup, --threads, --full,
    --no-record."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--rounds", type=int, default=3, help="interleaved timed rounds (default 3)")
    p.add_argument("--warmup", type=int, default=1, help="untimed runs per side first")
    p.add_argument(
        "--threads", type=int, nargs="+", default=[1, 2], help="thread counts (default 1 2)"
    )
    p.add_argument("--full", action="store_true", help="the big sizes (slow)")
    p.add_argument(
        "--no-record", dest="record", action="store_false", help="do not append to results/"
    )
    return p


def script_name(file: str) -> str:
    """``bench/gmm_vs_sklearn.py`` → ``"gmm_vs_sklearn"`` (the results file's name)."""
    return Path(file).stem
