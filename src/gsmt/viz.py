"""Pictures: prediction timelines, global-mask heatmaps and training curves (DESIGN.md section 2).

Every function takes NumPy arrays, draws on a `matplotlib.figure.Figure` with the Agg canvas (no
pyplot global state, so it is safe in threads and on headless machines) and writes the file
atomically. The `*_figure` functions return the Figure unsaved, for tests and notebooks.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import ListedColormap, to_rgba
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from gsmt.data.compressed import read_capped
from gsmt.data.readers import decode_utf8
from gsmt.errors import GsmtError

DPI = 120
_FORMATS = {".png": "png", ".pdf": "pdf", ".svg": "svg"}
_GT_ROW_LABEL = "ground truth"


# ----------------------------------------------------------------------------- shared helpers


def save_figure(fig: Figure, out_path: str | Path, *, dpi: int = DPI) -> Path:
    """Write `fig` to `out_path` through a temp file in the same folder and an atomic rename."""
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fmt = _FORMATS.get(out.suffix.lower(), "png")
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            FigureCanvasAgg(fig)  # attaches the canvas; Figure() alone has no renderer
            fig.savefig(fh, format=fmt, dpi=dpi)
        # mkstemp makes the file 0600; give it the mode a plain open() would
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return out


def class_colors(label_ids: np.ndarray, num_classes: int) -> dict[int, tuple]:
    """A colour per class id: fixed by id up to 20 classes, else by rank among `label_ids`.

    With up to 20 classes every figure uses the same colour for a class; beyond that a
    qualitative map cannot keep ids apart, so the classes present in this figure get distinct
    colours instead (collisions only past 20 classes in one figure).
    """
    ids = sorted({int(i) for i in np.asarray(label_ids).ravel()})
    if num_classes <= 10:
        cmap, slot = _qualitative("tab10"), {i: i for i in ids}
    elif num_classes <= 20:
        cmap, slot = _qualitative("tab20"), {i: i for i in ids}
    else:
        cmap, slot = _qualitative("tab20"), {i: r for r, i in enumerate(ids)}
    n = len(cmap.colors)
    return {i: to_rgba(cmap.colors[slot[i] % n]) for i in ids}


def _qualitative(name: str) -> ListedColormap:
    cmap = colormaps[name]
    return cmap if isinstance(cmap, ListedColormap) else ListedColormap(cmap(np.linspace(0, 1, 20)))


def _class_name(label: int, classes: list[str]) -> str:
    return classes[label] if 0 <= label < len(classes) else f"class {label}"


def _as_segments(x: Any, where: str, what: str) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.size == 0:
        return arr.reshape(0, 2)
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise GsmtError(where, f"{what} must have shape [N, 2], got {list(arr.shape)}")
    return arr


def _as_vector(x: Any, n: int, where: str, what: str, dtype: Any) -> np.ndarray:
    arr = np.asarray(x, dtype=dtype).reshape(-1)
    if arr.shape[0] != n:
        raise GsmtError(where, f"{what} has {arr.shape[0]} entries for {n} segments")
    return arr


# ----------------------------------------------------------------------------- (a) timeline


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


# ----------------------------------------------------------------------------- (b) global masks


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


# ----------------------------------------------------------------------------- (c) curves


def read_jsonl(path: str | Path) -> list[dict]:
    """The dict records of a JSON-lines file; blank lines are skipped."""
    path = Path(path)
    try:
        text = decode_utf8(read_capped(path), path)  # bounded: `--log /dev/zero` is refused
    except GsmtError as exc:
        raise GsmtError(path, f"cannot read run log ({exc.problem})") from None
    lines = text.splitlines()
    records = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except (json.JSONDecodeError, RecursionError):
            # a run killed mid-write leaves a torn last line; anything earlier is corruption
            if n == len(lines):
                continue
            raise GsmtError(path, f"line {n} is not JSON") from None
        if isinstance(rec, dict):
            records.append(rec)
    return records


def _number(x: Any) -> float | None:
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return None
    return float(x) if math.isfinite(x) else None


def epoch_series(records: list[dict], key: str, split: str | None) -> tuple[np.ndarray, np.ndarray]:
    """Mean of `key` per epoch over records of `split` ("train" also takes records without one)."""
    per_epoch: dict[float, list[float]] = defaultdict(list)
    for rec in records:
        epoch, value = _number(rec.get("epoch")), _number(rec.get(key))
        rec_split = rec.get("split")
        if split == "train" and rec_split not in (None, "train"):
            continue
        if split == "val" and rec_split != "val":
            continue
        if epoch is not None and value is not None:
            per_epoch[epoch].append(value)
    epochs = np.array(sorted(per_epoch), dtype=np.float64)
    return epochs, np.array([np.mean(per_epoch[e]) for e in epochs], dtype=np.float64)


def _first_series(records: list[dict], options: list[tuple[str, str | None]]):
    for key, split in options:
        e, v = epoch_series(records, key, split)
        if len(e):
            return e, v
    return np.zeros(0), np.zeros(0)


def curves_figure(records: list[dict], log_path: str | Path = "run log") -> Figure:
    """Loss curves per epoch and, when logged, validation mAP in a second panel."""
    train = epoch_series(records, "loss", "train")
    val = _first_series(records, [("val_loss", None), ("loss", "val")])
    parts = sorted({k for r in records if r.get("split") in (None, "train")
                    for k in r if k.startswith("loss_")})
    part_series = [(k, *epoch_series(records, k, "train")) for k in parts]
    part_series = [p for p in part_series if len(p[1])]
    mAP = _first_series(records, [("val_mAP", None), ("val_average_mAP", None),
                                  ("mAP", "val"), ("average_mAP", "val")])
    if not (len(train[0]) or len(val[0]) or len(mAP[0]) or part_series):
        raise GsmtError(log_path, "no epochs logged")

    with_map = len(mAP[0]) > 0
    fig = Figure(figsize=(10.0, 4.0), dpi=DPI, layout="constrained")
    axes = fig.subplots(1, 2 if with_map else 1, squeeze=False)[0]
    ax = axes[0]
    if len(train[0]):
        ax.plot(*train, "o-", color="tab:blue", markersize=3, linewidth=1.8, label="train loss")
    part_colors = ["tab:cyan", "tab:purple", "tab:olive", "tab:brown", "tab:orange", "tab:pink", "tab:gray", "black"]
    for (key, e, v), color in zip(part_series, part_colors * 2):
        ax.plot(e, v, "--", color=color, linewidth=1.0, label=f"train {key}")
    if len(val[0]):
        ax.plot(*val, "s-", color="tab:red", markersize=3, linewidth=1.8, label="val loss")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.set_title("loss")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)

    if with_map:
        ax = axes[1]
        e, v = mAP
        ax.plot(e, v, "o-", color="tab:green", markersize=3, linewidth=1.8, label="val mAP")
        best = int(np.argmax(v))
        ax.plot([e[best]], [v[best]], "*", color="tab:green", markersize=12,
                label=f"best {v[best]:.4g} (epoch {e[best]:g})")
        ax.set_xlabel("epoch")
        ax.set_ylabel("mAP")
        ax.set_title("validation mAP")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    for ax in axes:
        ax.xaxis.get_major_locator().set_params(integer=True)
    return fig


def plot_curves(out_path: str | Path, log_path: str | Path) -> Path:
    """Write training and validation curves from a JSON-lines run log."""
    return save_figure(curves_figure(read_jsonl(log_path), log_path), out_path)


# ----------------------------------------------------------------------------- (d) error analysis
# Pictures of `gsmt analyze` (gsmt.evaluation.analysis), drawn from its analysis.json document.

ERROR_COLORS = {
    "true_positive": "#2ca02c",
    "double_detection": "#9467bd",
    "wrong_label": "#1f77b4",
    "localization": "#ff7f0e",
    "confusion": "#d62728",
    "background": "#7f7f7f",
}
ANALYSIS_PICTURES = {"profile": "fp_profile.png", "pie": "fp_pie.png", "bins": "map_bins.png"}
_BIN_COLORS = {"length": "#f0027f", "coverage": "#386cb0"}
_BIN_RANGES = {
    "length": ("(0, 3] s", "(3, 6] s", "(6, 12] s", "(12, 18] s", "> 18 s"),
    "coverage": ("(0, 2]%", "(2, 4]%", "(4, 6]%", "(6, 8]%", "> 8%"),
}


def _type_name(key: str) -> str:
    return key.replace("_", " ")


def fp_profile_figure(analysis: dict) -> Figure:
    """Stacked bars of the six prediction types per block of G predictions (DETAD's FP profile)."""
    g, profile = analysis["num_gt"], analysis["profile"]
    x = np.arange(1, len(profile) + 1)
    fig = Figure(figsize=(9.0, 4.2), dpi=DPI, layout="constrained")
    ax = fig.add_subplot()
    bottom = np.zeros(len(profile))
    for key, color in ERROR_COLORS.items():
        share = np.array([100.0 * block[key] / g for block in profile])
        ax.bar(x, share, bottom=bottom, color=color, edgecolor="white", linewidth=0.5,
               label=_type_name(key))
        bottom += share
    ax.set_xticks(x)
    ax.set_xticklabels([f"{k}G" for k in x])
    ax.set_xlim(0.4, len(profile) + 0.6)
    ax.set_ylim(0.0, 100.0)
    ax.set_xlabel(f"block of G = {g:,} predictions, by descending score")
    ax.set_ylabel("share of the block (%)")
    ax.set_title(f"prediction types of the top {analysis['num_predictions']:,} predictions "
                 f"(tIoU {analysis['tiou']:g})")
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    if not analysis["num_predictions"]:
        ax.text(0.5, 0.5, "no predictions", transform=ax.transAxes, ha="center", va="center",
                color="0.4", fontstyle="italic")
    # listed top to bottom as stacked
    handles = [Patch(facecolor=c, label=_type_name(k)) for k, c in reversed(ERROR_COLORS.items())]
    fig.legend(handles=handles, loc="outside right upper", fontsize=8, frameon=False)
    return fig


def fp_pie_figure(analysis: dict) -> Figure:
    """Pie of the false-positive types among the top G predictions (true positives left out)."""
    block = analysis["profile"][0]
    errors = [k for k in ERROR_COLORS if k != "true_positive"]
    counts = np.array([block[k] for k in errors], dtype=np.float64)
    total = int(counts.sum())
    fig = Figure(figsize=(6.8, 4.2), dpi=DPI, layout="constrained")
    ax = fig.add_subplot()
    shown = counts > 0
    if total:
        ax.pie(counts[shown], colors=[ERROR_COLORS[k] for k, s in zip(errors, shown) if s], startangle=90,
               counterclock=False, autopct=lambda p: f"{p:.0f}%" if p >= 4 else "",
               wedgeprops={"edgecolor": "white", "linewidth": 1}, textprops={"color": "white", "fontsize": 9})
    else:
        ax.text(0.5, 0.5, "no false positives", transform=ax.transAxes, ha="center", va="center",
                color="0.4", fontstyle="italic")
        ax.set_axis_off()
    ax.set_aspect("equal")
    ax.set_title(f"false positives among the top G = {analysis['num_gt']:,} predictions\n"
                 f"{total:,} errors, {block['true_positive']:,} true positives (tIoU {analysis['tiou']:g})",
                 fontsize=10)
    handles = [Patch(facecolor=ERROR_COLORS[k],
                     label=f"{_type_name(k)}: {block[k]} ({100 * block[k] / total if total else 0:.1f}%)")
               for k in errors]
    fig.legend(handles=handles, loc="outside right center", fontsize=8, frameon=False)
    return fig


def map_bins_figure(analysis: dict) -> Figure:
    """Average mAP per ground-truth length bin and coverage bin, bars (DETAD's sensitivity plot)."""
    fig = Figure(figsize=(10.0, 4.2), dpi=DPI, layout="constrained")
    axes = fig.subplots(1, 2, sharey=True)
    thr = analysis["mAP_tiou"]
    span = f"{thr[0]:g}" if len(thr) == 1 else f"{thr[0]:g}:{thr[-1]:g}"
    base = 100.0 * analysis["average_mAP"]
    values = [v["average_mAP"] for key in ("by_length", "by_coverage") for v in analysis[key].values()]
    top = max([100.0 * v for v in values if v is not None] + [base, 1.0])
    for ax, kind in zip(axes, ("length", "coverage")):
        bins = analysis[f"by_{kind}"]
        names = list(bins)
        x = np.arange(len(names))
        heights = [100.0 * bins[b]["average_mAP"] if bins[b]["average_mAP"] is not None else 0.0 for b in names]
        ax.bar(x, heights, color=_BIN_COLORS[kind], width=0.7)
        for xi, b, h in zip(x, names, heights):
            text = "no GT" if bins[b]["average_mAP"] is None else f"{h:.1f}"
            ax.text(xi, h + 0.015 * top, text, ha="center", va="bottom", fontsize=8,
                    color="0.4" if text == "no GT" else "black")
        ax.axhline(base, color="black", linestyle="--", linewidth=1.0, label=f"all ground truth: {base:.1f}")
        ax.set_xticks(x)
        ax.set_xticklabels([f"{b}\n{r}\nn={bins[b]['instances']}" for b, r in zip(names, _BIN_RANGES[kind])],
                           fontsize=8)
        ax.set_title(f"by ground-truth {kind}" + (" (length / video duration)" if kind == "coverage" else ""),
                     fontsize=10)
        ax.set_xlabel(f"{kind} bin")
        ax.grid(axis="y", alpha=0.3)
        ax.set_axisbelow(True)
        ax.legend(fontsize=8, loc="upper left")
    axes[0].set_ylabel(f"average mAP (%), tIoU {span}")
    axes[0].set_ylim(0.0, min(100.0, 1.2 * top) if top < 100.0 else 105.0)
    fig.suptitle("mAP by ground-truth bin (predictions matching other bins' ground truth left out)", fontsize=11)
    return fig


def plot_analysis(out_dir: str | Path, analysis: dict) -> dict[str, Path]:
    """Write the profile, pie and bin pictures of an analysis.json document into `out_dir`."""
    out = Path(out_dir)
    figures = {"profile": fp_profile_figure, "pie": fp_pie_figure, "bins": map_bins_figure}
    return {key: save_figure(make(analysis), out / ANALYSIS_PICTURES[key]) for key, make in figures.items()}
