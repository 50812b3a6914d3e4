"""ActivityNet JSON (`{"database": {id: {...}}}`, or mmaction2's bare `{id: {...}}`), the form
`gsmt.annotations.write.save_activitynet_json` writes; ActionFormer JSON is read by the same code."""

from __future__ import annotations

from pathlib import Path

from gsmt.annotations.fields import _number, _optional, _segment
from gsmt.annotations.formats.common import _RESERVED_KEYS, _Raw, _read_video_info, _video_entry
from gsmt.annotations.meta import check_meta
from gsmt.annotations.types import AMBIGUOUS
from gsmt.errors import GsmtError

JSON = True


def detect(entries: list[dict]) -> bool:
    """Every video has 'annotations' or a 'duration'."""
    return all("annotations" in v or "duration" in v for v in entries)


def read(obj, path: Path, video_info, subset_map: dict | None = None, *, use_label_id: bool = False) -> _Raw:
    """`use_label_id`: the ActionFormer form, whose `label_id`s give the class order."""
    if not isinstance(obj, dict):
        raise GsmtError(path, "expected a JSON object of videos")
    if "database" in obj:
        db = obj["database"]
        if not isinstance(db, dict):
            raise GsmtError(path, "'database' is not an object of videos")
    else:
        db = {k: v for k, v in obj.items() if k not in _RESERVED_KEYS}
    if not db:
        raise GsmtError(path, "no videos in the file")
    info, info_name = _read_video_info(video_info, path)
    raw = _Raw()
    meta = obj.get("gsmt")
    if meta is not None:
        raw.meta = check_meta(meta, path)
    classes = obj.get("classes")
    if classes is not None:
        if not isinstance(classes, list) or not all(isinstance(c, str) and c for c in classes) \
                or len(set(classes)) != len(classes):
            raise GsmtError(path, "'classes' must be a list of distinct class names")
        raw.class_order = classes
    label_ids: dict[str, float] = {}
    for vid, entry in db.items():
        extra, duration, subset = _video_entry(vid, entry, info, info_name, path)
        grid = (
            _optional(entry.get("fps", extra.get("fps")), path, f"video '{vid}' fps"),
            _optional(entry.get("feature_stride"), path, f"video '{vid}' feature_stride", int),
            _optional(entry.get("feature_window"), path, f"video '{vid}' feature_window", int),
        )
        v = raw.add_video(vid, str(subset), duration, grid)
        annotations = entry.get("annotations") or []
        ambiguous = entry.get("ambiguous") or []
        if not isinstance(annotations, list) or not isinstance(ambiguous, list):
            raise GsmtError(path, f"video '{vid}': 'annotations' and 'ambiguous' must be lists")
        for a in annotations:
            if not isinstance(a, dict) or not isinstance(a.get("label"), str) or not a["label"]:
                raise GsmtError(path, f"video '{vid}': every annotation needs a 'label' and a 'segment'")
            start, end = _segment(a.get("segment"), path, vid)
            raw.add_segment(v, start, end, a["label"])
            if use_label_id and a["label"] != AMBIGUOUS:
                if "label_id" not in a:
                    raise GsmtError(path, f"video '{vid}': annotation without 'label_id' in an ActionFormer file")
                label_id = _number(a["label_id"], path, f"video '{vid}' label_id")
                if label_ids.setdefault(a["label"], label_id) != label_id:
                    raise GsmtError(path, f"class '{a['label']}' has two label_id values")
        for a in ambiguous:
            # THUMOS14 JSON: [{"label": "Ambiguous", "segment": [s, e]}]; a bare [s, e] works too.
            start, end = _segment(a.get("segment") if isinstance(a, dict) else a, path, vid)
            raw.add_segment(v, start, end, AMBIGUOUS)
    if use_label_id and raw.class_order is None and label_ids:
        if len(set(label_ids.values())) != len(label_ids):
            raise GsmtError(path, "two classes share one label_id")
        raw.class_order = sorted(label_ids, key=label_ids.__getitem__)
    return raw
