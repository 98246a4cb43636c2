"""Fair timing of JAX functions: warmed up, synchronized, repeated.

JAX hides two things from a naive stopwatch:

* the **first call** of a compiled function traces and compiles it, which can take a thousand
  times longer than running it;
* calls are **dispatched asynchronously**: a function returns as soon as its work is queued,
  so the clock stops before the arithmetic is done unless the result is waited for with
  ``jax.block_until_ready``.

:func:`time_call` handles both, and repeats the measurement so that one unlucky interruption
by the operating system does not decide the result.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from typing import Callable

import jax

from ddpm_lib._validate import check_callable, check_int, check_real

__all__ = ["Timing", "time_call", "time_first_call"]


@dataclasses.dataclass(frozen=True)
class Timing:
    """Seconds per call of a timed function.

    Attributes:
      best: the fastest of the repeats (the least disturbed by other work on the machine).
      median: the median of the repeats.
      number: calls per repeat.
      repeats: the number of repeats.
    """

    best: float
    median: float
    number: int
    repeats: int


def _run(fn: Callable, args: tuple, number: int) -> float:
    start = time.perf_counter()
    for _ in range(number):
        jax.block_until_ready(fn(*args))
    return time.perf_counter() - start


def time_call(fn: Callable, *args, repeats: int = 5, min_time: float = 0.02, warmup: int = 2) -> Timing:
    """Time ``fn(*args)`` per call, after ``warmup`` untimed calls, waiting for every result.

    The number of calls per repeat is chosen, from a first timed call, so that one repeat
    lasts at least ``min_time`` seconds: the clock's resolution then does not matter.

    Args:
      fn: the function; its result may be any pytree of arrays.
      *args: its arguments.
      repeats: how many times to repeat the measurement.
      min_time: the shortest acceptable duration of one repeat, in seconds.
      warmup: untimed calls first (the first one compiles a jitted function).

    Returns:
      A :class:`Timing`.

    Raises:
      ValueError: if ``fn`` is not callable, ``repeats`` is not an integer >= 1, ``warmup``
        not an integer >= 0 or ``min_time`` not a finite number >= 0.
    """
    check_callable("fn", fn)
    repeats = check_int("repeats", repeats, lo=1)
    warmup = check_int("warmup", warmup, lo=0)
    min_time = check_real("min_time", min_time, 0.0)
    for _ in range(warmup):
        jax.block_until_ready(fn(*args))
    number, elapsed = 1, _run(fn, args, 1)
    while elapsed < min_time and number < 10**6:
        number = min(10**6, max(2 * number, int(1.2 * number * min_time / max(elapsed, 1e-9))))
        elapsed = _run(fn, args, number)
    per_call = [_run(fn, args, number) / number for _ in range(repeats)]
    return Timing(best=min(per_call), median=statistics.median(per_call), number=number, repeats=repeats)


def time_first_call(fn: Callable, *args) -> float:
    """Seconds taken by one call of ``fn(*args)``, waited for: for a fresh jitted function, tracing and compilation included.

    Raises:
      ValueError: if ``fn`` is not callable.
    """
    check_callable("fn", fn)
    return _run(fn, args, 1)
