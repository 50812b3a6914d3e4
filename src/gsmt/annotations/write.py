"""The ActivityNet JSON writer: `load_annotations` reads what it writes back unchanged (class ids
included, through the top-level `classes` list)."""

from __future__ import annotations

import json
from pathlib import Path

from gsmt.annotations.types import AMBIGUOUS, Annotations, Video
from gsmt.errors import GsmtError
from gsmt.io.write import atomic_write_text


def to_activitynet_dict(ann: Annotations, videos: list[Video] | None = None) -> dict:
    """The ActivityNet JSON object `save_activitynet_json` writes."""
    database = {}
    for v in ann.videos if videos is None else videos:
        entry: dict = {"subset": v.subset, "duration": float(v.duration)}
        for key in ("fps", "feature_stride", "feature_window"):
            value = getattr(v, key)
            if value is not None:
                entry[key] = float(value) if key == "fps" else int(value)
        entry["annotations"] = [
            {"label": ann.classes[int(c)], "segment": [float(s), float(e)]}
            for (s, e), c in zip(v.segments.tolist(), v.labels.tolist())
        ]
        if len(v.ambiguous):
            entry["ambiguous"] = [{"label": AMBIGUOUS, "segment": [float(s), float(e)]}
                                  for s, e in v.ambiguous.tolist()]
        database[v.id] = entry
    out: dict = {"version": "gsmt ActivityNet-style ground truth", "classes": list(ann.classes),
                 "database": database}
    if ann.meta:
        out["gsmt"] = ann.meta
    return out


def save_activitynet_json(ann: Annotations, path: str | Path, videos: list[Video] | None = None) -> None:
    """Write `ann` (or just `videos`) as ActivityNet JSON, atomically; `load_annotations` reads it back."""
    try:
        text = json.dumps(to_activitynet_dict(ann, videos), indent=1)
    except (TypeError, ValueError) as exc:
        raise GsmtError(path, f"cannot write annotations: {exc}") from exc
    atomic_write_text(path, text + "\n")
