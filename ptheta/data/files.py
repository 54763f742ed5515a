"""The user's own files as a `Dataset`: .npy, .npz, .csv, .parquet and .txt, or a folder
of images.

Arrays become a `Dataset` in :mod:`ptheta.data.arrays`, variable-length sequences (a long
CSV, an .npz of ``values`` and ``offsets``, the lines of a .txt file) one split by
sequence in :mod:`ptheta.data.ragged`, tables of typed columns (a CSV or Parquet file
with text columns, or read with ``kind="table"`` or a schema) one in
:mod:`ptheta.data.table`; image folders are read in :mod:`ptheta.data.images`, text in
:mod:`ptheta.data.text`. Nothing is ever unpickled.
"""

from __future__ import annotations

import csv
import io
import itertools
import math
import os
import zipfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ptheta.data.arrays import SPLIT_NAMES, check_not_structured, from_arrays, from_splits, set_kind
from ptheta.data.images import IMAGE_SUFFIXES, load_image_folder
from ptheta.data.ragged import Sequences, sequence_dataset
from ptheta.data.spec import Dataset
from ptheta.data.text import load_text
from ptheta.errors import DataError, unknown_name

FILE_SUFFIXES: tuple[str, ...] = (".npy", ".npz", ".csv", ".parquet", ".txt")
# Files read column by column: a table when a column is not numeric (or when asked).
TABLE_SUFFIXES: tuple[str, ...] = (".csv", ".parquet")
# A CSV whose header has one of these columns is in long format: one row per step.
SEQUENCE_ID_COLUMNS: tuple[str, ...] = ("sequence_id", "seq_id")
# The column of a long CSV giving each step's position in its sequence (any numbers).
TIME_COLUMNS: tuple[str, ...] = ("t", "time", "step")

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


def read_npy_header(path: Path) -> None:
    """Refuse a .npy file that np.load (or a memory map of it) would misread: an .npz
    archive, no header, pickled objects, a structured dtype, or a truncated file."""
    what = f"{path}"
    try:
        with open(path, "rb") as f:
            if f.read(4) in (b"PK\x03\x04", b"PK\x05\x06"):  # a zip archive
                raise DataError(f"{path} is an .npz archive, not a .npy file: rename it to .npz")
            f.seek(0)
            _check_npy_header(f, os.fstat(f.fileno()).st_size, what)
    except DataError:
        raise
    except _NUMPY_READ_ERRORS as e:
        raise _read_error(what, e) from None


def read_npy(path: Path) -> np.ndarray:
    """The array in the .npy file ``path``, or a `DataError` saying what is wrong with it."""
    what = f"{path}"
    read_npy_header(path)
    try:
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


def _ragged_dataset(
    sequences: Sequences,
    labels: Any,
    *,
    name: str,
    kind: str | None,
    seed: int,
    extra: dict[str, Any],
) -> Dataset:
    """Variable-length sequences read from a file as a `Dataset` split by sequence."""
    data = sequence_dataset(sequences, name=name, kind=kind, labels=labels, seed=seed, extra=extra)
    data.extra["seed"] = seed
    return data


def _load_npz_sequences(
    path: Path, archive: Any, *, kind: str | None, seed: int, extra: dict[str, Any]
) -> Dataset:
    keys = list(archive.files)
    if "offsets" in keys and "lengths" in keys:
        raise DataError(
            f"{path} holds both 'offsets' and 'lengths'; give the sequences' boundaries once: "
            "offsets (N + 1,) from 0 to len(values), or lengths (N,)"
        )
    values = _npz_get(path, archive, "values")
    cut = "offsets" if "offsets" in keys else "lengths"
    bounds = _npz_get(path, archive, cut)
    ky = _first_key(keys, ("y", "labels"))
    y = _npz_get(path, archive, ky) if ky else None
    try:
        seqs = Sequences.from_offsets(values, **{cut: bounds})
    except DataError as e:
        raise DataError(f"{path}: {e}") from None
    if y is not None and np.shape(y) != (len(seqs),):
        raise DataError(
            f"{path} holds {len(seqs)} sequences but {ky!r} has shape {np.shape(y)}; give one "
            f"label per sequence, ({len(seqs)},)"
        )
    return _ragged_dataset(seqs, y, name=path.name, kind=kind, seed=seed, extra=extra)


