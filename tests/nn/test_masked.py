"""Masked linear layers and MADE connectivity: masks, degrees and paths."""

from __future__ import annotations

import functools

import pytest
import torch

from ptheta.nn.masked import MaskedLinear, made_degrees, made_masks, reuse_masked_weights


def _paths(masks: list[torch.Tensor]) -> torch.Tensor:
    """Number of paths from each input unit to each output unit, (out, in)."""
    return functools.reduce(lambda acc, m: m @ acc, masks[1:], masks[0])


def _allowed(ordering: torch.Tensor, k_in: int, k_out: int) -> torch.Tensor:
    """True where output unit i may depend on input unit j: var(j) comes before var(i)."""
    position = torch.argsort(ordering)  # position of each variable in the ordering
    pos_in = position.repeat_interleave(k_in)
    pos_out = position.repeat_interleave(k_out)
    return pos_in[None, :] < pos_out[:, None]


@pytest.mark.parametrize("random", [False, True, "spread"])
@pytest.mark.parametrize(
    ("d", "hidden", "k_in", "k_out"),
    [
        (5, [], 1, 1),
        (6, [7], 2, 2),
        (7, [9, 8, 6], 3, 2),
        (4, [3, 3], 1, 3),
        (1, [4], 2, 2),
        (12, [4, 3], 1, 2),
    ],
)
def test_every_path_respects_the_ordering(d, hidden, k_in, k_out, random):
    g = torch.Generator().manual_seed(d)
    ordering = torch.randperm(d, generator=g)
    if random == "spread":
        degrees = made_degrees(ordering, hidden, spread=True)
    else:
        degrees = made_degrees(ordering, hidden, g if random else None)
    masks = made_masks(degrees, in_multiplicity=k_in, out_multiplicity=k_out)
    sizes = [d * k_in, *hidden, d * k_out]
    assert [tuple(m.shape) for m in masks] == list(zip(sizes[1:], sizes[:-1], strict=True))
    paths = _paths(masks)
    allowed = _allowed(ordering, k_in, k_out)
    assert paths[~allowed].abs().sum() == 0, "an output sees an input that is not before it"
    if random is not True and all(h >= d - 1 for h in hidden):
        # evenly spread degrees in wide enough layers connect every allowed pair
        assert bool((paths[allowed] > 0).all())


def test_degrees_follow_the_ordering_and_stay_in_range():
    g = torch.Generator().manual_seed(0)
    ordering = torch.tensor([3, 0, 4, 1, 2])
    for generator in (None, g):
        degrees = made_degrees(ordering, [50, 40], generator)
        assert degrees[0].tolist() == [2, 4, 5, 1, 3]  # variable 3 first: degree 1
        low = 1
        for hidden in degrees[1:]:
            assert hidden.min() >= low and hidden.max() <= 4
            low = int(hidden.min())
    even = made_degrees(torch.arange(5), [8], None)[1]
    assert sorted(set(even.tolist())) == [1, 2, 3, 4]
    with pytest.raises(ValueError, match="permutation"):
        made_degrees(torch.tensor([0, 0, 1]), [4])


def test_masked_linear_masks_weights_and_their_gradients():
    torch.manual_seed(0)
    masks = (torch.rand(3, 4, 5) < 0.5).double()
    layer = MaskedLinear(5, 4, masks, context_features=2).double()
    x, ctx = torch.randn(6, 5, dtype=torch.float64), torch.randn(6, 2, dtype=torch.float64)
    for m in range(3):
        expected = x @ (layer.weight * masks[m]).T + layer.bias + ctx @ layer.context.weight.T
        torch.testing.assert_close(layer(x, m, ctx), expected)
    torch.testing.assert_close(layer(x, masks[1], ctx), layer(x, 1, ctx))
    layer(x, 2, ctx).sum().backward()
    assert layer.weight.grad[masks[2] == 0].abs().sum() == 0
    assert layer.weight.grad[masks[2] == 1].abs().min() > 0
    with pytest.raises(ValueError, match="context"):
        layer(x, 0)
    with pytest.raises(ValueError, match="shape"):
        MaskedLinear(5, 4, torch.ones(5, 4))
    with pytest.raises(ValueError, match="shape"):
        layer.set_masks(torch.ones(2, 5, 4))


def test_masks_stay_out_of_the_state_dict_but_follow_dtype_and_device():
    torch.manual_seed(0)
    masks = (torch.rand(3, 4, 5) < 0.5).double()
    layer = MaskedLinear(5, 4, masks)
    assert layer.masks.dtype == torch.float32
    layer = layer.double()
    assert layer.masks.dtype == torch.float64 and torch.equal(layer.masks, masks)
    state = layer.state_dict()
    assert set(state) == {"weight", "bias"}, "dense masks must not weigh on saved files"
    # a layer built with other masks keeps its own; set_masks replaces them
    other = MaskedLinear(5, 4, torch.ones(4, 5)).double()
    other.load_state_dict(state)
    assert torch.equal(other.masks, torch.ones(1, 4, 5, dtype=torch.float64))
    other.set_masks(masks.bool())
    assert other.masks.dtype == torch.float64
    x = torch.randn(6, 5, dtype=torch.float64)
    assert torch.equal(other(x, 2), layer(x, 2))
    # a state dict saved when masks were in it still loads, with its masks
    legacy = MaskedLinear(5, 4, torch.ones(4, 5)).double()
    legacy.load_state_dict({**state, "masks": masks})
    assert torch.equal(legacy.masks, masks) and torch.equal(legacy(x, 1), layer(x, 1))


def test_reused_masked_weights_are_bit_identical_and_dropped_on_exit():
    torch.manual_seed(0)
    masks = (torch.rand(3, 4, 5) < 0.5).double()
    net = torch.nn.Sequential(MaskedLinear(5, 4, masks), MaskedLinear(4, 4, masks[:, :, :4]))
    net = net.double()
    x = torch.randn(6, 5, dtype=torch.float64)
    plain = [net[1](net[0](x, m), m) for m in range(3)]
    with torch.no_grad(), reuse_masked_weights(net):
        for _ in range(2):  # the second round reads the products computed in the first
            assert all(torch.equal(net[1](net[0](x, m), m), plain[m]) for m in range(3))
        assert len(net[0]._reused) == 3
    assert net[0]._reused is None and net[1]._reused is None
    with torch.no_grad():
        net[0].weight.mul_(2.0)  # after the block, new weights are seen at once
    # F.linear (one fused addmm) against matmul then add: equal up to rounding only
    expected = x @ (net[0].weight * masks[1]).T + net[0].bias
    torch.testing.assert_close(net[0](x, 1), expected, rtol=1e-12, atol=1e-12)


def test_spread_degrees_let_late_outputs_see_the_whole_prefix():
    """64 units for 784 variables: sequential degrees are 1..64, so no output sees past
    variable 64; spread degrees run from 1 to 783 and the last output sees every one."""
    ordering = torch.arange(784)
    sequential = made_degrees(ordering, [64])[1]
    spread = made_degrees(ordering, [64], spread=True)[1]
    assert sequential.tolist() == list(range(1, 65))
    assert spread.min() == 1 and spread.max() == 783 and bool((spread.diff() > 0).all())
    for degrees, seen in ((sequential, 64), (spread, 783)):
        masks = made_masks([made_degrees(ordering, [])[0], degrees])
        last = _paths(masks)[-1] > 0  # the inputs that reach the last output
        assert int(last.sum()) == seen
    wide = made_degrees(ordering[:5], [9], spread=True)[1]  # wide enough: unchanged
    assert torch.equal(wide, made_degrees(ordering[:5], [9])[1])
