"""Every public name of ``ddpm_lib`` refuses bad input clearly and gives finite, correct results at legal edges.

The rule (``ddpm_lib/_validate.py``, the API reference): a bad argument raises ``ValueError``
whose message names the argument, shows the value and says what is allowed; a legal extreme
(a step with beta = 0 or beta = 1, ``T = 1``, a single example, float64 input, NumPy
integers) gives a finite result, checked here against a closed form or an independent
float64 NumPy computation wherever a value is asserted.

The table below holds one ``row`` per public name. :func:`test_every_public_name_has_a_row`
walks every module of the package (found at run time, so modules added later are included)
and fails for a name in an ``__all__`` that has no row, or a module that has no ``__all__``.

How to add a row for a new public function ``mod.f`` (in the section of its module):

    row("mod.f",
        bad("arg", lambda: mod.f(S, X, 11)),            # ValueError naming `arg`, saying "must"
        bad("arg", lambda: mod.f(S, X, 2.5), shows="2.5"),  # ... and showing the value
        edge("beta = 0 steps", lambda: mod.f(S0, X, 1), expect=lambda: <float64 NumPy value>),
        edge("T = 1", lambda: mod.f(ST1, X, 1)),         # finite result (no value asserted)
        note("what is checked", lambda: ...))            # for names with no numeric input
"""

from __future__ import annotations

import dataclasses
import importlib
import math
import pkgutil
import re
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ddpm_lib

# --------------------------------------------------------------------------- the table format

TABLE: dict[str, list] = {}


@dataclasses.dataclass(frozen=True)
class Bad:
    """``call()`` must raise ``ValueError`` whose message names ``arg`` (and shows ``shows``)."""

    arg: str
    call: Callable
    shows: str | None = None
    label: str = ""


@dataclasses.dataclass(frozen=True)
class Edge:
    """``call()`` must return a result without NaN, finite or equal to ``expect()``, passing ``check``."""

    label: str
    call: Callable
    expect: Callable | None = None
    check: Callable | None = None
    rtol: float = 1e-5
    atol: float = 1e-6


@dataclasses.dataclass(frozen=True)
class Note:
    """A name with no numeric input to refuse: ``what`` says what is checked; ``call()`` must run."""

    what: str
    call: Callable | None = None


def bad(arg: str, call: Callable, shows: str | None = None, label: str = "") -> Bad:
    return Bad(arg, call, shows, label)


def edge(label: str, call: Callable, expect: Callable | None = None, *, check: Callable | None = None,
         rtol: float = 1e-5, atol: float = 1e-6) -> Edge:
    return Edge(label, call, expect, check, rtol, atol)


def note(what: str, call: Callable | None = None) -> Note:
    return Note(what, call)


def row(name: str, *probes) -> None:
    """Register the probes of the public name ``"module.name"``."""
    if name in TABLE:
        raise AssertionError(f"two rows for {name}")
    if not probes:
        raise AssertionError(f"the row of {name} holds no probe")
    TABLE[name] = list(probes)


# --------------------------------------------------------------------------- shared inputs

from ddpm_lib import (  # noqa: E402
    analytic,
    bound,
    data,
    forward,
    losses,
    notebook,
    parameterization,
    posterior,
    schedules,
    timing,
)

KEY = jax.random.key(0)
B_LIN = np.linspace(1e-4, 0.02, 10)
S = schedules.linear(10)  # T = 10
B0 = [0.0, 0.0, 0.5, 0.5]
S0 = schedules.from_betas(B0)  # beta = 0 steps first: no noise until t = 3
B1 = [0.1, 1.0, 0.2]
S1 = schedules.from_betas(B1)  # a beta = 1 step: x_2 is pure noise
ST1 = schedules.from_betas([0.3])  # T = 1
SZ = schedules.constant(3, 0.0)  # nothing ever happens
X = jnp.array([0.5, -1.0, 2.0])
E = jnp.array([0.3, 0.1, -0.2])
X64 = np.array([0.5, -1.0, 2.0])  # float64 NumPy input
E64 = np.array([0.3, 0.1, -0.2])
NAN = float("nan")


def abar(betas, t) -> float:
    """alpha_bar_t in float64, from the list of betas (independent of ddpm_lib)."""
    return float(np.prod(1.0 - np.asarray(betas, np.float64)[:t]))


def btilde(betas, t) -> float:
    """The posterior variance (eq. 10) in float64; 0 where no noise has been added by step t."""
    one_m = 1.0 - abar(betas, t)
    return 0.0 if one_m == 0 else (1.0 - abar(betas, t - 1)) / one_m * betas[t - 1]


def to_np(tree):
    """The arrays of a result, as float64 NumPy (a pytree: tuples, dataclasses, ...)."""
    return [np.asarray(leaf, np.float64) for leaf in jax.tree.leaves(tree)]


def expected_arrays(value):
    """The arrays of an expected value: a tuple holds several, anything else (a list too) is one."""
    if isinstance(value, tuple):
        return [a for v in value for a in expected_arrays(v)]
    return [np.asarray(value, np.float64)]


# ==================================================================== module: schedules

row("schedules.Schedule",
    note("a frozen dataclass built only by from_betas/linear/cosine/constant, which validate; its "
         "methods are probed: snr is inf before any noise and finite after it, check_t refuses t",
         lambda: None),
    edge("snr with beta = 0 steps", lambda: S0.snr(),
         expect=lambda: np.array([np.inf, np.inf, np.inf, 1.0, 1.0 / 3.0]), rtol=1e-6),
    bad("t", lambda: S.check_t(11), shows="11"),
    bad("t", lambda: S.check_t(jnp.array([1, 2])), label="array"),
    bad("t", lambda: S.check_t(3.0), shows="3.0"))
row("schedules.from_betas",
    bad("betas", lambda: schedules.from_betas([0.1, 1.5]), shows="1.5"),
    bad("betas", lambda: schedules.from_betas([0.1, NAN]), shows="nan"),
    bad("betas", lambda: schedules.from_betas([])),
    bad("betas", lambda: schedules.from_betas([[0.1, 0.2]])),
    bad("betas", lambda: schedules.from_betas("abc")),
    bad("betas", lambda: schedules.from_betas(None)),
    edge("beta = 0 steps", lambda: S0.alpha_bars, expect=lambda: [abar(B0, t) for t in range(5)]),
    edge("beta = 1 step", lambda: (S1.alpha_bars, S1.posterior_variances),
         expect=lambda: ([abar(B1, t) for t in range(4)], [0.0] + [btilde(B1, t) for t in (1, 2, 3)])),
    edge("T = 1", lambda: (ST1.alpha_bars, ST1.posterior_log_variances_clipped),
         expect=lambda: ([1.0, 0.7], [math.log(1e-20), math.log(0.3)])),
    edge("float64 and jax input", lambda: schedules.from_betas(jnp.asarray(B1)).alpha_bars,
         expect=lambda: [abar(B1, t) for t in range(4)]))
row("schedules.linear",
    bad("beta_end", lambda: schedules.linear(10, beta_end=1.5), shows="1.5"),
    bad("beta_start", lambda: schedules.linear(10, beta_start=-0.1), shows="-0.1"),
    bad("beta_end", lambda: schedules.linear(10, beta_end="0.02")),
    bad("T", lambda: schedules.linear(0), shows="0"),
    bad("T", lambda: schedules.linear(10.0), shows="10.0"),
    bad("T", lambda: schedules.linear(True)),
    edge("T = 1", lambda: schedules.linear(1).betas, expect=lambda: [0.0, 1e-4]),
    edge("np.int64 T", lambda: schedules.linear(np.int64(10)).betas, expect=lambda: np.r_[0.0, B_LIN]),
    edge("beta = 0 and beta = 1 ends", lambda: schedules.linear(3, 0.0, 1.0).alpha_bars,
         expect=lambda: [1.0, 1.0, 0.5, 0.0]))
row("schedules.cosine",
    bad("s", lambda: schedules.cosine(10, s=-0.1), shows="-0.1"),
    bad("max_beta", lambda: schedules.cosine(10, max_beta=1.5), shows="1.5"),
    bad("max_beta", lambda: schedules.cosine(10, max_beta=NAN)),
    bad("T", lambda: schedules.cosine(-3), shows="-3"),
    edge("T = 1", lambda: schedules.cosine(1).betas, expect=lambda: [0.0, 0.999]),
    edge("max_beta = 1", lambda: schedules.cosine(4, max_beta=1.0).alpha_bars[-1], expect=lambda: 0.0))
row("schedules.constant",
    bad("beta", lambda: schedules.constant(3, 1.5), shows="1.5"),
    bad("beta", lambda: schedules.constant(3, [0.1, 0.2])),
    bad("beta", lambda: schedules.constant(3, "0.1")),
    bad("T", lambda: schedules.constant(2.5, 0.1), shows="2.5"),
    edge("beta = 0", lambda: SZ.alpha_bars, expect=lambda: np.ones(4)),
    edge("beta = 1", lambda: schedules.constant(2, 1.0).alpha_bars, expect=lambda: [1.0, 0.0, 0.0]),
    edge("np.int64 T, np.float32 beta", lambda: schedules.constant(np.int64(4), np.float32(0.5)).alpha_bars,
         expect=lambda: 0.5 ** np.arange(5)))

# ==================================================================== module: forward


def q64(betas, t, x0, eps):
    ab = abar(betas, t)
    return math.sqrt(ab) * np.asarray(x0, np.float64) + math.sqrt(1 - ab) * np.asarray(eps, np.float64)


row("forward.compute_mean",
    bad("beta", lambda: forward.compute_mean(X, 1.5), shows="1.5"),
    bad("beta", lambda: forward.compute_mean(X, NAN), shows="nan"),
    bad("beta", lambda: forward.compute_mean(X, jnp.array([0.1, 0.2, 0.3])), label="vector beta"),
    bad("x", lambda: forward.compute_mean("abc", 0.1)),
    edge("beta = 0", lambda: forward.compute_mean(X, 0.0), expect=lambda: X64),
    edge("beta = 1", lambda: forward.compute_mean(X, 1.0), expect=lambda: np.zeros(3)),
    edge("float64 input", lambda: forward.compute_mean(X64, np.float64(0.36)), expect=lambda: 0.8 * X64),
    edge("jitted", lambda: jax.jit(forward.compute_mean)(X, 0.36), expect=lambda: 0.8 * X64))
row("forward.compute_cov",
    bad("beta", lambda: forward.compute_cov(X, -0.1), shows="-0.1"),
    bad("beta", lambda: forward.compute_cov(X, np.ones(3) * 0.1)),
    bad("x", lambda: forward.compute_cov(None, 0.1)),
    edge("beta = 1", lambda: forward.compute_cov(X, 1.0), expect=lambda: np.eye(3)),
    edge("beta = 0, single coordinate", lambda: forward.compute_cov(jnp.ones(1), 0.0), expect=lambda: [[0.0]]))
row("forward.forward_step",
    bad("beta", lambda: forward.forward_step(X, 2.0, E), shows="2.0"),
    bad("eps", lambda: forward.forward_step(X, 0.1, jnp.ones(2))),
    bad("beta", lambda: forward.forward_step(X, jnp.full(3, 0.1), E), label="vector beta"),
    edge("beta = 0", lambda: forward.forward_step(X, 0.0, E), expect=lambda: X64),
    edge("beta = 1", lambda: forward.forward_step(X, 1.0, E), expect=lambda: E64),
    edge("float64", lambda: forward.forward_step(X64, 0.36, E64), expect=lambda: 0.8 * X64 + 0.6 * E64))
row("forward.diffuse",
    bad("key", lambda: forward.diffuse(0, X, S), shows="0"),
    bad("schedule", lambda: forward.diffuse(KEY, X, [0.1, 0.2])),
    bad("x0", lambda: forward.diffuse(KEY, "x", S)),
    edge("beta = 0 steps keep x0", lambda: forward.diffuse(KEY, X, S0)[:3], expect=lambda: np.stack([X64] * 3)),
    edge("beta = 1 at step 2 forgets x0", lambda: forward.diffuse(KEY, X, S1),
         check=lambda xs: xs.shape == (4, 3) and bool(jnp.all(jnp.isfinite(xs)))),
    edge("T = 1, single scalar example", lambda: forward.diffuse(KEY, jnp.float32(2.0), ST1).shape,
         check=lambda shape: shape == (2,)))
row("forward.q_mean_var",
    bad("schedule", lambda: forward.q_mean_var([0.1], X, 1)),
    bad("t", lambda: forward.q_mean_var(S, X, 0), shows="0"),
    bad("t", lambda: forward.q_mean_var(S, X, jnp.array([1, 2, 3])), label="array t"),
    edge("beta = 0 steps", lambda: forward.q_mean_var(S0, X, 2), expect=lambda: (X64, 0.0)),
    edge("beta = 1 step", lambda: forward.q_mean_var(S1, X, 2), expect=lambda: (0 * X64, 1.0)),
    edge("np.int64 t", lambda: forward.q_mean_var(S, X, np.int64(4)),
         expect=lambda: (math.sqrt(abar(B_LIN, 4)) * X64, 1 - abar(B_LIN, 4))))
