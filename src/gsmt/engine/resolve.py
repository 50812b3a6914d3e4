"""From a data folder and a config to datasets: resolve `auto` settings from the data, split videos."""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# report_faults lives with the annotations, meta_tiou with the tIoU sets: `gsmt eval` needs them without torch
from gsmt.annotations.types import Annotations, Video  # noqa: F401
from gsmt.annotations.load import load_annotations, report_faults  # noqa: F401
from gsmt.evaluation.tiou import meta_tiou  # noqa: F401
from gsmt.config import Config
from gsmt.data.dataset import TALDataset
from gsmt.data.features import FeatureStore
from gsmt.data.grid import Grid
from gsmt.errors import GsmtError

log = logging.getLogger("gsmt.data")

# What each temporal mode implies when the data does not say (the paper's two benchmarks).
MODE_DEFAULTS = {
    "resize": {"decode_mode": "own+long", "train_subset": "training", "eval_subset": "validation", "tiou": "anet"},
    "window": {"decode_mode": "own", "train_subset": "validation", "eval_subset": "test", "tiou": "thumos"},
}


@dataclass
class DataSource:
    annotations: Annotations
    features: FeatureStore
    root: Path


def open_data(data_dir: str | Path, cfg: Config, feature_dim: int | None = None) -> DataSource:
    """Read the annotations of a data folder and open (lazily) its features."""
    root = Path(data_dir)
    if not root.exists():
        raise GsmtError(root, "data folder not found")
    ann_path = Path(cfg.data.annotations)
    ann_path = ann_path if ann_path.is_absolute() else root / ann_path
    feat_path = Path(cfg.data.features)
    feat_path = feat_path if feat_path.is_absolute() else root / feat_path
    annotations = load_annotations(ann_path)
    layout = cfg.data.feature_layout
    if layout == "auto":  # the dataset may declare its layout (`gsmt synth` does)
        layout = annotations.meta.get("feature_layout", "auto")
    features = FeatureStore(feat_path, layout=layout, feature_dim=feature_dim)
    return DataSource(annotations, features, root)


def resolve_config(cfg: Config, annotations: Annotations) -> Config:
    """Fill every `auto` setting from the dataset's recorded meta (what `gsmt synth` writes).

    The meta's values were checked on reading (`gsmt.annotations.meta.check_meta`); a bad one is
    an error naming the annotation file."""
    meta = annotations.meta or {}
    data, decode = cfg.data, cfg.decode
    from_meta = data.temporal_mode == "auto"
    mode = data.temporal_mode if not from_meta else meta.get("temporal_mode", "resize")
    if mode == "auto":
        mode = "resize"
    if mode not in MODE_DEFAULTS:
        where = (annotations.source or "annotations") if from_meta else "config"
        raise GsmtError(where, f"unknown temporal_mode '{mode}' (resize | window)")
    meta_tiou(annotations)
    implied = {**MODE_DEFAULTS[mode], **{k: v for k, v in meta.items()
                                          if k in MODE_DEFAULTS[mode] and v not in (None, "auto")}}
    grid = meta.get("grid") or {}
    data = dataclasses.replace(
        data,
        temporal_mode=mode,
        train_subset=data.train_subset if data.train_subset != "auto" else implied["train_subset"],
        eval_subset=data.eval_subset if data.eval_subset != "auto" else implied["eval_subset"],
        window_stride=data.window_stride or max(1, data.T // 2),
        fps=data.fps or grid.get("fps"),
        feature_stride=data.feature_stride or grid.get("feature_stride"),
        feature_window=data.feature_window or grid.get("feature_window"),
    )
    decode = dataclasses.replace(
        decode,
        mode=decode.mode if decode.mode != "auto" else implied["decode_mode"],
        tiou=decode.tiou if decode.tiou != "auto" else implied["tiou"],
    )
    decode = dataclasses.replace(decode, mask_score=decode.resolved_mask_score())
    return dataclasses.replace(cfg, data=data, decode=decode)


def default_grid(cfg: Config) -> Grid | None:
    d = cfg.data
    if d.fps and d.feature_stride and d.feature_window:
        return Grid(float(d.fps), int(d.feature_stride), int(d.feature_window))
    return None


def subset_videos(annotations: Annotations, subset: str, where: str) -> list[Video]:
    videos = annotations.subset(subset)
    if not videos:
        have = ", ".join(annotations.subsets) or "none"
        raise GsmtError(where, f"no videos in subset '{subset}' (subsets: {have})")
    return videos


def require_features(videos: list[Video], features: FeatureStore, where: str | Path) -> None:
    """Every video must have a feature file: say how many lack one and name a few, before any work."""
    missing = features.missing([v.id for v in videos])
    if missing:
        few = ", ".join(missing[:3]) + (", ..." if len(missing) > 3 else "")
        raise GsmtError(where, f"{len(missing)} of {len(videos)} videos have no feature file ({few})")


def split_for_selection(videos: list[Video], fraction: float, seed: int) -> tuple[list[Video], list[Video]]:
    """A seeded share of the training videos, held out for model selection."""
    if fraction <= 0 or len(videos) < 2:
        return list(videos), []
    order = np.random.default_rng(seed).permutation(len(videos))
    n_val = min(len(videos) - 1, max(1, int(round(fraction * len(videos)))))
    held = set(order[:n_val].tolist())
    train = [v for i, v in enumerate(videos) if i not in held]
    val = [v for i, v in enumerate(videos) if i in held]
    return train, val


def make_dataset(videos: list[Video], features: FeatureStore, cfg: Config, num_classes: int, *,
                 train: bool) -> TALDataset:
    return TALDataset(
        videos,
        features,
        num_classes,
        mode=cfg.data.temporal_mode,
        T=cfg.data.T,
        window_stride=cfg.data.window_stride,
        grid=default_grid(cfg),
        train=train,
        background_window_ratio=cfg.data.background_window_ratio if train else 0.0,
        seed=cfg.train.seed,
        window_jitter=cfg.data.window_jitter if train else 0.0,
        multilabel=cfg.model.labels == "multi",
    )


# ---------------------------------------------------------------- device-resident training samples
