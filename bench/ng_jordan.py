"""Benchmark: Ng & Jordan's two regimes, and classification with missing entries.

Learning curves of generative classifiers (naive Bayes, a Bayes-rule classifier with one
Chow–Liu tree per class) against scikit-learn's LogisticRegression (fixed C=1.0) on the
built-in digits-binary and digits (17 gray levels) data sets: test error, mean ± standard
error over 10 stratified subsamples per size, and the crossover points (the smallest size
from which logistic regression stays below; "none" if it does not happen in range). Then
accuracy as 0–70 % of the test entries go missing at random: exact marginalisation against
logistic regression on mean-imputed data. Plots and results.json go under --out.

The curves are run once per value of C: 1.0 (ptheta's fixed default) and 1e4 (nearly
unregularised, closer to the logistic regression Ng & Jordan analysed).

    .venv/bin/python bench/ng_jordan.py [--repeats 10] [--C 1,1e4] [--out DIR]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import ptheta
from ptheta.data import Dataset
from ptheta.eval import tasks
from ptheta.io import atomic_write_json
from ptheta.runs.pictures import save_figure

DATASETS = ("digits-binary", "digits")
MODELS = ("naive-bayes", "bayes-classifier:chow-liu")
SIZES = (2, 3, 5, 10, 20, 30, 50, "all")
FRACTIONS = (0.0, 0.1, 0.3, 0.5, 0.7)


def _row(curves: dict, j: int) -> str:
    return "  ".join(f"{c['mean'][j]:.3f}±{c['stderr'][j]:.3f}" for c in curves.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--C", default="1,1e4", help="comma-separated values of C")
    parser.add_argument("--out", default="/tmp/ptheta-bench-ng-jordan")
    args = parser.parse_args()
    out = Path(args.out)
    for name in DATASETS:
        data = ptheta.datasets.load(name)
        for C in map(float, args.C.split(",")):
            _curves(name, data, C, args.repeats, out)
        _missing(name, data, out)
    print(f"\nwritten to {out}/")


def _curves(name: str, data: Dataset, C: float, repeats: int, out: Path) -> None:
    start = time.perf_counter()
    curves = tasks.learning_curves(data, MODELS, SIZES, repeats, 0, C=C, progress=True)
    took = time.perf_counter() - start
    print(f"\n== {name}: test error, logistic C={C:g} ({repeats} repeats, {took:.0f} s)")
    print("size/class  n train  " + "  ".join(curves["curves"]))
    for j, (size, n) in enumerate(zip(curves["sizes"], curves["n_train"], strict=True)):
        print(f"{size!s:>10}  {n:>7}  {_row(curves['curves'], j)}")
    for model in MODELS:
        size = curves["crossover"][model]
        print(f"crossover {model}: {size or 'none'} — {tasks.describe_crossover(curves, model)}")
    atomic_write_json(out / name / f"ng_jordan_C{C:g}.json", curves)
    save_figure(tasks.learning_curves_figure(curves), out / name / f"ng_jordan_C{C:g}.png")


def _missing(name: str, data: Dataset, out: Path) -> None:
    missing = tasks.missing_data_experiment(data, MODELS, FRACTIONS, 5, 0, progress=True)
    print(f"\n== {name}: test accuracy with entries missing at random (5 masks)")
    print("missing  " + "  ".join(missing["curves"]))
    for j, fraction in enumerate(missing["fractions"]):
        print(f"{fraction:>7.1f}  {_row(missing['curves'], j)}")
    atomic_write_json(out / name / "missing_data.json", missing)
    save_figure(tasks.missing_data_figure(missing), out / name / "missing_data.png")


if __name__ == "__main__":
    main()
