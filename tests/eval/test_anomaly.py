"""Anomaly detection: score kinds, AUROC against pair counting, scenarios, a real detection."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pytest

import ptheta
from ptheta.errors import CapabilityError, DataError, ParameterError, UnknownNameError
from ptheta.eval.anomaly import (
    SCENARIOS,
    AnomalyResult,
    anomaly_scenario,
    anomaly_scores,
    detect,
    held_out_class_experiment,
    roc_auc,
    score_histogram,
)
from ptheta.models.base import GenerativeModel
from ptheta.runs.pictures import save_figure


@pytest.fixture(scope="module")
def binary():
    return ptheta.datasets.load("digits-binary")


class _Stub(GenerativeModel):
    """A model whose every score is the sum of its input: only the capabilities differ."""

    name: ClassVar[str] = "stub"
    data_kinds: ClassVar[tuple[str, ...]] = ("binary", "categorical", "continuous")

    def _fit(self, x, y, spec):
        pass

    def _score_samples(self, x):
        return -x.reshape(len(x), -1).sum(1)


class _Bound(_Stub):
    likelihood: ClassVar[str] = "bound"


class _Estimate(_Stub):
    likelihood: ClassVar[str] = "estimate"


class _Energy(_Stub):
    abilities: ClassVar[dict] = {"anomaly_score": "energy"}  # declared, not probed

    def energy(self, X):
        return np.asarray(X, dtype=float).sum(1) * 2


class _Discriminator(_Stub):
    abilities: ClassVar[dict] = {"anomaly_score": "discriminator"}

    def discriminator_score(self, X):
        return np.asarray(X, dtype=float).sum(1) * 3


@pytest.mark.parametrize(
    ("cls", "kind", "factor"),
    [
        (_Bound, "-log p bound", 1),
        (_Estimate, "-log p estimate", 1),
        (_Energy, "energy", 2),
        (_Discriminator, "discriminator", -3),  # high realness = less anomalous
    ],
)
def test_score_kinds_are_labelled_and_signed(cls, kind, factor):
    x = np.arange(12.0).reshape(6, 2)
    scores, label = anomaly_scores(cls().fit(x), x)
    assert label == kind
    np.testing.assert_allclose(scores, factor * x.sum(1))


def test_exact_family_scores_minus_log_p(binary):
    model = ptheta.make("chow-liu").fit(binary.train)
    scores, label = anomaly_scores(model, binary.test.x)
    assert label == "-log p (exact)"
    np.testing.assert_allclose(scores, -model.score_samples(binary.test.x))


def test_nothing_to_score_is_a_capability_error():
    x = np.zeros((4, 2))
    with pytest.raises(CapabilityError, match="no likelihood, energy, discriminator or score"):
        anomaly_scores(_Stub().fit(x), x)
    with pytest.raises(ptheta.errors.NotFittedError):
        anomaly_scores(_Energy(), x)


def test_roc_auc_counts_ordered_pairs():
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 5, size=30).astype(float), rng.integers(2, 7, size=20).astype(float)
    pairs = [(y > x) + 0.5 * (y == x) for x in a for y in b]
    assert roc_auc(a, b) == pytest.approx(np.mean(pairs))
    assert roc_auc(np.array([0.0, 1.0]), np.array([np.inf, 5.0])) == 1.0
    assert roc_auc(np.array([2.0, 3.0]), np.array([0.0, 1.0])) == 0.0


@pytest.mark.parametrize(
    ("a", "b", "match"),
    [(np.array([]), np.ones(3), "non-empty"), (np.ones(3), np.array([np.nan]), "NaN")],
)
def test_roc_auc_bad_input(a, b, match):
    with pytest.raises(DataError, match=match):
        roc_auc(a, b)


def test_exact_family_detects_shuffled_pixels(binary):
    model = ptheta.make("chow-liu").fit(binary.train)
    sc = anomaly_scenario("shuffled", binary)
    result = detect(model, sc.inliers, sc.outliers)
    assert result.auroc > 0.9 and result.score_kind == "-log p (exact)"
    assert (result.n_in, result.n_out) == (447, 447)


def test_scenarios_build_what_they_say(binary):
    x = binary.test.x
    shuffled = anomaly_scenario("shuffled", binary, random_state=1).outliers
    np.testing.assert_array_equal(np.sort(shuffled, 1), np.sort(x, 1))  # same pixels per image
    assert (shuffled != x).any(1).mean() > 0.9
    flipped = anomaly_scenario("flipped", binary).outliers.reshape(-1, 8, 8)
    np.testing.assert_array_equal(flipped[:, ::-1, ::-1], x.reshape(-1, 8, 8))
    noise = anomaly_scenario("noise", ptheta.datasets.load("digits"), random_state=0).outliers
    assert noise.shape == (447, 64) and noise.min() == 0 and noise.max() == 16
    moons = ptheta.datasets.load("toy2d-moons")
    cont = anomaly_scenario("noise", moons).outliers
    lo, hi = moons.train.x.min(0), moons.train.x.max(0)
    assert ((cont >= lo) & (cont <= hi)).all()
    held = anomaly_scenario("held-out-classes", binary, normal=(0, 1))
    assert set(held.data.train.y) == {0, 1} and set(held.data.test.y) == {0, 1}
    assert len(held.inliers) + len(held.outliers) == 447
    assert set(SCENARIOS) == {"held-out-classes", "noise", "flipped", "shuffled"}


def test_scenarios_refuse_what_they_cannot_build(binary):
    moons = ptheta.datasets.load("toy2d-moons")
    with pytest.raises(DataError, match="needs images"):
        anomaly_scenario("flipped", moons)
    with pytest.raises(DataError, match="needs labels"):
        anomaly_scenario("held-out-classes", moons)
    with pytest.raises(ParameterError, match="every class"):
        anomaly_scenario("held-out-classes", binary, normal=range(10))
    with pytest.raises(ParameterError, match="not found"):
        anomaly_scenario("held-out-classes", binary, normal=(0, 42))
    with pytest.raises(UnknownNameError, match="did you mean 'noise'"):
        anomaly_scenario("nois", binary)


def test_held_out_class_experiment(binary, tmp_path):
    row = held_out_class_experiment(
        "bernoulli-mixture", binary, normal=(0, 1), params={"n_components": 4, "random_state": 0}
    )
    assert row["score_kind"] == "-log p (exact)" and row["normal"] == [0, 1]
    assert row["auroc"] > 0.8  # 0s and 1s are easy to tell from the rest
    assert row["n_in"] + row["n_out"] == 447
    assert set(np.unique(row["model"].sample(5, random_state=0))) <= {0, 1}
    save_figure(score_histogram(row["result"]), tmp_path / "h.png")
    assert (tmp_path / "h.png").stat().st_size > 1000
    # an example the model deems impossible (−log p = inf) still gets drawn
    infinite = AnomalyResult(1.0, "-log p (exact)", np.array([1.0, 2.0]), np.array([np.inf]))
    save_figure(score_histogram(infinite), tmp_path / "inf.png")
    assert (tmp_path / "inf.png").is_file()
