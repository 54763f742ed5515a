"""The scoring after `ptheta fit`: skipped, on a seeded subset, sized to a max_time budget,
and a run that stays complete and loadable when that scoring runs out of memory."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from ptheta.cli import cli
from ptheta.data import load
from ptheta.models import get_model_class, make
from ptheta.runs import fitting
from ptheta.runs.fitting import SUBSET_SEED, fit_run, score_split
from ptheta.runs.store import is_complete, load_run, read_metrics


def run(*args: str, code: int = 0):
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result


@pytest.fixture(scope="module")
def digits():
    return load("digits-binary")


def _evals(out) -> dict[str, dict]:
    return {r["split"]: r for r in read_metrics(out) if r.get("event") == "eval"}


def _subset_nll(model, x: np.ndarray, k: int) -> float:
    """The mean NLL of the first k rows of the seeded random order, scored here directly."""
    index = np.random.default_rng(SUBSET_SEED).permutation(len(x))[:k]
    return float(-model.score_samples(x[np.sort(index)]).mean())


def test_no_score_skips_scoring_and_eval_scores_the_run_later(tmp_path, digits):
    out = tmp_path / "run"
    text = run("fit", "independent", "--data", "digits-binary", "--out", str(out),
               "--no-score").output  # fmt: skip
    assert "not scored (--no-score)" in text and _evals(out) == {}
    assert is_complete(out)
    model = load_run(out)
    nll = float(-model.score_samples(digits.val.x).mean())
    shown = run("eval", str(out), "--split", "val").output
    assert f"{nll:.2f}" in shown
    # and on a seeded subset, said under the table
    shown = run("eval", str(out), "--split", "val", "--score-rows", "40", "--quiet").output
    assert "scored 40 of 350 rows" in " ".join(shown.split())
    assert f"{_subset_nll(model, digits.val.x, 40):.2f}" in shown


def test_score_rows_scores_a_seeded_subset_and_says_so(tmp_path, digits):
    out = tmp_path / "run"
    text = run("fit", "independent", "--data", "digits-binary", "--out", str(out),
               "--score-rows", "30").output  # fmt: skip
    assert "scored 30 of 1,000 rows" in text and "scored 30 of 350 rows" in text
    model = load_run(out)
    for split in ("train", "val"):
        record = _evals(out)[split]
        x = digits.split(split).x
        assert record["n"] == 30 and record["n_split"] == len(x)
        assert record["subset"] == "score_rows" and record["subset_seed"] == SUBSET_SEED
        assert record["nll_nats"] == pytest.approx(_subset_nll(model, x, 30), rel=1e-12)
        full = -model.score_samples(x)
        assert record["nll_nats"] != pytest.approx(full.mean(), rel=1e-9)  # a real subset
    # more rows than a split holds: all of it, no subset, the plain mean
    fit_run("independent", {}, digits, tmp_path / "all", data_source={"source": "digits-binary"},
            verbose=False, score_rows=5000)  # fmt: skip
    record = _evals(tmp_path / "all")["val"]
    assert record["n"] == 350 and "subset" not in record
    assert record["nll_nats"] == pytest.approx(float(-model.score_samples(digits.val.x).mean()))


def test_scoring_shows_a_progress_bar_when_verbose(tmp_path):
    text = run("fit", "made", "--data", "digits-binary", "--out", str(tmp_path / "m"),
               "--set", "hidden=[8]", "--set", "epochs=1", "--set", "device=cpu",
               "--score-rows", "20").output  # fmt: skip
    assert "scoring train" in text and "scoring val" in text


class _Clock:
    """A fake perf_counter for fitting.py: scoring a row costs ``per_row`` seconds."""

    def __init__(self, per_row: float) -> None:
        self.now, self.per_row = 0.0, per_row

    def perf_counter(self) -> float:
        return self.now

    def charge_scoring(self, monkeypatch, name: str) -> None:
        """Make family ``name``'s score_samples cost ``per_row`` seconds a row."""
        cls = get_model_class(name)
        score = cls.score_samples

        def timed(model, X, **kwargs):
            self.now += self.per_row * len(X)
            return score(model, X, **kwargs)

        monkeypatch.setattr(cls, "score_samples", timed)


