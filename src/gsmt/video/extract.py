"""`gsmt extract`: videos -> one `[T, D]` float32 `.npy` per video + `annotations.json` with the grid.

The output folder is a gsmt data folder (`gsmt train/predict --data OUT` read it with no extra
flag): `features/<id>.npy`, `extracted/<id>.json` (the decoded duration and frame counts of each
video: what a resumed run needs), `annotations.json` (ActivityNet JSON: per video duration, fps,
feature_stride, feature_window; the segments and subsets of `--annotations` when given; top-level
`gsmt` meta with the grid and the backbone record) and `extract.json` (backbone + grid of the
folder: a second run with another backbone or grid is refused, one with the same one resumes,
skipping the videos already done). Every file is written atomically.

Snippet i covers frames [i*S, i*S + W) of the video resampled to `fps` (`gsmt.video.grid`). A
video that cannot be read (corrupt, truncated to nothing, audio-only, empty) is a one-line warning
and a counted fault; the other videos are still processed. Under `torchrun`, process r takes every
world_size-th video from r, and rank 0 writes annotations.json once all are done.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gsmt.data.annotations import Annotations, Video, check_video_id, load_annotations, save_activitynet_json
from gsmt.errors import Faults, GsmtError
from gsmt.io import atomic_path, atomic_write_text, check_output_location, lock_folder
from gsmt.video.backbones import Backbone
from gsmt.video.decode import VideoReader, list_videos
from gsmt.video.grid import is_short, snippet_count, snippet_frames, window_sample

log = logging.getLogger("gsmt.video")
UNLABELLED = "all"  # subset of a video that --annotations does not list (gsmt.data.annotations.DEFAULT_SUBSET)


@dataclass
class Extracted:
    features: np.ndarray  # [n, D] float32
    duration: float  # decoded seconds
    frames: int  # resampled frames
    faults: Faults


def _pool_windows(frame_feats: np.ndarray, base: int, first: int, last: int, stride: int, window: int) -> np.ndarray:
    """Mean over each window i in [first, last) of per-frame features held from frame `base` on."""
    cs = np.concatenate([np.zeros((1, frame_feats.shape[1]), np.float64), np.cumsum(frame_feats, 0, dtype=np.float64)])
    starts = np.arange(first, last) * stride - base
    return ((cs[starts + window] - cs[starts]) / window).astype(np.float32)


def extract_video(path: str | Path, backbone: Backbone, fps: float, stride: int, window: int,
                  batch_size: int = 16) -> Extracted:
    """Features of one video on the grid (fps, stride, window); memory: a few windows of frames."""
    reader = VideoReader(path, fps, short_edge=backbone.short_edge)
    chunks: list[np.ndarray] = []
    if backbone.kind == "image":
        # Every frame is encoded once; a window's feature is the mean over its frames, pooled as
        # soon as the window is complete, so only the frames of unfinished windows are kept.
        pending: list[np.ndarray] = []
        held = np.zeros((0, backbone.feature_dim), np.float32)
        base = nxt = 0  # frame index of held[0]; next window to emit
        last = None
        def flush():
            nonlocal held, base, nxt, pending
            if pending:
                held = np.concatenate([held, backbone.encode_frames(np.stack(pending))])
                pending = []
            end = base + len(held)
            done = (end - window) // stride + 1 if end >= window else 0
            if done > nxt:
                chunks.append(_pool_windows(held, base, nxt, done, stride, window))
                nxt = done
            drop = min(nxt * stride - base, len(held))
            if drop > 0:
                held, base = held[drop:], base + drop
        for frame in reader:
            pending.append(frame)
            last = frame
            if len(pending) >= batch_size:
                flush()
        flush()
        n = snippet_count(reader.duration, fps, stride, window)
        if n > nxt:  # shorter than one window: the missing frames are the last one
            idx = snippet_frames(n, stride, window, reader.frames)[nxt:] - base
            chunks.append(held[idx].mean(1).astype(np.float32))
    else:
        offsets = window_sample(window, backbone.num_frames)
        needed = np.zeros(window, bool)
        needed[offsets] = True
        kept: dict[int, np.ndarray] = {}
        clips: list[np.ndarray] = []
        nxt = 0
        last = None
        def run_batch():
            nonlocal clips
            if clips:
                chunks.append(backbone.encode_clips(np.stack(clips)))
                clips = []
        for k, frame in enumerate(reader):
            last = frame
            # keep frame k when some window i (k - i*S in [0, W)) samples it
            lo = max(nxt, (k - window) // stride + 1)
            if any(needed[k - i * stride] for i in range(lo, k // stride + 1) if 0 <= k - i * stride < window):
                kept[k] = frame
            if k == nxt * stride + window - 1:
                clips.append(np.stack([kept[nxt * stride + o] for o in offsets]))
                nxt += 1
                for old in [j for j in kept if j < nxt * stride]:
                    del kept[old]
                if len(clips) >= batch_size:
                    run_batch()
        n = snippet_count(reader.duration, fps, stride, window)
        if n > nxt:
            for row in snippet_frames(n, stride, window, reader.frames)[nxt:]:
                clips.append(np.stack([kept.get(int(row[o]), last) for o in offsets]))
        run_batch()
    if last is None:
        raise GsmtError(path, "no decodable video frame")
    features = np.concatenate(chunks)[:n] if chunks else np.zeros((0, backbone.feature_dim), np.float32)
    faults = reader.faults
    if is_short(reader.duration, fps, window):
        faults.add("videos shorter than one window (one snippet, last frame repeated)")
    if not np.isfinite(features).all():
        raise GsmtError(path, "the backbone gave NaN/Inf features")
    return Extracted(features.astype(np.float32), float(reader.duration), reader.frames, faults)


# ---------------------------------------------------------------------------------- the job


def _grid_record(backbone: Backbone, fps: float, stride: int, window: int) -> dict:
    return {"backbone": backbone.record(), "grid": {"fps": float(fps), "feature_stride": int(stride),
                                                   "feature_window": int(window)}}


def _same_job(recorded: dict, job: dict) -> bool:
    b1, b2 = recorded.get("backbone") or {}, job["backbone"]
    return b1.get("digest") == b2["digest"] and recorded.get("grid") == job["grid"]


def _video_ids(paths: list[Path], source) -> list[str]:
    ids = [check_video_id(p.stem, source) for p in paths]
    seen: dict[str, Path] = {}
    for vid, p in zip(ids, paths):
        if vid in seen:
            raise GsmtError(source, f"two videos have the id '{vid}' ({seen[vid]}, {p}): ids are file names without suffix")
        seen[vid] = p
    return ids


def _dist():
    """(rank, world_size) under torchrun, with a process group to wait on; (0, 1) otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group(backend="gloo")
    return dist.get_rank(), world


