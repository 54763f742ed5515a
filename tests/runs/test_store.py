"""Run directories: a damaged or partial one is refused with one RunDirError, never a traceback."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
from click.testing import CliRunner
from safetensors.numpy import load as st_load
from safetensors.numpy import save as st_save

import ptheta
import ptheta.runs.store as rundir
from ptheta.cli import cli
from ptheta.errors import RunDirError
from ptheta.models import REGISTRY
from ptheta.models.base import GenerativeModel
from ptheta.runs.layout import CONFIG, WEIGHTS
from ptheta.runs.store import load_run, read_config, save_run

RNG = np.random.default_rng(0)
X2 = RNG.normal(size=(60, 2))  # continuous, 2 dims
X3 = RNG.normal(size=(60, 3))  # continuous, 3 dims
XD = RNG.integers(0, 5, size=(60, 4))  # categorical(5), 4 dims


def _gmm(x: np.ndarray) -> GenerativeModel:
    return ptheta.make("gmm", n_components=2, max_iter=20, random_state=0).fit(x)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """Good runs to damage: a gmm on continuous data, one on 3-D data, one on discrete data."""
    base = tmp_path_factory.mktemp("runs")
    return {
        "gmm": save_run(_gmm(X2), base / "gmm"),
        "gmm3": save_run(_gmm(X3), base / "gmm3"),
        "gmm_discrete": save_run(_gmm(XD), base / "gmm_discrete"),
    }


def _copy(src: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "run"
    shutil.copytree(src, dst)
    return dst


def _edit_config(run: Path, edit, *, consistent: bool = True) -> None:
    """Edit config.json; ``consistent`` re-marks the run complete, as if it had been
    written so (the deeper checks are tested that way); otherwise the edit stays visible
    to the COMPLETE marker's checksum."""
    config = json.loads((run / CONFIG).read_text())
    edit(config)
    (run / CONFIG).write_text(json.dumps(config))
    if consistent and (run / rundir.COMPLETE).exists():
        rundir.mark_complete(run)


def _refused(run: Path, match: str) -> str:
    """load_run refuses `run` with a RunDirError whose message names the problem (`match`)
    and the fix (re-run / fit again)."""
    with pytest.raises(RunDirError, match=match) as info:
        load_run(run)
    message = str(info.value)
    assert "ptheta fit" in message, message
    assert "\n" not in message, message
    return message


def _set(key: str, value: Any):
    return lambda c: c.__setitem__(key, value)


def _set_fitted(key: str, value: Any):
    return lambda c: c["fitted"].__setitem__(key, value)


def _drop_fitted(key: str):
    return lambda c: c["fitted"].pop(key)


def _drop_spec_key(key: str):
    return lambda c: c["fitted"]["spec_"].pop(key)


# --------------------------------------------------------------------------- a good run
def test_a_good_run_loads_and_scores_the_same(runs):
    model = _gmm(X2)
    loaded = load_run(runs["gmm"])
    np.testing.assert_array_equal(loaded.score_samples(X2), model.score_samples(X2))
    np.testing.assert_array_equal(loaded.sample(4, random_state=1), model.sample(4, random_state=1))
    assert read_config(runs["gmm"])["model"] == "gmm"


# --------------------------------------------------------------------------- config.json
@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (_set("format_version", "x"), "format_version.*whole number"),
        (_set("format_version", True), "format_version.*whole number"),
        (_set("format_version", 0), "versions start at 1"),
        (lambda c: c.pop("format_version"), "no 'format_version' entry"),
        (lambda c: c.pop("fitted"), "no 'fitted' entry"),
        (_set("model", 7), "model: 7, which should be a string"),
        (_set("model", ""), "empty 'model'"),
        (_set("params", [1, 2]), "params.*should be an object"),
        (_set("fitted", [1]), "fitted.*should be an object"),
        (_set("fitted", None), "fitted.*should be an object"),
        (_set("data", [1]), "data.*should be an object"),
        (_set("weights", 123), "weights: 123, which should be a string"),
        (_set("weights", "../gmm3/weights.safetensors"), "file name inside the run directory"),
        (_set("weights", ".."), "file name inside the run directory"),
        (_set("weights_sha256", 5), "weights_sha256"),
        (_set("tuple_params", "abc"), "tuple_params.*should be a list"),
        (_set("tuple_params", [1]), "tuple_params.*list of parameter names"),
    ],
)
def test_config_entries_of_the_wrong_type_are_refused(runs, tmp_path, edit, match):
    run = _copy(runs["gmm"], tmp_path)
    _edit_config(run, edit)
    message = _refused(run, match)
    assert "config.json is corrupted or incomplete" in message


