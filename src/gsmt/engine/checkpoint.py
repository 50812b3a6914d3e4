"""Self-describing checkpoints: weights plus everything prediction needs (DESIGN.md section 10).

Loading trusts nothing in the file: `torch.load(weights_only=True)` runs no code, a file that is
neither a torch archive nor a pickle (JSON, text) is "not a gsmt checkpoint", and `check_state`
validates the whole `meta` schema (types, ranges, agreement with the recorded config) and the
weights in one place, before a model is built: sizes beyond `LIMITS` (a `hidden_dim` of 10^7) are
refused before any allocation, and the model is first built on the `meta` device (no memory) to
compare its parameter shapes with the weights.
"""

from __future__ import annotations

import io
import math
import os
import pickle
import stat
import warnings
from pathlib import Path

import torch

from gsmt import __version__
from gsmt.config import Config, config_from_dict
from gsmt.errors import GsmtError
from gsmt.io.read import MAX_FPS, MAX_FRAMES
from gsmt.io.write import atomic_write_bytes
from gsmt.model import GSMT
from gsmt.schema import TEMPORAL_MODES

FORMAT = "gsmt-checkpoint-1"
# Largest sizes a checkpoint may describe: far beyond any sensible GSMT (the paper's is
# hidden_dim 256, 2 layers, T 100), far below what would exhaust memory on building the model.
LIMITS = {
    "num_classes": 100_000,
    "feature_dim": 65_536,
    "T": 8_192,  # the global mask is T x T per sample
    "model.hidden_dim": 16_384,
    "model.num_layers": 256,
    "model.n_heads": 1_024,
    "model.head_dim": 4_096,
    "model.attention_width": 65_536,  # n_heads * head_dim
    "model.mlp_width": 262_144,  # hidden_dim * mlp_ratio
}
MEAN_BUFFER, STD_BUFFER = "feature_mean", "feature_std"  # GSMT's input standardisation
TRAINING_KEYS = ("optimizer", "rng", "epoch", "step", "history")


def model_meta(cfg: Config, classes: list[str], feature_dim: int) -> dict:
    """What a checkpoint must carry so that prediction needs nothing else (`backbone`: only for
    features written by `gsmt extract`; older checkpoints lack it)."""
    meta = {
        "format": FORMAT,
        "version": __version__,
        "classes": list(classes),
        "num_classes": len(classes),
        "feature_dim": int(feature_dim),
        "T": int(cfg.data.T),
        "temporal_mode": cfg.data.temporal_mode,
        "grid": {
            "fps": cfg.data.fps,
            "feature_stride": cfg.data.feature_stride,
            "feature_window": cfg.data.feature_window,
        },
        "decode": cfg.to_dict()["decode"],
        "config": cfg.to_dict(),
    }
    if cfg.data.backbone:  # features from `gsmt extract`: `gsmt detect` extracts the same way
        # A local folder by its absolute path (gsmt extract records it so; a config may name it relative).
        bb = str(Path(cfg.data.backbone).resolve()) if os.path.isdir(cfg.data.backbone) else cfg.data.backbone
        meta["backbone"] = {"id": bb, "digest": cfg.data.backbone_digest}
    return meta


def build_model(cfg: Config, num_classes: int, feature_dim: int) -> GSMT:
    m = cfg.model
    return GSMT(
        feature_dim,
        num_classes,
        cfg.data.T,
        hidden_dim=m.hidden_dim,
        num_layers=m.num_layers,
        n_heads=m.n_heads,
        head_dim=m.head_dim,
        mlp_ratio=m.mlp_ratio,
        dropout=m.dropout,
        pos_encoding=m.pos_encoding,
        embedding=m.embedding,
        mask_branch=m.mask_branch,
        mask_head=m.mask_head,
        boundary_gate=m.boundary_gate,
        conv_stem=m.conv_stem,
        stem_dilation=m.stem_dilation,
        stem_norm=m.stem_norm,
        labels=m.labels,
        class_masks=m.class_masks,
        label_scores=m.label_scores,
    )


