r"""Input checks shared by the modules of :mod:`ddpm_lib`: one rule for every public function.

**The rule.** Every public function checks its arguments once, where it is called, before
any arithmetic, and refuses a bad one with a ``ValueError`` whose message names the
argument, shows the value it got and says what is allowed, for example
``t must lie in 1..10 (T = 10); got 11``. Legal extremes are never refused: a step with
:math:`\beta = 0` or :math:`\beta = 1`, ``T = 1``, a single example, an empty batch where a
result can be empty, float64 or NumPy-integer arguments. A function that cannot give a
finite answer at a legal extreme says so in its ``Raises:`` section (for example the
:math:`\epsilon`-parameterization at :math:`\beta_t = 1`).

**What is checked where.**

* *Types, shapes and options* (a list where a :class:`~ddpm_lib.schedules.Schedule` is
  expected, a timestep array where a scalar ``t`` is documented, shapes that would
  broadcast silently, an unknown option) are static, so they are checked on every call,
  traced or not, at no run-time cost.
* *Values* (``t`` in ``1..T``, ``beta`` in [0, 1], a variance >= 0, finite data) are
  checked on the host when they are *concrete*: in every eager call, and for the
  arguments of the public compiled entry points (:func:`ddpm_lib.sampling.sample`,
  :func:`ddpm_lib.train.train`, ...), which check before they compile.
* Checks never run inside traced inner loops: a value check looks at a concrete array
  once, outside any ``jax.lax.scan``. Chapter 4 measures what host-side checking costs
  in eager mode (it needs the value on the host).

**Traced values.** Inside ``jax.jit``, ``jax.vmap`` or ``jax.lax.scan`` a timestep or a
beta is a tracer whose value is unknown when the function is traced, so it cannot be
checked on the host. By default it is *not checked*, at no cost at all: JAX's indexing rule
then applies, so under ``jax.jit`` ``t = T + 1`` silently reads entry ``T`` and ``t = -1``
wraps around to entry ``T``. Every public function that takes ``t`` says so.

*Checked mode* checks traced values too, with the tool JAX provides for this,
:mod:`jax.experimental.checkify`: wrap the call in :func:`ddpm_lib.checking.checked`::

    from ddpm_lib.checking import checked
    checked(jax.jit(forward.q_sample))(schedule, x0, 11, eps)
    # ValueError: t must lie in 1..10 (T = 10); got 11

Only then do the checks below emit :func:`jax.experimental.checkify.debug_check` calls.
The switch is a JAX user context, part of the ``jax.jit`` cache key: a function compiled in
checked mode is traced again, and plain calls keep a program without checks. (Outside
checked mode nothing is emitted on purpose: a traced check puts an effect in the program,
and a jitted function with an effect loses JAX's fast C++ dispatch, about ten times the
call overhead of a small function; chapter 4 times exactly such calls.)

Helpers return the normalized value where that is useful (``check_int`` returns an
``int``); they never change a numeric result.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
import numbers

import jax
import numpy as np

__all__: list[str] = []  # private module: the helpers are used by ddpm_lib itself


class _Flag:
    """A fallback for JAX versions without ``jax.make_user_context`` (not part of the jit key)."""

    def __init__(self) -> None:
        self._var = contextvars.ContextVar("ddpm_lib_checked_mode", default=False)

    @property
    def value(self) -> bool:
        return self._var.get()

    @contextlib.contextmanager
    def __call__(self, value: bool):
        token = self._var.set(value)
        try:
            yield
        finally:
            self._var.reset(token)


# Checked mode (see the module docstring): read when a function is traced. A JAX user context is
# part of the jit cache key, so switching it re-traces instead of reusing a program without checks.
CHECKED_MODE = jax.make_user_context(default_value=False) if hasattr(jax, "make_user_context") else _Flag()
CHECKED_MODE_IN_JIT_KEY = not isinstance(CHECKED_MODE, _Flag)


# --------------------------------------------------------------------------- concrete values


def concrete(x):
    """Return ``x`` as a NumPy array, or ``None`` when ``x`` is a JAX tracer (or not array-like)."""
    try:
        return np.asarray(x)
    except Exception:  # jax.errors.TracerArrayConversionError and friends
        return None


def is_traced(x) -> bool:
    """Whether ``x`` is a JAX tracer (its value is unknown until the compiled code runs)."""
    return isinstance(x, jax.core.Tracer)


def traced_check(pred, msg: str, **fmt) -> None:
    """A check of traced values, emitted only in checked mode (``ddpm_lib.checking.checked``).

    ``pred`` may be an array (all of it must hold); ``msg`` may show the ``fmt`` arrays as
    ``{name}``. Outside checked mode this does nothing, so plain jitted code stays free of effects.
    """
    if not CHECKED_MODE.value:
        return
    import jax.numpy as jnp
    from jax.experimental import checkify

    try:
        checkify.debug_check(jnp.all(pred), msg, **fmt)
    except IndexError:  # JAX cannot batch a check over an empty vmap axis; nothing to check there
        pass


def _show(value) -> str:
    """A short text for a value in an error message."""
    a = concrete(value)
    if a is not None and a.ndim > 0:
        return f"an array of shape {a.shape}"
    if a is not None and a.ndim == 0 and a.dtype.kind in "biuf" and not isinstance(value, (bool, int, float)):
        value = a.item()  # NumPy scalars and 0-d arrays print as plain numbers
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _interval(lo, hi, lo_open: bool, hi_open: bool) -> str:
    """`` in [lo, hi]``, `` > lo`` and so on (with a leading space), or ``""`` when unbounded."""
    if lo is not None and hi is not None:
        return f" in {'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}"
    if lo is not None:
        return f" {'>' if lo_open else '>='} {lo}"
    if hi is not None:
        return f" {'<' if hi_open else '<='} {hi}"
    return ""


# --------------------------------------------------------------------------- scalars


def check_int(name: str, value, lo: int | None = None, hi: int | None = None) -> int:
    """Return ``value`` as an ``int``; raise ``ValueError`` unless it is an integer in ``lo..hi``.

    Python and NumPy integers (``np.int64(4)``) and 0-d integer arrays are accepted; floats
    (even ``4.0``), booleans and strings are not.
    """
    v = value
    if hasattr(v, "dtype") and np.ndim(v) == 0 and not isinstance(v, np.generic):
        a = concrete(v)  # a 0-d NumPy or JAX integer array counts as an integer
        if a is not None and a.dtype.kind in "iu":
            v = a.item()
    ok = isinstance(v, (numbers.Integral, np.integer)) and not isinstance(v, (bool, np.bool_))
    if lo is not None and hi is not None:
        allowed = f"an integer in {lo}..{hi}"
    elif lo is not None:
        allowed = f"an integer >= {lo}"
    else:
        allowed = "an integer"
    if not ok or (lo is not None and v < lo) or (hi is not None and v > hi):
        raise ValueError(f"{name} must be {allowed}; got {_show(value)}")
    return int(v)


def check_positive_int(name: str, value) -> int:
    """Return ``value`` as an ``int``; raise ``ValueError`` unless it is an integer >= 1."""
    return check_int(name, value, lo=1)


def check_real(name: str, value, lo=None, hi=None, *, lo_open: bool = False, hi_open: bool = False) -> float:
    """Return ``value`` as a ``float``; raise ``ValueError`` unless it is one finite number in the interval.

    ``lo``/``hi`` bound the interval (``None``: unbounded), closed unless ``lo_open`` /
    ``hi_open``. Python and NumPy numbers and 0-d arrays are accepted; booleans, strings and
    arrays with more than one entry are not.
    """
    where = _interval(lo, hi, lo_open, hi_open)
    a = concrete(value)
    if (isinstance(value, (bool, np.bool_, str, bytes)) or a is None or a.ndim != 0
            or a.dtype.kind not in "iuf"):
        raise ValueError(f"{name} must be a single finite number{where}; got {_show(value)}")
    v = float(a)
    bad = not math.isfinite(v)
    if lo is not None:
        bad |= v <= lo if lo_open else v < lo
    if hi is not None:
        bad |= v >= hi if hi_open else v > hi
    if bad:
        raise ValueError(f"{name} must be a finite number{where}; got {_show(value)}")
    return v


def check_choice(name: str, value, choices) -> None:
    """Raise ``ValueError`` unless ``value`` is one of ``choices`` (strings)."""
    if not isinstance(value, str) or value not in choices:
        allowed = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{name} must be one of {allowed}; got {_show(value)}")


PREDICTIONS = ("eps", "mean")


def check_prediction(prediction) -> None:
    """Raise ``ValueError`` unless the network's target is ``"eps"`` or ``"mean"``."""
    if not isinstance(prediction, str) or prediction not in PREDICTIONS:
        raise ValueError(f"prediction must be 'eps' or 'mean'; got {prediction!r}")


