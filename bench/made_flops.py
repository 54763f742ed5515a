"""Benchmark: MADE [512, 512] training on 784-D binary data against this machine's matmul peak.

The physical limit of issue 20: achieved GFLOP/s of training over the dense float32 matmul
rate that `harness.matmul_peak` measures at the same thread count (target ≥ 50 % for the
MLP families); on a machine shared with other work, also per CPU-second of the process
(training and matmul both timed by ``time.process_time``), which the load does not dilute.
Training FLOPs are counted from the layer sizes: a dense layer of in × out
costs 2 · in · out FLOPs per example forward, and a training step (forward + the two
backward matmuls, for the inputs and for the weights) ≈ 3× the forward matmul FLOPs;
elementwise work (masks, ReLU, softmax, the optimiser) is not counted, so the rate is the
matmul work achieved per second. ptheta's binary MADE feeds one input per variable
(2x − 1) and outputs one logit per variable, so it is counted as built (784-512-512-784;
until December 2026 it fed one-hot pairs, 1568-512-512-1568, twice the end layers' work).

Three rates per thread count, interleaved rounds after a warm-up (bench/harness.py), on the
same random binary data (N × 784), batch size and number of steps, float32:
(a) ``ptheta.make("made", hidden=[512, 512]).fit`` (the Trainer: AdamW, cosine schedule,
gradient clipping; no validation hold-out); (b) a bare PyTorch loop over ptheta's MADE
module; (c) a bare loop over a plain unmasked MLP of the same layer sizes with the same
Bernoulli loss — what PyTorch itself reaches. Both bare loops use torch's fused AdamW, the
optimiser the Trainer uses (the default single-tensor AdamW alone costs about a third of
such a step on the CPU), so (a) − (b) is the Trainer's own cost and (b) − (c) the masks'.
Each record is one JSON line of ``bench/results/made_flops.jsonl``, which
``bench/summary.py`` reads.

    .venv-bench/bin/python bench/made_flops.py [--full] [--batch 128] [--threads 1 2]
"""

from __future__ import annotations

import itertools
import statistics
import time

import numpy as np
import torch
from harness import (
    append_record,
    console,
    load_average,
    machine,
    matmul_peak,
    parser,
    pinned,
    script_name,
)
from rich.table import Table

import ptheta
from ptheta.data.spec import DataSpec
from ptheta.models.made import MADE

D, HIDDEN = 784, [512, 512]


def forward_flops(sizes: list[int]) -> int:
    """Matmul FLOPs of one example through dense layers sizes[0] → sizes[1] → …"""
    return sum(2 * a * b for a, b in itertools.pairwise(sizes))


def cpu_peak(threads: int, n: int = 1024, repeats: int = 5) -> float:
    """float32 ``torch.mm`` GFLOP per CPU-second at ``threads`` threads (best of ``repeats``).

    CPU time counts only the time this process ran, so on a machine shared with other work
    (where wall-clock rates fall with the load) it measures what a core did while it was
    ours; the training loops are timed the same way for the "per CPU-second" columns.
    """
    a, b = torch.randn(n, n), torch.randn(n, n)
    out = torch.empty(n, n)
    best = float("inf")
    with pinned(threads), torch.no_grad():
        torch.mm(a, b, out=out)  # warm-up
        for _ in range(repeats):
            begin = time.process_time()
            for _ in range(4):
                torch.mm(a, b, out=out)
            best = min(best, time.process_time() - begin)
    return 4 * 2 * n**3 / best / 1e9


def made_module() -> torch.nn.Module:
    torch.manual_seed(0)
    return MADE(HIDDEN, device="cpu")._build_module(DataSpec("binary", (D,)), None).train()


