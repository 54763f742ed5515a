"""Image folders keep each file's real pixel values: black and white, 16-bit, 32-bit, float."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ptheta import data
from ptheta.errors import DataError


def _all_x(d: data.Dataset) -> np.ndarray:
    return np.concatenate([d.train.x, d.val.x, d.test.x])


def _sorted_rows(x: np.ndarray) -> list:
    return sorted(map(tuple, x.reshape(len(x), -1).tolist()))


def _save(folder: Path, arrays: list[np.ndarray], suffix: str = ".png", mode=None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, a in enumerate(arrays):
        img = Image.fromarray(a) if mode is None else Image.fromarray(a).convert(mode)
        img.save(folder / f"im{i}{suffix}")
    return folder


def _mode_of(path: Path) -> str:
    with Image.open(path) as img:
        return img.mode


# --------------------------------------------------------------------------- black and white
def _bw(i: int) -> np.ndarray:
    """A distinct (3, 4) black-and-white pattern."""
    return ((np.arange(12).reshape(3, 4) + i) % 3 == 0).astype(bool)


def test_black_and_white_images_load_as_binary_0_1(tmp_path):
    patterns = [_bw(i) for i in range(4)]
    folder = _save(tmp_path / "bw", patterns)
    assert _mode_of(folder / "im0.png") == "1"
    d = data.load(folder)
    assert d.kind == "binary" and d.event_shape == (1, 3, 4)
    assert _sorted_rows(_all_x(d)) == _sorted_rows(np.stack(patterns).astype(np.int64))
    assert d.extra["pixel_depth"] == "1-bit"
    # before: 0/255 categorical(256), and declaring binary was refused
    assert data.load(folder, kind="binary").kind == "binary"


def test_black_and_white_resized_stays_0_1(tmp_path):
    folder = _save(tmp_path / "bw", [_bw(i) for i in range(4)])
    d = data.load(folder, image_size=(5, 7))
    assert d.kind == "binary" and d.event_shape == (1, 5, 7)
    assert set(np.unique(_all_x(d))) <= {0, 1}


def test_black_and_white_among_gray_images_are_0_and_255(tmp_path):
    folder = tmp_path / "mixed"
    _save(folder, [_bw(0)])
    Image.fromarray(np.full((3, 4), 7, dtype=np.uint8)).save(folder / "gray1.png")
    Image.fromarray(np.full((3, 4), 9, dtype=np.uint8)).save(folder / "gray2.png")
    d = data.load(folder)
    assert d.kind == "categorical" and d.n_categories == 256
    rows = _sorted_rows(_all_x(d))
    assert (_bw(0).astype(np.int64) * 255).reshape(-1).tolist() in [list(r) for r in rows]
    assert set(np.unique(_all_x(d))) == {0, 7, 9, 255}


# --------------------------------------------------------------------------- 16-bit, 32-bit, float
def test_16_bit_images_keep_their_values(tmp_path):
    # 12 levels from 0 to 60500: convert("L") used to clip all but the first to 255
    images = [(np.arange(12).reshape(3, 4) * 5500 + i).astype(np.uint16) for i in range(4)]
    for suffix in (".png", ".tif"):
        folder = _save(tmp_path / suffix[1:], images, suffix)
        assert _mode_of(folder / f"im0{suffix}") == "I;16"
        d = data.load(folder)
        x = _all_x(d)
        assert x.max() == 60503
        assert _sorted_rows(x) == _sorted_rows(np.stack(images))
        assert d.kind == "continuous"  # more than 256 levels: float64 values
        assert d.extra["pixel_depth"] == "16/32-bit integer"


def test_16_bit_images_with_few_levels_are_categorical(tmp_path):
    # values 0..299 would be clipped to 255 by an 8-bit read; here 0..20
    images = [(np.arange(12).reshape(3, 4) + i * 3).astype(np.uint16) for i in range(4)]
    d = data.load(_save(tmp_path / "few", images))
    assert d.kind == "categorical" and d.n_categories == 21  # inferred as for an array
    big = [(np.arange(12).reshape(3, 4) * 25 + i).astype(np.uint16) for i in range(4)]
    d = data.load(_save(tmp_path / "big", big), kind="categorical")
    assert d.n_categories == 279  # 11 * 25 + 3 + 1, not clipped to 256


def test_16_bit_images_resized_keep_their_scale(tmp_path):
    images = [np.full((4, 4), 40000 + i, dtype=np.uint16) for i in range(3)]
    d = data.load(_save(tmp_path / "r", images), image_size=2)
    assert d.event_shape == (1, 2, 2)
    assert set(np.unique(_all_x(d))) == {40000, 40001, 40002}


def test_32_bit_integer_images_keep_negative_and_large_values(tmp_path):
    images = [(np.arange(6).reshape(2, 3) * 100000 - 5 + i).astype(np.int32) for i in range(3)]
    folder = _save(tmp_path / "i32", images, ".tif")
    assert _mode_of(folder / "im0.tif") == "I"
    d = data.load(folder)
    assert d.kind == "continuous"
    assert _sorted_rows(_all_x(d)) == _sorted_rows(np.stack(images).astype(np.int64))


def test_float_images_keep_their_values(tmp_path):
    images = [np.linspace(-1, 2, 12, dtype=np.float32).reshape(3, 4) + i for i in range(3)]
    folder = _save(tmp_path / "f", images, ".tiff")
    assert _mode_of(folder / "im0.tiff") == "F"
    d = data.load(folder)
    x = _all_x(d)
    assert d.kind == "continuous" and x.dtype == np.float64
    np.testing.assert_array_equal(
        np.sort(x.reshape(-1)), np.sort(np.stack(images).astype(np.float64).reshape(-1))
    )


# --------------------------------------------------------------------------- mixed depths
def test_mixed_depths_are_refused_naming_the_files_and_modes(tmp_path):
    folder = tmp_path / "mix"
    _save(folder, [np.full((3, 4), 9, dtype=np.uint8)] * 2)
    Image.fromarray(np.full((3, 4), 40000, dtype=np.uint16)).save(folder / "deep.png")
    with pytest.raises(DataError, match="mix pixel depths") as info:
        data.load(folder)
    message = str(info.value)
    assert "deep.png is 16/32-bit integer (mode I;16)" in message
    assert "im0.png is 8-bit (mode L)" in message
    assert "convert them to one depth" in message

    floats = tmp_path / "int-and-float"
    _save(floats, [np.full((3, 4), 1.5, dtype=np.float32)] * 2, ".tif")
    Image.fromarray(np.full((3, 4), 3, dtype=np.uint16)).save(floats / "int.tif")
    with pytest.raises(DataError, match=r"32-bit float \(mode F\)"):
        data.load(floats)

    bw_and_deep = tmp_path / "bw-and-16"
    _save(bw_and_deep, [_bw(0), _bw(1)])
    Image.fromarray(np.full((3, 4), 3, dtype=np.uint16)).save(bw_and_deep / "int.png")
    with pytest.raises(DataError, match=r"1-bit \(mode 1\)"):
        data.load(bw_and_deep)


def test_8_bit_modes_still_load_as_before(tmp_path):
    # palette and RGBA files are 8-bit too: they mix with gray images as 0..255 values
    folder = tmp_path / "eight"
    _save(folder, [np.full((3, 4), 50, dtype=np.uint8)])
    Image.fromarray(np.full((3, 4), 60, dtype=np.uint8)).convert("P").save(folder / "p.png")
    rgba = np.dstack([np.full((3, 4), 70, dtype=np.uint8)] * 3 + [np.full((3, 4), 255, np.uint8)])
    Image.fromarray(rgba, mode="RGBA").save(folder / "rgba.png")
    d = data.load(folder)
    assert d.kind == "categorical" and d.n_categories == 256 and d.event_shape == (1, 3, 4)
    assert set(np.unique(_all_x(d))) == {50, 60, 70}
    assert d.extra["pixel_depth"] == "8-bit"
