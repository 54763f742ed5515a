"""The user's own data: arrays, .npy/.npz/.csv files and image folders, each made a `Dataset`."""

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

from ptheta.data.sequences import load_text
from ptheta.data.spec import Dataset, DataSpec, Split, check_magnitude, infer_spec, parse_kind
from ptheta.errors import DataError, unknown_name

IMAGE_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff")
FILE_SUFFIXES: tuple[str, ...] = (".npy", ".npz", ".csv", ".txt")
SPLIT_NAMES: tuple[str, ...] = ("train", "val", "test")

# The largest side an image folder is resized to: 1024 x 1024 RGB pixels are 25 MB an
# image as int64 already, and the `--image-size` help of the CLI quotes this number.
MAX_IMAGE_SIZE = 1024

# Fractions of a shuffled data set that go to validation and test; the rest is training.
VAL_FRACTION = 0.1
TEST_FRACTION = 0.1

XY = tuple[np.ndarray, np.ndarray | None]  # one split: examples and labels or None


# ---------------------------------------------------------------------------------------
# From arrays to a Dataset: shared by every loader (and by `set_kind` for built-ins).


def split_indices(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Shuffle range(n) with `seed` and cut it 80 / 10 / 10 into train / val / test indices,
    with at least one example in each."""
    if n < 3:
        raise DataError(
            f"a data set needs at least 3 examples (one each for train, val and test), got {n}"
        )
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise DataError(f"the split seed must be an integer >= 0, got {seed!r}")
    perm = np.random.default_rng(seed).permutation(n)
    n_val = max(1, int(n * VAL_FRACTION))
    n_test = max(1, int(n * TEST_FRACTION))
    n_train = n - n_val - n_test
    return perm[:n_train], perm[n_train : n_train + n_val], perm[n_train + n_val :]


def _encode_labels(ys: Sequence[np.ndarray]) -> tuple[list[np.ndarray], list[str]]:
    """Map labels of any type (ints, strings) to codes 0..K-1 consistently across `ys`;
    `classes[code]` is the original label as text."""
    for y in ys:
        if y.dtype == object:
            raise DataError("labels must be numbers or strings, got an object array")
        if np.issubdtype(y.dtype, np.floating):
            if not np.all(np.isfinite(y)):
                raise DataError("labels contain NaN or infinite values; every example needs one")
            if not np.all(y == np.round(y)):
                raise DataError(
                    "labels must be integers or strings, got non-integer numbers; "
                    "a continuous target is not a class label"
                )
    ys = [y.astype(np.int64) if y.dtype.kind in "fb" else y for y in ys]
    try:
        levels, codes = np.unique(np.concatenate(ys), return_inverse=True)
    except TypeError:  # numbers in one split, strings in another
        raise DataError("the labels of the splits have different types (numbers, text)") from None
    codes = codes.reshape(-1).astype(np.int64)
    out, start = [], 0
    for y in ys:
        out.append(codes[start : start + len(y)])
        start += len(y)
    return out, [str(v) for v in levels.tolist()]


def _check_not_structured(x: np.ndarray, what: str) -> None:
    if x.dtype.names is not None:
        raise DataError(
            f"{what} is a structured (record) array with fields {', '.join(x.dtype.names)}; "
            "structured and record dtypes are not supported: save a plain numeric array, e.g. "
            "np.stack([a[f] for f in a.dtype.names], axis=-1)"
        )


def _finalise_x(x: np.ndarray, spec: DataSpec, where: str) -> np.ndarray:
    """Check the values of `x` against `spec` and give discrete data as int64, continuous
    data as float64 (NaN kept there: the models treat it as a missing value)."""
    if spec.kind == "continuous":
        return x.astype(np.float64)
    if x.dtype.kind == "f":
        if np.isnan(x).any():
            raise DataError(
                f"{where} contains {int(np.isnan(x).sum())} NaN (missing) values, which only "
                "continuous data may hold: impute them, or load with kind='continuous'"
            )
        if not np.all(x == np.round(x)):
            raise DataError(
                f"{where} has non-integer values, so it cannot be {spec.describe()} data; "
                "load it with kind='continuous'"
            )
    lo, hi = x.min(), x.max()
    if lo < 0 or hi > spec.n_categories - 1:
        if lo < 0:
            hint = "shift it to start at 0, or load it with kind='continuous'"
        elif spec.kind == "binary":
            hint = "binarise it first, or load it with kind='categorical'"
        else:
            hint = f"load it with kind='categorical:{int(hi) + 1}'"
        raise DataError(
            f"{where} has values in [{lo:g}, {hi:g}], outside 0..{spec.n_categories - 1} "
            f"of {spec.describe()} data; {hint}"
        )
    return x.astype(np.int64)


def _guess_image_shape(event_shape: tuple[int, ...]) -> tuple[int, ...] | None:
    # (H, W) examples are gray images; (C, H, W) with 1 or 3 channels are images too.
    if len(event_shape) == 2:
        return (1, *event_shape)
    if len(event_shape) == 3 and event_shape[0] in (1, 3):
        return event_shape
    return None


def from_splits(
    name: str,
    splits: dict[str, XY],
    *,
    kind: str | None = None,
    classes: list[str] | None = None,
    image_shape: tuple[int, ...] | None = None,
    description: str = "",
    extra: dict[str, Any] | None = None,
) -> Dataset:
    """Build a `Dataset` from given splits.

    Arguments:
        name: the data set's name.
        splits: ``{"train": (x, y), "val": (x, y), "test": (x, y)}``; x has shape
            (N, *event_shape), y is None or (N,) labels (ints or strings). Either all splits
            have labels or none.
        kind: ``binary``, ``categorical``, ``categorical:K`` or ``continuous``; inferred from
            all splits together when None, so the levels cover every split.
        classes: names of the label codes when the labels are already codes 0..K-1; without
            it the labels are re-coded to 0..K-1 and their values become the class names.
        image_shape: (C, H, W) the examples are drawn as; guessed from the event shape.

    Returns:
        the `Dataset`, with discrete x as int64, continuous x as float64, y as int64.
    """
    missing = [s for s in SPLIT_NAMES if s not in splits]
    if missing:
        raise DataError(f"data set {name!r} lacks the split(s) {', '.join(missing)}")
    xs, ys = [], []
    for s in SPLIT_NAMES:
        x, y = splits[s]
        x = np.asarray(x)
        _check_not_structured(x, f"the {s} split of {name!r}")
        if x.dtype == object or not (np.issubdtype(x.dtype, np.number) or x.dtype == bool):
            raise DataError(f"the {s} split of {name!r} must be numeric, got dtype {x.dtype}")
        if np.iscomplexobj(x):
            raise DataError(f"the {s} split of {name!r} holds complex numbers; use real data")
        if x.ndim < 2:
            raise DataError(
                f"the {s} split of {name!r} has shape {x.shape}, but examples must be stacked "
                "along the first axis as (N, ...): N scalar examples are X[:, None]"
            )
        if len(x) == 0:
            raise DataError(f"the {s} split of {name!r} is empty (0 examples)")
        if xs and x.shape[1:] != xs[0].shape[1:]:
            raise DataError(
                f"the splits of {name!r} have examples of different shapes: "
                f"train {xs[0].shape[1:]}, {s} {x.shape[1:]}"
            )
        if y is not None:
            y = np.asarray(y)
            if y.ndim != 1 or len(y) != len(x):
                raise DataError(
                    f"the {s} labels of {name!r} have shape {y.shape}; expected ({len(x)},), "
                    "one label per example"
                )
        xs.append(x)
        ys.append(y)
    if any(y is None for y in ys) and not all(y is None for y in ys):
        raise DataError(f"data set {name!r} has labels for some splits but not all")

    if kind is not None:
        parse_kind(kind)  # fail on a bad kind before looking at the values
    joined = np.concatenate([x.reshape(len(x), -1) for x in xs]).reshape(-1, *xs[0].shape[1:])
    if joined.dtype == bool:
        joined = joined.astype(np.int64)
    if joined.dtype.kind == "f" and np.isinf(joined).any():
        raise DataError(f"data set {name!r} contains infinite values; remove or clip them")
    check_magnitude(joined, f"data set {name!r}")  # before its levels are counted
    spec = infer_spec(joined, kind)
    spec = DataSpec(
        spec.kind,
        spec.event_shape,
        spec.n_categories,
        image_shape or _guess_image_shape(spec.event_shape),
    )

    if ys[0] is None:
        codes: list[Any] = [None] * 3
    elif classes is not None:
        codes = [np.asarray(y, dtype=np.int64) for y in ys]
    else:
        codes, classes = _encode_labels(ys)
    parts = {
        s: Split(_finalise_x(x, spec, f"the {s} split of {name!r}"), y, spec)
        for s, x, y in zip(SPLIT_NAMES, xs, codes, strict=True)
    }
    return Dataset(
        name=name,
        spec=spec,
        description=description,
        classes=classes,
        extra=dict(extra or {}),
        **parts,
    )


def from_arrays(
    x: Any,
    y: Any = None,
    *,
    name: str = "arrays",
    kind: str | None = None,
    seed: int = 0,
    classes: list[str] | None = None,
    image_shape: tuple[int, ...] | None = None,
    description: str = "",
    extra: dict[str, Any] | None = None,
) -> Dataset:
    """Make a `Dataset` from examples `x` (N, ...) and optional labels `y` (N,), split by a
    shuffle with `seed` into 80 % train, 10 % val and 10 % test.

    The other arguments are those of `from_splits`.

    Example:
        >>> d = from_arrays(np.eye(10, dtype=int))
        >>> d.kind, len(d.train), len(d.val), len(d.test)
        ('binary', 8, 1, 1)
    """
    x = np.asarray(x)
    _check_not_structured(x, repr(name))
    if x.ndim < 2:
        raise DataError(
            f"{name!r} has shape {x.shape}, but examples must be stacked along the first axis "
            "as (N, ...): N scalar examples are X[:, None]"
        )
    if y is not None:
        y = np.asarray(y)
        if y.ndim != 1 or len(y) != len(x):
            raise DataError(
                f"the labels of {name!r} have shape {y.shape}; expected ({len(x)},), "
                "one label per example"
            )
    parts = split_indices(len(x), seed)
    splits = {
        s: (x[i], None if y is None else y[i]) for s, i in zip(SPLIT_NAMES, parts, strict=True)
    }
    return from_splits(
        name,
        splits,
        kind=kind,
        classes=classes,
        image_shape=image_shape,
        description=description,
        extra={"seed": seed, **(extra or {})},
    )


def set_kind(data: Dataset, kind: str) -> Dataset:
    """The same data set read as another kind (``continuous``, ``categorical:K``, ...).

    The true `log_density` and `entropy` are kept only when the spec is unchanged: a
    density of continuous points is not a probability of discrete values.
    """
    splits = {s: (data.split(s).x, data.split(s).y) for s in SPLIT_NAMES}
    new = from_splits(
        data.name,
        splits,
        kind=kind,
        classes=data.classes,
        image_shape=data.spec.image_shape,
        description=data.description,
        extra=data.extra,
    )
    if new.spec == data.spec:
        new.log_density, new.entropy = data.log_density, data.entropy
    return new


# ---------------------------------------------------------------------------------------
# File loaders.


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
        _check_not_structured(np.empty(0, dtype), what)
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


def _image_size(image_size: int | Sequence[int] | None) -> tuple[int, int] | None:
    if image_size is None:
        return None
    size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    if len(size) != 2 or not all(isinstance(s, (int, np.integer)) for s in size):
        raise DataError(f"image_size must be an int or (H, W), got {image_size!r}")
    if not all(1 <= s <= MAX_IMAGE_SIZE for s in size):
        raise DataError(
            f"image_size must be between 1 and {MAX_IMAGE_SIZE} pixels a side (larger images "
            f"do not fit in memory as a data set), got {image_size!r}"
        )
    return int(size[0]), int(size[1])


def _list_images(folder: Path) -> list[Path]:
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES
    )


# How deep an image's pixels are, from its Pillow mode: black and white ("1"), integers of
# 16 or 32 bits ("I;16", "I;16B", "I"), 32-bit floats ("F"); every other mode (L, LA, P,
# RGB, RGBA, CMYK, ...) is read as 8-bit gray or RGB.
BILEVEL, BYTE, INTEGER, FLOAT = "1-bit", "8-bit", "16/32-bit integer", "32-bit float"


def _pixel_depth(mode: str) -> str:
    if mode == "1":
        return BILEVEL
    if mode == "F":
        return FLOAT
    if mode == "I" or mode.startswith("I;"):
        return INTEGER
    return BYTE


def _read_image(path: Path, size: tuple[int, int] | None) -> tuple[np.ndarray, str, str]:
    """The pixels of one image file as (C, H, W) with their stored values (0/1 for black
    and white), its Pillow mode and its pixel depth."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            img.load()
            mode = img.mode
            depth = _pixel_depth(mode)
            if depth == INTEGER:
                img = img.convert("I")  # lossless: 16-bit values fit in 32-bit integers
            elif depth == BYTE:
                img = img.convert("L" if mode in ("L", "LA", "La") else "RGB")
            if size is not None:
                # Pillow sizes are (W, H); it resizes mode "1" by nearest neighbour, so
                # black and white stays black and white.
                img = img.resize(size[::-1], Image.Resampling.BILINEAR)
            arr = np.asarray(img)
    except MemoryError:
        raise DataError(
            f"out of memory reading the image {path} (MemoryError): use a smaller image_size"
        ) from None
    except Exception as e:  # Pillow raises many types on broken or unknown files
        raise DataError(f"could not read the image {path}: {e or type(e).__name__}") from None
    if depth == BILEVEL:
        arr = arr.astype(np.uint8)  # Pillow gives booleans
    return (arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)), mode, depth


