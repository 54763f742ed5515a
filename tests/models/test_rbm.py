"""RBM: exact and AIS log Z, free-energy and CD gradients, Gibbs sampler, persistent chains."""

from __future__ import annotations

import contextlib
import itertools

import numpy as np
import pytest
import torch
from scipy import stats

from ptheta.errors import DataError, ParameterError
from ptheta.models.rbm import RBM, RBMNetwork
from ptheta.train.trainer import TrainConfig, Trainer


def _rbm(n_visible: int, n_hidden: int, seed: int = 0, std: float = 1.0, **kw) -> RBMNetwork:
    torch.manual_seed(seed)
    net = RBMNetwork(n_visible, n_hidden, **kw).double()
    with torch.no_grad():
        for p in (net.W, net.b, net.c):
            p.normal_(0.0, std)
    return net


def _all(n: int) -> torch.Tensor:
    return torch.tensor(list(itertools.product([0, 1], repeat=n)), dtype=torch.float64)


def test_exact_log_z_over_either_layer_equals_brute_force_over_both():
    net = _rbm(5, 3)
    v, h = _all(5), _all(3)
    # E(v, h) = −b·v − c·h − hᵀ W v, summed over all 2^(5+3) joint states
    neg_energy = (v @ net.b)[:, None] + (h @ net.c)[None, :] + v @ net.W.T @ h.T
    brute = torch.logsumexp(neg_energy.flatten(), 0).detach()
    for layer in ("visible", "hidden", "auto"):
        assert float(net.exact_log_z(layer).detach()) == pytest.approx(float(brute), abs=1e-10)
    wide = _rbm(7, 12, seed=1)  # enumerating hidden (4096) or visible (128) states agrees
    with torch.no_grad():
        assert float(wide.exact_log_z("hidden")) == pytest.approx(
            float(wide.exact_log_z("visible")), abs=1e-9
        )


def test_probabilities_sum_to_one_over_every_visible_configuration():
    net = _rbm(6, 4, seed=2)
    with torch.no_grad():
        assert float(net.log_prob(_all(6)).exp().sum()) == pytest.approx(1.0, abs=1e-12)


def test_ais_log_z_is_within_0_05_nats_of_exact():
    net = _rbm(10, 6, seed=3)
    exact = float(net.exact_log_z())
    log_z, std_err = net.ais_log_z(100, 1000, torch.Generator().manual_seed(0))
    assert abs(float(log_z) - exact) < 0.05
    assert 0 < float(std_err) < 0.05  # the reported error is small and not zero


def test_ais_standard_error_matches_the_spread_of_repeated_runs():
    net = _rbm(10, 6, seed=3)
    runs = [net.ais_log_z(100, 20, torch.Generator().manual_seed(s)) for s in range(60)]
    log_z = np.array([float(value) for value, _ in runs])
    std_err = np.array([float(se) for _, se in runs])
    # the delta-method error of one run is the spread of log Ẑ over independent runs
    assert 0.7 < std_err.mean() / log_z.std(ddof=1) < 1.4


def test_free_energy_gradient_is_the_closed_form():
    net = _rbm(6, 4, seed=4)
    v = torch.bernoulli(torch.full((5, 6), 0.5, dtype=torch.float64))
    net.free_energy(v).sum().backward()
    p_h = torch.sigmoid(v @ net.W.T.detach() + net.c.detach())  # (5, H)
    # ∂F/∂W = −p(h|v) vᵀ, ∂F/∂b = −v, ∂F/∂c = −p(h|v), summed over examples
    torch.testing.assert_close(net.W.grad, -(p_h.T @ v))
    torch.testing.assert_close(net.b.grad, -v.sum(0))
    torch.testing.assert_close(net.c.grad, -p_h.sum(0))


def test_cd_surrogate_gradient_is_data_minus_model_statistics():
    net = _rbm(6, 4, seed=5, method="pcd", n_chains=7).train()
    ref = _rbm(6, 4, seed=5, method="pcd", n_chains=7)
    v = torch.bernoulli(torch.full((9, 6), 0.5, dtype=torch.float64))
    torch.manual_seed(11)
    net.loss(v).mean().backward()
    torch.manual_seed(11)  # the same negatives: k Gibbs sweeps of the persistent chains
    neg = ref.gibbs(ref.chains, 1)
    torch.testing.assert_close(net.chains, neg)  # the chains advanced in place
    W, c = ref.W.detach(), ref.c.detach()
    h_data, h_neg = torch.sigmoid(v @ W.T + c), torch.sigmoid(neg @ W.T + c)
    vh = h_data.T @ v / len(v) - h_neg.T @ neg / len(neg)  # ⟨v h⟩_data − ⟨v h⟩_model
    torch.testing.assert_close(-net.W.grad, vh)
    torch.testing.assert_close(-net.b.grad, v.mean(0) - neg.mean(0))
    torch.testing.assert_close(-net.c.grad, h_data.mean(0) - h_neg.mean(0))
    assert torch.isnan(net.log_z)  # the cached log Z was dropped: weights will change


