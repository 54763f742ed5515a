"""Tests of the decoders' output distributions: normalisation, sampling, modes."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from ptheta.errors import ParameterError
from ptheta.nn.decoders import (
    BernoulliOutput,
    CategoricalOutput,
    DiscretisedLogisticOutput,
    GaussianOutput,
    make_output,
)

DISCRETE = [BernoulliOutput(), CategoricalOutput(5), DiscretisedLogisticOutput(7)]


def _params(out, n: int = 6, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    params = torch.randn(n, out.n_params, generator=g, dtype=torch.float64) * 3
    if isinstance(out, DiscretisedLogisticOutput):  # locations across and beyond the levels
        params[:, 0] = torch.linspace(-3, 9, n, dtype=torch.float64)
        params[:, 1] = torch.linspace(-6, 4, n, dtype=torch.float64)  # tiny to huge scales
    return params


@pytest.mark.parametrize("out", DISCRETE, ids=repr)
def test_discrete_outputs_sum_to_one_over_the_levels(out):
    params = _params(out)  # (6, P): six different distributions
    levels = torch.arange(out.n_categories)
    table = out.log_prob(levels[None, :].expand(6, -1), params[:, None].expand(-1, len(levels), -1))
    np.testing.assert_allclose(table.exp().sum(1).numpy(), 1.0, atol=1e-12)
    assert torch.equal(out.mode(params), table.argmax(1))


@pytest.mark.parametrize("out", DISCRETE, ids=repr)
def test_discrete_samples_follow_the_probabilities(out):
    params = _params(out)[2:3].expand(20_000, -1)
    levels = torch.arange(out.n_categories)
    probs = out.log_prob(levels, params[:1].expand(len(levels), -1)).exp().numpy()
    draws = out.sample(params, torch.Generator().manual_seed(1))
    assert draws.dtype == torch.long and draws.shape == (20_000,)
    counts = np.bincount(draws.numpy(), minlength=len(levels))
    keep = probs * 20_000 >= 5
    _, p_value = stats.chisquare(counts[keep], probs[keep] / probs[keep].sum() * counts[keep].sum())
    assert p_value > 1e-4 and counts[~keep].sum() <= 30


def test_discretised_logistic_is_stable_at_extreme_scales():
    out = DiscretisedLogisticOutput(17)
    params = torch.tensor([[8.0, -7.0], [8.0, 7.0], [-50.0, 0.0], [60.0, 0.0]])
    for row in params:
        logp = out.log_prob(torch.arange(17), row.expand(17, 2))
        assert torch.isfinite(logp).all()
        assert float(logp.exp().sum()) == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("variance", ["learned", 0.3])
def test_gaussian_integrates_to_one_and_samples_match(variance):
    out = GaussianOutput(variance)
    params = torch.tensor([[0.7, -0.4]], dtype=torch.float64)[:, : out.n_params]
    grid = torch.linspace(-12, 12, 200_001, dtype=torch.float64)
    density = out.log_prob(grid, params.expand(len(grid), -1)).exp()
    assert float(density.sum() * (grid[1] - grid[0])) == pytest.approx(1.0, abs=1e-8)
    draws = out.sample(params.expand(50_000, -1), torch.Generator().manual_seed(0))
    sd = math.exp(-0.4) if variance == "learned" else math.sqrt(0.3)
    assert float(draws.mean()) == pytest.approx(0.7, abs=4 * sd / math.sqrt(50_000))
    assert float(draws.std()) == pytest.approx(sd, rel=0.02)
    assert float(out.mode(params)[0]) == 0.7


def test_sampling_is_reproducible_from_the_generator():
    for out in [*DISCRETE, GaussianOutput()]:
        params = _params(out, 50)
        a = out.sample(params, torch.Generator().manual_seed(3))
        b = out.sample(params, torch.Generator().manual_seed(3))
        assert torch.equal(a, b)


def test_bad_arguments_are_parameter_errors():
    with pytest.raises(ParameterError, match="decoder_variance"):
        GaussianOutput(-1.0)
    with pytest.raises(ParameterError, match="decoder must be one of"):
        make_output("poisson")
    with pytest.raises(ParameterError, match="K >= 2"):
        CategoricalOutput(1)
