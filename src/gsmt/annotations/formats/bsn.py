"""BSN/BMN `anet_anno_action.json` (videos with `duration_second`), subsets and fps from
`video_info_new.csv`."""

from __future__ import annotations

from pathlib import Path

from gsmt.annotations.fields import _duration, _optional, _segment
from gsmt.annotations.formats.common import _lookup, _Raw, _read_video_info
from gsmt.annotations.types import DEFAULT_SUBSET, check_video_id
from gsmt.errors import GsmtError

JSON = True


def detect(entries: list[dict]) -> bool:
    """Every video has a `duration_second`."""
    return all("duration_second" in v for v in entries)


def read(obj, path: Path, video_info, subset_map: dict | None = None) -> _Raw:
    """BSN/BMN `anet_anno_action.json` + `video_info_new.csv` (found beside the JSON when not given)."""
    if not isinstance(obj, dict) or not obj:
        raise GsmtError(path, "no videos in the file")
    for name in ("video_info_new.csv", "video_info_new.csv.gz"):
        if video_info is None and (path.parent / name).exists():
            video_info = path.parent / name
    info, _ = _read_video_info(video_info, path)
    raw = _Raw()
    for vid, entry in obj.items():
        check_video_id(vid, path)
        if not isinstance(entry, dict):
            raise GsmtError(path, f"video '{vid}': expected an object")
        extra = _lookup(info, vid)
        if info and extra is None:
            # The CSV is what assigns subsets; a video it does not list cannot be placed.
            raw.faults.add("videos not in video_info (skipped)")
            continue
        extra = extra or {}
        duration = _duration(entry.get("duration_second", extra.get("duration")), path, vid)
        fps = _optional(extra.get("fps"), path, f"video '{vid}' fps")
        v = raw.add_video(vid, str(extra.get("subset") or DEFAULT_SUBSET), duration, (fps, None, None))
        for a in entry.get("annotations") or []:
            if not isinstance(a, dict) or not isinstance(a.get("label"), str) or not a["label"]:
                raise GsmtError(path, f"video '{vid}': every annotation needs a 'label' and a 'segment'")
            start, end = _segment(a.get("segment"), path, vid)
            raw.add_segment(v, start, end, a["label"])
    return raw