def test_gibbs_sampler_histogram_matches_exact_probabilities():
    net = _rbm(4, 3, seed=6, burn_in=50, sample_chains=500, thin=3).eval()
    probs = net.log_prob(_all(4)).exp().detach().numpy()
    n = 6000
    x = net.sample(n, generator=torch.Generator().manual_seed(0)).numpy()
    assert x.shape == (n, 4) and set(np.unique(x)) <= {0, 1}
    counts = np.bincount(x @ (2 ** np.arange(4)[::-1]), minlength=16)
    _, p_value = stats.chisquare(counts, probs * n)
    assert p_value > 1e-3
    again = net.sample(n, generator=torch.Generator().manual_seed(0)).numpy()
    np.testing.assert_array_equal(x, again)


def _data(n: int = 80) -> np.ndarray:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, size=n)
    return (rng.random((n, 6)) < np.where(y[:, None] == 1, 0.85, 0.15)).astype(np.int64)


def test_pcd_chains_are_a_buffer_and_resume_exactly(tmp_path):
    x = torch.as_tensor(_data(), dtype=torch.float64)
    config = TrainConfig(epochs=3, batch_size=16, lr=0.05, device="cpu", patience=None, seed=1)

    def fresh() -> RBMNetwork:
        torch.manual_seed(0)
        return RBMNetwork(6, 4, method="pcd", n_chains=10).double()

    reference = fresh()
    start = reference.chains.clone()
    Trainer(config).fit(reference, (x,))
    assert "chains" in reference.state_dict()
    assert not torch.equal(reference.chains, start)  # the chains moved during training

    def interrupt(step: int, loss: float) -> None:
        if step == 7:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        Trainer(config).fit(fresh(), (x,), run_dir=tmp_path, callback=interrupt)
    resumed = RBMNetwork(6, 4, method="pcd", n_chains=10).double()  # other weights and chains
    Trainer(config).fit(resumed, (x,), run_dir=tmp_path, resume=True)
    ref, res = reference.state_dict(), resumed.state_dict()
    assert all(torch.equal(ref[k], res[k]) for k in ("W", "b", "c", "chains"))


def test_estimator_exact_and_ais_log_z_agree_and_survive_save_load():
    x = _data()
    model = RBM(4, epochs=3, batch_size=16, ais_runs=50, ais_betas=300, burn_in=20,
                dtype="float64", device="cpu").fit(x)  # fmt: skip
    assert model.likelihood_ == "exact" and model.log_z_method_ == "exact"
    log_z, std_err, method = model.estimate_log_z("ais")
    assert method == "ais" and abs(log_z - model.log_z_) < 0.05 and std_err > 0
    configs = _all(6).long().numpy()
    assert np.exp(model.score_samples(configs)).sum() == pytest.approx(1.0, abs=1e-10)
    np.testing.assert_allclose(
        model.score_samples(x), -model.free_energy(x) - model.log_z_, rtol=1e-12
    )
    assert model.embed(x).shape == (80, 4)
    assert np.all((model.embed(x) > 0) & (model.embed(x) < 1))
    arrays, meta = model.get_state()
    loaded = RBM(4, **{k: v for k, v in model.get_params().items() if k != "n_hidden"})
    loaded.set_state(arrays, meta)
    assert loaded.log_z_ == model.log_z_ and loaded.likelihood_ == "exact"
    np.testing.assert_array_equal(loaded.score_samples(x), model.score_samples(x))


def test_non_binary_data_and_bad_settings_are_clear_errors():
    x = _data()
    with pytest.raises(DataError, match="binarise"):
        RBM(device="cpu").fit(x * 2)  # categorical levels 0, 2
    with pytest.raises(DataError, match="binarise"):
        RBM(device="cpu").fit(x + 0.5)
    with pytest.raises(ParameterError, match="sample_init"):
        RBM(method="cd", sample_init="persistent", epochs=1, device="cpu").fit(x)
    with pytest.raises(ParameterError, match="ais"):
        RBMNetwork(30, 25).exact_log_z()


