"""Mixture models fitted by EM: Gaussian mixture, Bernoulli mixture and categorical mixture.

Every mixture here fits from expected sufficient statistics summed over batches of the
data (``capabilities().streams``): full-batch EM, or stepwise (mini-batch) EM, driven by
:func:`ptheta.models.em.fit_em`; an in-memory fit is the same computation on the array.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import numpy as np
import torch
from scipy.special import gammaln, logsumexp, softmax
from sklearn.cluster import kmeans_plusplus

from ptheta.data.batch_stats import first_observed
from ptheta.data.spec import DataSpec, check_values
from ptheta.data.stream import ArraySource, Source, accumulate, flat_rows
from ptheta.errors import DataError, ParameterError
from ptheta.models.base import GenerativeModel
from ptheta.models.blas import blas_threads_for
from ptheta.models.capabilities import Capabilities
from ptheta.models.em import EMProblem, Params, Stats, blend_moments, fit_em
from ptheta.models.missing import missing_patterns, one_hot, row_gaussian_conditionals
from ptheta.models.sampling import sample_categorical
from ptheta.nn.device import resolve_device, resolve_dtype
from ptheta.params import Choice, Device, Float, Int, Param, Seed

# Variance of U[0, 1): what uniform dequantisation adds to every discrete coordinate.
_DEQUANT_VAR = 1.0 / 12.0
# The initialisation (k-means++ or random responsibilities) sees at most this many examples,
# drawn without replacement by the restart's seed (all of them when there are no more).
_INIT_ROWS = 10_000
# Values in one block of the E-step's (K, D, rows) temporaries: on the CPU about 2 MB, so
# a block stays in cache from the product that forms it to the one that sums it.
_BLOCK_VALUES_CPU = 2**18
_BLOCK_VALUES = 2**22
# ... but at least this many rows a block on the CPU (BLAS products over fewer rows run far
# below their peak: at D = 256, 512 rows a block take 3/4 of the time of 102)
_MIN_BLOCK_ROWS_CPU = 512
# An E-step block's products of at most this many multiply-adds (K (D + 1) × (D + 1) ×
# rows for the whitening, then K Gram matrices) run on one BLAS thread: the block loop calls
# BLAS 1 + K times with Python in between, and waking a second thread for each call costs
# more than it brings. On this 2-core machine, K = 10, 10,000 rows, 5 EM iterations, one
# thread against two: D = 64 0.32 / 1.19 s (scikit-learn 0.48 / 0.98 s), D = 96 0.59 /
# 1.74 s, D = 128 1.12 / 1.95 s; from D = 192 (1.9e8 here) two threads win (2.75 / 2.49 s)
_SMALL_BLOCK = 1 << 27
# from this many features on, the CPU whitens each component by a triangular product
# (trmm: half the flops of the one general product of every component, worth its K calls)
_TRIANGULAR_FROM = 128
_EPS = 10 * np.finfo(np.float64).eps
# values (rows × K × D²) per batched solve of the rows with missing entries (~16 MB a table)
_MISSING_CHUNK = 2**21


class _EMMixture(GenerativeModel):
    """What every mixture here shares: EM from statistics summed over batches (full-batch or
    stepwise, ``n_init`` restarts, progress bar, convergence warning), parameter checks,
    and scoring / responsibilities from ``_log_joint(x)`` = log π_k + log p(x_observed | k),
    shape (N, K).
    """

    family: ClassVar[str] = "mixtures"
    can_marginalise: ClassVar[bool] = True
    fits_missing: ClassVar[bool] = True  # EM over the missing entries too
    abilities: ClassVar[dict[str, Any]] = {"embeds": True, "streams": True}
    # what every EM mixture shares; each family adds its own
    parameters: ClassVar[dict[str, Param]] = {
        "n_components": Int(low=1),
        "max_iter": Int(low=1),
        "tol": Float(low=0),
        "n_init": Int(low=1),
        "init": Choice("kmeans++", "random"),
        "em": Choice("full", "minibatch"),
        "batch_size": Int(low=1, none=True),
        "step_decay": Float(low=0.5, high=1.0, low_open=True),
        "dtype": Choice("float64", "float32"),
        "device": Device(),
        "random_state": Seed(),
        "max_time": Float(low=0, low_open=True, none=True),
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

    def _fit(self, x: np.ndarray, y: Any, spec: DataSpec) -> None:
        self._fit_stream(ArraySource(x), y, spec)  # one computation, in memory or streamed

    def _check_n_components(self, n: int) -> None:
        """No more components than the ``n`` training examples (a rule of the data)."""
        k = int(self.n_components)
        if k > n:
            raise DataError(
                f"n_components={k} is more than the {n} training examples; "
                "use fewer components or more data"
            )

    def _run_em(self, problem: EMProblem, data: Source) -> tuple[np.ndarray, ...]:
        """Full-batch or stepwise EM of ``problem`` on ``data`` (:func:`ptheta.models.em.fit_em`).
        Keeps the run with the best objective: sets ``converged_``, ``n_iter_``,
        ``history_``, ``best_init_`` and returns its parameters as float64 arrays.
        """
        result = fit_em(
            problem, data, em=self.em, batch_size=self.batch_size, step_decay=self.step_decay,
            n_init=self.n_init, max_iter=self.max_iter, tol=self.tol,
            random_state=self.random_state, label=f"EM {self.name}", verbose=bool(self.verbose),
            max_time=self.max_time,
        )  # fmt: skip
        self.converged_ = result.converged
        self.n_iter_ = result.n_iter
        self.history_ = result.history
        self.best_init_ = result.best_init
        return result.params


# --------------------------------------------------------------------------- E-step arithmetic
# The E-step runs on blocks of rows: numpy arrays on the CPU (each product one BLAS call),
# torch tensors on another device. These few helpers are where the two differ.
class _Backend:
    """Where (and in which float type) the E-step's arithmetic runs."""

    def __init__(self, device: str, dtype: str) -> None:
        self.device = resolve_device(device)
        self.torch_dtype = resolve_dtype(dtype)
        self.cpu = self.device.type == "cpu"
        self.np_dtype = np.dtype(np.float64 if self.torch_dtype == torch.float64 else np.float32)

    def array(self, a: np.ndarray) -> Any:
        if self.cpu:
            return np.ascontiguousarray(a, dtype=self.np_dtype)
        return torch.as_tensor(a, dtype=self.torch_dtype, device=self.device)

    def block_rows(self, per_row: int) -> int:
        """Rows per block of a temporary with ``per_row`` values per row."""
        if self.cpu:
            return int(np.clip(_BLOCK_VALUES_CPU // max(1, per_row), _MIN_BLOCK_ROWS_CPU, 65536))
        return int(np.clip(_BLOCK_VALUES // max(1, per_row), 64, 65536))


class _Workspace:
    """Arrays the E-step's blocks reuse (numpy, one set per fit): a fresh temporary of a
    few megabytes per block costs its page faults every time (on the CPU, as much as the
    arithmetic that fills it at D ≤ 64)."""

    def __init__(self) -> None:
        self.arrays: dict[str, np.ndarray] = {}

    def get(self, name: str, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        """An uninitialised array of ``shape`` (the same memory each call for ``name``)."""
        size = math.prod(shape)
        a = self.arrays.get(name)
        if a is None or a.size < size or a.dtype != dtype:
            a = self.arrays[name] = np.empty(size, dtype)
        return a[:size].reshape(shape)


def _np64(a: Any) -> Any:
    """A sum (array or number, numpy or torch) as float64 numpy."""
    if isinstance(a, torch.Tensor):
        a = a.detach().cpu().numpy()
    return np.asarray(a, dtype=np.float64)


def _log_normalise(log_w: Any) -> tuple[Any, Any]:
    """Softmax over the first axis of ``log_w`` (K, b), in place, and log Σ_k exp, (b,)."""
    xp = torch if isinstance(log_w, torch.Tensor) else np
    top = xp.amax(log_w, 0)
    log_w -= top
    # terms below e^−700 of the largest count as e^−700 (a relative change < 1e-300): exp
    # of numbers so negative that it underflows is many times slower
    if xp is np:
        np.maximum(log_w, -700.0, out=log_w)
    else:
        log_w.clamp_(min=-700.0)
    resp = xp.exp(log_w, out=log_w)
    total = resp.sum(0)
    resp /= total
    return resp, top + xp.log(total)


def _hard(score: Any) -> Any:
    """One-hot (K, b) of the largest of ``score`` (K, b) in each column."""
    best = score.argmax(0)
    if isinstance(score, torch.Tensor):
        return (torch.arange(len(score), device=score.device)[:, None] == best).to(score.dtype)
    return (np.arange(len(score))[:, None] == best).astype(score.dtype)


def _weighted_gram(y: Any, resp: Any, work: _Workspace | None = None) -> Any:
    """Σ_n r_kn y_kn y_knᵀ for every k, (K, E, E), of y (K, E, b) and weights r (K, b):
    its upper triangle at least (the lower may be zeros; see `_symmetric`).

    Numpy from E = 32 on: one BLAS ``syrk`` per component on y_k ⊙ √r_k (the symmetric
    product, half the work of a general one, worth its extra calls once rows are long);
    otherwise one batched general product."""
    e = y.shape[1]
    if isinstance(y, torch.Tensor) or work is None:
        return (y * resp[:, None, :]) @ y.swapaxes(1, 2)
    if e < 32:
        weighted = np.multiply(y, resp[:, None, :], out=work.get("weighted", y.shape, y.dtype))
        return weighted @ y.swapaxes(1, 2)
    from scipy.linalg import blas

    syrk = blas.get_blas_funcs("syrk", (y,))
    root = np.sqrt(resp)
    out = np.empty((len(y), e, e), dtype=y.dtype)
    weighted = work.get("weighted", y.shape[1:], y.dtype)
    for j in range(len(y)):
        # (y_k √r)ᵀ in Fortran order is (b, E): trans=1 gives its Gram matrix (E, E)
        np.multiply(y[j], root[j], out=weighted)
        out[j] = syrk(1.0, weighted.T, trans=1, lower=0)  # upper triangle
    return out


def _symmetric(upper: np.ndarray) -> np.ndarray:
    """Matrices (..., E, E) from their upper triangles."""
    return np.triu(upper) + np.swapaxes(np.triu(upper, 1), -1, -2)


def _summed(blocks: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    """The blocks' sums added up, as float64."""
    out = {k: _np64(v).copy() for k, v in blocks[0].items()}
    for block in blocks[1:]:
        for k, v in block.items():
            out[k] += _np64(v)
    return out


def _read_rows(data: Source, index: np.ndarray) -> np.ndarray:
    """Rows ``index`` (sorted) of ``data``, read a source batch at a time."""
    size = data.batch_rows()
    return np.concatenate([data.read(index[i : i + size]) for i in range(0, len(index), size)])


def _init_index(n: int, rs: np.random.RandomState) -> np.ndarray:
    """The examples an initialisation sees: all, or `_INIT_ROWS` of them (sorted)."""
    if n <= _INIT_ROWS:
        return np.arange(n)
    return np.sort(rs.choice(n, _INIT_ROWS, replace=False))


class _Whitening:
    """What one Gaussian E-step needs of the parameters (weights (K,), means (K, D) and
    covariances (K, D, D) or (K, D)): each component's whitening y = L_k⁻¹ (u − μ_k) (full;
    L_k the Cholesky factor of Σ_k) or y = (u − μ_k) / σ_k (diagonal), the log-weights
    log π_k − ½ (D log 2π + log det Σ_k) − ½·smooth·tr(Σ_k⁻¹) of the smoothed objective,
    and ``plain`` (K,), ½ (smooth − report)·tr(Σ_k⁻¹), what turns them into the reported
    log-likelihood's (None when it is zero)."""

    def __init__(
        self,
        params: Params,
        diag: bool,
        smooth: float,
        report: float,
        backend: _Backend,
        *,
        identity: bool = False,
    ) -> None:
        weights, means, cov = params
        means = np.asarray(means, dtype=np.float64)
        k, d = means.shape
        self.k, self.d, self.diag, self.means, self.identity = k, d, diag, means, identity
        self.work: _Workspace | None = None  # numpy blocks' reused arrays (set by the problem)
        self.lower: list[np.ndarray] | None = None  # L_k⁻¹ for trmm (wide data, CPU)
        if identity:  # y = u − μ_k: distances to the centres (the initial assignment)
            log_det, trace = np.zeros(k), np.zeros(k)
            self.factor = np.ones((k, d)) if diag else np.broadcast_to(np.eye(d), (k, d, d))
            inverse = self.factor
        elif diag:
            if (cov <= 0).any():
                raise DataError("a mixture component has zero variance; raise reg_covar")
            self.factor = np.sqrt(cov)  # (K, D)
            inverse = 1.0 / self.factor
            log_det, trace = np.log(cov).sum(axis=1), (1.0 / cov).sum(axis=1)
        else:
            try:
                self.factor = np.linalg.cholesky(cov)  # (K, D, D)
            except np.linalg.LinAlgError:
                raise DataError(
                    "a mixture component's covariance became singular (the data may have fewer "
                    "distinct points than components, or duplicated/constant features); raise "
                    "reg_covar, use covariance_type='diag', or use fewer components"
                ) from None
            # LAPACK's triangular inverse (D³/3 flops) of each factor, L_k⁻¹ (K, D, D): as
            # fast as torch's batched solve on one thread and, unlike it, no second thread
            # pool beside numpy's BLAS (with 2 threads the two pools fought: 87 ms a call
            # at K = 10, D = 64, against 0.7 ms)
            from scipy.linalg import lapack

            inverse = np.tril(np.stack([lapack.dtrtri(f, lower=1)[0] for f in self.factor]))
            log_det = 2.0 * np.log(np.diagonal(self.factor, axis1=1, axis2=2)).sum(axis=1)
            trace = (inverse * inverse).sum(axis=(1, 2))  # ‖L⁻¹‖²_F = tr(Σ⁻¹)
        with np.errstate(divide="ignore"):
            log_weights = np.log(weights)
        # float64 numpy copies for the E-step of rows with missing entries (_MissingRows)
        self.log_weights, self.trace, self.cov, self.inverse_np = log_weights, trace, cov, inverse
        const = log_weights - 0.5 * (d * math.log(2 * math.pi) + log_det) - 0.5 * smooth * trace
        self.const = backend.array(const)
        self.plain = None if smooth == report else backend.array(0.5 * (smooth - report) * trace)
        # the reported log-likelihood from the smoothed one's responsibilities r:
        # log Σ_k exp(a_k + p_k) = log Σ_k exp(a_k) + log Σ_k r_k exp(p_k), shifted by the
        # largest p_k (where the p_k spread too far for that, a logsumexp of its own)
        penalty = 0.5 * (smooth - report) * trace  # p_k, (K,)
        self.plain_top, self.plain_factor = float(penalty.max()), None
        if self.plain is not None and float(np.ptp(penalty)) < 30.0:
            self.plain_factor = backend.array(np.exp(penalty - self.plain_top))
        if diag:
            self.inverse = backend.array(inverse)
            self.centres = backend.array(means)
        else:
            # [L_k⁻¹ (u − μ_k); 1] for every k in one (K·(D+1), D+1) @ (D+1, rows) product of
            # the rows with a 1 appended: block k is [[L_k⁻¹, −L_k⁻¹ μ_k], [0, 1]]
            stacked = np.zeros((k, d + 1, d + 1))
            stacked[:, :d, :d] = inverse
            stacked[:, :d, d] = -np.einsum("kij,kj->ki", inverse, means)
            stacked[:, d, d] = 1.0
            self.stacked = backend.array(stacked.reshape(k * (d + 1), d + 1))
            # wide data on the CPU: L_k⁻¹ (lower triangular, Fortran order) for trmm
            self.lower = None
            if backend.cpu and d >= _TRIANGULAR_FROM and not identity:
                self.lower = [
                    np.asfortranarray(inverse[j], dtype=backend.np_dtype) for j in range(k)
                ]

    def sums(self, u: Any, resp: Any = None, hard: bool = False) -> dict[str, Any]:
        """Sums over the rows ``u`` (b, D + 1; the last column 1) of the responsibilities
        r (K,), Σ r·y (K, D) and Σ r·y yᵀ (K, D, D) or Σ r·y² (K, D) of the whitened rows,
        and of the smoothed and reported log-likelihoods; r the posteriors, or given (K, b),
        or (``hard``) one-hot on the nearest mean."""
        xp = torch if isinstance(u, torch.Tensor) else np
        if hard and self.identity and xp is np:
            return self._nearest_sums(u)
        k, d, b = self.k, self.d, u.shape[0]
        work = self.work if xp is np else None
        if self.diag:
            if work is None:
                y = (u[:, :d].T[None] - self.centres[:, :, None]) * self.inverse[:, :, None]
                sq = y * y  # (K, D, b)
            else:
                y = work.get("y", (k, d, b), u.dtype)
                np.subtract(u[:, :d].T[None], self.centres[:, :, None], out=y)
                y *= self.inverse[:, :, None]
                sq = np.multiply(y, y, out=work.get("sq", (k, d, b), u.dtype))
            maha = sq.sum(1)  # (K, b)
        elif work is None:
            y = (self.stacked @ u.T).reshape(k, d + 1, b)  # y[k] = [L_k⁻¹ (u − μ_k)ᵀ; 1]
            maha = xp.einsum("kdb,kdb->kb", y[:, :d], y[:, :d])  # (K, b)
        elif self.lower is None:  # the same, in the workspace's arrays
            y = work.get("y", (k * (d + 1), b), u.dtype)
            y = np.matmul(self.stacked, u.T, out=y).reshape(k, d + 1, b)
            maha = work.get("maha", (k, b), u.dtype)
            np.einsum("kdb,kdb->kb", y[:, :d], y[:, :d], out=maha)
        else:  # wide: y_k = L_k⁻¹ (u − μ_k) by one triangular product per component
            y = self._triangular(u, work)
            maha = work.get("maha", (k, b), u.dtype)
            np.einsum("kdb,kdb->kb", y[:, :d], y[:, :d], out=maha)
        objective = loglik = 0.0
        if hard:
            resp = _hard(-maha)
        elif resp is None:
            if work is None:
                log_w = self.const[:, None] - 0.5 * maha  # (K, b)
            else:  # in place on the distances
                log_w = np.multiply(maha, -0.5, out=maha)
                log_w += self.const[:, None]
            if self.plain is not None and self.plain_factor is None:
                loglik = _log_normalise(log_w + self.plain[:, None])[1].sum()
            resp, log_p = _log_normalise(log_w)
            objective = log_p.sum()
            if self.plain is None:
                loglik = objective
            elif self.plain_factor is not None:
                mixed = xp.log(self.plain_factor @ resp).sum()  # log Σ_k r_k exp(p_k − max p)
                loglik = objective + b * self.plain_top + mixed
        if self.diag:
            n, first = resp.sum(1), (y @ resp[:, :, None])[:, :, 0]  # (K,), (K, D)
            second = (sq @ resp[:, :, None])[:, :, 0]  # (K, D)
        else:  # one product: [[Σ r y yᵀ, Σ r y], [Σ r yᵀ, Σ r]] per component
            full = _weighted_gram(y, resp, work)  # (K, D+1, D+1)
            n, first, second = full[:, d, d], full[:, :d, d], full[:, :d, :d]
        return {"n": n, "first": first, "second": second,
                "objective": objective, "log_likelihood": loglik}  # fmt: skip

    def _triangular(self, u: np.ndarray, work: _Workspace) -> np.ndarray:
        """[L_k⁻¹ (u − μ_k)ᵀ; 1] for every k, (K, D + 1, b), in the workspace: each block
        y_k holds (u − μ_k)ᵀ, then BLAS ``trmm`` multiplies it in place — as the (b, D)
        Fortran-order matrix y_kᵀ, on the right by (L_k⁻¹)ᵀ."""
        from scipy.linalg import blas

        assert self.lower is not None
        k, d, b = self.k, self.d, u.shape[0]
        y = work.get("y", (k, d + 1, b), u.dtype)
        trmm = blas.get_blas_funcs("trmm", (y,))
        for j in range(k):
            block = y[j, :d]  # (D, b), C order: its transpose is Fortran order
            np.subtract(u[:, :d].T, self.means[j][:, None], out=block)
            out = trmm(1.0, self.lower[j], block.T, side=1, lower=1, trans_a=1, overwrite_b=1)
            if not np.shares_memory(out, block):  # (BLAS wrappers that copied)
                block[...] = out.T
        y[:, d, :] = 1.0
        return y

    def _nearest_sums(self, u: np.ndarray) -> dict[str, Any]:
        """:meth:`sums` of the identity whitening with ``hard`` responsibilities (the initial
        assignment, numpy): each row counts for its nearest centre only, so the rows are
        grouped by centre and each group's sums are taken alone — N·D² work for the
        scatter, not K·N·D² for every centre's. Nearest by ‖u‖² − 2 u·μ_k + ‖μ_k‖² (one
        product; the first of equal distances, as ``_hard``)."""
        k, d = self.k, self.d
        x = u[:, :d]
        dist = (self.means**2).sum(axis=1) - 2.0 * (x @ self.means.T)  # (b, K), less ‖u‖²
        nearest = dist.argmin(axis=1)
        counts = np.bincount(nearest, minlength=k)
        order = np.argsort(nearest, kind="stable")
        first = np.zeros((k, d))
        second = np.zeros((k, d) if self.diag else (k, d, d))
        stop = 0
        for j in range(k):
            start, stop = stop, stop + int(counts[j])
            if start == stop:
                continue
            y = x[order[start:stop]] - self.means[j]  # (n_k, D)
            first[j] = y.sum(axis=0)
            second[j] = (y * y).sum(axis=0) if self.diag else y.T @ y
        return {"n": counts.astype(np.float64), "first": first, "second": second,
                "objective": 0.0, "log_likelihood": 0.0}  # fmt: skip

    def moments(self, sums: Mapping[str, np.ndarray]) -> tuple[np.ndarray, ...]:
        """Counts (K,), means (K, D) and covariances (without smoothing) of the weighted rows
        from their sums, back in the rows' units."""
        n = sums["n"]
        delta = sums["first"] / (n + _EPS)[:, None]  # the mean's move, whitened
        if self.diag:
            var = np.maximum(sums["second"] / (n + _EPS)[:, None] - delta**2, 0.0)
            return n, self.means + self.factor * delta, var * self.factor**2
        scatter = _symmetric(sums["second"]) / (n + _EPS)[:, None, None]
        scatter = scatter - np.einsum("ki,kj->kij", delta, delta)
        if self.d >= _TRIANGULAR_FROM and not self.identity:  # L S Lᵀ by two trmm, 2D³ flops
            from scipy.linalg import blas

            trmm = blas.get_blas_funcs("trmm", (scatter,))
            cov = np.empty_like(scatter)
            for j, (factor, s) in enumerate(zip(self.factor, scatter, strict=True)):
                left = trmm(1.0, factor, s.T, side=0, lower=1)  # L S (S symmetric: sᵀ = s)
                cov[j] = trmm(1.0, factor, left, side=1, lower=1, trans_a=1)  # (L S) Lᵀ
        else:
            cov = self.factor @ scatter @ self.factor.transpose(0, 2, 1)
        mean = self.means + np.einsum("kij,kj->ki", self.factor, delta)
        return n, mean, 0.5 * (cov + cov.transpose(0, 2, 1))


def _missing_sums(
    u: np.ndarray, whitening: _Whitening, smooth: float, report: float, log_scale: np.ndarray
) -> dict[str, Any]:
    """The E-step's sums (those of :meth:`_Whitening.sums`) over rows ``u`` (b, D) of
    standardised values with NaN entries, in float64, every row with its own pattern of
    observed entries O in one batched solve per chunk of rows
    (:func:`~ptheta.models.missing.row_gaussian_conditionals`; diagonal covariances: all
    rows at once, no solves).

    Component k's posterior given u_O is r_k ∝ π_k N(u_O; μ_k,O, Σ_k,OO) e^{−½·smooth·tr Σ_k⁻¹}
    (the smoothed objective of the complete rows with the missing entries integrated out),
    and the whitened statistics are those of the expected complete row: Σ r·y and
    Σ r·(y yᵀ + L_k⁻¹ C_k L_k⁻ᵀ) with y = L_k⁻¹ (E[u | u_O, k] − μ_k) and C_k = Cov[u | u_O, k]
    (the Gaussian conditionals of the missing entries). The reported log-likelihood is
    log Σ_k π_k N(u_O; μ_k,O, Σ_k,OO) e^{−½·report·tr Σ_k,OO⁻¹}, what ``score_samples``
    returns. Both sums get + Σ_{d missing} log scale_d per row, so that the Jacobian of all
    D features, which :meth:`_GaussianEM.expected` subtracts, leaves the observed ones'."""
    k, d = whitening.k, whitening.d
    seen = ~np.isnan(u)
    missing, observed = (~seen).astype(np.float64), seen.astype(np.float64)
    jacobian = float((missing @ log_scale).sum())
    if whitening.diag:
        y = (np.where(seen, u, 0.0)[:, None, :] - whitening.means[None]) / whitening.factor[None]
        y *= seen[:, None, :]  # a missing entry sits at its conditional mean: y = 0
        log_var = np.log(2 * math.pi * whitening.cov)  # (K, D)
        log_density = -0.5 * ((y * y).sum(2) + observed @ log_var.T)  # (b, K)
        trace_obs = observed @ (1.0 / whitening.cov).T  # tr Σ_k,OO⁻¹, (b, K)
        resp, objective, loglik = _missing_posteriors(
            log_density, trace_obs, whitening, smooth, report
        )
        # a missing entry's conditional variance is σ_k²: 1 once whitened
        second = np.einsum("bk,bkd->kd", resp, y * y) + resp.T @ missing
        return {"n": resp.sum(0), "first": np.einsum("bk,bkd->kd", resp, y), "second": second,
                "objective": objective + jacobian, "log_likelihood": loglik + jacobian}  # fmt: skip
    n, first, second = np.zeros(k), np.zeros((k, d)), np.zeros((k, d, d))
    extra_sum = np.zeros((k, d, d))
    objective = loglik = 0.0
    step = max(1, _MISSING_CHUNK // (k * d * d))  # rows per batched solve
    for start in range(0, len(u), step):
        log_density, filled, extra, trace_obs = row_gaussian_conditionals(
            u[start : start + step], whitening.means, whitening.cov, traces=bool(report)
        )
        if trace_obs is None:
            trace_obs = np.zeros_like(log_density)
        resp, part_objective, part_loglik = _missing_posteriors(
            log_density, trace_obs, whitening, smooth, report
        )
        y = np.einsum("kij,bkj->bki", whitening.inverse_np, filled - whitening.means[None])
        n += resp.sum(0)
        first += np.einsum("bk,bkd->kd", resp, y)
        second += np.einsum("bk,bki,bkj->kij", resp, y, y)
        extra_sum += np.einsum("bk,bkij->kij", resp, extra)
        objective += part_objective
        loglik += part_loglik
    second += whitening.inverse_np @ extra_sum @ whitening.inverse_np.transpose(0, 2, 1)
    return {"n": n, "first": first, "second": second,
            "objective": objective + jacobian, "log_likelihood": loglik + jacobian}  # fmt: skip


def _missing_posteriors(
    log_density: np.ndarray,
    trace_obs: np.ndarray,
    whitening: _Whitening,
    smooth: float,
    report: float,
) -> tuple[np.ndarray, float, float]:
    """Responsibilities (b, K) and the summed smoothed objective and reported
    log-likelihood of rows whose observed entries have densities ``log_density`` (b, K)
    under the components (see :func:`_missing_sums`)."""
    log_w = whitening.log_weights - 0.5 * smooth * whitening.trace + log_density
    resp, log_p = _softmax_rows(log_w)
    if smooth == 0 and report == 0:  # continuous data with reg_covar=0: the two are one
        return resp, float(log_p.sum()), float(log_p.sum())
    reported = _softmax_rows(whitening.log_weights - 0.5 * report * trace_obs + log_density)[1]
    return resp, float(log_p.sum()), float(reported.sum())


def _softmax_rows(log_w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Softmax over the last axis of ``log_w`` (b, K) and its log-normaliser (b,): scipy's
    logsumexp without its per-call overhead (called once per pattern of missing entries)."""
    top = log_w.max(axis=1, keepdims=True)
    top[~np.isfinite(top)] = 0.0  # a row of −inf stays −inf
    resp = np.exp(log_w - top)
    total = resp.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        return resp / total, (np.log(total) + top)[:, 0]


class _GaussianEM:
    """EM's pieces (:class:`~ptheta.models.em.EMProblem`) for a Gaussian mixture on the
    standardised values u = (x (+ ½ when dequantised) − offset) / scale of ``data``.
    Parameters are (weights (K,), means (K, D), covariances), float64, in units of u."""

    def __init__(
        self,
        data: Source,
        k: int,
        diag: bool,
        smooth: float,
        report: float,
        offset: np.ndarray,
        scale: np.ndarray,
        cell_centre: float,
        init: str,
        backend: _Backend,
        batch_size: int | None,
    ) -> None:
        self.data, self.k, self.diag, self.smooth, self.report = data, k, diag, smooth, report
        self.batch_size = batch_size
        self.offset, self.scale, self.cell_centre = offset, scale, cell_centre
        self.init_method, self.backend = init, backend
        self.log_scale = np.log(scale)
        self.log_jacobian = float(self.log_scale.sum())  # objectives in data units
        self.inverse_scale = 1.0 / scale
        self.rows = backend.block_rows(k * len(offset))
        self._cached: tuple[Params, _Whitening] | None = None
        self.work = _Workspace() if backend.cpu else None

    def block_product(self) -> int | None:
        """Multiply-adds of a block's largest product on the CPU: the whitening of every
        component, K (D + 1) × (D + 1) × rows (full covariances), or K × D × rows (diagonal,
        elementwise); None on another device, where the blocks run in torch."""
        if not self.backend.cpu:
            return None
        d = len(self.offset)
        return self.k * (d if self.diag else (d + 1) ** 2) * self.rows

    def standardised(self, batch: np.ndarray, reuse: bool = False) -> np.ndarray:
        """The rows' u (b, D) with a column of ones appended, (b, D + 1) (``reuse``: in the
        workspace's array, valid until the next block)."""
        flat = batch.reshape(len(batch), len(self.offset))
        shape = (len(flat), flat.shape[1] + 1)
        if reuse and self.work is not None:
            out = self.work.get("u", shape, np.float64)
        else:
            out = np.empty(shape)
        np.subtract(flat, self.offset - self.cell_centre, out=out[:, :-1])
        out[:, :-1] *= self.inverse_scale
        out[:, -1] = 1.0
        return out

    def _sums(self, batch: np.ndarray, whitening: _Whitening, hard: bool) -> dict[str, Any]:
        """The E-step's sums over ``batch``: rows with NaN entries through
        :func:`_missing_sums` (float64 numpy), the complete ones through the whitening's
        block products (``hard``: the initial assignment, on a copy whose NaN entries are
        the observed column means, u = 0)."""
        flat = flat_rows(batch)
        incomplete = np.isnan(flat).any(axis=1)
        if incomplete.any() and not hard:
            blocks = []
            if not incomplete.all():
                blocks.append(self._sums(flat[~incomplete], whitening, hard))
            rest = flat[incomplete]
            for i in range(0, len(rest), self.rows):
                u = self.standardised(rest[i : i + self.rows])[:, :-1]
                blocks.append(_missing_sums(u, whitening, self.smooth, self.report, self.log_scale))
            return _summed(blocks)
        blocks = []
        for i in range(0, max(1, len(batch)), self.rows):
            u = self.standardised(batch[i : i + self.rows], reuse=True)
            if hard:
                u[np.isnan(u)] = 0.0  # the starting point only: at the observed mean
            blocks.append(whitening.sums(self.backend.array(u), hard=hard))  # (b, D+1)
        return _summed(blocks)

    def _whitening(self, params: Params) -> _Whitening:
        if self._cached is None or self._cached[0] is not params:
            whitening = _Whitening(params, self.diag, self.smooth, self.report, self.backend)
            whitening.work = self.work
            self._cached = (params, whitening)
        return self._cached[1]

    def statistics(self, params: Params) -> Callable[..., dict[str, Any]]:
        whitening = self._whitening(params)
        return lambda batch, _labels: self._sums(batch, whitening, hard=False)

    def expected(
        self, sums: Mapping[str, np.ndarray], params: Params, count: int
    ) -> tuple[float, float, Stats]:
        n, mean, cov = self._whitening(params).moments(sums)
        stats = {"n": n * (len(self.data) / count), "mean": mean, "cov": cov}
        objective = float(sums["objective"]) / count - self.log_jacobian
        return objective, float(sums["log_likelihood"]) / count - self.log_jacobian, stats

    def m_step(self, stats: Stats) -> Params:
        n = stats["n"] + _EPS
        d = stats["mean"].shape[1]
        smooth = self.smooth if self.diag else self.smooth * np.eye(d)
        return n / n.sum(), stats["mean"], stats["cov"] + smooth

    def blend(self, stats: Stats, new: Stats, rho: float) -> Stats:
        n, mean, cov = blend_moments((1 - rho) * stats["n"], stats["mean"], stats["cov"],
                                     rho * new["n"], new["mean"], new["cov"])  # fmt: skip
        return {"n": n, "mean": mean, "cov": cov}

    def init(self, seed: np.random.SeedSequence) -> tuple[Params, Stats]:
        """k-means++ centres of (at most `_INIT_ROWS`) examples, then every example assigned
        to its nearest centre; or random responsibilities of those examples."""
        n, k = len(self.data), self.k
        rs = np.random.RandomState(seed.generate_state(1)[0])
        sample = self.standardised(_read_rows(self.data, _init_index(n, rs)))  # (M, D + 1)
        sample[np.isnan(sample)] = 0.0  # a missing entry at its column's observed mean
        d = sample.shape[1] - 1
        if self.init_method == "random":
            resp = rs.uniform(size=(len(sample), k))
            resp /= resp.sum(axis=1, keepdims=True)
            origin = (np.ones(k), np.zeros((k, d)), None)
            whitening = _Whitening(origin, self.diag, 0.0, 0.0, self.backend, identity=True)
            blocks = [
                whitening.sums(self.backend.array(sample[i : i + self.rows]),
                               resp=self.backend.array(resp[i : i + self.rows].T))
                for i in range(0, len(sample), self.rows)
            ]  # fmt: skip
            sums, count = _summed(blocks), len(sample)
        else:
            centres, _ = kmeans_plusplus(sample[:, :d], k, random_state=rs)
            whitening = _Whitening((np.ones(k), centres, None), self.diag, 0.0, 0.0,
                                   self.backend, identity=True)  # fmt: skip
            sums = accumulate(self.data, lambda b, _: self._sums(b, whitening, hard=True),
                              batch_size=self.batch_size)  # fmt: skip
            count = n
        counts, mean, cov = whitening.moments(sums)
        stats = {"n": counts * (n / count), "mean": mean, "cov": cov}
        return self.m_step(stats), stats


def _location_scale(
    data: Source, cell_centre: float, batch_size: int | None
) -> tuple[np.ndarray, ...]:
    """Mean and standard deviation per feature of the observed values (x + cell_centre) of
    ``data`` (NaN entries left out) from sums over its batches, and the mask of features
    that are constant: sums of x − x₀ and |x − x₀| about the first observed value x₀ of each
    feature (exactly 0 for a constant feature), then of ((x − mean) / a)² with a the mean
    |x − x₀|, so that no square overflows. A constant feature gets standard deviation 1.
    A feature without any observed value is refused (DataError)."""
    first = data.read_range(0, 1).reshape(1, -1).astype(np.float64)[0]
    if np.isnan(first).any():
        first = first_observed(data)
    first = first + cell_centre
    d = len(first)

    def around_first(batch: np.ndarray, _labels: Any) -> dict[str, np.ndarray]:
        diff = batch.reshape(len(batch), d).astype(np.float64) + cell_centre - first
        seen = ~np.isnan(diff)
        if not seen.all():
            diff = np.where(seen, diff, 0.0)
        return {"sum": diff.sum(axis=0), "abs": np.abs(diff).sum(axis=0), "seen": seen.sum(0)}

    sums = accumulate(data, around_first, batch_size=batch_size)
    n = sums["seen"]  # observed values per feature (all N when nothing is missing)
    if (n == 0).any():
        index = int(np.flatnonzero(n == 0)[0])
        where = np.unravel_index(index, data.event_shape) if len(data.event_shape) > 1 else None
        raise DataError(
            f"feature {index}{f' (entry {where} of each example)' if where else ''} of the "
            f"training data has no observed value (all {len(data)} entries are NaN); "
            "a Gaussian mixture cannot estimate its mean or variance: drop that feature"
        )
    mean = first + sums["sum"] / n
    constant = sums["abs"] == 0
    spread = np.where(constant, 1.0, sums["abs"] / n)

    def squares(batch: np.ndarray, _labels: Any) -> dict[str, np.ndarray]:
        flat = batch.reshape(len(batch), d).astype(np.float64) + cell_centre
        square = ((flat - mean) / spread) ** 2
        return {"sq": np.where(np.isnan(square), 0.0, square).sum(axis=0)}

    std = spread * np.sqrt(accumulate(data, squares, batch_size=batch_size)["sq"] / n)
    return mean, np.where(constant | (std == 0), 1.0, std), constant


class _CategoricalEM:
    """EM's pieces (:class:`~ptheta.models.em.EMProblem`) for a mixture of independent
    categorical variables, MAP-EM with pseudo-count ``alpha``: the log-weights of a block
    of rows are one product onehot(x) @ log θᵀ, the expected counts one product r @ onehot(x).
    Parameters are (weights (K,), probs (K, D, L)), float64."""

    def __init__(
        self, data: Source, k: int, d: int, levels: int, alpha: float, init: str,
        backend: _Backend, batch_size: int | None,
    ) -> None:  # fmt: skip
        self.data, self.k, self.d, self.levels, self.alpha = data, k, d, levels, alpha
        self.batch_size = batch_size
        self.init_method, self.backend = init, backend
        self.rows = backend.block_rows(d * levels + k)
        # log-normalisers of the Dirichlet(α+1) prior of every θ_k,d and of the flat one on π
        self.log_norm = k * d * (gammaln(levels * (alpha + 1)) - levels * gammaln(alpha + 1))
        self.log_norm += gammaln(k)

    def _one_hot(self, batch: np.ndarray, fill: bool = False) -> np.ndarray:
        """One-hot codes (b, D·L); a missing entry's block is all zero (its factor drops
        out), or with ``fill`` (the initialisation only) uniform, 1/L per level."""
        if not len(batch):  # a process without a share of a small batch
            return np.zeros((0, self.d * self.levels))
        flat = batch.reshape(len(batch), self.d)
        codes = one_hot(flat, self.levels)  # (b, D·L)
        if fill:
            missing = np.isnan(flat)
            if missing.any():
                codes.reshape(len(flat), self.d, self.levels)[missing] = 1.0 / self.levels
        return codes

    def _sums(self, batch: np.ndarray, table: Any, const: Any, hard: bool) -> dict[str, Any]:
        """Sums over ``batch`` of the responsibilities (K,), the expected counts (K, D·L) and
        the log-likelihood, with log-weights ``table`` @ onehot(x)ᵀ + ``const``."""
        blocks = []
        for i in range(0, max(1, len(batch)), self.rows):
            codes = self.backend.array(self._one_hot(batch[i : i + self.rows], fill=hard))
            log_w = table @ codes.T + const[:, None]  # (K, b)
            if hard:
                resp, loglik = _hard(log_w), 0.0
            else:
                resp, log_p = _log_normalise(log_w)
                loglik = log_p.sum()
            blocks.append({"n": resp.sum(1), "counts": resp @ codes, "log_likelihood": loglik})
        return _summed(blocks)

    def _log_probs(self, params: Params) -> np.ndarray:
        return np.log(np.maximum(params[1], np.finfo(np.float64).tiny)).reshape(self.k, -1)

    def statistics(self, params: Params) -> Callable[..., dict[str, Any]]:
        table = self.backend.array(self._log_probs(params))  # (K, D·L)
        const = self.backend.array(np.log(params[0]))
        return lambda batch, _labels: self._sums(batch, table, const, hard=False)

    def expected(
        self, sums: Mapping[str, np.ndarray], params: Params, count: int
    ) -> tuple[float, float, Stats]:
        n = len(self.data)
        log_prior = self.log_norm + self.alpha * float(self._log_probs(params).sum())
        loglik = float(sums["log_likelihood"]) / count
        stats = {"n": sums["n"] * (n / count), "counts": sums["counts"] * (n / count)}
        return loglik + log_prior / n, loglik, stats

    def m_step(self, stats: Stats) -> Params:
        nk = stats["n"] + _EPS  # (K,)
        counts = stats["counts"].reshape(self.k, self.d, self.levels) + self.alpha
        total = counts.sum(axis=2, keepdims=True)
        # a component without data (possible only with alpha=0) gets uniform levels
        tiny = np.finfo(np.float64).tiny
        probs = np.where(total > 0, counts / np.maximum(total, tiny), 1.0 / self.levels)
        return nk / nk.sum(), probs

    def blend(self, stats: Stats, new: Stats, rho: float) -> Stats:
        return {key: (1 - rho) * stats[key] + rho * new[key] for key in stats}

    def init(self, seed: np.random.SeedSequence) -> tuple[Params, Stats]:
        """k-means++ centres of the one-hot codes of (at most `_INIT_ROWS`) examples, then
        every example assigned to its nearest centre; or random responsibilities."""
        n, k = len(self.data), self.k
        rs = np.random.RandomState(seed.generate_state(1)[0])
        sample = self._one_hot(_read_rows(self.data, _init_index(n, rs)), fill=True)  # (M, D·L)
        if self.init_method == "random":
            resp = rs.uniform(size=(len(sample), k))
            resp /= resp.sum(axis=1, keepdims=True)
            m = len(sample)
            stats = {"n": resp.sum(axis=0) * (n / m), "counts": resp.T @ sample * (n / m)}
        else:
            centres, _ = kmeans_plusplus(sample, k, random_state=rs)  # (K, D·L)
            # nearest centre: the largest 2 c·x − ‖c‖² (‖x‖² is the same for every centre)
            table = self.backend.array(2.0 * centres)
            const = self.backend.array(-(centres * centres).sum(axis=1))
            sums = accumulate(self.data, lambda b, _: self._sums(b, table, const, hard=True),
                              batch_size=self.batch_size)  # fmt: skip
            stats = {"n": sums["n"], "counts": sums["counts"]}
        return self.m_step(stats), stats


class GaussianMixture(_EMMixture):
    """Gaussian mixture p(x) = Σ_k π_k N(x; μ_k, Σ_k), fitted by EM over batches of the data.

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

    **Missing data.** ``fit`` takes NaN entries (missing at random; whole rows too) and runs
    EM on the observed-data likelihood, with the component and the missing entries as
    latent variables — no imputation, no row dropped. The standardisation uses each
    feature's observed values (a feature never observed is refused: nothing estimates its
    mean); the initialisation sees NaN at its feature's observed mean (for k-means++ and
    the first assignment only). Each E-step groups the incomplete rows of a batch by their
    pattern of observed entries O and takes, per component, p(k | x_O), the expected
    complete row E[x | x_O, k] and its covariance Cov[x | x_O, k] (Ghahramani & Jordan
    1994; :func:`~ptheta.models.missing.gaussian_conditionals`): the M-step is the one
    below with Σ r·x xᵀ replaced by Σ r·(E[x] E[x]ᵀ + Cov[x]). Those rows are computed in
    float64 NumPy, one pattern at a time (diagonal covariances: all rows at once, no
    solves: a missing entry's conditional mean and variance are the component's), whatever
    ``dtype`` and ``device``; complete rows take the usual path, so data without NaN fit
    exactly as before. The objective EM never decreases is the smoothed one with the
    missing entries integrated out, Σ_n log Σ_k π_k N(z_O; μ_k,O, Σ_k,OO)·exp(−½·s·tr Σ_k⁻¹)
    (s = reg_covar, + 1/12 on dequantised data; the trace over all D coordinates, which
    makes the M-step above its exact EM step); ``history_``'s ``log_likelihood`` is the
    exact observed-data log-likelihood (on dequantised data the bound below, with
    tr Σ_k,OO⁻¹), what ``score_samples`` returns.

    NaN entries are marginalised in scoring: with O the observed coordinates,
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

    **Fitting over batches.** ``fit`` takes an array or a :class:`~ptheta.data.stream.Source`
    (a memory-mapped file, shards) and reads it a batch at a time (``capabilities().streams``;
    an array in memory is the same computation). The standardisation is two passes of sums
    (about the first example, so a constant feature is detected exactly). The
    initialisation sees at most 10,000 examples, drawn by the restart's seed (all of
    them when there are no more): k-means++ centres of those, then every example assigned
    to its nearest centre in one pass (``init="random"``: random responsibilities of those
    examples). Each E-step sums, per component, the responsibilities r, Σ r·y and Σ r·y yᵀ
    of the rows whitened by the current parameters, y = L_k⁻¹ (z − μ_k) with L_k the
    Cholesky factor of Σ_k (diagonal: (z − μ_k) / σ_k), over blocks of rows with one
    matrix product per block; the M-step reads the new means and covariances off them
    (μ_k + L_k δ and L_k (S/n − δδᵀ) L_kᵀ, δ = Σ r·y / n, nothing cancelling far from the
    origin). Under ``torchrun`` the sums are all-reduced: W processes fit the model of one.

    **Mini-batch EM.** ``em="minibatch"`` runs stepwise EM (Cappé & Moulines 2009; Liang &
    Klein 2009) instead: each epoch visits the examples in a new seeded random order in
    batches of ``batch_size`` (default 1024); after each batch the running statistics
    s = (n_k, mean_k, covariance_k) move to (1 − ρ_t) s + ρ_t ŝ(batch) (in the
    sufficient statistics (n_k, Σ r x, Σ r x xᵀ), scaled to the whole data set), with
    ρ_t = (t + 2)^−α, α = ``step_decay`` ∈ (0.5, 1], t counting the steps over all epochs,
    and the parameters are their M-step. ``max_iter`` counts epochs; ``history_`` holds per
    epoch the mean of the batches' objectives, each at the parameters of its step (not
    monotone). Under ``torchrun`` every step's batch is shared among the processes and its
    statistics all-reduced, so all take the same step.

    Arguments:
        n_components: number of mixture components K.
        covariance_type: ``"full"`` (K, D, D) or ``"diag"`` (K, D).
        max_iter: EM iterations per initialisation.
        tol: stop when the mean smoothed objective per example improves by less than this.
        n_init: number of initialisations; the one with the best objective is kept.
        init: ``"kmeans++"`` (k-means++ centres, then a hard assignment) or ``"random"``
            (random responsibilities).
        em: ``"full"`` (full-batch EM) or ``"minibatch"`` (stepwise EM, see above).
        batch_size: rows per batch: of each read for full-batch EM (None: about 32 MB), of
            each step for mini-batch EM (None: 1024).
        step_decay: α of mini-batch EM's step sizes ρ_t = (t + 2)^−α, in (0.5, 1].
        reg_covar: variance added to the diagonal of every covariance (see above).
        dequantization: ``"auto"`` (on discrete data), ``"uniform"`` (always) or ``"none"``.
        dtype: ``"float64"`` or ``"float32"`` for the EM arithmetic.
        device: ``"cpu"``, ``"cuda"`` or ``"auto"``.
        random_state: seed of the initialisation: an integer, or None for fresh randomness
            (see :class:`~ptheta.params.Seed`).
        max_time: seconds EM may take (all restarts together; None: no limit): it stops
            after the iteration that passes them, keeps the best run so far and warns.
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
        Dempster, Laird & Rubin (1977); Ghahramani & Jordan (1994), Supervised learning
        from incomplete data via an EM approach, NIPS 6 (EM with missing entries);
        Arthur & Vassilvitskii (2007) for k-means++; Theis, van den Oord & Bethge (2016)
        for dequantisation bounds; Cappé & Moulines (2009), On-line expectation-maximization
        algorithm for latent data models, JRSS B 71(3); Liang & Klein (2009), Online EM for
        unsupervised models, NAACL; Chan, Golub & LeVeque (1979) for merging moments.
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
        em: str = "full",
        batch_size: int | None = None,
        step_decay: float = 0.6,
        reg_covar: float = 1e-6,
        dequantization: str = "auto",
        dtype: str = "float64",
        device: str = "cpu",
        random_state: int | None = 0,
        max_time: float | None = None,
        verbose: int = 0,
    ) -> None:
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.max_iter = max_iter
        self.tol = tol
        self.n_init = n_init
        self.init = init
        self.em = em
        self.batch_size = batch_size
        self.step_decay = step_decay
        self.reg_covar = reg_covar
        self.dequantization = dequantization
        self.dtype = dtype
        self.device = device
        self.random_state = random_state
        self.max_time = max_time
        self.verbose = verbose

    # ----------------------------------------------------------------- fitting
    def _fit_stream(self, data: Source, y: Any, spec: DataSpec) -> None:
        self._check_n_components(len(data))
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
        cell_centre = 0.5 if deq else 0.0  # the centre of the unit cell [x, x+1)
        smooth = self.reg_covar + (_DEQUANT_VAR if deq else 0.0)
        report_smooth = _DEQUANT_VAR if deq else 0.0
        mean, std, constant = _location_scale(data, cell_centre, self.batch_size)
        if not deq and constant.any():
            first = np.flatnonzero(constant)
            warnings.warn(
                f"{first.size} feature(s) are constant in the training data (first: "
                f"{first[:5].tolist()}); their variance is only reg_covar="
                f"{self.reg_covar:g}, so held-out values that differ get almost no density. "
                "If the data are discrete, keep dequantization='auto' and declare the kind; "
                "otherwise raise reg_covar.",
                UserWarning,
                stacklevel=4,
            )
        # EM on standardised data (continuous: no dependence on units, offset or memory
        # layout); discrete data keep their level units, only centred
        scale = np.ones_like(mean) if deq else std
        diag = self.covariance_type == "diag"
        problem = _GaussianEM(
            data, int(self.n_components), diag, smooth, report_smooth, mean, scale,
            cell_centre, self.init, _Backend(self.device, self.dtype), self.batch_size,
        )  # fmt: skip
        with blas_threads_for(problem.block_product(), small=_SMALL_BLOCK):
            self.weights_, means, cov = self._run_em(problem, data)
        self.means_ = means * scale + mean
        self.covariances_ = cov * (scale**2 if diag else np.outer(scale, scale))
        self.shift_, self.scale_ = (np.zeros_like(mean) if deq else mean), scale
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
        dt = np.float64 if resolve_dtype(self.dtype) == torch.float64 else np.float32
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
                *(np.asarray(a, dtype=dt) for a in args), self.covariance_type
            )
            log_w = log_w - 0.5 * smooth * trace_prec
            out[rows] = log_w.astype(np.float64) - np.log(scale[obs]).sum()
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


def _check_observed(data: Source, name: str) -> None:
    """Refuse (DataError) data with a variable that is never observed: with ``alpha=0``
    maximum likelihood leaves its level probabilities undetermined."""
    seen = accumulate(data, lambda b, _: {"seen": (~np.isnan(flat_rows(b).astype(float))).sum(0)})[
        "seen"
    ]
    if (seen == 0).any():
        index = int(np.flatnonzero(seen == 0)[0])
        raise DataError(
            f"feature {index} of the training data has no observed value (all {len(data)} "
            f"entries are NaN), so {name} with alpha=0 cannot estimate its level "
            "probabilities: drop that feature, or set alpha > 0 (it then gets the prior's "
            "mode, uniform levels)"
        )


class CategoricalMixture(_EMMixture):
    """Mixture of independent categorical variables p(x) = Σ_k π_k ∏_d θ_k,d[x_d], by MAP-EM.

    Within component k the D variables are independent with level probabilities θ_k,d
    (L levels; binary data is L = 2). EM runs in log space: the E-step is
    log π_k + onehot(x) @ log θ_k — a (rows, D·L) one-hot code times (D·L, K)
    log-probabilities, a block of rows at a time — normalised with logsumexp, and the
    expected counts are r @ onehot(x), summed over the batches of the data (a
    :class:`~ptheta.data.stream.Source` is read a batch at a time, all-reduced under
    ``torchrun``). The initialisation sees at most 10,000 examples, as
    :class:`GaussianMixture`'s does, then assigns every example to its nearest k-means++
    centre. ``em="minibatch"`` is stepwise EM on the expected counts, as documented there.

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
    log Σ_k π_k ∏_{d observed} θ_k,d[x_d]. ``fit`` takes NaN entries (whole rows too) and
    runs MAP-EM on that observed-data likelihood with the component as the latent
    variable: the E-step's r_nk = p(k | x_n,obs) and the M-step maximises
    Σ_n Σ_k r_nk Σ_{d observed} log θ_k,d[x_nd] + log prior exactly, which normalises each
    θ_k,d by the component's *observed* mass of that variable,
    θ_k,d,l = (Σ_n r_nk [x_nd = l] + α) / (Σ_n r_nk [x_nd observed] + L·α) (the one-hot
    counts of the observed entries; the code is the complete-data one). Treating the
    missing entries as latent too (expected counts r_nk θ_k,d,l) is another EM with the
    same fixed points but a smaller step. ``history_``'s objective stays exactly monotone
    and its ``log_likelihood`` is what ``score_samples`` returns. The initialisation sees a
    missing entry as uniform over the levels (1/L in each level of its one-hot block), for
    k-means++ and the first assignment only. A variable with no observed value gets the
    prior's mode (uniform levels) when α > 0 and is refused when α = 0.
    ``impute(method="sample")`` (and ``sample(given=...)``) draw k ~ p(k | x_obs), then
    each missing entry from θ_k,d (independent given k): exact conditional sampling.
    ``method="mode"`` fills each missing entry with its most probable level under
    p(x_d | x_obs) = Σ_k p(k | x_obs) θ_k,d (entry by entry, not the jointly most probable
    completion).

    Arguments:
        n_components: number of mixture components K.
        alpha: pseudo-count added to every level in the M-step (see above); 0 is
            maximum-likelihood EM.
        max_iter: EM iterations per initialisation.
        tol: stop when the mean objective per example improves by less than this.
        n_init: number of initialisations; the one with the best objective is kept.
        init: ``"kmeans++"`` (k-means++ centres of the one-hot codes, then a hard
            assignment) or ``"random"`` (random responsibilities).
        em: ``"full"`` (full-batch EM) or ``"minibatch"`` (stepwise EM, see
            :class:`GaussianMixture`).
        batch_size: rows per batch: of each read for full-batch EM (None: about 32 MB), of
            each step for mini-batch EM (None: 1024).
        step_decay: α of mini-batch EM's step sizes ρ_t = (t + 2)^−α, in (0.5, 1].
        dtype: ``"float64"`` or ``"float32"`` for the EM arithmetic.
        device: ``"cpu"``, ``"cuda"`` or ``"auto"``.
        random_state: seed of the initialisation: an integer, or None for fresh randomness
            (see :class:`~ptheta.params.Seed`).
        max_time: seconds EM may take (all restarts together; None: no limit): it stops
            after the iteration that passes them, keeps the best run so far and warns.
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
        Little & Rubin (2019), Statistical Analysis with Missing Data, 3rd ed., ch. 11;
        Arthur & Vassilvitskii (2007) for k-means++; Cappé & Moulines (2009) and Liang &
        Klein (2009) for stepwise EM.
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
        em: str = "full",
        batch_size: int | None = None,
        step_decay: float = 0.6,
        dtype: str = "float64",
        device: str = "cpu",
        random_state: int | None = 0,
        max_time: float | None = None,
        verbose: int = 0,
    ) -> None:
        self.n_components = n_components
        self.alpha = alpha
        self.max_iter = max_iter
        self.tol = tol
        self.n_init = n_init
        self.init = init
        self.em = em
        self.batch_size = batch_size
        self.step_decay = step_decay
        self.dtype = dtype
        self.device = device
        self.random_state = random_state
        self.max_time = max_time
        self.verbose = verbose

    def _fit_stream(self, data: Source, y: Any, spec: DataSpec) -> None:
        self._check_n_components(len(data))
        d = math.prod(spec.event_shape)
        if float(self.alpha) == 0:  # with a prior, an unobserved variable is its mode
            _check_observed(data, self.name)
        problem = _CategoricalEM(
            data, int(self.n_components), d, int(spec.n_categories), float(self.alpha),
            self.init, _Backend(self.device, self.dtype), self.batch_size,
        )  # fmt: skip
        self.weights_, self.probs_ = self._run_em(problem, data)

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
    ``history_``, exact marginals and conditional sampling for missing (NaN) entries, and
    EM over them in ``fit``.
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


def _log_weighted_densities(
    x: np.ndarray,
    weights: np.ndarray,
    means: np.ndarray,
    cov: np.ndarray,
    covariance_type: str,
) -> tuple[np.ndarray, np.ndarray]:
    """log π_k + log N(x_n; μ_k, Σ_k), shape (N, K), and tr(Σ_k⁻¹), shape (K,), in the
    arrays' float type (numpy and LAPACK only: torch's thread pool beside numpy's BLAS
    made each switch cost milliseconds on two threads)."""
    d = x.shape[1]
    # shift x and μ by the mixture mean: the expanded quadratic forms below stay accurate
    # when the data sit far from the origin (the density is unchanged by a common shift)
    centre = (weights[:, None] * means).sum(axis=0) / weights.sum()
    x, means = x - centre, means - centre
    if covariance_type == "full":
        from scipy.linalg import lapack

        try:
            chol = np.linalg.cholesky(cov)  # (K, D, D)
        except np.linalg.LinAlgError:
            hint = " or dtype='float64'" if x.dtype == np.float32 else ""
            raise DataError(
                "a mixture component's covariance became singular (the data may have fewer "
                "distinct points than components, or duplicated/constant features); raise "
                f"reg_covar, use covariance_type='diag'{hint}, or use fewer components"
            ) from None
        trtri = lapack.get_lapack_funcs("trtri", (chol,))
        prec_chol = np.tril(np.stack([trtri(f, lower=1)[0] for f in chol]))  # L⁻¹, (K, D, D)
        maha = _mahalanobis(x, means, prec_chol)  # (N, K)
        log_det = 2.0 * np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(axis=1)  # (K,)
        trace_prec = (prec_chol * prec_chol).sum(axis=(1, 2))  # ‖L⁻¹‖²_F = tr(Σ⁻¹)
    else:
        if (cov <= 0).any():
            raise DataError("a mixture component has zero variance; raise reg_covar")
        inv = 1.0 / cov  # (K, D)
        maha = (x * x) @ inv.T - 2.0 * x @ (means * inv).T + (means * means * inv).sum(1)  # (N, K)
        np.maximum(maha, 0.0, out=maha)
        log_det = np.log(cov).sum(axis=1)
        trace_prec = inv.sum(axis=1)
    # log π_k − ½ (D log 2π + log det Σ_k + maha), in place on the (N, K) distances
    const = np.log(weights) - 0.5 * (d * math.log(2 * math.pi) + log_det)  # (K,)
    maha *= -0.5
    maha += const
    return maha, trace_prec


def _mahalanobis(x: np.ndarray, means: np.ndarray, prec_chol: np.ndarray) -> np.ndarray:
    """‖L_k⁻¹ (x_n − μ_k)‖² for every example and component, shape (N, K), with
    ``prec_chol`` (K, D, D) the lower-triangular L_k⁻¹: one BLAS ``trmm`` per component (a
    triangular product: N·D² flops, half a general one) on x − μ_k formed first."""
    from scipy.linalg import blas

    k = len(means)
    trmm = blas.get_blas_funcs("trmm", (x,))
    out = np.empty((len(x), k), dtype=x.dtype)
    for j in range(k):
        # (x − μ_k) in C order is its transpose (D, N) in Fortran order: y ᵀ = L⁻¹ (x − μ)ᵀ
        y = trmm(1.0, np.asfortranarray(prec_chol[j]), (x - means[j]).T, side=0, lower=1,
                 overwrite_b=1)  # fmt: skip
        out[:, j] = np.einsum("ij,ij->j", y, y)
    return out


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
