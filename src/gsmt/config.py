"""Run configuration: typed sections loaded from commented YAML presets, with `key=value` overrides."""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from gsmt.io.read import LongNumberError, NoAliasLoader, long_number_problem, read_yaml_file
from gsmt.errors import GsmtError
from gsmt.losses import LossConfig  # the loss owns its settings; the config holds them
from gsmt.model.gsmt import EMBEDDINGS, LABEL_SCORES, LABELS, MASK_HEADS, POS_ENCODINGS, STEM_NORMS
from gsmt.postprocess.decode import MASK_SCORES, SCORES
from gsmt.postprocess.nms import METHODS as NMS_METHODS
from gsmt.schema import DECODE_MODES, DEVICE, FEATURE_LAYOUTS, STANDARDIZE_MODES, TEMPORAL_MODES, SEED_MAX, Bounds, bounded, check_dataclass, describe, field_bounds, kind_of, satisfies

PRESETS = ("demo", "anet", "thumos", "multithumos", "charades")
OPTIMIZERS = ("adamw", "sgd")
SCHEDULES = ("cosine", "constant")
RESIDENT = ("auto", "always", "never")  # not on/off: YAML reads those as booleans
SELECT_METRICS = ("val_mAP", "val_loss")
MAX_WORKERS = 1024  # DataLoader workers and CPU threads: a larger count is a typo


# Every field declares its type (the annotation) and its range (`bounded`, gsmt.schema); `validate`
# checks them all, naming the key, before any work (issue 13, item 9).
@dataclass
class DataConfig:
    annotations: str = bounded("annotations.json", nonempty=True)  # relative to the data folder unless absolute
    features: str = bounded("features", nonempty=True)  # folder of per-video files, or one .h5 file
    feature_layout: str = bounded("auto", choices=FEATURE_LAYOUTS)
    temporal_mode: str = bounded("auto", choices=("auto", *TEMPORAL_MODES))  # auto: the dataset's `gsmt` meta
    T: int = bounded(100, ge=1)  # snippets per sample
    window_stride: int | None = bounded(None, ge=1)  # window mode: snippets between window starts (default T // 2)
    background_window_ratio: float = bounded(0.0, ge=0, le=1)  # share of background-only windows kept for training
    window_jitter: float = bounded(0.0, ge=0, le=1)  # window mode: training windows move by up to +-jitter*stride/2 each epoch
    train_subset: str = bounded("auto", nonempty=True)  # auto: from the dataset's meta, else "training"
    eval_subset: str = bounded("auto", nonempty=True)  # the reported subset: never used for model selection
    val_fraction: float = bounded(0.1, ge=0, lt=1)  # seeded share of training videos held out for model selection
    fps: float | None = bounded(None, gt=0)  # grid for videos that do not carry one
    feature_stride: int | None = bounded(None, ge=1)
    feature_window: int | None = bounded(None, ge=1)
    # Feature extractor of the features (`gsmt extract` records it in annotations.json; `gsmt train`
    # takes it from the data): its id and digest go into the checkpoint for `gsmt detect`.
    backbone: str | None = bounded(None, nonempty=True)
    backbone_digest: str | None = bounded(None, nonempty=True)


@dataclass
class ModelConfig:
    hidden_dim: int = bounded(256, ge=1)
    num_layers: int = bounded(2, ge=0)
    n_heads: int = bounded(4, ge=1)
    head_dim: int | None = bounded(None, ge=1)  # default hidden_dim // n_heads
    mlp_ratio: float = bounded(4.0, gt=0)
    dropout: float = bounded(0.1, ge=0, lt=1)
    pos_encoding: str = bounded("none", choices=POS_ENCODINGS)
    embedding: str = bounded("transformer", choices=EMBEDDINGS)
    mask_branch: bool = True
    # conv (paper: C -> T readout) | pairwise (snippet affinity + offset bias)
    mask_head: str = bounded("conv", choices=MASK_HEADS)
    boundary_gate: bool = False  # gate each mask column by P(no instance boundary between t and i)
    conv_stem: int = bounded(0, ge=0, le=64)  # residual k=3 conv layers before the embedding (local order)
    stem_dilation: int = bounded(1, ge=1, le=64)  # conv stem layer l is dilated by stem_dilation ** l
    stem_norm: str = bounded("group", choices=STEM_NORMS)  # group: over the whole sequence; layer: per snippet
    # single (the paper: softmax over K classes + background, one label and one mask per snippet) |
    # multi (a sigmoid per class, every label of a snippet, one mask per (snippet, class): issue 32)
    labels: str = bounded("single", choices=LABELS)
    # with labels: multi, the mask of (snippet, class) is conditioned on the class (true: a short
    # action inside a long one of another class keeps its own extent) or shared by the snippet's
    # classes (false: one mask per snippet, as ActionFormer shares one regression per location)
    class_masks: bool = True
    # with labels: multi, how classes are scored: sigmoid (one per class, sigmoid focal loss, as
    # ActionFormer) | softmax (the paper's softmax over classes + background and its Eq. 5 loss,
    # the target split evenly over a snippet's labels: a twin's two labels get 0.5 each) |
    # actionness (P(action) from the paper's softmax and Eq. 5 on action vs background, times a
    # sigmoid per class trained on foreground snippets only: a twin's two labels both reach 1)
    label_scores: str = bounded("sigmoid", choices=LABEL_SCORES)
    # input standardisation (issue 34; measured by `gsmt train` on the training videos, saved in the
    # checkpoint): none | global (each dimension minus its mean, all divided by one spread, the RMS of
    # the centred features) | dims (each dimension by its own standard deviation) | auto (global for
    # features that barely vary against their size, e.g. a random-weight backbone's; else none)
    standardize: str = bounded("auto", choices=STANDARDIZE_MODES)


