"""Information measures between fitted models: entropy, cross-entropy and KL divergence."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.special import rel_entr, xlogy

from ptheta.data.spec import Data, Split, check_values
from ptheta.errors import CapabilityError, DataError, ParameterError
from ptheta.models.base import GenerativeModel

# Largest number of configurations K^D summed over by exact enumeration.
MAX_CONFIGURATIONS = 2**20
_ENUM_CHUNK = 2**16  # configurations scored per call
_MC_CHUNK = 4096  # samples drawn and scored per call

__all__ = ["MAX_CONFIGURATIONS", "InfoResult", "cross_entropy", "entropy", "kl"]


@dataclass(frozen=True)
class InfoResult:
    """One information measure, with how it was obtained.

    Attributes:
        value: the measure in ``units``.
        std_err: its Monte Carlo standard error (0 for exact methods).
        method: ``"closed-form"``, ``"exact-enumeration"`` or ``"monte-carlo"``.
        units: ``"nats"`` or ``"bits"``.
        likelihood: ``"exact"`` when the log-probabilities used are exact (a Monte Carlo
            value is then an unbiased estimate of the true measure), ``"upper bound"`` or
            ``"lower bound"`` when a model's likelihood is a bound that moves the value
            one way for sure, ``"estimate"`` when the direction cannot be guaranteed.
        space: ``"discrete"`` (entropies of a probability mass function),
            ``"continuous"`` (differential entropies of a density; may be negative) or
            ``"mixed"`` (a table of discrete and continuous columns: −E log of a
            probability times a density).
    """

    value: float
    std_err: float
    method: str
    units: str
    likelihood: str
    space: str

    def __float__(self) -> float:
        return self.value

    def __str__(self) -> str:
        err = f" ± {self.std_err:.2g}" if self.std_err else ""
        return f"{self.value:.6g}{err} {self.units} ({self.method}, {self.likelihood})"


# ----------------------------------------------------------------- public API
def entropy(
    model: GenerativeModel,
    *,
    base: str = "nats",
    method: str = "auto",
    n_samples: int = 10_000,
    random_state: Any = None,
) -> InfoResult:
    """Entropy H(p) = −E_p log p(x) of a fitted model.

    Discrete models give the entropy of their probability mass function (≥ 0); densities
    give the differential entropy. ``method="auto"`` uses a closed form where one exists
    (``independent``; ``gmm`` with one component on continuous data), else exact
    enumeration when the data are discrete, the likelihood is exact and there are at most
    ``MAX_CONFIGURATIONS`` configurations, else Monte Carlo with ``n_samples`` draws.
    ``"exact"`` refuses (CapabilityError) rather than fall back to Monte Carlo; ``"mc"``
    always samples. A bound on log p (see ``model.likelihood_``) gives an upper bound.

    Arguments:
        model: a fitted ptheta model with a likelihood.
        base: ``"nats"`` or ``"bits"``.
        method: ``"auto"``, ``"exact"`` or ``"mc"``.
        n_samples: Monte Carlo sample size (at least 2).
        random_state: seed or numpy Generator for the Monte Carlo draws.

    Returns:
        An :class:`InfoResult`; ``float(result)`` is the value.

    Example:
        >>> import numpy as np, ptheta
        >>> from ptheta.eval.info import entropy
        >>> m = ptheta.make("independent").fit(np.array([[0, 1], [1, 1], [0, 0], [1, 0]]))
        >>> round(float(entropy(m, base="bits")), 6)
        2.0
    """
    _check_options(base, method, n_samples)
    _check_model(model, "model", needs_likelihood=True)
    return _evaluate(
        model,
        [(model, -1.0)],
        [model],
        _entropy_form,
        "entropy",
        base=base,
        method=method,
        n_samples=n_samples,
        random_state=random_state,
    )


def cross_entropy(
    p: GenerativeModel | Data,
    q: GenerativeModel,
    *,
    base: str = "nats",
    method: str = "auto",
    n_samples: int = 10_000,
    random_state: Any = None,
) -> InfoResult:
    """Cross-entropy H(p, q) = −E_p log q(x).

    ``p`` is a fitted model (methods as in :func:`entropy`; Monte Carlo only needs samples
    from p, so p may be a model without a likelihood, such as a GAN) or data: an array
    (N, *event_shape) or a :class:`~ptheta.data.Split`, for which the result is q's mean
    negative log-likelihood on the data with its standard error (``method="monte-carlo"``:
    the data are draws from the data distribution; ``n_samples`` is unused). A bound on
    log q gives an upper bound.

    Arguments:
        p: a fitted model, or data of q's kind and shape (no missing values).
        q: a fitted ptheta model with a likelihood, of the same data kind and shape as p.
        base, method, n_samples, random_state: as in :func:`entropy`.

    Returns:
        An :class:`InfoResult`.

    Example:
        >>> import numpy as np, ptheta
        >>> from ptheta.eval.info import cross_entropy
        >>> x = np.array([[0, 1], [1, 1], [0, 0], [1, 0]])
        >>> q = ptheta.make("independent").fit(x)
        >>> float(cross_entropy(x, q)) == -q.score(x)
        True
    """
    _check_options(base, method, n_samples)
    _check_model(q, "q", needs_likelihood=True)
    if not isinstance(p, GenerativeModel):
        return _data_cross_entropy(p, q, base=base, method=method)
    _check_model(p, "p", needs_likelihood=False)
    _check_same_space(p, q)
    return _evaluate(
        p,
        [(q, -1.0)],
        [p, q],
        _cross_entropy_form,
        "cross-entropy",
        base=base,
        method=method,
        n_samples=n_samples,
        random_state=random_state,
    )


def kl(
    p: GenerativeModel,
    q: GenerativeModel,
    *,
    base: str = "nats",
    method: str = "auto",
    n_samples: int = 10_000,
    random_state: Any = None,
) -> InfoResult:
    """Kullback–Leibler divergence KL(p ‖ q) = E_p[log p(x) − log q(x)] ≥ 0.

    Methods as in :func:`entropy`. Monte Carlo averages the per-sample differences
    log p − log q, so that noise common to both terms cancels (KL(p ‖ p) is exactly 0).
    Both models must be of the same space and units: a probability mass function is never
    compared with a density. When q's likelihood is a bound the result is an upper bound;
    when p's is, a lower bound; when both are (or either is an estimate), an estimate.

    Arguments:
        p, q: fitted ptheta models with likelihoods, fitted on the same data kind and shape.
        base, method, n_samples, random_state: as in :func:`entropy`.

    Returns:
        An :class:`InfoResult`.

    Example:
        >>> import numpy as np, ptheta
        >>> from ptheta.eval.info import kl
        >>> x = np.array([[0, 1], [1, 1], [0, 0], [1, 0]])
        >>> p = ptheta.make("independent").fit(x)
        >>> float(kl(p, p))
        0.0
    """
    _check_options(base, method, n_samples)
    _check_model(p, "p", needs_likelihood=True)
    _check_model(q, "q", needs_likelihood=True)
    _check_same_space(p, q)
    return _evaluate(
        p,
        [(p, 1.0), (q, -1.0)],
        [p, q],
        _kl_form,
        "KL divergence",
        base=base,
        method=method,
        n_samples=n_samples,
        random_state=random_state,
    )


# ----------------------------------------------------------------- dispatch
Terms = Sequence[tuple[GenerativeModel, float]]  # the integrand Σ c · log m(x), x ~ p


def _evaluate(
    p: GenerativeModel,
    terms: Terms,
    closed_models: list[GenerativeModel],
    closed: Callable[..., float],
    what: str,
    *,
    base: str,
    method: str,
    n_samples: int,
    random_state: Any,
) -> InfoResult:
    """E_p[Σ c · log m(x)] by closed form, exact enumeration or Monte Carlo."""
    likelihood = _direction(terms)
    finish = _finisher(base, likelihood, p.units_)
    if method in ("auto", "exact"):
        forms = [_closed_form(m) for m in closed_models]
        if all(f is not None for f in forms) and len({type(f) for f in forms}) == 1:
            return finish(closed(*forms), 0.0, "closed-form")
        reason = _not_enumerable(p)
        if reason is None:
            return finish(_enumerate(p, terms), 0.0, "exact-enumeration")
        if method == "exact":
            raise CapabilityError(
                f"no exact {what} for {p.name!r}: it has no closed form here and {reason}; "
                "use method='mc' for a Monte Carlo estimate"
            )
    return finish(*_monte_carlo(p, terms, n_samples, random_state), "monte-carlo")


def _direction(terms: Terms) -> str:
    """What E_p[Σ c · log m] becomes when a model's log m is only a lower bound (or estimate).

    A lower bound b ≤ log m in a term with c > 0 can only lower the sum; with c < 0 only
    raise it. Entropy (c = −1 on p) and cross-entropy (c = −1 on q) thus become upper
    bounds; KL becomes an upper bound through q and a lower bound through p, so with both
    bounded nothing is guaranteed. Bounds are assumed to hold for the distribution that
    the model's sampler draws from (the contract's "bound": a lower bound on log p).
    """
    sides = set()
    for model, c in terms:
        kind = model.likelihood_
        if kind == "estimate":
            return "estimate"
        if kind == "bound":
            sides.add("lower bound" if c > 0 else "upper bound")
    if not sides:
        return "exact"
    return sides.pop() if len(sides) == 1 else "estimate"


def _finisher(base: str, likelihood: str, space: str) -> Callable[..., InfoResult]:
    scale = 1.0 if base == "nats" else 1.0 / math.log(2.0)

    def finish(value: float, std_err: float, method: str) -> InfoResult:
        return InfoResult(
            float(value) * scale, float(std_err) * scale, method, base, likelihood, space
        )

    return finish


# ----------------------------------------------------------------- closed forms
@dataclass(frozen=True)
class _Factorised:
    """∏_d Categorical(x_d; probs[d])."""

    probs: np.ndarray  # (D, K)


@dataclass(frozen=True)
class _Gaussian:
    """N(mean, cov) with a full (D, D) or diagonal (D,) covariance."""

    mean: np.ndarray  # (D,)
    cov: np.ndarray  # (D, D) or (D,)

    def log_det(self) -> float:
        if self.cov.ndim == 1:
            return float(np.log(self.cov).sum())
        return float(np.linalg.slogdet(self.cov)[1])

    def full(self) -> np.ndarray:
        return np.diag(self.cov) if self.cov.ndim == 1 else self.cov

    def trace_and_maha(self, other: _Gaussian) -> tuple[float, float]:
        """tr(Σ⁻¹ Σ_other) and (μ_other − μ)ᵀ Σ⁻¹ (μ_other − μ), with Σ this covariance."""
        diff = other.mean - self.mean  # (D,)
        if self.cov.ndim == 1:  # stays O(D) for images
            other_var = other.cov if other.cov.ndim == 1 else np.diag(other.cov)
            return float((other_var / self.cov).sum()), float((diff**2 / self.cov).sum())
        trace = float(np.trace(np.linalg.solve(self.cov, other.full())))
        return trace, float(diff @ np.linalg.solve(self.cov, diff))


def _closed_form(model: GenerativeModel) -> _Factorised | _Gaussian | None:
    """The fitted model as a distribution with closed-form measures, or None."""
    if not model.capabilities().closed_form or model.likelihood_ != "exact":
        return None
    form = model.closed_form()
    if form is None:
        return None
    if "probs" in form:
        return _Factorised(np.asarray(form["probs"], dtype=np.float64))
    return _Gaussian(np.asarray(form["mean"], np.float64), np.asarray(form["cov"], np.float64))


def _entropy_form(p: _Factorised | _Gaussian) -> float:
    if isinstance(p, _Factorised):
        return float(-xlogy(p.probs, p.probs).sum())  # 0 log 0 = 0
    return 0.5 * (p.mean.size * math.log(2 * math.pi * math.e) + p.log_det())


def _cross_entropy_form(p: _Factorised | _Gaussian, q: _Factorised | _Gaussian) -> float:
    if isinstance(p, _Factorised):
        return float(-xlogy(p.probs, q.probs).sum())  # +inf where q = 0 < p
    trace, maha = q.trace_and_maha(p)
    return 0.5 * (p.mean.size * math.log(2 * math.pi) + q.log_det() + trace + maha)


def _kl_form(p: _Factorised | _Gaussian, q: _Factorised | _Gaussian) -> float:
    if isinstance(p, _Factorised):
        return float(rel_entr(p.probs, q.probs).sum())
    trace, maha = q.trace_and_maha(p)
    return 0.5 * (trace + maha - p.mean.size + q.log_det() - p.log_det())


# ----------------------------------------------------------------- enumeration, sampling
def _not_enumerable(p: GenerativeModel) -> str | None:
    """Why Σ_x p(x)(...) over every configuration is impossible, or None when it is not."""
    spec = p.fitted_spec
    if p.units_ == "mixed":
        return "it is a probability times a density (a table), not a probability mass function"
    if p.units_ != "discrete":
        return "it is a density, not a probability mass function"
    if spec.kind == "table":
        return "a table's configurations are not enumerated (counts are unbounded)"
    if p.likelihood_ != "exact":
        return f"its likelihood is {p.likelihood_!r}, not its exact probabilities"
    if spec.n_categories**spec.n_dims > MAX_CONFIGURATIONS:  # Python ints: no overflow
        return (
            f"{spec.describe()} has {spec.n_categories}^{spec.n_dims} configurations, more "
            f"than MAX_CONFIGURATIONS={MAX_CONFIGURATIONS}"
        )
    return None


def _integrand(
    terms: Terms, x: np.ndarray, extra: GenerativeModel | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Σ c · log m(x), shape (N,), and log extra(x); each model is scored once."""
    scores: dict[int, np.ndarray] = {}
    for model in [m for m, _ in terms] + ([extra] if extra is not None else []):
        if id(model) not in scores:
            scores[id(model)] = model.score_samples(x)
    with np.errstate(invalid="ignore"):  # inf − inf is settled by the caller
        total = sum(c * scores[id(m)] for m, c in terms)
    return total, (scores[id(extra)] if extra is not None else None)


