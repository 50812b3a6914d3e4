"""Per-snippet video features from disk: one file per video (.npy/.npz/.pt/.csv) or one .h5 keyed by video id.

Every reader returns float32 `[T, D]` (rows are snippets). Layout resolution for `layout="auto"`,
in order:
1. `feature_dim` given: the axis of that size is D (both axes of that size: error, pass `layout`;
   neither: error, the dimension differs);
2. else `expected_length` given and exactly one axis has that size: that axis is T;
3. else rows are snippets (`[T, D]`, the usual on-disk form) unless the array is square, which
   cannot be resolved without a hint (error).
"""

from __future__ import annotations

import os
import pickle
import warnings
import zipfile
from pathlib import Path

import numpy as np

from gsmt.data.annotations import check_video_id
from gsmt.errors import GsmtError

FILE_SUFFIXES = (".npy", ".npz", ".pt", ".csv")
H5_SUFFIXES = (".h5", ".hdf5")
LAYOUTS = ("auto", "TD", "DT")
_ARRAY_KEYS = ("feats", "features")
_FLOATS = (np.float16, np.float32, np.float64)


def _resolve_layout(shape: tuple[int, int], where: str | Path, layout: str, feature_dim: int | None,
                    expected_length: int | None) -> str:
    if layout not in LAYOUTS:
        raise GsmtError(where, f"unknown feature layout {layout!r} (use one of {', '.join(LAYOUTS)})")
    if layout != "auto":
        return layout
    rows, cols = shape
    if feature_dim is not None:
        if rows == feature_dim and cols == feature_dim:
            raise GsmtError(where, f"cannot resolve layout, pass layout (shape {rows}x{cols}, both axes equal feature_dim)")
        if cols == feature_dim:
            return "TD"
        if rows == feature_dim:
            return "DT"
        raise GsmtError(where, f"feature dimension differs: shape {rows}x{cols}, expected feature_dim {feature_dim}")
    if expected_length is not None and (rows == expected_length) != (cols == expected_length):
        return "TD" if rows == expected_length else "DT"
    if rows == cols:
        raise GsmtError(where, f"cannot resolve layout, pass layout (square {rows}x{cols} array)")
    return "TD"


def to_snippet_matrix(array: np.ndarray, where: str | Path, *, layout: str = "auto",
                      feature_dim: int | None = None, expected_length: int | None = None) -> np.ndarray:
    """Validate a loaded array and return it as float32 `[T, D]` (see the module docstring for `auto`)."""
    array = np.asarray(array)
    if array.ndim != 2:
        raise GsmtError(where, f"features must be 2-D [T, D] or [D, T], got shape {tuple(array.shape)}")
    if array.dtype.type not in _FLOATS:
        raise GsmtError(where, f"features must be float16/32/64, got {array.dtype}")
    resolved = _resolve_layout(array.shape, where, layout, feature_dim, expected_length)
    feats = array.T if resolved == "DT" else array
    if feature_dim is not None and feats.shape[1] != feature_dim:
        raise GsmtError(where, f"feature dimension {feats.shape[1]} differs from expected {feature_dim}")
    # float64 values beyond float32's range become inf here, which is just as unusable.
    with np.errstate(over="ignore"):
        feats = np.ascontiguousarray(feats, dtype=np.float32)
    if not np.isfinite(feats).all():
        raise GsmtError(where, "contains NaN/Inf")
    return feats


def _load_npz(path: Path) -> np.ndarray:
    with np.load(path, allow_pickle=False) as z:
        keys = list(z.files)
        if not keys:
            raise GsmtError(path, "empty .npz file (no arrays)")
        key = next((k for k in _ARRAY_KEYS if k in keys), keys[0])
        return z[key]


def _load_pt(path: Path) -> np.ndarray:
    import torch

    with warnings.catch_warnings():  # torch's multi-line pickle-protocol warning; errors stay one line
        warnings.simplefilter("ignore")
        obj = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(obj, dict):
        obj = next((obj[k] for k in _ARRAY_KEYS if k in obj), obj)
    if not isinstance(obj, torch.Tensor):
        raise GsmtError(path, f"a .pt feature file must hold a tensor, got {type(obj).__name__}")
    if not obj.is_floating_point():
        raise GsmtError(path, f"features must be float16/32/64, got {obj.dtype}")
    return obj.detach().to(torch.float64 if obj.dtype == torch.float64 else torch.float32).numpy()


def _load_csv(path: Path) -> np.ndarray:
    with open(path, encoding="utf-8") as f:
        first = f.readline()
        try:
            [float(x) for x in first.split(",")]
            skip = 0
        except ValueError:
            skip = 1  # a header row such as f0,f1,...
    ncols = len(first.split(",")) if first.strip() else 0
    rows = np.loadtxt(path, delimiter=",", skiprows=skip, dtype=np.float64, ndmin=2)
    if rows.size == 0:
        return np.zeros((0, ncols), dtype=np.float64)
    return rows


