"""ddpm_lib against what a PyTorch user would write: the same models doing the same jobs.

`make bench-peers` runs this in its own environment, .venv-peers (PyTorch and diffusers from
benchmarks/requirements-peers.txt, never in the book's requirements). Elsewhere, for example
on a GPU machine, run it directly::

    python benchmarks/peers.py --device cuda --out DIR      # JAX follows JAX_PLATFORMS

The PyTorch side is a twin of ``ddpm_lib.models.MLPDenoiser``: the same layers, the same
sinusoidal time embedding (computed on the timestep's own shape, as ddpm_lib does), the same
initial weights (copied from the JAX model, and checked to give the same output), and the
same jobs:

1. training: L_simple (eq. 14) on minibatches drawn with replacement, Adam with global-norm
   clipping at 1.0, and an EMA of the weights, in eager mode (``torch.optim.Adam``,
   ``clip_grad_norm_``, ``torch._foreach_lerp_``); ddpm_lib runs ``train.train``, which also
   warms the learning rate up (a few scalar operations per step);
2. ancestral sampling, 1000 steps: the diffusers loop, ``for t in scheduler.timesteps:
   x = scheduler.step(model(x, t), t, x).prev_sample`` with ``DDPMScheduler`` (linear betas
   1e-4..0.02, ``variance_type="fixed_large"``, i.e. sigma_t^2 = beta_t, no clipping), against
   ``sampling.sample``;
3. DDIM, 50 steps, eta = 0: the same loop with ``DDIMScheduler``, against
   ``sampling.ddim_sample``.

The machine may be shared, so every job is repeated several times with the two sides
interleaved (ddpm_lib, PyTorch, ddpm_lib, ...) and the best repeat of each is kept. The
first call of each side is timed separately: it holds JAX's compilation (and CUDA's start-up
on a GPU). Results go to DIR/peers.json and DIR/peers.md (``peers-cuda.*`` for
``--device cuda``), with versions, thread counts and the machine.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import pathlib
import platform
import sys
import time

HERE = pathlib.Path(__file__).resolve().parent
GOALS = {"training": 3.0, "sampling": 2.0}  # ddpm_lib / PyTorch on a CPU, from issue 14


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"],
                   help="PyTorch's device; JAX uses JAX_PLATFORMS (set to cpu for --device cpu "
                        "unless already set)")
    p.add_argument("--out", default=str(HERE), help="directory for peers.json and peers.md")
    p.add_argument("--repeats", type=int, default=5, help="interleaved repeats per job (best kept)")
    p.add_argument("--quick", action="store_true", help="fewer steps and repeats (a smoke test)")
    p.add_argument("--threads", type=int, default=None,
                   help="run on this many CPU cores (process affinity, OMP_NUM_THREADS and "
                        "torch.set_num_threads); default: every core. On a shared machine use 1: "
                        "PyTorch's OpenMP threads wait for each other and slow down by orders of "
                        "magnitude when other processes hold the cores")
    return p.parse_args(argv)


ARGS = parse_args() if __name__ == "__main__" else parse_args([])
if ARGS.device == "cpu":
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
if ARGS.threads is not None:  # before JAX and PyTorch start their thread pools
    os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:ARGS.threads])
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(ARGS.threads)

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from flax import nnx  # noqa: E402

import diffusers  # noqa: E402
from ddpm_lib import data, models, sampling, schedules, train  # noqa: E402

try:  # DDIM has its own module in newer versions of ddpm_lib
    from ddpm_lib.ddim import ddim_sample  # noqa: E402
except ImportError:  # pragma: no cover
    from ddpm_lib.sampling import ddim_sample  # noqa: E402

if ARGS.threads is not None:
    torch.set_num_threads(ARGS.threads)


# ----------------------------------------------------------------------------- the twin

class TorchBlock(torch.nn.Module):
    def __init__(self, width, time_width, layer_norm):
        super().__init__()
        self.norm = torch.nn.LayerNorm(width, eps=1e-6) if layer_norm else None  # nnx's epsilon
        self.lin1 = torch.nn.Linear(width, width)
        self.time = torch.nn.Linear(time_width, width)
        self.lin2 = torch.nn.Linear(width, width)

    def forward(self, h, temb):
        u = self.lin1(torch.nn.functional.silu(h if self.norm is None else self.norm(h))) + self.time(temb)
        return h + self.lin2(torch.nn.functional.silu(u))


class TorchMLP(torch.nn.Module):
    """``ddpm_lib.models.MLPDenoiser`` in PyTorch, layer for layer."""

    def __init__(self, data_shape, width, num_blocks, time_dim, layer_norm):
        super().__init__()
        self.data_shape, self.time_dim = tuple(data_shape), time_dim
        size = math.prod(data_shape)
        self.inp = torch.nn.Linear(size, width)
        self.time = torch.nn.Linear(time_dim, width)
        self.blocks = torch.nn.ModuleList(TorchBlock(width, width, layer_norm) for _ in range(num_blocks))
        self.out = torch.nn.Linear(width, size)
        half = time_dim // 2
        self.register_buffer("freqs", torch.exp(-math.log(10_000.0) * torch.arange(half) / half))

    def forward(self, x, t):
        t = torch.as_tensor(t, device=x.device)
        args = t.to(torch.float32)[..., None] * self.freqs
        temb = torch.nn.functional.silu(self.time(torch.cat([args.sin(), args.cos()], dim=-1)))
        h = self.inp(x.reshape(x.shape[0], -1))
        for block in self.blocks:
            h = block(h, temb)
        return self.out(torch.nn.functional.silu(h)).reshape(x.shape)


def twin_of(model: models.MLPDenoiser, device) -> TorchMLP:
    """A TorchMLP holding a copy of ``model``'s weights."""
    layer_norm = model.blocks[0].norm is not None
    twin = TorchMLP(model.data_shape, model.inp.out_features, len(model.blocks), model.time_dim, layer_norm)

    def copy_linear(dst, src):
        dst.weight.data = torch.tensor(np.asarray(src.kernel[...]).T.copy())
        dst.bias.data = torch.tensor(np.asarray(src.bias[...]).copy())

    copy_linear(twin.inp, model.inp)
    copy_linear(twin.time, model.time)
    copy_linear(twin.out, model.out)
    for tb, jb in zip(twin.blocks, model.blocks):
        for name in ("lin1", "time", "lin2"):
            copy_linear(getattr(tb, name), getattr(jb, name))
        if layer_norm:
            tb.norm.weight.data = torch.tensor(np.asarray(jb.norm.scale[...]).copy())
            tb.norm.bias.data = torch.tensor(np.asarray(jb.norm.bias[...]).copy())
    return twin.to(device)


