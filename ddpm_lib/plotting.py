"""Matplotlib helpers. Each returns a figure and never calls ``plt.show()``."""

from __future__ import annotations

from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np

from ddpm_lib.schedules import Schedule

__all__ = ["show_chain", "show_chains", "plot_schedules"]


def show_chain(states, *, title: str | None = None, vmin: float = -1.0, vmax: float = 2.0,
               labels: Sequence[str] | None = None, ax_row=None, cmap: str = "viridis"):
    """Draw the images ``states[0], states[1], ...`` side by side on one row.

    Args:
      states: an array ``(n, h, w)`` (or ``(n, h*w)`` for square images).
      title: text to the left of the row.
      vmin, vmax: the fixed colour range, shared by every panel so that panels compare.
      labels: panel titles; default ``x_0, x_1, ...``.
      ax_row: existing axes to draw into; a new figure is made when ``None``.

    Returns:
      ``(figure, image)``: the matplotlib ``Figure`` and the last panel's ``AxesImage``
      (for a colour bar).
    """
    states = np.asarray(states)
    if states.ndim == 2:
        side = int(round(np.sqrt(states.shape[1])))
        states = states.reshape(states.shape[0], side, side)
    n = states.shape[0]
    if ax_row is None:
        fig, ax_row = plt.subplots(1, n, figsize=(1.6 * n, 1.8), squeeze=False)
        ax_row = ax_row[0]
    fig = ax_row[0].figure
    labels = labels or [f"$x_{{{i}}}$" for i in range(n)]
    for i, ax in enumerate(ax_row):
        im = ax.imshow(states[i], vmin=vmin, vmax=vmax, cmap=cmap)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(labels[i], fontsize=9)
    if title:
        ax_row[0].set_ylabel(title, rotation=0, ha="right", va="center", fontsize=9)
    return fig, im


def show_chains(chains: Mapping[str, np.ndarray], *, vmin: float = -1.0, vmax: float = 2.0):
    """One row per named chain (as drawn by :func:`show_chain`) with a shared colour bar."""
    names = list(chains)
    n = max(np.asarray(c).shape[0] for c in chains.values())
    fig, axes = plt.subplots(len(names), n, figsize=(1.5 * n + 2.2, 1.55 * len(names)), squeeze=False)
    im = None
    for row, name in zip(axes, names):
        _, im = show_chain(chains[name], title=name, vmin=vmin, vmax=vmax, ax_row=row)
    fig.colorbar(im, ax=axes, shrink=0.8, label="pixel value")
    return fig


def plot_schedules(schedules: Mapping[str, Schedule]):
    r"""Three panels over :math:`t/T`: :math:`\beta_t`, :math:`\bar\alpha_t`, and the SNR on a log scale."""
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.3))
    for name, s in schedules.items():
        T = s.T
        u = np.arange(1, T + 1) / T
        axes[0].plot(u, np.asarray(s.betas)[1:], label=name)
        axes[1].plot(u, np.asarray(s.alpha_bars)[1:], label=name)
        axes[2].semilogy(u, np.asarray(s.snr())[1:], label=name)
    axes[0].set_title(r"$\beta_t$")
    axes[1].set_title(r"$\bar\alpha_t$")
    axes[2].set_title(r"SNR $=\bar\alpha_t/(1-\bar\alpha_t)$")
    for ax in axes:
        ax.set_xlabel("$t / T$")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    return fig
