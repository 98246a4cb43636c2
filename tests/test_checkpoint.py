"""ddpm_lib.checkpoint: exact round trips, resuming, sharded arrays, and clear errors for bad files."""

import json
import os
import pathlib
import subprocess
import sys

import jax
import numpy as np
import pytest
from flax import nnx

from ddpm_lib import checkpoint, sampling, schedules, train

ROOT = pathlib.Path(__file__).resolve().parents[1]
MLP = {"kind": "mlp", "data_shape": [2], "width": 16, "num_blocks": 2, "time_width": 8}
OPT = {"learning_rate": 1e-2, "warmup_steps": 5, "total_steps": 40}
CONFIG = {"model": MLP, "schedule": {"kind": "cosine", "T": 20}, "optimizer": OPT, "note": ["kept", 1]}


def _leaves(tree):
    return [np.asarray(v) for v in jax.tree.leaves(nnx.to_pure_dict(nnx.state(tree)))]


def _equal(a, b) -> bool:
    la, lb = _leaves(a), _leaves(b)
    return len(la) == len(lb) and all(x.dtype == y.dtype and np.array_equal(x, y) for x, y in zip(la, lb))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A small MLP trained 20 steps with EMA, and its checkpoint directory."""
    data = np.asarray(jax.random.normal(jax.random.key(0), (256, 2)))
    model = checkpoint.model_from_config(MLP, seed=1)
    opt = nnx.Optimizer(model, train.make_optimizer(**OPT), wrt=nnx.Param)
    schedule = checkpoint.schedule_from_config(CONFIG["schedule"])
    run = train.train(model, opt, schedule, data, jax.random.key(2), num_steps=20, batch_size=32)
    path = checkpoint.save(tmp_path_factory.mktemp("ck") / "run", model, config=CONFIG, ema_model=run.ema_model,
                           optimizer=opt)
    return dict(model=model, ema=run.ema_model, opt=opt, schedule=schedule, data=data, path=path)


def test_round_trip_restores_identical_arrays_and_samples(trained):
    ck = checkpoint.load(trained["path"])
    assert ck.step == 20 and ck.config["note"] == ["kept", 1] and ck.config["model"] == MLP
    assert _equal(ck.model, trained["model"]) and _equal(ck.ema_model, trained["ema"])
    assert _equal(ck.optimizer, trained["opt"])  # Adam's moments and the step counter too
    assert not _equal(ck.model, ck.ema_model)  # the two weight sets were not mixed up
    np.testing.assert_array_equal(ck.schedule.alpha_bars, schedules.cosine(20).alpha_bars)
    key = jax.random.key(3)
    np.testing.assert_array_equal(sampling.sample(ck.sampling_model, ck.schedule, key, (16, 2)),
                                  sampling.sample(trained["ema"], trained["schedule"], key, (16, 2)))


def test_resuming_equals_never_stopping(trained):
    # Ten more steps from the checkpoint give bit-identical losses and weights to ten more steps
    # in the original process: the optimizer's moments and step (and so the batches) came back.
    ck = checkpoint.load(trained["path"])
    ema = nnx.clone(trained["ema"])
    a = train.train(trained["model"], trained["opt"], trained["schedule"], trained["data"], jax.random.key(2),
                    num_steps=10, batch_size=32, ema_model=ema)
    b = train.train(ck.model, ck.optimizer, ck.schedule, trained["data"], jax.random.key(2), num_steps=10,
                    batch_size=32, ema_model=ck.ema_model)
    np.testing.assert_array_equal(a.losses, b.losses)
    assert _equal(ck.model, trained["model"]) and _equal(b.ema_model, a.ema_model)


def test_weights_only_and_unet(tmp_path):
    unet = {"kind": "unet", "image_size": 4, "channels": [8, 8], "time_dim": 8}
    model = checkpoint.model_from_config(unet)
    checkpoint.save(tmp_path, model, config={"model": unet, "schedule": {"kind": "linear", "T": 5}})
    ck = checkpoint.load(tmp_path)
    assert ck.optimizer is None and ck.ema_model is None and ck.step == 0 and ck.sampling_model is ck.model
    assert _equal(ck.model, model)
    assert json.loads((tmp_path / "config.json").read_text())["arrays"]["contents"] == ["model"]


def test_missing_path(tmp_path):
    with pytest.raises(checkpoint.CheckpointNotFoundError, match="does not exist"):
        checkpoint.load(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError):  # it is both kinds of error
        checkpoint.load(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="must hold config.json"):
        checkpoint.load(tmp_path)


def test_wrong_architecture(trained, tmp_path):
    wider = checkpoint.model_from_config({**MLP, "width": 32})
    with pytest.raises(ValueError, match=r"wrong architecture.*shape \(16,\).*shape \(32,\)"):
        checkpoint.load(trained["path"], model=wider)
    # A config.json edited to another architecture (hash of the arrays unchanged) is refused too.
    edited = tmp_path / "edited"
    edited.mkdir()
    (edited / "state.msgpack").write_bytes((trained["path"] / "state.msgpack").read_bytes())
    cfg = json.loads((trained["path"] / "config.json").read_text())
    cfg["model"]["num_blocks"] = 3
    (edited / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="wrong architecture.*blocks"):
        checkpoint.load(edited)
    # Saving with a config that does not describe the model is refused at once.
    with pytest.raises(ValueError, match="wrong architecture"):
        checkpoint.save(tmp_path / "x", wider, config=CONFIG)


def _copy(src: pathlib.Path, dst: pathlib.Path) -> pathlib.Path:
    dst.mkdir()
    for name in ("config.json", "state.msgpack"):
        (dst / name).write_bytes((src / name).read_bytes())
    return dst


def test_corrupt_files(trained, tmp_path):
    flipped = _copy(trained["path"], tmp_path / "flipped")
    blob = bytearray((flipped / "state.msgpack").read_bytes())
    blob[len(blob) // 2] ^= 0x01  # one bit of one weight: msgpack would still decode it
    (flipped / "state.msgpack").write_bytes(bytes(blob))
    with pytest.raises(ValueError, match="corrupt.*SHA-256"):
        checkpoint.load(flipped)
    truncated = _copy(trained["path"], tmp_path / "truncated")
    (truncated / "config.json").write_text((truncated / "config.json").read_text()[:50])
    with pytest.raises(ValueError, match="corrupt.*not valid JSON"):
        checkpoint.load(truncated)
    foreign = _copy(trained["path"], tmp_path / "foreign")
    (foreign / "config.json").write_text("{}")
    with pytest.raises(ValueError, match="corrupt or not one"):
        checkpoint.load(foreign)


def test_bad_configs(trained, tmp_path):
    m = trained["model"]
    with pytest.raises(ValueError, match="'schedule'"):
        checkpoint.save(tmp_path, m, config={"model": MLP})
    with pytest.raises(ValueError, match="'optimizer'"):
        checkpoint.save(tmp_path, m, config={"model": MLP, "schedule": {"kind": "cosine", "T": 20}},
                        optimizer=trained["opt"])
    with pytest.raises(ValueError, match="JSON"):
        checkpoint.save(tmp_path, m, config={**CONFIG, "extra": object()}, optimizer=trained["opt"])
    with pytest.raises(ValueError, match="kind"):
        checkpoint.model_from_config({"kind": "transformer"})
    with pytest.raises(ValueError, match="unknown keys"):
        checkpoint.model_from_config({**MLP, "depth": 3})
    with pytest.raises(ValueError, match="T must be"):
        checkpoint.schedule_from_config({"kind": "linear", "T": 0})
    np.testing.assert_array_equal(checkpoint.schedule_from_config({"kind": "from_betas", "betas": [0.1, 0.2]}).betas,
                                  schedules.from_betas([0.1, 0.2]).betas)


SHARDED = """
import sys, jax, numpy as np
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
from ddpm_lib import checkpoint
spec = {"kind": "mlp", "data_shape": [2], "width": 16, "num_blocks": 1}
model = checkpoint.model_from_config(spec)
mesh = Mesh(np.array(jax.devices()), ("d",))
state = nnx.state(model)
def place(x):  # split every array whose first axis divides by 4 across the devices, replicate the rest
    spec = P("d") if x.ndim and x.shape[0] % 4 == 0 else P()
    return jax.device_put(x, NamedSharding(mesh, spec))
nnx.update(model, jax.tree.map(place, state))
assert len(jax.devices()) == 4 and len(model.inp.kernel[...].sharding.device_set) == 4
checkpoint.save(sys.argv[1], model, config={"model": spec, "schedule": {"kind": "linear", "T": 3}})
np.save(sys.argv[1] + "/expected.npy", np.asarray(model.inp.kernel[...]))
"""


def test_sharded_arrays_save_and_restore_on_one_device(tmp_path):
    env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="--xla_force_host_platform_device_count=4",
               PYTHONPATH=str(ROOT))
    subprocess.run([sys.executable, "-c", SHARDED, str(tmp_path)], check=True, env=env, cwd=ROOT)
    ck = checkpoint.load(tmp_path)  # this process has one device
    kernel = ck.model.inp.kernel[...]
    np.testing.assert_array_equal(kernel, np.load(tmp_path / "expected.npy"))
    assert len(kernel.sharding.device_set) == 1
