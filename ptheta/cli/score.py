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
    default=None,
    type=click.Choice(["train", "val", "test"]),
    help="Which split to score (default: test). A run fitted on a table given --data "
    "FILE (CSV or Parquet) and no --split scores every row of the file, in file order.",
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

    A run fitted on a table reads tables with its fitted columns (types, levels, bounds):
    an unknown label or a value out of bounds is an error naming its column; missing
    cells are marginalised by the families that can.
    """
    from ptheta.eval.likelihood import describe_kind
    from ptheta.runs.fitting import load_run_data, scores_table
    from ptheta.runs.store import load_run

    if Path(out).suffix.lower() != ".csv":
        raise CliError(f"--out must be a .csv file, got {out!r}")
    model = load_run(run)
    spec = model.fitted_spec
    if spec.kind == "table":
        if "schema" in data_opts:
            raise CliError(
                "a run fitted on a table reads data with its fitted columns; leave --schema out"
            )
        if data is not None and split is None and _is_table_file(data):
            _score_rows(model, Path(data), data_opts, out)
            return
        if not _builtin_data(run, data):  # the user's file: encoded as at fit time
            data_opts = {**data_opts, "schema": spec.columns}
    split = split or "test"
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


def _is_table_file(data: str) -> bool:
    from ptheta.data import BUILTIN
    from ptheta.data.files import TABLE_SUFFIXES

    return data not in BUILTIN and Path(data).suffix.lower() in TABLE_SUFFIXES


def _builtin_data(run: str, data: str | None) -> bool:
    """Whether the data to score are a built-in data set (given, or the run's own)."""
    from ptheta.data import BUILTIN
    from ptheta.runs.store import read_config

    source = data if data is not None else read_config(run).get("data", {}).get("source")
    return source in BUILTIN


def _score_rows(model, path: Path, data_opts: dict, out: str) -> None:
    """Score every row of the table file ``path`` in file order, encoded with the model's
    fitted columns (the label column, if named, left out)."""
    from ptheta.data.files import read_frame
    from ptheta.data.table import LABEL_TYPES, encode
    from ptheta.eval.likelihood import describe_kind

    unused = sorted(set(data_opts) - {"label_column", "kind"})
    if unused or data_opts.get("kind") not in (None, "table"):
        given = ", ".join("--" + k.replace("_", "-") for k in [*unused, "kind"] if k in data_opts)
        raise CliError(f"{given} do not apply to scoring the rows of a table file")
    if not path.exists():
        raise CliError(f"no such file: {path}")
    columns = model.fitted_spec.columns
    frame = read_frame(path, [c.name for c in columns if c.type in LABEL_TYPES])
    label = data_opts.get("label_column")
    if label is not None:
        if label not in frame.columns:
            raise CliError(f"{path} has no label column {label!r}")
        frame = frame.drop(columns=[label])
    x = encode(frame, columns, str(path))
    log_p = model.score_samples(x)
    buf = io.StringIO()
    np.savetxt(buf, np.column_stack([np.arange(len(log_p)), log_p]), delimiter=",",
               header="index,log_prob", comments="", fmt=["%d", "%.10g"])  # fmt: skip
    atomic_write_bytes(out, buf.getvalue().encode())
    print_table(
        f"Scores of the rows of {path.name} under {model.name}",
        ["n", "mean log p", "min log p", "max log p", "likelihood", "written to"],
        [
            [
                len(log_p),
                float(log_p.mean()),
                float(log_p.min()),
                float(log_p.max()),
                describe_kind(model.likelihood_, model.units_),
                out,
            ]
        ],
        caption="log p in nats per row (index: the row's place in the file), with the "
        "fitted columns; a missing cell is marginalised.",
    )
