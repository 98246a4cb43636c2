"""Matplotlib helpers for training and sampling: loss curves, image grids, 2-D point clouds,
reverse trajectories and timing plots. Each returns a figure and never calls ``plt.show()``."""

from __future__ import annotations

from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np

__all__ = ["plot_loss", "image_grid", "plot_points", "plot_snapshots", "plot_forward_reverse", "plot_trajectories",
           "plot_timings"]


def _square_panel(ax, lim: float) -> None:
    """Style ``ax`` as a square 2-D panel on ``[-lim, lim]^2`` with no ticks (the book's point clouds)."""
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])


def plot_loss(losses, *, window: int = 100, ax=None, label: str | None = None):
    """The loss of every step (dots) and its moving average over ``window`` steps (line), log scale.

    Returns:
      The matplotlib ``Figure``.
    """
    losses = np.asarray(losses, np.float64)
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.2))
    steps = np.arange(1, len(losses) + 1)
    ax.scatter(steps, losses, s=2, alpha=0.25, color="C0" if label is None else None)
    w = max(1, min(window, len(losses)))
    smooth = np.convolve(losses, np.ones(w) / w, mode="valid")
    ax.plot(steps[w - 1:], smooth, lw=2, label=label or f"mean of {w} steps")
    ax.set_yscale("log")
    ax.set_xlabel("training step")
    ax.set_ylabel("minibatch loss")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.figure.tight_layout()
    return ax.figure


def image_grid(images, *, ncols: int = 8, vmin: float = -1.0, vmax: float = 1.0, cmap: str = "gray_r",
               titles: Sequence[str] | None = None, size: float = 0.9, colorbar: bool = False):
    """Square images on a grid, all with one fixed colour range.

    Args:
      images: an array ``(n, h, w)``.
      ncols: images per row.
      vmin, vmax: the colour range shared by every image.
      cmap: the colour map.
      titles: one title per image (optional).
      size: inches per image.
      colorbar: add a colour bar.

    Returns:
      The matplotlib ``Figure``.
    """
    images = np.asarray(images)
    n = images.shape[0]
    ncols = min(ncols, n)
    nrows = -(-n // ncols)
    row_height = size + (0.3 if titles is not None else 0.05)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols + (0.8 if colorbar else 0), row_height * nrows + 0.1),
                             squeeze=False)
    im = None
    for i, ax in enumerate(axes.ravel()):
        ax.set_xticks([])
        ax.set_yticks([])
        if i < n:
            im = ax.imshow(images[i], vmin=vmin, vmax=vmax, cmap=cmap)
            if titles is not None:
                ax.set_title(titles[i], fontsize=8)
        else:
            ax.axis("off")
    if colorbar and im is not None:
        fig.colorbar(im, ax=axes, shrink=0.8)
    return fig


def plot_points(clouds: Mapping[str, np.ndarray], *, lim: float = 3.0, size: float = 3.2, s: float = 1.0):
    """One scatter panel per named 2-D point cloud, on equal axes ``[-lim, lim]^2``."""
    fig, axes = plt.subplots(1, len(clouds), figsize=(size * len(clouds), size), squeeze=False)
    for ax, (name, pts) in zip(axes[0], clouds.items()):
        pts = np.asarray(pts)
        ax.scatter(pts[:, 0], pts[:, 1], s=s, alpha=0.5)
        ax.set_title(name, fontsize=10)
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
        ax.set_aspect("equal")
    fig.tight_layout()
    return fig


def plot_snapshots(trajectory, steps: Sequence[int], *, lim: float = 3.0, size: float = 2.2, s: float = 0.5):
    """The whole cloud of points at a few steps of the reverse chain, one panel per step.

    Args:
      trajectory: ``(T + 1, n, 2)`` with ``trajectory[t]`` the states :math:`x_t`.
      steps: the values of ``t`` to show, e.g. ``[100, 50, 20, 10, 5, 0]``.
      lim: the axes range.

    Returns:
      The matplotlib ``Figure``.
    """
    traj = np.asarray(trajectory)
    fig, axes = plt.subplots(1, len(steps), figsize=(size * len(steps), size + 0.3), squeeze=False)
    for ax, t in zip(axes[0], steps):
        ax.scatter(traj[t, :, 0], traj[t, :, 1], s=s, alpha=0.5)
        ax.set_title(f"$x_{{{t}}}$", fontsize=10)
        _square_panel(ax, lim)
    fig.tight_layout()
    return fig


