"""Small data sets that need no download: generated in code or shipped by a package.

* :func:`single_dot` and :func:`single_dot_dataset`: the homework's 3x3 "single dot" image;
* :func:`two_moons` and :func:`gaussian_mixture`: 2-D toy sets drawn from a ``jax.random`` key;
* :func:`digits`: scikit-learn's 8x8 handwritten digits (they ship inside scikit-learn),
  scaled to [-1, 1], with a seeded train/test split.

Every generator takes a key or a seed, so the same call returns the same data.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ddpm_lib._validate import check_positive_int

__all__ = ["single_dot", "single_dot_dataset", "two_moons", "gaussian_mixture", "digits"]


def single_dot(size: int = 3, row: int | None = None, col: int | None = None) -> jnp.ndarray:
    """A ``size x size`` image of zeros with a single 1, the homework's "single dot image".

    By default the dot sits in the centre; ``row`` and ``col`` move it.

    Raises:
      ValueError: if ``size < 1`` or the dot falls outside the image.
    """
    if size < 1:
        raise ValueError(f"size must be >= 1; got {size}")
    r = size // 2 if row is None else row
    c = size // 2 if col is None else col
    if not (0 <= r < size and 0 <= c < size):
        raise ValueError(f"row and col must lie in 0..{size - 1}; got ({r}, {c})")
    return jnp.zeros((size, size), jnp.float32).at[r, c].set(1.0)


def single_dot_dataset(n: int = 100, size: int = 3) -> jnp.ndarray:
    """The homework's training set: ``n`` identical copies of :func:`single_dot`, shape ``(n, size, size)``.

    Raises:
      ValueError: if ``n < 1`` or ``size < 1``.
    """
    n = check_positive_int("n", n)
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
      ValueError: if ``n < 1`` or ``noise < 0``.
    """
    n = check_positive_int("n", n)
    if not (np.isfinite(noise) and noise >= 0):
        raise ValueError(f"noise must be a finite number >= 0; got {noise!r}")
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
      ValueError: if ``n`` or ``num_modes`` is not a positive integer, or ``std <= 0``.
    """
    n = check_positive_int("n", n)
    num_modes = check_positive_int("num_modes", num_modes)
    if not (np.isfinite(std) and std > 0):
        raise ValueError(f"std must be a finite number > 0; got {std!r}")
    if not (np.isfinite(radius) and radius >= 0):
        raise ValueError(f"radius must be a finite number >= 0; got {radius!r}")
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
      ValueError: for an unknown ``split`` or a ``test_fraction`` outside (0, 1).
    """
    if split not in ("all", "train", "test"):
        raise ValueError(f"split must be 'all', 'train' or 'test'; got {split!r}")
    if not (0.0 < test_fraction < 1.0):
        raise ValueError(f"test_fraction must lie in (0, 1); got {test_fraction!r}")
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
