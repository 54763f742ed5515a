"""Readers of data too large for memory give what the in-memory loaders give the same
files, read only what is asked for, and split by index."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import ptheta
from ptheta import data
from ptheta.data import sources
from ptheta.data.arrays import SPLIT_NAMES, split_indices
from ptheta.data.sources import (
    ImageFolderSource,
    ShardSource,
    TableSource,
    open_source,
    split_source,
)
from ptheta.data.spec import check_values
from ptheta.data.stream import ArraySource, Subset
from ptheta.errors import DataError


def _same_as_memory(streamed: data.Dataset, memory: data.Dataset, seed: int = 0) -> None:
    """The streamed data set holds the in-memory one: the same spec and classes, and each
    split the same examples (in the file's order, where memory has the shuffle's) with
    the same values and labels."""
    assert streamed.spec == memory.spec
    assert streamed.classes == memory.classes
    n = sum(len(memory.split(s)) for s in SPLIT_NAMES)
    for s, part in zip(SPLIT_NAMES, split_indices(n, seed), strict=True):
        view, kept = streamed.split(s), memory.split(s)
        assert isinstance(view.x, Subset)
        np.testing.assert_array_equal(view.x.index, np.sort(part))
        order = np.argsort(part)  # memory's rows in the file's order
        values = check_values(np.asarray(view.x), streamed.spec, allow_nan=True)
        np.testing.assert_array_equal(values, kept.x[order])
        if kept.y is None:
            assert view.y is None
        else:
            np.testing.assert_array_equal(view.y, kept.y[order])


def _both(path, **options) -> tuple[data.Dataset, data.Dataset]:
    return data.load(path, stream=True, **options), data.load(path, stream=False, **options)


# --------------------------------------------------------------------------- .npy, shards
def test_npy_is_memory_mapped_with_the_spec_of_memory(tmp_path):
    x = np.random.default_rng(0).integers(0, 7, size=(53, 4)).astype(np.uint8)
    np.save(tmp_path / "x.npy", x)
    streamed, memory = _both(tmp_path / "x.npy")
    _same_as_memory(streamed, memory)
    assert streamed.spec.describe() == "categorical(7) (4,)"
    assert isinstance(streamed.train.x.source.x, np.memmap)
    _same_as_memory(*_both(tmp_path / "x.npy", kind="categorical:9", seed=3), seed=3)
    images = np.random.default_rng(1).integers(0, 9, size=(6, 1, 2, 3)).astype(np.uint8)
    np.save(tmp_path / "im.npy", images)  # 8-bit images have 256 levels (as in memory)
    _same_as_memory(*_both(tmp_path / "im.npy"))
    assert data.load(tmp_path / "im.npy", stream=True).n_categories == 256


def test_value_problems_are_the_errors_of_memory(tmp_path):
    x = np.arange(20.0).reshape(10, 2) / 3
    x[3, 1] = np.nan
    np.save(tmp_path / "nan.npy", x)
    with pytest.raises(DataError, match="non-integer"):
        data.load(tmp_path / "nan.npy", stream=True, kind="categorical")
    assert data.load(tmp_path / "nan.npy", stream=True).kind == "continuous"
    levels = np.arange(20.0).reshape(10, 2) % 3
    levels[3, 1] = np.nan  # a missing level: kept as NaN, streamed as in memory
    np.save(tmp_path / "gaps.npy", levels)
    streamed = data.load(tmp_path / "gaps.npy", stream=True)
    memory = data.load(tmp_path / "gaps.npy", stream=False)
    assert streamed.spec == memory.spec and memory.kind == "categorical"
    whole = np.concatenate([np.asarray(streamed.split(s).x) for s in ("train", "val", "test")])
    assert np.isnan(whole).sum() == 1 and np.nansum(whole) == np.nansum(levels)
    np.save(tmp_path / "levels.npy", np.arange(10)[:, None] % 5)
    for kind in ("binary", "categorical:3"):
        with pytest.raises(DataError) as memory:
            data.load(tmp_path / "levels.npy", kind=kind)
        with pytest.raises(DataError) as streamed:
            data.load(tmp_path / "levels.npy", kind=kind, stream=True)
        tail = str(memory.value).split("has values")[1]
        assert str(streamed.value).endswith(tail)
    x[3, 1] = np.inf
    np.save(tmp_path / "inf.npy", x)
    with pytest.raises(DataError, match="infinite"):
        data.load(tmp_path / "inf.npy", stream=True)


def _shards(folder: Path, x: np.ndarray, y: np.ndarray | None = None) -> None:
    """x split into four shards: .npy, .npz stored, .npz compressed, .npz stored."""
    folder.mkdir()
    cuts = [0, 7, 19, 23, len(x)]
    for i, (a, b) in enumerate(itertools.pairwise(cuts)):
        arrays = {"x": x[a:b]} if y is None else {"x": x[a:b], "y": y[a:b]}
        if i == 0 and y is None:
            np.save(folder / f"part-{i}.npy", x[a:b])
        elif i == 2:
            np.savez_compressed(folder / f"part-{i}.npz", **arrays)
        else:
            np.savez(folder / f"part-{i}.npz", **arrays)


def test_shard_folders_read_as_one_array(tmp_path):
    rng = np.random.default_rng(2)
    x = rng.normal(size=(40, 2, 3))
    _shards(tmp_path / "s", x)
    s = ShardSource(tmp_path / "s")
    assert s.shape == (40, 2, 3) and s.y is None
    # .npy and uncompressed .npz arrays are memory-mapped where they lie; compressed not
    assert [sh.array is not None for sh in s.shards] == [True, True, False, True]
    np.testing.assert_array_equal(np.asarray(s), x)
    index = np.array([39, 0, 20, 7, 6, 22, 20])
    np.testing.assert_array_equal(s[index], x[index])
    np.testing.assert_array_equal(s.read_range(5, 30), x[5:30])
    # labels (text) in every shard
    y = rng.choice(["ant", "bee", "cow"], size=40)
    _shards(tmp_path / "l", x, y)
    streamed, memory = _both(tmp_path / "l")
    _same_as_memory(streamed, memory)
    assert streamed.classes == ["ant", "bee", "cow"]
    assert streamed.extra["format"] == "shards"
    assert data.load(tmp_path / "l").train.x.__class__ is Subset  # a folder of shards streams


def test_compressed_shards_are_decompressed_once_a_pass(tmp_path, monkeypatch):
    x = np.arange(120).reshape(60, 2)
    (tmp_path / "z").mkdir()
    for i in range(3):
        np.savez_compressed(tmp_path / "z" / f"{i}.npz", x=x[20 * i : 20 * (i + 1)])
    loads = []
    real_load = np.load
    # a cache of less than one shard (8 batches of 16 bytes): each pass decompresses each
    # shard once, in the file's order
    monkeypatch.setenv("PTHETA_BATCH_BYTES", "16")
    d = data.load(tmp_path / "z", stream=True)
    monkeypatch.setattr(np, "load", lambda *a, **k: loads.append(a[0]) or real_load(*a, **k))
    for _ in d.train.x.batches(batch_size=5):  # a split is read in the file's order
        pass
    assert len(loads) == 3
    # with the default budget the decoded shards are kept: shuffled reads decode nothing more
    monkeypatch.delenv("PTHETA_BATCH_BYTES")
    d = data.load(tmp_path / "z", stream=True)
    loads.clear()
    rng = np.random.default_rng(0)
    for _ in range(4):
        d.train.x.read(rng.permutation(len(d.train.x))[:7])
    assert len(loads) <= 3


def test_shard_problems_are_one_clear_error(tmp_path):
    bad = tmp_path / "shapes"
    bad.mkdir()
    np.save(bad / "a.npy", np.zeros((3, 4)))
    np.savez(bad / "b.npz", x=np.zeros((2, 5)))
    with pytest.raises(DataError, match=r"different shapes: a.npy \(4,\), b.npz \(5,\)"):
        data.load(bad)
    mixed = tmp_path / "kinds"
    mixed.mkdir()
    np.save(mixed / "a.npy", np.zeros((3, 4)))
    np.save(mixed / "b.npy", np.zeros((3, 4), dtype=np.int32))
    with pytest.raises(DataError, match="mix integer"):
        ShardSource(mixed)
    labels = tmp_path / "labels"
    labels.mkdir()
    np.savez(labels / "a.npz", x=np.zeros((3, 4)), y=np.arange(3))
    np.savez(labels / "b.npz", x=np.zeros((3, 4)))
    with pytest.raises(DataError, match=r"b\.npz has none"):
        ShardSource(labels)
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    np.save(pickled / "a.npy", np.array([[{"a": 1}], [2]], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match="pickled"):
        ShardSource(pickled)
    with pytest.raises(DataError, match="pickled"):
        data.load(pickled / "a.npy", stream=True)
    np.savez(tmp_path / "obj.npz", x=np.array([[None], [1]], dtype=object))
    with pytest.raises(DataError, match="pickled"):
        data.load(tmp_path / "obj.npz", stream=True)
    np.savez(tmp_path / "split.npz", x_train=np.zeros((3, 1)), x_val=np.zeros((1, 1)),
             x_test=np.zeros((1, 1)))  # fmt: skip
    with pytest.raises(DataError, match="stream=False"):
        data.load(tmp_path / "split.npz", stream=True)


# --------------------------------------------------------------------------- images
def _gray(i: int) -> np.ndarray:
    return (40 * i + 5 * np.arange(4)[:, None] + np.arange(6)[None, :]).astype(np.uint8)


def test_image_folders_read_lazily_as_memory_reads_them(tmp_path, monkeypatch):
    for c, name in enumerate(["dog", "cat"]):
        (tmp_path / "cls" / name).mkdir(parents=True)
        for k in range(4):
            Image.fromarray(_gray(2 * k + c)).save(tmp_path / "cls" / name / f"{k}.png")
    decoded = []
    real = sources._read_image
    monkeypatch.setattr(sources, "_read_image", lambda p, s: decoded.append(p) or real(p, s))
    s = ImageFolderSource(tmp_path / "cls")
    assert s.shape == (8, 1, 4, 6) and s.classes == ["cat", "dog"] and not decoded
    assert s[5].tolist() == _gray(2 * 1 + 0)[None].tolist() and len(decoded) == 1  # dog/1.png
    _same_as_memory(*_both(tmp_path / "cls"))
    _same_as_memory(*_both(tmp_path / "cls", image_size=(3, 5), grayscale=False))

    colour = tmp_path / "colour"
    colour.mkdir()
    for i in range(4):  # stored as RGB: gray in three files, red in one
        rgb = np.repeat(_gray(i)[..., None], 3, axis=2)
        rgb[..., 0] += 50 * (i == 2)
        Image.fromarray(rgb).save(colour / f"{i}.png")
    decoded.clear()
    assert ImageFolderSource(colour).event_shape == (3, 4, 6)  # the red one: RGB
    assert len(decoded) == 3  # decoded until one is not gray: 0, 1, 2
    _same_as_memory(*_both(colour))
    _same_as_memory(*_both(colour, grayscale=True))
    (colour / "2.png").unlink()  # all gray now: one channel, as in memory
    _same_as_memory(*_both(colour, seed=1), seed=1)
    assert data.load(colour, stream=True).event_shape == (1, 4, 6)

    bilevel = tmp_path / "bw"
    bilevel.mkdir()
    for i in range(3):
        Image.fromarray(_gray(i)).save(bilevel / f"g{i}.png")
        Image.fromarray(_gray(i) % 3 == 0).save(bilevel / f"b{i}.png")  # mode "1": 0/255 here
    _same_as_memory(*_both(bilevel))


# --------------------------------------------------------------------------- tables
@pytest.fixture
def small_csv_blocks(monkeypatch):
    """Marks every 3 rows and 64-byte blocks: the row index's every branch on small files."""
    monkeypatch.setattr(sources._CsvRows, "MARK", 3)
    monkeypatch.setattr(sources._CsvRows, "BLOCK", 64)


