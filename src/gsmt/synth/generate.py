"""Synthetic TAL datasets (`gsmt synth`): timelines plus rendered features, deterministic for a seed.

Timelines come from a preset (drawn to match the real THUMOS14 / ActivityNet statistics), from the
real THUMOS14 / ActivityNet-1.3 / MultiTHUMOS timelines shipped with the package (`--timelines
thumos14` / `activitynet13` / `multithumos`, see `gsmt.annotations.packaged`) or from any annotation
file (`gsmt.synth.timelines`).
Features are rendered by one of the feature models in `gsmt.synth.models` (`prototype` by default,
DESIGN.md section 7).

Every random stream is keyed by the seed (and by the video id for per-video content), so a video's
features do not depend on which other videos are rendered.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from gsmt.annotations.types import Annotations
from gsmt.annotations.write import save_activitynet_json
from gsmt.annotations.packaged import TIMELINES_TIOU, timelines_label, timelines_path
from gsmt.data.grid import Grid
from gsmt.errors import GsmtError
from gsmt.io.guard import LOCK_NAME, check_output_location, is_within, refuse_overwriting_inputs
from gsmt.io.owned import MANIFEST, OwnedFolder, discard_outputs
from gsmt.io.write import atomic_path
from gsmt.synth.models import FEATURE_MODELS
from gsmt.synth.models.common import TIMELINES, stream
from gsmt.synth.models.prototype import RenderParams
from gsmt.synth.timelines import PRESETS, load_timelines, make_timelines


@dataclass
class SynthSummary:
    """What `generate` wrote."""

    out_dir: Path
    videos_per_subset: dict[str, int]
    instances: int
    classes: int
    bytes_on_disk: int
    seconds: float

    def line(self) -> str:
        subsets = ", ".join(f"{n} {s}" for s, n in self.videos_per_subset.items())
        videos = sum(self.videos_per_subset.values())
        return (
            f"wrote {videos} videos ({subsets}), {self.instances} instances, {self.classes} classes, "
            f"{self.bytes_on_disk / 2**20:.1f} MiB to {self.out_dir} in {self.seconds:.1f} s"
        )


SYNTH = "gsmt synth"  # the command named in the folder's record (gsmt.io.owned)


def is_synth_output(folder: str | Path) -> bool:
    """Whether the record of `folder` (`gsmt.io.owned`) says `gsmt synth` wrote its `annotations.json`
    (an annotation file with synth's meta, copied or hand-made, is not enough)."""
    folder = Path(folder)
    if not folder.is_dir():
        return False
    path = folder / "annotations.json"
    return path.exists() and not OwnedFolder(folder, SYNTH).foreign([path])


def _check_out_dir(out: Path, overwrite: bool) -> OwnedFolder:
    """Refuse an --out that synth may not write; with --overwrite, remove the previous dataset's files.

    Only files the folder's record says gsmt synth wrote, unchanged since, are removed (stale features
    would pose as data): a real dataset, a user's `annotations.json` or feature file, or a dataset of
    a gsmt that kept no record is refused naming the file. Other files stay, as before."""
    if out.exists() and not out.is_dir():
        raise GsmtError(out, "exists and is not a folder")
    owned = OwnedFolder(out, SYNTH)
    # gsmt's own record and lock alone (a failed run's, its dataset gone) make no folder non-empty.
    if out.is_dir() and any(p.name not in (MANIFEST, LOCK_NAME) for p in out.iterdir()):
        if not overwrite:
            raise GsmtError(out, "exists and is not empty (pass --overwrite to replace it)")
        features = sorted((out / "features").glob("*.npy")) if (out / "features").is_dir() else []
        owned.check_can_write([out / "annotations.json", *features])
        (out / "annotations.json").unlink(missing_ok=True)
        for f in features:
            f.unlink()
        if owned.manifest.is_file():
            owned.save()  # drops the entries of the removed files
    return owned


# A video's features are rendered whole, with float64 intermediates of about 2 KiB a snippet (plus
# 8 bytes a snippet per instance), so one video is bounded in snippets and in feature bytes (a
# 1e6-s video on a 30-fps, stride-8 grid at D = 256 was 3.6 GiB at once). 524,288 snippets are
# 39 h of THUMOS-like video; 512 MiB of features are D = 256 at that length.
MAX_VIDEO_SNIPPETS = 2**19
MAX_VIDEO_FEATURE_BYTES = 512 * 2**20


def _size(n: float) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"


def check_video_sizes(videos, grid: Grid, feature_dim: int, source) -> None:
    """Refuse, before anything is written, a video past `MAX_VIDEO_SNIPPETS` or `MAX_VIDEO_FEATURE_BYTES`."""
    for v in videos:
        n = grid.num_snippets(v.duration)
        need = n * feature_dim * 4
        if n > MAX_VIDEO_SNIPPETS or need > MAX_VIDEO_FEATURE_BYTES:
            raise GsmtError(source if source is not None else "gsmt synth",
                            f"video '{v.id}' ({v.duration:.0f} s) would be {n} snippets x {feature_dim} dims, "
                            f"{_size(need)} of features; gsmt synth renders at most {MAX_VIDEO_SNIPPETS} snippets "
                            f"and {_size(MAX_VIDEO_FEATURE_BYTES)} per video (a shorter video, a lower --fps, "
                            "a larger --feature-stride or a smaller --feature-dim)")


def _remove_partial(written: list[Path], made: list[Path], owned: OwnedFolder) -> None:
    discard_outputs(written, owned)  # the features and their entries in the record
    try:
        owned.remove_if_empty()  # nothing of synth's left: the folder is as empty as before
    except (GsmtError, OSError):
        pass
    for folder in reversed(made):  # features/ first, then OUT; only when empty (a user's file stays)
        try:
            folder.rmdir()
        except OSError:
            pass


def _positive(name: str, value, kind=int):
    if value is None:
        return None
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise GsmtError(name, f"must be a positive number, got {value!r}")
    if kind is int and int(value) != value:
        raise GsmtError(name, f"must be a positive integer, got {value!r}")
    return kind(value)


def generate(
    out_dir: str | Path,
    *,
    preset: str,
    timelines: str | Path | None = None,
    videos: int | None = None,
    feature_dim: int = 256,
    difficulty: float | None = None,
    seed: int = 0,
    num_classes: int | None = None,
    fps: float | None = None,
    feature_stride: int | None = None,
    feature_window: int | None = None,
    overwrite: bool = False,
    params: RenderParams | None = None,
    feature_model: str = "prototype",
) -> SynthSummary:
    """Write `annotations.json` and `features/<video_id>.npy` ([T, D] float32) to out_dir.

    With `timelines` (a packaged name, `thumos14`, `activitynet13`, `multithumos`, or a file), the
    videos (and classes) of those annotations are used as they are and `videos` takes a seeded
    sample stratified by subset; otherwise `make_timelines` draws them. `feature_model` picks how
    actions become features (`prototype`, `phases`, `motion`: `gsmt.synth.models.FEATURE_MODELS`).
    """
    start = time.perf_counter()
    if preset not in PRESETS:
        raise GsmtError("--preset", f"unknown preset {preset!r} (choose from {', '.join(PRESETS)})")
    p = PRESETS[preset]
    videos = _positive("--videos", videos)
    feature_dim = _positive("--feature-dim", feature_dim)
    num_classes = _positive("--classes", num_classes)
    fps = _positive("--fps", fps, float) or p.fps
    feature_stride = _positive("--feature-stride", feature_stride) or p.feature_stride
    feature_window = _positive("--feature-window", feature_window) or p.feature_window
    if feature_model not in FEATURE_MODELS:
        raise GsmtError("--feature-model", f"unknown feature model {feature_model!r} (choose from {', '.join(FEATURE_MODELS)})")
    if difficulty is None:  # each feature model's frozen calibration
        difficulty = FEATURE_MODELS[feature_model].difficulty
    if not (isinstance(difficulty, (int, float)) and math.isfinite(difficulty) and difficulty >= 0):
        raise GsmtError("--difficulty", f"must be a number >= 0, got {difficulty!r}")
    if timelines is not None:  # resolved before the output folder is touched
        label, timelines = timelines_label(timelines), timelines_path(timelines)
    if str(out_dir) == "":  # Path("") is the working folder: refused before it becomes one
        check_output_location(out_dir, "folder")
    out = Path(out_dir)
    if timelines is not None:  # an input that the output would replace
        refuse_overwriting_inputs(out / "annotations.json", {"--timelines": timelines})
        if (out / "features").is_dir() and is_within(timelines, out / "features"):
            raise GsmtError(timelines, "lies in the output's features folder: choose another --out")
    check_output_location(out, "folder")

    # The timelines are read and every video's size checked before the output folder is touched
    # (with --overwrite a bad timelines file no longer costs the previous dataset).
    if timelines is not None:
        if num_classes is not None:
            raise GsmtError("--classes", "cannot be combined with --timelines (the file's classes are used)")
        chosen, classes = load_timelines(timelines, videos, seed)
    else:
        chosen, classes = make_timelines(p, videos or p.num_videos, stream(seed, TIMELINES), num_classes=num_classes)
    if not classes:
        raise GsmtError(timelines, "has no action classes")

    # The grid describes the rendered features, so it replaces any fps the source carried.
    chosen = [replace(v, fps=fps, feature_stride=feature_stride, feature_window=feature_window) for v in chosen]
    grid = Grid(fps, feature_stride, feature_window)
    check_video_sizes(chosen, grid, feature_dim, timelines)
    owned = _check_out_dir(out, overwrite)
    base = params or RenderParams()
    model = FEATURE_MODELS[feature_model]
    if feature_model == "prototype":  # the one model with render knobs (`params`), recorded in the meta
        world = model.world(len(classes), feature_dim, seed, difficulty, params=base)
    else:
        world = model.world(len(classes), feature_dim, seed, difficulty)
    render = model.render
    meta = {
        "preset": p.name,
        "grid": {"fps": fps, "feature_stride": feature_stride, "feature_window": feature_window},
        "difficulty": float(difficulty),
        "seed": int(seed),
        "feature_dim": int(feature_dim),
        "feature_layout": "TD",  # a video as long as D snippets would be ambiguous otherwise
        **p.decoding(),
        "timelines": None if timelines is None else label,
        **({"tiou": TIMELINES_TIOU[label]} if timelines is not None and label in TIMELINES_TIOU else {}),
        "render": asdict(base) if feature_model == "prototype" else {"difficulty": float(difficulty)},
        "feature_model": feature_model,
    }
    ann = Annotations(videos=chosen, classes=classes, meta=meta)

    feat_dir = out / "features"
    made = [d for d in (out,) if not d.is_dir()] + [feat_dir]  # features/ goes when empty, whoever made it
    written: list[Path] = []
    size = 0
    try:
        feat_dir.mkdir(parents=True, exist_ok=True)
        for v in chosen:
            feats = render(v, world, seed, grid)
            path = feat_dir / f"{v.id}.npy"
            # No fsync per file (thousands of them dominate the time on some disks): annotations.json,
            # written last and durably, marks the folder complete.
            with atomic_path(path, fsync=False) as tmp, open(tmp, "wb") as f:
                np.save(f, feats)
            written.append(path)
            size += path.stat().st_size
            # Hashed once, as written (still in the page cache); the record is saved every few seconds,
            # so a killed synth leaves at most those seconds of features unrecorded (refused, as detect's).
            owned.record([path], defer=True)
        # Written last: a folder with annotations.json is complete.
        save_activitynet_json(ann, out / "annotations.json")
        size += (out / "annotations.json").stat().st_size
        owned.record([out / "annotations.json"])
    except BaseException as exc:
        # A failed write (a full disk) or a stop leaves no half dataset: the features written so far
        # go, and the folders this run made; the next `gsmt synth` (--overwrite) starts clean.
        _remove_partial(written, made, owned)
        if isinstance(exc, OSError):
            raise GsmtError(out, f"cannot write: {exc.strerror or exc}; nothing of the dataset was kept") from exc
        if isinstance(exc, GsmtError):
            raise GsmtError(exc.where, f"{exc.problem}; nothing of the dataset was kept") from exc
        raise

    per_subset: dict[str, int] = {}
    for v in chosen:
        per_subset[v.subset] = per_subset.get(v.subset, 0) + 1
    return SynthSummary(
        out_dir=out,
        videos_per_subset=dict(sorted(per_subset.items(), key=lambda kv: kv[0] != p.train_subset)),
        instances=sum(len(v.segments) for v in chosen),
        classes=len(classes),
        bytes_on_disk=size,
        seconds=time.perf_counter() - start,
    )
