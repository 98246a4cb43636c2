"""Small helpers for the book's notebooks: show library source, glue numbers into the text.

Both work in a plain Jupyter or Colab session too: when ``myst_nb`` is not installed,
:func:`glue` stores nothing and prints nothing.
"""

from __future__ import annotations

import inspect

__all__ = ["show_source", "glue"]


def show_source(obj):
    """Display the source code of a ``ddpm_lib`` function or class as highlighted Python.

    The chapters call this instead of pasting a second copy of the library's code, so the
    book always shows the code that actually runs.

    Raises:
      ValueError: if ``obj`` is not a function, class, method or module with Python source.
    """
    from IPython.display import Markdown

    try:
        source = inspect.getsource(obj)
    except (TypeError, OSError) as err:
        raise ValueError(f"obj must be a function, class, method or module with Python source; "
                         f"got {type(obj).__name__}") from err
    return Markdown("```python\n" + source.rstrip() + "\n```")


def glue(name: str, value, display: bool = False) -> None:
    """Store ``value`` under ``name`` for the book's ``{glue}`` roles (a no-op without myst_nb).

    Floats should be rounded before gluing, so that the stored output is the same on every run.

    Raises:
      ValueError: if ``name`` is not a non-empty string.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"name must be a non-empty string (the key of the {{glue}} role); got {name!r}")
    try:
        from myst_nb import glue as _glue
    except ImportError:  # Colab or a bare Jupyter: nothing renders glue there
        return
    _glue(name, value, display=display)
