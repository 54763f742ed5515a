"""What a data set is: its kind, event shape, splits, and the checks every model runs on input."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, TypeAlias

import numpy as np
from numpy.typing import ArrayLike

from ptheta.errors import DataError

Kind = Literal["binary", "categorical", "continuous", "table"]
KINDS: tuple[str, ...] = ("binary", "categorical", "continuous", "table")
DISCRETE_KINDS: tuple[str, ...] = ("binary", "categorical")

# Integer data with more levels than this is treated as continuous when the kind is inferred.
MAX_INFERRED_CATEGORIES = 256
# Values beyond this magnitude are refused: their squares (variances, distances, Gaussian
# exponents, sums of squares over many examples) overflow float64.
MAX_ABS_VALUE = 1e150


@dataclass(frozen=True)
class DataSpec:
    """The kind of one example: `binary`, `categorical` (with `n_categories` levels) or
    `continuous`, its `event_shape`, and optionally the `image_shape` (C, H, W) it is drawn as.

    With ``variable_length=True`` an example is a sequence of steps of one kind and of
    any length (the sequence data kind): ``event_shape`` is (T_max, *step_shape), T_max
    the longest sequence seen in training, and examples travel as a padded array plus
    their lengths (:class:`~ptheta.data.ragged.Sequences`).

    Kind ``table`` (mixed-type columns, :mod:`ptheta.data.table`): ``columns`` holds one
    :class:`~ptheta.data.table.ColumnSpec` per column (its JSON dict is accepted too),
    ``event_shape`` is (D,), and an example is a row of float64 codes, counts and reals,
    NaN where a cell is missing. A table is not ``is_discrete`` as a whole: each column
    has its own type, and :attr:`units` says what a log-likelihood of a row is.
    """

    kind: str
    event_shape: tuple[int, ...]
    n_categories: int | None = None
    image_shape: tuple[int, ...] | None = None
    variable_length: bool = False
    columns: tuple[Any, ...] | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise DataError(f"unknown data kind {self.kind!r}; use one of {', '.join(KINDS)}")
        object.__setattr__(self, "event_shape", tuple(int(s) for s in self.event_shape))
        if self.image_shape is not None:
            object.__setattr__(self, "image_shape", tuple(int(s) for s in self.image_shape))
        if self.kind == "table" or self.columns is not None:
            self._check_columns()
            return
        if self.kind == "binary":
            object.__setattr__(self, "n_categories", 2)
        elif self.kind == "categorical":
            if self.n_categories is None or int(self.n_categories) < 2:
                raise DataError(
                    "categorical data needs n_categories >= 2 (e.g. kind='categorical:17')"
                )
            object.__setattr__(self, "n_categories", int(self.n_categories))
        else:
            object.__setattr__(self, "n_categories", None)

    @property
    def n_dims(self) -> int:
        """Number of scalar variables in one example (the 'dim' of bits/dim)."""
        return math.prod(self.event_shape)

    def _check_columns(self) -> None:
        """A table's columns: complete, named once, one per entry of a (D,) event shape."""
        from ptheta.data.table import ColumnSpec

        if self.kind != "table":
            raise DataError(f"only table data have columns, not {self.kind} data")
        if self.columns is None or isinstance(self.columns, (str, dict)):
            raise DataError("table data need columns: one ColumnSpec (or its dict) per column")
        columns = tuple(
            ColumnSpec.from_json(c, f"column {i + 1} of the spec")
            for i, c in enumerate(self.columns)
        )
        if self.event_shape != (len(columns),):
            raise DataError(
                f"a table of {len(columns)} columns has event shape ({len(columns)},), got "
                f"{self.event_shape}"
            )
        names = [c.name for c in columns]
        if len(set(names)) != len(names):
            raise DataError(f"a table names each column once; got {names}")
        unresolved = [c.name for c in columns if not c.is_complete]
        if unresolved:
            raise DataError(f"the table's column(s) {unresolved} lack their levels")
        if self.n_categories is not None or self.image_shape is not None or self.variable_length:
            raise DataError("table data take columns only: no n_categories, image_shape or lengths")
        object.__setattr__(self, "columns", columns)

    @property
    def is_discrete(self) -> bool:
        return self.kind in DISCRETE_KINDS

    @property
    def units(self) -> str:
        """What a log-likelihood of these data is, in their own kind: ``discrete`` (a
        log-probability), ``continuous`` (a log-density) or, for a table with both kinds
        of column, ``mixed`` (the log of a probability times a density)."""
        if self.kind == "table":
            from ptheta.data.table import table_units

            return table_units(self.columns)
        return "discrete" if self.is_discrete else "continuous"

    @property
    def step_shape(self) -> tuple[int, ...]:
        """The shape of one step of a variable-length sequence (``()`` for a token or a
        number, ``(D,)`` for a vector); the event shape of any other example."""
        return self.event_shape[1:] if self.variable_length else self.event_shape

    @property
    def step_dims(self) -> int:
        """Scalar variables in one step of a sequence (1 for a token)."""
        return math.prod(self.step_shape)

    def describe(self) -> str:
        """Short text such as ``categorical(17) (64,)``, ``categorical(27) sequences of
        1-15 steps`` for variable-length sequences, or ``table of 6 columns (2 categorical,
        1 binary, 1 count, 2 continuous)``."""
        if self.kind == "table":
            from ptheta.data.table import describe_columns

            return f"table of {describe_columns(self.columns)}"
        kind = f"categorical({self.n_categories})" if self.kind == "categorical" else self.kind
        if self.variable_length:
            step = f" of {self.step_shape}" if self.step_shape else ""
            return f"{kind}{step} sequences of up to {self.event_shape[0]} steps"
        return f"{kind} {self.event_shape}"

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        if not self.variable_length:  # fixed-length specs keep their earlier form
            del out["variable_length"]
        if self.columns is None:  # so do specs of other kinds than table
            del out["columns"]
        else:
            out["columns"] = [c.to_json() for c in self.columns]
        return out

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> DataSpec:
        return cls(
            kind=d["kind"],
            event_shape=tuple(d["event_shape"]),
            n_categories=d.get("n_categories"),
            image_shape=tuple(d["image_shape"]) if d.get("image_shape") else None,
            variable_length=bool(d.get("variable_length", False)),
            columns=d.get("columns"),
        )


