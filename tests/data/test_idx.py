"""Tests of the standard image file formats: IDX, CIFAR-10 binary batches, .amat files."""

from __future__ import annotations

import gzip
import struct
import time

import numpy as np
import pytest

from ptheta.data import idx
from ptheta.errors import DataError


def _idx_bytes(code: int, shape: tuple[int, ...], payload: bytes) -> bytes:
    """An IDX file written by hand from the format's definition (not by write_idx)."""
    return bytes([0, 0, code, len(shape)]) + struct.pack(f">{len(shape)}i", *shape) + payload


# --------------------------------------------------------------------------- IDX
def test_read_idx_follows_the_format_byte_by_byte(tmp_path):
    # 2 x 3 big-endian int16: the reader must swap bytes and keep C order.
    values = [1, -2, 300, 4, 5, -32768]
    path = tmp_path / "a.idx"
    path.write_bytes(_idx_bytes(0x0B, (2, 3), struct.pack(">6h", *values)))
    a = idx.read_idx(path)
    assert a.dtype == np.int16 and a.dtype.isnative
    np.testing.assert_array_equal(a, np.array(values).reshape(2, 3))
    # MNIST labels: unsigned bytes, one dimension
    path.write_bytes(_idx_bytes(0x08, (4,), bytes([0, 9, 255, 7])))
    np.testing.assert_array_equal(idx.read_idx(path), [0, 9, 255, 7])


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
@pytest.mark.parametrize("name", ["x-idx3-ubyte", "x-idx3-ubyte.gz"])
def test_idx_round_trip(tmp_path, dtype, name):
    rng = np.random.default_rng(0)
    a = (rng.normal(size=(3, 4, 5)) * 50).astype(dtype)
    idx.write_idx(tmp_path / name, a)
    assert (tmp_path / name).read_bytes()[:2] == (b"\x1f\x8b" if name.endswith(".gz") else b"\0\0")
    b = idx.read_idx(tmp_path / name)
    assert b.dtype == a.dtype and b.shape == a.shape
    np.testing.assert_array_equal(a, b)


def test_gzip_is_recognised_by_content_not_name(tmp_path):
    blob = _idx_bytes(0x08, (2, 2), bytes([1, 2, 3, 4]))
    (tmp_path / "plain.gz").write_bytes(blob)  # not compressed despite its name
    (tmp_path / "packed").write_bytes(gzip.compress(blob))  # compressed without .gz
    for name in ("plain.gz", "packed"):
        np.testing.assert_array_equal(idx.read_idx(tmp_path / name), [[1, 2], [3, 4]])


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize(
    ("blob", "message"),
    [
        (b"\x00\x00\x08", "truncated"),  # shorter than a magic number
        (b"\x01\x00\x08\x01" + struct.pack(">i", 2) + b"ab", "not an IDX file"),
        (b"\x00\x00\x07\x01" + struct.pack(">i", 2) + b"ab", "not an IDX file"),
        (b"\x00\x00\x08\x00", "0 dimensions"),
        (b"\x00\x00\x08\x02" + struct.pack(">i", 2), "truncated"),  # a dimension missing
        (b"\x00\x00\x08\x01" + struct.pack(">i", -3), "negative"),
        (b"\x00\x00\x08\x02" + struct.pack(">2i", 2, 3) + bytes(5), "promises|truncated"),
        (b"\x00\x00\x08\x01" + struct.pack(">i", 2) + bytes(3), "more bytes|promises"),
    ],
)
def test_corrupted_idx_files_are_one_clear_error(tmp_path, blob, message, gz):
    path = tmp_path / "bad"
    path.write_bytes(gzip.compress(blob) if gz else blob)
    with pytest.raises(DataError, match=message):
        idx.read_idx(path)


@pytest.mark.parametrize("gz", [False, True])
def test_a_huge_header_fails_without_allocating_it(tmp_path, gz):
    # The header claims 2**31-1 x 2**31-1 x 4 float64: far beyond any memory.
    blob = _idx_bytes(0x0E, (2**31 - 1, 2**31 - 1, 4), bytes(80))
    path = tmp_path / "huge"
    path.write_bytes(gzip.compress(blob) if gz else blob)
    start = time.perf_counter()
    with pytest.raises(DataError, match=r"truncated|promises"):
        idx.read_idx(path)
    assert time.perf_counter() - start < 2


