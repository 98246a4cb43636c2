r"""The forward-process posterior :math:`q(x_{t-1} \mid x_t, x_0)`, eqs. (9)-(10).

.. math::
   q(x_{t-1} \mid x_t, x_0) = \mathcal N\big(x_{t-1};\ \tilde\mu_t(x_t, x_0),\ \tilde\beta_t I\big)
   \qquad\text{(9)}

   \tilde\mu_t(x_t, x_0) = \frac{\sqrt{\bar\alpha_{t-1}}\,\beta_t}{1 - \bar\alpha_t}\,x_0
                         + \frac{\sqrt{\alpha_t}\,(1 - \bar\alpha_{t-1})}{1 - \bar\alpha_t}\,x_t,
   \qquad
   \tilde\beta_t = \frac{1 - \bar\alpha_{t-1}}{1 - \bar\alpha_t}\,\beta_t
   \qquad\text{(10)}

Note the :math:`\sqrt{\alpha_t}` (not :math:`\sqrt{\bar\alpha_t}`) in the coefficient of
:math:`x_t`; the homework's statement of eq. (10) has the latter, which is a slip.
The coefficients are precomputed in :class:`~ddpm_lib.schedules.Schedule`.
"""

from __future__ import annotations

import jax

from ddpm_lib._validate import check_array, check_same_shape, check_schedule
from ddpm_lib.schedules import Schedule

__all__ = ["posterior_mean", "posterior_mean_variance"]


def posterior_mean(schedule: Schedule, x0: jax.Array, xt: jax.Array, t) -> jax.Array:
    r"""The posterior mean :math:`\tilde\mu_t(x_t, x_0)` of eq. (10).

    Args:
      schedule: the variance schedule.
      x0: the clean example.
      xt: the noisy example at step ``t``, shaped like ``x0``.
      t: one integer timestep in ``1..T`` (a scalar; use ``jax.vmap`` for a batch). Under
        ``jax.jit`` its value is checked only in checked mode (:mod:`ddpm_lib.checking`).

    Returns:
      An array shaped like ``x0``.

    Raises:
      ValueError: if ``schedule`` is not a ``Schedule``, ``t`` is not one integer in
        ``1..T``, or ``x0`` and ``xt`` differ in shape or are not arrays of numbers.
    """
    check_schedule(schedule)
    schedule.check_t(t)
    check_same_shape(x0=x0, xt=xt)
    check_array("x0", x0)
    check_array("xt", xt)
    return schedule.posterior_mean_coef_x0[t] * x0 + schedule.posterior_mean_coef_xt[t] * xt


def posterior_mean_variance(schedule: Schedule, x0: jax.Array, xt: jax.Array, t):
    r"""Mean, variance and clipped log-variance of :math:`q(x_{t-1} \mid x_t, x_0)`.

    Returns:
      ``(mean, var, log_var_clipped)`` where ``mean`` is :math:`\tilde\mu_t` shaped like
      ``x0``, ``var`` the scalar :math:`\tilde\beta_t` and ``log_var_clipped`` the scalar
      :math:`\log\tilde\beta_t` with the ``t = 1`` value replaced by
      :math:`\log\tilde\beta_2` (:math:`\tilde\beta_1 = 0`: the posterior at ``t = 1`` is the
      point mass at :math:`x_0`).

    Raises:
      ValueError: as :func:`posterior_mean`.
    """
    mean = posterior_mean(schedule, x0, xt, t)
    return mean, schedule.posterior_variances[t], schedule.posterior_log_variances_clipped[t]
