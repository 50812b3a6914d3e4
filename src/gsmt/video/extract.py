"""`gsmt extract`: videos -> one `[T, D]` float32 `.npy` per video + `annotations.json` with the grid.

The output folder is a gsmt data folder (`gsmt train/predict --data OUT` read it with no extra
flag): `features/<id>.npy`, `extracted/<id>.json` (the decoded duration and frame counts of each
video, and the video file's size and modification time: what a resumed run needs; a video file
replaced since is extracted again), `annotations.json` (ActivityNet JSON: per video duration, fps,
feature_stride, feature_window; the segments and subsets of `--annotations` when given; top-level
`gsmt` meta with the grid and the backbone record) and `extract.json` (backbone + grid of the
folder: a second run with another backbone or grid is refused, one with the same one resumes,
skipping the videos already done). Every file is written atomically.

Snippet i covers frames [i*S, i*S + W) of the video resampled to `fps` (`gsmt.data.grid`). A
video that cannot be read (corrupt, truncated to nothing, audio-only, empty) is a one-line warning
and a counted fault; the other videos are still processed. Under `torchrun`, process r takes every
world_size-th video from r, and rank 0 writes annotations.json once all are done: the folder is
byte for byte the one-process folder. Rank 0 holds the folder lock for the whole group; a refusal
or error on any rank ends every rank with that one-line error (`gsmt.engine.distributed.settle`), never a rank left
waiting at a collective for one that stopped.
"""

from __future__ import annotations

import json
import logging
import math
import re
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gsmt.annotations.types import Annotations, Video, check_video_id
from gsmt.annotations.load import load_annotations
from gsmt.annotations.write import save_activitynet_json
from gsmt.engine.distributed import gloo_group, settle
from gsmt.errors import Faults, GsmtError, counted
from gsmt.io.guard import check_output_location, lock_folder
from gsmt.io.owned import MANIFEST, OwnedFolder
from gsmt.io.write import atomic_path, atomic_write_text
from gsmt.video.backbones import Backbone
from gsmt.video.frames import VideoReader, check_threads, list_videos
from gsmt.data.grid import is_short, snippet_count, snippet_frames, window_sample

log = logging.getLogger("gsmt.video")
UNLABELLED = "all"  # subset of a video that --annotations does not list (gsmt.annotations.types.DEFAULT_SUBSET)
# A snippet of more frames than this is no action-localisation grid, and the video path keeps up to
# a window of decoded frames (4096 frames at 224 px: 600 MiB): refused rather than run out of memory.
MAX_WINDOW = 4096
# Frames (image backbones) or clips (video backbones) decoded and held before one forward pass: a
# bigger batch would hold the whole video's pixels, the memory the streamed decoding avoids.
MAX_BATCH = 1024
RECORD = "extract.json"
EXTRACT = "gsmt extract"  # the command named in the folder's record (gsmt.io.owned)


