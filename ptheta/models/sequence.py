"""Autoregressive sequence models: an LSTM and a causal decoder-only Transformer.

Over tokens (binary or categorical steps) or real steps (a mixture of Gaussians per step),
of one fixed length or of any length (the end of each sequence is an event the model
scores). The networks are in :mod:`ptheta.nn.sequence`.
"""

from __future__ import annotations

from numbers import Integral
from typing import Any, ClassVar

import numpy as np
import torch

from ptheta.data.ragged import Sequences
from ptheta.data.spec import DataSpec
from ptheta.errors import DataError, ParameterError
from ptheta.models.neural import EXPLORER_QUICK, NeuralModel
from ptheta.nn.sequence import (
    LONG_SEQUENCE_POLICIES,
    LSTMNetwork,
    TransformerNetwork,
    decode_sequences,
    default_max_length,
    draw,
    encode_sequences,
)
from ptheta.nn.sequence import shift as _shift
from ptheta.params import Choice, Float, Int, Param, check_float, check_int

__all__ = ["LSTM", "LSTMNetwork", "Transformer", "TransformerNetwork", "_shift", "draw"]


# ---------------------------------------------------------------------------------------
# What both estimators share (assigned as methods: the two classes stay flat)

# Hyper-parameters of both families besides their networks' own.
SHARED_PARAMETERS: dict[str, Param] = {
    "n_components": Int(low=1),
    "max_length": Int(low=1, none=True),
}


def _encode(
    self: NeuralModel, x: np.ndarray, lengths: np.ndarray, longest: int, spec: DataSpec
) -> np.ndarray:
    """Padded sequences (model units) → the network's rows with each end marked: tokens
    as wide as ``longest`` steps and their END need, real steps M + 1 wide."""
    m = default_max_length(spec, self._params()["max_length"])
    if longest > m:
        limit = (
            f"max_length={m}"
            if self.max_length is not None
            else (f"max_length=None: {m}, twice the longest training sequence")
        )
        raise DataError(
            f"{self.name} models sequences of up to {m} steps ({limit}), got one of "
            f"{longest} steps; fit with max_length >= {longest}"
        )
    tokens = spec.n_categories if spec.is_discrete else None
    width = longest + 1 if spec.is_discrete else m + 1
    return encode_sequences(x, lengths, width, n_tokens=tokens)


def _decode(self: NeuralModel, out: np.ndarray, spec: DataSpec) -> tuple[np.ndarray, np.ndarray]:
    tokens = spec.n_categories if spec.is_discrete else None
    return decode_sequences(out, spec.step_shape, n_tokens=tokens)


def _generate(
    self: NeuralModel,
    n_samples: int = 1,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    prompt: Any = None,
    random_state: Any = None,
) -> np.ndarray | Sequences:
    """Draw sequences with sampling options: (n_samples, *event_shape), int64 for tokens,
    or :class:`~ptheta.data.ragged.Sequences` for a model of variable-length sequences
    (each drawn until its end).

    ``generate(n, random_state=s)`` equals ``sample(n, random_state=s)``: temperature 1
    and no top-k sample the fitted distribution itself. The options are for tokens (a
    model of real steps takes the defaults only).

    Arguments:
        n_samples: sequences to draw.
        temperature: τ ≥ 0 divides the logits (τ < 1 sharper, > 1 flatter; 0: greedy);
            with variable lengths the END token's logit too.
        top_k: sample among the k most probable tokens at each step; None: all.
        prompt: tokens (P,) or (n_samples, P) every sequence starts with, in raster order
            (P ≤ T, or P ≤ the longest modelled length); they are returned unchanged.
        random_state: seed or numpy Generator.

    Example:
        >>> import ptheta
        >>> data = ptheta.datasets.load("sunspots")
        >>> m = ptheta.make("lstm", hidden=16, epochs=1, device="cpu").fit(data.train)
        >>> m.generate(2, temperature=0.8, top_k=5, random_state=0).shape
        (2, 15)
    """
    self._check_fitted()
    if isinstance(n_samples, bool) or not isinstance(n_samples, Integral) or n_samples < 1:
        raise DataError(f"n_samples must be a whole number >= 1, got {n_samples!r}")
    temperature = check_float(self.name, "temperature", temperature, low=0)
    top_k = check_int(self.name, "top_k", top_k, low=1, allow_none=True)
    spec = self.fitted_spec
    if not spec.is_discrete and (temperature != 1 or top_k is not None or prompt is not None):
        raise DataError(
            f"this {self.name!r} models real-valued steps: temperature, top_k and prompt are "
            "options for token sequences; call sample (or generate with the defaults)"
        )
    tokens = None
    if prompt is not None:
        tokens = np.asarray(prompt)
        if tokens.dtype.kind not in "iub" and not (
            tokens.dtype.kind == "f" and np.all(tokens == np.round(tokens))
        ):
            raise DataError(f"prompt must hold whole-number tokens, got dtype {tokens.dtype}")
        tokens = torch.as_tensor(tokens.astype(np.int64))
    rng = np.random.default_rng(random_state)
    device = self._device()
    # seeded as NeuralModel._sample does, so that the default options reproduce sample()
    generator = torch.Generator(device=device).manual_seed(int(rng.integers(2**62)))
    options = {"temperature": temperature, "top_k": top_k, "prompt": tokens}
    if not spec.is_discrete:
        options = {}
    out = self._module.sample(int(n_samples), generator=generator, **options).cpu().numpy()
    if not spec.variable_length:
        return self._finish(self._from_model_units(out), int(n_samples))
    values, lengths = self._decode_sequences(out, spec)
    if not spec.is_discrete:
        real = (np.arange(values.shape[1]) < lengths[:, None]).reshape(
            *values.shape[:2], *([1] * (values.ndim - 2))
        )
        values = np.where(real, self._from_model_units(values), 0.0)
    return Sequences(values.astype(np.int64 if spec.is_discrete else np.float64), lengths)


