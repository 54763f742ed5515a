"""The command line through click's test runner: every command, then every bad input."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

import ptheta
from ptheta.cli import cli


def run(*args: str, ok: bool = True):
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    if ok:
        assert result.exit_code == 0, result.output
    return result


@pytest.fixture(scope="module")
def gmm_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "g8"
    run(
        "fit",
        "gmm",
        "--data",
        "toy2d-8gaussians",
        "--set",
        "n_components=8",
        "--set",
        "random_state=0",
        "--out",
        str(out),
        "--quiet",
    )
    return out


def test_models_and_datasets_list_the_registry():
    out = run("models").output
    for name in ptheta.REGISTRY:
        assert name in out
    assert "n_components" in run("models", "gmm").output
    nade = run("models", "nade").output  # its own and the shared training parameters
    assert "ordering" in nade and "epochs" in nade and "inspect" not in nade
    rows = json.loads(run("models", "--json").output)
    assert {r["name"] for r in rows} == set(ptheta.REGISTRY)
    out = run("datasets").output
    assert "digits-binary" in out and "toy2d-8gaussians" in out and "1,000" in out


def test_models_legend_explains_every_word_of_the_can_column():
    caps = ptheta.make("hmm").capabilities()
    every = dataclasses.replace(
        caps, **{f.name: True for f in dataclasses.fields(caps) if f.type in ("bool", bool)}
    )
    text = " ".join(run("models").output.split())
    legend = text[text.index("can: classify") :]
    for word in every.flags():
        assert f"{word} (" in legend or f"{word}." in legend or f"{word}," in legend, word


def test_fit_writes_a_complete_run_directory(gmm_run):
    for name in ("config.json", "weights.safetensors", "metrics.jsonl", "samples.png"):
        assert (gmm_run / name).is_file(), name
    config = json.loads((gmm_run / "config.json").read_text())
    assert config["model"] == "gmm" and config["params"]["n_components"] == 8
    assert config["data"]["name"] == "toy2d-8gaussians" and config["data"]["fingerprint"]
    records = [json.loads(line) for line in (gmm_run / "metrics.jsonl").read_text().splitlines()]
    steps = [r["objective"] for r in records if r["event"] == "fit_step"]
    assert steps and np.all(np.diff(steps) >= -1e-9)
    assert not list(gmm_run.glob(".*tmp")), "no temporary files left behind"


def test_fit_prints_a_table_and_load_rebuilds_the_model(gmm_run):
    model = ptheta.load(gmm_run)
    data = ptheta.datasets.load("toy2d-8gaussians")
    assert model.n_components == 8
    assert model.score(data.val.x) > -2.5


@pytest.mark.parametrize("suffix", [".npy", ".csv", ".png"])
def test_sample_writes_each_format(gmm_run, tmp_path, suffix):
    out = tmp_path / f"s{suffix}"
    result = run("sample", str(gmm_run), "-n", "50", "--out", str(out), "--seed", "1")
    assert out.is_file() and "50" in result.output
    if suffix == ".npy":
        samples = np.load(out)
        np.testing.assert_array_equal(samples, ptheta.load(gmm_run).sample(50, random_state=1))
    elif suffix == ".csv":
        assert np.loadtxt(out, delimiter=",", skiprows=1).shape == (50, 2)


def test_score_writes_one_row_per_example(gmm_run, tmp_path):
    out = tmp_path / "scores.csv"
    run("score", str(gmm_run), "--data", "toy2d-8gaussians", "--split", "test", "--out", str(out))
    table = np.genfromtxt(out, delimiter=",", names=True)
    data = ptheta.datasets.load("toy2d-8gaussians")
    assert table.shape == (len(data.test),)
    np.testing.assert_allclose(
        table["log_prob"], ptheta.load(gmm_run).score_samples(data.test.x), rtol=1e-8
    )


def test_eval_reports_nats_and_bits_per_dim(gmm_run):
    out = run("eval", str(gmm_run), "--data", "toy2d-8gaussians").output
    model, data = ptheta.load(gmm_run), ptheta.datasets.load("toy2d-8gaussians")
    nll = -model.score(data.test.x)
    assert f"{nll:.2f}" in out and f"{nll / (2 * np.log(2)):.2f}" in out
    assert "bits/dim" in out and "exact (density)" in out and "true entropy" in out
    # without --data the run's own data set is used
    assert f"{nll:.2f}" in run("eval", str(gmm_run), "--split", "test").output


def test_parameter_precedence_defaults_then_file_then_flags(tmp_path):
    config = tmp_path / "gmm.toml"
    config.write_text("[params]\nn_components = 2\ncovariance_type = 'diag'\nrandom_state = 0\n")
    out = tmp_path / "run"
    run(
        "fit",
        "gmm",
        "--data",
        "toy2d-moons",
        "--config",
        str(config),
        "--set",
        "n_components=3",
        "--out",
        str(out),
        "--quiet",
    )
    model = ptheta.load(out)
    assert model.n_components == 3  # flag beats file
    assert model.covariance_type == "diag"  # file beats default
    assert model.max_iter == 200  # default kept


def test_digits_gmm_reports_a_bound_in_discrete_units(tmp_path):
    out = tmp_path / "dg"
    result = run(
        "fit",
        "gmm",
        "--data",
        "digits",
        "--set",
        "n_components=2",
        "--set",
        "covariance_type=diag",
        "--out",
        str(out),
        "--quiet",
    )
    assert "bound" in result.output
    assert "bound" in run("eval", str(out), "--split", "test").output


# --------------------------------------------------------------------------- bad input
def _fails(*args: str, match: str):
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == 2, result.output
    assert match in result.output, result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    return result


def test_unknown_names_suggest_alternatives(tmp_path):
    _fails(
        "fit", "gmn", "--data", "digits", "--out", str(tmp_path / "x"), match="did you mean 'gmm'"
    )
    _fails(
        "fit", "gmm", "--data", "digts", "--out", str(tmp_path / "x"), match="did you mean 'digits'"
    )
    _fails(
        "fit",
        "gmm",
        "--data",
        "digits",
        "--set",
        "n_component=3",
        "--out",
        str(tmp_path / "x"),
        match="n_components",
    )
    _fails(
        "fit",
        "gmm",
        "--data",
        "digits",
        "--set",
        "n_components",
        "--out",
        str(tmp_path / "x"),
        match="key=value",
    )


def test_run_directory_problems(gmm_run, tmp_path):
    _fails("eval", str(tmp_path / "nope"), match="does not exist")
    (tmp_path / "empty").mkdir()
    _fails(
        "sample",
        str(tmp_path / "empty"),
        "--out",
        str(tmp_path / "s.npy"),
        match="not a ptheta run directory",
    )
    broken = tmp_path / "broken"
    shutil.copytree(gmm_run, broken)
    (broken / "config.json").write_text("{ not json")
    _fails("eval", str(broken), match="corrupted")
    shutil.copytree(gmm_run, tmp_path / "truncated")
    (tmp_path / "truncated" / "weights.safetensors").write_bytes(b"\x00" * 10)
    _fails("eval", str(tmp_path / "truncated"), match="corrupted")
    # weights of another model under this config
    other = tmp_path / "other"
    run("fit", "independent", "--data", "toy2d-8gaussians", "--out", str(other), "--quiet")
    mixed = tmp_path / "mixed"
    shutil.copytree(gmm_run, mixed)
    shutil.copy(other / "weights.safetensors", mixed / "weights.safetensors")
    config = json.loads((mixed / "config.json").read_text())
    config.pop("weights_sha256")
    (mixed / "config.json").write_text(json.dumps(config))
    # without its checksum a config is refused outright (the checksum is mandatory)
    _fails("eval", str(mixed), match="no 'weights_sha256' entry")
    # refusing to overwrite
    _fails("fit", "gmm", "--data", "toy2d-moons", "--out", str(gmm_run), match="--force")


def test_data_problems(gmm_run, tmp_path):
    bad = tmp_path / "nan.npy"
    x = np.random.default_rng(0).normal(size=(30, 2))
    x[3, 1] = np.nan
    np.save(bad, x)
    # a continuous chain fits complete examples only: one message naming families that don't
    result = _fails(
        "fit", "markov", "--data", str(bad), "--out", str(tmp_path / "r1"), match="NaN"
    )  # fmt: skip
    assert "state-space" in result.output
    empty = tmp_path / "empty.npy"
    np.save(empty, np.zeros((0, 3)))
    _fails(
        "fit",
        "independent",
        "--data",
        str(empty),
        "--out",
        str(tmp_path / "r2"),
        match="at least 3 examples",
    )
    # a run fitted on 2-D points, scored on 64-pixel images
    _fails("eval", str(gmm_run), "--data", "digits", match="shape")
    _fails(
        "fit",
        "gmm",
        "--data",
        "toy2d-moons",
        "--kind",
        "categorical:3",
        "--out",
        str(tmp_path / "r3"),
        match="non-integer",
    )
    _fails("sample", str(gmm_run), "--out", str(tmp_path / "s.dat"), match=".npy")
    _fails("sample", str(gmm_run), "--out", str(tmp_path / "s.txt"), match="sequence data")


def test_the_demo_line_up_comes_from_the_families_presets():
    from ptheta.cli import demo
    from ptheta.models import REGISTRY, with_preset

    models = demo.demo_models()
    assert list(models) == with_preset("demo") and "gan" in models
    assert all(models[name] == REGISTRY[name].presets["demo"] for name in models)
    # the truth table: the demo's exact classical families of binary data
    assert demo.truth_models() == ["independent", "markov", "chow-liu"]


def test_demo_is_a_quick_compare_printing_its_tables(tmp_path, monkeypatch):
    from ptheta.cli import demo

    monkeypatch.setattr(
        demo, "demo_models", lambda: {"independent": {}, "gmm": {"n_components": 2}}
    )
    monkeypatch.setattr(demo, "truth_models", lambda: ["chow-liu"])
    # small unlabelled data instead of digits: no feature classifier to train in a test
    bits = (np.random.default_rng(0).random((200, 6)) < 0.3).astype(np.int64)
    np.save(tmp_path / "bits.npy", bits)
    monkeypatch.setattr(demo, "DEMO_DATA", str(tmp_path / "bits.npy"))
    out = run("demo", "--out", str(tmp_path / "demo")).output
    assert "test NLL on bits.npy" in out and "independent" in out and "bound (deq.)" in out
    assert "true entropy of the data" in out and "groundtruth-tree" in out
    report = json.loads((tmp_path / "demo" / "bits.npy" / "report.json").read_text())
    assert [r["model"] for r in report["rows"]] == ["independent", "gmm"]
    assert (tmp_path / "demo" / "bits.npy" / "samples" / "gmm.png").is_file()
    assert (tmp_path / "demo" / "groundtruth-tree" / "runs" / "chow-liu" / "config.json").is_file()


def test_console_script_runs_outside_the_test_runner():
    import subprocess
    import sys
    from pathlib import Path

    script = Path(sys.executable).with_name("ptheta")
    result = subprocess.run(
        [str(script), "fit", "--help"], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "--set KEY=VALUE" in result.stdout
    bad = subprocess.run(
        [str(script), "eval", "/no/such/run"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert bad.returncode == 2 and "does not exist" in bad.stderr and "Traceback" not in bad.stderr


NEURAL = ["--data", "digits-binary", "--set", "hidden=[8]", "--set", "epochs=3",
          "--set", "batch_size=100", "--set", "device=cpu", "--quiet"]  # fmt: skip


def test_an_interrupted_neural_fit_resumes_to_the_same_weights(tmp_path, monkeypatch):
    from safetensors.numpy import load_file

    from ptheta.train.trainer import Trainer

    run("fit", "made", *NEURAL, "--out", str(tmp_path / "straight"))
    original = Trainer.fit

    def interrupted_fit(self, *args, **kwargs):
        def stop(step: int, loss: float) -> None:
            if step == 13:  # 9 steps per epoch: in the middle of the second
                raise KeyboardInterrupt

        return original(self, *args, **{**kwargs, "callback": stop})

    monkeypatch.setattr(Trainer, "fit", interrupted_fit)
    # interrupted with a progress bar, resumed without one: display settings may change
    _fails("fit", "made", *NEURAL[:-1], "--out", str(tmp_path / "resumed"), match="--resume")
    assert not (tmp_path / "resumed" / "config.json").exists()
    monkeypatch.setattr(Trainer, "fit", original)
    run("fit", "made", *NEURAL, "--out", str(tmp_path / "resumed"), "--resume")
    straight = load_file(tmp_path / "straight" / "weights.safetensors")
    resumed = load_file(tmp_path / "resumed" / "weights.safetensors")
    for key in straight:
        np.testing.assert_array_equal(resumed[key], straight[key], err_msg=key)
    # a complete run has nothing to resume; neither has an empty folder, for any family
    _fails("fit", "made", *NEURAL, "--set", "lr=0.5", "--out", str(tmp_path / "resumed"),
           "--resume", match="already complete")  # fmt: skip
    _fails("fit", "made", *NEURAL, "--out", str(tmp_path / "new"), "--resume",
           match="nothing to resume")  # fmt: skip
    _fails("fit", "gmm", "--data", "digits", "--out", str(tmp_path / "g"), "--resume",
           match="nothing to resume")  # fmt: skip


def test_unwritable_paths_are_one_line_errors(gmm_run, tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("x")
    _fails("fit", "independent", "--data", "digits-binary", "--out", str(afile / "sub"),
           match="check the path")  # fmt: skip
    _fails("sample", str(gmm_run), "--out", str(afile / "s.npy"), match="check the path")
    _fails("score", str(gmm_run), "--out", str(afile / "s.csv"), match="check the path")


def test_run_files_are_strict_json_even_with_infinite_nll(tmp_path):
    def strict(text: str):
        def refuse(constant: str):
            raise AssertionError(f"non-standard JSON constant {constant}")

        return json.loads(text, parse_constant=refuse)

    out = tmp_path / "m"
    # alpha=0: levels never seen in training get probability 0, so some NLL is infinite
    run("fit", "markov", "--data", "digits-binary", "--set", "alpha=0", "--out", str(out))
    strict((out / "config.json").read_text())
    records = [strict(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    val = next(r for r in records if r.get("split") == "val")
    assert val["nll_nats"] is None  # infinite: written as null, not Infinity
    mask = os.umask(0)
    os.umask(mask)
    assert (out / "config.json").stat().st_mode & 0o777 == 0o666 & ~mask  # not mkstemp's 0600


def test_sequence_sampling_options_and_decoded_text(tmp_path):
    text = tmp_path / "t.txt"
    text.write_text("abcabcabd " * 60)
    out = tmp_path / "lstm"
    run("fit", "lstm", "--data", str(text), "--seq-len", "8", "--set", "hidden=8",
        "--set", "epochs=1", "--set", "device=cpu", "--out", str(out), "--quiet")  # fmt: skip
    written = tmp_path / "s.txt"
    run("sample", str(out), "-n", "3", "--out", str(written), "--temperature", "0.5",
        "--top-k", "2", "--prompt", "ab")  # fmt: skip
    blocks = written.read_text().split("--- sample ")[1:]
    assert len(blocks) == 3
    assert all(block.split("\n", 1)[1].startswith("ab") for block in blocks)
    # greedy is deterministic whatever the seed
    a, b = tmp_path / "a.npy", tmp_path / "b.npy"
    run("sample", str(out), "-n", "2", "--out", str(a), "--temperature", "0", "--seed", "1")
    run("sample", str(out), "-n", "2", "--out", str(b), "--temperature", "0", "--seed", "2")
    np.testing.assert_array_equal(np.load(a), np.load(b))
    _fails("sample", str(out), "--out", str(written), "--prompt", "xyz", match="never saw")


def test_sequence_options_on_other_models_are_refused(gmm_run, tmp_path):
    _fails("sample", str(gmm_run), "--out", str(tmp_path / "s.npy"), "--temperature", "0.5",
           match="sequence models")  # fmt: skip


@pytest.mark.parametrize(("name", "validates"), [("ebm", False), ("gan", False), ("made", True)])
def test_fit_validates_only_where_the_loss_measures_fit(tmp_path, name, validates):
    """A GAN's or an EBM's loss says nothing about fit: early stopping on it would keep
    arbitrary weights, so `ptheta fit` holds no validation data out for them."""
    from ptheta.models import REGISTRY
    from ptheta.runs.store import read_metrics

    quick = {**REGISTRY[name].quick_params, "epochs": 2, "dtype": "float32"}
    sets = [a for k, v in quick.items() for a in ("--set", f"{k}={json.dumps(v)}")]
    data = "toy2d-moons" if name != "made" else "digits-binary"
    run("fit", name, "--data", data, *sets, "--out", str(tmp_path / name))
    epochs = [r for r in read_metrics(tmp_path / name) if r.get("event") == "epoch"]
    assert len(epochs) == 2
    assert all(("val_nll" in r or "val_loss" in r) == validates for r in epochs)


def test_help_names_every_input_the_commands_accept():
    """`--help` is where a user looks first: it lists .txt data (fit lstm --data book.txt),
    every spelling impute reads as missing, and the XDG cache the explorer really uses."""
    for command in (("fit",), ("score",), ("compare",), ("datasets",)):
        assert ".txt" in run(*command, "--help").output, command
    impute = " ".join(run("impute", "--help").output.split())
    assert "empty cells, nan, NA or ?" in impute
    explore = run("explore", "--help").output
    assert "XDG_CACHE_HOME" in explore


@pytest.mark.parametrize(
    ("family", "expected"),
    [
        ("flow-matching", "ODE likelihood: rk4, 4 steps, 16 function evaluations per solve"),
        ("ncsn", "has no likelihood, so there is no NLL to report"),
    ],
)
def test_eval_says_how_an_ode_likelihood_was_computed_or_why_there_is_none(
    tmp_path, family, expected
):
    out = tmp_path / "run"
    quick = ptheta.models.REGISTRY[family].quick_params
    sets = [a for k, v in quick.items() for a in ("--set", f"{k}={v}")]
    run("fit", family, "--data", "toy2d-moons", *sets, "--set", "ode_steps=4" if
        family == "flow-matching" else "epochs=1", "--out", str(out))  # fmt: skip
    text = run("eval", str(out), "--split", "test").output
    assert expected in " ".join(text.split())  # rich may wrap the line


def test_data_errors_name_the_flags_a_command_line_user_types(tmp_path):
    np.save(tmp_path / "levels.npy", np.arange(40)[:, None] % 3 * np.ones((1, 4), int))
    result = _fails(
        "fit", "independent", "--data", str(tmp_path / "levels.npy"), "--kind", "binary",
        "--out", str(tmp_path / "r"), match="load it with --kind categorical",
    )  # fmt: skip
    assert "kind='" not in result.output


def test_set_none_is_the_choice_named_none_or_none_by_what_the_parameter_takes():
    from ptheta.cli.common import resolve_params
    from ptheta.errors import ParameterError

    # a choice named "none": the string (it once arrived as None and was refused)
    assert resolve_params("nsf", None, ["mixing=none", "norm=None"]) == {
        "mixing": "none",
        "norm": "none",
    }
    ptheta.make("nsf", **resolve_params("nsf", None, ["mixing=none"])).check_params()
    # a parameter that takes None: None, however it is spelt
    assert resolve_params("ddpm", None, ["ema_decay=none"]) == {"ema_decay": None}
    assert resolve_params("ddpm", None, ["ema_decay=null"]) == {"ema_decay": None}
    # neither: None, which the parameter's own check refuses with its message
    params = resolve_params("gmm", None, ["n_components=none"])
    assert params == {"n_components": None}
    with pytest.raises(ParameterError, match="n_components"):
        ptheta.make("gmm", **params).check_params()


def test_compare_reads_set_none_as_fit_does(tmp_path):
    from ptheta.cli.compare import model_overrides

    config = tmp_path / "models.json"
    config.write_text(json.dumps({"maf": {"norm": None}, "nope": {"x": None}}))
    overrides = model_overrides(str(config), ("nsf.mixing=none", "ddpm.ema_decay=none"))
    assert overrides == {
        "maf": {"norm": "none"},
        "nope": {"x": None},  # an unknown family: left for the line-up to refuse
        "nsf": {"mixing": "none"},
        "ddpm": {"ema_decay": None},
    }
