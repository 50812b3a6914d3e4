"""Plain CSV annotations, `video,start,end,label[,subset][,duration][,fps]` (gzip too)."""

from __future__ import annotations

import math
from pathlib import Path

from gsmt.annotations.fields import _duration, _number, _optional
from gsmt.annotations.formats.common import _lookup, _Raw, _read_text, _read_video_info
from gsmt.annotations.types import DEFAULT_SUBSET, check_video_id
from gsmt.errors import GsmtError
from gsmt.io.read import logical_suffix, parse_csv

JSON = False


def detect(path: Path) -> bool:
    """A `.csv` name (`.csv.gz` too)."""
    return logical_suffix(path) == ".csv"


def read(path: Path, video_info, subset_map: dict | None = None) -> _Raw:
    """Plain CSV `video,start,end,label[,subset][,duration][,fps]`; a row with empty start and end
    lists a video without instances."""
    header, reader = parse_csv(_read_text(path), path)
    fields = set(header)
    missing = [c for c in ("video", "start", "end", "label") if c not in fields]
    if missing:
        raise GsmtError(path, f"CSV header must hold video,start,end,label (missing: {', '.join(missing)})")
    info, info_name = _read_video_info(video_info, path)
    raw = _Raw()
    index: dict[str, int] = {}
    max_end: dict[int, float] = {}
    for n, row in enumerate(reader, 2):
        vid = check_video_id(row["video"], path)
        extra = _lookup(info, vid) or {}
        duration = row.get("duration") or extra.get("duration")
        if vid not in index:
            subset = row.get("subset") or extra.get("subset") or DEFAULT_SUBSET
            fps = _optional(row.get("fps") or extra.get("fps"), path, f"line {n} fps")
            dur = math.nan if duration in (None, "") else _duration(duration, path, vid)
            index[vid] = raw.add_video(vid, subset, dur, (fps, None, None))
        v = index[vid]
        if duration not in (None, "") and not math.isnan(raw.durations[v]) \
                and _duration(duration, path, vid) != raw.durations[v]:
            raw.faults.add("rows with a duration that differs from the video's first")
        if row["start"] in (None, "") and row["end"] in (None, ""):
            continue
        if not row["label"]:
            raise GsmtError(path, f"line {n}: empty label")
        start = _number(row["start"], path, f"line {n} start")
        end = _number(row["end"], path, f"line {n} end")
        raw.add_segment(v, start, end, row["label"])
        max_end[v] = max(max_end.get(v, -math.inf), end)
    if not raw.ids:
        raise GsmtError(path, "no videos in the file")
    for v, d in enumerate(raw.durations):
        if math.isnan(d):
            if not (max_end.get(v, 0) > 0):
                raise GsmtError(path, f"video '{raw.ids[v]}' has no duration "
                                      "(add a 'duration' column or pass video_info)")
            raw.durations[v] = _duration(max_end[v], path, raw.ids[v])
            raw.faults.add("videos without a duration (max segment end used)")
    return raw