@pytest.mark.parametrize(("before", "expected"), [(0.0, 100), (10.0, 10)])
def test_max_time_sizes_the_scoring_to_the_time_left(tmp_path, monkeypatch, digits, before,
                                                     expected):  # fmt: skip
    # max_time = 2 s; 0.01 s a row; training took `before` seconds: the two splits share
    # the 2 s left (1 s, 100 rows each), or the floor of a tenth of max_time (10 rows each)
    clock = _Clock(0.01)
    monkeypatch.setattr(fitting, "time", clock)
    clock.charge_scoring(monkeypatch, "made")

    def slow_make(name, **params):
        clock.now += before
        return make(name, **params)

    monkeypatch.setattr(fitting, "make", slow_make)
    params = {"hidden": [8], "epochs": 1, "device": "cpu", "max_time": 2.0}
    row = fit_run("made", params, digits, tmp_path / "m", data_source={"source": "digits"},
                  verbose=False)  # fmt: skip
    assert clock.now <= before + max(2.0 - before, 0.2) + 1e-9  # within the budget
    evals = _evals(tmp_path / "m")
    model = load_run(tmp_path / "m")
    for split in ("train", "val"):
        record = evals[split]
        assert expected - 2 <= record["n"] <= expected and record["subset"] == "max_time"
        x = digits.split(split).x
        assert record["nll_nats"] == pytest.approx(_subset_nll(model, x, record["n"]), rel=1e-9)
    assert len(row["score_notes"]) == 2 and "time left of max_time" in row["score_notes"][0]


def test_score_split_stops_at_its_seconds_and_scores_everything_when_they_suffice(
    monkeypatch, digits
):
    clock = _Clock(0.01)
    monkeypatch.setattr(fitting, "time", clock)
    model = make("independent").fit(digits.train.x)
    score = model.score_samples

    def timed(X, **kwargs):
        clock.now += clock.per_row * len(X)
        return score(X, **kwargs)

    monkeypatch.setattr(model, "score_samples", timed)
    part = digits.val
    summary = score_split(model, part, split="val", seconds=0.5)
    assert 48 <= summary["n"] <= 50 and summary["subset"] == "max_time"
    whole = score_split(model, part, split="val", seconds=100.0)
    assert whole["n"] == 350 and "subset" not in whole
    assert whole["nll_nats"] == pytest.approx(float(-score(part.x).mean()), rel=1e-12)


def test_eval_max_time_shares_its_seconds_between_the_splits_and_says_so(
    tmp_path, monkeypatch, digits
):
    # 0.01 s a row and --max-time 1: val and test share it (about 50 rows each; test gets
    # what val left), the first rows of the seeded order; 100 s scores both whole, no note
    out = tmp_path / "run"
    run("fit", "independent", "--data", "digits-binary", "--out", str(out), "--no-score")
    clock = _Clock(0.01)
    monkeypatch.setattr(fitting, "time", clock)
    clock.charge_scoring(monkeypatch, "independent")
    shown = " ".join(run("eval", str(out), "--split", "val", "--split", "test",
                         "--max-time", "1", "--quiet").output.split())  # fmt: skip
    assert clock.now <= 1.0 + 0.01 + 1e-9  # within the budget, up to a row's rounding
    model = load_run(out)
    for split in ("val", "test"):
        n = int(shown.split(f"{split}: scored ")[1].split(" ")[0])
        assert 48 <= n <= 52
        rows = len(digits.split(split).x)
        assert f"{split}: scored {n} of {rows} rows (what fitted in --max-time" in shown
        assert f"{_subset_nll(model, digits.split(split).x, n):.2f}" in shown
    whole = " ".join(run("eval", str(out), "--split", "val", "--max-time", "100",
                         "--quiet").output.split())  # fmt: skip
    assert "scored" not in whole
    assert f"{float(-model.score_samples(digits.val.x).mean()):.2f}" in whole
    # with --score-rows too: whichever ends first, said as such
    both = " ".join(run("eval", str(out), "--split", "val", "--max-time", "100",
                        "--score-rows", "30", "--quiet").output.split())  # fmt: skip
    assert "val: scored 30 of" in both and "at most --score-rows rows" in both
    assert f"{_subset_nll(model, digits.val.x, 30):.2f}" in both
    for bad in ("0", "-1", "inf", "nan", "1e400"):  # a budget is a positive, finite number
        shown = run("eval", str(out), "--max-time", bad, code=2).output
        assert "--max-time" in shown and "Traceback" not in shown


