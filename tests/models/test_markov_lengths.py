"""The Markov chain of variable-length sequences: p(x, L) with an END symbol, checked
against enumeration over sequences and lengths and a direct product of table entries."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import stats

import ptheta
from ptheta.data.ragged import Sequences
from ptheta.errors import DataError
from ptheta.models.markov import MarkovChain
from ptheta.runs.store import load_run, save_run


def _fit(seqs, order: int = 1, **params) -> MarkovChain:
    return MarkovChain(order=order, **params).fit(seqs)


def _training(levels: int = 2, step: tuple[int, ...] = (), n: int = 40, seed: int = 0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, levels, size=(int(t), *step)) for t in rng.integers(1, 6, size=n)]


def _table(p: int, order: int, f: int) -> int:
    return p if p < order else order + p % f


def _direct(m: MarkovChain, seq: np.ndarray) -> float:
    """log p(x, L) as the product of table entries along the values, then END."""
    k, k_levels = int(m.order), m.probs_.shape[2] - 1
    values = [int(v) for v in np.asarray(seq).reshape(-1)] + [k_levels]
    f = np.asarray(seq).reshape(len(seq), -1).shape[1]
    total = 0.0
    for p, v in enumerate(values):
        state = sum(values[p - j] * k_levels ** (j - 1) for j in range(1, min(k, p) + 1))
        total += np.log(m.probs_[_table(p, k, f), state, v])
    return total


def _length_probs(m: MarkovChain, t_max: int) -> np.ndarray:
    """P(L = l), l = 1..t_max, by a forward recursion over the state alone: the mass of
    every state after p values without an end, pushed through the tables."""
    k, k_levels = int(m.order), m.probs_.shape[2] - 1
    n_states = m.probs_.shape[1]
    f = m.fitted_spec.step_dims
    q = np.zeros(n_states)
    q[0] = 1.0
    out = []
    for p in range(t_max * f + 1):
        table = m.probs_[_table(p, k, f)]
        if p and p % f == 0:
            out.append(q @ table[:, k_levels])
        moved = np.zeros(n_states)
        for s, v in itertools.product(range(n_states), range(k_levels)):
            moved[(s * k_levels + v) % n_states] += q[s] * table[s, v]
        q = moved
    return np.array(out)


# ----------------------------------------------------------------------------- exactness
@pytest.mark.parametrize(("order", "step"), [(1, ()), (2, ()), (2, (2,)), (3, (2,))])
def test_probabilities_of_all_short_sequences_sum_to_their_lengths_probability(order, step):
    m = _fit(_training(step=step), order=order)
    t_max = 4 if not step else 2
    p_len = _length_probs(m, t_max)
    total = 0.0
    for length in range(1, t_max + 1):
        every = np.array(list(itertools.product([0, 1], repeat=length * (step or (1,))[0])))
        every = every.reshape(len(every), length, *step)
        mass = np.exp(m.score_samples(Sequences.from_array(every))).sum()
        np.testing.assert_allclose(mass, p_len[length - 1], rtol=1e-12)
        total += mass
    assert total < 1 and p_len.sum() < 1
    np.testing.assert_allclose(total, p_len.sum(), rtol=1e-12)


@pytest.mark.parametrize("order", [1, 2])
def test_score_equals_the_product_of_table_entries_and_the_missing_sum(order):
    m = _fit(_training(levels=3), order=order)
    rng = np.random.default_rng(1)
    seqs = [rng.integers(0, 3, size=n) for n in (1, 6, 2, 4, 3)]
    np.testing.assert_allclose(m.score_samples(seqs), [_direct(m, s) for s in seqs], rtol=1e-12)
    # NaN entries are summed out exactly: the forward recursion equals enumeration
    partial = [s.astype(float) for s in seqs]
    partial[1][[0, 3]] = np.nan
    partial[3][-1] = np.nan
    expected = []
    for s in partial:
        gaps = np.flatnonzero(np.isnan(s))
        mass = 0.0
        for fill in itertools.product(range(3), repeat=len(gaps)):
            full = s.copy()
            full[gaps] = fill
            mass += np.exp(_direct(m, full.astype(int)))
        expected.append(np.log(mass))
    np.testing.assert_allclose(m.score_samples(partial), expected, rtol=1e-12)


def test_tables_are_the_smoothed_counts_with_an_end_symbol():
    m = _fit([np.array([0, 1]), np.array([1])], order=1, alpha=0.5)
    # the first value: no END possible (a sequence has a step), so two cells of 1.5 / 3
    np.testing.assert_allclose(m.probs_[0], [[0.5, 0.5, 0.0]] * 2)
    # after a 0: 1 once; after a 1: END twice, each count + 0.5 over three cells
    np.testing.assert_allclose(
        m.probs_[1], [[0.5 / 2.5, 1.5 / 2.5, 0.5 / 2.5], [1 / 7, 1 / 7, 5 / 7]]
    )
    assert m.n_parameters() == 1 + 2 * 2


# ----------------------------------------------------------------------------- padding
def test_padding_is_never_data():
    m = _fit(_training(levels=3), order=2)
    rng = np.random.default_rng(2)
    short = np.array([2, 0])
    batch = [short, rng.integers(0, 3, size=7), rng.integers(0, 3, size=4).astype(float)]
    batch[2][1] = np.nan
    alone = m.score_samples([short, short[:1]])[0]
    assert m.score_samples(batch)[0] == pytest.approx(alone, rel=1e-13)
    padded = Sequences.from_list(batch)
    scores = m.score_samples(padded)
    garbage = padded.values.copy()
    for fill in (2.0, np.nan):  # the family's own masking, whatever reaches it
        garbage[~padded.mask()] = fill
        np.testing.assert_allclose(m._score_sequences(garbage, padded.lengths), scores)


# ----------------------------------------------------------------------------- sampling
@pytest.mark.parametrize("step", [(), (2,)])
def test_sampled_lengths_follow_the_models_length_distribution(step):
    m = _fit(_training(step=step), order=2)
    seqs = m.sample(3000, random_state=1)
    assert isinstance(seqs, Sequences) and seqs.step_shape == step
    assert (seqs.values[~seqs.mask()] == 0).all()
    p_len = _length_probs(m, 8)
    observed = np.bincount(seqs.lengths, minlength=9)[1:9]
    expected = np.append(p_len[:7], 1 - p_len[:7].sum()) * len(seqs)
    observed = np.append(observed[:7], len(seqs) - observed[:7].sum())
    assert stats.chisquare(observed, expected).pvalue > 1e-3
    # the first value follows the first table
    p_first = m.probs_[0, 0, 1]
    first = seqs.values[:, 0].reshape(len(seqs), -1)[:, 0]
    assert abs(first.mean() - p_first) < 4 * np.sqrt(p_first * (1 - p_first) / len(seqs))


def test_sampled_lengths_are_cut_at_ten_times_the_longest_training_sequence():
    m = _fit([np.array([0, 0, 1]), np.array([1])], order=1)
    m.probs_[1, :, 2] = 0.0  # never end
    m.probs_[1] /= m.probs_[1].sum(axis=1, keepdims=True)
    assert m.sample(2, random_state=0).lengths.tolist() == [30, 30]


# ----------------------------------------------------------------------------- contract
def test_run_dir_round_trip_and_classifier(tmp_path):
    seqs = _training(levels=3, seed=4)
    m = _fit(seqs, order=2)
    save_run(m, tmp_path / "run", data={"name": "synthetic"})
    loaded = load_run(tmp_path / "run")
    np.testing.assert_array_equal(loaded.score_samples(seqs), m.score_samples(seqs))
    a, b = loaded.sample(5, random_state=3), m.sample(5, random_state=3)
    np.testing.assert_array_equal(a.values, b.values)
    assert m.capabilities().variable_length
    y = np.array([len(s) % 2 for s in seqs])  # odd or even length: the END models it
    clf = ptheta.make("bayes-classifier", density="markov", density_params={"order": 1})
    clf.fit(seqs, y)
    assert clf.predict_proba(seqs).shape == (len(seqs), 2)
    assert np.isfinite(clf.score_samples(seqs)).all()


def test_bad_ragged_input_is_one_clear_data_error():
    m = _fit(_training())
    with pytest.raises(DataError, match="shape"):
        m.score_samples([np.zeros((2, 3), dtype=int), np.zeros((1, 3), dtype=int)])
    with pytest.raises(DataError, match="empty"):
        _fit([np.array([0, 1]), np.array([], dtype=int)])
    with pytest.raises(DataError, match="NaN"):
        _fit([np.array([0.0, 1.0]), np.array([np.nan]), np.array([1.0, 0.0, 1.0])])
    with pytest.raises(DataError, match="discrete steps"):
        _fit([np.array([0.5, 1.2]), np.array([0.3])])