@dataclass
class TrainConfig:
    epochs: int = bounded(15, ge=1)
    batch_size: int = bounded(16, ge=1)
    optimizer: str = bounded("adamw", choices=OPTIMIZERS)
    lr: float = bounded(1e-3, gt=0)
    weight_decay: float = bounded(1e-4, ge=0)
    momentum: float = bounded(0.9, ge=0, le=1)  # sgd only
    warmup_epochs: float = bounded(1.0, ge=0)
    schedule: str = bounded("cosine", choices=SCHEDULES)
    grad_clip: float = bounded(1.0, ge=0)  # max gradient norm, 0 = off
    ema: float = bounded(0.0, ge=0, lt=1)  # EMA decay of the weights used for validation and saving, 0 = off
    seed: int = bounded(0, ge=0, le=SEED_MAX)
    device: str = bounded("auto", pattern=DEVICE.pattern, pattern_text=DEVICE.pattern_text)
    bf16: bool = True  # bf16 autocast on CUDA
    num_workers: int = bounded(0, ge=0, le=MAX_WORKERS)
    select_metric: str = bounded("val_mAP", choices=SELECT_METRICS)  # what picks best.pt
    threads: int = bounded(0, ge=0, le=MAX_WORKERS)  # torch CPU threads, 0 = torch's default
    # stop (error) after this many consecutive steps with a NaN/Inf loss
    max_nonfinite_steps: int = bounded(20, ge=1)
    # Device-resident training (gsmt.engine.resident.ResidentSamples): the training samples and their
    # targets read once into contiguous tensors, batches gathered by index. auto: when they fit in
    # `resident_memory_fraction` of the device's memory (CUDA; else pinned host memory) or of the
    # host's (CPU); always: also when they do not (host memory); never: the DataLoader.
    resident: str = bounded("auto", choices=RESIDENT)
    resident_memory_fraction: float = bounded(0.5, gt=0, le=1)
    compile: bool = False  # torch.compile the training forward (needs a C++ compiler on the CPU)


@dataclass
class DecodeConfig:
    mode: str = bounded("auto", choices=("auto", *DECODE_MODES))  # auto: from the data
    topk_classes: int = bounded(1, ge=1)
    thresholds: list[float] = bounded(default_factory=lambda: [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9],
                                      nonempty=True, item=Bounds(gt=0, lt=1))
    m1: int = bounded(50, ge=1)
    m2: int = bounded(200, ge=1)
    theta_c: float = bounded(0.1, ge=0, le=1)
    # multi-label models: which (snippet, class) pairs propose: classes (every class above theta_c
    # at any snippet, the m1 most probable pairs) | snippets (the m1 most action-like snippets, each
    # with its topk_classes classes above theta_c: the one-label model's candidates)
    pairs: str = bounded("classes", choices=("classes", "snippets"))
    # multi-label models: a (snippet, class) pair proposes only if P[c, t] >= colabel_ratio x the
    # snippet's top class probability (0: every class above theta_c; a twin's labels are both near
    # the top, a class that half-matches beside a confident one is not)
    colabel_ratio: float = bounded(0.0, ge=0, le=1)
    # source (paper: P[c, t] of the source snippet) | run (mean P[c] over the segment)
    score: str = bounded("source", choices=SCORES)
    # max (paper: the mask's maximum over the segment) | iou (soft IoU of the segment with the mask) |
    # auto: iou with `own+long` decoding (it ranks a column's own run against its long span), else max
    mask_score: str = bounded("auto", choices=("auto", *MASK_SCORES))
    nms_method: str = bounded("gaussian", choices=NMS_METHODS)
    nms_sigma: float = bounded(0.6, gt=0)
    nms_iou_threshold: float = bounded(0.5, ge=0, le=1)  # linear decay only
    nms_per_class: bool = True
    max_keep: int = bounded(100, ge=1)  # detections per video after Soft-NMS
    # then: score x this for a detection inside a higher-scored one of its class >= 2x longer (1 = off)
    fragment_decay: float = bounded(1.0, ge=0, le=1)
    # last: score x (m_c / m_top) ** video_fusion, m_c the sum of the video's detection scores of the
    # detection's class, m_top the largest of the video (0 = off; gsmt.postprocess.fusion)
    video_fusion: float = bounded(0.0, ge=0)
    drop_edge_cuts: bool = True  # window mode: leave actions cut by an inner window edge to the neighbour
    # auto (from the data) | anet | thumos | epic | comma list (checked by `validate`)
    tiou: str = bounded("auto", nonempty=True)
    batch_size: int = bounded(32, ge=1)

    def resolved_mask_score(self) -> str:
        """`mask_score`, with `auto` decided by the decoding mode."""
        if self.mask_score != "auto":
            return self.mask_score
        return "iou" if self.mode == "own+long" else "max"


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


