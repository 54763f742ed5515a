"""Training checkpoints: every tensor in safetensors, everything else in JSON, written atomically.

A checkpoint is two files in the run directory: ``checkpoint-<n>.safetensors`` (weights,
EMA, best weights, optimiser moments, RNG states) and ``checkpoint.json`` (step counters,
early-stopping state, optimiser hyper-parameters, scheduler state, history), which names
its tensor file and records its SHA-256. Each save writes a new tensor file, then
atomically replaces the JSON, then deletes the older tensor files: at every moment the
JSON points at a complete tensor file, so a crash never loses the last good checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from ptheta.errors import RunDirError
from ptheta.io import atomic_write_bytes, atomic_write_json

STATE = "checkpoint.json"
TENSORS_PATTERN = re.compile(r"^checkpoint-(\d+)\.safetensors$")
FORMAT = "ptheta-checkpoint"
# what a checkpoint's JSON must hold, and of which type
_LAYOUT = {"tensors": str, "tensors_sha256": str, "optimizer": dict, "scheduler": dict,
           "progress": dict, "fingerprint": str}  # fmt: skip


def exists(run_dir: str | os.PathLike) -> bool:
    return (Path(run_dir) / STATE).exists()


def tensor_files(run_dir: str | os.PathLike) -> list[Path]:
    """The checkpoint tensor files in ``run_dir`` (normally one)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return []
    return sorted(p for p in run_dir.iterdir() if TENSORS_PATTERN.match(p.name))


def save(
    run_dir: str | os.PathLike, tensors: dict[str, torch.Tensor], state: dict[str, Any]
) -> None:
    """Write one checkpoint: a new tensor file, then the JSON naming it, then clean up."""
    run_dir = Path(run_dir)
    flat = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    blob = st_save(flat, metadata={"format": FORMAT})
    previous = tensor_files(run_dir)
    number = 1 + max((int(TENSORS_PATTERN.match(p.name)[1]) for p in previous), default=0)
    name = f"checkpoint-{number}.safetensors"
    atomic_write_bytes(run_dir / name, blob)
    record = {
        "format": FORMAT,
        "tensors": name,
        "tensors_sha256": hashlib.sha256(blob).hexdigest(),
        **state,
    }
    atomic_write_json(run_dir / STATE, record)
    for old in previous:  # only now: the JSON no longer points at them
        old.unlink(missing_ok=True)


def load(run_dir: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a checkpoint written by :func:`save`, with clear errors when it is unusable."""
    run_dir = Path(run_dir)
    state_path = run_dir / STATE
    fix = "start a new run without --resume"
    if not state_path.is_file():
        raise RunDirError(f"no training checkpoint in {str(run_dir)!r} ({STATE} is missing); {fix}")
    try:
        state = json.loads(state_path.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise RunDirError(f"{state_path} is corrupted ({e}); {fix}") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise RunDirError(f"{state_path} is not a ptheta training checkpoint; {fix}")
    for key, kind in _LAYOUT.items():
        if not isinstance(state.get(key), kind):
            raise RunDirError(f"{state_path} is corrupted: {key!r} is missing or malformed; {fix}")
    name = state["tensors"]
    if not TENSORS_PATTERN.match(name):
        raise RunDirError(f"{state_path} names an invalid tensor file {name!r}; {fix}")
    tensor_path = run_dir / name
    try:
        blob = tensor_path.read_bytes()
    except OSError:
        raise RunDirError(f"{tensor_path} is missing or unreadable; {fix}") from None
    if hashlib.sha256(blob).hexdigest() != state["tensors_sha256"]:
        raise RunDirError(
            f"{tensor_path} does not match {STATE} (checksum differs): the checkpoint is "
            f"corrupted or from another run; {fix}"
        )
    try:
        tensors = st_load(blob)
    except (SafetensorError, ValueError) as e:
        raise RunDirError(f"{tensor_path} is not readable ({e}); {fix}") from None
    return tensors, state


def flatten_optimizer(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split an optimiser's state dict into tensors (safetensors) and the rest (JSON)."""
    sd = opt.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for index, entry in sd["state"].items():
        for key, value in entry.items():
            if torch.is_tensor(value):
                tensors[f"optim/{index}/{key}"] = value
            else:
                scalars.setdefault(str(index), {})[key] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def restore_optimizer(
    opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict[str, Any]
) -> None:
    """Inverse of :func:`flatten_optimizer`."""
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        if name.startswith("optim/"):
            _, index, key = name.split("/", 2)
            state.setdefault(int(index), {})[key] = value
    for index, entry in meta["scalars"].items():
        state.setdefault(int(index), {}).update(entry)
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def prefixed(prefix: str, state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {f"{prefix}/{k}": v for k, v in state_dict.items()}


def unprefixed(prefix: str, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    head = prefix + "/"
    return {k[len(head) :]: v for k, v in tensors.items() if k.startswith(head)}
