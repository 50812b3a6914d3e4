"""Per-frame mAP of dense labelling (`gsmt eval --frame-map`), the measure of MultiTHUMOS and
Charades, where actions of different classes co-occur. NumPy only.

**Frames.** Each evaluated video (the subset minus blocked videos, as `gsmt eval`) is sampled at
times `t` in `[0, duration)`, by one of two rules:
- `frame_rate=F` (the default, F = 25): `t_j = j / F` for every `j` with `t_j < duration`, a dense
  rate as in MultiTHUMOS, whose papers score every frame of a video. A fixed rate rather than each
  video's own: the dense JSON carries no frame rate, and one rate for every file makes the number
  independent of the annotation format; 25 is about every frame of THUMOS14's 24-30 fps videos.
- `frames_per_video=N`: `t_j = (j / N) * duration`, j = 0..N-1, Charades' official localization
  rule (`Charades_v1_localize.m`, N = 25), the same 25 instants a Charades submission scores.
  Too coarse for MultiTHUMOS (a 200 s video sampled every 8 s misses most of its 2 s actions),
  hence not the default.

**Scores and labels.** For class c, a frame's score is the highest score of the predictions of
class c whose segment covers it, `start <= t <= end` (0 when none covers it); the frame is a
positive of c when an instance of c covers it, `start <= t <= end` (Charades' test; a segment with
end < start covers nothing). Predictions on other videos, and of labels the vocabulary lacks, are
left out.

**AP.** Per class over all frames of all evaluated videos: the non-interpolated average precision
of Charades' evaluator (`THUMOSeventclspr`: the mean, over the positive frames, of the precision at
each one's rank), which the per-frame mAP of MultiTHUMOS work after Super-Events computes too
(torchnet's `APMeter`), so the number can be set beside theirs; the detection evaluator's
interpolated AP is the ActivityNet convention for ranked detections, never used for frames.
Frames of equal score count as one threshold (scikit-learn's `average_precision_score`): AP = the
sum over the distinct scores s, from the highest, of (positives scored s / all positives) x
(precision of the frames scored >= s). With distinct scores this is Charades' number exactly; with
ties (the many frames no prediction covers all score 0) it does not depend on the order of the
frames, where the result of Charades' sort does.
The mAP is the mean over the classes with at least one positive frame.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gsmt.annotations.types import Annotations, Video
from gsmt.errors import GsmtError
from gsmt.evaluation.detection import gather_inputs
from gsmt.evaluation.matching import match_video_ids
from gsmt.io.read import MAX_FPS

DEFAULT_FRAME_RATE = 25.0
CHARADES_FRAMES_PER_VIDEO = 25
MAX_FRAMES_PER_VIDEO = 10**6
MAX_TOTAL_FRAMES = 5 * 10**7  # frames of all videos together: a few arrays of this many float64s


@dataclass
class FrameMetrics:
    """Per-frame mAP and the per-class AP it averages."""

    mAP: float
    per_class_ap: dict[str, float]  # classes with at least one positive frame
    frames: int  # sampled frames of all evaluated videos
    videos: int
    frame_rate: float | None  # the sampling rule: a rate, or ...
    frames_per_video: int | None  # ... a number of frames per video

    def to_json(self) -> dict:
        return {"mAP": float(self.mAP), "per_class_ap": {k: float(v) for k, v in self.per_class_ap.items()},
                "frames": int(self.frames), "videos": int(self.videos), "frame_rate": self.frame_rate,
                "frames_per_video": self.frames_per_video}

    def format_line(self) -> str:
        rule = (f"{self.frame_rate:g} frames per second" if self.frame_rate is not None
                else f"{self.frames_per_video} frames per video")
        return (f"frame mAP: {100 * self.mAP:.2f} ({len(self.per_class_ap)} classes, {self.frames} frames "
                f"of {self.videos} videos, {rule})")


def sampling(frame_rate: float | None = None, frames_per_video: int | None = None) -> tuple[float | None, int | None]:
    """The checked sampling rule: exactly one of the two (the default rate when neither is given)."""
    if frame_rate is not None and frames_per_video is not None:
        raise GsmtError("frames", "give a frame rate or a number of frames per video, not both")
    if frames_per_video is not None:
        n = frames_per_video
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 1 <= n <= MAX_FRAMES_PER_VIDEO:
            raise GsmtError("--frames-per-video", f"must be a whole number in [1, {MAX_FRAMES_PER_VIDEO}], got {n!r}")
        return None, int(n)
    rate = DEFAULT_FRAME_RATE if frame_rate is None else frame_rate
    if isinstance(rate, bool) or not isinstance(rate, (int, float, np.number)) \
            or not (math.isfinite(rate) and 0 < rate <= MAX_FPS):
        raise GsmtError("--frame-rate", f"must be a number in (0, {MAX_FPS:g}], got {rate!r}")
    return float(rate), None


def frame_times(duration: float, *, frame_rate: float | None = None,
                frames_per_video: int | None = None) -> np.ndarray:
    """The sampled instants (seconds) of a video, by the rule of the module docstring."""
    rate, n = sampling(frame_rate, frames_per_video)
    if n is not None:
        return (np.arange(n) / n) * float(duration)  # Charades: (j-1)/frames_per_video*time
    t = np.arange(int(math.ceil(duration * rate)) + 1) / rate
    return t[t < duration]


def average_precision(scores: np.ndarray, positive: np.ndarray) -> float:
    """Non-interpolated AP of a ranking by `scores`, equal scores one threshold (module docstring);
    NaN without positives."""
    scores = np.asarray(scores, dtype=np.float64)
    positive = np.asarray(positive, dtype=bool)
    npos = int(positive.sum())
    if npos == 0:
        return math.nan
    # Grouped by distinct score; the (usually many) frames at 0 without a sort.
    nz = scores != 0
    values, inverse = np.unique(scores[nz], return_inverse=True)
    count = np.append(np.bincount(inverse, minlength=len(values)), int((~nz).sum()))
    hits = np.append(np.bincount(inverse, weights=positive[nz], minlength=len(values)),
                     float(positive[~nz].sum()))
    order = np.argsort(-np.append(values, 0.0), kind="stable")
    count, hits = count[order], hits[order]
    count, hits = count[count > 0], hits[count > 0]
    precision = np.cumsum(hits) / np.cumsum(count)
    return float((hits * precision).sum() / npos)


def _cover_max(n: int, lo: np.ndarray, hi: np.ndarray, score: np.ndarray) -> np.ndarray:
    """out[i] = max of score[j] over the ranges lo[j] <= i < hi[j] covering i, -inf where none.

    Each range is two (overlapping) blocks of 2^k, k = floor(log2(length)); block maxima are pushed
    down one level at a time, so the cost is n per level, not the total length of the ranges."""
    cur = np.full(n, -np.inf)
    keep = hi > lo
    lo, hi, score = lo[keep], hi[keep], score[keep]
    if len(lo) == 0:
        return cur
    level = np.frexp((hi - lo).astype(np.float64))[1] - 1  # floor(log2(length)), exact
    for k in range(int(level.max()), -1, -1):
        at = level == k
        size = 1 << k
        np.maximum.at(cur, lo[at], score[at])
        np.maximum.at(cur, hi[at] - size, score[at])
        if k:  # a block of 2^k at i is the blocks of 2^(k-1) at i and at i + half
            half = size >> 1
            cur[half:] = np.maximum(cur[half:], cur[:-half])
    return cur


def _covered(n: int, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Whether any range lo <= i < hi covers each i."""
    keep = hi > lo
    d = np.zeros(n + 1, dtype=np.int64)
    np.add.at(d, lo[keep], 1)
    np.add.at(d, hi[keep], -1)
    return np.cumsum(d[:-1]) > 0


