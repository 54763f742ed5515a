"""Masked linear layers and MADE connectivity: masks, degrees and paths."""

from __future__ import annotations

import functools

import pytest
import torch

from ptheta.nn.masked import MaskedLinear, made_degrees, made_masks


def _paths(masks: list[torch.Tensor]) -> torch.Tensor:
    """Number of paths from each input unit to each output unit, (out, in)."""
    return functools.reduce(lambda acc, m: m @ acc, masks[1:], masks[0])


def _allowed(ordering: torch.Tensor, k_in: int, k_out: int) -> torch.Tensor:
    """True where output unit i may depend on input unit j: var(j) comes before var(i)."""
    position = torch.argsort(ordering)  # position of each variable in the ordering
    pos_in = position.repeat_interleave(k_in)
    pos_out = position.repeat_interleave(k_out)
    return pos_in[None, :] < pos_out[:, None]


@pytest.mark.parametrize("random", [False, True])
@pytest.mark.parametrize(
    ("d", "hidden", "k_in", "k_out"),
    [(5, [], 1, 1), (6, [7], 2, 2), (7, [9, 8, 6], 3, 2), (4, [3, 3], 1, 3), (1, [4], 2, 2)],
)
def test_every_path_respects_the_ordering(d, hidden, k_in, k_out, random):
    g = torch.Generator().manual_seed(d)
    ordering = torch.randperm(d, generator=g)
    degrees = made_degrees(ordering, hidden, g if random else None)
    masks = made_masks(degrees, in_multiplicity=k_in, out_multiplicity=k_out)
    sizes = [d * k_in, *hidden, d * k_out]
    assert [tuple(m.shape) for m in masks] == list(zip(sizes[1:], sizes[:-1], strict=True))
    paths = _paths(masks)
    allowed = _allowed(ordering, k_in, k_out)
    assert paths[~allowed].abs().sum() == 0, "an output sees an input that is not before it"
    if not random and all(h >= d - 1 for h in hidden):
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
    assert torch.equal(layer.state_dict()["masks"], masks)  # masks are saved with weights
    with pytest.raises(ValueError, match="context"):
        layer(x, 0)
    with pytest.raises(ValueError, match="shape"):
        MaskedLinear(5, 4, torch.ones(5, 4))
