"""Generative classifiers as tasks: vs logistic regression, learning curves, missing data."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.base import clone
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler
from threadpoolctl import threadpool_limits

from ptheta.data.spec import Dataset, DataSpec, Split
from ptheta.errors import CapabilityError, DataError, ParameterError
from ptheta.models import GenerativeModel, get_model_class, make
from ptheta.progress import progress_bar

# Logistic regression's inverse regularisation strength: fixed (scikit-learn's default), not
# tuned, so that at small sizes it gets no held-out data the generative classifier lacks.
LOGISTIC_C = 1.0
# The name a learning curve of logistic regression goes by in results.
LOGISTIC = "logistic-regression"


# --------------------------------------------------------------------------- classifiers
def _one_thread() -> threadpool_limits:
    """BLAS/OpenMP limited to one thread: these fits are many small dense problems, where
    threads only add synchronisation (and collapse to 100x slower on shared, busy cores)."""
    return threadpool_limits(limits=1)


def make_classifier(model: str, params: dict[str, Any] | None = None) -> GenerativeModel:
    """An unfitted generative classifier p(y) p(x | y) from a registry name.

    ``model`` is a classifier (``naive-bayes``, ``bayes-classifier``), ``bayes-classifier:D``
    (one density ``D`` per class, e.g. ``bayes-classifier:chow-liu``), or any family with a
    ``class_conditional`` option (``chow-liu``, ``made``, ...), which is switched on.

    Arguments:
        model: the name, as above.
        params: hyper-parameters of the model (for ``bayes-classifier:D``: of the density D).

    Returns:
        the unfitted estimator; it has ``predict_proba`` once fitted with labels.

    Example:
        >>> make_classifier("bayes-classifier:chow-liu").density
        'chow-liu'
    """
    params = dict(params or {})
    name, _, density = model.partition(":")
    cls = get_model_class(name.strip())  # UnknownNameError with suggestions
    caps = cls().capabilities()
    if density:
        if "density" not in cls._get_param_names():
            raise ParameterError(
                f"{model!r}: only a classifier with a density parameter takes a density "
                "after ':' (e.g. bayes-classifier:chow-liu)"
            )
        get_model_class(density.strip())
        return make(cls.name, density=density.strip(), density_params=params or None)
    if caps.classifies and caps.needs_labels:
        return make(cls.name, **params)
    if caps.can_condition:
        return make(cls.name, **{"class_conditional": True, **params})
    raise CapabilityError(
        f"{cls.name!r} cannot classify (it models x alone); use naive-bayes, "
        f"bayes-classifier:{cls.name} (one {cls.name} density per class), or a family with a "
        "class_conditional option"
    )


def can_marginalise(model: GenerativeModel) -> bool:
    """Whether ``model`` classifies examples with missing (NaN) entries exactly."""
    return model.capabilities().marginalises


def logistic_regression(spec: DataSpec, C: float = LOGISTIC_C) -> Pipeline:
    """scikit-learn's LogisticRegression (multinomial, L2, fixed ``C``) on flat features.

    Discrete values are divided by K - 1 (binary data stays 0/1), continuous ones
    standardised; either way the fit is the same model, this only helps the solver.
    """
    if spec.is_discrete:
        factor = 1.0 / max(spec.n_categories - 1, 1)
        scale = FunctionTransformer(_scale, kw_args={"factor": factor})
    else:
        scale = StandardScaler()
    return make_pipeline(scale, LogisticRegression(C=C, max_iter=2000))


def _scale(x: np.ndarray, factor: float) -> np.ndarray:
    return x * factor


def _flat(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, dtype=np.float64).reshape(len(x), -1)  # (N, D)


def _labels(data: Dataset) -> tuple[np.ndarray, np.ndarray]:
    if data.train.y is None or data.test.y is None:
        raise DataError(
            f"data set {data.name!r} has no labels; classification needs labelled data (a "
            "built-in set such as digits-binary, or a CSV file with --label-column)"
        )
    return np.asarray(data.train.y), np.asarray(data.test.y)


def _seeded(model: Any, seed: int) -> Any:
    """A fresh clone; an estimator with a random_state left at None gets ``seed`` instead
    (ptheta's own models and scikit-learn's alike, so no capability is asked here)."""
    model = clone(model)
    params = model.get_params()
    if "random_state" in params and params["random_state"] is None:
        model.set_params(random_state=seed)
    return model


def _metrics(proba: np.ndarray, classes: np.ndarray, y: np.ndarray) -> dict[str, float]:
    pred = classes[proba.argmax(axis=1)]
    return {
        "accuracy": float(np.mean(pred == y)),
        "log_loss": float(log_loss(y, np.clip(proba, 1e-15, 1.0), labels=classes)),
    }


def classify(
    data: Dataset, model: str, params: dict[str, Any] | None = None, *, C: float = LOGISTIC_C
) -> list[dict[str, Any]]:
    """Fit ``model`` and logistic regression on the training split; score both on the test split.

    Arguments:
        data: a labelled data set.
        model: a classifier name for :func:`make_classifier`.
        params: its hyper-parameters.
        C: logistic regression's inverse regularisation strength.

    Returns:
        two rows (dicts): ``model``, ``accuracy``, ``log_loss`` (mean nats per test example),
        ``n_train``, ``n_test`` — the generative classifier first.

    Example:
        >>> import ptheta
        >>> rows = classify(ptheta.datasets.load("digits-binary"), "naive-bayes")
        >>> [r["model"] for r in rows]
        ['naive-bayes', 'logistic-regression']
    """
    y_train, y_test = _labels(data)
    gen = make_classifier(model, params)
    with _one_thread():
        gen.fit(data.train)
        disc = logistic_regression(data.spec, C).fit(_flat(data.train.x), y_train)
    common = {"n_train": len(y_train), "n_test": len(y_test)}
    return [
        {
            "model": model,
            **_metrics(gen.predict_proba(data.test.x), gen.classes_, y_test),
            **common,
        },
        {
            "model": LOGISTIC,
            **_metrics(disc.predict_proba(_flat(data.test.x)), disc.classes_, y_test),
            **common,
        },
    ]


# --------------------------------------------------------------------------- learning curves
def stratified_subsample(y: np.ndarray, n_per_class: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of ``n_per_class`` examples of every class, drawn without replacement, sorted.

    Raises a DataError when a class has fewer examples than asked.
    """
    classes, counts = np.unique(y, return_counts=True)
    if n_per_class > counts.min():
        raise DataError(
            f"{n_per_class} examples per class were asked for, but class "
            f"{classes[counts.argmin()]!r} has only {counts.min()} training examples; "
            f"use sizes up to {counts.min()} (or 'all')"
        )
    picks = [rng.choice(np.flatnonzero(y == c), n_per_class, replace=False) for c in classes]
    return np.sort(np.concatenate(picks))


