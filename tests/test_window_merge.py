"""Candidates cut by an inner window edge are left to the overlapping neighbour window."""

import numpy as np

from gsmt.postprocess import Detections
from gsmt.postprocess.windows import drop_edge_cuts

# A middle window of 8 one-second snippets covering [10, 18) s of a 30 s video, stride 4: the previous
# window ends at 14 s (its snippets 4..7 are this window's 0..3), the next one starts at 14 s.
T_START = 10.0 + np.arange(8)
T_END = T_START + 1.0
VALID = np.ones(8, dtype=bool)


def dets(*segments):
    seg = np.array(segments, dtype=np.float64)
    return Detections(seg, np.zeros(len(seg), dtype=np.int64), np.linspace(0.9, 0.5, len(seg)))


def test_middle_window_drops_only_cuts_inside_the_overlaps():
    d = dets([10, 12],   # touches the left edge, ends inside the previous window: dropped
             [10, 16],   # touches the left edge but reaches past the previous window: kept
             [15, 18],   # touches the right edge, starts inside the next window: dropped
             [12, 18],   # touches the right edge, starts before the next window: kept
             [11, 17])   # inside: kept
    out = drop_edge_cuts(d, T_START, T_END, VALID, 30.0, window_stride=4)
    assert out.segments.tolist() == [[10, 16], [12, 18], [11, 17]]


def test_video_edges_are_not_inner_edges():
    first = T_START - 10.0  # [0, 8) s: the first window of the video
    d = dets([0, 2], [6, 8])
    out = drop_edge_cuts(d, first, first + 1.0, VALID, 8.0, window_stride=4)  # also the last window
    assert out.segments.tolist() == [[0, 2], [6, 8]]


def test_padded_window_uses_its_last_valid_snippet():
    valid = VALID.copy()
    valid[6:] = False  # the video ends at 16 s, inside this window
    d = dets([14, 16], [10, 12])
    out = drop_edge_cuts(d, T_START, T_END, valid, 16.0, window_stride=4)
    assert out.segments.tolist() == [[14, 16]]  # right edge is the video's end; left cut dropped
