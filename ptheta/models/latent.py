"""The latent-variable base shared by the VAE and the sequence VAE.

Module level: :class:`LatentVariableModule` — the ELBO with β warm-up and free bits, the
importance-weighted (IWAE) estimate of log p(x) with its standard error, and sampling, for
any encoder/decoder pair. Estimator level: :class:`LatentModel` — scoring with per-example
noise keys, class labels, the ELBO and representations. ``vae.py`` and ``seq_vae.py`` add
their networks.

Fitting streams (``capabilities().streams``) where the examples have one length: the
standardisation and the fit's diagnostics are sums over batches (under ``torchrun``, over
every process's share), and the Trainer reads the examples a batch at a time, so a
memory-mapped file is never read whole. Variable-length sequences (``seq-vae``) are read
into memory.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ptheta.data.spec import DataSpec, Split, check_values
from ptheta.data.stream import Source, accumulate, as_source
from ptheta.errors import DataError
from ptheta.models.neural import NeuralModel
from ptheta.nn.noise import SCORE_SEED, example_keys, keyed_normal
from ptheta.nn.shapes import batched, sampled
from ptheta.params import (
    Config,
    Float,
    Int,
    Param,
    check_int,
)

LOG_2PI = math.log(2 * math.pi)
# Rows (examples × importance samples) the decoder sees at once when estimating log p(x):
# at most IWAE_ROWS, and fewer for large examples (about IWAE_NUMBERS data entries a chunk,
# so 32×32×3 images take 2,730 rows, where a decoder's outputs per entry can be 15 numbers).
IWAE_ROWS = 8192
IWAE_NUMBERS = 2**23
# Posterior-mean variance above which a latent dimension counts as active (Burda et al.).
ACTIVE_THRESHOLD = 0.01
# Examples per chunk of the fit's diagnostics (and never more than a batch of the source).
DIAGNOSTIC_ROWS = 1024


# ---------------------------------------------------------------------------------------
# Module level


class LatentVariableModule(nn.Module):
    """What every VAE-like module shares: p(z) = N(0, I), a diagonal Gaussian q(z | x),
    the β-weighted ELBO with KL warm-up and free bits, and the IWAE estimate of log p(x).

    Subclasses implement ``encode(x, y) → (mean, logvar)`` (each (N, L)),
    ``log_px(x, z, y, mask=None) → (N,)`` (log p(x | z, y), over the entries where
    ``mask`` is True when given) and ``decode_sample(z, y, generator) → x``.

    The KL weight rises linearly from 0 to ``beta`` over the first ``warmup_steps``
    training steps: β_t = beta · min(1, t / warmup_steps), t the number of ``loss`` calls
    made in training mode so far. The counter t is a registered buffer (``step``), so it is
    saved in checkpoints and a resumed run continues the schedule exactly.

    With ``free_bits`` λ > 0 the KL of latent dimension j enters the loss as
    max(λ, KL_j averaged over the batch) (Kingma et al. 2016): a dimension whose average KL
    is below λ nats is not pushed further towards the prior. Per example this is
    KL_ij where the batch mean of dimension j is ≥ λ, and the constant λ elsewhere, so the
    batch mean of ``loss`` is exactly the free-bits objective.

    Shapes (:mod:`ptheta.nn.shapes`): ``loss``, ``log_prob``, ``log_prob_with_std`` and
    ``elbo`` take x (*batch, *event_shape) (discrete levels of any integer dtype, or reals),
    y and ``keys`` (*batch), and return (*batch); ``sample`` takes a sample shape. Subclasses
    set ``event_shape`` and ``n_categories`` (None for real inputs).
    """

    def __init__(
        self,
        latent_dim: int,
        *,
        beta: float = 1.0,
        warmup_steps: int = 0,
        free_bits: float = 0.0,
        iwae_samples: int = 100,
        n_classes: int | None = None,
    ) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.beta = beta
        self.warmup_steps = warmup_steps
        self.free_bits = free_bits
        self.iwae_samples = iwae_samples
        self.n_classes = n_classes
        self.register_buffer("step", torch.zeros((), dtype=torch.long))

    def extra_repr(self) -> str:
        classes = f", n_classes={self.n_classes}" if self.n_classes else ""
        samples = f"iwae_samples={self.iwae_samples}"
        return f"latent_dim={self.latent_dim}, beta={self.beta}, {samples}{classes}"

    # ----------------------------------------------------------------- to implement
    def encode(self, x: Tensor, y: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Mean and log-variance of q(z | x, y), each (N, L)."""
        raise NotImplementedError

    def log_px(self, x: Tensor, z: Tensor, y: Tensor | None = None, mask=None) -> Tensor:
        """log p(x | z, y) in nats, (N,)."""
        raise NotImplementedError

    def decode_sample(
        self, z: Tensor, y: Tensor | None = None, generator: torch.Generator | None = None
    ) -> Tensor:
        """x ~ p(x | z, y), (N, *event_shape)."""
        raise NotImplementedError

    # ----------------------------------------------------------------- shared
    def _check_labels(self, y: Tensor | None) -> None:
        if self.n_classes is None and y is not None:
            raise DataError("this model is unconditional (n_classes=None): call it without y")
        if self.n_classes is not None and y is None:
            raise DataError(f"this model is conditional on {self.n_classes} classes: pass y")

    def _one_hot_labels(self, y: Tensor | None, like: Tensor) -> Tensor | None:
        self._check_labels(y)
        return None if y is None else F.one_hot(y, self.n_classes).to(like.dtype)

    @property
    def current_beta(self) -> float:
        """β of the next training step (see the class docstring)."""
        if self.warmup_steps <= 0:
            return float(self.beta)
        return float(self.beta) * min(1.0, int(self.step) / self.warmup_steps)

    @staticmethod
    def kl(mean: Tensor, logvar: Tensor) -> Tensor:
        """KL(N(mean, e^logvar) ‖ N(0, 1)) per dimension, (N, L)."""
        return 0.5 * (mean**2 + logvar.exp() - 1.0 - logvar)

    def _noise(self, shape: tuple[int, ...], like: Tensor, generator) -> Tensor:
        return torch.randn(shape, generator=generator, device=like.device, dtype=like.dtype)

    def _draws(self, like: Tensor, first: int, count: int, generator, keys) -> Tensor:
        """ε of draws ``first`` … ``first + count − 1`` for every example, (count, N, L):
        from each example's key (:func:`~ptheta.nn.noise.example_keys`) when ``keys``
        is given, so that its draws do not depend on the batch; else from ``generator``."""
        if keys is None:
            return self._noise((count, *like.shape), like, generator)
        eps = [keyed_normal(keys, s, like.shape[1:]) for s in range(first, first + count)]
        return torch.stack(eps).to(device=like.device, dtype=like.dtype)

    @batched
    def loss(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """−ELBO with the current β and free bits, per example, (*batch); one z per example.

        In training mode each call advances the warm-up counter by one step.
        """
        mean, logvar = self.encode(x, y)  # (N, L) each
        z = mean + (0.5 * logvar).exp() * torch.randn_like(mean)  # reparameterised
        reconstruction = -self.log_px(x, z, y)  # (N,)
        kl = self.kl(mean, logvar)  # (N, L)
        if self.free_bits > 0:
            below = kl.detach().mean(0) < self.free_bits  # (L,)
            kl = torch.where(below, torch.full_like(kl, self.free_bits), kl)
        beta = self.current_beta
        if self.training:
            self.step += 1
        return reconstruction + beta * kl.sum(1)

    def elbo_terms(
        self, x: Tensor, y: Tensor | None = None, k: int = 1, generator=None, *, keys=None
    ) -> tuple[Tensor, Tensor]:
        """E_q[log p(x | z)] estimated with k samples, (N,), and the exact KL per latent
        dimension, (N, L); ELBO = first − second.sum(1). Noise: see :meth:`_draws`."""
        mean, logvar = self.encode(x, y)
        log_px = torch.zeros(len(x), dtype=mean.dtype, device=mean.device)
        for s in range(k):
            eps = self._draws(mean, s, 1, generator, keys)[0]
            log_px = log_px + self.log_px(x, mean + (0.5 * logvar).exp() * eps, y)
        return log_px / k, self.kl(mean, logvar)

    @batched(per_example={"keys": 0})
    def elbo(
        self, x: Tensor, y: Tensor | None = None, k: int = 1, generator=None, *, keys=None
    ) -> Tensor:
        """The evidence lower bound E_q[log p(x | z)] − KL(q(z | x) ‖ p(z)) in nats, (*batch)
        (reconstruction term averaged over k draws of z, the KL exact; β is not applied)."""
        log_px, kl = self.elbo_terms(x, y, k, generator, keys=keys)
        return log_px - kl.sum(1)

    def iwae(
        self,
        x: Tensor,
        y: Tensor | None = None,
        k: int | None = None,
        generator: torch.Generator | None = None,
        *,
        mask: Tensor | None = None,
        keys=None,
    ) -> Tensor:
        """The importance-weighted estimate of log p(x) with k samples, (N,):
        log (1/k) Σ_s p(x, z_s) / q(z_s | x), z_s ~ q(z | x) (Burda et al. 2016).

        E[IWAE_k] ≤ E[IWAE_{k+1}] ≤ log p(x), IWAE_1 is the ELBO in expectation, and
        IWAE_k → log p(x) as k → ∞. The k samples go through the decoder in chunks of at
        most :data:`IWAE_ROWS` rows (fewer for large examples), so memory stays bounded.
        With ``mask`` (x's shape, True = observed) only the observed entries' factors enter
        p(x | z): an estimate of the marginal of the observed entries (x must still hold
        some value elsewhere for the encoder; see ``VAE.marginal_log_prob``). Noise: see
        :meth:`_draws`.
        """
        return self.iwae_with_stderr(x, y, k, generator, mask=mask, keys=keys)[0]

    def iwae_with_stderr(
        self,
        x: Tensor,
        y: Tensor | None = None,
        k: int | None = None,
        generator: torch.Generator | None = None,
        *,
        mask: Tensor | None = None,
        keys=None,
    ) -> tuple[Tensor, Tensor]:
        """:meth:`iwae` and its standard error, (N,) each: by the delta method,
        sd(w) / (√k · mean(w)) for the importance weights w_s (NaN for k = 1)."""
        k = self.iwae_samples if k is None else k
        n = len(x)
        mean, logvar = self.encode(x, y)  # (N, L)
        std = (0.5 * logvar).exp()
        rows = min(IWAE_ROWS, max(1, IWAE_NUMBERS // max(x[0].numel(), 1)))
        chunk = max(1, rows // max(n, 1))
        log_w = []
        for start in range(0, k, chunk):
            c = min(chunk, k - start)
            eps = self._draws(mean, start, c, generator, keys)  # (c, N, L)
            z = mean + std * eps
            log_q = -0.5 * (eps**2 + logvar + LOG_2PI).sum(-1)  # (c, N)
            log_p = -0.5 * (z**2 + LOG_2PI).sum(-1)
            log_px = self.log_px(
                _repeat(x, c), z.reshape(c * n, -1), _repeat(y, c), _repeat(mask, c)
            ).reshape(c, n)
            log_w.append(log_px + log_p - log_q)
        log_w = torch.cat(log_w)  # (k, N)
        estimate = torch.logsumexp(log_w, dim=0) - math.log(k)
        if k < 2:
            return estimate, torch.full_like(estimate, math.nan)
        w = (log_w - log_w.max(0).values).exp()  # weights over their largest, in (0, 1]
        return estimate, w.std(0) / (math.sqrt(k) * w.mean(0))

    @batched(per_example={"keys": 0})
    def log_prob(
        self,
        x: Tensor,
        y: Tensor | None = None,
        generator: torch.Generator | None = None,
        *,
        keys=None,
    ) -> Tensor:
        """IWAE estimate of log p(x) (or log p(x | y)) with ``self.iwae_samples`` samples, (*batch).

        For discrete data it is capped at 0, which log P(x) never exceeds (the cap only
        moves the estimate closer to the truth). Noise: see :meth:`_draws`.
        """
        return self.log_prob_with_std(x, y, generator, keys=keys)[0]

    @batched(per_example={"keys": 0}, outputs=2)
    def log_prob_with_std(
        self,
        x: Tensor,
        y: Tensor | None = None,
        generator: torch.Generator | None = None,
        *,
        keys=None,
    ) -> tuple[Tensor, Tensor]:
        """:meth:`log_prob` and its standard error (see :meth:`iwae_with_stderr`)."""
        out, stderr = self.iwae_with_stderr(x, y, self.iwae_samples, generator, keys=keys)
        return (out.clamp(max=0.0) if self.discrete else out), stderr

    @sampled
    @torch.no_grad()
    def sample(
        self, n: int, y: Tensor | None = None, generator: torch.Generator | None = None
    ) -> Tensor:
        """z ~ N(0, I), then x ~ p(x | z, y): (*sample_shape, *event_shape), ``sample_shape``
        an int n, a tuple, or () for one example; all randomness from ``generator``."""
        ref = next(self.parameters())
        self._check_labels(y)
        z = self._noise((n, self.latent_dim), ref, generator)
        return self.decode_sample(z, y, generator)


def latent_args(config: Config, n_classes: int | None) -> dict[str, Any]:
    """:class:`LatentVariableModule`'s arguments from a latent family's config
    (``latent_dim``, ``beta``, ``free_bits``, ``iwae_samples``, and the
    ``warmup_steps`` the estimator derives from ``beta_warmup_epochs``)."""
    return {
        "latent_dim": config.latent_dim,
        "beta": config.beta,
        "warmup_steps": config.warmup_steps,
        "free_bits": config.free_bits,
        "iwae_samples": config.iwae_samples,
        "n_classes": n_classes,
    }


def _repeat(t: Tensor | None, c: int) -> Tensor | None:
    """(N, ...) → (c·N, ...): c copies of the batch, copy-major (None stays None)."""
    return None if t is None else t.expand(c, *t.shape).reshape(c * len(t), *t.shape[1:])


# ---------------------------------------------------------------------------------------
# Estimator level


class LatentModel(NeuralModel):
    """Estimator-level behaviour shared by :class:`VAE` and ``SeqVAE`` (see :class:`VAE`).

    ``score_samples`` is the IWAE estimate with ``iwae_samples`` samples (``likelihood_ =
    "estimate"``; ``score_samples(X, return_std=True)`` adds its standard error); it and
    :meth:`elbo` draw each example's noise from a key hashed from ``random_state`` (plus a
    fixed offset) and the example's values, so they are deterministic given the fitted
    model and X, and an example's score does not depend on the rest of the batch. After
    fit, the diagnostics ``reconstruction_`` (mean −E_q log p(x | z)), ``kl_`` (mean
    KL(q ‖ p)), ``kl_per_dim_`` (L,) and ``active_units_`` (latent
    dimensions whose posterior means vary across examples with variance > 0.01, Burda et
    al. 2016) are computed on the validation data, or the training data without any; so
    −ELBO = ``reconstruction_`` + ``kl_`` and posterior collapse shows as ``kl_`` ≈ 0.
    """

    family: ClassVar[str] = "latent variable"
    # continuous data are standardised for the network; scores stay densities of the data
    standardize_input: ClassVar[bool] = True
    likelihood: ClassVar[str] = "estimate"
    abilities: ClassVar[dict[str, Any]] = {"embeds": True}
    # what every latent family shares (see latent_args)
    parameters: ClassVar[dict[str, Param]] = {
        "latent_dim": Int(low=1),
        "beta": Float(low=0),
        "beta_warmup_epochs": Float(low=0),
        "free_bits": Float(low=0),
        "iwae_samples": Int(low=1),
    }
    renamed: ClassVar[dict[str, str]] = {"k": "iwae_samples"}

    def _warmup_steps(self) -> int:
        saved = getattr(self, "beta_warmup_steps_", None)  # a loaded model
        if saved is not None:
            return int(saved)
        return round(self.beta_warmup_epochs * getattr(self, "_steps_per_epoch", 1))

    # ----------------------------------------------------------------- fitting
    def _validation_split(self, x, labels, validation_data, spec):
        parts = super()._validation_split(x, labels, validation_data, spec)
        x_train, y_train, x_val, y_val = parts
        self._steps_per_epoch = math.ceil(len(x_train) / self.batch_size)
        self._diagnostic_data = (x_train, y_train) if x_val is None else (x_val, y_val)
        return parts

    def _fit_stream(self, data, y, spec, **fit_params) -> None:
        try:
            super()._fit_stream(data, y, spec, **fit_params)
            self.beta_warmup_steps_ = int(self._module.warmup_steps)
            self._diagnose(*self._diagnostic_data, spec)
        finally:  # only needed during fit
            for key in ("_steps_per_epoch", "_diagnostic_data"):
                self.__dict__.pop(key, None)

    @torch.no_grad()
    def _diagnose(self, x: Source | np.ndarray, labels: np.ndarray | None, spec: DataSpec) -> None:
        """The fit's diagnostics (see the class docstring) on examples ``x`` (class indices
        ``labels`` for a conditional model), from sums over chunks of at most
        `DIAGNOSTIC_ROWS` examples and a batch of the source (under ``torchrun`` over every
        process's share). The variance of the posterior means comes from squares about the
        first example's mean: no cancellation, however far from 0 the means lie."""
        source = as_source(x)
        size = min(DIAGNOSTIC_ROWS, source.batch_rows())
        first = source.read_range(0, 1)
        ((xt, yt, _),) = self._batches(first, None if labels is None else labels[:1], spec=spec)
        reference = self._module.encode(xt, yt)[0].double().cpu().numpy()[0]

        def sums(chunk: np.ndarray, chunk_labels: np.ndarray | None) -> dict[str, Any]:
            out = {"n": len(chunk), "rec": 0.0}
            out.update({k: np.zeros(len(reference)) for k in ("kl", "mean", "square")})
            if labels is None:  # a source's own labels are not a conditional model's classes
                chunk_labels = None
            for xt, yt, keys in self._batches(chunk, chunk_labels, len(chunk) or 1, spec):
                log_px, kl_dims = self._module.elbo_terms(xt, yt, 1, keys=keys)
                means = self._module.encode(xt, yt)[0].double().cpu().numpy() - reference
                out["rec"] = -float(log_px.double().sum())
                out["kl"] = kl_dims.double().sum(0).cpu().numpy()
                out["mean"], out["square"] = means.sum(0), (means**2).sum(0)
            return out

        totals = accumulate(source, sums, y=labels, batch_size=size)
        n = float(totals["n"])
        self.reconstruction_ = float(totals["rec"]) / n
        self.kl_per_dim_ = totals["kl"] / n
        self.kl_ = float(self.kl_per_dim_.sum())
        variance = np.maximum(totals["square"] / n - (totals["mean"] / n) ** 2, 0.0)
        self.active_units_ = int((variance > ACTIVE_THRESHOLD).sum())

    # ----------------------------------------------------------------- helpers
    def _labels(self, y: Any, n: int) -> np.ndarray | None:
        """Class indices (n,) of labels y for a conditional model; None otherwise."""
        return self._class_index(y, n, why="the class of each example")

    def _batches(
        self, x: np.ndarray, labels: np.ndarray | None, size: int = 1024, spec: DataSpec = None
    ):
        """(x, y, keys) per chunk: tensors, and each example's noise key (a hash of
        random_state and its values, see :func:`~ptheta.nn.noise.example_keys`)."""
        device, spec = self._device(), spec or self.fitted_spec
        for start in range(0, len(x), size):
            chunk = x[start : start + size]
            xt = self._tensors(chunk, None, spec)[0].to(device)
            yt = None if labels is None else torch.as_tensor(labels[start : start + size])
            yield xt, None if yt is None else yt.to(device), self._keys(chunk)

    def _keys(self, x: np.ndarray) -> np.ndarray:
        return example_keys(x, self._seed() + SCORE_SEED)

    @torch.no_grad()
    def _log_prob_with_std(self, x: np.ndarray, label: int | None) -> tuple[np.ndarray, ...]:
        labels = None if label is None else np.full(len(x), label)
        parts = [
            self._module.log_prob_with_std(xt, yt, keys=keys)
            for xt, yt, keys in self._batches(x, labels)
        ]
        scores = torch.cat([p[0] for p in parts]).double().cpu().numpy()
        return scores, torch.cat([p[1] for p in parts]).double().cpu().numpy()

    def _log_prob(self, x: np.ndarray, label: int | None) -> np.ndarray:
        return self._log_prob_with_std(x, label)[0]

    def _inputs(self, X: Any, y: Any) -> tuple[np.ndarray, np.ndarray | None]:
        self._check_fitted()
        x = check_values(X, self.fitted_spec)
        if isinstance(X, Split) and y is None and self._conditional():
            y = X.y
        return x, self._labels(y, len(x))

    # ----------------------------------------------------------------- public extras
    @torch.no_grad()
    def elbo(self, X: Any, y: Any = None, *, k: int = 1) -> np.ndarray:
        """The evidence lower bound per example in nats, (N,), with the reconstruction term
        averaged over ``k`` draws of z (the KL term is exact).

        −ELBO ≥ −IWAE_k ≥ −IWAE_{k+1} ≥ … ≥ −log p(x) in expectation; ``score_samples``
        is IWAE_k. Deterministic given the fitted model and X, and per example (the same
        value in any batch). Conditional models need ``y`` and give the bound on
        log p(x | y).
        """
        k = check_int(self.name, "k", k, low=1)
        x, labels = self._inputs(X, y)
        out = [self._module.elbo(xt, yt, k, keys=kk) for xt, yt, kk in self._batches(x, labels)]
        return torch.cat(out).double().cpu().numpy() + self._log_jacobian()

    @torch.no_grad()
    def embed(self, X: Any, y: Any = None) -> np.ndarray:
        """Posterior means E_q[z | x] (the representation), (N, latent_dim)."""
        x, labels = self._inputs(X, y)
        out = [self._module.encode(xt, yt)[0] for xt, yt, _ in self._batches(x, labels)]
        return torch.cat(out).double().cpu().numpy()
