"""Masked linear layers and MADE connectivity: the building blocks of autoregressive networks."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from itertools import pairwise
from numbers import Integral

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class MaskedLinear(nn.Linear):
    """A linear layer whose weight is multiplied elementwise by a fixed 0/1 mask.

    The layer keeps one or several masks (a buffer of shape (n_masks, out, in) in the
    weight's dtype and device) and applies the one chosen at call time, or a mask passed
    explicitly. The masks are NOT saved in the state dict: M dense float masks would weigh
    M times the weights. They are part of the layer's construction (like a kernel size);
    an owner whose masks are random (MADE) saves what they are made of, e.g. degrees, and
    calls :meth:`set_masks` after loading. A state dict that still holds ``masks`` (saved
    by an earlier version) is accepted and its masks are used. An optional unmasked
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
        self.register_buffer("masks", self._checked(masks), persistent=False)
        self._reused: dict[int, Tensor] | None = None  # see reuse_masked_weights
        self.context = (
            nn.Linear(context_features, out_features, bias=False) if context_features else None
        )

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, n_masks={len(self.masks)}"

    def _checked(self, masks: Tensor) -> Tensor:
        """(out, in) or (M, out, in) masks → (M, out, in) in the weight's dtype and device."""
        masks = masks.unsqueeze(0) if masks.dim() == 2 else masks
        if masks.dim() != 3 or masks.shape[1:] != (self.out_features, self.in_features):
            raise ValueError(
                f"masks have shape {tuple(masks.shape)}, expected (n_masks, "
                f"{self.out_features}, {self.in_features})"
            )
        return masks.to(device=self.weight.device, dtype=self.weight.dtype)

    def set_masks(self, masks: Tensor) -> None:
        """Replace the masks by ``masks``, (out, in) or (n_masks, out, in) zeros and ones."""
        self.masks = self._checked(masks)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        legacy = prefix + "masks"
        if legacy in state_dict:  # saved before masks left the state dict
            self.set_masks(state_dict[legacy])
            state_dict = {k: v for k, v in state_dict.items() if k != legacy}
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def masked_weight(self, mask: int | Tensor = 0) -> Tensor:
        """weight ⊙ mask, (out, in), for mask number ``mask`` or the (out, in) tensor ``mask``.

        Inside :func:`reuse_masked_weights` the product for a stored mask is computed once.
        """
        if not isinstance(mask, Integral):
            return self.weight * mask.to(self.weight.dtype)
        if self._reused is None:
            return self.weight * self.masks[mask]
        if mask not in self._reused:
            self._reused[mask] = self.weight * self.masks[mask]
        return self._reused[mask]

    def forward(self, x: Tensor, mask: int | Tensor = 0, context: Tensor | None = None) -> Tensor:
        """(N, in) → (N, out) with mask number ``mask``, or the (out, in) tensor ``mask``."""
        out = F.linear(x, self.masked_weight(mask), self.bias)  # (N, out)
        if self.context is not None:
            if context is None:
                raise ValueError("this layer was built with a context input; pass context=")
            out = out + self.context(context)
        return out


@contextmanager
def reuse_masked_weights(module: nn.Module) -> Iterator[None]:
    """Within the block, each :class:`MaskedLinear` of ``module`` computes weight ⊙ mask once
    per stored mask instead of at every call.

    For loops that call the network many times with fixed weights: sequential sampling
    (D calls for D variables) or a flow's inverse. The results are bit-identical to calls
    outside the block; the weights must not change inside it (the products are dropped on
    exit, so nothing stale outlives it).

    Example:
        >>> import torch
        >>> from ptheta.nn.masked import MaskedLinear, reuse_masked_weights
        >>> layer = MaskedLinear(3, 2, torch.tensor([[1.0, 0.0, 0.0], [1.0, 1.0, 0.0]]))
        >>> x = torch.randn(5, 3)
        >>> with torch.no_grad(), reuse_masked_weights(layer):
        ...     same = all(torch.equal(layer(x), layer.forward(x)) for _ in range(3))
        >>> same
        True
    """
    layers = [m for m in module.modules() if isinstance(m, MaskedLinear)]
    for layer in layers:
        layer._reused = {}
    try:
        yield
    finally:
        for layer in layers:
            layer._reused = None


def made_degrees(
    ordering: Tensor,
    hidden: Sequence[int],
    generator: torch.Generator | None = None,
    *,
    spread: bool = False,
) -> list[Tensor]:
    """Degrees of the input and hidden units of a MADE (Germain et al., 2015, section 4).

    The input for variable ``ordering[i]`` has degree i + 1 (1..D). A hidden unit of layer l
    has a degree in [min degree of layer l − 1, D − 1]: it may only see inputs of degree at
    most its own. With ``generator`` the degrees are drawn uniformly (connectivity-agnostic
    training resamples them); without, they cycle through the admissible degrees in order
    (MAF's "sequential" degrees), so that every degree is used when the layer has at least
    as many units as degrees; a narrower layer takes the lowest degrees only (64 units for
    784 pixels see the first 64 and, through them, every later output sees no more) unless
    ``spread``: then a narrower layer's degrees are spread evenly over the admissible ones,
    and later outputs see more of the variables before them.

    Arguments:
        ordering: LongTensor (D,), a permutation of 0..D−1: the autoregressive order.
        hidden: sizes of the hidden layers.
        generator: source of randomness for the hidden degrees; None: deterministic.
        spread: spread a layer narrower than the admissible degrees over all of them.

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
        if generator is not None:
            degrees.append(low + torch.randint(span, (size,), generator=generator))
        elif spread and size < span:  # evenly from low to D − 1, both ends included
            degrees.append(low + torch.arange(size) * (span - 1) // max(size - 1, 1))
        else:
            degrees.append(low + torch.arange(size) % span)
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


def made_layers(
    ordering: Tensor,
    hidden: Sequence[int],
    out_multiplicity: int,
    *,
    context_features: int = 0,
    spread: bool = False,
) -> nn.ModuleList:
    """The :class:`MaskedLinear` layers of a MADE over the D = len(``ordering``) variables:
    D inputs, the ``hidden`` layers, and ``out_multiplicity`` outputs per variable (unit
    d · multiplicity + j belongs to variable d), with the masks of :func:`made_masks` on the
    degrees of :func:`made_degrees` (``spread`` as there). Run them with
    :func:`made_outputs`.

    Example:
        >>> import torch
        >>> layers = made_layers(torch.arange(3), [8], 2)
        >>> made_outputs(layers, torch.randn(5, 3)).shape
        torch.Size([5, 3, 2])
    """
    d = len(ordering)
    masks = made_masks(
        made_degrees(ordering, hidden, spread=spread), out_multiplicity=out_multiplicity
    )
    sizes = [d, *hidden, out_multiplicity * d]
    return nn.ModuleList(
        MaskedLinear(a, b, m, context_features=context_features)
        for a, b, m in zip(sizes[:-1], sizes[1:], masks, strict=True)
    )


def made_outputs(layers: nn.ModuleList, x: Tensor, context: Tensor | None = None) -> Tensor:
    """x (N, D) through a MADE's layers (:func:`made_layers`), ReLU between them, and the
    unmasked ``context`` (N, F) or None into every layer: (N, D, out_multiplicity)."""
    h = x
    context = None if context is None else context.to(x.dtype)
    for i, layer in enumerate(layers):
        h = layer(h, 0, context)
        if i < len(layers) - 1:
            h = torch.relu(h)  # (N, H_i)
    return h.reshape(len(x), x.shape[1], -1)
