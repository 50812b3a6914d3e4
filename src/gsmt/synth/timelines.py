"""Timelines of a synthetic dataset: drawn from a preset or loaded from real annotations.

A preset (`thumos-like`, `anet-like`) draws timelines that match the real THUMOS14 / ActivityNet
statistics; real timelines come from the THUMOS14 / ActivityNet-1.3 annotations shipped with the
package (`thumos14` / `activitynet13`, see `gsmt.annotations.packaged`) or from any annotation file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gsmt.annotations.types import Video, check_video_id
from gsmt.annotations.load import load_annotations
from gsmt.errors import GsmtError
from gsmt.synth.models.common import SAMPLE, stream


@dataclass(frozen=True)
class Preset:
    """Defaults of a synthetic dataset that mirrors one benchmark."""

    name: str
    fps: float
    feature_stride: int
    feature_window: int
    num_classes: int
    num_videos: int
    train_subset: str
    eval_subset: str
    train_share: float  # fraction of videos in the training subset
    temporal_mode: str
    decode_mode: str
    tiou: str

    def decoding(self) -> dict:
        """The temporal mode and decoding that fit this kind of data (recorded in annotations.json)."""
        return {
            "temporal_mode": self.temporal_mode,
            "decode_mode": self.decode_mode,
            "train_subset": self.train_subset,
            "eval_subset": self.eval_subset,
            "tiou": self.tiou,
        }


PRESETS: dict[str, Preset] = {
    # THUMOS14: 200 validation (training) + 213 test videos.
    "thumos-like": Preset("thumos-like", 30.0, 8, 16, 20, 200, "validation", "test", 200 / 413,
                          "window", "own", "thumos"),
    # ActivityNet v1.3: 10,024 training + 4,926 validation videos. 50 classes rather than 200 by
    # default so that a small demo has enough instances per class; `--classes 200` mirrors it.
    "anet-like": Preset("anet-like", 30.0, 16, 16, 50, 300, "training", "validation", 10024 / 14950,
                        "resize", "own+long", "anet"),
}


def _place(duration: float, lengths: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Non-overlapping segments of the given lengths in random order, gaps split at random."""
    free = max(duration - lengths.sum(), 0.0)
    gaps = rng.dirichlet(np.ones(len(lengths) + 1)) * free
    starts = np.cumsum(gaps[:-1]) + np.concatenate([[0.0], np.cumsum(lengths[:-1])])
    return np.stack([starts, starts + lengths], axis=1)


def _thumos_like(n: int, rng: np.random.Generator) -> tuple[np.ndarray, list[np.ndarray]]:
    # Real THUMOS14: durations log-normal-ish (median 155 s, p5 32 s, p95 690 s); per-video
    # foreground coverage mean 0.29; instance count grows with foreground time (mean 15.4).
    durations = np.clip(155.0 * np.exp(0.93 * rng.standard_normal(n)), 10.0, 1700.0)
    coverage = rng.beta(1.3, 3.2, n).clip(0.01, 0.95)
    counts = np.maximum(1, rng.poisson(coverage * durations / 4.4))
    segments = []
    for d, c, k in zip(durations, coverage, counts):
        weights = np.exp(0.9 * rng.standard_normal(k))
        segments.append(_place(d, c * d * weights / weights.sum(), rng))
    return durations, segments


# Real ActivityNet v1.3 instances per video, P(n = 1..10); the rest spread over 11..20.
_ANET_COUNTS = np.array([0.754, 0.131, 0.048, 0.028, 0.015, 0.009, 0.0052, 0.0038, 0.0021, 0.0017])


def _anet_like(n: int, rng: np.random.Generator) -> tuple[np.ndarray, list[np.ndarray]]:
    # Real ActivityNet: durations near-uniform on [4, 228] s with a 4% tail to 755 s; coverage
    # depends on the count (mean 0.71 for one instance, 0.53 for two, 0.44 for more).
    tail = rng.random(n) < 0.04
    durations = np.where(tail, np.minimum(235.0 + rng.exponential(100.0, n), 755.0), rng.uniform(4.0, 228.0, n))
    pmf = np.concatenate([_ANET_COUNTS, np.full(10, (1.0 - _ANET_COUNTS.sum()) / 10)])
    counts = rng.choice(np.arange(1, 21), size=n, p=pmf / pmf.sum())
    coverage = np.select(
        [counts == 1, counts == 2],
        [rng.beta(1.22, 0.5, n), rng.beta(1.4, 1.23, n)],
        rng.beta(1.8, 2.3, n),
    ).clip(0.01, 1.0)
    segments = []
    for d, c, k in zip(durations, coverage, counts):
        weights = np.exp(0.6 * rng.standard_normal(k))
        segments.append(_place(d, c * d * weights / weights.sum(), rng))
    return durations, segments


