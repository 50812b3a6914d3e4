"""From a data folder and a config to datasets: resolve `auto` settings from the data, split videos."""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# report_faults lives with the annotations, meta_tiou with the tIoU sets: `gsmt eval` needs them without torch
from gsmt.annotations.types import Annotations, Video  # noqa: F401
from gsmt.annotations.load import load_annotations, report_faults  # noqa: F401
from gsmt.evaluation.tiou import meta_tiou  # noqa: F401
from gsmt.config import Config, given_keys
from gsmt.data.dataset import TALDataset
from gsmt.data.features import FeatureStore
from gsmt.data.grid import Grid, snippet_count
from gsmt.errors import GsmtError, counted

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
    given = given_keys(cfg)
    decided: list[str] = []
    train_subset, eval_subset = fit_subsets(data, annotations, implied, given, decided)
    T, window_stride = data.T, data.window_stride
    if mode == "window":
        T, window_stride = fit_window(data, annotations.subset(train_subset), grid, given, decided)
    data = dataclasses.replace(
        data,
        temporal_mode=mode,
        train_subset=train_subset,
        eval_subset=eval_subset,
        T=T,
        window_stride=window_stride or max(1, T // 2),
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
    out = dataclasses.replace(cfg, data=data, decode=decode)
    out.__dict__["_decisions"] = decided  # gsmt.config.decisions: config.yaml records them
    if decided and os.environ.get("RANK", "0") == "0":  # under torchrun: said once
        for line in decided:
            print(f"decided from the data: {line}")
    return out


def _chosen(key: str, value, given: frozenset[str] | None) -> bool:
    """Whether the user chose this setting: `auto` never is; with `given` unknown, any other value is."""
    return value != "auto" and (given is None or key in given)


def fit_subsets(data, annotations: Annotations, implied: dict, given, decided: list[str]) -> tuple[str, str]:
    """The training and evaluation subsets: the config's (or its mode's defaults) unless the
    annotations carry a single subset (a CSV without a subset column puts every video in `all`) that
    the user did not override: then every annotated video trains, and the evaluation subset is that
    one too (there is no held-out subset; model selection still holds out data.val_fraction)."""
    train = data.train_subset if data.train_subset != "auto" else implied["train_subset"]
    evaluate = data.eval_subset if data.eval_subset != "auto" else implied["eval_subset"]
    subsets = annotations.subsets
    if len(subsets) != 1:
        return train, evaluate
    only, n = subsets[0], len(annotations.videos)
    if train != only and not _chosen("data.train_subset", data.train_subset, given):
        held = f", a share of {data.val_fraction:g} held out for model selection" if data.val_fraction else ""
        decided.append(f"data.train_subset={only} (the annotations carry one subset, '{only}': all "
                       f"{counted(n, 'video')} train{held}; --set data.train_subset=NAME to choose)")
        train = only
    if evaluate != only and not _chosen("data.eval_subset", data.eval_subset, given):
        decided.append(f"data.eval_subset={only} (no held-out subset: predict and evaluate on other videos "
                       "to measure generalisation)")
        evaluate = only
    return train, evaluate


MIN_AUTO_T = 16


def fit_window(data, videos: list[Video], grid: dict, given, decided: list[str]) -> tuple[int, int | None]:
    """Window mode: (T, window_stride). When the user chose no T and the training videos' median
    snippet count is below the config's T (each video one padded window: few, short samples), T
    becomes the largest power of two not above that median (at least MIN_AUTO_T) and the stride
    T // 2 unless the user chose one that fits."""
    T, stride = data.T, data.window_stride
    if _chosen("data.T", T, given):
        return T, stride
    counts = []
    for v in videos:
        fps = v.fps or data.fps or grid.get("fps")
        step = v.feature_stride or data.feature_stride or grid.get("feature_stride")
        window = v.feature_window or data.feature_window or grid.get("feature_window")
        if fps and step and window:
            counts.append(snippet_count(v.duration, float(fps), int(step), int(window)))
    if not counts:
        return T, stride
    median = float(np.median(counts))
    fitted = max(MIN_AUTO_T, 2 ** int(np.floor(np.log2(max(median, 1.0)))))
    if fitted >= T:
        return T, stride
    keep_stride = stride is not None and stride <= fitted and _chosen("data.window_stride", stride, given)
    stride = stride if keep_stride else None
    decided.append(f"data.T={fitted}, data.window_stride={stride or max(1, fitted // 2)} (the training videos "
                   f"have a median of {median:g} snippets, fewer than T={T}: one short window each; "
                   "--set data.T=N to choose)")
    return fitted, stride


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
        raise GsmtError(where, f"{len(missing)} of {counted(len(videos), 'video')} have no feature file ({few})")


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
