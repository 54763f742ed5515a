"""Information measures: exact by enumeration and closed form, Monte Carlo within its error."""

from __future__ import annotations

import itertools
import math
import warnings

import numpy as np
import pytest
from scipy import stats

import ptheta
from ptheta.data.spec import DataSpec, Split
from ptheta.errors import CapabilityError, DataError, NotFittedError, ParameterError
from ptheta.eval import info
from ptheta.eval.info import cross_entropy, entropy, kl
from ptheta.models import REGISTRY
from ptheta.models.base import GenerativeModel
from ptheta.models.baselines import Independent
from ptheta.models.mixtures import GaussianMixture


class _Plain(Independent):
    """The independent model under another name: no closed form, so enumeration or MC."""

    name = "test-plain-independent"
    abilities = {"closed_form": False}  # noqa: RUF012 (a class default, as in the families)


class _NoLikelihood(GenerativeModel):
    """A sampler without a likelihood (like a GAN): fair coin flips in every dimension."""

    name = "test-no-likelihood"
    family = "implicit"
    likelihood = "none"
    data_kinds = ("binary",)

    def _fit(self, x, y, spec):
        self.n_dims_ = spec.n_dims

    def _sample(self, n, y, rng):
        return rng.integers(0, 2, size=(n, self.n_dims_))

    def _n_parameters(self):
        return 1


def _split(kind: str, d: int, seed: int, n: int = 300) -> Split:
    """Data of a kind with per-dimension structure that differs between seeds."""
    rng = np.random.default_rng(seed)
    if kind == "binary":
        x = (rng.random((n, d)) < rng.uniform(0.1, 0.9, d)).astype(np.int64)
        return Split(x, None, DataSpec("binary", (d,)))
    if kind == "categorical":
        probs = rng.dirichlet(np.ones(5), size=d)  # (D, 5)
        x = np.stack([rng.choice(5, size=n, p=pr) for pr in probs], axis=1)
        return Split(x, None, DataSpec("categorical", (d,), 5))
    if kind == "table":  # a flag, a 3-level category, a count and a price
        from ptheta.data.table import ColumnSpec

        flag = (rng.random(n) < 0.3).astype(float)
        x = np.column_stack(
            [
                flag,
                rng.choice(3, size=n, p=[0.5, 0.3, 0.2]).astype(float),
                rng.poisson(1.0 + 3.0 * flag).astype(float),
                rng.normal(size=n) + 2.0 * flag,
            ]
        )
        columns = (
            ColumnSpec("flag", "binary", ("no", "yes")),
            ColumnSpec("city", "categorical", ("a", "b", "c")),
            ColumnSpec("visits", "count"),
            ColumnSpec("price", "continuous"),
        )
        return Split(x, None, DataSpec("table", (4,), columns=columns))
    centre = rng.normal(size=d)
    mix = rng.normal(size=(d, d)) * 0.5 + np.eye(d)  # correlated
    return Split(centre + rng.normal(size=(n, d)) @ mix, None, DataSpec("continuous", (d,)))


def _fit(model: GenerativeModel, split: Split, y=None) -> GenerativeModel:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence / constant-feature warnings
        return model.fit(split, y)


def _within(mc, exact: float, k: float = 4.0) -> None:
    assert mc.method == "monte-carlo" and mc.std_err > 0
    assert abs(mc.value - exact) < k * mc.std_err, (mc, exact)


# ----------------------------------------------------------------- exact methods
@pytest.mark.parametrize(("kind", "d"), [("binary", 10), ("categorical", 6)])
def test_enumeration_equals_closed_form_for_independent_models(kind, d):
    p_split, q_split = _split(kind, d, seed=1), _split(kind, d, seed=2)
    p, q = _fit(Independent(), p_split), _fit(Independent(), q_split)
    pe, qe = _fit(_Plain(), p_split), _fit(_Plain(), q_split)
    for closed, enumerated in [
        (entropy(p), entropy(pe)),
        (cross_entropy(p, q), cross_entropy(pe, qe)),
        (kl(p, q), kl(pe, qe)),
        (kl(q, p), kl(qe, pe)),
    ]:
        assert closed.method == "closed-form" and enumerated.method == "exact-enumeration"
        assert closed.std_err == enumerated.std_err == 0.0
        assert enumerated.value == pytest.approx(closed.value, rel=1e-10, abs=1e-10)
    # and the closed form is the sum of scipy's per-variable entropies
    per_variable = sum(stats.entropy(row) for row in p.probs_)
    assert entropy(p).value == pytest.approx(per_variable, rel=1e-12)


