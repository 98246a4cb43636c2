r"""Flax NNX denoisers: a network :math:`f_\theta(x_t, t)` with the shape of the data.

Whether the output is read as the noise :math:`\epsilon_\theta(x_t, t)` (the paper's choice,
eq. 12) or as the posterior mean :math:`\mu_\theta(x_t, t)` (eq. 11) is decided by the loss it
is trained with (:mod:`ddpm_lib.train`), not by the network: both targets have the shape of
:math:`x_t`.

* :class:`MLPDenoiser` flattens the data, so it serves vectors (2-D toy data) and tiny
  images (the 3x3 single-dot images) alike.
* :class:`UNet` is a small convolutional U-Net for 8x8 one-channel images (the digits).

Both take a batch ``x`` of shape ``(*batch, *data_shape)`` and integer timesteps ``t`` that
broadcast to ``batch`` (a scalar ``t`` is used for every example), and return an array
shaped like ``x``. Neither draws random numbers when called, so both can run inside
``jax.lax.scan``.
"""

from __future__ import annotations

import math
from typing import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from ddpm_lib._validate import check_array, check_int, check_positive_int, check_real, check_shape

__all__ = ["timestep_embedding", "MLPDenoiser", "Conv3x3", "UNet", "count_params"]


def timestep_embedding(t, dim: int, max_period: float = 10_000.0) -> jax.Array:
    r"""Sinusoidal features of the timestep (the Transformer's position encoding).

    .. math::
       e(t) = \big(\sin(t\,\omega_0), \dots, \sin(t\,\omega_{d/2-1}),
                   \cos(t\,\omega_0), \dots, \cos(t\,\omega_{d/2-1})\big),
       \qquad \omega_k = \text{max\_period}^{-k/(d/2)}.

    The fastest frequency turns one radian per step, so neighbouring steps get
    distinguishable features; the slowest varies over thousands of steps.

    Args:
      t: timesteps, any shape (integers or floats).
      dim: the (even) number of features.
      max_period: the longest period, in steps.

    Returns:
      An array of shape ``(*t.shape, dim)``.

    Raises:
      ValueError: if ``dim`` is not a positive even integer.
    """
    dim = _check_even("dim", dim)
    check_real("max_period", max_period, 0.0, lo_open=True)
    check_array("t", t)
    half = dim // 2
    freqs = jnp.exp(-math.log(max_period) * jnp.arange(half, dtype=jnp.float32) / half)
    args = jnp.asarray(t, jnp.float32)[..., None] * freqs
    return jnp.concatenate([jnp.sin(args), jnp.cos(args)], axis=-1)


def _check_even(name: str, value) -> int:
    """Return ``value`` as an ``int``; raise ``ValueError`` unless it is an even integer >= 2."""
    value = check_int(name, value, lo=2)
    if value % 2:
        raise ValueError(f"{name} must be a positive even integer; got {value}")
    return value


def _check_rngs(rngs) -> None:
    if not isinstance(rngs, nnx.Rngs):
        raise ValueError(f"rngs must be an nnx.Rngs, e.g. nnx.Rngs(0); got {type(rngs).__name__}")


def _split_batch(x: jax.Array, data_shape: tuple[int, ...], t) -> tuple[tuple[int, ...], jax.Array]:
    """Check that ``x`` ends in ``data_shape``; return the batch shape and ``t`` broadcast to it."""
    k = len(data_shape)
    if x.ndim < k or tuple(x.shape[x.ndim - k:]) != data_shape:
        raise ValueError(f"x must have shape (*batch, {', '.join(map(str, data_shape))}); got {tuple(x.shape)}")
    batch = tuple(x.shape[: x.ndim - k])
    t = jnp.asarray(t)
    try:
        t = jnp.broadcast_to(t, batch)
    except ValueError as err:
        raise ValueError(f"t must be a scalar or broadcast to the batch shape {batch}; got shape {t.shape}") from err
    return batch, t


