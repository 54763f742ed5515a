"""Tests of loading the user's own files: .npy, .npz, .csv and image folders."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import ptheta.data as data
from ptheta.errors import DataError


def _rows(x: np.ndarray) -> set[bytes]:
    return {np.ascontiguousarray(r).tobytes() for r in x}


def _all_x(d) -> np.ndarray:
    return np.concatenate([d.train.x, d.val.x, d.test.x])


# --- .npy -------------------------------------------------------------------------------


def test_npy_continuous_is_split_80_10_10_by_seed(tmp_path):
    x = np.random.default_rng(0).normal(size=(50, 3))
    np.save(tmp_path / "a.npy", x)
    d = data.load(tmp_path / "a.npy")
    assert d.kind == "continuous" and d.event_shape == (3,)
    assert (len(d.train), len(d.val), len(d.test)) == (40, 5, 5)
    assert d.train.y is None
    # The splits partition the rows: nothing lost, nothing repeated.
    assert _rows(_all_x(d)) == _rows(x) and len(_all_x(d)) == 50
    np.testing.assert_array_equal(d.test.x, data.load(str(tmp_path / "a.npy")).test.x)
    other = data.load(tmp_path / "a.npy", seed=1)
    assert not np.array_equal(d.test.x, other.test.x)
    assert d.fingerprint() != other.fingerprint()


def test_npy_kinds_are_inferred_over_all_splits(tmp_path):
    x = np.zeros((30, 4), dtype=np.int64)
    x[7, 2] = 9  # one large value, wherever the shuffle puts it
    np.save(tmp_path / "c.npy", x)
    d = data.load(tmp_path / "c.npy")
    assert d.kind == "categorical" and d.n_categories == 10
    assert d.train.x.dtype == np.int64
    np.save(tmp_path / "b.npy", np.eye(5, dtype=bool))
    assert data.load(tmp_path / "b.npy").kind == "binary"
    assert data.load(tmp_path / "b.npy", kind="categorical:3").n_categories == 3
    assert data.load(tmp_path / "c.npy", kind="continuous").train.x.dtype == np.float64


def test_npy_image_arrays_get_an_image_shape(tmp_path):
    np.save(tmp_path / "im.npy", np.zeros((10, 5, 6), dtype=np.uint8))
    d = data.load(tmp_path / "im.npy")
    assert d.event_shape == (5, 6) and d.spec.image_shape == (1, 5, 6)


def test_three_examples_is_the_minimum(tmp_path):
    np.save(tmp_path / "three.npy", np.arange(6.0).reshape(3, 2))
    d = data.load(tmp_path / "three.npy")
    assert (len(d.train), len(d.val), len(d.test)) == (1, 1, 1)
    np.save(tmp_path / "two.npy", np.arange(4.0).reshape(2, 2))
    with pytest.raises(DataError, match="at least 3 examples"):
        data.load(tmp_path / "two.npy")


def test_npy_bad_contents(tmp_path):
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match="never unpickles"):
        data.load(tmp_path / "obj.npy")
    np.save(tmp_path / "inf.npy", np.array([[1.0], [np.inf], [2.0], [3.0]]))
    with pytest.raises(DataError, match="infinite"):
        data.load(tmp_path / "inf.npy")
    np.save(tmp_path / "flat.npy", np.arange(10.0))
    with pytest.raises(DataError, match=r"X\[:, None\]"):
        data.load(tmp_path / "flat.npy")
    np.save(tmp_path / "text.npy", np.array([["a"], ["b"], ["c"]]))
    with pytest.raises(DataError, match="numeric"):
        data.load(tmp_path / "text.npy")
    (tmp_path / "junk.npy").write_bytes(b"this is not numpy")
    with pytest.raises(DataError, match=r"not a valid \.npy file"):
        data.load(tmp_path / "junk.npy")
    (tmp_path / "empty.npy").write_bytes(b"")
    with pytest.raises(DataError, match="empty"):
        data.load(tmp_path / "empty.npy")


def test_nan_is_kept_as_a_missing_value_in_continuous_and_discrete_data(tmp_path):
    x = np.random.default_rng(0).normal(size=(20, 2))
    x[3, 1] = np.nan
    np.save(tmp_path / "nan.npy", x)
    d = data.load(tmp_path / "nan.npy")
    assert d.kind == "continuous"
    assert np.isnan(_all_x(d)).sum() == 1
    ints = np.ones((20, 2))
    ints[4, 0] = np.nan
    np.save(tmp_path / "nanint.npy", ints)
    d = data.load(tmp_path / "nanint.npy")  # binary with one missing entry, kept as NaN
    assert d.kind == "binary" and np.isnan(_all_x(d)).sum() == 1
    assert np.nansum(_all_x(d)) == 39
    assert data.load(tmp_path / "nanint.npy", kind="continuous").kind == "continuous"
    with pytest.raises(DataError, match="non-integer"):  # observed values are still checked
        ints[5, 1] = 0.5
        np.save(tmp_path / "nanint.npy", ints)
        data.load(tmp_path / "nanint.npy", kind="binary")
    np.save(tmp_path / "allnan.npy", np.full((20, 2), np.nan))
    with pytest.raises(DataError, match="no observed value"):
        data.load(tmp_path / "allnan.npy", kind="binary")


# --- .npz -------------------------------------------------------------------------------


def test_npz_single_array_with_string_labels(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 2, size=(40, 6))
    y = np.array(["cat", "dog", "emu", "ant"] * 10)
    x[:, 0] = np.arange(40) % 4  # lets each row be matched with its label below
    x[:, 1] = np.arange(40) // 4
    np.savez(tmp_path / "a.npz", x=x, labels=y)
    d = data.load(tmp_path / "a.npz")
    assert d.classes == ["ant", "cat", "dog", "emu"]
    assert d.kind == "categorical" and d.n_categories == 10
    for split in (d.train, d.val, d.test):
        assert split.y.dtype == np.int64
        original = y[split.x[:, 1] * 4 + split.x[:, 0]]
        np.testing.assert_array_equal(np.array(d.classes)[split.y], original)


def test_npz_accepts_X_and_data_keys_and_a_lone_array(tmp_path):
    x = np.arange(30.0).reshape(10, 3) + 0.5
    for key in ("X", "data", "whatever"):
        np.savez(tmp_path / f"{key}.npz", **{key: x})
        d = data.load(tmp_path / f"{key}.npz")
        assert _rows(_all_x(d)) == _rows(x)


def test_npz_pre_split_is_used_as_given(tmp_path):
    rng = np.random.default_rng(0)
    parts = {s: rng.integers(0, 3, size=(n, 5)) for s, n in (("train", 7), ("val", 3), ("test", 4))}
    parts["test"][0, 0] = 4  # only the test split reaches level 4
    ys = {s: rng.integers(0, 2, size=len(v)) for s, v in parts.items()}
    np.savez(
        tmp_path / "s.npz",
        **{f"x_{s}": v for s, v in parts.items()},
        **{f"y_{s}": v for s, v in ys.items()},
    )
    d = data.load(tmp_path / "s.npz", seed=123)
    for s in ("train", "val", "test"):
        np.testing.assert_array_equal(d.split(s).x, parts[s])
        np.testing.assert_array_equal(d.split(s).y, ys[s])
    assert d.kind == "categorical" and d.n_categories == 5
    assert d.classes == ["0", "1"]


def test_npz_bad_layouts(tmp_path):
    np.savez(tmp_path / "half.npz", x_train=np.zeros((5, 2)), x_val=np.zeros((2, 2)))
    with pytest.raises(DataError, match="x_test"):
        data.load(tmp_path / "half.npz")
    np.savez(tmp_path / "keys.npz", foo=np.zeros((5, 2)), bar=np.zeros(5))
    with pytest.raises(DataError, match="expected the examples under 'x'"):
        data.load(tmp_path / "keys.npz")
    np.savez(tmp_path / "obj.npz", x=np.array([[1], None], dtype=object))
    with pytest.raises(DataError, match="never unpickles"):
        data.load(tmp_path / "obj.npz")
    np.savez(tmp_path / "short.npz", x=np.zeros((5, 2)), y=np.zeros(4))
    with pytest.raises(DataError, match="one label per example"):
        data.load(tmp_path / "short.npz")
    np.savez(
        tmp_path / "shapes.npz",
        x_train=np.zeros((5, 2)),
        x_val=np.zeros((2, 3)),
        x_test=np.zeros((2, 2)),
    )
    with pytest.raises(DataError, match="different shapes"):
        data.load(tmp_path / "shapes.npz")


# --- .csv -------------------------------------------------------------------------------


def _write_csv(path, text: str):
    path.write_text(text)
    return path


def test_csv_numeric_features_and_string_labels(tmp_path):
    lines = ["a,b,species"] + [f"{i},{i * 0.5},{'xy'[i % 2]}" for i in range(20)]
    p = _write_csv(tmp_path / "t.csv", "\n".join(lines) + "\n")
    d = data.load(p, label_column="species")
    assert d.kind == "continuous" and d.event_shape == (2,)
    assert d.classes == ["x", "y"]
    for split in (d.train, d.val, d.test):
        np.testing.assert_array_equal(split.x[:, 1], split.x[:, 0] * 0.5)
        np.testing.assert_array_equal(split.y, split.x[:, 0].astype(int) % 2)


def test_csv_without_labels_and_with_numeric_labels(tmp_path):
    lines = ["u;v;label"] + [f"{i % 3};{i % 2};{10 if i % 2 else 2}" for i in range(12)]
    p = _write_csv(tmp_path / "n.csv", "\n".join(lines))
    d = data.load(p)
    assert d.event_shape == (3,) and d.train.y is None
    assert d.kind == "categorical" and d.n_categories == 11
    d = data.load(p, label_column="label")
    assert d.event_shape == (2,) and d.kind == "categorical" and d.n_categories == 3
    assert d.classes == ["2", "10"]  # numeric labels sort as numbers


def test_csv_empty_cells_are_missing_values(tmp_path):
    p = _write_csv(tmp_path / "m.csv", "a,b\n1.5,2\n,3\n0.25,4\n2,5\n")
    d = data.load(p)
    assert d.kind == "continuous"
    assert np.isnan(_all_x(d)).sum() == 1


def test_csv_errors(tmp_path):
    p = _write_csv(tmp_path / "s.csv", "a,name\n1,x\n2,y\n3,z\n")
    assert data.load(p).kind == "table"  # a text column makes a table
    with pytest.raises(DataError, match=r"column 'name'.*label_column='name'"):
        data.load(p, kind="continuous")
    with pytest.raises(DataError, match="did you mean 'name'"):
        data.load(p, label_column="nmae")
    p = _write_csv(tmp_path / "h.csv", "1,2\n3,4\n5,6\n")
    with pytest.raises(DataError, match="header row"):
        data.load(p)
    p = _write_csv(tmp_path / "r.csv", "a,b\n1,2\n3\n5,6\n")
    with pytest.raises(DataError, match="row 3"):
        data.load(p)
    p = _write_csv(tmp_path / "o.csv", "a,b\n")
    with pytest.raises(DataError, match="no data rows"):
        data.load(p)
    p = _write_csv(tmp_path / "w.csv", "\n\n")
    with pytest.raises(DataError, match="empty"):
        data.load(p)
    p = _write_csv(tmp_path / "i.csv", "a,b\n1,inf\n3,4\n5,6\n")
    with pytest.raises(DataError, match="infinite"):
        data.load(p)
    p = _write_csv(tmp_path / "l.csv", "a,c\n1,x\n3,\n5,y\n")
    with pytest.raises(DataError, match="empty cells"):
        data.load(p, label_column="c")


# --- image folders ----------------------------------------------------------------------


def _gray(i: int, h: int = 4, w: int = 6) -> np.ndarray:
    """A distinct gray (h, w) image: pixel (r, c) = 40 i + 5 r + c."""
    return (40 * i + 5 * np.arange(h)[:, None] + np.arange(w)[None, :]).astype(np.uint8)


def test_flat_gray_folder(tmp_path):
    images = [_gray(i) for i in range(5)]
    for i, a in enumerate(images):
        Image.fromarray(a).save(tmp_path / f"im{i}.png")
    (tmp_path / "notes.txt").write_text("not an image")
    d = data.load(tmp_path)
    assert d.event_shape == (1, 4, 6) and d.spec.image_shape == (1, 4, 6)
    assert d.kind == "categorical" and d.n_categories == 256
    assert d.train.y is None and d.classes is None
    assert _rows(_all_x(d)) == _rows(np.stack(images)[:, None].astype(np.int64))


def test_class_subfolders_give_labels(tmp_path):
    for c, name in enumerate(["dog", "cat", "emu"]):
        (tmp_path / name).mkdir()
        for k in range(3):
            Image.fromarray(np.full((3, 3), 10 * c + k, dtype=np.uint8)).save(
                tmp_path / name / f"{k}.png"
            )
    d = data.load(tmp_path)
    assert d.classes == ["cat", "dog", "emu"]
    order = ["dog", "cat", "emu"]  # the pixel value's tens digit
    for split in (d.train, d.val, d.test):
        names = [order[v // 10] for v in split.x[:, 0, 0, 0]]
        assert [d.classes[i] for i in split.y] == names
    assert len(_all_x(d)) == 9


def test_rgb_and_grayscale_choices(tmp_path):
    rgb = np.zeros((4, 5, 3), dtype=np.uint8)
    rgb[..., 0] = 200  # red: not gray
    for i in range(3):
        Image.fromarray(rgb + i).save(tmp_path / f"c{i}.png")
    d = data.load(tmp_path)
    assert d.event_shape == (3, 4, 5)
    assert set(np.unique(d.train.x[:, 1])) <= {0, 1, 2}
    g = data.load(tmp_path, grayscale=True)
    assert g.event_shape == (1, 4, 5)
    # Luma 0.299 R + 0.587 G + 0.114 B of (200 + i, i, i) is 59.8 + i.
    assert set(np.unique(_all_x(g))) == {60, 61, 62}

    gray_as_rgb = tmp_path / "g"
    gray_as_rgb.mkdir()
    for i in range(3):
        Image.fromarray(np.repeat(_gray(i)[..., None], 3, axis=2)).save(gray_as_rgb / f"{i}.png")
    assert data.load(gray_as_rgb).event_shape == (1, 4, 6)
    assert data.load(gray_as_rgb, grayscale=False).event_shape == (3, 4, 6)


def test_resizing_and_mixed_sizes(tmp_path):
    Image.fromarray(_gray(0, 4, 6)).save(tmp_path / "a.png")
    Image.fromarray(_gray(1, 8, 8)).save(tmp_path / "b.png")
    Image.fromarray(_gray(2, 5, 5)).save(tmp_path / "c.jpg")
    with pytest.raises(DataError, match="image_size"):
        data.load(tmp_path)
    d = data.load(tmp_path, image_size=(3, 7))
    assert d.event_shape == (1, 3, 7)
    assert data.load(tmp_path, image_size=5).event_shape == (1, 5, 5)
    with pytest.raises(DataError, match="image_size"):
        data.load(tmp_path, image_size=(0, 4))


def test_image_folder_errors(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="no images"):
        data.load(empty)
    broken = tmp_path / "broken"
    broken.mkdir()
    for i in range(3):
        Image.fromarray(_gray(i)).save(broken / f"{i}.png")
    (broken / "bad.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match="could not read the image"):
        data.load(broken)
    classes = tmp_path / "classes"
    (classes / "a").mkdir(parents=True)
    (classes / "b").mkdir()
    Image.fromarray(_gray(0)).save(classes / "a" / "0.png")
    with pytest.raises(DataError, match="class folder"):
        data.load(classes)
    two = tmp_path / "two"
    two.mkdir()
    for i in range(2):
        Image.fromarray(_gray(i)).save(two / f"{i}.png")
    with pytest.raises(DataError, match="at least 3"):
        data.load(two)


# --- paths ------------------------------------------------------------------------------


def test_unsupported_suffix_lists_the_supported_ones(tmp_path):
    p = tmp_path / "data.dat"
    p.write_text("1 2 3")
    with pytest.raises(DataError, match=r"\.npy, \.npz, \.csv"):
        data.load(p)


def test_options_for_another_format_are_refused(tmp_path):
    np.save(tmp_path / "a.npy", np.zeros((5, 2)))
    with pytest.raises(DataError, match="image folders only"):
        data.load(tmp_path / "a.npy", grayscale=True)
    with pytest.raises(DataError, match="CSV files only"):
        data.load(tmp_path / "a.npy", label_column="c")


def test_from_arrays():
    d = data.from_arrays(np.eye(10, dtype=int), np.arange(10) % 2, name="eye")
    assert d.name == "eye" and d.kind == "binary"
    assert (len(d.train), len(d.val), len(d.test)) == (8, 1, 1)
    for split in (d.train, d.val, d.test):
        np.testing.assert_array_equal(split.y, split.x.argmax(axis=1) % 2)