def save_checkpoint(path: Path, state: dict) -> None:
    """Write atomically: a kill never leaves a half-written checkpoint behind."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def resolve_checkpoint(path: str | Path) -> Path:
    """A run directory means its best checkpoint, else its last one."""
    path = Path(path)
    if path.is_dir():
        for name in ("best.pt", "last.pt"):
            if (path / name).is_file():
                return path / name
        raise GsmtError(path, "no checkpoint in this run directory (best.pt or last.pt)")
    if not path.exists():
        raise GsmtError(path, "checkpoint not found")
    if not stat.S_ISREG(os.stat(path).st_mode):
        raise GsmtError(path, "not a gsmt checkpoint (not a regular file: a device, a pipe or a socket)")
    return path


# How torch.save files begin: a zip archive (the default since torch 1.6) or a pickle (protocol >= 2).
_ZIP_MAGIC = b"PK\x03\x04"
_PICKLE_MAGIC = b"\x80"


def _sniff(path: Path) -> None:
    """Refuse, as not a checkpoint, a file that torch.save cannot have written (JSON, YAML, text...):
    torch would report it as an unsafe pickle, which blames the wrong thing."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
    except OSError as exc:
        raise GsmtError(path, f"cannot read: {exc.strerror or exc}") from None
    if head.startswith(_ZIP_MAGIC) or head.startswith(_PICKLE_MAGIC):
        return
    text = head.lstrip()
    kind = ("JSON" if text[:1] in (b"{", b"[") else "empty" if not head
            else "text" if all(32 <= b < 127 or b in b"\t\r\n" for b in head) else "unknown data")
    raise GsmtError(path, f"not a gsmt checkpoint (the file is {kind}, not a torch archive)")


def load_checkpoint(path: str | Path) -> dict:
    """Load safely (`weights_only=True`: no code runs from the file), check it is ours and that its
    content is well-formed (`check_state`)."""
    path = resolve_checkpoint(path)
    _sniff(path)
    try:
        # torch warns (several lines) about unusual pickle protocols before refusing: the one-line
        # error below says it all.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise GsmtError(path, "refused: the file holds objects other than tensors and plain data "
                              "(not a gsmt checkpoint, or unsafe)") from None
    except Exception as exc:  # torch raises many types for truncated/corrupt archives
        raise GsmtError(path, f"not a readable checkpoint ({type(exc).__name__})") from None
    check_state(state, path)
    return state


# ------------------------------------------------------------------ validation of a loaded state


