"""Benchmark: ptheta's flows — test NLL on 2-D toys and digits, and training throughput vs peers.

1. 2-D toys: realnvp and maf under a fixed CPU budget each; test NLL in nats against the
   true entropy (the floor) where it is known.
2. digits (17 levels): test bits/dim of the dequantisation bound (uniform and
   variational) under a fixed CPU budget, early stopping on the validation split.
3. Throughput (training examples/s, same architecture sizes, same data, same batches):
   ptheta's RealNVP / MAF against zuko's, ptheta's Glow against normflows' (peers only in
   the bench environment; skipped with a note when missing).

    .venv-bench/bin/python bench/flows.py [--toy-time 10] [--digits-time 90]
"""

from __future__ import annotations

import argparse
import math
import time
import warnings
from collections.abc import Callable

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

import ptheta
from ptheta.data.spec import DataSpec
from ptheta.models.flows import MAF, Glow, RealNVP

console = Console()
TOYS = ["moons", "circles", "8gaussians", "checkerboard", "pinwheel", "spirals"]
BATCH, STEPS, HIDDEN = 128, 40, 64


def _fit(model, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model.fit(*args, **kwargs)


def toys(budget: float) -> None:
    table = Table(title=f"2-D toys: test NLL (nats), {budget:g} s CPU budget per fit")
    for col in ("data", "entropy (floor)", "realnvp", "maf", "gmm(8) for scale"):
        table.add_column(col, justify="right")
    for name in TOYS:
        data = ptheta.datasets.load(f"toy2d-{name}")
        row = [name, "—" if data.entropy is None else f"{data.entropy:.3f}"]
        for cls in (RealNVP, MAF):
            model = cls(HIDDEN, epochs=1000, max_time=budget, lr=3e-3, device="cpu")
            _fit(model, data.train, validation_data=data.val)
            row.append(f"{-model.score(data.test.x):.3f}")
        gmm = ptheta.make("gmm", n_components=8, random_state=0).fit(data.train)
        row.append(f"{-gmm.score(data.test.x):.3f}")
        table.add_row(*row)
    console.print(table)


def digits(budget: float) -> None:
    data = ptheta.datasets.load("digits")
    table = Table(title=f"digits (17 levels): test bits/dim of the bound, {budget:g} s budget")
    for col in ("model", "dequantisation", "test bits/dim", "best epoch", "stopped", "params"):
        table.add_column(col, justify="right")
    common = {
        "epochs": 2000,
        "max_time": budget,
        "patience": 30,
        "device": "cpu",
        "batch_size": 64,
        "weight_decay": 1e-4,
    }
    configs: list[tuple[str, Callable[[], object]]] = [
        ("realnvp", lambda: RealNVP(64, n_layers=4, lr=1e-3, **common)),
        ("realnvp", lambda: RealNVP(64, n_layers=4, dequantization="variational", **common)),
        ("maf", lambda: MAF(256, n_layers=5, dequantization="variational", **common)),
        ("glow", lambda: Glow(64, n_steps=4, dequantization="variational", **common)),
    ]
    for name, make in configs:
        model = make()
        _fit(model, data.train, validation_data=data.val)
        table.add_row(
            name,
            model.dequantization,
            f"{model.bits_per_dim(data.test):.3f}",
            str(model.best_epoch_),
            model.stopped_,
            str(model.n_parameters()),
        )
    console.print(table)
    console.print("target: ≤ 2.2 bits/dim with variational dequantisation")


# --------------------------------------------------------------------------- throughput
def _steps(loss: Callable[[torch.Tensor], torch.Tensor], opt, batches) -> float:
    """Seconds for AdamW steps on the batches."""
    start = time.perf_counter()
    for b in batches:
        value = loss(b).mean()
        opt.zero_grad(set_to_none=True)
        value.backward()
        opt.step()
    return time.perf_counter() - start


def _rates(ours, theirs, x: torch.Tensor, rounds: int = 5) -> tuple[float, float]:
    """Training examples/s of (ours, theirs): (loss, parameters) pairs on the same batches.

    The two alternate over ``rounds`` rounds (after a warm-up) and each keeps its best
    round: the CPU is shared, and interference only ever slows a round down.
    """
    g = torch.Generator().manual_seed(0)
    batches = [x[torch.randint(len(x), (BATCH,), generator=g)] for _ in range(STEPS)]
    opts = [torch.optim.AdamW(params, lr=1e-4) for _, params in (ours, theirs)]
    for (loss, _), opt in zip((ours, theirs), opts, strict=True):
        _steps(loss, opt, batches[:3])  # warm-up (and actnorm initialisation)
    best = [math.inf, math.inf]
    for _ in range(rounds):
        for i, ((loss, _), opt) in enumerate(zip((ours, theirs), opts, strict=True)):
            best[i] = min(best[i], _steps(loss, opt, batches))
    return STEPS * BATCH / best[0], STEPS * BATCH / best[1]


def _ours(cls, spec: DataSpec, **params) -> torch.nn.Module:
    torch.manual_seed(0)
    return cls(HIDDEN, device="cpu", **params)._build_module(spec, None).train()


def throughput() -> None:
    data = ptheta.datasets.load("digits")
    rng = np.random.default_rng(0)
    flat = (data.train.x + rng.random(data.train.x.shape)) / 17  # dequantised, in [0, 1)
    x = torch.as_tensor(flat, dtype=torch.float32)  # (1000, 64)
    images = x.reshape(-1, 1, 8, 8)
    vec, img = DataSpec("continuous", (64,)), DataSpec("continuous", (1, 8, 8))
    table = Table(title=f"training throughput (examples/s, batch {BATCH}, CPU, float32)")
    for col in ("model", "ptheta", "peer", "peer ex/s", "ratio"):
        table.add_column(col, justify="right")
    pairs = []
    try:
        import zuko

        ours = _ours(RealNVP, vec, n_layers=6, norm="none")
        flow = zuko.flows.RealNVP(64, transforms=6, hidden_features=(HIDDEN, HIDDEN))
        pairs.append(("realnvp", ours, "zuko RealNVP", flow, x))
        ours = _ours(MAF, vec, n_layers=5, norm="none")
        flow = zuko.flows.MAF(64, transforms=5, hidden_features=(HIDDEN, HIDDEN))
        pairs.append(("maf", ours, "zuko MAF", flow, x))
    except ImportError:
        console.print("zuko is not installed (make bench): RealNVP/MAF comparison skipped")
    for name, ours, peer, flow, data_x in pairs:
        rate, theirs = _rates(
            (ours.loss, list(ours.parameters())),
            (lambda b, f=flow: -f().log_prob(b), list(flow.parameters())),
            data_x,
        )
        table.add_row(name, f"{rate:,.0f}", peer, f"{theirs:,.0f}", f"{rate / theirs:.2f}×")
    try:
        import normflows as nf

        ours = _ours(Glow, img, n_steps=4, n_levels=2)
        peer = _normflows_glow(nf, levels=2, steps=4)
        rate, theirs = _rates(
            (ours.loss, list(ours.parameters())),
            (lambda b: -peer.log_prob(b, None), list(peer.parameters())),
            images,
        )
        table.add_row(
            "glow", f"{rate:,.0f}", "normflows Glow", f"{theirs:,.0f}", f"{rate / theirs:.2f}×"
        )
    except ImportError:
        console.print("normflows is not installed (make bench): Glow comparison skipped")
    console.print(table)
    console.print("target: ptheta ≥ 1.2× the peer")


def _normflows_glow(nf, levels: int, steps: int):
    """normflows' multi-scale Glow on (1, 8, 8) with the same levels, steps and width."""
    torch.manual_seed(0)
    c, h, w = 1, 8, 8
    q0, merges, flows = [], [], []
    for i in range(levels):
        level = [
            nf.flows.GlowBlock(c * 2 ** (levels + 1 - i), HIDDEN, split_mode="channel")
            for _ in range(steps)
        ]
        flows.append([*level, nf.flows.Squeeze()])
        if i > 0:
            merges.append(nf.flows.Merge())
            shape = (c * 2 ** (levels - i), h // 2 ** (levels - i), w // 2 ** (levels - i))
        else:
            shape = (c * 2 ** (levels + 1), h // 2**levels, w // 2**levels)
        q0.append(nf.distributions.DiagGaussian(shape))
    return nf.MultiscaleFlow(q0, flows, merges, class_cond=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--toy-time", type=float, default=10.0)
    parser.add_argument("--digits-time", type=float, default=90.0)
    parser.add_argument("--only", choices=("toys", "digits", "throughput"))
    args = parser.parse_args()
    console.print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    if args.only in (None, "throughput"):
        throughput()
    if args.only in (None, "toys"):
        toys(args.toy_time)
    if args.only in (None, "digits"):
        digits(args.digits_time)


if __name__ == "__main__":
    main()
