"""Sample quality of the chapter-5 models over several seeds (`python benchmarks/quality.py`).

The chapter trains each model once, with one seed. This script repeats the same configurations
with other seeds (and the digits model also with twice the training) and reports each quality
figure against its goal:

* single dot: the share of 1000 generations within mean squared distance 0.01 of the dot
  (goal >= 0.95);
* two moons: the energy distance and the sliced Wasserstein distance between 5,000 generated
  points and 5,000 held-out points, divided by the floor (the same distance between two
  independent data samples), both averaged over two draws (goal <= 2);
* digits: the share of 256 generated digits that a classifier trained on real digits labels
  with confidence >= 0.9 (goal >= 0.8; held-out real digits score about 0.95).

Writes benchmarks/quality.json and benchmarks/quality.md. Takes a few minutes on two CPU cores.
"""

from __future__ import annotations

import json
import os
import pathlib
import sys
import time

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from flax import nnx  # noqa: E402

from ddpm_lib import data, metrics, models, sampling, schedules, train  # noqa: E402

HERE = pathlib.Path(__file__).resolve().parent
SMALL = schedules.linear(T=100, beta_start=1e-3, beta_end=0.2)
COSINE = schedules.cosine(200)


def single_dot(seed):
    key = jax.random.key(seed)
    dot = data.single_dot()
    model = models.MLPDenoiser((3, 3), width=32, num_blocks=2, rngs=nnx.Rngs(seed))
    opt = nnx.Optimizer(model, train.make_optimizer(3e-3, total_steps=3000), wrt=nnx.Param)
    run = train.train(model, opt, SMALL, data.single_dot_dataset(100), key, num_steps=3000, batch_size=64)
    gen = sampling.sample(run.ema_model, SMALL, jax.random.fold_in(key, 1), (1000, 3, 3))
    return float(jnp.mean(jnp.mean((gen - dot) ** 2, axis=(1, 2)) < 0.01))


def moons(seed):
    k_train, k_test, k_ref, k_fit, k_gen = jax.random.split(jax.random.key(100 + seed), 5)
    x = data.two_moons(k_train, 20_000)
    model = models.MLPDenoiser((2,), width=64, num_blocks=3, rngs=nnx.Rngs(seed))
    opt = nnx.Optimizer(model, train.make_optimizer(2e-3, total_steps=2000), wrt=nnx.Param)
    run = train.train(model, opt, SMALL, x, k_fit, num_steps=2000, batch_size=256, ema_decay=0.995)
    held_out = data.two_moons(k_test, 5_000)
    refs = [data.two_moons(k, 5_000) for k in jax.random.split(k_ref, 2)]
    gens = [sampling.sample(run.ema_model, SMALL, k, (5_000, 2)) for k in jax.random.split(k_gen, 2)]
    out = {}
    for name, dist in (("energy", metrics.energy_distance), ("sliced_wasserstein", metrics.sliced_wasserstein)):
        floor = np.mean([dist(r, held_out) for r in refs])
        out[name] = float(np.mean([dist(g, held_out) for g in gens]) / floor)
    return out


def digits(seed, steps, clf, train_x):
    k_fit, k_gen = jax.random.split(jax.random.key(200 + seed))
    model = models.MLPDenoiser((8, 8), width=256, num_blocks=3, layer_norm=True, rngs=nnx.Rngs(seed))
    opt = nnx.Optimizer(model, train.make_optimizer(3e-3, total_steps=steps), wrt=nnx.Param)
    start = time.perf_counter()
    run = train.train(model, opt, COSINE, train_x, k_fit, num_steps=steps, batch_size=128)
    seconds = time.perf_counter() - start
    gen = sampling.sample(run.ema_model, COSINE, k_gen, (256, 8, 8), clip_x0=1.0)
    return metrics.confident_fraction(clf, gen)[0], seconds


def main():
    seeds = [0, 1, 2]
    started = time.perf_counter()
    train_x, train_y = data.digits("train")
    test_x, _ = data.digits("test")
    clf = metrics.digit_classifier(train_x, train_y)
    real = metrics.confident_fraction(clf, test_x)[0]
    res = {"seeds": seeds, "digits_real_confident": round(real, 3), "single_dot": [], "moons": [],
           "digits": {}}
    for s in seeds:
        res["single_dot"].append(round(single_dot(s), 3))
        res["moons"].append({k: round(v, 2) for k, v in moons(s).items()})
        print(f"seed {s}: dot {res['single_dot'][-1]}, moons {res['moons'][-1]}", flush=True)
    for steps in (2000, 4000):
        fr = []
        for s in seeds:
            f, sec = digits(s, steps, clf, train_x)
            fr.append(round(f, 3))
            print(f"digits {steps} steps seed {s}: confident {f:.3f} ({sec:.0f} s)", flush=True)
        res["digits"][str(steps)] = fr
    res["seconds"] = round(time.perf_counter() - started, 1)
    (HERE / "quality.json").write_text(json.dumps(res, indent=2) + "\n")

    e = [m["energy"] for m in res["moons"]]
    w = [m["sliced_wasserstein"] for m in res["moons"]]
    lines = [
        "# Sample quality over seeds",
        "",
        f"`benchmarks/quality.py`: the chapter-5 configurations with seeds {seeds} ({res['seconds']:.0f} s).",
        "",
        "| figure | goal | per seed | worst |",
        "|---|---|---|---|",
        f"| single dot: share of 1000 generations within 0.01 of the dot | >= 0.95 | {res['single_dot']} | "
        f"{min(res['single_dot']):.3f} |",
        f"| two moons: energy distance / floor (5,000 points) | <= 2 | {e} | {max(e):.2f} |",
        f"| two moons: sliced Wasserstein / floor | <= 2 | {w} | {max(w):.2f} |",
    ]
    for steps, fr in res["digits"].items():
        lines.append(f"| digits, {steps} steps: share recognized with confidence >= 0.9 | >= 0.8 | {fr} | "
                     f"{min(fr):.3f} |")
    lines += ["", f"Held-out real digits score {real:.3f} with the same classifier.", ""]
    (HERE / "quality.md").write_text("\n".join(lines))
    print("wrote benchmarks/quality.json and quality.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
