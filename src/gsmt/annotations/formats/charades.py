"""Charades' own CSV (`Charades_v1_train.csv`, `Charades_v1_test.csv`; gzip too).

Header `id,subject,scene,quality,relevance,verified,script,objects,descriptions,actions,length`
(only `id`, `actions` and `length` are read); `actions` is `c092 11.90 21.20;c147 0.00 12.60` or
empty (a video without instances), `length` the video's duration in seconds. Class `cNNN` is named
by its id as a string (`c092` -> `"92"`), as in the dense JSON of the same data
(`gsmt.annotations.formats.dense`), and the vocabulary is ordered by numeric id. The subset comes
from the file name: a word `train` -> `training`, `test` -> `testing` (the dense JSON's names),
otherwise `video_info`'s subset or the default subset. Detected before the generic CSV by its
header (`id`, `actions` and `length` columns).
"""

from __future__ import annotations

import csv as _csv
import re
import stat
import zlib
from pathlib import Path

from gsmt.annotations.fields import _duration, _number, _optional
from gsmt.annotations.formats.common import _lookup, _Raw, _read_text, _read_video_info
from gsmt.annotations.formats.dense import class_id
from gsmt.annotations.types import DEFAULT_SUBSET, check_video_id
from gsmt.errors import GsmtError
from gsmt.io.read import GZIP_MAGIC, logical_name, logical_suffix, parse_csv

JSON = False
COLUMNS = ("id", "actions", "length")
_ACTION = re.compile(r"c([0-9]+)")
_PEEK = 1 << 16  # bytes of the file (decompressed) that detection reads: the header line


def _header(path: Path) -> list[str] | None:
    """The header fields of a regular file (gzip too) from its first bytes, None when unreadable.

    Only regular files are peeked at: reading the start of a pipe would take it from the reader."""
    try:
        if not stat.S_ISREG(path.stat().st_mode):
            return None
        with open(path, "rb") as fh:
            head = fh.read(_PEEK)
        if head[:2] == GZIP_MAGIC:
            head = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(head, _PEEK)
        line = head.decode("utf-8-sig", errors="replace").splitlines()[0] if head else ""
        return next(_csv.reader([line]), [])
    except (OSError, zlib.error, _csv.Error):
        return None  # the reader that takes the file names the fault


def detect(path: Path) -> bool:
    """A `.csv` name (`.csv.gz` too) whose header holds `id`, `actions` and `length`."""
    if logical_suffix(path) != ".csv":
        return False
    header = _header(path)
    return header is not None and all(c in header for c in COLUMNS)


def subset_of(path: Path) -> str | None:
    """`training` / `testing` from a word `train` / `test` of the file name, else None."""
    words = set(re.split(r"[^a-z0-9]+", Path(logical_name(path)).stem.lower()))
    if "train" in words:
        return "training"
    if "test" in words:
        return "testing"
    return None


def read(path: Path, video_info, subset_map: dict | None = None) -> _Raw:
    header, reader = parse_csv(_read_text(path), path)
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        raise GsmtError(path, f"a Charades CSV needs the columns id, actions, length (missing: {', '.join(missing)})")
    info, info_name = _read_video_info(video_info, path)
    named = subset_of(path)
    raw = _Raw()
    used: set[int] = set()
    for n, row in enumerate(reader, 2):
        vid = check_video_id(row["id"], path)
        extra = _lookup(info, vid) or {}
        length = row["length"] if row["length"] not in (None, "") else extra.get("duration")
        if length in (None, ""):
            raise GsmtError(path, f"line {n}: video '{vid}' has no length (add it or pass video_info)")
        duration = _duration(length, path if row["length"] not in (None, "") else info_name, vid)
        subset = named or extra.get("subset") or DEFAULT_SUBSET
        fps = _optional(extra.get("fps"), info_name, f"video '{vid}' fps")
        v = raw.add_video(vid, subset, duration, (fps, None, None))
        for item in (row["actions"] or "").split(";"):
            parts = item.split()
            if not parts:
                continue  # an empty field, or a stray ';'
            match = _ACTION.fullmatch(parts[0]) if len(parts) == 3 else None
            if match is None:
                raise GsmtError(path, f"line {n}: action {item.strip()!r:.60} is not 'cNNN start end'")
            c = class_id(match.group(1), path, f"line {n}: action {parts[0][:20]!r}")
            used.add(c)
            raw.add_segment(v, _number(parts[1], path, f"line {n} start"), _number(parts[2], path, f"line {n} end"),
                            str(c))
    if not raw.ids:
        raise GsmtError(path, "no videos in the file")
    raw.class_order = [str(c) for c in sorted(used)]
    return raw
