"""THUMOS14 official per-class txt files, `<Class>_<val|test>.txt` in one folder; durations (and
fps) from `video_info`."""

from __future__ import annotations

from pathlib import Path

from gsmt.annotations.fields import _duration, _number, _optional
from gsmt.annotations.formats.common import _lookup, _Raw, _read_text, _read_video_info
from gsmt.annotations.types import check_video_id
from gsmt.errors import GsmtError

JSON = False
THUMOS_SUBSETS = {"val": "validation", "validation": "validation", "test": "test"}


def detect(path: Path) -> bool:
    """A folder."""
    return path.is_dir()


def read(folder: Path, video_info, subset_map: dict) -> _Raw:
    """THUMOS14 official per-class files `<Class>_<val|test>.txt`, lines `video start end`."""
    if not folder.is_dir():
        raise GsmtError(folder, "THUMOS14 txt annotations are a folder of <Class>_<subset>.txt files")
    suffixes = {**THUMOS_SUBSETS, **subset_map}
    files = []
    for f in sorted(folder.glob("*.txt")):
        cls, _, suffix = f.stem.rpartition("_")
        if cls and suffix in suffixes:
            files.append((f, cls, suffixes[suffix]))
    if not files:
        raise GsmtError(folder, "no THUMOS14 annotation files (<Class>_val.txt, <Class>_test.txt) in the folder")
    if video_info is None:
        raise GsmtError(folder, "THUMOS14 txt annotations carry no durations: pass video_info "
                                "(a CSV video,duration[,fps] or a dict)")
    info, info_name = _read_video_info(video_info, folder)
    rows: list[tuple[str, str, float, float, str]] = []
    for f, cls, subset in files:
        for n, line in enumerate(_read_text(f).splitlines(), 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 3:
                raise GsmtError(f, f"line {n}: expected 'video start end', got {line.strip()!r}")
            vid = check_video_id(parts[0], f)
            rows.append((vid, subset, _number(parts[1], f, f"line {n} start"),
                         _number(parts[2], f, f"line {n} end"), cls))
    raw = _Raw()
    index: dict[str, int] = {}
    first_subset: dict[str, str] = {}
    for vid, subset, *_ in rows:
        first_subset.setdefault(vid, subset)
    # Folder listing order is arbitrary: videos are listed by id, segments by file then line.
    for vid in sorted(first_subset):
        extra = _lookup(info, vid)
        if extra is None or extra.get("duration") in (None, ""):
            raise GsmtError(info_name, f"no duration for video '{vid}'")
        index[vid] = raw.add_video(
            vid, first_subset[vid], _duration(extra["duration"], info_name, vid),
            (_optional(extra.get("fps"), info_name, f"video '{vid}' fps"), None, None),
        )
    for vid, _, start, end, cls in rows:
        raw.add_segment(index[vid], start, end, cls)
    return raw
