"""`ptheta sample`: draw samples from a fitted run."""

from __future__ import annotations

import io
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import numpy as np

from ptheta.cli.common import POSITIVE, SEED, CliError, FiniteFloatRange, print_table
from ptheta.data.ragged import Sequences
from ptheta.io import atomic_write_bytes

if TYPE_CHECKING:
    from ptheta.models import GenerativeModel

SUFFIXES = (".npy", ".npz", ".png", ".csv", ".txt", ".parquet")

# The samples are held in memory (8 bytes a value, int64 or float64) before they are written.
MAX_SAMPLE_BYTES = 1 << 30
# Requests above this many samples are first timed on a small trial draw.
TRIAL_FROM = 10_000
TRIAL_SIZES = (16, 128, 512)  # a warm-up, then two sizes to tell cost per call from per sample


@click.command("sample")
@click.argument("run", type=click.Path())
@click.option(
    "-n",
    "--n-samples",
    default=64,
    show_default=True,
    type=click.IntRange(min=1),
    help="How many samples to draw: at most what 1 GiB holds (8 bytes a value, e.g. "
    "2,097,152 samples of 64 values) and, judged from a short trial draw, what takes at most "
    "--time-limit seconds; run again with another --seed for more.",
)
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False),
    help="Where to write them: .npy (array), .npz (the array as 'x'), .csv (one row per "
    "sample), .png (an image grid, or a scatter plot for 2-D data) or .txt (sequences "
    "decoded: characters of a text file, values of a time series). Tables: .csv or "
    ".parquet with the fitted columns, labels as text and counts as whole numbers (an "
    "empty cell where a value is missing); .npy / .npz hold the codes. Variable-length "
    "sequences: .npz holds 'values' (every step, one after another) and 'offsets' (where "
    "each sequence starts, then the end), .csv is in long format (sequence_id, t, values), "
    ".txt has one decoded sequence per line, .png draws token strips or series; each of "
    "these loads again with --data.",
)
@click.option("--seed", default=0, show_default=True, type=SEED, help="Random seed.")
@click.option(
    "--time-limit",
    default=600.0,
    show_default=True,
    type=POSITIVE,
    metavar="SECONDS",
    help="Refuse an -n that a trial draw estimates to take longer than this.",
)
@click.option(
    "--temperature",
    type=FiniteFloatRange(min=0),
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
    time_limit: float,
    temperature: float | None,
    top_k: int | None,
    prompt: str | None,
) -> None:
    """Draw samples from the fitted model in run directory RUN.

    Without the sequence options, samples come from the model's distribution itself.

    -n is bounded: the samples must fit in 1 GiB of memory, and a request of more than
    10,000 samples is first timed on a short trial draw and refused when it would take
    longer than --time-limit; the error names an -n that fits.
    """
    from ptheta.data.sequences import decode
    from ptheta.runs.fitting import load_run_data
    from ptheta.runs.pictures import samples_figure, save_figure
    from ptheta.runs.store import load_run

    path = Path(out)
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise CliError(f"--out must end in {', '.join(SUFFIXES)}, got {out!r}")
    model = load_run(run)
    options = {"temperature": temperature, "top_k": top_k, "prompt": prompt}
    spec = model.fitted_spec
    if suffix == ".parquet" and spec.kind != "table":
        raise CliError(".parquet output is for tables; use .npy, .npz, .csv or .png")
    if spec.variable_length and suffix == ".npy":
        raise CliError(
            "variable-length sequences do not fit one .npy array: use .npz (values and "
            "offsets), .csv (long format), .txt (decoded lines) or .png"
        )
    needs_data = (
        suffix == ".txt" or prompt is not None or (spec.variable_length and suffix == ".png")
    )
    data = load_run_data(run) if needs_data else None
    if suffix == ".txt" and not {"vocab", "bin_centres"} & set(data.extra):
        arrays = ".npz" if spec.variable_length else ".npy"  # ragged: .npy is refused above
        raise CliError(
            f".txt output decodes sequence data (text files, built-in series); {data.name!r} "
            f"is not one: use {arrays}, .csv or .png"
        )
    if any(v is not None for v in options.values()):

        def draw(n: int, seed: int) -> np.ndarray:
            return _generate(model, n, seed, data, **options)
    else:

        def draw(n: int, seed: int) -> np.ndarray:
            return model.sample(n, random_state=seed)

    _check_memory(n_samples, math.prod(model.fitted_spec.event_shape))
    if n_samples > TRIAL_FROM:
        _check_time(draw, n_samples, seed, time_limit)
    samples = draw(n_samples, seed)
    if isinstance(samples, Sequences):
        _write_sequences(samples, path, model, data)
        lengths = f"{samples.lengths.min()}-{samples.lengths.max()} steps"
        kind = spec.describe().split(" ")[0]
        print_table(
            f"Samples from {run}",
            ["model", "n samples", "lengths", "kind", "written to"],
            [[model.name, n_samples, lengths, kind, str(path)]],
        )
        return
    if spec.kind == "table" and suffix in (".csv", ".parquet"):
        _write_table(samples, spec, path)
    elif suffix == ".npz":
        buf = io.BytesIO()
        np.savez(buf, x=samples)
        atomic_write_bytes(path, buf.getvalue())
    elif suffix == ".npy":
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


