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
`expected_frames` is what the container declares (its duration, else its frame count, resampled to
`fps`; None when it declares neither): the total of a progress display, never a bound.

`threads` (`--threads` of `gsmt extract` / `gsmt detect`) bounds FFmpeg's decoding threads of the
stream (None: FFmpeg's own choice, one per core); `decoder_threads` holds what the decoder was
given once the iteration has started.
"""

from __future__ import annotations

import math
import os
import stat
import struct
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np

from gsmt.errors import Faults, GsmtError
from gsmt.io.read import MAX_SECONDS
from gsmt.data.grid import resampled_frame_count

# `--threads`: at most this many decoding (and torch) threads.
MAX_THREADS = 1024


def check_threads(threads) -> int | None:
    """`--threads` for Python callers too: None (the libraries' defaults) or an integer in [1, MAX_THREADS]."""
    if threads is None:
        return None
    if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or not 1 <= threads <= MAX_THREADS:
        raise GsmtError("--threads", f"must be an integer in [1, {MAX_THREADS}], got {threads!r}")
    return int(threads)


# A frame of more pixels is refused before it is converted: FFmpeg's decoded frame alone is 1.5
# bytes a pixel, once per decoding thread, and a crafted header may declare 65535 x 65535 (6 GiB).
# 8192 x 8192 holds 8K UHD (7680 x 4320) and DCI 8K (8192 x 4320).
MAX_PIXELS = 8192 * 8192
# The resize to the backbone's short edge may not make a frame longer than this (a 16384 x 1 video
# passes the pixel bound, and its short edge scaled to 32 px made 524288 x 32 frames).
MAX_SCALED_EDGE = 8192
# Resampling repeats the frame on screen until the next one: the repeats a decoded frame may give are
# bounded. A gap longer than GAP_INTERVALS nominal frame intervals of the stream and than
# MIN_GAP_BOUND seconds (a 3-frame, 1.5-KB file whose last timestamp jumps by an hour made 36,001
# frames) ends the video there, counted; a slow stream (a frame per 90 s) keeps its own intervals,
# and a variable-rate recording may hold a still picture for up to a minute (a screen recording
# adds frames only when the screen changes).
GAP_INTERVALS = 100
MIN_GAP_BOUND = 60.0
GAP_FAULT = (f"videos with a gap of more than {GAP_INTERVALS} frame intervals and {MIN_GAP_BOUND:g} s between "
             "two frames (decoded up to the gap)")
PARTIAL_FAULT = "videos decoded in part (fewer frames than their header declares: damaged)"
ROTATION_FAULT = "videos with a display matrix that is no turn by 0, 90, 180 or 270 degrees (shown unturned)"
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
        kinds = sorted({s.type for s in container.streams})  # before close(), which empties the list
        container.close()
        holds = f"the file holds only {' and '.join(kinds)}" if kinds else "the file holds no stream at all"
        raise GsmtError(path, f"no video stream ({holds}: audio-only or not a video)")
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


# The 2 x 2 part (a, b, c, d; 16.16 fixed point) of the display matrices of the 4 proper rotations.
_ONE = 1 << 16
_PROPER = {(_ONE, 0, 0, _ONE), (0, -_ONE, _ONE, 0), (-_ONE, 0, 0, -_ONE), (0, _ONE, -_ONE, 0)}


def _display_rotation(frame) -> float:
    """The frame's display rotation in degrees (PyAV: counter-clockwise), 0 without a display
    matrix, NaN for a matrix that is no proper quarter turn: a degenerate one (all zeros: PyAV's
    angle is INT_MIN, which turned frames by 270 degrees), a shear, a mirror."""
    try:
        matrix = None
        sides = frame.side_data
        for side in sides:
            if not hasattr(side, "type"):  # PyAV >= 18.1.1 iterates the types; 18.1.0 the side data
                side = sides[side]
            if getattr(side.type, "name", str(side.type)).endswith("DISPLAYMATRIX"):
                data = bytes(side)
                if len(data) != 36:
                    return math.nan
                matrix = struct.unpack("=9i", data)
        if matrix is None:
            return 0.0
        a, b, _, c, d = matrix[:5]
        if not any(max(abs(a - p), abs(b - q), abs(c - r), abs(d - t)) <= 2 for p, q, r, t in _PROPER):
            return math.nan
        return float(frame.rotation)
    except Exception:  # noqa: BLE001 - a display matrix PyAV cannot read: no rotation, counted
        return math.nan


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


def check_scaled_size(path: Path, width: int, height: int, short_edge: int | None) -> None:
    """Refuse a frame whose resize to `short_edge` would pass `MAX_SCALED_EDGE` (an extreme aspect ratio)."""
    if not short_edge or not width or not height:
        return
    tw, th = _scaled_size(width, height, short_edge)
    if max(tw, th) > MAX_SCALED_EDGE:
        raise GsmtError(path, f"frames of {width} x {height} pixels would be scaled to {tw} x {th} (shorter edge "
                              f"{short_edge} px, as the backbone takes them): an aspect ratio of "
                              f"{max(width, height) / min(width, height):.0f}:1, past gsmt's bound (a longer edge "
                              f"of {MAX_SCALED_EDGE} px after scaling); crop the video first")


def proper_rotation(degrees) -> int | None:
    """0, 90, 180 or 270 for a display rotation that is one of them (within 0.01 degree), else None
    (a degenerate, sheared or oblique display matrix: NaN or any other angle)."""
    try:
        degrees = float(degrees or 0)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(degrees):
        return None
    k = round(degrees / 90.0)
    return (k % 4) * 90 if abs(degrees - 90.0 * k) < 0.01 else None


class VideoReader:
    """Iterate over the frames of `path` resampled to `fps` (uint8 RGB, H x W x 3, upright)."""

    def __init__(self, path: str | Path, fps: float, short_edge: int | None = None, threads: int | None = None):
        self.path = Path(path)
        self.fps = float(fps)
        self.short_edge = short_edge
        self.threads = check_threads(threads)
        self.decoder_threads: int | None = None  # the thread count the decoder was given (0: FFmpeg's choice)
        self.duration: float | None = None
        self.frames = 0  # resampled frames yielded
        self.decoded = 0  # source frames decoded
        self.rotation = 0
        self.size: tuple[int, int] | None = None  # (width, height) of the source, before rotation
        self.faults = Faults()
        self._container = _open(self.path)  # errors now: the caller learns of a bad file before iterating
        cc = self._container.streams.video[0].codec_context
        try:
            check_scaled_size(self.path, cc.width or 0, cc.height or 0, short_edge)
        except GsmtError:
            self.close()
            raise
        declared = _declared_duration(self._container)
        self.expected_frames: int | None = \
            resampled_frame_count(min(declared, MAX_SECONDS), self.fps) if declared is not None else None

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
            check_scaled_size(self.path, frame.width, frame.height, self.short_edge)
            self.size = (frame.width, frame.height)
            rotation = proper_rotation(_display_rotation(frame))
            if rotation is None:
                self.faults.add(ROTATION_FAULT)
            self.rotation = rotation or 0
        elif (frame.width, frame.height) != self.size:  # a stream may change its size mid-way
            check_scaled_size(self.path, frame.width, frame.height, self.short_edge)
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
        if self.threads is not None:
            stream.thread_count = self.threads  # before the first decode, which opens the codec
        self.decoder_threads = int(stream.codec_context.thread_count)
        rate = float(stream.average_rate or stream.guessed_rate or 0) or None
        nominal = float(stream.guessed_rate or stream.average_rate or 0) or None
        gap_bound = max(MIN_GAP_BOUND, GAP_INTERVALS / nominal if nominal else 0.0)
        step = 1.0 / self.fps
        k = 0
        held = None  # (source frame, its RGB array once converted) on screen now
        start = last_t = prev_t = None
        seen = 0  # frames the decoder gave, kept or not
        declared = int(stream.frames or 0)  # the header's frame count (0: it declares none)
        damaged = False
        end = 0.0
        try:
            packets = container.demux(stream)
            past_end = False
            try:
                for packet in packets:
                    if past_end:
                        break
                    for frame in packet.decode():
                        seen += 1
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
                        if last_t is not None and t - last_t > gap_bound:
                            # Each resampled instant of the gap would repeat the held frame.
                            self.faults.add(GAP_FAULT)
                            end = min(end, last_t + (last_t - prev_t if prev_t is not None else 1.0 / self.fps))
                            past_end = True
                            break
                        self.decoded += 1
                        # Every resampled instant before this frame's time shows the held frame.
                        while held is not None and k * step < t - 1e-9:
                            if held[1] is None:
                                # Converted once; the decoder's frame (a buffer of its pool) goes now.
                                held = (None, self._convert(held[0]))
                            yield held[1]
                            k += 1
                            self.frames = k
                        held = (frame, None)
                        # The last frame lasts one average frame interval (frame.duration is
                        # unreliable in variable-rate files); the file's end is the last frame's end.
                        span = 1.0 / rate if rate else (t - last_t if last_t is not None else step)
                        end = max(end, t + min(span, gap_bound))
                        prev_t, last_t = last_t, t
            except av.FFmpegError as exc:
                if held is None:
                    raise GsmtError(self.path, f"no decodable video frame ({_ffmpeg_problem(exc)})") from None
                # A truncated or damaged tail: keep what decoded, count it.
                self.faults.add("videos truncated or damaged (decoded up to the fault)")
                damaged = True
            if held is None:
                raise GsmtError(self.path, "no decodable video frame (empty or damaged video stream)")
            if not past_end and not damaged and 0 < seen < declared:
                # FFmpeg drops the frames of damaged packets without an error: 13 of 30 frames
                # decoded is a damaged file, counted.
                self.faults.add(PARTIAL_FAULT)
            # The last frame's span (one average interval) may itself reach past the bound.
            self.duration = end = min(end, MAX_SECONDS)
            total = resampled_frame_count(end, self.fps)
            while k < total:
                if held[1] is None:
                    held = (None, self._convert(held[0]))
                yield held[1]
                k += 1
                self.frames = k
        finally:
            self.close()


def _declared_duration(container) -> float | None:
    """Seconds the container declares for its video stream: the stream's duration, else the
    container's, else frame count / average rate; None when it declares none (or nonsense)."""
    stream = container.streams.video[0]
    try:
        if stream.duration and stream.time_base:
            seconds = float(stream.duration * stream.time_base)
        elif container.duration:
            seconds = container.duration / av.time_base
        elif stream.frames and stream.average_rate:
            seconds = stream.frames / float(stream.average_rate)
        else:
            return None
    except (TypeError, ValueError, ZeroDivisionError, OverflowError):
        return None
    return seconds if math.isfinite(seconds) and seconds > 0 else None


def probe_duration(path: str | Path) -> float:
    """Duration the container declares (seconds; NaN when it declares none): for messages only."""
    container = _open(Path(path))
    try:
        declared = _declared_duration(container)
        return math.nan if declared is None else declared
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
