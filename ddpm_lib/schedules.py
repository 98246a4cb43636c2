r"""Variance schedules :math:`\beta_1, \dots, \beta_T` and every quantity derived from them.

**Index convention.** Every array of a :class:`Schedule` has ``T + 1`` entries and is indexed by the book's
``t``: entry ``t`` is the quantity at step ``t`` for ``t = 1..T``, and entry ``0`` means
"no noise yet" (:math:`\beta_0 = 0`, :math:`\bar\alpha_0 = 1`). So
``schedule.alpha_bars[t]`` *is* :math:`\bar\alpha_t`, with no shift by one anywhere.

Arrays are computed in float64 with NumPy and stored as float32 ``jax.Array`` leaves, so a
schedule can be passed through ``jax.jit`` like any other pytree.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np

from ddpm_lib._validate import check_beta, check_int, check_real, check_t

__all__ = ["Schedule", "from_betas", "linear", "cosine", "constant"]

# Floor used in place of log(0) for a posterior variance that is exactly zero.
_LOG_FLOOR = math.log(1e-20)


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Schedule:
    r"""A variance schedule and its derived arrays, each of length ``T + 1``.

    Attributes:
      betas: :math:`\beta_t`, the forward noise variance of step ``t`` (eq. 1); ``betas[0] = 0``.
      alphas: :math:`\alpha_t = 1 - \beta_t`.
      alpha_bars: :math:`\bar\alpha_t = \prod_{s \le t} \alpha_s`; ``alpha_bars[0] = 1``.
      sqrt_alpha_bars: :math:`\sqrt{\bar\alpha_t}`, the signal scale of :math:`q(x_t \mid x_0)`.
      sqrt_one_minus_alpha_bars: :math:`\sqrt{1 - \bar\alpha_t}`, its noise scale.
      posterior_variances: :math:`\tilde\beta_t = \frac{1 - \bar\alpha_{t-1}}{1 - \bar\alpha_t}\beta_t`
        (eq. 10); entry 0 is 0. Where :math:`1 - \bar\alpha_t = 0` (no noise has been added
        by step ``t``) the posterior is a point mass and the entry is 0.
      posterior_log_variances_clipped: :math:`\log\tilde\beta_t`, with the value at ``t = 1``
        (where :math:`\tilde\beta_1 = 0`) replaced by :math:`\log\tilde\beta_2`, as in the
        paper's code; exact zeros elsewhere become ``log(1e-20)`` instead of ``-inf``.
      posterior_mean_coef_x0: coefficient of :math:`x_0` in :math:`\tilde\mu_t` (eq. 10),
        :math:`\sqrt{\bar\alpha_{t-1}}\,\beta_t / (1 - \bar\alpha_t)`.
      posterior_mean_coef_xt: coefficient of :math:`x_t` in :math:`\tilde\mu_t` (eq. 10),
        :math:`\sqrt{\alpha_t}\,(1 - \bar\alpha_{t-1}) / (1 - \bar\alpha_t)`. Where
        :math:`1 - \bar\alpha_t = 0` the two coefficients are set to 1 and 0: then
        :math:`x_t = x_0` and the posterior mean is :math:`x_0`.
    """

    betas: jax.Array
    alphas: jax.Array
    alpha_bars: jax.Array
    sqrt_alpha_bars: jax.Array
    sqrt_one_minus_alpha_bars: jax.Array
    posterior_variances: jax.Array
    posterior_log_variances_clipped: jax.Array
    posterior_mean_coef_x0: jax.Array
    posterior_mean_coef_xt: jax.Array

    @property
    def T(self) -> int:
        """Number of diffusion steps."""
        return self.betas.shape[0] - 1

    def snr(self) -> jax.Array:
        r"""Signal-to-noise ratio :math:`\bar\alpha_t / (1 - \bar\alpha_t)`, length ``T + 1``.

        Entry 0 (and any step before noise is first added) is ``+inf``. Computed from the
        stored square roots, which were derived in float64, so that :math:`1 - \bar\alpha_t`
        keeps its precision when :math:`\bar\alpha_t` is close to 1.
        """
        return self.sqrt_alpha_bars**2 / self.sqrt_one_minus_alpha_bars**2

    def check_t(self, t, name: str = "t", *, lo: int = 1, scalar: bool = True) -> None:
        """Raise ``ValueError`` unless ``t`` is one integer step in ``lo..T`` (``lo`` is 1 or 0).

        A concrete ``t`` is checked on the host. A traced ``t`` (under ``jax.jit``) has its
        dtype and shape checked; its value only in checked mode (:mod:`ddpm_lib.checking`).
        ``scalar=False`` allows an array of steps.
        """
        check_t(t, self.T, name, lo=lo, scalar=scalar)

    def __repr__(self) -> str:  # short: the arrays can be long
        b = np.asarray(self.betas)[1:]
        return (
            f"Schedule(T={self.T}, beta_1={b[0]:.4g}, beta_T={b[-1]:.4g}, "
            f"alpha_bar_T={float(self.alpha_bars[-1]):.4g})"
        )


def _as_beta_array(betas) -> np.ndarray:
    """Validate a user-supplied list of betas and return it as float64 NumPy."""
    try:
        b = np.asarray(betas, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"betas must be a 1-D sequence of numbers in [0, 1]; got {betas!r}") from err
    if b.ndim != 1:
        raise ValueError(f"betas must be 1-D (one beta per step); got an array of shape {b.shape}")
    if b.size == 0:
        raise ValueError("betas must hold at least one step (T >= 1); got an empty sequence")
    if not np.all(np.isfinite(b)):
        i = int(np.flatnonzero(~np.isfinite(b))[0])
        raise ValueError(f"betas must be finite and lie in [0, 1]; beta_{i + 1} is {float(b[i])}")
    bad = np.flatnonzero((b < 0.0) | (b > 1.0))
    if bad.size:
        i = int(bad[0])
        raise ValueError(f"betas must lie in [0, 1]; beta_{i + 1} = {float(b[i])}")
    return b


def from_betas(betas) -> Schedule:
    r"""Build a :class:`Schedule` from :math:`\beta_1, \dots, \beta_T`.

    Args:
      betas: a 1-D sequence of ``T >= 1`` values in [0, 1], for example the homework's
        ``[0.1, 0.2, 0.5]``. ``beta = 0`` (the step changes nothing) and ``beta = 1``
        (the step replaces the state by pure noise) are both allowed.

    Returns:
      A :class:`Schedule` whose arrays have ``T + 1`` entries, entry 0 meaning "no noise".

    Raises:
      ValueError: if ``betas`` is empty, not 1-D, or holds a value outside [0, 1] or a NaN.
    """
    b = np.concatenate([[0.0], _as_beta_array(betas)])
    a = 1.0 - b
    ab = np.cumprod(a)
    one_minus_ab = 1.0 - ab
    ab_prev = np.concatenate([[1.0], ab[:-1]])
    one_minus_ab_prev = 1.0 - ab_prev

    noisy = one_minus_ab > 0.0  # False exactly when no noise has been added up to step t
    safe = np.where(noisy, one_minus_ab, 1.0)
    post_var = np.where(noisy, one_minus_ab_prev / safe * b, 0.0)
    coef_x0 = np.where(noisy, np.sqrt(ab_prev) * b / safe, 1.0)
    coef_xt = np.where(noisy, np.sqrt(a) * one_minus_ab_prev / safe, 0.0)
    coef_x0[0], coef_xt[0] = 1.0, 0.0

    log_var = np.full_like(post_var, _LOG_FLOOR)
    pos = post_var > 0.0
    log_var[pos] = np.log(post_var[pos])
    if b.size > 2:  # t = 1 has beta_tilde_1 = 0; use beta_tilde_2 there, as the paper does
        log_var[1] = log_var[2]
    elif b[1] > 0.0:  # T = 1: no beta_tilde_2, fall back to beta_1
        log_var[1] = np.log(b[1])

    f32 = lambda x: jnp.asarray(x, dtype=jnp.float32)  # noqa: E731
    return Schedule(
        betas=f32(b),
        alphas=f32(a),
        alpha_bars=f32(ab),
        sqrt_alpha_bars=f32(np.sqrt(ab)),
        sqrt_one_minus_alpha_bars=f32(np.sqrt(one_minus_ab)),
        posterior_variances=f32(post_var),
        posterior_log_variances_clipped=f32(log_var),
        posterior_mean_coef_x0=f32(coef_x0),
        posterior_mean_coef_xt=f32(coef_xt),
    )


def _check_T(T) -> int:
    return check_int("T", T, lo=1)


def linear(T: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> Schedule:
    r"""The paper's linear schedule: :math:`\beta_t` evenly spaced from ``beta_start`` to ``beta_end``.

    Ho et al. (2020) use ``T = 1000``, :math:`\beta_1 = 10^{-4}`, :math:`\beta_T = 0.02`.
    ``T = 1`` gives the single step ``beta_start``.

    Raises:
      ValueError: if ``T`` is not an integer >= 1, or ``beta_start`` or ``beta_end`` is not
        one number in [0, 1].
    """
    T = _check_T(T)
    check_real("beta_start", beta_start, 0.0, 1.0)
    check_real("beta_end", beta_end, 0.0, 1.0)
    return from_betas(np.linspace(beta_start, beta_end, T, dtype=np.float64))


def cosine(T: int = 1000, s: float = 0.008, max_beta: float = 0.999) -> Schedule:
    r"""The cosine schedule of Nichol and Dhariwal (2021).

    .. math::
       \bar\alpha_t = \frac{f(t)}{f(0)}, \qquad
       f(t) = \cos^2\!\Big(\frac{t/T + s}{1 + s}\cdot\frac{\pi}{2}\Big), \qquad
       \beta_t = \min\Big(1 - \frac{\bar\alpha_t}{\bar\alpha_{t-1}},\ \text{max\_beta}\Big).

    The clip at ``max_beta`` keeps :math:`\beta_T` below 1 (without it :math:`\beta_T = 1`).

    Raises:
      ValueError: if ``T`` is not an integer >= 1, ``s`` is not a finite number >= 0, or
        ``max_beta`` is not one number in [0, 1].
    """
    T = _check_T(T)
    s = check_real("s", s, 0.0)
    max_beta = check_real("max_beta", max_beta, 0.0, 1.0)
    steps = np.arange(T + 1, dtype=np.float64) / T
    f = np.cos((steps + s) / (1.0 + s) * np.pi / 2.0) ** 2
    ab = f / f[0]
    betas = np.minimum(1.0 - ab[1:] / ab[:-1], max_beta)
    return from_betas(np.clip(betas, 0.0, 1.0))


def constant(T: int, beta: float) -> Schedule:
    r"""The same :math:`\beta` at every one of ``T`` steps.

    ``beta = 0`` leaves the data unchanged; ``beta = 1`` makes :math:`x_1` pure noise.

    Raises:
      ValueError: if ``T`` is not an integer >= 1 or ``beta`` is not one number in [0, 1].
    """
    T = _check_T(T)
    check_beta(beta, "beta", scalar=True)
    return from_betas(np.full(T, beta, dtype=np.float64))
