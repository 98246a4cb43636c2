"""Fewer steps: 50-step DDIM against ancestral sampling over every step, in quality and in time.

Chapter 6's goal: DDIM with 50 steps within 1.5x the quality measure of ancestral sampling
with every step, and at least 15x faster. Both samplers run in one process, taking turns, on
the same model and the same number of points, so only ratios are reported:

* two moons, the paper's linear schedule with T = 1000 (chapter 6's MLP, trained here for
  1,500 steps): energy distance to held-out points, read against the band of fresh data draws
  (``metrics.reference_band``), and the share of points off the arcs;
* digits, the shipped model (``checkpoints/digits``, cosine schedule with T = 200, so 50 steps
  are 4x fewer calls, not 20x): Fréchet distance over its floor and the confident share
  (``quality.digit_quality``), averaged over four sampling seeds.

Wall time is the best of ``--repeats`` runs after one compiling run. Writes
``benchmarks/fast_sampling.md`` and ``.json`` (``make bench-sampling``).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import platform
import time

import jax
import numpy as np
from flax import nnx

from ddpm_lib import checkpoint, data, ddim, metrics, models, quality, sampling, schedules, train

HERE = pathlib.Path(__file__).resolve().parent
GOAL_QUALITY, GOAL_SPEED = 1.5, 15.0


def best_time(fn, repeats: int) -> tuple[np.ndarray, float]:
    """The output of ``fn()`` and its best wall time over ``repeats`` runs (after one compiling run)."""
    out = jax.block_until_ready(fn())
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        out = jax.block_until_ready(fn())
        best = min(best, time.perf_counter() - start)
    return np.asarray(out), best


def moons(repeats: int, n: int = 2000) -> dict:
    lin = schedules.linear(1000)
    k_train, k_test, k_ref, k_fit, k_gen = jax.random.split(jax.random.key(6), 5)
    net = models.MLPDenoiser((2,), width=64, num_blocks=3, rngs=nnx.Rngs(1))
    opt = nnx.Optimizer(net, train.make_optimizer(2e-3, total_steps=1500), wrt=nnx.Param)
    model = train.train(net, opt, lin, data.two_moons(k_train, 20_000), k_fit, num_steps=1500,
                        batch_size=256, ema_decay=0.995).ema_model
    runs = {
        "ancestral, 1000 steps": lambda: sampling.sample(model, lin, k_gen, (n, 2), sigma2="beta"),
        "DDIM eta = 0, 50 steps": lambda: ddim.ddim_sample(model, lin, k_gen, (n, 2), num_steps=50),
    }
    held_out = data.two_moons(k_test, n)
    band = metrics.reference_band(lambda s: metrics.energy_distance(s, held_out),
                                  [data.two_moons(k, n) for k in jax.random.split(k_ref, 20)])
    rows = {}
    for name, fn in runs.items():
        x, sec = best_time(fn, repeats)
        e = metrics.energy_distance(x, held_out)
        rows[name] = dict(seconds=sec, energy=e, in_band=band.contains(e), off_arc=quality.off_arc_share(x))
    full, fast = rows["ancestral, 1000 steps"], rows["DDIM eta = 0, 50 steps"]
    return dict(points=n, band=[band.low, band.high], rows=rows, calls=1000 / 50,
                quality_ratio=fast["energy"] / full["energy"], speed=full["seconds"] / fast["seconds"])


def digits(repeats: int, n: int = 1000, seeds=(0, 1, 2, 3)) -> dict:
    ck = checkpoint.load(HERE.parent / "checkpoints" / "digits")
    model, sched, rec = ck.sampling_model, ck.schedule, ck.config["sampling"]
    T = sched.T

    def ancestral(key):
        return sampling.sample(model, sched, key, (n, 8, 8), sigma2=rec["sigma2"], clip_x0=rec["clip_x0"])

    def fast(key):
        return ddim.ddim_sample(model, sched, key, (n, 8, 8), num_steps=50, clip_x0=rec["clip_x0"])

    names = {f"ancestral, {T} steps": ancestral, "DDIM eta = 0, 50 steps": fast}
    rows = {}
    for name, fn in names.items():
        _, sec = best_time(lambda: fn(jax.random.key(seeds[0])), repeats)
        qs = [quality.digit_quality(np.clip(np.asarray(fn(jax.random.key(s))), -1, 1)) for s in seeds]
        rows[name] = dict(seconds=sec, frechet_ratio=float(np.mean([q.frechet_ratio for q in qs])),
                          frechet_ratio_sd=float(np.std([q.frechet_ratio for q in qs], ddof=1)),
                          confident=float(np.mean([q.confident for q in qs])))
    full, quick = rows[f"ancestral, {T} steps"], rows["DDIM eta = 0, 50 steps"]
    return dict(samples=n, seeds=list(seeds), T=T, rows=rows, calls=T / 50,
                quality_ratio=quick["frechet_ratio"] / full["frechet_ratio"],
                speed=full["seconds"] / quick["seconds"])


def met(ok: bool) -> str:
    return "met" if ok else "**not met**"


def write(res: dict, out: pathlib.Path) -> None:
    m, d = res["moons"], res["digits"]
    lines = [
        "# Fewer steps: 50-step DDIM against ancestral sampling over every step",
        "",
        f"Written by `benchmarks/fast_sampling.py` (`make bench-sampling`) on {res['machine']}, "
        f"JAX {res['jax']}, best of {res['repeats']} runs after a compiling one, both samplers "
        "in one process. Only the ratios carry over to another machine.",
        "",
        f"## Two moons (linear schedule, T = 1000; {m['points']:,} points)",
        "",
        "| sampler | seconds | energy distance | in the fresh-data band | off the arcs |",
        "|---|---|---|---|---|",
        *[f"| {k} | {v['seconds']:.3f} | {v['energy']:.2g} | {v['in_band']} | {v['off_arc']:.3f} |"
          for k, v in m["rows"].items()],
        "",
        f"Band of 20 fresh data draws (95%): {m['band'][0]:.2g} to {m['band'][1]:.2g}.",
        "",
        "| goal | measured | |",
        "|---|---|---|",
        f"| DDIM 50 within {GOAL_QUALITY}x the energy distance of ancestral 1000 | "
        f"{m['quality_ratio']:.2f}x | {met(m['quality_ratio'] <= GOAL_QUALITY)} |",
        f"| DDIM 50 at least {GOAL_SPEED:.0f}x faster ({m['calls']:.0f}x fewer network calls) | "
        f"{m['speed']:.1f}x | {met(m['speed'] >= GOAL_SPEED)} |",
        "",
        f"## Digits (the shipped model: cosine schedule, T = {d['T']}; {d['samples']:,} samples, "
        f"seeds {', '.join(map(str, d['seeds']))})",
        "",
        "| sampler | seconds | Fréchet / floor, mean (s.d.) | confident share |",
        "|---|---|---|---|",
        *[f"| {k} | {v['seconds']:.3f} | {v['frechet_ratio']:.2f} ({v['frechet_ratio_sd']:.2f}) | "
          f"{v['confident']:.3f} |" for k, v in d["rows"].items()],
        "",
        "| goal | measured | |",
        "|---|---|---|",
        f"| DDIM 50 within {GOAL_QUALITY}x the Fréchet distance of ancestral {d['T']} | "
        f"{d['quality_ratio']:.2f}x | {met(d['quality_ratio'] <= GOAL_QUALITY)} |",
        f"| speed | {d['speed']:.1f}x | not applicable: with T = {d['T']}, 50 steps are only "
        f"{d['calls']:.0f}x fewer calls |",
        "",
    ]
    out.with_suffix(".md").write_text("\n".join(lines))
    out.with_suffix(".json").write_text(json.dumps(res, indent=1, default=float) + "\n")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--out", default=str(HERE / "fast_sampling"), help="path without suffix")
    args = p.parse_args(argv)
    res = dict(machine=f"{platform.machine()}, {jax.devices()[0].platform}", jax=jax.__version__,
               repeats=args.repeats)
    res["moons"] = moons(args.repeats)
    res["digits"] = digits(args.repeats)
    write(res, pathlib.Path(args.out))
    print(pathlib.Path(args.out).with_suffix(".md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
