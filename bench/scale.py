"""Benchmark: fit time and peak memory against N, in memory and streamed (issue 18).

Every measurement runs in a process of its own, so its peak resident memory is its own:
``resource.getrusage(RUSAGE_SELF).ru_maxrss`` of that process (every resident page, a
memory-mapped file's pages too), next to the peak of its *anonymous* memory (resident
minus file-backed pages, sampled from /proc/self/statm every 5 ms: what the process
allocated, as opposed to pages of a file that the kernel may drop at any time). The
processes are forked, one per measurement, from a fresh interpreter that has imported
torch, scikit-learn and ptheta and computed nothing (so each starts from the same "before
data" memory and none pays 3 s of imports); ``--exec`` starts a new interpreter for each
instead. Each first fits the first 1,000 rows once, untimed (torch's thread pools, lazy
imports), then fits up to ``--repeats`` times (while under 2 s in all) and keeps the
fastest.

The data are written once to a temporary folder as .npy and each fit starts from the
file: "memory" reads it whole (``np.load``) and fits a `Split` of it, "stream" opens it as
a memory-mapped :class:`~ptheta.data.stream.NpySource` with its spec and fits that (a
family without the ``streams`` capability then reads it whole: the table says so). Time
is from the file to the fitted model; the mean log-likelihood of the first 20,000 rows is
computed outside the timer, so the two modes can be seen to fit the same model.

Parts (``--only`` picks some; all but ``big`` by default):

- ``sweep``: independent, naive-bayes (4 classes), chow-liu and made (1 epoch, hidden 64)
  on binary data N × 64 (a hidden class and a chain along the columns), gmm (K=10 full
  covariance, 5 EM iterations, tol 0) and gmm with mini-batch EM (``GMM_MINIBATCH``) on
  N × 16 continuous data from a 10-component mixture; N = 1k … 1M (``--quick``: 10k, 50k,
  200k). The exponent a of time ∝ Nᵃ is a least-squares line on log–log through the
  points with N ≥ 10,000 (below that, fixed costs dominate).
- ``wide``: chow-liu on 60,000 × 784 binary (the size of binarised MNIST, synthetic).
- ``sklearn``: gmm full-batch against scikit-learn's GaussianMixture at every N of the
  sweep: bench/gmm_vs_sklearn.py's two sides (K=10, 5 iterations, tol 0, reg_covar 1e-6,
  the same k-means++ start), the data already in memory, the fit timed alone, each side
  in its own process; final mean log-likelihoods side by side (equal: the same work).
- ``torchrun``: ``ptheta fit chow-liu`` on the 60,000 × 784 file (``--quick``: the
  sweep's largest N × 64 file) in one process against ``python -m torch.distributed.run
  --standalone --nproc_per_node 2`` (wall time, and the fit time the run directory
  records: the command also imports, scores the splits and draws its pictures, on rank 0).
- ``dtype``: made (hidden [256, 256], 1 epoch) on CPU in float32 against bfloat16, and
  float32 through ``torch.compile`` (the second of 2 epochs: the first compiles),
  training examples per second.
- ``big`` (with ``--big``): a 2 GB memory-mapped file (2,740,000 × 784 binary) fitted
  streamed by chow-liu and naive-bayes; the target is a peak RSS below half the file's
  size. Skipped when the disk has less than 2.5 × the file's size free.

Targets (printed with ✓/✗): classical fits linear in N (a ≤ 1.2); memory flat when
streamed (the streamed peak RSS grows from the smallest to the largest N by at most 4
batches of ~32 MB + 16 MB, whatever the data's size); chow-liu on 60,000 × 784 in under
10 s; gmm full-batch at least 2× faster than scikit-learn at every N.

Threads: every process is pinned to ``--threads`` (torch and the BLAS / OpenMP pools); the
2-process torchrun run uses that many per process. Timings on a shared machine are noisy.

    .venv-bench/bin/python bench/scale.py [--quick] [--threads 1] [--only sweep,wide]
                                          [--families gmm,chow-liu] [--big] [--json out.json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from gmm_vs_sklearn import ITERS, REG, SEED, K  # bench/ is this script's folder
from rich.console import Console

console = Console(width=170)
GRID = (1_000, 10_000, 100_000, 1_000_000)
GRID_QUICK = (10_000, 50_000, 200_000)
D_BINARY, D_GAUSS, N_CLASSES = 64, 16, 4
WIDE = (60_000, 784)
BIG_COLUMNS, BIG_BYTES = 784, 2_148_000_000  # 2,740,000 rows of 784 uint8: 2.15 GB
SCORE_ROWS = 20_000
WARMUP_ROWS = 1_000
# a measurement repeats its fit (``--repeats``, keeping the fastest) until this many seconds
REPEAT_SECONDS = 2.0
# gmm as bench/gmm_vs_sklearn.py runs it (K, iterations, tol 0, reg_covar, seed)
GMM = {
    "n_components": K,
    "covariance_type": "full",
    "max_iter": ITERS,
    "tol": 0.0,
    "reg_covar": REG,
    "random_state": SEED,
    "dtype": "float64",
}
# mini-batch EM: the hyper-parameters that switch the gmm to it
GMM_MINIBATCH = {"em": "minibatch"}
NEURAL = {
    "epochs": 1,
    "batch_size": 256,
    "validation_fraction": 0.0,
    "patience": None,
    "device": "cpu",
    "dtype": "float32",
    "random_state": 0,
}
# name in the tables -> (registry name, hyper-parameters, data: "binary" or "gauss")
SWEEP: dict[str, tuple[str, dict[str, Any], str]] = {
    "independent": ("independent", {}, "binary"),
    "naive-bayes": ("naive-bayes", {}, "binary"),
    "chow-liu": ("chow-liu", {}, "binary"),
    "gmm": ("gmm", GMM, "gauss"),
    "gmm-minibatch": ("gmm", {**GMM, **GMM_MINIBATCH}, "gauss"),
    "made": ("made", {"hidden": [64], **NEURAL}, "binary"),
}
CLASSICAL = ("independent", "naive-bayes", "chow-liu", "gmm", "gmm-minibatch")
FLAT_BATCHES = 4
# the 2 GB file's target: a streamed fit's peak RSS below this share of the file's size
BIG_SHARE = 0.5
# rows of the float32 / bfloat16 throughput comparison
DTYPE_N, DTYPE_N_QUICK = 100_000, 20_000
PARTS = ("sweep", "wide", "sklearn", "torchrun", "dtype", "big")
MARKER = "SCALE-RESULT "


# --------------------------------------------------------------------- data
def binary_rows(n: int, d: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """n binary rows (uint8, (n, d)) and their class (int64, (n,)): each column copies the
    previous one with probability 0.7, else draws from the class's own probabilities."""
    rng = np.random.default_rng(seed)
    prototypes = np.random.default_rng(12345).uniform(0.1, 0.9, size=(N_CLASSES, d))
    y = rng.integers(0, N_CLASSES, size=n)
    x = np.empty((n, d), dtype=np.uint8)
    p = prototypes[y]  # (n, d)
    x[:, 0] = rng.random(n) < p[:, 0]
    for j in range(1, d):
        fresh = rng.random(n) < p[:, j]
        x[:, j] = np.where(rng.random(n) < 0.7, x[:, j - 1], fresh)
    return x, y


