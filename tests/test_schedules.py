"""Schedule identities against independent float64 computations."""

import math

import jax
import numpy as np
import pytest

from ddpm_lib import schedules


def test_alpha_bar_is_float64_cumprod_of_one_minus_beta():
    betas = [0.1, 0.2, 0.5]
    s = schedules.from_betas(betas)
    expected = [1.0, 0.9, 0.9 * 0.8, 0.9 * 0.8 * 0.5]
    np.testing.assert_allclose(np.asarray(s.alpha_bars), expected, rtol=1e-6)
    assert s.T == 3
    # not the cumulative product of the betas (a bug of the original notebook)
    assert not np.allclose(np.asarray(s.alpha_bars)[1:], np.cumprod(betas))


@pytest.mark.parametrize("make", [lambda: schedules.linear(1000), lambda: schedules.cosine(1000),
                                  lambda: schedules.constant(50, 0.05)])
def test_every_array_has_T_plus_1_entries_and_index_t_is_step_t(make):
    s = make()
    b = np.asarray(s.betas, np.float64)
    for leaf in jax.tree.leaves(s):
        assert leaf.shape == (s.T + 1,)
        assert leaf.dtype == np.float32
    assert b[0] == 0.0 and float(s.alpha_bars[0]) == 1.0
    ab64 = np.cumprod(1.0 - b)
    np.testing.assert_allclose(np.asarray(s.alpha_bars), ab64, rtol=2e-5, atol=1e-9)
    np.testing.assert_allclose(np.asarray(s.sqrt_alpha_bars) ** 2, ab64, rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(np.asarray(s.sqrt_one_minus_alpha_bars) ** 2, 1 - ab64, rtol=1e-4, atol=1e-7)
    # posterior variance (eq. 10), computed here from scratch for t >= 2
    t = np.arange(2, s.T + 1)
    bt = (1 - ab64[t - 1]) / (1 - ab64[t]) * b[t]
    np.testing.assert_allclose(np.asarray(s.posterior_variances)[t], bt, rtol=1e-4)
    assert float(s.posterior_variances[1]) == 0.0
    np.testing.assert_allclose(np.asarray(s.posterior_log_variances_clipped)[1], np.log(bt[0]), rtol=1e-5)


def test_linear_matches_paper_endpoints():
    s = schedules.linear(1000)
    b = np.asarray(s.betas)
    assert math.isclose(b[1], 1e-4, rel_tol=1e-5) and math.isclose(b[1000], 0.02, rel_tol=1e-6)
    # alpha_bar_T for the paper's schedule, from the float64 product
    assert math.isclose(float(s.alpha_bars[-1]), np.prod(1 - np.linspace(1e-4, 0.02, 1000)), rel_tol=1e-3)


def test_cosine_follows_its_defining_formula():
    T, s_off = 100, 0.008
    s = schedules.cosine(T, s=s_off)
    f = lambda t: math.cos((t / T + s_off) / (1 + s_off) * math.pi / 2) ** 2  # noqa: E731
    for t in (1, 10, 50, 90):
        assert math.isclose(float(s.alpha_bars[t]), f(t) / f(0), rel_tol=1e-5)
    assert float(np.max(np.asarray(s.betas))) <= 0.999 + 1e-7


def test_posterior_coefficients_match_eq10():
    s = schedules.linear(200)
    b = np.asarray(s.betas, np.float64)
    ab = np.cumprod(1 - b)
    t = np.arange(2, 201)
    c0 = np.sqrt(ab[t - 1]) * b[t] / (1 - ab[t])
    ct = np.sqrt(1 - b[t]) * (1 - ab[t - 1]) / (1 - ab[t])
    np.testing.assert_allclose(np.asarray(s.posterior_mean_coef_x0)[t], c0, rtol=1e-4)
    np.testing.assert_allclose(np.asarray(s.posterior_mean_coef_xt)[t], ct, rtol=1e-4)
    # t = 1: the posterior is the point mass at x_0
    assert float(s.posterior_mean_coef_x0[1]) == pytest.approx(1.0)
    assert float(s.posterior_mean_coef_xt[1]) == pytest.approx(0.0)


def test_beta_zero_everywhere_is_defined_and_finite():
    s = schedules.constant(5, 0.0)
    for leaf in jax.tree.leaves(s):
        assert np.all(np.isfinite(np.asarray(leaf)))
    np.testing.assert_array_equal(np.asarray(s.alpha_bars), 1.0)
    np.testing.assert_array_equal(np.asarray(s.posterior_variances), 0.0)
    np.testing.assert_array_equal(np.asarray(s.posterior_mean_coef_x0), 1.0)
    np.testing.assert_array_equal(np.asarray(s.posterior_mean_coef_xt), 0.0)


def test_beta_one_kills_the_signal_after_one_step():
    s = schedules.from_betas([1.0, 0.3, 0.2])
    np.testing.assert_array_equal(np.asarray(s.alpha_bars)[1:], 0.0)
    np.testing.assert_allclose(np.asarray(s.sqrt_one_minus_alpha_bars)[1:], 1.0)
    for leaf in jax.tree.leaves(s):
        assert not np.any(np.isnan(np.asarray(leaf)))


@pytest.mark.parametrize(
    "betas, match",
    [
        ([0.1, -0.01], r"beta_2 = -0\.01"),
        ([0.1, 1.5], r"\[0, 1\].*beta_2 = 1\.5"),
        ([0.1, float("nan")], r"finite.*beta_2"),
        ([], r"at least one step"),
        ([[0.1, 0.2], [0.3, 0.4]], r"1-D"),
        ("abc", r"betas"),
    ],
)
def test_bad_betas_raise_value_error_naming_the_problem(betas, match):
    with pytest.raises(ValueError, match=match):
        schedules.from_betas(betas)


@pytest.mark.parametrize("call", [lambda: schedules.linear(0), lambda: schedules.cosine(-3),
                                  lambda: schedules.constant(2.5, 0.1), lambda: schedules.constant(3, 1.2),
                                  lambda: schedules.linear(10, beta_end=2.0)])
def test_bad_constructor_arguments_raise(call):
    with pytest.raises(ValueError):
        call()


def test_schedule_is_a_pytree_that_passes_through_jit():
    s = schedules.linear(10)
    out = jax.jit(lambda sch: sch.alpha_bars[3])(s)
    assert float(out) == pytest.approx(float(s.alpha_bars[3]))
    leaves, treedef = jax.tree.flatten(s)
    assert len(leaves) == 9
    assert jax.tree.unflatten(treedef, leaves).T == 10


def test_snr_is_precise_near_alpha_bar_one():
    s = schedules.linear(1000)
    b = np.linspace(1e-4, 0.02, 1000)
    ab = np.cumprod(1 - b)
    snr = np.asarray(s.snr())
    assert np.isinf(snr[0])
    np.testing.assert_allclose(snr[1:], ab / (1 - ab), rtol=1e-4)
