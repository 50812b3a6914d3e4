"""`gsmt detect VIDEO... --checkpoint RUN --out DIR`: raw videos -> detections (JSON), WebVTT subtitles, a timeline PNG."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np

from gsmt.annotations.types import check_video_id
from gsmt.commands.common import add_video_run_options, video_device, video_extra
from gsmt.errors import Faults, GsmtError, counted
from gsmt.schema import option

log = logging.getLogger("gsmt.video")
SUBMISSION = "detections.json"

HELP = "videos -> detections JSON, WebVTT subtitles, timeline PNG (gsmt[video])"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("videos", nargs="+", metavar="VIDEO", help="video files (or folders of videos)")
    p.add_argument("--checkpoint", required=True, help="run directory (best, else last) or checkpoint file")
    p.add_argument("--out", required=True, help="folder for <id>.json, <id>.vtt, <id>_timeline.png, detections.json")
    p.add_argument("--backbone", help="a copy of the recorded backbone (checked by digest), or the backbone of a "
                                      "checkpoint that records none")
    p.add_argument("--fps", type=option(float, gt=0, le=1000), help="only when the checkpoint records no grid")
    p.add_argument("--feature-stride", type=option(int, ge=1), help="only when the checkpoint records no grid")
    p.add_argument("--feature-window", type=option(int, ge=1, le=4096),
                   help="only when the checkpoint records no grid")
    p.add_argument("--min-score", type=option(float, ge=0, le=1), default=0.3,
                   help="subtitles and timeline: lowest score shown (<id>.json keeps every detection)")
    p.add_argument("--max-cues", type=option(int, ge=1), help="subtitles: at most N cues, the best (default: all)")
    p.add_argument("--top", type=option(int, ge=1), help="timeline: at most N detections, the best (default: all); "
                   "past 20 the picture has one lane per class")
    add_video_run_options(p)


def run(args: argparse.Namespace) -> int:
    video_extra("detect", "pipeline")  # one line naming the missing extra, not an ImportError
    print(detect_videos(args.videos, args.checkpoint, args.out, backbone=args.backbone, fps=args.fps,
                        stride=args.feature_stride, window=args.feature_window, device=video_device(args.device),
                        batch_size=args.batch_size, min_score=args.min_score, max_cues=args.max_cues, top=args.top,
                        progress=not args.quiet, threads=args.threads))
    return 0


def detect_videos(videos: list[str], checkpoint: str, out: str | Path, *, backbone: str | None = None,
                  fps: float | None = None, stride: int | None = None, window: int | None = None,
                  device: str = "cpu", batch_size: int = 16, min_score: float = 0.3, max_cues: int | None = None,
                  top: int | None = None, progress: bool = True, threads: int | None = None) -> str:
    """The `gsmt detect` job: per video `<id>.json`, `<id>.vtt`, `<id>_timeline.png` in `out`, and
    `detections.json` (ActivityNet submission of all videos); returns the one-line summary. `threads`
    (`--threads`): torch's CPU threads and FFmpeg's decoding threads (None: their defaults)."""
    from gsmt.video.extract import torch_threads

    with torch_threads(threads):
        return _detect_videos(videos, checkpoint, out, backbone=backbone, fps=fps, stride=stride, window=window,
                              device=device, batch_size=batch_size, min_score=min_score, max_cues=max_cues,
                              top=top, progress=progress, threads=threads)


def _detect_videos(videos, checkpoint, out, *, backbone, fps, stride, window, device, batch_size, min_score,
                   max_cues, top, progress, threads) -> str:

    from gsmt.api import Localizer
    from gsmt.engine.predictor import submission
    from gsmt.engine.rundir import checkpoint_inputs
    from gsmt.io.guard import (
        check_output_location,
        lock_folder,
        refuse_overwriting_inputs,
    )
    from gsmt.io.owned import OwnedFolder, discard_outputs
    from gsmt.io.write import atomic_write_text, remove_temporaries
    from gsmt.video.frames import list_videos
    from gsmt.video.outputs import InputIndex, refuse_inputs_among
    from gsmt.video.pipeline import setup_for

    check_output_location(out, "folder")  # before Path(): Path("") is the working folder
    out = Path(out)
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
    owned = OwnedFolder(out, "gsmt detect")  # gsmt replaces only what its record says it wrote there
    owned.check_can_write(planned)
    setup = setup_for(loc.meta, checkpoint, backbone=backbone, fps=fps, stride=stride, window=window, device=device)
    faults = Faults()
    results: dict[str, list[dict]] = {}
    with lock_folder(out, "gsmt detect"):
        # ...and again under the lock, which is what makes them hold: a file that appeared in between
        # (a film's subtitles copied in, a link made to an input) is judged as it is now, and no
        # other gsmt command that locks the folder can write here until this one is done.
        refuse_inputs_among(planned, index)
        owned.check_can_write(planned)
        # What a killed detect (SIGKILL, SIGTERM: no cleanup runs) left of its atomic writes.
        remove_temporaries([*planned, owned.manifest])
        written: list[Path] = []
        try:
            try:
                _detect_all(loc, setup, ids, paths, out, owned, results, faults, batch_size=batch_size,
                            min_score=min_score, max_cues=max_cues, top=top, progress=progress, written=written,
                            threads=threads)
            finally:
                owned.save()  # what was written, even when stopped half-way (SIGTERM: row h4)
            if not results:
                raise GsmtError(out, "no video could be processed")
            atomic_write_text(out / SUBMISSION, json.dumps(submission(results)) + "\n")
            owned.record([out / SUBMISSION])
        except (GsmtError, OSError) as exc:
            # A write that failed part-way (a full disk) leaves no half output set: what this run
            # wrote goes, and the submission of an earlier run, which no longer matches the folder
            # (every planned file present is gsmt detect's: checked above, under the lock).
            if written:
                discard_outputs([*written, out / SUBMISSION], owned)
                problem = exc.problem if isinstance(exc, GsmtError) else f"cannot write: {exc.strerror or exc}"
                where = exc.where if isinstance(exc, GsmtError) else (exc.filename or out)
                raise GsmtError(where, f"{problem}; this run's {counted(len(written), 'output file')} "
                                       "were removed") from exc
            raise
    if faults:
        log.warning("%s", faults.summary("gsmt detect"))
    return (f"detected actions in {len(results)} of {counted(len(ids), 'video')} -> {out}/ (<id>.json, <id>.vtt, "
            f"<id>_timeline.png, detections.json)")


def _detect_all(loc, setup, ids, paths, out, owned, results, faults, *, batch_size, min_score, max_cues, top,
                progress, written, threads=None):
    """Each video's `<id>.json`, `<id>.vtt`, `<id>_timeline.png`, recorded as written (`owned`)."""
    from tqdm import tqdm

    from gsmt.io.write import atomic_write_text
    from gsmt.video.extract import VideoProgress
    from gsmt.video.pipeline import video_detections, webvtt
    from gsmt.viz.timeline import plot_timeline

    bar = tqdm(list(zip(ids, paths)), desc="gsmt detect", unit="video", disable=not progress)
    for vid, path in bar:
        try:
            dets, duration, video_faults = video_detections(loc, setup, path, batch_size=batch_size, threads=threads,
                                                            progress=VideoProgress.for_bar(bar, vid))
        except GsmtError as exc:
            faults.add("videos not processed (unreadable)")
            log.warning("%s", str(exc).replace("\n", " "))
            continue
        faults.merge(video_faults)
        rows = [{"label": d.label, "segment": [round(d.start, 3), round(d.end, 3)], "score": round(d.score, 6)}
                for d in dets]  # milliseconds, as the cues and `gsmt predict`'s submission
        results[vid] = rows
        js, vtt, png = _outputs(out, vid)
        written.append(js)  # before the write: what this run was writing goes too when it fails
        atomic_write_text(js, json.dumps(
            {"video": str(path), "duration": round(duration, 3), "backbone": setup.backbone.name,
             "grid": {"fps": setup.fps, "feature_stride": setup.stride, "feature_window": setup.window},
             "detections": rows}, indent=1) + "\n")
        owned.record([js], defer=True)  # each file as soon as it is written: a stop between two is recorded
        written.append(vtt)
        atomic_write_text(vtt, webvtt(dets, duration, min_score=min_score, max_cues=max_cues) + "\n")
        owned.record([vtt], defer=True)
        written.append(png)
        labels = np.array([loc.classes.index(d.label) for d in dets], dtype=np.int64)
        plot_timeline(png, duration=duration, gt_segments=None, gt_labels=None,  # no ground truth here
                      pred_segments=np.array([[d.start, d.end] for d in dets]).reshape(-1, 2),
                      pred_labels=labels, pred_scores=np.array([d.score for d in dets]),
                      classes=loc.classes, video_id=vid, top=top, min_score=min_score)
        owned.record([png], defer=True)


def _outputs(out: Path, vid: str) -> tuple[Path, Path, Path]:
    return out / f"{vid}.json", out / f"{vid}.vtt", out / f"{vid}_timeline.png"
