"""The model registry: the one place that knows every family, and imports none until asked.

Each entry maps a registry name to ``"module:Class"``; the module is imported the first
time the class is needed, so ``import ptheta`` loads neither torch nor scikit-learn. A new
family is one file in this folder plus one line in :data:`ENTRIES`. The classes stay
importable by name (``from ptheta.models import VAE``) through the module's
``__getattr__`` (PEP 562).

Example:
    >>> from ptheta.models import REGISTRY, make
    >>> "gmm" in REGISTRY
    True
    >>> make("gmm", n_components=2).n_components
    2
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, MutableMapping
from typing import TYPE_CHECKING, Any

from ptheta.errors import ParameterError, RegistryError, unknown_name
from ptheta.models.capabilities import LIKELIHOOD_KINDS, Capabilities

if TYPE_CHECKING:
    from ptheta.models.base import GenerativeModel

# Registry name -> "module:Class", in the order `ptheta models` lists them.
ENTRIES: dict[str, str] = {
    "independent": "ptheta.models.baselines:Independent",
    "markov": "ptheta.models.markov:MarkovChain",
    "gmm": "ptheta.models.mixtures:GaussianMixture",
    "bernoulli-mixture": "ptheta.models.mixtures:BernoulliMixture",
    "categorical-mixture": "ptheta.models.mixtures:CategoricalMixture",
    "latent-class": "ptheta.models.latent_class:LatentClass",
    "naive-bayes": "ptheta.models.naive_bayes:NaiveBayes",
    "bayes-classifier": "ptheta.models.classifier:BayesClassifier",
    "chow-liu": "ptheta.models.chow_liu:ChowLiuTree",
    "bayesian-network": "ptheta.models.bayes_net:BayesianNetwork",
    "hmm": "ptheta.models.hmm:HMM",
    "state-space": "ptheta.models.state_space:StateSpace",
    "nade": "ptheta.models.nade:NADE",
    "made": "ptheta.models.made:MADE",
    "pixelcnn": "ptheta.models.pixelcnn:PixelCNN",
    "pixelrnn": "ptheta.models.pixelrnn:PixelRNN",
    "realnvp": "ptheta.models.flows:RealNVP",
    "maf": "ptheta.models.flows:MAF",
    "glow": "ptheta.models.flows:Glow",
    "nsf": "ptheta.models.nsf:NSF",
    "lstm": "ptheta.models.sequence:LSTM",
    "transformer": "ptheta.models.sequence:Transformer",
    "table-ar": "ptheta.models.table_ar:TableAR",
    "vae": "ptheta.models.vae:VAE",
    "seq-vae": "ptheta.models.seq_vae:SeqVAE",
    "ddpm": "ptheta.models.diffusion:DDPM",
    "ncsn": "ptheta.models.ncsn:NCSN",
    "score-sde": "ptheta.models.score_sde:ScoreSDE",
    "flow-matching": "ptheta.models.flow_matching:FlowMatching",
    "rbm": "ptheta.models.rbm:RBM",
    "ebm": "ptheta.models.ebm:EBM",
    "gan": "ptheta.models.gan:GAN",
}


def _import(entry: str) -> Any:
    module, _, attr = entry.partition(":")
    return getattr(importlib.import_module(module), attr)


class Registry(MutableMapping):
    """Registry name -> model class, importing each family's module on first use.

    Values may be set as a class or as a ``"module:Class"`` string; reading always gives
    the class, and checks that its ``name`` is the registry name.
    """

    def __init__(self, entries: dict[str, Any]) -> None:
        self._entries: dict[str, Any] = dict(entries)

    def __getitem__(self, name: str) -> type[GenerativeModel]:
        entry = self._entries[name]
        if isinstance(entry, str):
            try:
                entry = _import(entry)
            except (ImportError, AttributeError) as e:
                raise RegistryError(
                    f"model {name!r} is registered as {entry!r}, which cannot be imported "
                    f"({e}); fix the registry entry"
                ) from None
            if getattr(entry, "name", None) != name:
                raise RegistryError(
                    f"model {name!r} is registered as {self._entries[name]!r}, whose name is "
                    f"{getattr(entry, 'name', None)!r}; the class's name must be the entry's"
                )
            self._entries[name] = entry
        return entry

    def __setitem__(self, name: str, entry: Any) -> None:
        self._entries[name] = entry

    def __delitem__(self, name: str) -> None:
        del self._entries[name]

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._entries))

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __repr__(self) -> str:
        return f"Registry({list(self._entries)})"


REGISTRY = Registry(ENTRIES)

# Class name -> "module:Class", for `from ptheta.models import VAE` (PEP 562).
_CLASSES: dict[str, str] = {entry.partition(":")[2]: entry for entry in ENTRIES.values()} | {
    "GenerativeModel": "ptheta.models.base:GenerativeModel",
    "NeuralModel": "ptheta.models.neural:NeuralModel",
}


def __getattr__(name: str) -> Any:
    if name in _CLASSES:
        value = _import(_CLASSES[name])
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_CLASSES])


def register(name: str, entry: str) -> None:
    """Add a family: ``register("my-model", "my_package.my_module:MyModel")``.

    The module is imported when the model is first used; its class's ``name`` must be
    ``name``. Everything else (``ptheta models``, ``compare``, the explorer, ``fit``,
    ``sample``, ``score``, ``eval``) finds it through the registry and its capabilities.
    """
    module, sep, attr = entry.partition(":")
    if not isinstance(name, str) or not name or not sep or not module or not attr:
        raise RegistryError(
            f"register({name!r}, {entry!r}): give a non-empty name and an entry "
            "'package.module:ClassName'"
        )
    REGISTRY[name] = entry


def get_model_class(name: str) -> type[GenerativeModel]:
    """The class registered under ``name`` (an UnknownNameError with suggestions otherwise)."""
    if not isinstance(name, str) or name not in REGISTRY:
        raise unknown_name("model", str(name), REGISTRY, hint="see `ptheta models`")
    return REGISTRY[name]


def make(name: str, **params: Any) -> GenerativeModel:
    """Build an unfitted model by registry name: ``make("gmm", n_components=8)``.

    An old, renamed hyper-parameter is refused with the new name (``make("vae", k=5)``:
    "vae: 'k' was renamed 'iwae_samples'"); values are checked at fit.
    """
    cls = get_model_class(name)
    cls._refuse_renamed(params)
    valid = cls._get_param_names()
    for key in params:
        if key not in valid:
            raise unknown_name(f"parameter of {name!r}:", key, valid)
    try:
        return cls(**params)
    except TypeError as e:  # a positional/keyword mix-up the loop above did not catch
        raise ParameterError(f"bad parameters for {name!r}: {e}") from None


def list_models() -> list[dict[str, Any]]:
    """One dict per registered model: name, family, likelihood kind, data kinds, what it
    can do (capabilities of its defaults), presets, class and a one-line summary."""
    rows = []
    for name in REGISTRY:
        try:
            cls = REGISTRY[name]
        except RegistryError as e:  # one broken entry must not hide the others
            rows.append(_broken_row(name, e))
            continue
        caps = cls().capabilities()
        rows.append(
            {
                "name": name,
                "family": cls.family,
                "likelihood": caps.likelihood,
                "data_kinds": list(caps.data_kinds),
                "needs_labels": caps.needs_labels,
                "can": caps.flags(),
                "capabilities": caps.to_json(),
                "presets": sorted(cls.presets),
                "class": f"{cls.__module__}.{cls.__qualname__}",
                "summary": (cls.__doc__ or "").strip().splitlines()[0],
            }
        )
    return rows


def _broken_row(name: str, error: RegistryError) -> dict[str, Any]:
    return {
        "name": name,
        "family": "(broken entry)",
        "likelihood": "none",
        "data_kinds": [],
        "needs_labels": False,
        "can": [],
        "capabilities": None,
        "presets": [],
        "class": ENTRIES.get(name, str(REGISTRY._entries.get(name))),
        "summary": str(error),
    }


def with_preset(preset: str) -> list[str]:
    """The registered names whose family declares ``preset`` (``"demo"``, ``"explorer"``),
    in registry order."""
    return [name for name, cls in REGISTRY.items() if preset in cls.presets]


__all__ = [
    "ENTRIES",
    "LIKELIHOOD_KINDS",
    "REGISTRY",
    "Capabilities",
    "Registry",
    "get_model_class",
    "list_models",
    "make",
    "register",
    "with_preset",
    *_CLASSES,
]
