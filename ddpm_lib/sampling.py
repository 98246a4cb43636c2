r"""Generating data: ancestral sampling (Algorithm 2 of Ho et al. 2020) and DDIM.

Ancestral sampling runs the learned reverse chain from pure noise,

.. math::
   x_T \sim \mathcal N(0, I), \qquad
   x_{t-1} = \mu_\theta(x_t, t) + \sigma_t z, \quad z \sim \mathcal N(0, I), \qquad t = T, \dots, 1,

with :math:`\mu_\theta` from eq. (12) when the network predicts the noise, no noise at the last
step (:math:`t = 1`), and :math:`\sigma_t^2 = \beta_t` or :math:`\sigma_t^2 = \tilde\beta_t`
(the two choices the paper found to give similar samples).

:func:`sample` is one ``jax.lax.scan`` over :math:`t = T, \dots, 1`, compiled once. The
denoiser is anything called as ``denoiser(x, t)`` on a batch ``x`` with a scalar ``t``: a
:mod:`ddpm_lib.models` network, or a closed form such as :func:`ddpm_lib.analytic.optimal_eps`.

Randomness: ``key`` is split into ``(k_T, k_steps)``; ``x_T`` is drawn from ``k_T``, and the
noise ``z`` of the ``i``-th step (``t = T - i``) from ``jax.random.split(k_steps, T)[i]``.
"""

from __future__ import annotations

import functools
from typing import Callable, Literal, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from ddpm_lib._validate import check_prediction
from ddpm_lib.parameterization import mu_from_eps, x0_from_eps
from ddpm_lib.posterior import posterior_mean
from ddpm_lib.schedules import Schedule

__all__ = ["reverse_std", "reverse_mean", "reverse_step", "sample", "ddim_timesteps", "ddim_sample"]

Sigma2 = Literal["beta", "beta_tilde"]
Prediction = Literal["eps", "mean"]


def _check_sigma2(sigma2) -> None:
    if sigma2 not in ("beta", "beta_tilde"):
        raise ValueError(f"sigma2 must be 'beta' or 'beta_tilde'; got {sigma2!r}")


def _check_shape(shape) -> tuple[int, ...]:
    try:
        shape = tuple(int(d) for d in shape)
    except TypeError as err:
        raise ValueError(f"shape must be a tuple of positive integers, e.g. (1000, 2); got {shape!r}") from err
    if not shape or any(d < 1 for d in shape):
        raise ValueError(f"shape must be a non-empty tuple of positive integers, e.g. (1000, 2); got {shape!r}")
    return shape


def _check_schedule(schedule) -> None:
    if not isinstance(schedule, Schedule):
        raise ValueError(f"schedule must be a ddpm_lib.schedules.Schedule; got {type(schedule).__name__}")
    if np.any(np.asarray(schedule.alphas)[1:] <= 0.0):
        raise ValueError("schedule has a step with beta_t = 1 (alpha_t = 0): eq. (12) cannot invert it")


def reverse_std(schedule: Schedule, t, sigma2: Sigma2 = "beta") -> jax.Array:
    r"""The reverse-process standard deviation :math:`\sigma_t`: :math:`\sqrt{\beta_t}` or :math:`\sqrt{\tilde\beta_t}`."""
    _check_sigma2(sigma2)
    var = schedule.betas[t] if sigma2 == "beta" else schedule.posterior_variances[t]
    return jnp.sqrt(var)


