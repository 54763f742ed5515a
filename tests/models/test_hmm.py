"""The hidden Markov model: every inference checked against enumeration over state paths."""

from __future__ import annotations

import hashlib
import itertools
import json
import warnings

import numpy as np
import pytest
from safetensors.numpy import load as st_load
from safetensors.numpy import save as st_save
from scipy import stats
from scipy.optimize import linear_sum_assignment
from scipy.special import logsumexp

import ptheta
import ptheta.runs.store as rundir
from ptheta.errors import DataError, RunDirError
from ptheta.models.hmm import HMM, forward, forward_backward
from ptheta.runs.layout import CONFIG, WEIGHTS
from ptheta.runs.store import load_run, save_run

START = np.array([0.6, 0.4])
TRANS = np.array([[0.7, 0.3], [0.2, 0.8]])
OFFSET = np.array([5.0, -2.0])  # where the Gaussian test data sit
PROBS = np.array([[[0.5, 0.3, 0.2]], [[0.1, 0.2, 0.7]]])  # (K, F=1, L=3)


def _fit(x: np.ndarray, **params) -> HMM:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return HMM(**{"n_states": 2, "max_iter": 5, **params}).fit(x)


def _categorical(start=START, trans=TRANS, probs=PROBS, t_len: int = 4) -> HMM:
    """An HMM with the given parameters on categorical sequences of length ``t_len``."""
    levels = probs.shape[2]
    x = np.tile(np.arange(levels), (10, t_len))[:, :t_len]  # every level seen
    m = _fit(x, n_states=len(start))
    m.startprob_, m.transmat_, m.emissionprob_ = start, trans, probs
    return m


def _gaussian(full: bool) -> HMM:
    """A 2-state HMM of sequences (T=3, F=2) with Gaussian emissions."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(20, 3, 2)) * [1.0, 3.0] + OFFSET
    m = _fit(x, covariance_type="full" if full else "diag")
    m.startprob_, m.transmat_ = START, TRANS
    m.means_ = np.array([[4.0, -1.0], [6.5, -4.0]])
    if full:
        m.covars_ = np.array([[[1.0, 0.6], [0.6, 2.0]], [[0.5, -0.3], [-0.3, 4.0]]])
    else:
        m.covars_ = np.array([[1.0, 2.0], [0.5, 4.0]])
    return m


def _log_emission_brute(m: HMM, step: np.ndarray, k: int) -> float:
    """log p(x_t,observed | s_t = k) from scipy / the table, dropping NaN features."""
    obs = ~np.isnan(step)
    if not obs.any():
        return 0.0
    if m.emission_ == "categorical":
        return float(np.log(m.emissionprob_[k, np.flatnonzero(obs), step[obs].astype(int)]).sum())
    cov = m.covars_[k] if m.covariance_type == "full" else np.diag(m.covars_[k])
    return float(
        stats.multivariate_normal(m.means_[k][obs], cov[np.ix_(obs, obs)]).logpdf(step[obs])
    )


def _enumerate(m: HMM, seq: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every state path (K^T, T) of one sequence (T, F) and its log joint p(x, s)."""
    seq = seq.reshape(seq.shape[0], -1).astype(np.float64)
    k, t_len = len(m.startprob_), len(seq)
    paths = np.array(list(itertools.product(range(k), repeat=t_len)))
    log_joint = []
    for path in paths:
        lp = np.log(m.startprob_[path[0]])
        lp += sum(np.log(m.transmat_[a, b]) for a, b in itertools.pairwise(path))
        lp += sum(_log_emission_brute(m, seq[t], path[t]) for t in range(t_len))
        log_joint.append(lp)
    return paths, np.array(log_joint)


