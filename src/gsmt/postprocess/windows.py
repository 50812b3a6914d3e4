"""Merging the windows of a video: candidates cut by an inner window edge are left to the neighbour."""

from __future__ import annotations

import numpy as np

from gsmt.postprocess.decode import Detections, FlatDetections


def drop_edge_cuts(dets: Detections, t_start: np.ndarray, t_end: np.ndarray,
                   overlap_prev: int, overlap_next: int) -> Detections:
    """Drop candidates that touch an inner edge of their window and lie in its overlap with the
    neighbouring window: windows overlap, so the neighbour holds that action whole, while this
    window sees a clipped copy of it that would otherwise compete with the whole one.

    `overlap_prev` / `overlap_next`: snippets this window shares with the previous / next window of
    its video (0 where there is none: the video's own first and last snippet edges are never inner
    edges, wherever the snippet grid starts). A window with a next one is full (no padding).
    """
    t_start, t_end = np.asarray(t_start), np.asarray(t_end)
    flat = FlatDetections(np.zeros(len(dets), np.int64), dets.segments, dets.labels, dets.scores)
    flat = drop_edge_cuts_many(flat, t_start[None], t_end[None], np.asarray([overlap_prev]),
                               np.asarray([overlap_next]))
    return Detections(flat.segments, flat.labels, flat.scores)


def drop_edge_cuts_many(dets: FlatDetections, t_start: np.ndarray, t_end: np.ndarray,
                        overlap_prev: np.ndarray, overlap_next: np.ndarray) -> FlatDetections:
    """`drop_edge_cuts` of every sample of a batch at once: `dets.group` indexes the samples,
    t_start / t_end [B, T], overlap_prev / overlap_next [B]; the same comparisons, row by row."""
    if len(dets) == 0:
        return dets
    T = t_start.shape[1]
    eps = 1e-6
    s = dets.group
    start, end = dets.segments[:, 0], dets.segments[:, 1]
    prev, nxt = np.asarray(overlap_prev, dtype=np.int64)[s], np.asarray(overlap_next, dtype=np.int64)[s]
    # Indices clamped into the window where a sample has no neighbour (its test is off anyway).
    previous_end = t_end[s, np.clip(np.minimum(prev, T) - 1, 0, T - 1)]
    next_start = t_start[s, np.clip(T - nxt, 0, T - 1)]
    cut_prev = (prev > 0) & (start <= t_start[s, 0] + eps) & (end <= previous_end + eps)
    cut_next = (nxt > 0) & (end >= t_end[s, T - 1] - eps) & (start >= next_start - eps)
    return dets.take(~(cut_prev | cut_next))
