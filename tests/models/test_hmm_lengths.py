"""The hidden Markov model of variable-length sequences: p(x, L) with per-state end
probabilities, checked against enumeration over sequences, lengths and state paths."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest
from scipy import stats
from scipy.special import logsumexp

import ptheta
from ptheta.data.ragged import Sequences
from ptheta.errors import DataError
from ptheta.models.hmm import HMM
from ptheta.runs.store import load_run, save_run

START = np.array([0.6, 0.4])
TRANS = np.array([[0.7, 0.3], [0.2, 0.8]])
END = np.array([0.3, 0.1])
PROBS = np.array([[[0.8, 0.2]], [[0.3, 0.7]]])  # (K, F=1, L=2)
MEANS = np.array([[1.0, -2.0], [-1.5, 0.5]])  # (K, F=2)
VARS = np.array([[0.5, 2.0], [1.5, 0.7]])


def _fit(seqs, **params) -> HMM:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return HMM(**{"n_states": 2, "max_iter": 3, **params}).fit(seqs)


def _categorical(t_max: int = 4) -> HMM:
    """A 2-state HMM of binary sequences of any length, with the parameters above (its
    training data only fix the data spec: binary steps, longest sequence ``t_max``)."""
    seqs = [[0, 1, 0, 1][: 1 + i % t_max] + [1] * (i // 4 % 2) for i in range(12)]
    seqs = [s[:t_max] for s in seqs]
    m = _fit(seqs)
    m.startprob_, m.transmat_, m.emissionprob_, m.endprob_ = START, TRANS, PROBS, END
    return m


def _gaussian(f: int = 2) -> HMM:
    """A 2-state HMM of sequences of F-dimensional Gaussian steps (diagonal covariances)."""
    rng = np.random.default_rng(0)
    seqs = [rng.normal(size=(1 + i % 4, f)) for i in range(16)]
    m = _fit(seqs)
    m.startprob_, m.transmat_, m.endprob_ = START, TRANS, END
    m.means_, m.covars_ = MEANS[:, :f], VARS[:, :f]
    return m


def _length_probs(m: HMM, t_max: int) -> np.ndarray:
    """P(L = l), l = 1..t_max, from the states and end events alone:
    q_1 = π, P(L = l) = q_l · e, q_l+1 = (q_l ⊙ (1 − e)) A."""
    q, out = m.startprob_, []
    for _ in range(t_max):
        out.append(q @ m.endprob_)
        q = (q * (1 - m.endprob_)) @ m.transmat_
    return np.array(out)


def _brute_force(m: HMM, seq: np.ndarray, log_b) -> float:
    """log p(x, L) by enumerating every state path of the sequence ``seq`` (L, ...);
    ``log_b(x_t)`` gives the (K,) log emission factors of one step."""
    k, length = len(m.startprob_), len(seq)
    b = np.array([log_b(step) for step in seq])  # (L, K)
    terms = []
    for path in itertools.product(range(k), repeat=length):
        lp = np.log(m.startprob_[path[0]]) + b[0, path[0]]
        for t in range(1, length):
            lp += np.log((1 - m.endprob_[path[t - 1]]) * m.transmat_[path[t - 1], path[t]])
            lp += b[t, path[t]]
        terms.append(lp + np.log(m.endprob_[path[-1]]))
    return float(logsumexp(terms))


def _log_b_categorical(m: HMM):
    def log_b(step):
        step = np.atleast_1d(step)
        out = np.zeros(len(m.startprob_))
        for f, v in enumerate(step):
            if not np.isnan(v):
                out += np.log(m.emissionprob_[:, f, int(v)])
        return out

    return log_b


def _log_b_gaussian(m: HMM):
    def log_b(step):
        obs = ~np.isnan(step)
        dens = stats.norm.logpdf(step[obs], m.means_[:, obs], np.sqrt(m.covars_[:, obs]))
        return dens.sum(axis=1)

    return log_b


# ----------------------------------------------------------------------------- exactness
def test_probabilities_of_all_short_sequences_sum_to_their_lengths_probability():
    m = _categorical()
    p_len = _length_probs(m, 4)
    for length in range(1, 5):
        every = np.array(list(itertools.product([0, 1], repeat=length)))
        total = np.exp(m.score_samples(Sequences.from_array(every))).sum()
        np.testing.assert_allclose(total, p_len[length - 1], rtol=1e-12)
    every = [np.array(s) for n in range(1, 5) for s in itertools.product([0, 1], repeat=n)]
    total = np.exp(m.score_samples(every)).sum()
    np.testing.assert_allclose(total, p_len.sum(), rtol=1e-12)
    assert p_len.sum() < 1 and total < 1


def test_gaussian_density_integrates_to_the_length_probability():
    m = _gaussian(f=1)
    p_len = _length_probs(m, 2)
    grid = np.linspace(-12, 12, 601)
    dx = grid[1] - grid[0]
    one = np.exp(m.score_samples(Sequences.from_array(grid[:, None, None])))
    np.testing.assert_allclose(one.sum() * dx, p_len[0], rtol=1e-6)
    pairs = np.stack(np.meshgrid(grid[::3], grid[::3], indexing="ij"), -1).reshape(-1, 2, 1)
    two = np.exp(m.score_samples(Sequences.from_array(pairs)))
    np.testing.assert_allclose(two.sum() * (3 * dx) ** 2, p_len[1], rtol=1e-4)


@pytest.mark.parametrize("kind", ["categorical", "gaussian"])
def test_score_equals_enumeration_over_state_paths_on_a_ragged_batch(kind):
    rng = np.random.default_rng(1)
    if kind == "categorical":
        m, log_b = _categorical(), None
        seqs = [rng.integers(0, 2, size=n).astype(float) for n in (1, 5, 2, 4, 3)]
        seqs[3][2] = np.nan  # a missing step is summed out
        log_b = _log_b_categorical(m)
    else:
        m = _gaussian()
        seqs = [rng.normal(size=(n, 2)) for n in (3, 1, 5, 2)]
        seqs[2][1, 0] = np.nan  # a missing feature drops out of its step's factor
        seqs[0][2] = np.nan
        log_b = _log_b_gaussian(m)
    scores = m.score_samples(seqs)
    expected = [_brute_force(m, np.asarray(s, dtype=float), log_b) for s in seqs]
    np.testing.assert_allclose(scores, expected, rtol=1e-10)


def test_posteriors_and_viterbi_match_enumeration():
    m = _categorical()
    seqs = [np.array([0, 1, 1]), np.array([1]), np.array([1, 0, 0, 1, 1])]
    post, path = m.posterior_states(seqs), m.viterbi(seqs)
    assert post.shape == (3, 5, 2) and path.shape == (3, 5)
    log_b = _log_b_categorical(m)
    for i, seq in enumerate(seqs):
        length = len(seq)
        b = np.array([log_b(v) for v in seq])
        joint = {}
        for z in itertools.product(range(2), repeat=length):
            lp = np.log(START[z[0]]) + b[0, z[0]] + np.log(END[z[-1]])
            for t in range(1, length):
                lp += np.log((1 - END[z[t - 1]]) * TRANS[z[t - 1], z[t]]) + b[t, z[t]]
            joint[z] = lp
        total = logsumexp(list(joint.values()))
        marg = np.zeros((length, 2))
        for z, lp in joint.items():
            marg[np.arange(length), z] += np.exp(lp - total)
        np.testing.assert_allclose(post[i, :length], marg, atol=1e-12)
        assert (post[i, length:] == 0).all() and (path[i, length:] == -1).all()
        assert tuple(path[i, :length]) == max(joint, key=joint.get)
        np.testing.assert_allclose(m.embed(seqs)[i], marg.mean(axis=0), atol=1e-12)


# ----------------------------------------------------------------------------- padding
def test_padding_is_never_data():
    m = _gaussian()
    rng = np.random.default_rng(2)
    short = rng.normal(size=(2, 2))
    batch = [short, rng.normal(size=(7, 2)), rng.normal(size=(4, 2))]
    alone = m.score_samples([short, short[:1]])[0]
    assert m.score_samples(batch)[0] == pytest.approx(alone, rel=1e-13)
    padded = Sequences.from_list(batch)
    garbage = padded.values.copy()
    garbage[~padded.mask()] = rng.normal(size=(~padded.mask()).sum(), scale=1e3)[:, None]
    scores = m.score_samples(padded)
    np.testing.assert_allclose(m.score_samples(Sequences(garbage, padded.lengths)), scores)
    # the model's own masking, whatever reaches it after the checks (NaN included)
    garbage[~padded.mask()] = np.nan
    np.testing.assert_allclose(m._score_sequences(garbage, padded.lengths), scores, rtol=1e-13)
    np.testing.assert_allclose(m.viterbi(batch)[0, :2], m.viterbi([short, short])[0])
    np.testing.assert_allclose(
        m.posterior_states(batch)[0, :2], m.posterior_states([short, short])[0], atol=1e-13
    )


# ----------------------------------------------------------------------------- fitting
@pytest.mark.parametrize("emission", ["categorical", "gaussian", "gmm"])
def test_em_never_lowers_the_objective_on_ragged_data(emission):
    rng = np.random.default_rng(3)
    lengths = rng.integers(1, 9, size=40)
    if emission == "categorical":
        seqs = [rng.integers(0, 3, size=n) for n in lengths]
    else:
        seqs = [rng.normal(size=(n, 2)) + 3 * rng.integers(0, 2) for n in lengths]
    # the GMM keeps its smoothing (with min_covar = 0 a component may collapse on a step)
    min_covar = 1e-3 if emission == "gmm" else 0.0
    m = _fit(seqs, emission=emission, max_iter=25, tol=0, min_covar=min_covar, init="random")
    objective = np.array([h["objective"] for h in m.history_])
    loglik = np.array([h["log_likelihood"] for h in m.history_])
    assert len(objective) == 25
    assert (np.diff(objective) >= -1e-10 * np.abs(objective[1:])).all()
    if min_covar == 0:  # alpha = 0 too: the objective is the log-likelihood, up to a constant
        assert (np.diff(loglik) >= -1e-10 * np.abs(loglik[1:])).all()
        # the fitted model (one M-step after the last record) scores at least as well
        assert m.score_samples(seqs).mean() >= loglik[-1] - 1e-10 * abs(loglik[-1])
    assert ((m.endprob_ > 0) & (m.endprob_ < 1)).all()


def test_parameters_are_recovered_from_samples_of_a_known_hmm():
    truth = _categorical()
    truth.emissionprob_ = np.array([[[0.9, 0.1]], [[0.1, 0.9]]])
    truth.endprob_ = np.array([0.05, 0.2])
    seqs = truth.sample(1500, random_state=0)
    m = _fit(seqs, max_iter=200, tol=1e-7, n_init=2)
    order = np.argsort(m.emissionprob_[:, 0, 1])  # state 0: the one that emits 0
    np.testing.assert_allclose(m.endprob_[order], truth.endprob_, atol=0.02)
    np.testing.assert_allclose(m.transmat_[np.ix_(order, order)], TRANS, atol=0.05)
    np.testing.assert_allclose(m.emissionprob_[order], truth.emissionprob_, atol=0.03)
    np.testing.assert_allclose(m.startprob_[order], START, atol=0.06)


def test_sampled_lengths_follow_the_models_length_distribution():
    m = _categorical()
    seqs = m.sample(4000, random_state=1)
    assert isinstance(seqs, Sequences) and seqs.values.dtype == np.int64
    assert (seqs.values[~seqs.mask()] == 0).all()  # padding is zeros
    p_len = _length_probs(m, 12)
    observed = np.bincount(seqs.lengths, minlength=13)[1:13]
    expected = np.append(p_len[:11], 1 - p_len[:11].sum()) * len(seqs)
    observed = np.append(observed[:11], len(seqs) - observed[:11].sum())
    assert stats.chisquare(observed, expected).pvalue > 1e-3
    # the first emissions follow p(x_1) = Σ_k π_k b(x_1 | k)
    p_first = START @ PROBS[:, 0, 1]
    assert abs(seqs.values[:, 0].mean() - p_first) < 4 * np.sqrt(p_first * (1 - p_first) / 4000)


def test_sampled_lengths_are_cut_at_ten_times_the_longest_training_sequence():
    m = _categorical(t_max=3)
    m.endprob_ = np.array([1e-10, 1e-10])
    seqs = m.sample(3, random_state=0)
    assert seqs.lengths.tolist() == [30, 30, 30]


# ----------------------------------------------------------------------------- contract
def test_per_step_numbers_count_each_end_as_a_step():
    m = _categorical()
    seqs = [np.array([0, 1, 1]), np.array([1]), np.array([1, 0, 0, 1])]
    summary = m.nll_summary(seqs)
    assert summary["n_steps"] == 8 + 3
    assert summary["nll_per_step"] == pytest.approx(-m.score_samples(seqs).sum() / 11)


def test_parameters_count_the_end_probabilities_and_survive_a_run_dir(tmp_path):
    rng = np.random.default_rng(4)
    seqs = [rng.integers(0, 3, size=n) for n in rng.integers(1, 6, size=30)]
    m = _fit(seqs)
    fixed = _fit(np.stack([s for s in seqs if len(s) == 3] * 3))
    assert m.n_parameters() == fixed.n_parameters() + 2  # one end probability per state
    save_run(m, tmp_path / "run", data={"name": "synthetic"})
    loaded = load_run(tmp_path / "run")
    np.testing.assert_array_equal(loaded.endprob_, m.endprob_)
    np.testing.assert_array_equal(loaded.score_samples(seqs), m.score_samples(seqs))
    a, b = loaded.sample(5, random_state=3), m.sample(5, random_state=3)
    np.testing.assert_array_equal(a.values, b.values)
    np.testing.assert_array_equal(a.lengths, b.lengths)
    assert loaded.capabilities().variable_length


def test_fixed_length_fits_keep_no_length_model():
    x = np.array([[0, 0, 1, 1], [1, 1, 0, 0], [0, 0, 0, 1]] * 5)
    m = _fit(x)
    assert not hasattr(m, "endprob_")
    every = np.array(list(itertools.product([0, 1], repeat=4)))
    assert np.exp(m.score_samples(every)).sum() == pytest.approx(1.0, abs=1e-12)


def test_bayes_classifier_of_hmms_classifies_ragged_sequences():
    rng = np.random.default_rng(5)
    truth = _categorical()
    truth.emissionprob_ = np.array([[[0.9, 0.1]], [[0.8, 0.2]]])
    zeros = truth.sample(60, random_state=0)
    truth.emissionprob_ = 1 - truth.emissionprob_
    ones = truth.sample(60, random_state=1)
    seqs = zeros.to_list() + ones.to_list()
    y = np.repeat(["a", "b"], 60)
    m = ptheta.make("bayes-classifier", density="hmm", density_params={"n_states": 2})
    m.fit(seqs, y)
    assert m.capabilities().variable_length
    proba = m.predict_proba(seqs)
    assert proba.shape == (120, 2)
    assert (m.predict(seqs) == y).mean() > 0.9
    # Bayes' rule over the class densities, and the marginal as their mixture
    joint = m.class_log_prior_ + np.stack([d.score_samples(seqs) for d in m.densities_], 1)
    np.testing.assert_allclose(proba, np.exp(joint - logsumexp(joint, 1, keepdims=True)))
    np.testing.assert_allclose(m.score_samples(seqs), logsumexp(joint, 1))
    drawn = m.sample(4, y="b", random_state=rng)
    assert isinstance(drawn, Sequences) and len(drawn) == 4


# ----------------------------------------------------------------------------- bad input
def test_bad_ragged_input_is_one_clear_data_error():
    m = _categorical()
    with pytest.raises(DataError, match="shape"):
        m.score_samples([np.zeros((2, 3)), np.zeros((1, 3))])
    with pytest.raises(DataError, match="empty"):
        _fit([np.array([0, 1]), np.array([], dtype=int)])
    with pytest.raises(DataError, match="NaN"):  # a feature never observed
        _fit([np.array([np.nan]), np.array([np.nan, np.nan])])
    with pytest.raises(DataError, match="steps"):
        _fit([np.array([0, 1]), np.array([1])], n_states=4)
