"""Fit a model on a data set into a run directory, and read runs back; shared by the commands.

Every family goes through the same path: the directory is locked for the run
(:mod:`ptheta.runs.lock`), the model is fitted, saved, pictured, and marked complete; then
the splits asked for are scored and their NLLs appended to ``metrics.jsonl``. A run is
complete as a model before it is scored: scoring that fails (out of memory) or is
interrupted leaves a loadable run whose scores are missing, which ``ptheta eval`` scores.
Scoring reads a split in chunks (a progress bar where the family has one), and may score
a seeded random subset: at most ``score_rows`` rows, or as many as the time left of a
``max_time`` budget allows (:func:`score_split`); the summary then says so.
``resume`` finishes whatever an interruption left: a neural training run continues from
its checkpoint; a run whose model was saved but whose pictures or marker are missing is
completed without refitting; a classical fit that never got saved is fitted again.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from ptheta.data import BUILTIN, Dataset, Split, load
from ptheta.data.stream import is_source
from ptheta.errors import DataError, ParameterError, PthetaError, RunDirError
from ptheta.io import append_jsonl, atomic_write_text
from ptheta.models import GenerativeModel, make
from ptheta.progress import progress_bar
from ptheta.runs import lock
from ptheta.runs.layout import (
    CONFIG,
    LOCK,
    METRICS,
    SAMPLES_PNG,
    STRUCTURE_DOT,
    STRUCTURE_PNG,
    owned_files,
)
from ptheta.runs.pictures import samples_figure, save_figure, structure_figure
from ptheta.runs.store import (
    is_complete,
    load_run,
    mark_complete,
    read_config,
    read_metrics,
    save_run,
)
from ptheta.train import checkpoint
from ptheta.train.distributed import barrier, current_world, on_main

# The seed of the random subset of a split that is scored when not all of it is.
SUBSET_SEED = 0
# Rows scored first, to measure the time per example before choosing how many to score:
# under a time budget only two (a standard error needs two; a DDPM row may take seconds).
FIRST_ROWS = 8
FIRST_ROWS_TIMED = 2
# Later chunks aim at this many seconds each (the progress bar moves), within these rows.
CHUNK_SECONDS = 2.0
MAX_CHUNK_ROWS = 4096
# When training used the whole of max_time, scoring after it may still take this share
# of max_time: the command then ends within about (1 + SCORE_SHARE) · max_time.
SCORE_SHARE = 0.1


def prepare_out_dir(out: str | os.PathLike, *, force: bool, resume: bool = False) -> Path:
    """Refuse to overwrite an existing run or a non-empty folder unless ``force``.

    With ``resume`` the folder must hold something to finish: a training checkpoint, or a
    run that is not complete. With ``force`` every file of an earlier run is removed,
    temporary files of interrupted writes included (nothing else in the folder is).
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise RunDirError(f"--out {str(out)!r} is a file; give a directory path")
    if resume:
        if is_complete(out):
            raise RunDirError(
                f"the run in {str(out)!r} is already complete; nothing to resume (use --force "
                "to fit it again)"
            )
        if not out.is_dir() or not (owned_files(out) or checkpoint.exists(out)):
            raise RunDirError(
                f"nothing to resume in {str(out)!r}: it holds no interrupted run; start the "
                "run without --resume"
            )
        return out
    others = [p for p in out.iterdir() if p.name != LOCK] if out.is_dir() else []
    if others:
        if not force:
            what = "holds a run" if (out / CONFIG).exists() else "is not empty"
            raise RunDirError(
                f"{str(out)!r} {what}; pass --force to overwrite it, --resume to finish an "
                "interrupted run, or choose another --out"
            )
        for path in owned_files(out):
            path.unlink(missing_ok=True)
    return out


def _saved_model(out: Path, name: str) -> GenerativeModel | None:
    """The model an interrupted run already saved (config and weights intact, only the
    pictures or the marker missing), or None."""
    if not (out / CONFIG).exists():
        return None
    try:
        return load_run(out, expect_model=name, require_complete=False)
    except PthetaError:
        return None


