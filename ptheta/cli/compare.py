"""`ptheta compare`: fit several models on one split and print and write one comparison."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ptheta.cli.common import (
    console,
    data_options,
    escape,
    none_or_name,
    parse_sets,
    print_table,
    read_config_file,
)
from ptheta.errors import ParameterError, PthetaError
from ptheta.models import get_model_class


def model_overrides(config_file: str | None, sets: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """Per-model hyper-parameters: ``--config`` sections, then ``--set model.key=value``."""
    overrides: dict[str, dict[str, Any]] = {}
    if config_file:
        for name, section in read_config_file(config_file).items():
            if not isinstance(section, dict):
                raise ParameterError(
                    f"config file {config_file!r} for compare needs one table per model, e.g. "
                    f"[gmm] n_components = 10; {name!r} is not a table"
                )
            overrides[name] = dict(section)
    for key, value in parse_sets(sets).items():
        model, dot, param = key.partition(".")
        if not dot or not model or not param:
            raise ParameterError(
                f"--set for compare takes model.key=value, got {key!r} "
                "(e.g. --set gmm.n_components=10)"
            )
        overrides.setdefault(model, {})[param] = value
    for model, params in overrides.items():
        try:
            cls = get_model_class(model)
        except PthetaError:
            continue  # an unknown family: refused with its message where the line-up is read
        overrides[model] = none_or_name(cls, params)
    return overrides


def print_report(report: dict[str, Any], title: str, out: str | Path | None = None) -> None:
    """The compare table, its legend and notes, and where the report went."""
    from ptheta.eval.compare import LEGEND, table_columns, table_notes, table_rows

    columns = table_columns(report["feature_space"], report.get("per_step_unit"))
    print_table(title, columns, table_rows(report), caption=LEGEND)
    for note in table_notes(report):
        console.print(f"  {note}", highlight=False, soft_wrap=True, markup=False)
    if out is not None:
        report = escape(str(Path(out) / "report.md"))
        console.print(f"report: [bold]{report}[/] (and report.json, nll.png, "
                      "samples/, runs/)\n", highlight=False)  # fmt: skip


@click.command("compare")
@data_options(required=True)
@click.option(
    "--models",
    default="demo",
    show_default=True,
    metavar="NAMES|demo|all",
    help="Comma-separated model names; 'demo' (the families with a demo preset, one per "
    "structural assumption, each starting from that preset, as in `ptheta demo`); or 'all' "
    "(every registered family, at their defaults). "
    "'demo' and 'all' take the families that accept the data; classifiers are skipped "
    "(compare scores p(x): `ptheta classify` compares them), and on images of shape "
    "(C, H, W) the families that model sequences.",
)
@click.option(
    "--budget",
    default="5m",
    show_default=True,
    metavar="TIME",
    help="Training time per neural model, e.g. 90s, 5m, 1h (classical models, EM "
    "mixtures included, fit to convergence with no time limit).",
)
@click.option(
    "--out", required=True, type=click.Path(file_okay=False), help="Folder for the report."
)
@click.option(
    "--set",
    "sets",
    multiple=True,
    metavar="MODEL.KEY=VALUE",
    help="A hyper-parameter of one model (repeatable), e.g. --set gmm.n_components=10.",
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False),
    help="A .toml or .json file with one table of hyper-parameters per model ([gmm] ...).",
)
@click.option("--quick", is_flag=True, help="Start from each model's small, fast settings.")
@click.option("--force", is_flag=True, help="Refit every model, even when its run is current.")
@click.option(
    "--n-samples",
    default=500,
    show_default=True,
    type=click.IntRange(min=2),
    help="Samples per model for sample time, pictures and sample metrics.",
)
@click.option("--quiet", is_flag=True, help="No progress bars.")
def command(
    data, data_opts, models, budget, out, sets,
    config_file, quick, force, n_samples, quiet,
) -> None:  # fmt: skip
    """Fit several models on the same split of --data and compare them in one table.

    Each model trains on the training split (neural ones stop early on the validation
    split or at --budget) and is scored on the test split: NLL in nats and bits/dim with
    its kind (exact, ≤ bound, ≈ estimate, — none), parameters, fit and sample time,
    sample metrics in the feature space of a classifier trained on the data (FD-<data>,
    precision, recall) and the memorisation ratio. The report goes to --out: report.json,
    report.md, nll.png, samples/, curves/ and one run directory per model in runs/.
    Re-running refits only the models whose settings, data or budget changed.

    \b
    Examples:
      ptheta compare --data digits --budget 5m --out reports/digits
      ptheta compare --data digits-binary --models all --quick --out reports/bin
      ptheta compare --data digits --models gmm,made --set gmm.n_components=20 --out r
    """
    from ptheta.data import load
    from ptheta.eval.compare import compare, parse_budget

    budget_seconds = parse_budget(budget)
    kwargs = data_opts
    dataset = load(data, **kwargs)
    source = {"source": str(Path(data).resolve()) if Path(data).exists() else data, **kwargs}
    report = compare(
        dataset, models, out, budget_seconds=budget_seconds, quick=quick,
        overrides=model_overrides(config_file, sets), force=force, n_samples=n_samples,
        data_source=source, verbose=not quiet,
        log=lambda line: console.print(line, highlight=False, soft_wrap=True, markup=False),
    )  # fmt: skip
    print_report(report, f"ptheta compare: {dataset.name}", out)
