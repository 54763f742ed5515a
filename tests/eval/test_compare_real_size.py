"""`compare` and `ptheta models` at real size: which families the line-ups skip and why,
what a time budget reaches, what an interrupted compare leaves, what each family needs."""

from __future__ import annotations

import json
from typing import ClassVar

import numpy as np
import pytest
from click.testing import CliRunner

from ptheta.cli import cli
from ptheta.cli.models import needs
from ptheta.data import from_arrays
from ptheta.errors import DataError
from ptheta.eval import compare as cmp
from ptheta.models import REGISTRY, get_model_class, list_models, make
from ptheta.models.baselines import Independent
from ptheta.params import Float


def _images(shape, labels=False, seed=0):
    rng = np.random.default_rng(seed)
    x = (rng.random((60, *shape)) < 0.4).astype(np.int64)
    y = rng.integers(0, 3, 60) if labels else None
    return from_arrays(x, y, image_shape=None if len(shape) == 3 else (1, 4, 4))


# --------------------------------------------------------------------------- line-ups
def test_classifiers_skipped_on_labelled_data_point_to_classify():
    labelled, unlabelled = _images((16,), labels=True), _images((16,))
    for data, has_labels in ((labelled, True), (unlabelled, False)):
        names, skipped = cmp.select_models("all", data)
        reasons = {s["model"]: s["reason"] for s in skipped}
        classifiers = [n for n in REGISTRY if get_model_class(n)().capabilities().needs_labels]
        assert classifiers and not set(classifiers) & set(names)
        for name in classifiers:
            if has_labels:  # says the labels are there, and the command to run
                assert "the data have labels" in reasons[name]
                assert f"`ptheta classify --model {name}`" in reasons[name]
            else:
                assert reasons[name] == cmp.CLASSIFIER_SKIPPED


def test_sequence_families_are_skipped_on_channel_first_images():
    images, flat = _images((1, 4, 4)), _images((16,))
    sequence = [n for n in REGISTRY if get_model_class(n)().capabilities().needs_sequence]
    assert "seq-vae" in sequence
    names, skipped = cmp.select_models("all", images)
    reasons = {s["model"]: s["reason"] for s in skipped}
    for name in sequence:
        if get_model_class(name)().capabilities().fits("binary"):
            assert name not in names and reasons[name] == cmp.SEQUENCE_ON_IMAGES_SKIPPED
    # the reason for the skip: read along the channel axis, seq-vae refuses the images
    with pytest.raises(DataError, match="models sequences"):
        make("seq-vae", **REGISTRY["seq-vae"].quick_params).fit(images.train)
    # flat pixels in raster order stay a sequence (an image model), and named ones are tried
    flat_names, _ = cmp.select_models("all", flat)
    assert {"seq-vae", "lstm", "hmm"} <= set(flat_names)
    assert cmp.select_models("seq-vae", images) == (["seq-vae"], [])


# --------------------------------------------------------------------------- budgets
class TimedEM(Independent):
    """Test double of a classical family with a time limit (an EM that can stop early)."""

    name: ClassVar[str] = "test-timed-em"
    parameters: ClassVar[dict] = {
        **Independent.parameters,
        "max_time": Float(low=0, low_open=True, none=True),
    }

    def __init__(self, *, alpha: float = 0.5, min_var: float = 1e-6, max_time=None) -> None:
        super().__init__(alpha=alpha, min_var=min_var)
        self.max_time = max_time


def test_the_budget_reaches_every_family_with_a_time_limit(monkeypatch):
    monkeypatch.setitem(REGISTRY, TimedEM.name, TimedEM)
    # a classical family gets the budget alone: no epochs or schedule it does not have
    assert cmp.resolve_model_params("test-timed-em", budget_seconds=90) == {"max_time": 90.0}
    made = cmp.resolve_model_params("made", budget_seconds=90)
    assert made == {"max_time": 90.0}
    # a neural family's epochs="auto" then sets no epoch limit: the budget ends training
    assert (
        make("vae", **cmp.resolve_model_params("vae", budget_seconds=90)).train_config().epochs
        is None
    )
    assert make("vae").train_config().epochs == 200 and make("vae", epochs=7).epochs == 7
    make("test-timed-em", **cmp.resolve_model_params("test-timed-em", budget_seconds=90))


# --------------------------------------------------------------------------- Ctrl-C
def test_ctrl_c_keeps_the_finished_models_and_rerunning_reuses_them(tmp_path, monkeypatch):
    rng = np.random.default_rng(1)
    data_file = tmp_path / "bits.npy"
    np.save(data_file, (rng.random((120, 6)) < 0.3).astype(np.int64))
    args = ["compare", "--data", str(data_file), "--models", "independent,chow-liu",
            "--out", str(tmp_path / "r"), "--n-samples", "20", "--quiet"]  # fmt: skip
    fit_run = cmp.fit_run

    def interrupted(name, *a, **k):  # Ctrl-C while the second family fits
        if name == "chow-liu":
            raise KeyboardInterrupt
        return fit_run(name, *a, **k)

    monkeypatch.setattr(cmp, "fit_run", interrupted)
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "run the same command again" in result.output and "--resume" not in result.output
    monkeypatch.setattr(cmp, "fit_run", fit_run)
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    rows = {r["model"]: r for r in json.loads((tmp_path / "r" / "report.json").read_text())["rows"]}
    assert rows["independent"]["cached"] and not rows["chow-liu"]["cached"]  # as it says
    assert rows["chow-liu"]["status"] == "ok"


# --------------------------------------------------------------------------- ptheta models
def test_ptheta_models_says_what_each_family_needs():
    rows = {r["name"]: r for r in list_models()}
    assert needs(rows["pixelcnn"]["capabilities"]) == ["images"]
    assert needs(rows["seq-vae"]["capabilities"]) == ["sequences"]
    assert needs(rows["naive-bayes"]["capabilities"]) == ["labels"]
    assert needs(rows["independent"]["capabilities"]) == [] and needs(None) == []
    for name, row in rows.items():  # every word is a capability of the family's defaults
        caps = get_model_class(name)().capabilities()
        assert ("images" in needs(row["capabilities"])) == caps.needs_image
        assert ("sequences" in needs(row["capabilities"])) == caps.needs_sequence
    result = CliRunner().invoke(cli, ["models"], catch_exceptions=False, terminal_width=400)
    assert result.exit_code == 0
    header = next(line for line in result.output.splitlines() if "likelihood" in line)
    assert "needs" in header
    line = next(line for line in result.output.splitlines() if " seq-vae " in line)
    assert "sequences" in line
