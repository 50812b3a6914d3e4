"""Training targets of one sample: a class per snippet and a global mask per foreground snippet (DESIGN.md section 4)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gsmt.errors import Faults

IGNORE = -1


@dataclass
class Targets:
    """cls[T] int64 (class, K = background, -1 = ignored); mask[T, T] float32, column t = snippet t's mask; fg[T] bool."""

    cls: np.ndarray
    mask: np.ndarray
    fg: np.ndarray


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
) -> Targets:
    """Class and mask targets for snippets spanning `[t_start[t], t_end[t]]` seconds.

    Instances are clipped to `span = (lo, hi)`; those without a positive-length overlap with it are
    ignored. Zero/negative-length instances inside the span are skipped and counted in `faults`.
    Snippet t (valid) belongs to instance [s, e] when `s <= c_t <= e`, `c_t` its centre; an instance
    holding no valid centre goes to the valid snippet nearest its midpoint (lower index on a tie).
    Several instances: the shortest wins, then the lower class id, then the earlier listed.
    """
    segs = _as_segments(segments)
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    valid = np.asarray(valid, dtype=bool)
    centers = (np.asarray(t_start, dtype=np.float64) + np.asarray(t_end, dtype=np.float64)) / 2.0
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
    cs, ce, lab = cs[keep], ce[keep], labels[keep]

    # inside[n, t]: valid snippet t's centre lies in instance n.
    inside = (cs[:, None] <= centers[None, :]) & (centers[None, :] <= ce[:, None]) & valid[None, :]
    empty = ~inside.any(axis=1)
    if empty.any() and valid.any():
        mid = (cs[empty] + ce[empty]) / 2.0
        dist = np.where(valid[None, :], np.abs(centers[None, :] - mid[:, None]), np.inf)
        inside[np.flatnonzero(empty), np.argmin(dist, axis=1)] = True

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
    return Targets(cls=cls, mask=mask, fg=fg)
