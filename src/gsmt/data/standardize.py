"""Per-dimension statistics of training features, for the model's input standardisation (issue 34).

Features from a backbone gsmt did not train (a random-weight one is the extreme case) can vary by
0.01 around 0.34 in every dimension: a model fed them raw learns little. The trainer measures
each dimension's mean and spread over every snippet of the training videos, one video at a time
(memory: one video's features), and the model subtracts the means and divides by a scale
(`GSMT.feature_mean`, `GSMT.feature_std`; `model.standardize`: `global`, one scale for every
dimension, or `dims`, each dimension's own), so prediction, detection and the API apply the same
numbers from the checkpoint.

`auto` (the default) standardises only features far from the scale the presets were tuned on:
features whose spread across snippets is a small share of their size (a random-weight VideoMAE on
pattern clips: 0.10 around 0.69, a share of 0.14; the report of issue 34: 0.01 around 0.34), or
whose spread is tiny or huge. On the benchmark family's features (shares 0.55-0.73, spreads
0.40-0.59) it leaves them as they are: there, `global` lowered the `thumos` preset on `phases` from
56.0 to 51.5 and `dims` to 45.9 (BENCHMARKS.md, *Input standardisation*).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from gsmt.data.features import FeatureStore

AUTO_MIN_SHARE = 0.3  # spread / RMS below this: features that barely vary against their size
AUTO_SPREAD = (0.05, 10.0)  # a spread outside this range is standardised whatever its share

# A dimension whose spread is below this fraction of the widest one's is constant in all but
# rounding: it is centred but not scaled (scaling would blow its rounding noise up to unit size).
MIN_RELATIVE_STD = 1e-6


@dataclass(frozen=True)
class FeatureStats:
    """Running moments of `count` snippets: per-dimension `mean` and `m2` (sum of squared deviations), float64."""

    count: int
    mean: np.ndarray
    m2: np.ndarray

    @classmethod
    def of(cls, feats: np.ndarray) -> FeatureStats:
        """The moments of one `[T, D]` array."""
        x = np.asarray(feats, dtype=np.float64)
        mean = x.mean(axis=0) if len(x) else np.zeros(x.shape[1])
        return cls(len(x), mean, ((x - mean) ** 2).sum(axis=0))

    def merge(self, other: FeatureStats) -> FeatureStats:
        """The moments of both sets (Chan et al.'s pairwise update: no catastrophic cancellation)."""
        n = self.count + other.count
        if other.count == 0:
            return self
        if self.count == 0:
            return other
        delta = other.mean - self.mean
        mean = self.mean + delta * (other.count / n)
        m2 = self.m2 + other.m2 + delta**2 * (self.count * other.count / n)
        return FeatureStats(n, mean, m2)

    def scale(self, mode: str) -> np.ndarray:
        """What each dimension is divided by: its own spread (`dims`) or one spread for all, the RMS of
        the centred features (`global`: the dimensions keep their relative scales)."""
        if mode == "dims":
            return self.std()
        if mode == "global":
            spread = self.spread()
            return np.full(len(self.m2), spread if spread > 0 else 1.0)
        raise ValueError(f"unknown standardisation {mode!r}")

    def spread(self) -> float:
        """The RMS of the centred features over every dimension (what `global` divides by)."""
        return float(np.sqrt(self.m2.sum() / max(self.count * len(self.m2), 1)))

    def rms(self) -> float:
        """The RMS of the features themselves: spread and offsets together."""
        return float(np.sqrt(self.spread() ** 2 + np.mean(self.mean**2))) if len(self.mean) else 0.0

    def std(self) -> np.ndarray:
        """Population standard deviation per dimension; 1 where a dimension is (nearly) constant."""
        std = np.sqrt(self.m2 / max(self.count, 1))
        floor = MIN_RELATIVE_STD * float(std.max(initial=0.0))
        return np.where(std > floor, std, 1.0) if floor > 0 else np.ones_like(std)


def auto_mode(stats: FeatureStats) -> tuple[str, str]:
    """What `model.standardize: auto` becomes for these statistics, and why (one line)."""
    spread, rms = stats.spread(), stats.rms()
    share = spread / rms if rms > 0 else 0.0
    seen = f"the training features vary by {spread:.3g} around a size of {rms:.3g}"
    if share < AUTO_MIN_SHARE or not AUTO_SPREAD[0] <= spread <= AUTO_SPREAD[1]:
        return "global", f"{seen}: centred and scaled to unit spread; --set model.standardize=none to keep them"
    return "none", f"{seen}, a scale the presets were tuned on: used as read; --set model.standardize=global to scale"


def feature_stats(store: FeatureStore, video_ids: Iterable[str], feature_dim: int) -> FeatureStats:
    """The moments of every snippet of these videos, read one video at a time."""
    stats = FeatureStats(0, np.zeros(feature_dim), np.zeros(feature_dim))
    for vid in video_ids:
        stats = stats.merge(FeatureStats.of(store.load(vid)))
    return stats