# --------------------------------------------------------------------------- likelihood
def test_categorical_likelihood_is_the_sum_over_every_state_path_and_sums_to_one():
    m = _categorical()
    every = np.array(list(itertools.product(range(3), repeat=4)))  # all 3^4 sequences
    scores = m.score_samples(every)
    brute = [logsumexp(_enumerate(m, seq[:, None])[1]) for seq in every]
    np.testing.assert_allclose(scores, brute, rtol=0, atol=1e-10)
    assert np.exp(scores).sum() == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("full", [False, True])
def test_gaussian_likelihood_is_the_sum_over_every_state_path(full):
    m = _gaussian(full)
    x = np.random.default_rng(1).normal(size=(6, 3, 2)) * 2 + OFFSET
    brute = [logsumexp(_enumerate(m, seq)[1]) for seq in x]
    np.testing.assert_allclose(m.score_samples(x), brute, rtol=0, atol=1e-9)


@pytest.mark.parametrize("kind", ["categorical", "diag", "full"])
def test_missing_observations_are_summed_out_exactly(kind):
    if kind == "categorical":
        m = _categorical()
        x = np.array([[0, 2, 1, 1], [2, 2, 0, 1], [1, 0, 0, 2]], dtype=np.float64)
        x[0, 1] = x[1, [0, 3]] = x[2, :] = np.nan
    else:
        m = _gaussian(kind == "full")
        x = np.random.default_rng(2).normal(size=(3, 3, 2)) + OFFSET
        x[0, 1, :] = x[1, 0, 1] = x[1, 2, 0] = np.nan  # a whole step, single features
    brute = [logsumexp(_enumerate(m, seq)[1]) for seq in x]
    scores = m.score_samples(x)
    np.testing.assert_allclose(scores, brute, rtol=0, atol=1e-9)
    if kind == "categorical":
        assert scores[2] == pytest.approx(0.0, abs=1e-12)  # nothing observed: probability 1
        # the marginal is the sum of the completions' probabilities
        filled = np.repeat(x[:1], 3, axis=0)
        filled[:, 1] = np.arange(3)
        assert scores[0] == pytest.approx(logsumexp(m.score_samples(filled)), abs=1e-12)


