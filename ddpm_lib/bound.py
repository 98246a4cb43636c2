r"""The variational bound (4) and its KL decomposition (8), computed exactly on Gaussian data.

With Gaussian data :math:`x_0 \sim \mathcal N(m, s^2)` (independently in each coordinate)
and a reverse process whose transitions are Gaussian with a mean that is *affine* in
:math:`x_t`, every term of the bound has a closed form. This module builds such a reverse
process (:class:`ReverseProcess`) and evaluates the bound three ways:

* :func:`mc_bound`: Monte Carlo over whole forward trajectories of the integrand of
  eq. (4), written as the sum (5);
* :func:`kl_terms`: the terms of eq. (8) for one :math:`x_0` and sampled :math:`x_t`, each
  KL in closed form (this is how the bound is estimated for a neural network);
* :func:`bound_terms`: the *expected* terms :math:`L_0, L_1, \dots, L_T` of eq. (8), exact
  (no sampling at all), so :math:`L = \sum_k L_k`.

It also gives the exact negative log-likelihood of the model (:func:`model_nll`), which the
bound must exceed (Jensen's inequality), and the prior term :math:`L_T` (:func:`prior_kl`).

The reverse process (eq. 2) used here:

.. math::
   p(x_T) = \mathcal N(0, I), \qquad
   p_\theta(x_{t-1} \mid x_t) = \mathcal N\big(\mu_\theta(x_t, t),\ \sigma_t^2 I\big),
   \quad t = 1, \dots, T,

where :math:`p_\theta(x_0 \mid x_1)` (the decoder) is a Gaussian density, because the data
here are continuous, and the mean comes from a noise predictor through eq. (12):

.. math::
   \mu_\theta(x_t, t) = \frac{1}{\sqrt{\alpha_t}}\Big(x_t
       - \frac{\beta_t}{\sqrt{1 - \bar\alpha_t}}\,\epsilon_\theta(x_t, t)\Big), \qquad
   \epsilon_\theta(x_t, t) = c_t\, x_t + e_t .

All results are in nats and summed over the data's coordinates.

Arguments are checked at the call (:ref:`bad-input`): a bad one raises
``ValueError`` naming it. The bound needs :math:`0 < \beta_t < 1` at every step (at
:math:`\beta_t = 0` the density :math:`q(x_t \mid x_{t-1})` does not exist), so a schedule
with a step at either extreme is refused with that reason.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from ddpm_lib._validate import (
    check_array,
    check_broadcast,
    check_choice,
    check_int,
    check_key,
    check_mean,
    check_real,
    check_schedule,
    check_variance,
    concrete,
)
from ddpm_lib.losses import gaussian_kl
from ddpm_lib.parameterization import mu_from_eps
from ddpm_lib.posterior import posterior_mean_variance
from ddpm_lib.schedules import Schedule

__all__ = [
    "ReverseProcess",
    "reverse_variances",
    "reverse_process",
    "optimal_reverse_process",
    "log_ratio",
    "trajectory_log_ratios",
    "mc_bound",
    "ancestral_sample",
    "kl_terms",
    "expected_eps_error",
    "loss_constants",
    "bound_terms",
    "prior_kl",
    "expected_prior_kl",
    "model_marginal",
    "model_nll",
    "data_entropy",
    "nats_to_bits_per_dim",
    "max_prior_bits_per_dim",
]

_LOG_2PI = math.log(2.0 * math.pi)


# --------------------------------------------------------------------------- validation


def _check_schedule(schedule: Schedule) -> np.ndarray:
    """Return the betas (float64, length T + 1) after checking 0 < beta_t < 1 for t >= 1."""
    check_schedule(schedule)
    b = concrete(schedule.betas)
    if b is None:
        return None
    b = b.astype(np.float64)
    bad = np.flatnonzero((b[1:] <= 0.0) | (b[1:] >= 1.0))
    if bad.size:
        t = int(bad[0]) + 1
        raise ValueError(
            f"schedule: the bound needs 0 < beta_t < 1 at every step; beta_{t} = {b[t]!r}. "
            "At beta_t = 0 the density q(x_t | x_{t-1}) does not exist, and at beta_t = 1 "
            "the eps-parameterization (12) divides by sqrt(alpha_t) = 0"
        )
    return b


def _check_m(m, name: str = "m") -> None:
    check_mean(m, name)


def _check_model(model, name: str = "model") -> None:
    if not isinstance(model, ReverseProcess):
        raise ValueError(f"{name} must be a bound.ReverseProcess (from reverse_process or "
                         f"optimal_reverse_process); got {type(model).__name__}")


def _check_data(model, m, s2) -> tuple[int, ...]:
    """``m`` finite, ``s2`` >= 0, broadcasting together and against the model's data shape."""
    _check_m(m)
    check_variance(s2)
    shape = check_broadcast(m=m, s2=s2)
    if model is not None:
        coef = np.broadcast_shapes(np.shape(model.eps_scale)[1:], np.shape(model.eps_shift)[1:])
        try:
            ok = np.broadcast_shapes(coef, shape) == shape
        except ValueError:
            ok = False
        if not ok:
            raise ValueError(f"m must have the data shape of the model's coefficients {coef} (or a shape they "
                             f"broadcast to); got m and s2 of shape {shape}")
    return shape


