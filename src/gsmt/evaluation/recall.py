"""Recall metrics: ActionFormer's Recall@kx and the official ActivityNet AR@AN (`eval_proposal.py`).

Both take the flat arrays `evaluate_detection` builds (`GroundTruth`, and predictions with their
ground-truth video index, -1 for a video without ground truth).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from gsmt.evaluation.matching import GroundTruth, group_starts, rank_desc_by_rows
from gsmt.evaluation.tiou import segment_tiou

_NEVER = np.iinfo(np.int64).max


def _first_hit_rank(gt: GroundTruth, g_key: np.ndarray, p_key: np.ndarray, p_seg: np.ndarray,
                    p_rank: np.ndarray, p_limit: np.ndarray, thr: np.ndarray) -> np.ndarray:
    """For every GT and threshold: the lowest rank among predictions of the same group key with
    rank < limit and tIoU >= thr (`_NEVER` when none). Returns [G, T], GT in gt order.

    NaN tIoU never hits here: both reference implementations test `tiou >= thr`.
    """
    out = np.full((len(g_key), len(thr)), _NEVER, dtype=np.int64)
    g_order = np.argsort(g_key, kind="stable")
    keys, g_start, _ = group_starts(g_key[g_order])
    g_size = np.diff(np.append(g_start, len(g_order)))
    grp = np.searchsorted(keys, p_key)
    ok = grp < len(keys)
    ok[ok] = keys[grp[ok]] == p_key[ok]
    ok &= p_rank < p_limit
    pos = np.flatnonzero(ok)
    grp = grp[pos]
    size = g_size[grp]
    for s in np.unique(size):
        m = size == s
        at, gp = pos[m], grp[m]
        members = g_order[g_start[gp][:, None] + np.arange(s)]  # [n, s] GT indices
        hit = segment_tiou(p_seg[at][:, None, :], gt.segments[members])[:, :, None] >= thr
        rank = np.where(hit, p_rank[at][:, None, None], _NEVER)  # [n, s, T]
        by = np.argsort(gp, kind="stable")
        _, starts, _ = group_starts(gp[by])
        best = np.minimum.reduceat(rank[by], starts, axis=0)  # [groups, s, T]
        out[members[by][starts]] = best
    return out


def recall_at_k(gt: GroundTruth, p_gtvideo: np.ndarray, p_seg: np.ndarray, p_label: np.ndarray,
                p_score: np.ndarray, thr: np.ndarray, ks: Sequence[int] = (1, 5), *,
                class_agnostic: bool = False) -> np.ndarray:
    """ActionFormer's Recall@kx: [T, len(ks)].

    A GT of class c in video v is recalled at k if one of the top k*x predictions of class c in v
    (x = number of GT of class c in v) has tIoU >= thr; the recall is averaged over the GT
    classes (ActionFormer `compute_topkx_recall_detection`). With `class_agnostic`, predictions
    of any class compete, x counts all GT of the video and the recall is over all GT.
    Predictions are in file order; ranks follow the per-group `score.argsort()[::-1]`.
    """
    ks = np.asarray(ks, dtype=np.int64)
    nv = max(len(gt.video_ids), 1)
    if class_agnostic:
        g_key, p_key = gt.video.copy(), p_gtvideo.copy()
    else:
        g_key, p_key = gt.label * nv + gt.video, p_label * nv + p_gtvideo
    p_key = np.where(p_gtvideo >= 0, p_key, -1)
    keys, x = np.unique(g_key, return_counts=True)  # x: GT per group
    p_grp = np.searchsorted(keys, p_key).clip(max=max(len(keys) - 1, 0))
    in_gt = (p_key >= 0) & (keys[p_grp] == p_key) if len(keys) else np.zeros(len(p_key), bool)
    limit = np.zeros(len(p_key), dtype=np.int64)
    limit[in_gt] = ks.max() * x[p_grp[in_gt]]
    rank = np.full(len(p_key), _NEVER, dtype=np.int64)
    rank[in_gt] = rank_desc_by_rows(p_score[in_gt], p_key[in_gt])
    first = _first_hit_rank(gt, g_key, np.where(in_gt, p_key, -1), p_seg, rank, limit, thr)
    g_x = x[np.searchsorted(keys, g_key)]  # [G]
    hit = first[:, :, None] < (ks[None, None, :] * g_x[:, None, None])  # [G, T, K]
    if class_agnostic:
        return hit.mean(axis=0) if len(g_key) else np.zeros((len(thr), len(ks)))
    per_class = [hit[gt.label == c].mean(axis=0) for c in gt.class_ids]
    return np.mean(per_class, axis=0) if per_class else np.zeros((len(thr), len(ks)))


def average_recall_curve(gt: GroundTruth, p_gtvideo: np.ndarray, p_seg: np.ndarray,
                         p_score: np.ndarray, thr: np.ndarray, max_avg_proposals: float = 100
                         ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The official `average_recall_vs_avg_nr_proposals`: (recall [T, 100], avg_recall [100],
    proposals_per_video [100]). Predictions of any class are proposals; those on videos without
    ground truth count in the total that sets the per-video budget, as in the official code.
    """
    videos = np.unique(gt.video)  # only videos with at least one GT, as the official video list
    nvid, nprop = len(videos), len(p_score)
    empty = (np.zeros((len(thr), 100)), np.zeros(100), np.zeros(100))
    if nvid == 0 or nprop == 0:
        return empty
    ratio = max_avg_proposals * float(nvid) / nprop
    on_gt = p_gtvideo >= 0
    n_v = np.bincount(p_gtvideo[on_gt], minlength=len(gt.video_ids))[videos]
    nr_v = np.minimum((n_v * ratio).astype(np.int64), n_v)
    total = int(nr_v[n_v > 0].sum())
    if total == 0:
        return empty
    s_v = np.where(n_v > 0, nr_v, 1)  # a video without proposals gets one all-zero tIoU column
    rank = np.full(nprop, _NEVER, dtype=np.int64)
    rank[on_gt] = rank_desc_by_rows(p_score[on_gt], p_gtvideo[on_gt])
    nr_all = np.zeros(len(gt.video_ids), dtype=np.int64)
    nr_all[videos] = nr_v
    limit = np.zeros(nprop, dtype=np.int64)
    limit[on_gt] = nr_all[p_gtvideo[on_gt]]
    first = _first_hit_rank(gt, gt.video, p_gtvideo, p_seg, rank, limit, thr)  # [G, T]
    vpos = np.searchsorted(videos, gt.video)
    no_prop = (n_v == 0)[vpos]
    # the all-zero column of a proposal-less video passes `0 >= thr` only at thr == 0
    first[no_prop] = np.where(thr <= 0, 0, _NEVER)[None, :]
    pcn = np.arange(1, 101) / 100.0 * (max_avg_proposals * float(nvid) / total)
    budget = np.minimum((s_v[:, None] * pcn[None, :]).astype(np.int64), s_v[:, None])  # [V, 100]
    matched = first[:, :, None] < budget[vpos][:, None, :]  # [G, T, 100]
    recall = matched.sum(axis=0) / len(gt.video)
    return recall, recall.mean(axis=0), pcn * (float(total) / nvid)


def recall_metrics(gt: GroundTruth, p_gtvideo: np.ndarray, p_seg: np.ndarray, p_label: np.ndarray,
                   p_score: np.ndarray, thr: np.ndarray) -> dict:
    """The small recall dict `DetectionMetrics.recall` carries (fractions, per tIoU where a list)."""
    rk = recall_at_k(gt, p_gtvideo, p_seg, p_label, p_score, thr, (1, 5))
    _, avg, an = average_recall_curve(gt, p_gtvideo, p_seg, p_score, thr)
    auc = float(np.trapezoid(avg, an) / an[-1]) if an[-1] > 0 else 0.0
    return {
        "recall@1x": rk[:, 0].tolist(), "recall@5x": rk[:, 1].tolist(),
        # AR@AN at AN = 1, 5, 10, 100 proposals per video (indices of the official 1..100 grid)
        "AR@1": float(avg[0]), "AR@5": float(avg[4]), "AR@10": float(avg[9]), "AR@100": float(avg[99]),
        "AUC": auc,
    }