def test_kl_of_a_model_with_itself_is_zero():
    split = _split("binary", 8, seed=3)
    pe = _fit(_Plain(), split)
    assert kl(pe, pe).value == 0.0 and kl(pe, pe).method == "exact-enumeration"
    assert kl(_fit(Independent(), split), _fit(Independent(), split)).value == 0.0
    g = _fit(GaussianMixture(1, random_state=0), _split("continuous", 3, seed=4))
    assert kl(g, g).method == "closed-form" and abs(kl(g, g).value) < 1e-12
    # Monte Carlo uses per-sample differences log p − log q: the noise cancels exactly
    g3 = _fit(GaussianMixture(3, random_state=0), _split("continuous", 2, seed=5))
    same = kl(g3, g3, n_samples=500, random_state=0)
    assert same.method == "monte-carlo" and same.value == 0.0 and same.std_err == 0.0


def test_kl_is_non_negative_and_cross_entropy_exceeds_entropy():
    pe, qe = _fit(_Plain(), _split("binary", 8, seed=6)), _fit(_Plain(), _split("binary", 8, 7))
    assert kl(pe, qe).value > 0 and kl(qe, pe).value > 0
    assert cross_entropy(pe, qe).value > entropy(pe).value  # Gibbs' inequality
    cont = _split("continuous", 2, seed=8)
    g, ind = _fit(GaussianMixture(3, random_state=0), cont), _fit(Independent(), cont)
    for a, b in [(g, ind), (ind, g)]:
        d = kl(a, b, n_samples=2000, random_state=1)
        assert d.value > -4 * d.std_err


def test_monte_carlo_agrees_with_enumeration():
    pe, qe = _fit(_Plain(), _split("binary", 10, seed=9)), _fit(_Plain(), _split("binary", 10, 10))
    options = {"method": "mc", "n_samples": 3000, "random_state": 0}
    _within(entropy(pe, **options), entropy(pe, method="exact").value)
    _within(cross_entropy(pe, qe, **options), cross_entropy(pe, qe, method="exact").value)
    _within(kl(pe, qe, **options), kl(pe, qe, method="exact").value)


def test_gaussian_closed_forms_match_scipy_and_monte_carlo():
    split = _split("continuous", 3, seed=11)
    full = _fit(GaussianMixture(1, random_state=0), split)
    diag = _fit(GaussianMixture(1, covariance_type="diag", random_state=0), split)
    ind = _fit(Independent(), _split("continuous", 3, seed=12))
    truths = [
        stats.multivariate_normal(full.means_[0], full.covariances_[0]).entropy(),
        stats.multivariate_normal(diag.means_[0], np.diag(diag.covariances_[0])).entropy(),
        stats.multivariate_normal(ind.mean_, np.diag(ind.var_)).entropy(),
    ]
    for model, truth in zip((full, diag, ind), truths, strict=True):
        h = entropy(model)
        assert h.method == "closed-form" and h.space == "continuous"
        assert h.value == pytest.approx(truth, rel=1e-10)
        _within(entropy(model, method="mc", n_samples=4000, random_state=0), truth)
    for p, q in [(full, ind), (ind, full), (full, diag)]:
        d, h, ce = kl(p, q), entropy(p), cross_entropy(p, q)
        assert d.method == ce.method == "closed-form"
        assert ce.value == pytest.approx(h.value + d.value, rel=1e-10)
        _within(kl(p, q, method="mc", n_samples=4000, random_state=1), d.value)


def test_method_exact_refuses_and_auto_falls_back_beyond_the_limit(monkeypatch):
    pe = _fit(_Plain(), _split("binary", 10, seed=13))
    monkeypatch.setattr(info, "MAX_CONFIGURATIONS", 2**9)
    assert entropy(pe, n_samples=200, random_state=0).method == "monte-carlo"
    with pytest.raises(CapabilityError, match=r"2\^10 configurations.*method='mc'"):
        entropy(pe, method="exact")
    g = _fit(GaussianMixture(2, random_state=0), _split("continuous", 2, seed=14))
    with pytest.raises(CapabilityError, match="density"):
        kl(g, g, method="exact")


