"""GPU check: every neural family trains a few steps on a GPU and scores as on the CPU.

For every family that trains in steps (``capabilities().trains_in_steps``, picked from the
registry, never by name) and every training dtype asked for (float32 and bfloat16 by
default), this script

1. fits the family's ``quick_params`` on ``--device`` (``cuda`` by default) for
   ``--epochs`` epochs (2) on ``--n-train`` examples (1,024) of a kind it fits: the 2-D toy
   ``toy2d-moons`` where it models flat continuous data, else the 8×8 digits (17 gray
   levels; the binarised digits for a family of binary data only), else the synthetic
   table ``groundtruth-table`` (a family of tables only), with nothing held out for
   validation;
2. copies the fitted weights to a CPU model (``get_state`` → ``set_state`` of the same
   hyper-parameters with ``device="cpu"``) and scores the same 64 test examples on both:
   ``score_samples(X, return_std=True)`` where the family has a likelihood, else the
   anomaly score it has (an energy, a discriminator, the norm of a score field);
3. prints one table: steps/s and examples/s of the last epoch (the first one warms up:
   CUDA context, kernels, allocator), the largest |Δscore| between the devices, the
   tolerance and whether every example is within it.

Tolerance per example: ``rtol · max(1, |score|) + 3 · √(std_gpu² + std_cpu²)``, with rtol
by the dtype the scores are computed in, the weights' (1e-3 for float32, 1e-8 for
float64; training in bfloat16 or float16 runs under autocast with float32 weights, and
scores in float32: the same 1e-3), and the standard errors of stochastic scores
("estimate" likelihoods; their noise is drawn per example on the CPU, so both devices use
the same draws and this term is a margin for a family that draws on the device).

A dtype or option that a family does not take (a ParameterError or an unknown name when
the hyper-parameters are checked, or a refusal at fit that the family declares: its
``low_precision`` reason) prints "not available" and does not fail the check; any other
error, a score that is not finite or a difference beyond the tolerance does (exit code 1).
Without a CUDA device the script prints "no CUDA device: skipped" and exits 0. With
``--device cpu`` it is a dry run (CPU against CPU) that tests the script itself:

    .venv/bin/python bench/gpu_check.py                       (on a GPU machine)
    .venv/bin/python bench/gpu_check.py --device cpu --families made,vae
    .venv/bin/python bench/gpu_check.py --families made,ddpm --dtypes float32 --compile
"""

from __future__ import annotations

import argparse
import math
import sys
import time
import traceback
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

import ptheta
from ptheta.data.spec import Split
from ptheta.errors import ParameterError, RegistryError, UnknownNameError
from ptheta.models import REGISTRY

# Relative tolerance of a score (per example, against max(1, |score|)) by the dtype the
# scores are computed in (the weights').
RTOL = {"float64": 1e-8, "float32": 1e-3, "bfloat16": 3e-2, "float16": 3e-2}
N_SCORE = 64
console = Console(width=160)


@dataclass
class Row:
    """One (family, dtype) line of the table."""

    family: str
    dtype: str
    data: str = ""
    steps: int = 0
    steps_per_s: float = math.nan
    examples_per_s: float = math.nan
    score: str = ""
    max_diff: float = math.nan
    tol: float = math.nan
    weights: str = ""  # the dtype of the weights, in which scores are computed
    status: str = "ok"  # ok | FAIL | not available | error
    note: str = ""
    seconds: float = 0.0


def neural_families() -> list[str]:
    """Registry names of the families that train in steps (through the Trainer); an entry
    that cannot be imported is named and left out (it must not hide the others)."""
    names = []
    for name in REGISTRY:
        try:
            cls = REGISTRY[name]
        except RegistryError as e:
            console.print(f"[yellow]{name}: left out ({_first_line(e)})")
            continue
        if cls().capabilities().trains_in_steps:
            names.append(name)
    return names