def test_numeric_csv_read_in_batches_as_memory_reads_it(tmp_path, small_csv_blocks):
    rng = np.random.default_rng(3)
    lines = ["a,b,label"]
    for i in range(41):
        a = "" if i == 5 else f"{rng.normal():.6g}"  # an empty cell: missing
        lines.append(f"{a}, {rng.integers(0, 9)},{rng.choice(['x', 'y', 'z'])}")
        if i in (10, 11, 30):
            lines.append(" , " if i == 30 else "")  # blank rows are skipped
    path = tmp_path / "t.csv"
    path.write_bytes(("\ufeff" + "\r\n".join(lines) + "\r\n").encode())
    s = TableSource(path, label_column="label")
    assert s.n == 41 and len(s._csv.marks) == 14
    memory = data.load(path, label_column="label", stream=False)
    streamed = data.load(path, label_column="label", stream=True)
    _same_as_memory(streamed, memory)
    x = np.asarray(s)
    np.testing.assert_array_equal(s[[40, 2, 17, 3, 16]], x[[40, 2, 17, 3, 16]])
    for start, batch in s.batches(batch_size=6):
        np.testing.assert_array_equal(batch, x[start : start + 6])


def test_csv_text_makes_a_table_and_kinds_that_need_numbers_refuse_it(tmp_path):
    rows = ["colour,size,ok,w,note"]
    rng = np.random.default_rng(4)
    for i in range(30):
        colour = ["red", "blue", "green", "NA"][i % 4]
        w = "" if i == 7 else f"{rng.normal():.4f}"
        note = '"two\nlines"' if i == 9 else "plain"
        rows.append(f"{colour},{i % 5},{['true', 'False'][i % 2]},{w},{note}")
    path = tmp_path / "t.csv"
    path.write_text("\n".join(rows) + "\n")
    streamed, memory = _both(path)
    assert streamed.kind == "table"
    _same_as_memory(streamed, memory)
    assert [c.type for c in streamed.spec.columns] == [
        "categorical", "count", "binary", "continuous", "binary",
    ]  # fmt: skip
    _same_as_memory(*_both(path, label_column="ok"))
    schema = [{"name": "size", "type": "ordinal"}, {"name": "colour", "type": "categorical",
                                                   "levels": ["red", "green", "blue"]}]  # fmt: skip
    _same_as_memory(*_both(path, schema=schema))
    with pytest.raises(DataError, match=r"column 'colour' .* is not numeric"):
        data.load(path, kind="continuous", stream=True)


