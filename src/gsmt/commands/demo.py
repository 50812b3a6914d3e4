"""`gsmt demo`: synthetic data -> train -> predict -> evaluate -> results table and pictures (`--video`: from mp4 clips)."""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import shutil
import time
from pathlib import Path

import numpy as np

from gsmt.commands.common import video_extra
from gsmt.errors import GsmtError, counted
from gsmt.io.guard import LOCK_NAME, check_output_location, lock_folder
from gsmt.io.owned import MANIFEST, OwnedFolder
from gsmt.io.write import atomic_write_text
from gsmt.schema import DEMO_MIN_VIDEOS, SEED_MAX, option

HELP = "synthetic data -> train -> predict -> evaluate -> table and pictures"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", choices=["thumos-like", "anet-like"],
                   help="synthetic dataset (default thumos-like; not with --video, whose clips are one kind)")
    p.add_argument("--out", default="demo_out", help="output folder")
    p.add_argument("--overwrite", action="store_true", help="replace a previous demo output folder")
    p.add_argument("--videos", type=option(int, ge=DEMO_MIN_VIDEOS), help="synthetic videos (default: the demo's size)")
    p.add_argument("--seed", type=option(int, ge=0, le=SEED_MAX), default=0)
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a training config value (with --video too: its training step)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--video", action="store_true",
                   help="the raw-video path instead (gsmt[video]): mp4 clips -> extract -> train -> detect, "
                        "subtitles and timeline (default --out demo_video_out)")


def run(args: argparse.Namespace) -> int:
    if args.out == "":  # Path("") is the working folder: refused before it becomes one
        check_output_location(args.out, "folder")
    if args.video:
        if args.preset is not None:
            # The preset picks the synthetic feature dataset of the feature demo; the video demo's data
            # are its mp4 clips, of one kind: a preset would be silently ignored.
            raise GsmtError("--preset", "gsmt demo --video has no preset (its data are synthetic mp4 clips of "
                                        "one kind): leave --preset out; --videos sets their number, --set the "
                                        "training config")
        video_extra("demo --video", "extract")  # one line naming the missing extra, not an ImportError
        out = Path(args.out) if args.out != "demo_out" else Path("demo_video_out")
        run_video_demo(out=out, overwrite=args.overwrite, videos=args.videos or 48, seed=args.seed,
                       overrides=args.overrides, progress=not args.quiet)
        return 0
    run_demo(preset=args.preset or "thumos-like", out=Path(args.out), overwrite=args.overwrite, videos=args.videos,
             seed=args.seed, overrides=args.overrides, progress=not args.quiet)
    return 0


# Sized so the whole demo runs in a few minutes on a 2-core laptop CPU.
DEMO_SIZES = {"thumos-like": {"videos": 120, "feature_dim": 64}, "anet-like": {"videos": 400, "feature_dim": 64}}


def _pick_video(videos, results: dict):
    """A video worth showing: a handful of ground-truth instances and some detections."""
    def badness(v):
        n = len(v.segments)
        return (not results.get(v.id), abs(n - 4))
    return min(videos, key=badness)


# What `gsmt demo` writes into its folder: `--overwrite` removes these and nothing else, and only
# when the folder's record (`gsmt.io.owned`, `.gsmt-outputs.json`) says the demo wrote every file in them.
DEMO_ENTRIES = ("data", "run", "metrics.json", "predictions.json", "timeline.png", "mask.png", "curves.png",
                "analysis.json", "fp_profile.png", "fp_pie.png", "map_bins.png")
_TEMP = re.compile(r"^\..+\.tmp\.[A-Za-z0-9]+$")  # gsmt.io.write.atomic_path's temporary files


