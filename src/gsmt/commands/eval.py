"""`gsmt eval --gt FILE --pred FILE`: mAP at each tIoU, recall, per-class AP, per-frame mAP (no torch)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from gsmt.annotations.load import load_annotations, report_faults
from gsmt.evaluation.tiou import meta_tiou
from gsmt.annotations.packaged import load_blocked
from gsmt.commands.common import blame_files, pick_subset, tiou_set
from gsmt.evaluation import DetectionMetrics, evaluate_detection, evaluate_frames, merge_labels
from gsmt.evaluation.frames import CHARADES_FRAMES_PER_VIDEO, DEFAULT_FRAME_RATE, MAX_FRAMES_PER_VIDEO
from gsmt.evaluation.predictions import read_predictions
from gsmt.io.guard import check_output_location, refuse_overwriting_inputs
from gsmt.io.read import MAX_FPS
from gsmt.io.write import atomic_write_text
from gsmt.schema import option

HELP = "mAP at tIoU thresholds (identical to the official ActivityNet code)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--gt", required=True, help="ground truth (ActivityNet JSON or another annotation format)")
    p.add_argument("--pred", required=True, help="predictions (ActivityNet submission JSON)")
    p.add_argument("--subset", help="GT subset (default: the subset of the predicted videos)")
    p.add_argument("--tiou", default=None, type=tiou_set,
                   help="anet | thumos | epic | multithumos | a comma list (default: from the data)")
    p.add_argument("--blocked", metavar="NAME|FILE",
                   help="JSON list of video ids to leave out, or 'activitynet13' for the packaged list of "
                        "the 198 ActivityNet-1.3 validation videos the BSN/BMN features lack")
    p.add_argument("--class-agnostic", action="store_true",
                   help="merge every label into one class: mAP of localization alone")
    p.add_argument("--frame-map", action="store_true",
                   help="also the per-frame mAP of dense labelling (MultiTHUMOS, Charades; "
                        "rules in gsmt/evaluation/frames.py)")
    frames = p.add_mutually_exclusive_group()
    frames.add_argument("--frame-rate", type=option(float, gt=0, le=MAX_FPS), metavar="F",
                        help=f"the per-frame mAP samples F frames per second (default {DEFAULT_FRAME_RATE:g}; "
                             "implies --frame-map)")
    frames.add_argument("--frames-per-video", type=option(int, ge=1, le=MAX_FRAMES_PER_VIDEO), metavar="N",
                        help="the per-frame mAP samples N equally spaced frames per video instead (Charades' "
                             f"official rule: {CHARADES_FRAMES_PER_VIDEO}; implies --frame-map)")
    p.add_argument("--json", help="write the metrics as JSON here")


def run(args: argparse.Namespace) -> int:
    frame_map = args.frame_map or args.frame_rate is not None or args.frames_per_video is not None
    metrics = run_eval(args.gt, args.pred, subset=args.subset, tiou=args.tiou, blocked=args.blocked,
                       json_out=args.json, class_agnostic=args.class_agnostic, frame_map=frame_map,
                       frame_rate=args.frame_rate, frames_per_video=args.frames_per_video)
    print(metrics.format_table())
    return 0


def run_eval(gt_path: str | Path, pred_path: str | Path, *, subset: str | None = None, tiou: str | None = None,
             blocked: str | Path | None = None, json_out: str | Path | None = None,
             class_agnostic: bool = False, frame_map: bool = False, frame_rate: float | None = None,
             frames_per_video: int | None = None) -> DetectionMetrics:
    """`gsmt eval`: mAP at each tIoU, recall, per-class AP; optionally written as JSON. With
    `class_agnostic`, every label counts as one class (localization alone). With `frame_map`, the
    per-frame mAP too (`metrics.frame`, `frame_mAP` in the JSON), sampled at `frame_rate` or
    `frames_per_video` (`gsmt.evaluation.frames`)."""
    check_output_location(json_out, "file", flag="--json")
    refuse_overwriting_inputs(json_out, {"--gt": gt_path, "--pred": pred_path, "--blocked": blocked},
                              flag="--json")
    gt = load_annotations(gt_path)
    report_faults(gt.faults, gt_path)
    tiou = tiou or meta_tiou(gt) or "anet"  # a bad `gsmt.tiou` field names the ground truth
    predictions = read_predictions(pred_path)  # msgspec when it can: the same checks, 3x faster
    # A JSON list file (gzip allowed) or a packaged list by name (`activitynet13`: the 198 ids).
    # Every input is read before any is compared with another: a bad file is named as such.
    blocked_ids: list[str] = load_blocked(blocked) if blocked else []
    subset = pick_subset(gt, predictions, subset, str(pred_path), str(gt_path))
    if class_agnostic:
        gt, predictions = merge_labels(gt, predictions)
    with blame_files(gt_path, pred_path):
        metrics = evaluate_detection(gt, predictions, subset=subset, tiou=tiou, blocked=blocked_ids)
        if frame_map:
            metrics.frame = evaluate_frames(gt, predictions, subset=subset, blocked=blocked_ids,
                                            frame_rate=frame_rate, frames_per_video=frames_per_video)
    if json_out:
        atomic_write_text(json_out, json.dumps(metrics.to_json(), indent=2))
    return metrics
