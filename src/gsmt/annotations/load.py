"""Temporal annotations: the in-memory form every reader produces.

Readers for the field's formats (ActivityNet JSON, ActionFormer JSON, THUMOS14 txt, BSN/BMN, CSV)
and the ActivityNet JSON writer live in this module too.

Conventions shared by every reader:
- Any file may be gzip-compressed (`x.json.gz`, `x.csv.gz`, or gzip bytes under any name): it is
  decompressed transparently (`gsmt.io.read`) and its format read from the name without `.gz`.
- Video ids are checked with `check_video_id` before anything uses them. When every id of a file
  carries the `v_` prefix (BSN/BMN, mmaction2), it is stripped (`id_prefix=None` keeps it).
- Subset names are lower-cased (ActionFormer writes `Validation`), then renamed by `subset_map`;
  a source with no subsets puts every video in `DEFAULT_SUBSET`.
- Class vocabulary (dense ids 0..K-1), first rule that applies: a top-level `classes` list (what
  `save_activitynet_json` writes, so a round trip keeps the ids); ActionFormer `label_id` order;
  otherwise class names sorted by code point (`sorted()`), which for THUMOS14 is also the official
  id order 7..97. An ActivityNet `taxonomy` is not used: its node ids include parent categories.
  `Ambiguous` is never a class: those segments go to `Video.ambiguous`.
- Every file is read bounded and strict (`gsmt.io.read`): UTF-8 only, a video id listed twice
  in one JSON object is refused with the id named, runaway nesting is an error. Durations must be
  finite seconds in (0, 1e6], fps in (0, 1000], feature_stride / feature_window whole frames >= 1;
  the top-level `gsmt` object's fields are checked where read (`check_meta`).
- Segments stay as in the file; faults (past the end, zero length, end < start...) are counted.
  A segment with end < start is kept, as the official ActivityNet evaluator keeps it (a positive
  that no prediction overlaps; training targets skip it); non-finite segments, and segments with a
  time beyond 1e6 s (1e308 overflows in a difference), are dropped (counted).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from gsmt.io.read import logical_suffix
from gsmt.io.read import MAX_FPS, MAX_FRAMES, MAX_SECONDS, parse_csv, parse_json, read_text
from gsmt.errors import Faults, GsmtError
from gsmt.io.write import atomic_write_text

AMBIGUOUS = "Ambiguous"
DEFAULT_SUBSET = "all"
FORMATS = ("auto", "activitynet", "actionformer", "thumos", "bsn", "csv")
THUMOS_SUBSETS = {"val": "validation", "validation": "validation", "test": "test"}
# Top-level keys of an ActivityNet-style file that are not videos (mmaction2 form has no wrapper).
_RESERVED_KEYS = {"version", "taxonomy", "gsmt", "classes", "external_data", "database"}


def _empty_segments() -> np.ndarray:
    return np.zeros((0, 2), dtype=np.float64)


@dataclass
class Video:
    """One video's ground truth. Segments are in seconds, exactly as in the source file.

    Segments are NOT clipped here (the official evaluator uses them raw); training targets clip
    them to [0, duration]. Segments with end < start are kept too (counted): the official evaluator
    counts them among the positives; training targets skip them.
    """

    id: str
    subset: str
    duration: float
    segments: np.ndarray = field(default_factory=_empty_segments)  # [N, 2] float64 seconds
    labels: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # [N] dense ids
    ambiguous: np.ndarray = field(default_factory=_empty_segments)  # [A, 2] THUMOS "Ambiguous"
    fps: float | None = None
    feature_stride: int | None = None  # frames between snippet starts
    feature_window: int | None = None  # frames covered by one snippet

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Video):
            return NotImplemented
        return (
            (self.id, self.subset, self.duration, self.fps, self.feature_stride, self.feature_window)
            == (other.id, other.subset, other.duration, other.fps, other.feature_stride, other.feature_window)
            and np.array_equal(self.segments, other.segments)
            and np.array_equal(self.labels, other.labels)
            and np.array_equal(self.ambiguous, other.ambiguous)
        )


@dataclass
class Annotations:
    """All videos of a dataset with one class vocabulary (dense ids 0..K-1)."""

    videos: list[Video]
    classes: list[str]
    meta: dict = field(default_factory=dict)  # e.g. {"preset": ..., "grid": {...}} from `gsmt synth`
    faults: Faults = field(default_factory=Faults)
    source: str = ""

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def subset(self, *names: str) -> list[Video]:
        """Videos of the given subsets (all videos when no name is given), in file order."""
        if not names:
            return list(self.videos)
        return [v for v in self.videos if v.subset in names]

    @property
    def subsets(self) -> list[str]:
        return sorted({v.subset for v in self.videos})

    def by_id(self) -> dict[str, Video]:
        return {v.id: v for v in self.videos}


# ---------------------------------------------------------------------------------------------
# Video ids


def check_video_id(video_id: object, source: str | Path) -> str:
    """Return `video_id` if it is safe to join to a folder; raise GsmtError otherwise.

    Refused: non-strings, empty ids, NUL, path separators (`/`, `\\`), `.` and `..`, and
    drive-prefixed ids such as `C:x`, so that `folder / video_id` never leaves `folder`.
    """
    if not isinstance(video_id, str):
        raise GsmtError(source, f"unsafe video id {video_id!r}: not a string")
    if (
        not video_id
        or "\0" in video_id
        or "/" in video_id
        or "\\" in video_id
        or video_id in (".", "..")
        or (len(video_id) >= 2 and video_id[1] == ":" and video_id[0].isalpha())
    ):
        raise GsmtError(source, f"unsafe video id {video_id!r}")
    return video_id


# ---------------------------------------------------------------------------------------------
# Loading


@dataclass
class _Raw:
    """What a reader hands to `_finish`: videos plus flat per-segment lists (label names, seconds)."""

    ids: list[str] = field(default_factory=list)
    subsets: list[str] = field(default_factory=list)
    durations: list[float] = field(default_factory=list)
    grids: list[tuple] = field(default_factory=list)  # (fps, feature_stride, feature_window)
    seg_video: list[int] = field(default_factory=list)
    seg_start: list[float] = field(default_factory=list)
    seg_end: list[float] = field(default_factory=list)
    seg_label: list[str] = field(default_factory=list)
    class_order: list[str] | None = None
    meta: dict = field(default_factory=dict)
    faults: Faults = field(default_factory=Faults)

    def add_video(self, video_id: str, subset: str, duration: float, grid: tuple = (None, None, None)) -> int:
        self.ids.append(video_id)
        self.subsets.append(subset)
        self.durations.append(duration)
        self.grids.append(grid)
        return len(self.ids) - 1

    def add_segment(self, video: int, start: float, end: float, label: str) -> None:
        self.seg_video.append(video)
        self.seg_start.append(start)
        self.seg_end.append(end)
        self.seg_label.append(label)


def load_annotations(
    path: str | Path,
    *,
    fmt: str = "auto",
    video_info: str | Path | Mapping | None = None,
    subset_map: Mapping[str, str] | None = None,
    id_prefix: str | None = "v_",
) -> Annotations:
    """Read temporal annotations in any supported format (see `FORMATS` and the module docstring).

    `video_info`: a CSV `video,duration[,fps][,subset]` (BSN's `video_info_new.csv` with `seconds`
    works too) or a dict `{video: duration}` / `{video: {"duration", "fps", "subset"}}`; it supplies
    what the annotation file lacks (THUMOS14 txt durations, BSN subsets). `subset_map` renames
    subsets (for THUMOS14 txt: file-name suffixes). `id_prefix` is stripped from the ids when every
    id carries it.
    """
    path = Path(path)
    if fmt not in FORMATS:
        raise GsmtError(path, f"unknown annotation format '{fmt}' (choose from {', '.join(FORMATS)})")
    if not path.exists():
        raise GsmtError(path, "no such file or folder")
    subset_map = dict(subset_map or {})
    if fmt == "auto":
        # Gzip is transparent: `x.json.gz` is JSON, `x.csv.gz` is CSV.
        if path.is_dir():
            fmt = "thumos"
        elif logical_suffix(path) == ".csv":
            fmt = "csv"
        elif logical_suffix(path) != ".json":
            raise GsmtError(path, "unknown annotation format: expected a .json, a .csv (either may be "
                                  "gzip-compressed, .json.gz / .csv.gz) or a folder of THUMOS14 txt files")

    if fmt == "thumos":
        raw = _read_thumos(path, video_info, subset_map)
    elif fmt == "csv":
        raw = _read_csv(path, video_info)
    else:
        obj = _read_json(path)
        if fmt == "auto":
            fmt = _detect_json(obj, path)
        if fmt == "bsn":
            raw = _read_bsn(obj, path, video_info)
        else:
            raw = _read_activitynet(obj, path, video_info, use_label_id=fmt == "actionformer")
    return _finish(raw, path, subset_map, id_prefix)


def _read_text(path: Path) -> str:
    """UTF-8 text of a file, decompressed when it is gzip (magic bytes or a `.gz` name)."""
    return read_text(path)


def _read_json(path: Path):
    # Bounded read, UTF-8 only, a video id listed twice in one object refused (gsmt.io.read).
    return parse_json(_read_text(path), path)


def _detect_json(obj, path: Path) -> str:
    if not isinstance(obj, dict):
        raise GsmtError(path, "unknown annotation format: the JSON top level is not an object")
    if isinstance(obj.get("database"), dict):
        db = obj["database"]
    elif "results" in obj:
        raise GsmtError(path, "this is a predictions file (it has 'results'), not ground truth")
    else:
        db = {k: v for k, v in obj.items() if k not in _RESERVED_KEYS}
    entries = [v for v in db.values() if isinstance(v, dict)]
    if not entries:
        raise GsmtError(path, "no videos in the file")
    if all("duration_second" in v for v in entries):
        return "bsn"
    if not all("annotations" in v or "duration" in v for v in entries):
        raise GsmtError(path, "unknown annotation format: videos have neither 'annotations' nor 'duration'")
    has_ids = any(isinstance(a, dict) and "label_id" in a for v in entries for a in v.get("annotations") or [])
    return "actionformer" if has_ids else "activitynet"


def _number(value, source, what: str) -> float:
    """`value` as a float, or a GsmtError naming `what` (non-finite values are left to `_finish`)."""
    try:
        x = float(value) if not isinstance(value, bool) else math.nan
    except (TypeError, ValueError, OverflowError):
        raise GsmtError(source, f"{what}: not a number ({value!r:.60})") from None
    if isinstance(value, bool):
        raise GsmtError(source, f"{what}: not a number ({value!r})")
    return x


def _duration(value, source, video_id: str) -> float:
    try:
        x = float(value) if not isinstance(value, bool) else math.nan
    except (TypeError, ValueError, OverflowError):
        x = math.nan
    if not (math.isfinite(x) and 0 < x <= MAX_SECONDS):
        raise GsmtError(source, f"video '{video_id}' has no valid duration ({value!r:.60}; expected "
                                f"seconds in (0, {MAX_SECONDS:g}])")
    return x


def _optional(value, source, what: str, kind=float):
    """An optional grid value: fps in (0, MAX_FPS], frames (kind=int) a whole number in [1, MAX_FRAMES]."""
    if value is None or value == "":
        return None
    x = _number(value, source, what)
    if kind is int:
        if not (math.isfinite(x) and x == round(x) and 1 <= x <= MAX_FRAMES):
            raise GsmtError(source, f"{what}: expected a whole number of frames in [1, {MAX_FRAMES}] ({value!r:.60})")
        return int(round(x))
    if not (math.isfinite(x) and 0 < x <= MAX_FPS):
        raise GsmtError(source, f"{what}: expected a number in (0, {MAX_FPS:g}] ({value!r:.60})")
    return x


def _read_video_info(video_info, source: Path) -> tuple[dict[str, dict], str]:
    """Normalise `video_info` to `{video_id: {"duration", "fps", "subset"}}` and a name for errors."""
    if video_info is None:
        return {}, str(source)
    if isinstance(video_info, Mapping):
        out = {}
        for vid, info in video_info.items():
            if isinstance(info, Mapping):
                out[vid] = {
                    "duration": info.get("duration", info.get("seconds")),
                    "fps": info.get("fps"),
                    "subset": info.get("subset"),
                }
            else:
                out[vid] = {"duration": info, "fps": None, "subset": None}
        return out, "video_info"
    info_path = Path(video_info)
    if not info_path.exists():
        raise GsmtError(info_path, "no such file")
    header, reader = parse_csv(_read_text(info_path), info_path)
    fields = set(header)
    if "video" not in fields or not fields & {"duration", "seconds"}:
        raise GsmtError(info_path, "expected a CSV with a header holding 'video' and 'duration' (or 'seconds')")
    dur_key = "duration" if "duration" in fields else "seconds"
    out = {}
    for row in reader:
        vid = row["video"]
        if vid not in out:
            out[vid] = {"duration": row.get(dur_key), "fps": row.get("fps"), "subset": row.get("subset")}
    return out, str(info_path)


def _lookup(info: dict[str, dict], video_id: str) -> dict | None:
    """Info for `video_id`, tolerating a `v_` prefix on one side only."""
    if video_id in info:
        return info[video_id]
    alt = video_id[2:] if video_id.startswith("v_") else "v_" + video_id
    return info.get(alt)


def _segment(value, source, video_id: str) -> tuple[float, float]:
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise GsmtError(source, f"video '{video_id}': a segment must be [start, end], got {value!r}")
    return (_number(value[0], source, f"video '{video_id}' segment start"),
            _number(value[1], source, f"video '{video_id}' segment end"))


# The `gsmt` fields that settings are taken from (`gsmt.engine.resolve.resolve_config`), and their values.
_META_CHOICES = {"temporal_mode": ("auto", "resize", "window"),
                 "decode_mode": ("auto", "long", "short", "own", "own+long"),
                 "feature_layout": ("auto", "TD", "DT")}


def check_meta(meta, path: Path) -> dict:
    """The top-level `gsmt` object of an annotation file, checked field by field: a bad value is an
    error naming this file (settings are taken from it: grid, temporal mode, subsets, tIoU set).
    The tIoU set's values are checked where it is used (`gsmt.engine.resolve.meta_tiou`)."""
    if not isinstance(meta, dict):
        raise GsmtError(path, "'gsmt' must be an object")
    for key, choices in _META_CHOICES.items():
        if key in meta and meta[key] not in choices:
            raise GsmtError(path, f"field 'gsmt.{key}' must be one of {', '.join(choices)}, got {meta[key]!r:.60}")
    for key in ("train_subset", "eval_subset"):
        if key in meta and not (isinstance(meta[key], str) and meta[key]):
            raise GsmtError(path, f"field 'gsmt.{key}' must be a subset name, got {meta[key]!r:.60}")
    tiou = meta.get("tiou")
    if tiou is not None and not (isinstance(tiou, str) or (
            isinstance(tiou, list) and tiou and all(isinstance(t, (int, float)) and not isinstance(t, bool)
                                                    for t in tiou))):
        raise GsmtError(path, f"field 'gsmt.tiou' must be a preset name, a comma list or a list of "
                              f"numbers, got {tiou!r:.60}")
    grid = meta.get("grid")
    if grid is not None:
        if not isinstance(grid, dict):
            raise GsmtError(path, f"field 'gsmt.grid' must be an object, got {grid!r:.60}")
        _optional(grid.get("fps"), path, "field 'gsmt.grid.fps'")
        for key in ("feature_stride", "feature_window"):
            _optional(grid.get(key), path, f"field 'gsmt.grid.{key}'", int)
    return meta