def fit_kwargs(model: GenerativeModel, data: Dataset, **training: Any) -> dict[str, Any]:
    """The keyword arguments ``model.fit`` takes besides X and y, from its capabilities:
    validation data for early stopping where the validation loss measures fit, and the
    Trainer's ``training`` options (``run_dir``, ``resume``) where it trains in steps."""
    caps = model.capabilities()
    if not caps.trains_in_steps:
        return {}
    kwargs = dict(training)
    if caps.validation_measures_fit and len(data.val):
        kwargs["validation_data"] = data.val
    return kwargs


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
    score_rows: int | None = None,
) -> dict[str, Any] | None:
    """Fit model ``name`` with ``params`` on ``data.train`` and write the run to ``out``.

    ``data_source`` records how to load the data again (name or path, kind override and
    so on) so that ``ptheta eval RUN`` needs nothing else. Models that train in steps use
    the validation split for early stopping (where their loss measures fit) and checkpoint
    into ``out``. ``resume`` finishes an interrupted run of any family (see the module
    docstring). The run is saved and marked complete, then the ``score_splits`` are
    scored (their NLL goes to the metrics and the row; scoring costs T network passes per
    example for a DDPM, so callers that score the test split themselves may pass ``()``):
    each in full, or a seeded random subset of at most ``score_rows`` rows, or of as many
    rows as the time left of the model's ``max_time`` allows (see :func:`score_split`;
    the row's ``score_notes`` say so). A scoring that runs out of memory is a
    `PthetaError` naming the model, the split and the fix, and leaves the complete run
    without its scores. The directory is locked for the whole run: a second writer gets a
    RunDirError naming the first. Under ``torchrun`` every process trains and only rank 0
    writes and scores; the others return None. Returns a summary row.
    """
    if score_rows is not None and (
        isinstance(score_rows, bool) or not isinstance(score_rows, int) or score_rows < 1
    ):
        raise ParameterError(
            f"score_rows={score_rows!r}: give a whole number of rows ≥ 1, or None to score "
            "whole splits"
        )
    world = current_world()
    out = Path(out)
    held = lock.exclusive(out) if world.is_main else contextlib.nullcontext()
    with held:
        return _fit_locked(
            name, params, data, out, data_source=data_source, force=force, resume=resume,
            verbose=verbose, n_picture=n_picture, score_splits=score_splits,
            score_rows=score_rows,
        )  # fmt: skip


