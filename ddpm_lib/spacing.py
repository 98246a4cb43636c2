r"""Sampling with fewer steps: choosing a sub-sequence of ``1..T`` and the chain it defines.

A sampler that uses only ``S < T`` network calls visits a sub-sequence
:math:`0 = \tau_0 < \tau_1 < \dots < \tau_S \le T` of the training steps. Two spacings are
common, and both are easy to get wrong by one step (a sequence that never reaches ``T``
starts from noise at the wrong level; one that reaches 0 asks the network about a step it
never saw):

* ``"trailing"``: :math:`\tau_i = \operatorname{round}(iT/S)`, ``i = 1..S``. The last step
  is ``T``, the first is :math:`\operatorname{round}(T/S)`: the steps are evenly spaced and
  *end* at ``T`` (the spacing recommended by Lin et al. 2024).
* ``"linspace"``: :math:`\tau_i = 1 + \operatorname{round}\big((i-1)(T-1)/(S-1)\big)`: the
  first step is 1 and the last is ``T``. With ``S = 1`` it is ``[T]``.

``round`` is round-half-up, computed in integer arithmetic, so no float rounding can
duplicate or drop a step. Both are strictly increasing whenever ``1 <= S <= T``.

:func:`respace` turns a sub-sequence into a schedule of its own: the forward process that
jumps straight from :math:`\tau_{i-1}` to :math:`\tau_i` has

.. math::
   \beta'_i = 1 - \frac{\bar\alpha_{\tau_i}}{\bar\alpha_{\tau_{i-1}}}, \qquad
   \bar\alpha'_i = \bar\alpha_{\tau_i},

the same marginals :math:`q(x_{\tau_i} \mid x_0)` as the full chain (Nichol and Dhariwal 2021).
Ancestral sampling on it, with the network asked about step :math:`\tau_i`, is the
step-skipping ancestral sampler.
"""

from __future__ import annotations

from typing import Sequence, Union

import numpy as np

from ddpm_lib._validate import check_int, check_schedule
from ddpm_lib.schedules import Schedule, from_betas

__all__ = ["SPACINGS", "timesteps", "respace"]

SPACINGS = ("trailing", "linspace")
"""The names of the built-in spacings, for :func:`timesteps`."""

Spacing = Union[str, Sequence[int]]


def _explicit(T: int, steps, name: str = "spacing", end_at_T: bool = True) -> np.ndarray:
    try:
        a = np.asarray(steps)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be one of {SPACINGS} or a sequence of steps; got {steps!r}") from err
    if a.ndim != 1 or a.size == 0 or a.dtype.kind not in "iu":
        raise ValueError(f"{name}, when explicit, must be a non-empty 1-D sequence of integers; got {steps!r}")
    if np.any(np.diff(a) <= 0):
        raise ValueError(f"{name}, when explicit, must be strictly increasing; got {a.tolist()}")
    if end_at_T and (a[0] < 1 or a[-1] != T):
        raise ValueError(f"{name}, when explicit, must lie in 1..T and end at T = {T} "
                         f"(sampling starts from noise at step T); got {a[0]}..{a[-1]}")
    if a[0] < 1 or a[-1] > T:
        raise ValueError(f"{name}, when explicit, must lie in 1..T (T = {T}); got {a[0]}..{a[-1]}")
    return a.astype(np.int32)


def timesteps(T: int, num_steps: int | None = None, spacing: Spacing = "trailing") -> np.ndarray:
    r"""The steps :math:`\tau_1 < \dots < \tau_S` visited by a sampler with ``S = num_steps`` network calls.

    Args:
      T: the number of steps of the schedule.
      num_steps: ``S``, an integer in ``1..T``; ``None`` means ``T`` (every step). Ignored
        (it may be ``None``) when ``spacing`` is an explicit sequence.
      spacing: ``"trailing"``, ``"linspace"`` (see the module text), or an explicit strictly
        increasing sequence of integers in ``1..T`` that ends at ``T``.

    Returns:
      An ``int32`` NumPy array of ``S`` steps, increasing, with last entry ``T``.

    Raises:
      ValueError: for a bad ``T``, ``num_steps`` or ``spacing``.
    """
    T = check_int("T", T, lo=1)
    if not isinstance(spacing, str):
        taus = _explicit(T, spacing)
        if num_steps is not None and check_int("num_steps", num_steps, 1, T) != taus.size:
            raise ValueError(f"num_steps must equal the number of explicit steps, {taus.size}; got {num_steps!r}")
        return taus
    if spacing not in SPACINGS:
        raise ValueError(f"spacing must be one of {SPACINGS} or a sequence of steps; got {spacing!r}")
    S = T if num_steps is None else check_int("num_steps", num_steps, 1, T)
    i = np.arange(1, S + 1, dtype=np.int64)
    if spacing == "trailing":
        taus = (2 * i * T + S) // (2 * S)  # round(i T / S), half up
    elif S == 1:
        taus = np.array([T])
    else:
        taus = 1 + (2 * (i - 1) * (T - 1) + (S - 1)) // (2 * (S - 1))  # 1 + round((i-1)(T-1)/(S-1))
    return taus.astype(np.int32)


def respace(schedule: Schedule, taus) -> Schedule:
    r"""The schedule of the chain that jumps along ``taus``: :math:`\beta'_i = 1 - \bar\alpha_{\tau_i}/\bar\alpha_{\tau_{i-1}}`.

    Computed in float64 from the schedule's betas. Entry ``i`` of the result belongs to step
    :math:`\tau_i` of the original, so ``respace(s, taus).alpha_bars[i]`` equals
    ``s.alpha_bars[taus[i - 1]]`` (to float32 round-off).

    Args:
      schedule: the original schedule.
      taus: a sub-sequence from :func:`timesteps`.

    Returns:
      A :class:`~ddpm_lib.schedules.Schedule` with ``len(taus)`` steps.

    Raises:
      ValueError: if ``taus`` is not a valid sub-sequence of ``1..T`` ending at ``T``.
    """
    check_schedule(schedule)
    if isinstance(taus, str):
        raise ValueError(f"taus must be a sequence of steps (see timesteps); got {taus!r}")
    return from_betas(_respaced_betas(schedule, _explicit(schedule.T, taus, "taus")))


def _respaced_betas(schedule: Schedule, taus: np.ndarray) -> np.ndarray:
    r"""The float64 :math:`\beta'_1, \dots, \beta'_S` of :func:`respace` (``taus`` already checked)."""
    ab = np.cumprod(1.0 - np.asarray(schedule.betas, np.float64))
    prev = ab[np.concatenate([[0], taus[:-1]])]
    # Once alpha_bar = 0 (after a step with beta = 1) every later jump is pure noise: beta' = 1.
    betas = np.where(prev > 0.0, 1.0 - ab[taus] / np.where(prev > 0.0, prev, 1.0), 1.0)
    return np.clip(betas, 0.0, 1.0)
