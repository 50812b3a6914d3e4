"""Streamed decoding with PyAV, resampled to a fixed frame rate by timestamps.

`VideoReader(path, fps, short_edge)` yields the frames of the video resampled to `fps`: frame k is
the source frame on screen at time k / fps (the last one whose timestamp is <= k / fps), so
variable-frame-rate videos are resampled by their timestamps, not by frame counts. Only the frame
on screen is held: memory is one decoded frame plus what the caller keeps (the extractor keeps
a few windows), never the whole video. Frames are converted by FFmpeg (swscale) straight to RGB
at the size the backbone needs (shorter edge = `short_edge`), and turned upright by the
rotation the file declares (display matrix: phone videos).

After the iteration, `duration` holds the decoded duration (the last frame's end time), which
is the truth for a truncated file whose header promises more, and `faults` what was counted.
A file that has no decodable video frame at all raises `GsmtError(path, problem)`.
"""

from __future__ import annotations

import math
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np

from gsmt.errors import Faults, GsmtError
from gsmt.io.read import MAX_SECONDS
from gsmt.data.grid import resampled_frame_count

# A frame of more pixels is refused before it is converted: FFmpeg's decoded frame alone is 1.5
# bytes a pixel, once per decoding thread, and a crafted header may declare 65535 x 65535 (6 GiB).
# 8192 x 8192 holds 8K UHD (7680 x 4320) and DCI 8K (8192 x 4320).
MAX_PIXELS = 8192 * 8192
VIDEO_SUFFIXES = (".mp4", ".mkv", ".avi", ".mov", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".ts")


def _open(path: Path):
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise GsmtError(path, "video not found") from None
    except OSError as exc:
        raise GsmtError(path, f"cannot read: {exc.strerror or exc}") from None
    if not stat.S_ISREG(mode):
        raise GsmtError(path, "not a regular file (a folder, a device or a pipe)")
    if os.stat(path).st_size == 0:
        raise GsmtError(path, "empty file (0 bytes), not a video")
    try:
        # FFmpeg would call a file it may not open "not a readable video (Permission denied)"; the
        # problem is the permission, not the video.
        with open(path, "rb") as fh:
            fh.read(1)
    except OSError as exc:
        raise GsmtError(path, f"cannot read: {exc.strerror or exc}") from None
    try:
        container = av.open(str(path), metadata_errors="ignore")
    except av.FFmpegError as exc:
        raise GsmtError(path, f"not a readable video ({_ffmpeg_problem(exc)})") from None
    if not container.streams.video:
        container.close()
        kinds = sorted({s.type for s in container.streams}) or ["no stream"]
        raise GsmtError(path, f"no video stream (the file holds {', '.join(kinds)}: audio-only or not a video)")
    cc = container.streams.video[0].codec_context
    if (cc.width or 0) * (cc.height or 0) > MAX_PIXELS:
        container.close()
        raise _too_large(path, cc.width, cc.height)
    return container


def _too_large(path: Path, width: int, height: int) -> GsmtError:
    return GsmtError(path, f"frames of {width} x {height} pixels, more than gsmt decodes "
                           f"({MAX_PIXELS // 8192} x 8192 at most): scale the video down first")


def _ffmpeg_problem(exc: Exception) -> str:
    text = getattr(exc, "strerror", None) or str(exc)
    return " ".join(str(text).split())[:120] or type(exc).__name__


def _upright(array: np.ndarray, rotation: int) -> np.ndarray:
    """Apply the display rotation (PyAV: degrees counter-clockwise) to an H x W x 3 frame."""
    k = int(round(rotation / 90.0)) % 4
    return np.ascontiguousarray(np.rot90(array, k)) if k else array


