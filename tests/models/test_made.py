"""MADE: exact normalisation of masks and ensembles, masks, sampler, marginals, persistence."""

from __future__ import annotations

import functools
import itertools

import numpy as np
import pytest
import torch
from scipy import stats
from scipy.special import logsumexp

import ptheta
from ptheta.errors import CapabilityError, DataError, ParameterError
from ptheta.models.made import MADE, MADENetwork

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _net(d: int, k: int, hidden=(8, 8), n_masks=3, n_classes=None, seed=0) -> MADENetwork:
    """A float64 order-agnostic MADE with large random weights (far from uniform)."""
    torch.manual_seed(seed)
    net = MADENetwork(
        d, k, hidden, n_masks=n_masks, order_agnostic=True, n_classes=n_classes, seed=seed
    ).double()
    with torch.no_grad():
        for p in net.parameters():
            p.normal_(0.0, 1.0)
    return net


def _configs(d: int, k: int) -> torch.Tensor:
    return torch.tensor(list(itertools.product(range(k), repeat=d)))


@pytest.mark.parametrize(
    ("d", "k", "n_classes"), [(10, 2, None), (12, 2, None), (4, 4, None), (5, 3, 3)]
)
def test_probabilities_sum_to_one_for_every_mask_and_the_ensemble(d, k, n_classes):
    net = _net(d, k, hidden=(8,) if d == 12 else (8, 8), n_classes=n_classes)
    assert len(set(map(tuple, net.orderings.tolist()))) == 3, "masks with distinct orderings"
    x = _configs(d, k)
    with torch.no_grad():
        for c in range(n_classes or 1):
            y = None if n_classes is None else torch.full((len(x),), c)
            for mask in [None, 0, 1, 2]:
                total = float(net.log_prob(x, y, mask).exp().sum())
                assert total == pytest.approx(1.0, abs=1e-10), (c, mask)


