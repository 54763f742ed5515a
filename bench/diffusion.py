"""Benchmark: DDPM training vs diffusers, the bound on digits and a 2-D toy, DDIM vs ancestral.

Part 0 (``--only throughput``; bench/harness.py: threads pinned, warm-up, interleaved
rounds, 1 and 2 threads): training time of the same number of AdamW steps (lr 1e-3) on the
same batches of 128 digits images (8×8, 17 levels mapped to the level centres in [−1, 1],
so both sides see identical inputs), with the same ε-prediction loss (MSE between the
drawn and predicted noise, t uniform, the linear β schedule of T = 1000): ptheta's
``DDPM.fit`` (the whole Trainer: data loading, grad clipping, AdamW, LR schedule,
logging), ptheta's network in a plain AdamW loop, and diffusers' ``UNet2DModel`` +
``DDPMScheduler`` in the same loop, configured like ptheta's U-Net at ``hidden=64`` (two
resolutions, 64 → 128 channels, one ResNet block per level, GroupNorm with 8 groups,
scale-shift time conditioning with a 128-wide time embedding, no attention) and, since
diffusers' block layout has more ResNet blocks per level (2.6× the parameters at the same
channels), also narrowed to the same parameter count (40 → 80 channels). Parameter counts
and forward+backward FLOPs per step are printed side by side; the objective is each
network's ε-MSE on all 1000 images after training (fixed noise), not expected equal.

Part 1 (digits, 17 levels, standard split): a U-Net DDPM trained for ``--budget`` seconds;
the bound −log P(x) ≤ L on the first ``--n-test`` test examples (T U-Net passes each), in
nats per example and bits/dim (discretised Gaussian decoder, so a bound on the discrete
NLL). Part 2 (toy2d-8gaussians): an MLP DDPM, bound in
nats next to the toy's true entropy (the floor of any NLL). Part 3: sampling time of
T-step ancestral sampling vs 50-step DDIM, with two sample-quality proxies on digits: the
mean distance of each sample to its nearest test image (lower: closer to real data; the
same statistic for training images is the reference), and the mean top-class probability
a logistic-regression classifier trained on the training images gives the samples
(higher: more recognisable digits; its value on test images is the reference).

    .venv-bench/bin/python bench/diffusion.py --only throughput [--rounds 3] [--threads 1 2]
    .venv-bench/bin/python bench/diffusion.py --only bound --budget 90
"""

from __future__ import annotations

import argparse
import math
import time
import warnings
from collections.abc import Callable

import numpy as np
import torch
from harness import Side, compare, console, parser, print_comparison, script_name
from rich.console import Console
from rich.table import Table
from sklearn.linear_model import LogisticRegression

import ptheta
from ptheta.data.spec import DataSpec
from ptheta.models.diffusion import DDPM

TRAIN = {"lr": 2e-3, "batch_size": 128, "epochs": 10_000, "patience": None, "device": "cpu"}


