"""The user's own files as a `Dataset`: .npy, .npz, .csv and .txt, or a folder of images.

Arrays become a `Dataset` in :mod:`ptheta.data.arrays`; image folders are read in
:mod:`ptheta.data.images`. Nothing is ever unpickled.
"""

from __future__ import annotations

import csv
import io
import math
import os
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ptheta.data.arrays import SPLIT_NAMES, check_not_structured, from_arrays, from_splits, set_kind
from ptheta.data.images import IMAGE_SUFFIXES, load_image_folder
from ptheta.data.sequences import load_text
from ptheta.data.spec import Dataset
from ptheta.errors import DataError, unknown_name

FILE_SUFFIXES: tuple[str, ...] = (".npy", ".npz", ".csv", ".txt")

_NOT_NPY = (
    "{what} is not a valid .npy file of numbers ({why}); ptheta never unpickles files: "
    "save a plain numeric array with numpy.save"
)


def _read_error(what: str, e: Exception) -> DataError:
    # numpy refuses object arrays when pickling is off, and reads a file without its magic
    # string as a pickle: say why, and never pass on numpy's advice to unpickle.
    text = str(e)
    if "Object arrays" in text or "pickle" in text:
        return DataError(_NOT_NPY.format(what=what, why="it holds pickled Python objects"))
    return DataError(f"could not read {what}: {text or type(e).__name__}")


# What numpy raises on a file that is broken or not numpy's at all.
_NUMPY_READ_ERRORS = (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile)


def _check_npy_header(f: Any, n_bytes: int, what: str) -> None:
    """Read the header of the .npy file open as ``f`` (``n_bytes`` long) and refuse what
    np.load would misread: no .npy header, an object or structured dtype, or a shape the
    file has not the bytes for (a corrupted header would otherwise ask for terabytes)."""
    try:
        version = np.lib.format.read_magic(f)
    except (ValueError, EOFError):
        raise DataError(_NOT_NPY.format(what=what, why="it lacks the .npy header")) from None
    read = {
        (1, 0): np.lib.format.read_array_header_1_0,
        (2, 0): np.lib.format.read_array_header_2_0,
    }
    if version not in read:  # a newer format: np.load knows it, or says so
        return
    try:
        shape, _, dtype = read[version](f)
    except (ValueError, EOFError) as e:
        why = f"its header is corrupted: {e}"
        raise DataError(_NOT_NPY.format(what=what, why=why)) from None
    if dtype.hasobject:
        raise DataError(_NOT_NPY.format(what=what, why="it holds pickled Python objects"))
    if dtype.names is not None:
        check_not_structured(np.empty(0, dtype), what)
    needed = math.prod(shape) * dtype.itemsize
    if needed > n_bytes - f.tell():
        raise DataError(
            f"{what} claims an array of shape {shape} and dtype {dtype} ({needed:.3g} bytes) "
            f"but holds {n_bytes - f.tell()} bytes of data: the file is truncated or "
            "corrupted; save it again with numpy.save"
        )


def read_npy(path: Path) -> np.ndarray:
    """The array in the .npy file ``path``, or a `DataError` saying what is wrong with it."""
    what = f"{path}"
    try:
        with open(path, "rb") as f:
            if f.read(4) in (b"PK\x03\x04", b"PK\x05\x06"):  # a zip archive
                raise DataError(f"{path} is an .npz archive, not a .npy file: rename it to .npz")
            f.seek(0)
            _check_npy_header(f, os.fstat(f.fileno()).st_size, what)
        return np.load(path, allow_pickle=False)
    except DataError:
        raise
    except _NUMPY_READ_ERRORS as e:
        raise _read_error(what, e) from None


def _npz_get(path: Path, archive: Any, key: str) -> np.ndarray:
    what = f"array {key!r} in {path}"
    try:
        member = key if key in archive.zip.namelist() else f"{key}.npy"
        with archive.zip.open(member) as f:
            _check_npy_header(f, archive.zip.getinfo(member).file_size, what)
        return archive[key]
    except DataError:
        raise
    except _NUMPY_READ_ERRORS as e:
        raise _read_error(what, e) from None


def _first_key(keys: Sequence[str], candidates: Sequence[str]) -> str | None:
    return next((k for k in candidates if k in keys), None)


