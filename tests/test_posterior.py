"""The posterior q(x_{t-1} | x_t, x_0) against Gaussian conditioning of the joint."""

import jax.numpy as jnp
import numpy as np
import pytest

from ddpm_lib import posterior, schedules


def conditional_by_covariances(betas, t):
    """Independent route: the joint of (x_{t-1}, x_t) given x_0, conditioned with Schur complements.

    Given x_0, x_{t-1} = a x_0 + u and x_t = sqrt(alpha_t) x_{t-1} + sqrt(beta_t) e, with
    u ~ N(0, 1 - abar_{t-1}) and e ~ N(0, 1). Per coordinate the joint covariance is
    [[v, sqrt(alpha_t) v], [sqrt(alpha_t) v, alpha_t v + beta_t]] with v = 1 - abar_{t-1}.
    Returns (gain on x_t, coefficient on x_0, conditional variance).
    """
    b = np.asarray(betas, np.float64)
    ab = np.cumprod(1 - b)
    ab_prev = ab[t - 2] if t >= 2 else 1.0
    v = 1.0 - ab_prev
    a_t = 1.0 - b[t - 1]
    mean_prev = np.sqrt(ab_prev)  # E[x_{t-1} | x_0] = sqrt(abar_{t-1}) x_0
    mean_t = np.sqrt(ab[t - 1])   # E[x_t | x_0]
    cov = np.array([[v, np.sqrt(a_t) * v], [np.sqrt(a_t) * v, a_t * v + b[t - 1]]])
    gain = cov[0, 1] / cov[1, 1]
    cond_var = cov[0, 0] - cov[0, 1] ** 2 / cov[1, 1]
    # E[x_{t-1} | x_t, x_0] = mean_prev x0 + gain (x_t - mean_t x0)
    return gain, mean_prev - gain * mean_t, cond_var


@pytest.mark.parametrize("betas", [[0.1, 0.2, 0.5], list(np.linspace(1e-4, 0.02, 300)), [0.3] * 7])
def test_posterior_matches_gaussian_conditioning(betas):
    s = schedules.from_betas(betas)
    rng = np.random.default_rng(2)
    x0 = rng.normal(size=6).astype(np.float32)
    xt = rng.normal(size=6).astype(np.float32)
    for t in sorted({1, 2, len(betas) // 2 + 1, len(betas)}):
        gain, c0, var = conditional_by_covariances(betas, t)
        mean, post_var, _ = posterior.posterior_mean_variance(s, jnp.asarray(x0), jnp.asarray(xt), t)
        np.testing.assert_allclose(np.asarray(mean), c0 * x0 + gain * xt, rtol=2e-5, atol=2e-6)
        assert float(post_var) == pytest.approx(var, rel=2e-5, abs=1e-9)


def test_x_t_coefficient_is_sqrt_alpha_t_not_sqrt_alpha_bar_t():
    """The homework's eq. (10) has sqrt(abar_t); conditioning says sqrt(alpha_t)."""
    betas = [0.1, 0.2, 0.5]
    s = schedules.from_betas(betas)
    gain, _, _ = conditional_by_covariances(betas, 3)
    ab = np.cumprod(1 - np.array(betas))
    right = np.sqrt(1 - betas[2]) * (1 - ab[1]) / (1 - ab[2])
    wrong = np.sqrt(ab[2]) * (1 - ab[1]) / (1 - ab[2])
    assert gain == pytest.approx(right) and abs(gain - wrong) > 0.04
    assert float(s.posterior_mean_coef_xt[3]) == pytest.approx(right, rel=1e-6)


def test_posterior_at_beta_zero_is_the_point_mass_at_x0():
    s = schedules.constant(3, 0.0)
    x0 = jnp.array([1.0, 2.0])
    mean, var, logvar = posterior.posterior_mean_variance(s, x0, x0, 2)
    np.testing.assert_array_equal(np.asarray(mean), np.asarray(x0))
    assert float(var) == 0.0 and np.isfinite(float(logvar))


def test_posterior_at_beta_one_is_the_prior_given_x0():
    s = schedules.from_betas([0.2, 1.0])
    x0 = jnp.array([1.0, -1.0])
    xt = jnp.array([5.0, 7.0])  # carries no information about x_1
    mean, var, _ = posterior.posterior_mean_variance(s, x0, xt, 2)
    np.testing.assert_allclose(np.asarray(mean), np.sqrt(0.8) * np.asarray(x0), rtol=1e-6)
    assert float(var) == pytest.approx(0.2, rel=1e-6)


def test_posterior_rejects_bad_t_and_shapes():
    s = schedules.linear(10)
    with pytest.raises(ValueError, match=r"1\.\.10"):
        posterior.posterior_mean(s, jnp.zeros(2), jnp.zeros(2), 11)
    with pytest.raises(ValueError, match="shapes"):
        posterior.posterior_mean(s, jnp.zeros(2), jnp.zeros(3), 1)
