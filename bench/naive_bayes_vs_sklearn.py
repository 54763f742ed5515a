"""Benchmark: ptheta's naive-bayes against scikit-learn's BernoulliNB / CategoricalNB / GaussianNB.

The same smoothing on both sides (alpha=1, var_smoothing=1e-9), so the models are equal and
only the time differs. Each case times fit + predict_proba (train, then the test split),
median of 5 repeats; accuracy on the test split; the largest difference of the predicted
probabilities. ptheta is given a Split (the data set's declared kind), as a user of
ptheta.datasets would.

    .venv/bin/python bench/naive_bayes_vs_sklearn.py
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table
from sklearn.naive_bayes import BernoulliNB, CategoricalNB, GaussianNB

import ptheta
from ptheta.data.spec import DataSpec, Split

REPEATS = 5


def _synthetic(kind: str, n: int, d: int, seed: int = 0) -> tuple[Split, Split]:
    """Two-class data of a naive Bayes shape: n training and n // 4 test examples."""
    rng = np.random.default_rng(seed)
    n_all = n + n // 4
    y = rng.integers(0, 2, size=n_all)
    if kind == "binary":
        p = rng.uniform(0.2, 0.8, size=(2, d))[y]
        x, spec = (rng.random((n_all, d)) < p).astype(np.int64), DataSpec("binary", (d,))
    elif kind == "categorical":
        x = np.clip(rng.integers(0, 4, size=(n_all, d)) + y[:, None], 0, 4)
        spec = DataSpec("categorical", (d,), 5)
    else:
        x = rng.normal(size=(n_all, d)) + 0.3 * y[:, None]
        spec = DataSpec("continuous", (d,))
    return Split(x[:n], y[:n], spec), Split(x[n:], y[n:], spec)


def _builtin(name: str, kind: str | None = None) -> tuple[Split, Split]:
    data = ptheta.datasets.load(name, kind=kind)
    return data.train, data.test


CASES: list[tuple[str, Callable[[], tuple[Split, Split]], Callable[[], Any]]] = [
    ("digits-binary", lambda: _builtin("digits-binary"), lambda: BernoulliNB(alpha=1.0)),
    (
        "digits (17 levels)",
        lambda: _builtin("digits"),
        lambda: CategoricalNB(alpha=1.0, min_categories=17),
    ),
    ("digits as continuous", lambda: _builtin("digits", "continuous"), GaussianNB),
    ("binary 200 000 × 100", lambda: _synthetic("binary", 200_000, 100), BernoulliNB),
    (
        "categorical(5) 200 000 × 100",
        lambda: _synthetic("categorical", 200_000, 100),
        lambda: CategoricalNB(alpha=1.0, min_categories=5),
    ),
    ("continuous 200 000 × 100", lambda: _synthetic("continuous", 200_000, 100), GaussianNB),
]


def measure(
    reference: Callable[[], Any], train: Split, test: Split
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Median seconds of fit + predict_proba(test), test accuracy and probabilities, for
    scikit-learn (on the arrays) and ptheta (on the Split); repeats alternate between the
    two, so that load from other processes falls on both alike."""
    runs = {
        "theirs": (reference, train.x),
        "ours": (lambda: ptheta.make("naive-bayes"), train),
    }
    times: dict[str, list[float]] = {key: [] for key in runs}
    out: dict[str, dict[str, Any]] = {}
    for _ in range(REPEATS):
        for key, (make, fit_x) in runs.items():
            model = make()
            start = time.perf_counter()
            model.fit(fit_x, train.y)
            proba = model.predict_proba(test.x)
            times[key].append(time.perf_counter() - start)
            accuracy = float((model.classes_[proba.argmax(axis=1)] == test.y).mean())
            out[key] = {"accuracy": accuracy, "proba": proba}
    for key in runs:
        out[key]["time"] = statistics.median(times[key])
    return out["theirs"], out["ours"]


def main() -> None:
    table = Table(
        title=f"naive-bayes vs scikit-learn — fit + predict_proba, median of {REPEATS}, "
        "alpha=1, var_smoothing=1e-9"
    )
    for col in (
        "data",
        "scikit-learn",
        "sklearn (s)",
        "ptheta (s)",
        "ptheta / sklearn",
        "acc. sklearn",
        "acc. ptheta",
        "max |Δ proba|",
    ):
        table.add_column(col, justify="left" if col in ("data", "scikit-learn") else "right")
    for label, load, reference in CASES:
        train, test = load()
        theirs, ours = measure(reference, train, test)
        table.add_row(
            label,
            type(reference()).__name__,
            f"{theirs['time']:.4f}",
            f"{ours['time']:.4f}",
            f"{ours['time'] / theirs['time']:.2f}×",
            f"{theirs['accuracy']:.4f}",
            f"{ours['accuracy']:.4f}",
            f"{np.abs(ours['proba'] - theirs['proba']).max():.1e}",
        )
    Console(width=160).print(table)


if __name__ == "__main__":
    main()
