"""The files of a run directory, by name: one list that writers, readers and ``--force`` share.

A run is complete when :data:`COMPLETE` exists: it is written last, after every other
file, so a run interrupted while writing (kill -9, a full disk) has none and is refused on
load with a message saying how to finish it. The training files (:data:`METRICS`, the
checkpoint) are named where the Trainer writes them and listed here.
"""

from __future__ import annotations

import os
from pathlib import Path

from ptheta.train.checkpoint import STATE as CHECKPOINT
from ptheta.train.checkpoint import TENSORS_PATTERN
from ptheta.train.trainer import METRICS

CONFIG = "config.json"
WEIGHTS = "weights.safetensors"
SAMPLES_PNG = "samples.png"
STRUCTURE_DOT = "structure.dot"
STRUCTURE_PNG = "structure.png"
# Written last: its presence says every other file of the run is in place.
COMPLETE = "COMPLETE"
# Held (flock) by the one process writing the run; it names that process.
LOCK = ".ptheta.lock"

# Files ptheta writes into a run directory (removed by --force before a fresh run).
RUN_FILES: tuple[str, ...] = (
    COMPLETE, CONFIG, WEIGHTS, METRICS, SAMPLES_PNG, STRUCTURE_DOT, STRUCTURE_PNG, CHECKPOINT,
)  # fmt: skip


def owned_files(run_dir: str | os.PathLike) -> list[Path]:
    """Every file in ``run_dir`` that ptheta wrote: the run files, checkpoint tensors and
    temporary files of interrupted atomic writes (``.NAME.*.tmp``)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return []
    names = set(RUN_FILES)
    out = []
    for path in run_dir.iterdir():
        name = path.name
        tmp = name.startswith(".") and name.endswith(".tmp")
        if path.is_file() and (name in names or TENSORS_PATTERN.match(name) or tmp):
            out.append(path)
    return sorted(out)
