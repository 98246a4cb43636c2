"""ddpm_lib: the code of the executable DDPM textbook.

One module per concept: :mod:`~ddpm_lib.schedules`, :mod:`~ddpm_lib.forward`,
:mod:`~ddpm_lib.posterior`, :mod:`~ddpm_lib.losses`, :mod:`~ddpm_lib.parameterization`,
:mod:`~ddpm_lib.analytic`, :mod:`~ddpm_lib.bound`, :mod:`~ddpm_lib.models`,
:mod:`~ddpm_lib.train`, :mod:`~ddpm_lib.sampling`, :mod:`~ddpm_lib.data`,
:mod:`~ddpm_lib.metrics`, :mod:`~ddpm_lib.timing` and :mod:`~ddpm_lib.plotting`.
The index of ``t`` follows the text: ``t = 1..T``, and every schedule array has ``T + 1``
entries with entry 0 meaning "no noise".
"""

from ddpm_lib import (
    analytic,
    bound,
    data,
    forward,
    losses,
    metrics,
    models,
    parameterization,
    plotting,
    plotting_models,
    posterior,
    sampling,
    schedules,
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
    "compute_cov",
    "compute_mean",
    "data",
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
    "posterior",
    "q_mean_var",
    "q_sample",
    "sampling",
    "schedules",
    "timing",
    "train",
]
