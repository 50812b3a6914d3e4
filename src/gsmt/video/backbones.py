"""Feature backbones from Hugging Face `transformers`, loaded from a local folder or the hub cache.

Two kinds, told apart by the model's config:
- video models (VideoMAE / VideoMAE v2-style, ViViT, TimeSformer: a config with `num_frames`):
  each snippet's window gives `num_frames` evenly spread frames, one forward pass per snippet, the
  feature is the mean of the output tokens;
- image models (any `AutoModel` image backbone: ViT, DINOv2, or the vision tower of CLIP / SigLIP):
  every frame is encoded once and a snippet's feature is the mean over the frames of its window;
  the frame feature is `get_image_features` when the model has it (CLIP, SigLIP), else its
  `pooler_output`, else the mean of its tokens.

Preprocessing follows the model's `preprocessor_config.json` when the folder or cache holds one
(shorter edge, centre crop, rescale, mean / std), else the model's `image_size` with ImageNet mean
and std. The resize is done by FFmpeg while decoding (`decode.VideoReader(short_edge=...)`); the
crop and normalisation here, batched in torch.

Nothing is downloaded: `local_files_only=True` everywhere; a model with no local copy and no cache
entry is a one-line error that says how to fetch it once. `record()` describes the backbone for
annotations.json and checkpoints; its `digest` (model type, config, preprocessing, weights)
is what `gsmt detect` compares.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from gsmt.errors import GsmtError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
VIDEO_MODEL_TYPES = ("videomae", "vivit", "timesformer", "vjepa2")


@dataclass
class Backbone:
    name: str  # as given: a hub id or a folder (messages)
    kind: str  # "video" | "image"
    model: torch.nn.Module
    feature_dim: int
    image_size: tuple[int, int]  # (height, width) the model takes
    short_edge: int  # decoded frames are resized to this shorter edge, then centre-cropped
    mean: tuple[float, ...]
    std: tuple[float, ...]
    rescale: float
    num_frames: int = 1  # video models: frames per forward pass
    model_type: str = ""
    digest: str = ""
    pooling: str = "mean_tokens"
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    recorded_id: str = ""  # what record() names it by: a local folder as its absolute path (record_id)

    def record(self) -> dict:
        """What annotations.json and checkpoints keep about the backbone (JSON-ready): a local
        folder by its absolute, resolved path, so that `gsmt detect` run from another folder finds it."""
        return {"id": self.recorded_id or record_id(self.name), "kind": self.kind, "model_type": self.model_type,
                "feature_dim": self.feature_dim, "num_frames": self.num_frames,
                "image_size": list(self.image_size), "pooling": self.pooling, "digest": self.digest}

    def _pixels(self, frames: np.ndarray) -> torch.Tensor:
        """uint8 [..., H, W, 3] -> float [..., 3, h, w] cropped and normalised as the model expects."""
        h, w = frames.shape[-3], frames.shape[-2]
        ch, cw = self.image_size
        top, left = max(0, (h - ch) // 2), max(0, (w - cw) // 2)
        crop = frames[..., top:top + ch, left:left + cw, :]
        x = torch.from_numpy(np.ascontiguousarray(crop)).to(self.device)
        if x.shape[-3] != ch or x.shape[-2] != cw:  # a frame smaller than the crop: stretch it
            lead = x.shape[:-3]
            flat = x.reshape(-1, *x.shape[-3:]).permute(0, 3, 1, 2).float()
            flat = torch.nn.functional.interpolate(flat, size=(ch, cw), mode="bilinear", align_corners=False)
            x = flat.permute(0, 2, 3, 1).reshape(*lead, ch, cw, 3)
        x = x.float().mul_(self.rescale)
        mean = torch.tensor(self.mean, device=self.device, dtype=torch.float32)
        std = torch.tensor(self.std, device=self.device, dtype=torch.float32)
        x = (x - mean) / std
        return x.movedim(-1, -3)  # channels before H, W

    @torch.no_grad()
    def encode_frames(self, frames: np.ndarray) -> np.ndarray:
        """Image models: uint8 [B, H, W, 3] -> float32 [B, D]."""
        pixels = self._pixels(frames)
        if self.pooling == "image_features":
            out = self.model.get_image_features(pixel_values=pixels)
            out = out if isinstance(out, torch.Tensor) else out.pooler_output
        else:
            result = self.model(pixel_values=pixels)
            out = result.pooler_output if self.pooling == "pooler" else result.last_hidden_state.mean(1)
        return out.float().cpu().numpy()

    @torch.no_grad()
    def encode_clips(self, clips: np.ndarray) -> np.ndarray:
        """Video models: uint8 [B, num_frames, H, W, 3] -> float32 [B, D]."""
        pixels = self._pixels(clips)  # [B, F, 3, h, w], the layout VideoMAE / ViViT / TimeSformer take
        out = self.model(pixel_values=pixels).last_hidden_state.mean(1)
        return out.float().cpu().numpy()


def _quiet_transformers() -> None:
    """Library chatter (progress bars of weight loading, backend hints) would break gsmt's one-line output."""
    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    logging.getLogger("transformers").setLevel(logging.ERROR)


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return " ".join(lines[0].split())[:160] if lines else type(exc).__name__