def _check_demo_folder(out: Path, overwrite: bool, entries: tuple[str, ...], command: str) -> OwnedFolder:
    """Refuse a folder the demo may not write: other entries than the demo's, or a file among them that
    the folder's record does not say this demo wrote (a user's `metrics.json`, a `data/` of one's own,
    an unchanged-looking file edited since). Without `overwrite`, a previous demo is refused too."""
    if out.exists() and not out.is_dir():
        raise GsmtError(out, "exists and is not a folder")
    owned = OwnedFolder(out, command)
    if not out.exists():
        return owned
    listing = [p for p in sorted(out.iterdir()) if p.name not in (LOCK_NAME, MANIFEST) and not _TEMP.match(p.name)]
    foreign = [p.name for p in listing if p.name not in entries]
    if foreign:
        shown = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
        raise GsmtError(out, f"folder exists, is not empty and is not a {command} folder (holds {shown}); "
                             "--overwrite only replaces a previous demo: choose another --out")
    owned.check_can_write(listing)
    if listing and not overwrite:
        raise GsmtError(out, "output folder exists and is not empty (use --overwrite)")
    return owned


def _clear_and_run(out: Path, overwrite: bool, entries: tuple[str, ...], command: str, job):
    """Under the folder's lock: check again, remove the previous demo's entries, run `job()`, and record
    what it wrote (also when it fails half-way, so that a rerun with --overwrite may replace it)."""
    _check_demo_folder(out, overwrite, entries, command)  # before the lock file is created in it
    with lock_folder(out, command):
        owned = _check_demo_folder(out, overwrite, entries, command)  # again, now that the folder is ours
        for name in entries:
            p = out / name
            if p.exists() or p.is_symlink():
                shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
        try:
            result = job()
        except BaseException:
            with contextlib.suppress(Exception):
                owned.record([out / name for name in entries])
            raise
        owned.record([out / name for name in entries])
        return result


def run_demo(*, preset: str = "thumos-like", out: Path = Path("demo_out"), overwrite: bool = False,
             videos: int | None = None, seed: int = 0, overrides: list[str] = (), progress: bool = True) -> dict:
    from gsmt.config import load_config

    out = Path(out)
    # Every setting is checked before anything is written (issue 13, items 9 and 10).
    if preset not in DEMO_SIZES:
        raise GsmtError("--preset", f"unknown preset {preset!r} (choose from {', '.join(DEMO_SIZES)})")
    if videos is not None and (isinstance(videos, bool) or not isinstance(videos, int) or videos < DEMO_MIN_VIDEOS):
        raise GsmtError("--videos", f"must be an integer >= {DEMO_MIN_VIDEOS}, got {videos!r}")
    check_output_location(out, "folder")
    cfg = load_config("demo", [f"train.seed={seed}", *overrides])
    return _clear_and_run(out, overwrite, DEMO_ENTRIES, "gsmt demo",
                          lambda: _run_demo(preset, out, videos, seed, cfg, progress))


