"""PixelRNN: Row LSTM (or Diagonal BiLSTM) layers over images, an exact autoregressive model."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ptheta.data.spec import DataSpec
from ptheta.errors import DataError
from ptheta.models.neural import _SAMPLE_CHUNK, CONDITIONAL, NeuralModel
from ptheta.models.pixelcnn import image_shape_of
from ptheta.nn.conv import MaskedConv2d, output_head
from ptheta.nn.recurrent import Carry, DiagonalBiLSTM, RowLSTM
from ptheta.nn.shapes import batched, sampled
from ptheta.params import Choice, Config, Int, Param, check_choice, check_int, parameter_error
from ptheta.progress import progress_bar

ARCHITECTURES: tuple[str, ...] = ("row", "diagonal")


def _image_shape(spec: DataSpec) -> tuple[int, int, int]:
    """The (C, H, W) of ``spec``'s examples (see :func:`ptheta.models.pixelcnn.image_shape_of`)."""
    return image_shape_of(spec, "pixelrnn")


def _odd(name: str, value: Any) -> int:
    value = check_int("pixelrnn", name, value, low=3)
    if value % 2 == 0:
        raise parameter_error("pixelrnn", name, "odd (3, 5, 7, ...)", value)
    return value


class PixelRNNNetwork(nn.Module):
    """PixelRNN over C×H×W images with K levels per entry (module level).

    p(x) = ∏ p(x[c, i, j] | every pixel before (i, j) in raster order, colours < c of
    pixel (i, j)). The one-hot levels (N, C·K, H, W) go through a k₀×k₀ convolution of mask
    type A (a pixel never sees itself), then ``n_layers`` recurrent layers with residual
    connections, then two colour-masked 1×1 convolutions to K logits per entry:

    - ``"row"``: Row LSTM layers (:class:`~ptheta.nn.recurrent.RowLSTM`): each row's
      states come from the row above in one step (H sequential steps per layer, vectorised
      over columns and examples). The receptive field is a *cone*: pixel (i, j) sees row
      i − m (m ≥ 1) up to max(s·m − 1, s·(m − 1) + k₀//2) columns to its right (s = k//2),
      whatever the depth (layers widen the cone to the left only), so pixels to the right
      in the rows just above are out of reach: (i − 1, j + 2) already for k = k₀ = 3
      (:meth:`receptive_field` gives the field exactly). Sampling reuses the recurrence:
      row i's states are computed once, when its pixels are all drawn, and each of the
      C·H·W steps runs the network on one row.
    - ``"diagonal"``: Diagonal BiLSTM layers (:class:`~ptheta.nn.recurrent.DiagonalBiLSTM`,
      whose mirrored direction also reads the one-hot pixels of the rows above): the whole
      causal past, H + W − 1 sequential steps per layer and direction. Sampling runs the
      network on the rows drawn so far at each of the C·H·W steps (no state reuse: the
      recurrence runs along diagonals, which cross rows not drawn yet), about C·H·W/2
      full-image passes.

    Either way every conditional depends on earlier entries only, so the likelihood is
    exact: one network pass per batch.

    Arguments:
        image_shape: (C, H, W).
        n_categories: K, the number of levels of every entry (2 for binary images).
        channels: feature channels F (and LSTM hidden units).
        n_layers: recurrent layers.
        kernel_size: odd k of the Row LSTM's 1×k input-to-state and state-to-state kernels
            (unused by the Diagonal BiLSTM, whose kernels are 1×1 and 2×1).
        input_kernel: odd k₀ of the first, mask-A convolution (the paper's is 7).
        architecture: ``"row"`` or ``"diagonal"``.
        n_classes: number of classes of a class-conditional model (the label adds a learned
            bias to every gate); None: unconditional.

    ``log_prob`` and ``loss`` take levels x (*batch, C, H, W) of any integer dtype (or flat
    (*batch, C·H·W) in that order) and y (*batch) or None, and return (*batch); ``sample``
    takes a sample shape (see :mod:`ptheta.nn.shapes`).

    Example:
        >>> import torch
        >>> from ptheta.models.pixelrnn import PixelRNNNetwork
        >>> net = PixelRNNNetwork((1, 4, 4), 2, channels=8, n_layers=2)
        >>> x = net.sample(5, generator=torch.Generator().manual_seed(0))
        >>> x.shape, net.log_prob(x).shape
        (torch.Size([5, 1, 4, 4]), torch.Size([5]))

    References:
        van den Oord, Kalchbrenner & Kavukcuoglu (2016), Pixel Recurrent Neural Networks,
        ICML.
    """

    @classmethod
    def from_config(
        cls, config: Config, spec: DataSpec, n_classes: int | None = None
    ) -> PixelRNNNetwork:
        """The network of a :class:`PixelRNN`'s config for image-shaped data of ``spec``."""
        return cls(
            _image_shape(spec),
            spec.n_categories,
            channels=config.channels,
            n_layers=config.n_layers,
            kernel_size=config.kernel_size,
            input_kernel=config.input_kernel,
            architecture=config.architecture,
            n_classes=n_classes,
        )

    def __init__(
        self,
        image_shape: tuple[int, int, int],
        n_categories: int,
        *,
        channels: int = 64,
        n_layers: int = 2,
        kernel_size: int = 3,
        input_kernel: int = 7,
        architecture: str = "row",
        n_classes: int | None = None,
    ) -> None:
        super().__init__()
        channels = check_int("pixelrnn", "channels", channels, low=1)
        n_layers = check_int("pixelrnn", "n_layers", n_layers, low=1)
        kernel_size = _odd("kernel_size", kernel_size)
        input_kernel = _odd("input_kernel", input_kernel)
        self.architecture = check_choice("pixelrnn", "architecture", architecture, ARCHITECTURES)
        c, _, _ = image_shape
        self.image_shape = self.event_shape = tuple(image_shape)
        self.n_categories = n_categories
        self.n_classes = n_classes
        self.kernel_size, self.input_kernel = kernel_size, input_kernel
        self.input_conv = MaskedConv2d(
            c * n_categories, channels, input_kernel, mask_type="A", data_channels=c
        )
        common = {"data_channels": c, "n_classes": n_classes}
        self.layers = nn.ModuleList(
            RowLSTM(channels, kernel_size, **common)
            if self.architecture == "row"
            else DiagonalBiLSTM(channels, context_channels=c * n_categories, **common)
            for _ in range(n_layers)
        )
        self.head = output_head(channels, c, n_categories)

    def extra_repr(self) -> str:
        classes = f", n_classes={self.n_classes}" if self.n_classes else ""
        return (
            f"image_shape={self.image_shape}, n_categories={self.n_categories}, "
            f"architecture={self.architecture}, n_layers={len(self.layers)}{classes}"
        )

    def _one_hot(self, x: Tensor) -> Tensor:
        """Levels (N, C, H', W') → one-hot (N, C·K, H', W') in the weights' dtype, channels
        colour-major (group c = colour c)."""
        dtype = self.head[-1].weight.dtype
        return F.one_hot(x, self.n_categories).permute(0, 1, 4, 2, 3).flatten(1, 2).to(dtype)

    def _check_labels(self, y: Tensor | None) -> None:
        if self.n_classes is None and y is not None:
            raise DataError("this PixelRNN is unconditional (n_classes=None): call it without y")
        if self.n_classes is not None and y is None:
            raise DataError(f"this PixelRNN is conditional on {self.n_classes} classes: pass y")

    def _logits(self, one_hot: Tensor, y: Tensor | None) -> Tensor:
        """One-hot (N, C·K, H', W') → logits (N, C, H', W', K), for any image height H'."""
        n, _, h, w = one_hot.shape
        c, k = self.image_shape[0], self.n_categories
        out = self.head(self._features(one_hot, y))  # (N, C·K, H', W')
        return out.reshape(n, c, k, h, w).permute(0, 1, 3, 4, 2)

    def logits(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """Logits of every entry's conditional, (N, C, H, W, K).

        ``x`` is a LongTensor of levels (N, C, H, W), or a floating tensor (N, C, K, H, W)
        taken as the one-hot encoding itself, so that gradients with respect to the input
        can be taken (how the tests check that logits[:, c, i, j] depends on earlier
        entries only).
        """
        self._check_labels(y)
        if x.is_floating_point():
            one_hot = x.flatten(1, 2)
        else:
            one_hot = self._one_hot(x.reshape(len(x), *self.image_shape))
        return self._logits(one_hot, y)

    @batched
    def log_prob(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """log p(x) (or log p(x | y)) in nats: (*batch, C, H, W) → (*batch)."""
        x = x.reshape(len(x), *self.image_shape)  # (N, C, H, W)
        logp = self.logits(x, y).log_softmax(dim=-1)  # (N, C, H, W, K)
        return logp.gather(-1, x.unsqueeze(-1)).flatten(1).sum(dim=1)

    def loss(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """Negative log-likelihood per example (teacher forcing: one pass), (*batch)."""
        return -self.log_prob(x, y)

    def receptive_field(self) -> Tensor:
        """Which pixels each pixel's conditionals depend on: bool (H, W, H, W), entry
        [i, j, i', j'] true where the logits of pixel (i, j) are a function of pixel (i', j')
        (the earlier colours of pixel (i, j) itself aside), derived from the kernels' shapes.

        With ``"diagonal"`` layers it is every earlier pixel; with ``"row"`` layers a cone
        (see the class docstring). The tests check it against autograd.
        """
        _, h, w = self.image_shape
        ii, jj = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
        i_out, j_out = ii.reshape(-1, 1), jj.reshape(-1, 1)  # (H·W, 1)
        i_in, j_in = ii.reshape(1, -1), jj.reshape(1, -1)  # (1, H·W)
        up, right = i_out - i_in, j_in - j_out  # rows above, columns to the right
        half = self.input_kernel // 2
        seen = ((up >= 1) & (up <= half) & (right.abs() <= half)) | (
            (up == 0) & (right < 0) & (right >= -half)
        )  # the mask-A convolution: (H·W, H·W), output pixel × input pixel
        if self.architecture == "row":
            s = self.kernel_size // 2
            layer = (up >= 0) & (right >= -s * (up + 1)) & (right <= s * up)  # the cone
            pixels = torch.zeros_like(seen)  # what a layer reads of the pixels directly
        else:
            layer = ((up >= 0) & (right <= 0)) | ((up >= 1) & (right >= 0))  # two quadrants
            pixels = (up >= 1) & (right >= 0)  # the mirrored direction's context
        for _ in self.layers:
            seen = ((layer.double() @ seen.double()) > 0) | pixels
        return seen.reshape(h, w, h, w)

    @sampled
    @torch.no_grad()
    def sample(
        self,
        n: int,
        y: Tensor | None = None,
        generator: torch.Generator | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> Tensor:
        """Draw images pixel by pixel and colour by colour, LongTensor (*sample_shape, C, H,
        W); ``sample_shape`` is an int n, a tuple, or () for one image.

        All randomness comes from ``generator`` (on the module's device); ``progress(1)``
        is called after each row.
        """
        self._check_labels(y)
        c, h, w = self.image_shape
        x = torch.zeros(n, c, h, w, dtype=torch.long, device=self.head[-1].weight.device)
        carries: list[Carry | None] = [None] * len(self.layers)
        for i in range(h):
            for j in range(w):
                for ch in range(c):
                    if self.architecture == "row":
                        features = self._row(x, i, y, carries)[0][..., j : j + 1]  # (n, F, 1, 1)
                    else:  # the rows drawn so far, whole: nothing below row i matters
                        features = self._features(self._one_hot(x[:, :, : i + 1]), y)
                        features = features[:, :, -1:, j : j + 1]  # (n, F, 1, 1)
                    k = self.n_categories
                    logits = self.head(features)[:, ch * k : (ch + 1) * k, 0, 0]  # (n, K)
                    draw = torch.multinomial(logits.softmax(dim=-1), 1, generator=generator)
                    x[:, ch, i, j] = draw[:, 0]
            if self.architecture == "row":  # row i is complete: the states row i + 1 needs
                states = self._row(x, i, y, carries)[1]
                carries = [layer.carry(*s) for layer, s in zip(self.layers, states, strict=True)]
            if progress is not None:
                progress(1)
        return x

    def _features(self, one_hot: Tensor, y: Tensor | None) -> Tensor:
        """The recurrent stack's output (N, F, H', W') for one-hot images (N, C·K, H', W')
        of any height H'."""
        features = self.input_conv(one_hot)
        for layer in self.layers:
            if self.architecture == "row":
                features = layer(features, y)
            else:  # the mirrored direction reads the pixels of the rows above too
                features = layer(features, y, one_hot)
        return features

    def _row(
        self, x: Tensor, i: int, y: Tensor | None, carries: list[Carry | None]
    ) -> tuple[Tensor, list[tuple[Tensor, Tensor]]]:
        """Row i of the Row LSTM stack given the carries of row i − 1: its features (n, F,
        1, W) and each layer's states (h, c), (n, F, W) each.

        The mask-A convolution needs the ``input_kernel // 2`` rows above and row i; a
        window whose top is not row 0 has zero padding above it, which row i never reads.
        """
        top = max(0, i - self.input_kernel // 2)
        features = self.input_conv(self._one_hot(x[:, :, top : i + 1]))[:, :, -1:]  # (n,F,1,W)
        states = []
        for layer, carry in zip(self.layers, carries, strict=True):
            hidden, cells = layer.cell(layer.input_gates(features, y)[:, :, 0], carry)
            features = features + layer.out(hidden[:, :, None])
            states.append((hidden, cells))
        return features, states


class PixelRNN(NeuralModel):
    """PixelRNN: an exact autoregressive model of discrete images with LSTM layers over
    the rows (Row LSTM) or the diagonals (Diagonal BiLSTM) of the image.

    p(x) = ∏ p(x[c, i, j] | x before (c, i, j)) in raster order over pixels and, within a
    pixel, colour by colour; each conditional is a categorical over the K levels (K = 2
    for binary images). A mask-A convolution reads the one-hot levels, recurrent layers
    with residual connections carry context down the image, 1×1 convolutions give the
    logits (see :class:`PixelRNNNetwork`). Training uses teacher forcing: the whole image is
    the input and all C·H·W conditionals come out of one pass, whose sum is the exact
    log-likelihood. Data must be image-shaped: (C, H, W) examples, or flat examples whose
    data set declares an ``image_shape`` (digits).

    The trade-off against :class:`~ptheta.models.pixelcnn.PixelCNN`: each layer's
    recurrence is sequential (H row steps; H + W − 1 diagonal steps per direction for the
    Diagonal BiLSTM), a cost that grows with the image where a convolution's does not (on
    8×8 digits a one-layer Row LSTM still trains faster than a 3-layer PixelCNN, the
    Diagonal BiLSTM 1.3–3× slower; README); sampling is sequential over the C·H·W entries
    for both. A Row LSTM's receptive field is a triangle above the pixel: row
    i − m is seen up to max(s·m − 1, s·(m − 1) + k₀//2) columns right of column j (s =
    ``kernel_size // 2``, k₀ = ``input_kernel``) however many layers there are, so the
    pixels up and to the right in the rows just above are out of reach. That is a bias
    of the architecture (not of the data) toward what lies left in raster order; wider
    kernels shrink it and ``architecture="diagonal"`` removes it. The likelihood stays
    exact either way: every conditional depends only on earlier pixels, and
    ``module.receptive_field()`` says which.

    Costs: scoring is one pass (H sequential row steps per layer). Row LSTM sampling
    computes each row's recurrent states once, when the row is complete, and runs the
    network on one row (W positions) at each of the C·H·W steps: about C·W + 1 image
    passes in all, against C·H·W for re-running the network. Diagonal BiLSTM sampling
    re-runs the network on the rows drawn so far at every step (≈ C·H·W/2 passes of
    H + W − 1 diagonal steps): fine on 8×8 digits, slow on large images.

    Arguments:
        channels: feature channels (and LSTM hidden units) of each layer.
        n_layers: recurrent layers.
        kernel_size: odd k ≥ 3 of the Row LSTM's 1×k input-to-state and state-to-state
            convolutions (the paper's k = 3).
        input_kernel: odd k₀ ≥ 3 of the first, mask-A k₀×k₀ convolution (the paper's 7).
        architecture: ``"row"`` (Row LSTM) or ``"diagonal"`` (Diagonal BiLSTM).
        class_conditional: fit p(x | y) with the label as a learned bias on every gate
            (needs ``fit(X, y)``); ``sample(n, y=...)`` and ``predict_proba`` (Bayes'
            rule) then work.
        **training: the shared training arguments (``epochs``, ``lr``, ``dtype``, ...;
            see :data:`ptheta.models.neural.TRAINING_PARAMS`); ``verbose`` also shows a
            progress bar while sampling.

    Fitted attributes:
        module: the trained :class:`PixelRNNNetwork`.
        history_, best_epoch_, n_steps_: the training record.
        classes_, class_log_prior_: for class-conditional models.

    Example:
        >>> import ptheta
        >>> data = ptheta.datasets.load("digits-binary")
        >>> m = ptheta.make("pixelrnn", channels=8, n_layers=1, epochs=1, device="cpu")
        >>> m.fit(data.train).score_samples(data.test).shape
        (447,)

    References:
        van den Oord, Kalchbrenner & Kavukcuoglu (2016), Pixel Recurrent Neural Networks,
        ICML.
    """

    name: ClassVar[str] = "pixelrnn"
    family: ClassVar[str] = "autoregressive"
    likelihood: ClassVar[str] = "exact"
    data_kinds: ClassVar[tuple[str, ...]] = ("binary", "categorical")
    needs_image: ClassVar[bool] = True
    quick_params: ClassVar[dict[str, Any]] = {
        "channels": 8,
        "n_layers": 1,
        "input_kernel": 3,
        "epochs": 10,
        "batch_size": 32,
        "lr": 1e-2,
        "dtype": "float64",
        "device": "cpu",
    }
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        # one layer trains most steps in the demo's 10 s (2 CPU cores)
        "demo": {
            "channels": 32,
            "n_layers": 1,
            "input_kernel": 5,
            "lr": 1e-2,
            "batch_size": 64,
            "device": "cpu",
        },
    }
    parameters: ClassVar[dict[str, Param]] = {
        "channels": Int(low=1),
        "n_layers": Int(low=1),
        "kernel_size": Int(low=3, odd=True),
        "input_kernel": Int(low=3, odd=True),
        "architecture": Choice(*ARCHITECTURES),
        **CONDITIONAL,
    }

    def __init__(
        self,
        channels: int = 64,
        *,
        n_layers: int = 2,
        kernel_size: int = 3,
        input_kernel: int = 7,
        architecture: str = "row",
        class_conditional: bool = False,
        **training: Any,
    ) -> None:
        super().__init__(**training)
        self.channels = channels
        self.n_layers = n_layers
        self.kernel_size = kernel_size
        self.input_kernel = input_kernel
        self.architecture = architecture
        self.class_conditional = class_conditional

    def _build_module(self, spec: DataSpec, n_classes: int | None) -> nn.Module:
        return PixelRNNNetwork.from_config(self.config(), spec, n_classes)

    @torch.no_grad()
    def _sample(self, n: int, y: Any, rng: np.random.Generator) -> np.ndarray:
        # NeuralModel's sampler (the same draws from rng), with a progress bar over rows
        if not self.verbose:
            return super()._sample(n, y, rng)
        device = self._device()
        generator = torch.Generator(device=device).manual_seed(int(rng.integers(2**62)))
        labels = None
        if self._conditional():
            if y is None:
                idx = rng.choice(len(self.classes_), size=n, p=np.exp(self.class_log_prior_))
            else:
                idx = self._index_of(y)
            labels = torch.as_tensor(idx, dtype=torch.long, device=device)
        starts = range(0, n, _SAMPLE_CHUNK)
        rows = self._module.image_shape[1]
        chunks = []
        with progress_bar(len(starts) * rows, "sampling rows", enabled=True) as advance:
            for start in starts:
                part = None if labels is None else labels[start : start + _SAMPLE_CHUNK]
                size = min(_SAMPLE_CHUNK, n - start)
                draws = self._module.sample(size, part, generator=generator, progress=advance)
                chunks.append(draws.cpu().numpy())
        return self._from_model_units(np.concatenate(chunks))