# --------------------------------------------------------------------------- values of the maths


def check_beta(beta, name: str = "beta", *, scalar: bool = False) -> None:
    """Raise ``ValueError`` unless every value of ``beta`` is finite and in [0, 1].

    With ``scalar=True`` ``beta`` must also be a single number (a vector would broadcast
    silently against the data). A traced ``beta`` is checked only in checked mode.
    """
    if scalar and np.ndim(beta) != 0:
        raise ValueError(f"{name} must be a single number in [0, 1]; got an array of shape {np.shape(beta)}")
    b = concrete(beta)
    if b is None:
        if is_traced(beta):
            traced_check((beta >= 0.0) & (beta <= 1.0), f"{name} must lie in [0, 1]; got {{b}}", b=beta)
        return
    if b.dtype.kind not in "iuf":
        raise ValueError(f"{name} must be a number in [0, 1]; got {_show(beta)}")
    b = b.astype(np.float64)
    if not np.all(np.isfinite(b)):
        raise ValueError(f"{name} must be finite and lie in [0, 1]; got {float(b[~np.isfinite(b)].ravel()[0])}")
    if np.any(b < 0.0) or np.any(b > 1.0):
        bad = b[(b < 0.0) | (b > 1.0)].ravel()[0]
        raise ValueError(f"{name} must lie in [0, 1]; got {float(bad)}")


