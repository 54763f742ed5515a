"""Every hyper-parameter of every registered model is declared once (``Model.parameters``)
and checked at the start of ``fit``: a bad value is one ParameterError naming the parameter
(one line in the CLI), raised before any work on the data, never a traceback from inside.
The bad values are generated from the declarations themselves (no side tables)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from click.testing import CliRunner
from test_contract import _data

import ptheta
from ptheta.cli import cli
from ptheta.errors import CapabilityError, DataError, NotFittedError, ParameterError
from ptheta.models import REGISTRY
from ptheta.models.base import GenerativeModel
from ptheta.models.neural import TRAINING_PARAMS
from ptheta.models.sampling import sample_categorical
from ptheta.params import (
    Bool,
    Choice,
    Config,
    Device,
    Dict,
    Float,
    Int,
    IntList,
    Name,
    OneOf,
    Param,
    Seed,
    Str,
    check_choice,
    check_float,
    check_int,
    check_int_list,
    check_random_state,
)


def _fit(name: str, **params):
    """Fit ``name`` from its quick parameters updated by ``params`` on tiny data."""
    cls = REGISTRY[name]
    x, y, split = _data(cls.data_kinds[0], n=60, image=cls.needs_image)
    model = ptheta.make(name, **{**cls.quick_params, **params})
    conditional = cls.needs_labels or params.get("class_conditional") is True
    data = split if cls.data_kinds[0] == "table" else x  # an array is never read as a table
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model.fit(data, y if conditional else None)


# --------------------------------------------------------------------------- declarations
@pytest.mark.parametrize("name", list(REGISTRY))
def test_every_family_declares_exactly_its_parameters(name):
    cls = REGISTRY[name]
    declared, params = set(cls.parameters), set(cls().get_params())
    assert declared == params, f"undeclared: {params - declared}, extra: {declared - params}"
    assert all(isinstance(d, Param) for d in cls.parameters.values())
    # the defaults and the quick preset pass their own declarations
    cls().check_params()
    cls(**cls.quick_params).check_params()


def _label(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 12 else text[:10] + ".."


BAD_CASES = [
    pytest.param(name, key, value, id=f"{name}-{key}={_label(value)}")
    for name, cls in REGISTRY.items()
    for key, declaration in cls.parameters.items()
    for value in declaration.bad_values()
]


def _no_work(self, *args, **kwargs):
    raise AssertionError("fit reached the data or the training before checking parameters")


@pytest.mark.parametrize(("name", "key", "value"), BAD_CASES)
def test_every_declared_bad_value_is_one_clear_error_before_any_work(name, key, value, monkeypatch):
    cls = REGISTRY[name]
    model = ptheta.make(name, **{**cls.quick_params, key: value})  # only stores
    assert model.get_params()[key] is value
    monkeypatch.setattr(cls, "_resolve_spec", _no_work)  # the first look at the data
    monkeypatch.setattr(cls, "_fit", _no_work)  # the training
    x, y, _ = _data(cls.data_kinds[0], n=20, image=cls.needs_image)
    with pytest.raises(ParameterError) as info:
        model.fit(x, y)
    message = str(info.value)
    assert message.startswith(f"{name}: {key}"), f"the error does not name {key!r}: {message}"
    assert "\n" not in message


def test_the_generated_cases_cover_every_parameter():
    covered = {(name, key) for name, key, _ in (case.values for case in BAD_CASES)}
    every = {(n, k) for n, cls in REGISTRY.items() for k in cls.parameters}
    assert covered == every and len(BAD_CASES) > 1000


@pytest.mark.parametrize(
    "declaration",
    [
        Int(low=1),
        Int(low=1, high=3),
        Int(low=0, none=True),
        Int(low=0, flag=True),
        Int(low=3, odd=True),
        Float(low=0),
        Float(low=0, high=1, high_open=True),
        Float(low=0, high=1, low_open=True, high_open=True, none=True),
        Choice("full", "diag"),
        Bool(),
        Str(),
        Device(),
        IntList(),
        IntList(low=0, empty=False, scalar=False),
        Seed(),
        Seed(none=False),
        Dict(),
        Name(),
        OneOf(Choice("auto"), Int(low=0)),
        OneOf(Choice("learned"), Float(low=0, low_open=True)),
    ],
    ids=repr,
)
def test_each_declaration_refuses_its_bad_values_and_describes_itself(declaration):
    assert declaration.bad_values()
    for bad in declaration.bad_values():
        with pytest.raises(ParameterError, match=r"^m: p must be "):
            declaration.check("m", "p", bad)
    assert declaration.describe() and "\n" not in declaration.describe()
    with pytest.raises(AttributeError):
        declaration.none = True  # frozen


def test_declarations_normalise_and_describe():
    assert Int(low=1).check("m", "n", np.int64(3)) == 3 and Int(low=1).describe() == "int ≥ 1"
    assert Float(low=0, high=1, low_open=True, high_open=True).describe() == "float in (0, 1)"
    assert Float(low=0).check("m", "x", 1) == 1.0
    assert Choice("full", "diag").describe() == "'full' | 'diag'"
    assert Seed().describe() == "int seed in [0, 2**32-1] or None"
    assert IntList().check("m", "hidden", np.int64(8)) == [8]
    assert IntList(low=0, scalar=False).check("m", "o", np.arange(3)) == [0, 1, 2]
    with pytest.raises(ParameterError, match="odd"):
        Int(low=3, odd=True).check("pixelcnn", "kernel_size", 4)
    root = OneOf(Choice("auto"), Int(low=0))
    assert root.check("m", "root", "auto") == "auto" and root.check("m", "root", 2) == 2
    with pytest.raises(ParameterError, match="did you mean 'gmm'"):
        Name().check("bayes-classifier", "density", "gmn")


def test_a_config_is_a_frozen_record():
    config = Config({"hidden": [8]}, seed=0)
    assert config.hidden == [8] and config["seed"] == 0
    assert dict(config) == {"hidden": [8], "seed": 0}
    with pytest.raises(AttributeError, match="frozen"):
        config.hidden = [9]
    assert config.replace(seed=3).seed == 3 and config.seed == 0
    with pytest.raises(AttributeError, match="no 'depth'"):
        config.depth  # noqa: B018


def test_a_neural_module_is_built_from_one_config_of_the_estimator_parameters():
    model = ptheta.make("made", hidden=8, n_masks=2)
    config = model.config()
    assert config.hidden == [8] and config.n_masks == 2 and config.seed == 0
    assert not set(config) & (set(TRAINING_PARAMS) - {"random_state"})
    with pytest.raises(ParameterError, match="made: n_masks must be"):
        ptheta.make("made", n_masks=0).config()


# --------------------------------------------------------------------------- rules between
@pytest.mark.parametrize(
    ("name", "params", "match"),
    [
        ("ddpm", {"guidance": 1.0}, "needs class_conditional=True"),
        ("ddpm", {"sampling_steps": 5}, "applies to sampler='ddim'"),
        ("ddpm", {"sampler": "ddim", "sampling_steps": 50}, r"sampling_steps must be .* \[1, 20\]"),
        ("rbm", {"method": "cd", "sample_init": "persistent"}, "needs method='pcd'"),
        ("transformer", {"hidden": 10, "n_heads": 4}, "divisible by n_heads"),
        ("bayes-classifier", {"density": "naive-bayes"}, "itself a classifier"),
        ("bayes-classifier", {"density_params": {"alpha": -1}}, "alpha must be"),
    ],
)
def test_rules_between_parameters_are_checked_with_them(name, params, match, monkeypatch):
    cls = REGISTRY[name]
    monkeypatch.setattr(cls, "_fit", _no_work)
    with pytest.raises(ParameterError, match=match):
        _fit(name, **params)


# --------------------------------------------------------------------------- one vocabulary
RENAMES = [(name, old, new) for name, cls in REGISTRY.items() for old, new in cls.renamed.items()]


def test_the_drifting_names_are_renamed():
    assert {(n, o): w for n, o, w in RENAMES} == {
        ("gmm", "dequantize"): "dequantization",
        ("realnvp", "alpha"): "logit_alpha",
        ("maf", "alpha"): "logit_alpha",
        ("glow", "alpha"): "logit_alpha",
        ("nsf", "alpha"): "logit_alpha",
        ("transformer", "dim"): "hidden",
        ("vae", "k"): "iwae_samples",
        ("seq-vae", "k"): "iwae_samples",
        ("rbm", "k"): "gibbs_steps",
        ("ebm", "alpha"): "energy_weight",
    }


@pytest.mark.parametrize(("name", "old", "new"), RENAMES)
def test_an_old_name_is_refused_naming_the_new_one(name, old, new):
    message = rf"^{name}: '{old}' was renamed '{new}'$"
    with pytest.raises(ParameterError, match=message):
        ptheta.make(name, **{old: 1})
    with pytest.raises(ParameterError, match=message):
        ptheta.make(name).set_params(**{old: 1})
    assert new in REGISTRY[name]().get_params() and old not in REGISTRY[name]().get_params()


def test_random_state_means_the_same_everywhere():
    with_seed = [n for n, cls in REGISTRY.items() if "random_state" in cls.parameters]
    # every neural family and every classical one with random restarts takes a seed
    assert {"gmm", "bernoulli-mixture", "categorical-mixture"} <= set(with_seed)
    assert all(n in with_seed for n, cls in REGISTRY.items() if "epochs" in cls.parameters)
    for name in with_seed:
        cls = REGISTRY[name]
        assert cls().random_state == 0, name  # a default fit is reproducible
        assert cls.parameters["random_state"] == Seed(), name  # an int in [0, 2**32-1] or None


def test_random_state_none_is_fresh_randomness_for_a_neural_family_too():
    first, second = (_fit("made", random_state=None, epochs=1) for _ in range(2))
    assert 0 <= first.seed_ <= 2**32 - 1 and first.seed_ != second.seed_
    assert _fit("made", epochs=1).seed_ == 0


def test_check_params_is_the_fit_check_and_names_the_parameter():
    with pytest.raises(ParameterError, match=r"^gmm: n_components must be an integer >= 1"):
        ptheta.make("gmm", n_components=0).check_params()
    assert ptheta.make("made", hidden=4).check_params()["hidden"] == [4]
    assert isinstance(GenerativeModel.check_params, object)


# Boundary and alternative values that must still fit (numpy scalars included).
VALID = {
    "hmm": [
        {
            "n_mix": np.int64(3),
            "covariance_type": "full",
            "init": "random",
            "alpha": 0,
            "tol": 0,
            "n_init": 2,
        },
        {
            "emission": "categorical",
            "min_covar": 0.0,
            "random_state": None,
            "verbose": False,
            "max_iter": 1,
        },
    ],
    "pixelrnn": [
        {
            "architecture": "diagonal",
            "kernel_size": 5,
            "input_kernel": 3,
            "class_conditional": True,
            "schedule": "constant",
        }
    ],
    "nsf": [
        {
            "transform_type": "autoregressive",
            "mixing": "none",
            "norm": "batchnorm",
            "n_bins": 2,
            "base": "learned",
        },
        {"tail_bound": 0.5, "dequantization": "variational", "n_layers": 1},
    ],
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
    "lstm": [
        {"n_layers": 2, "dropout": 0.5, "warmup_steps": 2, "weight_decay": 0.1},
        {"random_state": None},
    ],
    "transformer": [{"context": 3, "long_sequences": "sliding"}, {"context": None, "hidden": 8}],
    "vae": [
        {"hidden": [8], "decoder_variance": 2.5, "beta": 0.5, "free_bits": 0.1},
        {"iwae_samples": 3, "random_state": None},
    ],
    "seq-vae": [{"cell": "gru", "token_dropout": 0.25, "beta_warmup_epochs": 2}],
    "realnvp": [{"coupling": "additive", "norm": "batchnorm", "base": "learned"}],
    "maf": [{"n_layers": 1, "dequantization": "variational", "n_dequant_samples": 1}],
    "glow": [{"n_levels": 1, "n_steps": 1, "logit_alpha": 0.1}],
    "ddpm": [
        {"noise_schedule": "cosine", "variance": "beta", "sampler": "ddim", "sampling_steps": 20},
        {"timesteps": np.int64(1), "architecture": "mlp", "n_blocks": 3, "p_uncond": 0.0},
        {"class_conditional": True, "guidance": 2.5, "p_uncond": 0.5, "hidden": np.int64(4)},
    ],
    "rbm": [
        {"method": "cd", "gibbs_steps": 2, "sample_chains": 3, "thin": 1, "burn_in": 0},
        {"n_hidden": np.int64(25), "ais_runs": 2, "ais_betas": 1, "sample_init": "persistent"},
    ],
    "ebm": [
        {"noise_scale": 0, "spectral_norm": True, "reinit": 1, "energy_weight": 0},
        {"sample_steps": 0, "random_state": None},
        {"noise_scale": 2.5, "n_layers": 1, "buffer_size": 1, "step_size": np.float64(0.5)},
    ],
    "gan": [
        {"loss": "wgan-gp", "n_critic": 1, "gp_weight": 0, "spectral_norm": True},
        {"class_conditional": True, "architecture": "mlp", "hidden": [], "beta1": 0},
        {"n_critic": np.int64(3), "latent_dim": 1, "validation_fraction": 0.2, "ema_decay": 0.9},
    ],
}


def test_every_registered_model_has_valid_values_to_fit():
    # the hand-picked boundary values are extras: a new family is covered by its presets
    assert set(VALID) <= set(REGISTRY)
    assert all("quick" in REGISTRY[name].presets for name in REGISTRY)


def _valid_cases() -> list[tuple[str, dict]]:
    """Each family's presets (what users get) and the boundary values listed above."""
    cases = []
    for name, cls in REGISTRY.items():
        presets = [p for key, p in sorted(cls.presets.items()) if key != "quick" or p]
        cases += [(name, dict(p)) for p in presets if "max_time" not in p]
        cases += [(name, params) for params in VALID.get(name, [])]
    return cases


