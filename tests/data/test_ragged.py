"""Tests of variable-length sequences (`ptheta.data.ragged`): the container, its checks and
the data set split by sequence."""

from __future__ import annotations

import numpy as np
import pytest

from ptheta.data import DataSpec, Split
from ptheta.data.ragged import (
    Sequences,
    as_sequences,
    check_sequences,
    infer_sequence_spec,
    is_ragged,
    sequence_dataset,
)
from ptheta.errors import DataError


def _random_sequences(rng, n, step_shape=(), high=5, longest=7):
    lengths = rng.integers(1, longest + 1, size=n)
    return [rng.integers(0, high, size=(k, *step_shape)) for k in lengths]


def _same(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)


# --------------------------------------------------------------------------- the container
@pytest.mark.parametrize("step_shape", [(), (3,), (2, 2)])
def test_from_list_pads_with_zeros_and_gives_the_sequences_back(step_shape):
    rng = np.random.default_rng(0)
    seqs = [s + 1 for s in _random_sequences(rng, 9, step_shape)]  # no real step is 0
    packed = Sequences.from_list(seqs)
    assert packed.values.shape == (9, max(map(len, seqs)), *step_shape)
    assert packed.step_shape == step_shape and len(packed) == 9
    np.testing.assert_array_equal(packed.lengths, [len(s) for s in seqs])
    _same(packed.to_list(), seqs)
    _same(list(packed), seqs)
    # everything after an end is padding, and padding is zeros
    mask = packed.mask()
    assert mask.sum() == packed.n_steps == sum(map(len, seqs))
    assert np.all(packed.values[~mask] == 0) and np.all(packed.values[mask] != 0)
    np.testing.assert_array_equal(mask.sum(axis=1), packed.lengths)


@pytest.mark.parametrize("step_shape", [(), (3,)])
def test_offsets_lengths_and_concatenated_are_inverse(step_shape):
    rng = np.random.default_rng(1)
    seqs = _random_sequences(rng, 12, step_shape)
    packed = Sequences.from_list(seqs)
    flat, offsets = packed.concatenated()
    np.testing.assert_array_equal(flat, np.concatenate(seqs))
    np.testing.assert_array_equal(offsets, np.r_[0, np.cumsum([len(s) for s in seqs])])
    _same(Sequences.from_offsets(flat, offsets).to_list(), seqs)
    _same(Sequences.from_offsets(flat, lengths=np.diff(offsets)).to_list(), seqs)
    # hmmlearn's form: lengths as floats that are whole numbers
    _same(Sequences.from_offsets(flat, lengths=np.diff(offsets).astype(float)).to_list(), seqs)


def test_from_array_is_every_sequence_of_full_length():
    x = np.arange(12).reshape(3, 4)
    packed = Sequences.from_array(x)
    np.testing.assert_array_equal(packed.lengths, [4, 4, 4])
    _same(packed.to_list(), list(x))
    assert packed.mask().all()


def test_indexing_keeps_each_sequence_and_trims_the_padding():
    seqs = [[1, 2, 3, 4, 5], [6], [7, 8], [9, 10, 11]]
    packed = Sequences.from_list(seqs)
    np.testing.assert_array_equal(packed[2], [7, 8])
    np.testing.assert_array_equal(packed[-1], [9, 10, 11])
    for index, expected in (
        (slice(1, 3), [1, 2]),
        (np.array([3, 1]), [3, 1]),
        ([0, 2], [0, 2]),
        (np.array([False, True, True, False]), [1, 2]),
    ):
        part = packed[index]
        assert isinstance(part, Sequences)
        _same(part.to_list(), [np.array(seqs[i]) for i in expected])
        # padded to its own longest sequence, not to the whole set's
        assert part.max_length == max(len(seqs[i]) for i in expected)
    with pytest.raises(DataError, match="no sequences"):
        packed[np.zeros(4, dtype=bool)]


