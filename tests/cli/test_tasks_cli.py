"""`ptheta classify`, `ptheta experiment ng-jordan|missing-data` and `ptheta impute`."""

from __future__ import annotations

import json

import click
import numpy as np
import pytest
from clirun import run

from ptheta.cli import cli
from ptheta.runs.store import load_run


@pytest.fixture(scope="module")
def nb_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "nb"
    run("fit", "naive-bayes", "--data", "digits-binary", "--out", str(out), "--quiet")
    return out


def test_classify_prints_both_classifiers(tmp_path):
    out = tmp_path / "rows.json"
    text = run("classify", "--data", "digits-binary", "--model", "naive-bayes", "--out", str(out))
    assert "naive-bayes" in text.output and "logistic-regression" in text.output
    rows = json.loads(out.read_text())["rows"]
    assert [r["model"] for r in rows] == ["naive-bayes", "logistic-regression"]
    assert all(0.5 < r["accuracy"] <= 1 and r["log_loss"] > 0 for r in rows)
    # --set reaches the model: a density for the Bayes-rule classifier
    text = run("classify", "--data", "digits-binary", "--model", "bayes-classifier",
               "--set", "density=independent").output  # fmt: skip
    assert "bayes-classifier" in text


def test_ng_jordan_writes_results_table_and_plot(tmp_path):
    out = tmp_path / "ng"
    args = ["experiment", "ng-jordan", "--data", "digits-binary", "--models", "naive-bayes",
            "--sizes", "2,5", "--repeats", "2", "--out", str(out), "--quiet"]  # fmt: skip
    text = run(*args).output
    assert "logistic regression" in text  # the crossover sentence, whatever it says
    result = json.loads((out / "results.json").read_text())
    assert result["sizes"] == [2, 5] and result["n_train"] == [20, 50]
    assert np.asarray(result["curves"]["naive-bayes"]["errors"]).shape == (2, 2)
    assert (out / "learning_curves.png").stat().st_size > 1000
    assert (out / "learning_curves.csv").read_text().startswith("size/class,n train,")
    assert run(*args, ok=False).output.count("--force") == 1  # results are not overwritten
    run(*args, "--force")


def test_missing_data_writes_results_table_and_plot(tmp_path):
    out = tmp_path / "md"
    run("experiment", "missing-data", "--data", "digits-binary", "--models", "naive-bayes",
        "--fractions", "0,0.5", "--repeats", "1", "--out", str(out), "--quiet")  # fmt: skip
    result = json.loads((out / "results.json").read_text())
    assert result["fractions"] == [0.0, 0.5] and result["missing_in"] == "test"
    nb = result["curves"]["naive-bayes"]["mean"]
    assert nb[0] > nb[1] > 0.1  # half the pixels gone costs accuracy, but not all of it
    assert (out / "missing_data.png").is_file() and (out / "missing_data.csv").is_file()


@pytest.mark.parametrize("suffix", [".npy", ".csv"])
def test_impute_keeps_observed_entries_and_fills_every_missing_one(nb_run, tmp_path, suffix):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 2, size=(5, 64)).astype(np.float64)
    x[rng.random(x.shape) < 0.3] = np.nan
    src, dst = tmp_path / f"in{suffix}", tmp_path / f"out{suffix}"
    if suffix == ".npy":
        np.save(src, x)
    else:
        cells = [["" if np.isnan(v) else str(int(v)) for v in row] for row in x]
        lines = [",".join(f"p{i}" for i in range(64))] + [",".join(r) for r in cells]
        src.write_text("\n".join(lines) + "\n")
    text = run("impute", str(nb_run), "--in", str(src), "--out", str(dst), "--method", "sample")
    assert str(int(np.isnan(x).sum())) in text.output
    if suffix == ".npy":
        done = np.load(dst)
    else:
        assert dst.read_text().startswith("p0,p1,")
        done = np.loadtxt(dst, delimiter=",", skiprows=1)
    observed = ~np.isnan(x)
    assert done.shape == x.shape and not np.isnan(done).any()
    assert (done[observed] == x[observed]).all()
    assert set(np.unique(done).tolist()) <= {0.0, 1.0}
    # the filled entries are the run's model's draws with --seed (default 0), not a constant
    model = load_run(nb_run)
    np.testing.assert_array_equal(done, model.impute(x, method="sample", random_state=0))
    assert not np.array_equal(done, model.impute(x, method="sample", random_state=1))
    # --method mode: the model's most probable completion
    mode_out = tmp_path / f"mode{suffix}"
    run("impute", str(nb_run), "--in", str(src), "--out", str(mode_out), "--seed", "5")
    if suffix == ".npy":
        mode = np.load(mode_out)
    else:
        mode = np.loadtxt(mode_out, delimiter=",", skiprows=1)
    np.testing.assert_array_equal(mode, model.impute(x, method="mode"))


def test_bad_input_gives_one_line_errors(nb_run, tmp_path):
    base = ["experiment", "ng-jordan", "--data", "digits-binary", "--out", str(tmp_path / "a")]
    assert "smallest class" in run(*base, "--sizes", "2,500", ok=False).output
    assert "did you mean" in run(*base, "--models", "naive-bayse", ok=False).output
    md = ["experiment", "missing-data", "--data", "digits-binary", "--out", str(tmp_path / "b")]
    assert "[0, 1)" in run(*md, "--fractions", "0,1", ok=False).output
    assert "numbers" in run(*md, "--fractions", "0,half", ok=False).output
    out = run("classify", "--data", "digits-binary", "--model", "independent", ok=False).output
    assert "cannot classify" in out
    out = run("classify", "--data", "toy2d-moons", "--model", "naive-bayes", ok=False).output
    assert "no labels" in out
    src = tmp_path / "x.npy"
    np.save(src, np.zeros((2, 64)))
    out = run("impute", str(nb_run), "--in", str(src), "--out", str(tmp_path / "y.csv"), ok=False)
    assert "format of --in" in out.output
    np.save(src, np.zeros((2, 10)))
    out = run("impute", str(nb_run), "--in", str(src), "--out", str(tmp_path / "y.npy"), ok=False)
    assert "64 values" in out.output


def test_commands_are_registered_in_ptheta():
    ctx = click.Context(cli)
    assert {"classify", "experiment", "impute"} <= set(cli.list_commands(ctx))
    experiment = cli.get_command(ctx, "experiment")
    assert set(experiment.commands) == {"ng-jordan", "missing-data"}


@pytest.mark.parametrize(("command", "repeats"), [("ng-jordan", 10), ("missing-data", 3)])
def test_help_shows_the_default_repeats(command, repeats):
    text = run("experiment", command, "--help").output
    assert f"[default: {repeats}" in " ".join(text.split()), text
