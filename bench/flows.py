"""Benchmark: ptheta's flows — test NLL on 2-D toys and digits, and training throughput vs peers.

1. 2-D toys: realnvp and maf under a fixed CPU budget each; test NLL in nats against the
   true entropy (the floor) where it is known.
2. digits (17 levels): test bits/dim of the dequantisation bound (uniform and
   variational) under a fixed CPU budget, early stopping on the validation split.
3. Training time vs peers (bench/harness.py: threads pinned, warm-up, interleaved rounds;
   the same architecture sizes, data, batches and number of AdamW steps): ptheta's RealNVP
   / MAF against zuko's, ptheta's Glow against normflows' (peers only in the bench
   environment; skipped with a note when missing). Parameter counts are printed.

    .venv-bench/bin/python bench/flows.py [--only throughput] [--toy-time 10] [--digits-time 90]
"""

from __future__ import annotations

import argparse
import warnings
from collections.abc import Callable

import numpy as np
import torch
from harness import compare, console, parser, print_comparison, script_name, training_side
from rich.table import Table

import ptheta
from ptheta.data.spec import DataSpec
from ptheta.models.flows import MAF, Glow, RealNVP

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
def _ours(cls, spec: DataSpec, **params):
    torch.manual_seed(0)
    module = cls(HIDDEN, device="cpu", **params)._build_module(spec, None).train()
    return module.loss, list(module.parameters())


def _zuko(flow_cls, **params):
    torch.manual_seed(0)
    flow = flow_cls(64, hidden_features=(HIDDEN, HIDDEN), **params)
    return (lambda b: -flow().log_prob(b)), list(flow.parameters())


def throughput(args: argparse.Namespace) -> None:
    """Training time of the same number of AdamW steps on the same batches (batch 128,
    float32, CPU), ptheta against zuko (RealNVP, MAF) and normflows (Glow), through
    bench/harness.py. The objective is each network's mean NLL (nats) on the training data
    after the steps: their parameterisations and initialisations differ, so it shows what
    each bought with its time, and is not expected to be equal."""
    data = ptheta.datasets.load("digits")
    rng = np.random.default_rng(0)
    flat = (data.train.x + rng.random(data.train.x.shape)) / 17  # dequantised, in [0, 1)
    x = torch.as_tensor(flat, dtype=torch.float32)  # (1000, 64)
    images = x.reshape(-1, 1, 8, 8)
    g = torch.Generator().manual_seed(0)
    picks = [torch.randint(len(x), (BATCH,), generator=g) for _ in range(STEPS)]
    vec, img = DataSpec("continuous", (64,)), DataSpec("continuous", (1, 8, 8))
    cases = []
    try:
        import zuko

        cases.append(("realnvp, 6 coupling layers", x, [
            ("ptheta realnvp", lambda: _ours(RealNVP, vec, n_layers=6, norm="none")),
            ("zuko RealNVP", lambda: _zuko(zuko.flows.RealNVP, transforms=6)),
        ]))  # fmt: skip
        cases.append(("maf, 5 autoregressive layers", x, [
            ("ptheta maf", lambda: _ours(MAF, vec, n_layers=5, norm="none")),
            ("zuko MAF", lambda: _zuko(zuko.flows.MAF, transforms=5)),
        ]))  # fmt: skip
    except ImportError:
        console.print("zuko is not installed (make bench-setup): RealNVP/MAF comparison skipped")
    try:
        import normflows as nf

        def peer_glow():
            peer = _normflows_glow(nf, levels=2, steps=4)
            return (lambda b: -peer.log_prob(b, None)), list(peer.parameters())

        cases.append(("glow, 2 levels × 4 steps, (1, 8, 8)", images, [
            ("ptheta glow", lambda: _ours(Glow, img, n_steps=4, n_levels=2)),
            ("normflows Glow", peer_glow),
        ]))  # fmt: skip
    except ImportError:
        console.print("normflows is not installed (make bench-setup): Glow comparison skipped")
    for label, data_x, makers in cases:
        batches = [data_x[i] for i in picks]
        for threads in args.threads:
            result = compare(
                f"flow training, {label}, {STEPS} AdamW steps of batch {BATCH}",
                [training_side(name, make, batches, data_x) for name, make in makers],
                threads=threads,
                script=script_name(__file__),
                rounds=args.rounds,
                warmup=args.warmup,
                objective="train NLL after (nats)",
                rtol=None,
                params={"steps": STEPS, "batch": BATCH, "hidden": HIDDEN},
                record=args.record,
            )
            print_comparison(result)
    console.print("target: ptheta ≥ 1.2× the peer (peer / ptheta ≥ 1.2)")


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
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--toy-time", type=float, default=10.0)
    p.add_argument("--digits-time", type=float, default=90.0)
    p.add_argument("--only", choices=("toys", "digits", "throughput"))
    args = p.parse_args()
    console.print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    if args.only in (None, "throughput"):
        throughput(args)
    if args.only in (None, "toys"):
        toys(args.toy_time)
    if args.only in (None, "digits"):
        digits(args.digits_time)


if __name__ == "__main__":
    main()
