"""Per-snippet video features from disk: one file per video (.npy/.npz/.pt/.csv) or one .h5 keyed by video id.

Every reader returns float32 `[T, D]` (rows are snippets). Layout resolution for `layout="auto"`,
in order:
1. `feature_dim` given: the axis of that size is D (both axes of that size: error, pass `layout`;
   neither: error, the dimension differs);
2. else `expected_length` given and exactly one axis has that size: that axis is T;
3. else rows are snippets (`[T, D]`, the usual on-disk form) unless the array is square, which
   cannot be resolved without a hint (error).

A `FeatureStore` treats the layout as a property of the dataset: a square file (a video of D
snippets, e.g. 128 x 128) takes the layout of the dataset's unambiguous files (the first one in
name order, so every process decides alike); only a dataset whose files are all square needs
`layout` (`data.feature_layout`).

Hostile files: a path that is not a regular file (a device such as `/dev/zero`, a FIFO) is
refused; an `.h5` entry that is a soft or external link, or a dataset stored in external files or
mapped from other files (virtual), is refused before it is read; an array larger than
`MAX_FEATURE_BYTES` is refused before it is loaded (.npy, .npz members, .h5 datasets).
"""

from __future__ import annotations

import os
import pickle
import stat
import warnings
import zipfile
from pathlib import Path

import numpy as np

from gsmt.annotations.types import check_video_id
from gsmt.errors import GsmtError
from gsmt.schema import FEATURE_LAYOUTS

FILE_SUFFIXES = (".npy", ".npz", ".pt", ".csv")
H5_SUFFIXES = (".h5", ".hdf5")
_ARRAY_KEYS = ("feats", "features")
_FLOATS = (np.float16, np.float32, np.float64)
MAX_FEATURE_BYTES = 1 << 34  # 16 GiB: one video's features; a larger declared array is refused unread


def is_ambiguous(shape: tuple[int, ...], feature_dim: int | None, expected_length: int | None = None) -> bool:
    """Whether `auto` cannot resolve this 2-D shape's layout by itself (see the module docstring)."""
    if len(shape) != 2:
        return False
    rows, cols = shape
    if feature_dim is not None:
        return rows == cols == feature_dim
    if expected_length is not None and (rows == expected_length) != (cols == expected_length):
        return False
    return rows == cols


def _check_size(shape, itemsize: int, where: str | Path) -> None:
    n = int(np.prod([int(d) for d in shape], dtype=object)) * int(itemsize)
    if n > MAX_FEATURE_BYTES:
        raise GsmtError(where, f"an array of shape {tuple(int(d) for d in shape)} ({n / (1 << 30):.3g} GiB) is "
                               f"larger than {MAX_FEATURE_BYTES / (1 << 30):g} GiB, refused unread")


def _npy_shape(path: Path) -> tuple[tuple[int, ...], int]:
    """(shape, itemsize) from a .npy header, without reading the data; a header that declares more
    data than the file holds is refused here (NumPy would allocate the declared size first)."""
    fmt = np.lib.format
    with open(path, "rb") as fh:
        version = fmt.read_magic(fh)
        read = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
        shape, _, dtype = read(fh)
        data_start = fh.tell()
    size = os.stat(path).st_size
    declared = int(np.prod([int(d) for d in shape], dtype=object)) * int(dtype.itemsize)
    if dtype.hasobject:
        raise GsmtError(path, "refused: the array holds Python objects, not numbers")
    if declared > size - data_start:
        raise GsmtError(path, f"cannot read features, truncated or corrupt file (the header declares "
                              f"shape {tuple(shape)}, {declared} bytes, the file holds {size - data_start})")
    return tuple(shape), dtype.itemsize


def resolve_layout(shape: tuple[int, int], where: str | Path, layout: str, feature_dim: int | None,
                    expected_length: int | None) -> str:
    """`TD` or `DT` for an array of this shape: the given layout checked, or `auto` decided."""
    if layout not in FEATURE_LAYOUTS:
        raise GsmtError(where, f"unknown feature layout {layout!r} (use one of {', '.join(FEATURE_LAYOUTS)})")
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
    resolved = resolve_layout(array.shape, where, layout, feature_dim, expected_length)
    feats = array.T if resolved == "DT" else array
    if feature_dim is not None and feats.shape[1] != feature_dim:
        raise GsmtError(where, f"feature dimension {feats.shape[1]} differs from expected {feature_dim}")
    # float64 values beyond float32's range become inf here, which is just as unusable.
    with np.errstate(over="ignore"):
        feats = np.ascontiguousarray(feats, dtype=np.float32)
    if not np.isfinite(feats).all():
        raise GsmtError(where, "contains NaN/Inf")
    return feats


