"""Proposal-free decoding of class scores and global masks into scored segments (DESIGN.md section 6)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from gsmt.errors import GsmtError
from gsmt.schema import DECODE_MODES

DEFAULT_THRESHOLDS: tuple[float, ...] = tuple(np.round(np.arange(0.1, 1.0, 0.1), 1).tolist())
SCORES = ("source", "run")
MASK_SCORES = ("max", "iou")


@dataclass
class Detections:
    """Scored segments of one sample or video: segments [N, 2] seconds, labels [N], scores [N]."""

    segments: np.ndarray
    labels: np.ndarray
    scores: np.ndarray

    def __post_init__(self) -> None:
        self.segments = np.asarray(self.segments, dtype=np.float64).reshape(-1, 2)
        self.labels = np.asarray(self.labels, dtype=np.int64).reshape(-1)
        self.scores = np.asarray(self.scores, dtype=np.float64).reshape(-1)
        n = len(self.segments)
        if len(self.labels) != n or len(self.scores) != n:
            raise ValueError(
                f"Detections: {n} segments, {len(self.labels)} labels, {len(self.scores)} scores"
            )

    def __len__(self) -> int:
        return len(self.scores)

    @classmethod
    def empty(cls) -> "Detections":
        return cls(np.zeros((0, 2)), np.zeros(0, np.int64), np.zeros(0))

    @classmethod
    def concatenate(cls, parts: Sequence["Detections"]) -> "Detections":
        """Stack several Detections in order (e.g. the windows of one video)."""
        if not parts:
            return cls.empty()
        return cls(
            np.concatenate([p.segments for p in parts]),
            np.concatenate([p.labels for p in parts]),
            np.concatenate([p.scores for p in parts]),
        )

    def take(self, idx: np.ndarray | Sequence[int] | slice) -> "Detections":
        """Subset by integer indices, a boolean mask or a slice."""
        return Detections(self.segments[idx], self.labels[idx], self.scores[idx])

    def sorted(self) -> "Detections":
        """By descending score; equal scores keep their order."""
        return self.take(np.argsort(-self.scores, kind="stable"))


@dataclass
class FlatDetections:
    """Detections of many samples (or videos) in one set of arrays: `group` int64[N] says whose each
    row is; rows are grouped by ascending group, each group in the order its own `Detections` has."""

    group: np.ndarray
    segments: np.ndarray
    labels: np.ndarray
    scores: np.ndarray

    def __len__(self) -> int:
        return len(self.scores)

    @classmethod
    def empty(cls) -> "FlatDetections":
        return cls(np.zeros(0, np.int64), np.zeros((0, 2)), np.zeros(0, np.int64), np.zeros(0))

    @classmethod
    def from_parts(cls, parts: Sequence[Detections]) -> "FlatDetections":
        """Part i becomes group i."""
        if not parts:
            return cls.empty()
        d = Detections.concatenate(parts)
        group = np.repeat(np.arange(len(parts), dtype=np.int64), [len(p) for p in parts])
        return cls(group, d.segments, d.labels, d.scores)

    def take(self, idx: np.ndarray) -> "FlatDetections":
        return FlatDetections(self.group[idx], self.segments[idx], self.labels[idx], self.scores[idx])

    def rescored(self, scores: np.ndarray) -> "FlatDetections":
        """The same rows with new `scores`, each group re-sorted by score (ties keep their order)."""
        order = np.lexsort((-scores, self.group))
        return FlatDetections(self.group[order], self.segments[order], self.labels[order], scores[order])

    def split(self, n_groups: int) -> list[Detections]:
        """One `Detections` per group 0..n_groups-1 (empty where a group has no row)."""
        bounds = np.searchsorted(self.group, np.arange(n_groups + 1), side="left")
        return [Detections(self.segments[a:b], self.labels[a:b], self.scores[a:b])
                for a, b in zip(bounds[:-1], bounds[1:])]


def find_runs(active: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Connected runs of True in each row of a [R, T] bool matrix: (row, first, last), row-major order."""
    r = active.shape[0]
    padded = np.zeros((r, active.shape[1] + 2), dtype=np.int8)
    padded[:, 1:-1] = active
    step = np.diff(padded, axis=1)
    rows, first = np.nonzero(step == 1)
    _, stop = np.nonzero(step == -1)  # exclusive end; pairs with `first` because both are row-major
    return rows, first, stop - 1


