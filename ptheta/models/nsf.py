"""Neural spline flows: rational-quadratic splines in coupling or autoregressive layers."""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from ptheta.data.spec import DataSpec
from ptheta.models.flows import (
    FOLLOWS_BASE_PARAMS,
    FOLLOWS_BASE_TRAINING,
    _document,
    _Flow,
    _norm,
)
from ptheta.models.neural import EXPLORER_QUICK
from ptheta.nn.flows import Flow, InvConv1x1, alternating_mask
from ptheta.nn.splines import MADESpline, SplineCoupling
from ptheta.params import Choice, Float, Int, Param

# The LU mixing starts at a random rotation on at most this many variables (digits' 64
# train smoothly from it), else at a random permutation: a rotation's LU factors of many
# dimensions are ill-conditioned, and Adam's first steps on 784 × 784 of them took the
# training loss on 28×28 binary digits from 446 to 2·10^6 nats
ROTATION_MAX_DIMS = 64


@_document
class NSF(_Flow):
    """Neural spline flow: monotone rational-quadratic splines in coupling or MADE layers.

    Every layer transforms each variable by its own monotone rational-quadratic spline on
    [−``tail_bound``, ``tail_bound``] with ``n_bins`` bins (the identity outside, see
    :func:`~ptheta.nn.splines.rational_quadratic_spline`), whose widths, heights and knot
    derivatives a network computes:

    - ``transform_type="coupling"`` (RQ-NSF (C)): alternating masks; an MLP of one half of
      the variables gives the splines of the other half
      (:class:`~ptheta.nn.splines.SplineCoupling`). Density and sampling each take one pass
      per layer.
    - ``transform_type="autoregressive"`` (RQ-NSF (AR)): a MADE gives the spline of each
      variable from the variables before it, the ordering reversed from one layer to the
      next (:class:`~ptheta.nn.splines.MADESpline`, as :class:`~ptheta.models.flows.MAF`
      does with affine maps). Densities take one pass per layer; sampling inverts each
      layer variable by variable (D passes per layer).

    With ``mixing="lu"`` an LU-parameterised invertible linear map (Glow's 1×1 convolution
    on vectors; a random rotation at first, or a random permutation above 64 variables)
    precedes every spline layer, as in the paper, so each layer sees new combinations of
    the variables; a normalisation layer follows every spline layer, and
    an actnorm standardises the input (so the splines' interval covers the data).

    **Base density.** On discrete data the default base (``base="auto"``) is the MADE MoG
    of :class:`~ptheta.models.flows.MAF`, an autoregressive model of its own, and nsf then
    follows maf: one spline layer over it (``n_layers="auto"``; 5 over a Gaussian base; one
    coupling splines half of the variables, the base models all of them), no
    LU mixing (``mixing="auto"``: the base needs the variables in their order) and weight
    decay :data:`~ptheta.models.flows.DISCRETE_WEIGHT_DECAY` (``weight_decay="auto"``). On
    28×28 binary digits in five CPU minutes the bound went from 210.3 nats (5 layers over
    a Gaussian base, LU mixing, no weight decay, ``lr=1e-3``) to 121.0, below the Chow–Liu
    tree's 134.9 (with LU mixing over the MoG base: 156.7; see the README); on digits 8×8
    from 103.8 to 95.0. On continuous data the base is N(0, I) and the defaults are the
    paper's: 5 layers with LU mixing, no weight decay. nsf trains at ``lr=3e-3`` as the
    other flows do (:data:`~ptheta.models.flows.FLOW_TRAINING`).

    The density is exact on continuous data (the change of variables through monotone
    splines, no approximation). Examples are flattened to vectors (digits: 64 variables).
    **Discrete data** are dequantised, scaled to [0, 1) and logit-transformed inside the
    model exactly as in :class:`~ptheta.models.flows.RealNVP`: ``score_samples`` is then an
    unbiased Monte-Carlo estimate of the dequantisation lower bound on the discrete
    log P(x) in nats (``likelihood_ == "estimate"``, ``units_ == "discrete"``, its standard
    error with ``score_samples(X, return_std=True)``).

    Arguments:
        hidden: units (an int) of each of the two hidden layers of every MLP or MADE.
        transform_type: ``"coupling"`` or ``"autoregressive"`` (see above).
        n_layers: spline layers; ``"auto"``: 1 over a MADE MoG base, 5 over a Gaussian
            one (see ``n_layers_``).
        n_bins: K, bins of every spline (each takes 3K − 1 network outputs).
        tail_bound: B; every spline maps [−B, B] onto itself and is the identity outside.
        mixing: ``"lu"`` (an invertible linear map before every spline layer),
            ``"none"`` (the alternating masks or orderings alone) or ``"auto"`` (``"none"``
            over a MADE MoG base, else ``"lu"``; see ``mixing_``).
        norm: ``"actnorm"``, ``"batchnorm"`` or ``"none"`` after every spline layer.
        weight_decay: AdamW's (a training argument, with its own default here):
            ``"auto"``: :data:`~ptheta.models.flows.DISCRETE_WEIGHT_DECAY` over a MADE MoG
            base on discrete data, else 0.
        {common}

    Fitted attributes:
        module: the trained :class:`~ptheta.nn.flow_density.FlowDensity`; history_,
        best_epoch_ (training record); classes_, class_log_prior_ for class-conditional
        flows.
        n_layers_, mixing_, weight_decay_: the spline layers, the mixing and the weight
        decay this fit used (``"auto"`` resolved; runs saved before these attributes keep
        the numbers and names they were given).
        spread_degrees_ (autoregressive layers): True: a MADE layer narrower than the data
        spreads its degrees over every variable, as in :class:`~ptheta.models.flows.MAF`
        (runs saved before took the lowest degrees, and reload so).
        {fitted}

    Example:
        >>> import ptheta
        >>> data = ptheta.datasets.load("toy2d-moons")
        >>> m = ptheta.make("nsf", hidden=16, n_layers=2, epochs=1, device="cpu")
        >>> m.fit(data.train).score_samples(data.test.x).shape, m.likelihood_
        ((1000,), 'exact')

    References:
        Durkan, Bekasov, Murray & Papamakarios (2019), Neural Spline Flows, NeurIPS.
        Gregory & Delbourgo (1982), Piecewise rational quadratic interpolation to monotonic
        data, IMA Journal of Numerical Analysis.
    """

    name: ClassVar[str] = "nsf"
    quick_params: ClassVar[dict[str, Any]] = {
        "hidden": 16,
        "n_layers": 2,
        "n_bins": 4,
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
            "n_bins": 8,
            "n_dequant_samples": 4,
            "lr": 3e-3,
            "batch_size": 64,
            "device": "cpu",
        },
        "explorer": {"hidden": 64, "n_layers": 4, "epochs": 200, "lr": 3e-3, "max_time": 60},
        "explorer-quick": {"hidden": 16, "n_layers": 2, "n_bins": 4, **EXPLORER_QUICK},
    }
    parameters: ClassVar[dict[str, Param]] = {
        "transform_type": Choice("coupling", "autoregressive"),
        **FOLLOWS_BASE_PARAMS,
        "n_bins": Int(low=2, hint="one bin is the identity"),
        "tail_bound": Float(low=0, low_open=True),
        "mixing": Choice("auto", "lu", "none"),
        "norm": Choice("actnorm", "batchnorm", "none"),
    }
    discrete_base: ClassVar[str] = "mog"
    follows_base: ClassVar[bool] = True

    def __init__(
        self,
        hidden: int = 64,
        *,
        transform_type: str = "coupling",
        n_layers: int | str = "auto",
        n_bins: int = 8,
        tail_bound: float = 3.0,
        mixing: str = "auto",
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
        self.transform_type = transform_type
        self.n_layers = n_layers
        self.n_bins = n_bins
        self.tail_bound = tail_bound
        self.mixing = mixing
        self.norm = norm
        self.base = base
        self.dequantization = dequantization
        self.n_dequant_samples = n_dequant_samples
        self.logit_alpha = logit_alpha
        self.class_conditional = class_conditional

    def _image(self, spec: DataSpec) -> None:
        return None  # the layers work on flat vectors: images are flattened

    def _made_layers(self) -> bool:
        return self._params()["transform_type"] == "autoregressive"

    def _mixing(self, spec: DataSpec) -> str:
        """The mixing before every spline layer: the fit's (``mixing_``), else ``mixing``
        with ``"auto"`` resolved: ``"none"`` over a MADE MoG base (an autoregressive base
        needs the variables in their order, which a permutation of 784 pixels scrambles:
        on 28×28 binary digits in five minutes 156.7 nats with ``"lu"``, 126.9 without),
        ``"lu"`` over a Gaussian one."""
        saved = getattr(self, "mixing_", None)
        if saved is not None:
            return str(saved)
        choice = self._params()["mixing"]
        if choice != "auto":
            return choice
        return "none" if self._base(spec) == "mog" else "lu"

    def _fit_stream(self, data, y, spec, **fit_params) -> None:
        self.mixing_ = self._mixing(spec)
        super()._fit_stream(data, y, spec, **fit_params)

    def _layers(self, spec, image, n_classes):
        config = self.config()
        d, hidden, ctx = spec.n_dims, [config.hidden] * 2, n_classes or 0
        spline = {"n_bins": config.n_bins, "tail_bound": config.tail_bound}
        g = torch.Generator().manual_seed(self._seed())  # the linear maps' initial values
        start = "rotation" if d <= ROTATION_MAX_DIMS else "permutation"
        mixing = self._mixing(spec)
        layers: list[Flow] = []
        for i in range(self._layers_over_base(spec)):
            if mixing == "lu":
                layers.append(InvConv1x1(d, generator=g, init=start))
            if config.transform_type == "coupling":
                mask = alternating_mask(d, i % 2)
                layers.append(SplineCoupling(mask, hidden, context_features=ctx, **spline))
            else:
                order = torch.arange(d) if i % 2 == 0 else torch.arange(d).flip(0)
                layers.append(
                    MADESpline(
                        d,
                        hidden,
                        ordering=order,
                        context_features=ctx,
                        spread_degrees=self._spread_degrees(),
                        **spline,
                    )
                )
            layers += _norm(config.norm, d)
        return layers