def load_npz(path: Path, *, kind: str | None = None, seed: int = 0) -> Dataset:
    """Load an .npz archive: either ``x`` (or ``X``, ``data``) with optional ``y`` (or
    ``labels``), split with `seed`; or the splits as given in ``x_train``, ``x_val``,
    ``x_test`` with optional ``y_train``, ``y_val``, ``y_test``."""
    try:
        archive = np.load(path, allow_pickle=False)
    except _NUMPY_READ_ERRORS as e:
        raise _read_error(f"{path} as an .npz archive", e) from None
    if not hasattr(archive, "files"):
        raise DataError(f"{path} is a .npy file, not an .npz archive: rename it to .npy")
    with archive:
        keys = list(archive.files)
        if not keys:
            raise DataError(f"{path} is an empty .npz archive (no arrays)")
        extra = {"path": str(path), "format": "npz"}
        pre = {s: _first_key(keys, (f"x_{s}", f"X_{s}")) for s in SPLIT_NAMES}
        if any(pre.values()):
            absent = [f"x_{s}" for s, k in pre.items() if k is None]
            if absent:
                raise DataError(
                    f"{path} has pre-split arrays but lacks {', '.join(absent)}; give all of "
                    "x_train, x_val, x_test, or a single x to be split"
                )
            splits = {}
            for s, k in pre.items():
                ky = _first_key(keys, (f"y_{s}", f"labels_{s}"))
                y = _npz_get(path, archive, ky) if ky else None
                splits[s] = (_npz_get(path, archive, k), y)
            return from_splits(path.name, splits, kind=kind, extra=extra)
        kx = _first_key(keys, ("x", "X", "data"))
        if kx is None and len(keys) == 1:
            kx = keys[0]
        if kx is None:
            raise DataError(
                f"{path} holds the arrays {', '.join(keys)}; expected the examples under 'x' "
                "(or 'X', 'data') with optional labels 'y', or x_train, x_val, x_test"
            )
        ky = _first_key(keys, ("y", "labels"))
        x = _npz_get(path, archive, kx)
        y = _npz_get(path, archive, ky) if ky else None
    return from_arrays(x, y, name=path.name, kind=kind, seed=seed, extra=extra)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def load_csv(
    path: Path, *, kind: str | None = None, label_column: str | None = None, seed: int = 0
) -> Dataset:
    """Load a CSV file with a header row: every numeric column is a feature; the column
    named `label_column`, if any, gives the labels (numbers or strings). An empty cell is
    a missing value (NaN), allowed in continuous data only."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"could not read {path} as a text CSV file: {e}") from None
    first = next((line for line in text.splitlines() if line.strip()), None)
    if first is None:
        raise DataError(f"{path} is empty")
    # The delimiter is the first of these that the header uses; a comma by default.
    delimiter = next((d for d in (",", "\t", ";") if d in first), ",")
    try:
        reader = csv.reader(io.StringIO(text), delimiter=delimiter)
        rows = [r for r in reader if any(c.strip() for c in r)]
    except csv.Error as e:
        raise DataError(f"could not parse {path} as CSV: {e}") from None
    header = [h.strip() for h in rows[0]]
    if all(_is_number(h) for h in header):
        raise DataError(
            f"the first row of {path} looks like data ({', '.join(header[:4])}...); a CSV file "
            "needs a header row naming its columns"
        )
    body = rows[1:]
    if not body:
        raise DataError(f"{path} has a header row but no data rows")
    for i, r in enumerate(body, start=2):
        if len(r) != len(header):
            raise DataError(
                f"row {i} of {path} has {len(r)} fields but the header has {len(header)}"
            )
    label_idx = None
    if label_column is not None:
        if label_column not in header:
            raise DataError(str(unknown_name("label column", label_column, header)) + f" in {path}")
        label_idx = header.index(label_column)
    columns = []
    for j, name in enumerate(header):
        if j == label_idx:
            continue
        col = np.empty(len(body))
        for i, r in enumerate(body):
            cell = r[j].strip()
            try:
                col[i] = float(cell) if cell else np.nan
            except ValueError:
                hint = (
                    f"load with label_column={name!r} if it holds the labels"
                    if label_column is None
                    else "only numeric columns can be features; remove it"
                )
                raise DataError(
                    f"column {name!r} of {path} is not numeric (row {i + 2}: {cell!r}); {hint}"
                ) from None
        columns.append(col)
    if not columns:
        raise DataError(f"{path} has no feature columns besides the label column")
    x = np.stack(columns, axis=1)
    y = None
    if label_idx is not None:
        cells = [r[label_idx].strip() for r in body]
        if not all(cells):
            raise DataError(f"the label column {label_column!r} of {path} has empty cells")
        # Numeric labels sort as numbers (2 before 10), anything else as text.
        y = np.array([float(c) for c in cells]) if all(map(_is_number, cells)) else np.array(cells)
    return from_arrays(
        x, y, name=path.name, kind=kind, seed=seed, extra={"path": str(path), "format": "csv"}
    )


def load_path(
    path: str | os.PathLike,
    *,
    kind: str | None = None,
    label_column: str | None = None,
    image_size: int | Sequence[int] | None = None,
    grayscale: bool | None = None,
    seed: int = 0,
    seq_len: int | None = None,
) -> Dataset:
    """Load a .npy, .npz, .csv or .txt file or a folder of images as a `Dataset` (see `load`)."""
    path = Path(path).expanduser()
    if not path.exists():
        raise DataError(f"no such file or folder: {path}")
    is_dir = path.is_dir()
    if not is_dir and (image_size is not None or grayscale is not None):
        raise DataError("image_size and grayscale apply to image folders only")
    if label_column is not None and (is_dir or path.suffix.lower() != ".csv"):
        raise DataError(
            "label_column applies to CSV files only; an .npz file keeps its labels under 'y', "
            "an image folder in class sub-folders"
        )
    if seq_len is not None and (is_dir or path.suffix.lower() != ".txt"):
        raise DataError("seq_len applies to .txt files only")
    if is_dir:
        return load_image_folder(
            path, kind=kind, image_size=image_size, grayscale=grayscale, seed=seed
        )
    suffix = path.suffix.lower()
    if suffix not in FILE_SUFFIXES:
        raise DataError(
            f"cannot load {path}: unsupported file type {suffix or '(none)'!r}; supported are "
            f"{', '.join(FILE_SUFFIXES)} files and folders of images "
            f"({', '.join(IMAGE_SUFFIXES)})"
        )
    if path.stat().st_size == 0:
        raise DataError(f"{path} is empty (0 bytes)")
    if suffix == ".npy":
        return from_arrays(
            read_npy(path),
            name=path.name,
            kind=kind,
            seed=seed,
            extra={"path": str(path), "format": "npy"},
        )
    if suffix == ".npz":
        return load_npz(path, kind=kind, seed=seed)
    if suffix == ".txt":
        data = load_text(path, seq_len=seq_len)  # split by position: seed does not apply
        return data if kind is None else set_kind(data, kind)
    return load_csv(path, kind=kind, label_column=label_column, seed=seed)
