"""The snippet grid of gsmt extract against hand-computed frame indices (gsmt.data.grid)."""

from __future__ import annotations

import numpy as np

from gsmt.data.grid import is_short, resampled_frame_count, snippet_count, snippet_frames, window_sample


def test_resampled_frames_are_those_before_the_end():
    assert resampled_frame_count(3.0, 10) == 30  # 3 * 10 in floating point is 30.000000000000004
    assert resampled_frame_count(2.95, 10) == 30  # frame 29 shows t = 2.9 < 2.95
    assert resampled_frame_count(2.9, 10) == 29
    assert resampled_frame_count(0.05, 10) == 1
    assert resampled_frame_count(0.0, 10) == 0


def test_snippet_count_rule():
    # n = floor((duration * fps - W) / S) + 1
    assert snippet_count(3.0, 10, 4, 16) == 4  # floor(14 / 4) + 1
    assert snippet_count(6.0, 10, 2, 4) == 29  # floor(56 / 2) + 1
    assert snippet_count(3.15, 10, 4, 16) == 4  # floor(15.5 / 4) + 1: a window may not pass the end
    assert snippet_count(3.2, 10, 4, 16) == 5  # floor(16 / 4) + 1
    assert snippet_count(1.6, 10, 4, 16) == 1  # exactly one window
    assert snippet_count(0.7, 10, 4, 16) == 1  # shorter than one window: one padded snippet
    assert snippet_count(0.0, 10, 4, 16) == 0  # no frame at all
    assert is_short(0.7, 10, 16) and not is_short(1.6, 10, 16)


def test_snippet_frames_hand_computed():
    # 30 resampled frames, stride 4, window 16: snippets 0..3
    idx = snippet_frames(4, 4, 16, 30)
    assert idx.shape == (4, 16)
    assert idx[0].tolist() == list(range(0, 16))
    assert idx[1].tolist() == list(range(4, 20))
    assert idx[3].tolist() == list(range(12, 28))
    # stride larger than the window leaves frames out
    assert snippet_frames(3, 5, 2, 20).tolist() == [[0, 1], [5, 6], [10, 11]]


def test_short_video_repeats_its_last_frame():
    # 7 frames (0.7 s at 10 fps), window 16: one snippet, frames 0..6 then frame 6 repeated
    idx = snippet_frames(snippet_count(0.7, 10, 4, 16), 4, 16, resampled_frame_count(0.7, 10))
    assert idx.tolist() == [[0, 1, 2, 3, 4, 5, 6] + [6] * 9]


def test_window_sample_spreads_frames():
    assert window_sample(16, 16).tolist() == list(range(16))
    assert window_sample(16, 4).tolist() == [2, 6, 10, 14]
    assert window_sample(4, 2).tolist() == [1, 3]
    assert window_sample(3, 4).tolist() == [0, 1, 1, 2]
    assert isinstance(window_sample(8, 2), np.ndarray)
