"""Issue 14 (items 8, 12, 13, 14): runs that cannot be mixed up, half-written or written by
two processes at once."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from safetensors.numpy import load as st_load
from safetensors.numpy import save as st_save

import ptheta
from ptheta.cli import cli
from ptheta.errors import RunDirError
from ptheta.runs import fitting, lock
from ptheta.runs.layout import COMPLETE, CONFIG, LOCK, METRICS, SAMPLES_PNG, WEIGHTS
from ptheta.runs.store import FORMAT, load_run, mark_complete

DATA = ("--data", "toy2d-moons")


def _cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.output


def _gmm_run(out: Path, k: int) -> Path:
    code, output = _cli("fit", "gmm", *DATA, "--set", f"n_components={k}", "--set",
                        "max_iter=5", "--out", str(out), "--quiet")  # fmt: skip
    assert code == 0, output
    return out


# --------------------------------------------------------------------------- item 12
def test_a_second_writer_of_one_run_directory_is_refused_and_named(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    # another process holds the directory's lock (as a running `ptheta fit` does)
    holder = subprocess.Popen(
        [sys.executable, "-c", (
            "import fcntl, json, os, sys, time\n"
            f"fd = os.open({str(out / LOCK)!r}, os.O_RDWR | os.O_CREAT)\n"
            "fcntl.flock(fd, fcntl.LOCK_EX)\n"
            "os.write(fd, json.dumps({'pid': os.getpid(), 'host': 'h', 'command': 'ptheta fit',"
            " 'since': 'now'}).encode())\n"
            "print('locked', flush=True)\n"
            "time.sleep(60)\n"
        )],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "locked"
        code, output = _cli("fit", "independent", *DATA, "--out", str(out), "--quiet")
        assert code == 2
        assert f"process {holder.pid}" in output and "being written" in output, output
        assert not (out / CONFIG).exists()  # nothing of the second run was written
        code, output = _cli("compare", *DATA, "--models", "independent", "--budget", "5s",
                            "--out", str(out), "--quiet")  # fmt: skip
        assert code == 2 and "being written" in output, output
    finally:
        holder.kill()
        holder.wait()
    # the kernel dropped the lock with the process: the directory is free again
    code, output = _cli("fit", "independent", *DATA, "--out", str(out), "--quiet")
    assert code == 0, output


def test_the_lock_is_held_for_the_whole_run_and_released_after(tmp_path, monkeypatch):
    out = tmp_path / "run"
    seen = []
    real = fitting.save_run

    def save_and_probe(*args, **kwargs):
        fd = os.open(out / LOCK, os.O_RDWR)
        try:
            with pytest.raises(BlockingIOError):
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            seen.append("held")
        finally:
            os.close(fd)
        return real(*args, **kwargs)

    monkeypatch.setattr(fitting, "save_run", save_and_probe)
    assert _cli("fit", "independent", *DATA, "--out", str(out), "--quiet")[0] == 0
    assert seen == ["held"]
    with lock.exclusive(out):  # released: it can be taken again
        pass


# --------------------------------------------------------------------------- item 13
def test_an_edited_config_is_refused(tmp_path):
    run = _gmm_run(tmp_path / "g4", 4)
    config = json.loads((run / CONFIG).read_text())
    config["params"]["n_components"] = 8
    (run / CONFIG).write_text(json.dumps(config))
    with pytest.raises(RunDirError, match="was changed after the run was written"):
        load_run(run)


def test_an_edit_that_keeps_every_checksum_is_caught_by_the_array_shapes(tmp_path):
    run = _gmm_run(tmp_path / "g4", 4)
    config = json.loads((run / CONFIG).read_text())
    config["params"]["n_components"] = 8
    (run / CONFIG).write_text(json.dumps(config))
    mark_complete(run)  # even with the marker rewritten to match
    with pytest.raises(RunDirError, match=r"weights_ of shape \(4,\).*make it \(8,\)"):
        load_run(run)


def test_weights_of_another_run_without_their_checksum_are_refused(tmp_path):
    g4 = _gmm_run(tmp_path / "g4", 4)
    g8 = _gmm_run(tmp_path / "g8", 8)
    shutil.copy(g8 / WEIGHTS, g4 / WEIGHTS)
    config = json.loads((g4 / CONFIG).read_text())
    del config["weights_sha256"]  # the checksum is mandatory
    (g4 / CONFIG).write_text(json.dumps(config))
    mark_complete(g4)
    with pytest.raises(RunDirError, match="no 'weights_sha256' entry"):
        load_run(g4)


def test_weights_swapped_with_a_matching_checksum_are_refused_by_shape(tmp_path):
    g4 = _gmm_run(tmp_path / "g4", 4)
    g8 = _gmm_run(tmp_path / "g8", 8)
    arrays = st_load((g8 / WEIGHTS).read_bytes())
    blob = st_save(arrays, metadata={"format": FORMAT, "model": "gmm"})
    (g4 / WEIGHTS).write_bytes(blob)
    config = json.loads((g4 / CONFIG).read_text())
    config["weights_sha256"] = hashlib.sha256(blob).hexdigest()
    (g4 / CONFIG).write_text(json.dumps(config))
    mark_complete(g4)
    with pytest.raises(RunDirError, match=r"make it \(4"):
        load_run(g4)


# --------------------------------------------------------------------------- item 14
@pytest.mark.parametrize("model", ["independent", "chow-liu"])
def test_a_run_killed_in_its_final_writes_is_refused_then_finished_by_resume(
    tmp_path, monkeypatch, model
):
    data = ("--data", "digits-binary")
    out = tmp_path / "run"

    def killed(*args, **kwargs):
        raise KeyboardInterrupt  # kill -9 while the pictures are written

    monkeypatch.setattr(fitting, "write_samples_picture", killed)
    code, _ = _cli("fit", model, *data, "--out", str(out), "--quiet")
    assert code != 0
    assert (out / CONFIG).exists() and not (out / COMPLETE).exists()
    with pytest.raises(RunDirError, match=r"incomplete run.*--resume"):
        load_run(out)
    code, output = _cli("eval", str(out))
    assert code == 2 and "--resume" in output
    monkeypatch.undo()
    weights = (out / WEIGHTS).read_bytes()
    code, output = _cli("fit", model, *data, "--out", str(out), "--resume", "--quiet")
    assert code == 0, output
    assert (out / SAMPLES_PNG).is_file() and (out / COMPLETE).is_file()
    assert (out / WEIGHTS).read_bytes() == weights  # finished, not refitted
    assert load_run(out).score_samples(np.zeros((1, 64), dtype=np.int64)).shape == (1,)


def test_a_classical_fit_killed_before_it_was_saved_is_fitted_again_by_resume(
    tmp_path, monkeypatch
):
    out = tmp_path / "run"

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(fitting, "save_run", killed)
    assert _cli("fit", "gmm", *DATA, "--set", "max_iter=5", "--out", str(out), "--quiet")[0]
    monkeypatch.undo()
    # an interruption that unwinds removes the folder it created; kill -9 leaves the torn
    # temporary file of an atomic write behind instead
    assert not out.exists()
    out.mkdir()
    (out / ".config.json.x1y2.tmp").write_text("{")
    code, output = _cli("fit", "gmm", *DATA, "--set", "max_iter=5", "--out", str(out),
                        "--resume", "--quiet")  # fmt: skip
    assert code == 0, output
    assert ptheta.load(out).n_components == 8


def test_force_removes_stale_temporary_files(tmp_path):
    out = tmp_path / "run"
    assert _cli("fit", "independent", *DATA, "--out", str(out), "--quiet")[0] == 0
    stale = [out / ".weights.safetensors.abc.tmp", out / ".checkpoint.json.def.tmp"]
    for path in stale:
        path.write_bytes(b"half")
    mine = out / "notes.txt"
    mine.write_text("the user's own file")
    assert _cli("fit", "independent", *DATA, "--out", str(out), "--force", "--quiet")[0] == 0
    assert not any(p.exists() for p in stale)
    assert mine.read_text() == "the user's own file"  # only ptheta's files are removed


# --------------------------------------------------------------------------- item 8
def test_a_metrics_file_that_is_not_utf8_is_one_clear_error(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    from ptheta.runs.store import read_metrics

    (out / METRICS).write_bytes(b'{"event": "epoch"}\n\xff\xfe\x00 broken\n')
    with pytest.raises(RunDirError, match="not UTF-8"):
        read_metrics(out)


def test_a_cached_compare_with_a_damaged_metrics_file_gives_a_failed_row_not_a_traceback(
    tmp_path,
):
    out = tmp_path / "cmp"
    args = ("compare", "--data", "digits-binary", "--models", "independent,made", "--set",
            "made.epochs=1",
            "--budget", "5s", "--out", str(out), "--quiet")  # fmt: skip
    code, output = _cli(*args)
    assert code == 0, output
    (out / "runs" / "made" / METRICS).write_bytes(b"\xff\xfe not text")
    cache = out / "runs" / "made" / "compare.json"
    key = json.loads(cache.read_text())["key"]
    cache.write_text(json.dumps({"key": key}))  # cached fit, evaluated again: reads the metrics
    code, output = _cli(*args)
    assert code == 0, output
    rows = {r["model"]: r for r in json.loads((out / "report.json").read_text())["rows"]}
    assert rows["independent"]["status"] == "ok"
    assert rows["made"]["status"] == "failed" and "not UTF-8" in rows["made"]["error"]


def test_a_run_interrupted_before_its_config_says_how_to_finish_it(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / METRICS).write_text('{"event": "epoch", "epoch": 1}\n')  # training had begun
    code, output = _cli("eval", str(out))
    assert code == 2 and "interrupted run" in output and "--resume" in output, output
