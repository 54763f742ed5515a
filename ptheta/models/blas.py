"""One BLAS thread for small products.

numpy's BLAS splits each product across its threads, and every call wakes them and waits
for them. On products of a few million multiply-adds, called many times with Python in
between (a stochastic-gradient step, an E-step's block of rows), the waking and waiting
cost more than the second thread brings, and on shared cores far more: a thread that is
not scheduled holds up every call. :func:`blas_threads_for` limits the BLAS pools to one
thread for work whose products are all at most a given size, and leaves them alone
otherwise.

Example:
    >>> import numpy as np
    >>> from ptheta.models.blas import blas_threads_for
    >>> with blas_threads_for(64 * 64 * 512, small=1 << 20):  # small: one thread inside
    ...     y = np.ones((64, 512)) @ np.ones((512, 64))
    >>> float(y[0, 0])
    512.0
"""

from __future__ import annotations

import contextlib
import functools
from typing import Any

from threadpoolctl import ThreadpoolController


@functools.cache
def _controller() -> ThreadpoolController:
    """The loaded BLAS libraries' thread pools, found once (a scan costs about 2 ms; a
    ``limit`` on the found ones, 25 µs)."""
    return ThreadpoolController()


def blas_threads_for(multiply_adds: int, *, small: int) -> contextlib.AbstractContextManager[Any]:
    """A context in which BLAS runs on one thread when the largest product of the work
    inside takes at most ``small`` multiply-adds (``multiply_adds``), else a no-op."""
    if multiply_adds <= small:
        return _controller().limit(limits=1, user_api="blas")
    return contextlib.nullcontext()
