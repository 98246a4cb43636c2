"""Sampling: the analytic optimal denoiser reproduces Gaussian data, the scan sampler equals a plain
Python loop, DDIM, the sample-quality metrics, and bad inputs."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from ddpm_lib import analytic, metrics, models, sampling, schedules

# Data N(m, s2) independently per coordinate: four coordinates with different moments.
M = jnp.array([0.0, 1.5, -2.0, 0.5])
S2 = jnp.array([1.0, 0.25, 0.04, 2.0])


def _exact_output_moments(schedule, m, s2, sigma2, betas=None):
    """Mean and variance of the sampler's output, by an independent float64 recursion.

    With the optimal noise predictor for Gaussian data every reverse step is affine,
    x_{t-1} = a_t x_t + c_t + sigma_t z, so the output is Gaussian and its moments follow from
    mean_{t-1} = a_t mean_t + c_t, var_{t-1} = a_t^2 var_t + sigma_t^2, from x_T ~ N(0, 1).
    """
    b = np.asarray(schedule.betas if betas is None else np.concatenate([[0.0], betas]), np.float64)
    ab = np.cumprod(1.0 - b)
    ab_prev = np.concatenate([[1.0], ab[:-1]])
    m, s2 = np.asarray(m, np.float64), np.asarray(s2, np.float64)
    mean, var = np.zeros_like(m), np.ones_like(m)
    for t in range(len(b) - 1, 0, -1):
        if ab[t] == 1.0:  # every beta up to t is 0: x_t = x_0, the step is the identity
            continue
        v_t = ab[t] * s2 + 1.0 - ab[t]
        g = np.sqrt(1.0 - ab[t]) / v_t  # eps*(x) = g (x - sqrt(ab_t) m)
        k = b[t] / np.sqrt(1.0 - ab[t])  # mu = (x - k eps) / sqrt(alpha_t)
        a = (1.0 - k * g) / np.sqrt(1.0 - b[t])
        c = k * g * np.sqrt(ab[t]) * m / np.sqrt(1.0 - b[t])
        s = 0.0 if t == 1 else (b[t] if sigma2 == "beta" else (1 - ab_prev[t]) / (1 - ab[t]) * b[t])
        mean, var = a * mean + c, a * a * var + s
    return mean, var


@pytest.mark.parametrize("sigma2,discretization", [("beta", 0.01), ("beta_tilde", 0.04)])
def test_optimal_denoiser_reproduces_gaussian_data(sigma2, discretization):
    schedule = schedules.linear(T=1000)
    n = 20_000
    x = sampling.sample(functools.partial(_optimal, schedule), schedule, jax.random.key(0), (n, 4), sigma2=sigma2)
    x = np.asarray(x, np.float64)
    mean, var = x.mean(axis=0), x.var(axis=0, ddof=1)
    m, s2 = np.asarray(M, np.float64), np.asarray(S2, np.float64)
    # With T = 1000 steps the sampler's exact output moments differ from the data's only by a
    # small discretization error (computed exactly, in float64, by the affine recursion):
    # about 1e-5 in the mean, below 1% (sigma^2 = beta) or 4% (beta-tilde) in the variance.
    exact_mean, exact_var = _exact_output_moments(schedule, M, S2, sigma2)
    assert np.all(np.abs(exact_mean - m) < 1e-4)
    assert np.all(np.abs(exact_var / s2 - 1.0) < discretization)
    # Monte Carlo: within 4.5 standard errors of the data's moments, once the known
    # discretization bias is allowed for (a false alarm has probability ~1e-5 per coordinate).
    se_mean = np.sqrt(s2 / n)
    se_var = exact_var * np.sqrt(2.0 / (n - 1))
    assert np.all(np.abs(mean - m) < 4.5 * se_mean + np.abs(exact_mean - m)), (mean, m)
    assert np.all(np.abs(var - s2) < 4.5 * se_var + np.abs(exact_var - s2)), (var, s2)
    # ... and tightly around the sampler's exact moments.
    assert np.all(np.abs(var - exact_var) < 4.5 * se_var)


def test_standard_normal_data_is_exact_with_sigma2_beta():
    # For N(0, I) data the optimal step is mu = sqrt(alpha_t) x_t: with sigma_t^2 = beta_t each
    # reverse step keeps N(0, I) exactly, whatever the schedule (Ho et al., section 3.2).
    schedule = schedules.from_betas([0.05, 0.3, 0.9, 0.2])
    eps_fn = lambda x, t: analytic.optimal_eps(schedule, x, t, 0.0, 1.0)  # noqa: E731
    mean, var = _exact_output_moments(schedule, np.zeros(1), np.ones(1), "beta")
    # x_1 ~ N(0, 1) exactly; the last step adds no noise, so x_0 = sqrt(alpha_1) x_1 has variance 1 - beta_1.
    np.testing.assert_allclose([mean[0], var[0]], [0.0, 0.95], atol=1e-12)
    x = np.asarray(sampling.sample(eps_fn, schedule, jax.random.key(3), (40_000, 1)), np.float64)
    assert abs(x.mean()) < 4.5 * np.sqrt(0.95 / 40_000)
    assert abs(x.var() - 0.95) < 4.5 * 0.95 * np.sqrt(2 / 40_000)


def _optimal(schedule, x, t):
    return analytic.optimal_eps(schedule, x, t, M, S2)


def _reference_loop(eps_fn, schedule, key, shape, sigma2):
    """Algorithm 2 as a plain Python loop, with the schedule recomputed in float64 NumPy."""
    b = np.concatenate([[0.0], np.asarray(schedule.betas, np.float64)[1:]])
    ab = np.cumprod(1.0 - b)
    ab_prev = np.concatenate([[1.0], ab[:-1]])
    k_T, k_steps = jax.random.split(key)
    x = jax.random.normal(k_T, shape)
    keys = jax.random.split(k_steps, schedule.T)
    states = {schedule.T: x}
    for i, t in enumerate(range(schedule.T, 0, -1)):
        eps = eps_fn(x, t)
        mu = (x - b[t] / np.sqrt(1.0 - ab[t]) * eps) / np.sqrt(1.0 - b[t])
        var = b[t] if sigma2 == "beta" else (1.0 - ab_prev[t]) / (1.0 - ab[t]) * b[t]
        z = jax.random.normal(keys[i], shape)
        x = mu + (np.sqrt(var) if t > 1 else 0.0) * z
        states[t - 1] = x
    return x, states


@pytest.fixture(scope="module")
def mlp():
    model = models.MLPDenoiser((3, 3), width=16, num_blocks=1, time_dim=8, rngs=nnx.Rngs(3))
    model.out.kernel[...] = 0.2 * jax.random.normal(jax.random.key(4), model.out.kernel[...].shape)
    return model


@pytest.mark.parametrize("sigma2", ["beta", "beta_tilde"])
def test_scan_sampler_equals_python_loop(mlp, sigma2):
    schedule = schedules.linear(T=20, beta_start=1e-3, beta_end=0.3)
    key = jax.random.key(11)
    x0, traj = sampling.sample(mlp, schedule, key, (5, 3, 3), sigma2=sigma2, return_trajectory=True)
    ref_x0, ref_states = _reference_loop(lambda x, t: mlp(x, t), schedule, key, (5, 3, 3), sigma2)
    assert traj.shape == (schedule.T + 1, 5, 3, 3)
    np.testing.assert_allclose(np.asarray(x0), np.asarray(ref_x0), rtol=1e-4, atol=1e-4)
    for t in (schedule.T, schedule.T // 2, 1, 0):  # trajectory[t] is x_t
        np.testing.assert_allclose(np.asarray(traj[t]), np.asarray(ref_states[t]), rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(np.asarray(traj[0]), np.asarray(x0))
    # The compiled loop used when num_steps is given (one compilation for every step count)
    # gives the same samples as the scan over every step.
    np.testing.assert_allclose(np.asarray(sampling.sample(mlp, schedule, key, (5, 3, 3), sigma2=sigma2,
                                                          num_steps=schedule.T)),
                               np.asarray(x0), rtol=1e-6, atol=1e-6)
    # The same key gives the same samples; the module and a plain function give the same result.
    np.testing.assert_array_equal(np.asarray(sampling.sample(mlp, schedule, key, (5, 3, 3), sigma2=sigma2)),
                                  np.asarray(x0))


def test_mean_prediction_and_clipping():
    schedule = schedules.linear(T=10, beta_start=1e-2, beta_end=0.3)
    key = jax.random.key(12)
    eps_fn = lambda x, t: 0.3 * jnp.sin(x) * t  # noqa: E731
    # A mean-predicting denoiser that returns eq. (12) of the eps one samples the same chain.
    mean_fn = lambda x, t: sampling.reverse_mean(eps_fn, schedule, x, t)  # noqa: E731
    a = sampling.sample(eps_fn, schedule, key, (64, 2))
    b = sampling.sample(mean_fn, schedule, key, (64, 2), prediction="mean")
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-5)
    # Clipping x0_hat to [-1, 1] keeps the last step (mu = x0_hat at t = 1) inside [-1, 1].
    c = sampling.sample(eps_fn, schedule, key, (64, 2), clip_x0=1.0)
    assert float(jnp.max(jnp.abs(c))) <= 1.0 + 1e-6
    # A huge clip never binds, and the clipped form of the mean equals eq. (12).
    d = sampling.sample(eps_fn, schedule, key, (64, 2), clip_x0=1e6)
    np.testing.assert_allclose(np.asarray(a), np.asarray(d), rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("sigma2", ["beta", "beta_tilde"])
def test_ancestral_on_a_beta0_prefix_schedule(sigma2):
    # beta = 0 steps are legal: the first two steps add no noise (1 - alpha_bar = 0). The exact
    # output moments (reference recursion, identity steps skipped) must be matched, without NaN.
    schedule, n = schedules.from_betas([0.0, 0.0, 0.5, 0.5]), 40_000
    x = np.asarray(sampling.sample(functools.partial(_optimal, schedule), schedule, jax.random.key(8), (n, 4),
                                   sigma2=sigma2), np.float64)
    mean, var = _exact_output_moments(schedule, M, S2, sigma2)
    assert np.all(np.isfinite(x))
    assert np.all(np.abs(x.mean(0) - mean) < 4.5 * np.sqrt(var / n))
    assert np.all(np.abs(x.var(0, ddof=1) - var) < 4.5 * var * np.sqrt(2.0 / (n - 1)))


@pytest.mark.parametrize("sigma2,spacing", [("beta", "trailing"), ("beta_tilde", "linspace")])
def test_step_skipping_ancestral_matches_the_respaced_chain(sigma2, spacing):
    # 25 of 1000 steps: the sampler must run Algorithm 2 on beta'_i = 1 - ab_{tau_i} / ab_{tau_{i-1}}
    # (recomputed here from the betas and the hand-written step lists), asking the network about tau_i.
    schedule, n = schedules.linear(1000), 20_000
    ab = np.cumprod(1.0 - np.asarray(schedule.betas, np.float64))
    # trailing: 40, 80, ..., 1000; linspace: 1 + i * 999 / 24 rounded half up (41.625 steps apart)
    taus = np.arange(40, 1001, 40) if spacing == "trailing" else np.floor(1.5 + np.arange(25) * 999 / 24).astype(int)
    betas = 1.0 - ab[taus] / np.concatenate([[1.0], ab[taus[:-1]]])
    mean, var = _exact_output_moments(None, M, S2, sigma2, betas=betas)
    x = np.asarray(sampling.sample(functools.partial(_optimal, schedule), schedule, jax.random.key(4), (n, 4),
                                   sigma2=sigma2, num_steps=25, spacing=spacing), np.float64)
    assert np.all(np.abs(x.mean(0) - mean) < 4.5 * np.sqrt(var / n)), (x.mean(0), mean)
    assert np.all(np.abs(x.var(0, ddof=1) - var) < 4.5 * var * np.sqrt(2.0 / (n - 1))), (x.var(0), var)
    # A chain that wrongly used the first 25 betas of the full schedule would be far off: its
    # alpha_bar_T is 0.997, so its output is nearly the starting noise, of variance 1, while the
    # right chain gives about the data's variance (0.25, 0.04 and 2 in coordinates 1 to 3).
    assert np.all(np.abs(var[1:] - 1.0) > 0.3)
    # The trajectory holds the S + 1 visited states.
    _, traj = sampling.sample(functools.partial(_optimal, schedule), schedule, jax.random.key(4), (3, 4),
                              sigma2=sigma2, num_steps=25, spacing=spacing, return_trajectory=True)
    assert traj.shape == (26, 3, 4)


def test_energy_distance_and_sliced_wasserstein():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(50, 2)), rng.normal(size=(70, 2)) + 0.5
    d = lambda a, b: np.sqrt(((a[:, None] - b[None]) ** 2).sum(-1)).mean()  # noqa: E731
    expected = 2 * d(x, y) - d(x, x) - d(y, y)
    np.testing.assert_allclose(metrics.energy_distance(x, y), expected, rtol=1e-4)
    assert metrics.energy_distance(x, x) == pytest.approx(0.0, abs=1e-5)
    # A shift by v moves every 1-D projection by |<v, u>|; the mean of |cos| over angles is 2/pi.
    v = np.array([0.3, -0.4])
    np.testing.assert_allclose(metrics.sliced_wasserstein(x, x + v, num_projections=1000), 2 / np.pi * 0.5,
                               rtol=1e-3)
    # In 1-D it is the ordinary W1 distance of two equal-size samples: the mean gap of sorted values.
    a, b = rng.normal(size=(40, 1)), rng.normal(size=(40, 1)) * 2
    np.testing.assert_allclose(metrics.sliced_wasserstein(a, b), np.mean(np.abs(np.sort(a[:, 0]) - np.sort(b[:, 0]))),
                               rtol=1e-5)
    with pytest.raises(ValueError, match="key"):
        metrics.sliced_wasserstein(rng.normal(size=(5, 3)), rng.normal(size=(5, 3)))
    with pytest.raises(ValueError, match="same dimension"):
        metrics.energy_distance(x, rng.normal(size=(5, 3)))


def test_confident_fraction():
    class Fixed:
        classes_ = np.arange(3)

        def predict_proba(self, x):
            return np.array([[0.95, 0.05, 0.0], [0.5, 0.4, 0.1], [0.0, 0.0, 1.0], [0.1, 0.9, 0.0]])

    frac, labels = metrics.confident_fraction(Fixed(), np.zeros((4, 8, 8)))
    assert frac == 0.75
    np.testing.assert_array_equal(labels, [0, 0, 2, 1])
    with pytest.raises(ValueError, match="threshold"):
        metrics.confident_fraction(Fixed(), np.zeros((4, 8, 8)), threshold=1.5)


def test_bad_inputs_raise_value_errors(mlp):
    schedule = schedules.linear(T=5)
    key = jax.random.key(0)
    f = lambda x, t: x  # noqa: E731
    with pytest.raises(ValueError, match="sigma2"):
        sampling.sample(f, schedule, key, (2, 2), sigma2="beta_hat")
    with pytest.raises(ValueError, match="prediction"):
        sampling.sample(f, schedule, key, (2, 2), prediction="x0")
    with pytest.raises(ValueError, match="shape"):
        sampling.sample(f, schedule, key, (-1, 2))
    with pytest.raises(ValueError, match="shape"):
        sampling.sample(f, schedule, key, 5)
    with pytest.raises(ValueError, match="denoiser"):
        sampling.sample("not a function", schedule, key, (2, 2))
    with pytest.raises(ValueError, match="clip_x0"):
        sampling.sample(f, schedule, key, (2, 2), clip_x0=-1.0)
    with pytest.raises(ValueError, match="clip_x0"):
        sampling.sample(f, schedule, key, (2, 2), prediction="mean", clip_x0=1.0)
    with pytest.raises(ValueError, match="schedule"):
        sampling.sample(f, "linear", key, (2, 2))
    with pytest.raises(ValueError, match="beta_t = 1"):
        sampling.sample(f, schedules.from_betas([0.5, 1.0]), key, (2, 2))


def test_digit_classifier_on_real_digits():
    from ddpm_lib import data

    train_x, train_y = data.digits("train")
    test_x, test_y = data.digits("test")
    clf = metrics.digit_classifier(train_x, train_y)
    frac, labels = metrics.confident_fraction(clf, test_x)
    assert np.mean(labels == np.asarray(test_y)) > 0.95  # it reads real digits well
    assert frac > 0.9  # ... and confidently
    with pytest.raises(ValueError, match="kind"):
        metrics.digit_classifier(train_x, train_y, kind="svm")
