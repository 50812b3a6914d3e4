"""Python API: run a trained model on your own features.

    from gsmt import Localizer
    loc = Localizer.from_checkpoint("runs/demo")
    detections = loc.predict("features/video_1.npy", fps=30, feature_stride=4, feature_window=16)
    detections = loc.predict_video("my_video.mp4")  # gsmt[video]: a model trained on `gsmt extract` features

Every bad argument is a `GsmtError` naming it (`duration`, `fps`, a video's features...): a
duration must be a finite number of seconds in (0, 1e6], fps a finite number in (0, 1000],
feature_stride / feature_window whole numbers of frames >= 1, features a 2-D array of numbers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from gsmt.config import Config
from gsmt.data.dataset import TALDataset, collate, unlabelled_video
from gsmt.data.features import (
    FEATURE_LAYOUTS,
    is_ambiguous,
    read_array,
    resolve_layout,
    to_snippet_matrix,
)
from gsmt.data.grid import Grid
from gsmt.engine.checkpoint import load_checkpoint, model_from_checkpoint
from gsmt.engine.distributed import pick_device
from gsmt.engine.predictor import predict_dataset
from gsmt.errors import GsmtError, counted
from gsmt.io.read import MAX_FPS, MAX_FRAMES, check_seconds
from gsmt.model import GSMT


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _check_fps(value) -> float:
    try:
        x = float(value) if not isinstance(value, bool) else math.nan
    except (TypeError, ValueError, OverflowError):
        x = math.nan
    if not (math.isfinite(x) and 0 < x <= MAX_FPS):
        raise GsmtError("fps", f"must be a finite number of frames per second in (0, {MAX_FPS:g}], got {value!r:.60}")
    return x


def _check_frames(value, name: str) -> int:
    try:
        x = float(value) if not isinstance(value, bool) else math.nan
    except (TypeError, ValueError, OverflowError):
        x = math.nan
    if not (math.isfinite(x) and x == int(x) and 1 <= x <= MAX_FRAMES):
        raise GsmtError(name, f"must be a whole number of frames in [1, {MAX_FRAMES}], got {value!r:.60}")
    return int(x)


@dataclass(frozen=True)
class Detection:
    start: float  # seconds
    end: float
    label: str
    score: float


class MemoryFeatures:
    """A feature store over arrays already in memory (same interface as `FeatureStore`)."""

    def __init__(self, arrays: dict[str, np.ndarray]):
        self.arrays = arrays
        dims = {a.shape[1] for a in arrays.values()}
        self.feature_dim = dims.pop() if len(dims) == 1 else None

    def load(self, video_id: str, *, expected_length: int | None = None) -> np.ndarray:
        return self.arrays[video_id]

    def missing(self, ids) -> list[str]:
        return [i for i in ids if i not in self.arrays]

    def num_snippets(self, video_id: str) -> int | None:
        return len(self.arrays[video_id]) if video_id in self.arrays else None


class Localizer:
    """A trained GSMT with its decoding settings; predicts actions in seconds from features."""

    def __init__(self, model: GSMT, cfg: Config, meta: dict, device: str | torch.device = "cpu"):
        # A name or a torch.device is checked as `--device` is (auto | cpu | cuda | cuda:N | mps, and
        # present here): `torch.device('meta')` would pass here and fail at the first prediction.
        self.device = pick_device(device, "device")
        self.model = model.to(self.device).eval()
        self.cfg = cfg
        self.meta = meta
        self.classes: list[str] = list(meta["classes"])

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str = "cpu") -> "Localizer":
        """Load a run directory (its best checkpoint, else its last) or a checkpoint file."""
        state = load_checkpoint(path)
        model, cfg, meta = model_from_checkpoint(state, path)
        return cls(model, cfg, meta, device)

    @property
    def feature_dim(self) -> int:
        return int(self.meta["feature_dim"])

    def _grid(self, fps, feature_stride, feature_window) -> Grid | None:
        saved = self.meta.get("grid") or {}
        fps = _check_fps(fps) if fps is not None else saved.get("fps")
        stride = _check_frames(feature_stride, "feature_stride") if feature_stride is not None \
            else saved.get("feature_stride")
        window = _check_frames(feature_window, "feature_window") if feature_window is not None \
            else saved.get("feature_window")
        return Grid(float(fps), int(stride), int(window)) if fps and stride and window else None

    def _raw_array(self, features, name: str) -> tuple[np.ndarray, str | Path]:
        """A video's features as given (a file's array, or an array-like of numbers), 2-D, not yet laid out."""
        if isinstance(features, (str, Path)):
            array, where = read_array(Path(features)), features
        else:
            where = name
            try:
                array = np.asarray(features)
            except (TypeError, ValueError, RuntimeError) as exc:
                raise GsmtError(name, f"features must be a 2-D array of numbers ({_first_line(exc)})") from None
            if array.dtype.kind not in "fiu":
                raise GsmtError(name, f"features must be a 2-D array of numbers, got dtype {array.dtype}")
            if array.dtype.kind != "f" or array.dtype.type not in (np.float16, np.float32, np.float64):
                with np.errstate(over="ignore", invalid="ignore"):
                    array = array.astype(np.float32)
        if array.ndim != 2 or self.feature_dim not in array.shape:
            raise GsmtError(where, f"features of shape {array.shape} do not fit the model's "
                                   f"feature dimension {self.feature_dim}")
        return array, where

    def _as_arrays(self, items: list, layout: str) -> list[np.ndarray]:
        """`[T, D]` float32 arrays by the one layout rule of gsmt.data.features; a square array takes
        the layout of the call's unambiguous ones (or `layout`), as a dataset's square files do."""
        if layout not in FEATURE_LAYOUTS:
            raise GsmtError("layout", f"unknown feature layout {layout!r} (use one of {', '.join(FEATURE_LAYOUTS)})")
        raw = [self._raw_array(f, f"video_{i}") for i, f in enumerate(items)]
        decided = layout
        if layout == "auto":
            clear = [a for a, _ in raw if not is_ambiguous(a.shape, self.feature_dim)]
            if clear:
                decided = resolve_layout(clear[0].shape, "features", "auto", self.feature_dim, None)
        out = []
        for array, where in raw:
            if decided == "auto" and is_ambiguous(array.shape, self.feature_dim):
                raise GsmtError(where, f"cannot resolve layout, pass layout (square {array.shape[0]}x"
                                       f"{array.shape[1]} array and no other video of this call has unequal "
                                       "axes): give layout='TD' or layout='DT'")
            use = decided if is_ambiguous(array.shape, self.feature_dim) else layout
            out.append(to_snippet_matrix(array, where, layout=use, feature_dim=self.feature_dim))
        return out

    def _dataset(self, items: list, fps, feature_stride, feature_window, durations,
                 layout: str = "auto") -> TALDataset:
        grid = self._grid(fps, feature_stride, feature_window)
        if durations is not None:
            if isinstance(durations, (str, bytes)) or not hasattr(durations, "__len__"):
                raise GsmtError("durations", f"expected a list of durations, got {type(durations).__name__}")
            if len(durations) != len(items):
                raise GsmtError("durations", f"{counted(len(durations), 'duration')} for {counted(len(items), 'video')}")
        if not items:
            raise GsmtError("features", "no video given")
        feats = self._as_arrays(items, layout)
        arrays, videos = {}, []
        for i, features in enumerate(items):
            vid = Path(features).stem if isinstance(features, (str, Path)) else f"video_{i}"
            vid = vid if vid not in arrays else f"{vid}_{i}"
            arrays[vid] = feats[i]
            duration = durations[i] if durations is not None else None
            if duration is not None:
                duration = check_seconds(duration, vid, "duration")
            videos.append(unlabelled_video(vid, len(arrays[vid]), duration, fps=grid and grid.fps,
                                           feature_stride=grid and grid.feature_stride,
                                           feature_window=grid and grid.feature_window, where=vid,
                                           hint="give duration= or the grid (fps, feature_stride, feature_window)"))
        mode = self.meta["temporal_mode"]
        if mode == "window" and grid is None:
            raise GsmtError("predict", "this model works on windows of the native grid: give fps, "
                                       "feature_stride and feature_window")
        data = self.cfg.data
        return TALDataset(videos, MemoryFeatures(arrays), len(self.classes), mode=mode, T=data.T,
                          window_stride=data.window_stride, grid=grid, with_targets=False)

    def predict_many(self, features: list, *, fps: float | None = None, feature_stride: int | None = None,
                     feature_window: int | None = None, durations: list[float] | None = None,
                     batch_size: int = 32, layout: str = "auto") -> list[list[Detection]]:
        """Detections for several videos (arrays `[T, D]` or feature files), batched.

        `layout` (`auto`, `TD`, `DT`): how the arrays lie; `auto` resolves each by the model's
        feature dimension, and a square one (a video of D snippets) by the call's other videos."""
        if isinstance(features, (str, Path, np.ndarray, torch.Tensor)):
            raise GsmtError("features", "predict_many takes a list of videos; use predict for one")
        if isinstance(features, Mapping):
            raise GsmtError("features", "predict_many takes a list of videos, not a mapping (its keys would be "
                                        "taken for the videos): pass list(features.values())")
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise GsmtError("batch_size", f"must be a whole number >= 1, got {batch_size!r:.60}")
        dataset = self._dataset(list(features), fps, feature_stride, feature_window, durations, layout)
        found = predict_dataset(self.model, dataset, self.cfg.decode, device=self.device, batch_size=batch_size)
        out = []
        for video in dataset.videos:
            dets = found.get(video.id)
            if dets is None:
                out.append([])
                continue
            order = np.argsort(-dets.scores, kind="stable")
            out.append([Detection(float(dets.segments[j, 0]), float(dets.segments[j, 1]),
                                  self.classes[int(dets.labels[j])], float(dets.scores[j])) for j in order])
        return out

    def predict(self, features, *, fps: float | None = None, feature_stride: int | None = None,
                feature_window: int | None = None, duration: float | None = None,
                layout: str = "auto") -> list[Detection]:
        """Detections (start, end, label, score), best first, for one video."""
        return self.predict_many([features], fps=fps, feature_stride=feature_stride,
                                 feature_window=feature_window,
                                 durations=None if duration is None else [duration], layout=layout)[0]

    def predict_video(self, path: str | Path, *, backbone: str | None = None, batch_size: int = 16) -> list[Detection]:
        """Detections, best first, for one video file (needs `gsmt[video]`): features are extracted
        with the backbone and grid the checkpoint records (`gsmt detect`'s rules: `backbone` may
        name a copy of the recorded one, checked by digest); the backbone is loaded once per Localizer."""
        from gsmt.video.pipeline import setup_for, video_detections

        key = backbone or (self.meta.get("backbone") or {}).get("id")
        if getattr(self, "_video_setup", None) is None or self._video_setup[0] != key:
            self._video_setup = (key, setup_for(self.meta, "checkpoint", backbone=backbone, device=str(self.device)))
        return video_detections(self, self._video_setup[1], path, batch_size=batch_size)[0]

    @torch.no_grad()
    def raw_outputs(self, features, *, fps=None, feature_stride=None, feature_window=None,
                    duration=None, layout: str = "auto") -> dict:
        """Class probabilities [K, T] and the global mask of the first sample of one video (for pictures)."""
        dataset = self._dataset([features], fps, feature_stride, feature_window,
                                None if duration is None else [duration], layout)
        batch = collate([dataset[0]])
        out = self.model(batch["features"].to(self.device), batch["valid"].to(self.device))
        multi = self.model.labels == "multi"
        # probs [K, T]; actionness: the best class probability of each snippet
        fg = self.model.class_probs(out)[0]
        result = {
            "probs": fg.cpu().numpy(),
            "actionness": fg.max(0).values.cpu().numpy(),
            "valid": batch["valid"][0].numpy(),
            "t_start": batch["t_start"][0].numpy(),
            "t_end": batch["t_end"][0].numpy(),
            "video": dataset.videos[0],
        }
        if multi:  # column t: the mask of snippet t under its most probable class
            snippet = torch.arange(fg.shape[1], device=self.device)[None]
            logits = self.model.pair_mask_logits(out, snippet, fg.argmax(0)[None])[0]
            result["masks"] = torch.sigmoid(logits.float()).T.cpu().numpy()
        elif "mask_logits" in out:
            result["masks"] = torch.sigmoid(out["mask_logits"][0].float()).cpu().numpy()
        return result