def _scaled_size(width: int, height: int, short_edge: int | None) -> tuple[int, int]:
    """(width, height) with the shorter edge = short_edge, aspect kept (even rounding not needed: RGB)."""
    if not short_edge:
        return width, height
    scale = short_edge / min(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


class VideoReader:
    """Iterate over the frames of `path` resampled to `fps` (uint8 RGB, H x W x 3, upright)."""

    def __init__(self, path: str | Path, fps: float, short_edge: int | None = None):
        self.path = Path(path)
        self.fps = float(fps)
        self.short_edge = short_edge
        self.duration: float | None = None
        self.frames = 0  # resampled frames yielded
        self.decoded = 0  # source frames decoded
        self.rotation = 0
        self.size: tuple[int, int] | None = None  # (width, height) of the source, before rotation
        self.faults = Faults()
        self._container = _open(self.path)  # errors now: the caller learns of a bad file before iterating

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None

    def __enter__(self) -> "VideoReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _convert(self, frame) -> np.ndarray:
        if frame.width * frame.height > MAX_PIXELS:  # the stream may declare a small size, its frames not
            raise _too_large(self.path, frame.width, frame.height)
        if self.size is None:
            self.size = (frame.width, frame.height)
            self.rotation = int(frame.rotation or 0)
        w, h = frame.width, frame.height
        quarter = int(round(self.rotation / 90.0)) % 2 == 1
        # The short edge is measured on the upright picture; a quarter turn swaps the axes.
        tw, th = _scaled_size(w, h, self.short_edge)
        if quarter and self.short_edge:
            th2, tw2 = _scaled_size(h, w, self.short_edge)
            tw, th = tw2, th2
        array = frame.to_ndarray(format="rgb24", width=tw, height=th)
        return _upright(array, self.rotation)

    def __iter__(self) -> Iterator[np.ndarray]:
        if self._container is None:
            raise GsmtError(self.path, "reader already used")
        container = self._container
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"  # frame threads: several cores decode, same frames out
        rate = float(stream.average_rate or stream.guessed_rate or 0) or None
        step = 1.0 / self.fps
        k = 0
        held = None  # (source frame, its RGB array once converted) on screen now
        start = last_t = None
        end = 0.0
        try:
            packets = container.demux(stream)
            past_end = False
            try:
                for packet in packets:
                    if past_end:
                        break
                    for frame in packet.decode():
                        if frame.pts is None or frame.time is None:
                            self.faults.add("frames without a timestamp (skipped)")
                            continue
                        t = float(frame.time)
                        if not math.isfinite(t):
                            self.faults.add("frames without a timestamp (skipped)")
                            continue
                        if start is None:
                            start = t  # a stream may start at a non-zero time: video time 0 is its first frame
                        t -= start
                        if t > MAX_SECONDS:
                            # A timestamp days past the rest (a crafted or broken file) would make
                            # the resampling below yield billions of copies of one frame.
                            self.faults.add(f"videos with timestamps past {MAX_SECONDS:g} s (decoded up to there)")
                            past_end = True
                            break
                        if last_t is not None and t <= last_t:
                            self.faults.add("frames out of time order (skipped)")
                            continue
                        self.decoded += 1
                        # Every resampled instant before this frame's time shows the held frame.
                        while held is not None and k * step < t - 1e-9:
                            if held[1] is None:
                                held = (held[0], self._convert(held[0]))
                            yield held[1]
                            k += 1
                            self.frames = k
                        held = (frame, None)
                        # The last frame lasts one average frame interval (frame.duration is
                        # unreliable in variable-rate files); the file's end is the last frame's end.
                        span = 1.0 / rate if rate else (t - last_t if last_t is not None else step)
                        end = max(end, t + span)
                        last_t = t
            except av.FFmpegError as exc:
                if held is None:
                    raise GsmtError(self.path, f"no decodable video frame ({_ffmpeg_problem(exc)})") from None
                # A truncated or damaged tail: keep what decoded, count it.
                self.faults.add("videos truncated or damaged (decoded up to the fault)")
            if held is None:
                raise GsmtError(self.path, "no decodable video frame (empty or damaged video stream)")
            # The last frame's span (one average interval) may itself reach past the bound.
            self.duration = end = min(end, MAX_SECONDS)
            total = resampled_frame_count(end, self.fps)
            while k < total:
                if held[1] is None:
                    held = (held[0], self._convert(held[0]))
                yield held[1]
                k += 1
                self.frames = k
        finally:
            self.close()


def probe_duration(path: str | Path) -> float:
    """Duration the container declares (seconds; NaN when it declares none): for messages only."""
    container = _open(Path(path))
    try:
        stream = container.streams.video[0]
        if stream.duration and stream.time_base:
            return float(stream.duration * stream.time_base)
        return container.duration / av.time_base if container.duration else math.nan
    finally:
        container.close()


def list_videos(source: str | Path) -> list[Path]:
    """The videos of a folder (by suffix, sorted), or the paths listed in a text file (one per line,
    relative to the file), or one video file."""
    source = Path(source)
    if source.is_dir():
        found = sorted(p for p in source.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES and not p.name.startswith("."))
        if not found:
            raise GsmtError(source, f"no video files in this folder ({', '.join(VIDEO_SUFFIXES[:5])}, ...)")
        return found
    if not source.exists():
        raise GsmtError(source, "no such file or folder")
    if source.suffix.lower() in VIDEO_SUFFIXES:
        return [source]
    from gsmt.io.read import read_text

    lines = [line.strip() for line in read_text(source).splitlines()]
    paths = [Path(line) if Path(line).is_absolute() else source.parent / line
             for line in lines if line and not line.startswith("#")]
    if not paths:
        raise GsmtError(source, "the list names no video")
    return paths
