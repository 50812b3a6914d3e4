"""`gsmt analyze --gt FILE --pred FILE --out DIR`: error types, mAP by length and coverage, pictures."""

from __future__ import annotations

import argparse
import contextlib
import json
from pathlib import Path

from gsmt.annotations.load import load_annotations, report_faults
from gsmt.annotations.packaged import load_blocked
from gsmt.commands.common import blame_files, pick_subset, tiou_set
from gsmt.errors import GsmtError
from gsmt.evaluation import load_predictions
from gsmt.evaluation.tiou import meta_tiou
from gsmt.io.guard import check_output_location, lock_folder, refuse_overwriting_inputs
from gsmt.io.owned import OwnedFolder, discard_outputs
from gsmt.io.write import atomic_write_text, remove_temporaries
from gsmt.schema import option

HELP = "error analysis: false-positive types, mAP by action length and coverage"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--gt", required=True, help="ground truth (ActivityNet JSON or another annotation format)")
    p.add_argument("--pred", required=True, help="predictions (ActivityNet submission JSON)")
    p.add_argument("--subset", help="GT subset (default: the subset of the predicted videos)")
    p.add_argument("--tiou", type=option(float, gt=0, le=1), default=0.5,
                   help="tIoU threshold of the error types (default 0.5)")
    p.add_argument("--tiou-set", default=None, type=tiou_set,
                   help="thresholds of the bins' average mAP: anet | thumos | epic | multithumos | a "
                        "comma list (default: as gsmt eval, from the data)")
    p.add_argument("--blocked", metavar="NAME|FILE",
                   help="JSON list of video ids to leave out, or 'activitynet13' (as gsmt eval)")
    p.add_argument("--out", required=True, help="folder for analysis.json and the pictures")


def run(args: argparse.Namespace) -> int:
    analysis, pictures = run_analyze(args.gt, args.pred, args.out, subset=args.subset, tiou=args.tiou,
                                     tiou_set=args.tiou_set, blocked=args.blocked)
    print(analysis.format_table())
    print(f"wrote {Path(args.out) / 'analysis.json'}, " + ", ".join(p.name for p in pictures.values()))
    return 0


def run_analyze(gt_path: str | Path, pred_path: str | Path, out: str | Path, *, subset: str | None = None,
                tiou: float = 0.5, tiou_set: str | None = None, blocked: str | Path | None = None,
                lock: bool = True):
    """`gsmt analyze`: error types, mAP by ground-truth bin and missed ground truth, as
    `OUT/analysis.json` and pictures. Returns the `Analysis` and the picture paths.

    Files of those names are replaced only when `OUT/.gsmt-outputs.json` says gsmt analyze wrote
    them (`gsmt.io.owned`). `lock=False`: the caller holds `OUT`'s lock already (`gsmt demo`)."""
    from gsmt.evaluation.analysis import analyze_detection
    from gsmt.viz.analysis import ANALYSIS_PICTURES, plot_analysis

    if str(out) == "":  # Path("") is the working folder: checked before it becomes one
        check_output_location(out, "folder")
    out = Path(out)
    inputs = {"--gt": gt_path, "--pred": pred_path, "--blocked": blocked}
    planned = [out / "analysis.json", *(out / name for name in ANALYSIS_PICTURES.values())]
    for target in (out, *planned):
        refuse_overwriting_inputs(target, inputs)
    check_output_location(out, "folder")  # after: "is also an input" says more than "not a folder"
    if out.exists() and not out.is_dir():
        raise GsmtError(out, "--out must be a folder; this is a file")
    owned = OwnedFolder(out, "gsmt analyze")
    owned.check_can_write(planned)  # a user's analysis.json or fp_pie.png is never replaced
    gt = load_annotations(gt_path)
    report_faults(gt.faults, gt_path)
    tiou_set = tiou_set or meta_tiou(gt) or "anet"
    predictions = load_predictions(pred_path)
    blocked_ids: list[str] = load_blocked(blocked) if blocked else []
    subset = pick_subset(gt, predictions, subset, str(pred_path), str(gt_path))
    with blame_files(gt_path, pred_path):
        analysis = analyze_detection(gt, predictions, subset=subset, tiou=tiou, tiou_set=tiou_set,
                                     blocked=blocked_ids)
    document = analysis.to_json()
    with lock_folder(out, "gsmt analyze") if lock else contextlib.nullcontext():
        owned.check_can_write(planned)  # again under the lock: a file that appeared meanwhile is judged too
        remove_temporaries([*planned, owned.manifest])  # what a killed analyze left of its atomic writes
        try:
            atomic_write_text(out / "analysis.json", json.dumps(document, indent=2))
            pictures = plot_analysis(out, document)
            owned.record(planned)
        except BaseException as exc:
            # A write that failed (a full disk) or a stop leaves no half set: every planned file
            # present is gsmt analyze's (checked above, under the lock), so all of them go.
            discard_outputs(planned, owned)
            if isinstance(exc, GsmtError):
                raise GsmtError(exc.where, f"{exc.problem}; no analysis was left in {out}") from exc
            raise
    return analysis, pictures