def plot_forward_reverse(forward, reverse, steps: Sequence[int], *, lim: float = 3.0, size: float = 2.0,
                         s: float = 0.5):
    r"""2-D clouds of the forward and the reverse process at the same steps: :math:`q(x_t)` above, :math:`p_\theta(x_t)` below.

    Args:
      forward: one ``(n, 2)`` sample of :math:`q(x_t)` per entry of ``steps``.
      reverse: one ``(m, 2)`` sample of the reverse chain's state :math:`x_t` per entry of
        ``steps`` (for example ``[trajectory[t] for t in steps]``).
      steps: the steps ``t`` shown, used for the titles.
      lim: the axes range.
      size: inches per panel.
      s: the marker size.

    Returns:
      The matplotlib ``Figure``.

    Raises:
      ValueError: if ``forward``, ``reverse`` and ``steps`` differ in length.
    """
    if not len(forward) == len(reverse) == len(steps):
        raise ValueError(f"forward, reverse and steps must have the same length; got {len(forward)}, "
                         f"{len(reverse)} and {len(steps)}")
    fig, axes = plt.subplots(2, len(steps), figsize=(size * len(steps), 2 * size + 0.5), squeeze=False)
    for row, (clouds, name) in enumerate(((forward, "q"), (reverse, "p_\\theta"))):
        for ax, pts, t in zip(axes[row], clouds, steps):
            pts = np.asarray(pts)
            ax.scatter(pts[:, 0], pts[:, 1], s=s, alpha=0.5, color="C0" if row == 0 else "C1")
            ax.set_title(f"${name}(x_{{{t}}})$", fontsize=10)
            _square_panel(ax, lim)
    fig.tight_layout()
    return fig


def plot_trajectories(trajectory, *, background=None, num: int = 40, lim: float = 3.0, size: float = 4.5):
    """Paths of the reverse chain in the plane, from the noise :math:`x_T` (grey) to the sample :math:`x_0` (red).

    Args:
      trajectory: ``(T + 1, n, 2)`` with ``trajectory[t]`` the states :math:`x_t`.
      background: optional data points drawn faintly behind the paths.
      num: how many of the ``n`` paths to draw.
      lim: the axes range.

    Returns:
      The matplotlib ``Figure``.
    """
    traj = np.asarray(trajectory)
    fig, ax = plt.subplots(figsize=(size, size))
    if background is not None:
        bg = np.asarray(background)
        ax.scatter(bg[:, 0], bg[:, 1], s=1, color="0.8")
    for i in range(min(num, traj.shape[1])):
        ax.plot(traj[::-1, i, 0], traj[::-1, i, 1], lw=0.7, color=f"C{i % 10}", alpha=0.7)
    ax.scatter(traj[-1, :num, 0], traj[-1, :num, 1], s=10, color="0.4", label="$x_T$ (noise)", zorder=3)
    ax.scatter(traj[0, :num, 0], traj[0, :num, 1], s=10, color="C3", label="$x_0$ (sample)", zorder=3)
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
    ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    return fig


def plot_timings(dims: Sequence[int], timings: Mapping[str, Sequence[float]], *, title: str | None = None):
    """Seconds per call against the dimension, on log-log axes, one line per named series."""
    fig, ax = plt.subplots(figsize=(6, 3.6))
    styles = ["-o", "-s", "--o", "--s", ":^", ":v"]
    for (name, secs), style in zip(timings.items(), styles):
        ax.loglog(dims, np.asarray(secs) * 1e6, style, label=name, ms=4)
    ax.set_xlabel("dimension $D$")
    ax.set_ylabel("microseconds per call")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig
