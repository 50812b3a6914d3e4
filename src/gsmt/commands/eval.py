"""`gsmt eval --gt FILE --pred FILE`: mAP at each tIoU, recall, per-class AP (no torch)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from gsmt.annotations.load import load_annotations, report_faults
from gsmt.evaluation.tiou import meta_tiou
from gsmt.annotations.packaged import load_blocked
from gsmt.commands.common import blame_files, pick_subset, tiou_set
from gsmt.evaluation import DetectionMetrics, evaluate_detection, merge_labels
from gsmt.evaluation.predictions import read_predictions
from gsmt.io.guard import check_output_location, refuse_overwriting_inputs
from gsmt.io.write import atomic_write_text

HELP = "mAP at tIoU thresholds (identical to the official ActivityNet code)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--gt", required=True, help="ground truth (ActivityNet JSON or another annotation format)")
    p.add_argument("--pred", required=True, help="predictions (ActivityNet submission JSON)")
    p.add_argument("--subset", help="GT subset (default: the subset of the predicted videos)")
    p.add_argument("--tiou", default=None, type=tiou_set,
                   help="anet | thumos | epic | a comma list (default: from the data)")
    p.add_argument("--blocked", metavar="NAME|FILE",
                   help="JSON list of video ids to leave out, or 'activitynet13' for the packaged list of "
                        "the 198 ActivityNet-1.3 validation videos the BSN/BMN features lack")
    p.add_argument("--class-agnostic", action="store_true",
                   help="merge every label into one class: mAP of localization alone")
    p.add_argument("--json", help="write the metrics as JSON here")


def run(args: argparse.Namespace) -> int:
    metrics = run_eval(args.gt, args.pred, subset=args.subset, tiou=args.tiou, blocked=args.blocked,
                       json_out=args.json, class_agnostic=args.class_agnostic)
    print(metrics.format_table())
    return 0


def run_eval(gt_path: str | Path, pred_path: str | Path, *, subset: str | None = None, tiou: str | None = None,
             blocked: str | Path | None = None, json_out: str | Path | None = None,
             class_agnostic: bool = False) -> DetectionMetrics:
    """`gsmt eval`: mAP at each tIoU, recall, per-class AP; optionally written as JSON. With
    `class_agnostic`, every label counts as one class (localization alone)."""
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
    if json_out:
        atomic_write_text(json_out, json.dumps(metrics.to_json(), indent=2))
    return metrics