def load_npz(path: Path, *, kind: str | None = None, seed: int = 0) -> Dataset:
    """Load an .npz archive: either ``x`` (or ``X``, ``data``) with optional ``y`` (or
    ``labels``), split with `seed`; or the splits as given in ``x_train``, ``x_val``,
    ``x_test`` with optional ``y_train``, ``y_val``, ``y_test``; or variable-length
    sequences, every step of every sequence one after another in ``values`` (S,
    *step_shape), cut by ``offsets`` (N + 1,) from 0 to S or by ``lengths`` (N,), with
    optional labels ``y`` (N,) (one per sequence), split with `seed` by sequence."""
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
        if "values" in keys and ("offsets" in keys or "lengths" in keys):
            return _load_npz_sequences(path, archive, kind=kind, seed=seed, extra=extra)
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


def _read_csv(path: Path) -> tuple[list[str], list[list[str]]]:
    """The header (names stripped) and the data rows of a CSV file, every row as long as
    the header; the delimiter is the first of , tab ; that the header uses."""
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
    return header, body


def _numeric_column(
    path: Path, header: list[str], body: list[list[str]], j: int, hint: str
) -> np.ndarray:
    """Column ``j`` as float64, an empty cell as NaN, or a `DataError` ending in ``hint``."""
    col = np.empty(len(body))
    for i, r in enumerate(body):
        cell = r[j].strip()
        try:
            col[i] = float(cell) if cell else np.nan
        except ValueError:
            raise DataError(
                f"column {header[j]!r} of {path} is not numeric (row {i + 2}: {cell!r}); {hint}"
            ) from None
    return col


def _label_cells(path: Path, body: list[list[str]], j: int, label_column: str) -> np.ndarray:
    cells = [r[j].strip() for r in body]
    if not all(cells):
        raise DataError(f"the label column {label_column!r} of {path} has empty cells")
    # Numeric labels sort as numbers (2 before 10), anything else as text.
    return np.array([float(c) for c in cells]) if all(map(_is_number, cells)) else np.array(cells)


def _find_column(header: list[str], names: Sequence[str]) -> int | None:
    lowered = [h.lower() for h in header]
    return next((lowered.index(n) for n in names if n in lowered), None)


def load_csv(
    path: Path,
    *,
    kind: str | None = None,
    label_column: str | None = None,
    seed: int = 0,
    schema: Any = None,
) -> Dataset:
    """Load a CSV file with a header row: every numeric column is a feature; the column
    named `label_column`, if any, gives the labels (numbers or strings). An empty cell is
    a missing value (NaN), allowed in continuous data only.

    A CSV with a column that is not numeric (text labels, yes / no), or read with
    ``kind="table"`` or a `schema`, is a table of typed columns with missing cells
    allowed (:func:`load_table`). A header with a ``sequence_id`` (or ``seq_id``) column
    marks the long format of variable-length sequences: see :func:`load_long_csv`."""
    if kind == "table" or schema is not None:
        return load_table(path, label_column=label_column, seed=seed, schema=schema)
    header, body = _read_csv(path)
    label_idx = None
    if label_column is not None:
        if label_column not in header:
            raise DataError(str(unknown_name("label column", label_column, header)) + f" in {path}")
        label_idx = header.index(label_column)
    if _find_column(header, SEQUENCE_ID_COLUMNS) is not None:
        return _long_csv(path, header, body, kind=kind, label_idx=label_idx, seed=seed)
    textual = [
        j
        for j in range(len(header))
        if j != label_idx and not all(_is_number(r[j]) or not r[j].strip() for r in body)
    ]
    if textual and kind is None:  # text columns: a table of typed columns
        return load_table(path, label_column=label_column, seed=seed)
    columns = []
    for j, name in enumerate(header):
        if j == label_idx:
            continue
        hint = (
            f"load with label_column={name!r} if it holds the labels, or read the file as a "
            "table of typed columns (kind='table')"
            if label_column is None
            else "only numeric columns can be features of "
            f"{kind} data; remove it, or read the file as a table (kind='table')"
        )
        columns.append(_numeric_column(path, header, body, j, hint))
    if not columns:
        raise DataError(f"{path} has no feature columns besides the label column")
    x = np.stack(columns, axis=1)
    y = None if label_idx is None else _label_cells(path, body, label_idx, header[label_idx])
    return from_arrays(
        x, y, name=path.name, kind=kind, seed=seed, extra={"path": str(path), "format": "csv"}
    )


