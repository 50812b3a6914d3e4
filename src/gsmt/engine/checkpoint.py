"""Self-describing checkpoints: weights plus everything prediction needs (DESIGN.md section 10)."""

from __future__ import annotations

import io
import pickle
import warnings
from pathlib import Path

import torch

from gsmt import __version__
from gsmt.config import Config, config_from_dict
from gsmt.errors import GsmtError
from gsmt.io import atomic_write_bytes
from gsmt.model import GSMT

FORMAT = "gsmt-checkpoint-1"


def model_meta(cfg: Config, classes: list[str], feature_dim: int) -> dict:
    """What a checkpoint must carry so that prediction needs nothing else."""
    return {
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
    return path


def load_checkpoint(path: str | Path) -> dict:
    """Load safely (`weights_only=True`: no code runs from the file) and check it is ours."""
    path = resolve_checkpoint(path)
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
    if not isinstance(state, dict) or state.get("meta", {}).get("format") != FORMAT:
        raise GsmtError(path, "not a gsmt checkpoint")
    return state


def model_from_checkpoint(state: dict, where: str | Path = "checkpoint") -> tuple[GSMT, Config, dict]:
    """Rebuild the model of a checkpoint with its weights (EMA weights when the run kept them)."""
    meta = state["meta"]
    cfg = config_from_dict(meta["config"], str(where))
    model = build_model(cfg, meta["num_classes"], meta["feature_dim"])
    weights = state.get("ema_model") or state["model"]
    try:
        model.load_state_dict(weights)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise GsmtError(where, f"weights do not fit the model configuration it describes ({first})") from None
    model.eval()
    return model, cfg, meta