class LSTM(NeuralModel):
    """Autoregressive LSTM over sequences of tokens or of real values, of fixed or any length.

    p(x) = ∏_t p(x_t | x_<t) with teacher forcing: the LSTM reads [BOS, x_0 … x_{T−2}] and
    predicts x_0 … x_{T−1} (see :class:`~ptheta.nn.sequence.LSTMNetwork`). The
    log-likelihood is exact; ``sample`` draws from the model, ``generate`` adds
    temperature, top-k and a prompt.

    - Tokens (binary, categorical): a softmax per step; event shapes of several axes are
      read in raster order.
    - Real values (continuous): each step, a number or a vector (event shape (T, *step)),
      is a mixture of ``n_components`` diagonal Gaussians given the past; the data are
      standardised for the network and ``score_samples`` is the log-density of the data
      in their own units (the standardisation's Jacobian added).
    - Variable-length sequences (:class:`~ptheta.data.ragged.Sequences`, a list of
      arrays): the end is scored too, p(x, L) = ∏_{t<L} p(x_t | x_<t) · p(end | x_<L): an
      END token for tokens, a stopping probability per step for real values. Sequences
      have 1 … M steps, M = ``max_length`` (the end is certain after M steps); padding
      never changes a score; ``sample`` returns ``Sequences``.

    Arguments:
        hidden: width of the embedding and the LSTM state (an int: every layer has it).
        n_layers: stacked LSTM layers.
        dropout: dropout between layers and before the output (training only).
        n_components: Gaussians per real-valued step (unused for tokens).
        max_length: the longest sequence modelled (variable-length data only); None: twice
            the longest training sequence.
        **training: the shared training arguments (epochs, lr, batch_size, dtype, device,
            random_state, ...; see ``ptheta.models.neural.TRAINING_PARAMS``).

    Fitted attributes:
        module: the trained :class:`~ptheta.nn.sequence.LSTMNetwork`; history_,
        best_epoch_: training record.

    Example:
        >>> import ptheta
        >>> data = ptheta.datasets.load("sunspots")
        >>> m = ptheta.make("lstm", hidden=32, epochs=5, device="cpu").fit(data.train)
        >>> m.score_samples(data.test.x).shape
        (3,)
        >>> words = [[0, 1], [1, 1, 0], [2], [0, 2, 2, 1]] * 5
        >>> m = ptheta.make("lstm", hidden=8, epochs=2, device="cpu").fit(words)
        >>> m.score_samples([[0, 1], [2, 2, 2]]).shape, type(m.sample(3, random_state=0))
        ((2,), <class 'ptheta.data.ragged.Sequences'>)

    References:
        Hochreiter & Schmidhuber, "Long short-term memory", Neural Computation 1997;
        Graves, "Generating sequences with recurrent neural networks", arXiv:1308.0850
        (mixture-density outputs and end-of-stroke probabilities per step).
    """

    name: ClassVar[str] = "lstm"
    family: ClassVar[str] = "autoregressive"
    likelihood: ClassVar[str] = "exact"
    standardize_input: ClassVar[bool] = True
    abilities: ClassVar[dict[str, Any]] = {
        "generates_sequences": True,
        "needs_sequence": True,
        "variable_length": True,
    }
    data_kinds: ClassVar[tuple[str, ...]] = ("binary", "categorical", "continuous")
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "explorer": {"hidden": 128, "epochs": 40, "lr": 3e-3, "max_time": 60},
        "explorer-quick": {"hidden": 8, **EXPLORER_QUICK},
    }
    quick_params: ClassVar[dict[str, Any]] = {
        "hidden": 16,
        "epochs": 20,
        "lr": 0.02,
        "batch_size": 64,
        "n_components": 3,
        "dtype": "float64",
        "device": "cpu",
    }
    parameters: ClassVar[dict[str, Param]] = {
        "hidden": Int(low=1),
        "n_layers": Int(low=1),
        "dropout": Float(low=0, high=1, high_open=True),
        **SHARED_PARAMETERS,
    }

    def __init__(
        self,
        hidden: int = 128,
        *,
        n_layers: int = 1,
        dropout: float = 0.0,
        n_components: int = 5,
        max_length: int | None = None,
        **training: Any,
    ) -> None:
        super().__init__(**training)
        self.hidden = hidden
        self.n_layers = n_layers
        self.dropout = dropout
        self.n_components = n_components
        self.max_length = max_length

    def _build_module(self, spec: DataSpec, n_classes: int | None) -> LSTMNetwork:
        return LSTMNetwork.from_config(self.config(), spec, n_classes)

    _encode_sequences = _encode
    _decode_sequences = _decode
    generate = _generate