def _f64_schedule(schedule: Schedule):
    """beta, alpha, alpha_bar and alpha_bar_{t-1} in float64, each of length T + 1."""
    b = _check_schedule(schedule)
    a = 1.0 - b
    ab = np.cumprod(a)
    ab_prev = np.concatenate([[1.0], ab[:-1]])
    return b, a, ab, ab_prev


# --------------------------------------------------------------------------- the model


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class ReverseProcess:
    r"""The reverse process (2) with Gaussian transitions and an affine noise predictor.

    .. math::
       p_\theta(x_{t-1} \mid x_t) = \mathcal N\big(\mu_\theta(x_t, t),\ \sigma_t^2 I\big),
       \qquad \epsilon_\theta(x_t, t) = c_t\,x_t + e_t,

    with :math:`\mu_\theta` from :math:`\epsilon_\theta` by eq. (12) and :math:`p(x_T) = \mathcal N(0, I)`.
    Every array has ``T + 1`` rows indexed by the book's ``t``; row 0 is unused.

    Attributes:
      schedule: the forward process's :class:`~ddpm_lib.schedules.Schedule`.
      eps_scale: :math:`c_t`, shape ``(T + 1, *data_shape)`` or ``(T + 1,)``.
      eps_shift: :math:`e_t`, shape ``(T + 1, *data_shape)`` or ``(T + 1,)``.
      variances: :math:`\sigma_t^2`, shape ``(T + 1,)``; :math:`\sigma_1^2` is the variance of
        the decoder :math:`p_\theta(x_0 \mid x_1)`.
    """

    schedule: Schedule
    eps_scale: jax.Array
    eps_shift: jax.Array
    variances: jax.Array

    @property
    def T(self) -> int:
        """Number of diffusion steps."""
        return self.schedule.T

    def eps(self, xt: jax.Array, t) -> jax.Array:
        r"""The noise prediction :math:`\epsilon_\theta(x_t, t) = c_t x_t + e_t` for one example.

        Raises:
          ValueError: if ``t`` is not one integer in ``1..T`` (a traced ``t`` only in checked mode).
        """
        self.schedule.check_t(t)
        return self.eps_scale[t] * xt + self.eps_shift[t]

    def mean(self, xt: jax.Array, t) -> jax.Array:
        r"""The reverse mean :math:`\mu_\theta(x_t, t)` of eq. (12), for one example.

        Raises:
          ValueError: if ``t`` is not one integer in ``1..T`` (a traced ``t`` only in checked mode).
        """
        eps = jnp.broadcast_to(self.eps(xt, t), jnp.shape(xt))
        return mu_from_eps(self.schedule, xt, t, eps)


def reverse_variances(schedule: Schedule, sigma2="beta") -> jax.Array:
    r"""The reverse-process variances :math:`\sigma_t^2`, an array of length ``T + 1``.

    Args:
      schedule: the variance schedule.
      sigma2: ``"beta"`` for :math:`\sigma_t^2 = \beta_t`; ``"beta_tilde"`` for
        :math:`\sigma_t^2 = \tilde\beta_t`, with :math:`\tilde\beta_2` at ``t = 1`` (where
        :math:`\tilde\beta_1 = 0` would make the decoder a point mass), as in the paper's
        code; or an array of length ``T + 1`` (entry 0 is ignored).

    Returns:
      A float32 array of length ``T + 1``; entry 0 is set to 1 (unused).

    Raises:
      ValueError: if ``schedule`` is not a ``Schedule``, or ``sigma2`` is an unknown name, has
        the wrong length, or holds a variance that is not finite and > 0.
    """
    check_schedule(schedule)
    T = schedule.T
    if isinstance(sigma2, str):
        check_choice("sigma2", sigma2, ("beta", "beta_tilde"))
        if sigma2 == "beta":
            v = np.asarray(schedule.betas, np.float64).copy()
        else:
            v = np.exp(np.asarray(schedule.posterior_log_variances_clipped, np.float64))
    else:
        check_array("sigma2", sigma2)
        v = np.asarray(sigma2, np.float64).copy()
        if v.shape != (T + 1,):
            raise ValueError(f"sigma2 must have shape (T + 1,) = ({T + 1},); got {v.shape}")
    v[0] = 1.0
    if not np.all(np.isfinite(v[1:])) or np.any(v[1:] <= 0):
        t = int(np.flatnonzero(~(np.isfinite(v[1:]) & (v[1:] > 0)))[0]) + 1
        raise ValueError(f"sigma2: every reverse variance sigma_t^2 (t = 1..T) must be finite and > 0; "
                         f"sigma_{t}^2 = {v[t]!r}")
    return jnp.asarray(v, jnp.float32)


