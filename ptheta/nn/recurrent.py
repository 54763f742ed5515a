"""Recurrent layers over images in raster order: PixelRNN's Row LSTM and Diagonal BiLSTM."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ptheta.errors import DataError
from ptheta.nn.conv import MaskedConv2d

# A Row LSTM's state carried from one row to the next: the row's memory cells c (B, F, W)
# and the state-to-state term h ⊛ K_ss that the row below adds to its gates (B, 4F, W).
Carry = tuple[Tensor, Tensor]


def lstm_cell(gates: Tensor, c: Tensor | None) -> tuple[Tensor, Tensor]:
    """One LSTM update from pre-activations ``gates`` = [i, f, o, g] along dim 1.

    c' = σ(f) ⊙ c + σ(i) ⊙ tanh(g) and h = σ(o) ⊙ tanh(c'), elementwise, so that channel
    m of h and c' depends on channel m of each gate block only (which keeps the channel
    groups of masked convolutions). ``c`` None is a zero memory.

    Arguments:
        gates: (B, 4F, ...).
        c: (B, F, ...) or None.

    Returns:
        (h, c'), each (B, F, ...).

    Example:
        >>> import torch
        >>> from ptheta.nn.recurrent import lstm_cell
        >>> h, c = lstm_cell(torch.zeros(2, 12, 5), None)
        >>> h.shape, float(c.abs().max())
        (torch.Size([2, 3, 5]), 0.0)
    """
    i, f, o, g = gates.chunk(4, dim=1)
    c_new = torch.sigmoid(i) * torch.tanh(g)
    if c is not None:
        c_new = torch.sigmoid(f) * c + c_new
    return torch.sigmoid(o) * torch.tanh(c_new), c_new


class _Gated(nn.Module):
    """What both layers share: a label bias on the gates, a forget-gate bias of 1 and the
    residual 1×1 output convolution (masked by colour)."""

    def __init__(self, channels: int, n_gates: int, data_channels: int, n_classes: int | None):
        super().__init__()
        self.channels = channels
        self.out = MaskedConv2d(
            channels, channels, 1, stack="horizontal", data_channels=data_channels
        )
        self.label_bias = nn.Embedding(n_classes, n_gates * channels) if n_classes else None

    def _label_bias(self, y: Tensor | None) -> Tensor | None:
        """(B, n_gates·F, 1, 1), or None for an unconditional layer."""
        if self.label_bias is None:
            return None
        if y is None:
            raise DataError("this layer is class-conditional: pass the labels y")
        return self.label_bias(y)[:, :, None, None]

    def _classes(self) -> str:
        return "" if self.label_bias is None else f", n_classes={self.label_bias.num_embeddings}"


def _open_forget_gates(conv: nn.Conv2d) -> None:
    """Forget-gate biases of 1 (blocks [i, f, o, g]): memories start by being kept."""
    with torch.no_grad():
        conv.bias.chunk(4)[1].fill_(1.0)


class RowLSTM(_Gated):
    """One Row LSTM layer (van den Oord et al. 2016, section 3.1), with a residual output.

    Each row is computed from the row above in one step, vectorised over the columns:
    the gates of pixel (i, j) are an input-to-state term, a 1×k convolution of the layer's
    input along row i masked to columns ≤ j (type B: the input at (i, j) already excludes
    pixel (i, j) itself, and colour groups are kept), plus a state-to-state term, a 1×k
    convolution of the hidden states h of row i − 1 around column j. Then an LSTM update
    (:func:`lstm_cell`) and ``x + out(h)`` with a colour-masked 1×1 ``out``.

    So h at (i, j) sees the input at row i − d, columns j − s(d + 1) … j + s·d (s = k // 2):
    a cone that widens by s columns per row upwards, the *triangular* receptive field of
    the paper, which misses pixels far to the right in the rows just above. Every term
    comes from earlier pixels, so a stack of these layers is still exactly autoregressive.

    Shapes: ``forward(x, y)`` takes x (B, F, H, W) and labels y (B,) or None and returns
    (B, F, H, W). A sampler works row by row with :meth:`input_gates` (any number of rows),
    :meth:`cell` (one row) and :meth:`carry` (the state handed to the next row).

    Arguments:
        channels: feature channels F (input, hidden state and output).
        kernel_size: odd k of the 1×k input-to-state and state-to-state kernels.
        data_channels: colours C per pixel (masking within a pixel).
        n_classes: number of classes of the label bias on the gates; None: unconditional.

    Example:
        >>> import torch
        >>> from ptheta.nn.recurrent import RowLSTM
        >>> RowLSTM(8, 3)(torch.randn(2, 8, 5, 6)).shape
        torch.Size([2, 8, 5, 6])

    References:
        van den Oord, Kalchbrenner & Kavukcuoglu (2016), Pixel Recurrent Neural Networks,
        ICML.
    """

    def __init__(
        self,
        channels: int,
        kernel_size: int = 3,
        *,
        data_channels: int = 1,
        n_classes: int | None = None,
    ) -> None:
        super().__init__(channels, 4, data_channels, n_classes)
        self.input_to_state = MaskedConv2d(
            channels,
            4 * channels,
            (1, kernel_size),
            mask_type="B",
            stack="horizontal",
            data_channels=data_channels,
            out_chunks=4,
        )
        # the row above precedes every entry of the current row: no mask
        self.state_to_state = nn.Conv1d(
            channels, 4 * channels, kernel_size, padding=kernel_size // 2, bias=False
        )
        _open_forget_gates(self.input_to_state)

    def extra_repr(self) -> str:
        k = self.input_to_state.kernel_size[1]
        return f"channels={self.channels}, kernel_size={k}{self._classes()}"

    def input_gates(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """The input-to-state part of the gates (and the label bias): x (B, F, H', W) →
        (B, 4F, H', W), rows independent."""
        gates = self.input_to_state(x)
        bias = self._label_bias(y)
        return gates if bias is None else gates + bias

    def cell(self, gates: Tensor, carry: Carry | None) -> tuple[Tensor, Tensor]:
        """Row i's states from its input gates (B, 4F, W) and the carry of row i − 1 (None
        for the first row): (h, c), each (B, F, W)."""
        if carry is None:
            return lstm_cell(gates, None)
        c, from_above = carry
        return lstm_cell(gates + from_above, c)

    def carry(self, h: Tensor, c: Tensor) -> Carry:
        """What row i + 1 needs of row i's states: its cells and the state-to-state term."""
        return c, self.state_to_state(h)

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        gates = self.input_gates(x, y).unbind(2)  # H × (B, 4F, W): one gradient buffer
        carry, rows = None, []
        for i, row in enumerate(gates):
            h, c = self.cell(row, carry)  # (B, F, W) each
            rows.append(h)
            if i + 1 < len(gates):
                carry = self.carry(h, c)
        return x + self.out(torch.stack(rows, dim=2))


def skew(x: Tensor) -> Tensor:
    """Shift row i of x (B, F, H, W) right by i: (B, F, H, H + W − 1), zeros elsewhere.

    Column d of the result holds the diagonal i + j = d, which the Diagonal BiLSTM
    computes in one step.

    Example:
        >>> import torch
        >>> from ptheta.nn.recurrent import skew, unskew
        >>> x = torch.arange(6.0).reshape(1, 1, 2, 3)
        >>> skew(x)[0, 0].tolist()
        [[0.0, 1.0, 2.0, 0.0], [0.0, 3.0, 4.0, 5.0]]
        >>> torch.equal(unskew(skew(x), 3), x)
        True
    """
    b, f, h, w = x.shape
    flat = F.pad(x, (0, h)).reshape(b, f, h * (w + h))  # rows of length W + H
    return flat[:, :, : h * (w + h - 1)].reshape(b, f, h, w + h - 1)


def unskew(x: Tensor, width: int) -> Tensor:
    """The inverse of :func:`skew`: (B, F, H, H + W − 1) → (B, F, H, W) with W = ``width``."""
    b, f, h, _ = x.shape
    flat = F.pad(x.reshape(b, f, h * (width + h - 1)), (0, h))
    return flat.reshape(b, f, h, width + h)[..., :width]


class DiagonalBiLSTM(_Gated):
    """One Diagonal BiLSTM layer (van den Oord et al. 2016, section 3.2), with a residual
    output: a receptive field covering the whole causal past.

    The image is skewed (:func:`skew`) so that each diagonal i + j = d is one column, and
    an LSTM runs over the H + W − 1 diagonals: the state at (i, j) comes from a masked 1×1
    input-to-state term at (i, j) (type B, colour groups kept) and a 2×1 state-to-state
    convolution of the states at (i − 1, j) and (i, j − 1), so it sees every input up and
    to the left. A second LSTM runs over the mirrored image (it sees up and to the right)
    and its output is shifted down one row, so that pixel (i, j) receives its state of
    (i − 1, j): rows above only. Cells of the skewed map outside the image hold zero states
    (no data beyond an edge).

    Features at (i, j) never hold pixel (i, j) itself (the first layer's mask is of type
    A), so without more the mirrored direction would reach pixel (i − 1, W − 1), the last
    of the row above, only through the first convolution's window. Since its output is
    shifted down, the mirrored direction may read the pixels themselves: give it the image
    as ``context`` (a 1×1 convolution of, e.g., the one-hot levels). Then the two
    directions together see every earlier pixel, and nothing else: exactly autoregressive.

    Shapes: ``forward(x, y, context)``: x (B, F, H, W), y (B,) or None, context (B, D, H,
    W) → (B, F, H, W).

    Arguments:
        channels: feature channels F.
        context_channels: channels D of the ``context`` the mirrored direction reads (0:
            none).
        data_channels: colours C per pixel.
        n_classes: number of classes of the label bias on the gates; None: unconditional.

    Example:
        >>> import torch
        >>> from ptheta.nn.recurrent import DiagonalBiLSTM
        >>> layer = DiagonalBiLSTM(8, context_channels=2)
        >>> layer(torch.randn(2, 8, 5, 6), context=torch.randn(2, 2, 5, 6)).shape
        torch.Size([2, 8, 5, 6])

    References:
        van den Oord, Kalchbrenner & Kavukcuoglu (2016), Pixel Recurrent Neural Networks,
        ICML.
    """

    def __init__(
        self,
        channels: int,
        *,
        context_channels: int = 0,
        data_channels: int = 1,
        n_classes: int | None = None,
    ) -> None:
        super().__init__(channels, 8, data_channels, n_classes)
        self.forward_input = MaskedConv2d(
            channels,
            4 * channels,
            1,
            mask_type="B",
            stack="horizontal",
            data_channels=data_channels,
            out_chunks=4,
        )
        # the mirrored direction is shifted down a row: it may see the whole row (no mask)
        self.backward_input = nn.Conv2d(channels, 4 * channels, 1)
        self.backward_context = (
            nn.Conv2d(context_channels, 4 * channels, 1, bias=False) if context_channels else None
        )
        self.forward_state = nn.Conv1d(channels, 4 * channels, 2, bias=False)
        self.backward_state = nn.Conv1d(channels, 4 * channels, 2, bias=False)
        _open_forget_gates(self.forward_input)
        _open_forget_gates(self.backward_input)

    def extra_repr(self) -> str:
        context = self.backward_context
        reads = f", context_channels={context.in_channels}" if context is not None else ""
        return f"channels={self.channels}{reads}{self._classes()}"

    @staticmethod
    def _scan(gates: Tensor, state_to_state: nn.Conv1d) -> Tensor:
        """The LSTM over diagonals: input gates (B, 4F, H, W) → hidden states (B, F, H, W),
        the state at (i, j) depending on the inputs at (i', j') with i' ≤ i and j' ≤ j."""
        _, _, height, width = gates.shape
        skewed = skew(gates).unbind(-1)  # H + W − 1 diagonals × (B, 4F, H)
        rows = torch.arange(height, device=gates.device)
        h = c = None
        out = []
        for d, g in enumerate(skewed):
            if h is not None:  # rows i − 1 and i of the last diagonal: (i − 1, j), (i, j − 1)
                g = g + state_to_state(F.pad(h, (1, 0)))
            h, c = lstm_cell(g, c)
            inside = ((d - rows >= 0) & (d - rows < width)).to(h.dtype)  # (H,)
            h, c = h * inside, c * inside
            out.append(h)
        return unskew(torch.stack(out, dim=-1), width)

    def forward(self, x: Tensor, y: Tensor | None = None, context: Tensor | None = None) -> Tensor:
        bias = self._label_bias(y)
        ahead = self.forward_input(x)  # (B, 4F, H, W)
        mirrored = self.backward_input(x.flip(-1))
        if self.backward_context is not None:
            if context is None:
                raise DataError("this layer reads a context (the image): pass context")
            mirrored = mirrored + self.backward_context(context.flip(-1))
        if bias is not None:
            bias_forward, bias_backward = bias.chunk(2, dim=1)
            ahead, mirrored = ahead + bias_forward, mirrored + bias_backward
        h_forward = self._scan(ahead, self.forward_state)
        h_backward = self._scan(mirrored, self.backward_state).flip(-1)
        h_backward = F.pad(h_backward, (0, 0, 1, 0))[:, :, :-1]  # row i gets row i − 1
        return x + self.out(h_forward + h_backward)
