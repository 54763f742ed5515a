"""Anomaly detection with any fitted model: scores, ROC AUC, built-in scenarios, histograms."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt
import numpy as np
from scipy.stats import rankdata
from sklearn.metrics import roc_auc_score

from ptheta.data.spec import Data, Dataset, Split
from ptheta.errors import CapabilityError, DataError, ParameterError, unknown_name
from ptheta.models.base import GenerativeModel
from ptheta.runs.fitting import fit_kwargs

# likelihood_ of a fitted model → what −score_samples is
SCORE_KINDS = {
    "exact": "-log p (exact)",
    "bound": "-log p bound",
    "estimate": "-log p estimate",
}
SCENARIOS: dict[str, str] = {
    "held-out-classes": "fit on some classes (digits 0-4 by default); the test images of the "
    "other classes are the anomalies",
    "noise": "uniform noise of the data's kind (each entry a uniform level, or uniform "
    "between the training range of each variable)",
    "flipped": "test images turned upside down and mirrored (flipped up-down and left-right)",
    "shuffled": "test examples with their entries (pixels) randomly permuted, each its own way",
}
DEFAULT_NORMAL = (0, 1, 2, 3, 4)


def anomaly_scores(model: GenerativeModel, X: Data) -> tuple[np.ndarray, str]:
    """Anomaly score of each example: higher means more anomalous.

    The score is the best the model has, in this order: ``−log p`` when it has a
    likelihood (labelled ``"-log p (exact)"``, ``"-log p bound"`` — an upper bound on
    −log p, since ``score_samples`` is then a lower bound on log p — or
    ``"-log p estimate"``, from the fitted model's ``likelihood_``); else the model's
    ``energy(X)`` (``"energy"``, low energy = typical); else ``−discriminator_score(X)``
    (``"discriminator"``: a GAN discriminator's "realness" is high for data-like inputs,
    so its negative is the anomaly score); else ``score_norm(X)`` (``"score norm"``: the
    size of a learned score field ‖∇ₓ log p(x)‖, large far from the data).

    Arguments:
        model: a fitted model.
        X: examples (N, *event_shape) of the fitted kind.

    Returns:
        (scores (N,) float64, label of the score kind).

    Raises:
        CapabilityError: the model has no likelihood, energy or discriminator.

    Example:
        >>> import ptheta
        >>> data = ptheta.datasets.load("digits-binary")
        >>> model = ptheta.make("independent").fit(data.train)
        >>> scores, kind = anomaly_scores(model, data.test.x)
        >>> scores.shape, kind
        ((447,), '-log p (exact)')
    """
    caps = model.capabilities()
    if caps.fitted_likelihood is None:
        model._check_fitted()  # the NotFittedError with its usual message
    source = caps.anomaly_score
    if source == "log_prob" and caps.fitted_likelihood in SCORE_KINDS:
        return -model.score_samples(X), SCORE_KINDS[caps.fitted_likelihood]
    if source == "energy":
        return np.asarray(model.energy(X), dtype=np.float64), "energy"
    if source == "discriminator":
        return -np.asarray(model.discriminator_score(X), dtype=np.float64), "discriminator"
    if source == "score_norm":
        return np.asarray(model.score_norm(X), dtype=np.float64), "score norm"
    raise CapabilityError(
        f"{model.name!r} has no likelihood, energy, discriminator or score field to score "
        "anomalies with; "
        "use a model with a likelihood (see `ptheta models`)"
    )


def _scores(x: Any, what: str) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 1 or arr.size == 0:
        raise DataError(f"{what} must be a non-empty 1-D array of scores, got shape {arr.shape}")
    if np.isnan(arr).any():
        raise DataError(f"{what} contains NaN scores; the model failed on some examples")
    return arr


def roc_auc(in_scores: np.ndarray, out_scores: np.ndarray) -> float:
    """Area under the ROC curve for telling anomalies (``out``) from normal data (``in``).

    The probability that a random anomaly scores higher than a random normal example
    (ties count one half): 1 is perfect, 0.5 chance. Infinite scores (an example the
    model deems impossible has −log p = inf) are allowed: only their order matters.

    Arguments:
        in_scores: (N,) scores of in-distribution examples.
        out_scores: (M,) scores of anomalies.

    Returns:
        the AUROC, in [0, 1].

    Example:
        >>> roc_auc(np.array([0.0, 1.0]), np.array([2.0, 3.0]))
        1.0
    """
    a, b = _scores(in_scores, "in_scores"), _scores(out_scores, "out_scores")
    ranks = rankdata(np.concatenate([a, b]))  # ranks are finite where inf scores are not
    labels = np.concatenate([np.zeros(len(a)), np.ones(len(b))])
    return float(roc_auc_score(labels, ranks))


# --------------------------------------------------------------------------- scenarios
@dataclass
class Scenario:
    """An anomaly-detection task: fit on ``data``, score ``inliers`` against ``outliers``.

    ``data`` is the data set to fit on (the normal classes only for held-out-classes),
    ``inliers`` its test examples and ``outliers`` the anomalies, both (N, *event_shape).
    """

    name: str
    description: str
    data: Dataset
    inliers: np.ndarray
    outliers: np.ndarray


def _image_view(data: Dataset) -> tuple[int, ...]:
    spec = data.spec
    if spec.image_shape is not None:
        return spec.image_shape
    if len(spec.event_shape) == 3:
        return spec.event_shape
    raise DataError(
        f"the 'flipped' scenario needs images, but {data.name!r} has examples of shape "
        f"{spec.event_shape} and no image shape; use --scenario noise or shuffled"
    )


def _restrict(data: Dataset, normal: Sequence[Any]) -> Dataset:
    if data.train.y is None or data.test.y is None:
        raise DataError(
            f"the 'held-out-classes' scenario needs labels, but {data.name!r} has none; use "
            "--scenario noise, flipped or shuffled"
        )
    normal = list(normal)
    known = set(np.unique(np.concatenate([data.train.y, data.test.y])).tolist())
    unknown = [c for c in normal if c not in known]
    if unknown or not normal:
        raise ParameterError(
            f"normal classes {normal} must be a non-empty subset of {sorted(known)} "
            f"({unknown} not found)"
        )
    if set(normal) >= known:
        raise ParameterError("the normal classes cover every class: leave some out as anomalies")

    def keep(s: Split, inside: bool) -> Split:
        mask = np.isin(s.y, normal) == inside
        return Split(s.x[mask], s.y[mask], s.spec)

    return dataclasses.replace(
        data,
        name=f"{data.name}[{','.join(map(str, normal))}]",
        train=keep(data.train, True),
        val=keep(data.val, True),
        test=keep(data.test, True),
        extra={**data.extra, "normal_classes": normal, "anomalies": keep(data.test, False)},
    )


def anomaly_scenario(
    name: str,
    data: Dataset,
    *,
    normal: Sequence[Any] = DEFAULT_NORMAL,
    random_state: int = 0,
) -> Scenario:
    """A built-in anomaly scenario on ``data`` (see :data:`SCENARIOS`).

    Arguments:
        name: ``"held-out-classes"``, ``"noise"``, ``"flipped"`` or ``"shuffled"``.
        data: the in-distribution data set.
        normal: the classes that are normal (held-out-classes only).
        random_state: seed of the noise and the permutations.

    Returns:
        a :class:`Scenario`: fit on ``scenario.data``, score ``inliers`` (its test split)
        against ``outliers`` (as many as the inliers, except for held-out-classes).

    Example:
        >>> import ptheta
        >>> sc = anomaly_scenario("shuffled", ptheta.datasets.load("digits-binary"))
        >>> sc.inliers.shape == sc.outliers.shape == (447, 64)
        True
    """
    if name not in SCENARIOS:
        raise unknown_name("anomaly scenario", name, SCENARIOS)
    rng = np.random.default_rng(random_state)
    spec, test = data.spec, data.test.x
    if name == "held-out-classes":
        data = _restrict(data, normal)
        outliers = data.extra["anomalies"].x
    elif name == "noise":
        shape = (len(test), *spec.event_shape)
        if spec.is_discrete:
            outliers = rng.integers(0, spec.n_categories, size=shape)
        else:
            lo, hi = data.train.x.min(0), data.train.x.max(0)  # (*event_shape)
            outliers = lo + (hi - lo) * rng.random(shape)
    elif name == "flipped":
        c, h, w = _image_view(data)
        images = test.reshape(len(test), c, h, w)
        outliers = images[:, :, ::-1, ::-1].reshape(test.shape).copy()
    else:  # shuffled: one permutation per example
        flat = test.reshape(len(test), -1)
        order = np.argsort(rng.random(flat.shape), axis=1)  # (N, D) random permutations
        outliers = np.take_along_axis(flat, order, axis=1).reshape(test.shape)
    return Scenario(name, SCENARIOS[name], data, data.test.x, outliers)


# --------------------------------------------------------------------------- experiments
@dataclass
class AnomalyResult:
    """Scores of normal (``in_scores``) and anomalous (``out_scores``) examples."""

    auroc: float
    score_kind: str
    in_scores: np.ndarray
    out_scores: np.ndarray

    @property
    def n_in(self) -> int:
        return len(self.in_scores)

    @property
    def n_out(self) -> int:
        return len(self.out_scores)

    def summary(self) -> dict[str, Any]:
        return {
            "auroc": self.auroc,
            "score_kind": self.score_kind,
            "n_in": self.n_in,
            "n_out": self.n_out,
        }


def detect(model: GenerativeModel, inliers: Data, outliers: Data) -> AnomalyResult:
    """Score ``inliers`` and ``outliers`` with :func:`anomaly_scores` and compute the AUROC."""
    a, kind = anomaly_scores(model, inliers)
    b, _ = anomaly_scores(model, outliers)
    return AnomalyResult(roc_auc(a, b), kind, a, b)


def fit_for(model: GenerativeModel, data: Dataset) -> GenerativeModel:
    """Fit ``model`` on ``data.train`` (labels where it needs them, validation data for
    early stopping where its loss measures fit)."""
    y = data.train.y if model.capabilities().needs_labels else None
    return model.fit(data.train, y, **fit_kwargs(model, data))


def held_out_class_experiment(
    model_name: str,
    data: str | Dataset = "digits",
    normal: Sequence[Any] = DEFAULT_NORMAL,
    params: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Fit ``model_name`` on the ``normal`` classes of ``data``; anomalies = the other classes.

    Arguments:
        model_name: a registered model (``ptheta models``).
        data: a data set with labels, or its name.
        normal: the classes the model sees in training.
        params: the model's hyper-parameters (``random_state`` among them for a seeded fit).

    Returns:
        a dict: ``auroc``, ``score_kind``, ``n_in``, ``n_out``, ``normal``, ``model`` (the
        fitted estimator) and ``result`` (the :class:`AnomalyResult` with every score).

    Example:
        >>> row = held_out_class_experiment("bernoulli-mixture", "digits-binary",
        ...                                 params={"n_components": 10, "random_state": 0})
        >>> 0.5 < row["auroc"] <= 1
        True
    """
    from ptheta.data import load
    from ptheta.models import make

    dataset = load(data) if isinstance(data, str) else data
    scenario = anomaly_scenario("held-out-classes", dataset, normal=normal)
    model = fit_for(make(model_name, **(params or {})), scenario.data)
    result = detect(model, scenario.inliers, scenario.outliers)
    return {**result.summary(), "normal": list(normal), "model": model, "result": result}


def score_histogram(result: AnomalyResult, title: str = "") -> plt.Figure:
    """Both score distributions over shared bins, normal in blue, anomalies in red."""
    a, b = result.in_scores, result.out_scores
    both = np.concatenate([a, b])
    finite = both[np.isfinite(both)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    bins = np.linspace(lo, hi if hi > lo else lo + 1.0, 41)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for scores, label, colour in ((a, "in-distribution", "tab:blue"), (b, "anomalies", "tab:red")):
        ax.hist(
            np.clip(scores, bins[0], bins[-1]),  # ±inf (impossible under the model) at the ends
            bins=bins,
            alpha=0.55,
            density=True,
            color=colour,
            label=f"{label} (n={len(scores)})",
        )
    ax.set_xlabel(f"anomaly score: {result.score_kind}")
    ax.set_ylabel("density")
    ax.set_title(title or f"AUROC {result.auroc:.3f}")
    ax.legend()
    return fig
