"""Benchmark: PixelCNN training throughput at 28×28 and the NLL its defaults reach in a budget.

Two parts, on a synthetic set of 28×28 binary digits (scikit-learn's 8×8 digits zoomed
3.5× with scipy.ndimage.zoom, shifted by up to 2 pixels, thresholded; 2,600 training,
400 validation and 594 test images, split by source digit so that no test digit has a
shifted twin in training) and on digits 8×8 (17 levels, the standard split):

- ``throughput``: examples/s of one training step (forward, backward, Adam) of the
  default network and of the ``"large"`` preset's, at batch 32 and 64; the
  configurations are interleaved and each figure is the median of ``--repeats`` steps.
- ``budget``: test NLL (nats per image) of ``make("pixelcnn", max_time=...)`` at its
  defaults and with the ``"large"`` preset, on the 28×28 set (``--budget``, default 300 s;
  target ≤ 100 nats) and on digits 8×8 (``--digits-budget``, default 120 s; target ≤ 85).

On a shared machine the numbers are noisy: the load average is printed with them, and
``--threads 1`` gives steadier timings than oversubscribed cores.

    .venv/bin/python bench/pixelcnn_throughput.py --part throughput --threads 1
    .venv/bin/python bench/pixelcnn_throughput.py --part budget --budget 300 --digits-budget 120
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import warnings
from typing import Any

import numpy as np
import torch
from harness import step_times
from images28 import digits28

import ptheta
from ptheta.models.pixelcnn import GatedPixelCNN, PixelCNN

CONFIGS = {"default": {}, "large": PixelCNN.preset("large")}


def load() -> str:
    return "load average " + ", ".join(f"{v:.2f}" for v in os.getloadavg())


def throughput(x: np.ndarray, repeats: int) -> None:
    """Median examples/s of a training step, per configuration and batch size."""
    params = {name: {**PixelCNN().get_params(), **cfg} for name, cfg in CONFIGS.items()}
    nets = {}
    for name, p in params.items():
        for batch in (32, 64):
            torch.manual_seed(0)
            net = GatedPixelCNN(x.shape[1:], 2, channels=p["channels"], n_layers=p["n_layers"])
            nets[(name, batch)] = (net, torch.as_tensor(x[:batch]))
    print(f"throughput before: {load()}", flush=True)
    times = step_times(nets, repeats)
    print(f"throughput after:  {load()}")
    for (name, batch), ts in times.items():
        median = statistics.median(ts)
        print(
            f"  {name:8s} channels={params[name]['channels']:3d} "
            f"n_layers={params[name]['n_layers']} batch={batch:3d}: "
            f"{median * 1000:7.0f} ms/step, {batch / median:6.1f} examples/s"
        )


def budget(data: Any, seconds: float, what: str, names: list[str]) -> None:
    """Test NLL after fitting each configuration in ``names`` for ``seconds``."""
    for name in names:
        cfg = CONFIGS[name]
        model = ptheta.make("pixelcnn", **cfg, max_time=seconds)  # the defaults otherwise
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if isinstance(data, dict):
                model.fit(data["train"], validation_data=data["val"])
                nll = -model.score(data["test"])
            else:
                model.fit(data.train, validation_data=data.val)
                nll = -model.score(data.test)
        rate = model.n_steps_ * model.batch_size / model.train_seconds_
        print(
            f"  {what} {name:8s} max_time={seconds:.0f}: test {nll:.2f} nats, "
            f"{model.n_steps_} steps, {len(model.history_)} epochs, {rate:.1f} examples/s "
            f"in training, {time.perf_counter() - start:.0f} s wall ({load()})",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("throughput", "budget", "all"), default="all")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    parser.add_argument("--repeats", type=int, default=7, help="timed steps per configuration")
    parser.add_argument("--budget", type=float, default=300.0, help="seconds, 28×28")
    parser.add_argument("--digits-budget", type=float, default=120.0, help="seconds, 8×8")
    parser.add_argument("--configs", default="default,large", help="for --part budget")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {load()}")
    data = digits28()
    if args.part in ("throughput", "all"):
        throughput(data["train"], args.repeats)
    if args.part in ("budget", "all"):
        names = args.configs.split(",")
        if args.budget:
            budget(data, args.budget, "28x28 binary", names)
        if args.digits_budget:
            budget(ptheta.datasets.load("digits"), args.digits_budget, "digits 8x8", names)


if __name__ == "__main__":
    main()
