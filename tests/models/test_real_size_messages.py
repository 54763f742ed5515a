"""At real size, one clear message instead of an allocator failure or a silent failure:
chow-liu's pairwise tables against a memory budget, naive Bayes over more levels than a
class has examples."""

from __future__ import annotations

import re
import tracemalloc
import warnings

import numpy as np
import pytest
from scipy.ndimage import zoom
from sklearn.datasets import load_digits

from ptheta.data import from_splits
from ptheta.errors import DataError
from ptheta.models import chow_liu, make


# --------------------------------------------------------------------------- chow-liu
def test_chow_liu_refuses_256_level_images_before_allocating(monkeypatch):
    # 28×28 grey images: 784² pairs × 256² levels, far beyond any machine's memory
    with pytest.raises(DataError) as caught:
        chow_liu.check_pairwise_memory(784, 256)
    text = str(caught.value)
    assert "784 variables of 256 levels" in text and "GiB" in text
    for fix in ("binarise", "fewer levels", "independent"):
        assert fix in text
    assert "sample" not in text and "batch" not in text  # about the data, not the run
    # the refusal comes first in fit: under a small budget nothing the size of a table
    monkeypatch.setattr(chow_liu, "memory_budget", lambda: 1 << 20)
    x = np.random.default_rng(0).integers(0, 256, (40, 10))
    x[0] = 255
    tracemalloc.start()
    with pytest.raises(DataError, match="10 variables of 256 levels"):
        make("chow-liu").fit(x)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < chow_liu.pairwise_bytes(10, 256) / 10
    with pytest.raises(DataError, match="pairwise mutual information on 10 variables"):
        chow_liu.pairwise_mutual_information(x, 256)


def test_the_fewer_levels_suggested_fit_the_budget(monkeypatch):
    for budget in (1 << 27, 1 << 30, 1 << 33):
        monkeypatch.setattr(chow_liu, "memory_budget", lambda budget=budget: budget)
        with pytest.raises(DataError) as caught:
            chow_liu.check_pairwise_memory(784, 256)
        levels = int(re.search(r"--kind categorical:(\d+)", str(caught.value)).group(1))
        assert chow_liu.pairwise_bytes(784, levels) <= budget  # fits, and is the most that
        assert levels == 2 or chow_liu.pairwise_bytes(784, 2 * levels) > budget  # does
        chow_liu.check_pairwise_memory(784, levels)
    # where even binary tables do not fit, no level count is suggested
    monkeypatch.setattr(chow_liu, "memory_budget", lambda: 1 << 20)
    with pytest.raises(DataError, match="even binary data would not fit") as caught:
        chow_liu.check_pairwise_memory(784, 256)
    assert "categorical:" not in str(caught.value)


@pytest.mark.parametrize(("n_classes", "missing"), [(1, False), (3, False), (1, True)])
def test_the_memory_estimate_bounds_the_measured_peak(n_classes, missing):
    d, k = (24, 24) if not missing else (16, 16)  # structural EM costs K passes a variable
    rng = np.random.default_rng(0)
    x = rng.integers(0, k, (300 if not missing else 100, d)).astype(np.float64)
    x[0] = k - 1
    if missing:
        x[rng.random(x.shape) < 0.05] = np.nan
    y = rng.integers(0, n_classes, len(x))
    model = make("chow-liu", class_conditional=n_classes > 1, em_max_iter=1)
    tracemalloc.start()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # EM stopped at em_max_iter
        model.fit(x, y if n_classes > 1 else None)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    estimate = chow_liu.pairwise_bytes(d, k, n_classes, missing=missing)
    assert estimate / 3 < peak <= estimate  # a bound, and not a loose one


def test_chunked_pair_counts_equal_brute_force(monkeypatch):
    monkeypatch.setattr(chow_liu, "_CHUNK_CELLS", 50)  # chunks of 2 rows of 25 indicators
    rng = np.random.default_rng(3)
    x, cls = rng.integers(0, 6, (21, 5)), rng.integers(0, 2, 21)
    sums = chow_liu._pair_sums(x, 6, cls, 2)
    counts = chow_liu._counts_from_sums(sums["high"], sums["n"], 5, 6)
    one_hot = np.eye(6)[x]  # (N, D, K)
    for c in range(2):
        rows = one_hot[cls == c]
        np.testing.assert_array_equal(counts[c], np.einsum("nia,njb->ijab", rows, rows))


# --------------------------------------------------------------------------- naive Bayes
@pytest.fixture(scope="module")
def grey():
    """200 training and 100 test 16×16 digits of 256 noisy grey levels, 10 classes."""
    digits = load_digits()
    rng = np.random.default_rng(0)
    pick = rng.permutation(len(digits.images))[:300]
    images = np.stack([zoom(digits.images[i], 2, order=1) for i in pick])
    x = np.clip(60 + 9 * images + rng.normal(0, 25, images.shape), 0, 255).astype(np.uint8)
    return x[:, None], digits.target[pick]


def _split(x, y, kind=None):
    parts = {"train": (x[:200], y[:200]), "val": (x[200:210], y[200:210]),
             "test": (x[200:], y[200:])}  # fmt: skip
    return from_splits("grey", parts, kind=kind)


def _fit(data):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = make("naive-bayes").fit(data.train)
    accuracy = float((model.predict(data.test.x) == data.test.y).mean())
    return accuracy, [str(w.message) for w in caught if issubclass(w.category, UserWarning)]


def test_naive_bayes_warns_over_more_levels_than_examples_and_its_fix_works(grey):
    x, y = grey
    data = _split(x, y)
    assert data.spec.n_categories == 256
    accuracy, messages = _fit(data)
    assert len(messages) == 1, messages
    text = messages[0]
    smallest = int(np.bincount(y[:200]).min())
    assert "256 levels" in text and "alpha=1" in text
    assert f"smallest class has {smallest} training examples" in text
    levels = int(re.search(r"--kind categorical:(\d+)", text).group(1))
    assert re.search(rf"x \* {levels} // 256", text)
    # the suggestion, as written: fewer levels, or continuous data
    fewer, quiet = _fit(_split(x.astype(np.int64) * levels // 256, y, f"categorical:{levels}"))
    continuous, quiet_too = _fit(_split(x, y, "continuous"))
    assert not quiet and not quiet_too
    assert fewer > accuracy + 0.2 and fewer > 0.7 and continuous > 0.7  # chance: 0.1


def test_naive_bayes_is_quiet_where_each_class_has_more_examples_than_levels(grey):
    x, y = grey
    few = x.astype(np.int64) * 8 // 256  # 8 levels, 14 or more examples a class
    assert _fit(_split(few, y, "categorical:8"))[1] == []
    # K = 2: never (both levels of a feature are about as likely, even from one example)
    lone = np.where(np.arange(len(y)) == np.flatnonzero(y == 0)[0], 10, y)  # one example
    data = _split((x > 127).astype(np.int64), lone)
    assert np.bincount(data.train.y).min() == 1 and _fit(data)[1] == []