# ----------------------------------------------------------------- bounds
def test_bound_directions_hold_against_the_true_pmf_of_a_dequantised_mixture():
    # A diagonal gmm on binary data samples x_d = clip(floor(μ + σ z), 0, 1): its true pmf
    # is Σ_k π_k ∏_d P_k(x_d) with P_k(x_d = 0) = Φ((1 − μ_kd) / σ_kd), while its
    # score_samples is only a lower bound on log of that pmf.
    d = 6
    g = _fit(GaussianMixture(2, covariance_type="diag", random_state=0), _split("binary", d, 15))
    p = _fit(Independent(), _split("binary", d, seed=16))
    configs = np.array(list(itertools.product((0, 1), repeat=d)))  # (64, D)
    zero = stats.norm.cdf((1 - g.means_) / np.sqrt(g.covariances_))  # (K, D)
    per_comp = np.where(configs[:, None, :] == 0, zero, 1 - zero).prod(axis=2)  # (64, K)
    log_g = np.log(per_comp @ g.weights_)  # (64,)
    log_p = p.score_samples(configs)
    true_kl_pg = float(np.sum(np.exp(log_p) * (log_p - log_g)))
    true_kl_gp = float(np.sum(np.exp(log_g) * (log_g - log_p)))
    true_h_g = float(-np.sum(np.exp(log_g) * log_g))

    upper = kl(p, g)
    assert (upper.method, upper.likelihood) == ("exact-enumeration", "upper bound")
    assert upper.value >= true_kl_pg
    assert cross_entropy(p, g).likelihood == "upper bound"
    lower = kl(g, p, n_samples=4000, random_state=0)
    assert (lower.method, lower.likelihood) == ("monte-carlo", "lower bound")
    assert lower.value <= true_kl_gp + 4 * lower.std_err
    h = entropy(g, n_samples=4000, random_state=0)
    assert h.likelihood == "upper bound" and h.value >= true_h_g - 4 * h.std_err
    assert kl(g, g, n_samples=100, random_state=0).likelihood == "estimate"
    with pytest.raises(CapabilityError, match="'bound'"):
        entropy(g, method="exact")


# ----------------------------------------------------------------- data, units
def test_cross_entropy_of_data_is_the_mean_nll():
    split = _split("categorical", 6, seed=17)
    q = _fit(Independent(), _split("categorical", 6, seed=18))
    for data in (split, split.x):
        ce = cross_entropy(data, q)
        nll = -q.score_samples(split.x)
        assert ce.value == pytest.approx(-q.score(split.x), rel=1e-14)
        assert ce.std_err == pytest.approx(nll.std(ddof=1) / math.sqrt(len(nll)), rel=1e-12)
        assert (ce.method, ce.likelihood, ce.space) == ("monte-carlo", "exact", "discrete")
    g = _fit(GaussianMixture(2, random_state=0), _split("binary", 4, seed=19))
    assert cross_entropy(_split("binary", 4, seed=20), g).likelihood == "upper bound"


def test_bits_are_nats_over_ln2():
    pe, qe = _fit(_Plain(), _split("binary", 6, seed=21)), _fit(_Plain(), _split("binary", 6, 22))
    for method in ("exact", "mc"):
        opts = {"method": method, "n_samples": 300, "random_state": 0}
        nats, bits = kl(pe, qe, **opts), kl(pe, qe, base="bits", **opts)
        assert bits.units == "bits" and nats.units == "nats"
        assert bits.value == pytest.approx(nats.value / math.log(2), rel=1e-12)
        assert bits.std_err == pytest.approx(nats.std_err / math.log(2), rel=1e-12)
    assert float(nats) == nats.value


def test_a_sampler_without_likelihood_can_be_p_of_a_cross_entropy_only():
    split = _split("binary", 5, seed=23)
    none, q = _fit(_NoLikelihood(), split), _fit(Independent(), split)
    ce = cross_entropy(none, q, n_samples=4000, random_state=0)
    # p is uniform on {0, 1}^5: H(p, q) = −Σ_d ½ (log q_d(0) + log q_d(1))
    _within(ce, float(-0.5 * np.log(q.probs_).sum()))
    for call in (
        lambda: entropy(none),
        lambda: kl(none, q),
        lambda: kl(q, none),
        lambda: cross_entropy(q, none),
    ):
        with pytest.raises(CapabilityError, match="no likelihood"):
            call()