def twin_max_difference(model, device, shape) -> float:
    """max |ddpm_lib(x, t) - twin(x, t)| on random inputs: the two must be the same function.

    The output layer starts at zero, which would make any two networks agree; it gets random
    weights first, so that every layer shows in the output.
    """
    k_out, k_x = jax.random.split(jax.random.key(7))
    model.out.kernel[...] = 0.1 * jax.random.normal(k_out, model.out.kernel[...].shape)
    twin = twin_of(model, device)
    x = np.asarray(jax.random.normal(k_x, shape))
    t = np.arange(1, shape[0] + 1, dtype=np.int32) % 997 + 1
    ours = np.asarray(model(jnp.asarray(x), jnp.asarray(t)))
    with torch.no_grad():
        theirs = twin(torch.tensor(x, device=device), torch.tensor(t, device=device)).cpu().numpy()
    return float(np.max(np.abs(ours - theirs)))


# ----------------------------------------------------------------------------- timing helpers

def sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


def timed(fn, device=None):
    start = time.perf_counter()
    out = fn()
    if device is not None:
        sync(device)
    else:
        jax.block_until_ready(out)
    return time.perf_counter() - start


def interleave(jobs: dict, repeats: int) -> dict:
    """Time each job's ``run`` ``repeats`` times, taking turns; return first-call and best seconds."""
    first = {name: timed(job["run"], job.get("torch")) for name, job in jobs.items()}
    best = {name: math.inf for name in jobs}
    for _ in range(repeats):
        for name, job in jobs.items():
            best[name] = min(best[name], timed(job["run"], job.get("torch")))
    return {name: {"first_call_s": first[name], "best_s": best[name]} for name in jobs}


