"""`ptheta demo`: a quick `ptheta compare` on built-in data, printing its tables."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ptheta.cli.common import console, escape
from ptheta.cli.compare import print_report

DEMO_DATA = "digits"
# Data from a known tree: the true entropy is the floor of any model's expected NLL.
TRUTH_DATA = "groundtruth-tree"


def demo_models() -> dict[str, dict[str, Any]]:
    """The digits comparison: every family with a ``demo`` preset, with its preset
    (small enough that each neural model converges usefully within the budget on two CPU
    cores)."""
    from ptheta.models import REGISTRY, with_preset

    return {name: REGISTRY[name].preset("demo") or {} for name in with_preset("demo")}


def truth_models() -> list[str]:
    """The models held against the known tree's true entropy: the demo's families that fit
    binary data exactly in closed form or by EM (no time budget, no dequantisation)."""
    from ptheta.models import REGISTRY, with_preset

    out = []
    for name in with_preset("demo"):
        caps = REGISTRY[name]().capabilities()
        exact = caps.likelihood == "exact" and not caps.dequantises_discrete
        if exact and caps.fits("binary") and not caps.trains_in_steps and not caps.needs_labels:
            out.append(name)
    return out


@click.command("demo")
@click.option(
    "--out",
    default="runs/demo",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Folder for the demo's reports (one sub-folder per data set).",
)
@click.option(
    "--budget",
    default="10s",
    show_default=True,
    metavar="TIME",
    help="Training time per neural model (e.g. 10s, 1m).",
)
@click.option("--force", is_flag=True, help="Refit every model (otherwise runs are cached).")
def command(out: str, budget: str, force: bool) -> None:
    """Compare the families on the 8×8 digits, and against a known tree's true entropy.

    The digits comparison is a quick `ptheta compare` of every family with a demo preset;
    the second table holds the exact classical ones against the true entropy of data drawn
    from a known tree (the floor of any expected NLL). Both tables are printed and written.
    """
    from ptheta.data import load
    from ptheta.eval.compare import compare, parse_budget

    seconds = parse_budget(budget)
    root = Path(out)
    params = demo_models()
    for data_name, models, kwargs in (
        (DEMO_DATA, list(params), {"overrides": params}),
        (TRUTH_DATA, truth_models(), {}),
    ):
        data = load(data_name)
        console.print(f"[bold]{escape(data.name)}[/]: {', '.join(models)}", highlight=False)
        report = compare(
            data, models, root / data.name, budget_seconds=seconds, force=force, n_samples=300,
            log=lambda line: console.print(f"  {line}", highlight=False, markup=False), **kwargs,
        )  # fmt: skip
        print_report(report, f"ptheta demo: test NLL on {data.name}", root / data.name)
