"""What the explorer's views compute, from ptheta's own fitted models: JSON-able dicts, no HTTP.

:class:`Explorer` holds one method per API endpoint; every argument is validated here (a
ptheta error naming the problem and the fix), so the functions are safe without the app.
Models are fitted on first use and cached as ptheta run directories by
:class:`~ptheta.explorer.cache.ModelCache`.

Which families a view shows is derived, in registry order, from the families' "explorer"
presets and their capabilities (:func:`space_fitted`, :func:`structure_models`,
:func:`surface_models`, :func:`score_models`, :func:`ode_models`, ...), and for the
probability budget from each class's ``family`` taxonomy label ("autoregressive",
"mixtures", "flows": :data:`MASS_KINDS`): no family is named here, so a new family with an
"explorer" preset appears wherever its capabilities fit.
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

import ptheta
from ptheta.data import Dataset, spam
from ptheta.data.spec import DataSpec, Split
from ptheta.errors import ParameterError, RegistryError, UnknownNameError, unknown_name
from ptheta.eval import info
from ptheta.explorer.cache import ModelCache
from ptheta.explorer.sequence_view import SequenceViews
from ptheta.models import REGISTRY, Capabilities, GenerativeModel, make
from ptheta.runs.fitting import fit_run
from ptheta.runs.store import save_run

log = logging.getLogger(__name__)

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

# Paths of a sampler (the score-field and ODE views): how many, and how many frames each.
MAX_PATHS, MAX_FRAMES = 200, 200
MIN_ARROWS, MAX_ARROWS = 5, 40  # arrows per side of the score field's grid
N_NEAREST = 2000  # training points the chains' distance to the data is measured against

# Surprise and entropy: two distributions over the same outcomes, p(k) ∝ exp(−peakedness · k)
# (0: uniform), each known to the view only through a model fitted to draws from it.
SURPRISE_OUTCOMES = 8
SURPRISE_DRAWS = 100_000
MAX_PEAKEDNESS = 1.0  # the rarest outcome keeps p ≈ 6 × 10^-4: ~60 of the draws

# The probability budget: kinds of model, by the ``family`` taxonomy label of their class,
# and the data kind on which each shows its unit of mass (binary: summed over every
# configuration; continuous: integrated over a grid).
MASS_KINDS: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("autoregressive", ("autoregressive",), "binary"),
    ("latent variable", ("mixtures", "latent variable"), "binary"),
    ("flow", ("flows",), "continuous"),
)
MASS_DATA = "digits-binary"  # the binary kinds model one row of its 8×8 images
MASS_ROW = 3  # the row shown first (0-based): the middle of the digits, varied strokes
MASS_TOP = 8  # configurations (or regions of the plane) shown as their own part of the bar
MASS_BLOCKS = 4  # the flow's plane is cut into MASS_BLOCKS × MASS_BLOCKS regions


# --------------------------------------------------------------------------- families
def capabilities(name: str) -> Capabilities:
    """What family ``name`` can do with its "explorer" preset (its defaults without one)."""
    cls = REGISTRY[name]
    return cls(**(cls.preset("explorer") or {})).capabilities()


_WARNED: set[str] = set()  # broken registry entries already reported


def explorer_families() -> list[str]:
    """The registered families with an "explorer" preset, in registry order.

    An entry whose module cannot be imported is left out with a warning in the log (the
    same error as ``ptheta models`` shows for it), so one broken family does not take every
    view down.
    """
    names = []
    for name in list(REGISTRY):
        try:
            cls = REGISTRY[name]
        except RegistryError as e:
            if name not in _WARNED:  # once per process, not on every request
                _WARNED.add(name)
                log.warning("the explorer leaves out %s", e)
            continue
        if "explorer" in cls.presets:
            names.append(name)
    return names


def _explorer_families(keep: Callable[[Capabilities], bool]) -> list[str]:
    """The families with an "explorer" preset whose capabilities ``keep`` accepts, in
    registry order."""
    return [name for name in explorer_families() if keep(capabilities(name))]


def _flat_continuous(caps: Capabilities) -> bool:
    """Fits flat continuous data (a 2-D toy) without labels."""
    return caps.fits("continuous") and not caps.needs_image and not caps.needs_labels


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
        lambda c: _flat_continuous(c) and (c.likelihood != "none" or c.anomaly_score == "energy")
    )


def flow_model() -> str | None:
    """The flow view's family: the first surface family whose flow can be cut after its
    first k layers (``partial_flows``), or None."""
    return next((m for m in surface_models() if capabilities(m).partial_flows), None)


def score_models() -> list[str]:
    """The score-field view's families: continuous flat data, a learned score
    ``score_field(X)`` to draw as arrows, and Langevin chains (``sample_paths`` is
    ``"langevin"``) to run along it. The first is the view's default."""
    return _explorer_families(
        lambda c: _flat_continuous(c) and c.score_field and c.sample_paths == "langevin"
    )