row("forward.q_sample",
    bad("t", lambda: forward.q_sample(S, X, 11, E), shows="11"),
    bad("t", lambda: forward.q_sample(S, X, 0, E), shows="0"),
    bad("t", lambda: forward.q_sample(S, X, -1, E), shows="-1"),
    bad("t", lambda: forward.q_sample(S, X, 3.0, E), shows="3.0"),
    bad("t", lambda: forward.q_sample(S, X, jnp.array([1, 2, 3]), E), label="array t"),
    bad("t", lambda: forward.q_sample(S, X, True, E)),
    bad("schedule", lambda: forward.q_sample([0.1, 0.2], X, 1, E)),
    bad("eps", lambda: forward.q_sample(S, X, 1, jnp.ones(2))),
    bad("x0", lambda: forward.q_sample(S, "abc", 1, E)),
    edge("beta = 0 steps", lambda: forward.q_sample(S0, X, 2, E), expect=lambda: X64),
    edge("after beta = 0 steps", lambda: forward.q_sample(S0, X, 3, E), expect=lambda: q64(B0, 3, X64, E64)),
    edge("beta = 1 step", lambda: forward.q_sample(S1, X, 3, E), expect=lambda: E64),
    edge("T = 1", lambda: forward.q_sample(ST1, X, 1, E), expect=lambda: q64([0.3], 1, X64, E64)),
    edge("float64 input, np.int64 t", lambda: forward.q_sample(S, X64, np.int64(7), E64),
         expect=lambda: q64(B_LIN, 7, X64, E64)),
    edge("single scalar example", lambda: forward.q_sample(S, 1.0, 10, 0.5),
         expect=lambda: q64(B_LIN, 10, 1.0, 0.5)))

# ==================================================================== module: posterior


def post64(betas, t, x0, xt):
    """The posterior mean of eq. (10) in float64; x0 itself where no noise has been added by step t."""
    ab, ab_prev, b = abar(betas, t), abar(betas, t - 1), betas[t - 1]
    x0, xt = np.asarray(x0, np.float64), np.asarray(xt, np.float64)
    if ab == 1.0:
        return x0
    return math.sqrt(ab_prev) * b / (1 - ab) * x0 + math.sqrt(1 - b) * (1 - ab_prev) / (1 - ab) * xt


row("posterior.posterior_mean",
    bad("t", lambda: posterior.posterior_mean(S, X, E, 11), shows="11"),
    bad("t", lambda: posterior.posterior_mean(S, X, E, jnp.array([1, 2, 3])), label="array t"),
    bad("t", lambda: posterior.posterior_mean(S, X, E, 2.0), shows="2.0"),
    bad("schedule", lambda: posterior.posterior_mean((0.1, 0.2), X, E, 1)),
    bad("xt", lambda: posterior.posterior_mean(S, X, jnp.ones((3, 1)), 1)),
    edge("beta = 0 steps", lambda: posterior.posterior_mean(S0, X, E, 2), expect=lambda: X64),
    edge("first noisy step after beta = 0", lambda: posterior.posterior_mean(S0, X, E, 3),
         expect=lambda: post64(B0, 3, X64, E64)),
    edge("beta = 1 step", lambda: posterior.posterior_mean(S1, X, E, 2), expect=lambda: post64(B1, 2, X64, E64)),
    edge("T = 1", lambda: posterior.posterior_mean(ST1, X, E, 1), expect=lambda: X64),
    edge("float64 input", lambda: posterior.posterior_mean(S, X64, E64, np.int64(5)),
         expect=lambda: post64(B_LIN, 5, X64, E64)))
row("posterior.posterior_mean_variance",
    bad("t", lambda: posterior.posterior_mean_variance(S, X, E, 0), shows="0"),
    bad("schedule", lambda: posterior.posterior_mean_variance(None, X, E, 1)),
    edge("beta = 0 steps: a point mass", lambda: posterior.posterior_mean_variance(S0, X, E, 2)[:2],
         expect=lambda: (X64, 0.0)),
    edge("beta = 1 step", lambda: posterior.posterior_mean_variance(S1, X, E, 3),
         expect=lambda: (post64(B1, 3, X64, E64), btilde(B1, 3), math.log(btilde(B1, 3)))),
    edge("T = 1: log-variance falls back to log beta_1", lambda: posterior.posterior_mean_variance(ST1, X, E, 1),
         expect=lambda: (X64, 0.0, math.log(0.3))))

# ==================================================================== module: parameterization

row("parameterization.x0_from_eps",
    bad("t", lambda: parameterization.x0_from_eps(S, X, jnp.array([1, 2, 3]), E), label="array t"),
    bad("t", lambda: parameterization.x0_from_eps(S, X, 11, E), shows="11"),
    bad("schedule", lambda: parameterization.x0_from_eps([0.5], X, 1, E)),
    bad("eps", lambda: parameterization.x0_from_eps(S, X, 1, jnp.ones(4))),
    bad("t", lambda: parameterization.x0_from_eps(S1, X, 2, E), label="alpha_bar_t = 0"),
    edge("beta = 0 steps", lambda: parameterization.x0_from_eps(S0, X, 1, E), expect=lambda: X64),
    edge("inverts q_sample", lambda: parameterization.x0_from_eps(S0, q64(B0, 4, X64, E64), 4, E64),
         expect=lambda: X64, rtol=1e-5, atol=1e-5))
row("parameterization.eps_from_x0",
    bad("t", lambda: parameterization.eps_from_x0(S0, X, 2, X), label="1 - alpha_bar_t = 0"),
    bad("t", lambda: parameterization.eps_from_x0(S, X, -1, X), shows="-1"),
    bad("x0", lambda: parameterization.eps_from_x0(S, X, 1, jnp.ones(2))),
    edge("beta = 1 step", lambda: parameterization.eps_from_x0(S1, E, 2, X), expect=lambda: E64),
    edge("T = 1", lambda: parameterization.eps_from_x0(ST1, q64([0.3], 1, X64, E64), 1, X64),
         expect=lambda: E64, atol=1e-5))
row("parameterization.mu_from_eps",
    bad("t", lambda: parameterization.mu_from_eps(S1, X, 2, E), label="alpha_t = 0"),
    bad("t", lambda: parameterization.mu_from_eps(S, X, 3.5, E), shows="3.5"),
    bad("schedule", lambda: parameterization.mu_from_eps({"betas": B0}, X, 1, E)),
    edge("beta = 0 step is the identity", lambda: parameterization.mu_from_eps(S0, X, 2, E), expect=lambda: X64),
    edge("eq. (12) in float64", lambda: parameterization.mu_from_eps(S0, X, 4, E),
         expect=lambda: (X64 - 0.5 / math.sqrt(1 - abar(B0, 4)) * E64) / math.sqrt(0.5)),
    edge("T = 1, np.int64 t", lambda: parameterization.mu_from_eps(ST1, X, np.int64(1), E),
         expect=lambda: (X64 - 0.3 / math.sqrt(0.3) * E64) / math.sqrt(0.7)))
row("parameterization.mu_from_x0",
    bad("t", lambda: parameterization.mu_from_x0(S, X, 0, E), shows="0"),
    bad("x0", lambda: parameterization.mu_from_x0(S, X, 1, jnp.ones(1))),
    edge("beta = 1 step", lambda: parameterization.mu_from_x0(S1, E, 2, X), expect=lambda: post64(B1, 2, X64, E64)),
    edge("beta = 0 steps", lambda: parameterization.mu_from_x0(S0, E, 1, X), expect=lambda: X64))

# ==================================================================== module: losses


def mean_loss64(sigma, alphas, mu_pred, x0, xt):
    betas = [1.0 - a for a in alphas]
    mu = post64(betas, len(betas), x0, xt)
    return float(np.sum((mu - np.asarray(mu_pred, np.float64)) ** 2) / (2 * sigma**2))


A0 = [1.0, 1.0, 0.5]  # alpha_1..alpha_3 of S0
row("losses.mean_loss",
    bad("sigma_t", lambda: losses.mean_loss(0.0, [0.9], X, X, E), shows="0.0"),
    bad("sigma_t", lambda: losses.mean_loss(jnp.ones(3), [0.9], X, X, E), label="vector sigma"),
    bad("sigma_t", lambda: losses.mean_loss(NAN, [0.9], X, X, E)),
    bad("alpha_ts", lambda: losses.mean_loss(1.0, [0.9, 1.5], X, X, E), shows="1.5"),
    bad("alpha_ts", lambda: losses.mean_loss(1.0, [], X, X, E)),
    bad("alpha_ts", lambda: losses.mean_loss(1.0, "0.9", X, X, E)),
    bad("x_t", lambda: losses.mean_loss(1.0, [0.9], X, X, jnp.ones(2))),
    edge("beta = 0 steps", lambda: losses.mean_loss(0.5, [1.0, 1.0], E, X, X),
         expect=lambda: mean_loss64(0.5, [1.0, 1.0], E64, X64, X64)),
    edge("first noisy step after beta = 0", lambda: losses.mean_loss(0.5, A0, E, X, E),
         expect=lambda: mean_loss64(0.5, A0, E64, X64, E64)),
    edge("beta = 1 step", lambda: losses.mean_loss(1.0, [0.9, 0.0], E, X, E),
         expect=lambda: mean_loss64(1.0, [0.9, 0.0], E64, X64, E64)),
    edge("float64 input, single coordinate", lambda: losses.mean_loss(np.float64(0.3), np.array([0.7]),
                                                                      np.ones(1), np.zeros(1), np.ones(1)),
         expect=lambda: mean_loss64(0.3, [0.7], np.ones(1), np.zeros(1), np.ones(1))))
row("losses.noise_loss",
    bad("sigma_t", lambda: losses.noise_loss(-1.0, [0.9], E, X, X, X), shows="-1.0"),
    bad("sigma_t", lambda: losses.noise_loss(np.full(3, 0.5), [0.9], E, X, X, X), label="vector sigma"),
    bad("alpha_ts", lambda: losses.noise_loss(1.0, [0.9, 0.0], E, X, X, X), label="alpha_t = 0"),
    bad("eps", lambda: losses.noise_loss(1.0, [0.9], E, X, X, jnp.ones(4))),
    edge("beta = 0 step contributes 0", lambda: losses.noise_loss(0.5, [1.0, 1.0], E, X, X, X), expect=lambda: 0.0),
    edge("eq. (12) weight", lambda: losses.noise_loss(0.5, A0, E, X, X, X),
         expect=lambda: 0.25 / (2 * 0.25 * 0.5 * 0.5) * np.sum((X64 - E64) ** 2)))
row("losses.noise_loss_weight",
    bad("schedule", lambda: losses.noise_loss_weight([0.1, 0.2])),
    bad("schedule", lambda: losses.noise_loss_weight(S1), label="beta = 1"),
    bad("sigma2", lambda: losses.noise_loss_weight(S, "beta_hat"), shows="'beta_hat'"),
    edge("beta = 0 steps get weight 0", lambda: losses.noise_loss_weight(S0),
         expect=lambda: [0.0, 0.0, 0.0] + [b**2 / (2 * b * (1 - b) * (1 - abar(B0, t)))
                                           for t, b in ((3, 0.5), (4, 0.5))]),
    edge("T = 1", lambda: losses.noise_loss_weight(ST1), expect=lambda: [0.0, 0.3 / (2 * 0.7 * 0.3)]))
row("losses.simple_loss",
    bad("eps_pred", lambda: losses.simple_loss(X, jnp.ones(2))),
    bad("eps", lambda: losses.simple_loss("x", X)),
    edge("single coordinate, float64", lambda: losses.simple_loss(np.array([1.5]), np.array([0.5])), expect=lambda: 1.0),
    edge("empty example", lambda: losses.simple_loss(jnp.zeros(0), jnp.zeros(0)), expect=lambda: 0.0))
row("losses.gaussian_kl",
    bad("logvar2", lambda: losses.gaussian_kl(X, 0.0, X, jnp.zeros(2))),
    bad("mean1", lambda: losses.gaussian_kl("a", 0.0, 0.0, 0.0)),
    edge("equal Gaussians", lambda: losses.gaussian_kl(X, 0.0, X, 0.0), expect=lambda: np.zeros(3)),
    edge("closed form, float64", lambda: losses.gaussian_kl(1.0, np.log(2.0), 0.0, 0.0),
         expect=lambda: 0.5 * (-math.log(2.0) + 2.0 + 1.0 - 1.0)))
row("losses.discretized_gaussian_log_likelihood",
    bad("x", lambda: losses.discretized_gaussian_log_likelihood(jnp.array([0.0, 2.0]), 0.0, 0.0), shows="2.0"),
    bad("log_scale", lambda: losses.discretized_gaussian_log_likelihood(jnp.zeros(3), 0.0, jnp.zeros(2))),
    bad("mean", lambda: losses.discretized_gaussian_log_likelihood(jnp.zeros(2), jnp.zeros((4, 2)), 0.0)),
    edge("edges of the range", lambda: losses.discretized_gaussian_log_likelihood(jnp.array([-1.0, 1.0]), 0.0, 0.0),
         expect=lambda: np.full(2, math.log(0.5 * math.erfc((1 - 1 / 255) / math.sqrt(2)))), rtol=1e-4),
    edge("a centre bin", lambda: losses.discretized_gaussian_log_likelihood(jnp.zeros(1), 0.0, 0.0),
         expect=lambda: [math.log(math.erf(1 / 255 / math.sqrt(2)))], rtol=1e-3))

