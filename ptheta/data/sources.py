"""Data too large for memory opened as a `Source`: shard folders, image folders and tables
read in batches, each with the spec one pass over its batches infers, split by index.

Readers (each a :class:`~ptheta.data.stream.Source`: rows read by index, a batch at a time):

- a ``.npy`` file: memory-mapped (:class:`~ptheta.data.stream.NpySource`);
- `ShardSource`: a folder of ``.npy`` / ``.npz`` shards (or one ``.npz`` file), in the order
  of their names. ``.npy`` shards and the arrays of an uncompressed ``.npz`` (``np.savez``)
  are memory-mapped where they lie; a compressed ``.npz`` (``np.savez_compressed``) is
  decompressed whole when one of its rows is asked for, one shard held at a time;
- `ImageFolderSource`: one image file per row, decoded when the row is read;
- `TableSource`: a Parquet file read a row group at a time, or a CSV file whose rows are
  found by one scan of its bytes and parsed by pyarrow a range at a time; a table of typed
  columns (kind ``table``) is encoded batch by batch with its columns' spec.

`open_source` opens a path as one of these and infers its spec by one pass over the
batches, with the rules of the in-memory loaders (:func:`~ptheta.data.spec.infer_spec`,
:func:`~ptheta.data.arrays.from_arrays`): the same file gives the same spec, labels and
values either way. `split_source` splits a source 80 / 10 / 10 by the shuffle of
:func:`~ptheta.data.arrays.split_indices` into `Subset` views; each split keeps the source's
order, so that a batch of a split reads one stretch of the file (a memory map's pages, a
row group, a compressed shard or a range of CSV rows once per pass over the split).
"""

from __future__ import annotations

import copy
import csv
import hashlib
import io
import math
import os
import re
import struct
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ptheta.data.arrays import (
    SPLIT_NAMES,
    _encode_labels,
    _guess_image_shape,
    from_arrays,
    split_indices,
)
from ptheta.data.files import (
    SEQUENCE_ID_COLUMNS,
    _check_npy_header,
    _is_number,
    _npz_get,
    _read_error,
    read_npy_header,
)
from ptheta.data.images import (
    BILEVEL,
    BYTE,
    FLOAT,
    IMAGE_SUFFIXES,
    _folder_depth,
    _image_size,
    _pixel_depth,
    _read_image,
    list_image_files,
)
from ptheta.data.spec import (
    MAX_INFERRED_CATEGORIES,
    Dataset,
    DataSpec,
    Split,
    check_magnitude,
    parse_kind,
)
from ptheta.data.stream import BlockCache, NpySource, Source, file_digest
from ptheta.errors import DataError, unknown_name

# A file or folder whose data take more than this many bytes once read into memory (as
# int64 / float64 values) is streamed by `ptheta.data.load` unless told otherwise.
STREAM_BYTES = 2**30
SHARD_SUFFIXES: tuple[str, ...] = (".npy", ".npz")
# What `open_source` reads a batch at a time.
STREAMED = ".npy and .npz files, folders of .npy/.npz shards, image folders, .csv and .parquet"


# --------------------------------------------------------------------- shards
@dataclass
class _Shard:
    """One shard: its ``n`` examples, their ``array`` (memory-mapped) or None (compressed:
    read whole when asked), the archive member ``key`` (an .npz) and its labels ``y``."""

    path: Path
    n: int
    event_shape: tuple[int, ...]
    dtype: np.dtype
    array: np.ndarray | None
    key: str | None = None
    y: np.ndarray | None = None


def _npz_keys(path: Path, keys: list[str]) -> tuple[str, str | None]:
    """The keys of the examples and of the labels of a streamed .npz: ``x`` (or ``X``,
    ``data``, or a lone array) and ``y`` (or ``labels``); other layouts are refused."""
    if "values" in keys and ("offsets" in keys or "lengths" in keys):
        raise DataError(
            f"{path} holds variable-length sequences (values and offsets), which are read "
            "in memory only: load it with stream=False (--no-stream)"
        )
    if any(k.startswith(("x_", "X_")) for k in keys):
        raise DataError(
            f"{path} holds pre-split arrays (x_train, x_val, x_test), which are read in memory "
            "only: load it with stream=False (--no-stream), or save the examples as one x"
        )
    kx = next((k for k in ("x", "X", "data") if k in keys), None)
    if kx is None and len(keys) == 1:
        kx = keys[0]
    if kx is None:
        raise DataError(
            f"{path} holds the arrays {', '.join(keys)}; expected the examples under 'x' (or "
            "'X', 'data') with optional labels 'y'"
        )
    return kx, next((k for k in ("y", "labels") if k in keys), None)


def _npy_layout(f: Any) -> tuple[tuple[int, ...], bool, np.dtype]:
    """(shape, fortran order, dtype) from the .npy header at the position of ``f``."""
    version = np.lib.format.read_magic(f)
    read = np.lib.format.read_array_header_1_0
    if version != (1, 0):
        read = np.lib.format.read_array_header_2_0
    return read(f)


def _stored_member(path: Path, info: zipfile.ZipInfo) -> np.ndarray | None:
    """The array of an uncompressed archive member, memory-mapped where it lies in the
    file; None for a compressed member (which must be decompressed to be read)."""
    if info.compress_type != zipfile.ZIP_STORED or info.flag_bits & 0x1:  # deflated, encrypted
        return None
    with open(path, "rb") as f:
        f.seek(info.header_offset)
        header = f.read(30)  # the local file header: its name and extra field lengths follow
        if len(header) < 30 or header[:4] != b"PK\x03\x04":
            return None
        name_len, extra_len = struct.unpack("<HH", header[26:30])
        f.seek(info.header_offset + 30 + name_len + extra_len)
        shape, fortran, dtype = _npy_layout(f)
        offset = f.tell()
    if math.prod(shape) == 0:
        return np.empty(shape, dtype)
    return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape,
                     order="F" if fortran else "C")  # fmt: skip


