"""Tests of the built-in data sets and of `ptheta.data.load` / `list_datasets` by name."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.datasets import load_digits

import ptheta.data as data
from ptheta.data import standard, toy2d
from ptheta.errors import DataError, UnknownNameError


@pytest.fixture(scope="module")
def raw_digits():
    return load_digits()


def test_digits_splits_follow_the_shipped_order(raw_digits):
    d = data.load("digits")
    assert (len(d.train), len(d.val), len(d.test)) == (1000, 350, 447)
    np.testing.assert_array_equal(d.train.x, raw_digits.data[:1000])
    np.testing.assert_array_equal(d.val.x, raw_digits.data[1000:1350])
    np.testing.assert_array_equal(d.test.x, raw_digits.data[1350:])
    np.testing.assert_array_equal(d.train.y, raw_digits.target[:1000])
    np.testing.assert_array_equal(d.test.y, raw_digits.target[1350:])


def test_digits_spec_and_labels():
    d = data.load("digits")
    assert d.kind == "categorical"
    assert d.n_categories == 17
    assert d.event_shape == (64,)
    assert d.spec.image_shape == (1, 8, 8)
    assert d.train.x.dtype == np.int64 and d.train.y.dtype == np.int64
    assert d.train.x.min() == 0 and d.train.x.max() == 16
    assert d.classes == [str(i) for i in range(10)]
    assert set(np.unique(d.train.y)) == set(range(10))
    assert d.entropy is None and d.log_density is None


def test_digits_binary_thresholds_at_eight(raw_digits):
    b = data.load("digits-binary")
    assert b.kind == "binary" and b.n_categories == 2
    assert b.spec.image_shape == (1, 8, 8)
    g = raw_digits.data[:1000]
    np.testing.assert_array_equal(b.train.x, (g >= 8).astype(np.int64))
    assert np.all(b.train.x[g == 8] == 1)
    assert np.all(b.train.x[g == 7] == 0)
    np.testing.assert_array_equal(b.test.y, raw_digits.target[1350:])


def test_fingerprints_are_stable_and_tell_data_sets_apart():
    fp = data.load("digits").fingerprint()
    assert fp == data.load("digits").fingerprint()
    assert fp != data.load("digits-binary").fingerprint()
    assert data.load("toy2d-moons").fingerprint() == data.load("toy2d-moons").fingerprint()
    assert data.load("toy2d-moons").fingerprint() != data.load("toy2d-circles").fingerprint()


def test_callers_cannot_corrupt_the_cache():
    d = data.load("digits")
    d.train.x[:] = 99
    d.train.y[:] = -1
    d.classes.append("oops")
    fresh = data.load("digits")
    assert fresh.train.x.max() == 16
    assert fresh.train.y.min() == 0
    assert len(fresh.classes) == 10


@pytest.mark.parametrize("name", sorted(toy2d.SAMPLERS))
def test_toy_data_sets(name):
    d = data.load(f"toy2d-{name}")
    assert d.name == f"toy2d-{name}"
    assert d.kind == "continuous" and d.event_shape == (2,) and d.n_categories is None
    assert (len(d.train), len(d.val), len(d.test)) == (4000, 1000, 1000)
    assert d.train.y is None and d.classes is None
    assert d.train.x.dtype == np.float64
    np.testing.assert_array_equal(d.test.x, data.load(f"toy2d-{name}").test.x)
    # The splits are disjoint pieces of one sample, not three copies of the same stream.
    assert not np.array_equal(d.train.x[:1000], d.val.x)
    assert (d.log_density is not None) == (name in ("8gaussians", "checkerboard"))
    assert (d.entropy is not None) == (name in ("8gaussians", "checkerboard"))


def test_toy_sets_use_different_seeds():
    a = data.load("toy2d-8gaussians").train.x
    b = data.load("toy2d-checkerboard").train.x
    assert not np.allclose(a[:10], b[:10])


def test_toy_checkerboard_is_in_its_support_and_near_its_entropy():
    d = data.load("toy2d-checkerboard")
    assert d.entropy == pytest.approx(math.log(8))
    for split in (d.train, d.val, d.test):
        assert np.isfinite(d.log_density(split.x)).all()


def test_toy_8gaussians_test_nll_is_near_the_entropy():
    d = data.load("toy2d-8gaussians")
    nll = -d.log_density(d.test.x)
    assert abs(nll.mean() - d.entropy) < 4 * nll.std() / math.sqrt(len(nll))


def test_kind_override_for_builtins():
    c = data.load("digits", kind="continuous")
    assert c.kind == "continuous" and c.train.x.dtype == np.float64
    assert c.spec.image_shape == (1, 8, 8)
    np.testing.assert_array_equal(c.train.x, data.load("digits").train.x)
    np.testing.assert_array_equal(c.train.y, data.load("digits").train.y)
    assert c.classes == data.load("digits").classes
    assert data.load("digits", kind="categorical:32").n_categories == 32
    same = data.load("toy2d-checkerboard", kind="continuous")
    assert same.entropy == pytest.approx(math.log(8))


def test_kind_override_that_does_not_fit_the_values():
    with pytest.raises(DataError, match=r"outside 0\.\.1"):
        data.load("digits", kind="binary")
    with pytest.raises(DataError, match="non-integer"):
        data.load("toy2d-moons", kind="categorical")
    with pytest.raises(DataError, match="unknown data kind"):
        data.load("digits", kind="ordinal")


def test_unknown_name_suggests_the_closest():
    with pytest.raises(UnknownNameError, match="did you mean 'digits'"):
        data.load("digts")
    with pytest.raises(UnknownNameError, match=r"\.npy/\.npz/\.csv"):
        data.load("no-such-thing-at-all")


def test_missing_path_says_so():
    with pytest.raises(DataError, match="no such file"):
        data.load("missing/train.csv")


def test_file_options_are_refused_for_builtins():
    with pytest.raises(DataError, match="built-in"):
        data.load("digits", image_size=4)


def test_list_datasets():
    rows = data.list_datasets()
    assert [r["name"] for r in rows] == [*data.BUILTIN, *standard.NAMES]
    by_name = {r["name"]: r for r in rows}
    assert by_name["digits"] == {
        "name": "digits",
        "kind": "categorical(17)",
        "event_shape": (64,),
        "n_train": 1000,
        "n_val": 350,
        "n_test": 447,
        "has_labels": True,
        "description": by_name["digits"]["description"],
    }
    assert by_name["digits-binary"]["kind"] == "binary"
    assert by_name["toy2d-moons"]["has_labels"] is False
    assert by_name["toy2d-moons"]["n_train"] == 4000
    assert all(r["description"] for r in rows)


def test_reexports():
    for name in ("DataSpec", "Split", "Dataset", "infer_spec", "check_values", "parse_kind"):
        assert hasattr(data, name)
