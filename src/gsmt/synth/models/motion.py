"""The `motion` feature model (the held-out one): an action is a periodic movement of the actor.

The actor moves along a class-specific loop (two directions, shared within groups of classes; a
frequency per class, a pace and a style per instance). The snippet feature pools a non-linear map
of the latent over the window's frames plus a motion-energy channel (frame-to-frame change), as
two-stream backbones do, so the averaged position says little and the movement carries the class.
Background: a strong scene vector with cuts and drift, camera-shake bursts (energy without class),
idle fidgeting. Boundaries: motion onset with a random ramp.

No default, preset or architecture decision may look at this model.
"""

from __future__ import annotations

import math

import numpy as np

from gsmt.annotations.types import Video
from gsmt.data.grid import Grid
from gsmt.synth.models.common import (FAMILY_VIDEO, FAMILY_WORLD, LATENT_DIM, FamilyWorld, family_world, instances,
    sample_times, scene, smooth_noise, stream, video_key)

MODEL_KEY = 2  # keys its world stream (its place in the original model table; fixed for good)
# Frozen by calibration with the context-free baseline alone (BENCHMARKS.md "Benchmark family").
DIFFICULTY = 0.5


def make_world(num_classes: int, feature_dim: int, seed: int, difficulty: float = 1.0) -> FamilyWorld:
    """The class structure and the latent -> feature map of `motion`, seeded by `seed`."""
    rng = stream(seed, FAMILY_WORLD, MODEL_KEY)
    Z, K = LATENT_DIM, int(num_classes)
    groups = -(-K // 4)
    shared = rng.standard_normal((groups, Z))
    own = rng.standard_normal((K, 2, Z))
    u = 0.7 * shared[np.arange(K) // 4] + 0.7 * own[:, 0]
    v = own[:, 1]
    dirs = np.stack([u, v], axis=1)
    primitives = dirs / np.linalg.norm(dirs, axis=2, keepdims=True) * math.sqrt(Z)
    sequences = np.stack([rng.uniform(0.4, 2.0, K), rng.uniform(0.1, 0.3, K)], axis=1)
    centres = rng.standard_normal((K, Z))
    return family_world("motion", difficulty, primitives, sequences, centres, feature_dim, rng)


def _latent(video: Video, world: FamilyWorld, t: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    d = world.difficulty
    flat = t.reshape(-1)
    latent = scene(flat, video.duration, rng, 15.0, 1.2) + 2.4 * d * smooth_noise(flat, rng, 20.0, LATENT_DIM)
    segs, labels = instances(video)
    K = len(world.sequences)
    # Camera shake (energy without class) and idle fidgeting (a weak loop of a random class).
    n_shake = int(rng.poisson(0.5 * max(len(segs), 1)))
    ref = (segs[:, 1] - segs[:, 0]) if len(segs) else np.array([0.05 * video.duration])
    sh_len = rng.uniform(0.3, 1.0, n_shake) * rng.choice(np.maximum(ref, 0.3), n_shake)
    sh_start = rng.uniform(0.0, video.duration, n_shake)
    for s, length in zip(sh_start, sh_len):
        lo, hi = np.searchsorted(flat, [s, s + length])
        if hi > lo:
            direction = rng.standard_normal(LATENT_DIM)
            latent[lo:hi] += 1.5 * np.sin(2 * np.pi * rng.uniform(3.0, 6.0) * flat[lo:hi])[:, None] * direction
    n_idle = int(rng.poisson(0.4 * max(len(segs), 1)))
    i_len = rng.uniform(0.3, 0.8, n_idle) * rng.choice(np.maximum(ref, 0.3), n_idle)
    i_start = rng.uniform(0.0, video.duration, n_idle)
    events = [(s, e, c, g, style) for (s, e), c, g, style in
              zip(segs, labels, rng.uniform(0.8, 1.3, len(segs)), rng.uniform(-1, 1, (len(segs), 2)))]
    events += [(s, s + length, int(rng.integers(0, K)), 0.4, rng.uniform(-1, 1, 2))
               for s, length in zip(i_start, i_len)]
    for s, e, c, g, style in events:
        lo, hi = np.searchsorted(flat, [s - 0.5, e + 0.5])
        if hi <= lo:
            continue
        tt = flat[lo:hi]
        freq, centre_scale = world.sequences[c]
        pace = freq * (1.0 + 0.25 * style[0])
        ramp = 0.1 + 0.3 * abs(style[1])
        env = np.clip(np.minimum(tt - s, e - tt) / ramp + 0.5, 0.0, 1.0)
        env = env * env * (3 - 2 * env)
        phase = 2 * np.pi * pace * (tt - s) + 3.0 * style[1]
        u, v = world.primitives[c]
        loop = np.cos(phase)[:, None] * u + (0.6 + 0.3 * style[0]) * np.sin(phase)[:, None] * v
        latent[lo:hi] += (g * env)[:, None] * (loop + centre_scale * world.centres[c])
    latent += 1.6 * d * rng.standard_normal(latent.shape)
    return latent.reshape(*t.shape, LATENT_DIM)


def render_features(video: Video, world: FamilyWorld, seed: int, grid: Grid) -> np.ndarray:
    """[T, D] float32 features of one video, `T = grid.num_snippets(duration)`."""
    n = grid.num_snippets(video.duration)
    t = sample_times(grid, n)  # [n, J]
    rng = stream(seed, FAMILY_VIDEO, video_key(video.id))
    latent = _latent(video, world, t, rng).astype(np.float32)  # [n, J, Z]
    h = np.maximum(latent @ world.w1 + world.b1, 0.0).mean(axis=1)  # appearance stream: map, then pool
    energy = np.abs(np.diff(latent, axis=1)).mean(axis=1)  # motion stream: frame-to-frame change
    x = h @ world.w2 + world.b2 + energy @ world.w_motion
    return np.maximum(x, 0.0).astype(np.float32)  # post-ReLU pooled features are non-negative