def test_repr_says_counts_lengths_and_steps():
    assert repr(Sequences.from_list([[1], [2, 3, 4]])) == "Sequences(2 sequences of 1-3 steps)"
    text = repr(Sequences.from_list([np.ones((2, 3)), np.ones((1, 3))]))
    assert text == "Sequences(2 sequences of 1-2 steps, steps of shape (3,))"


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: Sequences.from_list([[1, 2], []]), "sequence 1 .* empty"),
        (lambda: Sequences.from_list([]), r"empty \(0 sequences\)"),
        (lambda: Sequences.from_list([[1, 2], 3]), "single number"),
        (lambda: Sequences.from_list([np.ones((2, 3)), np.ones((2, 2))]), "different shapes"),
        (lambda: Sequences.from_list([["a", "b"], ["c"]]), "numeric"),
        (lambda: Sequences(np.zeros((2, 3)), [1, 4]), r"lengths must lie in 1\.\.3"),
        (lambda: Sequences(np.zeros((2, 3)), [0, 2]), r"1\.\.3"),
        (lambda: Sequences(np.zeros((2, 3)), [1.5, 2]), "whole numbers"),
        (lambda: Sequences(np.zeros((2, 3)), [1, 2, 3]), "one length per sequence"),
        (lambda: Sequences(np.zeros(3), [1, 2, 3]), r"\(N, T, \.\.\.\)"),
        (lambda: Sequences.from_offsets(np.arange(5), [0, 2, 4]), "end at the number of steps"),
        (lambda: Sequences.from_offsets(np.arange(5), [1, 2, 5]), "start at 0"),
        (lambda: Sequences.from_offsets(np.arange(5), [0, 3, 3, 5]), "increase strictly"),
        (lambda: Sequences.from_offsets(np.arange(5), [0, 2.5, 5]), "whole numbers"),
        (lambda: Sequences.from_offsets(np.arange(5), lengths=[2, 2]), "lengths sum to 4 but"),
        (lambda: Sequences.from_offsets(np.arange(5), lengths=[5, 0]), ">= 1"),
        (lambda: Sequences.from_offsets(np.arange(5)), "one of the two"),
        (lambda: Sequences.from_offsets(np.arange(5), [0, 5], lengths=[5]), "one of the two"),
        (lambda: Sequences.from_array(np.arange(5)), r"\(N, T, \.\.\.\)"),
    ],
)
def test_bad_sequences_are_one_clear_error(make, match):
    with pytest.raises(DataError, match=match):
        make()


def test_what_counts_as_ragged():
    assert is_ragged([[1, 2], [3]])
    assert is_ragged(Sequences.from_list([[1], [2]]))  # a Sequences even of equal lengths
    assert not is_ragged([[1, 2], [3, 4]])  # a rectangular list: fixed-length examples
    assert not is_ragged(np.zeros((3, 4)))
    assert not is_ragged([1, 2, 3])
    spec = DataSpec("binary", (2,), variable_length=True)
    assert is_ragged(Split(np.zeros((2, 2)), None, spec, np.array([1, 2])))
    assert not is_ragged(Split(np.zeros((2, 2)), None, DataSpec("binary", (2,))))
    # and each of them becomes Sequences
    _same(as_sequences([[1, 2], [3]]).to_list(), [np.array([1, 2]), np.array([3])])
    np.testing.assert_array_equal(as_sequences(np.zeros((3, 4))).lengths, [4, 4, 4])
    split = Split(np.array([[1, 0], [2, 3]]), None, spec, np.array([1, 2]))
    _same(as_sequences(split).to_list(), [np.array([1]), np.array([2, 3])])


# --------------------------------------------------------------------------- spec and checks
@pytest.mark.parametrize(
    ("seqs", "kind", "n_categories", "event_shape"),
    [
        ([[0, 1, 1], [1]], "binary", 2, (3,)),
        ([[0, 4, 1], [2, 2, 2, 2]], "categorical", 5, (4,)),
        ([[0.5], [1.0, -2.0]], "continuous", None, (2,)),
        ([np.zeros((2, 3)), np.ones((5, 3)) * 2], "categorical", 3, (5, 3)),
    ],
)
def test_infer_sequence_spec_reads_the_kind_from_every_step(seqs, kind, n_categories, event_shape):
    spec = infer_sequence_spec(seqs)
    assert spec.variable_length
    assert (spec.kind, spec.n_categories, spec.event_shape) == (kind, n_categories, event_shape)
    assert spec.step_shape == event_shape[1:]
    assert infer_sequence_spec(seqs, "continuous").kind == "continuous"


