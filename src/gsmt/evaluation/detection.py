"""Detection mAP at tIoU thresholds, identical to the official ActivityNet `eval_detection.py`.

The official code ranks, matches and interpolates one prediction at a time; this module computes
the same numbers with array operations (DESIGN.md section 8):

- per class, predictions are ranked with the very same call as the official code
  (`scores.argsort()[::-1]` on the class's scores in file order), so equal scores rank the same;
- they are matched to the ground truth greedily, all groups and thresholds at once
  (`gsmt.evaluation.matching`), and AP is the official all-point interpolation.

THUMOS `ambiguous` segments live in `Video.ambiguous`, not in `Video.segments`: they are not
ground truth here, as in the official protocol. Zero-length ground truth is kept, and so is ground
truth with end < start (the official code counts it among the positives; the loader counts it as a
fault): with one such segment and one perfectly found one, AP is 0.5.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from gsmt.annotations.types import Annotations, Video
from gsmt.errors import GsmtError
from gsmt.evaluation.matching import (GroundTruth, _blocked_set, ground_truth_arrays, match_predictions,
                                      match_video_ids)
from gsmt.evaluation.predictions import FlatPredictions, _check_results, flatten_predictions, read_predictions
from gsmt.evaluation.recall import recall_metrics
from gsmt.evaluation.tiou import parse_tiou

if TYPE_CHECKING:
    from gsmt.evaluation.frames import FrameMetrics

log = logging.getLogger("gsmt.evaluation")


def interpolated_ap(tp: np.ndarray, npos: int) -> np.ndarray:
    """All-point interpolated AP per row of tp [T, n] (VOC 2011, as the official code)."""
    nt, n = tp.shape
    if n == 0 or npos == 0:
        return np.zeros(nt)
    tp_c = np.cumsum(tp, axis=1, dtype=np.float64)
    fp_c = np.cumsum(~tp, axis=1, dtype=np.float64)
    rec = tp_c / npos
    prec = tp_c / (tp_c + fp_c)
    zeros, ones = np.zeros((nt, 1)), np.ones((nt, 1))
    mprec = np.hstack([zeros, prec, zeros])
    mrec = np.hstack([zeros, rec, ones])
    mprec = np.maximum.accumulate(mprec[:, ::-1], axis=1)[:, ::-1]
    step = mrec[:, 1:] - mrec[:, :-1]
    return np.where(step != 0, step * mprec[:, 1:], 0.0).sum(axis=1)


@dataclass
class DetectionMetrics:
    tiou: np.ndarray  # [T]
    mAP: np.ndarray  # [T]
    average_mAP: float
    per_class_ap: dict[str, list[float]]  # label -> AP per tIoU (GT classes of the subset only)
    recall: dict = field(default_factory=dict)  # see gsmt.evaluation.recall.recall_metrics
    ignored_labels: int = 0  # predictions whose label is not a GT class of the subset
    num_predictions: int = 0  # predictions evaluated (blocked and ignored ones excluded)
    frame: FrameMetrics | None = None  # per-frame mAP (`gsmt eval --frame-map`), when asked for

    def to_json(self) -> dict:
        out = {
            "tiou": [float(t) for t in self.tiou],
            "mAP": [float(x) for x in self.mAP],
            "average_mAP": float(self.average_mAP),
            "per_class_ap": {k: [float(x) for x in v] for k, v in self.per_class_ap.items()},
            "recall": _jsonable(self.recall),
        }
        if self.frame is not None:
            out["frame_mAP"] = self.frame.to_json()
        return out

    def format_table(self) -> str:
        """A printable table: mAP (%) per tIoU and the average."""
        head = ["tIoU"] + [f"{t:.2f}" for t in self.tiou] + ["avg"]
        row = ["mAP"] + [f"{100 * x:.2f}" for x in self.mAP] + [f"{100 * self.average_mAP:.2f}"]
        widths = [max(len(a), len(b)) for a, b in zip(head, row)]
        fmt = " | ".join(f"{{:>{w}}}" for w in widths)
        lines = [fmt.format(*head), "-+-".join("-" * w for w in widths), fmt.format(*row)]
        for key in ("AR@1", "AR@5", "AR@10", "AR@100", "AUC"):
            if key in self.recall:
                lines.append(f"{key}: {100 * self.recall[key]:.2f}")
        if self.frame is not None:
            lines.append(self.frame.format_line())
        return "\n".join(lines)


def _jsonable(x):
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, (np.ndarray, list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.floating, float)):
        return float(x)
    if isinstance(x, (np.integer, int)):
        return int(x)
    return x


def _resolve_videos(ground_truth: Annotations | Sequence[Video], classes: Sequence[str] | None,
                    subset: str | Sequence[str] | None) -> tuple[list[Video], list[str]]:
    if isinstance(ground_truth, Annotations):
        videos, classes = list(ground_truth.videos), list(ground_truth.classes)
    else:
        videos = list(ground_truth)
        if classes is None:
            raise GsmtError("ground truth", "a list of videos needs `classes` (the label names)")
        classes = list(classes)
    if subset:
        names = {subset} if isinstance(subset, str) else set(subset)
        videos = [v for v in videos if v.subset in names]
    return videos, classes


def gather_inputs(ground_truth: Annotations | Sequence[Video], predictions: Mapping[str, list[dict]] | str | Path, *,
                  subset: str | Sequence[str] | None, blocked: Iterable[str], classes: Sequence[str] | None
                  ) -> tuple[list[Video], list[str], GroundTruth, FlatPredictions, np.ndarray]:
    """What evaluation and analysis both start from: the evaluated videos (subset minus blocked),
    the classes, their ground-truth arrays, the flattened predictions and, per prediction, whether
    its video is blocked."""
    if isinstance(predictions, (str, Path)):
        predictions = read_predictions(predictions)
    elif isinstance(predictions, Mapping) and isinstance(predictions.get("results"), Mapping):
        predictions = _check_results(predictions["results"], "predictions")
    block = _blocked_set(blocked)
    videos, classes = _resolve_videos(ground_truth, classes, subset)
    videos = [v for v in videos if v.id not in block]
    gt = ground_truth_arrays(videos, classes)
    if len(gt.label) == 0:
        raise GsmtError("ground truth", f"no ground-truth segment in subset {subset!r} "
                                        f"({len(videos)} videos after blocking)")
    try:
        flat = flatten_predictions(predictions, classes)
    except (KeyError, TypeError, ValueError) as e:
        raise GsmtError("predictions", "expected {video_id: [{'label': str, 'score': number, "
                                       f"'segment': [start, end]}}, ...]}}: {e!r}") from None
    pred_blocked = np.fromiter((v in block for v in flat.video_ids), dtype=bool,
                               count=len(flat.video_ids))[flat.video]
    return videos, classes, gt, flat, pred_blocked


AGNOSTIC_CLASS = "action"


def merge_labels(ground_truth: Annotations, predictions: Mapping[str, list]) -> tuple[Annotations, dict[str, list[dict]]]:
    """Ground truth and predictions with every label merged into one class, `action`: their
    mAP is class-agnostic, localization alone (`gsmt eval --class-agnostic`)."""
    videos = [replace(v, labels=np.zeros_like(v.labels)) for v in ground_truth.videos]
    merged = {vid: [{"label": AGNOSTIC_CLASS, "score": p["score"], "segment": p["segment"]} for p in preds]
              for vid, preds in predictions.items()}
    return replace(ground_truth, videos=videos, classes=[AGNOSTIC_CLASS]), merged


def evaluate_detection(ground_truth: Annotations | Sequence[Video],
                       predictions: Mapping[str, list[dict]] | str | Path, *,
                       subset: str | Sequence[str] | None = None,
                       tiou: str | Sequence[float] | np.ndarray = "anet",
                       blocked: Iterable[str] = (), classes: Sequence[str] | None = None,
                       with_recall: bool = True) -> DetectionMetrics:
    """mAP per tIoU exactly as the official ActivityNet evaluation, plus Recall@kx and AR@AN.

    Ground truth: the videos of `subset` (all when None) minus `blocked`; mAP averages over the
    classes present in it. Predictions on blocked videos are dropped, those on other videos are
    false positives, and a label that is not a ground-truth class is ignored and counted (the
    official code crashes there). A prediction id `x` matches the ground truth id `v_x` and back.
    """
    thr = parse_tiou(tiou)
    videos, classes, gt, flat, pred_blocked = gather_inputs(ground_truth, predictions, subset=subset,
                                                            blocked=blocked, classes=classes)
    known = np.zeros(len(classes) + 1, dtype=bool)
    known[gt.class_ids] = True
    label_ok = known[flat.label]  # -1 indexes the trailing False
    ignored = ~label_ok & ~pred_blocked
    n_ignored = int(ignored.sum())
    if n_ignored:
        ids = np.unique(flat.label[ignored])
        unknown = sorted({classes[c] for c in ids if c >= 0}
                         | (set(flat.unknown_labels) if ids[0] < 0 else set()))
        shown = ", ".join(repr(s) for s in unknown[:5]) + (", ..." if len(unknown) > 5 else "")
        log.warning("predictions: %d predictions with a label that is not a ground-truth class "
                    "of the evaluated videos were ignored (%s)", n_ignored, shown)
    keep = np.flatnonzero(label_ok & ~pred_blocked)
    p_gtvideo = match_video_ids(flat.video_ids, gt.video_ids)[flat.video[keep]]
    p_seg, p_label, p_score = flat.segments[keep], flat.label[keep], flat.score[keep]

    # per class: the official ranking call on the class's scores in file order
    by_label = np.argsort(p_label, kind="stable")
    labels_sorted = p_label[by_label]
    bounds = np.searchsorted(labels_sorted, np.append(gt.class_ids, np.iinfo(np.int64).max))
    ranked_parts = []
    for i in range(len(gt.class_ids)):
        idx = by_label[bounds[i]:bounds[i + 1]]
        ranked_parts.append(idx[p_score[idx].argsort()[::-1]])
    ranked = np.concatenate(ranked_parts) if ranked_parts else np.zeros(0, dtype=np.int64)
    tp = match_predictions(gt, p_gtvideo, p_seg, p_label, ranked, thr)

    npos = np.bincount(gt.label, minlength=len(classes))
    ap = np.zeros((len(thr), len(gt.class_ids)))
    start = 0
    for i, c in enumerate(gt.class_ids):
        end = start + len(ranked_parts[i])
        ap[:, i] = interpolated_ap(tp[:, start:end], int(npos[c]))
        start = end
    mAP = ap.mean(axis=1) if len(gt.class_ids) else np.zeros(len(thr))
    recall = {}
    if with_recall:
        recall = recall_metrics(gt, p_gtvideo, p_seg, p_label, p_score, thr)
    return DetectionMetrics(
        tiou=thr, mAP=mAP, average_mAP=float(mAP.mean()),
        per_class_ap={classes[c]: ap[:, i].tolist() for i, c in enumerate(gt.class_ids)},
        recall=recall, ignored_labels=n_ignored, num_predictions=len(keep))
