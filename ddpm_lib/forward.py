r"""The forward (noising) process, eq. (1), and its closed form (problem 1.4).

.. math::
   q(x_t \mid x_{t-1}) = \mathcal N\big(x_t;\ \sqrt{1-\beta_t}\,x_{t-1},\ \beta_t I\big)
   \qquad\text{(1)}

   q(x_t \mid x_0) = \mathcal N\big(x_t;\ \sqrt{\bar\alpha_t}\,x_0,\ (1-\bar\alpha_t) I\big)
   \qquad\text{(closed form, problem 1.4)}

Functions are written for one example of any shape; batch them with ``jax.vmap``.
Arguments are checked once, at the call (:ref:`bad-input`): a bad one raises ``ValueError``
naming it. A traced ``t`` or ``beta`` (under ``jax.jit``) is not checked: ``t = T + 1`` reads
step ``T``; :func:`ddpm_lib.checking.checked` (checked mode) checks it.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ddpm_lib._validate import check_array, check_beta, check_key, check_same_shape, check_schedule
from ddpm_lib.schedules import Schedule

__all__ = ["compute_mean", "compute_cov", "forward_step", "diffuse", "q_mean_var", "q_sample"]


def compute_mean(x: jax.Array, beta) -> jax.Array:
    r"""Mean of one forward step, eq. (1): :math:`\sqrt{1 - \beta}\, x`.

    Args:
      x: the state :math:`x_{t-1}`, any shape (the homework passes it flattened).
      beta: the step's variance :math:`\beta_t`, a scalar in [0, 1].

    Returns:
      An array shaped like ``x``.

    Raises:
      ValueError: if ``beta`` is not one finite number in [0, 1] (a vector of betas would
        broadcast silently against ``x``), or ``x`` is not an array of numbers.
    """
    check_beta(beta, scalar=True)
    check_array("x", x)
    return jnp.sqrt(1.0 - beta) * x


def compute_cov(x: jax.Array, beta) -> jax.Array:
    r"""Covariance of one forward step, eq. (1): :math:`\beta I_n` with ``n = x.size``.

    The covariance does not depend on the *value* of ``x``, only on its size: every
    coordinate receives independent noise of variance :math:`\beta`.

    Args:
      x: the state :math:`x_{t-1}`; only its size ``n`` is used.
      beta: the step's variance :math:`\beta_t`, a scalar in [0, 1].

    Returns:
      An ``(n, n)`` array.

    Raises:
      ValueError: if ``beta`` is not one finite number in [0, 1], or ``x`` is not an array of
        numbers.
    """
    check_beta(beta, scalar=True)
    check_array("x", x)
    n = jnp.size(x)
    return beta * jnp.eye(n, dtype=jnp.result_type(x, jnp.float32))


def forward_step(x: jax.Array, beta, eps: jax.Array) -> jax.Array:
    r"""One draw from eq. (1) with the noise supplied: :math:`\sqrt{1-\beta}\,x + \sqrt{\beta}\,\epsilon`.

    Passing ``eps`` (standard normal, shaped like ``x``) keeps the function deterministic.

    Raises:
      ValueError: if ``beta`` is not one number in [0, 1] or the shapes of ``x`` and ``eps``
        differ.
    """
    check_same_shape(x=x, eps=eps)
    check_array("eps", eps)
    return compute_mean(x, beta) + jnp.sqrt(beta) * eps


def diffuse(key: jax.Array, x0: jax.Array, schedule: Schedule) -> jax.Array:
    r"""Run the whole Markov chain of eq. (1) from ``x0`` and keep every state.

    One ``jax.lax.scan`` over :math:`t = 1..T`, each step fed its own key.

    Args:
      key: a ``jax.random.key``.
      x0: the clean example, any shape.
      schedule: the :class:`~ddpm_lib.schedules.Schedule` to follow.

    Returns:
      An array of shape ``(T + 1, *x0.shape)`` whose entry ``t`` is :math:`x_t`
      (entry 0 is ``x0`` itself).

    Raises:
      ValueError: if ``key`` is not one random key, ``schedule`` is not a ``Schedule`` or
        ``x0`` is not an array of numbers.
    """
    check_key(key)
    check_schedule(schedule)
    check_array("x0", x0)
    keys = jax.random.split(key, schedule.T)

    def step(x, inputs):
        beta, k = inputs
        x_next = jnp.sqrt(1.0 - beta) * x + jnp.sqrt(beta) * jax.random.normal(k, x.shape, x.dtype)
        return x_next, x_next

    x0 = jnp.asarray(x0, dtype=jnp.float32)
    _, xs = jax.lax.scan(step, x0, (schedule.betas[1:], keys))
    return jnp.concatenate([x0[None], xs], axis=0)


def q_mean_var(schedule: Schedule, x0: jax.Array, t) -> tuple[jax.Array, jax.Array]:
    r"""Mean and variance of the closed form :math:`q(x_t \mid x_0)`.

    .. math:: \mathbb E[x_t \mid x_0] = \sqrt{\bar\alpha_t}\,x_0, \qquad
              \operatorname{Var}[x_t \mid x_0] = (1 - \bar\alpha_t)\, I.

    Returns:
      ``(mean, var)``: ``mean`` shaped like ``x0``, ``var`` a scalar (the same for every
      coordinate).

    Raises:
      ValueError: if ``schedule`` is not a ``Schedule``, ``t`` is not one integer in
        ``1..T``, or ``x0`` is not an array of numbers.
    """
    check_schedule(schedule)
    schedule.check_t(t)
    check_array("x0", x0)
    # the square of the stored noise scale, derived in float64: a float32 1 - alpha_bar_t
    # would lose most of its digits near t = 1 (1 - 0.9999 keeps about three)
    return schedule.sqrt_alpha_bars[t] * x0, schedule.sqrt_one_minus_alpha_bars[t] ** 2


def q_sample(schedule: Schedule, x0: jax.Array, t, eps: jax.Array) -> jax.Array:
    r"""Sample :math:`x_t` straight from :math:`x_0` with the closed form.

    .. math:: x_t(x_0, \epsilon) = \sqrt{\bar\alpha_t}\, x_0 + \sqrt{1 - \bar\alpha_t}\,\epsilon,
              \qquad \epsilon \sim \mathcal N(0, I).

    Args:
      schedule: the variance schedule.
      x0: the clean example, any shape.
      t: one integer timestep in ``1..T`` (a scalar; use ``jax.vmap`` for a batch). Under
        ``jax.jit`` its value is checked only in checked mode (:mod:`ddpm_lib.checking`).
      eps: standard normal noise shaped like ``x0``.

    Returns:
      :math:`x_t`, shaped like ``x0``.

    Raises:
      ValueError: if ``schedule`` is not a ``Schedule``, ``t`` is not one integer in
        ``1..T`` (an array of steps, a float such as ``3.0``), or ``x0`` and ``eps`` differ
        in shape.
    """
    check_schedule(schedule)
    schedule.check_t(t)
    check_same_shape(x0=x0, eps=eps)
    check_array("x0", x0)
    check_array("eps", eps)
    return schedule.sqrt_alpha_bars[t] * x0 + schedule.sqrt_one_minus_alpha_bars[t] * eps
