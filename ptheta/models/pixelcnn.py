"""PixelCNN: the gated PixelCNN, an exact autoregressive model of discrete images."""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ptheta.data.spec import DataSpec
from ptheta.errors import DataError
from ptheta.models.neural import CONDITIONAL, NeuralModel
from ptheta.nn.conv import GatedBlock, output_head
from ptheta.nn.decoders import CategoricalOutput, DiscretisedLogisticMixtureOutput, Output
from ptheta.nn.shapes import batched, sampled
from ptheta.params import Choice, Config, Int, Param, check_int, parameter_error

OUTPUTS: tuple[str, ...] = ("auto", "softmax", "logistic-mixture")
# output="auto": a K-way softmax (one-hot inputs) up to this many levels, the discretised
# logistic mixture (one scaled input per colour) above: at 256 levels the softmax's one-hot
# input and K logits per entry made the first and last layers 256·C channels wide
SOFTMAX_LEVELS = 16


def image_shape_of(spec: DataSpec, model: str = "pixelcnn") -> tuple[int, int, int]:
    """The (C, H, W) shape examples of ``spec`` are images of, or a DataError naming
    ``model``.

    The spec's ``image_shape`` when it has three axes and as many entries as an example
    (flat digits: (64,) viewed as (1, 8, 8)); otherwise the event shape itself when it has
    three axes.
    """
    image = spec.image_shape
    if image is not None and len(image) == 3 and math.prod(image) == spec.n_dims:
        return tuple(image)
    if len(spec.event_shape) == 3:
        return tuple(spec.event_shape)
    raise DataError(
        f"{model} needs image-shaped data: examples of shape (C, H, W), or flat examples "
        f"whose data set declares an image_shape (digits: (64,) drawn as (1, 8, 8)); got "
        f"examples of shape {spec.event_shape}. Reshape X to (N, C, H, W), or use a model "
        "for flat data such as made or nade"
    )


