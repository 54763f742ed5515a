"""What the explorer's views compute, from ptheta's own fitted models: JSON-able dicts, no HTTP.

:class:`Explorer` holds one method per API endpoint; every argument is validated here (a
ptheta error naming the problem and the fix), so the functions are safe without the app.
Models are fitted on first use and cached as ptheta run directories by :class:`ModelCache`.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

import ptheta
from ptheta.data import Dataset
from ptheta.data.spec import DataSpec
from ptheta.errors import ParameterError, PthetaError, UnknownNameError, unknown_name
from ptheta.eval.likelihood import nll_summary
from ptheta.eval.runs import fit_run
from ptheta.explorer import spam
from ptheta.models import REGISTRY, GenerativeModel, make
from ptheta.models.base import to_jsonable
from ptheta.train.rundir import CONFIG, read_config, save_run

MAX_SPACE_N = 784
MIN_GRID, MAX_GRID = 10, 200
MAX_STRUCTURE_SAMPLES = 64
N_POINTS = 500  # training points sent with a surface

# Magnitudes to hold 2^n against, as (name, log2); red past the first one.
REFERENCES: tuple[tuple[str, int], ...] = (
    ("atoms in the observable universe", 265),  # ≈ 10^80
    ("stars in the observable universe", 76),  # ≈ 10^23
    ("grains of sand on Earth", 63),  # ≈ 7.5 × 10^18
    ("seconds since the Big Bang", 59),  # ≈ 4.4 × 10^17
    ("humans ever born", 37),  # ≈ 1.1 × 10^11
)
RED_REFERENCE = REFERENCES[0]

# Families whose parameter count is shown next to n binary pixels; fitted (classical) or
# built from the spec (neural: the count does not depend on training).
SPACE_FITTED = ("independent", "markov", "chow-liu", "bernoulli-mixture")
SPACE_BUILT = ("nade", "made")
SPACE_ROWS = 32  # rows of random binary data the classical families are fitted on

STRUCTURE_DATA = "digits"
STRUCTURE_MODELS = ("independent", "markov", "chow-liu", "made")
TOY_DATA = tuple(name for name in ptheta.datasets.BUILTIN if name.startswith("toy2d-"))
SURFACE_MODELS = ("gmm", "realnvp", "maf", "ebm", "ddpm")
FLOW_MODEL = "realnvp"
QUANTITIES = {
    "exact": "density",
    "bound": "exp(−bound) (a lower bound on the density)",
    "estimate": "exp(estimate) (a stochastic estimate of the density)",
    "none": "negative energy (unnormalised)",
}

# Hyper-parameters of the explorer's models: (quick, full). Neural "full" budgets are
# capped in time so that a first visit waits a minute, not an hour.
_NEURAL_QUICK = {"epochs": 3, "batch_size": 128, "lr": 1e-2, "dtype": "float64", "device": "cpu"}
BUDGETS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "independent": ({}, {}),
    "markov": ({"order": 1}, {"order": 1}),
    "chow-liu": ({}, {}),
    "made": (
        {"hidden": [32], **_NEURAL_QUICK},
        {"hidden": [256], "epochs": 60, "lr": 3e-3, "max_time": 60},
    ),
    "gmm": ({"n_components": 8, "max_iter": 50, "random_state": 0}, {"n_components": 16}),
    "realnvp": (
        {"hidden": 16, "n_layers": 4, **_NEURAL_QUICK},
        {"hidden": 64, "n_layers": 8, "epochs": 200, "lr": 3e-3, "max_time": 60},
    ),
    "maf": (
        {"hidden": 16, "n_layers": 3, **_NEURAL_QUICK},
        {"hidden": 64, "n_layers": 5, "epochs": 200, "lr": 3e-3, "max_time": 60},
    ),
}


def budget(name: str, quick: bool) -> dict[str, Any]:
    """Hyper-parameters the explorer fits ``name`` with (families without an entry in
    :data:`BUDGETS`, e.g. ones added later: their ``quick_params``, or defaults capped at
    60 s of training)."""
    if name in BUDGETS:
        return dict(BUDGETS[name][0 if quick else 1])
    cls = REGISTRY[name]
    if quick:
        return dict(cls.quick_params)
    return {"max_time": 60} if "max_time" in cls._get_param_names() else {}


def _check_int(name: str, value: Any, low: int, high: int | None = None) -> int:
    """``value`` as an int in [low, high], or a ParameterError naming the range."""
    ok = isinstance(value, (int, np.integer)) and not isinstance(value, bool)
    if not ok or value < low or (high is not None and value > high):
        span = f"{low}..{high}" if high is not None else f"{low} or more"
        raise ParameterError(f"{name} must be a whole number in {span}, got {value!r}")
    return int(value)


def _choose(what: str, value: str, choices: tuple[str, ...] | list[str]) -> str:
    if value not in choices:
        raise unknown_name(what, value, choices)
    return value


# --------------------------------------------------------------------------- cache
class ModelCache:
    """Fitted models as ptheta run directories under ``root/<view>/<data>/<model>/``.

    ``get`` returns the model from memory, else loads its run directory with
    :func:`ptheta.load` (when it was fitted with the same hyper-parameters), else fits it
    with the given function and loads the result. One lock per model, so concurrent
    requests fit it once. ``fits`` and ``loads`` count what happened, per key.
    """

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root).expanduser()
        self.fits: Counter[tuple[str, str, str]] = Counter()
        self.loads: Counter[tuple[str, str, str]] = Counter()
        self._models: dict[tuple[str, str, str], GenerativeModel] = {}
        self._locks: dict[tuple[str, str, str], threading.Lock] = {}
        self._guard = threading.Lock()

    def path(self, view: str, data: str, model: str) -> Path:
        return self.root / view / data / model

    def get(
        self,
        view: str,
        data: str,
        model: str,
        params: dict[str, Any],
        fit: Callable[[Path], None],
    ) -> GenerativeModel:
        """The fitted ``model`` of ``view`` on ``data``; ``fit(run_dir)`` writes it."""
        key = (view, data, model)
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            if key in self._models:
                return self._models[key]
            path = self.path(*key)
            found = self._load(path, model, params)
            if found is not None:
                self.loads[key] += 1
            else:
                _fit_in_place(path, fit)
                self.fits[key] += 1
                found = ptheta.load(path)
            self._models[key] = found
            return found

    @staticmethod
    def _load(path: Path, model: str, params: dict[str, Any]) -> GenerativeModel | None:
        """The cached model, or None when there is none or it was fitted otherwise."""
        if not (path / CONFIG).is_file():
            return None
        try:
            config = read_config(path)
            saved = config["params"]
            if config["model"] != model or any(
                saved.get(k) != to_jsonable(v) for k, v in params.items()
            ):
                return None  # another budget (quick vs full): fit again
            return ptheta.load(path)
        except PthetaError:  # a damaged cache entry is refitted, not reported
            return None


def _fit_in_place(path: Path, fit: Callable[[Path], None]) -> None:
    """Fit into a fresh sibling folder, then swap it in by renames: another explorer
    process sharing the cache never sees a half-written run, nor has one deleted under it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}-", dir=path.parent))
    old = None
    try:
        fit(tmp)
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}-old-", dir=path.parent))
            os.replace(path, old / path.name)
        try:
            os.replace(tmp, path)
        except OSError:  # another process put its fit there meanwhile: keep that one
            if not path.is_dir():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


