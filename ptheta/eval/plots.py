"""Pictures of samples and data: image grids, 2-D scatter plots, matrices of vectors."""

from __future__ import annotations

import io
import math
import os

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt
import numpy as np

from ptheta.data.spec import DataSpec
from ptheta.train.rundir import atomic_write_bytes


def samples_figure(
    samples: np.ndarray,
    spec: DataSpec,
    *,
    data: np.ndarray | None = None,
    title: str = "",
) -> plt.Figure:
    """A figure of ``samples``: an image grid when the spec has an image shape, a scatter
    plot (over ``data`` in grey) for 2-D vectors, otherwise one row per sample."""
    if spec.image_shape is not None:
        return _image_grid(samples, spec, title)
    flat = samples.reshape(len(samples), -1)
    if flat.shape[1] == 2 and not spec.is_discrete:
        fig, ax = plt.subplots(figsize=(5, 5))
        if data is not None:
            d = data.reshape(len(data), -1)
            ax.scatter(d[:, 0], d[:, 1], s=2, c="0.75", label="data")
        ax.scatter(flat[:, 0], flat[:, 1], s=3, c="tab:blue", label="samples")
        ax.set_aspect("equal")
        ax.legend(loc="upper right", markerscale=4)
        ax.set_title(title)
        return fig
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.imshow(flat[:64], aspect="auto", interpolation="nearest", cmap="viridis")
    ax.set_xlabel("dimension")
    ax.set_ylabel("sample")
    ax.set_title(title)
    return fig


def _image_grid(samples: np.ndarray, spec: DataSpec, title: str) -> plt.Figure:
    c, h, w = spec.image_shape
    imgs = samples[:64].reshape(-1, c, h, w).astype(np.float64)
    if spec.is_discrete:
        imgs = imgs / (spec.n_categories - 1)
    else:
        lo, hi = np.nanmin(imgs), np.nanmax(imgs)
        imgs = (imgs - lo) / (hi - lo + 1e-12)
    n = len(imgs)
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    grid = np.ones((rows * (h + 1) + 1, cols * (w + 1) + 1, c))
    for i, img in enumerate(imgs):
        r, q = divmod(i, cols)
        grid[1 + r * (h + 1) : 1 + r * (h + 1) + h, 1 + q * (w + 1) : 1 + q * (w + 1) + w] = (
            img.transpose(1, 2, 0)
        )
    fig, ax = plt.subplots(figsize=(max(3, cols * 0.6), max(3, rows * 0.6)))
    ax.imshow(
        grid.squeeze(-1) if c == 1 else grid,
        cmap="gray_r" if c == 1 else None,
        vmin=0,
        vmax=1,
        interpolation="nearest",
    )
    ax.axis("off")
    ax.set_title(title)
    return fig


def save_figure(fig: plt.Figure, path: str | os.PathLike) -> None:
    """Save ``fig`` as PNG atomically and close it."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