def ode_models() -> list[str]:
    """The ODE view's families: continuous flat data whose sampler integrates an ordinary
    differential equation from the Gaussian to the data (``sample_paths`` is ``"ode"``).
    The first is the view's default."""
    return _explorer_families(lambda c: _flat_continuous(c) and c.sample_paths == "ode")


def surprise_model() -> str | None:
    """The surprise view's family: the first with an exact likelihood of categorical data
    and a closed form (``closed_form``: entropy and KL in closed form), or None."""
    found = _explorer_families(lambda c: c.closed_form and _exact_on(c, "categorical"))
    return found[0] if found else None


def _shows_mass(caps: Capabilities, kind: str) -> bool:
    """Whether a model with ``caps`` can show its unit of mass on ``kind`` data: exact
    probabilities of binary data (summed over every configuration), or an exact density of
    flat continuous data (integrated over a grid)."""
    if kind == "binary":
        return _exact_on(caps, "binary") and not caps.needs_sequence
    return _flat_continuous(caps) and caps.likelihood == "exact"


def mass_models() -> list[dict[str, Any]]:
    """The probability budget's models: for each of :data:`MASS_KINDS`, the first family
    with an "explorer" preset whose ``family`` label is one of the kind's and which can
    show its mass on the kind's data (:func:`_shows_mass`); ``model`` is None where no
    registered family fits.

    Returns:
        ``[{"kind": "autoregressive", "model": name or None, "family": label or None,
        "data_kind": "binary"}, ...]`` in the order of :data:`MASS_KINDS`.
    """
    names = explorer_families()
    rows = []
    for kind, labels, data_kind in MASS_KINDS:
        found = next(
            (
                m
                for m in names
                if REGISTRY[m].family in labels and _shows_mass(capabilities(m), data_kind)
            ),
            None,
        )
        family = REGISTRY[found].family if found else None
        rows.append({"kind": kind, "model": found, "family": family, "data_kind": data_kind})
    return rows


def spam_classifier() -> str | None:
    """The spam view's generative classifier: the first family with an "explorer" preset
    that classifies binary data by Bayes' rule from labelled examples, or None."""
    found = _explorer_families(lambda c: c.classifies and c.needs_labels and c.fits("binary"))
    return found[0] if found else None


