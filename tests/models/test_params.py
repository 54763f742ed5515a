"""Every hyper-parameter of every registered model is validated at fit time: a bad value is
one PthetaError naming the parameter (one line in the CLI), never a traceback from inside."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from click.testing import CliRunner
from test_contract import _data

import ptheta
from ptheta.cli import cli
from ptheta.errors import CapabilityError, DataError, NotFittedError, ParameterError, PthetaError
from ptheta.models import REGISTRY
from ptheta.models.sampling import sample_categorical
from ptheta.params import (
    check_choice,
    check_float,
    check_int,
    check_int_list,
    check_random_state,
)

# None switches these off although their default is on; every other parameter takes None
# only where its default is None.
NONE_SWITCHES_OFF = {"grad_clip", "patience"}
# Real-valued parameters whose default is None (2.5 may be valid for them).
REAL_DEFAULT_NONE = {"max_time", "ema_decay", "noise_scale"}
# A list of two integers, or a dict, is a valid value of these.
TAKES_INT_LIST = {("made", "hidden"), ("vae", "hidden"), ("gan", "hidden")}
# String-valued by default but a positive real is valid too.
TAKES_REAL = {("vae", "decoder_variance")}
TAKES_DICT = {("bayes-classifier", "density_params")}


def _fit(name: str, **params):
    """Fit ``name`` from its quick parameters updated by ``params`` on tiny data."""
    cls = REGISTRY[name]
    x, y, _ = _data(cls.data_kinds[0], n=60, image=cls.needs_image)
    model = ptheta.make(name, **{**cls.quick_params, **params})
    conditional = cls.needs_labels or params.get("class_conditional") is True
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model.fit(x, y if conditional else None)


def _bad_values(name: str, key: str) -> list[tuple[str, object]]:
    """(label, value) pairs that no parameter ``key`` of model ``name`` accepts."""
    default = REGISTRY[name]().get_params()[key]
    bad = [("abc", "abc"), ("nan", math.nan), ("inf", math.inf), ("-1", -1)]
    if (name, key) not in TAKES_DICT:
        bad.append(("dict", {}))
    if default is not None and key not in NONE_SWITCHES_OFF:
        bad.append(("None", None))
    if (
        not isinstance(default, float)
        and key not in REAL_DEFAULT_NONE
        and ((name, key) not in TAKES_REAL)
    ):
        bad.append(("2.5", 2.5))  # an integer, a string, a flag: never 2.5
    if not isinstance(default, bool) and key != "verbose":
        bad.append(("True", True))
    if (name, key) not in TAKES_INT_LIST:
        bad.append(("[1,2]", [1, 2]))
    return bad


BAD_CASES = [
    pytest.param(name, key, value, id=f"{name}-{key}={label}")
    for name, cls in REGISTRY.items()
    for key in sorted(cls().get_params())
    for label, value in _bad_values(name, key)
]


@pytest.mark.parametrize(("name", "key", "value"), BAD_CASES)
def test_every_bad_hyper_parameter_is_one_clear_error_at_fit(name, key, value):
    model = ptheta.make(name, **{**REGISTRY[name].quick_params, key: value})  # only stores
    assert model.get_params()[key] is value
    with pytest.raises(PthetaError) as info:
        _fit(name, **{key: value})
    message = str(info.value)
    assert key in message, f"the error does not name {key!r}: {message}"
    assert "\n" not in message


# Boundary and alternative values that must still fit (numpy scalars included).
VALID = {
    "independent": [{"alpha": 0, "min_var": 0.0}, {"alpha": np.float64(2.0)}],
    "markov": [{"order": 3, "homogeneous": True, "alpha": 0}, {"order": np.int64(2)}],
    "gmm": [
        {"n_components": np.int64(2), "tol": 0, "max_iter": 1, "init": "random"},
        {"n_init": 2, "random_state": 2**32 - 1, "dtype": "float32", "verbose": False},
        {"covariance_type": "diag", "random_state": None, "reg_covar": 0.0},
    ],
    "bernoulli-mixture": [{"alpha": 0, "random_state": None, "verbose": 0}],
    "categorical-mixture": [{"alpha": 0, "init": "random", "n_init": 2}],
    "naive-bayes": [{"alpha": 1e-9, "var_smoothing": 0, "prior": "uniform", "prior_alpha": 1}],
    "bayes-classifier": [{"density": "gmm", "density_params": {"n_components": 1}}],
    "chow-liu": [{"alpha": 0, "root": 5}, {"root": np.int64(0), "class_conditional": True}],
    "nade": [
        {"ordering": [5, 4, 3, 2, 1, 0], "class_conditional": True, "validation_fraction": 0},
        {"ordering": "random", "patience": None, "grad_clip": None, "ema_decay": 0.9},
    ],
    "made": [{"hidden": []}, {"hidden": 4, "max_time": 30, "random_state": 2**32 - 1}],
    "pixelcnn": [{"kernel_size": 5, "class_conditional": True, "schedule": "constant"}],
    "lstm": [{"n_layers": 2, "dropout": 0.5, "warmup_steps": 2, "weight_decay": 0.1}],
    "transformer": [{"context": 3, "long_sequences": "sliding"}, {"context": None}],
    "vae": [{"hidden": [8], "decoder_variance": 2.5, "beta": 0.5, "free_bits": 0.1}],
    "seq-vae": [{"cell": "gru", "token_dropout": 0.25, "beta_warmup_epochs": 2}],
    "realnvp": [{"coupling": "additive", "norm": "batchnorm", "base": "learned"}],
    "maf": [{"n_layers": 1, "dequantization": "variational", "n_dequant_samples": 1}],
    "glow": [{"n_levels": 1, "n_steps": 1, "alpha": 0.1}],
    "ddpm": [
        {"noise_schedule": "cosine", "variance": "beta", "sampler": "ddim", "sampling_steps": 20},
        {"timesteps": np.int64(1), "architecture": "mlp", "n_blocks": 3, "p_uncond": 0.0},
        {"class_conditional": True, "guidance": 2.5, "p_uncond": 0.5, "hidden": np.int64(4)},
    ],
    "rbm": [
        {"method": "cd", "k": 2, "sample_chains": 3, "thin": 1, "burn_in": 0},
        {"n_hidden": np.int64(25), "ais_runs": 2, "ais_betas": 1, "sample_init": "persistent"},
    ],
    "ebm": [
        {"noise_scale": 0, "spectral_norm": True, "reinit": 1, "alpha": 0, "sample_steps": 0},
        {"noise_scale": 2.5, "n_layers": 1, "buffer_size": 1, "step_size": np.float64(0.5)},
    ],
    "gan": [
        {"loss": "wgan-gp", "n_critic": 1, "gp_weight": 0, "spectral_norm": True},
        {"class_conditional": True, "architecture": "mlp", "hidden": [], "beta1": 0},
        {"n_critic": np.int64(3), "latent_dim": 1, "validation_fraction": 0.2, "ema_decay": 0.9},
    ],
}


def test_every_registered_model_has_valid_values_listed():
    assert set(VALID) == set(REGISTRY)


@pytest.mark.parametrize(
    ("name", "params"),
    [(name, params) for name, cases in VALID.items() for params in cases],
    ids=lambda v: v if isinstance(v, str) else "-".join(v),
)
def test_valid_values_still_fit(name, params):
    neural = "epochs" in REGISTRY[name]().get_params()
    model = _fit(name, **params, **({"epochs": 1} if neural else {}))
    assert model.is_fitted()


# --------------------------------------------------------------------------- validators
def test_validators_refuse_silent_conversions_and_name_the_fix():
    with pytest.raises(ParameterError, match=r"^gmm: max_iter must be an integer >= 1, got 2\.5$"):
        check_int("gmm", "max_iter", 2.5, low=1)
    for bad in (True, "3", 3.0, math.nan, None, 11):
        with pytest.raises(ParameterError):
            check_int("m", "k", bad, low=1, high=10)
    assert check_int("m", "k", np.int64(3), low=1) == 3
    assert check_int("m", "verbose", True, low=0, allow_bool=True) is True
    assert check_float("m", "x", 1, low=0) == 1.0
    for bad in (math.nan, math.inf, -math.inf, False, "1", 10**400, 0.0):
        with pytest.raises(ParameterError):
            check_float("m", "x", bad, low=0, low_open=True)
    with pytest.raises(ParameterError, match=r"in \[0, 1\)"):
        check_float("m", "dropout", 1.0, low=0, high=1, high_open=True)
    with pytest.raises(ParameterError, match="'full' or 'diag', got \\['full'\\]"):
        check_choice("gmm", "covariance_type", ["full"], ("full", "diag"))
    assert check_int_list("made", "hidden", (4, np.int64(5))) == [4, 5]
    for bad in ("8", [8, 2.5], [True], [0], {8}):
        with pytest.raises(ParameterError, match="hidden"):
            check_int_list("made", "hidden", bad)
    for bad in (-1, 2**32, 2.5, "0", True):
        with pytest.raises(ParameterError, match="random_state"):
            check_random_state("gmm", "random_state", bad)
    with pytest.raises(ParameterError):
        check_random_state("made", "random_state", None, allow_none=False)


def test_sample_categorical_follows_the_weights_and_never_draws_zero_weights():
    rng = np.random.default_rng(0)
    probs = np.array([0.1, 0.0, 0.6, 0.3])
    draws = sample_categorical(probs, rng, size=20_000)
    assert draws.shape == (20_000,) and draws.dtype == np.int64
    np.testing.assert_allclose(np.bincount(draws, minlength=4) / 20_000, probs, atol=0.015)
    inf = -np.inf  # log-weights: unnormalised, with impossible levels
    logits = np.array([[0.0, inf, np.log(3.0)], [inf, 5.0, 5.0]])
    draws = sample_categorical(logits, rng, log=True, size=8_000)  # (8000, 2)
    assert draws.shape == (8_000, 2) and 1 not in draws[:, 0] and 0 not in draws[:, 1]
    assert abs((draws[:, 0] == 2).mean() - 0.75) < 0.02
    batch = np.broadcast_to(probs, (3, 5, 4))
    assert sample_categorical(batch, rng).shape == (3, 5)


# --------------------------------------------------------------------------- API holes
def test_chow_liu_without_classes_cannot_predict_and_unfitted_cannot_lay_out():
    x, _, _ = _data("binary", n=60)
    model = ptheta.make("chow-liu").fit(x)
    with pytest.raises(CapabilityError, match="class_conditional=True"):
        model.predict(x)
    with pytest.raises(NotFittedError):
        ptheta.make("chow-liu").layered_layout()
    assert model.layered_layout().shape == (6, 2)


# predict exists on an instance only where the model can honour it (a mixture's components,
# a classifier's classes): hasattr on the instance, not the class
@pytest.mark.parametrize("name", [n for n in REGISTRY if hasattr(ptheta.make(n), "predict")])
def test_predict_before_fit_is_a_not_fitted_error(name):
    x, _, _ = _data(REGISTRY[name].data_kinds[0], n=20, image=REGISTRY[name].needs_image)
    with pytest.raises(NotFittedError):
        ptheta.make(name).predict(x)


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("naive-bayes", {}),
        ("bayes-classifier", {}),
        ("chow-liu", {"class_conditional": True}),
        ("nade", {"class_conditional": True, "epochs": 1}),
    ],
)
@pytest.mark.parametrize("missing", [math.nan, None])
def test_missing_class_labels_are_a_data_error(name, params, missing):
    cls = REGISTRY[name]
    x, y, _ = _data(cls.data_kinds[0], n=60)
    labels = y.astype(object if missing is None else np.float64)
    labels[[3, 7]] = missing
    model = ptheta.make(name, **{**cls.quick_params, **params})
    with pytest.raises(DataError, match=r"2 class label\(s\) are missing .* rows \[3, 7\]"):
        model.fit(x, labels)


def test_unknown_validation_labels_are_a_data_error():
    from ptheta.data.spec import Split

    x, y, split = _data("binary", n=60)
    model = ptheta.make("nade", **REGISTRY["nade"].quick_params, class_conditional=True)
    with pytest.raises(DataError, match=r"validation labels \[5\]"):
        model.fit(x, y, validation_data=Split(x[:10], np.full(10, 5), split.spec))


# --------------------------------------------------------------------------- CLI
@pytest.mark.parametrize(
    ("model", "data", "setting"),
    [
        ("gmm", "toy2d-8gaussians", "max_iter=abc"),
        ("gmm", "toy2d-8gaussians", "tol=abc"),
        ("gmm", "toy2d-8gaussians", "random_state=-1"),
        ("gmm", "toy2d-8gaussians", "dtype=[1,2]"),
        ("independent", "toy2d-8gaussians", "min_var=NaN"),
        ("bayes-classifier", "digits-binary", "density=-1"),
        ("naive-bayes", "digits-binary", "prior_alpha=NaN"),
        ("made", "digits-binary", "lr=Infinity"),
    ],
)
def test_cli_bad_setting_is_one_error_line_without_traceback(tmp_path, model, data, setting):
    out = tmp_path / "run"
    args = ["fit", model, "--data", data, "--set", setting, "--out", str(out), "--quiet"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    assert setting.split("=")[0] in lines[0]
    assert "Traceback" not in result.output and not out.exists()
