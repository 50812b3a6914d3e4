"""The torch dataset: one sample per video (resize mode) or per T-length window (window mode).

Window mode needs each video's snippet count T_orig to index its windows, and reading every
feature file at construction would be slow on large datasets. The index therefore uses the count
the grid predicts from the duration, `floor((duration * fps - window) / stride) + 1` (at least 1),
while items trust the loaded file: windows past its real end are zero-padded (`valid` False) and
snippets beyond the predicted count are not indexed. Resize mode reads nothing at construction.

When the store knows a video's real snippet count without reading its data (`num_snippets`: an
.npy header, an .h5 shape), an annotated duration far longer than the features (more than one
window and half the real count beyond it: 3,600 s of annotation over 36 s of features) is a
counted fault, `LONG_DURATION_FAULT`, and only the windows over real features are indexed (no
hundred windows of padding, no tenfold slowdown).
"""

from __future__ import annotations

from typing import Any, Sequence

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from gsmt.annotations.types import Video
from gsmt.data.features import FeatureStore
from gsmt.data.targets import make_targets
from gsmt.data.grid import Grid, cut_window, resize_features, resize_spans, window_starts
from gsmt.errors import Faults, GsmtError
from gsmt.schema import TEMPORAL_MODES

EMPTY_VIDEO_FAULT = "videos shorter than one snippet skipped"
LONG_DURATION_FAULT = ("videos annotated far longer than their features (only the windows over "
                       "features are used)")