def data_for(name: str) -> str:
    """The built-in data set a family is checked on, from its capabilities: the 2-D toy
    for flat continuous data, the digits (17 levels, or binarised), else a table."""
    caps = REGISTRY[name]().capabilities()
    flat = not (caps.needs_image or caps.needs_sequence)
    if "continuous" in caps.data_kinds and flat:
        return "toy2d-moons"
    if "categorical" in caps.data_kinds:
        return "digits"
    return "digits-binary" if "binary" in caps.data_kinds else "groundtruth-table"


def _scores(model: Any, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, str]:
    """(scores, standard errors, what they are) of a fitted model on ``x``."""
    caps = model.capabilities()
    if caps.has_likelihood:
        scores, std = model.score_samples(x, return_std=True)
        return np.asarray(scores, float), np.asarray(std, float), f"log p ({model.likelihood_})"
    from ptheta.eval.anomaly import anomaly_scores  # energy, discriminator or score norm

    scores, kind = anomaly_scores(model, x)
    return np.asarray(scores, float), np.zeros(len(scores)), kind


def _throughput(model: Any, n_train: int) -> tuple[int, float, float]:
    """(steps, steps/s, examples/s) of the last epoch of the fit (all epochs if only one)."""
    history = [h for h in getattr(model, "history_", []) if not h.get("partial")]
    steps = int(getattr(model, "n_steps_", 0))
    if len(history) >= 2:
        last, before = history[-1], history[-2]
        seconds = last["seconds"] - before["seconds"]
        epoch_steps = last["step"] - before["step"]
        return steps, epoch_steps / seconds, n_train / seconds
    seconds = float(getattr(model, "train_seconds_", math.nan))
    return steps, steps / seconds, len(history) * n_train / seconds


def check_one(name: str, dtype: str, args: argparse.Namespace) -> Row:
    """Fit ``name`` in ``dtype`` on ``args.device``, copy it to the CPU and compare scores."""
    row = Row(name, dtype, data=data_for(name))
    start = time.perf_counter()
    data = ptheta.datasets.load(row.data)
    n_train = min(args.n_train, len(data.train.x))
    train = Split(data.train.x[:n_train], _head(data.train.y, n_train), data.spec)
    x_score = data.test.x[:N_SCORE]
    params = {
        **REGISTRY[name].quick_params,
        "epochs": args.epochs,
        "validation_fraction": 0.0,
        "device": args.device,
        "dtype": dtype,
    }
    if args.batch_size:
        params["batch_size"] = args.batch_size
    if args.compile:
        params["compile"] = True
    try:  # a dtype or option the family does not take (yet) is "not available"
        model = ptheta.make(name, **params)
        model.check_params()
    except (ParameterError, UnknownNameError, TypeError) as e:
        row.status, row.note = "not available", _first_line(e)
        return row
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit(train)
    except ParameterError as e:
        # "not available" where the family declares why it refuses a low precision (rbm:
        # its log Z by enumeration); any other refusal at fit is an error of the check
        declared = getattr(model, "low_precision", None) and dtype in ("bfloat16", "float16")
        row.status, row.note = ("not available" if declared else "error"), _first_line(e)
        return row
    row.steps, row.steps_per_s, row.examples_per_s = _throughput(model, n_train)
    cpu = ptheta.make(name, **{**params, "device": "cpu"})
    cpu.set_state(*model.get_state())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s_dev, std_dev, row.score = _scores(model, x_score)
        s_cpu, std_cpu, _ = _scores(cpu, x_score)
    row.seconds = time.perf_counter() - start
    diff = np.abs(s_dev - s_cpu)
    row.weights = str(next(model.module.parameters()).dtype).removeprefix("torch.")
    rtol = RTOL.get(row.weights, 3e-2)  # scores are computed in the weights' dtype
    tol = rtol * np.maximum(1.0, np.abs(s_cpu)) + 3.0 * np.sqrt(std_dev**2 + std_cpu**2)
    row.max_diff, row.tol = float(diff.max()), float(tol[np.argmax(diff)])
    finite = np.isfinite(s_dev).all() and np.isfinite(s_cpu).all()
    if not finite:
        row.status, row.note = "FAIL", "a score is not finite"
    elif not (diff <= tol).all():
        worst = int(np.argmax(diff - tol))
        row.status = "FAIL"
        row.note = (
            f"example {worst}: {s_dev[worst]:.6g} vs {s_cpu[worst]:.6g} (tol {tol[worst]:.2g})"
        )
    return row


