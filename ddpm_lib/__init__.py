"""ddpm_lib: the code of the executable DDPM textbook.

One module per concept: :mod:`~ddpm_lib.schedules`, :mod:`~ddpm_lib.forward`,
:mod:`~ddpm_lib.posterior`, :mod:`~ddpm_lib.losses`, :mod:`~ddpm_lib.parameterization`,
:mod:`~ddpm_lib.analytic`, :mod:`~ddpm_lib.bound`, :mod:`~ddpm_lib.models`,
:mod:`~ddpm_lib.train`, :mod:`~ddpm_lib.sampling`, :mod:`~ddpm_lib.spacing`, :mod:`~ddpm_lib.ddim`,
:mod:`~ddpm_lib.score`, :mod:`~ddpm_lib.data`,
:mod:`~ddpm_lib.metrics`, :mod:`~ddpm_lib.quality`, :mod:`~ddpm_lib.checkpoint`,
:mod:`~ddpm_lib.timing` and :mod:`~ddpm_lib.plotting` (with :mod:`~ddpm_lib.plotting_sampling`);
:mod:`~ddpm_lib.checking` turns on the checks of traced values; ``python -m ddpm_lib`` is :mod:`~ddpm_lib.cli`.
The index of ``t`` follows the text: ``t = 1..T``, and every schedule array has ``T + 1``
entries with entry 0 meaning "no noise".
"""

from ddpm_lib import (
    analytic,
    bound,
    checking,
    checkpoint,
    data,
    ddim,
    forward,
    losses,
    metrics,
    models,
    parameterization,
    plotting,
    plotting_models,
    plotting_sampling,
    posterior,
    quality,
    sampling,
    schedules,
    score,
    spacing,
    timing,
    train,
)
from ddpm_lib.forward import compute_cov, compute_mean, diffuse, forward_step, q_mean_var, q_sample
from ddpm_lib.losses import mean_loss, noise_loss
from ddpm_lib.schedules import Schedule

__version__ = "0.1.0"

__all__ = [
    "Schedule",
    "analytic",
    "bound",
    "checkpoint",
    "compute_cov",
    "compute_mean",
    "data",
    "ddim",
    "diffuse",
    "forward",
    "forward_step",
    "losses",
    "mean_loss",
    "metrics",
    "models",
    "noise_loss",
    "parameterization",
    "plotting",
    "plotting_models",
    "plotting_sampling",
    "posterior",
    "q_mean_var",
    "q_sample",
    "quality",
    "sampling",
    "schedules",
    "score",
    "spacing",
    "timing",
    "train",
]
