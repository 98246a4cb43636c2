"""The command line, ``python -m ddpm_lib train|sample``: the library's own calls behind a few options.

* ``train`` builds a data set, a network, a schedule and an optimizer
  (:mod:`ddpm_lib.data`, :mod:`ddpm_lib.models`, :mod:`ddpm_lib.schedules`,
  :func:`ddpm_lib.train.make_optimizer`), runs :func:`ddpm_lib.train.train` in chunks and
  writes a checkpoint directory (:mod:`ddpm_lib.checkpoint`) after every ``--save-every``
  steps and at the end. ``--resume DIR`` goes on from such a directory, with the same
  result as a run that was never interrupted (step ``n`` always draws its batch from
  ``fold_in(key, n)``).
* ``sample`` loads a checkpoint and writes samples from its EMA network
  (:func:`ddpm_lib.sampling.sample` or :func:`ddpm_lib.ddim.ddim_sample`) to a ``.npy``
  file, and optionally a PNG picture of them.

Nothing here computes anything a chapter does not: the command line only parses options,
calls the library and writes files. Bad options and failing calls end with one line on
stderr (``ddpm_lib train: error: ...``) and exit status 2 (bad usage) or 1 (a failed run).
"""

from __future__ import annotations

import argparse
import math
import pathlib
import shlex
import sys
import time

__all__ = ["main", "DATASETS", "PRESETS"]

DATASETS = ("dot", "moons", "gmm", "digits")

# Defaults per data set (every one can be overridden on the command line).
_SMALL = {"schedule": "linear", "T": 100, "beta_start": 1e-3, "beta_end": 0.2}
PRESETS = {
    "dot": dict(model="mlp", width=32, blocks=2, time_width=None, layer_norm=False, **_SMALL,
                steps=3000, batch_size=64, lr=3e-3, ema_decay=0.999),
    "moons": dict(model="mlp", width=128, blocks=3, time_width=None, layer_norm=False, **_SMALL,
                  steps=10000, batch_size=256, lr=2e-3, ema_decay=0.999),
    "gmm": dict(model="mlp", width=128, blocks=3, time_width=None, layer_norm=False, **_SMALL,
                steps=10000, batch_size=256, lr=2e-3, ema_decay=0.999),
    "digits": dict(model="mlp", width=256, blocks=3, time_width=64, layer_norm=True, schedule="cosine", T=200,
                   beta_start=None, beta_end=None, steps=50000, batch_size=128, lr=3e-3, ema_decay=0.999),
}
"""The defaults of ``train`` for each data set."""

_TRAIN_KEYS = ("data", "model", "width", "blocks", "time_width", "layer_norm", "channels", "schedule", "T",
               "beta_start", "beta_end", "steps", "batch_size", "lr", "warmup", "ema_decay", "seed")


class _UsageError(Exception):
    """A bad option, reported as one line with exit status 2."""


class _Parser(argparse.ArgumentParser):
    """``argparse`` that reports a bad option in one line (no usage block) and exits with status 2."""

    def error(self, message):  # noqa: D401 - argparse's hook
        raise _UsageError(message)


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer; got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer; got {text!r}")
    return v


def _nonneg_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0; got {text!r}") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0; got {text!r}")
    return v


def _number(lo: float | None = None, hi: float | None = None, lo_open: bool = False, hi_open: bool = False):
    def parse(text: str) -> float:
        try:
            v = float(text)
        except ValueError:
            v = math.nan
        bad = not math.isfinite(v)
        if lo is not None:
            bad |= v <= lo if lo_open else v < lo
        if hi is not None:
            bad |= v >= hi if hi_open else v > hi
        if bad:
            where = ""
            if lo is not None and hi is not None:
                where = f" in {'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}"
            elif lo is not None:
                where = f" {'>' if lo_open else '>='} {lo}"
            raise argparse.ArgumentTypeError(f"must be a finite number{where}; got {text!r}")
        return v
    return parse


def _channels(text: str) -> list[int]:
    try:
        c = [int(p) for p in text.split(",")]
    except ValueError:
        c = []
    if len(c) != 2 or min(c) < 1:
        raise argparse.ArgumentTypeError(f"must be two positive integers such as 16,32; got {text!r}")
    return c


