"""Matplotlib figures for chapter 6: a score as a vector field, and sample quality against the number of steps.

Each function returns a figure and never calls ``plt.show()``.
"""

from __future__ import annotations

from typing import Callable, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np

from ddpm_lib._validate import check_callable, check_positive_int, check_real
from ddpm_lib.plotting_models import _square_panel

__all__ = ["plot_score_field", "plot_quality_vs_steps"]


def plot_score_field(score_fn: Callable, steps: Sequence[int], *, background=None, lim: float = 2.5,
                     grid: int = 19, size: float = 3.0):
    r"""The score :math:`s(x, t)` on a grid of points, one panel per step ``t``.

    Arrows show the direction of the score; their lengths are scaled per panel (the score's
    size grows like :math:`1/\sqrt{1-\bar\alpha_t}`), and their colour is the size
    :math:`\lVert s\rVert` relative to the panel's largest.

    Args:
      score_fn: ``score_fn(points, t)`` returning ``(n, 2)`` scores for ``(n, 2)`` points.
      steps: the steps ``t`` to show.
      background: optional ``(m, 2)`` points drawn in light grey (e.g. the data).
      lim: the axes range ``[-lim, lim]^2``.
      grid: arrows per axis.
      size: inches per panel.

    Returns:
      The matplotlib ``Figure``.

    Raises:
      ValueError: for a ``score_fn`` that is not callable, or a bad ``grid`` or ``lim``.
    """
    check_callable("score_fn", score_fn, "score_fn(points, t)")
    grid = check_positive_int("grid", grid)
    lim = check_real("lim", lim, lo=0.0, lo_open=True)
    u = np.linspace(-lim, lim, grid)
    gx, gy = np.meshgrid(u, u)
    pts = np.stack([gx.ravel(), gy.ravel()], axis=1).astype(np.float32)
    fig, axes = plt.subplots(1, len(steps), figsize=(size * len(steps), size + 0.3), squeeze=False)
    for ax, t in zip(axes[0], steps):
        s = np.asarray(score_fn(pts, t), np.float64)
        norm = np.linalg.norm(s, axis=1)
        scale = norm.max() if norm.max() > 0 else 1.0
        if background is not None:
            bg = np.asarray(background)
            ax.scatter(bg[:, 0], bg[:, 1], s=0.3, color="0.75", zorder=0)
        ax.quiver(pts[:, 0], pts[:, 1], s[:, 0] / scale, s[:, 1] / scale, norm / scale, cmap="viridis",
                  angles="xy", scale_units="xy", scale=1.0 / (1.6 * lim / grid), width=0.006)
        ax.set_title(f"$t = {t}$", fontsize=10)
        _square_panel(ax, lim)
    fig.tight_layout()
    return fig


def plot_quality_vs_steps(steps: Sequence[int], panels: Mapping[str, Mapping[str, Sequence[float]]], *,
                          reference: Mapping[str, float] | None = None, size: tuple[float, float] = (4.2, 3.2)):
    """One panel per quality measure: a line per sampler against the number of steps (log axis).

    Args:
      steps: the numbers of sampling steps (the x values).
      panels: ``{measure: {sampler: values}}``, one value per entry of ``steps``.
      reference: optional ``{measure: value}``, drawn as a dashed horizontal line (the floor,
        or the value on real data).
      size: inches per panel.

    Returns:
      The matplotlib ``Figure``.

    Raises:
      ValueError: if a sampler's values do not match ``steps`` in length.
    """
    steps = np.asarray(steps)
    fig, axes = plt.subplots(1, len(panels), figsize=(size[0] * len(panels), size[1]), squeeze=False)
    for ax, (measure, curves) in zip(axes[0], panels.items()):
        for i, (name, values) in enumerate(curves.items()):
            values = np.asarray(values, np.float64)
            if values.shape != steps.shape:
                raise ValueError(f"panels[{measure!r}][{name!r}] must hold one value per step "
                                 f"({steps.size}); got {values.size}")
            ax.plot(steps, values, marker="os^v"[i % 4], label=name)
        if reference is not None and measure in reference:
            ax.axhline(reference[measure], color="k", ls="--", lw=1, label="real data")
        ax.set_xscale("log")
        ax.set_xticks(steps)
        ax.set_xticklabels([str(s) for s in steps])
        ax.minorticks_off()
        ax.set_xlabel("sampling steps (network calls)")
        ax.set_ylabel(measure)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    return fig
