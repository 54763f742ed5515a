"""Autoregressive sequence networks (an LSTM, a causal Transformer) over tokens or real steps.

Both networks model p(x) = ∏_t p(x_t | x_<t) with teacher forcing: they read
[BOS, x_0, …, x_{S−2}] and the output at position t parametrises step t. What a step is
and how a sequence ends is shared (:class:`SequenceNetwork`):

- tokens (``n_tokens`` = K): a softmax over the K tokens;
- real steps (``n_tokens=None``): a mixture of diagonal Gaussians over the D values of a
  step (:class:`~ptheta.nn.mixture_head.MixtureHead`), an exact density;
- variable length (``ends=True``): the sequence's end is an event the model scores, so
  p(x, L) = ∏_{t<L} p(x_t, not ended | x_<t) · p(end | x_<L). For tokens the vocabulary
  grows by END (index K); for real steps a Bernoulli "stop" p(end | x_<t) joins each
  step's mixture. No sequence is empty (p(end) = 0 before the first step) and none is
  longer than ``seq_len`` = M (the end is certain after M steps), so every probability is
  normalised over sequences of 1 … M steps and sampling needs no truncation.

Variable-length batches travel as one padded tensor whose end marks each length, so
the Trainer batches them like any examples: tokens (N, S) with END at position L and
anything in 0..K after it; real steps (N, S, D + 1) whose last channel is 1 at the L
real steps and 0 from the end on. Whatever follows the end is replaced by zeros before
the network reads it, so padding never changes a score (not even its rounding).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from numbers import Integral
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ptheta.data.spec import DataSpec
from ptheta.errors import CapabilityError, DataError, ParameterError
from ptheta.nn.attention import KVCache, TransformerBlock
from ptheta.nn.mixture_head import MixtureHead
from ptheta.nn.shapes import batched, sampled
from ptheta.params import Config, check_choice, check_float, check_int

LONG_SEQUENCE_POLICIES: tuple[str, ...] = ("error", "sliding")
# A stopping logit that gives probability exactly 0 or 1 (log-sigmoid of ±inf is finite)
_NEVER, _ALWAYS = -math.inf, math.inf


# ---------------------------------------------------------------------------------------
# Helpers


def shift(x: Tensor, bos: int) -> Tensor:
    """Teacher-forcing inputs [BOS, x_0 … x_{T−2}] for targets x (N, T) → (N, T)."""
    return torch.cat([x.new_full((len(x), 1), bos), x[:, :-1]], dim=1)


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
    options: cached and uncached decoding draw identical samples. Tokens whose logit is
    −inf are never drawn.

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


def _rate(model: str, name: str, value: Any) -> float:
    return check_float(model, name, value, low=0, high=1, high_open=True)


def _no_labels(y: Tensor | None) -> None:
    if y is not None:
        raise CapabilityError("sequence models are not class-conditional; pass y=None")


def _prompt(n: int, width: int, n_tokens: int, prompt: Any, out: Tensor) -> int:
    """Write the prompt (P,) or (n, P) of tokens into out[:, :P]; return P."""
    if prompt is None:
        return 0
    prompt = torch.as_tensor(prompt, dtype=torch.long, device=out.device)
    prompt = prompt.expand(n, -1) if prompt.dim() == 1 else prompt
    if prompt.dim() != 2 or len(prompt) != n or prompt.shape[1] > width:
        raise DataError(
            f"prompt must have shape (P,) or ({n}, P) with P <= {width}, got {tuple(prompt.shape)}"
        )
    if prompt.numel() and (prompt.min() < 0 or prompt.max() >= n_tokens):
        raise DataError(f"prompt tokens must lie in 0..{n_tokens - 1}")
    out[:, : prompt.shape[1]] = prompt
    return prompt.shape[1]


def token_lengths(x: Tensor, end: int) -> tuple[Tensor, Tensor]:
    """Tokens x (N, S) with END (= ``end``) marking each sequence's end → the tokens with
    zeros from each end on, and the lengths (N,) (S for a row without END)."""
    ended = x == end
    lengths = torch.where(ended.any(1), ended.int().argmax(1), x.shape[1])
    after = torch.arange(x.shape[1], device=x.device) >= lengths[:, None]
    return x.masked_fill(after, 0), lengths


def bound_end_logits(logits: Tensor, start: int, max_length: int) -> Tensor:
    """Logits (B, S, K + 1) of steps start … start + S − 1, END last, with the end made
    impossible at step 0 (no empty sequence) and certain at step ``max_length``."""
    t = torch.arange(start, start + logits.shape[1], device=logits.device)[:, None]
    end = logits[..., -1:].masked_fill(t == 0, -math.inf)
    rest = logits[..., :-1].masked_fill(t == max_length, -math.inf)
    return torch.cat([rest, end], dim=-1)


def token_step_log_probs(logits: Tensor, v: Tensor, lengths: Tensor | None) -> Tensor:
    """log p of each step (N, S) from logits (N, S, K[+1]) and clean tokens v (N, S):
    with ``lengths``, the steps t < L, then END (index K) at L, and 0 after."""
    if lengths is None:
        return logits.log_softmax(-1).gather(2, v.unsqueeze(2)).squeeze(2)
    t = torch.arange(v.shape[1], device=v.device)
    targets = torch.where(t == lengths[:, None], logits.shape[-1] - 1, v)
    per_step = logits.log_softmax(-1).gather(2, targets.unsqueeze(2)).squeeze(2)
    return torch.where(t <= lengths[:, None], per_step, torch.zeros_like(per_step))


# ---------------------------------------------------------------------------------------
# What the two networks share: steps in, step distributions out, ends, sampling


class SequenceNetwork(nn.Module):
    """Base of :class:`LSTMNetwork` and :class:`TransformerNetwork`: the input embedding,
    the output head, the end of a sequence, ``log_prob``, ``loss`` and ``sample`` (see the
    module docstring). Subclasses build their body and implement ``_params(v)`` (the
    step parameters (N, S, P) of clean steps v, teacher-forced) and ``_decoder(use_cache)``
    (a function (v, t) → the parameters (B, P) of step t given v[:, :t]).

    Shapes: tokens (*batch, S) of any length S (``variable_length``); real steps
    (*batch, T) for scalar steps of fixed length (any length too), (*batch, T, D) for
    vectors, and (*batch, M + 1, D + 1) with ends.
    """

    variable_length = True  # log_prob reads (*batch, L) for any length L (ptheta.nn.shapes)

    def _setup(
        self,
        name: str,
        embedding: str,
        n_tokens: int | None,
        seq_len: int | tuple[int, ...],
        hidden: int,
        *,
        ends: bool,
        dims: int | None,
        n_components: int,
    ) -> None:
        """Check the data arguments and build the input embedding (the attribute named
        ``embedding``), the output ``head`` (and ``stop``)."""
        self.ends = bool(ends)
        self.tokens = n_tokens is not None
        shape = (seq_len,) if isinstance(seq_len, Integral) else tuple(seq_len)
        shape = tuple(check_int(name, "seq_len", s, low=1) for s in shape)
        if self.ends and len(shape) != 1:
            raise ParameterError(f"{name}: with ends=True, seq_len is the longest length M")
        if self.tokens:
            self.n_tokens = check_int(name, "n_tokens", n_tokens, low=2)
            self.dims = 1
            self.seq_len = shape[0] + 1 if self.ends else math.prod(shape)
            self.event_shape = (self.seq_len,) if self.ends else shape
        else:
            self.n_tokens = None
            self.dims = (
                math.prod(shape[1:]) if dims is None else check_int(name, "dims", dims, low=1)
            )
            if not self.ends and dims is not None and math.prod(shape[1:]) != dims:
                raise ParameterError(f"{name}: dims={dims} disagrees with seq_len {shape}")
            self.seq_len = shape[0] + 1 if self.ends else shape[0]
            self.event_shape = (self.seq_len, self.dims + 1) if self.ends else shape
            # vectors (and the end channel) are an axis after time: one fixed event shape
            self.variable_length = not self.ends and len(shape) == 1
        self.max_length = shape[0] if self.ends else None
        hidden = check_int(name, "hidden", hidden, low=1)
        self._embedding = embedding
        if self.tokens:
            setattr(self, embedding, nn.Embedding(self.n_tokens + 1, hidden))  # K is BOS
            self.head = nn.Linear(hidden, self.n_tokens + int(self.ends))  # index K is END
        else:
            n_components = check_int(name, "n_components", n_components, low=1)
            setattr(self, embedding, nn.Linear(self.dims + 1, hidden))  # [values, is BOS]
            self.head = MixtureHead(hidden, self.dims, n_components=n_components)
            if self.ends:
                self.stop = nn.Linear(hidden, 1)

    @property
    def n_categories(self) -> int | None:
        """Levels of a token (END included where the sequence's end is a token), or None
        for real steps (what ptheta.nn.shapes checks inputs against)."""
        return None if not self.tokens else self.n_tokens + int(self.ends)

    @property
    def discrete(self) -> bool:
        return self.tokens

    def _io_repr(self) -> str:
        what = (
            f"n_tokens={self.n_tokens}"
            if self.tokens
            else f"dims={self.dims}, " + (f"n_components={self.head.n_components}")
        )
        length = f"max_length={self.max_length}" if self.ends else f"seq_len={self.seq_len}"
        return f"{what}, {length}"

    # ----------------------------------------------------------------- steps in
    def _parse(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        """Clean steps v and lengths from a flat batch x: tokens (N, S) with zeros after
        each end, or values (N, S, D) zeroed after each end; lengths (N,) (S for a row
        without an end) or None without ends."""
        n = len(x)
        if self.tokens:
            x = x.reshape(n, -1)
            return token_lengths(x, self.n_tokens) if self.ends else (x, None)
        if not self.ends:
            return x.reshape(n, x.shape[1], self.dims), None
        x = x.reshape(n, x.shape[1], self.dims + 1)
        ended = x[..., -1] < 0.5  # the end channel: 1 at the real steps
        lengths = torch.where(ended.any(1), ended.int().argmax(1), x.shape[1])  # (N,)
        after = torch.arange(x.shape[1], device=x.device) >= lengths[:, None]  # (N, S)
        return x[..., :-1].masked_fill(after[..., None], 0.0), lengths

    def _inputs(self, v: Tensor) -> Tensor:
        """Teacher-forcing inputs [BOS, v_0 … v_{S−2}] of clean steps v: tokens (N, S), or
        (N, S, D + 1) vectors [values, is BOS]."""
        if self.tokens:
            return shift(v, self.n_tokens)
        n, s, d = v.shape
        bos = v.new_zeros(n, 1, d + 1)
        bos[..., -1] = 1.0
        return torch.cat([bos, F.pad(v[:, : s - 1], (0, 1))], dim=1)

    def _embed(self, u: Tensor) -> Tensor:
        """Embeddings (…, H) of inputs u (tokens (…) or vectors (…, D + 1))."""
        return getattr(self, self._embedding)(u)

    # ----------------------------------------------------------------- steps out
    def _out(self, h: Tensor) -> Tensor:
        """Step parameters (…, P) of features h (…, H): logits, or mixture parameters
        (and the stopping logit last)."""
        if self.tokens or not self.ends:
            return self.head(h)
        return torch.cat([self.head(h), self.stop(h)], dim=-1)

    def _bounded(self, params: Tensor, start: int = 0) -> Tensor:
        """The parameters of steps start … start + S − 1, (B, S, P), with the end made
        impossible at step 0 and certain at step M (ends only)."""
        if not self.ends:
            return params
        t = torch.arange(start, start + params.shape[1], device=params.device)[:, None]
        if self.tokens:
            return bound_end_logits(params, start, self.max_length)
        stop = (
            params[..., -1:].masked_fill(t == 0, _NEVER).masked_fill(t == self.max_length, _ALWAYS)
        )
        return torch.cat([params[..., :-1], stop], dim=-1)

    def _step_log_probs(self, params: Tensor, v: Tensor, lengths: Tensor | None) -> Tensor:
        """log p of each step (N, S): step t < L, then the end at L; 0 after."""
        params = self._bounded(params)
        if self.tokens:
            return token_step_log_probs(params, v, lengths)
        mixture = self.head.log_prob(params[..., : self.head.n_params], v)  # (N, S)
        if not self.ends:
            return mixture
        stop, t = params[..., -1], torch.arange(params.shape[1], device=v.device)
        per_step = torch.where(
            t == lengths[:, None], F.logsigmoid(stop), F.logsigmoid(-stop) + mixture
        )
        keep = t <= lengths[:, None]
        return torch.where(keep, per_step, torch.zeros_like(per_step))

    # ----------------------------------------------------------------- to implement
    def _params(self, v: Tensor) -> Tensor:
        raise NotImplementedError

    def _decoder(self, use_cache: bool = True) -> Callable[[Tensor, int], Tensor]:
        raise NotImplementedError

    # ----------------------------------------------------------------- public
    def forward(self, x: Tensor) -> Tensor:
        """Teacher-forced step parameters (N, S, P) of steps x (N, S[, C]): row t
        parametrises step t (logits over the K tokens, and END last where the end is a
        token; or the mixture's parameters, and the stopping logit last)."""
        return self._params(self._parse(x)[0])

    @batched
    def log_prob(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """Exact log p(x) in nats, the end included where the model has ends (a row
        without an end is scored as a prefix: the probability that a sequence starts so),
        shape (*batch); a log-density for real steps."""
        _no_labels(y)
        v, lengths = self._parse(x)
        return self._step_log_probs(self._params(v), v, lengths).sum(1)

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
        use_cache: bool = True,
    ) -> Tensor:
        """Draw sequences (*sample_shape, *event_shape), all randomness from ``generator``;
        with ends each one stops at its drawn end (END, or a zero end channel, after it).

        Arguments:
            sample_shape: an int n, a tuple, or () for one sequence.
            temperature, top_k: see :func:`draw` (tokens only); the defaults sample the
                model itself.
            prompt: tokens (P,) or (*sample_shape, P) every sequence starts with (P ≤ T,
                or P ≤ M with ends); tokens only.
            use_cache: decode with the Transformer's key–value cache (ignored by the
                LSTM); the samples are the same either way.
        """
        _no_labels(y)
        device = next(self.parameters()).device
        steps = self.seq_len  # with ends: M + 1 positions, the last one an end
        if self.tokens:
            v = torch.zeros(n, steps, dtype=torch.long, device=device)
            p = _prompt(n, steps - int(self.ends), self.n_tokens, prompt, v)
        else:
            if prompt is not None or temperature != 1.0 or top_k is not None:
                raise DataError("prompt, temperature and top_k are options for token sequences")
            dtype = next(self.parameters()).dtype
            v = torch.zeros(n, steps, self.dims, dtype=dtype, device=device)
            p = 0
        lengths = torch.full((n,), steps, dtype=torch.long, device=device)
        step = self._decoder(use_cache)
        for t in range(p, steps):
            params = self._bounded(step(v, t)[:, None], t)[:, 0]  # (n, P)
            if self.tokens:
                token = draw(params, generator, temperature=temperature, top_k=top_k)
                if self.ends:
                    ended = token == self.n_tokens
                    token = token.masked_fill(ended | (lengths < steps), 0)
                    lengths = torch.where(ended & (lengths == steps), t, lengths)
                v[:, t] = token
            else:
                value = self.head.sample(params[:, : self.head.n_params], generator)
                if self.ends:
                    u = torch.rand(n, generator=generator, device=device, dtype=value.dtype)
                    ended = u < torch.sigmoid(params[:, -1])
                    lengths = torch.where(ended & (lengths == steps), t, lengths)
                    value = value.masked_fill((lengths < steps)[:, None], 0.0)
                v[:, t] = value
            if self.ends and bool((lengths < steps).all()):
                break
        if not self.ends:
            return v.reshape(n, *self.event_shape)
        after = torch.arange(steps, device=device) >= lengths[:, None]
        if self.tokens:
            return v.masked_fill(after, self.n_tokens)
        return torch.cat([v, (~after)[..., None].to(v.dtype)], dim=2)


# ---------------------------------------------------------------------------------------
# The LSTM


class LSTMNetwork(SequenceNetwork):
    """Autoregressive LSTM over sequences of K tokens or of real steps: p(x) = ∏_t p(x_t | x_<t).

    Inputs are [BOS, x_0, …, x_{T−2}] (BOS is a learned embedding); the LSTM state after
    input t gives the distribution of x_t, so ``log_prob`` is exact and sampling feeds
    each drawn step back in. Token events of several axes are flattened in raster (C)
    order; real events (T, *step) are T steps of prod(step) values. ``log_prob`` and
    ``loss`` read tokens (*batch, L) of any integer dtype and any length L as a batch of
    sequences; ``sample`` takes a sample shape (see :mod:`ptheta.nn.shapes`). Steps,
    mixtures and ends: see :class:`SequenceNetwork` and the module docstring.

    Arguments:
        n_tokens: K, the vocabulary (2 for binary data), or None for real steps.
        seq_len: T, or an event shape; with ``ends``: M, the longest sequence.
        hidden: width of the embedding and of the LSTM state.
        n_layers: stacked LSTM layers.
        dropout: dropout between LSTM layers and before the output layer (training only).
        ends: model each sequence's end (variable-length sequences of 1 … M steps).
        dims: D, the values of a real step, with ``ends`` (default 1).
        n_components: Gaussians in each real step's mixture.

    Example:
        >>> net = LSTMNetwork(5, 12, hidden=16)
        >>> x = net.sample(3, generator=torch.Generator().manual_seed(0))
        >>> x.shape, net.log_prob(x).shape
        (torch.Size([3, 12]), torch.Size([3]))
        >>> net = LSTMNetwork(5, 6, hidden=16, ends=True)  # 1 … 6 tokens, then END (5)
        >>> net.sample(2, generator=torch.Generator().manual_seed(0)).shape
        torch.Size([2, 7])

    References:
        Hochreiter & Schmidhuber, "Long short-term memory", Neural Computation 1997;
        Graves, "Generating sequences with recurrent neural networks", arXiv:1308.0850.
    """

    @classmethod
    def from_config(
        cls, config: Config, spec: DataSpec, n_classes: int | None = None
    ) -> LSTMNetwork:
        """The network of an :class:`~ptheta.models.sequence.LSTM`'s config (``hidden``,
        ``n_layers``, ``dropout``, ``n_components``, ``max_length``) for sequences of
        ``spec``."""
        return cls(**data_args(config, spec), **_shared(config))

    def __init__(
        self,
        n_tokens: int | None,
        seq_len: int | tuple[int, ...],
        *,
        hidden: int = 128,
        n_layers: int = 1,
        dropout: float = 0.0,
        ends: bool = False,
        dims: int | None = None,
        n_components: int = 5,
    ) -> None:
        super().__init__()
        self._setup(
            "lstm",
            "embed",
            n_tokens,
            seq_len,
            hidden,
            ends=ends,
            dims=dims,
            n_components=n_components,
        )
        n_layers = check_int("lstm", "n_layers", n_layers, low=1)
        dropout = _rate("lstm", "dropout", dropout)
        self.lstm = nn.LSTM(
            hidden, hidden, n_layers, batch_first=True, dropout=dropout if n_layers > 1 else 0.0
        )
        self.drop = nn.Dropout(dropout)

    def extra_repr(self) -> str:
        return f"{self._io_repr()}, hidden={self.lstm.hidden_size}, n_layers={self.lstm.num_layers}"

    def _run(
        self, u: Tensor, state: tuple[Tensor, Tensor] | None = None
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """Step parameters (B, S, P) after inputs u (B, S[, D + 1]), and the LSTM state."""
        h, state = self.lstm(self._embed(u), state)  # (B, S, H)
        return self._out(self.drop(h)), state

    def _params(self, v: Tensor) -> Tensor:
        return self._run(self._inputs(v))[0]

    def _decoder(self, use_cache: bool = True) -> Callable[[Tensor, int], Tensor]:
        state, fed = None, 0

        def step(v: Tensor, t: int) -> Tensor:  # the inputs not yet read, in one call
            nonlocal state, fed
            u = self._inputs(v[:, : t + 1])[:, fed:]
            params, state = self._run(u, state)
            fed = t + 1
            return params[:, -1]

        return step


# ---------------------------------------------------------------------------------------
# The Transformer


class TransformerNetwork(SequenceNetwork):
    """Causal decoder-only Transformer over K tokens or real steps: p(x) = ∏_t p(x_t | x_<t).

    Input and learned positional embeddings (positions 0 … context − 1), ``n_layers``
    pre-LayerNorm blocks of causal multi-head self-attention and MLP
    (:class:`~ptheta.nn.attention.TransformerBlock`), a final LayerNorm and the output
    head. Inputs are [BOS, x_0, …, x_{T−2}], so the output at position t gives
    p(x_t | x_<t) and ``log_prob`` is exact. Steps, mixtures and ends: see
    :class:`SequenceNetwork`.

    Sequences longer than the context (T > context; with ends, M + 1 > context, the end
    taking a position) follow ``long_sequences``: ``"error"`` refuses them; ``"sliding"``
    makes step t ≥ context condition on the last context − 1 steps only, computed as a
    fresh sequence [BOS, x_{t−context+1}, …, x_{t−1}]: a finite-context model, normalised
    like any other, for which ``log_prob`` and sampling agree exactly. Each step past the
    context costs one pass over its window, in training, scoring and sampling alike.

    Sampling uses a key–value cache by default (``use_cache=False`` recomputes the prefix
    at every step); both draw identical sequences from the same generator.

    Arguments:
        n_tokens: K, the vocabulary (2 for binary data), or None for real steps.
        seq_len: T, or an event shape; with ``ends``: M, the longest sequence.
        hidden: model width C (divisible by ``n_heads``).
        n_heads: attention heads.
        n_layers: Transformer blocks.
        context: positions the model attends over; None: T (M + 1 with ends).
        long_sequences: ``"error"`` or ``"sliding"``, for sequences longer than the context.
        dropout: dropout on embeddings, attention and MLP outputs (training only).
        ends, dims, n_components: as for :class:`LSTMNetwork`.

    Example:
        >>> net = TransformerNetwork(5, 12, hidden=16, n_heads=2, n_layers=1)
        >>> x = net.sample(3, generator=torch.Generator().manual_seed(0))
        >>> x.shape, net.log_prob(x).shape
        (torch.Size([3, 12]), torch.Size([3]))

    References:
        Vaswani et al., "Attention is all you need", NeurIPS 2017; Radford et al.,
        "Language models are unsupervised multitask learners" (GPT-2), 2019.
    """

    @classmethod
    def from_config(
        cls, config: Config, spec: DataSpec, n_classes: int | None = None
    ) -> TransformerNetwork:
        """The network of a :class:`~ptheta.models.sequence.Transformer`'s config
        (``hidden``, ``n_heads``, ``n_layers``, ``context``, ``long_sequences``,
        ``dropout``, ``n_components``, ``max_length``) for sequences of ``spec``."""
        return cls(
            **data_args(config, spec),
            **_shared(config),
            n_heads=config.n_heads,
            context=config.context,
            long_sequences=config.long_sequences,
        )

    def __init__(
        self,
        n_tokens: int | None,
        seq_len: int | tuple[int, ...],
        *,
        hidden: int = 64,
        n_heads: int = 4,
        n_layers: int = 2,
        context: int | None = None,
        long_sequences: str = "error",
        dropout: float = 0.0,
        ends: bool = False,
        dims: int | None = None,
        n_components: int = 5,
    ) -> None:
        super().__init__()
        name = "transformer"
        self._setup(
            name, "tok", n_tokens, seq_len, hidden, ends=ends, dims=dims, n_components=n_components
        )
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
        self.pos = nn.Embedding(self.context, dim)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(
            TransformerBlock(dim, n_heads, dropout=dropout) for _ in range(n_layers)
        )
        self.ln = nn.LayerNorm(dim)

    def extra_repr(self) -> str:
        window = ", sliding" if self.sliding else ""
        return (
            f"{self._io_repr()}, context={self.context}{window}, "
            f"hidden={self.pos.embedding_dim}, n_layers={len(self.blocks)}"
        )

    def _too_long(self, length: int) -> str:
        end = " (with its end)" if self.ends else ""
        return (
            f"sequences of length {length}{end} are longer than the Transformer's context of "
            f"{self.context}; set long_sequences='sliding' (each step then sees the last "
            f"{self.context - 1} steps), raise context to at least {length}, or cut the data "
            "into shorter windows"
        )

    def _run(self, u: Tensor, start: int = 0, caches: list[KVCache] | None = None) -> Tensor:
        """Step parameters (B, S, P) of inputs u (B, S[, D + 1]) at positions start …
        start + S − 1 (< context); with ``caches`` (one per block) the earlier positions
        come from them."""
        positions = torch.arange(start, start + u.shape[1], device=u.device)
        h = self.drop(self._embed(u) + self.pos(positions))  # (B, S, C)
        for i, block in enumerate(self.blocks):
            h = block(h, None if caches is None else caches[i])
        return self._out(self.ln(h))

    def _window(self, steps: Tensor) -> Tensor:
        """Inputs [BOS, w_0 … w_{c−2}] of windows of clean steps (B, c − 1[, D])."""
        return self._inputs(F.pad(steps, (0, 0, 0, 1)) if not self.tokens else F.pad(steps, (0, 1)))

    def _params(self, v: Tensor) -> Tensor:
        n, length = v.shape[:2]
        c = self.context
        u = self._inputs(v)
        if length <= c:
            return self._run(u)
        if not self.sliding:
            raise ParameterError(self._too_long(length))
        head = self._run(u[:, :c])  # (N, c, P): steps 0 … c − 1 see the whole prefix
        # step t ≥ c sees [BOS, x_{t−c+1} … x_{t−1}]: window s = t − c of x_1 … x_{L−2}
        windows = v[:, 1 : length - 1].unfold(1, c - 1, 1)  # (N, L − c[, D], c − 1)
        if not self.tokens:
            windows = windows.movedim(-1, 2)  # (N, L − c, c − 1, D)
        windows = windows.reshape(-1, c - 1, *v.shape[2:])
        tail = self._run(self._window(windows))[:, -1].reshape(n, length - c, -1)
        return torch.cat([head, tail], dim=1)

    def next_logits(self, out: Tensor, t: int, caches: list[KVCache] | None = None) -> Tensor:
        """Parameters (B, P) of step t (logits of p(x_t | x_<t) for tokens) given clean
        steps out[:, :t] (B, ≥ t[, D]).

        With ``caches`` (one :class:`KVCache` per block, filled by earlier calls on the same
        ``out``), only the positions not yet cached are computed.
        """
        c = self.context
        if t >= c:  # the sliding window: positions shift every step, so nothing is cached
            return self._run(self._window(out[:, t - c + 1 : t]))[:, -1]
        u = self._inputs(out[:, : t + 1])  # (B, t + 1[, D + 1])
        if caches is None:
            return self._run(u)[:, -1]
        done = len(caches[0])
        return self._run(u[:, done:], done, caches)[:, -1]

    def _decoder(self, use_cache: bool = True) -> Callable[[Tensor, int], Tensor]:
        caches = [KVCache(self.context) for _ in self.blocks] if use_cache else None
        return lambda v, t: self.next_logits(v, t, caches)


# ---------------------------------------------------------------------------------------
# From an estimator's config and data spec; the padded tensors of variable-length data


def default_max_length(spec: DataSpec, max_length: int | None) -> int:
    """M, the longest sequence a model of variable-length data ``spec`` generates or
    scores: ``max_length``, or twice the longest training sequence when None."""
    return 2 * spec.event_shape[0] if max_length is None else int(max_length)


def data_args(config: Config, spec: DataSpec) -> dict[str, Any]:
    """A sequence network's data arguments (``n_tokens``, ``seq_len``, ``ends``, ``dims``)
    for data of ``spec`` (variable length: ``config.max_length`` decides M)."""
    n_tokens = spec.n_categories if spec.is_discrete else None
    if spec.variable_length:
        m = default_max_length(spec, config.max_length)
        return {"n_tokens": n_tokens, "seq_len": m, "ends": True, "dims": spec.step_dims}
    return {"n_tokens": n_tokens, "seq_len": spec.event_shape}


def _shared(config: Config) -> dict[str, Any]:
    return {
        "hidden": config.hidden,
        "n_layers": config.n_layers,
        "dropout": config.dropout,
        "n_components": config.n_components,
    }


def encode_sequences(
    x: np.ndarray, lengths: np.ndarray, width: int, *, n_tokens: int | None
) -> np.ndarray:
    """Padded sequences → the tensor a network with ends reads, ``width`` ≥ max(lengths) + 1
    positions: tokens (N, width) with END (= ``n_tokens``) from each end on; real steps
    (N, T, *step) → (N, width, D + 1) with the end channel last (1 at real steps)."""
    n = len(x)
    real = np.arange(width) < lengths[:, None]  # (N, width)
    t = min(x.shape[1], width)
    if n_tokens is not None:
        out = np.full((n, width), n_tokens, dtype=np.int64)
        out[:, :t] = np.where(real[:, :t], x[:, :t], n_tokens)
        return out
    d = int(np.prod(x.shape[2:], dtype=np.int64))
    out = np.zeros((n, width, d + 1), dtype=np.float64)
    out[:, :t, :d] = np.where(real[:, :t, None], x[:, :t].reshape(n, t, d), 0.0)
    out[..., d] = real
    return out


def decode_sequences(
    out: np.ndarray, step_shape: tuple[int, ...], *, n_tokens: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """The inverse of :func:`encode_sequences`: padded values (N, T, *step_shape), zeros
    after each end, and lengths (N,)."""
    ended = out == n_tokens if n_tokens is not None else out[..., -1] < 0.5
    width = ended.shape[1]
    lengths = np.where(ended.any(1), ended.argmax(1), width).astype(np.int64)
    t = max(int(lengths.max()), 1)
    real = np.arange(t) < lengths[:, None]
    if n_tokens is not None:
        return np.where(real, out[:, :t], 0), lengths
    values = out[:, :t, :-1].reshape(len(out), t, *step_shape)
    mask = real.reshape(*real.shape, *([1] * len(step_shape)))
    return np.where(mask, values, 0.0), lengths
