"""Sequence data: real time series discretised into tokens, text files as characters."""

from __future__ import annotations

import functools
import os
import types
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ptheta.data.spec import Dataset, DataSpec, Split
from ptheta.errors import DataError, unknown_name

# Time series are split by time: the first 70 % train, the next 15 % validation, the rest test.
SERIES_FRACTIONS = (0.70, 0.15)
# Text files are split by position: the first 80 % train, the next 10 % validation, the rest.
TEXT_FRACTIONS = (0.80, 0.10)
TEXT_SEQ_LEN = 64
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class SeriesConfig:
    """How a built-in series becomes tokens: ``n_bins`` quantile bins (at most; tied values
    can merge bins), windows of ``seq_len`` steps, a stride of ``stride`` steps between
    training windows (validation and test windows do not overlap)."""

    seq_len: int
    stride: int
    n_bins: int
    description: str


def _sunspots() -> tuple[np.ndarray, np.ndarray]:
    from statsmodels.datasets import sunspots

    frame = sunspots.load_pandas().data
    return frame["SUNACTIVITY"].to_numpy(float), frame["YEAR"].to_numpy(float)


def _co2() -> tuple[np.ndarray, np.ndarray]:
    from statsmodels.datasets import co2

    weekly = co2.load_pandas().data["co2"]
    # Monthly means (months without a reading interpolated), then month-on-month changes: the
    # level trends far above the training range, so bins fitted on the first 70 % would put
    # every later value in the top bin; the changes are stationary and strongly seasonal.
    monthly = weekly.resample("MS").mean().interpolate()
    times = monthly.index.year + (monthly.index.month - 1) / 12
    return np.diff(monthly.to_numpy(float)), np.asarray(times[1:], dtype=float)


def _nile() -> tuple[np.ndarray, np.ndarray]:
    from statsmodels.datasets import nile

    frame = nile.load_pandas().data
    return frame["volume"].to_numpy(float), frame["year"].to_numpy(float)


# The series are short, so T and the stride are chosen for each to leave at least three
# non-overlapping validation and test windows (sizes: train / val / test windows), and the
# number of bins K below the usual 32 so that each bin holds about 10 or more training
# values: with 32 bins on sunspots' 216 training years even a first-order Markov chain
# scores worse on held-out years than the independent model (series_dataset(name,
# n_bins=32) still gives 32).
SERIES: dict[str, SeriesConfig] = {
    "sunspots": SeriesConfig(
        15,
        1,
        16,
        "yearly sunspot numbers 1700-2008 (statsmodels), 16 quantile bins, windows of 15 "
        "years; 202 / 3 / 3 windows",
    ),
    "co2": SeriesConfig(
        24,
        1,
        16,
        "monthly change of atmospheric CO2 at Mauna Loa 1958-2001 (statsmodels, ppm), 16 "
        "quantile bins, windows of 24 months; 344 / 3 / 3 windows",
    ),
    "nile": SeriesConfig(
        5,
        1,
        8,
        "yearly Nile flow at Aswan 1871-1970 (statsmodels, 1e8 m^3), 8 quantile bins, "
        "windows of 5 years; 66 / 3 / 3 windows",
    ),
}
_SOURCES: dict[str, Callable[[], tuple[np.ndarray, np.ndarray]]] = {
    "sunspots": _sunspots,
    "co2": _co2,
    "nile": _nile,
}
DESCRIPTIONS: dict[str, str] = {name: c.description for name, c in SERIES.items()}


# ---------------------------------------------------------------------------------------
# Discretisation


