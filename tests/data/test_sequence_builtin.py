"""Tests of the built-in sequence data: real-valued series, the multivariate macro series,
the unicode-words corpus, and the summaries `ptheta datasets` lists for every built-in."""

from __future__ import annotations

import unicodedata

import numpy as np
import pytest
from click.testing import CliRunner

import ptheta.data as data
from ptheta.cli import cli
from ptheta.data.builtin import SUMMARIES
from ptheta.data.sequences import (
    MACRO_COLUMNS,
    REAL_SERIES,
    SERIES,
    decode,
    encode_values,
    real_series_dataset,
)
from ptheta.data.text import unicode_words
from ptheta.errors import DataError, UnknownNameError

SPLITS = ("train", "val", "test")


def _summary(d):
    kind = f"categorical({d.n_categories})" if d.kind == "categorical" else d.kind
    if d.spec.variable_length:
        kind += " sequences"
    sizes = tuple(len(d.split(s)) for s in SPLITS)
    return (kind, d.event_shape, *sizes, d.train.y is not None)


@pytest.mark.parametrize("name", list(data.BUILTIN))
def test_summaries_match_the_loaded_data(name):
    assert SUMMARIES[name] == _summary(data.load(name))


# --------------------------------------------------------------------------- real series
@pytest.mark.parametrize("name", sorted(SERIES))
def test_real_series_are_the_windows_of_the_binned_ones(name):
    real, binned = data.load(f"{name}-real"), data.load(name)
    assert real.kind == "continuous" and real.train.x.dtype == np.float64
    assert real.event_shape == binned.event_shape
    assert real.extra["bounds"] == binned.extra["bounds"]
    series, edges = binned.extra["series"], binned.extra["bin_edges"]
    np.testing.assert_array_equal(real.extra["series"], series)
    t = real.extra["seq_len"]
    for split in SPLITS:
        starts = real.extra["window_starts"][split]
        np.testing.assert_array_equal(starts, binned.extra["window_starts"][split])
        x = real.split(split).x
        np.testing.assert_array_equal(x, series[starts[:, None] + np.arange(t)])
        # binning the real windows gives the binned data set's tokens, window by window
        np.testing.assert_array_equal(encode_values(x, edges), binned.split(split).x)
    assert f"{len(real.train)} / {len(real.val)} / {len(real.test)} windows" in real.description


def test_macro_growth_is_the_log_growth_of_the_shipped_levels():
    from statsmodels.datasets import macrodata

    frame = macrodata.load_pandas().data
    d = data.load("macro-growth")
    assert d.kind == "continuous" and d.event_shape == (10, 3)
    assert d.extra["columns"] == MACRO_COLUMNS == ("realgdp", "realcons", "realinv")
    growth = d.extra["series"]  # (202, 3): % per quarter
    levels = frame[list(MACRO_COLUMNS)].to_numpy(float)
    # compounding the growth from the first quarter gives back every later level
    rebuilt = levels[0] * np.exp(np.cumsum(growth, axis=0) / 100)
    np.testing.assert_allclose(rebuilt, levels[1:], rtol=1e-10)
    assert d.extra["times"][0] == 1959.25 and d.extra["times"][-1] == 2009.5
    a, b = d.extra["bounds"]
    for split, lo, hi in (("train", 0, a), ("val", a, b), ("test", b, len(growth))):
        starts = d.extra["window_starts"][split]
        assert starts.min() >= lo and starts.max() + 10 <= hi  # no window crosses a boundary
        np.testing.assert_array_equal(d.split(split).x, growth[starts[:, None] + np.arange(10)])
    # the test windows reach 2009Q2, through the recession: investment fell over 5 % a quarter
    assert d.extra["times"][d.extra["window_starts"]["test"][-1] + 9] == 2009.25
    assert d.test.x[..., 2].min() < -5 < d.train.x[..., 2].mean()


def test_real_series_settings_are_checked():
    d = real_series_dataset("nile-real", seq_len=10, stride=3)
    assert d.event_shape == (10,)
    np.testing.assert_array_equal(np.diff(d.extra["window_starts"]["train"]), 3)
    with pytest.raises(DataError, match="seq_len <= 15"):
        real_series_dataset("nile-real", seq_len=16)
    with pytest.raises(DataError, match="stride"):
        real_series_dataset("macro-growth", stride=0)
    with pytest.raises(UnknownNameError, match="did you mean 'nile-real'"):
        real_series_dataset("nile-reel")
    assert set(REAL_SERIES) == {f"{n}-real" for n in SERIES} | {"macro-growth"}


# --------------------------------------------------------------------------- unicode-words
def test_unicode_words_are_the_words_of_the_listed_character_names():
    words = unicode_words()
    assert words == sorted(set(words))
    for name in ("LATIN CAPITAL LETTER A", "HIRAGANA LETTER SMALL KA", "HYPHEN-MINUS"):
        for word in name.lower().split():
            assert word in words
    # names made up by rule (the code point in hex, Hangul syllables) are left out
    assert not any(w.startswith(("ideograph-", "syllable")) for w in words if "-" in w)
    assert "ideograph-4e00" not in words and "gag" not in words
    assert set("".join(words)) == set("abcdefghijklmnopqrstuvwxyz0123456789-")
    # brute force over the whole Unicode 3.2 database: every listed name's words are there
    rng = np.random.default_rng(0)
    named = [c for c in map(chr, rng.integers(0, 0x30000, size=5000))]
    for c in named:
        name = unicodedata.ucd_3_2_0.name(c, "")
        if name and not name.endswith(f"-{ord(c):04X}") and "HANGUL SYLLABLE" not in name:
            assert set(name.lower().split()) <= set(words), name


def test_unicode_words_split_by_word():
    d = data.load("unicode-words")
    assert d.spec.variable_length and d.kind == "categorical" and d.n_categories == 37
    assert d.extra["vocab"] == sorted("abcdefghijklmnopqrstuvwxyz0123456789-")
    decoded = {s: decode(d, d.split(s).sequences) for s in SPLITS}
    everything = [w for s in SPLITS for w in decoded[s]]
    assert sorted(everything) == unicode_words()  # each word whole, in exactly one split
    assert [len(decoded[s]) for s in SPLITS] == [3780, 472, 472]
    assert d.event_shape == (max(map(len, decoded["train"])),)
    for s in SPLITS:
        np.testing.assert_array_equal(d.split(s).lengths, [len(w) for w in decoded[s]])
    assert data.load("unicode-words").fingerprint() == d.fingerprint()  # a fixed split
    assert "Unicode 3.2" in d.description and "Python" in d.description


def test_ragged_builtins_keep_their_lengths_and_their_cache():
    d = data.load("unicode-words")
    d.train.lengths[:] = 1
    d.train.x[:] = 0
    fresh = data.load("unicode-words")
    assert fresh.train.lengths.max() == 24 and fresh.train.x.max() > 0
    wider = data.load("unicode-words", kind="categorical:40")
    assert wider.n_categories == 40 and wider.spec.variable_length
    assert decode(wider, wider.val.sequences) == decode(fresh, fresh.val.sequences)
    with pytest.raises(DataError, match=r"values 0\.\.1"):
        data.load("unicode-words", kind="binary")


def test_ptheta_datasets_lists_the_new_data():
    out = CliRunner().invoke(cli, ["datasets"], catch_exceptions=False).output
    for name in ("unicode-words", "macro-growth", "sunspots-real", "categorical(37) sequences"):
        assert name in out
    assert "up to 24" in out
