"""The fast paths of the flow layers compute what the general ones do.

A vector coupling whose mask alternates over an even number of features splits x by
strided views and interleaves the halves again, instead of gathering and scattering by
index; MADEAffine's density pass computes −α directly. Both must give the same values,
log-determinants and gradients as the general computation.
"""

from __future__ import annotations

import copy as copy_module

import pytest
import torch

from ptheta.nn.flows import MADEAffine, alternating_mask, channel_coupling, vector_coupling


def _perturbed(layer: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():  # nets start at zero (the identity), which would test nothing
        for p in layer.parameters():
            p.add_(0.5 * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return layer.double()


def _gathered(layer):
    """A copy of the layer on the general (index gather / scatter) path."""
    copy = copy_module.deepcopy(layer)
    copy._slices = None
    return copy


MASKS = {
    "alternating, even": alternating_mask(6, 0),
    "alternating, odd first": alternating_mask(6, 1),
    "first half": torch.tensor([1.0, 1, 1, 0, 0, 0]),  # as a channel mask
    "second half": torch.tensor([0.0, 0, 1, 1, 1, 1]),  # blocks of unequal size
}


@pytest.mark.parametrize("name", MASKS)
@pytest.mark.parametrize("context", [0, 3])
def test_sliced_coupling_equals_the_gathered_one(name, context):
    mask = MASKS[name]
    fast = _perturbed(vector_coupling(mask, [8], context_features=context))
    assert fast._slices is not None, "a regular mask takes the fast path"
    slow = _gathered(fast)
    x = torch.randn(5, len(mask), dtype=torch.float64, requires_grad=True)
    ctx = torch.eye(3, dtype=torch.float64)[torch.tensor([0, 1, 2, 1, 0])] if context else None
    outs = []
    for layer in (fast, slow):
        y, logdet = layer(x, ctx)
        back, logdet_inv = layer.inverse(y, ctx)
        # gradients for the inputs and for every parameter
        loss = (y**2).sum() + logdet.sum()
        grads = torch.autograd.grad(loss, [x, *layer.parameters()])
        outs.append((y, logdet, back, logdet_inv, *grads))
    for a, b in zip(*outs, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-13, atol=1e-13)
    y, keep = outs[0][0], mask.bool()
    assert torch.equal(y[:, keep], x[:, keep]), "the conditioning entries pass unchanged"
    assert (y[:, ~keep] - x[:, ~keep]).abs().min() > 1e-6, "the others are transformed"


def test_sliced_channel_coupling_on_images_equals_the_gathered_one():
    layer = _perturbed(channel_coupling(4, 1, 6))
    assert layer._slices is not None
    x = torch.randn(3, 4, 2, 2, dtype=torch.float64)
    for a, b in zip(layer(x), _gathered(layer)(x), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("mask", [alternating_mask(5, 0), torch.tensor([1.0, 0, 0, 1])])
def test_other_masks_keep_the_general_path(mask):
    layer = _perturbed(vector_coupling(mask, [8]))
    assert layer._slices is None
    x = torch.randn(4, len(mask), dtype=torch.float64)
    y, _ = layer(x)
    keep = mask.bool()
    assert torch.equal(y[:, keep], x[:, keep])
    back, _ = layer.inverse(y)
    torch.testing.assert_close(back, x, rtol=1e-12, atol=1e-12)


def test_a_coupling_reloaded_with_another_mask_follows_it():
    a = vector_coupling(alternating_mask(4, 0), [8])
    b = vector_coupling(alternating_mask(4, 1), [8])
    b.load_state_dict(a.state_dict())
    assert b._slices == a._slices and torch.equal(b.cond, a.cond)


def test_made_affine_density_pass_is_the_closed_form_of_its_parameters():
    layer = _perturbed(MADEAffine(5, [16, 16], ordering=torch.tensor([3, 0, 4, 1, 2])), seed=1)
    x = torch.randn(7, 5, dtype=torch.float64)
    z, logdet = layer(x)
    mu, alpha = layer._params(x, None)
    assert alpha.abs().max() > 0.1, "a non-trivial scale"
    torch.testing.assert_close(z, (x - mu) * torch.exp(-alpha), rtol=1e-14, atol=1e-14)
    torch.testing.assert_close(logdet, -alpha.sum(1), rtol=1e-14, atol=1e-14)
