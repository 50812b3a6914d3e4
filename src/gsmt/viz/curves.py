"""Training curves from a run's log.jsonl."""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from gsmt.errors import GsmtError
from gsmt.io.read import decode_utf8, read_capped
from gsmt.viz.common import (
    DPI,
    save_figure,
)


def read_jsonl(path: str | Path) -> list[dict]:
    """The dict records of a JSON-lines file; blank lines are skipped."""
    path = Path(path)
    try:
        text = decode_utf8(read_capped(path), path)  # bounded: `--log /dev/zero` is refused
    except GsmtError as exc:
        raise GsmtError(path, f"cannot read run log ({exc.problem})") from None
    lines = text.splitlines()
    records = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except (json.JSONDecodeError, RecursionError):
            # a run killed mid-write leaves a torn last line; anything earlier is corruption
            if n == len(lines):
                continue
            raise GsmtError(path, f"line {n} is not JSON") from None
        if isinstance(rec, dict):
            records.append(rec)
    return records


def _number(x: Any) -> float | None:
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return None
    return float(x) if math.isfinite(x) else None


def epoch_series(records: list[dict], key: str, split: str | None) -> tuple[np.ndarray, np.ndarray]:
    """Mean of `key` per epoch over records of `split` ("train" also takes records without one)."""
    per_epoch: dict[float, list[float]] = defaultdict(list)
    for rec in records:
        epoch, value = _number(rec.get("epoch")), _number(rec.get(key))
        rec_split = rec.get("split")
        if split == "train" and rec_split not in (None, "train"):
            continue
        if split == "val" and rec_split != "val":
            continue
        if epoch is not None and value is not None:
            per_epoch[epoch].append(value)
    epochs = np.array(sorted(per_epoch), dtype=np.float64)
    return epochs, np.array([np.mean(per_epoch[e]) for e in epochs], dtype=np.float64)


def _first_series(records: list[dict], options: list[tuple[str, str | None]]):
    for key, split in options:
        e, v = epoch_series(records, key, split)
        if len(e):
            return e, v
    return np.zeros(0), np.zeros(0)


def curves_figure(records: list[dict], log_path: str | Path = "run log") -> Figure:
    """Loss curves per epoch and, when logged, validation mAP in a second panel."""
    train = epoch_series(records, "loss", "train")
    val = _first_series(records, [("val_loss", None), ("loss", "val")])
    parts = sorted({k for r in records if r.get("split") in (None, "train")
                    for k in r if k.startswith("loss_")})
    part_series = [(k, *epoch_series(records, k, "train")) for k in parts]
    part_series = [p for p in part_series if len(p[1])]
    mAP = _first_series(records, [("val_mAP", None), ("val_average_mAP", None),
                                  ("mAP", "val"), ("average_mAP", "val")])
    if not (len(train[0]) or len(val[0]) or len(mAP[0]) or part_series):
        raise GsmtError(log_path, "no epochs logged")

    with_map = len(mAP[0]) > 0
    fig = Figure(figsize=(10.0, 4.0), dpi=DPI, layout="constrained")
    axes = fig.subplots(1, 2 if with_map else 1, squeeze=False)[0]
    ax = axes[0]
    if len(train[0]):
        ax.plot(*train, "o-", color="tab:blue", markersize=3, linewidth=1.8, label="train loss")
    part_colors = ["tab:cyan", "tab:purple", "tab:olive", "tab:brown", "tab:orange", "tab:pink", "tab:gray", "black"]
    for (key, e, v), color in zip(part_series, part_colors * 2):
        ax.plot(e, v, "--", color=color, linewidth=1.0, label=f"train {key}")
    if len(val[0]):
        ax.plot(*val, "s-", color="tab:red", markersize=3, linewidth=1.8, label="val loss")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.set_title("loss")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)

    if with_map:
        ax = axes[1]
        e, v = mAP
        ax.plot(e, v, "o-", color="tab:green", markersize=3, linewidth=1.8, label="val mAP")
        best = int(np.argmax(v))
        ax.plot([e[best]], [v[best]], "*", color="tab:green", markersize=12,
                label=f"best {v[best]:.4g} (epoch {e[best]:g})")
        ax.set_xlabel("epoch")
        ax.set_ylabel("mAP")
        ax.set_title("validation mAP")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    for ax in axes:
        ax.xaxis.get_major_locator().set_params(integer=True)
    return fig


def plot_curves(out_path: str | Path, log_path: str | Path) -> Path:
    """Write training and validation curves from a JSON-lines run log."""
    return save_figure(curves_figure(read_jsonl(log_path), log_path), out_path)
