"""The contract every family implements: scikit-learn conventions plus declared capabilities."""

from __future__ import annotations

import collections
import functools
import math
import threading
import types
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, TypeVar

import numpy as np
from numpy.typing import ArrayLike
from sklearn.base import BaseEstimator

from ptheta.data.ragged import Sequences, check_sequences, infer_sequence_spec, is_ragged
from ptheta.data.spec import Data, DataSpec, Split, check_values, infer_spec
from ptheta.data.stream import ArraySource, CheckedSource, Source, is_source
from ptheta.errors import CapabilityError, DataError, NotFittedError, ParameterError, RunDirError
from ptheta.models.capabilities import LIKELIHOOD_KINDS, Capabilities
from ptheta.params import Config, Param

_Method = TypeVar("_Method", bound=Callable[..., Any])


class Unavailable(CapabilityError, AttributeError):
    """A method this model cannot honour: ``hasattr`` is False (scikit-learn and user code
    probe methods so), and reaching for it raises this CapabilityError, which says why."""


def only_where(why_not: Callable[[Any], str | None]) -> Callable[[_Method], _Method]:
    """Decorate a method that exists on an instance only where ``why_not(instance)`` is
    None; elsewhere getting it raises :class:`Unavailable` with ``why_not``'s message.

    Like scikit-learn's ``available_if``, but the error keeps ptheta's message and is a
    :class:`CapabilityError`. On the class the plain function is returned (for docs).
    """

    def decorate(method: _Method) -> _Method:
        return _OnlyWhere(method, why_not)  # type: ignore[return-value]

    return decorate


class _OnlyWhere:
    """The descriptor of :func:`only_where`."""

    def __init__(self, method: Callable[..., Any], why_not: Callable[[Any], str | None]):
        self.method = method
        self.why_not = why_not
        functools.update_wrapper(self, method)

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            return self.method
        reason = self.why_not(obj)
        if reason is not None:
            raise Unavailable(reason)
        return types.MethodType(self.method, obj)


def _why_no_likelihood(model: GenerativeModel) -> str | None:
    return None if model._capabilities().has_likelihood else model._no_likelihood()