# ==================================================================== module: analytic


def marg64(betas, t, m, s2):
    ab = abar(betas, t)
    return math.sqrt(ab) * np.asarray(m, np.float64), ab * np.asarray(s2, np.float64) + 1 - ab


row("analytic.marginal_mean_var",
    bad("t", lambda: analytic.marginal_mean_var(S, 11, 0.0, 1.0), shows="11"),
    bad("t", lambda: analytic.marginal_mean_var(S, -1, 0.0, 1.0), shows="-1"),
    bad("t", lambda: analytic.marginal_mean_var(S, 2.0, 0.0, 1.0), shows="2.0"),
    bad("m", lambda: analytic.marginal_mean_var(S, 1, NAN, 1.0)),
    bad("s2", lambda: analytic.marginal_mean_var(S, 1, 0.0, NAN)),
    bad("s2", lambda: analytic.marginal_mean_var(S, 1, 0.0, -1.0), shows="-1.0"),
    bad("s2", lambda: analytic.marginal_mean_var(S, 1, jnp.zeros(2), jnp.ones(3)), label="shapes"),
    bad("schedule", lambda: analytic.marginal_mean_var([0.1], 1, 0.0, 1.0)),
    edge("t = 0 is the data", lambda: analytic.marginal_mean_var(S, 0, 0.5, 2.0), expect=lambda: (0.5, 2.0)),
    edge("beta = 1 step", lambda: analytic.marginal_mean_var(S1, 2, 0.5, 2.0), expect=lambda: (0.0, 1.0)),
    edge("s2 = 0 after beta = 0 steps", lambda: analytic.marginal_mean_var(S0, 2, X, 0.0), expect=lambda: (X64, 0.0)))
row("analytic.optimal_eps",
    bad("t", lambda: analytic.optimal_eps(S, X, 0, 0.0, 1.0), shows="0"),
    bad("t", lambda: analytic.optimal_eps(S, X, jnp.array([1, 2, 3]), 0.0, 1.0), label="array t"),
    bad("m", lambda: analytic.optimal_eps(S, X, 1, jnp.array([0.0, NAN, 0.0]), 1.0)),
    bad("s2", lambda: analytic.optimal_eps(S, X, 1, 0.0, -0.5), shows="-0.5"),
    bad("xt", lambda: analytic.optimal_eps(S, jnp.ones(3), 1, jnp.zeros(2), 1.0), label="shapes"),
    edge("N(0, 1) data", lambda: analytic.optimal_eps(S, X, 4, 0.0, 1.0),
         expect=lambda: math.sqrt(1 - abar(B_LIN, 4)) * X64),
    edge("point-mass data before any noise (0/0)", lambda: analytic.optimal_eps(S0, X, 2, X, 0.0),
         expect=lambda: np.zeros(3)),
    edge("point-mass data after beta = 0 steps", lambda: analytic.optimal_eps(S0, E, 3, X, 0.0),
         expect=lambda: (E64 - math.sqrt(0.5) * X64) / math.sqrt(0.5)),
    edge("beta = 1 step", lambda: analytic.optimal_eps(S1, X, 3, 0.0, 1.0), expect=lambda: X64))
row("analytic.optimal_x0",
    bad("s2", lambda: analytic.optimal_x0(S, X, 1, 0.0, jnp.inf)),
    bad("t", lambda: analytic.optimal_x0(S, X, 12, 0.0, 1.0), shows="12"),
    edge("point-mass data before any noise (0/0)", lambda: analytic.optimal_x0(S0, X, 1, X, 0.0), expect=lambda: X64),
    edge("beta = 1 step forgets x0", lambda: analytic.optimal_x0(S1, X, 2, 0.5, 2.0), expect=lambda: np.full(3, 0.5)),
    edge("N(0, 1) data, T = 1", lambda: analytic.optimal_x0(ST1, X, 1, 0.0, 1.0), expect=lambda: math.sqrt(0.7) * X64))
row("analytic.reverse_conditional",
    bad("t", lambda: analytic.reverse_conditional(S, X, 0, 0.0, 1.0), shows="0"),
    bad("m", lambda: analytic.reverse_conditional(S, X, 1, NAN, 1.0)),
    edge("point-mass data before any noise (0/0)", lambda: analytic.reverse_conditional(S0, X, 2, X, 0.0),
         expect=lambda: (X64, 0.0)),
    edge("N(0, 1) data: N(sqrt(alpha) x, beta)", lambda: analytic.reverse_conditional(S1, X, 3, 0.0, 1.0),
         expect=lambda: (math.sqrt(0.8) * X64, 0.2)),
    edge("T = 1, float64", lambda: analytic.reverse_conditional(ST1, X64, 1, 0.0, 1.0),
         expect=lambda: (math.sqrt(0.7) * X64, 0.3)))
row("analytic.log_likelihood",
    bad("s2", lambda: analytic.log_likelihood(X, 0.0, 0.0), shows="0.0"),
    bad("s2", lambda: analytic.log_likelihood(X, 0.0, -1.0)),
    bad("m", lambda: analytic.log_likelihood(X, jnp.inf, 1.0)),
    bad("x0", lambda: analytic.log_likelihood(jnp.ones(3), jnp.zeros(2), 1.0), label="shapes"),
    edge("standard normal, float64", lambda: analytic.log_likelihood(X64, 0.0, 1.0),
         expect=lambda: float(np.sum(-0.5 * (math.log(2 * math.pi) + X64**2)))),
    edge("a single example", lambda: analytic.log_likelihood(0.0, 0.0, 1.0), expect=lambda: -0.5 * math.log(2 * math.pi)))

# ==================================================================== module: bound

from scipy import stats  # noqa: E402

M1 = bound.optimal_reverse_process(ST1, jnp.zeros(1), 1.0)  # T = 1, exact for N(0, 1) data
M10 = bound.optimal_reverse_process(S, jnp.zeros(2), 1.0)
LOG2PI = math.log(2 * math.pi)
# T = 1, N(0, 1) data, sigma_1^2 = beta_1 = 0.3: p(x_0 | x_1) = N(sqrt(0.7) x_1, 0.3) exactly.
L0_T1 = 0.5 * math.log(2 * math.pi * 0.3) + 0.5  # E[-log p(x0 | x1)], E(x0 - sqrt(.7) x1)^2 = 0.3
L1_T1 = -0.5 * math.log(0.3)  # E KL(N(sqrt(.7) x0, .3) || N(0, 1)) with E x0^2 = 1


def kl_terms_T1(x0, eps):
    x1 = math.sqrt(0.7) * x0 + math.sqrt(0.3) * eps
    decoder = -stats.norm.logpdf(x0, math.sqrt(0.7) * x1, math.sqrt(0.3))
    prior = 0.5 * (0.7 * x0**2 + 0.3 - 1 - math.log(0.3))  # KL of two Gaussians, var + mean^2 - 1 - log var
    return [float(decoder), float(prior)]


def log_ratio_T1(x0, eps):
    x1 = math.sqrt(0.7) * x0 + math.sqrt(0.3) * eps
    return float(-stats.norm.logpdf(x1) - stats.norm.logpdf(x0, math.sqrt(0.7) * x1, math.sqrt(0.3))
                 + stats.norm.logpdf(x1, math.sqrt(0.7) * x0, math.sqrt(0.3)))


row("bound.ReverseProcess",
    note("a frozen dataclass built by reverse_process/optimal_reverse_process, which validate; its "
         "methods refuse a bad t and give the exact T = 1 mean", lambda: M1.T == 1),
    bad("t", lambda: M10.eps(jnp.zeros(2), 11), shows="11"),
    bad("t", lambda: M10.mean(jnp.zeros(2), 0), shows="0"),
    edge("mean at T = 1 is sqrt(alpha_1) x", lambda: M1.mean(jnp.array([2.0]), 1), expect=lambda: [2 * math.sqrt(0.7)],
         atol=1e-6))
row("bound.reverse_variances",
    bad("schedule", lambda: bound.reverse_variances([0.1, 0.2])),
    bad("sigma2", lambda: bound.reverse_variances(S, "beta_hat"), shows="'beta_hat'"),
    bad("sigma2", lambda: bound.reverse_variances(S, np.ones(3)), label="length"),
    bad("sigma2", lambda: bound.reverse_variances(ST1, np.array([1.0, 0.0])), label="zero"),
    bad("sigma2", lambda: bound.reverse_variances(ST1, "abc"), label="string"),
    edge("T = 1 beta_tilde falls back to beta_1", lambda: bound.reverse_variances(ST1, "beta_tilde"),
         expect=lambda: [1.0, 0.3]),
    edge("float64 array", lambda: bound.reverse_variances(ST1, np.array([5.0, 0.25])), expect=lambda: [1.0, 0.25]))
row("bound.reverse_process",
    bad("schedule", lambda: bound.reverse_process(S0, np.zeros(5), np.zeros(5)), label="beta = 0"),
    bad("schedule", lambda: bound.reverse_process(S1, np.zeros(4), np.zeros(4)), label="beta = 1"),
    bad("eps_scale", lambda: bound.reverse_process(ST1, np.zeros(3), np.zeros(2))),
    bad("eps_shift", lambda: bound.reverse_process(ST1, np.zeros(2), np.array([0.0, NAN]))),
    bad("eps_shift", lambda: bound.reverse_process(ST1, np.zeros(2), "ab"), label="string"),
    edge("T = 1", lambda: bound.reverse_process(ST1, np.zeros(2), np.ones(2)).eps_shift, expect=lambda: [1.0, 1.0]))
row("bound.optimal_reverse_process",
    bad("gain", lambda: bound.optimal_reverse_process(ST1, 0.0, 1.0, gain=NAN)),
    bad("gain", lambda: bound.optimal_reverse_process(ST1, 0.0, 1.0, gain="1")),
    bad("m", lambda: bound.optimal_reverse_process(ST1, NAN, 1.0)),
    bad("s2", lambda: bound.optimal_reverse_process(ST1, 0.0, -1.0), shows="-1.0"),
    bad("s2", lambda: bound.optimal_reverse_process(ST1, jnp.zeros(2), jnp.ones(3)), label="shapes"),
    bad("schedule", lambda: bound.optimal_reverse_process(S0, 0.0, 1.0), label="beta = 0"),
    edge("T = 1: eps* = sqrt(1 - alpha_bar) x", lambda: M1.eps_scale[1], expect=lambda: [math.sqrt(0.3)]),
    edge("s2 = 0", lambda: bound.optimal_reverse_process(ST1, 0.5, 0.0).eps_shift[1],
         expect=lambda: -math.sqrt(0.3) * math.sqrt(0.7) * 0.5 / 0.3))
row("bound.log_ratio",
    bad("eps", lambda: bound.log_ratio(M1, jnp.zeros(1), jnp.zeros((2, 1)))),
    bad("model", lambda: bound.log_ratio(ST1, jnp.zeros(1), jnp.zeros((1, 1)))),
    edge("T = 1 against scipy", lambda: bound.log_ratio(M1, jnp.array([0.8]), jnp.array([[-0.4]])),
         expect=lambda: log_ratio_T1(0.8, -0.4), rtol=1e-5))
row("bound.trajectory_log_ratios",
    bad("x0", lambda: bound.trajectory_log_ratios(KEY, M1, 0.5)),
    bad("key", lambda: bound.trajectory_log_ratios(1, M1, jnp.zeros((2, 1)))),
    bad("model", lambda: bound.trajectory_log_ratios(KEY, "model", jnp.zeros((2, 1)))),
    edge("empty batch", lambda: bound.trajectory_log_ratios(KEY, M1, jnp.zeros((0, 1))).shape,
         check=lambda shape: shape == (0,)),
    edge("single example, T = 1", lambda: bound.trajectory_log_ratios(KEY, M1, jnp.zeros((1, 1)))))
row("bound.mc_bound",
    bad("num_samples", lambda: bound.mc_bound(KEY, M1, 0.0, 1.0, 1), shows="1"),
    bad("num_samples", lambda: bound.mc_bound(KEY, M1, 0.0, 1.0, 10.0)),
    bad("m", lambda: bound.mc_bound(KEY, M1, NAN, 1.0, 10)),
    bad("m", lambda: bound.mc_bound(KEY, M10, jnp.zeros(3), 1.0, 10), label="data shape"),
    bad("key", lambda: bound.mc_bound(None, M1, 0.0, 1.0, 10)),
    edge("two samples, np.int64", lambda: bound.mc_bound(KEY, M1, jnp.zeros(1), 1.0, np.int64(2))))
row("bound.ancestral_sample",
    bad("num_samples", lambda: bound.ancestral_sample(KEY, M1, 0), shows="0"),
    bad("num_samples", lambda: bound.ancestral_sample(KEY, M1, 2.0)),
    bad("model", lambda: bound.ancestral_sample(KEY, S, 2)),
    edge("single sample, T = 1", lambda: bound.ancestral_sample(KEY, M1, 1)))
row("bound.kl_terms",
    bad("eps", lambda: bound.kl_terms(M1, jnp.zeros(1), jnp.zeros((1, 2)))),
    bad("model", lambda: bound.kl_terms([M1], jnp.zeros(1), jnp.zeros((1, 1)))),
    edge("T = 1 against scipy", lambda: bound.kl_terms(M1, jnp.array([0.8]), jnp.array([[-0.4]])),
         expect=lambda: kl_terms_T1(0.8, -0.4), rtol=1e-5))