@dataclass
class Split:
    """One split of a data set: examples `x` of shape (N, *event_shape), labels `y` or None.

    Variable-length sequences (``spec.variable_length``) keep `x` padded with zeros to the
    longest, (N, T, *step_shape), and their `lengths` (N,); :attr:`sequences` gives both as
    one :class:`~ptheta.data.ragged.Sequences`.

    A streamed data set's `x` is a :class:`~ptheta.data.stream.Source` (read in batches,
    never whole; ``np.asarray(split.x)`` reads it all): families that stream fit from it
    batch by batch, the others read it whole.
    """

    x: Any  # np.ndarray, or a ptheta.data.stream.Source
    y: np.ndarray | None
    spec: DataSpec
    lengths: np.ndarray | None = None

    @property
    def sequences(self) -> Any:
        """The split as :class:`~ptheta.data.ragged.Sequences` (variable-length data)."""
        from ptheta.data.ragged import Sequences

        if self.lengths is None:
            return Sequences.from_array(self.x)
        return Sequences(self.x, self.lengths)

    def __len__(self) -> int:
        return len(self.x)


# What the public API takes as examples: an array-like of shape (N, *event_shape), or a
# Split (its ``x``; ``fit`` also takes its declared kind and labels).
Data: TypeAlias = ArrayLike | Split


