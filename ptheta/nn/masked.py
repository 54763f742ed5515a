"""Masked linear layers and MADE connectivity: the building blocks of autoregressive networks."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise
from numbers import Integral

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class MaskedLinear(nn.Linear):
    """A linear layer whose weight is multiplied elementwise by a fixed 0/1 mask.

    The layer keeps one or several masks (a buffer of shape (n_masks, out, in), saved with
    the state dict so that a reloaded network has exactly the same connectivity) and applies
    the one chosen at call time, or a mask passed explicitly. An optional unmasked
    ``context`` input (e.g. a one-hot class label) is added to the output: it may reach
    every unit without breaking the autoregressive property, since it is not part of x.

    Arguments:
        in_features: size of each input row.
        out_features: size of each output row.
        masks: (out, in) or (n_masks, out, in) tensor of zeros and ones.
        context_features: size of the unmasked context input (0: none).
        bias: whether the layer has a bias.

    Example:
        >>> import torch
        >>> from ptheta.nn.masked import MaskedLinear
        >>> layer = MaskedLinear(3, 2, torch.tensor([[1.0, 0.0, 0.0], [1.0, 1.0, 0.0]]))
        >>> layer(torch.randn(5, 3)).shape
        torch.Size([5, 2])

    References:
        Germain, Gregor, Murray & Larochelle (2015), MADE: Masked Autoencoder for
        Distribution Estimation, ICML.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        masks: Tensor,
        *,
        context_features: int = 0,
        bias: bool = True,
    ) -> None:
        super().__init__(in_features, out_features, bias=bias)
        masks = masks.unsqueeze(0) if masks.dim() == 2 else masks
        if masks.shape[1:] != (out_features, in_features):
            raise ValueError(
                f"masks have shape {tuple(masks.shape)}, expected (n_masks, {out_features}, "
                f"{in_features})"
            )
        self.register_buffer("masks", masks.to(self.weight.dtype))
        self.context = (
            nn.Linear(context_features, out_features, bias=False) if context_features else None
        )

    def forward(self, x: Tensor, mask: int | Tensor = 0, context: Tensor | None = None) -> Tensor:
        """(N, in) → (N, out) with mask number ``mask``, or the (out, in) tensor ``mask``."""
        m = self.masks[mask] if isinstance(mask, Integral) else mask.to(self.weight.dtype)
        out = F.linear(x, self.weight * m, self.bias)  # (N, out)
        if self.context is not None:
            if context is None:
                raise ValueError("this layer was built with a context input; pass context=")
            out = out + self.context(context)
        return out


def made_degrees(
    ordering: Tensor, hidden: Sequence[int], generator: torch.Generator | None = None
) -> list[Tensor]:
    """Degrees of the input and hidden units of a MADE (Germain et al., 2015, section 4).

    The input for variable ``ordering[i]`` has degree i + 1 (1..D). A hidden unit of layer l
    has a degree in [min degree of layer l − 1, D − 1]: it may only see inputs of degree at
    most its own. With ``generator`` the degrees are drawn uniformly (connectivity-agnostic
    training resamples them); without, they are spread evenly so that every degree is used.

    Arguments:
        ordering: LongTensor (D,), a permutation of 0..D−1: the autoregressive order.
        hidden: sizes of the hidden layers.
        generator: source of randomness for the hidden degrees; None: evenly spread.

    Returns:
        ``[input degrees (D,), degrees of hidden layer 1, ...]``, LongTensors.

    Example:
        >>> import torch
        >>> from ptheta.nn.masked import made_degrees
        >>> [d.tolist() for d in made_degrees(torch.tensor([2, 0, 1]), [4])]
        [[2, 3, 1], [1, 2, 1, 2]]
    """
    ordering = torch.as_tensor(ordering, dtype=torch.long).cpu()
    d = len(ordering)
    if sorted(ordering.tolist()) != list(range(d)):
        raise ValueError(f"ordering must be a permutation of 0..{d - 1}, got {ordering.tolist()}")
    degrees = [torch.empty(d, dtype=torch.long)]
    degrees[0][ordering] = torch.arange(1, d + 1)
    for size in hidden:
        # D == 1 leaves no admissible degree ≥ 1: such units get degree 0 and see no input
        low = min(int(degrees[-1].min()), d - 1)
        span = d - low
        if generator is None:
            degrees.append(low + torch.arange(size) % span)
        else:
            degrees.append(low + torch.randint(span, (size,), generator=generator))
    return degrees


def made_masks(
    degrees: Sequence[Tensor], *, in_multiplicity: int = 1, out_multiplicity: int = 1
) -> list[Tensor]:
    """The 0/1 masks of a MADE from the degrees given by :func:`made_degrees`.

    Hidden unit k of layer l connects to unit j of layer l − 1 iff deg_l(k) ≥ deg_{l−1}(j);
    output d connects to the last hidden layer's unit k iff deg_0(d) > deg_L(k) (strict, so
    output d never sees input d or any later one). Each variable may take several input
    units (``in_multiplicity``: K one-hot levels) and several output units
    (``out_multiplicity``: K logits, or shift and scale in a MAF); unit index
    ``d * multiplicity + j`` belongs to variable d.

    Arguments:
        degrees: ``[input degrees (D,), hidden degrees...]``.
        in_multiplicity: input units per variable.
        out_multiplicity: output units per variable.

    Returns:
        one float mask per layer, shapes (H1, D·in), (H2, H1), ..., (D·out, H_L); with no
        hidden layer, a single (D·out, D·in) mask.

    Example:
        >>> import torch
        >>> from ptheta.nn.masked import made_degrees, made_masks
        >>> masks = made_masks(made_degrees(torch.arange(3), [4]))
        >>> (masks[1] @ masks[0]).tolist()  # paths from input j to output i: only j < i
        [[0.0, 0.0, 0.0], [2.0, 0.0, 0.0], [4.0, 2.0, 0.0]]
    """
    inputs = degrees[0].repeat_interleave(in_multiplicity)  # (D·in,)
    outputs = degrees[0].repeat_interleave(out_multiplicity)  # (D·out,)
    layers = [inputs, *degrees[1:]]
    masks = [(cur[:, None] >= prev[None, :]).double() for prev, cur in pairwise(layers)]
    masks.append((outputs[:, None] > layers[-1][None, :]).double())
    return masks