row("bound.expected_eps_error",
    bad("s2", lambda: bound.expected_eps_error(M1, 0.0, -2.0), shows="-2.0"),
    bad("model", lambda: bound.expected_eps_error(None, 0.0, 1.0)),
    edge("T = 1: the MMSE 1 - (1 - alpha_bar) / v", lambda: bound.expected_eps_error(M1, jnp.zeros(1), 1.0),
         expect=lambda: [0.0, 0.7]))
row("bound.loss_constants",
    bad("num_dims", lambda: bound.loss_constants(M1, 0), shows="0"),
    bad("num_dims", lambda: bound.loss_constants(M1, 1.5)),
    edge("T = 1, np.int64", lambda: bound.loss_constants(M1, np.int64(1)),
         expect=lambda: [0.0, 0.5 * math.log(2 * math.pi * 0.3)]))
row("bound.bound_terms",
    bad("m", lambda: bound.bound_terms(M1, jnp.full(1, NAN), 1.0)),
    bad("s2", lambda: bound.bound_terms(M1, 0.0, NAN)),
    bad("m", lambda: bound.bound_terms(M10, jnp.zeros(5), 1.0), label="data shape"),
    edge("T = 1, exact model", lambda: bound.bound_terms(M1, jnp.zeros(1), 1.0), expect=lambda: [L0_T1, L1_T1]))
row("bound.prior_kl",
    bad("schedule", lambda: bound.prior_kl([0.5], X)),
    bad("x0", lambda: bound.prior_kl(S, "x")),
    edge("beta = 1 step: exactly 0 for every x0", lambda: bound.prior_kl(S1, X), expect=lambda: 0.0),
    edge("beta = 0 only: a point mass, KL = inf", lambda: bound.prior_kl(SZ, X), expect=lambda: np.inf),
    edge("T = 1 against the Gaussian KL", lambda: bound.prior_kl(ST1, X64),
         expect=lambda: float(np.sum(0.5 * (0.3 + 0.7 * X64**2 - 1 - math.log(0.3))))))
row("bound.expected_prior_kl",
    bad("schedule", lambda: bound.expected_prior_kl(np.ones(3), 0.0, 1.0)),
    bad("s2", lambda: bound.expected_prior_kl(S, 0.0, -1.0), shows="-1.0"),
    edge("beta = 1 step", lambda: bound.expected_prior_kl(S1, X, 2.0), expect=lambda: 0.0),
    edge("T = 1", lambda: bound.expected_prior_kl(ST1, 0.0, 1.0), expect=lambda: L1_T1))
row("bound.model_marginal",
    bad("model", lambda: bound.model_marginal((M1,))),
    edge("T = 1, exact model: N(0, 1)", lambda: bound.model_marginal(M1), expect=lambda: ([0.0], [1.0])))
row("bound.model_nll",
    bad("m", lambda: bound.model_nll(M1, jnp.inf, 1.0)),
    bad("s2", lambda: bound.model_nll(M1, 0.0, "1")),
    edge("T = 1, exact model: the entropy", lambda: bound.model_nll(M1, jnp.zeros(1), 1.0),
         expect=lambda: float(stats.norm.entropy())))
row("bound.data_entropy",
    bad("s2", lambda: bound.data_entropy(0.0, 0.0), shows="0.0"),
    bad("m", lambda: bound.data_entropy(NAN, 1.0)),
    bad("s2", lambda: bound.data_entropy(jnp.zeros(2), jnp.ones(3)), label="shapes"),
    edge("float64, against scipy", lambda: bound.data_entropy(np.zeros(2), np.array([1.0, 4.0])),
         expect=lambda: float(stats.norm.entropy(scale=1.0) + stats.norm.entropy(scale=2.0))))
row("bound.nats_to_bits_per_dim",
    bad("num_dims", lambda: bound.nats_to_bits_per_dim(1.0, 0), shows="0"),
    bad("nats", lambda: bound.nats_to_bits_per_dim("1.0", 2)),
    edge("np.int64 dims", lambda: bound.nats_to_bits_per_dim(math.log(2.0), np.int64(1)), expect=lambda: 1.0))
row("bound.max_prior_bits_per_dim",
    bad("data_range", lambda: bound.max_prior_bits_per_dim(S, (1.0, -1.0))),
    bad("data_range", lambda: bound.max_prior_bits_per_dim(S, 1.0), label="scalar"),
    bad("schedule", lambda: bound.max_prior_bits_per_dim("S")),
    edge("T = 1", lambda: bound.max_prior_bits_per_dim(ST1), expect=lambda: -0.5 * math.log(0.3) / math.log(2)),
    edge("beta = 1 step", lambda: bound.max_prior_bits_per_dim(S1), expect=lambda: 0.0))

# ==================================================================== module: data

row("data.single_dot",
    bad("size", lambda: data.single_dot(0), shows="0"),
    bad("size", lambda: data.single_dot(3.0), shows="3.0"),
    bad("row", lambda: data.single_dot(3, row=3)),
    bad("col", lambda: data.single_dot(3, col=1.5)),
    edge("1 x 1 image, np.int64 size", lambda: data.single_dot(np.int64(1)), expect=lambda: [[1.0]]),
    edge("corner", lambda: data.single_dot(2, row=0, col=1), expect=lambda: [[0.0, 1.0], [0.0, 0.0]]))
row("data.single_dot_dataset",
    bad("n", lambda: data.single_dot_dataset(0), shows="0"),
    bad("size", lambda: data.single_dot_dataset(2, size=-1)),
    edge("a single example", lambda: data.single_dot_dataset(1, 3),
         expect=lambda: np.eye(3)[None] * np.array([0, 1, 0])[:, None] * np.array([0, 1, 0])[None, :]))
row("data.two_moons",
    bad("n", lambda: data.two_moons(KEY, 0), shows="0"),
    bad("n", lambda: data.two_moons(KEY, 2.5), shows="2.5"),
    bad("noise", lambda: data.two_moons(KEY, 5, noise=-0.1), shows="-0.1"),
    bad("noise", lambda: data.two_moons(KEY, 5, noise="0.1")),
    bad("key", lambda: data.two_moons(0, 5)),
    edge("a single point, np.int64 n, no noise", lambda: data.two_moons(KEY, np.int64(1), noise=0.0),
         check=lambda x: x.shape == (1, 2) and bool(jnp.all(jnp.isfinite(x)))))
row("data.gaussian_mixture",
    bad("std", lambda: data.gaussian_mixture(KEY, 5, std=0.0), shows="0.0"),
    bad("radius", lambda: data.gaussian_mixture(KEY, 5, radius=-1.0)),
    bad("num_modes", lambda: data.gaussian_mixture(KEY, 5, num_modes=0)),
    bad("n", lambda: data.gaussian_mixture(KEY, -2)),
    bad("key", lambda: data.gaussian_mixture(jax.random.split(KEY, 2), 5)),
    edge("one mode at the origin", lambda: data.gaussian_mixture(KEY, 1, num_modes=np.int64(1), radius=0.0,
                                                                 std=1e-30), expect=lambda: [[0.0, 0.0]]))
row("data.digits",
    bad("split", lambda: data.digits("validation"), shows="'validation'"),
    bad("test_fraction", lambda: data.digits("train", test_fraction=1.0), shows="1.0"),
    bad("test_fraction", lambda: data.digits("train", test_fraction="0.2")),
    bad("seed", lambda: data.digits("train", seed=-1), shows="-1"),
    edge("np.int64 seed, tiny test split", lambda: data.digits("test", seed=np.int64(1), test_fraction=1e-3)[0].shape,
         check=lambda shape: shape == (2, 8, 8)))

# ==================================================================== module: timing

row("timing.Timing",
    note("a frozen dataclass of four numbers returned by time_call; nothing to refuse",
         lambda: timing.Timing(best=1.0, median=1.0, number=1, repeats=1)))
row("timing.time_call",
    bad("fn", lambda: timing.time_call(3.0)),
    bad("repeats", lambda: timing.time_call(abs, 1.0, repeats=0), shows="0"),
    bad("warmup", lambda: timing.time_call(abs, 1.0, warmup=-1), shows="-1"),
    bad("min_time", lambda: timing.time_call(abs, 1.0, min_time=NAN)),
    bad("repeats", lambda: timing.time_call(abs, 1.0, repeats=2.5)),
    edge("one repeat, no warm-up, np.int64", lambda: timing.time_call(jnp.sin, X, repeats=np.int64(1), warmup=0,
                                                                       min_time=0.0),
         check=lambda r: r.repeats == 1 and r.number >= 1 and 0 <= r.best <= r.median))
row("timing.time_first_call",
    bad("fn", lambda: timing.time_first_call(None)),
    edge("seconds >= 0", lambda: timing.time_first_call(jnp.cos, X), check=lambda sec: sec >= 0))

# ==================================================================== module: notebook

row("notebook.show_source",
    bad("obj", lambda: notebook.show_source(3)),
    note("shows the source of a library function as a fenced code block",
         lambda: notebook.show_source(forward.q_sample).data.startswith("```python\ndef q_sample")))
row("notebook.glue",
    bad("name", lambda: notebook.glue("", 1.0)),
    bad("name", lambda: notebook.glue(3, 1.0), label="not a string"),
    note("stores a value for {glue}; a no-op without myst_nb", lambda: notebook.glue("d_probe", 1.0)))

# ==================================================================== module: checking

from ddpm_lib import checking  # noqa: E402

_q_jit = jax.jit(forward.q_sample)
row("checking.checked",
    bad("fun", lambda: checking.checked(3)),
    bad("t", lambda: checking.checked(_q_jit)(S, X, 11, E), shows="11", label="traced t > T"),
    bad("t", lambda: checking.checked(_q_jit)(S, X, 0, E), shows="0", label="traced t = 0"),
    bad("t", lambda: checking.checked(jax.vmap(forward.q_sample, in_axes=(None, None, 0, None)))(
        S, X, jnp.array([2, -1]), E), label="vmapped steps"),
    bad("beta", lambda: checking.checked(jax.jit(forward.compute_mean))(X, 1.5), shows="1.5"),
    edge("a legal call gives the plain result", lambda: checking.checked(_q_jit)(S, X, 10, E),
         expect=lambda: q64(B_LIN, 10, X64, E64)))

# ==================================================================== module: sampling

from flax import nnx  # noqa: E402

from ddpm_lib import models, sampling, train  # noqa: E402


def eps_star_S0(x, t):  # the exact eps* for N(0, 1) data on S0 (module level: one compiled sampler)
    return analytic.optimal_eps(S0, x, t, 0.0, 1.0)


def eps_star_ST1(x, t):
    return analytic.optimal_eps(ST1, x, t, 0.0, 1.0)


def _wrong_shape(x, t):
    return jnp.zeros(x.shape[-1:])


def _moments_ok(x, var):
    """Sample mean 0 and variance ``var``, within 5 standard errors (n = x.size draws)."""
    x = np.asarray(x, np.float64).ravel()
    n = x.size
    return abs(x.mean()) < 5 * math.sqrt(var / n) and abs(x.var() - var) < 5 * var * math.sqrt(2 / n)


row("sampling.reverse_std",
    bad("t", lambda: sampling.reverse_std(S, 0), shows="0"),
    bad("t", lambda: sampling.reverse_std(S, 11), shows="11"),
    bad("t", lambda: sampling.reverse_std(S, -1), shows="-1"),
    bad("t", lambda: sampling.reverse_std(S, 2.0), shows="2.0"),
    bad("t", lambda: sampling.reverse_std(S, jnp.array([1, 2])), label="array t"),
    bad("sigma2", lambda: sampling.reverse_std(S, 1, "beta_hat")),
    bad("schedule", lambda: sampling.reverse_std([0.1], 1)),
    edge("beta = 0 step", lambda: (sampling.reverse_std(S0, 2), sampling.reverse_std(S0, 2, "beta_tilde")),
         expect=lambda: (0.0, 0.0)),
    edge("beta = 1 step", lambda: sampling.reverse_std(S1, 2), expect=lambda: 1.0),
    edge("beta_tilde", lambda: sampling.reverse_std(S1, 3, "beta_tilde"), expect=lambda: math.sqrt(btilde(B1, 3))),
    edge("np.int64 t", lambda: sampling.reverse_std(S, np.int64(3)), expect=lambda: math.sqrt(B_LIN[2])))
row("sampling.reverse_mean",
    bad("denoiser", lambda: sampling.reverse_mean("f", S, X, 1)),
    bad("t", lambda: sampling.reverse_mean(eps_star_S0, S0, X, 5), shows="5"),
    bad("prediction", lambda: sampling.reverse_mean(eps_star_S0, S0, X, 1, prediction="x0")),
    bad("clip_x0", lambda: sampling.reverse_mean(eps_star_S0, S0, X, 3, clip_x0=-1.0)),
    bad("denoiser", lambda: sampling.reverse_mean(_wrong_shape, S0, jnp.ones((4, 3)), 3), label="output shape"),
    bad("schedule", lambda: sampling.reverse_mean(eps_star_S0, "S0", X, 1)),
    edge("beta = 0 step is the identity", lambda: sampling.reverse_mean(eps_star_S0, S0, X, 2), expect=lambda: X64),
    edge("N(0, 1) data: sqrt(alpha) x", lambda: sampling.reverse_mean(eps_star_S0, S0, X, 3),
         expect=lambda: math.sqrt(0.5) * X64),
    edge("clipped x0", lambda: sampling.reverse_mean(eps_star_S0, S0, X, 3, clip_x0=1.0),
         expect=lambda: post64(B0, 3, np.clip(math.sqrt(0.5) * X64, -1, 1), X64)),
    edge("prediction = mean", lambda: sampling.reverse_mean(lambda x, t: 2 * x, S, X, 4, prediction="mean"),
         expect=lambda: 2 * X64))
