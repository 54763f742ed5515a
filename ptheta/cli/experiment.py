"""`ptheta experiment`: generative vs discriminative learning curves, and missing data."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from ptheta.cli.common import POSITIVE, SEED, console, data_options, fmt, print_table
from ptheta.data import load
from ptheta.errors import ParameterError, RunDirError
from ptheta.eval import tasks
from ptheta.io import atomic_write_json, atomic_write_text
from ptheta.runs.pictures import save_figure

RESULTS = "results.json"


@click.group("experiment")
def command() -> None:
    """Built-in experiments on labelled data: each writes results.json, a table and a plot.

    \b
      ng-jordan     learning curves: generative classifiers vs logistic regression
      missing-data  accuracy as test entries go missing: marginalising vs mean imputation
    """


def _split_list(text: str, what: str) -> list[str]:
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise ParameterError(f"--{what} needs a comma-separated list, got {text!r}")
    return items


def _floats(text: str, what: str) -> list[float]:
    try:
        return [float(t) for t in _split_list(text, what)]
    except ValueError:
        raise ParameterError(f"--{what} takes numbers separated by commas, got {text!r}") from None


def _out_dir(out: str, force: bool) -> Path:
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise RunDirError(f"--out {out!r} is a file; give a directory path")
    if (path / RESULTS).exists() and not force:
        raise RunDirError(f"{out!r} already holds results; pass --force to overwrite them")
    path.mkdir(parents=True, exist_ok=True)
    return path


def _cells(result: dict[str, Any], j: int) -> list[str]:
    """Mean ± standard error of every curve at point ``j`` (the error is NaN for one repeat)."""
    out = []
    for curve in result["curves"].values():
        mean, se = curve["mean"][j], curve["stderr"][j]
        out.append(fmt(mean, 3) if math.isnan(se) else f"{mean:.3f} ± {se:.3f}")
    return out


def _write(
    folder: Path,
    stem: str,
    result: dict[str, Any],
    columns: list[str],
    rows: list[list[Any]],
    figure: Callable[[dict[str, Any]], Any],
) -> None:
    """An experiment's files: results.json, the table as <stem>.csv and <stem>.png."""
    atomic_write_json(folder / RESULTS, result)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(rows)
    atomic_write_text(folder / f"{stem}.csv", buf.getvalue())
    save_figure(figure(result), folder / f"{stem}.png")
    console.print(f"written to {folder}/ ({RESULTS}, {stem}.csv, {stem}.png)", markup=False)


def _common(repeats: int):
    """The options every experiment takes; ``repeats`` is the default of --repeats."""
    return lambda f: _add_common(f, repeats)


def _add_common(f, repeats: int):
    for option in reversed(
        [
            click.option(
                "--repeats",
                default=repeats,
                show_default=True,
                type=click.IntRange(min=1),
                help="Random repetitions (subsamples or masks) per point of the curves.",
            ),
            click.option("--seed", default=0, show_default=True, type=SEED, help="Random seed."),
            click.option(
                "--C",
                "C",
                default=tasks.LOGISTIC_C,
                show_default=True,
                type=POSITIVE,
                help="Logistic regression's inverse regularisation strength (fixed).",
            ),
            click.option(
                "--out",
                required=True,
                type=click.Path(file_okay=False),
                help="Folder for results.json, the table (CSV) and the plot (PNG).",
            ),
            click.option("--force", is_flag=True, help="Overwrite earlier results in --out."),
            click.option("--quiet", is_flag=True, help="No progress bar."),
        ]
    ):
        f = option(f)
    return f


@command.command("ng-jordan")
@data_options(required=True)
@click.option(
    "--models",
    default="naive-bayes,bayes-classifier:chow-liu",
    show_default=True,
    help="Generative classifiers, comma-separated (bayes-classifier:NAME for one NAME "
    "density per class).",
)
@click.option(
    "--sizes",
    default="2,5,10,20,50,all",
    show_default=True,
    help="Training examples per class, comma-separated; 'all' is the whole training split.",
)
@_common(repeats=10)
def ng_jordan(
    data,
    data_opts,
    models,
    sizes,
    repeats,
    seed,
    C,
    out,
    force,
    quiet,
) -> None:
    """Learning curves of generative classifiers against logistic regression (Ng & Jordan).

    For each size, stratified subsamples of the training split (one per repeat) train every
    classifier; the test error on the whole test split is averaged over the repeats (± its
    standard error). Logistic regression uses a fixed C (default 1.0), never tuned. The
    crossover is the smallest size from which logistic regression's mean error stays below
    the generative classifier's; it is measured, and may not exist in range.
    """
    dataset = load(data, **data_opts)
    folder = _out_dir(out, force)
    result = tasks.learning_curves(
        dataset,
        _split_list(models, "models"),
        _split_list(sizes, "sizes"),
        repeats,
        seed,
        C=C,
        progress=not quiet,
    )
    names = list(result["curves"])
    columns = ["size/class", "n train", *[f"{n} error" for n in names]]
    rows = [
        [size, n, *_cells(result, j)]
        for j, (size, n) in enumerate(zip(result["sizes"], result["n_train"], strict=True))
    ]
    print_table(
        f"Test error on {dataset.name}: generative vs logistic regression",
        columns,
        rows,
        caption=f"mean ± standard error over {result['repeats']} repeats; logistic "
        f"regression with fixed C={C:g}.",
    )
    for name in names[:-1]:
        console.print(tasks.describe_crossover(result, name), highlight=False, markup=False)
    _write(folder, "learning_curves", result, columns, rows, tasks.learning_curves_figure)


@command.command("missing-data")
@data_options(required=True)
@click.option(
    "--models",
    default="naive-bayes,bayes-classifier:chow-liu",
    show_default=True,
    help="Generative classifiers that marginalise exactly, comma-separated.",
)
@click.option(
    "--fractions",
    default="0,0.1,0.3,0.5,0.7",
    show_default=True,
    help="Fractions of test entries removed at random, each in [0, 1).",
)
@_common(repeats=3)
def missing_data(
    data,
    data_opts,
    models,
    fractions,
    repeats,
    seed,
    C,
    out,
    force,
    quiet,
) -> None:
    """Accuracy as entries of the test data go missing completely at random.

    Every classifier is fitted on the complete training split. Generative classifiers
    classify by the exact marginal p(y | observed entries); logistic regression sees the
    missing entries replaced by their training means. Mean ± standard error over the
    repeats (one random mask each).
    """
    dataset = load(data, **data_opts)
    folder = _out_dir(out, force)
    result = tasks.missing_data_experiment(
        dataset,
        _split_list(models, "models"),
        _floats(fractions, "fractions"),
        repeats,
        seed,
        C=C,
        progress=not quiet,
    )
    names = list(result["curves"])
    columns = ["missing", *[f"{n} accuracy" for n in names]]
    rows = [[fraction, *_cells(result, j)] for j, fraction in enumerate(result["fractions"])]
    print_table(
        f"Test accuracy on {dataset.name} with entries missing at random",
        columns,
        rows,
        caption=f"mean ± standard error over {result['repeats']} random masks of the test "
        "split; models fitted on complete training data.",
    )
    _write(folder, "missing_data", result, columns, rows, tasks.missing_data_figure)