def _fit_locked(
    name: str,
    params: dict[str, Any],
    data: Dataset,
    out: Path,
    *,
    data_source: dict[str, Any],
    force: bool,
    resume: bool,
    verbose: bool,
    n_picture: int | None,
    score_splits: tuple[str, ...],
    score_rows: int | None,
) -> dict[str, Any] | None:
    world = current_world()
    begun = time.perf_counter()  # a max_time budget bounds the whole command
    model = make(name, **params)
    caps = model.capabilities()
    max_time = model.get_params().get("max_time")
    budget = None if max_time is None else (begun, float(max_time))
    scoring = {"rows": score_rows, "budget": budget, "verbose": verbose and caps.progress}
    # rank 0 prepares the folder; under torchrun the others learn its outcome, so that an
    # error is the same one-line error everywhere (not a broken barrier)
    on_main(lambda: prepare_out_dir(out, force=force, resume=resume))
    if caps.needs_labels and data.train.y is None:
        raise DataError(f"{name!r} needs labels, but data set {data.name!r} has none")
    saved = _saved_model(out, name) if resume else None
    if saved is not None:  # only the final writes were interrupted: finish them, no refit
        if world.is_main:
            _write_pictures(saved, out, data, n_picture)
            mark_complete(out)
            scored = {r.get("split") for r in read_metrics(out) if r.get("event") == "eval"}
            missing = tuple(s for s in score_splits if s not in scored)
            _score_into_run(saved, data, out, missing, **scoring)
            return _finished_row(saved, name, data, out)
        return None
    if verbose and caps.progress:
        model.set_params(verbose=1)
    y = data.train.y if caps.needs_labels else None
    kwargs = fit_kwargs(model, data, run_dir=out, resume=resume and checkpoint.exists(out))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        start = time.perf_counter()
        model.fit(data.train, y, **kwargs)
        fit_seconds = time.perf_counter() - start
    barrier()  # under torchrun: every process has finished training (no collective left)
    for w in caught:
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if caps.progress:
        model.set_params(verbose=0)  # the saved config should not replay a progress bar
    if not world.is_main:
        return None

    if caps.trains_in_steps:  # the Trainer's per-epoch records (not a resumed run's old evals)
        metrics = [r for r in read_metrics(out) if r.get("event") == "epoch"]
    else:
        metrics = [{"event": "fit_step", **h} for h in model.fit_history()]
    info = {
        **data_source,
        # read a batch at a time: `ptheta eval RUN` reads it so again (same splits, same
        # fingerprint), whether streaming was asked for or chosen by size
        **({"stream": True} if is_source(data.train.x) else {}),
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
    # complete as a model first: a scoring that fails below leaves a loadable run
    save_run(model, out, data=info, metrics=metrics, extra=extra, complete=False)
    seconds = None
    if scoring["budget"] is not None:  # half of what is left (or of the floor) for pictures
        begun, max_time = scoring["budget"]
        left = max_time - (time.perf_counter() - begun)
        seconds = max(left, SCORE_SHARE * max_time) / 2
    _write_pictures(model, out, data, n_picture, seconds)
    mark_complete(out)  # the marker covers config and weights; the scores are metrics
    _score_into_run(model, data, out, score_splits, **scoring)
    return _finished_row(model, name, data, out)


def _score_into_run(
    model: GenerativeModel,
    data: Dataset,
    out: Path,
    splits: tuple[str, ...],
    *,
    rows: int | None,
    budget: tuple[float, float] | None,
    verbose: bool,
) -> None:
    """Score ``splits`` of ``data`` with the run's fitted model and append one ``eval``
    record each to the run's metrics. ``budget`` = (when the command began, max_time):
    the splits share the time that is left of it, at least ``SCORE_SHARE`` · max_time."""
    deadline = None
    if budget is not None:  # the floor is for all the splits together
        begun, max_time = budget
        left = max_time - (time.perf_counter() - begun)
        deadline = time.perf_counter() + max(left, SCORE_SHARE * max_time)
    for i, split in enumerate(splits):
        seconds = _share(deadline, len(splits) - i)
        try:
            summary = score_split(
                model, data.split(split), split=split, rows=rows, seconds=seconds,
                verbose=verbose, what=f"the {split} split of {data.name!r}",
            )  # fmt: skip
        except KeyboardInterrupt:
            raise PthetaError(
                f"interrupted while scoring the {split} split; the fitted {model.name!r} is "
                f"saved in {str(out)!r} (a complete run without its scores): score it with "
                f"`ptheta eval {out}`"
            ) from None
        except ScoringOutOfMemory as e:
            raise ScoringOutOfMemory(
                f"{e}; the fitted model is saved in {str(out)!r} (a complete run without "
                f"its scores): score it later with `ptheta eval {out}`"
            ) from None
        append_jsonl(out / METRICS, {"event": "eval", "split": split, **summary})


def _write_pictures(
    model: GenerativeModel, out: Path, data: Dataset, n: int | None, seconds: float | None = None
) -> None:
    """The run's pictures: samples (as many as ``seconds`` allow), and the learned graph
    of a model that exports one."""
    write_samples_picture(model, out / SAMPLES_PNG, data=data, n=n, seconds=seconds)
    if model.capabilities().exports_structure:  # DOT text and a picture of it
        atomic_write_text(out / STRUCTURE_DOT, model.to_dot())
        save_figure(structure_figure(model), out / STRUCTURE_PNG)


def _finished_row(model: GenerativeModel, name: str, data: Dataset, out: Path) -> dict[str, Any]:
    """The summary row of a written run, from the model and what the run recorded."""
    config = read_config(out)
    evals = {
        r.get("split"): r for r in read_metrics(out) if r.get("event") == "eval"
    }  # the NLLs scored after the fit
    extra = config.get("extra", {})
    return {
        "model": name,
        "data": data.name,
        "kind": data.spec.describe(),
        "n_train": len(data.train),
        "fit_seconds": extra.get("fit_seconds"),
        "parameters": model.n_parameters(),
        "likelihood": model.likelihood_,
        "units": model.units_,
        "train_nll": evals.get("train", {}).get("nll_nats"),
        "val_nll": evals.get("val", {}).get("nll_nats"),
        "val_bpd": evals.get("val", {}).get("bits_per_dim"),
        "val_nll_per_step": evals.get("val", {}).get("nll_per_step"),
        "run_dir": str(out),
        "warnings": len(extra.get("warnings", [])),
        # which splits were scored on a subset, and which not at all
        "score_notes": [
            note for split, r in evals.items() if (note := describe_subset(r, split)) is not None
        ],
    }


def write_samples_picture(
    model: GenerativeModel,
    path: str | os.PathLike,
    *,
    data: Dataset | None = None,
    n: int | None = None,
    random_state: int = 0,
    seconds: float | None = None,
) -> None:
    """Draw samples and save them as a PNG grid (images), a scatter plot (2-D), token
    strips or series (variable-length sequences: see :func:`samples_figure`); with
    ``seconds``, as many of the ``n`` as fit (:func:`draw_within`, at least one)."""
    spec = model.fitted_spec
    if n is None:
        n = 1000 if spec.n_dims == 2 and not spec.is_discrete and not spec.variable_length else 64
    samples, n, _ = draw_within(model, n, seconds, first=1, random_state=random_state)
    title = f"{model.name}: {n} sample{'s' if n != 1 else ''}"
    background = data.train.x[:2000] if data is not None and not spec.variable_length else None
    vocab = data.extra.get("vocab") if data is not None else None
    figure = samples_figure(samples, spec, data=background, title=title, vocab=vocab)
    save_figure(figure, path)


def draw_within(
    model: GenerativeModel,
    n: int,
    seconds: float | None,
    *,
    first: int = 8,
    random_state: int = 0,
) -> tuple[Any, int, float]:
    """``n`` samples, or as many as ``seconds`` allow after timing a first draw of
    ``first`` (never fewer than those; the time per sample of a small draw overstates a
    batched sampler's, so this errs on the side of the budget): the samples, how many, and
    the seconds the draw that gave them took. Every draw uses ``random_state``."""
    m = min(first, n) if seconds is not None else n
    start = time.perf_counter()
    samples = model.sample(m, random_state=random_state)
    spent = time.perf_counter() - start
    if m < n:
        assert seconds is not None
        more = int(min(n, max(m, (seconds - spent) * m / max(spent, 1e-9))))
        if more > m:
            m, start = more, time.perf_counter()
            samples = model.sample(m, random_state=random_state)
            spent = time.perf_counter() - start
    return samples, m, spent


class ScoringOutOfMemory(PthetaError, MemoryError):
    """Scoring a split ran out of memory; the message names the model, the split and the
    fix."""


def _out_of_memory(e: BaseException) -> bool:
    """Whether ``e`` is an allocator's failure: MemoryError, torch's OutOfMemoryError, or
    the RuntimeError of its CPU allocator ("DefaultCPUAllocator: can't allocate memory")."""
    if isinstance(e, MemoryError) or type(e).__name__ == "OutOfMemoryError":
        return True
    text = str(e).lower()
    return isinstance(e, RuntimeError) and any(
        s in text for s in ("can't allocate memory", "cannot allocate memory", "out of memory")
    )


def _take(part: Split, index: np.ndarray) -> Split:
    """Rows ``index`` (sorted) of a split, read into memory (a streamed source too)."""
    x = part.x.read(index) if is_source(part.x) else np.asarray(part.x)[index]
    lengths = None if part.lengths is None else np.asarray(part.lengths)[index]
    return Split(x, None, part.spec, lengths)


def score_split(
    model: GenerativeModel,
    part: Split,
    *,
    split: str = "data",
    rows: int | None = None,
    seconds: float | None = None,
    seed: int = SUBSET_SEED,
    verbose: bool = False,
    what: str | None = None,
) -> dict[str, Any]:
    """The NLL summary of ``part`` (:meth:`~ptheta.models.base.GenerativeModel.nll_summary`'s
    entries), scored in chunks with a progress bar when ``verbose``.

    All rows are scored, or a seeded random subset (without replacement, ``seed``) of at
    most ``rows`` rows, or of as many as fit in ``seconds``: the first rows of the
    subset's order (``FIRST_ROWS_TIMED``) measure the time per example, and each later
    chunk is sized by the time per example so far and the seconds left (never fewer rows
    than those first ones). A subset's summary has ``n`` (the rows
    scored) below ``n_split``, and ``subset`` saying why (``"score_rows"`` or
    ``"max_time"``) with ``subset_seed``: its NLL estimates the split's mean, ``std_err``
    its standard error. Scores do not depend on the other rows of a chunk, so the chunking
    changes nothing. An allocator failure is a :class:`ScoringOutOfMemory` naming the
    model, the split and the fix.
    """
    what = what or f"the {split} split"
    n = len(part)
    check_scorable(model, part, what)
    if model.likelihood_ == "none" or n == 0:  # nothing to score: the summary says so
        return {**model.nll_summary(examples(part)), "n_split": n}
    target = n if rows is None else min(rows, n)
    # a subset is a prefix of a seeded random order: uniform whatever its size
    subset = target < n or seconds is not None
    order = np.random.default_rng(seed).permutation(n) if subset else np.arange(n)
    scores: list[np.ndarray] = []
    errors: list[np.ndarray] = []
    steps = [0]  # Σ lengths of the sequences scored

    def score(a: int, b: int) -> float:
        """Score rows order[a:b]; the seconds it took."""
        chunk = _take(part, np.sort(order[a:b]))
        start = time.perf_counter()
        log_p, mc_std = model.score_samples(examples(chunk), return_std=True)
        scores.append(np.asarray(log_p, dtype=np.float64))
        errors.append(np.asarray(mc_std, dtype=np.float64))
        if chunk.lengths is not None:
            steps[0] += int(np.sum(chunk.lengths))
        return time.perf_counter() - start

    try:
        done = min(FIRST_ROWS if seconds is None else FIRST_ROWS_TIMED, target)
        spent = score(0, done)
        # under `seconds`, as many rows as the time left allows: each chunk is sized by the
        # time per row so far, which falls as chunks grow when a call's fixed cost dominates
        # the first rows (a fast model timed on 2 rows would otherwise score a few hundred)
        with progress_bar(target, f"scoring {split}", enabled=verbose) as advance:
            advance(done)
            while done < target:
                per_row = max(spent / done, 1e-9)
                if seconds is not None and spent + per_row > seconds:
                    break  # slower than the first rows said: stop within the budget
                size = int(np.clip(CHUNK_SECONDS / per_row, 1, MAX_CHUNK_ROWS))
                if seconds is not None:
                    size = max(1, min(size, int((seconds - spent) / per_row)))
                stop = min(done + size, target)
                spent += score(done, stop)
                advance(stop - done, ex_per_s=round(stop / max(spent, 1e-9)))
                done = stop
    except Exception as e:
        if not _out_of_memory(e):
            raise
        raise ScoringOutOfMemory(
            f"scoring {what} with {model.name!r} ran out of memory ({type(e).__name__}); "
            "score fewer rows at a time: a smaller batch or smaller hyper-parameters, or "
            "fewer rows (`ptheta fit ... --score-rows N`, or --no-score)"
        ) from None
    summary = {"n_split": n, **_summary(model, np.concatenate(scores), np.concatenate(errors),
                                         steps[0])}  # fmt: skip
    if done < n:
        reason = "score_rows" if rows is not None and done == min(rows, n) else "max_time"
        summary.update(subset=reason, subset_seed=seed)
    return summary


def _summary(
    model: GenerativeModel, log_p: np.ndarray, mc_std: np.ndarray, steps: int
) -> dict[str, Any]:
    """``nll_summary``'s entries from scores already computed (``steps``: Σ lengths of
    variable-length sequences, each end then counted as one more step)."""
    nll = float(-log_p.mean())
    k = len(log_p)
    out: dict[str, Any] = {
        "n": k,
        "likelihood": model.likelihood_,
        "units": model.units_,
        "nll_nats": nll,
        "bits_per_dim": nll / (model.fitted_spec.n_dims * math.log(2.0)),
        "std_err": float(log_p.std(ddof=1) / math.sqrt(k)) if k > 1 else 0.0,
        "mc_std_err": float(np.sqrt(np.nansum(mc_std**2)) / k),
    }
    if model.fitted_spec.variable_length:
        n_steps = steps + k
        out["n_steps"] = n_steps
        out["nll_per_step"] = float(-log_p.sum() / n_steps)
        out["bits_per_dim"] = out["nll_per_step"] / (model.fitted_spec.step_dims * math.log(2.0))
    out.update(model.likelihood_details())
    return out


def describe_subset(summary: dict[str, Any], split: str) -> str | None:
    """One sentence saying that ``split`` was scored on a random subset, or None."""
    why = summary.get("subset")
    if why is None:
        return None
    because = {
        "score_rows": "at most --score-rows rows",
        "max_time": "what fitted in the time left of max_time",
        "eval_max_time": "what fitted in --max-time",
    }.get(why, why)
    return (
        f"{split}: scored {summary['n']:,} of {summary['n_split']:,} rows ({because}; a "
        f"random subset, seed {summary.get('subset_seed')}): the NLL estimates the split's "
        f"mean ± {summary['std_err']:.3g} (s.e.)"
    )


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
            k: source.get(k)
            for k in ("kind", "label_column", "image_size", "seq_len", "lines", "seed", "stream")
        }
        kwargs = {k: v for k, v in kwargs.items() if v is not None}
    else:
        kwargs = {}
    kwargs.update({k: v for k, v in overrides.items() if v is not None})
    columns = _fitted_columns(run_dir)
    if columns is not None and data not in BUILTIN and "schema" not in kwargs:
        # a user's table is read with the columns the model was fitted on (types, level
        # codes), never re-inferred: another file or sample may order its labels otherwise
        kwargs["schema"] = columns
    dataset = load(data, **kwargs)
    if dataset.extra.get("vocab") is not None and data != source.get("source"):
        dataset = _in_run_vocabulary(dataset, run_dir)
    return dataset