row("sampling.reverse_step",
    bad("z", lambda: sampling.reverse_step(eps_star_S0, S0, X, 3, jnp.ones(2))),
    bad("z", lambda: sampling.reverse_step(eps_star_S0, S0, jnp.ones((2, 3)), 3, jnp.ones(3)), label="broadcast"),
    bad("sigma2", lambda: sampling.reverse_step(eps_star_S0, S0, X, 3, E, sigma2="sigma")),
    bad("t", lambda: sampling.reverse_step(eps_star_S0, S0, X, 0, E), shows="0"),
    edge("beta = 0 step: x_{t-1} = x_t", lambda: sampling.reverse_step(eps_star_S0, S0, X, 2, E), expect=lambda: X64),
    edge("t = 1 adds no noise", lambda: sampling.reverse_step(eps_star_ST1, ST1, X, 1, E),
         expect=lambda: math.sqrt(0.7) * X64),
    edge("N(0, 1) data", lambda: sampling.reverse_step(eps_star_S0, S0, X, 4, E),
         expect=lambda: math.sqrt(0.5) * X64 + math.sqrt(0.5) * E64))
row("sampling.sample",
    bad("shape", lambda: sampling.sample(eps_star_S0, S0, KEY, (2.5, 1)), shows="2.5"),
    bad("shape", lambda: sampling.sample(eps_star_S0, S0, KEY, "12")),
    bad("shape", lambda: sampling.sample(eps_star_S0, S0, KEY, (-1, 1))),
    bad("key", lambda: sampling.sample(eps_star_S0, S0, 0, (4, 1))),
    bad("schedule", lambda: sampling.sample(eps_star_S0, B0, KEY, (4, 1))),
    bad("schedule", lambda: sampling.sample(eps_star_S0, S1, KEY, (4, 1)), label="beta = 1"),
    bad("denoiser", lambda: sampling.sample(None, S0, KEY, (4, 1))),
    edge("beta = 0 steps, exact eps*: N(0, 1) (5 s.e.)", lambda: sampling.sample(eps_star_S0, S0, KEY, (4000, 1)),
         check=lambda x: x.shape == (4000, 1) and _moments_ok(x, 1.0)),
    edge("T = 1, exact eps*: N(0, alpha_1) (5 s.e.)", lambda: sampling.sample(eps_star_ST1, ST1, KEY, (4000, 1)),
         check=lambda x: _moments_ok(x, 0.7)),
    edge("a single example, np.int64 shape", lambda: sampling.sample(eps_star_S0, S0, KEY, (np.int64(1), 1)),
         check=lambda x: x.shape == (1, 1) and bool(jnp.all(jnp.isfinite(x)))))

# ==================================================================== module: train

TINY = models.MLPDenoiser((2,), width=4, num_blocks=1, time_dim=4, rngs=nnx.Rngs(0))
OTHER = models.MLPDenoiser((2,), width=6, num_blocks=1, time_dim=4, rngs=nnx.Rngs(0))
DATA2 = jnp.array([[0.5, -0.5]])  # a single example


def _tiny_run(schedule=ST1, data=DATA2, **kw):
    """A fresh tiny model and optimizer (so each probe starts from the same state)."""
    model = models.MLPDenoiser((2,), width=4, num_blocks=1, time_dim=4, rngs=nnx.Rngs(0))
    optimizer = nnx.Optimizer(model, train.make_optimizer(1e-3, warmup_steps=0), wrt=nnx.Param)
    return model, optimizer


def _train(schedule=ST1, data=DATA2, optimizer=None, **kw):
    model, opt = _tiny_run()
    kw = {"num_steps": 2, "batch_size": 2, **kw}
    return train.train(model, opt if optimizer is None else optimizer, schedule, data, KEY, **kw)


def _first_adam_update(tx):
    state = tx.init(jnp.zeros(1))
    update, _ = tx.update(jnp.array([0.5]), state)
    return update


row("train.make_optimizer",
    bad("learning_rate", lambda: train.make_optimizer(0.0), shows="0.0"),
    bad("learning_rate", lambda: train.make_optimizer("1e-3")),
    bad("clip_norm", lambda: train.make_optimizer(clip_norm=NAN)),
    bad("warmup_steps", lambda: train.make_optimizer(warmup_steps=-1), shows="-1"),
    bad("warmup_steps", lambda: train.make_optimizer(warmup_steps=2.5)),
    bad("total_steps", lambda: train.make_optimizer(total_steps=0), shows="0"),
    edge("total_steps = 1: one step at the learning rate (Adam's first step is -lr sign g)",
         lambda: _first_adam_update(train.make_optimizer(1e-3, total_steps=1)), expect=lambda: [-1e-3]),
    edge("np.int64 steps", lambda: _first_adam_update(train.make_optimizer(1e-3, warmup_steps=np.int64(0),
                                                                            total_steps=np.int64(3)))))
row("train.draw_batch",
    bad("key", lambda: train.draw_batch(0, DATA2, 1, 2)),
    bad("T", lambda: train.draw_batch(KEY, DATA2, 0, 2), shows="0"),
    bad("batch_size", lambda: train.draw_batch(KEY, DATA2, 1, 0), shows="0"),
    bad("data", lambda: train.draw_batch(KEY, jnp.zeros((0, 2)), 1, 2)),
    edge("T = 1, a single example", lambda: train.draw_batch(KEY, DATA2, 1, 3)[:2],
         expect=lambda: (np.tile([0.5, -0.5], (3, 1)), np.ones(3))))
X0B = jnp.array([[0.5, -1.0], [2.0, 0.0]])
EPSB = jnp.array([[0.3, 0.1], [-0.2, 0.4]])
row("train.diffusion_loss",
    bad("t", lambda: train.diffusion_loss(TINY, S, X0B, 3, EPSB), label="scalar t"),
    bad("t", lambda: train.diffusion_loss(TINY, S, X0B, jnp.array([0, 3]), EPSB), shows="0"),
    bad("t", lambda: train.diffusion_loss(TINY, S, X0B, jnp.array([11, 3]), EPSB), shows="11"),
    bad("t", lambda: train.diffusion_loss(TINY, S, X0B, jnp.array([1.0, 3.0]), EPSB), label="float t"),
    bad("eps", lambda: train.diffusion_loss(TINY, S, X0B, jnp.array([1, 3]), EPSB[:1])),
    bad("x0", lambda: train.diffusion_loss(TINY, S, jnp.zeros((0, 2)), jnp.zeros(0, int), jnp.zeros((0, 2)))),
    bad("schedule", lambda: train.diffusion_loss(TINY, B0, X0B, jnp.array([1, 3]), EPSB)),
    bad("model", lambda: train.diffusion_loss(None, S, X0B, jnp.array([1, 3]), EPSB)),
    edge("beta = 0 steps, identity model: mean (x0 - eps)^2",
         lambda: train.diffusion_loss(lambda x, t: x, S0, X0B, jnp.array([1, 2]), EPSB),
         expect=lambda: float(np.mean((np.asarray(X0B) - np.asarray(EPSB)) ** 2))),
    edge("beta = 0 steps, mean prediction: 0", lambda: train.diffusion_loss(lambda x, t: x, S0, X0B,
                                                                            jnp.array([1, 2]), EPSB, "mean"),
         expect=lambda: 0.0),
    edge("beta = 1 step, zero model: mean eps^2", lambda: train.diffusion_loss(lambda x, t: 0 * x, S1, X0B,
                                                                               jnp.array([2, 3]), EPSB),
         expect=lambda: float(np.mean(np.asarray(EPSB) ** 2))))
row("train.train_step",
    bad("optimizer", lambda: train.train_step(TINY, nnx.Optimizer(OTHER, train.make_optimizer(), wrt=nnx.Param),
                                              ST1, DATA2, KEY, batch_size=2)),
    bad("batch_size", lambda: train.train_step(*_tiny_run(), ST1, DATA2, KEY, batch_size=0)),
    bad("schedule", lambda: train.train_step(*_tiny_run(), [0.3], DATA2, KEY, batch_size=2)),
    edge("T = 1, a single example", lambda: train.train_step(*_tiny_run(), ST1, DATA2, KEY, batch_size=2)))
row("train.train",
    bad("data", lambda: _train(data=jnp.array([[0.5, NAN]]))),
    bad("optimizer", lambda: _train(optimizer=nnx.Optimizer(OTHER, train.make_optimizer(), wrt=nnx.Param))),
    bad("schedule", lambda: _train(schedule=[0.3])),
    bad("ema_decay", lambda: _train(ema_decay=1.0), shows="1.0"),
    bad("ema_decay", lambda: _train(ema_decay="0.9")),
    bad("num_steps", lambda: _train(num_steps=0), shows="0"),
    bad("mesh", lambda: _train(mesh="data"), shows="str"),
    bad("data", lambda: _train(data=jnp.ones((1, 3))), label="shape"),
    edge("beta = 0 steps, a single float64 example, np.int64 steps",
         lambda: _train(schedule=S0, data=np.array([[0.5, -0.5]]), num_steps=np.int64(2),
                        batch_size=np.int64(2)).losses))
row("train.TrainResult",
    note("a frozen dataclass returned by train (losses, ema_model, seconds); nothing to refuse",
         lambda: train.TrainResult(losses=np.zeros(1), ema_model=None, seconds=0.0)))


def _one_device_mesh():
    mesh = train.data_mesh(jax.devices()[:1])
    assert mesh.axis_names == (train.DATA_AXIS,) and mesh.size == 1, mesh
    return mesh


row("train.data_mesh",
    bad("devices", lambda: train.data_mesh([])),
    note("a one-device mesh has the single axis 'data' (multi-device runs: tests/test_sharding.py)",
         _one_device_mesh),
    note("train with a one-device mesh gives the one-device losses (up to float32 round-off)",
         lambda: np.testing.assert_allclose(_train(mesh=_one_device_mesh()).losses, _train().losses,
                                            rtol=1e-5)))
row("train.DATA_AXIS",  # the axis name train() splits the batch over; a mesh without it is refused
    bad("mesh", lambda: _train(mesh=jax.sharding.Mesh(np.array(jax.devices()[:1]), ("x",))), shows="'x'"))

# ==================================================================== module: models


