"""The file formats standard image sets ship in: IDX (MNIST, Fashion-MNIST), CIFAR-10's
binary batches and the text ``.amat`` files of binarised MNIST; readers and writers.

Every reader checks a file against what its header or format promises (sizes, value
ranges, the bytes left over) and raises one `DataError` naming the file and the problem;
nothing is unpickled, and a corrupted header cannot make a reader allocate more memory
than the file holds. Gzip-compressed files are recognised by their first bytes, whatever
their names.
"""

from __future__ import annotations

import gzip
import io
import math
import os
from pathlib import Path
from typing import BinaryIO

import numpy as np

from ptheta.errors import DataError

# IDX type codes (third byte of the magic number) -> big-endian numpy dtype.
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
GZIP_MAGIC = b"\x1f\x8b"

# CIFAR-10 binary batches: each record is one label byte then 3 x 32 x 32 pixels (the red
# plane, then green, then blue, each row by row).
CIFAR_IMAGE_SHAPE = (3, 32, 32)
CIFAR_RECORD = 1 + math.prod(CIFAR_IMAGE_SHAPE)
CIFAR_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)

# Binarised MNIST's .amat files: one image a line, 784 values 0 or 1 separated by spaces.
AMAT_WIDTH = 784

# Compressed streams are read in pieces of this many bytes, so a header that claims more
# data than the stream holds fails at the end of the stream, not in one huge allocation.
_CHUNK = 1 << 24


def _open(path: Path) -> BinaryIO:
    """`path` opened for reading bytes, decompressed when it starts like a gzip file."""
    try:
        f: BinaryIO = open(path, "rb")  # noqa: SIM115
    except OSError as e:
        raise DataError(f"could not open {path}: {e.strerror or e}") from None
    if f.read(2) == GZIP_MAGIC:
        f.seek(0)
        return gzip.GzipFile(fileobj=f, mode="rb")  # type: ignore[return-value]
    f.seek(0)
    return f


def _read_exactly(f: BinaryIO, n: int, what: str) -> bytes:
    """Read `n` bytes, in pieces, or fail saying how many there were."""
    out = io.BytesIO()
    left = n
    try:
        while left:
            piece = f.read(min(left, _CHUNK))
            if not piece:
                break
            out.write(piece)
            left -= len(piece)
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise DataError(f"{what} is corrupted: {e}") from None
    if left:
        raise DataError(
            f"{what} is truncated: its header promises {n} bytes of data, it holds {n - left}"
        )
    return out.getvalue()


