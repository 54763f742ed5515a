"""`ptheta impute`: fill the missing (NaN) entries of a file with a fitted run's model."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import TYPE_CHECKING

import click
import numpy as np

from ptheta.cli.common import SEED, CliError, print_table
from ptheta.errors import CapabilityError, DataError
from ptheta.io import atomic_write_bytes, atomic_write_text

if TYPE_CHECKING:
    from ptheta.models import GenerativeModel

SUFFIXES = (".npy", ".csv")
# CSV cells read as missing, besides an empty cell
MISSING_CELLS = ("nan", "na", "n/a", "?")


def read_partial(path: Path) -> tuple[np.ndarray, list[str] | None]:
    """Examples with NaN at the missing entries, float64, and the CSV header (None for .npy).

    A CSV file has a header row naming its columns; an empty cell (or nan, NA, ?) is missing.
    """
    if path.suffix.lower() == ".npy":
        from ptheta.data.files import read_npy

        x = read_npy(path)  # never unpickles; refuses corrupted headers and record arrays
        if x.dtype.kind not in "biuf":
            raise DataError(f"{path} holds {x.dtype} values; impute needs numbers (NaN = missing)")
        return x.astype(np.float64), None
    try:
        rows = [r for r in csv.reader(io.StringIO(path.read_text("utf-8-sig"))) if r]
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise DataError(f"could not read {path} as a CSV file: {e}") from None
    if len(rows) < 2:
        raise DataError(f"{path} needs a header row and at least one data row")
    header, body = [h.strip() for h in rows[0]], rows[1:]
    x = np.empty((len(body), len(header)))
    for i, row in enumerate(body):
        if len(row) != len(header):
            raise DataError(
                f"row {i + 2} of {path} has {len(row)} fields, the header {len(header)}"
            )
        for j, cell in enumerate(row):
            cell = cell.strip()
            try:
                x[i, j] = np.nan if cell.lower() in ("", *MISSING_CELLS) else float(cell)
            except ValueError:
                raise DataError(
                    f"{path}, row {i + 2}, column {header[j]!r}: {cell!r} is not a number; "
                    "leave missing cells empty"
                ) from None
    return x, header


def _shaped(x: np.ndarray, model: GenerativeModel, path: Path) -> np.ndarray:
    """``x`` as (N, *event_shape): flat rows (N, D) are reshaped to the model's examples."""
    spec = model.fitted_spec
    if x.shape[1:] == spec.event_shape:
        return x
    if x.ndim >= 2 and int(np.prod(x.shape[1:])) == spec.n_dims:
        return x.reshape(len(x), *spec.event_shape)
    raise DataError(
        f"{path} holds examples of shape {x.shape[1:]}, but the model was fitted on "
        f"{spec.event_shape} ({spec.n_dims} values per example)"
    )


@click.command("impute")
@click.argument("run", type=click.Path())
@click.option(
    "--in",
    "in_path",
    required=True,
    type=click.Path(dir_okay=False),
    help="Examples with missing entries: a .npy array (NaN = missing) or a .csv file with a "
    "header row (empty cells, nan, NA or ? are missing).",
)
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False),
    help="Where to write the completed examples, in the format of --in.",
)
@click.option(
    "--method",
    default="mode",
    show_default=True,
    type=click.Choice(["mode", "sample"]),
    help="mode: the most probable completion the model computes exactly; sample: a draw "
    "from p(missing | observed).",
)
@click.option("--seed", default=0, show_default=True, type=SEED, help="Random seed (sample).")
def command(run, in_path, out, method, seed) -> None:
    """Fill the missing entries of a file with a fitted model; observed entries are kept.

    Needs a model that marginalises exactly (see `ptheta models`: naive-bayes, independent,
    chow-liu, markov, the mixtures, bayes-classifier with such a density).

    \b
    Example:
      ptheta impute runs/cl --in partial.csv --out completed.csv --method sample --seed 1
    """
    from ptheta.runs.store import load_run

    src, dst = Path(in_path), Path(out)
    for path, flag in ((src, "--in"), (dst, "--out")):
        if path.suffix.lower() not in SUFFIXES:
            raise CliError(f"{flag} must be a .npy or .csv file, got {str(path)!r}")
    if src.suffix.lower() != dst.suffix.lower():
        raise CliError(f"--out must have the format of --in ({src.suffix}), got {str(dst)!r}")
    if not src.is_file():
        raise CliError(f"--in {str(src)!r} does not exist")
    model = load_run(run)
    if not model.capabilities().imputes:
        raise CapabilityError(
            f"{model.name!r} cannot fill in missing entries; fit a model that imputes (the "
            "'impute' column of `ptheta models`)"
        )
    x, header = read_partial(src)
    if x.ndim < 2 or len(x) == 0:
        raise DataError(f"{src} must hold examples stacked as (N, ...), got shape {x.shape}")
    missing = np.isnan(x)
    filled = model.impute(_shaped(x, model, src), method=method, random_state=seed)
    filled = filled.reshape(x.shape)
    discrete = model.fitted_spec.is_discrete
    if header is None:
        buf = io.BytesIO()
        np.save(buf, filled.astype(np.int64 if discrete else np.float64), allow_pickle=False)
        atomic_write_bytes(dst, buf.getvalue())
    else:
        text = io.StringIO()
        np.savetxt(
            text, filled, delimiter=",", header=",".join(header), comments="",
            fmt="%d" if discrete else "%.10g",
        )  # fmt: skip
        atomic_write_text(dst, text.getvalue())
    print_table(
        f"Imputed with {model.name} ({method})",
        ["examples", "entries filled", "of entries", "written to"],
        [[len(x), int(missing.sum()), int(missing.size), str(dst)]],
    )
