"""MADE: masked autoencoders as exact autoregressive models, with order-agnostic mask ensembles."""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import pairwise
from numbers import Integral
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ptheta.data.spec import DataSpec, check_values
from ptheta.errors import CapabilityError
from ptheta.models.neural import CONDITIONAL, EXPLORER_QUICK, NeuralModel
from ptheta.nn.masked import MaskedLinear, made_degrees, made_masks, reuse_masked_weights
from ptheta.nn.shapes import batched, sampled
from ptheta.params import Bool, Config, Int, IntList, Param

# Units of the default single hidden layer. One wide layer generalises better from a few
# thousand examples than [512, 512] and trains faster (test nats, defaults: digits 101.1 vs
# 105.4, digits-binary 19.5 vs 20.8; 28×28 binary digits at max_time=60, 110.2 vs 142.6).
HIDDEN = 1024

# A member of the ensemble: the index of a stored mask, or one explicit mask per layer.
Mask = int | Sequence[Tensor]


def _flat(hidden_degrees: Sequence[Tensor]) -> Tensor:
    """Per-layer hidden degrees → one LongTensor (H1 + H2 + …,), empty with no hidden layer."""
    return torch.cat([torch.empty(0, dtype=torch.long), *hidden_degrees])


class MADENetwork(nn.Module):
    """MADE over D discrete variables with K levels each (module level).

    A multi-layer perceptron from the one-hot inputs (D·K) through ReLU hidden layers to
    D·K logits, whose weights are masked so that the K logits of variable σ_i depend only
    on x_{σ_<i}: a softmax over them is p(x_{σ_i} | x_{σ_<i}), and the product of the D
    conditionals is an exactly normalised p(x). Masks follow from degrees
    (:func:`~ptheta.nn.masked.made_degrees`): the ordering σ fixes the inputs' degrees, the
    hidden degrees are drawn at random.

    The network stores ``n_masks`` members as their orderings and hidden degrees (small
    integer buffers, saved in the state dict), so a reloaded network is the same ensemble;
    the layers' dense float masks are rebuilt from them and are not saved (M of them would
    weigh M times the weights). Each member m is an exact model p_m. Then:

    - ``loss`` draws one member m uniformly and returns −log p_m(x): the training loss is
      the single-mask NLL (order-/connectivity-agnostic training). The member is one choice
      for the whole batch, which every process of a data-parallel run must make alike: it
      comes from ``shared_generator`` while the Trainer trains the network (see
      :mod:`ptheta.train.seeding`; saved in its checkpoints), else from torch's global RNG
      (reproducible under ``torch.manual_seed``);
    - ``log_prob`` is the ensemble log (1/M) Σ_m p_m(x): a uniform mixture of exactly
      normalised models, hence itself exact;
    - ``sample`` draws a member per sample (from ``generator``), then samples from it
      along its ordering — an exact sample from the same mixture.

    With ``n_classes``, a one-hot class input reaches every layer unmasked (it is not part
    of x), giving p(x | y).

    Each variable enters as its one-hot code and leaves as K logits; a binary variable
    (K = 2) enters as x itself and leaves as one logit l (``logits`` returns (0, l), so
    log p(x = 1 | x_<d) = log σ(l)): the same model with half the weights in the first and
    last layers, hence about half their work.

    Arguments:
        n_dims: number of variables D (examples are flattened to (N, D)).
        n_categories: levels K of every variable (2 for binary data).
        hidden: sizes of the hidden layers (may be empty: a masked logistic model).
        n_masks: number of masks M in the ensemble.
        order_agnostic: draw a random ordering per mask (else all use 0..D−1).
        n_classes: number of classes for p(x | y); None: unconditional.
        seed: seeds the orderings and hidden degrees.
        event_shape: shape of one example (default (D,)); samples come back in it.

    Example:
        >>> import torch
        >>> from ptheta.models.made import MADENetwork
        >>> net = MADENetwork(4, 2, [16, 16], n_masks=3, order_agnostic=True)
        >>> x = torch.randint(2, (5, 4))
        >>> net.log_prob(x).shape, net.sample(3, generator=torch.Generator()).shape
        (torch.Size([5]), torch.Size([3, 4]))

    References:
        Germain, Gregor, Murray & Larochelle (2015), MADE: Masked Autoencoder for
        Distribution Estimation, ICML. Uria, Murray & Larochelle (2014), A Deep and
        Tractable Density Estimator, ICML (order-agnostic training).
    """

    @classmethod
    def from_config(
        cls, config: Config, spec: DataSpec, n_classes: int | None = None
    ) -> MADENetwork:
        """The network of a :class:`MADE`'s config (``hidden``, ``n_masks``,
        ``order_agnostic``, ``seed``) for data of ``spec``."""
        return cls(
            spec.n_dims,
            spec.n_categories,
            config.hidden,
            n_masks=config.n_masks,
            order_agnostic=config.order_agnostic,
            n_classes=n_classes,
            seed=config.seed,
            event_shape=spec.event_shape,
        )

    def __init__(
        self,
        n_dims: int,
        n_categories: int = 2,
        hidden: Sequence[int] = (HIDDEN,),
        *,
        n_masks: int = 1,
        order_agnostic: bool = False,
        n_classes: int | None = None,
        seed: int = 0,
        event_shape: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        d, k = n_dims, n_categories
        self.n_dims, self.n_categories, self.hidden = d, k, list(hidden)
        self.n_masks, self.n_classes = n_masks, n_classes
        self.event_shape = tuple(event_shape) if event_shape is not None else (d,)
        g = torch.Generator().manual_seed(seed)
        orderings = [
            torch.randperm(d, generator=g) if order_agnostic else torch.arange(d)
            for _ in range(n_masks)
        ]
        hidden_degrees = [_flat(made_degrees(o, self.hidden, g)[1:]) for o in orderings]
        # what the masks are made of: the only connectivity the state dict saves
        self.register_buffer("orderings", torch.stack(orderings))  # (M, D)
        self.register_buffer("hidden_degrees", torch.stack(hidden_degrees))  # (M, H1 + H2 + …)
        # binary variables: one input (x) and one output (the logit of x = 1) each, not a
        # one-hot pair (the same model: a pair's second unit is affine in the first)
        self.units = 1 if k == 2 else k
        sizes = [d * self.units, *self.hidden, d * self.units]
        self.layers = nn.ModuleList(
            MaskedLinear(a, b, torch.empty(0, b, a), context_features=n_classes or 0)
            for a, b in pairwise(sizes)
        )
        self._rebuild_masks()

    def extra_repr(self) -> str:
        classes = f", n_classes={self.n_classes}" if self.n_classes else ""
        return (
            f"n_dims={self.n_dims}, n_categories={self.n_categories}, hidden={self.hidden}, "
            f"n_masks={self.n_masks}{classes}"
        )

    def _masks(self, ordering: Tensor, hidden_degrees: Tensor) -> list[Tensor]:
        """One member's mask per layer from its ordering (D,) and hidden degrees (ΣH,)."""
        inputs = made_degrees(ordering.cpu(), [])[0]  # (D,)
        degrees = [inputs, *hidden_degrees.cpu().split(self.hidden)] if self.hidden else [inputs]
        return made_masks(degrees, in_multiplicity=self.units, out_multiplicity=self.units)

    def _rebuild_masks(self) -> None:
        """Set every layer's (M, out, in) masks from the orderings and hidden degrees."""
        members = [
            self._masks(o, h) for o, h in zip(self.orderings, self.hidden_degrees, strict=True)
        ]
        for i, layer in enumerate(self.layers):
            layer.set_masks(torch.stack([masks[i] for masks in members]))  # (M, out, in)

    def _load_from_state_dict(self, *args, **kwargs) -> None:
        super()._load_from_state_dict(*args, **kwargs)  # loads orderings, hidden_degrees
        self._rebuild_masks()

    def connectivity(self, ordering: Tensor, generator: torch.Generator) -> list[Tensor]:
        """Masks of a new member with the given ordering and random hidden degrees.

        Arguments:
            ordering: LongTensor (D,), a permutation: the member's autoregressive order.
            generator: a CPU torch.Generator for the hidden degrees.

        Returns:
            one mask per layer, for ``logits``/``log_prob``'s ``mask`` argument.
        """
        ordering = torch.as_tensor(ordering).cpu()
        hidden_degrees = _flat(made_degrees(ordering, self.hidden, generator)[1:])
        device = self.orderings.device
        return [m.to(device) for m in self._masks(ordering, hidden_degrees)]

    def _context(self, n: int, y: Tensor | None, dtype: torch.dtype) -> Tensor | None:
        """The one-hot class input (N, C) of a class-conditional network, else None."""
        if self.n_classes:
            if y is None or y.shape != (n,):
                raise ValueError(f"this MADE is class-conditional: pass y, a LongTensor ({n},)")
            return F.one_hot(y, self.n_classes).to(dtype)  # (N, C)
        if y is not None:
            raise ValueError("this MADE is unconditional; call it without y")
        return None

    def _outputs(self, h: Tensor, y: Tensor | None, mask: Mask) -> Tensor:
        """The masked MLP: inputs (N, D·U) → outputs (N, D·U), U units per variable."""
        context = self._context(h.shape[0], y, h.dtype)
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            h = layer(h, mask if isinstance(mask, Integral) else mask[i], context)
            if i < last:
                h = torch.relu(h)  # (N, H_i)
        return h

    def logits(self, x_onehot: Tensor, y: Tensor | None = None, mask: Mask = 0) -> Tensor:
        """Logits of p_m(x_d | x_<d) for every variable under member ``mask``.

        Arguments:
            x_onehot: (N, D, K) float one-hot examples (any real values are accepted, which
                is what Jacobian checks need).
            y: LongTensor (N,) of classes for a class-conditional network.
            mask: a stored mask's index, or one explicit mask per layer (``connectivity``).

        Returns:
            (N, D, K) logits, variables in their natural order.
        """
        n = x_onehot.shape[0]
        if self.units == 1:
            # a binary x enters as 2x − 1 (±1: both values move the units, as a one-hot
            # pair does) and leaves as one logit l; (0, l): log_softmax gives log σ(∓l)
            h = self._outputs(x_onehot[..., 1] - x_onehot[..., 0], y, mask)  # (N, D)
            return torch.stack([torch.zeros_like(h), h], dim=-1)  # (N, D, 2)
        return self._outputs(x_onehot.reshape(n, -1), y, mask).reshape(n, self.n_dims, -1)

    def log_conditionals(self, x: Tensor, y: Tensor | None = None, mask: Mask = 0) -> Tensor:
        """log p_m(x_d | x_<d) of every variable d under member ``mask``, (N, D)."""
        x = x.reshape(len(x), -1)  # (N, D)
        dtype = self.layers[0].weight.dtype
        if self.units == 1:
            # the binary case of ``logits`` without the one-hot code and the (0, l) pairs:
            # log softmax(0, l)[x] = log σ(s · l) with s = 2x − 1, the input itself
            signs = (2 * x - 1).to(dtype)  # (N, D)
            return F.logsigmoid(signs * self._outputs(signs, y, mask))
        logits = self.logits(F.one_hot(x, self.n_categories).to(dtype), y, mask)  # (N, D, K)
        return logits.log_softmax(-1).gather(-1, x[..., None]).squeeze(-1)

    @batched
    def log_prob(self, x: Tensor, y: Tensor | None = None, mask: Mask | None = None) -> Tensor:
        """Exact log-likelihood in nats: levels (*batch, *event_shape) of any integer dtype,
        y (*batch) → (*batch) (see :mod:`ptheta.nn.shapes`).

        ``mask=None``: the ensemble log (1/M) Σ_m p_m(x); an index or explicit masks: that
        member's log p_m(x) alone.
        """
        if mask is not None:
            return self.log_conditionals(x, y, mask).sum(1)
        members = torch.stack([self.log_prob(x, y, m) for m in range(self.n_masks)])  # (M, N)
        return torch.logsumexp(members, 0) - math.log(self.n_masks)

    def loss(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """−log p_m(x) for one member m drawn from ``shared_generator`` (the Trainer's, the
        same on every process) or else torch's global RNG, (*batch)."""
        m = int(torch.randint(self.n_masks, (), generator=getattr(self, "shared_generator", None)))
        return -self.log_prob(x, y, m)

    @sampled
    @torch.no_grad()
    def sample(
        self, n: int, y: Tensor | None = None, generator: torch.Generator | None = None
    ) -> Tensor:
        """Draw examples, LongTensor (*sample_shape, *event_shape), from the mask ensemble;
        ``sample_shape`` is an int n, a tuple, or () for one example.

        Each sample picks its member uniformly; samples are grouped by member and drawn one
        variable at a time along the member's ordering. All randomness comes from
        ``generator`` (on the network's device).
        """
        device = self.orderings.device
        which = torch.randint(self.n_masks, (n,), generator=generator, device=device)
        x = torch.zeros(n, self.n_dims, dtype=torch.long, device=device)
        dtype = self.layers[0].weight.dtype
        with reuse_masked_weights(self):  # D calls per member: mask the weights once
            for m in range(self.n_masks):
                rows = torch.nonzero(which == m).squeeze(1)
                if not len(rows):
                    continue
                xm, ym = x[rows], None if y is None else y[rows]  # (n_m, D), (n_m,)
                for d in self.orderings[m].tolist():
                    onehot = F.one_hot(xm, self.n_categories).to(dtype)  # (n_m, D, K)
                    logits = self.logits(onehot, ym, m)[:, d]  # (n_m, K)
                    xm[:, d] = torch.multinomial(logits.softmax(-1), 1, generator=generator)[:, 0]
                x[rows] = xm
        return x.reshape(n, *self.event_shape)


class MADE(NeuralModel):
    """MADE: exact autoregressive model of binary or categorical vectors by masked MLPs.

    A masked multi-layer perceptron outputs, for every variable, a softmax over its K levels
    that depends only on the variables before it in an ordering; the product of these
    conditionals is an exactly normalised p(x) (see :class:`MADENetwork`).

    **Mask ensembles.** With ``n_masks`` = M > 1 the network stores M masks: each draws its
    hidden degrees afresh (connectivity-agnostic), and with ``order_agnostic=True`` also its
    ordering. Each training step uses one mask drawn uniformly, so the reported training
    loss is the single-mask NLL −log p_m(x). ``score_samples`` is the ensemble
    log (1/M) Σ_m p_m(x): a mixture of exactly normalised models, hence still an exact
    log-likelihood (and no lower than the average single-mask one, by Jensen).
    ``sample`` draws from that same mixture.

    **Marginals.** ``score_samples`` does not accept NaN. With ``order_agnostic=True``,
    :meth:`marginal_log_prob` gives an exact marginal of the observed entries under one
    member of the order-agnostic family: the one whose ordering puts the observed entries
    first (see there for exactly what it is).

    Arguments:
        hidden: sizes of the hidden layers: a list, or an int for one hidden layer ([]: a
            masked logistic model); default one layer of :data:`HIDDEN` units.
        n_masks: number of masks M in the ensemble (each with its own hidden degrees).
        order_agnostic: give each mask a random ordering (else all use the natural order).
        class_conditional: fit p(x | y) with ``fit(X, y)``; then ``sample(n, y=...)``
            draws from one class, ``score_samples`` is log Σ_y p(y) p(x | y) and
            ``predict_proba`` applies Bayes' rule.
        **training: the shared training arguments (epochs, lr, batch_size, dtype, device,
            random_state — which also seeds the masks —; see
            ``ptheta.models.neural.TRAINING_PARAMS``).

    Fitted attributes:
        module: the trained :class:`MADENetwork` (masks included); history_, best_epoch_.

    Example:
        >>> import ptheta
        >>> data = ptheta.datasets.load("digits-binary")
        >>> m = ptheta.make("made", hidden=[64], epochs=2, device="cpu").fit(data.train)
        >>> m.score_samples(data.test.x).shape
        (447,)

    References:
        Germain, Gregor, Murray & Larochelle (2015), MADE: Masked Autoencoder for
        Distribution Estimation, ICML.
    """

    name: ClassVar[str] = "made"
    family: ClassVar[str] = "autoregressive"
    likelihood: ClassVar[str] = "exact"
    data_kinds: ClassVar[tuple[str, ...]] = ("binary", "categorical")
    quick_params: ClassVar[dict[str, Any]] = {
        "hidden": [16],
        "n_masks": 2,
        "order_agnostic": True,
        "epochs": 15,
        "lr": 0.03,
        "batch_size": 64,
        "dtype": "float64",
        "device": "cpu",
    }
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "demo": {"hidden": [256], "lr": 3e-3, "batch_size": 64, "device": "cpu"},
        "explorer": {"hidden": [256], "epochs": 60, "lr": 3e-3, "max_time": 60},
        "explorer-quick": {"hidden": [32], **EXPLORER_QUICK},
    }
    parameters: ClassVar[dict[str, Param]] = {
        "hidden": IntList(),
        "n_masks": Int(low=1),
        "order_agnostic": Bool(),
        **CONDITIONAL,
    }

    def __init__(
        self,
        hidden: int | Sequence[int] = (HIDDEN,),
        *,
        n_masks: int = 1,
        order_agnostic: bool = False,
        class_conditional: bool = False,
        **training: Any,
    ) -> None:
        super().__init__(**training)
        self.hidden = hidden
        self.n_masks = n_masks
        self.order_agnostic = order_agnostic
        self.class_conditional = class_conditional

    def _build_module(self, spec: DataSpec, n_classes: int | None) -> MADENetwork:
        return MADENetwork.from_config(self.config(), spec, n_classes)

    def _n_parameters(self) -> int:
        # a weight that every mask zeroes is not a free parameter
        unused = sum(int((layer.masks.sum(0) == 0).sum()) for layer in self._module.layers)
        return super()._n_parameters() - unused

    @torch.no_grad()
    def marginal_log_prob(self, X: Any, random_state: Any = None) -> np.ndarray:
        """log p_σ(x_obs) for each row of X with NaN at the missing entries, shape (N,).

        For each row this draws an ordering σ that lists the observed entries first (in a
        random order) and the missing ones after them, and fresh random hidden degrees,
        and returns Σ_{i < n_obs} log p_σ(x_{σ_i} | x_{σ_<i}). That is the exact marginal
        of the observed entries under ONE member of the order-agnostic family — the MADE
        with ordering σ and those degrees, whose conditionals for the missing entries
        would sum to one — not under the M-mask ensemble that ``score_samples`` uses (its
        marginal would need a sum over the missing values). Different rows, and different
        ``random_state``, use different members; a fully observed row gives log p_σ(x) of
        one random member. The network generalises to orderings it was not trained on only
        through order-agnostic training, so fit with many masks (large ``n_masks``).
        Class-conditional models return log Σ_y p(y) p_σ(x_obs | y).

        Arguments:
            X: (N, *event_shape) values, NaN where an entry is missing.
            random_state: seed or numpy Generator for the orderings and degrees.

        Returns:
            (N,) log-probabilities in nats.

        Example:
            >>> import numpy as np, ptheta
            >>> data = ptheta.datasets.load("digits-binary")
            >>> m = ptheta.make("made", hidden=[64], n_masks=8, order_agnostic=True,
            ...                 epochs=2, device="cpu").fit(data.train)
            >>> x = data.test.x[:3].astype(float)
            >>> x[:, 32:] = np.nan  # the bottom half is missing
            >>> m.marginal_log_prob(x, random_state=0).shape
            (3,)
        """
        self._check_fitted()
        if not self.order_agnostic:
            raise CapabilityError(
                "marginal_log_prob needs a MADE trained with order_agnostic=True (and many "
                "masks, n_masks): only then can an ordering put the observed entries first"
            )
        spec = self.fitted_spec
        flat = np.asarray(
            check_values(X, spec, allow_nan=True, what="X"), dtype=np.float64
        ).reshape(-1, spec.n_dims)
        rng = np.random.default_rng(random_state)
        device = self._device()
        out = np.empty(len(flat))
        n_classes = len(self.classes_) if self._conditional() else 1
        y = torch.arange(n_classes, device=device) if self._conditional() else None
        for i, row in enumerate(flat):
            observed = ~np.isnan(row)
            masks = self._marginal_masks(observed, rng)
            # the missing entries' values are never read by an observed entry's conditional
            x = torch.as_tensor(np.where(observed, row, 0), dtype=torch.long, device=device)
            cond = self._module.log_conditionals(x.expand(n_classes, -1), y, masks)  # (C, D)
            joint = cond[:, torch.as_tensor(observed, device=device)].sum(1).double().cpu()
            if self._conditional():
                joint = joint + torch.as_tensor(self.class_log_prior_)
            out[i] = float(torch.logsumexp(joint, 0))
        return out

    def _marginal_masks(self, observed: np.ndarray, rng: np.random.Generator) -> list[Tensor]:
        """The member used by marginal_log_prob for a row with these observed entries."""
        first = rng.permutation(np.flatnonzero(observed))
        then = rng.permutation(np.flatnonzero(~observed))
        ordering = torch.as_tensor(np.concatenate([first, then]), dtype=torch.long)
        generator = torch.Generator().manual_seed(int(rng.integers(2**62)))
        return self._module.connectivity(ordering, generator)