def _embedding64(t, dim, max_period=10_000.0):
    w = max_period ** (-np.arange(dim // 2) / (dim // 2))
    return np.concatenate([np.sin(t * w), np.cos(t * w)])


row("models.timestep_embedding",
    bad("dim", lambda: models.timestep_embedding(3, 5), shows="5"),
    bad("dim", lambda: models.timestep_embedding(3, 4.0)),
    bad("max_period", lambda: models.timestep_embedding(3, 4, max_period=0.0)),
    bad("t", lambda: models.timestep_embedding("3", 4)),
    edge("np.int64 dim, t = 1", lambda: models.timestep_embedding(1, np.int64(4)), expect=lambda: _embedding64(1, 4)),
    edge("float64 t array", lambda: models.timestep_embedding(np.array([0.0, 7.0]), 2),
         expect=lambda: np.stack([_embedding64(0.0, 2), _embedding64(7.0, 2)])))
row("models.MLPDenoiser",
    bad("time_dim", lambda: models.MLPDenoiser((2,), time_dim=3, rngs=nnx.Rngs(0)), shows="3"),
    bad("width", lambda: models.MLPDenoiser((2,), width=0, rngs=nnx.Rngs(0)), shows="0"),
    bad("data_shape", lambda: models.MLPDenoiser((0,), rngs=nnx.Rngs(0))),
    bad("data_shape", lambda: models.MLPDenoiser((2.5,), rngs=nnx.Rngs(0)), label="float"),
    bad("rngs", lambda: models.MLPDenoiser((2,), rngs=0)),
    bad("x", lambda: TINY(jnp.ones((4, 3)), 1), label="call"),
    edge("untrained: predicts 0, a single example", lambda: TINY(jnp.ones((1, 2)), 1), expect=lambda: np.zeros((1, 2))),
    edge("np.int64 sizes", lambda: models.MLPDenoiser((np.int64(2),), width=np.int64(4), num_blocks=np.int64(1),
                                                      time_dim=np.int64(4), rngs=nnx.Rngs(0))(X[:2], 3),
         expect=lambda: np.zeros(2)))
row("models.Conv3x3",
    bad("stride", lambda: models.Conv3x3(1, 1, stride=3, rngs=nnx.Rngs(0)), shows="3"),
    bad("c_in", lambda: models.Conv3x3(0, 1, rngs=nnx.Rngs(0)), shows="0"),
    bad("c_out", lambda: models.Conv3x3(1, 2.0, rngs=nnx.Rngs(0))),
    bad("rngs", lambda: models.Conv3x3(1, 1, rngs=None)),
    edge("zero kernel: the bias (0), a single 2 x 2 image",
         lambda: models.Conv3x3(1, 1, zero_init=True, rngs=nnx.Rngs(0))(jnp.ones((1, 2, 2, 1))),
         expect=lambda: np.zeros((1, 2, 2, 1))))
row("models.UNet",
    bad("image_size", lambda: models.UNet(7, rngs=nnx.Rngs(0)), shows="7"),
    bad("time_dim", lambda: models.UNet(4, channels=(4, 4), time_dim=5, rngs=nnx.Rngs(0))),
    bad("rngs", lambda: models.UNet(4, channels=(4, 4), rngs="rngs")),
    # Built abstractly (nnx.eval_shape): the constructor's checks run, no weights are drawn (an
    # eager U-Net costs a minute on a loaded 2-core machine; tests/test_models.py runs one).
    edge("widths not multiples of 8, 2 x 2 images, np.int64 sizes",
         lambda: models.count_params(nnx.eval_shape(lambda: models.UNet(np.int64(2), channels=(4, 6),
                                                                         time_dim=np.int64(4), rngs=nnx.Rngs(0)))),
         check=lambda n: n > 0))
row("models.count_params",
    bad("model", lambda: models.count_params([1, 2])),
    edge("a 1 -> 1 convolution: 9 weights and 1 bias", lambda: models.count_params(models.Conv3x3(1, 1, rngs=nnx.Rngs(0))),
         expect=lambda: 10))

# ==================================================================== module: plotting

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from ddpm_lib import plotting, plotting_models  # noqa: E402


def draws(make) -> Callable:
    """A probe that draws a figure (legal edge inputs), checks it is a Figure, and closes it."""
    def run():
        out = make()
        fig = out[0] if isinstance(out, tuple) else out
        ok = isinstance(fig, matplotlib.figure.Figure)
        plt.close("all")
        assert ok, f"expected a Figure, got {type(fig).__name__}"
    return run


_PLOT_NOTE = "draws with matplotlib and returns a Figure; checked on legal edge input ({})"
row("plotting.show_chain",
    note(_PLOT_NOTE.format("a single 1 x 1 image"), draws(lambda: plotting.show_chain(np.ones((1, 1, 1))))))
row("plotting.show_chains",
    note(_PLOT_NOTE.format("one chain of one image"), draws(lambda: plotting.show_chains({"a": np.ones((1, 2, 2))}))))
row("plotting.plot_schedules",
    note(_PLOT_NOTE.format("T = 1, beta = 0 and beta = 1 schedules: SNR 0 and inf"),
         draws(lambda: plotting.plot_schedules({"T = 1": ST1, "beta = 0": S0, "beta = 1": S1}))))
row("plotting.plot_two_chains",
    note(_PLOT_NOTE.format("two 1 x 1 images"),
         draws(lambda: plotting.plot_two_chains([np.ones((1, 1)), np.zeros((1, 1))], ["x_0", "x_1"]))))

# ==================================================================== module: plotting_models

row("plotting_models.plot_loss",
    note(_PLOT_NOTE.format("a single step"), draws(lambda: plotting_models.plot_loss([1.0], window=1))))
row("plotting_models.image_grid",
    note(_PLOT_NOTE.format("a single 1 x 1 image"), draws(lambda: plotting_models.image_grid(np.ones((1, 1, 1))))))
row("plotting_models.plot_points",
    note(_PLOT_NOTE.format("a single point"), draws(lambda: plotting_models.plot_points({"a": np.zeros((1, 2))}))))
row("plotting_models.plot_snapshots",
    note(_PLOT_NOTE.format("T = 1, one point"),
         draws(lambda: plotting_models.plot_snapshots(np.zeros((2, 1, 2)), [1, 0]))))
row("plotting_models.plot_forward_reverse",
    note(_PLOT_NOTE.format("one step, one point"),
         draws(lambda: plotting_models.plot_forward_reverse([np.zeros((1, 2))], [np.zeros((1, 2))], [1]))))
row("plotting_models.plot_trajectories",
    note(_PLOT_NOTE.format("T = 1, one path"), draws(lambda: plotting_models.plot_trajectories(np.zeros((2, 1, 2))))))
row("plotting_models.plot_timings",
    note(_PLOT_NOTE.format("one dimension, one series"),
         draws(lambda: plotting_models.plot_timings([2], {"a": [1e-6]}))))

# ==================================================================== module: metrics (helper G)

from ddpm_lib import metrics  # noqa: E402

_P = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0]])  # three points: pairwise distances 1, 2, sqrt(5)
_Q = np.array([[3.0, 0.0], [0.0, 4.0]])
_PN = np.array([[0.0, 0.0], [NAN, 1.0]])  # issue 10: one NaN once gave a plausible 2e-07


def _energy64(x, y):
    d = lambda a, b: np.sqrt(((a[:, None] - b[None]) ** 2).sum(-1)).mean()  # noqa: E731
    return 2 * d(x, y) - d(x, x) - d(y, y)


row("metrics.energy_distance",
    bad("x", lambda: metrics.energy_distance(_PN, _P)),
    bad("y", lambda: metrics.energy_distance(_P, np.full((2, 2), np.inf))),
    bad("x", lambda: metrics.energy_distance(X, _P), label="1-D"),
    bad("x", lambda: metrics.energy_distance(_P, np.ones((2, 3))), label="dimension"),
    edge("a single point each, float64", lambda: metrics.energy_distance(_P[:1], _Q[:1]), expect=lambda: 2 * 3.0),
    edge("by hand", lambda: metrics.energy_distance(_P, _Q), expect=lambda: _energy64(_P, _Q), rtol=1e-5))
row("metrics.sliced_wasserstein",
    bad("x", lambda: metrics.sliced_wasserstein(_PN, _P[:2])),
    bad("x", lambda: metrics.sliced_wasserstein(_P, _Q), label="shapes"),
    bad("num_projections", lambda: metrics.sliced_wasserstein(_P, _P, num_projections=0), shows="0"),
    bad("key", lambda: metrics.sliced_wasserstein(np.ones((2, 3)), np.ones((2, 3)))),
    edge("one point, 1-D: |x - y|", lambda: metrics.sliced_wasserstein(np.array([[1.0]]), np.array([[3.5]])),
         expect=lambda: 2.5))
row("metrics.Band",
    note("a frozen dataclass returned by reference_band; contains() is inclusive",
         lambda: metrics.Band(values=np.zeros(2), low=0.0, high=1.0, level=0.95).contains(1.0)))
row("metrics.reference_band",
    bad("level", lambda: metrics.reference_band(float, [1.0, 2.0], level=1.5), shows="1.5"),
    bad("level", lambda: metrics.reference_band(float, [1.0, 2.0], level=True), label="bool"),
    bad("samples", lambda: metrics.reference_band(float, [1.0])),
    bad("statistic", lambda: metrics.reference_band(3, [1.0, 2.0])),
    bad("values", lambda: metrics.reference_band(float, [1.0, NAN])),
    edge("two draws: the band spans them (linear interpolation)",
         lambda: (lambda b: (b.low, b.high))(metrics.reference_band(float, [1.0, 3.0], level=0.5)),
         expect=lambda: (1.5, 2.5)))
row("metrics.mmd",
    bad("x", lambda: metrics.mmd(_PN, _P)),
    bad("y", lambda: metrics.mmd(_P, _Q[:1]), label="one point"),
    bad("bandwidth", lambda: metrics.mmd(_P, _Q, bandwidth=-1.0), shows="-1.0"),
    bad("bandwidth", lambda: metrics.mmd(np.zeros((2, 2)), np.zeros((2, 2))), label="all points equal"),
    edge("two points each, h = 1", lambda: metrics.mmd(_P[:2], _Q, bandwidth=1.0),
         expect=lambda: 2 * np.exp(-0.5) / 2 + 2 * np.exp(-12.5) / 2
         - 2 * np.mean([np.exp(-np.sum((a - b) ** 2) / 2) for a in _P[:2] for b in _Q])))
row("metrics.precision_recall",
    bad("k", lambda: metrics.precision_recall(_P, _P, k=0), shows="0"),
    bad("real", lambda: metrics.precision_recall(_P, _P, k=3), label="too few points"),
    bad("generated", lambda: metrics.precision_recall(_P, _PN, k=1)),
    bad("real", lambda: metrics.precision_recall(_P, np.ones((3, 3)), k=1), label="dimension"),
    edge("identical sets: (1, 1)", lambda: metrics.precision_recall(_P, _P, k=1), expect=lambda: (1.0, 1.0)))
row("metrics.frechet_distance",
    bad("a", lambda: metrics.frechet_distance(_PN, _P)),
    bad("b", lambda: metrics.frechet_distance(_P, _Q[:1]), label="one row"),
    bad("a", lambda: metrics.frechet_distance(_P, np.ones((3, 3))), label="dimension"),
    edge("1-D: (mu_a - mu_b)^2 + (sd_a - sd_b)^2", lambda: metrics.frechet_distance(_P[:, :1], _Q[:, :1]),
         expect=lambda: (1 / 3 - 1.5) ** 2 + (np.std([0, 1, 0], ddof=1) - np.std([3, 0], ddof=1)) ** 2))
row("metrics.nearest_distances",
    bad("x", lambda: metrics.nearest_distances(_PN, _P)),
    bad("reference", lambda: metrics.nearest_distances(_P, np.ones((2, 3)))),
    edge("by hand", lambda: metrics.nearest_distances(_Q, _P), expect=lambda: [2.0, 2.0]))

# ==================================================================== module: quality (helper G)

from ddpm_lib import quality  # noqa: E402

_MOON_TOP = (np.array([[0.0, 1.0], [0.0, 1.2]]) - [0.5, 0.25]) / 0.87  # on the upper arc, and 0.2 above it


class _FakeClassifier:
    """Fixed probabilities for four images: confident, unsure, confident, confident."""

    classes_ = np.arange(3)

    def predict_proba(self, x):
        return np.array([[0.95, 0.05, 0.0], [0.5, 0.4, 0.1], [0.0, 0.0, 1.0], [0.1, 0.9, 0.0]])[: len(x)]


row("quality.moons_arc_distance",
    bad("points", lambda: quality.moons_arc_distance(np.zeros((2, 3)))),
    bad("points", lambda: quality.moons_arc_distance(np.array([[NAN, 0.0]])), label="NaN"),
    edge("on the arc, and 0.2 above it", lambda: quality.moons_arc_distance(_MOON_TOP), expect=lambda: [0.0, 0.2],
         atol=1e-9))
row("quality.off_arc_share",
    bad("noise", lambda: quality.off_arc_share(_MOON_TOP, noise=0.0), shows="0.0"),
    bad("k", lambda: quality.off_arc_share(_MOON_TOP, k=NAN)),
    bad("points", lambda: quality.off_arc_share(_MOON_TOP[:, :1])),
    edge("one of two beyond 3 sigma = 0.15", lambda: quality.off_arc_share(_MOON_TOP), expect=lambda: 0.5))
row("quality.digit_classifier",
    bad("images", lambda: quality.digit_classifier(np.full((2, 8, 8), NAN), [0, 1])),
    bad("images", lambda: quality.digit_classifier(np.zeros((2, 8, 8)), [0, 1, 2]), label="lengths"),
    bad("kind", lambda: quality.digit_classifier(np.zeros((2, 8, 8)), [0, 1], kind="svm")),
    note("fits scikit-learn on real digits (tests/test_metrics.py checks it reads them)"))
row("quality.confident_fraction",
    bad("threshold", lambda: quality.confident_fraction(_FakeClassifier(), np.zeros((4, 8, 8)), 1.5), shows="1.5"),
    bad("images", lambda: quality.confident_fraction(_FakeClassifier(), np.full((4, 8, 8), NAN))),
    bad("images", lambda: quality.confident_fraction(_FakeClassifier(), np.zeros((4, 3, 3))), label="shape"),
    edge("3 of 4 at p >= 0.9", lambda: quality.confident_fraction(_FakeClassifier(), np.zeros((4, 8, 8))),
         expect=lambda: (0.75, [0, 0, 2, 1])))
row("quality.class_histogram",
    bad("labels", lambda: quality.class_histogram(np.array([0, 10]))),
    bad("labels", lambda: quality.class_histogram(np.array([0.5]))),
    bad("num_classes", lambda: quality.class_histogram(np.array([0]), num_classes=0), shows="0"),
    edge("a single label", lambda: quality.class_histogram(np.array([2]), num_classes=np.int64(3)),
         expect=lambda: [0.0, 0.0, 1.0]))
row("quality.classifier_features",
    bad("classifier", lambda: quality.classifier_features(_FakeClassifier(), np.zeros((1, 8, 8)))),
    note("the hidden layer of a fitted MLPClassifier (tests/test_metrics.py checks it against predict_proba)"))
row("quality.DIGIT_GOALS",
    note("the goals table of issue 12", lambda: quality.DIGIT_GOALS["confident"] == 0.92))
row("quality.DigitQuality",
    note("a frozen dataclass returned by digit_quality; goals() reads it against DIGIT_GOALS",
         lambda: quality.DigitQuality(1, 1.0, 1.0, np.full(10, 0.1), 1.0, 1.0, 1.0, 1.0).goals()))
