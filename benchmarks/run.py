"""Side-by-side speed measurements of ddpm_lib (`make bench`).

Every figure is a *ratio* of two ways of doing the same work, measured one after the other in
the same run, on the same machine, so that the machine's own speed cancels out:

1. training: the fused loop (many steps in one compiled ``lax.scan`` call, ``train.train``)
   against one compiled call per step (the same pure step function under ``jax.jit``, and the
   readable ``nnx.jit`` ``train.train_step``), for the single-dot MLP, the 2-D MLP and the
   digits U-Net;
2. sampling: the ``lax.scan`` sampler (``sampling.sample``) against a Python loop over a
   compiled reverse step, 1000 steps, for 1000 2-D points and for 64 digits (U-Net);
3. the compiled noise loss at D = 1e6 against a compiled ``jnp.sum(a * a)`` over the same data.

Results go to benchmarks/results.json and benchmarks/results.md. Runs in a few minutes on
two CPU cores. Usage: ``python benchmarks/run.py [--quick]``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import platform
import sys
import time

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from flax import nnx  # noqa: E402

from ddpm_lib import data, losses, models, sampling, schedules, timing, train  # noqa: E402

HERE = pathlib.Path(__file__).resolve().parent


def _block(tree):
    jax.block_until_ready(jax.tree.leaves(tree))


def train_throughput(name, make_model, dataset, schedule, batch_size, steps, repeats):
    """Steps per second: fused scan loop, per-step jax.jit, per-step nnx.jit (best of repeats)."""
    key = jax.random.key(0)
    rates = {"fused": [], "per-step jax.jit": [], "per-step nnx.jit": []}

    def fresh():
        model = make_model()
        optimizer = nnx.Optimizer(model, train.make_optimizer(1e-3), wrt=nnx.Param)
        return model, optimizer

    # fused: train.train with all steps in one compiled call (compiled once beforehand)
    model, optimizer = fresh()
    train.train(model, optimizer, schedule, dataset, key, num_steps=steps, batch_size=batch_size)
    for _ in range(repeats):
        start = time.perf_counter()
        result = train.train(model, optimizer, schedule, dataset, key, num_steps=steps,
                             batch_size=batch_size)
        _block(nnx.state(model))
        rates["fused"].append(steps / (time.perf_counter() - start))
    fused_losses = result.losses

    # per step, jax.jit: the same pure function (split/merge, EMA included), one step per call
    model, optimizer = fresh()
    graphdef, state = nnx.split((model, optimizer))
    ema = jax.tree.map(jnp.copy, nnx.state(model, nnx.Param))
    decay = jnp.float32(0.999)
    opts = dict(num_steps=1, batch_size=batch_size, prediction="eps", use_ema=True)

    def run_per_step(state, ema, first):
        for i in range(steps):
            state, ema, _ = train._train_chunk(graphdef, state, ema, schedule, dataset, key,
                                               jnp.int32(first + i), decay, **opts)
        return state, ema

    state, ema = run_per_step(state, ema, 0)  # compiles
    for r in range(repeats):
        start = time.perf_counter()
        state, ema = run_per_step(state, ema, (r + 1) * steps)
        _block(state)
        rates["per-step jax.jit"].append(steps / (time.perf_counter() - start))

    # per step, nnx.jit: the readable train.train_step of the text
    model, optimizer = fresh()
    loss = train.train_step(model, optimizer, schedule, dataset, key, batch_size=batch_size)
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(steps):
            loss = train.train_step(model, optimizer, schedule, dataset, key, batch_size=batch_size)
        jax.block_until_ready(loss)
        rates["per-step nnx.jit"].append(steps / (time.perf_counter() - start))

    best = {k: max(v) for k, v in rates.items()}
    return {
        "name": name,
        "batch_size": batch_size,
        "steps_timed": steps,
        "steps_per_second": {k: round(v, 1) for k, v in best.items()},
        "fused_vs_per_step_jax_jit": round(best["fused"] / best["per-step jax.jit"], 2),
        "fused_vs_per_step_nnx_jit": round(best["fused"] / best["per-step nnx.jit"], 2),
        "final_loss": float(np.mean(fused_losses[-20:])),
    }


def sampling_speed(name, model, schedule, shape, repeats):
    """Seconds per full sampling run: the scan sampler against Python loops over a compiled step.

    Two loops: one over a ``jax.jit`` step that takes the weights as a pytree (split once with
    ``nnx.split``), and one over an ``nnx.jit`` step that takes the module itself.
    """
    key = jax.random.key(1)
    graphdef, state = nnx.split(model)

    @jax.jit
    def jit_step(state, x, t, k):
        denoiser = nnx.merge(graphdef, state)
        return sampling.reverse_step(denoiser, schedule, x, t, jax.random.normal(k, x.shape))

    @nnx.jit
    def nnx_step(denoiser, x, t, k):
        return sampling.reverse_step(denoiser, schedule, x, t, jax.random.normal(k, x.shape))

    def loop(step, weights):
        k_T, k_steps = jax.random.split(key)
        x = jax.random.normal(k_T, shape)
        keys = jax.random.split(k_steps, schedule.T)
        for i, t in enumerate(range(schedule.T, 0, -1)):
            x = step(weights, x, jnp.int32(t), keys[i])
        return x

    runs = {
        "scan": lambda: sampling.sample(model, schedule, key, shape),
        "loop, jax.jit step": lambda: loop(jit_step, state),
        "loop, nnx.jit step": lambda: loop(nnx_step, model),
    }
    ref = np.asarray(runs["scan"]())
    same = all(np.allclose(ref, np.asarray(fn()), rtol=1e-4, atol=1e-4) for fn in runs.values())
    secs = {k: [] for k in runs}
    for _ in range(repeats):
        for label, fn in runs.items():
            start = time.perf_counter()
            jax.block_until_ready(fn())
            secs[label].append(time.perf_counter() - start)
    best = {k: min(v) for k, v in secs.items()}
    return {
        "name": name,
        "shape": list(shape),
        "steps": schedule.T,
        "seconds": {k: round(v, 3) for k, v in best.items()},
        "scan_vs_jax_jit_loop": round(best["loop, jax.jit step"] / best["scan"], 2),
        "scan_vs_nnx_jit_loop": round(best["loop, nnx.jit step"] / best["scan"], 2),
        "same_samples": bool(same),
    }


def loss_vs_floor(D=1_000_000):
    """Compiled noise loss against a compiled jnp.sum(a * a) over D numbers."""
    sch = schedules.linear(1000)
    k = jax.random.split(jax.random.key(2), 3)
    x0, eps, pred = (jax.random.normal(ki, (D,)) for ki in k)
    t = 500
    args = (jnp.sqrt(sch.betas[t]), sch.alphas[1 : t + 1], pred, x0, x0, eps)
    noise = jax.jit(losses.noise_loss)
    mean = jax.jit(losses.mean_loss)
    floor = jax.jit(lambda a: jnp.sum(a * a))
    floor2 = jax.jit(lambda a, b: jnp.sum((a - b) ** 2))
    t_noise = timing.time_call(noise, *args, repeats=9).best
    t_mean = timing.time_call(mean, *args[:5], repeats=9).best
    t_floor = timing.time_call(floor, eps, repeats=9).best
    t_floor2 = timing.time_call(floor2, eps, pred, repeats=9).best
    return {
        "D": D,
        "microseconds": {"noise_loss": round(t_noise * 1e6, 1), "mean_loss": round(t_mean * 1e6, 1),
                         "jnp.sum(a * a)": round(t_floor * 1e6, 1),
                         "jnp.sum((a - b) ** 2)": round(t_floor2 * 1e6, 1)},
        "noise_loss_vs_floor": round(t_noise / t_floor, 2),
        "noise_loss_vs_two_array_floor": round(t_noise / t_floor2, 2),
        "mean_loss_vs_noise_loss": round(t_mean / t_noise, 2),
    }


def write_markdown(res, path):
    goals = res["goals"]
    lines = [
        "# Benchmarks",
        "",
        f"Measured by `make bench` (`benchmarks/run.py`) on {res['machine']}, {res['date']}.",
        "Every figure is a ratio of two ways of doing the same work, timed one after the other in the",
        "same run (best of several repeats, after compilation).",
        "",
        "## Training: fused `lax.scan` loop against one compiled call per step",
        "",
        "| model | batch | fused steps/s | per-step `jax.jit` steps/s | per-step `nnx.jit` steps/s "
        "| fused / `jax.jit` | fused / `nnx.jit` |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in res["training"]:
        s = r["steps_per_second"]
        lines.append(f"| {r['name']} | {r['batch_size']} | {s['fused']:,.0f} | {s['per-step jax.jit']:,.0f} | "
                     f"{s['per-step nnx.jit']:,.0f} | **{r['fused_vs_per_step_jax_jit']:.2f}x** | "
                     f"{r['fused_vs_per_step_nnx_jit']:.2f}x |")
    lines += [
        "",
        f"Goal: at least 3x against the `jax.jit` per-step loop on the single-dot model, never slower on "
        f"the larger ones: **{'met' if goals['training'] else 'not met'}**.",
        "",
        "## Sampling: `lax.scan` sampler against a Python loop over a compiled step",
        "",
        "| what | steps | scan (s) | loop over `jax.jit` step (s) | loop over `nnx.jit` step (s) "
        "| scan / `jax.jit` loop | scan / `nnx.jit` loop | same samples |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in res["sampling"]:
        s = r["seconds"]
        lines.append(f"| {r['name']} | {r['steps']} | {s['scan']:.3f} | {s['loop, jax.jit step']:.3f} | "
                     f"{s['loop, nnx.jit step']:.3f} | **{r['scan_vs_jax_jit_loop']:.2f}x** | "
                     f"{r['scan_vs_nnx_jit_loop']:.2f}x | {r['same_samples']} |")
    lines += [
        "",
        f"Goal: at least 1.5x against the `jax.jit` loop: **{'met' if goals['sampling'] else 'not met'}**.",
        "",
        "## The noise loss against the cheapest reduction over the same data",
        "",
    ]
    L = res["loss"]
    us = L["microseconds"]
    lines += [
        f"At D = {L['D']:,}, compiled: `noise_loss` {us['noise_loss']:.0f} us, `mean_loss` {us['mean_loss']:.0f} us, "
        f"`jnp.sum(a * a)` {us['jnp.sum(a * a)']:.0f} us, `jnp.sum((a - b) ** 2)` {us['jnp.sum((a - b) ** 2)']:.0f} us.",
        f"The noise loss takes **{L['noise_loss_vs_floor']:.2f}x** the one-array floor `jnp.sum(a * a)` (it reads two "
        f"arrays, eps and eps_pred) and {L['noise_loss_vs_two_array_floor']:.2f}x the two-array floor "
        f"`jnp.sum((a - b) ** 2)`; the mean loss takes {L['mean_loss_vs_noise_loss']:.2f}x the noise loss (it reads "
        "three arrays).",
        "",
        f"Goal: within 2x: **{'met' if goals['loss'] else 'not met'}**.",
        "",
    ]
    path.write_text("\n".join(lines))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps and repeats (a smoke test)")
    args = parser.parse_args(argv)
    q = args.quick
    reps = 2 if q else 3
    started = time.perf_counter()

    small = schedules.linear(T=100, beta_start=1e-3, beta_end=0.2)
    paper = schedules.linear(1000)
    dots = data.single_dot_dataset(100)
    moons = data.two_moons(jax.random.key(3), 20_000)
    digits, _ = data.digits("train")

    training = [
        train_throughput("single-dot MLP (3x3)",
                         lambda: models.MLPDenoiser((3, 3), width=32, num_blocks=2, rngs=nnx.Rngs(0)),
                         dots, small, 64, 300 if q else 2000, reps),
        train_throughput("2-D MLP (two moons)",
                         lambda: models.MLPDenoiser((2,), width=64, num_blocks=3, rngs=nnx.Rngs(0)),
                         moons, small, 256, 100 if q else 300, reps),
        train_throughput("digits U-Net (8x8)",
                         lambda: models.UNet(8, channels=(16, 32), rngs=nnx.Rngs(0)),
                         digits, paper, 64, 10 if q else 40, reps),
    ]
    for r in training:
        print(f"train  {r['name']:<24} {r['steps_per_second']}  fused/jit {r['fused_vs_per_step_jax_jit']}x  "
              f"fused/nnx.jit {r['fused_vs_per_step_nnx_jit']}x", flush=True)

    sample_T = schedules.linear(1000)
    mlp2 = models.MLPDenoiser((2,), width=64, num_blocks=3, rngs=nnx.Rngs(1))
    unet = models.UNet(8, channels=(16, 32), rngs=nnx.Rngs(1))
    # random (not zero) output layers, so that the samplers do real work on real numbers
    mlp2.out.kernel[...] = 0.1 * jax.random.normal(jax.random.key(4), mlp2.out.kernel[...].shape)
    unet.conv_out.kernel[...] = 0.1 * jax.random.normal(jax.random.key(5), unet.conv_out.kernel[...].shape)
    sampling_results = [
        sampling_speed("1000 2-D points (MLP)", mlp2, sample_T, (1000, 2), reps),
        sampling_speed("64 digits (U-Net)", unet, sample_T if not q else schedules.linear(200), (64, 8, 8), 1),
    ]
    for r in sampling_results:
        print(f"sample {r['name']:<24} {r['seconds']}  scan/jit-loop {r['scan_vs_jax_jit_loop']}x  "
              f"scan/nnx-loop {r['scan_vs_nnx_jit_loop']}x  same {r['same_samples']}", flush=True)

    loss = loss_vs_floor()
    print(f"loss   D=1e6 {loss['microseconds']}  noise/floor {loss['noise_loss_vs_floor']}x  "
          f"noise/two-array floor {loss['noise_loss_vs_two_array_floor']}x", flush=True)

    goals = {
        "training": training[0]["fused_vs_per_step_jax_jit"] >= 3.0
        and all(r["fused_vs_per_step_jax_jit"] >= 1.0 for r in training),
        "sampling": all(r["scan_vs_jax_jit_loop"] >= 1.5 for r in sampling_results),
        "loss": loss["noise_loss_vs_floor"] <= 2.0,
    }
    res = {
        "date": datetime.date.today().isoformat(),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, {platform.system()}, "
                   f"jax {jax.__version__} on {jax.default_backend()}, Python {platform.python_version()}",
        "quick": q,
        "training": training,
        "sampling": sampling_results,
        "loss": loss,
        "goals": goals,
        "seconds": round(time.perf_counter() - started, 1),
    }
    (HERE / "results.json").write_text(json.dumps(res, indent=2) + "\n")
    write_markdown(res, HERE / "results.md")
    print(f"goals met: {goals}; {res['seconds']} s; wrote benchmarks/results.json and results.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
