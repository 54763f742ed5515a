"""What the explorer's views compute, from ptheta's own fitted models: JSON-able dicts, no HTTP.

:class:`Explorer` holds one method per API endpoint; every argument is validated here (a
ptheta error naming the problem and the fix), so the functions are safe without the app.
Models are fitted on first use and cached as ptheta run directories by
:class:`~ptheta.explorer.cache.ModelCache`.

Which families a view shows is derived, in registry order, from the families' "explorer"
presets and their capabilities (:func:`space_fitted`, :func:`structure_models`,
:func:`surface_models`, ...): no family is named here, so a new family with an "explorer"
preset appears wherever its capabilities fit.
"""

from __future__ import annotations

import json
import math
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

import ptheta
from ptheta.data import Dataset, spam
from ptheta.data.spec import DataSpec
from ptheta.errors import ParameterError, UnknownNameError, unknown_name
from ptheta.explorer.cache import ModelCache
from ptheta.models import REGISTRY, Capabilities, GenerativeModel, make, with_preset
from ptheta.runs.fitting import fit_run
from ptheta.runs.store import save_run

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

SPACE_ROWS = 32  # rows of random binary data the classical families are fitted on
STRUCTURE_DATA = "digits"
TOY_DATA = tuple(name for name in ptheta.datasets.BUILTIN if name.startswith("toy2d-"))
QUANTITIES = {
    "exact": "density",
    "bound": "exp(−bound) (a lower bound on the density)",
    "estimate": "exp(estimate) (a stochastic estimate of the density)",
    "none": "negative energy (unnormalised)",
}
# A neural family whose "explorer" preset sets no time limit is capped at this, so that a
# first visit waits a minute, not an hour.
MAX_FIT_SECONDS = 60


# --------------------------------------------------------------------------- families
def capabilities(name: str) -> Capabilities:
    """What family ``name`` can do with its "explorer" preset (its defaults without one)."""
    cls = REGISTRY[name]
    return cls(**(cls.preset("explorer") or {})).capabilities()


def _explorer_families(keep: Callable[[Capabilities], bool]) -> list[str]:
    """The families with an "explorer" preset whose capabilities ``keep`` accepts, in
    registry order."""
    return [name for name in with_preset("explorer") if keep(capabilities(name))]


def _exact_on(caps: Capabilities, kind: str) -> bool:
    """An exact likelihood on ``kind`` data (not through dequantisation), no labels needed,
    no image shape needed."""
    return (
        caps.fits(kind)
        and caps.likelihood == "exact"
        and not caps.dequantises_discrete
        and not caps.needs_labels
        and not caps.needs_image
    )


def space_fitted() -> list[str]:
    """The space view's classical families (fitted in closed form or by EM), whose
    parameter count is that of a fit to random binary data: exact on binary data."""
    return _explorer_families(lambda c: not c.trains_in_steps and _exact_on(c, "binary"))


def space_built() -> list[str]:
    """The space view's neural families, exact on binary data: their parameter count is
    that of the module built from the data spec (training does not change it)."""
    return _explorer_families(lambda c: c.trains_in_steps and _exact_on(c, "binary"))


def structure_models() -> list[str]:
    """The structure view's families: exact likelihoods of categorical data (digits)."""
    return _explorer_families(lambda c: _exact_on(c, "categorical"))


def structure_graph_model() -> str | None:
    """The structure model whose learned graph the structure view draws (the first that
    exports one), or None."""
    return next((m for m in structure_models() if capabilities(m).exports_structure), None)


def surface_models() -> list[str]:
    """The surface view's families: continuous flat data, and a likelihood or an energy to
    draw."""
    return _explorer_families(
        lambda c: (
            c.fits("continuous")
            and not c.needs_image
            and not c.needs_labels
            and (c.likelihood != "none" or c.anomaly_score == "energy")
        )
    )


def flow_model() -> str | None:
    """The flow view's family: the first surface family whose flow can be cut after its
    first k layers (``partial_flows``), or None."""
    return next((m for m in surface_models() if capabilities(m).partial_flows), None)


def spam_classifier() -> str | None:
    """The spam view's generative classifier: the first family with an "explorer" preset
    that classifies binary data by Bayes' rule from labelled examples, or None."""
    found = _explorer_families(lambda c: c.classifies and c.needs_labels and c.fits("binary"))
    return found[0] if found else None


