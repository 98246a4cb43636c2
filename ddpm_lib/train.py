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

from ddpm_lib._validate import check_positive_int, check_prediction
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
]

Prediction = Literal["eps", "mean"]


def _check_data(data, model) -> jax.Array:
    data = jnp.asarray(data, dtype=jnp.float32)
    if data.ndim < 2 or data.shape[0] < 1:
        raise ValueError(f"data must be an array of examples, shape (N, *data_shape) with N >= 1; got {data.shape}")
    shape = getattr(model, "data_shape", None)
    if shape is not None and tuple(data.shape[1:]) != tuple(shape):
        raise ValueError(f"data examples have shape {tuple(data.shape[1:])} but the model expects {tuple(shape)}")
    return data


def make_optimizer(learning_rate: float = 1e-3, *, warmup_steps: int = 100, total_steps: int | None = None,
                   clip_norm: float = 1.0) -> optax.GradientTransformation:
    r"""Adam with gradient clipping, a linear warm-up and (given ``total_steps``) a cosine decay.

    ``optax.chain(optax.clip_by_global_norm(clip_norm), optax.adam(schedule))``. The paper
    uses Adam at :math:`2\times10^{-4}` with batch 128 on CIFAR10; the book's small models
    on small data train well at :math:`10^{-3}`.

    Raises:
      ValueError: for a non-positive learning rate or clip norm, or negative warm-up.
    """
    if not (np.isfinite(learning_rate) and learning_rate > 0):
        raise ValueError(f"learning_rate must be a finite number > 0; got {learning_rate!r}")
    if not (np.isfinite(clip_norm) and clip_norm > 0):
        raise ValueError(f"clip_norm must be a finite number > 0; got {clip_norm!r}")
    if isinstance(warmup_steps, bool) or not isinstance(warmup_steps, (int, np.integer)) or warmup_steps < 0:
        raise ValueError(f"warmup_steps must be an integer >= 0; got {warmup_steps!r}")
    if total_steps is None:
        lr = optax.linear_schedule(0.0, learning_rate, max(int(warmup_steps), 1))
    else:
        total_steps = check_positive_int("total_steps", total_steps)
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
    """
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
    """
    check_prediction(prediction)
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
      ValueError: for a bad ``prediction``, ``batch_size`` or ``data`` (checked when the
        step is traced, that is, on the first call with new shapes or options).
    """
    check_prediction(prediction)
    check_positive_int("batch_size", batch_size)
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


@functools.partial(jax.jit, static_argnames=("graphdef", "num_steps", "batch_size", "prediction", "use_ema"))
def _train_chunk(graphdef, state, ema_params, schedule, data, key, start, ema_decay, *,
                 num_steps, batch_size, prediction, use_ema):
    """``num_steps`` training steps as one ``lax.scan``: a pure function of arrays."""

    def body(carry, step):
        state, ema_params = carry
        model, optimizer = nnx.merge(graphdef, state)
        x0, t, eps = draw_batch(jax.random.fold_in(key, step), data, schedule.T, batch_size)
        loss, grads = nnx.value_and_grad(diffusion_loss)(model, schedule, x0, t, eps, prediction)
        optimizer.update(model, grads)
        if use_ema:
            # EMA with a warm-up, so that a short run is not dominated by the initial weights.
            decay = jnp.minimum(ema_decay, (1.0 + step) / (10.0 + step))
            params = nnx.state(model, nnx.Param)
            ema_params = optax.incremental_update(params, ema_params, 1.0 - decay)
        return (nnx.state((model, optimizer)), ema_params), loss

    steps = start + jnp.arange(num_steps, dtype=jnp.int32)
    (state, ema_params), losses = jax.lax.scan(body, (state, ema_params), steps)
    return state, ema_params, losses


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
          progress: bool | None = None) -> TrainResult:
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

    Returns:
      A :class:`TrainResult` with the loss of every step and the EMA model.

    Raises:
      ValueError: for a bad ``num_steps``, ``batch_size``, ``prediction``, ``ema_decay``,
        ``steps_per_call`` or ``data``.
    """
    check_prediction(prediction)
    num_steps = check_positive_int("num_steps", num_steps)
    batch_size = check_positive_int("batch_size", batch_size)
    data = _check_data(data, model)
    if ema_decay is not None and not (0.0 <= float(ema_decay) < 1.0):
        raise ValueError(f"ema_decay must lie in [0, 1) or be None; got {ema_decay!r}")
    show = _show_progress(progress)
    if steps_per_call is None:
        steps_per_call = math.ceil(num_steps / 20) if show else num_steps
    steps_per_call = min(check_positive_int("steps_per_call", steps_per_call), num_steps)

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
    losses = []
    done = 0
    while done < num_steps:
        n = min(steps_per_call, num_steps - done)
        state, ema_params, chunk = _train_chunk(
            graphdef, state, ema_params, schedule, data, key, jnp.int32(start + done), decay,
            num_steps=n, batch_size=batch_size, prediction=prediction, use_ema=use_ema)
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
