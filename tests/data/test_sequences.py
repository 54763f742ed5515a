"""Tests of sequence data: built-in time series as tokens, text files as characters."""

from __future__ import annotations

import numpy as np
import pytest

import ptheta.data as data
from ptheta.data.sequences import (
    SERIES,
    decode,
    encode_values,
    fit_bins,
    series_dataset,
    text_dataset,
)
from ptheta.errors import DataError


@pytest.fixture(scope="module", params=sorted(SERIES))
def series(request):
    return data.load(request.param)


# --------------------------------------------------------------------------- binning
def test_quantile_bins_hold_equal_counts_of_distinct_values():
    values = np.random.default_rng(0).permutation(np.arange(100.0))
    edges, centres = fit_bins(values, 4)
    np.testing.assert_array_equal(np.bincount(encode_values(values, edges)), [25, 25, 25, 25])
    np.testing.assert_allclose(centres, [12.0, 37.0, 62.0, 87.0])


def test_tied_values_merge_bins_but_never_leave_one_empty():
    values = np.array([0.0] * 50 + [1.0] * 3 + [2.0] * 40 + list(range(3, 10)))
    edges, centres = fit_bins(values, 10)
    counts = np.bincount(encode_values(values, edges), minlength=len(centres))
    assert len(centres) < 10 and np.all(counts > 0)
    assert np.all(np.diff(edges) > 0)
    # every centre lies in its own bin, so encoding the centres gives back the tokens
    np.testing.assert_array_equal(encode_values(centres, edges), np.arange(len(centres)))


def test_bins_are_fitted_on_the_training_years_only(series):
    e = series.extra
    a, _ = e["bounds"]
    edges, centres = fit_bins(e["series"][:a], SERIES[series.name].n_bins)
    np.testing.assert_array_equal(e["bin_edges"], edges)
    np.testing.assert_array_equal(e["bin_centres"], centres)
    whole, _ = fit_bins(e["series"], SERIES[series.name].n_bins)
    assert whole.shape != edges.shape or not np.array_equal(whole, edges)
    np.testing.assert_array_equal(e["tokens"], encode_values(e["series"], edges))
    assert series.n_categories == len(centres)
    # equal frequency on the training part: no bin far from its share
    counts = np.bincount(e["tokens"][:a], minlength=len(centres))
    assert counts.min() > 0.5 * a / len(centres) and counts.max() < 2 * a / len(centres)


def test_windows_stay_inside_their_split(series):
    e = series.extra
    a, b = e["bounds"]
    n, t = len(e["series"]), e["seq_len"]
    assert series.event_shape == (t,) and series.kind == "categorical"
    for name, lo, hi, step in (("train", 0, a, e["stride"]), ("val", a, b, t), ("test", b, n, t)):
        starts = e["window_starts"][name]
        x = series.split(name).x
        assert len(x) == len(starts) >= 3
        assert starts.min() >= lo and starts.max() + t <= hi, name
        np.testing.assert_array_equal(np.diff(starts), step)
        np.testing.assert_array_equal(x, e["tokens"][starts[:, None] + np.arange(t)])


def test_decode_maps_tokens_to_bin_centres_and_back(series):
    e = series.extra
    x = series.test.x
    values = decode(series, x)
    assert values.shape == x.shape
    np.testing.assert_array_equal(values, e["bin_centres"][x])
    np.testing.assert_array_equal(encode_values(values, e["bin_edges"]), x)
    # a value inside the training range decodes to within one bin of itself
    a, _ = e["bounds"]
    train = e["series"][:a]
    inner = e["series"][(e["series"] > train.min()) & (e["series"] < train.max())]
    bounds = np.concatenate([[train.min()], e["bin_edges"], [train.max()]])
    tokens = encode_values(inner, e["bin_edges"])
    width = bounds[tokens + 1] - bounds[tokens]
    assert np.all(np.abs(decode(series, tokens) - inner) <= width)


