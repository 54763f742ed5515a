"""`ptheta datasets`: the built-in data sets."""

from __future__ import annotations

from typing import Any

import click

from ptheta.cli.common import print_table
from ptheta.data import list_datasets


@click.command("datasets")
def command() -> None:
    """List the built-in data sets with kind, shape and split sizes.

    Your own data work everywhere a name does: give a path to a .npy, .npz, .csv or .txt
    file or to a folder of images (one sub-folder per class for labels). Variable-length
    sequences (kind "... sequences"; shape: the longest training sequence) come from a .txt
    file with --lines chars|words, a CSV in long format (columns sequence_id, t, values)
    or an .npz of values with offsets or lengths.
    """
    rows = list_datasets()
    print_table(
        "Built-in data sets",
        ["name", "kind", "shape", "n train", "n val", "n test", "labels", "description"],
        [
            [
                r["name"],
                r["kind"],
                _shape(r),
                r["n_train"],
                r["n_val"],
                r["n_test"],
                r["has_labels"],
                r["description"],
            ]
            for r in rows
        ],
    )


def _shape(row: dict[str, Any]) -> str:
    """The event shape; for variable-length sequences, the longest training one and the
    shape of a step."""
    shape = ", ".join(map(str, row["event_shape"]))
    return f"up to {shape}" if row["kind"].endswith("sequences") else shape
