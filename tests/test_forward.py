"""The forward process: one-step moments, the closed form, and the chain by Monte Carlo."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ddpm_lib import forward, schedules


def test_compute_mean_and_cov_on_the_homework_cases():
    rng = np.random.default_rng(0)
    for beta in (0.1, 0.2, 0.3, 0.4, 0.5):
        x = rng.normal(size=10).astype(np.float32)
        mean = np.asarray(forward.compute_mean(jnp.asarray(x), beta))
        cov = np.asarray(forward.compute_cov(jnp.asarray(x), beta))
        assert np.mean(np.abs(mean - np.sqrt(1 - beta) * x)) < 1e-6
        np.testing.assert_allclose(cov, beta * np.eye(10), atol=1e-7)


def test_compute_mean_extremes():
    x = jnp.arange(4.0)
    np.testing.assert_array_equal(forward.compute_mean(x, 0.0), x)
    np.testing.assert_array_equal(forward.compute_mean(x, 1.0), jnp.zeros(4))
    np.testing.assert_array_equal(forward.compute_cov(x, 0.0), jnp.zeros((4, 4)))


@pytest.mark.parametrize("beta", [-0.1, 1.01, float("nan")])
def test_compute_mean_and_cov_reject_bad_beta(beta):
    with pytest.raises(ValueError, match="beta"):
        forward.compute_mean(jnp.ones(3), beta)
    with pytest.raises(ValueError, match="beta"):
        forward.compute_cov(jnp.ones(3), beta)


def test_q_sample_matches_the_formula_in_float64():
    s = schedules.linear(100)
    rng = np.random.default_rng(1)
    x0 = rng.normal(size=(5, 7)).astype(np.float32)
    eps = rng.normal(size=(5, 7)).astype(np.float32)
    b = np.linspace(1e-4, 0.02, 100)
    for t in (1, 2, 50, 100):
        ab = np.prod(1 - b[:t])
        expected = np.sqrt(ab) * x0.astype(np.float64) + np.sqrt(1 - ab) * eps
        got = np.asarray(forward.q_sample(s, jnp.asarray(x0), t, jnp.asarray(eps)))
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_q_sample_jit_and_eager_agree():
    s = schedules.cosine(50)
    x0 = jnp.linspace(-1, 1, 12)
    eps = jnp.cos(jnp.arange(12.0))
    eager = forward.q_sample(s, x0, 17, eps)
    jitted = jax.jit(forward.q_sample)(s, x0, 17, eps)
    np.testing.assert_allclose(np.asarray(eager), np.asarray(jitted), rtol=1e-6, atol=1e-7)
    batched = jax.jit(jax.vmap(forward.q_sample, in_axes=(None, None, 0, None)))(s, x0, jnp.array([17, 3]), eps)
    np.testing.assert_allclose(np.asarray(batched[0]), np.asarray(eager), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("t", [0, 101, -1, 2.5])
def test_q_sample_rejects_t_outside_1_to_T(t):
    s = schedules.linear(100)
    with pytest.raises(ValueError, match=r"1\.\.100"):
        forward.q_sample(s, jnp.zeros(3), t, jnp.zeros(3))


def test_q_sample_rejects_mismatched_shapes():
    s = schedules.linear(10)
    with pytest.raises(ValueError, match="x0.*eps"):
        forward.q_sample(s, jnp.zeros((3, 3)), 1, jnp.zeros(9))


def test_chain_moments_match_the_closed_form_by_monte_carlo():
    """Run the Markov chain of eq. (1) over many keys; compare with q(x_t | x_0)."""
    s = schedules.from_betas([0.1, 0.2, 0.5, 0.05, 0.3])
    x0 = jnp.array([1.0, -2.0, 0.5])
    n = 20000
    keys = jax.random.split(jax.random.key(0), n)
    chains = np.asarray(jax.jit(jax.vmap(forward.diffuse, in_axes=(0, None, None)))(keys, x0, s), np.float64)
    assert chains.shape == (n, 6, 3)
    np.testing.assert_array_equal(chains[:, 0], np.broadcast_to(np.asarray(x0), (n, 3)))
    ab = np.cumprod(1 - np.array([0.0, 0.1, 0.2, 0.5, 0.05, 0.3]))
    for t in range(1, 6):
        mean_cf = np.sqrt(ab[t]) * np.asarray(x0)
        var_cf = 1 - ab[t]
        emp_mean = chains[:, t].mean(0)
        emp_var = chains[:, t].var(0, ddof=1)
        se_mean = np.sqrt(var_cf / n)
        se_var = var_cf * np.sqrt(2.0 / (n - 1))  # s.e. of a Gaussian sample variance
        assert np.all(np.abs(emp_mean - mean_cf) < 4 * se_mean), (t, emp_mean, mean_cf)
        assert np.all(np.abs(emp_var - var_cf) < 4 * se_var), (t, emp_var, var_cf)


def test_beta_zero_keeps_x0_exactly_and_beta_one_is_pure_noise():
    x0 = jnp.arange(9.0).reshape(3, 3)
    chain = forward.diffuse(jax.random.key(3), x0, schedules.constant(4, 0.0))
    for t in range(5):
        np.testing.assert_array_equal(np.asarray(chain[t]), np.asarray(x0))
    # beta = 1: x_1 is independent of x_0; its sample mean over many keys is 0 and variance 1
    keys = jax.random.split(jax.random.key(4), 20000)
    x1 = np.asarray(jax.vmap(forward.diffuse, in_axes=(0, None, None))(keys, x0, schedules.constant(1, 1.0))[:, 1])
    assert np.all(np.abs(x1.mean(0)) < 4 / np.sqrt(20000))
    assert np.all(np.abs(x1.var(0) - 1) < 4 * np.sqrt(2 / 20000))
    # and the closed form agrees: q_sample at beta = 1 returns the noise itself
    eps = jnp.ones((3, 3)) * 0.7
    np.testing.assert_allclose(forward.q_sample(schedules.constant(2, 1.0), x0, 1, eps), eps)


def test_forward_step_uses_the_noise_it_is_given():
    x = jnp.array([2.0, -1.0])
    eps = jnp.array([0.5, 0.25])
    np.testing.assert_allclose(forward.forward_step(x, 0.36, eps), 0.8 * x + 0.6 * eps, rtol=1e-6)
    with pytest.raises(ValueError, match="shapes"):
        forward.forward_step(x, 0.1, jnp.ones(3))


def test_q_mean_var_variance_keeps_its_digits_near_t_1():
    # 1 - alpha_bar_1 = beta_1 = 1e-4 on the linear schedule. A float32 "1 - alpha_bar_t"
    # keeps only about three digits of it (relative error 1.7e-4); the float64-derived noise
    # scale squared keeps float32 precision.
    s = schedules.linear(1000)
    betas = np.linspace(1e-4, 0.02, 1000)
    exact = 1.0 - np.cumprod(1.0 - betas)
    for t in (1, 2, 10, 500, 1000):
        _, var = forward.q_mean_var(s, jnp.zeros(3), t)
        assert abs(float(var) - exact[t - 1]) <= 1e-6 * exact[t - 1], t
