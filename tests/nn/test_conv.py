"""Masked convolutions and the gated block: exact causal dependencies, checked by gradients."""

from __future__ import annotations

import pytest
import torch

from ptheta.errors import DataError, ParameterError
from ptheta.nn.conv import GatedBlock, MaskedConv2d, causal_mask, channel_groups

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _dependency(fn, shape: tuple[int, int, int]) -> torch.Tensor:
    """Bool (C, H, W, C, H, W): whether output [c, i, j] of ``fn`` has a non-zero gradient
    with respect to input [c', i', j'] (fn maps (1, C, H, W) → (1, C·m, H, W))."""
    c, h, w = shape
    x = torch.randn(1, *shape, dtype=torch.float64)
    jac = torch.autograd.functional.jacobian(fn, x)[0, :, :, :, 0]  # (C·m, H, W, C, H, W)
    jac = jac.reshape(c, -1, h, w, c, h, w)  # output channels grouped by colour
    return jac.abs().sum(dim=1) > 0


def _raster_before(shape: tuple[int, int, int], include_same: bool) -> torch.Tensor:
    """Bool (C, H, W, C, H, W): input entry (c', i', j') comes before output entry (c, i, j)."""
    c, h, w = shape
    cc, ii, jj = torch.meshgrid(torch.arange(c), torch.arange(h), torch.arange(w), indexing="ij")
    order = (ii * w + jj) * c + cc  # position in raster order, colour within pixel
    out, inp = order[:, :, :, None, None, None], order[None, None, None]
    return inp <= out if include_same else inp < out


def test_masks_of_type_a_and_b():
    a = causal_mask(1, 1, (3, 3), mask_type="A")[0, 0]
    b = causal_mask(1, 1, (3, 3), mask_type="B")[0, 0]
    assert a.tolist() == [[1, 1, 1], [1, 0, 0], [0, 0, 0]]
    assert (b - a).tolist() == [[0, 0, 0], [0, 1, 0], [0, 0, 0]]
    v_a = causal_mask(1, 1, (3, 3), mask_type="A", stack="vertical")[0, 0]
    v_b = causal_mask(1, 1, (3, 3), mask_type="B", stack="vertical")[0, 0]
    assert v_a.tolist() == [[1, 1, 1], [0, 0, 0], [0, 0, 0]]
    assert v_b.tolist() == [[1, 1, 1], [1, 1, 1], [0, 0, 0]]
    h_a = causal_mask(1, 1, (1, 5), mask_type="A", stack="horizontal")[0, 0]
    assert h_a.tolist() == [[1, 1, 0, 0, 0]]


def test_channel_groups_split_each_chunk_alike():
    assert channel_groups(6, 3).tolist() == [0, 0, 1, 1, 2, 2]
    assert channel_groups(10, 2, chunks=2).tolist() == [0, 0, 0, 1, 1] * 2
    with pytest.raises(ParameterError, match="equal chunks"):
        channel_groups(5, 1, chunks=2)


@pytest.mark.parametrize("mask_type", ["A", "B"])
def test_full_masked_conv_sees_exactly_the_causal_window(mask_type):
    shape = (3, 4, 4)  # 3 colours: colour masking at the centre pixel
    torch.manual_seed(0)
    conv = MaskedConv2d(3, 6, 3, mask_type=mask_type, data_channels=3).double()
    dep = _dependency(conv, shape)
    before = _raster_before(shape, include_same=mask_type == "B")
    _, ii, jj = torch.meshgrid(*(torch.arange(s) for s in shape), indexing="ij")
    window = ((ii[:, :, :, None, None, None] - ii[None, None, None]).abs() <= 1) & (
        (jj[:, :, :, None, None, None] - jj[None, None, None]).abs() <= 1
    )
    assert torch.equal(dep, before & window)


def _stack_of_full_convs(n_layers: int) -> torch.nn.Module:
    layers = [MaskedConv2d(1, 4, 3, mask_type="A"), torch.nn.Tanh()]
    for _ in range(n_layers - 2):
        layers += [MaskedConv2d(4, 4, 3), torch.nn.Tanh()]
    layers.append(MaskedConv2d(4, 1, 3))
    return torch.nn.Sequential(*layers).double()


