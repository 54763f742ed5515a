"""Benchmark: 256-level images: PixelCNN with a softmax or a logistic mixture head, and the VAE.

Two synthetic 8-bit sets (no download), built from scikit-learn's 8×8 digits split by
source image (no test image is a shifted copy of a training one):

- ``grey28``: (1, 28, 28), digits zoomed 3.5× (``scipy.ndimage.zoom``, cubic), shifted by
  up to 2 pixels, scaled to 0..255, plus seeded Gaussian noise (sd 4 levels) so that every
  level occurs; 1,300 training, 200 validation, 297 test images;
- ``colour32``: (3, 32, 32), digits zoomed 4× and painted with a random foreground and
  background colour per image (correlated channels), noise as above; same split;
- ``digits17`` (not a default): scikit-learn's 8×8 digits themselves, 17 levels, the
  standard split of ``ptheta.datasets.load("digits")``: where ``output="auto"`` of
  PixelCNN switches from the softmax (≤ 16 levels) to the mixture, measured.

``--part throughput``: median time of one PixelCNN training step (forward, backward,
Adam; batch 32; default size) with each head on each set, the heads interleaved round by
round so that load falls on both alike.

``--part budget`` (default): each model is fitted with the same ``max_time``
(``--budget`` seconds of training) at its defaults otherwise, and reports test bits/dim
(nats / (D · ln 2), the standard unit for 8-bit images), training examples/s (steps ·
batch / training seconds, validation included) and the wall time of fit + score; the
uniform distribution is exactly 8 bits/dim and the independent model (one 256-level
categorical per entry) is the baseline a model must beat. The 1-minute load average is
printed with every line: the machine is shared, timings are noisy.

    /work/main/.venv-bench/bin/python bench/images_256.py --threads 1 --budget 60
    /work/main/.venv-bench/bin/python bench/images_256.py --sets grey28 --models pixelcnn-mixture
    /work/main/.venv-bench/bin/python bench/images_256.py --part throughput --rounds 7
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import time
import warnings
from typing import Any

import numpy as np
import torch
from harness import append_record, pinned, script_name, step_times
from scipy import ndimage
from sklearn.datasets import load_digits

import ptheta
from ptheta.models.pixelcnn import GatedPixelCNN, PixelCNN

MODELS: dict[str, tuple[str, dict[str, Any]]] = {
    "pixelcnn-softmax": ("pixelcnn", {"output": "softmax"}),
    "pixelcnn-mixture": ("pixelcnn", {}),  # output="auto": the mixture above 16 levels
    "vae": ("vae", {}),  # decoder="auto": the mixture above 16 levels
    "vae-one-logistic": ("vae", {"decoder": "discretised-logistic"}),
    "independent": ("independent", {}),
}


def images256(kind: str, seed: int = 0) -> dict[str, np.ndarray]:
    """{"train", "val", "test"}: int64 (N, C, H, W) images with levels 0..255 (0..16 for
    ``digits17``)."""
    if kind == "digits17":
        data = ptheta.datasets.load("digits")
        split = {"train": data.train, "val": data.val, "test": data.test}
        return {k: np.asarray(v.x).reshape(-1, 1, 8, 8).astype(np.int64) for k, v in split.items()}
    digits = load_digits().images / 16.0  # (1797, 8, 8) in [0, 1]
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(digits))
    parts = {"train": order[:1300], "val": order[1300:1500], "test": order[1500:]}
    zoom = 3.5 if kind == "grey28" else 4.0
    out = {}
    for name, index in parts.items():
        rows = []
        for i in index:
            big = np.clip(ndimage.zoom(digits[i], zoom, order=3), 0, 1)  # (28, 28) or (32, 32)
            big = ndimage.shift(big, rng.integers(-2, 3, size=2), order=0)
            if kind == "grey28":
                img = big[None] * 255.0
            else:
                fg, bg = rng.uniform(0, 255, size=(2, 3, 1, 1))
                img = bg + (fg - bg) * big[None]  # (3, 32, 32)
            img = img + rng.normal(0, 4, size=img.shape)
            rows.append(np.clip(np.rint(img), 0, 255))
        out[name] = np.stack(rows).astype(np.int64)
    return out


def load() -> float:
    return os.getloadavg()[0]


def run(name: str, data: dict[str, np.ndarray], budget: float, seed: int) -> dict[str, Any]:
    family, params = MODELS[name]
    d = math.prod(data["test"].shape[1:])
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if family == "independent":
            model = ptheta.make(family).fit(data["train"])
        else:
            model = ptheta.make(family, **params, max_time=budget, random_state=seed)
            model.fit(data["train"], validation_data=data["val"])
        scores = model.score_samples(data["test"])
    wall = time.perf_counter() - start
    nats = float(-scores.mean())
    record = {
        "model": name,
        "bits_per_dim": nats / (d * math.log(2)),
        "test_nats": nats,
        "finite": bool(np.isfinite(scores).all()),
        "wall_s": wall,
        "load": load(),
    }
    if family != "independent":
        record.update(
            steps=model.n_steps_,
            epochs=len(model.history_),
            examples_per_s=model.n_steps_ * model.batch_size / model.train_seconds_,
            train_losses=[round(h["train_loss"], 2) for h in model.history_],
            choice=getattr(model, "output_", None) or getattr(model, "decoder_", None),
            parameters=sum(p.numel() for p in model.module.parameters()),
        )
    return record


def throughput(sets: list[str], rounds: int, batch: int = 32) -> list[dict[str, Any]]:
    """Median seconds per PixelCNN training step, softmax vs mixture head, interleaved."""
    defaults = PixelCNN().get_params()
    nets = {}
    for kind in sets:
        x = torch.as_tensor(images256(kind)["train"][:batch])
        k = int(x.max()) + 1
        for output in ("softmax", "logistic-mixture"):
            torch.manual_seed(0)
            nets[(kind, output)] = (GatedPixelCNN(
                tuple(x.shape[1:]), k, channels=defaults["channels"],
                n_layers=defaults["n_layers"], output=output,
            ), x)  # fmt: skip
    before = load()
    times = step_times(nets, rounds)
    records = []
    for (kind, output), ts in times.items():
        median = statistics.median(ts)
        records.append({"part": "throughput", "set": kind, "output": output,
                        "seconds_per_step": median, "examples_per_s": batch / median,
                        "min_s": min(ts), "max_s": max(ts), "load": [before, load()]})  # fmt: skip
        print(f"  {kind:9s} pixelcnn {output:17s} batch {batch}: {median * 1000:7.0f} ms/step "
              f"(min {min(ts) * 1000:.0f}, max {max(ts) * 1000:.0f}), "
              f"{batch / median:6.1f} examples/s, load {before:.2f} → {load():.2f}",
              flush=True)  # fmt: skip
    return records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("budget", "throughput"), default="budget")
    parser.add_argument("--rounds", type=int, default=5, help="timed steps (throughput)")
    parser.add_argument("--threads", type=int, default=1, help="torch / BLAS threads")
    parser.add_argument("--budget", type=float, default=60.0, help="max_time per model, s")
    parser.add_argument("--sets", default="grey28,colour32")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-record", dest="record", action="store_false")
    args = parser.parse_args()
    with pinned(args.threads):
        if args.part == "throughput":
            for record in throughput(args.sets.split(","), args.rounds):
                if args.record:
                    append_record(script_name(__file__), {"threads": args.threads, **record})
            return
        for kind in args.sets.split(","):
            data = images256(kind, args.seed)
            shape = data["train"].shape
            uniform = math.log2(int(data["train"].max()) + 1)
            print(f"{kind}: train {shape}, val {len(data['val'])}, test {len(data['test'])}; "
                  f"uniform {uniform:.3f} bits/dim; max_time={args.budget:.0f} s, "
                  f"{args.threads} thread(s)", flush=True)  # fmt: skip
            for name in args.models.split(","):
                r = run(name, data, args.budget, args.seed)
                rate = r.get("examples_per_s")
                print(
                    f"  {name:18s} {r['bits_per_dim']:6.3f} bits/dim "
                    f"({r['test_nats']:9.1f} nats){'' if r['finite'] else ' NON-FINITE'}"
                    + (f", {rate:6.1f} ex/s, {r['steps']} steps, {r['epochs']} epochs, "
                       f"{r['parameters'] / 1e6:.2f} M params, {r['choice']}" if rate else "")
                    + f", {r['wall_s']:.0f} s wall, load {r['load']:.2f}",
                    flush=True,
                )  # fmt: skip
                if args.record:
                    append_record(
                        script_name(__file__),
                        {"set": kind, "budget": args.budget, "threads": args.threads, **r},
                    )


if __name__ == "__main__":
    main()
