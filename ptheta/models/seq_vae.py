"""Sequence VAE: an RNN encoder and an autoregressive RNN decoder conditioned on a latent z."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from ptheta.data.spec import DataSpec
from ptheta.errors import DataError
from ptheta.models.latent import LatentModel, LatentVariableModule, latent_args
from ptheta.models.sequence import draw
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

    Arguments:
        n_tokens: K ≥ 2.
        seq_len: T.
        latent_dim: L.
        hidden: width of the embeddings and of the RNN states.
        cell: ``"lstm"`` or ``"gru"``.
        token_dropout: probability in [0, 1) of replacing a decoder input by UNK.
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

    @property
    def n_categories(self) -> int:
        """K, the vocabulary (the levels ptheta.nn.shapes checks inputs against)."""
        return self.n_tokens

    @classmethod
    def from_config(
        cls, config: Config, spec: DataSpec, n_classes: int | None = None
    ) -> SeqVAENetwork:
        """The network of a :class:`SeqVAE`'s config (``hidden``, ``cell``,
        ``token_dropout`` and the latent ones of :func:`~ptheta.models.vae.latent_args`)
        for sequences of ``spec`` (event shape (T,))."""
        return cls(
            spec.n_categories,
            spec.event_shape[0],
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
        self.n_tokens, self.seq_len = n_tokens, seq_len
        self.event_shape = (seq_len,)
        self.cell, self.token_dropout = cell, token_dropout
        rnn = nn.LSTM if cell == "lstm" else nn.GRU
        self.embed = nn.Embedding(n_tokens + 2, hidden)  # K: BOS, K + 1: UNK
        self.encoder_rnn = rnn(hidden, hidden, batch_first=True)
        self.encoder_out = nn.Linear(hidden, 2 * latent_dim)
        n_states = 2 if cell == "lstm" else 1  # (h, c) or h
        self.initial_state = nn.Linear(latent_dim, n_states * hidden)
        self.decoder_rnn = rnn(hidden + latent_dim, hidden, batch_first=True)
        self.head = nn.Linear(hidden, n_tokens)

    def extra_repr(self) -> str:
        return (
            f"n_tokens={self.n_tokens}, seq_len={self.seq_len}, cell={self.cell}, "
            f"hidden={self.embed.embedding_dim}, {super().extra_repr()}"
        )

    def encode(self, x: Tensor, y: Tensor | None = None) -> tuple[Tensor, Tensor]:
        self._check_labels(y)
        _, state = self.encoder_rnn(self.embed(x.reshape(len(x), -1)))
        h = state[0] if self.cell == "lstm" else state  # (1, N, H)
        mean, logvar = self.encoder_out(h[-1]).chunk(2, dim=1)  # (N, L) each
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
        x = x.reshape(len(x), -1)  # (N, T)
        logits, _ = self._step(self.decoder_inputs(x), z, self._state(z))  # (N, T, K)
        per_step = logits.log_softmax(-1).gather(2, x.unsqueeze(2)).squeeze(2)  # (N, T)
        return per_step.sum(1)

    def decode_sample(
        self, z: Tensor, y: Tensor | None = None, generator: torch.Generator | None = None
    ) -> Tensor:
        out = torch.zeros(len(z), self.seq_len, dtype=torch.long, device=z.device)
        u, state = out.new_full((len(z), 1), self.n_tokens), self._state(z)
        for t in range(self.seq_len):
            logits, state = self._step(u, z, state)
            out[:, t] = draw(logits[:, -1], generator)
            u = out[:, t : t + 1]
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
    :class:`~ptheta.models.vae.LatentModel`. Discrete data with a 1-D event shape (T,).

    Arguments:
        latent_dim: L.
        hidden: width of the embeddings and RNN states (an int: one RNN layer each).
        cell: ``"lstm"`` or ``"gru"``.
        token_dropout: probability of replacing a decoder input by UNK while training.
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

    abilities: ClassVar[dict[str, Any]] = {"needs_sequence": True}
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
    }

    def __init__(
        self,
        latent_dim: int = 16,
        *,
        hidden: int = 128,
        cell: str = "lstm",
        token_dropout: float = 0.0,
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
