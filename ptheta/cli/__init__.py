"""The `ptheta` command line: one module per sub-command, each testable without a subprocess."""

from __future__ import annotations

import click

from ptheta import __version__
from ptheta.cli.common import PthetaGroup


@click.group(cls=PthetaGroup, context_settings={"help_option_names": ["-h", "--help"]})
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


def _register() -> None:
    from ptheta.cli import (
        anomaly,
        classify,
        compare,
        datasets,
        demo,
        eval,
        experiment,
        explore,
        fit,
        impute,
        models,
        sample,
        score,
    )

    for module in (models, datasets, fit, sample, score, eval, compare, anomaly, classify,
                   experiment, impute, explore, demo):  # fmt: skip
        cli.add_command(module.command)


_register()


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="ptheta")