def read_frame(path: Path, text_columns: Iterable[str] = ()) -> Any:
    """The CSV or Parquet file ``path`` as a pandas DataFrame, column names stripped, rows
    with no cell at all dropped; empty cells, NA and NaN are missing. The CSV columns named
    in ``text_columns`` (label columns) keep their text: ``01`` stays ``01``, where pandas
    would read the number 1."""
    import pandas as pd

    try:
        if path.suffix.lower() == ".parquet":
            frame = pd.read_parquet(path)
        else:
            _read_csv(path)  # the checks of a numeric CSV: a header row, whole rows
            with open(path, encoding="utf-8-sig") as f:
                first = next(line for line in f if line.strip())
            delimiter = next((d for d in (",", "\t", ";") if d in first), ",")
            options = {"sep": delimiter, "encoding": "utf-8-sig", "skipinitialspace": True}
            text = set(text_columns)
            dtype = None
            if text:
                header = pd.read_csv(path, nrows=0, **options).columns
                dtype = {c: str for c in header if str(c).strip() in text}
            frame = pd.read_csv(path, dtype=dtype, **options)
    except DataError:
        raise
    except (OSError, ValueError, ImportError) as e:  # pandas' and pyarrow's parse errors
        raise DataError(f"could not read {path} as a table: {e}") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    frame = frame.dropna(how="all").reset_index(drop=True)
    if len(frame.columns) == 0 or len(frame) == 0:
        raise DataError(f"{path} holds no rows of data")
    return frame


def load_table(
    path: str | os.PathLike,
    *,
    label_column: str | None = None,
    seed: int = 0,
    schema: Any = None,
) -> Dataset:
    """Load a CSV or Parquet file as a table of typed columns (:mod:`ptheta.data.table`):
    binary, categorical (text labels kept), ordinal, count and continuous columns inferred
    from the values (see :func:`~ptheta.data.table.infer_schema`) and overridden by
    `schema` (a JSON schema file, or columns), missing cells kept as NaN; rows shuffled with
    `seed` and split 80 / 10 / 10.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     path = Path(folder) / "pets.csv"
        ...     rows = ["animal,legs,weight"] + ["cat,4,4.2", "bird,2,", "dog,4,30.5"] * 4
        ...     _ = path.write_text("\\n".join(rows))
        ...     data = load_table(path)
        >>> data.spec.describe()
        'table of 3 columns (1 categorical, 1 binary, 1 continuous)'
        >>> data.spec.columns[0].levels
        ('bird', 'cat', 'dog')
    """
    from ptheta.data.table import LABEL_TYPES, parse_schema, read_schema, table_dataset

    path = Path(path)
    try:
        if isinstance(schema, (str, os.PathLike)):
            schema = read_schema(schema)
        declared = () if schema is None else parse_schema(schema)
    except DataError as e:
        raise DataError(f"{path}: {e}") from None
    frame = read_frame(path, [c.name for c in declared if c.type in LABEL_TYPES])
    fmt = path.suffix.lower().lstrip(".")
    try:
        return table_dataset(
            frame,
            name=path.name,
            schema=None if schema is None else declared,
            label_column=label_column,
            seed=seed,
            extra={"path": str(path), "format": fmt},
        )
    except DataError as e:
        raise DataError(f"{path}: {e}") from None


def _load_parquet(
    path: Path, *, kind: str | None, label_column: str | None, seed: int, schema: Any
) -> Dataset:
    """A Parquet file: numeric columns as an array of the inferred (or given) kind, as a
    CSV of numbers is read; a table when a column is text, boolean or a category, or when
    asked (``kind="table"``, a schema)."""
    import pandas as pd

    if kind == "table" or schema is not None:
        return load_table(path, label_column=label_column, seed=seed, schema=schema)
    frame = read_frame(path)
    if label_column is not None and label_column not in frame.columns:
        raise DataError(
            str(unknown_name("label column", label_column, list(frame.columns))) + f" in {path}"
        )
    features = [c for c in frame.columns if c != label_column]
    if not features:
        raise DataError(f"{path} has no feature columns besides the label column")
    numeric = [
        pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(frame[c])
        for c in features
    ]
    if not all(numeric):
        if kind is None:
            return load_table(path, label_column=label_column, seed=seed)
        first = features[numeric.index(False)]
        raise DataError(
            f"column {first!r} of {path} is not numeric, so the file cannot be {kind} data; "
            "read it as a table of typed columns (kind='table')"
        )
    x = frame[features].to_numpy(dtype=np.float64)
    y = None
    if label_column is not None:
        labels = frame[label_column]
        if labels.isna().any():
            raise DataError(f"the label column {label_column!r} of {path} has empty cells")
        y = labels.to_numpy()
        if not pd.api.types.is_numeric_dtype(labels):
            y = np.array([str(v) for v in y])
    return from_arrays(
        x, y, name=path.name, kind=kind, seed=seed, extra={"path": str(path), "format": "parquet"}
    )


