"""The top-level `gsmt` object of an annotation file (settings recorded with the data), checked
field by field where it is read."""

from __future__ import annotations

from pathlib import Path

from gsmt.annotations.fields import _optional
from gsmt.errors import GsmtError

# The `gsmt` fields that settings are taken from (`gsmt.engine.resolve.resolve_config`), and their values.
_META_CHOICES = {"temporal_mode": ("auto", "resize", "window"),
                 "decode_mode": ("auto", "long", "short", "own", "own+long"),
                 "feature_layout": ("auto", "TD", "DT")}


def check_meta(meta, path: Path) -> dict:
    """The top-level `gsmt` object of an annotation file, checked field by field: a bad value is an
    error naming this file (settings are taken from it: grid, temporal mode, subsets, tIoU set).
    The tIoU set's values are checked where it is used (`gsmt.evaluation.tiou.meta_tiou`)."""
    if not isinstance(meta, dict):
        raise GsmtError(path, "'gsmt' must be an object")
    for key, choices in _META_CHOICES.items():
        if key in meta and meta[key] not in choices:
            raise GsmtError(path, f"field 'gsmt.{key}' must be one of {', '.join(choices)}, got {meta[key]!r:.60}")
    for key in ("train_subset", "eval_subset"):
        if key in meta and not (isinstance(meta[key], str) and meta[key]):
            raise GsmtError(path, f"field 'gsmt.{key}' must be a subset name, got {meta[key]!r:.60}")
    tiou = meta.get("tiou")
    if tiou is not None and not (isinstance(tiou, str) or (
            isinstance(tiou, list) and tiou and all(isinstance(t, (int, float)) and not isinstance(t, bool)
                                                    for t in tiou))):
        raise GsmtError(path, f"field 'gsmt.tiou' must be a preset name, a comma list or a list of "
                              f"numbers, got {tiou!r:.60}")
    grid = meta.get("grid")
    if grid is not None:
        if not isinstance(grid, dict):
            raise GsmtError(path, f"field 'gsmt.grid' must be an object, got {grid!r:.60}")
        _optional(grid.get("fps"), path, "field 'gsmt.grid.fps'")
        for key in ("feature_stride", "feature_window"):
            _optional(grid.get(key), path, f"field 'gsmt.grid.{key}'", int)
    return meta