class _GatedStack(torch.nn.Module):
    def __init__(self, n_layers: int, colours: int, kernel_size: int = 3) -> None:
        super().__init__()
        self.blocks = torch.nn.ModuleList(
            [GatedBlock(colours, 4 * colours, kernel_size, mask_type="A", data_channels=colours)]
            + [
                GatedBlock(4 * colours, 4 * colours, kernel_size, data_channels=colours)
                for _ in range(n_layers - 1)
            ]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        v = h = x
        for block in self.blocks:
            v, h = block(v, h)
        return h  # (B, 4C, H, W): colour c in channels 4c..4c+3


def test_stacked_full_masks_have_a_blind_spot_that_the_gated_stacks_do_not():
    # 4 layers of 3×3 reach 4 pixels in every causal direction, so on 5×5 every earlier
    # pixel is in range; the plain stack still misses some (up and to the right)
    shape = (1, 5, 5)
    torch.manual_seed(1)
    before = _raster_before(shape, include_same=False)
    plain = _dependency(_stack_of_full_convs(4), shape)
    assert not (plain & ~before).any()
    blind = before & ~plain
    assert blind.any()
    assert blind[0, 2, 1, 0, 1, 3]  # (1, 3) is up and right of (2, 1): a blind spot
    gated = _dependency(_GatedStack(4, 1).double(), shape)
    assert torch.equal(gated, before)


def test_gated_stack_orders_colours_within_a_pixel():
    shape = (2, 3, 3)
    torch.manual_seed(2)
    dep = _dependency(_GatedStack(3, 2).double(), shape)
    assert torch.equal(dep, _raster_before(shape, include_same=False))


def test_gated_block_label_bias_and_bad_arguments():
    torch.manual_seed(3)
    block = GatedBlock(2, 4, 3, mask_type="A", n_classes=3).double()
    x = torch.randn(2, 2, 4, 4, dtype=torch.float64)
    y0, y1 = torch.zeros(2, dtype=torch.long), torch.ones(2, dtype=torch.long)
    assert not torch.allclose(block(x, x, y0)[1], block(x, x, y1)[1])
    with pytest.raises(DataError, match="pass the labels"):
        block(x, x)
    with pytest.raises(ParameterError, match="odd"):
        MaskedConv2d(1, 1, 2)
    with pytest.raises(ParameterError, match="mask_type"):
        MaskedConv2d(1, 1, 3, mask_type="C")
    with pytest.raises(ParameterError, match="stack"):
        MaskedConv2d(1, 1, 3, stack="diagonal")


def test_mask_is_saved_with_the_layer():
    conv = MaskedConv2d(2, 3, 3, mask_type="A")
    assert torch.equal(conv.state_dict()["mask"], conv.mask)
    out = conv(torch.randn(1, 2, 6, 6))
    assert out.shape == (1, 3, 6, 6)


@pytest.mark.parametrize("mask_type", ["A", "B"])
def test_vertical_and_horizontal_halves_make_the_block_and_rows_are_independent(mask_type):
    torch.manual_seed(0)
    block = GatedBlock(4, 4, 3, mask_type=mask_type, data_channels=2, n_classes=3).double()
    v, h = torch.randn(2, 5, 4, 6, 7, dtype=torch.float64)  # (B, C, H, W) each
    y = torch.tensor([0, 2, 1, 1, 0])
    v_new, h_new = block(v, h, y)
    v_half, link = block.vertical(v, y)
    torch.testing.assert_close(v_half, v_new, rtol=0, atol=0)
    torch.testing.assert_close(block.horizontal(h, link, y), h_new, rtol=0, atol=0)
    # the vertical stack at row i sees rows above i (type A; type B also its input's row i,
    # itself made of rows above i): the sampler computes it once a row
    changed = v.clone()
    changed[:, :, 3 if mask_type == "A" else 4 :] += 1.0
    torch.testing.assert_close(block.vertical(changed, y)[1][:, :, :4], link[:, :, :4])
    # the horizontal stack works row by row: one row alone gives that row's output
    row = block.horizontal(h[:, :, 2:3], link[:, :, 2:3], y)
    torch.testing.assert_close(row, h_new[:, :, 2:3], rtol=1e-12, atol=1e-12)
