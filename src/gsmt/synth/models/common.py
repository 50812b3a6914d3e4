"""What the feature models share: seeded random streams, the latent size, and the `FamilyWorld` of
the `phases` / `motion` models with their time sampling, background and map helpers.

Every random stream is keyed by the seed and a stream tag (and by the video id for per-video
content), so a video's features do not depend on which other videos are rendered. The tags are
fixed for good: changing one changes every dataset drawn with a seed.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

import numpy as np

from gsmt.annotations.types import Video
from gsmt.data.grid import Grid

LATENT_DIM = 32
# Stream tags keep the random streams of one seed independent of each other.
WORLD, TIMELINES, VIDEO, SAMPLE = 1, 2, 3, 4  # prototype model, drawn timelines, sampled real timelines
FAMILY_WORLD, FAMILY_VIDEO = 11, 13  # phases / motion models (world stream also keyed by the model's MODEL_KEY)
SUBSAMPLES = 8  # latent samples per snippet window (frames are pooled as a backbone pools them)


def stream(seed: int, *keys: int) -> np.random.Generator:
    """The random stream of `seed` under the given tags / keys."""
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, *keys])


def video_key(video_id: str) -> int:
    """The key of a video's own stream: its features depend on its id, not on the other videos."""
    return zlib.crc32(video_id.encode("utf-8"))


# ---------------------------------------------------------------------------------------------
# phases / motion
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FamilyWorld:
    """Dataset-level randomness of one feature model (which arrays are used depends on the model)."""

    model: str
    difficulty: float
    primitives: np.ndarray  # phases: [P, Z] dictionary; motion: [K, 2, Z] loop directions
    sequences: np.ndarray  # phases: [K, 4] primitive ids; motion: [K, 2] (frequency Hz, centre scale)
    centres: np.ndarray  # [K, Z] small class offsets
    w1: np.ndarray  # [Z, H]
    b1: np.ndarray  # [H]
    w2: np.ndarray  # [H, D]
    b2: np.ndarray  # [D]
    w_motion: np.ndarray  # [Z, D] motion-energy channel (motion model)

    @property
    def feature_dim(self) -> int:
        return self.w2.shape[1]


def family_world(model: str, difficulty: float, primitives: np.ndarray, sequences: np.ndarray,
                 centres: np.ndarray, feature_dim: int, rng: np.random.Generator) -> FamilyWorld:
    """The world of `model` around its class structure: the latent -> feature map is drawn from
    `rng` after the structure (the same draws in the same order for every family model)."""
    Z, H = LATENT_DIM, 96
    w1 = rng.standard_normal((Z, H)) / math.sqrt(Z)
    b1 = 0.2 * rng.standard_normal(H)
    w2 = np.abs(rng.standard_normal((H, feature_dim))) * rng.choice([-1.0, 1.0], (H, feature_dim)) * math.sqrt(2.0 / H)
    b2 = 0.3 * rng.standard_normal(feature_dim)
    w_motion = rng.standard_normal((Z, feature_dim)) / math.sqrt(Z)
    f = np.float32
    return FamilyWorld(model, float(difficulty), primitives, sequences, centres, w1.astype(f), b1.astype(f),
                       w2.astype(f), b2.astype(f), w_motion.astype(f))


def sample_times(grid: Grid, n: int) -> np.ndarray:
    """[n, SUBSAMPLES] times (seconds) spread over each snippet's window of frames."""
    first = np.arange(n, dtype=np.float64)[:, None] * grid.feature_stride
    offs = (np.arange(SUBSAMPLES) + 0.5) / SUBSAMPLES * max(grid.feature_window, grid.feature_stride)
    return (first + offs[None, :]) / grid.fps


def smooth_noise(t: np.ndarray, rng: np.random.Generator, period: float, dims: int) -> np.ndarray:
    """A random walk sampled every `period` seconds, linearly interpolated at times t (any shape)."""
    n = int(t.max() // period) + 3 if t.size else 3
    walk = np.cumsum(rng.standard_normal((n, dims)), axis=0) * math.sqrt(1.0 / n)
    walk -= walk.mean(axis=0)
    x = t.reshape(-1) / period
    i0 = np.clip(np.floor(x).astype(np.int64), 0, n - 2)
    w = (x - i0)[:, None]
    return (walk[i0] * (1 - w) + walk[i0 + 1] * w).reshape(*t.shape, dims)


def scene(t: np.ndarray, duration: float, rng: np.random.Generator, mean_shot: float, amp: float) -> np.ndarray:
    """Piecewise-constant scene vectors: shots of exponential length, a new vector after each cut."""
    cuts = np.cumsum(rng.exponential(mean_shot, int(duration / mean_shot) * 3 + 4))
    cuts = cuts[cuts < duration]
    vectors = amp * rng.standard_normal((len(cuts) + 1, LATENT_DIM))
    return vectors[np.searchsorted(cuts, t)]


def instances(video: Video) -> tuple[np.ndarray, np.ndarray]:
    """The video's segments of positive length and their labels."""
    segs = np.asarray(video.segments, dtype=np.float64).reshape(-1, 2)
    keep = segs[:, 1] > segs[:, 0]
    return segs[keep], np.asarray(video.labels, dtype=np.int64).reshape(-1)[keep]
