"""The `prototype` feature model: a class prototype under a ramped envelope (DESIGN.md section 7).

Features are rendered from a 32-dim latent per snippet:

    latent(t) = background(t) + foreground(t) + distractors(t) + noise
    features  = softplus(relu(latent @ W1 + b1) @ W2 + b2)        # fixed random map, [T, D] >= 0

- background: a smooth per-video process (random low-frequency sinusoids plus a per-video offset);
- foreground: each instance's vector (its class prototype + per-instance variation, random
  amplitude) under a ramped envelope that is 0.5 exactly at the instance's boundaries. Where
  instances overlap, the vectors are averaged with their envelopes as weights (envelopes summing
  above 1 are normalised), so identical twins (THUMOS CliffDiving/Diving) look like both classes;
- distractors: short soft bursts of a random class prototype at low amplitude; THUMOS `Ambiguous`
  segments are rendered the same way with the video's main class;
- snippet i's content is the latent at its centre time `(i * stride + window / 2) / fps`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from gsmt.annotations.types import Video
from gsmt.data.grid import Grid
from gsmt.synth.models.common import LATENT_DIM, VIDEO, WORLD, stream, video_key

HIDDEN_DIM = 128


@dataclass(frozen=True)
class RenderParams:
    """Knobs of the feature renderer at difficulty 1.0 ("moderate"); `at(x)` scales them.

    Latent units: a class prototype has unit variance per coordinate.
    """

    noise: float = 0.9  # std of per-snippet white noise
    blur: float = 0.3  # ramp width at each boundary, as a fraction of the instance length
    overlap: float = 0.5  # share of a class prototype common to its group of similar classes
    group_size: int = 4  # classes per group of similar prototypes
    variation: float = 0.5  # std of the per-instance deviation from the prototype
    distractors: float = 0.5  # distractor bursts per instance (Poisson mean)
    distractor_amp: float = 0.5  # amplitude of a burst relative to a real instance
    background: float = 0.7  # std of the smooth background process

    def at(self, difficulty: float) -> "RenderParams":
        """These parameters with noise, blur, prototype overlap, variation and distractors scaled."""
        d = float(difficulty)
        return replace(
            self,
            noise=self.noise * d,
            blur=min(1.0, self.blur * d),
            overlap=min(0.95, self.overlap * d),
            variation=self.variation * d,
            distractors=self.distractors * d,
            distractor_amp=min(0.9, self.distractor_amp * d),
        )


# Frozen by calibration against a context-free per-snippet baseline alone (benchmarks/semi_real.py,
# BENCHMARKS.md "Semi-real benchmarks"): at 0.8 its average mAP on the real THUMOS14 / ActivityNet
# timelines lands in 5-25% (THUMOS14, 120 videos: 18.6%; ActivityNet, 3,000 videos: 5.7%). At 1.0
# it was 4.4% / 0.9% (900 ActivityNet videos), at 0.7 33% / 6.7%: no other tried value fits both.
DEFAULT_DIFFICULTY = 0.8


@dataclass(frozen=True)
class SynthWorld:
    """Dataset-level randomness: class prototypes and the latent -> feature map."""

    prototypes: np.ndarray  # [K, Z] float64
    w1: np.ndarray  # [Z, H] float32
    b1: np.ndarray  # [H]
    w2: np.ndarray  # [H, D]
    b2: np.ndarray  # [D]
    params: RenderParams

    @property
    def feature_dim(self) -> int:
        return self.w2.shape[1]


def make_world(num_classes: int, feature_dim: int, seed: int, params: RenderParams) -> SynthWorld:
    """Class prototypes (with group overlap) and the fixed random map, seeded by `seed`."""
    rng = stream(seed, WORLD)
    # Drawn before anything that depends on the parameters, so the map is the same at every difficulty.
    own = rng.standard_normal((num_classes, LATENT_DIM))
    groups = rng.standard_normal((-(-num_classes // params.group_size), LATENT_DIM))
    w1 = rng.standard_normal((LATENT_DIM, HIDDEN_DIM)) / math.sqrt(LATENT_DIM)
    b1 = 0.3 * rng.standard_normal(HIDDEN_DIM)
    w2 = rng.standard_normal((HIDDEN_DIM, feature_dim)) * math.sqrt(2.0 / HIDDEN_DIM)
    b2 = 0.5 * rng.standard_normal(feature_dim) - 1.0
    group_of = np.arange(num_classes) // params.group_size
    prototypes = math.sqrt(1.0 - params.overlap) * own + math.sqrt(params.overlap) * groups[group_of]
    f32 = np.float32
    return SynthWorld(prototypes, w1.astype(f32), b1.astype(f32), w2.astype(f32), b2.astype(f32), params)


def _envelopes(t: np.ndarray, segments: np.ndarray, ramp: np.ndarray) -> np.ndarray:
    """[T, N] smoothstep envelopes, 0.5 at each boundary, ramps of the given widths (seconds)."""
    ramp = np.maximum(ramp, 1e-9)[None, :]  # a zero width is a hard step
    rise = np.clip((t[:, None] - segments[None, :, 0]) / ramp + 0.5, 0.0, 1.0)
    fall = np.clip((segments[None, :, 1] - t[:, None]) / ramp + 0.5, 0.0, 1.0)
    u = np.minimum(rise, fall)
    return u * u * (3.0 - 2.0 * u)


def render_latent(video: Video, world: SynthWorld, t: np.ndarray, seed: int) -> np.ndarray:
    """[T, Z] latent of `video` at times t (seconds); per-video randomness keyed by its id."""
    p = world.params
    rng = stream(seed, VIDEO, video_key(video.id))
    n_freq = 4
    # Background: a per-video offset plus sinusoids with 4-60 s periods, std `background` per coordinate.
    offset = 0.5 * p.background * rng.standard_normal(LATENT_DIM)
    freq = 1.0 / rng.uniform(4.0, 60.0, (n_freq, LATENT_DIM))
    phase = rng.uniform(0.0, 2 * np.pi, (n_freq, LATENT_DIM))
    amp = p.background * math.sqrt(2.0 / n_freq) * math.sqrt(0.75)
    waves = np.sin(2 * np.pi * t[:, None, None] * freq[None] + phase[None]).sum(axis=1)
    latent = offset + amp * waves

    segments = video.segments.reshape(-1, 2)
    labels = video.labels.astype(np.int64)
    n = len(segments)
    if n:
        vectors = world.prototypes[labels] + p.variation * rng.standard_normal((n, LATENT_DIM))
        vectors *= rng.uniform(0.8, 1.2, (n, 1))
        env = _envelopes(t, segments, p.blur * (segments[:, 1] - segments[:, 0]))
        total = env.sum(axis=1, keepdims=True)
        latent += (env @ vectors) / np.maximum(total, 1.0)

    # Distractors: soft bursts as long as 0.3-1x one of the video's instances (5% of it if none).
    n_bursts = int(rng.poisson(p.distractors * max(n, 1)))
    ref = (segments[:, 1] - segments[:, 0]) if n else np.array([0.05 * video.duration])
    b_len = rng.uniform(0.3, 1.0, n_bursts) * rng.choice(np.maximum(ref, 1e-3), n_bursts)
    b_mid = rng.uniform(0.0, video.duration, n_bursts)
    b_cls = rng.integers(0, len(world.prototypes), n_bursts)
    amb = video.ambiguous.reshape(-1, 2)
    if len(amb):
        main = np.bincount(labels).argmax() if n else 0
        b_len = np.concatenate([b_len, amb[:, 1] - amb[:, 0]])
        b_mid = np.concatenate([b_mid, amb.mean(axis=1)])
        b_cls = np.concatenate([b_cls, np.full(len(amb), main)])
    if len(b_len):
        bursts = np.stack([b_mid - b_len / 2, b_mid + b_len / 2], axis=1)
        env = _envelopes(t, bursts, 0.5 * b_len)
        latent += p.distractor_amp * (env @ world.prototypes[b_cls])

    latent += p.noise * rng.standard_normal(latent.shape)
    return latent


def emit(latent: np.ndarray, world: SynthWorld) -> np.ndarray:
    """The fixed non-linear map: [T, Z] latent -> [T, D] non-negative float32 features."""
    h = latent.astype(np.float32) @ world.w1
    h += world.b1
    np.maximum(h, 0.0, out=h)
    x = h @ world.w2
    x += world.b2
    # Softplus in place (the [T, D] array is the big one): log1p(exp(-|x|)) + max(x, 0), no overflow.
    tail = np.abs(x)
    np.negative(tail, out=tail)
    np.exp(tail, out=tail)
    np.log1p(tail, out=tail)
    np.maximum(x, 0.0, out=x)
    x += tail
    return x


def render_features(video: Video, world: SynthWorld, seed: int, grid: Grid) -> np.ndarray:
    """[T, D] float32 features of one video, `T = grid.num_snippets(duration)`; snippet = latent at its centre."""
    t = grid.centers(grid.num_snippets(video.duration))
    return emit(render_latent(video, world, t, seed), world)


def make_world_at(num_classes: int, feature_dim: int, seed: int, difficulty: float,
                  params: RenderParams | None = None) -> SynthWorld:
    """`make_world` with `params` (default `RenderParams()`) scaled to `difficulty`: the registry's entry."""
    return make_world(num_classes, feature_dim, seed, (params or RenderParams()).at(difficulty))
