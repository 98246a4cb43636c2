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
    """
    from IPython.display import Markdown

    return Markdown("```python\n" + inspect.getsource(obj).rstrip() + "\n```")


def glue(name: str, value, display: bool = False) -> None:
    """Store ``value`` under ``name`` for the book's ``{glue}`` roles (a no-op without myst_nb).

    Floats should be rounded before gluing, so that the stored output is the same on every run.
    """
    try:
        from myst_nb import glue as _glue
    except ImportError:  # Colab or a bare Jupyter: nothing renders glue there
        return
    _glue(name, value, display=display)
