"""`ptheta sample`: draw samples from a fitted run."""

from __future__ import annotations

import io
from pathlib import Path

import click
import numpy as np

from ptheta.cli.common import CliError, print_table
from ptheta.eval.plots import samples_figure, save_figure
from ptheta.io import atomic_write_bytes
from ptheta.train.rundir import load_run

SUFFIXES = (".npy", ".png", ".csv")


@click.command("sample")
@click.argument("run", type=click.Path())
@click.option(
    "-n",
    "--n-samples",
    default=64,
    show_default=True,
    type=click.IntRange(min=1),
    help="How many samples to draw.",
)
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False),
    help="Where to write them: .npy (array), .csv (one row per sample) or .png "
    "(an image grid, or a scatter plot for 2-D data).",
)
@click.option("--seed", default=0, show_default=True, type=int, help="Random seed.")
def command(run: str, n_samples: int, out: str, seed: int) -> None:
    """Draw samples from the fitted model in run directory RUN."""
    path = Path(out)
    if path.suffix.lower() not in SUFFIXES:
        raise CliError(f"--out must end in {', '.join(SUFFIXES)}, got {out!r}")
    model = load_run(run)
    samples = model.sample(n_samples, random_state=seed)
    spec = model.fitted_spec
    if path.suffix.lower() == ".npy":
        buf = io.BytesIO()
        np.save(buf, samples, allow_pickle=False)
        atomic_write_bytes(path, buf.getvalue())
    elif path.suffix.lower() == ".csv":
        flat = samples.reshape(len(samples), -1)
        header = ",".join(f"x{i}" for i in range(flat.shape[1]))
        fmt = "%d" if spec.is_discrete else "%.8g"
        buf = io.StringIO()
        np.savetxt(buf, flat, delimiter=",", header=header, comments="", fmt=fmt)
        atomic_write_bytes(path, buf.getvalue().encode())
    else:
        save_figure(samples_figure(samples, spec, title=f"{model.name}: {n_samples} samples"), path)
    print_table(
        f"Samples from {run}",
        ["model", "n samples", "shape", "kind", "written to"],
        [[model.name, n_samples, samples.shape[1:], spec.describe().split(" ")[0], str(path)]],
    )