def test_parquet_row_groups_read_as_pandas_reads_them(tmp_path):
    rng = np.random.default_rng(5)
    frame = pd.DataFrame({"a": rng.normal(size=45), "b": rng.integers(0, 4, 45)})
    frame.loc[6, "a"] = np.nan
    path = tmp_path / "t.parquet"
    frame.to_parquet(path, row_group_size=10)
    s = TableSource(path)
    assert len(s.group_starts) == 6  # five row groups
    np.testing.assert_array_equal(np.asarray(s), pd.read_parquet(path).to_numpy(np.float64))
    np.testing.assert_array_equal(
        s[[44, 0, 12, 11, 30]], frame.to_numpy(np.float64)[[44, 0, 12, 11, 30]]
    )
    _same_as_memory(*_both(path))
    frame["label"] = rng.choice(["u", "v"], 45)
    frame["c"] = pd.Categorical(
        rng.choice(["lo", "mid", "hi"], 45), ["lo", "mid", "hi"], ordered=True
    )
    frame["flag"] = rng.random(45) < 0.5
    frame.to_parquet(path, row_group_size=10)
    streamed, memory = _both(path, label_column="label")
    assert streamed.kind == "table" and streamed.spec.columns[2].type == "ordinal"
    _same_as_memory(streamed, memory)


