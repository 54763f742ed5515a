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
from ptheta.errors import DataError, ParameterError, RunDirError
from ptheta.models.hmm import HMM
from ptheta.models.hmm_inference import (
    _forward_backward_log,
    _forward_log,
    _scaled_forward,
    forward,
    forward_backward,
)
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


# a 2-state GMM-HMM (M = 2 components per state) of sequences (T=3, F=2)
MIX_WEIGHTS = np.array([[0.3, 0.7], [0.6, 0.4]])
GMM_MEANS = np.array([[[4.0, -1.0], [5.5, -3.0]], [[6.5, -4.0], [3.0, 0.5]]])  # (K, M, F)
GMM_FULL = np.array(
    [
        [[[1.0, 0.6], [0.6, 2.0]], [[0.4, -0.1], [-0.1, 0.3]]],
        [[[0.5, -0.3], [-0.3, 4.0]], [[2.0, 0.9], [0.9, 1.0]]],
    ]
)  # (K, M, F, F)


def _gmm(full: bool) -> HMM:
    """A 2-state HMM of sequences (T=3, F=2) whose states emit two-component mixtures."""
    x = np.random.default_rng(0).normal(size=(20, 3, 2)) * [1.0, 3.0] + OFFSET
    m = _fit(x, emission="gmm", n_mix=2, covariance_type="full" if full else "diag")
    m.startprob_, m.transmat_, m.weights_ = START, TRANS, MIX_WEIGHTS
    m.means_ = GMM_MEANS
    m.covars_ = GMM_FULL if full else np.diagonal(GMM_FULL, axis1=2, axis2=3).copy()
    return m


def _gauss_logpdf(mean: np.ndarray, cov: np.ndarray, step: np.ndarray) -> float:
    """log N(x_O; μ_O, Σ_OO) of the observed (non-NaN) features of ``step``, by scipy."""
    obs = ~np.isnan(step)
    return float(stats.multivariate_normal(mean[obs], cov[np.ix_(obs, obs)]).logpdf(step[obs]))


def _full_cov(m: HMM, k: int, j: int | None = None) -> np.ndarray:
    cov = m.covars_[k] if j is None else m.covars_[k, j]
    return cov if m.covariance_type == "full" else np.diag(cov)


