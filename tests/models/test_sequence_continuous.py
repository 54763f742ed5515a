"""Real-valued steps in lstm and transformer: a mixture density per step, exact and causal."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ptheta.data.ragged import Sequences
from ptheta.models.sequence import LSTM, Transformer
from ptheta.nn.sequence import LSTMNetwork, TransformerNetwork

FAST = {"dtype": "float64", "device": "cpu"}


def _net(name: str, seq_len, **kw) -> torch.nn.Module:
    torch.manual_seed(0)
    if name == "lstm":
        net = LSTMNetwork(None, seq_len, hidden=8, n_layers=2, n_components=3, **kw)
    else:
        context = {"transformer": None, "sliding": 3}[name]
        net = TransformerNetwork(
            None, seq_len, hidden=8, n_heads=2, n_components=3, context=context,
            long_sequences="sliding", **kw,
        )  # fmt: skip
    return net.double().eval()


NAMES = ["lstm", "transformer", "sliding"]


def _grid(lo: float, hi: float, n: int) -> tuple[torch.Tensor, float]:
    g = torch.linspace(lo, hi, n, dtype=torch.float64)
    return g, float(g[1] - g[0])


@pytest.mark.parametrize("model", [LSTM, Transformer])
def test_a_fitted_density_of_two_steps_integrates_to_one_in_data_units(model):
    rng = np.random.default_rng(0)
    z = rng.normal(size=(200, 1))
    x = np.concatenate([z, 0.8 * z + 0.3 * rng.normal(size=(200, 1))], 1) * 3.0 + 5.0
    fitted = model(**{**model.quick_params, "epochs": 5}).fit(x)
    g, h = _grid(5.0 - 30, 5.0 + 30, 301)
    grid = torch.cartesian_prod(g, g).numpy()
    mass = np.exp(fitted.score_samples(grid)).sum() * h * h
    assert fitted.units_ == "continuous" and fitted.likelihood_ == "exact"
    assert mass == pytest.approx(1.0, abs=5e-3)


@pytest.mark.parametrize("name", NAMES)
def test_lengths_one_and_two_carry_all_the_mass(name):
    """M = 2, one value a step: ∫ p(x_0, L = 1) + ∬ p(x_0, x_1, L = 2) = 1."""
    net = _net(name, 2, ends=True, dims=1)
    with torch.no_grad():
        net.stop.bias.fill_(0.3)
    g, h = _grid(-12, 12, 401)
    one = torch.zeros(len(g), 3, 2, dtype=torch.float64)  # (G, M + 1, D + 1)
    one[:, 0, 0], one[:, 0, 1] = g, 1.0  # one step, then the end
    pairs = torch.cartesian_prod(g, g)
    two = torch.zeros(len(pairs), 3, 2, dtype=torch.float64)
    two[:, :2, 0], two[:, :2, 1] = pairs, 1.0
    with torch.no_grad():
        p_one = net.log_prob(one).exp().sum() * h
        p_two = net.log_prob(two).exp().sum() * h * h
    assert 0.1 < float(p_one) < 0.9
    assert float(p_one + p_two) == pytest.approx(1.0, abs=1e-6)
    # the sampler draws lengths with these probabilities
    samples = net.sample(20_000, generator=torch.Generator().manual_seed(0))
    ones = float((samples[:, 1, 1] == 0).double().mean())
    assert ones == pytest.approx(float(p_one), abs=4 * np.sqrt(0.25 / 20_000))


@pytest.mark.parametrize("name", NAMES)
def test_log_prob_is_the_sum_of_per_step_mixture_densities_and_stops(name):
    net = _net(name, 5, ends=True, dims=2)
    g = torch.Generator().manual_seed(0)
    x = torch.zeros(3, 6, 3, dtype=torch.float64)
    lengths = [1, 3, 5]
    for i, n in enumerate(lengths):
        x[i, :n, :2] = torch.randn(n, 2, generator=g, dtype=torch.float64)
        x[i, :n, 2] = 1.0
    with torch.no_grad():
        params = net(x)  # (3, 6, P): mixture parameters, the stopping logit last
        got = net.log_prob(x)
    for i, n in enumerate(lengths):
        expected = 0.0
        for t in range(n + 1):
            stop = torch.sigmoid(params[i, t, -1]) if 0 < t < 5 else float(t == 5)
            if t == n:
                expected += np.log(float(stop))
                break
            density = net.head.log_prob(params[i, t, :-1], x[i, t, :2])
            expected += np.log1p(-float(stop)) + float(density)
        assert float(got[i]) == pytest.approx(expected, abs=1e-10)


@pytest.mark.parametrize("ends", [False, True])
@pytest.mark.parametrize("name", NAMES)
def test_step_t_depends_on_earlier_values_only(name, ends):
    length = 6
    net = (
        _net(name, length, ends=ends, dims=2 if ends else None) if ends else _net(name, (length, 2))
    )
    x = torch.randn(2, length + int(ends), 2, dtype=torch.float64)
    if ends:
        x = torch.cat([x, torch.ones(2, length + 1, 1, dtype=torch.float64)], 2)
        x[:, -1, 2] = 0.0
    window = 2 if name == "sliding" else length
    for t in range(length):
        xi = x.clone().requires_grad_()
        net(xi)[:, t].sum().backward()
        influence = xi.grad[..., :2].abs().sum((0, 2))  # (S,)
        sees = torch.zeros(len(influence), dtype=torch.bool)
        sees[max(0, t - window) : t] = True
        assert torch.all(influence[~sees] == 0), (t, influence)
        assert torch.all(influence[sees] > 0), (t, influence)


@pytest.mark.parametrize("name", NAMES)
def test_whatever_follows_the_end_changes_no_score(name):
    net = _net(name, 6, ends=True, dims=1)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(3, 7, 2, generator=g, dtype=torch.float64)
    lengths = torch.tensor([1, 4, 6])
    after = torch.arange(7) >= lengths[:, None]
    x[..., 1] = (~after).double()
    garbage = x.clone()
    garbage[..., 0] = torch.where(after, 1e3, x[..., 0])
    garbage[:, -1, 1] = 1.0  # a flag back on after the end: still after the end
    garbage[2, -1, 1] = 0.0  # (the longest needs its end)
    with torch.no_grad():
        assert torch.equal(net.log_prob(x), net.log_prob(garbage))


def _ragged(n: int = 80, seed: int = 0) -> list[np.ndarray]:
    """Random walks of 1 … 6 two-dimensional steps, far from 0 and not of unit scale."""
    rng = np.random.default_rng(seed)
    return [
        np.cumsum(rng.normal(size=(int(rng.integers(1, 7)), 2)), 0) * [2.0, 0.5] + [10, -3]
        for _ in range(n)
    ]


@pytest.mark.parametrize("model", [LSTM, Transformer])
def test_scores_are_densities_of_the_data_in_their_own_units(model):
    """Standardising makes a refit on a·x + b the same network: every score moves by
    −(number of values) · log a, exactly (the Jacobian), fixed length or not."""
    params = {**model.quick_params, "epochs": 2}
    seqs = _ragged()
    scaled = [3.0 * s - 7.0 for s in seqs]
    a = model(**params).fit(seqs).score_samples(seqs[:10])
    b = model(**params).fit(scaled).score_samples(scaled[:10])
    values = np.array([s.size for s in seqs[:10]])
    np.testing.assert_allclose(b, a - values * np.log(3.0), rtol=0, atol=1e-8)
    windows = np.stack([s[0] for s in seqs])  # fixed length: 2 values each
    a = model(**params).fit(windows).score_samples(windows)
    b = model(**params).fit(3.0 * windows - 7.0).score_samples(3.0 * windows - 7.0)
    np.testing.assert_allclose(b, a - 2 * np.log(3.0), rtol=0, atol=1e-8)


@pytest.mark.parametrize("model", [LSTM, Transformer])
def test_ragged_real_sequences_round_trip(model):
    seqs = _ragged()
    fitted = model(**{**model.quick_params, "epochs": 10}).fit(seqs)
    batch = fitted.score_samples(seqs[:8])
    alone = np.array([fitted.score_samples([s])[0] for s in seqs[:8]])
    np.testing.assert_allclose(alone, batch, rtol=0, atol=1e-10)
    samples = fitted.sample(300, random_state=0)
    assert isinstance(samples, Sequences) and samples.step_shape == (2,)
    assert np.all(samples.values[~samples.mask()] == 0)
    assert np.all(np.isfinite(fitted.score_samples(samples)))
    flat, _ = samples.concatenated()
    assert abs(flat[:, 0].mean() - 10) < 4 and abs(flat[:, 1].mean() + 3) < 1  # data units
    summary = fitted.nll_summary(seqs)
    assert summary["n_steps"] == sum(map(len, seqs)) + len(seqs)
    assert summary["units"] == "continuous"
