"""The variational bound on Gaussian data against independent float64 computations.

The main reference is the *joint* Gaussian: for a small T, q(x_{0:T}) and p_theta(x_{0:T})
are multivariate normals whose means and covariances are built here with NumPy matrices,
so the bound is a cross-entropy minus an entropy, the model's likelihood is a marginal,
and nothing is shared with the per-step formulas of ddpm_lib.bound.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from ddpm_lib import analytic, bound, losses, schedules

LOG2PI = math.log(2 * math.pi)


# ----------------------------------------------------------------------------- references


def _np_sched(betas):
    b = np.concatenate([[0.0], np.asarray(betas, np.float64)])
    a = 1 - b
    ab = np.cumprod(a)
    return b, a, ab


def _np_mean_coefs(betas, c, e):
    """a_t, b_t of mu = a_t x_t + b_t from eq. (12): mu = (x - k (c x + e)) / sqrt(alpha)."""
    b, a, ab = _np_sched(betas)
    T = len(betas)
    A, B = np.zeros_like(c), np.zeros_like(e)
    for t in range(1, T + 1):
        k = b[t] / np.sqrt(1 - ab[t])
        A[t] = (1 - k * c[t]) / np.sqrt(a[t])
        B[t] = -k * e[t] / np.sqrt(a[t])
    return A, B


def _joint_q(betas, m, s2):
    """Mean and covariance of (x_0, ..., x_T) under the forward process, one coordinate."""
    b, a, ab = _np_sched(betas)
    T = len(betas)
    # x = M w + mu with w = (x0 standardised, eps_1, ..., eps_T)
    M = np.zeros((T + 1, T + 1))
    mu = np.zeros(T + 1)
    M[0, 0], mu[0] = np.sqrt(s2), m
    for t in range(1, T + 1):
        M[t] = np.sqrt(a[t]) * M[t - 1]
        M[t, t] += np.sqrt(b[t])
        mu[t] = np.sqrt(a[t]) * mu[t - 1]
    return mu, M @ M.T


def _joint_p(A, B, var, T):
    """Mean and covariance of (x_0, ..., x_T) under the reverse process, one coordinate."""
    M = np.zeros((T + 1, T + 1))  # columns: w_T (prior), w_0 .. w_{T-1} (step noises)
    mu = np.zeros(T + 1)
    M[T, T] = 1.0
    for t in range(T, 0, -1):
        M[t - 1] = A[t] * M[t]
        M[t - 1, t - 1] += np.sqrt(var[t])
        mu[t - 1] = A[t] * mu[t] + B[t]
    return mu, M @ M.T


def _gauss_cross_entropy(mq, Sq, mp, Sp):
    n = len(mq)
    Sp_inv = np.linalg.inv(Sp)
    d = mq - mp
    return 0.5 * (n * LOG2PI + np.linalg.slogdet(Sp)[1] + np.trace(Sp_inv @ Sq) + d @ Sp_inv @ d)


def _joint_reference(betas, c, e, var, m, s2):
    """(bound L, exact NLL) from the joint Gaussians, summed over coordinates."""
    T = len(betas)
    b, _, _ = _np_sched(betas)
    L = nll = 0.0
    for i in range(len(m)):
        A, B = _np_mean_coefs(betas, c[:, i], e[:, i])
        mq, Sq = _joint_q(betas, m[i], s2[i])
        mp, Sp = _joint_p(A, B, var, T)
        chain_entropy = sum(0.5 * (LOG2PI + 1 + np.log(b[t])) for t in range(1, T + 1))
        L += _gauss_cross_entropy(mq, Sq, mp, Sp) - chain_entropy
        nll += 0.5 * (LOG2PI + np.log(Sp[0, 0])) + ((m[i] - mp[0]) ** 2 + s2[i]) / (2 * Sp[0, 0])
    return L, nll


def _random_case(seed, T=4, d=2):
    rng = np.random.default_rng(seed)
    betas = rng.uniform(0.05, 0.6, size=T)
    m = rng.normal(size=d)
    s2 = rng.uniform(0.2, 2.0, size=d)
    c = rng.normal(scale=0.5, size=(T + 1, d))
    e = rng.normal(scale=0.3, size=(T + 1, d))
    var = np.concatenate([[1.0], rng.uniform(0.05, 0.8, size=T)])
    return betas, m, s2, c, e, var


def _model(betas, c, e, var):
    s = schedules.from_betas(betas)
    return bound.reverse_process(s, c, e, var)


# ----------------------------------------------------------------------------- closed forms


@pytest.mark.parametrize("seed", range(4))
def test_bound_terms_sum_to_the_joint_gaussian_bound(seed):
    betas, m, s2, c, e, var = _random_case(seed)
    model = _model(betas, c, e, var)
    L_ref, nll_ref = _joint_reference(betas, c, e, var, m, s2)
    terms = bound.bound_terms(model, m, s2)
    assert terms.shape == (len(betas) + 1,)
    assert float(jnp.sum(terms)) == pytest.approx(L_ref, rel=2e-5, abs=2e-5)
    assert float(bound.model_nll(model, m, s2)) == pytest.approx(nll_ref, rel=2e-5, abs=2e-5)
    assert L_ref >= nll_ref  # eq. (4), Jensen: independent of the library
    assert float(jnp.sum(terms)) >= float(bound.model_nll(model, m, s2))


def test_single_step_bound():
    # T = 1: L = L_0 + L_1 (the decoder and the prior), nothing in between
    betas, m, s2, c, e, var = _random_case(7, T=1, d=3)
    model = _model(betas, c, e, var)
    terms = bound.bound_terms(model, m, s2)
    L_ref, nll_ref = _joint_reference(betas, c, e, var, m, s2)
    assert terms.shape == (2,)
    assert float(jnp.sum(terms)) == pytest.approx(L_ref, rel=1e-5)
    assert float(bound.model_nll(model, m, s2)) == pytest.approx(nll_ref, rel=1e-5)


def test_optimal_model_is_the_true_reverse_mean_and_reaches_the_data_entropy():
    s = schedules.linear(200, 1e-3, 0.05)
    m, s2 = np.array([0.4, -1.0]), np.array([0.3, 0.6])
    model = bound.optimal_reverse_process(s, m, s2, "beta")
    x = jnp.array([0.7, -0.2])
    for t in (1, 2, 50, 200):
        mean_true, _ = analytic.reverse_conditional(s, x, t, m, s2)
        np.testing.assert_allclose(model.mean(x, t), mean_true, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(model.eps(x, t), analytic.optimal_eps(s, x, t, m, s2), rtol=1e-5, atol=1e-6)
    # the model's own marginal is then (nearly) the data: NLL ~ entropy, from above
    H = float(np.sum(stats.norm(m, np.sqrt(s2)).entropy()))
    assert float(bound.data_entropy(m, s2)) == pytest.approx(H, rel=1e-6)
    nll = float(bound.model_nll(model, m, s2))
    assert H - 1e-5 <= nll < H + 5e-3
    worse = bound.optimal_reverse_process(s, m, s2, "beta", gain=0.8)
    assert float(bound.model_nll(worse, m, s2)) > nll + 1e-3


def test_expected_eps_error_against_monte_carlo():
    s = schedules.from_betas([0.1, 0.3, 0.5])
    m, s2 = np.array([0.5, -0.2]), np.array([0.4, 1.5])
    rng = np.random.default_rng(0)
    c, e = rng.normal(size=(4, 2)), rng.normal(size=(4, 2))
    model = bound.reverse_process(s, c, e, "beta")
    got = np.asarray(bound.expected_eps_error(model, m, s2))
    n = 400_000
    b, a, ab = _np_sched([0.1, 0.3, 0.5])
    for t in (1, 2, 3):
        x0 = m + np.sqrt(s2) * rng.normal(size=(n, 2))
        eps = rng.normal(size=(n, 2))
        xt = np.sqrt(ab[t]) * x0 + np.sqrt(1 - ab[t]) * eps
        err = np.sum((eps - (c[t] * xt + e[t])) ** 2, axis=1)
        assert got[t] == pytest.approx(err.mean(), abs=5 * err.std() / np.sqrt(n))


def test_loss_constants_are_variance_kls():
    s = schedules.from_betas([0.1, 0.2, 0.3, 0.4])
    var = np.array([1.0, 0.3, 0.15, 0.25, 0.5])
    model = bound.reverse_process(s, np.zeros(5), np.zeros(5), var)
    C = np.asarray(bound.loss_constants(model, 3))
    b, a, ab = _np_sched([0.1, 0.2, 0.3, 0.4])
    assert C[1] == pytest.approx(1.5 * (LOG2PI + np.log(0.3)), rel=1e-6)
    for t in (2, 3, 4):
        bt = (1 - ab[t - 1]) / (1 - ab[t]) * b[t]
        kl = 0.5 * (np.log(var[t] / bt) + bt / var[t] - 1)
        assert C[t] == pytest.approx(3 * kl, rel=1e-5)


def test_prior_terms_against_float64():
    T = 1000
    betas = np.linspace(1e-4, 0.02, T)
    abT = np.prod(1 - betas)
    s = schedules.linear(T)
    x0 = np.array([1.0, -0.5, 0.0])
    ref = 0.5 * np.sum(abT * x0**2 + (1 - abT) - 1 - np.log(1 - abT))
    assert float(bound.prior_kl(s, x0)) == pytest.approx(ref, rel=1e-3)
    ref_bits = 0.5 * (abT * 0.0 - np.log1p(-abT)) / np.log(2)  # |x0| = 1 is the worst case
    assert bound.max_prior_bits_per_dim(s, (-1, 1)) == pytest.approx(ref_bits, rel=1e-4)
    m, s2 = np.array([0.2, -0.7]), np.array([0.5, 0.1])
    ref_L_T = 0.5 * np.sum(abT * (m**2 + s2) + (1 - abT) - 1 - np.log(1 - abT))
    assert float(bound.expected_prior_kl(s, m, s2)) == pytest.approx(ref_L_T, rel=1e-3)
    # and against the library's own Gaussian KL, one example
    kl = losses.gaussian_kl(np.sqrt(abT) * x0, np.log(1 - abT), 0.0, 0.0)
    assert float(bound.prior_kl(s, x0)) == pytest.approx(float(np.sum(kl)), rel=1e-2)


def test_bits_per_dim():
    assert bound.nats_to_bits_per_dim(2 * math.log(2), 2) == pytest.approx(1.0)


# ----------------------------------------------------------------------------- sampling


def test_log_ratio_matches_the_joint_densities():
    """Expansion (5) of one trajectory equals -log p(x_{0:T}) + log q(x_{1:T} | x_0) from the joints."""
    betas, m, s2, c, e, var = _random_case(11, T=4, d=1)
    model = _model(betas, c, e, var)
    rng = np.random.default_rng(3)
    x0, eps = rng.normal(size=1), rng.normal(size=(4, 1))
    got = float(bound.log_ratio(model, jnp.asarray(x0, jnp.float32), jnp.asarray(eps, jnp.float32)))
    b, a, ab = _np_sched(betas)
    xs = [x0[0]]
    for t in range(1, 5):
        xs.append(np.sqrt(a[t]) * xs[-1] + np.sqrt(b[t]) * eps[t - 1, 0])
    xs = np.array(xs)
    A, B = _np_mean_coefs(betas, c[:, 0], e[:, 0])
    mp, Sp = _joint_p(A, B, var, 4)
    log_p = stats.multivariate_normal(mp, Sp).logpdf(xs)
    # q(x_{1:T} | x_0): the forward joint conditioned on x_0 (s2 -> 0 and m = x_0)
    mq, Sq = _joint_q(betas, x0[0], 0.0)
    log_q = stats.multivariate_normal(mq[1:], Sq[1:, 1:]).logpdf(xs[1:])
    assert got == pytest.approx(-(log_p - log_q), rel=1e-4, abs=1e-4)
    # jit and eager agree
    jitted = jax.jit(bound.log_ratio)(model, jnp.asarray(x0, jnp.float32), jnp.asarray(eps, jnp.float32))
    assert float(jitted) == pytest.approx(got, rel=1e-6, abs=1e-6)


def test_mc_bound_agrees_with_closed_form_and_with_log_ratio():
    betas, m, s2, c, e, var = _random_case(5, T=6, d=2)
    model = _model(betas, c, e, var)
    key = jax.random.key(0)
    n = 20_000
    mean, se = bound.mc_bound(key, model, m, s2, n)
    L = float(jnp.sum(bound.bound_terms(model, m, s2)))
    assert 0 < float(se) < 0.1
    assert abs(float(mean) - L) < 4 * float(se)
    # the batched scan equals the per-example function on the same noise
    key_x0, key_eps = jax.random.split(key)
    mm, ss = jnp.broadcast_arrays(jnp.asarray(m, jnp.float32), jnp.asarray(s2, jnp.float32))
    x0 = mm + jnp.sqrt(ss) * jax.random.normal(key_x0, (n, 2))
    eps = jnp.stack([jax.random.normal(jax.random.fold_in(key_eps, t), (n, 2)) for t in range(1, 7)], axis=1)
    values = jax.vmap(bound.log_ratio, in_axes=(None, 0, 0))(model, x0, eps)
    assert float(mean) == pytest.approx(float(values.mean()), rel=1e-4, abs=1e-4)
    assert float(se) == pytest.approx(float(values.std(ddof=1)) / np.sqrt(n), rel=1e-3)


def test_kl_terms_average_to_bound_terms():
    s = schedules.linear(20, 0.01, 0.3)
    m, s2 = np.array([0.3, -0.4]), np.array([0.5, 0.2])
    model = bound.optimal_reverse_process(s, m, s2, "beta_tilde", gain=0.7)
    n = 20_000
    k0, k1 = jax.random.split(jax.random.key(1))
    x0 = jnp.asarray(m, jnp.float32) + jnp.sqrt(jnp.asarray(s2, jnp.float32)) * jax.random.normal(k0, (n, 2))
    eps = jax.random.normal(k1, (n, 20, 2))
    samples = np.asarray(jax.jit(jax.vmap(bound.kl_terms, in_axes=(None, 0, 0)))(model, x0, eps), np.float64)
    exact = np.asarray(bound.bound_terms(model, m, s2))
    se = samples.std(axis=0) / np.sqrt(n)
    assert np.all(np.abs(samples.mean(axis=0) - exact) <= 5 * se + 1e-5)


def test_one_kl_term_by_hand():
    s = schedules.from_betas([0.2, 0.3, 0.4])
    model = bound.reverse_process(s, np.full(4, 0.5), np.full(4, 0.1), "beta")
    x0 = np.array([0.3, -1.2])
    eps = np.array([[0.1, 0.2], [-0.5, 1.0], [0.7, 0.0]])
    got = np.asarray(bound.kl_terms(model, jnp.asarray(x0, jnp.float32), jnp.asarray(eps, jnp.float32)))
    b, a, ab = _np_sched([0.2, 0.3, 0.4])
    t = 2
    xt = np.sqrt(ab[t]) * x0 + np.sqrt(1 - ab[t]) * eps[t - 1]
    mu_q = np.sqrt(ab[t - 1]) * b[t] / (1 - ab[t]) * x0 + np.sqrt(a[t]) * (1 - ab[t - 1]) / (1 - ab[t]) * xt
    var_q = (1 - ab[t - 1]) / (1 - ab[t]) * b[t]
    mu_p = (xt - b[t] / np.sqrt(1 - ab[t]) * (0.5 * xt + 0.1)) / np.sqrt(a[t])
    kl = 0.5 * np.sum(np.log(b[t] / var_q) + var_q / b[t] + (mu_q - mu_p) ** 2 / b[t] - 1)
    assert got[1] == pytest.approx(kl, rel=1e-4)
    x1 = np.sqrt(ab[1]) * x0 + np.sqrt(1 - ab[1]) * eps[0]
    mu1 = (x1 - b[1] / np.sqrt(1 - ab[1]) * (0.5 * x1 + 0.1)) / np.sqrt(a[1])
    assert got[0] == pytest.approx(-np.sum(stats.norm(mu1, np.sqrt(b[1])).logpdf(x0)), rel=1e-4)


# ----------------------------------------------------------------------------- variances and errors


def test_reverse_variances():
    s = schedules.linear(10, 0.01, 0.2)
    np.testing.assert_allclose(bound.reverse_variances(s, "beta")[1:], s.betas[1:])
    v = np.asarray(bound.reverse_variances(s, "beta_tilde"))
    np.testing.assert_allclose(v[2:], np.asarray(s.posterior_variances)[2:], rtol=1e-5)
    assert v[1] == pytest.approx(v[2])  # the paper's clip at t = 1


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: bound.optimal_reverse_process(schedules.from_betas([0.0, 0.1]), 0.0, 1.0), "schedule"),
        (lambda: bound.optimal_reverse_process(schedules.from_betas([0.1, 1.0]), 0.0, 1.0), "schedule"),
        (lambda: bound.optimal_reverse_process(schedules.from_betas([0.1]), 0.0, -1.0), "s2"),
        (lambda: bound.optimal_reverse_process(schedules.from_betas([0.1]), np.nan, 1.0), "m"),
        (lambda: bound.optimal_reverse_process(schedules.from_betas([0.1]), 0.0, 1.0, "sigma"), "sigma2"),
        (lambda: bound.optimal_reverse_process(schedules.from_betas([0.1]), 0.0, 1.0, [1.0, 0.0]), "sigma2"),
        (lambda: bound.optimal_reverse_process(schedules.from_betas([0.1]), 0.0, 1.0, [1.0]), "sigma2"),
        (lambda: bound.reverse_process(schedules.from_betas([0.1, 0.2]), np.zeros(2), np.zeros(3)), "eps_scale"),
        (lambda: bound.max_prior_bits_per_dim(schedules.linear(5), (1, -1)), "data_range"),
        (lambda: bound.nats_to_bits_per_dim(1.0, 0), "num_dims"),
        (lambda: bound.data_entropy(0.0, 0.0), "s2"),
    ],
)
def test_bad_inputs_raise(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_bad_sampling_inputs_raise():
    s = schedules.from_betas([0.1, 0.2])
    model = bound.optimal_reverse_process(s, 0.0, 1.0)
    with pytest.raises(ValueError, match="num_samples"):
        bound.mc_bound(jax.random.key(0), model, 0.0, 1.0, 1)
    with pytest.raises(ValueError, match="eps"):
        bound.log_ratio(model, jnp.zeros(2), jnp.zeros((3, 2)))
    with pytest.raises(ValueError, match="eps"):
        bound.kl_terms(model, jnp.zeros(2), jnp.zeros((2, 3)))


def test_ancestral_samples_follow_the_model_marginal():
    betas, m, s2, c, e, var = _random_case(2, T=5, d=2)
    model = _model(betas, c, e, var)
    x0 = np.asarray(bound.ancestral_sample(jax.random.key(4), model, 40_000), np.float64)
    assert x0.shape == (40_000, 2)
    # reference: the x_0 block of the reverse joint, built with matrices
    for i in range(2):
        A, B = _np_mean_coefs(betas, c[:, i], e[:, i])
        mp, Sp = _joint_p(A, B, var, 5)
        n = x0.shape[0]
        assert x0[:, i].mean() == pytest.approx(mp[0], abs=5 * np.sqrt(Sp[0, 0] / n))
        assert x0[:, i].var() == pytest.approx(Sp[0, 0], rel=5 * np.sqrt(2 / n))
    mu0, v0 = bound.model_marginal(model)
    for i in range(2):
        A, B = _np_mean_coefs(betas, c[:, i], e[:, i])
        mp, Sp = _joint_p(A, B, var, 5)
        assert float(mu0[i]) == pytest.approx(mp[0], rel=1e-5, abs=1e-6)
        assert float(v0[i]) == pytest.approx(Sp[0, 0], rel=1e-5)


def test_trajectory_log_ratios_needs_a_batch():
    model = bound.optimal_reverse_process(schedules.from_betas([0.1, 0.2]), 0.0, 1.0)
    with pytest.raises(ValueError, match="x0"):
        bound.trajectory_log_ratios(jax.random.key(0), model, 0.0)
    with pytest.raises(ValueError, match="num_samples"):
        bound.ancestral_sample(jax.random.key(0), model, 0)
