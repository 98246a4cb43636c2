r"""Training losses and the pieces of the variational bound.

The homework's two per-step losses keep its names and argument order:

* :func:`mean_loss`, eq. (11): :math:`\frac{1}{2\sigma_t^2}\lVert\tilde\mu_t(x_t, x_0) - \mu_\theta\rVert^2`;
* :func:`noise_loss`, problem 3.2: :math:`\frac{\beta_t^2}{2\sigma_t^2\alpha_t(1-\bar\alpha_t)}\lVert\epsilon - \epsilon_\theta\rVert^2`.

Both are *sums* over the data dimensions, for one example. When :math:`\mu_\theta` is built
from :math:`\epsilon_\theta` by eq. (12), the two are equal.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ddpm_lib._validate import (
    check_array,
    check_broadcast,
    check_choice,
    check_same_shape,
    check_schedule,
    concrete,
    is_traced,
    traced_check,
)
from ddpm_lib.schedules import Schedule

__all__ = [
    "mean_loss",
    "noise_loss",
    "noise_loss_weight",
    "simple_loss",
    "gaussian_kl",
    "discretized_gaussian_log_likelihood",
]


def _alpha_terms(alpha_ts):
    r"""From ``[alpha_1 .. alpha_t]`` return :math:`(\alpha_t, \bar\alpha_t, \bar\alpha_{t-1})`.

    :math:`\bar\alpha_{t-1}` is the product of all but the last entry, not
    :math:`\bar\alpha_t / \alpha_t`, which divides by zero when :math:`\alpha_t = 0`.
    """
    check_array("alpha_ts", alpha_ts)
    alpha_ts = jnp.asarray(alpha_ts, dtype=jnp.float32)
    if alpha_ts.ndim != 1 or alpha_ts.shape[0] < 1:
        raise ValueError(f"alpha_ts must be the 1-D list [alpha_1, ..., alpha_t] with t >= 1; got shape {alpha_ts.shape}")
    a = concrete(alpha_ts)
    if a is not None and (not np.all(np.isfinite(a)) or np.any(a < 0) or np.any(a > 1)):
        bad = a[~(np.isfinite(a) & (a >= 0) & (a <= 1))].ravel()[0]
        raise ValueError(f"alpha_ts must lie in [0, 1] (alpha = 1 - beta); got {float(bad)}")
    alpha_bar_prev = jnp.prod(alpha_ts[:-1])
    return alpha_ts[-1], alpha_bar_prev * alpha_ts[-1], alpha_bar_prev


def _check_sigma(sigma_t, name="sigma_t"):
    if np.ndim(sigma_t) != 0:
        raise ValueError(f"{name} must be a single standard deviation > 0 (a vector would make the loss "
                         f"a vector); got an array of shape {np.shape(sigma_t)}")
    check_array(name, sigma_t)
    if is_traced(sigma_t):
        traced_check(sigma_t > 0, f"{name} must be a finite standard deviation > 0; got {{s}}", s=sigma_t)
        return
    s = concrete(sigma_t)
    if s is not None and (not np.all(np.isfinite(s)) or np.any(s <= 0)):
        raise ValueError(
            f"{name} must be a finite standard deviation > 0; got {sigma_t!r}. At sigma_t = 0 the "
            "reverse step is deterministic and the weight 1 / (2 sigma_t^2) has no finite limit"
        )


def mean_loss(sigma_t, alpha_ts, mu_pred: jax.Array, x_0: jax.Array, x_t: jax.Array) -> jax.Array:
    r"""The mean-prediction loss of eq. (11), without its constant :math:`C`.

    .. math::
       L_{t-1} - C = \frac{1}{2\sigma_t^2}\,\big\lVert \tilde\mu_t(x_t, x_0) - \mu_\theta(x_t, t)\big\rVert^2
       \qquad\text{(11)}

    with :math:`\tilde\mu_t` from eq. (10).

    Args:
      sigma_t: the reverse-process standard deviation :math:`\sigma_t > 0` (a scalar).
      alpha_ts: :math:`[\alpha_1, \dots, \alpha_t]`, the alphas up to and including step ``t``.
      mu_pred: the model's mean :math:`\mu_\theta(x_t, t)`.
      x_0: the clean example.
      x_t: the noisy example at step ``t``.

    Returns:
      The sum over all coordinates, a scalar.

    Raises:
      ValueError: if ``sigma_t`` is not one finite number > 0, ``alpha_ts`` is not a 1-D
        list of values in [0, 1], or the shapes of ``mu_pred``, ``x_0``, ``x_t`` differ.
    """
    _check_sigma(sigma_t)
    check_same_shape(mu_pred=mu_pred, x_0=x_0, x_t=x_t)
    alpha_t, alpha_bar_t, alpha_bar_prev = _alpha_terms(alpha_ts)
    beta_t = 1.0 - alpha_t
    one_m = 1.0 - alpha_bar_t
    safe = jnp.where(one_m > 0, one_m, 1.0)
    # When 1 - alpha_bar_t = 0 no noise has been added: x_t = x_0 and the posterior mean is x_0.
    coef_x0 = jnp.where(one_m > 0, jnp.sqrt(alpha_bar_prev) * beta_t / safe, 1.0)
    coef_xt = jnp.where(one_m > 0, jnp.sqrt(alpha_t) * (1.0 - alpha_bar_prev) / safe, 0.0)
    mu_tilde = coef_x0 * x_0 + coef_xt * x_t
    return jnp.sum((mu_tilde - mu_pred) ** 2) / (2.0 * sigma_t**2)


def noise_loss(sigma_t, alpha_ts, eps_pred: jax.Array, x_0: jax.Array, x_t: jax.Array, eps: jax.Array) -> jax.Array:
    r"""The noise-prediction loss of problem 3.2 (the weighting behind eq. 12).

    .. math::
       L_{t-1} - C = \frac{\beta_t^2}{2\sigma_t^2\,\alpha_t\,(1 - \bar\alpha_t)}
       \big\lVert \epsilon - \epsilon_\theta(x_t, t)\big\rVert^2

    ``x_0`` and ``x_t`` are accepted for the homework's signature; the value depends on
    them only through ``eps_pred``. A step with :math:`\beta_t = 0` is the identity in
    both chains and contributes exactly 0.

    Args:
      sigma_t: the reverse-process standard deviation :math:`\sigma_t > 0`.
      alpha_ts: :math:`[\alpha_1, \dots, \alpha_t]`.
      eps_pred: the model's noise prediction :math:`\epsilon_\theta(x_t, t)`.
      x_0: the clean example (shape check only).
      x_t: the noisy example (shape check only).
      eps: the true noise used to make ``x_t``.

    Returns:
      The weighted sum over all coordinates, a scalar.

    Raises:
      ValueError: if ``sigma_t`` is not one finite number > 0, ``alpha_t = 0`` (at
        :math:`\beta_t = 1` the weight has no finite value), ``alpha_ts`` is not a 1-D list
        of values in [0, 1], or the shapes of ``eps_pred``, ``x_0``, ``x_t``, ``eps`` differ.
    """
    _check_sigma(sigma_t)
    check_same_shape(eps_pred=eps_pred, x_0=x_0, x_t=x_t, eps=eps)
    alpha_t, alpha_bar_t, _ = _alpha_terms(alpha_ts)
    a = concrete(alpha_t)
    if a is not None and a <= 0:
        raise ValueError("alpha_ts: noise_loss needs alpha_t > 0 (the last entry); got 0: "
                         "at beta_t = 1 the weight beta^2 / (alpha_t ...) is infinite")
    beta_t = 1.0 - alpha_t
    denom = 2.0 * sigma_t**2 * alpha_t * (1.0 - alpha_bar_t)
    weight = jnp.where(beta_t > 0, beta_t**2 / jnp.where(denom > 0, denom, 1.0), 0.0)
    return weight * jnp.sum((eps - eps_pred) ** 2)


def noise_loss_weight(schedule: Schedule, sigma2: str = "beta") -> jax.Array:
    r"""The weight :math:`\lambda_t = \frac{\beta_t^2}{2\sigma_t^2\alpha_t(1-\bar\alpha_t)}` for every ``t``.

    Args:
      schedule: the variance schedule.
      sigma2: ``"beta"`` for :math:`\sigma_t^2 = \beta_t` or ``"beta_tilde"`` for
        :math:`\sigma_t^2 = \tilde\beta_t`.

    Returns:
      An array of length ``T + 1``; entry 0 is 0. Steps with :math:`\beta_t = 0` get
      weight 0 (they change nothing). With ``"beta_tilde"`` the weight at ``t = 1`` is
      ``inf`` (:math:`\tilde\beta_1 = 0`): that step is scored by the decoder term
      :math:`L_0` instead. Computed in float64.

    Raises:
      ValueError: if ``schedule`` is not a ``Schedule`` or has a step with
        :math:`\beta_t = 1` (:math:`\alpha_t = 0`), or ``sigma2`` is not ``"beta"`` or
        ``"beta_tilde"``.
    """
    check_schedule(schedule)
    check_choice("sigma2", sigma2, ("beta", "beta_tilde"))
    b = np.asarray(schedule.betas, np.float64)
    a = 1.0 - b
    if np.any(a[1:] <= 0):
        t = int(np.flatnonzero(a[1:] <= 0)[0]) + 1
        raise ValueError(f"schedule: noise_loss_weight needs every alpha_t > 0, but beta_t = 1 at t = {t}")
    ab = np.cumprod(a)
    if sigma2 == "beta":
        s2 = b
    elif sigma2 == "beta_tilde":
        s2 = np.asarray(schedule.posterior_variances, np.float64)
    else:
        raise ValueError(f"sigma2 must be 'beta' or 'beta_tilde'; got {sigma2!r}")
    w = np.zeros_like(b)
    with np.errstate(divide="ignore", invalid="ignore"):
        raw = b**2 / (2.0 * s2 * a * (1.0 - ab))
    w[1:] = np.where(b[1:] > 0, raw[1:], 0.0)
    return jnp.asarray(w, dtype=jnp.float32)


def simple_loss(eps: jax.Array, eps_pred: jax.Array) -> jax.Array:
    r""":math:`L_\text{simple}` for one example (eq. 14 of Ho et al.): :math:`\lVert\epsilon - \epsilon_\theta\rVert^2`.

    The noise loss with its weight dropped. Returns the sum over coordinates.

    Raises:
      ValueError: if the shapes of ``eps`` and ``eps_pred`` differ.
    """
    check_same_shape(eps=eps, eps_pred=eps_pred)
    check_array("eps", eps)
    check_array("eps_pred", eps_pred)
    return jnp.sum((eps - eps_pred) ** 2)


def gaussian_kl(mean1, logvar1, mean2, logvar2) -> jax.Array:
    r"""Elementwise :math:`D_\mathrm{KL}\big(\mathcal N(m_1, e^{v_1}) \,\Vert\, \mathcal N(m_2, e^{v_2})\big)` in nats.

    .. math:: \tfrac12\big(v_2 - v_1 + e^{v_1 - v_2} + (m_1 - m_2)^2 e^{-v_2} - 1\big)

    Written with log-variances so that small variances stay accurate. Arguments broadcast
    against each other.

    Raises:
      ValueError: if the arguments do not broadcast to one shape or are not numbers.
    """
    check_broadcast(mean1=mean1, logvar1=logvar1, mean2=mean2, logvar2=logvar2)
    for name, value in (("mean1", mean1), ("logvar1", logvar1), ("mean2", mean2), ("logvar2", logvar2)):
        check_array(name, value)
    return 0.5 * (logvar2 - logvar1 + jnp.exp(logvar1 - logvar2) + (mean1 - mean2) ** 2 * jnp.exp(-logvar2) - 1.0)


def _std_normal_cdf(x):
    return 0.5 * (1.0 + jax.scipy.special.erf(x / jnp.sqrt(2.0)))


def discretized_gaussian_log_likelihood(x: jax.Array, mean: jax.Array, log_scale: jax.Array) -> jax.Array:
    r"""Elementwise log-probability of 8-bit data under the discretized Gaussian decoder :math:`L_0`.

    Data scaled to [-1, 1] take 256 values; each owns a bin of width 2/255. The probability
    of a value is the Gaussian mass :math:`\mathcal N(\text{mean}, e^{2\,\text{log\_scale}})`
    in its bin, with the outermost bins extended to :math:`\pm\infty` (Ho et al., eq. 13).

    Args:
      x: data on the grid ``{-1, -1 + 2/255, ..., 1}``.
      mean: decoder mean, broadcastable to ``x``.
      log_scale: log standard deviation, broadcastable to ``x``.

    Returns:
      Log-probabilities in nats, shaped like ``x``.

    Raises:
      ValueError: if ``mean`` or ``log_scale`` does not broadcast to the shape of ``x``, or a
        concrete ``x`` has a value outside [-1, 1] (the decoder's bins cover only that range).
    """
    shape = check_broadcast(x=x, mean=mean, log_scale=log_scale)
    if shape != tuple(np.shape(x)):
        raise ValueError(f"mean and log_scale must broadcast to the shape of x {tuple(np.shape(x))}; "
                         f"got mean {tuple(np.shape(mean))}, log_scale {tuple(np.shape(log_scale))}")
    for name, value in (("x", x), ("mean", mean), ("log_scale", log_scale)):
        check_array(name, value)
    xv = concrete(x)
    if xv is not None and xv.size and not (np.all(np.isfinite(xv)) and np.max(np.abs(xv)) <= 1.0 + 1e-6):
        bad = xv[~(np.abs(xv) <= 1.0 + 1e-6)].ravel()[0]
        raise ValueError(f"x must be data scaled to [-1, 1] (the 256 bins of 8-bit data); got {float(bad)}")
    centred = x - mean
    inv_std = jnp.exp(-log_scale)
    cdf_plus = _std_normal_cdf(inv_std * (centred + 1.0 / 255.0))
    cdf_min = _std_normal_cdf(inv_std * (centred - 1.0 / 255.0))
    log_cdf_plus = jnp.log(jnp.maximum(cdf_plus, 1e-12))
    log_one_minus_cdf_min = jnp.log(jnp.maximum(1.0 - cdf_min, 1e-12))
    log_delta = jnp.log(jnp.maximum(cdf_plus - cdf_min, 1e-12))
    return jnp.where(x < -0.999, log_cdf_plus, jnp.where(x > 0.999, log_one_minus_cdf_min, log_delta))
