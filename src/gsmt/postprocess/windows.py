"""Merging the windows of a video: candidates cut by an inner window edge are left to the neighbour."""

from __future__ import annotations

import numpy as np

from gsmt.postprocess.decode import Detections


def drop_edge_cuts(dets: Detections, t_start: np.ndarray, t_end: np.ndarray, valid: np.ndarray,
                   duration: float, window_stride: int) -> Detections:
    """Drop candidates that touch an inner edge of their window and lie in its overlap with the
    neighbouring window: windows overlap, so the neighbour holds that action whole, while this
    window sees a clipped copy of it that would otherwise compete with the whole one.

    A window's left edge is inner when its span starts after 0, its right edge when its last valid
    snippet ends before the video does; `window_stride` (snippets) locates the overlaps.
    """
    valid = np.asarray(valid, dtype=bool)
    if len(dets) == 0 or not valid.any():
        return dets
    T = len(valid)
    last = int(np.nonzero(valid)[0][-1])
    eps = 1e-6
    keep = np.ones(len(dets), dtype=bool)
    start, end = dets.segments[:, 0], dets.segments[:, 1]
    if t_start[0] > eps and T - window_stride - 1 >= 0:  # a previous window overlaps this one
        previous_end = t_end[T - window_stride - 1]
        keep &= ~((start <= t_start[0] + eps) & (end <= previous_end + eps))
    if t_end[last] < duration - eps and window_stride <= last:  # a next window overlaps this one
        next_start = t_start[window_stride]
        keep &= ~((end >= t_end[last] - eps) & (start >= next_start - eps))
    return dets.take(keep)
