"""The discretised mixture of logistics: a pmf over the K levels at any parameters, equal to
the logistic CDF differences it is defined by, sampled faithfully, with finite gradients."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import special, stats

import ptheta.nn.decoders as decoders
from ptheta.errors import ParameterError
from ptheta.nn.decoders import (
    DiscretisedLogisticMixtureOutput,
    DiscretisedLogisticOutput,
    make_output,
)


def _params(n_mix: int, n: int, seed: int, *, extreme: bool = False) -> torch.Tensor:
    """(n, 3M) float64: random mixtures; ``extreme``: weights, locations and log-scales far
    outside the usual range (locations ±60, log-scales ±20 beyond the clamps, logits ±80)."""
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, n_mix, generator=g, dtype=torch.float64) * 2
    loc = torch.rand(n, n_mix, generator=g, dtype=torch.float64) * 3 - 1.5
    log_scale = torch.rand(n, n_mix, generator=g, dtype=torch.float64) * 6 - 6
    if extreme:
        logits = logits.sign() * 80
        loc = torch.tensor([-60.0, -1.0, 1.0, 60.0, 0.999], dtype=torch.float64).repeat(n, 3)
        log_scale = torch.tensor([-20.0, -7.0, 7.0, 20.0, -6.9], dtype=torch.float64)
        log_scale = log_scale.repeat(n, 3)[:, torch.randperm(15, generator=g)]
        loc, log_scale = loc[:, :n_mix], log_scale[:, :n_mix]
    return torch.cat([logits, loc, log_scale], dim=1)


def _table(out, params: torch.Tensor) -> torch.Tensor:
    """log P(x = k) for every level: (n, 3M) → (n, K)."""
    levels = torch.arange(out.n_categories)
    return out.log_prob(levels, params[:, None, :])


@pytest.mark.parametrize("k", [2, 17, 256])
@pytest.mark.parametrize("extreme", [False, True], ids=["random", "extreme"])
def test_probabilities_sum_to_one_over_all_levels(k, extreme):
    out = DiscretisedLogisticMixtureOutput(k, n_mix=5)
    table = _table(out, _params(5, 40, seed=k, extreme=extreme))  # (40, K)
    assert torch.isfinite(table).all() and (table <= 0).all()
    np.testing.assert_allclose(table.exp().sum(1).numpy(), 1.0, rtol=0, atol=1e-12)
    # float32 (training): normalised to rounding
    table32 = _table(out, _params(5, 40, seed=k, extreme=extreme).float())
    assert torch.isfinite(table32).all()
    np.testing.assert_allclose(table32.exp().sum(1).numpy(), 1.0, rtol=0, atol=1e-5)


@pytest.mark.parametrize("k", [2, 6, 256])
def test_probabilities_are_the_logistic_cdf_differences_over_the_bins(k):
    # the definition, computed independently with scipy in float64: bins of width 2/(K−1)
    # centred on 2k/(K−1) − 1, the end bins extended to ±∞
    n_mix = 3
    out = DiscretisedLogisticMixtureOutput(k, n_mix)
    params = _params(n_mix, 8, seed=1)
    logits, loc, log_scale = params.numpy().reshape(8, 3, n_mix).transpose(1, 0, 2)
    weights = special.softmax(logits, axis=1)  # (8, M)
    edges = np.linspace(-1, 1, k) + 1 / (k - 1)  # upper edges
    edges[-1] = np.inf
    cdf = stats.logistic.cdf(edges[None, :, None], loc[:, None], np.exp(log_scale)[:, None])
    cdf = np.concatenate([np.zeros((8, 1, n_mix)), cdf], axis=1)  # (8, K + 1, M)
    expected = (np.diff(cdf, axis=1) * weights[:, None]).sum(-1)  # (8, K)
    np.testing.assert_allclose(_table(out, params).exp().numpy(), expected, rtol=1e-9, atol=1e-14)


def test_one_component_is_the_single_discretised_logistic_in_level_units():
    # two implementations of one distribution: location μ levels ↔ 2μ/(K−1) − 1 on [−1, 1]
    k = 17
    single, mixture = DiscretisedLogisticOutput(k), DiscretisedLogisticMixtureOutput(k, 1)
    g = torch.Generator().manual_seed(0)
    mu = torch.rand(30, generator=g, dtype=torch.float64) * 24 - 4  # levels, also outside
    log_s = torch.rand(30, generator=g, dtype=torch.float64) * 6 - 4
    level_params = torch.stack([mu, log_s], 1)
    mix_params = torch.stack(
        [torch.zeros(30, dtype=torch.float64), 2 * mu / (k - 1) - 1, log_s + np.log(2 / (k - 1))],
        1,
    )
    levels = torch.arange(k)
    np.testing.assert_allclose(
        mixture.log_prob(levels, mix_params[:, None]).numpy(),
        single.log_prob(levels, level_params[:, None]).numpy(),
        rtol=0,
        atol=1e-10,
    )


@pytest.mark.parametrize("k", [17, 256])
def test_samples_follow_the_probabilities(k):
    out = DiscretisedLogisticMixtureOutput(k, n_mix=3)
    params = _params(3, 1, seed=5)  # components of scale ≥ e^-6: mass over several levels
    probs = _table(out, params)[0].exp().numpy()
    n = 40_000
    draws = out.sample(params.expand(n, -1), torch.Generator().manual_seed(1))
    assert draws.dtype == torch.long and draws.shape == (n,)
    counts = np.bincount(draws.numpy(), minlength=k)
    assert len(counts) == k  # no level outside 0..K−1
    keep = probs * n >= 5  # pool the rare levels, as the chi-square approximation needs
    obs = np.append(counts[keep], counts[~keep].sum())
    exp = np.append(probs[keep], probs[~keep].sum()) * n
    _, p_value = stats.chisquare(obs[exp > 0], exp[exp > 0] * obs.sum() / exp[exp > 0].sum())
    assert p_value > 1e-4


def test_sampling_is_reproducible_and_reaches_both_ends():
    out = DiscretisedLogisticMixtureOutput(256, n_mix=2)
    params = _params(2, 200, seed=3, extreme=True)
    a = out.sample(params, torch.Generator().manual_seed(3))
    b = out.sample(params, torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and a.min() >= 0 and a.max() <= 255
    assert {0, 255} <= set(a.tolist())  # components far below −1 and above 1


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_gradients_are_finite_at_extreme_parameters(dtype):
    out = DiscretisedLogisticMixtureOutput(256, n_mix=5)
    params = _params(5, 50, seed=2, extreme=True).to(dtype).requires_grad_()
    x = torch.randint(0, 256, (50,), generator=torch.Generator().manual_seed(0))
    x[:5], x[5:10] = 0, 255  # the end bins too
    logp = out.log_prob(x, params)
    assert torch.isfinite(logp).all()
    (grad,) = torch.autograd.grad(logp.sum(), params)
    assert torch.isfinite(grad).all()
    # a point mass on one level is reachable: log P → 0 with the narrowest scale
    sharp = torch.tensor([[0.0, 2 * 100 / 255 - 1, -7.0]], dtype=dtype)
    assert (
        float(DiscretisedLogisticMixtureOutput(256, 1).log_prob(torch.tensor([100]), sharp)) > -0.05
    )


def test_mode_is_the_most_probable_level_in_chunks(monkeypatch):
    out = DiscretisedLogisticMixtureOutput(17, n_mix=3)
    params = _params(3, 30, seed=4).reshape(5, 6, 9)
    table = _table(out, params.reshape(30, 9)).reshape(5, 6, 17)
    monkeypatch.setattr(decoders, "MODE_CHUNK", 17 * 3 * 4)  # four entries at a time
    assert torch.equal(out.mode(params), table.argmax(-1))


def test_make_output_and_bad_arguments():
    out = make_output("discretised-logistic-mixture", 256, n_mix=4)
    assert isinstance(out, DiscretisedLogisticMixtureOutput) and out.n_params == 12
    assert "discretised-logistic-mixture" in decoders.DECODERS
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ParameterError, match="n_mix"):
            DiscretisedLogisticMixtureOutput(17, bad)
    with pytest.raises(ParameterError, match="K >= 2"):
        DiscretisedLogisticMixtureOutput(1)


@pytest.mark.parametrize("n_mix", [1, 5, 10])
def test_initial_bias_starts_near_uniform_with_distinct_components(n_mix):
    out = DiscretisedLogisticMixtureOutput(256, n_mix)
    bias = out.initial_bias()
    logp = out.log_prob(torch.arange(256), bias.expand(256, -1))
    assert float(logp.exp().sum()) == pytest.approx(1.0, abs=1e-12)
    assert float(-logp.mean()) < np.log(256) + 0.3  # cross-entropy of uniform levels
    assert len(set(bias[n_mix : 2 * n_mix].tolist())) == n_mix  # locations apart
