"""`ptheta score`: per-example log-likelihoods of a split under a fitted run."""

from __future__ import annotations

import io
from pathlib import Path

import click
import numpy as np

from ptheta.cli.common import CliError, data_options, print_table
from ptheta.io import atomic_write_bytes


@click.command("score")
@click.argument("run", type=click.Path())
@data_options(required=False)
@click.option(
    "--split",
    default="test",
    show_default=True,
    type=click.Choice(["train", "val", "test"]),
    help="Which split to score.",
)
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False),
    help="CSV file: one row per example, columns index, log_prob (nats)[, length][, label] "
    "(length: for variable-length sequences, whose log_prob includes their end).",
)
def command(run, data, data_opts, split, out) -> None:
    """Score every example of a split: log p(x) in nats, one row per example.

    Useful for anomaly detection (low log p = unusual). The model's likelihood kind
    (exact, bound, estimate) is printed with the summary.
    """
    from ptheta.eval.likelihood import describe_kind
    from ptheta.runs.fitting import load_run_data, scores_table
    from ptheta.runs.store import load_run

    if Path(out).suffix.lower() != ".csv":
        raise CliError(f"--out must be a .csv file, got {out!r}")
    model = load_run(run)
    dataset = load_run_data(
        run,
        data,
        **data_opts,
    )
    cols = scores_table(model, dataset, split)
    buf = io.StringIO()
    names = list(cols)
    table = np.column_stack([cols[k] for k in names])
    fmt = ["%d" if k in ("index", "length", "label") else "%.10g" for k in names]
    np.savetxt(buf, table, delimiter=",", header=",".join(names), comments="", fmt=fmt)
    atomic_write_bytes(out, buf.getvalue().encode())
    lp = cols["log_prob"]
    print_table(
        f"Scores of {dataset.name} ({split}) under {model.name}",
        ["n", "mean log p", "min log p", "max log p", "likelihood", "written to"],
        [
            [
                len(lp),
                float(lp.mean()),
                float(lp.min()),
                float(lp.max()),
                describe_kind(model.likelihood_, model.units_),
                out,
            ]
        ],
        caption="log p in nats per example."
        if "length" not in cols
        else "log p in nats per sequence: log p(x, length), the sequence's end included.",
    )
