"""Generative classifiers: Bayes' rule p(y | x) ∝ p(y) p(x | y) over one density per class."""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
from scipy.special import logsumexp

from ptheta.data.ragged import Sequences, check_sequences
from ptheta.data.spec import DataSpec, Split, check_values
from ptheta.data.stream import Source, Subset
from ptheta.errors import CapabilityError, DataError, ParameterError, RunDirError, UnknownNameError
from ptheta.models.base import GenerativeModel
from ptheta.models.capabilities import Capabilities
from ptheta.models.sampling import sample_categorical
from ptheta.params import Choice, Dict, Float, Name, Param

PRIORS: tuple[str, ...] = ("empirical", "uniform")
# The class prior's hyper-parameters, declared for every generative classifier.
PRIOR_PARAMS: dict[str, Param] = {"prior": Choice(*PRIORS), "prior_alpha": Float(low=0)}
# A classifier's score is as weak as its weakest class density's.
_LIKELIHOOD_RANK = {"exact": 0, "bound": 1, "estimate": 2}


class BayesRule:
    """What every generative classifier p(y) p(x | y) shares: the class prior and Bayes' rule.

    A model mixes this in before :class:`GenerativeModel` (whose validation it uses), calls
    :meth:`_fit_prior` in its ``_fit`` (setting ``classes_``, ``class_count_`` and
    ``class_log_prior_``) and implements ``_joint_log_likelihood(x)`` = log p(x_obs, y),
    shape (N, C), with NaN entries of ``x`` marginalised out (``x`` is a checked array, or
    checked :class:`~ptheta.data.ragged.Sequences` where the model was fitted on
    variable-length sequences). Scoring, class posteriors and predictions follow from it.
    """

    name: ClassVar[str]
    classes_: np.ndarray
    class_log_prior_: np.ndarray

    def _joint_log_likelihood(self, x: Any) -> np.ndarray:
        raise NotImplementedError

    # ----------------------------------------------------------------- Bayes' rule
    def predict_log_proba(self, X: Any) -> np.ndarray:
        """Log class posteriors log p(y | x_obs), shape (N, C), columns in ``classes_`` order.

        NaN entries of ``X`` are missing: their factors are marginalised out exactly.
        Variable-length fits take sequences (one label per sequence).
        """
        self._check_fitted()
        spec = self.fitted_spec
        if spec.variable_length:
            x: Any = Sequences(*check_sequences(X, spec, allow_nan=True))
        else:
            x = check_values(X, spec, allow_nan=True)
        jll = self._joint_log_likelihood(x)  # (N, C)
        return jll - logsumexp(jll, axis=1, keepdims=True)

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class posteriors p(y | x_obs), shape (N, C), columns in ``classes_`` order."""
        return np.exp(self.predict_log_proba(X))

    def predict(self, X: Any) -> np.ndarray:
        """Most probable class of each example, shape (N,), as labels from ``classes_``."""
        index = self.predict_log_proba(X).argmax(axis=1)  # checks fitting first
        return self.classes_[index]

    def embed(self, X: Any) -> np.ndarray:
        """Representation: the class posterior p(y | x), shape (N, C)."""
        return self.predict_proba(X)

    def _score_samples(self, x: np.ndarray) -> np.ndarray:
        # log p(x) = log Σ_y p(x, y)
        return logsumexp(self._joint_log_likelihood(x), axis=1)

    # ----------------------------------------------------------------- helpers
    def _fit_prior(self, y: np.ndarray, prior: str, prior_alpha: float) -> np.ndarray:
        """Set the class attributes from labels ``y`` (N,); return class indices (N,)."""
        prior_alpha = float(prior_alpha)  # both declared in PRIOR_PARAMS, checked at fit
        self.classes_, index = encode_labels(self.name, y)
        counts = np.bincount(index, minlength=len(self.classes_)).astype(np.float64)  # (C,)
        self.class_count_ = counts
        n_classes = len(counts)
        if prior == "uniform":
            self.class_log_prior_ = np.full(n_classes, -math.log(n_classes))
        else:
            smoothed = counts + prior_alpha
            self.class_log_prior_ = np.log(smoothed / smoothed.sum())
        return index

    def _class_index(self, n: int, y: np.ndarray | None, rng: np.random.Generator) -> np.ndarray:
        """Class indices (n,): of the (validated) labels ``y``, else drawn from the prior."""
        if y is None:
            prior = np.exp(self.class_log_prior_)
            return rng.choice(len(prior), size=n, p=prior / prior.sum())
        return np.searchsorted(self.classes_, y)

    def _posterior(self, x: np.ndarray) -> np.ndarray:
        """p(y | x_obs) for validated x, shape (N, C)."""
        jll = self._joint_log_likelihood(x)
        return np.exp(jll - logsumexp(jll, axis=1, keepdims=True))


def encode_labels(model: str, y: Any) -> tuple[np.ndarray, np.ndarray]:
    """Sorted distinct labels (C,) and each example's class index (N,), or a DataError.

    Labels are numbers or strings; a missing label (NaN or None) is refused, since it would
    otherwise become a class of its own, and so are continuous (non-integer or infinite
    float) values.
    """
    labels = np.asarray(y)
    if labels.dtype.kind == "f":
        missing = np.isnan(labels)
    elif labels.dtype.kind == "O":
        missing = np.array([v is None or (isinstance(v, float) and math.isnan(v)) for v in labels])
    else:
        missing = np.zeros(len(labels), dtype=bool)
    if missing.any():
        rows = np.flatnonzero(missing)
        raise DataError(
            f"{model}: {len(rows)} class label(s) are missing (NaN or None; first at rows "
            f"{rows[:5].tolist()}); drop those examples or give them a label"
        )
    if labels.dtype.kind == "f":
        # scikit-learn's rule (type_of_target): floats with a fractional part, or infinite
        # ones, are a continuous target, not classes (each value would be a class)
        bad = ~np.isfinite(labels) | (labels != np.round(labels))
        if bad.any():
            raise DataError(
                f"{model}: y holds continuous values (e.g. {labels[bad][0]!r}), not class "
                "labels; a classifier needs integer or string labels: bin a continuous "
                "target first"
            )
    if labels.dtype.kind in "iu" and len(labels) and labels.min() >= 0 and labels.max() < 2**20:
        # small non-negative integers: the same classes and indices in O(N), no sort
        present = np.bincount(labels.reshape(-1)) > 0
        classes = np.flatnonzero(present).astype(labels.dtype)
        return classes, (np.cumsum(present) - 1)[labels.reshape(-1)]
    try:
        classes, index = np.unique(labels, return_inverse=True)
    except TypeError:
        raise DataError(f"{model}: labels must be all numbers or all strings") from None
    return classes, index.reshape(-1)


class BayesClassifier(BayesRule, GenerativeModel):
    """Generative classifier with one density of any registered family per class.

    p(x, y) = p(y) p_y(x), where p_y is the density ``density`` (a registry name, built with
    ``density_params``) fitted on the examples of class y alone. Classification is Bayes'
    rule, ``score_samples`` is the marginal log p(x) = log Σ_y p(y) p_y(x), and
    ``sample(n, y=...)`` draws from p_y. Family ``"classifiers"``: the model is a way of
    using any family, not a family of its own; ``likelihood_`` and ``units_`` are the class
    densities' (a bound if a density's score is a bound).

    A data source (:class:`~ptheta.data.stream.Source`) is fitted one class at a time:
    each density gets the examples of its class as a subset of the source (by index,
    nothing copied), which a density that streams (``independent``, ``gmm``, ...) reads
    a batch at a time; ``capabilities().streams`` is then the density's.

    Missing entries (NaN) are marginalised by the class densities, so they need a density
    that marginalises exactly (``independent`` does; a CapabilityError says so otherwise).
    ``impute(method="sample")`` draws y ~ p(y | x_obs), then x_mis ~ p_y(x_mis | x_obs);
    ``method="mode"`` takes the most probable class y* = argmax p(y | x_obs) and fills the
    entries with p_y*'s own mode imputation (exact per class, not the mode of the mixture).

    Arguments:
        density: registry name of the class density (``"independent"``, ``"gmm"``, ...).
        density_params: keyword arguments for every class density.
        prior: ``"empirical"`` (class frequencies) or ``"uniform"`` (1 / C).
        prior_alpha: pseudo-count added to every class count of the empirical prior.

    Fitted attributes:
        classes_ (C,) sorted labels; class_count_ (C,); class_log_prior_ (C,);
        densities_: list of C fitted models, ``densities_[c]`` is p(x | classes_[c]).

    Returns (of ``predict_proba``): p(y | x), shape (N, C), columns in ``classes_`` order.

    Example:
        >>> import ptheta
        >>> data = ptheta.datasets.load("digits-binary")
        >>> m = ptheta.make("bayes-classifier", density_params={"alpha": 1.0})
        >>> m = m.fit(data.train.x, data.train.y)
        >>> m.predict_proba(data.test.x).shape
        (447, 10)
    """

    name: ClassVar[str] = "bayes-classifier"
    family: ClassVar[str] = "classifiers"
    likelihood: ClassVar[str] = "exact"
    abilities: ClassVar[dict[str, Any]] = {"embeds": True}
    data_kinds: ClassVar[tuple[str, ...]] = ("binary", "categorical", "continuous")
    needs_labels: ClassVar[bool] = True
    class_conditional: ClassVar[bool] = True
    can_marginalise: ClassVar[bool] = True
    parameters: ClassVar[dict[str, Param]] = {
        "density": Name(),
        "density_params": Dict(),
        **PRIOR_PARAMS,
    }

    def __init__(
        self,
        density: str = "independent",
        *,
        density_params: dict[str, Any] | None = None,
        prior: str = "empirical",
        prior_alpha: float = 0.0,
    ) -> None:
        self.density = density
        self.density_params = density_params
        self.prior = prior
        self.prior_alpha = prior_alpha

    def _capabilities(self) -> Capabilities:
        from ptheta.models import get_model_class  # the registry imports this module

        caps = super()._capabilities()
        try:
            inner = get_model_class(self.density)().capabilities()
        except (UnknownNameError, TypeError):  # an invalid density is refused at fit
            return caps
        # missing entries are summed out exactly only where the class densities can
        return caps.replace(
            marginalises=inner.marginalises,
            imputes=inner.marginalises,
            fits_missing=inner.fits_missing,  # each class's density fits its rows with NaN
            needs_sequence=inner.needs_sequence,  # a classifier of HMMs reads sequences
            variable_length=inner.variable_length,  # ... of any length, where they do
            streams=inner.streams,  # each class's examples read in batches, where they do
        )

    # ----------------------------------------------------------------- fitting
    def _new_density(self) -> GenerativeModel:
        from ptheta.models import get_model_class, make  # the registry imports this module

        cls = get_model_class(self.density)  # a registered name: checked at fit
        if cls.needs_labels:
            raise ParameterError(
                f"density {self.density!r} is itself a classifier (it needs labels); "
                "choose a density of x such as 'independent' or 'gmm'"
            )
        if cls.likelihood == "none":
            raise CapabilityError(
                f"density {self.density!r} has no likelihood, and Bayes' rule needs p(x | y); "
                "choose a density with an exact likelihood, a bound or an estimate"
            )
        return make(self.density, **(self.density_params or {}))

    def _check_params_together(self, params: Any) -> None:
        # the class density must be one of x, with a likelihood, and its parameters valid
        self._new_density().check_params()

    def _fit(self, x: np.ndarray, y: np.ndarray | None, spec: DataSpec) -> None:
        self._fit_classes(x, None, y, spec)

    def _fit_sequences(
        self, x: np.ndarray, lengths: np.ndarray, y: np.ndarray | None, spec: DataSpec
    ) -> None:
        self._fit_classes(x, lengths, y, spec)

    def _fit_stream(self, data: Source, y: np.ndarray | None, spec: DataSpec) -> None:
        # each class's examples as a source of their own (an index, nothing read): a
        # density that streams reads them a batch at a time
        self._fit_classes(data, None, y, spec)

    def _fit_classes(
        self,
        x: np.ndarray | Source,
        lengths: np.ndarray | None,
        y: np.ndarray | None,
        spec: DataSpec,
    ) -> None:
        """One density per class on its examples ``x`` (sequences padded after ``lengths``,
        for variable-length data; or a source, of which each class gets a subset)."""
        first = self._new_density()
        if spec.kind not in first.data_kinds:
            raise DataError(
                f"density {self.density!r} does not model {spec.kind} data (it accepts "
                f"{', '.join(first.data_kinds)}); choose another density"
            )
        assert y is not None  # the base checks needs_labels
        index = self._fit_prior(y, self.prior, self.prior_alpha)
        densities = []
        for c, label in enumerate(self.classes_.tolist()):
            rows = _ClassRows(x, index == c) if isinstance(x, Source) else x[index == c]
            own_lengths = None if lengths is None else lengths[index == c]
            model = first if c == 0 else self._new_density()
            try:
                # a Split keeps the declared kind: one class's values may span fewer levels
                model.fit(Split(rows, None, spec, own_lengths))
            except DataError as e:
                raise DataError(
                    f"class {label!r} ({len(rows)} examples) cannot be fitted by "
                    f"{self.density!r}: {e}"
                ) from e
            densities.append(model)
        self.densities_ = densities

    def _fitted_likelihood(self, spec: DataSpec) -> str:
        kinds = [d.likelihood_ for d in self.densities_]
        return max(kinds, key=lambda k: _LIKELIHOOD_RANK.get(k, len(_LIKELIHOOD_RANK)))

    def _fitted_units(self, spec: DataSpec) -> str:
        return self.densities_[0].units_

    # ----------------------------------------------------------------- inference
    def _require_marginalise(self) -> None:
        if not type(self.densities_[0]).can_marginalise:
            raise CapabilityError(
                f"density {self.density!r} cannot marginalise missing (NaN) entries; use a "
                "density that can (e.g. 'independent'), or impute before scoring"
            )

    def _joint_log_likelihood(self, x: Any) -> np.ndarray:
        if np.isnan(x.values if isinstance(x, Sequences) else x).any():
            self._require_marginalise()
        scores = np.stack([d.score_samples(x) for d in self.densities_], axis=1)  # (N, C)
        return self.class_log_prior_ + scores

    def _impute(self, x: np.ndarray, method: str, rng: np.random.Generator) -> np.ndarray:
        self._require_marginalise()
        post = self._posterior(x)  # (N, C)
        index = sample_categorical(post, rng) if method == "sample" else post.argmax(axis=1)
        out = x.copy()
        for c in np.unique(index):
            rows = index == c
            out[rows] = self.densities_[c].impute(x[rows], method=method, random_state=rng)
        return out

    def _sample(self, n: int, y: Any, rng: np.random.Generator) -> np.ndarray:
        index = self._class_index(n, y, rng)
        out = np.empty((n, *self.fitted_spec.event_shape))
        for c in np.unique(index):
            rows = index == c
            out[rows] = self.densities_[c].sample(int(rows.sum()), random_state=rng)
        return out

    def _score_sequences(self, x: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        return logsumexp(self._joint_log_likelihood(Sequences(x, lengths)), axis=1)

    def _sample_sequences(
        self, n: int, y: Any, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        index = self._class_index(n, y, rng)
        drawn: list[np.ndarray] = [np.empty(0)] * n
        for c in np.unique(index):
            rows = np.flatnonzero(index == c)
            seqs = self.densities_[c].sample(len(rows), random_state=rng)
            for row, seq in zip(rows, seqs, strict=True):
                drawn[row] = seq
        out = Sequences.from_list(drawn)
        return out.values, out.lengths

    def _n_parameters(self) -> int:
        n_prior = len(self.classes_) - 1 if self.prior == "empirical" else 0
        return n_prior + sum(d.n_parameters() for d in self.densities_)

    # ----------------------------------------------------------------- state I/O
    def get_state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Own state plus each class density's: arrays under ``class{c}/``, JSON meta under
        ``class_states`` (a list in ``classes_`` order)."""
        arrays, meta = super().get_state()
        meta.pop("densities_")
        states = []
        for c, density in enumerate(self.densities_):
            class_arrays, class_meta = density.get_state()
            arrays.update({f"class{c}/{key}": value for key, value in class_arrays.items()})
            states.append(class_meta)
        meta["class_states"] = states
        return arrays, meta

    def set_state(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> BayesClassifier:
        """Restore the state written by :meth:`get_state`, rebuilding every class density."""
        meta = dict(meta)
        states = meta.pop("class_states", None)
        if not isinstance(states, list):
            raise RunDirError(
                "the saved bayes-classifier has no per-class densities ('class_states'); it "
                "was written by another ptheta version or is corrupted: fit it again"
            )
        densities = []
        for c, class_meta in enumerate(states):
            prefix = f"class{c}/"
            class_arrays = {
                key[len(prefix) :]: value for key, value in arrays.items() if key.startswith(prefix)
            }
            densities.append(self._new_density().set_state(class_arrays, class_meta))
        own = {key: value for key, value in arrays.items() if "/" not in key}
        self.densities_ = densities
        super().set_state(own, meta)
        return self


class _ClassRows(Subset):
    """The examples of one class of a source (those where ``mask``), read in batches of
    the source's size, without labels (a class density models x alone)."""

    def __init__(self, source: Source, mask: np.ndarray) -> None:
        super().__init__(source, np.flatnonzero(mask))
        self.y = None

    def batch_rows(self) -> int:
        return self.source.batch_rows()