def _read_activitynet(obj, path: Path, video_info, *, use_label_id: bool) -> _Raw:
    if not isinstance(obj, dict):
        raise GsmtError(path, "expected a JSON object of videos")
    if "database" in obj:
        db = obj["database"]
        if not isinstance(db, dict):
            raise GsmtError(path, "'database' is not an object of videos")
    else:
        db = {k: v for k, v in obj.items() if k not in _RESERVED_KEYS}
    if not db:
        raise GsmtError(path, "no videos in the file")
    info, info_name = _read_video_info(video_info, path)
    raw = _Raw()
    meta = obj.get("gsmt")
    if meta is not None:
        raw.meta = check_meta(meta, path)
    classes = obj.get("classes")
    if classes is not None:
        if not isinstance(classes, list) or not all(isinstance(c, str) and c for c in classes) \
                or len(set(classes)) != len(classes):
            raise GsmtError(path, "'classes' must be a list of distinct class names")
        raw.class_order = classes
    label_ids: dict[str, float] = {}
    for vid, entry in db.items():
        check_video_id(vid, path)
        if not isinstance(entry, dict):
            raise GsmtError(path, f"video '{vid}': expected an object")
        extra = _lookup(info, vid) or {}
        duration = entry.get("duration", extra.get("duration"))
        if duration is None:
            raise GsmtError(path, f"video '{vid}' has no duration (add it or pass video_info)")
        duration = _duration(duration, path if "duration" in entry else info_name, vid)
        subset = entry.get("subset") or extra.get("subset") or DEFAULT_SUBSET
        grid = (
            _optional(entry.get("fps", extra.get("fps")), path, f"video '{vid}' fps"),
            _optional(entry.get("feature_stride"), path, f"video '{vid}' feature_stride", int),
            _optional(entry.get("feature_window"), path, f"video '{vid}' feature_window", int),
        )
        v = raw.add_video(vid, str(subset), duration, grid)
        annotations = entry.get("annotations") or []
        ambiguous = entry.get("ambiguous") or []
        if not isinstance(annotations, list) or not isinstance(ambiguous, list):
            raise GsmtError(path, f"video '{vid}': 'annotations' and 'ambiguous' must be lists")
        for a in annotations:
            if not isinstance(a, dict) or not isinstance(a.get("label"), str) or not a["label"]:
                raise GsmtError(path, f"video '{vid}': every annotation needs a 'label' and a 'segment'")
            start, end = _segment(a.get("segment"), path, vid)
            raw.add_segment(v, start, end, a["label"])
            if use_label_id and a["label"] != AMBIGUOUS:
                if "label_id" not in a:
                    raise GsmtError(path, f"video '{vid}': annotation without 'label_id' in an ActionFormer file")
                label_id = _number(a["label_id"], path, f"video '{vid}' label_id")
                if label_ids.setdefault(a["label"], label_id) != label_id:
                    raise GsmtError(path, f"class '{a['label']}' has two label_id values")
        for a in ambiguous:
            # THUMOS14 JSON: [{"label": "Ambiguous", "segment": [s, e]}]; a bare [s, e] works too.
            start, end = _segment(a.get("segment") if isinstance(a, dict) else a, path, vid)
            raw.add_segment(v, start, end, AMBIGUOUS)
    if use_label_id and raw.class_order is None and label_ids:
        if len(set(label_ids.values())) != len(label_ids):
            raise GsmtError(path, "two classes share one label_id")
        raw.class_order = sorted(label_ids, key=label_ids.__getitem__)
    return raw