def test_documented_sizes_match():
    rows = {r["name"]: r for r in data.list_datasets()}
    for name in SERIES:
        r = rows[name]
        sizes = f"{r['n_train']} / {r['n_val']} / {r['n_test']} windows"
        assert sizes in r["description"], name
        assert r["event_shape"] == (SERIES[name].seq_len,)


def test_co2_is_modelled_as_changes_so_held_out_tokens_spread_over_bins():
    co2 = data.load("co2")
    held_out = np.concatenate([co2.val.x, co2.test.x])
    assert len(np.unique(held_out)) > co2.n_categories // 2


def test_series_settings_can_be_changed_and_are_checked():
    d = series_dataset("sunspots", n_bins=32, seq_len=10, stride=5)
    assert d.n_categories == 32 and d.event_shape == (10,)
    np.testing.assert_array_equal(np.diff(d.extra["window_starts"]["train"]), 5)
    with pytest.raises(DataError, match="seq_len <= 15"):
        series_dataset("nile", seq_len=16)
    with pytest.raises(DataError, match="stride"):
        series_dataset("nile", stride=0)
    with pytest.raises(DataError, match="seq_len"):
        data.load("sunspots", seq_len=8)


def test_cached_series_cannot_be_corrupted_by_callers():
    d = data.load("nile")
    d.train.x[:] = 0
    with pytest.raises(ValueError, match="read-only"):
        d.extra["bin_centres"][0] = 1.0
    assert data.load("nile").train.x.max() > 0


# --------------------------------------------------------------------------- text
TEXT = "The quick brown fox jumps over the lazy dog; ça va? ✓\n" * 7


def test_text_file_round_trip(tmp_path):
    path = tmp_path / "fox.txt"
    path.write_text(TEXT, encoding="utf-8")
    d = data.load(path, seq_len=10)
    assert d.extra["vocab"] == sorted(set(TEXT))
    assert d.kind == "categorical" and d.n_categories == len(set(TEXT))
    assert d.event_shape == (10,)
    a, b = d.extra["bounds"]
    assert (a, b) == (int(0.8 * len(TEXT)), int(0.9 * len(TEXT)))
    # split by position, cut into whole windows: decoding gives the text back
    for split, lo, hi in (("train", 0, a), ("val", a, b), ("test", b, len(TEXT))):
        x = d.split(split).x
        assert len(x) == (hi - lo) // 10
        assert "".join(decode(d, x)) == TEXT[lo : lo + 10 * len(x)]
    assert decode(d, d.train.x[0]) == [TEXT[:10]]


def test_text_default_window_and_spec(tmp_path):
    path = tmp_path / "long.txt"
    path.write_text("abcab" * 400, encoding="utf-8")
    d = data.load(str(path))
    assert d.event_shape == (64,) and d.n_categories == 3
    assert (len(d.train), len(d.val), len(d.test)) == (25, 3, 3)


def test_bad_text_files_are_clear_errors(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    with pytest.raises(DataError, match="empty"):
        data.load(empty)
    short = tmp_path / "short.txt"
    short.write_text("hello world, " * 10)
    with pytest.raises(DataError, match=r"too short .* seq_len <= 13"):
        data.load(short)
    with pytest.raises(DataError, match="single character"):
        text_dataset("aaaaaaaaaaaaaaaaaaaa", seq_len=2)
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("café ".encode("latin-1") * 100)
    with pytest.raises(DataError, match="UTF-8"):
        data.load(latin1)
    with pytest.raises(DataError, match="seq_len"):
        text_dataset(TEXT, seq_len=0)
    np.save(tmp_path / "a.npy", np.zeros((5, 2)))
    with pytest.raises(DataError, match=r"\.txt files only"):
        data.load(tmp_path / "a.npy", seq_len=4)


def test_decode_rejects_what_it_cannot_decode():
    d = text_dataset(TEXT, seq_len=5)
    with pytest.raises(DataError, match=r"0\.\.32"):
        decode(d, [[0, 99]])
    with pytest.raises(DataError, match="whole numbers"):
        decode(d, [0.5])
    with pytest.raises(DataError, match="no vocabulary or bins"):
        decode(data.load("digits"), [[0, 1]])