def _far_longer(predicted: int, real: int, T: int) -> bool:
    """Whether a duration's predicted snippet count is far past the file's real count."""
    return predicted - real > max(T, real // 2)


def _video_grid(video: Video, grid: Grid | None) -> Grid:
    if grid is not None:
        return grid
    if not (video.fps and video.feature_stride and video.feature_window is not None):
        raise GsmtError(video.id, "window mode needs fps, feature_stride and feature_window (in the annotations or the config's grid)")
    return Grid(float(video.fps), float(video.feature_stride), float(video.feature_window))


def _clipped_instances(video: Video) -> tuple[np.ndarray, np.ndarray]:
    """Instances clipped to [0, duration] with positive length: (start, end)."""
    segs = np.asarray(video.segments, dtype=np.float64).reshape(-1, 2)
    s, e = np.maximum(segs[:, 0], 0.0), np.minimum(segs[:, 1], video.duration)
    keep = (segs[:, 1] > segs[:, 0]) & (e > s)
    return s[keep], e[keep]


def _windows_with_instances(video: Video, grid: Grid, n: int, starts: np.ndarray, T: int) -> np.ndarray:
    """For each window start, whether some instance owns one of its snippets (centre inside, or nearest to a short one)."""
    s, e = _clipped_instances(video)
    centers = grid.centers(n)
    first = np.searchsorted(centers, s, side="left")
    stop = np.searchsorted(centers, e, side="right")
    has_centre = stop > first
    diff = np.zeros(n + 1, dtype=np.int64)
    np.add.at(diff, first[has_centre], 1)
    np.add.at(diff, stop[has_centre], -1)
    owned = np.cumsum(diff[:n]) > 0
    nearest = np.rint(grid.seconds_to_index((s[~has_centre] + e[~has_centre]) / 2.0))
    owned[np.clip(nearest, 0, n - 1).astype(np.int64)] = True
    prefix = np.concatenate([[0], np.cumsum(owned)])
    return prefix[np.minimum(starts + T, n)] - prefix[starts] > 0


class TALDataset(Dataset):
    """Samples of T snippets with their video-time spans and (optionally) class and mask targets.

    Items: `video_id` str, `features` float32[D, T], `valid` bool[T], `cls_target` int64[T],
    `mask_target` float32[T, T], `t_start`/`t_end` float64[T] seconds, `duration` float,
    `overlap_prev`/`overlap_next` int (snippets shared with the neighbouring windows; tensors are torch).
    With `multilabel` (issue 32) the targets are every label and one mask per (snippet, class) pair
    instead of `mask_target`: `label_target` float32[K, T], `pair_snippet` / `pair_class` int64[P],
    `pair_mask` float32[P, T] (`collate` pads the pairs of a batch: index -1, mask 0). Training in window mode keeps the windows holding an instance plus a
    seeded share `background_window_ratio` of the background-only ones. With `window_jitter` j > 0
    (training, window mode) each epoch moves every training window's start by a seeded random
    offset of at most `j * window_stride / 2` snippets either way (`set_epoch`), within the video.
    """

    def __init__(self, videos: Sequence[Video], features: FeatureStore, num_classes: int, *,
                 mode: str = "resize", T: int, window_stride: int | None = None, grid: Grid | None = None,
                 train: bool = False, background_window_ratio: float = 0.0, seed: int = 0,
                 with_targets: bool = True, window_jitter: float = 0.0, multilabel: bool = False):
        if mode not in TEMPORAL_MODES:
            raise GsmtError("dataset", f"unknown temporal mode {mode!r} (use resize or window)")
        if T <= 0:
            raise GsmtError("dataset", f"T must be > 0, got {T}")
        if not 0.0 <= background_window_ratio <= 1.0:
            raise GsmtError("dataset", f"background_window_ratio must be in [0, 1], got {background_window_ratio}")
        if not 0.0 <= window_jitter <= 1.0:
            raise GsmtError("data.window_jitter", f"must be in [0, 1], got {window_jitter}")
        if window_jitter > 0 and mode != "window":
            raise GsmtError("data.window_jitter", "moves training windows: it needs window mode (data.temporal_mode)")
        self.features = features
        self.num_classes = int(num_classes)
        self.mode = mode
        self.T = int(T)
        self.window_stride = int(window_stride) if window_stride else max(1, self.T // 2)
        self.train = train
        self.with_targets = with_targets
        self.multilabel = multilabel
        self.seed = seed
        self.max_shift = int(round(window_jitter * self.window_stride / 2)) if train else 0
        self._shifts: np.ndarray | None = None  # this epoch's start offset of each sample (set_epoch)
        self.faults = Faults()
        self.videos: list[Video] = []
        self.grids: list[Grid | None] = []
        self.empty_videos: set[str] = set()  # found without snippet rows on reading (in this process)
        self._cache: tuple[str, np.ndarray] | None = None
        self._starts: list[np.ndarray] = []  # every window start of each video, before training's filter

        sample_video: list[np.ndarray] = []
        sample_start: list[np.ndarray] = []
        sample_has: list[np.ndarray] = []
        for video in videos:
            if not video.duration or video.duration <= 0:
                self.faults.add("videos with zero duration skipped")
                continue
            labels = np.asarray(video.labels).reshape(-1)
            if labels.size and (labels.min() < 0 or labels.max() >= self.num_classes):
                raise GsmtError(video.id, f"label ids must lie in 0..{self.num_classes - 1}, got {labels.min()}..{labels.max()}")
            segs = np.asarray(video.segments, dtype=np.float64).reshape(-1, 2)
            degenerate = (segs[:, 1] <= segs[:, 0]) & (segs[:, 0] <= video.duration) & (segs[:, 1] >= 0)
            reversed_ = segs[:, 1] < segs[:, 0]  # kept for evaluation (official rule), no training target
            self.faults.add("zero-length segments skipped", int(np.count_nonzero(degenerate & ~reversed_)))
            self.faults.add("segments with end < start skipped", int(np.count_nonzero(reversed_)))
            k = len(self.videos)
            if mode == "resize":
                self.videos.append(video)
                self.grids.append(grid)
                starts, has = np.zeros(1, dtype=np.int64), np.ones(1, dtype=bool)
                self._starts.append(starts)
            else:
                g = _video_grid(video, grid)
                n = g.num_snippets(video.duration)
                real = getattr(features, "num_snippets", lambda _: None)(video.id)
                if real is not None and real > 0 and _far_longer(n, real, self.T):
                    self.faults.add(LONG_DURATION_FAULT)
                    n = real
                self.videos.append(video)
                self.grids.append(g)
                starts = window_starts(n, self.T, self.window_stride)
                self._starts.append(starts)
                has = _windows_with_instances(video, g, n, starts, self.T)
            sample_video.append(np.full(len(starts), k, dtype=np.int64))
            sample_start.append(starts)
            sample_has.append(has)

        vid_idx = np.concatenate(sample_video) if sample_video else np.zeros(0, dtype=np.int64)
        start = np.concatenate(sample_start) if sample_start else np.zeros(0, dtype=np.int64)
        keep = np.ones(len(vid_idx), dtype=bool)
        if mode == "window" and train:
            has = np.concatenate(sample_has)
            background = np.flatnonzero(~has)
            n_bg = int(round(background_window_ratio * len(background)))
            keep = has.copy()
            keep[np.random.default_rng(seed).choice(background, size=n_bg, replace=False)] = True
        self.index: list[tuple[int, int]] = list(zip(vid_idx[keep].tolist(), start[keep].tolist()))

    def __len__(self) -> int:
        return len(self.index)

    @property
    def redrawn_each_epoch(self) -> bool:
        """Whether samples change from epoch to epoch (jittered windows): they cannot be read once."""
        return self.max_shift > 0

    def set_epoch(self, epoch: int) -> None:
        """Draw this epoch's window offsets (jitter), the same in every process for a (seed, epoch)."""
        if self.max_shift > 0:
            rng = np.random.default_rng([self.seed, epoch])
            self._shifts = rng.integers(-self.max_shift, self.max_shift + 1, size=len(self.index))

    def _load(self, video_id: str) -> np.ndarray:
        # Consecutive windows of a video share one read.
        if self._cache is None or self._cache[0] != video_id:
            self._cache = (video_id, self.features.load(video_id))
        return self._cache[1]

    def _sample(self, video: Video, k: int, start: int, feats: np.ndarray):
        """(features[T, D], valid[T], t_start[T], t_end[T], span) of one sample."""
        T, n_real = self.T, feats.shape[0]
        if self.mode == "resize":
            t_start, t_end = resize_spans(video.duration, T)
            if n_real == 0:
                return np.zeros((T, feats.shape[1]), np.float32), np.zeros(T, bool), t_start, t_end, (0.0, video.duration)
            return resize_features(feats, T), np.ones(T, bool), t_start, t_end, (0.0, video.duration)
        grid = self.grids[k]
        x, valid = cut_window(feats, start, T)
        t_start, t_end = grid.spans(T, start)
        # The first and last windows reach the video's edges, so instances before the first
        # snippet's span or after the last one's are not clipped away.
        lo = 0.0 if start == 0 else max(0.0, float(t_start[0]))
        hi = video.duration if start + T >= n_real else min(video.duration, float(t_end[-1]))
        return x, valid, t_start, t_end, (lo, hi)

    def overlaps(self, k: int, start: int) -> tuple[int, int]:
        """Snippets this window shares with the previous and with the next window of its video (0: none).

        A jittered window's neighbours are the windows of the fixed grid starting before and after it."""
        starts = self._starts[k]
        before = int(np.searchsorted(starts, start, side="left"))
        after = int(np.searchsorted(starts, start, side="right"))
        prev = int(starts[before - 1] + self.T - start) if before > 0 else 0
        nxt = int(start + self.T - starts[after]) if after < len(starts) else 0
        return max(prev, 0), max(nxt, 0)

    def __getitem__(self, i: int) -> dict[str, Any]:
        k, start = self.index[i]
        if self._shifts is not None:
            start = int(np.clip(start + self._shifts[i], 0, self._starts[k][-1]))
        video = self.videos[k]
        feats = self._load(video.id)
        if feats.shape[0] == 0 and video.id not in self.empty_videos:
            # Found only on reading; the item stays in the index but is all padding.
            self.empty_videos.add(video.id)
            self.faults.add(EMPTY_VIDEO_FAULT)
        x, valid, t_start, t_end, span = self._sample(video, k, start, feats)
        overlap_prev, overlap_next = self.overlaps(k, start)
        item: dict[str, Any] = {
            "video_id": video.id,
            "features": torch.from_numpy(np.ascontiguousarray(x.T, dtype=np.float32)),
            "valid": torch.from_numpy(valid),
            "t_start": torch.from_numpy(np.asarray(t_start, dtype=np.float64)),
            "t_end": torch.from_numpy(np.asarray(t_end, dtype=np.float64)),
            "duration": float(video.duration),
            # Window mode: snippets shared with the neighbouring windows (their edges are inner edges).
            "overlap_prev": overlap_prev,
            "overlap_next": overlap_next,
            # A DataLoader worker's fault counts stay in the worker: the flag reaches the main process.
            "no_snippets": feats.shape[0] == 0,
        }
        if self.with_targets:
            targets = make_targets(video.segments, video.labels, t_start, t_end, valid, self.num_classes,
                                   span=span, ambiguous=video.ambiguous,
                                   inner_edges=(overlap_prev > 0, overlap_next > 0), multilabel=self.multilabel)
            item["cls_target"] = torch.from_numpy(targets.cls)
            if self.multilabel:
                item["label_target"] = torch.from_numpy(targets.labels)
                item["pair_snippet"] = torch.from_numpy(targets.pair_snippet)
                item["pair_class"] = torch.from_numpy(targets.pair_class)
                item["pair_mask"] = torch.from_numpy(targets.pair_mask)
            else:
                item["mask_target"] = torch.from_numpy(targets.mask)
        return item


# Per-sample lists of different lengths, padded by `collate` (and `pad_pairs`) with these values.
PAIR_PADDING = {"pair_snippet": -1, "pair_class": -1, "pair_mask": 0.0}


def pad_pairs(tensors: Sequence[torch.Tensor], key: str, size: int | None = None) -> torch.Tensor:
    """Stack [P_i, ...] tensors into [N, P, ...], P = max(P_i, 1) or `size`, padded with `PAIR_PADDING[key]`."""
    size = max([1, *(len(x) for x in tensors)]) if size is None else size
    out = torch.full((len(tensors), size, *tensors[0].shape[1:]), PAIR_PADDING[key], dtype=tensors[0].dtype)
    for i, x in enumerate(tensors):
        out[i, :len(x)] = x
    return out


def collate(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Stack tensors along a new batch axis; `duration` becomes float64[B], flags bool[B]; strings stay lists."""
    batch: dict[str, Any] = {}
    for key in items[0]:
        values = [item[key] for item in items]
        if key in PAIR_PADDING:
            batch[key] = pad_pairs(values, key)
        elif isinstance(values[0], torch.Tensor):
            batch[key] = torch.stack(values)
        elif isinstance(values[0], bool):
            batch[key] = torch.tensor(values, dtype=torch.bool)
        elif isinstance(values[0], (int, float)):
            batch[key] = torch.tensor(values, dtype=torch.float64)
        else:
            batch[key] = values
    return batch


def unlabelled_video(vid: str, num_snippets: int | None, duration: float | None, *, fps: float | None,
                     feature_stride: float | None, feature_window: float | None, where: str | Path,
                     hint: str) -> Video:
    """A video known only by its features (`gsmt predict --features`, the API): its duration as
    given, else the span of its `num_snippets` on the grid; neither is the error `hint` at `where`.

    A duration given with a grid and a snippet count must not contradict them: when the features'
    last snippet starts more than one snippet (stride) past the end of the duration, its detections
    would all be clipped to zero length at the duration; refused, naming the video."""
    if duration is not None and fps and feature_stride and feature_window and num_snippets:
        last_start = (num_snippets - 1) * feature_stride / fps
        if last_start > duration + feature_stride / fps:
            span = ((num_snippets - 1) * feature_stride + feature_window) / fps
            raise GsmtError(where, f"video '{vid}': its {num_snippets} snippets span {span:.6g} s at {fps:g} fps, "
                                   f"stride {feature_stride:g}, window {feature_window:g}, far past its duration "
                                   f"{duration:.6g} s: the duration or the grid is not this video's")
    if duration is None:
        if not (fps and feature_stride and feature_window) or num_snippets is None:
            raise GsmtError(where, hint)
        duration = ((num_snippets - 1) * feature_stride + feature_window) / fps
    return Video(id=vid, subset="predict", duration=float(duration), fps=fps, feature_stride=feature_stride,
                 feature_window=feature_window)