def gauss_rows(n: int, d: int, seed: int) -> np.ndarray:
    """n rows (float64, (n, d)) of one fixed random K-component Gaussian mixture."""
    mix = np.random.default_rng(0)
    means = mix.normal(scale=3.0, size=(K, d))
    factors = mix.normal(size=(K, d, d)) / np.sqrt(d)
    rng = np.random.default_rng(seed)
    z = rng.integers(0, K, size=n)
    out = means[z] + 0.1 * rng.normal(size=(n, d))
    noise = rng.normal(size=(n, d))
    for k in range(K):  # one component at a time: no (n, d, d) temporary
        rows = z == k
        out[rows] += noise[rows] @ factors[k].T
    return out


def write_prefixes(folder: Path, name: str, x: np.ndarray, grid: tuple[int, ...]) -> None:
    for n in grid:
        np.save(folder / f"{name}-{n}.npy", x[:n])


def write_big(path: Path, seed: int = 0) -> tuple[int, int]:
    """The 2 GB binary file, written in chunks (its labels next to it); its shape."""
    n = BIG_BYTES // BIG_COLUMNS
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(n, BIG_COLUMNS))
    labels = np.empty(n, dtype=np.int64)
    chunk = 200_000
    for i, start in enumerate(range(0, n, chunk)):
        stop = min(n, start + chunk)
        out[start:stop], labels[start:stop] = binary_rows(stop - start, BIG_COLUMNS, seed + i)
    out.flush()
    del out
    np.save(path.with_name(path.stem + "-y.npy"), labels)
    return n, BIG_COLUMNS


# --------------------------------------------------------------------- child
class AnonPeak:
    """The peak of resident anonymous memory (resident − file-backed pages), sampled."""

    def __init__(self, every: float = 0.005) -> None:
        self.peak, self.every, self._stop = 0, every, threading.Event()
        self._page = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        try:
            with open("/proc/self/statm") as f:
                _, resident, shared, *_ = (int(v) for v in f.read().split())
        except OSError:
            return
        self.peak = max(self.peak, (resident - shared) * self._page)

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self._sample()

    def __enter__(self) -> AnonPeak:
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()


