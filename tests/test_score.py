"""Tweedie's formula: the optimal noise predictor is the score of the noisy data, rescaled.

Ground truth is the gradient, by jax.grad, of log-densities written out independently here: a
Gaussian (where ddpm_lib.analytic gives the optimal eps) and a two-component Gaussian mixture,
which is not Gaussian, with its posterior mean E[x_0 | x_t] in closed form.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ddpm_lib import analytic, schedules, score

M = jnp.array([0.0, 1.5, -2.0, 0.5])
S2 = jnp.array([1.0, 0.25, 0.04, 2.0])


def _gaussian_log_density(x, ab, m, s2):
    """log q(x_t) for x_0 ~ N(m, s2): N(sqrt(ab) m, ab s2 + 1 - ab), summed over coordinates."""
    v = ab * s2 + 1.0 - ab
    return jnp.sum(-0.5 * jnp.log(2 * jnp.pi * v) - 0.5 * (x - jnp.sqrt(ab) * m) ** 2 / v)


@pytest.mark.parametrize("t", [1, 10, 500, 1000])
def test_optimal_eps_is_the_score_of_gaussian_data(t):
    s = schedules.linear(1000)
    x = jax.random.normal(jax.random.key(t), (4,)) * 1.5
    ab = float(np.cumprod(1 - np.asarray(s.betas, np.float64))[t])
    exact = jax.grad(_gaussian_log_density)(x, ab, M, S2)
    got = score.score_from_eps(s, analytic.optimal_eps(s, x, t, M, S2), t)
    np.testing.assert_allclose(np.asarray(got), np.asarray(exact), rtol=2e-4, atol=1e-5)
    # ... and its inverse gives the noise back; Tweedie's x0 is analytic.optimal_x0.
    np.testing.assert_allclose(np.asarray(score.eps_from_score(s, got, t)),
                               np.asarray(analytic.optimal_eps(s, x, t, M, S2)), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(score.x0_from_score(s, x, t, exact)),
                               np.asarray(analytic.optimal_x0(s, x, t, M, S2)), rtol=1e-3, atol=1e-4)


def _mixture_log_density(x, ab, w, mus, s2):
    """log q(x_t) in 1-D for x_0 ~ sum_k w_k N(mu_k, s2): a mixture of N(sqrt(ab) mu_k, ab s2 + 1 - ab)."""
    v = ab * s2 + 1.0 - ab
    logs = jnp.log(w) - 0.5 * jnp.log(2 * jnp.pi * v) - 0.5 * (x - jnp.sqrt(ab) * mus) ** 2 / v
    return jax.scipy.special.logsumexp(logs)


@pytest.mark.parametrize("t", [5, 100, 400])
def test_tweedie_on_a_mixture(t):
    # Not Gaussian: the posterior mean of x_0 is a responsibility-weighted sum of per-component
    # Gaussian posterior means, computed here by hand; Tweedie's formula must reproduce it
    # from the score alone.
    s = schedules.linear(1000)
    ab = float(np.cumprod(1 - np.asarray(s.betas, np.float64))[t])
    w, mus, s2 = jnp.array([0.3, 0.7]), jnp.array([-1.0, 2.0]), 0.1
    v = ab * s2 + 1 - ab
    for x in [-2.0, 0.3, 1.7]:
        grad = jax.grad(_mixture_log_density)(jnp.float32(x), ab, w, mus, s2)
        logs = jnp.log(w) - 0.5 * (x - jnp.sqrt(ab) * mus) ** 2 / v
        r = jax.nn.softmax(logs)  # p(component k | x_t)
        post = mus + jnp.sqrt(ab) * s2 / v * (x - jnp.sqrt(ab) * mus)  # E[x_0 | x_t, k]
        expected = float(jnp.sum(r * post))
        got = float(score.x0_from_score(s, jnp.float32(x), t, grad))
        assert got == pytest.approx(expected, rel=1e-3, abs=1e-3)


def test_model_score_and_batches():
    s = schedules.cosine(50)
    x = jax.random.normal(jax.random.key(0), (7, 4))

    def eps_fn(x, t):
        return analytic.optimal_eps(s, x, t, M, S2)

    got = score.model_score(eps_fn, s, x, 20)
    expected = -np.asarray(eps_fn(x, 20)) / np.sqrt(1 - np.cumprod(1 - np.asarray(s.betas, np.float64))[20])
    np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-5)
    # Traceable: the same under jit with a traced t.
    jitted = jax.jit(lambda x, t: score.score_from_eps(s, eps_fn(x, t), t))(x, 20)
    np.testing.assert_allclose(np.asarray(jitted), np.asarray(got), rtol=1e-6)


def test_bad_input_and_degenerate_steps():
    s = schedules.linear(10)
    e = jnp.zeros(3)
    for t in (0, 11, -1, 2.5):
        with pytest.raises(ValueError, match="t"):
            score.score_from_eps(s, e, t)
    with pytest.raises(ValueError, match="single"):
        score.score_from_eps(s, e, jnp.array([1, 2, 3]))
    with pytest.raises(ValueError, match="schedule"):
        score.eps_from_score("linear", e, 1)
    with pytest.raises(ValueError, match="shapes"):
        score.x0_from_score(s, jnp.zeros(3), 2, jnp.zeros(4))
    with pytest.raises(ValueError, match="denoiser"):
        score.model_score("net", s, e, 1)
    # beta = 0 up to t: no noise, no smoothed score -- refused, not NaN or inf.
    flat = schedules.from_betas([0.0, 0.0, 0.5])
    with pytest.raises(ValueError, match="1 - alpha_bar_t"):
        score.score_from_eps(flat, e, 2)
    assert np.all(np.isfinite(np.asarray(score.score_from_eps(flat, e + 1.0, 3))))
    # beta = 1: x_t carries no signal, Tweedie's x0 is undefined.
    with pytest.raises(ValueError, match="alpha_bar_t > 0"):
        score.x0_from_score(schedules.from_betas([0.5, 1.0]), e, 2, e)
