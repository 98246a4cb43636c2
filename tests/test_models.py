"""The denoisers of ddpm_lib.models: shapes, the time embedding, the im2col convolution, bad inputs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from ddpm_lib import models


@nnx.jit
def apply(model, x, t):
    """Call a model under one compiled function (eager U-Net calls compile op by op: slow)."""
    return model(x, t)


@pytest.fixture(scope="module")
def unet():
    """One small U-Net for all tests: building one compiles every initializer (seconds on a CPU)."""
    return models.UNet(8, channels=(8, 8), time_dim=8, rngs=nnx.Rngs(1))


def _randomize_output(model):
    """Give every weight (the zero-initialized output layer too) random values, so outputs are non-trivial."""
    state = nnx.state(model, nnx.Param)
    leaves, treedef = jax.tree.flatten(state)
    rng = np.random.default_rng(7)  # NumPy: no JAX compilation for every new shape
    new = [jnp.asarray(0.3 * rng.normal(size=x.shape), jnp.float32) for x in leaves]
    nnx.update(model, jax.tree.unflatten(treedef, new))
    return model


@pytest.mark.parametrize("shape", [(2,), (3, 3), (8, 8)])
def test_mlp_shapes_batched_and_single(shape):
    m = models.MLPDenoiser(shape, width=16, num_blocks=2, time_dim=8, rngs=nnx.Rngs(0))
    x = jnp.ones((5, *shape))

    def out_shape(x, t):  # traces the model without compiling it
        return jax.eval_shape(lambda x: m(x, t), x).shape

    assert apply(m, x, jnp.arange(1, 6)).shape == (5, *shape)
    assert out_shape(x, 3) == (5, *shape)  # a scalar t serves the whole batch
    assert out_shape(x[0], 3) == shape  # one example, no batch axis
    assert out_shape(jnp.ones((2, 4, *shape)), 1) == (2, 4, *shape)


def test_outputs_start_at_zero(unet):
    x = jax.random.normal(jax.random.key(0), (4, 8, 8))
    for m in (models.MLPDenoiser((8, 8), width=16, rngs=nnx.Rngs(0)), unet):
        np.testing.assert_array_equal(np.asarray(apply(m, x, 5)), 0.0)


def test_unet_shapes_and_batch_consistency(unet):
    m = _randomize_output(nnx.clone(unet))
    x = jax.random.normal(jax.random.key(0), (3, 8, 8))
    t = jnp.array([1, 50, 999])
    out = apply(m, x, t)
    assert out.shape == (3, 8, 8)
    single = apply(m, x[1], 50)
    assert single.shape == (8, 8)
    # Each example is processed independently of the others in its batch.
    np.testing.assert_allclose(np.asarray(single), np.asarray(out[1]), rtol=1e-5, atol=1e-5)
    assert jax.eval_shape(lambda x: m(x, 1), jnp.ones((2, 2, 8, 8))).shape == (2, 2, 8, 8)


def test_time_changes_the_output():
    m = _randomize_output(models.MLPDenoiser((2,), width=16, rngs=nnx.Rngs(0)))
    x = jnp.ones((1, 2))
    assert not np.allclose(np.asarray(m(x, 1)), np.asarray(m(x, 2)))


# Every model, at several widths (not only multiples of 8), with its default initial weights and
# a random output layer (which starts at zero). The U-Net used to add a per-channel time shift
# just before a GroupNorm; at channels=(8, 8) each group held one channel, the normalisation
# subtracted the shift again, and the output changed between t = 1 and t = 500 by 3.6e-7 of its
# size: float32 round-off. A network that uses t changes by 6% to 100% here (measured), so
# 1% separates the two by four orders of magnitude on one side and a factor of six on the other.
MODELS_AT_WIDTHS = {
    "unet-8-8": lambda: models.UNet(8, channels=(8, 8), time_dim=8, rngs=nnx.Rngs(1)),
    "unet-12-20": lambda: models.UNet(8, channels=(12, 20), time_dim=8, rngs=nnx.Rngs(1)),
    "unet-1-3": lambda: models.UNet(8, channels=(1, 3), time_dim=8, rngs=nnx.Rngs(0)),
    "mlp-8": lambda: models.MLPDenoiser((3, 3), width=8, num_blocks=2, time_dim=8, rngs=nnx.Rngs(0)),
    "mlp-32-layernorm": lambda: models.MLPDenoiser((3, 3), width=32, num_blocks=2, time_dim=8, layer_norm=True,
                                                   rngs=nnx.Rngs(0)),
}


@pytest.mark.parametrize("name", MODELS_AT_WIDTHS)
def test_every_model_depends_on_t_at_every_width(name):
    m = MODELS_AT_WIDTHS[name]()
    out_layer = m.conv_out if isinstance(m, models.UNet) else m.out
    out_layer.kernel[...] = 0.3 * jax.random.normal(jax.random.key(5), out_layer.kernel[...].shape)
    x = jax.random.normal(jax.random.key(0), (4, *m.data_shape))
    early, late = np.asarray(apply(m, x, 1), np.float64), np.asarray(apply(m, x, 500), np.float64)
    size = np.max(np.abs(early))
    assert size > 0.1  # a real output, not the zero of an untrained output layer
    assert np.max(np.abs(late - early)) > 1e-2 * size, (name, np.max(np.abs(late - early)) / size)


def test_unet_group_norms_never_hold_a_single_channel():
    # Any positive width is accepted; each GroupNorm group holds at least two channels (widths >= 2).
    for c in range(1, 65):
        g = models._num_groups(c)
        assert c % g == 0 and 1 <= g <= 8 and (c == 1 or c // g >= 2), (c, g)
    assert [models._num_groups(c) for c in (8, 12, 16, 7, 2)] == [4, 6, 8, 1, 1]
    with pytest.raises(ValueError, match="channels"):
        models.UNet(8, channels=(0, 8), rngs=nnx.Rngs(0))


def test_timestep_embedding_values():
    e = models.timestep_embedding(jnp.array([0, 3]), 6, max_period=100.0)
    assert e.shape == (2, 6)
    freqs = 100.0 ** (-np.arange(3) / 3)
    np.testing.assert_allclose(np.asarray(e[1]), np.concatenate([np.sin(3 * freqs), np.cos(3 * freqs)]), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(e[0]), [0, 0, 0, 1, 1, 1])


@pytest.mark.parametrize("c_in,c_out", [(1, 4), (3, 5)])
def test_conv3x3_equals_lax_conv(c_in, c_out):
    conv = models.Conv3x3(c_in, c_out, rngs=nnx.Rngs(0))
    conv.bias[...] = jnp.arange(c_out, dtype=jnp.float32)
    x = jax.random.normal(jax.random.key(1), (2, 8, 8, c_in))
    ref = jax.lax.conv_general_dilated(x, conv.kernel[...], (1, 1), "SAME",
                                       dimension_numbers=("NHWC", "HWIO", "NHWC")) + conv.bias[...]
    np.testing.assert_allclose(np.asarray(conv(x)), np.asarray(ref), rtol=1e-5, atol=1e-5)
    down = models.Conv3x3(c_in, c_out, stride=2, rngs=nnx.Rngs(0))
    np.testing.assert_allclose(np.asarray(down(x)), np.asarray(conv(x) - conv.bias[...])[:, ::2, ::2], rtol=1e-5,
                               atol=1e-5)


def test_count_params():
    m = models.MLPDenoiser((2,), width=4, num_blocks=1, time_dim=2, rngs=nnx.Rngs(0))
    # inp 2*4+4, time 2*4+4, block (4*4+4)*3, out 4*2+2
    assert models.count_params(m) == 12 + 12 + 60 + 10


def test_bad_inputs_raise_value_errors(unet):
    m = models.MLPDenoiser((3, 3), width=8, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="x must have shape"):
        m(jnp.ones((4, 9)), 1)
    with pytest.raises(ValueError, match="t must be"):
        m(jnp.ones((4, 3, 3)), jnp.ones((3,), jnp.int32))
    with pytest.raises(ValueError, match="width"):
        models.MLPDenoiser((2,), width=0, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="time_dim"):
        models.MLPDenoiser((2,), time_dim=7, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="data_shape"):
        models.MLPDenoiser((), rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="image_size"):
        models.UNet(7, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="channels"):
        models.UNet(8, channels=(8,), rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="x must have shape"):
        apply(unet, jnp.ones((2, 4, 4)), 1)
    with pytest.raises(ValueError, match="dim"):
        models.timestep_embedding(1, 3)
    with pytest.raises(ValueError, match="stride"):
        models.Conv3x3(1, 1, stride=3, rngs=nnx.Rngs(0))


@pytest.mark.parametrize("channels", [(2.5, 64), (32, 64.0), (32, "64")])
def test_unet_refuses_widths_that_are_not_integers(channels):
    # int(2.5) would quietly build a network of width 2
    with pytest.raises(ValueError, match="channels"):
        models.UNet(channels=channels, rngs=nnx.Rngs(0))
