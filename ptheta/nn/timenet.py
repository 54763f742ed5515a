"""A network of (x, t[, y]) with x's shape: the score, noise or velocity model of the
continuous-time families (score SDEs, flow matching, noise-conditional score networks).

Vectors go through :class:`~ptheta.nn.unet.MLPDenoiser`, images through the
:class:`~ptheta.nn.unet.UNet`, both conditioned on a sinusoidal embedding of t (times
``time_scale``, so t ∈ [0, 1] spans the embedding's frequencies like DDPM's 1 … 1000) plus,
for a class-conditional network, a label embedding with one extra "null" label ∅ (index −1
or ``y=None``) for classifier-free guidance. The output layer starts at zero, so an
untrained network outputs 0 everywhere; families add their own analytic part.

Example:
    >>> import torch
    >>> net = TimeConditioned((3,), hidden=16, n_classes=2)
    >>> x = torch.zeros(4, 3)
    >>> net(x, torch.rand(4), torch.tensor([0, 1, -1, 1])).shape
    torch.Size([4, 3])
    >>> float(net(x, torch.tensor(0.5)).detach().abs().max())  # zero output at first, scalar t
    0.0
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ptheta.errors import DataError, ParameterError
from ptheta.nn.unet import MLPDenoiser, TimeEmbedding, UNet

ARCHITECTURES: tuple[str, ...] = ("mlp", "unet")


class TimeConditioned(nn.Module):
    """f(x, t, y) with x's shape (N, *event_shape).

    Arguments:
        event_shape: shape of one example; D = its size.
        architecture: ``"mlp"`` (flat vectors) or ``"unet"`` (needs ``image_shape``).
        hidden: MLP width, or U-Net channels at full resolution.
        n_blocks: residual blocks of the MLP.
        image_shape: (C, H, W) with C·H·W = D, for the U-Net.
        n_classes: classes of a class-conditional network; None: unconditional.
        time_scale: t is embedded as ``time_scale · t``.
    """

    def __init__(
        self,
        event_shape: tuple[int, ...],
        *,
        architecture: str = "mlp",
        hidden: int = 128,
        n_blocks: int = 2,
        image_shape: tuple[int, int, int] | None = None,
        n_classes: int | None = None,
        time_scale: float = 1000.0,
    ) -> None:
        super().__init__()
        if architecture not in ARCHITECTURES:
            raise ParameterError(
                f"architecture must be one of {ARCHITECTURES}, got {architecture!r}"
            )
        self.event_shape = tuple(event_shape)
        self.n_dims = math.prod(self.event_shape)
        self.architecture = architecture
        self.image_shape = None if image_shape is None else tuple(image_shape)
        self.n_classes = n_classes
        self.time_scale = float(time_scale)
        emb_dim = 2 * hidden
        self.time_embed = TimeEmbedding(emb_dim)
        # one extra row: the null label ∅ of classifier-free guidance
        self.label_embed = None if n_classes is None else nn.Embedding(n_classes + 1, emb_dim)
        if architecture == "unet":
            if self.image_shape is None or math.prod(self.image_shape) != self.n_dims:
                raise ParameterError(
                    "architecture='unet' needs image_shape (C, H, W) with C·H·W equal to the "
                    f"example size {self.n_dims}; use architecture='mlp' for vectors"
                )
            self.net = UNet(self.image_shape[0], hidden=hidden, emb_dim=emb_dim)
            last = self.net.conv_out
        else:
            self.net = MLPDenoiser(self.n_dims, hidden=hidden, n_blocks=n_blocks, emb_dim=emb_dim)
            last = self.net.out
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)

    def extra_repr(self) -> str:
        parts = [f"event_shape={self.event_shape}", f"architecture={self.architecture}"]
        if self.n_classes is not None:
            parts.append(f"n_classes={self.n_classes}")
        return ", ".join(parts)

    def embedding(self, t: Tensor, n: int, y: Tensor | None = None) -> Tensor:
        """The (N, E) conditioning of times ``t`` (a scalar or (N,)) and labels ``y``."""
        dtype = self.time_embed.mlp[0].weight.dtype
        t = torch.as_tensor(t, dtype=dtype, device=self.time_embed.mlp[0].weight.device)
        t = t.expand(n) if t.dim() == 0 else t
        if t.shape != (n,):
            raise DataError(f"t must be a scalar or have shape ({n},), got {tuple(t.shape)}")
        steps, index = torch.unique(t, return_inverse=True)  # samplers share t across rows
        emb = self.time_embed(steps * self.time_scale)[index]
        if self.label_embed is not None:
            null = torch.full((n,), self.n_classes, dtype=torch.long, device=emb.device)
            labels = null if y is None else torch.where(y < 0, null, y.long())
            emb = emb + self.label_embed(labels)
        elif y is not None:
            raise DataError("this network is unconditional (n_classes=None): omit y")
        return emb

    def forward(self, x: Tensor, t: Tensor, y: Tensor | None = None) -> Tensor:
        n = len(x)
        emb = self.embedding(t, n, y)
        if self.architecture == "unet":
            return self.net(x.reshape(n, *self.image_shape), emb).reshape(x.shape)
        return self.net(x.reshape(n, self.n_dims), emb).reshape(x.shape)

    def guided(self, x: Tensor, t: Tensor, y: Tensor | None, guidance: float) -> Tensor:
        """Classifier-free guidance: (1 + w) f(x, t, y) − w f(x, t, ∅); f(x, t, y) itself
        when w = 0 or y is None."""
        if not guidance or y is None:
            return self(x, t, y)
        n = len(x)
        t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
        t = t.expand(n) if t.dim() == 0 else t
        both = self(torch.cat([x, x]), torch.cat([t, t]), torch.cat([y, torch.full_like(y, -1)]))
        cond, uncond = both.chunk(2)
        return (1 + guidance) * cond - guidance * uncond