def parse_sizes(sizes: Sequence[int | str], y_train: np.ndarray) -> list[int | str]:
    """Check training sizes (examples per class, or ``"all"``) against the training labels."""
    out: list[int | str] = []
    smallest = int(np.unique(y_train, return_counts=True)[1].min())
    for size in sizes:
        if isinstance(size, str) and size.strip().lower() == "all":
            out.append("all")
            continue
        if isinstance(size, str) and size.strip().isdigit():
            size = int(size)
        if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
            raise ParameterError(
                f"sizes are examples per class (whole numbers >= 1) or 'all', got {size!r}"
            )
        if size > smallest:
            raise DataError(
                f"size {size} per class is larger than the smallest class of the training "
                f"data ({smallest} examples); use sizes up to {smallest}, or 'all'"
            )
        out.append(int(size))
    if not out:
        raise ParameterError("give at least one training size")
    if len(set(out)) != len(out):
        raise ParameterError(f"training sizes repeat: {out}")
    return sorted(out, key=lambda s: math.inf if s == "all" else s)


def _check_repeats(repeats: Any) -> int:
    if isinstance(repeats, bool) or not isinstance(repeats, (int, np.integer)) or repeats < 1:
        raise ParameterError(f"repeats must be a whole number >= 1, got {repeats!r}")
    return int(repeats)