# --------------------------------------------------------------------------- splits, load
class _Counting(ArraySource):
    """An array that counts the rows read from it."""

    rows_read = 0

    def _read(self, index):
        self.rows_read += len(index)
        return super()._read(index)

    def _read_range(self, start, stop):
        self.rows_read += stop - start
        return super()._read_range(start, stop)


def test_splits_are_index_views_disjoint_and_covering():
    x = np.arange(200)[:, None] % 3
    source = _Counting(x, y=np.arange(200) % 2, spec=data.infer_spec(x))
    d = split_source(source, seed=7, name="c")
    assert source.rows_read == 0  # defined by index: nothing read
    index = np.concatenate([d.split(s).x.index for s in SPLIT_NAMES])
    np.testing.assert_array_equal(np.sort(index), np.arange(200))
    assert [len(d.split(s)) for s in SPLIT_NAMES] == [160, 20, 20]
    assert all(np.all(np.diff(d.split(s).x.index) > 0) for s in SPLIT_NAMES)  # file order
    np.testing.assert_array_equal(d.val.y, d.val.x.index % 2)
    for _ in d.train.x.batches(batch_size=32):
        pass
    assert source.rows_read == 160  # the training rows, once
    assert d.fingerprint() == split_source(source, seed=7, name="c").fingerprint()
    assert d.fingerprint() != split_source(source, seed=8, name="c").fingerprint()
    with pytest.raises(DataError, match="no spec"):
        split_source(ArraySource(x))


def test_a_streamed_fit_is_the_fit_in_memory(tmp_path):
    x = np.random.default_rng(6).integers(0, 4, size=(300, 5))
    np.save(tmp_path / "x.npy", x)
    streamed, memory = _both(tmp_path / "x.npy")
    fitted = ptheta.make("independent").fit(streamed.train)
    kept = ptheta.make("independent").fit(memory.train)
    np.testing.assert_allclose(fitted.score(streamed.test), kept.score(memory.test), rtol=1e-12)


