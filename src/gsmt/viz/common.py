"""Shared by every picture: atomic figure files, class colours, argument checks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import ListedColormap, to_rgba
from matplotlib.figure import Figure

from gsmt.errors import GsmtError
from gsmt.io.write import atomic_path

DPI = 120
_FORMATS = {".png": "png", ".pdf": "pdf", ".svg": "svg"}
_GT_ROW_LABEL = "ground truth"


def save_figure(fig: Figure, out_path: str | Path, *, dpi: int = DPI) -> Path:
    """Write `fig` to `out_path` atomically (`gsmt.io.write.atomic_path`)."""
    out = Path(out_path)  # atomic_path makes the folder: a failure there is one line too
    fmt = _FORMATS.get(out.suffix.lower(), "png")
    FigureCanvasAgg(fig)  # attaches the canvas; Figure() alone has no renderer
    with atomic_path(out) as tmp, open(tmp, "wb") as fh:
        fig.savefig(fh, format=fmt, dpi=dpi)
    return out


def class_colors(label_ids: np.ndarray, num_classes: int) -> dict[int, tuple]:
    """A colour per class id: fixed by id up to 20 classes, else by rank among `label_ids`.

    With up to 20 classes every figure uses the same colour for a class; beyond that a
    qualitative map cannot keep ids apart, so the classes present in this figure get distinct
    colours instead (collisions only past 20 classes in one figure).
    """
    ids = sorted({int(i) for i in np.asarray(label_ids).ravel()})
    if num_classes <= 10:
        cmap, slot = _qualitative("tab10"), {i: i for i in ids}
    elif num_classes <= 20:
        cmap, slot = _qualitative("tab20"), {i: i for i in ids}
    else:
        cmap, slot = _qualitative("tab20"), {i: r for r, i in enumerate(ids)}
    n = len(cmap.colors)
    return {i: to_rgba(cmap.colors[slot[i] % n]) for i in ids}


def _qualitative(name: str) -> ListedColormap:
    cmap = colormaps[name]
    return cmap if isinstance(cmap, ListedColormap) else ListedColormap(cmap(np.linspace(0, 1, 20)))


def _class_name(label: int, classes: list[str]) -> str:
    return classes[label] if 0 <= label < len(classes) else f"class {label}"


def _as_segments(x: Any, where: str, what: str) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.size == 0:
        return arr.reshape(0, 2)
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise GsmtError(where, f"{what} must have shape [N, 2], got {list(arr.shape)}")
    return arr


def _as_vector(x: Any, n: int, where: str, what: str, dtype: Any) -> np.ndarray:
    arr = np.asarray(x, dtype=dtype).reshape(-1)
    if arr.shape[0] != n:
        raise GsmtError(where, f"{what} has {arr.shape[0]} entries for {n} segments")
    return arr