def _summary(errors: np.ndarray) -> tuple[list[float], list[float]]:
    """Mean and standard error over the repeats (axis 0); the error is NaN for one repeat."""
    mean = errors.mean(axis=0)
    n = errors.shape[0]
    se = errors.std(axis=0, ddof=1) / math.sqrt(n) if n > 1 else np.full_like(mean, np.nan)
    return mean.tolist(), se.tolist()


def learning_curves(
    data: Dataset,
    models: Sequence[str],
    sizes: Sequence[int | str],
    repeats: int = 10,
    random_state: int = 0,
    *,
    C: float = LOGISTIC_C,
    progress: bool = False,
) -> dict[str, Any]:
    """Test error of generative classifiers and logistic regression vs training-set size.

    For every size (examples per class, or ``"all"`` for the whole training split) and
    repeat r, one stratified subsample of the training split is drawn with the seed
    (random_state, r, size index); every classifier is fitted on that same subsample and its
    error measured on the whole test split. Logistic regression uses a fixed ``C``.

    Arguments:
        data: a labelled data set (train and test splits).
        models: classifier names for :func:`make_classifier` (defaults of each).
        sizes: examples per class, or ``"all"``.
        repeats: subsamples per size (the full set gives the same subsample each time).
        random_state: the seed of the subsamples (and of models left without one).
        C: logistic regression's inverse regularisation strength.
        progress: show a progress bar.

    Returns:
        a dict: ``sizes`` (as given, sorted), ``n_train`` (total training examples per size),
        ``repeats``, ``C``, ``curves``: {name: {"errors": (repeats, sizes) list,
        "mean": [...], "stderr": [...]}} for every model and ``"logistic-regression"``, and
        ``crossover``: {model: size or None} (see :func:`crossover`).

    Example:
        >>> import ptheta
        >>> data = ptheta.datasets.load("digits-binary")
        >>> r = learning_curves(data, ["naive-bayes"], [2, 5], repeats=2)
        >>> len(r["curves"]["naive-bayes"]["mean"])
        2

    References:
        A. Y. Ng and M. I. Jordan, "On discriminative vs. generative classifiers: a
        comparison of logistic regression and naive Bayes", NeurIPS 2001.
    """
    y_train, y_test = _labels(data)
    sizes = parse_sizes(sizes, y_train)
    repeats = _check_repeats(repeats)
    if not models:
        raise ParameterError("give at least one generative classifier (e.g. naive-bayes)")
    prototypes = {name: make_classifier(name) for name in models}
    prototypes[LOGISTIC] = logistic_regression(data.spec, C)
    x_train, x_test = data.train.x, data.test.x
    errors = {name: np.zeros((repeats, len(sizes))) for name in prototypes}
    bar = progress_bar(repeats * len(sizes), "learning curves", enabled=progress)
    with bar as advance, _one_thread():
        for r in range(repeats):
            for j, size in enumerate(sizes):
                rng = np.random.default_rng([random_state, r, j])
                rows = (
                    np.arange(len(y_train))
                    if size == "all"
                    else stratified_subsample(y_train, size, rng)
                )
                seed = int(rng.integers(2**31))
                for name, proto in prototypes.items():
                    model = _seeded(proto, seed)
                    if name == LOGISTIC:
                        pred = model.fit(_flat(x_train[rows]), y_train[rows]).predict(_flat(x_test))
                    else:  # a Split keeps the declared kind: a subsample may miss levels
                        train = Split(x_train[rows], y_train[rows], data.spec)
                        pred = model.fit(train).predict(x_test)
                    errors[name][r, j] = np.mean(pred != y_test)
                advance(size=size)
    curves = {}
    for name, err in errors.items():
        mean, se = _summary(err)
        curves[name] = {"errors": err.tolist(), "mean": mean, "stderr": se}
    n_classes = len(np.unique(y_train))
    return {
        "data": data.name,
        "sizes": sizes,
        "n_train": [len(y_train) if s == "all" else s * n_classes for s in sizes],
        "repeats": repeats,
        "random_state": random_state,
        "C": C,
        "curves": curves,
        "crossover": {
            name: crossover(sizes, curves[name]["mean"], curves[LOGISTIC]["mean"])
            for name in models
        },
    }


