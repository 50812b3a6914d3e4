"""Loading temporal annotations into the in-memory form (`gsmt.annotations.types`).

`load_annotations` picks a reader from the `FORMATS` table (ActivityNet JSON, ActionFormer JSON,
THUMOS14 txt, BSN/BMN, the dense multi-label JSON of MultiTHUMOS / Charades, Charades' CSV, CSV: one
module each in `gsmt.annotations.formats`) and finishes what it read; the ActivityNet JSON writer
is `gsmt.annotations.write`.

Conventions shared by every reader:
- Any file may be gzip-compressed (`x.json.gz`, `x.csv.gz`, or gzip bytes under any name): it is
  decompressed transparently (`gsmt.io.read`) and its format read from the name without `.gz`.
- Video ids are checked with `check_video_id` before anything uses them. When every id of a file
  carries the `v_` prefix (BSN/BMN, mmaction2), it is stripped (`id_prefix=None` keeps it).
- Subset names are lower-cased (ActionFormer writes `Validation`), then renamed by `subset_map`;
  a source with no subsets puts every video in `DEFAULT_SUBSET`.
- Class vocabulary (dense ids 0..K-1), first rule that applies: a top-level `classes` list (what
  `save_activitynet_json` writes, so a round trip keeps the ids); ActionFormer `label_id` order;
  the numeric class-id order of the dense JSON and Charades' CSV (ids named by their decimal
  string, `"10"` after `"9"`, or by the dense JSON's `classes` object); otherwise class names
  sorted by code point (`sorted()`), which for THUMOS14 is also the official id order 7..97. An
  ActivityNet `taxonomy` is not used: its node ids include parent categories. `Ambiguous` is never a class: those segments go to `Video.ambiguous`.
- Every file is read bounded and strict (`gsmt.io.read`): UTF-8 only, a video id listed twice
  in one JSON object is refused with the id named, runaway nesting is an error. Durations must be
  finite seconds in (0, 1e6], fps in (0, 1000], feature_stride / feature_window whole frames >= 1;
  the top-level `gsmt` object's fields are checked where read (`gsmt.annotations.meta.check_meta`).
- Segments stay as in the file; faults (past the end, zero length, end < start...) are counted.
  A segment with end < start is kept, as the official ActivityNet evaluator keeps it (a positive
  that no prediction overlaps; training targets skip it); non-finite segments, and segments with a
  time beyond 1e6 s (1e308 overflows in a difference), are dropped (counted).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import NamedTuple

import numpy as np

from gsmt.annotations.formats import actionformer, activitynet, bsn, charades, csv, dense, thumos
from gsmt.annotations.formats.common import _RESERVED_KEYS, _Raw, _read_json
from gsmt.annotations.types import AMBIGUOUS, Annotations, Video, check_video_id
from gsmt.errors import Faults, GsmtError
from gsmt.io.read import MAX_SECONDS, logical_suffix


class Format(NamedTuple):
    """One annotation format of `FORMATS` (its module in `gsmt.annotations.formats`)."""

    json: bool  # a JSON document: `detect` gets its video entries, `read` the parsed object
    detect: Callable[..., bool]
    read: Callable[..., _Raw]


# name -> format; `fmt="auto"` tries them in `_DETECT_ORDER`.
FORMATS: dict[str, Format] = {
    "activitynet": Format(activitynet.JSON, activitynet.detect, activitynet.read),
    "actionformer": Format(actionformer.JSON, actionformer.detect, actionformer.read),
    "thumos": Format(thumos.JSON, thumos.detect, thumos.read),
    "bsn": Format(bsn.JSON, bsn.detect, bsn.read),
    "dense": Format(dense.JSON, dense.detect, dense.read),
    "charades": Format(charades.JSON, charades.detect, charades.read),
    "csv": Format(csv.JSON, csv.detect, csv.read),
}
# Charades' CSV before the generic CSV (by its header), the dense JSON before ActivityNet JSON
# (its videos have a `duration` too).
_DETECT_ORDER = ("thumos", "charades", "csv", "bsn", "dense", "actionformer", "activitynet")


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
    if fmt != "auto" and fmt not in FORMATS:
        raise GsmtError(path, f"unknown annotation format '{fmt}' (choose from auto, {', '.join(FORMATS)})")
    if not path.exists():
        raise GsmtError(path, "no such file or folder")
    subset_map = dict(subset_map or {})
    form = FORMATS.get(fmt)
    if fmt == "auto":
        # Gzip is transparent: `x.json.gz` is JSON, `x.csv.gz` is CSV.
        form = next((FORMATS[name] for name in _DETECT_ORDER
                     if not FORMATS[name].json and FORMATS[name].detect(path)), None)
        if form is None and logical_suffix(path) != ".json":
            raise GsmtError(path, "unknown annotation format: expected a .json, a .csv (either may be "
                                  "gzip-compressed, .json.gz / .csv.gz) or a folder of THUMOS14 txt files")

    if form is not None and not form.json:
        raw = form.read(path, video_info, subset_map)
    else:
        obj = _read_json(path)
        if form is None:
            form = FORMATS[_detect_json(obj, path)]
        raw = form.read(obj, path, video_info, subset_map)
    return _finish(raw, path, subset_map, id_prefix)


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
    for name in _DETECT_ORDER:
        if FORMATS[name].json and FORMATS[name].detect(entries):
            return name
    raise GsmtError(path, "unknown annotation format: videos have neither 'annotations', 'actions' nor 'duration'")


# C0 and C1 controls (line breaks and tabs among them), DEL, and the Unicode line and paragraph
# separators: a class name is one line of text wherever it goes (subtitles, tables, pictures).
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def check_labels(labels, path: str | Path) -> None:
    """Refuse a class label holding a control character (one line naming the file and the label)."""
    for label in sorted(x for x in labels if isinstance(x, str)):
        bad = _CONTROL.search(label)
        if bad:
            shown = label if len(label) <= 80 else label[:77] + "..."
            raise GsmtError(path, f"class label {shown!r} holds a control character (U+{ord(bad.group()):04X}): "
                                  "a class name must be one line of printable text")


def _finish(raw: _Raw, path: Path, subset_map: dict, id_prefix: str | None) -> Annotations:
    """Count faults, build the class vocabulary, split the flat segment lists per video."""
    if not raw.ids:
        raise GsmtError(path, "no videos in the file")
    check_labels(set(raw.seg_label) | set(raw.class_order or ()), path)
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


def report_faults(faults: Faults, source: str | Path) -> None:
    """One warning line with the counted data faults of `source`, when there are any."""
    if faults:
        logging.getLogger("gsmt.data").warning("%s", faults.summary(str(source)))
