"""Normalizing flows: RealNVP/NICE, MAF and Glow: exact densities, dequantisation estimates."""

from __future__ import annotations

import hashlib
import math
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from ptheta.data.spec import DataSpec, check_values
from ptheta.errors import DataError, ParameterError
from ptheta.models.neural import CONDITIONAL, EXPLORER_QUICK, NeuralModel
from ptheta.nn.dequantize import Logit, Scale, UniformDequantizer, VariationalDequantizer
from ptheta.nn.flow_density import (
    BASES,
    MOG_COMPONENTS,
    MOG_HIDDEN,
    MOG_WEIGHTS,
    FlowDensity,
)
from ptheta.nn.flows import (
    ActNorm,
    BatchNorm,
    ConvNet,
    Coupling,
    FactorOut,
    Flow,
    FlowSequence,
    InvConv1x1,
    MADEAffine,
    Reshape,
    Squeeze,
    alternating_mask,
    channel_coupling,
    channel_mask,
    checkerboard_mask,
    vector_coupling,
)
from ptheta.params import (
    Choice,
    Float,
    Int,
    OneOf,
    Param,
    check_int,
    check_random_state,
)

# Dequantisation draws of the validation NLL the Trainer computes every epoch on discrete
# data (the fitted model scores with n_dequant_samples): its expectation is the same bound
# for any number of draws, each row's draws are the same every epoch. realnvp on 400
# validation rows of 28×28 binary digits, one thread: 90 s with 16 draws, 11 s with 2,
# against 54 s for a training epoch of 2,600 rows.
VALIDATION_DRAWS = 2
# the flows' own defaults for the shared training arguments: 3e-3 reached better numbers
# than 1e-3 in the same time, nothing else changed (28×28 binary digits, 300 s: realnvp
# 151.4 → 130.4 nats, maf 196.6 → 173.2, glow 123.9 → 111.7, nsf 126.9 → 122.0; digits
# 8×8 glow 2.279 → 2.199 bits/dim, nsf 96.3 → 95.0 nats; toy2d-moons maf 1.12 → 0.92,
# nsf 0.897 → 0.889 nats)
FLOW_TRAINING: dict[str, Any] = {"lr": 3e-3}
# maf's and nsf's weight decay over a MADE MoG base on discrete data
# (``weight_decay="auto"``; else 0). With a few thousand images the base memorises them:
# on 28×28 binary digits in five CPU minutes (maf, one layer over the base) the training
# NLL reached 55 nats and the test bound 144.5; weight decay 0.3 / 1 / 3 gave 132.0 /
# 125.8 / 130.3. On digits 8×8 it changed little (96.2 → 96.0 nats); on the continuous
# toy2d-moons (Gaussian base) it cost 0.92 → 1.41.
DISCRETE_WEIGHT_DECAY = 1.0
# what the families whose settings follow the base (maf, nsf; ``_Flow.follows_base``)
# declare and default to: ``n_layers`` and ``weight_decay`` "auto", resolved at fit
FOLLOWS_BASE_PARAMS: dict[str, Param] = {
    "n_layers": OneOf(Choice("auto"), Int(low=1)),
    "weight_decay": OneOf(Choice("auto"), Float(low=0)),
}
FOLLOWS_BASE_TRAINING: dict[str, Any] = {**FLOW_TRAINING, "weight_decay": "auto"}


def _image_shape(spec: DataSpec) -> tuple[int, int, int] | None:
    """The (C, H, W) shape examples of ``spec`` are images of, or None."""
    image = spec.image_shape
    if image is not None and len(image) == 3 and math.prod(image) == spec.n_dims:
        return tuple(image)
    if len(spec.event_shape) == 3:
        return tuple(spec.event_shape)
    return None


def _norm(kind: str, n_features: int) -> list[Flow]:
    return {"actnorm": [ActNorm(n_features)], "batchnorm": [BatchNorm(n_features)]}.get(kind, [])