def _check_end(f: BinaryIO, what: str) -> None:
    try:
        rest = f.read(1)
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise DataError(f"{what} is corrupted: {e}") from None
    if rest:
        raise DataError(
            f"{what} holds more bytes than its header promises: it is not one IDX array "
            "(a wrong or corrupted file)"
        )


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (gzip-compressed or not) as a numpy array in native byte order.

    The format (LeCun et al.): a magic number of two zero bytes, a type code (0x08
    unsigned byte, 0x09 signed byte, 0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64)
    and the number of dimensions; one big-endian int32 per dimension; then the values,
    big-endian, in C order.

    Raises:
        DataError: the file is not IDX (bad magic number, unknown type), or holds fewer
            or more bytes than its header says.

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "x-idx3-ubyte.gz"
        >>> write_idx(path, np.arange(6, dtype=np.uint8).reshape(1, 2, 3))
        >>> read_idx(path)
        array([[[0, 1, 2],
                [3, 4, 5]]], dtype=uint8)
    """
    path = Path(path)
    what = f"the IDX file {path}"
    with _open(path) as f:
        dtype, shape = _read_header(f, what)
        size = math.prod(shape) * dtype.itemsize
        if not isinstance(f, gzip.GzipFile):
            stored = os.fstat(f.fileno()).st_size - (4 + 4 * len(shape))
            if stored != size:
                raise DataError(
                    f"{what} has {stored} bytes of data but its header promises "
                    f"{size} (shape {shape} of {dtype.name}): a truncated or wrong file"
                )
        data = _read_exactly(f, size, what)
        _check_end(f, what)
    return np.frombuffer(data, dtype).reshape(shape).astype(dtype.newbyteorder("="))


def _read_header(f: BinaryIO, what: str) -> tuple[np.dtype, tuple[int, ...]]:
    magic = _read_exactly(f, 4, what)
    if magic[:2] != b"\x00\x00" or magic[2] not in IDX_DTYPES:
        raise DataError(
            f"{what} is not an IDX file: its magic number is {magic.hex()} (expected 0000 "
            "then a type code 08, 09, 0b, 0c, 0d or 0e and the number of dimensions)"
        )
    ndim = magic[3]
    if ndim == 0:
        raise DataError(f"{what} has a corrupted header: 0 dimensions")
    shape = tuple(int(d) for d in np.frombuffer(_read_exactly(f, 4 * ndim, what), ">i4"))
    if any(d < 0 for d in shape):
        raise DataError(f"{what} has a corrupted header: negative dimensions {shape}")
    return IDX_DTYPES[magic[2]], shape


def write_idx(path: str | os.PathLike, array: np.ndarray, *, compress: bool | None = None) -> None:
    """Write `array` as an IDX file; gzip-compressed when `compress` is True, or (None)
    when the name ends in ``.gz``.

    Raises:
        DataError: the array's dtype has no IDX type code, or it has more than 255
            dimensions or one of 2**31 or more entries.
    """
    path = Path(path)
    array = np.asarray(array)
    codes = {dt.newbyteorder("="): code for code, dt in IDX_DTYPES.items()}
    code = codes.get(array.dtype.newbyteorder("="))
    if code is None:
        raise DataError(
            f"IDX stores uint8, int8, int16, int32, float32 or float64, not {array.dtype}"
        )
    if not 1 <= array.ndim <= 255 or any(d >= 2**31 for d in array.shape):
        raise DataError(f"an IDX file cannot hold an array of shape {array.shape}")
    big = np.ascontiguousarray(array, dtype=IDX_DTYPES[code])
    blob = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, ">i4").tobytes()
    blob += big.tobytes()
    if compress or (compress is None and path.suffix == ".gz"):
        blob = gzip.compress(blob, mtime=0)
    path.write_bytes(blob)


def read_cifar_batch(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read one batch of the CIFAR-10 *binary* version (``data_batch_1.bin`` ...
    ``test_batch.bin``; gzip-compressed or not) as images (N, 3, 32, 32) uint8 and labels
    (N,) uint8 in 0..9.

    Raises:
        DataError: the file's size is not a whole number of 3073-byte records, or a label
            is above 9.

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "test_batch.bin"
        >>> images = np.zeros((2, 3, 32, 32), np.uint8)
        >>> write_cifar_batch(path, images, np.array([3, 9]))
        >>> x, y = read_cifar_batch(path)
        >>> x.shape, y.tolist()
        ((2, 3, 32, 32), [3, 9])
    """
    path = Path(path)
    with _open(path) as f:
        try:
            data = f.read()
        except (OSError, EOFError, gzip.BadGzipFile) as e:
            raise DataError(f"the CIFAR-10 batch {path} is corrupted: {e}") from None
    return parse_cifar_batch(data, str(path))


def parse_cifar_batch(data: bytes, what: str) -> tuple[np.ndarray, np.ndarray]:
    """The images (N, 3, 32, 32) and labels (N,) of one CIFAR-10 binary batch's bytes."""
    if not data or len(data) % CIFAR_RECORD:
        raise DataError(
            f"the CIFAR-10 batch {what} has {len(data)} bytes, not a whole number of "
            f"{CIFAR_RECORD}-byte records (a label byte and 3 x 32 x 32 pixels): a truncated "
            "or wrong file; ptheta reads the binary version (data_batch_1.bin ...), never the "
            "pickled Python one"
        )
    records = np.frombuffer(data, np.uint8).reshape(-1, CIFAR_RECORD)
    y = records[:, 0].copy()
    if y.max() > 9:
        bad = int(np.argmax(y > 9))
        raise DataError(
            f"the CIFAR-10 batch {what} is corrupted: record {bad} has label {int(y[bad])} "
            "(labels are 0..9)"
        )
    return records[:, 1:].reshape(-1, *CIFAR_IMAGE_SHAPE).copy(), y


