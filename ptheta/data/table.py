"""The table data kind: columns of mixed types under a schema, encoded as numbers and back.

A table has D named columns, each of one type (:class:`ColumnSpec`):

- ``binary``, ``categorical``, ``ordinal``: labels (kept as strings), encoded as the codes
  0..K−1 of their ``levels`` (ordinal levels in their order);
- ``count``: whole numbers >= 0;
- ``continuous``: real numbers, optionally within ``lower`` / ``upper`` bounds
  (``lower=0``: positive).

Models see a table as a float64 array (N, D) of codes, counts and reals, NaN for a missing
cell (:func:`encode`); samples and imputations come back as a pandas DataFrame with the
same columns, types and labels (:func:`decode`). The schema is inferred from a DataFrame
(:func:`infer_schema`, rules below) and may be overridden column by column, in Python or
from a JSON file (:func:`read_schema`). pandas is imported on first use only.

Example:
    >>> import pandas as pd
    >>> frame = pd.DataFrame({"colour": ["red", "blue", None, "red"],
    ...                       "n": [0, 3, 1, 2], "w": [0.5, 1.5, 2.0, None]})
    >>> columns = infer_schema(frame)
    >>> [(c.name, c.type, c.levels) for c in columns]
    [('colour', 'binary', ('blue', 'red')), ('n', 'count', None), ('w', 'continuous', None)]
    >>> x = encode(frame, columns)
    >>> x.tolist()
    [[1.0, 0.0, 0.5], [0.0, 3.0, 1.5], [nan, 1.0, 2.0], [1.0, 2.0, nan]]
    >>> decode(x, columns)["colour"].tolist()
    ['red', 'blue', nan, 'red']
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ptheta.errors import DataError

COLUMN_TYPES: tuple[str, ...] = ("binary", "categorical", "ordinal", "count", "continuous")
# Types whose values are labels, encoded as the codes 0..K-1 of their levels.
LABEL_TYPES: tuple[str, ...] = ("binary", "categorical", "ordinal")
# Types whose log-likelihood is a log-probability (the rest: a log-density).
DISCRETE_TYPES: tuple[str, ...] = (*LABEL_TYPES, "count")
# A text column with more distinct labels than this is refused when its type is inferred:
# an identifier or free text, not a category (declare it in a schema to keep it).
MAX_INFERRED_LEVELS = 256
_FIELDS = ("name", "type", "levels", "lower", "upper")


@dataclass(frozen=True)
class ColumnSpec:
    """One column of a table: its ``name``, ``type`` (one of :data:`COLUMN_TYPES`) and

    - ``levels``: the labels of a binary (2), categorical or ordinal (>= 2) column, in
      code order (ordinal: lowest first); None while they are to be read from the data
      (a schema override that names the type only);
    - ``lower`` / ``upper``: bounds of a continuous column (None: unbounded; ``lower=0``:
      a positive quantity).
    """

    name: str
    type: str
    levels: tuple[str, ...] | None = None
    lower: float | None = None
    upper: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise DataError(f"a column needs a name (a non-empty string), got {self.name!r}")
        where = f"column {self.name!r}"
        if self.type not in COLUMN_TYPES:
            raise DataError(
                f"{where} has the unknown type {self.type!r}; use one of {', '.join(COLUMN_TYPES)}"
            )
        if self.levels is not None:
            if self.type not in LABEL_TYPES:
                raise DataError(
                    f"{where} is {self.type} and takes no levels (only "
                    f"{', '.join(LABEL_TYPES)} columns have labels)"
                )
            if isinstance(self.levels, str) or not isinstance(self.levels, Iterable):
                raise DataError(f"the levels of {where} must be a list of labels")
            levels = tuple(_label(v) for v in self.levels)
            if len(set(levels)) != len(levels):
                twice = sorted({v for v in levels if levels.count(v) > 1})
                raise DataError(f"{where} lists the level(s) {twice} twice; give each once")
            if self.type == "binary" and len(levels) != 2:
                raise DataError(
                    f"{where} is binary but has {len(levels)} level(s) {list(levels)}; a binary "
                    "column has exactly 2 (declare it categorical for more)"
                )
            if len(levels) < 2:
                raise DataError(
                    f"{where} has {len(levels)} level(s); a {self.type} column needs at least 2"
                )
            object.__setattr__(self, "levels", levels)
        for side in ("lower", "upper"):
            value = getattr(self, side)
            if value is None:
                continue
            if self.type != "continuous":
                raise DataError(f"{where} is {self.type}; only continuous columns take {side}")
            if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
                raise DataError(f"the {side} bound of {where} must be a number, got {value!r}")
            if not math.isfinite(float(value)):
                raise DataError(f"the {side} bound of {where} must be finite (omit it: None)")
            object.__setattr__(self, side, float(value))
        if self.lower is not None and self.upper is not None and self.lower >= self.upper:
            raise DataError(
                f"{where} has lower={self.lower:g} >= upper={self.upper:g}; the lower bound "
                "must be below the upper"
            )

    @property
    def n_levels(self) -> int | None:
        """K for a label column (once its levels are known), else None."""
        return None if self.levels is None else len(self.levels)

    @property
    def is_discrete(self) -> bool:
        """Whether its log-likelihood factor is a log-probability (not a log-density)."""
        return self.type in DISCRETE_TYPES

    @property
    def is_complete(self) -> bool:
        """Whether nothing is left to read from the data (a label column knows its levels)."""
        return self.type not in LABEL_TYPES or self.levels is not None

    def describe(self) -> str:
        """``ordinal(low < mid < high)``, ``categorical(3)``, ``continuous >= 0``, ``count``."""
        if self.type == "ordinal" and self.levels is not None:
            return f"ordinal({' < '.join(self.levels)})"
        if self.type in LABEL_TYPES:
            return f"{self.type}({'?' if self.levels is None else ', '.join(self.levels)})"
        if self.type == "continuous":
            bounds = [
                f">= {self.lower:g}" if self.lower is not None else "",
                f"<= {self.upper:g}" if self.upper is not None else "",
            ]
            return " ".join(["continuous", *filter(None, bounds)])
        return self.type

    def to_json(self) -> dict[str, Any]:
        """``{"name", "type"}`` plus ``levels`` (label columns), ``lower``/``upper`` (if set)."""
        out: dict[str, Any] = {"name": self.name, "type": self.type}
        if self.levels is not None:
            out["levels"] = list(self.levels)
        for side in ("lower", "upper"):
            if getattr(self, side) is not None:
                out[side] = getattr(self, side)
        return out

    @classmethod
    def from_json(cls, d: Any, where: str = "a column") -> ColumnSpec:
        """The column described by the dict ``d`` (the form :meth:`to_json` writes)."""
        if isinstance(d, ColumnSpec):
            return d
        if not isinstance(d, Mapping):
            raise DataError(
                f'{where} must be an object such as {{"name": "age", "type": "count"}}, got {d!r}'
            )
        unknown = sorted(set(d) - set(_FIELDS))
        if unknown:
            raise DataError(
                f"{where} has the unknown field(s) {unknown}; a column has {', '.join(_FIELDS)}"
            )
        if "name" not in d or "type" not in d:
            raise DataError(f"{where} needs a name and a type, got {dict(d)}")
        return cls(
            name=d["name"],
            type=d["type"],
            levels=d.get("levels"),
            lower=d.get("lower"),
            upper=d.get("upper"),
        )


# --------------------------------------------------------------------------- summaries
def table_units(columns: Sequence[ColumnSpec]) -> str:
    """``discrete`` (every column discrete: log p is a log-probability), ``continuous``
    (every column continuous: a log-density) or ``mixed`` (the log of a probability times
    a density: comparable only with other models of the same table)."""
    discrete = {c.is_discrete for c in columns}
    if discrete == {True}:
        return "discrete"
    return "continuous" if discrete == {False} else "mixed"


def describe_columns(columns: Sequence[ColumnSpec]) -> str:
    """``6 columns (2 categorical, 1 binary, 1 count, 2 continuous)``, types in order of
    first appearance."""
    counts: dict[str, int] = {}
    for c in columns:
        counts[c.type] = counts.get(c.type, 0) + 1
    parts = ", ".join(f"{n} {t}" for t, n in counts.items())
    return f"{len(columns)} column{'s' if len(columns) != 1 else ''} ({parts})"


# --------------------------------------------------------------------------- labels
def _label(value: Any) -> str:
    """A cell as its label text: ``True``, ``3`` (a whole number, whatever its dtype),
    ``2.5``, or the stripped string."""
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        v = float(value)
        return str(int(v)) if v.is_integer() and abs(v) < 2**63 else repr(v)
    if isinstance(value, str):
        return value.strip()
    return str(value).strip()


def _parsed_label(text: str) -> str:
    """The label of the cell ``text`` as a CSV reader that parses numbers and booleans
    gives it (``1`` for ``01`` or ``1.0``, ``True`` for ``true``): a column read as its
    text matches levels inferred from the same file read by pandas."""
    if text.lower() in ("true", "false"):
        return str(text.lower() == "true")
    return _label(float(text)) if _is_number(text) else text


def _is_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def _sorted_levels(labels: Iterable[str]) -> tuple[str, ...]:
    """Distinct labels, as numbers (2 before 10) when every one is a number, else as text."""
    unique = set(labels)
    if all(map(_is_number, unique)):
        return tuple(sorted(unique, key=float))
    return tuple(sorted(unique))


def _missing(series: Any) -> np.ndarray:
    """(N,) bool: the cells that are missing (None, NaN, NA, NaT, or blank text)."""
    import pandas as pd

    miss = np.array(pd.isna(series), dtype=bool)  # a copy: pandas may hand out read-only
    if series.dtype == object or pd.api.types.is_string_dtype(series.dtype):
        blank = np.array([isinstance(v, str) and not v.strip() for v in series], dtype=bool)
        miss |= blank
    return miss


def _as_frame(frame: Any, what: str) -> Any:
    import pandas as pd

    if isinstance(frame, pd.DataFrame):
        return frame
    if isinstance(frame, Mapping):
        return pd.DataFrame(dict(frame))
    raise DataError(
        f"{what} must be a pandas DataFrame (or a dict of columns), got {type(frame).__name__}"
    )


def is_frame(x: Any) -> bool:
    """Whether ``x`` is a pandas DataFrame (without importing pandas)."""
    return type(x).__module__.startswith("pandas") and type(x).__name__ == "DataFrame"


# --------------------------------------------------------------------------- inference
def infer_schema(
    frame: Any,
    overrides: Iterable[ColumnSpec | Mapping[str, Any]] | None = None,
    *,
    exclude: Sequence[str] = (),
) -> tuple[ColumnSpec, ...]:
    """The schema of the columns of ``frame`` (a DataFrame), in its order.

    Each column's type is inferred from its observed (non-missing) cells:

    - booleans: ``binary`` (levels False, True);
    - a pandas ``category``: ``ordinal`` if ordered, else ``binary`` (2 categories) or
      ``categorical``; levels are its categories, in their order;
    - text (or a mix of text and numbers): ``binary`` with 2 distinct labels, else
      ``categorical`` (levels sorted: as numbers when every label is one, else as text;
      more than :data:`MAX_INFERRED_LEVELS` labels is refused: an identifier?);
    - numbers: whole numbers are ``binary`` when there are exactly 2 distinct values
      (levels: the two numbers, as text), else ``count`` when none is negative; any other
      numbers are ``continuous`` (unbounded: bounds come from a schema only, never
      guessed).

    A column with fewer than two distinct observed values (constant, or all missing)
    carries no information and is refused with a `DataError` naming it: drop it, or give
    its type and levels in ``overrides``.

    Arguments:
        frame: the table, one row per example.
        overrides: columns whose type is given (:class:`ColumnSpec` or its JSON dict, as
            :func:`read_schema` returns): only the columns named; a label column given
            without levels takes the observed labels, sorted (an ordinal one only when
            its labels are numbers: text levels have no order to guess).
        exclude: columns to leave out (a label column).
    """
    frame = _as_frame(frame, "the table")
    names = [str(c) for c in frame.columns]
    if len(set(names)) != len(names):
        twice = sorted({n for n in names if names.count(n) > 1})
        raise DataError(f"the table has the column name(s) {twice} twice; give each once")
    given: dict[str, ColumnSpec] = {}
    for i, o in enumerate(overrides or ()):
        col = ColumnSpec.from_json(o, f"schema entry {i + 1}")
        if col.name in given:
            raise DataError(f"the schema names the column {col.name!r} twice")
        given[col.name] = col
    unknown = sorted(set(given) - set(names))
    if unknown:
        raise DataError(
            f"the schema names column(s) {unknown} that the table lacks; its columns are "
            f"{', '.join(names)}"
        )
    columns = []
    for name, key in zip(names, frame.columns, strict=True):
        if name in exclude:
            continue
        series = frame[key]
        if name in given:
            columns.append(_complete(given[name], series))
        else:
            columns.append(_infer_column(name, series))
    if not columns:
        raise DataError("the table has no columns to model (besides the label column)")
    return tuple(columns)


def _infer_column(name: str, series: Any) -> ColumnSpec:
    import pandas as pd

    where = f"column {name!r}"
    observed = series[~_missing(series)]
    if len(observed) == 0:
        raise DataError(f"{where} has no observed value (every cell is missing); drop it")
    dtype = series.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        levels = tuple(_label(v) for v in dtype.categories)
        if len(levels) < 2:
            raise DataError(f"{where} is a category with {len(levels)} level(s); drop it")
        if dtype.ordered:
            return ColumnSpec(name, "ordinal", levels)
        return ColumnSpec(name, "binary" if len(levels) == 2 else "categorical", levels)
    if pd.api.types.is_bool_dtype(dtype):
        return ColumnSpec(name, "binary", ("False", "True"))
    if pd.api.types.is_numeric_dtype(dtype):
        values = np.asarray(observed, dtype=np.float64)
        if not np.isfinite(values).all():
            raise DataError(f"{where} holds infinite values; remove or clip them")
        distinct = np.unique(values)
        _need_two(where, distinct)
        whole = bool(np.all(distinct == np.round(distinct)))
        if whole and len(distinct) == 2:
            return ColumnSpec(name, "binary", tuple(_label(v) for v in distinct))
        if whole and distinct[0] >= 0:
            return ColumnSpec(name, "count")
        return ColumnSpec(name, "continuous")
    levels = _sorted_levels(_label(v) for v in observed)
    _need_two(where, levels)
    if len(levels) > MAX_INFERRED_LEVELS:
        raise DataError(
            f"{where} has {len(levels)} distinct labels (more than {MAX_INFERRED_LEVELS}): "
            "an identifier or free text rather than a category; drop it, or declare it "
            "categorical with its levels in a schema"
        )
    return ColumnSpec(name, "binary" if len(levels) == 2 else "categorical", levels)


def _need_two(where: str, distinct: Sequence[Any]) -> None:
    if len(distinct) < 2:
        raise DataError(
            f"{where} has one value ({_label(distinct[0])!r}) in every observed cell: it "
            "carries no information; drop it, or declare its type (and levels) in a schema"
        )


def _complete(col: ColumnSpec, series: Any) -> ColumnSpec:
    """An override with its levels read from the data where it gives none."""
    if col.is_complete:
        return col
    observed = series[~_missing(series)]
    levels = _sorted_levels(_label(v) for v in observed)
    where = f"column {col.name!r}"
    if col.type == "ordinal" and not all(map(_is_number, levels)):
        raise DataError(
            f"{where} is declared ordinal without its levels, and its labels are text "
            f"({', '.join(levels[:4])}...): give the levels in order, lowest first, "
            '("levels": [...] in the schema)'
        )
    if col.type == "binary" and len(levels) != 2:
        raise DataError(
            f"{where} is declared binary but holds {len(levels)} distinct label(s) "
            f"{list(levels[:5])}; give its 2 levels, or declare it categorical"
        )
    if len(levels) < 2:
        raise DataError(
            f"{where} holds {len(levels)} distinct label(s); give its levels in the schema"
        )
    return ColumnSpec(col.name, col.type, levels)


# --------------------------------------------------------------------------- schema files
def read_schema(path: str | os.PathLike) -> tuple[ColumnSpec, ...]:
    """The columns declared in the JSON file ``path``: a list of columns, or an object
    ``{"columns": [...]}``, each ``{"name": ..., "type": ...}`` with optional
    ``levels`` (label columns: in code order, lowest first for ordinal) and ``lower`` /
    ``upper`` (continuous). Only the columns named are declared (overrides of the
    inferred schema); levels left out are read from the data.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     path = Path(folder) / "schema.json"
        ...     _ = path.write_text('[{"name": "grade", "type": "ordinal",'
        ...                         ' "levels": ["low", "mid", "high"]}]')
        ...     read_schema(path)[0].describe()
        'ordinal(low < mid < high)'
    """
    path = Path(path)
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"no such schema file: {path}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"could not read the schema file {path}: {e}") from None
    except json.JSONDecodeError as e:
        raise DataError(f"the schema file {path} is not valid JSON: {e}") from None
    return parse_schema(content, str(path))


def parse_schema(content: Any, where: str = "the schema") -> tuple[ColumnSpec, ...]:
    """Columns from a schema given in Python: a list of :class:`ColumnSpec` or dicts, or
    ``{"columns": [...]}`` (what :func:`read_schema` reads from a file)."""
    if isinstance(content, Mapping):
        if set(content) != {"columns"}:
            raise DataError(
                f'{where} must be a list of columns or an object {{"columns": [...]}}; '
                f"it has the keys {sorted(content)}"
            )
        content = content["columns"]
    if isinstance(content, (str, bytes)) or not isinstance(content, Sequence):
        raise DataError(
            f'{where} must hold a list of columns such as [{{"name": "age", "type": '
            f'"count"}}], got {type(content).__name__}'
        )
    try:
        columns = tuple(
            ColumnSpec.from_json(c, f"column entry {i + 1}") for i, c in enumerate(content)
        )
    except DataError as e:
        raise DataError(f"{where}: {e}") from None
    names = [c.name for c in columns]
    if len(set(names)) != len(names):
        twice = sorted({n for n in names if names.count(n) > 1})
        raise DataError(f"{where} declares the column(s) {twice} twice")
    return columns


# --------------------------------------------------------------------------- encoding
def encode(frame: Any, columns: Sequence[ColumnSpec], what: str = "the table") -> np.ndarray:
    """The cells of ``frame`` as numbers under ``columns``: float64 (N, D).

    Label columns give the code of their label (0..K−1 in ``levels``), counts their whole
    number, continuous columns their value; a missing cell (None, NaN, NA, blank text)
    gives NaN. Columns of ``frame`` not in ``columns`` are ignored. An unknown label, a
    count that is negative or not whole, text in a numeric column, or a value outside a
    continuous column's bounds is a `DataError` naming the column and the value.
    """
    import pandas as pd

    frame = _as_frame(frame, what)
    by_name = {str(c): c for c in frame.columns}
    absent = [c.name for c in columns if c.name not in by_name]
    if absent:
        raise DataError(
            f"{what} lacks the column(s) {absent} of the schema; it has "
            f"{', '.join(by_name) or 'none'}"
        )
    out = np.empty((len(frame), len(columns)), dtype=np.float64)
    for j, col in enumerate(columns):
        if not col.is_complete:
            raise DataError(f"column {col.name!r} has no levels yet; infer the schema first")
        series = frame[by_name[col.name]]
        miss = _missing(series)
        values = np.full(len(series), np.nan)
        observed = series[~miss]
        where = f"column {col.name!r} of {what}"
        if col.type in LABEL_TYPES:
            labels = [_label(v) for v in observed]
            levels = pd.Index(col.levels)
            codes = levels.get_indexer(labels)
            if (codes < 0).any():  # text whose level was read from pandas' number or bool
                parsed = levels.get_indexer([_parsed_label(s) for s in labels])
                codes = np.where(codes < 0, parsed, codes)
            if (codes < 0).any():
                bad = labels[int(np.flatnonzero(codes < 0)[0])]
                raise DataError(
                    f"{where} has the label {bad!r}, which is not one of its levels "
                    f"{list(col.levels)}; fix the value, or refit with a schema that lists it"
                )
            values[~miss] = codes
        else:
            numbers = pd.to_numeric(observed, errors="coerce")
            numbers = np.asarray(numbers, dtype=np.float64)
            if np.isnan(numbers).any():
                bad = observed.iloc[int(np.flatnonzero(np.isnan(numbers))[0])]
                raise DataError(f"{where} is {col.type} but holds the non-number {bad!r}")
            values[~miss] = numbers
        out[:, j] = values
    return check_table(out, columns, allow_nan=True, what=what)


def check_table(
    x: np.ndarray, columns: Sequence[ColumnSpec], *, allow_nan: bool, what: str = "X"
) -> np.ndarray:
    """Check encoded rows ``x`` (N, D) against ``columns`` and return them as C-contiguous
    float64: codes whole and in 0..K−1, counts whole and >= 0, continuous values within
    their bounds, nothing infinite, NaN (a missing cell) only where ``allow_nan``."""
    arr = np.ascontiguousarray(x, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != len(columns):
        raise DataError(f"{what} has shape {arr.shape}; expected (N, {len(columns)}) encoded cells")
    if np.isinf(arr).any():
        j = int(np.flatnonzero(np.isinf(arr).any(axis=0))[0])
        raise DataError(
            f"{what} has infinite values in column {columns[j].name!r}; remove or clip them"
        )
    missing = np.isnan(arr)
    if missing.any() and not allow_nan:
        j = int(np.flatnonzero(missing.any(axis=0))[0])
        raise DataError(
            f"{what} has {int(missing.sum())} missing (NaN) cells (first in column "
            f"{columns[j].name!r}) and this model cannot marginalise them; drop or impute "
            "those rows first, or choose a family that marginalises missing entries"
        )
    from ptheta.data.spec import check_magnitude

    check_magnitude(arr, what)
    for j, col in enumerate(columns):
        v = arr[~missing[:, j], j]
        if v.size == 0:
            continue
        where = f"column {col.name!r} ({col.describe()}) of {what}"
        if col.is_discrete and not np.all(v == np.round(v)):
            bad = v[v != np.round(v)][0]
            raise DataError(f"{where} has the non-whole value {bad:g}")
        if col.type in LABEL_TYPES and (v.min() < 0 or v.max() > col.n_levels - 1):
            bad = v[(v < 0) | (v > col.n_levels - 1)][0]
            raise DataError(
                f"{where} has the code {bad:g}; its {col.n_levels} levels have codes 0.."
                f"{col.n_levels - 1}"
            )
        if col.type == "count" and v.min() < 0:
            raise DataError(f"{where} has the negative count {v.min():g}; counts are >= 0")
        if col.lower is not None and v.min() < col.lower:
            raise DataError(f"{where} has the value {v.min():g}, below its lower bound")
        if col.upper is not None and v.max() > col.upper:
            raise DataError(f"{where} has the value {v.max():g}, above its upper bound")
    return arr


def decode(x: Any, columns: Sequence[ColumnSpec]) -> Any:
    """Encoded rows ``x`` (N, D) back as a pandas DataFrame with the schema's columns:
    label columns as pandas categoricals of their labels (ordinal ones ordered), counts as
    nullable integers (``Int64``), continuous columns as float64; a missing cell (NaN) is
    missing there (NA / NaN)."""
    import pandas as pd

    arr = check_table(np.asarray(x, dtype=np.float64), columns, allow_nan=True, what="the rows")
    data = {}
    for j, col in enumerate(columns):
        v = arr[:, j]
        missing = np.isnan(v)
        if col.type in LABEL_TYPES:
            codes = np.where(missing, -1, np.nan_to_num(v)).astype(np.int64)
            data[col.name] = pd.Categorical.from_codes(
                codes, categories=list(col.levels), ordered=col.type == "ordinal"
            )
        elif col.type == "count":
            ints = np.where(missing, 0, np.nan_to_num(v)).astype(np.int64)
            data[col.name] = pd.arrays.IntegerArray(ints, missing)
        else:
            data[col.name] = v
    return pd.DataFrame(data)


# --------------------------------------------------------------------------- data sets
def table_dataset(
    frame: Any,
    *,
    name: str = "table",
    schema: Any = None,
    label_column: str | None = None,
    seed: int = 0,
    description: str = "",
    extra: dict[str, Any] | None = None,
) -> Any:
    """A DataFrame as a table `Dataset`, its rows shuffled with ``seed`` and split 80 / 10
    / 10 into train / val / test.

    Arguments:
        frame: the table, one row per example.
        name: the data set's name.
        schema: column types overriding the inferred ones (:func:`infer_schema`): a path
            to a JSON schema file, or columns as :func:`parse_schema` takes them.
        label_column: the column holding class labels (numbers or text), left out of the
            columns modelled.
        seed: the shuffle of the split.

    Returns:
        a `Dataset` of kind ``table``; each split's ``x`` is float64 (N, D) (codes, counts,
        reals; NaN for a missing cell), ``data.spec.columns`` the schema.

    Example:
        >>> import pandas as pd
        >>> frame = pd.DataFrame({"size": ["S", "M", "L", "M"] * 5, "n": range(20)})
        >>> data = table_dataset(frame, schema=[{"name": "size", "type": "ordinal",
        ...                                      "levels": ["S", "M", "L"]}])
        >>> data.spec.describe(), len(data.train)
        ('table of 2 columns (1 ordinal, 1 count)', 16)
    """
    from ptheta.data.arrays import SPLIT_NAMES, _encode_labels, split_indices
    from ptheta.data.spec import Dataset, DataSpec, Split

    frame = _as_frame(frame, f"the table {name!r}")
    if isinstance(schema, (str, os.PathLike)):
        overrides: Any = read_schema(schema)
    else:
        overrides = None if schema is None else parse_schema(schema)
    names = [str(c) for c in frame.columns]
    if label_column is not None and label_column not in names:
        from ptheta.errors import unknown_name

        raise unknown_name("label column", label_column, names)
    exclude = () if label_column is None else (label_column,)
    if overrides and label_column in {c.name for c in overrides}:
        raise DataError(f"the schema declares the label column {label_column!r}; leave it out")
    columns = infer_schema(frame, overrides, exclude=exclude)
    x = encode(frame, columns, f"the table {name!r}")
    y = None
    if label_column is not None:
        labels = frame[label_column]
        if _missing(labels).any():
            raise DataError(f"the label column {label_column!r} has missing cells")
        cells = [_label(v) for v in labels]
        y = np.array([float(c) for c in cells]) if all(map(_is_number, cells)) else np.array(cells)
    parts = split_indices(len(x), seed)
    spec = DataSpec("table", (len(columns),), columns=columns)
    classes = None
    codes: list[Any] = [None] * 3
    if y is not None:
        codes, classes = _encode_labels([y[i] for i in parts])
    splits = {s: Split(x[i], c, spec) for s, i, c in zip(SPLIT_NAMES, parts, codes, strict=True)}
    return Dataset(
        name=name,
        spec=spec,
        description=description,
        classes=classes,
        extra={"seed": seed, **(extra or {})},
        **splits,
    )
