"""`gsmt detect VIDEO... --checkpoint RUN`: raw videos -> detections (JSON), WebVTT subtitles, a timeline PNG.

The checkpoint records the grid (fps, feature_stride, feature_window) and, when it was trained on
features of `gsmt extract`, the backbone (id and digest). Features are extracted exactly that way:
the recorded backbone by default; `--backbone` may name another copy of it (a local folder), whose
digest must match; `--fps` / `--feature-stride` / `--feature-window` may only repeat the recorded
values. A mismatch of backbone or grid is a one-line error, never a silent run on features the
model has not seen. A checkpoint without a backbone record (trained on other features) needs
`--backbone` and, when it records no grid, the grid options: the user vouches for them.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gsmt.errors import Faults, GsmtError
from gsmt.video.backbones import Backbone, load_backbone
from gsmt.video.extract import extract_video

log = logging.getLogger("gsmt.video")
SUBMISSION = "detections.json"
# A WebVTT comment block naming the writer: how a later `gsmt detect` tells its own subtitles from
# a film's real ones (`movie.vtt` beside `movie.mp4`), which it must never replace.
VTT_MARK = "NOTE written by gsmt detect"


@dataclass
class Setup:
    """How a checkpoint's features are made: the backbone and the grid."""

    backbone: Backbone
    fps: float
    stride: int
    window: int


def setup_for(meta: dict, where: str | Path, *, backbone: str | None = None, fps: float | None = None,
              stride: int | None = None, window: int | None = None, device: str = "cpu") -> Setup:
    """The backbone and grid of a checkpoint's meta, with the user's options checked against them."""
    recorded = meta.get("backbone") or {}
    name = backbone or recorded.get("id")
    if name is None:
        raise GsmtError(where, "the checkpoint records no backbone (it was trained on features not written by "
                               "gsmt extract): pass --backbone, the model those features came from")
    grid = meta.get("grid") or {}
    chosen = {}
    for key, given in (("fps", fps), ("feature_stride", stride), ("feature_window", window)):
        saved = grid.get(key)
        if given is not None and saved is not None and float(given) != float(saved):
            raise GsmtError(where, f"grid mismatch: the model was trained on features with {key} {saved:g}, "
                                   f"--{key.replace('_', '-')} gives {given:g}")
        chosen[key] = saved if saved is not None else given
        if chosen[key] is None:
            raise GsmtError(where, f"the checkpoint records no {key}: pass --{key.replace('_', '-')}")
    loaded = load_backbone(name, device=device)
    if recorded.get("digest") and loaded.digest != recorded["digest"]:
        raise GsmtError(where, f"backbone mismatch: the model was trained on features of {recorded['id']} "
                               f"({recorded['digest'][:19]}...), {name} is another model or other weights "
                               f"({loaded.digest[:19]}...)")
    if loaded.feature_dim != int(meta["feature_dim"]):
        raise GsmtError(where, f"backbone mismatch: {name} gives {loaded.feature_dim}-dimensional features, "
                               f"the model takes {meta['feature_dim']}")
    return Setup(loaded, float(chosen["fps"]), int(chosen["feature_stride"]), int(chosen["feature_window"]))


def video_detections(localizer, setup: Setup, path: str | Path, *, batch_size: int = 16):
    """(detections best first, decoded duration, faults) of one video file."""
    got = extract_video(path, setup.backbone, setup.fps, setup.stride, setup.window, batch_size)
    detections = localizer.predict(got.features, fps=setup.fps, feature_stride=setup.stride,
                                   feature_window=setup.window, duration=got.duration, layout="TD")
    return detections, got.duration, got.faults


def _timestamp(seconds: float) -> str:
    ms = int(round(max(seconds, 0.0) * 1000))
    h, ms = divmod(ms, 3_600_000)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}.{ms:03d}"


def webvtt(detections, duration: float, *, min_score: float = 0.3, top: int = 20) -> str:
    """WebVTT subtitles: one cue per detection (score >= min_score, at most `top`, in time order);
    overlapping actions are overlapping cues, which players show together."""
    chosen = [d for d in detections if d.score >= min_score][:top]
    chosen.sort(key=lambda d: (d.start, -d.score))
    lines = ["WEBVTT", "", VTT_MARK, ""]
    for i, d in enumerate(chosen, 1):
        start, end = max(0.0, d.start), min(duration, d.end)
        if end <= start:
            continue
        lines += [str(i), f"{_timestamp(start)} --> {_timestamp(end)}", f"{d.label} ({d.score:.2f})", ""]
    return "\n".join(lines)


def _outputs(out: Path, vid: str) -> tuple[Path, Path, Path]:
    return out / f"{vid}.json", out / f"{vid}.vtt", out / f"{vid}_timeline.png"


def _own_json(path: Path) -> bool:
    from gsmt.io.read import read_json

    try:
        obj = read_json(path)
    except GsmtError:
        return False
    return isinstance(obj, dict) and "detections" in obj and "grid" in obj


