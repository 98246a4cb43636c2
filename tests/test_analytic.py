"""Closed forms for Gaussian data against Monte Carlo and direct regression."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ddpm_lib import analytic, forward, schedules


def test_marginal_matches_monte_carlo():
    s = schedules.linear(100)
    m, s2 = 1.5, 0.25
    n = 50000
    k0, k1 = jax.random.split(jax.random.key(0))
    x0 = m + np.sqrt(s2) * jax.random.normal(k0, (n,))
    eps = jax.random.normal(k1, (n,))
    for t in (1, 30, 100):
        xt = np.asarray(forward.q_sample(s, x0, t, eps), np.float64)
        mean, var = analytic.marginal_mean_var(s, t, m, s2)
        assert abs(xt.mean() - float(mean)) < 4 * np.sqrt(float(var) / n)
        assert abs(xt.var() - float(var)) < 4 * float(var) * np.sqrt(2 / n)


def test_optimal_eps_is_the_least_squares_regression_of_eps_on_xt():
    """E[eps | x_t] is linear for Gaussian data; fit it by least squares on samples."""
    s = schedules.cosine(50)
    m, s2 = -0.5, 2.0
    rng = np.random.default_rng(1)
    n = 200000
    x0 = m + np.sqrt(s2) * rng.normal(size=n)
    eps = rng.normal(size=n)
    for t in (5, 25, 45):
        ab = float(s.alpha_bars[t])
        xt = np.sqrt(ab) * x0 + np.sqrt(1 - ab) * eps
        A = np.stack([xt, np.ones(n)], 1)
        slope, icpt = np.linalg.lstsq(A, eps, rcond=None)[0]
        probe = np.array([-1.0, 0.0, 2.0])
        fitted = slope * probe + icpt
        exact = np.asarray(analytic.optimal_eps(s, jnp.asarray(probe, jnp.float32), t, m, s2))
        np.testing.assert_allclose(exact, fitted, atol=0.02)


def test_reverse_conditional_matches_bayes_on_a_grid():
    """q(x_{t-1} | x_t) from numerical Bayes: prior q(x_{t-1}) times likelihood q(x_t | x_{t-1})."""
    s = schedules.from_betas([0.2, 0.3, 0.4])
    m, s2, t, xt = 0.7, 0.5, 2, 0.4
    grid = np.linspace(-8, 8, 200001)
    mp, vp = (float(v) for v in analytic.marginal_mean_var(s, t - 1, m, s2))
    a_t = float(s.alphas[t])
    logw = -0.5 * (grid - mp) ** 2 / vp - 0.5 * (xt - np.sqrt(a_t) * grid) ** 2 / (1 - a_t)
    w = np.exp(logw - logw.max())
    w /= w.sum()
    mean_num = np.sum(w * grid)
    var_num = np.sum(w * (grid - mean_num) ** 2)
    mean, var = analytic.reverse_conditional(s, jnp.float32(xt), t, m, s2)
    assert float(mean) == pytest.approx(mean_num, abs=1e-5)
    assert float(var) == pytest.approx(var_num, rel=1e-4)


def test_log_likelihood_matches_numpy():
    x = np.array([0.1, -2.0, 3.0])
    expected = np.sum(-0.5 * np.log(2 * np.pi * 0.3) - (x - 1.0) ** 2 / (2 * 0.3))
    assert float(analytic.log_likelihood(jnp.asarray(x), 1.0, 0.3)) == pytest.approx(expected, rel=1e-6)
    with pytest.raises(ValueError, match="s2"):
        analytic.log_likelihood(jnp.asarray(x), 0.0, -1.0)
    with pytest.raises(ValueError, match=r"1\.\.3"):
        analytic.optimal_eps(schedules.constant(3, 0.1), jnp.zeros(2), 4, 0.0, 1.0)