def _clip(text: str) -> float | None:
    if text.lower() == "none":
        return None
    return _number(0.0, lo_open=True)(text)


def _parser() -> _Parser:
    p = _Parser(prog="python -m ddpm_lib", description="Train a DDPM denoiser on a built-in data set, or sample "
                "from a trained checkpoint.", epilog="Run 'python -m ddpm_lib train --help' or '... sample --help' "
                "for the options of each command.")
    sub = p.add_subparsers(dest="command", metavar="{train,sample}", parser_class=_Parser)
    sub.required = True
    S = argparse.SUPPRESS  # options left out take the data set's preset (or the checkpoint's, with --resume)

    t = sub.add_parser("train", help="train a denoiser and write a checkpoint directory",
                       description="Train a denoiser with L_simple (Ho et al. 2020, Algorithm 1) and write a "
                       "checkpoint directory. Options left out take the data set's defaults (shown as 'preset').",
                       epilog="Presets: " + "; ".join(f"{k}: {_preset_text(v)}" for k, v in PRESETS.items()))
    t.add_argument("--data", choices=DATASETS, default=S,
                   help="the built-in data set: the 3x3 single dot, two moons, a Gaussian mixture (2-D), or "
                   "scikit-learn's 8x8 digits (train split). Required unless --resume.")
    t.add_argument("--out", metavar="DIR", default=S,
                   help="the checkpoint directory to write (default: the --resume directory)")
    t.add_argument("--resume", metavar="DIR", default=None,
                   help="go on training the checkpoint in DIR with its own settings (only --steps, --save-every "
                   "and --out may be given with it)")
    t.add_argument("--force", action="store_true",
                   help="overwrite a checkpoint already in --out (otherwise refused)")
    t.add_argument("--model", choices=("mlp", "unet"), default=S, help="the network (preset: mlp)")
    t.add_argument("--width", type=_positive_int, default=S, help="MLP hidden width")
    t.add_argument("--blocks", type=_positive_int, default=S, help="MLP residual blocks")
    t.add_argument("--time-width", type=_positive_int, default=S,
                   help="MLP time features per block (preset: the width; 64 for digits)")
    t.add_argument("--layer-norm", action=argparse.BooleanOptionalAction, default=S,
                   help="MLP layer normalization in every block (preset: on for digits)")
    t.add_argument("--channels", type=_channels, default=S, metavar="C0,C1",
                   help="U-Net widths at full and half resolution (default 32,64; digits only)")
    t.add_argument("--schedule", choices=("linear", "cosine"), default=S, help="the noise schedule")
    t.add_argument("--T", type=_positive_int, default=S, help="the number of diffusion steps")
    t.add_argument("--beta-start", type=_number(0.0, 1.0), default=S, help="first beta of a linear schedule")
    t.add_argument("--beta-end", type=_number(0.0, 1.0), default=S, help="last beta of a linear schedule")
    t.add_argument("--steps", type=_positive_int, default=S,
                   help="the total number of optimizer steps (with --resume: train up to this many)")
    t.add_argument("--batch-size", type=_positive_int, default=S, help="examples per step")
    t.add_argument("--lr", type=_number(0.0, lo_open=True), default=S,
                   help="peak learning rate of Adam (linear warm-up, then cosine decay to a tenth)")
    t.add_argument("--warmup", type=_nonneg_int, default=S, help="warm-up steps (default 100)")
    t.add_argument("--ema-decay", type=_number(0.0, 1.0, hi_open=True), default=S,
                   help="decay of the exponential moving average of the weights")
    t.add_argument("--seed", type=_nonneg_int, default=S, help="seed of the data, the weights and the batches "
                   "(default 0)")
    t.add_argument("--save-every", type=_positive_int, default=None, metavar="N",
                   help="also write the checkpoint every N steps, so that an interrupted run can --resume")
    t.add_argument("--weights-only", action="store_true",
                   help="leave the optimizer state out of the final checkpoint (half the size; it samples but "
                   "cannot --resume)")
    t.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="show a progress bar (default: only when stderr is a terminal)")

    s = sub.add_parser("sample", help="write samples from a checkpoint to a .npy file",
                       description="Draw samples from a checkpoint's EMA network and write them to a .npy file "
                       "(float32, shape (num, *data_shape), on the data's scale: images in [-1, 1]).")
    s.add_argument("--checkpoint", metavar="DIR", required=True, help="a directory written by 'train'")
    s.add_argument("--num", type=_positive_int, required=True, help="the number of samples")
    s.add_argument("--seed", type=_nonneg_int, default=0, help="the sampling seed (default 0)")
    s.add_argument("--out", metavar="FILE.npy", required=True, help="where to write the samples")
    s.add_argument("--png", metavar="FILE.png", default=None,
                   help="also write a picture: a grid of the first 64 images, or a scatter plot of 2-D points")
    s.add_argument("--sampler", choices=("ancestral", "ddim"), default="ancestral",
                   help="ancestral sampling (Algorithm 2) or DDIM (default: ancestral)")
    s.add_argument("--steps", type=_positive_int, default=None,
                   help="network calls, 1..T: fewer than T skips steps (default: T for ancestral, 50 for ddim)")
    s.add_argument("--eta", type=_number(0.0), default=0.0, help="DDIM noise scale, >= 0 (0: deterministic, "
                   "1: like ancestral sampling with sigma^2 = beta_tilde)")
    s.add_argument("--spacing", choices=("trailing", "linspace"), default="trailing",
                   help="which steps a shortened chain visits (ddpm_lib.spacing.timesteps; default: trailing)")
    s.add_argument("--sigma2", choices=("beta", "beta_tilde"), default=None,
                   help="ancestral reverse variance (default: the checkpoint's recommendation)")
    s.add_argument("--clip-x0", type=_clip, default=argparse.SUPPRESS, metavar="C|none",
                   help="clip the predicted x0 to [-C, C] at every step (default: the checkpoint's "
                   "recommendation, 1 for images)")
    s.add_argument("--raw", action="store_true", help="sample from the raw weights instead of the EMA")
    return p