class _Flow(NeuralModel):
    """What the three flow families share: preprocessing, dequantisation, embed, steps.

    Subclasses implement ``_layers(spec, image, n_classes)``: the flow from the
    preprocessed example (shape ``image`` when not None, else flat (D,)) to a flat latent.
    """

    family: ClassVar[str] = "flows"
    likelihood: ClassVar[str] = "exact"
    abilities: ClassVar[dict[str, Any]] = {
        "embeds": True,
        "dequantises_discrete": True,
        "partial_flows": True,
    }
    data_kinds: ClassVar[tuple[str, ...]] = ("binary", "categorical", "continuous")
    can_marginalise: ClassVar[bool] = False
    # what every flow family shares (see _COMMON_DOC); each adds its own
    parameters: ClassVar[dict[str, Param]] = {
        "hidden": Int(low=1),
        "base": Choice("auto", *BASES),
        "dequantization": Choice("auto", "uniform", "variational"),
        "n_dequant_samples": Int(low=1),
        "logit_alpha": Float(low=0, high=0.5, high_open=True),
        **CONDITIONAL,
    }
    renamed: ClassVar[dict[str, str]] = {"alpha": "logit_alpha"}
    # width of q(u | x)'s convolutional coupling networks on images, as a fraction of
    # ``hidden`` (q runs at full resolution: Glow's main flow runs on squeezed images, so
    # a q as wide as it would cost several times the flow; see _dequantizer_hidden); on
    # vectors q is as wide as the flow
    dequantizer_width: ClassVar[float] = 1.0
    # what ``base="auto"`` means on discrete data (on continuous data: "normal")
    discrete_base: ClassVar[str] = "normal"

    def _base(self, spec: DataSpec) -> str:
        """The base density for data of ``spec``: the fit's (``base_``: a loaded model
        rebuilds the network it saved), else ``base`` with ``"auto"`` resolved:
        :attr:`discrete_base` on discrete data, ``"normal"`` on continuous data."""
        saved = getattr(self, "base_", None)
        if saved is not None:
            return str(saved)
        choice = self._params()["base"]
        if choice != "auto":
            return choice
        return self.discrete_base if spec.is_discrete else "normal"

    def _mog_base(self, spec: DataSpec) -> tuple[list[int], int]:
        """The MADE MoG base's hidden layers and Gaussians per conditional: the fit's
        (``base_hidden_``, ``base_components_``), else K + 1 components on data of K
        levels (one per level, one more; at most :data:`MOG_COMPONENTS`),
        :data:`MOG_COMPONENTS` on continuous data, and one hidden layer of
        :data:`MOG_HIDDEN` units, fewer (at least 64) where the output layer (D · 3K
        units) would then hold more than :data:`MOG_WEIGHTS` weights. A MoG base fitted
        before these attributes existed had two layers of ``hidden`` units and
        :data:`MOG_COMPONENTS` components."""
        saved = getattr(self, "base_hidden_", None)
        if saved is not None:
            return [int(h) for h in saved], int(self.base_components_)
        if getattr(self, "spec_", None) is not None:  # fitted before the attributes existed
            return [int(self._params()["hidden"])] * 2, MOG_COMPONENTS
        k = spec.n_categories + 1 if spec.is_discrete else MOG_COMPONENTS
        k = min(k, MOG_COMPONENTS)
        width = min(MOG_HIDDEN, max(64, MOG_WEIGHTS // (spec.n_dims * 3 * k)))
        return [width], k

    def _dequantised(self) -> bool:
        return self.fitted_spec.is_discrete

    def _resolved_layers(self, auto: int) -> int:
        """The fit's layer count (``n_layers_``: a loaded model rebuilds the network it
        saved), else ``n_layers``, ``auto`` for ``"auto"`` (realnvp, maf and nsf declare
        it)."""
        saved = getattr(self, "n_layers_", None)
        if saved is not None:
            return int(saved)
        n_layers = self._params()["n_layers"]
        return auto if n_layers == "auto" else int(n_layers)

    def _layers_over_base(self, spec: DataSpec) -> int:
        """``n_layers`` with ``"auto"`` resolved for the families whose default base on
        discrete data is the MADE MoG (maf, nsf): one layer over it (the base is itself an
        autoregressive model), 5 over a Gaussian base."""
        return self._resolved_layers(1 if self._base(spec) == "mog" else 5)

    # ------------------------------------------------------------ weight decay
    # whether the family's ``n_layers`` and ``weight_decay`` follow the base (maf, nsf:
    # :data:`FOLLOWS_BASE_PARAMS`), resolved at fit as ``n_layers_`` by
    # :meth:`_layers_over_base` and ``weight_decay_`` by :meth:`_weight_decay`
    follows_base: ClassVar[bool] = False

    def _weight_decay(self, spec: DataSpec) -> float:
        """AdamW's weight decay: ``weight_decay`` with ``"auto"`` resolved:
        :data:`DISCRETE_WEIGHT_DECAY` over a MADE MoG base on discrete data (the case it
        was measured on), else 0."""
        choice = self._params()["weight_decay"]
        if choice != "auto":
            return float(choice)
        return DISCRETE_WEIGHT_DECAY if spec.is_discrete and self._base(spec) == "mog" else 0.0

    def _resolved_training(self) -> dict[str, Any]:
        saved = getattr(self, "weight_decay_", None)
        if saved is not None:
            return {"weight_decay": float(saved)}
        choice = self._params()["weight_decay"]
        if choice != "auto":  # also every run saved before weight_decay_ existed
            return {"weight_decay": float(choice)}
        raise ParameterError(
            f"{self.name}: weight_decay='auto' is chosen from the data (1 over the MADE MoG "
            "base on discrete data, else 0): fit the model first, or set a number"
        )

    # ------------------------------------------------------------ MADE layers' degrees
    def _made_layers(self) -> bool:
        """Whether the flow's layers are MADEs (maf; nsf with autoregressive layers)."""
        return False

    def _spread_degrees(self) -> bool:
        """Whether MADE layers narrower than the data spread their degrees over every
        variable: the fit's ``spread_degrees_``; a model fitted before it existed: False
        (its layers took the lowest degrees); not fitted yet: True."""
        saved = getattr(self, "spread_degrees_", None)
        if saved is not None:
            return bool(saved)
        return getattr(self, "spec_", None) is None

    def _fingerprint(self, x, spec: DataSpec) -> str:
        fingerprint = super()._fingerprint(x, spec)
        salt = ""
        if self._made_layers():
            # a checkpoint written before the spread holds weights of the lowest-degree
            # layers: it must not resume into spread ones
            salt += "/spread-degrees"
        if self._base(spec) == "mog":
            # nor one of a MoG base written before it became one wide layer (the layers
            # differ in number and shape: refused as another model's, not a load error)
            salt += "/mog-base-wide"
        if not salt:
            return fingerprint
        return hashlib.sha256((fingerprint + salt).encode()).hexdigest()[:16]

    def _dequantization(self, spec: DataSpec) -> str:
        """The dequantisation for data of ``spec``: what the fit chose
        (``dequantization_``: a loaded model rebuilds the network it saved), else
        ``dequantization`` with ``"auto"`` resolved: ``"variational"`` on discrete data,
        ``"none"`` on continuous data (which are not dequantised)."""
        saved = getattr(self, "dequantization_", None)
        if saved is not None:
            return str(saved)
        if not spec.is_discrete:
            return "none"
        choice = self._params()["dequantization"]
        return "variational" if choice == "auto" else choice

    def _dequantizer_hidden(self, spec: DataSpec) -> int:
        """Width of q(u | x)'s coupling networks: the fit's (``dequantizer_hidden_``), else
        ``dequantizer_width`` × ``hidden`` (at least 8) on images and ``hidden`` on
        vectors. Runs saved before this attribute existed used ``hidden``."""
        saved = getattr(self, "dequantizer_hidden_", None)
        if saved is not None:
            return int(saved)
        hidden = int(self._params()["hidden"])
        if getattr(self, "spec_", None) is not None:  # fitted before the attribute existed
            return hidden
        if self._image(spec) is None:
            return hidden
        return max(8, round(self.dequantizer_width * hidden))

    def _fit_stream(self, data, y, spec, **fit_params) -> None:
        if self.follows_base:
            self.n_layers_ = self._layers_over_base(spec)
            self.weight_decay_ = self._weight_decay(spec)
        self.base_ = self._base(spec)
        if self.base_ == "mog":
            self.base_hidden_, self.base_components_ = self._mog_base(spec)
        if self._made_layers():
            self.spread_degrees_ = True
        self.dequantization_ = self._dequantization(spec)
        if self.dequantization_ == "variational":
            self.dequantizer_hidden_ = self._dequantizer_hidden(spec)
        super()._fit_stream(data, y, spec, **fit_params)

    def _scoring_settings(self, module: nn.Module) -> None:
        module.n_dequant_samples = self.n_dequant_samples  # validation took VALIDATION_DRAWS

    def _fitted_likelihood(self, spec: DataSpec) -> str:
        # on discrete data: a Monte-Carlo estimate of the dequantisation bound on log P(x)
        return "estimate" if spec.is_discrete else "exact"

    @torch.no_grad()
    def _log_prob_with_std(self, x: np.ndarray, label: int | None) -> tuple[np.ndarray, ...]:
        spec, device = self.fitted_spec, self._device()
        scores, errors = [], []
        for chunk in np.array_split(x, max(1, int(np.ceil(len(x) / 1024)))):
            xt = self._tensors(chunk, None, spec)[0].to(device)
            y = None if label is None else torch.full((len(xt),), label, device=device)
            lp, se = self._module.log_prob_with_std(xt, y)
            scores.append(lp.double().cpu().numpy())
            errors.append(se.double().cpu().numpy())
        return np.concatenate(scores), np.concatenate(errors)

    def _log_prob(self, x: np.ndarray, label: int | None) -> np.ndarray:
        return self._log_prob_with_std(x, label)[0]

    def _layers(self, spec: DataSpec, image: tuple[int, ...] | None, n_classes: int | None):
        raise NotImplementedError

    def _image(self, spec: DataSpec) -> tuple[int, int, int] | None:
        return _image_shape(spec)

    def _build_module(self, spec: DataSpec, n_classes: int | None) -> FlowDensity:
        config = self.config().replace(base=self._base(spec))
        if getattr(self, "_fitting", False):
            draws = min(self.n_dequant_samples, VALIDATION_DRAWS)
            config = config.replace(n_dequant_samples=draws)
        image = self._image(spec)
        first = image[0] if image is not None else spec.n_dims
        layers: list[Flow] = []
        dequantizer: nn.Module | None = None
        if spec.is_discrete:
            k = spec.n_categories
            # [0, K) → [0, 1) → ℝ, log-dets counted
            layers += [Scale(1.0 / k), Logit(config.logit_alpha)]
            if self._dequantization(spec) == "uniform":
                dequantizer = UniformDequantizer()
            else:
                width = self._dequantizer_hidden(spec)
                dequantizer = VariationalDequantizer(
                    spec.event_shape, k, hidden=width, n_layers=4, image_shape=image
                )
        if image is not None:
            layers.append(Reshape(spec.event_shape, image))
        else:
            layers.append(Reshape(spec.event_shape, (spec.n_dims,)))
        layers.append(ActNorm(first))  # data-dependent standardisation of the input
        layers += self._layers(spec, image, n_classes)
        hidden, components = self._mog_base(spec) if config.base == "mog" else ([], 0)
        return FlowDensity.from_config(
            config,
            spec,
            n_classes,
            transform=FlowSequence(layers),
            dequantizer=dequantizer,
            base_hidden=hidden,
            n_components=components or MOG_COMPONENTS,
        )

    # ----------------------------------------------------------------- representations
    def _labels(self, y: Any, n: int) -> Tensor | None:
        index = self._class_index(y, n, why="f⁻¹ depends on the class")
        return None if index is None else torch.as_tensor(index, device=self._device())

    def _input(self, X: Any) -> Tensor:
        spec = self.fitted_spec
        x = check_values(X, spec)
        return self._tensors(x, None, spec)[0].to(self._device())

    @torch.no_grad()
    def embed(self, X: Any, y: Any = None) -> np.ndarray:
        """Latent codes z = f⁻¹(x) (the flow's normalising direction), shape (N, D).

        On discrete data the code of the cell centre x + ½ (the dequantised point with
        the average noise). Class-conditional flows need ``y``: f depends on the class.
        """
        self._check_fitted()
        x = self._input(X)
        return self._module.embed(x, self._labels(y, len(x))).double().cpu().numpy()

    @torch.no_grad()
    def transform_steps(self, X: Any, y: Any = None) -> list[np.ndarray]:
        """The points after every layer, from the data to the latent code.

        Returns ``[x, after layer 1, ..., z]`` (discrete data: starting from x + ½); each
        array keeps the layer's output shape (images are squeezed and flattened on the
        way). Reversed, the list is the path along which ``sample`` warps a base draw into
        data space, since every layer is a bijection: on 2-D data, an animation.
        """
        self._check_fitted()
        x = self._input(X)
        steps = self._module.steps(x, self._labels(y, len(x)))
        return [s.double().cpu().numpy() for s in steps]

    # ----------------------------------------------------------------- partial flows
    def n_flow_layers(self) -> int:
        """L, the number of layers of the fitted flow (preprocessing layers included)."""
        self._check_fitted()
        return len(self._module.transform.layers)

    def _partial_tail(self, k: Any) -> list[Flow]:
        """The last k data→latent layers, i.e. the first k sampling layers (validated)."""
        self._check_fitted()
        spec = self.fitted_spec
        if spec.is_discrete or self._conditional() or self._image(spec) is not None:
            # the intermediate spaces are the data's space only for flat continuous data
            raise DataError(
                f"{self.name!r}: partial flows are defined for an unconditional flow fitted "
                "on flat continuous data (not images)"
            )
        layers = list(self._module.transform.layers)
        n = len(layers)
        k = check_int(self.name, "k", k, low=0, high=n, hint=f"the flow has {n} layers")
        return layers[n - k :]

    @torch.no_grad()
    def partial_log_prob(self, X: Any, k: int) -> np.ndarray:
        """Log-density (N,) at X (N, D) after the first ``k`` of the flow's L sampling layers.

        The flow maps data to latent by f = f_L ∘ … ∘ f_1 and samples x = f⁻¹(z). After the
        first k sampling layers a base draw z is at u = f_{L−k+1}⁻¹ ∘ … ∘ f_L⁻¹(z), whose
        density is p_k(u) = p_base(g(u)) |det ∂g/∂u| with g = f_L ∘ … ∘ f_{L−k+1}: exactly
        normalised for every k; p_0 is the base, p_L the fitted model (``score_samples``).
        Unconditional flows fitted on flat continuous data only.

        Example:
            >>> import numpy as np
            >>> from ptheta.models import RealNVP
            >>> x = np.random.default_rng(0).normal(size=(200, 2))
            >>> flow = RealNVP(hidden=8, n_layers=2, epochs=1, dtype="float64").fit(x)
            >>> L = flow.n_flow_layers()
            >>> np.allclose(flow.partial_log_prob(x[:5], L), flow.score_samples(x[:5]))
            True
        """
        tail = self._partial_tail(k)
        flow = self._module
        x = check_values(X, self.fitted_spec)
        v = self._tensors(x, None, self.fitted_spec)[0].to(self._device())
        logdet = torch.zeros(len(v), dtype=flow.loc.dtype, device=flow.loc.device)
        for layer in tail:
            v, ld = layer(v)
            logdet = logdet + ld
        log_p = flow.base_log_prob(v.flatten(1)) + logdet
        return log_p.double().cpu().numpy() + self._log_jacobian()

    @torch.no_grad()
    def partial_sample(self, n_samples: int, k: int, *, random_state: Any = 0) -> np.ndarray:
        """``n_samples`` draws (n, D) of the density after the first ``k`` sampling layers
        (see :meth:`partial_log_prob`): base draws, seeded by ``random_state`` (an integer
        seed, or None for fresh randomness), pushed through those layers."""
        tail = self._partial_tail(k)
        flow = self._module
        n = check_int(self.name, "n_samples", n_samples, low=1)
        seed = check_random_state(self.name, "random_state", random_state)
        gen = torch.Generator(device=flow.loc.device)
        gen.seed() if seed is None else gen.manual_seed(seed)
        u = flow.base_sample(n, None, gen)  # (n, D) base draws
        for layer in reversed(tail):
            u, _ = layer.inverse(u)
        return self._from_model_units(u.double().cpu().numpy())


_COMMON_DOC = """        base: ``"normal"`` (standard normal latent), ``"learned"`` (a learned
            diagonal Gaussian), ``"mog"`` (the MAF paper's MADE MoG: a MADE of one hidden
            layer of :data:`MOG_HIDDEN` units whose conditionals are mixtures of
            Gaussians, K + 1 of them on data of K levels and :data:`MOG_COMPONENTS` at
            most; exact; sampling takes D passes) or ``"auto"`` (``"mog"`` for maf and nsf
            on discrete data, else ``"normal"``; see ``base_``).
        dequantization: how discrete data are dequantised: ``"auto"`` (the default:
            ``"variational"``), ``"uniform"`` (u ~ U[0, 1)) or ``"variational"`` (u from a
            learned conditional flow q(u | x) of 4 affine couplings, trained with the model:
            a tighter bound for some extra training time, see ``dequantization_``). Continuous
            data are not dequantised, whatever the choice.
        n_dequant_samples: draws of u per example when scoring discrete data; each
            example's draws are a fixed function of ``random_state`` and its values, so
            scores are deterministic and independent of the batch; more draws shrink the
            standard error (``score_samples(X, return_std=True)``; NaN with one draw). The
            validation NLL that early stopping watches during fit uses min(draws, 2)
            (:data:`VALIDATION_DRAWS`): the same bound, for an eighth of the time.
        logit_alpha: α of the logit preprocessing of discrete data (scaled to [0, 1) by
            1/K): logit(α + (1 − 2α) u); was ``alpha``.
        class_conditional: fit p(x | y) with ``fit(X, y)``; the one-hot class is a context
            input of every coupling / MADE network; ``sample(n, y=...)`` and
            ``predict_proba`` (Bayes' rule) then work.
        **training: the shared training arguments (epochs, lr, weight_decay, patience,
            max_time, dtype, device, random_state, ...; see
            ``ptheta.models.neural.TRAINING_PARAMS``)."""


_FITTED_DOC = """        base_: the base density this fit used (``"auto"`` resolved); with a MADE
            MoG base, base_hidden_ (its hidden layers) and base_components_ (Gaussians
            per conditional).
        dequantization_: the dequantisation this fit used: ``"variational"`` or
            ``"uniform"`` on discrete data (``"auto"`` resolved), ``"none"`` on continuous
            data; dequantizer_hidden_: the width of q(u | x)'s networks (variational)."""


def _document(cls: type) -> type:
    """Put the arguments and fitted attributes every flow family shares into the class
    docstring."""
    doc = cls.__doc__.replace("        {common}\n", _COMMON_DOC.lstrip("\n") + "\n")
    cls.__doc__ = doc.replace("        {fitted}\n", _FITTED_DOC + "\n")
    return cls


@_document
class RealNVP(_Flow):
    """RealNVP / NICE: affine (or additive) coupling flows with exact densities.

    Every layer keeps the entries of a mask and shifts and scales the others by functions
    of them (see :class:`~ptheta.nn.flows.Coupling`). Vectors use alternating masks and
    MLP networks; image-shaped data (C, H, W), or flat data whose data set declares an
    ``image_shape`` (digits), use ``n_layers`` checkerboard couplings, a squeeze, then
    ``n_layers`` channel couplings with convolutional networks. Normalisation layers
    (actnorm or batch norm) follow every coupling, and an actnorm standardises the input.

    **Defaults for a time budget.** On images a step at full resolution is costly on a
    CPU, and the model improves with steps: ``n_layers="auto"`` is 4 couplings per scale
    on images (6 on vectors), q(u | x)'s networks on images are a quarter of ``hidden``
    wide (as in :class:`Glow`), and the learning rate is ``lr=3e-3``
    (:data:`FLOW_TRAINING`). On 28×28 binary digits in five CPU minutes the bound went
    from 151.4 nats (6 per scale, q as wide as the flow, ``lr=1e-3``: 100 steps) to 127.3
    (183 steps), below the Chow–Liu tree's 134.9 (see the README).

    **Discrete data.** Binary and categorical data are dequantised (x + u), scaled to
    [0, 1) and logit-transformed, all inside the model with their log-determinants, so that
    ``score_samples`` estimates the dequantisation lower bound on the discrete log P(x) in
    nats (``units_ == "discrete"``), comparable with the exact numbers of discrete families.
    The bound is an expectation over u, averaged over ``n_dequant_samples`` draws, so the
    score is an unbiased Monte-Carlo estimate of it (``likelihood_ == "estimate"``; its
    standard error comes with ``score_samples(X, return_std=True)``), and E[exp(score)] ≤
    P(x). By default (``dequantization="auto"``) u comes from a learned q(u | x)
    (variational dequantisation, Ho et al., 2019), which tightens the bound for about 1.5×
    the time of a training step; ``dequantization="uniform"`` takes u ~ U[0, 1)^D. On
    continuous data it is the exact log-density.

    Arguments:
        hidden: width (an int) of the coupling networks: the units of both hidden layers
            of each MLP, or the channels of each convolutional network.
        n_layers: couplings (per scale for images); ``"auto"``: 4 on images, 6 on vectors
            (see ``n_layers_``).
        coupling: ``"affine"`` (RealNVP) or ``"additive"`` (NICE, volume-preserving).
        norm: ``"actnorm"``, ``"batchnorm"`` or ``"none"`` after every coupling.
        {common}

    Fitted attributes:
        module: the trained :class:`~ptheta.nn.flow_density.FlowDensity`; history_,
        best_epoch_ (training record);
        classes_, class_log_prior_ for class-conditional flows.
        n_layers_: the couplings per scale this fit used (``"auto"`` resolved).
        {fitted}

    Example:
        >>> import ptheta
        >>> data = ptheta.datasets.load("toy2d-moons")
        >>> m = ptheta.make("realnvp", hidden=32, epochs=2, device="cpu").fit(data.train)
        >>> m.score_samples(data.test.x).shape, m.embed(data.test.x[:3]).shape
        ((1000,), (3, 2))

    References:
        Dinh, Krueger & Bengio (2015), NICE: Non-linear Independent Components Estimation.
        Dinh, Sohl-Dickstein & Bengio (2017), Density estimation using Real NVP, ICLR.
        Ho, Chen, Srinivas, Duan & Abbeel (2019), Flow++: Improving Flow-Based Generative
        Models with Variational Dequantization and Architecture Design, ICML.
    """

    name: ClassVar[str] = "realnvp"
    quick_params: ClassVar[dict[str, Any]] = {
        "hidden": 16,
        "n_layers": 4,
        "epochs": 10,
        "batch_size": 32,
        "lr": 1e-2,
        "n_dequant_samples": 16,
        "dtype": "float64",
        "device": "cpu",
    }
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "demo": {
            "hidden": 32,
            "n_layers": 4,
            "n_dequant_samples": 4,
            "lr": 3e-3,
            "batch_size": 64,
            "device": "cpu",
        },
        "explorer": {"hidden": 64, "n_layers": 8, "epochs": 200, "lr": 3e-3, "max_time": 60},
        "explorer-quick": {"hidden": 16, "n_layers": 4, **EXPLORER_QUICK},
    }
    parameters: ClassVar[dict[str, Param]] = {
        "n_layers": OneOf(Choice("auto"), Int(low=1)),
        "coupling": Choice("affine", "additive"),
        "norm": Choice("actnorm", "batchnorm", "none"),
    }

    def __init__(
        self,
        hidden: int = 64,
        *,
        n_layers: int | str = "auto",
        coupling: str = "affine",
        norm: str = "actnorm",
        base: str = "normal",
        dequantization: str = "auto",
        n_dequant_samples: int = 16,
        logit_alpha: float = 0.05,
        class_conditional: bool = False,
        **training: Any,
    ) -> None:
        super().__init__(**{**FLOW_TRAINING, **training})
        self.hidden = hidden
        self.n_layers = n_layers
        self.coupling = coupling
        self.norm = norm
        self.base = base
        self.dequantization = dequantization
        self.n_dequant_samples = n_dequant_samples
        self.logit_alpha = logit_alpha
        self.class_conditional = class_conditional

    # on images q(u | x) runs at full resolution, 4 couplings: as wide as the flow it cost
    # about as much as the flow's own full-resolution couplings (see the class docstring)
    dequantizer_width: ClassVar[float] = 0.25

    def _n_layers(self, image: tuple[int, ...] | None) -> int:
        """Couplings per scale: ``n_layers`` with ``"auto"`` resolved (4 on images, 6
        on vectors)."""
        return self._resolved_layers(6 if image is None else 4)

    def _fit_stream(self, data, y, spec, **fit_params) -> None:
        self.n_layers_ = self._n_layers(self._image(spec))
        super()._fit_stream(data, y, spec, **fit_params)

    def _layers(self, spec, image, n_classes):
        n, additive = self._n_layers(image), self.coupling == "additive"
        h, ctx = self.hidden, n_classes or 0
        layers: list[Flow] = []
        if image is None:
            d = spec.n_dims
            for i in range(n):
                mask = alternating_mask(d, i % 2)
                layers += [vector_coupling(mask, [h, h], context_features=ctx, additive=additive)]
                layers += _norm(self.norm, d)
            return layers
        shape = image
        for i in range(n):
            net = ConvNet(shape[0], h, 2 * shape[0], context_features=ctx)
            layers += [Coupling(checkerboard_mask(shape, i % 2), net, additive=additive)]
            layers += _norm(self.norm, shape[0])
        c, hh, ww = shape
        if hh % 2 == 0 and ww % 2 == 0:
            shape = (4 * c, hh // 2, ww // 2)
            layers.append(Squeeze())
            for i in range(n):
                mask, c4 = channel_mask(shape[0], i % 2), shape[0]
                net = ConvNet(int(mask.sum()), h, 2 * (c4 - int(mask.sum())), context_features=ctx)
                layers += [Coupling(mask, net, additive=additive)]
                layers += _norm(self.norm, c4)
        layers.append(Reshape(shape, (spec.n_dims,)))
        return layers


@_document
class MAF(_Flow):
    """Masked autoregressive flow: a stack of MADE affine transforms, densities in one pass.

    Each layer is a MADE (:class:`~ptheta.nn.flows.MADEAffine`) giving a shift and a
    log-scale for every variable from the variables before it; the ordering is reversed
    from one layer to the next. Densities take one pass per layer; sampling inverts each
    layer variable by variable (D passes per layer). Examples are flattened to vectors.
    Discrete data are dequantised as in :class:`RealNVP` (``score_samples`` is then an
    unbiased estimate of a lower bound on the discrete log P(x), with its standard error).

    **Base density.** On discrete data the default base (``base="auto"``) is a MADE MoG
    (the paper's "MAF MoG"): given the variables before it, a dequantised binary pixel
    has two modes (one per level), which a Gaussian base under affine layers cannot
    hold. The base is itself an autoregressive model (one hidden layer of
    :data:`MOG_HIDDEN` units, K + 1 Gaussians per conditional on data of K levels), so
    over it ``n_layers="auto"`` takes one MADE layer (5 over a Gaussian base), and
    ``weight_decay="auto"`` is :data:`DISCRETE_WEIGHT_DECAY` (0 over a Gaussian base):
    with a few thousand images the base memorises them otherwise. On 28×28 binary digits
    in five CPU minutes the bound went from 166.4 nats (two layers of 64 units and 10
    components in the base, 5 MADE layers, no weight decay) to 126.3,
    below the Chow–Liu tree's 134.9; on digits 8×8 from 101.1 to 96.0 (see the README).
    On continuous data the base is N(0, I). maf's learning rate is ``lr=3e-3``
    (:data:`FLOW_TRAINING`).

    **Wide data.** A MADE layer narrower than the number of variables spreads its units'
    degrees over all of them (``spread_degrees_``), so that the late conditionals see the
    variables before them; runs saved before this gave the units the lowest degrees (64
    units on 784 pixels: every conditional saw the first 64 pixels at most) and reload so.
    On 28×28 binary digits in five minutes beside another job: 192.9 → 184.6 nats.

    Arguments:
        hidden: units (an int) of each of the MADE layers' two hidden layers.
        n_layers: MADE layers; ``"auto"``: 1 over a MADE MoG base, 5 over a Gaussian one
            (see ``n_layers_``).
        weight_decay: AdamW's (a training argument, with its own default here):
            ``"auto"``: :data:`DISCRETE_WEIGHT_DECAY` over a MADE MoG base on discrete
            data, else 0.
        norm: ``"actnorm"``, ``"batchnorm"`` (as in the MAF paper) or ``"none"`` between
            layers.
        {common}

    Fitted attributes:
        module: the trained :class:`~ptheta.nn.flow_density.FlowDensity`; history_, best_epoch_;
        classes_, class_log_prior_ for class-conditional flows.
        spread_degrees_: True: the MADE layers' degrees are spread (see above).
        n_layers_, weight_decay_: the MADE layers and the weight decay this fit used
        (``"auto"`` resolved).
        {fitted}

    Example:
        >>> import ptheta
        >>> data = ptheta.datasets.load("toy2d-8gaussians")
        >>> m = ptheta.make("maf", hidden=32, epochs=2, device="cpu").fit(data.train)
        >>> m.sample(4, random_state=0).shape
        (4, 2)

    References:
        Papamakarios, Pavlakou & Murray (2017), Masked Autoregressive Flow for Density
        Estimation, NeurIPS.
    """

    name: ClassVar[str] = "maf"
    quick_params: ClassVar[dict[str, Any]] = {
        "hidden": 16,
        "n_layers": 3,
        "epochs": 10,
        "batch_size": 32,
        "lr": 1e-2,
        "n_dequant_samples": 16,
        "dtype": "float64",
        "device": "cpu",
    }
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "explorer": {"hidden": 64, "n_layers": 5, "epochs": 200, "lr": 3e-3, "max_time": 60},
        "explorer-quick": {"hidden": 16, "n_layers": 3, **EXPLORER_QUICK},
    }
    parameters: ClassVar[dict[str, Param]] = {
        **FOLLOWS_BASE_PARAMS,
        "norm": Choice("actnorm", "batchnorm", "none"),
    }

    def __init__(
        self,
        hidden: int = 64,
        *,
        n_layers: int | str = "auto",
        norm: str = "actnorm",
        base: str = "auto",
        dequantization: str = "auto",
        n_dequant_samples: int = 16,
        logit_alpha: float = 0.05,
        class_conditional: bool = False,
        **training: Any,
    ) -> None:
        super().__init__(**{**FOLLOWS_BASE_TRAINING, **training})
        self.hidden = hidden
        self.n_layers = n_layers
        self.norm = norm
        self.base = base
        self.dequantization = dequantization
        self.n_dequant_samples = n_dequant_samples
        self.logit_alpha = logit_alpha
        self.class_conditional = class_conditional

    discrete_base: ClassVar[str] = "mog"
    follows_base: ClassVar[bool] = True

    def _image(self, spec: DataSpec) -> None:
        return None  # MADE works on flat vectors

    def _made_layers(self) -> bool:
        return True

    def _layers(self, spec, image, n_classes):
        n, d = self._layers_over_base(spec), spec.n_dims
        spread = self._spread_degrees()
        layers: list[Flow] = []
        for i in range(n):
            order = torch.arange(d) if i % 2 == 0 else torch.arange(d).flip(0)
            layers.append(
                MADEAffine(
                    d,
                    [self.hidden] * 2,
                    ordering=order,
                    context_features=n_classes or 0,
                    spread_degrees=spread,
                )
            )
            layers += _norm(self.norm, d)
        return layers


@_document
class Glow(_Flow):
    """Glow: actnorm, invertible 1×1 convolutions and affine couplings, multi-scale.

    Each level squeezes the image (when its height and width are even), applies
    ``n_steps`` steps of [actnorm → LU-parameterised 1×1 convolution → affine coupling],
    and then factors out half of the channels straight to the latent (they are modelled by
    the base distribution) while the other half goes on to the next level. For 8×8 digits
    and ``n_levels=2``: (1, 8, 8) → (4, 4, 4) → 2 channels out, (2, 4, 4) → (8, 2, 2).
    Couplings split channels; with a single channel (no squeeze possible) they use a
    checkerboard. Images only: examples of shape (C, H, W), or flat examples whose data set
    declares an ``image_shape``. Discrete data are dequantised as in :class:`RealNVP`;
    q(u | x) works at full resolution while the couplings work on squeezed images, so its
    networks are a quarter of ``hidden`` wide (as wide, q would cost 3–4× the flow).
    glow trains at ``lr=3e-3`` (:data:`FLOW_TRAINING`): on 28×28 binary digits in five
    CPU minutes 111.7 nats against 123.9 at 1e-3, and on digits 8×8 at defaults 2.199
    bits/dim against 2.279.

    Arguments:
        hidden: channels (an int) of the coupling networks.
        n_levels: scales of the multi-scale architecture.
        n_steps: flow steps per level.
        {common}

    Fitted attributes:
        module: the trained :class:`~ptheta.nn.flow_density.FlowDensity`; history_, best_epoch_;
        classes_, class_log_prior_ for class-conditional flows.
        {fitted}

    Example:
        >>> import ptheta
        >>> data = ptheta.datasets.load("digits")
        >>> m = ptheta.make("glow", hidden=16, n_steps=2, epochs=1, device="cpu")
        >>> m.fit(data.train).sample(2, random_state=0).shape
        (2, 64)

    References:
        Kingma & Dhariwal (2018), Glow: Generative Flow with Invertible 1x1 Convolutions,
        NeurIPS.
    """

    name: ClassVar[str] = "glow"
    needs_image: ClassVar[bool] = True
    # q(u | x) works at full resolution, the couplings on squeezed images: a quarter of
    # their width keeps q's cost a fraction of the flow's (bench/flow_defaults.py)
    dequantizer_width: ClassVar[float] = 0.25
    # continuous images are modelled too (see _image), but the registry's contract data
    # has no continuous image case, so only the discrete kinds are declared
    data_kinds: ClassVar[tuple[str, ...]] = ("binary", "categorical")
    quick_params: ClassVar[dict[str, Any]] = {
        "hidden": 8,
        "n_steps": 2,
        "n_levels": 2,
        "epochs": 10,
        "batch_size": 32,
        "lr": 1e-2,
        "n_dequant_samples": 16,
        "dtype": "float64",
        "device": "cpu",
    }
    parameters: ClassVar[dict[str, Param]] = {"n_levels": Int(low=1), "n_steps": Int(low=1)}

    def __init__(
        self,
        hidden: int = 64,
        *,
        n_levels: int = 2,
        n_steps: int = 4,
        base: str = "normal",
        dequantization: str = "auto",
        n_dequant_samples: int = 16,
        logit_alpha: float = 0.05,
        class_conditional: bool = False,
        **training: Any,
    ) -> None:
        super().__init__(**{**FLOW_TRAINING, **training})
        self.hidden = hidden
        self.n_levels = n_levels
        self.n_steps = n_steps
        self.base = base
        self.dequantization = dequantization
        self.n_dequant_samples = n_dequant_samples
        self.logit_alpha = logit_alpha
        self.class_conditional = class_conditional

    def _image(self, spec: DataSpec) -> tuple[int, int, int]:
        image = _image_shape(spec)
        if image is None:
            raise DataError(
                f"glow needs image-shaped data: examples of shape (C, H, W), or flat examples "
                f"whose data set declares an image_shape (digits: (64,) as (1, 8, 8)); got "
                f"examples of shape {spec.event_shape}. Reshape X to (N, C, H, W), or use "
                "realnvp or maf for vectors"
            )
        return image

    def _layers(self, spec, image, n_classes):
        levels, steps = int(self.n_levels), int(self.n_steps)
        g = torch.Generator().manual_seed(self._seed())
        return self._level(image, levels, steps, n_classes or 0, g)

    def _level(self, shape, levels: int, steps: int, ctx: int, g) -> list[Flow]:
        c, h, w = shape
        layers: list[Flow] = []
        if h % 2 == 0 and w % 2 == 0:
            layers.append(Squeeze())
            c, h, w = shape = (4 * c, h // 2, w // 2)
        for i in range(steps):
            if c >= 2:
                coupling = channel_coupling(c, i % 2, self.hidden, context_features=ctx)
            else:
                net = ConvNet(c, self.hidden, 2 * c, context_features=ctx)
                coupling = Coupling(checkerboard_mask(shape, i % 2), net)
            layers += [ActNorm(c), InvConv1x1(c, generator=g), coupling]
        if levels > 1 and c >= 2:
            inner = FlowSequence(self._level((c // 2, h, w), levels - 1, steps, ctx, g))
            layers.append(FactorOut(shape, c // 2, inner))
        else:
            layers.append(Reshape(shape, (c * h * w,)))
        return layers
