r"""Closed forms for Gaussian data, used as ground truth by the tests and the chapters.

When the data are Gaussian, :math:`x_0 \sim \mathcal N(m, s^2)` independently in each
coordinate (``m`` and ``s2`` broadcast against the data), every quantity of the diffusion
is Gaussian too, so it can be written down exactly:

* the marginal :math:`q(x_t) = \mathcal N\big(\sqrt{\bar\alpha_t}\,m,\ v_t\big)` with
  :math:`v_t = \bar\alpha_t s^2 + 1 - \bar\alpha_t`;
* the best possible noise prediction (minimum mean-squared error),
  :math:`\mathbb E[\epsilon \mid x_t] = \sqrt{1-\bar\alpha_t}\,(x_t - \sqrt{\bar\alpha_t}\,m)/v_t`;
* the true reverse conditional :math:`q(x_{t-1} \mid x_t)`;
* the exact log-likelihood of the data.

``s2 = 0`` (data that are one point) is allowed. Where moreover no noise has been added
yet (every :math:`\beta` up to ``t`` is 0) :math:`v_t = 0`: then :math:`x_t = m` exactly,
the noise cannot be seen and the formulas take their limits, :math:`\epsilon^* = 0`,
:math:`\mathbb E[x_0 \mid x_t] = m`, and a reverse conditional with mean
:math:`\sqrt{\bar\alpha_{t-1}}\,m` and variance 0.

Every argument is checked at the call (:ref:`bad-input`): ``m`` must be finite,
``s2`` finite and >= 0, ``t`` one integer step; a traced ``t`` (under ``jax.jit``) is checked
only in checked mode (:mod:`ddpm_lib.checking`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ddpm_lib._validate import check_array, check_broadcast, check_mean, check_schedule, check_variance
from ddpm_lib.schedules import Schedule

__all__ = [
    "marginal_mean_var",
    "optimal_eps",
    "optimal_x0",
    "reverse_conditional",
    "log_likelihood",
]


def _check_data(m, s2, positive: bool = False, **arrays) -> None:
    """``m`` finite, ``s2`` finite and >= 0 (> 0 if ``positive``), all broadcasting together."""
    check_mean(m)
    check_variance(s2, positive=positive)
    for name, value in arrays.items():
        check_array(name, value)
    check_broadcast(m=m, s2=s2, **arrays)


def _marginal(schedule: Schedule, t, m, s2):
    ab = schedule.alpha_bars[t]
    return jnp.sqrt(ab) * m, ab * s2 + 1.0 - ab


def _safe_ratio(num, den):
    """``num / den`` where ``den > 0``, and 0 where ``den = 0`` (there ``num`` is 0 as well)."""
    return jnp.where(den > 0, num / jnp.where(den > 0, den, 1.0), 0.0)


def marginal_mean_var(schedule: Schedule, t, m, s2):
    r"""Mean and variance of :math:`q(x_t)` for data :math:`\mathcal N(m, s^2)`.

    .. math:: \mathbb E[x_t] = \sqrt{\bar\alpha_t}\,m, \qquad
              \operatorname{Var}[x_t] = \bar\alpha_t s^2 + 1 - \bar\alpha_t.

    Args:
      schedule: the variance schedule.
      t: one integer step in ``0..T`` (``t = 0`` gives the data's own ``m`` and ``s2``).
      m: the data mean (finite), any shape.
      s2: the data variance (finite, >= 0), broadcastable against ``m``.

    Returns:
      ``(mean, var)``, shaped like the broadcast of ``m`` and ``s2``.

    Raises:
      ValueError: if ``schedule`` is not a ``Schedule``, ``t`` is not one integer in
        ``0..T``, ``m`` is not finite, ``s2`` is not finite and >= 0, or ``m`` and ``s2`` do
        not broadcast together.
    """
    check_schedule(schedule)
    schedule.check_t(t, lo=0)
    _check_data(m, s2)
    return _marginal(schedule, t, m, s2)


def optimal_eps(schedule: Schedule, xt: jax.Array, t, m, s2) -> jax.Array:
    r"""The minimum-MSE noise predictor :math:`\epsilon^*(x_t, t) = \mathbb E[\epsilon \mid x_t]`.

    .. math:: \epsilon^*(x_t, t) = \frac{\sqrt{1-\bar\alpha_t}}{\bar\alpha_t s^2 + 1 - \bar\alpha_t}
              \big(x_t - \sqrt{\bar\alpha_t}\,m\big)

    It is what a perfectly trained :math:`\epsilon_\theta` converges to on Gaussian data.
    Where the denominator is 0 (``s2 = 0`` and no noise yet) the result is its limit, 0.

    Args:
      schedule: the variance schedule.
      xt: the noisy example (or a batch), broadcastable against ``m``.
      t: one integer step in ``1..T``.
      m: the data mean (finite).
      s2: the data variance (finite, >= 0).

    Raises:
      ValueError: if ``schedule`` is not a ``Schedule``, ``t`` is not one integer in
        ``1..T``, ``m`` is not finite, ``s2`` is not finite and >= 0, or ``xt``, ``m`` and
        ``s2`` do not broadcast together.
    """
    check_schedule(schedule)
    schedule.check_t(t)
    _check_data(m, s2, xt=xt)
    mean, var = _marginal(schedule, t, m, s2)
    return _safe_ratio(schedule.sqrt_one_minus_alpha_bars[t] * (xt - mean), var)


def optimal_x0(schedule: Schedule, xt: jax.Array, t, m, s2) -> jax.Array:
    r"""The posterior mean of the data, :math:`\mathbb E[x_0 \mid x_t] = m + \frac{\sqrt{\bar\alpha_t}\,s^2}{v_t}(x_t - \sqrt{\bar\alpha_t}\,m)`.

    Where :math:`v_t = 0` (``s2 = 0`` and no noise yet) the result is its limit, ``m``.

    Raises:
      ValueError: as :func:`optimal_eps`.
    """
    check_schedule(schedule)
    schedule.check_t(t)
    _check_data(m, s2, xt=xt)
    mean, var = _marginal(schedule, t, m, s2)
    return m + _safe_ratio(schedule.sqrt_alpha_bars[t] * s2 * (xt - mean), var)


def reverse_conditional(schedule: Schedule, xt: jax.Array, t, m, s2):
    r"""Mean and variance of the true reverse step :math:`q(x_{t-1} \mid x_t)` (not conditioned on :math:`x_0`).

    From the joint Gaussian of :math:`(x_{t-1}, x_t)`: with :math:`v_{t-1}` and :math:`v_t`
    the marginal variances, :math:`\operatorname{Cov}(x_{t-1}, x_t) = \sqrt{\alpha_t}\,v_{t-1}`, so

    .. math:: \mathbb E[x_{t-1} \mid x_t] = \sqrt{\bar\alpha_{t-1}}\,m
              + \frac{\sqrt{\alpha_t}\,v_{t-1}}{v_t}\big(x_t - \sqrt{\bar\alpha_t}\,m\big),
              \qquad
              \operatorname{Var}[x_{t-1} \mid x_t] = v_{t-1} - \frac{\alpha_t v_{t-1}^2}{v_t}.

    Where :math:`v_t = 0` (then :math:`v_{t-1} = 0` too) the step is deterministic: mean
    :math:`\sqrt{\bar\alpha_{t-1}}\,m`, variance 0.

    Raises:
      ValueError: as :func:`optimal_eps`.
    """
    check_schedule(schedule)
    schedule.check_t(t)
    _check_data(m, s2, xt=xt)
    mean_prev, v_prev = _marginal(schedule, t - 1, m, s2)
    mean_t, v_t = _marginal(schedule, t, m, s2)
    gain = _safe_ratio(jnp.sqrt(schedule.alphas[t]) * v_prev, v_t)
    return mean_prev + gain * (xt - mean_t), v_prev - _safe_ratio(schedule.alphas[t] * v_prev**2, v_t)


def log_likelihood(x0: jax.Array, m, s2) -> jax.Array:
    r"""Exact :math:`\log \mathcal N(x_0; m, s^2 I)` in nats, summed over coordinates.

    Raises:
      ValueError: if ``m`` is not finite, ``s2`` is not finite and > 0 (a point mass has no
        density), or ``x0``, ``m`` and ``s2`` do not broadcast together.
    """
    _check_data(m, s2, positive=True, x0=x0)
    return jnp.sum(-0.5 * (jnp.log(2.0 * jnp.pi * s2) + (x0 - m) ** 2 / s2))