def _read_bsn(obj, path: Path, video_info) -> _Raw:
    """BSN/BMN `anet_anno_action.json` + `video_info_new.csv` (found beside the JSON when not given)."""
    if not isinstance(obj, dict) or not obj:
        raise GsmtError(path, "no videos in the file")
    for name in ("video_info_new.csv", "video_info_new.csv.gz"):
        if video_info is None and (path.parent / name).exists():
            video_info = path.parent / name
    info, _ = _read_video_info(video_info, path)
    raw = _Raw()
    for vid, entry in obj.items():
        check_video_id(vid, path)
        if not isinstance(entry, dict):
            raise GsmtError(path, f"video '{vid}': expected an object")
        extra = _lookup(info, vid)
        if info and extra is None:
            # The CSV is what assigns subsets; a video it does not list cannot be placed.
            raw.faults.add("videos not in video_info (skipped)")
            continue
        extra = extra or {}
        duration = _duration(entry.get("duration_second", extra.get("duration")), path, vid)
        fps = _optional(extra.get("fps"), path, f"video '{vid}' fps")
        v = raw.add_video(vid, str(extra.get("subset") or DEFAULT_SUBSET), duration, (fps, None, None))
        for a in entry.get("annotations") or []:
            if not isinstance(a, dict) or not isinstance(a.get("label"), str) or not a["label"]:
                raise GsmtError(path, f"video '{vid}': every annotation needs a 'label' and a 'segment'")
            start, end = _segment(a.get("segment"), path, vid)
            raw.add_segment(v, start, end, a["label"])
    return raw


