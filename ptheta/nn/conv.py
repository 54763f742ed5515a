"""Masked convolutions (types A and B, vertical/horizontal stacks) and the gated PixelCNN block."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ptheta.errors import DataError, ParameterError

MASK_TYPES: tuple[str, ...] = ("A", "B")
STACKS: tuple[str, ...] = ("full", "vertical", "horizontal")


def channel_groups(n_channels: int, data_channels: int, chunks: int = 1) -> Tensor:
    """The data channel (colour) each of ``n_channels`` feature channels belongs to.

    Feature channels are split into ``data_channels`` contiguous, nearly equal groups; with
    ``chunks`` > 1 the channels are ``chunks`` equal blocks (e.g. the two halves of a gate)
    split the same way, so that ``x.chunk(chunks, dim=1)`` gives blocks with equal groups.
    A one-hot input laid out as (C, K) and logits laid out as (C, K) get group c for
    colour c; so does a scaled input of C + 1 channels whose first is a constant (the
    constant shares group 0 with colour 0: ``i·C // (C + 1) = i − 1`` for 1 ≤ i ≤ C).

    Arguments:
        n_channels: number of feature channels (a multiple of ``chunks``).
        data_channels: number of colours C of the image.
        chunks: number of equal blocks the channels are made of.

    Returns:
        LongTensor (n_channels,) with values in 0..C−1.

    Example:
        >>> from ptheta.nn.conv import channel_groups
        >>> channel_groups(6, 3).tolist(), channel_groups(4, 2, chunks=2).tolist()
        ([0, 0, 1, 1, 2, 2], [0, 1, 0, 1])
        >>> channel_groups(4, 3).tolist()  # a constant channel, then colours 0, 1, 2
        [0, 0, 1, 2]
    """
    if n_channels % chunks:
        raise ParameterError(f"{n_channels} channels cannot be split into {chunks} equal chunks")
    size = n_channels // chunks
    return (torch.arange(size) * data_channels // size).repeat(chunks)


def causal_mask(
    in_channels: int,
    out_channels: int,
    kernel_size: tuple[int, int],
    *,
    mask_type: str = "B",
    stack: str = "full",
    data_channels: int = 1,
    out_chunks: int = 1,
) -> Tensor:
    """The 0/1 kernel mask of a causal convolution over pixels in raster order.

    Pixels are ordered row by row, left to right, and within a pixel colour by colour. With
    the kernel centred on pixel (i, j):

    - ``"full"`` (PixelCNN, van den Oord et al. 2016a): rows above, and the pixels left of
      (i, j) in row i;
    - ``"vertical"``: rows above only; type B adds the whole of row i, which is safe only
      when the input is itself a vertical stack (it depends on rows above i only);
    - ``"horizontal"``: the pixels left of (i, j) in row i only (a 1×k kernel).

    At the centre pixel the colours decide: type A lets output colour c see input colours
    < c (the first layer: a pixel never sees itself), type B colours ≤ c (later layers,
    whose colour-c features already exclude colour c of the input). Vertical masks never
    open the centre to the current row in type A, and open it fully in type B.

    Arguments:
        in_channels, out_channels: feature channels (split into colours by
            :func:`channel_groups`).
        kernel_size: (kh, kw), both odd.
        mask_type: ``"A"`` or ``"B"``.
        stack: ``"full"``, ``"vertical"`` or ``"horizontal"``.
        data_channels: colours C per pixel.
        out_chunks: the output channels are this many equal blocks (2 for a gate).

    Returns:
        float tensor (out_channels, in_channels, kh, kw).

    Example:
        >>> from ptheta.nn.conv import causal_mask
        >>> causal_mask(1, 1, (3, 3), mask_type="A")[0, 0].tolist()
        [[1.0, 1.0, 1.0], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0]]
    """
    if mask_type not in MASK_TYPES:
        raise ParameterError(f"mask_type must be 'A' or 'B', got {mask_type!r}")
    if stack not in STACKS:
        raise ParameterError(f"stack must be one of {', '.join(STACKS)}, got {stack!r}")
    kh, kw = kernel_size
    if kh % 2 == 0 or kw % 2 == 0:
        raise ParameterError(f"kernel_size must be odd so that it has a centre, got {kernel_size}")
    ch, cw = kh // 2, kw // 2
    spatial = torch.zeros(kh, kw)  # 1 where every colour pair connects
    if stack in ("full", "vertical"):
        spatial[:ch] = 1.0
    if stack == "vertical" and mask_type == "B":
        spatial[ch] = 1.0
    if stack in ("full", "horizontal"):
        spatial[ch, :cw] = 1.0
    mask = spatial.expand(out_channels, in_channels, kh, kw).clone()
    if stack != "vertical":
        g_out = channel_groups(out_channels, data_channels, out_chunks)[:, None]  # (O, 1)
        g_in = channel_groups(in_channels, data_channels)[None, :]  # (1, I)
        centre = g_in < g_out if mask_type == "A" else g_in <= g_out  # (O, I)
        mask[:, :, ch, cw] = centre.to(mask.dtype)
    return mask


class MaskedConv2d(nn.Conv2d):
    """A 2-D convolution whose kernel is multiplied by a fixed causal mask.

    Output size equals input size (zero padding of half the kernel). The mask is a buffer
    built by :func:`causal_mask`, so it moves with the layer and is saved in its state dict.
    Masked weights contribute exact zeros, which is what makes the autoregressive property
    hold to the last bit (and testable with gradients).

    Arguments:
        in_channels, out_channels: feature channels.
        kernel_size: an odd int k (a k×k kernel) or (kh, kw); horizontal stacks use (1, k).
        mask_type, stack, data_channels, out_chunks: see :func:`causal_mask`.
        bias: whether the layer has a bias.

    Example:
        >>> import torch
        >>> from ptheta.nn.conv import MaskedConv2d
        >>> conv = MaskedConv2d(2, 8, 3, mask_type="A")
        >>> conv(torch.randn(4, 2, 5, 5)).shape  # (B, C, H, W)
        torch.Size([4, 8, 5, 5])

    References:
        van den Oord, Kalchbrenner & Kavukcuoglu (2016), Pixel Recurrent Neural Networks,
        ICML (masks A and B).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        *,
        mask_type: str = "B",
        stack: str = "full",
        data_channels: int = 1,
        out_chunks: int = 1,
        bias: bool = True,
    ) -> None:
        size = (kernel_size, kernel_size) if isinstance(kernel_size, int) else tuple(kernel_size)
        super().__init__(
            in_channels, out_channels, size, padding=(size[0] // 2, size[1] // 2), bias=bias
        )
        mask = causal_mask(
            in_channels,
            out_channels,
            size,
            mask_type=mask_type,
            stack=stack,
            data_channels=data_channels,
            out_chunks=out_chunks,
        )
        self.register_buffer("mask", mask.to(self.weight.dtype))
        self.mask_type, self.stack = mask_type, stack

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, mask_type={self.mask_type}, stack={self.stack}"

    def forward(self, x: Tensor) -> Tensor:
        """(B, in, H, W) → (B, out, H, W)."""
        return self._conv_forward(x, self.weight * self.mask, self.bias)


def gate(x: Tensor) -> Tensor:
    """The gated activation tanh(a) ⊙ σ(b) of x = [a, b] along channels: (B, 2F, …) → (B, F, …).

    tanh(a) is computed as 2σ(2a) − 1: the same function (equal to :func:`gate_reference`
    up to rounding, gradients included), and on a CPU ``torch.tanh`` and its backward cost
    several times ``torch.sigmoid``'s, which made the plain form a tenth of a PixelCNN's step.
    """
    a, b = x.chunk(2, dim=1)
    return (torch.sigmoid(2.0 * a) * 2.0 - 1.0) * torch.sigmoid(b)


def gate_reference(x: Tensor) -> Tensor:
    """:func:`gate` written out with ``torch.tanh`` and ``torch.sigmoid`` (the reference)."""
    a, b = x.chunk(2, dim=1)
    return torch.tanh(a) * torch.sigmoid(b)


class GatedBlock(nn.Module):
    """One layer of the gated PixelCNN: a vertical and a horizontal stack with gated units.

    The vertical stack sees every pixel above the current row (a k×k kernel masked to the
    rows above); the horizontal stack sees the pixels left of the current one in its row
    (1×k) and receives the vertical stack through a 1×1 convolution. Together they cover
    the whole causal past, without the blind spot of stacked ``"full"`` masked convolutions.
    Since the vertical features depend on rows above only, they are passed to the
    horizontal stack without the shift the paper needs for its unmasked vertical kernels.
    A class label y adds a learned bias to every gate (the paper's V^T h for one-hot h).

    Shapes: ``forward(v, h, y)`` takes v, h (B, in_channels, H, W) and y (B,) or None and
    returns (v, h), each (B, channels, H, W).

    Arguments:
        in_channels: input feature channels (for the first layer: the one-hot image, C·K,
            or a constant channel and the C scaled colours).
        channels: output feature channels F of both stacks.
        kernel_size: odd k of the k×k vertical and 1×k horizontal kernels.
        mask_type: ``"A"`` for the first layer (a pixel does not see itself), ``"B"`` after;
            type B blocks with ``in_channels == channels`` add a residual connection to the
            horizontal stack (type A cannot: it would pass the current pixel through).
        data_channels: colours C per pixel (colour masking in the horizontal stack).
        n_classes: number of classes for the conditional bias; None: unconditional.

    Example:
        >>> import torch
        >>> from ptheta.nn.conv import GatedBlock
        >>> block = GatedBlock(2, 16, 3, mask_type="A")
        >>> x = torch.randn(4, 2, 8, 8)
        >>> [t.shape for t in block(x, x)]
        [torch.Size([4, 16, 8, 8]), torch.Size([4, 16, 8, 8])]

    References:
        van den Oord, Kalchbrenner, Vinyals, Espeholt, Graves & Kavukcuoglu (2016),
        Conditional Image Generation with PixelCNN Decoders, NeurIPS (figure 2).
    """

    def __init__(
        self,
        in_channels: int,
        channels: int,
        kernel_size: int = 3,
        *,
        mask_type: str = "B",
        data_channels: int = 1,
        n_classes: int | None = None,
    ) -> None:
        super().__init__()
        self.v_conv = MaskedConv2d(
            in_channels, 2 * channels, kernel_size, mask_type=mask_type, stack="vertical"
        )
        self.h_conv = MaskedConv2d(
            in_channels,
            2 * channels,
            (1, kernel_size),
            mask_type=mask_type,
            stack="horizontal",
            data_channels=data_channels,
            out_chunks=2,
        )
        # vertical features never depend on the current row: the link needs no mask
        self.link = nn.Conv2d(2 * channels, 2 * channels, 1)
        self.h_out = MaskedConv2d(
            channels, channels, 1, stack="horizontal", data_channels=data_channels
        )
        self.residual = mask_type == "B" and in_channels == channels
        self.label_bias = nn.Embedding(n_classes, 4 * channels) if n_classes else None

    def extra_repr(self) -> str:
        classes = None if self.label_bias is None else self.label_bias.num_embeddings
        return (
            f"in_channels={self.v_conv.in_channels}, channels={self.h_out.out_channels}, "
            f"kernel_size={self.v_conv.kernel_size[0]}, mask_type={self.v_conv.mask_type}, "
            f"residual={self.residual}" + (f", n_classes={classes}" if classes else "")
        )

    def forward(self, v: Tensor, h: Tensor, y: Tensor | None = None) -> tuple[Tensor, Tensor]:
        v_new, link = self.vertical(v, y)
        return v_new, self.horizontal(h, link, y)

    def _label_bias(self, y: Tensor | None) -> tuple[Tensor, Tensor] | None:
        """The class biases of the vertical and horizontal gates, (B, 2F, 1, 1) each."""
        if self.label_bias is None:
            return None
        if y is None:
            raise DataError("this block is class-conditional: pass the labels y")
        bias_v, bias_h = self.label_bias(y)[:, :, None, None].chunk(2, dim=1)
        return bias_v, bias_h

    def vertical(self, v: Tensor, y: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """The vertical stack alone: v (B, in, H, W) → (new v, link), (B, F, H, W) and
        (B, 2F, H, W), where link is what row i of the horizontal stack receives from it.

        Neither depends on row i of the image, only on the rows above it, which is what
        lets a sampler compute them once per row (see :meth:`horizontal`).
        """
        v_pre = self.v_conv(v)  # (B, 2F, H, W)
        link = self.link(v_pre)  # (B, 2F, H, W)
        biases = self._label_bias(y)
        if biases is not None:
            v_pre = v_pre + biases[0]
        return gate(v_pre), link

    def horizontal(self, h: Tensor, link: Tensor, y: Tensor | None = None) -> Tensor:
        """The horizontal stack alone: h (B, in, H', W) and link (B, 2F, H', W) from
        :meth:`vertical` for the same rows → new h (B, F, H', W). Rows are independent
        here (1×k kernels), so H' may be a single row.
        """
        h_pre = self.h_conv(h) + link  # (B, 2F, H', W)
        biases = self._label_bias(y)
        if biases is not None:
            h_pre = h_pre + biases[1]
        h_new = self.h_out(gate(h_pre))  # (B, F, H', W)
        return h + h_new if self.residual else h_new


def output_head(channels: int, data_channels: int, per_entry: int) -> nn.Sequential:
    """The 1×1 output of a raster-order image model (PixelCNN, PixelRNN): ReLU, a masked
    1×1 convolution, ReLU, and ``per_entry`` numbers per colour (K logits of a softmax, or
    the 3M parameters of a logistic mixture), (N, channels, H, W) → (N, C·per_entry, H, W),
    colour-major. The masks keep colour c's outputs on the features of colours ≤ c (type B:
    :func:`causal_mask` with the horizontal stack's channel groups)."""
    head = {"stack": "horizontal", "data_channels": data_channels}
    return nn.Sequential(
        nn.ReLU(),
        MaskedConv2d(channels, channels, 1, **head),
        nn.ReLU(),
        MaskedConv2d(channels, data_channels * per_entry, 1, **head),
    )
