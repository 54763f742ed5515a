"""Linear-Gaussian state-space models: Kalman filter, RTS smoother and EM (Shumway–Stoffer)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple

import numpy as np
import torch

from ptheta.data.spec import DataSpec, as_array, check_values, location_scale
from ptheta.errors import DataError
from ptheta.models.base import GenerativeModel
from ptheta.models.em import Params, run_em
from ptheta.models.missing import missing_patterns
from ptheta.params import Choice, Float, Int, Param, Seed, check_int, parameter_error

_LOG_2PI = math.log(2 * math.pi)
# Latent dimensions the initialisation finds no component for start as a stationary AR(1)
# with unit variance (standardised units): z_t = 0.9 z_t-1 + w_t, w_t ~ N(0, 0.19).
_INIT_DECAY = 0.9
# Scoring filters this many floats' worth of per-sequence covariances at a time (~160 MB).
_CHUNK_FLOATS = 20_000_000


class LGSSM(NamedTuple):
    """The parameters of z_1 ~ N(μ₀, Σ₀), z_t = A z_{t-1} + w_t, w_t ~ N(0, Q),
    x_t = C z_t + d + v_t, v_t ~ N(0, R), with k latent and D observed dimensions. The
    field names are the names ``fixed`` takes."""

    transition: np.ndarray  # A (k, k)
    transition_cov: np.ndarray  # Q (k, k)
    observation: np.ndarray  # C (D, k)
    observation_offset: np.ndarray  # d (D,)
    observation_cov: np.ndarray  # R (D, D)
    initial_mean: np.ndarray  # μ₀ (k,)
    initial_cov: np.ndarray  # Σ₀ (k, k)


@dataclass
class Filtered:
    """What the Kalman filter returns for N sequences of T steps (k latent dimensions).

    Covariances do not depend on the observed values, only on which entries are observed:
    they have a leading axis B = 1 when every sequence has the same missing entries (then
    they are shared, and computed once) and B = N otherwise.
    """

    pred_mean: np.ndarray  # (N, T, k) E[z_t | x_1..t-1]
    pred_cov: np.ndarray  # (B, T, k, k) Cov[z_t | x_1..t-1]
    mean: np.ndarray  # (N, T, k) E[z_t | x_1..t]
    cov: np.ndarray  # (B, T, k, k) Cov[z_t | x_1..t]
    log_lik: np.ndarray  # (N, T) log p(x_t | x_1..t-1) of the observed entries


class _Names(Param):
    """Distinct names out of ``choices``: a list or tuple of them (one name alone is a
    tuple of one), normalised to a tuple; the empty tuple names none."""

    __slots__ = ("choices",)

    def __init__(self, *choices: str) -> None:
        object.__setattr__(self, "choices", tuple(choices))

    def __setattr__(self, key: str, value: Any) -> None:
        raise AttributeError("a declaration is frozen")

    def __repr__(self) -> str:
        return f"_Names({', '.join(map(repr, self.choices))})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Names) and other.choices == self.choices

    def __hash__(self) -> int:
        return hash(self.choices)

    def check(self, model: str, name: str, value: Any) -> Any:
        values = (value,) if isinstance(value, str) else value
        ok = isinstance(values, (list, tuple)) and all(
            isinstance(v, str) and v in self.choices for v in values
        )
        if not ok or len(set(values)) != len(values):
            what = f"a list of distinct names out of {', '.join(map(repr, self.choices))}"
            raise parameter_error(model, name, what, value, "[] fixes none")
        return tuple(values)

    def describe(self) -> str:
        return f"list of {' | '.join(map(repr, self.choices))}"

    def bad_values(self) -> list[Any]:
        return ["nope", ["nope"], [1], None, 1, True, [self.choices[0]] * 2]


class StateSpace(GenerativeModel):
    """Linear-Gaussian state-space model (linear dynamical system) of real sequences.

        z_1 ~ N(μ₀, Σ₀),   z_t = A z_{t-1} + w_t,  w_t ~ N(0, Q),
        x_t = C z_t + d + v_t,  v_t ~ N(0, R),

    with a k-dimensional latent state z_t (``latent_dim``) and D-dimensional steps x_t.

    **Data.** Each example is one sequence with the time axis first in its event shape:
    (T,) gives D = 1, (T, F, ...) gives D = F·… features per step (as :class:`HMM
    <ptheta.models.hmm.HMM>` reads them); every sequence has the fitted length T.
    Continuous data only: a density of integer levels is not a probability, so discrete
    data are refused (declare them continuous, or use ``hmm`` / ``markov``).

    **Likelihood.** ``score_samples`` is the exact log-density log p(x_1..T) in nats per
    sequence, Σ_t log N(x_t; C m_t|t-1 + d, C P_t|t-1 Cᵀ + R) from the Kalman filter (the
    prediction-error decomposition), batched over the sequences; the update is in Joseph
    form with a Cholesky factor of each innovation covariance, covariances kept symmetric.
    :meth:`step_log_likelihood` gives the terms log p(x_t | x_1..t-1), (N, T): their mean
    is the NLL per step in nats.

    **Fitting.** EM (Shumway & Stoffer 1982; Ghahramani & Hinton 1996) through
    :func:`ptheta.models.em.run_em`: the E-step is the filter and the Rauch–Tung–Striebel
    smoother with lag-one covariances Cov(z_t, z_t-1 | x) = P_t|T J_t-1ᵀ; the M-step
    re-estimates every parameter not listed in ``fixed`` in closed form ([C d] jointly by
    regression of x_t on E[z_t]; A by regression of z_t on z_t-1; R, Q, Σ₀ as expected
    residual covariances, R diagonal with ``covariance_type="diag"``). It runs on
    standardised features (x − shift_) / scale_ (per feature, over every step), so the fit
    does not depend on units or offset; the fitted attributes and every score are in data
    units (densities include the Jacobian −T Σ log scale_). Initialisation, by a subspace
    method: the top k principal components of the delay vectors (x_t, …, x_t+L-1),
    L = min(⌈k/D⌉ + 1, T − 1), estimate the states (with L = 1 this is PCA of the stacked
    steps); C, d, R and A, Q are the least-squares regressions of x_t and of the next state
    on them, μ₀ = 0 and Σ₀ = I (see :func:`_initial_params`). The ``n_init`` − 1 further
    restarts add 0.1·N(0, 1) noise drawn from ``random_state`` to C. A parameter in
    ``fixed`` keeps its initial value (z_1 ~ N(0, I) with both initial ones fixed).

    **Regularisation.** ``min_covar`` is added to R (units of each feature's variance), Q
    and Σ₀ (latent units) in every M-step where they are re-estimated. That is exactly the
    M-step of the penalised likelihood log p(x) − ½·min_covar·(T tr R⁻¹ + (T − 1) tr Q⁻¹ +
    tr Σ₀⁻¹) per sequence (an inverse-Wishart-like prior), which EM never lowers:
    ``history_`` records it per step as ``objective`` next to the plain mean
    ``log_likelihood`` (monotone too when ``min_covar = 0``).

    **Missing data.** NaN entries are marginalised exactly: at a step with missing entries
    the filter updates with the observed rows of C, d and R only (a step missing entirely
    is a pure prediction), so ``score_samples`` is the exact log p(x_observed). ``fit``
    takes NaN too (single entries, whole steps, whole sequences): EM then maximises the
    observed-data likelihood log p(x_observed) (plus the ``min_covar`` prior), the exact
    marginal that ``score_samples`` computes (Shumway & Stoffer 1982; 2017, §6.4). The
    E-step is the same filter and smoother on the observed entries; the M-step of C, d and
    R uses the expected statistics E[Σ x_t], E[Σ x_t x_tᵀ] and E[Σ x_t z_tᵀ] over the
    missing entries, in closed form: given z_t and the step's observed entries O, the
    missing ones M are N(H z_t + h, V) with G = R_MO R_OO⁻¹, H = C_M − G C_O,
    h = d_M + G (x_O − d_O), V = R_MM − G R_OM (G = 0 for diagonal R), averaged over the
    smoothed N(m_t, P_t) of z_t (see :func:`_missing_expectations`); the transition and
    initial-state M-steps are unchanged. So EM never lowers the objective, and
    ``history_``'s ``log_likelihood`` is the mean ``score_samples`` of the training data.
    The standardisation uses each feature's observed entries, the Jacobian counts the
    observed entries, and the initialisation's subspace method runs on a copy with the
    missing entries at the feature means (0 in standardised units). A feature never
    observed in any step is refused with a :class:`~ptheta.errors.DataError` (nothing
    identifies its loadings or noise).
    ``impute(method="mode")`` fills the conditional mean E[x_M | x_obs] (a Gaussian: also
    the joint mode), ``impute(method="sample")`` / ``sample(given=...)`` draw z by forward
    filtering, backward sampling, then the missing entries of each step given z_t and the
    step's observed entries: exact conditional samples.

    **Inference.** :meth:`filter` and :meth:`smooth` return the means and covariances of
    z_t given x_1..t and x_1..T; :meth:`forecast` the predictive means and covariances of
    the next steps after each sequence (their uncertainty grows with the horizon);
    ``embed(X)`` is the mean over steps of the smoothed state E[z_t | x_1..T], (N, k) (the
    final state E[z_T | x_1..T] is ``filter(X)[0][:, -1]``). The latent space is defined
    only up to an invertible linear map z → Mz: compare fitted models through what they
    imply for x (``forecast``, :meth:`observation_moments`), not through A or C.

    Arguments:
        latent_dim: dimension k of the latent state.
        covariance_type: observation noise R ``"diag"`` (D variances) or ``"full"``.
        fixed: names of parameters EM keeps at their initial values, out of
            ``"transition"`` (A), ``"transition_cov"`` (Q), ``"observation"`` (C),
            ``"observation_offset"`` (d), ``"observation_cov"`` (R), ``"initial_mean"``
            (μ₀), ``"initial_cov"`` (Σ₀); e.g. ``("initial_mean", "initial_cov")`` for
            z_1 ~ N(0, I).
        n_init: number of initialisations; the one with the best objective is kept.
        max_iter: EM iterations per initialisation.
        tol: stop when the mean objective per sequence improves by less than this.
        min_covar: variance added to R, Q and Σ₀ in each M-step (see above).
        random_state: seed of the initialisation: an integer, or None for fresh randomness
            (see :class:`~ptheta.params.Seed`).
        verbose: 1 shows a progress bar.

    Returns:
        ``fit`` returns the model. Fitted attributes, in data units: ``transition_`` A
        (k, k), ``transition_cov_`` Q (k, k), ``observation_`` C (D, k),
        ``observation_offset_`` d (D,), ``observation_cov_`` R (D, D) (diagonal with
        ``covariance_type="diag"``), ``initial_mean_`` μ₀ (k,), ``initial_cov_`` Σ₀
        (k, k), with ``shift_`` and ``scale_`` (D,) of the standardisation;
        ``converged_``, ``n_iter_``, ``history_``, ``best_init_``.

    Example:
        >>> import numpy as np
        >>> import ptheta
        >>> rng = np.random.default_rng(0)
        >>> z = np.zeros((200, 30))
        >>> for t in range(1, 30):  # a latent AR(1), observed with noise
        ...     z[:, t] = 0.95 * z[:, t - 1] + rng.normal(size=200) * 0.3
        >>> x = 10 + 2 * z + rng.normal(size=z.shape) * 0.5
        >>> m = ptheta.make("state-space", latent_dim=1, random_state=0).fit(x[:150])
        >>> steps = m.step_log_likelihood(x[150:])  # (N, T): log p(x_t | x_1..t-1)
        >>> bool(np.allclose(steps.sum(axis=1), m.score_samples(x[150:])))
        True
        >>> nats_per_step = -steps.mean()  # the NLL per step
        >>> mean, cov = m.forecast(x[150:], steps=5)  # (N, 5, D), (N, 5, D, D)
        >>> mean.shape, cov.shape
        ((50, 5, 1), (50, 5, 1, 1))
        >>> bool(np.all(np.diff(cov[:, :, 0, 0], axis=1) > 0))  # uncertainty grows
        True

    References:
        Kalman (1960), A new approach to linear filtering and prediction problems;
        Rauch, Tung & Striebel (1965), Maximum likelihood estimates of linear dynamic
        systems; Shumway & Stoffer (1982), An approach to time series smoothing and
        forecasting using the EM algorithm; Ghahramani & Hinton (1996), Parameter
        estimation for linear dynamical systems; Bucy & Joseph (1968) for the Joseph form;
        Carter & Kohn (1994) and Frühwirth-Schnatter (1994) for forward filtering,
        backward sampling; Särkkä (2013), Bayesian Filtering and Smoothing.
    """

    name: ClassVar[str] = "state-space"
    family: ClassVar[str] = "latent sequence"
    likelihood: ClassVar[str] = "exact"
    data_kinds: ClassVar[tuple[str, ...]] = ("continuous",)
    can_marginalise: ClassVar[bool] = True
    fits_missing: ClassVar[bool] = True
    abilities: ClassVar[dict[str, Any]] = {"needs_sequence": True, "embeds": True}
    quick_params: ClassVar[dict[str, Any]] = {"latent_dim": 2, "max_iter": 20, "random_state": 0}
    parameters: ClassVar[dict[str, Param]] = {
        "latent_dim": Int(low=1),
        "covariance_type": Choice("diag", "full"),
        "fixed": _Names(*LGSSM._fields),
        "n_init": Int(low=1),
        "max_iter": Int(low=1),
        "tol": Float(low=0),
        "min_covar": Float(low=0),
        "random_state": Seed(),
        "verbose": Int(low=0, flag=True),
    }

    def __init__(
        self,
        latent_dim: int = 2,
        *,
        covariance_type: str = "diag",
        fixed: tuple[str, ...] = (),
        n_init: int = 1,
        max_iter: int = 200,
        tol: float = 1e-4,
        min_covar: float = 1e-6,
        random_state: int | None = 0,
        verbose: int = 0,
    ) -> None:
        self.latent_dim = latent_dim
        self.covariance_type = covariance_type
        self.fixed = fixed
        self.n_init = n_init
        self.max_iter = max_iter
        self.tol = tol
        self.min_covar = min_covar
        self.random_state = random_state
        self.verbose = verbose

    # ----------------------------------------------------------------- fitting
    def _kind_fix(self, spec: DataSpec) -> str:
        return (
            "a state-space model is a density of real values, and a density at integer "
            "levels is not a probability; declare the data continuous (--kind continuous, or "
            "kind='continuous' in Python) to "
            "model the values as real numbers, or use 'hmm' or 'markov' for discrete sequences"
        )

    def _fit(self, x: np.ndarray, y: Any, spec: DataSpec) -> None:
        x3 = _as_steps(np.asarray(x, dtype=np.float64))  # (N, T, D)
        n, t_len, dim = x3.shape
        k = int(self.latent_dim)
        fixed = frozenset(self._params()["fixed"])
        diag = self.covariance_type == "diag"
        eps = float(self.min_covar)
        missing = bool(np.isnan(x3).any())
        if missing:
            shift, scale = _observed_location_scale(x3.reshape(n * t_len, dim))
        else:
            shift, scale = location_scale(x3.reshape(n * t_len, dim))
        z = (x3 - shift) / scale  # standardised steps
        # per sequence: observed entries only (−T Σ log scale_ with none missing)
        if missing:
            jacobian = -float((~np.isnan(z) * np.log(scale)).sum()) / n
        else:
            jacobian = -t_len * float(np.log(scale).sum())
        moments = _data_moments(z)

        def unpack(params: Params) -> LGSSM:
            return LGSSM(*(a.numpy() for a in params))

        def pack(p: LGSSM) -> Params:
            return tuple(torch.from_numpy(np.ascontiguousarray(a)) for a in p)

        def e_step(params: Params) -> tuple[float, float, Any]:
            p = unpack(params)
            filtered = kalman_filter(z, p)
            smoothed = rts_smoother(filtered, p)
            loglik = float(filtered.log_lik.sum(axis=1).mean()) + jacobian
            objective = loglik - _penalty(p, eps, t_len, fixed)
            stats = _expectations(z, *smoothed[:3])
            if missing:
                stats.update(_missing_expectations(z, p, *smoothed[:2]))
            return objective, loglik, (p, stats)

        def m_step(posteriors: Any) -> Params:
            p, stats = posteriors
            return pack(_m_step(p, stats, moments, fixed, diag, eps))

        def init(seed: np.random.SeedSequence) -> Params:
            first = not seed.spawn_key or seed.spawn_key[-1] == 0  # restart 0: no noise
            filled = np.where(np.isnan(z), 0.0, z) if missing else z  # NaN at the mean
            return pack(_initial_params(filled, k, np.random.default_rng(seed), not first))

        result = run_em(
            init, e_step, m_step, n_init=self.n_init, max_iter=self.max_iter, tol=self.tol,
            random_state=self.random_state, label=f"EM {self.name}", verbose=bool(self.verbose),
        )  # fmt: skip
        p = LGSSM(*result.params)
        self.shift_, self.scale_ = shift, scale
        self.transition_ = p.transition
        self.transition_cov_ = p.transition_cov
        self.observation_ = p.observation * scale[:, None]
        self.observation_offset_ = p.observation_offset * scale + shift
        self.observation_cov_ = p.observation_cov * np.outer(scale, scale)
        self.initial_mean_ = p.initial_mean
        self.initial_cov_ = p.initial_cov
        self.converged_ = result.converged
        self.n_iter_ = result.n_iter
        self.history_ = result.history
        self.best_init_ = result.best_init

    # ----------------------------------------------------------------- inference
    def _standardised(self) -> LGSSM:
        """The fitted parameters for standardised steps (x − shift_) / scale_."""
        scale = self.scale_
        return LGSSM(
            self.transition_,
            self.transition_cov_,
            self.observation_ / scale[:, None],
            (self.observation_offset_ - self.shift_) / scale,
            self.observation_cov_ / np.outer(scale, scale),
            self.initial_mean_,
            self.initial_cov_,
        )

    def _sequences(self, X: Any) -> np.ndarray:
        """Checked sequences (NaN allowed) of any length T' ≥ 1 with the fitted features,
        as standardised steps (N, T', D)."""
        self._check_fitted()
        spec = self.fitted_spec
        arr = as_array(X)
        same_steps = arr.ndim == len(spec.event_shape) + 1 and arr.shape[2:] == spec.event_shape[1:]
        if same_steps and arr.shape[1] >= 1:
            spec = DataSpec("continuous", (arr.shape[1], *spec.event_shape[1:]))
        x = check_values(arr, spec, allow_nan=True)
        return (_as_steps(x) - self.shift_) / self.scale_

    def _score_samples(self, x: np.ndarray) -> np.ndarray:
        return self._step_scores((_as_steps(x) - self.shift_) / self.scale_).sum(axis=1)

    def _step_scores(self, z: np.ndarray) -> np.ndarray:
        """log p(x_t | x_1..t-1) (N, T) in data units for standardised steps z (N, T, D),
        filtered in chunks of sequences (covariances per sequence where missing entries
        differ take N·T·k² floats)."""
        p = self._standardised()
        n, t_len, _ = z.shape
        rows = max(1, _CHUNK_FLOATS // (t_len * len(p.initial_mean) ** 2))
        log_lik = np.concatenate(
            [kalman_filter(z[i : i + rows], p).log_lik for i in range(0, n, rows)]
        )
        jacobian = -(~np.isnan(z) * np.log(self.scale_)).sum(axis=2)  # observed entries only
        return log_lik + jacobian

    def step_log_likelihood(self, X: Any) -> np.ndarray:
        """log p(x_t,observed | x_1..t-1,observed) per step in nats, shape (N, T): the
        terms of ``score_samples`` (their sum). ``-step_log_likelihood(X).mean()`` is the
        NLL per step. Sequences of any length with the fitted features are accepted."""
        return self._step_scores(self._sequences(X))

    def filter(self, X: Any) -> tuple[np.ndarray, np.ndarray]:
        """Filtered states: E[z_t | x_1..t] (N, T, k) and Cov[z_t | x_1..t] (N, T, k, k),
        NaN entries marginalised out; sequences of any length."""
        z = self._sequences(X)
        f = kalman_filter(z, self._standardised())
        return f.mean, _per_sequence(f.cov, len(z))

    def smooth(self, X: Any) -> tuple[np.ndarray, np.ndarray]:
        """Smoothed states: E[z_t | x_1..T] (N, T, k) and Cov[z_t | x_1..T] (N, T, k, k),
        by the Rauch–Tung–Striebel smoother; sequences of any length."""
        z = self._sequences(X)
        p = self._standardised()
        mean, cov = rts_smoother(kalman_filter(z, p), p)[:2]
        return mean, _per_sequence(cov, len(z))

    def forecast(self, X: Any, steps: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """The predictive distribution of the next ``steps`` steps after each sequence.

        Returns:
            means (N, steps, D) and covariances (N, steps, D, D) of p(x_T+h | x_1..T),
            h = 1..steps, in data units (D = 1 for sequences (N, T)). Each is a Gaussian
            marginal, not the joint over the horizon. NaN entries of ``X`` are
            marginalised; sequences of any length.
        """
        steps = check_int(self.name, "steps", steps, low=1)
        z = self._sequences(X)
        p = self._standardised()
        f = kalman_filter(z, p)
        mean, cov = f.mean[:, -1], f.cov[:, -1]  # (N, k), (B, k, k)
        means, covs = [], []
        for _ in range(steps):
            mean, cov = _predict(mean, cov, p)
            means.append(mean @ p.observation.T + p.observation_offset)
            covs.append(_sym(p.observation @ cov @ p.observation.T + p.observation_cov))
        scale = self.scale_
        out_mean = np.stack(means, axis=1) * scale + self.shift_  # (N, steps, D)
        out_cov = _per_sequence(np.stack(covs, axis=1), len(z)) * np.outer(scale, scale)
        return out_mean, out_cov

    def observation_moments(self, t_len: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The mean (T·D,) and covariance (T·D, T·D) of the stacked sequence x_1..T that
        the fitted model implies, in data units (T = the fitted length by default):
        quantities that do not depend on the latent coordinates."""
        self._check_fitted()
        t_len = self.fitted_spec.event_shape[0] if t_len is None else t_len
        t_len = check_int(self.name, "t_len", t_len, low=1)
        mean, cov = joint_moments(self._standardised(), t_len)
        scale = np.tile(self.scale_, t_len)
        return mean * scale + np.tile(self.shift_, t_len), cov * np.outer(scale, scale)

    def embed(self, X: Any) -> np.ndarray:
        """The mean over steps of the smoothed state E[z_t | x_1..T], shape (N, k)."""
        return self.smooth(X)[0].mean(axis=1)

    def bic(self, X: Any) -> float:
        """Bayesian information criterion −2 log p(X) + p log N (lower is better)."""
        scores = self.score_samples(X)
        return float(-2 * scores.sum() + self.n_parameters() * math.log(len(scores)))

    def aic(self, X: Any) -> float:
        """Akaike information criterion −2 log p(X) + 2p (lower is better)."""
        return float(-2 * self.score_samples(X).sum() + 2 * self.n_parameters())

    # ----------------------------------------------------------------- sampling
    def _sample(self, n: int, y: Any, rng: np.random.Generator) -> np.ndarray:
        p = self._standardised()
        t_len = self.fitted_spec.event_shape[0]
        k, dim = len(p.initial_mean), len(p.observation_offset)
        chol_q, chol_r = _sqrt_psd(p.transition_cov), _sqrt_psd(p.observation_cov)
        state = p.initial_mean + rng.standard_normal((n, k)) @ _sqrt_psd(p.initial_cov).T
        out = np.empty((n, t_len, dim))
        for t in range(t_len):
            if t > 0:
                state = state @ p.transition.T + rng.standard_normal((n, k)) @ chol_q.T
            noise = rng.standard_normal((n, dim)) @ chol_r.T
            out[:, t] = state @ p.observation.T + p.observation_offset + noise
        return out * self.scale_ + self.shift_

    def _impute(self, x: np.ndarray, method: str, rng: np.random.Generator) -> np.ndarray:
        z = (_as_steps(x.astype(np.float64)) - self.shift_) / self.scale_  # (N, T, D)
        n, t_len, dim = z.shape
        p = self._standardised()
        f = kalman_filter(z, p)
        # a conditional draw of the states, or their conditional means
        states = backward_sample(f, p, rng) if method == "sample" else rts_smoother(f, p)[0]
        flat = z.reshape(n * t_len, dim)
        centre = (states @ p.observation.T + p.observation_offset).reshape(n * t_len, dim)
        out = flat.copy()
        r = p.observation_cov
        for rows, obs in missing_patterns(flat):
            mis = ~obs
            if not mis.any():
                continue
            # x_M | z_t, x_O ~ N(Cz + d + G (x_O − C_O z − d_O), R_MM − G R_OM), G = R_MO R_OO⁻¹
            fill = centre[np.ix_(rows, mis)]
            cond = r[np.ix_(mis, mis)]
            if obs.any():
                gain = np.linalg.solve(r[np.ix_(obs, obs)], r[np.ix_(obs, mis)]).T  # (M, O)
                resid = flat[np.ix_(rows, obs)] - centre[np.ix_(rows, obs)]
                fill = fill + resid @ gain.T
                cond = cond - gain @ r[np.ix_(obs, mis)]
            if method == "sample":
                fill = fill + rng.standard_normal(fill.shape) @ _sqrt_psd(cond).T
            out[np.ix_(rows, mis)] = fill
        filled = (out * self.scale_ + self.shift_).reshape(x.shape)
        return np.where(np.isnan(x), filled, x)  # observed entries exactly as given

    # ----------------------------------------------------------------- contract
    def _n_parameters(self) -> int:
        p = self._standardised()
        k, dim = len(p.initial_mean), len(p.observation_offset)
        t_len = self.fitted_spec.event_shape[0]
        fixed = set(self._params()["fixed"])
        if t_len == 1:  # no transition: A and Q do not enter the likelihood
            fixed -= {"transition", "transition_cov"}
            equivalent = _equivalences(p, fixed)
            fixed |= {"transition", "transition_cov"}
        else:
            equivalent = _equivalences(p, fixed)
        sizes = {
            "transition": k * k,
            "transition_cov": k * (k + 1) // 2,
            "observation": dim * k,
            "observation_offset": dim,
            "observation_cov": dim if self.covariance_type == "diag" else dim * (dim + 1) // 2,
            "initial_mean": k,
            "initial_cov": k * (k + 1) // 2,
        }
        free = sum(size for key, size in sizes.items() if key not in fixed)
        free -= equivalent
        if t_len == 1 and not fixed & {"initial_mean", "observation_offset"}:
            free -= k  # with one step, C μ₀ + d is all that counts of μ₀ and d
        return int(free)

    def _expected_shapes(self, spec: DataSpec) -> dict[str, tuple[int, ...]]:
        k, dim = int(self.latent_dim), math.prod(spec.event_shape[1:])
        return {
            "transition_": (k, k),
            "transition_cov_": (k, k),
            "observation_": (dim, k),
            "observation_offset_": (dim,),
            "observation_cov_": (dim, dim),
            "initial_mean_": (k,),
            "initial_cov_": (k, k),
            "shift_": (dim,),
            "scale_": (dim,),
        }

    def _required_attributes(self) -> tuple[str, ...]:
        return tuple(self._expected_shapes(DataSpec("continuous", (1,))))


# --------------------------------------------------------------------------- recursions
def kalman_filter(x: np.ndarray, p: LGSSM) -> Filtered:
    """The Kalman filter over a batch of sequences x (N, T, D), NaN entries missing.

    At each step the observed entries O update the prediction with C_O, d_O and R_OO (a step
    with none observed is skipped); the update is in Joseph form, (I − K C) P (I − K C)ᵀ +
    K R Kᵀ, with a Cholesky factor of the innovation covariance S = C P Cᵀ + R, and every
    covariance is symmetrised. ``log_lik[n, t]`` = log N(x_t,O; C_O m_t|t-1 + d_O, S_OO).
    """
    n, t_len, _ = x.shape
    k = len(p.initial_mean)
    observed = ~np.isnan(x)
    shared = bool((observed == observed[:1]).all())  # the same missing entries everywhere
    b = 1 if shared else n
    pred_mean, mean = np.empty((n, t_len, k)), np.empty((n, t_len, k))
    pred_cov, cov = np.empty((b, t_len, k, k)), np.empty((b, t_len, k, k))
    log_lik = np.zeros((n, t_len))
    m = np.broadcast_to(p.initial_mean, (n, k)).copy()
    var = np.broadcast_to(p.initial_cov, (b, k, k)).copy()
    for t in range(t_len):
        if t > 0:
            m, var = _predict(mean[:, t - 1], cov[:, t - 1], p)
        pred_mean[:, t], pred_cov[:, t] = m, var
        for rows, obs in missing_patterns(x[:, t]):
            if not obs.any():
                continue
            cov_rows = slice(None) if shared else rows
            m[rows], var[cov_rows], log_lik[rows, t] = _update(
                m[rows],
                var[cov_rows],
                x[rows, t][:, obs],
                p.observation[obs],
                p.observation_offset[obs],
                p.observation_cov[np.ix_(obs, obs)],
            )
        mean[:, t], cov[:, t] = m, var
    return Filtered(pred_mean, pred_cov, mean, cov, log_lik)


def rts_smoother(f: Filtered, p: LGSSM) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The Rauch–Tung–Striebel smoother on a filter's output.

    Returns:
        E[z_t | x] (N, T, k); Cov[z_t | x] (B, T, k, k); the lag-one covariances
        Cov[z_t, z_t-1 | x] = P_t|T J_t-1ᵀ (B, T, k, k), zero at t = 0; and the smoother
        gains J_t = P_t|t Aᵀ P_t+1|t⁻¹ (B, T, k, k), zero at t = T − 1.
    """
    mean, cov = f.mean.copy(), f.cov.copy()
    lag, gains = np.zeros_like(cov), np.zeros_like(cov)
    for t in range(mean.shape[1] - 2, -1, -1):
        # J_t = P_t|t Aᵀ P_t+1|t⁻¹ = (P_t+1|t⁻¹ A P_t|t)ᵀ, every P symmetric
        gain = _t(_solve(f.pred_cov[:, t + 1], p.transition @ f.cov[:, t]))
        diff = mean[:, t + 1] - f.pred_mean[:, t + 1]  # (N, k)
        mean[:, t] = f.mean[:, t] + (gain @ diff[..., None])[..., 0]
        cov[:, t] = _sym(f.cov[:, t] + gain @ (cov[:, t + 1] - f.pred_cov[:, t + 1]) @ _t(gain))
        lag[:, t + 1] = cov[:, t + 1] @ _t(gain)
        gains[:, t] = gain
    return mean, cov, lag, gains


def backward_sample(f: Filtered, p: LGSSM, rng: np.random.Generator) -> np.ndarray:
    """State paths (N, T, k) drawn from p(z | x) by forward filtering, backward sampling:
    z_T ~ N(m_T|T, P_T|T), then z_t | z_t+1 ~ N(m_t|t + J_t (z_t+1 − m_t+1|t),
    P_t|t − J_t P_t+1|t J_tᵀ)."""
    n, t_len, k = f.mean.shape
    out = np.empty((n, t_len, k))
    out[:, -1] = f.mean[:, -1] + _draw(f.cov[:, -1], n, rng)
    for t in range(t_len - 2, -1, -1):
        gain = _t(_solve(f.pred_cov[:, t + 1], p.transition @ f.cov[:, t]))
        diff = out[:, t + 1] - f.pred_mean[:, t + 1]
        cond = _sym(f.cov[:, t] - gain @ f.pred_cov[:, t + 1] @ _t(gain))
        out[:, t] = f.mean[:, t] + (gain @ diff[..., None])[..., 0] + _draw(cond, n, rng)
    return out


def joint_moments(p: LGSSM, t_len: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean (T·D,) and covariance (T·D, T·D) of the stacked x_1..T, in closed form:
    E z_t = A^(t-1) μ₀, Cov(z_s, z_t) = A^(s-t) V_t for s ≥ t with V_1 = Σ₀,
    V_t = A V_t-1 Aᵀ + Q; x adds C·, d and R on the diagonal blocks."""
    k = len(p.initial_mean)
    means, variances = [p.initial_mean], [p.initial_cov]
    for _ in range(t_len - 1):
        means.append(p.transition @ means[-1])
        variances.append(p.transition @ variances[-1] @ p.transition.T + p.transition_cov)
    cov_z = np.zeros((t_len * k, t_len * k))
    for t in range(t_len):
        block = variances[t]
        for s in range(t, t_len):  # Cov(z_s, z_t) = A^(s-t) V_t
            cov_z[s * k : (s + 1) * k, t * k : (t + 1) * k] = block
            cov_z[t * k : (t + 1) * k, s * k : (s + 1) * k] = block.T
            block = p.transition @ block
    big_c = np.kron(np.eye(t_len), p.observation)  # (T·D, T·k)
    mean = big_c @ np.concatenate(means) + np.tile(p.observation_offset, t_len)
    cov = big_c @ cov_z @ big_c.T + np.kron(np.eye(t_len), p.observation_cov)
    return mean, _sym(cov)


def _predict(m: np.ndarray, var: np.ndarray, p: LGSSM) -> tuple[np.ndarray, np.ndarray]:
    """One step of the dynamics: means (N, k) and covariances (B, k, k)."""
    a = p.transition
    return m @ a.T, _sym(a @ var @ a.T + p.transition_cov)


def _update(
    m: np.ndarray, var: np.ndarray, x: np.ndarray, c: np.ndarray, d: np.ndarray, r: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One Kalman update of means m (n, k) and covariances var (b, k, k), b ∈ {1, n}, by
    observations x (n, o) = C z + d + v, v ~ N(0, R): new means, covariances and the log
    innovation densities (n,)."""
    k, o = m.shape[1], x.shape[1]
    chol = _cholesky(_sym(c @ var @ c.T + r))  # S = L Lᵀ, (b, o, o)
    # K = P Cᵀ S⁻¹ = (S⁻¹ C P)ᵀ, by two triangular solves
    gain = _t(_solve(_t(chol), _solve(chol, c @ var)))  # (b, k, o)
    innovation = x - m @ c.T - d  # (n, o)
    if len(var) == 1:  # shared covariances: one factor for every sequence
        white = _solve(chol[0], innovation.T).T  # L⁻¹ e, (n, o)
        new_mean = m + innovation @ gain[0].T
    else:
        white = _solve(chol, innovation[..., None])[..., 0]
        new_mean = m + (gain @ innovation[..., None])[..., 0]
    log_det = 2 * np.log(np.diagonal(chol, axis1=-2, axis2=-1)).sum(axis=-1)  # (b,)
    log_lik = -0.5 * (o * _LOG_2PI + log_det + (white * white).sum(axis=-1))
    keep = np.eye(k) - gain @ c  # I − K C, (b, k, k)
    new_var = _sym(keep @ var @ _t(keep) + gain @ r @ _t(gain))  # Joseph form
    return new_mean, new_var, log_lik


# --------------------------------------------------------------------------- EM
def _data_moments(z: np.ndarray) -> dict[str, Any]:
    """What the M-step needs of the standardised steps z (N, T, D); with NaN entries the
    moments of x are expectations, computed in each E-step by :func:`_missing_expectations`
    (which override these)."""
    n, t_len, _ = z.shape
    flat = z.reshape(n * t_len, -1)
    if np.isnan(flat).any():
        return {"n": n, "t_len": t_len}
    return {"xx": flat.T @ flat, "x": flat.sum(axis=0), "n": n, "t_len": t_len}


def _sum_cov(cov: np.ndarray, n: int) -> np.ndarray:
    """Σ over sequences of covariances (B, ..., k, k): shared ones (B = 1) count n times."""
    return cov.sum(axis=0) * (n if cov.shape[0] == 1 else 1)


def _expectations(
    z: np.ndarray, mean: np.ndarray, cov: np.ndarray, lag: np.ndarray
) -> dict[str, np.ndarray]:
    """The expected sufficient statistics of the E-step from smoothed means (N, T, k),
    covariances and lag-one covariances (B, T, k, k): sums over sequences of E[z_t z_tᵀ]
    per step, Σ_t>1 E[z_t z_t-1ᵀ], Σ_t E[z_t], Σ_t x_t E[z_t]ᵀ and the first states."""
    n = len(mean)
    second = np.einsum("ntk,ntl->tkl", mean, mean) + _sum_cov(cov, n)  # (T, k, k)
    cross = np.einsum("ntk,ntl->kl", mean[:, 1:], mean[:, :-1]) + _sum_cov(lag[:, 1:], n).sum(0)
    return {
        "zz_t": second,
        "lag": cross,
        "z": mean.sum(axis=(0, 1)),
        "xz": np.einsum("ntd,ntk->dk", z, mean),  # NaN rows: replaced when missing
        "first_mean": mean[:, 0],
        "first_cov": _sum_cov(cov[:, 0], n),
    }


def _missing_expectations(
    z: np.ndarray, p: LGSSM, mean: np.ndarray, cov: np.ndarray
) -> dict[str, np.ndarray]:
    """The observation statistics E[Σ x_t], E[Σ x_t x_tᵀ] and E[Σ x_t z_tᵀ] over the
    missing entries of standardised steps z (N, T, D) with NaN, given the observed ones,
    under the E-step's parameters ``p`` and smoothed means (N, T, k) / covariances
    (B, T, k, k) (Shumway & Stoffer 1982; Shumway & Stoffer 2017, §6.4).

    At a step with observed entries O and missing M, x_M | z_t, x_O ~ N(H z_t + h, V) with
    G = R_MO R_OO⁻¹, H = C_M − G C_O, h = d_M + G (x_O − d_O), V = R_MM − G R_OM (diagonal R:
    G = 0). So with x̄_t = E[x_t | x_O] (x_O, and H m_t + h at M) and F the (D, k) map that
    is H on the rows M and 0 on O: E[x_t z_tᵀ] = x̄_t m_tᵀ + F P_t and E[x_t x_tᵀ] = x̄_t x̄_tᵀ
    + F P_t Fᵀ + V (on the M × M block), m_t, P_t the smoothed mean and covariance of z_t.
    """
    n, t_len, dim = z.shape
    k = mean.shape[-1]
    flat = z.reshape(n * t_len, dim)
    states = mean.reshape(n * t_len, k)
    covs = cov.reshape(-1, k, k)  # (B·T, k, k)
    filled = flat.copy()
    extra_xz = np.zeros((dim, k))
    extra_xx = np.zeros((dim, dim))
    c, d, r = p.observation, p.observation_offset, p.observation_cov
    for rows, obs in missing_patterns(flat):
        mis = ~obs
        if not mis.any():
            continue
        h = np.broadcast_to(d[mis], (len(rows), int(mis.sum())))
        big_h, v = c[mis], r[np.ix_(mis, mis)]
        if obs.any():
            gain = _right_solve(r[np.ix_(mis, obs)], r[np.ix_(obs, obs)])  # G (M, O)
            big_h = big_h - gain @ c[obs]
            h = h + (flat[np.ix_(rows, obs)] - d[obs]) @ gain.T
            v = v - gain @ r[np.ix_(obs, mis)]
        filled[np.ix_(rows, mis)] = states[rows] @ big_h.T + h
        index = rows if len(covs) == n * t_len else rows % t_len  # shared: one per step
        cov_sum = covs[index].sum(axis=0)  # Σ P_t over the pattern's steps
        extra_xz[mis] += big_h @ cov_sum
        extra_xx[np.ix_(mis, mis)] += big_h @ cov_sum @ big_h.T + len(rows) * _sym(v)
    return {
        "x": filled.sum(axis=0),
        "xx": _sym(filled.T @ filled + extra_xx),
        "xz": filled.T @ states + extra_xz,
    }


def _observed_location_scale(flat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation per feature of steps (M, D) over their observed entries
    (a constant or once-observed feature gets std 1), with one clear error for a feature
    that is never observed."""
    seen = ~np.isnan(flat)
    empty = np.flatnonzero(~seen.any(axis=0))
    if len(empty):
        raise DataError(
            f"feature {int(empty[0])} of the training steps has no observed value (every "
            "entry is missing at every step of every sequence); a state-space model cannot "
            "learn its loadings or noise from nothing: drop that feature"
        )
    count = seen.sum(axis=0)
    big = np.nanmax(np.abs(flat), axis=0)
    big = np.where(big > 0, big, 1.0)
    u = np.where(seen, flat / big, 0.0)
    mean = u.sum(axis=0) / count
    var = np.where(seen, (u - mean) ** 2, 0.0).sum(axis=0) / count
    std = np.sqrt(var) * big
    return mean * big, np.where(std > 0, std, 1.0)


def _m_step(
    p: LGSSM,
    s: dict[str, np.ndarray],
    data: dict[str, Any],
    fixed: frozenset[str],
    diag: bool,
    eps: float,
) -> LGSSM:
    """The closed-form M-step of every parameter not in ``fixed`` (the others keep ``p``'s
    values), with ``eps`` added to the covariances it re-estimates."""
    n, t_len = data["n"], data["t_len"]
    if "x" in s:  # missing entries: E[Σ x_t] and E[Σ x_t x_tᵀ] given the observed ones
        data = {**data, "x": s["x"], "xx": s["xx"]}
    k = len(p.initial_mean)
    a, q, c, d, r, mu0, s0 = p
    zz = s["zz_t"].sum(axis=0)
    count = n * t_len
    # observations: regression of x_t on [E z_t, 1] (the same for any R)
    if "observation" not in fixed and "observation_offset" not in fixed:
        zz1 = np.block([[zz, s["z"][:, None]], [s["z"][None], np.array([[count]])]])
        cd = _right_solve(np.column_stack([s["xz"], data["x"]]), zz1)
        c, d = cd[:, :k], cd[:, k]
    elif "observation" not in fixed:
        c = _right_solve(s["xz"] - np.outer(d, s["z"]), zz)
    elif "observation_offset" not in fixed:
        d = (data["x"] - c @ s["z"]) / count
    if "observation_cov" not in fixed:
        # Σ_t E[(x_t − C z_t − d)(…)ᵀ] with C̃ = [C d], z̃ = [z; 1]
        cd = np.column_stack([c, d])
        xz1 = np.column_stack([s["xz"], data["x"]])
        zz1 = np.block([[zz, s["z"][:, None]], [s["z"][None], np.array([[count]])]])
        resid = _sym(data["xx"] - xz1 @ cd.T - cd @ xz1.T + cd @ zz1 @ cd.T) / count
        r = (np.diag(np.diag(resid)) if diag else resid) + eps * np.eye(len(d))
    if t_len > 1:  # transitions: regression of z_t on z_t-1 (the same for any Q)
        before, after = s["zz_t"][:-1].sum(axis=0), s["zz_t"][1:].sum(axis=0)
        if "transition" not in fixed:
            a = _right_solve(s["lag"], before)
        if "transition_cov" not in fixed:
            resid = after - a @ s["lag"].T - s["lag"] @ a.T + a @ before @ a.T
            q = _sym(resid) / (n * (t_len - 1)) + eps * np.eye(k)
    if "initial_mean" not in fixed:
        mu0 = s["first_mean"].mean(axis=0)
    if "initial_cov" not in fixed:
        diff = s["first_mean"] - mu0
        s0 = _sym(s["first_cov"] + diff.T @ diff) / n + eps * np.eye(k)
    return LGSSM(a, q, c, d, r, mu0, s0)


def _penalty(p: LGSSM, eps: float, t_len: int, fixed: frozenset[str]) -> float:
    """½·eps·(T tr R⁻¹ + (T − 1) tr Q⁻¹ + tr Σ₀⁻¹) over the covariances EM re-estimates:
    the log-prior whose M-step adds eps to each of them."""
    if eps == 0:
        return 0.0
    terms = [
        ("observation_cov", p.observation_cov, t_len),
        ("transition_cov", p.transition_cov, t_len - 1),
        ("initial_cov", p.initial_cov, 1),
    ]
    total = sum(w * np.trace(_inverse(m)) for key, m, w in terms if key not in fixed and w > 0)
    return 0.5 * eps * float(total)


def _initial_params(z: np.ndarray, k: int, rng: np.random.Generator, perturb: bool) -> LGSSM:
    """The starting point of EM for standardised steps z (N, T, D), by a subspace method.

    The delay vectors h_t = (x_t, …, x_t+L-1), L = min(⌈k/D⌉ + 1, T − 1), hold what the past
    and the next few steps share; their top k principal components, scaled to unit
    variance, estimate the states s_t. C, d and R come from the least-squares regression of
    x_t on s_t (R at least 0.05 of a unit variance), A and Q from that of s_t+1 on s_t
    (Q + 0.01 I); μ₀ = 0 and Σ₀ = I (the states' scale). Latent dimensions beyond the
    components there are (k > L·D, or constant data) start as a stationary latent AR(1),
    A = 0.9, Q = 0.19, with 0.1·N(0, 1) loadings; ``perturb`` (every restart after the
    first) adds 0.1·N(0, 1) noise to all of C.
    """
    n, t_len, dim = z.shape
    lags = min(-(-k // dim) + 1, t_len - 1) if t_len > 1 else 1
    width = t_len - lags + 1
    delays = np.concatenate([z[:, j : j + width] for j in range(lags)], axis=2)  # (N, W, L·D)
    flat = delays.reshape(n * width, -1)
    centred = flat - flat.mean(axis=0)
    lam, vec = np.linalg.eigh(centred.T @ centred / len(flat))
    lam, vec = lam[::-1], vec[:, ::-1]  # largest first
    used = int(min(k, np.sum(lam > 1e-9 * max(float(lam[0]), 1e-300))))
    states = centred @ vec[:, :used] / np.sqrt(lam[:used])  # (N·W, used), unit variance
    eye = np.eye(k)
    a, q = _INIT_DECAY * eye, (1 - _INIT_DECAY**2) * eye
    c = 0.1 * rng.standard_normal((dim, k))
    steps = z[:, :width].reshape(n * width, dim)
    design = np.column_stack([states, np.ones(len(states))])
    coef = np.linalg.lstsq(design, steps, rcond=None)[0]  # (used + 1, D)
    c[:, :used], d = coef[:used].T, coef[used]
    resid = steps - design @ coef
    r = np.diag(np.maximum(np.mean(resid * resid, axis=0), 0.05))
    if used and width > 1:
        s = states.reshape(n, width, used)
        before, after = s[:, :-1].reshape(-1, used), s[:, 1:].reshape(-1, used)
        a[:used, :used] = np.linalg.lstsq(before, after, rcond=None)[0].T
        noise = after - before @ a[:used, :used].T
        q[:used, :used] = noise.T @ noise / len(noise) + 0.01 * np.eye(used)
    if perturb:
        c += 0.1 * rng.standard_normal((dim, k))
    return LGSSM(a, q, c, d, r, np.zeros(k), eye.copy())


def _equivalences(p: LGSSM, fixed: set[str]) -> int:
    """The dimension of the group of latent maps z → Mz that leave the model unchanged
    (k² when A, Q, C, μ₀ and Σ₀ are all free): the null space, at M = I + G, of the
    first-order changes of the fixed ones (G A − A G, G Q + Q Gᵀ, C G, G μ₀, G Σ₀ + Σ₀ Gᵀ)."""
    k = len(p.initial_mean)
    changes = {
        "transition": lambda g: g @ p.transition - p.transition @ g,
        "transition_cov": lambda g: g @ p.transition_cov + p.transition_cov @ g.T,
        "observation": lambda g: p.observation @ g,
        "initial_mean": lambda g: g @ p.initial_mean,
        "initial_cov": lambda g: g @ p.initial_cov + p.initial_cov @ g.T,
    }
    used = [f for key, f in changes.items() if key in fixed]
    if not used:
        return k * k
    basis = np.eye(k * k).reshape(k * k, k, k)
    rows = np.stack([np.concatenate([f(g).ravel() for f in used]) for g in basis], axis=1)
    return k * k - int(np.linalg.matrix_rank(rows))


# --------------------------------------------------------------------------- helpers
def _as_steps(x: np.ndarray) -> np.ndarray:
    """Examples (N, T, ...) as steps (N, T, D): the time axis first, the rest flattened."""
    return x.reshape(x.shape[0], x.shape[1], -1)


def _t(a: np.ndarray) -> np.ndarray:
    return np.swapaxes(a, -1, -2)


def _sym(a: np.ndarray) -> np.ndarray:
    return 0.5 * (a + _t(a))


def _solve(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a⁻¹ b for stacks (broadcast over leading axes), with a clear error where a is singular."""
    try:
        return np.linalg.solve(a, b)
    except np.linalg.LinAlgError:
        raise DataError(
            "a state-space covariance became singular; raise min_covar (or use fewer latent "
            "dimensions)"
        ) from None


def _cholesky(a: np.ndarray) -> np.ndarray:
    try:
        return np.linalg.cholesky(a)
    except np.linalg.LinAlgError:
        raise DataError(
            "an innovation covariance C P Cᵀ + R is not positive definite (an observation "
            "noise variance fell to 0); raise min_covar"
        ) from None


def _inverse(a: np.ndarray) -> np.ndarray:
    return _solve(a, np.eye(len(a)))


def _right_solve(b: np.ndarray, a: np.ndarray) -> np.ndarray:
    """b a⁻¹ for a symmetric positive definite a (least squares where it is singular)."""
    try:
        return np.linalg.solve(a, b.T).T
    except np.linalg.LinAlgError:
        return np.linalg.lstsq(a, b.T, rcond=None)[0].T


def _sqrt_psd(cov: np.ndarray) -> np.ndarray:
    """A factor L with L Lᵀ = cov (k, k) positive semi-definite: Cholesky, or symmetric
    eigenvalues clipped at 0 where rounding made cov slightly indefinite."""
    try:
        return np.linalg.cholesky(cov)
    except np.linalg.LinAlgError:
        lam, vec = np.linalg.eigh(_sym(cov))
        return vec * np.sqrt(np.maximum(lam, 0.0))


def _draw(cov: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """n draws (n, k) from N(0, cov[i]) with covariances (B, k, k), B ∈ {1, n}."""
    factors = np.stack([_sqrt_psd(c) for c in cov])  # (B, k, k)
    noise = rng.standard_normal((n, cov.shape[-1]))
    return (factors @ noise[..., None])[..., 0]


def _per_sequence(cov: np.ndarray, n: int) -> np.ndarray:
    """Covariances (B, ...) with B ∈ {1, n} as an array with one per sequence (n, ...)."""
    return np.broadcast_to(cov, (n, *cov.shape[1:])).copy()
