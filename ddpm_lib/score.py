r"""The denoiser is a score: Tweedie's formula and the conversions it gives.

For any data distribution, the noisy marginal :math:`q(x_t) = \int q(x_t \mid x_0)\,q(x_0)\,dx_0`
with :math:`q(x_t \mid x_0) = \mathcal N(\sqrt{\bar\alpha_t}\,x_0, (1-\bar\alpha_t) I)` satisfies
Tweedie's formula

.. math::
   \nabla_{x_t} \log q(x_t) = -\frac{\mathbb E[\epsilon \mid x_t]}{\sqrt{1-\bar\alpha_t}}, \qquad
   \mathbb E[x_0 \mid x_t] = \frac{x_t + (1-\bar\alpha_t)\,\nabla_{x_t}\log q(x_t)}{\sqrt{\bar\alpha_t}},

so the minimum-MSE noise predictor :math:`\epsilon^*(x_t, t) = \mathbb E[\epsilon \mid x_t]`
(what :math:`L_\text{simple}` trains :math:`\epsilon_\theta` towards) is the score of the
noisy data, rescaled. These one-line conversions work for one example or a batch, with a
scalar ``t``. They need :math:`1 - \bar\alpha_t > 0` (some noise added by step ``t``), and
:func:`x0_from_score` also :math:`\bar\alpha_t > 0`; a concrete ``t`` that breaks this raises
``ValueError``.
"""

from __future__ import annotations

from typing import Callable

import jax
import numpy as np

from ddpm_lib._validate import check_same_shape, concrete
from ddpm_lib.schedules import Schedule

__all__ = ["score_from_eps", "eps_from_score", "x0_from_score", "model_score"]


def _check(schedule: Schedule, t, fn: str, need_signal: bool = False) -> None:
    if not isinstance(schedule, Schedule):
        raise ValueError(f"schedule must be a ddpm_lib.schedules.Schedule; got {type(schedule).__name__}")
    tt = concrete(t)
    if tt is None:  # a traced t (inside jax.jit): the public caller checked what it could
        return
    schedule.check_t(t)
    if tt.ndim != 0:
        raise ValueError(f"t must be a single step (a scalar); got an array of shape {tt.shape}")
    if float(schedule.sqrt_one_minus_alpha_bars[int(tt)]) <= 0.0:
        raise ValueError(f"{fn} needs 1 - alpha_bar_t > 0, but it is 0 at t = {int(tt)}: every beta up to "
                         "t is 0, so x_t = x_0 has no noise and q(x_t) no smoothed score")
    if need_signal and float(schedule.sqrt_alpha_bars[int(tt)]) <= 0.0:
        raise ValueError(f"{fn} needs alpha_bar_t > 0, but it is 0 at t = {int(tt)} (a step with beta = 1)")


def score_from_eps(schedule: Schedule, eps: jax.Array, t) -> jax.Array:
    r"""The score implied by a noise prediction: :math:`s = -\epsilon / \sqrt{1-\bar\alpha_t}`.

    Args:
      schedule: the variance schedule.
      eps: a noise prediction :math:`\epsilon_\theta(x_t, t)`, any shape.
      t: the step, an integer in ``1..T``.

    Raises:
      ValueError: if ``t`` is outside ``1..T`` or :math:`1-\bar\alpha_t = 0`.
    """
    _check(schedule, t, "score_from_eps")
    return -eps / schedule.sqrt_one_minus_alpha_bars[t]


def eps_from_score(schedule: Schedule, score: jax.Array, t) -> jax.Array:
    r"""The noise prediction implied by a score: :math:`\epsilon = -\sqrt{1-\bar\alpha_t}\,s`.

    Raises:
      ValueError: if ``t`` is outside ``1..T`` or :math:`1-\bar\alpha_t = 0`.
    """
    _check(schedule, t, "eps_from_score")
    return -schedule.sqrt_one_minus_alpha_bars[t] * score


def x0_from_score(schedule: Schedule, xt: jax.Array, t, score: jax.Array) -> jax.Array:
    r"""Tweedie's denoiser: :math:`\mathbb E[x_0 \mid x_t] = (x_t + (1-\bar\alpha_t)\,s)/\sqrt{\bar\alpha_t}`.

    Raises:
      ValueError: if ``t`` is outside ``1..T``, the shapes differ, or
        :math:`\bar\alpha_t` or :math:`1-\bar\alpha_t` is 0.
    """
    _check(schedule, t, "x0_from_score", need_signal=True)
    check_same_shape(xt=xt, score=score)
    return (xt + schedule.sqrt_one_minus_alpha_bars[t] ** 2 * score) / schedule.sqrt_alpha_bars[t]


def model_score(denoiser: Callable, schedule: Schedule, xt: jax.Array, t) -> jax.Array:
    r"""The score of a noise-predicting denoiser: :math:`s_\theta(x_t, t) = -\epsilon_\theta(x_t, t)/\sqrt{1-\bar\alpha_t}`.

    Args:
      denoiser: ``denoiser(xt, t)`` returning :math:`\epsilon_\theta`, shaped like ``xt``.
      schedule: the variance schedule.
      xt: a batch of states at step ``t``.
      t: the step, an integer in ``1..T``.

    Raises:
      ValueError: if ``denoiser`` is not callable, ``t`` is outside ``1..T`` or
        :math:`1-\bar\alpha_t = 0`.
    """
    if not callable(denoiser):
        raise ValueError(f"denoiser must be callable as denoiser(x, t); got {type(denoiser).__name__}")
    _check(schedule, t, "model_score")
    return score_from_eps(schedule, denoiser(xt, t), t)
