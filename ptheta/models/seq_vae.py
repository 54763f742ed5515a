"""Sequence VAE: an RNN encoder and an autoregressive RNN decoder conditioned on a latent z."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from ptheta.data.ragged import check_sequences
from ptheta.data.spec import DataSpec
from ptheta.errors import DataError
from ptheta.models.latent import LatentModel, LatentVariableModule, latent_args
from ptheta.models.sequence import _decode, _encode
from ptheta.nn.noise import SCORE_SEED, example_keys
from ptheta.nn.sequence import (
    bound_end_logits,
    default_max_length,
    draw,
    token_lengths,
    token_step_log_probs,
)
from ptheta.params import Choice, Config, Float, Int, Param

CELLS: tuple[str, ...] = ("lstm", "gru")


class SeqVAENetwork(LatentVariableModule):
    """Sequence VAE over token sequences x_0 … x_{T−1} of K tokens (module level).

    Encoder: token embeddings read by an LSTM/GRU; its last hidden state maps linearly to
    the mean and log-variance of q(z | x). Decoder: p(x | z) = ∏_t p(x_t | x_<t, z), an
    LSTM/GRU whose initial state is tanh(W z) and whose input at step t is the embedding of
    [BOS, x_0 … x_{T−2}]_t concatenated with z (Bowman et al. 2016). Token dropout replaces
    each decoder input token by UNK with probability ``token_dropout`` in training mode
    only, which makes the decoder rely on z (a remedy for posterior collapse, with KL
    warm-up; see :class:`~ptheta.models.vae.LatentVariableModule`). Embedding indices K and
    K + 1 are BOS and UNK. Shapes: tokens (*batch, L) of any length L are a batch of
    sequences, scored to (*batch) (see :class:`~ptheta.models.vae.LatentVariableModule`).

    With ``ends=True`` sequences have any length 1 … M (M = ``seq_len``): the decoder's
    vocabulary grows by END (index K), so p(x, L | z) = ∏_{t<L} p(x_t | x_<t, z) ·
    p(END | x_<L, z), END impossible first and certain after M steps (as in
    :class:`~ptheta.nn.sequence.SequenceNetwork`); rows are tokens with END at each end and
    anything after it, which is never read: the encoder's state is taken after the last
    real step, and the decoder's steps after the end are not scored.

    Arguments:
        n_tokens: K ≥ 2.
        seq_len: T.
        latent_dim: L.
        hidden: width of the embeddings and of the RNN states.
        cell: ``"lstm"`` or ``"gru"``.
        token_dropout: probability in [0, 1) of replacing a decoder input by UNK.
        ends: model each sequence's end (variable length; ``seq_len`` is then M).
        beta, warmup_steps, free_bits, k, n_classes: see :class:`LatentVariableModule`
            (n_classes must be None: the sequence VAE is unconditional).

    Example:
        >>> import torch
        >>> net = SeqVAENetwork(5, 12, latent_dim=4, hidden=16)
        >>> x = net.sample(3, generator=torch.Generator().manual_seed(0))
        >>> x.shape, net.loss(x).shape, net.iwae(x, k=10).shape
        (torch.Size([3, 12]), torch.Size([3]), torch.Size([3]))

    References:
        Bowman, Vilnis, Vinyals, Dai, Jozefowicz & Bengio (2016), Generating Sentences from
        a Continuous Space, CoNLL.
    """

    discrete = True
    variable_length = True  # log_prob reads (*batch, L) for any length L (ptheta.nn.shapes)

    @classmethod
    def from_config(
        cls, config: Config, spec: DataSpec, n_classes: int | None = None
    ) -> SeqVAENetwork:
        """The network of a :class:`SeqVAE`'s config (``hidden``, ``cell``,
        ``token_dropout``, ``max_length`` and the latent ones of
        :func:`~ptheta.models.vae.latent_args`) for sequences of ``spec`` (event shape
        (T,), or variable-length sequences of tokens)."""
        ends = spec.variable_length
        return cls(
            spec.n_categories,
            default_max_length(spec, config.max_length) if ends else spec.event_shape[0],
            ends=ends,
            hidden=config.hidden,
            cell=config.cell,
            token_dropout=config.token_dropout,
            **latent_args(config, n_classes),
        )

    def __init__(
        self,
        n_tokens: int,
        seq_len: int,
        *,
        latent_dim: int = 16,
        hidden: int = 128,
        cell: str = "lstm",
        token_dropout: float = 0.0,
        ends: bool = False,
        beta: float = 1.0,
        warmup_steps: int = 0,
        free_bits: float = 0.0,
        iwae_samples: int = 100,
        n_classes: int | None = None,
    ) -> None:
        super().__init__(
            latent_dim,
            beta=beta,
            warmup_steps=warmup_steps,
            free_bits=free_bits,
            iwae_samples=iwae_samples,
            n_classes=n_classes,
        )
        if n_classes is not None:
            raise DataError("the sequence VAE is unconditional: n_classes must be None")
        self.n_tokens, self.ends = n_tokens, bool(ends)
        self.max_length = seq_len if self.ends else None
        self.seq_len = seq_len + int(self.ends)  # with ends, the last position is an end
        self.event_shape = (self.seq_len,)
        self.cell, self.token_dropout = cell, token_dropout
        rnn = nn.LSTM if cell == "lstm" else nn.GRU
        self.embed = nn.Embedding(n_tokens + 2, hidden)  # K: BOS, K + 1: UNK
        self.encoder_rnn = rnn(hidden, hidden, batch_first=True)
        self.encoder_out = nn.Linear(hidden, 2 * latent_dim)
        n_states = 2 if cell == "lstm" else 1  # (h, c) or h
        self.initial_state = nn.Linear(latent_dim, n_states * hidden)
        self.decoder_rnn = rnn(hidden + latent_dim, hidden, batch_first=True)
        self.head = nn.Linear(hidden, n_tokens + int(self.ends))  # with ends, K is END

    @property
    def n_categories(self) -> int:
        """Token levels, END included where the end is a token (what ptheta.nn.shapes
        checks inputs against)."""
        return self.n_tokens + int(self.ends)

    def _clean(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        """Tokens (N, S) with zeros from each end on, and the lengths (None without ends)."""
        x = x.reshape(len(x), -1)
        return token_lengths(x, self.n_tokens) if self.ends else (x, None)

    def extra_repr(self) -> str:
        length = f"max_length={self.max_length}" if self.ends else f"seq_len={self.seq_len}"
        return (
            f"n_tokens={self.n_tokens}, {length}, cell={self.cell}, "
            f"hidden={self.embed.embedding_dim}, {super().extra_repr()}"
        )

    def encode(self, x: Tensor, y: Tensor | None = None) -> tuple[Tensor, Tensor]:
        self._check_labels(y)
        v, lengths = self._clean(x)
        h, _ = self.encoder_rnn(self.embed(v))  # (N, S, H)
        last = h[:, -1] if lengths is None else h[torch.arange(len(h)), (lengths - 1).clamp(0)]
        mean, logvar = self.encoder_out(last).chunk(2, dim=1)  # (N, L) each
        return mean, logvar

    def decoder_inputs(self, x: Tensor) -> Tensor:
        """Decoder input tokens [BOS, x_0 … x_{T−2}], (N, T), with token dropout to UNK
        applied in training mode only."""
        x = x.reshape(len(x), -1)
        u = torch.cat([x.new_full((len(x), 1), self.n_tokens), x[:, :-1]], dim=1)
        if self.training and self.token_dropout > 0:
            drop = torch.rand(u.shape, device=u.device) < self.token_dropout
            drop[:, 0] = False  # BOS stays: it marks the start
            u = u.masked_fill(drop, self.n_tokens + 1)
        return u

    def _state(self, z: Tensor) -> Tensor | tuple[Tensor, Tensor]:
        state = torch.tanh(self.initial_state(z)).unsqueeze(0)  # (1, N, n_states·H)
        return state.chunk(2, dim=2) if self.cell == "lstm" else state

    def _step(self, u: Tensor, z: Tensor, state) -> tuple[Tensor, Any]:
        """Logits (N, S, K) after inputs u (N, S) given z (N, L), and the new RNN state."""
        inputs = torch.cat([self.embed(u), z.unsqueeze(1).expand(-1, u.shape[1], -1)], dim=2)
        h, state = self.decoder_rnn(inputs, state)  # (N, S, H)
        return self.head(h), state

    def log_px(
        self, x: Tensor, z: Tensor, y: Tensor | None = None, mask: Tensor | None = None
    ) -> Tensor:
        v, lengths = self._clean(x)  # (N, T)
        logits, _ = self._step(self.decoder_inputs(v), z, self._state(z))  # (N, T, K[+1])
        if self.ends:
            logits = bound_end_logits(logits, 0, self.max_length)
        return token_step_log_probs(logits, v, lengths).sum(1)

    def decode_sample(
        self, z: Tensor, y: Tensor | None = None, generator: torch.Generator | None = None
    ) -> Tensor:
        n = len(z)
        out = torch.zeros(n, self.seq_len, dtype=torch.long, device=z.device)
        lengths = torch.full((n,), self.seq_len, device=z.device)
        u, state = out.new_full((n, 1), self.n_tokens), self._state(z)
        for t in range(self.seq_len):
            logits, state = self._step(u, z, state)
            if self.ends:
                logits = bound_end_logits(logits[:, -1:], t, self.max_length)
            token = draw(logits[:, -1], generator)
            if self.ends:  # after its end a row reads 0s (never scored) and ends in END
                ended = token == self.n_tokens
                lengths = torch.where(ended & (lengths == self.seq_len), t, lengths)
                token = token.masked_fill(lengths <= t, 0)
            out[:, t] = token
            u = out[:, t : t + 1]
            if self.ends and bool((lengths < self.seq_len).all()):
                break
        if self.ends:
            after = torch.arange(self.seq_len, device=z.device) >= lengths[:, None]
            out = out.masked_fill(after, self.n_tokens)
        return out


class SeqVAE(LatentModel):
    """Sequence VAE for token sequences (characters, discretised series), Bowman et al. 2016.

    An LSTM/GRU encoder gives q(z | x); an autoregressive LSTM/GRU decoder models
    p(x | z) = ∏_t p(x_t | x_<t, z) with z setting its initial state and joining every input
    (see :class:`SeqVAENetwork`). A strong autoregressive decoder can ignore z (posterior
    collapse: KL → 0); the remedies are KL warm-up (``beta_warmup_epochs``), free bits and
    token dropout, and ``kl_`` / ``kl_per_dim_`` / ``active_units_`` after fit show whether
    z is used. ``score_samples`` is the IWAE estimate of log p(x) with ``iwae_samples``
    (``likelihood_ = "estimate"``), ``elbo`` the bound, ``embed`` the posterior means; see
    :class:`~ptheta.models.vae.LatentModel`. Discrete data with a 1-D event shape (T,), or
    variable-length token sequences (:class:`~ptheta.data.ragged.Sequences`, a list of
    arrays): the encoder reads only each sequence's steps and the decoder scores its end
    (an END token, see :class:`SeqVAENetwork`), so the bound and the estimate are of
    p(x, L), with sequences of 1 … ``max_length`` steps; padding never changes a score.

    Arguments:
        latent_dim: L.
        hidden: width of the embeddings and RNN states (an int: one RNN layer each).
        cell: ``"lstm"`` or ``"gru"``.
        token_dropout: probability of replacing a decoder input by UNK while training.
        max_length: the longest sequence modelled (variable-length data only); None: twice
            the longest training sequence.
        beta, beta_warmup_epochs, free_bits, iwae_samples: as for
            :class:`~ptheta.models.vae.VAE`.
        **training: the shared training arguments (see
            :data:`ptheta.models.neural.TRAINING_PARAMS`).

    Example:
        >>> import ptheta
        >>> data = ptheta.datasets.load("sunspots")
        >>> m = ptheta.make("seq-vae", hidden=32, epochs=5, device="cpu").fit(data.train)
        >>> m.score_samples(data.test).shape, m.kl_ >= 0
        ((3,), True)

    References:
        Bowman et al. (2016), Generating Sentences from a Continuous Space, CoNLL; Burda,
        Grosse & Salakhutdinov (2016), Importance Weighted Autoencoders, ICLR.
    """

    abilities: ClassVar[dict[str, Any]] = {"needs_sequence": True, "variable_length": True}
    name: ClassVar[str] = "seq-vae"
    data_kinds: ClassVar[tuple[str, ...]] = ("binary", "categorical")
    quick_params: ClassVar[dict[str, Any]] = {
        "latent_dim": 2,
        "hidden": 8,
        "epochs": 5,
        "batch_size": 32,
        "lr": 1e-2,
        "iwae_samples": 10,
        "dtype": "float64",
        "device": "cpu",
    }
    parameters: ClassVar[dict[str, Param]] = {
        "hidden": Int(low=1),
        "cell": Choice(*CELLS),
        "token_dropout": Float(low=0, high=1, high_open=True),
        "max_length": Int(low=1, none=True),
    }

    def __init__(
        self,
        latent_dim: int = 16,
        *,
        hidden: int = 128,
        cell: str = "lstm",
        token_dropout: float = 0.0,
        max_length: int | None = None,
        beta: float = 1.0,
        beta_warmup_epochs: float = 0.0,
        free_bits: float = 0.0,
        iwae_samples: int = 100,
        **training: Any,
    ) -> None:
        super().__init__(**training)
        self.latent_dim = latent_dim
        self.hidden = hidden
        self.cell = cell
        self.token_dropout = token_dropout
        self.max_length = max_length
        self.beta = beta
        self.beta_warmup_epochs = beta_warmup_epochs
        self.free_bits = free_bits
        self.iwae_samples = iwae_samples

    def _build_module(self, spec: DataSpec, n_classes: int | None) -> SeqVAENetwork:
        name = self.name
        if len(spec.event_shape) != 1:
            raise DataError(
                f"{name} models sequences: examples of shape (T,), got {spec.event_shape}; "
                "flatten them (X.reshape(len(X), -1)) or use vae for images"
            )
        config = self.config(warmup_steps=self._warmup_steps())
        return SeqVAENetwork.from_config(config, spec, n_classes)

    # ----------------------------------------------------------------- variable length
    _encode_sequences = _encode
    _decode_sequences = _decode

    def _fit_sequences(self, x, lengths, y, spec, **fit_params) -> None:
        try:
            super()._fit_sequences(x, lengths, y, spec, **fit_params)
            self.beta_warmup_steps_ = int(self._module.warmup_steps)
            self._diagnose(*self._diagnostic_data, spec)
        finally:  # only needed during fit
            for key in ("_steps_per_epoch", "_diagnostic_data"):
                self.__dict__.pop(key, None)

    def _inputs(self, X: Any, y: Any) -> tuple[np.ndarray, np.ndarray | None]:
        """Checked examples for ``elbo`` and ``embed``: variable-length sequences as the
        network's rows (END at each end)."""
        spec = self.fitted_spec
        if not spec.variable_length:
            return super()._inputs(X, y)
        x, lengths = check_sequences(X, spec)
        return self._encode_sequences(x, lengths, int(lengths.max()), spec), None

    def _keys(self, x: np.ndarray) -> np.ndarray:
        """Each example's noise key, from its tokens up to and including its END where
        sequences have ends (so the padding of a batch never changes a score)."""
        spec = getattr(self, "spec_", None)
        if spec is None or not spec.get("variable_length"):
            return super()._keys(x)
        end, seed = spec["n_categories"], self._seed() + SCORE_SEED
        ended = x == end
        lengths = np.where(ended.any(1), ended.argmax(1), x.shape[1])
        keys = [
            example_keys(row[None, : n + 1], seed)[0] for row, n in zip(x, lengths, strict=True)
        ]
        return np.array(keys, dtype=np.uint64)
