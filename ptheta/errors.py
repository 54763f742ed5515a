"""User-facing errors: each names the problem and the fix, so the CLI can print one line.

Nothing here imports scikit-learn at import time (``import ptheta`` stays light):
:class:`NotFittedError`, which scikit-learn's utilities must recognise as theirs, is built
on first use as a subclass of scikit-learn's (PEP 562 ``__getattr__``).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any


class PthetaError(Exception):
    """Base of every error ptheta raises on purpose; its message is meant for the user."""


class DataError(PthetaError, ValueError):
    """Input data of the wrong shape, kind or values for what was asked."""


def __getattr__(name: str) -> Any:
    if name == "NotFittedError":
        from sklearn.exceptions import NotFittedError as sklearn_not_fitted

        cls = type(
            "NotFittedError",
            (PthetaError, sklearn_not_fitted),
            {
                "__doc__": "A model was used before `fit` (scikit-learn's utilities recognise "
                "it too).",
                "__module__": __name__,
            },
        )
        globals()[name] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class RegistryError(PthetaError, LookupError):
    """A registry entry that cannot be imported, or whose class has another name."""


class UnknownNameError(PthetaError, KeyError):
    """An unknown model, data set or parameter name."""

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0]) if self.args else ""


class RunDirError(PthetaError, OSError):
    """A run directory that is missing, corrupted or written by another model."""


class CapabilityError(PthetaError, NotImplementedError):
    """The model cannot answer this question (a GAN has no likelihood, say)."""


def unknown_name(what: str, name: str, choices: Iterable[str], hint: str = "") -> UnknownNameError:
    """Build an "unknown X 'name'; did you mean ...?" error."""
    choices = sorted(choices)
    close = difflib.get_close_matches(name, choices, n=3, cutoff=0.5)
    msg = f"unknown {what} {name!r}"
    if close:
        msg += f"; did you mean {' or '.join(repr(c) for c in close)}?"
    else:
        msg += f"; choose one of: {', '.join(choices)}"
    if hint:
        msg += f" ({hint})"
    return UnknownNameError(msg)


class ParameterError(PthetaError, ValueError):
    """A hyper-parameter out of its range or of the wrong type."""
