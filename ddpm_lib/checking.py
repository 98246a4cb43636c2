r"""Checked mode: check the values that ``jax.jit`` hides, with :mod:`jax.experimental.checkify`.

Every public function of :mod:`ddpm_lib` checks its arguments where it is called and raises
``ValueError`` naming a bad one (the rule is written out in the API reference). A value that
is *traced* (a timestep ``t`` inside ``jax.jit``, ``jax.vmap`` or ``jax.lax.scan``) cannot be
looked at when the function is traced, so by default it is not checked, at no cost: under
``jax.jit`` the out-of-range step ``t = T + 1`` reads the entry of step ``T`` (JAX clamps
out-of-range indices) and ``t = -1`` wraps around to step ``T``.

:func:`checked` turns the checks of traced values on for one function. It traces the function
in checked mode, where the library's checks of ``t``, ``beta``, ``sigma_t`` and ``s2`` become
:func:`jax.experimental.checkify.debug_check` calls, runs it under
:func:`jax.experimental.checkify.checkify`, and raises the first failed check as a
``ValueError``. The compiled program then carries the checks, so use it to debug, not in a
hot loop.
"""

from __future__ import annotations

import functools
import re
from typing import Callable

from ddpm_lib._validate import CHECKED_MODE, CHECKED_MODE_IN_JIT_KEY, check_callable

__all__ = ["checked"]


def checked(fun: Callable, *, errors=None) -> Callable:
    """Return ``fun`` with the checks of traced values turned on; a failed check raises ``ValueError``.

    Args:
      fun: any function of arrays, for example ``jax.jit(forward.q_sample)`` or a function
        that ``jax.vmap`` s a library function over a batch of steps.
      errors: the :mod:`~jax.experimental.checkify` error set; default
        ``checkify.user_checks`` (the library's own checks). Add for example
        ``checkify.nan_checks`` to find the first operation that makes a NaN.

    Returns:
      A function with the signature of ``fun`` that returns what ``fun`` returns, or raises
      ``ValueError`` with the library's message, for example
      ``t must lie in 1..10 (T = 10); got 11`` (chained to checkify's ``JaxRuntimeError``).

    Raises:
      ValueError: if ``fun`` is not callable.

    Example::

        q = checked(jax.jit(forward.q_sample))
        q(schedule, x0, 11, eps)  # ValueError: t must lie in 1..10 (T = 10); got 11
    """
    check_callable("fun", fun)
    from jax.experimental import checkify

    errors = checkify.user_checks if errors is None else errors
    # Without a jit-key context (older JAX) a cached trace of a jitted `fun` would be reused:
    # trace the undecorated function instead.
    inner = fun if CHECKED_MODE_IN_JIT_KEY else getattr(fun, "__wrapped__", fun)
    checkified = checkify.checkify(inner, errors=errors)

    @functools.wraps(fun)
    def run(*args, **kwargs):
        with CHECKED_MODE(True):
            err, out = checkified(*args, **kwargs)
        try:
            err.throw()
        except ValueError as failed:  # checkify.JaxRuntimeError: keep the library's sentence only
            first = str(failed).strip().splitlines()[0] if str(failed).strip() else str(failed)
            raise ValueError(re.sub(r"\s*\(`check` failed\)\s*$", "", first)) from failed
        return out

    return run
