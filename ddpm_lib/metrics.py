r"""How good are generated samples? Distances between point clouds, and a digit classifier's verdict.

A distance between the generated samples and held-out data means little on its own: two
independent samples *of the data itself* are at a positive distance too, just from sampling
noise. The book therefore always reports the distance next to that **floor**, the same
distance between two independent data samples of the same sizes.

* :func:`energy_distance`: :math:`2\,\mathbb E\lVert X - Y\rVert - \mathbb E\lVert X - X'\rVert - \mathbb E\lVert Y - Y'\rVert`,
  zero exactly when the two distributions are equal (Székely and Rizzo).
* :func:`sliced_wasserstein`: the 1-Wasserstein distance averaged over 1-D projections.
* :func:`digit_classifier` and :func:`confident_fraction`: a scikit-learn classifier trained
  on real digits, and the share of images it labels with high confidence.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["energy_distance", "sliced_wasserstein", "digit_classifier", "confident_fraction"]


def _as_points(name: str, x) -> jax.Array:
    x = jnp.asarray(x, jnp.float32)
    if x.ndim != 2 or x.shape[0] < 1:
        raise ValueError(f"{name} must be an array of points, shape (n, d) with n >= 1; got {x.shape}")
    return x


def _mean_pairwise_distance(x: jax.Array, y: jax.Array, block: int = 512) -> jax.Array:
    """Mean of ``||x_i - y_j||`` over all pairs, in row blocks so memory stays small."""
    n = x.shape[0]
    pad = (-n) % block
    xp = jnp.concatenate([x, jnp.zeros((pad, x.shape[1]), x.dtype)]).reshape(-1, block, x.shape[1])
    mask = (jnp.arange(n + pad) < n).reshape(-1, block)

    def row_sums(args):
        xb, mb = args
        d = jnp.sqrt(jnp.maximum(jnp.sum((xb[:, None, :] - y[None, :, :]) ** 2, axis=-1), 0.0))
        return jnp.sum(jnp.where(mb[:, None], d, 0.0))

    return jnp.sum(jax.lax.map(row_sums, (xp, mask))) / (n * y.shape[0])


@jax.jit
def _energy(x, y):
    return 2.0 * _mean_pairwise_distance(x, y) - _mean_pairwise_distance(x, x) - _mean_pairwise_distance(y, y)


def energy_distance(x, y) -> float:
    r"""The (squared) energy distance between two samples, as a V-statistic.

    .. math:: \mathcal E(X, Y) = \frac{2}{nm}\sum_{i,j}\lVert x_i - y_j\rVert
              - \frac{1}{n^2}\sum_{i,i'}\lVert x_i - x_{i'}\rVert
              - \frac{1}{m^2}\sum_{j,j'}\lVert y_j - y_{j'}\rVert

    All pairs are averaged, the zero diagonal included, so the value is never negative. For
    two independent samples of *one* distribution its expectation is
    :math:`\mathbb E\lVert X - X'\rVert\,(1/n + 1/m)`, not zero: compare against that floor.

    Args:
      x: points ``(n, d)``.
      y: points ``(m, d)``.

    Returns:
      A Python float.

    Raises:
      ValueError: if the arrays are not 2-D or differ in ``d``.
    """
    x, y = _as_points("x", x), _as_points("y", y)
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"x and y must have the same dimension; got {x.shape[1]} and {y.shape[1]}")
    return float(_energy(x, y))


def sliced_wasserstein(x, y, *, num_projections: int = 128, key: jax.Array | None = None) -> float:
    r"""The sliced 1-Wasserstein distance: :math:`\frac1K\sum_k W_1(\langle x, u_k\rangle, \langle y, u_k\rangle)`.

    In 2-D the directions :math:`u_k` are ``num_projections`` evenly spaced angles in
    :math:`[0, \pi)` (no randomness); in higher dimension they are drawn from ``key``.
    Each 1-D distance compares sorted projections, so the two samples must be equally large.

    Args:
      x: points ``(n, d)``.
      y: points ``(n, d)``.
      num_projections: the number of directions.
      key: a ``jax.random.key``, needed when ``d > 2``.

    Returns:
      A Python float.

    Raises:
      ValueError: if the shapes differ, or ``d > 2`` and ``key`` is missing.
    """
    x, y = _as_points("x", x), _as_points("y", y)
    if x.shape != y.shape:
        raise ValueError(f"x and y must have the same shape; got {x.shape} and {y.shape}")
    if isinstance(num_projections, bool) or not isinstance(num_projections, int) or num_projections < 1:
        raise ValueError(f"num_projections must be a positive integer; got {num_projections!r}")
    d = x.shape[1]
    if d == 1:
        u = jnp.ones((1, 1))
    elif d == 2:
        angles = jnp.pi * jnp.arange(num_projections) / num_projections
        u = jnp.stack([jnp.cos(angles), jnp.sin(angles)], axis=1)
    else:
        if key is None:
            raise ValueError("key is required for sliced_wasserstein in more than 2 dimensions")
        u = jax.random.normal(key, (num_projections, d))
        u = u / jnp.linalg.norm(u, axis=1, keepdims=True)
    px, py = jnp.sort(x @ u.T, axis=0), jnp.sort(y @ u.T, axis=0)
    return float(jnp.mean(jnp.abs(px - py)))


def digit_classifier(images, labels, *, kind: str = "mlp", seed: int = 0):
    """A scikit-learn classifier of 8x8 digit images, trained on real digits.

    Args:
      images: ``(n, 8, 8)`` images in [-1, 1] (as :func:`ddpm_lib.data.digits` returns them).
      labels: ``(n,)`` integer labels 0..9.
      kind: ``"mlp"`` (one hidden layer of 128 units, ``MLPClassifier``) or ``"logistic"``
        (``LogisticRegression``, less confident even on real digits).
      seed: the seed of the classifier's initialization.

    Returns:
      A fitted scikit-learn classifier; pass it to :func:`confident_fraction`, or call its
      ``predict_proba`` on flattened images.

    Raises:
      ValueError: if images and labels disagree in length, or ``kind`` is unknown.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier

    x = np.asarray(images, np.float64).reshape(len(images), -1)
    y = np.asarray(labels)
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"images and labels must have the same length; got {x.shape[0]} and {y.shape[0]}")
    if kind == "mlp":
        clf = MLPClassifier(hidden_layer_sizes=(128,), max_iter=500, random_state=seed)
    elif kind == "logistic":
        clf = LogisticRegression(max_iter=2000, random_state=seed)
    else:
        raise ValueError(f"kind must be 'mlp' or 'logistic'; got {kind!r}")
    return clf.fit(x, y)


def confident_fraction(classifier, images, threshold: float = 0.9):
    """The share of ``images`` that ``classifier`` labels with probability >= ``threshold``.

    Images are clipped to [-1, 1] first (generated images may overshoot the data range).

    Returns:
      ``(fraction, predicted_labels)``: a Python float and an ``(n,)`` NumPy array.

    Raises:
      ValueError: if ``threshold`` is outside [0, 1].
    """
    if not (0.0 <= threshold <= 1.0):
        raise ValueError(f"threshold must lie in [0, 1]; got {threshold!r}")
    x = np.clip(np.asarray(images, np.float64), -1.0, 1.0).reshape(len(images), -1)
    proba = classifier.predict_proba(x)
    return float(np.mean(proba.max(axis=1) >= threshold)), classifier.classes_[proba.argmax(axis=1)]