@dataclass
class Dataset:
    """A named data set with fixed train/val/test splits.

    `log_density`, where given, is the true log-density (nats) of the generating
    distribution, and `entropy` its true entropy: the floor of any model's NLL.
    """

    name: str
    spec: DataSpec
    train: Split
    val: Split
    test: Split
    description: str = ""
    classes: list[str] | None = None
    log_density: Any = None  # callable (N, *event_shape) -> (N,), or None
    entropy: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return self.spec.kind

    @property
    def event_shape(self) -> tuple[int, ...]:
        return self.spec.event_shape

    @property
    def n_categories(self) -> int | None:
        return self.spec.n_categories

    def split(self, name: str) -> Split:
        if name not in ("train", "val", "test"):
            raise DataError(f"unknown split {name!r}; use train, val or test")
        return getattr(self, name)

    def fingerprint(self) -> str:
        """A hash of the data (all splits) and its spec: equal data, equal fingerprint."""
        h = hashlib.sha256(json.dumps(self.spec.to_json(), sort_keys=True).encode())
        for s in (self.train, self.val, self.test):
            identity = getattr(s.x, "identity", None)  # a streamed source: never read whole
            h.update(identity().encode() if identity else np.ascontiguousarray(s.x).tobytes())
            if s.y is not None:
                h.update(np.ascontiguousarray(s.y).tobytes())
            if s.lengths is not None:
                h.update(np.ascontiguousarray(s.lengths, dtype=np.int64).tobytes())
        return h.hexdigest()[:16]


def parse_kind(text: str) -> tuple[str, int | None]:
    """Parse ``binary``, ``continuous``, ``categorical``, ``categorical:K`` or ``table``."""
    name, _, k = text.partition(":")
    name = name.strip().lower()
    if name not in KINDS:
        raise DataError(
            f"unknown data kind {text!r}; use binary, categorical[:K], continuous or table"
        )
    if k:
        if name != "categorical":
            raise DataError(f"only categorical takes a number of levels, got {text!r}")
        try:
            return name, int(k)
        except ValueError:
            raise DataError(f"the number of levels in {text!r} is not an integer") from None
    return name, None


def infer_spec(x: np.ndarray, kind: str | None = None) -> DataSpec:
    """Infer the spec of examples `x` (N, *event_shape).

    0/1 values give `binary`; non-negative integers below 256 give `categorical(max+1)`;
    anything else `continuous`. `kind` (``"categorical:17"`` and so on) overrides.
    """
    x = as_array(x)
    if x.ndim < 2:
        raise DataError(
            f"expected examples of shape (N, ...) with N >= 1, got an array of shape {x.shape}; "
            "a single example is X[None], a single feature is X[:, None]"
        )
    _check_has_features(x, "X")
    event_shape = x.shape[1:]
    if kind is not None:
        name, k = parse_kind(kind)
        if name == "table":
            raise DataError(
                "kind='table' reads a CSV or Parquet file (or a DataFrame, with "
                "ptheta.data.table_dataset) column by column; an array has no columns to type"
            )
        if name == "categorical" and k is None:
            k = int(np.nanmax(x)) + 1 if x.size else 2
        return DataSpec(name, event_shape, k)
    finite = x[np.isfinite(x)] if np.issubdtype(x.dtype, np.floating) else x
    if finite.size == 0:
        return DataSpec("continuous", event_shape)
    is_int = np.issubdtype(finite.dtype, np.integer) or np.issubdtype(finite.dtype, np.bool_)
    if not is_int:
        is_int = bool(np.all(finite == np.round(finite)))
    if is_int:
        lo, hi = float(finite.min()), float(finite.max())
        if lo >= 0 and hi <= 1:
            return DataSpec("binary", event_shape)
        if lo >= 0 and hi < MAX_INFERRED_CATEGORIES:
            return DataSpec("categorical", event_shape, int(hi) + 1)
    return DataSpec("continuous", event_shape)


