"""The mixture-of-Gaussians head: its density against a direct computation, its sampler."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats
from scipy.special import logsumexp

from ptheta.errors import ParameterError
from ptheta.nn.mixture_head import MixtureHead


def _head(dims: int, k: int) -> MixtureHead:
    torch.manual_seed(0)
    return MixtureHead(6, dims, n_components=k).double()


def test_log_prob_equals_a_direct_scipy_computation():
    head = _head(2, 3)
    h = torch.randn(5, 6, dtype=torch.float64)
    x = torch.randn(5, 2, dtype=torch.float64) * 2
    with torch.no_grad():
        params = head(h)
        got = head.log_prob(params, x).numpy()
    p = params.numpy()
    logits, means, pre = p[:, :3], p[:, 3:9].reshape(5, 3, 2), p[:, 9:].reshape(5, 3, 2)
    scales = np.log1p(np.exp(pre)) + head.min_scale
    log_w = logits - logsumexp(logits, axis=1, keepdims=True)
    per_component = stats.norm.logpdf(x.numpy()[:, None, :], means, scales).sum(-1)  # (5, 3)
    np.testing.assert_allclose(got, logsumexp(log_w + per_component, axis=1), rtol=1e-12)


def test_the_density_of_one_value_integrates_to_one():
    head = _head(1, 4)
    with torch.no_grad():
        params = head(torch.randn(3, 6, dtype=torch.float64) * 2)  # three mixtures
        grid = torch.linspace(-15, 15, 30_001, dtype=torch.float64)
        dens = head.log_prob(params[:, None, :], grid[None, :, None]).exp()  # (3, G)
    integral = torch.trapezoid(dens, grid, dim=1)
    torch.testing.assert_close(integral, torch.ones(3, dtype=torch.float64), rtol=0, atol=1e-8)


def test_samples_follow_the_mixture():
    head = _head(1, 3)
    with torch.no_grad():
        params = head(torch.randn(1, 6, dtype=torch.float64) * 3).expand(20_000, -1)
        x = head.sample(params, generator=torch.Generator().manual_seed(0))[:, 0].numpy()
        log_w, means, scales = head.components(params[:1])
    w, means, scales = log_w[0].exp().numpy(), means[0, :, 0].numpy(), scales[0, :, 0].numpy()

    def cdf(v):
        return (w * stats.norm.cdf((v[:, None] - means) / scales)).sum(1)

    assert stats.kstest(x, cdf).pvalue > 1e-3
    again = head.sample(params, generator=torch.Generator().manual_seed(0))[:, 0].numpy()
    np.testing.assert_array_equal(again, x)


def test_bad_arguments_are_parameter_errors():
    with pytest.raises(ParameterError, match="n_components"):
        MixtureHead(4, 1, n_components=0)
    with pytest.raises(ParameterError, match="min_scale"):
        MixtureHead(4, 1, min_scale=0.0)
    with pytest.raises(ParameterError, match="dims"):
        MixtureHead(4, 0)
