"""Data sets: built-in ones by name, the user's own files, and the spec every model checks."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ptheta.data import standard
from ptheta.data.arrays import from_arrays, from_splits, set_kind
from ptheta.data.builtin import BUILTIN, DESCRIPTIONS, SUMMARIES
from ptheta.data.files import FILE_SUFFIXES, load_path
from ptheta.data.images import IMAGE_SUFFIXES
from ptheta.data.ragged import Sequences, sequence_dataset
from ptheta.data.sequences import set_sequence_kind
from ptheta.data.sources import is_shard_folder, load_stream, open_source, should_stream
from ptheta.data.spec import (
    Data,
    Dataset,
    DataSpec,
    Split,
    check_values,
    infer_spec,
    parse_kind,
)
from ptheta.data.stream import Source
from ptheta.data.table import ColumnSpec, infer_schema, read_schema, table_dataset
from ptheta.errors import DataError, unknown_name

__all__ = [
    "BUILTIN",
    "ColumnSpec",
    "Data",
    "DataSpec",
    "Dataset",
    "Sequences",
    "Source",
    "Split",
    "check_values",
    "from_arrays",
    "from_splits",
    "infer_schema",
    "infer_spec",
    "list_datasets",
    "load",
    "open_source",
    "parse_kind",
    "read_schema",
    "sequence_dataset",
    "table_dataset",
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
    lines: str | None = None,
    schema: Any = None,
    stream: bool | None = None,
) -> Dataset:
    """Load a built-in data set by name, or the user's own data from a path.

    A table of typed columns (kind ``table``: binary, categorical with text labels,
    ordinal, count and continuous columns, missing cells allowed; see
    `ptheta.data.table`) comes from a CSV or Parquet file with a column that is not
    numeric, or from any CSV or Parquet file read with ``kind="table"`` or a ``schema``;
    its rows are split 80 / 10 / 10 with ``seed``. A DataFrame in Python becomes one with
    `table_dataset`.

    Variable-length sequences (a `Dataset` whose splits carry ``lengths``, split 80 / 10 /
    10 by sequence with ``seed``) come from a .txt file read with ``lines``, a CSV in long
    format (a ``sequence_id`` column, see `ptheta.data.files.load_long_csv`), an .npz of
    ``values`` with ``offsets`` or ``lengths`` (and optional ``y``, one label per
    sequence), or the built-in ``unicode-words``; a list of arrays in Python becomes one
    with `sequence_dataset`.

    The standard image sets ``mnist``, ``fashion-mnist`` (each also ``-binary`` and
    ``-stochastic-binary``), ``binarized-mnist`` and ``cifar10`` are downloaded on first
    use into the data cache (``$PTHETA_DATA``, else ``$XDG_CACHE_HOME/ptheta/data``, else
    ``~/.cache/ptheta/data``) and checked against their published checksums; offline, a
    folder holding their files in the published formats loads the same data (see
    `ptheta.data.standard`).

    Data too large for memory are read a batch at a time (``stream``; see
    :mod:`ptheta.data.sources`): a memory-mapped .npy file, an .npz file or a folder of
    .npy / .npz shards, an image folder decoded a file at a time, a CSV or Parquet table
    read in batches. Each split of such a data set is a
    :class:`~ptheta.data.stream.Subset` of the file (the same examples as read in memory,
    in the file's order), nothing is read until a model asks, and the spec, labels and
    values are those of the file read whole.

    Arguments:
        name_or_path: a built-in name (see `list_datasets`), or a path to a .npy, .npz,
            .csv, .parquet or .txt file, to a folder of images (flat, or one sub-folder
            per class) or to a folder of a standard set's files (MNIST's IDX files,
            binarised MNIST's .amat files, CIFAR-10's binary version). A built-in name wins
            over a file of that name: write ``./digits`` for the file.
        kind: read the data as ``binary``, ``categorical``, ``categorical:K``,
            ``continuous`` or (a CSV or Parquet file) ``table`` instead of the inferred (or
            built-in) kind.
        label_column: the CSV or Parquet column holding the labels (in a long CSV, one
            label per sequence, the same on each of its rows).
        image_size: (H, W), or an int for square images, to resize images to.
        grayscale: images as one channel (True), RGB (False), or one channel exactly when
            every image is gray (None).
        seed: the shuffle that splits a file 80 / 10 / 10 into train / val / test (by
            sequence for variable-length sequences); built-in data sets have fixed splits
            and ignore it.
        seq_len: characters per example of a .txt file read as fixed windows (the default,
            64); the text is split 80 / 10 / 10 by position (see
            `ptheta.data.text.text_dataset`).
        lines: read a .txt file as one variable-length sequence per non-blank line, of its
            characters (``"chars"``) or of its whitespace-separated words (``"words"``),
            instead of fixed windows; not with ``seq_len`` (see
            `ptheta.data.text.lines_dataset`).
        schema: the types of some or all columns of a table, overriding the inferred ones:
            the path of a JSON schema file (see `ptheta.data.table.read_schema`), or a
            list of `ColumnSpec` or their dicts.
        stream: read the file a batch at a time (True), whole (False), or a batch at a
            time when its data would take more than ``sources.STREAM_BYTES`` (1 GiB) in
            memory, or it is a folder of shards (None, the default). Built-in data sets
            are held in memory.

    Returns:
        the `Dataset`, with `train`, `val` and `test` splits; its arrays are the caller's own.

    Example:
        >>> data = load("digits-binary")
        >>> data.kind, data.event_shape, data.train.x.shape
        ('binary', (64,), (1000, 64))
        >>> words = load("unicode-words")
        >>> words.spec.describe(), words.train.sequences
        ('categorical(37) sequences of up to 24 steps', Sequences(3780 sequences of 1-24 steps))
    """
    given = (label_column, image_size, grayscale, seq_len, lines, schema)
    builtin = isinstance(name_or_path, str) and name_or_path in BUILTIN
    if stream not in (None, True, False):
        raise DataError(f"stream must be True, False or None (decide by size), got {stream!r}")
    if builtin or (isinstance(name_or_path, str) and name_or_path in standard.NAMES):
        if stream:
            raise DataError(
                f"the built-in data set {name_or_path!r} is held in memory; stream=True "
                "(--stream) reads the user's own files a batch at a time"
            )
        if any(v is not None for v in given):
            raise DataError(
                "label_column, image_size, grayscale, seq_len, lines and schema apply to the "
                f"user's own files, not to the built-in data set {name_or_path!r}"
            )
        if not builtin:  # a standard image set, downloaded on first use
            data = standard.load_standard(name_or_path)
            return data if kind is None else set_kind(data, kind)
        data = BUILTIN[name_or_path]()
        if kind is None or (kind == "table" and data.kind == "table"):
            return data
        if "table" in (kind, data.kind):
            raise DataError(
                f"the built-in {name_or_path!r} is {data.spec.describe()} data and cannot be "
                f"read as {kind}: a table's kinds are per column, and only CSV or Parquet "
                "files are read as tables"
            )
        return set_sequence_kind(data, kind) if data.spec.variable_length else set_kind(data, kind)
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
            [*BUILTIN, *standard.NAMES],
            hint="or give a path to a .npy/.npz/.csv/.txt file or an image folder",
        )
    if standard.folder_layout(path) is not None:  # MNIST / CIFAR-10 files in their formats
        if any(v is not None for v in given):
            raise DataError(
                "label_column, image_size, grayscale, seq_len, lines and schema do not apply "
                f"to the standard image files in {path}"
            )
        if stream:
            raise DataError(f"the standard image files in {path} are read in memory only")
        data = standard.load_folder(path)
        return data if kind is None else set_kind(data, kind)
    if stream is None:
        stream = should_stream(path)
    if stream or is_shard_folder(path):
        if seq_len is not None or lines is not None:
            raise DataError(
                "seq_len and lines read a .txt file, which is read in memory only: load it "
                "with stream=False (--no-stream)"
            )
        return load_stream(
            path,
            stream=stream,
            kind=kind,
            label_column=label_column,
            image_size=image_size,
            grayscale=grayscale,
            seed=seed,
            schema=schema,
        )
    return load_path(
        path,
        kind=kind,
        label_column=label_column,
        image_size=image_size,
        grayscale=grayscale,
        seed=seed,
        seq_len=seq_len,
        lines=lines,
        schema=schema,
    )


def list_datasets() -> list[dict[str, Any]]:
    """One row per built-in data set: name, kind (e.g. ``categorical(17)``, or
    ``categorical(37) sequences`` for variable-length sequences), event_shape (for
    sequences: the longest training sequence, then the step shape), n_train, n_val,
    n_test, has_labels, description; then the standard image sets, which are downloaded on
    first use (their description says so, and how many MB)."""
    rows = []
    summaries = {**SUMMARIES, **standard.SUMMARIES}
    descriptions = {**DESCRIPTIONS, **standard.DESCRIPTIONS}
    for name in [*BUILTIN, *standard.NAMES]:
        kind, event_shape, n_train, n_val, n_test, has_labels = summaries[name]
        rows.append(
            {
                "name": name,
                "kind": kind,
                "event_shape": event_shape,
                "n_train": n_train,
                "n_val": n_val,
                "n_test": n_test,
                "has_labels": has_labels,
                "description": descriptions[name],
            }
        )
    return rows
