"""The model registry: the one place that knows every family."""

from __future__ import annotations

from typing import Any

from ptheta.errors import ParameterError, unknown_name
from ptheta.models.base import LIKELIHOOD_KINDS, GenerativeModel
from ptheta.models.baselines import Independent
from ptheta.models.chow_liu import ChowLiuTree
from ptheta.models.classifier import BayesClassifier
from ptheta.models.diffusion import DDPM
from ptheta.models.ebm import EBM
from ptheta.models.flows import MAF, Glow, RealNVP
from ptheta.models.gan import GAN
from ptheta.models.made import MADE
from ptheta.models.markov import MarkovChain
from ptheta.models.mixtures import BernoulliMixture, CategoricalMixture, GaussianMixture
from ptheta.models.nade import NADE
from ptheta.models.naive_bayes import NaiveBayes
from ptheta.models.pixelcnn import PixelCNN
from ptheta.models.rbm import RBM
from ptheta.models.seq_vae import SeqVAE
from ptheta.models.sequence import LSTM, Transformer
from ptheta.models.vae import VAE

REGISTRY: dict[str, type[GenerativeModel]] = {
    cls.name: cls
    for cls in (
        Independent,
        MarkovChain,
        GaussianMixture,
        BernoulliMixture,
        CategoricalMixture,
        NaiveBayes,
        BayesClassifier,
        ChowLiuTree,
        NADE,
        MADE,
        PixelCNN,
        RealNVP,
        MAF,
        Glow,
        LSTM,
        Transformer,
        VAE,
        SeqVAE,
        DDPM,
        RBM,
        EBM,
        GAN,
    )
}


def get_model_class(name: str) -> type[GenerativeModel]:
    """The class registered under ``name`` (an UnknownNameError with suggestions otherwise)."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise unknown_name("model", name, REGISTRY, hint="see `ptheta models`") from None


def make(name: str, **params: Any) -> GenerativeModel:
    """Build an unfitted model by registry name: ``make("gmm", n_components=8)``."""
    cls = get_model_class(name)
    valid = cls._get_param_names()
    for key in params:
        if key not in valid:
            raise unknown_name(f"parameter of {name!r}:", key, valid)
    try:
        return cls(**params)
    except TypeError as e:  # a positional/keyword mix-up the loop above did not catch
        raise ParameterError(f"bad parameters for {name!r}: {e}") from None


def list_models() -> list[dict[str, Any]]:
    """One dict per registered model: name, family, likelihood kind, data kinds, class."""
    return [
        {
            "name": name,
            "family": cls.family,
            "likelihood": cls.likelihood,
            "data_kinds": list(cls.data_kinds),
            "needs_labels": cls.needs_labels,
            "class": f"{cls.__module__}.{cls.__qualname__}",
            "summary": (cls.__doc__ or "").strip().splitlines()[0],
        }
        for name, cls in REGISTRY.items()
    ]


__all__ = [
    "DDPM",
    "EBM",
    "GAN",
    "LIKELIHOOD_KINDS",
    "LSTM",
    "MADE",
    "MAF",
    "NADE",
    "RBM",
    "REGISTRY",
    "VAE",
    "BayesClassifier",
    "BernoulliMixture",
    "CategoricalMixture",
    "ChowLiuTree",
    "GaussianMixture",
    "GenerativeModel",
    "Glow",
    "Independent",
    "MarkovChain",
    "NaiveBayes",
    "PixelCNN",
    "RealNVP",
    "SeqVAE",
    "Transformer",
    "get_model_class",
    "list_models",
    "make",
]