def _run_max(values: np.ndarray, rows: np.ndarray, first: np.ndarray, last: np.ndarray) -> np.ndarray:
    """Max of values[row, first..last] for every run, in one reduceat."""
    r, t = values.shape
    # A trailing -inf column keeps every exclusive end inside the flat array.
    flat = np.concatenate([values, np.full((r, 1), -np.inf)], axis=1).ravel()
    starts = rows * (t + 1) + first
    stops = rows * (t + 1) + last + 1
    return np.maximum.reduceat(flat, np.stack([starts, stops], axis=1).ravel())[::2]


def _spans(active: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(row, first, last) of the first and last True of every row of [R, T] that has one."""
    rows = np.nonzero(active.any(axis=1))[0]
    first = active[rows].argmax(axis=1)
    last = active.shape[1] - 1 - active[rows, ::-1].argmax(axis=1)
    return rows, first, last


def _column_max(columns: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Each column's maximum over valid positions ([B, m, T] -> [B * m]): the maximum over a `long`
    span's activated positions, since it is activated whenever any position is."""
    return np.where(valid[:, None, :], columns, -np.inf).max(axis=2).reshape(-1)


def _soft_iou(columns: np.ndarray, valid: np.ndarray, column: np.ndarray, first: np.ndarray,
              last: np.ndarray) -> np.ndarray:
    """Soft IoU of each candidate first..last with its column [B * m] of `columns` [B, m, T], over
    valid positions: inside sum / (valid length + outside sum)."""
    b, m, t = columns.shape
    on = np.repeat(valid, m, axis=0)  # [B * m, T]
    zero = np.zeros((b * m, 1))
    mass = np.concatenate([zero, np.cumsum(np.where(on, columns.reshape(-1, t), 0.0), axis=1)], axis=1)
    count = np.concatenate([zero, np.cumsum(on, axis=1)], axis=1)
    inside = mass[column, last + 1] - mass[column, first]
    length = count[column, last + 1] - count[column, first]
    return inside / (length + mass[column, t] - inside)


def _top_classes(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest entries of each column of scores [K, N] -> [N, k] (ties: lower id first)."""
    return np.argsort(-scores, axis=0, kind="stable")[:k].T


def _check_options(num_classes: int, mode: str, topk_classes: int, thresholds) -> np.ndarray:
    if mode not in DECODE_MODES:
        raise GsmtError("decode", f"unknown mode {mode!r}; expected one of {', '.join(DECODE_MODES)}")
    if not 1 <= topk_classes <= num_classes:
        raise GsmtError("decode", f"topk_classes={topk_classes} must be in 1..{num_classes}")
    thr = np.asarray(thresholds if thresholds is not None else DEFAULT_THRESHOLDS, dtype=np.float64)
    return thr.reshape(-1)


def _finish(
    starts: np.ndarray,
    ends: np.ndarray,
    labels: np.ndarray,
    scores: np.ndarray,
    duration: float,
    theta_c: float,
    m2: int,
) -> Detections:
    """Clip to [0, duration], merge identical (start, end, label) keeping the best score, threshold, top m2."""
    # Dropping low scores first is the same as after merging (a group's best is kept) and cheaper.
    keep = scores >= theta_c
    starts, ends, labels, scores = starts[keep], ends[keep], labels[keep], scores[keep]
    starts = np.clip(starts, 0.0, duration)
    ends = np.clip(ends, 0.0, duration)
    order = np.lexsort((-scores, labels, ends, starts))
    starts, ends, labels, scores = starts[order], ends[order], labels[order], scores[order]
    first = np.ones(len(order), dtype=bool)
    first[1:] = (np.diff(starts) != 0) | (np.diff(ends) != 0) | (np.diff(labels) != 0)
    dets = Detections(np.stack([starts[first], ends[first]], axis=1), labels[first], scores[first])
    return dets.sorted().take(slice(0, m2))


def _check_sample(probs, valid, t_start, t_end) -> tuple[np.ndarray, ...]:
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2 or probs.shape[0] < 2:
        raise ValueError(f"probs must be [K+1, T] with K >= 1, got shape {probs.shape}")
    t = probs.shape[1]
    valid = np.asarray(valid, dtype=bool).reshape(-1)
    t_start = np.asarray(t_start, dtype=np.float64).reshape(-1)
    t_end = np.asarray(t_end, dtype=np.float64).reshape(-1)
    for name, arr in (("valid", valid), ("t_start", t_start), ("t_end", t_end)):
        if len(arr) != t:
            raise ValueError(f"{name} has length {len(arr)}, expected T={t}")
    return probs, valid, t_start, t_end


def decode(
    probs: np.ndarray,
    masks: np.ndarray,
    valid: np.ndarray,
    t_start: np.ndarray,
    t_end: np.ndarray,
    duration: float,
    *,
    mode: str = "long",
    topk_classes: int = 1,
    thresholds: Sequence[float] | np.ndarray | None = DEFAULT_THRESHOLDS,
    m1: int = 50,
    m2: int = 200,
    theta_c: float = 0.1,
    score: str = "source",
    mask_score: str = "max",
) -> Detections:
    """Decode one sample: probs [K+1, T] (softmax, background last), masks [T, T] with column t
    predicted by snippet t, valid [T], snippet spans t_start/t_end [T] in video seconds.

    `score`: a candidate's class probability is the source snippet's `P[c, t]` (`source`, the
    paper) or its mean over the candidate's snippets first..last (`run`: evidence of the whole
    segment, so a mask spanning background or another class's snippets scores lower); either way
    times the mask factor: the column's maximum over the run (`mask_score="max"`, the paper) or the
    soft IoU of the candidate with the column, sum of the column inside / (length + sum outside),
    over valid snippets (`"iou"`: how well the segment matches the whole mask, so a part of a
    larger mask and a span over low-mask gaps score lower than the segment the mask draws).

    `mode`: each threshold's activated positions of column t give one run from the first to the
    last (`long`), one run per connected group (`short`), or only the group that holds snippet t
    (`own`: the column's other groups are masks of other instances, e.g. repeats of its class), or
    both the `own` group and the `long` span (`own+long`: a mask may break inside its own action as
    well as reach a neighbour; `mask_score="iou"` then ranks the two).

    A mask position activates when `masks[i, t] >= theta` and snippet i is valid. Ties in actionness
    (top-m1) and class probability (top-k) go to the lower index. Output sorted by descending score;
    equal scores the longest segment first, then by (start, end, label) (`long`: by (start, end,
    label) only, since there a lower threshold's span reaches further into other instances).
    """
    probs, valid, t_start, t_end = _check_sample(probs, valid, t_start, t_end)
    t = probs.shape[1]
    masks = np.asarray(masks, dtype=np.float64)
    if masks.shape != (t, t):
        raise ValueError(f"masks must be [T, T] = [{t}, {t}], got {masks.shape}")
    flat = decode_many(probs[None], masks[None], valid[None], t_start[None], t_end[None],
                       np.asarray([duration], dtype=np.float64), mode=mode, topk_classes=topk_classes,
                       thresholds=thresholds, m1=m1, m2=m2, theta_c=theta_c, score=score,
                       mask_score=mask_score)
    return Detections(flat.segments, flat.labels, flat.scores)


def decode_many(
    probs: np.ndarray,
    masks: np.ndarray,
    valid: np.ndarray,
    t_start: np.ndarray,
    t_end: np.ndarray,
    durations: np.ndarray,
    *,
    mode: str = "long",
    topk_classes: int = 1,
    thresholds: Sequence[float] | np.ndarray | None = DEFAULT_THRESHOLDS,
    m1: int = 50,
    m2: int = 200,
    theta_c: float = 0.1,
    score: str = "source",
    mask_score: str = "max",
) -> FlatDetections:
    """`decode` of a whole batch at once: probs [B, K+1, T], masks [B, T, T], valid / t_start /
    t_end [B, T], durations [B]; group b of the result is exactly `decode` of sample b.

    Every candidate of every sample is one row of the same arrays (no loop over samples, snippets
    or candidates); the arithmetic is `decode`'s, element by element, so the numbers are its own.
    """
    probs = np.asarray(probs, dtype=np.float64)
    masks = np.asarray(masks, dtype=np.float64)
    valid, t_start, t_end, durations = _batch_arrays(valid, t_start, t_end, durations)
    b, t = probs.shape[0], probs.shape[2]
    num_classes = probs.shape[1] - 1
    thr = _check_options(num_classes, mode, topk_classes, thresholds)
    if score not in SCORES:
        raise GsmtError("decode", f"unknown score {score!r}; expected one of {', '.join(SCORES)}")
    if mask_score not in MASK_SCORES:
        raise GsmtError("decode", f"unknown mask_score {mask_score!r}; expected one of {', '.join(MASK_SCORES)}")
    m, n_thr = min(int(m1), t), len(thr)
    if b == 0 or m <= 0 or n_thr == 0:
        return FlatDetections.empty()

    n_keep = np.minimum(int(m1), valid.sum(axis=1))  # [B]
    actionness = np.where(valid, probs[:, :num_classes].max(axis=1), -np.inf)  # [B, T]
    kept = np.argsort(-actionness, axis=1, kind="stable")[:, :m]  # [B, m]
    # columns[b, j] is the mask predicted by snippet kept[b, j]; rows past a sample's n_keep are off.
    columns = np.take_along_axis(masks, kept[:, None, :], axis=2).transpose(0, 2, 1)  # [B, m, T]
    usable = np.arange(m)[None, :] < n_keep[:, None]  # [B, m]
    rows, first, last, mask_factor = _candidate_runs(columns, kept, usable, valid, thr, mode, mask_score)

    sample = rows // (m * n_thr)  # [R]
    j = (rows // n_thr) % m
    snippet = kept[sample, j]  # [R] source snippet of each run
    fg_kept = np.take_along_axis(probs[:, :num_classes], kept[:, None, :], axis=2)  # [B, K, m]
    top = np.argsort(-fg_kept, axis=1, kind="stable")[:, :topk_classes]  # [B, k, m] (ties: lower id)
    labels = top[sample, :, j].ravel()  # [R * k]
    k = topk_classes
    rs = np.repeat(sample, k)
    first, last, snippet, mask_factor = (np.repeat(x, k) for x in (first, last, snippet, mask_factor))
    class_prob = _class_prob(probs[:, :num_classes], score, rs, labels, snippet, first, last)
    return _finish_many(rs, t_start[rs, first], t_end[rs, last], labels, class_prob * mask_factor, durations,
                        theta_c, m2, longest_first=mode != "long")


def decode_pairs_many(
    probs: np.ndarray,
    columns: np.ndarray,
    pair_snippet: np.ndarray,
    pair_class: np.ndarray,
    valid: np.ndarray,
    t_start: np.ndarray,
    t_end: np.ndarray,
    durations: np.ndarray,
    *,
    mode: str = "own",
    thresholds: Sequence[float] | np.ndarray | None = DEFAULT_THRESHOLDS,
    m2: int = 200,
    theta_c: float = 0.1,
    score: str = "source",
    mask_score: str = "max",
) -> FlatDetections:
    """Decoding of a multi-label model (issue 32): every (snippet, class) pair of a sample has its own
    mask. probs [B, K, T] (a sigmoid per class), columns [B, P, T] the masks of the pairs
    (pair_snippet, pair_class) [B, P] (class -1: no pair), valid / t_start / t_end [B, T],
    durations [B]. Each pair's column gives runs exactly as `decode_many` gives a snippet's (the same
    `mode`, thresholds and mask scores); a run's label is the pair's class and its score
    `P[c, t]` (or the run's mean, `score="run"`) times the mask factor. `select_pairs` picks the
    pairs: every class above `theta_c` at a snippet, the most probable first.
    """
    probs = np.asarray(probs, dtype=np.float64)
    columns = np.asarray(columns, dtype=np.float64)
    valid, t_start, t_end, durations = _batch_arrays(valid, t_start, t_end, durations)
    pair_snippet = np.asarray(pair_snippet, dtype=np.int64)
    pair_class = np.asarray(pair_class, dtype=np.int64)
    thr = _check_options(probs.shape[1], mode, 1, thresholds)
    if score not in SCORES:
        raise GsmtError("decode", f"unknown score {score!r}; expected one of {', '.join(SCORES)}")
    if mask_score not in MASK_SCORES:
        raise GsmtError("decode", f"unknown mask_score {mask_score!r}; expected one of {', '.join(MASK_SCORES)}")
    b, m = pair_class.shape
    if b == 0 or m == 0 or len(thr) == 0:
        return FlatDetections.empty()
    usable = pair_class >= 0
    kept = np.where(usable, pair_snippet, 0)
    rows, first, last, mask_factor = _candidate_runs(columns, kept, usable, valid, thr, mode, mask_score)
    sample = rows // (m * len(thr))
    j = (rows // len(thr)) % m
    snippet, labels = kept[sample, j], pair_class[sample, j]
    class_prob = _class_prob(probs, score, sample, labels, snippet, first, last)
    return _finish_many(sample, t_start[sample, first], t_end[sample, last], labels, class_prob * mask_factor,
                        durations, theta_c, m2, longest_first=mode != "long")


def select_pairs(probs: np.ndarray, valid: np.ndarray, theta_c: float, m1: int,
                 per_snippet: int | None = None, colabel_ratio: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """The (snippet, class) pairs a multi-label model decodes: per sample every valid snippet's
    classes with P[c, t] >= theta_c (no candidate of a pair below it can reach theta_c), at most
    `m1`, the most probable first (ties: lower snippet, then lower class). `per_snippet=k`: the
    `m1` snippets of highest actionness (best class probability; ties: lower snippet), each with
    its k most probable classes at or above theta_c (ties: lower class), as `decode_many` picks a
    one-label model's candidates. `colabel_ratio`: only classes with P[c, t] >= colabel_ratio x the
    snippet's top class probability. -> (pair_snippet, pair_class) [B, P], P = the largest count,
    padding -1."""
    b, k, t = probs.shape
    best = probs.max(axis=1)  # [B, T]: each snippet's top class probability
    usable = valid[:, None, :] & (probs >= theta_c)
    if colabel_ratio > 0:
        usable &= probs >= colabel_ratio * best[:, None, :]
    # index = snippet * K + class
    flat = np.where(usable, probs, -np.inf).transpose(0, 2, 1).reshape(b, t * k)
    if per_snippet is None:
        order = np.argsort(-flat, axis=1, kind="stable")[:, :min(int(m1), t * k)]
    else:
        actionness = np.where(valid, best, -np.inf)
        kept = np.argsort(-actionness, axis=1, kind="stable")[:, :min(int(m1), t)]  # [B, m]
        top = np.argsort(-np.take_along_axis(probs, kept[:, None, :], axis=2), axis=1,
                         kind="stable")[:, :min(int(per_snippet), k)]  # [B, k', m]
        pairs = (kept[:, None, :] * k + top).transpose(0, 2, 1).reshape(b, -1)  # snippet by snippet
        # usable pairs first, each group in the order above (np.argsort is stable)
        ok = np.take_along_axis(flat, pairs, axis=1) > -np.inf
        order = np.take_along_axis(pairs, np.argsort(~ok, axis=1, kind="stable"), axis=1)
    ok = np.take_along_axis(flat, order, axis=1) > -np.inf
    size = max(1, int(ok.sum(axis=1).max())) if b else 1
    order, ok = order[:, :size], ok[:, :size]
    return np.where(ok, order // k, -1), np.where(ok, order % k, -1)


def _batch_arrays(valid, t_start, t_end, durations) -> tuple[np.ndarray, ...]:
    """valid bool, t_start / t_end float64 [B, T] and durations float64 [B] as NumPy arrays."""
    return (np.asarray(valid, dtype=bool), np.asarray(t_start, dtype=np.float64),
            np.asarray(t_end, dtype=np.float64), np.asarray(durations, dtype=np.float64).reshape(-1))


def _candidate_runs(columns: np.ndarray, kept: np.ndarray, usable: np.ndarray, valid: np.ndarray,
                    thr: np.ndarray, mode: str, mask_score: str):
    """Runs of every usable column of [B, m, T] at every threshold, as `decode` describes `mode`:
    (rows, first, last, mask_factor), row = (b * m + j) * n_thr + threshold; `kept[b, j]` is the
    snippet that predicted column j (the `own` run is the one holding it)."""
    b, m, t = columns.shape
    n_thr = len(thr)
    active4 = ((columns[:, :, None, :] >= thr[None, None, :, None]) & valid[:, None, None, :]
               & usable[:, :, None, None])  # [B, m, n_thr, T]
    active = active4.reshape(-1, t)  # row (b, j, threshold), as `decode` orders one sample's rows

    if mode == "long":
        rows, first, last = _spans(active)
        mask_factor = _column_max(columns, valid)[rows // n_thr]
    else:
        rows, first, last = find_runs(active)
        if mode in ("own", "own+long"):  # other runs of a snippet's mask are other instances' masks
            source = kept.reshape(-1)[rows // n_thr]
            held = (first <= source) & (source <= last)
            rows, first, last = rows[held], first[held], last[held]
        # Every position of a run is activated: its maximum is the column's over first..last.
        mask_factor = _run_max(columns.reshape(-1, t), rows // n_thr, first, last)
        if mode == "own+long":
            spans = _spans(active)
            mask_factor = np.concatenate([mask_factor, _column_max(columns, valid)[spans[0] // n_thr]])
            rows, first, last = (np.concatenate(pair) for pair in zip((rows, first, last), spans))
    if mask_score == "iou":
        mask_factor = _soft_iou(columns, valid, rows // n_thr, first, last)
    return rows, first, last, mask_factor


def _class_prob(fg_probs: np.ndarray, score: str, sample: np.ndarray, labels: np.ndarray, snippet: np.ndarray,
                first: np.ndarray, last: np.ndarray) -> np.ndarray:
    """A candidate's class probability: P[c, t] of its source snippet (`source`) or the mean of P[c]
    over first..last (`run`); fg_probs [B, K, T]."""
    if score == "run":
        b, k, _ = fg_probs.shape
        csum = np.concatenate([np.zeros((b, k, 1)), np.cumsum(fg_probs, axis=2)], axis=2)
        return (csum[sample, labels, last + 1] - csum[sample, labels, first]) / (last - first + 1)
    return fg_probs[sample, labels, snippet]


def _finish_many(sample: np.ndarray, starts: np.ndarray, ends: np.ndarray, labels: np.ndarray,
                 scores: np.ndarray, durations: np.ndarray, theta_c: float, m2: int,
                 longest_first: bool = False) -> FlatDetections:
    """`_finish` for every sample at once: the sample is the first sort key of each step."""
    keep = scores >= theta_c
    sample, starts, ends, labels, scores = sample[keep], starts[keep], ends[keep], labels[keep], scores[keep]
    duration = durations[sample]
    starts = np.clip(starts, 0.0, duration)
    ends = np.clip(ends, 0.0, duration)
    order = np.lexsort((-scores, labels, ends, starts, sample))
    sample, starts, ends, labels, scores = (x[order] for x in (sample, starts, ends, labels, scores))
    first = np.ones(len(order), dtype=bool)
    first[1:] = ((np.diff(sample) != 0) | (np.diff(starts) != 0) | (np.diff(ends) != 0)
                 | (np.diff(labels) != 0))
    sample, starts, ends, labels, scores = (x[first] for x in (sample, starts, ends, labels, scores))
    # By descending score within each sample, equal scores in (start, end, label) order (lexsort
    # is stable), or with `longest_first` the longest of them first. Equal scores are structural: a
    # column's runs at lower thresholds contain its runs at higher ones and share their maximum.
    # Runs that hold together are parts of one instance, and the whole must rank before its parts
    # for Soft-NMS and `decay_fragments` to push the parts down (by start and end, a part sharing
    # the instance's start came first). A `long` span at a lower threshold instead reaches further
    # across neighbouring instances, so `long` keeps the (start, end) order.
    order = np.lexsort((starts - ends, -scores, sample) if longest_first else (-scores, sample))
    sample, starts, ends, labels, scores = (x[order] for x in (sample, starts, ends, labels, scores))
    rank = np.arange(len(sample)) - np.searchsorted(sample, sample, side="left")
    keep = rank < m2
    return FlatDetections(sample[keep], np.stack([starts[keep], ends[keep]], axis=1), labels[keep], scores[keep])


def actionness_decode(
    probs: np.ndarray,
    valid: np.ndarray,
    t_start: np.ndarray,
    t_end: np.ndarray,
    duration: float,
    *,
    topk_classes: int = 1,
    thresholds: Sequence[float] | np.ndarray | None = DEFAULT_THRESHOLDS,
    m2: int = 200,
    theta_c: float = 0.1,
) -> Detections:
    """Mask-free decoding (paper Table 7): runs of valid snippets with actionness >= theta.

    Class: argmax of the run's mean class probabilities; score: mean actionness * that mean probability.
    """
    probs, valid, t_start, t_end = _check_sample(probs, valid, t_start, t_end)
    num_classes = probs.shape[0] - 1
    thr = _check_options(num_classes, "short", topk_classes, thresholds)
    if not valid.any() or len(thr) == 0:
        return Detections.empty()

    fg = probs[:num_classes]
    actionness = np.where(valid, fg.max(axis=0), 0.0)
    active = (actionness[None, :] >= thr[:, None]) & valid  # [n_thr, T]
    _, first, last = find_runs(active)
    length = (last - first + 1).astype(np.float64)

    def run_mean(x: np.ndarray) -> np.ndarray:
        csum = np.concatenate([np.zeros(x.shape[:-1] + (1,)), np.cumsum(x, axis=-1)], axis=-1)
        return (csum[..., last + 1] - csum[..., first]) / length

    mean_probs = run_mean(fg)  # [K, R]
    mean_act = run_mean(actionness)  # [R]
    classes = _top_classes(mean_probs, topk_classes)  # [R, k]
    labels = classes.ravel()
    run = np.repeat(np.arange(len(first)), topk_classes)
    scores = mean_act[run] * mean_probs[labels, run]
    return _finish(t_start[first[run]], t_end[last[run]], labels, scores, float(duration), theta_c, m2)


def decode_batch(
    probs: np.ndarray | Sequence[np.ndarray],
    masks: np.ndarray | Sequence[np.ndarray],
    valid: np.ndarray | Sequence[np.ndarray],
    t_start: np.ndarray | Sequence[np.ndarray],
    t_end: np.ndarray | Sequence[np.ndarray],
    durations: np.ndarray | Sequence[float],
    **options,
) -> list[Detections]:
    """`decode` for each sample of a batch ([B, ...] arrays or lists of equal-length samples);
    options as for `decode`. One `decode_many` pass."""
    flat = decode_many(np.asarray(probs), np.asarray(masks), np.asarray(valid), np.asarray(t_start),
                       np.asarray(t_end), np.asarray(durations), **options)
    return flat.split(len(probs))


def to_video_time(dets: Detections, offset: float, duration: float) -> Detections:
    """Shift sample-relative segments by `offset` seconds and clip to [0, duration].

    Not needed when t_start/t_end are already video seconds (the dataset's convention): then merging
    the windows of a video is `merge_windows`.
    """
    segments = np.clip(dets.segments + float(offset), 0.0, float(duration))
    return Detections(segments, dets.labels.copy(), dets.scores.copy())
