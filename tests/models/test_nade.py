"""NADE: exact normalisation, the autoregressive property, the recursion and the sampler."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from scipy import stats

import ptheta
from ptheta.errors import DataError, ParameterError
from ptheta.models import nade
from ptheta.models.nade import NADE, NADENetwork

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _net(d: int, k: int, hidden: int = 6, n_classes: int | None = None, seed: int = 0):
    """A float64 NADE with a random ordering and large random weights (far from uniform)."""
    torch.manual_seed(seed)
    ordering = torch.randperm(d)
    net = NADENetwork(d, k, hidden, ordering=ordering, n_classes=n_classes).double()
    with torch.no_grad():
        for p in net.parameters():
            p.normal_(0.0, 1.0)
    return net


def _configs(d: int, k: int) -> torch.Tensor:
    return torch.tensor(list(itertools.product(range(k), repeat=d)))


def _chi_square_p(samples: torch.Tensor, probs: torch.Tensor, k: int) -> float:
    """p-value of the sampled configurations against exact probabilities (rare cells pooled)."""
    d = samples.shape[1]
    index = samples @ (k ** torch.arange(d - 1, -1, -1))  # row of _configs(d, k)
    counts = np.bincount(index.numpy(), minlength=len(probs))
    expected = probs.detach().numpy() * len(samples)
    keep = expected >= 5
    obs, exp = counts[keep], expected[keep]
    if (~keep).any():
        obs, exp = np.append(obs, counts[~keep].sum()), np.append(exp, expected[~keep].sum())
    return stats.chisquare(obs, exp * obs.sum() / exp.sum()).pvalue


# logits runs the positions in blocks of nade.BLOCK: 3 splits every network here into
# blocks (the last one partial), 32 keeps each whole.
BLOCKS = pytest.mark.parametrize("block", [3, 32])


@BLOCKS
@pytest.mark.parametrize(("d", "k", "n_classes"), [(10, 2, None), (4, 4, None), (5, 3, 3)])
def test_probabilities_sum_to_one_over_every_configuration(d, k, n_classes, block, monkeypatch):
    monkeypatch.setattr(nade, "BLOCK", block)
    net = _net(d, k, n_classes=n_classes)
    x = _configs(d, k)
    for c in range(n_classes or 1):
        y = None if n_classes is None else torch.full((len(x),), c)
        total = net.log_prob(x, y).detach().exp().sum()
        assert float(total) == pytest.approx(1.0, abs=1e-10)


@torch.no_grad()
def _reference_log_prob(net: NADENetwork, x: torch.Tensor) -> torch.Tensor:
    """The NADE formula with plain loops: a_i recomputed from scratch at every position."""
    out = []
    for row in x.tolist():
        total = 0.0
        order = net.ordering.tolist()
        for i, d in enumerate(order):
            a = net.bias_hidden.clone()
            for j in order[:i]:
                a = a + net.weight_in[j, row[j]]
            logits = torch.stack(
                [
                    net.weight_out[d, k] @ torch.sigmoid(a) + net.bias_out[d, k]
                    for k in range(net.n_categories)
                ]
            )
            total += float(logits[row[d]] - torch.logsumexp(logits, 0))
        out.append(total)
    return torch.tensor(out, dtype=torch.float64)


@BLOCKS
def test_vectorised_log_prob_equals_a_plain_loop(block, monkeypatch):
    monkeypatch.setattr(nade, "BLOCK", block)
    net = _net(8, 3)
    x = torch.randint(3, (7, 8), generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(net.log_prob(x).detach(), _reference_log_prob(net, x))


@BLOCKS
@pytest.mark.parametrize("n_classes", [None, 2])
def test_autoregressive_property_by_jacobian(n_classes, block, monkeypatch):
    monkeypatch.setattr(nade, "BLOCK", block)
    d, k = 7, 3
    net = _net(d, k, n_classes=n_classes)
    x = torch.nn.functional.one_hot(torch.randint(k, (1, d)), k).double()
    y = None if n_classes is None else torch.tensor([1])
    jac = torch.autograd.functional.jacobian(lambda v: net.logits(v, y), x)  # (1,D,K,1,D,K)
    dependence = jac[0, :, :, 0].abs().sum(dim=(1, 3))  # (D, D): output i, input j
    position = torch.argsort(net.ordering)
    before = position[None, :] < position[:, None]  # j before i in the ordering
    assert dependence[~before].sum() == 0
    assert bool((dependence[before] > 0).all()), "every earlier variable should be seen"


@pytest.mark.parametrize("label", [None, 0, 1])
def test_sampler_matches_exact_probabilities(label):
    d, k = 4, 3
    net = _net(d, k, n_classes=None if label is None else 2, seed=3)
    n = 20_000
    y = None if label is None else torch.full((n,), label)
    samples = net.sample(n, y, generator=torch.Generator().manual_seed(0))
    x = _configs(d, k)
    probs = net.log_prob(x, None if label is None else torch.full((len(x),), label)).exp()
    assert _chi_square_p(samples, probs, k) > 1e-4
    again = net.sample(n, y, generator=torch.Generator().manual_seed(0))
    assert torch.equal(samples, again), "the generator is the only source of randomness"


def test_training_beats_the_independent_baseline_on_digits():
    data = ptheta.datasets.load("digits-binary")
    baseline = -ptheta.make("independent").fit(data.train).score(data.test.x)
    model = NADE(32, epochs=6, lr=0.03, batch_size=100, device="cpu").fit(data.train)
    nll = -model.score(data.test.x)
    assert nll < baseline - 3.0, (nll, baseline)
    assert model.history_[-1]["train_loss"] < model.history_[0]["train_loss"]


def test_orderings_and_class_conditional_fit():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 120)
    x = (rng.random((120, 5)) < np.where(y[:, None] == 1, 0.9, 0.1)).astype(np.int64)
    params = {"epochs": 15, "batch_size": 32, "lr": 0.05, "dtype": "float64", "device": "cpu"}
    natural = NADE(4, **params).fit(x)
    assert natural.module.ordering.tolist() == [0, 1, 2, 3, 4]
    shuffled = NADE(4, ordering="random", random_state=3, **params).fit(x)
    assert sorted(shuffled.module.ordering.tolist()) == [0, 1, 2, 3, 4]
    assert shuffled.module.ordering.tolist() != [0, 1, 2, 3, 4]
    given = NADE(4, ordering=[4, 3, 2, 1, 0], **params).fit(x)
    assert given.module.ordering.tolist() == [4, 3, 2, 1, 0]
    cond = NADE(4, class_conditional=True, **params).fit(x, y)
    assert (cond.predict(x) == y).mean() > 0.9
    assert cond.sample(200, y=1, random_state=0).mean() > 0.7


def test_bad_input_is_a_clear_error():
    x = np.random.default_rng(0).integers(0, 2, (30, 4))
    with pytest.raises(DataError, match="does not model continuous"):
        NADE(4, epochs=1, device="cpu").fit(np.random.default_rng(0).normal(size=(30, 4)))
    for hidden in (0, -3, 2.5, True, "8"):
        with pytest.raises(ParameterError, match="hidden"):
            NADE(hidden, epochs=1, device="cpu").fit(x)
    for ordering in ("reverse", [0, 1, 2], [0, 0, 1, 2], "abc"):
        with pytest.raises(ParameterError, match="ordering"):
            NADE(4, ordering=ordering, epochs=1, device="cpu").fit(x)
    with pytest.raises(ParameterError, match="class_conditional"):
        NADE(4, class_conditional="yes", epochs=1, device="cpu").fit(x, x[:, 0])