def budget(name: str, quick: bool) -> dict[str, Any]:
    """Hyper-parameters the explorer fits ``name`` with: the family's "explorer" preset, or
    in quick mode (tests) its "explorer-quick" preset, falling back to the "explorer"
    preset for classical families and to the "quick" preset for neural ones.

    A neural family whose full budget sets no ``max_time`` gets :data:`MAX_FIT_SECONDS`,
    and one that sets no ``epochs`` its ``auto_epochs`` (with ``max_time`` set,
    ``epochs="auto"`` would lift the epoch limit and train for the whole minute).
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
        auto = getattr(cls, "auto_epochs", None)  # a neural family's (NeuralModel)
        if auto is not None:
            full.setdefault("epochs", auto)
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


def _check_number(name: str, value: Any, low: float, high: float) -> float:
    """``value`` as a float in [low, high], or a ParameterError naming the range."""
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    if not ok or not low <= value <= high:  # NaN fails the comparison
        raise ParameterError(f"{name} must be a number in [{low:g}, {high:g}], got {value!r}")
    return float(value)


def _choose(what: str, value: str, choices: tuple[str, ...] | list[str]) -> str:
    if value not in choices:
        raise unknown_name(what, value, choices)
    return value


def _choose_model(what: str, model: str | None, choices: list[str]) -> str:
    """``model``, or the first of ``choices`` when None; an error when there are none."""
    if model is None:
        return _need(what, choices[0] if choices else None)
    return _choose(what, model, choices)


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


def _density_on_grid(
    fitted: GenerativeModel, lo: np.ndarray, hi: np.ndarray, grid: int
) -> tuple[dict[str, Any], np.ndarray]:
    """The fitted model's density (or bound, estimate, or negative energy) on a grid × grid
    box, and the grid's points (G·G, 2).

    The dict has ``likelihood``, ``quantity``, axes ``x`` and ``y``, ``z`` and ``log_z``
    (G, G) with ``z[i][j]`` at ``(x[j], y[i])``, and ``integral`` = Σ z × cell area where
    the model is normalised (None for an energy: exp(−energy) is scaled to a maximum of 1).
    """
    x, y, pts = _grid_points(lo, hi, grid)
    caps = fitted.capabilities()
    normalised = caps.fitted_likelihood != "none"
    if normalised:
        log_z = fitted.score_samples(pts)
    elif caps.anomaly_score == "energy":
        log_z = -np.asarray(fitted.energy(pts), dtype=np.float64)
    else:
        raise ParameterError(f"{fitted.name!r} has neither a likelihood nor an energy to draw")
    z = np.exp(log_z if normalised else log_z - log_z.max())
    out = {
        "likelihood": fitted.likelihood_,
        "quantity": QUANTITIES[fitted.likelihood_],
        "x": x.tolist(),
        "y": y.tolist(),
        "z": z.reshape(grid, grid).tolist(),
        "log_z": log_z.reshape(grid, grid).tolist(),
        "integral": float(z.sum() * _cell_area(x, y)) if normalised else None,
    }
    if not normalised:
        out["note"] = "z = exp(−energy) scaled to a maximum of 1: the energy has no known log Z"
    return out, pts


def _bulk_box(*clouds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A box around the first cloud of points (the data) and the central 99.8 % of each
    other one (a model's samples), so that it holds the model's mass but not its outliers."""
    parts = [clouds[0]] + [np.quantile(c, [0.001, 0.999], axis=0) for c in clouds[1:]]
    return _box(np.concatenate(parts), margin=0.15)


def _check_paths(paths: Any, model: str, n: int, frames: int) -> np.ndarray:
    """``sample_paths``'s answer as a float array (frames, n, 2), or an error naming the
    family whose answer breaks the contract."""
    arr = np.asarray(paths, dtype=np.float64)
    if arr.shape != (frames, n, 2):
        raise ParameterError(
            f"{model!r}.sample_paths returned shape {arr.shape}, not (n_frames, n_samples, 2) "
            f"= {(frames, n, 2)}; fix the family's sample_paths"
        )
    return arr