def reverse_process(schedule: Schedule, eps_scale, eps_shift, sigma2="beta") -> ReverseProcess:
    r"""A :class:`ReverseProcess` with the affine noise predictor :math:`\epsilon_\theta = c_t x_t + e_t`.

    Args:
      schedule: the forward schedule; every :math:`\beta_t` must lie in (0, 1).
      eps_scale: :math:`c_t`, shape ``(T + 1,)`` or ``(T + 1, *data_shape)``.
      eps_shift: :math:`e_t`, same conventions.
      sigma2: the reverse variances, as for :func:`reverse_variances`.

    Raises:
      ValueError: if the schedule has a step with :math:`\beta_t \in \{0, 1\}`, the
        coefficients do not have ``T + 1`` rows or are not finite, or ``sigma2`` is invalid.
    """
    _check_schedule(schedule)
    T = schedule.T
    out = []
    for name, arr in (("eps_scale", eps_scale), ("eps_shift", eps_shift)):
        check_array(name, arr)
        a = np.asarray(arr, np.float64)
        if a.ndim < 1 or a.shape[0] != T + 1:
            raise ValueError(f"{name} must have T + 1 = {T + 1} rows (one per t, row 0 unused); got shape {a.shape}")
        if not np.all(np.isfinite(a)):
            raise ValueError(f"{name} must be finite; got {int(np.sum(~np.isfinite(a)))} NaN or infinite values")
        out.append(jnp.asarray(a, jnp.float32))
    return ReverseProcess(schedule, out[0], out[1], reverse_variances(schedule, sigma2))


def optimal_reverse_process(schedule: Schedule, m, s2, sigma2="beta", gain: float = 1.0) -> ReverseProcess:
    r"""The reverse process whose noise predictor is ``gain`` times the optimal one for the data.

    .. math::
       \epsilon_\theta(x_t, t) = g\,\epsilon^*(x_t, t)
       = g\,\frac{\sqrt{1-\bar\alpha_t}}{v_t}\big(x_t - \sqrt{\bar\alpha_t}\,m\big),
       \qquad v_t = \bar\alpha_t s^2 + 1 - \bar\alpha_t,

    the same predictor as :func:`ddpm_lib.analytic.optimal_eps` scaled by :math:`g`. With
    :math:`g = 1` the mean :math:`\mu_\theta(x_t, t)` is exactly :math:`\mathbb E[x_{t-1} \mid x_t]`;
    any other :math:`g` gives a deliberately imperfect model. Coefficients are computed in float64.

    Args:
      schedule: the forward schedule; every :math:`\beta_t` must lie in (0, 1).
      m: the data mean, an array of the data's shape (for example ``jnp.full(2, 0.5)``).
      s2: the data variance, broadcastable to ``m``.
      sigma2: the reverse variances, as for :func:`reverse_variances`.
      gain: the factor :math:`g`.

    Raises:
      ValueError: for a bad schedule, a non-finite ``m`` or ``gain``, ``s2`` not finite and
        >= 0, or ``m`` and ``s2`` that do not broadcast together.
    """
    _check_data(None, m, s2)
    gain = check_real("gain", gain)
    b, a, ab, _ = _f64_schedule(schedule)
    m64, s264 = np.broadcast_arrays(np.asarray(m, np.float64), np.asarray(s2, np.float64))
    shape = (-1,) + (1,) * m64.ndim
    ab_, sq1m = ab.reshape(shape), np.sqrt(1.0 - ab).reshape(shape)
    v = ab_ * s264 + 1.0 - ab_
    with np.errstate(divide="ignore", invalid="ignore"):  # row 0 (unused) is 0 / 0 when s2 = 0
        scale = gain * sq1m / v
        shift = -gain * sq1m * np.sqrt(ab_) * m64 / v
    scale[0], shift[0] = 0.0, 0.0
    return reverse_process(schedule, scale, shift, sigma2)


# --------------------------------------------------------------------------- Monte Carlo


def _step_log_ratio(model: ReverseProcess, x_prev, eps_t, t):
    r"""One forward step and its term :math:`\log q(x_t \mid x_{t-1}) - \log p_\theta(x_{t-1} \mid x_t)`."""
    s = model.schedule
    beta, var = s.betas[t], model.variances[t]
    x_t = jnp.sqrt(s.alphas[t]) * x_prev + jnp.sqrt(beta) * eps_t
    resid = x_prev - model.mean(x_t, t)
    # log N(x_t; sqrt(alpha) x_prev, beta) - log N(x_prev; mu, var), the 2 pi cancelled
    term = 0.5 * jnp.log(var / beta) - 0.5 * eps_t**2 + resid**2 / (2.0 * var)
    return x_t, jnp.sum(term)


def _prior_nll(x_T):
    return jnp.sum(0.5 * (_LOG_2PI + x_T**2))


