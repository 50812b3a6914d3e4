"""What the format readers share: the flat `_Raw` form they fill, the bounded text and JSON reads,
and `video_info` (durations, fps and subsets that an annotation file lacks)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from gsmt.errors import Faults, GsmtError
from gsmt.io.read import parse_csv, parse_json, read_text

# Top-level keys of an ActivityNet-style file that are not videos (mmaction2 form has no wrapper).
_RESERVED_KEYS = {"version", "taxonomy", "gsmt", "classes", "external_data", "database"}


@dataclass
class _Raw:
    """What a reader hands to `gsmt.annotations.load._finish`: videos plus flat per-segment lists
    (label names, seconds)."""

    ids: list[str] = field(default_factory=list)
    subsets: list[str] = field(default_factory=list)
    durations: list[float] = field(default_factory=list)
    grids: list[tuple] = field(default_factory=list)  # (fps, feature_stride, feature_window)
    seg_video: list[int] = field(default_factory=list)
    seg_start: list[float] = field(default_factory=list)
    seg_end: list[float] = field(default_factory=list)
    seg_label: list[str] = field(default_factory=list)
    class_order: list[str] | None = None
    meta: dict = field(default_factory=dict)
    faults: Faults = field(default_factory=Faults)

    def add_video(self, video_id: str, subset: str, duration: float, grid: tuple = (None, None, None)) -> int:
        self.ids.append(video_id)
        self.subsets.append(subset)
        self.durations.append(duration)
        self.grids.append(grid)
        return len(self.ids) - 1

    def add_segment(self, video: int, start: float, end: float, label: str) -> None:
        self.seg_video.append(video)
        self.seg_start.append(start)
        self.seg_end.append(end)
        self.seg_label.append(label)


def _read_text(path: Path) -> str:
    """UTF-8 text of a file, decompressed when it is gzip (magic bytes or a `.gz` name)."""
    return read_text(path)


def _read_json(path: Path):
    # Bounded read, UTF-8 only, a video id listed twice in one object refused (gsmt.io.read).
    return parse_json(_read_text(path), path)


def _read_video_info(video_info, source: Path) -> tuple[dict[str, dict], str]:
    """Normalise `video_info` to `{video_id: {"duration", "fps", "subset"}}` and a name for errors."""
    if video_info is None:
        return {}, str(source)
    if isinstance(video_info, Mapping):
        out = {}
        for vid, info in video_info.items():
            if isinstance(info, Mapping):
                out[vid] = {
                    "duration": info.get("duration", info.get("seconds")),
                    "fps": info.get("fps"),
                    "subset": info.get("subset"),
                }
            else:
                out[vid] = {"duration": info, "fps": None, "subset": None}
        return out, "video_info"
    info_path = Path(video_info)
    if not info_path.exists():
        raise GsmtError(info_path, "no such file")
    header, reader = parse_csv(_read_text(info_path), info_path)
    fields = set(header)
    if "video" not in fields or not fields & {"duration", "seconds"}:
        raise GsmtError(info_path, "expected a CSV with a header holding 'video' and 'duration' (or 'seconds')")
    dur_key = "duration" if "duration" in fields else "seconds"
    out = {}
    for row in reader:
        vid = row["video"]
        if vid not in out:
            out[vid] = {"duration": row.get(dur_key), "fps": row.get("fps"), "subset": row.get("subset")}
    return out, str(info_path)


def _lookup(info: dict[str, dict], video_id: str) -> dict | None:
    """Info for `video_id`, tolerating a `v_` prefix on one side only."""
    if video_id in info:
        return info[video_id]
    alt = video_id[2:] if video_id.startswith("v_") else "v_" + video_id
    return info.get(alt)


def _video_entry(vid: str, entry, info, info_name, path: Path) -> tuple[dict, float, str]:
    """A JSON format's video entry checked: (its `video_info` row, duration, subset); `video_info`
    fills what the entry lacks."""
    from gsmt.annotations.fields import _duration
    from gsmt.annotations.types import DEFAULT_SUBSET, check_video_id

    check_video_id(vid, path)
    if not isinstance(entry, dict):
        raise GsmtError(path, f"video '{vid}': expected an object")
    extra = _lookup(info, vid) or {}
    duration = entry.get("duration", extra.get("duration"))
    if duration is None:
        raise GsmtError(path, f"video '{vid}' has no duration (add it or pass video_info)")
    duration = _duration(duration, path if "duration" in entry else info_name, vid)
    subset = entry.get("subset") or extra.get("subset") or DEFAULT_SUBSET
    if not isinstance(subset, str):
        raise GsmtError(path, f"video '{vid}': 'subset' must be a string, got {subset!r:.60}")
    return extra, duration, subset