def max_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def child(job: dict[str, Any]) -> dict[str, Any]:
    """One measurement (see ``job["task"]``), in this fresh process."""
    import torch

    warnings.simplefilter("ignore")  # EM with tol=0 never "converges": expected here
    torch.set_num_threads(job["threads"])
    task = job["task"]
    if task == "sklearn":
        return _child_sklearn(job)
    import ptheta
    from ptheta.data.spec import DataSpec, Split
    from ptheta.data.stream import NpySource
    from ptheta.errors import ParameterError, UnknownNameError

    try:
        model = ptheta.make(job["model"], **job["params"])
        model.check_params()
    except (ParameterError, UnknownNameError, TypeError) as e:
        return {"error": f"not available ({str(e).splitlines()[0]})"}
    spec = DataSpec.from_json(job["spec"])
    y_path = job.get("y")
    # one untimed fit of the first rows: torch's and the family's one-time set-up (thread
    # pools, lazy imports, kernels) would otherwise fall on the first timed fit
    head = np.load(job["x"], mmap_mode="r")[:WARMUP_ROWS]
    y_head = None if y_path is None else np.array(np.load(y_path, mmap_mode="r")[:WARMUP_ROWS])
    ptheta.make(job["model"], **job["params"]).fit(Split(np.array(head), y_head, spec))
    del head, y_head
    base = max_rss_mb()
    times = []
    with AnonPeak() as anon:
        for _ in range(job.get("repeats", 1)):
            model = ptheta.make(job["model"], **job["params"])
            start = time.perf_counter()
            y = np.load(y_path) if y_path else None
            if job["mode"] == "stream":
                data = NpySource(job["x"], y=y)
                data.spec = spec
            else:
                x = np.load(job["x"])
                data = Split(x, y, spec)
            model.fit(data)
            times.append(time.perf_counter() - start)
            del data
            x = None
            if sum(times) > REPEAT_SECONDS:  # repeats are for the fits of milliseconds
                break
    out = {
        "seconds": min(times),
        "peak_mb": max_rss_mb(),
        "base_mb": base,
        "anon_peak_mb": anon.peak / 2**20,
        "streams": bool(model.capabilities().streams),
        "file_mb": os.path.getsize(job["x"]) / 2**20,
    }
    rows = np.load(job["x"], mmap_mode="r")[:SCORE_ROWS]
    if task == "throughput":  # training examples per second of the (last) epoch
        history = model.history_
        seconds = history[-1]["seconds"] - (history[-2]["seconds"] if len(history) > 1 else 0)
        out["examples_per_s"] = len(np.load(job["x"], mmap_mode="r")) / seconds
    out["objective"] = float(model.score(np.asarray(rows)))
    return out


def _child_sklearn(job: dict[str, Any]) -> dict[str, Any]:
    """One side (``job["side"]``) of bench/gmm_vs_sklearn.py's comparison (the same EM from
    the same start), the data in memory, the fit timed alone."""
    from gmm_vs_sklearn import sides
    from threadpoolctl import threadpool_limits

    which = 0 if job["side"] == "ptheta" else 1
    x = np.load(job["x"])
    with threadpool_limits(limits=job["threads"]):
        sides(x[:WARMUP_ROWS])[which].run()  # untimed: one-time set-up
        side = sides(x)[which]
        times = []
        for _ in range(job.get("repeats", 1)):
            start = time.perf_counter()
            fitted = side.run()
            times.append(time.perf_counter() - start)
            if sum(times) > REPEAT_SECONDS:
                break
    return {"seconds": min(times), "peak_mb": max_rss_mb(), "objective": side.objective(fitted)}


class Zygote:
    """A fresh interpreter that imports torch, scikit-learn and ptheta once and then forks
    one child per measurement (``--exec``: a new interpreter per measurement instead).

    A forked child is a process of its own: its ``ru_maxrss`` starts at the zygote's
    resident size (the same for every child, the "before data" column) and counts its own
    peak; the zygote itself never computes, so no thread pool exists before a fork.
    """

    def __init__(self, threads: int) -> None:
        cmd = [sys.executable, str(Path(__file__).resolve()), "--zygote"]
        self.proc = subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=pinned_env(threads),
        )

    def run(self, job: dict[str, Any]) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(job) + "\n")
        self.proc.stdin.flush()
        for line in self.proc.stdout:  # a family may print; the answer is marked
            if line.startswith(MARKER):
                return json.loads(line[len(MARKER) :])
        return {"error": f"the zygote died (exit {self.proc.poll()})"}

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait(timeout=60)