def reverse_mean(denoiser: Callable, schedule: Schedule, xt: jax.Array, t, prediction: Prediction = "eps",
                 clip_x0: float | None = None) -> jax.Array:
    r"""The reverse-process mean :math:`\mu_\theta(x_t, t)`: eq. (12) from a noise prediction, or the output itself.

    With ``clip_x0 = c`` (noise prediction only) the mean is instead formed as the paper's
    code does for images: the implied :math:`\hat x_0 = (x_t - \sqrt{1-\bar\alpha_t}\,\epsilon_\theta)/\sqrt{\bar\alpha_t}`
    is clipped to :math:`[-c, c]` and :math:`\mu_\theta = \tilde\mu_t(x_t, \hat x_0)` (eq. 10).
    Without clipping the two forms are equal.

    Args:
      denoiser: ``denoiser(xt, t)``, returning :math:`\epsilon_\theta` or :math:`\mu_\theta`.
      schedule: the variance schedule.
      xt: a batch of states at step ``t``.
      t: the step, an integer in ``1..T``.
      prediction: ``"eps"`` or ``"mean"``.
      clip_x0: ``None``, or the half-width ``c > 0`` of the data range.
    """
    check_prediction(prediction)
    out = denoiser(xt, t)
    if prediction == "mean":
        return out
    if clip_x0 is None:
        return mu_from_eps(schedule, xt, t, out)
    x0_hat = jnp.clip(x0_from_eps(schedule, xt, t, out), -clip_x0, clip_x0)
    return posterior_mean(schedule, x0_hat, xt, t)


def reverse_step(denoiser: Callable, schedule: Schedule, xt: jax.Array, t, z: jax.Array, *,
                 sigma2: Sigma2 = "beta", prediction: Prediction = "eps", clip_x0: float | None = None) -> jax.Array:
    r"""One step of Algorithm 2: :math:`x_{t-1} = \mu_\theta(x_t, t) + \sigma_t z`, with no noise at ``t = 1``.

    Args:
      denoiser: ``denoiser(xt, t)``.
      schedule: the variance schedule.
      xt: a batch of states at step ``t``.
      t: the step, an integer in ``1..T`` (may be traced).
      z: standard normal noise shaped like ``xt``.
      sigma2: ``"beta"`` or ``"beta_tilde"``.
      prediction: ``"eps"`` or ``"mean"``.
      clip_x0: see :func:`reverse_mean`.

    Returns:
      :math:`x_{t-1}`, shaped like ``xt``.
    """
    mu = reverse_mean(denoiser, schedule, xt, t, prediction, clip_x0)
    return mu + jnp.where(t > 1, reverse_std(schedule, t, sigma2), 0.0) * z


def _ancestral(denoiser, schedule, key, shape, sigma2, prediction, clip_x0, return_trajectory):
    k_T, k_steps = jax.random.split(key)
    x_T = jax.random.normal(k_T, shape, jnp.float32)
    ts = jnp.arange(schedule.T, 0, -1, dtype=jnp.int32)
    keys = jax.random.split(k_steps, schedule.T)

    def body(x, inputs):
        t, k = inputs
        x_prev = reverse_step(denoiser, schedule, x, t, jax.random.normal(k, shape, jnp.float32),
                              sigma2=sigma2, prediction=prediction, clip_x0=clip_x0)
        return x_prev, (x_prev if return_trajectory else None)

    x0, xs = jax.lax.scan(body, x_T, (ts, keys))
    if not return_trajectory:
        return x0
    # xs holds x_{T-1}, ..., x_0; store it so that trajectory[t] is x_t.
    return x0, jnp.concatenate([x_T[None], xs], axis=0)[::-1]


_STATIC = ("shape", "sigma2", "prediction", "clip_x0", "return_trajectory")


@functools.partial(jax.jit, static_argnames=("graphdef",) + _STATIC)
def _sample_module(graphdef, state, schedule, key, *, shape, sigma2, prediction, clip_x0, return_trajectory):
    model = nnx.merge(graphdef, state)
    return _ancestral(model, schedule, key, shape, sigma2, prediction, clip_x0, return_trajectory)


@functools.partial(jax.jit, static_argnames=("denoiser",) + _STATIC)
def _sample_callable(denoiser, schedule, key, *, shape, sigma2, prediction, clip_x0, return_trajectory):
    return _ancestral(denoiser, schedule, key, shape, sigma2, prediction, clip_x0, return_trajectory)


