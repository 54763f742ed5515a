"""`ptheta sample`: draw samples from a fitted run."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import click
import numpy as np

from ptheta.cli.common import CliError, print_table
from ptheta.data.sequences import decode
from ptheta.eval.plots import samples_figure, save_figure
from ptheta.eval.runs import load_run_data
from ptheta.io import atomic_write_bytes
from ptheta.models import GenerativeModel
from ptheta.train.rundir import load_run

SUFFIXES = (".npy", ".png", ".csv", ".txt")


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
    help="Where to write them: .npy (array), .csv (one row per sample), .png (an image "
    "grid, or a scatter plot for 2-D data) or .txt (sequences decoded: characters of a "
    "text file, values of a time series).",
)
@click.option("--seed", default=0, show_default=True, type=int, help="Random seed.")
@click.option(
    "--temperature",
    type=click.FloatRange(min=0),
    default=None,
    help="Sequence models: divide the logits by this (below 1 sharper, 0 greedy).",
)
@click.option(
    "--top-k",
    type=click.IntRange(min=1),
    default=None,
    help="Sequence models: sample among the k most probable tokens at each step.",
)
@click.option(
    "--prompt",
    default=None,
    help="Sequence models: the start of every sequence — text for a model of a text "
    "file, otherwise comma-separated tokens (e.g. 3,1,4).",
)
def command(
    run: str,
    n_samples: int,
    out: str,
    seed: int,
    temperature: float | None,
    top_k: int | None,
    prompt: str | None,
) -> None:
    """Draw samples from the fitted model in run directory RUN.

    Without the sequence options, samples come from the model's distribution itself.
    """
    path = Path(out)
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise CliError(f"--out must end in {', '.join(SUFFIXES)}, got {out!r}")
    model = load_run(run)
    options = {"temperature": temperature, "top_k": top_k, "prompt": prompt}
    needs_data = suffix == ".txt" or prompt is not None
    data = load_run_data(run) if needs_data else None
    if suffix == ".txt" and not {"vocab", "bin_centres"} & set(data.extra):
        raise CliError(
            f".txt output decodes sequence data (text files, built-in series); {data.name!r} "
            "is not one: use .npy, .csv or .png"
        )
    if any(v is not None for v in options.values()):
        samples = _generate(model, n_samples, seed, data, **options)
    else:
        samples = model.sample(n_samples, random_state=seed)
    spec = model.fitted_spec
    if suffix == ".npy":
        buf = io.BytesIO()
        np.save(buf, samples, allow_pickle=False)
        atomic_write_bytes(path, buf.getvalue())
    elif suffix == ".csv":
        flat = samples.reshape(len(samples), -1)
        header = ",".join(f"x{i}" for i in range(flat.shape[1]))
        fmt = "%d" if spec.is_discrete else "%.8g"
        buf = io.StringIO()
        np.savetxt(buf, flat, delimiter=",", header=header, comments="", fmt=fmt)
        atomic_write_bytes(path, buf.getvalue().encode())
    elif suffix == ".txt":
        decoded = decode(data, samples.reshape(len(samples), -1))
        if isinstance(decoded, list):  # text: one block per sample
            text = "".join(f"--- sample {i}\n{s}\n" for i, s in enumerate(decoded))
        else:  # a series: the bin centres, one line per sample
            text = "".join(" ".join(f"{v:.6g}" for v in row) + "\n" for row in decoded)
        atomic_write_bytes(path, text.encode("utf-8"))
    else:
        save_figure(samples_figure(samples, spec, title=f"{model.name}: {n_samples} samples"), path)
    print_table(
        f"Samples from {run}",
        ["model", "n samples", "shape", "kind", "written to"],
        [[model.name, n_samples, samples.shape[1:], spec.describe().split(" ")[0], str(path)]],
    )


def _generate(
    model: GenerativeModel, n: int, seed: int, data: Any, *, temperature, top_k, prompt
) -> np.ndarray:
    """Sequence sampling with options, for the families that offer ``generate``."""
    if not hasattr(model, "generate"):
        raise CliError(
            f"--temperature, --top-k and --prompt apply to sequence models (lstm, "
            f"transformer); {model.name!r} samples its distribution only"
        )
    tokens = None
    if prompt is not None:
        vocab = data.extra.get("vocab")
        if vocab is not None:  # text: characters → tokens
            index = {ch: i for i, ch in enumerate(vocab)}
            unknown = sorted({ch for ch in prompt if ch not in index})
            if unknown:
                raise CliError(f"--prompt has characters the model never saw: {unknown}")
            tokens = [index[ch] for ch in prompt]
        else:
            try:
                tokens = [int(t) for t in prompt.split(",")]
            except ValueError:
                raise CliError(f"--prompt must be comma-separated tokens, got {prompt!r}") from None
    return model.generate(
        n,
        temperature=1.0 if temperature is None else temperature,
        top_k=top_k,
        prompt=tokens,
        random_state=seed,
    )