def test_bad_inputs_give_one_clear_error():
    b6 = _fit(Independent(), _split("binary", 6, seed=24))
    b4 = _fit(Independent(), _split("binary", 4, seed=25))
    c6 = _fit(Independent(), _split("categorical", 6, seed=26))
    with pytest.raises(CapabilityError, match=r"binary \(6,\).*categorical\(5\) \(6,\)"):
        kl(b6, c6)
    with pytest.raises(CapabilityError, match="same space"):
        cross_entropy(b6, b4)
    # the same values declared continuous: a density is never compared with a pmf
    binary = _split("binary", 6, 27)
    as_points = Split(binary.x, None, DataSpec("continuous", (6,)))
    density = _fit(GaussianMixture(2, random_state=0), as_points)
    with pytest.raises(CapabilityError, match=r"same space|never mixed"):
        kl(b6, density)
    with pytest.raises(NotFittedError, match="not fitted"):
        entropy(Independent())
    with pytest.raises(NotFittedError, match="not fitted"):
        kl(b6, Independent())
    with pytest.raises(ParameterError, match="fitted ptheta model"):
        entropy(np.zeros((3, 6)))
    for bad in ({"base": "dits"}, {"method": "fast"}, {"n_samples": 1}, {"n_samples": 2.5}):
        with pytest.raises(ParameterError):
            entropy(b6, **bad)
    data = _split("binary", 6, seed=28).x.astype(float)
    data[0, 0] = np.nan
    with pytest.raises(DataError, match="NaN"):
        cross_entropy(data, b6)
    with pytest.raises(DataError, match="categorical"):
        cross_entropy(_split("categorical", 6, seed=29), b6)
    with pytest.raises(CapabilityError, match="sample average"):
        cross_entropy(data[1:], b6, method="exact")


# ----------------------------------------------------------------- every registered model
CASES = [(name, kind) for name, cls in REGISTRY.items() for kind in cls.data_kinds]


@pytest.mark.parametrize(("name", "kind"), CASES)
def test_every_registered_model(name, kind):
    cls = REGISTRY[name]
    split = _split(kind, 4, seed=30, n=200)
    if cls.needs_image:  # the same 4 variables viewed as 1×2×2 images
        image = (1, 2, 2)
        spec = DataSpec(split.spec.kind, image, split.spec.n_categories, image_shape=image)
        split = Split(split.x.reshape(-1, *image), split.y, spec)
    y = np.arange(len(split)) % 2 if cls.needs_labels else None
    model = _fit(ptheta.make(name, **cls.quick_params), split, y)
    if cls.likelihood == "none":
        with pytest.raises(CapabilityError, match="no likelihood"):
            entropy(model)
        return
    h = entropy(model, n_samples=2000, random_state=0)
    assert np.isfinite(h.value) and h.space == model.units_
    if h.method != "monte-carlo":
        mc = entropy(model, method="mc", n_samples=2000, random_state=0)
        _within(mc, h.value, k=4.5)
    assert kl(model, model, n_samples=200, random_state=0).value == 0.0


def test_zero_probability_terms():
    # alpha=0 gives level 2 probability 0 in p: 0 log 0 = 0 in entropies; a KL towards p
    # from a model that puts mass there is infinite, by every method
    rng = np.random.default_rng(31)
    spec = DataSpec("categorical", (4,), 3)
    seen, full = (
        Split(rng.integers(0, 2, (50, 4)), None, spec),
        Split(rng.integers(0, 3, (50, 4)), None, spec),
    )
    for cls in (Independent, _Plain):
        p, q = _fit(cls(alpha=0), seen), _fit(cls(alpha=0), full)
        assert np.isfinite(entropy(p).value) and np.isfinite(kl(p, q).value)
        assert kl(q, p).value == cross_entropy(q, p).value == math.inf
    assert entropy(p).value == pytest.approx(entropy(_fit(Independent(alpha=0), seen)).value)
    inf = kl(q, p, method="mc", n_samples=100, random_state=0)
    assert (inf.value, inf.std_err) == (math.inf, 0.0)
