"""python -m ddpm_lib train|sample: help for every option, one-line errors, and a tiny run end to end."""

import argparse
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from ddpm_lib import checkpoint, cli

ROOT = pathlib.Path(__file__).resolve().parents[1]
TINY = ["--data", "dot", "--width", "8", "--blocks", "1", "--T", "10", "--batch-size", "16", "--progress"]


def _run(*args, cwd=ROOT):
    """``python -m ddpm_lib ...`` in a fresh process, importing ddpm_lib from the checkout (not an install)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["JAX_PLATFORMS"] = "cpu"
    return subprocess.run([sys.executable, "-m", "ddpm_lib", *args], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=600)


def test_help_explains_every_option():
    r = _run("--help")
    assert r.returncode == 0 and "train" in r.stdout and "sample" in r.stdout and "ddpm_lib" in r.stdout
    parser = cli._parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    assert set(subparsers) == {"train", "sample"}
    for name, sub in subparsers.items():
        text = sub.format_help()
        for action in sub._actions:
            assert action.help and action.help != argparse.SUPPRESS, (name, action.option_strings)
            for flag in action.option_strings:
                assert flag in text, (name, flag)


@pytest.mark.parametrize("args, says", [
    (["train", "--data", "mnist", "--out", "x"], "invalid choice: 'mnist'"),
    (["sample", "--checkpoint", "no/such/dir", "--num", "10", "--out", "s.npy"], "does not exist"),
    (["sample", "--checkpoint", "checkpoints/digits", "--num", "0", "--out", "s.npy"], "--num: must be a positive"),
    (["sample", "--checkpoint", "x", "--num", "5", "--eta", "-1", "--out", "s.npy"], "--eta: must be a finite"),
    (["train", "--data", "dot", "--steps", "0", "--out", "x"], "--steps: must be a positive"),
    (["train", "--out", "x"], "required: --data"),
    (["train", "--data", "moons", "--model", "unet", "--out", "x"], "--model unet needs --data digits"),
    (["sample", "--num", "5", "--out", "s.npy"], "required: --checkpoint"),
    (["fly"], "invalid choice: 'fly'"),
    ([], "required"),
    (["train", "--data", "dot", "--lr", "nan", "--out", "x"], "--lr: must be a finite number > 0"),
])
def test_bad_arguments_give_one_line_and_a_nonzero_exit(args, says, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # nothing may be written next to the tests
    status = cli.main(args)
    err = capsys.readouterr().err
    assert status != 0 and says in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err and err.startswith("python -m ddpm_lib")


def test_a_missing_checkpoint_exits_cleanly_in_a_fresh_process(tmp_path):
    r = _run("sample", "--checkpoint", str(tmp_path / "none"), "--num", "4", "--out", str(tmp_path / "s.npy"))
    # One line of ours (Python may add its own warnings, e.g. when it first compiles a module).
    ours = [line for line in r.stderr.splitlines() if line.startswith("python -m ddpm_lib")]
    assert r.returncode == 1 and len(ours) == 1 and "Traceback" not in r.stderr
    assert "does not exist" in ours[0]


def _arrays(path):
    ck = checkpoint.load(path)
    return [np.asarray(a) for m in (ck.model, ck.ema_model, ck.optimizer) for a in _leaves(m)]


def _leaves(obj):
    import jax
    from flax import nnx

    return jax.tree.leaves(nnx.to_pure_dict(nnx.state(obj)))


def test_train_resume_and_sample(tmp_path, capsys, monkeypatch):
    a, b = tmp_path / "a", tmp_path / "b"
    assert cli.main(["train", *TINY, "--steps", "12", "--save-every", "6", "--out", str(a)]) == 0
    assert "train [" in capsys.readouterr().err  # the progress bar
    # The same run interrupted (Ctrl-C) after its step-6 checkpoint, then resumed: the same arrays,
    # bit for bit, as the run that was never stopped.
    shown = cli._Progress.__call__

    def interrupt(self, step, loss):
        if step == 7:
            raise KeyboardInterrupt
        shown(self, step, loss)

    monkeypatch.setattr(cli._Progress, "__call__", interrupt)
    assert cli.main(["train", *TINY, "--steps", "12", "--save-every", "6", "--out", str(b)]) == 130
    monkeypatch.setattr(cli._Progress, "__call__", shown)
    assert checkpoint.load(b).step == 6
    assert cli.main(["train", "--resume", str(b)]) == 0
    assert checkpoint.load(b).step == 12
    assert all(np.array_equal(x, y) for x, y in zip(_arrays(a), _arrays(b), strict=True))
    # The recorded command is the one that was run; an existing checkpoint is not overwritten.
    assert checkpoint.load(a).config["command"].startswith("python -m ddpm_lib train --data dot")
    assert cli.main(["train", *TINY, "--steps", "3", "--out", str(a)]) == 2
    assert "--force" in capsys.readouterr().err
    assert cli.main(["train", "--resume", str(a), "--width", "4"]) == 2

    out, png = tmp_path / "s.npy", tmp_path / "s.png"
    assert cli.main(["sample", "--checkpoint", str(a), "--num", "7", "--seed", "0", "--out", str(out),
                     "--png", str(png)]) == 0
    x = np.load(out)
    assert x.shape == (7, 3, 3) and x.dtype == np.float32 and png.stat().st_size > 0
    assert x.min() >= 0.0 and x.max() <= 1.0  # the dot images' range
    assert cli.main(["sample", "--checkpoint", str(a), "--num", "7", "--seed", "0", "--out", str(out)]) == 0
    np.testing.assert_array_equal(np.load(out), x)  # a seed fixes the samples
    assert cli.main(["sample", "--checkpoint", str(a), "--num", "7", "--sampler", "ddim", "--steps", "5",
                     "--eta", "0", "--out", str(out)]) == 0
    assert np.load(out).shape == (7, 3, 3)
    assert cli.main(["sample", "--checkpoint", str(a), "--num", "7", "--steps", "11", "--out", str(out)]) == 2
    assert "--steps must be in 1..T (T = 10" in capsys.readouterr().err
