"""Data sets: built-in ones by name, the user's own files, and the spec every model checks."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ptheta.data.arrays import from_arrays, from_splits, set_kind
from ptheta.data.builtin import BUILTIN, DESCRIPTIONS, SUMMARIES
from ptheta.data.files import FILE_SUFFIXES, load_path
from ptheta.data.images import IMAGE_SUFFIXES
from ptheta.data.ragged import Sequences, sequence_dataset
from ptheta.data.spec import (
    Data,
    Dataset,
    DataSpec,
    Split,
    check_values,
    infer_spec,
    parse_kind,
)
from ptheta.errors import DataError, unknown_name

__all__ = [
    "BUILTIN",
    "Data",
    "DataSpec",
    "Dataset",
    "Sequences",
    "Split",
    "check_values",
    "from_arrays",
    "from_splits",
    "infer_spec",
    "list_datasets",
    "load",
    "parse_kind",
    "sequence_dataset",
]


def load(
    name_or_path: str | os.PathLike,
    *,
    kind: str | None = None,
    label_column: str | None = None,
    image_size: int | Sequence[int] | None = None,
    grayscale: bool | None = None,
    seed: int = 0,
    seq_len: int | None = None,
) -> Dataset:
    """Load a built-in data set by name, or the user's own data from a path.

    Arguments:
        name_or_path: a built-in name (see `list_datasets`), or a path to a .npy, .npz,
            .csv or .txt file or to a folder of images (flat, or one sub-folder per class). A
            built-in name wins over a file of that name: write ``./digits`` for the file.
        kind: read the data as ``binary``, ``categorical``, ``categorical:K`` or
            ``continuous`` instead of the inferred (or built-in) kind.
        label_column: the CSV column holding the labels.
        image_size: (H, W), or an int for square images, to resize images to.
        grayscale: images as one channel (True), RGB (False), or one channel exactly when
            every image is gray (None).
        seed: the shuffle that splits a file 80 / 10 / 10 into train / val / test; built-in
            data sets have fixed splits and ignore it.
        seq_len: characters per example of a .txt file (default 64); a text file is split
            80 / 10 / 10 by position (see `ptheta.data.sequences.text_dataset`).

    Returns:
        the `Dataset`, with `train`, `val` and `test` splits; its arrays are the caller's own.

    Example:
        >>> data = load("digits-binary")
        >>> data.kind, data.event_shape, data.train.x.shape
        ('binary', (64,), (1000, 64))
    """
    if isinstance(name_or_path, str) and name_or_path in BUILTIN:
        if any(v is not None for v in (label_column, image_size, grayscale, seq_len)):
            raise DataError(
                "label_column, image_size, grayscale and seq_len apply to the user's own files, "
                f"not to the built-in data set {name_or_path!r}"
            )
        data = BUILTIN[name_or_path]()
        return data if kind is None else set_kind(data, kind)
    path = Path(name_or_path).expanduser()
    if not path.exists():
        text = os.fspath(name_or_path)
        looks_like_path = (
            not isinstance(name_or_path, str)
            or os.sep in text
            or "/" in text
            or path.suffix.lower() in FILE_SUFFIXES + IMAGE_SUFFIXES
        )
        if looks_like_path:
            raise DataError(f"no such file or folder: {path}")
        raise unknown_name(
            "data set",
            text,
            BUILTIN,
            hint="or give a path to a .npy/.npz/.csv/.txt file or an image folder",
        )
    return load_path(
        path,
        kind=kind,
        label_column=label_column,
        image_size=image_size,
        grayscale=grayscale,
        seed=seed,
        seq_len=seq_len,
    )


def list_datasets() -> list[dict[str, Any]]:
    """One row per built-in data set: name, kind (e.g. ``categorical(17)``), event_shape,
    n_train, n_val, n_test, has_labels, description."""
    rows = []
    for name in BUILTIN:
        kind, event_shape, n_train, n_val, n_test, has_labels = SUMMARIES[name]
        rows.append(
            {
                "name": name,
                "kind": kind,
                "event_shape": event_shape,
                "n_train": n_train,
                "n_val": n_val,
                "n_test": n_test,
                "has_labels": has_labels,
                "description": DESCRIPTIONS[name],
            }
        )
    return rows
