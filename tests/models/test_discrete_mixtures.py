"""Bernoulli and categorical mixtures: exact sums, monotone MAP-EM, recovery, missing data."""

from __future__ import annotations

import itertools
import math
import warnings

import numpy as np
import pytest
from scipy import stats
from scipy.optimize import linear_sum_assignment
from scipy.special import logsumexp

import ptheta
from ptheta.data.spec import DataSpec, Split
from ptheta.errors import DataError, ParameterError
from ptheta.models.mixtures import BernoulliMixture, CategoricalMixture


def _mixture_data(
    n: int, d: int, levels: int, k: int = 3, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Examples (n, d) drawn from a random mixture, with its weights (k,) and probs (k, d, L)."""
    rng = np.random.default_rng(seed)
    weights = rng.dirichlet(np.full(k, 5.0))
    probs = rng.dirichlet(np.full(levels, 0.5), size=(k, d))
    comp = rng.choice(k, size=n, p=weights)
    u = rng.random((n, d, 1))
    x = np.minimum((np.cumsum(probs[comp], axis=2) <= u).sum(axis=2), levels - 1)
    return x, weights, probs


def _fit(cls, x, levels: int, **params):
    kind = "binary" if levels == 2 else "categorical"
    split = Split(x, None, DataSpec(kind, (x.shape[1],), levels))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tol=0 runs never "converge"
        return cls(**{"n_components": 3, "random_state": 0, **params}).fit(split)


def _configs(levels: int, d: int) -> np.ndarray:
    return np.array(list(itertools.product(range(levels), repeat=d)), dtype=np.int64)


def _brute_joint(model, x: np.ndarray) -> np.ndarray:
    """π_k ∏_{d observed} θ_k,d[x_d] by plain products, shape (N, K); NaN entries skipped."""
    out = np.empty((len(x), len(model.weights_)))
    for n, row in enumerate(x):
        for k, w in enumerate(model.weights_):
            out[n, k] = w * math.prod(
                model.probs_[k, d, int(v)] for d, v in enumerate(row) if not np.isnan(v)
            )
    return out


def _chi_square_p(counts: np.ndarray, probs: np.ndarray) -> float:
    expected = probs / probs.sum() * counts.sum()
    keep = expected >= 5  # pool rare cells, as the chi-square approximation needs
    obs, exp = counts[keep], expected[keep]
    if (~keep).any():
        obs, exp = np.append(obs, counts[~keep].sum()), np.append(exp, expected[~keep].sum())
    return stats.chisquare(obs, exp * obs.sum() / exp.sum()).pvalue


@pytest.mark.parametrize(
    ("cls", "levels", "d"), [(BernoulliMixture, 2, 11), (CategoricalMixture, 3, 5)]
)
def test_probabilities_sum_to_one_and_equal_the_product_formula(cls, levels, d):
    x, _, _ = _mixture_data(300, d, levels)
    model = _fit(cls, x, levels)
    configs = _configs(levels, d)
    log_p = model.score_samples(configs)
    assert np.exp(log_p).sum() == pytest.approx(1.0, abs=1e-10)
    np.testing.assert_allclose(log_p, np.log(_brute_joint(model, configs).sum(1)), rtol=1e-12)
    assert model.n_parameters() == 2 + 3 * d * (levels - 1)


@pytest.mark.parametrize("cls", [BernoulliMixture, CategoricalMixture])
@pytest.mark.parametrize("alpha", [0.0, 0.5, 2.0])
def test_map_em_objective_never_decreases(cls, alpha):
    x, _, _ = _mixture_data(200, 8, 2, k=4, seed=1)
    model = _fit(cls, x, 2, n_components=5, alpha=alpha, tol=0.0, max_iter=80, init="random")
    objective = np.array([h["objective"] for h in model.history_])
    loglik = np.array([h["log_likelihood"] for h in model.history_])
    assert len(objective) == 80
    assert np.all(np.diff(objective) >= -1e-12 * np.abs(objective[1:]))
    assert objective[-1] > objective[0]
    if alpha == 0:  # maximum likelihood: the log-likelihood itself is monotone, and the flat
        # Dirichlet(1) priors add only their constant log-normaliser
        assert np.all(np.diff(loglik) >= -1e-12 * np.abs(loglik[1:]))
        constant = (5 * 8 * math.lgamma(2) + math.lgamma(5)) / len(x)
        np.testing.assert_allclose(objective - loglik, constant, atol=1e-12)


def test_with_smoothing_the_log_likelihood_alone_can_dip():
    rng = np.random.default_rng(0)
    x = (rng.random((200, 12)) < rng.random((1, 12))).astype(np.int64)
    x[:100] = 1 - x[:100]
    model = _fit(BernoulliMixture, x, 2, n_components=5, alpha=2.0, tol=0.0, max_iter=80,
                 init="random", random_state=0)  # fmt: skip
    objective = np.array([h["objective"] for h in model.history_])
    assert np.all(np.diff(objective) >= -1e-12 * np.abs(objective[1:]))
    dip = np.diff([h["log_likelihood"] for h in model.history_]).min()
    assert dip < -1e-4, "the documented caveat: only the log-posterior is monotone"


@pytest.mark.parametrize("alpha", [0.0, 0.5, 2.0])
def test_recorded_objective_is_log_likelihood_plus_dirichlet_log_prior(alpha):
    x, _, _ = _mixture_data(200, 12, 2, seed=2)
    model = _fit(BernoulliMixture, x, 2, alpha=alpha, tol=1e-13, max_iter=3000)
    k, d, levels = model.probs_.shape
    log_prior = sum(
        stats.dirichlet.logpdf(model.probs_[i, j], np.full(levels, alpha + 1.0))
        for i in range(k)
        for j in range(d)
    ) + stats.dirichlet.logpdf(model.weights_, np.ones(k))
    last = model.history_[-1]  # at convergence the last recorded step has the final parameters
    assert last["log_likelihood"] == pytest.approx(model.score(x), abs=1e-7)
    assert last["objective"] == pytest.approx(model.score(x) + log_prior / len(x), abs=1e-7)


def test_recovers_a_well_separated_bernoulli_mixture_up_to_permutation():
    rng = np.random.default_rng(3)
    k, d, n = 3, 16, 3000
    weights = np.array([0.5, 0.3, 0.2])
    means = np.where(rng.random((k, d)) < 0.5, 0.15, 0.85)  # (K, D), far apart in Hamming distance
    comp = rng.choice(k, size=n, p=weights)
    x = (rng.random((n, d)) < means[comp]).astype(np.int64)
    model = _fit(BernoulliMixture, x, 2, n_init=3, tol=1e-8, max_iter=500)
    fitted = model.probs_[:, :, 1]  # (K, D)
    rows, cols = linear_sum_assignment(np.abs(fitted[:, None, :] - means[None]).sum(axis=2))
    order = rows[np.argsort(cols)]  # fitted component matched to each true component
    se_means = np.sqrt(means * (1 - means) / (n * weights[:, None]))
    se_weights = np.sqrt(weights * (1 - weights) / n)
    assert np.all(np.abs(fitted[order] - means) < 5 * se_means)
    assert np.all(np.abs(model.weights_[order] - weights) < 5 * se_weights)


@pytest.mark.parametrize(("cls", "levels"), [(BernoulliMixture, 2), (CategoricalMixture, 4)])
def test_responsibilities_equal_bayes_rule_by_brute_force(cls, levels):
    x, _, _ = _mixture_data(250, 6, levels, seed=4)
    model = _fit(cls, x, levels)
    rows = x[:20].astype(np.float64)
    rows[::3, [0, 4]] = np.nan  # responsibilities given the observed entries only
    joint = _brute_joint(model, rows)
    expected = joint / joint.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(model.predict_proba(rows), expected, rtol=1e-10)
    np.testing.assert_array_equal(model.embed(rows), model.predict_proba(rows))
    np.testing.assert_array_equal(model.predict(rows), expected.argmax(axis=1))


@pytest.mark.parametrize(
    ("cls", "levels", "d"), [(BernoulliMixture, 2, 12), (CategoricalMixture, 3, 6)]
)
def test_marginals_with_nan_equal_brute_force_sums(cls, levels, d):
    x, _, _ = _mixture_data(300, d, levels, seed=5)
    model = _fit(cls, x, levels)
    rng = np.random.default_rng(0)
    assert model.score_samples(np.full((1, d), np.nan))[0] == pytest.approx(0.0, abs=1e-12)
    for n_missing in (1, 3, 5):
        row = x[n_missing].astype(np.float64)
        missing = rng.choice(d, size=n_missing, replace=False)
        partial = row.copy()
        partial[missing] = np.nan
        filled = np.repeat(row[None], levels**n_missing, axis=0)
        filled[:, missing] = _configs(levels, n_missing)
        brute = logsumexp(model.score_samples(filled.astype(np.int64)))
        assert model.score_samples(partial[None])[0] == pytest.approx(brute, abs=1e-10)


@pytest.mark.parametrize(
    ("cls", "levels", "d"), [(BernoulliMixture, 2, 10), (CategoricalMixture, 3, 6)]
)
def test_conditional_samples_and_modes_match_the_brute_force_conditional(cls, levels, d):
    x, _, _ = _mixture_data(300, d, levels, seed=6)
    model = _fit(cls, x, levels)
    missing = [0, 2, 5] if levels == 3 else [1, 2, 6, 8]
    partial = x[0].astype(np.float64)
    partial[missing] = np.nan
    fills = _configs(levels, len(missing))  # every completion, (C, |M|)
    filled = np.repeat(partial[None], len(fills), axis=0)
    filled[:, missing] = fills
    conditional = np.exp(
        model.score_samples(filled.astype(np.int64)) - model.score_samples(partial[None])
    )
    assert conditional.sum() == pytest.approx(1.0, abs=1e-10)

    drawn = model.sample(20_000, given=partial[None], random_state=0)[:, missing]  # (n, |M|)
    index = drawn @ (levels ** np.arange(len(missing)))[::-1]  # row of `fills`
    assert _chi_square_p(np.bincount(index, minlength=len(fills)), conditional) > 1e-4

    # "mode": the most probable level of each missing entry under p(x_d | x_obs)
    per_entry = np.array([[conditional[fills[:, j] == v].sum() for v in range(levels)]
                          for j in range(len(missing))])  # fmt: skip
    imputed = model.impute(partial[None], method="mode")[0]
    np.testing.assert_array_equal(imputed[missing], per_entry.argmax(axis=1))


def test_categorical_sampler_histogram_matches_exact_probabilities():
    x, _, _ = _mixture_data(300, 4, 3, seed=7)
    model = _fit(CategoricalMixture, x, 3)
    configs = _configs(3, 4)
    samples = model.sample(20_000, random_state=1)
    counts = np.bincount(samples @ (3 ** np.arange(4))[::-1], minlength=len(configs))
    assert _chi_square_p(counts, np.exp(model.score_samples(configs))) > 1e-4


def test_categorical_mixture_on_binary_data_is_the_bernoulli_mixture():
    x, _, _ = _mixture_data(200, 7, 2, seed=8)
    bern = _fit(BernoulliMixture, x, 2)
    cat = _fit(CategoricalMixture, x, 2)
    np.testing.assert_allclose(cat.probs_, bern.probs_, atol=1e-12)
    np.testing.assert_allclose(cat.score_samples(x), bern.score_samples(x), atol=1e-12)


def test_bernoulli_mixture_beats_independent_on_digits():
    data = ptheta.datasets.load("digits-binary")
    mixture = BernoulliMixture(15, random_state=0).fit(data.train)
    independent = ptheta.make("independent").fit(data.train)
    nll_mixture, nll_independent = -mixture.score(data.test), -independent.score(data.test)
    print(f"digits-binary test NLL: bernoulli-mixture(15) {nll_mixture:.3f}, "
          f"independent {nll_independent:.3f} nats")  # fmt: skip
    assert nll_mixture < nll_independent - 3.0


def test_bad_input_and_parameters_are_clear_errors():
    x, _, _ = _mixture_data(100, 5, 3, seed=9)
    model = _fit(CategoricalMixture, x, 3)
    beyond = x[:3].copy()
    beyond[0, 0] = 3  # the model was fitted with 3 levels: 0..2
    with pytest.raises(DataError, match=r"values 0\.\.2"):
        model.score_samples(beyond)
    partial = beyond.astype(np.float64)
    partial[0, 0] = np.nan
    with pytest.raises(DataError, match="method"):
        model.impute(partial, method="median")
    with pytest.raises(DataError, match="shape"):
        model.predict_proba(x[:, :2])
    with pytest.raises(DataError, match="does not model categorical"):
        BernoulliMixture().fit(x)
    with pytest.raises(DataError, match="does not model continuous"):
        CategoricalMixture().fit(np.random.default_rng(0).normal(size=(20, 2)))
    with pytest.raises(DataError, match="more than the 100 training examples"):
        CategoricalMixture(101).fit(x)
    for params, match in [
        ({"alpha": -1.0}, "alpha"),
        ({"alpha": float("nan")}, "alpha"),
        ({"n_components": 0}, "n_components"),
        ({"n_components": 2.5}, "n_components"),
        ({"init": "kmeans"}, "init"),
        ({"max_iter": 0}, "max_iter"),
        ({"tol": -1.0}, "tol"),
        ({"dtype": "float16"}, "dtype"),
    ]:
        with pytest.raises(ParameterError, match=match):
            CategoricalMixture(**{"n_components": 2, **params}).fit(x)
