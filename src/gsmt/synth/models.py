"""Feature models of the semi-real benchmark family: how an action becomes snippet features.

`gsmt synth` renders features from a latent per time point through a fixed random map. The
`prototype` model (synth.py) adds a class prototype under a ramped envelope. The two models here
differ from it in mechanism, not only in noise, so that a default tuned on one of them has to hold
on another (BENCHMARKS.md "Benchmark family"):

- `phases`: an action is an ordered sequence of 4 phases, each a motion primitive drawn from a small
  dictionary shared by all classes (a primitive occurs in several classes, so one snippet says little
  about the class: the order does). Instances of a class repeat the same sequence at their own pace;
  a boundary is a phase restart or a hard onset, not a ramp. Background: a slow random walk plus
  scene cuts (jumps that look like boundaries but are none). Distractors: fragments of a class's
  sequence (one or two phases). The latent is averaged over the snippet's window, then mapped.
- `motion`: an action is a periodic movement of the actor along a class-specific loop (two
  directions, shared within groups of classes; a frequency per class, a pace and a style per
  instance). The snippet feature pools a non-linear map of the latent over the window's frames plus
  a motion-energy channel (frame-to-frame change), as two-stream backbones do, so the averaged
  position says little and the movement carries the class. Background: a strong scene vector with
  cuts and drift, camera-shake bursts (energy without class), idle fidgeting. Boundaries: motion
  onset with a random ramp.

`motion` is the held-out model: no default, preset or architecture decision may look at it.
Each model has one difficulty knob (`difficulty`: scales the white noise and the slow background
drift); the frozen values were set with the context-free baseline alone (BENCHMARKS.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from gsmt.annotations.load import Video
from gsmt.data.grid import Grid

FEATURE_MODELS = ("prototype", "phases", "motion")
HELD_OUT = "motion"
# Frozen by calibration with the context-free baseline alone (BENCHMARKS.md "Benchmark family").
FROZEN_DIFFICULTY = {"phases": 0.5, "motion": 0.5}
LATENT_DIM = 32
SUBSAMPLES = 8  # latent samples per snippet window (frames are pooled as a backbone pools them)
_WORLD, _VIDEO = 11, 13  # stream tags, distinct from synth.py's


def _rng(seed: int, *keys: int) -> np.random.Generator:
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, *keys])


def _video_key(video_id: str) -> int:
    import zlib

    return zlib.crc32(video_id.encode("utf-8"))


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


def make_family_world(model: str, num_classes: int, feature_dim: int, seed: int,
                      difficulty: float = 1.0) -> FamilyWorld:
    """The class structure and the latent -> feature map of `model`, seeded by `seed`."""
    if model not in ("phases", "motion"):
        raise ValueError(f"unknown feature model {model!r} (phases, motion; prototype lives in synth.py)")
    rng = _rng(seed, _WORLD, FEATURE_MODELS.index(model))
    Z, H, K = LATENT_DIM, 96, int(num_classes)
    if model == "phases":
        n_prim = max(6, (4 * K) // 5)  # every primitive occurs in about five classes
        primitives = rng.standard_normal((n_prim, Z))
        sequences = np.stack([rng.choice(n_prim, 4, replace=False) for _ in range(K)])
        centres = 0.15 * rng.standard_normal((K, Z))
    else:
        groups = -(-K // 4)
        shared = rng.standard_normal((groups, Z))
        own = rng.standard_normal((K, 2, Z))
        u = 0.7 * shared[np.arange(K) // 4] + 0.7 * own[:, 0]
        v = own[:, 1]
        dirs = np.stack([u, v], axis=1)
        primitives = dirs / np.linalg.norm(dirs, axis=2, keepdims=True) * math.sqrt(Z)
        sequences = np.stack([rng.uniform(0.4, 2.0, K), rng.uniform(0.1, 0.3, K)], axis=1)
        centres = rng.standard_normal((K, Z))
    w1 = rng.standard_normal((Z, H)) / math.sqrt(Z)
    b1 = 0.2 * rng.standard_normal(H)
    w2 = np.abs(rng.standard_normal((H, feature_dim))) * rng.choice([-1.0, 1.0], (H, feature_dim)) * math.sqrt(2.0 / H)
    b2 = 0.3 * rng.standard_normal(feature_dim)
    w_motion = rng.standard_normal((Z, feature_dim)) / math.sqrt(Z)
    f = np.float32
    return FamilyWorld(model, float(difficulty), primitives, sequences, centres, w1.astype(f), b1.astype(f),
                       w2.astype(f), b2.astype(f), w_motion.astype(f))


def _sample_times(grid: Grid, n: int) -> np.ndarray:
    """[n, SUBSAMPLES] times (seconds) spread over each snippet's window of frames."""
    first = np.arange(n, dtype=np.float64)[:, None] * grid.feature_stride
    offs = (np.arange(SUBSAMPLES) + 0.5) / SUBSAMPLES * max(grid.feature_window, grid.feature_stride)
    return (first + offs[None, :]) / grid.fps


