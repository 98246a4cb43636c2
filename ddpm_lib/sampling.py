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

With ``num_steps < T`` the sampler skips steps: it runs the same algorithm on the respaced
chain of :func:`ddpm_lib.spacing.respace`, asking the network about the original steps.
DDIM lives in :mod:`ddpm_lib.ddim`; ``sampling.ddim_sample`` and ``sampling.ddim_timesteps``
remain importable from here.
"""

from __future__ import annotations

import functools
from typing import Callable, Literal, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from ddpm_lib._validate import (check_array, check_callable, check_choice, check_key, check_prediction,
                                check_real, check_same_shape, check_schedule, check_shape)
from ddpm_lib.parameterization import mu_from_eps, x0_from_eps
from ddpm_lib.posterior import posterior_mean
from ddpm_lib.schedules import Schedule, from_betas
from ddpm_lib.spacing import _respaced_betas, timesteps

__all__ = ["reverse_std", "reverse_mean", "reverse_step", "sample"]

Sigma2 = Literal["beta", "beta_tilde"]
Prediction = Literal["eps", "mean"]


def _check_sigma2(sigma2) -> None:
    check_choice("sigma2", sigma2, ("beta", "beta_tilde"))


def _check_shape(shape) -> tuple[int, ...]:
    return check_shape("shape", shape)


def _check_schedule(schedule) -> None:
    check_schedule(schedule)
    alphas = np.asarray(schedule.alphas)
    if np.any(alphas[1:] <= 0.0):
        t = int(np.flatnonzero(alphas[1:] <= 0.0)[0]) + 1
        raise ValueError(f"schedule must have beta_t < 1 at every step; it has beta_t = 1 at t = {t} "
                         "(alpha_t = 0), which eq. (12) cannot invert")


def reverse_std(schedule: Schedule, t, sigma2: Sigma2 = "beta") -> jax.Array:
    r"""The reverse-process standard deviation :math:`\sigma_t`: :math:`\sqrt{\beta_t}` or :math:`\sqrt{\tilde\beta_t}`.

    ``t`` is one integer step in ``1..T``; a traced ``t`` (inside :func:`sample`'s scan or a
    user's ``jax.jit``) is checked only in checked mode (:mod:`ddpm_lib.checking`).

    Raises:
      ValueError: if ``schedule`` is not a ``Schedule``, ``t`` is not one integer in
        ``1..T`` or ``sigma2`` is not ``"beta"`` or ``"beta_tilde"``.
    """
    check_schedule(schedule)
    schedule.check_t(t)
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

    Raises:
      ValueError: if ``denoiser`` is not callable, ``schedule`` is not a ``Schedule``, ``t``
        is not one integer in ``1..T`` (a traced ``t`` only in checked mode), ``xt`` is not
        an array of numbers, ``prediction`` is unknown, ``clip_x0`` is not ``None`` or a
        number > 0, or the denoiser's output is not shaped like ``xt``.
    """
    _check_denoiser(denoiser)
    check_schedule(schedule)
    schedule.check_t(t)
    check_array("xt", xt)
    check_prediction(prediction)
    if clip_x0 is not None:
        if prediction != "eps":
            raise ValueError("clip_x0 needs prediction='eps' (it clips the x0 implied by the noise prediction)")
        check_real("clip_x0", clip_x0, lo=0.0, lo_open=True)
    out = denoiser(xt, t)
    if jnp.shape(out) != jnp.shape(xt):
        raise ValueError(f"denoiser(xt, t) must return an array shaped like xt {jnp.shape(xt)}; "
                         f"got shape {jnp.shape(out)}")
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
      t: the step, an integer in ``1..T`` (may be traced; then checked only in checked mode).
      z: standard normal noise shaped like ``xt``.
      sigma2: ``"beta"`` or ``"beta_tilde"``.
      prediction: ``"eps"`` or ``"mean"``.
      clip_x0: see :func:`reverse_mean`.

    Returns:
      :math:`x_{t-1}`, shaped like ``xt``.

    Raises:
      ValueError: as :func:`reverse_mean`, and if ``z`` is not shaped like ``xt`` (it would
        broadcast silently) or ``sigma2`` is unknown.
    """
    check_same_shape(xt=xt, z=z)
    check_array("z", z)
    _check_sigma2(sigma2)
    mu = reverse_mean(denoiser, schedule, xt, t, prediction, clip_x0)
    return mu + jnp.where(t > 1, reverse_std(schedule, t, sigma2), 0.0) * z


def _ancestral(denoiser, schedule, key, tmap, *, shape, sigma2, prediction, clip_x0, return_trajectory, num_keys):
    k_T, k_steps = jax.random.split(key)
    x_T = jax.random.normal(k_T, shape, jnp.float32)
    ts = jnp.arange(schedule.T, 0, -1, dtype=jnp.int32)
    keys = jax.random.split(k_steps, num_keys)[: schedule.T]  # num_keys: the T of the full chain
    # On a respaced chain, step i of `schedule` is step tmap[i] of the network's training.
    net = denoiser if tmap is None else (lambda x, i: denoiser(x, tmap[i]))

    def body(x, inputs):
        t, k = inputs
        x_prev = reverse_step(net, schedule, x, t, jax.random.normal(k, shape, jnp.float32),
                              sigma2=sigma2, prediction=prediction, clip_x0=clip_x0)
        return x_prev, (x_prev if return_trajectory else None)

    x0, xs = jax.lax.scan(body, x_T, (ts, keys))
    if not return_trajectory:
        return x0
    # xs holds x_{T-1}, ..., x_0; store it so that trajectory[t] is x_t.
    return x0, jnp.concatenate([x_T[None], xs], axis=0)[::-1]


def _ancestral_loop(denoiser, schedule, key, tmap, stds, num_steps, *, shape, prediction, clip_x0):
    """The step-skipping sampler without a trajectory: one compiled loop for every ``num_steps``.

    ``schedule`` is the respaced chain padded with beta = 0 steps to the full chain's ``T``
    (so every ``num_steps`` gives arrays of one shape), ``tmap`` maps its steps to the
    network's, ``stds`` holds sigma_t, and the traced ``num_steps`` bounds the loop. The
    noise of the ``i``-th step is ``jax.random.split(k_steps, T)[i]``, as in :func:`_ancestral`.
    """
    k_T, k_steps = jax.random.split(key)
    x_T = jax.random.normal(k_T, shape, jnp.float32)
    keys = jax.random.split(k_steps, schedule.T)

    def net(x, i):
        return denoiser(x, tmap[i])

    def body(i, x):
        t = num_steps - i
        mu = reverse_mean(net, schedule, x, t, prediction, clip_x0)
        return mu + jnp.where(t > 1, stds[t], 0.0) * jax.random.normal(keys[i], shape, jnp.float32)

    return jax.lax.fori_loop(0, num_steps, body, x_T)


@functools.partial(jax.jit, static_argnames=("body", "graphdef", "static"))
def _run_module(body, graphdef, state, args, static):
    return body(nnx.merge(graphdef, state), *args, **dict(static))


@functools.partial(jax.jit, static_argnames=("body", "denoiser", "static"))
def _run_callable(body, denoiser, args, static):
    return body(denoiser, *args, **dict(static))


def _compiled_call(body: Callable, denoiser, args: tuple, **static):
    """Run ``body(denoiser, *args, **static)`` compiled, with an ``nnx.Module``'s weights as arguments.

    A module is split into its graph (static) and its state (arrays), so new weights reuse
    the compiled function; a plain function is static, so keep a reference to it to reuse
    the compilation. ``static`` values must be hashable. (Shared with :mod:`ddpm_lib.ddim`.)
    """
    static = tuple(sorted(static.items()))
    if isinstance(denoiser, nnx.Module):
        graphdef, state = nnx.split(denoiser)
        return _run_module(body, graphdef, state, args, static)
    return _run_callable(body, denoiser, args, static)


def _check_denoiser(denoiser) -> None:
    check_callable("denoiser", denoiser, "denoiser(x, t)")


def _check_clip(clip_x0, schedule: Schedule, steps=None) -> float | None:
    """Validate ``clip_x0`` (``None`` or a finite number > 0) and the alpha_bar_t > 0 it needs."""
    if clip_x0 is None:
        return None
    clip_x0 = check_real("clip_x0", clip_x0, lo=0.0, lo_open=True)
    ab = np.asarray(schedule.alpha_bars)
    if np.any((ab[1:] if steps is None else ab[steps]) <= 0.0):
        raise ValueError("clip_x0 needs alpha_bar_t > 0 at every step, to form x0 from the noise")
    return clip_x0


def sample(denoiser, schedule: Schedule, key: jax.Array, shape: Sequence[int], *, sigma2: Sigma2 = "beta",
           prediction: Prediction = "eps", clip_x0: float | None = None, num_steps: int | None = None,
           spacing="trailing", return_trajectory: bool = False):
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
      num_steps: ``None`` (every step, ``T``) or the number of network calls ``S`` in
        ``1..T``: then the sampler runs on :func:`ddpm_lib.spacing.respace` of the steps
        :func:`ddpm_lib.spacing.timesteps` chooses, with :math:`\sigma^2` from that chain.
        Given explicitly, it runs as one compiled loop shared by every ``S`` (and both
        ``sigma2``); ``num_steps=T`` gives the samples of ``num_steps=None`` up to round-off.
      spacing: ``"trailing"``, ``"linspace"`` or an explicit sequence of steps ending at ``T``
        (see :func:`ddpm_lib.spacing.timesteps`); used with ``num_steps``, or alone for
        an explicit sequence.
      return_trajectory: also return every state.

    Returns:
      ``x0`` of shape ``shape``; with ``return_trajectory``, ``(x0, trajectory)`` where
      ``trajectory`` has shape ``(S + 1, *shape)`` and ``trajectory[i]`` is the state at
      step :math:`\tau_i` (``trajectory[t]`` is :math:`x_t` when every step is used;
      ``trajectory[-1]`` is the starting noise, ``trajectory[0] = x0``).

    Raises:
      ValueError: for a bad ``shape``, ``sigma2``, ``prediction``, ``clip_x0``,
        ``num_steps``, ``spacing`` or ``schedule``, or a denoiser that is not callable.
    """
    _check_sigma2(sigma2)
    check_prediction(prediction)
    check_schedule(schedule)
    check_key(key)
    shape = _check_shape(shape)
    _check_denoiser(denoiser)
    full_T = schedule.T
    taus = None  # None: the plain chain over every step (the default, kept bit for bit)
    if num_steps is not None or not (isinstance(spacing, str) and spacing == "trailing"):
        taus = timesteps(full_T, num_steps, spacing)
    every = taus is not None and taus.size == full_T  # every step, asked for explicitly
    _check_schedule(schedule)
    if clip_x0 is not None and prediction != "eps":
        raise ValueError("clip_x0 needs prediction='eps' (it clips the x0 implied by the noise prediction)")
    if taus is None or (every and return_trajectory):
        clip_x0 = _check_clip(clip_x0, schedule)
        return _compiled_call(_ancestral, denoiser, (schedule, key, None), shape=shape, sigma2=sigma2,
                              prediction=prediction, clip_x0=clip_x0, return_trajectory=bool(return_trajectory),
                              num_keys=full_T)
    S, betas = taus.size, _respaced_betas(schedule, taus)
    tmap = np.concatenate([[0], taus])
    if return_trajectory:  # a scan over the S steps, to keep every state
        respaced = from_betas(betas)
        _check_schedule(respaced)
        clip_x0 = _check_clip(clip_x0, respaced)
        return _compiled_call(_ancestral, denoiser, (respaced, key, jnp.asarray(tmap, jnp.int32)), shape=shape,
                              sigma2=sigma2, prediction=prediction, clip_x0=clip_x0, return_trajectory=True,
                              num_keys=full_T)
    # Padded to the full T with beta = 0 steps (never visited), so every S shares one compilation.
    padded = schedule if every else from_betas(np.concatenate([betas, np.zeros(full_T - S)]))
    _check_schedule(padded)
    clip_x0 = _check_clip(clip_x0, padded)
    stds = jnp.sqrt(padded.betas if sigma2 == "beta" else padded.posterior_variances)
    tmap = jnp.asarray(np.concatenate([tmap, np.zeros(full_T - S, np.int64)]), jnp.int32)
    return _compiled_call(_ancestral_loop, denoiser, (padded, key, tmap, stds, jnp.int32(S)), shape=shape,
                          prediction=prediction, clip_x0=clip_x0)


def __getattr__(name):  # DDIM moved to ddpm_lib.ddim; keep the old names importable from here
    if name in ("ddim_sample", "ddim_timesteps"):
        from ddpm_lib import ddim

        return getattr(ddim, name)
    raise AttributeError(f"module 'ddpm_lib.sampling' has no attribute {name!r}")
