"""Benchmark: the Trainer's overhead against a bare PyTorch loop training the same MADE.

Same network (MADE, digits at 17 levels, hidden [512, 512]), same data, batch size,
optimiser (AdamW) and number of steps. The Trainer runs with its defaults that cost time
in every step (gradient clipping, the LR schedule, the progress callback) but without
validation or checkpoints, which a bare loop does not do either. Prints examples/s
(median of 3) and the overhead. Target: ≤ 10 %.

    .venv/bin/python bench/trainer_overhead.py
"""

from __future__ import annotations

import statistics
import time

import torch
from rich.console import Console
from rich.table import Table

import ptheta
from ptheta.models.made import MADE
from ptheta.train.trainer import TrainConfig, Trainer

EPOCHS, BATCH, REPEATS = 5, 100, 3


def network() -> torch.nn.Module:
    torch.manual_seed(0)
    data = ptheta.datasets.load("digits")
    return MADE([512, 512], device="cpu")._build_module(data.spec, None)


def bare_loop(x: torch.Tensor) -> float:
    module = network()
    opt = torch.optim.AdamW(module.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(0)
    start = time.perf_counter()
    for _ in range(EPOCHS):
        for idx in torch.randperm(len(x), generator=g).split(BATCH):
            loss = module.loss(x[idx]).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return EPOCHS * len(x) / (time.perf_counter() - start)


def with_trainer(x: torch.Tensor) -> float:
    module = network()
    config = TrainConfig(epochs=EPOCHS, batch_size=BATCH, device="cpu", patience=None)
    start = time.perf_counter()
    Trainer(config).fit(module, (x,), callback=lambda step, loss: None)
    return EPOCHS * len(x) / (time.perf_counter() - start)


def main() -> None:
    x = torch.as_tensor(ptheta.datasets.load("digits").train.x)
    bare, ours = [], []
    for _ in range(REPEATS):  # alternate, so that machine noise hits both alike
        bare.append(bare_loop(x))
        ours.append(with_trainer(x))
    b, t = statistics.median(bare), statistics.median(ours)
    table = Table(title=f"Trainer overhead — MADE [512, 512] on digits (17 levels), "
                        f"{EPOCHS} epochs, batch {BATCH}, median of {REPEATS}")  # fmt: skip
    table.add_column("loop")
    table.add_column("examples/s", justify="right")
    table.add_row("bare PyTorch loop", f"{b:,.0f}")
    table.add_row("ptheta Trainer", f"{t:,.0f}")
    table.add_row("overhead", f"{(b / t - 1) * 100:+.1f} %")
    Console(width=120).print(table)
    print(f"torch threads: {torch.get_num_threads()}")


if __name__ == "__main__":
    main()
