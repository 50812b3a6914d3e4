"""The `phases` feature model: an action is an ordered sequence of 4 phases.

Each phase is a motion primitive drawn from a small dictionary shared by all classes (a primitive
occurs in several classes, so one snippet says little about the class: the order does). Instances
of a class repeat the same sequence at their own pace; a boundary is a phase restart or a hard
onset, not a ramp. Background: a slow random walk plus scene cuts (jumps that look like boundaries
but are none). Distractors: fragments of a class's sequence (one or two phases). The latent is
averaged over the snippet's window, then mapped.
"""

from __future__ import annotations

import math

import numpy as np

from gsmt.annotations.types import Video
from gsmt.data.grid import Grid
from gsmt.synth.models.common import (FAMILY_VIDEO, FAMILY_WORLD, LATENT_DIM, FamilyWorld, family_world, instances,
    sample_times, scene, smooth_noise, stream, video_key)

MODEL_KEY = 1  # keys its world stream (its place in the original model table; fixed for good)
# Frozen by calibration with the context-free baseline alone (BENCHMARKS.md "Benchmark family").
DIFFICULTY = 0.5


def make_world(num_classes: int, feature_dim: int, seed: int, difficulty: float = 1.0) -> FamilyWorld:
    """The class structure and the latent -> feature map of `phases`, seeded by `seed`."""
    rng = stream(seed, FAMILY_WORLD, MODEL_KEY)
    Z, K = LATENT_DIM, int(num_classes)
    n_prim = max(6, (4 * K) // 5)  # every primitive occurs in about five classes
    primitives = rng.standard_normal((n_prim, Z))
    sequences = np.stack([rng.choice(n_prim, 4, replace=False) for _ in range(K)])
    centres = 0.15 * rng.standard_normal((K, Z))
    return family_world("phases", difficulty, primitives, sequences, centres, feature_dim, rng)


def _latent(video: Video, world: FamilyWorld, t: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    d = world.difficulty
    latent = 0.8 * d * smooth_noise(t, rng, 8.0, LATENT_DIM) * math.sqrt(8.0)
    latent += scene(t, video.duration, rng, 25.0, 0.6)
    segs, labels = instances(video)
    flat = t.reshape(-1)
    # Distractors: one or two phases of a random class, shorter than an instance.
    n_frag = int(rng.poisson(0.6 * max(len(segs), 1)))
    ref = (segs[:, 1] - segs[:, 0]) if len(segs) else np.array([0.05 * video.duration])
    f_len = rng.uniform(0.3, 0.6, n_frag) * rng.choice(np.maximum(ref, 0.2), n_frag)
    f_start = rng.uniform(0.0, video.duration, n_frag)
    f_cls = rng.integers(0, len(world.sequences), n_frag)
    f_from = rng.integers(0, 3, n_frag)
    parts = [(segs, labels, np.zeros(len(segs), np.int64), np.full(len(segs), 4), rng.uniform(0.8, 1.2, len(segs))),
             (np.stack([f_start, f_start + f_len], 1), f_cls, f_from, f_from + rng.integers(1, 3, n_frag),
              rng.uniform(0.5, 0.9, n_frag))]
    total = np.zeros(flat.shape)
    acc = np.zeros((flat.shape[0], LATENT_DIM))
    for s_e, cls, p0, p1, amp in parts:
        for (s, e), c, a, b, g in zip(s_e, cls, p0, p1, amp):
            lo, hi = np.searchsorted(flat, [s - 0.3, e + 0.3])
            if hi <= lo:
                continue
            tt = flat[lo:hi]
            u = np.clip((tt - s) / (e - s), 0.0, 1.0 - 1e-9)  # progress through the instance
            pos = a + u * (b - a)  # phase position, a .. b
            k = np.floor(pos).astype(np.int64)
            frac = pos - k
            nxt = np.minimum(k + 1, b - 1)
            blend = np.clip((frac - 0.8) / 0.2, 0.0, 1.0)[:, None]  # short cross-fade between phases
            prim = world.primitives[world.sequences[c]]
            vec = prim[np.minimum(k, 3)] * (1 - blend) + prim[np.minimum(nxt, 3)] * blend
            vec = g * (vec + world.centres[c])
            onset = np.clip(np.minimum(tt - s, e - tt) / 0.15 + 0.5, 0.0, 1.0)[:, None]  # near-hard edges
            acc[lo:hi] += onset * vec
            total[lo:hi] += onset[:, 0]
    latent = latent.reshape(-1, LATENT_DIM) + acc / np.maximum(total, 1.0)[:, None]
    latent += 2.2 * d * rng.standard_normal(latent.shape)
    return latent.reshape(*t.shape, LATENT_DIM)


def render_features(video: Video, world: FamilyWorld, seed: int, grid: Grid) -> np.ndarray:
    """[T, D] float32 features of one video, `T = grid.num_snippets(duration)`."""
    n = grid.num_snippets(video.duration)
    t = sample_times(grid, n)  # [n, J]
    rng = stream(seed, FAMILY_VIDEO, video_key(video.id))
    latent = _latent(video, world, t, rng).mean(axis=1).astype(np.float32)  # pooled, then mapped
    h = np.maximum(latent @ world.w1 + world.b1, 0.0)
    x = h @ world.w2 + world.b2
    return np.maximum(x, 0.0).astype(np.float32)  # post-ReLU pooled features are non-negative