def log_ratio(model: ReverseProcess, x0: jax.Array, eps: jax.Array) -> jax.Array:
    r"""The integrand of the bound (4) along one forward trajectory, in the form (5).

    .. math::
       -\log\frac{p_\theta(x_{0:T})}{q(x_{1:T} \mid x_0)}
       = -\log p(x_T) - \sum_{t=1}^{T} \log\frac{p_\theta(x_{t-1} \mid x_t)}{q(x_t \mid x_{t-1})}
       \qquad\text{(5)}

    The trajectory is :math:`x_t = \sqrt{\alpha_t}\,x_{t-1} + \sqrt{\beta_t}\,\epsilon_t`
    (eq. 1), run as one ``lax.scan``. Its average over :math:`x_0 \sim q(x_0)` and the noise
    is the bound :math:`L`; see :func:`mc_bound`.

    Args:
      model: the reverse process.
      x0: one clean example of the data's shape.
      eps: the forward noise :math:`\epsilon_1, \dots, \epsilon_T`, shape ``(T, *x0.shape)``.

    Returns:
      A scalar in nats.

    Raises:
      ValueError: if ``model`` is not a :class:`ReverseProcess` or ``eps`` does not have shape
        ``(T, *x0.shape)``.
    """
    _check_model(model)
    check_array("x0", x0)
    x0 = jnp.asarray(x0, jnp.float32)
    if tuple(jnp.shape(eps)) != (model.T,) + tuple(x0.shape):
        raise ValueError(f"eps must have shape (T, *x0.shape) = {(model.T,) + tuple(x0.shape)}; got {jnp.shape(eps)}")

    def step(x_prev, inputs):
        t, eps_t = inputs
        return _step_log_ratio(model, x_prev, eps_t, t)

    x_T, terms = jax.lax.scan(step, x0, (jnp.arange(1, model.T + 1), eps))
    return _prior_nll(x_T) + jnp.sum(terms)


@jax.jit
def _trajectory_log_ratios(key, model, x0):
    step_batch = jax.vmap(_step_log_ratio, in_axes=(None, 0, 0, None))

    def step(carry, t):
        x_prev, total = carry
        eps_t = jax.random.normal(jax.random.fold_in(key, t), x_prev.shape)
        x_t, term = step_batch(model, x_prev, eps_t, t)
        return (x_t, total + term), None

    init = (x0, jnp.zeros(x0.shape[0]))
    (x_T, total), _ = jax.lax.scan(step, init, jnp.arange(1, model.T + 1))
    return total + jax.vmap(_prior_nll)(x_T)


def trajectory_log_ratios(key: jax.Array, model: ReverseProcess, x0: jax.Array) -> jax.Array:
    r""":func:`log_ratio` along one fresh forward trajectory from each example of a batch.

    The trajectories run side by side in one compiled ``lax.scan`` over ``t``; step ``t``
    draws its noise with ``jax.random.fold_in(key, t)``, so memory stays :math:`O(n \cdot d)`
    however large ``T`` is.

    Args:
      key: a ``jax.random.key``.
      model: the reverse process.
      x0: a batch of clean examples, shape ``(n, *data_shape)``.

    Returns:
      The ``n`` values :math:`-\log p_\theta(x_{0:T}) + \log q(x_{1:T} \mid x_0)`, in nats.

    Raises:
      ValueError: if ``key`` is not one random key, ``model`` is not a
        :class:`ReverseProcess`, or ``x0`` has no batch axis. ``n = 0`` is allowed.
    """
    check_key(key)
    _check_model(model)
    check_array("x0", x0)
    x0 = jnp.asarray(x0, jnp.float32)
    if x0.ndim < 1:
        raise ValueError(f"x0 must be a batch of shape (n, *data_shape); got shape {x0.shape}")
    _check_schedule(model.schedule)
    return _trajectory_log_ratios(key, model, x0)


def mc_bound(key: jax.Array, model: ReverseProcess, m, s2, num_samples: int):
    r"""Monte Carlo estimate of the bound :math:`L` of eq. (4), with its standard error.

    .. math::
       L = \mathbb E_{q(x_{0:T})}\Big[-\log\frac{p_\theta(x_{0:T})}{q(x_{1:T} \mid x_0)}\Big]
       \approx \frac1n \sum_{i=1}^n \ell^{(i)}, \qquad
       \text{s.e.} = \frac{\operatorname{sd}(\ell)}{\sqrt n}

    Each :math:`\ell^{(i)}` is :func:`log_ratio` along one full forward trajectory from
    :math:`x_0^{(i)} \sim \mathcal N(m, s^2)`, computed by :func:`trajectory_log_ratios`.

    Args:
      key: a ``jax.random.key``.
      model: the reverse process.
      m: the data mean, an array of the data's shape.
      s2: the data variance, broadcastable to ``m``.
      num_samples: the number ``n`` of trajectories, at least 2.

    Returns:
      ``(mean, stderr)``, two float32 scalars in nats.

    Raises:
      ValueError: if ``key`` is not one random key, ``model`` is not a
        :class:`ReverseProcess`, ``num_samples`` is not an integer >= 2, ``m`` is not
        finite, ``s2`` is not finite and >= 0, or ``m`` does not fit the model's data shape.
    """
    num_samples = check_int("num_samples", num_samples, lo=2)
    check_key(key)
    _check_model(model)
    _check_data(model, m, s2)
    key_x0, key_eps = jax.random.split(key)
    m, s2 = jnp.broadcast_arrays(jnp.asarray(m, jnp.float32), jnp.asarray(s2, jnp.float32))
    x0 = m + jnp.sqrt(s2) * jax.random.normal(key_x0, (int(num_samples),) + m.shape)
    values = trajectory_log_ratios(key_eps, model, x0)
    return jnp.mean(values), jnp.std(values, ddof=1) / jnp.sqrt(num_samples)