class _MLPBlock(nnx.Module):
    """A residual block ``h + W2 silu(W1 silu(h) + V e(t))``."""

    def __init__(self, width: int, time_width: int, *, layer_norm: bool = False, rngs: nnx.Rngs):
        self.norm = nnx.LayerNorm(width, rngs=rngs) if layer_norm else None
        self.lin1 = nnx.Linear(width, width, rngs=rngs)
        self.time = nnx.Linear(time_width, width, rngs=rngs)
        self.lin2 = nnx.Linear(width, width, rngs=rngs)

    def __call__(self, h: jax.Array, temb: jax.Array) -> jax.Array:
        u = self.lin1(jax.nn.silu(h if self.norm is None else self.norm(h))) + self.time(temb)
        return h + self.lin2(jax.nn.silu(u))


class MLPDenoiser(nnx.Module):
    r"""A time-embedded residual MLP for data of any (small) fixed shape.

    .. math::
       h_0 = W_\text{in}\,\mathrm{vec}(x_t), \qquad
       h_{k+1} = h_k + W_2^{(k)}\,\mathrm{silu}\big(W_1^{(k)}\mathrm{silu}(h_k) + V^{(k)} e(t)\big),
       \qquad f_\theta(x_t, t) = W_\text{out}\,\mathrm{silu}(h_K),

    with :math:`e(t)` the sinusoidal embedding (:func:`timestep_embedding`) passed through
    one dense layer to ``time_width`` features. The output layer starts at zero, so an
    untrained network predicts :math:`\epsilon_\theta = 0` and the initial noise loss is 1 per
    coordinate.

    Args:
      data_shape: the shape of one example, e.g. ``(2,)`` or ``(3, 3)``.
      width: the hidden width.
      num_blocks: the number of residual blocks.
      time_dim: the size of the sinusoidal embedding.
      time_width: the size of the time features fed to every block (default ``width``).
      layer_norm: normalize the residual stream at the input of every block (helps wider
        networks on images).
      rngs: ``nnx.Rngs`` for the initial weights.

    Raises:
      ValueError: for a size that is not a positive integer, an odd ``time_dim``, or
        ``rngs`` that is not an ``nnx.Rngs``.
    """

    def __init__(self, data_shape: Sequence[int], *, width: int = 128, num_blocks: int = 3,
                 time_dim: int = 32, time_width: int | None = None, layer_norm: bool = False,
                 rngs: nnx.Rngs):
        self.data_shape = check_shape("data_shape", data_shape, min_size=1)
        width = check_positive_int("width", width)
        num_blocks = check_positive_int("num_blocks", num_blocks)
        time_dim = _check_even("time_dim", time_dim)
        _check_rngs(rngs)
        self.time_dim = time_dim
        time_width = width if time_width is None else check_positive_int("time_width", time_width)
        size = math.prod(self.data_shape)
        self.inp = nnx.Linear(size, width, rngs=rngs)
        self.time = nnx.Linear(time_dim, time_width, rngs=rngs)
        self.blocks = nnx.List([_MLPBlock(width, time_width, layer_norm=layer_norm, rngs=rngs)
                                for _ in range(num_blocks)])
        self.out = nnx.Linear(width, size, kernel_init=nnx.initializers.zeros, rngs=rngs)

    def __call__(self, x: jax.Array, t) -> jax.Array:
        """Apply the network: ``x`` of shape ``(*batch, *data_shape)``, ``t`` broadcastable to ``batch``.

        The time features are computed on ``t``'s own shape and broadcast where they are
        added: with a scalar ``t`` (every step of a sampler) the embedding and each block's
        time projection are computed once for the whole batch, not once per example.
        """
        batch, _ = _split_batch(x, self.data_shape, t)
        temb = jax.nn.silu(self.time(timestep_embedding(t, self.time_dim)))
        h = self.inp(x.reshape(*batch, -1))
        for block in self.blocks:
            h = block(h, temb)
        return self.out(jax.nn.silu(h)).reshape(x.shape)


