"""Input checks shared by the modules of :mod:`ddpm_lib`.

Checks run only on *concrete* values. Inside ``jax.jit`` a timestep or a beta is a
tracer whose value is unknown at trace time; there the public entry points (which are
called eagerly) have already checked what they could.
"""

from __future__ import annotations

import numpy as np


def concrete(x):
    """Return ``x`` as a NumPy array, or ``None`` when ``x`` is a JAX tracer."""
    try:
        return np.asarray(x)
    except Exception:  # jax.errors.TracerArrayConversionError and friends
        return None


def check_beta(beta, name: str = "beta") -> None:
    """Raise ``ValueError`` unless every value of ``beta`` is finite and in [0, 1]."""
    b = concrete(beta)
    if b is None:
        return
    b = b.astype(np.float64)
    if not np.all(np.isfinite(b)):
        raise ValueError(f"{name} must be finite and lie in [0, 1]; got a NaN or infinite value")
    if np.any(b < 0.0) or np.any(b > 1.0):
        bad = b[(b < 0.0) | (b > 1.0)].ravel()[0]
        raise ValueError(f"{name} must lie in [0, 1]; got {float(bad)}")


def check_t(t, T: int, name: str = "t") -> None:
    """Raise ``ValueError`` unless every value of ``t`` is an integer in 1..T."""
    a = concrete(t)
    if a is None:
        return
    if a.dtype.kind not in "iu":
        if a.dtype.kind == "f" and np.all(np.isfinite(a)) and np.all(a == np.round(a)):
            pass
        else:
            raise ValueError(f"{name} must be an integer timestep in 1..{T}; got {t!r}")
    if a.size and (np.min(a) < 1 or np.max(a) > T):
        bad = a[(a < 1) | (a > T)].ravel()[0]
        raise ValueError(f"{name} must lie in 1..{T} (T = {T}); got {bad.item()}")


def check_same_shape(**arrays) -> None:
    """Raise ``ValueError`` unless all keyword arrays share one shape."""
    shapes = {k: tuple(np.shape(v)) for k, v in arrays.items()}
    if len(set(shapes.values())) > 1:
        desc = ", ".join(f"{k} {s}" for k, s in shapes.items())
        raise ValueError(f"shapes must match: {desc}")


def check_positive_int(name: str, value) -> int:
    """Return ``value`` as an ``int``; raise ``ValueError`` unless it is an integer >= 1."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer; got {value!r}")
    return int(value)


def check_variance(s2, name: str = "s2") -> None:
    """Raise ``ValueError`` unless every (concrete) value of the data variance is finite and >= 0."""
    v = concrete(s2)
    if v is not None and (not np.all(np.isfinite(v)) or np.any(v < 0)):
        raise ValueError(f"{name} (the data variance) must be finite and >= 0; got {s2!r}")


PREDICTIONS = ("eps", "mean")


def check_prediction(prediction) -> None:
    """Raise ``ValueError`` unless the network's target is ``"eps"`` or ``"mean"``."""
    if prediction not in PREDICTIONS:
        raise ValueError(f"prediction must be 'eps' or 'mean'; got {prediction!r}")
