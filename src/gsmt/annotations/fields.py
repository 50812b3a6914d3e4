"""Field checks of the annotation readers: numbers, durations, grid values (fps, feature_stride,
feature_window) and segments, each refused with an error naming the source and the field."""

from __future__ import annotations

import math

from gsmt.errors import GsmtError
from gsmt.io.read import MAX_FPS, MAX_FRAMES, MAX_SECONDS


def _number(value, source, what: str) -> float:
    """`value` as a float, or a GsmtError naming `what` (non-finite values are left to `_finish`)."""
    try:
        x = float(value) if not isinstance(value, bool) else math.nan
    except (TypeError, ValueError, OverflowError):
        raise GsmtError(source, f"{what}: not a number ({value!r:.60})") from None
    if isinstance(value, bool):
        raise GsmtError(source, f"{what}: not a number ({value!r})")
    return x


def _duration(value, source, video_id: str) -> float:
    try:
        x = float(value) if not isinstance(value, bool) else math.nan
    except (TypeError, ValueError, OverflowError):
        x = math.nan
    if not (math.isfinite(x) and 0 < x <= MAX_SECONDS):
        raise GsmtError(source, f"video '{video_id}' has no valid duration ({value!r:.60}; expected "
                                f"seconds in (0, {MAX_SECONDS:g}])")
    return x


def _optional(value, source, what: str, kind=float):
    """An optional grid value: fps in (0, MAX_FPS], frames (kind=int) a whole number in [1, MAX_FRAMES]."""
    if value is None or value == "":
        return None
    x = _number(value, source, what)
    if kind is int:
        if not (math.isfinite(x) and x == round(x) and 1 <= x <= MAX_FRAMES):
            raise GsmtError(source, f"{what}: expected a whole number of frames in [1, {MAX_FRAMES}] ({value!r:.60})")
        return int(round(x))
    if not (math.isfinite(x) and 0 < x <= MAX_FPS):
        raise GsmtError(source, f"{what}: expected a number in (0, {MAX_FPS:g}] ({value!r:.60})")
    return x


def _segment(value, source, video_id: str) -> tuple[float, float]:
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise GsmtError(source, f"video '{video_id}': a segment must be [start, end], got {value!r}")
    return (_number(value[0], source, f"video '{video_id}' segment start"),
            _number(value[1], source, f"video '{video_id}' segment end"))
