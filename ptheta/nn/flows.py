"""Invertible layers for normalizing flows: couplings, actnorm, 1×1 convolutions, MADE transforms.

Every layer is a :class:`Flow`: ``forward(x, context=None) -> (y, logdet)`` maps towards the
latent space (the *normalising* direction, used for densities) and ``inverse(y,
context=None) -> (x, logdet)`` maps back (the *generative* direction, used for sampling).
``logdet`` has shape (N,): log |det ∂y/∂x| for ``forward`` and log |det ∂x/∂y| for
``inverse`` (so the two are negatives of each other at matching points). A density is then
log p(x) = log p_z(f(x)) + logdet. ``context`` is an optional conditioning tensor (a one-hot
class (N, C), or for image nets an image (N, C', H, W)) that coupling and MADE networks see.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ptheta.nn.masked import made_layers, made_outputs
from ptheta.nn.mlp import dense_layers


def _zeros(x: Tensor) -> Tensor:
    return x.new_zeros(len(x))  # (N,)


def _as_slice(index: list[int]) -> slice | None:
    """The slice that selects exactly ``index`` (increasing, regularly spaced), or None."""
    step = index[1] - index[0] if len(index) > 1 else 1
    if step < 1 or index != list(range(index[0], index[-1] + 1, step)):
        return None
    return slice(index[0], index[-1] + 1, step)


def _per_feature(param: Tensor, x: Tensor) -> Tensor:
    """A (C,) parameter viewed to broadcast over x's feature axis 1: (1, C, 1, ...)."""
    return param.view(1, -1, *([1] * (x.dim() - 2)))


