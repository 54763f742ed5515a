"""Run directories: config (JSON), weights (safetensors), metrics (JSON lines), written atomically.

A run directory holds everything needed to rebuild a fitted model, and nothing that is
unpickled: ``config.json`` (model name, hyper-parameters, fitted scalars, data spec and
fingerprint, versions), ``weights.safetensors`` (every fitted array) and ``metrics.jsonl``.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import platform
from pathlib import Path
from typing import Any

import numpy as np
from safetensors import SafetensorError, safe_open
from safetensors.numpy import load as st_load
from safetensors.numpy import save as st_save

from ptheta.errors import PthetaError, RunDirError
from ptheta.io import atomic_write_bytes, atomic_write_json, atomic_write_text
from ptheta.models import GenerativeModel, get_model_class
from ptheta.models.base import to_jsonable

FORMAT = "ptheta-run"
FORMAT_VERSION = 1
CONFIG = "config.json"
WEIGHTS = "weights.safetensors"
METRICS = "metrics.jsonl"


def write_metrics(run_dir: str | os.PathLike, records: list[dict[str, Any]]) -> None:
    """Replace ``metrics.jsonl`` with ``records`` (one JSON object per line)."""
    atomic_write_text(Path(run_dir) / METRICS, "".join(json.dumps(r) + "\n" for r in records))


def read_metrics(run_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """Records of ``metrics.jsonl``; a torn last line (an interrupted append) is skipped."""
    path = Path(run_dir) / METRICS
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
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
) -> Path:
    """Write a fitted ``model`` to ``run_dir`` (created if needed) and return its path.

    ``data`` describes the training data (name, fingerprint, sizes); ``extra`` is any
    other JSON-able information (fit time, command line).
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
    # weights first: a config only ever points at weights that are complete
    atomic_write_bytes(run_dir / WEIGHTS, blob)
    atomic_write_json(run_dir / CONFIG, config)
    if metrics is not None:
        write_metrics(run_dir, metrics)
    return run_dir


def read_config(run_dir: str | os.PathLike) -> dict[str, Any]:
    """The parsed ``config.json`` of a run directory, with clear errors when it is not one."""
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
    if not path.exists():
        raise RunDirError(
            f"{str(run_dir)!r} is not a ptheta run directory (no {CONFIG}); "
            "create one with `ptheta fit MODEL --data DATA --out DIR`"
        )
    try:
        config = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise RunDirError(
            f"{path} is corrupted (not valid JSON: {e}); re-run `ptheta fit` to recreate it"
        ) from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise RunDirError(f"{path} was not written by ptheta (no 'format': '{FORMAT}' entry)")
    if int(config.get("format_version", 0)) > FORMAT_VERSION:
        raise RunDirError(
            f"{path} has format version {config['format_version']}, newer than this ptheta "
            f"understands ({FORMAT_VERSION}); upgrade ptheta"
        )
    for key in ("model", "params", "fitted"):
        if key not in config:
            raise RunDirError(f"{path} is incomplete: no {key!r} entry; re-run `ptheta fit`")
    return config


def load_run(run_dir: str | os.PathLike, *, expect_model: str | None = None) -> GenerativeModel:
    """Rebuild the fitted estimator stored in ``run_dir``.

    ``expect_model`` guards against loading a checkpoint of another model.
    """
    run_dir = Path(run_dir)
    config = read_config(run_dir)
    name = config["model"]
    if expect_model is not None and name != expect_model:
        raise RunDirError(
            f"{str(run_dir)!r} holds a {name!r} model, not {expect_model!r}; use a run "
            f"directory of {expect_model!r} or a fresh --out directory"
        )
    weights_path = run_dir / config.get("weights", WEIGHTS)
    if not weights_path.exists():
        raise RunDirError(f"{weights_path} is missing; the run is incomplete, re-run `ptheta fit`")
    blob = weights_path.read_bytes()
    expected_hash = config.get("weights_sha256")
    if expected_hash and hashlib.sha256(blob).hexdigest() != expected_hash:
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
    params = {k: tuple(v) if k in config.get("tuple_params", ()) else v for k, v in params.items()}
    model = cls(**params)
    return model.set_state(arrays, config["fitted"])
