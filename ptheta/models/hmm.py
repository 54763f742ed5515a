"""Hidden Markov models of sequences (of one length, or of any length with the end
modelled), fitted by Baum–Welch EM."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
from scipy.special import logsumexp, softmax

from ptheta.data.ragged import check_sequences
from ptheta.data.spec import DataSpec, check_values
from ptheta.data.stream import ArraySource
from ptheta.errors import DataError
from ptheta.models.base import GenerativeModel
from ptheta.models.em import fit_em
from ptheta.models.hmm_em import BaumWelch, _as_steps, _flat, _log_gauss
from ptheta.models.hmm_inference import (
    _log,
    _loglik_time_major,
    backward_sample,
    fold_lengths,
    forward_backward,
    step_masks,
    viterbi_path,
)
from ptheta.models.missing import missing_patterns, one_hot
from ptheta.models.mixtures import _conditional_gaussians
from ptheta.models.sampling import sample_categorical
from ptheta.params import Choice, Float, Int, Param, Seed

# Sampled sequences are cut at this many times the longest training sequence.
_MAX_LENGTH_FACTOR = 10
# Sequences per step of mini-batch EM unless batch_size says otherwise.
_MINIBATCH_SEQUENCES = 64


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
    (declare the data continuous).

    **Variable length.** Fitted on sequences of different lengths (a list of arrays, a
    :class:`~ptheta.data.ragged.Sequences`, a split with lengths), the model adds a
    per-state end probability e_k = p(the sequence stops after this step | s_t = k)
    (``endprob_``), so that a sequence's probability includes its length:

        p(x, L) = Σ_s π_{s_1} ∏_{t<L} b(x_t|s_t) (1 − e_{s_t}) A_{s_t s_t+1} · b(x_L|s_L) e_{s_L}.

    The end events are folded into the emission factors and every step after a
    sequence's end has factor one (:func:`~ptheta.models.hmm_inference.fold_lengths`), so
    the same batched, scaled forward–backward runs on the padded batch; the M-step adds
    e_k = Σ_n γ_{n,L_n}(k) / Σ_n Σ_{t≤L_n} γ_{n,t}(k) (with ``alpha`` as a Beta(α + 1, α + 1)
    pseudo-count, kept in [1e-10, 1 − 1e-10] so that an end never seen in training keeps
    a finite probability). ``sample`` draws the length through the end events and
    returns ``Sequences``; a sequence still going after 10 × the longest training
    sequence is cut there (the cap truncates: it is then shorter than the model says,
    which matters only where the end probabilities are tiny). On ragged input,
    :meth:`posterior_states` (N, T, K) is padded with zeros and :meth:`viterbi` (N, T)
    with −1 after each end (T the longest), both given each sequence's length;
    :meth:`embed` averages over each sequence's own steps. ``n_parameters`` counts the K
    end probabilities. Fixed-length data (one array (N, T, ...)) have no length model:
    p(x) of sequences of that length, as before.

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

    **Batches and mini-batch EM.** The E-step runs on batches of sequences (rows of the
    padded array, ``batch_size`` of them) and sums their expected counts: starts, ξ, ends
    and visits, level counts, or each Gaussian's weight and first and second moments
    about its current mean; the M-step reads the parameters off the sums (under
    ``torchrun`` the sums are all-reduced over the processes' shares of the batches).
    ``em="minibatch"`` is stepwise EM (Cappé & Moulines 2009; Liang & Klein 2009): each
    epoch visits the sequences in a new seeded random order, ``batch_size`` at a time;
    after each batch the running expected counts move to (1 − ρ_t) s + ρ_t ŝ(batch) (ŝ
    scaled to the whole data set; Gaussians' moments merged as sufficient statistics),
    ρ_t = (t + 2)^−α with α = ``step_decay`` ∈ (0.5, 1] and t counting the steps over all
    epochs, and the parameters are their M-step. ``max_iter`` counts epochs; ``history_``
    holds per epoch the mean of the batches' objectives at the parameters of their steps
    (not monotone). With ``initial``, mini-batch EM's first statistics are those of a
    full E-step at the starting values.

    **Starting values.** ``fit(X, initial={...})`` starts EM from given parameters, in
    data units and with the fitted attributes' shapes: ``"startprob"`` (K,),
    ``"transmat"`` (K, K), and ``"emissionprob"`` (categorical), ``"means"`` and
    ``"covars"`` (Gaussian), or ``"weights"``, ``"means"`` and ``"covars"`` (GMM). Any
    part not given comes from ``init``, so ``initial={"transmat": A}`` fixes only the
    start of A. The first recorded objective is that of the given parameters; the same
    data, ``initial`` and ``max_iter`` give the same EM steps as any other
    implementation of Baum–Welch (``bench/hmm_vs_peers.py`` uses it).

    **Missing data.** NaN entries are marginalised exactly: a missing feature drops out of
    its step's emission factor (of every mixture component's Gaussian, for the GMM), and a
    fully missing step has factor one, so ``score_samples`` is the exact log p(x_observed)
    by the forward recursion. ``fit`` takes NaN too (single entries, whole steps, whole
    sequences; fixed or variable length; full or mini-batch EM; with ``initial``):
    Baum–Welch then maximises that observed-data likelihood (plus the log prior), its E-step
    the same forward–backward over the observed features. The M-step of a categorical
    emission counts each level where its feature is observed, normalised by the state's mass
    on those steps (the missing entries' factors sum to one, so they drop out; treating them
    as latent too, whose expected counts γ_t(k) θ_kfl spread the mass over the levels, has
    the same fixed points and converges more slowly). Gaussian and GMM emissions take the
    missing features as latent (Ghahramani & Jordan 1994): per state (and component, whose
    responsibilities come from the observed features) the expected moments E[z | z_O] and
    E[z zᵀ | z_O] = E[z] E[z]ᵀ + Cov[z | z_O] from
    :func:`~ptheta.models.missing.gaussian_conditionals` (diagonal: the missing entry at its
    mean, with its variance). ``min_covar`` smoothing then maximises the observed-data
    likelihood with each Gaussian's factor times exp(−½ min_covar tr Σ⁻¹), the smoothed
    objective with the missing entries integrated out (for the GMM, per component).
    ``shift_`` and ``scale_`` are the mean and spread of each feature's observed values; the
    initialisation (k-means or random posteriors and their M-step) runs on a copy with each
    missing entry at its feature's observed mean (categorical: a missing entry's one-hot
    block is zeros). A feature missing at every step is refused (DataError). The history's
    ``log_likelihood`` (full EM) is the mean of ``score_samples`` at the parameters of that
    step. Data without NaN fit exactly as before. ``impute(method="sample")`` and
    ``sample(given=...)`` draw the states by forward filtering, backward sampling, then
    (GMM) a component from p(m | k, x_t,observed), then the missing entries from their
    Gaussian given the observed features of the step: exact conditional samples.
    ``impute(method="mode")`` fills each missing entry with its most probable level under
    p(x_t,f | x_obs) = Σ_k γ_t(k) p(x_t,f | k) (entry by entry), or, for Gaussians and GMMs,
    with the conditional *mean* E[x_t,f | x_obs].

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
        em: ``"full"`` (Baum–Welch, the E-step summed over batches of sequences) or
            ``"minibatch"`` (stepwise EM, see above).
        batch_size: sequences per batch: of each E-step batch for full EM (None: about 2²²
            values per (T, rows, K) array), of each step for mini-batch EM (None: 64).
        step_decay: α of mini-batch EM's step sizes ρ_t = (t + 2)^−α, in (0.5, 1].
        min_covar: variance added to every Gaussian covariance of the standardised data.
        alpha: Dirichlet pseudo-count on start, transition, categorical emission and
            mixture-weight probabilities; 0 is maximum likelihood.
        random_state: seed of the initialisation: an integer, or None for fresh randomness
            (see :class:`~ptheta.params.Seed`).
        max_time: seconds EM may take (all restarts together; None: no limit): it stops
            after the iteration that passes them, keeps the best run so far and warns.
        verbose: 1 shows a progress bar.

    Returns:
        ``fit`` returns the model. Fitted attributes: ``startprob_`` (K,), ``transmat_``
        (K, K), ``emission_`` (the emission used), ``emissionprob_`` (K, F, L) or
        ``means_`` (K, F) and ``covars_`` (K, F) / (K, F, F), or ``weights_`` (K, M),
        ``means_`` (K, M, F) and ``covars_`` (K, M, F) / (K, M, F, F), in data units with
        ``shift_``, ``scale_`` (F,); ``endprob_`` (K,) for a variable-length fit;
        ``converged_``, ``n_iter_``, ``history_``, ``best_init_``.

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
        >>> gaps = z.copy()
        >>> gaps[::3, 1, 0] = gaps[1::4, 2] = np.nan  # single entries and whole steps
        >>> h = ptheta.make("hmm", n_states=2, covariance_type="full").fit(gaps)
        >>> bool(abs(h.history_[-1]["log_likelihood"] - h.score_samples(gaps).mean()) < 1e-3)
        True

        Sequences of any length: the probabilities of every sequence of lengths 1..4 sum
        to P(L <= 4) < 1.

        >>> seqs = [[0, 0, 1], [1], [0, 1, 1, 1, 0], [1, 1]] * 10
        >>> v = ptheta.make("hmm", n_states=2, random_state=0).fit(seqs)
        >>> v.endprob_.shape, v.viterbi(seqs[:2]).shape  # padded with -1 after each end
        ((2,), (2, 3))
        >>> short = [s for n in range(1, 5) for s in itertools.product([0, 1], repeat=n)]
        >>> p_short = float(np.exp(v.score_samples(short)).sum())
        >>> 0 < p_short < 1
        True
        >>> v.sample(3, random_state=0).lengths.shape
        (3,)

    References:
        Rabiner (1989), A tutorial on hidden Markov models and selected applications in
        speech recognition, Proc. IEEE 77(2) (GMM emissions: §IV.A; scaling: §V.A);
        Bishop (2006), Pattern Recognition and Machine Learning, §13.2; Baum, Petrie,
        Soules & Weiss (1970); Juang, Levinson & Sondhi (1986) for mixture emissions;
        Ghahramani & Jordan (1994), Supervised learning from incomplete data via an EM
        approach, NIPS 6, for the expected moments of Gaussians with missing entries;
        Früwirth-Schnatter (1994) for forward filtering, backward sampling; Cappé &
        Moulines (2009), On-line expectation-maximization algorithm for latent data models,
        JRSS B 71(3), and Liang & Klein (2009), Online EM for unsupervised models, for
        stepwise EM.
    """

    name: ClassVar[str] = "hmm"
    family: ClassVar[str] = "latent sequence"
    likelihood: ClassVar[str] = "exact"
    data_kinds: ClassVar[tuple[str, ...]] = ("binary", "categorical", "continuous")
    can_marginalise: ClassVar[bool] = True
    fits_missing: ClassVar[bool] = True
    abilities: ClassVar[dict[str, Any]] = {
        "needs_sequence": True,
        "embeds": True,
        "variable_length": True,
        "state_path": True,
    }
    fit_params: ClassVar[tuple[str, ...]] = ("initial",)
    quick_params: ClassVar[dict[str, Any]] = {"n_states": 2, "max_iter": 30, "random_state": 0}
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "explorer": {"n_states": 8, "max_iter": 100, "random_state": 0},
        "explorer-quick": {"n_states": 2, "max_iter": 5, "random_state": 0},
    }
    parameters: ClassVar[dict[str, Param]] = {
        "n_states": Int(low=1),
        "emission": Choice("auto", "categorical", "gaussian", "gmm"),
        "covariance_type": Choice("diag", "full"),
        "n_mix": Int(low=1),
        "n_init": Int(low=1),
        "max_iter": Int(low=1),
        "tol": Float(low=0),
        "init": Choice("kmeans", "random"),
        "em": Choice("full", "minibatch"),
        "batch_size": Int(low=1, none=True),
        "step_decay": Float(low=0.5, high=1.0, low_open=True),
        "min_covar": Float(low=0),
        "alpha": Float(low=0),
        "random_state": Seed(),
        "max_time": Float(low=0, low_open=True, none=True),
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
        em: str = "full",
        batch_size: int | None = None,
        step_decay: float = 0.6,
        min_covar: float = 1e-3,
        alpha: float = 0.0,
        random_state: int | None = 0,
        max_time: float | None = None,
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
        self.em = em
        self.batch_size = batch_size
        self.step_decay = step_decay
        self.min_covar = min_covar
        self.alpha = alpha
        self.random_state = random_state
        self.max_time = max_time
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
        self._fit_steps(_as_steps(x), None, spec, initial)

    def _fit_sequences(
        self,
        x: np.ndarray,
        lengths: np.ndarray,
        y: Any,
        spec: DataSpec,
        initial: Mapping[str, Any] | None = None,
    ) -> None:
        self._fit_steps(_as_steps(x.astype(np.float64)), lengths, spec, initial)

    def _fit_steps(
        self,
        x3: np.ndarray,
        lengths: np.ndarray | None,
        spec: DataSpec,
        initial: Mapping[str, Any] | None,
    ) -> None:
        """Baum–Welch on steps x3 (N, T, F): of one length (``lengths`` None, no length
        model), or padded after each end with the end probabilities fitted too."""
        emission = self._emission_for(spec)
        problem = BaumWelch(
            x3, lengths, spec, emission, k=int(self.n_states),
            n_mix=int(self.n_mix) if emission == "gmm" else 1,
            full=self.covariance_type == "full", smooth=float(self.min_covar),
            alpha=float(self.alpha), init=self.init, initial=initial,
        )  # fmt: skip
        default_batch = problem.rows if self.em == "full" else _MINIBATCH_SEQUENCES
        result = fit_em(
            problem, ArraySource(np.arange(len(x3))[:, None]), em=self.em,
            batch_size=self.batch_size or default_batch, step_decay=self.step_decay,
            n_init=self.n_init, max_iter=self.max_iter, tol=self.tol,
            random_state=self.random_state, label=f"EM {self.name}", verbose=bool(self.verbose),
            max_time=self.max_time,
        )  # fmt: skip
        params = result.params
        self.emission_ = emission
        self.startprob_, self.transmat_ = params[0], params[1]
        if emission == "categorical":
            self.emissionprob_ = params[2]
        else:
            shift, scale = problem.shift, problem.scale
            self.shift_, self.scale_ = shift, scale
            means = params[3] * scale + shift  # (K, M, F)
            full = self.covariance_type == "full"
            covars = params[4] * (np.outer(scale, scale) if full else scale**2)
            if emission == "gmm":
                self.weights_, self.means_, self.covars_ = params[2], means, covars
            else:
                self.means_, self.covars_ = means[:, 0], covars[:, 0]
        if lengths is not None:
            self.endprob_ = params[-1]
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

    def _factors(self, X: Any) -> tuple[np.ndarray, np.ndarray | None]:
        """Checked examples' log emission factors (N, T, K), NaN entries marginalised, and
        for a variable-length fit the (N, T) mask of real steps (else None), the end
        events folded into the factors (:func:`fold_lengths`)."""
        self._check_fitted()
        if not self.fitted_spec.variable_length:
            x = check_values(X, self.fitted_spec, allow_nan=True)
            return self._log_emission(_as_steps(np.asarray(x, dtype=np.float64))), None
        x, lengths = check_sequences(X, self.fitted_spec, allow_nan=True)
        return self._sequence_factors(x, lengths)

    def _sequence_factors(self, x: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, ...]:
        """log emission factors (N, T, K) of padded sequences with the end events folded in,
        and the (N, T) mask of real steps; whatever the padding holds is ignored."""
        valid, last = step_masks(lengths, x.shape[1])
        x3 = np.where(valid[:, :, None], _as_steps(x.astype(np.float64)), 0.0)
        return fold_lengths(self._log_emission(x3), valid, last, self.endprob_), valid

    def _logs(self) -> tuple[np.ndarray, np.ndarray]:
        return _log(self.startprob_), _log(self.transmat_)

    def _score_samples(self, x: np.ndarray) -> np.ndarray:
        x3 = _as_steps(np.asarray(x, dtype=np.float64))
        log_emit = np.ascontiguousarray(self._log_emission(x3).transpose(1, 0, 2))
        return _loglik_time_major(*self._logs(), log_emit)

    def _score_sequences(self, x: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        log_emit = self._sequence_factors(x, lengths)[0]
        return _loglik_time_major(*self._logs(), np.ascontiguousarray(log_emit.transpose(1, 0, 2)))

    def posterior_states(self, X: Any) -> np.ndarray:
        """Posterior state marginals p(s_t = k | x_observed), shape (N, T, K), by
        forward–backward; NaN entries are marginalised out. Variable-length sequences: given
        each sequence's length too, padded with zeros after each end (T the longest)."""
        log_emit, valid = self._factors(X)
        gamma = forward_backward(*self._logs(), log_emit, valid)[1]
        return gamma if valid is None else gamma * valid[:, :, None]

    def viterbi(self, X: Any) -> np.ndarray:
        """The most probable state path argmax_s p(s | x_observed), shape (N, T), int64.
        Variable-length sequences: given each length too, padded with −1 after each end."""
        log_emit, valid = self._factors(X)
        return viterbi_path(*self._logs(), log_emit, valid)

    def embed(self, X: Any) -> np.ndarray:
        """The expected fraction of steps spent in each state, shape (N, K) (of each
        sequence's own steps, for variable-length sequences)."""
        log_emit, valid = self._factors(X)
        gamma = forward_backward(*self._logs(), log_emit, valid)[1]
        if valid is None:
            return gamma.mean(axis=1)
        return (gamma * valid[:, :, None]).sum(axis=1) / valid.sum(axis=1, keepdims=True)

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

    def _sample_sequences(
        self, n: int, y: Any, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        spec = self.fitted_spec
        cap = _MAX_LENGTH_FACTOR * spec.event_shape[0]
        states = np.zeros((n, cap), dtype=np.int64)
        lengths = np.full(n, cap, dtype=np.int64)  # those still going at the cap: cut there
        state = sample_categorical(self.startprob_, rng, size=n)
        alive = np.ones(n, dtype=bool)
        for t in range(cap):
            states[alive, t] = state[alive]
            ends = alive & (rng.random(n) < self.endprob_[state])
            lengths[ends] = t + 1
            alive &= ~ends
            if not alive.any():
                break
            state = sample_categorical(self.transmat_[state], rng)
        valid = step_masks(lengths, int(lengths.max()))[0]
        values = np.zeros((n, valid.shape[1], math.prod(spec.step_shape)))
        values[valid] = self._emit(states[:, : valid.shape[1]][valid], rng)
        return values.reshape(n, valid.shape[1], *spec.step_shape), lengths

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
        free = (k - 1) + k * (k - 1) + (k if self.fitted_spec.variable_length else 0)
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
        if spec.variable_length:
            shapes["endprob_"] = (k,)
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
