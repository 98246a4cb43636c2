"""Data-parallel training on simulated devices: ``train(..., mesh=...)`` against one device.

JAX fixes the number of CPU devices when it starts, from
``XLA_FLAGS=--xla_force_host_platform_device_count=8``, so the sharded runs happen in a
subprocess that sets the flag before importing JAX. It trains the same small model from the
same initial weights with the same key on one device without a mesh (the reference) and on
meshes of 1, 2, 4 and 8 devices, and writes losses and weights to an ``.npz`` that the tests
below read, and a checkpoint of the 8-device run (``ddpm_lib.checkpoint``), which the last
test loads in this one-device process.

Tolerance, from the order of float32 additions. Sharding the batch changes no operation on
any example; it only changes the order in which the per-example terms are added (each device
adds its B/n examples, then the all-reduce adds the n partial sums). For any order, a float32
sum of n terms has error at most (n - 1) u sum|x_i|, with u = 2**-24 the unit round-off
(Higham, *Accuracy and Stability of Numerical Algorithms*, 2002, sec. 4.2). Two orders
therefore differ by at most 2 (n - 1) u sum|x_i|.

* The loss is a mean of B * D non-negative squares, so sum|x_i| = sum x_i and, at equal
  weights, the relative difference of a minibatch loss is at most
  ``step_rtol = 2 (B D - 1) u`` (B = 64, D = 2: 1.5e-5). The first step's loss is computed at
  equal weights, so it must meet this bound.
* Every later step adds one more such rounding difference, to the gradient this time, and
  inherits the differences of the weights. For a few steps at a small learning rate the
  gradient's dependence on the weights does not amplify them (K * lr * curvature << 1), so to
  first order they add up: after K steps, losses agree to ``K * step_rtol`` relative, and the
  weights to ``K * step_rtol`` times how far training moved them (max |theta_K - theta_0|).

The mistakes this is meant to catch are far larger: a device that used only its own shard's
gradient (no all-reduce), or a sum where a mean belongs, changes the gradient by O(1), which
moves the weights by O(lr) per step, a hundred times the weight tolerance here.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

B, D, K = 64, 2, 10  # batch, data dimension, steps
U = 2.0**-24  # float32 unit round-off
STEP_RTOL = 2 * (B * D - 1) * U
DEVICE_COUNTS = (1, 2, 4, 8)

SCRIPT = textwrap.dedent(
    f"""
    import os, sys
    os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=8"
    os.environ["JAX_PLATFORMS"] = "cpu"
    import jax, jax.numpy as jnp, numpy as np
    from flax import nnx
    from ddpm_lib import models, schedules, train

    assert jax.device_count() == 8, jax.devices()
    schedule = schedules.linear(T=50, beta_start=1e-3, beta_end=0.2)
    data = jnp.array([1.0, -0.5]) + jnp.array([0.3, 0.6]) * jax.random.normal(
        jax.random.key(0), (512, 2))
    CONFIG = {{"model": {{"kind": "mlp", "data_shape": [2], "width": 32, "num_blocks": 2,
                          "time_dim": 16}},
              "schedule": {{"kind": "linear", "T": 50, "beta_start": 1e-3, "beta_end": 0.2}},
              "optimizer": {{"learning_rate": 3e-3, "warmup_steps": 3}}}}
    tx = train.make_optimizer(**CONFIG["optimizer"])

    def fresh():
        model = models.MLPDenoiser((2,), width=32, num_blocks=2, time_dim=16, rngs=nnx.Rngs(0))
        return model, nnx.Optimizer(model, tx, wrt=nnx.Param)

    def params(model):
        return [np.asarray(p) for p in jax.tree.leaves(nnx.state(model, nnx.Param))]

    out = {{}}
    model, optimizer = fresh()
    out["init"] = np.concatenate([p.ravel() for p in params(model)])
    def run(mesh, save_to=None):
        model, optimizer = fresh()
        result = train.train(model, optimizer, schedule, data, jax.random.key(3), num_steps={K},
                             batch_size={B}, mesh=mesh)
        if save_to is not None:  # a checkpoint of the 8-device run, for a 1-device process
            from ddpm_lib import checkpoint
            checkpoint.save(save_to, model, ema_model=result.ema_model, optimizer=optimizer,
                            config=CONFIG)
        leaves = jax.tree.leaves(nnx.state(model, nnx.Param))
        replicated = all(p.sharding.is_fully_replicated for p in leaves)
        ema = [np.asarray(p) for p in jax.tree.leaves(nnx.state(result.ema_model, nnx.Param))]
        return (result.losses, np.concatenate([p.ravel() for p in params(model)]),
                np.concatenate([p.ravel() for p in ema]), replicated,
                min(len(p.devices()) for p in leaves))

    out["losses_ref"], out["params_ref"], out["ema_ref"], _, _ = run(None)
    for n in {DEVICE_COUNTS}:
        losses, p, ema, replicated, ndev = run(train.data_mesh(jax.devices()[:n]),
                                               save_to=sys.argv[2] if n == 8 else None)
        out[f"losses_{{n}}"], out[f"params_{{n}}"], out[f"ema_{{n}}"] = losses, p, ema
        out[f"replicated_{{n}}"] = np.array(replicated)
        out[f"ndev_{{n}}"] = np.array(ndev)

    # A batch that the devices do not divide, and a mesh without a "data" axis.
    model, optimizer = fresh()
    for name, mesh, bs in [("indivisible", train.data_mesh(), 60),
                           ("no_data_axis", jax.sharding.Mesh(np.array(jax.devices()), ("x",)), 64)]:
        try:
            train.train(model, optimizer, schedule, data, jax.random.key(3), num_steps=1,
                        batch_size=bs, mesh=mesh)
            out[name] = np.array("no error")
        except ValueError as err:
            out[name] = np.array("ValueError: " + str(err))
    np.savez(sys.argv[1], **out)
    """
)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sharding")
    env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="--xla_force_host_platform_device_count=8")
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(folder / "runs.npz"), str(folder / "ckpt")],
                          env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    with np.load(folder / "runs.npz") as f:
        out = dict(f)
    out["checkpoint_dir"] = folder / "ckpt"
    return out


def test_tolerance_is_what_the_derivation_says():
    # 2 (B D - 1) u for B = 64, D = 2: the figure quoted in the module docstring.
    assert STEP_RTOL == pytest.approx(1.514e-5, rel=1e-3)


@pytest.mark.parametrize("n", DEVICE_COUNTS)
def test_first_loss_equal_within_one_reduction(runs, n):
    # Step 1 runs at the same initial weights: only the summation order differs.
    ref, got = runs["losses_ref"][0], runs[f"losses_{n}"][0]
    assert abs(got - ref) <= STEP_RTOL * ref


@pytest.mark.parametrize("n", DEVICE_COUNTS)
def test_losses_equal_to_one_device(runs, n):
    ref, got = runs["losses_ref"], runs[f"losses_{n}"]
    assert got.shape == ref.shape == (K,)
    np.testing.assert_array_less(np.abs(got - ref), K * STEP_RTOL * ref)


@pytest.mark.parametrize("n", DEVICE_COUNTS)
@pytest.mark.parametrize("which", ["params", "ema"])
def test_weights_equal_to_one_device(runs, n, which):
    ref, got = runs[f"{which}_ref"], runs[f"{which}_{n}"]
    moved = np.max(np.abs(ref - runs["init"]))
    assert moved > 1e-3  # training did move the weights, so the check below has teeth
    assert np.max(np.abs(got - ref)) <= K * STEP_RTOL * moved


@pytest.mark.parametrize("n", DEVICE_COUNTS)
def test_weights_stay_replicated_on_every_device(runs, n):
    assert bool(runs[f"replicated_{n}"])
    assert int(runs[f"ndev_{n}"]) == n


def test_batch_not_divisible_by_devices_raises(runs):
    msg = str(runs["indivisible"])
    assert msg.startswith("ValueError: batch_size must be divisible by the 8 devices")
    assert "batch_size=60" in msg


def test_mesh_without_data_axis_raises(runs):
    msg = str(runs["no_data_axis"])
    assert msg.startswith("ValueError: mesh must have an axis named 'data'")


def test_bad_mesh_type_raises_in_process():
    import jax
    from flax import nnx

    from ddpm_lib import models, schedules, train

    model = models.MLPDenoiser((2,), width=8, num_blocks=1, time_dim=4, rngs=nnx.Rngs(0))
    optimizer = nnx.Optimizer(model, train.make_optimizer(1e-3), wrt=nnx.Param)
    with pytest.raises(ValueError, match="mesh must be a jax.sharding.Mesh"):
        train.train(model, optimizer, schedules.linear(T=10), np.zeros((8, 2), np.float32),
                    jax.random.key(0), num_steps=1, batch_size=8, mesh="data")


def test_model_trained_on_8_devices_loads_on_one(runs):
    """A checkpoint written by the 8-device run loads in this (one-device) process, unchanged."""
    import jax
    from flax import nnx

    from ddpm_lib import checkpoint, train

    if jax.device_count() != 1:
        pytest.skip("this half of the check needs a one-device process")
    ckpt = checkpoint.load(runs["checkpoint_dir"])
    leaves = jax.tree.leaves(nnx.state(ckpt.model, nnx.Param))
    assert all(len(p.devices()) == 1 for p in leaves)
    weights = np.concatenate([np.asarray(p).ravel() for p in leaves])
    ema = np.concatenate([np.asarray(p).ravel() for p in jax.tree.leaves(nnx.state(ckpt.ema_model, nnx.Param))])
    np.testing.assert_array_equal(weights, runs["params_8"])  # saving and loading is exact
    np.testing.assert_array_equal(ema, runs["ema_8"])
    assert ckpt.step == K and int(ckpt.optimizer.step[...]) == K
    # and training goes on here, on one device, from the restored optimizer state
    data = np.random.default_rng(0).normal(size=(64, 2)).astype(np.float32)
    result = train.train(ckpt.model, ckpt.optimizer, ckpt.schedule, data, jax.random.key(0), num_steps=2,
                         batch_size=16, ema_decay=None)
    assert np.all(np.isfinite(result.losses)) and int(ckpt.optimizer.step[...]) == K + 2
