r"""How far are generated samples from data? Two-sample statistics, each read against a perfect sampler.

A distance between generated samples and held-out data means little on its own: fresh data
in place of the model is at a positive distance too, from sampling noise alone. Every
statistic here is therefore read against a **floor** or a **band**, the same statistic with
real data in place of the samples, at the same sample sizes.

* :func:`energy_distance` and :func:`sliced_wasserstein`: distances between two samples.
* :func:`reference_band`: the spread of any statistic over fresh data draws, the band a
  perfect sampler lands in. A model is "in the band" or not; a bare ratio is not a verdict.
* :func:`mmd`: the maximum mean discrepancy with a Gaussian kernel whose width is set from
  the data (the median heuristic).
* :func:`precision_recall`: the k-nearest-neighbour precision and recall of Kynkäänniemi
  et al. (2019). Precision falls when samples land off the data's support.
* :func:`frechet_distance`: the distance between Gaussians fitted to two feature sets (FID's).
* :func:`nearest_distances`: each point's distance to its nearest reference point, the
  copying check.

:mod:`ddpm_lib.quality` applies them to the book's data sets (the two moons' arcs, the
digits' classifier). Every function refuses NaN or infinite input with a ``ValueError``.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Callable, Iterable

import jax
import jax.numpy as jnp
import numpy as np

from ddpm_lib._validate import check_positive_int

__all__ = [
    "energy_distance",
    "sliced_wasserstein",
    "Band",
    "reference_band",
    "mmd",
    "precision_recall",
    "frechet_distance",
    "nearest_distances",
]


def _finite(name: str, x, ndim: int | None = None) -> np.ndarray:
    """``x`` as a float64 NumPy array; ``ValueError`` if it holds a NaN or infinity, or has the wrong rank."""
    try:
        a = np.asarray(x, np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be an array of numbers; got {type(x).__name__}") from err
    if ndim is not None and a.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions; got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} must be finite; it holds {int(np.sum(~np.isfinite(a)))} NaN or infinite values")
    return a


def _as_points(name: str, x, min_rows: int = 1) -> np.ndarray:
    """Check a point set ``(n, d)``: finite, ``n >= min_rows``. Images ``(n, h, w)`` are flattened."""
    a = _finite(name, x)
    if a.ndim < 2:
        raise ValueError(f"{name} must be an array of points, shape (n, d); got shape {a.shape}")
    a = a.reshape(a.shape[0], -1)
    if a.shape[0] < min_rows or a.shape[1] < 1:
        raise ValueError(f"{name} must hold at least {min_rows} points of dimension >= 1; got shape {a.shape}")
    return a


def _same_dim(x: np.ndarray, y: np.ndarray, names: str = "x and y") -> None:
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"{names} must have the same dimension; got {x.shape[1]} and {y.shape[1]}")


def _block_map(fn: Callable, x: jax.Array, block: int = 512) -> jax.Array:
    """``fn`` applied to row blocks of ``x`` (padded with zeros), concatenated and cut back to ``len(x)``."""
    n = x.shape[0]
    pad = (-n) % block
    xp = jnp.concatenate([x, jnp.zeros((pad, *x.shape[1:]), x.dtype)]).reshape(-1, block, *x.shape[1:])
    out = jax.lax.map(fn, xp)
    return out.reshape(-1, *out.shape[2:])[:n]


def _pairwise(xb: jax.Array, y: jax.Array) -> jax.Array:
    return jnp.sqrt(jnp.maximum(jnp.sum((xb[:, None, :] - y[None, :, :]) ** 2, axis=-1), 0.0))


@jax.jit
def _mean_pairwise_distance(x: jax.Array, y: jax.Array) -> jax.Array:
    """Mean of ``||x_i - y_j||`` over all pairs, in row blocks so memory stays small."""
    return jnp.mean(_block_map(lambda xb: jnp.mean(_pairwise(xb, y), axis=1), x))


def energy_distance(x, y) -> float:
    r"""The (squared) energy distance between two samples, as a V-statistic (Székely and Rizzo).

    .. math:: \mathcal E(X, Y) = \frac{2}{nm}\sum_{i,j}\lVert x_i - y_j\rVert
              - \frac{1}{n^2}\sum_{i,i'}\lVert x_i - x_{i'}\rVert
              - \frac{1}{m^2}\sum_{j,j'}\lVert y_j - y_{j'}\rVert

    All pairs are averaged, the zero diagonal included, so the value is never negative. For
    two independent samples of *one* distribution its expectation is
    :math:`\mathbb E\lVert X - X'\rVert\,(1/n + 1/m)`, not zero: read it against
    :func:`reference_band`.

    Args:
      x: points ``(n, d)``.
      y: points ``(m, d)``.

    Returns:
      A Python float.

    Raises:
      ValueError: if an array is not ``(n, d)``, holds a NaN or infinity, or the two differ in ``d``.
    """
    x, y = _as_points("x", x), _as_points("y", y)
    _same_dim(x, y)
    x, y = jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32)
    e = 2.0 * _mean_pairwise_distance(x, y) - _mean_pairwise_distance(x, x) - _mean_pairwise_distance(y, y)
    return float(e)


def sliced_wasserstein(x, y, *, num_projections: int = 128, key: jax.Array | None = None) -> float:
    r"""The sliced 1-Wasserstein distance: :math:`\frac1K\sum_k W_1(\langle x, u_k\rangle, \langle y, u_k\rangle)`.

    In 2-D the directions :math:`u_k` are ``num_projections`` evenly spaced angles in
    :math:`[0, \pi)` (no randomness); in higher dimension they are drawn from ``key``.
    Each 1-D distance compares sorted projections, so the two samples must be equally large.

    Raises:
      ValueError: if the shapes differ or hold a NaN, ``num_projections`` is not a positive
        integer, or ``d > 2`` and ``key`` is missing.
    """
    x, y = _as_points("x", x), _as_points("y", y)
    if x.shape != y.shape:
        raise ValueError(f"x and y must have the same shape; got {x.shape} and {y.shape}")
    num_projections = check_positive_int("num_projections", num_projections)
    d = x.shape[1]
    if d == 1:
        u = np.ones((1, 1))
    elif d == 2:
        angles = np.pi * np.arange(num_projections) / num_projections
        u = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    else:
        if key is None:
            raise ValueError(f"key must be a jax.random.key in more than 2 dimensions (d = {d}); got None")
        u = np.asarray(jax.random.normal(key, (num_projections, d)), np.float64)
        u = u / np.linalg.norm(u, axis=1, keepdims=True)
    px, py = np.sort(x @ u.T, axis=0), np.sort(y @ u.T, axis=0)
    return float(np.mean(np.abs(px - py)))


@dataclasses.dataclass(frozen=True)
class Band:
    """The values a statistic takes on fresh data draws, and their central ``level`` interval.

    Attributes:
      values: the statistic on each of the ``K`` draws, a NumPy array.
      low: the empirical ``(1 - level) / 2`` quantile.
      high: the empirical ``(1 + level) / 2`` quantile.
      level: the coverage of the band, e.g. 0.95.
    """

    values: np.ndarray
    low: float
    high: float
    level: float

    def contains(self, value: float) -> bool:
        """Whether ``value`` lies inside ``[low, high]``."""
        return bool(self.low <= float(value) <= self.high)


def reference_band(statistic: Callable, samples: Iterable, *, level: float = 0.95) -> Band:
    r"""The band a perfect sampler lands in: ``statistic`` applied to each of ``K`` fresh data draws.

    A model's value of the same statistic (same sample size, same held-out set) inside the
    band cannot be told apart from fresh data by that statistic. The band's ends are the
    empirical quantiles at :math:`(1 \mp \text{level})/2` (NumPy's linear interpolation),
    so with ``K`` draws a perfect sampler falls outside about :math:`1 - \text{level}` of
    the time, plus the error of quantiles estimated from ``K`` values (use ``K >= 20``).

    Args:
      statistic: a function of one sample returning a number, e.g.
        ``lambda s: energy_distance(s, held_out)``.
      samples: an iterable of ``K >= 2`` fresh data samples, each drawn exactly as the model's.
      level: the coverage, in (0, 1).

    Returns:
      A :class:`Band`.

    Raises:
      ValueError: for a ``level`` outside (0, 1), fewer than two samples, or a non-finite value.
    """
    if isinstance(level, bool) or not (isinstance(level, (int, float, np.floating)) and 0.0 < level < 1.0):
        raise ValueError(f"level must lie in (0, 1); got {level!r}")
    if not callable(statistic):
        raise ValueError(f"statistic must be a function of one sample; got {type(statistic).__name__}")
    values = _finite("the statistic's values", [float(statistic(s)) for s in samples])
    if values.size < 2:
        raise ValueError(f"samples must hold at least 2 draws; got {values.size}")
    low, high = np.quantile(values, [(1.0 - level) / 2.0, (1.0 + level) / 2.0])
    return Band(values=values, low=float(low), high=float(high), level=float(level))


def _median_bandwidth(x: np.ndarray, y: np.ndarray, max_points: int = 1000) -> float:
    z = np.concatenate([x[:max_points], y[:max_points]])
    d = np.sqrt(np.maximum(np.sum((z[:, None] - z[None]) ** 2, axis=-1), 0.0))
    med = float(np.median(d[np.triu_indices(len(z), 1)]))
    if not med > 0.0:
        raise ValueError("bandwidth must be given: the median distance between the points is 0 (all equal)")
    return med


@jax.jit
def _kernel_sum(x: jax.Array, y: jax.Array, h: jax.Array) -> jax.Array:
    return jnp.sum(_block_map(lambda xb: jnp.sum(jnp.exp(-_pairwise(xb, y) ** 2 / (2 * h * h)), axis=1), x))


def mmd(x, y, *, bandwidth: float | None = None) -> float:
    r"""The squared maximum mean discrepancy with a Gaussian kernel, unbiased estimate (Gretton et al. 2012).

    .. math::
       k(a, b) = e^{-\lVert a - b\rVert^2 / 2h^2}, \qquad
       \widehat{\mathrm{MMD}}^2 = \frac{\sum_{i\ne i'} k(x_i, x_{i'})}{n(n-1)}
       + \frac{\sum_{j\ne j'} k(y_j, y_{j'})}{m(m-1)} - \frac{2\sum_{i,j} k(x_i, y_j)}{nm}.

    Its expectation is zero when the two distributions are equal (so it can be negative).
    By default the width :math:`h` is the median distance between points of the pooled
    sample (at most the first 1000 of each), which puts the kernel at the scale of the data.

    Args:
      x: points ``(n, d)``, ``n >= 2``.
      y: points ``(m, d)``, ``m >= 2``.
      bandwidth: the kernel width :math:`h > 0`, or ``None`` for the median heuristic.

    Returns:
      A Python float.

    Raises:
      ValueError: for bad or non-finite points, or a non-positive bandwidth.
    """
    x, y = _as_points("x", x, 2), _as_points("y", y, 2)
    _same_dim(x, y)
    if bandwidth is None:
        bandwidth = _median_bandwidth(x, y)
    elif not (np.isfinite(bandwidth) and bandwidth > 0):
        raise ValueError(f"bandwidth must be a finite number > 0 or None; got {bandwidth!r}")
    n, m = len(x), len(y)
    h = jnp.float32(bandwidth)
    xj, yj = jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32)
    kxx, kyy, kxy = (float(_kernel_sum(a, b, h)) for a, b in ((xj, xj), (yj, yj), (xj, yj)))
    return (kxx - n) / (n * (n - 1)) + (kyy - m) / (m * (m - 1)) - 2.0 * kxy / (n * m)


@functools.partial(jax.jit, static_argnames="k")
def _kth_neighbour(x: jax.Array, k: int) -> jax.Array:
    """The distance of each point of ``x`` to its ``k``-th nearest *other* point of ``x``."""
    return _block_map(lambda xb: -jax.lax.top_k(-_pairwise(xb, x), k + 1)[0][:, k], x)


@jax.jit
def _inside_any_ball(q: jax.Array, centres: jax.Array, radii: jax.Array) -> jax.Array:
    return _block_map(lambda qb: jnp.any(_pairwise(qb, centres) <= radii[None, :], axis=1), q)


def precision_recall(real, generated, *, k: int = 3) -> tuple[float, float]:
    r"""Improved precision and recall (Kynkäänniemi et al. 2019) with k-nearest-neighbour balls.

    Around every real point put a ball whose radius is its distance to its ``k``-th nearest
    other real point; the union approximates the data's support. **Precision** is the share
    of generated points inside that union (low when samples fall off the support); **recall**
    is the share of real points inside the union of the same balls built on the generated
    points (low when the model misses part of the data).

    Args:
      real: points ``(n, d)``, ``n > k``.
      generated: points ``(m, d)``, ``m > k``.
      k: the neighbour that sets each radius.

    Returns:
      ``(precision, recall)``, two Python floats in [0, 1].

    Raises:
      ValueError: for bad or non-finite points, or ``k`` not a positive integer below both sizes.
    """
    k = check_positive_int("k", k)
    real, gen = _as_points("real", real, k + 1), _as_points("generated", generated, k + 1)
    _same_dim(real, gen, "real and generated")
    r, g = jnp.asarray(real, jnp.float32), jnp.asarray(gen, jnp.float32)
    precision = float(jnp.mean(_inside_any_ball(g, r, _kth_neighbour(r, k))))
    recall = float(jnp.mean(_inside_any_ball(r, g, _kth_neighbour(g, k))))
    return precision, recall


def frechet_distance(a, b) -> float:
    r"""The Fréchet distance between Gaussians fitted to two feature sets (as in FID).

    .. math:: d^2 = \lVert\mu_a - \mu_b\rVert^2 + \operatorname{tr}\big(\Sigma_a + \Sigma_b
              - 2\,(\Sigma_a^{1/2}\Sigma_b\Sigma_a^{1/2})^{1/2}\big),

    with sample means and covariances (denominator ``n - 1``), in float64. It is the squared
    2-Wasserstein distance between the two Gaussians. Like every two-sample distance it is
    biased upwards by sampling noise, by an amount that depends on the sample sizes: compare
    only values computed at equal sizes.

    Args:
      a: features ``(n, d)``, ``n >= 2``.
      b: features ``(m, d)``, ``m >= 2``.

    Returns:
      A Python float >= 0 (up to round-off).

    Raises:
      ValueError: for non-finite features, fewer than 2 rows, or different ``d``.
    """
    a, b = _as_points("a", a, 2), _as_points("b", b, 2)
    _same_dim(a, b, "a and b")
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    w, v = np.linalg.eigh(cov_a)
    root_a = (v * np.sqrt(np.maximum(w, 0.0))) @ v.T
    cross = np.linalg.eigvalsh(root_a @ cov_b @ root_a)
    tr_sqrt = np.sum(np.sqrt(np.maximum(cross, 0.0)))
    return float(np.sum((mu_a - mu_b) ** 2) + np.trace(cov_a) + np.trace(cov_b) - 2.0 * tr_sqrt)


def nearest_distances(x, reference) -> np.ndarray:
    r"""Each row's Euclidean distance to its nearest row of ``reference``: :math:`\min_j \lVert x_i - r_j\rVert`.

    Images are flattened. Applied to generated digits with the training set as ``reference``,
    and compared with the same for held-out test digits, it is the copying check: a model
    that memorises its training images sits much closer to them than new digits do.

    Args:
      x: ``(n, ...)`` points or images.
      reference: ``(m, ...)`` of the same trailing shape.

    Returns:
      A float64 NumPy array ``(n,)``.

    Raises:
      ValueError: for non-finite input or different trailing shapes.
    """
    xs, rs = _as_points("x", x), _as_points("reference", reference)
    _same_dim(xs, rs, "x and reference")
    xj, rj = jnp.asarray(xs, jnp.float32), jnp.asarray(rs, jnp.float32)
    return np.asarray(_nearest(xj, rj), np.float64)


@jax.jit
def _nearest(x: jax.Array, r: jax.Array) -> jax.Array:
    return _block_map(lambda xb: jnp.min(_pairwise(xb, r), axis=1), x)


def __getattr__(name: str):
    # digit_classifier and confident_fraction lived here before ddpm_lib.quality existed.
    if name in ("digit_classifier", "confident_fraction"):
        from ddpm_lib import quality

        return getattr(quality, name)
    raise AttributeError(f"module 'ddpm_lib.metrics' has no attribute {name!r}")