def _open_shard(path: Path) -> _Shard:
    if path.suffix.lower() == ".npy":
        read_npy_header(path)  # refuses pickles, structured dtypes, truncated files
        try:
            x = np.load(path, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as e:
            raise _read_error(str(path), e) from None
        return _Shard(path, _rows(x, path), x.shape[1:], x.dtype, x)
    try:
        archive = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as e:
        raise _read_error(f"{path} as an .npz archive", e) from None
    with archive:
        names = archive.namelist()
        keys = [n[:-4] if n.endswith(".npy") else n for n in names]
        if not keys:
            raise DataError(f"{path} is an empty .npz archive (no arrays)")
        kx, ky = _npz_keys(path, keys)
        member = names[keys.index(kx)]
        info = archive.getinfo(member)
        what = f"array {kx!r} in {path}"
        try:
            with archive.open(member) as f:
                _check_npy_header(f, info.file_size, what)  # refuses pickles, truncation
            with archive.open(member) as f:
                shape, _, dtype = _npy_layout(f)
        except DataError:
            raise
        except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
            raise _read_error(what, e) from None
        array = _stored_member(path, info)
    y = None
    if ky is not None:
        with np.load(path, allow_pickle=False) as npz:
            y = np.asarray(_npz_get(path, npz, ky))
    if len(shape) < 2:
        raise DataError(
            f"{what} has shape {shape}; examples need shape (N, ...) with one example per row"
        )
    if y is not None and y.shape != (shape[0],):
        raise DataError(
            f"the labels {ky!r} in {path} have shape {y.shape}; expected ({shape[0]},), one "
            "label per example"
        )
    return _Shard(path, shape[0], tuple(shape[1:]), dtype, array, kx, y)


def _rows(x: np.ndarray, path: Path) -> int:
    if x.ndim < 2:
        raise DataError(
            f"{path} holds an array of shape {x.shape}; examples need shape (N, ...) with one "
            "example per row"
        )
    return len(x)


def _number_group(dtype: np.dtype) -> str:
    """``integer`` (bool, signed, unsigned) or ``float``; anything else is refused."""
    if dtype.kind in "biu":
        return "integer"
    if dtype.kind == "f":
        return "float"
    return f"{dtype}"


def _shard_files(folder: Path) -> list[Path]:
    try:
        files = sorted(
            p
            for p in folder.iterdir()
            if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in SHARD_SUFFIXES
        )
    except OSError as e:
        raise DataError(f"could not list the folder {folder}: {e}") from None
    return files


def is_shard_folder(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a folder holding .npy or .npz files (shards of one data set)."""
    path = Path(path)
    return path.is_dir() and bool(_shard_files(path))


class ShardSource(Source):
    """A folder of ``.npy`` and ``.npz`` shards read as one source, shard after shard in
    the order of their names (or a single ``.npz`` file).

    Every shard holds examples (N_i, *event_shape) of the same event shape, all integers
    (bool, signed, unsigned) or all floats; an ``.npz`` shard keeps them under ``x`` (or
    ``X``, ``data``, or a lone array) and may keep labels under ``y`` (or ``labels``), in
    every shard or none. ``.npy`` shards and uncompressed ``.npz`` archives (``np.savez``)
    are memory-mapped: only the rows asked for are read. A compressed archive
    (``np.savez_compressed``) is decompressed whole when one of its rows is asked for and
    kept until a row of another compressed shard is: read such shards in order (as the
    splits of `split_source` are). Nothing is ever unpickled.

    Arguments:
        path: the folder (or one ``.npz`` file).

    Example:
        >>> import numpy as np, tempfile, os
        >>> folder = tempfile.mkdtemp()
        >>> np.save(os.path.join(folder, "part-0.npy"), np.zeros((2, 3)))
        >>> np.savez_compressed(os.path.join(folder, "part-1.npz"), x=np.ones((3, 3)))
        >>> s = ShardSource(folder)
        >>> s.shape, s[[1, 2, 4]].sum(axis=1).tolist()
        ((5, 3), [0.0, 3.0, 3.0])
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        if self.path.is_dir():
            files = _shard_files(self.path)
            if not files:
                raise DataError(f"{self.path} holds no .npy or .npz shards")
        elif self.path.suffix.lower() == ".npz":
            files = [self.path]
        else:
            raise DataError(f"{self.path} is neither a folder of shards nor an .npz file")
        self.shards = [_open_shard(p) for p in files]
        first = self.shards[0]
        for s in self.shards[1:]:
            if s.event_shape != first.event_shape:
                raise DataError(
                    f"the shards in {self.path} hold examples of different shapes: "
                    f"{first.path.name} {first.event_shape}, {s.path.name} {s.event_shape}; "
                    "every shard needs the same event shape"
                )
        groups = {s.path.name: _number_group(s.dtype) for s in self.shards}
        odd = [f"{name} ({g})" for name, g in groups.items() if g not in ("integer", "float")]
        if odd:
            raise DataError(
                f"the shard(s) {', '.join(odd)} in {self.path} do not hold numbers; save plain "
                "numeric arrays (bool, integer or float)"
            )
        if len(set(groups.values())) > 1:
            kinds = {g: name for name, g in groups.items()}
            raise DataError(
                f"the shards in {self.path} mix integer ({kinds['integer']}) and float "
                f"({kinds['float']}) arrays; save every shard with the same kind of dtype"
            )
        labelled = [s.y is not None for s in self.shards]
        if any(labelled) and not all(labelled):
            bare = self.shards[labelled.index(False)].path.name
            raise DataError(
                f"some shards in {self.path} have labels ('y') but {bare} has none; give labels "
                "in every shard or in none"
            )
        self.n = sum(s.n for s in self.shards)
        self.event_shape = first.event_shape
        self.dtype = np.result_type(*[s.dtype for s in self.shards])
        self.starts = np.cumsum([0] + [s.n for s in self.shards])  # (S + 1,)
        if all(labelled) and len({s.y.dtype.kind in "US" for s in self.shards}) > 1:
            raise DataError(f"the shards in {self.path} mix numeric and text labels")
        self.y = np.concatenate([s.y for s in self.shards]) if all(labelled) else None
        self._cache = BlockCache()  # decompressed shards, the least recently used dropped

    def _array(self, i: int) -> np.ndarray:
        shard = self.shards[i]
        if shard.array is not None:
            return shard.array
        return self._cache.get(i, self._decompress)

    def _decompress(self, i: int) -> np.ndarray:
        shard = self.shards[i]
        with np.load(shard.path, allow_pickle=False) as npz:
            return np.asarray(_npz_get(shard.path, npz, shard.key))

    def _read(self, index: np.ndarray) -> np.ndarray:
        out = np.empty((len(index), *self.event_shape), self.dtype)
        which = np.searchsorted(self.starts, index, side="right") - 1
        for i in dict.fromkeys(which.tolist()):  # each shard once, in order of first need
            mask = which == i
            out[mask] = self._array(i)[index[mask] - self.starts[i]]
        return out

    def _read_range(self, start: int, stop: int) -> np.ndarray:
        out = np.empty((stop - start, *self.event_shape), self.dtype)
        for i, shard in enumerate(self.shards):
            lo, hi = max(start, self.starts[i]), min(stop, self.starts[i] + shard.n)
            if lo < hi:
                a = self.starts[i]
                out[lo - start : hi - start] = self._array(i)[lo - a : hi - a]
        return out

    def identity(self) -> str:
        h = hashlib.sha256(repr(self.shape).encode())
        for s in self.shards:  # each shard's name in the folder and content
            h.update(f"{s.path.name}|{file_digest(s.path)}".encode())
        return h.hexdigest()[:16]

    def describe(self) -> str:
        n = len(self.shards)
        return f"{super().describe()}, {n} shard{'s' if n != 1 else ''} in {self.path.name}"


# --------------------------------------------------------------------- images
# Pillow modes read as one channel (see images._read_image); the others are read as RGB.
_ONE_CHANNEL_MODES = ("1", "L", "LA", "La", "I", "F")


def _channels_of(mode: str) -> int:
    return 1 if mode in _ONE_CHANNEL_MODES or mode.startswith("I;") else 3


def _as_channels(a: np.ndarray, channels: int) -> np.ndarray:
    """Pixels (C, H, W) as one channel (ITU-R 601 luma, the weights of Pillow's
    convert("L")) or three (a gray image repeated), as the in-memory loader gives them."""
    if channels == 1 and a.shape[0] != 1:
        return np.rint(np.tensordot([0.299, 0.587, 0.114], a, 1))[None]
    if channels == 3 and a.shape[0] == 1:
        return np.repeat(a, 3, axis=0)
    return a


class ImageFolderSource(Source):
    """A folder of images read lazily, one file per row (flat, or one sub-folder per class:
    labels are the class codes of the sorted sub-folder names, in ``classes``).

    The values are those of :func:`~ptheta.data.images.load_image_folder`, the in-memory
    loader: stored pixel values by pixel depth (8-bit 0..255, black and white 0/1 or 0/255
    among 8-bit images, 16/32-bit integers and floats as stored), int64 (float64 for float
    images), shape (C, H, W). Opening the folder reads each file's header (size and mode),
    not its pixels; with ``grayscale=None`` colour files are decoded until one is not gray
    (every one, if all are).

    Arguments:
        folder: the folder of images.
        image_size: (H, W), or an int for square images, to resize every image to; without
            it every image must have the same size.
        grayscale: one channel (True), RGB (False), or one channel exactly when every image
            is gray (None).

    Example:
        >>> import numpy as np, tempfile, os
        >>> from PIL import Image
        >>> folder = tempfile.mkdtemp()
        >>> for i in range(3):
        ...     Image.fromarray(np.full((2, 4), 10 * i, np.uint8)).save(f"{folder}/{i}.png")
        >>> s = ImageFolderSource(folder)
        >>> s.shape, s[2].max().item()
        ((3, 1, 2, 4), 20)
    """

    def __init__(
        self,
        folder: str | os.PathLike,
        image_size: int | Sequence[int] | None = None,
        grayscale: bool | None = None,
    ) -> None:
        from PIL import Image

        self.folder = Path(folder)
        self.size = _image_size(image_size)
        self.files, labels, self.classes = list_image_files(self.folder)
        modes, sizes = [], set()
        for p in self.files:
            try:
                with Image.open(p) as img:  # reads the header only
                    modes.append(img.mode)
                    sizes.add(img.size[::-1])
            except Exception as e:  # Pillow raises many types on broken or unknown files
                raise DataError(f"could not read the image {p}: {e or type(e).__name__}") from None
        self.depths = [_pixel_depth(m) for m in modes]
        self.depth = _folder_depth(self.folder, self.depths, self.files, modes)
        if self.size is None and len(sizes) > 1:
            shown = sorted(sizes)
            raise DataError(
                f"the images in {self.folder} have different sizes ({shown[0]}, {shown[-1]}, "
                "...); pass image_size=(H, W) to resize them all"
            )
        height, width = self.size or next(iter(sizes))
        if grayscale is None:
            colour = [i for i, m in enumerate(modes) if _channels_of(m) == 3]
            grayscale = all(self._is_gray(i) for i in colour)  # stops at the first colour one
        self.channels = 1 if grayscale else 3
        self.n, self.event_shape = len(self.files), (self.channels, height, width)
        self.dtype = np.dtype(np.float64 if self.depth == FLOAT else np.int64)
        self.y = np.asarray(labels, dtype=np.int64) if self.classes is not None else None

    def _pixels(self, i: int) -> np.ndarray:
        """Image ``i`` as stored (C, H, W), black and white as 0/255 among 8-bit images."""
        a, _, depth = _read_image(self.files[i], self.size)
        if self.depth == BYTE and depth == BILEVEL:  # shown among gray levels: 0 and 255
            a = a * 255
        return a

    def _is_gray(self, i: int) -> bool:
        a = self._pixels(i)
        return a.shape[0] == 1 or bool((a[0] == a[1]).all() and (a[1] == a[2]).all())

    def _read(self, index: np.ndarray) -> np.ndarray:
        out = np.empty((len(index), *self.event_shape), self.dtype)
        for row, i in enumerate(index.tolist()):
            a = _as_channels(self._pixels(i), self.channels)
            if a.shape != self.event_shape:
                raise DataError(
                    f"the image {self.files[i]} now has shape {a.shape[1:]}, not "
                    f"{self.event_shape[1:]}: the folder changed after it was opened"
                )
            out[row] = a
        return out

    def identity(self) -> str:
        h = hashlib.sha256(repr((self.shape, self.size, self.channels)).encode())
        for p in self.files:  # each image's place in the folder and content
            h.update(f"{p.relative_to(self.folder)}|{file_digest(p)}".encode())
        return h.hexdigest()[:16]

    def describe(self) -> str:
        return f"{super().describe()}, decoded from the images in {self.folder.name}"


# --------------------------------------------------------------------- tables
# The cells pandas reads as missing by default (pandas' STR_NA_VALUES): a table read in
# batches marks the same cells missing as a table read whole by pandas.
NA_TEXT: tuple[str, ...] = (
    "", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND",
    "1.#QNAN", "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null",
)  # fmt: skip
# The cells pandas reads as booleans.
TRUE_TEXT, FALSE_TEXT = ("True", "TRUE", "true"), ("False", "FALSE", "false")


class NotNumeric(DataError):
    """A column read as numbers holds something else (a table of typed columns, then)."""


def _rows_of_block(buf: bytes, delimiter: int, final: bool) -> tuple[np.ndarray, np.ndarray, int]:
    """The rows of CSV bytes that begin at a row: (starts, ends) of the rows that hold
    more than spaces and delimiters (ends at their newline), and the bytes the whole rows
    take (the rest begins the next block). A row ends at a newline outside double quotes;
    the last row of the file (``final``) needs none."""
    a = np.frombuffer(buf, np.uint8)
    quoted = np.cumsum(a == 34, dtype=np.uint8) & 1  # inside quotes after this byte (mod 2)
    ends = np.flatnonzero((a == 10) & (quoted == 0))
    used = int(ends[-1]) + 1 if ends.size else 0
    if final and used < len(a):
        ends, used = np.append(ends, len(a)), len(a)
    if not ends.size:
        return ends, ends, used
    starts = np.concatenate([[0], ends[:-1] + 1])
    content = ~np.isin(a[:used], (32, 9, 10, 13, delimiter))
    keep = np.logical_or.reduceat(content, starts)  # any content between start and next start
    return starts[keep], ends[keep], used


def _join_rows(buf: bytes, starts: np.ndarray, ends: np.ndarray) -> bytes:
    if not len(starts):
        return b""
    if np.all(starts[1:] == ends[:-1] + 1):  # no blank row between them: one slice
        return buf[starts[0] : ends[-1]]
    return b"\n".join(buf[s:e] for s, e in zip(starts.tolist(), ends.tolist(), strict=True))


class _CsvRows:
    """The data rows of a CSV file, found by one scan of its bytes (no parsing): where
    every `MARK`-th row begins, so that rows a..b are read from the mark before a.

    The header is the first line that is not blank, its delimiter the first of , tab ;
    that it holds (as the in-memory reader decides); rows of only spaces and delimiters
    are skipped (as the in-memory reader skips them)."""

    MARK = 1024  # rows from one mark to the next
    BLOCK = 1 << 22  # bytes scanned at a time

    def __init__(self, path: Path) -> None:
        self.path = path
        start = 0
        with open(path, "rb") as f:
            while True:  # the header: the first line that is not blank
                line = f.readline()
                if not line:
                    raise DataError(f"{path} is empty")
                text = line[3:] if start == 0 and line.startswith(b"\xef\xbb\xbf") else line
                start += len(line)
                if text.strip():
                    break
        try:
            text = text.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError as e:
            raise DataError(f"could not read {path} as a text CSV file: {e}") from None
        self.delimiter = next((d for d in (",", "\t", ";") if d in text), ",")
        self.header = [h.strip() for h in next(csv.reader([text], delimiter=self.delimiter))]
        if all(_is_number(h) for h in self.header):
            raise DataError(
                f"the first row of {path} looks like data ({', '.join(self.header[:4])}...); a "
                "CSV file needs a header row naming its columns"
            )
        twice = sorted({h for h in self.header if self.header.count(h) > 1})
        if twice:
            raise DataError(f"{path} names the column(s) {twice} twice; give each once")
        self.n, marks = 0, []
        for _, base, starts, _ in self._blocks(start):
            first = -self.n % self.MARK  # the first of these rows that gets a mark
            marks.extend((base + starts[first :: self.MARK]).tolist())
            self.n += len(starts)
        if self.n == 0:
            raise DataError(f"{path} has a header row but no data rows")
        self.marks = np.asarray(marks, dtype=np.int64)

    def _blocks(self, pos: int, size: int | None = None) -> Iterator[tuple[bytes, int, Any, Any]]:
        """(bytes, their offset in the file, row starts, row ends) of the whole rows from
        the row at byte ``pos`` on; blocks of ``size`` bytes, growing to `BLOCK`."""
        size = size or self.BLOCK
        with open(self.path, "rb") as f:
            f.seek(pos)
            carry = b""
            while True:
                chunk = f.read(size)
                buf = carry + chunk
                if not buf:
                    return
                starts, ends, used = _rows_of_block(buf, ord(self.delimiter), final=not chunk)
                yield buf, pos, starts, ends
                if not chunk:
                    return
                carry, pos, size = buf[used:], pos + used, max(size, self.BLOCK)

    def read(self, start: int, stop: int) -> bytes:
        """Rows start..stop−1 (blank rows left out) as CSV bytes, one row a line."""
        m = start // self.MARK
        row, parts = m * self.MARK, []
        size = min(64 * (stop - row), self.BLOCK)  # rows seldom take 64 bytes; blocks grow
        for buf, _, starts, ends in self._blocks(int(self.marks[m]), size):
            lo, hi = max(start - row, 0), min(stop - row, len(starts))
            if lo < hi:
                parts.append(_join_rows(buf, starts[lo:hi], ends[lo:hi]))
            row += len(starts)
            if row >= stop:
                break
        return b"\n".join(parts)


def _arrow_error(path: Path, header: list[str], e: Exception, label: str | None) -> DataError:
    """A pyarrow parse error as the `DataError` of the in-memory reader."""
    text = str(e)
    if m := re.search(r"column #(\d+): .*invalid value '(.*)'", text):
        name = header[int(m.group(1))]
        hint = (
            f"load with label_column={name!r} if it holds the labels, or read the file as a "
            "table of typed columns (kind='table')"
            if label is None
            else "only numeric columns can be features; remove it, or read the file as a "
            "table (kind='table')"
        )
        return NotNumeric(f"column {name!r} of {path} is not numeric ({m.group(2)!r}); {hint}")
    if m := re.search(r"Expected (\d+) columns, got (\d+)", text):
        return DataError(f"a row of {path} has {m.group(2)} fields but the header has {m.group(1)}")
    return DataError(f"could not parse {path} as CSV: {text.splitlines()[0]}")


def _text_cells(column: Any) -> Any:
    """CSV text as pandas reads a table: leading spaces dropped, its NA texts missing."""
    s = column.to_pandas().astype(object)
    s = s.where(s.isna(), s.str.lstrip())
    return s.where(~s.isin(NA_TEXT), None)


def _check_empty_rows(frame: Any, start: int, path: Path) -> None:
    empty = frame.isna().all(axis=1).to_numpy()
    if empty.any():
        raise DataError(
            f"data row {start + int(np.flatnonzero(empty)[0])} of {path} has no cell at all; "
            "a table read whole drops such rows, one read in batches cannot: remove them (or "
            "load the file with stream=False)"
        )


class TableSource(Source):
    """A Parquet or CSV file read a batch of rows at a time.

    Without ``columns`` every column besides ``label_column`` is a numeric feature, read
    as float64 (a missing cell as NaN); with ``columns`` (the complete
    :class:`~ptheta.data.table.ColumnSpec` of each, as `open_source` infers them) the rows
    are a table of typed columns, encoded batch by batch with
    :func:`~ptheta.data.table.encode` (float64 codes, counts and reals; NaN where a cell
    is missing). The labels, one per row, are read when the file is opened, as the
    in-memory reader reads them (numbers when every label is one, else text).

    A Parquet file is read a row group at a time (the last one read is kept). A CSV file is
    scanned once when opened to find where its rows begin (a mark every 1024 rows); rows
    a..b are then parsed by pyarrow from the mark before a, so reading in order (batches,
    the splits of `split_source`) parses each row about once. A row ends at a newline
    outside double quotes; rows of only spaces and delimiters are skipped.

    Arguments:
        path: the .parquet or .csv file.
        label_column: the column holding the labels.
        columns: the typed columns of a table (kind ``table``), or None for numbers.

    Example:
        >>> import tempfile, os
        >>> path = os.path.join(tempfile.mkdtemp(), "t.csv")
        >>> _ = open(path, "w").write("a,b,label\\n1,2.5,cat\\n3,,dog\\n\\n5,6,cat\\n")
        >>> s = TableSource(path, label_column="label")
        >>> s[1:].tolist(), s.y.tolist()
        ([[3.0, nan], [5.0, 6.0]], ['cat', 'dog', 'cat'])
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        label_column: str | None = None,
        columns: Sequence[Any] | None = None,
    ) -> None:
        self.path = Path(path)
        self.format = self.path.suffix.lower().lstrip(".")
        if self.format == "parquet":
            import pyarrow.parquet as pq

            try:
                self._parquet = pq.ParquetFile(self.path)
            except (OSError, ValueError) as e:  # pyarrow's ArrowInvalid is a ValueError
                raise DataError(f"could not read {self.path} as a Parquet file: {e}") from None
            meta = self._parquet.metadata
            counts = [meta.row_group(g).num_rows for g in range(meta.num_row_groups)]
            self.group_starts = np.cumsum([0, *counts])
            schema = self._parquet.schema_arrow
            index = (schema.pandas_metadata or {}).get("index_columns", [])  # pandas' own
            self.header = [c for c in schema.names if c not in index]
            self.n = int(sum(counts))
            if self.n == 0:
                raise DataError(f"{self.path} holds no rows of data")
        elif self.format == "csv":
            self._csv = _CsvRows(self.path)
            self.header, self.n = self._csv.header, self._csv.n
            long = [c for c in self.header if c.lower() in SEQUENCE_ID_COLUMNS]
            if long:
                raise DataError(
                    f"{self.path} is a CSV in long format (its column {long[0]!r}: one row per "
                    "step of variable-length sequences), which is read in memory only: load it "
                    "with stream=False (--no-stream)"
                )
        else:
            raise DataError(f"{self.path} is not a .csv or .parquet file")
        if label_column is not None and label_column not in self.header:
            raise DataError(
                str(unknown_name("label column", label_column, self.header)) + f" in {path}"
            )
        self.label_column = label_column
        self.features = [c for c in self.header if c != label_column]
        if not self.features:
            raise DataError(f"{self.path} has no feature columns besides the label column")
        self.y = None if label_column is None else self._read_labels()
        self._set_columns(columns)

    def _set_columns(self, columns: Sequence[Any] | None) -> None:
        from ptheta.data.table import ColumnSpec

        if columns is not None:
            columns = tuple(ColumnSpec.from_json(c, "a column") for c in columns)
            absent = [c.name for c in columns if c.name not in self.features]
            if absent:
                raise DataError(f"{self.path} lacks the column(s) {absent} of the table")
        self.columns = columns
        self.event_shape = (len(self.features) if columns is None else len(columns),)
        self.dtype = np.dtype(np.float64)
        self._cache = BlockCache()  # decoded row groups / ranges of CSV rows

    def text_columns(self) -> list[str]:
        """The feature columns of a Parquet file that are not numbers (by their type)."""
        import pyarrow as pa

        if self.format != "parquet":
            return []
        types = {f.name: f.type for f in self._parquet.schema_arrow}
        return [
            c for c in self.features
            if not (pa.types.is_integer(types[c]) or pa.types.is_floating(types[c]))
        ]  # fmt: skip

    def with_columns(self, columns: Sequence[Any]) -> TableSource:
        """The same file read as a table of these typed columns (no new scan), its labels
        as a table reads them (pandas' booleans, missing texts refused)."""
        out = copy.copy(self)
        out._set_columns(columns)
        if out.y is not None and out.y.dtype.kind == "U":
            if np.isin(out.y, NA_TEXT).any():
                raise DataError(f"the label column {self.label_column!r} has missing cells")
            if np.isin(out.y, TRUE_TEXT + FALSE_TEXT).all():  # pandas reads them as booleans
                out.y = np.where(np.isin(out.y, TRUE_TEXT), "True", "False")
        return out

    # ------------------------------------------------------------ raw reading
    def _csv_table(self, start: int, stop: int, names: Sequence[str], text: bool) -> Any:
        """Rows start..stop−1 of the CSV columns ``names`` as a pyarrow Table: float64 (a
        missing cell is an empty one) or, with ``text`` (and the labels), strings."""
        import pyarrow as pa
        import pyarrow.csv as pacsv

        string = {c: pa.string() if text or c == self.label_column else pa.float64()
                  for c in names}  # fmt: skip
        try:
            table = pacsv.read_csv(
                io.BytesIO(self._csv.read(start, stop)),
                read_options=pacsv.ReadOptions(column_names=self.header),
                parse_options=pacsv.ParseOptions(
                    delimiter=self._csv.delimiter, newlines_in_values=True
                ),
                convert_options=pacsv.ConvertOptions(
                    column_types=string,
                    include_columns=list(names),
                    null_values=[""],
                    strings_can_be_null=True,
                ),
            )
        except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
            raise _arrow_error(self.path, self.header, e, self.label_column) from None
        if table.num_rows != stop - start:  # a double quote inside a field misleads the scan
            raise DataError(
                f"the rows of {self.path} could not be found by a scan of its bytes (a double "
                "quote inside a field, not around it?); load it with stream=False"
            )
        return table

    def frames(self, step: int | None = None) -> Iterator[tuple[int, Any]]:
        """(first row, pandas DataFrame) of consecutive rows of every column, as pandas
        reads the file whole: a Parquet file a row group at a time, its columns in their
        types; a CSV file ``step`` rows at a time, its cells as text (missing ones None)."""
        import pandas as pd

        if self.format == "parquet":
            for g in range(len(self.group_starts) - 1):
                yield int(self.group_starts[g]), self._parquet.read_row_group(g).to_pandas()
            return
        step = step or max(1, (1 << 22) // (8 * len(self.header)))
        for a in range(0, self.n, step):
            table = self._csv_table(a, min(a + step, self.n), self.header, text=True)
            yield a, pd.DataFrame({c: _text_cells(table.column(c)) for c in self.header})

    def _read_labels(self) -> np.ndarray:
        """The labels of every row as the in-memory reader gives them: a Parquet column's
        numbers, or its values as text; a CSV's numbers when every label is one, else its
        (stripped) text. A missing label is refused."""
        name, fmt = self.label_column, self.format
        if fmt == "parquet":
            cells = self._parquet.read(columns=[name]).column(0).to_pandas()
            missing = bool(cells.isna().any())
        else:
            step, chunks, numeric, missing = 1 << 16, [], True, False
            for a in range(0, self.n, step):
                column = self._csv_table(a, min(a + step, self.n), [name], True).column(0)
                cells = np.array([c.strip() if c else "" for c in column.to_pylist()])
                distinct = np.unique(cells)  # labels are few: check each once
                missing = missing or "" in distinct
                numeric = numeric and all(map(_is_number, distinct))
                chunks.append(cells)
        if missing:
            raise DataError(f"the label column {name!r} of {self.path} has empty cells")
        if fmt == "parquet":
            import pandas as pd

            numeric = pd.api.types.is_numeric_dtype(cells)
            return cells.to_numpy() if numeric else np.array([str(v) for v in cells])
        cells = np.concatenate(chunks)
        return cells.astype(np.float64) if numeric else cells

    # ------------------------------------------------------------ Source
    def _encoded(self, start: int, stop: int) -> np.ndarray:
        """Rows start..stop−1 (within one row group of a Parquet file) as float64 (N, D):
        numbers, or a table's encoded cells."""
        if stop <= start:
            return np.empty((0, *self.event_shape))
        if self.format == "parquet":
            g = int(np.searchsorted(self.group_starts, start, side="right")) - 1
            a = self.group_starts[g]
            group = self._parquet.read_row_group(g, columns=self.features)
            frame = group.to_pandas().iloc[start - a : stop - a]
            if self.columns is None:
                odd = self.text_columns()
                if odd:
                    raise NotNumeric(
                        f"column {odd[0]!r} of {self.path} is not numeric, so the file cannot "
                        "be read as numbers; read it as a table of typed columns (kind='table')"
                    )
                if self.label_column is None:
                    _check_empty_rows(frame, start, self.path)
                return frame[self.features].to_numpy(dtype=np.float64)
        elif self.columns is not None:
            table = self._csv_table(start, stop, self.header, text=True)
            frame = {c: _text_cells(table.column(c)) for c in self.header}
            import pandas as pd

            frame = pd.DataFrame(frame)
        else:
            table = self._csv_table(start, stop, self.features, text=False)
            columns = [table.column(c).to_numpy(zero_copy_only=False) for c in self.features]
            return np.column_stack(columns).astype(np.float64, copy=False)
        from ptheta.data.table import encode

        if self.label_column is None:
            _check_empty_rows(frame, start, self.path)
        return encode(frame, self.columns, str(self.path))

    def _read_range(self, start: int, stop: int) -> np.ndarray:
        if self.format == "csv":
            return self._encoded(start, stop)
        return self._read(np.arange(start, stop, dtype=np.int64))

    def _read(self, index: np.ndarray) -> np.ndarray:
        out = np.empty((len(index), *self.event_shape))
        if self.format == "parquet":  # each row group decoded once while it is kept
            starts = self.group_starts

            def group(g: int) -> np.ndarray:
                return self._encoded(starts[g], starts[g + 1])

        else:  # blocks of rows of one batch's size, each parsed once while it is kept
            size = self.batch_rows()
            starts = np.minimum(np.arange(0, self.n + size, size), self.n)

            def group(g: int) -> np.ndarray:
                return self._encoded(int(starts[g]), int(starts[g + 1]))

        which = np.searchsorted(starts, index, side="right") - 1
        for g in dict.fromkeys(which.tolist()):
            mask = which == g
            out[mask] = self._cache.get(g, group)[index[mask] - starts[g]]
        return out

    def identity(self) -> str:
        columns = None if self.columns is None else [c.to_json() for c in self.columns]
        text = f"{file_digest(self.path)}|{self.label_column}|{columns}"
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def describe(self) -> str:
        how = "a row group at a time" if self.format == "parquet" else "in ranges of rows"
        return f"{super().describe()}, read {how} from {self.path.name}"


# --------------------------------------------------------------------- a table's schema
class _ColumnPass:
    """What one pass over a column learns, enough to type it as
    :func:`~ptheta.data.table.infer_schema` types the whole column: its distinct labels
    and numbers (up to one more than a category may have), its extremes and an example of
    a fraction or infinity, the types pandas gives its parts (Parquet) or whether every
    cell is a number or a boolean (CSV text, typed by pandas from the whole column)."""

    CAP = 257  # one more than a category may have (table.MAX_INFERRED_LEVELS)

    def __init__(self) -> None:
        self.labels: dict[str, None] = {}
        self.numbers: set[float] = set()
        self.extremes: list[float] = []
        self.observed = 0
        self.kinds: set[str] = set()  # pandas' kinds of the parts (Parquet)
        self.numeric = self.boolean = True  # every cell a number, a boolean (CSV)
        self.categories: dict[str, None] = {}
        self.ordered = False

    @property
    def overflowed(self) -> bool:
        return len(self.labels) >= self.CAP

    def update(self, series: Any, from_text: bool) -> None:
        import pandas as pd

        from ptheta.data.table import _label, _missing

        observed = series[~_missing(series)]
        self.observed += len(observed)
        if from_text:
            cells = observed.astype(str).str.strip()
            if self.numeric:
                numbers = pd.to_numeric(cells, errors="coerce")
                self.numeric = not numbers.isna().any()
                if self.numeric:
                    self._numbers(numbers.to_numpy(dtype=np.float64))
            self.boolean = self.boolean and bool(cells.isin(TRUE_TEXT + FALSE_TEXT).all())
            labels = pd.unique(cells)
        else:
            dtype = series.dtype
            if isinstance(dtype, pd.CategoricalDtype):
                self.kinds.add("category")
                self.categories.update(dict.fromkeys(_label(v) for v in dtype.categories))
                self.ordered = bool(dtype.ordered)
            elif pd.api.types.is_bool_dtype(dtype):
                self.kinds.add("bool")
            elif pd.api.types.is_numeric_dtype(dtype):
                self.kinds.add("number")
                self._numbers(np.asarray(observed, dtype=np.float64))
            else:
                self.kinds.add("text")
            labels = [_label(v) for v in pd.unique(observed)[: self.CAP]]
        for v in labels[: self.CAP]:
            if self.overflowed:
                break
            self.labels.setdefault(v)

    def _numbers(self, values: np.ndarray) -> None:
        if values.size:
            if len(self.numbers) < self.CAP:
                self.numbers.update(np.unique(values)[: self.CAP].tolist())
            odd = values[~np.isfinite(values) | (values != np.round(values))][:1]
            self.extremes += [float(values.min()), float(values.max()), *odd.tolist()]

    def kind(self, from_text: bool) -> str:
        """How pandas types the whole column: category, bool, number or text."""
        if from_text:
            return "number" if self.numeric else "bool" if self.boolean else "text"
        for kind in ("category", "text"):
            if kind in self.kinds:
                return kind
        return "bool" if self.kinds == {"bool"} else "number" if self.kinds else "text"

    def series(self, kind: str) -> Any:
        """A short column that `infer_schema` types as it types the whole column."""
        import pandas as pd

        if self.observed == 0:
            return pd.Series([None], dtype=object)
        if kind == "category":
            cats = list(self.categories)
            return pd.Series(pd.Categorical(cats, cats, ordered=self.ordered))
        if kind == "bool":
            return pd.Series([v in (*TRUE_TEXT, "True") for v in self.labels], dtype=bool)
        if kind == "number":
            return pd.Series(sorted(self.numbers) + self.extremes, dtype=np.float64)
        return pd.Series(list(self.labels), dtype=object)


def _table_columns(source: TableSource, schema: Any) -> tuple[Any, ...]:
    """The typed columns of a table from one pass over its rows, by the rules of
    :func:`~ptheta.data.table.infer_schema`, overridden by ``schema``."""
    import pandas as pd

    from ptheta.data.table import LABEL_TYPES, MAX_INFERRED_LEVELS, infer_schema, parse_schema
    from ptheta.data.table import read_schema as read_schema_file

    try:
        if isinstance(schema, (str, os.PathLike)):
            schema = read_schema_file(schema)
        declared = {} if schema is None else {c.name: c for c in parse_schema(schema)}
    except DataError as e:
        raise DataError(f"{source.path}: {e}") from None
    if source.label_column in declared:
        raise DataError(
            f"the schema declares the label column {source.label_column!r}; leave it out"
        )
    from_text = source.format == "csv"
    passes = {c: _ColumnPass() for c in source.features}
    for start, frame in source.frames():
        if source.label_column is None:
            _check_empty_rows(frame, start, source.path)
        for name, p in passes.items():
            p.update(frame[name], from_text)
    summary = {}
    for name, p in passes.items():
        col = declared.get(name)
        # a CSV column declared as labels is read as its text (as in memory)
        kind = "text" if from_text and col and col.type in LABEL_TYPES else p.kind(from_text)
        if p.overflowed and col is None and kind == "text":
            raise DataError(
                f"column {name!r} of {source.path} has more than {MAX_INFERRED_LEVELS} distinct "
                "labels: an identifier or free text rather than a category; drop it, or declare "
                "it categorical with its levels in a schema"
            )
        if p.overflowed and col is not None and col.type in LABEL_TYPES and not col.is_complete:
            raise DataError(
                f"column {name!r} of {source.path} is declared {col.type} without its levels "
                f"and holds more than {MAX_INFERRED_LEVELS} distinct values; a file read in "
                'batches needs them in the schema ("levels": [...])'
            )
        summary[name] = p.series(kind)
    exclude = () if source.label_column is None else (source.label_column,)
    try:
        return infer_schema(pd.DataFrame(summary), list(declared.values()), exclude=exclude)
    except DataError as e:
        raise DataError(f"{source.path}: {e}") from None


# --------------------------------------------------------------------- a source's spec
@dataclass
class _Values:
    """What one pass over a source's values learns: the extremes and count of its finite
    values, whether they are whole, how many are NaN."""

    lo: float = math.inf
    hi: float = -math.inf
    whole: bool = True
    finite: int = 0
    nan: int = 0

    def update(self, batch: np.ndarray, what: str) -> None:
        b = batch.astype(np.int8) if batch.dtype == bool else batch
        if b.size == 0:
            return
        if b.dtype.kind in "iu":
            self.lo, self.hi = min(self.lo, int(b.min())), max(self.hi, int(b.max()))
            self.finite += b.size
            return
        lo, hi = float(b.min()), float(b.max())
        if not (math.isfinite(lo) and math.isfinite(hi)):  # a NaN or an infinity shows here
            if np.isinf(b).any():
                raise DataError(f"{what} contains infinite values; remove or clip them")
            nan = np.isnan(b)
            self.nan += int(nan.sum())
            b = b[~nan]
            if not b.size:
                return
            lo, hi = float(b.min()), float(b.max())
        check_magnitude(np.array([lo, hi]), what)
        self.lo, self.hi = min(self.lo, lo), max(self.hi, hi)
        self.finite += b.size
        if self.whole:
            self.whole = bool(np.all(b == np.round(b)))


def _scan_values(source: Source, what: str) -> _Values:
    if source.dtype.kind == "c":
        raise DataError(f"{what} holds complex numbers; use real data")
    if source.dtype.kind not in "biuf":
        raise DataError(f"{what} must be numeric, got dtype {source.dtype}")
    if source.n == 0:
        raise DataError(f"{what} is empty (0 examples)")
    if 0 in source.event_shape:
        raise DataError(f"{what} has no features: examples of shape {source.event_shape}")
    values = _Values()
    for _, batch in source.batches():
        values.update(np.asarray(batch), what)
    return values


def infer_source_spec(
    source: Source,
    kind: str | None = None,
    *,
    image_shape: tuple[int, ...] | None = None,
    byte_images: bool = False,
    what: str = "the data",
) -> DataSpec:
    """The spec of ``source`` from one pass over its batches, by the rules that
    :func:`~ptheta.data.arrays.from_arrays` applies to the same values in memory: 0/1
    values are binary, non-negative integers below 256 categorical(max + 1) (256 levels
    for 8-bit images), anything else continuous; ``kind`` overrides; infinite values,
    NaN in discrete data, and values outside a declared kind's levels are refused.

    Example:
        >>> from ptheta.data.stream import ArraySource
        >>> infer_source_spec(ArraySource(np.array([[0, 3], [2, 1]]))).describe()
        'categorical(4) (2,)'
    """
    if kind is not None:
        parse_kind(kind)  # a bad kind fails before the data are read
    v = _scan_values(source, what)
    event_shape = tuple(source.event_shape)
    if kind is not None:
        name, k = parse_kind(kind)
        if name == "table":
            raise DataError(
                "kind='table' reads a CSV or Parquet file column by column; "
                f"{what} has no columns to type"
            )
        if name == "categorical" and k is None:
            k = int(v.hi) + 1 if v.finite else 2
        spec = DataSpec(name, event_shape, k)
    elif v.finite and v.whole and v.lo >= 0 and v.hi <= 1:
        spec = DataSpec("binary", event_shape)
    elif v.finite and v.whole and v.lo >= 0 and v.hi < MAX_INFERRED_CATEGORIES:
        spec = DataSpec("categorical", event_shape, int(v.hi) + 1)
    else:
        spec = DataSpec("continuous", event_shape)
    image_shape = image_shape or _guess_image_shape(spec.event_shape)
    n_categories = spec.n_categories
    eight_bit = byte_images or (source.dtype == np.uint8 and image_shape is not None)
    if kind is None and spec.kind == "categorical" and eight_bit:
        n_categories = 256  # 8-bit pixels live on 0..255 whatever the brightest one here is
    spec = DataSpec(spec.kind, event_shape, n_categories, image_shape)
    if spec.is_discrete:
        if not v.whole:  # NaN: missing values, for the families that take them
            raise DataError(
                f"{what} has non-integer values, so it cannot be {spec.describe()} data; load "
                "it with kind='continuous'"
            )
        if v.lo < 0 or v.hi > spec.n_categories - 1:
            if v.lo < 0:
                hint = "shift it to start at 0, or load it with kind='continuous'"
            elif spec.kind == "binary":
                hint = "binarise it first, or load it with kind='categorical'"
            else:
                hint = f"load it with kind='categorical:{int(v.hi) + 1}'"
            raise DataError(
                f"{what} has values in [{v.lo:g}, {v.hi:g}], outside 0..{spec.n_categories - 1} "
                f"of {spec.describe()} data; {hint}"
            )
    return spec


# --------------------------------------------------------------------- opening, splitting
def _check_options(path: Path, *, label_column: Any, image_size: Any, grayscale: Any,
                   schema: Any, kind: str | None) -> None:  # fmt: skip
    """The options that apply to what ``path`` is, as the in-memory loader checks them."""
    is_dir = path.is_dir()
    table = not is_dir and path.suffix.lower() in (".csv", ".parquet")
    images = is_dir and not is_shard_folder(path)
    if (image_size is not None or grayscale is not None) and not images:
        raise DataError("image_size and grayscale apply to image folders only")
    if label_column is not None and not table:
        raise DataError(
            "label_column applies to CSV files only (or Parquet files); an .npz file keeps its "
            "labels under 'y', an image folder in class sub-folders"
        )
    if (schema is not None or kind == "table") and not table:
        raise DataError(
            "a table (kind='table', a schema) is read from a CSV or Parquet file, column by "
            f"column; {path.name} is not one"
        )


def open_source(
    path: str | os.PathLike,
    *,
    kind: str | None = None,
    label_column: str | None = None,
    image_size: int | Sequence[int] | None = None,
    grayscale: bool | None = None,
    schema: Any = None,
) -> Source:
    """Open ``path`` to be read a batch at a time, with its spec (``source.spec``) inferred
    by one pass over its batches, its labels as codes 0..K−1 (``source.y``) and their
    names (``source.classes``).

    What is read (see `STREAMED`): a ``.npy`` file (memory-mapped), an ``.npz`` file or a
    folder of ``.npy`` / ``.npz`` shards (`ShardSource`), a folder of images
    (`ImageFolderSource`), a ``.csv`` or ``.parquet`` file (`TableSource`): numeric columns
    as numbers, and a table of typed columns when a column is not numeric or when asked
    (``kind="table"``, ``schema``). The spec, labels and values are those the in-memory
    loader gives the same file (:func:`ptheta.data.load` with ``stream=False``).

    Arguments:
        path: the file or folder.
        kind: read the data as ``binary``, ``categorical``, ``categorical:K``,
            ``continuous`` or (a table file) ``table`` instead of the inferred kind.
        label_column: the column of a CSV or Parquet file holding the labels.
        image_size, grayscale: how to read an image folder (see `ImageFolderSource`).
        schema: a table's column types overriding the inferred ones (a JSON file, or
            columns; see :func:`ptheta.data.table.read_schema`).

    Example:
        >>> import numpy as np, tempfile, os
        >>> path = os.path.join(tempfile.mkdtemp(), "x.npy")
        >>> np.save(path, np.arange(12, dtype=np.uint8).reshape(6, 2) % 5)
        >>> s = open_source(path)
        >>> type(s).__name__, s.spec.describe()
        ('NpySource', 'categorical(5) (2,)')
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise DataError(f"no such file or folder: {path}")
    _check_options(path, label_column=label_column, image_size=image_size,
                   grayscale=grayscale, schema=schema, kind=kind)  # fmt: skip
    what = repr(path.name or str(path))
    suffix = path.suffix.lower()
    classes = None
    if path.is_dir():
        if is_shard_folder(path):
            images = [p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES]
            if images:
                raise DataError(
                    f"{path} holds both .npy/.npz shards and images ({images[0].name}); keep "
                    "one kind of file in a folder"
                )
            source: Source = ShardSource(path)
            spec = infer_source_spec(source, kind, what=what)
        else:
            source = ImageFolderSource(path, image_size, grayscale)
            classes = source.classes
            spec = infer_source_spec(source, kind, image_shape=source.event_shape,
                                     byte_images=source.depth == BYTE, what=what)  # fmt: skip
    elif suffix in (".npy", ".npz"):
        if path.stat().st_size == 0:
            raise DataError(f"{path} is empty (0 bytes)")
        source = NpySource(path) if suffix == ".npy" else ShardSource(path)
        spec = infer_source_spec(source, kind, what=what)
    elif suffix in (".csv", ".parquet"):
        if path.stat().st_size == 0:
            raise DataError(f"{path} is empty (0 bytes)")
        source, spec = _open_table(path, kind=kind, label_column=label_column, schema=schema,
                                   what=what)  # fmt: skip
    else:
        raise DataError(
            f"cannot read {path} in batches: {suffix or 'a file without a suffix'} is not one "
            f"of {STREAMED}; load it with stream=False"
        )
    if source.y is not None and classes is None:
        (codes,), classes = _encode_labels([np.asarray(source.y)])
        source.y = codes
    source.spec, source.classes = spec, classes
    return source


def _open_table(
    path: Path, *, kind: str | None, label_column: str | None, schema: Any, what: str
) -> tuple[TableSource, DataSpec]:
    """A CSV or Parquet file as numbers (every feature column numeric, and no table asked
    for) or as a table of typed columns (as the in-memory loader decides), with its spec."""
    source = TableSource(path, label_column=label_column)
    as_table = kind == "table" or schema is not None or (kind is None and source.text_columns())
    if not as_table:
        try:
            return source, infer_source_spec(source, kind, what=what)
        except NotNumeric:
            if kind is not None:  # numbers were asked for
                raise
    columns = _table_columns(source, schema)  # a column of text: a table, as in memory
    return source.with_columns(columns), DataSpec("table", (len(columns),), columns=columns)


def split_source(
    source: Source,
    *,
    seed: int = 0,
    name: str | None = None,
    extra: dict[str, Any] | None = None,
) -> Dataset:
    """A `Dataset` whose train / val / test splits are `Subset` views of ``source``: the
    examples of :func:`~ptheta.data.arrays.split_indices` (the shuffle with ``seed``, cut
    80 / 10 / 10, as for a file read in memory), each split in the source's order so that
    its batches read the file in order. Nothing is read.

    Example:
        >>> from ptheta.data.stream import ArraySource
        >>> from ptheta.data.spec import infer_spec
        >>> x = np.arange(20)[:, None] % 2
        >>> data = split_source(ArraySource(x, spec=infer_spec(x)), name="bits")
        >>> [len(data.split(s)) for s in ("train", "val", "test")], data.train.x.index[:4].tolist()
        ([16, 2, 2], [0, 2, 3, 4])
    """
    if source.spec is None:
        raise DataError(
            "this source has no spec yet: open it with ptheta.data.open_source (which reads "
            "it once to infer the kind), or give it a DataSpec"
        )
    parts = split_indices(len(source), seed)
    splits = {}
    for s, index in zip(SPLIT_NAMES, parts, strict=True):
        view = source.subset(np.sort(index))
        splits[s] = Split(view, view.y, source.spec)
    return Dataset(
        name=name or type(source).__name__,
        spec=source.spec,
        classes=getattr(source, "classes", None),
        extra={"seed": seed, "stream": True, **(extra or {})},
        **splits,
    )


# --------------------------------------------------------------------- load's choice
def memory_bytes(path: str | os.PathLike) -> int | None:
    """The bytes the data at ``path`` take in memory once read (int64 / float64 values),
    from headers and metadata only; None where the file is not read in batches (text,
    variable-length sequences, pre-split arrays) or cannot be sized."""
    path = Path(path)
    try:
        if path.is_dir():
            if is_shard_folder(path):
                return sum(8 * s.n * math.prod(s.event_shape) for s in ShardSource(path).shards)
            from PIL import Image

            files, _, _ = list_image_files(path)
            with Image.open(files[0]) as img:
                per_image = _channels_of(img.mode) * img.size[0] * img.size[1]
            return 8 * per_image * len(files)
        suffix = path.suffix.lower()
        if suffix == ".npy":
            with open(path, "rb") as f:
                shape, _, _ = _npy_layout(f)
            return 8 * math.prod(shape)
        if suffix == ".npz":
            return sum(8 * s.n * math.prod(s.event_shape) for s in ShardSource(path).shards)
        if suffix == ".parquet":
            import pyarrow.parquet as pq

            meta = pq.ParquetFile(path).metadata
            return 8 * meta.num_rows * meta.num_columns
        if suffix == ".csv":
            with open(path, "rb") as f:
                head = f.read(1 << 16).decode("utf-8", "replace").lower()
            names = next((line for line in head.splitlines() if line.strip()), "")
            if any(c in names for c in SEQUENCE_ID_COLUMNS):
                return None
            return path.stat().st_size
    except (DataError, OSError, ValueError, IndexError):
        return None
    return None


def should_stream(path: str | os.PathLike) -> bool:
    """Whether `ptheta.data.load` streams ``path`` when not told: a folder of shards
    always, and data that would take more than `STREAM_BYTES` in memory."""
    if is_shard_folder(path):
        return True
    size = memory_bytes(path)
    return size is not None and size > STREAM_BYTES


def load_stream(
    path: str | os.PathLike,
    *,
    stream: bool = True,
    kind: str | None = None,
    label_column: str | None = None,
    image_size: int | Sequence[int] | None = None,
    grayscale: bool | None = None,
    seed: int = 0,
    schema: Any = None,
) -> Dataset:
    """``path`` read a batch at a time (`open_source`) and split by index
    (`split_source`); with ``stream=False`` a folder of shards read whole into memory."""
    path = Path(path).expanduser()
    _check_options(path, label_column=label_column, image_size=image_size,
                   grayscale=grayscale, schema=schema, kind=kind)  # fmt: skip
    fmt = "shards" if path.is_dir() and is_shard_folder(path) else None
    if not stream:  # a folder of shards, read whole
        source = ShardSource(path)
        return from_arrays(np.asarray(source), source.y, name=path.name, kind=kind, seed=seed,
                           extra={"path": str(path), "format": "shards"})  # fmt: skip
    source = open_source(path, kind=kind, label_column=label_column, image_size=image_size,
                         grayscale=grayscale, schema=schema)  # fmt: skip
    extra: dict[str, Any] = {"path": str(path)}
    if isinstance(source, ImageFolderSource):
        extra.update(format="images", pixel_depth=source.depth)
    else:
        extra["format"] = fmt or path.suffix.lower().lstrip(".")
    return split_source(source, seed=seed, name=path.name or str(path), extra=extra)
