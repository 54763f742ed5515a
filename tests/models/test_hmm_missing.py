"""Baum–Welch with missing entries (NaN): EM on the observed-data likelihood for every
emission. One EM step equals the expected counts and moments of every state path (and every
filling of the missing symbols), EM never goes down and its E-step is the scorer, a
converged fit is a maximum of the observed-data likelihood, a known HMM is recovered from
data with 25 % of entries missing, and batched / file-read fits are the in-memory fit."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment
from scipy.special import logsumexp

from ptheta.data.stream import ArraySource, NpySource
from ptheta.errors import DataError
from ptheta.models.hmm import HMM

START = np.array([0.6, 0.4])
TRANS = np.array([[0.85, 0.15], [0.25, 0.75]])
PROBS = np.array([[[0.6, 0.3, 0.1], [0.2, 0.2, 0.6]], [[0.1, 0.2, 0.7], [0.5, 0.4, 0.1]]])
MEANS = np.array([[0.0, 1.0], [3.0, -2.0]])
COVS = np.array([[[1.0, 0.6], [0.6, 1.5]], [[0.5, -0.3], [-0.3, 0.8]]])
MIX_WEIGHTS = np.array([[0.3, 0.7], [0.6, 0.4]])
GMM_MEANS = np.array([[[0.0, 1.0], [1.5, -1.0]], [[3.0, -2.0], [-1.0, 0.5]]])  # (K, M, F)
GMM_COVS = np.array(
    [
        [[[1.0, 0.6], [0.6, 2.0]], [[0.4, -0.1], [-0.1, 0.3]]],
        [[[0.5, -0.3], [-0.3, 1.0]], [[2.0, 0.9], [0.9, 1.0]]],
    ]
)  # (K, M, F, F)


def _fit(x, initial=None, **params) -> HMM:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning of deliberately short runs
        return HMM(**{"n_states": 2, "random_state": 0, **params}).fit(x, initial=initial)


def _truth(emission: str, full: bool = True, t_len: int = 4) -> HMM:
    """A 2-state HMM of ``t_len`` steps of 2 features with the parameters above."""
    rng = np.random.default_rng(0)
    cov = "full" if full else "diag"
    if emission == "categorical":
        m = _fit(rng.integers(0, 3, size=(20, t_len, 2)), max_iter=1)
        m.emissionprob_ = PROBS
    elif emission == "gaussian":
        m = _fit(rng.normal(size=(20, t_len, 2)), max_iter=1, covariance_type=cov)
        m.means_ = MEANS
        m.covars_ = COVS if full else np.diagonal(COVS, axis1=1, axis2=2).copy()
    else:
        m = _fit(rng.normal(size=(20, t_len, 2)), max_iter=1, emission="gmm", covariance_type=cov)
        m.weights_, m.means_ = MIX_WEIGHTS, GMM_MEANS
        m.covars_ = GMM_COVS if full else np.diagonal(GMM_COVS, axis1=2, axis2=3).copy()
    m.startprob_, m.transmat_ = START, TRANS
    return m


def _hide(x: np.ndarray, seed: int, entries: float = 0.25, steps: float = 0.05) -> np.ndarray:
    """A float copy of sequences ``x`` (N, T, F) with a share of ``entries`` and of whole
    ``steps`` missing completely at random."""
    rng = np.random.default_rng(seed)
    out = x.astype(np.float64)
    out[rng.random(out.shape) < entries] = np.nan
    out[rng.random(out.shape[:2]) < steps] = np.nan
    return out


def _initial(m: HMM) -> dict:
    """The fitted parameters of ``m`` as ``fit(initial=...)`` takes them."""
    out = {"startprob": m.startprob_, "transmat": m.transmat_}
    if m.emission_ == "categorical":
        return out | {"emissionprob": m.emissionprob_}
    out |= {"means": m.means_, "covars": m.covars_}
    return out | ({"weights": m.weights_} if m.emission_ == "gmm" else {})


def _full(cov: np.ndarray) -> np.ndarray:
    return cov if cov.ndim == 2 else np.diag(cov)


# --------------------------------------------------------------------------- one E-step
def _conditional(mean: np.ndarray, cov: np.ndarray, step: np.ndarray):
    """log N(x_O), E[x | x_O] and Cov[x | x_O] of one step under N(mean, cov), written
    out with explicit inverses (independent of the library's factorised version)."""
    o, h = ~np.isnan(step), np.isnan(step)
    filled, extra = np.where(o, step, 0.0), np.zeros_like(cov)
    if not o.any():
        return 0.0, mean.copy(), cov.copy()
    inv = np.linalg.inv(cov[np.ix_(o, o)])
    d = step[o] - mean[o]
    log_p = -0.5 * (d @ inv @ d + np.log(np.linalg.det(2 * np.pi * cov[np.ix_(o, o)])))
    gain = cov[np.ix_(h, o)] @ inv
    filled[h] = mean[h] + gain @ d
    extra[np.ix_(h, h)] = cov[np.ix_(h, h)] - gain @ cov[np.ix_(o, h)]
    return float(log_p), filled, extra


def test_one_categorical_em_step_is_the_enumeration_over_paths_and_missing_symbols():
    """Enumerating every state path and every filling of the missing symbols: the level
    counts of the observed entries, normalised by the state's mass where the feature is
    observed, are the M-step; the counts at the missing entries are γ_t(k) θ_kfl (the
    spread a missing entry's mass gets when the entries are latent too)."""
    truth = _truth("categorical")
    x = truth.sample(6, random_state=1).astype(np.float64)[:, :3]  # (6, T=3, F=2)
    x[0, 1, 0] = x[1, 0, 1] = x[2, 2, :] = x[3, 0, 0] = x[3, 2, 1] = np.nan
    x[4, :, 1] = np.nan
    m = _fit(x, _initial(truth), alpha=0.0, max_iter=1)
    start, trans = np.zeros(2), np.zeros((2, 2))
    seen, unseen = np.zeros((2, 2, 3)), np.zeros((2, 2, 3))  # at observed / missing entries
    for seq in x:
        holes = list(zip(*np.nonzero(np.isnan(seq)), strict=True))
        rows = []  # (path, filled sequence, log p(s, x_full))
        for path in itertools.product(range(2), repeat=3):
            for fill in itertools.product(range(3), repeat=len(holes)):
                full = seq.copy()
                for (t, f), level in zip(holes, fill, strict=True):
                    full[t, f] = level
                lp = np.log(START[path[0]]) + sum(
                    np.log(TRANS[a, b]) for a, b in itertools.pairwise(path)
                )
                lp += sum(np.log(PROBS[s, f, int(full[t, f])])
                          for t, s in enumerate(path) for f in range(2))  # fmt: skip
                rows.append((path, full, lp))
        post = np.exp(np.array([r[2] for r in rows]) - logsumexp([r[2] for r in rows]))
        for (path, full, _), p in zip(rows, post, strict=True):
            start[path[0]] += p
            for a, b in itertools.pairwise(path):
                trans[a, b] += p
            for t, s in enumerate(path):
                for f in range(2):
                    into = unseen if np.isnan(seq[t, f]) else seen
                    into[s, f, int(full[t, f])] += p
    np.testing.assert_allclose(m.startprob_, start / 6, atol=1e-12)
    np.testing.assert_allclose(m.transmat_, trans / trans.sum(1, keepdims=True), atol=1e-12)
    np.testing.assert_allclose(m.emissionprob_, seen / seen.sum(2, keepdims=True), atol=1e-12)
    # a missing entry's mass is spread as γ_t(k) θ_kfl
    np.testing.assert_allclose(unseen, unseen.sum(2, keepdims=True) * PROBS, atol=1e-12)


@pytest.mark.parametrize(
    ("emission", "full"), [("gaussian", True), ("gaussian", False), ("gmm", True), ("gmm", False)]
)
def test_one_gaussian_em_step_is_the_expected_moments_of_every_path(emission, full):
    """E[x] and E[x xᵀ] per (state, component) under p(path | x_O), with the missing
    features at their conditional mean and covariance given the step's observed ones."""
    truth = _truth(emission, full)
    x = truth.sample(6, random_state=2)[:, :3]  # (6, T=3, F=2)
    x[0, 1, 0] = x[1, 0, 1] = x[2, 2, :] = x[3, 0, 0] = x[3, 2, 1] = x[4, :, 1] = np.nan
    m = _fit(x, _initial(truth), emission=emission, covariance_type="full" if full else "diag",
             min_covar=0.0, max_iter=1)  # fmt: skip
    weights = truth.weights_ if emission == "gmm" else np.ones((2, 1))
    means = truth.means_ if emission == "gmm" else truth.means_[:, None]
    covs = truth.covars_ if emission == "gmm" else truth.covars_[:, None]
    n_mix = weights.shape[1]
    pairs = list(itertools.product(range(2), range(n_mix)))
    start, trans, occupancy = np.zeros(2), np.zeros((2, 2)), np.zeros((2, n_mix))
    first, second = np.zeros((2, n_mix, 2)), np.zeros((2, n_mix, 2, 2))
    for seq in x:
        paths = list(itertools.product(pairs, repeat=3))
        log_joint, moments = [], []
        for path in paths:
            lp = np.log(START[path[0][0]])
            lp += sum(np.log(TRANS[a, b]) for (a, _), (b, _) in itertools.pairwise(path))
            steps = []
            for (s, j), step in zip(path, seq, strict=True):
                log_p, filled, extra = _conditional(means[s, j], _full(covs[s, j]), step)
                lp += np.log(weights[s, j]) + log_p
                steps.append((filled, extra))
            log_joint.append(lp)
            moments.append(steps)
        post = np.exp(np.array(log_joint) - logsumexp(log_joint))
        for path, p, steps in zip(paths, post, moments, strict=True):
            start[path[0][0]] += p
            for (a, _), (b, _) in itertools.pairwise(path):
                trans[a, b] += p
            for (s, j), (filled, extra) in zip(path, steps, strict=True):
                occupancy[s, j] += p
                first[s, j] += p * filled
                second[s, j] += p * (np.outer(filled, filled) + extra)
    mean = first / occupancy[..., None]
    cov = second / occupancy[..., None, None] - np.einsum("kmi,kmj->kmij", mean, mean)
    cov = cov if full else np.diagonal(cov, axis1=2, axis2=3)
    np.testing.assert_allclose(m.startprob_, start / 6, atol=1e-10)
    np.testing.assert_allclose(m.transmat_, trans / trans.sum(1, keepdims=True), atol=1e-10)
    if emission == "gmm":
        np.testing.assert_allclose(m.weights_, occupancy / occupancy.sum(1, keepdims=True),
                                   atol=1e-10)  # fmt: skip
        np.testing.assert_allclose(m.means_, mean, atol=1e-9)
        np.testing.assert_allclose(m.covars_, cov, atol=1e-9)
    else:
        np.testing.assert_allclose(m.means_, mean[:, 0], atol=1e-9)
        np.testing.assert_allclose(m.covars_, cov[:, 0], atol=1e-9)


# --------------------------------------------------------------------------- EM
CASES = [
    ("categorical", "diag", False),
    ("categorical", "diag", True),
    ("gaussian", "diag", False),
    ("gaussian", "full", False),
    ("gaussian", "full", True),
    ("gmm", "diag", True),
    ("gmm", "full", False),
]


def _data(emission: str, variable: bool, seed: int):
    """About 30 % of entries missing (25 % at random, 5 % of whole steps): a padded array
    (40, 8, 2), or 40 sequences of lengths 2..8 for ``variable``."""
    x = _hide(_truth(emission, t_len=8).sample(40, random_state=seed), seed)
    if not variable:
        return x
    lengths = np.random.default_rng(seed).integers(2, 9, size=len(x))
    return [seq[:n] for seq, n in zip(x, lengths, strict=True)]


@pytest.mark.parametrize(("emission", "cov", "variable"), CASES)
def test_em_never_lowers_the_objective_and_its_e_step_is_the_scorer(emission, cov, variable):
    x = _data(emission, variable, seed=3)
    params = {"emission": emission, "covariance_type": cov, "alpha": 0.5, "min_covar": 0.05,
              "tol": 0.0}  # fmt: skip
    m = _fit(x, max_iter=25, **params)
    objective = np.array([h["objective"] for h in m.history_])
    assert np.all(np.diff(objective) >= -1e-9 * np.abs(objective[1:]))
    assert objective[-1] > objective[0] + 0.1  # it moved
    # the history's last entry is the E-step at the parameters of the previous M-step:
    # the same deterministic run one step shorter, scored by score_samples
    before = _fit(x, max_iter=24, **params)
    assert m.history_[-1]["log_likelihood"] == pytest.approx(
        before.score_samples(x).mean(), rel=1e-10
    )
    # without prior or smoothing, the log-likelihood itself never goes down
    if emission != "gmm":
        plain = _fit(x, max_iter=25, **(params | {"alpha": 0.0, "min_covar": 0.0}))
        loglik = np.array([h["log_likelihood"] for h in plain.history_])
        assert np.all(np.diff(loglik) >= -1e-9 * np.abs(loglik[1:]))


@pytest.mark.parametrize(("emission", "cov"), [("categorical", "diag"), ("gaussian", "diag"),
                                               ("gaussian", "full")])  # fmt: skip
def test_a_converged_fit_is_a_maximum_of_the_observed_data_likelihood(emission, cov):
    """Nudging any one parameter (a mean, a covariance entry, probability moved between two
    entries of a row) either way lowers log p(x_observed) computed by score_samples: the
    slope is ≈ 0 and the curvature negative."""
    x = _hide(_truth(emission, t_len=6).sample(60, random_state=4), seed=4)
    m = _fit(x, emission=emission, covariance_type=cov, alpha=0.0, min_covar=0.0, tol=1e-12,
             max_iter=3000)  # fmt: skip
    assert m.converged_
    total = m.score_samples(x).sum()

    def check(name: str, plus: list[tuple], minus: tuple = ()):
        """The slope and curvature of the total along +h at ``plus`` (and −h at ``minus``)."""
        values, h = getattr(m, name), 1e-4
        diffs = []
        for step in (h, -h):
            for i in plus:
                values[i] += step
            for i in minus:
                values[i] -= step
            diffs.append(m.score_samples(x).sum() - total)
            for i in plus:
                values[i] -= step
            for i in minus:
                values[i] += step
        slope, curvature = (diffs[0] - diffs[1]) / (2 * h), (diffs[0] + diffs[1]) / h**2
        assert curvature < 0, (name, plus)
        assert abs(slope) < 1e-3 * abs(curvature), (name, plus, slope, curvature)

    check("startprob_", [(0,)], [(1,)])
    for k in range(2):
        check("transmat_", [(k, 0)], [(k, 1)])
        for j in range(2):
            if emission == "categorical":
                for level in range(2):
                    check("emissionprob_", [(k, j, level)], [(k, j, 2)])
                continue
            check("means_", [(k, j)])
            check("covars_", [(k, j)] if cov == "diag" else [(k, j, j)])
        if cov == "full":
            check("covars_", [(k, 0, 1), (k, 1, 0)])  # an off-diagonal entry, both sides


def test_a_known_gaussian_hmm_is_recovered_from_data_with_a_quarter_missing():
    """200 sequences of 30 steps, 2 states, full 2 × 2 covariances; 30 % of entries missing
    at random in 5 sequences of 6 and 5 % of whole steps: 25 % of all entries. The fit is
    near the truth (states matched by linear_sum_assignment) and its test log-likelihood
    beats the same HMM fitted on the sequences with no missing entry (the sixth)."""
    truth = _truth("gaussian", t_len=30)
    x = truth.sample(200, random_state=5)
    rng = np.random.default_rng(5)
    hide = (rng.random(x.shape) < 0.27) & (np.arange(200) % 6 != 0)[:, None, None]
    hide |= (rng.random(x.shape[:2]) < 0.05)[:, :, None] & (np.arange(200) % 6 != 0)[:, None, None]
    train = np.where(hide, np.nan, x)
    assert 0.22 < np.isnan(train).mean() < 0.28
    complete = train[~np.isnan(train).any(axis=(1, 2))]
    params = {"covariance_type": "full", "tol": 1e-6, "max_iter": 300, "n_init": 2}
    m = _fit(train, **params)
    cc = _fit(complete, **params)
    _, cols = linear_sum_assignment(((m.means_[:, None] - MEANS[None]) ** 2).sum(axis=2))
    order = cols.argsort()  # fitted state of each true state
    np.testing.assert_allclose(m.means_[order], MEANS, atol=0.1)
    np.testing.assert_allclose(m.covars_[order], COVS, atol=0.15)
    np.testing.assert_allclose(m.transmat_[np.ix_(order, order)], TRANS, atol=0.03)
    test = truth.sample(300, random_state=6)
    test_missing = _hide(test, seed=6)
    assert m.score(test) > cc.score(test)
    assert m.score(test_missing) > cc.score(test_missing)


# --------------------------------------------------------------------------- batches
def test_batches_and_files_give_the_in_memory_fit_and_minibatch_em_runs(tmp_path):
    x = _hide(_truth("gaussian", t_len=8).sample(60, random_state=7), seed=7)
    params = {"covariance_type": "full", "tol": 1e-8, "max_iter": 40}
    whole = _fit(x, **params)
    path = tmp_path / "x.npy"
    np.save(path, x)
    spec = whole.fitted_spec
    npy = NpySource(path)
    npy.spec = spec
    for data, batch in ((x, 7), (ArraySource(x, spec=spec), None), (npy, 11)):
        other = _fit(data, batch_size=batch, **params)
        assert other.n_iter_ == whole.n_iter_
        for key in ("startprob_", "transmat_", "means_", "covars_"):
            np.testing.assert_allclose(getattr(other, key), getattr(whole, key), rtol=1e-9)
    stepwise = _fit(x, em="minibatch", batch_size=10, max_iter=15, covariance_type="full")
    assert np.isfinite([h["objective"] for h in stepwise.history_]).all()
    one = _fit(x, n_states=1, covariance_type="full")
    assert stepwise.score(x) > one.score(x) + 1.0  # found the states
    assert stepwise.score(x) == pytest.approx(whole.score(x), abs=0.1)


def test_variable_length_sequences_with_missing_steps_and_the_standardisation():
    seqs = _data("gaussian", variable=True, seed=8)
    seqs[0][:] = np.nan  # a whole sequence missing: only its length is data
    m = _fit(seqs, max_iter=20, tol=0.0)
    steps = np.concatenate(seqs)
    np.testing.assert_allclose(m.shift_, np.nanmean(steps, axis=0), rtol=1e-12)
    np.testing.assert_allclose(m.scale_, np.nanstd(steps, axis=0), rtol=1e-12)
    # the whole-missing sequence scores its length only: p(L = n) = π ∏ (diag(1 − e) A) e
    v = m.startprob_
    for _ in range(len(seqs[0]) - 1):
        v = (v * (1 - m.endprob_)) @ m.transmat_
    assert m.score_samples([seqs[0]])[0] == pytest.approx(np.log(v @ m.endprob_), rel=1e-10)


# --------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("emission", ["categorical", "gaussian"])
def test_a_feature_never_observed_is_one_clear_error(emission):
    x = _data(emission, variable=False, seed=9)
    x[:, :, 1] = np.nan
    with pytest.raises(DataError, match=r"feature \[1\] .* no observed value.*drop"):
        _fit(x, emission=emission)
    seqs = _data(emission, variable=True, seed=9)
    for seq in seqs:
        seq[:, 0] = np.nan
    with pytest.raises(DataError, match=r"feature \[0\] .* no observed value"):
        _fit(seqs, emission=emission)