def _load_npy(path: Path) -> np.ndarray:
    shape, itemsize = _npy_shape(path)
    _check_size(shape, itemsize, path)
    return np.load(path, allow_pickle=False)


def _load_npz(path: Path) -> np.ndarray:
    with np.load(path, allow_pickle=False) as z:
        keys = list(z.files)
        if not keys:
            raise GsmtError(path, "empty .npz file (no arrays)")
        key = next((k for k in _ARRAY_KEYS if k in keys), keys[0])
        # The member's size as the archive declares it (reading stops there): a zip bomb is refused unread.
        info = z.zip.getinfo(key + ".npy") if key + ".npy" in z.zip.namelist() else None
        if info is not None and info.file_size > MAX_FEATURE_BYTES:
            raise GsmtError(path, f"array '{key}' is larger than {MAX_FEATURE_BYTES / (1 << 30):g} GiB "
                                  "uncompressed, refused unread")
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


_LOADERS = {".npy": _load_npy, ".npz": _load_npz, ".pt": _load_pt, ".csv": _load_csv}


def _check_regular(path: Path) -> None:
    """A feature file must be a regular file: a device (`/dev/zero`) or a FIFO never ends."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise GsmtError(path, "feature file not found") from None
    except OSError as exc:
        raise GsmtError(path, f"cannot read features ({exc.strerror or exc})") from None
    if not stat.S_ISREG(st.st_mode):
        kind = "a folder" if stat.S_ISDIR(st.st_mode) else "a device, a pipe or a socket"
        raise GsmtError(path, f"not a regular file ({kind}), refused")
    if st.st_size > MAX_FEATURE_BYTES and path.suffix.lower() in (".pt", ".csv"):
        raise GsmtError(path, f"larger than {MAX_FEATURE_BYTES / (1 << 30):g} GiB, refused unread")


def read_array(path: Path) -> np.ndarray:
    """The array a feature file holds, as stored (before the layout rule)."""
    loader = _LOADERS.get(path.suffix.lower())
    if loader is None:
        raise GsmtError(path, f"unsupported feature file type {path.suffix!r} (use .npy, .npz, .pt, .csv or one .h5)")
    _check_regular(path)
    try:
        return loader(path)
    except GsmtError:
        raise
    except pickle.UnpicklingError:
        # torch's message is a page of advice to load the file unsafely: not what a user should read.
        raise GsmtError(path, "refused: not a plain tensor file, corrupt or holding other objects") from None
    except (OSError, ValueError, EOFError, RuntimeError, zipfile.BadZipFile, UnicodeDecodeError, KeyError) as exc:
        raise GsmtError(path, f"cannot read features, truncated or corrupt file ({_first_line(exc)})") from None
    except Exception as exc:  # torch's unpickler raises a variety of types on hostile or corrupt input
        raise GsmtError(path, f"cannot read features, corrupt file ({_first_line(exc)})") from None


def read_features(path: str | Path, *, layout: str = "auto", feature_dim: int | None = None,
                  expected_length: int | None = None) -> np.ndarray:
    """Read one video's features as float32 `[T, D]` from .npy, .npz, .pt or .csv (header row allowed).

    `.npz`: key `feats`, else `features`, else the first array. `.pt`: a tensor (weights_only load).
    Layout `"TD"`, `"DT"` or `"auto"` (rule in the module docstring). Any unreadable, corrupt,
    non-2-D, non-float or non-finite input raises `GsmtError(path, ...)`.
    """
    path = Path(path)
    array = read_array(path)
    return to_snippet_matrix(array, path, layout=layout, feature_dim=feature_dim, expected_length=expected_length)


STAMP_BYTES = 4096  # FeatureStore.stamp: bytes read at each end of a feature file


class FeatureStore:
    """Lazy access to a folder of `<video_id>.<ext>` files or one `.h5` file with one dataset per video id.

    Nothing is read before `load`. The first loaded file fixes `feature_dim` unless it is given, and
    later files must match it. With `layout="auto"` a square file takes the dataset's layout, decided
    once from its first unambiguous file in name order (module docstring). The .h5 handle is opened
    on first use and re-opened in each process, so a store can be handed to DataLoader workers.
    """

    def __init__(self, root: str | Path, *, layout: str = "auto", feature_dim: int | None = None,
                 suffix: str | None = None):
        self.root = Path(root)
        if layout not in FEATURE_LAYOUTS:
            raise GsmtError(self.root, f"unknown feature layout {layout!r} (use one of {', '.join(FEATURE_LAYOUTS)})")
        self.layout = layout
        self._feature_dim = feature_dim
        try:
            mode = os.stat(self.root).st_mode
        except OSError:
            raise GsmtError(self.root, "feature path not found") from None
        if not (stat.S_ISDIR(mode) or stat.S_ISREG(mode)):
            raise GsmtError(self.root, "features must be a folder of per-video files or one .h5 file "
                                       "(this is a device, a pipe or a socket)")
        self.is_h5 = stat.S_ISREG(mode)
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
        self._dataset_layout: str | None = None  # decided for square files; "" when every file is square

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

    def _h5_dataset(self, vid: str):
        """The .h5 dataset of `vid`, refused when it is a link or reads other files (before any read)."""
        import h5py

        f = self._h5_file()
        where = f"{self.root}[{vid}]"
        try:
            link = f.get(vid, getlink=True)
        except (OSError, ValueError, KeyError) as exc:
            raise GsmtError(where, f"cannot read features, truncated or corrupt ({_first_line(exc)})") from None
        if link is None:
            raise GsmtError(where, "no features for this video")
        if isinstance(link, (h5py.SoftLink, h5py.ExternalLink)):
            kind = "an external link" if isinstance(link, h5py.ExternalLink) else "a soft link"
            raise GsmtError(where, f"the entry is {kind}, refused: store the features themselves in the file")
        try:
            node = f.get(vid)
        except (OSError, ValueError, KeyError) as exc:
            raise GsmtError(where, f"cannot read features, truncated or corrupt ({_first_line(exc)})") from None
        if not isinstance(node, h5py.Dataset):
            raise GsmtError(where, "expected a dataset, found a group")
        if node.external or node.is_virtual:
            raise GsmtError(where, "the dataset's data lies in other files (external storage or a virtual "
                                   "dataset), refused: store the features themselves in the file")
        return node, where

    def _file_names(self) -> set[str]:
        if self._names is None:
            try:
                self._names = set(os.listdir(self.root))
            except OSError as exc:
                raise GsmtError(self.root, f"cannot list the feature folder ({exc.strerror or exc})") from None
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
        """The ids (in the given order) that have no features in the store (a link counts as present:
        `load` refuses it by name)."""
        if self.is_h5:
            f = self._h5_file()
            return [vid for vid in ids if f.get(check_video_id(vid, self.root), getlink=True) is None]
        return [vid for vid in ids if self.path(vid) is None]

    def _raw(self, vid: str) -> tuple[np.ndarray, str | Path]:
        """The array of `vid` as stored (before the layout rule) and the name errors give it."""
        if self.is_h5:
            node, where = self._h5_dataset(vid)
            if node.ndim != 2:
                raise GsmtError(where, f"features must be 2-D [T, D] or [D, T], got shape {tuple(node.shape)}")
            _check_size(node.shape, node.dtype.itemsize, where)
            try:
                return node[()], where
            except (OSError, ValueError, TypeError) as exc:
                raise GsmtError(where, f"cannot read features, truncated or corrupt ({_first_line(exc)})") from None
        path = self.path(vid)
        if path is None:
            tried = (self.suffix,) if self.suffix else FILE_SUFFIXES
            raise GsmtError(self.root / vid, f"no feature file for this video (tried {', '.join(tried)})")
        return read_array(path), path

    def _shape(self, vid: str, *, cheap: bool = False) -> tuple[int, ...] | None:
        """The stored shape of `vid`'s array; `cheap`: only when it costs no data read (.h5, .npy)."""
        if self.is_h5:
            return tuple(self._h5_dataset(vid)[0].shape)
        path = self.path(vid)
        if path is None:
            return None
        if path.suffix.lower() == ".npy":
            _check_regular(path)
            try:
                return _npy_shape(path)[0]
            except GsmtError:
                raise
            except (OSError, ValueError, EOFError) as exc:
                raise GsmtError(path, f"cannot read features, truncated or corrupt file ({_first_line(exc)})") from None
        return None if cheap else tuple(read_array(path).shape)

    def _ids(self) -> list[str]:
        if self.is_h5:
            return sorted(self._h5_file().keys())
        suffixes = (self.suffix,) if self.suffix else FILE_SUFFIXES
        return sorted({n[: -len(sfx)] for n in self._file_names() for sfx in suffixes
                       if n.endswith(sfx) and len(n) > len(sfx)})

    def _decide_layout(self) -> str:
        """The dataset's layout: that of its first unambiguous file in name order ("" when none is)."""
        if self._dataset_layout is None:
            self._dataset_layout = ""
            for vid in self._ids():
                try:
                    check_video_id(vid, self.root)
                    shape = self._shape(vid)
                    if shape is None or len(shape) != 2 or is_ambiguous(shape, self._feature_dim):
                        continue
                    self._dataset_layout = resolve_layout(shape, self.root, "auto", self._feature_dim, None)
                    break
                except GsmtError:
                    continue  # an unreadable file says nothing about the layout; loading it will tell
        return self._dataset_layout

    def stamp(self, video_id: str) -> bytes:
        """A cheap, telling fingerprint of `video_id`'s stored features, no whole read: a file's name,
        size and its first and last `STAMP_BYTES` bytes; an .h5 entry's shape, type and first and
        last rows. Another file under the name (regenerated features of the same shape) changes it;
        a copy of the folder does not (no modification time). A video without features stamps empty."""
        vid = check_video_id(video_id, self.root)
        if self.is_h5:
            node, where = self._h5_dataset(vid)
            head = f"{vid}:{tuple(node.shape)}:{node.dtype}:".encode()
            try:
                rows = [np.asarray(node[0]), np.asarray(node[-1])] if node.shape and node.shape[0] else []
            except (OSError, ValueError, TypeError) as exc:
                raise GsmtError(where, f"cannot read features, truncated or corrupt ({_first_line(exc)})") from None
            return head + b"".join(r.tobytes() for r in rows)
        path = self.path(vid)
        if path is None:
            return b""
        _check_regular(path)
        try:
            size = os.stat(path).st_size
            with open(path, "rb") as fh:
                first = fh.read(STAMP_BYTES)
                fh.seek(max(0, size - STAMP_BYTES))
                last = fh.read(STAMP_BYTES)
        except OSError as exc:
            raise GsmtError(path, f"cannot read features ({exc.strerror or exc})") from None
        return f"{path.name}:{size}:".encode() + first + last

    def num_snippets(self, video_id: str) -> int | None:
        """T of `video_id` when it costs no data read (.npy header, .h5 shape), else None."""
        try:
            vid = check_video_id(video_id, self.root)
            shape = self._shape(vid, cheap=True)
            if shape is None or len(shape) != 2:
                return None
            if shape[0] == shape[1]:
                return int(shape[0])
            layout = resolve_layout(shape, self.root, self.layout, self._feature_dim, None)
        except GsmtError:
            return None
        return int(shape[1] if layout == "DT" else shape[0])

    def load(self, video_id: str, *, expected_length: int | None = None) -> np.ndarray:
        """float32 `[T, D]` features of one video; a missing video is a GsmtError."""
        vid = check_video_id(video_id, self.root)
        array, where = self._raw(vid)
        layout = self.layout
        if layout == "auto" and is_ambiguous(np.shape(array), self._feature_dim, expected_length):
            layout = self._decide_layout()
            if not layout:
                rows, cols = np.shape(array)
                raise GsmtError(where, f"cannot resolve layout, pass layout (square {rows}x{cols} array, and no "
                                       "feature file of this dataset has unequal axes to decide [T, D] or "
                                       "[D, T]: set data.feature_layout to TD or DT)")
        feats = to_snippet_matrix(array, where, layout=layout, feature_dim=self._feature_dim,
                                  expected_length=expected_length)
        if self._feature_dim is None:
            self._feature_dim = int(feats.shape[1])
        return feats