def _write_table(samples: np.ndarray, spec: Any, path: Path) -> None:
    """Rows of a table as a CSV or Parquet file of the fitted columns: labels as text,
    counts as whole numbers, reals in full precision; ``ptheta.data.load`` reads it back
    (with the run's schema, the same columns and levels)."""
    from ptheta.data.table import decode

    frame = decode(samples, spec.columns)
    if path.suffix.lower() == ".parquet":
        buf = io.BytesIO()
        frame.to_parquet(buf, index=False)
        atomic_write_bytes(path, buf.getvalue())
        return
    text = frame.to_csv(index=False, float_format="%.17g")
    atomic_write_bytes(path, text.encode("utf-8"))


def _write_sequences(samples: Sequences, path: Path, model: GenerativeModel, data: Any) -> None:
    """Write variable-length sequences in a format ``ptheta.data.load`` reads back:
    .npz of values and offsets, a long CSV, decoded lines of text, or a picture."""
    from ptheta.data.sequences import decode
    from ptheta.runs.pictures import samples_figure, save_figure

    spec = model.fitted_spec
    suffix = path.suffix.lower()
    flat, offsets = samples.concatenated()  # (S, *step_shape), (N + 1,)
    if suffix == ".npz":
        buf = io.BytesIO()
        np.savez(buf, values=flat, offsets=offsets)
        atomic_write_bytes(path, buf.getvalue())
    elif suffix == ".csv":
        steps = flat.reshape(len(flat), -1)
        names = ["value"] if steps.shape[1] == 1 and not spec.step_shape else [
            f"x{i}" for i in range(steps.shape[1])]  # fmt: skip
        ids = np.repeat(np.arange(len(samples)), samples.lengths)
        t = np.arange(len(flat)) - np.repeat(offsets[:-1], samples.lengths)
        fmt = ["%d", "%d"] + ["%d" if spec.is_discrete else "%.17g"] * len(names)  # exact
        buf = io.StringIO()
        np.savetxt(buf, np.column_stack([ids, t, steps]), delimiter=",", comments="",
                   header=",".join(["sequence_id", "t", *names]), fmt=fmt)  # fmt: skip
        atomic_write_bytes(path, buf.getvalue().encode())
    elif suffix == ".txt":
        decoded = decode(data, samples)
        if "vocab" in data.extra:  # text: one sequence per line, as --lines reads it
            text = "".join(f"{line}\n" for line in decoded)
        else:  # a binned series: the bin centres, one line per sequence
            text = "".join(" ".join(f"{v:.6g}" for v in row) + "\n" for row in decoded)
        atomic_write_bytes(path, text.encode("utf-8"))
    else:
        title = f"{model.name}: {len(samples)} samples"
        vocab = data.extra.get("vocab") if data is not None else None
        save_figure(samples_figure(samples, spec, title=title, vocab=vocab), path)


def _check_memory(n: int, values: int) -> None:
    """Refuse ``n`` samples of ``values`` values each that 1 GiB does not hold."""
    if n * values * 8 <= MAX_SAMPLE_BYTES:
        return
    fits = max(1, MAX_SAMPLE_BYTES // (values * 8))
    raise CliError(
        f"-n {n} samples of {values} values would take {n * values * 8 / 2**30:.3g} GiB of "
        f"memory (8 bytes a value), more than the {MAX_SAMPLE_BYTES / 2**30:g} GiB `ptheta "
        f"sample` holds: use -n {fits} or fewer, and run again with another --seed for more"
    )


def _check_time(draw: Callable[[int, int], Any], n: int, seed: int, limit: float) -> None:
    """Time trial draws and refuse ``n`` samples estimated to take over ``limit`` seconds.

    A warm-up draw, then two sizes fit t = a + b·n: sequential samplers (MADE, PixelCNN)
    pay a large cost per call, so a small draw alone would overstate the cost per sample.
    """
    timed: list[tuple[int, float]] = []
    for size in TRIAL_SIZES:
        start = time.perf_counter()
        draw(size, seed)  # thrown away: the real draw is the same as without a trial
        timed.append((size, time.perf_counter() - start))
        if timed[-1][1] > limit:
            break
    size, seconds = timed[-1]
    if len(timed) < len(TRIAL_SIZES):  # one trial alone ran past the limit
        per_sample, fixed = seconds / size, 0.0
    else:
        (m1, t1), (m2, t2) = timed[-2:]
        per_sample = (t2 - t1) / (m2 - m1) if t2 > t1 else t2 / m2  # noise: the average
        fixed = max(0.0, t2 - per_sample * m2)
    estimate = fixed + per_sample * n
    if estimate <= limit:
        return
    fits = max(1, int((limit - fixed) / per_sample)) if limit > fixed else 1
    if fits >= 100:  # rounded down to two significant digits: a number to type
        step = 10 ** (len(str(fits)) - 2)
        fits = fits // step * step
    raise CliError(
        f"-n {n} would take about {_duration(estimate)} (a trial drew {size} samples in "
        f"{seconds:.2g} s), more than --time-limit {limit:g} s: use -n {fits} or fewer, run "
        "again with another --seed for more, or raise --time-limit"
    )


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.2g} seconds"
    if seconds < 7200:
        return f"{seconds / 60:.0f} minutes"
    return f"{seconds / 3600:.0f} hours"


def _generate(
    model: GenerativeModel, n: int, seed: int, data: Any, *, temperature, top_k, prompt
) -> np.ndarray:
    """Sequence sampling with options, for the families that offer ``generate``."""
    if not model.capabilities().generates_sequences:
        raise CliError(
            f"--temperature, --top-k and --prompt apply to sequence models (the 'generate' "
            f"column of `ptheta models`); {model.name!r} samples its distribution only"
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