def crossover(
    sizes: Sequence[Any], gen_err: Sequence[float], disc_err: Sequence[float]
) -> Any | None:
    """Where logistic regression overtakes a generative classifier, or None.

    The smallest size from which the discriminative mean error is strictly below the
    generative one at that size and at every larger size, provided the generative classifier
    is at least as good somewhere before it (otherwise the curves do not cross in range:
    None). Equal errors ("touching") are not below.

    Arguments:
        sizes: the training sizes, increasing.
        gen_err: the generative classifier's mean error at each size.
        disc_err: logistic regression's mean error at each size.

    Returns:
        the element of ``sizes`` where the crossing happens, or None.

    Example:
        >>> crossover([2, 5, 10], [0.3, 0.2, 0.15], [0.4, 0.18, 0.1])
        5
    """
    gen, disc = np.asarray(gen_err, dtype=float), np.asarray(disc_err, dtype=float)
    if not len(sizes) == len(gen) == len(disc):
        raise DataError(
            f"sizes, gen_err and disc_err differ in length: {len(sizes)}, {len(gen)}, {len(disc)}"
        )
    below = disc < gen  # (S,)
    start = len(below)
    while start > 0 and below[start - 1]:
        start -= 1
    if start == len(below) or start == 0:  # never below at the end, or below everywhere
        return None
    return sizes[start]


def describe_crossover(result: dict[str, Any], model: str) -> str:
    """A sentence saying where logistic regression overtakes ``model`` in ``result``."""
    size = result["crossover"][model]
    if size is not None:
        return f"logistic regression overtakes {model} from {size} examples per class on"
    gen, disc = result["curves"][model]["mean"], result["curves"][LOGISTIC]["mean"]
    if all(d < g for d, g in zip(disc, gen, strict=True)):
        return f"no crossing in range: logistic regression beats {model} at every size"
    # otherwise crossover() found logistic regression not below at the largest size
    return f"no crossing in range: {model} is as good or better at the largest size"