def _coerce(value, hint, key: str, where: str, bounds: Bounds | None = None):
    """Check a value against its field's type; YAML reads `2e-3` as a string, so numbers are parsed.

    `bounds` (the field's) phrase the error for a text field given true/false: YAML reads on/off and
    yes/no as booleans, so `train.resident=on` is told the accepted values, not the type `str`."""
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
            except (TypeError, ValueError, OverflowError):  # OverflowError: an int past 1.8e308
                continue
            if kind is float:
                return number
            if math.isfinite(number) and number == int(number):
                return int(number)
            continue
        if isinstance(value, kind):
            return value
        if kind is str and isinstance(value, (int, float)):  # `--set decode.tiou=0.5`, a subset named 2020
            return str(value)
    if isinstance(value, bool) and str in (args or (hint,)):
        raise GsmtError(where, f"config key '{key}' must be {describe(str, bounds or Bounds())}, got {value!r} "
                               "(YAML reads on/off, yes/no and true/false as booleans)")
    name = getattr(hint, "__name__", None) or str(hint)
    raise GsmtError(where, f"config key '{key}' must be {name}, got {value!r}")


# Keys of earlier versions, which their checkpoints and config.yaml files record: loaded and ignored
# at the values that leave today's model unchanged (any value: None); another value needs the
# version that had the option.
RETIRED: dict[str, tuple | None] = {
    "model.mask_skip": (False,),  # 2026-12-01: the mask head also read the projected input
    "loss.interval_weight": None,  # 2026-11-30: weighted the removed `interval` mask head only
}


def _build(cls, values: dict, where: str, prefix: str = ""):
    """Build dataclass `cls` from a dict, refusing unknown keys and values of the wrong type."""
    if not isinstance(values, dict):
        raise GsmtError(where, f"section '{prefix.rstrip('.') or 'config'}' must be a mapping")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in values.items():
        if key not in fields and f"{prefix}{key}" in RETIRED:
            accepted = RETIRED[f"{prefix}{key}"]
            if accepted is None or any(value is v for v in accepted):
                continue
            raise GsmtError(where, f"config key '{prefix}{key}' was removed from gsmt; a config of an earlier "
                                   f"version loads with it only at {', '.join(map(repr, accepted))}, got {value!r}")
        if key not in fields:
            known = ", ".join(sorted(fields))
            raise GsmtError(where, f"unknown config key '{prefix}{key}' (known: {known})")
        default = getattr(cls(), key)
        if dataclasses.is_dataclass(default):
            kwargs[key] = _build(type(default), {} if value is None else value, where, f"{prefix}{key}.")
        else:
            value = _coerce(value, hints[key], f"{prefix}{key}", where, field_bounds(fields[key]))
            kind, optional = kind_of(hints[key])
            bounds = field_bounds(fields[key])
            if not (value is None and optional) and not satisfies(value, kind, bounds):
                raise _out_of_bounds(where)(f"{prefix}{key}", describe(kind, bounds), value)
            kwargs[key] = value
    return cls(**kwargs)


def _out_of_bounds(where: str):
    def report(key: str, requirement: str, value) -> GsmtError:
        return GsmtError(where, f"config key '{key}' must be {requirement}, got {value!r}")
    return report


