"""Benchmark: flows' dequantisation default (issue 19): uniform vs variational vs auto.

1. Training-step cost: the median time of one AdamW step (forward + backward, float32, one
   thread) of realnvp, glow and maf at defaults, with uniform and with variational
   dequantisation (``"auto"``'s choice on discrete data), steps interleaved so that load
   from other processes falls on both alike: on digits 8×8 (17 levels, batch 128) and on
   28×28 binary images (batch 32). For glow also q(u | x) as wide as the flow (the
   variational dequantiser before issue 19), to show why glow's q is a quarter of it.
2. digits 8×8 (standard split) at defaults (50 epochs, early stopping on the validation
   split): realnvp and glow with dequantization = uniform, variational and auto: test
   bits/dim of the bound, fit time, epochs. Target: realnvp at defaults ≤ 2.2 bits/dim.
3. 28×28 binary images (sklearn's digits upsampled ×3.5 and thresholded, a stand-in for
   binarised MNIST, which this machine does not have) at defaults under ``--budget``
   seconds of training each: uniform vs auto, test nats (the bound) and steps taken, so the
   cost of q under a time budget shows in the result.

Timings on a shared 2-core CPU are noisy (every number here was measured with other
processes running). Run:

    OMP_NUM_THREADS=2 .venv/bin/python bench/flow_defaults.py [--only steps|digits|28]
        [--budget 60] [--families realnvp,glow]
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
import warnings

import numpy as np
import torch
from scipy.ndimage import zoom
from sklearn.datasets import load_digits

import ptheta
from ptheta.data.spec import DataSpec, Split
from ptheta.models.flows import MAF, Glow, RealNVP


def _fit(model, train, val) -> float:
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(train, validation_data=val)
    return time.perf_counter() - start


def _stepper(cls, spec: DataSpec, batch: int, width: float | None = None, **params):
    """One training step of ``cls`` at defaults on random levels of ``spec``, timed."""
    torch.manual_seed(0)
    model = cls(device="cpu", **params)
    if width is not None:
        model.dequantizer_width = width  # an instance override of the class's rule
    module = model._build_module(spec, None).float().train()
    opt = torch.optim.AdamW(module.parameters(), 1e-3)
    x = torch.randint(spec.n_categories, (batch, *spec.event_shape))

    def step() -> float:
        start = time.perf_counter()
        loss = module.loss(x).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        return time.perf_counter() - start

    return step


def steps(rounds: int = 10) -> None:
    torch.set_num_threads(1)
    cases = [
        ("digits 8×8, 17 levels", DataSpec("categorical", (1, 8, 8), n_categories=17), 128),
        ("28×28 binary", DataSpec("binary", (1, 28, 28)), 32),
    ]
    print("1. training-step cost (median of interleaved steps, 1 thread, float32)")
    for title, spec, batch in cases:
        for cls in (RealNVP, Glow, MAF):
            sides = {
                "uniform": _stepper(cls, spec, batch, dequantization="uniform"),
                "auto (variational)": _stepper(cls, spec, batch),
            }
            if cls is Glow:
                sides["variational, q as wide as the flow"] = _stepper(
                    cls, spec, batch, width=1.0, dequantization="variational"
                )
            times: dict[str, list[float]] = {name: [] for name in sides}
            for step in sides.values():
                step()  # warm-up
            for _ in range(rounds):
                for name, step in sides.items():
                    times[name].append(step())
            base = statistics.median(times["uniform"])
            text = ", ".join(
                f"{name} {statistics.median(t) * 1e3:.0f} ms ({statistics.median(t) / base:.2f}×)"
                for name, t in times.items()
            )
            print(f"   {title}, {cls.name}: {text}", flush=True)


def digits(families: list[str]) -> None:
    data = ptheta.datasets.load("digits")
    d = data.spec.n_dims
    print("2. digits 8×8 at defaults: test bits/dim of the bound (target realnvp ≤ 2.2)")
    for name in families:
        for choice in ("uniform", "variational", "auto"):
            model = ptheta.make(name, dequantization=choice, device="cpu")
            seconds = _fit(model, data.train, data.val)
            scores, std = model.score_samples(data.test.x, return_std=True)
            bpd = -scores.mean() / (d * math.log(2))
            print(
                f"   {name} dequantization={choice!r} → dequantization_="
                f"{model.dequantization_!r}: {bpd:.3f} bits/dim (MC std error of the mean "
                f"{np.sqrt((std**2).sum()) / len(std) / (d * math.log(2)):.4f}), "
                f"{-scores.mean():.2f} nats, fit {seconds:.0f} s, {len(model.history_)} "
                f"epochs (best {model.best_epoch_}), {model.n_parameters():,} parameters",
                flush=True,
            )


def _binary_28(seed: int = 0) -> tuple[Split, Split, Split]:
    """sklearn's 1,797 digits at 28×28, thresholded; a 1,297 / 200 / 300 split."""
    images = load_digits().images / 16.0
    big = np.stack([zoom(im, 3.5, order=1) for im in images])
    x = (big > 0.5).astype(np.int64)[:, None]  # (N, 1, 28, 28)
    order = np.random.default_rng(seed).permutation(len(x))
    spec = DataSpec("binary", (1, 28, 28))
    parts = np.split(order, [1297, 1497])
    return tuple(Split(x[i], None, spec) for i in parts)


def binary_28(budget: float, families: list[str]) -> None:
    train, val, test = _binary_28()
    p = np.clip(train.x.mean(0), 1e-3, 1 - 1e-3)
    independent = -(test.x * np.log(p) + (1 - test.x) * np.log1p(-p)).sum((1, 2, 3)).mean()
    print(
        f"3. 28×28 binary, {len(train.x)} training images, defaults with max_time={budget:g} s: "
        f"test NLL (nats; independent pixels: {independent:.1f})"
    )
    for name in families:
        for choice in ("uniform", "auto"):
            model = ptheta.make(name, dequantization=choice, device="cpu", max_time=budget)
            seconds = _fit(model, train, val)
            start = time.perf_counter()
            nll = -model.score(test)
            score_s = time.perf_counter() - start
            print(
                f"   {name} dequantization={choice!r} ({model.dequantization_}): {nll:.1f} nats, "
                f"{model.n_steps_} steps in {model.train_seconds_:.0f} s "
                f"(fit {seconds:.0f} s; scoring {len(test.x)} images {score_s:.0f} s), "
                f"stopped={model.stopped_}",
                flush=True,
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["steps", "digits", "28"])
    parser.add_argument("--budget", type=float, default=60.0, help="seconds per 28×28 fit")
    parser.add_argument("--families", default="realnvp,glow", help="of parts 2 and 3")
    args = parser.parse_args()
    families = args.families.split(",")
    if args.only in (None, "steps"):
        steps()
    if args.only in (None, "digits"):
        digits(families)
    if args.only in (None, "28"):
        binary_28(args.budget, families)


if __name__ == "__main__":
    main()