def plain_mlp(sizes: list[int]) -> torch.nn.Module:
    torch.manual_seed(0)
    layers: list[torch.nn.Module] = []
    for i, (a, b) in enumerate(itertools.pairwise(sizes)):
        layers.append(torch.nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(torch.nn.ReLU())
    return torch.nn.Sequential(*layers)


def bare_loop(loss_fn, params, x: torch.Tensor, batch: int, epochs: int) -> float:
    """``epochs`` epochs of fused-AdamW steps on minibatches of ``x``; the final batch loss."""
    opt = torch.optim.AdamW(params, lr=1e-3, fused=True)
    g = torch.Generator().manual_seed(0)
    loss = torch.zeros(())
    for _ in range(epochs):
        for idx in torch.randperm(len(x), generator=g).split(batch):
            loss = loss_fn(x[idx]).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return float(loss.detach())


def runners(x_np: np.ndarray, batch: int, epochs: int) -> dict[str, object]:
    x = torch.as_tensor(x_np)

    def ptheta_fit() -> float:
        model = ptheta.make(
            "made", hidden=HIDDEN, epochs=epochs, batch_size=batch, validation_fraction=0.0,
            patience=None, device="cpu", dtype="float32", random_state=0,
        )  # fmt: skip
        model.fit(x_np)
        return float(model.history_[-1]["train_loss"]) if model.history_ else float("nan")

    def ptheta_module() -> float:
        module = made_module()
        return bare_loop(module.loss, list(module.parameters()), x, batch, epochs)

    mlp = [D, *HIDDEN, D]

    def plain() -> float:
        net = plain_mlp(mlp)

        def loss(b: torch.Tensor) -> torch.Tensor:
            target = b.float()
            logits = net(2 * target - 1)  # (N, D): one logit per binary variable
            return torch.nn.functional.binary_cross_entropy_with_logits(
                logits, target, reduction="none"
            ).sum(1)

        return bare_loop(loss, list(net.parameters()), x, batch, epochs)

    return {
        "ptheta made.fit (Trainer)": ptheta_fit,
        "bare loop, ptheta MADE module": ptheta_module,
        "bare loop, plain MLP (torch)": plain,
    }


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--epochs", type=int, default=1)
    args = p.parse_args()
    n = 20_000 if args.full else 4_000
    epochs = 3 if args.full and args.epochs == 1 else args.epochs
    rng = np.random.default_rng(0)
    x = (rng.random((n, D)) < rng.uniform(0.05, 0.5, size=D)).astype(np.int64)
    built = [D, *HIDDEN, D]
    flops_step = 3 * forward_flops(built)  # per example
    useful_step = 3 * forward_flops([D, *HIDDEN, D])
    work = flops_step * n * epochs
    table = Table(
        title=f"MADE {HIDDEN} training, {n:,} × {D} binary, batch {args.batch}, {epochs} "
        f"epoch(s): {flops_step / 1e6:.1f} MFLOP per example as built "
        f"({'-'.join(map(str, built))}), {useful_step / 1e6:.1f} for "
        f"{'-'.join(map(str, [D, *HIDDEN, D]))}",
        title_justify="left",
    )
    for col in ("threads", "loop", "median s (min–max)", "GFLOP/s", "best round",
                "matmul peak", "% of peak", "best % of peak", "% of peak per CPU-s",
                "final loss"):  # fmt: skip
        table.add_column(col, justify="left" if col == "loop" else "right")
    for threads in args.threads:
        load_before = load_average()
        peak = matmul_peak(threads)
        peak_cpu = cpu_peak(threads)  # GFLOP per CPU-second
        loops = runners(x, args.batch, epochs)
        times: dict[str, list[float]] = {name: [] for name in loops}
        cpu: dict[str, list[float]] = {name: [] for name in loops}
        losses: dict[str, float] = {}
        with pinned(threads):
            for run in loops.values():
                for _ in range(args.warmup):
                    run()
            for _ in range(args.rounds):
                for name, run in loops.items():
                    begin, begin_cpu = time.perf_counter(), time.process_time()
                    losses[name] = run()
                    times[name].append(time.perf_counter() - begin)
                    cpu[name].append(time.process_time() - begin_cpu)
        record_sides = []
        for name, ts in times.items():
            med = statistics.median(ts)
            rate, best = work / med / 1e9, work / min(ts) / 1e9
            per_cpu = work / statistics.median(cpu[name]) / 1e9  # GFLOP per CPU-second
            record_sides.append({"name": name, "times": ts, "median": med, "min": min(ts),
                                 "max": max(ts), "gflops": rate, "gflops_best": best,
                                 "final_loss": losses[name],
                                 "fraction_of_peak": rate / peak["gflops"],
                                 "cpu_times": cpu[name], "gflops_per_cpu_s": per_cpu,
                                 "fraction_of_peak_per_cpu_s": per_cpu / peak_cpu,
                                 })  # fmt: skip
            table.add_row(
                str(threads), name, f"{med:.3f} ({min(ts):.3f}–{max(ts):.3f})", f"{rate:.1f}",
                f"{best:.1f}", f"{peak['gflops']:.1f}", f"{100 * rate / peak['gflops']:.0f} %",
                f"{100 * best / peak['gflops']:.0f} %", f"{100 * per_cpu / peak_cpu:.0f} %",
                f"{losses[name]:.2f}",
            )  # fmt: skip
        if args.record:
            append_record(
                script_name(__file__),
                {
                    "script": script_name(__file__),
                    "kind": "efficiency",
                    "workload": f"MADE {HIDDEN} training, {n} x {D} binary, batch {args.batch}",
                    "threads": threads,
                    "rounds": args.rounds,
                    "flops_per_example": flops_step,
                    "useful_flops_per_example": useful_step,
                    "examples": n * epochs,
                    "peak": peak,
                    "peak_gflops_per_cpu_s": peak_cpu,
                    "sides": record_sides,
                    "load_before": load_before,
                    "load_after": load_average(),
                    "machine": machine(),
                },
            )
    table.caption = (
        f"load average now {' / '.join(f'{v:.2f}' for v in load_average())}; matmul peak: "
        "best float32 torch.mm rate over n = 512, 1024, 2048 at that thread count; target "
        "≥ 50 % of peak (the peak is a best of 5: on a loaded machine, read the best round, "
        "or the rate per CPU-second against the matmul's, both timed by process CPU time)"
    )
    console.print(table)


if __name__ == "__main__":
    main()