def _preset_text(v: dict) -> str:
    shown = [f"{v['model']} {v['width']}x{v['blocks']}", f"{v['schedule']} T={v['T']}",
             f"{v['steps']} steps", f"batch {v['batch_size']}", f"lr {v['lr']}"]
    return ", ".join(shown)


# ---------------------------------------------------------------------------------------------- train


def _settings(args) -> dict:
    """The full training settings: the data set's preset, overridden by the options given."""
    given = {k: getattr(args, k) for k in _TRAIN_KEYS if hasattr(args, k)}
    if "data" not in given:
        raise _UsageError("the following argument is required: --data (or --resume)")
    s = dict(PRESETS[given["data"]], data=given["data"], warmup=100, seed=0, channels=[32, 64])
    s.update(given)
    if s["data"] != "digits" and s["model"] == "unet":
        raise _UsageError(f"--model unet needs --data digits (8x8 images); got --data {s['data']}")
    if s["schedule"] == "linear":
        s["beta_start"] = 1e-4 if s["beta_start"] is None else s["beta_start"]
        s["beta_end"] = 0.02 if s["beta_end"] is None else s["beta_end"]
    elif "beta_start" in given or "beta_end" in given:
        raise _UsageError("--beta-start and --beta-end apply to --schedule linear only")
    return s


def _load_data(s: dict):
    import jax

    from ddpm_lib import data

    key = jax.random.fold_in(jax.random.key(s["seed"]), 1)
    if s["data"] == "dot":
        return data.single_dot_dataset(100), {"range": [0.0, 1.0]}
    if s["data"] == "moons":
        return data.two_moons(key, 20_000), {}
    if s["data"] == "gmm":
        return data.gaussian_mixture(key, 20_000), {}
    images, _ = data.digits("train")
    return images, {"range": [-1.0, 1.0], "split": "train"}


def _config(s: dict, data_shape: tuple, extra: dict) -> dict:
    if s["model"] == "mlp":
        model = {"kind": "mlp", "data_shape": list(data_shape), "width": s["width"], "num_blocks": s["blocks"],
                 "time_width": s["time_width"], "layer_norm": s["layer_norm"]}
    else:
        model = {"kind": "unet", "image_size": data_shape[0], "channels": list(s["channels"])}
    if s["schedule"] == "linear":
        schedule = {"kind": "linear", "T": s["T"], "beta_start": s["beta_start"], "beta_end": s["beta_end"]}
    else:
        schedule = {"kind": "cosine", "T": s["T"]}
    image = "range" in extra
    return {
        "model": model,
        "schedule": schedule,
        "optimizer": {"learning_rate": s["lr"], "warmup_steps": s["warmup"], "total_steps": s["steps"]},
        "train": s,
        "data": {"name": s["data"], "shape": list(data_shape), **extra},
        "sampling": {"sigma2": "beta_tilde", "clip_x0": 1.0 if image else None, "prediction": "eps"},
    }