def validate(cfg: Config, where: str = "config") -> Config:
    """Check every value of every section against its declared type and bounds (gsmt.schema), and
    the few rules that tie keys together; raise one `GsmtError` naming the first bad key.

    Called wherever a config is made (load_config, a checkpoint's config, --set overrides) and by
    `train` before any work, so a library caller that builds a `Config` by hand is checked too."""
    if not isinstance(cfg, Config):
        raise GsmtError(where, f"not a gsmt Config: {type(cfg).__name__}")
    check_dataclass(cfg, _out_of_bounds(where))
    d = cfg.data
    if d.temporal_mode == "window" and d.window_stride is not None and d.window_stride > d.T:
        raise GsmtError(where, f"config key 'data.window_stride' must be <= data.T ({d.T}) in window mode "
                               f"(windows further apart than their length skip snippets), got {d.window_stride}")
    m = cfg.model
    if m.labels == "multi" and (m.mask_head != "pairwise" or not m.mask_branch or m.boundary_gate):
        raise GsmtError(where, "config key 'model.labels' multi needs the pairwise mask head (model.mask_head: "
                               "pairwise, model.mask_branch: true, model.boundary_gate: false)")
    if m.labels == "single" and not m.class_masks:
        raise GsmtError(where, "config key 'model.class_masks' false needs model.labels: multi (one label per "
                               "snippet already has one mask per snippet)")
    if m.labels == "single" and m.label_scores != "sigmoid":
        raise GsmtError(where, "config key 'model.label_scores' applies to model.labels: multi (one label per "
                               "snippet is scored by the softmax already)")
    if cfg.decode.tiou != "auto":
        from gsmt.evaluation.tiou import parse_tiou  # NumPy only

        try:
            parse_tiou(cfg.decode.tiou)
        except GsmtError:
            raise GsmtError(where, "config key 'decode.tiou' must be auto, anet, thumos, epic, multithumos or a "
                                   f"comma list of tIoU thresholds in [0, 1], got {cfg.decode.tiou!r}") from None
    return cfg


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
    # Bounded read, UTF-8 only, no YAML aliases (an alias bomb is refused before it is built).
    if not Path(path).exists():
        raise GsmtError(path, "config file not found")
    values = read_yaml_file(path)
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
        value = yaml.load(raw, Loader=NoAliasLoader) if raw.strip() else None  # noqa: S506 (safe)
    except LongNumberError as exc:  # 10**400 overflows a float, 4,300 digits are past Python's int limit
        raise GsmtError("--set", f"config key '{key.strip()[:80]}': {long_number_problem(exc.digits)}") from None
    except yaml.YAMLError:
        value = raw
    except RecursionError:
        raise GsmtError("--set", f"'{text[:60]}': nested too deeply") from None
    out: dict[str, Any] = value
    for part in reversed(key.strip().split(".")):
        out = {part: out}
    return out


def load_config(name_or_path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Load a preset name (`PRESETS`) or a YAML path, then apply `key=value` overrides."""
    path = Path(name_or_path)
    if str(name_or_path) in PRESETS:
        path = preset_path(str(name_or_path))
    elif not path.exists():
        raise GsmtError(name_or_path, f"no such config file or preset (presets: {', '.join(PRESETS)})")
    values = read_yaml(path)
    # The keys the user chose (each --set, every key of their own YAML file): a setting the data can
    # decide (`gsmt.engine.resolve`: the training subset, data.T) is decided only where none was.
    given = set() if str(name_or_path) in PRESETS else _flat_keys(values)
    values.setdefault("name", path.stem)
    for text in overrides:
        update = parse_override(text)
        given |= _flat_keys(update)
        values = _merge(values, update)
    where = f"{path}" + (" with --set" if overrides else "")
    return with_given(validate(_build(Config, values, where), where), given)


def _flat_keys(values: dict, prefix: str = "") -> set[str]:
    out: set[str] = set()
    for key, value in values.items():
        if isinstance(value, dict):
            out |= _flat_keys(value, f"{prefix}{key}.")
        else:
            out.add(f"{prefix}{key}")
    return out


def with_given(cfg: Config, given) -> Config:
    """`cfg` carrying the set of keys the user chose ("data.T", ...; None: unknown, every value
    taken as chosen), read by `given_keys`. Not a field: it is not part of the run's config."""
    cfg.__dict__["_given"] = None if given is None else frozenset(given)
    return cfg


def given_keys(cfg: Config) -> frozenset[str] | None:
    """The keys the user chose (`load_config`), or None where that is not known (a Config built in
    Python, read from a checkpoint, or copied by `dataclasses.replace`)."""
    return cfg.__dict__.get("_given")


def decisions(cfg: Config) -> list[str]:
    """The settings `gsmt.engine.resolve.resolve_config` took from the data, one line each."""
    return list(cfg.__dict__.get("_decisions", ()))


def config_from_dict(values: dict, where: str = "checkpoint") -> Config:
    return validate(_build(Config, values, where), where)


def save_config(cfg: Config, path: Path) -> None:
    from gsmt.io.write import atomic_write_text

    header = "# Resolved gsmt config of this run (preset + --set overrides + values taken from the data).\n"
    header += "".join(f"# decided from the data: {line}\n" for line in decisions(cfg))
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
    return validate(_build(Config, values, "--set"), "--set") if overrides else cfg
