"""Per-dimension statistics of training features, for the model's input standardisation (issue 34).

Features from a backbone gsmt did not train (a random-weight one is the extreme case) can vary by
0.01 around 0.34 in every dimension: a model fed them raw learns little. The trainer measures
each dimension's mean and spread over every snippet of the training videos, one video at a time
(memory: one video's features), and the model subtracts the means and divides by a scale
(`GSMT.feature_mean`, `GSMT.feature_std`; `model.standardize`: `global`, one scale for every
dimension, or `dims`, each dimension's own), so prediction, detection and the API apply the same
numbers from the checkpoint.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from gsmt.data.features import FeatureStore

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
            spread = float(np.sqrt(self.m2.sum() / max(self.count * len(self.m2), 1)))
            return np.full(len(self.m2), spread if spread > 0 else 1.0)
        raise ValueError(f"unknown standardisation {mode!r}")

    def std(self) -> np.ndarray:
        """Population standard deviation per dimension; 1 where a dimension is (nearly) constant."""
        std = np.sqrt(self.m2 / max(self.count, 1))
        floor = MIN_RELATIVE_STD * float(std.max(initial=0.0))
        return np.where(std > floor, std, 1.0) if floor > 0 else np.ones_like(std)


def feature_stats(store: FeatureStore, video_ids: Iterable[str], feature_dim: int) -> FeatureStats:
    """The moments of every snippet of these videos, read one video at a time."""
    stats = FeatureStats(0, np.zeros(feature_dim), np.zeros(feature_dim))
    for vid in video_ids:
        stats = stats.merge(FeatureStats.of(store.load(vid)))
    return stats