def _fit(params: dict, data, budget: float) -> DDPM:
    model = DDPM(**params, **TRAIN, max_time=budget, validation_fraction=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model.fit(data.train)


def _timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def _nn_distance(samples: np.ndarray, reference: np.ndarray) -> float:
    """Mean Euclidean distance (gray levels) from each sample to its nearest reference row."""
    a = samples.reshape(len(samples), -1).astype(np.float64)
    b = reference.reshape(len(reference), -1).astype(np.float64)
    d2 = (a**2).sum(1)[:, None] + (b**2).sum(1)[None] - 2 * a @ b.T
    return float(np.sqrt(np.maximum(d2.min(1), 0)).mean())


# --------------------------------------------------------------------------- throughput
BATCH, STEPS, LR, T_TRAIN = 128, 16, 1e-3, 1000


def _flops(step: Callable[[], None]) -> float:
    """GFLOPs of one training step (forward + backward), by torch's FLOP counter."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        step()
    return counter.get_total_flops() / 1e9


def _loop_side(name: str, make: Callable[[], tuple], batches: list, x: torch.Tensor) -> Side:
    """Fresh network from a fixed seed, one AdamW step per batch; objective: the ε-MSE on
    all of x with noise and t from a fixed generator (outside the timer)."""

    def run():
        loss, _, params = make()
        opt = torch.optim.AdamW(params, lr=LR)
        for b in batches:
            value = loss(b)
            opt.zero_grad(set_to_none=True)
            value.backward()
            opt.step()
        return make, loss

    def objective(out) -> float:
        _, loss = out
        with torch.no_grad():
            return float(loss(x, torch.Generator().manual_seed(1)))

    loss, _, params = make()
    info = {
        "params": f"{sum(p.numel() for p in params):,}",
        "GFLOP/step": f"{_flops(lambda: loss(batches[0]).backward()):.1f}",
    }
    return Side(name, run, objective=objective, info=info)


def _ptheta_net(spec: DataSpec, channels_last: bool = True):
    def make():
        torch.manual_seed(0)
        net = DDPM(T_TRAIN, hidden=64, device="cpu")._build_module(spec, None).train()
        net.net.channels_last = channels_last

        def loss(b, gen=None):
            if gen is None:
                return net.loss(b).mean()
            t = torch.randint(1, T_TRAIN + 1, (len(b),), generator=gen)
            noise = torch.randn(b.shape, generator=gen)
            x0 = net.to_unit(b)
            return ((net.eps(net.q_sample(x0, t, noise), t) - noise) ** 2).mean()

        return loss, net, list(net.parameters())

    return make


def _diffusers_net(channels: tuple[int, int]):
    import diffusers.utils.import_utils as imports

    # the bench environment's torchvision does not match its torch; diffusers' UNet needs
    # none of it
    imports._torchvision_available = False
    from diffusers import DDPMScheduler, UNet2DModel

    scheduler = DDPMScheduler(num_train_timesteps=T_TRAIN, beta_schedule="linear")

    def make():
        torch.manual_seed(0)
        net = UNet2DModel(
            sample_size=8, in_channels=1, out_channels=1, layers_per_block=1,
            block_out_channels=channels, down_block_types=("DownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "UpBlock2D"), norm_num_groups=8,
            add_attention=False, resnet_time_scale_shift="scale_shift",
            time_embedding_dim=2 * channels[0],
        ).train()  # fmt: skip

        def loss(b, gen=None):
            x0 = ((2 * b.float() + 1) / 17 - 1).reshape(-1, 1, 8, 8)  # the level centres
            t = torch.randint(0, T_TRAIN, (len(b),), generator=gen)
            noise = torch.randn(x0.shape, generator=gen)
            pred = net(scheduler.add_noise(x0, noise, t), t).sample
            return ((pred - noise) ** 2).mean()

        return loss, net, list(net.parameters())

    return make


def _fit_side(data, batches: list, x: torch.Tensor) -> Side:
    """ptheta's whole DDPM.fit (the Trainer) for the same number of steps of the same batch
    size on the same 1000 images (its own shuffling; constant LR, no validation)."""
    epochs = max(1, len(batches) // math.ceil(len(data.x) / BATCH))
    settings = {
        "hidden": 64, "epochs": epochs, "batch_size": BATCH, "lr": LR, "schedule": "constant",
        "validation_fraction": 0, "patience": None, "device": "cpu", "random_state": 0,
    }  # fmt: skip

    def run():
        model = DDPM(T_TRAIN, **settings)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return model.fit(data)

    def objective(model) -> float:
        net = model.module
        gen = torch.Generator().manual_seed(1)
        t = torch.randint(1, T_TRAIN + 1, (len(x),), generator=gen)
        noise = torch.randn((len(x), 64), generator=gen)
        with torch.no_grad():
            return float(((net.eps(net.q_sample(net.to_unit(x), t, noise), t) - noise) ** 2).mean())

    steps = epochs * math.ceil(len(data.x) / BATCH)
    return Side("ptheta DDPM.fit (Trainer)", run, objective, info={"steps": steps})


def throughput(args: argparse.Namespace) -> None:
    digits = ptheta.datasets.load("digits")
    x = torch.as_tensor(digits.train.x, dtype=torch.long)  # (1000, 64), levels 0 … 16
    spec = DataSpec("categorical", (64,), n_categories=17, image_shape=(1, 8, 8))
    g = torch.Generator().manual_seed(0)
    steps = STEPS // 8 * 8  # whole epochs of 1000 / 128 → 8 steps for the Trainer side
    batches = [x[torch.randint(len(x), (BATCH,), generator=g)] for _ in range(steps)]
    sides = [_fit_side(digits.train, batches, x)]
    sides.append(_loop_side("ptheta DiffusionNetwork + AdamW", _ptheta_net(spec), batches, x))
    # the same network with the U-Net's activations in torch's default layout (before)
    plain = _ptheta_net(spec, channels_last=False)
    sides.append(_loop_side("ptheta network, NCHW layout", plain, batches, x))
    try:
        for channels in ((64, 128), (40, 80)):
            label = f"diffusers UNet2DModel {channels} + DDPMScheduler"
            sides.append(_loop_side(label, _diffusers_net(channels), batches, x))
    except ImportError:
        console.print("diffusers is not installed (make bench-setup): comparison skipped")
        return
    for threads in args.threads:
        result = compare(
            f"DDPM training, digits 8×8 (17 levels), {steps} AdamW steps of batch {BATCH}",
            sides,
            threads=threads,
            script=script_name(__file__),
            rounds=args.rounds,
            warmup=args.warmup,
            objective="ε-MSE after (fixed noise)",
            rtol=None,
            params={"steps": steps, "batch": BATCH, "lr": LR, "T": T_TRAIN},
            record=args.record,
        )
        print_comparison(result)
    console.print(
        "target: ptheta ≥ 1.2× the peer on identical work (the same-parameter-count row; "
        "GFLOP/step says how much work each side does)"
    )


def bound(args: argparse.Namespace) -> None:
    console = Console(width=120)
    T = args.timesteps
    digits = ptheta.datasets.load("digits")
    toy = ptheta.datasets.load("toy2d-8gaussians")
    table = Table(title=f"DDPM bound, T = {T}, {args.budget:.0f} s CPU training per model")
    for col in ("data", "denoiser", "train steps", "bound (nats)", "bits/dim", "reference",
                "eval s"):  # fmt: skip
        table.add_column(col, justify="right")

    unet = _fit({"timesteps": T, "architecture": "unet", "hidden": 32}, digits, args.budget)
    # the full bound costs T U-Net passes per example: a fixed subset of the test split
    scores, seconds = _timed(lambda: unet.score_samples(digits.test.x[: args.n_test]))
    nll = -scores.mean()
    table.add_row(
        f"digits (test[:{args.n_test}])", "U-Net 32", str(unet.n_steps_), f"{nll:.1f}",
        f"{nll / (64 * math.log(2)):.3f}", "discrete NLL bound", f"{seconds:.0f}",
    )  # fmt: skip

    mlp = _fit({"timesteps": T, "hidden": 128, "n_blocks": 3}, toy, args.budget)
    scores, seconds = _timed(lambda: mlp.score_samples(toy.test))
    nll = -scores.mean()
    table.add_row(
        "8gaussians (test)", "MLP 128×3", str(mlp.n_steps_), f"{nll:.3f}",
        f"{nll / (2 * math.log(2)):.3f}", f"entropy {toy.entropy:.3f}", f"{seconds:.0f}",
    )  # fmt: skip
    console.print(table)

    # what the bound costs: every t vs the stratified estimate (score_samples' default)
    cost = Table(title=f"digits bound: cost and Monte-Carlo error, test[:{args.n_cost}]")
    for col in ("sum over t", "network passes / row", "rows / s", "NLL", "rms MC s.e./row"):
        cost.add_column(col, justify="right")
    rows = digits.test.x[: args.n_cost]
    draws = unet.n_bound_samples
    for strata in (None, 50):
        unet.set_params(bound_strata=strata)
        (scores, stderr), seconds = _timed(lambda: unet.score_samples(rows, return_std=True))
        label = "every t" if strata is None else f"{strata} strata (log SNR)"
        passes = draws * (T if strata is None else 1 + strata)
        cost.add_row(label, str(passes), f"{len(rows) / seconds:.3f}", f"{-scores.mean():.2f}",
                     f"{np.sqrt((stderr**2).mean()):.2f}")  # fmt: skip
    console.print(cost)

    x_train, x_test = digits.train.x, digits.test.x
    clf = LogisticRegression(max_iter=2000).fit(x_train / 16.0, digits.train.y)
    quality = Table(title=f"digits sampling, {args.samples} samples")
    for col in ("sampler", "steps", "seconds", "1-NN dist to test", "classifier conf."):
        quality.add_column(col, justify="right")
    n = args.samples
    for label, draw, steps in (
        ("ancestral", lambda: unet.sample_ancestral(n, random_state=0), T),
        ("DDIM η=0", lambda: unet.sample_ddim(n, min(50, T), random_state=0), min(50, T)),
    ):
        samples, seconds = _timed(draw)
        conf = clf.predict_proba(samples.reshape(n, -1) / 16.0).max(1).mean()
        quality.add_row(label, str(steps), f"{seconds:.1f}", f"{_nn_distance(samples, x_test):.2f}",
                        f"{conf:.3f}")  # fmt: skip
    # references: real images (the classifier's confidence on held-out test images)
    conf = clf.predict_proba(x_test[:n] / 16.0).max(1).mean()
    quality.add_row("real images", "", "", f"{_nn_distance(x_train[:n], x_test):.2f} (train)",
                    f"{conf:.3f} (test)")  # fmt: skip
    console.print(quality)


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--budget", type=float, default=90.0, help="training seconds per model")
    p.add_argument("--timesteps", type=int, default=1000)
    p.add_argument("--samples", type=int, default=100)
    p.add_argument("--n-test", type=int, default=120, help="test examples scored (digits)")
    p.add_argument("--n-cost", type=int, default=8, help="test rows timed for the bound's cost")
    p.add_argument("--only", choices=("throughput", "bound"))
    args = p.parse_args()
    if args.only in (None, "throughput"):
        throughput(args)
    if args.only in (None, "bound"):
        # on a shared machine more threads than free cores make small convolutions ~20×
        # slower: the bound part runs at the first thread count
        torch.set_num_threads(args.threads[0])
        bound(args)


if __name__ == "__main__":
    main()
