"""Tests of the data cache and of downloads: file:// URLs and injected transports only,
never the network or the real home cache."""

from __future__ import annotations

import hashlib
import io
import threading
import time
import urllib.error
from pathlib import Path

import pytest

from ptheta.data import download
from ptheta.data.download import ChecksumError, Remote
from ptheta.errors import DataError

PAYLOAD = bytes(range(256)) * 40  # 10 kB


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv(download.DATA_ENV, str(tmp_path / "cache"))


def _remote(url: str | list[str], payload: bytes = PAYLOAD, **changes) -> Remote:
    checks = {
        "md5": hashlib.md5(payload).hexdigest(),
        "sha256": hashlib.sha256(payload).hexdigest(),
    }
    urls = (url,) if isinstance(url, str) else tuple(url)
    return Remote(
        **{"name": "f.bin", "urls": urls, "checksums": checks, "size": len(payload)} | changes
    )


def _source(tmp_path: Path, payload: bytes = PAYLOAD) -> str:
    src = tmp_path / "server" / "f.bin"
    src.parent.mkdir(exist_ok=True)
    src.write_bytes(payload)
    return src.as_uri()


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if not p.name.endswith(".lock"))


class Counting:
    """A transport serving fixed bytes (or raising), counting its calls."""

    def __init__(
        self, payload: bytes = PAYLOAD, delay: float = 0.0, error: Exception | None = None
    ):
        self.payload, self.delay, self.error, self.calls = payload, delay, error, []

    def __call__(self, url: str):
        self.calls.append(url)
        if self.error is not None:
            raise self.error
        time.sleep(self.delay)
        return io.BytesIO(self.payload), len(self.payload)


def test_cache_dir_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("PTHETA_DATA", str(tmp_path / "a"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert download.cache_dir() == tmp_path / "a"
    monkeypatch.delenv("PTHETA_DATA")
    assert download.cache_dir() == tmp_path / "xdg" / "ptheta" / "data"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert download.cache_dir() == tmp_path / "home" / ".cache" / "ptheta" / "data"


def test_fetch_from_a_file_url_checks_and_keeps_the_file(tmp_path):
    folder = download.cache_dir() / "set"
    path = download.fetch(_remote(_source(tmp_path)), folder, progress=False)
    assert path == folder / "f.bin" and path.read_bytes() == PAYLOAD
    assert _leftovers(folder) == ["f.bin"]  # no temporary file left behind
    download.verify(path, _remote("unused"))


def test_fetch_shows_a_progress_bar(tmp_path, capsys):
    download.fetch(_remote(_source(tmp_path)), tmp_path / "c", progress=True)
    assert "f.bin" in capsys.readouterr().err


def test_a_file_in_the_cache_is_not_fetched_again(tmp_path):
    transport = Counting()
    remote = _remote("https://example.invalid/f.bin")
    download.fetch(remote, tmp_path / "c", transport=transport, progress=False)
    download.fetch(remote, tmp_path / "c", transport=transport, progress=False)
    assert len(transport.calls) == 1


@pytest.mark.parametrize("algorithm", ["md5", "sha256"])
def test_a_checksum_mismatch_is_refused_and_nothing_kept(tmp_path, algorithm):
    remote = _remote(_source(tmp_path))
    wrong = dict(remote.checksums, **{algorithm: "0" * len(remote.checksums[algorithm])})
    folder = tmp_path / "c"
    with pytest.raises(ChecksumError, match=f"its {algorithm} is"):
        download.fetch(Remote("f.bin", remote.urls, wrong, remote.size), folder, progress=False)
    assert _leftovers(folder) == []  # neither f.bin nor the partial .part file


def test_a_truncated_transfer_is_refused(tmp_path):
    transport = Counting(payload=PAYLOAD[:-1])
    with pytest.raises(ChecksumError, match="broken transfer"):
        download.fetch(_remote("https://x.invalid/f"), tmp_path / "c", transport=transport)
    assert _leftovers(tmp_path / "c") == []


def test_the_next_mirror_is_tried(tmp_path):
    dead = (tmp_path / "server" / "missing.bin").as_uri()
    path = download.fetch(_remote([dead, _source(tmp_path)]), tmp_path / "c", progress=False)
    assert path.read_bytes() == PAYLOAD


def test_offline_is_one_error_saying_to_use_a_folder(tmp_path):
    transport = Counting(error=urllib.error.URLError("no route to host"))
    remote = _remote(["https://a.invalid/f.bin", "https://b.invalid/f.bin"])
    with pytest.raises(DataError, match="no route to host") as info:
        download.fetch(remote, tmp_path / "c", transport=transport, progress=False)
    assert not isinstance(info.value, ChecksumError)
    assert "--data DIR" in str(info.value) and str(tmp_path / "c") in str(info.value)
    assert len(transport.calls) == 2
    assert _leftovers(tmp_path / "c") == []


def test_a_file_without_a_known_checksum_is_never_downloaded(tmp_path):
    transport = Counting()
    remote = Remote("f.bin", ("https://x.invalid/f.bin",), {}, None)
    with pytest.raises(ChecksumError, match="no published checksum"):
        download.fetch(remote, tmp_path / "c", transport=transport)
    assert transport.calls == []
    (tmp_path / "f.bin").write_bytes(PAYLOAD)
    with pytest.raises(ChecksumError, match="--data DIR"):
        download.verify(tmp_path / "f.bin", remote)


def test_verify_checks_size_and_every_checksum(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(PAYLOAD)
    download.verify(path, _remote("u"))
    path.write_bytes(PAYLOAD[:-1])
    with pytest.raises(ChecksumError, match="10239 bytes"):
        download.verify(path, _remote("u"))
    path.write_bytes(PAYLOAD[:-1] + b"\x01")  # same size, other bytes
    with pytest.raises(ChecksumError, match="its md5 is"):
        download.verify(path, _remote("u"))


def test_two_fetches_at_once_download_once_and_leave_one_whole_file(tmp_path):
    transport = Counting(delay=0.3)
    remote = _remote("https://x.invalid/f.bin")
    folder = tmp_path / "c"
    results, errors = [], []

    def run():
        try:
            results.append(download.fetch(remote, folder, transport=transport, progress=False))
        except Exception as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(transport.calls) == 1  # the second waited for the first's lock
    assert results[0] == results[1] and results[0].read_bytes() == PAYLOAD
    assert _leftovers(folder) == ["f.bin"]


def test_an_unwritable_cache_says_which_variable_to_set(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(DataError, match="PTHETA_DATA"):
        download.fetch(_remote("https://x.invalid"), blocker / "sub", transport=Counting())
