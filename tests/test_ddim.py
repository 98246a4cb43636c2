"""DDIM: the step against an independent float64 recursion, the visited steps, eta = 1 against ancestral
sampling, the marginals by Monte Carlo, inversion, degenerate schedules, the cosine trap, bad input.

Ground truth: with the exact noise predictor of Gaussian data (ddpm_lib.analytic.optimal_eps)
every DDIM step is an affine map, x_s = A x_t + C + sigma z, whose coefficients are recomputed
here in float64 NumPy from the betas alone (``_reference_step``), independently of the library.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from ddpm_lib import analytic, ddim, models, sampling, schedules, spacing

M = np.array([0.0, 0.5, -0.3, 0.2])
S2 = np.array([1.0, 0.25, 0.04, 0.1])


def _optimal(schedule, x, t):
    return analytic.optimal_eps(schedule, x, t, M.astype(np.float32), S2.astype(np.float32))


def _abar(schedule):
    return np.cumprod(1.0 - np.asarray(schedule.betas, np.float64))


def _reference_step(ab, t, s, eta):
    """Coefficients (A, C, var) of x_s = A x_t + C + sqrt(var) z for the exact eps of N(M, S2) data."""
    if ab[t] == 1.0:  # no noise added yet: x_t = x_0 and the step changes nothing
        return np.ones_like(M), np.zeros_like(M), np.zeros_like(M)
    v = ab[t] * S2 + 1.0 - ab[t]
    g = np.sqrt(1.0 - ab[t]) / v  # eps*(x) = g x - g sqrt(ab_t) M
    var = eta**2 * (1.0 - ab[s]) / (1.0 - ab[t]) * (1.0 - ab[t] / ab[s])
    # x0_hat = (x - sqrt(1 - ab_t) eps) / sqrt(ab_t);  x_s = sqrt(ab_s) x0_hat + sqrt(1 - ab_s - var) eps
    k = np.sqrt(1.0 - ab[s] - var)
    a_x0, c_x0 = (1.0 - np.sqrt(1.0 - ab[t]) * g) / np.sqrt(ab[t]), g * np.sqrt(1.0 - ab[t]) * M
    return np.sqrt(ab[s]) * a_x0 + k * g, np.sqrt(ab[s]) * c_x0 - k * g * np.sqrt(ab[t]) * M, var + 0 * M


def _pairs(taus):
    """(t, s) for each DDIM step, from the top: (tau_S, tau_{S-1}), ..., (tau_1, 0)."""
    taus = list(taus)
    return list(zip(taus[::-1], taus[-2::-1] + [0]))


SCHEDULES = {
    "linear1000": schedules.linear(1000),
    "cosine200": schedules.cosine(200),
    "beta0-constant": schedules.constant(3, 0.0),
    "beta0-prefix": schedules.from_betas([0.0, 0.0, 0.5, 0.5]),
}


@pytest.mark.parametrize("name,S,sp", [("linear1000", 1000, "trailing"), ("linear1000", 50, "trailing"),
                                       ("linear1000", 10, "linspace"), ("cosine200", 50, "trailing"),
                                       ("cosine200", 7, "linspace"), ("beta0-constant", 3, "trailing"),
                                       ("beta0-prefix", 4, "trailing"), ("beta0-prefix", 2, "linspace")])
def test_decode_equals_float64_reference(name, S, sp):
    schedule = SCHEDULES[name]
    x_T = jax.random.normal(jax.random.key(0), (256, 4))
    got = np.asarray(ddim.ddim_decode(functools.partial(_optimal, schedule), schedule, x_T, num_steps=S,
                                      spacing=sp), np.float64)
    ab, x = _abar(schedule), np.asarray(x_T, np.float64)
    for t, s in _pairs(spacing.timesteps(schedule.T, S, sp)):
        A, C, _ = _reference_step(ab, t, s, 0.0)
        x = A * x + C
    assert np.all(np.isfinite(got))
    # float32 round-off over up to 1000 steps; a wrong coefficient or a skipped step is >> 1e-3.
    np.testing.assert_allclose(got, x, rtol=2e-4, atol=2e-4)


def test_beta0_constant_schedule_is_the_identity_for_every_sampler():
    # beta = 0 at every step: nothing was added, so every sampler must return its starting noise
    # x_T exactly (before the fix DDIM returned NaN here: sigma = 0 * (0/0)).
    schedule = schedules.constant(3, 0.0)
    f = functools.partial(_optimal, schedule)
    key = jax.random.key(7)
    x_T = np.asarray(jax.random.normal(jax.random.split(key)[0], (64, 4)))  # both samplers draw x_T so
    outs = {
        "ancestral beta": sampling.sample(f, schedule, key, (64, 4)),
        "ancestral beta_tilde": sampling.sample(f, schedule, key, (64, 4), sigma2="beta_tilde"),
        "ancestral 2 steps": sampling.sample(f, schedule, key, (64, 4), num_steps=2),
        "ancestral clipped": sampling.sample(f, schedule, key, (64, 4), clip_x0=10.0),
        "ddim eta 0": ddim.ddim_sample(f, schedule, key, (64, 4), num_steps=3),
        "ddim eta 1": ddim.ddim_sample(f, schedule, key, (64, 4), num_steps=3, eta=1.0),
        "ddim 2 steps eta 0.5": ddim.ddim_sample(f, schedule, key, (64, 4), num_steps=2, eta=0.5),
        "ddim clipped": ddim.ddim_sample(f, schedule, key, (64, 4), num_steps=3, clip_x0=10.0),
        "ddim decode": ddim.ddim_decode(f, schedule, x_T, num_steps=3),
        "ddim encode": ddim.ddim_encode(f, schedule, x_T, num_steps=3),
    }
    for name, x in outs.items():
        np.testing.assert_allclose(np.asarray(x), x_T, rtol=1e-6, atol=1e-6, err_msg=name)


@pytest.mark.parametrize("eta", [0.0, 0.5, 1.0])
def test_exact_moments_on_a_beta0_prefix_schedule(eta):
    # from_betas([0, 0, .5, .5]): the first two steps add nothing (1 - alpha_bar = 0 there).
    schedule, n = SCHEDULES["beta0-prefix"], 40_000
    f = functools.partial(_optimal, schedule)
    x = np.asarray(ddim.ddim_sample(f, schedule, jax.random.key(3), (n, 4), num_steps=4, eta=eta), np.float64)
    ab, mean, var = _abar(schedule), np.zeros(4), np.ones(4)
    for t, s in _pairs(range(1, 5)):
        A, C, v = _reference_step(ab, t, s, eta)
        mean, var = A * mean + C, A * A * var + v
    assert np.all(np.abs(x.mean(0) - mean) < 4.5 * np.sqrt(var / n))
    assert np.all(np.abs(x.var(0, ddof=1) - var) < 4.5 * var * np.sqrt(2.0 / (n - 1)))


def test_visited_steps_first_and_last():
    # With eps = 0 a DDIM step is x_s = sqrt(ab_s / ab_t) x_t, so every visited state reveals the
    # step it sits at. The network must be asked about tau_S..tau_1 in that order (never 0), and
    # the last jump must land at s = 0 (alpha_bar_0 = 1), not at a negative or missing step.
    schedule = schedules.linear(1000)
    sa = np.sqrt(_abar(schedule))
    for sp in spacing.SPACINGS:
        taus = spacing.timesteps(1000, 10, sp)
        calls = []

        def zero(x, t, calls=calls):
            jax.debug.callback(lambda t: calls.append(int(t)), t, ordered=True)
            return jnp.zeros_like(x)

        x_T = jnp.ones((1, 1))
        _, states = ddim.ddim_decode(zero, schedule, x_T, num_steps=10, spacing=sp, return_trajectory=True)
        assert calls == list(taus[::-1]), (sp, calls)
        levels = [int(taus[-1])] + [s for _, s in _pairs(taus)]  # T, tau_{S-1}, ..., tau_1, 0
        assert levels[-1] == 0 and states.shape == (11, 1, 1)
        np.testing.assert_allclose(np.asarray(states)[:, 0, 0], sa[levels] / sa[1000], rtol=1e-4)
        calls.clear()
        _, up = ddim.ddim_encode(zero, schedule, x_T, num_steps=10, spacing=sp, return_trajectory=True)
        assert calls == list(taus), (sp, calls)  # encoding asks about tau_1..tau_S, upwards
        np.testing.assert_allclose(np.asarray(up)[:, 0, 0], sa[[0, *taus]], rtol=1e-4)


@pytest.fixture(scope="module")
def mlp():
    model = models.MLPDenoiser((3, 3), width=16, num_blocks=1, time_dim=8, rngs=nnx.Rngs(3))
    model.out.kernel[...] = 0.2 * jax.random.normal(jax.random.key(4), model.out.kernel[...].shape)
    return model


@pytest.mark.parametrize("clip", [None, 1.0])
def test_eta_one_equals_ancestral_beta_tilde(mlp, clip):
    # Theorem (chapter 6): eta = 1 gives sigma^2 = beta_tilde and the mean of q(x_s | x_t, x0_hat),
    # so with the same key, DDIM eta = 1 over every step IS ancestral sampling with beta_tilde,
    # and over a sub-sequence it is the step-skipping (respaced) ancestral sampler.
    schedule, key, shape = schedules.linear(T=20, beta_start=1e-3, beta_end=0.3), jax.random.key(9), (6, 3, 3)
    for S, sp in [(20, "trailing"), (7, "trailing"), (5, "linspace")]:
        a = sampling.sample(mlp, schedule, key, shape, sigma2="beta_tilde", num_steps=S, spacing=sp, clip_x0=clip)
        b = ddim.ddim_sample(mlp, schedule, key, shape, num_steps=S, spacing=sp, eta=1.0, clip_x0=clip)
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-4, atol=1e-4, err_msg=f"{S} {sp}")
        # ... and it is not the beta choice (which would make this test vacuous if both were equal)
        c = sampling.sample(mlp, schedule, key, shape, sigma2="beta", num_steps=S, spacing=sp, clip_x0=clip)
        assert float(jnp.max(jnp.abs(c - a))) > 1e-2
    # The same on a schedule with beta = 0 steps, with the exact eps of Gaussian data.
    s0 = schedules.from_betas([0.0, 0.0, 0.5, 0.5, 0.2])
    f = functools.partial(_optimal, s0)
    np.testing.assert_allclose(np.asarray(ddim.ddim_sample(f, s0, key, (50, 4), num_steps=5, eta=1.0)),
                               np.asarray(sampling.sample(f, s0, key, (50, 4), sigma2="beta_tilde")),
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["linear1000", "cosine200"])
def test_sigma_and_direction_are_precise_at_every_step(name):
    # With x_t = 0, eps = 1, z = 1 a step returns sqrt(1 - ab_s - sigma^2) + sigma: compare with
    # float64 for every (t, t - 1), eagerly (float64 jumps) and under jit (the float32 formula).
    # Near ab = 0, 1 - ab_t/ab_s taken as (1 - ab_t) - (1 - ab_s) in float32 has no correct digit
    # (it put a 10% error into sigma at t = 1000 of the linear schedule).
    schedule = SCHEDULES[name]
    ab = _abar(schedule)
    one, zero = jnp.ones(1), jnp.zeros(1)
    jitted = jax.jit(lambda t, s, eta: ddim.ddim_step(schedule, zero, t, s, one, one, eta=eta))
    for eta in (1.0, 0.5):
        for t in range(2, schedule.T + 1, 7 if schedule.T > 300 else 1):
            s = t - 1
            var = eta**2 * (1 - ab[s]) / (1 - ab[t]) * (1 - ab[t] / ab[s])
            expected = np.sqrt(ab[s]) * (-np.sqrt(1 - ab[t]) / np.sqrt(ab[t])) + np.sqrt(1 - ab[s] - var) + np.sqrt(var)
            for got in (ddim.ddim_step(schedule, zero, t, s, one, one, eta=eta), jitted(t, s, eta)):
                assert float(got[0]) == pytest.approx(expected, rel=2e-4, abs=2e-5), (t, eta)
            # sigma alone: the difference of two steps whose noise differs by one
            sig = float(ddim.ddim_step(schedule, zero, t, s, one, 2 * one, eta=eta)[0]
                        - ddim.ddim_step(schedule, zero, t, s, one, one, eta=eta)[0])
            assert sig == pytest.approx(np.sqrt(var), rel=1e-4), (t, eta)


def test_eta_one_equals_ancestral_over_1000_steps():
    # The long chain: every one of the 1000 steps must match to round-off, not just the mean.
    schedule, key = schedules.linear(1000), jax.random.key(12)
    f = functools.partial(_optimal, schedule)
    a = sampling.sample(f, schedule, key, (2000, 4), sigma2="beta_tilde")
    b = ddim.ddim_sample(f, schedule, key, (2000, 4), num_steps=1000, eta=1.0)
    assert float(jnp.max(jnp.abs(a - b))) < 1e-4


def test_module_and_function_give_the_same_samples(mlp):
    schedule, key = schedules.cosine(30), jax.random.key(2)
    a = ddim.ddim_sample(mlp, schedule, key, (4, 3, 3), num_steps=6, eta=0.3)
    b = ddim.ddim_sample(lambda x, t: mlp(x, t), schedule, key, (4, 3, 3), num_steps=6, eta=0.3)
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-5)
    assert sampling.ddim_sample is ddim.ddim_sample  # the old import path still works


@pytest.mark.parametrize("eta", [0.0, 0.5, 1.0])
def test_marginals_of_the_non_markovian_process(eta):
    # With the true noise (an oracle that knows x0), x0_hat = x0 and each step samples
    # q_sigma(x_s | x_t, x0). Started from q(x_T | x0), every visited x_s must have the forward
    # marginal N(sqrt(ab_s) x0, 1 - ab_s), whatever eta. Writing sqrt(1 - ab_s) in place of
    # sqrt(1 - ab_s - sigma^2) would inflate the variance by sigma^2 and fail.
    schedule, n = schedules.linear(1000), 20_000
    ab = _abar(schedule)
    x0 = jnp.asarray(M, jnp.float32)
    k0, k1 = jax.random.split(jax.random.key(11))
    x = schedule.sqrt_alpha_bars[1000] * x0 + schedule.sqrt_one_minus_alpha_bars[1000] * jax.random.normal(k0, (n, 4))
    taus = spacing.timesteps(1000, 8)
    for i, (t, s) in enumerate(_pairs(taus)):
        eps = (x - schedule.sqrt_alpha_bars[t] * x0) / schedule.sqrt_one_minus_alpha_bars[t]
        x = ddim.ddim_step(schedule, x, t, s, eps, jax.random.normal(jax.random.fold_in(k1, i), (n, 4)), eta=eta)
        xs = np.asarray(x, np.float64)
        if s > 0:
            var = 1.0 - ab[s]
            assert np.all(np.abs(xs.mean(0) - np.sqrt(ab[s]) * M) < 4.5 * np.sqrt(var / n)), (s, eta)
            assert np.all(np.abs(xs.var(0, ddof=1) - var) < 4.5 * var * np.sqrt(2 / (n - 1))), (s, eta)
    np.testing.assert_allclose(np.asarray(x), np.broadcast_to(M, (n, 4)), atol=1e-4)  # s = 0: x0 itself


def test_encode_equals_reference_and_round_trip_converges():
    schedule = schedules.linear(1000)
    f = functools.partial(_optimal, schedule)
    x0 = jnp.asarray(M + np.sqrt(S2) * np.asarray(jax.random.normal(jax.random.key(5), (128, 4))), jnp.float32)
    ab, errors, ref_errors = _abar(schedule), {}, {}
    for S in (10, 100, 1000):
        taus = spacing.timesteps(1000, S)
        # Reference encode: x_t = sqrt(ab_t) x0_hat(x_s, eps) + sqrt(1 - ab_t) eps with eps = eps*(x_s, t).
        x = np.asarray(x0, np.float64)
        for s, t in zip([0, *taus[:-1]], taus):
            v = ab[t] * S2 + 1 - ab[t]
            eps = np.sqrt(1 - ab[t]) / v * (x - np.sqrt(ab[t]) * M)
            x = np.sqrt(ab[t]) * (x - np.sqrt(1 - ab[s]) * eps) / np.sqrt(ab[s]) + np.sqrt(1 - ab[t]) * eps
        x_T = ddim.ddim_encode(f, schedule, x0, num_steps=S)
        np.testing.assert_allclose(np.asarray(x_T, np.float64), x, rtol=2e-4, atol=2e-4)
        for t, s in _pairs(taus):  # reference decode of the reference code
            A, C, _ = _reference_step(ab, t, s, 0.0)
            x = A * x + C
        ref_errors[S] = np.max(np.abs(x - np.asarray(x0, np.float64)))
        back = ddim.ddim_decode(f, schedule, x_T, num_steps=S)
        errors[S] = float(jnp.max(jnp.abs(back - x0)))
    # The round-trip error is the method's (first order in the step: ~10x smaller per 10x steps),
    # as the float64 reference shows, not round-off.
    np.testing.assert_allclose([errors[S] for S in errors], [ref_errors[S] for S in errors], rtol=0.05, atol=1e-4)
    assert 5 < errors[10] / errors[100] < 20 and 5 < errors[100] / errors[1000] < 20, errors


def test_encode_with_refinement_inverts_decode():
    # Decoding along 20 steps is an affine map for Gaussian data, x0 = A x_T + C; its exact inverse
    # is (x0 - C) / A. Fixed-point refinement makes the encoder converge to it.
    schedule = schedules.linear(1000)
    f = functools.partial(_optimal, schedule)
    x0 = jnp.asarray(M + np.sqrt(S2) * np.asarray(jax.random.normal(jax.random.key(6), (64, 4))), jnp.float32)
    ab, A, C = _abar(schedule), np.ones(4), np.zeros(4)
    for t, s in _pairs(spacing.timesteps(1000, 20)):
        a, c, _ = _reference_step(ab, t, s, 0.0)
        A, C = a * A, a * C + c
    exact = (np.asarray(x0, np.float64) - C) / A
    gaps = [float(np.max(np.abs(np.asarray(ddim.ddim_encode(f, schedule, x0, num_steps=20, refine=k)) - exact)))
            for k in (0, 1, 8)]
    # Each iteration contracts the gap (by about 0.4 here: the first step, from 0 to 50, is the
    # largest); eight bring it to round-off level.
    assert gaps[0] > 0.5 and gaps[1] < 0.5 * gaps[0] and gaps[2] < 2e-3, gaps
    round_trip = ddim.ddim_decode(f, schedule, ddim.ddim_encode(f, schedule, x0, num_steps=20, refine=8),
                                  num_steps=20)
    assert float(jnp.max(jnp.abs(round_trip - x0))) < 1e-3


def test_decode_and_encode_between_data_and_an_intermediate_step():
    # An explicit spacing that ends below T: decoding from the full path's x_{tau_{S-1}} along
    # the remaining steps must give the full decode's x_0; encoding stops at that step.
    schedule = schedules.linear(1000)
    f = functools.partial(_optimal, schedule)
    taus = spacing.timesteps(1000, 20)
    x_T = jax.random.normal(jax.random.key(3), (64, 4))
    x0, path = ddim.ddim_decode(f, schedule, x_T, num_steps=20, return_trajectory=True)
    tail = ddim.ddim_decode(f, schedule, path[1], spacing=taus[:-1])
    np.testing.assert_allclose(np.asarray(tail), np.asarray(x0), rtol=1e-5, atol=1e-5)
    _, up = ddim.ddim_encode(f, schedule, x0, num_steps=20, return_trajectory=True)
    part = ddim.ddim_encode(f, schedule, x0, spacing=taus[:-1])
    np.testing.assert_allclose(np.asarray(part), np.asarray(up[-2]), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="spacing"):  # sampling from noise must start at T
        ddim.ddim_sample(f, schedule, jax.random.key(0), (2, 4), spacing=taus[:-1])
    with pytest.raises(ValueError, match="spacing"):
        ddim.ddim_decode(f, schedule, x_T, spacing=[5, 1001])


def test_the_cosine_trap_and_clipping():
    # Cosine T = 200 has alpha_bar_T = 6.1e-8. A noise predictor off by delta at t = T alone gives
    # x0_hat off by delta sqrt(1 - ab_T) / sqrt(ab_T) ~ 4000 delta, and the first 50-step DDIM jump
    # (200 -> 196) carries it into x_196 with the factor below (about -125): the exact size of the
    # trap. Clipping x0_hat to the data range bounds the damage by sqrt(ab_196) ~ 0.03.
    schedule, delta = schedules.cosine(200), 1e-2
    ab = _abar(schedule)
    s2 = 0.1  # data N(0, 0.1): inside [-1, 1] but for 0.16% of the values

    def good(x, t):
        return analytic.optimal_eps(schedule, x, t, 0.0, s2)

    def off(x, t):
        return good(x, t) + jnp.where(t == 200, delta, 0.0)

    x_T = jax.random.normal(jax.random.key(1), (4000,))
    predicted = delta * (np.sqrt(1 - ab[196]) - np.sqrt(ab[196] * (1 - ab[200]) / ab[200]))
    _, a = ddim.ddim_decode(good, schedule, x_T, num_steps=50, return_trajectory=True)
    _, b = ddim.ddim_decode(off, schedule, x_T, num_steps=50, return_trajectory=True)
    np.testing.assert_allclose(np.asarray(b[1] - a[1]), predicted, rtol=2e-3)
    assert predicted < -1.0  # an error of 0.01 became a shift larger than the noise itself
    # From x_196 on the steps are exact and affine, x_0 = K x_196 + c, with K the product of
    # the slopes A below: the final error is K times the shift.
    K = np.prod([np.sqrt(ab[s]) * (1 - np.sqrt(1 - ab[t]) * g) / np.sqrt(ab[t]) + np.sqrt(1 - ab[s]) * g
                 for t, s in _pairs(spacing.timesteps(200, 50))[1:]
                 for g in [np.sqrt(1 - ab[t]) / (ab[t] * s2 + 1 - ab[t])]])
    np.testing.assert_allclose(np.asarray(b[-1] - a[-1]), K * predicted, rtol=2e-3)
    err_raw = abs(K * predicted)
    # With clip_x0 = 1 the first x0_hat is -1 instead of about -40: the shift of x_196 is at
    # most 2 sqrt(ab_196) = 0.06, and the final error at most K times that.
    # (Judged on the samples that end well inside [-1, 1]: for the 0.2% of data beyond it, clipping
    # changes the last step itself, as it should.)
    c = ddim.ddim_decode(off, schedule, x_T, num_steps=50, clip_x0=1.0)
    inside = np.abs(np.asarray(a[-1])) < 0.8
    assert inside.mean() > 0.98
    err_clip = float(jnp.max(jnp.abs(c - a[-1])[inside]))
    assert err_clip <= 2.0 * np.sqrt(ab[196]) * K * 1.01 + 1e-5, (err_clip, err_raw)
    assert err_raw > 10 * err_clip
    assert float(jnp.max(jnp.abs(c))) <= 1.0 + 1e-6


# Wider data for the next test: four coordinates with different moments.
MW, S2W = np.array([0.0, 1.5, -2.0, 0.5]), np.array([1.0, 0.25, 0.04, 2.0])


def _optimal_wide(schedule, x, t):
    return analytic.optimal_eps(schedule, x, t, MW.astype(np.float32), S2W.astype(np.float32))


def test_exact_moments_with_100_of_1000_steps():
    # Monte Carlo against the exact moments of the affine eta = 0 chain.
    schedule = schedules.linear(T=1000)
    n, steps = 20_000, 100
    x = np.asarray(ddim.ddim_sample(functools.partial(_optimal_wide, schedule), schedule, jax.random.key(1), (n, 4),
                                        num_steps=steps), np.float64)
    # eta = 0 with the optimal eps: x_s = A x_t + C, an affine map; recompute it in float64.
    ab = np.cumprod(1.0 - np.asarray(schedule.betas, np.float64))
    taus = ddim.ddim_timesteps(schedule.T, steps)
    m, s2 = MW, S2W
    mean, var = np.zeros(4), np.ones(4)
    for t, s in zip(taus[::-1], list(taus[:-1][::-1]) + [0]):
        v = ab[t] * s2 + 1 - ab[t]
        g = np.sqrt(1 - ab[t]) / v  # eps = g (x - sqrt(ab_t) m)
        # x0_hat = (x - sqrt(1-ab_t) eps) / sqrt(ab_t); x_s = sqrt(ab_s) x0_hat + sqrt(1-ab_s) eps
        a_eps, c_eps = g, -g * np.sqrt(ab[t]) * m
        a = np.sqrt(ab[s]) * (1 - np.sqrt(1 - ab[t]) * a_eps) / np.sqrt(ab[t]) + np.sqrt(1 - ab[s]) * a_eps
        c = -np.sqrt(ab[s]) * np.sqrt(1 - ab[t]) * c_eps / np.sqrt(ab[t]) + np.sqrt(1 - ab[s]) * c_eps
        mean, var = a * mean + c, a * a * var
    se_mean, se_var = np.sqrt(var / n), var * np.sqrt(2.0 / (n - 1))
    assert np.all(np.abs(x.mean(0) - mean) < 4.5 * se_mean)
    assert np.all(np.abs(x.var(0, ddof=1) - var) < 4.5 * se_var)
    # ... and those exact moments approach the data's: the mean within 0.01, the variance
    # 3-14% low with 100 steps (a first-order error: about ten times smaller with 1000 steps).
    np.testing.assert_allclose(mean, m, atol=0.01)
    assert np.all((var < s2) & (var > 0.85 * s2))


def test_ddim_timesteps():
    np.testing.assert_array_equal(sampling.ddim_timesteps(10, 5), [2, 4, 6, 8, 10])
    np.testing.assert_array_equal(sampling.ddim_timesteps(10, 10), np.arange(1, 11))
    with pytest.raises(ValueError, match="num_steps"):
        sampling.ddim_timesteps(10, 11)


def test_bad_input():
    schedule, key = schedules.linear(10), jax.random.key(0)
    f = lambda x, t: x  # noqa: E731
    cases = [
        ("num_steps", dict(num_steps=0)), ("num_steps", dict(num_steps=11)), ("num_steps", dict(num_steps=2.0)),
        ("eta", dict(eta=-0.1)), ("eta", dict(eta=1.5)), ("eta", dict(eta=float("nan"))), ("eta", dict(eta="0")),
        ("spacing", dict(spacing="leading")), ("spacing", dict(spacing=[3, 2, 10])),
        ("clip_x0", dict(clip_x0=0.0)), ("clip_x0", dict(clip_x0=-1.0)),
    ]
    for arg, kw in cases:
        with pytest.raises(ValueError, match=arg):
            ddim.ddim_sample(f, schedule, key, (2, 2), **kw)
    with pytest.raises(ValueError, match="shape"):
        ddim.ddim_sample(f, schedule, key, (2.5, 2))
    with pytest.raises(ValueError, match="key"):
        ddim.ddim_sample(f, schedule, 0, (2, 2))
    with pytest.raises(ValueError, match="denoiser"):
        ddim.ddim_sample("net", schedule, key, (2, 2))
    with pytest.raises(ValueError, match="schedule"):
        ddim.ddim_sample(f, [0.1, 0.2], key, (2, 2))
    with pytest.raises(ValueError, match="alpha_bar_t > 0"):  # beta = 1 erased x_0 at the chosen step
        ddim.ddim_sample(f, schedules.from_betas([0.5, 1.0]), key, (2, 2), num_steps=2)
    with pytest.raises(ValueError, match="x_T"):
        ddim.ddim_decode(f, schedule, jnp.array([[jnp.nan, 0.0]]))
    with pytest.raises(ValueError, match="x0"):
        ddim.ddim_encode(f, schedule, "data")
    with pytest.raises(ValueError, match="refine"):
        ddim.ddim_encode(f, schedule, jnp.zeros((2, 2)), refine=-1)
    with pytest.raises(ValueError, match="num_steps"):
        sampling.sample(f, schedule, key, (2, 2), num_steps=0)
    with pytest.raises(ValueError, match="num_steps"):
        sampling.sample(f, schedule, key, (2, 2), num_steps=11)
