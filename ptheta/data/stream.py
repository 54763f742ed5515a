"""Data read in batches, never whole: the `Source` every streamed fit reads.

A `Source` is N examples of one event shape that are read by index, a batch at a time:
an array in memory (`ArraySource`), a memory-mapped ``.npy`` file (`NpySource`), a part of
another source (`Subset`, how the splits of a streamed data set are defined: by index,
nothing copied), and the readers of :mod:`ptheta.data.sources` (folders of shards, image
folders read lazily, tables read in batches). A source behaves like a read-only array
where that is cheap (``len``, ``shape``, ``dtype``, ``source[i]``, ``source[a:b]``,
``source[index]``); ``np.asarray(source)`` reads the whole of it, which is what a family
that cannot stream does.

Families that stream (``capabilities().streams``) fit from statistics summed over batches
with `accumulate`: under ``torchrun`` each process reads every W-th batch and the sums are
all-reduced, so W processes give the model of one (counts exactly, sums of floats to
rounding). A batch is a contiguous range of rows, about `BATCH_BYTES` of float64 values:
the same rows whatever the storage, so an in-memory fit and a streamed fit of the same
data sum the same numbers in the same order.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ptheta.data.spec import DataSpec, check_values
from ptheta.errors import DataError

# Rows per batch are chosen so that a batch of float64 values takes about this many bytes
# (the environment variable PTHETA_BATCH_BYTES overrides it: less memory, more batches).
BATCH_BYTES = 32 * 2**20


def batch_bytes() -> int:
    """Bytes of float64 values per batch: ``$PTHETA_BATCH_BYTES``, else `BATCH_BYTES`."""
    text = os.environ.get("PTHETA_BATCH_BYTES")
    if not text:
        return BATCH_BYTES
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise DataError(f"PTHETA_BATCH_BYTES must be a positive number of bytes, got {text!r}")
    return value


class BlockCache:
    """Decoded blocks of a source (a Parquet row group, a compressed shard, a range of CSV
    rows) kept up to a budget of bytes, the least recently used dropped first: shuffled
    batches then decode each block once while the data fit the budget (8 batches' worth,
    256 MB by default), and one block per batch at worst.

    Example:
        >>> import numpy as np
        >>> cache, calls = BlockCache(budget=100), []
        >>> load = lambda k: calls.append(k) or np.zeros(5)  # 40 bytes each
        >>> for key in [0, 1, 0, 2, 0, 1]:
        ...     _ = cache.get(key, load)
        >>> calls  # block 1 was the least recently used when block 2 came
        [0, 1, 2, 1]
    """

    def __init__(self, budget: int | None = None) -> None:
        from collections import OrderedDict

        self.budget = 8 * batch_bytes() if budget is None else int(budget)
        self.blocks: OrderedDict[Any, np.ndarray] = OrderedDict()
        self.size = 0

    def get(self, key: Any, load: Callable[[Any], np.ndarray]) -> np.ndarray:
        """Block ``key``, decoded by ``load(key)`` unless it is kept."""
        if key in self.blocks:
            self.blocks.move_to_end(key)
            return self.blocks[key]
        block = load(key)
        self.blocks[key] = block
        self.size += block.nbytes
        while self.size > self.budget and len(self.blocks) > 1:
            _, dropped = self.blocks.popitem(last=False)
            self.size -= dropped.nbytes
        return block


class Source:
    """N examples of one event shape, read by index a batch at a time.

    Subclasses set ``n``, ``event_shape`` and ``dtype`` and implement `_read(index)`
    (rows ``index``, a sorted or unsorted int64 array, as an array (len(index),
    *event_shape)); `_read_range` may read contiguous rows faster. ``y`` holds the labels
    in memory (one per example: small) or None; ``spec`` the data's spec once known.
    """

    n: int
    event_shape: tuple[int, ...]
    dtype: np.dtype
    y: np.ndarray | None = None
    spec: DataSpec | None = None
    # names of the label codes in ``y`` (a data set's classes), or None
    classes: list[str] | None = None

    # ----------------------------------------------------------------- array-like
    def __len__(self) -> int:
        return self.n

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.n, *self.event_shape)

    @property
    def ndim(self) -> int:
        return 1 + len(self.event_shape)

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = self.read_range(0, self.n)
        return out if dtype is None else out.astype(dtype, copy=False)

    def __getitem__(self, key: Any) -> np.ndarray:
        if isinstance(key, tuple):  # rows first, then the rest on what was read
            if not key or key[0] is Ellipsis:
                return np.asarray(self)[key]
            rows = self[key[0]]
            if isinstance(key[0], (int, np.integer)):
                return rows[key[1:]]
            return rows[(slice(None), *key[1:])]
        if isinstance(key, (int, np.integer)):
            i = int(key) + (self.n if key < 0 else 0)
            return self.read(np.array([i]))[0]
        if isinstance(key, slice):
            start, stop, step = key.indices(self.n)
            if step == 1:
                return self.read_range(start, max(start, stop))
            return self.read(np.arange(start, stop, step))
        index = np.asarray(key)
        if index.dtype == bool:
            if index.shape != (self.n,):
                raise IndexError(f"a boolean index of shape {index.shape} for {self.n} examples")
            index = np.flatnonzero(index)
        return self.read(index)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.describe()})"

    def describe(self) -> str:
        shape = "×".join(map(str, self.event_shape)) or "scalar"
        return f"{self.n} examples of shape {shape}, {self.dtype}"

    # ----------------------------------------------------------------- reading
    def read(self, index: Any) -> np.ndarray:
        """Rows ``index`` (ints in [−N, N)) as an array (len(index), *event_shape)."""
        index = np.asarray(index, dtype=np.int64).reshape(-1)
        if index.size and (index.min() < -self.n or index.max() >= self.n):
            raise IndexError(f"index out of range for {self.n} examples")
        index = np.where(index < 0, index + self.n, index)
        return self._read(index)

    def read_range(self, start: int, stop: int) -> np.ndarray:
        """Rows start..stop−1 (0 <= start <= stop <= N)."""
        if not 0 <= start <= stop <= self.n:
            raise IndexError(f"rows {start}..{stop} out of range for {self.n} examples")
        return self._read_range(start, stop)

    def _read(self, index: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _read_range(self, start: int, stop: int) -> np.ndarray:
        return self._read(np.arange(start, stop, dtype=np.int64))

    def subset(self, index: Any) -> Subset:
        """The examples ``index`` of this source, as a source (nothing is read)."""
        return Subset(self, index)

    def identity(self) -> str:
        """A short text that changes when the data change (for fingerprints)."""
        h = hashlib.sha256()
        h.update(np.ascontiguousarray(self.read_range(0, min(self.n, 64))).tobytes())
        h.update(repr(self.shape).encode())
        return h.hexdigest()[:16]

    # ----------------------------------------------------------------- batches
    def batch_rows(self) -> int:
        """Rows per batch: about `batch_bytes` of float64 values, at least 1."""
        per_row = 8 * max(1, int(np.prod(self.event_shape, dtype=np.int64)))
        return max(1, batch_bytes() // per_row)

    def batches(
        self, batch_size: int | None = None, *, rank: int = 0, world_size: int = 1
    ) -> Iterator[tuple[int, np.ndarray]]:
        """(start, rows start..start+B−1) for every batch b with b % world_size == rank,
        in order; B = ``batch_size`` or `batch_rows`."""
        size = batch_size or self.batch_rows()
        for b, start in enumerate(range(0, self.n, size)):
            if b % world_size == rank:
                yield start, self.read_range(start, min(start + size, self.n))


def flat_rows(batch: np.ndarray) -> np.ndarray:
    """``batch`` (n, *event) as (n, D), D = the product of the event shape: also when n = 0
    (a process's empty share of a batch), where ``reshape(n, -1)`` cannot infer D."""
    return batch.reshape(len(batch), int(np.prod(batch.shape[1:], dtype=np.int64)))


# A file's content fingerprint reads at most this many blocks of this many bytes (a file
# no larger is hashed whole): a copy, a move or a `touch` keeps it, an edit changes it.
_DIGEST_BLOCKS, _DIGEST_BLOCK = 16, 1 << 16


def file_digest(path: str | os.PathLike) -> str:
    """A short hash of a file's size and content: whole for a file up to 1 MiB, else 16
    blocks of 64 KiB spread evenly from its first byte to its last (a large file's edit
    that keeps its size and misses every block goes unnoticed: the cost of not reading
    gigabytes to fingerprint them).

    Example:
        >>> import tempfile, os
        >>> path = os.path.join(tempfile.mkdtemp(), "a.bin")
        >>> _ = open(path, "wb").write(b"abc")
        >>> before = file_digest(path); os.utime(path, (0, 0))
        >>> file_digest(path) == before
        True
    """
    size = os.path.getsize(path)
    h = hashlib.sha256(str(size).encode())
    with open(path, "rb") as f:
        if size <= _DIGEST_BLOCKS * _DIGEST_BLOCK:
            h.update(f.read())
        else:
            last = size - _DIGEST_BLOCK
            for i in range(_DIGEST_BLOCKS):
                f.seek(last * i // (_DIGEST_BLOCKS - 1))
                h.update(f.read(_DIGEST_BLOCK))
    return h.hexdigest()[:16]


class ArraySource(Source):
    """An array in memory as a source (what an in-memory fit of a streaming family reads).

    Example:
        >>> import numpy as np
        >>> s = ArraySource(np.arange(12).reshape(6, 2))
        >>> s.shape, s[1:3].tolist(), [start for start, _ in s.batches(4)]
        ((6, 2), [[2, 3], [4, 5]], [0, 4])
    """

    def __init__(self, x: Any, y: Any = None, spec: DataSpec | None = None) -> None:
        self.x = np.asarray(x)
        if self.x.ndim < 1:
            raise DataError(f"a source needs examples along the first axis, got {self.x.shape}")
        self.n, self.event_shape, self.dtype = len(self.x), self.x.shape[1:], self.x.dtype
        self.y = None if y is None else np.asarray(y)
        self.spec = spec

    def _read(self, index: np.ndarray) -> np.ndarray:
        return self.x[index]

    def _read_range(self, start: int, stop: int) -> np.ndarray:
        return self.x[start:stop]

    def identity(self) -> str:
        """A hash of every value (in memory: cheap) and the shape."""
        h = hashlib.sha256(repr((self.x.shape, self.x.dtype.str)).encode())
        h.update(np.ascontiguousarray(self.x).tobytes())
        return h.hexdigest()[:16]


class NpySource(Source):
    """A ``.npy`` file read a batch of rows at a time: only the rows asked for are read.

    Rows are read with ordinary file reads into fresh arrays (the file's pages do not stay
    resident in this process, so memory stays flat however large the file); a file in
    Fortran order is read through numpy's memory map instead.

    Example:
        >>> import numpy as np, tempfile, os
        >>> path = os.path.join(tempfile.mkdtemp(), "x.npy")
        >>> np.save(path, np.eye(3))
        >>> NpySource(path)[2].tolist()
        [0.0, 0.0, 1.0]
    """

    def __init__(self, path: str | os.PathLike, y: Any = None) -> None:
        from ptheta.data.files import read_npy_header

        self.path = Path(path)
        read_npy_header(self.path)  # a clear error for a truncated or pickled file
        try:
            self.x = np.load(self.path, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as e:
            raise DataError(f"{self.path} could not be memory-mapped ({e})") from None
        if self.x.ndim < 2:
            raise DataError(
                f"{self.path} holds an array of shape {self.x.shape}; examples need shape "
                "(N, ...) with one example per row"
            )
        self.n, self.event_shape, self.dtype = len(self.x), self.x.shape[1:], self.x.dtype
        self.y = None if y is None else np.asarray(y)

    def _read(self, index: np.ndarray) -> np.ndarray:
        if not self.x.flags.c_contiguous or self.x.dtype.hasobject:
            return np.asarray(self.x[index])
        out = np.empty((len(index), *self.event_shape), self.dtype)
        if not len(index):
            return out
        # runs of consecutive rows, each one read
        breaks = np.flatnonzero(np.diff(index) != 1) + 1
        starts = np.concatenate([[0], breaks])
        stops = np.concatenate([breaks, [len(index)]])
        with open(self.path, "rb", buffering=0) as f:
            for a, b in zip(starts.tolist(), stops.tolist(), strict=True):
                self._read_into(f, int(index[a]), out[a:b])
        return out

    def _read_range(self, start: int, stop: int) -> np.ndarray:
        if not self.x.flags.c_contiguous:
            return np.array(self.x[start:stop])
        out = np.empty((stop - start, *self.event_shape), self.dtype)
        if stop > start:
            with open(self.path, "rb", buffering=0) as f:
                self._read_into(f, start, out)
        return out

    def _read_into(self, f: Any, start: int, out: np.ndarray) -> None:
        """Rows start.. of the file into ``out`` (C-contiguous, len(out) rows)."""
        row_bytes = out[0].nbytes if len(out) else 0
        f.seek(self.x.offset + start * row_bytes)
        view = memoryview(out.reshape(-1).view(np.uint8))
        done = 0
        while done < len(view):
            got = f.readinto(view[done:])
            if not got:
                raise DataError(f"{self.path} ended early: the file is truncated or was changed")
            done += got

    def identity(self) -> str:
        """The file's content (:func:`file_digest`) and shape: not its path or times."""
        return hashlib.sha256(f"{file_digest(self.path)}|{self.shape}".encode()).hexdigest()[:16]

    def describe(self) -> str:
        return f"{super().describe()}, memory-mapped from {self.path.name}"


class Subset(Source):
    """The examples ``index`` of ``source`` (a view: nothing is read until asked).

    Example:
        >>> import numpy as np
        >>> part = ArraySource(np.arange(10)[:, None], y=np.arange(10) % 2).subset([7, 2, 5])
        >>> part[:].ravel().tolist(), part.y.tolist()
        ([7, 2, 5], [1, 0, 1])
    """

    def __init__(self, source: Source, index: Any) -> None:
        index = np.asarray(index, dtype=np.int64).reshape(-1)
        if index.size and (index.min() < 0 or index.max() >= len(source)):
            raise DataError(f"a subset's index lies outside the source's {len(source)} examples")
        self.source, self.index = source, index
        self.n, self.event_shape, self.dtype = len(index), source.event_shape, source.dtype
        self.y = None if source.y is None else source.y[index]
        self.spec = source.spec

    def _read(self, index: np.ndarray) -> np.ndarray:
        rows = self.index[index]
        # read in increasing order (a memory map reads each page once), then restore order
        order = np.argsort(rows, kind="stable")
        out = self.source.read(rows[order])
        result = np.empty_like(out)
        result[order] = out
        return result

    def identity(self) -> str:
        h = hashlib.sha256(self.source.identity().encode())
        h.update(self.index.tobytes())
        return h.hexdigest()[:16]

    def batch_rows(self) -> int:
        return self.source.batch_rows()


class CheckedSource(Source):
    """A source whose batches are checked against ``spec`` as they are read, and come
    back as `check_values` returns them (int64 codes of discrete data, float64 values)."""

    def __init__(self, source: Source, spec: DataSpec, *, allow_nan: bool, what: str) -> None:
        self.source, self.spec_checked, self.allow_nan, self.what = source, spec, allow_nan, what
        self.n, self.event_shape = source.n, tuple(spec.event_shape)
        self.dtype = np.dtype(np.int64 if spec.is_discrete else np.float64)
        self.y, self.spec = source.y, spec
        if tuple(source.event_shape) != self.event_shape:
            raise DataError(
                f"{what} has examples of shape {tuple(source.event_shape)}, but the spec says "
                f"{self.event_shape}"
            )

    def _check(self, rows: np.ndarray) -> np.ndarray:
        if len(rows) == 0:  # nothing to check (a process's empty share of a batch)
            return np.empty((0, *self.event_shape), self.dtype)
        return check_values(rows, self.spec_checked, allow_nan=self.allow_nan, what=self.what)

    def _read(self, index: np.ndarray) -> np.ndarray:
        return self._check(self.source.read(index))

    def _read_range(self, start: int, stop: int) -> np.ndarray:
        return self._check(self.source.read_range(start, stop))

    def identity(self) -> str:
        return self.source.identity()

    def batch_rows(self) -> int:
        return self.source.batch_rows()


def is_source(x: Any) -> bool:
    """Whether ``x`` is a `Source`, or a split whose examples are one."""
    return isinstance(x, Source) or isinstance(getattr(x, "x", None), Source)


def as_source(x: Any, y: Any = None) -> Source:
    """``x`` as a source: a `Source` itself, or an array in memory wrapped."""
    return x if isinstance(x, Source) else ArraySource(x, y)


# --------------------------------------------------------------------- sums over batches
def process_share() -> tuple[int, int]:
    """(rank, world size) of this process under ``torchrun``; (0, 1) otherwise."""
    try:
        import torch.distributed as dist
    except ImportError:  # pragma: no cover - torch is a dependency
        return 0, 1
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def all_reduce_sum(stats: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Each value (arrays and numbers) summed over every process, as float64 arrays; a
    single process gets its own values back."""
    out = {k: np.asarray(v, dtype=np.float64) for k, v in stats.items()}
    _, world = process_share()
    if world == 1 or not out:
        return out
    import torch
    import torch.distributed as dist

    keys = sorted(out)
    flat = torch.from_numpy(np.concatenate([out[k].reshape(-1) for k in keys]))
    if dist.get_backend() == "nccl":
        flat = flat.cuda()
    dist.all_reduce(flat)
    flat_np = flat.cpu().numpy()
    pos = 0
    for k in keys:
        size = out[k].size
        out[k] = flat_np[pos : pos + size].reshape(out[k].shape)
        pos += size
    return out


def accumulate(
    data: Source | np.ndarray,
    statistics: Callable[[np.ndarray, np.ndarray | None], Mapping[str, Any]],
    *,
    y: np.ndarray | None = None,
    batch_size: int | None = None,
    reduce: bool = True,
) -> dict[str, np.ndarray]:
    """Sum ``statistics(batch, labels)`` over the batches of ``data`` (a dict of arrays
    or numbers, the same keys and shapes for every batch) as float64.

    Under ``torchrun`` this process reads every W-th batch and the sums are all-reduced
    over the processes (``reduce=False`` keeps this process's share). ``y``: labels of all
    the examples (default: the source's), passed sliced to each batch.

    Example:
        >>> import numpy as np
        >>> s = accumulate(np.arange(10.0)[:, None], lambda x, y: {"n": len(x), "sum": x.sum(0)},
        ...                batch_size=3)
        >>> float(s["n"]), s["sum"].tolist()
        (10.0, [45.0])
    """
    source = as_source(data)
    labels = y if y is not None else source.y
    rank, world = process_share()
    total: dict[str, np.ndarray] | None = None
    for start, batch in source.batches(batch_size, rank=rank, world_size=world):
        part = statistics(batch, None if labels is None else labels[start : start + len(batch)])
        if total is None:
            total = {k: np.array(v, dtype=np.float64) for k, v in part.items()}
        else:
            for k, v in part.items():
                total[k] += v
    if total is None:  # this process had no batch: zeros of the right shapes
        first = source.read_range(0, min(1, source.n))
        empty_labels = None if labels is None else labels[:0]
        shapes = statistics(first[:0], empty_labels)
        total = {k: np.zeros(np.shape(v)) for k, v in shapes.items()}
    return all_reduce_sum(total) if reduce else total