def test_a_newer_format_asks_for_an_upgrade(runs, tmp_path):
    run = _copy(runs["gmm"], tmp_path)
    _edit_config(run, _set("format_version", rundir.FORMAT_VERSION + 1))
    with pytest.raises(RunDirError, match="upgrade ptheta"):
        load_run(run)


def test_config_or_weights_being_a_directory_is_refused(runs, tmp_path):
    run = _copy(runs["gmm"], tmp_path)
    (run / CONFIG).unlink()
    (run / CONFIG).mkdir()
    _refused(run, "config.json is not a file")
    run = tmp_path / "w"
    shutil.copytree(runs["gmm"], run)
    (run / WEIGHTS).unlink()
    (run / WEIGHTS).mkdir()
    _refused(run, "weights.safetensors is not a file")


def test_unreadable_files_are_refused(runs, tmp_path, monkeypatch):
    # Permissions do not stop root, so the operating system's refusal is simulated.
    run = _copy(runs["gmm"], tmp_path)

    def no_access(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_text", no_access)
    _refused(run, r"could not read .*config.json \(Permission denied\)")
    monkeypatch.undo()
    monkeypatch.setattr(Path, "read_bytes", no_access)
    _refused(run, r"could not read .*(config.json|weights.safetensors) \(Permission denied\)")


# --------------------------------------------------------------------------- fitted state
@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (_drop_spec_key("event_shape"), "malformed data spec 'spec_'.*event_shape"),
        (_drop_spec_key("kind"), "malformed data spec 'spec_'"),
        (_set_fitted("spec_", "x"), "malformed data spec 'spec_'"),
        (_set_fitted("spec_", {"kind": "continuous", "event_shape": [0]}), "event shape"),
        (_set_fitted("spec_", {"kind": "nope", "event_shape": [2]}), "unknown data kind"),
        (_drop_fitted("spec_"), r"lacks the fitted attribute\(s\) 'spec_'"),
        (_drop_fitted("units_"), r"lacks the fitted attribute\(s\) 'units_'"),
        (_set_fitted("likelihood_", "great"), "likelihood_='great'"),
        (_set_fitted("units_", 3), "units_=3"),
        (_set_fitted("fit", 1), "entry 'fit' that is not a fitted attribute"),
        (_set_fitted("__class__", 1), "entry '__class__' that is not a fitted attribute"),
        (_set_fitted("bad_", {"__ndarray__": [1], "dtype": "nope"}), "unreadable array 'bad_'"),
        # a 3-D spec for 2-D weights: the fitted parts disagree with each other
        (
            _set_fitted("spec_", {"kind": "continuous", "event_shape": [3]}),
            r"has means_ of shape \(2, 2\), but its parameters and data spec make it \(2, 3\)",
        ),
    ],
)
def test_a_damaged_fitted_state_is_refused(runs, tmp_path, edit, match):
    run = _copy(runs["gmm"], tmp_path)
    _edit_config(run, edit)
    message = _refused(run, match)
    assert f"{run} is corrupted or incomplete" in message


def test_a_fitted_value_missing_from_config_is_found_at_load_time(runs, tmp_path):
    # dequantized_ is only read when scoring: before, load_run returned a broken model
    run = _copy(runs["gmm_discrete"], tmp_path)
    _edit_config(run, _drop_fitted("dequantized_"))
    _refused(run, "scoring one example.*AttributeError.*dequantized_")


def _rewrite_weights(run: Path, arrays: dict[str, np.ndarray], model: str = "gmm") -> None:
    """New weights for `run` with a matching checksum in its config and marker (a mix-up
    written consistently), so only the content can tell."""
    blob = st_save(arrays, metadata={"format": rundir.FORMAT, "model": model})
    (run / WEIGHTS).write_bytes(blob)
    digest = hashlib.sha256(blob).hexdigest()
    _edit_config(run, lambda c: c.__setitem__("weights_sha256", digest))


def test_an_array_missing_from_the_weights_is_found_at_load_time(runs, tmp_path):
    run = _copy(runs["gmm"], tmp_path)
    arrays = st_load((run / WEIGHTS).read_bytes())
    del arrays["covariances_"]
    _rewrite_weights(run, arrays)
    _refused(run, "lacks the fitted attribute.*covariances_")


def test_weights_of_another_fit_of_the_same_model_are_refused(runs, tmp_path):
    run = _copy(runs["gmm"], tmp_path)
    _rewrite_weights(run, st_load((runs["gmm3"] / WEIGHTS).read_bytes()))
    _refused(run, r"has means_ of shape \(2, 3\), but its parameters and data spec make it")


def test_weights_with_the_checksum_kept_are_refused_by_the_checksum(runs, tmp_path):
    run = _copy(runs["gmm"], tmp_path)
    shutil.copy(runs["gmm3"] / WEIGHTS, run / WEIGHTS)
    _refused(run, "checksum differs")