def write_cifar_batch(path: str | os.PathLike, images: np.ndarray, labels: np.ndarray) -> None:
    """Write images (N, 3, 32, 32) of values 0..255 and labels (N,) in 0..9 as one
    CIFAR-10 binary batch."""
    images, labels = np.asarray(images), np.asarray(labels)
    if images.ndim != 4 or images.shape[1:] != CIFAR_IMAGE_SHAPE or len(labels) != len(images):
        raise DataError(
            f"a CIFAR-10 batch holds images (N, 3, 32, 32) and N labels, got {images.shape} "
            f"and {labels.shape}"
        )
    if images.min(initial=0) < 0 or images.max(initial=0) > 255:
        raise DataError("CIFAR-10 pixels are 0..255")
    if labels.min(initial=0) < 0 or labels.max(initial=0) > 9:
        raise DataError("CIFAR-10 labels are 0..9")
    records = np.concatenate(
        [labels.astype(np.uint8)[:, None], images.reshape(len(images), -1).astype(np.uint8)],
        axis=1,
    )
    Path(path).write_bytes(records.tobytes())


def read_amat(path: str | os.PathLike) -> np.ndarray:
    """Read a ``.amat`` file of binarised MNIST (Larochelle & Murray, 2011; gzip-compressed
    or not): one image a line, 784 values 0 or 1 separated by spaces; (N, 784) uint8.

    Raises:
        DataError: a line has another number of values, or a value other than 0 and 1.

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "binarized_mnist_test.amat"
        >>> write_amat(path, np.eye(2, 784, dtype=np.uint8))
        >>> read_amat(path)[:, :3].tolist()
        [[1, 0, 0], [0, 1, 0]]
    """
    path = Path(path)
    what = f"the .amat file {path}"
    with _open(path) as f:
        try:
            data = f.read()
        except (OSError, EOFError, gzip.BadGzipFile) as e:
            raise DataError(f"{what} is corrupted: {e}") from None
    raw = np.frombuffer(data, np.uint8)
    is_value = (raw == ord("0")) | (raw == ord("1"))
    is_space = (raw == ord(" ")) | (raw == ord("\t")) | (raw == ord("\r")) | (raw == ord("\n"))
    if not (is_value | is_space).all():
        at = int(np.argmax(~(is_value | is_space)))
        line = int(np.count_nonzero(raw[:at] == ord("\n"))) + 1
        raise DataError(
            f"{what} has a character {chr(raw[at])!r} on line {line}: binarised MNIST holds "
            "only the values 0 and 1 separated by spaces"
        )
    # A value glued to another ("01") is one malformed number, not two values.
    if (is_value[1:] & is_value[:-1]).any():
        at = int(np.argmax(is_value[1:] & is_value[:-1]))
        line = int(np.count_nonzero(raw[:at] == ord("\n"))) + 1
        raise DataError(f"{what} has a value other than 0 or 1 on line {line}")
    # values per line, summed between line starts (no per-byte line index: the training
    # file is 78 MB)
    starts = np.concatenate([[0], np.flatnonzero(raw == ord("\n")) + 1])
    starts = starts[starts < len(raw)]
    counts = np.add.reduceat(is_value.view(np.uint8), starts, dtype=np.int64) if len(raw) else []
    lines = np.flatnonzero(np.asarray(counts) > 0)  # blank lines hold no image
    if len(lines) == 0:
        raise DataError(f"{what} holds no images")
    wrong = lines[counts[lines] != AMAT_WIDTH]
    if len(wrong):
        image = int(np.searchsorted(lines, wrong[0])) + 1
        raise DataError(
            f"{what} has {counts[wrong[0]]} values on its image {image} (line {wrong[0] + 1}); "
            f"every line of binarised MNIST holds {AMAT_WIDTH} (28 x 28)"
        )
    return (raw[is_value] - ord("0")).reshape(-1, AMAT_WIDTH)


def write_amat(path: str | os.PathLike, images: np.ndarray) -> None:
    """Write binary images (N, 784) as a ``.amat`` file, one image a line."""
    images = np.asarray(images)
    if images.ndim != 2 or images.shape[1] != AMAT_WIDTH or not np.isin(images, (0, 1)).all():
        raise DataError(f"an .amat file holds 0/1 images (N, {AMAT_WIDTH}), got {images.shape}")
    text = "".join(" ".join(map(str, row)) + "\n" for row in images.astype(int).tolist())
    Path(path).write_text(text)
