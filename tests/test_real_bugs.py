"""Tests for the DDPM bugs that slipped through the first mutation check (issue 11).

Each test compares the library with an independent computation (float64 NumPy, Gaussian
conditioning written out as matrices, a replayed recursion, the other sampler) and names the
planted bug it catches. ``make mutants`` (tests/mutants.py) plants those bugs and checks.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from ddpm_lib import analytic, ddim, forward, models, sampling, schedules, train


def _f64(schedule):
    """beta_t, alpha_bar_t and alpha_bar_{t-1} recomputed in float64 from the schedule's betas."""
    b = np.asarray(schedule.betas, np.float64)
    ab = np.cumprod(1.0 - b)
    return b, ab, np.concatenate([[1.0], ab[:-1]])


# ------------------------------------------------------------------ clip_x0 in reverse_mean


def test_clipped_reverse_mean_equals_the_clipped_float64_formula():
    # Bug caught: clipping x_t instead of the implied x0_hat. Every x_t here lies inside [-1, 1],
    # so clipping x_t changes nothing, while the eps pushes x0_hat out of range.
    schedule = schedules.from_betas([0.3, 0.5, 0.2])
    b, ab, ab_prev = _f64(schedule)
    xt = np.array([[0.5, -0.2, 0.9, 0.1]], np.float32)
    eps = np.array([[-3.0, 2.5, 0.1, 0.2]], np.float32)
    for t in (1, 2, 3):
        x0_hat = (xt - np.sqrt(1.0 - ab[t]) * eps) / np.sqrt(ab[t])
        clipped = np.clip(x0_hat, -1.0, 1.0)
        mu = (np.sqrt(ab_prev[t]) * b[t] / (1.0 - ab[t]) * clipped
              + np.sqrt(1.0 - b[t]) * (1.0 - ab_prev[t]) / (1.0 - ab[t]) * xt)  # eq. (10)
        if t == 1:  # beta_tilde_1 = 0: the mean at t = 1 is x0_hat itself, here clipped
            np.testing.assert_allclose(mu, clipped, atol=1e-12)
            assert np.sum(np.abs(x0_hat) > 1.0) == 3  # three coordinates really are clipped
        got = sampling.reverse_mean(lambda x, t: jnp.asarray(eps), schedule, jnp.asarray(xt), t,
                                    prediction="eps", clip_x0=1.0)
        # float32 inputs, one division by sqrt(alpha_bar_t) >= 0.5: errors of a few 1e-7
        np.testing.assert_allclose(np.asarray(got, np.float64), mu, rtol=1e-6, atol=1e-6)


# ------------------------------------------------------------------ the EMA of train.train


def _params(model):
    return [np.asarray(p, np.float64) for p in jax.tree.leaves(nnx.state(model, nnx.Param))]


def test_ema_follows_the_documented_recursion_replayed_in_numpy():
    # Bugs caught: the warm-up dropped (d_n = d from the first step), decay and step size swapped.
    # Recursion (train.train's docstring): theta_bar_n = d_n theta_bar_{n-1} + (1 - d_n) theta_n,
    # d_n = min(d, (1 + n) / (10 + n)), where n = 0, 1, ... counts the optimizer's steps, theta_n
    # are the weights after step n and theta_bar starts at the initial weights.
    schedule = schedules.linear(T=50, beta_start=1e-3, beta_end=0.2)
    data = jnp.array([1.0, -0.5]) + jnp.array([0.3, 0.6]) * jax.random.normal(jax.random.key(0), (256, 2))
    tx = optax.adam(1e-2)  # a constant, large step: the weights move visibly every step
    key, decay, steps = jax.random.key(1), 0.3, 6  # d_n = 0.1, 0.18, 0.25, 0.3, 0.3, 0.3

    def fresh():
        model = models.MLPDenoiser((2,), width=16, num_blocks=1, time_dim=8, rngs=nnx.Rngs(0))
        return model, nnx.Optimizer(model, tx, wrt=nnx.Param)

    # The weights after every step, from one step per call (no EMA involved).
    model, optimizer = fresh()
    thetas = [_params(model)]
    for _ in range(steps):
        train.train(model, optimizer, schedule, data, key, num_steps=1, batch_size=32, ema_decay=None)
        thetas.append(_params(model))
    # The library's EMA, all steps in one compiled call.
    model, optimizer = fresh()
    result = train.train(model, optimizer, schedule, data, key, num_steps=steps, batch_size=32, ema_decay=decay)
    for a, b in zip(_params(model), thetas[-1]):  # the same run: the same final weights
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)

    ema = thetas[0]
    for n in range(steps):
        d = min(decay, (1 + n) / (10 + n))
        ema = [d * e + (1.0 - d) * th for e, th in zip(ema, thetas[n + 1])]
    moved = max(np.max(np.abs(a - b)) for a, b in zip(thetas[-1], thetas[0]))
    assert moved > 1e-2  # the weights moved far more than the tolerance below
    for got, want in zip(_params(result.ema_model), ema):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------ DDIM with eta = 1