def _own_vtt(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            head = fh.read(4096).decode("utf-8", "replace")
    except OSError:
        return False
    return head.startswith("WEBVTT") and f"\n{VTT_MARK}\n" in head


def _own_submission(path: Path) -> bool:
    from gsmt.io.read import read_json

    try:
        obj = read_json(path)
    except GsmtError:
        return False
    return isinstance(obj, dict) and isinstance(obj.get("results"), dict) and "version" in obj


def refuse_foreign_outputs(out: Path, ids: list[str]) -> None:
    """An existing file among the outputs must be an earlier `gsmt detect` output (recognised by its
    content); anything else in its place (the film's own subtitles `<id>.vtt`, a `<id>.json` of the
    user's) is refused, before any work: gsmt never replaces what it did not write."""
    def foreign(path: Path, own) -> None:
        if (path.exists() or path.is_symlink()) and not (path.is_file() and not path.is_symlink() and own(path)):
            raise GsmtError(path, "exists and was not written by gsmt detect: refusing to replace it; pass "
                                  "another --out")

    for vid in ids:
        js, vtt, png = _outputs(out, vid)
        foreign(js, _own_json)
        foreign(vtt, _own_vtt)
        # A timeline is gsmt's when the detections beside it are (they are written together).
        foreign(png, lambda _p, js=js: js.is_file() and _own_json(js))
    foreign(out / SUBMISSION, _own_submission)


def run_detect(videos: list[str], checkpoint: str, out: str | Path, *, backbone: str | None = None,
               fps: float | None = None, stride: int | None = None, window: int | None = None,
               device: str = "cpu", batch_size: int = 16, min_score: float = 0.3, top: int = 10,
               progress: bool = True) -> str:
    """The `gsmt detect` job: per video `<id>.json`, `<id>.vtt`, `<id>_timeline.png` in `out`, and
    `detections.json` (ActivityNet submission of all videos); returns the one-line summary."""
    from tqdm import tqdm

    from gsmt.api import Localizer
    from gsmt.engine.predictor import submission
    from gsmt.annotations.load import check_video_id
    from gsmt.io.write import atomic_write_text
    from gsmt.io.guard import check_output_location, lock_folder, refuse_overwriting_inputs
    from gsmt.jobs import checkpoint_inputs
    from gsmt.video.frames import list_videos
    from gsmt.video.outputs import InputIndex, refuse_inputs_among
    from gsmt.viz.timeline import plot_timeline

    out = Path(out)
    check_output_location(out, "folder")
    paths = [p for v in videos for p in list_videos(v)]
    refuse_overwriting_inputs(out, {"VIDEO": paths, "--checkpoint": checkpoint})
    ids = [check_video_id(p.stem, p) for p in paths]
    seen: dict[str, Path] = {}
    for vid, path in zip(ids, paths):
        if vid in seen:
            raise GsmtError(path, f"has the id '{vid}' of {seen[vid]} too: outputs are named by file name "
                                  "without suffix (rename one)")
        if vid + ".json" == SUBMISSION:
            raise GsmtError(path, f"its detections would be {SUBMISSION}, the file of all the videos' "
                                  "detections: rename the video")
        seen[vid] = path
    loc = Localizer.from_checkpoint(checkpoint, device=device)
    # Every file about to be written is compared with every input: `--out` the backbone's folder
    # and a video named config.mp4 would otherwise replace the backbone's config.json.
    model_folder = backbone or (loc.meta.get("backbone") or {}).get("id")
    index = InputIndex({"VIDEO": paths, "--checkpoint": checkpoint_inputs(checkpoint),
                        "--backbone": model_folder if model_folder and Path(model_folder).is_dir() else None})
    planned = [p for vid in ids for p in _outputs(out, vid)] + [out / SUBMISSION]
    # Checked here first so that a refusal comes before the backbone loads and creates no folder...
    refuse_inputs_among(planned, index)
    refuse_foreign_outputs(out, ids)
    setup = setup_for(loc.meta, checkpoint, backbone=backbone, fps=fps, stride=stride, window=window, device=device)
    faults = Faults()
    results: dict[str, list[dict]] = {}
    with lock_folder(out, "gsmt detect"):
        # ...and again under the lock, which is what makes them hold: a file that appeared in between
        # (a film's subtitles copied in, a link made to an input) is judged as it is now, and no
        # other gsmt command that locks the folder can write here until this one is done.
        refuse_inputs_among(planned, index)
        refuse_foreign_outputs(out, ids)
        for vid, path in tqdm(list(zip(ids, paths)), desc="gsmt detect", unit="video", disable=not progress):
            try:
                dets, duration, video_faults = video_detections(loc, setup, path, batch_size=batch_size)
            except GsmtError as exc:
                faults.add("videos not processed (unreadable)")
                log.warning("%s", str(exc).replace("\n", " "))
                continue
            faults.merge(video_faults)
            rows = [{"label": d.label, "segment": [d.start, d.end], "score": d.score} for d in dets]
            results[vid] = rows
            js, vtt, png = _outputs(out, vid)
            atomic_write_text(js, json.dumps(
                {"video": str(path), "duration": duration, "backbone": setup.backbone.name,
                 "grid": {"fps": setup.fps, "feature_stride": setup.stride, "feature_window": setup.window},
                 "detections": rows}, indent=1) + "\n")
            atomic_write_text(vtt, webvtt(dets, duration, min_score=min_score) + "\n")
            labels = np.array([loc.classes.index(d.label) for d in dets], dtype=np.int64)
            plot_timeline(png, duration=duration, gt_segments=np.zeros((0, 2)),
                          gt_labels=np.zeros(0, np.int64),
                          pred_segments=np.array([[d.start, d.end] for d in dets]).reshape(-1, 2),
                          pred_labels=labels, pred_scores=np.array([d.score for d in dets]),
                          classes=loc.classes, video_id=vid, top=top)
        if not results:
            raise GsmtError(out, "no video could be processed")
        atomic_write_text(out / SUBMISSION, json.dumps(submission(results)) + "\n")
    if faults:
        log.warning("%s", faults.summary("gsmt detect"))
    return (f"detected actions in {len(results)} of {len(ids)} videos -> {out}/ (<id>.json, <id>.vtt, "
            f"<id>_timeline.png, detections.json)")
