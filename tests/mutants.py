"""Mutation check: plant classic DDPM bugs one at a time and see whether the unit tests catch them.

Each mutant below is a one-line bug of the kind public DDPM code has shipped (an off-by-one
``t``, sqrt(alpha_bar_t) for sqrt(alpha_t), noise added at the last step, a missing 1/2 in a
KL, an EMA without its warm-up, ...). For every mutant the script

1. writes the buggy line into a *temporary copy* of the repository (never into the working
   tree it was started from),
2. runs the unit tests there (``tests/`` without the book-level ``test_site.py`` and
   ``test_book.py``) with ``pytest -x -q``, so the run stops at the first failing test,
3. reports the mutant as **caught** (some test failed) or **MISSED** (every test passed),

and ends with the score line ``mutation score: caught/total (percent)``.

The unmutated copy is tested first, one test file per process under ``coverage``: if a test
fails there, no score is meaningful and the script stops. The coverage data say which test
files execute which lines of ``ddpm_lib``; a mutant then runs only the test files that execute
its statement, because a test that never runs the line cannot notice the change (each file
ran in a fresh process, so a line that ``jax.jit`` traced once is recorded for every file
that needs it). Tests that run ``ddpm_lib`` in a subprocess are invisible to this selection;
``--all-tests`` runs every file for every mutant. The order of the files never changes the
verdict, so the mutated module's own tests go first and a caught mutant usually stops within
seconds. Compiled XLA programs are cached on disk across the runs.

Usage (``make mutants`` runs the whole list; it is not part of CI)::

    python tests/mutants.py                  # every mutant
    python tests/mutants.py --list           # print the list and exit
    python tests/mutants.py --check          # check that every mutant still applies, run nothing
    python tests/mutants.py -k ema -k ddim   # only mutants whose name contains a pattern
    python tests/mutants.py --tree DIR       # mutate a copy of DIR instead of this repository
    python tests/mutants.py --no-baseline -k clip   # quick: no baseline, every test file, in order

Exit status: 0 when the score reaches ``--goal`` (95% by default) and every mutant still
applies; 1 otherwise. A mutant whose line is no longer in the code is reported as STALE and
must be updated: it counts as not caught.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
EXCLUDED_TESTS = {"test_site.py", "test_book.py"}  # book-level: the built site, the notebooks
COPY_IGNORE = shutil.ignore_patterns(".git", ".venv*", "_build", "__pycache__", ".pytest_cache",
                                     ".ipynb_checkpoints", ".jupyter_cache", "*.egg-info")


@dataclasses.dataclass(frozen=True)
class Mutant:
    """One planted bug: replace ``old`` by ``new`` in ``path`` (``old`` must occur ``count`` times)."""

    name: str
    path: str
    old: str
    new: str
    why: str
    count: int = 1

    @property
    def module(self) -> str:
        return pathlib.Path(self.path).stem


def m(name, path, old, new, why, count=1):
    return Mutant(name, f"ddpm_lib/{path}", old, new, why, count)


# fmt: off
MUTANTS = [
    # ---------------------------------------------------------------- schedules
    m("schedules.cumprod_of_betas", "schedules.py",
      "ab = np.cumprod(a)", "ab = np.cumprod(b)",
      "alpha_bar as the cumulative product of beta instead of alpha"),
    m("schedules.alpha_bar_prev_is_alpha_bar", "schedules.py",
      "ab_prev = np.concatenate([[1.0], ab[:-1]])", "ab_prev = ab",
      "alpha_bar_{t-1} replaced by alpha_bar_t (off by one)"),
    m("schedules.posterior_coef_sqrt_alpha_bar", "schedules.py",
      "coef_xt = np.where(noisy, np.sqrt(a) *", "coef_xt = np.where(noisy, np.sqrt(ab) *",
      "sqrt(alpha_bar_t) for sqrt(alpha_t) in the x_t coefficient of eq. (10) (the homework's slip)"),
    m("schedules.no_log_variance_clip", "schedules.py",
      "log_var[1] = log_var[2]", "log_var[1] = _LOG_FLOOR",
      "the clipped log-variance at t = 1 left at log(0) (floored) instead of log beta_tilde_2"),
    m("schedules.linear_off_by_one", "schedules.py",
      "np.linspace(beta_start, beta_end, T, dtype=np.float64)",
      "np.linspace(beta_start, beta_end, T + 1, dtype=np.float64)[1:]",
      "linear schedule shifted by one step: beta_1 is not beta_start"),
    m("schedules.cosine_without_offset", "schedules.py",
      "np.cos((steps + s) / (1.0 + s) * np.pi / 2.0)", "np.cos(steps * np.pi / 2.0)",
      "cosine schedule without its offset s (beta_T = 1, clipped)"),
    # ---------------------------------------------------------------- forward
    m("forward.q_mean_var_prev_variance", "forward.py",
      "1.0 - schedule.alpha_bars[t]", "1.0 - schedule.alpha_bars[t - 1]",
      "Var[x_t | x_0] = 1 - alpha_bar_{t-1} (off by one)"),
    m("forward.q_sample_off_by_one", "forward.py",
      "return schedule.sqrt_alpha_bars[t] * x0 +", "return schedule.sqrt_alpha_bars[t - 1] * x0 +",
      "q_sample scales x0 by sqrt(alpha_bar_{t-1})"),
    m("forward.mean_without_sqrt", "forward.py",
      "return jnp.sqrt(1.0 - beta) * x", "return (1.0 - beta) * x",
      "one-step mean (1 - beta) x instead of sqrt(1 - beta) x"),
    m("forward.chain_noise_variance_as_std", "forward.py",
      "jnp.sqrt(1.0 - beta) * x + jnp.sqrt(beta) * jax.random.normal",
      "jnp.sqrt(1.0 - beta) * x + beta * jax.random.normal",
      "the scanned chain adds noise of std beta instead of sqrt(beta)"),
    # ---------------------------------------------------------------- posterior
    m("posterior.mean_x0_xt_swapped", "posterior.py",
      "posterior_mean_coef_x0[t] * x0 + schedule.posterior_mean_coef_xt[t] * xt",
      "posterior_mean_coef_x0[t] * xt + schedule.posterior_mean_coef_xt[t] * x0",
      "posterior mean with the x_0 and x_t coefficients swapped"),
    m("posterior.variance_is_beta", "posterior.py",
      "return mean, schedule.posterior_variances[t],", "return mean, schedule.betas[t],",
      "posterior variance beta_t instead of beta_tilde_t"),
    # ---------------------------------------------------------------- parameterization
    m("parameterization.x0_from_eps_sign", "parameterization.py",
      "return (xt - schedule.sqrt_one_minus_alpha_bars[t] * eps) / schedule.sqrt_alpha_bars[t]",
      "return (xt + schedule.sqrt_one_minus_alpha_bars[t] * eps) / schedule.sqrt_alpha_bars[t]",
      "x0_hat = (x_t + sqrt(1 - alpha_bar) eps) / sqrt(alpha_bar): sign error"),
    m("parameterization.mu_divides_by_sqrt_alpha_bar", "parameterization.py",
      "/ jax.numpy.sqrt(schedule.alphas[t])", "/ jax.numpy.sqrt(schedule.alpha_bars[t])",
      "eq. (12) with 1 / sqrt(alpha_bar_t) in front (the homework's slip)"),
    m("parameterization.mu_coef_without_sqrt", "parameterization.py",
      "one_m = schedule.sqrt_one_minus_alpha_bars[t]", "one_m = 1.0 - schedule.alpha_bars[t]",
      "eq. (12) with beta_t / (1 - alpha_bar_t) instead of beta_t / sqrt(1 - alpha_bar_t)"),
    # ---------------------------------------------------------------- losses
    m("losses.kl_missing_half", "losses.py",
      "return 0.5 * (logvar2 - logvar1", "return (logvar2 - logvar1",
      "Gaussian KL without its factor 1/2"),
    m("losses.kl_variance_ratio_inverted", "losses.py",
      "jnp.exp(logvar1 - logvar2)", "jnp.exp(logvar2 - logvar1)",
      "Gaussian KL with the variance ratio upside down"),
    m("losses.noise_weight_beta_not_squared", "losses.py",
      "jnp.where(beta_t > 0, beta_t**2 /", "jnp.where(beta_t > 0, beta_t /",
      "noise-loss weight beta_t / (...) instead of beta_t^2 / (...)"),
    m("losses.mean_loss_sigma_not_squared", "losses.py",
      "/ (2.0 * sigma_t**2)", "/ (2.0 * sigma_t)",
      "mean loss divided by 2 sigma_t instead of 2 sigma_t^2"),
    m("losses.decoder_bin_too_wide", "losses.py",
      "1.0 / 255.0", "2.0 / 255.0",
      "discretized decoder: bins of width 4/255 instead of 2/255", count=2),
    # ---------------------------------------------------------------- analytic
    m("analytic.optimal_x0_wrong_scale", "analytic.py",
      "return m + _safe_ratio(schedule.sqrt_alpha_bars[t] * s2", "return m + _safe_ratio(schedule.sqrt_one_minus_alpha_bars[t] * s2",
      "E[x0 | x_t] with sqrt(1 - alpha_bar_t) for sqrt(alpha_bar_t)"),
    m("analytic.marginal_variance_std", "analytic.py",
      "return jnp.sqrt(ab) * m, ab * s2 + 1.0 - ab", "return jnp.sqrt(ab) * m, jnp.sqrt(ab) * s2 + 1.0 - ab",
      "Var[x_t] with sqrt(alpha_bar) s^2 instead of alpha_bar s^2"),
    m("analytic.reverse_conditional_off_by_one", "analytic.py",
      "mean_prev, v_prev = _marginal(schedule, t - 1, m, s2)", "mean_prev, v_prev = _marginal(schedule, t, m, s2)",
      "q(x_{t-1} | x_t) built from the marginal at t instead of t - 1"),
    # ---------------------------------------------------------------- bound
    m("bound.prior_kl_log_sign", "bound.py",
      "(-abT - jnp.log1p(-abT))", "(-abT + jnp.log1p(-abT))",
      "L_T with the sign of its log term flipped"),
    m("bound.log_ratio_variance_ratio_inverted", "bound.py",
      "0.5 * jnp.log(var / beta)", "0.5 * jnp.log(beta / var)",
      "Monte Carlo bound: log sigma_t^2 / beta_t upside down"),
    m("bound.model_marginal_variance_not_squared", "bound.py",
      "v = coef_a[t] ** 2 * v + var[t]", "v = coef_a[t] * v + var[t]",
      "exact model marginal: variance propagated with a_t instead of a_t^2"),
    # ---------------------------------------------------------------- sampling
    m("sampling.noise_at_last_step", "sampling.py",
      "jnp.where(t > 1, reverse_std(", "jnp.where(t > 0, reverse_std(",
      "ancestral sampling adds noise at the last step t = 1"),
    m("sampling.beta_and_beta_tilde_swapped", "sampling.py",
      'var = schedule.betas[t] if sigma2 == "beta" else schedule.posterior_variances[t]',
      'var = schedule.posterior_variances[t] if sigma2 == "beta" else schedule.betas[t]',
      "sigma_t^2 = beta_t and sigma_t^2 = beta_tilde_t swapped"),
    m("sampling.clip_xt_not_x0", "sampling.py",
      "x0_hat = jnp.clip(x0_from_eps(schedule, xt, t, out), -clip_x0, clip_x0)",
      "x0_hat = x0_from_eps(schedule, jnp.clip(xt, -clip_x0, clip_x0), t, out)",
      "clip_x0 clips x_t instead of the implied x0_hat"),
    m("sampling.timesteps_off_by_one", "sampling.py",
      "ts = jnp.arange(schedule.T, 0, -1, dtype=jnp.int32)", "ts = jnp.arange(schedule.T - 1, -1, -1, dtype=jnp.int32)",
      "ancestral loop over t = T-1..0 instead of T..1"),
    m("ddim.sigma_missing_sqrt", "ddim.py",
      "return x_s if z is None else x_s + jnp.sqrt(sigma2) * z", "return x_s if z is None else x_s + sigma2 * z",
      "DDIM noise scaled by sigma^2 instead of sigma (sigma(eta) without its square root)"),
    m("ddim.direction_ignores_sigma", "ddim.py",
      "direction2 = jnp.where(noisy, ratio * keep, so_s**2)", "direction2 = so_s**2",
      "DDIM direction sqrt(1 - alpha_bar_s) eps, forgetting to subtract sigma^2"),
    m("ddim.x0_hat_at_target_step", "ddim.py",
      "x0_hat = (xt - so_t * eps) / sa_t", "x0_hat = (xt - so_t * eps) / sa_s",
      "DDIM x0_hat divided by sqrt(alpha_bar_s) of the target step instead of sqrt(alpha_bar_t)"),
    # ---------------------------------------------------------------- spacing, score
    m("spacing.respace_keeps_betas", "spacing.py",
      "betas = np.where(prev > 0.0, 1.0 - ab[taus] / np.where(prev > 0.0, prev, 1.0), 1.0)",
      "betas = np.asarray(schedule.betas, np.float64)[taus]",
      "a respaced chain keeps beta_tau instead of 1 - alpha_bar_tau_i / alpha_bar_tau_(i-1)"),
    m("score.score_without_sqrt", "score.py",
      "return -eps / schedule.sqrt_one_minus_alpha_bars[t]\n", "return -eps / schedule.sqrt_one_minus_alpha_bars[t] ** 2\n",
      "score = -eps / (1 - alpha_bar_t) instead of -eps / sqrt(1 - alpha_bar_t)"),
    # ---------------------------------------------------------------- train
    m("train.ema_no_warmup", "train.py",
      "decay = jnp.minimum(ema_decay, (1.0 + step) / (10.0 + step))", "decay = ema_decay",
      "EMA warm-up dropped"),
    m("train.ema_decay_reversed", "train.py",
      "optax.incremental_update(params, ema_params, 1.0 - decay)", "optax.incremental_update(params, ema_params, decay)",
      "EMA with the decay and the step size swapped"),
    m("train.t_from_zero", "train.py",
      "jax.random.randint(k_t, (batch_size,), 1, T + 1)", "jax.random.randint(k_t, (batch_size,), 0, T)",
      "training timesteps drawn from 0..T-1 instead of 1..T"),
    m("train.model_sees_x0", "train.py",
      "return jnp.mean((model(xt, t) - target) ** 2)", "return jnp.mean((model(x0, t) - target) ** 2)",
      "the network is fed x_0 instead of x_t"),
    # ---------------------------------------------------------------- models
    m("models.unet_ignores_time", "models.py",
      "u = self.norm2(u) * (1.0 + scale) + shift", "u = self.norm2(u)",
      "the U-Net's blocks ignore the time embedding"),
    m("models.mlp_ignores_time", "models.py",
      "u = self.lin1(jax.nn.silu(h if self.norm is None else self.norm(h))) + self.time(temb)",
      "u = self.lin1(jax.nn.silu(h if self.norm is None else self.norm(h)))",
      "the MLP's blocks ignore the time embedding"),
    m("models.embedding_sin_twice", "models.py",
      "jnp.concatenate([jnp.sin(args), jnp.cos(args)], axis=-1)", "jnp.concatenate([jnp.sin(args), jnp.sin(args)], axis=-1)",
      "time embedding with sin twice instead of sin and cos (t = 0 embeds to zero)"),
    m("models.groups_of_one_channel", "models.py",
      "return max([g for g in range(1, min(8, c // 2) + 1) if c % g == 0], default=1)", "return min(8, c)",
      "GroupNorm with min(8, c) groups: one channel a group at c = 8, widths like 12 refused"),
    # ---------------------------------------------------------------- metrics
    m("metrics.energy_missing_two", "metrics.py",
      "e = 2.0 * _mean_pairwise_distance(x, y)", "e = _mean_pairwise_distance(x, y)",
      "energy distance without the factor 2 on the cross term"),
    m("metrics.padding_not_cut", "metrics.py",
      "return out.reshape(-1, *out.shape[2:])[:n]", "return out.reshape(-1, *out.shape[2:])",
      "pairwise distances averaged over the zero rows that pad the last block too"),
    m("metrics.frechet_without_sqrt", "metrics.py",
      "tr_sqrt = np.sum(np.sqrt(np.maximum(cross, 0.0)))", "tr_sqrt = np.sum(np.maximum(cross, 0.0))",
      "Frechet distance with tr(C_a C_b) instead of tr((C_a C_b)^(1/2))"),
]
# fmt: on


def unit_test_files(tree: pathlib.Path) -> list[str]:
    return sorted(p.relative_to(tree).as_posix() for p in (tree / "tests").glob("test_*.py")
                  if p.name not in EXCLUDED_TESTS)


def statement_lines(source: str, lines: set[int]) -> set[int]:
    """The lines of the innermost statements that contain ``lines`` (a compound statement: its header).

    Coverage records a multi-line statement at some of its lines only; any of them executing
    means the statement ran.
    """
    out = set(lines)
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.stmt):
            continue
        body = getattr(node, "body", None)
        end = body[0].lineno - 1 if isinstance(body, list) and body else node.end_lineno
        span = set(range(node.lineno, end + 1))
        if span & lines:  # a simple statement, or the header of a compound one (never its body)
            out |= span
    return out


def mutated_lines(source: str, old: str) -> set[int]:
    lines, start = set(), 0
    while (i := source.find(old, start)) >= 0:
        first = source.count("\n", 0, i) + 1
        lines |= set(range(first, first + old.count("\n") + 1))
        start = i + 1
    return lines


DESELECT: list[str] = []  # pytest node ids left out of every run (--deselect)


def run_tests(tree: pathlib.Path, files: list[str], env: dict, timeout: float, coverage_file=None):
    """Run pytest in ``tree``; return (returncode or None on timeout, seconds, first failure, output)."""
    runner = [sys.executable, "-m"]
    if coverage_file is not None:
        runner += ["coverage", "run", f"--data-file={coverage_file}", "--source=ddpm_lib", "-m"]
    cmd = runner + ["pytest", "-x", "-q", "-p", "no:cacheprovider", "--no-header", *files]
    cmd += [f"--deselect={node}" for node in DESELECT]
    started = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, time.perf_counter() - started, "timeout (counted as caught)", ""
    seconds = time.perf_counter() - started
    out = proc.stdout + proc.stderr
    failure = next((line.split(" - ")[0] for line in out.splitlines() if re.match(r"(FAILED|ERROR) ", line)), "")
    if proc.returncode and not failure:
        failure = (out.strip().splitlines() or ["(no output)"])[-1]
    return proc.returncode, seconds, failure, out


def make_env(tree: pathlib.Path, cache: pathlib.Path) -> dict:
    env = dict(os.environ)
    env.update(
        PYTHONPATH=str(tree),  # the copy's ddpm_lib, never the editable install of the original
        PYTHONDONTWRITEBYTECODE="1",  # no stale .pyc of a mutated module can survive its restore
        JAX_PLATFORMS=env.get("JAX_PLATFORMS", "cpu"),
        JAX_COMPILATION_CACHE_DIR=str(cache),
        JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
        JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0",
    )
    return env


def check_isolated(tree: pathlib.Path, env: dict) -> None:
    """Refuse to go on unless ``import ddpm_lib`` in the copy imports the copy."""
    out = subprocess.run([sys.executable, "-c", "import ddpm_lib; print(ddpm_lib.__file__)"], cwd=tree, env=env,
                         capture_output=True, text=True, check=True).stdout.strip()
    if not pathlib.Path(out).resolve().is_relative_to(tree.resolve()):
        sys.exit(f"error: the copy imports ddpm_lib from {out}, not from {tree}; refusing to mutate")


def baseline(tree: pathlib.Path, env: dict, timeout: float, covdir: pathlib.Path | None) -> dict[str, dict]:
    """Run every unit-test file on the unmutated copy (each in its own process, under coverage).

    Returns, for each test file, the lines of each ``ddpm_lib`` file that it executed. Each
    file runs in a fresh process, so a line traced once by ``jax.jit`` and then served from
    the compilation cache is still recorded for every file that needs it.
    """
    import coverage

    executed = {}
    files = unit_test_files(tree)
    if covdir is None:  # one plain run of everything: no selection afterwards
        rc, secs, failure, out = run_tests(tree, files, env, timeout)
        if rc != 0:
            print(out[-3000:])
            sys.exit(f"error: the unmutated unit tests do not pass ({failure}); no score is meaningful")
        print(f"baseline: the unmutated unit tests pass ({secs:.0f} s)", flush=True)
        return {}
    covdir.mkdir()
    total = 0.0
    for f in files:
        data_file = covdir / (pathlib.Path(f).stem + ".coverage")
        rc, secs, failure, out = run_tests(tree, [f], env, timeout, coverage_file=data_file)
        total += secs
        if rc != 0:
            print(out[-3000:])
            sys.exit(f"error: the unmutated unit tests do not pass ({failure}); no score is meaningful")
        data = coverage.CoverageData(basename=str(data_file))
        data.read()
        executed[f] = {str(pathlib.Path(name).resolve().relative_to(tree.resolve())): set(data.lines(name) or ())
                       for name in data.measured_files()}
    print(f"baseline: the unmutated unit tests pass ({total:.0f} s, one process per file, under coverage)",
          flush=True)
    return executed


def select_tests(tree: pathlib.Path, mutant: Mutant, source: str, executed: dict[str, dict]) -> list[str]:
    """The test files that execute the mutated statement, the mutated module's own tests first.

    With no coverage data (``--all-tests``) every unit-test file is returned. The order never
    changes the verdict (caught means some selected test fails); it only makes a caught mutant
    stop sooner.
    """
    files = unit_test_files(tree)
    if executed:
        lines = statement_lines(source, mutated_lines(source, mutant.old))
        files = [f for f in files if executed.get(f, {}).get(mutant.path, set()) & lines]
    first = [f for f in files if pathlib.Path(f).stem in (f"test_{mutant.module}", "test_real_bugs")]
    return first + [f for f in files if f not in first]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-k", action="append", default=[], help="run only mutants whose name contains this")
    parser.add_argument("--list", action="store_true", help="print the mutants and exit")
    parser.add_argument("--check", action="store_true", help="check that every mutant applies; run no test")
    parser.add_argument("--tree", type=pathlib.Path, default=ROOT, help="the repository to copy (default: this one)")
    parser.add_argument("--goal", type=float, default=95.0, help="the score (percent) needed for exit status 0")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds allowed per test run")
    parser.add_argument("--all-tests", action="store_true",
                        help="run every unit-test file for every mutant, not only those that execute its line")
    parser.add_argument("--deselect", action="append", default=[], metavar="NODEID",
                        help="leave this test out of every run (e.g. one that fails for an unrelated reason)")
    parser.add_argument("--no-baseline", action="store_true",
                        help="skip the baseline (and so the selection): for quick checks of a few mutants")
    args = parser.parse_args(argv)

    mutants = [mu for mu in MUTANTS if not args.k or any(k in mu.name for k in args.k)]
    if args.list:
        for mu in mutants:
            print(f"{mu.name:45s} {mu.why}")
        print(f"{len(mutants)} mutants in {len({mu.path for mu in mutants})} modules")
        return 0
    if not mutants:
        sys.exit("error: no mutant matches the -k patterns")
    if args.check:
        bad = [f"{mu.name}: found {(args.tree / mu.path).read_text().count(mu.old)} times, expected {mu.count}"
               for mu in mutants if (args.tree / mu.path).read_text().count(mu.old) != mu.count]
        print("\n".join(bad) or f"all {len(mutants)} mutants apply")
        return 1 if bad else 0

    DESELECT.extend(args.deselect)
    if DESELECT:
        print("left out of every run: " + ", ".join(DESELECT))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("terminated"))  # still remove the copy
    with tempfile.TemporaryDirectory(prefix="ddpm-mutants-") as tmp:
        tree = pathlib.Path(tmp) / "repo"
        shutil.copytree(args.tree.resolve(), tree, ignore=COPY_IGNORE)
        env = make_env(tree, pathlib.Path(tmp) / "xla-cache")
        check_isolated(tree, env)
        print(f"mutating a copy of {args.tree.resolve()} in {tree}", flush=True)
        executed = {} if args.no_baseline else baseline(
            tree, env, args.timeout, None if args.all_tests else pathlib.Path(tmp) / "coverage")

        caught, stale, missed = 0, [], []
        for i, mu in enumerate(mutants, 1):
            path = tree / mu.path
            original = path.read_text()
            found = original.count(mu.old)
            label = f"[{i:2d}/{len(mutants)}] {mu.name:45s}"
            if found != mu.count:
                stale.append(mu.name)
                print(f"{label} STALE: the line occurs {found} times, expected {mu.count}", flush=True)
                continue
            files = select_tests(tree, mu, original, executed)
            if not files:
                missed.append(mu.name)
                print(f"{label} MISSED (no unit test executes this line): {mu.why}", flush=True)
                continue
            path.write_text(original.replace(mu.old, mu.new))
            try:
                rc, secs, failure, _ = run_tests(tree, files, env, args.timeout)
            finally:
                path.write_text(original)
            if rc == 0:
                missed.append(mu.name)
                print(f"{label} MISSED ({secs:.0f} s, {len(files)} test files): {mu.why}", flush=True)
            else:
                caught += 1
                print(f"{label} caught ({secs:.0f} s) by {failure}", flush=True)

    total = len(mutants)
    score = 100.0 * caught / total
    if missed:
        print("missed: " + ", ".join(missed))
    if stale:
        print("stale (update the list): " + ", ".join(stale))
    print(f"mutation score: {caught}/{total} caught ({score:.0f}%)")
    return 0 if score >= args.goal and not stale else 1


if __name__ == "__main__":
    sys.exit(main())
