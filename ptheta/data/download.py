"""Published files fetched into ptheta's data cache: where the cache is, one download per
file, checked against its published checksum, with a progress bar.

A file is written under a temporary name in its final folder and renamed into place only
once its checksum matches, so a cache never holds a partial or corrupted file under a
real name, and two processes fetching the same file at once (each then waits for the
other's lock, where the platform has ``fcntl``) cannot corrupt it. A file with no known
checksum is never downloaded: ptheta does not vouch for bytes it cannot check.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import sys
import tempfile
import urllib.error
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from ptheta.errors import DataError

# The cache folder: $PTHETA_DATA, else $XDG_CACHE_HOME/ptheta/data, else ~/.cache/ptheta/data.
DATA_ENV = "PTHETA_DATA"
# Seconds to wait for a server before trying the next address.
TIMEOUT = 60
_CHUNK = 1 << 20

# url -> (a readable stream of the file's bytes, its size in bytes or None); the stream is
# closed after reading. Tests pass their own instead of the network.
Transport = Callable[[str], tuple[BinaryIO, int | None]]


def cache_dir() -> Path:
    """The folder ptheta keeps downloaded data sets in (not created here).

    Example:
        >>> saved = os.environ.get(DATA_ENV)
        >>> os.environ[DATA_ENV] = "/tmp/ptheta-data"
        >>> str(cache_dir())
        '/tmp/ptheta-data'
        >>> _ = os.environ.pop(DATA_ENV) if saved is None else os.environ.update({DATA_ENV: saved})
    """
    if os.environ.get(DATA_ENV):
        return Path(os.environ[DATA_ENV]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "ptheta" / "data"


@dataclass(frozen=True)
class Remote:
    """One published file: its name in the cache, the addresses to fetch it from (mirrors,
    tried in turn), its published checksums (``{"md5": hex, "sha256": hex}``; empty when
    none is known) and its size in bytes (None when not known)."""

    name: str
    urls: tuple[str, ...]
    checksums: dict[str, str] = field(default_factory=dict)
    size: int | None = None


class ChecksumError(DataError):
    """A file whose bytes are not the published ones."""


def file_checksum(path: Path, algorithm: str) -> str:
    """The hex digest (``md5``, ``sha256``, ...) of the file at `path`."""
    h = hashlib.new(algorithm, usedforsecurity=False)
    with open(path, "rb") as f:
        for piece in iter(lambda: f.read(_CHUNK), b""):
            h.update(piece)
    return h.hexdigest()


def verify(path: Path, remote: Remote) -> None:
    """Check the file at `path` against every published checksum of `remote`.

    Raises:
        ChecksumError: a checksum differs (the file is corrupted, truncated or another
            file), or none is known.
    """
    if not remote.checksums:
        raise ChecksumError(
            f"ptheta knows no published checksum for {remote.name}, so it cannot check "
            f"{path}; load the folder holding it with --data DIR (your own files, read "
            "unchecked) instead"
        )
    size = path.stat().st_size
    if remote.size is not None and size != remote.size:
        raise ChecksumError(
            f"{path} is not the published {remote.name}: it has {size} bytes, the published "
            f"file {remote.size} (a truncated or different file); delete it and load again to "
            "download it afresh"
        )
    for algorithm, expected in remote.checksums.items():
        got = file_checksum(path, algorithm)
        if got != expected.lower():
            raise ChecksumError(
                f"{path} is not the published {remote.name}: its {algorithm} is {got}, the "
                f"published one is {expected} (a corrupted, truncated or different file); "
                "delete it and load again to download it afresh"
            )


def urllib_transport(url: str) -> tuple[BinaryIO, int | None]:
    """Open `url` with the standard library (http, https, file); its stream and size."""
    import urllib.request

    response = urllib.request.urlopen(url, timeout=TIMEOUT)
    size = response.headers.get("Content-Length") if hasattr(response, "headers") else None
    return response, int(size) if size and size.isdigit() else None


@contextlib.contextmanager
def lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on the file `path` (where the platform has fcntl)."""
    try:
        import fcntl
    except ImportError:  # Windows: the atomic rename alone keeps the cache whole
        yield
        return
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _offline_error(remote: Remote, folder: Path, reasons: list[str]) -> DataError:
    return DataError(
        f"could not download {remote.name} ({'; '.join(reasons)}). Offline? Fetch the "
        f"file yourself from {remote.urls[0]}, put it in a folder with the data set's other "
        f"files and use --data DIR (Python: ptheta.data.load(DIR)), or put it in the cache "
        f"folder {folder} and load the data set by name again"
    )


def fetch(
    remote: Remote,
    folder: Path,
    *,
    transport: Transport | None = None,
    progress: bool | None = None,
) -> Path:
    """The path of `remote` in `folder`, downloaded first if it is not there yet.

    A file already in `folder` (downloaded earlier, or put there by hand) is returned as
    it is; check it with `verify`. A download goes to a temporary file next to its final
    place, is checked against the published checksums, and is renamed into place only if
    they match; otherwise the temporary file is removed and the next address tried.

    Arguments:
        transport: how to open an address (default: `urllib_transport`).
        progress: show a progress bar on stderr; by default when stderr is a terminal.

    Raises:
        ChecksumError: no checksum is known for the file, or no address gave the
            published bytes.
        DataError: no address could be reached (offline): the message says how to load
            the files from a folder instead.
    """
    dest = folder / remote.name
    if dest.is_file():
        return dest
    if not remote.checksums:
        raise ChecksumError(
            f"ptheta knows no published checksum for {remote.name}, so it will not download "
            f"it unchecked. Fetch it yourself from {remote.urls[0]}, check it, and put it in "
            f"{folder} (or in a folder of your own, loaded with --data DIR)"
        )
    transport = transport or urllib_transport
    show = sys.stderr.isatty() if progress is None else progress
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(
            f"could not create the data cache folder {folder} ({e.strerror or e}); set "
            f"${DATA_ENV} to a folder you can write to"
        ) from None
    with lock(folder / f".{remote.name}.lock"):
        if dest.is_file():  # another process fetched it while this one waited
            return dest
        reasons: list[str] = []
        mismatches: list[str] = []
        for url in remote.urls:
            try:
                _download(url, dest, remote, transport, show)
                return dest
            except ChecksumError as e:
                mismatches.append(str(e))
            except (OSError, urllib.error.URLError, ValueError) as e:
                reasons.append(f"{url}: {getattr(e, 'reason', None) or e}")
        if mismatches:
            raise ChecksumError(" ".join(mismatches))
        raise _offline_error(remote, folder, reasons)


def _download(url: str, dest: Path, remote: Remote, transport: Transport, show: bool) -> None:
    from ptheta.progress import progress_bar  # rich: only when something is downloaded

    hashes = {a: hashlib.new(a, usedforsecurity=False) for a in remote.checksums}
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        stream, size = transport(url)
        total = math.ceil(size / 1024) if size else None
        with (
            stream,
            open(tmp, "wb") as out,
            progress_bar(total, f"{remote.name} (kB)", enabled=show) as advance,
        ):
            for piece in iter(lambda: stream.read(_CHUNK), b""):
                out.write(piece)
                for h in hashes.values():
                    h.update(piece)
                advance(math.ceil(len(piece) / 1024))
        for algorithm, h in hashes.items():
            expected = remote.checksums[algorithm].lower()
            if h.hexdigest() != expected:
                raise ChecksumError(
                    f"the file downloaded from {url} is not the published {remote.name}: its "
                    f"{algorithm} is {h.hexdigest()}, the published one is {expected} (a "
                    "broken transfer or a changed file); it was not kept"
                )
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
