"""pytest settings for the chapter notebooks, so that `pytest --nbval chapters` needs no flags.

* the kernel is the current environment's (not whatever the notebook metadata names);
* outputs are sanitized with chapters/sanitize.cfg (memory addresses, timings);
* JAX runs on the CPU, so stored outputs do not depend on an accelerator;
* stderr is not compared (first-run messages such as matplotlib's font-cache notice land
  there), and neither are glued PNG figures (nbval skips inline PNG already).
"""

import os
import pathlib

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("PYTHONHASHSEED", "0")

HERE = pathlib.Path(__file__).parent


def pytest_configure(config):
    if not getattr(config.option, "nbval_kernel_name", None):
        config.option.nbval_current_env = True
    if getattr(config.option, "nbval_sanitize_with", None) is None:
        config.option.nbval_sanitize_with = str(HERE / "sanitize.cfg")


def pytest_collectstart(collector):
    path = getattr(collector, "path", None)
    if path is not None and path.suffix == ".ipynb":
        collector.skip_compare += (
            "stderr",
            "application/papermill.record/image/png",
        )