def test_a_broken_gzip_stream_is_a_data_error(tmp_path):
    packed = gzip.compress(_idx_bytes(0x08, (100,), bytes(range(100))))
    path = tmp_path / "cut.gz"
    path.write_bytes(packed[: len(packed) // 2])
    with pytest.raises(DataError, match="IDX file"):
        idx.read_idx(path)


def test_write_idx_refuses_what_idx_cannot_hold(tmp_path):
    with pytest.raises(DataError, match="uint8"):
        idx.write_idx(tmp_path / "a", np.zeros(3, np.int64))
    with pytest.raises(DataError, match="shape"):
        idx.write_idx(tmp_path / "a", np.zeros((), np.uint8))


def test_missing_file_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="could not open"):
        idx.read_idx(tmp_path / "nothing")


# --------------------------------------------------------------------------- CIFAR-10
def test_cifar_batch_follows_the_published_record_layout(tmp_path):
    # Two records written by hand: a label byte, then the red plane, green, blue (row by row).
    rng = np.random.default_rng(1)
    planes = rng.integers(0, 256, (2, 3, 32, 32), dtype=np.uint8)
    blob = b"".join(bytes([label]) + planes[i].tobytes() for i, label in enumerate((7, 0)))
    path = tmp_path / "data_batch_1.bin"
    path.write_bytes(blob)
    x, y = idx.read_cifar_batch(path)
    assert x.shape == (2, 3, 32, 32) and x.dtype == np.uint8
    assert y.tolist() == [7, 0]
    np.testing.assert_array_equal(x, planes)
    # the pixel at channel 1 (green), row 2, column 5 of image 1 is at this byte offset
    assert x[1, 1, 2, 5] == blob[3073 + 1 + 1024 + 2 * 32 + 5]


@pytest.mark.parametrize("gz", [False, True])
def test_cifar_round_trip(tmp_path, gz):
    rng = np.random.default_rng(2)
    images = rng.integers(0, 256, (5, 3, 32, 32), dtype=np.uint8)
    labels = rng.integers(0, 10, 5)
    path = tmp_path / "test_batch.bin"
    idx.write_cifar_batch(path, images, labels)
    if gz:
        path.write_bytes(gzip.compress(path.read_bytes()))
    x, y = idx.read_cifar_batch(path)
    np.testing.assert_array_equal(x, images)
    np.testing.assert_array_equal(y, labels)


def test_cifar_batch_of_the_wrong_size_or_labels_is_refused(tmp_path):
    path = tmp_path / "data_batch_1.bin"
    path.write_bytes(bytes(3073 * 2 - 1))
    with pytest.raises(DataError, match="whole number of 3073-byte records"):
        idx.read_cifar_batch(path)
    path.write_bytes(b"")
    with pytest.raises(DataError, match="0 bytes"):
        idx.read_cifar_batch(path)
    path.write_bytes(bytes(3073) + bytes([10]) + bytes(3072))
    with pytest.raises(DataError, match="record 1 has label 10"):
        idx.read_cifar_batch(path)


def test_write_cifar_batch_checks_its_input(tmp_path):
    with pytest.raises(DataError, match="3, 32, 32"):
        idx.write_cifar_batch(tmp_path / "b", np.zeros((1, 32, 32, 3)), [0])
    with pytest.raises(DataError, match=r"0\.\.9"):
        idx.write_cifar_batch(tmp_path / "b", np.zeros((1, 3, 32, 32)), [10])


# --------------------------------------------------------------------------- .amat
def test_amat_round_trip_and_published_layout(tmp_path):
    rng = np.random.default_rng(3)
    images = rng.integers(0, 2, (4, 784), dtype=np.uint8)
    path = tmp_path / "binarized_mnist_test.amat"
    idx.write_amat(path, images)
    text = path.read_text()
    # one image a line, values separated by single spaces: 784 * 2 bytes a line
    assert len(text) == 4 * 784 * 2 and text.count("\n") == 4
    np.testing.assert_array_equal(idx.read_amat(path), images)
    # written by hand, with Windows line ends and a trailing blank line
    path.write_text("\r\n".join(" ".join(map(str, row)) for row in images) + "\r\n\r\n")
    np.testing.assert_array_equal(idx.read_amat(path), images)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("0 " * 783 + "2", "character '2' on line 2"),
        ("0 " * 783, "783 values on its image 2"),
        ("0 " * 782 + "01", "value other than 0 or 1 on line 2"),
        ("0.5 " + "0 " * 783, r"character '\.'"),
    ],
)
def test_malformed_amat_lines_are_one_clear_error(tmp_path, line, message):
    good = " ".join(["1"] * 784)
    path = tmp_path / "binarized_mnist_train.amat"
    path.write_text(f"{good}\n{line}\n")
    with pytest.raises(DataError, match=message):
        idx.read_amat(path)


def test_empty_amat_is_refused(tmp_path):
    (tmp_path / "e.amat").write_text("\n")
    with pytest.raises(DataError, match="no images"):
        idx.read_amat(tmp_path / "e.amat")