def sample(denoiser, schedule: Schedule, key: jax.Array, shape: Sequence[int], *, sigma2: Sigma2 = "beta",
           prediction: Prediction = "eps", clip_x0: float | None = None, return_trajectory: bool = False):
    r"""Ancestral sampling (Algorithm 2): one compiled ``lax.scan`` over :math:`t = T, \dots, 1`.

    Args:
      denoiser: an ``nnx.Module`` or a function ``denoiser(x, t)`` on a batch ``x`` and a
        scalar integer ``t``. A module's weights are passed to the compiled function as
        arrays; a plain function is compiled once per function object (keep a reference
        to it to reuse the compiled sampler).
      schedule: the variance schedule.
      key: a ``jax.random.key``.
      shape: the shape of the batch to generate, e.g. ``(1000, 2)`` or ``(64, 8, 8)``.
      sigma2: :math:`\sigma_t^2 = \beta_t` (``"beta"``) or :math:`\tilde\beta_t` (``"beta_tilde"``).
      prediction: ``"eps"`` if the denoiser predicts the noise, ``"mean"`` if it predicts
        :math:`\mu_\theta` directly.
      clip_x0: ``None``, or ``c > 0`` to clip the implied :math:`\hat x_0` to :math:`[-c, c]`
        at every step (see :func:`reverse_mean`); ``1.0`` for data in [-1, 1].
      return_trajectory: also return every state.

    Returns:
      ``x0`` of shape ``shape``; with ``return_trajectory``, ``(x0, trajectory)`` where
      ``trajectory`` has shape ``(T + 1, *shape)`` and ``trajectory[t]`` is :math:`x_t`
      (``trajectory[T]`` the starting noise, ``trajectory[0] = x0``).

    Raises:
      ValueError: for a bad ``shape``, ``sigma2``, ``prediction``, ``clip_x0`` or
        ``schedule``, or a denoiser that is not callable.
    """
    _check_sigma2(sigma2)
    check_prediction(prediction)
    _check_schedule(schedule)
    shape = _check_shape(shape)
    if not callable(denoiser):
        raise ValueError(f"denoiser must be callable as denoiser(x, t); got {type(denoiser).__name__}")
    if clip_x0 is not None:
        if prediction != "eps":
            raise ValueError("clip_x0 needs prediction='eps' (it clips the x0 implied by the noise prediction)")
        if not (np.isfinite(clip_x0) and clip_x0 > 0):
            raise ValueError(f"clip_x0 must be None or a finite number > 0; got {clip_x0!r}")
        if np.any(np.asarray(schedule.alpha_bars)[1:] <= 0.0):
            raise ValueError("clip_x0 needs alpha_bar_t > 0 at every step, to form x0 from the noise")
        clip_x0 = float(clip_x0)
    opts = dict(shape=shape, sigma2=sigma2, prediction=prediction, clip_x0=clip_x0,
                return_trajectory=bool(return_trajectory))
    if isinstance(denoiser, nnx.Module):
        graphdef, state = nnx.split(denoiser)
        return _sample_module(graphdef, state, schedule, key, **opts)
    return _sample_callable(denoiser, schedule, key, **opts)


def ddim_timesteps(T: int, num_steps: int) -> np.ndarray:
    r"""The DDIM sub-sequence :math:`\tau_1 < \dots < \tau_S` of ``1..T``: ``num_steps`` evenly spaced steps ending at ``T``.

    Raises:
      ValueError: unless ``1 <= num_steps <= T``.
    """
    if isinstance(num_steps, bool) or not isinstance(num_steps, (int, np.integer)) or not 1 <= num_steps <= T:
        raise ValueError(f"num_steps must be an integer in 1..T (T = {T}); got {num_steps!r}")
    return np.unique(np.round(np.linspace(T / num_steps, T, num_steps)).astype(np.int32))


def _ddim(denoiser, schedule, key, shape, taus, eta, return_trajectory):
    k_T, k_steps = jax.random.split(key)
    x_T = jax.random.normal(k_T, shape, jnp.float32)
    ts = taus[::-1]
    ss = jnp.concatenate([taus[:-1][::-1], jnp.zeros((1,), jnp.int32)])  # the step each one jumps to
    keys = jax.random.split(k_steps, ts.shape[0])

    def body(x, inputs):
        t, s, k = inputs
        ab_t, ab_s = schedule.alpha_bars[t], schedule.alpha_bars[s]
        eps = denoiser(x, t)
        x0_hat = (x - jnp.sqrt(1.0 - ab_t) * eps) / jnp.sqrt(ab_t)
        sigma = eta * jnp.sqrt((1.0 - ab_s) / (1.0 - ab_t) * (1.0 - ab_t / ab_s))
        direction = jnp.sqrt(jnp.maximum(1.0 - ab_s - sigma**2, 0.0)) * eps
        x_s = jnp.sqrt(ab_s) * x0_hat + direction + sigma * jax.random.normal(k, shape, jnp.float32)
        return x_s, (x_s if return_trajectory else None)

    x0, xs = jax.lax.scan(body, x_T, (ts, ss, keys))
    if not return_trajectory:
        return x0
    return x0, jnp.concatenate([x_T[None], xs], axis=0)