def _fit_builtin(name: str, params: dict[str, Any], data: Dataset) -> Callable[[Path], None]:
    def fit(path: Path) -> None:
        fit_run(
            name, params, data, path, data_source={"source": data.name}, force=True, verbose=False
        )

    return fit


# --------------------------------------------------------------------------- the space
def space_numbers(n: int) -> dict[str, Any]:
    """The size of the space of n binary pixels: 2^n configurations, 2^n − 1 free
    parameters of a full table, against reference magnitudes (no models)."""
    n = _check_int("n", n, 1, MAX_SPACE_N)
    configurations = 2**n  # Python ints: exact
    free = configurations - 1
    log10 = n * math.log10(2)
    if configurations < 10**15:
        text = str(configurations)
    else:
        exponent = math.floor(log10)
        mantissa = 10 ** (log10 - exponent)
        if round(mantissa, 1) >= 10:  # 9.96 × 10^k prints as 1.0 × 10^(k+1)
            mantissa, exponent = mantissa / 10, exponent + 1
        text = f"{mantissa:.1f} × 10^{exponent}"
    return {
        "n": n,
        "log2_configurations": float(n),
        "log10_configurations": log10,
        "free_parameters_log2": math.log2(free) if free > 0 else None,
        "configurations_text": text,
        "references": [{"name": name, "log2": float(b)} for name, b in REFERENCES],
        "exceeds": [name for name, b in REFERENCES if free > 2**b],
        "red": free > 2 ** RED_REFERENCE[1],
    }


