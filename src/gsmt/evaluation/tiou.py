"""tIoU: the threshold presets, `parse_tiou` (a preset name, a comma list or numbers), the tIoU of
two segments with the official arithmetic, and the tIoU set an annotation file records."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from gsmt.errors import GsmtError

if TYPE_CHECKING:
    from gsmt.annotations.types import Annotations

TIOU_PRESETS: dict[str, np.ndarray] = {
    # linspace, not arange: arange differs in the last bit and flips matches sitting on a threshold.
    "anet": np.linspace(0.5, 0.95, 10),
    "thumos": np.linspace(0.3, 0.7, 5),
    "epic": np.linspace(0.1, 0.5, 5),
    # MultiTHUMOS detection, 0.1:0.1:0.9 as its evaluators write it: the decimals 0.1, 0.2, ... (the
    # same doubles as the comma list; linspace would give 0.30000000000000004 and 0.7000000000000001).
    "multithumos": np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]),
}


def parse_tiou(spec: str | Sequence[float] | np.ndarray) -> np.ndarray:
    """tIoU thresholds from a preset name (`anet`, `thumos`, `epic`, `multithumos`), `"0.3,0.5"` or
    a sequence."""
    if isinstance(spec, str):
        key = spec.strip().lower()
        if key in TIOU_PRESETS:
            return TIOU_PRESETS[key].copy()
        try:
            values = [float(x) for x in key.split(",") if x.strip()]
        except ValueError:
            raise GsmtError("tiou", f"{spec!r} is neither a preset ({', '.join(TIOU_PRESETS)}) "
                                    "nor a comma-separated list of numbers") from None
    else:
        values = [float(x) for x in np.asarray(spec, dtype=np.float64).ravel()]
    if not values:
        raise GsmtError("tiou", "no tIoU threshold given")
    if not all(math.isfinite(v) and 0.0 <= v <= 1.0 for v in values):
        raise GsmtError("tiou", f"thresholds must lie in [0, 1], got {values}")
    return np.asarray(values, dtype=np.float64)


def segment_tiou(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """tIoU with the official arithmetic, broadcasting `pred[..., 2]` against `gt[..., 2]`.

    intersection = clip(min(ends) - max(starts), 0); union = len_gt + len_pred - intersection;
    0/0 gives NaN exactly as the official `segment_iou` does.
    """
    tt1 = np.maximum(pred[..., 0], gt[..., 0])
    tt2 = np.minimum(pred[..., 1], gt[..., 1])
    inter = (tt2 - tt1).clip(0)
    union = (gt[..., 1] - gt[..., 0]) + (pred[..., 1] - pred[..., 0]) - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return inter / union


def meta_tiou(annotations: Annotations):
    """The tIoU set an annotation file's `gsmt` meta records (None when it records none); a value
    `parse_tiou` refuses is an error naming the annotation file, not the `--tiou` option."""
    value = (annotations.meta or {}).get("tiou")
    if value is None or value == "auto":
        return None
    try:
        parse_tiou(value)
    except GsmtError as exc:
        raise GsmtError(annotations.source or "annotations", f"field 'gsmt.tiou': {exc.problem}") from None
    except (TypeError, ValueError):
        raise GsmtError(annotations.source or "annotations", f"field 'gsmt.tiou': not a tIoU set ({value!r:.60})") from None
    return value
