"""Synthetic TAL datasets (`gsmt synth`): timelines plus rendered features, deterministic for a seed.

Timelines come from a preset (drawn to match the real THUMOS14 / ActivityNet statistics), from the
real THUMOS14 / ActivityNet-1.3 timelines shipped with the package (`--timelines thumos14` /
`activitynet13`, see `gsmt.annotations.packaged`) or from any annotation file. Features are rendered from a 32-dim latent per snippet (DESIGN.md section 7):

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

Every random stream is keyed by the seed (and by the video id for per-video content), so a video's
features do not depend on which other videos are rendered.
"""

from __future__ import annotations

import argparse
import math
import time
import zlib
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from gsmt.annotations.load import Annotations, Video, check_video_id, load_annotations, save_activitynet_json
from gsmt.synth.models import FEATURE_MODELS, FROZEN_DIFFICULTY, make_family_world, render_family_features
from gsmt.annotations.packaged import TIMELINES, timelines_label, timelines_path
from gsmt.io.read import read_json
from gsmt.data.grid import Grid
from gsmt.errors import GsmtError
from gsmt.io.write import atomic_path
from gsmt.io.guard import check_output_location, is_within, refuse_overwriting_inputs
from gsmt.schema import SEED_MAX, option

LATENT_DIM = 32
HIDDEN_DIM = 128
# Stream tags keep the random streams of one seed independent of each other.
_WORLD, _TIMELINES, _VIDEO, _SAMPLE = 1, 2, 3, 4


@dataclass(frozen=True)
class Preset:
    """Defaults of a synthetic dataset that mirrors one benchmark."""

    name: str
    fps: float
    feature_stride: int
    feature_window: int
    num_classes: int
    num_videos: int
    train_subset: str
    eval_subset: str
    train_share: float  # fraction of videos in the training subset
    temporal_mode: str
    decode_mode: str
    tiou: str

    def decoding(self) -> dict:
        """The temporal mode and decoding that fit this kind of data (recorded in annotations.json)."""
        return {
            "temporal_mode": self.temporal_mode,
            "decode_mode": self.decode_mode,
            "train_subset": self.train_subset,
            "eval_subset": self.eval_subset,
            "tiou": self.tiou,
        }


PRESETS: dict[str, Preset] = {
    # THUMOS14: 200 validation (training) + 213 test videos.
    "thumos-like": Preset("thumos-like", 30.0, 8, 16, 20, 200, "validation", "test", 200 / 413,
                          "window", "own", "thumos"),
    # ActivityNet v1.3: 10,024 training + 4,926 validation videos. 50 classes rather than 200 by
    # default so that a small demo has enough instances per class; `--classes 200` mirrors it.
    "anet-like": Preset("anet-like", 30.0, 16, 16, 50, 300, "training", "validation", 10024 / 14950,
                        "resize", "own+long", "anet"),
}


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


@dataclass
class SynthSummary:
    """What `generate` wrote."""

    out_dir: Path
    videos_per_subset: dict[str, int]
    instances: int
    classes: int
    bytes_on_disk: int
    seconds: float

    def line(self) -> str:
        subsets = ", ".join(f"{n} {s}" for s, n in self.videos_per_subset.items())
        videos = sum(self.videos_per_subset.values())
        return (
            f"wrote {videos} videos ({subsets}), {self.instances} instances, {self.classes} classes, "
            f"{self.bytes_on_disk / 2**20:.1f} MiB to {self.out_dir} in {self.seconds:.1f} s"
        )


def _rng(seed: int, *keys: int) -> np.random.Generator:
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, *keys])


def _video_key(video_id: str) -> int:
    return zlib.crc32(video_id.encode("utf-8"))


# ---------------------------------------------------------------------------------------------
# Timelines
# ---------------------------------------------------------------------------------------------


