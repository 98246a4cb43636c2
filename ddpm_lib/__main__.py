"""``python -m ddpm_lib train|sample``: see :mod:`ddpm_lib.cli` (``python -m ddpm_lib --help``)."""

import sys

from ddpm_lib.cli import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