def _median_distance(paths: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Per frame, the median over paths of the distance to the nearest of ``points``:
    (F, n, 2), (M, 2) → (F,)."""
    from scipy.spatial import cKDTree

    frames, n, d = paths.shape
    nearest, _ = cKDTree(points).query(paths.reshape(-1, d))  # (F·n,)
    return np.median(nearest.reshape(frames, n), axis=1)


# --------------------------------------------------------------------------- finite spaces
def _binary_configurations(width: int) -> np.ndarray:
    """Every configuration of ``width`` binary pixels, (2^width, width) int64, in counting
    order (the first pixel is the most significant bit)."""
    index = np.arange(2**width, dtype=np.int64)
    return (index[:, None] >> np.arange(width - 1, -1, -1)) & 1


def surprise_distribution(peakedness: float) -> np.ndarray:
    """p(k) ∝ exp(−peakedness · k) over :data:`SURPRISE_OUTCOMES` outcomes, (K,): uniform
    at 0, ever more peaked on outcome 0 as it grows."""
    weights = np.exp(-peakedness * np.arange(SURPRISE_OUTCOMES))
    return weights / weights.sum()


def surprise_draws(peakedness: float) -> np.ndarray:
    """:data:`SURPRISE_DRAWS` draws from :func:`surprise_distribution`, (N, 1) int64, by
    the inverse CDF of the same seeded uniforms for every peakedness (the same numbers
    for the same slider position)."""
    u = np.random.default_rng(0).random(SURPRISE_DRAWS)
    cdf = np.cumsum(surprise_distribution(peakedness))
    return np.minimum(np.searchsorted(cdf, u, side="right"), SURPRISE_OUTCOMES - 1)[:, None]


def _short(value: float) -> str:
    """A coordinate to one decimal with a true minus sign, never "−0.0"."""
    return f"{round(value, 1) + 0.0:.1f}".replace("-", "−")


def _info_json(result: info.InfoResult) -> dict[str, Any]:
    """An information measure computed in nats, in nats and bits, with how it was obtained."""
    return {
        "nats": result.value,
        "bits": result.value / math.log(2),
        "method": result.method,
        "likelihood": result.likelihood,
    }


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
class Explorer(SequenceViews):
    """The explorer's computations, one method per API endpoint (see ``app.py``); the
    sequence view's in :mod:`ptheta.explorer.sequence_view`.

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
        """``model`` fitted on the 2-D toy ``data_name``: one cached fit shared by every view
        on the toys (surface, flow, probability budget, score field, ODE paths)."""
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
        density, pts = _density_on_grid(fitted, *_box(dataset.train.x), grid)
        out = {
            "data": data,
            "model": model,
            **density,
            "points": dataset.train.x[:N_POINTS].tolist(),
        }
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

    # ----------------------------------------------------------------- 6. probability budget
    def mass(
        self, *, row: int = MASS_ROW, data: str = TOY_DATA[0], grid: int = 60
    ) -> dict[str, Any]:
        """One unit of probability mass per kind of model (:func:`mass_models`), computed
        from the fitted model: for the binary kinds the sum of exp(score_samples) over all
        2^W configurations of row ``row`` of the binary digits (W pixels), for the flow
        Σ density × cell area over a grid × grid box around the toy ``data`` and the bulk of
        the flow's samples. Each total is split into its largest parts (configurations, or
        regions of the plane) and the rest."""
        dataset = ptheta.datasets.load(MASS_DATA)
        height = dataset.spec.image_shape[1]
        row = _check_int("row", row, 0, height - 1)
        data = _choose("2-D toy data set", data, TOY_DATA)
        grid = _check_int("grid", grid, MIN_GRID, MAX_GRID)
        rows = []
        for entry in mass_models():
            name = entry["model"]
            if name is None:
                missing = (
                    f'no registered {entry["kind"]} family with an "explorer" preset can '
                    f"show its mass on {entry['data_kind']} data"
                )
                rows.append({**entry, "missing": missing})
            elif entry["data_kind"] == "binary":
                rows.append({**entry, **self._mass_enumerated(name, dataset, row)})
            else:
                rows.append({**entry, **self._mass_on_grid(name, data, grid)})
        return {"row": row, "n_rows": height, "data": data, "grid": grid, "models": rows}

    def _mass_enumerated(self, name: str, dataset: Dataset, row: int) -> dict[str, Any]:
        """``name`` fitted to row ``row`` of the binary digits, its probabilities of every
        configuration of that row, their sum and largest parts."""
        width = dataset.spec.image_shape[2]
        columns = list(range(row * width, (row + 1) * width))
        x = dataset.train.x[:, columns]  # (N, W) binary
        key = f"{MASS_DATA}-row{row}"
        params = budget(name, self.quick)

        def fit(path: Path) -> None:
            model = make(name, **params).fit(x)
            source = {"name": key, "source": MASS_DATA, "columns": columns, "rows": len(x)}
            save_run(model, path, data=source)

        fitted = self.cache.get("mass", key, name, params, fit)
        configurations = _binary_configurations(width)  # (2^W, W)
        prob = np.exp(fitted.score_samples(configurations))  # (2^W,)
        order = np.argsort(-prob, kind="stable")
        top, others = order[:MASS_TOP], order[MASS_TOP:]
        return {
            "likelihood": fitted.likelihood_,
            "units": fitted.units_,
            "space": f"row {row + 1} of the {MASS_DATA} images: {width} binary pixels",
            "how": (
                f"Σ exp(score_samples) over all 2^{width} = {len(prob)} configurations of "
                f"the {width} pixels"
            ),
            "n_configurations": len(prob),
            "total": math.fsum(prob),
            "parts": [
                {
                    "label": "".join("■" if v else "□" for v in configurations[i]),
                    "configuration": configurations[i].tolist(),
                    "mass": float(prob[i]),
                }
                for i in top
            ],
            "rest": {
                "label": f"the other {len(others)} configurations",
                "count": len(others),
                "mass": math.fsum(prob[others]),
            },
        }

    def _mass_on_grid(self, name: str, data: str, grid: int) -> dict[str, Any]:
        """The flow ``name`` of the 2-D toy views on ``data``: its density integrated over a
        grid, split into MASS_BLOCKS × MASS_BLOCKS regions of the box."""
        dataset, fitted = self._toy_model(data, name)
        density = self._toy_density(data, name, grid)
        x, y = np.array(density["x"]), np.array(density["y"])
        cells = np.array(density["z"]) * _cell_area(x, y)  # (G, G): mass of each cell
        hx, hy = (x[1] - x[0]) / 2, (y[1] - y[0]) / 2  # a cell reaches half a step around
        blocks = []
        for rows in np.array_split(np.arange(grid), MASS_BLOCKS):
            for cols in np.array_split(np.arange(grid), MASS_BLOCKS):
                box = [x[cols[0]] - hx, x[cols[-1]] + hx, y[rows[0]] - hy, y[rows[-1]] + hy]
                mass = math.fsum(cells[np.ix_(rows, cols)].ravel())
                blocks.append({"box": [float(b) for b in box], "mass": mass})
        blocks.sort(key=lambda b: -b["mass"])
        top, others = blocks[:MASS_TOP], blocks[MASS_TOP:]
        for b in top:
            x0, x1, y0, y1 = (_short(v) for v in b["box"])
            b["label"] = f"x₁ {x0} … {x1}, x₂ {y0} … {y1}"
        return {
            "likelihood": fitted.likelihood_,
            "units": fitted.units_,
            "space": f"the plane, {data} ({dataset.spec.n_dims} continuous coordinates)",
            "how": (
                f"Σ density × cell area over a {grid}×{grid} grid (the box holds the data and "
                f"the bulk of the flow's samples; mass outside it is not counted), in "
                f"{MASS_BLOCKS}×{MASS_BLOCKS} regions"
            ),
            "grid": grid,
            "total": density["integral"],
            "parts": top,
            "rest": {
                "label": f"the other {len(others)} regions",
                "count": len(others),
                "mass": math.fsum(b["mass"] for b in others),
            },
            "density": {k: density[k] for k in ("x", "y", "z")},
        }

    # ----------------------------------------------------------------- 7. surprise, entropy
    def surprise(
        self, *, p: float = 0.1, q: float = 1.0, event: int = SURPRISE_OUTCOMES - 1
    ) -> dict[str, Any]:
        """Two distributions over :data:`SURPRISE_OUTCOMES` outcomes, p(k) ∝
        exp(−peakedness · k) with peakedness ``p`` and ``q`` (0: uniform), each fitted by
        :func:`surprise_model` to :data:`SURPRISE_DRAWS` draws from it: the surprise
        −log p(k) of every outcome (``event`` is the chosen one), the entropies H(p), H(q),
        the cross-entropies H(p, q), H(q, p) and KL(p ‖ q), KL(q ‖ p), all from ptheta's
        information measures (:mod:`ptheta.eval.info`) on the fitted models."""
        p = _check_number("p", p, 0.0, MAX_PEAKEDNESS)
        q = _check_number("q", q, 0.0, MAX_PEAKEDNESS)
        event = _check_int("event", event, 0, SURPRISE_OUTCOMES - 1)
        name = _need("surprise view's model", surprise_model())
        fitted = {"p": self._surprise_fit(name, p), "q": self._surprise_fit(name, q)}
        outcomes = np.arange(SURPRISE_OUTCOMES)[:, None]  # (K, 1): one example per outcome
        rows = []
        for key, peakedness in (("p", p), ("q", q)):
            log_prob = fitted[key].score_samples(outcomes)  # (K,)
            surprise = -log_prob
            rows.append(
                {
                    "name": key,
                    "peakedness": peakedness,
                    "true": surprise_distribution(peakedness).tolist(),
                    "fitted": np.exp(log_prob).tolist(),
                    "surprise_nats": surprise.tolist(),
                    "surprise_bits": (surprise / math.log(2)).tolist(),
                    "event_probability": float(np.exp(log_prob[event])),
                    "event_surprise_nats": float(surprise[event]),
                    "event_surprise_bits": float(surprise[event] / math.log(2)),
                    "entropy": _info_json(info.entropy(fitted[key])),
                }
            )
        first, second = fitted["p"], fitted["q"]
        return {
            "model": name,
            "n_outcomes": SURPRISE_OUTCOMES,
            "n_draws": SURPRISE_DRAWS,
            "event": event,
            "distributions": rows,
            "cross_entropy": {
                "p_q": _info_json(info.cross_entropy(first, second)),
                "q_p": _info_json(info.cross_entropy(second, first)),
            },
            "kl": {
                "p_q": _info_json(info.kl(first, second)),
                "q_p": _info_json(info.kl(second, first)),
            },
        }

    def _surprise_fit(self, name: str, peakedness: float) -> GenerativeModel:
        """``name`` fitted to the draws of :func:`surprise_draws` (fitting takes
        milliseconds: not cached)."""
        x = surprise_draws(peakedness)  # (N, 1)
        spec = DataSpec("categorical", (1,), SURPRISE_OUTCOMES)
        return make(name, **budget(name, self.quick)).fit(Split(x, None, spec))

    # ----------------------------------------------------------------- 8. score field
    def score_options(self) -> dict[str, Any]:
        """The toy data sets and the score-field view's families (the first is the default)."""
        return {"datasets": list(TOY_DATA), "models": score_models()}

    def score_field(
        self,
        data: str,
        model: str | None = None,
        *,
        grid: int = 20,
        chains: int = 32,
        frames: int = 40,
        seed: int = 0,
    ) -> dict[str, Any]:
        """The learned score ∇ₓ log p of a fitted family (default the first of
        :func:`score_models`) on a grid × grid box around the toy data, and ``chains``
        Langevin chains of ``frames`` frames each (``sample_paths``, drawn with ``seed``),
        with the median distance from the chains to the nearest training point per frame."""
        data = _choose("2-D toy data set", data, TOY_DATA)
        model = _choose_model("score-field view's model", model, score_models())
        grid = _check_int("grid", grid, MIN_ARROWS, MAX_ARROWS)
        chains = _check_int("chains", chains, 1, MAX_PATHS)
        frames = _check_int("frames", frames, 2, MAX_FRAMES)
        seed = _check_int("seed", seed, 0, 2**32 - 1)
        dataset, fitted = self._toy_model(data, model)
        x, y, pts = _grid_points(*_box(dataset.train.x), grid)
        field = np.asarray(fitted.score_field(pts), dtype=np.float64)  # (G·G, 2)
        if field.shape != pts.shape:
            raise ParameterError(
                f"{model!r}.score_field returned shape {field.shape} for points of shape "
                f"{pts.shape}; fix the family's score_field"
            )
        paths = fitted.sample_paths(chains, n_frames=frames, random_state=seed)
        paths = _check_paths(paths, model, chains, frames)  # (F, n, 2)
        return {
            "data": data,
            "model": model,
            "sampler": "langevin",
            "seed": seed,
            "x": x.tolist(),
            "y": y.tolist(),
            "u": field[:, 0].reshape(grid, grid).tolist(),
            "v": field[:, 1].reshape(grid, grid).tolist(),
            "norm": np.hypot(field[:, 0], field[:, 1]).reshape(grid, grid).tolist(),
            "paths": paths.tolist(),
            "distance_to_data": _median_distance(paths, dataset.train.x[:N_NEAREST]).tolist(),
            "points": dataset.train.x[:N_POINTS].tolist(),
        }

    # ----------------------------------------------------------------- 9. ODE paths
    def ode_options(self) -> dict[str, Any]:
        """The toy data sets and the ODE view's families with their likelihood kinds."""
        return {
            "datasets": list(TOY_DATA),
            "models": [
                {"model": m, "likelihood": capabilities(m).likelihood} for m in ode_models()
            ],
        }

    def ode(
        self,
        data: str,
        model: str | None = None,
        *,
        grid: int = 40,
        paths: int = 64,
        frames: int = 30,
        seed: int = 0,
    ) -> dict[str, Any]:
        """``paths`` paths of a fitted ODE family (default the first of :func:`ode_models`)
        from the Gaussian (frame 0) to the data (frame ``frames`` − 1), drawn with ``seed``,
        and the model's density on a grid × grid box holding the data and the bulk of the
        model's samples (:meth:`_toy_density`), with ``integral`` = Σ density × cell area
        (≈ 1 for a normalised model) and the solver's ``details`` of that scoring call; and,
        as in :meth:`score_field`, the median distance from the paths to the data per frame."""
        data = _choose("2-D toy data set", data, TOY_DATA)
        model = _choose_model("ODE view's model", model, ode_models())
        grid = _check_int("grid", grid, MIN_GRID, MAX_GRID)
        paths = _check_int("paths", paths, 1, MAX_PATHS)
        frames = _check_int("frames", frames, 2, MAX_FRAMES)
        seed = _check_int("seed", seed, 0, 2**32 - 1)
        dataset, fitted = self._toy_model(data, model)
        moves = fitted.sample_paths(paths, n_frames=frames, random_state=seed)
        moves = _check_paths(moves, model, paths, frames)  # (F, n, 2)
        out: dict[str, Any] = {"data": data, "model": model, "seed": seed}
        if fitted.capabilities().fitted_likelihood == "none":
            out.update(likelihood="none", integral=None, details={})
            out["note"] = "this family has no likelihood: only its paths are drawn"
        else:
            out.update(self._toy_density(data, model, grid))
        out["paths"] = moves.tolist()
        out["distance_to_data"] = _median_distance(moves, dataset.train.x[:N_NEAREST]).tolist()
        out["points"] = dataset.train.x[:N_POINTS].tolist()
        return out

    def _toy_density(self, data: str, model: str, grid: int) -> dict[str, Any]:
        """:func:`_density_on_grid` of a toy model on a box around the data and the bulk of
        2000 of its samples (seed 0), with the solver's ``details`` of that scoring call;
        computed once per (data, model, grid): it does not depend on the paths drawn."""

        def compute() -> dict[str, Any]:
            dataset, fitted = self._toy_model(data, model)
            samples = fitted.sample(2000, random_state=0)  # (2000, 2)
            density, _ = _density_on_grid(fitted, *_bulk_box(dataset.train.x, samples), grid)
            return {**density, "details": fitted.likelihood_details()}

        return self._once(("toy-density", data, model, grid), compute)

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

    # ----------------------------------------------------------------- 10. compare
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
