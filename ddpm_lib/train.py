r"""Training a denoiser with Optax, in two forms.

* :func:`train_step` is the readable one: one minibatch, one gradient, one update, exactly
  as Algorithm 1 of Ho et al. (2020) writes it. It is what the text shows.
* :func:`train` runs many of those steps inside *one* compiled call, with ``jax.lax.scan``,
  and keeps an exponential moving average (EMA) of the weights and the loss of every step.
  It follows the functional pattern of the Flax NNX performance guide: the model and the
  optimizer are split once into a static ``GraphDef`` and a pytree of arrays, a pure
  function of those arrays is compiled with ``jax.jit``, and the result is written back
  with ``nnx.update``.

Both draw the minibatch of step ``n`` from ``jax.random.fold_in(key, n)``, so the two give
the same sequence of batches and a run does not depend on how it is cut into calls.

Given a ``jax.sharding.Mesh`` with a ``"data"`` axis, :func:`train` trains data-parallel: the
minibatch is split across the devices of that axis, while the weights, the optimizer state
and the EMA are replicated on every device. Nothing else changes. The compiled step only says
where each array lives (``NamedSharding`` with ``PartitionSpec("data")`` for the batch and
``PartitionSpec()`` for the rest); XLA's SPMD partitioner then runs every device on its share
of the batch and inserts the all-reduce that sums the gradients. The batches are the same as
on one device (the random numbers do not depend on the sharding), so the run is the same up
to the order of the float32 additions.

The loss (:func:`diffusion_loss`) is the paper's :math:`L_\text{simple}` (eq. 14) for the
noise prediction, or the unweighted squared error to the posterior mean :math:`\tilde\mu_t`
for a network that predicts the mean (the ":math:`\tilde\mu` prediction" rows of the paper's
Table 2); both are averaged over the batch and the coordinates.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import sys
import time
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from ddpm_lib._validate import (
    check_callable,
    check_finite,
    check_int,
    check_key,
    check_positive_int,
    check_prediction,
    check_real,
    check_same_shape,
    check_schedule,
)
from ddpm_lib.forward import q_sample
from ddpm_lib.posterior import posterior_mean
from ddpm_lib.schedules import Schedule

__all__ = [
    "make_optimizer",
    "draw_batch",
    "diffusion_loss",
    "train_step",
    "train",
    "TrainResult",
    "data_mesh",
    "DATA_AXIS",
]

DATA_AXIS = "data"
"""The name of the mesh axis that :func:`train` splits the batch over."""

Prediction = Literal["eps", "mean"]


def _check_data(data, model) -> jax.Array:
    check_finite("data", data)  # a NaN would train into NaN losses; a traced data set is not scanned
    data = jnp.asarray(data, dtype=jnp.float32)
    if data.ndim < 2 or data.shape[0] < 1:
        raise ValueError(f"data must be an array of examples, shape (N, *data_shape) with N >= 1; got {data.shape}")
    shape = getattr(model, "data_shape", None)
    if shape is not None and tuple(data.shape[1:]) != tuple(shape):
        raise ValueError(f"data examples must have the model's data shape {tuple(shape)}; "
                         f"got examples of shape {tuple(data.shape[1:])}")
    return data


def _check_run(model, optimizer, schedule, key) -> None:
    """The model, an optimizer built for it, the schedule and the key of a training run."""
    if not isinstance(model, nnx.Module):
        raise ValueError(f"model must be an nnx.Module; got {type(model).__name__}")
    if not isinstance(optimizer, nnx.Optimizer):
        raise ValueError(f"optimizer must be nnx.Optimizer(model, tx, wrt=nnx.Param); got {type(optimizer).__name__}")
    expected = jax.eval_shape(optimizer.tx.init, nnx.state(model, optimizer.wrt))
    shapes = lambda tree: [tuple(leaf.shape) for leaf in jax.tree.leaves(tree)]  # noqa: E731
    if shapes(expected) != shapes(optimizer.opt_state):
        raise ValueError("optimizer must be built for this model (nnx.Optimizer(model, tx, wrt=nnx.Param)); "
                         "its state does not match the model's parameters")
    check_schedule(schedule)
    check_key(key)


def make_optimizer(learning_rate: float = 1e-3, *, warmup_steps: int = 100, total_steps: int | None = None,
                   clip_norm: float = 1.0) -> optax.GradientTransformation:
    r"""Adam with gradient clipping, a linear warm-up and (given ``total_steps``) a cosine decay.

    ``optax.chain(optax.clip_by_global_norm(clip_norm), optax.adam(schedule))``. The paper
    uses Adam at :math:`2\times10^{-4}` with batch 128 on CIFAR10; the book's small models
    on small data train well at :math:`10^{-3}`.

    With ``total_steps = 1`` there is no room for a warm-up or a decay: the one step uses
    ``learning_rate``. With ``warmup_steps = 0`` the first step already uses
    ``learning_rate`` (a warm-up of length 1 would start at 0 and waste it).

    Raises:
      ValueError: if ``learning_rate`` or ``clip_norm`` is not a finite number > 0,
        ``warmup_steps`` is not an integer >= 0, or ``total_steps`` is not ``None`` or an
        integer >= 1.
    """
    check_real("learning_rate", learning_rate, 0.0, lo_open=True)
    check_real("clip_norm", clip_norm, 0.0, lo_open=True)
    check_int("warmup_steps", warmup_steps, lo=0)
    if total_steps is None:
        lr = (optax.linear_schedule(0.0, learning_rate, int(warmup_steps)) if warmup_steps
              else optax.constant_schedule(learning_rate))
    elif check_positive_int("total_steps", total_steps) == 1:
        lr = optax.constant_schedule(learning_rate)
    elif not warmup_steps:
        lr = optax.cosine_decay_schedule(learning_rate, int(total_steps), alpha=0.1)
    else:
        total_steps = int(total_steps)
        lr = optax.warmup_cosine_decay_schedule(0.0, learning_rate, min(int(warmup_steps), total_steps - 1) or 1,
                                                total_steps, end_value=0.1 * learning_rate)
    return optax.chain(optax.clip_by_global_norm(clip_norm), optax.adam(lr))


def draw_batch(key: jax.Array, data: jax.Array, T: int, batch_size: int):
    r"""Draw one minibatch for Algorithm 1: examples :math:`x_0`, steps :math:`t \sim U\{1..T\}`, noise :math:`\epsilon`.

    Args:
      key: a ``jax.random.key``.
      data: the training set, shape ``(N, *data_shape)``; examples are drawn with replacement.
      T: the number of diffusion steps.
      batch_size: the number of examples.

    Returns:
      ``(x0, t, eps)`` of shapes ``(B, *data_shape)``, ``(B,)`` (int32) and ``(B, *data_shape)``.

    Raises:
      ValueError: if ``key`` is not one random key, ``data`` is not an array of at least one
        example, or ``T`` or ``batch_size`` is not an integer >= 1.
    """
    check_key(key)
    if not hasattr(data, "shape") or len(data.shape) < 1 or data.shape[0] < 1:
        raise ValueError(f"data must be an array of examples, shape (N, *data_shape) with N >= 1; "
                         f"got {getattr(data, 'shape', type(data).__name__)}")
    T = check_positive_int("T", T)
    batch_size = check_positive_int("batch_size", batch_size)
    k_idx, k_t, k_eps = jax.random.split(key, 3)
    idx = jax.random.randint(k_idx, (batch_size,), 0, data.shape[0])
    t = jax.random.randint(k_t, (batch_size,), 1, T + 1)
    eps = jax.random.normal(k_eps, (batch_size, *data.shape[1:]), data.dtype)
    return data[idx], t, eps


def diffusion_loss(model, schedule: Schedule, x0: jax.Array, t: jax.Array, eps: jax.Array,
                   prediction: Prediction = "eps") -> jax.Array:
    r"""The training loss on one minibatch, averaged over examples and coordinates.

    .. math::
       x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\epsilon, \qquad
       L = \begin{cases}
         \operatorname{mean}\,\lVert \epsilon - f_\theta(x_t, t)\rVert^2 & \text{eps: } L_\text{simple}\text{ (eq. 14)}\\
         \operatorname{mean}\,\lVert \tilde\mu_t(x_t, x_0) - f_\theta(x_t, t)\rVert^2 & \text{mean: unweighted eq. (11)}
       \end{cases}

    Args:
      model: the network ``f_theta(x_t, t)``; any callable on a batch.
      schedule: the variance schedule.
      x0: clean examples, ``(B, *data_shape)``.
      t: their timesteps, ``(B,)`` integers in ``1..T``.
      eps: their noise, shaped like ``x0``.
      prediction: ``"eps"`` or ``"mean"``, what the network's output stands for.

    Returns:
      A scalar.

    Raises:
      ValueError: if ``model`` is not callable, ``schedule`` is not a ``Schedule``, ``x0``
        is not a batch of at least one example, ``eps`` is not shaped like ``x0``, ``t`` is
        not an integer array of shape ``(B,)`` with values in ``1..T`` (a traced ``t`` only
        in checked mode), or ``prediction`` is unknown.
    """
    check_callable("model", model, "model(x_t, t)")
    check_schedule(schedule)
    check_prediction(prediction)
    check_same_shape(x0=x0, eps=eps)
    if jnp.ndim(x0) < 1 or jnp.shape(x0)[0] < 1:
        raise ValueError(f"x0 must be a batch of shape (B, *data_shape) with B >= 1 (the mean of an empty "
                         f"batch is undefined); got shape {jnp.shape(x0)}")
    if jnp.shape(t) != jnp.shape(x0)[:1]:
        raise ValueError(f"t must be an array of shape (B,) = {jnp.shape(x0)[:1]}, one step per example; "
                         f"got shape {jnp.shape(t)}")
    schedule.check_t(t, scalar=False)
    xt = jax.vmap(q_sample, in_axes=(None, 0, 0, 0))(schedule, x0, t, eps)
    if prediction == "eps":
        target = eps
    else:
        target = jax.vmap(posterior_mean, in_axes=(None, 0, 0, 0))(schedule, x0, xt, t)
    return jnp.mean((model(xt, t) - target) ** 2)


@functools.partial(nnx.jit, static_argnames=("batch_size", "prediction"))
def train_step(model: nnx.Module, optimizer: nnx.Optimizer, schedule: Schedule, data: jax.Array, key: jax.Array,
               *, batch_size: int = 128, prediction: Prediction = "eps") -> jax.Array:
    r"""One step of Algorithm 1 (Ho et al. 2020), compiled with ``nnx.jit``; updates ``model`` in place.

    Draw :math:`x_0` from the data, :math:`t \sim U\{1..T\}` and :math:`\epsilon \sim \mathcal N(0, I)`,
    take a gradient step on :func:`diffusion_loss`. The batch comes from
    ``jax.random.fold_in(key, n)`` at the optimizer's step ``n``, as in :func:`train`.

    Args:
      model: the denoiser; its parameters are updated in place.
      optimizer: ``nnx.Optimizer(model, tx, wrt=nnx.Param)``.
      schedule: the variance schedule.
      data: the training set, ``(N, *data_shape)``.
      key: the run's ``jax.random.key`` (the same for every step).
      batch_size: examples per step.
      prediction: ``"eps"`` (noise) or ``"mean"`` (posterior mean).

    Returns:
      The minibatch loss before the update (a scalar).

    Raises:
      ValueError: for a bad ``model``, ``optimizer`` (one built for another model),
        ``schedule``, ``key``, ``prediction``, ``batch_size`` or ``data``. These are checked
        when the step is traced, that is, on the first call with new shapes or options; the
        values of ``data`` are then tracers and are not scanned for NaN (:func:`train` does).
    """
    check_prediction(prediction)
    check_positive_int("batch_size", batch_size)
    _check_run(model, optimizer, schedule, key)
    data = _check_data(data, model)
    x0, t, eps = draw_batch(jax.random.fold_in(key, optimizer.step[...]), data, schedule.T, batch_size)
    loss, grads = nnx.value_and_grad(diffusion_loss)(model, schedule, x0, t, eps, prediction)
    optimizer.update(model, grads)
    return loss


@dataclasses.dataclass(frozen=True)
class TrainResult:
    """What :func:`train` returns.

    Attributes:
      losses: the minibatch loss of every step, a NumPy array of length ``num_steps``.
      ema_model: a copy of the model holding the EMA of its weights (``None`` without EMA).
      seconds: wall-clock time of the run, compilation included.
    """

    losses: np.ndarray
    ema_model: nnx.Module | None
    seconds: float


@functools.partial(jax.jit, static_argnames=("graphdef", "num_steps", "batch_size", "prediction", "use_ema",
                                             "mesh"))
def _train_chunk(graphdef, state, ema_params, schedule, data, key, start, ema_decay, *,
                 num_steps, batch_size, prediction, use_ema, mesh=None):
    """``num_steps`` training steps as one ``lax.scan``: a pure function of arrays.

    With a ``mesh``, the minibatch is constrained to be split over its ``"data"`` axis and the
    carried state to be replicated; the partitioner derives everything in between.
    """

    def body(carry, step):
        state, ema_params = carry
        model, optimizer = nnx.merge(graphdef, state)
        batch = draw_batch(jax.random.fold_in(key, step), data, schedule.T, batch_size)
        if mesh is not None:
            batch = jax.lax.with_sharding_constraint(batch, _sharding(mesh, DATA_AXIS))
        x0, t, eps = batch
        loss, grads = nnx.value_and_grad(diffusion_loss)(model, schedule, x0, t, eps, prediction)
        optimizer.update(model, grads)
        if use_ema:
            # EMA with a warm-up, so that a short run is not dominated by the initial weights.
            decay = jnp.minimum(ema_decay, (1.0 + step) / (10.0 + step))
            params = nnx.state(model, nnx.Param)
            ema_params = optax.incremental_update(params, ema_params, 1.0 - decay)
        carry = (nnx.state((model, optimizer)), ema_params)
        if mesh is not None:
            carry = jax.lax.with_sharding_constraint(carry, _sharding(mesh))
        return carry, loss

    steps = start + jnp.arange(num_steps, dtype=jnp.int32)
    (state, ema_params), losses = jax.lax.scan(body, (state, ema_params), steps)
    return state, ema_params, losses


def _sharding(mesh, *spec) -> jax.sharding.NamedSharding:
    """``NamedSharding(mesh, PartitionSpec(*spec))``: ``()`` replicates, ``("data",)`` splits axis 0."""
    return jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(*spec))


def data_mesh(devices=None) -> jax.sharding.Mesh:
    """A one-axis mesh named ``"data"`` over ``devices`` (default: every device JAX sees).

    ``train(..., mesh=data_mesh())`` then splits each minibatch over all the devices. After
    ``jax.distributed.initialize()`` the default spans the devices of every process.

    Args:
      devices: a sequence of ``jax.Device``, or ``None`` for ``jax.devices()``.

    Returns:
      A ``jax.sharding.Mesh`` of shape ``{"data": len(devices)}``.

    Raises:
      ValueError: if ``devices`` is empty.
    """
    devices = jax.devices() if devices is None else list(devices)
    if not devices:
        raise ValueError("devices must name at least one device; got an empty list")
    return jax.sharding.Mesh(np.array(devices), (DATA_AXIS,))


def _check_mesh(mesh, batch_size: int) -> None:
    if not isinstance(mesh, jax.sharding.Mesh):
        raise ValueError(f"mesh must be a jax.sharding.Mesh or None; got {type(mesh).__name__}")
    if DATA_AXIS not in mesh.axis_names:
        raise ValueError(f"mesh must have an axis named {DATA_AXIS!r} to split the batch over; "
                         f"got axes {mesh.axis_names}")
    n = mesh.shape[DATA_AXIS]
    if batch_size % n:
        raise ValueError(f"batch_size must be divisible by the {n} devices of the mesh's {DATA_AXIS!r} "
                         f"axis; got batch_size={batch_size} (try {max(n, batch_size - batch_size % n)})")


def _show_progress(progress) -> bool:
    if progress is None:
        return bool(getattr(sys.stderr, "isatty", lambda: False)())
    return bool(progress)


def _progress_line(done: int, total: int, loss: float, started: float) -> str:
    width = 30
    filled = int(width * done / total)
    rate = done / max(time.perf_counter() - started, 1e-9)
    return f"\rtrain [{'#' * filled}{'.' * (width - filled)}] {done}/{total} loss {loss:.4f} {rate:.0f} steps/s"


def train(model: nnx.Module, optimizer: nnx.Optimizer, schedule: Schedule, data: jax.Array, key: jax.Array, *,
          num_steps: int, batch_size: int = 128, prediction: Prediction = "eps", ema_decay: float | None = 0.999,
          ema_model: nnx.Module | None = None, steps_per_call: int | None = None,
          progress: bool | None = None, mesh: jax.sharding.Mesh | None = None) -> TrainResult:
    r"""Run ``num_steps`` steps of Algorithm 1, fused into compiled ``lax.scan`` calls.

    The model and the optimizer are updated in place, as :func:`train_step` would after the
    same number of calls (same batches, same updates). The EMA of the weights follows

    .. math:: \bar\theta_n = d_n\,\bar\theta_{n-1} + (1 - d_n)\,\theta_n, \qquad
              d_n = \min\big(d, \tfrac{1 + n}{10 + n}\big),

    a warmed-up decay, so that short runs are not dominated by the initial weights.

    Args:
      model: the denoiser; its parameters are updated in place.
      optimizer: ``nnx.Optimizer(model, tx, wrt=nnx.Param)``; its step counter goes on
        from where it is, so calling ``train`` twice continues the run.
      schedule: the variance schedule.
      data: the training set, ``(N, *data_shape)``.
      key: the run's ``jax.random.key``; step ``n`` uses ``fold_in(key, n)``.
      num_steps: the number of optimizer steps.
      batch_size: examples per step.
      prediction: ``"eps"`` (noise, :math:`L_\text{simple}`) or ``"mean"`` (posterior mean).
      ema_decay: the EMA decay :math:`d` in [0, 1), or ``None`` for no EMA.
      ema_model: an EMA model returned by an earlier call, to go on averaging into.
      steps_per_call: steps per compiled call (default: all of them in one call, or 20
        calls when a progress bar is shown).
      progress: show a progress bar on stderr. The default (``None``) shows one only when
        stderr is a terminal, so notebooks and tests never print one.
      mesh: ``None`` (one device), or a ``jax.sharding.Mesh`` with an axis named ``"data"``
        (e.g. :func:`data_mesh`) to train data-parallel: each minibatch is split over that
        axis, the weights, optimizer state and EMA are replicated. ``batch_size`` must be
        divisible by the size of the axis. The model and optimizer keep replicated arrays
        afterwards.

    Returns:
      A :class:`TrainResult` with the loss of every step and the EMA model.

    Raises:
      ValueError: for a bad ``num_steps``, ``batch_size``, ``prediction``, ``ema_decay``,
        ``steps_per_call``, ``data`` (NaN or infinite values included) or ``mesh``
        (including a batch size that the mesh's ``"data"`` axis does not divide), a
        ``model`` that is not an ``nnx.Module``, an ``optimizer`` built for another model,
        a ``schedule`` that is not a ``Schedule`` or a ``key`` that is not one random key.
    """
    check_prediction(prediction)
    num_steps = check_positive_int("num_steps", num_steps)
    batch_size = check_positive_int("batch_size", batch_size)
    _check_run(model, optimizer, schedule, key)
    data = _check_data(data, model)
    if ema_decay is not None:
        check_real("ema_decay", ema_decay, 0.0, 1.0, hi_open=True)
    show = _show_progress(progress)
    if steps_per_call is None:
        steps_per_call = math.ceil(num_steps / 20) if show else num_steps
    steps_per_call = min(check_positive_int("steps_per_call", steps_per_call), num_steps)
    if mesh is not None:
        _check_mesh(mesh, batch_size)

    started = time.perf_counter()
    use_ema = ema_decay is not None
    graphdef, state = nnx.split((model, optimizer))
    if use_ema:
        source = model if ema_model is None else ema_model
        ema_params = jax.tree.map(jnp.copy, nnx.state(source, nnx.Param))
    else:
        ema_params = None
    decay = jnp.float32(ema_decay if use_ema else 0.0)
    start = int(optimizer.step[...])
    if mesh is not None:
        # Every input is replicated: the weights and the (small) training set on every device.
        state, ema_params, data = jax.device_put((state, ema_params, data), _sharding(mesh))
    losses = []
    done = 0
    while done < num_steps:
        n = min(steps_per_call, num_steps - done)
        state, ema_params, chunk = _train_chunk(
            graphdef, state, ema_params, schedule, data, key, jnp.int32(start + done), decay,
            num_steps=n, batch_size=batch_size, prediction=prediction, use_ema=use_ema, mesh=mesh)
        losses.append(chunk)
        done += n
        if show:
            sys.stderr.write(_progress_line(done, num_steps, float(chunk[-1]), started))
            sys.stderr.flush()
    if show:
        sys.stderr.write("\n")
    nnx.update((model, optimizer), state)
    losses = np.asarray(jnp.concatenate(losses))

    if use_ema:
        if ema_model is None:
            ema_model = nnx.clone(model)
        nnx.update(ema_model, ema_params)
    return TrainResult(losses=losses, ema_model=ema_model if use_ema else None,
                       seconds=time.perf_counter() - started)