def zygote() -> None:
    """Serve jobs from stdin: fork, measure in the child, answer one line per job."""
    import torch  # noqa: F401 - imported once here, before any fork

    import ptheta
    from ptheta.errors import RegistryError
    from ptheta.models import REGISTRY

    for name in {model for model, _, _ in SWEEP.values()}:
        with contextlib.suppress(RegistryError):  # the child that fits it reports it
            REGISTRY[name]  # the families' modules, imported outside every timer
    import gmm_vs_sklearn  # noqa: F401 - its helpers and scikit-learn's GaussianMixture

    del ptheta
    for line in sys.stdin:
        sys.stdout.flush()
        pid = os.fork()
        if pid == 0:  # the child: one measurement, then leave without cleaning up
            code = 0
            try:
                result = _safe_child(json.loads(line))
                sys.stdout.write(MARKER + json.dumps(result) + "\n")
                sys.stdout.flush()
            except BaseException:
                code = 1
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            print(MARKER + json.dumps({"error": f"child died ({status})"}), flush=True)


def _safe_child(job: dict[str, Any]) -> dict[str, Any]:
    """`child`, with an exception reported as the result's error."""
    start = time.perf_counter()
    try:
        out = child(job)
    except Exception as e:  # any failure is one line of the report
        text = str(e).strip().splitlines()
        out = {"error": f"failed: {type(e).__name__}: {text[0] if text else ''}"[:200]}
    out["wall"] = time.perf_counter() - start
    return out


RUNNER: list[Zygote] = []


def run_child(job: dict[str, Any], threads: int) -> dict[str, Any]:
    """Run ``job`` in a fresh process pinned to ``threads``: forked from the zygote, or
    (``--exec``) a new interpreter; its result, or an error."""
    job = {**job, "threads": threads}
    if RUNNER:
        return RUNNER[0].run(job)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(job)]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=pinned_env(threads))
    wall = time.perf_counter() - start
    for line in proc.stdout.splitlines():
        if line.startswith(MARKER):
            return {**json.loads(line[len(MARKER) :]), "wall": wall}
    tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
    return {"error": f"failed (exit {proc.returncode}): {tail[:160]}", "wall": wall}


def pinned_env(threads: int) -> dict[str, str]:
    env = dict(os.environ)
    for key in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[key] = str(threads)
    return env


# --------------------------------------------------------------------- parts
def spec_json(kind: str, d: int) -> dict[str, Any]:
    from ptheta.data.spec import DataSpec

    return DataSpec("binary" if kind == "binary" else "continuous", (d,)).to_json()


def fit_job(
    model: str,
    params: dict[str, Any],
    mode: str,
    x: Path,
    kind: str,
    d: int,
    y: Path | None = None,
    task: str = "fit",
) -> dict[str, Any]:
    return {
        "task": task,
        "model": model,
        "params": params,
        "mode": mode,
        "x": str(x),
        "spec": spec_json(kind, d),
        "y": None if y is None else str(y),
    }


def part_sweep(folder: Path, grid: tuple[int, ...], args: argparse.Namespace) -> dict[str, Any]:
    """Fit time and peak memory of every family of the sweep, in memory and streamed."""
    results: dict[tuple[str, str], dict[int, dict[str, Any]]] = {}
    for name in args.families:
        model, params, kind = SWEEP[name]
        d = D_BINARY if kind == "binary" else D_GAUSS
        for mode in ("memory", "stream"):
            cells = results.setdefault((name, mode), {})
            for n in grid:
                labels = folder / f"labels-{n}.npy" if name == "naive-bayes" else None
                x = folder / f"{kind}-{n}.npy"
                job = {**fit_job(model, params, mode, x, kind, d, labels), "repeats": args.repeats}
                cells[n] = measure(f"{name} {mode} N={n:,}", job, args)
                if cells[n].get("error", "").startswith("not available"):
                    break  # the same at every N
    slopes = {key: exponent(cells) for key, cells in results.items()}
    table = _table(
        "fit time (s, from the .npy file to the fitted model) against N; a: time ∝ Nᵃ; "
        "Δ objective: |mean log-lik streamed − in memory|, largest over N",
        ["family", "mode", *[f"N={n:,}" for n in grid], "a", "a fitted on", "Δ objective"],
    )
    for (name, mode), cells in results.items():
        a, span = slopes[(name, mode)]
        label = mode
        if mode == "stream" and not any(c.get("streams") for c in cells.values()):
            label = "stream (reads whole)"  # the family lacks the streams capability
        times = [_seconds(cells[n]) if n in cells else "—" for n in grid]
        diff = _objective_diff(results, name) if mode == "stream" else ""
        table.add_row(name, label, *times, _fmt(a, ".2f"), span, diff)
    console.print(table)
    table = _table(
        "peak RSS (MB: ru_maxrss, a memory-mapped file's resident pages included) / peak "
        "anonymous memory (MB, sampled) of each fit's process",
        ["family", "mode", "before data", *[f"N={n:,}" for n in grid]],
    )
    for (name, mode), cells in results.items():
        first = next(iter(cells.values()))
        row = [_memory(cells.get(n, {})) for n in grid]
        table.add_row(name, mode, _fmt(first.get("base_mb", math.nan), ".0f"), *row)
    console.print(table)
    for (name, mode), cells in results.items():
        for error in dict.fromkeys(c["error"] for c in cells.values() if "error" in c):
            console.print(f"[yellow]{name} ({mode}): {error}")
    return {
        "cells": {f"{k[0]}/{k[1]}": v for k, v in results.items()},
        "slopes": {f"{k[0]}/{k[1]}": v[0] for k, v in slopes.items()},
        "flat": flat_memory(results, grid),
    }


