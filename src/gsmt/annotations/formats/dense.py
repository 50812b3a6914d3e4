"""Dense multi-label JSON of MultiTHUMOS and Charades, as published with Super-Events
(piergiaj/super-events-cvpr18, `data/multithumos.json`, `data/charades.json`):

    {video_id: {"subset": "training" | "testing", "duration": seconds,
                "actions": [[class_id, start, end], ...]}, ...}

Instances of different classes overlap freely (co-occurring actions). Class ids are whole numbers
>= 0 kept as given (MultiTHUMOS 1..65, Charades 0..156): a class is named by its id written as a
string (`"7"`), or by the name an optional top-level `"classes"` object gives it
(`{"7": "Jump", ...}`: keys are the ids as strings, values distinct non-empty names; with it, every
id of the file must be listed, and its entries are the whole vocabulary). The class vocabulary is
ordered by numeric id (`"10"` after `"9"`), so dense label i is the i-th smallest id.
"""

from __future__ import annotations

import re
from pathlib import Path

from gsmt.annotations.fields import _number, _optional
from gsmt.annotations.formats.common import _RESERVED_KEYS, _Raw, _read_video_info, _video_entry
from gsmt.errors import GsmtError
from gsmt.io.read import MAX_INT_DIGITS, long_number_problem

JSON = True
_DIGITS = re.compile(r"[0-9]+")


def detect(entries: list[dict]) -> bool:
    """Every video has 'actions' and none has 'annotations' (which would make it ActivityNet JSON)."""
    return all("actions" in v and "annotations" not in v for v in entries)


def class_id(value, source, what: str) -> int:
    """A class id: a whole number >= 0 (a JSON integer, or a string of decimal digits)."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str) and _DIGITS.fullmatch(value):
        if len(value) > MAX_INT_DIGITS:  # Python refuses int() past 4,300 digits: a traceback
            raise GsmtError(source, f"{what}: class id is {long_number_problem(len(value))}")
        return int(value)
    raise GsmtError(source, f"{what}: class id must be a whole number >= 0, got {value!r:.60}")


def read(obj, path: Path, video_info, subset_map: dict | None = None) -> _Raw:
    if not isinstance(obj, dict):
        raise GsmtError(path, "expected a JSON object of videos")
    db = {k: v for k, v in obj.items() if k not in _RESERVED_KEYS}
    if not db:
        raise GsmtError(path, "no videos in the file")
    names = _class_names(obj.get("classes"), path)
    info, info_name = _read_video_info(video_info, path)
    raw = _Raw()
    used: set[int] = set()
    for vid, entry in db.items():
        extra, duration, subset = _video_entry(vid, entry, info, info_name, path)
        fps = _optional(entry.get("fps", extra.get("fps")), path, f"video '{vid}' fps")
        v = raw.add_video(vid, subset, duration, (fps, None, None))
        actions = entry.get("actions")
        if not isinstance(actions, list):
            raise GsmtError(path, f"video '{vid}': 'actions' must be a list of [class_id, start, end]")
        for i, a in enumerate(actions):
            where = f"video '{vid}' action {i}"
            if not isinstance(a, list) or len(a) != 3:
                raise GsmtError(path, f"{where}: expected [class_id, start, end], got {a!r:.80}")
            c = class_id(a[0], path, where)
            if names is not None and c not in names:
                raise GsmtError(path, f"{where}: class id {c} is not in 'classes'")
            used.add(c)
            raw.add_segment(v, _number(a[1], path, f"{where} start"), _number(a[2], path, f"{where} end"),
                            names[c] if names is not None else str(c))
    ids = sorted(names) if names is not None else sorted(used)
    raw.class_order = [names[c] for c in ids] if names is not None else [str(c) for c in ids]
    return raw


def _class_names(value, path: Path) -> dict[int, str] | None:
    """The optional top-level `classes` object, id -> name."""
    if value is None:
        return None
    if not isinstance(value, dict) or not value:
        raise GsmtError(path, "'classes' must be an object mapping class ids to names ({\"7\": \"Jump\", ...})")
    names: dict[int, str] = {}
    for key, name in value.items():
        c = class_id(key, path, "'classes'")
        if c in names:
            raise GsmtError(path, f"'classes': class id {c} listed twice")
        if not isinstance(name, str) or not name:
            raise GsmtError(path, f"'classes': the name of class id {c} must be a non-empty string")
        names[c] = name
    if len(set(names.values())) != len(names):
        raise GsmtError(path, "'classes': two class ids share one name")
    return names
