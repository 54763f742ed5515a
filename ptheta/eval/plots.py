"""Pictures of samples and data: image grids, 2-D scatter plots, matrices of vectors."""

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


def tree_figure(model: Any, image_shape: Sequence[int] | None = None) -> plt.Figure:
    """Draw a fitted tree-structured model (``chow-liu``): edge width grows with mutual
    information, the root is red.

    Arguments:
        model: a fitted model with ``edges_``, ``parents_``, ``mutual_info_`` and ``root_``.
        image_shape: (H, W) or (1, H, W) to put each variable at its pixel position;
            defaults to the data's image shape where it has one (digits: 8×8). Otherwise
            the tree is drawn in layers by depth below the root.
    """
    d = len(model.parents_)
    own = model.fitted_spec.image_shape
    if image_shape is None and own is not None and np.prod(own[-2:]) == d:  # one channel
        image_shape = own
    if image_shape is not None:
        h, w = (int(s) for s in tuple(image_shape)[-2:])
        if h * w != d:
            raise ParameterError(
                f"image_shape {tuple(image_shape)} has {h * w} pixels but the tree has "
                f"{d} variables"
            )
        pos = np.column_stack([np.arange(d) % w, -(np.arange(d) // w)]).astype(float)
        size = (0.8 * w + 1, 0.8 * h + 1)
    else:
        pos = model.layered_layout()
        size = (min(20.0, 1 + 0.6 * np.ptp(pos[:, 0])), 1 + 0.9 * np.ptp(pos[:, 1]))
    fig, ax = plt.subplots(figsize=size)
    mi = np.array([model.mutual_info_[p, c] for p, c in model.edges_])
    widths = 0.5 + 3.0 * mi / max(float(mi.max(initial=0.0)), 1e-12)
    for (p, c), lw in zip(model.edges_, widths, strict=True):
        ax.annotate(
            "",
            xy=pos[c],
            xytext=pos[p],
            arrowprops={"arrowstyle": "->", "lw": lw, "color": "tab:blue"},
        )
    colours = np.where(np.arange(d) == model.root_, "tab:red", "white")
    ax.scatter(pos[:, 0], pos[:, 1], s=220, c=colours, edgecolors="k", zorder=3)
    for i, (px, py) in enumerate(pos):
        ax.text(px, py, str(i), ha="center", va="center", fontsize=6, zorder=4)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title(f"Chow–Liu tree, {d} variables (edge width ∝ mutual information)")
    return fig


def save_figure(fig: plt.Figure, path: str | os.PathLike) -> None:
    """Save ``fig`` as PNG atomically and close it."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


# Bars of the NLL chart: a bound is hatched and labelled "≤", an estimate dotted and "≈".
NLL_HATCH = {"exact": "", "bound": "//", "estimate": ".."}
NLL_PREFIX = {"exact": "", "bound": "≤ ", "estimate": "≈ "}


def nll_bar_figure(rows: Sequence[dict[str, Any]], *, title: str = "") -> plt.Figure:
    """A bar chart of test NLL (nats per example) per model, from compare report rows.

    Bounds are hatched bars labelled "≤ x", estimates dotted bars labelled "≈ x", exact
    values plain. Discrete NLLs (exact, bounds, dequantisation bounds) and continuous
    log-densities get separate panels: they are not on one scale. Models with no likelihood
    and failed models are listed under the chart, never drawn as a bar.

    Arguments:
        rows: dicts with ``model``, ``likelihood``, ``units``, ``test_nll_nats``,
            ``test_nll_sem`` and ``status`` (see ``ptheta.eval.compare``).
        title: the figure's title.
    """
    scored = [r for r in rows if r.get("status") == "ok" and r.get("test_nll_nats") is not None]
    panels = [
        ("discrete NLL (nats per example)", [r for r in scored if r["units"] != "continuous"]),
        ("density NLL, −log p(x) (nats per example; not comparable with discrete NLLs)",
         [r for r in scored if r["units"] == "continuous"]),
    ]  # fmt: skip
    panels = [(label, rs) for label, rs in panels if rs] or [("NLL (nats per example)", [])]
    heights = [max(1.5, 0.45 * len(rs) + 1.0) for _, rs in panels]
    fig, axes = plt.subplots(
        len(panels), 1, figsize=(7, sum(heights) + 0.8), squeeze=False,
        gridspec_kw={"height_ratios": heights},
    )  # fmt: skip
    for ax, (label, rs) in zip(axes[:, 0], panels, strict=True):
        rs = sorted(rs, key=lambda r: r["test_nll_nats"], reverse=True)  # best on top
        values = np.array([r["test_nll_nats"] for r in rs], dtype=float)
        errors = np.array([r.get("test_nll_sem") or 0.0 for r in rs], dtype=float)
        for i, r in enumerate(rs):
            kind = r["likelihood"]
            ax.barh(i, values[i], xerr=errors[i], color="tab:blue" if kind == "exact" else
                    "white", edgecolor="tab:blue", hatch=NLL_HATCH.get(kind, ""),
                    label=kind)  # fmt: skip
            ax.text(values[i], i, f"  {NLL_PREFIX.get(kind, '')}{values[i]:.2f}",
                    va="center", ha="left" if values[i] >= 0 else "right", fontsize=8)  # fmt: skip
        ax.set_yticks(range(len(rs)), [r["model"] for r in rs])
        ax.set_xlabel(label)
        if len(rs):
            lo, hi = min(0.0, values.min()), max(0.0, values.max())
            ax.set_xlim(lo - 0.05 * (hi - lo) - (0.25 * (hi - lo) if lo < 0 else 0),
                        hi + 0.25 * (hi - lo) + 1e-9)  # fmt: skip
            handles, labels = ax.get_legend_handles_labels()
            unique = dict(zip(labels, handles, strict=True))
            ax.legend(unique.values(), unique.keys(), loc="upper left", bbox_to_anchor=(1.01, 1),
                      fontsize=7)  # fmt: skip
    missing = [r["model"] for r in rows if r.get("status") == "ok" and r not in scored]
    failed = [r["model"] for r in rows if r.get("status") != "ok"]
    notes = []
    if missing:
        notes.append(f"no likelihood (sample metrics only): {', '.join(missing)}")
    if failed:
        notes.append(f"failed: {', '.join(failed)}")
    if notes:
        fig.text(0.01, 0.0, "\n".join(notes), fontsize=8, va="top")
    axes[0, 0].set_title(title)
    fig.tight_layout()
    return fig


def curves_figure(records: Sequence[dict[str, Any]], *, title: str = "") -> plt.Figure:
    """Training curves from a run's per-epoch metrics records: training loss and
    validation NLL (nats per example) against the epoch."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for key, label in (("train_loss", "training loss"), ("val_nll", "validation NLL"),
                       ("val_nll_given_y", "validation NLL given y")):  # fmt: skip
        points = [(r["epoch"], r[key]) for r in records if r.get(key) is not None]
        if points:
            ax.plot(*zip(*points, strict=True), marker=".", label=label)
    ax.set_xlabel("epoch")
    ax.set_ylabel("nats per example")
    ax.legend()
    ax.set_title(title)
    return fig
