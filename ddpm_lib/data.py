"""Small data sets that need no download: generated in code or shipped by a package.

* :func:`single_dot` and :func:`single_dot_dataset`: the homework's 3x3 "single dot" image;
* :func:`two_moons` and :func:`gaussian_mixture`: 2-D toy sets drawn from a ``jax.random`` key;
* :func:`digits`: scikit-learn's 8x8 handwritten digits (they ship inside scikit-learn),
  scaled to [-1, 1], with a seeded train/test split.

Every generator takes a key or a seed, so the same call returns the same data. Bad
arguments raise ``ValueError`` naming them (:ref:`bad-input`); a data set has at
least one example (``n >= 1``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ddpm_lib._validate import check_choice, check_int, check_key, check_positive_int, check_real

__all__ = ["single_dot", "single_dot_dataset", "two_moons", "gaussian_mixture", "digits"]


def single_dot(size: int = 3, row: int | None = None, col: int | None = None) -> jnp.ndarray:
    """A ``size x size`` image of zeros with a single 1, the homework's "single dot image".

    By default the dot sits in the centre; ``row`` and ``col`` move it.

    Raises:
      ValueError: if ``size`` is not an integer >= 1, or ``row`` or ``col`` is not an integer
        in ``0..size - 1``.
    """
    size = check_positive_int("size", size)
    r = size // 2 if row is None else check_int("row", row)
    c = size // 2 if col is None else check_int("col", col)
    if not (0 <= r < size and 0 <= c < size):
        raise ValueError(f"row and col must lie in 0..{size - 1}; got ({r}, {c})")
    return jnp.zeros((size, size), jnp.float32).at[r, c].set(1.0)


def single_dot_dataset(n: int = 100, size: int = 3) -> jnp.ndarray:
    """The homework's training set: ``n`` identical copies of :func:`single_dot`, shape ``(n, size, size)``.

    Raises:
      ValueError: if ``n`` or ``size`` is not an integer >= 1.
    """
    n = check_positive_int("n", n)
    size = check_positive_int("size", size)
    return jnp.broadcast_to(single_dot(size), (n, size, size)).copy()


def two_moons(key: jax.Array, n: int, *, noise: float = 0.05) -> jnp.ndarray:
    r"""Two interleaved half circles in the plane, centred and scaled to unit horizontal spread.

    The upper moon is :math:`(\cos\theta, \sin\theta)`, the lower :math:`(1 - \cos\theta, \tfrac12 - \sin\theta)`
    for :math:`\theta \sim U[0, \pi]`, each point in either with probability 1/2, plus
    Gaussian noise of standard deviation ``noise`` (in the moons' own units). The result
    is shifted by (-0.5, -0.25) and scaled by 1/0.87, so that it has mean about zero and
    the horizontal coordinate unit variance (the vertical one has variance about 0.33).

    Args:
      key: a ``jax.random.key``.
      n: the number of points.
      noise: the standard deviation of the added noise, >= 0.

    Returns:
      An array of shape ``(n, 2)``.

    Raises:
      ValueError: if ``key`` is not one random key, ``n`` is not an integer >= 1 or ``noise``
        is not a finite number >= 0.
    """
    check_key(key)
    n = check_positive_int("n", n)
    noise = check_real("noise", noise, 0.0)
    k_side, k_theta, k_noise = jax.random.split(key, 3)
    lower = jax.random.bernoulli(k_side, 0.5, (n,))
    theta = jax.random.uniform(k_theta, (n,), minval=0.0, maxval=jnp.pi)
    upper_pts = jnp.stack([jnp.cos(theta), jnp.sin(theta)], axis=1)
    lower_pts = jnp.stack([1.0 - jnp.cos(theta), 0.5 - jnp.sin(theta)], axis=1)
    pts = jnp.where(lower[:, None], lower_pts, upper_pts)
    pts = pts + noise * jax.random.normal(k_noise, (n, 2))
    return (pts - jnp.array([0.5, 0.25])) / 0.87


def gaussian_mixture(key: jax.Array, n: int, *, num_modes: int = 8, radius: float = 2.0, std: float = 0.15) -> jnp.ndarray:
    """An equal-weight mixture of ``num_modes`` isotropic Gaussians evenly spaced on a circle.

    Args:
      key: a ``jax.random.key``.
      n: the number of points.
      num_modes: the number of components.
      radius: the radius of the circle of means.
      std: the standard deviation of every component, > 0.

    Returns:
      An array of shape ``(n, 2)``.

    Raises:
      ValueError: if ``key`` is not one random key, ``n`` or ``num_modes`` is not an integer
        >= 1, ``std`` not a finite number > 0 or ``radius`` not
        a finite number >= 0.
    """
    check_key(key)
    n = check_positive_int("n", n)
    num_modes = check_positive_int("num_modes", num_modes)
    std = check_real("std", std, 0.0, lo_open=True)
    radius = check_real("radius", radius, 0.0)
    k_mode, k_noise = jax.random.split(key)
    angles = 2.0 * jnp.pi * jax.random.randint(k_mode, (n,), 0, num_modes) / num_modes
    means = radius * jnp.stack([jnp.cos(angles), jnp.sin(angles)], axis=1)
    return means + std * jax.random.normal(k_noise, (n, 2))


def digits(split: str = "all", *, seed: int = 0, test_fraction: float = 0.2):
    """scikit-learn's 8x8 handwritten digits (1,797 images, no download), scaled to [-1, 1].

    The raw pixels are integers 0..16; they are mapped to ``pixel / 8 - 1``.

    Args:
      split: ``"all"``, ``"train"`` or ``"test"``.
      seed: the seed of the random train/test split.
      test_fraction: the share of images in the test split, in (0, 1).

    Returns:
      ``(images, labels)``: float32 images of shape ``(n, 8, 8)`` and int32 labels ``(n,)``.

    Raises:
      ValueError: for an unknown ``split``, a ``seed`` that is not an integer >= 0, or a
        ``test_fraction`` that is not a number in (0, 1).
    """
    check_choice("split", split, ("all", "train", "test"))
    seed = check_int("seed", seed, lo=0)
    test_fraction = check_real("test_fraction", test_fraction, 0.0, 1.0, lo_open=True, hi_open=True)
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = (bunch.images.astype(np.float32) / 8.0 - 1.0)
    labels = bunch.target.astype(np.int32)
    if split != "all":
        order = np.random.default_rng(seed).permutation(len(labels))
        n_test = int(round(test_fraction * len(labels)))
        idx = order[:n_test] if split == "test" else order[n_test:]
        images, labels = images[idx], labels[idx]
    return jnp.asarray(images), jnp.asarray(labels)