def _refuse_custom_code(folder: str) -> None:
    """A model folder whose config maps to its own Python classes (`auto_map`) is refused by name:
    gsmt runs only the architectures transformers itself ships."""
    path = Path(folder) / "config.json"
    try:
        text = path.read_text(encoding="utf-8")
        obj = json.loads(text)
    except (OSError, ValueError):
        return  # AutoConfig names the fault
    if isinstance(obj, dict) and obj.get("auto_map"):
        raise GsmtError(path, "the model needs its own code (config 'auto_map'), and gsmt never runs a model "
                              "folder's code (trust_remote_code is off): use a model transformers ships")


def _check_takes_pixels(name: str, model: torch.nn.Module, kind: str) -> None:
    """A text or audio model (BERT, Whisper...) loads fine with AutoModel but takes no pixels: refused
    here in one line, not with the model's TypeError at the first video."""
    import inspect

    entry = model.get_image_features if kind == "image" and hasattr(model, "get_image_features") else model.forward
    try:
        params = inspect.signature(entry).parameters
    except (TypeError, ValueError):
        return
    if "pixel_values" not in params:
        raise GsmtError(name, f"{type(model).__name__} is not a vision model (it takes no pixel_values): "
                              "--backbone must be a video or image model")


def record_id(name: str | Path) -> str:
    """How a backbone is recorded: a local folder as its absolute, resolved path (a relative
    `bb/videomae64` would be looked up from the working folder of each later command); a hub id
    that is no local folder stays the id."""
    name = str(name)
    return str(Path(name).resolve()) if os.path.isdir(name) else name


def _not_found(name: str) -> GsmtError:
    if os.path.isabs(name):  # a recorded folder (a hub id is never absolute)
        return GsmtError(name, "backbone folder not found (moved or deleted?): pass its new place with "
                               "--backbone (checked by digest)")
    return GsmtError(name, "backbone not found: no local folder of that name and no copy in the Hugging Face "
                           f"cache, and gsmt never downloads; fetch it once with `hf download {name}` (or "
                           "save_pretrained to a folder) and run again")


def _preprocessor_config(name: str) -> tuple[dict, Path | None]:
    """The model's preprocessor_config.json from its folder or the hub cache ({} when it has none), and its path."""
    if os.path.isdir(name):
        path = Path(name) / "preprocessor_config.json"
    else:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(name, "preprocessor_config.json")
        path = Path(found) if isinstance(found, str) else None
    if path is None or not path.is_file():
        return {}, None
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise GsmtError(path, f"unreadable preprocessor config ({exc})") from None
    if not isinstance(obj, dict):
        raise GsmtError(path, f"a preprocessor config must be a JSON object, got {type(obj).__name__}")
    return obj, path


# Sizes a processor or config may declare (pixels): a 100,000-px crop would be 30 GB a batch.
MAX_IMAGE_EDGE = 4096


def _bad(where, field: str, must: str, value) -> GsmtError:
    shown = repr(value)
    return GsmtError(where, f"field '{field}' must be {must}, got {shown[:60]}{'...' if len(shown) > 60 else ''}")