def test_ensemble_is_the_mixture_of_its_members():
    net = _net(5, 3)
    x = torch.randint(3, (9, 5), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        members = torch.stack([net.log_prob(x, mask=m) for m in range(3)]).exp()  # (M, N)
        torch.testing.assert_close(net.log_prob(x).exp(), members.mean(0))
        assert (members[0] - members[1]).abs().max() > 1e-3, "members should differ"


def _paths(masks) -> torch.Tensor:
    return functools.reduce(lambda acc, m: m @ acc, masks[1:], masks[0])


@pytest.mark.parametrize("k", [2, 3])
@pytest.mark.parametrize("n_classes", [None, 2])
def test_autoregressive_property_for_every_mask(n_classes, k):
    d = 6
    net = _net(d, k, hidden=(12, 10), n_classes=n_classes)
    x = torch.nn.functional.one_hot(torch.randint(k, (1, d)), k).double()
    y = None if n_classes is None else torch.tensor([1])
    for m in range(net.n_masks):
        position = torch.argsort(net.orderings[m])
        before = position[None, :] < position[:, None]  # (D, D): j before i
        jac = torch.autograd.functional.jacobian(lambda v, m=m: net.logits(v, y, m), x)
        dependence = jac[0, :, :, 0].abs().sum(dim=(1, 3))  # (D, D): output i, input j
        assert dependence[~before].sum() == 0, f"mask {m} leaks a later input"
        assert dependence[before].sum() > 0
        # the stored masks themselves: no path from an input to an output not after it
        paths = _paths([layer.masks[m] for layer in net.layers])  # (D·U, D·U)
        u = net.units  # units per variable: 1 for binary, else K
        blocks = paths.reshape(d, u, d, u).sum(dim=(1, 3))
        assert blocks[~before].sum() == 0
        assert torch.equal(dependence > 0, (dependence > 0) & (blocks > 0))


def test_loss_draws_one_mask_with_torch_rng():
    net = _net(5, 2, n_masks=4)
    x = torch.randint(2, (6, 5), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        members = [-net.log_prob(x, mask=m) for m in range(4)]
        torch.manual_seed(11)
        losses = [net.loss(x) for _ in range(40)]
        drawn = [next(m for m in range(4) if torch.equal(loss, members[m])) for loss in losses]
        assert set(drawn) == {0, 1, 2, 3}
        torch.manual_seed(11)
        assert all(torch.equal(net.loss(x), loss) for loss in losses), "reproducible"


def _chi_square_p(samples: torch.Tensor, probs: np.ndarray, k: int) -> float:
    d = samples.shape[1]
    index = (samples @ (k ** torch.arange(d - 1, -1, -1))).numpy()  # row of _configs(d, k)
    counts = np.bincount(index, minlength=len(probs))
    expected = probs * len(samples)
    keep = expected >= 5
    obs, exp = counts[keep], expected[keep]
    if (~keep).any():
        obs, exp = np.append(obs, counts[~keep].sum()), np.append(exp, expected[~keep].sum())
    return stats.chisquare(obs, exp * obs.sum() / exp.sum()).pvalue


@pytest.mark.parametrize("label", [None, 1])
def test_sampler_matches_the_ensemble(label):
    d, k, n = 4, 3, 20_000
    net = _net(d, k, n_masks=3, n_classes=None if label is None else 2, seed=2)
    y = None if label is None else torch.full((n,), label)
    samples = net.sample(n, y, generator=torch.Generator().manual_seed(0))
    x = _configs(d, k)
    with torch.no_grad():
        yx = None if label is None else torch.full((len(x),), label)
        probs = net.log_prob(x, yx).exp().numpy()
        member = net.log_prob(x, yx, mask=0).exp().numpy()
    assert _chi_square_p(samples, probs, k) > 1e-4
    # the test has power: sampling from one member alone is rejected
    assert _chi_square_p(samples, member, k) < 1e-6
    assert torch.equal(samples, net.sample(n, y, generator=torch.Generator().manual_seed(0)))


def _two_clusters(n: int = 240, d: int = 6, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    x = (rng.random((n, d)) < np.where(y[:, None] == 1, 0.85, 0.15)).astype(np.int64)
    return x, y


QUICK = {"epochs": 15, "batch_size": 32, "lr": 0.03, "dtype": "float64", "device": "cpu"}


@pytest.mark.parametrize("class_conditional", [False, True])
def test_marginal_log_prob_matches_brute_force(class_conditional):
    x, y = _two_clusters()
    model = MADE(
        [16, 16], n_masks=4, order_agnostic=True, class_conditional=class_conditional, **QUICK
    ).fit(x, y if class_conditional else None)
    prior = model.class_log_prior_ if class_conditional else np.zeros(1)
    rows = x[:4].astype(np.float64)
    rows[0, [1, 3]] = np.nan
    rows[1, [0, 2, 5]] = np.nan
    rows[2, :] = np.nan
    for i, row in enumerate(rows):
        missing = np.flatnonzero(np.isnan(row))
        marginal = model.marginal_log_prob(row[None], random_state=i)[0]
        # the member marginal_log_prob uses for this row and seed
        masks = model._marginal_masks(~np.isnan(row), np.random.default_rng(i))
        filled = np.repeat(np.nan_to_num(row)[None], 2 ** len(missing), axis=0)
        filled[:, missing] = list(itertools.product(range(2), repeat=len(missing)))
        xt = torch.as_tensor(filled, dtype=torch.long)
        with torch.no_grad():
            joint = [
                model.module.log_prob(
                    xt, None if not class_conditional else torch.full((len(xt),), c), masks
                ).numpy()
                + prior[c]
                for c in range(len(prior))
            ]
        assert marginal == pytest.approx(logsumexp(np.stack(joint)), abs=1e-10)
    assert model.marginal_log_prob(rows[2:3])[0] == pytest.approx(0.0, abs=1e-12)
    # several rows at once: each its own member, each a log-probability
    both = model.marginal_log_prob(rows, random_state=0)
    assert both.shape == (4,) and np.all(both <= 0)


def test_training_beats_the_independent_baseline_on_digits():
    data = ptheta.datasets.load("digits-binary")
    baseline = -ptheta.make("independent").fit(data.train).score(data.test.x)
    model = MADE([64], epochs=10, lr=0.01, batch_size=64, device="cpu").fit(data.train)
    nll = -model.score(data.test.x)
    assert nll < baseline - 3.0, (nll, baseline)
    assert model.history_[-1]["train_loss"] < model.history_[0]["train_loss"]


def test_save_load_round_trip_keeps_every_mask():
    x, _ = _two_clusters()
    model = MADE([16, 16], n_masks=5, order_agnostic=True, **QUICK).fit(x)
    arrays, meta = model.get_state()
    loaded = MADE(**model.get_params()).set_state(arrays, meta)
    np.testing.assert_array_equal(loaded.score_samples(x), model.score_samples(x))
    np.testing.assert_array_equal(loaded.sample(9, random_state=1), model.sample(9, random_state=1))
    # the masks come from the saved state, not from re-running the seed
    other = MADE(**{**model.get_params(), "random_state": 99}).set_state(arrays, meta)
    assert torch.equal(other.module.orderings, model.module.orderings)
    np.testing.assert_array_equal(other.score_samples(x), model.score_samples(x))
    fresh = MADE(**{**model.get_params(), "random_state": 99}).fit(x)
    assert not torch.equal(fresh.module.orderings, model.module.orderings)
    # the mask drawn at each step comes from torch's seeded RNG: refitting is reproducible
    again = MADE(**model.get_params()).fit(x)
    np.testing.assert_array_equal(again.score_samples(x), model.score_samples(x))


@pytest.mark.parametrize("hidden", [(32, 24), ()])
def test_saved_state_holds_degrees_not_dense_masks(hidden, tmp_path):
    from safetensors.torch import load_file, save_file

    d, k, m = 20, 2, 16
    net = _net(d, k, hidden=hidden, n_masks=m, seed=3)
    state = net.state_dict()
    floats = {key: v for key, v in state.items() if v.is_floating_point()}
    assert all(key.endswith(("weight", "bias")) for key in floats), "no float mask tensors"
    n_params = sum(p.numel() for p in net.parameters())
    assert sum(v.numel() for v in floats.values()) == n_params
    # the rest is M orderings and hidden degrees: M · (D + ΣH) integers
    assert set(state) - set(floats) == {"orderings", "hidden_degrees"}
    assert state["hidden_degrees"].shape == (m, sum(hidden))
    save_file(state, tmp_path / "w.safetensors")
    size = (tmp_path / "w.safetensors").stat().st_size
    assert size < n_params * 8 + m * (d + sum(hidden)) * 8 + 4096, size
    # reloaded into a network built from another seed: the same ensemble, to the last bit
    other = MADENetwork(d, k, hidden, n_masks=m, order_agnostic=True, seed=99).double()
    assert not torch.equal(other.orderings, net.orderings)
    other.load_state_dict(load_file(tmp_path / "w.safetensors"))
    for a, b in zip(other.layers, net.layers, strict=True):
        assert torch.equal(a.masks, b.masks) and a.masks.dtype == torch.float64
    x = torch.randint(k, (7, d), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(other.log_prob(x), net.log_prob(x))
    draw = [n.sample(9, generator=torch.Generator().manual_seed(1)) for n in (other, net)]
    assert torch.equal(*draw)
    # masks follow the module to another dtype; the saved state stays the same size
    assert other.float().layers[0].masks.dtype == torch.float32


def test_bad_input_is_a_clear_error():
    x, _ = _two_clusters(n=40)
    with pytest.raises(DataError, match="does not model continuous"):
        MADE([8], **QUICK).fit(np.random.default_rng(0).normal(size=(30, 4)))
    for hidden in ([0], [8, -1], [8, 2.5], "8", [True]):
        with pytest.raises(ParameterError, match="hidden"):
            MADE(hidden, **QUICK).fit(x)
    with pytest.raises(ParameterError, match="n_masks"):
        MADE([8], n_masks=0, **QUICK).fit(x)
    with pytest.raises(ParameterError, match="order_agnostic"):
        MADE([8], order_agnostic="yes", **QUICK).fit(x)
    model = MADE(8, **QUICK).fit(x)
    assert len(model.module.layers) == 2  # a number is one hidden layer
    partial = x[:2].astype(np.float64)
    partial[0, 0] = np.nan
    with pytest.raises(CapabilityError, match="order_agnostic=True"):
        model.marginal_log_prob(partial)
    with pytest.raises(DataError, match="NaN"):
        model.score_samples(partial)
    agnostic = MADE(8, order_agnostic=True, **QUICK).fit(x)
    with pytest.raises(DataError, match="shape"):
        agnostic.marginal_log_prob(partial[:, :3])


def test_n_parameters_counts_only_weights_some_mask_uses():
    x, _ = _two_clusters(n=40)
    model = MADE([], **QUICK).fit(x)  # no hidden layer: a masked logistic model
    d, k = 6, 2
    # output i reads input j < i: d(d−1)/2 weights (binary: one input and one logit per
    # variable), plus d biases
    assert model.n_parameters() == d * (d - 1) // 2 + d
    assert np.exp(model.score_samples(_configs(d, k).numpy())).sum() == pytest.approx(1.0)


@pytest.mark.parametrize("n_classes", [None, 3])
def test_binary_log_conditionals_are_the_softmax_of_the_logits(n_classes):
    # the binary fast path (±1 inputs, log σ(s · l)) is the one-hot computation of `logits`
    net = _net(7, 2, hidden=(9, 8), n_classes=n_classes)
    x = torch.randint(2, (11, 7), generator=torch.Generator().manual_seed(1))
    y = None if n_classes is None else torch.randint(n_classes, (11,))
    onehot = torch.nn.functional.one_hot(x, 2).double()
    explicit = net.connectivity(torch.randperm(7), torch.Generator().manual_seed(2))
    with torch.no_grad():
        for mask in [0, 2, explicit]:
            expected = net.logits(onehot, y, mask).log_softmax(-1).gather(-1, x[..., None])
            fast = net.log_conditionals(x, y, mask)
            torch.testing.assert_close(fast, expected.squeeze(-1), rtol=0, atol=1e-12)
            assert fast.std() > 0.5, "large weights: the conditionals are far from uniform"


def test_a_trained_binary_made_stays_autoregressive_and_normalised():
    d = 8
    rng = np.random.default_rng(0)
    x = (rng.random((200, d)) < np.linspace(0.1, 0.9, d)).astype(np.int64)
    x[:, 1::2] ^= x[:, ::2]  # dependence between neighbours, for the network to learn
    model = MADE([24, 24], epochs=3, lr=0.03, batch_size=32, dtype="float64", device="cpu")
    net = model.fit(x).module
    assert model.history_[-1]["train_loss"] < model.history_[0]["train_loss"]
    # every configuration: the trained masked weights still give a normalised p(x)
    assert np.exp(model.score_samples(_configs(d, 2).numpy())).sum() == pytest.approx(1.0)
    # output i depends on input j only for j before i (natural order): autograd Jacobian
    probe = torch.nn.functional.one_hot(torch.as_tensor(x[:16]), 2).double()
    jac = torch.autograd.functional.jacobian(lambda v: net.logits(v, None, 0), probe)
    dependence = jac[:, :, 1, :].abs().sum(dim=(0, 2, 4))  # (D, D): logit of output i, input j
    before = torch.ones(d, d).tril(-1) > 0
    assert dependence[~before].sum() == 0, "an output sees its own or a later input"
    assert (dependence[before] > 0).float().mean() > 0.9