def test_ddim_eta_one_over_every_step_is_ancestral_sampling_with_beta_tilde():
    # Bugs caught: sigma(eta) without its square root, the direction term without -sigma^2.
    # With eta = 1 and every step, the DDIM step's mean is the posterior mean (10) at x0_hat and
    # its variance is beta_tilde_t; both samplers draw x_T and the noise of the i-th step from
    # the same keys (see their module texts), so the samples agree up to float32 rounding.
    schedule = schedules.linear(T=20, beta_start=1e-3, beta_end=0.3)

    def eps_fn(x, t):  # the exact eps for N(0, 1) data, plus a term nonlinear in x
        return schedule.sqrt_one_minus_alpha_bars[t] * x + 0.1 * jnp.sin(3.0 * x)

    key = jax.random.key(5)
    ancestral = np.asarray(sampling.sample(eps_fn, schedule, key, (256, 2), sigma2="beta_tilde"))
    x_ddim = np.asarray(ddim.ddim_sample(eps_fn, schedule, key, (256, 2), num_steps=schedule.T, eta=1.0))
    assert np.std(ancestral) > 0.5  # real samples, not a collapse to a point
    # The two compute the same step by different float32 formulas: allow 10 float32 ulps of the
    # samples' scale per step (measured: 4e-6, against a bound of 6e-5). The bugs move samples by 0.1.
    tol = schedule.T * 10 * np.finfo(np.float32).eps * np.max(np.abs(ancestral))
    np.testing.assert_allclose(x_ddim, ancestral, rtol=0, atol=tol)
    # ... while eta = 0 (no noise after x_T) is a different sampler.
    x_det = np.asarray(ddim.ddim_sample(eps_fn, schedule, key, (256, 2), num_steps=schedule.T, eta=0.0))
    assert np.max(np.abs(x_det - ancestral)) > 0.1


# ------------------------------------------------------------------ q(x_t | x_0)


def test_q_mean_var_matches_float64():
    # Bug caught: the variance 1 - alpha_bar_{t-1} (off by one), or sqrt(alpha_bar_{t-1}) in the mean.
    x0 = np.array([0.7, -1.3, 2.0], np.float32)
    for schedule in (schedules.from_betas([0.1, 0.2, 0.5]), schedules.linear(1000), schedules.cosine(50)):
        _, ab, _ = _f64(schedule)
        for t in sorted({1, 2, schedule.T // 2, schedule.T}):
            mean, var = forward.q_mean_var(schedule, jnp.asarray(x0), t)
            np.testing.assert_allclose(np.asarray(mean, np.float64), np.sqrt(ab[t]) * x0, rtol=1e-6, atol=1e-7)
            # the stored alpha_bar_t is float32: its rounding (at most 6e-8) bounds the error of 1 - alpha_bar_t
            assert abs(float(var) - (1.0 - ab[t])) <= 1.2e-7, (t, float(var), 1.0 - ab[t])


# ------------------------------------------------------------------ E[x0 | x_t] for Gaussian data


def _conditional_means(ab, m, s2, xt):
    """E[x0 | x_t] and E[eps | x_t] by Gaussian conditioning of the joint of (x0, eps, x_t), in float64.

    (x0, eps) ~ N((m, 0), diag(s2, 1)) and x_t = sqrt(ab) x0 + sqrt(1 - ab) eps: the joint of
    z = (x0, eps, x_t) is N(A mu, A S A^T) with A the linear map below; then
    E[z_{1:2} | x_t] = mu_{1:2} + Sigma_{12} Sigma_{22}^{-1} (x_t - mu_3).
    """
    A = np.array([[1.0, 0.0], [0.0, 1.0], [np.sqrt(ab), np.sqrt(1.0 - ab)]])
    mean = A @ np.array([m, 0.0])
    cov = A @ np.diag([s2, 1.0]) @ A.T
    cond = mean[:2] + cov[:2, 2] * np.linalg.solve(cov[2:, 2:], [xt - mean[2]])[0]
    return cond[0], cond[1]


@pytest.mark.parametrize("m,s2", [(0.5, 0.3), (-2.0, 4.0)])
def test_optimal_x0_and_eps_equal_gaussian_conditioning(m, s2):
    # Bug caught: sqrt(1 - alpha_bar_t) for sqrt(alpha_bar_t) in E[x0 | x_t].
    schedule = schedules.from_betas([0.05, 0.2, 0.5, 0.3])
    _, ab, _ = _f64(schedule)
    xt = np.array([-1.5, 0.0, 0.4, 2.5], np.float32)
    for t in range(1, schedule.T + 1):
        want = np.array([_conditional_means(ab[t], m, s2, float(x)) for x in xt])
        x0 = np.asarray(analytic.optimal_x0(schedule, jnp.asarray(xt), t, m, s2), np.float64)
        eps = np.asarray(analytic.optimal_eps(schedule, jnp.asarray(xt), t, m, s2), np.float64)
        np.testing.assert_allclose(x0, want[:, 0], rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(eps, want[:, 1], rtol=1e-5, atol=1e-5)