def check_t(t, T: int, name: str = "t", *, lo: int = 1, scalar: bool = True) -> None:
    """Raise ``ValueError`` unless ``t`` is an integer timestep in ``lo..T`` (``lo`` is 1 or 0).

    With ``scalar=True`` (the default) ``t`` must be a single step: a timestep array where
    one step is documented would broadcast silently. A traced ``t`` is checked in checked
    mode only (see the module docstring); its dtype and shape are checked always.
    """
    rng = f"{lo}..{T}"
    shape = np.shape(t)
    if scalar and shape != ():
        raise ValueError(f"{name} must be a single integer timestep in {rng} (use jax.vmap for a batch "
                         f"of steps); got an array of shape {shape}")
    if isinstance(t, (bool, np.bool_)):
        raise ValueError(f"{name} must be an integer timestep in {rng}; got {t!r}")
    if is_traced(t):
        if not np.issubdtype(t.dtype, np.integer):
            raise ValueError(f"{name} must be an integer timestep in {rng}; got a traced {t.dtype} value")
        traced_check((t >= lo) & (t <= T), f"{name} must lie in {rng} (T = {T}); got {{t}}", t=t)
        return
    a = concrete(t)
    if a is None or a.dtype.kind not in "iu":
        raise ValueError(f"{name} must be an integer timestep in {rng}; got {_show(t)}"
                         + (f" of dtype {a.dtype}" if a is not None and a.ndim else ""))
    if a.size and (np.min(a) < lo or np.max(a) > T):
        bad = a[(a < lo) | (a > T)].ravel()[0]
        raise ValueError(f"{name} must lie in {rng} (T = {T}); got {bad.item()}")


def check_finite(name: str, x, what: str = "") -> None:
    """Raise ``ValueError`` if a concrete ``x`` holds a NaN or an infinity (``what`` describes ``x``)."""
    a = concrete(x)
    if a is None:
        return
    if a.dtype.kind not in "iufb":
        raise ValueError(f"{name}{what} must be numbers; got {_show(x)}")
    if a.dtype.kind == "f" and not np.all(np.isfinite(a)):
        n_bad = int(np.sum(~np.isfinite(a)))
        raise ValueError(f"{name}{what} must be finite; got {n_bad} NaN or infinite "
                         f"value{'s' if n_bad > 1 else ''} in an array of shape {a.shape}")


def check_array(name: str, x) -> None:
    """Raise ``ValueError`` unless ``x`` is an array (or nested list) of numbers.

    Looks only at the dtype, so it never copies a device array to the host and works on
    tracers; the values themselves are not scanned (a NaN in the data propagates to the
    result, where it is visible).
    """
    dtype = getattr(x, "dtype", None)
    if dtype is None:
        a = concrete(x)
        dtype = None if a is None else a.dtype
    try:
        kind = np.dtype(dtype).kind
    except TypeError:  # a JAX key array, or something else that is not a NumPy dtype
        kind = None
    if dtype is None or kind is None or kind not in "biuf":
        got = _show(x) if dtype is None or kind in ("O", "U", "S") else f"an array of dtype {dtype}"
        raise ValueError(f"{name} must be an array of numbers; got {got}")


def check_mean(m, name: str = "m") -> None:
    """Raise ``ValueError`` unless every concrete value of the data mean is finite."""
    check_finite(name, m, " (the data mean)")


