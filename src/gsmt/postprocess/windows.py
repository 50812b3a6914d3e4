"""Merging the windows of a video: candidates cut by an inner window edge are left to the neighbour."""

from __future__ import annotations

import numpy as np

from gsmt.postprocess.decode import Detections


def drop_edge_cuts(dets: Detections, t_start: np.ndarray, t_end: np.ndarray,
                   overlap_prev: int, overlap_next: int) -> Detections:
    """Drop candidates that touch an inner edge of their window and lie in its overlap with the
    neighbouring window: windows overlap, so the neighbour holds that action whole, while this
    window sees a clipped copy of it that would otherwise compete with the whole one.

    `overlap_prev` / `overlap_next`: snippets this window shares with the previous / next window of
    its video (0 where there is none: the video's own first and last snippet edges are never inner
    edges, wherever the snippet grid starts). A window with a next one is full (no padding).
    """
    T = len(t_start)
    if len(dets) == 0 or not (overlap_prev > 0 or overlap_next > 0):
        return dets
    eps = 1e-6
    keep = np.ones(len(dets), dtype=bool)
    start, end = dets.segments[:, 0], dets.segments[:, 1]
    if overlap_prev > 0:
        previous_end = t_end[min(overlap_prev, T) - 1]
        keep &= ~((start <= t_start[0] + eps) & (end <= previous_end + eps))
    if overlap_next > 0:
        next_start = t_start[max(T - overlap_next, 0)]
        keep &= ~((end >= t_end[T - 1] - eps) & (start >= next_start - eps))
    return dets.take(keep)