def _smooth_noise(t: np.ndarray, rng: np.random.Generator, period: float, dims: int) -> np.ndarray:
    """A random walk sampled every `period` seconds, linearly interpolated at times t (any shape)."""
    n = int(t.max() // period) + 3 if t.size else 3
    walk = np.cumsum(rng.standard_normal((n, dims)), axis=0) * math.sqrt(1.0 / n)
    walk -= walk.mean(axis=0)
    x = t.reshape(-1) / period
    i0 = np.clip(np.floor(x).astype(np.int64), 0, n - 2)
    w = (x - i0)[:, None]
    return (walk[i0] * (1 - w) + walk[i0 + 1] * w).reshape(*t.shape, dims)


def _scene(t: np.ndarray, duration: float, rng: np.random.Generator, mean_shot: float, amp: float) -> np.ndarray:
    """Piecewise-constant scene vectors: shots of exponential length, a new vector after each cut."""
    cuts = np.cumsum(rng.exponential(mean_shot, int(duration / mean_shot) * 3 + 4))
    cuts = cuts[cuts < duration]
    vectors = amp * rng.standard_normal((len(cuts) + 1, LATENT_DIM))
    return vectors[np.searchsorted(cuts, t)]


def _instances(video: Video) -> tuple[np.ndarray, np.ndarray]:
    segs = np.asarray(video.segments, dtype=np.float64).reshape(-1, 2)
    keep = segs[:, 1] > segs[:, 0]
    return segs[keep], np.asarray(video.labels, dtype=np.int64).reshape(-1)[keep]


def _phases_latent(video: Video, world: FamilyWorld, t: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    d = world.difficulty
    latent = 0.8 * d * _smooth_noise(t, rng, 8.0, LATENT_DIM) * math.sqrt(8.0)
    latent += _scene(t, video.duration, rng, 25.0, 0.6)
    segs, labels = _instances(video)
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


def _motion_latent(video: Video, world: FamilyWorld, t: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    d = world.difficulty
    flat = t.reshape(-1)
    latent = _scene(flat, video.duration, rng, 15.0, 1.2) + 2.4 * d * _smooth_noise(flat, rng, 20.0, LATENT_DIM)
    segs, labels = _instances(video)
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


def render_family_features(video: Video, world: FamilyWorld, seed: int, grid: Grid) -> np.ndarray:
    """[T, D] float32 features of one video under `world.model`, `T = grid.num_snippets(duration)`."""
    n = grid.num_snippets(video.duration)
    t = _sample_times(grid, n)  # [n, J]
    rng = _rng(seed, _VIDEO, _video_key(video.id))
    if world.model == "phases":
        latent = _phases_latent(video, world, t, rng).mean(axis=1).astype(np.float32)  # pooled, then mapped
        h = np.maximum(latent @ world.w1 + world.b1, 0.0)
        x = h @ world.w2 + world.b2
    else:
        latent = _motion_latent(video, world, t, rng).astype(np.float32)  # [n, J, Z]
        h = np.maximum(latent @ world.w1 + world.b1, 0.0).mean(axis=1)  # appearance stream: map, then pool
        energy = np.abs(np.diff(latent, axis=1)).mean(axis=1)  # motion stream: frame-to-frame change
        x = h @ world.w2 + world.b2 + energy @ world.w_motion
    return np.maximum(x, 0.0).astype(np.float32)  # post-ReLU pooled features are non-negative