class Conv3x3(nnx.Module):
    r"""A 3x3 convolution with "same" padding, written as one matrix product (im2col).

    The nine shifted copies of the zero-padded input are stacked along the channels and
    multiplied by the kernel reshaped to ``(9 * c_in, c_out)``. The result equals
    ``nnx.Conv(c_in, c_out, (3, 3))``, but its gradient is a plain matrix product: on XLA:CPU
    a convolution's gradient inside a loop body (the fused training loop is one) runs an
    order of magnitude slower than outside it (jax-ml/jax#12868), while a matrix product
    does not. For 8x8 images the extra memory is negligible.

    Args:
      c_in: input channels.
      c_out: output channels.
      stride: 1, or 2 to halve the resolution (every other output row and column).
      zero_init: start from a zero kernel.
      rngs: ``nnx.Rngs`` for the initial weights.
    """

    def __init__(self, c_in: int, c_out: int, *, stride: int = 1, zero_init: bool = False, rngs: nnx.Rngs):
        c_in, c_out = check_positive_int("c_in", c_in), check_positive_int("c_out", c_out)
        stride = check_int("stride", stride, lo=1, hi=2)
        _check_rngs(rngs)
        init = nnx.initializers.zeros if zero_init else nnx.initializers.lecun_normal()
        self.kernel = nnx.Param(init(rngs.params(), (3, 3, c_in, c_out), jnp.float32))
        self.bias = nnx.Param(jnp.zeros((c_out,), jnp.float32))
        self.stride = stride

    def __call__(self, x: jax.Array) -> jax.Array:
        """``x``: ``(batch, height, width, c_in)`` -> ``(batch, height / stride, width / stride, c_out)``."""
        h, w = x.shape[-3], x.shape[-2]
        xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
        patches = jnp.concatenate([xp[:, i:i + h, j:j + w, :] for i in range(3) for j in range(3)], axis=-1)
        if self.stride == 2:
            patches = patches[:, ::2, ::2, :]
        kernel = self.kernel[...]
        return patches @ kernel.reshape(-1, kernel.shape[-1]) + self.bias[...]