class GatedPixelCNN(nn.Module):
    """Gated PixelCNN over C×H×W images with K levels per entry (module level).

    p(x) = ∏ p(x[c, i, j] | every pixel before (i, j) in raster order, colours < c of
    pixel (i, j)). A first gated block of mask type A is followed by ``n_layers − 1`` of
    type B, and two 1×1 masked convolutions turn the horizontal stack into each entry's
    output parameters. Colours are masked within a pixel, so C > 1 is modelled exactly in
    the order above. Two outputs:

    - ``"softmax"``: the input is the one-hot encoding of the levels, (N, C·K, H, W), and
      each entry gets K logits;
    - ``"logistic-mixture"``: the input is one channel per colour, the level scaled to
      2x/(K − 1) − 1 ∈ [−1, 1], after a constant channel of ones (which tells the image's
      zero padding from a middle-grey pixel), (N, 1 + C, H, W); each entry gets the 3M
      numbers of a discretised mixture of M logistics
      (:class:`~ptheta.nn.decoders.DiscretisedLogisticMixtureOutput`).

    Arguments:
        image_shape: (C, H, W).
        n_categories: K, the number of levels of every entry (2 for binary images).
        channels: feature channels F of each stack.
        n_layers: gated blocks; the receptive field reaches ``n_layers · (k // 2)`` rows
            up and as many columns to each side.
        kernel_size: odd k ≥ 3 of the k×k vertical and 1×k horizontal kernels.
        n_classes: number of classes of a class-conditional model (the label adds a
            learned bias to every gate); None: unconditional.
        output: ``"softmax"`` or ``"logistic-mixture"`` (see above).
        n_mix: M, the mixture's number of logistic components.

    ``log_prob`` and ``loss`` take levels x (*batch, C, H, W) of any integer dtype (or flat
    (*batch, C·H·W) in that order) and y (*batch) of class indices (or None), and return
    (*batch); ``sample`` takes a sample shape (see :mod:`ptheta.nn.shapes`).

    Example:
        >>> import torch
        >>> from ptheta.models.pixelcnn import GatedPixelCNN
        >>> net = GatedPixelCNN((1, 4, 4), 2, channels=8, n_layers=3)
        >>> x = net.sample(5, generator=torch.Generator().manual_seed(0))
        >>> x.shape, net.log_prob(x).shape
        (torch.Size([5, 1, 4, 4]), torch.Size([5]))

    References:
        van den Oord, Kalchbrenner, Vinyals, Espeholt, Graves & Kavukcuoglu (2016),
        Conditional Image Generation with PixelCNN Decoders, NeurIPS.
    """

    @classmethod
    def from_config(
        cls, config: Config, spec: DataSpec, n_classes: int | None = None
    ) -> GatedPixelCNN:
        """The network of a :class:`PixelCNN`'s config (``channels``, ``n_layers``,
        ``kernel_size``) for image-shaped data of ``spec``."""
        return cls(
            image_shape_of(spec),
            spec.n_categories,
            channels=config.channels,
            n_layers=config.n_layers,
            kernel_size=config.kernel_size,
            n_classes=n_classes,
            output=config.output,
            n_mix=config.n_mix,
        )

    def __init__(
        self,
        image_shape: tuple[int, int, int],
        n_categories: int,
        *,
        channels: int = 64,
        n_layers: int = 5,
        kernel_size: int = 3,
        n_classes: int | None = None,
        output: str = "softmax",
        n_mix: int = 5,
    ) -> None:
        super().__init__()
        channels = check_int("pixelcnn", "channels", channels, low=1)
        n_layers = check_int("pixelcnn", "n_layers", n_layers, low=1)
        kernel_size = check_int("pixelcnn", "kernel_size", kernel_size, low=3)
        if kernel_size % 2 == 0:
            raise parameter_error("pixelcnn", "kernel_size", "odd (3, 5, 7, ...)", kernel_size)
        if output not in OUTPUTS[1:]:
            raise parameter_error("pixelcnn", "output", "'softmax' or 'logistic-mixture'", output)
        c, _, _ = image_shape
        self.image_shape = self.event_shape = tuple(image_shape)
        # how many rows above, and columns left of, a pixel its conditionals can depend on
        self.reach = n_layers * (kernel_size // 2)
        self.n_categories = n_categories
        self.n_classes = n_classes
        self.scaled = output == "logistic-mixture"
        if self.scaled:
            n_mix = check_int("pixelcnn", "n_mix", n_mix, low=1)
            self.output: Output = DiscretisedLogisticMixtureOutput(n_categories, n_mix)
        else:
            self.output = CategoricalOutput(n_categories)
        self.n_params = self.output.n_params  # per entry
        common = {"data_channels": c, "n_classes": n_classes}
        inputs = 1 + c if self.scaled else c * n_categories
        self.blocks = nn.ModuleList(
            [GatedBlock(inputs, channels, kernel_size, mask_type="A", **common)]
            + [GatedBlock(channels, channels, kernel_size, **common) for _ in range(n_layers - 1)]
        )
        self.head = output_head(channels, c, self.n_params)
        if self.scaled:  # start near uniform over the levels, components apart
            with torch.no_grad():
                self.head[-1].bias.copy_(self.output.initial_bias().repeat(c))

    def extra_repr(self) -> str:
        classes = f", n_classes={self.n_classes}" if self.n_classes else ""
        return (
            f"image_shape={self.image_shape}, n_categories={self.n_categories}, "
            f"output={self.output!r}, n_layers={len(self.blocks)}, reach={self.reach}{classes}"
        )

    def _one_hot(self, x: Tensor) -> Tensor:
        """Levels (N, C, H', W') → one-hot (N, C, K, H', W') in the weights' dtype."""
        dtype = self.head[-1].weight.dtype
        return F.one_hot(x, self.n_categories).permute(0, 1, 4, 2, 3).to(dtype)

    def _input(self, x: Tensor) -> Tensor:
        """Levels (N, C, H', W') → the first block's input (N, C·K or 1 + C, H', W')."""
        if not self.scaled:
            return self._one_hot(x).flatten(1, 2)  # colour-major: group c = colour c
        scaled = self.output.centres(x, self.head[-1].weight.dtype)  # (N, C, H', W')
        return self._with_ones(scaled)

    @staticmethod
    def _with_ones(scaled: Tensor) -> Tensor:
        # the constant first: channel_groups(1 + C, C) puts it in group 0 and colour c in c
        return torch.cat([torch.ones_like(scaled[:, :1]), scaled], dim=1)

    def _check_labels(self, y: Tensor | None) -> None:
        if self.n_classes is None and y is not None:
            raise DataError("this PixelCNN is unconditional (n_classes=None): call it without y")
        if self.n_classes is not None and y is None:
            raise DataError(f"this PixelCNN is conditional on {self.n_classes} classes: pass y")

    def _conditionals(self, inputs: Tensor, y: Tensor | None) -> Tensor:
        """First-block input (N, ·, H', W') → output parameters (N, C, H', W', P), for any
        image height H'."""
        n, _, h, w = inputs.shape
        v = hx = inputs
        for block in self.blocks:
            v, hx = block(v, hx, y)  # (N, F, H', W') each
        out = self.head(hx).reshape(n, self.image_shape[0], self.n_params, h, w)
        return out.permute(0, 1, 3, 4, 2)

    def conditionals(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """Output parameters of every entry's conditional, (N, C, H, W, P): K logits
        (softmax) or the mixture's 3M numbers.

        ``x`` is a LongTensor of levels, or a floating tensor taken as the encoded input
        itself — the one-hot encoding (N, C, K, H, W) for the softmax, the scaled levels
        (N, C, H, W) for the mixture — so that gradients with respect to the input can be
        taken (that is how the tests check that the parameters of entry (c, i, j) depend
        on earlier entries only).
        """
        self._check_labels(y)
        if not x.is_floating_point():
            inputs = self._input(x.reshape(len(x), *self.image_shape))
        elif self.scaled:
            inputs = self._with_ones(x)
        else:
            inputs = x.flatten(1, 2)
        return self._conditionals(inputs, y)

    def logits(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """The softmax's logits of every entry's conditional, (N, C, H, W, K): see
        :meth:`conditionals` (which also serves the mixture)."""
        return self.conditionals(x, y)

    @batched
    def log_prob(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """log p(x) (or log p(x | y)) in nats: (*batch, C, H, W) → (*batch)."""
        x = x.reshape(len(x), *self.image_shape)  # (N, C, H, W)
        logp = self.output.log_prob(x, self.conditionals(x, y))  # (N, C, H, W)
        return logp.flatten(1).sum(dim=1)

    def loss(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """Negative log-likelihood per example, (*batch)."""
        return -self.log_prob(x, y)

    @sampled
    @torch.no_grad()
    def sample(
        self, n: int, y: Tensor | None = None, generator: torch.Generator | None = None
    ) -> Tensor:
        """Draw images pixel by pixel and colour by colour, LongTensor (*sample_shape, C, H,
        W); ``sample_shape`` is an int n, a tuple, or () for one image.

        All randomness comes from ``generator`` (on the module's device).
        """
        self._check_labels(y)
        c, h, w = self.image_shape
        p = self.n_params
        x = torch.zeros(n, c, h, w, dtype=torch.long, device=self.head[-1].weight.device)
        for i in range(h):
            # The vertical stack at row i sees rows above i only, so it is computed once per
            # row, and only on the rows it can reach: rows [top, i). Rows below i never
            # matter. A window whose top is not row 0 is only used when everything above it
            # is out of reach, so its zero padding is never read by row i.
            top = max(0, i - self.reach)
            v = self._input(x[:, :, top : i + 1])  # (n, C·K or 1 + C, i − top + 1, W)
            links = []
            for block in self.blocks:
                v, link = block.vertical(v, y)  # (n, F, ·, W), (n, 2F, ·, W)
                links.append(link[:, :, -1:])  # row i: (n, 2F, 1, W)
            for j in range(w):
                # the horizontal stack and the head work within row i, and its kernels look
                # left only: columns [left, j] hold everything pixel (i, j) depends on
                left = max(0, j - self.reach)
                for ch in range(c):
                    hx = self._input(x[:, :, i : i + 1, left : j + 1])
                    for block, link in zip(self.blocks, links, strict=True):
                        hx = block.horizontal(hx, link[..., left : j + 1], y)  # (n, F, 1, ·)
                    params = self.head(hx)[:, ch * p : (ch + 1) * p, 0, -1]  # (n, P)
                    if self.scaled:
                        x[:, ch, i, j] = self.output.sample(params, generator)  # (n,)
                    else:
                        draw = torch.multinomial(params.softmax(dim=-1), 1, generator=generator)
                        x[:, ch, i, j] = draw[:, 0]  # (n,)
        return x


# PixelCNN's own defaults for the shared training arguments: small batches at a higher
# learning rate take several times more steps in a CPU budget than 128 at 1e-3, and the
# model improves with steps far more than with larger batches (bench/pixelcnn_throughput.py).
TRAINING_DEFAULTS: dict[str, Any] = {"batch_size": 32, "lr": 3e-3}


class PixelCNN(NeuralModel):
    """Gated PixelCNN: an exact autoregressive model of discrete images, pixel by pixel.

    p(x) = ∏ p(x[c, i, j] | x before (c, i, j)) in raster order over pixels and, within a
    pixel, colour by colour. Each conditional is a categorical over the K levels (K = 2
    for binary images) with the levels entering as one-hot vectors, or, for many levels
    (8-bit images), a discretised mixture of logistics over the levels (Salimans et al.
    2017) with each level entering as one number per colour, scaled to [−1, 1] (see
    ``output``). Masked convolutions (type A in the first layer, B after) in a vertical
    and a horizontal stack see the whole causal past within the receptive field, with no
    blind spot (see :class:`GatedPixelCNN`).
    Data must be image-shaped: (C, H, W) examples, or flat examples whose data set declares
    an ``image_shape`` (digits). Log-likelihoods take one network pass. Sampling takes C·H·W
    sequential steps (vectorised over the samples), each exact but cheap: the vertical stack
    runs once per row on the rows within reach, and each step runs the horizontal stack on
    the ``n_layers · (k // 2) + 1`` pixels of the current row it can see.

    Arguments:
        channels: feature channels of each stack.
        n_layers: gated blocks (1 of type A, then type B).
        kernel_size: odd k ≥ 3 of the k×k vertical and 1×k horizontal kernels; the
            receptive field reaches ``n_layers · (k // 2)`` pixels up, left and right.
        output: each entry's conditional: ``"softmax"`` (K logits, one-hot inputs: C·K
            input and output channels per pixel), ``"logistic-mixture"`` (a discretised
            mixture of ``n_mix`` logistics: 3·n_mix numbers per colour, one scaled input
            channel per colour; ordered levels, so neighbouring intensities share mass), or
            ``"auto"``: the softmax up to 16 levels (binary, 17-level digits), the mixture
            above (:data:`SOFTMAX_LEVELS`). The choice is kept as ``output_``.
        n_mix: M ≥ 1, the mixture's number of logistic components (unused by the softmax).
        class_conditional: fit p(x | y) with the label as a learned bias in every gated
            block (needs ``fit(X, y)``); ``sample(n, y=...)`` and ``predict_proba`` (Bayes'
            rule) then work.
        **training: the shared training arguments (``epochs``, ``lr``, ``dtype``, ...;
            see :data:`ptheta.models.neural.TRAINING_PARAMS`); PixelCNN's own defaults
            are ``batch_size=32`` and ``lr=3e-3`` (:data:`TRAINING_DEFAULTS`).

    The defaults (32 channels, 5 layers) are sized for a CPU time budget (``max_time``):
    many small steps beat few large ones there. The preset ``"large"``
    (``ptheta.make("pixelcnn", **PixelCNN.preset("large"))``; ``--set channels=64`` on
    the command line) is the former default, 64 channels: four times the work per
    example, for long runs or a GPU.

    Fitted attributes:
        module: the trained :class:`GatedPixelCNN`.
        output_: ``"softmax"`` or ``"logistic-mixture"``, what ``output`` chose for the data.
        history_, best_epoch_, n_steps_: the training record.
        classes_, class_log_prior_: for class-conditional models.

    Example:
        >>> import ptheta
        >>> data = ptheta.datasets.load("digits-binary")
        >>> m = ptheta.make("pixelcnn", channels=16, n_layers=3, epochs=1, device="cpu")
        >>> m.fit(data.train).score_samples(data.test).shape
        (447,)

    References:
        van den Oord, Kalchbrenner, Vinyals, Espeholt, Graves & Kavukcuoglu (2016),
        Conditional Image Generation with PixelCNN Decoders, NeurIPS; Salimans, Karpathy,
        Chen & Kingma (2017), PixelCNN++: Improving the PixelCNN with Discretized Logistic
        Mixture Likelihood and Other Modifications, ICLR.
    """

    name: ClassVar[str] = "pixelcnn"
    family: ClassVar[str] = "autoregressive"
    likelihood: ClassVar[str] = "exact"
    data_kinds: ClassVar[tuple[str, ...]] = ("binary", "categorical")
    needs_image: ClassVar[bool] = True
    quick_params: ClassVar[dict[str, Any]] = {
        "channels": 8,
        "n_layers": 2,
        "epochs": 10,
        "batch_size": 32,
        "lr": 1e-2,
        "dtype": "float64",
        "device": "cpu",
    }
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        # the former default size: four times the default's FLOPs per example, for long
        # budgets or a GPU (on a CPU it trains at about a quarter of the default's speed)
        "large": {"channels": 64, "n_layers": 5},
    }
    parameters: ClassVar[dict[str, Param]] = {
        "channels": Int(low=1),
        "n_layers": Int(low=1),
        "kernel_size": Int(low=3, odd=True),
        "output": Choice(*OUTPUTS),
        "n_mix": Int(low=1),
        **CONDITIONAL,
    }

    def __init__(
        self,
        channels: int = 32,
        *,
        n_layers: int = 5,
        kernel_size: int = 3,
        output: str = "auto",
        n_mix: int = 5,
        class_conditional: bool = False,
        **training: Any,
    ) -> None:
        super().__init__(**{**TRAINING_DEFAULTS, **training})
        self.channels = channels
        self.n_layers = n_layers
        self.kernel_size = kernel_size
        self.output = output
        self.n_mix = n_mix
        self.class_conditional = class_conditional

    def _output(self, spec: DataSpec) -> str:
        """``"softmax"`` or ``"logistic-mixture"`` for data of ``spec``: what the fit chose
        (``output_``: a loaded model rebuilds the network it saved), else ``output`` with
        "auto" resolved by the number of levels (:data:`SOFTMAX_LEVELS`)."""
        saved = getattr(self, "output_", None)
        if saved is not None:
            return saved
        output = self._params()["output"]
        if output == "auto":
            return "softmax" if spec.n_categories <= SOFTMAX_LEVELS else "logistic-mixture"
        return output

    def _build_module(self, spec: DataSpec, n_classes: int | None) -> nn.Module:
        config = self.config(output=self._output(spec))
        return GatedPixelCNN.from_config(config, spec, n_classes)

    def _fit_stream(self, data, y, spec, **fit_params) -> None:
        self.output_ = self._output(spec)
        super()._fit_stream(data, y, spec, **fit_params)

    def set_state(self, arrays: dict[str, Any], meta: dict[str, Any]) -> PixelCNN:
        # runs saved before the mixture existed recorded no output_: they were softmax
        return super().set_state(arrays, {"output_": "softmax", **meta})