def load_long_csv(
    path: str | os.PathLike,
    *,
    kind: str | None = None,
    label_column: str | None = None,
    seed: int = 0,
) -> Dataset:
    """Load variable-length sequences from a CSV file in long format: one row per step.

    The columns are ``sequence_id`` (or ``seq_id``: any text or numbers naming the
    sequence), ``t`` (or ``time``, ``step``: numbers giving the step's position; only their
    order matters), the value columns (numbers; one column gives sequences of numbers,
    several give sequences of vectors; an empty cell is a missing value, continuous data
    only) and optionally the `label_column`, with one label per sequence. The rows may come
    in any order: each sequence's steps are sorted by ``t``. The sequences are shuffled with
    `seed` and split 80 / 10 / 10 by sequence.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     path = Path(folder) / "walks.csv"
        ...     rows = ["sequence_id,t,x", "b,1,2", "a,0,5", "b,0,1", "c,0,3", "c,1,4", "c,2,0"]
        ...     _ = path.write_text("\\n".join(rows))
        ...     data = load_long_csv(path)
        >>> data.spec.describe(), sorted(len(s) for p in (data.train, data.val, data.test)
        ...                               for s in p.sequences)
        ('categorical(6) sequences of up to 3 steps', [1, 2, 3])
    """
    path = Path(path)
    header, body = _read_csv(path)
    if _find_column(header, SEQUENCE_ID_COLUMNS) is None:
        raise DataError(
            f"{path} has no sequence_id column; a long-format CSV has one row per step and "
            f"the columns {', '.join(SEQUENCE_ID_COLUMNS[:1] + TIME_COLUMNS[:1])} and values"
        )
    label_idx = None
    if label_column is not None:
        if label_column not in header:
            raise DataError(str(unknown_name("label column", label_column, header)) + f" in {path}")
        label_idx = header.index(label_column)
    return _long_csv(path, header, body, kind=kind, label_idx=label_idx, seed=seed)


