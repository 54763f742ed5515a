"""scikit-learn conformance: its own estimator checks on every family, and what they rely on.

``check_estimator`` runs on every registered family at its quick settings, and on the
class-conditional variant of every family that has one (those are classifiers). The checks
that do not pass are listed in :data:`EXPECTED_FAILURES`, each with its reason; every other
check must pass, and every listed failure must still fail (no stale entry).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest
from sklearn.base import is_classifier
from sklearn.model_selection import KFold, StratifiedKFold, check_cv, cross_val_score
from sklearn.utils.estimator_checks import check_estimator
from test_contract import _data

import ptheta
from ptheta.errors import CapabilityError
from ptheta.models import REGISTRY
from ptheta.runs.store import load_run, save_run

# A case is a family at its quick settings, or "<family>:conditional" with
# class_conditional=True (a classifier where the family has a likelihood).
CASES = [
    *REGISTRY,
    *(f"{n}:conditional" for n in REGISTRY if ptheta.make(n).capabilities().can_condition),
]

NEURAL = [c for c in CASES if ptheta.make(c.partition(":")[0]).capabilities().trains_in_steps]
BINARY_ONLY = (
    "models binary data only: the check fits it on scikit-learn's integer or real-valued data "
    "(levels beyond 0/1, even with the categorical tag), which fit refuses with a DataError"
)
FITS_NAN_DISCRETE = (
    "a discrete family that fits NaN (its allow_nan tag) gets scikit-learn's float64 copy of "
    "the levels, from which this check subtracts a non-integer mean: the values are no longer "
    "levels, so fit refuses them as continuous data with a DataError naming the kind, not "
    "'Negative values in data'"
)
TRAINING_KWARGS = (
    "neural families take the shared training hyper-parameters (neural.TRAINING_PARAMS) "
    "through **training, so they are not in __init__'s signature, which this check reads; "
    "get_params / set_params / clone see them (NeuralModel._get_param_names)"
)
# Checks that fit a binary-only family on scikit-learn's data: they all fail on the data kind
_BINARY_DATA_CHECKS = (
    "check_estimators_overwrite_params",
    "check_dont_overwrite_parameters",
    "check_estimators_fit_returns_self",
    "check_readonly_memmap_input",
    "check_n_features_in_after_fitting",
    "check_estimators_dtypes",
    "check_f_contiguous_array_estimator",
    "check_methods_sample_order_invariance",
    "check_methods_subset_invariance",
    "check_fit2d_1sample",
    "check_fit2d_1feature",
    "check_dict_unchanged",
    "check_fit_idempotent",
    "check_fit_check_is_fitted",
    "check_n_features_in",
    "check_fit2d_predict1d",
)

# check name -> why it fails: one reason for every case where the check fails, or
# {case: reason} for those cases only ("*": every other case).
EXPECTED_FAILURES: dict[str, str | dict[str, str]] = {
    "check_dtype_object": (
        "object arrays are refused on purpose (data/spec.py as_array), even when they hold "
        "numbers: an object column may hide strings or None; the check expects them to be "
        "converted to float"
    ),
    "check_supervised_y_2d": (
        "a label column y (N, 1) is refused on purpose, with a message naming y.ravel() "
        "(tests/audit/test_bad_data.py); scikit-learn's classifiers ravel it with a warning"
    ),
    "check_estimators_pickle": {
        "markov": (
            "markov fits NaN only for discrete data (allow_nan tag from fits_missing); this "
            "check puts NaN into real-valued data, which it refuses with a DataError naming "
            "state-space / hmm (no EM over the least squares)"
        )
    },
    "check_positive_only_tag_during_fit": {
        case: FITS_NAN_DISCRETE
        for case in ("bernoulli-mixture", "categorical-mixture", "chow-liu", "chow-liu:conditional")
    },
    "check_classifiers_train": {
        "ddpm:conditional": (
            "a DDPM classifies by Bayes' rule on a Monte-Carlo estimate of its variational "
            "bound (n_bound_samples draws per class): at quick settings (3 epochs, 4 draws) "
            "that estimate is too noisy for the check's 0.83 accuracy bar (20 epochs pass in "
            "float64 but not always in float32)"
        )
    },
    "check_no_attributes_set_in_init": {case: TRAINING_KWARGS for case in NEURAL},
    "check_do_not_raise_errors_in_init_or_set_params": {
        case: TRAINING_KWARGS
        + "; this check passes 'training' itself as a parameter, refused as an unknown name"
        for case in NEURAL
    },
}
for _check in _BINARY_DATA_CHECKS:
    _entry = EXPECTED_FAILURES.get(_check, {})
    _entry = {"*": _entry} if isinstance(_entry, str) else _entry
    EXPECTED_FAILURES[_check] = {**_entry, "rbm": BINARY_ONLY, "bernoulli-mixture": BINARY_ONLY}
EXPECTED_FAILURES["check_estimators_dtypes"]["ebm"] = (  # type: ignore[index]
    "ebm models continuous data only: the check's integer-typed copies of X are inferred as "
    "categorical data and refused (dequantise first)"
)
EXPECTED_FAILURES["check_estimators_dtypes"]["state-space"] = (  # type: ignore[index]
    "state-space models continuous sequences only: the check's integer-typed copies of X are "
    "inferred as categorical data and refused (a density at integer levels is not a "
    "probability; declare the data continuous)"
)

# Cases on which check_estimator runs no check, by scikit-learn's own rule
NOT_CHECKED = {
    name: (
        "needs image arrays (N, C, H, W), so its two_d_array tag is False, and scikit-learn's "
        "checks, all on 2-D X, do not apply"
    )
    for name in REGISTRY
    if REGISTRY[name].needs_image
} | {
    name: (
        "models tables only, whose typed columns come from a Split or a DataFrame with its "
        "schema, so its two_d_array tag is False and scikit-learn's checks do not apply"
    )
    for name in REGISTRY
    if tuple(REGISTRY[name].data_kinds) == ("table",)
}


def _model(case: str) -> Any:
    name, _, variant = case.partition(":")
    params = dict(REGISTRY[name].quick_params)
    if variant:
        params["class_conditional"] = True
    return ptheta.make(name, **params)


def _expected(check: str, case: str) -> str | None:
    reason = EXPECTED_FAILURES.get(check)
    return reason.get(case, reason.get("*")) if isinstance(reason, dict) else reason


def _for_every_case(check: str) -> str | None:
    reason = EXPECTED_FAILURES[check]
    return reason.get("*") if isinstance(reason, dict) else reason


@pytest.mark.parametrize("case", CASES)
def test_check_estimator(case):
    name = case.partition(":")[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = check_estimator(_model(case), on_fail=None, on_skip=None)
    if name in NOT_CHECKED:
        assert [r["check_name"] for r in results] == ["check_estimator_cloneable"]
        return
    failed = {r["check_name"]: r["exception"] for r in results if r["status"] == "failed"}
    unexpected = {
        check: f"{type(e).__name__}: {e}"
        for check, e in failed.items()
        if _expected(check, case) is None
    }
    assert not unexpected, unexpected
    ran = {r["check_name"] for r in results if r["status"] != "skipped"}
    stale = [
        check
        for check, reason in EXPECTED_FAILURES.items()
        if isinstance(reason, dict) and case in reason and check not in failed and check in ran
    ]
    assert not stale, f"listed as failing on {case} but passed: {stale}"


def test_every_listed_failure_still_fails_somewhere():
    # the per-case entries are checked above; a reason for every case must fail on one at least
    everywhere = [c for c in EXPECTED_FAILURES if _for_every_case(c) is not None]
    failing: set[str] = set()
    for case in ("independent", "gmm", "naive-bayes"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            results = check_estimator(_model(case), on_fail=None, on_skip=None)
        failing |= {r["check_name"] for r in results if r["status"] == "failed"}
    assert set(everywhere) <= failing, set(everywhere) - failing
    assert all(len(_for_every_case(c) or "") > 40 for c in everywhere), "each reason says why"


# --------------------------------------------------------------------------- classifiers
@pytest.mark.parametrize(
    ("name", "params", "classifier"),
    [
        ("naive-bayes", {}, True),
        ("bayes-classifier", {}, True),
        ("made", {"class_conditional": True}, True),
        ("chow-liu", {"class_conditional": True}, True),
        ("made", {}, False),
        ("chow-liu", {}, False),
        ("gmm", {}, False),
        ("gan", {"class_conditional": True}, False),  # no likelihood, so no Bayes' rule
    ],
)
def test_a_model_is_a_classifier_exactly_where_it_classifies(name, params, classifier):
    model = ptheta.make(name, **params)
    assert is_classifier(model) is classifier is model.capabilities().classifies
    assert hasattr(model, "predict_proba") is (classifier or name == "gmm")
    tags = model.__sklearn_tags__()
    assert tags.estimator_type == ("classifier" if classifier else "density_estimator")
    assert tags.target_tags.required is (classifier or model.capabilities().needs_labels)


def test_cross_validation_of_a_classifier_uses_stratified_folds_and_accuracy():
    x, y, _ = _data("binary")
    model = ptheta.make("naive-bayes")
    assert isinstance(check_cv(5, y, classifier=is_classifier(model)), StratifiedKFold)
    scores = cross_val_score(model, x, y, cv=5)
    expected = []
    for train, test in StratifiedKFold(5).split(x, y):
        fitted = ptheta.make("naive-bayes").fit(x[train], y[train])
        expected.append(np.mean(fitted.predict(x[test]) == y[test]))
    np.testing.assert_allclose(scores, expected)
    assert np.all((scores >= 0) & (scores <= 1))


def test_cross_validation_of_a_density_uses_plain_folds_and_log_likelihood():
    x, y, _ = _data("continuous")
    model = ptheta.make("gmm", n_components=2, random_state=0)
    assert isinstance(check_cv(5, y, classifier=is_classifier(model)), KFold)
    scores = cross_val_score(model, x, cv=5)
    expected = [
        ptheta.make("gmm", n_components=2, random_state=0).fit(x[tr]).score_samples(x[te]).mean()
        for tr, te in KFold(5).split(x)
    ]
    np.testing.assert_allclose(scores, expected)


@pytest.mark.parametrize(
    ("name", "params"), [("naive-bayes", {}), ("chow-liu", {"class_conditional": True})]
)
def test_score_with_labels_is_accuracy_for_a_classifier(name, params):
    x, y, _ = _data("binary")
    model = ptheta.make(name, **params).fit(x, y)
    assert model.score(x, y) == np.mean(model.predict(x) == y)
    assert model.score(x) == pytest.approx(model.score_samples(x).mean())  # no y: density


def test_score_of_a_density_ignores_labels():
    x, y, _ = _data("binary")
    model = ptheta.make("independent").fit(x)
    assert model.score(x, y) == model.score(x) == pytest.approx(model.score_samples(x).mean())


# --------------------------------------------------------------------------- absent methods
def test_methods_a_model_cannot_honour_are_absent_and_say_why_when_reached():
    x, y, _ = _data("binary")
    made = ptheta.make("made", **REGISTRY["made"].quick_params)
    assert not hasattr(made, "predict_proba") and not hasattr(made, "predict")
    made.fit(x)
    assert not hasattr(made, "predict_proba")
    with pytest.raises(CapabilityError, match="class_conditional=True"):
        made.predict_proba(x)
    conditional = ptheta.make("made", **REGISTRY["made"].quick_params, class_conditional=True)
    assert hasattr(conditional, "predict_proba") and hasattr(conditional, "predict")
    assert conditional.fit(x, y).predict_proba(x).shape == (len(x), 2)
    for name in ("gan", "ebm"):  # no likelihood: no score_samples, score or predict_proba
        model = ptheta.make(name)
        for method in ("score_samples", "score", "predict_proba", "predict"):
            assert not hasattr(model, method), (name, method)
        with pytest.raises(CapabilityError, match="likelihood"):
            model.score(x)
    # a mixture's predict_proba is its responsibilities (a clustering API): it stays
    assert hasattr(ptheta.make("gmm"), "predict_proba")


# --------------------------------------------------------------------------- n_features_in_
def test_n_features_in_is_set_by_fit_and_survives_a_run_directory(tmp_path):
    x, y, split = _data("binary", image=True)  # examples (1, 2, 3): six features
    model = ptheta.make("independent")
    assert not hasattr(model, "n_features_in_")
    assert model.fit(split).n_features_in_ == 6
    save_run(model, tmp_path / "run", data={"name": "synthetic"})
    assert load_run(tmp_path / "run").n_features_in_ == 6
    assert ptheta.make("naive-bayes").fit(x.reshape(len(x), -1), y).n_features_in_ == 6
