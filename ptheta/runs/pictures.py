"""The pictures a run directory holds: samples (image grids, 2-D scatter plots, rows of
vectors) and the learned structure of models that export one."""

from __future__ import annotations

import io
import math
import os
from collections.abc import Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt
import numpy as np

from ptheta.data.spec import DataSpec
from ptheta.errors import ParameterError
from ptheta.io import atomic_write_bytes


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


def structure_figure(model: Any, image_shape: Sequence[int] | None = None) -> plt.Figure:
    """Draw the learned graph of a model that exports its structure
    (``capabilities().exports_structure``): edge width grows with the edge's weight, roots
    are red.

    Arguments:
        model: a fitted model with ``structure_graph()`` (see ChowLiuTree's).
        image_shape: (H, W) or (1, H, W) to put each variable at its pixel position;
            defaults to the data's image shape where it has one (digits: 8×8). Otherwise
            the graph's own layout is used.
    """
    graph = model.structure_graph()
    d = int(graph["n_nodes"])
    own = model.fitted_spec.image_shape
    if image_shape is None and own is not None and np.prod(own[-2:]) == d:  # one channel
        image_shape = own
    if image_shape is not None:
        h, w = (int(s) for s in tuple(image_shape)[-2:])
        if h * w != d:
            raise ParameterError(
                f"image_shape {tuple(image_shape)} has {h * w} pixels but the graph has "
                f"{d} variables"
            )
        pos = np.column_stack([np.arange(d) % w, -(np.arange(d) // w)]).astype(float)
        size = (0.8 * w + 1, 0.8 * h + 1)
    else:
        pos = np.asarray(graph["layout"], dtype=np.float64)
        size = (min(20.0, 1 + 0.6 * np.ptp(pos[:, 0])), 1 + 0.9 * np.ptp(pos[:, 1]))
    fig, ax = plt.subplots(figsize=size)
    weights = np.asarray(graph["weights"], dtype=np.float64)
    widths = 0.5 + 3.0 * weights / max(float(weights.max(initial=0.0)), 1e-12)
    for (p, c), lw in zip(graph["edges"], widths, strict=True):
        ax.annotate(
            "",
            xy=pos[c],
            xytext=pos[p],
            arrowprops={"arrowstyle": "->", "lw": lw, "color": "tab:blue"},
        )
    colours = np.where(np.isin(np.arange(d), graph["roots"]), "tab:red", "white")
    ax.scatter(pos[:, 0], pos[:, 1], s=220, c=colours, edgecolors="k", zorder=3)
    for i, (px, py) in enumerate(pos):
        ax.text(px, py, str(i), ha="center", va="center", fontsize=6, zorder=4)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title(graph["title"])
    return fig


def save_figure(fig: plt.Figure, path: str | os.PathLike) -> None:
    """Save ``fig`` as PNG atomically and close it."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
