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
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ddpm_lib._validate import check_variance
from ddpm_lib.schedules import Schedule

__all__ = [
    "marginal_mean_var",
    "optimal_eps",
    "optimal_x0",
    "reverse_conditional",
    "log_likelihood",
]


def marginal_mean_var(schedule: Schedule, t, m, s2):
    r"""Mean and variance of :math:`q(x_t)` for data :math:`\mathcal N(m, s^2)`; ``t`` may be 0..T.

    .. math:: \mathbb E[x_t] = \sqrt{\bar\alpha_t}\,m, \qquad
              \operatorname{Var}[x_t] = \bar\alpha_t s^2 + 1 - \bar\alpha_t.
    """
    check_variance(s2)
    ab = schedule.alpha_bars[t]
    return jnp.sqrt(ab) * m, ab * s2 + 1.0 - ab


def optimal_eps(schedule: Schedule, xt: jax.Array, t, m, s2) -> jax.Array:
    r"""The minimum-MSE noise predictor :math:`\epsilon^*(x_t, t) = \mathbb E[\epsilon \mid x_t]`.

    .. math:: \epsilon^*(x_t, t) = \frac{\sqrt{1-\bar\alpha_t}}{\bar\alpha_t s^2 + 1 - \bar\alpha_t}
              \big(x_t - \sqrt{\bar\alpha_t}\,m\big)

    It is what a perfectly trained :math:`\epsilon_\theta` converges to on Gaussian data.
    """
    schedule.check_t(t)
    mean, var = marginal_mean_var(schedule, t, m, s2)
    return schedule.sqrt_one_minus_alpha_bars[t] * (xt - mean) / var


def optimal_x0(schedule: Schedule, xt: jax.Array, t, m, s2) -> jax.Array:
    r"""The posterior mean of the data, :math:`\mathbb E[x_0 \mid x_t] = m + \frac{\sqrt{\bar\alpha_t}\,s^2}{v_t}(x_t - \sqrt{\bar\alpha_t}\,m)`."""
    schedule.check_t(t)
    mean, var = marginal_mean_var(schedule, t, m, s2)
    return m + schedule.sqrt_alpha_bars[t] * s2 * (xt - mean) / var


def reverse_conditional(schedule: Schedule, xt: jax.Array, t, m, s2):
    r"""Mean and variance of the true reverse step :math:`q(x_{t-1} \mid x_t)` (not conditioned on :math:`x_0`).

    From the joint Gaussian of :math:`(x_{t-1}, x_t)`: with :math:`v_{t-1}` and :math:`v_t`
    the marginal variances, :math:`\operatorname{Cov}(x_{t-1}, x_t) = \sqrt{\alpha_t}\,v_{t-1}`, so

    .. math:: \mathbb E[x_{t-1} \mid x_t] = \sqrt{\bar\alpha_{t-1}}\,m
              + \frac{\sqrt{\alpha_t}\,v_{t-1}}{v_t}\big(x_t - \sqrt{\bar\alpha_t}\,m\big),
              \qquad
              \operatorname{Var}[x_{t-1} \mid x_t] = v_{t-1} - \frac{\alpha_t v_{t-1}^2}{v_t}.
    """
    schedule.check_t(t)
    mean_prev, v_prev = marginal_mean_var(schedule, t - 1, m, s2)
    mean_t, v_t = marginal_mean_var(schedule, t, m, s2)
    gain = jnp.sqrt(schedule.alphas[t]) * v_prev / v_t
    return mean_prev + gain * (xt - mean_t), v_prev - schedule.alphas[t] * v_prev**2 / v_t


def log_likelihood(x0: jax.Array, m, s2) -> jax.Array:
    r"""Exact :math:`\log \mathcal N(x_0; m, s^2 I)` in nats, summed over coordinates (needs :math:`s^2 > 0`)."""
    check_variance(s2)
    return jnp.sum(-0.5 * (jnp.log(2.0 * jnp.pi * s2) + (x0 - m) ** 2 / s2))