def exponent(points: dict[int, dict[str, Any]]) -> tuple[float, str]:
    """a of time ∝ Nᵃ (least squares on log–log, N ≥ 10,000 where there are 2 such N)."""
    ok = {n: c["seconds"] for n, c in points.items() if "seconds" in c}
    use = {n: t for n, t in ok.items() if n >= 10_000}
    if len(use) < 2:
        use = ok
    if len(use) < 2:
        return math.nan, ""
    ns = sorted(use)
    a = np.polyfit(np.log(ns), np.log([use[n] for n in ns]), 1)[0]
    return float(a), f"{ns[0]:,}–{ns[-1]:,}"


def flat_memory(
    results: dict[tuple[str, str], dict[int, dict[str, Any]]], grid: tuple[int, ...]
) -> dict[str, tuple[bool, str]]:
    """Per family: whether the streamed peak RSS stays flat, that is grows from the
    smallest to the largest N by at most `FLAT_BATCHES` batches + 16 MB (a batch as it is
    read, checked and worked on), where the in-memory peak grows with the data."""
    from ptheta.data import stream

    batch_mb = getattr(stream, "batch_bytes", lambda: stream.BATCH_BYTES)() / 2**20
    limit = 16 + FLAT_BATCHES * batch_mb
    out = {}
    lo, hi = grid[0], grid[-1]
    for name in dict.fromkeys(name for name, _ in results):
        mem, streamed = results.get((name, "memory"), {}), results.get((name, "stream"), {})
        try:
            grow = streamed[hi]["peak_mb"] - streamed[lo]["peak_mb"]
            anon = streamed[hi]["anon_peak_mb"] - streamed[lo]["anon_peak_mb"]
            grow_memory = mem[hi]["peak_mb"] - mem[lo]["peak_mb"]
        except KeyError:
            continue
        out[name] = (
            grow <= limit,
            f"peak RSS +{grow:.0f} MB streamed (anonymous +{anon:.0f} MB; the file "
            f"{streamed[hi]['file_mb']:.0f} MB) against +{grow_memory:.0f} MB in memory, "
            f"N={lo:,} → {hi:,} (limit +{limit:.0f} MB)",
        )
    return out


def part_wide(folder: Path, grid: tuple[int, ...], args: argparse.Namespace) -> dict[str, Any]:
    """chow-liu on 60,000 × 784 binary, in memory and streamed."""
    out = {}
    for mode in ("memory", "stream"):
        job = fit_job("chow-liu", {}, mode, folder / "wide.npy", "binary", WIDE[1])
        out[mode] = measure(f"chow-liu {WIDE[0]:,}×{WIDE[1]} {mode}", {**job, "repeats": 1}, args)
    table = _table(
        f"chow-liu on {WIDE[0]:,} × {WIDE[1]} binary", ["mode", "", "seconds", "peak RSS / anon MB"]
    )
    for mode, cell in out.items():
        table.add_row(mode, "", _seconds(cell), _memory(cell))
    console.print(table)
    return out


def part_sklearn(folder: Path, grid: tuple[int, ...], args: argparse.Namespace) -> dict[str, Any]:
    """gmm full-batch against scikit-learn's GaussianMixture at every N."""
    out = {}
    for n in grid:
        for side in ("ptheta", "sklearn"):
            job = {
                "task": "sklearn",
                "side": side,
                "x": str(folder / f"gauss-{n}.npy"),
                "repeats": args.repeats,
            }
            out[f"{n}/{side}"] = measure(f"gmm {side} N={n:,}", job, args)
    table = _table(
        f"gmm K={K} full covariance, {ITERS} EM iterations, tol 0, D={D_GAUSS}: ptheta against "
        "scikit-learn from the same start (the fit alone, data in memory)",
        [
            "N",
            "",
            "ptheta s",
            "sklearn s",
            "sklearn / ptheta",
            "mean log-lik ptheta",
            "scikit-learn",
        ],
    )
    for n in grid:
        a, b = out[f"{n}/ptheta"], out[f"{n}/sklearn"]
        ratio = b["seconds"] / a["seconds"] if "seconds" in a and "seconds" in b else math.nan
        table.add_row(
            f"{n:,}",
            "",
            _seconds(a),
            _seconds(b),
            _fmt(ratio, ".2f", "×"),
            _fmt(a.get("objective", math.nan), ".6f"),
            _fmt(b.get("objective", math.nan), ".6f"),
        )
    console.print(table)
    return out


