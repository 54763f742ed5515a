"""Autoregressive sequence models over tokens: an LSTM and a causal decoder-only Transformer."""

from __future__ import annotations

import math
from numbers import Integral
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from ptheta.data.spec import DataSpec
from ptheta.errors import CapabilityError, DataError, ParameterError
from ptheta.models.neural import NeuralModel
from ptheta.nn.attention import KVCache, TransformerBlock
from ptheta.nn.shapes import batched, sampled
from ptheta.params import Choice, Config, Float, Int, Param, check_choice, check_float, check_int

LONG_SEQUENCE_POLICIES: tuple[str, ...] = ("error", "sliding")


# ---------------------------------------------------------------------------------------
# Shared pieces of both networks


def _rate(model: str, name: str, value: Any) -> float:
    return check_float(model, name, value, low=0, high=1, high_open=True)


def _event_shape(model: str, seq_len: int | tuple[int, ...]) -> tuple[int, ...]:
    shape = (seq_len,) if isinstance(seq_len, Integral) else tuple(seq_len)
    return tuple(check_int(model, "seq_len", s, low=1) for s in shape)


def _shift(x: Tensor, bos: int) -> Tensor:
    """Teacher-forcing inputs [BOS, x_0 … x_{T−2}] for targets x (N, T) → (N, T)."""
    return torch.cat([x.new_full((len(x), 1), bos), x[:, :-1]], dim=1)


def _sequence_log_prob(logits: Tensor, x: Tensor) -> Tensor:
    """Σ_t log softmax(logits_t)[x_t]: logits (N, T, K), x (N, T) → (N,)."""
    return logits.log_softmax(-1).gather(2, x.unsqueeze(2)).squeeze(2).sum(1)


def _no_labels(y: Tensor | None) -> None:
    if y is not None:
        raise CapabilityError("sequence models are not class-conditional; pass y=None")


def draw(
    logits: Tensor,
    generator: torch.Generator | None = None,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
) -> Tensor:
    """Draw one token per row from softmax(logits / temperature), keeping the top k.

    Uses the Gumbel-max trick, argmax(logits / τ + G) with G ~ Gumbel(0, 1), so that every
    call consumes the same random numbers (B·K uniforms from ``generator``) whatever the
    options: cached and uncached decoding draw identical samples.

    Arguments:
        logits: (B, K) unnormalised log-probabilities.
        temperature: τ ≥ 0; 0 takes the argmax (greedy decoding).
        top_k: keep the k most probable tokens (ties at the k-th value are kept); None: all.

    Returns:
        (B,) LongTensor of tokens.
    """
    u = torch.rand(logits.shape, generator=generator, device=logits.device, dtype=logits.dtype)
    if top_k is not None and top_k < logits.shape[-1]:
        kth = logits.topk(top_k, dim=-1).values[:, -1:]  # (B, 1)
        logits = logits.masked_fill(logits < kth, -math.inf)
    if temperature == 0:
        return logits.argmax(-1)
    gumbel = -torch.log(-torch.log(u.clamp_min(torch.finfo(u.dtype).tiny)))
    return (logits / temperature + gumbel).argmax(-1)


def _start(
    n: int, length: int, n_tokens: int, prompt: Tensor | None, device: torch.device
) -> tuple[Tensor, int]:
    """Output buffer (n, length) with the prompt (P,) or (n, P) written first, and P."""
    out = torch.zeros(n, length, dtype=torch.long, device=device)
    if prompt is None:
        return out, 0
    prompt = torch.as_tensor(prompt, dtype=torch.long, device=device)
    prompt = prompt.expand(n, -1) if prompt.dim() == 1 else prompt
    if prompt.dim() != 2 or len(prompt) != n or prompt.shape[1] > length:
        raise DataError(
            f"prompt must have shape (P,) or ({n}, P) with P <= {length}, got {tuple(prompt.shape)}"
        )
    if prompt.numel() and (prompt.min() < 0 or prompt.max() >= n_tokens):
        raise DataError(f"prompt tokens must lie in 0..{n_tokens - 1}")
    out[:, : prompt.shape[1]] = prompt
    return out, prompt.shape[1]


# ---------------------------------------------------------------------------------------
# Networks (module level)


