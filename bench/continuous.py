"""Benchmark: score-based and continuous-time families (issue 16) next to the flows.

1. 2-D toys: test NLL (nats) of score-sde (probability-flow ODE), flow-matching
   (independent and OT coupling), nsf (coupling and autoregressive) next to realnvp, maf,
   gmm(8) and the true entropy (the floor) where it is known, each under the same CPU
   budget; and the grid integral of each fitted density (≈ 1 for a normalised model).
2. digits (17 levels): test bits/dim (dequantisation-bound estimates) and the Fréchet
   distance of 500 samples in the digits feature space, under a fixed budget.
3. Training time vs peers (bench/harness.py: threads pinned, warm-up, interleaved rounds;
   the same network, data, batches and number of steps): ptheta's flow-matching loss (OT
   coupling) vs torchcfm's ExactOptimalTransportConditionalFlowMatcher driving the same
   network, and ptheta's autoregressive nsf vs zuko's NSF of the same size (peers only in
   the bench environment; skipped with a note when missing).
4. Sampling time vs the number of function evaluations of flow-matching on a toy, with the
   MMD of the samples to the test split.

    .venv-bench/bin/python bench/continuous.py [--toy-time 20] [--digits-time 90]
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import torch
from harness import compare, console, parser, print_comparison, script_name, training_side
from rich.table import Table

import ptheta
from ptheta.data.spec import DataSpec
from ptheta.eval.features import feature_extractor
from ptheta.eval.metrics import frechet_distance, mmd
from ptheta.nn.ode import ODESolver

TOYS = ["moons", "8gaussians", "checkerboard", "spirals"]
BATCH, STEPS = 128, 30

# (label, family, parameters) of the toy and digits line-ups
TOY_MODELS: list[tuple[str, str, dict]] = [
    ("score-sde (vp, ODE)", "score-sde", {}),
    ("flow-matching", "flow-matching", {}),
    ("flow-matching (OT)", "flow-matching", {"coupling": "ot"}),
    ("nsf (coupling)", "nsf", {"transform_type": "coupling"}),
    ("nsf (autoregressive)", "nsf", {"transform_type": "autoregressive"}),
    ("realnvp", "realnvp", {}),
    ("maf", "maf", {}),
]


def _fit(model, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model.fit(*args, **kwargs)


def _make(family: str, preset: str, budget: float, **params):
    base = dict(ptheta.models.REGISTRY[family].preset(preset) or {})
    base.update(params, max_time=budget, epochs=100_000, device="cpu", verbose=0)
    return ptheta.make(family, **base)


def _grid_integral(model, points: np.ndarray, n: int = 120) -> float:
    lo, hi = points.min(0), points.max(0)
    pad = 0.25 * (hi - lo)
    xs = np.linspace(lo[0] - pad[0], hi[0] + pad[0], n)
    ys = np.linspace(lo[1] - pad[1], hi[1] + pad[1], n)
    grid = np.stack(np.meshgrid(xs, ys), -1).reshape(-1, 2)
    cell = (xs[1] - xs[0]) * (ys[1] - ys[0])
    return float(np.exp(model.score_samples(grid)).sum() * cell)


def toys(budget: float) -> None:
    table = Table(title=f"2-D toys: test NLL (nats) [grid integral], {budget:g} s CPU per fit")
    table.add_column("model")
    datas = {name: ptheta.datasets.load(f"toy2d-{name}") for name in TOYS}
    for name in TOYS:
        table.add_column(name, justify="right")
    floor = ["entropy (floor)"]
    floor += ["—" if datas[n].entropy is None else f"{datas[n].entropy:.3f}" for n in TOYS]
    table.add_row(*floor)
    for label, family, params in TOY_MODELS:
        row = [label]
        for name in TOYS:
            data = datas[name]
            model = _fit(
                _make(family, "explorer", budget, **params), data.train, validation_data=data.val
            )
            nll = -model.score(data.test.x)
            row.append(f"{nll:.3f} [{_grid_integral(model, data.train.x):.3f}]")
        table.add_row(*row)
    row = ["gmm(8)"]
    for name in TOYS:
        data = datas[name]
        gmm = ptheta.make("gmm", n_components=8, random_state=0).fit(data.train)
        row.append(f"{-gmm.score(data.test.x):.3f} [{_grid_integral(gmm, data.train.x):.3f}]")
    table.add_row(*row)
    console.print(table)


def digits(budget: float) -> None:
    data = ptheta.datasets.load("digits")
    fx = feature_extractor(data)
    real = fx.transform(data.test.x)
    table = Table(title=f"digits (17 levels): {budget:g} s CPU budget per fit")
    for col in (
        "model",
        "test bits/dim",
        "kind",
        "± (MC)",
        "FD (500 samples)",
        "score s",
        "sample s",
        "params",
    ):
        table.add_column(col, justify="right")
    line_up = [
        # score-sde has no demo preset (it is not in `ptheta demo`): its README settings
        (
            "score-sde",
            "score-sde",
            {"hidden": 32, "lr": 2e-3, "ode_steps": 25, "n_dequant_samples": 2},
        ),
        ("flow-matching", "flow-matching", {}),
        ("nsf", "nsf", {}),
        ("realnvp", "realnvp", {}),
        ("ddpm", "ddpm", {}),
    ]
    for label, family, params in line_up:
        model = _fit(_make(family, "demo", budget, **params), data.train, validation_data=data.val)
        start = time.perf_counter()
        summary = model.nll_summary(data.test.x)
        scored = time.perf_counter() - start
        start = time.perf_counter()
        samples = model.sample(500, random_state=0)
        sampled = time.perf_counter() - start
        fd = frechet_distance(real, fx.transform(samples))
        table.add_row(
            label,
            f"{summary['bits_per_dim']:.3f}",
            summary["likelihood"],
            f"{summary.get('mc_std_err', 0.0):.3f}",
            f"{fd:.2f}",
            f"{scored:.1f}",
            f"{sampled:.1f}",
            str(model.n_parameters()),
        )
    console.print(table)
    console.print(
        "published anchors (CIFAR-10, GPU, not reproducible here): flow matching 2.99 "
        "bits/dim, score SDE (probability flow) 2.99, VDM 2.65"
    )


# --------------------------------------------------------------------------- throughput
def throughput(args: argparse.Namespace) -> None:
    """Training time of the same number of AdamW steps on the same batches (batch 128,
    float32, CPU) through bench/harness.py: ptheta's flow-matching loss (OT coupling) and
    torchcfm's ExactOptimalTransportConditionalFlowMatcher driving the same network from
    the same initial weights; ptheta's autoregressive nsf and zuko's NSF of the same size
    (parameter counts printed). The objective is each side's mean training loss on the
    data after the steps (flow matching: the regression loss, a stochastic number; nsf:
    NLL in nats)."""
    data = ptheta.datasets.load("digits")
    rng = np.random.default_rng(0)
    flat = 2 * (data.train.x + rng.random(data.train.x.shape)) / 17 - 1  # dequantised, [-1, 1]
    x = torch.as_tensor(flat, dtype=torch.float32)
    g = torch.Generator().manual_seed(0)
    batches = [x[torch.randint(len(x), (BATCH,), generator=g)] for _ in range(STEPS)]
    spec = DataSpec("continuous", (64,))
    cases = []

    fm = ptheta.make("flow-matching", hidden=128, coupling="ot", device="cpu")

    def fm_module():
        torch.manual_seed(0)
        return fm._build_module(spec, None).train()

    def ours_fm():
        module = fm_module()
        return module.loss, list(module.parameters())

    try:
        from torchcfm.conditional_flow_matching import (
            ExactOptimalTransportConditionalFlowMatcher,
        )

        def theirs_fm():
            twin = fm_module()  # the same network and initial weights
            matcher = ExactOptimalTransportConditionalFlowMatcher(sigma=0.0)

            def loss(batch: torch.Tensor) -> torch.Tensor:
                x0 = torch.randn_like(batch)
                t, xt, ut = matcher.sample_location_and_conditional_flow(x0, batch)
                return (twin.net(xt, t) - ut).pow(2).mean(1)

            return loss, list(twin.parameters())

        cases.append(("flow-matching, OT coupling", "flow-matching loss after", [
            ("ptheta flow-matching", ours_fm), ("torchcfm ExactOT CFM", theirs_fm),
        ]))  # fmt: skip
    except ImportError as e:
        console.print(f"torchcfm missing ({e.name}): flow-matching comparison skipped")

    # zuko's NSF: MADE spline layers with reversed orderings, no linear mixing or
    # normalisation between them; ptheta's nsf with the same architecture
    nsf = ptheta.make("nsf", hidden=128, n_layers=4, n_bins=8, transform_type="autoregressive",
                      mixing="none", norm="none", device="cpu")  # fmt: skip

    def ours_nsf():
        torch.manual_seed(0)
        module = nsf._build_module(spec, None).train()
        with torch.no_grad():
            module.loss(batches[0])  # its data-dependent initialisation
        return module.loss, list(module.parameters())

    try:
        import zuko

        def theirs_nsf():
            torch.manual_seed(0)
            flow = zuko.flows.NSF(64, transforms=4, bins=8, hidden_features=(128, 128))
            return (lambda b: -flow().log_prob(b)), list(flow.parameters())

        cases.append(("nsf autoregressive, 4 layers, 8 bins", "train NLL after (nats)", [
            ("ptheta nsf", ours_nsf), ("zuko NSF", theirs_nsf),
        ]))  # fmt: skip
    except ImportError as e:
        console.print(f"zuko missing ({e.name}): nsf comparison skipped")
    for label, objective, makers in cases:
        for threads in args.threads:
            torch.manual_seed(0)  # the flow-matching losses draw noise from the global RNG
            result = compare(
                f"{label}, {STEPS} AdamW steps of batch {BATCH}",
                [training_side(name, make, batches, x) for name, make in makers],
                threads=threads,
                script=script_name(__file__),
                rounds=args.rounds,
                warmup=args.warmup,
                objective=objective,
                rtol=None,
                params={"steps": STEPS, "batch": BATCH},
                record=args.record,
            )
            print_comparison(result)
    console.print("target: ptheta ≥ 1.2× the peer (peer / ptheta ≥ 1.2)")


def sampling(budget: float) -> None:
    data = ptheta.datasets.load("toy2d-moons")
    model = _fit(_make("flow-matching", "explorer", budget), data.train, validation_data=data.val)
    table = Table(title="flow-matching on moons: sampling 2,000 points vs function evaluations")
    for col in ("solver", "NFE", "seconds", "MMD to test"):
        table.add_column(col, justify="right")
    settings = [("euler", s) for s in (1, 2, 4, 8)] + [("rk4", s) for s in (2, 4, 8, 16, 32)]
    settings.append(("dopri5", 0))
    for solver, steps in settings:
        # the fitted module integrates with its own solver: swap it (the weights stay)
        model.module.solver = ODESolver(solver, steps=max(steps, 1))
        start = time.perf_counter()
        samples = model.sample(2000, random_state=0)
        seconds = time.perf_counter() - start
        nfe = model.module.last_nfe
        table.add_row(solver, str(nfe), f"{seconds:.3f}", f"{mmd(data.test.x, samples):.4f}")
    console.print(table)


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--toy-time", type=float, default=20.0)
    p.add_argument("--digits-time", type=float, default=90.0)
    p.add_argument("--only", choices=("toys", "digits", "throughput", "sampling"))
    args = p.parse_args()
    if args.only in (None, "throughput"):
        throughput(args)
    torch.set_num_threads(2)
    if args.only in (None, "sampling"):
        sampling(args.toy_time)
    if args.only in (None, "toys"):
        toys(args.toy_time)
    if args.only in (None, "digits"):
        digits(args.digits_time)


if __name__ == "__main__":
    main()
