"""Hidden Markov models of fixed-length sequences, fitted by Baum–Welch EM."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import torch
from scipy.special import gammaln, logsumexp, softmax
from sklearn.cluster import kmeans_plusplus

from ptheta.data.spec import DataSpec, check_values, location_scale
from ptheta.errors import DataError, ParameterError
from ptheta.models.base import GenerativeModel
from ptheta.models.em import Params, run_em
from ptheta.models.missing import missing_patterns, one_hot
from ptheta.models.mixtures import _conditional_gaussians
from ptheta.models.sampling import sample_categorical
from ptheta.params import Choice, Float, Int, Param, Seed

_TINY = np.finfo(np.float64).tiny
_EPS = 10 * np.finfo(np.float64).eps
_LOG_2PI = math.log(2 * math.pi)
# What ``fit(X, initial=...)`` accepts per emission, in the order of EM's parameter tuple.
_INITIAL_KEYS = {
    "categorical": ("startprob", "transmat", "emissionprob"),
    "gaussian": ("startprob", "transmat", "means", "covars"),
    "gmm": ("startprob", "transmat", "weights", "means", "covars"),
}


class HMM(GenerativeModel):
    """Hidden Markov model p(x) = Σ_s π_{s_1} ∏_{t>1} A_{s_{t-1} s_t} ∏_t p(x_t | s_t).

    **Data.** Each example is one sequence with the time axis first in its event shape:
    (T,) or (T, F, ...), the trailing axes flattened into F features per step. The K
    hidden states follow one homogeneous Markov chain (start probabilities π, transition
    matrix A); given its state, a step's F features are emitted by

    - ``emission="categorical"`` (binary or categorical data with L levels): independent
      categorical features, ``emissionprob_[k, f, l]`` = p(x_t,f = l | s_t = k). On binary
      data (L = 2) this *is* the Bernoulli HMM, p(x_t | k) = ∏_f μ_kf^x (1 − μ_kf)^(1−x)
      with μ = ``emissionprob_[:, :, 1]``: the same model and the same EM (as
      ``bernoulli-mixture`` is ``categorical-mixture`` with L = 2), so it needs no emission
      name of its own; ``"auto"`` picks it for binary data;
    - ``emission="gaussian"`` (continuous data): N(μ_k, Σ_k) with ``covariance_type``
      ``"diag"`` or ``"full"``;
    - ``emission="gmm"`` (continuous data): a Gaussian mixture per state,
      p(x_t | k) = Σ_m w_km N(μ_km, Σ_km) with ``n_mix`` components M (``weights_`` (K, M),
      ``means_`` (K, M, F), ``covars_`` (K, M, F) or (K, M, F, F)). ``n_mix=1`` is the
      Gaussian emission.

    ``"auto"`` picks categorical or Gaussian by the data's kind. A Gaussian (or GMM) on
    discrete data is refused rather than reporting a density as if it were a probability
    (declare the data continuous). Sequences share one length T today; the
    forward–backward code already takes padded steps (an emission factor of one; see
    :func:`forward_backward`) for the variable-length sequence data to come.

    **Fitting.** Baum–Welch (EM): the E-step is the forward–backward recursion over a
    batch of sequences at once (scaled: each step's forward variables normalised to sum to
    one, Rabiner 1989 §V.A, with matrix products over all sequences; a sequence whose
    scale factor underflows is redone in log space), the M-step re-estimates π, A and the
    emissions from the posterior state marginals γ and the expected transition counts ξ,
    driven by :func:`ptheta.models.em.run_em` (``n_init`` restarts, the best objective
    kept). For the GMM emission the E-step's responsibilities are over (state, component),
    γ_t(k) · p(m | k, x_t), and the M-step is a weighted GMM M-step per state. ``alpha``
    is a Dirichlet pseudo-count on π, every row of A, every categorical emission row and
    every state's mixture weights (MAP-EM under Dirichlet(α + 1) priors, as in
    :class:`CategoricalMixture <ptheta.models.mixtures.CategoricalMixture>`). Gaussian
    EM runs on standardised features z = (x − shift_) / scale_ (per feature, over every
    step), and ``min_covar`` is added to each covariance there (units of each feature's
    variance): exactly the M-step of the smoothed objective E_ε log N(z + ε),
    ε ~ N(0, min_covar·I), per Gaussian, as in :class:`GaussianMixture
    <ptheta.models.mixtures.GaussianMixture>`. ``history_`` records per step the mean
    ``objective`` per sequence (log-likelihood, smoothed, plus log prior), which EM never
    lowers, and the plain mean ``log_likelihood`` (monotone too when ``alpha = 0`` and
    ``min_covar = 0``). Every number is in data units (nats per sequence; densities
    include the Jacobian −Σ log scale_).

    **Starting values.** ``fit(X, initial={...})`` starts EM from given parameters, in
    data units and with the fitted attributes' shapes: ``"startprob"`` (K,),
    ``"transmat"`` (K, K), and ``"emissionprob"`` (categorical), ``"means"`` and
    ``"covars"`` (Gaussian), or ``"weights"``, ``"means"`` and ``"covars"`` (GMM). Any
    part not given comes from ``init``, so ``initial={"transmat": A}`` fixes only the
    start of A. The first recorded objective is that of the given parameters; the same
    data, ``initial`` and ``max_iter`` give the same EM steps as any other
    implementation of Baum–Welch (``bench/hmm_vs_peers.py`` uses it).

    **Missing data.** NaN entries are marginalised exactly: a missing feature drops out of
    its step's emission factor (of every mixture component's Gaussian, for the GMM), and
    a fully missing step has factor one, so ``score_samples`` is the exact
    log p(x_observed) by the forward recursion. ``impute(method="sample")`` and
    ``sample(given=...)`` draw the states by forward filtering, backward sampling, then
    (GMM) a component from p(m | k, x_t,observed), then the missing entries from their
    Gaussian given the observed features of the step: exact conditional samples.
    ``impute(method="mode")`` fills each missing entry with its most probable level under
    p(x_t,f | x_obs) = Σ_k γ_t(k) p(x_t,f | k) (entry by entry), or, for Gaussians and
    GMMs, with the conditional *mean* E[x_t,f | x_obs].

    **States.** :meth:`viterbi` gives the most probable state path (N, T) and
    :meth:`posterior_states` the marginals p(s_t = k | x) (N, T, K). They are not called
    ``predict`` / ``predict_proba``: those names make a model a classifier of x for
    scikit-learn (``capabilities().classifies``), and an HMM labels steps, not examples.
    ``embed(X)`` is the expected fraction of time in each state, the mean of the posterior
    marginals over steps (N, K): one fixed-size vector per sequence whatever its length.
    To classify whole sequences, fit one HMM per class:
    ``make("bayes-classifier", density="hmm", density_params={...})`` (Bayes' rule).

    Arguments:
        n_states: number of hidden states K.
        emission: ``"auto"``, ``"categorical"``, ``"gaussian"`` or ``"gmm"`` (see above).
        covariance_type: ``"diag"`` (F) or ``"full"`` (F, F) covariance of each Gaussian.
        n_mix: mixture components per state of the ``"gmm"`` emission (unused otherwise).
        n_init: number of initialisations; the one with the best objective is kept.
        max_iter: EM iterations per initialisation.
        tol: stop when the mean objective per sequence improves by less than this.
        init: ``"kmeans"`` (k-means++ centres of the steps, then a soft assignment of each
            step to its nearest centre; for the GMM, k-means++ again within each state)
            or ``"random"`` (random posteriors).
        min_covar: variance added to every Gaussian covariance of the standardised data.
        alpha: Dirichlet pseudo-count on start, transition, categorical emission and
            mixture-weight probabilities; 0 is maximum likelihood.
        random_state: seed of the initialisation: an integer, or None for fresh randomness
            (see :class:`~ptheta.params.Seed`).
        verbose: 1 shows a progress bar.

    Returns:
        ``fit`` returns the model. Fitted attributes: ``startprob_`` (K,), ``transmat_``
        (K, K), ``emission_`` (the emission used), ``emissionprob_`` (K, F, L) or
        ``means_`` (K, F) and ``covars_`` (K, F) / (K, F, F), or ``weights_`` (K, M),
        ``means_`` (K, M, F) and ``covars_`` (K, M, F) / (K, M, F, F), in data units with
        ``shift_``, ``scale_`` (F,); ``converged_``, ``n_iter_``, ``history_``,
        ``best_init_``.

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
        >>> rng = np.random.default_rng(0)
        >>> z = rng.normal(size=(40, 5, 2)) + 5 * rng.integers(0, 2, size=(40, 5, 1))
        >>> g = ptheta.make("hmm", n_states=2, emission="gmm", n_mix=2).fit(z)
        >>> g.weights_.shape, g.means_.shape, g.covars_.shape
        ((2, 2), (2, 2, 2), (2, 2, 2))

    References:
        Rabiner (1989), A tutorial on hidden Markov models and selected applications in
        speech recognition, Proc. IEEE 77(2) (GMM emissions: §IV.A; scaling: §V.A);
        Bishop (2006), Pattern Recognition and Machine Learning, §13.2; Baum, Petrie,
        Soules & Weiss (1970); Juang, Levinson & Sondhi (1986) for mixture emissions;
        Früwirth-Schnatter (1994) for forward filtering, backward sampling.
    """

    name: ClassVar[str] = "hmm"
    family: ClassVar[str] = "latent sequence"
    likelihood: ClassVar[str] = "exact"
    data_kinds: ClassVar[tuple[str, ...]] = ("binary", "categorical", "continuous")
    can_marginalise: ClassVar[bool] = True
    abilities: ClassVar[dict[str, Any]] = {"needs_sequence": True, "embeds": True}
    fit_params: ClassVar[tuple[str, ...]] = ("initial",)
    quick_params: ClassVar[dict[str, Any]] = {"n_states": 2, "max_iter": 30, "random_state": 0}
    parameters: ClassVar[dict[str, Param]] = {
        "n_states": Int(low=1),
        "emission": Choice("auto", "categorical", "gaussian", "gmm"),
        "covariance_type": Choice("diag", "full"),
        "n_mix": Int(low=1),
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
        n_mix: int = 2,
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
        self.n_mix = n_mix
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
        if self.emission in ("gaussian", "gmm") and spec.is_discrete:
            raise DataError(
                f"hmm: emission={self.emission!r} on {spec.kind} data would report a density "
                "as a probability; use emission='categorical' (or 'auto'), or declare the data "
                "continuous (--kind continuous, or kind='continuous' in Python)"
            )
        return self.emission

    def _fit(
        self, x: np.ndarray, y: Any, spec: DataSpec, initial: Mapping[str, Any] | None = None
    ) -> None:
        x3 = _as_steps(x)  # (N, T, F)
        n, t_len, f = x3.shape
        steps = x3.transpose(1, 0, 2).reshape(t_len * n, f)  # (S, F), time-major: S = T·N
        k = int(self.n_states)
        emission = self._emission_for(spec)
        n_mix = int(self.n_mix) if emission == "gmm" else 1
        if k * n_mix > n * t_len:
            what = f"n_states={k}" + (f" × n_mix={n_mix}" if n_mix > 1 else "")
            raise DataError(
                f"{what} is more than the {n * t_len} steps of the training data; "
                "use fewer states (or components) or more data"
            )
        alpha = float(self.alpha)
        full = self.covariance_type == "full"
        smooth = float(self.min_covar)
        # log-normaliser of the Dirichlet(α + 1) priors on π and every row of A
        log_norm = (k + 1) * _log_dirichlet_norm(k, alpha)
        if emission == "categorical":
            levels = int(spec.n_categories)
            # each entry's index into the (F·L) emission table: gathers, not a one-hot (S, F·L)
            codes = steps.astype(np.intp) + levels * np.arange(f)  # (S, F)
            flat_codes = codes.ravel()  # (S·F,), step-major
            log_norm += k * f * _log_dirichlet_norm(levels, alpha)
            shift, scale = np.zeros(f), np.ones(f)
            jacobian = 0.0
        else:
            shift, scale = location_scale(steps)
            z = (steps - shift) / scale  # (S, F) standardised steps
            jacobian = -t_len * float(np.log(scale).sum())  # per sequence
            log_norm += k * _log_dirichlet_norm(n_mix, alpha)
        given = _check_initial(initial, emission, k, f, n_mix, full, spec, shift, scale)
        n_params = 3 if emission == "categorical" else 5  # EM's tuple: π, A, the emission's
        # the recursions' work arrays, kept across EM steps (γ lives in ``buffers``)
        buffers: dict[str, np.ndarray] = {}
        plain_buffers: dict[str, np.ndarray] = {}

        def log_emission(
            params: tuple[np.ndarray, ...],
        ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
            """(T, N, K) log emission factors, plain and those EM maximises (smoothed), and
            for the GMM the components' posteriors p(m | k, x_t) (S, K, M) under the latter."""
            if emission == "categorical":
                table = np.ascontiguousarray(_log(params[2]).reshape(k, -1).T)  # (F·L, K)
                plain = _buffer(buffers, "log_emit", (t_len * n, k))
                np.take(table, codes[:, 0], axis=0, out=plain)
                for j in range(1, f):
                    plain += table[codes[:, j]]
                plain = plain.reshape(t_len, n, k)
                return plain, plain, None
            log_w, means, cov = _log(params[2]), params[3], params[4]
            dens = _log_gauss(z, means.reshape(k * n_mix, f), _flat(cov, k * n_mix), full)
            dens = dens.reshape(-1, k, n_mix)  # (S, K, M)
            smoothed_dens = dens
            if smooth > 0:
                trace_prec = (
                    np.trace(np.linalg.inv(cov), axis1=2, axis2=3) if full else (1 / cov).sum(2)
                )  # (K, M)
                smoothed_dens = dens - 0.5 * smooth * trace_prec
            if n_mix == 1:
                plain, smoothed, resp = dens[:, :, 0], smoothed_dens[:, :, 0], None
            else:
                joint = smoothed_dens + log_w  # (S, K, M)
                smoothed = _logsumexp_last(joint)
                resp = np.exp(joint - smoothed[:, :, None])
                plain = smoothed if smooth == 0 else _logsumexp_last(dens + log_w)
            shape = (t_len, n, k)
            plain = plain.reshape(shape)
            return plain, plain if smooth == 0 else smoothed.reshape(shape), resp

        def e_step(torch_params: Params) -> tuple[float, float, Any]:
            params = tuple(p.numpy() for p in torch_params)
            log_start, log_trans = _log(params[0]), _log(params[1])
            plain, smoothed, resp = log_emission(params)
            ll_obj, gamma, xi = _forward_backward_time_major(
                log_start, log_trans, smoothed, buffers=buffers
            )
            if smoothed is plain:
                ll = ll_obj
            else:  # the plain log-likelihood, recorded next to the objective
                ll = _loglik_time_major(log_start, log_trans, plain, plain_buffers)
            ll, ll_obj = ll + jacobian, ll_obj + jacobian
            # the emission's own Dirichlet prior: categorical rows, or mixture weights
            log_prior = log_norm + alpha * float(
                log_start.sum() + log_trans.sum() + _log(params[2]).sum()
            )
            objective = (float(ll_obj.sum()) + log_prior) / n
            return objective, float(ll.mean()), (gamma, xi, resp)

        def m_step_arrays(posteriors: Any) -> tuple[np.ndarray, ...]:
            gamma, xi, resp = posteriors  # (T, N, K), (K, K), (S, K, M) or None
            start = _normalise(gamma[0].sum(axis=0) + alpha)
            trans = _normalise(xi + alpha)
            w = gamma.reshape(t_len * n, k)  # (S, K)
            if emission == "categorical":
                w_t = np.ascontiguousarray(w.T)  # (K, S)
                counts = np.stack(
                    [
                        np.bincount(flat_codes, np.repeat(w_t[j], f) if f > 1 else w_t[j],
                                    minlength=f * levels)
                        for j in range(k)
                    ]
                ).reshape(k, f, levels) + alpha  # fmt: skip
                return start, trans, _normalise(counts)
            q = w[:, :, None] if resp is None else w[:, :, None] * resp  # (S, K, M)
            weights = _normalise(q.sum(axis=0) + alpha)  # (K, M)
            means, cov = _gauss_m_step(z, q.reshape(-1, k * n_mix), full, smooth)
            means = means.reshape(k, n_mix, f)
            return start, trans, weights, means, cov.reshape(k, n_mix, *cov.shape[1:])

        def m_step(posteriors: Any) -> Params:
            return _as_params(m_step_arrays(posteriors))

        def init(seed: np.random.SeedSequence) -> Params:
            if len(given) == n_params:  # every part given: nothing to initialise
                return _as_params(tuple(given[i] for i in range(n_params)))
            features = one_hot(steps, levels) if emission == "categorical" else z  # (S, F')
            post = _initial_posteriors(features, n, t_len, k, n_mix, self.init, seed)
            params = list(m_step_arrays(post))
            for i, value in given.items():
                params[i] = value
            return _as_params(tuple(params))

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
            means = params[3] * scale + shift  # (K, M, F)
            covars = params[4] * (np.outer(scale, scale) if full else scale**2)
            if emission == "gmm":
                self.weights_, self.means_, self.covars_ = params[2], means, covars
            else:
                self.means_, self.covars_ = means[:, 0], covars[:, 0]
        self.converged_ = result.converged
        self.n_iter_ = result.n_iter
        self.history_ = result.history
        self.best_init_ = result.best_init

    # ----------------------------------------------------------------- inference
    def _components(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The emission Gaussians in data units, one mixture per state: log weights
        (K, M), means (K, M, F) and covariances (K, M, F[, F]); M = 1 for ``"gaussian"``."""
        if self.emission_ == "gmm":
            return _log(self.weights_), self.means_, self.covars_
        k = len(self.startprob_)
        return np.zeros((k, 1)), self.means_[:, None], self.covars_[:, None]

    def _component_log_density(self, flat: np.ndarray) -> np.ndarray:
        """log N(x_s,observed; μ_km, Σ_km) of steps ``flat`` (S, F), shape (S, K, M), in data
        units; a missing feature drops out of every component (a fully missing step: 0)."""
        full = self.covariance_type == "full"
        _, means, cov = self._components()
        k, m, f = means.shape
        z = (flat - self.shift_) / self.scale_
        means = ((means - self.shift_) / self.scale_).reshape(k * m, f)
        cov = _flat(cov / (np.outer(self.scale_, self.scale_) if full else self.scale_**2), k * m)
        log_scale = np.log(self.scale_)
        out = np.zeros((len(flat), k, m))
        for rows, obs in missing_patterns(flat):
            if obs.any():
                c = cov[:, obs][:, :, obs] if full else cov[:, obs]
                dens = _log_gauss(z[np.ix_(rows, obs)], means[:, obs], c, full)
                out[rows] = dens.reshape(-1, k, m) - log_scale[obs].sum()
        return out

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
        dens = self._component_log_density(flat)  # (S, K, M)
        if dens.shape[2] == 1:
            return dens[:, :, 0].reshape(n, t_len, k)
        return logsumexp(dens + self._components()[0], axis=2).reshape(n, t_len, k)

    def _steps(self, X: Any) -> np.ndarray:
        """Checked examples (NaN allowed) as (N, T, F) float64 steps."""
        self._check_fitted()
        x = check_values(X, self.fitted_spec, allow_nan=True)
        return _as_steps(np.asarray(x, dtype=np.float64))

    def _logs(self) -> tuple[np.ndarray, np.ndarray]:
        return _log(self.startprob_), _log(self.transmat_)

    def _score_samples(self, x: np.ndarray) -> np.ndarray:
        x3 = _as_steps(np.asarray(x, dtype=np.float64))
        log_emit = np.ascontiguousarray(self._log_emission(x3).transpose(1, 0, 2))
        return _loglik_time_major(*self._logs(), log_emit)

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
    def _component_posterior(self, states: np.ndarray, flat: np.ndarray) -> np.ndarray:
        """p(m | s_t = k, x_t,observed) of steps ``flat`` (S, F) in the given states (S,),
        shape (S, M): the mixture weights updated by the step's observed features."""
        log_w = self._components()[0]
        dens = self._component_log_density(flat)[np.arange(len(flat)), states]  # (S, M)
        return softmax(log_w[states] + dens, axis=1)

    def _emit(
        self, states: np.ndarray, rng: np.random.Generator, given: np.ndarray | None = None
    ) -> np.ndarray:
        """Emissions (S, F) of states (S,); with ``given`` (S, F), only its NaN entries are
        drawn, from the emission conditioned on the step's observed features."""
        if self.emission_ == "categorical":
            drawn = sample_categorical(self.emissionprob_[states], rng).astype(np.float64)
            return drawn if given is None else np.where(np.isnan(given), drawn, given)
        log_w, means, cov = self._components()
        k, m, f = means.shape
        if given is None:
            weights = np.exp(log_w[states])
        else:
            weights = self._component_posterior(states, given)
        comp = states * m + (sample_categorical(weights, rng) if m > 1 else 0)  # (S,)
        means, cov = means.reshape(k * m, f), _flat(cov, k * m)
        if self.covariance_type == "full" and given is not None:
            return self._conditional_fill(comp, given, "sample", rng)
        noise = rng.standard_normal((len(comp), f))
        if self.covariance_type == "diag":  # given a component, features are independent
            drawn = means[comp] + np.sqrt(cov[comp]) * noise
        else:
            drawn = means[comp] + np.einsum("sij,sj->si", np.linalg.cholesky(cov)[comp], noise)
        return drawn if given is None else np.where(np.isnan(given), drawn, given)

    def _conditional_fill(
        self, comp: np.ndarray, given: np.ndarray, method: str, rng: np.random.Generator
    ) -> np.ndarray:
        """Full covariance: the missing features of each step (S, F) drawn from (or, with
        ``method="mean"``, the mean of) N(x_M | x_O) of its Gaussian ``comp`` (S,), an
        index into the (K·M) emission Gaussians."""
        _, means, cov = self._components()
        k, m, f = means.shape
        means, cov = means.reshape(k * m, f), _flat(cov, k * m)
        out = given.copy()
        for rows, obs in missing_patterns(given):
            if obs.all():
                continue
            mean, chol = _conditional_gaussians(means, cov, given[np.ix_(rows, obs)], obs)
            c = comp[rows]  # mean (R, K·M, |M|), chol (K·M, |M|, |M|)
            fill = mean[np.arange(len(rows)), c]
            if method == "sample":
                noise = rng.standard_normal(fill.shape)
                fill = fill + np.einsum("rij,rj->ri", chol[c], noise)
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
            return np.where(np.isnan(flat), fill, flat).reshape(x.shape)
        # p(k, m | x_obs) = γ_t(k) p(m | k, x_t,obs), then Σ_km p(k, m | x_obs) E[x_M | x_O, k, m]
        log_w, means, _ = self._components()
        k, m, _ = means.shape
        dens = self._component_log_density(flat) + log_w  # (S, K, M)
        joint = (gamma[:, :, None] * softmax(dens, axis=2)).reshape(-1, k * m)  # (S, K·M)
        if self.covariance_type == "diag":
            fill = joint @ means.reshape(k * m, f)  # given (k, m), features are independent
        else:
            fill = np.zeros_like(flat)
            for c in range(k * m):
                cond = self._conditional_fill(np.full(len(flat), c), flat, "mean", rng)
                fill += joint[:, c : c + 1] * cond
        return np.where(np.isnan(flat), fill, flat).reshape(x.shape)

    # ----------------------------------------------------------------- contract
    def _n_parameters(self) -> int:
        k = len(self.startprob_)
        free = (k - 1) + k * (k - 1)
        if self.emission_ == "categorical":
            _, f, levels = self.emissionprob_.shape
            return free + k * f * (levels - 1)
        _, means, _ = self._components()
        m, f = means.shape[1:]
        cov = f * (f + 1) // 2 if self.covariance_type == "full" else f
        return free + k * ((m - 1) + m * (f + cov))

    def _expected_shapes(self, spec: DataSpec) -> dict[str, tuple[int, ...]]:
        k = int(self.n_states)
        f = math.prod(spec.event_shape[1:])
        shapes: dict[str, tuple[int, ...]] = {"startprob_": (k,), "transmat_": (k, k)}
        emission = self._emission_for(spec)
        if emission == "categorical":
            shapes["emissionprob_"] = (k, f, int(spec.n_categories))
            return shapes
        cov = (f, f) if self.covariance_type == "full" else (f,)
        shapes |= {"shift_": (f,), "scale_": (f,)}
        if emission == "gmm":
            m = int(self.n_mix)
            return shapes | {"weights_": (k, m), "means_": (k, m, f), "covars_": (k, m, *cov)}
        return shapes | {"means_": (k, f), "covars_": (k, *cov)}

    def _required_attributes(self) -> tuple[str, ...]:
        return ("emission_", "startprob_", "transmat_")


# --------------------------------------------------------------------------- recursions
# The forward–backward recursions run on scaled probabilities (Rabiner 1989, §V.A): each
# step's forward variables are normalised to sum to one over the states, and the
# normaliser c_t = p(x_t | x_1..t−1) is kept, so log p(x) = Σ_t log c_t. A step is one
# (N, K) @ (K, K) product for every sequence at once, on time-major (T, N, K) arrays
# (each step contiguous). Each step's emission factors are divided by their largest
# before exponentiating (and the shift added back to log c). Where some c_t underflows
# (the data follow a path the model makes all but impossible), that sequence is redone
# by the log-space recursions, which never underflow.


def forward(
    log_start: np.ndarray, log_trans: np.ndarray, log_emit: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The forward recursion over a batch of sequences.

    Arguments:
        log_start: (K,) log π; log_trans: (K, K) log A; log_emit: (N, T, K) log emission
            factors. A padded step (after a sequence's end) has factor one (log 0): rows of
            A sum to one, so trailing padding leaves the likelihood exact.

    Returns:
        log α (N, T, K), log α_t(k) = log p(x_1..t, s_t = k) (floored at e^−708 times the
        step's total, where the scaled α underflows), and log p(x) (N,).
    """
    log_emit_t = np.ascontiguousarray(log_emit.transpose(1, 0, 2))
    _, alpha, _, log_scale, bad = _scaled_forward(log_start, np.exp(log_trans), log_emit_t)
    with np.errstate(invalid="ignore"):
        log_alpha = _log(alpha) + np.cumsum(log_scale, axis=0)[:, :, None]
    log_alpha = log_alpha.transpose(1, 0, 2)
    loglik = log_scale.sum(axis=0)
    if bad.any():
        log_alpha[bad], loglik[bad] = _forward_log(log_start, log_trans, log_emit[bad])
    return log_alpha, loglik


def forward_backward(
    log_start: np.ndarray,
    log_trans: np.ndarray,
    log_emit: np.ndarray,
    valid: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Forward–backward (Rabiner 1989, §III.C and §V.A; Bishop 2006, §13.2.2).

    Arguments:
        as :func:`forward`; valid: (N, T) bool, False at padded steps, whose transitions
            are left out of the expected counts (None: every step is real).

    Returns:
        log p(x) (N,), posterior marginals γ (N, T, K) and the expected transition counts
        Σ_n Σ_t ξ_t(i, j), (K, K).
    """
    log_emit_t = np.ascontiguousarray(log_emit.transpose(1, 0, 2))
    valid_t = None if valid is None else valid.T
    loglik, gamma, xi = _forward_backward_time_major(log_start, log_trans, log_emit_t, valid_t)
    return loglik, gamma.transpose(1, 0, 2), xi


def _forward_backward_time_major(
    log_start: np.ndarray,
    log_trans: np.ndarray,
    log_emit: np.ndarray,
    valid: np.ndarray | None = None,
    buffers: dict[str, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`forward_backward` on time-major log emission factors (T, N, K) and
    ``valid`` (T, N); γ comes back time-major too, (T, N, K). With ``buffers`` (a dict kept
    between calls, as EM does), the large work arrays are reused: γ is then valid only
    until the next call."""
    t_len, n, k = log_emit.shape
    trans = np.exp(log_trans)
    emit, alpha, scale, log_scale, bad = _scaled_forward(log_start, trans, log_emit, buffers)
    beta = _buffer(buffers, "beta", alpha.shape)
    beta[-1] = 1.0
    # after_t+1 = e_t+1 β̂_t+1 / c_t+1, so that β̂_t = A after_t+1 and
    # ξ_t(i, j) = α̂_t(i) A_ij after_t+1(j); γ_t = α̂_t β̂_t sums to one over the states
    after = _buffer(buffers, "after", (t_len - 1, n, k))
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        inverse = 1.0 / scale[1:, :, None]  # (T − 1, N, 1)
        for t in range(t_len - 2, -1, -1):
            np.multiply(emit[t + 1], beta[t + 1], out=after[t])
            after[t] *= inverse[t]
            np.matmul(after[t], trans.T, out=beta[t])
    loglik = log_scale.sum(axis=0)
    if valid is not None:
        after *= valid[1:, :, None]
    if bad.any():
        alpha[:, bad] = beta[:, bad] = after[:, bad] = 0.0
    xi = trans * (alpha[:-1].reshape(-1, k).T @ after.reshape(-1, k))
    gamma = np.multiply(alpha, beta, out=alpha)  # (T, N, K)
    if bad.any():
        valid_bad = None if valid is None else valid[:, bad].T
        ll_bad, gamma_bad, xi_bad = _forward_backward_log(
            log_start, log_trans, log_emit[:, bad].transpose(1, 0, 2), valid_bad
        )
        loglik[bad], gamma[:, bad] = ll_bad, gamma_bad.transpose(1, 0, 2)
        xi += xi_bad
    return loglik, gamma, xi


def _loglik_time_major(
    log_start: np.ndarray,
    log_trans: np.ndarray,
    log_emit: np.ndarray,
    buffers: dict[str, np.ndarray] | None = None,
) -> np.ndarray:
    """log p(x) (N,) of time-major log emission factors (T, N, K) by the forward pass."""
    log_scale, bad = _scaled_forward(log_start, np.exp(log_trans), log_emit, buffers)[3:]
    loglik = log_scale.sum(axis=0)
    if bad.any():
        loglik[bad] = _forward_log(log_start, log_trans, log_emit[:, bad].transpose(1, 0, 2))[1]
    return loglik


def _scaled_forward(
    log_start: np.ndarray,
    trans: np.ndarray,
    log_emit: np.ndarray,
    buffers: dict[str, np.ndarray] | None = None,
) -> tuple[np.ndarray, ...]:
    """The scaled forward pass over time-major log emission factors (T, N, K).

    Returns:
        emission factors e (T, N, K), each step's divided by its largest; the forward
        variables α̂ (T, N, K), normalised over the states; their normalisers c (T, N) in
        the units of e, and log c (T, N) in true units (log p(x_t | x_1..t−1)); and a
        (N,) mask of the sequences where some c underflowed (their α̂ are not to be used).
    """
    t_len, n, k = log_emit.shape
    flat = log_emit.reshape(-1, k)
    shift = flat[:, 0].copy()  # (T·N,): the largest factor of each step, one state at a
    for j in range(1, k):  # time (much faster than a reduction along a short last axis)
        np.maximum(shift, flat[:, j], out=shift)
    emit = _buffer(buffers, "emit", log_emit.shape)  # (T, N, K)
    np.subtract(log_emit, shift.reshape(t_len, n, 1), out=emit)
    np.exp(emit, out=emit)  # at most 1
    alpha = _buffer(buffers, "alpha", log_emit.shape)
    scale = np.empty((t_len, n))
    ones = np.ones(k)
    with np.errstate(divide="ignore", invalid="ignore"):
        a = np.exp(log_start) * emit[0]
        for t in range(t_len):
            if t:
                np.matmul(alpha[t - 1], trans, out=a)
                a *= emit[t]
            np.matmul(a, ones, out=scale[t])
            np.divide(a, scale[t, :, None], out=alpha[t])
        bad = ~(scale >= _TINY).all(axis=0)  # 0, subnormal or NaN: precision lost
        log_scale = np.log(scale) + shift.reshape(t_len, n)
    return emit, alpha, scale, log_scale, bad


def _buffer(buffers: dict[str, np.ndarray] | None, name: str, shape: tuple[int, ...]):
    """An uninitialised float64 array of ``shape``: ``buffers[name]`` where it has that
    shape (reused across EM steps: fresh large arrays cost page faults on every step)."""
    if buffers is None:
        return np.empty(shape)
    if name not in buffers or buffers[name].shape != shape:
        buffers[name] = np.empty(shape)
    return buffers[name]


def _forward_log(
    log_start: np.ndarray, log_trans: np.ndarray, log_emit: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`forward` in log space (the fallback where scaling underflows)."""
    trans = np.exp(log_trans)
    log_alpha = np.empty_like(log_emit)
    log_alpha[:, 0] = log_start + log_emit[:, 0]
    for t in range(1, log_emit.shape[1]):
        prev = log_alpha[:, t - 1]
        top = prev.max(axis=1, keepdims=True)  # (N, 1): Σ_i exp(prev − top) A_ij is ≥ tiny
        log_alpha[:, t] = top + _log(np.exp(prev - top) @ trans) + log_emit[:, t]
    return log_alpha, logsumexp(log_alpha[:, -1], axis=1)


def _forward_backward_log(
    log_start: np.ndarray,
    log_trans: np.ndarray,
    log_emit: np.ndarray,
    valid: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`forward_backward` in log space (the fallback where scaling underflows)."""
    _, t_len, k = log_emit.shape
    log_alpha, loglik = _forward_log(log_start, log_trans, log_emit)
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
def _logsumexp_last(x: np.ndarray) -> np.ndarray:
    """log Σ exp over the last (short) axis of ``x`` (..., M), one slice at a time (a
    reduction along a short last axis is many times slower in numpy)."""
    top = x[..., 0].copy()
    for j in range(1, x.shape[-1]):
        np.maximum(top, x[..., j], out=top)
    total = np.zeros_like(top)
    for j in range(x.shape[-1]):
        total += np.exp(x[..., j] - top)
    return top + np.log(total)


def _as_steps(x: np.ndarray) -> np.ndarray:
    """Examples (N, T, ...) as steps (N, T, F): the time axis first, the rest flattened."""
    return x.reshape(x.shape[0], x.shape[1], -1)


def _as_params(arrays: tuple[np.ndarray, ...]) -> Params:
    return tuple(torch.from_numpy(np.ascontiguousarray(a)) for a in arrays)


def _flat(cov: np.ndarray, c: int) -> np.ndarray:
    """Covariances (K, M, F[, F]) as (K·M, F[, F])."""
    return cov.reshape(c, *cov.shape[2:])


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
    """log N(z_s; μ_c, Σ_c), shape (S, C), for z (S, F), means (C, F), cov (C, F[, F])."""
    f = z.shape[1]
    if full:
        try:
            chol = np.linalg.cholesky(cov)  # (C, F, F)
        except np.linalg.LinAlgError:
            raise DataError(
                "an hmm emission covariance is singular; raise min_covar or use "
                "covariance_type='diag'"
            ) from None
        diff = z[None] - means[:, None]  # (C, S, F)
        y = np.linalg.solve(chol, diff.transpose(0, 2, 1))  # L⁻¹ (z − μ), (C, F, S)
        maha = (y * y).sum(axis=1)  # (C, S)
        log_det = 2 * np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(axis=1)
        return (-0.5 * (f * _LOG_2PI + log_det[:, None] + maha)).T
    if np.any(cov <= 0):
        raise DataError("an hmm emission Gaussian has zero variance; raise min_covar")
    inv = 1.0 / cov  # (C, F)
    out = (z * z) @ inv.T  # (S, C): the Mahalanobis distance, expanded
    out -= 2 * (z @ (means * inv).T)
    out += (means * means * inv).sum(axis=1)
    np.maximum(out, 0.0, out=out)
    out += f * _LOG_2PI + np.log(cov).sum(axis=1)
    out *= -0.5
    return out


def _gauss_m_step(
    z: np.ndarray, w: np.ndarray, full: bool, smooth: float
) -> tuple[np.ndarray, np.ndarray]:
    """Means (C, F) and covariances (C, F[, F]) of steps z (S, F) weighted by w (S, C); a
    Gaussian without weight gets the standardised data's unit variance."""
    nk = w.sum(axis=0)  # (C,)
    means = (w.T @ z) / (nk[:, None] + _EPS)
    f = z.shape[1]
    if not full:
        # E[z²] − μ² by two products; where it cancels (a variance below 1e-6 of μ², so
        # fewer than ~10 digits left) the component is redone from the differences z − μ
        var = (w.T @ (z * z)) / (nk[:, None] + _EPS) - means * means
        for c in np.flatnonzero((var < 1e-6 * means * means).any(axis=1)):
            diff = z - means[c]
            var[c] = (w[:, c] @ (diff * diff)) / (nk[c] + _EPS)
        var = np.maximum(var, 0.0) + smooth
        var[nk <= _EPS] = 1.0
        return means, var
    covs = []
    for c in range(w.shape[1]):
        diff = z - means[c]  # (S, F): not E[zzᵀ] − μμᵀ, which cancels
        cov = (w[:, c, None] * diff).T @ diff / (nk[c] + _EPS) + smooth * np.eye(f)
        covs.append(cov if nk[c] > _EPS else np.eye(f))
    return means, np.stack(covs)


def _initial_posteriors(
    features: np.ndarray,
    n: int,
    t_len: int,
    k: int,
    n_mix: int,
    init: str,
    seed: np.random.SeedSequence,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Initial (γ (T, N, K), ξ (K, K), p(m | k, x_t) (S, K, M) or None when M = 1) from the
    time-major steps' features (S, F'): each step softly assigned to its nearest k-means++
    centre (0.9 on it, the rest spread), and, for M > 1, to the nearest of M k-means++
    centres of the steps nearest to each state; or random."""
    rs = np.random.RandomState(seed.generate_state(1)[0])
    s = n * t_len
    if init == "random":
        gamma = rs.uniform(size=(s, k))
        gamma /= gamma.sum(axis=1, keepdims=True)
        resp = None if n_mix == 1 else rs.uniform(size=(s, k, n_mix))
    else:
        nearest = _nearest(features, kmeans_plusplus(features, k, random_state=rs)[0])
        gamma = np.full((s, k), 0.1 / k)
        gamma[np.arange(s), nearest] += 0.9
        resp = None if n_mix == 1 else np.full((s, k, n_mix), 0.1 / n_mix)
        for state in range(k if n_mix > 1 else 0):
            own = features[nearest == state]
            own = own if len(own) >= n_mix else features
            centres, _ = kmeans_plusplus(own, n_mix, random_state=rs)
            resp[np.arange(s), state, _nearest(features, centres)] += 0.9
    if resp is not None:
        resp /= resp.sum(axis=2, keepdims=True)
    gamma = gamma.reshape(t_len, n, k)
    # expected transitions of independent soft assignments: every count positive
    xi = gamma[:-1].reshape(-1, k).T @ gamma[1:].reshape(-1, k)
    return gamma, xi, resp


def _nearest(features: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """Index of the nearest centre (C, F') of every row of ``features`` (S, F')."""
    dist = (features * features).sum(1)[:, None] - 2 * features @ centres.T
    return (dist + (centres * centres).sum(1)).argmin(axis=1)


def _check_initial(
    initial: Mapping[str, Any] | None,
    emission: str,
    k: int,
    f: int,
    n_mix: int,
    full: bool,
    spec: DataSpec,
    shift: np.ndarray,
    scale: np.ndarray,
) -> dict[int, np.ndarray]:
    """The starting values of ``fit(X, initial=...)``, checked: {index in EM's parameter
    tuple: array in EM's units (standardised for Gaussians; GMM axes for the Gaussian)}."""
    if initial is None:
        return {}
    keys = _INITIAL_KEYS[emission]
    if not isinstance(initial, Mapping) or not set(initial) <= set(keys):
        raise ParameterError(
            f"hmm: initial must be a dict with keys among {', '.join(map(repr, keys))} for "
            f"emission={emission!r}, got {initial!r:.80}"
        )
    cov = (f, f) if full else (f,)
    mix = (n_mix,) if emission == "gmm" else ()
    shapes = {
        "startprob": (k,),
        "transmat": (k, k),
        "emissionprob": (k, f, int(spec.n_categories) if spec.is_discrete else 0),
        "weights": (k, n_mix),
        "means": (k, *mix, f),
        "covars": (k, *mix, *cov),
    }
    out: dict[int, np.ndarray] = {}
    for key, value in initial.items():
        try:
            a = np.array(value, dtype=np.float64)
        except (TypeError, ValueError):
            a = np.full(1, np.nan)
        if a.shape != shapes[key] or not np.isfinite(a).all():
            raise ParameterError(
                f"hmm: initial[{key!r}] must be a finite array of shape {shapes[key]}, got "
                f"shape {a.shape}"
            )
        if key in ("startprob", "transmat", "emissionprob", "weights"):
            if (a < 0).any() or not np.allclose(a.sum(axis=-1), 1.0, rtol=0, atol=1e-6):
                raise ParameterError(
                    f"hmm: initial[{key!r}] must hold probabilities summing to one along "
                    "its last axis"
                )
            a = a / a.sum(axis=-1, keepdims=True)
        elif key == "means":
            a = (a - shift) / scale
        else:  # covariances
            a = a / (np.outer(scale, scale) if full else scale**2)
            definite = (a > 0).all() if not full else _positive_definite(a)
            if not definite:
                what = "symmetric positive definite" if full else "positive"
                raise ParameterError(f"hmm: initial['covars'] must be {what}")
        if emission == "gaussian" and key in ("means", "covars"):
            a = a[:, None]  # one component per state
        out[keys.index(key)] = a
    if emission == "gaussian" and out:  # EM's tuple has the (unit) mixture weights at 2
        out = {i + (i >= 2): a for i, a in out.items()} | {2: np.ones((k, 1))}
    return out


def _positive_definite(cov: np.ndarray) -> bool:
    if not np.allclose(cov, np.swapaxes(cov, -1, -2)):
        return False
    try:
        np.linalg.cholesky(cov)
    except np.linalg.LinAlgError:
        return False
    return True