def _read_thumos(folder: Path, video_info, subset_map: dict) -> _Raw:
    """THUMOS14 official per-class files `<Class>_<val|test>.txt`, lines `video start end`."""
    if not folder.is_dir():
        raise GsmtError(folder, "THUMOS14 txt annotations are a folder of <Class>_<subset>.txt files")
    suffixes = {**THUMOS_SUBSETS, **subset_map}
    files = []
    for f in sorted(folder.glob("*.txt")):
        cls, _, suffix = f.stem.rpartition("_")
        if cls and suffix in suffixes:
            files.append((f, cls, suffixes[suffix]))
    if not files:
        raise GsmtError(folder, "no THUMOS14 annotation files (<Class>_val.txt, <Class>_test.txt) in the folder")
    if video_info is None:
        raise GsmtError(folder, "THUMOS14 txt annotations carry no durations: pass video_info "
                                "(a CSV video,duration[,fps] or a dict)")
    info, info_name = _read_video_info(video_info, folder)
    rows: list[tuple[str, str, float, float, str]] = []
    for f, cls, subset in files:
        for n, line in enumerate(_read_text(f).splitlines(), 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 3:
                raise GsmtError(f, f"line {n}: expected 'video start end', got {line.strip()!r}")
            vid = check_video_id(parts[0], f)
            rows.append((vid, subset, _number(parts[1], f, f"line {n} start"),
                         _number(parts[2], f, f"line {n} end"), cls))
    raw = _Raw()
    index: dict[str, int] = {}
    first_subset: dict[str, str] = {}
    for vid, subset, *_ in rows:
        first_subset.setdefault(vid, subset)
    # Folder listing order is arbitrary: videos are listed by id, segments by file then line.
    for vid in sorted(first_subset):
        extra = _lookup(info, vid)
        if extra is None or extra.get("duration") in (None, ""):
            raise GsmtError(info_name, f"no duration for video '{vid}'")
        index[vid] = raw.add_video(
            vid, first_subset[vid], _duration(extra["duration"], info_name, vid),
            (_optional(extra.get("fps"), info_name, f"video '{vid}' fps"), None, None),
        )
    for vid, _, start, end, cls in rows:
        raw.add_segment(index[vid], start, end, cls)
    return raw


def _read_csv(path: Path, video_info) -> _Raw:
    """Plain CSV `video,start,end,label[,subset][,duration][,fps]`; a row with empty start and end
    lists a video without instances."""
    header, reader = parse_csv(_read_text(path), path)
    fields = set(header)
    missing = [c for c in ("video", "start", "end", "label") if c not in fields]
    if missing:
        raise GsmtError(path, f"CSV header must hold video,start,end,label (missing: {', '.join(missing)})")
    info, info_name = _read_video_info(video_info, path)
    raw = _Raw()
    index: dict[str, int] = {}
    max_end: dict[int, float] = {}
    for n, row in enumerate(reader, 2):
        vid = check_video_id(row["video"], path)
        extra = _lookup(info, vid) or {}
        duration = row.get("duration") or extra.get("duration")
        if vid not in index:
            subset = row.get("subset") or extra.get("subset") or DEFAULT_SUBSET
            fps = _optional(row.get("fps") or extra.get("fps"), path, f"line {n} fps")
            dur = math.nan if duration in (None, "") else _duration(duration, path, vid)
            index[vid] = raw.add_video(vid, subset, dur, (fps, None, None))
        v = index[vid]
        if duration not in (None, "") and not math.isnan(raw.durations[v]) \
                and _duration(duration, path, vid) != raw.durations[v]:
            raw.faults.add("rows with a duration that differs from the video's first")
        if row["start"] in (None, "") and row["end"] in (None, ""):
            continue
        if not row["label"]:
            raise GsmtError(path, f"line {n}: empty label")
        start = _number(row["start"], path, f"line {n} start")
        end = _number(row["end"], path, f"line {n} end")
        raw.add_segment(v, start, end, row["label"])
        max_end[v] = max(max_end.get(v, -math.inf), end)
    if not raw.ids:
        raise GsmtError(path, "no videos in the file")
    for v, d in enumerate(raw.durations):
        if math.isnan(d):
            if not (max_end.get(v, 0) > 0):
                raise GsmtError(path, f"video '{raw.ids[v]}' has no duration "
                                      "(add a 'duration' column or pass video_info)")
            raw.durations[v] = _duration(max_end[v], path, raw.ids[v])
            raw.faults.add("videos without a duration (max segment end used)")
    return raw


def _finish(raw: _Raw, path: Path, subset_map: dict, id_prefix: str | None) -> Annotations:
    """Count faults, build the class vocabulary, split the flat segment lists per video."""
    if not raw.ids:
        raise GsmtError(path, "no videos in the file")
    faults = raw.faults

    vid = np.asarray(raw.seg_video, dtype=np.int64)
    seg = np.stack([np.asarray(raw.seg_start, dtype=np.float64),
                    np.asarray(raw.seg_end, dtype=np.float64)], axis=1).reshape(-1, 2)
    labels = np.asarray(raw.seg_label, dtype=object)
    dur = np.asarray(raw.durations, dtype=np.float64)[vid]

    finite = np.isfinite(seg).all(axis=1)
    # Beyond every valid duration, and large enough (1e308) to overflow in a difference: dropped.
    huge = finite & (np.abs(seg) > MAX_SECONDS).any(axis=1)
    faults.add("non-finite segments (dropped)", int((~finite).sum()))
    faults.add(f"segments with a time beyond {MAX_SECONDS:g} s (dropped)", int(huge.sum()))
    finite &= ~huge
    reversed_ = finite & (seg[:, 1] < seg[:, 0])
    # Kept as the official evaluator keeps them: positives that no prediction overlaps (tIoU 0, or
    # its 0/0 quirk); training targets skip them.
    faults.add("segments with end < start (kept, as the official evaluator does)", int(reversed_.sum()))
    ok = finite & ~reversed_  # the other faults are counted on well-formed segments
    s, e = seg[:, 0], seg[:, 1]
    faults.add("zero-length segments (kept)", int((ok & (e == s)).sum()))
    faults.add("segments starting before 0", int((ok & (s < 0)).sum()))
    faults.add("segments ending after the video's end", int((ok & (e > dur)).sum()))
    faults.add("segments starting after the video's end", int((ok & (s > dur)).sum()))
    keep = finite
    vid, seg, labels = vid[keep], seg[keep], labels[keep]

    amb = labels == AMBIGUOUS
    names = sorted(set(labels[~amb].tolist()))
    if raw.class_order is not None:
        known = set(raw.class_order)
        unknown = [c for c in names if c not in known]
        if unknown:
            raise GsmtError(path, f"label '{unknown[0]}' is not in the file's class list")
        classes = [c for c in raw.class_order if c != AMBIGUOUS]
    else:
        classes = names
    lut = {c: i for i, c in enumerate(classes)}
    ids = np.fromiter((lut.get(c, -1) for c in labels.tolist()), dtype=np.int64, count=len(labels))

    n = len(raw.ids)
    gt, gt_vid, gt_ids = seg[~amb], vid[~amb], ids[~amb]
    am, am_vid = seg[amb], vid[amb]
    order, am_order = np.argsort(gt_vid, kind="stable"), np.argsort(am_vid, kind="stable")
    cut = np.cumsum(np.bincount(gt_vid, minlength=n))[:-1]
    am_cut = np.cumsum(np.bincount(am_vid, minlength=n))[:-1]
    seg_split = np.split(gt[order], cut)
    lab_split = np.split(gt_ids[order], cut)
    amb_split = np.split(am[am_order], am_cut)

    video_ids = list(raw.ids)
    if id_prefix and all(v.startswith(id_prefix) and len(v) > len(id_prefix) for v in video_ids):
        video_ids = [check_video_id(v[len(id_prefix):], path) for v in video_ids]
    if len(set(video_ids)) != len(video_ids):
        seen: set[str] = set()
        twice = next(v for v in video_ids if v in seen or seen.add(v))
        how = f"listed twice, or with and without the '{id_prefix}' prefix" if id_prefix else "listed twice"
        raise GsmtError(path, f"duplicate video id '{twice}' ({how})")
    videos = []
    for i in range(n):
        subset = raw.subsets[i].lower()
        subset = subset_map.get(raw.subsets[i], subset_map.get(subset, subset))
        fps, stride, window = raw.grids[i]
        videos.append(Video(
            id=video_ids[i], subset=subset, duration=float(raw.durations[i]),
            segments=seg_split[i], labels=lab_split[i], ambiguous=amb_split[i],
            fps=fps, feature_stride=stride, feature_window=window,
        ))
    return Annotations(videos=videos, classes=classes, meta=raw.meta, faults=faults, source=str(path))


# ---------------------------------------------------------------------------------------------
# Writing


def to_activitynet_dict(ann: Annotations, videos: list[Video] | None = None) -> dict:
    """The ActivityNet JSON object `save_activitynet_json` writes."""
    database = {}
    for v in ann.videos if videos is None else videos:
        entry: dict = {"subset": v.subset, "duration": float(v.duration)}
        for key in ("fps", "feature_stride", "feature_window"):
            value = getattr(v, key)
            if value is not None:
                entry[key] = float(value) if key == "fps" else int(value)
        entry["annotations"] = [
            {"label": ann.classes[int(c)], "segment": [float(s), float(e)]}
            for (s, e), c in zip(v.segments.tolist(), v.labels.tolist())
        ]
        if len(v.ambiguous):
            entry["ambiguous"] = [{"label": AMBIGUOUS, "segment": [float(s), float(e)]}
                                  for s, e in v.ambiguous.tolist()]
        database[v.id] = entry
    out: dict = {"version": "gsmt ActivityNet-style ground truth", "classes": list(ann.classes),
                 "database": database}
    if ann.meta:
        out["gsmt"] = ann.meta
    return out


def save_activitynet_json(ann: Annotations, path: str | Path, videos: list[Video] | None = None) -> None:
    """Write `ann` (or just `videos`) as ActivityNet JSON, atomically; `load_annotations` reads it back."""
    try:
        text = json.dumps(to_activitynet_dict(ann, videos), indent=1)
    except (TypeError, ValueError) as exc:
        raise GsmtError(path, f"cannot write annotations: {exc}") from exc
    atomic_write_text(path, text + "\n")


def meta_tiou(annotations: Annotations):
    """The tIoU set an annotation file's `gsmt` meta records (None when it records none); a value
    `parse_tiou` refuses is an error naming the annotation file, not the `--tiou` option."""
    from gsmt.evaluation.detection import parse_tiou  # the evaluation reads this module

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


def report_faults(faults: Faults, source: str | Path) -> None:
    """One warning line with the counted data faults of `source`, when there are any."""
    if faults:
        logging.getLogger("gsmt.data").warning("%s", faults.summary(str(source)))
