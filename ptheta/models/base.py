"""The contract every family implements: scikit-learn conventions plus declared capabilities."""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
from sklearn.base import BaseEstimator

from ptheta.data.spec import DataSpec, Split, check_values, infer_spec
from ptheta.errors import CapabilityError, DataError, NotFittedError, ParameterError, RunDirError

LIKELIHOOD_KINDS: tuple[str, ...] = ("exact", "bound", "estimate", "none")


class GenerativeModel(BaseEstimator):
    """Base contract of every ptheta model (estimator level).

    Subclasses declare, as class attributes:

    - ``name``: the registry name (``"gmm"``);
    - ``family``: the family in DESIGN.md's taxonomy (``"mixtures"``);
    - ``likelihood``: what ``score_samples`` returns on the data kinds the model
      models natively: ``"exact"``, ``"bound"`` (a lower bound on log p), ``"estimate"``
      (a stochastic estimate) or ``"none"``;
    - ``data_kinds``: the kinds ``fit`` accepts (``binary``, ``categorical``, ``continuous``);
    - ``needs_labels``: whether ``fit`` requires ``y``;
    - ``class_conditional``: whether ``sample(n, y=...)`` draws from p(x | y);
    - ``can_marginalise``: whether ``score_samples`` takes NaN for missing entries and
      returns the exact log-marginal of the observed ones, and ``impute`` works.

    After ``fit`` a model has ``spec_`` (the :class:`DataSpec` it was fitted on) and
    ``likelihood_``: what ``score_samples`` returns on that data, which may differ from
    the declared ``likelihood`` (a continuous density on discrete data reports a
    dequantisation *bound* on the discrete log-likelihood). ``units_`` says whether
    ``score_samples`` is a log-probability (``"discrete"``) or a log-density
    (``"continuous"``); both are in nats per example.

    Subclasses implement ``_fit(X, y)``, ``_score_samples(X)`` and ``_sample(n, y, rng)``
    on validated arrays; the public methods here validate input and check fitting.
    Fitted state is every public attribute ending in ``_``: numpy arrays are saved as
    safetensors, other values (numbers, strings, lists, dicts) as JSON.
    """

    name: ClassVar[str] = ""
    family: ClassVar[str] = ""
    likelihood: ClassVar[str] = "none"
    data_kinds: ClassVar[tuple[str, ...]] = ()
    needs_labels: ClassVar[bool] = False
    # sample(n, y=...) draws from p(x | y)
    class_conditional: ClassVar[bool] = False
    # score_samples accepts NaN (= missing) and returns the exact marginal of the observed
    # entries; impute / sample(given=...) fill missing entries
    can_marginalise: ClassVar[bool] = False
    # The model needs image-shaped examples (C, H, W): an event shape of 3 axes, or a spec
    # whose image_shape says how to view flat examples (digits: (1, 8, 8)).
    needs_image: ClassVar[bool] = False
    # Hyper-parameters for a small, fast fit: used by the contract tests and quick demos.
    quick_params: ClassVar[dict[str, Any]] = {}
    # Keyword arguments fit() accepts besides X and y (e.g. validation_data for neural ones).
    fit_params: ClassVar[tuple[str, ...]] = ()

    # ----------------------------------------------------------------- public API
    def fit(self, X: Any, y: Any = None, **fit_params: Any) -> GenerativeModel:
        """Fit the model to examples ``X`` of shape (N, *event_shape).

        ``X`` may be a numpy array (its kind is inferred: 0/1 → binary, small non-negative
        integers → categorical, else continuous) or a :class:`~ptheta.data.Split`, whose
        declared kind is used.
        """
        unknown = sorted(set(fit_params) - set(self.fit_params))
        if unknown:
            accepted = ", ".join(self.fit_params) or "none"
            raise ParameterError(
                f"{self.name!r}.fit() got unexpected argument(s) {unknown}; it accepts {accepted}"
            )
        spec = self._resolve_spec(X)
        if spec.kind not in self.data_kinds:
            raise DataError(
                f"{self.name!r} does not model {spec.kind} data (it accepts "
                f"{', '.join(self.data_kinds)}); choose another model, or declare the data kind "
                "if it was inferred wrongly"
            )
        if isinstance(X, Split) and y is None:
            y = X.y
        x = check_values(X, spec, allow_nan=False, what="training data")
        y = self._check_labels(y, len(x))
        self._clear_fitted()  # a refit must not inherit anything from an earlier fit
        self._fit(x, y, spec, **fit_params)
        self.spec_ = spec.to_json()
        self.likelihood_ = self._fitted_likelihood(spec)
        self.units_ = self._fitted_units(spec)
        return self

    def score_samples(self, X: Any) -> np.ndarray:
        """Log-likelihood of each example in nats, shape (N,).

        See ``likelihood_`` for whether it is exact, a bound or an estimate, and
        ``units_`` for whether it is a log-probability or a log-density.
        """
        self._check_fitted()
        if self.likelihood == "none":
            raise CapabilityError(
                f"{self.name!r} has no likelihood; use sample-based metrics instead"
            )
        x = check_values(X, self.fitted_spec, allow_nan=self.can_marginalise)
        return np.asarray(self._score_samples(x), dtype=np.float64)

    def score(self, X: Any, y: Any = None) -> float:
        """Mean log-likelihood per example in nats (higher is better; GridSearchCV uses it)."""
        return float(np.mean(self.score_samples(X)))

    def sample(
        self,
        n_samples: int = 1,
        *,
        y: Any = None,
        given: Any = None,
        random_state: Any = None,
    ) -> np.ndarray:
        """Draw ``n_samples`` examples, shape (n_samples, *event_shape), of the fitted kind.

        Discrete kinds come back as int64 values, continuous as float64.

        Arguments:
            y: a class label (or one label per sample) for class-conditional models.
            given: partial examples with NaN at the missing entries, shape
                (n_samples, *event_shape) or (1, *event_shape): the observed entries are
                kept and the missing ones drawn from p(x_missing | x_observed). Only for
                models that can marginalise.
            random_state: seed or numpy Generator.
        """
        self._check_fitted()
        if isinstance(n_samples, bool) or not isinstance(n_samples, (int, np.integer)):
            raise DataError(f"n_samples must be a whole number, got {n_samples!r}")
        if n_samples < 1:
            raise DataError(f"n_samples must be at least 1, got {n_samples}")
        if y is not None and not self.class_conditional:
            raise CapabilityError(
                f"{self.name!r} is not class-conditional; sample without y, or use "
                "ptheta.make('bayes-classifier', density=...) for one density per class"
            )
        rng = np.random.default_rng(random_state)
        spec = self.fitted_spec
        if given is not None:
            if y is not None:
                raise CapabilityError("sample takes y or given, not both")
            partial = self._check_partial(given)
            if len(partial) not in (1, n_samples):
                raise DataError(
                    f"given has {len(partial)} rows; pass one row, or n_samples={n_samples} rows"
                )
            partial = np.broadcast_to(partial, (n_samples, *spec.event_shape)).copy()
            return self._finish(self._impute(partial, "sample", rng), n_samples)
        labels = None if y is None else self._check_sample_labels(y, n_samples)
        return self._finish(self._sample(int(n_samples), labels, rng), n_samples)

    def impute(self, X: Any, *, method: str = "mode", random_state: Any = None) -> np.ndarray:
        """Fill the NaN entries of ``X``: ``method="mode"`` takes the most probable
        completion the family can compute exactly (see its docs), ``"sample"`` draws from
        p(x_missing | x_observed). Observed entries are returned unchanged.
        """
        self._check_fitted()
        if method not in ("mode", "sample"):
            raise DataError(f"method must be 'mode' or 'sample', got {method!r}")
        partial = self._check_partial(X)
        rng = np.random.default_rng(random_state)
        return self._finish(self._impute(partial, method, rng), len(partial))

    @property
    def fitted_spec(self) -> DataSpec:
        """The :class:`DataSpec` the model was fitted on."""
        self._check_fitted()
        return DataSpec.from_json(self.spec_)

    def _clear_fitted(self) -> None:
        for key in [k for k in vars(self) if k.endswith("_") and not k.startswith("__")]:
            delattr(self, key)

    def is_fitted(self) -> bool:
        return hasattr(self, "spec_")

    def n_parameters(self) -> int:
        """Number of free scalar parameters of the fitted model."""
        self._check_fitted()
        return int(self._n_parameters())

    def bits_per_dim(self, X: Any) -> float:
        """Mean negative log-likelihood in bits per dimension."""
        nll = -self.score(X)
        return nll / (self.fitted_spec.n_dims * math.log(2.0))

    # ----------------------------------------------------------------- state I/O
    def get_state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Fitted state as (arrays, json-able values), for the run directory."""
        self._check_fitted()
        arrays: dict[str, np.ndarray] = {}
        meta: dict[str, Any] = {}
        for key, value in vars(self).items():
            if not key.endswith("_") or key.startswith("_"):
                continue
            if isinstance(value, np.ndarray) and value.dtype.kind in "biuf":
                arrays[key] = np.ascontiguousarray(value)
            elif isinstance(value, np.ndarray):  # labels as strings: safetensors holds numbers
                meta[key] = {"__ndarray__": value.tolist(), "dtype": value.dtype.str}
            else:
                meta[key] = to_jsonable(value)
        return arrays, meta

    def set_state(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> GenerativeModel:
        """Restore fitted state written by :meth:`get_state`.

        Raises a :class:`RunDirError` when the state is not a fitted state of this model:
        an entry that is not a fitted attribute (``name_``), a value that cannot be
        rebuilt, a ``spec_``, ``likelihood_`` or ``units_`` that is missing or malformed, or
        an attribute of :meth:`_required_attributes` that is missing.
        """
        fix = "fit the model again (re-run `ptheta fit` for a run directory)"
        if not isinstance(arrays, dict) or not isinstance(meta, dict):
            raise RunDirError(
                f"the saved state of {self.name!r} is malformed: arrays and fitted values must "
                f"be mappings, got {type(arrays).__name__} and {type(meta).__name__}; {fix}"
            )
        for key in [*meta, *arrays]:
            if not isinstance(key, str) or not key.endswith("_") or key.startswith("_"):
                raise RunDirError(
                    f"the saved state of {self.name!r} has an entry {key!r} that is not a "
                    f"fitted attribute (names end in '_'); {fix}"
                )
        for key, value in meta.items():
            if isinstance(value, dict) and "__ndarray__" in value:
                try:
                    value = np.asarray(value["__ndarray__"], dtype=np.dtype(value["dtype"]))
                except (KeyError, TypeError, ValueError) as e:
                    raise RunDirError(
                        f"the saved state of {self.name!r} holds an unreadable array {key!r} "
                        f"({e}); {fix}"
                    ) from None
            setattr(self, key, value)
        for key, value in arrays.items():
            setattr(self, key, np.asarray(value))
        problem = self._state_problem()
        if problem:
            raise RunDirError(f"the saved state of {self.name!r} {problem}; {fix}")
        self._after_set_state()
        return self

    def _state_problem(self) -> str | None:
        """What is missing or malformed in a just-restored state, or None."""
        required = ("spec_", "likelihood_", "units_", *self._required_attributes())
        missing = [key for key in required if not hasattr(self, key)]
        if missing:
            return f"lacks the fitted attribute(s) {', '.join(map(repr, missing))}"
        try:
            spec = DataSpec.from_json(self.spec_)
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            return f"has a malformed data spec 'spec_' ({type(e).__name__}: {e})"
        if not spec.event_shape or min(spec.event_shape) < 1:
            return f"has a malformed data spec 'spec_' (event shape {spec.event_shape})"
        if self.likelihood_ not in LIKELIHOOD_KINDS:
            return f"has likelihood_={self.likelihood_!r}, not one of {', '.join(LIKELIHOOD_KINDS)}"
        if self.units_ not in ("discrete", "continuous"):
            return f"has units_={self.units_!r}, not 'discrete' or 'continuous'"
        return None

    # ----------------------------------------------------------------- hooks
    def _fit(self, x: np.ndarray, y: np.ndarray | None, spec: DataSpec) -> None:
        raise NotImplementedError

    def _score_samples(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _sample(self, n: int, y: Any, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError

    def _n_parameters(self) -> int:
        raise NotImplementedError

    def _impute(self, x: np.ndarray, method: str, rng: np.random.Generator) -> np.ndarray:
        """Fill NaN entries of ``x`` (float64, (N, *event_shape)); families that marginalise."""
        raise CapabilityError(
            f"{self.name!r} cannot fill in missing entries; use a family that marginalises "
            "exactly (see `ptheta models`), or impute before fitting"
        )

    def _after_set_state(self) -> None:
        """Rebuild derived, unsaved attributes after loading (e.g. torch modules)."""

    def _required_attributes(self) -> tuple[str, ...]:
        """Fitted attributes, besides ``spec_``, ``likelihood_`` and ``units_``, that a
        restored model cannot work without; :meth:`set_state` refuses a state that lacks
        one, naming it. Families list theirs (e.g. ``("weights_", "means_")``)."""
        return ()

    def _fitted_likelihood(self, spec: DataSpec) -> str:
        return self.likelihood

    def _fitted_units(self, spec: DataSpec) -> str:
        return "discrete" if spec.is_discrete else "continuous"

    # ----------------------------------------------------------------- helpers
    def _resolve_spec(self, X: Any) -> DataSpec:
        if isinstance(X, Split):
            return X.spec
        try:
            arr = np.asarray(X, dtype=np.float64)
        except (TypeError, ValueError):
            raise DataError("training data must be a numeric array of shape (N, ...)") from None
        if arr.ndim < 2:
            raise DataError(
                f"training data must have shape (N, ...) with one example per row, got shape "
                f"{arr.shape}; a single feature is X[:, None]"
            )
        if arr.shape[0] == 0:
            raise DataError("training data is empty (0 examples)")
        if np.isnan(arr).any():
            raise DataError(
                "training data contains NaN (missing) values; drop or impute those rows first"
            )
        if np.isinf(arr).any():
            raise DataError("training data contains infinite values; remove or clip them")
        return infer_spec(arr)

    def _finish(self, out: Any, n: int) -> np.ndarray:
        spec = self.fitted_spec
        out = np.asarray(out).reshape((n, *spec.event_shape))
        return out.astype(np.int64) if spec.is_discrete else out.astype(np.float64)

    def _check_partial(self, X: Any) -> np.ndarray:
        if not self.can_marginalise:
            raise CapabilityError(
                f"{self.name!r} cannot condition on partly observed examples; use a family "
                "that marginalises exactly (see `ptheta models`)"
            )
        x = check_values(X, self.fitted_spec, allow_nan=True, what="partial examples")
        return np.asarray(x, dtype=np.float64)

    def _check_sample_labels(self, y: Any, n: int) -> np.ndarray:
        """Labels for class-conditional sampling as an array (n,) of known classes."""
        labels = np.asarray(y)
        if labels.ndim == 0:
            labels = np.full(n, labels.item(), dtype=labels.dtype)
        if labels.shape != (n,):
            raise DataError(f"y must be one label or {n} labels, got shape {labels.shape}")
        classes = getattr(self, "classes_", None)
        if classes is not None:
            unknown = sorted(set(labels.tolist()) - set(np.asarray(classes).tolist()))
            if unknown:
                raise DataError(
                    f"unknown class label(s) {unknown[:5]}; the model knows "
                    f"{np.asarray(classes).tolist()}"
                )
        return labels

    def _check_labels(self, y: Any, n: int) -> np.ndarray | None:
        if y is None:
            if self.needs_labels:
                raise DataError(f"{self.name!r} needs class labels: call fit(X, y)")
            return None
        y = np.asarray(y)
        if y.shape != (n,):
            raise DataError(f"labels must have shape ({n},) to match X, got {y.shape}")
        return y

    def _check_fitted(self) -> None:
        if not self.is_fitted():
            raise NotFittedError(
                f"this {type(self).__name__} ({self.name!r}) is not fitted yet; call fit(X) "
                "first, or load a fitted one with ptheta.load(run_dir)"
            )

    def __sklearn_is_fitted__(self) -> bool:
        return self.is_fitted()


def to_jsonable(value: Any) -> Any:
    """Convert numpy scalars and tuples so that json.dumps accepts them."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    return value
