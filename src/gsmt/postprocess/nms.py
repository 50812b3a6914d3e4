"""1-D segment IoU and greedy Soft-NMS (Bodla et al. 2017), per class or class-agnostic."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from gsmt.errors import GsmtError
from gsmt.postprocess.decode import Detections, FlatDetections

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
    dets = Detections(segments, labels, scores)
    flat = soft_nms_many(FlatDetections(np.zeros(len(dets), np.int64), dets.segments, dets.labels, dets.scores),
                         1, sigma=sigma, method=method, iou_threshold=iou_threshold, per_class=per_class,
                         min_score=min_score, max_keep=max_keep)
    return Detections(flat.segments, flat.labels, flat.scores)


def soft_nms_many(
    dets: FlatDetections,
    n_groups: int,
    *,
    sigma: float = 0.5,
    method: str = "gaussian",
    iou_threshold: float = 0.5,
    per_class: bool = True,
    min_score: float = 1e-3,
    max_keep: int = 100,
    chunk_elements: int = 1 << 21,
) -> FlatDetections:
    """`soft_nms` of every group (video) of `dets` at once; group g of the result is `soft_nms` of
    group g's rows, bit for bit.

    The greedy loop runs over picks (at most `max_keep` steps), each step one pick in every group
    still picking: groups of similar size are padded into a [G, N] block (blocks of about
    `chunk_elements` entries), so no Python loop runs over groups or candidates.
    """
    if method not in METHODS:
        raise GsmtError("soft_nms", f"unknown method {method!r}; expected one of {', '.join(METHODS)}")
    if method == "gaussian" and not sigma > 0:
        raise GsmtError("soft_nms", f"sigma must be > 0, got {sigma}")
    counts = np.bincount(dets.group, minlength=n_groups)[:n_groups]
    offsets = np.concatenate([[0], np.cumsum(counts)])
    by_size = np.argsort(counts, kind="stable")
    kept_rows, kept_scores = [], []
    lo = 0
    while lo < n_groups:
        hi = lo + 1
        # Grow the block while its padded size stays within the budget and its largest group
        # is at most twice its smallest (padding costs as much as candidates in every step).
        while (hi < n_groups and (hi + 1 - lo) * counts[by_size[hi]] <= chunk_elements
               and counts[by_size[hi]] <= 2 * max(1, counts[by_size[lo]])):
            hi += 1
        rows, scores = _soft_nms_block(dets, by_size[lo:hi], counts, offsets, sigma, method, iou_threshold,
                                       per_class, min_score, max_keep)
        kept_rows.append(rows)
        kept_scores.append(scores)
        lo = hi
    if not kept_rows:
        return FlatDetections.empty()
    rows, scores = np.concatenate(kept_rows), np.concatenate(kept_scores)
    # Back to group order; within a group, pick order (rows of one group came from one block, in order).
    order = np.argsort(dets.group[rows], kind="stable")
    rows, scores = rows[order], scores[order]
    return FlatDetections(dets.group[rows], dets.segments[rows], dets.labels[rows], scores)


def _soft_nms_block(dets: FlatDetections, groups: np.ndarray, counts: np.ndarray, offsets: np.ndarray,
                    sigma: float, method: str, iou_threshold: float, per_class: bool, min_score: float,
                    max_keep: int) -> tuple[np.ndarray, np.ndarray]:
    """The picks of `groups` (rows of `dets`, in pick order per group) and their final scores."""
    g = len(groups)
    n = int(counts[groups].max()) if g else 0
    if n == 0:
        return np.zeros(0, np.int64), np.zeros(0)
    inside = np.arange(n)[None, :] < counts[groups][:, None]  # [G, N]
    pos = np.where(inside, offsets[groups][:, None] + np.arange(n)[None, :], 0)
    starts = np.where(inside, dets.segments[pos, 0], 0.0)
    ends = np.where(inside, dets.segments[pos, 1], 0.0)
    labels = np.where(inside, dets.labels[pos], -1)
    scores = np.where(inside, dets.scores[pos], 0.0)
    lengths = ends - starts
    alive = inside & (scores >= min_score)
    picks = np.zeros((g, max(max_keep, 0)), dtype=np.int64)
    n_picked = np.zeros(g, dtype=np.int64)
    every = np.arange(g)
    picking = alive.any(axis=1) & (max_keep > 0)  # groups still picking
    while picking.any():
        # The whole block every step (no gather and scatter of rows): the groups that stopped
        # picking are left as they are by the masks below.
        p = np.argmax(np.where(alive, scores, -np.inf), axis=1)  # ties: lowest index, as in one group
        live = np.nonzero(picking)[0]
        picks[live, n_picked[live]] = p[live]
        n_picked[live] += 1
        alive[live, p[live]] = False
        inter = np.clip(np.minimum(ends, ends[every, p][:, None]) - np.maximum(starts, starts[every, p][:, None]),
                        0.0, None)
        union = lengths + lengths[every, p][:, None] - inter
        iou = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
        if per_class:
            iou *= labels == labels[every, p][:, None]
        if method == "gaussian":
            weight = np.exp(-(iou * iou) / sigma)
        else:
            weight = np.where(iou > iou_threshold, 1.0 - iou, 1.0)
        decay = alive & picking[:, None]
        scores = np.where(decay, scores * weight, scores)
        alive &= (scores >= min_score) | ~picking[:, None]
        picking &= alive.any(axis=1) & (n_picked < max_keep)
    # Decays only lower scores, so each group's picks come out in descending order of their final scores.
    taken = np.arange(max_keep)[None, :] < n_picked[:, None]
    row_of = np.repeat(np.arange(g), n_picked)
    local = picks[taken]
    return offsets[groups][row_of] + local, scores[row_of, local]


def decay_fragments(dets: FlatDetections, factor: float, *, cover: float = 0.9, ratio: float = 2.0) -> FlatDetections:
    """Each group's detections with `factor` times their score where they lie (`cover` of their
    length) inside a higher-scored detection of their group and label at least `ratio` times longer;
    every group re-sorted by score (ties keep their order). A part of an instance (e.g. its first
    phase alone) then ranks below the whole, which Soft-NMS cannot do at their low IoU."""
    if factor >= 1.0 or len(dets) == 0:
        return dets
    scores = dets.scores.copy()
    cuts = np.flatnonzero(np.diff(dets.group)) + 1
    for lo, hi in zip(np.r_[0, cuts], np.r_[cuts, len(dets)]):  # per video: at most max_keep rows
        seg, score, label = dets.segments[lo:hi], dets.scores[lo:hi], dets.labels[lo:hi]
        length = seg[:, 1] - seg[:, 0]
        inter = np.minimum(seg[:, None, 1], seg[None, :, 1]) - np.maximum(seg[:, None, 0], seg[None, :, 0])
        inside = ((inter >= cover * length[None, :]) & (length[:, None] >= ratio * length[None, :])
                  & (score[:, None] > score[None, :]) & (label[:, None] == label[None, :]))  # [whole, part]
        scores[lo:hi] = np.where(inside.any(axis=0), score * factor, score)
    return dets.rescored(scores)


def merge_windows(parts: Sequence[Detections], **nms_options) -> Detections:
    """Detections of the windows of one video (already in video seconds) -> Soft-NMS over their union."""
    merged = Detections.concatenate(parts)
    return soft_nms(merged.segments, merged.scores, merged.labels, **nms_options)