class Transformer(NeuralModel):
    """Causal decoder-only Transformer over sequences of tokens or of real values, of fixed
    or any length, sampled with a key–value cache.

    p(x) = ∏_t p(x_t | x_<t) with teacher forcing on [BOS, x_0 … x_{T−2}] (see
    :class:`~ptheta.nn.sequence.TransformerNetwork`): exact log-likelihood; ``sample``
    draws from the model, ``generate`` adds temperature, top-k and a prompt. Tokens, real
    values (a mixture of Gaussians per step) and variable-length sequences (the end
    scored) as for :class:`LSTM`; with variable lengths the end takes a position, so the
    context must hold M + 1 positions (``long_sequences="error"``) or slide.

    Arguments:
        hidden: model width (an int, divisible by ``n_heads``; every block has it).
        n_heads: attention heads.
        n_layers: Transformer blocks.
        context: positions attended over; None: the fitted sequence length T (M + 1 for
            variable-length data).
        long_sequences: what to do when sequences are longer than the context:
            ``"error"`` (a ParameterError at fit time) or ``"sliding"`` (step t
            conditions on the last context − 1 steps only).
        dropout: dropout on embeddings, attention and MLP outputs (training only).
        n_components, max_length: as for :class:`LSTM`.
        **training: the shared training arguments (epochs, lr, batch_size, dtype, device,
            random_state, ...; see ``ptheta.models.neural.TRAINING_PARAMS``).

    Fitted attributes:
        module: the trained :class:`~ptheta.nn.sequence.TransformerNetwork`; history_,
        best_epoch_: training record.

    Example:
        >>> import ptheta
        >>> data = ptheta.datasets.load("sunspots")
        >>> m = ptheta.make("transformer", hidden=32, epochs=5, device="cpu").fit(data.train)
        >>> m.generate(2, prompt=data.test.x[0, :5], random_state=0).shape
        (2, 15)

    References:
        Vaswani et al., "Attention is all you need", NeurIPS 2017.
    """

    name: ClassVar[str] = "transformer"
    family: ClassVar[str] = "autoregressive"
    likelihood: ClassVar[str] = "exact"
    standardize_input: ClassVar[bool] = True
    abilities: ClassVar[dict[str, Any]] = {
        "generates_sequences": True,
        "needs_sequence": True,
        "variable_length": True,
    }
    data_kinds: ClassVar[tuple[str, ...]] = ("binary", "categorical", "continuous")
    quick_params: ClassVar[dict[str, Any]] = {
        "hidden": 16,
        "n_heads": 2,
        "n_layers": 1,
        "epochs": 20,
        "lr": 0.01,
        "batch_size": 64,
        "n_components": 3,
        "dtype": "float64",
        "device": "cpu",
    }
    parameters: ClassVar[dict[str, Param]] = {
        "hidden": Int(low=1),
        "n_heads": Int(low=1),
        "n_layers": Int(low=1),
        "context": Int(low=1, none=True),
        "long_sequences": Choice(*LONG_SEQUENCE_POLICIES),
        "dropout": Float(low=0, high=1, high_open=True),
        **SHARED_PARAMETERS,
    }
    renamed: ClassVar[dict[str, str]] = {"dim": "hidden"}

    def __init__(
        self,
        hidden: int = 64,
        *,
        n_heads: int = 4,
        n_layers: int = 2,
        context: int | None = None,
        long_sequences: str = "error",
        dropout: float = 0.0,
        n_components: int = 5,
        max_length: int | None = None,
        **training: Any,
    ) -> None:
        super().__init__(**training)
        self.hidden = hidden
        self.n_heads = n_heads
        self.n_layers = n_layers
        self.context = context
        self.long_sequences = long_sequences
        self.dropout = dropout
        self.n_components = n_components
        self.max_length = max_length

    def _check_params_together(self, params: Any) -> None:
        if params["hidden"] % params["n_heads"]:
            raise ParameterError(
                f"{self.name}: hidden={params['hidden']} must be divisible by "
                f"n_heads={params['n_heads']} (each head gets hidden / n_heads channels)"
            )

    def _build_module(self, spec: DataSpec, n_classes: int | None) -> TransformerNetwork:
        return TransformerNetwork.from_config(self.config(), spec, n_classes)

    _encode_sequences = _encode
    _decode_sequences = _decode
    generate = _generate
