"""Tests of the standard image sets (MNIST, Fashion-MNIST, binarised MNIST, CIFAR-10) on
tiny files generated in their published formats: the registry, the cache, --data DIR.
Nothing here touches the network or the real home cache."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import math
import re
import tarfile
from pathlib import Path

import numpy as np
import pytest

import ptheta.data as data
from ptheta.data import download, idx, standard
from ptheta.data.download import ChecksumError, Remote
from ptheta.errors import DataError, UnknownNameError

N_TRAIN, N_TEST = 12, 4  # tiny official sets: 12 training images (2 validate), 4 test


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv(download.DATA_ENV, str(tmp_path / "cache"))

    real = download.urllib_transport

    def local_files_only(url):
        assert url.startswith("file:"), f"a test tried to reach {url}"
        return real(url)

    monkeypatch.setattr(download, "urllib_transport", local_files_only)


def _gray(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), rng.integers(0, 10, n).astype(
        np.uint8
    )


def _write_idx_set(folder: Path, gz: bool = True) -> dict[str, np.ndarray]:
    folder.mkdir(parents=True, exist_ok=True)
    (xtr, ytr), (xte, yte) = _gray(N_TRAIN, 0), _gray(N_TEST, 1)
    arrays = {"train_x": xtr, "train_y": ytr, "test_x": xte, "test_y": yte}
    for part, name in standard.IDX_FILES.items():
        idx.write_idx(folder / (name + (".gz" if gz else "")), arrays[part])
    return arrays


def _write_amat_set(folder: Path) -> dict[str, np.ndarray]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(2)
    arrays = {p: rng.integers(0, 2, (n, 784), dtype=np.uint8) for p, n in
              (("train", 6), ("valid", 3), ("test", 2))}  # fmt: skip
    for part, name in standard.AMAT_FILES.items():
        idx.write_amat(folder / name, arrays[part])
    return arrays


def _cifar_batches(n: int = 4) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(3)
    names = [*standard.CIFAR_BATCHES["train"], *standard.CIFAR_BATCHES["test"]]
    return {
        name: (rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8), rng.integers(0, 10, n))
        for name in names
    }


def _write_cifar_archive(path: Path, batches, extra_members=()) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        for info, blob in extra_members:
            tar.addfile(info, None if blob is None else io.BytesIO(blob))
        for name, (x, y) in batches.items():
            records = np.concatenate([y.astype(np.uint8)[:, None], x.reshape(len(x), -1)], 1)
            blob = records.tobytes()
            info = tarfile.TarInfo(f"{standard.CIFAR_FOLDER}/{name}")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))


def _fake_set(name: str, folder: Path) -> standard.StandardSet:
    """`name`'s registry entry with its files served from `folder` (file:// URLs) and
    their own checksums, as if published."""
    std = standard.SETS[name]
    files = []
    for remote in std.files:
        blob = (folder / remote.name).read_bytes()
        checks = {"md5": hashlib.md5(blob).hexdigest(), "sha256": hashlib.sha256(blob).hexdigest()}
        files.append(Remote(remote.name, ((folder / remote.name).as_uri(),), checks, len(blob)))
    return dataclasses.replace(std, files=tuple(files))


# --------------------------------------------------------------------------- registry
def test_the_registry_lists_published_checksums_and_sizes():
    for std in standard.SETS.values():
        for remote in std.files:
            assert remote.size and remote.size > 1000, remote
            assert re.fullmatch("[0-9a-f]{64}", remote.checksums["sha256"]), remote
            if "md5" in remote.checksums:
                assert re.fullmatch("[0-9a-f]{32}", remote.checksums["md5"]), remote
            assert all(u.endswith(remote.name) for u in remote.urls)
    # the official numbers of images agree with the split sizes and the published files
    for name in ("mnist", "fashion-mnist"):
        n_train, n_val, _ = standard.SETS[name].sizes
        assert n_val == round((n_train + n_val) * standard.SETS[name].val_fraction) == 10000
    amat = {r.name: r.size for r in standard.SETS["binarized-mnist"].files}
    assert amat["binarized_mnist_train.amat"] == 50000 * 784 * 2  # "0 " or "1\n" per pixel
    train, val, test = standard.SETS["cifar10"].sizes
    assert train + val == 50000 and val == 5000 and test == 10000


def test_datasets_are_listed_without_downloading(tmp_path):
    rows = {r["name"]: r for r in data.list_datasets()}
    for name in standard.NAMES:
        assert "download" in rows[name]["description"]
    assert rows["mnist"]["kind"] == "categorical(256)"
    assert rows["mnist"]["event_shape"] == (784,)
    assert (rows["mnist"]["n_train"], rows["mnist"]["n_val"]) == (50000, 10000)
    assert rows["mnist-binary"]["kind"] == "binary" and rows["mnist-binary"]["has_labels"]
    assert rows["binarized-mnist"]["has_labels"] is False
    assert rows["cifar10"]["event_shape"] == (3072,) and "RGB" in rows["cifar10"]["description"]
    assert rows["mnist"]["description"].endswith("(download, 12 MB)")  # 11.6 MB of .gz files
    assert rows["cifar10"]["description"].endswith("(download, 170 MB)")
    assert not (tmp_path / "cache").exists()


def test_unknown_names_suggest_standard_sets():
    with pytest.raises(UnknownNameError, match="did you mean 'mnist'"):
        data.load("mnsit")


# --------------------------------------------------------------------------- --data DIR
@pytest.mark.parametrize("gz", [True, False])
def test_a_folder_of_idx_files_loads_offline(tmp_path, gz):
    arrays = _write_idx_set(tmp_path / "my-mnist", gz=gz)
    d = data.load(str(tmp_path / "my-mnist"))
    assert d.name == "my-mnist"
    assert d.kind == "categorical" and d.n_categories == 256
    assert d.event_shape == (784,) and d.spec.image_shape == (1, 28, 28)
    assert (len(d.train), len(d.val), len(d.test)) == (10, 2, 4)  # val: the last sixth
    flat = arrays["train_x"].reshape(N_TRAIN, -1)
    np.testing.assert_array_equal(d.train.x, flat[:10])
    np.testing.assert_array_equal(d.val.x, flat[10:])
    np.testing.assert_array_equal(d.test.x, arrays["test_x"].reshape(N_TEST, -1))
    np.testing.assert_array_equal(d.val.y, arrays["train_y"][10:])
    assert d.train.x.dtype == np.int64 and d.train.y.dtype == np.int64
    assert d.classes == [str(i) for i in range(10)]
    assert d.extra["checked"].startswith("structure only")


def test_fashion_mnist_files_in_a_folder_get_its_class_names(tmp_path, monkeypatch):
    _write_idx_set(tmp_path / "f")
    assert data.load(str(tmp_path / "f")).classes[0] == "0"
    # as if these tiny files were Fashion-MNIST's published ones
    monkeypatch.setitem(standard.SETS, "fashion-mnist", _fake_set("fashion-mnist", tmp_path / "f"))
    assert data.load(str(tmp_path / "f")).classes[0] == "T-shirt/top"


def test_a_folder_missing_a_file_names_it(tmp_path):
    _write_idx_set(tmp_path / "m")
    (tmp_path / "m" / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match="lacks t10k-labels-idx1-ubyte"):
        data.load(str(tmp_path / "m"))


def test_idx_files_of_the_wrong_shape_are_refused(tmp_path):
    arrays = _write_idx_set(tmp_path / "m")
    idx.write_idx(tmp_path / "m" / "train-labels-idx1-ubyte.gz", arrays["train_y"][:-1])
    with pytest.raises(DataError, match=r"one label in 0\.\.9 for each of the 12 images"):
        data.load(str(tmp_path / "m"))
    idx.write_idx(tmp_path / "m" / "train-images-idx3-ubyte.gz", np.zeros((3, 8, 8), np.uint8))
    with pytest.raises(DataError, match="not 28 x 28 images"):
        data.load(str(tmp_path / "m"))


def test_folder_binarisation(tmp_path):
    arrays = _write_idx_set(tmp_path / "m")
    t = standard.load_folder(tmp_path / "m", binarize="threshold")
    assert t.kind == "binary" and t.spec.image_shape == (1, 28, 28)
    np.testing.assert_array_equal(t.train.x, arrays["train_x"].reshape(N_TRAIN, -1)[:10] >= 128)
    assert t.extra["binarize"] == {"method": "threshold", "threshold": 128}
    s = standard.load_folder(tmp_path / "m", binarize="stochastic")
    np.testing.assert_array_equal(
        s.train.x, standard.load_folder(tmp_path / "m", binarize="stochastic").train.x
    )
    assert set(np.unique(s.train.x)) <= {0, 1}
    with pytest.raises(DataError, match="threshold, stochastic"):
        standard.load_folder(tmp_path / "m", binarize="otsu")


def test_threshold_is_half_of_255():
    x = np.arange(256, dtype=np.uint8)[None]
    b = standard.binarize(x, "threshold")[0]
    np.testing.assert_array_equal(b, x[0] / 255 > 0.5)


def test_stochastic_binarisation_draws_bernoulli_pixel_over_255():
    # 20000 pixels of each gray level g: the share of ones is g / 255 within 4 standard errors
    levels = np.array([0, 1, 64, 128, 200, 255], np.uint8)
    x = np.repeat(levels, 20000).reshape(len(levels), -1)
    b = standard.binarize(x, "stochastic", seed=5)
    p = levels / 255
    se = np.sqrt(p * (1 - p) / x.shape[1])
    assert np.all(np.abs(b.mean(axis=1) - p) <= 4 * se + 1e-12)
    assert b[0].sum() == 0 and b[-1].all()  # levels 0 and 255 are certain
    np.testing.assert_array_equal(b, standard.binarize(x, "stochastic", seed=5))
    assert not np.array_equal(b, standard.binarize(x, "stochastic", seed=6))


def test_a_folder_of_amat_files_is_binarized_mnist(tmp_path):
    arrays = _write_amat_set(tmp_path / "bm")
    d = data.load(str(tmp_path / "bm"))
    assert d.kind == "binary" and d.spec.image_shape == (1, 28, 28)
    assert d.train.y is None and d.classes is None
    for split, part in (("train", "train"), ("val", "valid"), ("test", "test")):
        np.testing.assert_array_equal(d.split(split).x, arrays[part])
    with pytest.raises(DataError, match="binary already"):
        standard.load_folder(tmp_path / "bm", binarize="threshold")


def test_cifar_archive_loads_without_extracting(tmp_path):
    batches = _cifar_batches()
    # members that try to escape, or are links, are never written anywhere
    evil = tarfile.TarInfo("../../escaped.bin")
    evil.size = 3
    link = tarfile.TarInfo(f"{standard.CIFAR_FOLDER}/readme.html")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    _write_cifar_archive(
        tmp_path / "c" / standard.CIFAR_ARCHIVE, batches, [(evil, b"abc"), (link, None)]
    )
    d = data.load(str(tmp_path / "c"))
    assert d.kind == "categorical" and d.n_categories == 256
    assert d.event_shape == (3072,) and d.spec.image_shape == (3, 32, 32)
    train = np.concatenate([batches[n][0] for n in standard.CIFAR_BATCHES["train"]])
    labels = np.concatenate([batches[n][1] for n in standard.CIFAR_BATCHES["train"]])
    assert (len(d.train), len(d.val), len(d.test)) == (18, 2, 4)  # val: the last tenth
    np.testing.assert_array_equal(d.train.x, train[:18].reshape(18, -1))
    np.testing.assert_array_equal(d.val.y, labels[18:])
    np.testing.assert_array_equal(d.test.x, batches["test_batch.bin"][0].reshape(4, -1))
    assert d.classes[0] == "airplane" and len(d.classes) == 10
    assert (
        not (tmp_path / "escaped.bin").exists() and not (tmp_path.parent / "escaped.bin").exists()
    )
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == [standard.CIFAR_ARCHIVE]


def test_cifar_archive_with_a_linked_batch_is_refused(tmp_path):
    batches = _cifar_batches()
    link = tarfile.TarInfo(f"{standard.CIFAR_FOLDER}/data_batch_1.bin")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    del batches["data_batch_1.bin"]
    _write_cifar_archive(tmp_path / "c" / standard.CIFAR_ARCHIVE, batches, [(link, None)])
    with pytest.raises(DataError, match="not a regular file"):
        data.load(str(tmp_path / "c"))


def test_cifar_archive_without_a_batch_says_which(tmp_path):
    batches = _cifar_batches()
    del batches["test_batch.bin"]
    _write_cifar_archive(tmp_path / "c" / standard.CIFAR_ARCHIVE, batches)
    with pytest.raises(DataError, match=r"lacks test_batch\.bin"):
        data.load(str(tmp_path / "c"))
    (tmp_path / "c" / standard.CIFAR_ARCHIVE).write_bytes(b"not a tar")
    with pytest.raises(DataError, match="not a readable tar archive"):
        data.load(str(tmp_path / "c"))


@pytest.mark.parametrize("inner", [True, False])
def test_cifar_batch_files_load_from_a_folder(tmp_path, inner):
    batches = _cifar_batches()
    folder = tmp_path / "c" / (standard.CIFAR_FOLDER if inner else "")
    folder.mkdir(parents=True, exist_ok=True)
    for name, (x, y) in batches.items():
        idx.write_cifar_batch(folder / name, x, y)
    d = data.load(str(tmp_path / "c"))
    np.testing.assert_array_equal(d.test.y, batches["test_batch.bin"][1])
    with pytest.raises(DataError, match="gray"):
        standard.load_folder(tmp_path / "c", binarize="threshold")


def test_file_options_are_refused_for_standard_sets(tmp_path):
    _write_idx_set(tmp_path / "m")
    with pytest.raises(DataError, match="do not apply"):
        data.load(str(tmp_path / "m"), image_size=8)
    with pytest.raises(DataError, match="built-in"):
        data.load("mnist", label_column="y")


def test_a_folder_of_several_sets_is_ambiguous(tmp_path):
    _write_idx_set(tmp_path / "m")
    _write_amat_set(tmp_path / "m")
    with pytest.raises(DataError, match="several standard data sets"):
        data.load(str(tmp_path / "m"))


def test_kind_override_on_a_folder(tmp_path):
    _write_idx_set(tmp_path / "m")
    d = data.load(str(tmp_path / "m"), kind="continuous")
    assert d.kind == "continuous" and d.spec.image_shape == (1, 28, 28)


# --------------------------------------------------------------------------- the cache
@pytest.fixture
def served_mnist(tmp_path, monkeypatch):
    """MNIST's registry entry served from a tmp folder of tiny files."""
    arrays = _write_idx_set(tmp_path / "server")
    monkeypatch.setitem(standard.SETS, "mnist", _fake_set("mnist", tmp_path / "server"))
    return arrays


