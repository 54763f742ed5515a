"""Variable-length token sequences in lstm and transformer: END, padding, normalisation."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from scipy import stats

import ptheta
from ptheta.data.ragged import Sequences
from ptheta.errors import DataError, ParameterError
from ptheta.models.sequence import LSTM, Transformer
from ptheta.nn.sequence import LSTMNetwork, TransformerNetwork, encode_sequences
from ptheta.runs.store import load_run, save_run

FAST = {"dtype": "float64", "device": "cpu"}


def _net(name: str, k: int, m: int) -> torch.nn.Module:
    torch.manual_seed(0)
    if name == "lstm":
        net = LSTMNetwork(k, m, hidden=8, n_layers=2, ends=True)
    else:
        context = {"transformer": None, "sliding": 3}[name]
        net = TransformerNetwork(
            k, m, hidden=8, n_heads=2, context=context, long_sequences="sliding", ends=True
        )
    net = net.double().eval()
    with torch.no_grad():  # sharper conditionals than the initialisation gives
        net.head.weight.mul_(4.0)
        net.head.weight[-1].mul_(0.1)  # END neither rare nor certain
        net.head.bias[-1] = -1.0
    return net


NAMES = ["lstm", "transformer", "sliding"]


def _all_sequences(k: int, length: int, width: int) -> torch.Tensor:
    """Every sequence of ``length`` tokens, END from position ``length`` on, (k^L, width)."""
    rows = np.array(list(itertools.product(range(k), repeat=length)), dtype=np.int64)
    lengths = np.full(len(rows), length)
    return torch.as_tensor(encode_sequences(rows, lengths, width, n_tokens=k))


def _prefixes(k: int, length: int) -> torch.Tensor:
    """Every run of ``length`` tokens with no END: scored as a prefix."""
    return torch.tensor(list(itertools.product(range(k), repeat=length)))


@pytest.mark.parametrize("name", NAMES)
def test_lengths_one_to_four_and_the_chance_of_going_on_sum_to_one(name):
    k, m = 2, 7
    net = _net(name, k, m)
    with torch.no_grad():
        ended = sum(net.log_prob(_all_sequences(k, n, n + 1)).exp().sum() for n in range(1, 5))
        # P(L > 4): the probability of drawing 5 tokens (never END in the first 5 steps)
        going_on = net.log_prob(_prefixes(k, 5)).exp().sum()
    assert 0.05 < float(going_on) < 0.95  # both terms matter
    assert float(ended + going_on) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("name", NAMES)
def test_the_end_is_certain_after_max_length_steps(name):
    k, m = 3, 3
    net = _net(name, k, m)
    with torch.no_grad():
        total = sum(net.log_prob(_all_sequences(k, n, m + 1)).exp().sum() for n in range(1, m + 1))
        empty = net.log_prob(torch.tensor([[k, k]]))  # END first: an empty sequence
    assert float(total) == pytest.approx(1.0, abs=1e-12)
    assert float(empty) == -np.inf


@pytest.mark.parametrize("name", NAMES)
def test_whatever_follows_the_end_changes_no_score(name):
    k, m = 4, 9
    net = _net(name, k, m)
    g = torch.Generator().manual_seed(0)
    lengths = torch.tensor([1, 3, 6, 9])
    x = torch.randint(0, k, (4, m + 1), generator=g)
    after = torch.arange(m + 1) >= lengths[:, None]
    clean = x.masked_fill(after, k)
    garbage = torch.where(after, torch.randint(0, k + 1, x.shape, generator=g), x)
    garbage[torch.arange(4), lengths] = k  # the end stays where it is
    with torch.no_grad():
        a = net.log_prob(clean)
        b = net.log_prob(garbage)
        alone = torch.stack([net.log_prob(clean[i, : lengths[i] + 1]) for i in range(4)])
    assert torch.equal(a, b)  # bit for bit: padding is replaced before the network reads it
    torch.testing.assert_close(alone, a, rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", NAMES)
def test_sampled_sequences_follow_the_exact_probabilities(name):
    k, m = 2, 3
    net = _net(name, k, m)
    rows = torch.cat([_all_sequences(k, n, m + 1) for n in range(1, m + 1)])  # 14 sequences
    with torch.no_grad():
        probs = net.log_prob(rows).exp().numpy()
    samples = net.sample(20_000, generator=torch.Generator().manual_seed(3))
    index = {tuple(r): i for i, r in enumerate(rows.tolist())}
    counts = np.bincount([index[tuple(r)] for r in samples.tolist()], minlength=len(rows))
    _, p_value = stats.chisquare(counts, probs * counts.sum() / probs.sum())
    assert probs.sum() == pytest.approx(1.0, abs=1e-12) and p_value > 1e-4


def _words(n: int = 120, seed: int = 0) -> list[np.ndarray]:
    """Runs of 0s ended by a 1 or 2, 1 to 6 tokens: the length carries information."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        length = int(rng.integers(1, 7))
        out.append(np.r_[np.zeros(length - 1, dtype=np.int64), rng.integers(1, 3)])
    return out


