"""Mixture models fitted by EM: the Gaussian mixture (full or diagonal covariance)."""

from __future__ import annotations

import math
import warnings
from typing import Any, ClassVar

import numpy as np
import torch
from sklearn.cluster import kmeans_plusplus
from sklearn.exceptions import ConvergenceWarning

from ptheta.data.spec import DataSpec, check_values
from ptheta.errors import DataError, ParameterError
from ptheta.models.base import GenerativeModel
from ptheta.nn.device import resolve_device, resolve_dtype
from ptheta.progress import progress_bar

# Variance of U[0, 1): what uniform dequantisation adds to every discrete coordinate.
_DEQUANT_VAR = 1.0 / 12.0


class GaussianMixture(GenerativeModel):
    """Gaussian mixture p(x) = Σ_k π_k N(x; μ_k, Σ_k), fitted by EM in log space (torch).

    **Regularisation as smoothing.** ``reg_covar`` is added to every covariance in each
    M-step, as in scikit-learn. That update is exactly the EM (minorise–maximise) step for
    the *smoothed* objective Σ_n log Σ_k π_k exp(E_ε log N(x_n + ε; μ_k, Σ_k)) with
    ε ~ N(0, reg_covar·I), because E_ε log N(x + ε) = log N(x) − ½·reg_covar·tr(Σ_k⁻¹).
    So that objective never decreases from one EM step to the next; it is recorded per
    step in ``history_`` together with the plain log-likelihood.

    **Discrete data.** On binary or categorical data (``dequantize="auto"``) the mixture
    models the dequantised variable x + u, u ~ U[0, 1)^D, and ``score_samples`` returns
    the lower bound

        log P(x) ≥ log Σ_k π_k exp(E_u log N(x + u; μ_k, Σ_k))          (Jensen, per component)
                 = log Σ_k π_k N(x + ½; μ_k, Σ_k) · exp(−tr(Σ_k⁻¹)/24),

    in closed form, so ``likelihood_`` is ``"bound"`` in discrete units, comparable with
    (and never better than) the exact log-probabilities of discrete models. EM maximises
    this bound directly (the same smoothing argument with Var(u) = 1/12), which also keeps
    every variance ≥ 1/12: pixels that are constant in training cannot make a covariance
    singular. ``dequantize="none"`` treats the values as points of a continuous density
    (log-density units, not comparable with discrete models).

    Arguments:
        n_components: number of mixture components K.
        covariance_type: ``"full"`` (K, D, D) or ``"diag"`` (K, D).
        max_iter: EM iterations per initialisation.
        tol: stop when the mean smoothed objective per example improves by less than this.
        n_init: number of initialisations; the one with the best objective is kept.
        init: ``"kmeans++"`` (k-means++ centres, then a hard assignment) or ``"random"``
            (random responsibilities).
        reg_covar: variance added to the diagonal of every covariance (see above).
        dequantize: ``"auto"`` (on discrete data), ``"uniform"`` (always) or ``"none"``.
        dtype: ``"float64"`` or ``"float32"`` for the EM arithmetic.
        device: ``"cpu"``, ``"cuda"`` or ``"auto"``.
        random_state: seed for the initialisation.
        verbose: 1 shows a progress bar.

    Fitted attributes:
        weights_ (K,), means_ (K, D), covariances_ (K, D, D) or (K, D), converged_,
        n_iter_, history_ (per step: mean objective and mean log-likelihood / bound),
        dequantized_ (whether the model is of dequantised discrete data).

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
    family: ClassVar[str] = "mixtures"
    likelihood: ClassVar[str] = "exact"
    data_kinds: ClassVar[tuple[str, ...]] = ("binary", "categorical", "continuous")
    quick_params: ClassVar[dict[str, Any]] = {"n_components": 3, "max_iter": 30, "random_state": 0}

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
        dequantize: str = "auto",
        dtype: str = "float64",
        device: str = "cpu",
        random_state: int | None = None,
        verbose: int = 0,
    ) -> None:
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.max_iter = max_iter
        self.tol = tol
        self.n_init = n_init
        self.init = init
        self.reg_covar = reg_covar
        self.dequantize = dequantize
        self.dtype = dtype
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    # ----------------------------------------------------------------- fitting
    def _check_params(self, n: int) -> None:
        if not isinstance(self.n_components, (int, np.integer)) or self.n_components < 1:
            raise ParameterError(
                f"n_components must be a positive integer, got {self.n_components!r}"
            )
        if self.n_components > n:
            raise DataError(
                f"n_components={self.n_components} is more than the {n} training examples; "
                "use fewer components or more data"
            )
        if self.covariance_type not in ("full", "diag"):
            raise ParameterError(
                f"covariance_type must be 'full' or 'diag', got {self.covariance_type!r}"
            )
        if self.init not in ("kmeans++", "random"):
            raise ParameterError(f"init must be 'kmeans++' or 'random', got {self.init!r}")
        if self.dequantize not in ("auto", "uniform", "none"):
            raise ParameterError(
                f"dequantize must be 'auto', 'uniform' or 'none', got {self.dequantize!r}"
            )
        for key in ("max_iter", "n_init"):
            if int(getattr(self, key)) < 1:
                raise ParameterError(f"{key} must be at least 1, got {getattr(self, key)!r}")
        if self.reg_covar < 0 or self.tol < 0:
            raise ParameterError("reg_covar and tol must be >= 0")

    def _fit(self, x: np.ndarray, y: Any, spec: DataSpec) -> None:
        flat = x.reshape(len(x), -1).astype(np.float64)
        self._check_params(len(flat))
        deq = self.dequantize == "uniform" or (self.dequantize == "auto" and spec.is_discrete)
        if deq and not spec.is_discrete and self.dequantize == "uniform":
            raise ParameterError("dequantize='uniform' needs discrete (binary/categorical) data")
        if deq:
            flat = flat + 0.5  # centre of the unit cell [x, x+1)
        elif spec.is_discrete:
            pass  # the user asked for a density on the raw integer values
        smooth = self.reg_covar + (_DEQUANT_VAR if deq else 0.0)
        report_smooth = _DEQUANT_VAR if deq else 0.0
        if not deq:
            constant = np.flatnonzero(np.ptp(flat, axis=0) == 0)
            if constant.size:
                warnings.warn(
                    f"{constant.size} feature(s) are constant in the training data (first: "
                    f"{constant[:5].tolist()}); their variance is only reg_covar="
                    f"{self.reg_covar:g}, so held-out values that differ get almost no density. "
                    "If the data are discrete, keep dequantize='auto' and declare the kind; "
                    "otherwise raise reg_covar.",
                    UserWarning,
                    stacklevel=3,
                )

        dev, dt = resolve_device(self.device), resolve_dtype(self.dtype)
        xt = torch.as_tensor(flat, dtype=dt, device=dev)
        seeds = np.random.SeedSequence(self.random_state).spawn(int(self.n_init))
        best: dict[str, Any] | None = None
        total = int(self.n_init) * int(self.max_iter)
        with progress_bar(total, f"EM {self.name}", enabled=bool(self.verbose)) as advance:
            for run, seed in enumerate(seeds):
                result = self._em_run(xt, smooth, report_smooth, seed, advance)
                result["init"] = run
                if best is None or result["objective"] > best["objective"]:
                    best = result
        assert best is not None
        if not best["converged"]:
            warnings.warn(
                f"EM did not converge in max_iter={self.max_iter} iterations (last change of "
                f"the objective per example: {best['last_change']:.3g} > tol={self.tol:g}); "
                "raise max_iter or tol",
                ConvergenceWarning,
                stacklevel=3,
            )
        self.weights_ = best["weights"].cpu().numpy().astype(np.float64)
        self.means_ = best["means"].cpu().numpy().astype(np.float64)
        self.covariances_ = best["cov"].cpu().numpy().astype(np.float64)
        self.converged_ = bool(best["converged"])
        self.n_iter_ = int(best["n_iter"])
        self.history_ = best["history"]
        self.dequantized_ = bool(deq)
        self.best_init_ = int(best["init"])

    def _em_run(
        self,
        x: torch.Tensor,
        smooth: float,
        report_smooth: float,
        seed: np.random.SeedSequence,
        advance: Any,
    ) -> dict[str, Any]:
        resp = self._initial_resp(x, seed)
        weights, means, cov = _m_step(x, resp, self.covariance_type, smooth)
        history: list[dict[str, float]] = []
        prev, change, converged, it = -math.inf, math.inf, False, 0
        for it in range(1, int(self.max_iter) + 1):
            log_w, trace_prec = _log_weighted_densities(
                x, weights, means, cov, self.covariance_type
            )
            objective = torch.logsumexp(log_w - 0.5 * smooth * trace_prec, dim=1)  # (N,)
            loglik = torch.logsumexp(log_w - 0.5 * report_smooth * trace_prec, dim=1)
            mean_obj = float(objective.mean())
            history.append(
                {"step": it, "objective": mean_obj, "log_likelihood": float(loglik.mean())}
            )
            log_resp = log_w - 0.5 * smooth * trace_prec - objective[:, None]
            weights, means, cov = _m_step(x, log_resp.exp(), self.covariance_type, smooth)
            change = mean_obj - prev
            prev = mean_obj
            advance(1, objective=mean_obj)
            if abs(change) < self.tol:
                converged = True
                break
        advance(int(self.max_iter) - it)
        # The parameters returned are those after the last M-step, one step beyond the last
        # recorded objective; EM guarantees they are at least as good.
        return {
            "weights": weights,
            "means": means,
            "cov": cov,
            "objective": prev,
            "converged": converged,
            "n_iter": it,
            "history": history,
            "last_change": abs(change),
        }

    def _initial_resp(self, x: torch.Tensor, seed: np.random.SeedSequence) -> torch.Tensor:
        n, k = x.shape[0], int(self.n_components)
        rs = np.random.RandomState(seed.generate_state(1)[0])
        if self.init == "random":
            r = rs.uniform(size=(n, k))
            return torch.as_tensor(r / r.sum(axis=1, keepdims=True), dtype=x.dtype, device=x.device)
        centres, _ = kmeans_plusplus(x.cpu().numpy(), k, random_state=rs)
        c = torch.as_tensor(centres, dtype=x.dtype, device=x.device)
        nearest = torch.cdist(x, c).argmin(dim=1)
        return torch.nn.functional.one_hot(nearest, k).to(x.dtype)

    # ----------------------------------------------------------------- scoring
    def _smoothed_log_weighted(self, x: np.ndarray) -> torch.Tensor:
        """log π_k + (bound on) log p_k(x) for validated examples, shape (N, K)."""
        flat = x.reshape(len(x), -1).astype(np.float64)
        smooth = 0.0
        if self.dequantized_:
            flat, smooth = flat + 0.5, _DEQUANT_VAR
        dt = resolve_dtype(self.dtype)
        weights, means, cov = (
            torch.as_tensor(a, dtype=dt) for a in (self.weights_, self.means_, self.covariances_)
        )
        xt = torch.as_tensor(flat, dtype=dt)
        log_w, trace_prec = _log_weighted_densities(xt, weights, means, cov, self.covariance_type)
        return log_w - 0.5 * smooth * trace_prec

    def _score_samples(self, x: np.ndarray) -> np.ndarray:
        return torch.logsumexp(self._smoothed_log_weighted(x), dim=1).double().numpy()

    def predict_proba(self, X: Any) -> np.ndarray:
        """Responsibilities p(component | x), shape (N, K)."""
        self._check_fitted()
        x = check_values(X, self.fitted_spec)
        return torch.softmax(self._smoothed_log_weighted(x), dim=1).double().numpy()

    def predict(self, X: Any) -> np.ndarray:
        """Most responsible component of each example, shape (N,)."""
        return self.predict_proba(X).argmax(axis=1)

    def embed(self, X: Any) -> np.ndarray:
        """Representation: the responsibilities, shape (N, K)."""
        return self.predict_proba(X)

    def _sample(self, n: int, y: Any, rng: np.random.Generator) -> np.ndarray:
        k, d = self.means_.shape
        comp = rng.choice(k, size=n, p=self.weights_ / self.weights_.sum())
        z = rng.standard_normal((n, d))
        if self.covariance_type == "full":
            chol = np.linalg.cholesky(self.covariances_)  # (K, D, D)
            out = self.means_[comp] + np.einsum("nij,nj->ni", chol[comp], z)
        else:
            out = self.means_[comp] + np.sqrt(self.covariances_[comp]) * z
        spec = self.fitted_spec
        if spec.is_discrete:
            # dequantised: x = floor(x + u); otherwise the density is over the integer values
            # themselves, so round. Mass outside the valid levels is clipped onto the edges.
            out = np.floor(out) if self.dequantized_ else np.round(out)
            out = np.clip(out, 0, spec.n_categories - 1)
        return out

    def _n_parameters(self) -> int:
        k, d = self.means_.shape
        cov = k * d * (d + 1) // 2 if self.covariance_type == "full" else k * d
        return (k - 1) + k * d + cov

    def _fitted_likelihood(self, spec: DataSpec) -> str:
        return "bound" if self.dequantized_ else "exact"

    def _fitted_units(self, spec: DataSpec) -> str:
        if spec.is_discrete and not self.dequantized_:
            return "continuous"  # a density on the integer values: not a probability
        return "discrete" if spec.is_discrete else "continuous"


def _m_step(
    x: torch.Tensor, resp: torch.Tensor, covariance_type: str, smooth: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Weights (K,), means (K, D) and covariances from responsibilities (N, K)."""
    n, d = x.shape
    eps = 10 * torch.finfo(x.dtype).eps
    nk = resp.sum(dim=0) + eps  # (K,)
    means = (resp.T @ x) / nk[:, None]  # (K, D)
    if covariance_type == "full":
        diff = x[None] - means[:, None]  # (K, N, D)
        cov = (resp.T[:, :, None] * diff).transpose(1, 2) @ diff / nk[:, None, None]  # (K, D, D)
        cov = cov + smooth * torch.eye(d, dtype=x.dtype, device=x.device)
    else:
        avg_x2 = (resp.T @ (x * x)) / nk[:, None]
        cov = (avg_x2 - means**2).clamp_min(0.0) + smooth  # (K, D)
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
        # y = L⁻¹ (x − μ) for every component at once: (K, N, D)
        y = x[None] @ prec_chol.transpose(1, 2) - (means[:, None] @ prec_chol.transpose(1, 2))
        maha = (y * y).sum(dim=2)  # (K, N)
        log_det = 2.0 * torch.log(torch.diagonal(chol, dim1=1, dim2=2)).sum(dim=1)  # (K,)
        trace_prec = (prec_chol * prec_chol).sum(dim=(1, 2))  # ‖L⁻¹‖²_F = tr(Σ⁻¹)
    else:
        if bool((cov <= 0).any()):
            raise DataError("a mixture component has zero variance; raise reg_covar")
        inv = 1.0 / cov  # (K, D)
        maha = (x * x) @ inv.T - 2.0 * x @ (means * inv).T + (means * means * inv).sum(1)  # (N, K)
        maha = maha.T.clamp_min(0.0)
        log_det = torch.log(cov).sum(dim=1)
        trace_prec = inv.sum(dim=1)
    log_norm = -0.5 * (d * math.log(2 * math.pi) + log_det[:, None] + maha)  # (K, N)
    return (torch.log(weights)[:, None] + log_norm).T, trace_prec
