"""`ptheta classify`: a generative classifier against logistic regression on one split."""

from __future__ import annotations

import click

from ptheta.cli.common import POSITIVE, data_options, print_table, resolve_params
from ptheta.data import load
from ptheta.eval.tasks import LOGISTIC_C, classify
from ptheta.io import atomic_write_json


@click.command("classify")
@data_options(required=True)
@click.option(
    "--model",
    required=True,
    metavar="NAME",
    help="naive-bayes, bayes-classifier (--set density=NAME), bayes-classifier:NAME, or a "
    "family with a class_conditional option (switched on).",
)
@click.option(
    "--set",
    "sets",
    multiple=True,
    metavar="KEY=VALUE",
    help="A hyper-parameter (repeatable); for bayes-classifier:NAME, one of NAME's.",
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False),
    help="A .toml or .json file of hyper-parameters.",
)
@click.option(
    "--C",
    "C",
    default=LOGISTIC_C,
    show_default=True,
    type=POSITIVE,
    help="Logistic regression's inverse regularisation strength (fixed, not tuned).",
)
@click.option(
    "--out", type=click.Path(dir_okay=False), default=None, help="Also write the rows as JSON."
)
def command(data, data_opts, model, sets, config_file, C, out) -> None:
    """Fit a generative classifier p(y) p(x | y) and compare it with logistic regression.

    Both are fitted on the training split (scikit-learn's LogisticRegression on the same
    examples) and scored on the test split.

    Accuracy is the fraction of test examples classified correctly; log loss is the mean
    -log p(true class | x) in nats (lower is better; it rewards honest probabilities).

    \b
    Example:
      ptheta classify --data digits-binary --model naive-bayes
      ptheta classify --data digits-binary --model bayes-classifier --set density=chow-liu
    """
    name, _, density = model.partition(":")
    params = resolve_params(density or name, config_file, sets)
    dataset = load(
        data,
        **data_opts,
    )
    rows = classify(dataset, model, params, C=C)
    print_table(
        f"Classification on {dataset.name} (test split)",
        ["model", "accuracy", "log loss", "n train", "n test"],
        [[r["model"], r["accuracy"], r["log_loss"], r["n_train"], r["n_test"]] for r in rows],
        caption=f"log loss in nats per test example; logistic regression with fixed C={C:g}.",
    )
    if out:
        atomic_write_json(out, {"data": dataset.name, "C": C, "rows": rows})