def _place(duration: float, lengths: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Non-overlapping segments of the given lengths in random order, gaps split at random."""
    free = max(duration - lengths.sum(), 0.0)
    gaps = rng.dirichlet(np.ones(len(lengths) + 1)) * free
    starts = np.cumsum(gaps[:-1]) + np.concatenate([[0.0], np.cumsum(lengths[:-1])])
    return np.stack([starts, starts + lengths], axis=1)


def _thumos_like(n: int, rng: np.random.Generator) -> tuple[np.ndarray, list[np.ndarray]]:
    # Real THUMOS14: durations log-normal-ish (median 155 s, p5 32 s, p95 690 s); per-video
    # foreground coverage mean 0.29; instance count grows with foreground time (mean 15.4).
    durations = np.clip(155.0 * np.exp(0.93 * rng.standard_normal(n)), 10.0, 1700.0)
    coverage = rng.beta(1.3, 3.2, n).clip(0.01, 0.95)
    counts = np.maximum(1, rng.poisson(coverage * durations / 4.4))
    segments = []
    for d, c, k in zip(durations, coverage, counts):
        weights = np.exp(0.9 * rng.standard_normal(k))
        segments.append(_place(d, c * d * weights / weights.sum(), rng))
    return durations, segments


# Real ActivityNet v1.3 instances per video, P(n = 1..10); the rest spread over 11..20.
_ANET_COUNTS = np.array([0.754, 0.131, 0.048, 0.028, 0.015, 0.009, 0.0052, 0.0038, 0.0021, 0.0017])


def _anet_like(n: int, rng: np.random.Generator) -> tuple[np.ndarray, list[np.ndarray]]:
    # Real ActivityNet: durations near-uniform on [4, 228] s with a 4% tail to 755 s; coverage
    # depends on the count (mean 0.71 for one instance, 0.53 for two, 0.44 for more).
    tail = rng.random(n) < 0.04
    durations = np.where(tail, np.minimum(235.0 + rng.exponential(100.0, n), 755.0), rng.uniform(4.0, 228.0, n))
    pmf = np.concatenate([_ANET_COUNTS, np.full(10, (1.0 - _ANET_COUNTS.sum()) / 10)])
    counts = rng.choice(np.arange(1, 21), size=n, p=pmf / pmf.sum())
    coverage = np.select(
        [counts == 1, counts == 2],
        [rng.beta(1.22, 0.5, n), rng.beta(1.4, 1.23, n)],
        rng.beta(1.8, 2.3, n),
    ).clip(0.01, 1.0)
    segments = []
    for d, c, k in zip(durations, coverage, counts):
        weights = np.exp(0.6 * rng.standard_normal(k))
        segments.append(_place(d, c * d * weights / weights.sum(), rng))
    return durations, segments


def make_timelines(
    preset: str | Preset, n: int, rng: np.random.Generator, *, num_classes: int | None = None
) -> tuple[list[Video], list[str]]:
    """n preset timelines (ids `<preset>_00000`...) and the class names; no features.

    Subsets: exactly `round(n * train_share)` training videos, the rest evaluation, at random.
    Labels: each video has a main class; 10% of THUMOS-like instances take another class.
    """
    p = PRESETS[preset] if isinstance(preset, str) else preset
    k = p.num_classes if num_classes is None else int(num_classes)
    durations, segments = (_thumos_like if p.name == "thumos-like" else _anet_like)(n, rng)
    n_train = int(round(n * p.train_share))
    subsets = np.array([p.train_subset] * n_train + [p.eval_subset] * (n - n_train))[rng.permutation(n)]
    main = rng.integers(0, k, n)
    other_share = 0.1 if p.name == "thumos-like" else 0.0
    prefix = p.name.replace("-", "_")
    videos = []
    for i in range(n):
        m = len(segments[i])
        labels = np.where(rng.random(m) < other_share, rng.integers(0, k, m), main[i]).astype(np.int64)
        # Rounded to the millisecond like real annotation files; keeps the JSON short.
        segs = np.round(segments[i], 3)
        videos.append(Video(id=f"{prefix}_{i:05d}", subset=str(subsets[i]), duration=round(float(durations[i]), 3),
                            segments=segs, labels=labels))
    width = len(str(k - 1))
    return videos, [f"action_{c:0{width}d}" for c in range(k)]


def coverage(video: Video) -> float:
    """Fraction of the video's time inside any of its segments (segments clipped to the video)."""
    if video.duration <= 0 or len(video.segments) == 0:
        return 0.0
    segs = np.clip(video.segments, 0.0, video.duration)
    segs = segs[np.argsort(segs[:, 0], kind="stable")]
    # Union length: each segment adds the part past the furthest end seen before it.
    prev_end = np.maximum.accumulate(np.concatenate([[0.0], segs[:-1, 1]]))
    covered = np.clip(segs[:, 1] - np.maximum(segs[:, 0], prev_end), 0.0, None).sum()
    return float(covered / video.duration)


def timeline_stats(videos: list[Video]) -> dict[str, float]:
    """Mean instances per video, median instance length (s), mean per-video coverage, median duration."""
    lengths = np.concatenate([v.segments[:, 1] - v.segments[:, 0] for v in videos])
    return {
        "mean_instances": float(np.mean([len(v.segments) for v in videos])),
        "median_length": float(np.median(lengths)) if len(lengths) else 0.0,
        "coverage": float(np.mean([coverage(v) for v in videos])),
        "median_duration": float(np.median([v.duration for v in videos])),
    }


# ---------------------------------------------------------------------------------------------
# Features
# ---------------------------------------------------------------------------------------------


def make_world(num_classes: int, feature_dim: int, seed: int, params: RenderParams) -> SynthWorld:
    """Class prototypes (with group overlap) and the fixed random map, seeded by `seed`."""
    rng = _rng(seed, _WORLD)
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
    rng = _rng(seed, _VIDEO, _video_key(video.id))
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


# ---------------------------------------------------------------------------------------------
# Dataset
# ---------------------------------------------------------------------------------------------


def _sample_videos(videos: list[Video], n: int, seed: int) -> list[Video]:
    """A seeded sample of n videos, stratified by subset (largest remainders), kept in input order."""
    if n >= len(videos):
        return list(videos)
    rng = _rng(seed, _SAMPLE)
    subsets = sorted({v.subset for v in videos})
    index = {s: [i for i, v in enumerate(videos) if v.subset == s] for s in subsets}
    exact = np.array([n * len(index[s]) / len(videos) for s in subsets])
    take = np.floor(exact).astype(int)
    take[np.argsort(-(exact - take), kind="stable")[: n - take.sum()]] += 1
    keep = sorted(i for s, k in zip(subsets, take) for i in rng.choice(index[s], size=k, replace=False).tolist())
    return [videos[i] for i in keep]


def is_synth_output(folder: str | Path) -> bool:
    """Whether `folder/annotations.json` was written by `gsmt synth` (its `gsmt` meta records the render)."""
    path = Path(folder) / "annotations.json"
    if not path.is_file():  # a link to /dev/zero or a folder is not ours (and is never read)
        return False
    try:
        obj = read_json(path)
    except GsmtError:
        return False
    meta = obj.get("gsmt") if isinstance(obj, dict) else None
    return isinstance(meta, dict) and "render" in meta and "preset" in meta


def _check_out_dir(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise GsmtError(out, "exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise GsmtError(out, "exists and is not empty (pass --overwrite to replace it)")
        # Only what a previous `gsmt synth` wrote is removed (stale features would pose as data),
        # and only when its annotations.json says so: a real dataset is never deleted.
        ours = (out / "annotations.json").exists() or any((out / "features").glob("*.npy"))
        if ours and not is_synth_output(out):
            raise GsmtError(out, "holds annotations or features that gsmt synth did not write: --overwrite "
                                 "only replaces a previous synthetic dataset, choose another --out")
        (out / "annotations.json").unlink(missing_ok=True)
        if (out / "features").is_dir():
            for f in (out / "features").glob("*.npy"):
                f.unlink()


def _positive(name: str, value, kind=int):
    if value is None:
        return None
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise GsmtError(name, f"must be a positive number, got {value!r}")
    if kind is int and int(value) != value:
        raise GsmtError(name, f"must be a positive integer, got {value!r}")
    return kind(value)


def generate(
    out_dir: str | Path,
    *,
    preset: str,
    timelines: str | Path | None = None,
    videos: int | None = None,
    feature_dim: int = 256,
    difficulty: float | None = None,
    seed: int = 0,
    num_classes: int | None = None,
    fps: float | None = None,
    feature_stride: int | None = None,
    feature_window: int | None = None,
    overwrite: bool = False,
    params: RenderParams | None = None,
    feature_model: str = "prototype",
) -> SynthSummary:
    """Write `annotations.json` and `features/<video_id>.npy` ([T, D] float32) to out_dir.

    With `timelines` (a packaged name, `thumos14` or `activitynet13`, or an annotation file), the
    videos (and classes) of those annotations are used as they are and `videos` takes a seeded
    sample stratified by subset; otherwise `make_timelines` draws them. `feature_model` picks how
    actions become features (`prototype`, this module; `phases` / `motion`, `gsmt.synth.models`).
    """
    start = time.perf_counter()
    if preset not in PRESETS:
        raise GsmtError("--preset", f"unknown preset {preset!r} (choose from {', '.join(PRESETS)})")
    p = PRESETS[preset]
    videos = _positive("--videos", videos)
    feature_dim = _positive("--feature-dim", feature_dim)
    num_classes = _positive("--classes", num_classes)
    fps = _positive("--fps", fps, float) or p.fps
    feature_stride = _positive("--feature-stride", feature_stride) or p.feature_stride
    feature_window = _positive("--feature-window", feature_window) or p.feature_window
    if feature_model not in FEATURE_MODELS:
        raise GsmtError("--feature-model", f"unknown feature model {feature_model!r} (choose from {', '.join(FEATURE_MODELS)})")
    if difficulty is None:  # each feature model's frozen calibration
        difficulty = DEFAULT_DIFFICULTY if feature_model == "prototype" else FROZEN_DIFFICULTY[feature_model]
    if not (isinstance(difficulty, (int, float)) and math.isfinite(difficulty) and difficulty >= 0):
        raise GsmtError("--difficulty", f"must be a number >= 0, got {difficulty!r}")
    if timelines is not None:  # resolved before the output folder is touched
        label, timelines = timelines_label(timelines), timelines_path(timelines)
    out = Path(out_dir)
    if timelines is not None:  # an input that the output would replace
        refuse_overwriting_inputs(out / "annotations.json", {"--timelines": timelines})
        if (out / "features").is_dir() and is_within(timelines, out / "features"):
            raise GsmtError(timelines, "lies in the output's features folder: choose another --out")
    check_output_location(out, "folder")
    _check_out_dir(out, overwrite)

    if timelines is not None:
        if num_classes is not None:
            raise GsmtError("--classes", "cannot be combined with --timelines (the file's classes are used)")
        source = load_annotations(timelines)
        if not source.videos:
            raise GsmtError(timelines, "holds no videos")
        chosen = _sample_videos(source.videos, videos, seed) if videos else list(source.videos)
        for v in chosen:
            check_video_id(v.id, timelines)  # ids become file names
        classes = list(source.classes)
    else:
        chosen, classes = make_timelines(p, videos or p.num_videos, _rng(seed, _TIMELINES), num_classes=num_classes)
    if not classes:
        raise GsmtError(timelines, "has no action classes")

    # The grid describes the rendered features, so it replaces any fps the source carried.
    chosen = [replace(v, fps=fps, feature_stride=feature_stride, feature_window=feature_window) for v in chosen]
    base = params or RenderParams()
    if feature_model == "prototype":
        world = make_world(len(classes), feature_dim, seed, base.at(difficulty))
        render = render_features
    else:
        world = make_family_world(feature_model, len(classes), feature_dim, seed, difficulty)
        render = render_family_features
    meta = {
        "preset": p.name,
        "grid": {"fps": fps, "feature_stride": feature_stride, "feature_window": feature_window},
        "difficulty": float(difficulty),
        "seed": int(seed),
        "feature_dim": int(feature_dim),
        "feature_layout": "TD",  # a video as long as D snippets would be ambiguous otherwise
        **p.decoding(),
        "timelines": None if timelines is None else label,
        "render": asdict(base) if feature_model == "prototype" else {"difficulty": float(difficulty)},
        "feature_model": feature_model,
    }
    ann = Annotations(videos=chosen, classes=classes, meta=meta)

    grid = Grid(fps, feature_stride, feature_window)
    feat_dir = out / "features"
    feat_dir.mkdir(parents=True, exist_ok=True)
    size = 0
    for v in chosen:
        feats = render(v, world, seed, grid)
        path = feat_dir / f"{v.id}.npy"
        # No fsync per file (thousands of them dominate the time on some disks): annotations.json,
        # written last and durably, marks the folder complete.
        with atomic_path(path, fsync=False) as tmp, open(tmp, "wb") as f:
            np.save(f, feats)
        size += path.stat().st_size
    # Written last: a folder with annotations.json is complete.
    save_activitynet_json(ann, out / "annotations.json")
    size += (out / "annotations.json").stat().st_size

    per_subset: dict[str, int] = {}
    for v in chosen:
        per_subset[v.subset] = per_subset.get(v.subset, 0) + 1
    return SynthSummary(
        out_dir=out,
        videos_per_subset=dict(sorted(per_subset.items(), key=lambda kv: kv[0] != p.train_subset)),
        instances=sum(len(v.segments) for v in chosen),
        classes=len(classes),
        bytes_on_disk=size,
        seconds=time.perf_counter() - start,
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `gsmt synth`."""
    parser.add_argument("--preset", required=True, choices=sorted(PRESETS),
                        help="kind of data: grid, classes, subsets, temporal mode and decoding")
    parser.add_argument("--timelines", metavar="NAME|FILE",
                        help="render on real timelines instead of drawn ones: the packaged "
                             f"{' or '.join(TIMELINES)} annotations by name, or any annotation file")
    parser.add_argument("--videos", type=option(int, ge=1), metavar="N",
                        help="number of videos (preset default 200 / 300; with --timelines a seeded "
                             "sample stratified by subset, default all)")
    parser.add_argument("--classes", type=option(int, ge=1), metavar="K", dest="num_classes",
                        help="action classes (preset default 20 thumos-like / 50 anet-like)")
    parser.add_argument("--feature-dim", type=option(int, ge=1), default=256, metavar="D",
                        help="feature dimension (256)")
    parser.add_argument("--difficulty", type=option(float, ge=0), metavar="X",
                        help="scales noise, boundary blur, prototype overlap and distractors (prototype "
                             f"model, {DEFAULT_DIFFICULTY:g}) or noise and background drift (phases, motion: "
                             + ", ".join(f"{v:g}" for v in FROZEN_DIFFICULTY.values()) + ")")
    parser.add_argument("--feature-model", default="prototype", choices=FEATURE_MODELS,
                        help="how actions become features (benchmark family, BENCHMARKS.md): prototype "
                             "(default), phases, motion (the held-out one)")
    parser.add_argument("--seed", type=option(int, ge=0, le=SEED_MAX), default=0, metavar="S",
                        help="random seed (0)")
    parser.add_argument("--fps", type=option(float, gt=0), metavar="F", help="feature grid frame rate (30)")
    parser.add_argument("--feature-stride", type=option(int, ge=1), metavar="S",
                        help="frames between snippets (8 / 16)")
    parser.add_argument("--feature-window", type=option(int, ge=1), metavar="W", help="frames per snippet (16)")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder")
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty output folder")


def run_cli(args: argparse.Namespace) -> int:
    """`gsmt synth`: generate and print one summary line."""
    summary = generate(
        args.out,
        preset=args.preset,
        timelines=args.timelines,
        videos=args.videos,
        feature_dim=args.feature_dim,
        difficulty=args.difficulty,
        seed=args.seed,
        num_classes=args.num_classes,
        fps=args.fps,
        feature_stride=args.feature_stride,
        feature_window=args.feature_window,
        overwrite=args.overwrite,
        feature_model=args.feature_model,
    )
    print(summary.line())
    return 0
