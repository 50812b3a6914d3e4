"""Temporal annotations: the in-memory form every reader produces.

Readers for the field's formats (ActivityNet JSON, ActionFormer JSON, THUMOS14 txt, BSN/BMN, CSV)
and the ActivityNet JSON writer live in this module too.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from gsmt.errors import Faults


def _empty_segments() -> np.ndarray:
    return np.zeros((0, 2), dtype=np.float64)


@dataclass
class Video:
    """One video's ground truth. Segments are in seconds, exactly as in the source file.

    Segments are NOT clipped here (the official evaluator uses them raw); training targets clip
    them to [0, duration]. Segments with end < start are dropped at load time (counted).
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
