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

from ptheta.data.ragged import Sequences
from ptheta.data.spec import DataSpec
from ptheta.errors import ParameterError
from ptheta.io import atomic_write_bytes


def samples_figure(
    samples: np.ndarray | Sequences,
    spec: DataSpec,
    *,
    data: np.ndarray | None = None,
    title: str = "",
    vocab: Sequence[str] | None = None,
) -> plt.Figure:
    """A figure of ``samples``: an image grid when the spec has an image shape, a scatter
    plot (over ``data`` in grey) for 2-D vectors, variable-length sequences as
    :func:`sequences_figure` draws them (``vocab`` writes each token's text in its cell),
    otherwise one row per sample."""
    if isinstance(samples, Sequences):
        return sequences_figure(samples, spec, title=title, vocab=vocab)
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


# At most this many sequences are drawn: token strips, or panels of series.
MAX_STRIPS, MAX_SERIES = 32, 8
MAX_TEXT_STEPS = 48  # tokens are written in their cells up to this many steps


def sequences_figure(
    seqs: Sequences,
    spec: DataSpec,
    *,
    title: str = "",
    vocab: Sequence[str] | None = None,
    states: Sequences | None = None,
) -> plt.Figure:
    """Variable-length sequences: discrete steps as coloured token strips (one row per
    sequence, one cell per step, blank after its end; ``vocab`` writes each token's text
    in its cell), real steps as series (one panel per sequence, one line per value of a
    step). ``states`` (the same shape, integers) colours the cells by state instead of by
    token: a latent state path under the tokens. At most :data:`MAX_STRIPS` strips or
    :data:`MAX_SERIES` panels are drawn (the title says so)."""
    shown = seqs[: min(len(seqs), MAX_STRIPS if spec.is_discrete else MAX_SERIES)]
    if len(shown) < len(seqs):
        title = f"{title} (the first {len(shown)} drawn)"
    if spec.is_discrete:
        return _token_strips(shown, spec, title, vocab, states)
    fig, axes = plt.subplots(len(shown), 1, figsize=(8, 0.9 * len(shown) + 1.0), sharex=True,
                             squeeze=False)  # fmt: skip
    for i, (ax, s) in enumerate(zip(axes[:, 0], shown, strict=True)):
        steps = np.asarray(s, dtype=np.float64).reshape(len(s), -1)  # (L, step_dims)
        ax.plot(np.arange(len(s)), steps, marker=".", markersize=3, linewidth=1)
        ax.set_ylabel(f"#{i}", rotation=0, ha="right", va="center")
        ax.tick_params(labelsize=7)
    axes[-1, 0].set_xlabel("step (each series ends at its own length)")
    axes[0, 0].set_title(title)
    fig.tight_layout()
    return fig


def _token_strips(
    seqs: Sequences,
    spec: DataSpec,
    title: str,
    vocab: Sequence[str] | None,
    states: Sequences | None,
) -> plt.Figure:
    flat = seqs.values.reshape(len(seqs), seqs.max_length, -1)  # (N, T, step_dims)
    mask = seqs.mask()  # (N, T)
    if states is not None:
        colour = np.asarray(states.values, dtype=np.float64)[: len(seqs), : seqs.max_length]
        levels, label = int(np.max(states.values)) + 1, "state"
    else:
        colour = flat[:, :, 0].astype(np.float64)
        levels, label = int(spec.n_categories), "token"
    colour = np.where(mask, colour, np.nan)  # blank after each end
    cmap = plt.get_cmap("tab20" if levels <= 20 else "viridis").with_extremes(bad="white")
    n, t = mask.shape
    fig, ax = plt.subplots(figsize=(min(14.0, 1.5 + 0.22 * t), 0.8 + 0.25 * n))
    ax.imshow(colour, aspect="auto", interpolation="nearest", cmap=cmap, vmin=-0.5,
              vmax=(levels - 0.5) if levels <= 20 else levels - 1)  # fmt: skip
    if vocab is not None and t <= MAX_TEXT_STEPS and flat.shape[2] == 1:
        for i, j in zip(*np.nonzero(mask), strict=True):
            token = int(flat[i, j, 0])
            text = vocab[token] if 0 <= token < len(vocab) else "?"
            ax.text(j, i, text if text.strip() else "␣", ha="center", va="center", fontsize=7)
    ax.set_xlabel(f"step (colour: {label}; blank: after the sequence's end)")
    ax.set_ylabel("sequence")
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


# Graphs of more variables than this are drawn as lines and dots, without arrows or
# numbers (an arrow per edge takes seconds for MNIST's 784 pixels, and numbers overlap).
LABELLED_NODES = 100


def structure_figure(model: Any, image_shape: Sequence[int] | None = None) -> plt.Figure:
    """Draw the learned graph of a model that exports its structure
    (``capabilities().exports_structure``): edge width grows with the edge's weight, roots
    are red; beyond `LABELLED_NODES` variables, edges are lines (the DOT file keeps the
    directions).

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
    colours = np.where(np.isin(np.arange(d), graph["roots"]), "tab:red", "white")
    if d > LABELLED_NODES:  # hundreds of variables (MNIST's pixels): lines and dots, fast
        from matplotlib.collections import LineCollection

        segments = [(pos[p], pos[c]) for p, c in graph["edges"]]
        ax.add_collection(LineCollection(segments, linewidths=widths, colors="tab:blue"))
        ax.scatter(pos[:, 0], pos[:, 1], s=12, c=colours, edgecolors="k", linewidths=0.3,
                   zorder=3)  # fmt: skip
    else:
        for (p, c), lw in zip(graph["edges"], widths, strict=True):
            ax.annotate(
                "",
                xy=pos[c],
                xytext=pos[p],
                arrowprops={"arrowstyle": "->", "lw": lw, "color": "tab:blue"},
            )
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
