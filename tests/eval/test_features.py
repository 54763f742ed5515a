"""Feature spaces: a deterministic classifier cached as safetensors, or standardised raw data."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

import ptheta
from ptheta.errors import DataError, RunDirError
from ptheta.eval import features
from ptheta.eval.features import cached_feature_extractor, feature_extractor


@pytest.fixture(scope="module")
def digits():
    return ptheta.datasets.load("digits")


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("features")


@pytest.fixture(scope="module")
def fx(digits, cache):
    """The one classifier these tests train (and cache) besides the determinism check."""
    return feature_extractor(digits, cache_dir=cache, random_state=0)


def test_classifier_features_are_deterministic_named_and_useful(digits, fx):
    again = feature_extractor(digits, random_state=0)  # trained afresh: no cache_dir
    assert fx.name == "FD-digits" and fx.n_features == 64
    f = fx.transform(digits.test.x)
    assert f.shape == (447, 64) and f.dtype == np.float64
    np.testing.assert_array_equal(f, again.transform(digits.test.x))
    # the space separates the classes it was trained on (held-out accuracy)
    assert fx.info["test_accuracy"] > 0.85
    assert f.min() >= 0  # features are the penultimate ReLU
    # constant and near-constant variables (digits' corner pixels) get the floored scale:
    # no division by zero, and a rare value there cannot dominate the features
    std = digits.train.x.reshape(len(digits.train.x), -1).std(0)
    floor = 0.1 * np.median(std[std > 0])
    assert (std < floor).any() and np.isfinite(f).all()
    np.testing.assert_allclose(fx.scale, np.maximum(std, floor))


def _no_training(*args, **kwargs):
    raise AssertionError("the classifier was trained again")


def test_extractor_is_cached_and_loaded(digits, fx, cache, monkeypatch):
    stem = f"features-{digits.fingerprint()}-0"
    meta = json.loads((cache / f"{stem}.json").read_text())
    assert meta["name"] == "FD-digits" and meta["fingerprint"] == digits.fingerprint()
    assert (cache / f"{stem}.safetensors").is_file()
    assert not list(cache.glob("*.pkl"))
    monkeypatch.setattr(features, "_train_classifier", _no_training)
    loaded = feature_extractor(digits, cache_dir=cache)
    np.testing.assert_array_equal(loaded.transform(digits.val.x), fx.transform(digits.val.x))
    assert loaded.name == fx.name and loaded.info["test_accuracy"] == fx.info["test_accuracy"]
    # other data (another fingerprint) or another seed is not served from this cache
    with pytest.raises(AssertionError, match="trained again"):
        feature_extractor(ptheta.datasets.load("digits-binary"), cache_dir=cache)
    with pytest.raises(AssertionError, match="trained again"):
        feature_extractor(digits, cache_dir=cache, random_state=1)


def test_damaged_cache_is_a_clear_error(digits, fx, cache, tmp_path):
    for path in cache.iterdir():
        shutil.copy(path, tmp_path / path.name)
    next(tmp_path.glob("*.safetensors")).write_bytes(b"not safetensors")
    with pytest.raises(RunDirError, match="delete"):
        feature_extractor(digits, cache_dir=tmp_path)


def test_process_cache_trains_once(digits, fx, monkeypatch):
    calls = []

    def counting(*args, **kwargs):
        calls.append(1)
        return fx.network

    monkeypatch.setattr(features, "_MEMORY", {})
    monkeypatch.setattr(features, "_train_classifier", counting)
    first = cached_feature_extractor(digits)
    assert cached_feature_extractor(digits) is first and len(calls) == 1


def test_unlabelled_data_get_standardised_raw_features():
    data = ptheta.datasets.load("toy2d-moons")
    fx = feature_extractor(data)
    assert fx.name == "raw-toy2d-moons" and fx.network is None
    f = fx.transform(data.train.x)
    np.testing.assert_allclose(f.mean(0), 0, atol=1e-12)
    np.testing.assert_allclose(f.std(0), 1, atol=1e-12)


def test_transform_rejects_bad_input(digits):
    fx = feature_extractor(ptheta.datasets.load("toy2d-moons"))
    with pytest.raises(DataError, match=r"expected \(N, 2\)"):
        fx.transform(np.zeros((4, 3)))
    with pytest.raises(DataError, match="NaN"):
        fx.transform(np.array([[np.nan, 0.0]]))
