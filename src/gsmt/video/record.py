"""The backbone record from data to checkpoint: what `gsmt train` adds to the config (NumPy-free, no torch).

`gsmt extract` writes `gsmt.backbone` (id, kind, digest...) and `gsmt.grid` into annotations.json.
The grid reaches the checkpoint through the config's `data.fps / feature_stride / feature_window`
(gsmt.engine.resolve.resolve_config); the backbone through `data.backbone` / `data.backbone_digest`,
filled here from the data folder before training, so the checkpoint carries both and `gsmt detect`
extracts exactly as the training features were.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from gsmt.config import Config
from gsmt.errors import GsmtError


def data_backbone(data_dir: str | Path, cfg: Config) -> dict | None:
    """The `gsmt.backbone` record of a data folder's annotation file (None when it has none)."""
    from gsmt.io.read import read_json

    path = Path(cfg.data.annotations)
    path = path if path.is_absolute() else Path(data_dir) / path
    if path.suffix.lower() != ".json" or not path.is_file():
        return None
    try:
        obj = read_json(path)
    except GsmtError:
        return None  # the training reads the file again and names the fault
    meta = obj.get("gsmt") if isinstance(obj, dict) else None
    record = meta.get("backbone") if isinstance(meta, dict) else None
    if not isinstance(record, dict):
        return None
    if not (isinstance(record.get("id"), str) and record["id"] and isinstance(record.get("digest"), str)):
        raise GsmtError(path, "field 'gsmt.backbone' must be an object with an id and a digest (what gsmt extract writes)")
    return record


def with_data_backbone(cfg: Config, data_dir: str | Path) -> Config:
    """`cfg` with `data.backbone` / `data.backbone_digest` from the data when the config sets none."""
    if cfg.data.backbone is not None:
        return cfg
    record = data_backbone(data_dir, cfg)
    if record is None:
        return cfg
    data = dataclasses.replace(cfg.data, backbone=record["id"], backbone_digest=record["digest"])
    return dataclasses.replace(cfg, data=data)
