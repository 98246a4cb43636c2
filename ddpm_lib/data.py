"""Small data sets that need no download: generated in code or shipped by a package."""

from __future__ import annotations

import jax.numpy as jnp

__all__ = ["single_dot"]


def single_dot(size: int = 3, row: int | None = None, col: int | None = None) -> jnp.ndarray:
    """A ``size x size`` image of zeros with a single 1, the homework's "single dot image".

    By default the dot sits in the centre; ``row`` and ``col`` move it.

    Raises:
      ValueError: if ``size < 1`` or the dot falls outside the image.
    """
    if size < 1:
        raise ValueError(f"size must be >= 1; got {size}")
    r = size // 2 if row is None else row
    c = size // 2 if col is None else col
    if not (0 <= r < size and 0 <= c < size):
        raise ValueError(f"row and col must lie in 0..{size - 1}; got ({r}, {c})")
    return jnp.zeros((size, size), jnp.float32).at[r, c].set(1.0)
