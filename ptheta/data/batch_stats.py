"""Statistics of a data source read a batch at a time, which several families need before
they fit: the first observed value of each variable (the shift of centred moment sums),
the mean and standard deviation, the range, and a seeded sample of rows.

Each reads a :class:`~ptheta.data.stream.Source` (or an array) batch by batch; the sums go
through :func:`~ptheta.data.stream.accumulate`, so under ``torchrun`` every process reads
its share and gets the statistics of the whole data.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ptheta.data import stream
from ptheta.data.stream import Source, accumulate, as_source

__all__ = ["first_observed", "seeded_rows", "streamed_location_scale", "streamed_range"]


def first_observed(data: Source) -> np.ndarray:
    """(D,) the first observed (non-NaN) value of each flattened variable of ``data``; NaN
    where a variable is never observed.

    The shift of centred moment sums Σ(x − s), Σ(x − s)²: a value of the data, so the
    sums lose no precision to a mean far from 0, and a constant variable's sums are
    exactly 0. Read from the start (the first row, then batch by batch while some variable
    has no value yet), so every process under ``torchrun`` finds the same shift.

    Example:
        >>> from ptheta.data.stream import ArraySource
        >>> first_observed(ArraySource(np.array([[np.nan, 2.0], [3.0, 4.0]]))).tolist()
        [3.0, 2.0]
    """
    shift = data.read_range(0, min(1, data.n)).reshape(-1).astype(np.float64)
    if shift.size and not np.isnan(shift).any():
        return shift
    shift = np.full(int(np.prod(data.event_shape)), np.nan) if not shift.size else shift
    for _, batch in data.batches():
        flat = batch.reshape(len(batch), -1).astype(np.float64, copy=False)
        todo = np.flatnonzero(np.isnan(shift))
        seen = ~np.isnan(flat[:, todo])
        found = seen.any(axis=0)
        shift[todo[found]] = flat[seen.argmax(axis=0)[found], todo[found]]
        if not np.isnan(shift).any():
            break
    return shift


def streamed_location_scale(data: Source | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation of the examples over axis 0, as
    :func:`~ptheta.data.spec.location_scale` gives them, from sums over batches (under
    torchrun, over every process's share): a constant entry gets std 1.

    Two passes: the sums of x and |x|, then of ((x − mean) / mean|x|)² — the deviations
    are taken from the first pass's mean, so a large offset (timestamps) loses no precision, and
    scaled, so no square overflows — and of |x − x₀| (x₀ the first example), exactly 0 for
    a constant entry.

    Example:
        >>> import numpy as np
        >>> x = np.array([[1.0, 5.0], [3.0, 5.0]])
        >>> [a.tolist() for a in streamed_location_scale(x)]
        [[2.0, 5.0], [1.0, 1.0]]
    """
    data = as_source(data)
    first = data.read_range(0, 1)[0].astype(np.float64)

    def sums(x: np.ndarray, _: Any) -> dict[str, Any]:
        x = np.asarray(x, dtype=np.float64)
        return {"n": len(x), "sum": x.sum(0), "abs": np.abs(x).sum(0)}

    totals = accumulate(data, sums)
    n = float(totals["n"])
    mean = totals["sum"] / n
    unit = totals["abs"] / n
    unit = np.where(unit > 0, unit, 1.0)

    def spread(x: np.ndarray, _: Any) -> dict[str, Any]:
        x = np.asarray(x, dtype=np.float64)
        return {"square": (((x - mean) / unit) ** 2).sum(0), "moved": np.abs(x - first).sum(0)}

    second = accumulate(data, spread)
    constant = second["moved"] == 0
    std = np.sqrt(second["square"] / n) * unit
    return np.where(constant, first, mean), np.where(constant | (std <= 0), 1.0, std)


def streamed_range(data: Source | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The smallest and the largest value of each entry over the examples (axis 0), float64
    arrays of the event shape, from one pass over the batches of ``data``.

    Under ``torchrun`` each process reads its share of the batches (every W-th, as
    :func:`~ptheta.data.stream.accumulate` does) and the processes exchange their extremes
    through the sum that :func:`~ptheta.data.stream.all_reduce_sum` computes: each writes
    its own row of a (W, 2, *event_shape) table of zeros, so the sum is every process's
    row, and the minimum and maximum are taken over the rows (a process without a batch
    writes +inf and −inf, which the others' values override). Exact: no rounding.

    Example:
        >>> import numpy as np
        >>> low, high = streamed_range(np.array([[1.0, -2.0], [3.0, 5.0], [0.5, 4.0]]))
        >>> low.tolist(), high.tolist()
        ([0.5, -2.0], [3.0, 5.0])
    """
    source = as_source(data)
    rank, world = stream.process_share()
    low = np.full(source.event_shape, np.inf)
    high = np.full(source.event_shape, -np.inf)
    for _, batch in source.batches(rank=rank, world_size=world):
        batch = np.asarray(batch, dtype=np.float64)
        low, high = np.minimum(low, batch.min(0)), np.maximum(high, batch.max(0))
    if world > 1:
        table = np.zeros((world, 2, *source.event_shape))
        table[rank] = low, high
        table = stream.all_reduce_sum({"range": table})["range"]
        low, high = table[:, 0].min(0), table[:, 1].max(0)
    return low, high


def seeded_rows(data: Source | np.ndarray, max_rows: int, seed: int) -> np.ndarray:
    """At most ``max_rows`` examples of ``data`` as a float64 array: all of them, in order,
    where there are no more; else the rows that ``np.random.default_rng(seed).choice(N,
    max_rows, replace=False)`` draws, in the order drawn (so an array and a source of the
    same rows give the same sample). Read a batch at a time (``batch_rows`` rows, in
    increasing row order): never more than a batch at once.

    Example:
        >>> import numpy as np
        >>> x = np.arange(10.0)[:, None]
        >>> seeded_rows(x, 20, 0).ravel().tolist() == x.ravel().tolist()
        True
        >>> drawn = np.random.default_rng(3).choice(10, 4, replace=False)
        >>> seeded_rows(x, 4, 3).ravel().tolist() == drawn.tolist()
        True
    """
    source = as_source(data)
    if len(source) <= max_rows:
        parts = [rows for _, rows in source.batches()]
        return np.concatenate(parts).astype(np.float64, copy=False)
    drawn = np.random.default_rng(seed).choice(len(source), max_rows, replace=False)
    order = np.argsort(drawn)
    step = source.batch_rows()
    parts = [source.read(drawn[order[i : i + step]]) for i in range(0, max_rows, step)]
    rows = np.empty((max_rows, *source.event_shape))
    rows[order] = np.concatenate(parts)
    return rows