@pytest.mark.parametrize(
    ("name", "params"),
    _valid_cases(),
    ids=lambda v: v if isinstance(v, str) else "-".join(v) or "defaults",
)
def test_valid_values_still_fit(name, params):
    neural = "epochs" in REGISTRY[name]().get_params()
    model = _fit(name, **{**params, **({"epochs": 1} if neural else {})})
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
        ("gmm", "toy2d-8gaussians", "random_state=-1"),
        ("independent", "toy2d-8gaussians", "min_var=NaN"),
        ("bayes-classifier", "digits-binary", "density=-1"),
        ("made", "digits-binary", "lr=Infinity"),
        # an old name: the error names the new one
        ("vae", "digits-binary", "k=5"),
        ("gmm", "toy2d-8gaussians", "dequantize=none"),
    ],
)
def test_cli_bad_setting_is_one_error_line_without_traceback(tmp_path, model, data, setting):
    out = tmp_path / "run"
    args = ["fit", model, "--data", data, "--set", setting, "--out", str(out), "--quiet"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    old = setting.split("=")[0]
    assert old in lines[0]
    renamed = REGISTRY[model].renamed.get(old)
    assert renamed is None or f"was renamed {renamed!r}" in lines[0]
    assert "Traceback" not in result.output and not out.exists()