def test_a_fast_model_whose_first_rows_pay_a_fixed_cost_is_scored_whole(monkeypatch, digits):
    """Each call costs 0.01 s plus 0.1 ms a row: 2 timed rows say 196 rows a second, but
    the whole split (350 rows) fits in 0.5 s once chunks grow."""
    clock = _Clock(1e-4)
    monkeypatch.setattr(fitting, "time", clock)
    model = make("independent").fit(digits.train.x)
    score = model.score_samples

    def timed(X, **kwargs):
        clock.now += 0.01 + clock.per_row * len(X)
        return score(X, **kwargs)

    monkeypatch.setattr(model, "score_samples", timed)
    summary = score_split(model, digits.val, split="val", seconds=0.5)
    assert summary["n"] == 350 and "subset" not in summary
    assert clock.now <= 0.5


@pytest.mark.parametrize(
    "error",
    [
        MemoryError(),
        RuntimeError(
            "[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: can't allocate "
            "memory: you tried to allocate 4800000000 bytes. Error code 12"
        ),
        torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 4.80 GiB"),
    ],
)
def test_a_scoring_out_of_memory_keeps_a_loadable_run_and_says_so_in_one_line(
    tmp_path, monkeypatch, digits, error
):
    cls = get_model_class("independent")

    def fails(self, X, **kwargs):
        raise error

    monkeypatch.setattr(cls, "score_samples", fails)
    out = tmp_path / "run"
    result = run("fit", "independent", "--data", "digits-binary", "--out", str(out), code=2)
    text = " ".join(result.output.split())
    assert "Traceback" not in text and len(result.output.strip().splitlines()) <= 4
    for words in ("out of memory", "'independent'", "the train split", "--score-rows",
                  "a complete run without its scores", f"ptheta eval {out}"):  # fmt: skip
        assert words in text, text
    monkeypatch.undo()
    assert is_complete(out) and _evals(out) == {}
    model = load_run(out)  # the fitted weights, loadable; eval scores them
    assert json.loads((out / "config.json").read_text())["model"] == "independent"
    nll = float(-model.score_samples(digits.val.x).mean())
    assert f"{nll:.2f}" in run("eval", str(out), "--split", "val").output


def test_other_scoring_errors_are_not_called_out_of_memory(tmp_path, monkeypatch, digits):
    def fails(self, X, **kwargs):
        raise ValueError("something else")

    monkeypatch.setattr(get_model_class("independent"), "score_samples", fails)
    with pytest.raises(ValueError, match="something else"):
        fit_run("independent", {}, digits, tmp_path / "r", data_source={"source": "d"},
                verbose=False)  # fmt: skip
    monkeypatch.undo()
    assert is_complete(tmp_path / "r")  # the run was saved before its scoring


def test_bad_score_rows_is_a_clear_error(tmp_path, digits):
    from ptheta.errors import ParameterError

    for bad in (0, -3, 2.5, True):
        with pytest.raises(ParameterError, match="score_rows"):
            fit_run("independent", {}, digits, tmp_path / "r", data_source={"source": "d"},
                    verbose=False, score_rows=bad)  # fmt: skip
    assert run("fit", "independent", "--data", "digits-binary", "--out", str(tmp_path / "c"),
               "--score-rows", "0", code=2).output  # fmt: skip
