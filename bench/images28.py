"""A synthetic 28×28 binary digit set, for benchmarks at MNIST's size without a download.

scikit-learn's 8×8 digits (1,797 images) zoomed 3.5× with ``scipy.ndimage.zoom``, each
copy shifted by up to 2 pixels and thresholded: 2,600 training, 400 validation and 594
test images of shape (1, 28, 28), with their labels. Real MNIST is ``--data mnist`` (or
``binarized-mnist``), downloaded on first use; this set stands in where there is no network.

    python bench/images28.py bench/results/digits28.npz   # writes x_/y_ train, val, test
    ptheta compare --data bench/results/digits28.npz --models all --budget 60s \\
        --out bench/results/compare28
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from scipy import ndimage
from sklearn.datasets import load_digits


def digits28(seed: int = 0, copies: int = 2, labels: bool = False) -> dict[str, np.ndarray]:
    """Binary 28×28 digits (N, 1, 28, 28) int64 for "train", "val" and "test" (and
    "y_train", … when ``labels``): the split is by source image, so no test image is a
    shifted copy of a training one."""
    digits = load_digits()
    images = digits.images / 16.0
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(images))
    parts = {"train": order[:1300], "val": order[1300:1500], "test": order[1500:]}
    out = {}
    for name, index in parts.items():
        rows, ys = [], []
        for _ in range(copies):
            for i in index:
                big = ndimage.zoom(images[i], 3.5, order=1)  # (28, 28)
                big = ndimage.shift(big, rng.integers(-2, 3, size=2), order=0)
                rows.append(big > 0.45)
                ys.append(digits.target[i])
        out[name] = np.stack(rows).astype(np.int64)[:, None]
        if labels:
            out["y_" + name] = np.asarray(ys, dtype=np.int64)
    return out


def main() -> None:
    path = Path(sys.argv[1] if len(sys.argv) > 1 else "bench/results/digits28.npz")
    data = digits28(labels=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for key, values in data.items():
        label = key.startswith("y_")  # images as bool: read as binary, not 256 levels
        arrays[key if label else "x_" + key] = values.astype(np.uint8 if label else bool)
    np.savez_compressed(path, **arrays)
    shapes = ", ".join(f"{k} {v.shape}" for k, v in arrays.items())
    print(f"wrote {path}: {shapes}")


if __name__ == "__main__":
    main()
