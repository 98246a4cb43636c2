"""Sample quality against the goals of issue 12 (`python benchmarks/quality.py [--only digits|moons]`).

* **Digits**: the shipped model (checkpoints/digits), 1,000 samples drawn exactly as
  `python -m ddpm_lib sample --checkpoint checkpoints/digits --num 1000 --seed 0` draws them,
  measured by `ddpm_lib.quality.digit_quality` against the goals table. The Frechet ratio
  is noisy at this size, so its spread over disjoint 300-sample subsets of 3,000 further
  samples is reported too (it sets the tolerance of tests/test_shipped_model.py).
* **Two moons**: the chapter-5 configuration (2,000 steps, sigma^2 = beta) and the command
  line's moons preset (10,000 steps, sigma^2 = beta_tilde). The energy distance of 5,000
  samples to 5,000 held-out points is read against the band that 20 fresh data draws span
  (ddpm_lib.metrics.reference_band); the off-arc share (farther than 3 sigma from both arcs)
  against that of 20,000 real points; and the k-NN precision and recall.

Writes benchmarks/quality.json and benchmarks/quality.md (the sections it ran; the others are
kept from the last run). About 10 minutes on two busy CPU cores.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import sys
import time

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402
import numpy as np  # noqa: E402
from flax import nnx  # noqa: E402

from ddpm_lib import checkpoint, data, metrics, models, quality, sampling, schedules, train  # noqa: E402

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent
SMALL = schedules.linear(T=100, beta_start=1e-3, beta_end=0.2)


def digits() -> dict:
    ck = checkpoint.load(ROOT / "checkpoints" / "digits")
    rec = ck.config["sampling"]

    def draw(seed, n):  # what `python -m ddpm_lib sample` does with its default options
        x = sampling.sample(ck.sampling_model, ck.schedule, jax.random.key(seed), (n, 8, 8), sigma2=rec["sigma2"],
                            clip_x0=rec["clip_x0"])
        return np.clip(np.asarray(x, np.float32), -1.0, 1.0)

    start = time.perf_counter()
    x = draw(0, 1000)
    seconds = time.perf_counter() - start
    q = quality.digit_quality(x)
    more = draw(1, 3000)
    subsets = [quality.digit_quality(more[i:i + 300]) for i in range(0, 3000, 300)]
    return {
        "command": ck.config["command"], "steps": ck.step, "train_seconds": ck.config["seconds"],
        "sample_seconds_1000": round(seconds, 1),
        "confident": round(q.confident, 3), "real_confident": round(q.real_confident, 3),
        "frechet": round(q.frechet, 3), "frechet_floor": round(q.frechet_floor, 3),
        "frechet_ratio": round(q.frechet_ratio, 3), "copying_median": round(q.copying_median, 3),
        "copying_test_median": round(q.copying_test_median, 3), "copying_ratio": round(q.copying_ratio, 3),
        "class_shares": [round(float(c), 3) for c in q.class_shares], "goals": q.goals(),
        "subsets_300": {k: [round(float(getattr(s, k)), 3) for s in subsets]
                        for k in ("confident", "frechet_ratio", "copying_ratio")}
        | {"min_class_share": [round(float(s.class_shares.min()), 3) for s in subsets]},
    }


def moons() -> dict:
    k_train, k_test, k_ref, k_fit, k_gen, k_real = jax.random.split(jax.random.key(5), 6)
    x = data.two_moons(k_train, 20_000)
    held_out = data.two_moons(k_test, 5_000)
    band = metrics.reference_band(lambda s: metrics.energy_distance(s, held_out),
                                  (data.two_moons(k, 5_000) for k in jax.random.split(k_ref, 20)))
    real = data.two_moons(k_real, 20_000)
    out = {"band": [round(band.low, 6), round(band.high, 6)], "real_off_arc": round(quality.off_arc_share(real), 4),
           "real_precision_recall": [round(v, 3) for v in metrics.precision_recall(held_out, real[:5000])],
           "models": {}}
    configs = {"chapter 5: width 64, 2,000 steps, sigma^2 = beta": (64, 2000, 0.995, "beta", 2e-3),
               "CLI preset: width 128, 10,000 steps, sigma^2 = beta_tilde": (128, 10000, 0.999, "beta_tilde", 2e-3)}
    for name, (width, steps, ema, sigma2, lr) in configs.items():
        model = models.MLPDenoiser((2,), width=width, num_blocks=3, rngs=nnx.Rngs(1))
        opt = nnx.Optimizer(model, train.make_optimizer(lr, total_steps=steps), wrt=nnx.Param)
        run = train.train(model, opt, SMALL, x, k_fit, num_steps=steps, batch_size=256, ema_decay=ema)
        g = np.asarray(sampling.sample(run.ema_model, SMALL, k_gen, (5_000, 2), sigma2=sigma2))
        e = metrics.energy_distance(g, held_out)
        out["models"][name] = {"energy": round(e, 6), "in_band": band.contains(e),
                               "off_arc": round(quality.off_arc_share(g), 4),
                               "precision_recall": [round(v, 3) for v in metrics.precision_recall(held_out, g)],
                               "train_seconds": round(run.seconds, 1)}
        print(name, out["models"][name], flush=True)
    return out


def markdown(res: dict) -> str:
    lines = ["# Sample quality against the goals", "",
             f"`benchmarks/quality.py` on {res.get('machine', '?')}.", ""]
    d = res.get("digits")
    if d:
        g = d["goals"]
        lines += [
            "## Digits: the shipped model (1,000 samples, seed 0)", "",
            f"Trained with `{d['command']}` ({d['steps']} steps, {d['train_seconds'] / 60:.0f} min); "
            f"1,000 samples took {d['sample_seconds_1000']:.0f} s.", "",
            "| figure | measured | real test digits | goal | met |", "|---|---|---|---|---|",
            f"| recognised with confidence >= 0.9 | {d['confident']:.3f} | {d['real_confident']:.3f} | >= 0.92 | "
            f"{g['confident']} |",
            f"| Frechet distance / floor | {d['frechet']:.2f} / {d['frechet_floor']:.2f} = {d['frechet_ratio']:.2f} "
            f"| 1 | <= 1.2 | {g['frechet_ratio']} |",
            f"| copying: median nearest-train distance | {d['copying_median']:.2f} (ratio {d['copying_ratio']:.2f}) | "
            f"{d['copying_test_median']:.2f} | ratio >= 0.75 | {g['copying_ratio']} |",
            f"| smallest class share | {min(d['class_shares']):.3f} | | >= 0.04 | {g['min_class_share']} |", "",
            f"Class shares 0..9: {d['class_shares']}.", "",
            "Spread over ten disjoint 300-sample subsets of 3,000 further samples (seed 1):", "",
        ]
        for k, v in d["subsets_300"].items():
            lines.append(f"- {k}: mean {np.mean(v):.3f}, s.d. {np.std(v, ddof=1):.3f}, range {min(v):.3f}..{max(v):.3f}")
        lines.append("")
    m = res.get("moons")
    if m:
        lines += [
            "## Two moons (5,000 samples)", "",
            f"Perfect-sampler 95% band of the energy distance (20 fresh draws): {m['band'][0]:.2e} .. "
            f"{m['band'][1]:.2e}. Real data: off-arc share (> 3 sigma) {m['real_off_arc']:.4f}, "
            f"precision/recall {m['real_precision_recall']}.", "",
            "| model | energy distance | in band | off-arc share | vs real | precision, recall | train s |",
            "|---|---|---|---|---|---|---|",
        ]
        for name, r in m["models"].items():
            lines.append(f"| {name} | {r['energy']:.2e} | {r['in_band']} | {r['off_arc']:.4f} | "
                         f"{r['off_arc'] / m['real_off_arc']:.1f}x | {r['precision_recall']} | {r['train_seconds']:.0f} |")
        lines.append("")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", choices=("digits", "moons"), default=None, help="run one section only")
    args = p.parse_args(argv)
    path = HERE / "quality.json"
    old = json.loads(path.read_text()) if path.exists() else {}
    res = {k: old[k] for k in ("digits", "moons") if k in old and isinstance(old[k], dict)}
    res["machine"] = f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, JAX {jax.__version__}"
    if args.only in (None, "moons"):
        res["moons"] = moons()
    if args.only in (None, "digits"):
        res["digits"] = digits()
        print(json.dumps(res["digits"], indent=1), flush=True)
    path.write_text(json.dumps(res, indent=2) + "\n")
    (HERE / "quality.md").write_text(markdown(res))
    print("wrote benchmarks/quality.json and quality.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