def _head(y: Any, n: int) -> Any:
    return None if y is None else y[:n]


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}"[:140]


def _number(v: float, fmt: str) -> str:
    return "—" if not np.isfinite(v) else format(v, fmt)


def print_rows(rows: list[Row], args: argparse.Namespace) -> None:
    device = args.device
    if device.startswith("cuda"):
        device = f"{device} ({torch.cuda.get_device_name(torch.device(device))})"
    table = Table(
        title=f"neural families on {device} against the CPU: {args.epochs} epochs of "
        f"≤{args.n_train} examples{' (compiled)' if args.compile else ''}, scores of "
        f"{N_SCORE} test examples",
    )
    for col in ("family", "data", "dtype", "weights", "steps", "steps/s", "examples/s", "score"):
        table.add_column(
            col, justify="right" if col in ("steps", "steps/s", "examples/s") else "left"
        )
    table.add_column("max |Δscore|", justify="right")
    table.add_column("tol", justify="right")
    table.add_column("ok")
    table.add_column("note", overflow="fold", max_width=48)
    marks = {
        "ok": "[green]✓",
        "FAIL": "[red]✗",
        "error": "[red]error",
        "not available": "[yellow]n/a",
    }
    for r in rows:
        table.add_row(
            r.family, r.data, r.dtype, r.weights, str(r.steps) if r.steps else "—",
            _number(r.steps_per_s, ",.1f"), _number(r.examples_per_s, ",.0f"), r.score,
            _number(r.max_diff, ".2e"), _number(r.tol, ".1e"), marks[r.status], r.note,
        )  # fmt: skip
    console.print(table)
    tf32 = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    console.print(
        f"tolerance per example: rtol·max(1, |score|) + 3·√(std² + std²), rtol by the weights' "
        f"dtype: {', '.join(f'{k} {v:g}' for k, v in RTOL.items())}; throughput: the last epoch "
        f"(the first warms up). torch {torch.__version__}, {torch.get_num_threads()} CPU "
        f"threads, TF32 matmul {tf32[0]}, TF32 cuDNN {tf32[1]}"
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda", help="cuda, cuda:N, or cpu for a dry run")
    p.add_argument("--families", default="", help="comma-separated (default: every neural one)")
    p.add_argument("--dtypes", default="float32,bfloat16", help="training dtypes to check")
    p.add_argument("--epochs", type=int, default=2, help="epochs (the last one is timed)")
    p.add_argument("--n-train", type=int, default=1024, help="training examples (at most)")
    p.add_argument("--batch-size", type=int, default=0, help="0: each family's quick value")
    p.add_argument("--compile", action="store_true", help="fit with compile=True")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("no CUDA device: skipped")
        return 0
    families = neural_families()
    if args.families:
        asked = [f.strip() for f in args.families.split(",") if f.strip()]
        unknown = [f for f in asked if f not in families]
        if unknown:
            print(f"not neural families (trains_in_steps): {unknown}; choose from {families}")
            return 2
        families = asked
    if args.device.startswith("cuda"):  # the CUDA context once, outside every timing
        torch.ones(1, device=args.device).sum().item()
    rows: list[Row] = []
    for name in families:
        for dtype in [d.strip() for d in args.dtypes.split(",") if d.strip()]:
            try:
                row = check_one(name, dtype, args)
            except Exception as e:  # report it, and go on to the next
                row = Row(name, dtype, data=data_for(name), status="error", note=_first_line(e))
                traceback.print_exc(limit=-3, file=sys.stderr)
            rows.append(row)
            console.print(
                f"{name} {dtype}: {row.status} ({row.seconds:.1f} s)"
                + (f" — {row.note}" if row.note else "")
            )
    print_rows(rows, args)
    failed = [f"{r.family}/{r.dtype}" for r in rows if r.status in ("FAIL", "error")]
    if failed:
        console.print(f"[red]failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
