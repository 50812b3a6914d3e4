"""Training targets of one sample: a class per snippet and a global mask per foreground snippet (DESIGN.md section 4)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gsmt.errors import Faults

IGNORE = -1


@dataclass
class Targets:
    """cls[T] int64 (class, K = background, -1 = ignored); mask[T, T] float32, column t = snippet t's mask; fg[T] bool.

    With `multilabel` (issue 32), also every label of every snippet and one mask per (snippet,
    class) pair: `labels[K, T]` float32 (1 where snippet t lies in an instance of class k),
    `pair_snippet[P]`, `pair_class[P]` int64 and `pair_mask[P, T]` float32 (the mask of the shortest
    class-k instance holding the snippet; then the earlier listed), pairs in (snippet, class) order."""

    cls: np.ndarray
    mask: np.ndarray
    fg: np.ndarray
    labels: np.ndarray | None = None
    pair_snippet: np.ndarray | None = None
    pair_class: np.ndarray | None = None
    pair_mask: np.ndarray | None = None


def _as_segments(x: np.ndarray | None) -> np.ndarray:
    if x is None:
        return np.zeros((0, 2), dtype=np.float64)
    return np.asarray(x, dtype=np.float64).reshape(-1, 2)


def make_targets(
    segments: np.ndarray,
    labels: np.ndarray,
    t_start: np.ndarray,
    t_end: np.ndarray,
    valid: np.ndarray,
    num_classes: int,
    *,
    span: tuple[float, float],
    ambiguous: np.ndarray | None = None,
    faults: Faults | None = None,
    inner_edges: tuple[bool, bool] = (False, False),
    multilabel: bool = False,
) -> Targets:
    """Class and mask targets for snippets spanning `[t_start[t], t_end[t]]` seconds.

    Instances are clipped to `span = (lo, hi)`; those without a positive-length overlap with it are
    ignored. Zero/negative-length instances inside the span are skipped and counted in `faults`.
    Snippet t (valid) belongs to instance [s, e] when `s <= c_t <= e`, `c_t` its centre; an instance
    holding no valid centre goes to the valid snippet nearest its midpoint (lower index on a tie),
    unless it was cut by an inner window edge (`inner_edges`: the span's start / end is an edge
    shared with a neighbouring window): such a remnant is the neighbour's, which holds it whole.
    Several instances: the shortest wins, then the lower class id, then the earlier listed.
    """
    segs = _as_segments(segments)
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    valid = np.asarray(valid, dtype=bool)
    t_start, t_end = np.asarray(t_start, dtype=np.float64), np.asarray(t_end, dtype=np.float64)
    centers = (t_start + t_end) / 2.0
    T = centers.shape[0]
    lo, hi = float(span[0]), float(span[1])

    s, e = segs[:, 0], segs[:, 1]
    degenerate = e <= s
    # A degenerate instance is a fault only where it sits in this sample; elsewhere it is not ours.
    in_span = (np.minimum(s, e) <= hi) & (np.maximum(s, e) >= lo)
    if faults is not None:
        faults.add("zero-length segments skipped", int(np.count_nonzero(degenerate & in_span)))
    cs, ce = np.maximum(s, lo), np.minimum(e, hi)
    keep = ~degenerate & (ce > cs)
    cut = (bool(inner_edges[0]) & (s < lo)) | (bool(inner_edges[1]) & (e > hi))
    cs, ce, lab, cut, mid_uncut = cs[keep], ce[keep], labels[keep], cut[keep], ((s + e) / 2.0)[keep]

    # inside[n, t]: valid snippet t's centre lies in instance n.
    inside = (cs[:, None] <= centers[None, :]) & (centers[None, :] <= ce[:, None]) & valid[None, :]
    empty = ~inside.any(axis=1)
    if empty.any() and valid.any():
        short = empty & ~cut
        mid = (cs[short] + ce[short]) / 2.0
        dist = np.where(valid[None, :], np.abs(centers[None, :] - mid[:, None]), np.inf)
        inside[np.flatnonzero(short), np.argmin(dist, axis=1)] = True
        # A remnant cut by an inner window edge is taken only by the snippet whose span holds the
        # whole instance's midpoint (the snippet it has on the full grid, so windows agree); a long
        # action's remnant is the neighbour window's, never a one-snippet instance at this edge.
        edge = np.flatnonzero(empty & cut)
        holds = ((t_start[None, :] <= mid_uncut[edge, None]) & (mid_uncut[edge, None] < t_end[None, :])
                 & valid[None, :])
        rows, cols_ = np.nonzero(holds)
        inside[edge[rows], cols_] = True

    # Rank instances by (length, class id, order): the lowest rank inside a snippet owns it.
    n = len(cs)
    order = np.lexsort((np.arange(n), lab, ce - cs))
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n)
    ranked = np.where(inside, rank[:, None], n)
    fg = ranked.min(axis=0, initial=n) < n
    owner = np.argmin(ranked, axis=0) if n else np.zeros(T, dtype=np.int64)

    cls = np.where(valid, num_classes, IGNORE).astype(np.int64)
    amb = _as_segments(ambiguous)
    if len(amb):
        in_amb = ((amb[:, :1] <= centers[None, :]) & (centers[None, :] <= amb[:, 1:])).any(axis=0)
        cls[in_amb & ~fg] = IGNORE
    cls[fg] = lab[owner[fg]]

    mask = np.zeros((T, T), dtype=np.float32)
    mask[:, fg] = inside[owner[fg]].T
    targets = Targets(cls=cls, mask=mask, fg=fg)
    if multilabel:
        _add_pairs(targets, inside, lab, ce - cs, num_classes)
    return targets


def _add_pairs(targets: Targets, inside: np.ndarray, lab: np.ndarray, length: np.ndarray, num_classes: int) -> None:
    """Every label of every snippet, and the owner of each (snippet, class) pair: the shortest
    instance of that class holding the snippet (then the earlier listed), as `make_targets` ranks
    instances for the single label; a snippet inside a long instance of one class and a short one of
    another so keeps both extents, each under its own class."""
    T = inside.shape[1]
    labels = np.zeros((num_classes, T), dtype=np.float32)
    inst, snip = np.nonzero(inside)
    labels[lab[inst], snip] = 1.0
    # Sorted by (snippet, class, length, order): the first row of each (snippet, class) owns it.
    order = np.lexsort((inst, length[inst], lab[inst], snip))
    inst, snip = inst[order], snip[order]
    cls = lab[inst]
    first = np.ones(len(inst), dtype=bool)
    first[1:] = (np.diff(snip) != 0) | (np.diff(cls) != 0)
    inst, snip, cls = inst[first], snip[first], cls[first]
    targets.labels = labels
    targets.pair_snippet = snip.astype(np.int64)
    targets.pair_class = cls.astype(np.int64)
    targets.pair_mask = inside[inst].astype(np.float32).reshape(-1, T)