def check_settings(fps: float, stride: int, window: int, batch_size: int) -> None:
    """The grid and batch size of an extraction, checked before any video is read (Python callers
    get the bounds the CLI options check; a window or stride lasting beyond gsmt's longest video,
    MAX_SECONDS, is no grid: `--fps 1e-300` would put snippet 0 at 2e300 s)."""
    from gsmt.io.read import MAX_SECONDS

    if not (isinstance(fps, (int, float)) and not isinstance(fps, bool) and math.isfinite(fps) and 0 < fps <= 1000):
        raise GsmtError("--fps", f"must be a finite number in (0, 1000], got {fps!r}")
    for flag, value, top in (("--feature-stride", stride, None), ("--feature-window", window, MAX_WINDOW),
                             ("--batch-size", batch_size, MAX_BATCH)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1 \
                or (top is not None and value > top):
            bound = f"in [1, {top}]" if top else ">= 1"
            raise GsmtError(flag, f"must be an integer {bound}, got {value!r}")
    for flag, value in (("--feature-window", window), ("--feature-stride", stride)):
        if value / fps > MAX_SECONDS:
            raise GsmtError(flag, f"{value} frames at {fps:g} fps last {value / fps:.3g} s, longer than any video "
                                  f"gsmt takes ({MAX_SECONDS:g} s): raise --fps or lower {flag}")


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


@contextmanager
def torch_threads(threads: int | None):
    """torch's CPU threads set to `threads` for the block (`--threads`), then restored; None: unchanged."""
    threads = check_threads(threads)
    if threads is None:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class _Rows:
    """The features of one video, written in place into one float32 array grown by doubling (sized
    from the container's declared length): no list of per-batch arrays concatenated at the end (two
    more copies of the features at the end of a long video)."""

    # A header may declare any length (1e6 s): the first buffer is at most this big, then it doubles.
    FIRST_BYTES = 64 << 20

    def __init__(self, dim: int, expected: int):
        self.data = np.empty((max(16, min(expected, self.FIRST_BYTES // (4 * max(dim, 1)))), dim), np.float32)
        self.n = 0

    def append(self, rows: np.ndarray) -> None:
        end = self.n + len(rows)
        if end > len(self.data):
            grown = np.empty((max(end, 2 * len(self.data)), self.data.shape[1]), np.float32)
            grown[:self.n] = self.data[:self.n]
            self.data = grown
        self.data[self.n:end] = rows
        self.n = end

    def __len__(self) -> int:
        return self.n

    def take(self, n: int) -> np.ndarray:
        """The first n rows as their own array (the spare rows of the buffer are let go)."""
        n = min(n, self.n)
        return self.data[:n] if n == len(self.data) else self.data[:n].copy()


def extract_video(path: str | Path, backbone: Backbone, fps: float, stride: int, window: int,
                  batch_size: int = 16, threads: int | None = None, progress=None) -> Extracted:
    """Features of one video on the grid (fps, stride, window); memory: a few windows of frames
    and the features themselves. `threads` bounds FFmpeg's decoding threads (None: FFmpeg's default).
    `progress(frames, total)`, when given, is called after each forward pass (a batch of frames or
    clips, never per frame) with the resampled frames read so far and the total the container
    declares (None when it declares none), and once at the end with the frames read as the total."""
    import torch

    check_settings(fps, stride, window, batch_size)
    reader = VideoReader(path, fps, short_edge=backbone.short_edge, threads=threads)
    with torch.inference_mode():  # no autograd records (encode_* are no_grad already), no version counters
        return _extract(reader, path, backbone, fps, stride, window, batch_size, progress)


def _extract(reader: VideoReader, path, backbone: Backbone, fps: float, stride: int, window: int, batch_size: int,
             progress) -> Extracted:
    expected = reader.expected_frames
    chunks = _Rows(backbone.feature_dim, (expected - window) // stride + 2 if expected else 0)

    read = 0  # frames taken from the reader (reader.frames counts a frame once the next is asked for)

    def report() -> None:
        if progress is not None:  # past a declared length that was short: the total is unknown till the end
            progress(read, expected if expected is not None and read <= expected else None)

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
                report()
            end = base + len(held)
            done = (end - window) // stride + 1 if end >= window else 0
            if done > nxt:
                chunks.append(_pool_windows(held, base, nxt, done, stride, window))
                nxt = done
            drop = min(nxt * stride - base, len(held))
            if drop > 0:
                held, base = held[drop:], base + drop
        for read, frame in enumerate(reader, 1):  # `read`: the count report() gives
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
        distinct = sorted({int(o) for o in offsets})
        kept: dict[int, np.ndarray] = {}
        clips: list[np.ndarray] = []
        nxt = 0
        last = None
        def run_batch():
            nonlocal clips
            if clips:
                chunks.append(backbone.encode_clips(np.stack(clips)))
                clips = []
                report()
        for k, frame in enumerate(reader):
            read = k + 1
            last = frame
            # keep frame k when a window i >= nxt not yet encoded samples it: k = i*S + o for an offset
            # o (a loop over the num_frames offsets, not over the W/S windows open at frame k)
            if any(o <= k and (k - o) % stride == 0 and (k - o) // stride >= nxt for o in distinct):
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
    features = chunks.take(n)
    if progress is not None:
        progress(reader.frames, reader.frames)  # done: the frames read are the total
    faults = reader.faults
    if is_short(reader.duration, fps, window):
        faults.add("videos shorter than one window (one snippet, last frame repeated)")
    if not np.isfinite(features).all():
        raise GsmtError(path, "the backbone gave NaN/Inf features")
    return Extracted(features, float(reader.duration), reader.frames, faults)


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


def video_stamp(path: Path) -> dict:
    """What a done-record keeps of the video file it was extracted from: its size and modification
    time (a file replaced by another, 3 s -> 600 s, under the same name is extracted again)."""
    try:
        st = path.stat()
    except OSError as exc:
        raise GsmtError(path, f"cannot read: {exc.strerror or exc}") from None
    return {"size": int(st.st_size), "mtime_ns": int(st.st_mtime_ns)}


def _done_record(out: Path, vid: str) -> dict | None:
    """The `extracted/<id>.json` of a video whose features are written, or None (not done, or a
    record that is not what gsmt wrote: the video is extracted again rather than trusted)."""
    from gsmt.io.read import MAX_SECONDS, read_json

    npy, info = out / "features" / f"{vid}.npy", out / "extracted" / f"{vid}.json"
    if not (npy.is_file() and info.is_file()):
        return None
    try:
        record = read_json(info)
    except GsmtError:
        return None
    duration = record.get("duration") if isinstance(record, dict) else None
    if isinstance(duration, bool) or not isinstance(duration, (int, float)) or not 0 < duration <= MAX_SECONDS:
        return None
    return record


# Temporary files of gsmt.io.write.atomic_path (".<stem>.<random>.tmp<suffix>") that a killed run leaves
# behind; `gsmt predict --features OUT/features` would take a `.npy` one for a video.
_LEFTOVER = re.compile(r"^\..+\.tmp\.(npy|json)$")
# The file gsmt.io.guard.check_output_location creates and removes at once to see that --out is writable:
# another rank of this run (or another gsmt command about to be refused by the lock) may be probing
# the folder while this process lists it, so one is no sign of foreign content.
_PROBE_PREFIX = ".gsmt-probe."


def _remove_leftovers(out: Path) -> int:
    """Remove what killed runs left of their atomic writes in the folders gsmt extract owns."""
    removed = 0
    for folder in (out / "features", out / "extracted", out):
        if not folder.is_dir():
            continue
        for entry in folder.iterdir():
            if _LEFTOVER.match(entry.name) and entry.is_file() and not entry.is_symlink() and (
                    folder != out or entry.name.startswith((".annotations.", ".extract.", ".gsmt-outputs."))):
                entry.unlink(missing_ok=True)
                removed += 1
    return removed


def _has_outputs(out: Path) -> bool:
    """Whether the folder holds a feature file or a done-record (of any run): the job record of a
    folder without either binds nothing, so it may be replaced or removed."""
    for folder, suffix in ((out / "features", ".npy"), (out / "extracted", ".json")):
        try:
            if any(p.suffix == suffix and not _LEFTOVER.match(p.name) for p in folder.iterdir()):
                return True
        except OSError:
            continue
    return (out / "annotations.json").exists()


def _discard_empty_job(out: Path) -> None:
    """After a failed run: the job record (and the empty folders) of a folder that received no
    output, so that a corrected rerun (another backbone, another grid) is not refused for features
    that were never written. A folder with outputs keeps its record."""
    if _has_outputs(out):
        return
    (out / RECORD).unlink(missing_ok=True)
    for folder in (out / "features", out / "extracted"):
        try:
            folder.rmdir()  # only when empty
        except OSError:
            pass


def _record_outputs(owned: OwnedFolder, outputs: list[Path], before: dict) -> None:
    """Rank 0, every rank done writing, however the run ended (finished, failed, interrupted): record
    the outputs this run wrote (new or rewritten since `before`, the claim's stamps) in the folder's
    record (`gsmt.io.owned`), so that the next run (a resume) may replace them and nothing else.
    Once per run, not per video: each file it wrote is read once more (a feature file is small
    beside the video it came from); a run killed before this point is covered by its lock file
    (`OwnedFolder.adopt`)."""
    try:
        owned.record_written(outputs, before)
        owned.remove_if_empty()  # a run that failed before its first output left nothing
    except (GsmtError, OSError) as exc:  # the run's own error, if any, is the one to show
        log.warning("%s: the outputs of this run were not recorded: %s", owned.folder, exc)


def _recorded_job(out: Path) -> dict | None:
    """The job recorded in an existing --out (None for a new or empty folder). A folder holding
    anything else is refused: gsmt extract writes `annotations.json` and `features/<id>.npy`, which
    would replace the files of a data set, a model folder or a run someone put there."""
    from gsmt.io.guard import LOCK_NAME
    from gsmt.io.read import read_json

    if not out.is_dir():
        return None
    record = out / RECORD
    if not (record.exists() or record.is_symlink()):
        # A run killed before it wrote extract.json leaves at most its lock file; another gsmt process
        # may be writing extract.json through a temporary file right now, or probing the folder.
        try:
            entries = [p.name for p in out.iterdir()]
        except OSError as exc:
            raise GsmtError(out, f"cannot list the folder: {exc.strerror or exc}") from None
        # gsmt's record of a run whose outputs are gone (a failed run's) holds nothing of anyone's.
        if any(name not in (LOCK_NAME, MANIFEST) and not _LEFTOVER.match(name) and not name.startswith(_PROBE_PREFIX)
               for name in entries):
            raise GsmtError(out, f"is not empty and holds no {RECORD} of an earlier gsmt extract: choose a new or "
                                 "empty folder for --out (gsmt extract never writes among other files)")
        return None
    if not record.is_file() or record.is_symlink():
        raise GsmtError(record, "is not a regular file, so not the record of an earlier gsmt extract: choose "
                                "another --out")
    recorded = read_json(record)
    ok = isinstance(recorded, dict) and isinstance(recorded.get("grid"), dict) \
        and isinstance(recorded.get("backbone"), dict) and isinstance(recorded["backbone"].get("digest"), str)
    if not ok:
        raise GsmtError(record, "is not the record of an earlier gsmt extract (an object with 'backbone' and "
                                "'grid'): choose another --out")
    return recorded


def write_annotations(out: Path, ids: list[str], job: dict, labels: Annotations | None) -> tuple[Path, int]:
    """annotations.json of the extracted videos (those with features); returns (path, videos)."""
    grid = job["grid"]
    by_id = labels.by_id() if labels else {}
    classes = list(labels.classes) if labels else []
    videos = []
    for vid in ids:
        record = _done_record(out, vid)
        if record is None:
            continue
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


class VideoProgress:
    """Progress within one video on the postfix of the per-video bar (`extract_video(progress=...)`):

        gsmt extract:   0%|          | 0/1 [00:12<?, ?video/s, long: 9600/36000 frames, 790 frames/s, 00:33 left]

    frames read of the total the container declares, the rate since the video began and the time
    left at that rate (frames alone when the container declares no length). The bar is redrawn at
    most every `interval` seconds and once at the end of the video (done == total), never per frame;
    it writes where and how the bar writes. Use `for_bar`, which gives None for a disabled bar
    (`--quiet`, ranks other than 0), so nothing is computed or written there."""

    def __init__(self, bar, name: str, *, interval: float = 0.5, clock=None):
        import time

        from tqdm import tqdm

        self.format_interval = tqdm.format_interval
        self.bar, self.interval = bar, interval
        self.clock = clock or time.monotonic
        self.name = name if len(name) <= 32 else name[:15] + "..." + name[-14:]
        self.start = self.clock()
        self.shown = None  # when the bar was last redrawn
        self.text = ""

    @classmethod
    def for_bar(cls, bar, name: str, **kwargs) -> VideoProgress | None:
        return None if getattr(bar, "disable", True) else cls(bar, name, **kwargs)

    def __call__(self, done: int, total: int | None) -> None:
        now = self.clock()
        final = total is not None and done >= total
        if not final and self.shown is not None and now - self.shown < self.interval:
            return
        self.shown = now
        elapsed = now - self.start
        rate = done / elapsed if elapsed > 0 else 0.0
        text = f"{self.name}: {done}/{total} frames" if total is not None else f"{self.name}: {done} frames"
        if rate > 0:
            text += f", {rate:.0f} frames/s"
            if total is not None and not final:
                text += f", {self.format_interval((total - done) / rate)} left"
        self.text = text
        self.bar.set_postfix_str(text, refresh=True)


def run_extract(videos: str | Path, backbone_name: str, out: str | Path, *, fps: float, stride: int, window: int,
                annotations: str | Path | None = None, device: str = "cpu", batch_size: int = 16,
                progress: bool = True, threads: int | None = None) -> str:
    """The `gsmt extract` job; returns its one-line summary ("" on the ranks other than 0). `threads`
    (`--threads`): torch's CPU threads and FFmpeg's decoding threads (None: their defaults)."""
    check_threads(threads)
    # The process group comes first: every later check may fail on one rank only (rank 0 alone
    # takes the lock), and the ranks can only agree on a failure once they are a group.
    if str(out) == "":  # Path("") is the working folder: refused before it becomes one
        check_output_location(out, "folder")
    rank, world, made = gloo_group()
    try:
        with torch_threads(threads):
            return _extract_job(videos, backbone_name, Path(out), fps=fps, stride=stride, window=window,
                                annotations=annotations, device=device, batch_size=batch_size,
                                progress=progress, rank=rank, world=world, threads=threads)
    finally:
        if made:
            from gsmt.engine.distributed import leave_group

            leave_group()


def _extract_job(videos, backbone_name: str, out: Path, *, fps, stride, window, annotations, device, batch_size,
                 progress, rank: int, world: int, threads: int | None = None) -> str:
    from tqdm import tqdm

    from gsmt.video.backbones import load_backbone
    from gsmt.video.outputs import InputIndex, refuse_inputs_among

    # Step 1, every rank: the checks and loads that need no lock, before any work.
    failure = None
    try:
        check_settings(fps, stride, window, batch_size)
        check_output_location(out, "folder")
        paths = list_videos(videos)
        ids = _video_ids(paths, videos)
        # No output may replace an input: `--annotations OUT/annotations.json` (resuming with the earlier
        # output as ground truth) would be replaced by a file made from it; a list of videos or a
        # backbone folder inside OUT likewise.
        listed = Path(videos)
        inputs = InputIndex({"--videos": [*paths, *([listed] if listed.is_file() else [])],
                             "--annotations": annotations,
                             "--backbone": backbone_name if Path(backbone_name).is_dir() else None})
        outputs = [out / "annotations.json", out / RECORD, *(out / "features" / f"{vid}.npy" for vid in ids),
                   *(out / "extracted" / f"{vid}.json" for vid in ids)]
        refuse_inputs_among(outputs, inputs)
        # A file at an output name is this command's (the folder's record says so) or refused naming it,
        # before any work; then a folder holding anything else is refused as before.
        owned = OwnedFolder(out, EXTRACT)
        owned.check_can_write(outputs, killed=owned.lock_owner())
        _recorded_job(out)
        labels = load_annotations(annotations) if annotations else None
        backbone = load_backbone(backbone_name, device=device)
        job = _grid_record(backbone, fps, stride, window)
    except Exception as exc:  # noqa: BLE001 - settled on every rank, then raised
        failure = exc
    settle(world, failure, who="gsmt extract")

    # Step 2, rank 0 for the group: the folder lock, held until every rank has written its share.
    lock, failure, claimed = None, None, {}
    try:
        if rank == 0:
            try:
                lock = lock_folder(out, "gsmt extract")
                # Again under the lock: another process may have written into the folder since step 1.
                refuse_inputs_among(outputs, inputs)
                owned.check_can_write(outputs, killed=lock.took_over)
                owned.adopt(outputs, lock.took_over)  # what a killed extract wrote and could not record
                claimed = owned.stamps(outputs)
                recorded = _recorded_job(out)
                # The folder is ours and no process of this job has written yet (the other ranks wait
                # for this step): what killed runs left of their atomic writes goes now.
                _remove_leftovers(out)
                if recorded is not None and not _same_job(recorded, job) and not _has_outputs(out):
                    # The record of a run that wrote nothing (it failed or was killed before its
                    # first feature file): it binds nothing, this run's job replaces it.
                    log.warning("%s: replacing the record of an earlier run that wrote no features",
                                out / RECORD)
                    recorded = None
                if recorded is None:
                    atomic_write_text(out / RECORD, json.dumps(job, indent=1) + "\n")
                    owned.record([out / RECORD])
                elif not _same_job(recorded, job):
                    was = recorded.get("backbone", {}).get("id"), recorded.get("grid")
                    raise GsmtError(out, f"holds features of another backbone or grid ({was[0]}, {was[1]}); "
                                         "choose another --out (resuming needs the same --backbone, --fps, "
                                         "--feature-stride, --feature-window)")
            except Exception as exc:  # noqa: BLE001 - settled on every rank, then raised
                failure = exc
        settle(world, failure, who="gsmt extract")

        try:
            # Step 3, every rank: its share of the videos. An unreadable video is a counted fault; an
            # error that stops the share (a full disk) is settled with the others before annotations.
            faults = Faults()
            done = skipped = changed = 0
            failure = None
            try:
                mine = list(zip(ids, paths))[rank::world]
                bar = tqdm(mine, desc="gsmt extract", unit="video", disable=not progress or rank != 0,
                           dynamic_ncols=True)
                for vid, path in bar:
                    npy, info = out / "features" / f"{vid}.npy", out / "extracted" / f"{vid}.json"
                    record = _done_record(out, vid)
                    try:
                        stamp = video_stamp(path)
                        if record is not None:
                            if record.get("video") == stamp:
                                skipped += 1  # resumed: done by an earlier run, from this very file
                                continue
                            # Another file under this name since (or a record of a gsmt that kept no
                            # stamp): its features are stale. The record goes first, so a failed
                            # extraction below leaves the video not done rather than the old features.
                            changed += 1
                            info.unlink(missing_ok=True)
                            npy.unlink(missing_ok=True)
                        result = extract_video(path, backbone, fps, stride, window, batch_size, threads,
                                               progress=VideoProgress.for_bar(bar, vid))
                    except GsmtError as exc:
                        faults.add("videos not extracted (unreadable)")
                        log.warning("%s", str(exc).replace("\n", " "))
                        continue
                    faults.merge(result.faults)
                    with atomic_path(npy) as tmp:
                        np.save(tmp, result.features)
                    atomic_write_text(info, json.dumps({"duration": result.duration, "frames": result.frames,
                                                        "snippets": int(len(result.features)), "source": str(path),
                                                        "video": stamp, "faults": dict(result.faults.counts)})
                                       + "\n")
                    done += 1
            except Exception as exc:  # noqa: BLE001 - settled on every rank, then raised
                failure = exc
            shares = settle(world, failure, (done, skipped, dict(faults.counts), changed), who="gsmt extract")
            # The counts of all ranks: the summary and the fault line are the one-process ones.
            done, skipped, changed = (sum(s[i] for s in shares) for i in (0, 1, 3))
            faults = Faults()
            for share in shares:
                for kind, n in share[2].items():
                    faults.add(kind, n)

            # Step 4, rank 0: annotations.json of every rank's videos; its failure is every rank's.
            failure, path, n = None, None, 0
            if rank == 0:
                try:
                    # Every process has finished its atomic writes (step 3 is settled), so any temporary
                    # file left in the folder is from a killed run.
                    _remove_leftovers(out)
                    if faults:
                        log.warning("%s", faults.summary("gsmt extract"))
                    path, n = write_annotations(out, ids, job, labels)
                except Exception as exc:  # noqa: BLE001 - settled on every rank, then raised
                    failure = exc
            settle(world, failure, who="gsmt extract")
        except Exception:
            # Settled: every rank has stopped writing. A run that wrote nothing leaves no job record
            # that would refuse (or bind) the corrected rerun.
            if rank == 0:
                _discard_empty_job(out)
            raise
    finally:
        if lock is not None:
            _record_outputs(owned, outputs, claimed)
            lock.release()
    if rank != 0:
        return ""
    again = f", {changed} changed since and extracted again" if changed else ""
    return (f"extracted {counted(done, 'video')} ({skipped} already done{again}, {len(ids) - n} without features) "
            f"with "
            f"{backbone_name} ({backbone.kind}, D={backbone.feature_dim}) at {fps:g} fps, stride {stride}, "
            f"window {window} -> {out / 'features'}, {path}")