# --------------------------------------------------------------------------- states
@pytest.mark.parametrize("kind", ["categorical", "full"])
def test_viterbi_and_posterior_marginals_match_enumeration(kind):
    if kind == "categorical":
        m = _categorical()
        x = np.array([[0, 2, 1, 1], [2, 2, 0, 1], [1, 0, np.nan, 2]])
    else:
        m = _gaussian(full=True)
        x = np.random.default_rng(3).normal(size=(4, 3, 2)) * 2 + OFFSET
        x[0, 1, 0] = np.nan
    path, marginals = m.viterbi(x), m.posterior_states(x)
    assert path.shape == x.shape[:2] and path.dtype == np.int64
    assert marginals.shape == (*x.shape[:2], 2)
    for i, seq in enumerate(x):
        paths, log_joint = _enumerate(m, seq.reshape(seq.shape[0], -1))
        np.testing.assert_array_equal(path[i], paths[np.argmax(log_joint)])
        post = np.exp(log_joint - logsumexp(log_joint))  # p(s | x) per path
        expected = np.stack([post @ (paths == k) for k in range(2)], axis=-1)  # (T, K)
        np.testing.assert_allclose(marginals[i], expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(m.embed(x), marginals.mean(axis=1))


def test_padded_steps_with_unit_factors_leave_the_likelihood_and_counts_exact():
    m = _categorical()
    log_start, log_trans = np.log(START), np.log(TRANS)
    short = np.log(PROBS[:, 0, [0, 2, 1]].T)[None]  # (1, T=3, K)
    padded = np.concatenate([short, np.zeros((1, 2, 2))], axis=1)  # two padded steps
    valid = np.array([[True] * 3 + [False] * 2])
    ll, gamma, xi = forward_backward(log_start, log_trans, short)
    ll_pad, gamma_pad, xi_pad = forward_backward(log_start, log_trans, padded, valid)
    assert ll_pad[0] == pytest.approx(ll[0], abs=1e-12)
    assert forward(log_start, log_trans, padded)[1][0] == pytest.approx(ll[0], abs=1e-12)
    np.testing.assert_allclose(gamma_pad[:, :3], gamma, atol=1e-12)
    np.testing.assert_allclose(xi_pad, xi, atol=1e-12)
    assert xi.sum() == pytest.approx(2.0)  # T − 1 expected transitions
    assert m.score_samples(np.array([[0, 2, 1, 0]]))[0] < 0


# --------------------------------------------------------------------------- EM
def _draw(m: HMM, n: int, seed: int) -> np.ndarray:
    return m.sample(n, random_state=seed)


def test_em_is_monotone_and_recovers_the_transition_matrix():
    trans = np.array([[0.9, 0.1], [0.25, 0.75]])
    probs = np.array([[[0.8, 0.15, 0.05]], [[0.05, 0.15, 0.8]]])
    truth = _categorical(trans=trans, probs=probs, t_len=30)
    x = _draw(truth, 300, seed=0)
    m = _fit(x, alpha=0.0, max_iter=200, tol=1e-8)
    for key in ("objective", "log_likelihood"):
        values = np.array([h[key] for h in m.history_])
        assert np.all(np.diff(values) >= -1e-9), key
    # match fitted states to true ones by their emissions, then compare A
    cost = np.abs(m.emissionprob_[:, None, 0] - probs[None, :, 0]).sum(axis=2)
    fitted, true = linear_sum_assignment(cost)
    order = fitted[np.argsort(true)]
    np.testing.assert_allclose(m.transmat_[np.ix_(order, order)], trans, atol=0.05)
    np.testing.assert_allclose(m.emissionprob_[order], probs, atol=0.05)
    assert m.score(x) >= truth.score(x) - 1e-6  # the MLE beats the truth on its own data


@pytest.mark.parametrize("full", [False, True])
def test_gaussian_em_never_lowers_its_objective(full):
    truth = _gaussian(full)
    x = _draw(truth, 200, seed=1)
    for min_covar, keys in ((1e-2, ("objective",)), (0.0, ("objective", "log_likelihood"))):
        m = _fit(x, covariance_type="full" if full else "diag", min_covar=min_covar,
                 max_iter=60, tol=0)  # fmt: skip
        for key in keys:
            values = np.array([h[key] for h in m.history_])
            assert np.all(np.diff(values) >= -1e-9), (min_covar, key)
    cost = np.abs(m.means_[:, None] - truth.means_[None]).sum(axis=2)
    fitted, true = linear_sum_assignment(cost)
    order = fitted[np.argsort(true)]
    np.testing.assert_allclose(m.means_[order], truth.means_, atol=0.4)
    np.testing.assert_allclose(m.transmat_[np.ix_(order, order)], TRANS, atol=0.12)


def test_alpha_is_map_em_and_the_random_init_works_too():
    x = _draw(_categorical(t_len=10), 100, seed=2)
    m = _fit(x, alpha=1.0, init="random", n_init=2, max_iter=50)
    values = np.array([h["objective"] for h in m.history_])
    assert np.all(np.diff(values) >= -1e-9)
    assert np.all(m.transmat_ > 0) and np.all(m.emissionprob_ > 0)


# --------------------------------------------------------------------------- sampling
def _chisquare(counts: np.ndarray, probs: np.ndarray) -> float:
    return float(stats.chisquare(counts, probs * counts.sum()).pvalue)


def test_sample_frequencies_match_the_exact_probabilities():
    m = _categorical(t_len=3)
    every = np.array(list(itertools.product(range(3), repeat=3)))  # 27 sequences
    probs = np.exp(m.score_samples(every))
    n = 20_000
    index = m.sample(n, random_state=0) @ np.array([9, 3, 1])
    assert _chisquare(np.bincount(index, minlength=27), probs) > 1e-4


def test_conditional_samples_follow_the_exact_conditional():
    m = _categorical()
    partial = np.array([[0.0, np.nan, 2.0, np.nan]])
    drawn = m.sample(20_000, given=partial, random_state=0)
    np.testing.assert_array_equal(drawn[:, [0, 2]], np.tile([0, 2], (20_000, 1)))
    completions = np.array([[0, a, 2, b] for a in range(3) for b in range(3)])
    probs = np.exp(m.score_samples(completions) - m.score_samples(partial)[0])
    assert probs.sum() == pytest.approx(1.0, abs=1e-12)
    index = drawn[:, 1] * 3 + drawn[:, 3]
    assert _chisquare(np.bincount(index, minlength=9), probs) > 1e-4
    # the mode fills each missing entry with its most probable level
    by_entry = [np.bincount(c, weights=probs, minlength=3) for c in completions[:, [1, 3]].T]
    assert m.impute(partial)[0, [1, 3]].tolist() == [int(np.argmax(p)) for p in by_entry]


def test_gaussian_conditional_mean_and_sampling_keep_observed_values():
    m = _gaussian(full=True)
    x = _draw(m, 4, seed=3)
    partial = x.copy()
    partial[0, 1, 0] = partial[1, :, 1] = np.nan
    for method in ("mode", "sample"):
        filled = m.impute(partial, method=method, random_state=0)
        observed = ~np.isnan(partial)
        np.testing.assert_array_equal(filled[observed], partial[observed])
        assert np.isfinite(filled).all()


# --------------------------------------------------------------------------- the contract
def test_the_emission_must_suit_the_data():
    with pytest.raises(DataError, match="emission='gaussian'"):
        _fit(np.array([[0, 1, 1], [1, 0, 1]]), emission="gaussian")
    with pytest.raises(DataError, match="emission='categorical'"):
        _fit(np.random.default_rng(0).normal(size=(5, 3)), emission="categorical")
    with pytest.raises(DataError, match="n_states=7"):
        _fit(np.array([[0, 1, 1], [1, 0, 1]]), n_states=7)


def test_information_criteria_count_the_free_parameters():
    m = _categorical()
    x = np.array([[0, 2, 1, 1], [2, 2, 0, 1]])
    assert m.n_parameters() == 1 + 2 + 2 * 2  # π, A, θ (K·F·(L−1))
    assert m.bic(x) == pytest.approx(-2 * m.score_samples(x).sum() + 7 * np.log(2))
    assert m.aic(x) == pytest.approx(-2 * m.score_samples(x).sum() + 14)
    assert _gaussian(full=True).n_parameters() == 1 + 2 + 2 * (2 + 3)
    caps = m.capabilities()
    assert caps.needs_sequence and caps.marginalises and caps.embeds and not caps.classifies
    assert not hasattr(m, "predict_proba") and not hasattr(m, "predict")


def test_a_run_round_trips_and_weights_of_another_k_are_refused(tmp_path):
    x = _draw(_categorical(t_len=5), 40, seed=4)
    two = save_run(_fit(x), tmp_path / "two")
    three = save_run(_fit(x, n_states=3), tmp_path / "three")
    loaded = load_run(two)
    np.testing.assert_array_equal(loaded.score_samples(x), _fit(x).score_samples(x))
    np.testing.assert_array_equal(loaded.viterbi(x), _fit(x).viterbi(x))
    # K=3 weights written consistently (checksums updated) under the K=2 config
    blob = st_save(
        st_load((three / WEIGHTS).read_bytes()), metadata={"format": rundir.FORMAT, "model": "hmm"}
    )
    (two / WEIGHTS).write_bytes(blob)
    config = json.loads((two / CONFIG).read_text())
    config["weights_sha256"] = hashlib.sha256(blob).hexdigest()
    (two / CONFIG).write_text(json.dumps(config))
    rundir.mark_complete(two)
    with pytest.raises(RunDirError, match=r"startprob_ of shape \(3,\).*\(2,\)"):
        load_run(two)
    assert ptheta.make("hmm").capabilities().likelihood == "exact"