def _fitted_columns(run_dir: str | os.PathLike) -> Any:
    """The table columns the run's model was fitted on, or None (not a table run)."""
    from ptheta.data.spec import DataSpec

    spec = read_config(run_dir).get("data", {}).get("spec")
    if not isinstance(spec, dict) or spec.get("kind") != "table":
        return None
    return DataSpec.from_json(spec).columns


def _in_run_vocabulary(data: Dataset, run_dir: str | os.PathLike) -> Dataset:
    """Text ``data`` (read with its own vocabulary) re-encoded in the vocabulary of the
    run's training text: a model's token i is the character or word its training text
    numbered i, which another file numbers by its own sorted tokens. Tokens the training
    text never had (probability zero under the model) are a `DataError` naming them."""
    try:
        trained = load_run_data(run_dir).extra.get("vocab")
    except DataError as e:
        raise DataError(
            f"{data.name} is text, whose tokens must be numbered as in the run's training "
            f"text, but that could not be read again ({e})"
        ) from None
    vocab = list(data.extra["vocab"])
    if trained is None or list(trained) == vocab:
        return data
    index = {token: i for i, token in enumerate(trained)}
    unseen = [token for token in vocab if token not in index]
    if unseen:
        shown = ", ".join(repr(t) for t in unseen[:10]) + (", ..." if len(unseen) > 10 else "")
        raise DataError(
            f"{data.name} holds {len(unseen)} token(s) that the run's training text never had "
            f"({shown}); the model gives them probability zero: remove them, or fit on text "
            "that has them"
        )
    code = np.array([index[token] for token in vocab], dtype=np.int64)
    spec = replace(data.spec, n_categories=len(trained))

    def recode(part: Split) -> Split:
        x = code[part.x]
        if part.lengths is not None:  # padding stays zeros
            x = np.where(np.arange(x.shape[1]) < part.lengths[:, None], x, 0)
        return replace(part, x=x, spec=spec)

    return replace(
        data,
        spec=spec,
        train=recode(data.train),
        val=recode(data.val),
        test=recode(data.test),
        extra={**data.extra, "vocab": list(trained)},
    )