def _int_in(value, where, key: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise GsmtError(where, f"checkpoint field '{key}' must be a whole number, got {value!r:.60}")
    if not lo <= value <= hi:
        raise GsmtError(where, f"checkpoint field '{key}' must be in [{lo}, {hi}], got {value}")
    return value


def _limit(value, where, key: str) -> None:
    if value is not None and value > LIMITS[key]:
        shown = f"{value:,}" if isinstance(value, int) else f"{value:g}"
        raise GsmtError(where, f"checkpoint describes {key} = {shown}, beyond the largest gsmt builds "
                               f"({LIMITS[key]:,}): refused before building the model")


def _check_weights(weights, where, key: str) -> dict:
    if not isinstance(weights, dict) or not weights:
        raise GsmtError(where, f"checkpoint field '{key}' must be the model's weights (a dict of tensors), "
                               f"got {type(weights).__name__}")
    for name, tensor in weights.items():
        if not isinstance(name, str) or not isinstance(tensor, torch.Tensor):
            raise GsmtError(where, f"checkpoint field '{key}': entry {name!r:.60} is not a named tensor")
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise GsmtError(where, f"checkpoint field '{key}': weight '{name}' holds NaN/Inf")
        if name.endswith(STD_BUFFER) and tensor.is_floating_point() and not bool((tensor > 0).all()):
            raise GsmtError(where, f"checkpoint field '{key}': '{name}' must be positive (it divides the features)")
    return weights


def with_feature_stats(weights: dict, feature_dim: int, prefix: str = "") -> dict:
    """`weights` with the identity standardisation added when they predate it (files before issue 34
    load and predict unchanged); `prefix`: "module." for an EMA's state."""
    mean, std = prefix + MEAN_BUFFER, prefix + STD_BUFFER
    if mean in weights or std in weights:
        return weights
    return {**weights, mean: torch.zeros(feature_dim), std: torch.ones(feature_dim)}


def check_meta(meta, where: str | Path) -> Config:
    """The whole `meta` schema of a checkpoint, with types and ranges; returns its config.

    `format`, `classes` (distinct names, as many as `num_classes`), `num_classes`, `feature_dim`,
    `T`, `temporal_mode`, `grid` (fps, feature_stride, feature_window), optional `backbone` (id,
    digest), `decode` and `config` (every
    key typed and bounded by gsmt.config, and agreeing with `T` / `temporal_mode`); model sizes
    within `LIMITS`. Every refusal names the checkpoint and the field."""
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise GsmtError(where, "not a gsmt checkpoint")
    for key in ("classes", "num_classes", "feature_dim", "T", "temporal_mode", "grid", "decode", "config"):
        if key not in meta:
            raise GsmtError(where, f"not a complete gsmt checkpoint: 'meta.{key}' is missing")
    k = _int_in(meta["num_classes"], where, "meta.num_classes", 1, LIMITS["num_classes"])
    classes = meta["classes"]
    if not isinstance(classes, list) or not all(isinstance(c, str) and c for c in classes):
        raise GsmtError(where, "checkpoint field 'meta.classes' must be a list of class names")
    if len(classes) != k or len(set(classes)) != k:
        raise GsmtError(where, f"checkpoint field 'meta.classes' must list {k} distinct names (meta.num_classes), "
                               f"got {len(classes)} ({len(set(classes))} distinct)")
    _int_in(meta["feature_dim"], where, "meta.feature_dim", 1, LIMITS["feature_dim"])
    T = _int_in(meta["T"], where, "meta.T", 1, LIMITS["T"])
    if meta["temporal_mode"] not in TEMPORAL_MODES:
        raise GsmtError(where, f"checkpoint field 'meta.temporal_mode' must be resize or window, "
                               f"got {meta['temporal_mode']!r:.60}")
    grid = meta["grid"]
    if not isinstance(grid, dict):
        raise GsmtError(where, f"checkpoint field 'meta.grid' must be an object, got {type(grid).__name__}")
    fps = grid.get("fps")
    if fps is not None and (isinstance(fps, bool) or not isinstance(fps, (int, float))
                            or not (math.isfinite(fps) and 0 < fps <= MAX_FPS)):
        raise GsmtError(where, f"checkpoint field 'meta.grid.fps' must be a number in (0, {MAX_FPS:g}], got {fps!r:.60}")
    for key in ("feature_stride", "feature_window"):
        if grid.get(key) is not None:
            _int_in(grid[key], where, f"meta.grid.{key}", 1, MAX_FRAMES)
    backbone = meta.get("backbone")
    if backbone is not None and not (isinstance(backbone, dict) and isinstance(backbone.get("id"), str)
                                     and backbone["id"] and isinstance(backbone.get("digest"), (str, type(None)))):
        raise GsmtError(where, "checkpoint field 'meta.backbone' must be an object with an id (a string) and a digest")
    if not isinstance(meta["decode"], dict):
        raise GsmtError(where, "checkpoint field 'meta.decode' must be an object")
    if not isinstance(meta["config"], dict):
        raise GsmtError(where, "checkpoint field 'meta.config' must be an object")
    # Sizes first: a hidden_dim of 10^7 is refused here, whatever else the config says.
    model_cfg = meta["config"].get("model")
    if isinstance(model_cfg, dict):
        for key in ("hidden_dim", "num_layers", "n_heads", "head_dim"):
            value = model_cfg.get(key)
            if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                _limit(value, where, f"model.{key}")
    cfg = config_from_dict(meta["config"], str(where))  # every key typed and bounded (gsmt.config)
    m = cfg.model
    head_dim = m.head_dim if m.head_dim is not None else max(1, m.hidden_dim // m.n_heads)
    _limit(m.n_heads * head_dim, where, "model.attention_width")
    _limit(m.hidden_dim * m.mlp_ratio, where, "model.mlp_width")
    if cfg.data.T != T:
        raise GsmtError(where, f"checkpoint field 'meta.T' ({T}) differs from its config's data.T ({cfg.data.T})")
    if cfg.data.temporal_mode not in ("auto", meta["temporal_mode"]):
        raise GsmtError(where, f"checkpoint field 'meta.temporal_mode' ({meta['temporal_mode']}) differs from "
                               f"its config's data.temporal_mode ({cfg.data.temporal_mode})")
    return cfg


def check_state(state, where: str | Path) -> Config:
    """A loaded checkpoint: `meta` (`check_meta`) and its weights (`model`, `ema_model`); returns the config."""
    if not isinstance(state, dict) or not isinstance(state.get("meta"), dict) \
            or state["meta"].get("format") != FORMAT:
        raise GsmtError(where, "not a gsmt checkpoint")
    cfg = check_meta(state["meta"], where)
    if "model" not in state:
        raise GsmtError(where, "not a complete gsmt checkpoint: 'model' (the weights) is missing")
    _check_weights(state["model"], where, "model")
    if state.get("ema_model") is not None:
        _check_weights(state["ema_model"], where, "ema_model")
    return cfg


def check_training_state(state: dict, where: str | Path) -> None:
    """What `--resume` reads besides the model: optimizer state, RNG state, counters, history."""
    missing = [k for k in TRAINING_KEYS if k not in state]
    if missing:
        raise GsmtError(where, f"cannot resume from this checkpoint: {', '.join(missing)} missing")
    if not isinstance(state["optimizer"], dict):
        raise GsmtError(where, "checkpoint field 'optimizer' must be an optimizer state (an object)")
    rng = state["rng"]
    if not isinstance(rng, torch.Tensor) or rng.dtype != torch.uint8 or rng.dim() != 1:
        raise GsmtError(where, "checkpoint field 'rng' must be a torch RNG state (a byte tensor)")
    _int_in(state["epoch"], where, "epoch", 0, 10**9)
    _int_in(state["step"], where, "step", 0, 10**15)
    if not isinstance(state["history"], list) or not all(isinstance(r, dict) for r in state["history"]):
        raise GsmtError(where, "checkpoint field 'history' must be a list of epoch records")
    if state.get("best") is not None and not isinstance(state["best"], dict):
        raise GsmtError(where, "checkpoint field 'best' must be an epoch record")
    if state.get("ema") is not None and not isinstance(state["ema"], dict):
        raise GsmtError(where, "checkpoint field 'ema' must be the EMA's state (an object)")
    if state.get("data") is not None and not isinstance(state["data"], dict):
        raise GsmtError(where, "checkpoint field 'data' must be an object")


def _fit_on_meta_device(cfg: Config, meta: dict, weights: dict, where) -> None:
    """Build the described model without memory (the meta device) and compare it with the weights."""
    with torch.device("meta"):
        shadow = build_model(cfg, meta["num_classes"], meta["feature_dim"])
    expected = {name: tuple(t.shape) for name, t in shadow.state_dict().items()}
    del shadow
    got = {name: tuple(t.shape) for name, t in weights.items()}
    lacking = sorted(set(expected) - set(got))
    extra = sorted(set(got) - set(expected))
    wrong = sorted(n for n in set(expected) & set(got) if expected[n] != got[n])
    if lacking or extra or wrong:
        parts = []
        if wrong:
            n = wrong[0]
            parts.append(f"size mismatch for {n}: the file holds {list(got[n])}, the configuration "
                         f"describes {list(expected[n])}")
        if lacking:
            parts.append(f"missing weights {', '.join(lacking[:3])}" + (", ..." if len(lacking) > 3 else ""))
        if extra:
            parts.append(f"unexpected weights {', '.join(extra[:3])}" + (", ..." if len(extra) > 3 else ""))
        raise GsmtError(where, f"weights do not fit the model configuration it describes ({'; '.join(parts)})")


def model_from_checkpoint(state: dict, where: str | Path = "checkpoint") -> tuple[GSMT, Config, dict]:
    """Rebuild the model of a checkpoint with its weights (EMA weights when the run kept them)."""
    cfg = check_state(state, where)
    meta = state["meta"]
    weights = with_feature_stats(state.get("ema_model") or state["model"], meta["feature_dim"])
    _fit_on_meta_device(cfg, meta, weights, where)
    model = build_model(cfg, meta["num_classes"], meta["feature_dim"])
    try:
        model.load_state_dict(weights)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise GsmtError(where, f"weights do not fit the model configuration it describes ({first})") from None
    model.eval()
    return model, cfg, meta