def why_not_classify(model: GenerativeModel) -> str | None:
    """None where ``model`` classifies by Bayes' rule (``predict_proba``, ``predict``),
    else why not: for :func:`only_where` on those methods."""
    caps = model._capabilities()
    if caps.classifies:
        return None
    if not caps.has_likelihood:
        return f"{model._no_likelihood()}; Bayes' rule (predict_proba) needs p(x | y)"
    return (
        f"{model.name!r} classifies only with class_conditional=True and fit(X, y): it "
        "has no predict_proba or predict otherwise"
    )


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
      returns the exact log-marginal of the observed ones, and ``impute`` works;
    - ``fits_missing``: whether ``fit`` takes NaN for missing entries (EM over them).

    After ``fit`` a model has ``spec_`` (the :class:`DataSpec` it was fitted on) and
    ``likelihood_``: what ``score_samples`` returns on that data, which may differ from
    the declared ``likelihood`` (a continuous density on discrete data reports a
    dequantisation *bound* on the discrete log-likelihood). ``units_`` says whether
    ``score_samples`` is a log-probability (``"discrete"``) or a log-density
    (``"continuous"``); both are in nats per example.

    Subclasses implement ``_fit(X, y)``, ``_score_samples(X)`` and ``_sample(n, y, rng)``
    on validated arrays; the public methods here validate input and check fitting.
    Hyper-parameters are declared once in ``parameters`` and checked at the start of
    ``fit`` (:meth:`check_params`); ``random_state``, wherever a family has one, is an
    integer seed in [0, 2**32 − 1] or None for fresh randomness, default 0
    (:class:`~ptheta.params.Seed`).

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
    # fit accepts NaN (= missing) and fits by maximising the observed-data likelihood (EM)
    fits_missing: ClassVar[bool] = False
    # The model needs image-shaped examples (C, H, W): an event shape of 3 axes, or a spec
    # whose image_shape says how to view flat examples (digits: (1, 8, 8)).
    needs_image: ClassVar[bool] = False
    # Hyper-parameters for a small, fast fit: used by the contract tests and quick demos.
    quick_params: ClassVar[dict[str, Any]] = {}
    # Keyword arguments fit() accepts besides X and y (e.g. validation_data for neural ones).
    fit_params: ClassVar[tuple[str, ...]] = ()
    # Further fields of Capabilities this family has by default (embeds, exports_structure,
    # anomaly_score, ...), merged along the class hierarchy: NeuralModel's apply to every
    # neural family. Hyper-parameters override them in _capabilities().
    abilities: ClassVar[dict[str, Any]] = {}
    # Named hyper-parameter sets next to the defaults: "quick" (tiny, for tests and
    # --quick), "demo" (the digits comparison of `ptheta demo`, and the default list of
    # `ptheta compare`), "explorer" (the explorer's cached models). A family without a
    # preset of a name is left out of what that name selects.
    presets: ClassVar[dict[str, dict[str, Any]]] = {}
    # Every hyper-parameter of ``__init__``, declared once (scikit-learn's
    # ``_parameter_constraints``): name -> a :class:`~ptheta.params.Param` (``Int(low=1)``,
    # ``Choice("full", "diag")``, ...). ``fit`` checks them all before anything else
    # (:meth:`check_params`); ``ptheta models NAME`` prints them; the tests refuse each
    # declaration's bad values. Merged along the class hierarchy (a neural family adds its
    # own to NeuralModel's training parameters).
    parameters: ClassVar[dict[str, Param]] = {}
    # Old hyper-parameter names -> new ones: refused with a message naming the new name by
    # ``make``, ``set_params`` and ``ptheta fit --set``. Merged along the class hierarchy.
    renamed: ClassVar[dict[str, str]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for attr in ("parameters", "renamed"):  # the subclass's own first, then inherited
            merged: dict[str, Any] = {}
            for klass in cls.__mro__:
                for key, value in vars(klass).get(attr, {}).items():
                    merged.setdefault(key, value)
            setattr(cls, attr, merged)
        # A class's presets are its own (a subclass is not in the demo because its parent
        # is), but for "quick", which ``quick_params`` also names and a subclass inherits.
        own = dict(vars(cls).get("presets", {}))
        own.setdefault("quick", dict(vars(cls).get("quick_params", cls.quick_params)))
        cls.presets = own
        cls.quick_params = dict(own["quick"])

    # ----------------------------------------------------------------- capabilities
    def capabilities(self) -> Capabilities:
        """What this model, with its hyper-parameters, can do (see :class:`Capabilities`).

        Before fit ``fitted_likelihood`` and ``units`` are None; after fit they say what
        ``score_samples`` returns on the data the model was fitted on.

        Example:
            >>> import ptheta
            >>> ptheta.make("naive-bayes").capabilities().classifies
            True
        """
        caps = self._capabilities()
        if self.is_fitted():
            caps = caps.replace(
                fitted_likelihood=self.likelihood_,
                units=self.units_,
                dequantised=self._dequantised(),
            )
            if self.fitted_spec.variable_length:  # impute and sample(given=) are refused
                caps = caps.replace(imputes=False)
        return caps

    def _dequantised(self) -> bool:
        """After fit: whether this is a continuous density of dequantised discrete data."""
        return False

    def _capabilities(self) -> Capabilities:
        """The class defaults; families override this where a hyper-parameter decides."""
        conditional = bool(self.class_conditional)
        names = self._get_param_names()
        fields: dict[str, Any] = {
            "likelihood": self.likelihood,
            "data_kinds": tuple(self.data_kinds),
            "needs_labels": self.needs_labels,
            "needs_image": self.needs_image,
            "class_conditional": conditional,
            "classifies": conditional and self.likelihood != "none",
            "marginalises": self.can_marginalise,
            "imputes": self.can_marginalise,
            "fits_missing": self.fits_missing,
            "anomaly_score": "log_prob" if self.likelihood != "none" else None,
            "random_state": "random_state" in names,
            "can_condition": "class_conditional" in names,
            "progress": "verbose" in names,
        }
        for klass in reversed(type(self).__mro__):
            fields.update(vars(klass).get("abilities", {}))
        return Capabilities(**fields)

    @classmethod
    def preset(cls, name: str) -> dict[str, Any] | None:
        """The hyper-parameters of preset ``name`` (a copy), or None if the family has none."""
        found = cls.presets.get(name)
        return None if found is None else dict(found)

    # ----------------------------------------------------------------- hyper-parameters
    def check_params(self) -> Mapping[str, Any]:
        """Check every declared hyper-parameter (:attr:`parameters`), then the rules
        between them (:meth:`_check_params_together`); ``fit`` calls this before anything
        else. Returns the checked values, normalised (numpy scalars as Python numbers, a
        layer size as a list) in a frozen :class:`~ptheta.params.Config`; raises the ParameterError
        "<model>: <name> must be <what>, got <value!r>" of the first bad one.

        Example:
            >>> import ptheta
            >>> ptheta.make("gmm", n_components=2.5).check_params()
            Traceback (most recent call last):
            ...
            ptheta.errors.ParameterError: gmm: n_components must be an integer >= 1, got 2.5
        """
        raw = {key: getattr(self, key) for key in self.parameters}
        checked = Config(
            {key: decl.check(self.name, key, raw[key]) for key, decl in self.parameters.items()}
        )
        self._check_params_together(checked)
        self.__dict__["_checked"] = (raw, checked)  # for _params(), while they are unchanged
        return checked

    def _check_params_together(self, params: Mapping[str, Any]) -> None:
        """Rules between checked hyper-parameters that one declaration cannot express
        (ddpm's guidance needs class_conditional); a ParameterError where one is broken."""

    def _params(self) -> Mapping[str, Any]:
        """The checked hyper-parameters: those of the last :meth:`check_params` while no
        attribute has changed since, else checked now."""
        cached = self.__dict__.get("_checked")
        if cached is not None and all(getattr(self, k) is v for k, v in cached[0].items()):
            return cached[1]
        return self.check_params()

    @classmethod
    def _refuse_renamed(cls, params: Mapping[str, Any]) -> None:
        """A ParameterError naming the new name for any old one in ``params``."""
        for key in params:
            if key in cls.renamed:
                raise ParameterError(f"{cls.name}: {key!r} was renamed {cls.renamed[key]!r}")

    def set_params(self, **params: Any) -> GenerativeModel:
        """scikit-learn's ``set_params``; an old (renamed) name is refused, naming the new."""
        self._refuse_renamed(params)
        return super().set_params(**params)

    # ----------------------------------------------------------------- public API
    def fit(self, X: Data, y: ArrayLike | None = None, **fit_params: Any) -> GenerativeModel:
        """Fit the model to examples ``X`` of shape (N, *event_shape).

        ``X`` may be a numpy array (its kind is inferred: 0/1 → binary, small non-negative
        integers → categorical, else continuous) or a :class:`~ptheta.data.Split`, whose
        declared kind is used. The hyper-parameters are checked first (:meth:`check_params`).
        """
        self.check_params()
        unknown = sorted(set(fit_params) - set(self.fit_params))
        if unknown:
            accepted = ", ".join(self.fit_params) or "none"
            raise ParameterError(
                f"{self.name!r}.fit() got unexpected argument(s) {unknown}; it accepts {accepted}"
            )
        spec = self._resolve_spec(X)
        if spec.kind not in self.data_kinds:
            raise DataError(self._kind_error(X, spec))
        if isinstance(X, Split) and y is None:
            y = X.y
        if self._reads_array_in_batches(X, spec):
            # a classical family that streams reads an array in memory as it reads a file:
            # a batch at a time, each batch checked (no checked copy of the whole array)
            raw = X.x if isinstance(X, Split) else X
            X = Split(ArraySource(raw), None, spec)
        if is_source(X) and not spec.variable_length:
            source = X.x if isinstance(X, Split) else X
            y = self._check_labels(source.y if y is None else y, len(source))
            allow_nan = self._capabilities().fits_missing
            if self._capabilities().streams:  # read a batch at a time, each batch checked
                checked = CheckedSource(source, spec, allow_nan=allow_nan, what="training data")
                self._clear_fitted()
                self._fit_stream(checked, y, spec, **fit_params)
            else:  # a family that needs the whole array reads it whole
                x = check_values(np.asarray(source), spec, allow_nan=allow_nan,
                                 what="training data")  # fmt: skip
                self._clear_fitted()
                self._fit(x, y, spec, **fit_params)
        elif spec.variable_length:
            self._check_variable_length(X, spec)
            x, lengths = check_sequences(
                X, spec, allow_nan=self._capabilities().fits_missing, what="training data"
            )
            y = self._check_labels(y, len(x))
            self._clear_fitted()
            self._fit_sequences(x, lengths, y, spec, **fit_params)
        else:
            x = check_values(
                X, spec, allow_nan=self._capabilities().fits_missing, what="training data"
            )
            y = self._check_labels(y, len(x))
            self._clear_fitted()  # a refit must not inherit anything from an earlier fit
            self._fit(x, y, spec, **fit_params)
        self.spec_ = spec.to_json()
        self.likelihood_ = self._fitted_likelihood(spec)
        self.units_ = self._fitted_units(spec)
        return self

    def _reads_array_in_batches(self, X: Any, spec: DataSpec) -> bool:
        """Whether ``fit`` reads the in-memory array ``X`` (or a Split's) a batch at a
        time: a family that streams and fits from sums over batches (not one trained in
        steps, which turns the checked array into tensors once), a numeric array of the
        spec's shape (anything else takes the whole-array checks and their messages)."""
        caps = self._capabilities()
        if not caps.streams or caps.trains_in_steps or spec.variable_length:
            return False
        raw = X.x if isinstance(X, Split) else X
        return (
            spec.kind != "table"
            and type(raw) is np.ndarray
            and raw.dtype.kind in "biuf"
            and raw.shape[1:] == tuple(spec.event_shape)
            and raw.size > 0
        )

    def _kind_error(self, X: Any, spec: DataSpec) -> str:
        """The message for training data of a kind this family does not model."""
        if spec.kind == "continuous" and not isinstance(X, Split):
            from ptheta.data.ragged import as_sequences
            from ptheta.data.spec import as_array

            if is_ragged(X):  # every step of every sequence, padding left out
                arr = as_sequences(X, "training data").concatenated()[0].astype(np.float64)
            else:
                arr = as_array(X, "training data").astype(np.float64)
            if arr.min() < 0 and np.all(arr == np.round(arr)):
                # integer levels shifted below 0: say so (scikit-learn's phrase, too)
                return (
                    f"Negative values in data passed to {self.name!r}: it models discrete "
                    f"levels 0..K-1 ({', '.join(self.data_kinds)}), and negative values make "
                    "the data continuous; shift the levels (X - X.min()), or choose a model "
                    "of continuous data"
                )
        return (
            f"{self.name!r} does not model {spec.kind} data (it accepts "
            f"{', '.join(self.data_kinds)}); {self._kind_fix(spec)}"
        )

    def _check_variable_length(self, X: Any, spec: DataSpec) -> None:
        """Refuse sequences of different lengths where the family models fixed-length
        examples only, saying what to do."""
        if self._capabilities().variable_length:
            return
        from ptheta.data.ragged import as_sequences

        lengths = as_sequences(X, "training data").lengths
        raise DataError(
            f"{self.name!r} models examples of one fixed shape, but these are {len(lengths)} "
            f"sequences of {lengths.min()}-{lengths.max()} steps; choose a family that models "
            "variable-length sequences (`ptheta models` marks them 'any length'), or cut "
            "the sequences into windows of one length"
        )

    def _kind_fix(self, spec: DataSpec) -> str:
        """What to do with training data of a kind this family does not model."""
        return "choose another model, or declare the data kind if it was inferred wrongly"

    @property
    def n_features_in_(self) -> int:
        """After fit: the number of features of one example flattened (scikit-learn's
        attribute), the product of the event shape. Derived from ``spec_``, so a model
        loaded from a run directory has it too; an AttributeError before fit."""
        if not self.is_fitted():
            raise AttributeError(f"this {type(self).__name__} is not fitted: no n_features_in_")
        return int(np.prod(DataSpec.from_json(self.spec_).event_shape))

    def _no_likelihood(self) -> str:
        """Why a model without a likelihood has no ``score_samples``; families say more."""
        return f"{self.name!r} has no likelihood; use sample-based metrics instead"

    def _is_classifier(self) -> bool:
        """A classifier in scikit-learn's sense: it classifies by Bayes' rule (a
        class-conditional model with a likelihood), see :meth:`__sklearn_tags__`."""
        return self._capabilities().classifies

    def __sklearn_tags__(self) -> Any:
        """scikit-learn's tags, from the capabilities: a model that classifies
        (``capabilities().classifies``: naive Bayes, a Bayes classifier, any family with
        ``class_conditional=True`` and a likelihood) is a ``"classifier"`` (stratified
        folds in ``cross_val_score``, ``score(X, y)`` = accuracy); every other model is a
        ``"density_estimator"``. ``target_tags.required`` where ``fit`` needs ``y``.

        Input tags: families of discrete data only (levels 0..K-1) declare
        ``categorical`` and ``positive_only``; families that need images (C, H, W) do not
        take 2-D arrays (``two_d_array`` False, as scikit-learn's image estimators), nor
        do families of tables only (a table's typed columns come from a Split or a
        DataFrame read with its schema, never from a plain array).
        ``allow_nan`` is ``capabilities().fits_missing``: the tag says ``fit`` takes NaN
        (meta-estimators pass it there), which only families that fit by EM over the missing
        entries do (models that only marginalise when scoring leave it False).
        """
        from sklearn.utils import ClassifierTags

        tags = super().__sklearn_tags__()
        caps = self._capabilities()
        discrete = "continuous" not in caps.data_kinds
        tags.input_tags.allow_nan = caps.fits_missing
        tags.input_tags.categorical = discrete
        tags.input_tags.positive_only = discrete
        tables_only = tuple(caps.data_kinds) == ("table",)
        tags.input_tags.two_d_array = not (caps.needs_image or tables_only)
        tags.target_tags.required = caps.needs_labels or caps.classifies
        if caps.classifies:
            tags.estimator_type = "classifier"
            tags.classifier_tags = ClassifierTags(multi_class=True, multi_label=False)
        else:
            tags.estimator_type = "density_estimator"
        return tags

    @only_where(_why_no_likelihood)
    def score_samples(
        self, X: Data, *, return_std: bool = False
    ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Log-likelihood of each example in nats, shape (N,).

        Absent on a model without a likelihood (GAN, EBM): ``hasattr`` is False, and
        calling it raises a :class:`CapabilityError` that says what to use instead.

        See ``likelihood_`` for whether it is exact, a bound or an estimate, and
        ``units_`` for whether it is a log-probability or a log-density. With
        ``return_std=True`` it returns ``(scores, std)``: ``std`` (N,) is the Monte-Carlo
        standard error of each stochastic score (zeros where the score is exact or a
        deterministic bound).
        """
        self._check_fitted()
        spec = self.fitted_spec
        if is_source(X) and not spec.variable_length:
            # a streamed source, scored a batch at a time (a score never depends on the
            # other rows of its batch, so batching changes nothing)
            source = X.x if isinstance(X, Split) else X
            parts = [
                self.score_samples(batch, return_std=True)
                for _, batch in source.batches(source.batch_rows())
            ]
            scores = np.concatenate([p[0] for p in parts])
            std = np.concatenate([p[1] for p in parts])
            return (scores, std) if return_std else scores
        if spec.variable_length:
            x, lengths = check_sequences(X, spec, allow_nan=self.can_marginalise)
            scores, std = self._score_sequences_with_std(x, lengths)
        else:
            if is_ragged(X):
                raise DataError(
                    f"this {self.name!r} was fitted on examples of one shape {spec.event_shape}"
                    "; it cannot score sequences of different lengths (fit a family that "
                    "models variable-length sequences on them)"
                )
            x = check_values(X, spec, allow_nan=self.can_marginalise)
            if not return_std:
                return np.asarray(self._score_samples(x), dtype=np.float64)
            scores, std = self._score_samples_with_std(x)
        if not return_std:
            return np.asarray(scores, dtype=np.float64)
        return np.asarray(scores, dtype=np.float64), np.asarray(std, dtype=np.float64)

    @only_where(_why_no_likelihood)
    def score(self, X: Data, y: ArrayLike | None = None) -> float:
        """What scikit-learn's model selection (``GridSearchCV``, ``cross_val_score``)
        maximises: higher is better.

        - A classifier (``sklearn.base.is_classifier(model)``, i.e. ``capabilities().
          classifies``) given labels ``y``: the accuracy of ``predict(X)``, the mean of
          ``predict(X) == y``, as scikit-learn's classifiers score.
        - Otherwise (a density, or a classifier without ``y``): the mean log-likelihood per
          example in nats, ``score_samples(X).mean()``; ``y`` is ignored.

        For the held-out log-likelihood of a classifier, call ``score(X)`` without ``y``.
        """
        if y is not None and self._is_classifier():
            predicted = self.predict(X)  # checks fitting and X first
            return float(np.mean(predicted == self._check_labels(y, len(predicted))))
        return float(np.mean(self.score_samples(X)))

    def sample(
        self,
        n_samples: int = 1,
        *,
        y: ArrayLike | None = None,
        given: Data | None = None,
        random_state: int | np.random.Generator | None = None,
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
        if spec.variable_length:
            if given is not None:
                raise CapabilityError(
                    "sample(given=...) is not available for variable-length sequences; "
                    "sample whole sequences, or continue a prefix with generate(prompt=...)"
                )
            labels = None if y is None else self._check_sample_labels(y, n_samples)
            values, lengths = self._sample_sequences(int(n_samples), labels, rng)
            values = np.asarray(values)
            values = values.astype(np.int64) if spec.is_discrete else values.astype(np.float64)
            return Sequences(values, np.asarray(lengths, dtype=np.int64))
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

    def impute(
        self,
        X: Data,
        *,
        method: str = "mode",
        random_state: int | np.random.Generator | None = None,
    ) -> np.ndarray:
        """Fill the NaN entries of ``X``: ``method="mode"`` takes the most probable
        completion the family can compute exactly (see its docs), ``"sample"`` draws from
        p(x_missing | x_observed). Observed entries are returned unchanged.
        """
        self._check_fitted()
        if method not in ("mode", "sample"):
            raise DataError(f"method must be 'mode' or 'sample', got {method!r}")
        if self.fitted_spec.variable_length:
            raise CapabilityError(
                "impute is not available for variable-length sequences yet; score_samples "
                "marginalises their missing (NaN) steps where the family can"
            )
        partial = self._check_partial(X)
        rng = np.random.default_rng(random_state)
        return self._finish(self._impute(partial, method, rng), len(partial))

    @property
    def fitted_spec(self) -> DataSpec:
        """The :class:`DataSpec` the model was fitted on (parsed once per ``spec_``)."""
        self._check_fitted()
        return _parsed_spec(self.spec_)

    def _clear_fitted(self) -> None:
        for key in [k for k in vars(self) if k.endswith("_") and not k.startswith("__")]:
            delattr(self, key)

    def is_fitted(self) -> bool:
        return hasattr(self, "spec_")

    def n_parameters(self) -> int:
        """Number of free scalar parameters of the fitted model."""
        self._check_fitted()
        return int(self._n_parameters())

    def fit_history(self) -> list[dict[str, Any]]:
        """The fit's per-step records (EM families: objective and log-likelihood per
        step), for the run's metrics; empty where the family keeps none (neural families
        log their epochs through the Trainer)."""
        self._check_fitted()
        return [dict(h) for h in getattr(self, "history_", None) or []]

    def nll_summary(self, X: Data) -> dict[str, Any]:
        """Mean negative log-likelihood of ``X`` in one unit, with its kind.

        Returns a dict with ``n``, ``nll_nats`` (per example), ``bits_per_dim``, ``std_err``
        (of the mean over examples, nats), ``mc_std_err`` (the Monte-Carlo error of the mean
        alone: 0 for exact scores and closed-form bounds), ``likelihood`` (exact / bound /
        estimate / none) and ``units`` (``discrete``: −log P, comparable across discrete
        models and their bounds;
        ``continuous``: −log density, comparable only with other densities of the same
        data). A model with no likelihood gives None for the numbers. Families whose
        scores come from a numerical solver add how (``ode_solver``, ``ode_rtol``,
        ``ode_atol``, ``ode_steps``, ``nfe``: see ``likelihood_details``).
        """
        self._check_fitted()
        out: dict[str, Any] = {
            "n": len(X),
            "likelihood": self.likelihood_,
            "units": self.units_,
            "nll_nats": None,
            "bits_per_dim": None,
            "std_err": None,
        }
        if self.likelihood_ == "none":
            return out
        log_p, mc_std = self.score_samples(X, return_std=True)
        nll = float(-log_p.mean())
        # the Monte-Carlo error of the mean alone (draws are independent across examples);
        # std_err, over examples, already includes that noise
        out["mc_std_err"] = float(np.sqrt(np.nansum(mc_std**2)) / len(log_p))
        out["nll_nats"] = nll
        out["bits_per_dim"] = nll / (self.fitted_spec.n_dims * math.log(2.0))
        if self.fitted_spec.variable_length:
            # per step, each sequence's end counted as one step (the model scores it)
            from ptheta.data.ragged import as_sequences

            n_steps = as_sequences(X).n_steps + len(log_p)
            out["n_steps"] = int(n_steps)
            out["nll_per_step"] = float(-log_p.sum() / n_steps)
            out["bits_per_dim"] = out["nll_per_step"] / (self.fitted_spec.step_dims * math.log(2.0))
        out["std_err"] = float(log_p.std(ddof=1) / math.sqrt(len(log_p))) if len(log_p) > 1 else 0.0
        out.update(self.likelihood_details())
        return out

    def likelihood_details(self) -> dict[str, Any]:
        """How the last scores were computed, beyond their kind (also in ``nll_summary``):
        a family that integrates an ODE reports its solver, its tolerances or steps, the
        function evaluations (NFE) of its last solve and the divergence it used (JSON-able
        values). Empty for every other family."""
        self._check_fitted()
        return {}

    def bits_per_dim(self, X: Data) -> float:
        """Mean negative log-likelihood in bits per dimension (for variable-length
        sequences: per step, each end counted as a step, and per value of a step)."""
        if self.fitted_spec.variable_length:
            return float(self.nll_summary(X)["bits_per_dim"])
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
        units = (
            ("discrete", "continuous", "mixed")
            if spec.kind == "table"
            else ("discrete", "continuous")
        )
        if self.units_ not in units:
            return f"has units_={self.units_!r}, not one of {', '.join(map(repr, units))}"
        for key, shape in self._expected_shapes(spec).items():
            if not hasattr(self, key):
                return f"lacks the fitted attribute(s) {key!r}"
            actual = np.shape(getattr(self, key))
            if actual != tuple(shape):
                return (
                    f"has {key} of shape {actual}, but its parameters and data spec make it "
                    f"{tuple(shape)} (weights from another run?)"
                )
        return None

    def _expected_shapes(self, spec: DataSpec) -> dict[str, tuple[int, ...]]:
        """The shapes that the hyper-parameters and the data spec fix for fitted arrays
        (``{"means_": (K, D)}``): a restored state is cross-checked against them, so
        weights of another run are refused. Families list theirs."""
        return {}

    # ----------------------------------------------------------------- hooks
    def _fit(self, x: np.ndarray, y: np.ndarray | None, spec: DataSpec) -> None:
        raise NotImplementedError

    def _fit_stream(
        self, data: Source, y: np.ndarray | None, spec: DataSpec, **fit_params: Any
    ) -> None:
        """Fit from ``data`` read a batch at a time (families with ``streams``): a
        :class:`~ptheta.data.stream.Source` whose batches are checked values (int64 codes
        or float64), ``y`` the labels in memory. Streaming families usually make ``_fit``
        call this on ``ArraySource(x)``, so an in-memory fit and a streamed one are one
        computation (see :func:`~ptheta.data.stream.accumulate`)."""
        raise NotImplementedError

    def _score_samples(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _sample(self, n: int, y: Any, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError

    def _score_samples_with_std(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Scores and their Monte-Carlo standard errors, (N,) each; stochastic scorers
        override this (the default is a deterministic score with zero error)."""
        scores = np.asarray(self._score_samples(x), dtype=np.float64)
        return scores, np.zeros_like(scores)

    def _n_parameters(self) -> int:
        raise NotImplementedError

    # Variable-length sequences (``capabilities().variable_length``): ``x`` is padded with
    # zeros after each end, (N, T, *step_shape), ``lengths`` (N,) >= 1.
    def _fit_sequences(
        self, x: np.ndarray, lengths: np.ndarray, y: np.ndarray | None, spec: DataSpec
    ) -> None:
        raise NotImplementedError

    def _score_sequences(self, x: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """log p(x, length) of each sequence (N,), the end of each sequence included."""
        raise NotImplementedError

    def _score_sequences_with_std(
        self, x: np.ndarray, lengths: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        scores = np.asarray(self._score_sequences(x, lengths), dtype=np.float64)
        return scores, np.zeros_like(scores)

    def _sample_sequences(
        self, n: int, y: Any, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """n sequences with their lengths drawn too: padded values and lengths (n,)."""
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
        # a table: discrete, continuous or mixed (a probability times a density) by its columns
        return spec.units

    # ----------------------------------------------------------------- helpers
    def _resolve_spec(self, X: Any) -> DataSpec:
        if isinstance(X, Split):
            return X.spec
        if isinstance(X, Source):
            if X.spec is None:
                raise DataError(
                    "this data source has no spec yet: open it with ptheta.data.open_source "
                    "(which reads it once to infer the kind), or give it a DataSpec"
                )
            return X.spec
        if is_ragged(X):
            return infer_sequence_spec(X)
        from ptheta.data.spec import as_array  # refuses sparse, complex, string, object

        arr = as_array(X, "training data")
        if arr.ndim < 2:
            raise DataError(
                f"training data must have shape (N, ...) with one example per row, got shape "
                f"{arr.shape}; a single feature is X[:, None]"
            )
        if arr.shape[0] == 0:
            raise DataError("training data is empty (0 examples)")
        if arr.dtype.kind in "biu":  # integers: no NaN, no infinity; no float copy
            return infer_spec(arr)
        arr = arr.astype(np.float64, copy=False)
        if np.isnan(arr).any() and not self._capabilities().fits_missing:
            raise DataError(
                f"training data contains NaN (missing) values and {self.name!r} cannot fit "
                "with missing entries; drop or impute those rows first, or choose a family "
                "that does (`ptheta models` marks them 'fits missing')"
            )
        if arr.size and np.isnan(arr).all():
            raise DataError("training data has no observed value (every entry is NaN)")
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
                raise DataError(
                    f"{self.name!r} needs class labels: it requires y to be passed, but the "
                    "target y is None; call fit(X, y)"
                )
            return None
        if type(y).__module__.startswith("scipy.sparse"):
            raise DataError("labels are a scipy sparse matrix; pass one label per example (N,)")
        y = np.asarray(y)
        if y.shape != (n,):
            hint = "; a column (N, 1) is y.ravel()" if y.shape == (n, 1) else ""
            raise DataError(f"labels must have shape ({n},) to match X, got {y.shape}{hint}")
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


# The parsed specs of recently used ``spec_`` dicts, by identity (the dict itself is kept,
# so its id is not reused while it is here): a table's spec takes a fraction of a
# millisecond to parse, which queries and per-batch checks would pay on every call. A
# cache outside the model: reading ``fitted_spec`` leaves the estimator's __dict__ alone.
_SPECS: collections.OrderedDict[int, tuple[dict[str, Any], DataSpec]] = collections.OrderedDict()
_SPECS_KEPT = 64


_SPECS_LOCK = threading.Lock()


def _parsed_spec(spec_json: dict[str, Any]) -> DataSpec:
    key = id(spec_json)
    with _SPECS_LOCK:
        hit = _SPECS.get(key)
        if hit is not None and hit[0] is spec_json:
            _SPECS.move_to_end(key)
            return hit[1]
    parsed = DataSpec.from_json(spec_json)  # a frozen dataclass: safe to share
    with _SPECS_LOCK:
        _SPECS[key] = (spec_json, parsed)
        while len(_SPECS) > _SPECS_KEPT:
            _SPECS.popitem(last=False)
    return parsed
