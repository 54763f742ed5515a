"""One BLAS thread for small products.

numpy's BLAS splits each product across its threads, and every call wakes them and waits
for them. On products of a few million multiply-adds, called many times with Python in
between (a stochastic-gradient step, an E-step's block of rows), the waking and waiting
cost more than the second thread brings, and on shared cores far more: a thread that is
not scheduled holds up every call. :func:`blas_threads_for` limits the BLAS pools to one
thread for work whose products are all at most a given size, and leaves them alone
otherwise.

The limit is set on the libraries' thread counts, which most BLAS builds keep for the
whole process: while such work runs, other threads' BLAS calls may use one thread too.
Overlapping works (fits in several threads) share one limit, set by the first to start
and lifted by the last to finish, so the original counts always come back.

Example:
    >>> import numpy as np
    >>> from ptheta.models.blas import blas_threads_for
    >>> with blas_threads_for(64 * 64 * 64, small=1 << 20):  # at most small: one thread
    ...     y = np.ones((64, 64)) @ np.ones((64, 64))
    >>> float(y[0, 0])
    64.0
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Iterator
from typing import Any

from threadpoolctl import ThreadpoolController

_lock = threading.Lock()
_active = 0  # works inside the limit now
_limiter: Any = None  # threadpoolctl's limiter of the first of them (restores the counts)


@functools.cache
def _controller() -> ThreadpoolController:
    """The loaded BLAS libraries' thread pools, found once (a scan costs about 2 ms; a
    ``limit`` on the found ones, 25 µs)."""
    return ThreadpoolController()


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    global _active, _limiter
    with _lock:
        if _active == 0:
            _limiter = _controller().limit(limits=1, user_api="blas")
        _active += 1
    try:
        yield
    finally:
        with _lock:
            _active -= 1
            if _active == 0:
                _limiter.restore_original_limits()
                _limiter = None


def blas_threads_for(
    multiply_adds: int | None, *, small: int
) -> contextlib.AbstractContextManager[Any]:
    """A context in which BLAS runs on one thread when the largest product of the work
    inside takes at most ``small`` multiply-adds (``multiply_adds``), else (or with None:
    work that is not numpy's) a no-op."""
    if multiply_adds is not None and multiply_adds <= small:
        return _one_thread()
    return contextlib.nullcontext()
