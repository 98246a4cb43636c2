"""Step sub-sequences for fast sampling: first and last steps of every spacing, respacing, bad input.

Off-by-one errors in skipped-step indices are the classic DDIM bug (a sequence that never
reaches T, or one that asks the network about step 0 or a negative step), so the expected
sequences below are written out by hand, not computed by the code under test.
"""

import numpy as np
import pytest

from ddpm_lib import schedules, spacing


@pytest.mark.parametrize(
    "T,S,expected",
    [
        (10, 5, [2, 4, 6, 8, 10]),
        (10, 3, [3, 7, 10]),  # 10/3 = 3.33 -> 3, 20/3 = 6.67 -> 7
        (10, 4, [3, 5, 8, 10]),  # 2.5 -> 3 and 7.5 -> 8: half up, not to even
        (10, 1, [10]),  # one step: from pure noise straight to the data
        (10, 10, list(range(1, 11))),
        (1, 1, [1]),
        (7, 2, [4, 7]),  # 3.5 -> 4
    ],
)
def test_trailing_by_hand(T, S, expected):
    np.testing.assert_array_equal(spacing.timesteps(T, S, "trailing"), expected)


@pytest.mark.parametrize(
    "T,S,expected",
    [
        (10, 4, [1, 4, 7, 10]),
        (10, 3, [1, 6, 10]),  # 1 + round(4.5) = 6
        (10, 2, [1, 10]),
        (10, 1, [10]),  # S = 1 must start from noise at T, not from step 1
        (10, 10, list(range(1, 11))),
        (1, 1, [1]),
    ],
)
def test_linspace_by_hand(T, S, expected):
    np.testing.assert_array_equal(spacing.timesteps(T, S, "linspace"), expected)


def test_first_and_last_steps_at_book_sizes():
    # The chapter's sizes, checked one by one: T = 1000 and T = 200, S = 10..1000.
    for T, S, first_trailing in [(1000, 1000, 1), (1000, 250, 4), (1000, 100, 10), (1000, 50, 20),
                                 (1000, 20, 50), (1000, 10, 100), (200, 50, 4), (200, 200, 1)]:
        tr = spacing.timesteps(T, S, "trailing")
        li = spacing.timesteps(T, S, "linspace")
        assert tr.size == li.size == S
        assert tr[0] == first_trailing and tr[-1] == T  # trailing: starts at T/S, ends at T
        assert li[0] == 1 and li[-1] == T  # linspace: starts at 1, ends at T
        np.testing.assert_array_equal(np.diff(tr), T // S)  # these T/S are integers: even steps


@pytest.mark.parametrize("name", spacing.SPACINGS)
def test_every_size_is_a_valid_sub_sequence(name):
    for T in range(1, 41):
        for S in range(1, T + 1):
            taus = spacing.timesteps(T, S, name)
            assert taus.dtype == np.int32 and taus.shape == (S,)
            assert taus[0] >= 1 and taus[-1] == T, (T, S, taus)  # never step 0, always ends at T
            assert np.all(np.diff(taus) >= 1), (T, S, taus)  # strictly increasing: no repeated step
            # evenly spread: trailing from 0 to T, linspace from 1 to T (gaps differ by rounding only)
            gaps = np.diff(np.concatenate([[0], taus]) if name == "trailing" else taus)
            assert gaps.size == 0 or gaps.max() - gaps.min() <= 1, (T, S, taus)


def test_none_means_every_step_and_explicit_sequences():
    np.testing.assert_array_equal(spacing.timesteps(6), np.arange(1, 7))
    np.testing.assert_array_equal(spacing.timesteps(6, None, [2, 5, 6]), [2, 5, 6])
    np.testing.assert_array_equal(spacing.timesteps(6, 3, np.array([2, 5, 6])), [2, 5, 6])


@pytest.mark.parametrize(
    "args,match",
    [
        ((10, 0), "num_steps"),
        ((10, 11), "num_steps"),
        ((10, -1), "num_steps"),
        ((10, 2.0), "num_steps"),
        ((10, True), "num_steps"),
        ((0, 1), "T"),
        ((10, 5, "leading"), "spacing"),
        ((10, 5, None), "spacing"),
        ((10, None, [3, 2, 10]), "increasing"),
        ((10, None, [2, 2, 10]), "increasing"),
        ((10, None, [0, 5, 10]), "end at T"),
        ((10, None, [2, 5, 9]), "end at T"),
        ((10, None, [2, 5, 11]), "end at T"),
        ((10, None, [2.0, 10.0]), "integers"),
        ((10, None, []), "non-empty"),
        ((10, 2, [5, 8, 10]), "num_steps"),
    ],
)
def test_bad_input(args, match):
    with pytest.raises(ValueError, match=match):
        spacing.timesteps(*args)


def test_respace_keeps_the_marginals():
    s = schedules.linear(1000)
    ab = np.cumprod(1.0 - np.asarray(s.betas, np.float64))  # independent float64 recomputation
    for name in spacing.SPACINGS:
        taus = spacing.timesteps(1000, 50, name)
        r = spacing.respace(s, taus)
        assert r.T == 50
        # alpha_bar'_i = alpha_bar at tau_i: the jumps have the same marginals q(x_tau | x_0).
        np.testing.assert_allclose(np.asarray(r.alpha_bars)[1:], ab[taus], rtol=1e-5)
        # beta'_i = 1 - alpha_bar_{tau_i} / alpha_bar_{tau_{i-1}}, with tau_0 = 0.
        prev = np.concatenate([[1.0], ab[taus[:-1]]])
        np.testing.assert_allclose(np.asarray(r.betas)[1:], 1 - ab[taus] / prev, rtol=1e-4)
    # Every step: the same schedule back.
    full = spacing.respace(s, np.arange(1, 1001))
    np.testing.assert_allclose(np.asarray(full.betas), np.asarray(s.betas), rtol=1e-4, atol=1e-9)


def test_respace_degenerate_schedules():
    # beta = 0 steps give beta' = 0; a jump over a beta = 1 step gives beta' = 1.
    r = spacing.respace(schedules.from_betas([0.0, 0.0, 0.5, 0.5]), [2, 4])
    np.testing.assert_allclose(np.asarray(r.betas), [0.0, 0.0, 0.75], atol=1e-7)
    r = spacing.respace(schedules.from_betas([0.2, 1.0, 0.3]), [1, 3])
    np.testing.assert_allclose(np.asarray(r.betas), [0.0, 0.2, 1.0], atol=1e-7)
    with pytest.raises(ValueError, match="schedule"):
        spacing.respace("linear", [1, 2])
    with pytest.raises(ValueError, match="taus"):
        spacing.respace(schedules.linear(10), "trailing")
    with pytest.raises(ValueError, match="end at T"):
        spacing.respace(schedules.linear(10), [1, 5])