# --------------------------------------------------------------------------- solver="sgd"
def test_sgd_step_is_minus_lr_times_the_autograd_gradient_of_the_cd_surrogate():
    from ptheta.models.rbm import sgd_step

    net = _rbm(6, 3, seed=1).double()
    rng = np.random.default_rng(0)
    v_pos = rng.integers(0, 2, size=(7, 6)).astype(np.float64)
    v_neg = rng.integers(0, 2, size=(5, 6)).astype(np.float64)
    surrogate = (
        net.free_energy(torch.from_numpy(v_pos)).mean()
        - net.free_energy(torch.from_numpy(v_neg)).mean()
    )
    gw, gb, gc = torch.autograd.grad(surrogate, [net.W, net.b, net.c])
    w, b, c = (p.detach().numpy().copy() for p in (net.W, net.b, net.c))
    lr, decay = 0.3, 0.01
    sgd_step(w, b, c, v_pos, v_neg, lr, decay)
    W0 = net.W.detach().numpy()
    np.testing.assert_allclose(w, W0 - lr * (gw.numpy() + decay * W0), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(b, net.b.detach().numpy() - lr * gb.numpy(), atol=1e-14)
    np.testing.assert_allclose(c, net.c.detach().numpy() - lr * gc.numpy(), atol=1e-14)


def test_sgd_solver_learns_and_is_deterministic():
    rng = np.random.default_rng(0)
    x = (rng.random((400, 6)) < [0.5, 0.5, 0.1, 0.1, 0.5, 0.5]).astype(int)
    x[:, 1] = x[:, 0]  # a dependence the base rates miss: worth log 2 = 0.69 nats
    params = dict(n_hidden=3, solver="sgd", lr=0.1, epochs=60, batch_size=10, n_chains=10)
    params.update(dtype="float64", device="cpu", validation_fraction=0.0)
    m = RBM(**params).fit(x)
    again = RBM(**params).fit(x)
    np.testing.assert_array_equal(m.score_samples(x), again.score_samples(x))
    assert m.log_z_method_ == "exact" and len(m.history_) == 60
    start = RBM(**{**params, "epochs": 1, "lr": 1e-9}).fit(x)  # practically the initial RBM
    assert m.score(x) > start.score(x) + 0.4  # the copy of x0 in x1 is learned


# --------------------------------------------------------------------------- max_time and AIS
@pytest.mark.parametrize(
    ("max_time", "ais_runs", "expected_runs"),
    [
        (50.0, 100, 40),  # a share of 5 s
        (1000.0, 100, 100),  # every run fits
        (1.0, 100, 8),  # not even 8 fit: 8, and a warning
        (1.0, 8, 8),  # ais_runs at the floor: nothing to choose
        (50.0, 20_000, 40),  # timed at 8 and 32 runs, whatever ais_runs is
        (None, 100, 100),  # no budget: ais_runs, nothing timed
    ],
)
def test_under_max_time_the_final_ais_runs_as_many_runs_as_fit_in_its_share(
    monkeypatch, max_time, ais_runs, expected_runs
):
    """A fake clock: a temperature of AIS costs c0 + c1 · runs seconds. The fit keeps every
    temperature, runs as many of ais_runs as fit in AIS_SHARE of max_time (at least 8), and
    gives training max_time less what that AIS takes."""
    import types

    import ptheta.models.rbm as rbm

    c0, c1, betas = 1e-3, 1e-4, 999
    clock, timed = [0.0], []
    real_ais = RBMNetwork.ais_log_z

    def timed_ais(self, n_runs, n_betas, generator=None, progress=None):
        clock[0] += (c0 + c1 * n_runs) * (n_betas + 1)
        timed.append(n_runs) if n_betas == rbm._PILOT_BETAS else None
        return real_ais(self, n_runs, min(n_betas, 5), generator)  # the value is not checked

    monkeypatch.setattr(rbm, "time", types.SimpleNamespace(perf_counter=lambda: clock[0]))
    monkeypatch.setattr(RBMNetwork, "ais_log_z", timed_ais)
    budgets = []
    real_config = RBM.train_config
    monkeypatch.setattr(
        RBM, "train_config", lambda m: budgets.append(real_config(m)) or budgets[-1]
    )
    rng = np.random.default_rng(0)
    x = (rng.random((40, 24)) < 0.3).astype(int)
    params = dict(n_hidden=21, epochs=1, ais_runs=ais_runs, ais_betas=betas, max_time=max_time)
    warns = max_time == 1.0
    with (
        pytest.warns(UserWarning, match="more than 10% of max_time")
        if warns
        else (contextlib.nullcontext())
    ):
        model = RBM(**params, batch_size=20, device="cpu").fit(x)
    runs = model.log_z_runs_
    assert model.log_z_method_ == "ais" and expected_runs - 1 <= runs <= expected_runs
    assert max(timed, default=0) <= 32  # short timed runs only
    if max_time is None:
        assert not timed and budgets[0].max_time is None
        return
    seconds = (betas + 1) * (c0 + c1 * runs)
    assert budgets[0].max_time == pytest.approx(max_time - min(seconds, 0.1 * max_time))
    assert model.train_config().max_time == max_time  # the reserve is for the fit only


def test_the_ais_progress_bar_counts_every_weight_update():
    net = _rbm(30, 25, std=0.05)
    steps = []
    net.ais_log_z(3, 250, torch.Generator().manual_seed(0), progress=steps.append)
    assert steps == [100, 100, 51]  # 251 importance-weight updates
    steps.clear()
    net.ais_log_z(3, 40, torch.Generator().manual_seed(0), progress=steps.append)
    assert steps == [41]


def test_defaults_take_batches_of_32_for_200_epochs_without_early_stopping():
    config = RBM().train_config()
    assert (config.batch_size, config.epochs, config.patience) == (32, 200, None)
    assert RBM(max_time=60).train_config().epochs is None  # the budget ends training
    assert RBM(batch_size=128, epochs=5).train_config().batch_size == 128  # still settable