def part_torchrun(folder: Path, grid: tuple[int, ...], args: argparse.Namespace) -> dict[str, Any]:
    """``ptheta fit chow-liu`` on the wide file (``--quick``: the largest N × 64 file of the
    sweep): one process, then two under torchrun."""
    from ptheta.runs.store import read_config

    data = folder / (f"binary-{grid[-1]}.npy" if args.quick else "wide.npy")
    shape = (grid[-1], D_BINARY) if args.quick else WIDE
    fit = ["-m", "ptheta", "fit", "chow-liu", "--data", str(data), "--quiet"]
    launch = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    out: dict[str, Any] = {}
    for procs, prefix in ((1, []), (2, launch)):
        run_dir = folder / f"run-{procs}"
        cmd = [sys.executable, *prefix, *fit, "--force", "--out", str(run_dir)]
        start = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, env=pinned_env(args.threads))
        wall = time.perf_counter() - start
        if proc.returncode:
            tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
            out[str(procs)] = {"error": f"failed (exit {proc.returncode}): {tail[:160]}"}
        else:
            extra = read_config(run_dir).get("extra", {})
            out[str(procs)] = {
                "wall": wall,
                "seconds": extra.get("fit_seconds"),
                "processes": extra.get("processes"),
            }
        say(f"ptheta fit chow-liu, {procs} process(es): {brief(out[str(procs)])}")
    table = _table(
        f"ptheta fit chow-liu --data ({shape[0]:,} × {shape[1]}, 80 % trains): one "
        "process against torchrun --nproc_per_node 2",
        ["processes", "", "wall s", "fit s (run directory)"],
    )
    for procs, cell in out.items():
        table.add_row(procs, "", _fmt(cell.get("wall", math.nan), ".2f"), _seconds(cell))
    console.print(table)
    one, two = out["1"], out["2"]
    if "wall" in one and "wall" in two:
        out["speedup_wall"] = one["wall"] / two["wall"]
        out["speedup_fit"] = one["seconds"] / two["seconds"]
        console.print(
            f"2 processes: wall time {out['speedup_wall']:.2f}× faster, fit "
            f"{out['speedup_fit']:.2f}× (on {os.cpu_count()} CPUs)"
        )
    return out


def part_dtype(folder: Path, grid: tuple[int, ...], args: argparse.Namespace) -> dict[str, Any]:
    """made's training throughput on the CPU in float32 and bfloat16."""
    n = DTYPE_N_QUICK if args.quick else DTYPE_N
    out: dict[str, Any] = {}
    variants = {"float32": {}, "bfloat16": {"dtype": "bfloat16"},
                "float32, compile=True": {"compile": True, "epochs": 2}}  # fmt: skip
    for dtype, changes in variants.items():
        # compiled: the second epoch's rate (the first pays for the compilation)
        params = {"hidden": [256, 256], **NEURAL, **changes}
        job = fit_job(
            "made",
            params,
            "memory",
            folder / f"binary-{n}.npy",
            "binary",
            D_BINARY,
            task="throughput",
        )
        out[dtype] = measure(f"made {dtype}", job, args)
    table = _table(
        f"made [256, 256], one epoch of {n:,} × {D_BINARY} binary on the CPU",
        ["dtype", "", "examples/s", "mean log-lik"],
    )
    for dtype, cell in out.items():
        rate = _fmt(cell["examples_per_s"], ",.0f") if "examples_per_s" in cell else _seconds(cell)
        table.add_row(dtype, "", rate, _fmt(cell.get("objective", math.nan), ".3f"))
    console.print(table)
    if all("examples_per_s" in c for c in out.values()):
        base = out["float32"]["examples_per_s"]
        out["ratio"] = out["bfloat16"]["examples_per_s"] / base
        out["compile_ratio"] = out["float32, compile=True"]["examples_per_s"] / base
        console.print(f"bfloat16 / float32 training throughput on the CPU: {out['ratio']:.2f}×")
        console.print(
            f"torch.compile / eager training throughput on the CPU (after compiling): "
            f"{out['compile_ratio']:.2f}×"
        )
    return out


