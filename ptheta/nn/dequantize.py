"""Dequantisation of discrete data (uniform, variational) and preprocessing bijections.

A continuous density p on ℝ^D defines a discrete model P(x) = ∫_{[0,1)^D} p(x + u) du on
integer vectors x. For any density q(u | x) on the unit cube, Jensen's inequality gives

    log P(x) ≥ E_{u ~ q(·|x)} [log p(x + u) − log q(u | x)],

the dequantisation bound (Theis, van den Oord & Bethge, 2016; Ho et al., 2019). Uniform
dequantisation takes q = U[0, 1)^D (log q = 0); variational dequantisation learns q with a
small conditional flow. The preprocessing maps (:class:`Scale`, :class:`Logit`) are
bijections whose log-determinants are counted, so that densities stay in the units of the
original data.

The dequantisation noise of a score is drawn per example (:mod:`ptheta.nn.noise`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ptheta.nn.flows import (
    ConvNet,
    Coupling,
    Flow,
    FlowSequence,
    alternating_mask,
    checkerboard_mask,
    vector_coupling,
)
from ptheta.nn.noise import keyed_normal, keyed_uniform


class Scale(Flow):
    """y = factor · x elementwise; log |det| = (entries per example) · log |factor|.

    Arguments:
        factor: the non-zero constant (1/K maps the dequantised values [0, K) to [0, 1)).
    """

    def __init__(self, factor: float) -> None:
        super().__init__()
        self.factor = float(factor)

    def extra_repr(self) -> str:
        return f"factor={self.factor:g}"

    def _logdet(self, x: Tensor) -> Tensor:
        return x.new_full((len(x),), x[0].numel() * math.log(abs(self.factor)))

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return x * self.factor, self._logdet(x)

    def inverse(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return y / self.factor, -self._logdet(y)


class Logit(Flow):
    """y = logit(α + (1 − 2α)·x): [0, 1] → ℝ, squeezed by α away from the infinite ends.

    log |det ∂y/∂x| = Σ [log(1 − 2α) − log p − log(1 − p)] with p = α + (1 − 2α)·x
    (Dinh et al., 2017, section 4.1).

    Arguments:
        alpha: α in [0, ½).
    """

    def __init__(self, alpha: float = 0.05) -> None:
        super().__init__()
        self.alpha = float(alpha)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha:g}"

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        p = self.alpha + (1 - 2 * self.alpha) * x
        y = torch.log(p) - torch.log1p(-p)
        logdet = math.log(1 - 2 * self.alpha) - torch.log(p) - torch.log1p(-p)
        return y, logdet.flatten(1).sum(1)

    def inverse(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        x = (torch.sigmoid(y) - self.alpha) / (1 - 2 * self.alpha)
        # log σ'(y) = −softplus(−y) − softplus(y)
        logdet = -F.softplus(-y) - F.softplus(y) - math.log(1 - 2 * self.alpha)
        return x, logdet.flatten(1).sum(1)


class UniformDequantizer(nn.Module):
    """x ↦ x + u with u ~ U[0, 1)^D, log q(u | x) = 0.

    ``noise`` draws u; ``forward(x, noise)`` returns (x + u, log q) so that uniform and
    variational dequantisers are interchangeable.

    Example:
        >>> import torch
        >>> from ptheta.nn.dequantize import UniformDequantizer
        >>> deq = UniformDequantizer()
        >>> x = torch.tensor([[0, 1], [1, 1]])
        >>> v, log_q = deq(x, deq.noise(x.shape, dtype=torch.float64))
        >>> bool(((v - x) >= 0).all() and ((v - x) < 1).all()), log_q.tolist()
        (True, [0.0, 0.0])
    """

    def extra_repr(self) -> str:
        return "u ~ U[0, 1)"

    def noise(
        self,
        shape: Sequence[int],
        generator: torch.Generator | None = None,
        *,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> Tensor:
        """U[0, 1) draws of the given shape."""
        return torch.rand(*shape, generator=generator, device=device, dtype=dtype)

    def keyed_noise(self, keys: np.ndarray, draw: int, shape: Sequence[int]) -> Tensor:
        """Draw number ``draw`` of u for the examples with these keys
        (:func:`~ptheta.nn.noise.example_keys`), float64 (N, *shape) on the CPU."""
        return keyed_uniform(keys, draw, shape)

    def forward(self, x: Tensor, noise: Tensor) -> tuple[Tensor, Tensor]:
        return x.to(noise.dtype) + noise, noise.new_zeros(len(x))


class VariationalDequantizer(nn.Module):
    """x ↦ x + u with u ~ q(u | x), a conditional flow: u = sigmoid(g(ε; x)), ε ~ N(0, I).

    g is a stack of affine couplings (alternating masks for vectors, checkerboard masks
    for images) whose networks see x, rescaled to [−1, 1], as context; then

        log q(u | x) = log N(ε; 0, I) − log |det ∂g/∂ε| − Σ log σ'(g(ε; x)).

    Trained jointly with the flow by maximising E_q[log p(x + u) − log q(u | x)] (Ho et
    al., 2019, section 3.1): q learns to put u where p puts its mass inside each cell,
    which tightens the bound.

    Arguments:
        event_shape: shape of one example.
        n_categories: K, the levels of every entry.
        hidden: width of the coupling networks.
        n_layers: couplings in g.
        image_shape: (C, H, W) to view examples as images (convolutional couplings);
            None: flat vectors.

    Example:
        >>> import torch
        >>> from ptheta.nn.dequantize import VariationalDequantizer
        >>> deq = VariationalDequantizer((3,), 4, hidden=8)
        >>> x = torch.randint(4, (5, 3))
        >>> v, log_q = deq(x, deq.noise(x.shape))
        >>> v.shape, log_q.shape
        (torch.Size([5, 3]), torch.Size([5]))

    References:
        Ho, Chen, Srinivas, Duan & Abbeel (2019), Flow++: Improving Flow-Based Generative
        Models with Variational Dequantization and Architecture Design, ICML.
    """

    def __init__(
        self,
        event_shape: Sequence[int],
        n_categories: int,
        *,
        hidden: int = 32,
        n_layers: int = 4,
        image_shape: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        self.event_shape = tuple(event_shape)
        self.n_categories = n_categories
        self.image_shape = None if image_shape is None else tuple(image_shape)
        layers: list[Flow] = []
        for i in range(n_layers):
            if self.image_shape is None:
                d = math.prod(self.event_shape)
                mask = alternating_mask(d, i % 2)
                layers.append(vector_coupling(mask, [hidden, hidden], context_features=d))
            else:
                c = self.image_shape[0]
                net: nn.Module = ConvNet(c, hidden, 2 * c, context_features=c)
                layers.append(Coupling(checkerboard_mask(self.image_shape, i % 2), net))
        self.flow = FlowSequence(layers)

    def extra_repr(self) -> str:
        return (
            f"event_shape={self.event_shape}, n_categories={self.n_categories}, "
            f"image_shape={self.image_shape}, n_layers={len(self.flow.layers)}"
        )

    def noise(
        self,
        shape: Sequence[int],
        generator: torch.Generator | None = None,
        *,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> Tensor:
        """Standard normal draws ε of the given shape."""
        return torch.randn(*shape, generator=generator, device=device, dtype=dtype)

    def keyed_noise(self, keys: np.ndarray, draw: int, shape: Sequence[int]) -> Tensor:
        """Draw number ``draw`` of ε for the examples with these keys
        (:func:`~ptheta.nn.noise.example_keys`), float64 (N, *shape) on the CPU."""
        return keyed_normal(keys, draw, shape)

    def _view(self, t: Tensor) -> Tensor:
        shape = self.image_shape or (math.prod(self.event_shape),)
        return t.reshape(len(t), *shape)

    def forward(self, x: Tensor, noise: Tensor) -> tuple[Tensor, Tensor]:
        """(x + u, log q(u | x)) for integer x (N, *event_shape) and ε = ``noise``."""
        eps = self._view(noise)
        context = self._view(x.to(noise.dtype) * (2 / max(self.n_categories - 1, 1)) - 1)
        v, logdet = self.flow(eps, context)
        log_normal = -0.5 * (eps**2).flatten(1).sum(1) - 0.5 * eps[0].numel() * math.log(
            2 * math.pi
        )
        log_sigmoid_grad = (-F.softplus(-v) - F.softplus(v)).flatten(1).sum(1)
        u = torch.sigmoid(v).reshape(x.shape)
        return x.to(noise.dtype) + u, log_normal - logdet - log_sigmoid_grad