def _run_demo(preset: str, out: Path, videos: int | None, seed: int, cfg, progress: bool) -> dict:
    from gsmt.annotations.load import load_annotations
    from gsmt.commands.analyze import run_analyze
    from gsmt.commands.eval import run_eval
    from gsmt.commands.visualize import mask_picture, timeline_picture
    from gsmt.engine.checkpoint import load_checkpoint, model_from_checkpoint
    from gsmt.engine.distributed import pick_device
    from gsmt.engine.predictor import predict_results, submission
    from gsmt.engine.resolve import open_data, subset_videos
    from gsmt.engine.trainer import train
    from gsmt.synth.generate import generate
    from gsmt.viz.curves import plot_curves

    sizes = DEMO_SIZES[preset]
    timings = {}

    t0 = time.perf_counter()
    print(f"[1/4] synthetic {preset} dataset -> {out / 'data'}")
    generate(out / "data", preset=preset, videos=videos or sizes["videos"], feature_dim=sizes["feature_dim"],
             seed=seed)
    timings["synth_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    print(f"[2/4] training (demo preset) -> {out / 'run'}")
    train(cfg, out / "data", out / "run", overwrite=True, progress=progress)
    timings["train_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    state = load_checkpoint(out / "run")
    model, cfg, meta = model_from_checkpoint(state, out / "run")
    source = open_data(out / "data", cfg, feature_dim=meta["feature_dim"])
    eval_videos = subset_videos(source.annotations, cfg.data.eval_subset, str(out / "data"))
    print(f"[3/4] predicting {len(eval_videos)} '{cfg.data.eval_subset}' videos (never seen in training)")
    results = predict_results(model, cfg, meta["classes"], eval_videos, source.features,
                              device=pick_device("auto"), progress=progress)
    atomic_write_text(out / "predictions.json", json.dumps(submission(results)))
    metrics = run_eval(out / "data" / "annotations.json", out / "predictions.json",
                       subset=cfg.data.eval_subset, json_out=out / "metrics.json")
    timings["predict_eval_s"] = time.perf_counter() - t0

    print("[4/4] pictures")
    video = _pick_video(eval_videos, results)
    gt = load_annotations(out / "data" / "annotations.json")
    pictures = {
        "timeline": timeline_picture(out / "timeline.png", video, gt.classes, results[video.id]),
        "mask": mask_picture(out / "mask.png", out / "run", source.features.path(video.id),
                             gt_path=out / "data" / "annotations.json", video_id=video.id),
        "curves": plot_curves(out / "curves.png", out / "run" / "log.jsonl"),
    }
    analysis, analysis_pictures = run_analyze(out / "data" / "annotations.json", out / "predictions.json", out,
                                              subset=cfg.data.eval_subset, lock=False)  # the demo holds it

    print()
    print(f"Results on the '{cfg.data.eval_subset}' subset ({len(eval_videos)} videos, tIoU {cfg.decode.tiou}):")
    print(metrics.format_table())
    print()
    print(f"time: synth {timings['synth_s']:.0f} s, train {timings['train_s']:.0f} s, "
          f"predict + eval {timings['predict_eval_s']:.0f} s")
    print(f"outputs in {out}/:")
    print(f"  metrics.json      mAP per tIoU, average mAP {metrics.average_mAP:.4f}, per-class AP, recall")
    print("  predictions.json  ActivityNet submission format")
    print("  run/              config.yaml, log.jsonl, best.pt / last.pt (use with --checkpoint)")
    for name, path in pictures.items():
        print(f"  {Path(path).name:<17} {name} ({video.id})" if name != "curves" else
              f"  {Path(path).name:<17} training and validation curves")
    print(f"  analysis.json     error types of the top predictions (tIoU {analysis.tiou:g}), "
          "mAP by action length and coverage, missed actions")
    for name, what in (("profile", "prediction types per block of G predictions"),
                       ("pie", "false-positive types among the top G predictions"),
                       ("bins", "mAP by action length and by coverage")):
        print(f"  {analysis_pictures[name].name:<17} {what}")
    print("  data/             the synthetic dataset (annotations.json, features/)")
    return {"metrics": metrics, "timings": timings, "video": video.id,
            "average_mAP": float(np.round(metrics.average_mAP, 6))}


# ------------------------------------------------------------------------------ gsmt demo --video
# What `gsmt demo --video` writes into its folder: `--overwrite` removes these and nothing else (as the
# feature demo: only files its record says it wrote).
VIDEO_DEMO_ENTRIES = ("clips", "backbone", "data", "run", "detections", "metrics.json", "timeline.png")


# The video demo's training config: the demo preset at the size of its clips; `--set` comes after.
VIDEO_DEMO_CONFIG = ("data.T=32", "model.hidden_dim=64", "train.epochs=40", "train.batch_size=8", "decode.m1=10",
                     "decode.m2=30")


def run_video_demo(*, out: Path = Path("demo_video_out"), overwrite: bool = False, videos: int = 48, seed: int = 0,
                   overrides: list[str] = (), progress: bool = True) -> dict:
    """Real pixels end to end (needs gsmt[video]): synthetic mp4 clips -> `gsmt extract` -> `gsmt train`
    -> `gsmt detect` on the held-out clips -> mAP, one video's subtitles and timeline.

    The backbone is a tiny DINOv2-shaped image encoder with random weights, saved to `backbone/`:
    nothing is downloaded, and random features of these clips (coloured shapes) are informative
    enough; with a real video, use a pretrained backbone from the hub cache.

    `overrides` (`--set`) change the training config after the demo's own values, as `gsmt train
    --set` does; they are checked before anything is written."""
    from gsmt.config import load_config

    out = Path(out)
    check_output_location(out, "folder")
    cfg = load_config("demo", [*VIDEO_DEMO_CONFIG, f"train.seed={seed}", *overrides])
    return _clear_and_run(out, overwrite, VIDEO_DEMO_ENTRIES, "gsmt demo --video",
                          lambda: _run_video_demo(out, videos, seed, progress, cfg))


def _run_video_demo(out: Path, videos: int, seed: int, progress: bool, cfg=None) -> dict:
    import torch

    from gsmt.commands.detect import detect_videos
    from gsmt.commands.eval import run_eval
    from gsmt.commands.visualize import visualize
    from gsmt.config import load_config
    from gsmt.engine.trainer import train
    from gsmt.video.clips import save_random_image_encoder, write_clips
    from gsmt.video.extract import run_extract
    from gsmt.video.record import with_data_backbone

    print(f"[1/5] {videos} synthetic mp4 clips (64x48 px, 6 s) -> {out / 'clips'}")
    write_clips(out / "clips", videos=videos, seed=seed)
    torch.manual_seed(seed)
    save_random_image_encoder(out / "backbone")
    print(f"[2/5] gsmt extract (random-weight image encoder {out / 'backbone'}, 10 fps, stride 2, window 4)")
    summary = run_extract(str(out / "clips" / "videos"), str(out / "backbone"), out / "data", fps=10.0, stride=2,
                          window=4, annotations=str(out / "clips" / "annotations.json"), device="cpu",
                          batch_size=16, progress=progress)
    if summary:
        print(summary)
    db = json.loads((out / "clips" / "annotations.json").read_text(encoding="utf-8"))["database"]
    held_out = [str(out / "clips" / "videos" / f"{v}.mp4") for v, e in db.items() if e["subset"] == "validation"]
    print("[3/5] gsmt train")
    if cfg is None:
        cfg = load_config("demo", [*VIDEO_DEMO_CONFIG, f"train.seed={seed}"])
    result = train(with_data_backbone(cfg, out / "data"), out / "data", out / "run", progress=progress)
    best = f", best epoch {result.best_epoch}" if result.best_epoch else ""
    print(f"trained {counted(result.epochs, 'epoch')}{best}; run directory: {result.run_dir}")  # as `gsmt train` says
    print(f"[4/5] gsmt detect on the {len(held_out)} held-out clips")
    print(detect_videos(held_out, str(out / "run"), out / "detections", progress=progress))
    print("[5/5] gsmt eval")
    metrics = run_eval(out / "data" / "annotations.json", out / "detections" / "detections.json",
                       subset="validation", json_out=out / "metrics.json")
    print(metrics.format_table())
    shown = Path(held_out[0]).stem
    vtt = out / "detections" / f"{shown}.vtt"
    print()
    print(f"subtitles of {shown} ({vtt}; a player shows them over clips/videos/{shown}.mp4):")
    print(vtt.read_text(encoding="utf-8").rstrip())
    print(f"ground truth: {db[shown]['annotations']}")
    # `gsmt detect` knows no ground truth; the demo does, so its timeline shows both.
    picture = visualize(out / "timeline.png", gt=str(out / "data" / "annotations.json"),
                        pred=str(out / "detections" / "detections.json"), video=shown)
    print(f"wrote {picture}")
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    return {"average_mAP": float(metrics["average_mAP"]), "video": shown}
