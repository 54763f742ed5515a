"""Benchmark: GAN mode coverage on 8gaussians over several seeds, non-saturating vs WGAN-GP.

Each run fits ptheta's ``gan`` (MLP 64-64, latent_dim 2, batch 64, lr 2e-3, CPU) on the
training split of ``toy2d-8gaussians`` and draws 2000 samples. A sample is high-quality
when it lies within 3 std (0.6) of its nearest mode centre; a mode is covered when at least
2% of the samples are high-quality ones assigned to it (uniform coverage: 12.5% each).
This is the rule of tests/models/test_gan.py. Not a test: GAN training is chaotic, and
the spread over seeds is the point. WGAN-GP updates its generator once per 6 steps, so it
gets more epochs; times per fit are wall-clock and depend on what else the CPU runs.

    .venv/bin/python bench/gan_modes.py [--seeds 5] [--epochs 15] [--wgan-epochs 60]
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
from rich.console import Console
from rich.table import Table

import ptheta
from ptheta.data.toy2d import _G8_CENTRES, _G8_STD

console = Console(width=130)
COMMON = {"hidden": [64, 64], "latent_dim": 2, "batch_size": 64, "lr": 2e-3, "device": "cpu"}


def coverage(samples: np.ndarray) -> tuple[int, float]:
    """(modes covered, fraction of high-quality samples); see the module docstring."""
    dist = np.linalg.norm(samples[:, None] - _G8_CENTRES[None], axis=2)  # (N, 8)
    good = dist.min(1) < 3 * _G8_STD
    counts = np.bincount(dist.argmin(1)[good], minlength=8)
    return int((counts >= 0.02 * len(samples)).sum()), float(good.mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--wgan-epochs", type=int, default=60)
    args = parser.parse_args()
    data = ptheta.datasets.load("toy2d-8gaussians")
    variants = {
        "non-saturating, n_critic=2 (default)": {"epochs": args.epochs},
        "non-saturating, n_critic=1": {"epochs": args.epochs, "n_critic": 1},
        "non-saturating + spectral norm": {"epochs": args.epochs, "spectral_norm": True},
        "wgan-gp, n_critic=5 (default)": {"epochs": args.wgan_epochs, "loss": "wgan-gp"},
    }
    table = Table(title=f"8gaussians mode coverage over {args.seeds} seeds (2000 samples each)")
    for col in ("variant", "epochs", "modes covered per seed", "mean", "≥6 of 8",
                "high-quality fraction", "s / fit"):  # fmt: skip
        table.add_column(col, justify="right")
    for label, params in variants.items():
        modes, quality, seconds = [], [], []
        for seed in range(args.seeds):
            start = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                gan = ptheta.make("gan", **COMMON, **params, random_state=seed).fit(data.train)
            seconds.append(time.perf_counter() - start)
            m, q = coverage(gan.sample(2000, random_state=0))
            modes.append(m)
            quality.append(q)
        table.add_row(
            label,
            str(params["epochs"]),
            " ".join(map(str, modes)),
            f"{np.mean(modes):.1f}",
            f"{sum(m >= 6 for m in modes)}/{len(modes)}",
            f"{np.mean(quality):.2f} ± {np.std(quality):.2f}",
            f"{np.mean(seconds):.1f}",
        )
        console.print(f"done: {label}")
    console.print(table)


if __name__ == "__main__":
    main()