def _first_line(exc: BaseException) -> str:
    """`Type: message` cut to its first line: errors are reported on one line."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


_LOADERS = {".npy": lambda p: np.load(p, allow_pickle=False), ".npz": _load_npz, ".pt": _load_pt, ".csv": _load_csv}


def read_features(path: str | Path, *, layout: str = "auto", feature_dim: int | None = None,
                  expected_length: int | None = None) -> np.ndarray:
    """Read one video's features as float32 `[T, D]` from .npy, .npz, .pt or .csv (header row allowed).

    `.npz`: key `feats`, else `features`, else the first array. `.pt`: a tensor (weights_only load).
    Layout `"TD"`, `"DT"` or `"auto"` (rule in the module docstring). Any unreadable, corrupt,
    non-2-D, non-float or non-finite input raises `GsmtError(path, ...)`.
    """
    path = Path(path)
    loader = _LOADERS.get(path.suffix.lower())
    if loader is None:
        raise GsmtError(path, f"unsupported feature file type {path.suffix!r} (use .npy, .npz, .pt, .csv or one .h5)")
    if not path.is_file():
        raise GsmtError(path, "feature file not found")
    try:
        array = loader(path)
    except GsmtError:
        raise
    except pickle.UnpicklingError:
        # torch's message is a page of advice to load the file unsafely: not what a user should read.
        raise GsmtError(path, "refused: not a plain tensor file, corrupt or holding other objects") from None
    except (OSError, ValueError, EOFError, RuntimeError, zipfile.BadZipFile, UnicodeDecodeError, KeyError) as exc:
        raise GsmtError(path, f"cannot read features, truncated or corrupt file ({_first_line(exc)})") from None
    except Exception as exc:  # torch's unpickler raises a variety of types on hostile or corrupt input
        raise GsmtError(path, f"cannot read features, corrupt file ({_first_line(exc)})") from None
    return to_snippet_matrix(array, path, layout=layout, feature_dim=feature_dim, expected_length=expected_length)


class FeatureStore:
    """Lazy access to a folder of `<video_id>.<ext>` files or one `.h5` file with one dataset per video id.

    Nothing is read before `load`. The first loaded file fixes `feature_dim` unless it is given, and
    later files must match it. The .h5 handle is opened on first use and re-opened in each process,
    so a store can be handed to DataLoader workers.
    """

    def __init__(self, root: str | Path, *, layout: str = "auto", feature_dim: int | None = None,
                 suffix: str | None = None):
        self.root = Path(root)
        if layout not in LAYOUTS:
            raise GsmtError(self.root, f"unknown feature layout {layout!r} (use one of {', '.join(LAYOUTS)})")
        self.layout = layout
        self._feature_dim = feature_dim
        if not self.root.exists():
            raise GsmtError(self.root, "feature path not found")
        self.is_h5 = self.root.is_file()
        if self.is_h5 and self.root.suffix.lower() not in H5_SUFFIXES:
            raise GsmtError(self.root, "features must be a folder of per-video files or one .h5 file")
        if suffix is not None:
            suffix = suffix if suffix.startswith(".") else "." + suffix
            if suffix.lower() not in FILE_SUFFIXES:
                raise GsmtError(self.root, f"unsupported feature suffix {suffix!r} (use {', '.join(FILE_SUFFIXES)})")
        self.suffix = suffix
        self._names: set[str] | None = None
        self._h5 = None
        self._h5_pid: int | None = None

    @property
    def feature_dim(self) -> int | None:
        """D: given at construction or taken from the first loaded file (None before that)."""
        return self._feature_dim

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_h5"], state["_h5_pid"] = None, None  # h5py handles do not cross processes
        return state

    def _h5_file(self):
        if self._h5 is None or self._h5_pid != os.getpid():
            import h5py

            try:
                self._h5 = h5py.File(self.root, "r")
            except OSError as exc:
                raise GsmtError(self.root, "cannot open .h5 features, truncated or corrupt file "
                                           f"({_first_line(exc)})") from None
            self._h5_pid = os.getpid()
        return self._h5

    def _file_names(self) -> set[str]:
        if self._names is None:
            self._names = set(os.listdir(self.root))
        return self._names

    def path(self, video_id: str) -> Path | None:
        """The feature file of `video_id` in the folder, or None when there is none."""
        vid = check_video_id(video_id, self.root)
        names = self._file_names()
        for suffix in (self.suffix,) if self.suffix else FILE_SUFFIXES:
            if vid + suffix in names:
                return self.root / (vid + suffix)
        return None

    def missing(self, ids) -> list[str]:
        """The ids (in the given order) that have no features in the store."""
        if self.is_h5:
            f = self._h5_file()
            return [vid for vid in ids if check_video_id(vid, self.root) not in f]
        return [vid for vid in ids if self.path(vid) is None]

    def load(self, video_id: str, *, expected_length: int | None = None) -> np.ndarray:
        """float32 `[T, D]` features of one video; a missing video is a GsmtError."""
        vid = check_video_id(video_id, self.root)
        if self.is_h5:
            f = self._h5_file()
            where = f"{self.root}[{vid}]"
            if vid not in f:
                raise GsmtError(where, "no features for this video")
            node = f[vid]
            if not hasattr(node, "shape"):
                raise GsmtError(where, "expected a dataset, found a group")
            try:
                array = node[()]
            except (OSError, ValueError, TypeError) as exc:
                raise GsmtError(where, f"cannot read features, truncated or corrupt ({_first_line(exc)})") from None
            feats = to_snippet_matrix(array, where, layout=self.layout, feature_dim=self._feature_dim,
                                      expected_length=expected_length)
        else:
            path = self.path(vid)
            if path is None:
                tried = (self.suffix,) if self.suffix else FILE_SUFFIXES
                raise GsmtError(self.root / vid, f"no feature file for this video (tried {', '.join(tried)})")
            feats = read_features(path, layout=self.layout, feature_dim=self._feature_dim,
                                  expected_length=expected_length)
        if self._feature_dim is None:
            self._feature_dim = int(feats.shape[1])
        return feats
