"""Benchmark: autoregressive families on digits (17 gray levels, the standard split).

Each model trains under the same wall-clock budget (``--budget`` seconds, default 300)
with early stopping on the validation split; the table gives test NLL in nats and
bits/dim, parameters and training time. Targets: the book code's autoregressive model
reaches ≈ 88.7 nats (validation) on this split; ptheta's best should be ≤ 85 nats (test).

    .venv/bin/python bench/autoregressive_digits.py --budget 300
"""

from __future__ import annotations

import argparse
import math
import time
import warnings

import torch
from rich.console import Console
from rich.table import Table

import ptheta

MODELS = {
    "independent": {},
    "nade": {"hidden": 500, "lr": 1e-3, "batch_size": 50, "weight_decay": 1e-4},
    "made": {"hidden": [512, 512], "n_masks": 32, "order_agnostic": True, "lr": 1e-3,
             "batch_size": 32, "weight_decay": 0.05},
    "pixelcnn": {"channels": 32, "n_layers": 5, "lr": 3e-3, "batch_size": 32},
}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=300.0, help="seconds per model")
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated names")
    args = parser.parse_args()
    data = ptheta.datasets.load("digits")
    rows = []
    for name in args.models.split(","):
        params = dict(MODELS[name])
        if name != "independent":
            params.update(epochs=10_000, patience=30, max_time=args.budget, device="cpu")
        model = ptheta.make(name, **params)
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if "validation_data" in model.fit_params:
                model.fit(data.train, validation_data=data.val)
            else:
                model.fit(data.train)
        seconds = time.perf_counter() - start
        nll = -model.score(data.test.x)
        val = -model.score(data.val.x)
        epochs = len(getattr(model, "history_", []) or []) if name != "independent" else "—"
        rows.append((name, nll, nll / (64 * math.log(2)), val, model.n_parameters(), seconds,
                     epochs, getattr(model, "best_epoch_", "—")))  # fmt: skip
        print(f"{name}: test {nll:.2f} nats in {seconds:.0f} s", flush=True)
    table = Table(title=f"digits (17 levels): test NLL, {args.budget:.0f} s budget per model, "
                        f"{torch.get_num_threads()} CPU threads")  # fmt: skip
    for col in ("model", "test NLL (nats)", "bits/dim", "val NLL", "parameters",
                "train time (s)", "epochs", "best epoch"):  # fmt: skip
        table.add_column(col, justify="left" if col == "model" else "right")
    for name, nll, bpd, val, n_params, seconds, epochs, best in rows:
        table.add_row(name, f"{nll:.2f}", f"{bpd:.3f}", f"{val:.2f}", f"{n_params:,}",
                      f"{seconds:.0f}", str(epochs), str(best))  # fmt: skip
    Console(width=140).print(table)


if __name__ == "__main__":
    main()
