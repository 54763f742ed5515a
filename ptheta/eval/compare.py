"""`compare`: fit several models on one split under a time budget, and write one report."""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import re
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ptheta import __version__
from ptheta.data import Dataset
from ptheta.errors import ParameterError, PthetaError, unknown_name
from ptheta.eval.per_step import END_NOTE, per_step_unit
from ptheta.eval.plots import curves_figure, nll_bar_figure
from ptheta.io import atomic_write_bytes, atomic_write_json, atomic_write_text
from ptheta.models import REGISTRY, GenerativeModel, get_model_class, make, with_preset
from ptheta.models.base import to_jsonable
from ptheta.runs import lock
from ptheta.runs.fitting import check_scorable, draw_within, fit_run, score_split
from ptheta.runs.layout import SAMPLES_PNG
from ptheta.runs.pictures import samples_figure, save_figure
from ptheta.runs.store import is_complete, load_run, read_config, read_metrics

SCHEMA = 1
REPORT_JSON = "report.json"
REPORT_MD = "report.md"
NLL_PNG = "nll.png"
CACHE_JSON = "compare.json"  # in each run directory: what it was fitted (and evaluated) with
_UNITS = {"s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}
METRIC_KEYS = ("fd", "precision", "recall", "mmd", "memorisation")
# Table data: the synthetic-table metrics of ``ptheta.eval.synth.table_quality`` instead,
# named by this feature space (the metrics compare the tables' own columns).
TABLE_SPACE = "table"
TABLE_METRICS_NOTE = (
    "table metrics (as `ptheta synth` reports them) of the samples against the training "
    "split: col. fidelity = mean KS (count, continuous) or total variation (labels) "
    "distance of each column, 0 = same marginals; pair |Δ| = mean absolute difference of "
    "pairwise associations, 0 = same dependence; AUC = cross-validated detection AUC of "
    "real vs synthetic rows, 0.5 = indistinguishable; DCR share = synthetic rows closer "
    "to a training row than 5% of held-out rows are (the held-out share in brackets; much "
    "more than it: copying)"
)
SEQUENCE_METRICS_NOTE = (
    "sample metrics (FD, precision / recall, MMD, memorisation) compare examples of one "
    "fixed shape; not computed for variable-length sequences (see the samples pictures)"
)
LEGEND = (
    "NLL in nats per example on the test split, lower is better. '≤ x': an upper bound on "
    "the model's NLL for every example (a closed-form dequantisation bound); '≈ x': a "
    "stochastic estimate (IWAE, AIS, or a Monte-Carlo estimate of a diffusion or "
    "dequantisation bound), whose noise is part of the ± standard error; ± is the standard "
    "error of the mean over test examples; 'deq.' rows are continuous densities "
    "of x + u reported in the discrete units; '—': no likelihood (compare samples instead). "
    "'density' rows are continuous log-densities, comparable only with each other. "
    "Memorisation < 1: samples sit closer to training points than held-out data do."
)


MIXED_NOTE = (
    "'mixed' rows model a table of discrete and continuous columns: −log of a probability "
    "times a density, comparable only with other models of the same table"
)


# Why "all" and "demo" leave classifiers out, whether or not the data have labels.
CLASSIFIER_SKIPPED = "a classifier: compare scores p(x); see `ptheta classify` for p(y | x)"
# ... and where the data have labels, the command that compares its classification.
CLASSIFIER_WITH_LABELS = (
    "a classifier, and compare scores p(x) only; the data have labels: compare its "
    "classification with `ptheta classify --model {name}` and the same --data"
)
# Why they leave out families of fixed-length examples on variable-length sequences.
FIXED_LENGTH_SKIPPED = "models examples of one fixed shape, not sequences of any length"
# Why they leave out sequence families on images of shape (C, H, W): the first axis, which
# such a family reads in order, is the colour channel.
SEQUENCE_ON_IMAGES_SKIPPED = (
    "models sequences read in order along the examples' first axis, and these examples are "
    "images of shape (C, H, W); name it in --models to fit it on them anyway"
)


# --------------------------------------------------------------------------- inputs
def parse_budget(text: str | float | int) -> float:
    """A time budget in seconds from ``"90s"``, ``"5m"``, ``"1.5h"`` or a number of seconds.

    Example:
        >>> parse_budget("5m"), parse_budget("90s"), parse_budget(30)
        (300.0, 90.0, 30.0)
    """
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        seconds = float(text)
    else:
        match = re.fullmatch(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([a-z]*)\s*", str(text).lower())
        if match is None or match.group(2) not in ("", *_UNITS):
            raise ParameterError(
                f"budget {text!r} is not a duration; write a number with s, m or h, "
                "e.g. 90s, 5m, 1h"
            )
        seconds = float(match.group(1)) * _UNITS.get(match.group(2), 1.0)
    if not math.isfinite(seconds) or seconds <= 0:
        raise ParameterError(f"budget must be a positive duration, got {text!r} (e.g. 5m)")
    return seconds


def select_models(
    models: str | Sequence[str], data: Dataset
) -> tuple[list[str], list[dict[str, str]]]:
    """The model names to fit, and the registered families ``"all"`` skipped (with why).

    ``models`` is ``"all"``, ``"demo"``, a comma-separated string or a list of registry
    names. ``"all"`` takes every registered family that accepts the data kind, skipping
    those that need class labels (compare scores p(x)) or images the data do not have;
    ``"demo"`` does the same among the families that declare a ``demo`` preset (and
    :func:`compare` starts each from that preset). On variable-length sequences both skip
    the families that model fixed-length examples only; on images of shape (C, H, W) the
    families that model sequences (``needs_sequence``: they would read the colour channel
    as the time axis). Flat examples (D,) stay sequences for them, images or not: a
    family reading the pixels in raster order is a model of the image. Named
    models are always attempted: one that refuses the data gives a failed row, not an error.
    """
    if isinstance(models, str):
        models = [m.strip() for m in models.split(",") if m.strip()]
    models = list(dict.fromkeys(models))  # order kept, repeats dropped
    if not models:
        raise ParameterError("no models given; e.g. --models independent,gmm,made or all")
    lineup = models[0] if models in (["all"], ["demo"]) else None
    if lineup is None:
        for word in ("all", "demo"):
            if word in models:
                raise ParameterError(f"--models {word} cannot be combined with model names")
        for name in models:
            get_model_class(name)  # unknown names: an error with suggestions
        return models, []
    chosen, skipped = [], []
    spec = data.spec
    has_image = spec.image_shape is not None or len(spec.event_shape) == 3
    labelled = data.train.y is not None
    for name in REGISTRY if lineup == "all" else with_preset("demo"):
        caps = get_model_class(name)().capabilities()
        if not caps.fits(spec.kind):
            continue
        if spec.variable_length and not caps.variable_length:
            skipped.append({"model": name, "reason": FIXED_LENGTH_SKIPPED})
        elif caps.needs_labels:
            why = CLASSIFIER_WITH_LABELS.format(name=name) if labelled else CLASSIFIER_SKIPPED
            skipped.append({"model": name, "reason": why})
        elif caps.needs_image and not has_image:
            skipped.append({"model": name, "reason": "needs image-shaped data"})
        elif caps.needs_sequence and len(spec.event_shape) == 3:
            skipped.append({"model": name, "reason": SEQUENCE_ON_IMAGES_SKIPPED})
        else:
            chosen.append(name)
    return chosen, skipped


def _is_demo_line_up(models: str | Sequence[str]) -> bool:
    listed = [m.strip() for m in models.split(",")] if isinstance(models, str) else list(models)
    return listed == ["demo"]


def resolve_model_params(
    name: str,
    *,
    budget_seconds: float,
    quick: bool = False,
    overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Hyper-parameters of one compared model: its defaults (or ``quick_params``), then the
    time budget for models that declare a ``max_time``, then the user's ``overrides``.

    A neural model gets ``max_time`` = the budget; with its default ``epochs="auto"`` the
    budget (or early stopping on the validation split) then ends training, and the cosine
    learning-rate schedule runs over the budget. A classical family that declares ``max_time`` (an
    iterative fit that can stop early) gets the budget alone; the others fit in closed form
    or by EM to convergence, with no time limit.
    """
    cls = get_model_class(name)
    valid = cls._get_param_names()
    params: dict[str, Any] = dict(cls.quick_params) if quick else {}
    if "max_time" in valid:  # any family with a time limit: neural, or EM that declares one
        params["max_time"] = float(budget_seconds)
    for key, value in (overrides or {}).items():
        if key not in valid:
            raise unknown_name(
                f"parameter of {name!r}:", key, valid, hint=f"see `ptheta models {name}`"
            )
        params[key] = value
    return params


# --------------------------------------------------------------------------- table cells
def units_of(model: GenerativeModel) -> str:
    """``discrete``, ``dequantised``, ``continuous`` or ``mixed``: the units of a fitted
    model's NLL.

    A continuous density of dequantised discrete data (flows, gmm on digits) reports its
    likelihood in discrete units through the dequantisation. ``mixed``: a table with
    discrete and continuous columns, −log of a probability times a density, comparable only
    with other models of the same table.
    """
    caps = model.capabilities()
    if caps.units in ("continuous", "mixed"):
        return caps.units
    return "dequantised" if caps.dequantised else "discrete"


def kind_label(likelihood: str | None, units: str | None) -> str:
    """Table text for a row's likelihood: ``exact``, ``bound (deq.)`` (a dequantisation
    bound), ``exact density``, ``none`` or ``failed``."""
    if likelihood is None:
        return "failed"
    if likelihood == "none":
        return "none"
    if units == "continuous":
        return f"{likelihood} density"
    if units == "mixed":
        return f"{likelihood} (mixed)"
    return f"{likelihood} (deq.)" if units == "dequantised" else likelihood


def nll_text(
    likelihood: str | None, value: float | None, digits: int = 2, sem: float | None = None
) -> str:
    """``135.02`` (exact), ``≤ 135.02`` (bound), ``≈ 135.02`` (estimate), ``—`` (none),
    followed by ``± sem`` where given."""
    if value is None or likelihood in (None, "none") or not math.isfinite(value):
        return "—"
    prefix = {"bound": "≤ ", "estimate": "≈ "}.get(likelihood, "")
    return f"{prefix}{value:.{digits}f}" + ("" if sem is None else f" ± {sem:.{digits}f}")


def row_order(row: dict[str, Any]) -> tuple:
    """Sort key: discrete-unit NLLs, then mixed (probability × density), then densities,
    then no likelihood, then failures."""
    if row["status"] != "ok":
        return (5, 0.0, row["model"])
    if row["test_nll_nats"] is None:
        return (4, 0.0, row["model"])
    rank = {"mixed": 1, "continuous": 2}.get(row["units"], 0)
    return (rank, row["test_nll_nats"], row["model"])


# --------------------------------------------------------------------------- compare
def _now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def compare(
    data: Dataset,
    models: str | Sequence[str],
    out: str | os.PathLike,
    *,
    budget_seconds: float,
    quick: bool | Collection[str] = False,
    overrides: dict[str, dict[str, Any]] | None = None,
    force: bool = False,
    n_samples: int = 500,
    data_source: dict[str, Any] | None = None,
    verbose: bool = False,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Fit ``models`` on the same split of ``data`` and write the compare report to ``out``.

    Every model trains on ``data.train`` (neural ones stop early on ``data.val`` or at the
    budget), is scored on ``data.test`` and samples ``n_samples`` examples for the sample
    metrics. Each run lives in ``out/runs/<model>/`` and is refitted only when its
    hyper-parameters, the data fingerprint, the budget or ptheta's version changed (or with
    ``force``). A model that fails gives a row with status ``"failed"`` and a one-line error.

    Arguments:
        data: the data set (its fixed train / val / test splits).
        models: ``"all"``, comma-separated names or a list (see :func:`select_models`).
        out: the report folder.
        budget_seconds: training time per neural model (see :func:`parse_budget`).
        quick: True (all models) or a set of names to start from ``quick_params``.
        overrides: per-model hyper-parameters, ``{"gmm": {"n_components": 10}}``.
        force: refit every model.
        n_samples: samples per model for timing, pictures and sample metrics.
        data_source: how to load the data again (recorded in each run directory).
        verbose: progress bars while training.
        log: called with one line per step (e.g. ``console.print``).

    Returns:
        the report (the content of ``out/report.json``).

    Example:
        >>> from ptheta.data import load
        >>> report = compare(load("digits"), "independent,gmm", "reports/digits",
        ...                  budget_seconds=60)
        >>> [(r["model"], r["likelihood"]) for r in report["rows"]]
        [('independent', 'exact'), ('gmm', 'bound')]

    References:
        Theis, van den Oord & Bethge (2016), A note on the evaluation of generative models,
        ICLR (why bounds, estimates and densities must not be mixed silently).
    """
    log = log or (lambda line: None)
    out = Path(out)
    if isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < 2:
        raise ParameterError(f"n_samples must be a whole number ≥ 2, got {n_samples!r}")
    names, skipped = select_models(models, data)
    overrides = dict(overrides or {})
    if _is_demo_line_up(models) and quick is not True:
        # the demo line-up starts from each family's demo preset (a DDPM with a short
        # schedule: its bound costs T network passes per test example), the user's on top
        overrides = {n: {**(REGISTRY[n].preset("demo") or {}), **overrides.get(n, {})}
                     for n in names}  # fmt: skip
    for name in overrides:
        if name not in names:
            raise ParameterError(
                f"settings given for {name!r}, which is not among the compared models "
                f"({', '.join(names) or 'none'}); add it to --models or drop its settings"
            )
    quick_names = set(names) if quick is True else set(quick or ())
    params = {
        name: resolve_model_params(
            name,
            budget_seconds=budget_seconds,
            quick=name in quick_names,
            overrides=overrides.get(name),
        )
        for name in names
    }
    # one compare writes a report folder at a time (its runs are locked each in turn)
    with lock.exclusive(out, "compare report folder"):
        metrics = _Metrics(data, out / "features")
        source = data_source or {"source": data.name}
        rows = []
        for name in names:
            try:
                row = _compare_one(
                    name, params[name], data, out, force=force, n_samples=n_samples,
                    source=source, metrics=metrics, verbose=verbose, log=log,
                    budget_seconds=budget_seconds,
                )  # fmt: skip
            except Exception as e:  # one model's failure must not stop the others
                row = _failed_row(name, e, metrics.keys)
            done = "cached, not refitted" if row["cached"] else row["error"] or "done"
            log(f"{name}: {row['status']} ({done})")
            rows.append(row)
        rows.sort(key=row_order)
        report = {
            "schema": SCHEMA,
            "data": data.name,
            "data_kind": data.spec.describe(),
            "created": _dt.datetime.now(_dt.UTC)
            .isoformat(timespec="seconds")
            .replace("+00:00", "Z"),
            "budget_seconds": budget_seconds,
            "n_samples": n_samples,
            "split": {"train": len(data.train), "val": len(data.val), "test": len(data.test)},
            "variable_length": data.spec.variable_length,
            "per_step_unit": per_step_unit(data.spec),
            "feature_space": metrics.feature_space,
            "metrics_note": metrics.note(),
            "true_entropy": data.entropy,
            "skipped": skipped,
            "rows": rows,
        }
        write_report(report, out)
    return report


def _compare_one(
    name: str,
    params: dict[str, Any],
    data: Dataset,
    out: Path,
    *,
    force: bool,
    n_samples: int,
    source: dict[str, Any],
    metrics: _Metrics,
    verbose: bool,
    log: Callable[[str], None],
    budget_seconds: float | None = None,
) -> dict[str, Any]:
    run_dir = out / "runs" / name
    # the budget enters through max_time: a new budget refits only the models it limits;
    # every parameter counts, defaults included (a family's new default refits its run);
    # another version of ptheta may fit (or store) a model differently
    resolved = to_jsonable(make(name, **params).get_params())
    key = {"model": name, "params": resolved, "data": data.fingerprint(), "v": __version__}
    cache = _read_cache(run_dir)
    cached = not force and cache.get("key") == key and is_complete(run_dir)
    if not cached:
        log(f"{name}: fitting on {data.name} …")
        (run_dir / CACHE_JSON).unlink(missing_ok=True)  # a crash mid-fit leaves no stale key
        fit_run(name, params, data, run_dir, data_source=source, force=True, verbose=verbose,
                score_splits=())  # fmt: skip  # the test split is scored below
        cache = {"key": key}
        atomic_write_json(run_dir / CACHE_JSON, cache)
    eval_key = {"n_samples": n_samples, "metrics": metrics.available, "v": __version__,
                "budget": budget_seconds}  # fmt: skip
    if metrics.feature_space == TABLE_SPACE:  # rows of earlier versions lack these metrics
        eval_key["metric_keys"] = list(metrics.keys)
    if cached and cache.get("eval_key") == eval_key and "row" in cache:
        row = dict(cache["row"])
    else:
        row = _evaluate(name, run_dir, data, out, n_samples=n_samples, metrics=metrics,
                        budget_seconds=budget_seconds)  # fmt: skip
        if row["n_samples"] < n_samples or row["test_n_scored"] < len(data.test):
            log(f"{name}: within the budget, scored {row['test_n_scored']:,} of "
                f"{len(data.test):,} test examples and drew {row['n_samples']:,} of "
                f"{n_samples:,} samples")  # fmt: skip
        if name not in metrics.failed:  # without its metrics a row is computed again
            atomic_write_json(run_dir / CACHE_JSON, {**cache, "eval_key": eval_key, "row": row})
    row["cached"] = cached
    return row


def _evaluate(
    name: str,
    run_dir: Path,
    data: Dataset,
    out: Path,
    *,
    n_samples: int,
    metrics: _Metrics,
    budget_seconds: float | None = None,
) -> dict[str, Any]:
    """One model's row. Under a budget, scoring the test split and drawing the samples
    get half of it each: a seeded subset of the test split (its NLL then estimates the
    split's mean, with the standard error) and as many samples as a first draw of a few
    says fit (the row records both counts)."""
    model = load_run(run_dir)
    config = read_config(run_dir)
    check_scorable(model, data.test, f"the test split of {data.name!r}")
    share = None if budget_seconds is None else budget_seconds / 2
    test = score_split(model, data.test, split="test", seconds=share,
                       what=f"the test split of {data.name!r}")  # fmt: skip
    samples, n_drawn, sample_seconds = draw_within(model, n_samples, share)
    samples_png = Path("samples") / f"{name}.png"
    if (run_dir / SAMPLES_PNG).is_file():  # fit_run drew one grid already: not twice
        atomic_write_bytes(out / samples_png, (run_dir / SAMPLES_PNG).read_bytes())
    else:
        shown = min(n_drawn, 64)
        title = f"{name}: {shown} sample{'s' if shown != 1 else ''}"
        background = None if data.spec.variable_length else data.train.x[:2000]
        figure = samples_figure(samples, model.fitted_spec, data=background, title=title,
                                vocab=data.extra.get("vocab"))  # fmt: skip
        save_figure(figure, out / samples_png)
    curves_png = None
    epochs = [r for r in read_metrics(run_dir) if r.get("event") == "epoch"]
    if epochs:
        curves_png = Path("curves") / f"{name}.png"
        save_figure(curves_figure(epochs, title=f"{name}: training"), out / curves_png)
    return {
        "model": name,
        "family": type(model).family,
        "likelihood": model.likelihood_,
        "units": units_of(model),
        "test_nll_nats": test["nll_nats"],
        "test_nll_bits_per_dim": test["bits_per_dim"],
        "test_nll_sem": test["std_err"],
        "test_n_scored": int(test.get("n", len(data.test))),
        "n_samples": n_drawn,
        "test_nll_per_step": test.get("nll_per_step"),
        "test_n_steps": test.get("n_steps"),
        "n_parameters": model.n_parameters(),
        "fit_seconds": config.get("extra", {}).get("fit_seconds"),
        "sample_seconds": sample_seconds,
        **metrics(name, samples),
        "status": "ok",
        "error": None,
        "cached": False,
        "run_dir": (Path("runs") / name).as_posix(),
        "samples_png": samples_png.as_posix(),
        "curves_png": None if curves_png is None else curves_png.as_posix(),
    }


def _failed_row(name: str, e: Exception, keys: Sequence[str] = METRIC_KEYS) -> dict[str, Any]:
    lines = str(e).strip().splitlines()
    text = lines[0] if lines else ""
    error = text if isinstance(e, PthetaError) else f"{type(e).__name__}: {text}"
    cls = REGISTRY.get(name)
    return {
        "model": name,
        "family": getattr(cls, "family", None),
        "likelihood": None,
        "units": None,
        "test_nll_nats": None,
        "test_nll_bits_per_dim": None,
        "test_nll_sem": None,
        "test_nll_per_step": None,
        "test_n_steps": None,
        "n_parameters": None,
        "fit_seconds": None,
        "sample_seconds": None,
        **dict.fromkeys(keys),
        "status": "failed",
        "error": error[:300],
        "cached": False,
        "run_dir": None,
        "samples_png": None,
        "curves_png": None,
    }


def _read_cache(run_dir: Path) -> dict[str, Any]:
    try:
        cache = json.loads((run_dir / CACHE_JSON).read_text())
    except (OSError, ValueError):
        return {}
    return cache if isinstance(cache, dict) else {}


class _Metrics:
    """Sample-quality metrics of ``ptheta.eval.metrics``, with one feature extractor per
    compare built on first use; where they cannot be computed every value is None and
    ``note()`` says why (and for which models). On table data, the synthetic-table
    metrics of ``ptheta.eval.synth.table_quality`` (keys ``TABLE_METRIC_KEYS``) instead,
    with no feature extractor."""

    def __init__(self, data: Dataset, cache_dir: Path) -> None:
        self.data, self.cache_dir = data, cache_dir
        self._unavailable: str | None = None
        self.failed: dict[str, str] = {}  # model → why its metrics are missing
        self._extractor: Any = None
        self.keys: tuple[str, ...] = METRIC_KEYS
        if data.spec.kind == "table":
            from ptheta.eval.synth import TABLE_METRIC_KEYS, table_quality

            self._quality = table_quality
            self.keys = TABLE_METRIC_KEYS
            self.available = True
            self.feature_space = TABLE_SPACE
            return
        if data.spec.variable_length:
            self._quality = None
            self.available = False
            self._unavailable = SEQUENCE_METRICS_NOTE
            self.feature_space = None
            return
        try:
            from ptheta.eval.features import feature_extractor, feature_space_name
            from ptheta.eval.metrics import sample_quality
        except ImportError:
            self._quality = None
            self.available = False
            self._unavailable = (
                "sample metrics not available (ptheta.eval.metrics is not installed)"
            )
            self.feature_space = None
            return
        self._quality, self._build = sample_quality, feature_extractor
        self.available = True
        # named up front: when every row is cached no extractor is ever built
        self.feature_space = feature_space_name(data)

    def note(self) -> str | None:
        """Why metrics are missing: for every model, or model by model."""
        if self._unavailable is not None:
            return self._unavailable
        return "; ".join(f"{m}: {why}" for m, why in self.failed.items()) or None

    def __call__(self, name: str, samples: np.ndarray) -> dict[str, Any]:
        empty: dict[str, Any] = dict.fromkeys(self.keys)
        if self._quality is None:
            return empty
        try:
            if self.feature_space == TABLE_SPACE:
                result = self._quality(samples, self.data, seed=0)
                return {k: _table_value(result.get(k)) for k in self.keys}
            if self._extractor is None:
                self._extractor = self._build(self.data, cache_dir=self.cache_dir)
            result = self._quality(samples, self.data, extractor=self._extractor)
        except Exception as e:  # auxiliary numbers: say why they are missing, keep the row
            lines = str(e).strip().splitlines() or [""]
            self.failed[name] = f"sample metrics not computed: {type(e).__name__}: {lines[0][:200]}"
            return empty
        self.feature_space = result.get("feature_space", self.feature_space)
        return {k: _number(result.get(k)) for k in METRIC_KEYS}


def _table_value(value: Any) -> Any:
    """A table metric: a flag as a bool (``copying``), a number as a finite float or None."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    return _number(value)


def _number(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


# --------------------------------------------------------------------------- report
def table_columns(feature_space: str | None, per_step: str | None = None) -> list[str]:
    """Column titles of the compare table (terminal and Markdown). ``per_step`` (the
    report's ``per_step_unit``, e.g. ``bits/token``) is given for variable-length
    sequences: the NLL is then per sequence, followed by nats per step and bits per step
    (or per value of a step) under that name."""
    fd = feature_space or "FD"
    if feature_space == TABLE_SPACE:  # the synthetic-table metrics
        return ["model", "family", "likelihood", "NLL (nats) ± s.e.", "bits/dim", "params",
                "fit (s)", "sample (s)", "col. fidelity", "pair |Δ|", "AUC logistic",
                "AUC boosting", "DCR share (holdout)"]  # fmt: skip
    if fd.startswith("raw-"):  # standardised raw data: the column still holds Fréchet distances
        fd = "FD (raw)"
    if per_step is None:
        nll = ["NLL (nats) ± s.e.", "bits/dim"]
    else:
        nll = ["NLL (nats/seq.) ± s.e.", "nats/step", per_step]
    return ["model", "family", "likelihood", *nll, "params", "fit (s)", "sample (s)", fd,
            "prec. / recall", "memorisation"]  # fmt: skip


def table_rows(report: dict[str, Any]) -> list[list[Any]]:
    """One list of cells per row of ``report`` (numbers left to the caller's formatter)."""
    out = []
    per_step = report.get("per_step_unit") is not None
    table = report.get("feature_space") == TABLE_SPACE
    for r in report["rows"]:
        lik = r["likelihood"]
        bpd = r["test_nll_bits_per_dim"]
        nll = [nll_text(lik, r["test_nll_nats"], sem=r["test_nll_sem"])]
        if per_step:
            step = r.get("test_nll_per_step")
            nll.append(None if step is None else nll_text(lik, step, 3))
        nll.append(None if bpd is None else nll_text(lik, bpd, 3))
        if table:
            metrics = [
                _fixed(r.get("column_fidelity"), 3), _fixed(r.get("pair_diff"), 3),
                _fixed(r.get("auc_logistic"), 3), _fixed(r.get("auc_boosting"), 3),
                _dcr(r.get("dcr_share"), r.get("dcr_share_holdout"), r.get("copying")),
            ]  # fmt: skip
        else:
            metrics = [_fixed(r["fd"], 1), _pair(r["precision"], r["recall"]),
                       _fixed(r["memorisation"])]  # fmt: skip
        out.append([
            r["model"], r["family"], kind_label(lik, r["units"]), *nll,
            r["n_parameters"], _fixed(r["fit_seconds"]), _fixed(r["sample_seconds"]),
            *metrics,
        ])  # fmt: skip
    return out


def _dcr(share: float | None, holdout: float | None, copying: bool | None) -> str | None:
    """``4.2% (5.0%)``: synthetic rows nearer to training than held-out's 5% quantile, the
    held-out share in brackets; ``COPYING`` where the test says so."""
    if share is None or holdout is None:
        return None
    return f"{share:.1%} ({holdout:.1%})" + (" COPYING" if copying else "")


def _fixed(value: float | None, digits: int = 2) -> str | None:
    return None if value is None else f"{value:.{digits}f}"


def _pair(a: float | None, b: float | None) -> str | None:
    return None if a is None or b is None else f"{a:.2f} / {b:.2f}"


def table_notes(report: dict[str, Any]) -> list[str]:
    """Lines to print under the table: failures, skipped families, cached runs, metrics."""
    notes = []
    if report.get("per_step_unit") is not None:
        notes.append(f"NLL per sequence on the test split; {END_NOTE}")
    for r in report["rows"]:
        if r["status"] != "ok":
            notes.append(f"{r['model']} failed: {r['error']}")
    for s in report.get("skipped", []):
        notes.append(f"{s['model']} skipped: {s['reason']}")
    space = report.get("feature_space") or ""
    if space == TABLE_SPACE:
        notes.append(TABLE_METRICS_NOTE)
    if space.startswith("raw-"):
        notes.append(f"FD, precision / recall and MMD in {space}: the standardised raw values "
                     "(no labels to train a feature classifier on)")  # fmt: skip
    n_test, n_asked = report["split"]["test"], report.get("n_samples")
    for r in report["rows"]:
        scored, drawn = r.get("test_n_scored"), r.get("n_samples")
        parts = []
        if scored is not None and scored < n_test:
            parts.append(f"its test NLL on a seeded subset of {scored:,} of {n_test:,} "
                         "examples (± its standard error)")  # fmt: skip
        if drawn is not None and n_asked is not None and drawn < n_asked:
            parts.append(f"its sample metrics from {drawn:,} of {n_asked:,} samples")
        if parts:
            notes.append(f"{r['model']}, within the budget: {' and '.join(parts)}")
    cached = [r["model"] for r in report["rows"] if r.get("cached")]
    if cached:
        notes.append(f"cached (not refitted): {', '.join(cached)}")
    if report.get("metrics_note"):
        notes.append(report["metrics_note"])
    if any(r["units"] == "mixed" for r in report["rows"]):
        notes.append(MIXED_NOTE)
    if report.get("true_entropy") is not None:
        notes.append(
            f"true entropy of the data (the floor of any model's expected NLL; a test-set mean "
            f"may dip below it by its standard error): {report['true_entropy']:.2f}"
        )
    return notes


def write_report(report: dict[str, Any], out: str | os.PathLike) -> None:
    """Write ``report.json``, ``nll.png`` and ``report.md`` into ``out``."""
    out = Path(out)
    atomic_write_json(out / REPORT_JSON, report)
    title = f"Test NLL on {report['data']} (lower is better)"
    per_step = report.get("per_step_unit") is not None
    save_figure(nll_bar_figure(report["rows"], title=title, per_step=per_step), out / NLL_PNG)
    atomic_write_text(out / REPORT_MD, report_markdown(report))


def report_markdown(report: dict[str, Any]) -> str:
    """The report as Markdown: table, legend, NLL chart, sample grids, training curves."""
    cols = table_columns(report["feature_space"], report.get("per_step_unit"))
    lines = [
        f"# ptheta compare: {report['data']}",
        "",
        f"Data: {report['data']} ({report.get('data_kind', '')}); split "
        + ", ".join(f"{k} {v}" for k, v in report["split"].items())
        + f". Budget per neural model: {report['budget_seconds']:g} s. "
        f"Created {report['created']}.",
        "",
        "| " + " | ".join(_md_cell(c) for c in cols) + " |",  # "pair |Δ|" escaped
        "|" + "|".join("---" for _ in cols) + "|",
    ]
    for cells in table_rows(report):
        lines.append("| " + " | ".join(_md_cell(c) for c in cells) + " |")
    lines += ["", LEGEND, ""]
    lines += [f"- {note}" for note in table_notes(report)]
    lines += ["", "## Test NLL", "", f"![NLL per model]({NLL_PNG})", ""]
    if any(r["units"] == "continuous" for r in report["rows"]) and any(
        r["units"] in ("discrete", "dequantised") for r in report["rows"]
    ):
        lines += ["Densities (continuous units) are drawn on their own axis: a log-density "
                  "is not comparable with a discrete NLL.", ""]  # fmt: skip
    ok = [r for r in report["rows"] if r["status"] == "ok"]
    lines += ["## Samples", ""]
    for r in ok:
        lines += [f"### {r['model']}", "", f"![{r['model']} samples]({r['samples_png']})", ""]
    curves = [r for r in ok if r.get("curves_png")]
    if curves:
        lines += ["## Training curves", ""]
        for r in curves:
            lines += [f"### {r['model']}", "", f"![{r['model']} training]({r['curves_png']})", ""]
    return "\n".join(lines)


def _md_cell(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.3g}" if value != 0 and abs(value) < 0.01 else f"{value:.2f}"
    return str(value).replace("|", "\\|")
