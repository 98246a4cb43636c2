"""The data sets: shapes, ranges, determinism under a seed, the geometry of the toy sets, bad inputs."""

import jax
import numpy as np
import pytest

from ddpm_lib import data


def test_single_dot_dataset():
    x = data.single_dot_dataset(100)
    assert x.shape == (100, 3, 3)
    expected = np.zeros((3, 3))
    expected[1, 1] = 1.0
    np.testing.assert_array_equal(np.asarray(x), np.broadcast_to(expected, (100, 3, 3)))
    assert data.single_dot_dataset(2, size=5).shape == (2, 5, 5)
    with pytest.raises(ValueError, match="n must be"):
        data.single_dot_dataset(0)
    with pytest.raises(ValueError, match="row and col"):
        data.single_dot(3, row=3)


def test_two_moons_geometry_and_seed():
    key = jax.random.key(0)
    x = np.asarray(data.two_moons(key, 4000, noise=0.0), np.float64)
    assert x.shape == (4000, 2)
    np.testing.assert_array_equal(x, np.asarray(data.two_moons(key, 4000, noise=0.0)))
    assert not np.array_equal(x, np.asarray(data.two_moons(jax.random.key(1), 4000, noise=0.0)))
    # Undo the standardization: every point lies on one of the two unit half circles.
    raw = x * 0.87 + np.array([0.5, 0.25])
    on_upper = np.abs(np.hypot(raw[:, 0], raw[:, 1]) - 1) < 1e-4
    on_lower = np.abs(np.hypot(raw[:, 0] - 1, raw[:, 1] - 0.5) - 1) < 1e-4
    assert np.all(on_upper | on_lower)
    # Centred; the horizontal spread is 1 (see the docstring), the vertical about 0.57.
    noisy = np.asarray(data.two_moons(key, 40_000, noise=0.05), np.float64)
    np.testing.assert_allclose(noisy.mean(0), [0, 0], atol=0.02)
    np.testing.assert_allclose(noisy.std(0), [1.0, 0.57], atol=0.02)
    with pytest.raises(ValueError, match="noise"):
        data.two_moons(key, 10, noise=-0.1)
    with pytest.raises(ValueError, match="n must be"):
        data.two_moons(key, 0)


def test_gaussian_mixture_modes():
    x = np.asarray(data.gaussian_mixture(jax.random.key(2), 16_000, num_modes=4, radius=3.0, std=0.1), np.float64)
    assert x.shape == (16_000, 2)
    means = 3.0 * np.array([[1, 0], [0, 1], [-1, 0], [0, -1]])
    nearest = np.argmin(((x[:, None] - means[None]) ** 2).sum(-1), axis=1)
    counts = np.bincount(nearest, minlength=4) / len(x)
    np.testing.assert_allclose(counts, 0.25, atol=0.02)  # equal weights (s.e. about 0.0034)
    resid = x - means[nearest]
    np.testing.assert_allclose(resid.std(0), [0.1, 0.1], rtol=0.05)
    with pytest.raises(ValueError, match="std"):
        data.gaussian_mixture(jax.random.key(0), 10, std=0.0)
    with pytest.raises(ValueError, match="num_modes"):
        data.gaussian_mixture(jax.random.key(0), 10, num_modes=0)


def test_digits_scaling_and_splits():
    images, labels = data.digits()
    assert images.shape == (1797, 8, 8) and labels.shape == (1797,)
    x = np.asarray(images)
    assert x.min() == -1.0 and x.max() == 1.0
    np.testing.assert_array_equal((x + 1) * 8, np.round((x + 1) * 8))  # the 17 grey levels 0..16
    assert set(np.unique(np.asarray(labels))) == set(range(10))
    train_x, train_y = data.digits("train", seed=3)
    test_x, test_y = data.digits("test", seed=3)
    assert len(train_x) + len(test_x) == 1797 and len(test_x) == round(0.2 * 1797)
    # The two splits partition the data set: their rows, pooled, are the rows of the whole.
    pooled = np.concatenate([np.asarray(train_x), np.asarray(test_x)]).reshape(1797, -1)
    key = lambda a: np.lexsort(a.T[::-1])  # noqa: E731
    np.testing.assert_array_equal(pooled[key(pooled)], x.reshape(1797, -1)[key(x.reshape(1797, -1))])
    np.testing.assert_array_equal(np.asarray(data.digits("test", seed=3)[1]), np.asarray(test_y))
    assert not np.array_equal(np.asarray(data.digits("test", seed=4)[1]), np.asarray(test_y))
    with pytest.raises(ValueError, match="split"):
        data.digits("validation")
    with pytest.raises(ValueError, match="test_fraction"):
        data.digits("train", test_fraction=1.0)