def test_load_streams_big_files_and_shard_folders_by_itself(tmp_path, monkeypatch):
    x = np.zeros((40, 8), dtype=np.uint8)
    np.save(tmp_path / "x.npy", x)
    assert sources.memory_bytes(tmp_path / "x.npy") == 40 * 8 * 8  # as int64 in memory
    assert isinstance(data.load(tmp_path / "x.npy").train.x, np.ndarray)
    monkeypatch.setattr(sources, "STREAM_BYTES", 1000)
    assert isinstance(data.load(tmp_path / "x.npy").train.x, Subset)
    assert isinstance(data.load(tmp_path / "x.npy", stream=False).train.x, np.ndarray)
    (tmp_path / "t.txt").write_text("hello world " * 300)
    assert data.load(tmp_path / "t.txt").kind == "categorical"  # text is never streamed
    with pytest.raises(DataError, match="held in memory"):
        data.load("digits-binary", stream=True)
    with pytest.raises(DataError, match="stream must be"):
        data.load(tmp_path / "x.npy", stream="yes")
    with pytest.raises(DataError, match="is not one of"):
        data.load(tmp_path / "t.txt", stream=True)
    long = tmp_path / "long.csv"
    long.write_text("sequence_id,t,x\na,0,1\na,1,2\nb,0,3\nc,0,1\n")
    assert sources.memory_bytes(long) is None
    with pytest.raises(DataError, match="long format"):
        data.load(long, stream=True)


def test_reading_a_large_npy_in_batches_keeps_memory_small(tmp_path):
    size = 200 * 2**20  # 200 MB of uint8
    if shutil.disk_usage(tmp_path).free < 4 * size:
        pytest.skip("not enough disk space for a 200 MB file")
    rows = size // 4096
    out = np.lib.format.open_memmap(tmp_path / "big.npy", mode="w+", dtype=np.uint8,
                                    shape=(rows, 4096))  # fmt: skip
    for a in range(0, rows, 8192):  # written in chunks
        out[a : a + 8192] = (np.arange(a, min(a + 8192, rows)) % 251)[:, None]
    del out
    tracemalloc.start()
    try:
        source = open_source(tmp_path / "big.npy")
        total = sum(int(batch[:, 0].sum()) for _, batch in source.batches())
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert source.spec.describe() == "categorical(251) (4096,)"
    assert total == int((np.arange(rows) % 251).sum())
    assert peak < size / 10, f"peak traced memory {peak / 2**20:.1f} MB"


def test_cli_records_streaming_and_eval_reads_the_same_data(tmp_path):
    from click.testing import CliRunner

    from ptheta.cli import cli

    np.save(tmp_path / "x.npy", np.random.default_rng(8).integers(0, 3, size=(60, 4)))
    run = tmp_path / "run"
    fit = CliRunner().invoke(cli, ["fit", "independent", "--data", str(tmp_path / "x.npy"),
                                   "--stream", "--out", str(run)])  # fmt: skip
    assert fit.exit_code == 0, fit.output
    assert "Fitted independent on x.npy" in fit.output
    assert json.loads((run / "config.json").read_text())["data"]["stream"] is True
    evaluated = CliRunner().invoke(cli, ["eval", str(run)])
    assert evaluated.exit_code == 0, evaluated.output
    assert "not the data" not in evaluated.output
    again = CliRunner().invoke(cli, ["eval", str(run), "--no-stream"])  # read whole: other
    assert "not the data" in again.output.replace("\n", " ")


def test_a_source_is_identified_by_its_content_not_its_path_or_times(tmp_path):
    # a copy, a move or a `touch` is the same data (a resumed fit and `ptheta eval` accept
    # it); an edit of one value, the size kept, is not
    rng = np.random.default_rng(0)
    x = rng.integers(0, 3, size=(300, 5))
    np.save(tmp_path / "x.npy", x)
    _shards(tmp_path / "shards", x)
    (tmp_path / "img").mkdir()
    for i in range(4):
        Image.fromarray(_gray(i)).save(tmp_path / "img" / f"{i}.png")
    pd.DataFrame(x, columns=list("abcde")).to_csv(tmp_path / "t.csv", index=False)
    for name, edit in [
        ("x.npy", lambda p: np.save(p, np.where(np.arange(5) == 2, 2 - x, x))),
        ("shards", lambda p: np.save(sorted(p.glob("*.npy"))[0], np.zeros_like(x[:75]))),
        ("img", lambda p: Image.fromarray(255 - _gray(0)).save(p / "0.png")),
        ("t.csv", lambda p: p.write_text(p.read_text().replace("\n1,", "\n2,", 1))),
    ]:
        path = tmp_path / name
        before = sources.open_source(path).identity()
        moved = tmp_path / f"moved-{name}"
        shutil.copytree(path, moved) if path.is_dir() else shutil.copy(path, moved)
        for p in [moved, *moved.glob("*")]:
            os.utime(p, (1, 1))  # a `touch` to another time
        assert sources.open_source(moved).identity() == before, name
        edit(moved)
        assert sources.open_source(moved).identity() != before, name
