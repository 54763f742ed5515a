"""Row LSTM and Diagonal BiLSTM layers: the paper's equations, pixel by pixel, and causality."""

from __future__ import annotations

import pytest
import torch

from ptheta.errors import DataError
from ptheta.nn.conv import channel_groups
from ptheta.nn.recurrent import DiagonalBiLSTM, RowLSTM, lstm_cell, skew, unskew

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _randomised(layer: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """The layer in float64 with every weight random and large (far from its init)."""
    g = torch.Generator().manual_seed(seed)
    layer = layer.double()
    with torch.no_grad():
        for p in layer.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype))
    return layer


def test_lstm_cell_is_torchs_lstm_cell():
    # torch's LSTMCell on the gates themselves (identity input weights, no recurrent ones)
    f = 3
    g = torch.Generator().manual_seed(0)
    gates, c = torch.randn(5, 4 * f, generator=g), torch.randn(5, f, generator=g)
    i, fg, o, u = gates.chunk(4, dim=1)
    cell = torch.nn.LSTMCell(4 * f, f)
    with torch.no_grad():
        cell.weight_ih.copy_(torch.eye(4 * f))
        cell.weight_hh.zero_(), cell.bias_ih.zero_(), cell.bias_hh.zero_()
        # torch orders the gates (i, f, g, o)
        h_ref, c_ref = cell(torch.cat([i, fg, u, o], dim=1), (torch.zeros(5, f), c))
    h, c_new = lstm_cell(gates, c)
    torch.testing.assert_close((h, c_new), (h_ref, c_ref))
    h0, c0 = lstm_cell(gates, None)
    torch.testing.assert_close((h0, c0), lstm_cell(gates, torch.zeros(5, f)))


@pytest.mark.parametrize("shape", [(2, 5), (4, 3), (1, 1)])
def test_skew_puts_each_diagonal_in_one_column_and_unskew_inverts_it(shape):
    h, w = shape
    x = torch.randn(2, 3, h, w, dtype=torch.float64)
    s = skew(x)
    assert s.shape == (2, 3, h, h + w - 1)
    for i in range(h):
        for d in range(h + w - 1):
            inside = 0 <= d - i < w
            expected = x[:, :, i, d - i] if inside else torch.zeros(2, 3, dtype=x.dtype)
            assert torch.equal(s[:, :, i, d], expected)
    assert torch.equal(unskew(s, w), x)


# --------------------------------------------------------------------------- pixel loops
def _conv_row(weight: torch.Tensor, rows: torch.Tensor, j: int) -> torch.Tensor:
    """Σ_t weight[:, :, t] · rows[:, :, j − s + t] with zeros outside: (B, O)."""
    k = weight.shape[-1]
    s = k // 2
    out = 0
    for t in range(k):
        if 0 <= j - s + t < rows.shape[-1]:
            out = out + rows[:, :, j - s + t] @ weight[:, :, t].T
    return out


def _row_lstm_reference(layer: RowLSTM, x: torch.Tensor) -> torch.Tensor:
    """The Row LSTM computed pixel by pixel from the paper's equations (section 3.1)."""
    b, f, h, w = x.shape
    w_is = (layer.input_to_state.weight * layer.input_to_state.mask)[:, :, 0]  # (4F, F, k)
    w_ss = layer.state_to_state.weight  # (4F, F, k)
    hidden = torch.zeros(b, f, h, w, dtype=x.dtype)
    cells = torch.zeros(b, f, h, w, dtype=x.dtype)
    for i in range(h):
        for j in range(w):
            gates = _conv_row(w_is, x[:, :, i], j) + layer.input_to_state.bias
            c_above = cells[:, :, i - 1, j] if i else torch.zeros(b, f, dtype=x.dtype)
            if i:
                gates = gates + _conv_row(w_ss, hidden[:, :, i - 1], j)
            i_g, f_g, o_g, g_g = gates.chunk(4, dim=1)
            cells[:, :, i, j] = f_g.sigmoid() * c_above + i_g.sigmoid() * g_g.tanh()
            hidden[:, :, i, j] = o_g.sigmoid() * cells[:, :, i, j].tanh()
    return x + layer.out(hidden)


def _diagonal_reference(layer: DiagonalBiLSTM, x: torch.Tensor, context: torch.Tensor):
    """The Diagonal BiLSTM pixel by pixel (section 3.2): a forward LSTM whose state at (i, j)
    comes from (i − 1, j) and (i, j − 1) (memory from the left), a mirrored one from (i − 1,
    j) and (i, j + 1) (memory from the right) that also reads the context, shifted down one
    row."""
    b, f, h, w = x.shape

    def scan(inputs, w_state, columns):
        hidden = torch.zeros(b, f, h + 1, w + 2, dtype=x.dtype)  # zero border: row −1, j ± 1
        cells = torch.zeros_like(hidden)
        step = 1 if columns[0] == 0 else -1
        for i in range(h):
            for j in columns:
                gates = inputs[:, :, i, j]
                gates = gates + hidden[:, :, i, j + 1] @ w_state[:, :, 0].T  # (i − 1, j)
                gates = gates + hidden[:, :, i + 1, j + 1 - step] @ w_state[:, :, 1].T  # left
                i_g, f_g, o_g, g_g = gates.chunk(4, dim=1)
                c = f_g.sigmoid() * cells[:, :, i + 1, j + 1 - step] + i_g.sigmoid() * g_g.tanh()
                cells[:, :, i + 1, j + 1] = c
                hidden[:, :, i + 1, j + 1] = o_g.sigmoid() * c.tanh()
        return hidden[:, :, 1:, 1:-1]

    def pointwise(weight, t, bias=None):  # a 1×1 convolution, one pixel at a time
        out = torch.einsum("oi,bihw->bohw", weight[:, :, 0, 0], t)
        return out if bias is None else out + bias[:, None, None]

    forward_weight = layer.forward_input.weight * layer.forward_input.mask
    ahead_in = pointwise(forward_weight, x, layer.forward_input.bias)
    ahead = scan(ahead_in, layer.forward_state.weight, range(w))
    back_in = pointwise(layer.backward_input.weight, x, layer.backward_input.bias)
    back_in = back_in + pointwise(layer.backward_context.weight, context)
    back = scan(back_in, layer.backward_state.weight, range(w - 1, -1, -1))
    shifted = torch.zeros_like(back)
    shifted[:, :, 1:] = back[:, :, :-1]
    return x + layer.out(ahead + shifted)


