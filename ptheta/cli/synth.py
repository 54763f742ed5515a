"""`ptheta synth`: fit a model on a table, write synthetic rows and a quality report."""

from __future__ import annotations

import contextlib
import io
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from ptheta.cli.common import (
    SEED,
    CliError,
    console,
    err_console,
    escape,
    print_table,
    resolve_params,
)

OUT_SUFFIXES = (".csv", ".parquet")
REPORT_SUFFIXES = (".md", ".json")
# The synthetic rows are held in memory (8 bytes a cell) before they are written.
MAX_SAMPLE_BYTES = 1 << 30


@click.command("synth")
@click.argument("data", type=click.Path())
@click.option(
    "--model",
    "model_name",
    required=True,
    metavar="NAME",
    help="The model to fit: one that models tables (the 'table' data kind in `ptheta models`).",
)
@click.option(
    "-n",
    "--n-samples",
    default=None,
    type=click.IntRange(min=1),
    help="How many synthetic rows to write. Default: as many as DATA has.",
)
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False),
    help="Where to write the synthetic rows: .csv or .parquet, with DATA's columns and labels.",
)
@click.option(
    "--report",
    "reports",
    multiple=True,
    type=click.Path(dir_okay=False),
    help="Also write the quality report to this .md (Markdown) or .json file (repeatable).",
)
@click.option(
    "--set",
    "sets",
    multiple=True,
    metavar="KEY=VALUE",
    help="A hyper-parameter of the model (repeatable). Overrides --config.",
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False),
    help="A .toml or .json file of hyper-parameters (flat, or under [params]).",
)
@click.option(
    "--schema",
    type=click.Path(dir_okay=False),
    help="A JSON file of column types (binary, categorical, ordinal, count, continuous) "
    "overriding the inferred ones.",
)
@click.option(
    "--seed",
    default=0,
    show_default=True,
    type=SEED,
    help="Seed of the sampling and of the report's subsamples and folds.",
)
@click.option(
    "--data-seed",
    default=0,
    show_default=True,
    type=SEED,
    help="Seed of the 80/10/10 train/val/test split of DATA.",
)
@click.option(
    "--run-dir",
    default=None,
    type=click.Path(file_okay=False),
    help="Keep the fitted model in this run directory (for `ptheta sample`, `eval`, ...). "
    "Default: a temporary one, removed at the end.",
)
@click.option("--force", is_flag=True, help="Overwrite --run-dir if it already holds a run.")
@click.option("--quiet", is_flag=True, help="No progress display.")
def command(
    data, model_name, n_samples, out, reports, sets, config_file, schema, seed,
    data_seed, run_dir, force, quiet,
) -> None:  # fmt: skip
    """Fit a model on the table DATA, write synthetic rows to --out and report their quality.

    DATA is a CSV or Parquet file, read as a table of typed columns (binary, categorical,
    ordinal, count, continuous; missing cells allowed; --schema overrides the inferred
    types) and split 80/10/10 with --data-seed. The model is fitted on the training split;
    -n rows are sampled and written with the same columns and labels. The report compares
    them with the training rows — per-column fidelity (KS or total variation), pairwise
    association (correlation, Cramér's V, correlation ratio), detection AUC of logistic
    regression and gradient boosting (0.5: indistinguishable) — and with the held-out test
    rows: distance to the closest record (are training rows copied?) and the model's
    held-out log-likelihood per row, with its kind.

    \b
    Examples:
      ptheta synth adult.csv --model independent --out synth.csv --report report.md
      ptheta synth data.csv --model independent -n 10000 --schema schema.json \\
        --out synth.parquet --run-dir runs/synth
    """
    out_path = Path(out)
    if out_path.suffix.lower() not in OUT_SUFFIXES:
        raise CliError(f"--out must end in {' or '.join(OUT_SUFFIXES)}, got {out!r}")
    for report in reports:
        if Path(report).suffix.lower() not in REPORT_SUFFIXES:
            raise CliError(f"--report must end in .md or .json, got {report!r}")
    params = resolve_params(model_name, config_file, sets)
    _check_model(model_name, params)
    if run_dir is not None and not force:
        _check_empty(Path(run_dir))

    from ptheta.data import load
    from ptheta.eval.synth import synth_report

    source = {"source": str(Path(data).resolve()), "kind": "table", "seed": data_seed}
    if schema is not None:
        source["schema"] = str(Path(schema).resolve())
    dataset = load(data, kind="table", schema=schema, seed=data_seed)
    columns = dataset.spec.columns
    n_rows = len(dataset.train) + len(dataset.val) + len(dataset.test)
    n = n_rows if n_samples is None else n_samples
    if n * len(columns) * 8 > MAX_SAMPLE_BYTES:
        fits = MAX_SAMPLE_BYTES // (len(columns) * 8)
        raise CliError(
            f"-n {n} rows of {len(columns)} columns would take "
            f"{n * len(columns) * 8 / 2**30:.3g} GiB of memory; use -n {fits} or fewer"
        )
    with _run_directory(run_dir) as folder:
        model, fit_row = _fit(model_name, params, dataset, folder, source, force, quiet)
        with _status(f"sampling {n:,} rows from {model_name} …", quiet):
            start = time.perf_counter()
            try:
                samples = model.sample(n, random_state=seed)
            except NotImplementedError:
                raise CliError(f"{model_name!r} cannot sample; choose another model") from None
            sample_seconds = time.perf_counter() - start
        _write_rows(samples, columns, out_path)
        with _status("computing the quality report …", quiet):
            report = synth_report(
                dataset.train.x, dataset.test.x, samples, columns, model=model, seed=seed
            )
    report = {
        "model": model_name,
        "params": params,
        "data": dataset.name,
        "data_kind": dataset.spec.describe(),
        "seed": seed,
        "data_seed": data_seed,
        "fit_seconds": fit_row["fit_seconds"],
        "sample_seconds": sample_seconds,
        "out": str(out_path),
        **report,
    }
    _print_report(report)
    from ptheta.eval.synth import report_markdown
    from ptheta.io import atomic_write_text, dumps

    for path in reports:
        if Path(path).suffix.lower() == ".md":
            title = f"Synthetic data quality: {model_name} on {dataset.name}"
            atomic_write_text(path, report_markdown(report, title=title))
        else:
            atomic_write_text(path, dumps(report, indent=2) + "\n")
    written = ", ".join([str(out_path), *reports])
    console.print(f"written: [bold]{escape(written)}[/]", highlight=False)
    if run_dir is not None:
        console.print(f"run directory: [bold]{escape(str(run_dir))}[/]", highlight=False)


