"""ActionFormer JSON: ActivityNet JSON whose annotations carry a `label_id`, which fixes the class
ids (`label_id` order)."""

from __future__ import annotations

from pathlib import Path

from gsmt.annotations.formats import activitynet
from gsmt.annotations.formats.common import _Raw

JSON = True


def detect(entries: list[dict]) -> bool:
    """ActivityNet JSON with a `label_id` on some annotation."""
    return activitynet.detect(entries) and any(
        isinstance(a, dict) and "label_id" in a for v in entries for a in v.get("annotations") or [])


def read(obj, path: Path, video_info, subset_map: dict | None = None) -> _Raw:
    return activitynet.read(obj, path, video_info, use_label_id=True)
