"""Fit a model on a data set into a run directory, and evaluate runs; shared by the CLI commands."""

from __future__ import annotations

import os
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ptheta.data import Dataset, load
from ptheta.errors import DataError, ParameterError, RunDirError
from ptheta.eval.likelihood import nll_summary
from ptheta.eval.plots import samples_figure, save_figure, tree_figure
from ptheta.io import atomic_write_text
from ptheta.models import GenerativeModel, make
from ptheta.train import checkpoint
from ptheta.train.distributed import current_world, on_main
from ptheta.train.rundir import CONFIG, METRICS, WEIGHTS, read_config, read_metrics, save_run

SAMPLES_PNG = "samples.png"
STRUCTURE_DOT = "structure.dot"
STRUCTURE_PNG = "structure.png"


# Files ptheta writes into a run directory (removed by --force before a fresh run).
RUN_FILES = (
    CONFIG, WEIGHTS, METRICS, SAMPLES_PNG, STRUCTURE_DOT, STRUCTURE_PNG, checkpoint.STATE,
)  # fmt: skip


def prepare_out_dir(out: str | os.PathLike, *, force: bool, resume: bool = False) -> Path:
    """Refuse to overwrite an existing run or a non-empty folder unless ``force``.

    With ``resume`` the folder must hold a training checkpoint to continue from. With
    ``force`` the files of an earlier run are removed (nothing else in the folder is).
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise RunDirError(f"--out {str(out)!r} is a file; give a directory path")
    if resume:
        if not checkpoint.exists(out):
            raise RunDirError(
                f"nothing to resume in {str(out)!r}: it holds no training checkpoint; "
                "start the run without --resume"
            )
        return out
    if out.exists() and any(out.iterdir()):
        if not force:
            what = "holds a run" if (out / CONFIG).exists() else "is not empty"
            raise RunDirError(
                f"{str(out)!r} {what}; pass --force to overwrite it, --resume to continue an "
                "interrupted training run, or choose another --out"
            )
        for name in RUN_FILES:
            (out / name).unlink(missing_ok=True)
        for path in checkpoint.tensor_files(out):
            path.unlink()
    return out


def fit_run(
    name: str,
    params: dict[str, Any],
    data: Dataset,
    out: str | os.PathLike,
    *,
    data_source: dict[str, Any],
    force: bool = False,
    resume: bool = False,
    verbose: bool = True,
    n_picture: int | None = None,
    score_splits: tuple[str, ...] = ("train", "val"),
) -> dict[str, Any] | None:
    """Fit model ``name`` with ``params`` on ``data.train`` and write the run to ``out``.

    ``data_source`` records how to load the data again (name or path, kind override and
    so on) so that ``ptheta eval RUN`` needs nothing else. Neural families train with the
    validation split for early stopping, checkpoint into ``out`` and can ``resume``. The
    ``score_splits`` are scored after the fit (their NLL goes to the metrics and the row;
    scoring costs T network passes per example for a DDPM, so callers that score the test
    split themselves may pass ``()``). Under
    ``torchrun`` every process trains and only rank 0 writes; the others return None.
    Returns a summary row.
    """
    world = current_world()
    model = make(name, **params)
    trains_in_steps = "run_dir" in model.fit_params
    if resume and not trains_in_steps:
        raise ParameterError(
            f"--resume continues a neural training run; {name!r} fits in one go (start again)"
        )
    out = Path(out)
    # rank 0 prepares the folder; under torchrun the others learn its outcome, so that an
    # error is the same one-line error everywhere (not a broken barrier)
    on_main(lambda: prepare_out_dir(out, force=force, resume=resume))
    if verbose and "verbose" in model.get_params():
        model.set_params(verbose=1)
    y = data.train.y if model.needs_labels else None
    if model.needs_labels and y is None:
        raise DataError(f"{name!r} needs labels, but data set {data.name!r} has none")
    fit_kwargs: dict[str, Any] = {}
    if trains_in_steps:
        fit_kwargs = {"run_dir": out, "resume": resume}
        if getattr(model, "validation_measures_fit", True):  # early stopping on val NLL
            fit_kwargs["validation_data"] = data.val
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        start = time.perf_counter()
        model.fit(data.train, y, **fit_kwargs)
        fit_seconds = time.perf_counter() - start
    for w in caught:
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if not world.is_main:
        return None

    # with the model's progress bar where scoring is slow (ddpm)
    evals = {split: nll_summary(model, getattr(data, split).x) for split in score_splits}
    if "verbose" in model.get_params():
        model.set_params(verbose=0)  # the saved config should not replay a progress bar
    if trains_in_steps:  # the Trainer's per-epoch records (not a resumed run's old evals)
        metrics = [r for r in read_metrics(out) if r.get("event") == "epoch"]
    else:
        metrics = [{"event": "fit_step", **h} for h in getattr(model, "history_", []) or []]
    metrics += [{"event": "eval", "split": split, **summary} for split, summary in evals.items()]
    info = {
        **data_source,
        "name": data.name,
        "fingerprint": data.fingerprint(),
        "spec": data.spec.to_json(),
        "n_train": len(data.train),
        "n_val": len(data.val),
        "n_test": len(data.test),
    }
    extra = {
        "fit_seconds": fit_seconds,
        "warnings": [str(w.message) for w in caught],
        "processes": world.world_size,
    }
    save_run(model, out, data=info, metrics=metrics, extra=extra)
    write_samples_picture(model, out / SAMPLES_PNG, data=data, n=n_picture)
    if hasattr(model, "to_dot"):  # a learned graph: DOT text and a picture of it
        atomic_write_text(out / STRUCTURE_DOT, model.to_dot())
        save_figure(tree_figure(model), out / STRUCTURE_PNG)
    return {
        "model": name,
        "data": data.name,
        "kind": data.spec.describe(),
        "n_train": len(data.train),
        "fit_seconds": fit_seconds,
        "parameters": model.n_parameters(),
        "likelihood": model.likelihood_,
        "units": model.units_,
        "train_nll": evals.get("train", {}).get("nll_nats"),
        "val_nll": evals.get("val", {}).get("nll_nats"),
        "val_bpd": evals.get("val", {}).get("bits_per_dim"),
        "run_dir": str(out),
        "warnings": len(caught),
    }


def write_samples_picture(
    model: GenerativeModel,
    path: str | os.PathLike,
    *,
    data: Dataset | None = None,
    n: int | None = None,
    random_state: int = 0,
) -> None:
    """Draw samples and save them as a PNG grid (images) or scatter plot (2-D)."""
    spec = model.fitted_spec
    if n is None:
        n = 1000 if spec.n_dims == 2 and not spec.is_discrete else 64
    samples = model.sample(n, random_state=random_state)
    title = f"{model.name}: {n} samples"
    background = data.train.x[:2000] if data is not None else None
    save_figure(samples_figure(samples, spec, data=background, title=title), path)


def load_run_data(run_dir: str | os.PathLike, data: str | None = None, **overrides: Any) -> Dataset:
    """The data set named on the command line, or else the one the run was fitted on."""
    config = read_config(run_dir)
    source = dict(config.get("data", {}))
    if data is None:
        data = source.get("source")
        if data is None:
            raise DataError(
                f"the run {str(run_dir)!r} does not record its data set; pass --data NAME|PATH"
            )
        kwargs = {
            k: source.get(k) for k in ("kind", "label_column", "image_size", "seq_len", "seed")
        }
        kwargs = {k: v for k, v in kwargs.items() if v is not None}
    else:
        kwargs = {}
    kwargs.update({k: v for k, v in overrides.items() if v is not None})
    return load(data, **kwargs)


def evaluate_run(model: GenerativeModel, data: Dataset, splits: list[str]) -> list[dict[str, Any]]:
    """One NLL summary row per split."""
    rows = []
    for split in splits:
        rows.append({"split": split, **nll_summary(model, data.split(split).x)})
    return rows


def scores_table(model: GenerativeModel, data: Dataset, split: str) -> dict[str, np.ndarray]:
    """Per-example log-likelihoods (and labels where the data have them)."""
    part = data.split(split)
    cols: dict[str, np.ndarray] = {
        "index": np.arange(len(part)),
        "log_prob": model.score_samples(part.x),
    }
    if part.y is not None:
        cols["label"] = part.y
    return cols
