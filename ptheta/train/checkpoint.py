"""Training checkpoints: every tensor in safetensors, everything else in JSON, written atomically.

A checkpoint is two files in the run directory: ``checkpoint.safetensors`` (weights, EMA,
best weights, optimiser moments, RNG states) and ``checkpoint.json`` (step counters, early
stopping state, optimiser hyper-parameters, scheduler state, history) which records the
SHA-256 of the tensors it belongs to. The tensor file is written first, so the JSON only
ever points at a complete one; a mismatch is reported as corruption, never loaded.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from ptheta.errors import RunDirError
from ptheta.io import atomic_write_bytes, atomic_write_json

TENSORS = "checkpoint.safetensors"
STATE = "checkpoint.json"
FORMAT = "ptheta-checkpoint"


def exists(run_dir: str | os.PathLike) -> bool:
    return (Path(run_dir) / STATE).exists()


def save(
    run_dir: str | os.PathLike, tensors: dict[str, torch.Tensor], state: dict[str, Any]
) -> None:
    """Write one checkpoint (tensors, then the JSON state that names them)."""
    run_dir = Path(run_dir)
    flat = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    blob = st_save(flat, metadata={"format": FORMAT})
    atomic_write_bytes(run_dir / TENSORS, blob)
    record = {"format": FORMAT, "tensors_sha256": hashlib.sha256(blob).hexdigest(), **state}
    atomic_write_json(run_dir / STATE, record)


def load(run_dir: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a checkpoint written by :func:`save`, with clear errors when it is unusable."""
    run_dir = Path(run_dir)
    state_path, tensor_path = run_dir / STATE, run_dir / TENSORS
    if not state_path.exists():
        raise RunDirError(
            f"no training checkpoint in {str(run_dir)!r} ({STATE} is missing); start a new "
            "run without --resume"
        )
    try:
        state = json.loads(state_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise RunDirError(
            f"{state_path} is corrupted ({e}); start a new run without --resume"
        ) from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise RunDirError(f"{state_path} is not a ptheta training checkpoint")
    if not tensor_path.exists():
        raise RunDirError(f"{tensor_path} is missing; start a new run without --resume")
    blob = tensor_path.read_bytes()
    if hashlib.sha256(blob).hexdigest() != state.get("tensors_sha256"):
        raise RunDirError(
            f"{tensor_path} does not match {STATE} (checksum differs): the checkpoint is "
            "corrupted or from another run; start a new run without --resume"
        )
    try:
        tensors = st_load(blob)
    except (SafetensorError, ValueError) as e:
        raise RunDirError(f"{tensor_path} is not readable ({e})") from None
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
