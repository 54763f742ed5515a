"""`ptheta datasets`: the built-in data sets."""

from __future__ import annotations

import click

from ptheta.cli.common import print_table
from ptheta.data import list_datasets


@click.command("datasets")
def command() -> None:
    """List the built-in data sets with kind, shape and split sizes.

    Your own data work everywhere a name does: give a path to a .npy, .npz, .csv or .txt
    file or to a folder of images (one sub-folder per class for labels).
    """
    rows = list_datasets()
    print_table(
        "Built-in data sets",
        ["name", "kind", "shape", "n train", "n val", "n test", "labels", "description"],
        [
            [
                r["name"],
                r["kind"],
                r["event_shape"],
                r["n_train"],
                r["n_val"],
                r["n_test"],
                r["has_labels"],
                r["description"],
            ]
            for r in rows
        ],
    )
