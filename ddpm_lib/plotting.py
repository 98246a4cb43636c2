"""Matplotlib helpers. Each returns a figure and never calls ``plt.show()``."""

from __future__ import annotations

from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np

from ddpm_lib.schedules import Schedule

__all__ = ["show_chain", "show_chains", "plot_schedules", "plot_two_chains"]


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


def show_chains(chains: Mapping[str, np.ndarray], *, vmin: float = -1.0, vmax: float = 2.0,
                labels: Sequence[str] | None = None, cmap: str = "viridis"):
    """One row per named chain (as drawn by :func:`show_chain`) with a shared colour bar.

    ``labels`` (panel titles, the same for every row) and ``cmap`` go to :func:`show_chain`.
    """
    names = list(chains)
    n = max(np.asarray(c).shape[0] for c in chains.values())
    fig, axes = plt.subplots(len(names), n, figsize=(1.5 * n + 2.2, 1.55 * len(names)), squeeze=False)
    im = None
    for row, name in zip(axes, names):
        _, im = show_chain(chains[name], title=name, vmin=vmin, vmax=vmax, ax_row=row,
                           labels=labels, cmap=cmap)
    fig.colorbar(im, ax=axes, shrink=0.8, label="pixel value")
    return fig


def plot_schedules(schedules: Mapping[str, Schedule]):
    r"""Three panels over :math:`t/T`: :math:`\beta_t` and the SNR on log scales, :math:`\bar\alpha_t`.

    :math:`\beta_t` is drawn on a log scale so that a schedule whose last steps are large
    (the cosine schedule ends at 0.999) does not flatten the others.
    """
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.3))
    for name, s in schedules.items():
        T = s.T
        u = np.arange(1, T + 1) / T
        axes[0].semilogy(u, np.asarray(s.betas)[1:], label=name)
        axes[1].plot(u, np.asarray(s.alpha_bars)[1:], label=name)
        axes[2].semilogy(u, np.asarray(s.snr())[1:], label=name)
    axes[0].set_title(r"$\beta_t$ (log scale)")
    axes[1].set_title(r"$\bar\alpha_t$")
    axes[2].set_title(r"SNR $=\bar\alpha_t/(1-\bar\alpha_t)$")
    for ax in axes:
        ax.set_xlabel("$t / T$")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_two_chains(images, labels: Sequence[str | None], *, step: int | None = None,
                    vmin: float = -1.0, vmax: float = 1.0, cmap: str = "gray_r"):
    r"""The forward chain :math:`q` and the reverse chain :math:`p_\theta` in one diagram.

    This is the picture of the homework's Figure 1 and of Figure 2 of Ho et al. (2020): the
    states :math:`x_0, \dots, x_T` in a row, the fixed forward steps
    :math:`q(x_t \mid x_{t-1})` as arrows to the right below them, the learned reverse steps
    :math:`p_\theta(x_{t-1} \mid x_t)` as arrows to the left above them.

    Args:
      images: one image ``(h, w)`` (or ``(h*w,)`` for a square image) per node, or ``None``
        for a node drawn as "..." (many steps left out); a sequence as long as ``labels``.
      labels: the TeX name of each state without dollars, such as ``"x_{t-1}"``, or ``None``
        for a "..." node.
      step: the index ``i`` of the pair (node ``i``, node ``i + 1``) whose two arrows carry the
        densities as labels; default the middle pair of two named nodes.
      vmin, vmax, cmap: the colour range and map shared by every image.

    Returns:
      The matplotlib ``Figure``.

    Raises:
      ValueError: if ``images`` and ``labels`` differ in length, there are fewer than two
        nodes, or ``step`` does not name a pair of neighbouring named nodes.
    """
    images, labels = list(images), list(labels)
    n = len(labels)
    if len(images) != n:
        raise ValueError(f"images and labels must have the same length; got {len(images)} "
                         f"and {n}")
    if n < 2:
        raise ValueError(f"the diagram needs at least two nodes; got {n}")
    named = [i for i in range(n - 1) if labels[i] is not None and labels[i + 1] is not None]
    if step is None:
        step = named[len(named) // 2] if named else None
    elif step not in named:
        raise ValueError(f"step must be the index of a pair of neighbouring named nodes, one "
                         f"of {named}; got {step!r}")
    gap, size = 1.75, 1.0  # distance between node centres, side of a node's image
    fig, ax = plt.subplots(figsize=(1.55 * n + 0.6, 3.1))
    for i, (img, lab) in enumerate(zip(images, labels)):
        x = i * gap
        if lab is None:
            ax.text(x, 0.0, r"$\cdots$", ha="center", va="center", fontsize=18)
            continue
        if img is not None:
            img = np.asarray(img)
            if img.ndim == 1:
                side = int(round(np.sqrt(img.size)))
                img = img.reshape(side, side)
            ax.imshow(img, extent=(x - size / 2, x + size / 2, -size / 2, size / 2),
                      vmin=vmin, vmax=vmax, cmap=cmap, interpolation="nearest")
            ax.add_patch(plt.Rectangle((x - size / 2, -size / 2), size, size, fill=False,
                                       lw=0.8, color="black"))
        else:
            ax.add_patch(plt.Circle((x, 0.0), 0.32, fill=False, lw=1.2, color="black"))
        ax.text(x, -0.5 * size - 0.12, f"${lab}$", ha="center", va="top", fontsize=12)
    half = 0.5 * size + 0.06
    for i in range(n - 1):
        x0 = i * gap + (half if labels[i] is not None else 0.3)
        x1 = (i + 1) * gap - (half if labels[i + 1] is not None else 0.3)
        style = dict(arrowstyle="-|>", lw=1.3, mutation_scale=12)
        ax.annotate("", xy=(x0, 0.62), xytext=(x1, 0.62),  # reverse step, to the left
                    arrowprops=dict(color="tab:blue", connectionstyle="arc3,rad=0.35",
                                    **style))
        ax.annotate("", xy=(x1, -0.62), xytext=(x0, -0.62),  # forward step, to the right
                    arrowprops=dict(color="tab:red", ls="--",
                                    connectionstyle="arc3,rad=0.35", **style))
        if i == step:
            xm = (i + 0.5) * gap
            ax.text(xm, 1.02, rf"$p_\theta({labels[i]} \mid {labels[i + 1]})$",
                    ha="center", va="bottom", color="tab:blue", fontsize=11)
            ax.text(xm, -1.02, rf"$q({labels[i + 1]} \mid {labels[i]})$",
                    ha="center", va="top", color="tab:red", fontsize=11)
    right = (n - 1) * gap
    ax.text(right / 2, 1.55, r"reverse process $p_\theta$ (learned): generates, right to left",
            ha="center", va="center", color="tab:blue", fontsize=10)
    ax.text(right / 2, -1.6, "forward process $q$ (fixed): adds noise, left to right",
            ha="center", va="center", color="tab:red", fontsize=10)
    ax.set_xlim(-0.75, right + 0.75)
    ax.set_ylim(-1.85, 1.8)
    ax.set_aspect("equal")
    ax.axis("off")
    fig.tight_layout()
    return fig
