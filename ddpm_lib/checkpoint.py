r"""Saving and restoring a trained denoiser: weights, EMA weights, optimizer state, step and configuration.

A checkpoint is a directory with two files:

* ``config.json``, readable by a person: the architecture (enough to rebuild the network),
  the noise schedule, the optimizer's settings, the step, whatever else the caller records
  (the data set, the training options, the recommended sampler), and the SHA-256 of
  the arrays file;
* ``state.msgpack``: every array, in Flax's msgpack serialization
  (``flax.serialization.msgpack_serialize``), a format that stores numbers and nested
  dictionaries only. Loading it runs no code, unlike a pickle.

Arrays are gathered to the host before writing, whatever their sharding (a model trained
data-parallel on many devices saves like one on a single device), and load as ordinary
arrays on the default device. In a multi-process run every process gathers and only
process 0 writes.

The architecture lives in a small dictionary, ``{"kind": "mlp", "data_shape": [8, 8], "width": 256, ...}``,
whose keys are the constructor's arguments (:func:`model_from_config`); the schedule
likewise (:func:`schedule_from_config`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
import os
import pathlib
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx, serialization

from ddpm_lib import models, schedules, train
from ddpm_lib._validate import check_choice

__all__ = [
    "CheckpointNotFoundError",
    "Checkpoint",
    "model_from_config",
    "schedule_from_config",
    "save",
    "load",
]

FORMAT = "ddpm_lib.checkpoint"
VERSION = 1
CONFIG_FILE = "config.json"
STATE_FILE = "state.msgpack"

_MODELS = {"mlp": models.MLPDenoiser, "unet": models.UNet}
_SCHEDULES = {"linear": schedules.linear, "cosine": schedules.cosine, "constant": schedules.constant,
              "from_betas": schedules.from_betas}


class CheckpointNotFoundError(FileNotFoundError, ValueError):
    """No checkpoint at the given path (both a ``FileNotFoundError`` and a ``ValueError``)."""


@dataclasses.dataclass
class Checkpoint:
    """What :func:`load` returns.

    Attributes:
      model: the network with the trained (raw) weights.
      ema_model: the network with the EMA weights, or ``None`` if none were saved. Sample
        from this one (``sampling_model`` picks it).
      optimizer: an ``nnx.Optimizer`` over ``model`` with its state and step restored, or
        ``None`` if no optimizer was saved.
      schedule: the noise schedule, rebuilt from the configuration.
      step: the number of optimizer steps taken.
      config: the whole ``config.json`` as a dictionary.
    """

    model: nnx.Module
    ema_model: nnx.Module | None
    optimizer: nnx.Optimizer | None
    schedule: schedules.Schedule
    step: int
    config: dict

    @property
    def sampling_model(self) -> nnx.Module:
        """The EMA network if there is one, else the raw one."""
        return self.model if self.ema_model is None else self.ema_model


def _spec(name: str, spec, table: dict) -> tuple[Any, dict]:
    if not isinstance(spec, dict) or "kind" not in spec:
        raise ValueError(f"{name} must be a dictionary with a 'kind' key; got {spec!r:.80}")
    check_choice(f"{name}['kind']", spec["kind"], tuple(table))
    fn = table[spec["kind"]]
    kwargs = {k: v for k, v in spec.items() if k != "kind"}
    signature = inspect.signature(fn.__init__ if isinstance(fn, type) else fn)
    allowed = [p for p in signature.parameters if p not in ("self", "rngs")]
    unknown = sorted(set(kwargs) - set(allowed))
    if unknown:
        raise ValueError(f"{name} must use the keys {allowed} for kind {spec['kind']!r}; got unknown keys {unknown}")
    return fn, kwargs


def model_from_config(spec: dict, *, seed: int = 0) -> nnx.Module:
    """Build the network that ``spec`` describes, with fresh weights from ``seed``.

    Args:
      spec: ``{"kind": "mlp", ...}`` with the keyword arguments of
        :class:`~ddpm_lib.models.MLPDenoiser` (``data_shape`` required), or
        ``{"kind": "unet", ...}`` with those of :class:`~ddpm_lib.models.UNet`.
        Lists stand for tuples (JSON has no tuples).
      seed: the seed of the initial weights.

    Raises:
      ValueError: for an unknown kind or key, or a value the constructor refuses.
    """
    fn, kwargs = _spec("spec", spec, _MODELS)
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in kwargs.items()}
    return fn(**kwargs, rngs=nnx.Rngs(seed))


def schedule_from_config(spec: dict) -> schedules.Schedule:
    """Build the schedule that ``spec`` describes: ``{"kind": "cosine", "T": 200}``, ``{"kind": "from_betas", "betas": [...]}``, ...

    The kinds are the constructors of :mod:`ddpm_lib.schedules` (``linear``, ``cosine``,
    ``constant``, ``from_betas``) and the other keys their arguments.

    Raises:
      ValueError: for an unknown kind or key, or a value the constructor refuses.
    """
    fn, kwargs = _spec("spec", spec, _SCHEDULES)
    return fn(**kwargs)


def _host(x) -> np.ndarray:
    """A NumPy copy of ``x``, gathered from every device (and every process) that holds a part of it."""
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
        from jax.experimental import multihost_utils

        x = multihost_utils.process_allgather(x, tiled=True)
    return np.asarray(jax.device_get(x))


def _arrays(module_or_optimizer) -> dict:
    return jax.tree.map(_host, nnx.to_pure_dict(nnx.state(module_or_optimizer)))


def _shapes(tree) -> dict[str, tuple]:
    flat = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {jax.tree_util.keystr(p): tuple(getattr(v, "shape", np.shape(v))) for p, v in flat}


def _compare(where: str, found: dict, expected: dict) -> None:
    """``ValueError`` (beginning with ``where``) naming the first array whose name or shape differs."""
    fs, es = _shapes(found), _shapes(expected)
    for k in sorted(set(fs) | set(es)):
        if fs.get(k) != es.get(k):
            got = "missing" if k not in fs else f"shape {fs[k]}"
            want = "no such array" if k not in es else f"shape {es[k]}"
            raise ValueError(f"{where} (wrong architecture): {k} is {got}, the network has {want}")


def _json_ready(config: dict) -> dict:
    try:
        return json.loads(json.dumps(config))
    except (TypeError, ValueError) as err:
        raise ValueError(f"config must hold only JSON values (dict, list, str, number, bool, None): {err}") from err


def save(directory, model: nnx.Module, *, config: dict, ema_model: nnx.Module | None = None,
         optimizer: nnx.Optimizer | None = None) -> pathlib.Path:
    """Write a checkpoint directory (created if needed; the two files are replaced if present).

    Args:
      directory: the checkpoint directory.
      model: the trained network.
      config: a JSON-serializable dictionary with at least ``"model"`` (a spec for
        :func:`model_from_config` that must describe ``model``) and ``"schedule"`` (a spec
        for :func:`schedule_from_config`). If ``optimizer`` is given, ``"optimizer"`` must
        hold the keyword arguments of :func:`ddpm_lib.train.make_optimizer` that built it,
        so that :func:`load` can rebuild it. Other keys are kept as they are.
      ema_model: the EMA network (same architecture), or ``None``.
      optimizer: the ``nnx.Optimizer``, or ``None`` to save no optimizer state (such a
        checkpoint samples but cannot resume training).

    Returns:
      The directory, as a ``pathlib.Path``.

    Raises:
      ValueError: if ``config`` lacks a key, is not JSON, or does not describe ``model``;
        if ``ema_model`` has another architecture.
    """
    if not isinstance(config, dict):
        raise ValueError(f"config must be a dictionary; got {type(config).__name__}")
    for k in ("model", "schedule") + (("optimizer",) if optimizer is not None else ()):
        if k not in config:
            raise ValueError(f"config must hold a {k!r} entry (see ddpm_lib.checkpoint.save)")
    if not isinstance(model, nnx.Module):
        raise ValueError(f"model must be an nnx.Module; got {type(model).__name__}")
    config = _json_ready(config)
    schedule_from_config(config["schedule"])  # refuse a spec that could not be loaded back
    params = _arrays(model)
    described = nnx.eval_shape(lambda: model_from_config(config["model"]))
    _compare("config['model'] must describe model", params, nnx.to_pure_dict(nnx.state(described)))
    state = {"model": params}
    if ema_model is not None:
        state["ema"] = _arrays(ema_model)
        _compare("ema_model must have the architecture of model", state["ema"], params)
    if optimizer is not None:
        if not isinstance(optimizer, nnx.Optimizer):
            raise ValueError(f"optimizer must be an nnx.Optimizer; got {type(optimizer).__name__}")
        train.make_optimizer(**config["optimizer"])
        state["optimizer"] = _arrays(optimizer)
        config["step"] = int(state["optimizer"]["step"])
    config.setdefault("step", 0)
    blob = serialization.msgpack_serialize(_string_keys(state))
    config.update(format=FORMAT, version=VERSION,
                  arrays={"file": STATE_FILE, "sha256": hashlib.sha256(blob).hexdigest(), "contents": sorted(state)})

    path = pathlib.Path(directory)
    if jax.process_index() != 0:
        return path
    path.mkdir(parents=True, exist_ok=True)
    for name, data in ((STATE_FILE, blob), (CONFIG_FILE, (json.dumps(config, indent=2) + "\n").encode())):
        tmp = path / (name + ".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path / name)  # the config, holding the hash, is replaced last
    return path


def _read(path: pathlib.Path) -> tuple[dict, dict]:
    if not path.is_dir():
        what = "is a file, not a checkpoint directory" if path.exists() else "does not exist"
        raise CheckpointNotFoundError(f"directory must be a checkpoint directory; {str(path)!r} {what}")
    for name in (CONFIG_FILE, STATE_FILE):
        if not (path / name).is_file():
            raise CheckpointNotFoundError(f"directory must hold {name}; {str(path)!r} has none (not a checkpoint?)")
    try:
        config = json.loads((path / CONFIG_FILE).read_text())
    except (ValueError, UnicodeDecodeError) as err:
        raise ValueError(f"directory must hold an intact checkpoint; in {str(path)!r} {CONFIG_FILE} is corrupt: "
                         f"not valid JSON ({err})") from err
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise ValueError(f"directory must hold a ddpm_lib checkpoint; {str(path)!r} is corrupt or not one: "
                         f"its {CONFIG_FILE} has no 'format': {FORMAT!r} entry")
    if config.get("version") != VERSION:
        raise ValueError(f"directory must hold a checkpoint of format version {VERSION} (the one this ddpm_lib "
                         f"reads); {str(path)!r} has version {config.get('version')!r}")
    blob = (path / STATE_FILE).read_bytes()
    if hashlib.sha256(blob).hexdigest() != config.get("arrays", {}).get("sha256"):
        raise ValueError(f"directory must hold an intact checkpoint; in {str(path)!r} {STATE_FILE} is corrupt: "
                         f"its SHA-256 differs from the one recorded in {CONFIG_FILE}")
    try:
        state = serialization.msgpack_restore(blob)
    except Exception as err:  # msgpack raises several types on bad bytes
        raise ValueError(f"directory must hold an intact checkpoint; in {str(path)!r} {STATE_FILE} is corrupt: "
                         f"it cannot be decoded ({err})") from err
    if not isinstance(state, dict) or "model" not in state:
        raise ValueError(f"directory must hold an intact checkpoint; in {str(path)!r} {STATE_FILE} is corrupt: "
                         "it holds no model weights")
    return config, state


def _fill(target, arrays: dict, where: str) -> None:
    """Put ``arrays`` (a pure dictionary) into ``target`` (a module or optimizer), after checking every shape."""
    state = nnx.state(target)
    pure = nnx.to_pure_dict(state)
    arrays = _match_keys(arrays, pure)
    _compare(where, arrays, pure)
    nnx.replace_by_pure_dict(state, jax.tree.map(jnp.asarray, arrays))
    nnx.update(target, state)


def _string_keys(tree):
    """Every dictionary key as a string (the indices of a list of layers are integers).

    Older Flax (0.12.7, the oldest this package allows) decodes msgpack with strict map keys
    and refuses integer keys, so a checkpoint must hold only strings to load under every
    allowed version; :func:`_match_keys` gives the integers back on loading.
    """
    if not isinstance(tree, dict):
        return tree
    return {str(k): _string_keys(v) for k, v in tree.items()}


def _match_keys(found, like):
    """msgpack stores every dictionary key as a string: give back the integer keys ``like`` has."""
    if not isinstance(found, dict) or not isinstance(like, dict):
        return found
    by_text = {str(k): k for k in like}
    return {by_text.get(str(k), k): _match_keys(v, like.get(by_text.get(str(k), k))) for k, v in found.items()}


def load(directory, *, model: nnx.Module | None = None) -> Checkpoint:
    """Read a checkpoint written by :func:`save`.

    Args:
      directory: the checkpoint directory.
      model: optionally, a network to load the weights into (its architecture must match);
        by default the network is rebuilt from ``config["model"]``.

    Returns:
      A :class:`Checkpoint`. The optimizer is rebuilt with
      :func:`ddpm_lib.train.make_optimizer` from ``config["optimizer"]``, so training can
      go on from ``step``.

    Raises:
      CheckpointNotFoundError: if the directory or one of its two files is missing.
      ValueError: if a file is corrupt (bad JSON, a hash that does not match, bytes that do
        not decode) or the arrays do not fit the architecture ("wrong architecture").
    """
    path = pathlib.Path(directory)
    config, state = _read(path)
    if model is None:
        model = model_from_config(config["model"])
        where = f"directory must hold arrays that fit its {CONFIG_FILE}; in {str(path)!r}"
    else:
        if not isinstance(model, nnx.Module):
            raise ValueError(f"model must be an nnx.Module or None; got {type(model).__name__}")
        where = f"model must have the architecture of the checkpoint {str(path)!r}"
    _fill(model, state["model"], where)
    ema_model = None
    if "ema" in state:
        ema_model = nnx.clone(model)
        _fill(ema_model, state["ema"], where)
    optimizer = None
    if "optimizer" in state:
        optimizer = nnx.Optimizer(model, train.make_optimizer(**config["optimizer"]), wrt=nnx.Param)
        _fill(optimizer, state["optimizer"], where + " (optimizer state)")
    return Checkpoint(model=model, ema_model=ema_model, optimizer=optimizer,
                      schedule=schedule_from_config(config["schedule"]), step=int(config.get("step", 0)),
                      config=config)
