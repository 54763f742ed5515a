"""Benchmark: RBM log-likelihood by AIS on digits-binary, AIS vs exact log Z, EBM energy gap.

Part 1: an RBM (64 hidden, PCD) on digits-binary, trained for ``--budget`` seconds; test
NLL in nats with log Z from AIS (and its standard error), next to ptheta's Bernoulli
mixture and independent model on the same split. Published numbers on binarised MNIST
(RBM ≈ 86 nats, mixture of Bernoullis ≈ 137) are other data: only the ordering of the
families is comparable.

Part 2: a 16-hidden RBM, whose log Z is exact by enumeration: the AIS error.

Part 3: a neural EBM on toy2d-8gaussians: mean energy on uniform noise over the data's
bounding box minus mean energy on test data (positive: data are more typical).

    .venv/bin/python bench/energy.py --budget 60
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

import ptheta


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=60.0, help="seconds of training per fit")
    args = parser.parse_args()
    torch.set_num_threads(1)  # small matrices: threads cost more than they give on CPU
    console = Console()
    data = ptheta.datasets.load("digits-binary")
    rows = []

    def fit(name: str, **params):
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = ptheta.make(name, **params).fit(data.train)
        return model, time.perf_counter() - start

    train = {"epochs": 10_000, "max_time": args.budget, "device": "cpu", "patience": 20}
    rbm, seconds = fit("rbm", n_hidden=64, lr=3e-3, batch_size=32, **train)
    nll = -rbm.score(data.test.x)
    rows.append(("rbm (64 hidden, PCD-1)", nll, f"AIS ± {rbm.log_z_std_:.3f}", seconds))
    for name, params in (("bernoulli-mixture", {"n_components": 16}), ("independent", {})):
        model, seconds = fit(name, **params)
        rows.append((f"{name} {params or ''}".strip(), -model.score(data.test.x), "exact", seconds))

    table = Table(title="digits-binary test NLL (nats per example; lower is better)")
    for col in ("model", "NLL", "log Z", "seconds"):
        table.add_column(col)
    for name, value, kind, secs in rows:
        table.add_row(name, f"{value:.2f}", kind, f"{secs:.1f}")
    console.print(table)
    console.print(
        "published on binarised MNIST (other data, 784 pixels): RBM ≈ 86, mixture of "
        "Bernoullis ≈ 137 — compare the ordering of families only"
    )

    small, _ = fit("rbm", n_hidden=16, lr=3e-3, batch_size=32, **{**train, "max_time": 20})
    start = time.perf_counter()
    ais, std_err, _ = small.estimate_log_z("ais", ais_runs=100, ais_betas=10_000)
    ais_seconds = time.perf_counter() - start
    console.print(
        f"16-hidden RBM: exact log Z = {small.log_z_:.4f}, AIS (100 runs, 10 000 "
        f"temperatures) = {ais:.4f} ± {std_err:.4f}, error {ais - small.log_z_:+.4f} nats "
        f"({ais_seconds:.1f} s)"
    )

    toy = ptheta.datasets.load("toy2d-8gaussians")
    ebm, seconds = fit_ebm(toy, args.budget)
    x = toy.test.x
    noise = np.random.default_rng(0).uniform(x.min(0), x.max(0), size=x.shape)
    gap = ebm.energy(noise).mean() - ebm.energy(x).mean()
    console.print(
        f"EBM on toy2d-8gaussians ({seconds:.0f} s): mean energy noise − data = {gap:.3f} "
        f"(positive: lower energy on data)"
    )


def fit_ebm(toy, budget: float):
    start = time.perf_counter()
    model = ptheta.make(
        "ebm", hidden=64, lr=1e-2, batch_size=100, epochs=10_000, max_time=budget, device="cpu"
    ).fit(toy.train)
    return model, time.perf_counter() - start


if __name__ == "__main__":
    main()
