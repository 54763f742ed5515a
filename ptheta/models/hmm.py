"""Hidden Markov models of fixed-length sequences, fitted by Baum–Welch EM in log space."""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
import torch
from scipy.special import gammaln, logsumexp
from sklearn.cluster import kmeans_plusplus

from ptheta.data.spec import DataSpec, check_values, location_scale
from ptheta.errors import DataError
from ptheta.models.base import GenerativeModel
from ptheta.models.em import Params, run_em
from ptheta.models.missing import missing_patterns, one_hot
from ptheta.models.mixtures import _conditional_gaussians
from ptheta.models.sampling import sample_categorical
from ptheta.params import Choice, Float, Int, Param, Seed

_TINY = np.finfo(np.float64).tiny
_EPS = 10 * np.finfo(np.float64).eps
_LOG_2PI = math.log(2 * math.pi)


class HMM(GenerativeModel):
    """Hidden Markov model p(x) = Σ_s π_{s_1} ∏_{t>1} A_{s_{t-1} s_t} ∏_t p(x_t | s_t).

    **Data.** Each example is one sequence with the time axis first in its event shape:
    (T,) or (T, F, ...), the trailing axes flattened into F features per step. The K
    hidden states follow one homogeneous Markov chain (start probabilities π, transition
    matrix A); given its state, a step's F features are emitted by

    - ``emission="categorical"`` (binary or categorical data with L levels): independent
      categorical features, ``emissionprob_[k, f, l]`` = p(x_t,f = l | s_t = k);
    - ``emission="gaussian"`` (continuous data): N(μ_k, Σ_k) with ``covariance_type``
      ``"diag"`` or ``"full"``;

    ``"auto"`` picks by the data's kind. A Gaussian on discrete data is refused rather
    than reporting a density as if it were a probability (declare the data continuous).
    Sequences share one length T today; the forward–backward code already takes padded
    steps (an emission factor of one; see :func:`forward_backward`) for the variable-length
    sequence data to come.

    **Fitting.** Baum–Welch (EM): the E-step is the forward–backward recursion in log
    space over a batch of sequences, the M-step re-estimates π, A and the emissions from
    the posterior state marginals γ and the expected transition counts ξ, driven by
    :func:`ptheta.models.em.run_em` (``n_init`` restarts, the best objective kept).
    ``alpha`` is a Dirichlet pseudo-count on π, every row of A and every categorical
    emission row (MAP-EM under Dirichlet(α + 1) priors, as in :class:`CategoricalMixture
    <ptheta.models.mixtures.CategoricalMixture>`). Gaussian EM runs on standardised
    features z = (x − shift_) / scale_ (per feature, over every step), and ``min_covar`` is
    added to each state's covariance there (units of each feature's variance): exactly the
    M-step of the smoothed objective E_ε log N(z + ε), ε ~ N(0, min_covar·I), as in
    :class:`GaussianMixture <ptheta.models.mixtures.GaussianMixture>`. ``history_``
    records per step the mean ``objective`` per sequence (log-likelihood, smoothed, plus
    log prior), which EM never lowers, and the plain mean ``log_likelihood`` (monotone too
    when ``alpha = 0`` and ``min_covar = 0``). Every number is in data units (nats per
    sequence; densities include the Jacobian −Σ log scale_).

    **Missing data.** NaN entries are marginalised exactly: a missing feature drops out of
    its step's emission factor (a fully missing step has factor one), so ``score_samples``
    is the exact log p(x_observed) by the forward recursion. ``impute(method="sample")``
    and ``sample(given=...)`` draw the states by forward filtering, backward sampling, then
    the missing entries from their emission given the state (conditioned on the step's
    observed features for a full covariance): exact conditional samples.
    ``impute(method="mode")`` fills each missing entry with its most probable level under
    p(x_t,f | x_obs) = Σ_k γ_t(k) p(x_t,f | k) (entry by entry), or, for Gaussians, with
    the conditional *mean* E[x_t,f | x_obs].

    **States.** :meth:`viterbi` gives the most probable state path (N, T) and
    :meth:`posterior_states` the marginals p(s_t = k | x) (N, T, K). They are not called
    ``predict`` / ``predict_proba``: those names make a model a classifier of x for
    scikit-learn (``capabilities().classifies``), and an HMM labels steps, not examples.
    ``embed(X)`` is the expected fraction of time in each state, the mean of the posterior
    marginals over steps (N, K): one fixed-size vector per sequence whatever its length.

    Arguments:
        n_states: number of hidden states K.
        emission: ``"auto"``, ``"categorical"`` or ``"gaussian"`` (see above).
        covariance_type: ``"diag"`` (K, F) or ``"full"`` (K, F, F) Gaussian covariances.
        n_init: number of initialisations; the one with the best objective is kept.
        max_iter: EM iterations per initialisation.
        tol: stop when the mean objective per sequence improves by less than this.
        init: ``"kmeans"`` (k-means++ centres of the steps, then a soft assignment of each
            step to its nearest centre) or ``"random"`` (random state posteriors).
        min_covar: variance added to every Gaussian covariance of the standardised data.
        alpha: Dirichlet pseudo-count on start, transition and categorical emission
            probabilities; 0 is maximum likelihood.
        random_state: seed of the initialisation: an integer, or None for fresh randomness
            (see :class:`~ptheta.params.Seed`).
        verbose: 1 shows a progress bar.

    Returns:
        ``fit`` returns the model. Fitted attributes: ``startprob_`` (K,), ``transmat_``
        (K, K), ``emission_`` (the emission used), ``emissionprob_`` (K, F, L) or
        ``means_`` (K, F) and ``covars_`` (K, F) / (K, F, F) in data units with ``shift_``,
        ``scale_`` (F,); ``converged_``, ``n_iter_``, ``history_``, ``best_init_``.

    Example:
        >>> import itertools
        >>> import numpy as np
        >>> import ptheta
        >>> x = np.array([[0, 0, 1, 1], [1, 1, 0, 0], [0, 0, 0, 1]] * 20)
        >>> m = ptheta.make("hmm", n_states=2, random_state=0).fit(x)
        >>> m.transmat_.shape, m.viterbi(x[:2]).shape, m.posterior_states(x[:2]).shape
        ((2, 2), (2, 4), (2, 4, 2))
        >>> every = np.array(list(itertools.product([0, 1], repeat=4)))
        >>> round(float(np.exp(m.score_samples(every)).sum()), 9)
        1.0

    References:
        Rabiner (1989), A tutorial on hidden Markov models and selected applications in
        speech recognition, Proc. IEEE 77(2); Bishop (2006), Pattern Recognition and
        Machine Learning, §13.2; Baum, Petrie, Soules & Weiss (1970); Früwirth-Schnatter
        (1994) for forward filtering, backward sampling.
    """

    name: ClassVar[str] = "hmm"
    family: ClassVar[str] = "latent sequence"
    likelihood: ClassVar[str] = "exact"
    data_kinds: ClassVar[tuple[str, ...]] = ("binary", "categorical", "continuous")
    can_marginalise: ClassVar[bool] = True
    abilities: ClassVar[dict[str, Any]] = {"needs_sequence": True, "embeds": True}
    quick_params: ClassVar[dict[str, Any]] = {"n_states": 2, "max_iter": 30, "random_state": 0}
    parameters: ClassVar[dict[str, Param]] = {
        "n_states": Int(low=1),
        "emission": Choice("auto", "categorical", "gaussian"),
        "covariance_type": Choice("diag", "full"),
        "n_init": Int(low=1),
        "max_iter": Int(low=1),
        "tol": Float(low=0),
        "init": Choice("kmeans", "random"),
        "min_covar": Float(low=0),
        "alpha": Float(low=0),
        "random_state": Seed(),
        "verbose": Int(low=0, flag=True),
    }

    def __init__(
        self,
        n_states: int = 4,
        *,
        emission: str = "auto",
        covariance_type: str = "diag",
        n_init: int = 1,
        max_iter: int = 100,
        tol: float = 1e-4,
        init: str = "kmeans",
        min_covar: float = 1e-3,
        alpha: float = 0.0,
        random_state: int | None = 0,
        verbose: int = 0,
    ) -> None:
        self.n_states = n_states
        self.emission = emission
        self.covariance_type = covariance_type
        self.n_init = n_init
        self.max_iter = max_iter
        self.tol = tol
        self.init = init
        self.min_covar = min_covar
        self.alpha = alpha
        self.random_state = random_state
        self.verbose = verbose

    # ----------------------------------------------------------------- fitting
    def _emission_for(self, spec: DataSpec) -> str:
        """The emission family the data ``spec`` gets (a DataError where it cannot)."""
        if self.emission == "auto":
            return "categorical" if spec.is_discrete else "gaussian"
        if self.emission == "categorical" and not spec.is_discrete:
            raise DataError(
                "hmm: emission='categorical' needs binary or categorical data (levels 0..L-1), "
                "got continuous data; use emission='gaussian' or 'auto'"
            )
        if self.emission == "gaussian" and spec.is_discrete:
            raise DataError(
                f"hmm: emission='gaussian' on {spec.kind} data would report a density as a "
                "probability; use emission='categorical' (or 'auto'), or declare the data "
                "continuous (kind='continuous')"
            )
        return self.emission

    def _fit(self, x: np.ndarray, y: Any, spec: DataSpec) -> None:
        x3 = _as_steps(x)  # (N, T, F)
        n, t_len, f = x3.shape
        k = int(self.n_states)
        if k > n * t_len:
            raise DataError(
                f"n_states={k} is more than the {n * t_len} steps of the training data; "
                "use fewer states or more data"
            )
        emission = self._emission_for(spec)
        alpha = float(self.alpha)
        # log-normaliser of the Dirichlet(α + 1) priors on π and every row of A
        log_norm = (k + 1) * _log_dirichlet_norm(k, alpha)
        if emission == "categorical":
            levels = int(spec.n_categories)
            onehot = one_hot(x3.reshape(n * t_len, f), levels)  # (S, F·L)
            log_norm += k * f * _log_dirichlet_norm(levels, alpha)
            features = onehot
        else:
            shift, scale = location_scale(x3.reshape(n * t_len, f))
            z = ((x3 - shift) / scale).reshape(n * t_len, f)  # (S, F) standardised steps
            jacobian = -t_len * float(np.log(scale).sum())  # per sequence
            smooth = float(self.min_covar)
            full = self.covariance_type == "full"
            features = z

        def log_emission(params: tuple[np.ndarray, ...]) -> tuple[np.ndarray, np.ndarray]:
            """(N, T, K) log emission factors: plain, and those EM maximises (smoothed)."""
            if emission == "categorical":
                log_probs = np.log(np.maximum(params[2], _TINY)).reshape(k, -1)
                plain = (onehot @ log_probs.T).reshape(n, t_len, k)
                return plain, plain
            means, cov = params[2], params[3]
            plain = _log_gauss(z, means, cov, full).reshape(n, t_len, k)
            if smooth == 0:
                return plain, plain
            trace_prec = (
                np.trace(np.linalg.inv(cov), axis1=1, axis2=2) if full else (1 / cov).sum(1)
            )
            return plain, plain - 0.5 * smooth * trace_prec

        def e_step(torch_params: Params) -> tuple[float, float, Any]:
            params = tuple(p.numpy() for p in torch_params)
            log_start, log_trans = _log(params[0]), _log(params[1])
            plain, smoothed = log_emission(params)
            ll_obj, gamma, xi = forward_backward(log_start, log_trans, smoothed)
            ll = ll_obj if smoothed is plain else forward(log_start, log_trans, plain)[1]
            log_prior = log_norm + alpha * (log_start.sum() + log_trans.sum())
            if emission == "categorical":
                log_prior += alpha * float(_log(params[2]).sum())
            else:
                ll, ll_obj = ll + jacobian, ll_obj + jacobian
            objective = (float(ll_obj.sum()) + log_prior) / n
            return objective, float(ll.mean()), (gamma, xi)

        def m_step(posteriors: Any) -> Params:
            gamma, xi = posteriors  # (N, T, K), (K, K)
            start = _normalise(gamma[:, 0].sum(axis=0) + alpha)
            trans = _normalise(xi + alpha)
            w = gamma.reshape(n * t_len, k)  # (S, K)
            if emission == "categorical":
                counts = (w.T @ onehot).reshape(k, f, levels) + alpha
                out: tuple[np.ndarray, ...] = (start, trans, _normalise(counts))
            else:
                out = (start, trans, *_gauss_m_step(z, w, full, smooth))
            return tuple(torch.from_numpy(np.ascontiguousarray(a)) for a in out)

        def init(seed: np.random.SeedSequence) -> Params:
            return m_step(_initial_posteriors(features, n, t_len, k, self.init, seed))

        result = run_em(
            init, e_step, m_step, n_init=self.n_init, max_iter=self.max_iter, tol=self.tol,
            random_state=self.random_state, label=f"EM {self.name}", verbose=bool(self.verbose),
        )  # fmt: skip
        params = result.params
        self.emission_ = emission
        self.startprob_, self.transmat_ = params[0], params[1]
        if emission == "categorical":
            self.emissionprob_ = params[2]
        else:
            self.shift_, self.scale_ = shift, scale
            self.means_ = params[2] * scale + shift
            self.covars_ = params[3] * (np.outer(scale, scale) if full else scale**2)
        self.converged_ = result.converged
        self.n_iter_ = result.n_iter
        self.history_ = result.history
        self.best_init_ = result.best_init

    # ----------------------------------------------------------------- inference
    def _log_emission(self, x3: np.ndarray) -> np.ndarray:
        """log p(x_t,observed | s_t = k), shape (N, T, K), in data units; a missing
        feature drops out of its step's factor (a fully missing step gives 0)."""
        n, t_len, f = x3.shape
        flat = x3.reshape(n * t_len, f)
        k = len(self.startprob_)
        if self.emission_ == "categorical":
            levels = self.emissionprob_.shape[2]
            log_probs = _log(self.emissionprob_).reshape(k, -1)
            return (one_hot(flat, levels) @ log_probs.T).reshape(n, t_len, k)
        full = self.covariance_type == "full"
        z = (flat - self.shift_) / self.scale_
        means = (self.means_ - self.shift_) / self.scale_
        cov = self.covars_ / (np.outer(self.scale_, self.scale_) if full else self.scale_**2)
        log_scale = np.log(self.scale_)
        out = np.zeros((n * t_len, k))
        for rows, obs in missing_patterns(flat):
            if obs.any():
                c = cov[:, obs][:, :, obs] if full else cov[:, obs]
                dens = _log_gauss(z[np.ix_(rows, obs)], means[:, obs], c, full)
                out[rows] = dens - log_scale[obs].sum()
        return out.reshape(n, t_len, k)

    def _steps(self, X: Any) -> np.ndarray:
        """Checked examples (NaN allowed) as (N, T, F) float64 steps."""
        self._check_fitted()
        x = check_values(X, self.fitted_spec, allow_nan=True)
        return _as_steps(np.asarray(x, dtype=np.float64))

    def _logs(self) -> tuple[np.ndarray, np.ndarray]:
        return _log(self.startprob_), _log(self.transmat_)

    def _score_samples(self, x: np.ndarray) -> np.ndarray:
        x3 = _as_steps(np.asarray(x, dtype=np.float64))
        return forward(*self._logs(), self._log_emission(x3))[1]

    def posterior_states(self, X: Any) -> np.ndarray:
        """Posterior state marginals p(s_t = k | x_observed), shape (N, T, K), by
        forward–backward; NaN entries are marginalised out."""
        x3 = self._steps(X)
        return forward_backward(*self._logs(), self._log_emission(x3))[1]

    def viterbi(self, X: Any) -> np.ndarray:
        """The most probable state path argmax_s p(s | x_observed), shape (N, T), int64."""
        x3 = self._steps(X)
        return viterbi_path(*self._logs(), self._log_emission(x3))

    def embed(self, X: Any) -> np.ndarray:
        """The expected fraction of steps spent in each state, shape (N, K)."""
        return self.posterior_states(X).mean(axis=1)

    def bic(self, X: Any) -> float:
        """Bayesian information criterion −2 log p(X) + p log N (lower is better)."""
        scores = self.score_samples(X)
        return float(-2 * scores.sum() + self.n_parameters() * math.log(len(scores)))

    def aic(self, X: Any) -> float:
        """Akaike information criterion −2 log p(X) + 2p (lower is better)."""
        return float(-2 * self.score_samples(X).sum() + 2 * self.n_parameters())

    # ----------------------------------------------------------------- sampling
    def _emit(
        self, states: np.ndarray, rng: np.random.Generator, given: np.ndarray | None = None
    ) -> np.ndarray:
        """Emissions (S, F) of states (S,); with ``given`` (S, F), only its NaN entries are
        drawn, from the emission conditioned on the step's observed features."""
        if self.emission_ == "categorical":
            drawn = sample_categorical(self.emissionprob_[states], rng).astype(np.float64)
        elif self.covariance_type == "diag":
            noise = rng.standard_normal(self.means_[states].shape)
            drawn = self.means_[states] + np.sqrt(self.covars_[states]) * noise
        elif given is None:
            chol = np.linalg.cholesky(self.covars_)  # (K, F, F)
            noise = rng.standard_normal(self.means_[states].shape)
            drawn = self.means_[states] + np.einsum("sij,sj->si", chol[states], noise)
        else:
            return self._conditional_gaussian(states, given, "sample", rng)
        return drawn if given is None else np.where(np.isnan(given), drawn, given)

    def _conditional_gaussian(
        self, states: np.ndarray, given: np.ndarray, method: str, rng: np.random.Generator
    ) -> np.ndarray:
        """Full covariance: the missing features of each step (S, F) drawn from (or, with
        ``method="mean"``, the mean of) N(x_M | x_O, state) of the given states (S,)."""
        out = given.copy()
        for rows, obs in missing_patterns(given):
            if obs.all():
                continue
            mean, chol = _conditional_gaussians(
                self.means_, self.covars_, given[np.ix_(rows, obs)], obs
            )  # (R, K, M), (K, M, M)
            s = states[rows]
            fill = mean[np.arange(len(rows)), s]
            if method == "sample":
                noise = rng.standard_normal(fill.shape)
                fill = fill + np.einsum("rij,rj->ri", chol[s], noise)
            out[np.ix_(rows, ~obs)] = fill
        return out

    def _sample(self, n: int, y: Any, rng: np.random.Generator) -> np.ndarray:
        t_len = self.fitted_spec.event_shape[0]
        states = np.empty((n, t_len), dtype=np.int64)
        states[:, 0] = sample_categorical(self.startprob_, rng, size=n)
        for t in range(1, t_len):
            states[:, t] = sample_categorical(self.transmat_[states[:, t - 1]], rng)
        return self._emit(states.reshape(-1), rng).reshape(n, t_len, -1)

    def _impute(self, x: np.ndarray, method: str, rng: np.random.Generator) -> np.ndarray:
        x3 = _as_steps(x.astype(np.float64))
        n, t_len, f = x3.shape
        flat = x3.reshape(n * t_len, f)
        log_start, log_trans = self._logs()
        log_emit = self._log_emission(x3)
        if method == "sample":
            states = backward_sample(log_start, log_trans, log_emit, rng).reshape(-1)
            return self._emit(states, rng, given=flat).reshape(x.shape)
        gamma = forward_backward(log_start, log_trans, log_emit)[1].reshape(n * t_len, -1)
        if self.emission_ == "categorical":
            # p(x_t,f = l | x_obs) = Σ_k γ_t(k) θ_k,f,l, then the most probable level
            fill = np.einsum("sk,kfl->sfl", gamma, self.emissionprob_).argmax(axis=2)
        elif self.covariance_type == "diag":
            fill = gamma @ self.means_  # E[x_t,f | x_obs]
        else:
            fill = np.zeros_like(flat)
            for k in range(gamma.shape[1]):  # Σ_k γ_t(k) E[x_M | x_O, s_t = k]
                states = np.full(len(flat), k)
                cond = self._conditional_gaussian(states, flat, "mean", rng)
                fill += gamma[:, k : k + 1] * cond
        return np.where(np.isnan(flat), fill, flat).reshape(x.shape)

    # ----------------------------------------------------------------- contract
    def _n_parameters(self) -> int:
        k = len(self.startprob_)
        free = (k - 1) + k * (k - 1)
        if self.emission_ == "categorical":
            _, f, levels = self.emissionprob_.shape
            return free + k * f * (levels - 1)
        f = self.means_.shape[1]
        cov = f * (f + 1) // 2 if self.covariance_type == "full" else f
        return free + k * (f + cov)

    def _expected_shapes(self, spec: DataSpec) -> dict[str, tuple[int, ...]]:
        k = int(self.n_states)
        f = math.prod(spec.event_shape[1:])
        shapes: dict[str, tuple[int, ...]] = {"startprob_": (k,), "transmat_": (k, k)}
        if self._emission_for(spec) == "categorical":
            shapes["emissionprob_"] = (k, f, int(spec.n_categories))
        else:
            cov = (k, f, f) if self.covariance_type == "full" else (k, f)
            shapes |= {"means_": (k, f), "covars_": cov, "shift_": (f,), "scale_": (f,)}
        return shapes

    def _required_attributes(self) -> tuple[str, ...]:
        return ("emission_", "startprob_", "transmat_")


