"""Python API: run a trained model on your own features.

    from gsmt import Localizer
    loc = Localizer.from_checkpoint("runs/demo")
    detections = loc.predict("features/video_1.npy", fps=30, feature_stride=4, feature_window=16)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from gsmt.config import Config
from gsmt.data.annotations import Video
from gsmt.data.dataset import TALDataset, collate
from gsmt.data.features import read_features
from gsmt.data.windows import Grid
from gsmt.engine.checkpoint import load_checkpoint, model_from_checkpoint
from gsmt.engine.predictor import predict_dataset
from gsmt.errors import GsmtError
from gsmt.model import GSMT


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


class Localizer:
    """A trained GSMT with its decoding settings; predicts actions in seconds from features."""

    def __init__(self, model: GSMT, cfg: Config, meta: dict, device: str | torch.device = "cpu"):
        self.device = torch.device(device)
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
        fps = fps or saved.get("fps")
        stride = feature_stride or saved.get("feature_stride")
        window = feature_window or saved.get("feature_window")
        return Grid(float(fps), int(stride), int(window)) if fps and stride and window else None

    def _as_array(self, features, name: str) -> np.ndarray:
        if isinstance(features, (str, Path)):
            return read_features(features, feature_dim=self.feature_dim)
        array = np.asarray(features, dtype=np.float32)
        if array.ndim != 2 or self.feature_dim not in array.shape:
            raise GsmtError(name, f"features of shape {array.shape} do not fit the model's "
                                  f"feature dimension {self.feature_dim}")
        if array.shape[1] != self.feature_dim:
            array = array.T
        if not np.isfinite(array).all():
            raise GsmtError(name, "features contain NaN/Inf")
        return np.ascontiguousarray(array)

    def _dataset(self, items: list, fps, feature_stride, feature_window, durations) -> TALDataset:
        grid = self._grid(fps, feature_stride, feature_window)
        arrays, videos = {}, []
        for i, features in enumerate(items):
            vid = Path(features).stem if isinstance(features, (str, Path)) else f"video_{i}"
            vid = vid if vid not in arrays else f"{vid}_{i}"
            arrays[vid] = self._as_array(features, vid)
            duration = durations[i] if durations is not None else None
            if duration is None:
                if grid is None:
                    raise GsmtError(vid, "give duration= or the grid (fps, feature_stride, feature_window)")
                duration = ((len(arrays[vid]) - 1) * grid.feature_stride + grid.feature_window) / grid.fps
            videos.append(Video(id=vid, subset="predict", duration=float(duration), fps=grid and grid.fps,
                                feature_stride=grid and grid.feature_stride,
                                feature_window=grid and grid.feature_window))
        mode = self.meta["temporal_mode"]
        if mode == "window" and grid is None:
            raise GsmtError("predict", "this model works on windows of the native grid: give fps, "
                                       "feature_stride and feature_window")
        data = self.cfg.data
        return TALDataset(videos, MemoryFeatures(arrays), len(self.classes), mode=mode, T=data.T,
                          window_stride=data.window_stride, grid=grid, with_targets=False)

    def predict_many(self, features: list, *, fps: float | None = None, feature_stride: int | None = None,
                     feature_window: int | None = None, durations: list[float] | None = None,
                     batch_size: int = 32) -> list[list[Detection]]:
        """Detections for several videos (arrays `[T, D]` or feature files), batched."""
        dataset = self._dataset(list(features), fps, feature_stride, feature_window, durations)
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
                feature_window: int | None = None, duration: float | None = None) -> list[Detection]:
        """Detections (start, end, label, score), best first, for one video."""
        return self.predict_many([features], fps=fps, feature_stride=feature_stride,
                                 feature_window=feature_window,
                                 durations=None if duration is None else [duration])[0]

    @torch.no_grad()
    def raw_outputs(self, features, *, fps=None, feature_stride=None, feature_window=None,
                    duration=None) -> dict:
        """Class probabilities and the global mask of the first sample of one video (for pictures)."""
        dataset = self._dataset([features], fps, feature_stride, feature_window,
                                None if duration is None else [duration])
        batch = collate([dataset[0]])
        out = self.model(batch["features"].to(self.device), batch["valid"].to(self.device))
        result = {
            "probs": torch.softmax(out["cls_logits"][0].float(), 0).cpu().numpy(),
            "valid": batch["valid"][0].numpy(),
            "t_start": batch["t_start"][0].numpy(),
            "t_end": batch["t_end"][0].numpy(),
            "video": dataset.videos[0],
        }
        if "mask_logits" in out:
            result["masks"] = torch.sigmoid(out["mask_logits"][0].float()).cpu().numpy()
        return result