def part_big(folder: Path, grid: tuple[int, ...], args: argparse.Namespace) -> dict[str, Any]:
    """chow-liu and naive-bayes streamed from a 2 GB memory-mapped file."""
    free = shutil.disk_usage(folder).free
    if free < 2.5 * BIG_BYTES:
        return {"skipped": f"{free / 2**30:.1f} GB free, {2.5 * BIG_BYTES / 2**30:.1f} needed"}
    path = folder / "big.npy"
    start = time.perf_counter()
    n, d = write_big(path)
    out: dict[str, Any] = {"file_mb": path.stat().st_size / 2**20, "shape": [n, d]}
    say(
        f"wrote {path.name}: {n:,} × {d}, {out['file_mb']:,.0f} MB, in "
        f"{time.perf_counter() - start:.0f} s"
    )
    try:
        for name in ("chow-liu", "naive-bayes"):
            labels = folder / "big-y.npy" if name == "naive-bayes" else None
            job = fit_job(name, {}, "stream", path, "binary", d, labels)
            out[name] = measure(f"{name} streamed from the 2 GB file", job, args)
    finally:
        path.unlink()
    table = _table(
        f"streamed from a memory-mapped {out['file_mb']:,.0f} MB file ({n:,} × {d})",
        ["family", "", "seconds", "peak RSS / anon MB", "peak RSS / file"],
    )
    for name in ("chow-liu", "naive-bayes"):
        cell = out[name]
        share = cell["peak_mb"] / out["file_mb"] if "peak_mb" in cell else math.nan
        table.add_row(name, "", _seconds(cell), _memory(cell), _fmt(100 * share, ".0f", " %"))
    console.print(table)
    return out


PART_RUNS = {
    "sweep": part_sweep,
    "wide": part_wide,
    "sklearn": part_sklearn,
    "torchrun": part_torchrun,
    "dtype": part_dtype,
    "big": part_big,
}


def write_data(folder: Path, grid: tuple[int, ...], parts: list[str], quick: bool) -> None:
    """The data files the parts read, each written once."""
    if {"sweep", "sklearn", "dtype"} & set(parts) or ("torchrun" in parts and quick):
        dtype_n = DTYPE_N_QUICK if quick else DTYPE_N
        x, y = binary_rows(max(grid[-1], dtype_n), D_BINARY, seed=1)
        write_prefixes(folder, "binary", x, (*grid, dtype_n))
        write_prefixes(folder, "labels", y, grid)
        del x, y
        write_prefixes(folder, "gauss", gauss_rows(grid[-1], D_GAUSS, seed=2), grid)
    if "wide" in parts or ("torchrun" in parts and not quick):
        np.save(folder / "wide.npy", binary_rows(*WIDE, seed=3)[0])


# --------------------------------------------------------------------- printing


def say(text: str) -> None:
    print(text, flush=True)