# --------------------------------------------------------------------------- grids
def _grid_points(
    lo: np.ndarray, hi: np.ndarray, grid: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Axes x (G,), y (G,) and points (G·G, 2) in row-major order: point i·G + j is (x[j], y[i])."""
    x = np.linspace(lo[0], hi[0], grid)
    y = np.linspace(lo[1], hi[1], grid)
    gx, gy = np.meshgrid(x, y)  # (G, G) each, gx[i, j] = x[j], gy[i, j] = y[i]
    return x, y, np.stack([gx.ravel(), gy.ravel()], axis=1)


def _box(points: np.ndarray, margin: float = 0.15) -> tuple[np.ndarray, np.ndarray]:
    lo, hi = points.min(axis=0), points.max(axis=0)
    pad = margin * (hi - lo) + 1e-3
    return lo - pad, hi + pad


def _cell_area(x: np.ndarray, y: np.ndarray) -> float:
    return float((x[1] - x[0]) * (y[1] - y[0]))


# --------------------------------------------------------------------------- options
def surface_models() -> list[str]:
    """The surface view's families that are registered (ebm and ddpm may be absent)."""
    return [m for m in SURFACE_MODELS if m in REGISTRY]


def surface_options() -> dict[str, Any]:
    return {
        "datasets": list(TOY_DATA),
        "models": [
            {"model": m, "quantity": QUANTITIES[REGISTRY[m].likelihood]} for m in surface_models()
        ],
    }


# --------------------------------------------------------------------------- the explorer
class Explorer:
    """The explorer's computations, one method per API endpoint (see ``app.py``).

    Arguments:
        cache_dir: root of the model cache (:class:`ModelCache`).
        reports_dir: folder scanned recursively for ``ptheta compare`` reports.
        spam_csv: a CSV with columns text,label for the spam view; None: the synthetic corpus.
        quick: tiny budgets (tests): every view answers in seconds on two CPU cores.

    Example:
        >>> ex = Explorer("/tmp/ptheta-explorer-doc", quick=True)
        >>> ex.space(3)["configurations_text"]
        '8'
    """

    def __init__(
        self,
        cache_dir: str | os.PathLike,
        *,
        reports_dir: str | os.PathLike = "reports",
        spam_csv: str | os.PathLike | None = None,
        quick: bool = False,
    ) -> None:
        self.cache = ModelCache(cache_dir)
        self.reports_dir = Path(reports_dir).expanduser()
        self.spam_csv = spam_csv
        self.quick = quick
        self._memo: dict[Any, Any] = {}
        self._memo_lock = threading.Lock()

    def _once(self, key: Any, compute: Callable[[], Any]) -> Any:
        """``compute()`` the first time ``key`` is asked for, the stored result after."""
        with self._memo_lock:
            lock = self._memo.setdefault(("lock", key), threading.Lock())
        with lock:
            if key not in self._memo:
                self._memo[key] = compute()
            return self._memo[key]

    # ----------------------------------------------------------------- 1. the space
    def space(self, n: int) -> dict[str, Any]:
        """:func:`space_numbers` plus the parameter count of each family on n binary pixels."""
        out = space_numbers(n)
        out["families"] = self._once(("space", n), lambda: self._space_families(n))
        out["note"] = (
            f"{', '.join(SPACE_FITTED)}: fitted to {SPACE_ROWS} rows of random binary data with "
            f"n columns (their counts depend on n only); {', '.join(SPACE_BUILT)}: built from "
            "the data spec with default hyper-parameters, untrained (training does not change "
            "the count). A full table over n binary pixels needs 2^n − 1."
        )
        return out

    def _space_families(self, n: int) -> list[dict[str, Any]]:
        x = np.random.default_rng(n).integers(0, 2, size=(SPACE_ROWS, n))  # (R, n) binary
        data_key = f"random-binary-{n}"
        rows = []
        for name in SPACE_FITTED:
            if name not in REGISTRY:
                continue
            params = budget(name, True) if name in BUDGETS else {}

            def fit(path: Path, name: str = name, params: dict[str, Any] = params) -> None:
                model = make(name, **params).fit(x)
                info = {"name": data_key, "rows": SPACE_ROWS, "seed": n}
                save_run(model, path, data=info)

            model = self.cache.get("space", data_key, name, params, fit)
            rows.append({"model": name, "n_parameters": model.n_parameters(), "how": "fitted"})
        spec = DataSpec("binary", (n,))
        for name in SPACE_BUILT:
            if name in REGISTRY:
                module = make(name)._build_module(spec, None)
                count = sum(p.numel() for p in module.parameters())
                rows.append({"model": name, "n_parameters": int(count), "how": "built"})
        return rows

    # ----------------------------------------------------------------- 2. structure
    def _structure_model(self, name: str) -> GenerativeModel:
        data = ptheta.datasets.load(STRUCTURE_DATA)
        params = budget(name, self.quick)
        fit = _fit_builtin(name, params, data)
        return self.cache.get("structure", STRUCTURE_DATA, name, params, fit)

    def structure(self) -> dict[str, Any]:
        """Test NLL and parameter count of each structure model on digits, and the fitted
        Chow–Liu tree over the 8×8 pixels."""
        return self._once("structure", self._structure)

    def _structure(self) -> dict[str, Any]:
        data = ptheta.datasets.load(STRUCTURE_DATA)
        rows = []
        for name in STRUCTURE_MODELS:
            model = self._structure_model(name)
            summary = nll_summary(model, data.test.x)
            rows.append(
                {
                    "model": name,
                    "likelihood": model.likelihood_,
                    "test_nll_nats": summary["nll_nats"],
                    "test_nll_bits_per_dim": summary["bits_per_dim"],
                    "n_parameters": model.n_parameters(),
                }
            )
        tree = self._structure_model("chow-liu")
        return {
            "data": STRUCTURE_DATA,
            "image_shape": list(data.spec.image_shape[1:]),
            "levels": data.spec.n_categories,
            "models": rows,
            "tree": {"edges": [[int(a), int(b)] for a, b in tree.edges_], "root": int(tree.root_)},
        }

    def structure_samples(self, model: str, *, n: int = 16, seed: int = 0) -> dict[str, Any]:
        """``n`` samples (row-major 8×8 gray levels) of a structure model, drawn with ``seed``."""
        model = _choose("structure model", model, STRUCTURE_MODELS)
        n = _check_int("n", n, 1, MAX_STRUCTURE_SAMPLES)
        seed = _check_int("seed", seed, 0, 2**32 - 1)
        fitted = self._structure_model(model)
        samples = fitted.sample(n, random_state=seed)  # (n, 64) int64
        spec = fitted.fitted_spec
        return {
            "model": model,
            "seed": seed,
            "image_shape": list(spec.image_shape[1:]),
            "levels": spec.n_categories,
            "samples": samples.reshape(n, -1).tolist(),
        }

    # ----------------------------------------------------------------- 3. surface
    def _toy_model(self, data_name: str, model: str) -> tuple[Dataset, GenerativeModel]:
        data = ptheta.datasets.load(data_name)
        params = budget(model, self.quick)
        fitted = self.cache.get(
            "surface", data_name, model, params, _fit_builtin(model, params, data)
        )
        return data, fitted

    def surface(self, data: str, model: str, *, grid: int = 60) -> dict[str, Any]:
        """The fitted model's density (or bound, or negative energy) on a grid × grid box
        around the toy data; ``integral`` = Σ density × cell area where it is normalised."""
        data = _choose("2-D toy data set", data, TOY_DATA)
        model = _choose("surface model", model, surface_models())
        grid = _check_int("grid", grid, MIN_GRID, MAX_GRID)
        dataset, fitted = self._toy_model(data, model)
        x, y, pts = _grid_points(*_box(dataset.train.x), grid)
        normalised = fitted.likelihood_ != "none"
        if normalised:
            log_z = fitted.score_samples(pts)
        elif hasattr(fitted, "energy"):
            log_z = -np.asarray(fitted.energy(pts), dtype=np.float64)
        else:
            raise ParameterError(f"{model!r} has neither a likelihood nor an energy to draw")
        z = np.exp(log_z if normalised else log_z - log_z.max())
        out = {
            "data": data,
            "model": model,
            "likelihood": fitted.likelihood_,
            "quantity": QUANTITIES[fitted.likelihood_],
            "x": x.tolist(),
            "y": y.tolist(),
            "z": z.reshape(grid, grid).tolist(),
            "log_z": log_z.reshape(grid, grid).tolist(),
            "points": dataset.train.x[:N_POINTS].tolist(),
            "integral": float(z.sum() * _cell_area(x, y)) if normalised else None,
        }
        if not normalised:
            out["note"] = "z = exp(−energy) scaled to a maximum of 1: the energy has no known log Z"
        if dataset.log_density is not None:
            out["true_log_density"] = dataset.log_density(pts).reshape(grid, grid).tolist()
        return out

    # ----------------------------------------------------------------- 5. flow
    def flow_options(self) -> dict[str, Any]:
        """The toy data sets and the number of layers L of the flow (fitted on the first)."""
        _, fitted = self._toy_model(TOY_DATA[0], FLOW_MODEL)
        return {
            "datasets": list(TOY_DATA),
            "model": FLOW_MODEL,
            "n_layers": len(fitted.module.transform.layers),
        }

    def flow(self, data: str, *, strength: float = 1.0, grid: int = 60) -> dict[str, Any]:
        """Density of the partial flow: the Gaussian base pushed through the first
        k = round(strength · L) of the L layers of the fitted flow (in sampling order).

        The flow maps data to latent by f = f_L ∘ … ∘ f_1 and samples x = f⁻¹(z). After the
        first k sampling layers a base draw z is at u = f_{L−k+1}⁻¹ ∘ … ∘ f_L⁻¹(z), whose
        density is p_k(u) = N(g(u)) |det ∂g/∂u| with g = f_L ∘ … ∘ f_{L−k+1}, exactly
        normalised for every k: p_0 is the base, p_L the fitted model.
        """
        data = _choose("2-D toy data set", data, TOY_DATA)
        ok = isinstance(strength, (int, float)) and not isinstance(strength, bool)
        if not ok or not 0.0 <= strength <= 1.0:
            raise ParameterError(f"strength must be a number in [0, 1], got {strength!r}")
        grid = _check_int("grid", grid, MIN_GRID, MAX_GRID)
        dataset, fitted = self._toy_model(data, FLOW_MODEL)
        flow = fitted.module  # FlowDensity
        layers = list(flow.transform.layers)
        n_layers = len(layers)
        k = math.floor(strength * n_layers + 0.5)  # round half up
        tail = layers[n_layers - k :]  # the last k data→latent layers
        dtype, device = flow.loc.dtype, flow.loc.device
        with torch.no_grad():
            gen = torch.Generator(device=device).manual_seed(0)
            eps = torch.randn(2000, flow.n_dims, generator=gen, dtype=dtype, device=device)
            u = flow.loc + flow.log_scale.exp() * eps  # (P, 2) base draws
            for layer in reversed(tail):
                u, _ = layer.inverse(u)
            pushed = u.double().cpu().numpy()  # (P, 2)
            # the box holds the data and the bulk of the partial flow's mass
            bulk = np.quantile(pushed, [0.001, 0.999], axis=0)  # (2, 2)
            lo, hi = _box(np.concatenate([dataset.train.x, bulk]), margin=0.15)
            x, y, pts = _grid_points(lo, hi, grid)
            v = torch.as_tensor(pts, dtype=dtype, device=device)
            logdet = torch.zeros(len(v), dtype=dtype, device=device)
            for layer in tail:
                v, ld = layer(v)
                logdet = logdet + ld
            log_z = (flow.base_log_prob(v.flatten(1)) + logdet).double().cpu().numpy()
        z = np.exp(log_z)
        return {
            "data": data,
            "model": FLOW_MODEL,
            "strength": float(strength),
            "layer": k,
            "n_layers": n_layers,
            "x": x.tolist(),
            "y": y.tolist(),
            "z": z.reshape(grid, grid).tolist(),
            "log_z": log_z.reshape(grid, grid).tolist(),
            "integral": float(z.sum() * _cell_area(x, y)),
            "points": pushed[:N_POINTS].tolist(),
        }

    # ----------------------------------------------------------------- 4. spam
    def _spam(self) -> dict[str, Any]:
        return self._once("spam", self._fit_spam)

    def _fit_spam(self) -> dict[str, Any]:
        from sklearn.linear_model import LogisticRegression

        corpus = spam.load_csv(self.spam_csv) if self.spam_csv else spam.generate()
        x, y = corpus.features(), corpus.labels  # (N, V), (N,)
        nb = make("naive-bayes").fit(x, y)
        logistic = LogisticRegression(C=1.0, max_iter=2000).fit(x, y)
        return {"corpus": corpus, "nb": nb, "logistic": logistic}

    def spam_vocab(self) -> dict[str, Any]:
        fitted = self._spam()
        corpus = fitted["corpus"]
        return {
            "synthetic": corpus.synthetic,
            "source": corpus.source,
            "words": list(corpus.vocabulary),
            "correlated_pairs": [list(p) for p in corpus.correlated_pairs],
            "n_train": len(corpus.texts),
        }

    def spam_posterior(self, words: list[str]) -> dict[str, Any]:
        """P(spam | words present, all other vocabulary words absent) under naive Bayes and
        logistic regression, with each word's additive share of the log-odds."""
        fitted = self._spam()
        vocabulary = fitted["corpus"].vocabulary
        index = {w: j for j, w in enumerate(vocabulary)}
        if not isinstance(words, list) or not all(isinstance(w, str) for w in words):
            raise ParameterError(f"words must be a list of strings, got {words!r}")
        chosen: list[str] = []
        for raw in words:
            word = raw.strip().lower()
            if word not in index:
                raise ParameterError(
                    f"unknown word {raw!r}: not in the vocabulary; choose from GET /api/spam/vocab"
                )
            if word not in chosen:
                chosen.append(word)
        x = np.zeros((1, len(vocabulary)), dtype=np.int64)
        x[0, [index[w] for w in chosen]] = 1
        nb, logistic = fitted["nb"], fitted["logistic"]
        spam_col = int(np.flatnonzero(nb.classes_ == 1)[0])
        logp = nb.feature_log_prob_  # (C, V, 2): log p(x_i = k | class)
        s, h = spam_col, 1 - spam_col
        # presence of word i adds log θ_si/θ_hi − log (1−θ_si)/(1−θ_hi) to the log-odds
        present = logp[s, :, 1] - logp[h, :, 1]
        absent = logp[s, :, 0] - logp[h, :, 0]
        base = float(nb.class_log_prior_[s] - nb.class_log_prior_[h] + absent.sum())
        share = present - absent  # (V,)
        nb_log_odds = base + float(share[x[0] == 1].sum())
        coef = logistic.coef_[0]  # (V,): log-odds of class 1 (spam)
        lr_log_odds = float(logistic.intercept_[0] + coef @ x[0])
        return {
            "words": chosen,
            "naive_bayes": float(nb.predict_proba(x)[0, spam_col]),
            "logistic": float(logistic.predict_proba(x)[0, 1]),
            "naive_bayes_log_odds": nb_log_odds,
            "naive_bayes_base_log_odds": base,
            "logistic_log_odds": lr_log_odds,
            "logistic_intercept": float(logistic.intercept_[0]),
            "contributions": [
                {
                    "word": w,
                    "naive_bayes": float(share[index[w]]),
                    "logistic": float(coef[index[w]]),
                }
                for w in chosen
            ],
        }

    # ----------------------------------------------------------------- 6. compare
    def _reports(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """(readable reports, skipped files) under ``reports_dir``, newest first."""
        found, skipped = [], []
        if self.reports_dir.is_dir():
            for path in sorted(self.reports_dir.rglob("report.json")):
                try:
                    report = json.loads(path.read_text(encoding="utf-8"))
                    if not isinstance(report, dict) or not isinstance(report.get("data"), str):
                        raise ValueError("no 'data' entry naming the data set")
                except (OSError, ValueError) as e:
                    skipped.append({"path": str(path), "error": str(e).splitlines()[0][:200]})
                    continue
                created = report.get("created")
                created = created if isinstance(created, str) else None
                found.append(
                    {
                        "data": report["data"],
                        "path": str(path),
                        "created": created,
                        "_mtime": path.stat().st_mtime,
                        "_report": report,
                    }
                )
        found.sort(key=lambda r: (r["created"] or "", r["_mtime"]), reverse=True)
        return found, skipped

    def compare_list(self) -> dict[str, Any]:
        found, skipped = self._reports()
        public = [{k: r[k] for k in ("data", "path", "created")} for r in found]
        return {"reports": public, "skipped": skipped}

    def compare(self, data: str) -> dict[str, Any]:
        """The newest ``ptheta compare`` report for data set ``data``, verbatim."""
        if not isinstance(data, str) or not data.strip():
            raise ParameterError("data must name a data set, e.g. data=digits")
        for report in self._reports()[0]:
            if report["data"] == data:
                return report["_report"]
        out = self.reports_dir / data
        raise UnknownNameError(
            f"no compare report for {data!r} under {str(self.reports_dir)!r}; run: "
            f"ptheta compare --data {data} --out {out}"
        )
