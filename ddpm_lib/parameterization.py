r"""Conversions between the three things a denoiser can predict: :math:`\epsilon`, :math:`x_0`, :math:`\mu`.

All follow from the closed form :math:`x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\epsilon`
and the posterior mean (10). Each is one line; each works for one example (use ``jax.vmap``).

The :math:`\epsilon`-parameterization needs :math:`\bar\alpha_t > 0` to recover :math:`x_0`
and :math:`\alpha_t > 0` for eq. (12): a step with :math:`\beta_t = 1` destroys
:math:`x_{t-1}` completely, and no prediction of the noise can undo it. Called with a
concrete ``t`` at such a step, these functions raise ``ValueError``. As everywhere in
:mod:`ddpm_lib`, ``t`` is one integer step in ``1..T``, checked at the call; a traced ``t``
(under ``jax.jit``) is checked only in checked mode (:mod:`ddpm_lib.checking`).
"""

from __future__ import annotations

import jax
import numpy as np

from ddpm_lib._validate import check_array, check_same_shape, check_schedule, concrete
from ddpm_lib.posterior import posterior_mean
from ddpm_lib.schedules import Schedule

__all__ = ["x0_from_eps", "eps_from_x0", "mu_from_eps", "mu_from_x0"]


def _check_args(schedule: Schedule, t, **arrays) -> None:
    """The checks every conversion shares: a ``Schedule``, one step ``t``, two arrays of one shape."""
    check_schedule(schedule)
    schedule.check_t(t)
    check_same_shape(**arrays)
    for name, value in arrays.items():
        check_array(name, value)


def _check_invertible(schedule: Schedule, t, what: str, arr: jax.Array, label: str,
                      cause: str) -> None:
    tt, values = concrete(t), concrete(arr)
    if tt is None or values is None:  # a traced t or a traced schedule (inside jax.jit)
        return
    vals = values[tt]
    if np.any(vals <= 0.0):
        raise ValueError(f"{what} needs {label} > 0, but {label} = 0 at t = {t!r} ({cause})")


def x0_from_eps(schedule: Schedule, xt: jax.Array, t, eps: jax.Array) -> jax.Array:
    r"""Invert the closed form: :math:`\hat x_0 = (x_t - \sqrt{1-\bar\alpha_t}\,\epsilon)/\sqrt{\bar\alpha_t}`.

    Raises:
      ValueError: if ``schedule`` is not a ``Schedule``, ``t`` is not one integer in ``1..T``,
        the shapes differ, or :math:`\bar\alpha_t = 0`.
    """
    _check_args(schedule, t, xt=xt, eps=eps)
    _check_invertible(schedule, t, "x0_from_eps", schedule.alpha_bars, "alpha_bar_t",
                      "a step with beta = 1 at or before t erased x_0")
    return (xt - schedule.sqrt_one_minus_alpha_bars[t] * eps) / schedule.sqrt_alpha_bars[t]


def eps_from_x0(schedule: Schedule, xt: jax.Array, t, x0: jax.Array) -> jax.Array:
    r"""The noise implied by :math:`x_0`: :math:`\epsilon = (x_t - \sqrt{\bar\alpha_t}\,x_0)/\sqrt{1-\bar\alpha_t}`.

    Raises:
      ValueError: if ``schedule`` is not a ``Schedule``, ``t`` is not one integer in ``1..T``,
        the shapes differ, or :math:`1 - \bar\alpha_t = 0` (then no noise has been added and
        there is none to recover).
    """
    _check_args(schedule, t, xt=xt, x0=x0)
    _check_invertible(schedule, t, "eps_from_x0", 1.0 - schedule.alpha_bars,
                      "1 - alpha_bar_t", "every beta up to t is 0, so no noise was added")
    return (xt - schedule.sqrt_alpha_bars[t] * x0) / schedule.sqrt_one_minus_alpha_bars[t]


def mu_from_eps(schedule: Schedule, xt: jax.Array, t, eps: jax.Array) -> jax.Array:
    r"""The reverse-process mean of eq. (12) from a noise prediction.

    .. math:: \mu_\theta(x_t, t) = \frac{1}{\sqrt{\alpha_t}}\Big(x_t
              - \frac{\beta_t}{\sqrt{1-\bar\alpha_t}}\,\epsilon_\theta(x_t, t)\Big)
              \qquad\text{(12)}

    The factor in front is :math:`1/\sqrt{\alpha_t}`; the homework's
    :math:`1/\sqrt{\bar\alpha_t}` is a slip. Where :math:`\beta_t = 0` the step is the
    identity and the result is :math:`x_t`.

    Raises:
      ValueError: if ``schedule`` is not a ``Schedule``, ``t`` is not one integer in ``1..T``,
        the shapes differ, or :math:`\alpha_t = 0`.
    """
    _check_args(schedule, t, xt=xt, eps=eps)
    _check_invertible(schedule, t, "mu_from_eps", schedule.alphas, "alpha_t",
                      "beta_t = 1 there")
    # beta_t / sqrt(1 - alpha_bar_t) -> 0 when beta_t = 0; guard the 0/0 of an all-zero prefix.
    one_m = schedule.sqrt_one_minus_alpha_bars[t]
    coef = schedule.betas[t] / jax.numpy.where(one_m > 0, one_m, 1.0)
    return (xt - coef * eps) / jax.numpy.sqrt(schedule.alphas[t])


def mu_from_x0(schedule: Schedule, xt: jax.Array, t, x0: jax.Array) -> jax.Array:
    r"""The reverse-process mean from an :math:`x_0` prediction: :math:`\tilde\mu_t(x_t, \hat x_0)`, eq. (10).

    Raises:
      ValueError: if ``schedule`` is not a ``Schedule``, ``t`` is not one integer in ``1..T``,
        or the shapes differ.
    """
    return posterior_mean(schedule, x0, xt, t)