def examples(split: Split) -> Any:
    """What to hand a model to score ``split``: the `Split` itself when it holds
    variable-length sequences (its padded ``x`` alone would read the padding as data),
    its ``x`` otherwise."""
    return split if split.lengths is not None else split.x


def check_scorable(model: GenerativeModel, split: Split, what: str = "the data") -> None:
    """Refuse variable-length sequences for a model of fixed-length examples, whose
    ``score_samples`` would read the padding after each end as data."""
    if split.lengths is None or model.fitted_spec.variable_length:
        return
    lengths = np.asarray(split.lengths)
    raise DataError(
        f"{what} are {len(lengths)} sequences of {lengths.min()}-{lengths.max()} steps, but "
        f"{model.name!r} was fitted on examples of one fixed shape "
        f"{model.fitted_spec.event_shape}; score it on data of that shape, or fit a family "
        "that models variable-length sequences (`ptheta models` marks them 'any length')"
    )


def _share(deadline: float | None, splits_left: int) -> float | None:
    """Seconds for the next split: an equal share of what is left before ``deadline``
    for each of the ``splits_left`` splits still to score (None: no deadline)."""
    if deadline is None:
        return None
    return max(deadline - time.perf_counter(), 0.0) / splits_left


def evaluate_run(
    model: GenerativeModel,
    data: Dataset,
    splits: list[str],
    *,
    rows: int | None = None,
    seconds: float | None = None,
    verbose: bool = False,
) -> list[dict[str, Any]]:
    """One NLL summary row per split (variable-length sequences: with ``n_steps``,
    ``nll_per_step`` and ``bits_per_dim`` per step, each sequence's end a step), scored in
    chunks (a progress bar with ``verbose``); with ``rows``, on a seeded random subset of
    at most that many rows of each split; with ``seconds``, of as many rows as fit in
    that time, shared equally by the splits (at least two rows each: see
    :func:`score_split` and :func:`describe_subset`)."""
    deadline = None if seconds is None else time.perf_counter() + seconds
    out = []
    for i, split in enumerate(splits):
        what = f"the {split} split of {data.name!r}"
        summary = score_split(
            model, data.split(split), split=split, rows=rows,
            seconds=_share(deadline, len(splits) - i), verbose=verbose, what=what,
        )  # fmt: skip
        if summary.get("subset") == "max_time" and seconds is not None:
            summary["subset"] = "eval_max_time"  # the budget of `ptheta eval --max-time`
        out.append({"split": split, **summary})
    return out


def scores_table(model: GenerativeModel, data: Dataset, split: str) -> dict[str, np.ndarray]:
    """Per-example log-likelihoods, each sequence's length for variable-length sequences,
    and labels where the data have them."""
    part = data.split(split)
    check_scorable(model, part, f"the {split} split of {data.name!r}")
    cols: dict[str, np.ndarray] = {
        "index": np.arange(len(part)),
        "log_prob": model.score_samples(examples(part)),
    }
    if part.lengths is not None:
        cols["length"] = np.asarray(part.lengths, dtype=np.int64)
    if part.y is not None:
        cols["label"] = part.y
    return cols
