"""Sequence data: built-in time series (as tokens or real values) and decoding tokens back.

Text files as characters, words or lines live in :mod:`ptheta.data.text` (re-exported
here); variable-length sequences in :mod:`ptheta.data.ragged`.
"""

from __future__ import annotations

import functools
import itertools
import types
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ptheta.data.ragged import Sequences, as_sequences, is_ragged
from ptheta.data.spec import Dataset, DataSpec, Split, infer_spec
from ptheta.data.text import TEXT_FRACTIONS, TEXT_SEQ_LEN, load_text, text_dataset
from ptheta.errors import DataError, unknown_name

__all__ = [
    "REAL_SERIES",
    "SERIES",
    "TEXT_FRACTIONS",
    "TEXT_SEQ_LEN",
    "decode",
    "fit_bins",
    "load_text",
    "real_series_dataset",
    "series_dataset",
    "set_sequence_kind",
    "text_dataset",
]

# Time series are split by time: the first 70 % train, the next 15 % validation, the rest test.
SERIES_FRACTIONS = (0.70, 0.15)
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


# The columns of statsmodels' macrodata taken as the three coordinates of a step.
MACRO_COLUMNS = ("realgdp", "realcons", "realinv")


def _macrodata() -> tuple[np.ndarray, np.ndarray]:
    from statsmodels.datasets import macrodata

    frame = macrodata.load_pandas().data
    levels = frame[list(MACRO_COLUMNS)].to_numpy(float)  # (203, 3), 1959Q1-2009Q3
    # Growth in percent per quarter: the levels trend far above the training range, their
    # log-differences are stationary (as for co2 above).
    times = (frame["year"] + (frame["quarter"] - 1) / 4).to_numpy(float)
    return 100 * np.diff(np.log(levels), axis=0), times[1:]


# name -> the series (T,) or (T, D) and its times (T,)
_SOURCES: dict[str, Callable[[], tuple[np.ndarray, np.ndarray]]] = {
    "sunspots": _sunspots,
    "co2": _co2,
    "nile": _nile,
    "macrodata": _macrodata,
}


@dataclass(frozen=True)
class RealSeriesConfig:
    """A built-in series of real values: the ``source`` series (a key of ``_SOURCES``) cut
    into windows of ``seq_len`` steps, ``stride`` steps apart in training."""

    source: str
    seq_len: int
    stride: int
    description: str


# The real-valued versions of SERIES use the same windows and time split as the binned
# ones, so the NLLs of one series' two versions are of the same windows (in different units:
# nats of a density of the values against nats of a probability of their bins).
REAL_SERIES: dict[str, RealSeriesConfig] = {
    "sunspots-real": RealSeriesConfig(
        "sunspots",
        SERIES["sunspots"].seq_len,
        SERIES["sunspots"].stride,
        "yearly sunspot numbers 1700-2008 (statsmodels) as real values, windows of 15 years "
        "(those of sunspots); 202 / 3 / 3 windows",
    ),
    "co2-real": RealSeriesConfig(
        "co2",
        SERIES["co2"].seq_len,
        SERIES["co2"].stride,
        "monthly change of atmospheric CO2 at Mauna Loa 1958-2001 (statsmodels, ppm) as real "
        "values, windows of 24 months (those of co2); 344 / 3 / 3 windows",
    ),
    "nile-real": RealSeriesConfig(
        "nile",
        SERIES["nile"].seq_len,
        SERIES["nile"].stride,
        "yearly Nile flow at Aswan 1871-1970 (statsmodels, 1e8 m^3) as real values, windows "
        "of 5 years (those of nile); 66 / 3 / 3 windows",
    ),
    # Windows of 10 quarters fill the 30 validation and 31 test quarters (the test windows
    # reach 2009Q2, through the 2008-09 recession).
    "macro-growth": RealSeriesConfig(
        "macrodata",
        10,
        1,
        "quarterly growth of US real GDP, consumption and investment 1959-2009 (statsmodels "
        "macrodata, % per quarter: 100 log-differences), steps of 3 values, windows of 10 "
        "quarters; 132 / 3 / 3 windows",
    ),
}
DESCRIPTIONS: dict[str, str] = {
    **{name: c.description for name, c in SERIES.items()},
    **{name: c.description for name, c in REAL_SERIES.items()},
}


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