def _folder_depth(folder: Path, depths: list[str], files: list[Path], modes: list[str]) -> str:
    """The one pixel depth of a folder's images; black and white among 8-bit images counts
    as 8-bit. Any other mix is refused: ptheta does not guess how values of one depth map
    onto another's (is 16-bit 65535 the white of 8-bit 255? is float 1.0?)."""
    kinds = set(depths)
    if len(kinds) == 1:
        return depths[0]
    if kinds == {BILEVEL, BYTE}:
        return BYTE
    first = {d: depths.index(d) for d in sorted(kinds)}  # one file of each depth
    examples = [f"{files[i].name} is {d} (mode {modes[i]})" for d, i in first.items()]
    raise DataError(
        f"the images in {folder} mix pixel depths: {'; '.join(examples)}; ptheta keeps each "
        "image's stored values and will not guess how one depth maps onto another: convert "
        "them to one depth first (e.g. with Pillow's Image.convert)"
    )


def load_image_folder(
    folder: Path,
    *,
    kind: str | None = None,
    image_size: int | Sequence[int] | None = None,
    grayscale: bool | None = None,
    seed: int = 0,
) -> Dataset:
    """Load a folder of images: flat (no labels) or with one sub-folder per class (labels
    are the sorted sub-folder names).

    Pixel values are kept as stored, by pixel depth (from each file's Pillow mode):

    - 8-bit gray or colour (L, P, RGB, RGBA, ...): values 0..255, categorical(256) when
      the kind is inferred (whatever the darkest and brightest pixels here are);
    - black and white (mode "1"): values 0/1, inferred binary. Among 8-bit images they are
      read as 0 and 255, the gray levels they show;
    - 16- or 32-bit integers (mode "I;16", "I"; 16-bit PNG and TIFF) and 32-bit floats
      (mode "F"; float TIFF): values as stored, never clipped to 0..255; the kind is
      inferred from the values as for an array (integers below 256 → categorical(max+1),
      more levels, negative or fractional values → continuous), or declared with `kind`.

    A folder that mixes other depths (8-bit with 16-bit, integer with float) is refused.

    Arguments:
        grayscale: True for one channel, False for RGB, None for one channel exactly when
            every image is gray.
        image_size: (H, W) or an int to resize every image to (bilinear; nearest for
            black and white); without it all images must share one size.

    Returns:
        pixels as x of shape (N, C, H, W): int64 for integer depths, float64 for floats.
    """
    size = _image_size(image_size)
    try:
        subdirs = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
        top = _list_images(folder)
        groups = [(d.name, _list_images(d)) for d in subdirs]
    except OSError as e:
        raise DataError(f"could not list the folder {folder}: {e}") from None
    suffixes = "/".join(s[1:] for s in IMAGE_SUFFIXES)
    if subdirs and not top:
        empty = [name for name, files in groups if not files]
        if empty:
            raise DataError(
                f"class folder(s) {', '.join(empty)} in {folder} hold no images ({suffixes}); "
                "remove them or add images"
            )
        classes: list[str] | None = [name for name, _ in groups]
        files = [(p, c) for c, (_, ps) in enumerate(groups) for p in ps]
    elif top:
        if subdirs:
            raise DataError(
                f"{folder} holds both images and sub-folders; put every image in a class "
                "sub-folder, or all of them directly in the folder"
            )
        classes = None
        files = [(p, 0) for p in top]
    else:
        raise DataError(f"{folder} holds no images ({suffixes}), directly or in sub-folders")

    images, labels, modes, depths = [], [], [], []
    for p, label in files:
        arr, mode, depth = _read_image(p, size)
        images.append(arr)
        labels.append(label)
        modes.append(mode)
        depths.append(depth)

    shapes = sorted({a.shape[1:] for a in images})
    if len(shapes) > 1:
        raise DataError(
            f"the images in {folder} have different sizes ({shapes[0]}, {shapes[-1]}, ...); "
            "pass image_size=(H, W) to resize them all"
        )
    depth = _folder_depth(folder, depths, [p for p, _ in files], modes)
    if depth == BYTE:  # black and white shown among gray levels: 0 and 255
        images = [a * 255 if d == BILEVEL else a for a, d in zip(images, depths, strict=True)]
    # An RGB file whose three channels agree everywhere is a gray image too.
    gray = [a.shape[0] == 1 or bool((a[0] == a[1]).all() and (a[1] == a[2]).all()) for a in images]
    to_gray = all(gray) if grayscale is None else grayscale
    if to_gray:
        # ITU-R 601 luma, the same weights Pillow's convert("L") uses.
        images = [
            a if a.shape[0] == 1 else np.rint(np.tensordot([0.299, 0.587, 0.114], a, 1))[None]
            for a in images
        ]
    else:
        images = [np.repeat(a, 3, axis=0) if a.shape[0] == 1 else a for a in images]
    x = np.stack(images).astype(np.float64 if depth == FLOAT else np.int64)  # (N, C, H, W)
    y = np.asarray(labels, dtype=np.int64) if classes is not None else None
    # 8-bit pixels live on 0..255 whatever the darkest or brightest one here is.
    if kind is None and depth == BYTE and infer_spec(x).kind == "categorical":
        kind = "categorical:256"
    return from_arrays(
        x,
        y,
        name=folder.name or str(folder),
        kind=kind,
        seed=seed,
        classes=classes,
        image_shape=x.shape[1:],
        extra={"path": str(folder), "format": "images", "pixel_depth": depth},
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
