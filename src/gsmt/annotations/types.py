"""The in-memory form of temporal annotations that every reader produces (`Video`, `Annotations`),
and the video id check every reader applies before an id is used."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from gsmt.errors import Faults, GsmtError

AMBIGUOUS = "Ambiguous"
DEFAULT_SUBSET = "all"


def _empty_segments() -> np.ndarray:
    return np.zeros((0, 2), dtype=np.float64)


@dataclass
class Video:
    """One video's ground truth. Segments are in seconds, exactly as in the source file.

    Segments are NOT clipped here (the official evaluator uses them raw); training targets clip
    them to [0, duration]. Segments with end < start are kept too (counted): the official evaluator
    counts them among the positives; training targets skip them.
    """

    id: str
    subset: str
    duration: float
    segments: np.ndarray = field(default_factory=_empty_segments)  # [N, 2] float64 seconds
    labels: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # [N] dense ids
    ambiguous: np.ndarray = field(default_factory=_empty_segments)  # [A, 2] THUMOS "Ambiguous"
    fps: float | None = None
    feature_stride: int | None = None  # frames between snippet starts
    feature_window: int | None = None  # frames covered by one snippet

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Video):
            return NotImplemented
        return (
            (self.id, self.subset, self.duration, self.fps, self.feature_stride, self.feature_window)
            == (other.id, other.subset, other.duration, other.fps, other.feature_stride, other.feature_window)
            and np.array_equal(self.segments, other.segments)
            and np.array_equal(self.labels, other.labels)
            and np.array_equal(self.ambiguous, other.ambiguous)
        )


@dataclass
class Annotations:
    """All videos of a dataset with one class vocabulary (dense ids 0..K-1)."""

    videos: list[Video]
    classes: list[str]
    meta: dict = field(default_factory=dict)  # e.g. {"preset": ..., "grid": {...}} from `gsmt synth`
    faults: Faults = field(default_factory=Faults)
    source: str = ""

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def subset(self, *names: str) -> list[Video]:
        """Videos of the given subsets (all videos when no name is given), in file order."""
        if not names:
            return list(self.videos)
        return [v for v in self.videos if v.subset in names]

    @property
    def subsets(self) -> list[str]:
        return sorted({v.subset for v in self.videos})

    def by_id(self) -> dict[str, Video]:
        return {v.id: v for v in self.videos}


def check_video_id(video_id: object, source: str | Path) -> str:
    """Return `video_id` if it is safe to join to a folder; raise GsmtError otherwise.

    Refused: non-strings, empty ids, NUL, path separators (`/`, `\\`), `.` and `..`, and
    drive-prefixed ids such as `C:x`, so that `folder / video_id` never leaves `folder`.
    """
    if not isinstance(video_id, str):
        raise GsmtError(source, f"unsafe video id {video_id!r}: not a string")
    if (
        not video_id
        or "\0" in video_id
        or "/" in video_id
        or "\\" in video_id
        or video_id in (".", "..")
        or (len(video_id) >= 2 and video_id[1] == ":" and video_id[0].isalpha())
    ):
        raise GsmtError(source, f"unsafe video id {video_id!r}")
    return video_id