@functools.partial(jax.jit, static_argnames=("graphdef", "shape", "return_trajectory"))
def _ddim_module(graphdef, state, schedule, key, taus, eta, *, shape, return_trajectory):
    return _ddim(nnx.merge(graphdef, state), schedule, key, shape, taus, eta, return_trajectory)


@functools.partial(jax.jit, static_argnames=("denoiser", "shape", "return_trajectory"))
def _ddim_callable(denoiser, schedule, key, taus, eta, *, shape, return_trajectory):
    return _ddim(denoiser, schedule, key, shape, taus, eta, return_trajectory)


def ddim_sample(denoiser, schedule: Schedule, key: jax.Array, shape: Sequence[int], *, num_steps: int = 50,
                eta: float = 0.0, return_trajectory: bool = False):
    r"""DDIM sampling (Song et al. 2021) with a noise-predicting denoiser, over a sub-sequence of steps.

    From :math:`x_t` to the previous chosen step :math:`s < t` (and to :math:`s = 0` at the end):

    .. math::
       \hat x_0 = \frac{x_t - \sqrt{1-\bar\alpha_t}\,\epsilon_\theta(x_t, t)}{\sqrt{\bar\alpha_t}}, \qquad
       x_s = \sqrt{\bar\alpha_s}\,\hat x_0 + \sqrt{1 - \bar\alpha_s - \sigma^2}\,\epsilon_\theta(x_t, t) + \sigma z,

       \sigma = \eta\,\sqrt{\frac{1-\bar\alpha_s}{1-\bar\alpha_t}\Big(1 - \frac{\bar\alpha_t}{\bar\alpha_s}\Big)}.

    ``eta = 0`` is the deterministic DDIM sampler; ``eta = 1`` with every step is ancestral
    sampling with :math:`\sigma_t^2 = \tilde\beta_t`.

    Args:
      denoiser: an ``nnx.Module`` or ``denoiser(x, t)`` predicting the noise.
      schedule: the variance schedule (needs :math:`\bar\alpha_t > 0` at the chosen steps).
      key: a ``jax.random.key``.
      shape: the batch shape to generate.
      num_steps: the number of network calls, ``1..T``.
      eta: the noise scale, >= 0.
      return_trajectory: also return the visited states, from :math:`x_T` to :math:`x_0`
        (``num_steps + 1`` of them, in the order visited).

    Returns:
      ``x0``, or ``(x0, states)`` with ``return_trajectory``.

    Raises:
      ValueError: for a bad ``shape``, ``num_steps``, ``eta`` or ``schedule``.
    """
    _check_schedule(schedule)
    shape = _check_shape(shape)
    taus = ddim_timesteps(schedule.T, num_steps)
    if np.any(np.asarray(schedule.alpha_bars)[taus] <= 0.0):
        raise ValueError("ddim_sample needs alpha_bar_t > 0 at every chosen step")
    if not (np.isfinite(eta) and eta >= 0):
        raise ValueError(f"eta must be a finite number >= 0; got {eta!r}")
    if not callable(denoiser):
        raise ValueError(f"denoiser must be callable as denoiser(x, t); got {type(denoiser).__name__}")
    args = (schedule, key, jnp.asarray(taus), jnp.float32(eta))
    opts = dict(shape=shape, return_trajectory=bool(return_trajectory))
    if isinstance(denoiser, nnx.Module):
        graphdef, state = nnx.split(denoiser)
        return _ddim_module(graphdef, state, *args, **opts)
    return _ddim_callable(denoiser, *args, **opts)
