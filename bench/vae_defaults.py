"""Benchmark: the VAE at its defaults on images (issue 19).

Prints, for each part, the model's choice (``architecture_``, ``hidden_``, decoder), its
parameter count, training time and throughput, and test numbers in nats (bits/dim for the
256-level set):

1. digits 8×8 (17 levels, standard split): ``make("vae")`` (architecture="auto": conv)
   and ``make("vae", architecture="mlp")``, each at defaults with early stopping on the
   validation split: test −ELBO and −IWAE_100. Target: the default's −ELBO ≤ 95 nats
   (the book's MLP: 100.5; the MLP default before issue 19: 101.7).
2. 28×28 binary images (sklearn's digits upsampled ×3.5 and thresholded: a stand-in for
   binarised MNIST, which this machine does not have) at defaults under ``--budget``
   seconds: the loss stays finite (the conv VAE's loss was infinite at step 3), test
   −IWAE_k in nats, and the independent-pixels baseline on the same split.
3. 28×28 images with 256 grey levels (the same digits, smooth intensities plus noise) at
   defaults under ``--budget``: parameters (the one-hot encoder had 103.8 M), examples/s,
   test bits/dim against the uniform 8.

Timings on a shared 2-core CPU are noisy. Run:

    OMP_NUM_THREADS=2 .venv/bin/python bench/vae_defaults.py [--budget 120] [--skip-digits]
"""

from __future__ import annotations

import argparse
import math
import time
import warnings

import numpy as np
from scipy.ndimage import zoom
from sklearn.datasets import load_digits

import ptheta
from ptheta.data.spec import DataSpec, Split


def _fit(model, train, val):
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(train, validation_data=val)
    return time.perf_counter() - start


def _describe(name: str, model, seconds: float, n_train: int) -> str:
    steps = model.n_steps_ * model.batch_size
    return (
        f"{name}: architecture_={model.architecture_} hidden_={model.hidden_} "
        f"decoder={type(model.module.output).__name__} params={model.n_parameters():,} "
        f"epochs={len(model.history_)} fit={seconds:.0f}s ({steps / model.train_seconds_:.0f} "
        f"train ex/s, n={n_train}) stopped={model.stopped_}"
    )


def digits_8x8() -> None:
    data = ptheta.datasets.load("digits")
    for name, params in {
        "vae (defaults)": {},
        "vae architecture=mlp": {"architecture": "mlp"},
    }.items():
        model = ptheta.make("vae", device="cpu", **params)
        seconds = _fit(model, data.train, data.val)
        elbo = -float(model.elbo(data.test).mean())
        iwae = -float(model.score(data.test))
        print(_describe(name, model, seconds, len(data.train.x)))
        print(f"    digits test: −ELBO {elbo:.2f} nats, −IWAE_100 {iwae:.2f} nats (target "
              f"−ELBO ≤ 95; KL {model.kl_:.1f}, active units {model.active_units_})")  # fmt: skip


def _images_28(levels: int, seed: int = 0) -> tuple[Split, Split, Split]:
    """sklearn's 1,797 digits at 28×28: thresholded (levels=2) or 256 grey levels."""
    images = load_digits().images / 16.0
    big = np.clip(np.stack([zoom(im, 3.5, order=1) for im in images]), 0, 1)
    rng = np.random.default_rng(seed)
    if levels == 2:
        x = (big > 0.5).astype(np.int64)
        spec = DataSpec("binary", (1, 28, 28))
    else:
        noisy = big * (levels - 1) + rng.normal(0, 4, big.shape)
        x = np.clip(np.round(noisy), 0, levels - 1).astype(np.int64)
        spec = DataSpec("categorical", (1, 28, 28), levels)
    x = x[rng.permutation(len(x)), None]
    parts = np.split(x, [1300, 1500])
    return tuple(Split(p, None, spec) for p in parts)


def images_28(levels: int, budget: float, k: int) -> None:
    train, val, test = _images_28(levels)
    model = ptheta.make("vae", device="cpu", max_time=budget, iwae_samples=k)
    seconds = _fit(model, train, val)
    losses = [h["train_loss"] for h in model.history_]
    nll = -float(model.score(test))
    d = 28 * 28
    print(_describe(f"vae (defaults, max_time={budget:.0f})", model, seconds, len(train.x)))
    print(f"    train loss finite at every epoch: {bool(np.all(np.isfinite(losses)))} "
          f"(first {losses[0]:.1f}, last {losses[-1]:.1f})")  # fmt: skip
    if levels == 2:
        independent = ptheta.make("independent").fit(train)
        print(f"    test −IWAE_{k}: {nll:.1f} nats; independent pixels: "
              f"{-float(independent.score(test)):.1f}; uniform: {d * math.log(2):.1f}")  # fmt: skip
    else:
        mlp = ptheta.make("vae", architecture="mlp").build_module(train.spec)
        print(f"    test −IWAE_{k}: {nll / (d * math.log(2)):.3f} bits/dim (uniform: 8); the "
              f"MLP at defaults would have {sum(p.numel() for p in mlp.parameters()):,} "
              "parameters")  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--budget", type=float, default=120.0, help="max_time of the 28×28 fits")
    p.add_argument("--k", type=int, default=20, help="importance samples of the 28×28 scores")
    p.add_argument("--skip-digits", action="store_true")
    args = p.parse_args()
    if not args.skip_digits:
        digits_8x8()
    images_28(2, args.budget, args.k)
    images_28(256, args.budget, args.k)


if __name__ == "__main__":
    main()
