"""Built-in data sets, found by name: 8×8 digits, 2-D toy densities, synthetic ground truth,
time series (binned or real, one multivariate), a corpus of words and mixed-type tables."""

from __future__ import annotations

import dataclasses
import functools
import zlib
from collections.abc import Callable

import numpy as np

from ptheta.data import affairs, groundtruth, groundtruth_table, sequences, text, toy2d
from ptheta.data.spec import Dataset, DataSpec, Split

# Digits ship in a fixed order; the splits are consecutive blocks of it.
DIGITS_SPLIT = (1000, 350, 447)
# Pixels of digits-binary at or above this gray level (of 0..16) are 1.
DIGITS_THRESHOLD = 8
TOY_SPLIT = (4000, 1000, 1000)
# Each toy data set draws from its own stream, seeded by this constant and the set's name.
TOY_SEED = 271_828


def _blocks(n: tuple[int, int, int]) -> tuple[slice, slice, slice]:
    a, b = n[0], n[0] + n[1]
    return slice(0, a), slice(a, b), slice(b, b + n[2])


@functools.cache
def _digits(binary: bool) -> Dataset:
    from sklearn.datasets import load_digits

    raw = load_digits()
    x = raw.data.astype(np.int64)  # (1797, 64), gray levels 0..16
    y = raw.target.astype(np.int64)
    if binary:
        x = (x >= DIGITS_THRESHOLD).astype(np.int64)
        spec = DataSpec("binary", (64,), image_shape=(1, 8, 8))
    else:
        spec = DataSpec("categorical", (64,), 17, image_shape=(1, 8, 8))
    train, val, test = (Split(x[s], y[s], spec) for s in _blocks(DIGITS_SPLIT))
    return Dataset(
        name="digits-binary" if binary else "digits",
        spec=spec,
        train=train,
        val=val,
        test=test,
        description=DESCRIPTIONS["digits-binary" if binary else "digits"],
        classes=[str(i) for i in range(10)],
        extra={"source": "sklearn.datasets.load_digits"},
    )


@functools.cache
def _toy(name: str) -> Dataset:
    rng = np.random.default_rng([TOY_SEED, zlib.crc32(name.encode())])
    x = toy2d.SAMPLERS[name](sum(TOY_SPLIT), rng)  # (6000, 2)
    spec = DataSpec("continuous", (2,))
    train, val, test = (Split(x[s], None, spec) for s in _blocks(TOY_SPLIT))
    return Dataset(
        name=f"toy2d-{name}",
        spec=spec,
        train=train,
        val=val,
        test=test,
        description=toy2d.DESCRIPTIONS[name],
        log_density=toy2d.LOG_DENSITIES.get(name),
        entropy=toy2d.entropy(name),
        extra={"source": "ptheta.data.toy2d", "seed": [TOY_SEED, zlib.crc32(name.encode())]},
    )


def _copy(data: Dataset) -> Dataset:
    # The cached arrays stay private: callers may write into what they get.
    def split(s: Split) -> Split:
        y = None if s.y is None else s.y.copy()
        return Split(s.x.copy(), y, s.spec, None if s.lengths is None else s.lengths.copy())

    return dataclasses.replace(
        data,
        train=split(data.train),
        val=split(data.val),
        test=split(data.test),
        classes=None if data.classes is None else list(data.classes),
        extra=dict(data.extra),
    )


# name -> cached builder (shared arrays: read only, never handed out)
_CACHED: dict[str, Callable[[], Dataset]] = {
    "digits": functools.partial(_digits, False),
    "digits-binary": functools.partial(_digits, True),
    **{f"toy2d-{n}": functools.partial(_toy, n) for n in toy2d.SAMPLERS},
    "groundtruth-tree": functools.cache(groundtruth.tree_dataset),
    **{n: functools.partial(sequences.builtin_series, n) for n in sequences.SERIES},
    **{n: functools.partial(sequences.builtin_series, n) for n in sequences.REAL_SERIES},
    "unicode-words": functools.cache(text.unicode_words_dataset),
    "affairs": functools.cache(affairs.affairs_dataset),
    "groundtruth-table": functools.cache(groundtruth_table.table_dataset),
}

DESCRIPTIONS: dict[str, str] = {
    "digits": "scikit-learn 8x8 handwritten digits, gray levels 0..16, labels 0-9",
    "digits-binary": f"8x8 digits binarised at gray level >= {DIGITS_THRESHOLD}, labels 0-9",
    **{f"toy2d-{n}": d for n, d in toy2d.DESCRIPTIONS.items()},
    "groundtruth-tree": groundtruth.DESCRIPTION,
    **sequences.DESCRIPTIONS,
    "unicode-words": text.UNICODE_WORDS_DESCRIPTION,
    "affairs": affairs.DESCRIPTION,
    "groundtruth-table": groundtruth_table.DESCRIPTION,
}


# What `ptheta datasets` lists, without loading anything (scikit-learn and statsmodels
# take seconds to import): kind, event shape, split sizes, labels. A test checks each row
# against the loaded data set. Variable-length data say "sequences" after the kind, and
# their event shape is (longest training sequence, *step shape).
SUMMARIES: dict[str, tuple[str, tuple[int, ...], int, int, int, bool]] = {
    "digits": ("categorical(17)", (64,), 1000, 350, 447, True),
    "digits-binary": ("binary", (64,), 1000, 350, 447, True),
    **{f"toy2d-{n}": ("continuous", (2,), *TOY_SPLIT, False) for n in toy2d.DESCRIPTIONS},
    "groundtruth-tree": ("binary", (30,), 10000, 2000, 2000, False),
    "sunspots": ("categorical(16)", (15,), 202, 3, 3, False),
    "co2": ("categorical(16)", (24,), 344, 3, 3, False),
    "nile": ("categorical(8)", (5,), 66, 3, 3, False),
    "sunspots-real": ("continuous", (15,), 202, 3, 3, False),
    "co2-real": ("continuous", (24,), 344, 3, 3, False),
    "nile-real": ("continuous", (5,), 66, 3, 3, False),
    "macro-growth": ("continuous", (10, 3), 132, 3, 3, False),
    "unicode-words": ("categorical(37) sequences", (24,), 3780, 472, 472, False),
    "affairs": ("table", (10,), 5094, 636, 636, False),
    "groundtruth-table": ("table", (7,), 8000, 1000, 1000, False),
}


def _loader(name: str) -> Callable[[], Dataset]:
    def load() -> Dataset:
        return _copy(_CACHED[name]())

    load.__name__ = name.replace("-", "_")
    load.__doc__ = f"The built-in data set {name!r}: {DESCRIPTIONS[name]}."
    return load


# name -> loader returning a fresh Dataset (its arrays are the caller's own)
BUILTIN: dict[str, Callable[[], Dataset]] = {name: _loader(name) for name in _CACHED}


def builtin_summary(name: str) -> Dataset:
    """The cached built-in `name` without copying its arrays: for reading metadata only."""
    return _CACHED[name]()
