"""The snippet grid of README "The snippet grid", in frames of the video resampled to `fps`.

Resampled frame k shows the video at time k / fps; a video of `duration` seconds has the frames
k with k / fps < duration. Snippet i covers frames [i*S, i*S + W) (S = feature_stride,
W = feature_window), so its time span [i*S / fps, (i*S + W) / fps) must lie within the video:

    n = floor((duration * fps - W) / S) + 1

A video with at least one frame but shorter than one window (duration * fps < W) gets ONE
snippet: frames [0, W) with the missing ones replaced by the video's last frame (a counted fault,
DESIGN.md section 10), so every decodable video has features. NumPy only.
"""

from __future__ import annotations

import math

import numpy as np

# duration * fps is computed in floating point: 3.0 s at 10 fps must give 30 frames, not 30.000000000000004
_EPS = 1e-6


def resampled_frame_count(duration: float, fps: float) -> int:
    """Frames k of the resampled video: those with k / fps < duration."""
    return max(0, math.ceil(duration * fps - _EPS))


def snippet_count(duration: float, fps: float, stride: int, window: int) -> int:
    """n = floor((duration*fps - W) / S) + 1, and 1 for a video shorter than one window (0 when it has no frame)."""
    x = duration * fps
    if resampled_frame_count(duration, fps) == 0:
        return 0
    if x + _EPS < window:
        return 1
    return math.floor((x - window + _EPS) / stride) + 1


def is_short(duration: float, fps: float, window: int) -> bool:
    """Shorter than one window: its one snippet repeats the last frame."""
    return duration * fps + _EPS < window


def snippet_frames(n: int, stride: int, window: int, num_frames: int) -> np.ndarray:
    """[n, W] resampled-frame indices of each snippet; indices past the last frame are the last frame."""
    idx = np.arange(n, dtype=np.int64)[:, None] * stride + np.arange(window, dtype=np.int64)[None, :]
    return np.minimum(idx, max(num_frames - 1, 0))


def window_sample(window: int, frames: int) -> np.ndarray:
    """Which `frames` of a W-frame window a video backbone sees: evenly spread, centred in their
    share of the window (all W when frames == W)."""
    return np.floor((np.arange(frames) + 0.5) * window / frames).astype(np.int64)