def _enumerate_components(m: HMM, seq: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every path of (state, component) pairs ((K·M)^T, T, 2) of one sequence (T, F) of a
    GMM-HMM and its log joint p(x, s, m): no sum over components inside a step."""
    k, n_mix = m.weights_.shape
    pairs = list(itertools.product(range(k), range(n_mix)))
    paths = np.array(list(itertools.product(pairs, repeat=len(seq))))  # (P, T, 2)
    log_joint = []
    for path in paths:
        states = path[:, 0]
        lp = np.log(m.startprob_[states[0]])
        lp += sum(np.log(m.transmat_[a, b]) for a, b in itertools.pairwise(states))
        for step, (s, j) in zip(seq, path, strict=True):
            if not np.isnan(step).all():
                lp += _gauss_logpdf(m.means_[s, j], _full_cov(m, s, j), step)
            lp += np.log(m.weights_[s, j])  # a fully missing step still draws a component
        log_joint.append(lp)
    return paths, np.array(log_joint)


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


# --------------------------------------------------------------------------- GMM emissions
@pytest.mark.parametrize("full", [False, True])
def test_gmm_likelihood_is_the_sum_over_every_path_of_states_and_components(full):
    m = _gmm(full)
    x = np.random.default_rng(1).normal(size=(4, 3, 2)) * 2 + OFFSET
    x[1, 0, 1] = x[2, 2, 0] = np.nan  # single features missing
    x[3, 1, :] = np.nan  # a whole step
    brute = [logsumexp(_enumerate_components(m, seq)[1]) for seq in x]
    np.testing.assert_allclose(m.score_samples(x), brute, rtol=0, atol=1e-9)


@pytest.mark.parametrize("full", [False, True])
def test_gmm_viterbi_and_posterior_marginals_match_enumeration(full):
    m = _gmm(full)
    x = np.random.default_rng(3).normal(size=(3, 3, 2)) * 2 + OFFSET
    x[0, 1, 0] = np.nan
    path, marginals = m.viterbi(x), m.posterior_states(x)
    np.testing.assert_allclose(marginals.sum(axis=2), 1.0, rtol=0, atol=1e-12)
    for i, seq in enumerate(x):
        pairs, log_joint = _enumerate_components(m, seq)
        states = pairs[:, :, 0] @ (2 ** np.arange(3)[::-1])  # each state path as a number
        by_path = np.array([logsumexp(log_joint[states == p]) for p in range(8)])  # log p(x, s)
        best = np.array(list(itertools.product(range(2), repeat=3)))[np.argmax(by_path)]
        np.testing.assert_array_equal(path[i], best)
        post = np.exp(log_joint - logsumexp(log_joint))
        expected = np.stack([post @ (pairs[:, :, 0] == k) for k in range(2)], axis=-1)
        np.testing.assert_allclose(marginals[i], expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("full", [False, True])
def test_gmm_conditional_mean_matches_enumeration_and_samples_agree(full):
    m = _gmm(full)
    seq = np.random.default_rng(4).normal(size=(3, 2)) * 2 + OFFSET
    seq[0, 1] = seq[2, :] = np.nan
    pairs, log_joint = _enumerate_components(m, seq)
    post = np.exp(log_joint - logsumexp(log_joint))
    expected = np.zeros_like(seq)  # Σ_paths p(s, m | x_O) E[x_M | x_O, s, m], step by step
    for path, p in zip(pairs, post, strict=True):
        for t, (s, j) in enumerate(path):
            mis = np.isnan(seq[t])
            obs = ~mis
            mean, cov = m.means_[s, j], _full_cov(m, s, j)
            cond = mean[mis]
            if obs.any():
                gain = cov[np.ix_(mis, obs)] @ np.linalg.inv(cov[np.ix_(obs, obs)])
                cond = cond + gain @ (seq[t, obs] - mean[obs])
            expected[t, mis] += p * cond
    filled = m.impute(seq[None])[0]
    missing = np.isnan(seq)
    np.testing.assert_allclose(filled[missing], expected[missing], rtol=0, atol=1e-9)
    np.testing.assert_array_equal(filled[~missing], seq[~missing])
    # conditional samples: observed entries kept, the mean of the drawn ones → E[x_M | x_O]
    drawn = m.sample(4000, given=seq[None], random_state=0)
    np.testing.assert_array_equal(drawn[:, ~missing], np.tile(seq[~missing], (4000, 1)))
    sem = drawn[:, missing].std(axis=0) / np.sqrt(4000)
    assert np.all(np.abs(drawn[:, missing].mean(axis=0) - expected[missing]) < 4 * sem)


@pytest.mark.parametrize("full", [False, True])
def test_one_gmm_em_step_equals_the_expected_counts_of_every_path(full):
    truth = _gmm(full)
    x = truth.sample(6, random_state=7)  # (6, T=3, F=2)
    given = {"startprob": START, "transmat": TRANS, "weights": MIX_WEIGHTS,
             "means": truth.means_, "covars": truth.covars_}  # fmt: skip
    m = _fit_from(x, given, emission="gmm", n_mix=2, min_covar=0.0, max_iter=1,
                  covariance_type="full" if full else "diag")  # fmt: skip
    # expected statistics under p(s, m | x), path by path (no forward–backward)
    start, trans, occupancy = np.zeros(2), np.zeros((2, 2)), np.zeros((2, 2))
    first, second = np.zeros((2, 2, 2)), np.zeros((2, 2, 2, 2))  # Σ q x, Σ q x xᵀ
    for seq in x:
        paths, log_joint = _enumerate_components(truth, seq)
        for path, p in zip(paths, np.exp(log_joint - logsumexp(log_joint)), strict=True):
            start[path[0, 0]] += p
            for (a, _), (b, _) in itertools.pairwise(path):
                trans[a, b] += p
            for (s, j), step in zip(path, seq, strict=True):
                occupancy[s, j] += p
                first[s, j] += p * step
                second[s, j] += p * np.outer(step, step)
    means = first / occupancy[..., None]
    covs = second / occupancy[..., None, None] - np.einsum("kmi,kmj->kmij", means, means)
    np.testing.assert_allclose(m.startprob_, start / 6, atol=1e-10)
    np.testing.assert_allclose(m.transmat_, trans / trans.sum(1, keepdims=True), atol=1e-10)
    np.testing.assert_allclose(m.weights_, occupancy / occupancy.sum(1, keepdims=True), atol=1e-10)
    np.testing.assert_allclose(m.means_, means, atol=1e-9)
    expected = covs if full else np.diagonal(covs, axis1=2, axis2=3)
    np.testing.assert_allclose(m.covars_, expected, atol=1e-9)


def test_one_categorical_em_step_with_several_features_equals_the_expected_counts():
    probs = np.array([[[0.5, 0.3, 0.2], [0.1, 0.1, 0.8]], [[0.1, 0.2, 0.7], [0.6, 0.3, 0.1]]])
    truth = _fit(np.arange(60).reshape(10, 3, 2) % 3)  # every level of both features seen
    truth.startprob_, truth.transmat_, truth.emissionprob_ = START, TRANS, probs  # F=2, L=3
    x = truth.sample(8, random_state=8)  # (8, 3, 2)
    given = {"startprob": START, "transmat": TRANS, "emissionprob": probs}
    m = _fit_from(x, given, alpha=0.0, max_iter=1)
    start, trans, counts = np.zeros(2), np.zeros((2, 2)), np.zeros((2, 2, 3))
    for seq in x:
        paths, log_joint = _enumerate(truth, seq)
        for path, p in zip(paths, np.exp(log_joint - logsumexp(log_joint)), strict=True):
            start[path[0]] += p
            for a, b in itertools.pairwise(path):
                trans[a, b] += p
            for s, step in zip(path, seq, strict=True):
                counts[s, [0, 1], step] += p
    np.testing.assert_allclose(m.startprob_, start / 8, atol=1e-12)
    np.testing.assert_allclose(m.transmat_, trans / trans.sum(1, keepdims=True), atol=1e-12)
    np.testing.assert_allclose(m.emissionprob_, counts / counts.sum(2, keepdims=True), atol=1e-12)


def test_gmm_samples_have_the_exact_step_means():
    m = _gmm(full=True)
    drawn = m.sample(20_000, random_state=1)  # (n, T, F)
    state_probs = [START, START @ TRANS, START @ TRANS @ TRANS]  # p(s_t = k)
    component_means = np.einsum("km,kmf->kf", MIX_WEIGHTS, GMM_MEANS)
    for t in range(3):
        exact = state_probs[t] @ component_means
        sem = drawn[:, t].std(axis=0) / np.sqrt(len(drawn))
        assert np.all(np.abs(drawn[:, t].mean(axis=0) - exact) < 4 * sem), t


def _gmm_truth() -> HMM:
    """A GMM-HMM with well-separated states (x₁ ≈ 0 vs 8) and components (x₂ ≈ 0 vs 3)."""
    m = _gmm(full=False)
    m.transmat_ = np.array([[0.9, 0.1], [0.2, 0.8]])
    m.means_ = np.array([[[0.0, 0.0], [0.0, 3.0]], [[8.0, 0.0], [8.0, 3.0]]])
    m.covars_ = np.full((2, 2, 2), 0.25)
    return m


def test_gmm_em_is_monotone_and_recovers_the_parameters_up_to_permutation():
    truth = _gmm_truth()
    x = truth.sample(150, random_state=2)  # (150, 3, 2)
    for full in (False, True):
        for min_covar, keys in ((1e-2, ("objective",)), (0.0, ("objective", "log_likelihood"))):
            m = _fit(x, emission="gmm", n_mix=2, covariance_type="full" if full else "diag",
                     min_covar=min_covar, max_iter=40, tol=0)  # fmt: skip
            for key in keys:
                values = np.array([h[key] for h in m.history_])
                assert np.all(np.diff(values) >= -1e-9), (full, min_covar, key)
    # states matched by their first coordinate, components by their second
    order = np.argsort(m.means_[:, :, 0].mean(axis=1))
    np.testing.assert_allclose(m.transmat_[np.ix_(order, order)], truth.transmat_, atol=0.08)
    for fitted, true in zip(order, range(2), strict=True):
        comp = np.argsort(m.means_[fitted, :, 1])
        np.testing.assert_allclose(m.means_[fitted, comp], truth.means_[true], atol=0.2)
        np.testing.assert_allclose(m.weights_[fitted, comp], MIX_WEIGHTS[true], atol=0.1)
        cov = np.diagonal(m.covars_[fitted, comp], axis1=1, axis2=2)
        np.testing.assert_allclose(cov, truth.covars_[true], atol=0.1)
    assert m.score(x) >= truth.score(x) - 1e-6  # the MLE beats the truth on its own data


def test_gmm_contract_errors_and_parameter_count():
    with pytest.raises(DataError, match="emission='gmm'"):
        _fit(np.array([[0, 1, 1], [1, 0, 1]]), emission="gmm")
    with pytest.raises(DataError, match="n_states=2 × n_mix=4"):
        _fit(np.random.default_rng(0).normal(size=(2, 3)), emission="gmm", n_mix=4)
    k, n_mix, f = 2, 2, 2
    assert _gmm(full=False).n_parameters() == 1 + 2 + k * ((n_mix - 1) + n_mix * (f + f))
    assert _gmm(full=True).n_parameters() == 1 + 2 + k * ((n_mix - 1) + n_mix * (f + 3))
    one = _fit(np.random.default_rng(0).normal(size=(20, 3, 2)), emission="gmm", n_mix=1)
    gauss = _fit(np.random.default_rng(0).normal(size=(20, 3, 2)))
    np.testing.assert_allclose(one.means_[:, 0], gauss.means_, atol=1e-12)  # M = 1: Gaussian
    assert one.n_parameters() == gauss.n_parameters()


def test_a_gmm_run_round_trips(tmp_path):
    x = _draw(_gmm(full=True), 30, seed=5)
    m = _fit(x, emission="gmm", n_mix=2, covariance_type="full")
    loaded = load_run(save_run(m, tmp_path / "gmm"))
    np.testing.assert_array_equal(loaded.score_samples(x), m.score_samples(x))
    assert loaded.covars_.shape == (2, 2, 2, 2)


# --------------------------------------------------------------------------- Bernoulli
def test_categorical_on_binary_data_is_the_bernoulli_hmm():
    mu = np.array([[0.9, 0.2, 0.6], [0.1, 0.7, 0.5]])  # p(x_f = 1 | k), (K, F)
    x = np.random.default_rng(0).integers(0, 2, size=(20, 3, 3))
    m = _fit(x)
    assert m.emission_ == "categorical" and m.emissionprob_.shape == (2, 3, 2)
    m.startprob_, m.transmat_ = START, TRANS
    m.emissionprob_ = np.stack([1 - mu, mu], axis=-1)
    every = np.array(list(itertools.product([0, 1], repeat=9))).reshape(-1, 3, 3)
    scores = m.score_samples(every)
    assert np.exp(scores).sum() == pytest.approx(1.0, abs=1e-12)
    for seq, score in zip(every[::37], scores[::37], strict=True):
        paths = np.array(list(itertools.product(range(2), repeat=3)))
        joint = [
            np.log(START[p[0]]) + np.log(TRANS[p[0], p[1]]) + np.log(TRANS[p[1], p[2]])
            + sum(np.log(mu[p[t]] ** seq[t] * (1 - mu[p[t]]) ** (1 - seq[t])).sum()
                  for t in range(3))
            for p in paths
        ]  # fmt: skip
        assert score == pytest.approx(logsumexp(joint), abs=1e-12)


# --------------------------------------------------------------------------- recursions
def test_scaled_recursions_equal_the_log_space_ones_and_fall_back_where_they_underflow():
    rng = np.random.default_rng(0)
    log_start = np.log(rng.dirichlet(np.ones(3)))
    log_trans = np.log(rng.dirichlet(np.ones(3), size=3))
    log_emit = rng.normal(size=(5, 7, 3)) * 30  # wide factors: the shifts matter
    for fast, slow in zip(
        forward_backward(log_start, log_trans, log_emit),
        _forward_backward_log(log_start, log_trans, log_emit),
        strict=True,
    ):
        np.testing.assert_allclose(fast, slow, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(
        forward(log_start, log_trans, log_emit)[0], _forward_log(log_start, log_trans, log_emit)[0]
    )
    # state 1 is unreachable, but the data favour it by e^800: every scaled step underflows
    start, trans = np.array([0.0, -1000.0]), np.log(np.eye(2) + 1e-300)
    stuck = np.zeros((2, 4, 2))
    stuck[0, :, 1] = 800.0
    assert _scaled_forward(start, np.exp(trans), stuck.transpose(1, 0, 2))[-1].tolist() == [
        True,
        False,
    ]
    for fast, slow in zip(
        forward_backward(start, trans, stuck),
        _forward_backward_log(start, trans, stuck),
        strict=True,
    ):
        np.testing.assert_allclose(fast, slow, rtol=1e-12, atol=1e-12)
    assert np.isfinite(forward(start, trans, stuck)[1]).all()


# --------------------------------------------------------------------------- starting values
def _fit_from(x: np.ndarray, initial: dict, **params) -> HMM:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return HMM(**{"n_states": 2, "max_iter": 3, **params}).fit(x, initial=initial)


def test_em_from_given_parameters_starts_at_their_likelihood():
    truth = _gmm_truth()
    x = truth.sample(40, random_state=3)
    given = {
        "startprob": truth.startprob_,
        "transmat": truth.transmat_,
        "weights": truth.weights_,
        "means": truth.means_,
        "covars": truth.covars_,
    }
    runs = [
        _fit_from(x, given, emission="gmm", n_mix=2, min_covar=0.0, init=init, random_state=seed)
        for init, seed in (("kmeans", 0), ("random", 1))
    ]  # every part given: init and seed play no part
    assert runs[0].history_[0]["log_likelihood"] == pytest.approx(truth.score(x), abs=1e-9)
    np.testing.assert_array_equal(runs[0].means_, runs[1].means_)
    # Gaussian and categorical starts, partial ones too
    g = _gaussian(full=True)
    xg = g.sample(30, random_state=0)
    start = {"startprob": START, "transmat": TRANS, "means": g.means_, "covars": g.covars_}
    m = _fit_from(xg, start, covariance_type="full", min_covar=0.0)
    assert m.history_[0]["log_likelihood"] == pytest.approx(g.score(xg), abs=1e-9)
    c = _categorical()
    xc = c.sample(30, random_state=0)
    m = _fit_from(xc, {"startprob": START, "transmat": TRANS, "emissionprob": PROBS})
    assert m.history_[0]["log_likelihood"] == pytest.approx(c.score(xc), abs=1e-9)
    # a part given replaces that part of the initialisation only
    partial = _fit_from(xc, {"transmat": TRANS}).history_[0]["log_likelihood"]
    assert partial != _fit(xc, max_iter=3).history_[0]["log_likelihood"]


@pytest.mark.parametrize(
    ("initial", "match"),
    [
        (
            {"transmat": np.eye(3)},
            r"initial\['transmat'\] must be a finite array of shape \(2, 2\)",
        ),
        ({"startprob": [0.5, 0.6]}, r"initial\['startprob'\] must hold probabilities"),
        ({"means": np.zeros((2, 1))}, r"keys among 'startprob', 'transmat', 'emissionprob'"),
        ({"emissionprob": np.full((2, 1, 3), np.nan)}, "finite"),
        ([1, 2], "must be a dict"),
    ],
)
def test_bad_starting_values_are_one_clear_error(initial, match):
    x = _categorical().sample(10, random_state=0)
    with pytest.raises(ParameterError, match=match):
        HMM(2).fit(x, initial=initial)
    xg = _gaussian(full=True).sample(10, random_state=0)
    bad_cov = {"covars": np.array([[[1.0, 2.0], [2.0, 1.0]], [[1.0, 0.0], [0.0, 1.0]]])}
    with pytest.raises(ParameterError, match="symmetric positive definite"):
        HMM(2, covariance_type="full").fit(xg, initial=bad_cov)


# --------------------------------------------------------------------------- Bayes' rule
def test_bayes_classifier_of_sequences_fits_one_hmm_per_class():
    probs = np.array([[[0.8, 0.15, 0.05]], [[0.05, 0.15, 0.8]]])
    sticky = _categorical(trans=np.array([[0.95, 0.05], [0.05, 0.95]]), probs=probs, t_len=12)
    jumpy = _categorical(trans=np.array([[0.05, 0.95], [0.95, 0.05]]), probs=probs, t_len=12)
    x = np.concatenate([sticky.sample(60, random_state=0), jumpy.sample(40, random_state=1)])
    y = np.repeat(["sticky", "jumpy"], [60, 40])
    test = np.concatenate([sticky.sample(50, random_state=2), jumpy.sample(50, random_state=3)])
    clf = ptheta.make(
        "bayes-classifier", density="hmm", density_params={"n_states": 2, "max_iter": 50}
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf.fit(x, y)
    assert [type(d) for d in clf.densities_] == [HMM, HMM]
    assert clf.classes_.tolist() == ["jumpy", "sticky"]
    truth = np.repeat(["sticky", "jumpy"], 50)
    assert (clf.predict(test) == truth).mean() >= 0.9
    # Bayes' rule: posteriors are the normalised exp of the class log-likelihoods + log priors
    joint = np.stack([d.score_samples(test) for d in clf.densities_], axis=1)
    joint += np.log([40 / 100, 60 / 100])
    np.testing.assert_allclose(
        clf.predict_proba(test), np.exp(joint - logsumexp(joint, 1, keepdims=True))
    )
    np.testing.assert_allclose(clf.score_samples(test), logsumexp(joint, axis=1))
    # each class density is that class's HMM: it scores its own class's sequences higher
    for c, label in enumerate(clf.classes_):
        own, other = test[truth == label], test[truth != label]
        assert clf.densities_[c].score(own) > clf.densities_[c].score(other)