def budget(name: str, quick: bool) -> dict[str, Any]:
    """Hyper-parameters the explorer fits ``name`` with: the family's "explorer" preset, or
    in quick mode (tests) its "explorer-quick" preset, falling back to the "explorer"
    preset for classical families and to the "quick" preset for neural ones.

    A neural family whose full budget sets no ``max_time`` gets :data:`MAX_FIT_SECONDS`.
    """
    cls = REGISTRY[name]
    full = cls.preset("explorer") or {}
    steps = capabilities(name).trains_in_steps
    if quick:
        found = cls.preset("explorer-quick")
        if found is not None:
            return found
        return (cls.preset("quick") or {}) if steps else full
    if steps:  # a family that trains in steps takes max_time (see Capabilities)
        full.setdefault("max_time", MAX_FIT_SECONDS)
    return full


def _need(what: str, name: str | None) -> str:
    """``name``, or a ParameterError when no registered family can play ``what``."""
    if name is None:
        raise ParameterError(
            f'no registered family can be the {what}: give one an "explorer" preset'
        )
    return name


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


# --------------------------------------------------------------------------- fitting
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
def surface_options() -> dict[str, Any]:
    """The surface view's toy data sets and families, each with the quantity it draws."""
    return {
        "datasets": list(TOY_DATA),
        "models": [
            {"model": m, "quantity": QUANTITIES[capabilities(m).likelihood]}
            for m in surface_models()
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
        >>> ex = Explorer("explorer-cache", quick=True)
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
            f"{', '.join(space_fitted())}: fitted to {SPACE_ROWS} rows of random binary data "
            f"with n columns (their counts depend on n only); {', '.join(space_built())}: "
            "built from the data spec with default hyper-parameters, untrained (training does "
            "not change the count). A full table over n binary pixels needs 2^n − 1."
        )
        return out

    def _space_families(self, n: int) -> list[dict[str, Any]]:
        x = np.random.default_rng(n).integers(0, 2, size=(SPACE_ROWS, n))  # (R, n) binary
        data_key = f"random-binary-{n}"
        rows = []
        for name in space_fitted():
            params = budget(name, True)

            def fit(path: Path, name: str = name, params: dict[str, Any] = params) -> None:
                model = make(name, **params).fit(x)
                info = {"name": data_key, "rows": SPACE_ROWS, "seed": n}
                save_run(model, path, data=info)

            model = self.cache.get("space", data_key, name, params, fit)
            rows.append({"model": name, "n_parameters": model.n_parameters(), "how": "fitted"})
        spec = DataSpec("binary", (n,))
        for name in space_built():
            module = make(name).build_module(spec)
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
        """Test NLL and parameter count of each structure model on digits, and the graph
        learned by the first one that exports its structure (None when none does)."""
        return self._once("structure", self._structure)

    def _structure(self) -> dict[str, Any]:
        data = ptheta.datasets.load(STRUCTURE_DATA)
        rows = []
        for name in structure_models():
            model = self._structure_model(name)
            summary = model.nll_summary(data.test.x)
            rows.append(
                {
                    "model": name,
                    "likelihood": model.likelihood_,
                    "test_nll_nats": summary["nll_nats"],
                    "test_nll_bits_per_dim": summary["bits_per_dim"],
                    "n_parameters": model.n_parameters(),
                }
            )
        return {
            "data": STRUCTURE_DATA,
            "image_shape": list(data.spec.image_shape[1:]),
            "levels": data.spec.n_categories,
            "models": rows,
            "tree": self._structure_tree(),
        }

    def _structure_tree(self) -> dict[str, Any] | None:
        """The graph of :func:`structure_graph_model` over the pixels: ``edges`` (parent,
        child), ``roots``, ``root`` (the first), ``model`` and ``title``."""
        name = structure_graph_model()
        if name is None:
            return None
        graph = self._structure_model(name).structure_graph()
        roots = [int(r) for r in graph["roots"]]
        return {
            "model": name,
            "title": graph["title"],
            "edges": [[int(a), int(b)] for a, b in graph["edges"]],
            "roots": roots,
            "root": roots[0] if roots else None,
        }

    def structure_samples(self, model: str, *, n: int = 16, seed: int = 0) -> dict[str, Any]:
        """``n`` samples (row-major 8×8 gray levels) of a structure model, drawn with ``seed``."""
        model = _choose("structure model", model, structure_models())
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
        caps = fitted.capabilities()
        normalised = caps.fitted_likelihood != "none"
        if normalised:
            log_z = fitted.score_samples(pts)
        elif caps.anomaly_score == "energy":
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
        """The toy data sets, the flow family and its number of layers L (fitted on the first
        data set)."""
        name = _need("flow view's model", flow_model())
        _, fitted = self._toy_model(TOY_DATA[0], name)
        return {"datasets": list(TOY_DATA), "model": name, "n_layers": fitted.n_flow_layers()}

    def flow(self, data: str, *, strength: float = 1.0, grid: int = 60) -> dict[str, Any]:
        """Density of the partial flow: the base pushed through the first
        k = round(strength · L) of the L sampling layers of the fitted flow, exactly
        normalised for every k (see the flow family's ``partial_log_prob``)."""
        data = _choose("2-D toy data set", data, TOY_DATA)
        ok = isinstance(strength, (int, float)) and not isinstance(strength, bool)
        if not ok or not 0.0 <= strength <= 1.0:
            raise ParameterError(f"strength must be a number in [0, 1], got {strength!r}")
        grid = _check_int("grid", grid, MIN_GRID, MAX_GRID)
        name = _need("flow view's model", flow_model())
        dataset, fitted = self._toy_model(data, name)
        n_layers = fitted.n_flow_layers()
        k = math.floor(strength * n_layers + 0.5)  # round half up
        pushed = fitted.partial_sample(2000, k, random_state=0)  # (P, 2)
        # the box holds the data and the bulk of the partial flow's mass
        bulk = np.quantile(pushed, [0.001, 0.999], axis=0)  # (2, 2)
        lo, hi = _box(np.concatenate([dataset.train.x, bulk]), margin=0.15)
        x, y, pts = _grid_points(lo, hi, grid)
        log_z = fitted.partial_log_prob(pts, k)
        z = np.exp(log_z)
        return {
            "data": data,
            "model": name,
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

        name = _need("spam view's classifier", spam_classifier())
        corpus = spam.load_csv(self.spam_csv) if self.spam_csv else spam.generate()
        x, y = corpus.features(), corpus.labels  # (N, V), (N,)
        classifier = make(name, **budget(name, self.quick)).fit(x, y)
        logistic = LogisticRegression(C=1.0, max_iter=2000).fit(x, y)
        return {"corpus": corpus, "model": name, "classifier": classifier, "logistic": logistic}

    def spam_vocab(self) -> dict[str, Any]:
        fitted = self._spam()
        corpus = fitted["corpus"]
        return {
            "classifier": fitted["model"],
            "synthetic": corpus.synthetic,
            "source": corpus.source,
            "words": list(corpus.vocabulary),
            "correlated_pairs": [list(p) for p in corpus.correlated_pairs],
            "n_train": len(corpus.texts),
        }

    def spam_posterior(self, words: list[str]) -> dict[str, Any]:
        """P(spam | words present, all other vocabulary words absent) under the generative
        classifier (:func:`spam_classifier`, naive Bayes: the ``naive_bayes`` fields) and
        logistic regression, with each word's share of the log-odds.

        The classifier is asked through ``predict_proba`` only. A word's share is the move of
        the log-odds from the empty e-mail to the e-mail with that word alone; under naive
        Bayes the shares add up: log-odds = base (empty e-mail) + Σ shares of the words.
        """
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
        # rows: the e-mail, the empty e-mail, then each chosen word alone
        x = np.zeros((2 + len(chosen), len(vocabulary)), dtype=np.int64)  # (2 + W, V)
        x[0, [index[w] for w in chosen]] = 1
        for row, w in enumerate(chosen, start=2):
            x[row, index[w]] = 1
        classifier, logistic = fitted["classifier"], fitted["logistic"]
        is_spam = np.asarray(classifier.classes_) == 1
        proba = classifier.predict_proba(x)  # (2 + W, C), columns in classes_ order
        log_odds = np.log(proba[:, is_spam].sum(1)) - np.log(proba[:, ~is_spam].sum(1))
        base = float(log_odds[1])
        share = log_odds[2:] - base  # (W,)
        coef = logistic.coef_[0]  # (V,): log-odds of class 1 (spam)
        lr_log_odds = float(logistic.intercept_[0] + coef @ x[0])
        return {
            "words": chosen,
            "classifier": fitted["model"],
            "naive_bayes": float(proba[0, is_spam].sum()),
            "logistic": float(logistic.predict_proba(x[:1])[0, 1]),
            "naive_bayes_log_odds": float(log_odds[0]),
            "naive_bayes_base_log_odds": base,
            "logistic_log_odds": lr_log_odds,
            "logistic_intercept": float(logistic.intercept_[0]),
            "contributions": [
                {
                    "word": w,
                    "naive_bayes": float(share[j]),
                    "logistic": float(coef[index[w]]),
                }
                for j, w in enumerate(chosen)
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
