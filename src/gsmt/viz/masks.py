"""Global-mask heatmaps: predicted and target masks of one sample, with actionness."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure

from gsmt.errors import GsmtError
from gsmt.viz.common import (
    DPI,
    save_figure,
)


def masks_figure(
    *,
    pred_mask: Any,
    gt_mask: Any = None,
    valid: Any = None,
    title: str | None = None,
    t_start: Any = None,
    t_end: Any = None,
    actionness: Any = None,
) -> Figure:
    """The mask Figure: predicted `M[i, t]` beside its target, padding greyed (paper Fig. 6)."""
    pred = np.asarray(pred_mask, dtype=np.float64)
    if pred.ndim != 2 or pred.shape[0] != pred.shape[1]:
        raise GsmtError("pred_mask", f"must be a square [T, T] array, got {list(pred.shape)}")
    T = pred.shape[0]
    gt = None if gt_mask is None else np.asarray(gt_mask, dtype=np.float64)
    if gt is not None and gt.shape != pred.shape:
        raise GsmtError("gt_mask", f"shape {list(gt.shape)} differs from pred_mask {list(pred.shape)}")
    ok = np.ones(T, bool) if valid is None else np.asarray(valid, dtype=bool).reshape(-1)
    if ok.shape[0] != T:
        raise GsmtError("valid", f"has {ok.shape[0]} entries for T={T}")
    act = None if actionness is None else np.asarray(actionness, dtype=np.float64).reshape(-1)
    if act is not None and act.shape[0] != T:
        raise GsmtError("actionness", f"has {act.shape[0]} entries for T={T}")

    # a padded snippet neither predicts (column) nor is predicted (row)
    padded = ~(ok[:, None] & ok[None, :])
    panels = [("predicted mask M", pred)] + ([("ground-truth mask", gt)] if gt is not None else [])

    cmap = colormaps["viridis"].with_extremes(bad="0.82")
    n_cols = len(panels)
    fig = Figure(figsize=(5.0 * n_cols + 1.0, 4.0 if act is None else 5.2), dpi=DPI,
                 layout="constrained")
    grid = fig.add_gridspec(2 if act is not None else 1, n_cols,
                            height_ratios=[4, 1] if act is not None else None)
    axes, image = [], None
    for c, (name, data) in enumerate(panels):
        ax = fig.add_subplot(grid[0, c], sharey=axes[0] if axes else None)
        # the masked array keeps `data` itself as the image's data; only the display greys padding
        image = ax.imshow(np.ma.masked_array(data, mask=padded), cmap=cmap, vmin=0.0, vmax=1.0,
                          origin="lower", aspect="auto", interpolation="nearest",
                          extent=(-0.5, T - 0.5, -0.5, T - 0.5))
        ax.set_title(name)
        ax.set_xlabel("source snippet t (column)")
        if c == 0:
            ax.set_ylabel("mask position i")
        _seconds_axis(ax, ok, t_start, t_end)
        axes.append(ax)
    fig.colorbar(image, ax=axes, label="mask value", fraction=0.05, pad=0.02)

    if act is not None:
        ax = fig.add_subplot(grid[1, 0], sharex=axes[0])
        x = np.arange(T)
        shown = np.where(ok, act, np.nan)  # no line through padding
        ax.fill_between(x, 0.0, shown, step="mid", alpha=0.35, color="tab:orange")
        ax.step(x, shown, where="mid", color="tab:orange", linewidth=1.2, label="actionness")
        ax.set_ylim(0.0, 1.0)
        ax.set_ylabel("actionness")
        ax.set_xlabel("source snippet t")
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    return fig


def _seconds_axis(ax: Any, ok: np.ndarray, t_start: Any, t_end: Any) -> None:
    """A top axis in video seconds when the snippet spans are given and increase."""
    if t_start is None or t_end is None:
        return
    centres = 0.5 * (np.asarray(t_start, np.float64) + np.asarray(t_end, np.float64)).reshape(-1)
    idx = np.flatnonzero(ok[: len(centres)])
    c = centres[idx]
    if len(idx) < 2 or not np.all(np.diff(c) > 0):
        return
    sec = ax.secondary_xaxis(
        "top",
        functions=(lambda t: _interp_linear(t, idx, c), lambda s: _interp_linear(s, c, idx)),
    )
    sec.set_xlabel("time (s)", fontsize=9)
    sec.tick_params(labelsize=8)


def _interp_linear(x: Any, xp: np.ndarray, fp: np.ndarray) -> np.ndarray:
    """np.interp that extends the end segments linearly (axis limits may lie past the data)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.interp(x, xp, fp)
    lo, hi = x < xp[0], x > xp[-1]
    y = np.where(lo, fp[0] + (x - xp[0]) * (fp[1] - fp[0]) / (xp[1] - xp[0]), y)
    return np.where(hi, fp[-1] + (x - xp[-1]) * (fp[-1] - fp[-2]) / (xp[-1] - xp[-2]), y)


def plot_masks(
    out_path: str | Path,
    *,
    pred_mask: Any,
    gt_mask: Any = None,
    valid: Any = None,
    title: str | None = None,
    t_start: Any = None,
    t_end: Any = None,
    actionness: Any = None,
) -> Path:
    """Write the predicted global mask beside its ground truth, optionally with actionness."""
    fig = masks_figure(pred_mask=pred_mask, gt_mask=gt_mask, valid=valid, title=title,
                       t_start=t_start, t_end=t_end, actionness=actionness)
    return save_figure(fig, out_path)