row("quality.digit_quality",
    bad("samples", lambda: quality.digit_quality(np.full((3, 8, 8), NAN))),
    bad("samples", lambda: quality.digit_quality(np.zeros((1, 8, 8))), label="one sample"),
    bad("samples", lambda: quality.digit_quality(np.zeros((3, 4, 4))), label="shape"),
    bad("num_subsets", lambda: quality.digit_quality(np.zeros((3, 8, 8)), num_subsets=0), shows="0"),
    bad("seed", lambda: quality.digit_quality(np.zeros((3, 8, 8)), seed=-1), shows="-1"),
    note("trains a classifier on the digits (tests/test_metrics.py checks real digits sit on the floor)"))

# ==================================================================== module: checkpoint (helper G)

import tempfile  # noqa: E402

from ddpm_lib import checkpoint  # noqa: E402

_CK_MLP = {"kind": "mlp", "data_shape": [2], "width": 4, "num_blocks": 1, "time_dim": 4}
_CK_CONFIG = {"model": _CK_MLP, "schedule": {"kind": "from_betas", "betas": [0.3]}}


def _saved(tmp=None):
    """A checkpoint of TINY's architecture in a fresh temporary directory."""
    path = tempfile.mkdtemp(prefix="ddpm_ck_") if tmp is None else tmp
    return checkpoint.save(path, checkpoint.model_from_config(_CK_MLP), config=_CK_CONFIG)


def _corrupted():
    path = _saved()
    (path / "state.msgpack").write_bytes(b"\x00" + (path / "state.msgpack").read_bytes()[1:])
    return path


row("checkpoint.CheckpointNotFoundError",
    note("raised for a missing checkpoint; both FileNotFoundError and ValueError",
         lambda: issubclass(checkpoint.CheckpointNotFoundError, (FileNotFoundError, ValueError))))
row("checkpoint.Checkpoint",
    note("a dataclass returned by load", lambda: checkpoint.load(_saved()).sampling_model))
row("checkpoint.model_from_config",
    bad("spec", lambda: checkpoint.model_from_config({"width": 4})),
    bad("spec", lambda: checkpoint.model_from_config({"kind": "gpt"}), shows="gpt"),
    bad("spec", lambda: checkpoint.model_from_config({**_CK_MLP, "depth": 2}), label="unknown key"),
    bad("width", lambda: checkpoint.model_from_config({**_CK_MLP, "width": 0}), shows="0"),
    edge("one block, np.int64 width", lambda: checkpoint.model_from_config({**_CK_MLP, "width": np.int64(4)})(
        jnp.zeros((1, 2)), 1), expect=lambda: [[0.0, 0.0]]))
row("checkpoint.schedule_from_config",
    bad("spec", lambda: checkpoint.schedule_from_config("cosine")),
    bad("T", lambda: checkpoint.schedule_from_config({"kind": "cosine", "T": 0}), shows="0"),
    edge("T = 1 with beta = 1", lambda: checkpoint.schedule_from_config({"kind": "from_betas", "betas": [1.0]}).alpha_bars,
         expect=lambda: [1.0, 0.0]))
row("checkpoint.save",
    bad("config", lambda: checkpoint.save(tempfile.mkdtemp(), TINY, config={"model": _CK_MLP})),
    bad("config", lambda: checkpoint.save(tempfile.mkdtemp(), TINY, config=[1])),
    bad("model", lambda: checkpoint.save(tempfile.mkdtemp(), OTHER, config=_CK_CONFIG), label="architecture"),
    bad("ema_model", lambda: checkpoint.save(tempfile.mkdtemp(), TINY, config=_CK_CONFIG, ema_model=OTHER)),
    edge("round trip of TINY", lambda: tuple(to_np(nnx.state(checkpoint.load(checkpoint.save(
        tempfile.mkdtemp(), TINY, config=_CK_CONFIG)).model))), expect=lambda: tuple(to_np(nnx.state(TINY))),
        rtol=0, atol=0))
row("checkpoint.load",
    bad("directory", lambda: checkpoint.load(tempfile.mkdtemp() + "/none")),
    bad("directory", lambda: checkpoint.load(tempfile.mkdtemp()), label="empty directory"),
    bad("directory", lambda: checkpoint.load(_corrupted()), label="corrupt"),
    bad("model", lambda: checkpoint.load(_saved(), model=OTHER), label="architecture"),
    bad("model", lambda: checkpoint.load(_saved(), model="mlp")),
    edge("no EMA, no optimizer: step 0", lambda: checkpoint.load(_saved()).step, expect=lambda: 0))

# ==================================================================== module: cli and __main__ (helper G)

from ddpm_lib import cli  # noqa: E402


def _status(argv):
    import contextlib
    import io

    with contextlib.redirect_stderr(io.StringIO()):
        return cli.main(argv)


row("cli.main",
    note("returns an exit status instead of raising; tests/test_cli.py runs it end to end"),
    edge("--num 0: status 2", lambda: _status(["sample", "--checkpoint", "x", "--num", "0", "--out", "s.npy"]),
         expect=lambda: 2),
    edge("a missing checkpoint: status 1", lambda: _status(["sample", "--checkpoint", tempfile.mkdtemp() + "/no",
                                                            "--num", "1", "--out", "s.npy"]), expect=lambda: 1))
row("cli.DATASETS", note("the data sets of train", lambda: cli.DATASETS == ("dot", "moons", "gmm", "digits")))
row("cli.PRESETS", note("train's defaults per data set", lambda: set(cli.PRESETS) == set(cli.DATASETS)))
row("__main__.main", note("python -m ddpm_lib: the same function as cli.main",
                          lambda: importlib.import_module("ddpm_lib.__main__").main is cli.main))

# ==================================================================== module: spacing, score, ddim (helper F)

from ddpm_lib import ddim, score, spacing  # noqa: E402


def eps_star_SZ(x, t):  # exact eps* for N(0, 1) data on SZ (beta = 0 everywhere)
    return analytic.optimal_eps(SZ, x, t, 0.0, 1.0)


def ddim64(betas, t, s, x, e, eta=0.0, z=None):
    """One DDIM step (eq. 6.6) in float64 from the betas alone; the identity where 1 - alpha_bar_t = 0."""
    ab_t, ab_s = abar(betas, t), abar(betas, s)
    if ab_t == 1.0:
        return np.asarray(x, np.float64)
    x0 = (x - math.sqrt(1 - ab_t) * e) / math.sqrt(ab_t)
    var = eta**2 * (1 - ab_s) / (1 - ab_t) * (1 - ab_t / ab_s)
    return math.sqrt(ab_s) * x0 + math.sqrt(1 - ab_s - var) * e + (0.0 if z is None else math.sqrt(var) * z)


def ddim_gain(betas, taus):
    """For N(0, 1) data (eps* = sqrt(1 - ab_t) x) eta = 0 DDIM along taus is x -> g x; g in float64."""
    g, taus = 1.0, list(taus)
    for t, s in zip(taus[::-1], taus[-2::-1] + [0]):
        ab_t, ab_s = abar(betas, t), abar(betas, s)
        g *= 1.0 if ab_t == 1.0 else math.sqrt(ab_s * ab_t) + math.sqrt((1 - ab_s) * (1 - ab_t))
    return g


def encode_gain_S0(refine):
    """ddim_encode on S0 with 2 steps [2, 4] for N(0, 1) data: x_2 = x_0, then the fixed-point map
    x <- 0.5 x_2 + 0.75 x (exact inverse 2 x_2), started from x_2: 1.25 after the first guess."""
    x = 1.0
    for _ in range(refine + 1):
        x = 0.5 + 0.75 * x
    return x


row("spacing.SPACINGS",
    note("the names of the built-in spacings", lambda: spacing.SPACINGS == ("trailing", "linspace")))
row("spacing.timesteps",
    bad("num_steps", lambda: spacing.timesteps(10, 0), shows="0"),
    bad("num_steps", lambda: spacing.timesteps(10, 11), shows="11"),
    bad("num_steps", lambda: spacing.timesteps(10, 2.5), shows="2.5"),
    bad("T", lambda: spacing.timesteps(0, 1), shows="0"),
    bad("spacing", lambda: spacing.timesteps(10, 5, "leading"), shows="leading"),
    bad("spacing", lambda: spacing.timesteps(10, None, [3, 2, 10]), label="not increasing"),
    bad("spacing", lambda: spacing.timesteps(10, None, [2, 5, 9]), label="does not end at T"),
    edge("T = 1", lambda: spacing.timesteps(1, 1), expect=lambda: [1]),
    edge("trailing, 50 of 1000: first 20, last 1000", lambda: spacing.timesteps(1000, 50)[[0, -1]],
         expect=lambda: [20, 1000]),
    edge("linspace, 50 of 1000: first 1, last 1000", lambda: spacing.timesteps(1000, 50, "linspace")[[0, -1]],
         expect=lambda: [1, 1000]),
    edge("np.int64 arguments", lambda: spacing.timesteps(np.int64(10), np.int64(5)), expect=lambda: [2, 4, 6, 8, 10]))
row("spacing.respace",
    bad("schedule", lambda: spacing.respace(B0, [2, 4])),
    bad("taus", lambda: spacing.respace(S0, "trailing")),
    bad("taus", lambda: spacing.respace(S0, [2, 3]), label="does not end at T"),
    edge("beta = 0 steps", lambda: spacing.respace(S0, [2, 4]).betas, expect=lambda: [0.0, 0.0, 0.75]),
    edge("beta = 1 step", lambda: spacing.respace(S1, [1, 3]).betas, expect=lambda: [0.0, 0.1, 1.0]),
    edge("T = 1", lambda: spacing.respace(ST1, [1]).betas, expect=lambda: [0.0, 0.3]))

row("score.score_from_eps",
    bad("t", lambda: score.score_from_eps(S, E, 0), shows="0"),
    bad("t", lambda: score.score_from_eps(S, E, 11), shows="11"),
    bad("t", lambda: score.score_from_eps(S, E, jnp.array([1, 2])), label="array t"),
    bad("t", lambda: score.score_from_eps(S0, E, 1), label="beta = 0 up to t: no noise, no score"),
    bad("schedule", lambda: score.score_from_eps(B0, E, 1)),
    edge("first noisy step after beta = 0 steps", lambda: score.score_from_eps(S0, E, 3),
         expect=lambda: -E64 / math.sqrt(1 - abar(B0, 3))),
    edge("beta = 1 step", lambda: score.score_from_eps(S1, E, 2), expect=lambda: -E64),
    edge("T = 1", lambda: score.score_from_eps(ST1, E, 1), expect=lambda: -E64 / math.sqrt(0.3)),
    edge("float64 input", lambda: score.score_from_eps(S, E64, 5), expect=lambda: -E64 / math.sqrt(1 - abar(B_LIN, 5))))
row("score.eps_from_score",
    bad("t", lambda: score.eps_from_score(S, E, 0), shows="0"),
    bad("t", lambda: score.eps_from_score(S0, E, 2), label="beta = 0 up to t"),
    bad("schedule", lambda: score.eps_from_score("S", E, 1)),
    edge("first noisy step after beta = 0 steps", lambda: score.eps_from_score(S0, E, 3),
         expect=lambda: -math.sqrt(1 - abar(B0, 3)) * E64),
    edge("T = 1", lambda: score.eps_from_score(ST1, E, 1), expect=lambda: -math.sqrt(0.3) * E64))
row("score.x0_from_score",
    bad("t", lambda: score.x0_from_score(S, X, 11, E), shows="11"),
    bad("t", lambda: score.x0_from_score(S1, X, 3, E), label="beta = 1 erased x0"),
    bad("score", lambda: score.x0_from_score(S, X, 2, jnp.ones(2)), label="shape"),
    edge("first noisy step after beta = 0 steps", lambda: score.x0_from_score(S0, X, 3, E),
         expect=lambda: (X64 + (1 - abar(B0, 3)) * E64) / math.sqrt(abar(B0, 3))),
    edge("N(0, 1) data (score -x): sqrt(alpha_bar) x", lambda: score.x0_from_score(S0, X, 4, -X),
         expect=lambda: math.sqrt(abar(B0, 4)) * X64),
    edge("T = 1", lambda: score.x0_from_score(ST1, X, 1, E), expect=lambda: (X64 + 0.3 * E64) / math.sqrt(0.7)))
row("score.model_score",
    bad("denoiser", lambda: score.model_score("f", S0, X, 3)),
    bad("t", lambda: score.model_score(eps_star_S0, S0, X, 2), label="beta = 0 up to t"),
    edge("N(0, 1) data: the score is -x", lambda: score.model_score(eps_star_S0, S0, X, 3), expect=lambda: -X64),
    edge("T = 1", lambda: score.model_score(eps_star_ST1, ST1, X, 1), expect=lambda: -X64))

