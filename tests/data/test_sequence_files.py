"""Tests of variable-length sequences read from files: .txt lines, long CSV, .npz of values
and offsets; their splits by sequence, their errors, and the CLI's data options."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest
from click.testing import CliRunner

import ptheta
import ptheta.data as data
from ptheta.cli import cli
from ptheta.data.sequences import decode
from ptheta.errors import DataError

SPLITS = ("train", "val", "test")
LINES = [
    "the cat sat on the mat",
    "a dog",
    "the  dog   barked",  # runs of spaces: characters in chars mode, one gap in words mode
    "cats and dogs",
    "x",
    "ça va ✓",
    "the end of it all",
    "on and on",
    "mat",
    "a cat and a dog sat",
]


def _all_sequences(d):
    """Every sequence of every split: [(split name, sequence, label or None)]."""
    out = []
    for name in SPLITS:
        split = d.split(name)
        ys = [None] * len(split) if split.y is None else split.y
        out += [(name, s, y) for s, y in zip(split.sequences, ys, strict=True)]
    return out


# --------------------------------------------------------------------------- .txt lines
def test_lines_of_characters_are_whole_sequences_split_by_line(tmp_path):
    path = tmp_path / "lines.txt"
    path.write_text("\n\n".join(LINES) + "\n   \n\t\n", encoding="utf-8")  # blank lines
    d = data.load(path, lines="chars", seed=5)
    vocab = sorted(set("".join(LINES)))
    assert d.extra["vocab"] == vocab and d.extra["lines"] == "chars"
    assert d.spec.variable_length and d.kind == "categorical" and d.n_categories == len(vocab)
    assert d.spec.step_shape == ()
    # each line is one sequence, decoded whole, in exactly one split
    decoded = [(name, decode(d, [s])[0]) for name, s, _ in _all_sequences(d)]
    assert Counter(text for _, text in decoded) == Counter(LINES)
    assert [sum(n == name for n, _ in decoded) for name in SPLITS] == [8, 1, 1]
    assert d.event_shape == (max(len(t) for n, t in decoded if n == "train"),)
    # decode takes the Sequences of a split (what a model's sample returns)
    assert decode(d, d.test.sequences) == [t for n, t in decoded if n == "test"]
    # the seed decides which lines go where; the same seed, the same split
    assert data.load(path, lines="chars", seed=5).fingerprint() == d.fingerprint()
    assert data.load(path, lines="chars", seed=6).fingerprint() != d.fingerprint()


def test_lines_of_words(tmp_path):
    path = tmp_path / "words.txt"
    path.write_text("\r\n".join(LINES), encoding="utf-8")  # Windows line ends
    d = data.load(path, lines="words")
    words = sorted({w for line in LINES for w in line.split()})
    assert d.extra["vocab"] == words and d.n_categories == len(words)
    decoded = [decode(d, [s])[0] for _, s, _ in _all_sequences(d)]
    assert Counter(decoded) == Counter(" ".join(line.split()) for line in LINES)
    lengths = np.concatenate([d.split(n).lengths for n in SPLITS])
    assert sorted(lengths) == sorted(len(line.split()) for line in LINES)


def test_more_than_256_distinct_words_stay_categorical(tmp_path):
    # integer tokens above 255 would be read as continuous if the kind were inferred
    path = tmp_path / "many.txt"
    path.write_text("\n".join(f"w{i} w{i + 1}" for i in range(300)), encoding="utf-8")
    d = data.load(path, lines="words")
    assert d.kind == "categorical" and d.n_categories == 301


@pytest.mark.parametrize(
    ("text", "options", "match"),
    [
        ("\n  \n\t\n", {"lines": "chars"}, "0 non-blank line"),
        ("ab\nba\n", {"lines": "chars"}, "at least 3"),
        ("aa\na\naaa\n", {"lines": "chars"}, "single character"),
        ("one\none one\none\n", {"lines": "words"}, "single word"),
        ("ab\nba\nab\n", {"lines": "bytes"}, "'chars' .* or 'words'"),
        ("ab\nba\nab\n" * 50, {"lines": "chars", "seq_len": 4}, "give one of the two"),
        ("abc\nba\nab\n", {"lines": "chars", "kind": "binary"}, r"values 0\.\.1"),
    ],
)
def test_bad_line_files_are_one_clear_error(tmp_path, text, options, match):
    path = tmp_path / "bad.txt"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(DataError, match=match):
        data.load(path, **options)


def test_lines_applies_to_text_files_only(tmp_path):
    np.save(tmp_path / "a.npy", np.zeros((5, 2)))
    with pytest.raises(DataError, match=r"\.txt files only"):
        data.load(tmp_path / "a.npy", lines="chars")
    with pytest.raises(DataError, match="built-in"):
        data.load("nile", lines="chars")


# --------------------------------------------------------------------------- long CSV
def _write_long_csv(path, seqs, labels=None, *, delimiter=",", id_name="sequence_id", t="t"):
    """One row per step, rows shuffled, time stamps increasing but not 0, 1, 2."""
    rng = np.random.default_rng(0)
    dims = 1 if seqs[0].ndim == 1 else seqs[0].shape[1]
    header = [id_name, "value"] if dims == 1 else [id_name, *(f"v{j}" for j in range(dims))]
    header.insert(1, t)
    if labels is not None:
        header.append("label")
    rows = []
    for i, s in enumerate(seqs):
        times = np.cumsum(rng.uniform(0.5, 2.0, size=len(s)))
        for step, time in zip(s.reshape(len(s), -1), times, strict=True):
            row = [f"id{i}", f"{time:.17g}", *(f"{v:.17g}" for v in step)]
            rows.append(row + ([] if labels is None else [labels[i]]))
    rows = [rows[i] for i in rng.permutation(len(rows))]
    lines = [delimiter.join(header)] + [delimiter.join(r) for r in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _check_round_trip(d, seqs, labels=None):
    got = _all_sequences(d)
    assert len(got) == len(seqs)
    remaining = list(range(len(seqs)))
    for _, s, y in got:  # each file sequence appears whole, in order, exactly once
        match = [i for i in remaining if len(seqs[i]) == len(s) and np.allclose(seqs[i], s)]
        assert match, s
        remaining.remove(match[0])
        if labels is not None:
            assert d.classes[y] == labels[match[0]]
    assert remaining == []


@pytest.mark.parametrize("dims", [1, 3])
def test_long_csv_sorts_each_sequence_by_t(tmp_path, dims):
    rng = np.random.default_rng(1)
    shape = () if dims == 1 else (dims,)
    seqs = [rng.normal(size=(rng.integers(1, 8), *shape)) for _ in range(20)]
    labels = ["up" if s.sum() > 0 else "down" for s in seqs]
    path = _write_long_csv(tmp_path / "walks.csv", seqs, labels)
    d = data.load(path, label_column="label", seed=2)
    assert d.spec.variable_length and d.kind == "continuous"
    assert d.spec.step_shape == shape
    assert d.extra["format"] == "csv-long"
    _check_round_trip(d, seqs, labels)
    assert [len(d.split(n)) for n in SPLITS] == [16, 2, 2]


def test_long_csv_with_other_column_names_and_delimiters(tmp_path):
    seqs = [np.array([1, 0, 1]), np.array([0]), np.array([1, 1]), np.array([0, 0, 0, 1])]
    path = _write_long_csv(tmp_path / "b.csv", seqs, delimiter="\t", id_name="seq_id", t="time")
    d = data.load(path)
    assert d.kind == "binary" and d.spec.variable_length
    _check_round_trip(d, seqs)
    assert data.load(path, kind="categorical:4").n_categories == 4


def test_long_csv_ids_may_be_numbers_and_missing_values_are_nan(tmp_path):
    path = tmp_path / "n.csv"
    path.write_text("sequence_id,t,x\n10,0,1.5\n2,1,\n2,0,0.5\n10,1,2.5\n3,0,1\n", "utf-8")
    d = data.load(path)
    got = sorted((s.tolist() for _, s, _ in _all_sequences(d)), key=len)
    assert got[0] == [1.0] and [1.5, 2.5] in got
    assert any(len(s) == 2 and s[0] == 0.5 and np.isnan(s[1]) for s in got)
    # a missing level in discrete sequences is kept as NaN too (hmm fits and scores it)
    path.write_text("sequence_id,t,x\na,0,1\nb,0,\nb,1,0\nc,0,2\n", "utf-8")
    d = data.load(path)
    assert d.kind == "categorical"
    assert sum(int(np.isnan(s).sum()) for _, s, _ in _all_sequences(d)) == 1


@pytest.mark.parametrize(
    ("text", "options", "match"),
    [
        ("sequence_id,x\na,1\nb,2\n", {}, "no time column: add a column t"),
        ("sequence_id,t,x\na,0,1\na,1,oops\nb,0,2\n", {}, r"'x' .* not numeric \(row 3"),
        (
            "sequence_id,t,x,group\na,0,1,u\na,1,2,u\nb,0,2,v\nc,0,1,v\n",
            {},
            r"'group' .* not numeric .*label_column='group'",
        ),
        (
            "sequence_id,t,x,y,g\na,0,1,u,1\nb,0,2,v,1\nc,0,1,v,2\n",
            {"label_column": "g"},
            r"'y' .* not numeric .*only numeric columns can be values",
        ),
        ("sequence_id,t,x\na,0,1\na,,2\nb,0,2\n", {}, "row 3 .* has no t"),
        ("sequence_id,t,x\na,0,1\na,first,2\nb,0,2\n", {}, "t must hold numbers"),
        ("sequence_id,t,x\na,0,1\n,1,2\nb,0,2\n", {}, "row 3 .* has no sequence_id"),
        ("sequence_id,t,x\na,0,1\na,0,2\nb,0,2\n", {}, "two rows for sequence 'a' at t=0"),
        ("sequence_id,t\na,0\nb,0\nc,0\n", {}, "no value columns"),
        (
            "sequence_id,t,x,y\na,0,1,cat\na,1,2,dog\nb,0,2,cat\nc,0,1,dog\n",
            {"label_column": "y"},
            "sequence 'a' .* two labels .*'cat' and 'dog'",
        ),
        ("sequence_id,t,x,y\na,0,1,u\nb,0,2,\nc,0,1,v\n", {"label_column": "y"}, "empty cells"),
        ("sequence_id,t,x\na,0,1\nb,0,2\nc,0,1\n", {"label_column": "z"}, "label column"),
        ("sequence_id,t,x\na,0,1\nb,0,2\n", {}, "at least 3"),
    ],
)
def test_bad_long_csv_files_are_one_clear_error(tmp_path, text, options, match):
    path = tmp_path / "bad.csv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(DataError, match=match):
        data.load(path, **options)


def test_a_csv_without_sequence_id_stays_a_table(tmp_path):
    path = tmp_path / "flat.csv"
    path.write_text("t,x\n" + "".join(f"{i},{i % 3}\n" for i in range(10)), "utf-8")
    d = data.load(path)
    assert not d.spec.variable_length and d.event_shape == (2,)


# --------------------------------------------------------------------------- .npz
def test_npz_of_values_and_offsets_or_lengths(tmp_path):
    rng = np.random.default_rng(3)
    seqs = [rng.integers(0, 6, size=(k, 2)) for k in rng.integers(1, 9, size=15)]
    values = np.concatenate(seqs)
    lengths = np.array([len(s) for s in seqs])
    labels = np.array([i % 3 for i in range(15)])
    np.savez(tmp_path / "o.npz", values=values, offsets=np.r_[0, np.cumsum(lengths)], y=labels)
    np.savez(tmp_path / "l.npz", values=values, lengths=lengths, y=labels)
    a, b = data.load(tmp_path / "o.npz", seed=1), data.load(tmp_path / "l.npz", seed=1)
    assert a.fingerprint() == b.fingerprint()
    assert a.kind == "categorical" and a.spec.step_shape == (2,) and a.spec.variable_length
    _check_round_trip(a, seqs, [str(v) for v in labels])


@pytest.mark.parametrize(
    ("arrays", "match"),
    [
        ({"values": np.arange(6), "offsets": [0, 2, 5]}, "end at the number of steps"),
        ({"values": np.arange(6), "offsets": [0, 4, 2, 6]}, "increase strictly"),
        ({"values": np.arange(6), "lengths": [2, 2]}, "lengths sum to 4 but"),
        ({"values": np.arange(6), "offsets": [0, 6], "lengths": [6]}, "both 'offsets'"),
        ({"values": np.arange(6), "lengths": [2, 2, 2], "y": [0, 1]}, r"one label per sequence"),
        ({"values": np.arange(6.0) / 2, "lengths": [2, 2, 2], "y": [0.5, 1, 0]}, "non-integer"),
    ],
)
def test_bad_sequence_npz_files_are_one_clear_error(tmp_path, arrays, match):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(DataError, match=match):
        data.load(path)


def test_a_list_of_arrays_in_python_becomes_a_dataset():
    seqs = [np.arange(k) % 4 for k in range(1, 21)]
    d = ptheta.data.sequence_dataset(seqs, name="mine", seed=0)
    assert d.spec.describe() == f"categorical(4) sequences of up to {d.train.lengths.max()} steps"
    _check_round_trip(d, seqs)


# --------------------------------------------------------------------------- the CLI
def _cli(*args):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_cli_lines_and_seq_len_together_are_one_error(tmp_path):
    path = tmp_path / "l.txt"
    path.write_text("\n".join(LINES * 10), encoding="utf-8")
    result = _cli("fit", "independent", "--data", str(path), "--lines", "chars",
                  "--seq-len", "8", "--out", str(tmp_path / "r"))  # fmt: skip
    assert result.exit_code == 2 and "give one of the two" in result.output
    result = _cli("fit", "independent", "--data", str(path), "--lines", "letters",
                  "--out", str(tmp_path / "r"))  # fmt: skip
    assert result.exit_code == 2 and "'chars', 'words'" in result.output
    assert "--lines [chars|words]" in _cli("fit", "--help").output


def test_cli_fits_hmm_on_lines_and_reads_them_back(tmp_path):
    if not ptheta.make("hmm").capabilities().variable_length:
        pytest.skip("hmm does not model variable-length sequences yet")
    path = tmp_path / "l.txt"
    path.write_text("\n".join(LINES), encoding="utf-8")
    out = tmp_path / "run"
    options = ["--lines", "words", "--data-seed", "3", "--set", "n_states=2", "--set", "max_iter=3"]
    result = _cli("fit", "hmm", "--data", str(path), *options, "--out", str(out), "--quiet")
    assert result.exit_code == 0, result.output
    config = json.loads((out / "config.json").read_text())
    expected = data.load(path, lines="words", seed=3)
    assert config["data"]["fingerprint"] == expected.fingerprint()
    # the run remembers how its data were read: eval loads the same lines again
    from ptheta.runs.fitting import load_run_data

    assert load_run_data(out).fingerprint() == expected.fingerprint()
    assert _cli("eval", str(out)).exit_code == 0
