"""The `ptheta` command line: one module per sub-command, each testable without a subprocess.

A command's module is imported only when that command runs, so `ptheta --help` answers at
once (:class:`~ptheta.cli.common.LazyGroup`).
"""

from __future__ import annotations

import click

from ptheta import __version__
from ptheta.cli.common import LazyGroup

# Sub-command -> (module, the one-line help `ptheta --help` shows). A test checks that each
# line is the command's own short help.
COMMANDS: dict[str, tuple[str, str]] = {
    "models": (
        "ptheta.cli.models",
        "List the registered models: name, family, likelihood kind and data kinds.",
    ),
    "datasets": (
        "ptheta.cli.datasets",
        "List the built-in data sets with kind, shape and split sizes.",
    ),
    "fit": (
        "ptheta.cli.fit",
        "Fit MODEL on the training split of --data and write a run directory to --out.",
    ),
    "sample": ("ptheta.cli.sample", "Draw samples from the fitted model in run directory RUN."),
    "score": (
        "ptheta.cli.score",
        "Score every example of a split: log p(x) in nats, one row per example.",
    ),
    "eval": (
        "ptheta.cli.eval",
        "Evaluate the fitted model in RUN: NLL in nats per example and bits per dimension.",
    ),
    "compare": (
        "ptheta.cli.compare",
        "Fit several models on the same split of --data and compare them in one table.",
    ),
    "anomaly": (
        "ptheta.cli.anomaly",
        "Anomaly detection: score normal test data against anomalies and report the ROC AUC.",
    ),
    "classify": (
        "ptheta.cli.classify",
        "Fit a generative classifier p(y) p(x | y) and compare it with logistic regression.",
    ),
    "experiment": (
        "ptheta.cli.experiment",
        "Built-in experiments on labelled data: each writes results.json, a table and a plot.",
    ),
    "impute": (
        "ptheta.cli.impute",
        "Fill the missing entries of a file with a fitted model; observed entries are kept.",
    ),
    "synth": (
        "ptheta.cli.synth",
        "Fit a model on the table DATA, write synthetic rows to --out and report their quality.",
    ),
    "explore": (
        "ptheta.cli.explore",
        "Serve the explorer (a local web page backed by real fitted models) until Ctrl+C.",
    ),
    "demo": (
        "ptheta.cli.demo",
        "Compare the families on the 8×8 digits, and against a known tree's true entropy.",
    ),
}


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ptheta")
def cli() -> None:
    """ptheta: fit, sample, score and compare generative models on your own data.

    Every likelihood is reported in nats per example and in bits per dimension, with its
    kind: exact, a bound, an estimate, or none.

    \b
    Typical session:
      ptheta models                       # what can be fitted
      ptheta datasets                     # built-in data
      ptheta fit gmm --data toy2d-8gaussians --set n_components=8 --out runs/g8
      ptheta sample runs/g8 -n 500 --out samples.png
      ptheta score runs/g8 --split test --out scores.csv
      ptheta eval runs/g8
    """


cli.lazy_commands = COMMANDS


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="ptheta")
