"""Tests of the sequence models (lstm, transformer) and of causal attention with a KV cache."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from scipy import stats

import ptheta
from ptheta.errors import DataError, ParameterError
from ptheta.models.baselines import Independent
from ptheta.models.sequence import (
    LSTM,
    LSTMNetwork,
    Transformer,
    TransformerNetwork,
    _shift,
)
from ptheta.nn.attention import CausalSelfAttention, KVCache

FAST = {"dtype": "float64", "device": "cpu"}


def _lstm(k: int, t, **kw) -> LSTMNetwork:
    torch.manual_seed(0)
    return LSTMNetwork(k, t, hidden=8, n_layers=2, **kw).double().eval()


def _transformer(k: int, t, **kw) -> TransformerNetwork:
    torch.manual_seed(0)
    net = TransformerNetwork(k, t, hidden=8, n_heads=2, n_layers=2, **kw).double().eval()
    with torch.no_grad():  # sharper conditionals than the initialisation gives
        net.head.weight.mul_(4.0)
    return net


def _sliding(k: int, t: int, context: int) -> TransformerNetwork:
    return _transformer(k, t, context=context, long_sequences="sliding")


NETWORKS = {
    "lstm": _lstm,
    "transformer": _transformer,
    "sliding": lambda k, t: _sliding(k, t, 4),
}


def _configs(k: int, t: int) -> torch.Tensor:
    return torch.tensor(list(itertools.product(range(k), repeat=t)))


def _tokens(n: int, k: int, t: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, k, (n, t), generator=torch.Generator().manual_seed(seed))


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# --------------------------------------------------------------------------- attention
def _reference_attention(attn: CausalSelfAttention, x: torch.Tensor) -> torch.Tensor:
    """Attention written as loops over positions: query i sees keys 0 … i."""
    _, s, c = x.shape
    h = attn.n_heads
    q, k, v = attn.qkv(x).split(c, dim=2)
    out = torch.zeros_like(x)
    for i in range(s):
        heads = []
        for j in range(h):
            sl = slice(j * c // h, (j + 1) * c // h)
            scores = torch.einsum("bd,bjd->bj", q[:, i, sl], k[:, : i + 1, sl])  # (B, i + 1)
            w = torch.softmax(scores / (c // h) ** 0.5, dim=-1)
            heads.append(torch.einsum("bj,bjd->bd", w, v[:, : i + 1, sl]))
        out[:, i] = torch.cat(heads, dim=-1)
    return attn.proj(out)


def test_attention_matches_a_plain_loop_and_the_cache_in_chunks():
    torch.manual_seed(0)
    attn = CausalSelfAttention(12, 3).double().eval()
    x = torch.randn(2, 8, 12, dtype=torch.float64)
    full = attn(x)
    torch.testing.assert_close(full, _reference_attention(attn, x), rtol=0, atol=1e-12)
    cache = KVCache(2)  # too small on purpose: it must grow
    chunks = [attn(x[:, a:b], cache) for a, b in [(0, 3), (3, 4), (4, 8)]]
    torch.testing.assert_close(torch.cat(chunks, 1), full, rtol=0, atol=1e-12)
    assert len(cache) == 8


# --------------------------------------------------------------------------- exact likelihood
def test_lstm_log_prob_equals_a_plain_loop_over_tokens():
    net = _lstm(5, 7)
    x = _tokens(4, 5, 7)
    state, total = None, torch.zeros(4, dtype=torch.float64)
    token = torch.full((4, 1), 5)  # BOS
    for t in range(7):  # one token at a time through the LSTM, carrying its state
        h, state = net.lstm(net.embed(token), state)
        total += net.head(h[:, 0]).log_softmax(-1)[torch.arange(4), x[:, t]]
        token = x[:, t : t + 1]
    torch.testing.assert_close(net.log_prob(x), total, rtol=0, atol=1e-12)


@pytest.mark.parametrize("cached", [False, True])
def test_transformer_log_prob_equals_a_plain_loop_over_tokens(cached):
    net = _transformer(5, 7)
    x = _tokens(4, 5, 7)
    u = _shift(x, 5)
    caches = [KVCache() for _ in net.blocks]
    total = torch.zeros(4, dtype=torch.float64)
    for t in range(7):
        if cached:  # feed one token, the keys and values of the others come from the cache
            logits = net._run(u[:, t : t + 1], t, caches)[:, 0]
        else:  # recompute the prefix
            logits = net._run(u[:, : t + 1])[:, -1]
        total += logits.log_softmax(-1)[torch.arange(4), x[:, t]]
    torch.testing.assert_close(net.log_prob(x), total, rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    ("name", "k", "t"),
    [
        ("lstm", 2, 10),
        ("lstm", 3, 5),
        ("transformer", 2, 10),
        ("transformer", 3, 5),
        ("sliding", 2, 9),
        ("sliding", 3, 6),
    ],
)
def test_probabilities_sum_to_one_over_every_sequence(name, k, t):
    net = NETWORKS[name](k, t)
    with torch.no_grad():
        total = net.log_prob(_configs(k, t)).exp().sum().item()
    assert total == pytest.approx(1.0, abs=1e-10)


def test_two_axis_events_are_read_in_raster_order():
    net = _transformer(2, (2, 3))
    configs = _configs(2, 6)
    with torch.no_grad():
        flat = net.log_prob(configs)
        torch.testing.assert_close(net.log_prob(configs.reshape(-1, 2, 3)), flat)
        assert flat.exp().sum().item() == pytest.approx(1.0, abs=1e-10)
    assert net.sample(4, generator=_gen(0)).shape == (4, 2, 3)


# --------------------------------------------------------------------------- causality
def _influence(net, x: torch.Tensor, t: int) -> torch.Tensor:
    """|d logits_t / d embedding of x_j| summed, for every j: shape (L,)."""
    n, length = x.shape
    layer = net.embed if isinstance(net, LSTMNetwork) else net.tok
    leaves = []

    def hook(module, inputs, output):  # make each embedding output a leaf we can read
        leaf = output.detach().requires_grad_()
        leaves.append((inputs[0], leaf))
        return leaf

    handle = layer.register_forward_hook(hook)
    try:
        net(x)[:, t].sum().backward()
    finally:
        handle.remove()
    influence = torch.zeros(length, dtype=torch.float64)
    c = getattr(net, "context", length)
    for call, (_, leaf) in enumerate(leaves):
        g = leaf.grad.abs().sum(-1)  # (B, S): per embedding slot
        if call == 0:  # inputs [BOS, x_0 … x_{S−2}]: slot p ≥ 1 holds x_{p−1}
            influence[: g.shape[1] - 1] += g[:, 1:].sum(0)
        else:  # sliding windows: window s, slot p ≥ 1 holds x_{s+p}
            g = g.reshape(n, length - c, c)
            for s in range(length - c):
                influence[s + 1 : s + c] += g[:, s, 1:].sum(0)
    return influence


@pytest.mark.parametrize("name", ["lstm", "transformer", "sliding"])
def test_step_t_depends_on_earlier_tokens_only(name):
    length = 8
    net = NETWORKS[name](4, length)
    x = _tokens(3, 4, length)
    window = getattr(net, "context", length + 1) - 1 if name == "sliding" else length
    for t in range(length):
        influence = _influence(net, x, t)
        sees = torch.zeros(length, dtype=torch.bool)
        sees[max(0, t - window) : t] = True
        assert torch.all(influence[~sees] == 0), (t, influence)
        assert torch.all(influence[sees] > 0), (t, influence)


# --------------------------------------------------------------------------- sliding window
def test_sliding_log_prob_equals_truncated_context_reference():
    c, length = 4, 11
    net = _sliding(3, length, c)
    x = _tokens(5, 3, length)
    reference = torch.zeros(5, dtype=torch.float64)
    with torch.no_grad():
        for t in range(length):
            lo = max(0, t - (c - 1))
            logits = net(x[:, lo : t + 1])[:, -1]  # a fresh sequence: the last c − 1 tokens
            reference += logits.log_softmax(-1)[torch.arange(5), x[:, t]]
        torch.testing.assert_close(net.log_prob(x), reference, rtol=0, atol=1e-12)


def test_sequences_longer_than_the_context_need_a_policy():
    with pytest.raises(ParameterError, match=r"length 10 .* context of 4"):
        TransformerNetwork(3, 10, hidden=8, n_heads=2, context=4)
    net = TransformerNetwork(3, 4, hidden=8, n_heads=2)
    with pytest.raises(ParameterError, match="long_sequences='sliding'"):
        net.log_prob(_tokens(2, 3, 6))
    with pytest.raises(ParameterError, match="long_sequences"):
        TransformerNetwork(3, 4, long_sequences="truncate")


# --------------------------------------------------------------------------- KV cache
@pytest.mark.parametrize("c", [None, 5])
def test_cached_step_logits_equal_the_full_forward(c):
    length = 12
    net = _transformer(5, length, context=c, long_sequences="sliding")
    x = _tokens(3, 5, length)
    caches = [KVCache(net.context) for _ in net.blocks]
    with torch.no_grad():
        steps = torch.stack([net.next_logits(x, t, caches) for t in range(length)], 1)
        torch.testing.assert_close(steps, net(x), rtol=0, atol=1e-12)


@pytest.mark.parametrize("c", [None, 5])
@pytest.mark.parametrize(
    "options",
    [{}, {"temperature": 0.7}, {"top_k": 2}, {"temperature": 1.5, "top_k": 3}, {"temperature": 0}],
)
def test_cached_and_uncached_sampling_draw_identical_sequences(c, options):
    net = _transformer(5, 12, context=c, long_sequences="sliding")
    cached = net.sample(64, generator=_gen(7), **options)
    uncached = net.sample(64, generator=_gen(7), use_cache=False, **options)
    torch.testing.assert_close(cached, uncached, rtol=0, atol=0)
    assert len(torch.unique(cached, dim=0)) > 1 or options.get("temperature") == 0


def test_prompts_are_kept_and_cached_decoding_agrees_after_them():
    net = _transformer(5, 10, context=6, long_sequences="sliding")
    prompt = torch.tensor([4, 0, 3])
    a = net.sample(16, generator=_gen(1), prompt=prompt)
    b = net.sample(16, generator=_gen(1), prompt=prompt, use_cache=False)
    assert torch.equal(a, b) and torch.all(a[:, :3] == prompt)
    per_row = torch.arange(16 * 2).reshape(16, 2) % 5
    assert torch.equal(net.sample(16, prompt=per_row)[:, :2], per_row)
    with pytest.raises(DataError, match="prompt"):
        net.sample(2, prompt=torch.zeros(11, dtype=torch.long))
    with pytest.raises(DataError, match="prompt tokens"):
        net.sample(2, prompt=torch.tensor([5]))


# --------------------------------------------------------------------------- sampling options
def _greedy(net, length: int) -> torch.Tensor:
    x = torch.zeros(1, length, dtype=torch.long)
    with torch.no_grad():
        for t in range(length):
            x[:, t] = net(x)[:, t].argmax(-1)
    return x


@pytest.mark.parametrize("name", ["lstm", "transformer", "sliding"])
def test_zero_temperature_and_top_1_follow_the_argmax_path(name):
    net = NETWORKS[name](5, 9)
    greedy = _greedy(net, 9).expand(6, -1)
    for options in ({"temperature": 0}, {"temperature": 1e-9}, {"top_k": 1}):
        torch.testing.assert_close(net.sample(6, generator=_gen(3), **options), greedy)


def _exact_log_probs(net, configs, temperature=1.0, top_k=None) -> np.ndarray:
    """log-probabilities of the sampler with these options, by enumeration, shape (N,)."""
    with torch.no_grad():
        logits = net(configs)  # (N, T, K)
        if top_k is not None:
            kth = logits.topk(top_k, -1).values[..., -1:]
            logits = logits.masked_fill(logits < kth, -np.inf)
        logp = (logits / temperature).log_softmax(-1)
        return logp.gather(2, configs[..., None]).squeeze(2).sum(1).numpy()


@pytest.mark.parametrize(
    ("name", "k", "t", "options"),
    [
        ("lstm", 3, 4, {}),
        ("transformer", 3, 4, {}),
        ("sliding", 2, 6, {}),
        ("transformer", 3, 4, {"temperature": 0.6, "top_k": 2}),
        ("lstm", 3, 4, {"temperature": 1.7}),
    ],
)
def test_sampler_histogram_matches_exact_probabilities(name, k, t, options):
    net = NETWORKS[name](k, t)
    configs = _configs(k, t)
    probs = np.exp(_exact_log_probs(net, configs, **options))
    assert probs.sum() == pytest.approx(1.0, abs=1e-10)
    n = 20_000
    samples = net.sample(n, generator=_gen(11), **options).numpy()
    index = samples @ (k ** np.arange(t)[::-1])  # row of the configuration in `configs`
    counts = np.bincount(index, minlength=len(configs))
    assert counts[probs == 0].sum() == 0, "a token outside the top k was drawn"
    expected = probs * n
    keep = expected >= 5  # pool rare cells, as the chi-square approximation needs
    obs, exp = counts[keep], expected[keep]
    if (~keep).any():
        obs, exp = np.append(obs, counts[~keep].sum()), np.append(exp, expected[~keep].sum())
    _, p_value = stats.chisquare(obs, exp * obs.sum() / exp.sum())
    assert p_value > 1e-4


# --------------------------------------------------------------------------- estimators
def _binary_sequences(n: int = 200, t: int = 8, seed: int = 0) -> np.ndarray:
    """Sticky binary chains: each token repeats the previous one with probability 0.9."""
    rng = np.random.default_rng(seed)
    x = np.zeros((n, t), dtype=np.int64)
    x[:, 0] = rng.integers(0, 2, n)
    for i in range(1, t):
        flip = rng.random(n) < 0.1
        x[:, i] = np.where(flip, 1 - x[:, i - 1], x[:, i - 1])
    return x


@pytest.mark.parametrize("cls", [LSTM, Transformer])
def test_generate_with_default_options_is_sample(cls):
    x = _binary_sequences()
    model = cls(**cls.quick_params).fit(x)
    np.testing.assert_array_equal(
        model.generate(20, random_state=4), model.sample(20, random_state=4)
    )
    out = model.generate(5, prompt=[1, 1, 0], temperature=0.5, top_k=1, random_state=0)
    assert out.shape == (5, 8) and out.dtype == np.int64
    np.testing.assert_array_equal(out[:, :3], [[1, 1, 0]] * 5)
    with pytest.raises(ParameterError, match="temperature"):
        model.generate(2, temperature=-1.0)
    with pytest.raises(ParameterError, match="top_k"):
        model.generate(2, top_k=0)
    with pytest.raises(DataError, match="prompt"):
        model.generate(2, prompt=np.zeros(9, dtype=int))
    with pytest.raises(DataError, match="prompt"):
        model.generate(2, prompt=[0.5])
    with pytest.raises(DataError, match="n_samples"):
        model.generate(0)


def test_transformer_refuses_long_sequences_at_fit_time_without_a_policy():
    x = _binary_sequences(t=10)
    model = Transformer(hidden=8, n_heads=2, context=4, epochs=1, **FAST)
    with pytest.raises(ParameterError, match=r"length 10 .* context of 4"):
        model.fit(x)
    model = Transformer(hidden=8, n_heads=2, context=4, long_sequences="sliding", epochs=1, **FAST)
    configs = _configs(2, 10).numpy()
    assert np.exp(model.fit(x).score_samples(configs)).sum() == pytest.approx(1.0, abs=1e-9)
    assert model.generate(3, random_state=0).shape == (3, 10)


@pytest.mark.parametrize(
    ("cls", "params", "match"),
    [
        (Transformer, {"hidden": 10, "n_heads": 4}, "divisible"),
        (Transformer, {"context": 0}, "context"),
        (Transformer, {"dropout": 1.5}, "dropout"),
        (LSTM, {"hidden": 0}, "hidden"),
        (LSTM, {"n_layers": 2.5}, "n_layers"),
    ],
)
def test_bad_hyper_parameters_are_parameter_errors_at_fit(cls, params, match):
    model = cls(**params, epochs=1, **FAST)  # __init__ only stores
    with pytest.raises(ParameterError, match=match):
        model.fit(_binary_sequences(20))


@pytest.mark.parametrize(
    ("cls", "params"), [(LSTM, {"hidden": 32}), (Transformer, {"hidden": 32, "n_layers": 1})]
)
def test_training_on_sunspots_beats_the_independent_baseline(cls, params):
    data = ptheta.data.load("sunspots")
    model = cls(**params, dropout=0.2, epochs=8, lr=1e-2, batch_size=32, **FAST)
    model.fit(data.train, validation_data=data.val)
    held_out = np.concatenate([data.val.x, data.test.x])
    baseline = Independent().fit(data.train)
    # consecutive years are strongly correlated; the independent model ignores it
    assert -model.score(held_out) < -baseline.score(held_out) - 3.0  # nats per 15 years