def test_padding_values_are_never_read():
    spec = DataSpec("categorical", (3,), 4, variable_length=True)
    clean = Sequences(np.array([[1, 2, 3], [3, 0, 0]]), np.array([3, 1]))
    # pad values that are not valid tokens at all: NaN, negative, too large
    dirty = Sequences(np.array([[1, 2, 3], [3, np.nan, -7.0]]), np.array([3, 1]))
    x_clean, lengths = check_sequences(clean, spec)
    x_dirty, _ = check_sequences(dirty, spec)
    np.testing.assert_array_equal(x_clean, x_dirty)
    np.testing.assert_array_equal(x_dirty, [[1, 2, 3], [3, 0, 0]])
    assert x_dirty.dtype == np.int64
    np.testing.assert_array_equal(lengths, [3, 1])
    # sequences longer than any seen in training are fine: any length is an example
    longer, _ = check_sequences([[1, 2, 3, 0, 1, 2], [3]], spec)
    assert longer.shape == (2, 6)


@pytest.mark.parametrize(
    ("seqs", "match"),
    [
        ([[1, 2.5], [3]], "non-integer"),
        ([[1, 2], [4]], r"values 0\.\.3"),
        ([[1, -1], [0]], r"values 0\.\.3"),
        ([[1, np.nan], [0]], "NaN"),
        ([[1, np.inf], [0]], "infinite"),
        ([np.ones((2, 2)), np.ones((1, 2))], "steps of .* shape"),
        ([["a"], ["b", "c"]], "numeric"),
    ],
)
def test_check_sequences_refuses_bad_steps(seqs, match):
    spec = DataSpec("categorical", (3,), 4, variable_length=True)
    with pytest.raises(DataError, match=match):
        check_sequences(seqs, spec)


def test_check_sequences_allows_nan_when_asked_and_checks_vector_steps():
    spec = DataSpec("continuous", (4, 2), variable_length=True)
    x, lengths = check_sequences([np.array([[0.5, np.nan]]), np.ones((3, 2))], spec, allow_nan=True)
    np.testing.assert_array_equal(lengths, [1, 3])
    assert x.shape == (2, 3, 2) and np.isnan(x[0, 0, 1]) and x.dtype == np.float64
    with pytest.raises(DataError, match=r"shape \(3,\)"):
        check_sequences([np.ones((2, 3))], spec)
    with pytest.raises(DataError, match=r"\(\) \(one value\)"):
        check_sequences([[1.0, 2.0], [3.0]], spec)


# --------------------------------------------------------------------------- split by sequence
def test_sequence_dataset_never_cuts_a_sequence():
    rng = np.random.default_rng(2)
    # distinct first tokens name the sequences: each must appear whole in exactly one split
    seqs = [np.r_[100 + i, rng.integers(0, 5, size=rng.integers(0, 9))] for i in range(40)]
    labels = np.array(["odd" if i % 2 else "even" for i in range(40)])
    data = sequence_dataset(seqs, name="toy", labels=labels, seed=3, kind="categorical:200")
    seen = {}
    for name in ("train", "val", "test"):
        split = data.split(name)
        assert split.x.shape[1] == split.lengths.max()
        for s, y in zip(split.sequences, split.y, strict=True):
            i = int(s[0]) - 100
            assert i not in seen
            seen[i] = name
            np.testing.assert_array_equal(s, seqs[i])
            assert data.classes[y] == labels[i]
    assert sorted(seen) == list(range(40))
    assert [sum(v == n for v in seen.values()) for n in ("train", "val", "test")] == [32, 4, 4]
    assert data.spec.variable_length and data.spec.event_shape == (data.train.lengths.max(),)
    assert all(data.split(n).spec == data.spec for n in ("train", "val", "test"))
    # the seed decides the split, and the same seed gives the same one
    again = sequence_dataset(seqs, name="toy", labels=labels, seed=3, kind="categorical:200")
    assert again.fingerprint() == data.fingerprint()
    other = sequence_dataset(seqs, name="toy", labels=labels, seed=4, kind="categorical:200")
    assert other.fingerprint() != data.fingerprint()


def test_sequence_dataset_refuses_labels_of_another_length():
    with pytest.raises(DataError, match="3 sequences but"):
        sequence_dataset([[1], [2, 1], [1, 1, 1]], name="toy", labels=[0, 1])
    with pytest.raises(DataError, match="at least 3"):
        sequence_dataset([[1], [2, 1]], name="toy")