def _num_groups(c: int) -> int:
    """GroupNorm groups for ``c`` channels: the largest divisor of ``c`` up to 8 that leaves >= 2 channels a group.

    A group of one channel normalises that channel on its own, which removes any constant added
    to it (such as a per-channel time shift). Widths need not be multiples of 8: 12 channels get
    6 groups of 2, 7 channels one group of 7, and a single channel one group.
    """
    return max([g for g in range(1, min(8, c // 2) + 1) if c % g == 0], default=1)


class _ConvBlock(nnx.Module):
    r"""A residual block: two 3x3 convolutions, GroupNorm, and a time-dependent scale and shift.

    .. math::
       u = \mathrm{conv}_1\big(\mathrm{silu}(\mathrm{GN}_1(h))\big), \qquad
       (\gamma, \beta) = V e(t), \qquad
       \text{out} = h' + \mathrm{conv}_2\big(\mathrm{silu}(\mathrm{GN}_2(u)\,(1 + \gamma) + \beta)\big),

    with :math:`h'` the input (through a 1x1 convolution when the width changes). The time
    signal enters *after* the normalisation (the adaptive group normalisation of Dhariwal and
    Nichol, 2021): a shift added *before* a GroupNorm whose groups hold one channel each would be
    subtracted again by that normalisation, and the block would not depend on ``t`` at all.
    """

    def __init__(self, c_in: int, c_out: int, time_width: int, *, rngs: nnx.Rngs):
        self.norm1 = nnx.GroupNorm(c_in, num_groups=_num_groups(c_in), rngs=rngs)
        self.conv1 = Conv3x3(c_in, c_out, rngs=rngs)
        self.time = nnx.Linear(time_width, 2 * c_out, rngs=rngs)  # per-channel (scale, shift)
        self.norm2 = nnx.GroupNorm(c_out, num_groups=_num_groups(c_out), rngs=rngs)
        self.conv2 = Conv3x3(c_out, c_out, rngs=rngs)
        self.skip = nnx.Linear(c_in, c_out, rngs=rngs) if c_in != c_out else None  # a 1x1 convolution

    def __call__(self, h: jax.Array, temb: jax.Array) -> jax.Array:
        u = self.conv1(jax.nn.silu(self.norm1(h)))
        scale, shift = jnp.split(self.time(temb)[:, None, None, :], 2, axis=-1)
        u = self.norm2(u) * (1.0 + scale) + shift
        u = self.conv2(jax.nn.silu(u))
        return u + (h if self.skip is None else self.skip(h))


class UNet(nnx.Module):
    r"""A small U-Net for square one-channel images (two resolutions, e.g. 8x8 and 4x4).

    ::

        x (8x8x1) -> conv -> block(c0) ----------------------------- concat -> block(c0) -> conv -> out
                                  \-> down (4x4) -> block(c1) -> mid -> concat -> block(c1) -> up -/

    Every block scales and shifts its normalised features, channel by channel, by amounts
    computed from the time embedding, so the output depends on ``t`` at any width. The output
    convolution starts at zero (:math:`f_\theta = 0` before training).

    Args:
      image_size: the side of the (square, even-sized) images.
      channels: the widths ``(c0, c1)`` at full and at half resolution, any positive
        integers (GroupNorm uses the largest divisor of the width up to 8 that leaves at
        least two channels in each group).
      time_dim: the size of the sinusoidal embedding.
      rngs: ``nnx.Rngs`` for the initial weights.

    Raises:
      ValueError: for an odd ``image_size`` or a non-positive width.
    """

    def __init__(self, image_size: int = 8, *, channels: tuple[int, int] = (32, 64), time_dim: int = 64,
                 rngs: nnx.Rngs):
        check_positive_int("image_size", image_size)
        if image_size % 2:
            raise ValueError(f"image_size must be even (the U-Net halves it once); got {image_size}")
        if len(channels) != 2:
            raise ValueError(f"channels must be a pair (c0, c1); got {channels!r}")
        c0, c1 = (check_positive_int("channels", c) for c in channels)
        time_dim = _check_even("time_dim", time_dim)
        _check_rngs(rngs)
        self.data_shape = (image_size, image_size)
        self.time_dim = time_dim
        tw = 2 * c0
        self.time1 = nnx.Linear(time_dim, tw, rngs=rngs)
        self.time2 = nnx.Linear(tw, tw, rngs=rngs)
        self.conv_in = Conv3x3(1, c0, rngs=rngs)
        self.down0 = _ConvBlock(c0, c0, tw, rngs=rngs)
        self.downsample = Conv3x3(c0, c1, stride=2, rngs=rngs)
        self.down1 = _ConvBlock(c1, c1, tw, rngs=rngs)
        self.mid = _ConvBlock(c1, c1, tw, rngs=rngs)
        self.up1 = _ConvBlock(2 * c1, c1, tw, rngs=rngs)
        self.upsample = Conv3x3(c1, c0, rngs=rngs)
        self.up0 = _ConvBlock(2 * c0, c0, tw, rngs=rngs)
        self.norm_out = nnx.GroupNorm(c0, num_groups=_num_groups(c0), rngs=rngs)
        self.conv_out = Conv3x3(c0, 1, zero_init=True, rngs=rngs)

    def __call__(self, x: jax.Array, t) -> jax.Array:
        """Apply the network: ``x`` of shape ``(*batch, size, size)``, ``t`` broadcastable to ``batch``."""
        batch, t = _split_batch(x, self.data_shape, t)
        # Convolutions and GroupNorm want exactly one batch axis: flatten, then restore.
        xb = x.reshape(-1, *self.data_shape, 1)
        temb = self.time2(jax.nn.silu(self.time1(timestep_embedding(t.reshape(-1), self.time_dim))))
        h0 = self.down0(self.conv_in(xb), temb)
        h1 = self.down1(self.downsample(h0), temb)
        h = self.mid(h1, temb)
        h = self.up1(jnp.concatenate([h, h1], axis=-1), temb)
        h = jnp.repeat(jnp.repeat(h, 2, axis=-3), 2, axis=-2)  # nearest-neighbour upsampling
        h = self.up0(jnp.concatenate([self.upsample(h), h0], axis=-1), temb)
        return self.conv_out(jax.nn.silu(self.norm_out(h))).reshape(x.shape)


def count_params(model: nnx.Module) -> int:
    """The number of trainable scalars (``nnx.Param`` entries) of ``model``.

    Raises:
      ValueError: if ``model`` is not an ``nnx.Module``.
    """
    if not isinstance(model, nnx.Module):
        raise ValueError(f"model must be an nnx.Module; got {type(model).__name__}")
    return sum(int(p.size) for p in jax.tree.leaves(nnx.state(model, nnx.Param)))
