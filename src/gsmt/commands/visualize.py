"""`gsmt visualize`: a timeline, a global-mask heatmap or training curves, as one picture file."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from gsmt.annotations.types import Video
from gsmt.annotations.load import load_annotations
from gsmt.errors import GsmtError
from gsmt.evaluation import load_predictions
from gsmt.io.guard import check_output_location, refuse_overwriting_inputs
from gsmt.schema import option

HELP = "pictures: timeline, global mask heatmap, training curves"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, help="PNG file to write")
    p.add_argument("--gt", help="ground truth file (timeline; mask heatmap's target)")
    p.add_argument("--pred", help="predictions JSON (timeline)")
    p.add_argument("--video", help="video id")
    p.add_argument("--checkpoint", help="run directory or checkpoint (mask heatmap)")
    p.add_argument("--features", help="feature file of one video (mask heatmap)")
    p.add_argument("--log", help="run directory or its log.jsonl (training curves)")
    p.add_argument("--top", type=option(int, ge=1), default=10, help="predictions shown on the timeline")


def run(args: argparse.Namespace) -> int:
    path = visualize(args.out, gt=args.gt, pred=args.pred, video=args.video, checkpoint=args.checkpoint,
                     features=args.features, log=args.log, top=args.top)
    print(f"wrote {path}")
    return 0


def visualize(out: str | Path, *, gt: str | None = None, pred: str | None = None, video: str | None = None,
              checkpoint: str | None = None, features: str | None = None, log: str | None = None,
              top: int = 10) -> Path:
    """`gsmt visualize`: a timeline (--gt --pred --video), a mask heatmap (--checkpoint --features)
    or training curves (--log)."""
    from gsmt.engine.rundir import checkpoint_inputs
    from gsmt.viz.curves import plot_curves

    check_output_location(out, "file")
    log_file = None
    if log:
        log_file = Path(log) / "log.jsonl" if Path(log).is_dir() else Path(log)
    refuse_overwriting_inputs(out, {
        "--gt": gt, "--pred": pred, "--features": features, "--log": log_file,
        "--checkpoint": checkpoint_inputs(checkpoint) if checkpoint and Path(checkpoint).exists()
        else None})
    if log_file is not None:
        return plot_curves(out, log_file)
    if checkpoint and features:
        return mask_picture(out, checkpoint, features, gt_path=gt, video_id=video)
    if gt and pred and video:
        truth = load_annotations(gt)
        shown = truth.by_id().get(video)
        if shown is None:
            raise GsmtError(gt, f"no video '{video}'")
        return timeline_picture(out, shown, truth.classes, load_predictions(pred).get(video, []), top=top)
    raise GsmtError("visualize", "give --gt --pred --video (timeline), --checkpoint --features (mask) or --log (curves)")


def timeline_picture(out, video: Video, classes: list[str], detections: list[dict], *, top: int = 10) -> Path:
    from gsmt.viz.timeline import plot_timeline

    names = list(classes) + sorted({d["label"] for d in detections} - set(classes))
    index = {name: i for i, name in enumerate(names)}
    return plot_timeline(
        out, duration=video.duration, gt_segments=video.segments, gt_labels=video.labels,
        pred_segments=np.array([d["segment"] for d in detections], dtype=np.float64).reshape(-1, 2),
        pred_labels=np.array([index[d["label"]] for d in detections], dtype=np.int64),
        pred_scores=np.array([d["score"] for d in detections], dtype=np.float64),
        classes=names, video_id=video.id, top=top)


def mask_picture(out, checkpoint, features, *, gt_path=None, video_id=None) -> Path:
    """The predicted global mask of a video's first sample beside its ground-truth mask."""
    from gsmt.api import Localizer
    from gsmt.data.targets import make_targets
    from gsmt.viz.masks import plot_masks

    loc = Localizer.from_checkpoint(checkpoint)
    video = None
    if gt_path:
        gt = load_annotations(gt_path)
        video = gt.by_id().get(video_id or Path(features).stem)
        if video is None:
            raise GsmtError(gt_path, f"no video '{video_id or Path(features).stem}'")
    raw = loc.raw_outputs(features, duration=video.duration if video else None,
                          fps=video.fps if video else None, feature_stride=video.feature_stride if video else None,
                          feature_window=video.feature_window if video else None)
    if "masks" not in raw:
        raise GsmtError(checkpoint, "this model has no mask branch")
    gt_mask = None
    if video is not None:
        span_end = min(video.duration, float(raw["t_end"][raw["valid"]].max()))
        targets = make_targets(video.segments, video.labels, raw["t_start"], raw["t_end"], raw["valid"],
                               len(loc.classes), span=(0.0, span_end), ambiguous=video.ambiguous)
        gt_mask = targets.mask
    actionness = raw["actionness"]
    return plot_masks(out, pred_mask=raw["masks"], gt_mask=gt_mask, valid=raw["valid"],
                          title=f"global mask M of {raw['video'].id}", actionness=actionness)
