"""The shared base of the continuous-time families (ptheta/models/continuous.py): units and
the dequantisation Jacobian, keyed probes and draws, standard errors, paths."""

from __future__ import annotations

import itertools
import math
import warnings

import numpy as np
import pytest
import torch

from ptheta.data.spec import DataSpec, Split
from ptheta.errors import ParameterError
from ptheta.models.continuous import GAUSSIAN_DEQUANT_WIDTH, ContinuousTimeDensity
from ptheta.models.score_sde import ScoreSDE
from ptheta.nn.noise import example_keys, keyed_normal, keyed_uniform
from ptheta.nn.ode import ODESolver, standard_normal_log_prob


class Uniform(ContinuousTimeDensity):
    """A density exactly uniform on [−1, 1]^D: no motion, a uniform noise end."""

    def velocity(self, z, t, y=None, guidance=0.0):
        return 0.0 * z

    def prior_log_prob(self, z):
        inside = (z.abs() <= 1).reshape(len(z), -1).all(1)
        log_density = torch.full((len(z),), -self.n_dims * math.log(2.0), dtype=z.dtype)
        return log_density.masked_fill(~inside, -math.inf)


A = torch.tensor([[0.3, 0.8, -0.2], [-0.5, -0.4, 0.1], [0.2, 0.6, 0.5]], dtype=torch.float64)


class Linear(ContinuousTimeDensity):
    """dz/dt = A z from t = 0 to 1 with N(0, I) at t = 1: z(1) = e^A z, so
    log p(z) = log N(e^A z; 0, I) + tr A exactly."""

    def velocity(self, z, t, y=None, guidance=0.0):
        return z @ A.T.to(z.dtype)

    def prior_log_prob(self, z):
        return standard_normal_log_prob(z)

    def prior_sample(self, n, generator):
        return torch.randn(n, 3, generator=generator, dtype=self._dtype)


def closed_form(v):
    return standard_normal_log_prob(v @ torch.linalg.matrix_exp(A).T) + float(A.trace())


RK4 = ODESolver("rk4", steps=40)


def test_uniform_density_on_the_cube_gives_minus_d_log_k():
    k, d = 4, 3
    m = Uniform((d,), n_categories=k, n_dequant_samples=3, solver=ODESolver("rk4", steps=2))
    m = m.double()
    levels = torch.tensor(list(itertools.product(range(k), repeat=d)))
    lp, se = m.log_prob_with_std(levels)
    torch.testing.assert_close(lp, torch.full((k**d,), -d * math.log(k), dtype=torch.float64))
    assert torch.all(se == 0)  # every draw gives the same value
    assert float(lp.exp().sum()) == pytest.approx(1.0, abs=1e-12)