# ----------------------------------------------------------------------------- jobs

def training_job(label, make_model, dataset, schedule, batch_size, steps, repeats, device):
    lr, clip, ema_decay = 1e-3, 1.0, 0.999

    # ddpm_lib: train.train, all steps in one compiled call.
    model = make_model()
    optimizer = nnx.Optimizer(model, train.make_optimizer(lr, clip_norm=clip), wrt=nnx.Param)
    key = jax.random.key(0)
    state = {"ema": None}

    def run_jax():
        result = train.train(model, optimizer, schedule, dataset, key, num_steps=steps,
                             batch_size=batch_size, ema_decay=ema_decay, ema_model=state["ema"])
        state["ema"] = result.ema_model
        return jax.tree.leaves(nnx.state(model))

    # PyTorch eager: the same step in a Python loop.
    twin = twin_of(make_model(), device)
    ema = [p.detach().clone() for p in twin.parameters()]
    opt = torch.optim.Adam(twin.parameters(), lr=lr)
    x_all = torch.tensor(np.asarray(dataset), device=device)
    ab = torch.tensor(np.asarray(schedule.alpha_bars), device=device)
    view = (-1,) + (1,) * (x_all.ndim - 1)
    gen = torch.Generator(device=device).manual_seed(0)
    counter = {"n": 0}

    def run_torch():
        params = list(twin.parameters())
        for _ in range(steps):
            idx = torch.randint(0, x_all.shape[0], (batch_size,), device=device, generator=gen)
            t = torch.randint(1, schedule.T + 1, (batch_size,), device=device, generator=gen)
            x0 = x_all[idx]
            eps = torch.randn(x0.shape, device=device, generator=gen)
            a = ab[t].reshape(view)
            xt = a.sqrt() * x0 + (1 - a).sqrt() * eps
            loss = torch.mean((twin(xt, t) - eps) ** 2)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, clip)
            opt.step()
            n = counter["n"]
            decay = min(ema_decay, (1.0 + n) / (10.0 + n))
            with torch.no_grad():
                torch._foreach_lerp_(ema, params, 1.0 - decay)
            counter["n"] += 1
        return loss

    times = interleave({"ddpm_lib": {"run": run_jax}, "torch": {"run": run_torch, "torch": device}}, repeats)
    rates = {k: steps / v["best_s"] for k, v in times.items()}
    return {
        "job": "training", "model": label, "batch_size": batch_size, "steps_timed": steps,
        "steps_per_s": {k: round(v, 1) for k, v in rates.items()},
        "first_call_s": {k: round(v["first_call_s"], 3) for k, v in times.items()},
        "ratio": round(rates["ddpm_lib"] / rates["torch"], 2),
    }


def diffusers_ddpm(T):
    return diffusers.DDPMScheduler(num_train_timesteps=T, beta_schedule="linear", beta_start=1e-4,
                                   beta_end=0.02, variance_type="fixed_large", clip_sample=False)


def diffusers_ddim(T):
    return diffusers.DDIMScheduler(num_train_timesteps=T, beta_schedule="linear", beta_start=1e-4,
                                   beta_end=0.02, clip_sample=False, set_alpha_to_one=True)


def sampling_job(kind, label, model, shape, repeats, device, num_steps=None):
    T = 1000
    schedule = schedules.linear(T)
    key = jax.random.key(1)
    twin = twin_of(model, device).eval()
    scheduler = diffusers_ddpm(T) if kind == "ddpm" else diffusers_ddim(T)
    gen = torch.Generator(device=device).manual_seed(1)

    if kind == "ddpm":
        def run_jax():
            return sampling.sample(model, schedule, key, shape)
    else:
        def run_jax():
            return ddim_sample(model, schedule, key, shape, num_steps=num_steps)

    @torch.no_grad()
    def run_torch():
        # What a diffusers user writes (the body of DDPMPipeline.__call__, without the image
        # post-processing).
        scheduler.set_timesteps(T if kind == "ddpm" else num_steps)
        x = torch.randn(shape, generator=gen, device=device)
        for t in scheduler.timesteps:
            eps = twin(x, t)
            if kind == "ddpm":
                x = scheduler.step(eps, t, x, generator=gen).prev_sample
            else:
                x = scheduler.step(eps, t, x, eta=0.0).prev_sample
        return x

    times = interleave({"ddpm_lib": {"run": run_jax}, "torch": {"run": run_torch, "torch": device}}, repeats)
    steps = T if kind == "ddpm" else num_steps
    return {
        "job": "sampling", "sampler": "DDPM" if kind == "ddpm" else "DDIM",
        "model": label, "shape": list(shape), "network_calls": steps,
        "seconds": {k: round(v["best_s"], 4) for k, v in times.items()},
        "first_call_s": {k: round(v["first_call_s"], 3) for k, v in times.items()},
        "ratio": round(times["torch"]["best_s"] / times["ddpm_lib"]["best_s"], 2),
    }