def check_variance(s2, name: str = "s2", *, positive: bool = False) -> None:
    """Raise ``ValueError`` unless every value of the data variance is finite and >= 0 (> 0 if ``positive``)."""
    v = concrete(s2)
    where = "> 0" if positive else ">= 0"
    if v is None:
        if is_traced(s2):
            ok = (s2 > 0) if positive else (s2 >= 0)
            traced_check(ok, f"{name} (the data variance) must be finite and {where}; got {{v}}", v=s2)
        return
    if v.dtype.kind not in "iuf":
        raise ValueError(f"{name} (the data variance) must be a number {where}; got {_show(s2)}")
    v = v.astype(np.float64)
    if not np.all(np.isfinite(v)) or np.any(v <= 0 if positive else v < 0):
        raise ValueError(f"{name} (the data variance) must be finite and {where}; got {_show(s2)}")


# --------------------------------------------------------------------------- shapes


def check_same_shape(**arrays) -> None:
    """Raise ``ValueError`` unless all keyword arrays share one shape."""
    shapes = {k: tuple(np.shape(v)) for k, v in arrays.items()}
    if len(set(shapes.values())) > 1:
        desc = ", ".join(f"{k} {s}" for k, s in shapes.items())
        raise ValueError(f"shapes must match: {desc}")


def check_broadcast(**arrays) -> tuple[int, ...]:
    """Return the broadcast shape of the keyword arrays; raise ``ValueError`` naming them if there is none."""
    shapes = {k: tuple(np.shape(v)) for k, v in arrays.items()}
    try:
        return tuple(np.broadcast_shapes(*shapes.values()))
    except ValueError:
        desc = ", ".join(f"{k} {s}" for k, s in shapes.items())
        raise ValueError(f"{', '.join(shapes)} must broadcast to one shape; got {desc}") from None


def check_shape(name: str, shape, *, min_dims: int = 1, min_size: int = 0) -> tuple[int, ...]:
    """Return ``shape`` as a tuple of ints; refuse strings, floats (``2.5`` is not truncated),
    sizes below ``min_size`` and fewer than ``min_dims`` axes. NumPy integers are accepted.

    By default a size of 0 is allowed (an empty batch gives an empty result).
    """
    allowed = f"a tuple of integers >= {min_size}, e.g. (1000, 2)"
    if isinstance(shape, (str, bytes)) or not hasattr(shape, "__iter__"):
        raise ValueError(f"{name} must be {allowed}; got {_show(shape)}")
    dims = tuple(shape)
    try:
        out = tuple(check_int(f"{name}[{i}]", d, lo=min_size) for i, d in enumerate(dims))
    except ValueError:
        raise ValueError(f"{name} must be {allowed}; got {shape!r}") from None
    if len(out) < min_dims:
        raise ValueError(f"{name} must have at least {min_dims} axis{'es' if min_dims > 1 else ''}; got {shape!r}")
    return out


# --------------------------------------------------------------------------- objects


def check_schedule(schedule, name: str = "schedule") -> None:
    """Raise ``ValueError`` unless ``schedule`` is a :class:`~ddpm_lib.schedules.Schedule`."""
    from ddpm_lib.schedules import Schedule

    if not isinstance(schedule, Schedule):
        hint = " (make one with schedules.from_betas)" if isinstance(schedule, (list, tuple, np.ndarray)) else ""
        raise ValueError(f"{name} must be a ddpm_lib.schedules.Schedule{hint}; got {type(schedule).__name__}")


def check_callable(name: str, f, how: str = "") -> None:
    """Raise ``ValueError`` unless ``f`` is callable (``how`` shows the expected call)."""
    if not callable(f):
        raise ValueError(f"{name} must be callable{' as ' + how if how else ''}; got {type(f).__name__}")


def check_key(key, name: str = "key") -> None:
    """Raise ``ValueError`` unless ``key`` is one JAX random key (``jax.random.key(seed)``).

    New-style typed keys and legacy ``uint32[2]`` keys (``jax.random.PRNGKey``) are both
    accepted; an integer seed or a batch of keys is not. Checks only dtype and shape, so it
    also works on a traced key.
    """
    dtype = getattr(key, "dtype", None)
    shape = tuple(getattr(key, "shape", ()))
    typed = dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key)
    legacy = dtype == np.uint32 and shape == (2,)
    if not ((typed and shape == ()) or legacy):
        got = f"a batch of keys of shape {shape}" if typed else _show(key)
        raise ValueError(f"{name} must be one JAX random key, e.g. jax.random.key(0); got {got}")