def _long_csv(
    path: Path,
    header: list[str],
    body: list[list[str]],
    *,
    kind: str | None,
    label_idx: int | None,
    seed: int,
) -> Dataset:
    id_idx = _find_column(header, SEQUENCE_ID_COLUMNS)
    t_idx = _find_column(header, TIME_COLUMNS)
    if t_idx is None:
        raise DataError(
            f"{path} is a long-format CSV (it has the column {header[id_idx]!r}: one row per "
            f"step) but has no time column: add a column t (or {', '.join(TIME_COLUMNS[1:])}) "
            "giving each step's position in its sequence"
        )
    if label_idx in (id_idx, t_idx):
        raise DataError(f"the label column of {path} cannot be its sequence_id or t column")
    ids = [r[id_idx].strip() for r in body]
    if not all(ids):
        row = ids.index("") + 2
        raise DataError(f"row {row} of {path} has no {header[id_idx]}: every step needs one")
    times = _numeric_column(path, header, body, t_idx, "t must hold numbers (the step order)")
    if np.isnan(times).any():
        row = int(np.flatnonzero(np.isnan(times))[0]) + 2
        raise DataError(f"row {row} of {path} has no {header[t_idx]}: every step needs one")
    value_idx = [j for j in range(len(header)) if j not in (id_idx, t_idx, label_idx)]
    if not value_idx:
        raise DataError(
            f"{path} has no value columns besides {header[id_idx]!r}, {header[t_idx]!r}"
            + ("" if label_idx is None else f" and the label column {header[label_idx]!r}")
        )

    def hint(j: int) -> str:
        """What to do with a non-numeric column ``j``: name it as the labels (if there are
        none yet), or remove it."""
        if label_idx is None:
            return (
                "every column besides the sequence_id and t columns is a value; load with "
                f"label_column={header[j]!r} (--label-column {header[j]}) if it holds one "
                "label per sequence"
            )
        return "only numeric columns can be values; remove it"

    values = np.stack([_numeric_column(path, header, body, j, hint(j)) for j in value_idx], axis=1)
    # Sequences in the order of their ids: numbers as numbers (2 before 10), else as text.
    if all(map(_is_number, ids)):
        keys: Any = np.array([float(i) for i in ids])
    else:
        keys = np.array(ids)
    order = np.lexsort((times, keys))
    keys, times, values = keys[order], times[order], values[order]
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    repeated = np.flatnonzero((keys[1:] == keys[:-1]) & (times[1:] == times[:-1]))
    if repeated.size:
        k = repeated[0]
        raise DataError(
            f"{path} has two rows for sequence {ids[order[k]]!r} at "
            f"{header[t_idx]}={times[k]:g}; each step of a sequence needs its own {header[t_idx]}"
        )
    offsets = np.r_[starts, len(keys)]
    steps = values[:, 0] if len(value_idx) == 1 else values
    seqs = Sequences.from_offsets(steps, offsets)
    y = None
    if label_idx is not None:
        cells = _label_cells(path, body, label_idx, header[label_idx])[order]
        for lo, hi in itertools.pairwise(offsets):
            if np.any(cells[lo:hi] != cells[lo]):
                other = lo + int(np.flatnonzero(cells[lo:hi] != cells[lo])[0])
                first, second = (body[order[i]][label_idx].strip() for i in (lo, other))
                raise DataError(
                    f"sequence {ids[order[lo]]!r} of {path} has two labels in "
                    f"{header[label_idx]!r} ({first!r} and {second!r}); a sequence has one "
                    "label: give it the same on every row"
                )
        y = cells[offsets[:-1]]
    extra = {
        "path": str(path),
        "format": "csv-long",
        "columns": tuple(header[j] for j in value_idx),
    }
    return _ragged_dataset(seqs, y, name=path.name, kind=kind, seed=seed, extra=extra)


def load_path(
    path: str | os.PathLike,
    *,
    kind: str | None = None,
    label_column: str | None = None,
    image_size: int | Sequence[int] | None = None,
    grayscale: bool | None = None,
    seed: int = 0,
    seq_len: int | None = None,
    lines: str | None = None,
    schema: Any = None,
) -> Dataset:
    """Load a .npy, .npz, .csv, .parquet or .txt file or a folder of images as a `Dataset`
    (see `load`)."""
    path = Path(path).expanduser()
    if not path.exists():
        raise DataError(f"no such file or folder: {path}")
    is_dir = path.is_dir()
    if not is_dir and (image_size is not None or grayscale is not None):
        raise DataError("image_size and grayscale apply to image folders only")
    if label_column is not None and (is_dir or path.suffix.lower() not in TABLE_SUFFIXES):
        raise DataError(
            "label_column applies to CSV files only (or Parquet files); an .npz file keeps its "
            "labels under 'y', an image folder in class sub-folders"
        )
    if (schema is not None or kind == "table") and (
        is_dir or path.suffix.lower() not in TABLE_SUFFIXES
    ):
        raise DataError(
            "a table (kind='table', a schema) is read from a CSV or Parquet file, column by "
            f"column; {path.name} is not one"
        )
    if seq_len is not None and (is_dir or path.suffix.lower() != ".txt"):
        raise DataError("seq_len applies to .txt files only")
    if lines is not None and (is_dir or path.suffix.lower() != ".txt"):
        raise DataError(
            "lines applies to .txt files only; variable-length sequences come from a CSV in "
            "long format (columns sequence_id, t, values) or an .npz of values and offsets"
        )
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
    if suffix == ".parquet":
        return _load_parquet(path, kind=kind, label_column=label_column, seed=seed, schema=schema)
    if suffix == ".txt":
        if lines is not None:  # one sequence per line, split by line with seed
            return load_text(path, seq_len=seq_len, lines=lines, seed=seed, kind=kind)
        data = load_text(path, seq_len=seq_len)  # split by position: seed does not apply
        return data if kind is None else set_kind(data, kind)
    return load_csv(path, kind=kind, label_column=label_column, seed=seed, schema=schema)