@pytest.fixture(scope="module", params=[LSTM, Transformer])
def fitted(request):
    cls = request.param
    return cls(**{**cls.quick_params, "epochs": 15}).fit(_words())


def test_estimator_scores_are_per_sequence_and_padding_invariant(fitted):
    words = _words(10, seed=1)
    batch = fitted.score_samples(words)
    alone = np.array([fitted.score_samples([w])[0] for w in words])
    np.testing.assert_allclose(alone, batch, rtol=0, atol=1e-10)
    seqs = Sequences.from_list(words)
    garbage = seqs.values.copy()
    garbage[~seqs.mask()] = 2
    np.testing.assert_allclose(fitted.score_samples(Sequences(garbage, seqs.lengths)), batch)
    summary = fitted.nll_summary(words)
    assert summary["n_steps"] == sum(map(len, words)) + len(words)
    assert summary["nll_per_step"] == pytest.approx(-batch.sum() / summary["n_steps"])
    assert fitted.capabilities().variable_length and fitted.likelihood_ == "exact"


def test_fit_sample_score_round_trip_learns_the_structure(fitted):
    samples = fitted.sample(200, random_state=0)
    assert isinstance(samples, Sequences) and samples.values.dtype == np.int64
    assert samples.lengths.min() >= 1 and samples.lengths.max() <= 12  # 2 × the longest
    scores = fitted.score_samples(samples)
    assert np.all(np.isfinite(scores))
    ends_right = np.mean([s[-1] > 0 and np.all(s[:-1] == 0) for s in samples])
    assert ends_right > 0.8  # the data's grammar: zeros, then one 1 or 2 at the end
    again = fitted.sample(200, random_state=0)
    np.testing.assert_array_equal(again.values, samples.values)
    out = fitted.generate(5, prompt=[0, 0], random_state=0)
    assert isinstance(out, Sequences) and all(np.all(s[:2] == 0) for s in out)


def test_a_ragged_fit_survives_a_run_directory(fitted, tmp_path):
    save_run(fitted, tmp_path / "run")
    loaded = load_run(tmp_path / "run")
    words = _words(8, seed=2)
    np.testing.assert_array_equal(loaded.score_samples(words), fitted.score_samples(words))
    np.testing.assert_array_equal(
        loaded.sample(5, random_state=1).values, fitted.sample(5, random_state=1).values
    )
    assert ptheta.load(tmp_path / "run").fitted_spec.variable_length


def test_lengths_beyond_max_length_are_clear_errors():
    words = _words(40)
    model = LSTM(hidden=8, epochs=1, max_length=8, **FAST).fit(words)
    with pytest.raises(DataError, match=r"up to 8 steps .* max_length >= 9"):
        model.score_samples([np.zeros(9, dtype=int)])
    with pytest.raises(DataError, match="max_length >= 6"):
        LSTM(hidden=8, epochs=1, max_length=3, **FAST).fit(words)
    with pytest.raises(ParameterError, match=r"length 13 \(with its end\) .* context of 8"):
        Transformer(hidden=8, n_heads=2, context=8, epochs=1, **FAST).fit(words)
    with pytest.raises(ParameterError, match="max_length"):
        LSTM(max_length=0, epochs=1, **FAST).fit(words)