@functools.partial(jax.jit, static_argnames=("num_samples",))
def _ancestral_sample(key, model, num_samples):
    key_T, key_steps = jax.random.split(key)
    shape = (num_samples,) + jnp.shape(jnp.broadcast_arrays(model.eps_scale[0], model.eps_shift[0])[0])
    x_T = jax.random.normal(key_T, shape)
    mean_batch = jax.vmap(lambda m, x, t: m.mean(x, t), in_axes=(None, 0, None))

    def step(x_t, t):
        z = jax.random.normal(jax.random.fold_in(key_steps, t), x_t.shape)
        return mean_batch(model, x_t, t) + jnp.sqrt(model.variances[t]) * z, None

    x0, _ = jax.lax.scan(step, x_T, jnp.arange(model.T, 0, -1))
    return x0


def ancestral_sample(key: jax.Array, model: ReverseProcess, num_samples: int) -> jax.Array:
    r"""Draw :math:`x_0 \sim p_\theta(x_0)` by running the reverse chain (2) from :math:`x_T \sim \mathcal N(0, I)`.

    .. math:: x_{t-1} = \mu_\theta(x_t, t) + \sigma_t z_t, \qquad t = T, \dots, 1,

    including the decoder's noise at ``t = 1`` (here :math:`p_\theta(x_0 \mid x_1)` is a
    density; a sampler that shows images would return its mean instead). The data shape is
    that of the model's per-step coefficients, so build the model with an ``m`` of the data's
    shape.

    Returns:
      An array of shape ``(num_samples, *data_shape)``.

    Raises:
      ValueError: if ``key`` is not one random key, ``model`` is not a
        :class:`ReverseProcess`, or ``num_samples`` is not an integer >= 1.
    """
    num_samples = check_int("num_samples", num_samples, lo=1)
    check_key(key)
    _check_model(model)
    _check_schedule(model.schedule)
    return _ancestral_sample(key, model, int(num_samples))


def kl_terms(model: ReverseProcess, x0: jax.Array, eps: jax.Array) -> jax.Array:
    r"""The terms of eq. (8) for one :math:`x_0`, each KL in closed form, with sampled :math:`x_t`.

    .. math::
       L_T(x_0) = D_\mathrm{KL}\big(q(x_T \mid x_0)\,\Vert\,p(x_T)\big), \quad
       L_{t-1}(x_0, x_t) = D_\mathrm{KL}\big(q(x_{t-1} \mid x_t, x_0)\,\Vert\,p_\theta(x_{t-1} \mid x_t)\big),
       \quad L_0(x_0, x_1) = -\log p_\theta(x_0 \mid x_1),

    with :math:`x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\epsilon_t` drawn
    separately for each ``t`` (only the pair :math:`(x_0, x_t)` matters for each term).
    :math:`L_T` is exact given :math:`x_0`; the others are unbiased one-sample estimates of
    their expectation over :math:`x_t`. Averaged over :math:`x_0` they give :func:`bound_terms`.

    Args:
      model: the reverse process.
      x0: one clean example.
      eps: noise of shape ``(T, *x0.shape)``; ``eps[t - 1]`` makes :math:`x_t`.

    Returns:
      An array of length ``T + 1`` whose entry ``k`` is :math:`L_k`, in nats.

    Raises:
      ValueError: if ``model`` is not a :class:`ReverseProcess` or ``eps`` does not have shape
        ``(T, *x0.shape)``.
    """
    _check_model(model)
    check_array("x0", x0)
    s = model.schedule
    x0 = jnp.asarray(x0, jnp.float32)
    if tuple(jnp.shape(eps)) != (model.T,) + tuple(x0.shape):
        raise ValueError(f"eps must have shape (T, *x0.shape) = {(model.T,) + tuple(x0.shape)}; got {jnp.shape(eps)}")
    ts = jnp.arange(1, model.T + 1)
    xts = jax.vmap(lambda t, e: s.sqrt_alpha_bars[t] * x0 + s.sqrt_one_minus_alpha_bars[t] * e)(ts, eps)

    def kl_at(t, xt):  # L_{t-1}, for t >= 2
        mean_q, var_q, _ = posterior_mean_variance(s, x0, xt, t)
        kl = gaussian_kl(mean_q, jnp.log(var_q), model.mean(xt, t), jnp.log(model.variances[t]))
        return jnp.sum(kl)

    middle = jax.vmap(kl_at)(ts[1:], xts[1:])
    var1 = model.variances[1]
    decoder = jnp.sum(0.5 * (_LOG_2PI + jnp.log(var1)) + (x0 - model.mean(xts[0], 1)) ** 2 / (2.0 * var1))
    return jnp.concatenate([decoder[None], middle, prior_kl(s, x0)[None]])


# --------------------------------------------------------------------------- closed forms


def _data_arrays(model: ReverseProcess, m, s2):
    _check_model(model)
    _check_data(model, m, s2)
    m64, s264 = np.broadcast_arrays(np.asarray(m, np.float64), np.asarray(s2, np.float64))
    shape = (-1,) + (1,) * m64.ndim
    c = np.asarray(model.eps_scale, np.float64)
    e = np.asarray(model.eps_shift, np.float64)
    c = np.broadcast_to(c.reshape(c.shape + (1,) * (m64.ndim + 1 - c.ndim)), (c.shape[0],) + m64.shape)
    e = np.broadcast_to(e.reshape(e.shape + (1,) * (m64.ndim + 1 - e.ndim)), (e.shape[0],) + m64.shape)
    return m64, s264, shape, c, e