def check_values(
    x: Any,
    spec: DataSpec,
    *,
    allow_nan: bool = False,
    what: str = "X",
) -> np.ndarray:
    """Check that `x` holds examples of `spec` and return them as a numpy array.

    Discrete data come back as int64 (float64 when NaN marks missing entries and
    `allow_nan`), continuous data as float64, always C-contiguous (so equal values give
    equal results whatever the input's memory layout). Every failure is a `DataError`
    that says what was expected: sparse, complex, string and object input, examples with
    no features, infinite values, NaN (unless `allow_nan`) and values beyond
    ±`MAX_ABS_VALUE` (whose squares overflow float64) are refused.

    Table data (``spec.kind == "table"``) come back as float64 codes, counts and reals
    after per-column checks (:func:`~ptheta.data.table.check_table`); a pandas DataFrame
    of labels is encoded with the spec's columns first.
    """
    if spec.kind == "table":
        from ptheta.data.table import encode, is_frame

        if is_frame(x):
            x = encode(x, spec.columns, what)
        elif isinstance(x, Split) and x.spec.columns != spec.columns:
            raise DataError(
                f"{what} are a table of other columns ({x.spec.describe()}) than the model's "
                f"({spec.describe()}); codes of other levels would be misread: read the file "
                "again with the model's columns as its schema"
            )
    arr = as_array(x, what)
    expected = (spec.event_shape,)
    if arr.ndim == len(spec.event_shape) and arr.shape == spec.event_shape:
        raise DataError(
            f"{what} has the shape of one example {arr.shape}; pass a batch. Reshape your "
            f"data: X[None] has shape (1, {', '.join(map(str, spec.event_shape))})"
        )
    if arr.ndim == 2 and len(spec.event_shape) == 1 and arr.shape[1] != spec.event_shape[0]:
        raise DataError(  # scikit-learn's words, then ours
            f"{what} has {arr.shape[1]} features, but it is expecting "
            f"{spec.event_shape[0]} features as input (the model was fitted on examples of shape "
            f"{spec.event_shape}); pass an array of shape (N, {spec.event_shape[0]})"
        )
    if arr.ndim < 1 or arr.shape[1:] != spec.event_shape:
        raise DataError(
            f"{what} has shape {arr.shape}, but this model was fitted on examples of shape "
            f"{expected[0]}: expected (N, {', '.join(map(str, spec.event_shape))})"
        )
    if arr.shape[0] == 0:
        raise DataError(f"{what} is empty (0 examples)")
    _check_has_features(arr, what)
    if spec.kind == "table":
        from ptheta.data.table import check_table

        return check_table(arr, spec.columns, allow_nan=allow_nan, what=what)
    if arr.dtype.kind in "biu":
        # integers: no NaN, no infinity, no fraction, no overflow of squares; one range
        # check and one C-contiguous copy of the right dtype (whatever the memory layout)
        if spec.is_discrete:
            _check_levels(arr, spec, what, int(arr.min()), int(arr.max()), whole=True)
            return np.ascontiguousarray(arr, dtype=np.int64)
        arr = np.ascontiguousarray(arr, dtype=np.float64)
        check_magnitude(arr, what)
        return arr
    # one C-contiguous float64 copy: the same values give the same model whatever the
    # memory layout (Fortran order, a DataFrame, a reversed view X[::-1])
    arr = np.ascontiguousarray(arr, dtype=np.float64)
    lo, hi = (float(arr.min()), float(arr.max())) if arr.size else (0.0, 0.0)
    if math.isfinite(lo) and math.isfinite(hi):
        # every value finite (a NaN or an infinity would show in the minimum or maximum):
        # two passes without temporaries, the common case of complete data
        big = max(-lo, hi)
        if big > MAX_ABS_VALUE:
            check_magnitude(arr, what)  # its message
        if not spec.is_discrete:
            return arr
        _check_levels(arr, spec, what, lo, hi)
        return np.ascontiguousarray(arr, dtype=np.int64)
    finite = np.isfinite(arr)
    if not finite.all():
        if np.isinf(arr).any():
            raise DataError(f"{what} contains infinite values; remove or clip them")
        if not allow_nan:
            cannot = (
                "this model fits complete examples only: drop or impute those rows first, or "
                "choose a family that fits missing entries (`ptheta models` marks them 'fits "
                "missing')"
                if what == "training data"
                else "this model cannot marginalise missing entries: drop or impute those rows "
                "first"
            )
            raise DataError(
                f"{what} contains NaN (missing) values in {int((~finite).sum())} entries; {cannot}"
            )
    check_magnitude(arr, what)
    if spec.is_discrete:
        vals = arr[finite]
        if vals.size:
            _check_levels(vals, spec, what, vals.min(), vals.max())
        if finite.all():
            return np.ascontiguousarray(arr, dtype=np.int64)
    return arr


