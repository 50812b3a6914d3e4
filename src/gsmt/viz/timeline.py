"""Prediction timelines of one video: ranked detections beside its ground truth, or one lane per class."""

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

# Past this many detections a picture gets one lane per class instead of one row per detection:
# 44 ranked rows are a 1200 x 2000 strip, 500 are unreadable; lanes keep the height of the classes.
RANKED_MAX = 20
# Ground truth split into more sub-rows than this (dense labels: MultiTHUMOS has about two actions
# at every moment, 50 instances a video) is unreadable in one row: lanes show each class's own.
GT_ROWS_MAX = 3
LAYOUTS = ("auto", "ranked", "lanes")


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
    top: int | None = 10,
    title: str | None = None,
    min_score: float = 0.0,
    layout: str = "auto",
) -> Figure:
    """The timeline Figure of the predictions scored `min_score` or more (the `top` best of them;
    None: all). `layout="ranked"`: one ground-truth row, then one row per prediction by score;
    `"lanes"`: one lane per class, bar height the score (long videos, dense labels); `"auto"`:
    ranked up to `RANKED_MAX` predictions and `GT_ROWS_MAX` overlapping ground-truth instances,
    lanes past either. `gt_segments=None` (no ground truth exists, as for `gsmt detect`) draws no
    ground-truth row."""
    where = video_id or "timeline"
    if not (duration > 0 and math.isfinite(duration)):
        raise GsmtError(where, f"duration must be a positive number, got {duration}")
    if layout not in LAYOUTS:
        raise GsmtError(where, f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    has_gt = gt_segments is not None
    gt = _as_segments(gt_segments if has_gt else np.zeros((0, 2)), where, "gt_segments")
    gt_lab = _as_vector(gt_labels if has_gt else np.zeros(0), len(gt), where, "gt_labels", np.int64)
    pred = _as_segments(pred_segments, where, "pred_segments")
    pred_lab = _as_vector(pred_labels, len(pred), where, "pred_labels", np.int64)
    pred_sc = _as_vector(pred_scores, len(pred), where, "pred_scores", np.float64)

    n_total = len(pred)
    # stable sort keeps the input order among equal scores
    order = np.argsort(-pred_sc, kind="stable")
    order = order[pred_sc[order] >= min_score][: None if top is None else max(int(top), 0)]
    pred, pred_lab, pred_sc = pred[order], pred_lab[order], pred_sc[order]
    if layout == "auto":
        crowded = has_gt and len(gt) > GT_ROWS_MAX and gt_lanes(gt)[1] > GT_ROWS_MAX
        layout = "lanes" if len(pred) > RANKED_MAX or crowded else "ranked"
    colors = class_colors(np.concatenate([gt_lab, pred_lab]), len(classes))
    if title is None:
        above = f" scored >= {min_score:.2f}" if min_score > 0 else ""
        shown = (f"{len(pred)} of {n_total} predictions{above}" if layout == "lanes"
                 else f"top {len(pred)} of {n_total} predictions{above}")
        title = f"{video_id}  ({shown})" if video_id else shown
    if layout == "lanes":
        return _lanes_figure(duration, gt if has_gt else None, gt_lab, pred, pred_lab, pred_sc, classes,
                             colors, title, min_score)
    return _ranked_figure(duration, gt if has_gt else None, gt_lab, pred, pred_lab, pred_sc, classes,
                          colors, title)


def _ranked_figure(duration, gt, gt_lab, pred, pred_lab, pred_sc, classes, colors, title) -> Figure:
    """One ground-truth row (when `gt` is not None), then one row per prediction, best first."""
    first = 0 if gt is None else 1  # the row of the best prediction
    n_rows = first + max(len(pred), 1)
    fig = Figure(figsize=(10.0, max(3.0, 1.4 + 0.32 * n_rows)), dpi=DPI, layout="constrained")
    ax = fig.add_subplot()
    height = 0.7

    # ground truth on row 0, split into lanes so overlapping instances (THUMOS's CliffDiving
    # and Diving twins) are all visible
    if gt is not None and len(gt):
        lane, n_lanes = gt_lanes(gt)
        lane_h = height / n_lanes
        ax.barh(
            -height / 2 + (lane + 0.5) * lane_h, gt[:, 1] - gt[:, 0], left=gt[:, 0], height=lane_h,
            color=[colors[int(k)] for k in gt_lab], edgecolor="black", linewidth=0.8,
        )
        # faint boundary guides let the eye compare every prediction with the ground truth
        ax.vlines(np.unique(gt.ravel()), -0.5, n_rows - 0.5, colors="0.6", linestyles=":",
                  linewidth=0.8, zorder=0)
    elif gt is not None:
        ax.text(0.5 * duration, 0, "no ground truth", ha="center", va="center", color="0.4",
                fontsize=9, fontstyle="italic")

    if len(pred):
        rows = np.arange(first, first + len(pred))
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
        ax.text(0.5 * duration, first, "no predictions", ha="center", va="center", color="0.4",
                fontsize=9, fontstyle="italic")
        n_rows = first + 1 if gt is None else 2

    ax.set_xlim(0.0, duration)
    ax.set_ylim(n_rows - 0.5, -0.5)  # ground truth on top, best prediction next
    ax.set_yticks(np.arange(first + len(pred)))
    ax.set_yticklabels(([_GT_ROW_LABEL] if gt is not None else [])
                       + [f"#{r + 1} {s:.2f}" for r, s in enumerate(pred_sc)])
    if gt is not None:
        ax.get_yticklabels()[0].set_fontweight("bold")
    ax.set_xlabel("time (s)")
    ax.set_ylabel("prediction rank, score")
    ax.grid(axis="x", alpha=0.3)
    ax.set_axisbelow(True)
    ax.set_title(title)

    present = sorted(colors)
    if present:
        handles = [Patch(facecolor=colors[k], edgecolor="0.25", label=_class_name(k, classes))
                   for k in present]
        # outside the axes so it never hides a bar
        fig.legend(handles=handles, loc="outside right upper", fontsize=8, title="class",
                   title_fontsize=9, frameon=False)
    return fig


def _lanes_figure(duration, gt, gt_lab, pred, pred_lab, pred_sc, classes, colors, title, lowest) -> Figure:
    """One lane per class present (by class id): each prediction a bar rising from the lane's
    floor to a height that grows with its score (from a quarter of the lane at `lowest`, the
    lowest score shown, to the whole lane at 1), drawn best first so that a weaker overlapping
    prediction stays visible in front of a stronger one; ground truth, when given, a black strip
    under the bars of its class."""
    present = sorted(colors)
    lane_of = {k: i for i, k in enumerate(present)}
    n_lanes = max(len(present), 1)
    fig = Figure(figsize=(12.0, max(2.6, 1.3 + 0.42 * n_lanes)), dpi=DPI, layout="constrained")
    ax = fig.add_subplot()
    floor, full = 0.3, 0.72  # in lane units: bars stand on y + floor, a score of 1 is `full` tall
    if len(pred):
        lanes = np.array([lane_of[int(k)] for k in pred_lab], dtype=np.float64)
        lo = lowest if lowest < 1.0 else 0.0
        tall = full * (0.25 + 0.75 * np.clip((pred_sc - lo) / (1.0 - lo), 0.0, 1.0))
        ax.barh(lanes + floor - tall / 2, pred[:, 1] - pred[:, 0], left=pred[:, 0], height=tall,
                color=[colors[int(k)] for k in pred_lab], edgecolor="0.2", linewidth=0.4)
    else:
        ax.text(0.5 * duration, 0, "no predictions", ha="center", va="center", color="0.4",
                fontsize=9, fontstyle="italic")
    if gt is not None and len(gt):
        ax.barh([lane_of[int(k)] + floor + 0.09 for k in gt_lab], gt[:, 1] - gt[:, 0], left=gt[:, 0],
                height=0.12, color="black", edgecolor="none")
    for i in range(1, n_lanes):
        ax.axhline(i - 0.5, color="0.85", linewidth=0.6, zorder=0)
    counts = np.bincount([lane_of[int(k)] for k in pred_lab], minlength=n_lanes) if len(pred) else \
        np.zeros(n_lanes, np.int64)
    ax.set_xlim(0.0, duration)
    ax.set_ylim(n_lanes - 0.5, -0.5)
    ax.set_yticks(np.arange(len(present)))
    ax.set_yticklabels([f"{_class_name(k, classes)} ({counts[lane_of[k]]})" for k in present], fontsize=8)
    for tick, k in zip(ax.get_yticklabels(), present):
        tick.set_color(tuple(0.75 * c for c in colors[k][:3]))
    ax.set_xlabel("time (s)")
    ax.set_ylabel(f"class (predictions); bar height: score {lowest:.2f} to 1"
                  + ("; black: ground truth" if gt is not None else ""), fontsize=8)
    ax.grid(axis="x", alpha=0.3)
    ax.set_axisbelow(True)
    ax.set_title(title)
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
    top: int | None = 10,
    title: str | None = None,
    min_score: float = 0.0,
    layout: str = "auto",
) -> Path:
    """Write a per-video timeline of ground truth and the `top` predictions (paper Figs. 10-12);
    the arguments are `timeline_figure`'s."""
    fig = timeline_figure(
        duration=duration, gt_segments=gt_segments, gt_labels=gt_labels,
        pred_segments=pred_segments, pred_labels=pred_labels, pred_scores=pred_scores,
        classes=classes, video_id=video_id, top=top, title=title, min_score=min_score, layout=layout,
    )
    return save_figure(fig, out_path)