def write_annotations(out: Path, ids: list[str], job: dict, labels: Annotations | None) -> tuple[Path, int]:
    """annotations.json of the extracted videos (those with features); returns (path, videos)."""
    grid = job["grid"]
    by_id = labels.by_id() if labels else {}
    classes = list(labels.classes) if labels else []
    videos = []
    for vid in ids:
        record_path = out / "extracted" / f"{vid}.json"
        if not (out / "features" / f"{vid}.npy").is_file() or not record_path.is_file():
            continue
        record = json.loads(record_path.read_text(encoding="utf-8"))
        gt = by_id.get(vid)
        videos.append(Video(id=vid, subset=gt.subset if gt else UNLABELLED, duration=float(record["duration"]),
                            segments=gt.segments if gt else np.zeros((0, 2)),
                            labels=gt.labels if gt else np.zeros(0, np.int64),
                            ambiguous=gt.ambiguous if gt else np.zeros((0, 2)),
                            fps=grid["fps"], feature_stride=grid["feature_stride"],
                            feature_window=grid["feature_window"]))
    if not videos:
        raise GsmtError(out, "no video could be extracted")
    meta = {k: v for k, v in (labels.meta if labels else {}).items()
            if k in ("temporal_mode", "train_subset", "eval_subset", "tiou")}
    meta.update({"grid": grid, "backbone": job["backbone"], "feature_layout": "TD"})
    path = out / "annotations.json"
    save_activitynet_json(Annotations(videos=videos, classes=classes, meta=meta), path)
    return path, len(videos)


def run_extract(videos: str | Path, backbone_name: str, out: str | Path, *, fps: float, stride: int, window: int,
                annotations: str | Path | None = None, device: str = "cpu", batch_size: int = 16,
                progress: bool = True) -> str:
    """The `gsmt extract` job; returns its one-line summary."""
    from tqdm import tqdm

    from gsmt.video.backbones import load_backbone

    out = Path(out)
    check_output_location(out, "folder")
    paths = list_videos(videos)
    ids = _video_ids(paths, videos)
    labels = load_annotations(annotations) if annotations else None
    backbone = load_backbone(backbone_name, device=device)
    job = _grid_record(backbone, fps, stride, window)
    rank, world = _dist()
    faults = Faults()
    done = skipped = 0
    with lock_folder(out, "gsmt extract") if rank == 0 else _nothing():
        record = out / "extract.json"
        if record.is_file():
            recorded = json.loads(record.read_text(encoding="utf-8"))
            if not _same_job(recorded, job):
                was = recorded.get("backbone", {}).get("id"), recorded.get("grid")
                raise GsmtError(out, f"holds features of another backbone or grid ({was[0]}, {was[1]}); "
                                     "choose another --out (resuming needs the same --backbone, --fps, "
                                     "--feature-stride, --feature-window)")
        elif rank == 0:
            atomic_write_text(record, json.dumps(job, indent=1) + "\n")
        mine = list(zip(ids, paths))[rank::world]
        bar = tqdm(mine, desc="gsmt extract", unit="video", disable=not progress or rank != 0, dynamic_ncols=True)
        for vid, path in bar:
            npy, info = out / "features" / f"{vid}.npy", out / "extracted" / f"{vid}.json"
            if npy.is_file() and info.is_file():
                skipped += 1  # resumed: done by an earlier run
                continue
            try:
                result = extract_video(path, backbone, fps, stride, window, batch_size)
            except GsmtError as exc:
                faults.add("videos not extracted (unreadable)")
                log.warning("%s", str(exc).replace("\n", " "))
                continue
            faults.merge(result.faults)
            with atomic_path(npy) as tmp:
                np.save(tmp, result.features)
            atomic_write_text(info, json.dumps({"duration": result.duration, "frames": result.frames,
                                                "snippets": int(len(result.features)), "source": str(path),
                                                "faults": dict(result.faults.counts)}) + "\n")
            done += 1
        if world > 1:
            import torch.distributed as dist

            dist.barrier()
        if rank != 0:
            return ""
        if faults:
            log.warning("%s", faults.summary("gsmt extract"))
        path, n = write_annotations(out, ids, job, labels)
    return (f"extracted {done} videos ({skipped} already done, {len(ids) - n} without features) with "
            f"{backbone_name} ({backbone.kind}, D={backbone.feature_dim}) at {fps:g} fps, stride {stride}, "
            f"window {window} -> {out / 'features'}, {path}")


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