class _Progress:
    def __init__(self, show: bool, total: int, start: int):
        self.show, self.total, self.start, self.t0 = show, total, start, time.perf_counter()

    def __call__(self, step: int, loss: float) -> None:
        if not self.show:
            return
        done = (step - self.start) / max(self.total - self.start, 1)
        rate = (step - self.start) / max(time.perf_counter() - self.t0, 1e-9)
        eta = (self.total - step) / max(rate, 1e-9)
        bar = "#" * int(30 * done) + "." * (30 - int(30 * done))
        sys.stderr.write(f"\rtrain [{bar}] {step}/{self.total} loss {loss:.4f} {rate:.0f} steps/s "
                         f"ETA {eta / 60:.1f} min ")
        sys.stderr.flush()

    def close(self) -> None:
        if self.show:
            sys.stderr.write("\n")


def _train(args) -> int:
    import jax
    import numpy as np
    from flax import nnx

    from ddpm_lib import checkpoint, train

    if args.resume is not None:
        extra = sorted(k.replace("_", "-") for k in _TRAIN_KEYS if hasattr(args, k) and k != "steps")
        if extra:
            raise _UsageError(f"--resume takes the settings from the checkpoint; drop --{', --'.join(extra)}")
        ck = checkpoint.load(args.resume)
        if ck.optimizer is None:
            raise ValueError(f"checkpoint {args.resume!r} holds no optimizer state (saved with --weights-only): "
                             "it cannot resume")
        s = dict(ck.config["train"])
        if hasattr(args, "steps"):
            if args.steps < ck.step:
                raise _UsageError(f"--steps must be >= the checkpoint's step {ck.step}; got {args.steps}")
            s["steps"] = args.steps
        out = pathlib.Path(getattr(args, "out", args.resume))
        x, extra_data = _load_data(s)
        config = dict(ck.config)
        config["train"] = s
        model, optimizer, ema_model, start = ck.model, ck.optimizer, ck.ema_model, ck.step
        seconds = float(config.get("seconds", 0.0))
        history = list(config.get("loss_history", []))
    else:
        s = _settings(args)
        if not hasattr(args, "out"):
            raise _UsageError("the following argument is required: --out")
        out = pathlib.Path(args.out)
        if (out / checkpoint.CONFIG_FILE).exists() and not args.force:
            raise _UsageError(f"--out {str(out)!r} already holds a checkpoint; pass --resume {str(out)} to go on "
                              "training it, or --force to replace it")
        x, extra_data = _load_data(s)
        config = _config(s, tuple(x.shape[1:]), extra_data)
        model = checkpoint.model_from_config(config["model"], seed=s["seed"])
        optimizer = nnx.Optimizer(model, train.make_optimizer(**config["optimizer"]), wrt=nnx.Param)
        ema_model, start, seconds, history = None, 0, 0.0, []
    schedule = checkpoint.schedule_from_config(config["schedule"])
    key = jax.random.key(s["seed"])
    total = s["steps"]
    chunk = max(1, math.ceil(total / 100))  # the progress bar moves every 1% of the run
    show = sys.stderr.isatty() if args.progress is None else args.progress
    progress = _Progress(show, total, start)
    if args.resume is None:
        config["command"] = "python -m ddpm_lib " + " ".join(shlex.quote(a) for a in args.argv)
    step = start
    started = time.perf_counter()

    def write(final: bool) -> None:
        config.update(seconds=round(seconds + time.perf_counter() - started, 1), loss_history=history, step=step)
        keep = optimizer if not (final and args.weights_only) else None
        checkpoint.save(out, model, config=config, ema_model=ema_model, optimizer=keep)

    while step < total:
        n = min(chunk, total - step)
        if args.save_every:
            n = min(n, args.save_every - step % args.save_every)
        result = train.train(model, optimizer, schedule, x, key, num_steps=n, batch_size=s["batch_size"],
                             ema_decay=s["ema_decay"], ema_model=ema_model, progress=False)
        ema_model = result.ema_model
        step += n
        history.append([step, round(float(np.mean(result.losses)), 5)])
        progress(step, history[-1][1])
        if args.save_every and step % args.save_every == 0 and step < total:
            write(final=False)
    progress.close()
    write(final=True)
    last = f"; loss of the last {chunk} steps {history[-1][1]:.4f}" if history else ""
    print(f"trained to step {step} in {config['seconds']:.0f} s{last}; checkpoint written to {out}")
    return 0


