"""`ptheta anomaly` through click's test runner: a fitted run, --fit, files written, errors."""

from __future__ import annotations

import numpy as np
import pytest
from clirun import run


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "ind"
    run("fit", "independent", "--data", "digits-binary", "--out", str(out), "--quiet")
    return out


def test_run_against_a_scenario_writes_csv_and_png(tiny_run, tmp_path):
    out = tmp_path / "report"
    result = run("anomaly", str(tiny_run), "--scenario", "shuffled", "--out", str(out))
    assert "-log p (exact)" in result.output and "shuffled" in result.output
    assert (out / "anomaly_hist.png").stat().st_size > 1000
    table = np.loadtxt(out / "anomaly_scores.csv", delimiter=",", skiprows=1)
    assert table.shape == (894, 2) and table[:, 0].sum() == 447
    normal, anomalous = table[table[:, 0] == 0, 1], table[table[:, 0] == 1, 1]
    assert normal.mean() < anomalous.mean()  # shuffled digits are improbable


def test_fit_on_normal_classes(tmp_path):
    result = run(
        "anomaly",
        "--fit",
        "independent",
        "--data",
        "digits-binary",
        "--scenario",
        "held-out-classes",
        "--normal",
        "0,1",
        "--set",
        "alpha=1.0",
    )
    assert "digits-binary[0,1]" in result.output and "held-out-classes" in result.output


def test_out_data_file(tiny_run, tmp_path):
    path = tmp_path / "odd.npy"
    np.save(path, np.tile([[1, 0] * 32], (30, 1)))
    result = run("anomaly", str(tiny_run), "--out-data", str(path))
    assert "odd" in result.output and "30" in result.output


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ([], "either a RUN directory or --fit MODEL"),
        (["RUN", "--fit", "independent", "--scenario", "noise"], "either a RUN"),
        (["RUN"], "either --out-data"),
        (["RUN", "--scenario", "noise", "--out-data", "digits"], "either --out-data"),
        (["RUN", "--scenario", "held-out-classes"], "needs a model fitted on the normal"),
        (["RUN", "--scenario", "noise", "--set", "alpha=1"], "apply to --fit MODEL"),
        (["--fit", "independent", "--scenario", "noise"], "--fit needs --data"),
        (["--fit", "independnt", "--data", "digits", "--scenario", "noise"], "did you mean"),
        (["RUN", "--out-data", "digits"], "values in"),  # 0..16 levels vs a binary model
    ],
)
def test_bad_usage_is_one_line(tiny_run, args, match):
    args = [str(tiny_run) if a == "RUN" else a for a in args]
    result = run("anomaly", *args, ok=False)
    assert match in result.output and "Traceback" not in result.output