def _check_windows(**settings: Any) -> None:
    for key, value in settings.items():
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise DataError(f"{key} must be a positive whole number, got {value!r}")


def _time_split(name: str, n: int, seq_len: int) -> tuple[int, int]:
    """Where the validation and test parts of a series of ``n`` steps start."""
    a = int(SERIES_FRACTIONS[0] * n)
    b = int(sum(SERIES_FRACTIONS) * n)
    shortest = min(a, b - a, n - b)
    if seq_len > shortest:
        raise DataError(
            f"seq_len={seq_len} is longer than the shortest split of {name!r} ({shortest} of "
            f"{n} steps); use seq_len <= {shortest}"
        )
    return a, b


def _split_windows(
    series: np.ndarray, bounds: tuple[int, int], seq_len: int, stride: int, spec: DataSpec
) -> tuple[dict[str, Split], types.MappingProxyType]:
    """The splits of windows of ``series`` (no window crosses a boundary: training windows
    every ``stride`` steps, validation and test windows without overlap) and their starts."""
    a, b = bounds
    n = len(series)
    splits, starts = {}, {}
    for split, lo, hi, step in (
        ("train", 0, a, stride),
        ("val", a, b, seq_len),
        ("test", b, n, seq_len),
    ):
        s, x = _windows(series[lo:hi], seq_len, step)
        splits[split], starts[split] = Split(x, None, spec), _frozen(s + lo)
    return splits, types.MappingProxyType(starts)


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
    _check_windows(n_bins=n_bins, seq_len=seq_len, stride=stride)
    values, times = _SOURCES[name]()
    a, b = _time_split(name, len(values), seq_len)
    edges, centres = fit_bins(values[:a], n_bins)  # on the training part only
    tokens = encode_values(values, edges)
    spec = DataSpec("categorical", (seq_len,), max(len(centres), 2))
    splits, starts = _split_windows(tokens, (a, b), seq_len, stride, spec)
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
            "window_starts": starts,
            "seq_len": seq_len,
            "stride": stride,
        },
        **splits,
    )


def real_series_dataset(
    name: str, *, seq_len: int | None = None, stride: int | None = None
) -> Dataset:
    """A built-in time series as real values, in windows, with own settings.

    The windows and the time split are those of :func:`series_dataset` (first 70 % train,
    next 15 % validation, last 15 % test; training windows every ``stride`` steps,
    validation and test windows without overlap); the values are the series itself, not
    its bins.

    Arguments:
        name: ``sunspots-real``, ``co2-real``, ``nile-real`` or ``macro-growth`` (see
            :data:`REAL_SERIES`).
        seq_len, stride: override the series' defaults in :data:`REAL_SERIES`.

    Returns:
        the continuous `Dataset`, event shape (seq_len,) for a series of numbers, (seq_len,
        D) for one of D-vectors; ``extra`` holds the raw ``series`` and its ``times``,
        ``bounds``, ``window_starts`` per split (indices into the series), and ``columns``
        (the names of a step's values) for a multivariate series.

    Example:
        >>> data = real_series_dataset("macro-growth")
        >>> data.kind, data.event_shape, (len(data.train), len(data.val), len(data.test))
        ('continuous', (10, 3), (132, 3, 3))
    """
    if name not in REAL_SERIES:
        raise unknown_name("real-valued time series", name, REAL_SERIES)
    cfg = REAL_SERIES[name]
    seq_len = cfg.seq_len if seq_len is None else seq_len
    stride = cfg.stride if stride is None else stride
    _check_windows(seq_len=seq_len, stride=stride)
    values, times = _SOURCES[cfg.source]()
    a, b = _time_split(name, len(values), seq_len)
    spec = DataSpec("continuous", (seq_len, *values.shape[1:]))
    splits, starts = _split_windows(values, (a, b), seq_len, stride, spec)
    extra: dict[str, Any] = {
        "source": f"statsmodels.datasets.{cfg.source}",
        "series": _frozen(values),
        "times": _frozen(times),
        "bounds": (a, b),
        "window_starts": starts,
        "seq_len": seq_len,
        "stride": stride,
    }
    if cfg.source == "macrodata":
        extra["columns"] = MACRO_COLUMNS
    return Dataset(name=name, spec=spec, description=cfg.description, extra=extra, **splits)


