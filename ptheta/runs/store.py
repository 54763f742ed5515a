"""Save and load fitted models: config (JSON), weights (safetensors), metrics (JSON lines).

A run directory holds everything needed to rebuild a fitted model, and nothing that is
unpickled: ``config.json`` (model name, hyper-parameters, fitted scalars, data spec and
fingerprint, versions), ``weights.safetensors`` (every fitted array), ``metrics.jsonl``,
and last the ``COMPLETE`` marker, which holds the checksums of the config and the weights.
Every file is written atomically. Loading refuses a run without the marker (interrupted
while writing), a config or weights that do not match it (edited, or mixed up with
another run), and arrays whose shapes disagree with the parameters.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import platform
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from safetensors import SafetensorError, safe_open
from safetensors.numpy import load as st_load
from safetensors.numpy import save as st_save

from ptheta.data.ragged import Sequences, check_sequences
from ptheta.data.spec import check_values
from ptheta.errors import PthetaError, RunDirError
from ptheta.io import atomic_write_bytes, atomic_write_json, atomic_write_text, dumps
from ptheta.models import GenerativeModel, get_model_class
from ptheta.models.base import to_jsonable
from ptheta.runs.layout import COMPLETE, CONFIG, METRICS, WEIGHTS, owned_files

FORMAT = "ptheta-run"
# 2: the COMPLETE marker with the config's and the weights' checksums
FORMAT_VERSION = 2


def write_metrics(run_dir: str | os.PathLike, records: list[dict[str, Any]]) -> None:
    """Replace ``metrics.jsonl`` with ``records`` (one JSON object per line)."""
    atomic_write_text(Path(run_dir) / METRICS, "".join(dumps(r) + "\n" for r in records))


def read_metrics(run_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """Records of ``metrics.jsonl``; a torn last line (an interrupted append) is skipped."""
    path = Path(run_dir) / METRICS
    if not path.exists():
        return []
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise RunDirError(
            f"{path} is corrupted (not UTF-8 text); delete it, or start the run again with --force"
        ) from None
    out = []
    for line in text.splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict):
            out.append(record)
    return out


# --------------------------------------------------------------------------- save / load
def versions() -> dict[str, str]:
    import sklearn
    import torch

    from ptheta import __version__

    return {
        "ptheta": __version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "torch": torch.__version__,
        "scikit-learn": sklearn.__version__,
    }


def save_run(
    model: GenerativeModel,
    run_dir: str | os.PathLike,
    *,
    data: dict[str, Any] | None = None,
    metrics: list[dict[str, Any]] | None = None,
    extra: dict[str, Any] | None = None,
    complete: bool = True,
) -> Path:
    """Write a fitted ``model`` to ``run_dir`` (created if needed) and return its path.

    ``data`` describes the training data (name, fingerprint, sizes); ``extra`` is any
    other JSON-able information (fit time, command line). With ``complete`` the
    ``COMPLETE`` marker is written last; a caller that writes more files (pictures) passes
    False and calls :func:`mark_complete` when they are all in place.
    """
    run_dir = Path(run_dir)
    arrays, fitted = model.get_state()
    blob = st_save(arrays, metadata={"format": FORMAT, "model": model.name})
    raw_params = model.get_params(deep=False)
    params = {k: to_jsonable(v) for k, v in raw_params.items()}
    config = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model": model.name,
        "params": params,
        "tuple_params": sorted(k for k, v in raw_params.items() if isinstance(v, tuple)),
        "fitted": fitted,
        "data": data or {},
        "weights": WEIGHTS,
        "weights_sha256": hashlib.sha256(blob).hexdigest(),
        "versions": versions(),
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        **({"extra": extra} if extra else {}),
    }
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / COMPLETE).unlink(missing_ok=True)  # incomplete until every file is written
    # weights first: a config only ever points at weights that are complete
    atomic_write_bytes(run_dir / WEIGHTS, blob)
    atomic_write_json(run_dir / CONFIG, config)
    if metrics is not None:
        write_metrics(run_dir, metrics)
    if complete:
        mark_complete(run_dir)
    return run_dir


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def mark_complete(run_dir: str | os.PathLike) -> None:
    """Write the ``COMPLETE`` marker, last: the checksums of config.json and the weights."""
    run_dir = Path(run_dir)
    marker = {
        "format": FORMAT,
        "config_sha256": _sha256(run_dir / CONFIG),
        "weights_sha256": _sha256(run_dir / WEIGHTS),
    }
    atomic_write_json(run_dir / COMPLETE, marker)


def is_complete(run_dir: str | os.PathLike) -> bool:
    """Whether ``run_dir`` holds a complete run (its marker exists)."""
    return (Path(run_dir) / COMPLETE).is_file()


def _check_complete(run_dir: Path) -> None:
    """Refuse a run whose marker is missing, or whose config no longer matches it."""
    path = run_dir / COMPLETE
    finish = (
        "finish it with the same `ptheta fit` command and --resume, or start again with --force"
    )
    if not path.is_file():
        raise RunDirError(
            f"{str(run_dir)!r} holds an incomplete run (it has no {COMPLETE} marker: the "
            f"writing was interrupted, or it was written by an older ptheta); {finish}"
        )
    try:
        marker = json.loads(path.read_text(encoding="utf-8"))
        expected = marker["config_sha256"]
    except (OSError, ValueError, KeyError, TypeError):
        raise RunDirError(f"{path} is corrupted; {finish}") from None
    try:
        actual = _sha256(run_dir / CONFIG)
    except OSError as e:
        raise RunDirError(
            f"could not read {run_dir / CONFIG} ({e.strerror or e}); check its permissions, or "
            "re-run `ptheta fit`"
        ) from None
    if actual != expected:
        raise RunDirError(
            f"{run_dir / CONFIG} was changed after the run was written (its checksum differs "
            f"from {COMPLETE}'s): the run is edited or mixed up with another; re-run "
            "`ptheta fit` instead of editing a run"
        )


# The entries of config.json that loading relies on, with their JSON types; "required"
# ones are in every config save_run writes.
_CONFIG_FIELDS: dict[str, tuple[type, bool]] = {
    "format_version": (int, True),
    "model": (str, True),
    "params": (dict, True),
    "fitted": (dict, True),
    "data": (dict, False),
    "weights": (str, False),
    "weights_sha256": (str, True),
    "tuple_params": (list, False),
    "versions": (dict, False),
    "extra": (dict, False),
}
_JSON_TYPE_NAMES = {int: "a whole number", str: "a string", dict: "an object", list: "a list"}


def _config_problem(config: dict[str, Any]) -> str | None:
    """What is missing or of the wrong type in a parsed config.json, or None."""
    for key, (kind, required) in _CONFIG_FIELDS.items():
        if key not in config:
            if required:
                return f"has no {key!r} entry"
            continue
        value = config[key]
        if not isinstance(value, kind) or isinstance(value, bool):
            return f"has {key}: {json.dumps(value)[:60]}, which should be {_JSON_TYPE_NAMES[kind]}"
    if config["format_version"] < 1:
        return f"has format_version {config['format_version']}; versions start at 1"
    if not config["model"]:
        return "has an empty 'model' entry"
    weights = config.get("weights", WEIGHTS)
    if weights in ("", ".", "..") or Path(weights).name != weights:
        return f"has weights: {weights!r}, which should be a file name inside the run directory"
    if not all(isinstance(k, str) for k in config.get("tuple_params", [])):
        return "has a 'tuple_params' entry that is not a list of parameter names"
    return None


def read_config(run_dir: str | os.PathLike) -> dict[str, Any]:
    """The parsed ``config.json`` of a run directory, with clear errors when it is not one.

    Every entry that loading relies on is checked for presence and JSON type, so a damaged
    config gives one :class:`RunDirError` saying what is wrong, not a traceback later.
    """
    run_dir = Path(run_dir)
    if not run_dir.exists():
        raise RunDirError(
            f"run directory {str(run_dir)!r} does not exist; create one with `ptheta fit`"
        )
    if not run_dir.is_dir():
        raise RunDirError(
            f"{str(run_dir)!r} is a file, not a run directory written by `ptheta fit`"
        )
    path = run_dir / CONFIG
    # save_run writes config.json last, so a fit that crashed part-way leaves none.
    if not path.exists() and owned_files(run_dir):
        raise RunDirError(
            f"{str(run_dir)!r} holds an interrupted run (no {CONFIG} yet); finish it with the "
            "same `ptheta fit` command and --resume, or start again with --force"
        )
    if not path.exists():
        raise RunDirError(
            f"{str(run_dir)!r} is not a ptheta run directory (no {CONFIG}); "
            "create one with `ptheta fit MODEL --data DATA --out DIR`"
        )
    if not path.is_file():
        raise RunDirError(
            f"{path} is not a file (a directory?), so {str(run_dir)!r} is not a ptheta run "
            "directory; remove it and re-run `ptheta fit`"
        )
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise RunDirError(
            f"{path} is corrupted (not valid JSON: {e}); re-run `ptheta fit` to recreate it"
        ) from None
    except OSError as e:
        raise RunDirError(
            f"could not read {path} ({e.strerror or e}); check its permissions, or re-run "
            "`ptheta fit`"
        ) from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise RunDirError(f"{path} was not written by ptheta (no 'format': '{FORMAT}' entry)")
    version = config.get("format_version")
    if isinstance(version, int) and not isinstance(version, bool) and version > FORMAT_VERSION:
        raise RunDirError(
            f"{path} has format version {version}, newer than this ptheta understands "
            f"({FORMAT_VERSION}); upgrade ptheta"
        )
    problem = _config_problem(config)
    if problem:
        raise RunDirError(
            f"{path} is corrupted or incomplete: it {problem}; re-run `ptheta fit` to recreate it"
        )
    return config


def _brief(e: BaseException) -> str:
    """One line naming an unexpected exception: its type and the first line of its text."""
    text = str(e).strip().splitlines()
    line = text[0] if text else ""
    if len(line) > 200:
        line = line[:200] + "..."
    return line if isinstance(e, PthetaError) else f"{type(e).__name__}: {line}"


def _check_restored(model: GenerativeModel, run_dir: Path) -> None:
    """Score one example of the fitted spec (sample one where the model has no likelihood):
    a cheap proof that the restored state is complete and consistent, so a missing or
    mismatched array fails here, at load time, not in the middle of the user's command.

    Sampling is not checked where there is a likelihood: a sequential sampler (PixelCNN on
    32×32 colour images) takes minutes for one example.
    """
    spec = model.fitted_spec
    dtype = np.int64 if spec.is_discrete else float
    if spec.variable_length:  # one sequence of one step: the cheapest to score
        example: Any = Sequences(np.zeros((1, 1, *spec.step_shape), dtype=dtype), np.ones(1))
    else:
        example = np.zeros((1, *spec.event_shape), dtype=dtype)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the user did not ask for this check
            if model.likelihood != "none":
                step = "scoring one example"
                score = model.score_samples(example)
                if score.shape != (1,) or np.isnan(score).any():
                    raise ValueError(f"score_samples gave {score.tolist()} for one example")
            else:
                step = "sampling one example"
                sample = model.sample(1, random_state=0)
                if spec.variable_length:
                    check_sequences(sample, spec, what="the sample")
                else:
                    check_values(sample, spec, what="the sample")
    except Exception as e:  # any failure means the state does not hold together
        raise RunDirError(
            f"{run_dir} is corrupted or incomplete: {step} with the restored {model.name!r} "
            f"model failed ({_brief(e)}); re-run `ptheta fit`"
        ) from None


def load_run(
    run_dir: str | os.PathLike,
    *,
    expect_model: str | None = None,
    require_complete: bool = True,
) -> GenerativeModel:
    """Rebuild the fitted estimator stored in ``run_dir``.

    ``expect_model`` guards against loading a checkpoint of another model. The restored
    model scores one example (or samples one, without a likelihood) before it is returned;
    a failure there, like any damaged file, is a :class:`RunDirError` saying what is wrong.
    """
    run_dir = Path(run_dir)
    config = read_config(run_dir)
    if require_complete:  # False only to finish an interrupted run (ptheta fit --resume)
        _check_complete(run_dir)
    name = config["model"]
    if expect_model is not None and name != expect_model:
        raise RunDirError(
            f"{str(run_dir)!r} holds a {name!r} model, not {expect_model!r}; use a run "
            f"directory of {expect_model!r} or a fresh --out directory"
        )
    weights_path = run_dir / config.get("weights", WEIGHTS)
    if not weights_path.exists():
        raise RunDirError(f"{weights_path} is missing; the run is incomplete, re-run `ptheta fit`")
    if not weights_path.is_file():
        raise RunDirError(
            f"{weights_path} is not a file (a directory?); the run is corrupted, re-run "
            "`ptheta fit`"
        )
    try:
        blob = weights_path.read_bytes()
    except OSError as e:
        raise RunDirError(
            f"could not read {weights_path} ({e.strerror or e}); check its permissions, or "
            "re-run `ptheta fit`"
        ) from None
    if hashlib.sha256(blob).hexdigest() != config["weights_sha256"]:
        raise RunDirError(
            f"{weights_path} does not match config.json (checksum differs): it is corrupted or "
            "from another run; re-run `ptheta fit`"
        )
    try:
        arrays = st_load(blob)
        with safe_open(str(weights_path), framework="numpy") as f:
            meta = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as e:
        raise RunDirError(f"{weights_path} is not a readable safetensors file ({e})") from None
    if meta.get("model") != name:
        raise RunDirError(
            f"{weights_path} was written by model {meta.get('model')!r} but config.json says "
            f"{name!r}; the run directory mixes two runs, re-run `ptheta fit`"
        )
    try:
        cls = get_model_class(name)
    except PthetaError as e:
        raise RunDirError(f"{run_dir}: {e}") from None
    params = config["params"]
    unknown = set(params) - set(cls._get_param_names())
    if unknown:
        raise RunDirError(
            f"{run_dir}/config.json has parameters {sorted(unknown)} that {name!r} does not take "
            "(written by another ptheta version?); re-run `ptheta fit`"
        )
    # JSON has no tuples: the config lists the parameters that were tuples
    tuple_params = config.get("tuple_params", [])
    try:
        params = {k: tuple(v) if k in tuple_params else v for k, v in params.items()}
        model = cls(**params).set_state(arrays, config["fitted"])
    except Exception as e:  # a family's own restore code may fail in its own way
        raise RunDirError(
            f"{run_dir} is corrupted or incomplete: {_brief(e)}"
            + ("" if isinstance(e, RunDirError) else "; re-run `ptheta fit`")
        ) from None
    _check_restored(model, run_dir)
    return model
