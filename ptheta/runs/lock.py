"""One writer per run directory: an exclusive lock held for the life of a run.

Two ``ptheta fit`` (or two ``ptheta compare``) on one ``--out`` would otherwise both exit 0,
one silently replacing the other and their metrics interleaving. The writer holds an
``flock`` on :data:`~ptheta.runs.layout.LOCK` inside the directory; the lock file names the
holder (process id, host, command, start time), so the second writer is told who has it.
The kernel drops the lock when the holder exits, even on kill -9, so a stale lock never
blocks a later run. The file itself stays (deleting it would let two writers lock two
different files of one name).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

from ptheta.errors import RunDirError
from ptheta.runs.layout import LOCK

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: no lock, as before
    fcntl = None  # type: ignore[assignment]


def _holder() -> dict[str, object]:
    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "command": " ".join(sys.argv)[:300],
        "since": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }


def _describe(path: Path) -> str:
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
        return (
            f"process {info.get('pid')} on {info.get('host')} since {info.get('since')} "
            f"({info.get('command')!r})"
        )
    except (OSError, ValueError, AttributeError):
        return "another process"


@contextlib.contextmanager
def exclusive(directory: str | os.PathLike, what: str = "run directory") -> Iterator[Path]:
    """Hold the directory's write lock (creating the directory) until the block ends.

    Raises:
        RunDirError: another process holds it; the message names that process.
    """
    directory = Path(directory)
    created = not directory.exists()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / LOCK
    if fcntl is None:  # pragma: no cover
        yield directory
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except (BlockingIOError, PermissionError):
            raise RunDirError(
                f"{what} {str(directory)!r} is being written by {_describe(path)}; wait for it "
                "to finish, or choose another --out"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps(_holder()).encode())
        try:
            yield directory
        except BaseException:
            # a run that failed before writing anything leaves no folder it created
            if created and [p.name for p in directory.iterdir()] == [LOCK]:
                with contextlib.suppress(OSError):
                    path.unlink()
                    directory.rmdir()
            raise
        finally:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