def expected_eps_error(model: ReverseProcess, m, s2) -> jax.Array:
    r"""The exact noise-prediction error :math:`\mathbb E\,\lVert\epsilon - \epsilon_\theta(x_t, t)\rVert^2` for every ``t``.

    With :math:`x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\epsilon` and
    :math:`\epsilon_\theta = c_t x_t + e_t`, the error
    :math:`(1 - c_t\sqrt{1-\bar\alpha_t})\,\epsilon - c_t\sqrt{\bar\alpha_t}\,x_0 - e_t`
    is Gaussian, so, per coordinate,

    .. math::
       \mathbb E\big[(\epsilon - \epsilon_\theta)^2\big]
       = \big(1 - c_t\sqrt{1-\bar\alpha_t}\big)^2 + c_t^2\,\bar\alpha_t\,s^2
         + \big(c_t\sqrt{\bar\alpha_t}\,m + e_t\big)^2 .

    Computed in float64 with NumPy.

    Returns:
      A float32 array of length ``T + 1`` (entry 0 is 0), summed over coordinates.

    Raises:
      ValueError: if ``model`` is not a :class:`ReverseProcess`, ``m`` is not finite, ``s2``
        is not finite and >= 0, or ``m`` does not fit the model's data shape.
    """
    _check_model(model)
    return jnp.asarray(_expected_eps_error64(model, m, s2), jnp.float32)


def _weights_and_constants(model: ReverseProcess, num_dims: int):
    b, a, ab, ab_prev = _f64_schedule(model.schedule)
    var = np.asarray(model.variances, np.float64)
    T = model.T
    lam = np.zeros(T + 1)
    lam[1:] = b[1:] ** 2 / (2.0 * var[1:] * a[1:] * (1.0 - ab[1:]))
    const = np.zeros(T + 1)
    const[1] = 0.5 * num_dims * (_LOG_2PI + np.log(var[1]))
    if T >= 2:
        bt = (1.0 - ab_prev[2:]) / (1.0 - ab[2:]) * b[2:]
        delta = bt / var[2:] - 1.0  # KL(N(0, bt) || N(0, var)) = (delta - log1p(delta)) / 2 per coordinate
        const[2:] = 0.5 * num_dims * (delta - np.log1p(delta))
    return lam, const


def loss_constants(model: ReverseProcess, num_dims: int) -> jax.Array:
    r"""The constants :math:`C_t` that turn the weighted noise error into the bound's terms.

    For :math:`t \ge 2` the Gaussian KL of eq. (8) splits into a part that depends on the model's
    mean (loss 11) and the variance part, the constant of eq. (11):

    .. math::
       C_t = \frac d2\Big(\frac{\tilde\beta_t}{\sigma_t^2} - 1 - \log\frac{\tilde\beta_t}{\sigma_t^2}\Big),
       \qquad t = 2, \dots, T,

    and for the decoder, :math:`C_1 = \frac d2\log(2\pi\sigma_1^2)`. Then
    :math:`L_{t-1} = C_t + \lambda_t\,\mathbb E\lVert\epsilon - \epsilon_\theta\rVert^2`.
    Computed in float64.

    Args:
      model: the reverse process (only its schedule and variances are used).
      num_dims: the number ``d`` of data coordinates.

    Returns:
      A float32 array of length ``T + 1``; entry 0 is 0.

    Raises:
      ValueError: if ``model`` is not a :class:`ReverseProcess` or ``num_dims`` is not an
        integer >= 1.
    """
    _check_model(model)
    num_dims = check_int("num_dims", num_dims, lo=1)
    return jnp.asarray(_weights_and_constants(model, int(num_dims))[1], jnp.float32)


def expected_prior_kl(schedule: Schedule, m, s2) -> jax.Array:
    r"""The prior term :math:`L_T = \mathbb E_{x_0}\,D_\mathrm{KL}\big(q(x_T \mid x_0)\,\Vert\,\mathcal N(0, I)\big)`, exact.

    .. math::
       L_T = \frac12 \sum_i \Big(\bar\alpha_T\,(m_i^2 + s_i^2 - 1) - \log(1 - \bar\alpha_T)\Big)

    Computed in float64 with ``log1p``; summed over the coordinates of ``m``. Needs
    :math:`\bar\alpha_T < 1` (some noise by step ``T``); otherwise :math:`L_T = \infty`.

    Raises:
      ValueError: if ``schedule`` is not a ``Schedule``, ``m`` is not finite, ``s2`` is not
        finite and >= 0, or ``m`` and ``s2`` do not broadcast together.
    """
    check_schedule(schedule)
    _check_data(None, m, s2)
    b = np.asarray(schedule.betas, np.float64)
    abT = float(np.prod(1.0 - b))
    m64, s264 = np.broadcast_arrays(np.asarray(m, np.float64), np.asarray(s2, np.float64))
    per = 0.5 * (abT * (m64**2 + s264 - 1.0) - np.log1p(-abT))
    return jnp.asarray(np.sum(per), jnp.float32)