# --------------------------------------------------------------------------- missing data
def remove_at_random(x: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """A float copy of ``x`` with each entry independently set to NaN with probability
    ``fraction`` (missing completely at random)."""
    out = np.asarray(x, dtype=np.float64).copy()
    out[rng.random(out.shape) < fraction] = np.nan
    return out


def _check_fractions(fractions: Sequence[float]) -> list[float]:
    out = []
    for f in fractions:
        if isinstance(f, bool) or not isinstance(f, (int, float, np.number)) or not 0 <= f < 1:
            raise ParameterError(
                f"fractions of missing entries must lie in [0, 1) (1 would leave nothing "
                f"observed), got {f!r}"
            )
        out.append(float(f))
    if not out:
        raise ParameterError("give at least one fraction of missing entries (e.g. 0,0.3)")
    return sorted(set(out))


def missing_data_experiment(
    data: Dataset,
    models: Sequence[str],
    fractions: Sequence[float],
    repeats: int = 3,
    random_state: int = 0,
    *,
    C: float = LOGISTIC_C,
    progress: bool = False,
) -> dict[str, Any]:
    """Test accuracy when a fraction of the test entries is missing completely at random.

    Every classifier is fitted once on the complete training split (test-time missingness).
    Then for each fraction and repeat r, entries of the test split are removed at random with
    the seed (random_state, r, fraction index), and (a) every generative classifier predicts
    by Bayes' rule on the exact marginal p(y | x_observed) (NaN entries summed out), while
    (b) logistic regression predicts from the test data with each missing entry replaced by
    its training-set mean (scikit-learn's SimpleImputer).

    Arguments:
        data: a labelled data set.
        models: classifiers for :func:`make_classifier` that can marginalise exactly.
        fractions: fractions of entries removed, each in [0, 1).
        repeats: random masks per fraction.
        random_state: seed of the masks (and of models left without one).
        C: logistic regression's inverse regularisation strength.
        progress: show a progress bar.

    Returns:
        a dict: ``fractions``, ``repeats``, ``curves``: {name: {"accuracy": (repeats,
        fractions) list, "mean": [...], "stderr": [...]}}, the logistic regression as
        ``"logistic-regression (mean-imputed)"``.

    Example:
        >>> import ptheta
        >>> data = ptheta.datasets.load("digits-binary")
        >>> r = missing_data_experiment(data, ["naive-bayes"], [0, 0.5])
        >>> r["curves"]["naive-bayes"]["mean"][0] > r["curves"]["naive-bayes"]["mean"][1]
        True
    """
    y_train, y_test = _labels(data)
    fractions = _check_fractions(fractions)
    repeats = _check_repeats(repeats)
    if not models:
        raise ParameterError("give at least one generative classifier (e.g. naive-bayes)")
    fitted: dict[str, Any] = {}
    for name in models:
        fitted[name] = _seeded(make_classifier(name), random_state)
        if not can_marginalise(fitted[name]):
            raise CapabilityError(
                f"{name!r} cannot marginalise missing entries exactly; use naive-bayes, "
                "chow-liu, or bayes-classifier with a density that can (independent, "
                "chow-liu, a mixture)"
            )
    imputed = f"{LOGISTIC} (mean-imputed)"
    # the imputer learns training means; the training data are complete, so it is identity there
    fitted[imputed] = Pipeline(
        [("impute", SimpleImputer(strategy="mean")), ("lr", logistic_regression(data.spec, C))]
    )
    with _one_thread():
        for name, model in fitted.items():
            if name == imputed:
                model.fit(_flat(data.train.x), y_train)
            else:
                model.fit(data.train)
    acc = {name: np.zeros((repeats, len(fractions))) for name in fitted}
    bar = progress_bar(repeats * len(fractions), "missing data", enabled=progress)
    with bar as advance, _one_thread():
        for r in range(repeats):
            for j, fraction in enumerate(fractions):
                x = remove_at_random(
                    data.test.x, fraction, np.random.default_rng([random_state, r, j])
                )
                for name, model in fitted.items():
                    pred = model.predict(_flat(x) if name == imputed else x)
                    acc[name][r, j] = np.mean(pred == y_test)
                advance(fraction=fraction)
    curves = {}
    for name, a in acc.items():
        mean, se = _summary(a)
        curves[name] = {"accuracy": a.tolist(), "mean": mean, "stderr": se}
    return {
        "data": data.name,
        "fractions": fractions,
        "repeats": repeats,
        "random_state": random_state,
        "missing_in": "test",
        "C": C,
        "curves": curves,
    }


# --------------------------------------------------------------------------- pictures
def learning_curves_figure(result: dict[str, Any]) -> Any:
    """Test error (mean ± standard error) against training-set size, log x axis."""
    import matplotlib.pyplot as plt

    from ptheta.eval import plots  # noqa: F401  (selects the file-only backend)

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, curve in result["curves"].items():
        se = np.nan_to_num(np.asarray(curve["stderr"], dtype=float))
        style = "--" if name == LOGISTIC else "-"
        ax.errorbar(
            result["n_train"], curve["mean"], yerr=se, fmt=style + "o", ms=3, capsize=3, label=name
        )
    ax.set_xscale("log")
    ax.set_xlabel("training examples (log scale)")
    ax.set_ylabel("test error")
    repeats, C = result["repeats"], result["C"]
    ax.set_title(
        f"{result['data']}: generative vs logistic regression (C={C:g}, {repeats} repeats)"
    )
    ax.grid(alpha=0.3)
    ax.legend()
    return fig


def missing_data_figure(result: dict[str, Any]) -> Any:
    """Test accuracy (mean ± standard error) against the fraction of missing test entries."""
    import matplotlib.pyplot as plt

    from ptheta.eval import plots  # noqa: F401  (selects the file-only backend)

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, curve in result["curves"].items():
        se = np.nan_to_num(np.asarray(curve["stderr"], dtype=float))
        style = "--" if name.startswith(LOGISTIC) else "-"
        ax.errorbar(
            result["fractions"],
            curve["mean"],
            yerr=se,
            fmt=style + "o",
            ms=3,
            capsize=3,
            label=name,
        )
    ax.set_xlabel("fraction of test entries missing (MCAR)")
    ax.set_ylabel("test accuracy")
    ax.set_title(f"{result['data']}: marginalising vs mean imputation")
    ax.grid(alpha=0.3)
    ax.legend()
    return fig