def test_a_named_set_is_downloaded_checked_and_cached(tmp_path, served_mnist):
    d = data.load("mnist")
    folder = tmp_path / "cache" / "mnist"
    assert sorted(p.name for p in folder.glob("*.gz")) == sorted(
        n + ".gz" for n in standard.IDX_FILES.values()
    )
    assert (folder / "arrays" / "train_x.npy").is_file()
    assert np.load(folder / "arrays" / "train_x.npy").dtype == np.uint8
    assert d.name == "mnist" and d.spec.image_shape == (1, 28, 28) and d.n_categories == 256
    np.testing.assert_array_equal(d.train.x, served_mnist["train_x"].reshape(N_TRAIN, -1)[:10])
    assert d.extra["checked"] == "published checksums (md5, sha256)"
    # offline now: the cache alone serves it, and the raw files may go
    for p in (tmp_path / "server").iterdir():
        p.unlink()
    for p in folder.glob("*.gz"):
        p.unlink()
    again = data.load("mnist")
    np.testing.assert_array_equal(again.test.x, d.test.x)
    assert again.fingerprint() == d.fingerprint()


def test_named_binarisations_are_stored_once(tmp_path, served_mnist):
    t = data.load("mnist-binary")
    assert t.kind == "binary"
    np.testing.assert_array_equal(t.test.x, served_mnist["test_x"].reshape(N_TEST, -1) >= 128)
    s = data.load("mnist-stochastic-binary")
    stored = tmp_path / "cache" / "mnist" / "arrays" / "train_x_stochastic_seed0.npy"
    assert stored.is_file()
    np.testing.assert_array_equal(np.load(stored)[:10], s.train.x)
    # the stored draw is what later loads see (change it on disk: the change shows)
    flipped = 1 - np.load(stored)
    np.save(stored, flipped)
    np.testing.assert_array_equal(data.load("mnist-stochastic-binary").train.x, flipped[:10])
    # a threshold is not a draw: nothing stored for it
    assert not list((tmp_path / "cache" / "mnist" / "arrays").glob("*threshold*"))