@functools.cache
def builtin_series(name: str) -> Dataset:
    """The built-in series ``name`` with its default settings (cached: do not modify)."""
    return real_series_dataset(name) if name in REAL_SERIES else series_dataset(name)


# ---------------------------------------------------------------------------------------
# Decoding


def decode(dataset: Dataset, tokens: Any) -> list[Any] | np.ndarray:
    """Map tokens of a sequence data set back to what they stand for.

    Arguments:
        dataset: a data set of tokens with a table to decode them: a built-in binned series,
            a text file (windows or lines), ``unicode-words``.
        tokens: integer tokens, (T,) or (N, T) (e.g. ``model.sample(n)``), or
            variable-length sequences: a `Sequences` (what ``sample`` returns for
            variable-length data) or a list of sequences.

    Returns:
        text: one string per sequence (a list of N strings; one for a (T,) input), tokens
        joined by ``extra["separator"]`` (nothing for characters, a space for words);
        a series: the bin centres, an array of the shape of ``tokens`` (a list of arrays,
        one per sequence, for variable-length sequences).

    Example:
        >>> data = series_dataset("nile")
        >>> decode(data, data.test.x[:1]).shape
        (1, 5)
        >>> from ptheta.data.text import lines_dataset
        >>> text = lines_dataset("ab\\nba\\naab\\nb", lines="chars")
        >>> decode(text, Sequences.from_list([[0, 1, 1], [1]]))
        ['abb', 'b']
    """
    extra = dataset.extra
    table = extra.get("vocab", extra.get("bin_centres"))
    if table is None:
        raise DataError(
            f"{dataset.name!r} holds no vocabulary or bins to decode with; decode applies to "
            "built-in binned time series, text files and unicode-words"
        )
    ragged = isinstance(tokens, Sequences) or is_ragged(tokens)
    if ragged:
        seqs = as_sequences(tokens, "tokens")
        if seqs.step_shape:
            raise DataError(
                f"tokens must be sequences of single tokens, got steps of shape {seqs.step_shape}"
            )
        arr, offsets = seqs.concatenated()
    else:
        arr = np.asarray(tokens)
    whole = arr.dtype.kind in "iub" or (arr.dtype.kind == "f" and np.all(arr == np.round(arr)))
    if not whole:
        raise DataError(f"tokens must be whole numbers, got an array of dtype {arr.dtype}")
    arr = arr.astype(np.int64)
    if arr.size and (arr.min() < 0 or arr.max() >= len(table)):
        raise DataError(
            f"tokens must lie in 0..{len(table) - 1} for {dataset.name!r}, got values in "
            f"[{arr.min()}, {arr.max()}]"
        )
    if ragged:
        rows = [arr[lo:hi] for lo, hi in itertools.pairwise(offsets)]
    elif "vocab" in extra:
        rows = list(arr.reshape(1, -1) if arr.ndim <= 1 else arr.reshape(len(arr), -1))
    else:
        return np.asarray(table)[arr]
    if "vocab" in extra:
        separator = extra.get("separator", "")
        return [separator.join(table[t] for t in row) for row in rows]
    return [np.asarray(table)[row] for row in rows]


def set_sequence_kind(data: Dataset, kind: str) -> Dataset:
    """The variable-length data set ``data`` read as another kind (``categorical:K``,
    ``continuous``, ...): the same sequences and splits, every step checked against the new
    kind, inferred from the steps of all splits together.

    Example:
        >>> from ptheta.data.text import lines_dataset
        >>> data = lines_dataset("ab\\nba\\naab\\nb", lines="chars")
        >>> set_sequence_kind(data, "categorical:5").spec.describe()
        'categorical(5) sequences of up to 3 steps'
    """
    from ptheta.data.ragged import check_sequences

    parts = [data.split(s).sequences for s in SPLITS]
    steps = np.concatenate([p.concatenated()[0] for p in parts])
    step = infer_spec(steps.reshape(len(steps), -1), kind)
    spec = DataSpec(step.kind, data.spec.event_shape, step.n_categories, variable_length=True)
    splits = {}
    for name, part in zip(SPLITS, parts, strict=True):
        x, lengths = check_sequences(part, spec, allow_nan=True, what=f"the {name} split")
        splits[name] = Split(x, data.split(name).y, spec, lengths)
    return Dataset(
        name=data.name,
        spec=spec,
        description=data.description,
        classes=data.classes,
        extra=dict(data.extra),
        **splits,
    )
