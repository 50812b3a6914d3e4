"""Raw video -> detections with a checkpoint's recorded backbone and grid (the library under `gsmt detect`).

The checkpoint records the grid (fps, feature_stride, feature_window) and, when it was trained on
features of `gsmt extract`, the backbone (id and digest). Features are extracted exactly that way:
the recorded backbone by default; `--backbone` may name another copy of it (a local folder), whose
digest must match; `--fps` / `--feature-stride` / `--feature-window` may only repeat the recorded
values. A mismatch of backbone or grid is a one-line error, never a silent run on features the
model has not seen. A checkpoint without a backbone record (trained on other features) needs
`--backbone` and, when it records no grid, the grid options: the user vouches for them.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

from gsmt.errors import GsmtError
from gsmt.video.backbones import Backbone, load_backbone
from gsmt.video.extract import extract_video

log = logging.getLogger("gsmt.video")
# A WebVTT comment block naming the writer: how a later `gsmt detect` tells its own subtitles from
# a film's real ones (`movie.vtt` beside `movie.mp4`), which it must never replace.
VTT_MARK = "NOTE written by gsmt detect"


@dataclass
class Setup:
    """How a checkpoint's features are made: the backbone and the grid."""

    backbone: Backbone
    fps: float
    stride: int
    window: int


def setup_for(meta: dict, where: str | Path, *, backbone: str | None = None, fps: float | None = None,
              stride: int | None = None, window: int | None = None, device: str = "cpu") -> Setup:
    """The backbone and grid of a checkpoint's meta, with the user's options checked against them."""
    recorded = meta.get("backbone") or {}
    name = backbone or recorded.get("id")
    if name is None:
        raise GsmtError(where, "the checkpoint records no backbone (it was trained on features not written by "
                               "gsmt extract): pass --backbone, the model those features came from")
    grid = meta.get("grid") or {}
    chosen = {}
    for key, given in (("fps", fps), ("feature_stride", stride), ("feature_window", window)):
        saved = grid.get(key)
        if given is not None and saved is not None and float(given) != float(saved):
            raise GsmtError(where, f"grid mismatch: the model was trained on features with {key} {saved:g}, "
                                   f"--{key.replace('_', '-')} gives {given:g}")
        chosen[key] = saved if saved is not None else given
        if chosen[key] is None:
            raise GsmtError(where, f"the checkpoint records no {key}: pass --{key.replace('_', '-')}")
    loaded = load_backbone(name, device=device)
    if recorded.get("digest") and loaded.digest != recorded["digest"]:
        raise GsmtError(where, f"backbone mismatch: the model was trained on features of {recorded['id']} "
                               f"({recorded['digest'][:19]}...), {name} is another model or other weights "
                               f"({loaded.digest[:19]}...)")
    if loaded.feature_dim != int(meta["feature_dim"]):
        raise GsmtError(where, f"backbone mismatch: {name} gives {loaded.feature_dim}-dimensional features, "
                               f"the model takes {meta['feature_dim']}")
    return Setup(loaded, float(chosen["fps"]), int(chosen["feature_stride"]), int(chosen["feature_window"]))


def video_detections(localizer, setup: Setup, path: str | Path, *, batch_size: int = 16, threads: int | None = None,
                     progress=None):
    """(detections best first, decoded duration, faults) of one video file; `threads` bounds FFmpeg's
    decoding threads (None: its default); `progress(frames, total)` follows the extraction within the
    video (`extract_video`; `gsmt.video.extract.VideoProgress.for_bar(bar, name)` shows it on a bar)."""
    got = extract_video(path, setup.backbone, setup.fps, setup.stride, setup.window, batch_size, threads,
                        progress=progress)
    detections = localizer.predict(got.features, fps=setup.fps, feature_stride=setup.stride,
                                   feature_window=setup.window, duration=got.duration, layout="TD")
    return detections, got.duration, got.faults


def _timestamp(seconds: float) -> str:
    ms = int(round(max(seconds, 0.0) * 1000))
    h, ms = divmod(ms, 3_600_000)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}.{ms:03d}"


_BREAKS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]+")  # controls and line breaks: one space


def cue_text(label: str) -> str:
    """A label as the text of one WebVTT cue line: line breaks and other controls become a space (a
    line break would end the cue and start structure), `&`, `<`, `>` are character references (so
    `-->` can never read as a cue's timing line, nor `<b>` as markup)."""
    text = _BREAKS.sub(" ", str(label))
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def webvtt(detections, duration: float, *, min_score: float = 0.3, max_cues: int | None = None) -> str:
    """WebVTT subtitles: one cue per detection scored `min_score` or more (the `max_cues` best of
    them; None: all), in time order, times to the millisecond; overlapping actions are
    overlapping cues, which players show together."""
    chosen = sorted((d for d in detections if d.score >= min_score), key=lambda d: -d.score)
    spans = [(max(0.0, d.start), min(duration, d.end), d) for d in chosen[:max_cues]]
    spans = sorted(((s, e, d) for s, e, d in spans if round(e * 1000) > round(s * 1000)),
                   key=lambda c: (c[0], -c[2].score))
    lines = ["WEBVTT", "", VTT_MARK, ""]
    for i, (start, end, d) in enumerate(spans, 1):
        lines += [str(i), f"{_timestamp(start)} --> {_timestamp(end)}", f"{cue_text(d.label)} ({d.score:.2f})", ""]
    return "\n".join(lines)