def test_a_replaced_raw_file_is_checked_again(tmp_path, served_mnist):
    data.load("mnist")
    raw = tmp_path / "cache" / "mnist" / "t10k-labels-idx1-ubyte.gz"
    idx.write_idx(raw, np.zeros(N_TEST, np.uint8))
    with pytest.raises(ChecksumError, match="not the published t10k-labels"):
        data.load("mnist")


def test_a_wrong_file_put_in_the_cache_by_hand_is_refused(tmp_path, served_mnist):
    folder = tmp_path / "cache" / "mnist"
    folder.mkdir(parents=True)
    idx.write_idx(folder / "train-images-idx3-ubyte.gz", np.zeros((N_TRAIN, 28, 28), np.uint8))
    with pytest.raises(ChecksumError, match=r"train-images-idx3-ubyte\.gz"):
        data.load("mnist")
    assert not (folder / "arrays").exists()


def test_a_download_with_the_wrong_bytes_is_removed(tmp_path, served_mnist, monkeypatch):
    std = standard.SETS["mnist"]
    bad = dataclasses.replace(std.files[0], checksums={"md5": "0" * 32})
    monkeypatch.setitem(
        standard.SETS, "mnist", dataclasses.replace(std, files=(bad, *std.files[1:]))
    )
    with pytest.raises(ChecksumError, match="not the published train-images"):
        data.load("mnist")
    folder = tmp_path / "cache" / "mnist"
    assert not (folder / "train-images-idx3-ubyte.gz").exists()
    assert not list(folder.glob(".*.part"))