def test_continuous_exact_divergence_is_the_closed_form_with_zero_error():
    m = Linear((3,), solver=RK4).double()
    v = torch.randn(5, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    lp, se = m.log_prob_with_std(v)
    torch.testing.assert_close(lp, closed_form(v), rtol=0, atol=1e-6)
    assert torch.all(se == 0) and m.last_nfe == 4 * 40


def test_hutchinson_probes_average_to_the_closed_form_with_their_error():
    # with A constant, each probe's integral is εᵀAε: Rademacher ε gives a few values
    v = torch.randn(4, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    rk4 = ODESolver("rk4", steps=10)
    m = Linear((3,), solver=rk4, divergence="hutchinson", n_probes=60).double()
    lp, se = m.log_prob_with_std(v)
    assert torch.all(se > 0.005)
    assert torch.all((lp - closed_form(v)).abs() < 4 * se)
    one = Linear((3,), solver=rk4, divergence="hutchinson", n_probes=1).double()
    assert torch.all(one.log_prob_with_std(v)[1].isnan())  # one draw: no error estimate


def test_discrete_draws_are_keyed_and_carry_the_dequantisation_jacobian():
    k = 5
    x = torch.tensor([[0, 4, 2], [1, 1, 3], [4, 0, 0], [2, 2, 2]])
    m = Linear((3,), n_categories=k, n_dequant_samples=3, solver=RK4, seed=11).double()
    draws = m.log_prob_draws(x)  # (S, N)
    keys = example_keys(x, 11)
    for s in range(3):
        v = 2 * (x.double() + keyed_uniform(keys, s, (3,))) / k - 1  # in [−1, 1]
        expected = closed_form(v) + 3 * math.log(2 / k)  # log p(k + u) = log p(v) + D log 2/K
        torch.testing.assert_close(draws[s], expected, rtol=0, atol=1e-6)
    lp, se = m.log_prob_with_std(x)
    torch.testing.assert_close(lp, draws.mean(0))
    torch.testing.assert_close(se, draws.std(0) / math.sqrt(3))


@pytest.mark.parametrize("categories", [None, 5])
def test_probes_and_draws_depend_on_the_example_alone(categories):
    m = Linear(
        (3,),
        n_categories=categories,
        divergence="hutchinson",
        n_probes=3,
        n_dequant_samples=3,
        solver=RK4,
    ).double()
    if categories is None:
        x = torch.randn(5, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    else:
        x = torch.tensor([[0, 4, 2], [1, 1, 3], [4, 0, 0], [2, 2, 2], [3, 1, 0]])
    lp, se = m.log_prob_with_std(x)
    for i in range(len(x)):
        one, one_se = m.log_prob_with_std(x[i : i + 1])
        torch.testing.assert_close(one[0], lp[i], rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(one_se[0], se[i], rtol=1e-12, atol=1e-12)
    order = torch.tensor([3, 0, 4, 1, 2])
    torch.testing.assert_close(m.log_prob_with_std(x[order])[0], lp[order], rtol=1e-12, atol=1e-12)
    # each example's probes come from its own key: the probes' part of the draws (the
    # dequantisation draws are the same with the exact divergence) differs between rows
    hutchinson = m.log_prob_draws(x)
    m.divergence = "exact"
    noise = hutchinson - m.log_prob_draws(x)  # (S, N)
    assert noise.abs().max() > 0.01
    assert not all(torch.allclose(noise[:, i], noise[:, 0]) for i in range(1, len(x)))


def test_sampling_paths_start_at_the_noise_and_end_at_the_samples():
    m = Linear((3,), solver=RK4).double()
    gen = torch.Generator().manual_seed(0)
    frames = m.path(7, generator=gen, n_frames=5)
    assert frames.shape == (5, 7, 3)
    z0 = torch.randn(7, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    torch.testing.assert_close(frames[0], z0)
    # the flow runs backwards from the noise: x = e^{−A} z(1)
    torch.testing.assert_close(frames[-1], z0 @ torch.linalg.matrix_exp(-A).T, atol=1e-6, rtol=0)
    assert m.sample((2, 3), generator=gen).shape == (2, 3, 3)


# --------------------------------------------------------------------------- estimator level
def _fit(kind: str, **params) -> tuple[ScoreSDE, np.ndarray]:
    rng = np.random.default_rng(0)
    if kind == "continuous":
        x = rng.normal(size=(120, 2)) @ [[1.0, 0.6], [0.0, 0.5]] + [3.0, -1.0]
        split = Split(x, None, DataSpec("continuous", (2,)))
    else:
        x = np.clip(rng.integers(0, 3, size=(120, 1)) + rng.integers(0, 2, size=(120, 3)), 0, 3)
        split = Split(x, None, DataSpec("categorical", (3,), 4))
    model = ScoreSDE(**{**ScoreSDE.quick_params, **params})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model.fit(split), x


@pytest.mark.parametrize(
    ("kind", "params", "likelihood", "zero_error"),
    [
        ("continuous", {}, "exact", True),
        ("continuous", {"divergence": "hutchinson", "n_probes": 3}, "estimate", False),
        ("categorical", {}, "estimate", False),
        ("categorical", {"divergence": "hutchinson"}, "estimate", False),
    ],
)
def test_scores_are_per_example_and_report_their_kind(kind, params, likelihood, zero_error):
    model, x = _fit(kind, **params)
    assert model.likelihood_ == likelihood
    assert model.capabilities().dequantised == (kind != "continuous")
    scores, se = model.score_samples(x[:6], return_std=True)
    assert np.all(se == 0) == zero_error and np.all(np.isfinite(se))
    alone = np.concatenate([model.score_samples(x[i : i + 1]) for i in range(6)])
    np.testing.assert_allclose(alone, scores, rtol=1e-10, atol=1e-10)
    summary = model.nll_summary(x[:6])
    assert summary["likelihood"] == likelihood
    assert summary["divergence"] == params.get("divergence", "exact")
    assert summary["ode_solver"] == "rk4" and summary["nfe"] == 4 * summary["ode_steps"]
    assert ("n_dequant_samples" in summary) == (kind != "continuous")
    assert ("n_probes" in summary) == (kind == "continuous" and "n_probes" in params)


@pytest.mark.parametrize("kind", ["continuous", "categorical"])
def test_sample_paths_go_from_noise_to_the_samples(kind):
    model, x = _fit(kind)
    paths = model.sample_paths(9, n_frames=6, random_state=3)
    assert paths.shape == (6, 9, *x.shape[1:])
    samples = model.sample(9, random_state=3)
    if kind == "continuous":
        np.testing.assert_allclose(paths[-1], samples, rtol=1e-9, atol=1e-9)
        # the first frame is the prior N(0, I) in model units, mapped to data units
        z = (paths[0] - model.input_shift_) / model.input_scale_
        assert np.abs(z).max() < 6
    else:
        # dequantised levels k + u as reals: the last frame floors to the samples
        np.testing.assert_array_equal(np.clip(np.floor(paths[-1]), 0, 3), samples)
    with pytest.raises(ParameterError, match="n_frames"):
        model.sample_paths(3, n_frames=1)


# ----------------------------------------------------------------- Gaussian dequantisation
class Still(ContinuousTimeDensity):
    """No motion and a N(0, I) noise end: the model's density of z is N(z; 0, I)."""

    def velocity(self, z, t, y=None, guidance=0.0):
        return 0.0 * z

    def prior_log_prob(self, z):
        return standard_normal_log_prob(z)


def _centres(k: int) -> np.ndarray:
    return (2.0 * np.arange(k) + 1.0) / k - 1.0


def test_gaussian_draws_are_keyed_and_carry_the_decoder_normaliser():
    k = 5
    x = torch.tensor([[0, 4, 2], [1, 1, 3], [4, 0, 0], [2, 2, 2]])
    m = Linear(
        (3,), n_categories=k, n_dequant_samples=3, solver=RK4, seed=11, dequantization="gaussian"
    ).double()
    draws = m.log_prob_draws(x)  # (S, N)
    keys = example_keys(x, 11)
    sigma = GAUSSIAN_DEQUANT_WIDTH * 2 / k
    for s in range(3):
        v = torch.as_tensor(_centres(k))[x] + sigma * keyed_normal(keys, s, (3,))
        levels = torch.as_tensor(_centres(k))
        log_n = -0.5 * ((v[..., None] - levels) / sigma) ** 2 - math.log(
            sigma * math.sqrt(2 * math.pi)
        )
        expected = closed_form(v) - torch.logsumexp(log_n, -1).sum(1)
        torch.testing.assert_close(draws[s], expected, rtol=0, atol=1e-6)


def test_the_gaussian_estimate_averages_to_a_bound_below_the_exact_probability():
    """One binary variable, p(z) = N(0, 1): the decoder P(k | z) ∝ N(z; c_k, σ²) makes
    P(k) = ∫ N(z) P(k | z) dz (summing to 1), the bound E_q[log N(z) − log Σ_j N(z; c_j,
    σ²)] is below log P(k), and the keyed draws average to it within their error."""
    from scipy import integrate, stats
    from scipy.special import logsumexp

    k, sigma = 2, GAUSSIAN_DEQUANT_WIDTH * 2 / 2
    c = _centres(k)

    def log_mix(z):  # log Σ_j N(z; c_j, σ²)
        return logsumexp([stats.norm.logpdf(z, centre, sigma) for centre in c])

    def joint(z, level):  # N(z; 0, 1) P(level | z)
        return stats.norm.pdf(z) * np.exp(stats.norm.logpdf(z, c[level], sigma) - log_mix(z))

    def term(z, level):  # q(z | level) (log N(z; 0, 1) − log Σ_j N(z; c_j, σ²))
        return stats.norm.pdf(z, c[level], sigma) * (stats.norm.logpdf(z) - log_mix(z))

    exact = [integrate.quad(joint, -9, 9, args=(j,), points=[0.0])[0] for j in range(k)]
    assert sum(exact) == pytest.approx(1.0, abs=1e-9)
    m = Still((1,), n_categories=k, n_dequant_samples=4000, solver=ODESolver("euler", steps=1))
    m = m.double()
    m.dequantization = "gaussian"
    lp, se = m.log_prob_with_std(torch.tensor([[0], [1]]))
    for level in range(k):
        lo, hi = c[level] - 12 * sigma, c[level] + 12 * sigma
        bound = integrate.quad(term, lo, hi, args=(level,), points=[c[level]])[0]
        assert bound < math.log(exact[level])
        assert abs(float(lp[level]) - bound) < 4 * float(se[level])
        assert 0 < float(se[level]) < 0.05


def test_the_decoder_draws_each_level_with_its_posterior_probability():
    k = 3
    m = Still((4,), n_categories=k, dequantization="gaussian").double()
    sigma, c = GAUSSIAN_DEQUANT_WIDTH * 2 / k, _centres(k)
    z = torch.tensor([c[0], (c[0] + c[1]) / 2, c[1] + 0.6 * sigma, c[2] + 3 * sigma])
    n = 20_000
    levels = m.from_unit(z.expand(n, 4), torch.Generator().manual_seed(0))
    assert levels.dtype == torch.long and levels.min() >= 0 and levels.max() < k
    log_n = -0.5 * ((z[:, None] - torch.as_tensor(c)) / sigma) ** 2
    expected = torch.softmax(log_n, -1)  # (4, K)
    for j in range(k):
        freq = (levels == j).double().mean(0)
        tol = 5 * torch.sqrt(expected[:, j] * (1 - expected[:, j]) / n) + 1e-9
        assert torch.all((freq - expected[:, j]).abs() <= tol), (j, freq, expected[:, j])
    uniform = Still((4,), n_categories=k).double()  # uniform cells: the cell z falls in
    assert uniform.from_unit(z[None]).tolist() == [[0, 1, 1, 2]]


def test_auto_dequantisation_is_gaussian_on_binary_data_only_and_is_kept():
    from ptheta.models.flow_matching import FlowMatching

    rng = np.random.default_rng(0)
    quick = {**FlowMatching.quick_params, "epochs": 1}
    binary = Split(rng.integers(0, 2, (60, 3)), None, DataSpec("binary", (3,)))
    four = Split(rng.integers(0, 4, (60, 3)), None, DataSpec("categorical", (3,), 4))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fitted = {
            "binary": FlowMatching(**quick).fit(binary),
            "four": FlowMatching(**quick).fit(four),
            "real": FlowMatching(**quick).fit(rng.normal(size=(60, 2))),
            "chosen": FlowMatching(**quick, dequantization="uniform").fit(binary),
            "sde": ScoreSDE(**{**ScoreSDE.quick_params, "epochs": 1}).fit(binary),
        }
    assert {name: m.dequantization_ for name, m in fitted.items()} == {
        "binary": "gaussian",
        "four": "uniform",
        "real": "none",
        "chosen": "uniform",
        "sde": "gaussian",
    }
    assert fitted["binary"].nll_summary(binary.x[:4])["dequantization"] == "gaussian"
    with pytest.raises(ParameterError, match="dequantization"):
        FlowMatching(dequantization="variational").fit(binary)


def test_a_run_saved_before_the_choice_reloads_uniform(tmp_path):
    from ptheta.models.flow_matching import FlowMatching
    from ptheta.runs.store import load_run, save_run

    rng = np.random.default_rng(0)
    binary = Split(rng.integers(0, 2, (60, 3)), None, DataSpec("binary", (3,)))
    quick = {**FlowMatching.quick_params, "epochs": 1, "dequantization": "uniform"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        old = FlowMatching(**quick).fit(binary)
    old.set_params(dequantization="auto")  # the run's parameters know nothing of it
    del old.dequantization_  # nor its fitted attributes
    save_run(old, tmp_path)
    loaded = load_run(tmp_path)
    assert loaded.dequantization == "auto" and loaded.module.dequantization == "uniform"
    np.testing.assert_array_equal(loaded.score_samples(binary.x), old.score_samples(binary.x))


def test_training_draws_gaussian_noise_around_the_centres():
    """The training data of a Gaussian-dequantised model are c_k + σ ε (both signs about
    each centre, spread σ), those of a uniform one k + u inside each cell."""
    k = 2
    x = torch.tensor([[0, 1]]).expand(4000, 2)
    gaussian = Still((2,), n_categories=k, dequantization="gaussian").double()
    v = gaussian.to_unit(x, gaussian.dequantization_noise((4000, 2)))
    offsets = v - torch.as_tensor(_centres(k))[x]
    sigma = GAUSSIAN_DEQUANT_WIDTH * 2 / k
    assert abs(float(offsets.mean())) < 0.01 and float(offsets.std()) == pytest.approx(
        sigma, rel=0.05
    )
    assert float((offsets < 0).double().mean()) == pytest.approx(0.5, abs=0.03)
    uniform = Still((2,), n_categories=k).double()
    u = uniform.to_unit(x, uniform.dequantization_noise((4000, 2)))
    assert torch.all(
        (u >= torch.as_tensor(_centres(k))[x] - 0.5) & (u < torch.as_tensor(_centres(k))[x] + 0.5)
    )


def test_the_score_field_of_binary_data_is_read_at_the_centres(monkeypatch):
    from ptheta.models.score_sde import ScoreSDEDensity

    rng = np.random.default_rng(0)
    binary = Split(rng.integers(0, 2, (60, 3)), None, DataSpec("binary", (3,)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = ScoreSDE(**{**ScoreSDE.quick_params, "epochs": 1}).fit(binary)
    seen = []
    score = ScoreSDEDensity.score

    def spy(self, z, *args, **kwargs):
        seen.append(z.detach().clone())
        return score(self, z, *args, **kwargs)

    monkeypatch.setattr(ScoreSDEDensity, "score", spy)
    model.score_field(binary.x[:5])
    np.testing.assert_allclose(seen[0].numpy(), _centres(2)[binary.x[:5]], atol=1e-12)


@pytest.mark.parametrize("family", ["flow-matching", "score-sde"])
def test_a_fitted_gaussian_bound_sums_to_at_most_one_over_every_configuration(family):
    import ptheta

    probs = np.array([0.25, 0.05, 0.10, 0.05, 0.05, 0.10, 0.05, 0.35])
    configs = np.array(list(itertools.product(range(2), repeat=3)))
    x = configs[np.random.default_rng(0).choice(8, size=400, p=probs)]
    cls = ptheta.models.REGISTRY[family]
    params = {**cls.quick_params, "epochs": 4, "n_dequant_samples": 8}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = ptheta.make(family, **params).fit(Split(x, None, DataSpec("binary", (3,))))
    assert model.dequantization_ == "gaussian" and model.likelihood_ == "estimate"
    scores, se = model.score_samples(configs, return_std=True)
    mass = np.exp(scores)
    assert mass.sum() <= 1.0 + 3 * np.sqrt(((mass * se) ** 2).sum())
    samples = model.sample(50, random_state=0)
    assert samples.shape == (50, 3) and set(np.unique(samples)) <= {0, 1}