# ---------------------------------------------------------------------------------------------- sample


def _sample(args) -> int:
    import jax
    import numpy as np

    from ddpm_lib import checkpoint, ddim, sampling

    out = pathlib.Path(args.out)
    if out.suffix != ".npy":
        raise _UsageError(f"--out must name a .npy file; got {args.out!r}")
    if args.png is not None and pathlib.Path(args.png).suffix.lower() != ".png":
        raise _UsageError(f"--png must name a .png file; got {args.png!r}")
    ck = checkpoint.load(args.checkpoint)
    rec = ck.config.get("sampling", {})
    T = ck.schedule.T
    clip = args.clip_x0 if hasattr(args, "clip_x0") else rec.get("clip_x0")
    model = ck.model if args.raw else ck.sampling_model
    shape = (args.num, *ck.config["data"]["shape"])
    key = jax.random.key(args.seed)
    if args.steps is not None and not 1 <= args.steps <= T:
        raise _UsageError(f"--steps must be in 1..T (T = {T} for this checkpoint); got {args.steps}")
    if args.sampler == "ancestral":
        if args.eta != 0.0:
            raise _UsageError("--eta applies to --sampler ddim only")
        x = sampling.sample(model, ck.schedule, key, shape, sigma2=args.sigma2 or rec.get("sigma2", "beta"),
                            prediction=rec.get("prediction", "eps"), clip_x0=clip, num_steps=args.steps,
                            spacing=args.spacing)
    else:
        if args.sigma2 is not None:
            raise _UsageError("--sigma2 applies to --sampler ancestral only (DDIM's noise is set by --eta)")
        x = ddim.ddim_sample(model, ck.schedule, key, shape, num_steps=args.steps or min(50, T), eta=args.eta,
                             spacing=args.spacing, clip_x0=clip)
    x = np.asarray(x, np.float32)
    if "range" in ck.config["data"]:  # the data's scale: clip the last rounding overshoot of images
        lo, hi = ck.config["data"]["range"]
        x = np.clip(x, lo, hi)
    if not np.all(np.isfinite(x)):
        raise ValueError("the samples hold NaN or infinite values; try --clip-x0 1 or another --sampler")
    out.parent.mkdir(parents=True, exist_ok=True)
    np.save(out, x)
    if args.png is not None:
        _picture(x, ck.config["data"], pathlib.Path(args.png))
    print(f"wrote {args.num} samples of shape {tuple(x.shape[1:])} to {out}"
          + (f" and a picture to {args.png}" if args.png else ""))
    return 0


def _picture(x, data_cfg: dict, path: pathlib.Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ddpm_lib.plotting_models import image_grid, plot_points

    if x.ndim == 3:
        lo, hi = data_cfg.get("range", [float(x.min()), float(x.max())])
        fig = image_grid(x[:64], ncols=8, vmin=lo, vmax=hi)
    else:
        fig = plot_points({f"{len(x)} samples": x.reshape(len(x), -1)[:, :2]}, lim=3.0)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


# ---------------------------------------------------------------------------------------------- main


def main(argv=None) -> int:
    """Run the command line on ``argv`` (default ``sys.argv[1:]``); return the exit status.

    Prints one line and returns 2 for a bad option, 1 for a run that failed (a missing or
    corrupt checkpoint, an argument the library refuses), 130 when interrupted.
    """
    parser = _parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    command = argv[0] if argv and argv[0] in ("train", "sample") else None
    prog = f"{parser.prog} {command}" if command else parser.prog
    try:
        args = parser.parse_args(argv)
        args.argv = argv
        return _train(args) if args.command == "train" else _sample(args)
    except _UsageError as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2
    except (ValueError, OSError) as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