def _edge(where, field: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or value != int(value) or not 1 <= value <= MAX_IMAGE_EDGE:
        raise _bad(where, field, f"a whole number of pixels in 1..{MAX_IMAGE_EDGE}", value)
    return int(value)


def _flag(proc: dict, where, field: str) -> bool:
    value = proc.get(field, True)
    if not isinstance(value, bool):
        raise _bad(where, field, "true or false", value)
    return value


def _number(where, field: str, value, *, positive: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or (positive and value <= 0):
        raise _bad(where, field, "a finite number" + (" > 0" if positive else ""), value)
    return float(value)


def _channels(proc: dict, where, field: str, default, *, positive: bool) -> tuple[float, float, float]:
    value = proc.get(field, default)
    items = value if isinstance(value, (list, tuple)) else [value]
    if len(items) not in (1, 3):
        raise _bad(where, field, "1 or 3 numbers (one per colour channel)", value)
    numbers = [_number(where, field, x, positive=positive) for x in items]
    return tuple(numbers * 3 if len(numbers) == 1 else numbers)


def _processor_size(proc: dict, where, field: str):
    """A processor `size`/`crop_size`: an int, {"shortest_edge": n} or {"height", "width"}, each in
    1..MAX_IMAGE_EDGE; None when absent or of another form (the model's image_size is used)."""
    value = proc.get(field)
    if value is None:
        return None
    if isinstance(value, dict):
        if "shortest_edge" in value:
            return _edge(where, f"{field}.shortest_edge", value["shortest_edge"])
        if "height" in value and "width" in value:
            return _edge(where, f"{field}.height", value["height"]), _edge(where, f"{field}.width", value["width"])
        return None
    return _edge(where, field, value)


def processor_settings(proc: dict, where, image: tuple[int, int]):
    """(image_size, short_edge, mean, std, rescale) from a preprocessor config, every field read
    checked (types, finite, positive, sizes within 1..MAX_IMAGE_EDGE): one line naming the file
    and the field, not a crash or garbage features."""
    crop = _processor_size(proc, where, "crop_size") if _flag(proc, where, "do_center_crop") else None
    if isinstance(crop, int):
        crop = (crop, crop)
    image_size = tuple(crop) if crop else image
    resize = _processor_size(proc, where, "size")
    short_edge = resize if isinstance(resize, int) else (min(resize) if resize else min(image_size))
    if _flag(proc, where, "do_normalize"):
        mean = _channels(proc, where, "image_mean", IMAGENET_MEAN, positive=False)
        std = _channels(proc, where, "image_std", IMAGENET_STD, positive=True)
    else:
        mean, std = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
    rescale = _number(where, "rescale_factor", proc.get("rescale_factor", 1 / 255), positive=True) \
        if _flag(proc, where, "do_rescale") else 1.0
    return image_size, short_edge, mean, std, rescale


def _config_image_size(name, value) -> tuple[int, int]:
    """The model config's `image_size` (an int or a pair), each edge in 1..MAX_IMAGE_EDGE."""
    where = Path(name) / "config.json" if os.path.isdir(name) else name
    items = value if isinstance(value, (list, tuple)) and len(value) == 2 else [value, value]
    return _edge(where, "image_size", items[0]), _edge(where, "image_size", items[1])


def _weights_digest(model: torch.nn.Module, config_text: str, preprocess: dict) -> str:
    """sha256 over the config, the preprocessing and every weight's bytes (names in order)."""
    h = hashlib.sha256()
    h.update(config_text.encode())
    h.update(json.dumps(preprocess, sort_keys=True).encode())
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        t = tensor.detach().cpu().contiguous()
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return "sha256:" + h.hexdigest()


def load_backbone(name: str | Path, device: str | torch.device = "cpu") -> Backbone:
    """Load a transformers model by hub id (from the cache) or folder; see the module docstring."""
    name = str(name)
    try:
        import transformers
        from transformers import AutoConfig, AutoModel
    except ImportError:
        raise GsmtError("--backbone", "needs the video extra: pip install 'gsmt[video]' (PyAV and transformers)") from None
    _quiet_transformers()
    # trust_remote_code=False everywhere: a folder's own Python (config `auto_map`) is never run.
    # Left unset, transformers asks "Do you wish to run the custom code? [y/N]" on a terminal.
    if os.path.isdir(name):
        _refuse_custom_code(name)
    try:
        config = AutoConfig.from_pretrained(name, local_files_only=True, trust_remote_code=False)
    except (OSError, ValueError) as exc:
        if "custom code" in str(exc):  # a cached hub model that ships its own code
            raise GsmtError(name, "the model needs its own code, and gsmt never runs a model's code "
                                  "(trust_remote_code is off): use a model transformers ships") from None
        if os.path.isdir(name):
            raise GsmtError(name, f"not a transformers model folder ({_first_line(exc)})") from None
        raise _not_found(name) from None
    vision = getattr(config, "vision_config", None)
    model_type = str(getattr(config, "model_type", ""))
    kind = "video" if model_type in VIDEO_MODEL_TYPES or (vision is None and hasattr(config, "num_frames")) \
        else "image"
    try:
        model, info = AutoModel.from_pretrained(name, local_files_only=True, output_loading_info=True,
                                                trust_remote_code=False)
    except (OSError, ValueError) as exc:
        if os.path.isdir(name):
            raise GsmtError(name, f"cannot load the model's weights ({_first_line(exc)})") from None
        raise _not_found(name) from None
    except Exception as exc:  # noqa: BLE001 - a crafted folder (weights of other shapes: RuntimeError...)
        why = "weights of other shapes than its config.json declares" if "mismatched" in str(exc) \
            else f"{type(exc).__name__}: {_first_line(exc)}"
        raise GsmtError(name, f"cannot load the model's weights ({why})") from None
    _check_takes_pixels(name, model, kind)
    # Weights the file lacks would be drawn at random on every load: features that differ
    # between `gsmt extract` and `gsmt detect`. Refused.
    missing = [k for k in info.get("missing_keys", []) if not k.startswith("pooler.")] if kind == "video" \
        else list(info.get("missing_keys", []))
    if missing:
        raise GsmtError(name, f"the checkpoint lacks weights of this model ({', '.join(sorted(missing)[:3])}"
                              f"{', ...' if len(missing) > 3 else ''}): not usable as a feature extractor")
    model.eval().to(device)
    vcfg = vision or config
    image = _config_image_size(name, getattr(vcfg, "image_size", 224))
    proc, proc_path = _preprocessor_config(name)
    image_size, short_edge, mean, std, rescale = processor_settings(proc, proc_path, image)
    if kind == "video":
        pooling = "mean_tokens"
        dim = int(getattr(config, "hidden_size"))
    elif hasattr(model, "get_image_features"):
        pooling = "image_features"
        dim = int(getattr(config, "projection_dim", None) or getattr(vcfg, "hidden_size"))
    elif "pooler" in {n.split(".")[0] for n, _ in model.named_parameters()} or model_type == "dinov2":
        pooling = "pooler"
        dim = int(getattr(vcfg, "hidden_size"))
    else:
        pooling = "mean_tokens"
        dim = int(getattr(vcfg, "hidden_size"))
    preprocess = {"image_size": list(image_size), "short_edge": short_edge, "mean": mean, "std": std,
                  "rescale": rescale, "pooling": pooling, "kind": kind}
    config_text = json.dumps({k: v for k, v in config.to_dict().items()
                              if k not in ("_name_or_path", "transformers_version", "name_or_path")},
                             sort_keys=True, default=str)
    backbone = Backbone(name=name, kind=kind, model=model, feature_dim=dim, image_size=image_size,
                        short_edge=int(short_edge), mean=mean, std=std, rescale=rescale,
                        num_frames=int(getattr(config, "num_frames", 1)) if kind == "video" else 1,
                        model_type=model_type, pooling=pooling, device=torch.device(device),
                        recorded_id=record_id(name))
    backbone.digest = _weights_digest(model, config_text, preprocess)
    _check_takes_its_frames(backbone)
    del transformers
    return backbone


def _check_takes_its_frames(backbone: Backbone) -> None:
    """One forward pass of a black frame (or clip) as the preprocessing makes it, at load: a processor
    config of other sizes than the model takes (224 px crops for a 64 px model) is one line naming
    the folder before any video is read, not a traceback at the first video (after `gsmt extract`
    has claimed its --out)."""
    h, w = backbone.image_size
    frames = max(1, backbone.num_frames)
    blank = np.zeros((1, frames, h, w, 3) if backbone.kind == "video" else (1, h, w, 3), np.uint8)
    try:
        out = backbone.encode_clips(blank) if backbone.kind == "video" else backbone.encode_frames(blank)
    except Exception as exc:  # noqa: BLE001 - any failure of the model on its own input size
        raise GsmtError(backbone.name, f"the model does not take the {h}x{w} px frames its preprocessing "
                                       f"makes ({type(exc).__name__}: {_first_line(exc)}): check "
                                       "preprocessor_config.json (crop_size, size) against the model's "
                                       "image_size") from None
    if out.shape != (1, backbone.feature_dim):
        raise GsmtError(backbone.name, f"the model gives features of shape {tuple(out.shape[1:])}, not the "
                                       f"({backbone.feature_dim},) its config declares: not usable as a "
                                       "feature extractor")
