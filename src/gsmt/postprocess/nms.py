"""1-D segment IoU and greedy Soft-NMS (Bodla et al. 2017), per class or class-agnostic."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from gsmt.errors import GsmtError
from gsmt.postprocess.decode import Detections

METHODS = ("gaussian", "linear")


def segment_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every segment of a [N, 2] with every segment of b [M, 2] -> [N, M].

    The intersection is clipped at 0. Two zero-length segments give 0/0, taken as 0 here (so a
    zero-length detection never suppresses anything); the evaluator follows its own official rule.
    """
    a = np.asarray(a, dtype=np.float64).reshape(-1, 2)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 2)
    inter = np.minimum(a[:, None, 1], b[None, :, 1]) - np.maximum(a[:, None, 0], b[None, :, 0])
    inter = np.clip(inter, 0.0, None)
    union = (a[:, 1] - a[:, 0])[:, None] + (b[:, 1] - b[:, 0])[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def soft_nms(
    segments: np.ndarray,
    scores: np.ndarray,
    labels: np.ndarray,
    *,
    sigma: float = 0.5,
    method: str = "gaussian",
    iou_threshold: float = 0.5,
    per_class: bool = True,
    min_score: float = 1e-3,
    max_keep: int = 100,
) -> Detections:
    """Greedy Soft-NMS; returns at most max_keep detections sorted by decayed score, descending.

    Each step picks the highest remaining score (ties: lowest input index, as np.argmax), keeps it,
    decays the remaining ones by exp(-iou^2 / sigma) ("gaussian") or by (1 - iou) where
    iou > iou_threshold ("linear"), then drops those below min_score (inputs below it are never kept).
    With per_class the decay applies between same-label detections only, so one greedy loop serves
    all classes and max_keep counts detections of every class together.
    """
    if method not in METHODS:
        raise GsmtError("soft_nms", f"unknown method {method!r}; expected one of {', '.join(METHODS)}")
    if method == "gaussian" and not sigma > 0:
        raise GsmtError("soft_nms", f"sigma must be > 0, got {sigma}")
    dets = Detections(segments, labels, scores)
    scores = dets.scores.copy()
    starts, ends = dets.segments[:, 0], dets.segments[:, 1]
    lengths = ends - starts
    alive = scores >= min_score
    picks: list[int] = []
    while len(picks) < max_keep and alive.any():
        p = int(np.argmax(np.where(alive, scores, -np.inf)))
        picks.append(p)
        alive[p] = False
        inter = np.clip(np.minimum(ends, ends[p]) - np.maximum(starts, starts[p]), 0.0, None)
        union = lengths + lengths[p] - inter
        iou = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
        if per_class:
            iou *= dets.labels == dets.labels[p]
        if method == "gaussian":
            weight = np.exp(-(iou * iou) / sigma)
        else:
            weight = np.where(iou > iou_threshold, 1.0 - iou, 1.0)
        scores = np.where(alive, scores * weight, scores)
        alive &= scores >= min_score
    idx = np.asarray(picks, dtype=np.int64)
    # Decays only lower scores, so the picks come out in descending order of their final scores.
    return Detections(dets.segments[idx], dets.labels[idx], scores[idx])


def merge_windows(parts: Sequence[Detections], **nms_options) -> Detections:
    """Detections of the windows of one video (already in video seconds) -> Soft-NMS over their union."""
    merged = Detections.concatenate(parts)
    return soft_nms(merged.segments, merged.scores, merged.labels, **nms_options)