class Flow(nn.Module):
    """Base of the invertible layers (see the module docstring for the conventions)."""

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def inverse(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        raise NotImplementedError


class FlowSequence(Flow):
    """Layers applied in order by ``forward`` and in reverse order by ``inverse``.

    Arguments:
        layers: the :class:`Flow` layers, data side first.

    Example:
        >>> import torch
        >>> from ptheta.nn.flows import ActNorm, FlowSequence, Permutation
        >>> flow = FlowSequence([ActNorm(3), Permutation(torch.tensor([2, 0, 1]))])
        >>> y, logdet = flow(torch.randn(5, 3))
        >>> y.shape, logdet.shape
        (torch.Size([5, 3]), torch.Size([5]))
    """

    def __init__(self, layers: Sequence[Flow]) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)

    def extra_repr(self) -> str:
        return f"n_layers={len(self.layers)}"

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        total = _zeros(x)
        for layer in self.layers:
            x, logdet = layer(x, context)
            total = total + logdet
        return x, total

    def inverse(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        total = _zeros(y)
        for layer in reversed(self.layers):
            y, logdet = layer.inverse(y, context)
            total = total + logdet
        return y, total

    def steps(self, x: Tensor, context: Tensor | None = None) -> list[Tensor]:
        """``[x, after layer 1, ..., after the last layer]`` in the forward direction."""
        out = [x]
        for layer in self.layers:
            out.append(layer(out[-1], context)[0])
        return out


# --------------------------------------------------------------------------- volume-preserving
class Permutation(Flow):
    """Permute the features (axis 1): y[:, i] = x[:, perm[i]]; log-determinant 0.

    Arguments:
        perm: LongTensor (C,), a permutation of 0..C−1 (``torch.arange(C).flip(0)``
            reverses the order, as MAF does between layers).
    """

    def __init__(self, perm: Tensor) -> None:
        super().__init__()
        perm = torch.as_tensor(perm, dtype=torch.long)
        self.register_buffer("perm", perm)
        self.register_buffer("inv_perm", torch.argsort(perm))

    def extra_repr(self) -> str:
        n = len(self.perm)
        reverse = n > 1 and self.perm.tolist() == list(range(n - 1, -1, -1))
        return f"n_features={n}" + (", reverse" if reverse else "")

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return x[:, self.perm], _zeros(x)

    def inverse(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return y[:, self.inv_perm], _zeros(y)


class Reshape(Flow):
    """View each example of shape ``in_shape`` as ``out_shape`` (same size); log-det 0."""

    def __init__(self, in_shape: Sequence[int], out_shape: Sequence[int]) -> None:
        super().__init__()
        self.in_shape, self.out_shape = tuple(in_shape), tuple(out_shape)
        if math.prod(self.in_shape) != math.prod(self.out_shape):
            raise ValueError(f"cannot reshape {self.in_shape} to {self.out_shape}")

    def extra_repr(self) -> str:
        return f"{self.in_shape} -> {self.out_shape}"

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return x.reshape(len(x), *self.out_shape), _zeros(x)

    def inverse(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return y.reshape(len(y), *self.in_shape), _zeros(y)


class Squeeze(Flow):
    """Trade space for channels: (N, C, H, W) → (N, 4C, H/2, W/2), log-determinant 0.

    Each 2×2 block of a channel becomes 4 channels (Dinh et al., 2017, figure 3), so that
    channel-wise masks after a squeeze alternate the spatial split of a checkerboard.
    """

    def extra_repr(self) -> str:
        return "(C, H, W) -> (4C, H/2, W/2)"

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        n, c, h, w = x.shape
        x = x.reshape(n, c, h // 2, 2, w // 2, 2).permute(0, 1, 3, 5, 2, 4)  # (N, C, 2, 2, h, w)
        return x.reshape(n, 4 * c, h // 2, w // 2), _zeros(x)

    def inverse(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        n, c4, h, w = y.shape
        y = y.reshape(n, c4 // 4, 2, 2, h, w).permute(0, 1, 4, 2, 5, 3)  # (N, C, h, 2, w, 2)
        return y.reshape(n, c4 // 4, 2 * h, 2 * w), _zeros(y)


class FactorOut(Flow):
    """Multi-scale step: pass the last channels straight to the latent, transform the rest.

    ``forward`` takes (N, C, H, W), sends its first ``keep`` channels through ``inner`` and
    returns the flat concatenation ``[inner output, factored-out channels]`` (N, C·H·W).
    The factored-out half is modelled by the base distribution directly (Dinh et al.,
    2017, section 3.6), which halves the cost of every later layer.

    Arguments:
        shape: (C, H, W) of the input.
        keep: channels that go through ``inner``.
        inner: a :class:`Flow` on (N, keep, H, W) whose output has keep·H·W entries.
    """

    def __init__(self, shape: Sequence[int], keep: int, inner: Flow) -> None:
        super().__init__()
        self.shape, self.keep, self.inner = tuple(shape), keep, inner
        _c, h, w = self.shape
        self.inner_shape = (keep, h, w)
        with torch.no_grad():  # the inner output shape, from a dummy pass in eval mode
            was = inner.training
            self.out_shape = tuple(inner.eval()(torch.zeros(1, keep, h, w))[0].shape[1:])
            inner.train(was)

    def extra_repr(self) -> str:
        return f"shape={self.shape}, keep={self.keep}"

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        y, logdet = self.inner(x[:, : self.keep], context)
        return torch.cat([y.flatten(1), x[:, self.keep :].flatten(1)], 1), logdet

    def inverse(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        n, k = len(y), math.prod(self.out_shape)
        x_in, logdet = self.inner.inverse(y[:, :k].reshape(n, *self.out_shape), context)
        rest = y[:, k:].reshape(n, self.shape[0] - self.keep, *self.shape[1:])
        return torch.cat([x_in, rest], 1), logdet


# --------------------------------------------------------------------------- normalisation
class ActNorm(Flow):
    """Per-channel affine y = (x + bias) · exp(log_scale) with data-dependent initialisation.

    The first forward pass in training mode sets bias and log_scale so that the output of
    that batch has zero mean and unit variance per channel (Kingma & Dhariwal, 2018); the
    ``initialized`` buffer is saved with the state dict, so a reloaded layer is not
    re-initialised. Channels are axis 1; the log-determinant counts every spatial position.

    Arguments:
        n_features: channels (or features of a vector).

    References:
        Kingma & Dhariwal (2018), Glow: Generative Flow with Invertible 1x1 Convolutions.
    """

    def __init__(self, n_features: int) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(n_features))
        self.log_scale = nn.Parameter(torch.zeros(n_features))
        self.register_buffer("initialized", torch.tensor(False))

    def extra_repr(self) -> str:
        return f"n_features={self.bias.numel()}"

    @torch.no_grad()
    def _init(self, x: Tensor) -> None:
        flat = x.transpose(0, 1).reshape(x.shape[1], -1)  # (C, N·H·W)
        std = flat.std(1) if flat.shape[1] > 1 else torch.ones_like(flat[:, 0])
        self.bias.copy_(-flat.mean(1))
        self.log_scale.copy_(-torch.log(std.clamp_min(1e-3)))
        self.initialized.fill_(True)

    def _logdet(self, x: Tensor) -> Tensor:
        positions = math.prod(x.shape[2:])
        return (self.log_scale.sum() * positions).expand(len(x))

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if self.training and not bool(self.initialized):
            self._init(x)
        y = (x + _per_feature(self.bias, x)) * _per_feature(self.log_scale, x).exp()
        return y, self._logdet(x)

    def inverse(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        x = y * _per_feature(-self.log_scale, y).exp() - _per_feature(self.bias, y)
        return x, -self._logdet(y)


class BatchNorm(Flow):
    """Batch normalisation as a bijection (Dinh et al., 2017, appendix; MAF's layers).

    In training mode it standardises with the batch statistics (and updates running
    averages); in eval mode with the running averages, which makes it a fixed affine map.
    The log-determinant treats the statistics as constants, as in the papers; it is exact
    in eval mode, where densities are evaluated.

    Arguments:
        n_features: channels (axis 1).
        momentum: weight of the newest batch in the running averages.
        eps: added to the variance.
    """

    def __init__(self, n_features: int, momentum: float = 0.1, eps: float = 1e-5) -> None:
        super().__init__()
        self.momentum, self.eps = momentum, eps
        self.log_gamma = nn.Parameter(torch.zeros(n_features))
        self.beta = nn.Parameter(torch.zeros(n_features))
        self.register_buffer("running_mean", torch.zeros(n_features))
        self.register_buffer("running_var", torch.ones(n_features))

    def extra_repr(self) -> str:
        return f"n_features={self.beta.numel()}, momentum={self.momentum}, eps={self.eps}"

    def _stats(self, x: Tensor) -> tuple[Tensor, Tensor]:
        if not self.training:
            return self.running_mean, self.running_var
        flat = x.transpose(0, 1).reshape(x.shape[1], -1)  # (C, N·H·W)
        mean, var = flat.mean(1), flat.var(1, unbiased=False)
        with torch.no_grad():
            self.running_mean.lerp_(mean, self.momentum)
            self.running_var.lerp_(var, self.momentum)
        return mean, var

    def _log_scale(self, var: Tensor) -> Tensor:
        return self.log_gamma - 0.5 * torch.log(var + self.eps)  # (C,)

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        mean, var = self._stats(x)
        log_scale = self._log_scale(var)
        y = (x - _per_feature(mean, x)) * _per_feature(log_scale, x).exp() + _per_feature(
            self.beta, x
        )
        return y, (log_scale.sum() * math.prod(x.shape[2:])).expand(len(x))

    def inverse(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        log_scale = self._log_scale(self.running_var)
        x = (y - _per_feature(self.beta, y)) * _per_feature(-log_scale, y).exp()
        x = x + _per_feature(self.running_mean, y)
        return x, (-log_scale.sum() * math.prod(y.shape[2:])).expand(len(y))


class InvConv1x1(Flow):
    """Invertible 1×1 convolution, LU-parameterised: W = P L (U + diag(sign · exp(log_s))).

    Mixes channels at every position; P is a fixed permutation, L unit lower triangular
    and U strictly upper triangular, so log |det W| = Σ log_s is O(C) (Kingma & Dhariwal,
    2018, section 3.2). Works on (N, C) vectors too.

    Initialised at a random rotation (``init="rotation"``, Glow's choice for a few
    channels), or at a random permutation with L = U = I (``"permutation"``). The LU
    factors of a random rotation of many dimensions are ill-conditioned: one Adam step of
    1e-3 on every entry of a 784 × 784 rotation's L and U took an NSF's loss on 28×28
    binary digits from 446 to 2·10^6 nats, where the permutation start trains smoothly.

    Arguments:
        n_channels: C.
        generator: source of the random rotation or permutation (None: torch's global RNG).
        init: ``"rotation"`` or ``"permutation"``.
    """

    def __init__(
        self, n_channels: int, generator: torch.Generator | None = None, init: str = "rotation"
    ) -> None:
        super().__init__()
        c = n_channels
        if init == "permutation":
            dtype = torch.get_default_dtype()
            p = torch.eye(c, dtype=dtype)[torch.randperm(c, generator=generator)]
            lower, upper = torch.eye(c, dtype=dtype), torch.eye(c, dtype=dtype)
        elif init == "rotation":
            q = torch.linalg.qr(torch.randn(c, c, generator=generator, dtype=torch.float64))[0]
            p, lower, upper = (t.to(torch.get_default_dtype()) for t in torch.linalg.lu(q))
        else:
            raise ValueError(f"init must be 'rotation' or 'permutation', got {init!r}")
        s = torch.diagonal(upper)
        self.register_buffer("p", p)
        self.register_buffer("sign_s", torch.sign(s))
        self.register_buffer("l_mask", torch.tril(torch.ones(c, c), -1))
        self.register_buffer("eye", torch.eye(c))
        self.lower = nn.Parameter(lower)
        self.upper = nn.Parameter(torch.triu(upper, 1))
        self.log_s = nn.Parameter(torch.log(s.abs()))

    def extra_repr(self) -> str:
        return f"n_channels={self.log_s.numel()}"

    def weight(self) -> Tensor:
        """The (C, C) matrix W."""
        lower = self.lower * self.l_mask + self.eye
        upper = self.upper * self.l_mask.T + torch.diag(self.sign_s * self.log_s.exp())
        return self.p @ lower @ upper

    def _mix(self, x: Tensor, w: Tensor) -> Tensor:
        if x.dim() == 2:
            return x @ w.T  # (N, C)
        return F.conv2d(x, w[:, :, None, None])  # (N, C, H, W)

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        logdet = (self.log_s.sum() * math.prod(x.shape[2:])).expand(len(x))
        return self._mix(x, self.weight()), logdet

    def inverse(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        logdet = (-self.log_s.sum() * math.prod(y.shape[2:])).expand(len(y))
        return self._mix(y, torch.linalg.inv(self.weight())), logdet


# --------------------------------------------------------------------------- coupling
class MLP(nn.Module):
    """Coupling network for vectors: (N, D) [+ context (N, F)] → (N, out).

    ReLU hidden layers; the last layer starts at zero, so a coupling starts as the identity
    (stable deep flows).
    """

    def __init__(
        self, in_features: int, hidden: Sequence[int], out_features: int, context_features: int = 0
    ) -> None:
        super().__init__()
        sizes = [in_features + context_features, *hidden]
        layers = dense_layers(sizes, nn.ReLU)
        layers.append(nn.Linear(sizes[-1], out_features))
        nn.init.zeros_(layers[-1].weight)
        nn.init.zeros_(layers[-1].bias)
        self.net = nn.Sequential(*layers)

    def extra_repr(self) -> str:
        linears = [m for m in self.net if isinstance(m, nn.Linear)]
        hidden = [m.out_features for m in linears[:-1]]
        return (
            f"in_features={linears[0].in_features}, hidden={hidden}, "
            f"out_features={linears[-1].out_features}"
        )

    def forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        if context is not None:
            x = torch.cat([x, context.to(x.dtype)], 1)  # (N, D + F)
        return self.net(x)


class ConvNet(nn.Module):
    """Coupling network for images: (N, C, H, W) [+ context] → (N, out, H, W).

    3×3 → 1×1 → 3×3 convolutions with ReLU (Glow's coupling network); the last starts at
    zero. A context (N, F) is broadcast over the image; a context (N, F, H, W) is used as is.
    """

    def __init__(
        self, in_channels: int, hidden: int, out_channels: int, context_features: int = 0
    ) -> None:
        super().__init__()
        last = nn.Conv2d(hidden, out_channels, 3, padding=1)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        self.net = nn.Sequential(
            nn.Conv2d(in_channels + context_features, hidden, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(hidden, hidden, 1),
            nn.ReLU(),
            last,
        )

    def extra_repr(self) -> str:
        first, last = self.net[0], self.net[-1]
        return (
            f"in_channels={first.in_channels}, hidden={first.out_channels}, "
            f"out_channels={last.out_channels}"
        )

    def forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        if context is not None:
            if context.dim() == 2:
                context = context[:, :, None, None].expand(-1, -1, *x.shape[2:])
            x = torch.cat([x, context.to(x.dtype)], 1)  # (N, C + F, H, W)
        return self.net(x)


def alternating_mask(n_features: int, parity: int) -> Tensor:
    """(D,) mask 1 on the features i with i % 2 == parity (they condition the rest)."""
    return (torch.arange(n_features) % 2 == parity).double()


def checkerboard_mask(shape: Sequence[int], parity: int) -> Tensor:
    """(C, H, W) mask 1 on the pixels (i, j) with (i + j) % 2 == parity, every channel."""
    c, h, w = shape
    board = (torch.arange(h)[:, None] + torch.arange(w)[None, :]) % 2 == parity  # (H, W)
    return board.double().expand(c, h, w).clone()


def channel_mask(n_channels: int, parity: int) -> Tensor:
    """(C,) mask 1 on the first half of the channels (parity 0) or the second (1).

    A :class:`Coupling` with a (C,) mask acts along axis 1, so on images it splits the
    channels (its network then sees only the conditioning channels).
    """
    first = (torch.arange(n_channels) < n_channels // 2).double()
    return first if parity == 0 else 1 - first


class Coupling(Flow):
    """Affine (RealNVP) or additive (NICE) coupling: the masked part conditions the rest.

    With m the 0/1 mask, a network of the conditioning entries (and the context) gives a
    shift t and a log-scale s for the other entries:

        y = m·x + (1 − m)·(x · exp(s) + t),    log |det ∂y/∂x| = Σ (1 − m)·s.

    s is bounded, s = scale · tanh(raw / scale) with a learned per-feature ``scale``,
    which keeps early training stable; ``additive=True`` fixes s = 0 (volume-preserving).

    - Masks along axis 1, shape (D,) or (C,): the network sees only the conditioning
      features, (N, n_cond, ...) → (N, 2·n_free, ...) raw (t, s) of the free ones (no
      work spent on masked zeros). On vectors (alternating masks) :func:`vector_coupling`
      builds a matching :class:`MLP`; on images (channel masks, :func:`channel_mask`)
      :func:`channel_coupling` a matching :class:`ConvNet`.
    - Image masks (C, H, W) (checkerboard): the network sees m·x, (N, C, H, W) →
      (N, 2C, H, W), e.g. a :class:`ConvNet`.

    Arguments:
        mask: 0/1 tensor of the event shape; 1 marks the conditioning entries.
        net: the network described above.
        additive: NICE's additive coupling (no scale).

    Example:
        >>> import torch
        >>> from ptheta.nn.flows import alternating_mask, vector_coupling
        >>> layer = vector_coupling(alternating_mask(4, 0), [16])
        >>> x = torch.randn(3, 4)
        >>> torch.allclose(layer.inverse(layer(x)[0])[0], x)
        True

    References:
        Dinh, Krueger & Bengio (2015), NICE. Dinh, Sohl-Dickstein & Bengio (2017), Density
        estimation using Real NVP, ICLR.
    """

    def __init__(self, mask: Tensor, net: nn.Module, *, additive: bool = False) -> None:
        super().__init__()
        self.register_buffer("mask", mask.clone())
        self.net, self.additive = net, additive
        self.vector = mask.dim() == 1
        if self.vector:
            self.register_buffer("cond", torch.nonzero(mask)[:, 0])
            self.register_buffer("free", torch.nonzero(mask == 0)[:, 0])
            self.scale = nn.Parameter(torch.ones(len(self.free)))
        else:
            self.scale = nn.Parameter(torch.ones(mask.shape[0]))
        self._find_slices()

    def _find_slices(self) -> None:
        """``_slices``: the (conditioning, free) entries of axis 1 as two slices when both
        are regular — every other entry (an alternating mask over an even count) or two
        contiguous blocks (a channel mask) —, else None.

        Then the split needs no gather and no scatter: both parts are views of x, and the
        output is put together again by interleaving them (stack, flatten) or by
        concatenating them; the same values as ``index_copy``.
        """
        self._slices = None
        if not self.vector or not len(self.cond) or not len(self.free):
            return
        cond, free = _as_slice(self.cond.tolist()), _as_slice(self.free.tolist())
        if cond is None or free is None or cond.step != free.step:
            return
        if cond.step == 1 or (cond.step == 2 and len(self.cond) == len(self.free)):
            self._slices = (cond, free)

    def _load_from_state_dict(self, *args, **kwargs) -> None:
        super()._load_from_state_dict(*args, **kwargs)  # may bring other cond / free
        self._find_slices()

    def extra_repr(self) -> str:
        kind = "additive" if self.additive else "affine"
        if self.vector:  # conditioning entries out of the entries along axis 1
            return f"{kind}, conditioning={len(self.cond)}/{len(self.mask)}"
        return f"{kind}, mask_shape={tuple(self.mask.shape)}"

    def _params(self, x: Tensor, context: Tensor | None) -> tuple[Tensor, Tensor]:
        """Shift and log-scale: (N, n_free) each for vectors, (N, C, H, W) for images."""
        if self.vector:
            cut = self._slices  # (N, n_cond, ...), a view where the entries are regular
            conditioning = x[:, self.cond] if cut is None else x[:, cut[0]]
            shift, raw = self.net(conditioning, context).chunk(2, dim=1)  # (N, n_free, ...)
            if self.additive:
                return shift, torch.zeros_like(shift)
            scale = _per_feature(self.scale, raw)
            return shift, scale * torch.tanh(raw / scale)
        mask = self.mask.to(x.dtype)
        shift, raw = self.net(x * mask, context).chunk(2, dim=1)  # (N, C, H, W) each
        free = 1 - mask
        if self.additive:
            return shift * free, torch.zeros_like(shift)
        scale = _per_feature(self.scale, raw)
        return shift * free, scale * torch.tanh(raw / scale) * free

    def _couple(self, x: Tensor, context: Tensor | None, sign: int) -> tuple[Tensor, Tensor]:
        if self.vector and not len(self.free):
            return x, _zeros(x)  # nothing to transform
        # the conditioning entries are unchanged by forward, so inverse sees the same t, s
        shift, log_s = self._params(x, context)
        logdet = log_s.flatten(1).sum(1)
        if not self.vector:
            part = x
        elif self._slices is None:
            part = x[:, self.free]  # (N, n_free, ...)
        else:
            part = x[:, self._slices[1]]  # a view
        if sign > 0:
            out = torch.addcmul(shift, part, log_s.exp())  # part · exp(s) + t, one op
        else:
            out = (part - shift) * (-log_s).exp()
        if self.vector:
            out = self._merged(x, out)
        return out, logdet if sign > 0 else -logdet

    def _merged(self, x: Tensor, out: Tensor) -> Tensor:
        """x with its free entries (axis 1) replaced by ``out``."""
        if self._slices is None:
            return x.index_copy(1, self.free, out)
        cond = self._slices[0]
        parts = (x[:, cond], out) if cond.start == 0 else (out, x[:, cond])
        if cond.step == 1:  # two blocks
            return torch.cat(parts, 1)
        return torch.stack(parts, 2).flatten(1, 2)  # every other: entry 2i + j is parts[j][:, i]

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self._couple(x, context, 1)

    def inverse(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self._couple(y, context, -1)


def vector_coupling(
    mask: Tensor, hidden: Sequence[int], *, context_features: int = 0, additive: bool = False
) -> Coupling:
    """A :class:`Coupling` on (N, D) vectors with an :class:`MLP` of the right sizes."""
    n_cond = int(mask.sum())
    n_free = len(mask) - n_cond
    # a mask of all ones transforms nothing: no network to build
    net = MLP(n_cond, hidden, 2 * n_free, context_features=context_features) if n_free else None
    return Coupling(mask, net or nn.Identity(), additive=additive)


def channel_coupling(
    n_channels: int, parity: int, hidden: int, *, context_features: int = 0
) -> Coupling:
    """An affine :class:`Coupling` splitting the channels of images, with a :class:`ConvNet`."""
    mask = channel_mask(n_channels, parity)
    n_cond = int(mask.sum())
    net = ConvNet(n_cond, hidden, 2 * (n_channels - n_cond), context_features=context_features)
    return Coupling(mask, net)


# --------------------------------------------------------------------------- autoregressive
class MADEAffine(Flow):
    """Masked autoregressive affine transform (one MAF layer) on (N, D) vectors.

    A MADE (:mod:`ptheta.nn.masked`) with two outputs per variable gives, for variable
    σ_i, a shift μ_i and log-scale α_i that depend on x_{σ_<i} only; then

        forward (density, one pass):   z_i = (x_i − μ_i(x)) · exp(−α_i(x)),
        inverse (sampling, D passes):  x_i = z_i · exp(α_i(x)) + μ_i(x), along σ,

    with log |det ∂z/∂x| = −Σ α_i (the Jacobian is triangular in the order σ). α is
    bounded by a tanh (±``max_log_scale``); the output layer starts at zero (identity).

    Arguments:
        n_features: D.
        hidden: sizes of the MADE's hidden layers.
        ordering: LongTensor (D,), the autoregressive order (default 0..D−1).
        context_features: size of an unmasked context (one-hot class) input; 0: none.
        max_log_scale: bound on |α|.
        spread_degrees: spread the hidden units' degrees over all D variables when a layer
            is narrower than D (see :func:`~ptheta.nn.masked.made_degrees`); False keeps
            the lowest degrees (the layers of runs saved before this option).

    Example:
        >>> import torch
        >>> from ptheta.nn.flows import MADEAffine
        >>> layer = MADEAffine(3, [16])
        >>> x = torch.randn(4, 3)
        >>> torch.allclose(layer.inverse(layer(x)[0])[0], x, atol=1e-6)
        True

    References:
        Papamakarios, Pavlakou & Murray (2017), Masked Autoregressive Flow for Density
        Estimation, NeurIPS. Germain et al. (2015), MADE, ICML.
    """

    def __init__(
        self,
        n_features: int,
        hidden: Sequence[int],
        *,
        ordering: Tensor | None = None,
        context_features: int = 0,
        max_log_scale: float = 3.0,
        spread_degrees: bool = False,
    ) -> None:
        super().__init__()
        d = n_features
        ordering = torch.arange(d) if ordering is None else torch.as_tensor(ordering)
        self.register_buffer("ordering", ordering.long())
        self.max_log_scale = max_log_scale
        self.layers = made_layers(
            ordering, hidden, 2, context_features=context_features, spread=spread_degrees
        )
        nn.init.zeros_(self.layers[-1].weight)
        nn.init.zeros_(self.layers[-1].bias)

    def extra_repr(self) -> str:
        hidden = [layer.out_features for layer in self.layers[:-1]]
        return (
            f"n_features={len(self.ordering)}, hidden={hidden}, max_log_scale={self.max_log_scale}"
        )

    def _raw(self, x: Tensor, context: Tensor | None) -> Tensor:
        """The MADE's outputs (N, D, 2): unit 2d + j belongs to variable d (j = 0: μ_d,
        1: α_d before the bound)."""
        return made_outputs(self.layers, x, context)

    def _params(self, x: Tensor, context: Tensor | None) -> tuple[Tensor, Tensor]:
        out = self._raw(x, context)
        c = self.max_log_scale
        return out[..., 0], c * torch.tanh(out[..., 1] / c)

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        out = self._raw(x, context)
        # −α = c · tanh(−raw / c) (tanh is odd): the density pass needs −α only, and gets
        # it without the two negations of exp(−α) and −Σ α
        c = self.max_log_scale
        minus_alpha = c * torch.tanh(out[..., 1] / -c)
        return (x - out[..., 0]) * minus_alpha.exp(), minus_alpha.sum(1)

    def inverse(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        x = torch.zeros_like(y)
        for d in self.ordering.tolist():  # x_d needs x before it in the ordering
            mu, alpha = self._params(x, context)
            x = x.clone()
            x[:, d] = y[:, d] * alpha[:, d].exp() + mu[:, d]
        _, alpha = self._params(x, context)
        return x, alpha.sum(1)


def one_hot_context(y: Tensor | None, n_classes: int | None, dtype: torch.dtype) -> Tensor | None:
    """One-hot (N, C) context for class labels y (N,), or None for unconditional flows."""
    if n_classes is None:
        if y is not None:
            raise ValueError("this flow is unconditional; call it without y")
        return None
    if y is None:
        raise ValueError(f"this flow is conditional on {n_classes} classes: pass y (N,)")
    return F.one_hot(y.long(), n_classes).to(dtype)
