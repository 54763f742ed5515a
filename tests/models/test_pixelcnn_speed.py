"""PixelCNN's fast paths equal the plain computations they replace; its presets build."""

from __future__ import annotations

import pytest
import torch

import ptheta.nn.conv as conv
from ptheta.models.pixelcnn import GatedPixelCNN, PixelCNN

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_gate_equals_tanh_times_sigmoid_with_its_gradient():
    # tanh(a) is computed as 2σ(2a) − 1; over the whole range a gate sees, saturation included
    g = torch.Generator().manual_seed(0)
    x = torch.cat([torch.randn(3, 4, 5, 5, generator=g) * s for s in (0.01, 1.0, 30.0)], 1)
    x = x.double().requires_grad_()
    fast, ref = conv.gate(x), conv.gate_reference(x)
    assert fast.shape == (3, 6, 5, 5)
    assert torch.allclose(fast, ref, rtol=0, atol=1e-14)
    weights = torch.randn(fast.shape, generator=g, dtype=torch.float64)
    (grad_fast,) = torch.autograd.grad((fast * weights).sum(), x)
    (grad_ref,) = torch.autograd.grad((ref * weights).sum(), x)
    assert torch.allclose(grad_fast, grad_ref, rtol=0, atol=1e-14)
    # float32 (training): within a few units of rounding of the plain form
    x32 = x.detach().float()
    assert torch.allclose(conv.gate(x32), conv.gate_reference(x32), rtol=0, atol=1e-6)


def test_network_with_the_fast_gate_equals_the_network_with_the_plain_gate(monkeypatch):
    torch.manual_seed(0)
    net = GatedPixelCNN((2, 5, 4), 3, channels=8, n_layers=3, n_classes=2).double()
    x = torch.randint(0, 3, (6, 2, 5, 4), generator=torch.Generator().manual_seed(1))
    y = torch.arange(6) % 2
    fast = net.log_prob(x, y)
    net.zero_grad()
    fast.sum().backward()
    grads_fast = [p.grad.clone() for p in net.parameters()]
    monkeypatch.setattr(conv, "gate", conv.gate_reference)  # GatedBlock looks gate up per call
    ref = net.log_prob(x, y)
    net.zero_grad()
    ref.sum().backward()
    assert not torch.equal(fast, ref)  # the reference path was taken
    assert torch.allclose(fast, ref, rtol=0, atol=1e-12)
    for a, b in zip(grads_fast, (p.grad for p in net.parameters()), strict=True):
        assert torch.allclose(a, b, rtol=0, atol=1e-12)


def test_large_preset_is_the_former_default_and_the_default_is_smaller():
    large = PixelCNN(**PixelCNN.preset("large"))
    default = PixelCNN()
    assert (large.channels, large.n_layers) == (64, 5)
    shape = (1, 28, 28)
    sizes = [
        sum(p.numel() for p in GatedPixelCNN(shape, 2, channels=m.channels, n_layers=m.n_layers)
            .parameters())
        for m in (default, large)
    ]  # fmt: skip
    assert sizes[0] < sizes[1] / 2  # at least twice fewer weights (and FLOPs) per step