def bound_terms(model: ReverseProcess, m, s2) -> jax.Array:
    r"""The exact expected terms :math:`L_0, L_1, \dots, L_T` of the decomposition (8).

    .. math::
       L = \underbrace{\mathbb E\,D_\mathrm{KL}\big(q(x_T \mid x_0)\Vert p(x_T)\big)}_{L_T}
         + \sum_{t=2}^T \underbrace{\mathbb E\,D_\mathrm{KL}\big(q(x_{t-1} \mid x_t, x_0)\Vert
           p_\theta(x_{t-1} \mid x_t)\big)}_{L_{t-1}}
         \underbrace{- \mathbb E\log p_\theta(x_0 \mid x_1)}_{L_0}
       \qquad\text{(8)}

    Each KL between Gaussians is its variance part :math:`C_t` (:func:`loss_constants`) plus
    its mean part; by problem 3.2 the mean part is
    :math:`\lambda_t\,\mathbb E\lVert\epsilon - \epsilon_\theta\rVert^2` with
    :math:`\lambda_t = \beta_t^2 / (2\sigma_t^2\alpha_t(1-\bar\alpha_t))`, and the same holds
    for :math:`L_0` (:math:`x_0 - \mu_\theta(x_1, 1) = -\sqrt{\beta_1/\alpha_1}\,(\epsilon - \epsilon_\theta)`).
    The expectation is exact (:func:`expected_eps_error`), and everything is computed in
    float64, because for large ``t`` the terms are tiny differences of numbers of order one.

    Args:
      model: the reverse process.
      m: the data mean, an array of the data's shape.
      s2: the data variance, broadcastable to ``m``.

    Returns:
      A float32 array of length ``T + 1`` whose entry ``k`` is :math:`L_k` in nats
      (entry 0 is :math:`L_0`, entry ``T`` is :math:`L_T`). Its sum is the bound :math:`L`.

    Raises:
      ValueError: as :func:`expected_eps_error`.
    """
    _check_model(model)
    _check_data(model, m, s2)
    m64 = np.broadcast_arrays(np.asarray(m, np.float64), np.asarray(s2, np.float64))[0]
    err = np.asarray(_expected_eps_error64(model, m, s2))
    lam, const = _weights_and_constants(model, max(int(m64.size), 1))
    T = model.T
    out = np.zeros(T + 1)
    out[0] = const[1] + lam[1] * err[1]  # L_0: the decoder
    out[1:T] = const[2:] + lam[2:] * err[2:]  # L_{t-1} for t = 2..T
    out[T] = float(expected_prior_kl(model.schedule, m, s2))
    return jnp.asarray(out, jnp.float32)


def _expected_eps_error64(model, m, s2):
    _, _, ab, _ = _f64_schedule(model.schedule)
    m64, s264, shape, c, e = _data_arrays(model, m, s2)
    ab_ = ab.reshape(shape)
    per = (1.0 - c * np.sqrt(1.0 - ab_)) ** 2 + c**2 * ab_ * s264 + (c * np.sqrt(ab_) * m64 + e) ** 2
    out = per.reshape(per.shape[0], -1).sum(axis=1)
    out[0] = 0.0
    return out


def prior_kl(schedule: Schedule, x0: jax.Array) -> jax.Array:
    r""":math:`D_\mathrm{KL}\big(q(x_T \mid x_0)\,\Vert\,\mathcal N(0, I)\big)` for one example, in nats.

    .. math::
       \frac12\sum_i\Big(\bar\alpha_T\,x_{0,i}^2 + (1 - \bar\alpha_T) - 1 - \log(1 - \bar\alpha_T)\Big)
       = \frac12\sum_i\Big(\bar\alpha_T\,(x_{0,i}^2 - 1) - \log(1 - \bar\alpha_T)\Big)

    Written with ``log1p`` so that a tiny :math:`\bar\alpha_T` stays accurate in float32.
    It contains no trainable parameter. If :math:`\bar\alpha_T = 1` (every step has
    :math:`\beta = 0`) :math:`q(x_T \mid x_0)` is a point mass and the result is ``inf``.

    Raises:
      ValueError: if ``schedule`` is not a ``Schedule`` or ``x0`` is not an array of numbers.
    """
    check_schedule(schedule)
    check_array("x0", x0)
    abT = schedule.alpha_bars[-1]
    x0 = jnp.asarray(x0, jnp.float32)
    # -abar - log1p(-abar) >= 0 is O(abar^2); keep it apart from the x0 term
    return 0.5 * jnp.sum(abT * x0**2 + (-abT - jnp.log1p(-abT)))