@pytest.mark.parametrize("shape", [(3, 4), (4, 2), (1, 3)])
def test_row_lstm_follows_the_papers_equations_pixel_by_pixel(shape):
    layer = _randomised(RowLSTM(4, 3, data_channels=2), seed=1)
    x = torch.randn(2, 4, *shape, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(layer(x), _row_lstm_reference(layer, x))


@pytest.mark.parametrize("shape", [(3, 4), (4, 2), (1, 3), (3, 1)])
def test_diagonal_bilstm_follows_the_papers_equations_pixel_by_pixel(shape):
    layer = _randomised(DiagonalBiLSTM(4, context_channels=3, data_channels=2), seed=2)
    x = torch.randn(2, 4, *shape, dtype=torch.float64)
    context = torch.randn(2, 3, *shape, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(
            layer(x, context=context), _diagonal_reference(layer, x, context)
        )


# --------------------------------------------------------------------------- causality
def _dependency(layer: torch.nn.Module, channels: int, shape: tuple[int, int]) -> torch.Tensor:
    """Bool (F, H, W, F, H, W): output [m, i, j] has a non-zero gradient with respect to
    input [m', i', j']."""
    x = torch.randn(1, channels, *shape, dtype=torch.float64)
    jac = torch.autograd.functional.jacobian(lambda t: layer(t), x)
    return jac[0, :, :, :, 0] != 0


@pytest.mark.parametrize("kind", ["row", "diagonal"])
def test_a_layer_sees_the_past_and_its_own_colour_groups_only(kind):
    # features of colour c at pixel (i, j) may use inputs of pixels before (i, j) and
    # colour groups ≤ c at (i, j) itself (type B): never later pixels or later colours
    channels, (h, w) = 6, (4, 5)
    layer = (
        RowLSTM(channels, 3, data_channels=3)
        if kind == "row"
        else DiagonalBiLSTM(6, data_channels=3)
    )
    dep = _dependency(_randomised(layer, seed=3), channels, (h, w))
    group = channel_groups(channels, 3)
    ii, jj = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    order = (ii * w + jj)[None].expand(channels, h, w)  # raster position
    colour = group[:, None, None].expand(channels, h, w)
    out_pos, in_pos = order[:, :, :, None, None, None], order[None, None, None]
    out_col, in_col = colour[:, :, :, None, None, None], colour[None, None, None]
    allowed = (in_pos < out_pos) | ((in_pos == out_pos) & (in_col <= out_col))
    assert not (dep & ~allowed).any()
    assert dep[:, -1, -1].any(dim=0).sum() > h * w // 2  # and it does see much of the past


def test_row_lstm_sees_a_cone_and_the_diagonal_bilstm_the_whole_past():
    h, w = 4, 5
    row = _dependency(_randomised(RowLSTM(2, 3), seed=4), 2, (h, w)).any(dim=3).any(dim=0)
    diagonal = _dependency(_randomised(DiagonalBiLSTM(2), seed=4), 2, (h, w))
    diagonal = diagonal.any(dim=3).any(dim=0)  # (H, W, H, W): pixel to pixel
    ii, jj = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    up = ii[:, :, None, None] - ii[None, None]
    right = jj[None, None] - jj[:, :, None, None]
    # Row LSTM, s = 1: row i − d from column j − (d + 1) to j + d
    assert torch.equal(row, (up >= 0) & (right >= -(up + 1)) & (right <= up))
    assert torch.equal(diagonal, (up > 0) | ((up == 0) & (right <= 0)))


def test_the_diagonal_bilstms_context_is_read_from_the_rows_above_only():
    # the mirrored direction, shifted down a row, reads the context up and to the right
    h, w = 4, 5
    layer = _randomised(DiagonalBiLSTM(2, context_channels=3), seed=5)
    x = torch.randn(1, 2, h, w, dtype=torch.float64)
    context = torch.randn(1, 3, h, w, dtype=torch.float64)
    jac = torch.autograd.functional.jacobian(lambda c: layer(x, context=c), context)
    dep = (jac[0, :, :, :, 0] != 0).any(dim=3).any(dim=0)  # (H, W, H, W)
    ii, jj = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    up = ii[:, :, None, None] - ii[None, None]
    right = jj[None, None] - jj[:, :, None, None]
    assert torch.equal(dep, (up >= 1) & (right >= 0))
    with pytest.raises(DataError, match="pass context"):
        layer(x)


def test_a_conditional_layer_needs_its_labels():
    layer = RowLSTM(4, 3, n_classes=3)
    x = torch.randn(2, 4, 3, 3)
    with pytest.raises(DataError, match="pass the labels"):
        layer(x)
    assert layer(x, torch.tensor([0, 2])).shape == x.shape
    diagonal = DiagonalBiLSTM(4, n_classes=3)
    a, b = diagonal(x, torch.tensor([0, 0])), diagonal(x, torch.tensor([0, 1]))
    assert torch.equal(a[0], b[0]) and not torch.equal(a[1], b[1])
