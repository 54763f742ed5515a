"""From arrays to a `Dataset`: splits, label encoding, kind inference; shared by every loader."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ptheta.data.spec import Dataset, DataSpec, Split, check_magnitude, infer_spec, parse_kind
from ptheta.errors import DataError

SPLIT_NAMES: tuple[str, ...] = ("train", "val", "test")

# Fractions of a shuffled data set that go to validation and test; the rest is training.
VAL_FRACTION = 0.1
TEST_FRACTION = 0.1

XY = tuple[np.ndarray, np.ndarray | None]  # one split: examples and labels or None


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


def check_not_structured(x: np.ndarray, what: str) -> None:
    if x.dtype.names is not None:
        raise DataError(
            f"{what} is a structured (record) array with fields {', '.join(x.dtype.names)}; "
            "structured and record dtypes are not supported: save a plain numeric array, e.g. "
            "np.stack([a[f] for f in a.dtype.names], axis=-1)"
        )


def _finalise_x(x: np.ndarray, spec: DataSpec, where: str) -> np.ndarray:
    """Check the values of `x` against `spec` and give discrete data as int64, continuous
    data as float64. NaN is a missing value, kept (discrete data with NaN stay float64):
    families that fit or score with missing entries take it, the others refuse it."""
    if spec.kind == "continuous":
        return x.astype(np.float64)
    missing = None
    if x.dtype.kind == "f":
        missing = np.isnan(x)
        if missing.all():
            raise DataError(f"{where} has no observed value (every entry is NaN)")
        if missing.any():
            x = x[~missing]  # the observed values are checked below
        else:
            missing = None
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
    if missing is not None:
        out = np.full(missing.shape, np.nan)
        out[~missing] = x
        return out
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
        check_not_structured(x, f"the {s} split of {name!r}")
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
    image_shape = image_shape or _guess_image_shape(spec.event_shape)
    n_categories = spec.n_categories
    if kind is None and joined.dtype == np.uint8 and image_shape and spec.kind == "categorical":
        # 8-bit images have 256 levels whatever the brightest pixel of this sample, so that
        # bits/dim compare with published tables (as image folders do)
        n_categories = 256
    spec = DataSpec(spec.kind, spec.event_shape, n_categories, image_shape)

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
    check_not_structured(x, repr(name))
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