def measure(what: str, job: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    cell = run_child(job, args.threads)
    say(f"{what}: {brief(cell)}")
    return cell


def brief(cell: dict[str, Any]) -> str:
    if "error" in cell:
        return cell["error"]
    parts = [f"{cell['seconds']:.3f} s" if cell.get("seconds") is not None else "—"]
    if "peak_mb" in cell:
        parts.append(f"peak RSS {cell['peak_mb']:.0f} MB")
    if "anon_peak_mb" in cell:
        parts.append(f"anonymous {cell['anon_peak_mb']:.0f} MB")
    if "wall" in cell:
        parts.append(f"wall {cell['wall']:.1f} s")
    return ", ".join(parts)


def _table(title: str, columns: list[str]) -> Any:
    from rich.table import Table

    table = Table(title=title)
    for i, col in enumerate(columns):
        table.add_column(col, justify="left" if i < 2 else "right")
    return table


def _fmt(value: float, spec: str, unit: str = "") -> str:
    return "—" if value is None or value != value else f"{format(value, spec)}{unit}"


def _seconds(cell: dict[str, Any]) -> str:
    if cell.get("seconds") is not None:
        return f"{cell['seconds']:.3f}"
    error = cell.get("error", "—")
    return "n/a" if error.startswith("not available") else "error" if error != "—" else "—"


def _memory(cell: dict[str, Any]) -> str:
    if "peak_mb" not in cell:
        return "—"
    return f"{cell['peak_mb']:.0f} / {cell.get('anon_peak_mb', math.nan):.0f}"


def _objective_diff(results: dict[tuple[str, str], dict[int, dict[str, Any]]], name: str) -> str:
    """Largest |mean log-lik (stream) − (memory)| over N: the same fit either way?"""
    mem, streamed = results.get((name, "memory"), {}), results.get((name, "stream"), {})
    diffs = [
        abs(streamed[n]["objective"] - mem[n]["objective"])
        for n in mem
        if "objective" in mem[n] and "objective" in streamed.get(n, {})
    ]
    return f"{max(diffs):.1e}" if diffs else "—"


def targets(report: dict[str, Any], grid: tuple[int, ...]) -> list[tuple[bool | None, str]]:
    """Each target of issue 18 as (met? — None where not measured, what was measured)."""
    lines: list[tuple[bool | None, str]] = []
    sweep = report.get("sweep", {})
    for key, a in sweep.get("slopes", {}).items():
        if key.split("/")[0] in CLASSICAL:
            lines.append((None if a != a else a <= 1.2, f"{key} linear in N: a = {a:.2f} (≤ 1.2)"))
    for name, (ok, text) in sweep.get("flat", {}).items():
        if name in CLASSICAL:
            lines.append((ok, f"{name}: memory flat when streamed: {text}"))
    for mode, cell in report.get("wide", {}).items():
        s = cell.get("seconds")
        text = f"chow-liu on {WIDE[0]:,} × {WIDE[1]} ({mode}) under 10 s: {_seconds(cell)} s"
        lines.append((None if s is None else s < 10, text))
    vs = report.get("sklearn")
    for n in grid if vs else ():
        a, b = vs[f"{n}/ptheta"], vs[f"{n}/sklearn"]
        if "seconds" in a and "seconds" in b:
            r = b["seconds"] / a["seconds"]
            lines.append((r >= 2, f"gmm full-batch ≥ 2× scikit-learn at N={n:,}: {r:.2f}×"))
        else:
            lines.append((None, f"gmm against scikit-learn at N={n:,}: not measured"))
    big = report.get("big")
    if big and "skipped" in big:
        lines.append((None, f"the 2 GB memory-mapped file: skipped ({big['skipped']})"))
    elif big:
        for name in ("chow-liu", "naive-bayes"):
            cell = big[name]
            if "peak_mb" not in cell:
                lines.append((None, f"{name} on the 2 GB file: {cell.get('error')}"))
                continue
            share = cell["peak_mb"] / big["file_mb"]
            lines.append(
                (
                    share < BIG_SHARE,
                    (
                        f"{name} streamed from the {big['file_mb']:,.0f} MB file: peak RSS "
                        f"{cell['peak_mb']:,.0f} MB = {share:.0%} of it, below {BIG_SHARE:.0%} "
                        f"(anonymous {cell['anon_peak_mb']:,.0f} MB), {cell['seconds']:.0f} s"
                    ),
                )
            )
    return lines


# --------------------------------------------------------------------- main
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="N = 10k, 50k, 200k (about 2 minutes)")
    p.add_argument("--threads", type=int, default=1, help="threads of every process")
    p.add_argument("--only", default="", help=f"comma-separated parts: {', '.join(PARTS)}")
    p.add_argument("--families", default="", help=f"of the sweep: {', '.join(SWEEP)}")
    p.add_argument("--big", action="store_true", help="also the 2 GB memory-mapped file")
    p.add_argument(
        "--repeats",
        type=int,
        default=3,
        help=f"fits per measurement, the fastest kept (until {REPEAT_SECONDS:g} s)",
    )
    p.add_argument("--workdir", default=None, help="folder for the data (default: a temp one)")
    p.add_argument("--json", default=None, help="write every measurement to this file")
    p.add_argument(
        "--exec",
        action="store_true",
        help="a new interpreter per measurement, not a fork of one that has "
        "imported everything (about 3 s more each)",
    )
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--zygote", action="store_true", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child is not None:
        print(MARKER + json.dumps(_safe_child(json.loads(args.child))), flush=True)
        return 0
    if args.zygote:
        zygote()
        return 0
    parts = [p.strip() for p in args.only.split(",") if p.strip()]
    parts = parts or [p for p in PARTS if p != "big" or args.big]
    args.families = [f.strip() for f in args.families.split(",") if f.strip()] or list(SWEEP)
    bad = [p for p in parts if p not in PARTS] + [f for f in args.families if f not in SWEEP]
    if bad:
        console.print(f"unknown {bad}; parts: {', '.join(PARTS)}; families: {', '.join(SWEEP)}")
        return 2
    grid = GRID_QUICK if args.quick else GRID
    folder = Path(args.workdir or tempfile.mkdtemp(prefix="ptheta-scale-"))
    folder.mkdir(parents=True, exist_ok=True)
    console.print(
        f"ptheta scale benchmark: {os.cpu_count()} CPUs, {args.threads} thread(s) per "
        f"process, load average {os.getloadavg()[0]:.2f}; data in {folder}"
    )
    started = time.perf_counter()
    report: dict[str, Any] = {"grid": list(grid), "threads": args.threads}
    if not args.exec:  # started first, while this process is small
        RUNNER.append(Zygote(args.threads))
    try:
        write_data(folder, grid, parts, args.quick)
        for part in parts:
            report[part] = PART_RUNS[part](folder, grid, args)
    finally:
        for runner in RUNNER:
            runner.close()
        if args.workdir is None:
            shutil.rmtree(folder, ignore_errors=True)
    console.print("[bold]targets")
    for ok, text in targets(report, grid):
        mark = "[yellow]?" if ok is None else "[green]✓" if ok else "[red]✗"
        console.print(f"  {mark}[/] {text}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1, default=str), encoding="utf-8")
    console.print(
        f"done in {time.perf_counter() - started:.0f} s; load average now "
        f"{os.getloadavg()[0]:.2f} (a shared machine: timings are noisy)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
