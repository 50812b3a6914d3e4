"""Matching predictions to ground truth as the official ActivityNet `eval_detection.py` does, with
array operations (DESIGN.md section 8):

- a prediction can only match ground truth of its own class in its own video, so the greedy
  matching is independent per (class, video) group; it runs over the rank within the group
  (a short loop) with every group and every tIoU threshold processed at once;
- the ground truth a prediction visits is ordered by `tiou.argsort()[::-1]` on rows of the same
  length as the official per-prediction call, so ties and NaN (0/0) visit in the same order.

Also the ground truth as flat arrays (`GroundTruth`), the video ids of predictions matched to those
of the ground truth (with or without the `v_` prefix), and the grouping helpers recall builds on.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gsmt.annotations.types import Video
from gsmt.errors import GsmtError
from gsmt.evaluation.tiou import segment_tiou


def _alternate_id(video_id: str) -> str:
    # mmaction2 and the official GT keys carry "v_", most result files do not.
    return video_id[2:] if video_id.startswith("v_") else "v_" + video_id


def match_video_ids(ids: Sequence[str], known: Sequence[str]) -> np.ndarray:
    """Index of each id in `known` (exact match first, then with/without the `v_` prefix), -1 if none."""
    lookup = {v: i for i, v in enumerate(known)}
    return np.fromiter((lookup.get(v, lookup.get(_alternate_id(v), -1)) for v in ids),
                       dtype=np.int64, count=len(ids))


def _blocked_set(blocked: Iterable[str]) -> set[str]:
    if isinstance(blocked, (str, bytes, Path)):
        # A string is iterable: "v_abc" would block the videos 'v', '_', 'a', ... Refuse it.
        raise GsmtError("blocked", f"expected a list of video ids, got a {type(blocked).__name__} "
                                   f"({str(blocked)[:60]!r}); read a file or a packaged list with "
                                   "gsmt.annotations.packaged.load_blocked")
    out = set()
    for b in blocked:
        if not isinstance(b, str):
            raise GsmtError("blocked", f"video ids must be strings, got {b!r:.60}")
        out.add(b)
        out.add(_alternate_id(b))
    return out


def group_starts(sorted_keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For sorted keys: (unique keys, start of each run, rank of each element within its run)."""
    n = len(sorted_keys)
    if n == 0:
        e = np.zeros(0, dtype=np.int64)
        return sorted_keys[:0], e, e
    new = np.ones(n, dtype=bool)
    new[1:] = sorted_keys[1:] != sorted_keys[:-1]
    starts = np.flatnonzero(new)
    run = np.cumsum(new) - 1
    rank = np.arange(n) - starts[run]
    return sorted_keys[starts], starts, rank


def rank_desc_by_rows(scores: np.ndarray, group: np.ndarray) -> np.ndarray:
    """Rank of each element within its group under the official `s.argsort()[::-1]`.

    `s` is the group's scores in the given order; groups of equal size are stacked into one 2-D
    argsort, which runs NumPy's 1-D sort on each row, so ties come out as in per-group calls.
    """
    n = len(scores)
    rank = np.empty(n, dtype=np.int64)
    if n == 0:
        return rank
    order = np.argsort(group, kind="stable")
    _, starts, _ = group_starts(group[order])
    sizes = np.diff(np.append(starts, n))
    for size in np.unique(sizes):
        rows = starts[sizes == size][:, None] + np.arange(size)  # [R, size] positions in `order`
        members = order[rows]
        desc = np.ascontiguousarray(scores[members]).argsort(axis=1)[:, ::-1]
        r = np.empty_like(desc)
        np.put_along_axis(r, desc, np.arange(size)[None, :], axis=1)
        rank[members] = r
    return rank


@dataclass
class GroundTruth:
    """The evaluated ground truth as flat arrays (videos of the subset minus blocked ones)."""

    video_ids: list[str]
    video: np.ndarray  # [G] int64 index into video_ids
    segments: np.ndarray  # [G, 2] float64, raw
    label: np.ndarray  # [G] int64 ids into `classes`
    classes: list[str]  # the full vocabulary
    class_ids: np.ndarray  # ids present in the ground truth: the classes mAP averages over