# ----------------------------------------------------------------------------- report

def machine_info(device):
    cpu = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {
        "date": datetime.date.today().isoformat(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "cores_used": len(os.sched_getaffinity(0)),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "jax": jax.__version__,
        "jax_backend": jax.default_backend(),
        "jax_devices": [str(d) for d in jax.devices()],
        "flax": __import__("flax").__version__,
        "optax": __import__("optax").__version__,
        "torch": torch.__version__,
        "torch_device": device,
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "diffusers": diffusers.__version__,
        "numpy": np.__version__,
        "XLA_FLAGS": os.environ.get("XLA_FLAGS", ""),
        "JAX_PLATFORMS": os.environ.get("JAX_PLATFORMS", ""),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", ""),
    }
    if device == "cuda":
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def verdict(ratio, goal):
    return f"**met** ({ratio:.2f}x >= {goal:g}x)" if ratio >= goal else f"**not met** ({ratio:.2f}x < {goal:g}x)"


def write_markdown(path, result):
    m = result["machine"]
    where = (m.get("gpu", m["cpu"]) if m["torch_device"] == "cuda"
             else f"{m['cpu']}, {m['cores_used']} of its {m['cpu_count']} cores")
    lines = [
        "# ddpm_lib against PyTorch eager and diffusers",
        "",
        f"Measured by `benchmarks/peers.py` on {where} ({m['platform']}), {m['date']}: jax {m['jax']} "
        f"({m['jax_backend']}), flax {m['flax']}, optax {m['optax']}; torch {m['torch']} on {m['torch_device']} "
        f"(threads: {m['torch_threads']}), diffusers {m['diffusers']}; Python {m['python']}. Load average at the "
        f"start {m['load_average_at_start']}.",
        "Each figure is the best of several repeats, the two sides taking turns, after a first call"
        " (timed separately: JAX compiles there). On a shared machine the absolute figures depend on"
        " what else runs; the ratios, measured turn by turn, are the figures to compare.",
        f"The twin computes the same function: max |ddpm_lib - PyTorch| on random inputs "
        f"{result['twin_max_difference']:.1e}.",
        "",
        "## Training (L_simple, Adam with clipping, EMA)",
        "",
        "| model | batch | ddpm_lib steps/s | PyTorch eager steps/s | ratio | first call: ddpm_lib / PyTorch (s) |",
        "|---|---|---|---|---|---|",
    ]
    for r in result["training"]:
        lines.append(f"| {r['model']} | {r['batch_size']} | {r['steps_per_s']['ddpm_lib']:,.0f} | "
                     f"{r['steps_per_s']['torch']:,.0f} | **{r['ratio']:.2f}x** | "
                     f"{r['first_call_s']['ddpm_lib']:.2f} / {r['first_call_s']['torch']:.2f} |")
    lines += [
        "",
        "## Sampling (diffusers' scheduler step functions in the PyTorch loop)",
        "",
        "| sampler | model | samples | ddpm_lib (s) | PyTorch + diffusers (s) | ratio | first call: ddpm_lib / PyTorch (s) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in result["sampling"]:
        lines.append(f"| {r['sampler']} ({r['network_calls']} steps) | {r['model']} | {r['shape'][0]:,} | "
                     f"{r['seconds']['ddpm_lib']:.3f} | {r['seconds']['torch']:.3f} | **{r['ratio']:.2f}x** | "
                     f"{r['first_call_s']['ddpm_lib']:.2f} / {r['first_call_s']['torch']:.2f} |")
    if result["goals"]:
        lines += ["", "## Goals (issue 14, on a CPU)", ""]
        for g in result["goals"]:
            lines.append(f"- {g['what']}: {verdict(g['ratio'], g['goal'])}")
    lines.append("")
    path.write_text("\n".join(lines))


def main(args):
    device = args.device
    if device == "cuda" and not torch.cuda.is_available():
        sys.exit("--device cuda: PyTorch sees no GPU")
    repeats = 2 if args.quick else args.repeats
    scale = 0.1 if args.quick else 1.0
    torch.manual_seed(0)
    result = {"machine": machine_info(device), "training": [], "sampling": []}

    moons = data.two_moons(jax.random.key(0), 10_000)
    digits_x, _ = data.digits("train")
    mlp2 = lambda: models.MLPDenoiser((2,), width=64, num_blocks=3, rngs=nnx.Rngs(0))  # noqa: E731
    mlp8 = lambda: models.MLPDenoiser((8, 8), width=256, num_blocks=3, layer_norm=True,  # noqa: E731
                                      rngs=nnx.Rngs(0))
    result["twin_max_difference"] = max(twin_max_difference(mlp2(), device, (256, 2)),
                                        twin_max_difference(mlp8(), device, (64, 8, 8)))
    print("twin max |difference|:", result["twin_max_difference"], flush=True)
    if not result["twin_max_difference"] < 1e-3:
        sys.exit("the PyTorch twin does not compute the same function as ddpm_lib's model")

    train_jobs = [("2-D MLP (width 64)", mlp2, moons, schedules.linear(1000), 256, 1000),
                  ("digits MLP (width 256)", mlp8, digits_x, schedules.cosine(200), 128, 400)]
    if device == "cuda":
        train_jobs += [("2-D MLP (width 64)", mlp2, moons, schedules.linear(1000), 4096, 1000),
                       ("digits MLP (width 256)", mlp8, digits_x, schedules.cosine(200), 1024, 400)]
    for label, make, x, sched, bs, steps in train_jobs:
        r = training_job(label, make, x, sched, bs, max(int(steps * scale), 10), repeats, device)
        print(json.dumps(r), flush=True)
        result["training"].append(r)

    sample_jobs = [("ddpm", "2-D MLP (width 64)", mlp2, (1000, 2), None),
                   ("ddim", "2-D MLP (width 64)", mlp2, (1000, 2), 50),
                   ("ddpm", "digits MLP (width 256)", mlp8, (256, 8, 8), None),
                   ("ddim", "digits MLP (width 256)", mlp8, (256, 8, 8), 50)]
    if device == "cuda":
        sample_jobs += [("ddpm", "2-D MLP (width 64)", mlp2, (100_000, 2), None),
                        ("ddim", "2-D MLP (width 64)", mlp2, (100_000, 2), 50)]
    for kind, label, make, shape, n in sample_jobs:
        r = sampling_job(kind, label, make(), shape, repeats, device, num_steps=n)
        print(json.dumps(r), flush=True)
        result["sampling"].append(r)

    result["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    goals = []
    if device == "cpu":
        for r in result["training"]:
            goals.append({"what": f"training, {r['model']}, batch {r['batch_size']}: >= 3x PyTorch eager",
                          "ratio": r["ratio"], "goal": GOALS["training"], "met": r["ratio"] >= GOALS["training"]})
        for r in result["sampling"]:
            goals.append({"what": f"sampling, {r['sampler']}, {r['model']}: >= 2x the diffusers loop",
                          "ratio": r["ratio"], "goal": GOALS["sampling"], "met": r["ratio"] >= GOALS["sampling"]})
    result["goals"] = goals

    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = "peers" if device == "cpu" else "peers-cuda"
    (out / f"{stem}.json").write_text(json.dumps(result, indent=1) + "\n")
    write_markdown(out / f"{stem}.md", result)
    print(f"wrote {out / stem}.json and .md")


if __name__ == "__main__":
    main(ARGS)
