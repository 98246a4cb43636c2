r"""DDIM (Song, Meng and Ermon 2021): sampling in few steps, deterministic or not, and its inverse.

DDIM keeps the marginals :math:`q(x_t \mid x_0) = \mathcal N(\sqrt{\bar\alpha_t}\,x_0, (1-\bar\alpha_t) I)`
of the forward process and replaces its Markov chain by the family of reverse conditionals,
for any earlier step :math:`s < t`,

.. math::
   q_\sigma(x_s \mid x_t, x_0) = \mathcal N\Big(\sqrt{\bar\alpha_s}\,x_0
     + \sqrt{1-\bar\alpha_s-\sigma^2}\,\frac{x_t - \sqrt{\bar\alpha_t}\,x_0}{\sqrt{1-\bar\alpha_t}},\ \sigma^2 I\Big),
   \qquad
   \sigma^2 = \eta^2\,\frac{1-\bar\alpha_s}{1-\bar\alpha_t}\Big(1 - \frac{\bar\alpha_t}{\bar\alpha_s}\Big),

(chapter 6, equation ``ch6-eq-qsigma``). A sampler replaces :math:`x_0` by the network's
:math:`\hat x_0` and walks down a sub-sequence of steps (:mod:`ddpm_lib.spacing`).
``eta = 0`` is deterministic; ``eta = 1`` with every step is ancestral sampling with
:math:`\sigma_t^2 = \tilde\beta_t`.

Degenerate schedules: where :math:`1 - \bar\alpha_t = 0` (every :math:`\beta` up to ``t`` is 0)
no noise has been added, :math:`x_t = x_0`, and the step returns :math:`x_s = x_t` with
:math:`\sigma = 0` (the formula's 0/0 is never formed). A chosen step with
:math:`\bar\alpha_t = 0` (after a :math:`\beta = 1`) is refused: :math:`x_t` then says
nothing about :math:`x_0`.

Randomness in :func:`ddim_sample`: ``key`` is split into ``(k_T, k_steps)``; ``x_T`` comes from
``k_T`` and the noise of the ``i``-th step (counted from the top) from
``jax.random.split(k_steps, T)[i]``, as in :func:`ddpm_lib.sampling.sample`, so DDIM with
``eta = 1`` and the step-skipping ancestral sampler draw the same noise.
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ddpm_lib._validate import (check_array, check_finite, check_int, check_key, check_real, check_same_shape,
                                check_schedule, check_t, concrete)
from ddpm_lib.sampling import _check_clip, _check_denoiser, _check_shape, _compiled_call
from ddpm_lib.schedules import Schedule
from ddpm_lib.spacing import _explicit, timesteps

__all__ = ["ddim_step", "ddim_sample", "ddim_decode", "ddim_encode", "ddim_timesteps"]


def ddim_timesteps(T: int, num_steps: int, spacing="trailing") -> np.ndarray:
    r"""The steps :math:`\tau_1 < \dots < \tau_S` DDIM visits: :func:`ddpm_lib.spacing.timesteps`.

    Raises:
      ValueError: unless ``1 <= num_steps <= T`` and ``spacing`` is known.
    """
    return timesteps(T, num_steps, spacing)


def ddim_step(schedule: Schedule, xt: jax.Array, t, s, eps: jax.Array, z: jax.Array | None = None, *,
              eta=0.0, clip_x0: float | None = None) -> jax.Array:
    r"""One DDIM step from :math:`x_t` down to :math:`x_s` (``s < t``), given the noise prediction.

    .. math::
       \hat x_0 = \frac{x_t - \sqrt{1-\bar\alpha_t}\,\epsilon}{\sqrt{\bar\alpha_t}}, \qquad
       x_s = \sqrt{\bar\alpha_s}\,\hat x_0 + \sqrt{1-\bar\alpha_s-\sigma^2}\;\hat\epsilon + \sigma z
       \qquad \text{(chapter 6, ch6-eq-ddim)}

    with :math:`\sigma` from the module text and :math:`\hat\epsilon = \epsilon` without
    clipping. With ``clip_x0 = c``, :math:`\hat x_0` is clipped to :math:`[-c, c]` and
    :math:`\hat\epsilon = (x_t - \sqrt{\bar\alpha_t}\,\hat x_0)/\sqrt{1-\bar\alpha_t}` is the
    noise that the clipped :math:`\hat x_0` implies, so the step is the mean of
    :math:`q_\sigma(x_s \mid x_t, \hat x_0)` plus noise, exactly as the clipped ancestral step
    is :math:`\tilde\mu_t(x_t, \hat x_0)` plus noise.

    Traceable: ``t``, ``s`` and ``eta`` may be traced (the samplers scan over it); their values
    are then checked only in checked mode (:mod:`ddpm_lib.checking`).

    Args:
      schedule: the variance schedule.
      xt: the state at step ``t``.
      t: the current step, ``1..T``.
      s: the target step, ``0 <= s < t``.
      eps: :math:`\epsilon_\theta(x_t, t)`, shaped like ``xt``.
      z: standard normal noise shaped like ``xt`` (unused when ``eta = 0``; ``None`` means 0).
      eta: :math:`\eta \in [0, 1]`.
      clip_x0: ``None`` or the half-width ``c > 0`` of the data range.

    Returns:
      :math:`x_s`, shaped like ``xt``.

    Raises:
      ValueError: if ``schedule`` is not a ``Schedule``, ``t`` is not one step in ``1..T``
        with :math:`\bar\alpha_t > 0`, ``s`` not one step in ``0..t-1``, ``eps`` or ``z`` not shaped like ``xt``, ``eta``
        not in [0, 1], or ``clip_x0`` not ``None`` or a number > 0.
    """
    check_schedule(schedule)
    schedule.check_t(t)
    check_t(s, schedule.T, "s", lo=0)
    ts, ss = concrete(t), concrete(s)
    if ts is not None and ss is not None and not int(ss) < int(ts):
        raise ValueError(f"s must be an earlier step than t = {int(ts)} (0 <= s < t); got {int(ss)}")
    if ts is not None and float(schedule.sqrt_alpha_bars[int(ts)]) <= 0.0:
        raise ValueError(f"t must be a step with alpha_bar_t > 0; alpha_bar_t = 0 at t = {int(ts)} "
                         "(a step with beta = 1 erased x_0)")
    check_array("xt", xt)
    check_same_shape(xt=xt, eps=eps)
    if z is not None:
        check_same_shape(xt=xt, z=z)
    if concrete(eta) is not None:
        check_real("eta", eta, 0.0, 1.0)
    if clip_x0 is not None:
        clip_x0 = check_real("clip_x0", clip_x0, lo=0.0, lo_open=True)
    if ts is not None and ss is not None:
        jump = _jumps64(schedule, np.array([[int(ts), int(ss)]]))[0]
    else:
        jump = _jump(schedule, t, s)
    return _update(schedule, xt, t, s, eps, z, eta, clip_x0, jump)


def _jump(schedule: Schedule, t, s):
    r""":math:`1 - \bar\alpha_t/\bar\alpha_s` in float32 without cancellation (``t``, ``s`` may be traced).

    Written as :math:`(\bar\alpha_s - \bar\alpha_t)/\bar\alpha_s` where the alpha_bars are small,
    and through the float64-derived :math:`1 - \bar\alpha` where they are near 1, so the
    difference of two nearly equal numbers is never taken where they carry no digits.
    The samplers pass this quantity computed in float64 instead.
    """
    ab_t, ab_s = schedule.alpha_bars[t], schedule.alpha_bars[s]
    om_t, om_s = schedule.sqrt_one_minus_alpha_bars[t] ** 2, schedule.sqrt_one_minus_alpha_bars[s] ** 2
    small = (ab_s - ab_t) / jnp.where(ab_s > 0, ab_s, 1.0)
    near_one = (om_t - om_s) / jnp.where(ab_s > 0, ab_s, 1.0)
    return jnp.maximum(jnp.where(ab_s < 0.5, small, near_one), 0.0)


def _jumps64(schedule: Schedule, pairs: np.ndarray) -> jax.Array:
    r""":math:`1 - \bar\alpha_t/\bar\alpha_s` for each row (t, s) of ``pairs``, in float64, stored as float32."""
    ab = np.cumprod(1.0 - np.asarray(schedule.betas, np.float64))
    t, s = pairs[:, 0], pairs[:, 1]
    return jnp.asarray(np.clip(1.0 - ab[t] / np.where(ab[s] > 0, ab[s], 1.0), 0.0, 1.0), jnp.float32)


def _update(schedule, xt, t, s, eps, z, eta, clip_x0, jump):
    r"""The step of :func:`ddim_step` without checks (also read upwards, s > t, by the encoder, with eta = 0).

    ``jump`` is :math:`1 - \bar\alpha_t/\bar\alpha_s`. With it, both variances are sums of
    positive terms, so neither suffers cancellation (a float32 ``(1 - ab_t) - (1 - ab_s)`` near
    ``ab = 0`` has no correct digits):

    .. math::
       \sigma^2 = \eta^2 \frac{(1-\bar\alpha_s)\,\text{jump}}{1-\bar\alpha_t}, \qquad
       1 - \bar\alpha_s - \sigma^2 = \frac{1-\bar\alpha_s}{1-\bar\alpha_t}\Big((1-\eta^2)(1-\bar\alpha_t)
       + \eta^2\,\frac{\bar\alpha_t (1-\bar\alpha_s)}{\bar\alpha_s}\Big).
    """
    sa_t, so_t = schedule.sqrt_alpha_bars[t], schedule.sqrt_one_minus_alpha_bars[t]
    sa_s, so_s = schedule.sqrt_alpha_bars[s], schedule.sqrt_one_minus_alpha_bars[s]
    noisy = so_t > 0.0  # False where no noise has been added yet (beta = 0 up to t): x_t = x_0
    x0_hat = (xt - so_t * eps) / sa_t
    if clip_x0 is not None:
        x0_hat = jnp.clip(x0_hat, -clip_x0, clip_x0)
        eps = jnp.where(noisy, (xt - sa_t * x0_hat) / jnp.where(noisy, so_t, 1.0), 0.0)
    ratio = so_s**2 / jnp.where(noisy, so_t**2, 1.0)  # (1 - ab_s) / (1 - ab_t), 0/0 avoided
    eta2 = eta**2
    sigma2 = jnp.where(noisy, eta2 * ratio * jump, 0.0)
    keep = (1.0 - eta2) * so_t**2 + eta2 * sa_t**2 * so_s**2 / jnp.where(sa_s > 0, sa_s**2, 1.0)
    direction2 = jnp.where(noisy, ratio * keep, so_s**2)
    x_s = sa_s * x0_hat + jnp.sqrt(jnp.maximum(direction2, 0.0)) * eps
    return x_s if z is None else x_s + jnp.sqrt(sigma2) * z


def _pairs(taus: np.ndarray, T: int) -> np.ndarray:
    """(t, s) of each step from the top, padded to ``T`` rows with (1, 0) (never visited)."""
    ts = taus[::-1]
    ss = np.concatenate([taus[:-1][::-1], [0]])
    pairs = np.stack([ts, ss], axis=1)
    pad = np.tile([[1, 0]], (T - taus.size, 1))
    return np.concatenate([pairs, pad]).astype(np.int32)


def _ddim(denoiser, schedule, key, pairs, jumps, num_steps, x_T, eta, *, clip_x0, trajectory_steps):
    """DDIM from ``x_T`` down. Without a trajectory a loop bounded by the traced ``num_steps`` (one
    compilation for every number of steps, and for sampling and decoding alike); with one a
    scan over ``trajectory_steps`` steps. The noise of step ``i`` is ``split(key, T)[i]``."""
    keys = jax.random.split(key, schedule.T)

    def step(x, i):
        t, s = pairs[i, 0], pairs[i, 1]
        z = jax.random.normal(keys[i], x.shape, jnp.float32)
        return _update(schedule, x, t, s, denoiser(x, t), z, eta, clip_x0, jumps[i])

    if trajectory_steps is None:
        return jax.lax.fori_loop(0, num_steps, lambda i, x: step(x, i), x_T)

    def body(x, i):
        x_s = step(x, i)
        return x_s, x_s

    x0, xs = jax.lax.scan(body, x_T, jnp.arange(trajectory_steps))
    return x0, jnp.concatenate([x_T[None], xs], axis=0)


def _encode(denoiser, schedule, x0, pairs, num_steps, refine, *, trajectory_steps):
    """DDIM upwards: ``pairs`` are the (t, s) of decoding, read from the bottom row up."""

    def step(x, i):
        j = num_steps - 1 - i  # the rows (tau_1, 0), (tau_2, tau_1), ..., (tau_S, tau_{S-1})
        lo, hi = pairs[j, 1], pairs[j, 0]  # from the state at step lo up to step hi

        def up(x_hi):  # the step read upwards, with eps_theta evaluated at x_hi
            return _update(schedule, x, lo, hi, denoiser(x_hi, hi), None, 0.0, None, 0.0)

        # eps_theta(x_lo, hi) first, then fixed-point iterations towards eps_theta(x_hi, hi)
        return jax.lax.fori_loop(0, refine, lambda _, x_hi: up(x_hi), up(x))

    if trajectory_steps is None:
        return jax.lax.fori_loop(0, num_steps, lambda i, x: step(x, i), x0)

    def body(x, i):
        x_s = step(x, i)
        return x_s, x_s

    x_T, xs = jax.lax.scan(body, x0, jnp.arange(trajectory_steps))
    return x_T, jnp.concatenate([x0[None], xs], axis=0)


def _check(denoiser, schedule, num_steps, spacing, eta=0.0, clip_x0=None, end_at_T=True):
    check_schedule(schedule)
    _check_denoiser(denoiser)
    if num_steps is None and isinstance(spacing, str):
        num_steps = min(50, schedule.T)
    if end_at_T or isinstance(spacing, str):
        taus = timesteps(schedule.T, num_steps, spacing)
    else:  # decoding or encoding between data and an intermediate step
        taus = _explicit(schedule.T, spacing, end_at_T=False)
        if num_steps is not None and check_int("num_steps", num_steps, 1, schedule.T) != taus.size:
            raise ValueError(f"num_steps must equal the number of explicit steps, {taus.size}; got {num_steps!r}")
    bad = taus[np.asarray(schedule.alpha_bars)[taus] <= 0.0]
    if bad.size:
        raise ValueError(f"schedule must have alpha_bar_t > 0 at every step DDIM visits; alpha_bar_t = 0 at "
                         f"t = {int(bad[0])} (a step with beta = 1 erased x_0)")
    # eta > 1 is refused: the reverse conditional can then need a negative variance.
    check_real("eta", eta, 0.0, 1.0)
    pairs = _pairs(taus, schedule.T)
    return taus, (jnp.asarray(pairs), _jumps64(schedule, pairs)), _check_clip(clip_x0, schedule, taus)


def ddim_sample(denoiser, schedule: Schedule, key: jax.Array, shape: Sequence[int], *, num_steps: int | None = None,
                eta: float = 0.0, spacing="trailing", clip_x0: float | None = None,
                return_trajectory: bool = False):
    r"""DDIM sampling from pure noise over ``num_steps`` steps, from :math:`\tau_S` down to 0.

    Args:
      denoiser: an ``nnx.Module`` or ``denoiser(x, t)`` predicting the noise.
      schedule: the variance schedule (needs :math:`\bar\alpha_t > 0` at the chosen steps).
      key: a ``jax.random.key``.
      shape: the batch shape to generate.
      num_steps: the number of network calls ``S``, ``1..T``; ``None`` means 50 (``T`` if
        ``T < 50``), or the length of an explicit ``spacing``.
      eta: the noise scale :math:`\eta \in [0, 1]`.
      spacing: ``"trailing"`` (default), ``"linspace"``, or an explicit increasing sequence
        of steps ending at ``T`` (see :func:`ddpm_lib.spacing.timesteps`).
      clip_x0: ``None``, or ``c > 0`` to clip :math:`\hat x_0` to :math:`[-c, c]` at every
        step (``1.0`` for data in [-1, 1]); see :func:`ddim_step`.
      return_trajectory: also return the visited states, from :math:`x_T` to :math:`x_0`
        (``S + 1`` of them, in the order visited).

    Returns:
      ``x0``, or ``(x0, states)`` with ``return_trajectory``.

    Raises:
      ValueError: for a bad ``shape``, ``num_steps`` (not in ``1..T``), ``eta`` (not in
        [0, 1]), ``spacing``, ``clip_x0``, ``schedule`` or ``denoiser``.
    """
    taus, pairs, clip_x0 = _check(denoiser, schedule, num_steps, spacing, eta, clip_x0)
    check_key(key)
    shape = _check_shape(shape)
    k_T, k_steps = jax.random.split(key)  # as the ancestral sampler splits its key
    x_T = jax.random.normal(k_T, shape, jnp.float32)
    return _compiled_call(_ddim, denoiser, (schedule, k_steps, *pairs, jnp.int32(taus.size), x_T, jnp.float32(eta)),
                          clip_x0=clip_x0, trajectory_steps=taus.size if return_trajectory else None)


def ddim_decode(denoiser, schedule: Schedule, x_T: jax.Array, *, num_steps: int | None = None, spacing="trailing",
                clip_x0: float | None = None, return_trajectory: bool = False):
    r"""Deterministic DDIM (:math:`\eta = 0`) from a given :math:`x_T`: the map from noise to data.

    Args:
      denoiser: an ``nnx.Module`` or ``denoiser(x, t)`` predicting the noise.
      schedule: the variance schedule.
      x_T: a batch of starting states, e.g. from :func:`ddim_encode`.
      num_steps, spacing, clip_x0, return_trajectory: as in :func:`ddim_sample`, except that
        an explicit ``spacing`` may end below ``T``: ``x_T`` is then the state at its last
        step (decoding from an intermediate noise level).

    Returns:
      ``x0`` shaped like ``x_T``, or ``(x0, states)`` with ``return_trajectory``.

    Raises:
      ValueError: as :func:`ddim_sample`, or for an ``x_T`` with NaN or infinite values.
    """
    taus, pairs, clip_x0 = _check(denoiser, schedule, num_steps, spacing, 0.0, clip_x0, end_at_T=False)
    x_T = _check_state("x_T", x_T)
    # The sampler's compiled loop with eta = 0: the noise it draws is multiplied by sigma = 0.
    return _compiled_call(_ddim, denoiser, (schedule, jax.random.key(0), *pairs, jnp.int32(taus.size), x_T,
                                            jnp.float32(0.0)),
                          clip_x0=clip_x0, trajectory_steps=taus.size if return_trajectory else None)


def ddim_encode(denoiser, schedule: Schedule, x0: jax.Array, *, num_steps: int | None = None, spacing="trailing",
                refine: int = 0, return_trajectory: bool = False):
    r"""DDIM inversion: run the deterministic map backwards, from data :math:`x_0` up to :math:`x_T`.

    Each step reads :func:`ddim_step` upwards, from :math:`x_s` to :math:`x_t` with ``s < t`` the
    consecutive chosen steps (from ``s = 0``):

    .. math::
       x_t = \sqrt{\bar\alpha_t}\,\frac{x_s - \sqrt{1-\bar\alpha_s}\,\epsilon}{\sqrt{\bar\alpha_s}}
             + \sqrt{1-\bar\alpha_t}\,\epsilon, \qquad \epsilon = \epsilon_\theta(x_s, t).

    Decoding uses :math:`\epsilon_\theta(x_t, t)`, which depends on the unknown :math:`x_t`;
    :math:`\epsilon_\theta(x_s, t)` is its first fixed-point guess. With ``refine = 0`` the
    round trip ``ddim_decode(ddim_encode(x0))`` returns ``x0`` up to an error of first order
    in the step size; each of ``refine`` fixed-point iterations
    :math:`x_t \leftarrow` (the formula with :math:`\epsilon = \epsilon_\theta(x_t, t)`) costs one
    more network call per step and, for small steps, shrinks that error by a further factor.

    Args:
      denoiser: an ``nnx.Module`` or ``denoiser(x, t)`` predicting the noise.
      schedule: the variance schedule.
      x0: a batch of data.
      num_steps, spacing: as in :func:`ddim_sample`; an explicit ``spacing`` may end below
        ``T``, and the result is then the state at its last step.
      refine: the number of fixed-point iterations per step, an integer >= 0.
      return_trajectory: also return the states from :math:`x_0` up to :math:`x_T`.

    Returns:
      ``x_T`` shaped like ``x0``, or ``(x_T, states)`` with ``return_trajectory``.

    Raises:
      ValueError: as :func:`ddim_sample`, or for an ``x0`` with NaN or infinite values.
    """
    taus, pairs, _ = _check(denoiser, schedule, num_steps, spacing, end_at_T=False)
    refine = check_int("refine", refine, lo=0)
    x0 = _check_state("x0", x0)
    return _compiled_call(_encode, denoiser, (schedule, x0, pairs[0], jnp.int32(taus.size), jnp.int32(refine)),
                          trajectory_steps=taus.size if return_trajectory else None)


def _check_state(name: str, x) -> jax.Array:
    check_array(name, x)
    check_finite(name, x)
    x = jnp.asarray(x, jnp.float32)
    if x.ndim == 0:
        raise ValueError(f"{name} must be a batch of states (at least one axis); got a scalar")
    return x
