"""Losses and parameterizations against independent float64 computations."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ddpm_lib import losses, parameterization, schedules


def _case(seed, D=5, T=8):
    rng = np.random.default_rng(seed)
    betas = rng.uniform(0.01, 0.4, size=T)
    t = int(rng.integers(2, T + 1))
    x0, eps, eps_pred = (rng.normal(size=D) for _ in range(3))
    return betas, t, x0, eps, eps_pred


def _np_terms(betas, t):
    b = np.asarray(betas, np.float64)
    a = 1 - b
    ab = np.cumprod(a)
    return a[t - 1], ab[t - 1], ab[t - 2] if t >= 2 else 1.0, b[t - 1]


@pytest.mark.parametrize("seed", range(10))
def test_mean_loss_equals_weighted_noise_loss_when_mu_comes_from_eq12(seed):
    betas, t, x0, eps, eps_pred = _case(seed)
    s = schedules.from_betas(betas)
    a_t, ab_t, ab_prev, b_t = _np_terms(betas, t)
    xt = np.sqrt(ab_t) * x0 + np.sqrt(1 - ab_t) * eps
    sigma_t = np.sqrt(b_t)
    mu_pred = parameterization.mu_from_eps(s, jnp.asarray(xt, jnp.float32), t, jnp.asarray(eps_pred, jnp.float32))
    alpha_ts = 1 - np.asarray(betas[:t])
    ml = float(losses.mean_loss(sigma_t, alpha_ts, mu_pred, x0.astype(np.float32), xt.astype(np.float32)))
    nl = float(losses.noise_loss(sigma_t, alpha_ts, eps_pred.astype(np.float32), x0.astype(np.float32),
                                 xt.astype(np.float32), eps.astype(np.float32)))
    # independent float64 value of the noise loss
    w = b_t**2 / (2 * sigma_t**2 * a_t * (1 - ab_t))
    expected = w * np.sum((eps - eps_pred) ** 2)
    assert nl == pytest.approx(expected, rel=1e-5)
    assert ml == pytest.approx(expected, rel=2e-3, abs=1e-5)


def test_mean_loss_on_a_hand_computed_case():
    # alpha_ts = [0.9, 0.8]: abar_1 = 0.9, abar_2 = 0.72
    x0 = np.array([1.0, 0.0])
    xt = np.array([0.5, -0.5])
    c0 = np.sqrt(0.9) * 0.2 / 0.28
    ct = np.sqrt(0.8) * 0.1 / 0.28
    mu_tilde = c0 * x0 + ct * xt
    mu_pred = np.array([0.1, 0.2])
    expected = np.sum((mu_tilde - mu_pred) ** 2) / (2 * 0.3**2)
    got = losses.mean_loss(0.3, [0.9, 0.8], jnp.asarray(mu_pred), jnp.asarray(x0), jnp.asarray(xt))
    assert float(got) == pytest.approx(expected, rel=1e-5)


def test_losses_jit_and_eager_agree():
    betas, t, x0, eps, eps_pred = _case(3)
    args = (0.2, jnp.asarray(1 - betas[:t]), jnp.asarray(eps_pred), jnp.asarray(x0), jnp.asarray(x0), jnp.asarray(eps))
    assert float(jax.jit(losses.noise_loss)(*args)) == pytest.approx(float(losses.noise_loss(*args)), rel=1e-6)
    margs = (0.2, jnp.asarray(1 - betas[:t]), jnp.asarray(eps_pred), jnp.asarray(x0), jnp.asarray(eps))
    assert float(jax.jit(losses.mean_loss)(*margs)) == pytest.approx(float(losses.mean_loss(*margs)), rel=1e-6)


def test_beta_zero_step_contributes_nothing_and_alpha_one_is_safe():
    x = jnp.ones(3)
    # every beta zero: x_t = x_0, the posterior mean is x_0, no NaN anywhere
    assert float(losses.noise_loss(1.0, [1.0, 1.0], x, x, x, 2 * x)) == 0.0
    assert float(losses.mean_loss(1.0, [1.0, 1.0], x, x, x)) == 0.0
    # beta_1 = 1 then beta_2 = 0.5: abar_{t-1} = 0 must not divide by zero
    val = losses.mean_loss(1.0, [0.0, 0.5], x, x, x)
    assert np.isfinite(float(val))


@pytest.mark.parametrize("sigma", [0.0, -1.0, float("nan")])
def test_nonpositive_sigma_raises(sigma):
    x = jnp.ones(3)
    with pytest.raises(ValueError, match="sigma_t"):
        losses.mean_loss(sigma, [0.9], x, x, x)
    with pytest.raises(ValueError, match="sigma_t"):
        losses.noise_loss(sigma, [0.9], x, x, x, x)


def test_bad_alpha_ts_and_shapes_raise():
    x = jnp.ones(3)
    with pytest.raises(ValueError, match="alpha_ts"):
        losses.mean_loss(1.0, [], x, x, x)
    with pytest.raises(ValueError, match="alpha_ts"):
        losses.mean_loss(1.0, [1.2], x, x, x)
    with pytest.raises(ValueError, match="shapes"):
        losses.noise_loss(1.0, [0.9], x, x, jnp.ones(4), x)
    with pytest.raises(ValueError, match="alpha_t > 0"):
        losses.noise_loss(1.0, [0.9, 0.0], x, x, x, x)


def test_noise_loss_weight_matches_formula_and_limits():
    s = schedules.linear(50)
    b = np.asarray(s.betas, np.float64)
    ab = np.cumprod(1 - b)
    w = np.asarray(losses.noise_loss_weight(s, "beta"))
    t = np.arange(1, 51)
    np.testing.assert_allclose(w[t], b[t] / (2 * (1 - b[t]) * (1 - ab[t])), rtol=1e-4)
    wt = np.asarray(losses.noise_loss_weight(s, "beta_tilde"))
    t2 = np.arange(2, 51)
    np.testing.assert_allclose(wt[t2], b[t2] / (2 * (1 - b[t2]) * (1 - ab[t2 - 1])), rtol=1e-4)
    assert np.isinf(wt[1])
    assert np.all(np.asarray(losses.noise_loss_weight(schedules.constant(4, 0.0))) == 0.0)
    with pytest.raises(ValueError, match="sigma2"):
        losses.noise_loss_weight(s, "sigma")
    with pytest.raises(ValueError, match="beta_t = 1"):
        losses.noise_loss_weight(schedules.from_betas([0.5, 1.0]))


def test_gaussian_kl_against_closed_form_and_monte_carlo():
    m1, v1, m2, v2 = 0.3, 0.5, -0.2, 2.0
    expected = 0.5 * (np.log(v2 / v1) + v1 / v2 + (m1 - m2) ** 2 / v2 - 1)
    got = losses.gaussian_kl(m1, np.log(v1), m2, np.log(v2))
    assert float(got) == pytest.approx(expected, rel=1e-6)
    x = np.random.default_rng(0).normal(m1, np.sqrt(v1), size=200000)
    logq = -0.5 * (np.log(2 * np.pi * v1) + (x - m1) ** 2 / v1)
    logp = -0.5 * (np.log(2 * np.pi * v2) + (x - m2) ** 2 / v2)
    mc = np.mean(logq - logp)
    se = np.std(logq - logp) / np.sqrt(x.size)
    assert abs(mc - expected) < 4 * se
    assert float(losses.gaussian_kl(1.0, 0.0, 1.0, 0.0)) == 0.0


def test_discretized_log_likelihood_sums_to_one_over_the_256_bins():
    grid = jnp.linspace(-1.0, 1.0, 256)
    for mean, log_scale in [(0.1, np.log(0.05)), (-0.9, np.log(0.3)), (0.99, np.log(0.01))]:
        logp = losses.discretized_gaussian_log_likelihood(grid, mean, log_scale)
        assert float(jnp.sum(jnp.exp(logp))) == pytest.approx(1.0, abs=1e-4)


def test_parameterization_round_trips_and_eq12():
    s = schedules.cosine(100)
    rng = np.random.default_rng(5)
    x0, eps = (jnp.asarray(rng.normal(size=4), jnp.float32) for _ in range(2))
    for t in (1, 40, 100):
        xt = s.sqrt_alpha_bars[t] * x0 + s.sqrt_one_minus_alpha_bars[t] * eps
        if t < 100:  # at t = T of the cosine schedule abar_T is ~1e-9: x0 is numerically lost
            np.testing.assert_allclose(parameterization.x0_from_eps(s, xt, t, eps), x0, rtol=1e-3, atol=1e-3)
        np.testing.assert_allclose(parameterization.eps_from_x0(s, xt, t, x0), eps, rtol=1e-3, atol=1e-3)
        # eq. (12): mu from eps equals the posterior mean evaluated at the implied x0
        mu_eps = parameterization.mu_from_eps(s, xt, t, eps)
        mu_x0 = parameterization.mu_from_x0(s, xt, t, x0)
        np.testing.assert_allclose(mu_eps, mu_x0, rtol=1e-3, atol=2e-4)


def test_parameterization_raises_where_eps_cannot_be_inverted():
    s = schedules.from_betas([0.3, 1.0])
    x = jnp.ones(2)
    with pytest.raises(ValueError, match="alpha_t"):
        parameterization.mu_from_eps(s, x, 2, x)
    with pytest.raises(ValueError, match="alpha_bar_t"):
        parameterization.x0_from_eps(s, x, 2, x)
    with pytest.raises(ValueError, match="1 - alpha_bar_t"):
        parameterization.eps_from_x0(schedules.constant(2, 0.0), x, 1, x)