def _check_model(name: str, params: dict[str, Any]) -> None:
    """Refuse, before any data is read, a model that cannot fit a table or needs labels."""
    from ptheta.models import REGISTRY, make

    caps = make(name, **params).capabilities()
    if caps.fits("table") and not caps.needs_labels:
        return
    able = [
        m
        for m in REGISTRY
        if (c := REGISTRY[m]().capabilities()).fits("table") and not c.needs_labels
    ]
    why = (
        "needs class labels (it is a classifier)"
        if caps.needs_labels
        else f"does not model tables (it fits {', '.join(caps.data_kinds)} data)"
    )
    raise CliError(
        f"{name!r} {why}; `ptheta synth` fits a model of the whole table: use "
        f"{', '.join(able) or 'a model with the table data kind'} (see `ptheta models`)"
    )


def _check_empty(folder: Path) -> None:
    """Refuse a --run-dir that holds anything (a run, other files) without --force."""
    from ptheta.runs.layout import LOCK

    if folder.exists() and not folder.is_dir():
        raise CliError(f"--run-dir {str(folder)!r} is a file; give a directory path")
    if folder.is_dir() and any(p.name != LOCK for p in folder.iterdir()):
        raise CliError(
            f"--run-dir {str(folder)!r} is not empty; pass --force to overwrite the run in "
            "it, or choose another --run-dir"
        )


@contextlib.contextmanager
def _run_directory(run_dir: str | None) -> Iterator[Path]:
    if run_dir is not None:
        yield Path(run_dir)
        return
    with tempfile.TemporaryDirectory(prefix="ptheta-synth-") as folder:
        yield Path(folder) / "run"


@contextlib.contextmanager
def _status(text: str, quiet: bool) -> Iterator[None]:
    """A spinner on stderr while a step without its own progress bar runs."""
    if quiet:
        yield
        return
    with err_console.status(escape(text)):
        yield


def _fit(
    name: str,
    params: dict[str, Any],
    dataset: Any,
    folder: Path,
    source: dict[str, Any],
    force: bool,
    quiet: bool,
) -> tuple[Any, dict[str, Any]]:
    """Fit ``name`` on the training split into the run directory ``folder``; the fitted
    model (read back from the run, as `ptheta sample` would) and the summary row."""
    from ptheta.models import make
    from ptheta.runs.fitting import fit_run
    from ptheta.runs.store import load_run

    own_bar = make(name, **params).capabilities().progress and not quiet
    text = f"fitting {name} on {len(dataset.train):,} rows of {dataset.name} …"
    with _status(text, quiet or own_bar):  # a model with its own progress bar shows that
        row = fit_run(
            name, params, dataset, folder, data_source=source, force=force,
            verbose=not quiet, score_splits=("val",),
        )  # fmt: skip
    return load_run(folder), row


def _write_rows(samples: Any, columns: Any, path: Path) -> None:
    """Synthetic rows (encoded) decoded to the table's labels and written to ``path``."""
    from ptheta.data.table import decode
    from ptheta.io import atomic_write_bytes

    frame = decode(samples, columns)
    if path.suffix.lower() == ".parquet":
        buf = io.BytesIO()
        frame.to_parquet(buf, index=False)
        atomic_write_bytes(path, buf.getvalue())
    else:
        atomic_write_bytes(path, frame.to_csv(index=False).encode("utf-8"))


def _print_report(report: dict[str, Any]) -> None:
    from ptheta.eval.synth import summary_rows

    title = f"Synthetic data quality: {report['model']} on {report['data']}"
    caption = (
        f"{report['n_synthetic']:,} synthetic rows against {report['n_train']:,} training "
        f"and {report['n_holdout']:,} held-out rows; fit {report['fit_seconds']:.2f} s, "
        f"sampling {report['sample_seconds']:.2f} s."
    )
    print_table(title, ["metric", "value", "reading"], summary_rows(report), caption=caption)
    print_table(
        "Columns (0 = same distribution)",
        ["column", "type", "metric", "statistic", "missing real", "missing synthetic"],
        [
            [c["column"], c["type"], c["metric"].upper(), c["statistic"],
             f"{c['missing_real']:.1%}", f"{c['missing_synthetic']:.1%}"]
            for c in report["columns"]
        ],
    )  # fmt: skip
    worst = report["pairs"]["worst"]
    if worst:
        print_table(
            "Pairs with the largest association difference",
            ["pair", "measure", "real", "synthetic", "difference"],
            [[f"{p['a']} – {p['b']}", p["measure"], p["real"], p["synthetic"], p["diff"]]
             for p in worst],
        )  # fmt: skip
    if report["dcr"]["copying"]:
        err_console.print(
            "[yellow]Warning:[/] the synthetic rows sit closer to training rows than held-out "
            "rows do: the model may be copying its training data",
            highlight=False,
        )
