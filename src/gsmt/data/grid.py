"""The snippet grid: seconds <-> snippet indices, resizing to T snippets, and T-length windows.

Two temporal modes (DESIGN.md section 7):
- window mode keeps the native grid: snippet i is centred at `(i * stride + window / 2) / fps`
  seconds and spans `centre ± stride / (2 fps)`; samples are T-length windows of it;
- resize mode interpolates a video's features to T snippets; snippet j spans
  `[j, j + 1) * duration / T`.

The native grid in frames (what `gsmt extract` writes and every reader checks):

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
from dataclasses import dataclass

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


@dataclass(frozen=True)
class Grid:
    """A dataset's native snippet grid; `feature_stride` and `feature_window` are in frames."""

    fps: float
    feature_stride: float
    feature_window: float

    def __post_init__(self) -> None:
        if not (self.fps > 0 and self.feature_stride > 0 and self.feature_window >= 0):
            raise ValueError(f"invalid grid {self}: fps and feature_stride must be > 0")

    def centers(self, n: int, start: int = 0) -> np.ndarray:
        """Centre times (seconds, float64) of snippets `start .. start + n - 1`."""
        i = np.arange(start, start + n, dtype=np.float64)
        return (i * self.feature_stride + self.feature_window / 2.0) / self.fps

    def spans(self, n: int, start: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """(t_start, t_end) in seconds of snippets `start .. start + n - 1`."""
        c = self.centers(n, start)
        half = self.feature_stride / (2.0 * self.fps)
        return c - half, c + half

    def seconds_to_index(self, t: float | np.ndarray) -> float | np.ndarray:
        """Fractional snippet index whose centre is at time `t` (inverse of `centers`); round it for the nearest snippet."""
        return (np.asarray(t, dtype=np.float64) * self.fps - self.feature_window / 2.0) / self.feature_stride

    def num_snippets(self, duration: float) -> int:
        """Snippets a feature extractor yields for `duration` seconds: `floor((duration*fps - window)/stride) + 1`, at least 1."""
        return max(1, snippet_count(duration, self.fps, self.feature_stride, self.feature_window))


def resize_features(feats: np.ndarray, T: int) -> np.ndarray:
    """Linear interpolation of `[T0, D]` to `[T, D]`, identical to `F.interpolate(mode="linear", align_corners=False)`."""
    feats = np.asarray(feats)
    T0 = feats.shape[0]
    if T0 == 0 or T <= 0:
        raise ValueError(f"cannot resize {T0} snippets to {T}")
    if T0 == T:
        return feats.copy()
    # PyTorch's source coordinate for align_corners=False, clamped at 0 on the left.
    src = np.maximum((np.arange(T, dtype=np.float64) + 0.5) * (T0 / T) - 0.5, 0.0)
    i0 = np.minimum(np.floor(src).astype(np.int64), T0 - 1)
    i1 = np.minimum(i0 + 1, T0 - 1)
    w1 = (src - i0)[:, None]
    out = feats[i0] * (1.0 - w1) + feats[i1] * w1
    return out.astype(feats.dtype, copy=False)


def resize_spans(duration: float, T: int) -> tuple[np.ndarray, np.ndarray]:
    """(t_start, t_end) of the T resized snippets: snippet j spans `[j, j + 1) * duration / T`."""
    j = np.arange(T + 1, dtype=np.float64) * (float(duration) / T)
    return j[:-1].copy(), j[1:].copy()


def window_starts(num_snippets: int, T: int, stride: int) -> np.ndarray:
    """Window start indices: 0, stride, 2*stride, ... while a full window fits, plus one ending at the last snippet.

    A video of at most T snippets gives the single window [0].
    """
    if stride <= 0:
        raise ValueError(f"window stride must be > 0, got {stride}")
    last = num_snippets - T
    if last <= 0:
        return np.zeros(1, dtype=np.int64)
    starts = np.arange(0, last + 1, stride, dtype=np.int64)
    if starts[-1] != last:
        starts = np.append(starts, np.int64(last))
    return starts


def cut_window(feats: np.ndarray, start: int, T: int) -> tuple[np.ndarray, np.ndarray]:
    """Snippets `start .. start + T - 1` of `feats [T0, D]`, zero-padded past the end, and their `valid` mask."""
    if start < 0:
        raise ValueError(f"window start must be >= 0, got {start}")
    part = feats[start : start + T]
    out = np.zeros((T, feats.shape[1]), dtype=feats.dtype)
    out[: len(part)] = part
    valid = np.zeros(T, dtype=bool)
    valid[: len(part)] = True
    return out, valid
