"""Bernoulli–Bernoulli RBM: CD-k / PCD training, Gibbs sampling, exact or AIS log Z."""

from __future__ import annotations

import dataclasses
import math
import time
import warnings
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ptheta.data.spec import DataSpec, check_values
from ptheta.data.stream import Source
from ptheta.errors import ParameterError
from ptheta.models.blas import blas_threads_for
from ptheta.models.neural import NeuralModel
from ptheta.nn.device import resolve_device
from ptheta.nn.shapes import batched, sampled
from ptheta.params import Choice, Config, Int, Param, check_choice, check_int, check_random_state
from ptheta.progress import Advance, progress_bar
from ptheta.train.trainer import TrainConfig

# log Z is computed exactly when the smaller layer has at most this many units (2^20 terms)
MAX_EXACT_UNITS = 20
# exact log Z enumerates the configurations of one layer as lo + 2^n_lo · hi, with at most
# this many low bits, in blocks of about _ENUM_VALUES inputs of the other layer (~1 MB)
_ENUM_LOW_BITS = 10
_ENUM_VALUES = 2**17
# a quick AIS for the Trainer's validation NLL when log Z has no exact form (fixed seed, so
# the validation numbers of a run are reproducible and training randomness is untouched)
_VAL_AIS_RUNS, _VAL_AIS_BETAS = 32, 500
# Under max_time the final AIS estimate of log Z is part of the budget: it gets at most this
# share of max_time and training the rest. It keeps every one of ais_betas temperatures (fewer
# would bias log Z down and the scores up) and runs as many of ais_runs as fit in its share,
# at least MIN_AIS_RUNS (fewer runs only widen its reported standard error).
AIS_SHARE = 0.1
MIN_AIS_RUNS = 8
# temperatures of the short timed AIS runs that size it, and of a progress-bar step
_PILOT_BETAS = 16
_PROGRESS_BETAS = 100
# sgd_fit's products of at most this many multiply-adds (rows × (D + 1) × (H + 1)) run on one
# BLAS thread: a second one costs more than it brings on them (PCD-1, H = 16, 1,000 × 64,
# batch 32: 0.0213 s on one thread, 0.0248 s on two, 1.50 s on two of a loaded machine)
SMALL_PRODUCT = 1 << 20
# uniforms the sgd solver's PCD-1 loop draws in one call (~1 MB of float32)
_UNIFORMS = 2**18


