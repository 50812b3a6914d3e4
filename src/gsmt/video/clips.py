"""Synthetic video clips with visible actions, encoded with PyAV: real pixels for tests and the demo.

Each clip is a small mp4 (default 64 x 48 px, 10 fps, 6 s) on a textured background that scrolls,
with a grey distractor blob wandering the whole time. An action is an object whose colour, shape
and motion together are its class, on screen for its whole segment:

    sweep   a red square crossing from left to right
    bounce  a green disc bouncing up and down in the middle
    pulse   a blue bar growing and shrinking at a fixed place

(`ClipSpec(one_colour=True)`: all three orange, told apart by shape and motion alone.)

`write_clips(out, videos=N, seed=S)` writes `videos/<id>.mp4` and `annotations.json` (ActivityNet
JSON: the true segments, subsets `training` / `validation`, `gsmt` meta with the temporal mode
and the tIoU set), deterministic for a seed. Rendering is vectorised over the pixels; one loop per
frame writes it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from gsmt.io.write import atomic_path, atomic_write_text

CLASSES = ("sweep", "bounce", "pulse")
_COLOURS = {"sweep": (230, 40, 40), "bounce": (40, 220, 60), "pulse": (50, 80, 240)}
_ORANGE = (240, 140, 20)


@dataclass(frozen=True)
class ClipSpec:
    width: int = 64
    height: int = 48
    fps: int = 10
    seconds: float = 6.0
    max_events: int = 2
    min_event: float = 1.2  # seconds
    max_event: float = 2.5
    one_colour: bool = False  # every action orange: only its motion and shape tell the class


def _events(rng: np.random.Generator, spec: ClipSpec) -> list[tuple[float, float, str]]:
    """1..max_events non-overlapping (start, end, class) in seconds, with gaps of background."""
    n = int(rng.integers(1, spec.max_events + 1))
    out, t = [], float(rng.uniform(0.2, 1.0))
    for _ in range(n):
        length = float(rng.uniform(spec.min_event, spec.max_event))
        if t + length > spec.seconds - 0.2:
            break
        out.append((round(t, 3), round(t + length, 3), CLASSES[int(rng.integers(len(CLASSES)))]))
        t += length + float(rng.uniform(0.6, 1.5))
    return out


def _render(spec: ClipSpec, events: list[tuple[float, float, str]], rng: np.random.Generator) -> np.ndarray:
    """[frames, H, W, 3] uint8."""
    h, w = spec.height, spec.width
    n = int(round(spec.seconds * spec.fps))
    texture = rng.integers(70, 150, size=(h, 2 * w, 1)).astype(np.float32)
    texture = (texture + np.roll(texture, 1, 1) + np.roll(texture, 1, 0)) / 3  # soft, not white noise
    yy, xx = np.mgrid[0:h, 0:w]
    walk = np.cumsum(rng.normal(0, 1.5, size=(n, 2)), axis=0)
    frames = np.empty((n, h, w, 3), dtype=np.uint8)
    for f in range(n):
        t = f / spec.fps
        shift = int(f * 2) % w  # the background scrolls 2 px per frame
        img = np.repeat(texture[:, shift:shift + w], 3, axis=2).copy()
        # distractor: a grey blob on a random walk, always there
        cx = (w / 2 + walk[f, 0]) % w
        cy = (h / 2 + walk[f, 1]) % h
        img[(xx - cx) ** 2 + (yy - cy) ** 2 < 16] = 200
        for start, end, label in events:
            if not start <= t < end:
                continue
            p = (t - start) / (end - start)  # progress through the action, 0..1
            colour = np.array(_ORANGE if spec.one_colour else _COLOURS[label], dtype=np.float32)
            if label == "sweep":
                x0 = int(p * (w - 14))
                img[h // 2 - 7:h // 2 + 7, x0:x0 + 14] = colour
            elif label == "bounce":
                cy2 = h / 2 + (h / 2 - 9) * np.sin(2 * np.pi * 2 * p)
                img[(xx - w / 2) ** 2 + (yy - cy2) ** 2 < 64] = colour
            else:
                half = 3 + int(9 * abs(np.sin(np.pi * 2 * p)))
                img[h // 2 - half:h // 2 + half, w // 4 - 4:w // 4 + 4] = colour
        frames[f] = np.clip(img, 0, 255).astype(np.uint8)
    return frames


def encode_mp4(path: str | Path, frames: np.ndarray, fps: float, *, codec: str = "libx264",
               pix_fmt: str = "yuv420p", rotation: int | None = None, times: list[float] | None = None) -> Path:
    """Write uint8 RGB frames [N, H, W, 3] as a video (atomically). `times` (seconds, increasing)
    gives each frame its own timestamp: a variable-frame-rate file; `rotation` (degrees counter-
    clockwise) writes a display matrix as phones do."""
    path = Path(path)
    with atomic_path(path, fsync=False) as tmp:
        with av.open(str(tmp), "w", format="mp4") as container:
            stream = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1000))
            stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], pix_fmt
            if codec == "libx264":
                stream.options = {"crf": "18", "preset": "veryfast"}
            if times is not None:
                stream.time_base = stream.codec_context.time_base = Fraction(1, 1000)
            if rotation:
                stream.set_display_rotation(rotation)
            for i, array in enumerate(frames):
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(array), format="rgb24")
                if times is not None:
                    frame.pts = int(round(times[i] * 1000))
                    frame.time_base = Fraction(1, 1000)
                for packet in stream.encode(frame):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
    return path


def write_clips(out: str | Path, *, videos: int = 40, seed: int = 0, spec: ClipSpec = ClipSpec(),
                validation_share: float = 0.25) -> Path:
    """Write `videos` clips and their ground truth under `out`; returns the annotation file."""
    out = Path(out)
    (out / "videos").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    n_val = max(1, int(round(videos * validation_share)))
    database = {}
    for i in range(videos):
        vid = f"clip_{i:03d}"
        events = _events(rng, spec)
        encode_mp4(out / "videos" / f"{vid}.mp4", _render(spec, events, rng), spec.fps)
        database[vid] = {
            "subset": "validation" if i >= videos - n_val else "training",
            "duration": spec.seconds,
            "annotations": [{"label": label, "segment": [s, e]} for s, e, label in events],
        }
    annotations = {
        "version": "gsmt synthetic clips",
        "classes": list(CLASSES),
        "database": database,
        "gsmt": {"temporal_mode": "resize", "train_subset": "training", "eval_subset": "validation",
                 "tiou": "anet"},
    }
    atomic_write_text(out / "annotations.json", json.dumps(annotations, indent=1) + "\n")
    return out / "annotations.json"


# The preprocessor `save_random_video_encoder` writes by default: 32-px crops for its 32-px model.
VIDEO_PROCESSOR = {"image_processor_type": "VideoMAEImageProcessor", "size": {"shortest_edge": 36},
                   "crop_size": {"height": 32, "width": 32}, "do_center_crop": True, "do_normalize": True,
                   "image_mean": [0.5, 0.5, 0.5], "image_std": [0.25, 0.25, 0.25], "do_rescale": True,
                   "rescale_factor": 1 / 255}


def save_random_video_encoder(folder: str | Path, processor: dict | None = VIDEO_PROCESSOR) -> Path:
    """A VideoMAE-shaped video encoder (4 frames of 32 px, 32 dims, one layer) with random weights from
    torch's global generator, saved to `folder` with `processor` as its preprocessor_config.json (None:
    none); downloads nothing."""
    from transformers import VideoMAEConfig, VideoMAEModel

    VideoMAEModel(VideoMAEConfig(image_size=32, patch_size=16, num_frames=4, tubelet_size=2, hidden_size=32,
                                 num_hidden_layers=1, num_attention_heads=2, intermediate_size=64)
                  ).save_pretrained(folder)
    if processor is not None:
        atomic_write_text(Path(folder) / "preprocessor_config.json", json.dumps(processor) + "\n")
    return Path(folder)


def save_random_image_encoder(folder: str | Path) -> Path:
    """A DINOv2-shaped image encoder (32 px, 48 dims, one layer) with random weights from torch's
    global generator, saved to `folder`: a backbone for synthetic clips that downloads nothing."""
    from transformers import Dinov2Config, Dinov2Model

    Dinov2Model(Dinov2Config(image_size=32, patch_size=8, hidden_size=48, num_hidden_layers=1, num_attention_heads=2,
                             intermediate_size=96)).save_pretrained(folder)
    return Path(folder)

