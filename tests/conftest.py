import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")

# The unit tests compare float32 results with float64 references, or two float32 computations
# with each other, at tolerances derived from float32's precision (about 1e-7 relative). On a
# GPU, XLA's default precision for float32 matrix products and convolutions is TF32 (a 10-bit
# mantissa, about 1e-3 relative): an H200 gave a 2% error in test_conv3x3_equals_lax_conv.
# Pin full float32 precision for every unit test ("highest"; a no-op on CPUs, whose float32
# products are exact to float32). Set JAX_DEFAULT_MATMUL_PRECISION to try another precision.
os.environ.setdefault("JAX_DEFAULT_MATMUL_PRECISION", "highest")

import jax  # noqa: E402  (after the environment is set)

jax.config.update("jax_default_matmul_precision", os.environ["JAX_DEFAULT_MATMUL_PRECISION"])
