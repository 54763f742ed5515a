"""NADE: the neural autoregressive density estimator with weights shared along the ordering."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ptheta.data.spec import DataSpec
from ptheta.errors import ParameterError
from ptheta.models.neural import CONDITIONAL, NeuralModel
from ptheta.nn.shapes import batched, sampled
from ptheta.params import Choice, Config, Int, IntList, OneOf, Param

# Positions per block of NADENetwork.logits (28×28 binary, H = 500, batch 64: one step
# 1.20 s with the whole (N, D, H) cumulative sum at once, 0.40 s in blocks of 32).
BLOCK = 32


class NADENetwork(nn.Module):
    """NADE over D discrete variables with K levels each (module level).

    In the order σ (``ordering``), every conditional is a softmax over the K levels whose
    hidden layer reads all earlier variables through one shared input weight:

        a_i = c + Σ_{j<i} W[σ_j, x_{σ_j}]                     (H,)
        p(x_{σ_i} = k | x_{σ_<i}) = softmax_k(V[σ_i, k] · sigmoid(a_i) + b[σ_i, k])

    so a_{i+1} = a_i + W[σ_i, x_{σ_i}] and all D conditionals cost O(D·H) (times K for the
    outputs). Training and ``log_prob`` compute the a_i with an exclusive cumulative sum
    along the ordering, block by block (``BLOCK`` positions at a time); ``sample`` runs the
    recursion one variable at a time, vectorised over samples. Inputs are one-hot, so the
    input weight is (D, K, H); binary data use K = 2. With ``n_classes``, the class y shifts
    the hidden pre-activation and the output biases (a one-hot input to both layers),
    giving p(x | y).

    Arguments:
        n_dims: number of variables D (examples are flattened to (N, D)).
        n_categories: levels K of every variable (2 for binary data).
        hidden: hidden units H.
        ordering: LongTensor (D,), the variables in the order σ of the chain rule;
            None: natural order 0..D−1.
        n_classes: number of classes for p(x | y); None: unconditional.
        event_shape: shape of one example (default (D,)); samples come back in it.

    Example:
        >>> import torch
        >>> from ptheta.models.nade import NADENetwork
        >>> net = NADENetwork(4, 2, hidden=8)
        >>> x = torch.randint(2, (5, 4))
        >>> net.log_prob(x).shape, net.sample(3, generator=torch.Generator()).shape
        (torch.Size([5]), torch.Size([3, 4]))

    References:
        Larochelle & Murray (2011), The Neural Autoregressive Distribution Estimator,
        AISTATS. Uria, Côté, Gregor, Murray & Larochelle (2016), Neural Autoregressive
        Distribution Estimation, JMLR (categorical outputs).
    """

    @classmethod
    def from_config(
        cls, config: Config, spec: DataSpec, n_classes: int | None = None
    ) -> NADENetwork:
        """The network of a :class:`NADE`'s config (``hidden``, ``ordering``, ``seed``) for
        data of ``spec``."""
        return cls(
            spec.n_dims,
            spec.n_categories,
            config.hidden,
            ordering=resolve_ordering("nade", config.ordering, spec.n_dims, config.seed),
            n_classes=n_classes,
            event_shape=spec.event_shape,
        )

    def __init__(
        self,
        n_dims: int,
        n_categories: int = 2,
        hidden: int = 500,
        *,
        ordering: Tensor | None = None,
        n_classes: int | None = None,
        event_shape: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        d, k, h = n_dims, n_categories, hidden
        self.n_dims, self.n_categories, self.hidden, self.n_classes = d, k, h, n_classes
        self.event_shape = tuple(event_shape) if event_shape is not None else (d,)
        order = torch.arange(d) if ordering is None else torch.as_tensor(ordering).long()
        if sorted(order.tolist()) != list(range(d)):
            raise ValueError(f"ordering must be a permutation of 0..{d - 1}")
        self.register_buffer("ordering", order)
        # fan-in of a_i is up to D one-hot inputs, of the logits H hidden units
        self.weight_in = nn.Parameter(torch.empty(d, k, h).uniform_(-1, 1) / math.sqrt(d))
        self.bias_hidden = nn.Parameter(torch.zeros(h))
        self.weight_out = nn.Parameter(torch.empty(d, k, h).uniform_(-1, 1) / math.sqrt(h))
        self.bias_out = nn.Parameter(torch.zeros(d, k))
        if n_classes:
            self.class_hidden = nn.Parameter(torch.zeros(n_classes, h))
            self.class_out = nn.Parameter(torch.zeros(n_classes, d, k))

    def extra_repr(self) -> str:
        classes = f", n_classes={self.n_classes}" if self.n_classes else ""
        return (
            f"n_dims={self.n_dims}, n_categories={self.n_categories}, hidden={self.hidden}{classes}"
        )

    def _biases(self, y: Tensor | None, n: int) -> tuple[Tensor, Tensor]:
        """Hidden bias (n or 1, H) and output bias (n or 1, D, K), including the class y."""
        if not self.n_classes:
            if y is not None:
                raise ValueError("this NADE is unconditional; call it without y")
            return self.bias_hidden[None], self.bias_out[None]
        if y is None or y.shape != (n,):
            raise ValueError(f"this NADE is class-conditional: pass y, a LongTensor ({n},)")
        return self.bias_hidden + self.class_hidden[y], self.bias_out + self.class_out[y]

    def logits(self, x_onehot: Tensor, y: Tensor | None = None) -> Tensor:
        """Logits of p(x_d | the variables before d in σ) for every d, from one-hot inputs.

        Arguments:
            x_onehot: (N, D, K) float one-hot examples (any real values are accepted, which
                is what Jacobian checks need).
            y: LongTensor (N,) of classes for a class-conditional network.

        Returns:
            (N, D, K) logits, variables in their natural (not σ) order.
        """
        n = x_onehot.shape[0]
        order = self.ordering
        bias_hidden, bias_out = self._biases(y, n)
        xo = x_onehot[:, order].transpose(0, 1).contiguous()  # (D, N, K) in σ order
        w_in = self.weight_in[order]  # (D, K, H)
        w_out = self.weight_out[order].transpose(1, 2)  # (D, H, K)
        # Positions go in blocks of BLOCK: a block's (B, N, H) activations stay in cache
        # through the cumulative sum, the sigmoid and the output product (one pass over
        # memory instead of one per operation); `run` carries a_i into the next block.
        run = bias_hidden.expand(n, self.hidden)
        outs = []
        for start in range(0, self.n_dims, BLOCK):
            a = torch.bmm(xo[start : start + BLOCK], w_in[start : start + BLOCK])  # (B, N, H)
            inclusive = torch.cumsum(a, 0)
            pre = torch.cat([run[None], run + inclusive[:-1]])  # exclusive: a_i sees j < i
            run = run + inclusive[-1]
            outs.append(torch.bmm(torch.sigmoid(pre), w_out[start : start + BLOCK]))
        out = torch.cat(outs).transpose(0, 1) + bias_out[:, order]  # (N, D, K) in σ order
        return out[:, torch.argsort(order)]  # back to the natural order

    @batched
    def log_prob(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """Exact log p(x) (or log p(x | y)) in nats: levels (*batch, *event_shape) of any
        integer dtype, y (*batch) → (*batch) (see :mod:`ptheta.nn.shapes`)."""
        x = x.reshape(len(x), -1)  # (N, D)
        logits = self.logits(F.one_hot(x, self.n_categories).to(self.weight_in.dtype), y)
        return logits.log_softmax(-1).gather(-1, x[..., None]).squeeze(-1).sum(1)

    def loss(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """Per-example negative log-likelihood, (*batch) ((N,) for the Trainer's batches)."""
        return -self.log_prob(x, y)

    @sampled
    @torch.no_grad()
    def sample(
        self, n: int, y: Tensor | None = None, generator: torch.Generator | None = None
    ) -> Tensor:
        """Draw examples, LongTensor (*sample_shape, *event_shape), one variable at a time
        along σ; ``sample_shape`` is an int n, a tuple, or () for one example.

        All randomness comes from ``generator`` (on the network's device).
        """
        bias_hidden, bias_out = self._biases(y, n)
        pre = bias_hidden.expand(n, self.hidden)  # (n, H)
        bias_out = bias_out.expand(n, -1, -1)  # (n, D, K)
        x = torch.zeros(n, self.n_dims, dtype=torch.long, device=self.weight_in.device)
        for d in self.ordering.tolist():
            logits = torch.sigmoid(pre) @ self.weight_out[d].T + bias_out[:, d]  # (n, K)
            x[:, d] = torch.multinomial(logits.softmax(-1), 1, generator=generator).squeeze(1)
            pre = pre + self.weight_in[d, x[:, d]]  # the recursion a_{i+1} = a_i + W[σ_i, x]
        return x.reshape(n, *self.event_shape)


class NADE(NeuralModel):
    """NADE: exact autoregressive model of binary or categorical vectors.

    p(x) = ∏_i p(x_{σ_i} | x_{σ_<i}), each conditional a softmax over the K levels computed
    from one hidden layer whose weights are shared along the ordering σ, so all D
    conditionals cost O(D·H) (see :class:`NADENetwork`). The log-likelihood is exact
    (each conditional is normalised, hence so is the product); sampling is sequential.
    Examples of any event shape are modelled as flat vectors in row-major order.

    Arguments:
        hidden: hidden units H (an int: NADE has one hidden layer).
        ordering: ``"natural"`` (0..D−1 in row-major order), ``"random"`` (a permutation
            drawn from ``random_state``) or an explicit permutation of 0..D−1.
        class_conditional: fit p(x | y) with ``fit(X, y)``; then ``sample(n, y=...)``
            draws from one class, ``score_samples`` is log Σ_y p(y) p(x | y) and
            ``predict_proba`` applies Bayes' rule.
        **training: the shared training arguments (epochs, lr, batch_size, dtype, device,
            random_state, ...; see ``ptheta.models.neural.TRAINING_PARAMS``).

    Fitted attributes:
        module: the trained :class:`NADENetwork`; history_, best_epoch_: training record.

    Example:
        >>> import ptheta
        >>> data = ptheta.datasets.load("digits-binary")
        >>> m = ptheta.make("nade", hidden=32, epochs=2, device="cpu").fit(data.train)
        >>> m.score_samples(data.test.x).shape
        (447,)

    References:
        Larochelle & Murray (2011), The Neural Autoregressive Distribution Estimator,
        AISTATS.
    """

    name: ClassVar[str] = "nade"
    family: ClassVar[str] = "autoregressive"
    likelihood: ClassVar[str] = "exact"
    data_kinds: ClassVar[tuple[str, ...]] = ("binary", "categorical")
    quick_params: ClassVar[dict[str, Any]] = {
        "hidden": 8,
        "epochs": 15,
        "lr": 0.03,
        "batch_size": 64,
        "dtype": "float64",
        "device": "cpu",
    }
    presets: ClassVar[dict[str, dict[str, Any]]] = {"explorer": {}}
    parameters: ClassVar[dict[str, Param]] = {
        "hidden": Int(low=1),
        # a list's length and values are checked against the data (resolve_ordering)
        "ordering": OneOf(
            Choice("natural", "random"),
            IntList(low=0, empty=False, scalar=False),
            what="'natural', 'random' or a permutation of 0..D-1",
        ),
        **CONDITIONAL,
    }

    def __init__(
        self,
        hidden: int = 500,
        *,
        ordering: str | Sequence[int] = "natural",
        class_conditional: bool = False,
        **training: Any,
    ) -> None:
        super().__init__(**training)
        self.hidden = hidden
        self.ordering = ordering
        self.class_conditional = class_conditional

    def _build_module(self, spec: DataSpec, n_classes: int | None) -> NADENetwork:
        return NADENetwork.from_config(self.config(), spec, n_classes)


def resolve_ordering(model: str, ordering: Any, n_dims: int, seed: int) -> Tensor:
    """``"natural"``, ``"random"`` (seeded by ``seed``) or a permutation → LongTensor (D,)."""
    if isinstance(ordering, str) and ordering == "natural":
        return torch.arange(n_dims)
    if isinstance(ordering, str) and ordering == "random":
        return torch.randperm(n_dims, generator=torch.Generator().manual_seed(int(seed)))
    order = None
    if not isinstance(ordering, str):
        try:
            order = np.asarray(ordering)
        except (TypeError, ValueError):  # ragged nested lists
            order = None
    # whole numbers only: int(0.5) would quietly turn a wrong list into a permutation
    if (
        order is None
        or order.ndim != 1
        or order.dtype.kind not in "iu"
        or sorted(order.tolist()) != list(range(n_dims))
    ):
        raise ParameterError(
            f"{model}: ordering must be 'natural', 'random' or a permutation of "
            f"0..{n_dims - 1} (the data have {n_dims} variables), got {ordering!r}"
        )
    return torch.as_tensor(order, dtype=torch.long)
