"""Benchmark: ptheta's naive-bayes against scikit-learn's BernoulliNB / CategoricalNB / GaussianNB.

The same smoothing on both sides (alpha=1, var_smoothing=1e-9, the empirical prior), so the
models are equal and only the time differs. The workload of each side is fit on the
training split + predict_proba on the test split (n // 4 examples); ptheta is given a Split
(the data's declared kind), as a user of ptheta.datasets would, scikit-learn the arrays.
The objective printed next to the times is the mean log-probability of the true test label
(minus the test log-loss, nats), computed outside the timer from each side's predicted
probabilities: equal models give equal numbers. Synthetic two-class data of N × 50
(N = 10k and 100k; 1M with --full) and the built-in digits.

    .venv-bench/bin/python bench/naive_bayes_vs_sklearn.py [--full] [--threads 1 2]
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from harness import Side, compare, parser, print_comparison, script_name
from sklearn.naive_bayes import BernoulliNB, CategoricalNB, GaussianNB

import ptheta
from ptheta.data.spec import DataSpec, Split

D = 50


def synthetic(kind: str, n: int, d: int = D, seed: int = 0) -> tuple[Split, Split]:
    """Two-class data of a naive Bayes shape: n training and n // 4 test examples."""
    rng = np.random.default_rng(seed)
    n_all = n + n // 4
    y = rng.integers(0, 2, size=n_all)
    if kind == "binary":
        p = rng.uniform(0.2, 0.8, size=(2, d))[y]
        x, spec = (rng.random((n_all, d)) < p).astype(np.int64), DataSpec("binary", (d,))
    elif kind == "categorical":
        probs = rng.dirichlet(np.full(5, 5.0), size=(2, d))[y]  # (n_all, d, 5)
        x = (rng.random((n_all, d, 1)) > np.cumsum(probs, axis=-1)).sum(axis=-1)
        x = np.minimum(x, 4)  # the cumulative sum's last entry may round below 1
        spec = DataSpec("categorical", (d,), 5)
    else:
        x = rng.normal(size=(n_all, d)) + 0.3 * y[:, None]
        spec = DataSpec("continuous", (d,))
    return Split(x[:n], y[:n], spec), Split(x[n:], y[n:], spec)


def builtin(name: str, kind: str | None = None) -> tuple[Split, Split]:
    data = ptheta.datasets.load(name, kind=kind)
    return data.train, data.test


def true_label_log_prob(classes: np.ndarray, proba: np.ndarray, y: np.ndarray) -> float:
    """Mean log p(y_true | x) over the test split (nats)."""
    column = np.searchsorted(classes, y)
    return float(np.log(np.maximum(proba[np.arange(len(y)), column], 1e-300)).mean())


def sides(train: Split, test: Split, reference: Callable[[], Any]) -> list[Side]:
    def run(model, fit_x):
        model.fit(fit_x, train.y)
        return model.classes_, model.predict_proba(test.x)

    def objective(out) -> float:
        return true_label_log_prob(*out, test.y)

    name = type(reference()).__name__
    return [
        Side("ptheta naive-bayes", lambda: run(ptheta.make("naive-bayes"), train), objective),
        Side(f"scikit-learn {name}", lambda: run(reference(), train.x), objective),
    ]


def cases(full: bool) -> list[tuple[str, Callable[[], tuple[Split, Split]], Callable[[], Any]]]:
    out: list[tuple[str, Callable[[], tuple[Split, Split]], Callable[[], Any]]] = [
        ("digits-binary", lambda: builtin("digits-binary"), lambda: BernoulliNB(alpha=1.0)),
        (
            "digits (17 levels)",
            lambda: builtin("digits"),
            lambda: CategoricalNB(alpha=1.0, min_categories=17),
        ),
        ("digits as continuous", lambda: builtin("digits", "continuous"), GaussianNB),
    ]
    for n in [10_000, 100_000, 1_000_000] if full else [10_000, 100_000]:
        out += [
            (f"binary {n:,} × {D}", lambda n=n: synthetic("binary", n), BernoulliNB),
            (
                f"categorical(5) {n:,} × {D}",
                lambda n=n: synthetic("categorical", n),
                lambda: CategoricalNB(alpha=1.0, min_categories=5),
            ),
            (f"continuous {n:,} × {D}", lambda n=n: synthetic("continuous", n), GaussianNB),
        ]
    return out


def main() -> None:
    args = parser(__doc__.splitlines()[0]).parse_args()
    for label, load, reference in cases(args.full):
        train, test = load()
        for threads in args.threads:
            result = compare(
                f"naive-bayes fit + predict_proba, {label}",
                sides(train, test, reference),
                threads=threads,
                script=script_name(__file__),
                rounds=args.rounds,
                warmup=args.warmup,
                objective="mean log p(y|x) test",
                rtol=1e-9,
                params={"train": list(train.x.shape), "test": list(test.x.shape)},
                record=args.record,
            )
            print_comparison(result)


if __name__ == "__main__":
    main()