def test_offline_says_to_use_a_folder(tmp_path, monkeypatch):
    std = standard.SETS["cifar10"]
    gone = dataclasses.replace(std.files[0], urls=((tmp_path / "nowhere.tgz").as_uri(),))
    monkeypatch.setitem(standard.SETS, "cifar10", dataclasses.replace(std, files=(gone,)))
    with pytest.raises(DataError, match=r"Offline\?.*--data DIR"):
        data.load("cifar10")


def test_named_cifar_and_binarized_mnist_from_served_files(tmp_path, monkeypatch):
    _write_cifar_archive(tmp_path / "c" / standard.CIFAR_ARCHIVE, _cifar_batches())
    _write_amat_set(tmp_path / "b")
    monkeypatch.setitem(standard.SETS, "cifar10", _fake_set("cifar10", tmp_path / "c"))
    monkeypatch.setitem(
        standard.SETS, "binarized-mnist", _fake_set("binarized-mnist", tmp_path / "b")
    )
    c = data.load("cifar10")
    assert c.name == "cifar10" and c.spec.image_shape == (3, 32, 32)
    np.testing.assert_array_equal(c.test.x, data.load(str(tmp_path / "c")).test.x)
    b = data.load("binarized-mnist")
    assert b.kind == "binary" and (len(b.train), len(b.val), len(b.test)) == (6, 3, 2)


@pytest.mark.parametrize("name", list(standard.NAMES))
def test_summaries_match_what_loads(tmp_path, monkeypatch, name):
    """Each listed kind, shape and labels is what the set loads as (tiny files stand in)."""
    _write_idx_set(tmp_path / "server")
    _write_amat_set(tmp_path / "server")
    _write_cifar_archive(tmp_path / "server" / standard.CIFAR_ARCHIVE, _cifar_batches())
    set_name = standard.NAMES[name][0]
    monkeypatch.setitem(standard.SETS, set_name, _fake_set(set_name, tmp_path / "server"))
    d = data.load(name)
    kind, shape, n_train, n_val, n_test, labels = standard.SUMMARIES[name]
    assert kind == (f"categorical({d.n_categories})" if d.kind == "categorical" else d.kind)
    assert shape == d.event_shape == (math.prod(d.spec.image_shape),)
    assert labels == (d.train.y is not None)
    assert n_train + n_val > 0 and n_test > 0