def _check_levels(
    vals: np.ndarray, spec: DataSpec, what: str, lo: float, hi: float, *, whole: bool = False
) -> None:
    """Refuse values of discrete data (``lo``, ``hi`` their extremes) that are not whole
    numbers (unless ``whole``: an integer dtype) or lie outside the levels 0..K−1."""
    if not whole and not np.all(vals == np.round(vals)):
        raise DataError(
            f"{what} has non-integer values but the model expects {spec.describe()} data; "
            "discretise it or fit a model on continuous data"
        )
    if lo < 0 or hi > spec.n_categories - 1:
        raise DataError(
            f"{what} has values in [{lo:g}, {hi:g}] but the model expects "
            f"{spec.describe()} data with values 0..{spec.n_categories - 1}"
        )


def as_array(x: Any, what: str = "X") -> np.ndarray:
    """``x`` (an array, a DataFrame, nested lists, a :class:`Split`) as a numpy array of real
    numbers (bool, integer or float dtype), or a `DataError` that says what to pass instead:
    sparse matrices, complex numbers, strings and other objects are refused.
    """
    if isinstance(x, Split):
        x = x.x
    if type(x).__module__.startswith("scipy.sparse"):
        raise DataError(
            f"{what} is a scipy sparse matrix; pass a dense numeric array instead "
            "(X.toarray(), if it fits in memory)"
        )
    try:
        arr = np.asarray(x)
    except Exception as e:  # ragged lists and the like
        raise DataError(
            f"{what} could not be read as an array ({e}); pass a dense numeric array of "
            "shape (N, ...)"
        ) from None
    if arr.dtype.kind == "c":
        raise DataError(
            f"Complex data not supported: {what} has complex values (dtype {arr.dtype}), which "
            "would lose their imaginary part; pass real numbers: X.real, np.abs(X), or both "
            "parts as features (np.concatenate([X.real, X.imag], axis=1))"
        )
    if arr.dtype.kind not in "biuf":
        if hasattr(x, "columns") and hasattr(x, "dtypes"):  # a DataFrame of mixed columns
            raise DataError(
                f"{what} is a DataFrame with non-numeric columns (dtype {arr.dtype} as one "
                "array); read it as a table, whose columns keep their own kinds and labels: "
                "ptheta.data.table_dataset(frame) (or `ptheta fit ... --data file.csv`)"
            )
        raise DataError(
            f"{what} must be numeric, got an array of dtype {arr.dtype}; pass a dense numeric "
            "array (encode text or categories as numbers, e.g. with ptheta's table data or "
            "np.unique(..., return_inverse=True), and missing values as NaN)"
        )
    return arr


def check_magnitude(arr: np.ndarray, what: str = "X") -> None:
    """Refuse finite values whose squares overflow float64 (|x| > `MAX_ABS_VALUE`)."""
    if arr.dtype.kind != "f" or arr.size == 0:
        return
    with np.errstate(invalid="ignore"):
        big = float(np.nanmax(np.abs(arr))) if not np.isnan(arr).all() else 0.0
    if big > MAX_ABS_VALUE:
        scale = 10.0 ** math.floor(math.log10(big))
        raise DataError(
            f"{what} has values up to {big:.3g} in magnitude; beyond ±{MAX_ABS_VALUE:.0e} "
            "squares and variances overflow float64, so densities and samples would be inf or "
            f"NaN: rescale the data before fitting (e.g. X / {scale:.0e}, or a log transform)"
        )


def _check_has_features(arr: np.ndarray, what: str) -> None:
    if arr.ndim >= 2 and 0 in arr.shape[1:]:
        raise DataError(
            f"{what} has no features: 0 feature(s) (shape={arr.shape}) while a minimum of 1 is "
            "required; every example needs at least one value: pass an array of shape (N, D) "
            "with D >= 1"
        )


def location_scale(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation of examples ``x`` (N, ...) over axis 0, each of shape
    x.shape[1:], for standardising z = (x − mean) / std; a constant entry gets std 1.

    Computed on the values divided by their largest magnitude, so no square overflows
    however large the data are.
    """
    x = np.asarray(x, dtype=np.float64)
    big = np.abs(x).max(axis=0)
    big = np.where(big > 0, big, 1.0)
    u = x / big
    mean = u.mean(axis=0)
    std = np.sqrt(np.mean((u - mean) ** 2, axis=0)) * big
    return mean * big, np.where(std > 0, std, 1.0)