def fit_bins(values: np.ndarray, n_bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Equal-frequency (quantile) bins of ``values``.

    Arguments:
        values: (N,) the training values.
        n_bins: the number of bins asked for; tied values can merge bins, so there may be
            fewer, never an empty one (on ``values``).

    Returns:
        ``edges`` (B − 1,) increasing, bin b holding [edges[b−1], edges[b]) (the outer bins
        are open), and ``centres`` (B,): the mean training value of each bin, which lies in
        its bin, so ``encode(centres) == arange(B)``.

    Example:
        >>> edges, centres = fit_bins(np.arange(10.0), 2)
        >>> edges.tolist(), centres.tolist()
        ([4.5], [2.0, 7.0])
    """
    s = np.sort(np.asarray(values, dtype=np.float64))
    if s.size < 2 or n_bins < 2:
        raise DataError(f"binning needs at least 2 values and 2 bins, got {s.size} and {n_bins}")
    cuts = np.round(np.arange(1, n_bins) * s.size / n_bins).astype(int)
    cuts = cuts[(cuts > 0) & (cuts < s.size)]
    # cut between neighbours, so no training value sits on an edge unless it is tied there
    candidates = np.unique((s[cuts - 1] + s[cuts]) / 2)
    edges: list[float] = []
    for e in candidates:  # keep an edge only if the bin it closes holds a training value
        lo = edges[-1] if edges else -np.inf
        if np.any((s >= lo) & (s < e)):
            edges.append(float(e))
    edges_arr = np.asarray(edges)
    tokens = encode_values(s, edges_arr)
    centres = np.bincount(tokens, weights=s) / np.bincount(tokens)
    return edges_arr, centres


def encode_values(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Bin index of every value (same shape), with the bins of :func:`fit_bins`."""
    return np.searchsorted(edges, values, side="right").astype(np.int64)


def _windows(tokens: np.ndarray, seq_len: int, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """Start indices (W,) and windows (W, seq_len) of ``tokens``, none past its end."""
    starts = np.arange(0, len(tokens) - seq_len + 1, stride, dtype=np.int64)
    return starts, tokens[starts[:, None] + np.arange(seq_len)]


def _frozen(a: np.ndarray) -> np.ndarray:
    # extra is shared by every copy of a cached built-in: hand it out read-only
    a = np.array(a)
    a.setflags(write=False)
    return a


def series_dataset(
    name: str,
    *,
    n_bins: int | None = None,
    seq_len: int | None = None,
    stride: int | None = None,
) -> Dataset:
    """A built-in time series as a categorical sequence data set, with own settings.

    The series is split by time (first 70 % train, next 15 % validation, last 15 % test),
    binned into quantile bins fitted on the training part alone, and cut into windows inside
    each part (no window crosses a boundary): training windows every ``stride`` steps,
    validation and test windows without overlap.

    Arguments:
        name: ``sunspots``, ``co2`` or ``nile`` (see :data:`SERIES`).
        n_bins, seq_len, stride: override the series' defaults in :data:`SERIES`.

    Returns:
        the `Dataset` (kind categorical(B), event shape (seq_len,)); ``extra`` holds
        ``bin_edges`` and ``bin_centres`` (for :func:`decode`), the raw ``series`` and its
        ``times``, the ``tokens`` of the whole series, ``bounds`` (the index where val and
        test start) and ``window_starts`` per split (indices into the series).

    Example:
        >>> data = series_dataset("nile", n_bins=4, seq_len=10)
        >>> data.kind, data.n_categories, data.event_shape, len(data.val)
        ('categorical', 4, (10,), 1)
    """
    if name not in SERIES:
        raise unknown_name("time series", name, SERIES)
    cfg = SERIES[name]
    n_bins = cfg.n_bins if n_bins is None else n_bins
    seq_len = cfg.seq_len if seq_len is None else seq_len
    stride = cfg.stride if stride is None else stride
    for key, value in {"n_bins": n_bins, "seq_len": seq_len, "stride": stride}.items():
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise DataError(f"{key} must be a positive whole number, got {value!r}")
    values, times = _SOURCES[name]()
    n = len(values)
    a = int(SERIES_FRACTIONS[0] * n)
    b = int(sum(SERIES_FRACTIONS) * n)
    shortest = min(a, b - a, n - b)
    if seq_len > shortest:
        raise DataError(
            f"seq_len={seq_len} is longer than the shortest split of {name!r} ({shortest} of "
            f"{n} steps); use seq_len <= {shortest}"
        )
    edges, centres = fit_bins(values[:a], n_bins)  # on the training part only
    tokens = encode_values(values, edges)
    spec = DataSpec("categorical", (seq_len,), max(len(centres), 2))
    splits, starts = {}, {}
    for split, lo, hi, step in (
        ("train", 0, a, stride),
        ("val", a, b, seq_len),
        ("test", b, n, seq_len),
    ):
        s, x = _windows(tokens[lo:hi], seq_len, step)
        splits[split], starts[split] = Split(x, None, spec), _frozen(s + lo)
    return Dataset(
        name=name,
        spec=spec,
        description=cfg.description,
        extra={
            "source": f"statsmodels.datasets.{name}",
            "bin_edges": _frozen(edges),
            "bin_centres": _frozen(centres),
            "series": _frozen(values),
            "times": _frozen(times),
            "tokens": _frozen(tokens),
            "bounds": (a, b),
            "window_starts": types.MappingProxyType(starts),
            "seq_len": seq_len,
            "stride": stride,
        },
        **splits,
    )


@functools.cache
def builtin_series(name: str) -> Dataset:
    """The built-in series ``name`` with its default settings (cached: do not modify)."""
    return series_dataset(name)


# ---------------------------------------------------------------------------------------
# Text


def text_dataset(text: str, *, seq_len: int = TEXT_SEQ_LEN, name: str = "text") -> Dataset:
    """Characters of ``text`` as a categorical sequence data set.

    The vocabulary is the sorted set of characters of the whole text (token i is
    ``vocab[i]``). The text is cut by position into train (first 80 %), validation (next
    10 %) and test (last 10 %), and each part into non-overlapping windows of ``seq_len``
    characters (a part's last, incomplete window is dropped).

    Arguments:
        text: the characters.
        seq_len: characters per example (T).
        name: the data set's name.

    Returns:
        the `Dataset` (kind categorical(len(vocab)), event shape (seq_len,)); ``extra`` holds
        ``vocab`` (a list of characters), ``bounds`` and ``seq_len``.

    Example:
        >>> data = text_dataset("abracadabra " * 20, seq_len=8)
        >>> data.extra["vocab"], data.event_shape, decode(data, data.train.x[:1])
        ([' ', 'a', 'b', 'c', 'd', 'r'], (8,), ['abracada'])
    """
    if isinstance(seq_len, bool) or not isinstance(seq_len, (int, np.integer)) or seq_len < 1:
        raise DataError(f"seq_len must be a positive whole number, got {seq_len!r}")
    if not text:
        raise DataError(f"{name} is empty: a text data set needs characters")
    vocab = sorted(set(text))
    if len(vocab) < 2:
        raise DataError(
            f"{name} uses a single character ({vocab[0]!r}); a text data set needs at least 2"
        )
    n = len(text)
    a = int(TEXT_FRACTIONS[0] * n)
    b = int(sum(TEXT_FRACTIONS) * n)
    shortest = min(b - a, n - b)
    if seq_len > shortest:
        fix = f"or seq_len <= {shortest}" if shortest else "(at least 10 characters)"
        raise DataError(
            f"{name} is too short for windows of seq_len={seq_len}: its {n} characters leave "
            f"{shortest} for the validation or test part (10 % each), which must hold a whole "
            f"window; use a longer text {fix}"
        )
    lookup = {c: i for i, c in enumerate(vocab)}
    tokens = np.fromiter((lookup[c] for c in text), dtype=np.int64, count=n)
    spec = DataSpec("categorical", (seq_len,), len(vocab))
    splits = {
        split: Split(_windows(tokens[lo:hi], seq_len, seq_len)[1], None, spec)
        for split, lo, hi in (("train", 0, a), ("val", a, b), ("test", b, n))
    }
    return Dataset(
        name=name,
        spec=spec,
        description=f"characters of {name}: vocabulary of {len(vocab)}, windows of {seq_len}",
        extra={"format": "text", "vocab": vocab, "bounds": (a, b), "seq_len": seq_len},
        **splits,
    )


def load_text(path: str | os.PathLike, *, seq_len: int | None = None) -> Dataset:
    """Load a UTF-8 text file as a character data set (see :func:`text_dataset`).

    Arguments:
        path: the .txt file.
        seq_len: characters per example; default 64.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise DataError(f"{path} is not UTF-8 text ({e}); save it as UTF-8") from None
    except OSError as e:
        raise DataError(f"could not read {path}: {e}") from None
    data = text_dataset(text, seq_len=TEXT_SEQ_LEN if seq_len is None else seq_len, name=path.name)
    data.extra["path"] = str(path)
    return data


# ---------------------------------------------------------------------------------------
# Decoding


def decode(dataset: Dataset, tokens: Any) -> list[str] | np.ndarray:
    """Map tokens of a sequence data set back to what they stand for.

    Arguments:
        dataset: a data set from this module (a built-in series or a text file).
        tokens: integer tokens, (T,) or (N, T) (e.g. ``model.sample(n)``).

    Returns:
        text: one string per sequence (a list of N strings; one for a (T,) input);
        a series: the bin centres, an array of the shape of ``tokens``.

    Example:
        >>> data = series_dataset("nile")
        >>> decode(data, data.test.x[:1]).shape
        (1, 5)
    """
    extra = dataset.extra
    arr = np.asarray(tokens)
    whole = arr.dtype.kind in "iub" or (arr.dtype.kind == "f" and np.all(arr == np.round(arr)))
    if not whole:
        raise DataError(f"tokens must be whole numbers, got an array of dtype {arr.dtype}")
    arr = arr.astype(np.int64)
    table = extra.get("vocab", extra.get("bin_centres"))
    if table is None:
        raise DataError(
            f"{dataset.name!r} holds no vocabulary or bins to decode with; decode applies to "
            "built-in time series and text files"
        )
    if arr.size and (arr.min() < 0 or arr.max() >= len(table)):
        raise DataError(
            f"tokens must lie in 0..{len(table) - 1} for {dataset.name!r}, got values in "
            f"[{arr.min()}, {arr.max()}]"
        )
    if "vocab" in extra:
        rows = arr.reshape(1, -1) if arr.ndim <= 1 else arr.reshape(len(arr), -1)
        return ["".join(table[t] for t in row) for row in rows]
    return np.asarray(table)[arr]