def test_ragged_data_of_a_kind_the_family_does_not_model_is_one_clear_error():
    rng = np.random.default_rng(0)
    walks = [rng.normal(size=n) for n in (2, 5, 3, 4)]
    with pytest.raises(DataError, match="'seq-vae' does not model continuous data"):
        ptheta.make("seq-vae", epochs=1).fit(walks)
    shifted = [np.array([-1, 0, 1]), np.array([0, -1]), np.array([1, 1, 0, -1])]
    with pytest.raises(DataError, match=r"Negative values .* shift the levels"):
        ptheta.make("seq-vae", epochs=1).fit(shifted)


# --------------------------------------------------------------------------- seq-vae
def _vae(k: int = 2, m: int = 3):
    from ptheta.models.seq_vae import SeqVAENetwork

    torch.manual_seed(0)
    net = SeqVAENetwork(k, m, latent_dim=2, hidden=8, ends=True, iwae_samples=2000)
    net = net.double().eval()
    with torch.no_grad():
        net.head.weight.mul_(3.0)
    return net


def test_seq_vae_decoder_is_normalised_over_lengths_and_its_elbo_is_a_bound():
    k, m = 2, 3
    net = _vae(k, m)
    rows = torch.cat([_all_sequences(k, n, m + 1) for n in range(1, m + 1)])  # all 14
    z = torch.randn(5, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        for zi in z:  # p(x, L | z) sums to one over every sequence, for any z
            total = net.log_px(rows, zi.expand(len(rows), -1)).exp().sum()
            assert float(total) == pytest.approx(1.0, abs=1e-12)
        keys = np.arange(len(rows), dtype=np.uint64)
        elbo = net.elbo(rows, k=400, keys=keys).exp().sum()
        iwae = net.log_prob(rows, keys=keys).exp().sum()
    # Σ_x p(x) = 1: the ELBO sums below it, the IWAE estimate close to it
    assert float(elbo) < 0.98
    assert float(iwae) == pytest.approx(1.0, abs=0.03)


def test_seq_vae_never_reads_the_padding():
    net = _vae(3, 6)
    g = torch.Generator().manual_seed(0)
    lengths = torch.tensor([1, 4, 6])
    x = torch.randint(0, 3, (3, 7), generator=g)
    after = torch.arange(7) >= lengths[:, None]
    clean = x.masked_fill(after, 3)
    garbage = torch.where(after, torch.randint(0, 4, x.shape, generator=g), x)
    garbage[torch.arange(3), lengths] = 3
    z = torch.randn(3, 2, dtype=torch.float64, generator=g)
    with torch.no_grad():
        assert torch.equal(net.encode(clean)[0], net.encode(garbage)[0])
        assert torch.equal(net.log_px(clean, z), net.log_px(garbage, z))


def test_seq_vae_on_ragged_tokens_round_trips(tmp_path):
    from ptheta.models.seq_vae import SeqVAE

    model = SeqVAE(**{**SeqVAE.quick_params, "epochs": 3}).fit(_words())
    words = _words(8, seed=3)
    batch = model.score_samples(words)
    alone = np.array([model.score_samples([w])[0] for w in words])
    np.testing.assert_allclose(alone, batch, rtol=0, atol=1e-9)
    assert np.all(model.elbo(words) <= 0) and model.embed(words).shape == (8, 2)
    samples = model.sample(50, random_state=0)
    assert isinstance(samples, Sequences) and samples.lengths.max() <= 12
    assert np.all(np.isfinite(model.score_samples(samples)))
    save_run(model, tmp_path / "run")
    np.testing.assert_array_equal(load_run(tmp_path / "run").score_samples(words), batch)