def bernoulli(p: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """0/1 draws with probabilities ``p`` (same shape and dtype); rand < p is faster on CPU
    than torch.bernoulli."""
    return (torch.rand(p.shape, generator=generator, dtype=p.dtype, device=p.device) < p).to(
        p.dtype
    )


def _configurations(n: int, like: Tensor) -> Tensor:
    """All 2^n binary configurations of n units, (2^n, n), row i holding the bits of i
    (unit j = bit j), in ``like``'s dtype and device."""
    index = torch.arange(2**n, device=like.device)
    return ((index[:, None] >> torch.arange(n, device=like.device)) & 1).to(like.dtype)


class RBMNetwork(nn.Module):
    """Bernoulli–Bernoulli RBM over D binary visible and H binary hidden units (module level).

    Energy E(v, h) = −b·v − c·h − hᵀW v; summing out h gives the free energy

        F(v) = −b·v − Σ_j softplus(c_j + W_j·v),      p(v) = exp(−F(v)) / Z.

    ``loss`` is the contrastive-divergence surrogate F(v_data) − mean F(v_neg) with the
    negatives v_neg detached (they are samples), so its gradient is the CD/PCD gradient
    ⟨∂F/∂θ⟩_data − ⟨∂F/∂θ⟩_model; for W that is −(⟨v hᵀ⟩_data − ⟨v hᵀ⟩_model) with h
    replaced by its conditional mean. ``method="cd"`` starts k Gibbs steps at the data,
    ``"pcd"`` continues ``n_chains`` persistent chains, a registered buffer updated in
    place, so checkpoints hold it and resuming is exact. Training randomness comes from
    torch's global RNG; ``gibbs``, ``sample`` and ``ais_log_z`` take a generator.

    ``log_prob`` needs log Z: the buffer ``log_z`` caches it (NaN = unknown). ``loss`` in
    training mode resets it (the weights are about to change); ``log_prob`` then recomputes
    it, exactly when min(D, H) ≤ 20, else by a quick fixed-seed AIS. After changing the
    weights by hand, call ``log_z.fill_(nan)`` or ``set_log_z``. log Z enters ``log_prob``
    as a constant (no gradient): train with ``loss``, not by maximising ``log_prob``.

    Arguments:
        n_visible: D (examples are flattened to (N, D)).
        n_hidden: H.
        method: ``"cd"`` or ``"pcd"``.
        k: Gibbs steps per negative phase.
        n_chains: persistent chains (PCD).
        base_bias: Tensor (D,), logits of the data marginals: initial visible biases and
            the base-rate RBM that AIS starts from; None: zeros.
        burn_in, thin, sample_chains, sample_init: see :meth:`sample`.
        event_shape: shape of one example (default (D,)).

    Example:
        >>> import torch
        >>> from ptheta.models.rbm import RBMNetwork
        >>> rbm = RBMNetwork(6, 4)
        >>> x = torch.randint(2, (5, 6))
        >>> rbm.log_prob(x).shape, rbm.sample(3, generator=torch.Generator()).shape
        (torch.Size([5]), torch.Size([3, 6]))

    References:
        Hinton (2002), Training products of experts by minimizing contrastive divergence.
        Tieleman (2008), Training RBMs using approximations to the likelihood gradient (PCD).
        Salakhutdinov & Murray (2008), On the quantitative analysis of deep belief networks.
    """

    # binary visible units: ``log_prob`` and ``loss`` take 0/1 levels (*batch, *event_shape)
    # of any integer dtype or bool and return (*batch) (see ptheta.nn.shapes)
    n_categories = 2

    @classmethod
    def from_config(
        cls, config: Config, spec: DataSpec, n_classes: int | None = None
    ) -> RBMNetwork:
        """The network of an :class:`RBM`'s config (``n_hidden``, ``method``,
        ``gibbs_steps`` as ``k``, ``n_chains``, ``burn_in``, ``thin``, ``sample_chains``,
        ``sample_init``, and the ``base_bias`` the estimator took from the data) for binary
        data of ``spec``."""
        return cls(
            spec.n_dims,
            config.n_hidden,
            method=config.method,
            gibbs_steps=config.gibbs_steps,
            n_chains=config.n_chains,
            base_bias=config.base_bias,
            burn_in=config.burn_in,
            thin=config.thin,
            sample_chains=config.sample_chains,
            sample_init=config.sample_init,
            event_shape=spec.event_shape,
        )

    def __init__(
        self,
        n_visible: int,
        n_hidden: int,
        *,
        method: str = "pcd",
        gibbs_steps: int = 1,
        n_chains: int = 100,
        base_bias: Tensor | None = None,
        burn_in: int = 1000,
        thin: int = 10,
        sample_chains: int | None = None,
        sample_init: str = "random",
        event_shape: tuple[int, ...] | None = None,
    ) -> None:
        super().__init__()
        self.n_visible, self.n_hidden = n_visible, n_hidden
        self.method, self.gibbs_steps, self.burn_in, self.thin = method, gibbs_steps, burn_in, thin
        self.sample_chains, self.sample_init = sample_chains, sample_init
        self.event_shape = tuple(event_shape or (n_visible,))
        base = torch.zeros(n_visible) if base_bias is None else torch.as_tensor(base_bias)
        self.W = nn.Parameter(0.01 * torch.randn(n_hidden, n_visible))  # (H, D)
        self.b = nn.Parameter(base.clone().to(self.W.dtype))  # (D,) visible biases
        self.c = nn.Parameter(torch.zeros(n_hidden))  # (H,) hidden biases
        self.register_buffer("base_bias", base.clone().to(self.W.dtype))
        # persistent chains start at the data marginals (Tieleman 2008 starts them anywhere)
        chains = bernoulli(torch.sigmoid(base).expand(n_chains, n_visible))
        self.register_buffer("chains", chains.to(self.W.dtype))  # (n_chains, D)
        self.register_buffer("log_z", torch.tensor(float("nan")))

    def extra_repr(self) -> str:
        return (
            f"n_visible={self.n_visible}, n_hidden={self.n_hidden}, method={self.method}, "
            f"gibbs_steps={self.gibbs_steps}, n_chains={len(self.chains)}"
        )

    # ------------------------------------------------------------------ energies
    def _flat(self, v: Tensor) -> Tensor:
        return v.reshape(len(v), -1).to(self.W.dtype)  # (N, D)

    def free_energy(self, v: Tensor) -> Tensor:
        """F(v) = −b·v − Σ_j softplus(c_j + W_j·v), shape (N,)."""
        v = self._flat(v)
        return -(v @ self.b) - F.softplus(v @ self.W.T + self.c).sum(-1)

    def hidden_probs(self, v: Tensor) -> Tensor:
        """p(h_j = 1 | v) = sigmoid(c + W v), shape (N, H)."""
        return torch.sigmoid(self._flat(v) @ self.W.T + self.c)

    def visible_probs(self, h: Tensor) -> Tensor:
        """p(v_i = 1 | h) = sigmoid(b + Wᵀ h), shape (N, D)."""
        return torch.sigmoid(h @ self.W + self.b)

    @torch.no_grad()
    def gibbs(self, v: Tensor, steps: int, generator: torch.Generator | None = None) -> Tensor:
        """Run ``steps`` block-Gibbs sweeps v → h → v from ``v`` (N, D); returns v (N, D)."""
        v = self._flat(v)
        for _ in range(steps):
            h = bernoulli(self.hidden_probs(v), generator)  # (N, H)
            v = bernoulli(self.visible_probs(h), generator)  # (N, D)
        return v

    # ------------------------------------------------------------------ training
    @batched
    def loss(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """CD/PCD surrogate per example, shape (*batch): F(v) − mean F(v_neg), v_neg
        detached."""
        v = self._flat(x)
        if self.training:
            self.log_z.fill_(float("nan"))  # the weights are about to change
            if self.method == "pcd":
                negatives = self.gibbs(self.chains, self.gibbs_steps)
                self.chains.copy_(negatives)  # in place: a buffer, saved in checkpoints
            else:
                negatives = self.gibbs(v, self.gibbs_steps)
        else:
            negatives = self.gibbs(v, self.gibbs_steps)
        return self.free_energy(v) - self.free_energy(negatives.detach()).mean()

    # ------------------------------------------------------------------ log Z
    def exact_log_z(self, layer: str = "auto") -> Tensor:
        """log Z by enumerating one layer and summing the other out analytically.

        ``layer="hidden"``: log Z = logsumexp_h [c·h + Σ_i softplus(b_i + (Wᵀh)_i)];
        ``"visible"``: log Z = logsumexp_v [−F(v)]; ``"auto"``: the smaller layer. The
        2^n configurations are enumerated in chunks, so n = 20 stays memory-safe.
        """
        if layer == "auto":
            layer = "hidden" if self.n_hidden <= self.n_visible else "visible"
        n = self.n_hidden if layer == "hidden" else self.n_visible
        if n > MAX_EXACT_UNITS:
            raise ParameterError(
                f"exact log Z enumerates 2^{n} configurations of the {layer} layer; it is "
                f"limited to {MAX_EXACT_UNITS} units: use method='ais'"
            )
        # configuration s = lo + 2^n_lo · hi (bit j of the index is unit j): the other
        # layer's inputs are A_lo[lo] + A_hi[hi], so the 2^n products become broadcast sums
        # of two small tables, read in cache-sized blocks of hi
        if layer == "hidden":  # terms c·h + Σ_i softplus(b_i + (Wᵀh)_i)
            weights, bias_in, bias_out = self.W, self.c, self.b
        else:  # terms −F(v) = b·v + Σ_j softplus(c_j + W_j·v)
            weights, bias_in, bias_out = self.W.T, self.b, self.c
        n_lo = min(n, _ENUM_LOW_BITS)
        with torch.no_grad():
            s_lo, s_hi = _configurations(n_lo, weights), _configurations(n - n_lo, weights)
            a_lo = s_lo @ weights[:n_lo] + bias_out  # (2^n_lo, m)
            a_hi = s_hi @ weights[n_lo:]  # (2^n_hi, m)
            t_lo, t_hi = s_lo @ bias_in[:n_lo], s_hi @ bias_in[n_lo:]
            step = max(1, _ENUM_VALUES // a_lo.numel())  # hi configurations per block
            parts = []
            for start in range(0, len(a_hi), step):
                pre = a_lo + a_hi[start : start + step, None]  # (g, 2^n_lo, m)
                terms = F.softplus(pre).sum(-1) + t_lo + t_hi[start : start + step, None]
                parts.append(torch.logsumexp(terms.flatten(), 0))
        return torch.logsumexp(torch.stack(parts), 0)

    @torch.no_grad()
    def ais_log_z(
        self,
        n_runs: int = 100,
        n_betas: int = 10_000,
        generator: torch.Generator | None = None,
        progress: Advance | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Annealed importance sampling estimate of log Z and its standard error.

        Anneals from the base-rate RBM p_0(v) = ∏ Bernoulli(sigmoid(base_bias)) (W = 0,
        c = 0, so Z_0 = 2^H ∏_i (1 + e^{base_bias_i})) to this RBM through the
        unnormalised marginals

            f_β(v) = exp((1−β) base_bias·v + β b·v) ∏_j (1 + exp(β (c_j + W_j·v)))

        at ``n_betas`` intermediate temperatures β evenly spaced in (0, 1), each run moving
        by one Gibbs sweep that leaves p_β invariant. With importance weights w_r,
        log Ẑ = log Z_0 + log mean_r w_r. The standard error is the delta method on the
        mean of the weights: se(log Ẑ) ≈ std(w) / (√R · mean(w)), computed from weights
        rescaled by their maximum. AIS underestimates log Z on average (Jensen), so a
        score from it slightly overestimates log p. ``progress(steps)`` is called every
        100 importance-weight updates (``n_betas`` + 1 in all) and after the last.

        Returns:
            (log_z, std_err), two scalar tensors.
        """
        W, b, c, base = self.W, self.b, self.c, self.base_bias
        betas = torch.linspace(0.0, 1.0, n_betas + 2, dtype=W.dtype, device=W.device)
        v = bernoulli(torch.sigmoid(base).expand(n_runs, -1), generator)
        log_w = torch.zeros(n_runs, dtype=W.dtype, device=W.device)

        def log_f(v_base: Tensor, v_b: Tensor, a: Tensor, beta: Tensor) -> Tensor:
            return (1 - beta) * v_base + beta * v_b + F.softplus(beta * a).sum(-1)  # (R,)

        for i in range(1, len(betas)):
            a, v_base, v_b = v @ W.T + c, v @ base, v @ b  # (R, H), (R,), (R,)
            log_w += log_f(v_base, v_b, a, betas[i]) - log_f(v_base, v_b, a, betas[i - 1])
            if i < len(betas) - 1:  # a Gibbs sweep that leaves p_{β_i} invariant
                beta = betas[i]
                h = bernoulli(torch.sigmoid(beta * a), generator)
                p_v = torch.sigmoid((1 - beta) * base + beta * (h @ W + b))
                v = bernoulli(p_v, generator)
            if progress is not None and (i % _PROGRESS_BETAS == 0 or i == len(betas) - 1):
                progress(i - _PROGRESS_BETAS * ((i - 1) // _PROGRESS_BETAS))
        log_z0 = self.n_hidden * math.log(2.0) + F.softplus(base).sum()
        log_z = log_z0 + torch.logsumexp(log_w, 0) - math.log(n_runs)
        w = torch.exp(log_w - log_w.max())
        std_err = w.std() / (math.sqrt(n_runs) * w.mean()) if n_runs > 1 else torch.nan
        return log_z, torch.as_tensor(std_err, dtype=W.dtype)

    def set_log_z(self, value: float) -> None:
        """Store log Z for ``log_prob`` (e.g. a precise AIS estimate)."""
        self.log_z.fill_(float(value))

    @batched
    def log_prob(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """log p(v) = −F(v) − log Z in nats, shape (*batch) (see the class notes on log Z)."""
        if torch.isnan(self.log_z):
            if min(self.n_visible, self.n_hidden) <= MAX_EXACT_UNITS:
                value = self.exact_log_z()
            else:
                g = torch.Generator(device=self.W.device).manual_seed(0)
                value = self.ais_log_z(_VAL_AIS_RUNS, _VAL_AIS_BETAS, g)[0]
            self.log_z.fill_(float(value))
        return -self.free_energy(x) - self.log_z

    # ------------------------------------------------------------------ sampling
    @sampled
    @torch.no_grad()
    def sample(
        self, n: int, y: Tensor | None = None, generator: torch.Generator | None = None
    ) -> Tensor:
        """Samples by block Gibbs sampling, LongTensor (*sample_shape, *event_shape) for an
        int n, a tuple, or () for one; n below is their number.

        ``sample_chains`` chains (None: one per sample) start at uniform random states
        (``sample_init="random"``) or at the persistent training chains (``"persistent"``);
        each runs ``burn_in`` sweeps before its first kept state, then ``thin`` sweeps
        between kept states. All randomness comes from ``generator``.
        """
        n_chains = min(self.sample_chains or n, n)
        if self.sample_init == "persistent":
            v = self.chains[torch.arange(n_chains, device=self.W.device) % len(self.chains)]
        else:
            half = torch.full((n_chains, self.n_visible), 0.5, dtype=self.W.dtype)
            v = bernoulli(half.to(self.W.device), generator)
        kept = [self.gibbs(v, self.burn_in, generator)]
        while len(kept) * n_chains < n:
            kept.append(self.gibbs(kept[-1], self.thin, generator))
        # sample i is the (i // n_chains)-th kept state of chain i % n_chains
        out = torch.cat(kept)[:n]
        return out.long().reshape(n, *self.event_shape)


class RBM(NeuralModel):
    """Restricted Boltzmann machine for binary data, trained by CD-k or persistent CD.

    p(v) = exp(−F(v)) / Z with free energy F(v) = −b·v − Σ_j softplus(c_j + W_j·v) (see
    :class:`RBMNetwork`). Training runs the shared Trainer's AdamW on the contrastive-
    divergence surrogate (the classic is plain SGD with momentum; AdamW works as well and
    keeps one training loop for every family). At the end of ``fit``, log Z is computed
    once and stored: exactly by enumeration when min(n_visible, n_hidden) ≤ 20
    (``likelihood_ = "exact"``), otherwise by annealed importance sampling
    (``likelihood_ = "estimate"``, with ``log_z_std_`` its standard error).
    ``score_samples`` = −F(v) − log Z in nats. Examples of any shape are flattened.

    Arguments:
        n_hidden: hidden units H (256: on 28×28 binary digits with max_time=300, 64 units
            gave 159.6 test nats and 256 gave 122.6 on the same 200 test rows, 120.6 on
            all 594; chow-liu 134.9).
        method: ``"cd"`` (chains restart at the data) or ``"pcd"`` (persistent chains).
        gibbs_steps: Gibbs sweeps per negative phase (the k of CD-k); was ``k``.
        n_chains: persistent chains for PCD.
        burn_in: Gibbs sweeps before a chain's first sample.
        thin: sweeps between successive samples of one chain.
        sample_chains: chains run in parallel when sampling; None: one per sample (the
            samples are then independent).
        sample_init: ``"random"`` (uniform states) or ``"persistent"`` (the PCD chains;
            needs ``method="pcd"``).
        ais_runs: AIS runs for log Z when it has no exact form (under ``max_time``, as many
            as fit in a tenth of it, at least 8: see ``log_z_runs_``).
        ais_betas: AIS intermediate temperatures.
        solver: ``"adamw"`` trains through the Trainer (AdamW and its schedule, early
            stopping on validation NLL, checkpoints); ``"sgd"`` takes plain gradient steps of
            size ``lr`` on the CD/PCD gradient in a lean numpy loop (the classical update,
            and scikit-learn's ``BernoulliRBM`` with PCD-1 and ``n_chains=batch_size``; many
            times faster per step for small networks; set ``lr`` to an SGD step size such
            as 0.05–0.1; no validation, early stopping or checkpoints: see ``sgd_fit``).
        **training: the shared training arguments (epochs, lr, batch_size, dtype, device,
            random_state, ...; see ``ptheta.models.neural.TRAINING_PARAMS``); here
            ``patience`` defaults to None (no early stopping: the validation NLL between
            epochs is a short, noisy AIS estimate; the best weights by it are still kept),
            ``batch_size`` to 32, and ``epochs="auto"`` means 200 without ``max_time``.

    Fitted attributes:
        log_z_, log_z_std_ (0 when exact), log_z_method_ (``"exact"`` or ``"ais"``),
        log_z_runs_ (the AIS runs of log Z: ``ais_runs``, or fewer under ``max_time``; 0
        when exact), base_bias_ (logits of the smoothed data marginals), module, history_.

    Example:
        >>> import ptheta
        >>> data = ptheta.datasets.load("digits-binary")
        >>> m = ptheta.make("rbm", n_hidden=16, epochs=2, device="cpu").fit(data.train)
        >>> m.log_z_method_, m.embed(data.test.x).shape
        ('exact', (447, 16))

    References:
        Hinton (2002), Training products of experts by minimizing contrastive divergence.
        Tieleman (2008), Training RBMs using approximations to the likelihood gradient.
        Salakhutdinov & Murray (2008), On the quantitative analysis of deep belief networks.
        Hinton (2010), A practical guide to training restricted Boltzmann machines.
    """

    name: ClassVar[str] = "rbm"
    family: ClassVar[str] = "energy-based"
    # epochs="auto" without max_time: CD's noisy gradient needs more updates than the
    # shared 50 epochs give on a thousand rows (see the batch size below)
    auto_epochs: ClassVar[int] = 200
    likelihood: ClassVar[str] = "estimate"
    # the smoothed marginals (base_bias_) and the "sgd" solver read the whole array
    abilities: ClassVar[dict[str, Any]] = {"embeds": True, "streams": False}
    low_precision: ClassVar[str | None] = (
        "the free energy enters log Z by enumeration over up to 2^20 states (or AIS), "
        "whose sums need float32 or float64 weights and activations"
    )
    data_kinds: ClassVar[tuple[str, ...]] = ("binary",)
    quick_params: ClassVar[dict[str, Any]] = {
        "n_hidden": 4,
        "epochs": 10,
        "lr": 0.05,
        "batch_size": 32,
        "n_chains": 32,
        "ais_runs": 16,
        "ais_betas": 100,
        "burn_in": 100,
        "dtype": "float64",
        "device": "cpu",
    }
    parameters: ClassVar[dict[str, Param]] = {
        "n_hidden": Int(low=1),
        "method": Choice("cd", "pcd"),
        "gibbs_steps": Int(low=1),
        "n_chains": Int(low=1),
        "burn_in": Int(low=0),
        "thin": Int(low=1),
        "sample_chains": Int(low=1, none=True),
        "sample_init": Choice("random", "persistent"),
        "ais_runs": Int(low=2),
        "ais_betas": Int(low=1),
        "solver": Choice("adamw", "sgd"),
    }
    renamed: ClassVar[dict[str, str]] = {"k": "gibbs_steps"}

    def __init__(
        self,
        n_hidden: int = 256,
        *,
        method: str = "pcd",
        gibbs_steps: int = 1,
        n_chains: int = 100,
        burn_in: int = 1000,
        thin: int = 10,
        sample_chains: int | None = None,
        sample_init: str = "random",
        ais_runs: int = 100,
        ais_betas: int = 10_000,
        solver: str = "adamw",
        **training: Any,
    ) -> None:
        # no early stopping by default: between epochs the validation NLL comes from a
        # short AIS run whose noise stops training early (28×28 binary digits: patience 10
        # stopped after 8 s of a 300 s budget at 288.7 test nats; without it, 219.2 after
        # 60 s and 164.1 after 300 s). Batches of 32 (4× the updates of the shared 128 per
        # epoch): digits-binary at 50 epochs of 128 ended level with independent pixels
        # (24.90 nats); 200 epochs of 32: 20.08 (64 hidden units) and 19.94 (256), below
        # chow-liu's 20.68.
        super().__init__(**{"patience": None, "batch_size": 32, **training})
        self.solver = solver
        self.n_hidden = n_hidden
        self.method = method
        self.gibbs_steps = gibbs_steps
        self.n_chains = n_chains
        self.burn_in = burn_in
        self.thin = thin
        self.sample_chains = sample_chains
        self.sample_init = sample_init
        self.ais_runs = ais_runs
        self.ais_betas = ais_betas
        self._ais_reserve = 0.0  # seconds of max_time left to the final AIS (during a fit)

    def _kind_fix(self, spec: DataSpec) -> str:
        return (
            "binarise it first (e.g. the digits-binary data set, or X > threshold), or use "
            "'ebm' for continuous data"
        )

    def _fit(self, x: np.ndarray, y: np.ndarray | None, spec: DataSpec, **kw: Any) -> None:
        self._check_precision()  # before any work on the data
        flat = x.reshape(len(x), -1)
        p = (flat.sum(0) + 1.0) / (len(flat) + 2.0)  # smoothed marginals: finite logits
        self.base_bias_ = np.log(p) - np.log1p(-p)
        runs, self._ais_reserve = self._ais_plan(spec)
        try:
            super()._fit(x, y, spec, **kw)
        finally:
            self._ais_reserve = 0.0
        log_z, std_err, method = self.estimate_log_z(ais_runs=runs, verbose=self.verbose)
        self._module.set_log_z(log_z)
        self.log_z_, self.log_z_std_, self.log_z_method_ = log_z, std_err, method
        self.log_z_runs_ = int(runs) if method == "ais" else 0

    def train_config(self) -> TrainConfig:
        """The shared training configuration; under ``max_time``, training's budget leaves
        the final AIS estimate of log Z its share (see :data:`AIS_SHARE`)."""
        config = super().train_config()
        if config.max_time is None or not self._ais_reserve:
            return config
        return dataclasses.replace(config, max_time=config.max_time - self._ais_reserve)

    def _ais_plan(self, spec: DataSpec) -> tuple[int, float]:
        """(AIS runs of the final log Z estimate, seconds training leaves it): under
        ``max_time``, as many of ``ais_runs`` as fit in :data:`AIS_SHARE` of it by short
        timed runs of 8 and 32 runs (the time of a temperature grows linearly with the
        runs), at least :data:`MIN_AIS_RUNS`; otherwise ``ais_runs``, nothing reserved."""
        params = self._params()
        high = params["ais_runs"]
        small = min(spec.n_dims, params["n_hidden"]) <= MAX_EXACT_UNITS
        if params["max_time"] is None or small:
            return high, 0.0
        device = resolve_device(params["device"])
        module = self._build_module(spec, None).to(device, self._weights_dtype())
        allowance, betas = AIS_SHARE * params["max_time"], params["ais_betas"] + 1
        low = min(MIN_AIS_RUNS, high)
        mid = min(4 * low, high)  # the timed runs stay short whatever ais_runs is

        def per_beta(runs: int) -> float:  # seconds a temperature takes at this many runs
            g = torch.Generator(device=module.W.device).manual_seed(0)
            start = time.perf_counter()
            float(module.ais_log_z(runs, _PILOT_BETAS, g)[0])  # float(): waits for a device
            return (time.perf_counter() - start) / (_PILOT_BETAS + 1)

        per_beta(low)  # a first call pays one-time costs (allocations, thread pools)
        t_low = per_beta(low)
        per_run = max(per_beta(mid) - t_low, 0.0) / (mid - low) if mid > low else 0.0
        room = allowance / betas - t_low  # for the runs beyond the first `low`
        if per_run * (high - low) <= room:
            runs = high
        else:  # per_run > 0 here whenever room > 0
            runs = low + (int(room / per_run) if room > 0 else 0)
        seconds = betas * (t_low + per_run * (runs - low))
        if seconds > allowance:
            warnings.warn(
                f"{self.name}: the final AIS estimate of log Z ({runs} runs × "
                f"{params['ais_betas']:,} temperatures) takes about {seconds:.1f} s, more than "
                f"{AIS_SHARE:.0%} of max_time={params['max_time']:g} s; the fit will run over "
                "its budget by the difference (a smaller ais_betas is faster but biases log Z "
                "down, the scores up)",
                stacklevel=4,
            )
        return runs, min(seconds, allowance)

    def _train(
        self,
        spec: DataSpec,
        n_classes: int | None,
        parts: tuple[Source, np.ndarray | None, Source | None, np.ndarray | None],
        run_dir: Any,
        resume: bool,
        fingerprint: str,
    ) -> None:
        if self.solver == "adamw":
            super()._train(spec, n_classes, parts, run_dir, resume, fingerprint)
            return
        config = self.train_config()
        torch.random.default_generator.manual_seed(config.seed)  # the CPU-built weights only
        module = self._build_module(spec, n_classes).to(self._weights_dtype())
        x_train = np.asarray(parts[0]).reshape(len(parts[0]), -1)  # the lean loop: in memory
        self.history_, seconds = sgd_fit(module, x_train, config, self.verbose)
        self._module = module.eval()
        self.best_epoch_ = len(self.history_)
        self.n_steps_ = len(self.history_) * -(-len(x_train) // config.batch_size)
        self.stopped_ = "max_time" if len(self.history_) < config.epoch_limit else "completed"
        self.train_seconds_ = seconds

    def _log_prob_with_std(self, x: np.ndarray, label: int | None) -> tuple[np.ndarray, ...]:
        # every row shares log Z: its AIS standard error is each score's error (0 if exact)
        scores = self._log_prob(x, label)
        return scores, np.full_like(scores, float(self.log_z_std_))

    def _check_params_together(self, params: Any) -> None:
        if params["sample_init"] == "persistent" and params["method"] != "pcd":
            raise ParameterError(
                f"{self.name}: sample_init='persistent' needs method='pcd' (CD keeps no "
                "chains); use sample_init='random'"
            )

    def _build_module(self, spec: DataSpec, n_classes: int | None) -> RBMNetwork:
        config = self.config(base_bias=torch.as_tensor(self.base_bias_))
        return RBMNetwork.from_config(config, spec, n_classes)

    def estimate_log_z(
        self,
        method: str = "auto",
        *,
        ais_runs: int | None = None,
        ais_betas: int | None = None,
        random_state: Any = None,
        verbose: Any = False,
    ) -> tuple[float, float, str]:
        """log Z of the fitted RBM: (log_z, std_err, method used).

        Arguments:
            method: ``"exact"`` (enumeration, min(n_visible, n_hidden) ≤ 20), ``"ais"``, or
                ``"auto"`` (exact when possible).
            ais_runs, ais_betas: AIS settings (default: the model's hyper-parameters).
            random_state: AIS seed (default: the model's ``random_state``).
            verbose: show a progress bar over the AIS temperatures.

        Returns:
            log Z in nats, its standard error (0.0 when exact), and ``"exact"`` or ``"ais"``.
        """
        check_choice(self.name, "method", method, ("auto", "exact", "ais"))
        module = self._module if hasattr(self, "_module") else self.module
        if method == "auto":
            small = min(module.n_visible, module.n_hidden) <= MAX_EXACT_UNITS
            method = "exact" if small else "ais"
        if method == "exact":
            return float(module.exact_log_z()), 0.0, "exact"
        # the hyper-parameters were checked at fit; this method's own arguments here
        params, name = self._params(), self.name
        runs = check_int(name, "ais_runs", ais_runs, low=2, allow_none=True)
        betas = check_int(name, "ais_betas", ais_betas, low=1, allow_none=True)
        seed = check_random_state(name, "random_state", random_state)
        runs = params["ais_runs"] if runs is None else runs
        betas = params["ais_betas"] if betas is None else betas
        seed = self._seed() if seed is None else seed
        generator = torch.Generator(device=module.W.device).manual_seed(seed)
        description = f"log Z by AIS ({runs} runs)"
        with progress_bar(betas + 1, description, enabled=bool(verbose)) as advance:
            log_z, std_err = module.ais_log_z(runs, betas, generator, advance)
        return float(log_z), float(std_err), "ais"

    def free_energy(self, X: Any) -> np.ndarray:
        """Free energy F(v) of each example, shape (N,) (−log p(v) − log Z)."""
        return self._apply(X, lambda m, v: m.free_energy(v))

    def embed(self, X: Any) -> np.ndarray:
        """Hidden unit probabilities p(h_j = 1 | v), shape (N, n_hidden)."""
        return self._apply(X, lambda m, v: m.hidden_probs(v))

    @torch.no_grad()
    def _apply(self, X: Any, fn: Any) -> np.ndarray:
        self._check_fitted()
        x = check_values(X, self.fitted_spec)
        v = torch.as_tensor(x.reshape(len(x), -1), device=self._device())
        return fn(self._module, v).double().cpu().numpy()

    def _fitted_likelihood(self, spec: DataSpec) -> str:
        return "exact" if self.log_z_method_ == "exact" else "estimate"

    def _required_attributes(self) -> tuple[str, ...]:
        return ("log_z_", "log_z_std_", "log_z_method_", "base_bias_")


def sgd_fit(
    module: RBMNetwork, x: np.ndarray, config: Any, verbose: Any = 0
) -> tuple[list[dict[str, Any]], float]:
    """Train ``module`` by plain stochastic gradient steps on the CD-k / PCD-k gradient,
    in numpy, without the Trainer (``solver="sgd"``).

    Per mini-batch v⁺ (B, D) and negatives v⁻ (the persistent chains after k Gibbs
    sweeps, or k sweeps from the batch for CD), with ĥ = p(h = 1 | v):

        W += lr (ĥ(v⁺)ᵀ v⁺ / B − ĥ(v⁻)ᵀ v⁻ / B⁻ − weight_decay · W),
        b += lr (mean v⁺ − mean v⁻),   c += lr (mean ĥ(v⁺) − mean ĥ(v⁻)),

    the gradient of the surrogate ``RBMNetwork.loss`` written out: the classical RBM
    update (Hinton 2010; scikit-learn's ``BernoulliRBM`` takes the same steps with PCD-1
    and one chain per example of a batch). A tiny network cannot amortise the general
    Trainer's per-step work (autograd, AdamW, clipping, logging): PCD-1 (the default
    ``method="pcd"``, ``gibbs_steps=1``) runs fused, about a dozen numpy calls a step on
    preallocated arrays with the uniforms of many steps drawn at once
    (:func:`_pcd1_epochs`); CD-k and PCD-k with k > 1 run the plain loop
    (:func:`_gibbs_k_epochs`). Examples are visited in a fresh seeded order each epoch;
    ``max_time`` stops after the epoch that crosses it. No validation, early stopping or
    checkpoints on this path.

    Returns:
        the per-epoch history (epoch, step, seconds, lr) and the training seconds.
    """

    dtype = module.W.dtype
    np_dtype = np.float64 if dtype == torch.float64 else np.float32
    w = module.W.detach().cpu().numpy().astype(np_dtype)  # (H, D)
    b = module.b.detach().cpu().numpy().astype(np_dtype)  # (D,)
    c = module.c.detach().cpu().numpy().astype(np_dtype)  # (H,)
    chains = module.chains.detach().cpu().numpy().astype(np_dtype)  # (C, D)
    data = np.ascontiguousarray(x, dtype=np_dtype)
    n = len(data)
    lr, decay, k = float(config.lr), float(config.weight_decay), int(module.gibbs_steps)
    batch = min(int(config.batch_size), n)
    persistent = module.method == "pcd"
    rng = np.random.default_rng(config.seed)
    history: list[dict[str, Any]] = []
    start = time.perf_counter()
    rows = batch + (len(chains) if persistent else batch)  # positives and negatives
    with (
        blas_threads_for(rows * (w.shape[1] + 1) * (w.shape[0] + 1), small=SMALL_PRODUCT),
        progress_bar(config.epochs, "rbm (sgd)", enabled=bool(verbose)) as advance,
    ):
        if persistent and k == 1:
            w, b, c, chains = _pcd1_epochs(w, b, c, chains, data, batch, lr, decay, rng,
                                           config, history, start, advance)  # fmt: skip
        else:
            _gibbs_k_epochs(w, b, c, chains, data, batch, lr, decay, k, persistent, rng,
                            config, history, start, advance)  # fmt: skip
    with torch.no_grad():
        module.W.copy_(torch.from_numpy(np.ascontiguousarray(w)))
        module.b.copy_(torch.from_numpy(np.ascontiguousarray(b)))
        module.c.copy_(torch.from_numpy(np.ascontiguousarray(c)))
        module.chains.copy_(torch.from_numpy(np.ascontiguousarray(chains)))
        module.log_z.fill_(float("nan"))
    return history, time.perf_counter() - start


def sgd_step(
    w: np.ndarray,
    b: np.ndarray,
    c: np.ndarray,
    v_pos: np.ndarray,
    v_neg: np.ndarray,
    lr: float,
    decay: float = 0.0,
    h_pos: np.ndarray | None = None,
) -> np.ndarray:
    """One gradient step on the CD surrogate F̄(v⁺) − F̄(v⁻) (means over rows), in place:
    W (H, D), b (D,), c (H,) move by −lr × its gradient (and −lr·decay·W). ``h_pos`` is
    p(h = 1 | v⁺) if already computed. Returns p(h = 1 | v⁻) under the weights before
    the step."""
    from scipy.special import expit

    if h_pos is None:
        h_pos = expit(v_pos @ w.T + c)
    h_neg = expit(v_neg @ w.T + c)  # (B⁻, H)
    m_pos, m_neg = 1.0 / len(v_pos), 1.0 / len(v_neg)
    grad_w = (h_pos.T @ v_pos) * m_pos - (h_neg.T @ v_neg) * m_neg
    if decay:
        grad_w -= decay * w
    w += lr * grad_w
    b += lr * (v_pos.sum(0) * m_pos - v_neg.sum(0) * m_neg)
    c += lr * (h_pos.sum(0) * m_pos - h_neg.sum(0) * m_neg)
    return h_neg


def _epoch_done(
    history: list[dict[str, Any]],
    epoch: int,
    step: int,
    lr: float,
    start: float,
    config: Any,
    advance: Any,
) -> bool:
    """Record an epoch of :func:`sgd_fit`; True when ``max_time`` has passed."""
    seconds = time.perf_counter() - start
    history.append({"epoch": epoch + 1, "step": step, "lr": lr, "seconds": seconds})
    advance(1)
    return config.max_time is not None and seconds > config.max_time


def _sigmoid_(x: np.ndarray) -> np.ndarray:
    """1 / (1 + e^−x) in place (numpy's vectorised exp: about twice scipy's ``expit`` on
    small float32 arrays; e^−x overflows to inf for x below about −88 (float32), giving the
    limit 0: call under ``np.errstate(over="ignore")``)."""
    np.negative(x, out=x)
    np.exp(x, out=x)
    x += 1.0
    return np.reciprocal(x, out=x)


def _pcd1_epochs(
    w: np.ndarray,
    b: np.ndarray,
    c: np.ndarray,
    chains: np.ndarray,
    data: np.ndarray,
    batch: int,
    lr: float,
    decay: float,
    rng: np.random.Generator,
    config: Any,
    history: list[dict[str, Any]],
    start: float,
    advance: Any,
) -> tuple[np.ndarray, ...]:
    """PCD-1 epochs of :func:`sgd_fit`, fused: the classical loop (as scikit-learn's), whose
    chains keep their hidden sample from the previous step's negative phase, in about a
    dozen numpy calls per step on preallocated arrays.

    The parameters live in one matrix P = [[W, c], [b, 0]] (H+1, D+1), and the step's rows
    in one array V = [v⁺ 1; v⁻ 1]: the hidden inputs of positives and negatives are one
    product V P[:H]ᵀ, and with R = [ĥ 1] scaled by lr/B (positives) and −lr/C (negatives)
    the whole update of W, b and c is one product, P += Rᵀ V. The uniforms of many steps
    are drawn in one call, in the order of the per-step draws (v⁻'s, then the chains' next
    h). The same arithmetic and random stream as the classical loop, up to rounding
    (``tests/models/test_rbm_sgd.py``).

    Returns:
        W, b, c and the chains after the last step.
    """
    h, d = w.shape
    n, n_chains, dtype = len(data), len(chains), w.dtype
    params = np.zeros((h + 1, d + 1), dtype=dtype)  # [[W, c], [b, 0]]
    params[:h, :d], params[:h, d], params[h, :d] = w, c, b
    to_hidden, to_visible = params[:h].T, params[:, :d]  # views: (D+1, H), (H+1, D)
    rows = np.ones((batch + n_chains, d + 1), dtype=dtype)  # v⁺ in [batch − B, batch)
    hidden = np.empty((batch + n_chains, h), dtype=dtype)  # ĥ, contiguous for the sigmoid
    h_chain = np.ones((n_chains, h + 1), dtype=dtype)
    p_v = np.empty((n_chains, d), dtype=dtype)
    scaled = np.empty((batch + n_chains, h + 1), dtype=dtype)  # R = [ĥ 1] × scale
    grad = np.empty_like(params)
    neg, v_neg, h_neg = slice(batch, None), rows[batch:, :d], hidden[batch:]
    scales: dict[int, np.ndarray] = {}
    last_size = 0
    per_step = n_chains * (d + h)  # uniforms a step draws
    group = max(1, _UNIFORMS // per_step)  # steps whose uniforms are drawn at once
    rows[neg, :d] = chains
    step = 0
    with np.errstate(over="ignore"):
        for epoch in range(config.epoch_limit):
            shuffled = data[rng.permutation(n)]  # one copy per epoch; batches are views
            if epoch == 0:  # the chains' first hidden sample, from their initial states
                np.matmul(rows[neg], to_hidden, out=h_neg)
                first = rng.random((n_chains, h), dtype=dtype)
                np.less(first, _sigmoid_(h_neg), out=h_chain[:, :h])
            starts = range(0, n, batch)
            for i, lo in enumerate(starts):
                if i % group == 0:
                    count = min(group, len(starts) - i)
                    uniforms = rng.random((count, per_step), dtype=dtype)
                u = uniforms[i % group]
                u_v, u_h = u[: n_chains * d].reshape(n_chains, d), u[n_chains * d :]
                size = min(batch, n - lo)
                top = batch - size
                if size != last_size:  # lr/B for the positives, −lr/C for the chains
                    scales[size] = np.concatenate(
                        [np.full(size, lr / size), np.full(n_chains, -lr / n_chains)]
                    ).astype(dtype)[:, None]
                    scaled[top:, h] = scales[size][:, 0]  # the column of ones, scaled
                    last_size = size
                # negative phase: v⁻ ~ p(v | h of the chains), under the weights before the step
                np.matmul(h_chain, to_visible, out=p_v)
                np.less(u_v, _sigmoid_(p_v), out=v_neg)
                rows[top:batch, :d] = shuffled[lo : lo + size]
                # ĥ of positives and negatives: one product
                np.matmul(rows[top:], to_hidden, out=hidden[top:])
                _sigmoid_(hidden[top:])
                # the chains' next hidden sample, from ĥ(v⁻) before the weights move
                np.less(u_h.reshape(n_chains, h), h_neg, out=h_chain[:, :h])
                np.multiply(hidden[top:], scales[size], out=scaled[top:, :h])
                np.matmul(scaled[top:].T, rows[top:], out=grad)  # lr × [[∇W, ∇c], [∇b, ·]]
                if decay:
                    params[:h, :d] *= 1.0 - lr * decay
                params += grad
                step += 1
            if _epoch_done(history, epoch, step, lr, start, config, advance):
                break
    return params[:h, :d], params[h, :d], params[:h, d], v_neg


def _gibbs_k_epochs(
    w: np.ndarray,
    b: np.ndarray,
    c: np.ndarray,
    chains: np.ndarray,
    data: np.ndarray,
    batch: int,
    lr: float,
    decay: float,
    k: int,
    persistent: bool,
    rng: np.random.Generator,
    config: Any,
    history: list[dict[str, Any]],
    start: float,
    advance: Any,
) -> None:
    """CD-k (negatives: k sweeps from the batch) or PCD-k epochs of :func:`sgd_fit`, updating
    W, b, c and (PCD) the chains in place: each step draws h then v, k times, then takes
    :func:`sgd_step`."""
    from scipy.special import expit

    n, np_dtype, step = len(data), w.dtype, 0
    for epoch in range(config.epoch_limit):
        shuffled = data[rng.permutation(n)]
        for lo in range(0, n, batch):
            v_pos = shuffled[lo : lo + batch]
            h_pos = expit(v_pos @ w.T + c)  # (B, H), before the weights move
            v_neg = chains if persistent else v_pos
            for _ in range(k):
                p_h = expit(v_neg @ w.T + c)
                h = (rng.random(p_h.shape, dtype=np_dtype) < p_h).astype(np_dtype)
                p_v = expit(h @ w + b)
                v_neg = (rng.random(p_v.shape, dtype=np_dtype) < p_v).astype(np_dtype)
            if persistent:
                chains[...] = v_neg
            sgd_step(w, b, c, v_pos, v_neg, lr, decay, h_pos)
            step += 1
        if _epoch_done(history, epoch, step, lr, start, config, advance):
            break