# --------------------------------------------------------------------------- recursions
def forward(
    log_start: np.ndarray, log_trans: np.ndarray, log_emit: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The forward recursion in log space over a batch of sequences.

    Arguments:
        log_start: (K,) log π; log_trans: (K, K) log A; log_emit: (N, T, K) log emission
            factors. A padded step (after a sequence's end) has factor one (log 0): rows of
            A sum to one, so trailing padding leaves the likelihood exact.

    Returns:
        log α (N, T, K), log α_t(k) = log p(x_1..t, s_t = k), and log p(x) (N,).
    """
    trans = np.exp(log_trans)
    log_alpha = np.empty_like(log_emit)
    log_alpha[:, 0] = log_start + log_emit[:, 0]
    for t in range(1, log_emit.shape[1]):
        prev = log_alpha[:, t - 1]
        top = prev.max(axis=1, keepdims=True)  # (N, 1): Σ_i exp(prev − top) A_ij is ≥ tiny
        log_alpha[:, t] = top + _log(np.exp(prev - top) @ trans) + log_emit[:, t]
    return log_alpha, logsumexp(log_alpha[:, -1], axis=1)


def forward_backward(
    log_start: np.ndarray,
    log_trans: np.ndarray,
    log_emit: np.ndarray,
    valid: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Forward–backward in log space (Rabiner 1989, §III.C; Bishop 2006, §13.2.2).

    Arguments:
        as :func:`forward`; valid: (N, T) bool, False at padded steps, whose transitions
            are left out of the expected counts (None: every step is real).

    Returns:
        log p(x) (N,), posterior marginals γ (N, T, K) and the expected transition counts
        Σ_n Σ_t ξ_t(i, j), (K, K).
    """
    _, t_len, k = log_emit.shape
    log_alpha, loglik = forward(log_start, log_trans, log_emit)
    trans = np.exp(log_trans)
    log_beta = np.zeros_like(log_emit)
    xi = np.zeros((k, k))
    for t in range(t_len - 2, -1, -1):
        after = log_emit[:, t + 1] + log_beta[:, t + 1]  # (N, K)
        b_top = after.max(axis=1, keepdims=True)
        q = np.exp(after - b_top)
        log_beta[:, t] = b_top + _log(q @ trans.T)
        # ξ_t(i, j) = α_t(i) A_ij e_t+1(j) β_t+1(j) / p(x), scaled per sequence by its maxima
        a_top = log_alpha[:, t].max(axis=1, keepdims=True)
        p = np.exp(log_alpha[:, t] - a_top)
        weight = np.exp(a_top[:, 0] + b_top[:, 0] - loglik)  # (N,)
        if valid is not None:
            weight = weight * valid[:, t + 1]
        xi += trans * ((p * weight[:, None]).T @ q)
    gamma = np.exp(log_alpha + log_beta - loglik[:, None, None])
    return loglik, gamma, xi


def viterbi_path(log_start: np.ndarray, log_trans: np.ndarray, log_emit: np.ndarray) -> np.ndarray:
    """The most probable state path of each sequence, (N, T) int64 (max-product)."""
    n, t_len, k = log_emit.shape
    delta = log_start + log_emit[:, 0]  # (N, K)
    back = np.zeros((n, t_len, k), dtype=np.int64)
    for t in range(1, t_len):
        cand = delta[:, :, None] + log_trans  # (N, K_from, K_to)
        back[:, t] = cand.argmax(axis=1)
        delta = cand.max(axis=1) + log_emit[:, t]
    path = np.empty((n, t_len), dtype=np.int64)
    path[:, -1] = delta.argmax(axis=1)
    rows = np.arange(n)
    for t in range(t_len - 1, 0, -1):
        path[:, t - 1] = back[rows, t, path[:, t]]
    return path


def backward_sample(
    log_start: np.ndarray,
    log_trans: np.ndarray,
    log_emit: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """State paths (N, T) drawn from p(s | x) by forward filtering, backward sampling."""
    log_alpha, _ = forward(log_start, log_trans, log_emit)
    n, t_len, _ = log_emit.shape
    states = np.empty((n, t_len), dtype=np.int64)
    states[:, -1] = sample_categorical(log_alpha[:, -1], rng, log=True)
    for t in range(t_len - 2, -1, -1):
        # p(s_t | s_t+1, x_1..t) ∝ α_t(s_t) A[s_t, s_t+1]
        states[:, t] = sample_categorical(
            log_alpha[:, t] + log_trans[:, states[:, t + 1]].T, rng, log=True
        )
    return states


# --------------------------------------------------------------------------- helpers
def _as_steps(x: np.ndarray) -> np.ndarray:
    """Examples (N, T, ...) as steps (N, T, F): the time axis first, the rest flattened."""
    return x.reshape(x.shape[0], x.shape[1], -1)


def _log(p: np.ndarray) -> np.ndarray:
    """log p with 0 as the log of the smallest positive float (products stay finite)."""
    return np.log(np.maximum(p, _TINY))


def _normalise(counts: np.ndarray) -> np.ndarray:
    """Rows along the last axis divided by their totals; an all-zero row becomes uniform."""
    total = counts.sum(axis=-1, keepdims=True)
    uniform = np.full_like(counts, 1.0 / counts.shape[-1])
    return np.where(total > 0, counts / np.maximum(total, _TINY), uniform)


def _log_dirichlet_norm(cells: int, alpha: float) -> float:
    """log of the normaliser of a Dirichlet(α + 1, …) density over ``cells`` cells."""
    return float(gammaln(cells * (alpha + 1)) - cells * gammaln(alpha + 1))


def _log_gauss(z: np.ndarray, means: np.ndarray, cov: np.ndarray, full: bool) -> np.ndarray:
    """log N(z_s; μ_k, Σ_k), shape (S, K), for z (S, F), means (K, F), cov (K, F[, F])."""
    f = z.shape[1]
    if full:
        try:
            chol = np.linalg.cholesky(cov)  # (K, F, F)
        except np.linalg.LinAlgError:
            raise DataError(
                "an hmm state's covariance is singular; raise min_covar or use "
                "covariance_type='diag'"
            ) from None
        diff = z[None] - means[:, None]  # (K, S, F)
        y = np.linalg.solve(chol, diff.transpose(0, 2, 1))  # L⁻¹ (z − μ), (K, F, S)
        maha = (y * y).sum(axis=1)  # (K, S)
        log_det = 2 * np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(axis=1)
        return (-0.5 * (f * _LOG_2PI + log_det[:, None] + maha)).T
    if np.any(cov <= 0):
        raise DataError("an hmm state has zero variance; raise min_covar")
    inv = 1.0 / cov  # (K, F)
    maha = (z * z) @ inv.T - 2 * z @ (means * inv).T + (means * means * inv).sum(axis=1)
    log_det = np.log(cov).sum(axis=1)
    return -0.5 * (f * _LOG_2PI + log_det + np.maximum(maha, 0.0))


def _gauss_m_step(
    z: np.ndarray, w: np.ndarray, full: bool, smooth: float
) -> tuple[np.ndarray, np.ndarray]:
    """Means (K, F) and covariances (K, F[, F]) of steps z (S, F) weighted by w (S, K); a
    state without weight gets the standardised data's unit variance."""
    nk = w.sum(axis=0)  # (K,)
    means = (w.T @ z) / (nk[:, None] + _EPS)
    f = z.shape[1]
    covs = []
    for k in range(w.shape[1]):
        diff = z - means[k]  # (S, F): not E[z²] − μ², which cancels
        if full:
            c = (w[:, k, None] * diff).T @ diff / (nk[k] + _EPS) + smooth * np.eye(f)
            covs.append(c if nk[k] > _EPS else np.eye(f))
        else:
            c = (w[:, k] @ (diff * diff)) / (nk[k] + _EPS) + smooth
            covs.append(c if nk[k] > _EPS else np.ones(f))
    return means, np.stack(covs)


def _initial_posteriors(
    features: np.ndarray, n: int, t_len: int, k: int, init: str, seed: np.random.SeedSequence
) -> tuple[np.ndarray, np.ndarray]:
    """Initial (γ (N, T, K), ξ (K, K)) from the steps' features (S, F'): each step softly
    assigned to its nearest k-means++ centre (0.9 on it, the rest spread), or random."""
    rs = np.random.RandomState(seed.generate_state(1)[0])
    if init == "random":
        gamma = rs.uniform(size=(n * t_len, k))
        gamma /= gamma.sum(axis=1, keepdims=True)
    else:
        centres, _ = kmeans_plusplus(features, k, random_state=rs)
        dist = (features * features).sum(1)[:, None] - 2 * features @ centres.T
        nearest = (dist + (centres * centres).sum(1)).argmin(axis=1)
        gamma = np.full((n * t_len, k), 0.1 / k)
        gamma[np.arange(n * t_len), nearest] += 0.9
    gamma = gamma.reshape(n, t_len, k)
    # expected transitions of independent soft assignments: every count positive
    xi = np.einsum("nti,ntj->ij", gamma[:, :-1], gamma[:, 1:])
    return gamma, xi