def _enumerate(p: GenerativeModel, terms: Terms) -> float:
    """Σ_x p(x) · Σ c · log m(x) over all K^D configurations, in chunks."""
    spec = p.fitted_spec
    k, d = spec.n_categories, spec.n_dims
    total = k**d
    powers = k ** np.arange(d - 1, -1, -1, dtype=np.int64)  # (D,) place values, base K
    parts = []
    for start in range(0, total, _ENUM_CHUNK):
        index = np.arange(start, min(start + _ENUM_CHUNK, total), dtype=np.int64)  # (n,)
        x = ((index[:, None] // powers) % k).reshape(-1, *spec.event_shape)  # (n, *event)
        values, log_p = _integrand(terms, x, extra=p)
        prob = np.exp(log_p)
        # configurations p never produces contribute 0, whatever the integrand (0 log 0 = 0)
        with np.errstate(invalid="ignore"):
            parts.append(float(np.where(prob > 0, prob * values, 0.0).sum()))
    return math.fsum(parts)


def _monte_carlo(
    p: GenerativeModel, terms: Terms, n_samples: int, random_state: Any
) -> tuple[float, float]:
    """Mean of Σ c · log m(x) over x ~ p, and its standard error."""
    rng = np.random.default_rng(random_state)
    chunks = []
    for start in range(0, n_samples, _MC_CHUNK):
        x = p.sample(min(_MC_CHUNK, n_samples - start), random_state=rng)
        chunks.append(_integrand(terms, x)[0])
    values = np.concatenate(chunks)  # (n_samples,)
    if np.isposinf(values).any() and not np.isnan(values).any():
        # a sample p draws has zero probability under q: the measure is infinite
        return math.inf, 0.0
    return float(values.mean()), float(values.std(ddof=1) / math.sqrt(len(values)))


def _data_cross_entropy(data: Any, q: GenerativeModel, *, base: str, method: str) -> InfoResult:
    if method == "exact":
        raise CapabilityError(
            "the cross-entropy of data is a sample average with a standard error, never "
            "exact; use method='auto'"
        )
    spec = q.fitted_spec
    if isinstance(data, Split) and _space_key(data.spec) != _space_key(spec):
        raise DataError(
            f"the data are {data.spec.describe()} but q was fitted on {spec.describe()}; "
            "score a model fitted on data of this kind and shape"
        )
    x = check_values(data, spec, allow_nan=False, what="data")
    values = -q.score_samples(x)  # (N,)
    std_err = float(values.std(ddof=1) / math.sqrt(len(values))) if len(values) > 1 else 0.0
    finish = _finisher(base, _direction([(q, -1.0)]), q.units_)
    return finish(float(values.mean()), std_err, "monte-carlo")


# ----------------------------------------------------------------- checks
def _check_options(base: str, method: str, n_samples: int) -> None:
    if base not in ("nats", "bits"):
        raise ParameterError(f"base must be 'nats' or 'bits', got {base!r}")
    if method not in ("auto", "exact", "mc"):
        raise ParameterError(f"method must be 'auto', 'exact' or 'mc', got {method!r}")
    if isinstance(n_samples, bool) or not isinstance(n_samples, (int, np.integer)):
        raise ParameterError(f"n_samples must be a whole number, got {n_samples!r}")
    if n_samples < 2:
        raise ParameterError(
            f"n_samples must be at least 2 (for a standard error), got {n_samples}"
        )


def _check_model(model: Any, role: str, *, needs_likelihood: bool) -> None:
    if not isinstance(model, GenerativeModel):
        raise ParameterError(
            f"{role} must be a fitted ptheta model (e.g. ptheta.make('gmm').fit(x)), got "
            f"{type(model).__name__}"
        )
    model.fitted_spec  # noqa: B018 -- raises NotFittedError for an unfitted model
    if needs_likelihood and "none" in (model.likelihood, model.likelihood_):
        raise CapabilityError(
            f"{role} ({model.name!r}) has no likelihood, so this measure cannot be computed "
            "for it; use a model with a likelihood, or sample-based metrics"
        )


def _space_key(spec: Any) -> tuple:
    return spec.kind, spec.event_shape, spec.n_categories, spec.columns


def _check_same_space(p: GenerativeModel, q: GenerativeModel) -> None:
    sp, sq = p.fitted_spec, q.fitted_spec
    if _space_key(sp) != _space_key(sq):
        raise CapabilityError(
            f"p ({p.name!r}) was fitted on {sp.describe()} data and q ({q.name!r}) on "
            f"{sq.describe()}: both must be distributions over the same space; fit them on "
            "data of the same kind, shape and number of categories"
        )
    if p.units_ != q.units_:
        what = {
            "discrete": "a probability mass function",
            "continuous": "a density",
            "mixed": "a probability times a density",
        }
        raise CapabilityError(
            f"p ({p.name!r}) is {what[p.units_]} and q ({q.name!r}) is {what[q.units_]}; "
            "their log-values are in different units and are never mixed. Fit both as "
            "discrete models (a gmm on discrete data with dequantization='auto' is one) or both "
            "as densities"
        )