def evaluate_frames(ground_truth: Annotations | Sequence[Video],
                    predictions: Mapping[str, list[dict]] | str | Path, *,
                    subset: str | Sequence[str] | None = None, blocked: Iterable[str] = (),
                    frame_rate: float | None = None, frames_per_video: int | None = None,
                    classes: Sequence[str] | None = None) -> FrameMetrics:
    """Per-frame mAP (module docstring) of the videos of `subset` minus `blocked`."""
    rate, per_video = sampling(frame_rate, frames_per_video)
    videos, classes, gt, flat, _ = gather_inputs(ground_truth, predictions, subset=subset,
                                                 blocked=blocked, classes=classes)
    # counted before any is made: ceil(duration * rate) is the count, or one more
    about = sum(per_video or math.ceil(v.duration * rate) for v in videos)
    if about > MAX_TOTAL_FRAMES:
        raise GsmtError("--frame-rate" if per_video is None else "--frames-per-video",
                        f"about {about} frames in {len(videos)} videos, more than {MAX_TOTAL_FRAMES}: sample fewer")
    times = [frame_times(v.duration, frame_rate=rate, frames_per_video=per_video) for v in videos]
    counts = np.array([len(t) for t in times], dtype=np.int64)
    total = int(counts.sum())
    offset = np.cumsum(counts) - counts

    def frame_ranges(video: np.ndarray, seg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # global frame range [lo, hi) of the frames t with start <= t <= end, per segment
        lo, hi = np.zeros(len(video), dtype=np.int64), np.zeros(len(video), dtype=np.int64)
        order = np.argsort(video, kind="stable")
        bounds = np.searchsorted(video[order], np.arange(len(videos) + 1))
        for v in np.flatnonzero(np.diff(bounds)):
            at = order[bounds[v]:bounds[v + 1]]
            lo[at] = offset[v] + np.searchsorted(times[v], seg[at, 0], side="left")
            hi[at] = offset[v] + np.searchsorted(times[v], seg[at, 1], side="right")
        return lo, hi

    g_lo, g_hi = frame_ranges(gt.video, gt.segments)
    p_video = match_video_ids(flat.video_ids, gt.video_ids)[flat.video]
    keep = np.flatnonzero((p_video >= 0) & (flat.label >= 0))
    p_label, p_score = flat.label[keep], flat.score[keep]
    p_lo, p_hi = frame_ranges(p_video[keep], flat.segments[keep])

    per_class: dict[str, float] = {}
    for c in np.unique(gt.label):
        positive = _covered(total, g_lo[gt.label == c], g_hi[gt.label == c])
        if not positive.any():
            continue  # its instances fall between the sampled frames
        mine = p_label == c
        score = _cover_max(total, p_lo[mine], p_hi[mine], p_score[mine])
        score[np.isneginf(score)] = 0.0
        per_class[classes[c]] = average_precision(score, positive)
    mAP = float(np.mean(list(per_class.values()))) if per_class else 0.0
    return FrameMetrics(mAP=mAP, per_class_ap=per_class, frames=total, videos=len(videos),
                        frame_rate=rate, frames_per_video=per_video)