def test_a_neural_run_with_the_weights_of_another_fit_is_refused(tmp_path):
    # NADE rebuilds a torch module in its own set_state: its failure is wrapped too
    params = {"hidden": 4, "epochs": 1, "batch_size": 32, "dtype": "float64", "device": "cpu"}
    x4 = RNG.integers(0, 2, size=(40, 4))
    x5 = RNG.integers(0, 2, size=(40, 5))
    save_run(ptheta.make("nade", **params).fit(x4), tmp_path / "four")
    save_run(ptheta.make("nade", **params).fit(x5), tmp_path / "five")
    assert load_run(tmp_path / "four").score_samples(x4).shape == (40,)
    _rewrite_weights(
        tmp_path / "four", st_load((tmp_path / "five" / WEIGHTS).read_bytes()), model="nade"
    )
    message = _refused(tmp_path / "four", "four is corrupted or incomplete: RuntimeError")
    assert len(message) < 400  # torch's many-line report is cut to its first line


# --------------------------------------------------------------------------- partial runs
def test_save_run_writes_the_config_last(runs, tmp_path, monkeypatch):
    written: list[str] = []
    for name in ("atomic_write_bytes", "atomic_write_json", "atomic_write_text"):
        real = getattr(rundir, name)

        def record(path, data, _real=real):
            written.append(Path(path).name)
            _real(path, data)

        monkeypatch.setattr(rundir, name, record)
    save_run(_gmm(X2), tmp_path / "run", metrics=[{"event": "done"}])
    files = [f for f in written if f in (CONFIG, WEIGHTS)]
    assert files == [WEIGHTS, CONFIG]


def test_a_fit_that_crashed_before_the_config_leaves_no_run(tmp_path, monkeypatch):
    def crash(path, obj):
        raise KeyboardInterrupt  # killed while writing config.json

    monkeypatch.setattr(rundir, "atomic_write_json", crash)
    with pytest.raises(KeyboardInterrupt):
        save_run(_gmm(X2), tmp_path / "run")
    assert (tmp_path / "run" / WEIGHTS).is_file()
    with pytest.raises(RunDirError, match=r"interrupted run \(no config\.json yet\).*--resume"):
        load_run(tmp_path / "run")


# --------------------------------------------------------------------------- the hooks
class _Sampler(GenerativeModel):
    """A model without likelihood whose sampler reads `centre_`: a sample-only family."""

    name: ClassVar[str] = "test-sampler"
    likelihood: ClassVar[str] = "none"
    data_kinds: ClassVar[tuple[str, ...]] = ("continuous",)

    def _fit(self, x: np.ndarray, y: Any, spec: Any) -> None:
        self.centre_ = x.mean(axis=0)

    def _sample(self, n: int, y: Any, rng: np.random.Generator) -> np.ndarray:
        return self.centre_ + rng.normal(size=(n, *self.centre_.shape))


class _Strict(_Sampler):
    """The same, declaring `centre_` as required."""

    name: ClassVar[str] = "test-strict"

    def _required_attributes(self) -> tuple[str, ...]:
        return ("centre_",)


def test_a_model_without_likelihood_is_checked_by_sampling(tmp_path, monkeypatch):
    monkeypatch.setitem(REGISTRY, _Sampler.name, _Sampler)
    save_run(_Sampler().fit(X2), tmp_path / "run")
    assert load_run(tmp_path / "run").sample(3).shape == (3, 2)
    arrays = st_load((tmp_path / "run" / WEIGHTS).read_bytes())
    _rewrite_weights(tmp_path / "run", {"centre_": arrays["centre_"][:1]}, model=_Sampler.name)
    _refused(tmp_path / "run", "sampling one example with the restored 'test-sampler'")


def test_set_state_refuses_a_state_without_a_required_attribute():
    arrays, meta = _Strict().fit(X2).get_state()
    restored = _Strict().set_state(arrays, meta)
    np.testing.assert_array_equal(restored.centre_, X2.mean(axis=0))
    with pytest.raises(RunDirError, match=r"lacks the fitted attribute\(s\) 'centre_'"):
        _Strict().set_state({}, meta)
    _Sampler().set_state({}, meta)  # not declared: set_state alone cannot know
    with pytest.raises(RunDirError, match="must be mappings"):
        _Strict().set_state(arrays, [("spec_", meta["spec_"])])


# --------------------------------------------------------------------------- the CLI
def test_the_cli_prints_one_line_not_a_traceback(runs, tmp_path):
    run = _copy(runs["gmm"], tmp_path)
    _edit_config(run, _drop_spec_key("event_shape"))
    result = CliRunner().invoke(cli, ["sample", str(run), "--out", str(tmp_path / "s.npy")])
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    assert "corrupted or incomplete" in result.output
    assert not isinstance(result.exception, (KeyError, AttributeError))
