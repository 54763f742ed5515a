"""Flow matching: the Gaussian paths' closed forms, the minibatch OT coupling against brute
force, the ODE likelihood of the closed-form field, and the fitted estimator (grid
integral, beats a Gaussian, guidance, paths, per-example scores, parameter errors)."""

from __future__ import annotations

import itertools
import math
import warnings

import numpy as np
import pytest
import torch
from scipy import stats

import ptheta
from ptheta.data import toy2d
from ptheta.data.spec import DataSpec, Split
from ptheta.errors import ParameterError
from ptheta.models import flow_matching
from ptheta.models.flow_matching import (
    FlowMatching,
    FlowMatchingField,
    GaussianPath,
    ot_coupling,
)
from ptheta.nn.ode import ODESolver

PATHS = [("ot", 0.0), ("ot", 0.2), ("vp", 0.0), ("vp", 0.2)]
F64 = torch.float64


def _fit(x, y=None, **params):
    base = {"hidden": 32, "epochs": 15, "lr": 1e-2, "ode_steps": 8, "dtype": "float64"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return FlowMatching(**{**base, **params}).fit(x, y)


# --------------------------------------------------------------------------- the paths
@pytest.mark.parametrize(("kind", "sigma_min"), PATHS)
def test_the_conditional_velocity_is_the_time_derivative_of_the_conditional_flow(kind, sigma_min):
    path = GaussianPath(kind, sigma_min)
    gen = torch.Generator().manual_seed(0)
    x0, x1 = torch.randn(2, 7, 3, generator=gen, dtype=F64)
    t = torch.linspace(0.0, 1.0, 7, dtype=F64).requires_grad_(True)  # both ends included
    xt, ut = path.conditional(x0, x1, t)
    # each example's x_t depends on its own t only: one gradient per coordinate
    dxdt = torch.stack(
        [torch.autograd.grad(xt[:, j].sum(), t, retain_graph=True)[0] for j in range(3)], 1
    )
    torch.testing.assert_close(ut, dxdt, rtol=1e-10, atol=1e-10)
    # noise at t = 0, N(x₁, σ_min²) at t = 1
    torch.testing.assert_close(xt[0], x0[0])
    torch.testing.assert_close(xt[-1], x1[-1] + sigma_min * x0[-1])


@pytest.mark.parametrize(("kind", "sigma_min"), PATHS)
def test_the_marginal_field_of_one_data_point_is_the_conditional_field(kind, sigma_min):
    path = GaussianPath(kind, sigma_min)
    gen = torch.Generator().manual_seed(1)
    x0 = torch.randn(50, 2, generator=gen, dtype=F64)
    x1 = torch.tensor([1.5, -0.5], dtype=F64).expand(50, 2)
    t = torch.rand(50, generator=gen, dtype=F64) * 0.98 + 0.01
    xt, ut = path.conditional(x0, x1, t)
    # data = one point: E[u_t | x_t] is u_t itself
    torch.testing.assert_close(path.gaussian_field(xt, t, x1, 0.0), ut, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize(("kind", "sigma_min"), PATHS)
def test_the_loss_target_regressed_on_x_t_is_the_gaussian_marginal_field(kind, sigma_min):
    # x₁ ~ N(m, s²): (x_t, u_t) are jointly Gaussian, so E[u_t | x_t] is the least-squares
    # line of the targets on x_t, which must be the closed-form marginal field
    path, m, s, n = GaussianPath(kind, sigma_min), 1.5, 0.5, 200_000
    gen = torch.Generator().manual_seed(2)
    for t in (0.1, 0.5, 0.9):
        x0 = torch.randn(n, generator=gen, dtype=F64)
        x1 = m + s * torch.randn(n, generator=gen, dtype=F64)
        xt, ut = path.conditional(x0, x1, torch.tensor(t, dtype=F64))
        slope, intercept = np.polyfit(xt.numpy(), ut.numpy(), 1)
        grid = torch.tensor([-1.0, 2.0], dtype=F64)
        field = path.gaussian_field(grid, torch.tensor(t, dtype=F64), m, s).numpy()
        np.testing.assert_allclose(intercept + slope * grid.numpy(), field, atol=0.02)


class _ClosedForm(FlowMatchingField):
    """The exact marginal field of N(mean, std² I) data in place of the network."""

    def __init__(self, mean: float, std: float, **kwargs) -> None:
        super().__init__((1,), hidden=4, **kwargs)
        self.mean, self.std = mean, std

    def velocity(self, z, t, y=None, guidance=0.0):
        t = torch.as_tensor(t, dtype=z.dtype)
        return self.prob_path.gaussian_field(z, t, self.mean, self.std)


@pytest.mark.parametrize(("kind", "sigma_min"), PATHS)
def test_the_ode_likelihood_of_the_marginal_field_is_the_gaussian_density(kind, sigma_min):
    # the flow of the Gaussian marginal field carries N(0, 1) at t = 0 to N(m, s² + σ_min²)
    m, s = 1.5, 0.5
    solver = ODESolver("rk4", steps=40)
    module = _ClosedForm(m, s, path=kind, sigma_min=sigma_min, solver=solver).double()
    x = torch.linspace(-1.0, 4.0, 11, dtype=F64)[:, None]
    expected = stats.norm(m, math.sqrt(s**2 + sigma_min**2)).logpdf(x[:, 0].numpy())
    np.testing.assert_allclose(module.log_prob(x).numpy(), expected, atol=1e-6)
    draws = module.sample(4000, generator=torch.Generator().manual_seed(4))[:, 0].numpy()
    assert stats.kstest(draws, stats.norm(m, math.sqrt(s**2 + sigma_min**2)).cdf).pvalue > 1e-3


def _minimal_loss(kind: str, sigma_min: float, m: float, s: float) -> float:
    """E_t E[Var(u_t | x_t)] for data N(m, s²): the CFM loss at the marginal field,
    ∫ Var u − Cov(u, x)²/Var x dt (a mean over a fine grid of t)."""
    t = torch.linspace(0.0, 1.0, 20_001, dtype=F64)[1:-1]
    a, b, da, db = GaussianPath(kind, sigma_min).coefficients(t)
    var_u, var_x, cov = da**2 * s**2 + db**2, a**2 * s**2 + b**2, a * da * s**2 + b * db
    return float((var_u - cov**2 / var_x).mean())


@pytest.mark.parametrize(("kind", "sigma_min"), PATHS)
def test_the_loss_of_the_marginal_field_is_the_conditional_variance_of_the_target(kind, sigma_min):
    m, s = 1.5, 0.5
    module = _ClosedForm(m, s, path=kind, sigma_min=sigma_min).double().train()
    torch.manual_seed(3)
    x = m + s * torch.randn(200_000, 1, dtype=F64)
    expected = _minimal_loss(kind, sigma_min, m, s)
    assert float(module.loss(x).mean()) == pytest.approx(expected, rel=0.02)
    # validation (eval mode): the same estimate from 8 fixed draws at stratified times
    module.eval()
    val = module.loss(x[:25_000])
    assert float(val.mean()) == pytest.approx(expected, rel=0.02)
    torch.testing.assert_close(module.loss(x[:25_000]), val, rtol=0, atol=0)


def test_the_untrained_flow_is_the_identity_and_its_density_the_standard_normal():
    module = FlowMatchingField((3,), hidden=8, solver=ODESolver("rk4", steps=4)).double()
    x = torch.randn(5, 3, dtype=F64)
    expected = stats.norm.logpdf(x.numpy()).sum(1)
    np.testing.assert_allclose(module.log_prob(x).numpy(), expected, atol=1e-12)
    assert torch.equal(module.velocity(x, torch.tensor(0.3)), torch.zeros_like(x))


# --------------------------------------------------------------------------- the coupling
def _total_cost(x0: np.ndarray, x1: np.ndarray) -> float:
    return float(((x0 - x1) ** 2).sum())


@pytest.mark.parametrize("n", [2, 3, 4, 5, 6])
def test_the_ot_coupling_minimises_the_total_squared_distance(n):
    gen = torch.Generator().manual_seed(n)
    for _ in range(3):
        x0, x1 = torch.randn(2, n, 3, generator=gen, dtype=F64)
        pi = ot_coupling(x0, x1)
        assert sorted(pi.tolist()) == list(range(n))
        a, b = x0.numpy(), x1.numpy()
        best = min(_total_cost(a[list(p)], b) for p in itertools.permutations(range(n)))
        assert _total_cost(a[pi.numpy()], b) == pytest.approx(best, rel=1e-12)


def _paired_inner(x0: np.ndarray, x1: np.ndarray) -> np.ndarray:
    """⟨x₀ⁱ − x₀ʲ, x₁ⁱ − x₁ʲ⟩ of every pair i < j."""
    i, j = np.triu_indices(len(x0), 1)
    return ((x0[i] - x0[j]) * (x1[i] - x1[j])).sum(1)


def test_ot_paired_straight_paths_never_meet_and_independent_ones_could_be_shortened():
    gen = torch.Generator().manual_seed(5)
    x0 = torch.randn(40, 2, generator=gen, dtype=F64)
    x1 = 0.5 * torch.randn(40, 2, generator=gen, dtype=F64) + torch.tensor([3.0, 0.0], dtype=F64)
    ot = x0[ot_coupling(x0, x1)].numpy()
    a, b = x0.numpy(), x1.numpy()
    # an optimal pairing admits no improving swap of two partners (⟨Δx₀, Δx₁⟩ ≥ 0), so
    # ‖x_tⁱ − x_tʲ‖² ≥ (1 − t)²‖Δx₀‖² + t²‖Δx₁‖² > 0: two particles never meet
    assert _paired_inner(ot, b).min() >= -1e-12
    t = np.linspace(0, 1, 101)[:, None, None]
    xt = (1 - t) * ot + t * b  # (T, N, 2)
    gaps = np.linalg.norm(xt[:, :, None] - xt[:, None], axis=-1)  # (T, N, N)
    assert gaps[:, ~np.eye(40, dtype=bool)].min() > 1e-3
    # the independent pairing has pairs whose swap shortens the total (many of them)
    bad = _paired_inner(a, b) < 0
    assert bad.sum() > 100
    i, j = np.triu_indices(40, 1)
    k, m = i[bad][0], j[bad][0]
    swapped = a.copy()
    swapped[[k, m]] = a[[m, k]]
    assert _total_cost(swapped, b) < _total_cost(a, b)


def _crossings(x0: np.ndarray, x1: np.ndarray) -> int:
    """How many pairs of segments x₀ⁱ → x₁ⁱ properly intersect (2-D)."""

    def side(p, q, r):  # sign of the turn p → q → r, (K,)
        return np.sign(
            (q[:, 0] - p[:, 0]) * (r[:, 1] - p[:, 1]) - (q[:, 1] - p[:, 1]) * (r[:, 0] - p[:, 0])
        )

    i, j = np.triu_indices(len(x0), 1)
    p, q, r, s = x0[i], x1[i], x0[j], x1[j]
    return int(((side(p, q, r) != side(p, q, s)) & (side(r, s, p) != side(r, s, q))).sum())


def test_ot_segments_cross_far_less_often_and_never_in_one_dimension():
    gen = torch.Generator().manual_seed(6)
    x0 = torch.randn(40, 2, generator=gen, dtype=F64)
    x1 = torch.randn(40, 2, generator=gen, dtype=F64)
    independent = _crossings(x0.numpy(), x1.numpy())
    ot = _crossings(x0[ot_coupling(x0, x1)].numpy(), x1.numpy())
    assert independent > 20 and ot < independent / 10
    # in one dimension the optimal pairing is sorted to sorted: paths keep their order
    z0, z1 = torch.randn(2, 30, 1, generator=gen, dtype=F64)
    paired = z0[ot_coupling(z0, z1)]
    order = torch.argsort(z1[:, 0])
    assert torch.all(paired[order, 0].diff() > 0)
    assert not torch.all(z0[order, 0].diff() > 0)  # the independent pairing crosses


def test_squared_cost_ot_may_keep_crossing_segments_traversed_at_different_times():
    # the optimal pairing of the squared cost crosses as sets, but the particles reach the
    # crossing (3, 0) at t = 3/4 and t = 1/2: the straight paths never meet
    x0 = torch.tensor([[0.0, 0.0], [1.0, 0.1]], dtype=F64)
    x1 = torch.tensor([[4.0, 0.0], [5.0, -0.1]], dtype=F64)
    assert ot_coupling(x0, x1).tolist() == [0, 1]
    assert _crossings(x0.numpy(), x1.numpy()) == 1


def test_the_training_loss_pairs_each_batch_optimally_only_with_the_ot_coupling(monkeypatch):
    seen = []

    def spy(x0, x1):
        pi = ot_coupling(x0, x1)
        seen.append((x0.numpy().copy(), x1.numpy().copy(), pi.numpy()))
        return pi

    monkeypatch.setattr(flow_matching, "ot_coupling", spy)
    x = torch.randn(5, 2, dtype=F64)
    FlowMatchingField((2,), hidden=4).double().loss(x)
    assert not seen
    FlowMatchingField((2,), hidden=4, coupling="ot").double().loss(x)
    ((a, b, pi),) = seen
    np.testing.assert_array_equal(b, x.numpy())  # the data, paired with re-ordered noise
    best = min(_total_cost(a[list(p)], b) for p in itertools.permutations(range(5)))
    assert _total_cost(a[pi], b) == pytest.approx(best)


def test_the_ot_coupling_learns_straighter_flows():
    # minibatch OT pairs cross less: the learned field is nearly constant along each path,
    # so one Euler step lands close to the accurate solution (Tong et al. 2024)
    x = toy2d.gaussians8(800, np.random.default_rng(0))
    errors = {}
    for coupling in ("independent", "ot"):
        module = _fit(x, coupling=coupling).module
        ends = {}
        for solver, steps in (("euler", 1), ("rk4", 32)):
            module.solver = ODESolver(solver, steps=steps)
            ends[solver] = module.path(500, None, torch.Generator().manual_seed(0))[-1]
        errors[coupling] = float((ends["euler"] - ends["rk4"]).pow(2).sum(1).mean())
    assert errors["ot"] < 0.2 and errors["ot"] < errors["independent"] / 10


# --------------------------------------------------------------------------- fitted models
@pytest.fixture(scope="module")
def moons():
    rng = np.random.default_rng(0)
    train, test = toy2d.moons(1200, rng), toy2d.moons(500, rng)
    return _fit(train, coupling="ot"), train, test


def test_a_fitted_density_integrates_to_one_and_beats_a_gaussian(moons):
    model, train, test = moons
    lo, hi = train.min(0) - 1.5, train.max(0) + 1.5
    gx, gy = np.linspace(lo[0], hi[0], 70), np.linspace(lo[1], hi[1], 70)
    grid = np.stack(np.meshgrid(gx, gy), -1).reshape(-1, 2)
    integral = np.exp(model.score_samples(grid)).sum() * (gx[1] - gx[0]) * (gy[1] - gy[0])
    assert integral == pytest.approx(1.0, abs=0.02)
    gaussian = stats.multivariate_normal(train.mean(0), np.cov(train.T))
    assert model.score(test) > gaussian.logpdf(test).mean() + 0.3
    assert model.likelihood_ == "exact"
    summary = model.nll_summary(test[:5])
    assert summary["ode_solver"] == "rk4" and summary["nfe"] == 4 * 8


def test_the_variance_preserving_path_with_rectified_end_fits_too(moons):
    _, train, test = moons
    model = _fit(train, path="vp", sigma_min=0.0)
    gaussian = stats.multivariate_normal(train.mean(0), np.cov(train.T))
    # (it learns more slowly than the straight "ot" path: a smaller margin at 15 epochs)
    assert model.score(test) > gaussian.logpdf(test).mean() + 0.15
    assert "path=vp, sigma_min=0" in repr(model.module)


def test_sample_paths_go_from_the_normal_to_the_samples(moons):
    model, _, _ = moons
    frames = model.sample_paths(400, n_frames=4, random_state=3)
    assert frames.shape == (4, 400, 2)
    z = (frames[0] - model.input_shift_) / model.input_scale_  # model units
    for j in range(2):
        assert stats.kstest(z[:, j], "norm").pvalue > 1e-3
    np.testing.assert_allclose(frames[-1], model.sample(400, random_state=3), atol=1e-9)
    assert model.capabilities().sample_paths == "ode"


def test_scores_do_not_depend_on_the_batch(moons):
    model, _, test = moons
    x = test[:6]
    batch = model.score_samples(x)
    alone = np.concatenate([model.score_samples(x[i : i + 1]) for i in range(6)])
    np.testing.assert_allclose(alone, batch, rtol=1e-7)
    np.testing.assert_allclose(model.score_samples(x[::-1])[::-1], batch, rtol=1e-7)


@pytest.mark.parametrize(
    ("kind", "params"),
    [("categorical", {}), ("continuous", {"divergence": "hutchinson", "n_probes": 3})],
)
def test_stochastic_scores_and_their_errors_do_not_depend_on_the_batch(kind, params):
    rng = np.random.default_rng(1)
    if kind == "categorical":
        split = Split(rng.integers(0, 3, (120, 3)), None, DataSpec("categorical", (3,), 3))
    else:
        split = Split(rng.normal(size=(120, 4)), None, DataSpec("continuous", (4,)))
    model = _fit(split, **{**FlowMatching.quick_params, "epochs": 2, **params})
    assert model.likelihood_ == "estimate"
    x = split.x[:5]
    score, err = model.score_samples(x, return_std=True)
    # Rademacher probes can agree on an example (then its error is 0), not on all of them
    assert np.all(np.isfinite(err)) and err.max() > 0
    alone = [model.score_samples(x[i : i + 1], return_std=True) for i in range(5)]
    np.testing.assert_allclose([a[0][0] for a in alone], score, rtol=1e-7)
    np.testing.assert_allclose([a[1][0] for a in alone], err, rtol=1e-6, atol=1e-12)
    if kind == "categorical":  # a dequantised density of levels: the bound sums to ≤ 1
        levels = np.array(list(itertools.product(range(3), repeat=3)))
        assert np.exp(model.score_samples(levels)).sum() < 1.0 + 0.05


def test_class_conditional_sampling_with_guidance():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 400)
    x = rng.normal(size=(400, 2)) * 0.3 + np.where(y[:, None] == 1, 2.0, -2.0)
    model = _fit(x, y, class_conditional=True, p_uncond=0.3, batch_size=32, epochs=15)
    assert (model.predict(x) == y).mean() > 0.95  # Bayes' rule on the ODE likelihoods
    for label, sign in ((0, -1), (1, 1)):
        plain = model.sample(100, y=np.full(100, label), random_state=0)
        assert np.all(sign * plain.mean(0) > 1.0)
    # the label was dropped in training: the null label's field samples both clusters
    free = model.module.sample(400, generator=torch.Generator().manual_seed(0)).numpy()
    free = free * model.input_scale_ + model.input_shift_  # model units → data
    assert np.median(np.abs(free[:, 0])) > 1.2 and 0.3 < np.mean(free[:, 0] > 0) < 0.7
    scores = model.score_samples(x[:5])
    model.module.guidance = 2.0  # sampling only: the likelihood stays the same
    guided = model.sample(100, y=np.full(100, 1), random_state=0)
    assert np.all(guided.mean(0) > 1.0)
    assert not np.allclose(guided, plain)  # the same noise, label and seed: w moves them
    np.testing.assert_array_equal(model.score_samples(x[:5]), scores)


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"sigma_min": 1.0}, "sigma_min"),
        ({"sigma_min": -0.1}, "sigma_min"),
        ({"path": "straight"}, "path"),
        ({"coupling": "sinkhorn"}, "coupling"),
        ({"guidance": 1.0}, "class_conditional"),
        ({"architecture": "unet"}, "image"),
    ],
)
def test_bad_parameters_are_one_clear_error(params, match):
    x = np.random.default_rng(0).normal(size=(40, 2))
    with pytest.raises(ParameterError, match=match):
        FlowMatching(**{**FlowMatching.quick_params, **params}).fit(x)
    with pytest.raises(ParameterError, match="sigma_min"):
        GaussianPath("ot", 1.0)


def test_the_explorer_draws_its_density():
    from ptheta.explorer import views

    assert "flow-matching" in views.surface_models()
    assert views.capabilities("flow-matching").likelihood == "exact"
    assert ptheta.make("flow-matching").capabilities().sample_paths == "ode"
    assert FlowMatching.family == ptheta.REGISTRY["realnvp"].family
