"""The one builder of fully connected stacks that families share (flows, VAE, GAN, EBM).

Example:
    >>> from torch import nn
    >>> net = nn.Sequential(*dense_layers([4, 8, 8], nn.ReLU), nn.Linear(8, 2))
    >>> [type(m).__name__ for m in net]
    ['Linear', 'ReLU', 'Linear', 'ReLU', 'Linear']
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

from torch import nn


def dense_layers(
    sizes: Sequence[int],
    activation: Callable[[], nn.Module],
    wrap: Callable[[nn.Linear], nn.Module] | None = None,
) -> list[nn.Module]:
    """``Linear(a, b)`` then ``activation()`` for each pair of successive ``sizes``.

    Arguments:
        sizes: widths, input first: [D, H1, H2] gives two layers.
        activation: makes one activation module (``nn.ReLU``, ``lambda: nn.LeakyReLU(0.2)``).
        wrap: applied to each linear layer (spectral normalisation, say).

    Returns:
        the layers, in order, for ``nn.Sequential`` (the output layer is the caller's).
    """
    wrap = wrap or (lambda layer: layer)
    layers: list[nn.Module] = []
    for a, b in itertools.pairwise(sizes):
        layers += [wrap(nn.Linear(a, b)), activation()]
    return layers
