"""Tests of the diffusion denoisers: time embedding, U-Net shapes and dependence structure, MLP."""

from __future__ import annotations

import math

import pytest
import torch

from ptheta.nn.unet import MLPDenoiser, TimeEmbedding, UNet, sinusoidal_embedding


def test_sinusoidal_embedding_follows_its_formula():
    t = torch.tensor([0.0, 3.0, 250.0], dtype=torch.float64)
    emb = sinusoidal_embedding(t, 6)
    assert emb.shape == (3, 6) and emb.dtype == torch.float64
    torch.testing.assert_close(emb[0], torch.tensor([0.0, 0, 0, 1, 1, 1], dtype=torch.float64))
    freqs = torch.tensor([1.0, 10_000 ** (-1 / 3), 10_000 ** (-2 / 3)], dtype=torch.float64)
    torch.testing.assert_close(emb[1, :3], torch.sin(3 * freqs))
    torch.testing.assert_close(emb[1, 3:], torch.cos(3 * freqs))
    odd = sinusoidal_embedding(torch.arange(1000), 7)  # integer steps, odd width
    assert odd.shape == (1000, 7) and torch.all(odd[:, -1] == 0)
    # every step of a 1000-step schedule gets its own embedding
    assert torch.cdist(odd, odd).add(torch.eye(1000)).min() > 1e-3


def test_time_embedding_shape_and_dependence_on_t():
    torch.manual_seed(0)
    emb = TimeEmbedding(8).double()
    out = emb(torch.tensor([1, 2, 2]))
    assert out.shape == (3, 8) and out.dtype == torch.float64
    assert not torch.allclose(out[0], out[1])
    # rows of one batched matmul: BLAS promises equal inputs equal outputs only to rounding
    torch.testing.assert_close(out[1], out[2], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 2, 3), (3, 5, 7), (2, 1, 1)])
def test_unet_keeps_the_shape_for_even_and_odd_sizes(shape):
    torch.manual_seed(0)
    net = UNet(shape[0], hidden=4, emb_dim=6).double()
    x = torch.randn(3, *shape, dtype=torch.float64)
    out = net(x, torch.randn(3, 6, dtype=torch.float64))
    assert out.shape == x.shape and torch.isfinite(out).all()


def test_unet_examples_are_independent_and_the_field_covers_the_image():
    torch.manual_seed(0)
    net = UNet(1, hidden=4, emb_dim=6).double()
    x = torch.randn(2, 1, 8, 8, dtype=torch.float64, requires_grad=True)
    emb = torch.randn(2, 6, dtype=torch.float64)
    net(x, emb)[0, 0, 0, 0].backward()
    # GroupNorm, not BatchNorm: example 0's output ignores example 1
    assert torch.all(x.grad[1] == 0)
    # two resolutions reach from one corner to the other
    assert x.grad[0, 0, 7, 7].abs() > 0


def test_unet_and_mlp_use_the_embedding():
    torch.manual_seed(0)
    unet = UNet(1, hidden=4, emb_dim=6).double()
    x = torch.randn(2, 1, 3, 4, dtype=torch.float64)
    e1, e2 = torch.randn(2, 6, dtype=torch.float64), torch.randn(2, 6, dtype=torch.float64)
    assert not torch.allclose(unet(x, e1), unet(x, e2))
    mlp = MLPDenoiser(5, hidden=8, n_blocks=2, emb_dim=6).double()
    v = torch.randn(2, 5, dtype=torch.float64)
    assert mlp(v, e1).shape == (2, 5)
    assert not torch.allclose(mlp(v, e1), mlp(v, e2))
    # rows are processed independently: a batch of one gives the same row
    torch.testing.assert_close(mlp(v[:1], e1[:1]), mlp(v, e1)[:1])
    assert math.isfinite(float(mlp(v, e1).detach().sum()))


@pytest.mark.parametrize("shape", [(1, 8, 8), (3, 5, 7)])
def test_channels_last_layout_gives_the_same_outputs_and_gradients(shape):
    torch.manual_seed(0)
    fast = UNet(shape[0], hidden=8, emb_dim=6).double()
    plain = UNet(shape[0], hidden=8, emb_dim=6, channels_last=False).double()
    plain.load_state_dict(fast.state_dict())
    for p in fast.conv_out.parameters():  # not the zero output layer of a fresh denoiser
        p.data.normal_(0, 0.3)
    plain.load_state_dict(fast.state_dict())
    x = torch.randn(4, *shape, dtype=torch.float64)
    emb = torch.randn(4, 6, dtype=torch.float64)
    out_fast, out_plain = fast(x, emb), plain(x, emb)
    assert out_fast.abs().max() > 0.1
    torch.testing.assert_close(out_fast, out_plain, rtol=1e-12, atol=1e-12)
    out_fast.square().sum().backward()
    out_plain.square().sum().backward()
    for (name, a), b in zip(fast.named_parameters(), plain.parameters(), strict=True):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-10, atol=1e-12, msg=name)
    # the layers after conv_in really ran channels last (the layout, not the values)
    seen = []
    fast.down1.conv1.register_forward_hook(lambda m, i, o: seen.append(o))
    fast(x, emb)
    assert seen[0].is_contiguous(memory_format=torch.channels_last)
    assert not seen[0].is_contiguous()