def max_prior_bits_per_dim(schedule: Schedule, data_range=(-1.0, 1.0)) -> float:
    r"""The largest per-dimension :math:`L_T` over data in ``data_range``, in bits.

    :math:`L_T(x_0)` grows with :math:`x_0^2`, so the maximum over an interval is at the
    endpoint of largest magnitude: :math:`\frac{1}{2\ln 2}\big(\bar\alpha_T(x^2 - 1) - \log(1-\bar\alpha_T)\big)`.
    Computed in float64.

    Raises:
      ValueError: if ``schedule`` is not a ``Schedule`` or ``data_range`` is not an
        increasing pair of finite numbers.
    """
    check_schedule(schedule)
    try:
        lo, hi = (check_real("data_range", v) for v in data_range)
    except (TypeError, ValueError):
        lo = hi = float("nan")
    if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
        raise ValueError(f"data_range must be (low, high) with low < high, both finite; got {data_range!r}")
    x = max(abs(lo), abs(hi))
    abT = float(np.prod(1.0 - np.asarray(schedule.betas, np.float64)))
    return 0.5 * (abT * (x**2 - 1.0) - math.log1p(-abT)) / math.log(2.0)


def model_marginal(model: ReverseProcess):
    r"""Mean and variance of the model's own data distribution :math:`p_\theta(x_0)`, exact.

    Every step is linear-Gaussian, :math:`x_{t-1} = a_t x_t + b_t + \sigma_t z` with
    :math:`a_t = (1 - k_t c_t)/\sqrt{\alpha_t}`, :math:`b_t = -k_t e_t/\sqrt{\alpha_t}` and
    :math:`k_t = \beta_t/\sqrt{1-\bar\alpha_t}` (eq. 12), so starting from
    :math:`x_T \sim \mathcal N(0, I)`:

    .. math::
       \mu_{t-1} = a_t\,\mu_t + b_t, \qquad v_{t-1} = a_t^2\,v_t + \sigma_t^2 .

    Computed in float64.

    Returns:
      ``(mean, var)`` per coordinate, float32, shaped like the broadcast of the coefficients.

    Raises:
      ValueError: if ``model`` is not a :class:`ReverseProcess`.
    """
    _check_model(model)
    b, a, ab, _ = _f64_schedule(model.schedule)
    c = np.asarray(model.eps_scale, np.float64)
    e = np.asarray(model.eps_shift, np.float64)
    var = np.asarray(model.variances, np.float64)
    shape = (-1,) + (1,) * (max(c.ndim, e.ndim) - 1)
    k = (b / np.sqrt(np.where(ab < 1.0, 1.0 - ab, 1.0))).reshape(shape)
    sa = np.sqrt(a).reshape(shape)
    coef_a = (1.0 - k * c) / sa
    coef_b = -k * e / sa
    mu = np.zeros(np.broadcast_shapes(coef_a.shape[1:], coef_b.shape[1:]))
    v = np.ones_like(mu)
    for t in range(model.T, 0, -1):
        mu = coef_a[t] * mu + coef_b[t]
        v = coef_a[t] ** 2 * v + var[t]
    return jnp.asarray(mu, jnp.float32), jnp.asarray(v, jnp.float32)


def model_nll(model: ReverseProcess, m, s2) -> jax.Array:
    r"""The exact negative log-likelihood (3), :math:`\mathbb E_{x_0 \sim q}[-\log p_\theta(x_0)]`, in nats.

    With :math:`p_\theta(x_0) = \mathcal N(\mu_0, v_0)` from :func:`model_marginal`,

    .. math::
       \mathbb E[-\log p_\theta(x_0)] = \sum_i \frac12\log(2\pi v_{0,i})
          + \frac{(m_i - \mu_{0,i})^2 + s_i^2}{2 v_{0,i}} .

    The bound (4) can never be below this number. Computed in float64.

    Raises:
      ValueError: as :func:`expected_eps_error`.
    """
    _check_model(model)
    _check_data(model, m, s2)
    mu0, v0 = (np.asarray(x, np.float64) for x in model_marginal(model))
    m64, s264 = np.broadcast_arrays(np.asarray(m, np.float64), np.asarray(s2, np.float64))
    per = 0.5 * (_LOG_2PI + np.log(v0)) + ((m64 - mu0) ** 2 + s264) / (2.0 * v0)
    return jnp.asarray(np.sum(np.broadcast_to(per, m64.shape)), jnp.float32)


def data_entropy(m, s2) -> jax.Array:
    r"""The entropy of the data, :math:`\mathbb E[-\log q(x_0)] = \sum_i \frac12\log(2\pi e\,s_i^2)`, in nats.

    No model can reach a negative log-likelihood below it (it needs :math:`s^2 > 0`).

    Raises:
      ValueError: if ``m`` is not finite, ``s2`` is not finite and > 0 (a point mass has no
        density), or ``m`` and ``s2`` do not broadcast together.
    """
    _check_m(m)
    check_variance(s2, positive=True)
    check_broadcast(m=m, s2=s2)
    m64, s264 = np.broadcast_arrays(np.asarray(m, np.float64), np.asarray(s2, np.float64))
    return jnp.asarray(np.sum(0.5 * (_LOG_2PI + 1.0 + np.log(s264))), jnp.float32)


def nats_to_bits_per_dim(nats, num_dims: int):
    r"""Convert a value in nats for a whole example to bits per dimension: :math:`\text{nats} / (d \ln 2)`.

    Raises:
      ValueError: if ``nats`` is not a number (or array of numbers) or ``num_dims`` is not an
        integer >= 1.
    """
    check_array("nats", nats)
    num_dims = check_int("num_dims", num_dims, lo=1)
    return nats / (num_dims * math.log(2.0))
