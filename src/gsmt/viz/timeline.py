"""Prediction timelines: ranked detections beside the ground truth of one video."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from gsmt.errors import GsmtError
from gsmt.viz.common import (
    _GT_ROW_LABEL,
    DPI,
    _as_segments,
    _as_vector,
    _class_name,
    class_colors,
    save_figure,
)


def timeline_figure(
    *,
    duration: float,
    gt_segments: Any,
    gt_labels: Any,
    pred_segments: Any,
    pred_labels: Any,
    pred_scores: Any,
    classes: list[str],
    video_id: str = "",
    top: int = 10,
    title: str | None = None,
) -> Figure:
    """The timeline Figure: one ground-truth row, then the `top` predictions by score, one per row."""
    where = video_id or "timeline"
    if not (duration > 0 and math.isfinite(duration)):
        raise GsmtError(where, f"duration must be a positive number, got {duration}")
    gt = _as_segments(gt_segments, where, "gt_segments")
    gt_lab = _as_vector(gt_labels, len(gt), where, "gt_labels", np.int64)
    pred = _as_segments(pred_segments, where, "pred_segments")
    pred_lab = _as_vector(pred_labels, len(pred), where, "pred_labels", np.int64)
    pred_sc = _as_vector(pred_scores, len(pred), where, "pred_scores", np.float64)

    n_total = len(pred)
    # stable sort keeps the input order among equal scores
    order = np.argsort(-pred_sc, kind="stable")[: max(int(top), 0)]
    pred, pred_lab, pred_sc = pred[order], pred_lab[order], pred_sc[order]
    n_rows = 1 + len(pred)
    colors = class_colors(np.concatenate([gt_lab, pred_lab]), len(classes))

    fig = Figure(figsize=(10.0, max(3.0, 1.4 + 0.32 * n_rows)), dpi=DPI, layout="constrained")
    ax = fig.add_subplot()
    height = 0.7

    # ground truth on row 0, split into lanes so overlapping instances (THUMOS's CliffDiving
    # and Diving twins) are all visible
    if len(gt):
        lane, n_lanes = gt_lanes(gt)
        lane_h = height / n_lanes
        ax.barh(
            -height / 2 + (lane + 0.5) * lane_h, gt[:, 1] - gt[:, 0], left=gt[:, 0], height=lane_h,
            color=[colors[int(k)] for k in gt_lab], edgecolor="black", linewidth=0.8,
        )
        # faint boundary guides let the eye compare every prediction with the ground truth
        ax.vlines(np.unique(gt.ravel()), -0.5, n_rows - 0.5, colors="0.6", linestyles=":",
                  linewidth=0.8, zorder=0)
    else:
        ax.text(0.5 * duration, 0, "no ground truth", ha="center", va="center", color="0.4",
                fontsize=9, fontstyle="italic")

    if len(pred):
        rows = np.arange(1, n_rows)
        ax.barh(
            rows, pred[:, 1] - pred[:, 0], left=pred[:, 0], height=height,
            color=[colors[int(k)] for k in pred_lab], edgecolor="0.25", linewidth=0.5,
        )
        # class and score beside the bar, on the side with room, else inside it (a bar spanning
        # the video would put it over the rank labels); the class name matters when colours
        # repeat (more than 20 classes)
        for row, (s, e), k, sc in zip(rows, pred, pred_lab, pred_sc):
            text, inside = f"{_class_name(int(k), classes)} {sc:.2f}", {}
            if e < 0.75 * duration:
                x, ha = e + 0.006 * duration, "left"
            elif s > 0.25 * duration:
                x, ha = s - 0.006 * duration, "right"
            else:
                x, ha = max(s, 0.0) + 0.006 * duration, "left"
                inside = {"bbox": {"facecolor": "white", "alpha": 0.7, "edgecolor": "none", "pad": 1}}
            ax.text(x, row, text, ha=ha, va="center", fontsize=8, **inside)
    else:
        ax.text(0.5 * duration, 1, "no predictions", ha="center", va="center", color="0.4",
                fontsize=9, fontstyle="italic")
        n_rows = 2

    ax.set_xlim(0.0, duration)
    ax.set_ylim(n_rows - 0.5, -0.5)  # ground truth on top, best prediction next
    ax.set_yticks(np.arange(1 + len(pred)))
    ax.set_yticklabels([_GT_ROW_LABEL] + [f"#{r + 1} {s:.2f}" for r, s in enumerate(pred_sc)])
    ax.get_yticklabels()[0].set_fontweight("bold")
    ax.set_xlabel("time (s)")
    ax.set_ylabel("prediction rank, score")
    ax.grid(axis="x", alpha=0.3)
    ax.set_axisbelow(True)
    if title is None:
        shown = f"top {len(pred)} of {n_total}"
        title = f"{video_id}  ({shown} predictions)" if video_id else f"{shown} predictions"
    ax.set_title(title)

    present = sorted(colors)
    if present:
        handles = [Patch(facecolor=colors[k], edgecolor="0.25", label=_class_name(k, classes))
                   for k in present]
        # outside the axes so it never hides a bar
        fig.legend(handles=handles, loc="outside right upper", fontsize=8, title="class",
                   title_fontsize=9, frameon=False)
    return fig


def gt_lanes(segments: np.ndarray) -> tuple[np.ndarray, int]:
    """Lane per segment so that no two overlapping segments share a lane (greedy by start)."""
    order = np.argsort(segments[:, 0], kind="stable")
    lane = np.zeros(len(segments), dtype=np.int64)
    lane_end: list[float] = []
    # a loop over ground-truth instances only (tens per video), first-fit interval colouring
    for i in order:
        s, e = segments[i]
        free = [j for j, end in enumerate(lane_end) if end <= s]
        j = free[0] if free else len(lane_end)
        if j == len(lane_end):
            lane_end.append(e)
        else:
            lane_end[j] = e
        lane[i] = j
    return lane, max(len(lane_end), 1)


def plot_timeline(
    out_path: str | Path,
    *,
    duration: float,
    gt_segments: Any,
    gt_labels: Any,
    pred_segments: Any,
    pred_labels: Any,
    pred_scores: Any,
    classes: list[str],
    video_id: str = "",
    top: int = 10,
    title: str | None = None,
) -> Path:
    """Write a per-video timeline of ground truth and the `top` predictions (paper Figs. 10-12)."""
    fig = timeline_figure(
        duration=duration, gt_segments=gt_segments, gt_labels=gt_labels,
        pred_segments=pred_segments, pred_labels=pred_labels, pred_scores=pred_scores,
        classes=classes, video_id=video_id, top=top, title=title,
    )
    return save_figure(fig, out_path)