def make_timelines(
    preset: str | Preset, n: int, rng: np.random.Generator, *, num_classes: int | None = None
) -> tuple[list[Video], list[str]]:
    """n preset timelines (ids `<preset>_00000`...) and the class names; no features.

    Subsets: exactly `round(n * train_share)` training videos, the rest evaluation, at random.
    Labels: each video has a main class; 10% of THUMOS-like instances take another class.
    """
    p = PRESETS[preset] if isinstance(preset, str) else preset
    k = p.num_classes if num_classes is None else int(num_classes)
    durations, segments = (_thumos_like if p.name == "thumos-like" else _anet_like)(n, rng)
    n_train = int(round(n * p.train_share))
    subsets = np.array([p.train_subset] * n_train + [p.eval_subset] * (n - n_train))[rng.permutation(n)]
    main = rng.integers(0, k, n)
    other_share = 0.1 if p.name == "thumos-like" else 0.0
    prefix = p.name.replace("-", "_")
    videos = []
    for i in range(n):
        m = len(segments[i])
        labels = np.where(rng.random(m) < other_share, rng.integers(0, k, m), main[i]).astype(np.int64)
        # Rounded to the millisecond like real annotation files; keeps the JSON short.
        segs = np.round(segments[i], 3)
        videos.append(Video(id=f"{prefix}_{i:05d}", subset=str(subsets[i]), duration=round(float(durations[i]), 3),
                            segments=segs, labels=labels))
    width = len(str(k - 1))
    return videos, [f"action_{c:0{width}d}" for c in range(k)]


def coverage(video: Video) -> float:
    """Fraction of the video's time inside any of its segments (segments clipped to the video)."""
    if video.duration <= 0 or len(video.segments) == 0:
        return 0.0
    segs = np.clip(video.segments, 0.0, video.duration)
    segs = segs[np.argsort(segs[:, 0], kind="stable")]
    # Union length: each segment adds the part past the furthest end seen before it.
    prev_end = np.maximum.accumulate(np.concatenate([[0.0], segs[:-1, 1]]))
    covered = np.clip(segs[:, 1] - np.maximum(segs[:, 0], prev_end), 0.0, None).sum()
    return float(covered / video.duration)


def timeline_stats(videos: list[Video]) -> dict[str, float]:
    """Mean instances per video, median instance length (s), mean per-video coverage, median duration."""
    lengths = np.concatenate([v.segments[:, 1] - v.segments[:, 0] for v in videos])
    return {
        "mean_instances": float(np.mean([len(v.segments) for v in videos])),
        "median_length": float(np.median(lengths)) if len(lengths) else 0.0,
        "coverage": float(np.mean([coverage(v) for v in videos])),
        "median_duration": float(np.median([v.duration for v in videos])),
    }


def _sample_videos(videos: list[Video], n: int, seed: int) -> list[Video]:
    """A seeded sample of n videos, stratified by subset (largest remainders), kept in input order."""
    if n >= len(videos):
        return list(videos)
    rng = stream(seed, SAMPLE)
    subsets = sorted({v.subset for v in videos})
    index = {s: [i for i, v in enumerate(videos) if v.subset == s] for s in subsets}
    exact = np.array([n * len(index[s]) / len(videos) for s in subsets])
    take = np.floor(exact).astype(int)
    take[np.argsort(-(exact - take), kind="stable")[: n - take.sum()]] += 1
    keep = sorted(i for s, k in zip(subsets, take) for i in rng.choice(index[s], size=k, replace=False).tolist())
    return [videos[i] for i in keep]


def load_timelines(path: Path, videos: int | None, seed: int) -> tuple[list[Video], list[str]]:
    """The videos (all, or a seeded sample of `videos` stratified by subset) and classes of an annotation file."""
    source = load_annotations(path)
    if not source.videos:
        raise GsmtError(path, "holds no videos")
    chosen = _sample_videos(source.videos, videos, seed) if videos else list(source.videos)
    for v in chosen:
        check_video_id(v.id, path)  # ids become file names
    return chosen, list(source.classes)