row("ddim.ddim_step",
    bad("t", lambda: ddim.ddim_step(S, X, 11, 1, E), shows="11"),
    bad("t", lambda: ddim.ddim_step(S1, X, 3, 1, E), label="beta = 1 erased x0"),
    bad("s", lambda: ddim.ddim_step(S, X, 3, 3, E), shows="3"),
    bad("s", lambda: ddim.ddim_step(S, X, 3, -1, E), shows="-1"),
    bad("eps", lambda: ddim.ddim_step(S, X, 3, 1, jnp.ones(2))),
    bad("z", lambda: ddim.ddim_step(S, X, 3, 1, E, jnp.ones(2))),
    bad("eta", lambda: ddim.ddim_step(S, X, 3, 1, E, E, eta=1.5), shows="1.5"),
    bad("clip_x0", lambda: ddim.ddim_step(S, X, 3, 1, E, clip_x0=0.0)),
    bad("schedule", lambda: ddim.ddim_step(B_LIN, X, 3, 1, E)),
    edge("beta = 0 step: the identity", lambda: ddim.ddim_step(S0, X, 2, 1, E, E, eta=1.0), expect=lambda: X64),
    edge("beta = 0 prefix, eta = 1, 4 -> 2", lambda: ddim.ddim_step(S0, X, 4, 2, E, E, eta=1.0),
         expect=lambda: ddim64(B0, 4, 2, X64, E64, 1.0, E64)),
    edge("eta = 0.5, 3 -> 1", lambda: ddim.ddim_step(S, X, 3, 1, E, E, eta=0.5),
         expect=lambda: ddim64(B_LIN, 3, 1, X64, E64, 0.5, E64)),
    edge("T = 1: the last step returns x0_hat", lambda: ddim.ddim_step(ST1, X, 1, 0, E, E, eta=1.0),
         expect=lambda: (X64 - math.sqrt(0.3) * E64) / math.sqrt(0.7)),
    edge("clipped x0_hat", lambda: ddim.ddim_step(ST1, X, 1, 0, E, clip_x0=1.0),
         expect=lambda: np.clip((X64 - math.sqrt(0.3) * E64) / math.sqrt(0.7), -1, 1)),
    edge("float64 input", lambda: ddim.ddim_step(S, X64, 5, 2, E64), expect=lambda: ddim64(B_LIN, 5, 2, X64, E64)))
row("ddim.ddim_sample",
    bad("num_steps", lambda: ddim.ddim_sample(eps_star_S0, S0, KEY, (4, 1), num_steps=0), shows="0"),
    bad("num_steps", lambda: ddim.ddim_sample(eps_star_S0, S0, KEY, (4, 1), num_steps=5), shows="5"),
    bad("eta", lambda: ddim.ddim_sample(eps_star_S0, S0, KEY, (4, 1), num_steps=4, eta=-0.5), shows="-0.5"),
    bad("eta", lambda: ddim.ddim_sample(eps_star_S0, S0, KEY, (4, 1), num_steps=4, eta=1.5), shows="1.5"),
    bad("spacing", lambda: ddim.ddim_sample(eps_star_S0, S0, KEY, (4, 1), num_steps=2, spacing="leading")),
    bad("clip_x0", lambda: ddim.ddim_sample(eps_star_S0, S0, KEY, (4, 1), num_steps=4, clip_x0=-1.0)),
    bad("key", lambda: ddim.ddim_sample(eps_star_S0, S0, 0, (4, 1), num_steps=4)),
    bad("shape", lambda: ddim.ddim_sample(eps_star_S0, S0, KEY, (2.5, 1), num_steps=4), shows="2.5"),
    bad("schedule", lambda: ddim.ddim_sample(eps_star_S0, B0, KEY, (4, 1), num_steps=4)),
    bad("schedule", lambda: ddim.ddim_sample(eps_star_S0, S1, KEY, (4, 1), num_steps=3), label="beta = 1"),
    bad("denoiser", lambda: ddim.ddim_sample(None, S0, KEY, (4, 1), num_steps=4)),
    edge("beta = 0 everywhere: x_0 is the starting noise", lambda: ddim.ddim_sample(
        eps_star_SZ, SZ, KEY, (5, 1), num_steps=3, eta=1.0),
        expect=lambda: np.asarray(jax.random.normal(jax.random.split(KEY)[0], (5, 1)), np.float64)),
    edge("beta = 0 steps, exact eps*, eta = 0: N(0, gain^2) (5 s.e.)", lambda: ddim.ddim_sample(
        eps_star_S0, S0, KEY, (4000, 1), num_steps=4), check=lambda x: _moments_ok(x, ddim_gain(B0, [1, 2, 3, 4]) ** 2)),
    edge("T = 1: N(0, alpha_1) (5 s.e.)", lambda: ddim.ddim_sample(eps_star_ST1, ST1, KEY, (4000, 1), num_steps=1),
         check=lambda x: _moments_ok(x, 0.7)),
    edge("a single example", lambda: ddim.ddim_sample(eps_star_S0, S0, KEY, (1, 1), num_steps=2, eta=0.5),
         check=lambda x: x.shape == (1, 1)))
row("ddim.ddim_decode",
    bad("x_T", lambda: ddim.ddim_decode(eps_star_S0, S0, jnp.array([NAN]), num_steps=4)),
    bad("x_T", lambda: ddim.ddim_decode(eps_star_S0, S0, "abc", num_steps=4)),
    bad("num_steps", lambda: ddim.ddim_decode(eps_star_S0, S0, X, num_steps=0), shows="0"),
    edge("beta = 0 steps, exact eps*: gain times x_T", lambda: ddim.ddim_decode(eps_star_S0, S0, X, num_steps=4),
         expect=lambda: ddim_gain(B0, [1, 2, 3, 4]) * X64),
    edge("2 of 4 steps ([2, 4])", lambda: ddim.ddim_decode(eps_star_S0, S0, X, num_steps=2),
         expect=lambda: ddim_gain(B0, [2, 4]) * X64),
    edge("T = 1", lambda: ddim.ddim_decode(eps_star_ST1, ST1, X, num_steps=1), expect=lambda: math.sqrt(0.7) * X64))
row("ddim.ddim_encode",
    bad("x0", lambda: ddim.ddim_encode(eps_star_S0, S0, jnp.array([NAN]), num_steps=4)),
    bad("refine", lambda: ddim.ddim_encode(eps_star_S0, S0, X, num_steps=4, refine=-1), shows="-1"),
    bad("num_steps", lambda: ddim.ddim_encode(eps_star_S0, S0, X, num_steps=5), shows="5"),
    edge("beta = 0 steps, first guess", lambda: ddim.ddim_encode(eps_star_S0, S0, X, num_steps=2),
         expect=lambda: encode_gain_S0(0) * X64),
    edge("beta = 0 steps, two refinements", lambda: ddim.ddim_encode(eps_star_S0, S0, X, num_steps=2, refine=2),
         expect=lambda: encode_gain_S0(2) * X64),
    edge("T = 1", lambda: ddim.ddim_encode(eps_star_ST1, ST1, X, num_steps=1),
         expect=lambda: (math.sqrt(0.7) + 0.3) * X64))
row("ddim.ddim_timesteps",
    bad("num_steps", lambda: ddim.ddim_timesteps(10, 0), shows="0"),
    bad("num_steps", lambda: ddim.ddim_timesteps(10, 11), shows="11"),
    bad("spacing", lambda: ddim.ddim_timesteps(10, 5, "uniform")),
    edge("5 of 10, trailing", lambda: ddim.ddim_timesteps(10, 5), expect=lambda: [2, 4, 6, 8, 10]))

# ==================================================================== module: plotting_sampling (helper F)

from ddpm_lib import plotting_sampling  # noqa: E402


def _closed(fig) -> bool:
    plt.close(fig)
    return True


row("plotting_sampling.plot_score_field",
    bad("score_fn", lambda: plotting_sampling.plot_score_field("s", [1])),
    bad("grid", lambda: plotting_sampling.plot_score_field(lambda p, t: -p, [1], grid=0), shows="0"),
    bad("lim", lambda: plotting_sampling.plot_score_field(lambda p, t: -p, [1], lim=-1.0)),
    note("draws one panel per step, with a zero score too",
         lambda: _closed(plotting_sampling.plot_score_field(lambda p, t: 0 * p, [1, 2], grid=3))))
row("plotting_sampling.plot_quality_vs_steps",
    bad("panels", lambda: plotting_sampling.plot_quality_vs_steps([10, 20], {"q": {"a": [1.0]}})),
    note("draws one panel per measure with a reference line",
         lambda: _closed(plotting_sampling.plot_quality_vs_steps(
             [10, 20], {"q": {"a": [1.0, 2.0]}}, reference={"q": 1.0}))))

# ==================================================================== the tests (keep last)
# New sections go above this line: one banner "# ==== module: <name>" per module.

_WORD = r"(?<![A-Za-z0-9_]){}(?![A-Za-z0-9_])"


def _modules():
    """Every public module of ddpm_lib (found at run time), with its ``__all__`` or ``None``."""
    found = {}
    for info in pkgutil.iter_modules(ddpm_lib.__path__):
        if info.name.startswith("_") and info.name != "__main__":
            continue
        module = importlib.import_module(f"ddpm_lib.{info.name}")
        found[info.name] = getattr(module, "__all__", None)
    return found


def test_every_public_name_has_a_row():
    modules = _modules()
    no_all = sorted(name for name, exported in modules.items() if exported is None)
    assert not no_all, f"modules without __all__ (declare their public names): {no_all}"
    public = {f"{mod}.{name}" for mod, exported in modules.items() for name in exported}
    missing = sorted(public - set(TABLE))
    assert not missing, f"public names with no row in tests/test_bad_input.py: {missing}"
    stale = sorted(set(TABLE) - public)
    assert not stale, f"rows for names that are not public (renamed or removed?): {stale}"
    # The package's own __all__ re-exports modules and functions; each must be one of the above.
    for name in ddpm_lib.__all__:
        obj = getattr(ddpm_lib, name)
        if name in modules:
            continue
        owners = [f"{mod}.{name}" for mod in modules if getattr(importlib.import_module(f"ddpm_lib.{mod}"),
                                                                  name, None) is obj]
        assert any(owner in TABLE for owner in owners), f"ddpm_lib.{name} re-exports no probed name"
    # A row probes its name: every name with numeric input has a bad input or a legal edge.
    for name, probes in TABLE.items():
        assert any(isinstance(p, (Bad, Edge)) for p in probes) or all(isinstance(p, Note) for p in probes), name


def _cases():
    for name, probes in TABLE.items():
        counts: dict[str, int] = {}
        for probe in probes:
            label = {Bad: lambda p: f"bad-{p.arg}{'-' + p.label if p.label else ''}",
                     Edge: lambda p: f"edge-{p.label}", Note: lambda p: "note"}[type(probe)](probe)
            counts[label] = counts.get(label, 0) + 1
            suffix = f"-{counts[label]}" if counts[label] > 1 else ""
            yield pytest.param(probe, id=f"{name}:{label}{suffix}".replace(" ", "_"))


def _check_leaves(out, expect, rtol, atol):
    got = to_np(out)
    assert got, "the call returned no array"
    for leaf in got:
        assert not np.any(np.isnan(leaf)), f"NaN in a legal edge result: {leaf}"
    if expect is None:
        for leaf in got:
            assert np.all(np.isfinite(leaf)), f"non-finite legal edge result: {leaf}"
        return
    want = expected_arrays(expect)
    assert len(want) == len(got), f"expected {len(want)} arrays, got {len(got)}"
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, np.broadcast_to(w, g.shape) if w.size == 1 else w, rtol=rtol, atol=atol)


@pytest.mark.parametrize("probe", list(_cases()))
def test_probe(probe):
    if isinstance(probe, Bad):
        with pytest.raises(ValueError) as info:
            probe.call()
        msg = str(info.value)
        assert re.search(_WORD.format(re.escape(probe.arg)), msg), f"message does not name {probe.arg!r}: {msg}"
        assert re.search(r"\b(must|needs?)\b", msg), f"message does not say what is allowed: {msg}"
        if probe.shows is not None:
            assert probe.shows in msg, f"message does not show the value {probe.shows!r}: {msg}"
    elif isinstance(probe, Edge):
        out = probe.call()
        if probe.check is not None:
            assert probe.check(out), f"check failed on {out!r}"
        if probe.check is None or probe.expect is not None:
            _check_leaves(out, None if probe.expect is None else probe.expect(), probe.rtol, probe.atol)
    else:
        assert probe.what
        if probe.call is not None:
            probe.call()


def test_traced_t_is_not_checked_outside_checked_mode_and_costs_nothing():
    """The documented rule for traced values (ddpm_lib/_validate.py, chapters/api.md).

    Eagerly t = 11 is refused; under a plain jax.jit it is not checked and JAX clamps the index
    to T (the result of t = 10), and the traced program holds no check (no effect, so jax.jit
    keeps its fast dispatch). checked() catches it. Emitting the checks always would fail the
    effects assertion; not emitting them in checked mode would fail the last one.
    """
    with pytest.raises(ValueError, match=r"t must lie in 1\.\.10"):
        forward.q_sample(S, X, 11, E)
    q = jax.jit(forward.q_sample)
    np.testing.assert_array_equal(q(S, X, 11, E), q(S, X, 10, E))
    assert not jax.make_jaxpr(forward.q_sample)(S, X, 3, E).effects
    assert not jax.make_jaxpr(losses.noise_loss)(0.5, jnp.array([0.9]), X, X, X, E).effects
    with pytest.raises(ValueError, match=r"t must lie in 1\.\.10 \(T = 10\); got 11"):
        checking.checked(q)(S, X, 11, E)
    np.testing.assert_array_equal(q(S, X, 11, E), q(S, X, 10, E))  # plain calls are unchanged afterwards
