"""rbm solver="sgd": the fused PCD-1 loop takes the classical loop's steps, and the split
enumeration of exact log Z equals brute force over both layers."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from scipy.special import expit

from ptheta.models import rbm
from ptheta.models.rbm import RBMNetwork, sgd_fit
from ptheta.train.trainer import TrainConfig


def _classical_pcd1(w, b, c, chains, data, batch, lr, decay, epochs, seed):
    """The textbook PCD-1 loop, one numpy call per quantity (the reference): the chains keep
    their hidden sample from the previous step's negative phase; the same draws in the same
    order as ``sgd_fit`` (epoch permutation; chains' first hidden sample; per step v⁻ then
    the chains' next h)."""
    w, b, c, chains = (a.copy() for a in (w, b, c, chains))
    rng = np.random.default_rng(seed)
    h_chain = None
    for _ in range(epochs):
        shuffled = data[rng.permutation(len(data))]
        if h_chain is None:
            p_h = expit(chains @ w.T + c)
            h_chain = (rng.random(p_h.shape) < p_h).astype(float)
        for lo in range(0, len(data), batch):
            v_pos = shuffled[lo : lo + batch]
            h_pos = expit(v_pos @ w.T + c)
            p_v = expit(h_chain @ w + b)
            v_neg = (rng.random(p_v.shape) < p_v).astype(float)
            h_neg = expit(v_neg @ w.T + c)
            grad_w = h_pos.T @ v_pos / len(v_pos) - h_neg.T @ v_neg / len(v_neg) - decay * w
            w += lr * grad_w
            b += lr * (v_pos.mean(0) - v_neg.mean(0))
            c += lr * (h_pos.mean(0) - h_neg.mean(0))
            h_chain = (rng.random(h_neg.shape) < h_neg).astype(float)
            chains = v_neg
    return w, b, c, chains


@pytest.mark.parametrize(("decay", "uniforms"), [(0.0, 2**18), (0.01, 2**18), (0.0, 130)])
def test_fused_pcd1_steps_equal_the_classical_loop(monkeypatch, decay, uniforms):
    monkeypatch.setattr(rbm, "_UNIFORMS", uniforms)  # 130: the draws of 2 steps at a time
    rng = np.random.default_rng(0)
    data = (rng.random((53, 7)) < 0.4).astype(float)  # 53 = 5 × 10 + 3: a short last batch
    net = RBMNetwork(7, 3, method="pcd", n_chains=6).double()  # 6 chains ≠ 10 rows a batch
    with torch.no_grad():
        for p in (net.W, net.b, net.c):
            p.normal_(0.0, 0.5, generator=torch.Generator().manual_seed(1))
        net.chains.copy_(torch.from_numpy((rng.random((6, 7)) < 0.5).astype(float)))
    start = [t.detach().numpy().copy() for t in (net.W, net.b, net.c, net.chains)]
    config = TrainConfig(lr=0.2, weight_decay=decay, batch_size=10, seed=3, epochs=4)
    history, _ = sgd_fit(net, data, config)
    expected = _classical_pcd1(*start, data, 10, 0.2, decay, 4, seed=3)
    got = [t.detach().numpy() for t in (net.W, net.b, net.c, net.chains)]
    assert len(history) == 4 and history[-1]["step"] == 4 * 6
    for a, e in zip(got, expected, strict=True):
        np.testing.assert_allclose(a, e, rtol=0, atol=1e-12)
    assert not np.allclose(got[0], start[0], atol=1e-3)  # it moved


def test_exact_log_z_with_more_units_than_the_low_bits_equals_brute_force():
    torch.manual_seed(0)
    net = RBMNetwork(3, 12).double()  # 12 hidden units: the 2^12 states split 2^10 × 2^2
    with torch.no_grad():
        for p in (net.W, net.b, net.c):
            p.normal_(0.0, 1.0)
    v = torch.tensor(list(itertools.product([0, 1], repeat=3)), dtype=torch.float64)
    h = torch.tensor(list(itertools.product([0, 1], repeat=12)), dtype=torch.float64)
    with torch.no_grad():
        neg_energy = (v @ net.b)[:, None] + (h @ net.c)[None, :] + v @ net.W.T @ h.T
        brute = float(torch.logsumexp(neg_energy.flatten(), 0))
        assert float(net.exact_log_z("hidden")) == pytest.approx(brute, abs=1e-10)
        assert float(net.exact_log_z("visible")) == pytest.approx(brute, abs=1e-10)


def test_cd_k_steps_equal_the_plain_loop():
    rng = np.random.default_rng(1)
    data = (rng.random((25, 5)) < 0.5).astype(float)
    net = RBMNetwork(5, 3, method="cd", gibbs_steps=2).double()
    with torch.no_grad():
        for p in (net.W, net.b, net.c):
            p.normal_(0.0, 0.5, generator=torch.Generator().manual_seed(2))
    w, b, c = (t.detach().numpy().copy() for t in (net.W, net.b, net.c))
    config = TrainConfig(lr=0.1, weight_decay=0.0, batch_size=10, seed=4, epochs=3)
    sgd_fit(net, data, config)
    draws = np.random.default_rng(4)  # CD-2 from each batch: h, v, h, v, then the step
    for _ in range(3):
        shuffled = data[draws.permutation(len(data))]
        for lo in range(0, len(data), 10):
            v_pos = shuffled[lo : lo + 10]
            v = v_pos
            for _ in range(2):
                p_h = expit(v @ w.T + c)
                h = (draws.random(p_h.shape) < p_h).astype(float)
                p_v = expit(h @ w + b)
                v = (draws.random(p_v.shape) < p_v).astype(float)
            h_pos, h_neg = expit(v_pos @ w.T + c), expit(v @ w.T + c)
            w += 0.1 * (h_pos.T @ v_pos / len(v_pos) - h_neg.T @ v / len(v))
            b += 0.1 * (v_pos.mean(0) - v.mean(0))
            c += 0.1 * (h_pos.mean(0) - h_neg.mean(0))
    np.testing.assert_allclose(net.W.detach().numpy(), w, atol=1e-12)
    np.testing.assert_allclose(net.b.detach().numpy(), b, atol=1e-12)
    np.testing.assert_allclose(net.c.detach().numpy(), c, atol=1e-12)
