"""Pictures of comparisons: NLL bar charts and training curves (a run's own: runs.pictures)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt
import numpy as np

# Bars of the NLL chart: a bound is hatched and labelled "≤", an estimate dotted and "≈".
NLL_HATCH = {"exact": "", "bound": "//", "estimate": ".."}
NLL_PREFIX = {"exact": "", "bound": "≤ ", "estimate": "≈ "}


def nll_bar_figure(
    rows: Sequence[dict[str, Any]], *, title: str = "", per_step: bool = False
) -> plt.Figure:
    """A bar chart of test NLL (nats per example) per model, from compare report rows;
    with ``per_step`` (variable-length sequences) nats per step, each sequence's end
    counted as a step (``test_nll_per_step``), with no error bar.

    Bounds are hatched bars labelled "≤ x", estimates dotted bars labelled "≈ x", exact
    values plain. Discrete NLLs (exact, bounds, dequantisation bounds) and continuous
    log-densities get separate panels: they are not on one scale. Models with no likelihood
    and failed models are listed under the chart, never drawn as a bar.

    Arguments:
        rows: dicts with ``model``, ``likelihood``, ``units``, ``test_nll_nats``,
            ``test_nll_sem`` and ``status`` (see ``ptheta.eval.compare``).
        title: the figure's title.
    """
    key = "test_nll_per_step" if per_step else "test_nll_nats"
    per = "nats per step, each end a step" if per_step else "nats per example"
    scored = [r for r in rows if r.get("status") == "ok" and r.get(key) is not None]
    panels = [
        (f"discrete NLL ({per})",
         [r for r in scored if r["units"] not in ("continuous", "mixed")]),
        (f"mixed NLL, −log(probability × density) ({per}; same table only)",
         [r for r in scored if r["units"] == "mixed"]),
        (f"density NLL, −log p(x) ({per}; not comparable with discrete NLLs)",
         [r for r in scored if r["units"] == "continuous"]),
    ]  # fmt: skip
    panels = [(label, rs) for label, rs in panels if rs] or [(f"NLL ({per})", [])]
    heights = [max(1.5, 0.45 * len(rs) + 1.0) for _, rs in panels]
    fig, axes = plt.subplots(
        len(panels), 1, figsize=(7, sum(heights) + 0.8), squeeze=False,
        gridspec_kw={"height_ratios": heights},
    )  # fmt: skip
    for ax, (label, rs) in zip(axes[:, 0], panels, strict=True):
        rs = sorted(rs, key=lambda r: r[key], reverse=True)  # best on top
        values = np.array([r[key] for r in rs], dtype=float)
        errors = np.array([0.0 if per_step else r.get("test_nll_sem") or 0.0 for r in rs])
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
