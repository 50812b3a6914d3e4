"""The snippet grid: seconds <-> snippet indices, resizing to T snippets, and T-length windows.

Two temporal modes (DESIGN.md section 7):
- window mode keeps the native grid: snippet i is centred at `(i * stride + window / 2) / fps`
  seconds and spans `centre ± stride / (2 fps)`; samples are T-length windows of it;
- resize mode interpolates a video's features to T snippets; snippet j spans
  `[j, j + 1) * duration / T`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


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
        n = math.floor((duration * self.fps - self.feature_window) / self.feature_stride + 1e-9) + 1
        return max(1, int(n))


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
