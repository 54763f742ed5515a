"""Mixture models fitted by EM: Gaussian mixture, Bernoulli mixture and categorical mixture."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
import torch
from scipy.special import gammaln, logsumexp, softmax
from sklearn.cluster import kmeans_plusplus

from ptheta.data.spec import DataSpec, check_values, location_scale
from ptheta.errors import DataError, ParameterError
from ptheta.models.base import GenerativeModel
from ptheta.models.capabilities import Capabilities
from ptheta.models.em import EStep, MStep, Params, run_em
from ptheta.models.missing import missing_patterns, one_hot
from ptheta.models.sampling import sample_categorical
from ptheta.nn.device import resolve_device, resolve_dtype
from ptheta.params import Choice, Device, Float, Int, Param, Seed

# Variance of U[0, 1): what uniform dequantisation adds to every discrete coordinate.
_DEQUANT_VAR = 1.0 / 12.0


class _EMMixture(GenerativeModel):
    """What every mixture here shares: the EM driver (``n_init`` restarts, progress bar,
    convergence warning), parameter checks, and scoring / responsibilities from
    ``_log_joint(x)`` = log π_k + log p(x_observed | k), shape (N, K).
    """

    family: ClassVar[str] = "mixtures"
    can_marginalise: ClassVar[bool] = True
    abilities: ClassVar[dict[str, Any]] = {"embeds": True}
    # what every EM mixture shares; each family adds its own
    parameters: ClassVar[dict[str, Param]] = {
        "n_components": Int(low=1),
        "max_iter": Int(low=1),
        "tol": Float(low=0),
        "n_init": Int(low=1),
        "init": Choice("kmeans++", "random"),
        "dtype": Choice("float64", "float32"),
        "device": Device(),
        "random_state": Seed(),
        "verbose": Int(low=0, flag=True),
    }

    def _log_joint(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _score_samples(self, x: np.ndarray) -> np.ndarray:
        return logsumexp(self._log_joint(x), axis=1)

    def predict_proba(self, X: Any) -> np.ndarray:
        """Responsibilities p(component | x), shape (N, K); NaN entries are marginalised out."""
        self._check_fitted()
        x = check_values(X, self.fitted_spec, allow_nan=True)
        return softmax(self._log_joint(x), axis=1)

    def predict(self, X: Any) -> np.ndarray:
        """Most responsible component of each example, shape (N,)."""
        return self.predict_proba(X).argmax(axis=1)

    def embed(self, X: Any) -> np.ndarray:
        """Representation: the responsibilities, shape (N, K)."""
        return self.predict_proba(X)

    def _check_n_components(self, n: int) -> None:
        """No more components than the ``n`` training examples (a rule of the data)."""
        k = int(self.n_components)
        if k > n:
            raise DataError(
                f"n_components={k} is more than the {n} training examples; "
                "use fewer components or more data"
            )

    def _fit_em(
        self, init: Callable[[np.random.SeedSequence], Params], e_step: EStep, m_step: MStep
    ) -> tuple[np.ndarray, ...]:
        """EM from ``n_init`` initialisations ``init(seed)`` (:func:`ptheta.models.em.run_em`).
        Keeps the run with the best objective: sets ``converged_``, ``n_iter_``,
        ``history_``, ``best_init_`` and returns its parameters as float64 arrays.
        """
        result = run_em(
            init, e_step, m_step, n_init=self.n_init, max_iter=self.max_iter, tol=self.tol,
            random_state=self.random_state, label=f"EM {self.name}", verbose=bool(self.verbose),
        )  # fmt: skip
        self.converged_ = result.converged
        self.n_iter_ = result.n_iter
        self.history_ = result.history
        self.best_init_ = result.best_init
        return result.params


def _initial_resp(x: torch.Tensor, k: int, init: str, seed: np.random.SeedSequence) -> torch.Tensor:
    """Initial responsibilities (N, K): random, or a hard assignment to k-means++ centres."""
    n = x.shape[0]
    rs = np.random.RandomState(seed.generate_state(1)[0])
    if init == "random":
        r = rs.uniform(size=(n, k))
        return torch.as_tensor(r / r.sum(axis=1, keepdims=True), dtype=x.dtype, device=x.device)
    centres, _ = kmeans_plusplus(x.cpu().numpy(), k, random_state=rs)
    c = torch.as_tensor(centres, dtype=x.dtype, device=x.device)
    nearest = torch.cdist(x, c).argmin(dim=1)
    return torch.nn.functional.one_hot(nearest, k).to(x.dtype)


class GaussianMixture(_EMMixture):
    """Gaussian mixture p(x) = Σ_k π_k N(x; μ_k, Σ_k), fitted by EM in log space (torch).

    **Standardisation.** On continuous data EM runs on z = (x − shift_) / scale_, each
    feature shifted by its mean and divided by its standard deviation (1 for a constant
    feature), so the fit does not depend on the data's units or offset: timestamps near
    1.7e9 or values near 1e30 are fitted like the same data near 0, and equal values give
    the same model whatever their memory layout. ``weights_``, ``means_``,
    ``covariances_``, ``history_`` and every score are in data units: log-densities
    include the Jacobian −Σ_d log scale_d. (Discrete data keep their level units:
    shift_ = 0, scale_ = 1.)

    **Regularisation as smoothing.** ``reg_covar`` is added to every covariance of the
    standardised data in each M-step (as in scikit-learn, but in units of each feature's
    variance: reg_covar·scale_² in data units). That update is exactly the EM
    (minorise–maximise) step for the *smoothed* objective
    Σ_n log Σ_k π_k exp(E_ε log N(z_n + ε; μ_k, Σ_k)) with ε ~ N(0, reg_covar·I), because
    E_ε log N(z + ε) = log N(z) − ½·reg_covar·tr(Σ_k⁻¹). So that objective never decreases
    from one EM step to the next; it is recorded per step in ``history_`` together with the
    plain log-likelihood.

    **Discrete data.** On binary or categorical data (``dequantization="auto"``) the mixture
    models the dequantised variable x + u, u ~ U[0, 1)^D, and ``score_samples`` returns
    the lower bound

        log P(x) ≥ log Σ_k π_k exp(E_u log N(x + u; μ_k, Σ_k))          (Jensen, per component)
                 = log Σ_k π_k N(x + ½; μ_k, Σ_k) · exp(−tr(Σ_k⁻¹)/24),

    in closed form, so ``likelihood_`` is ``"bound"`` in discrete units, comparable with
    (and never better than) the exact log-probabilities of discrete models. EM maximises
    this bound directly (the same smoothing argument with Var(u) = 1/12), which also keeps
    every variance ≥ 1/12: pixels that are constant in training cannot make a covariance
    singular. To model integer values as points of a continuous density instead, declare
    the data continuous (``kind="continuous"``); ``dequantization="none"`` on discrete data is
    refused rather than reporting a density as if it were a probability.

    **Missing data.** NaN entries are marginalised: with O the observed coordinates,
    ``score_samples`` returns log Σ_k π_k N(x_O; μ_k[O], Σ_k[O, O]), the exact log-marginal
    (rows are grouped by their pattern of missing entries). On dequantised data it is the
    bound above applied to that marginal, again a lower bound on log P(x_O).
    ``impute(method="sample")`` / ``sample(given=...)`` draw k ~ p(k | x_O), then x_M from
    component k's conditional Gaussian N(μ_M + Σ_MO Σ_OO⁻¹ (x_O − μ_O), Σ_MM − Σ_MO Σ_OO⁻¹ Σ_OM).
    ``impute(method="mode")`` returns the conditional **mean** E[x_M | x_O] =
    Σ_k p(k | x_O) E_k[x_M | x_O]: a mean, not a mode (a mixture's mode has no closed form).
    On dequantised data both condition on the cell centres x_O + ½ (with responsibilities
    from the bound), an approximation to conditioning on the cells, and the filled values go
    back to integer levels as ``sample`` does (floor, clipped to the valid levels).

    Arguments:
        n_components: number of mixture components K.
        covariance_type: ``"full"`` (K, D, D) or ``"diag"`` (K, D).
        max_iter: EM iterations per initialisation.
        tol: stop when the mean smoothed objective per example improves by less than this.
        n_init: number of initialisations; the one with the best objective is kept.
        init: ``"kmeans++"`` (k-means++ centres, then a hard assignment) or ``"random"``
            (random responsibilities).
        reg_covar: variance added to the diagonal of every covariance (see above).
        dequantization: ``"auto"`` (on discrete data), ``"uniform"`` (always) or ``"none"``.
        dtype: ``"float64"`` or ``"float32"`` for the EM arithmetic.
        device: ``"cpu"``, ``"cuda"`` or ``"auto"``.
        random_state: seed of the initialisation: an integer, or None for fresh randomness
            (see :class:`~ptheta.params.Seed`).
        verbose: 1 shows a progress bar.

    Fitted attributes:
        weights_ (K,), means_ (K, D), covariances_ (K, D, D) or (K, D), converged_,
        n_iter_, history_ (per step: mean objective and mean log-likelihood / bound),
        dequantized_ (whether the model is of dequantised discrete data), shift_ and
        scale_ (D,): the standardisation z = (x − shift_) / scale_ EM ran on.

    Example:
        >>> import ptheta
        >>> data = ptheta.datasets.load("toy2d-8gaussians")
        >>> m = ptheta.make("gmm", n_components=8, random_state=0).fit(data.train.x)
        >>> round(m.score(data.test.x), 1) > -3
        True

    References:
        Dempster, Laird & Rubin (1977); Arthur & Vassilvitskii (2007) for k-means++;
        Theis, van den Oord & Bethge (2016) for dequantisation bounds.
    """

    name: ClassVar[str] = "gmm"
    likelihood: ClassVar[str] = "exact"
    data_kinds: ClassVar[tuple[str, ...]] = ("binary", "categorical", "continuous")
    quick_params: ClassVar[dict[str, Any]] = {"n_components": 3, "max_iter": 30, "random_state": 0}
    abilities: ClassVar[dict[str, Any]] = {"dequantises_discrete": True}
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "demo": {"n_components": 10, "random_state": 0},
        "explorer": {"n_components": 16},
        "explorer-quick": {"n_components": 8, "max_iter": 50, "random_state": 0},
    }
    parameters: ClassVar[dict[str, Param]] = {
        "covariance_type": Choice("full", "diag"),
        "reg_covar": Float(low=0),
        "dequantization": Choice("auto", "uniform", "none"),
    }
    renamed: ClassVar[dict[str, str]] = {"dequantize": "dequantization"}

    def __init__(
        self,
        n_components: int = 8,
        *,
        covariance_type: str = "full",
        max_iter: int = 200,
        tol: float = 1e-3,
        n_init: int = 1,
        init: str = "kmeans++",
        reg_covar: float = 1e-6,
        dequantization: str = "auto",
        dtype: str = "float64",
        device: str = "cpu",
        random_state: int | None = 0,
        verbose: int = 0,
    ) -> None:
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.max_iter = max_iter
        self.tol = tol
        self.n_init = n_init
        self.init = init
        self.reg_covar = reg_covar
        self.dequantization = dequantization
        self.dtype = dtype
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    # ----------------------------------------------------------------- fitting
    def _fit(self, x: np.ndarray, y: Any, spec: DataSpec) -> None:
        flat = x.reshape(len(x), -1).astype(np.float64)
        self._check_n_components(len(flat))
        deq = spec.is_discrete
        if self.dequantization == "uniform" and not deq:
            raise ParameterError(
                "gmm: dequantization='uniform' needs discrete (binary/categorical) data"
            )
        if self.dequantization == "none" and deq:
            # a density evaluated at integer points is not a probability: refuse to mix units
            raise ParameterError(
                "dequantization='none' on discrete data would report a density at integer points, "
                "not comparable with any probability; to model the values as points of a "
                "continuous density, declare the data continuous (--kind continuous, or "
                "kind='continuous' in Python)"
            )
        if deq:
            flat = flat + 0.5  # centre of the unit cell [x, x+1)
        smooth = self.reg_covar + (_DEQUANT_VAR if deq else 0.0)
        report_smooth = _DEQUANT_VAR if deq else 0.0
        if not deq:
            constant = np.flatnonzero(np.ptp(flat, axis=0) == 0)
            if constant.size:
                warnings.warn(
                    f"{constant.size} feature(s) are constant in the training data (first: "
                    f"{constant[:5].tolist()}); their variance is only reg_covar="
                    f"{self.reg_covar:g}, so held-out values that differ get almost no density. "
                    "If the data are discrete, keep dequantization='auto' and declare the kind; "
                    "otherwise raise reg_covar.",
                    UserWarning,
                    stacklevel=3,
                )

        dev, dt = resolve_device(self.device), resolve_dtype(self.dtype)
        if deq:  # level units, where the dequantisation bound is defined
            shift, scale = np.zeros(flat.shape[1]), np.ones(flat.shape[1])
        else:  # EM on standardised data: no dependence on units, offset or memory layout
            shift, scale = location_scale(flat)
        z = (flat - shift) / scale
        centre = z.mean(axis=0)  # EM on centred data: no cancellation far from the origin
        xt = torch.as_tensor(z - centre, dtype=dt, device=dev)  # (N, D)
        log_jacobian = float(np.log(scale).sum())  # history_ in data units
        cov_type, k = self.covariance_type, int(self.n_components)

        def e_step(params: Params) -> tuple[float, float, torch.Tensor]:
            log_w, trace_prec = _log_weighted_densities(xt, *params, cov_type)  # (N, K), (K,)
            smoothed = log_w - 0.5 * smooth * trace_prec
            objective = torch.logsumexp(smoothed, dim=1)  # (N,)
            loglik = torch.logsumexp(log_w - 0.5 * report_smooth * trace_prec, dim=1)
            return (
                float(objective.mean()) - log_jacobian,
                float(loglik.mean()) - log_jacobian,
                torch.softmax(smoothed, dim=1),
            )

        def m_step(resp: torch.Tensor) -> Params:
            return _m_step(xt, resp, cov_type, smooth)

        self.weights_, means, cov = self._fit_em(
            lambda seed: m_step(_initial_resp(xt, k, self.init, seed)), e_step, m_step
        )
        self.means_ = (means + centre) * scale + shift
        outer = np.outer(scale, scale) if cov_type == "full" else scale**2
        self.covariances_ = cov * outer
        self.shift_, self.scale_ = shift, scale
        self.dequantized_ = bool(deq)

    # ----------------------------------------------------------------- scoring
    def _log_joint(self, x: np.ndarray) -> np.ndarray:
        """log π_k + log N(x_O; μ_k[O], Σ_k[O, O]) (minus the dequantisation penalty on
        discrete data) for the observed coordinates O of each row, shape (N, K)."""
        flat = x.reshape(len(x), -1).astype(np.float64)
        smooth = 0.0
        if self.dequantized_:
            flat, smooth = flat + 0.5, _DEQUANT_VAR
        # score in the standardised units EM ran in (exact for float32 too), then add the
        # Jacobian of the observed coordinates; older fits without shift_ are unscaled
        d = flat.shape[1]
        shift = np.asarray(getattr(self, "shift_", np.zeros(d)), dtype=np.float64)
        scale = np.asarray(getattr(self, "scale_", np.ones(d)), dtype=np.float64)
        flat = (flat - shift) / scale
        means = (self.means_ - shift) / scale
        outer = np.outer(scale, scale) if self.covariance_type == "full" else scale**2
        covariances = self.covariances_ / outer
        dt = resolve_dtype(self.dtype)
        out = np.empty((len(flat), len(self.weights_)))
        for rows, obs in missing_patterns(flat):
            if not obs.any():
                out[rows] = np.log(self.weights_)  # nothing observed: every marginal is 1
                continue
            cov = covariances[:, obs]
            if self.covariance_type == "full":
                cov = cov[:, :, obs]  # Σ_k[O, O]
            args = (flat[np.ix_(rows, obs)], self.weights_, means[:, obs], cov)
            log_w, trace_prec = _log_weighted_densities(
                *(torch.as_tensor(a, dtype=dt) for a in args), self.covariance_type
            )
            log_w = log_w - 0.5 * smooth * trace_prec
            out[rows] = log_w.double().numpy() - np.log(scale[obs]).sum()
        return out

    def _impute(self, x: np.ndarray, method: str, rng: np.random.Generator) -> np.ndarray:
        flat = x.reshape(len(x), -1).astype(np.float64)  # (N, D)
        missing = np.isnan(flat)
        y = flat + 0.5 if self.dequantized_ else flat.copy()  # the modelled variable
        resp = softmax(self._log_joint(x), axis=1)  # p(k | x_O), (N, K)
        cov = self.covariances_
        if self.covariance_type == "diag":
            cov = cov[:, :, None] * np.eye(cov.shape[1])  # (K, D, D)
        for rows, obs in missing_patterns(flat):
            if obs.all():
                continue
            mean, chol = _conditional_gaussians(self.means_, cov, y[np.ix_(rows, obs)], obs)
            if method == "mode":
                fill = np.einsum("rk,rkm->rm", resp[rows], mean)  # the conditional mean
            else:
                comp = sample_categorical(resp[rows], rng)  # (R,)
                z = rng.standard_normal((len(rows), int((~obs).sum())))
                fill = mean[np.arange(len(rows)), comp] + np.einsum("rij,rj->ri", chol[comp], z)
            y[np.ix_(rows, ~obs)] = fill
        flat[missing] = self._to_levels(y)[missing]
        return flat

    def _sample(self, n: int, y: Any, rng: np.random.Generator) -> np.ndarray:
        k, d = self.means_.shape
        comp = rng.choice(k, size=n, p=self.weights_ / self.weights_.sum())
        z = rng.standard_normal((n, d))
        if self.covariance_type == "full":
            chol = np.linalg.cholesky(self.covariances_)  # (K, D, D)
            out = self.means_[comp] + np.einsum("nij,nj->ni", chol[comp], z)
        else:
            out = self.means_[comp] + np.sqrt(self.covariances_[comp]) * z
        return self._to_levels(out)

    def _to_levels(self, out: np.ndarray) -> np.ndarray:
        """Values of the modelled variable back to the fitted kind's values."""
        spec = self.fitted_spec
        if not spec.is_discrete:
            return out
        # dequantised: x = floor(x + u); mass outside the valid levels is clipped onto the
        # edges (the bound counts only the valid cells, so it stays a bound)
        return np.clip(np.floor(out), 0, spec.n_categories - 1)

    def _capabilities(self) -> Capabilities:
        # one Gaussian component has a closed-form entropy and KL (see closed_form)
        caps = super()._capabilities()
        return caps.replace(closed_form=self.n_components == 1)

    def _dequantised(self) -> bool:
        return bool(self.dequantized_)

    def _expected_shapes(self, spec: DataSpec) -> dict[str, tuple[int, ...]]:
        k, d = self.n_components, spec.n_dims
        cov = (k, d, d) if self.covariance_type == "full" else (k, d)
        return {"weights_": (k,), "means_": (k, d), "covariances_": cov}

    def closed_form(self) -> dict[str, np.ndarray] | None:
        """A one-component fit on continuous data as ``{"mean": (D,), "cov": (D, D) or
        (D,)}`` for closed-form entropy and KL; None otherwise (a dequantised or
        integer-valued fit is not a Gaussian in the units it is scored in)."""
        self._check_fitted()
        if len(self.weights_) != 1 or self.fitted_spec.is_discrete:
            return None
        return {
            "mean": np.asarray(self.means_[0], np.float64),
            "cov": np.asarray(self.covariances_[0]),
        }

    def _n_parameters(self) -> int:
        k, d = self.means_.shape
        cov = k * d * (d + 1) // 2 if self.covariance_type == "full" else k * d
        return (k - 1) + k * d + cov

    def _fitted_likelihood(self, spec: DataSpec) -> str:
        return "bound" if self.dequantized_ else "exact"


class CategoricalMixture(_EMMixture):
    """Mixture of independent categorical variables p(x) = Σ_k π_k ∏_d θ_k,d[x_d], by MAP-EM.

    Within component k the D variables are independent with level probabilities θ_k,d
    (L levels; binary data is L = 2). EM runs in log space in torch: the E-step is
    log π_k + onehot(x) @ log θ_k — a (N, D·L) one-hot code times (D·L, K) log-probabilities —
    normalised with logsumexp.

    **Smoothing is MAP-EM.** The M-step sets θ_k,d = (n_k,d + α) / (n_k + L·α), with n the
    expected counts: the maximiser of the expected log-likelihood plus the log-density of a
    Dirichlet(α + 1, …, α + 1) prior on every θ_k,d (π has the flat Dirichlet(1) prior, so
    π_k = n_k / N). EM for a posterior mode never decreases the log-posterior, so
    ``history_`` records ``objective`` = (log-likelihood + log prior) / N, exactly monotone,
    next to the plain mean ``log_likelihood``, which is monotone too only when α = 0
    (maximum likelihood); with α > 0 it can dip while the posterior rises. With α = 0,
    levels that a component never saw get probability 0 (scored as the log of the smallest
    positive float, so that masked products stay finite).

    **Missing data.** A missing entry's factor sums to one inside each component, so
    ``score_samples`` drops it (an all-zero one-hot row) and returns the exact
    log Σ_k π_k ∏_{d observed} θ_k,d[x_d]. ``impute(method="sample")`` (and
    ``sample(given=...)``) draw k ~ p(k | x_obs), then each missing entry from θ_k,d
    (independent given k): exact conditional sampling. ``method="mode"`` fills each missing
    entry with its most probable level under p(x_d | x_obs) = Σ_k p(k | x_obs) θ_k,d (entry
    by entry, not the jointly most probable completion).

    Arguments:
        n_components: number of mixture components K.
        alpha: pseudo-count added to every level in the M-step (see above); 0 is
            maximum-likelihood EM.
        max_iter: EM iterations per initialisation.
        tol: stop when the mean objective per example improves by less than this.
        n_init: number of initialisations; the one with the best objective is kept.
        init: ``"kmeans++"`` (k-means++ centres of the one-hot codes, then a hard
            assignment) or ``"random"`` (random responsibilities).
        dtype: ``"float64"`` or ``"float32"`` for the EM arithmetic.
        device: ``"cpu"``, ``"cuda"`` or ``"auto"``.
        random_state: seed of the initialisation: an integer, or None for fresh randomness
            (see :class:`~ptheta.params.Seed`).
        verbose: 1 shows a progress bar.

    Fitted attributes:
        weights_ (K,), probs_ (K, D, L) level probabilities, converged_, n_iter_,
        history_ (per step: mean objective and mean log-likelihood), best_init_.

    Example:
        >>> import ptheta
        >>> data = ptheta.datasets.load("digits")
        >>> m = ptheta.make("categorical-mixture", n_components=10, random_state=0)
        >>> m.fit(data.train.x).predict_proba(data.test.x).shape
        (447, 10)

    References:
        Bishop (2006), Pattern Recognition and Machine Learning, §9.3.3 (mixtures of
        Bernoulli distributions) and §9.4 (EM for MAP); Dempster, Laird & Rubin (1977);
        Arthur & Vassilvitskii (2007) for k-means++.
    """

    name: ClassVar[str] = "categorical-mixture"
    likelihood: ClassVar[str] = "exact"
    data_kinds: ClassVar[tuple[str, ...]] = ("binary", "categorical")
    quick_params: ClassVar[dict[str, Any]] = {"n_components": 3, "max_iter": 30, "random_state": 0}
    parameters: ClassVar[dict[str, Param]] = {"alpha": Float(low=0)}

    def __init__(
        self,
        n_components: int = 8,
        *,
        alpha: float = 0.5,
        max_iter: int = 200,
        tol: float = 1e-3,
        n_init: int = 1,
        init: str = "kmeans++",
        dtype: str = "float64",
        device: str = "cpu",
        random_state: int | None = 0,
        verbose: int = 0,
    ) -> None:
        self.n_components = n_components
        self.alpha = alpha
        self.max_iter = max_iter
        self.tol = tol
        self.n_init = n_init
        self.init = init
        self.dtype = dtype
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    def _fit(self, x: np.ndarray, y: Any, spec: DataSpec) -> None:
        flat = x.reshape(len(x), -1)
        self._check_n_components(len(flat))
        alpha = float(self.alpha)
        (n, d), levels, k = flat.shape, int(spec.n_categories), int(self.n_components)
        dev, dt = resolve_device(self.device), resolve_dtype(self.dtype)
        onehot = torch.as_tensor(one_hot(flat, levels), dtype=dt, device=dev)  # (N, D·L)
        tiny = torch.finfo(dt).tiny
        # log-normalisers of the Dirichlet(α+1) prior of every θ_k,d and of the flat one on π
        log_norm = k * d * (gammaln(levels * (alpha + 1)) - levels * gammaln(alpha + 1))
        log_norm += gammaln(k)

        def e_step(params: Params) -> tuple[float, float, torch.Tensor]:
            weights, probs = params
            log_probs = probs.clamp_min(tiny).log()  # (K, D, L)
            log_w = weights.log() + onehot @ log_probs.reshape(k, -1).T  # (N, K)
            loglik = torch.logsumexp(log_w, dim=1)  # (N,)
            log_prior = log_norm + alpha * float(log_probs.sum())
            objective = (float(loglik.sum()) + log_prior) / n
            return objective, float(loglik.mean()), torch.softmax(log_w, dim=1)

        def m_step(resp: torch.Tensor) -> Params:
            nk = resp.sum(dim=0) + 10 * torch.finfo(dt).eps  # (K,)
            counts = (resp.T @ onehot).reshape(k, d, levels) + alpha  # (K, D, L)
            total = counts.sum(dim=2, keepdim=True)
            # a component without data (possible only with alpha=0) gets uniform levels
            probs = torch.where(total > 0, counts / total.clamp_min(tiny), 1.0 / levels)
            return nk / nk.sum(), probs

        self.weights_, self.probs_ = self._fit_em(
            lambda seed: m_step(_initial_resp(onehot, k, self.init, seed)), e_step, m_step
        )

    def _log_joint(self, x: np.ndarray) -> np.ndarray:
        """log π_k + Σ_{d observed} log θ_k,d[x_d], shape (N, K)."""
        flat = x.reshape(len(x), -1)
        k, _, levels = self.probs_.shape
        log_probs = np.log(np.maximum(self.probs_, np.finfo(np.float64).tiny)).reshape(k, -1)
        # a missing entry has an all-zero one-hot row: its factor (which sums to 1) drops out
        return np.log(self.weights_) + one_hot(flat, levels) @ log_probs.T

    def _expected_shapes(self, spec: DataSpec) -> dict[str, tuple[int, ...]]:
        k = self.n_components
        return {"weights_": (k,), "probs_": (k, spec.n_dims, spec.n_categories)}

    def _impute(self, x: np.ndarray, method: str, rng: np.random.Generator) -> np.ndarray:
        flat = x.reshape(len(x), -1).astype(np.float64)  # (N, D)
        missing = np.isnan(flat)
        resp = softmax(self._log_joint(flat), axis=1)  # p(k | x_obs), (N, K)
        if method == "mode":
            # p(x_d = l | x_obs) = Σ_k p(k | x_obs) θ_k,d,l, shape (N, D, L)
            fill = np.einsum("nk,kdl->ndl", resp, self.probs_).argmax(axis=2)
        else:
            comp = sample_categorical(resp, rng)  # (N,)
            fill = sample_categorical(self.probs_[comp], rng)  # given k, entries independent
        flat[missing] = fill[missing]
        return flat

    def _sample(self, n: int, y: Any, rng: np.random.Generator) -> np.ndarray:
        comp = sample_categorical(self.weights_, rng, size=n)  # (n,)
        return sample_categorical(self.probs_[comp], rng)  # (n, D)

    def _n_parameters(self) -> int:
        k, d, levels = self.probs_.shape
        return (k - 1) + k * d * (levels - 1)


class BernoulliMixture(CategoricalMixture):
    """Mixture of independent Bernoulli variables p(x) = Σ_k π_k ∏_d μ_k,d^x_d (1 − μ_k,d)^(1−x_d).

    The binary case of :class:`CategoricalMixture` (L = 2), which documents the details:
    MAP-EM with additive smoothing ``alpha`` and an exactly monotone log-posterior in
    ``history_``, exact marginals and conditional sampling for missing (NaN) entries.
    ``probs_[:, :, 1]`` holds μ (K, D). Accepts binary data only.

    Arguments:
        as :class:`CategoricalMixture`.

    Example:
        >>> import ptheta
        >>> data = ptheta.datasets.load("digits-binary")
        >>> m = ptheta.make("bernoulli-mixture", n_components=15, random_state=0)
        >>> m.fit(data.train.x).score(data.test.x) > ptheta.make("independent").fit(
        ...     data.train.x).score(data.test.x)
        True

    References:
        Bishop (2006), Pattern Recognition and Machine Learning, §9.3.3;
        Everitt & Hand (1981), Finite Mixture Distributions, ch. 5.
    """

    name: ClassVar[str] = "bernoulli-mixture"
    data_kinds: ClassVar[tuple[str, ...]] = ("binary",)
    presets: ClassVar[dict[str, dict[str, Any]]] = {"explorer": {}}


def _m_step(
    x: torch.Tensor, resp: torch.Tensor, covariance_type: str, smooth: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Weights (K,), means (K, D) and covariances from responsibilities (N, K)."""
    n, d = x.shape
    eps = 10 * torch.finfo(x.dtype).eps
    nk = resp.sum(dim=0) + eps  # (K,)
    means = (resp.T @ x) / nk[:, None]  # (K, D)
    if covariance_type == "full":
        cov = _weighted_scatter(x, resp, means)  # (K, D, D)
        cov = cov / nk[:, None, None] + smooth * torch.eye(d, dtype=x.dtype, device=x.device)
    else:
        # Σ_n r_nk (x_n − μ_k)², in row chunks to bound memory; not E[x²] − μ², which
        # cancels catastrophically when a component sits far from the origin
        cov = torch.zeros_like(means)  # (K, D)
        for start in range(0, n, 8192):
            xc, rc = x[start : start + 8192], resp[start : start + 8192]
            cov += (rc.T[:, :, None] * (xc[None] - means[:, None]) ** 2).sum(dim=1)
        cov = cov / nk[:, None] + smooth
    return nk / n, means, cov


def _log_weighted_densities(
    x: torch.Tensor,
    weights: torch.Tensor,
    means: torch.Tensor,
    cov: torch.Tensor,
    covariance_type: str,
) -> tuple[torch.Tensor, torch.Tensor]:
    """log π_k + log N(x_n; μ_k, Σ_k), shape (N, K), and tr(Σ_k⁻¹), shape (K,)."""
    d = x.shape[1]
    # shift x and μ by the mixture mean: the expanded quadratic forms below stay accurate
    # when the data sit far from the origin (the density is unchanged by a common shift)
    centre = (weights[:, None] * means).sum(dim=0) / weights.sum()
    x, means = x - centre, means - centre
    if covariance_type == "full":
        chol, info = torch.linalg.cholesky_ex(cov)  # (K, D, D)
        if bool((info > 0).any()):
            hint = " or dtype='float64'" if x.dtype == torch.float32 else ""
            raise DataError(
                "a mixture component's covariance became singular (the data may have fewer "
                "distinct points than components, or duplicated/constant features); raise "
                f"reg_covar, use covariance_type='diag'{hint}, or use fewer components"
            )
        eye = torch.eye(d, dtype=x.dtype, device=x.device).expand_as(chol)
        prec_chol = torch.linalg.solve_triangular(chol, eye, upper=False)  # L⁻¹, (K, D, D)
        maha = _mahalanobis(x, means, prec_chol)  # (N, K)
        log_det = 2.0 * torch.log(torch.diagonal(chol, dim1=1, dim2=2)).sum(dim=1)  # (K,)
        trace_prec = (prec_chol * prec_chol).sum(dim=(1, 2))  # ‖L⁻¹‖²_F = tr(Σ⁻¹)
    else:
        if bool((cov <= 0).any()):
            raise DataError("a mixture component has zero variance; raise reg_covar")
        inv = 1.0 / cov  # (K, D)
        maha = (x * x) @ inv.T - 2.0 * x @ (means * inv).T + (means * means * inv).sum(1)  # (N, K)
        maha.clamp_min_(0.0)
        log_det = torch.log(cov).sum(dim=1)
        trace_prec = inv.sum(dim=1)
    # log π_k − ½ (D log 2π + log det Σ_k + maha), in place on the (N, K) distances
    const = torch.log(weights) - 0.5 * (d * math.log(2 * math.pi) + log_det)  # (K,)
    return maha.mul_(-0.5).add_(const), trace_prec


def _rows_per_chunk(k: int, d: int) -> int:
    """Rows per chunk of a (rows, K, D) temporary: about 2²¹ values, at least 256 rows."""
    return max(256, 2**21 // (k * d))


def _weighted_scatter(x: torch.Tensor, resp: torch.Tensor, means: torch.Tensor) -> torch.Tensor:
    """Σ_n r_nk (x_n − μ_k)(x_n − μ_k)ᵀ for every component k, shape (K, D, D).

    On the CPU one BLAS ``syrk`` per component on √r_k ⊙ (x − μ_k): the symmetric product
    costs half a general one (N·D² flops, not 2·N·D²), and x − μ_k is formed first, so
    nothing cancels when a component sits far from the origin. Elsewhere (CUDA) batched
    products over chunks of rows, never a (K, N, D) tensor.
    """
    k, d = means.shape
    if x.device.type == "cpu":
        from scipy.linalg import blas

        xs, ms = x.numpy(), means.numpy()
        roots = np.sqrt(resp.T.contiguous().numpy())  # (K, N)
        syrk = blas.get_blas_funcs("syrk", (xs,))
        out = np.empty((k, d, d), dtype=xs.dtype)
        for j in range(k):
            a = xs - ms[j]
            a *= roots[j][:, None]
            upper = syrk(1.0, a.T, trans=0, lower=0)  # a.T is (D, N) in Fortran order: a ᵀa
            out[j] = np.triu(upper) + np.triu(upper, 1).T
        return torch.from_numpy(out)
    cov = torch.zeros(k, d, d, dtype=x.dtype, device=x.device)
    rows = _rows_per_chunk(k, d)
    for start in range(0, len(x), rows):
        diff = x[None, start : start + rows] - means[:, None]  # (K, rows, D)
        weighted = diff * resp[start : start + rows].T[:, :, None]
        cov.baddbmm_(weighted.transpose(1, 2), diff)
    return cov


def _mahalanobis(x: torch.Tensor, means: torch.Tensor, prec_chol: torch.Tensor) -> torch.Tensor:
    """‖L_k⁻¹ (x_n − μ_k)‖² for every example and component, shape (N, K), with
    ``prec_chol`` (K, D, D) the lower-triangular L_k⁻¹.

    On the CPU one BLAS ``trmm`` per component (a triangular product: N·D² flops, half a
    general one) on x − μ_k formed first; elsewhere one (rows, D) @ (D, K·D) product per
    chunk of rows (memory bounded to about 2²¹ values, never a (K, N, D) tensor).
    """
    k, d = means.shape
    if x.device.type == "cpu":
        from scipy.linalg import blas

        xs, ms, ps = x.numpy(), means.numpy(), prec_chol.numpy()
        trmm = blas.get_blas_funcs("trmm", (xs,))
        out = np.empty((len(xs), k), dtype=xs.dtype)
        for j in range(k):
            # (x − μ_k) in C order is its transpose (D, N) in Fortran order: y ᵀ = L⁻¹ (x − μ)ᵀ
            y = trmm(1.0, np.asfortranarray(ps[j]), (xs - ms[j]).T, side=0, lower=1, overwrite_b=1)
            out[:, j] = np.einsum("ij,ij->j", y, y)
        return torch.from_numpy(out)
    w = prec_chol.transpose(1, 2)  # (K, D, D), (L⁻¹)ᵀ
    w_cat = w.permute(1, 0, 2).reshape(d, k * d)  # (D, K·D)
    offset = (means[:, None, :] @ w).squeeze(1)  # (K, D)
    out_t = torch.empty(len(x), k, dtype=x.dtype, device=x.device)
    rows = _rows_per_chunk(k, d)
    for start in range(0, len(x), rows):
        y = (x[start : start + rows] @ w_cat).view(-1, k, d) - offset
        torch.sum(y.square_(), dim=2, out=out_t[start : start + rows])
    return out_t


def _conditional_gaussians(
    means: np.ndarray, cov: np.ndarray, x_obs: np.ndarray, obs: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Every component's Gaussian of the unobserved coordinates M given the observed O.

    Arguments:
        means: (K, D); cov: (K, D, D); x_obs: (R, |O|) observed values; obs: (D,) mask of O.

    Returns:
        conditional means (R, K, |M|) and Cholesky factors (K, |M|, |M|) of the conditional
        covariances Σ_MM − Σ_MO Σ_OO⁻¹ Σ_OM.
    """
    mis = ~obs
    s_mm = cov[:, mis][:, :, mis]
    mean = np.broadcast_to(means[None, :, mis], (len(x_obs), len(means), int(mis.sum())))
    if obs.any():
        s_mo = cov[:, mis][:, :, obs]  # (K, M, O)
        gain = np.linalg.solve(cov[:, obs][:, :, obs], s_mo.transpose(0, 2, 1))  # Σ_OO⁻¹ Σ_OM
        gain = gain.transpose(0, 2, 1)  # Σ_MO Σ_OO⁻¹, (K, M, O)
        mean = mean + np.einsum("kmo,rko->rkm", gain, x_obs[:, None, :] - means[None][:, :, obs])
        s_mm = s_mm - gain @ s_mo.transpose(0, 2, 1)
    return mean, np.linalg.cholesky(0.5 * (s_mm + s_mm.transpose(0, 2, 1)))