def ground_truth_arrays(videos: Sequence[Video], classes: Sequence[str]) -> GroundTruth:
    """Flatten videos (already filtered to the evaluated subset) into `GroundTruth` arrays."""
    ids = [v.id for v in videos]
    counts = [len(v.labels) for v in videos]
    segs = [np.asarray(v.segments, dtype=np.float64).reshape(-1, 2) for v in videos]
    labs = [np.asarray(v.labels, dtype=np.int64).ravel() for v in videos]
    segments = np.concatenate(segs) if segs else np.zeros((0, 2))
    label = np.concatenate(labs) if labs else np.zeros(0, dtype=np.int64)
    video = np.repeat(np.arange(len(ids), dtype=np.int64), counts)
    return GroundTruth(ids, video, segments, label, list(classes), np.unique(label))


def _match_bucket(p_seg: np.ndarray, p_grp: np.ndarray, p_rank: np.ndarray, g_seg: np.ndarray,
                  thr: np.ndarray) -> np.ndarray:
    """Greedy matching for predictions whose groups all hold exactly `g_seg.shape[1]` GT.

    p_grp: local group index; g_seg[group, j] the group's GT in file order. Returns tp [n, T].
    """
    n, size, nt = len(p_grp), g_seg.shape[1], len(thr)
    tiou = segment_tiou(p_seg[:, None, :], g_seg[p_grp])  # [n, size]
    visit = np.ascontiguousarray(tiou).argsort(axis=1)[:, ::-1]  # the official visiting order
    tiou_sorted = np.take_along_axis(tiou, visit, axis=1)
    # NaN < thr is False, so NaN passes like in the official loop; visiting order is descending
    # with NaN first, hence the passing GT form a prefix and the first unlocked one matches.
    passes = ~(tiou_sorted[:, :, None] < thr[None, None, :])  # [n, size, T]
    locked = np.zeros((len(g_seg), size, nt), dtype=bool)
    tp = np.zeros((n, nt), dtype=bool)
    order = np.lexsort((p_grp, p_rank))
    _, starts, _ = group_starts(p_rank[order])
    bounds = np.append(starts, n)
    for a, b in zip(bounds[:-1], bounds[1:]):  # one step per rank within group
        sel = order[a:b]
        grp = p_grp[sel]
        vis = visit[sel]  # [m, size]
        cand = passes[sel] & ~locked[grp[:, None], vis]  # [m, size, T]
        hit = cand.any(axis=1)  # [m, T]
        first = cand.argmax(axis=1)  # [m, T]
        j = np.take_along_axis(vis, first, axis=1)  # GT index in group, [m, T]
        gi, ti = np.nonzero(hit)
        locked[grp[gi], j[gi, ti], ti] = True
        tp[sel] = hit
    return tp


def match_predictions(gt: GroundTruth, p_gtvideo: np.ndarray, p_seg: np.ndarray, p_label: np.ndarray,
                      ranked: np.ndarray, thr: np.ndarray) -> np.ndarray:
    """True positives [T, len(ranked)] for predictions visited in `ranked` order (class by class).

    `p_gtvideo` is each prediction's index in `gt.video_ids` (-1: no GT video, always a FP).
    """
    nv = max(len(gt.video_ids), 1)
    tp = np.zeros((len(thr), len(ranked)), dtype=bool)
    # ground truth grouped by (class, video), file order kept within a group
    g_key = gt.label * nv + gt.video
    g_order = np.argsort(g_key, kind="stable")
    keys, g_start, g_pos = group_starts(g_key[g_order])
    g_size = np.diff(np.append(g_start, len(g_order)))
    # predictions, in ranked order, mapped to their group
    pv = p_gtvideo[ranked]
    p_key = p_label[ranked] * nv + pv
    grp = np.searchsorted(keys, p_key)
    grp_ok = (pv >= 0) & (grp < len(keys))
    grp_ok[grp_ok] = keys[grp[grp_ok]] == p_key[grp_ok]
    pos = np.flatnonzero(grp_ok)
    grp = grp[pos]
    by_group = np.argsort(grp, kind="stable")  # keeps ranked order inside each group
    _, _, rank_sorted = group_starts(grp[by_group])
    rank = np.empty_like(rank_sorted)
    rank[by_group] = rank_sorted
    size = g_size[grp]
    for s in np.unique(size):
        m = size == s
        groups, local = np.unique(grp[m], return_inverse=True)
        g_seg = gt.segments[g_order[g_start[groups][:, None] + np.arange(s)]]  # [Gs, s, 2]
        at = pos[m]
        tp[:, at] = _match_bucket(p_seg[ranked[at]], local, rank[m], g_seg, thr).T
    return tp
