"""Benchmark: DDPM bound on digits and a 2-D toy under a fixed CPU budget, DDIM vs ancestral.

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

    .venv/bin/python bench/diffusion.py --budget 90 --threads 1
"""

from __future__ import annotations

import argparse
import math
import time
import warnings

import numpy as np
import torch
from rich.console import Console
from rich.table import Table
from sklearn.linear_model import LogisticRegression

import ptheta
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=90.0, help="training seconds per model")
    parser.add_argument("--timesteps", type=int, default=1000)
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument("--n-test", type=int, default=120, help="test examples scored (digits)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args()
    # on a shared machine more threads than free cores make small convolutions ~20× slower
    torch.set_num_threads(args.threads)
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


if __name__ == "__main__":
    main()
