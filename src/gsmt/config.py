"""Run configuration: typed sections loaded from commented YAML presets, with `key=value` overrides."""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from gsmt.errors import GsmtError
from gsmt.losses import LossConfig  # the loss owns its settings; the config holds them

PRESETS = ("demo", "anet", "thumos")


@dataclass
class DataConfig:
    annotations: str = "annotations.json"  # relative to the data folder unless absolute
    features: str = "features"  # folder of per-video files, or one .h5 file
    feature_layout: str = "auto"  # auto | TD | DT
    temporal_mode: str = "auto"  # auto (from the dataset's `gsmt` meta) | resize | window
    T: int = 100  # snippets per sample
    window_stride: int | None = None  # window mode: snippets between window starts (default T // 2)
    background_window_ratio: float = 0.0  # share of background-only windows kept for training
    train_subset: str = "auto"  # auto: from the dataset's meta, else "training"
    eval_subset: str = "auto"  # the reported subset: never used for model selection
    val_fraction: float = 0.1  # seeded share of training videos held out for model selection
    fps: float | None = None  # grid for videos that do not carry one
    feature_stride: int | None = None
    feature_window: int | None = None


@dataclass
class ModelConfig:
    hidden_dim: int = 256
    num_layers: int = 2
    n_heads: int = 4
    head_dim: int | None = None  # default hidden_dim // n_heads
    mlp_ratio: float = 4.0
    dropout: float = 0.1
    pos_encoding: str = "none"  # none | learned | fixed
    embedding: str = "transformer"  # transformer | cnn
    mask_branch: bool = True
    mask_head: str = "conv"  # conv (paper: C -> T readout) | pairwise (snippet affinity + offset bias)


@dataclass
class TrainConfig:
    epochs: int = 15
    batch_size: int = 16
    optimizer: str = "adamw"  # adamw | sgd
    lr: float = 1e-3
    weight_decay: float = 1e-4
    momentum: float = 0.9  # sgd only
    warmup_epochs: float = 1.0
    schedule: str = "cosine"  # cosine | constant
    grad_clip: float = 1.0  # max gradient norm, 0 = off
    ema: float = 0.0  # EMA decay of the weights used for validation and saving, 0 = off
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda
    bf16: bool = True  # bf16 autocast on CUDA
    num_workers: int = 0
    select_metric: str = "val_mAP"  # val_mAP | val_loss: what picks best.pt
    threads: int = 0  # torch CPU threads, 0 = torch's default


@dataclass
class DecodeConfig:
    mode: str = "auto"  # auto (from the data) | long | short
    topk_classes: int = 1
    thresholds: list[float] = field(default_factory=lambda: [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9])
    m1: int = 50
    m2: int = 200
    theta_c: float = 0.1
    nms_method: str = "gaussian"  # gaussian | linear
    nms_sigma: float = 0.6
    nms_iou_threshold: float = 0.5  # linear decay only
    nms_per_class: bool = True
    max_keep: int = 100  # detections per video after Soft-NMS
    drop_edge_cuts: bool = True  # window mode: leave actions cut by an inner window edge to the neighbour
    tiou: str = "auto"  # auto (from the data) | anet | thumos | epic | comma list
    batch_size: int = 32


@dataclass
class Config:
    name: str = "custom"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    decode: DecodeConfig = field(default_factory=DecodeConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _coerce(value, hint, key: str, where: str):
    """Check a value against its field's type; YAML reads `2e-3` as a string, so numbers are parsed."""
    if typing.get_origin(hint) is list:
        if not isinstance(value, (list, tuple)):
            raise GsmtError(where, f"config key '{key}' must be a list, got {value!r}")
        return [_coerce(v, typing.get_args(hint)[0], key, where) for v in value]
    args = typing.get_args(hint)
    if args and type(None) in args and value is None:
        return None
    for kind in [t for t in args if t is not type(None)] or [hint]:
        if kind is bool or isinstance(value, bool):
            if kind is bool and isinstance(value, bool):
                return value
            continue
        if kind in (int, float):
            try:
                number = float(value)
            except (TypeError, ValueError):
                continue
            if kind is float:
                return number
            if number == int(number):
                return int(number)
            continue
        if isinstance(value, kind):
            return value
    name = getattr(hint, "__name__", None) or str(hint)
    raise GsmtError(where, f"config key '{key}' must be {name}, got {value!r}")


def _build(cls, values: dict, where: str, prefix: str = ""):
    """Build dataclass `cls` from a dict, refusing unknown keys and values of the wrong type."""
    if not isinstance(values, dict):
        raise GsmtError(where, f"section '{prefix.rstrip('.') or 'config'}' must be a mapping")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in values.items():
        if key not in fields:
            known = ", ".join(sorted(fields))
            raise GsmtError(where, f"unknown config key '{prefix}{key}' (known: {known})")
        default = getattr(cls(), key)
        if dataclasses.is_dataclass(default):
            kwargs[key] = _build(type(default), value or {}, where, f"{prefix}{key}.")
        else:
            kwargs[key] = _coerce(value, typing.get_type_hints(cls)[key], f"{prefix}{key}", where)
    return cls(**kwargs)


def _merge(base: dict, update: dict) -> dict:
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def preset_path(name: str) -> Path:
    return Path(str(resources.files("gsmt") / "configs" / f"{name}.yaml"))


def read_yaml(path: Path) -> dict:
    try:
        values = yaml.safe_load(Path(path).read_text())
    except FileNotFoundError:
        raise GsmtError(path, "config file not found") from None
    except (OSError, yaml.YAMLError) as exc:
        raise GsmtError(path, f"not a readable YAML file ({type(exc).__name__})") from None
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise GsmtError(path, "a config must be a YAML mapping")
    return values


def parse_override(text: str) -> dict:
    """`train.lr=3e-4` -> {"train": {"lr": 3e-4}}; the value is parsed as YAML."""
    if "=" not in text:
        raise GsmtError("--set", f"'{text}' is not key=value")
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    out: dict[str, Any] = value
    for part in reversed(key.strip().split(".")):
        out = {part: out}
    return out


def load_config(name_or_path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Load a preset name (`demo`, `anet`, `thumos`) or a YAML path, then apply `key=value` overrides."""
    path = Path(name_or_path)
    if str(name_or_path) in PRESETS:
        path = preset_path(str(name_or_path))
    elif not path.exists():
        raise GsmtError(name_or_path, f"no such config file or preset (presets: {', '.join(PRESETS)})")
    values = read_yaml(path)
    values.setdefault("name", path.stem)
    for text in overrides:
        values = _merge(values, parse_override(text))
    where = f"{path}" + (" with --set" if overrides else "")
    return _build(Config, values, where)


def config_from_dict(values: dict, where: str = "checkpoint") -> Config:
    return _build(Config, values, where)


def save_config(cfg: Config, path: Path) -> None:
    from gsmt.io import atomic_write_text

    header = "# Resolved gsmt config of this run (preset + --set overrides + values taken from the data).\n"
    atomic_write_text(path, header + yaml.safe_dump(cfg.to_dict(), sort_keys=False))


def apply_overrides(cfg: Config, overrides: list[str] | tuple[str, ...],
                    sections: tuple[str, ...] | None = None) -> Config:
    """Apply `key=value` overrides to a built config; `sections` limits which sections may change."""
    values = cfg.to_dict()
    for text in overrides:
        update = parse_override(text)
        if sections is not None and not set(update) <= set(sections):
            raise GsmtError("--set", f"'{text}': only {', '.join(s + '.*' for s in sections)} can be set here")
        values = _merge(values, update)
    return _build(Config, values, "--set") if overrides else cfg
