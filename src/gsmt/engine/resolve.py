"""From a data folder and a config to datasets: resolve `auto` settings from the data, split videos."""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from gsmt.config import Config
# meta_tiou and report_faults live with the annotations: `gsmt eval` needs them without torch
from gsmt.annotations.load import Annotations, Video, load_annotations, meta_tiou, report_faults  # noqa: F401
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

    The meta's values were checked on reading (`gsmt.annotations.load.check_meta`); a bad one is
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
    )


# ---------------------------------------------------------------- device-resident training samples
RESIDENT_KEYS = ("features", "valid", "cls_target", "mask_target")  # what the model and the loss read


@dataclass
class ResidentSamples:
    """Every training sample's tensors stacked once ([N, ...] per key, on `where`), so that a batch
    is one gather by index instead of a read, a resize and a target computation per sample per
    epoch (the samples and their targets are deterministic: nothing is redrawn per epoch)."""

    tensors: dict[str, torch.Tensor]
    where: torch.device
    empty_videos: set[str]

    def __len__(self) -> int:
        return int(self.tensors["valid"].shape[0])

    def batch(self, index: torch.Tensor, device: torch.device) -> dict[str, torch.Tensor]:
        """The samples `index` (in that order) as a collated batch on `device`."""
        if self.where.type == "cuda" and index.device.type == "cpu":
            # From page-locked memory the copy is queued without the host waiting for the GPU to
            # finish its work (a copy from pageable memory waits: one sync per step).
            index = index.pin_memory().to(self.where, non_blocking=True)
        else:
            index = index.to(self.where)
        pin = self.where.type == "cpu" and device.type == "cuda"
        out = {}
        for key, t in self.tensors.items():
            if pin:  # gathered into page-locked memory, so the copy to the GPU runs asynchronously
                part = torch.empty((len(index), *t.shape[1:]), dtype=t.dtype, pin_memory=True)
                torch.index_select(t, 0, index, out=part)
            else:
                part = t.index_select(0, index)
            out[key] = part.to(device, non_blocking=True)
        return out


def host_memory_bytes() -> int:
    """Physical memory of this machine (0 when the platform does not say)."""
    try:
        return int(os.sysconf("SC_PHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return 0


def resident_place(nbytes: int, device: torch.device, policy: str, fraction: float) -> torch.device | None:
    """Where `nbytes` of training samples live under `train.resident` = `policy`: the training
    device when they fit in `fraction` of its memory (CUDA), else host memory (pinned for CUDA) when
    they fit in `fraction` of it; `always` takes host memory whatever the size; None: the DataLoader."""
    if policy == "never":
        return None
    if device.type == "cuda" and nbytes <= fraction * torch.cuda.get_device_properties(device).total_memory:
        return device
    if policy == "always" or nbytes <= fraction * host_memory_bytes():
        return torch.device("cpu")
    return None


def load_resident(dataset: TALDataset, device: torch.device, policy: str, fraction: float) -> ResidentSamples | None:
    """The samples of `dataset` read once into contiguous tensors, or None when `policy` and their
    size (estimated from the first sample) leave them to the DataLoader."""
    if policy == "never" or len(dataset) == 0:
        return None
    if dataset.redrawn_each_epoch:
        if policy == "always":
            raise GsmtError("train.resident", "'always' cannot hold samples redrawn every epoch "
                                              "(data.window_jitter > 0): use auto or never")
        return None
    first = dataset[0]
    per_sample = sum(first[k].numel() * first[k].element_size() for k in RESIDENT_KEYS)
    where = resident_place(per_sample * len(dataset), device, policy, fraction)
    if where is None:
        return None
    pin = where.type == "cpu" and device.type == "cuda"
    host = {k: torch.empty((len(dataset), *first[k].shape), dtype=first[k].dtype, pin_memory=pin)
            for k in RESIDENT_KEYS}
    for i in range(len(dataset)):  # in index order: consecutive windows of a video share one read
        item = first if i == 0 else dataset[i]
        for k in RESIDENT_KEYS:
            host[k][i] = item[k]
    tensors = {k: t.to(where) for k, t in host.items()}
    return ResidentSamples(tensors, where, set(dataset.empty_videos))