class LSTMNetwork(nn.Module):
    """Autoregressive LSTM over sequences of K tokens: p(x) = ∏_t p(x_t | x_<t).

    Inputs are [BOS, x_0, …, x_{T−2}] (BOS is a learned embedding, index K); the LSTM
    state after input t gives the logits of x_t, so ``log_prob`` is exact and sampling
    feeds each drawn token back in. Event shapes of several axes are flattened in raster
    (C) order. ``log_prob`` and ``loss`` read the last axis as time: tokens (*batch, L) of
    any integer dtype, any length L, give (*batch) (a batch of sequences, never one long
    sequence); ``sample`` takes a sample shape (see :mod:`ptheta.nn.shapes`).

    Arguments:
        n_tokens: K, the vocabulary (2 for binary data).
        seq_len: T, or an event shape (flattened; T is its size).
        hidden: width of the embedding and of the LSTM state.
        n_layers: stacked LSTM layers.
        dropout: dropout between LSTM layers and before the output layer (training only).

    Example:
        >>> net = LSTMNetwork(5, 12, hidden=16)
        >>> x = net.sample(3, generator=torch.Generator().manual_seed(0))
        >>> x.shape, net.log_prob(x).shape
        (torch.Size([3, 12]), torch.Size([3]))

    References:
        Hochreiter & Schmidhuber, "Long short-term memory", Neural Computation 1997;
        Graves, "Generating sequences with recurrent neural networks", arXiv:1308.0850.
    """

    variable_length = True  # log_prob reads (*batch, L) for any length L (ptheta.nn.shapes)

    @property
    def n_categories(self) -> int:
        """K, the vocabulary (the levels ptheta.nn.shapes checks inputs against)."""
        return self.n_tokens

    @classmethod
    def from_config(
        cls, config: Config, spec: DataSpec, n_classes: int | None = None
    ) -> LSTMNetwork:
        """The network of an :class:`LSTM`'s config (``hidden``, ``n_layers``,
        ``dropout``) for token sequences of ``spec``."""
        return cls(
            spec.n_categories,
            spec.event_shape,
            hidden=config.hidden,
            n_layers=config.n_layers,
            dropout=config.dropout,
        )

    def __init__(
        self,
        n_tokens: int,
        seq_len: int | tuple[int, ...],
        *,
        hidden: int = 128,
        n_layers: int = 1,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.n_tokens = check_int("lstm", "n_tokens", n_tokens, low=2)
        self.event_shape = _event_shape("lstm", seq_len)
        self.seq_len = math.prod(self.event_shape)
        hidden = check_int("lstm", "hidden", hidden, low=1)
        n_layers = check_int("lstm", "n_layers", n_layers, low=1)
        dropout = _rate("lstm", "dropout", dropout)
        self.embed = nn.Embedding(self.n_tokens + 1, hidden)  # index K is BOS
        self.lstm = nn.LSTM(
            hidden, hidden, n_layers, batch_first=True, dropout=dropout if n_layers > 1 else 0.0
        )
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(hidden, self.n_tokens)

    def extra_repr(self) -> str:
        return (
            f"n_tokens={self.n_tokens}, seq_len={self.seq_len}, "
            f"hidden={self.embed.embedding_dim}, n_layers={self.lstm.num_layers}"
        )

    def _run(
        self, u: Tensor, state: tuple[Tensor, Tensor] | None = None
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """Logits (B, S, K) after inputs u (B, S) (tokens or BOS), and the LSTM state."""
        h, state = self.lstm(self.embed(u), state)  # (B, S, H)
        return self.head(self.drop(h)), state

    def forward(self, x: Tensor) -> Tensor:
        """Teacher-forced logits (N, L, K) of tokens x (N, L): row t parametrises
        p(x_t | x_<t)."""
        return self._run(_shift(x, self.n_tokens))[0]

    @batched
    def log_prob(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """Exact log p(x) in nats of tokens (*batch, L) (or (*batch, *event_shape)),
        shape (*batch)."""
        _no_labels(y)
        x = x.reshape(len(x), -1)
        return _sequence_log_prob(self(x), x)

    def loss(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """Per-sequence negative log-likelihood, shape (*batch)."""
        return -self.log_prob(x, y)

    @sampled(per_example={"prompt": 1})
    @torch.no_grad()
    def sample(
        self,
        n: int,
        y: Tensor | None = None,
        generator: torch.Generator | None = None,
        *,
        temperature: float = 1.0,
        top_k: int | None = None,
        prompt: Tensor | None = None,
    ) -> Tensor:
        """Draw sequences (*sample_shape, *event_shape), all randomness from ``generator``.

        Arguments:
            sample_shape: an int n, a tuple, or () for one sequence.
            temperature, top_k: see :func:`draw`; the defaults sample the model itself.
            prompt: tokens (P,) or (*sample_shape, P) every sequence starts with (P ≤ T).
        """
        _no_labels(y)
        device = self.head.weight.device
        out, p = _start(n, self.seq_len, self.n_tokens, prompt, device)
        # the whole prompt in one call; then one token at a time, carrying the LSTM state
        u = torch.cat([out.new_full((n, 1), self.n_tokens), out[:, :p]], dim=1)  # (n, P + 1)
        state = None
        for t in range(p, self.seq_len):
            logits, state = self._run(u, state)
            out[:, t] = draw(logits[:, -1], generator, temperature=temperature, top_k=top_k)
            u = out[:, t : t + 1]
        return out.reshape(n, *self.event_shape)


class TransformerNetwork(nn.Module):
    """Causal decoder-only Transformer over sequences of K tokens: p(x) = ∏_t p(x_t | x_<t).

    Token and learned positional embeddings (positions 0 … context − 1), ``n_layers``
    pre-LayerNorm blocks of causal multi-head self-attention and MLP
    (:class:`~ptheta.nn.attention.TransformerBlock`), a final LayerNorm and a linear map to
    K logits. Inputs are [BOS, x_0, …, x_{T−2}] (BOS: index K), so the output at position t
    gives p(x_t | x_<t) and ``log_prob`` is exact.

    Sequences longer than the context (T > context) follow ``long_sequences``: ``"error"``
    refuses them; ``"sliding"`` makes step t ≥ context condition on the last context − 1
    tokens only, computed as a fresh sequence [BOS, x_{t−context+1}, …, x_{t−1}]: a
    finite-context model, normalised like any other, for which ``log_prob`` and sampling
    agree exactly. Each step past the context costs one pass over its window, in training,
    scoring and sampling alike (the positions shift, so the cache cannot be reused).

    Sampling uses a key–value cache by default (``use_cache=False`` recomputes the prefix
    at every step); both draw identical sequences from the same generator. Shapes: as for
    :class:`LSTMNetwork` (tokens (*batch, L) → (*batch)).

    Arguments:
        n_tokens: K, the vocabulary (2 for binary data).
        seq_len: T, or an event shape (flattened in raster order; T is its size).
        hidden: model width C (divisible by ``n_heads``).
        n_heads: attention heads.
        n_layers: Transformer blocks.
        context: positions the model attends over; None: T.
        long_sequences: ``"error"`` or ``"sliding"``, for T > context.
        dropout: dropout on embeddings, attention and MLP outputs (training only).

    Example:
        >>> net = TransformerNetwork(5, 12, hidden=16, n_heads=2, n_layers=1)
        >>> x = net.sample(3, generator=torch.Generator().manual_seed(0))
        >>> x.shape, net.log_prob(x).shape
        (torch.Size([3, 12]), torch.Size([3]))

    References:
        Vaswani et al., "Attention is all you need", NeurIPS 2017; Radford et al.,
        "Language models are unsupervised multitask learners" (GPT-2), 2019.
    """

    variable_length = True  # log_prob reads (*batch, L) for any length L (ptheta.nn.shapes)

    @property
    def n_categories(self) -> int:
        """K, the vocabulary (the levels ptheta.nn.shapes checks inputs against)."""
        return self.n_tokens

    @classmethod
    def from_config(
        cls, config: Config, spec: DataSpec, n_classes: int | None = None
    ) -> TransformerNetwork:
        """The network of a :class:`Transformer`'s config (``hidden``, the width,
        ``n_heads``, ``n_layers``, ``context``, ``long_sequences``, ``dropout``)
        for token sequences of ``spec``."""
        return cls(
            spec.n_categories,
            spec.event_shape,
            hidden=config.hidden,
            n_heads=config.n_heads,
            n_layers=config.n_layers,
            context=config.context,
            long_sequences=config.long_sequences,
            dropout=config.dropout,
        )

    def __init__(
        self,
        n_tokens: int,
        seq_len: int | tuple[int, ...],
        *,
        hidden: int = 64,
        n_heads: int = 4,
        n_layers: int = 2,
        context: int | None = None,
        long_sequences: str = "error",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        name = "transformer"
        self.n_tokens = check_int(name, "n_tokens", n_tokens, low=2)
        self.event_shape = _event_shape(name, seq_len)
        self.seq_len = math.prod(self.event_shape)
        context = check_int(name, "context", context, low=1, allow_none=True)
        self.context = self.seq_len if context is None else context
        check_choice(name, "long_sequences", long_sequences, LONG_SEQUENCE_POLICIES)
        dim = check_int(name, "hidden", hidden, low=1)
        n_heads = check_int(name, "n_heads", n_heads, low=1)
        n_layers = check_int(name, "n_layers", n_layers, low=1)
        dropout = _rate(name, "dropout", dropout)
        self.sliding = long_sequences == "sliding"
        if self.seq_len > self.context and not self.sliding:
            raise ParameterError(self._too_long(self.seq_len))
        if self.seq_len > self.context and self.context < 2:
            raise ParameterError("long_sequences='sliding' needs context >= 2")
        self.tok = nn.Embedding(self.n_tokens + 1, dim)  # index K is BOS
        self.pos = nn.Embedding(self.context, dim)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(
            TransformerBlock(dim, n_heads, dropout=dropout) for _ in range(n_layers)
        )
        self.ln = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, self.n_tokens)

    def extra_repr(self) -> str:
        window = ", sliding" if self.sliding else ""
        return (
            f"n_tokens={self.n_tokens}, seq_len={self.seq_len}, context={self.context}{window}, "
            f"hidden={self.tok.embedding_dim}, n_layers={len(self.blocks)}"
        )

    def _too_long(self, length: int) -> str:
        return (
            f"sequences of length {length} are longer than the Transformer's context of "
            f"{self.context}; set long_sequences='sliding' (each step then sees the last "
            f"{self.context - 1} tokens), raise context to at least {length}, or cut the data "
            "into shorter windows"
        )

    def _run(self, u: Tensor, start: int = 0, caches: list[KVCache] | None = None) -> Tensor:
        """Logits (B, S, K) of inputs u (B, S) at positions start … start + S − 1
        (< context); with ``caches`` (one per block) the earlier positions come from them."""
        positions = torch.arange(start, start + u.shape[1], device=u.device)
        h = self.drop(self.tok(u) + self.pos(positions))  # (B, S, C)
        for i, block in enumerate(self.blocks):
            h = block(h, None if caches is None else caches[i])
        return self.head(self.ln(h))

    def forward(self, x: Tensor) -> Tensor:
        """Teacher-forced logits (N, L, K) of tokens x (N, L): row t parametrises
        p(x_t | x_<t) (with the sliding window for t ≥ context)."""
        n, length = x.shape
        u = _shift(x, self.n_tokens)  # (N, L)
        c = self.context
        if length <= c:
            return self._run(u)
        if not self.sliding:
            raise ParameterError(self._too_long(length))
        head = self._run(u[:, :c])  # (N, c, K): steps 0 … c − 1 see the whole prefix
        # step t ≥ c sees [BOS, x_{t−c+1} … x_{t−1}]: window s = t − c of x_1 … x_{L−2}
        windows = x[:, 1 : length - 1].unfold(1, c - 1, 1)  # (N, L − c, c − 1)
        windows = windows.reshape(-1, c - 1)
        u = torch.cat([windows.new_full((len(windows), 1), self.n_tokens), windows], dim=1)
        tail = self._run(u)[:, -1].reshape(n, length - c, -1)  # (N, L − c, K)
        return torch.cat([head, tail], dim=1)

    @batched
    def log_prob(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """Exact log p(x) in nats of tokens (*batch, L) (or (*batch, *event_shape)),
        shape (*batch)."""
        _no_labels(y)
        x = x.reshape(len(x), -1)
        return _sequence_log_prob(self(x), x)

    def loss(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """Per-sequence negative log-likelihood, shape (*batch)."""
        return -self.log_prob(x, y)

    def next_logits(self, out: Tensor, t: int, caches: list[KVCache] | None = None) -> Tensor:
        """Logits (B, K) of p(x_t | x_<t) given tokens out[:, :t] (B, ≥ t).

        With ``caches`` (one :class:`KVCache` per block, filled by earlier calls on the same
        ``out``), only the positions not yet cached are computed.
        """
        c, bos = self.context, self.n_tokens
        if t >= c:  # the sliding window: positions shift every step, so nothing is cached
            window = out[:, t - c + 1 : t]  # (B, c − 1)
            return self._run(torch.cat([window.new_full((len(out), 1), bos), window], 1))[:, -1]
        u = torch.cat([out.new_full((len(out), 1), bos), out[:, :t]], dim=1)  # (B, t + 1)
        if caches is None:
            return self._run(u)[:, -1]
        done = len(caches[0])
        return self._run(u[:, done:], done, caches)[:, -1]

    @sampled(per_example={"prompt": 1})
    @torch.no_grad()
    def sample(
        self,
        n: int,
        y: Tensor | None = None,
        generator: torch.Generator | None = None,
        *,
        temperature: float = 1.0,
        top_k: int | None = None,
        prompt: Tensor | None = None,
        use_cache: bool = True,
    ) -> Tensor:
        """Draw sequences (*sample_shape, *event_shape), all randomness from ``generator``.

        Arguments:
            sample_shape: an int n, a tuple, or () for one sequence.
            temperature, top_k: see :func:`draw`; the defaults sample the model itself.
            prompt: tokens (P,) or (*sample_shape, P) every sequence starts with (P ≤ T).
            use_cache: decode with a key–value cache (O(t) per step) instead of recomputing
                the prefix (O(t²)); the samples are the same.
        """
        _no_labels(y)
        out, p = _start(n, self.seq_len, self.n_tokens, prompt, self.head.weight.device)
        caches = [KVCache(self.context) for _ in self.blocks] if use_cache else None
        for t in range(p, self.seq_len):
            logits = self.next_logits(out, t, caches)
            out[:, t] = draw(logits, generator, temperature=temperature, top_k=top_k)
        return out.reshape(n, *self.event_shape)


# ---------------------------------------------------------------------------------------
# Estimators


def _generate(
    self: NeuralModel,
    n_samples: int = 1,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    prompt: Any = None,
    random_state: Any = None,
) -> np.ndarray:
    """Draw sequences with sampling options, shape (n_samples, *event_shape), int64.

    ``generate(n, random_state=s)`` equals ``sample(n, random_state=s)``: temperature 1
    and no top-k sample the fitted distribution itself.

    Arguments:
        n_samples: sequences to draw.
        temperature: τ ≥ 0 divides the logits (τ < 1 sharper, > 1 flatter; 0: greedy).
        top_k: sample among the k most probable tokens at each step; None: all.
        prompt: tokens (P,) or (n_samples, P) every sequence starts with, in raster order
            (P ≤ T); they are returned unchanged.
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
    out = self._module.sample(
        int(n_samples), generator=generator, temperature=temperature, top_k=top_k, prompt=tokens
    )
    return self._finish(out.cpu().numpy(), int(n_samples))


class LSTM(NeuralModel):
    """Autoregressive LSTM over token sequences (characters, discretised time series).

    p(x) = ∏_t p(x_t | x_<t) with teacher forcing: the LSTM reads [BOS, x_0 … x_{T−2}] and
    predicts x_0 … x_{T−1} (see :class:`LSTMNetwork`). The log-likelihood is exact;
    ``sample`` draws from the model, ``generate`` adds temperature, top-k and a prompt.
    Binary and categorical data; event shapes of several axes are read in raster order.

    Arguments:
        hidden: width of the embedding and the LSTM state (an int: every layer has it).
        n_layers: stacked LSTM layers.
        dropout: dropout between layers and before the output (training only).
        **training: the shared training arguments (epochs, lr, batch_size, dtype, device,
            random_state, ...; see ``ptheta.models.neural.TRAINING_PARAMS``).

    Fitted attributes:
        module: the trained :class:`LSTMNetwork`; history_, best_epoch_: training record.

    Example:
        >>> import ptheta
        >>> data = ptheta.datasets.load("sunspots")
        >>> m = ptheta.make("lstm", hidden=32, epochs=5, device="cpu").fit(data.train)
        >>> m.score_samples(data.test.x).shape
        (3,)

    References:
        Hochreiter & Schmidhuber, "Long short-term memory", Neural Computation 1997.
    """

    name: ClassVar[str] = "lstm"
    family: ClassVar[str] = "autoregressive"
    likelihood: ClassVar[str] = "exact"
    abilities: ClassVar[dict[str, Any]] = {"generates_sequences": True, "needs_sequence": True}
    data_kinds: ClassVar[tuple[str, ...]] = ("binary", "categorical")
    quick_params: ClassVar[dict[str, Any]] = {
        "hidden": 16,
        "epochs": 20,
        "lr": 0.02,
        "batch_size": 64,
        "dtype": "float64",
        "device": "cpu",
    }
    parameters: ClassVar[dict[str, Param]] = {
        "hidden": Int(low=1),
        "n_layers": Int(low=1),
        "dropout": Float(low=0, high=1, high_open=True),
    }

    def __init__(
        self, hidden: int = 128, *, n_layers: int = 1, dropout: float = 0.0, **training: Any
    ) -> None:
        super().__init__(**training)
        self.hidden = hidden
        self.n_layers = n_layers
        self.dropout = dropout

    def _build_module(self, spec: DataSpec, n_classes: int | None) -> LSTMNetwork:
        return LSTMNetwork.from_config(self.config(), spec, n_classes)

    generate = _generate


class Transformer(NeuralModel):
    """Causal decoder-only Transformer over token sequences, sampled with a key–value cache.

    p(x) = ∏_t p(x_t | x_<t) with teacher forcing on [BOS, x_0 … x_{T−2}] (see
    :class:`TransformerNetwork`): exact log-likelihood; ``sample`` draws from the model,
    ``generate`` adds temperature, top-k and a prompt. Binary and categorical data; event
    shapes of several axes are read in raster order.

    Arguments:
        hidden: model width (an int, divisible by ``n_heads``; every block has it).
        n_heads: attention heads.
        n_layers: Transformer blocks.
        context: positions attended over; None: the fitted sequence length T.
        long_sequences: what to do when T > context: ``"error"`` (a ParameterError at fit
            time) or ``"sliding"`` (step t conditions on the last context − 1 tokens only).
        dropout: dropout on embeddings, attention and MLP outputs (training only).
        **training: the shared training arguments (epochs, lr, batch_size, dtype, device,
            random_state, ...; see ``ptheta.models.neural.TRAINING_PARAMS``).

    Fitted attributes:
        module: the trained :class:`TransformerNetwork`; history_, best_epoch_: training
        record.

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
    abilities: ClassVar[dict[str, Any]] = {"generates_sequences": True, "needs_sequence": True}
    data_kinds: ClassVar[tuple[str, ...]] = ("binary", "categorical")
    quick_params: ClassVar[dict[str, Any]] = {
        "hidden": 16,
        "n_heads": 2,
        "n_layers": 1,
        "epochs": 20,
        "lr": 0.01,
        "batch_size": 64,
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
        **training: Any,
    ) -> None:
        super().__init__(**training)
        self.hidden = hidden
        self.n_heads = n_heads
        self.n_layers = n_layers
        self.context = context
        self.long_sequences = long_sequences
        self.dropout = dropout

    def _check_params_together(self, params: Any) -> None:
        if params["hidden"] % params["n_heads"]:
            raise ParameterError(
                f"{self.name}: hidden={params['hidden']} must be divisible by "
                f"n_heads={params['n_heads']} (each head gets hidden / n_heads channels)"
            )

    def _build_module(self, spec: DataSpec, n_classes: int | None) -> TransformerNetwork:
        return TransformerNetwork.from_config(self.config(), spec, n_classes)

    generate = _generate
