"""`gsmt demo`: synthetic data -> train -> predict -> evaluate -> results table and pictures."""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path

import numpy as np

from gsmt.config import load_config
from gsmt.annotations.load import load_annotations
from gsmt.synth.generate import generate, is_synth_output
from gsmt.engine.checkpoint import load_checkpoint, model_from_checkpoint
from gsmt.engine.resolve import open_data, subset_videos
from gsmt.engine.distributed import pick_device
from gsmt.engine.predictor import submission
from gsmt.engine.rundir import RUN_ENTRIES, is_run_dir
from gsmt.engine.trainer import train
from gsmt.errors import GsmtError
from gsmt.io.guard import LOCK_NAME, check_output_location, lock_folder
from gsmt.io.write import atomic_write_text
from gsmt.schema import DEMO_MIN_VIDEOS
from gsmt.viz.curves import plot_curves
from gsmt.jobs import mask_picture, predict_results, run_analyze, run_eval, timeline_picture

# Sized so the whole demo runs in a few minutes on a 2-core laptop CPU.
DEMO_SIZES = {"thumos-like": {"videos": 120, "feature_dim": 64}, "anet-like": {"videos": 400, "feature_dim": 64}}


def _pick_video(videos, results: dict):
    """A video worth showing: a handful of ground-truth instances and some detections."""
    def badness(v):
        n = len(v.segments)
        return (not results.get(v.id), abs(n - 4))
    return min(videos, key=badness)


# What `gsmt demo` writes into its folder: `--overwrite` removes these and nothing else.
DEMO_ENTRIES = ("data", "run", "metrics.json", "predictions.json", "timeline.png", "mask.png", "curves.png",
                "analysis.json", "fp_profile.png", "fp_pie.png", "map_bins.png")
_TEMP = re.compile(r"^\..+\.tmp\.[A-Za-z0-9]+$")  # gsmt.io.write.atomic_path's temporary files


def _not_ours(out: Path) -> list[str]:
    """Entries of a demo folder that a previous `gsmt demo` did not write (empty: a demo folder)."""
    foreign = [p.name for p in sorted(out.iterdir())
               if p.name not in DEMO_ENTRIES and p.name != LOCK_NAME and not _TEMP.match(p.name)]
    data, run = out / "data", out / "run"
    if data.exists():
        inside = {p.name for p in data.iterdir()} - {"annotations.json", "features"}
        features = data / "features"
        npy_only = not features.exists() or all(p.suffix == ".npy" or _TEMP.match(p.name)
                                                for p in features.iterdir())
        if inside or not npy_only or not is_synth_output(data):
            foreign.append("data/ (not a gsmt synth dataset)")
    if run.exists() and any(run.iterdir()):
        if not is_run_dir(run) or any(not p.name.startswith(".") and p.name not in RUN_ENTRIES + (LOCK_NAME,)
                                      for p in run.iterdir()):
            foreign.append("run/ (not only a gsmt run)")
    return foreign


def _check_demo_folder(out: Path, overwrite: bool) -> bool:
    """Refuse a folder the demo may not write; True when it holds a previous demo to remove."""
    if out.exists() and not out.is_dir():
        raise GsmtError(out, "exists and is not a folder")
    if not out.exists() or all(p.name == LOCK_NAME for p in out.iterdir()):
        return False
    foreign = _not_ours(out)
    if foreign:
        shown = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
        raise GsmtError(out, f"folder exists, is not empty and is not a gsmt demo folder (holds {shown}); "
                             "--overwrite only replaces a previous demo: choose another --out")
    if not overwrite:
        raise GsmtError(out, "output folder exists and is not empty (use --overwrite)")
    return True


def run_demo(*, preset: str = "thumos-like", out: Path = Path("demo_out"), overwrite: bool = False,
             videos: int | None = None, seed: int = 0, overrides: list[str] = (), progress: bool = True) -> dict:
    out = Path(out)
    # Every setting is checked before anything is written (issue 13, items 9 and 10).
    if preset not in DEMO_SIZES:
        raise GsmtError("--preset", f"unknown preset {preset!r} (choose from {', '.join(DEMO_SIZES)})")
    if videos is not None and (isinstance(videos, bool) or not isinstance(videos, int) or videos < DEMO_MIN_VIDEOS):
        raise GsmtError("--videos", f"must be an integer >= {DEMO_MIN_VIDEOS}, got {videos!r}")
    check_output_location(out, "folder")
    cfg = load_config("demo", [f"train.seed={seed}", *overrides])
    _check_demo_folder(out, overwrite)  # before the lock file is created in it
    with lock_folder(out, "gsmt demo"):
        if _check_demo_folder(out, overwrite):  # again, now that the folder is ours
            for p in out.iterdir():
                if p.name != LOCK_NAME:
                    shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
        return _run_demo(preset, out, videos, seed, cfg, progress)


def _run_demo(preset: str, out: Path, videos: int | None, seed: int, cfg, progress: bool) -> dict:
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
                                              subset=cfg.data.eval_subset)

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
# What `gsmt demo --video` writes into its folder: `--overwrite` removes these and nothing else.
VIDEO_DEMO_ENTRIES = ("clips", "backbone", "data", "run", "detections", "metrics.json", "timeline.png")


def run_video_demo(*, out: Path = Path("demo_video_out"), overwrite: bool = False, videos: int = 48, seed: int = 0,
                   progress: bool = True) -> dict:
    """Real pixels end to end (needs gsmt[video]): synthetic mp4 clips -> `gsmt extract` -> `gsmt train`
    -> `gsmt detect` on the held-out clips -> mAP, one video's subtitles and timeline.

    The backbone is a tiny DINOv2-shaped image encoder with random weights, saved to `backbone/`:
    nothing is downloaded, and random features of these clips (coloured shapes) are informative
    enough; with a real video, use a pretrained backbone from the hub cache."""
    out = Path(out)
    check_output_location(out, "folder")
    if out.exists() and any(p.name != LOCK_NAME for p in out.iterdir()):
        foreign = [p.name for p in out.iterdir() if p.name not in VIDEO_DEMO_ENTRIES and p.name != LOCK_NAME
                   and not _TEMP.match(p.name)]
        if foreign:
            raise GsmtError(out, f"folder exists and is not a gsmt video demo folder (holds {', '.join(foreign[:3])}); "
                                 "choose another --out")
        if not overwrite:
            raise GsmtError(out, "output folder exists and is not empty (use --overwrite)")
    with lock_folder(out, "gsmt demo --video"):
        for p in out.iterdir():
            if p.name in VIDEO_DEMO_ENTRIES:
                shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
        return _run_video_demo(out, videos, seed, progress)


def _run_video_demo(out: Path, videos: int, seed: int, progress: bool) -> dict:
    import torch
    from transformers import Dinov2Config, Dinov2Model

    from gsmt.cli import main as gsmt
    from gsmt.video.clips import write_clips

    quiet = [] if progress else ["--quiet"]
    print(f"[1/5] {videos} synthetic mp4 clips (64x48 px, 6 s) -> {out / 'clips'}")
    write_clips(out / "clips", videos=videos, seed=seed)
    torch.manual_seed(seed)
    Dinov2Model(Dinov2Config(image_size=32, patch_size=8, hidden_size=48, num_hidden_layers=1, num_attention_heads=2,
                             intermediate_size=96)).save_pretrained(out / "backbone")
    print(f"[2/5] gsmt extract (random-weight image encoder {out / 'backbone'}, 10 fps, stride 2, window 4)")
    grid = ["--fps", "10", "--feature-stride", "2", "--feature-window", "4"]
    steps = [
        ["extract", "--videos", str(out / "clips" / "videos"), "--backbone", str(out / "backbone"), *grid,
         "--out", str(out / "data"), "--annotations", str(out / "clips" / "annotations.json"), *quiet],
        ["train", "demo", "--data", str(out / "data"), "--out", str(out / "run"), *quiet, "--set", "data.T=32",
         "--set", "model.hidden_dim=64", "--set", "train.epochs=40", "--set", "train.batch_size=8",
         "--set", "decode.m1=10", "--set", "decode.m2=30", "--set", f"train.seed={seed}"],
    ]
    db = json.loads((out / "clips" / "annotations.json").read_text(encoding="utf-8"))["database"]
    held_out = [str(out / "clips" / "videos" / f"{v}.mp4") for v, e in db.items() if e["subset"] == "validation"]
    steps.append(["detect", *held_out, "--checkpoint", str(out / "run"), "--out", str(out / "detections"), *quiet])
    steps.append(["eval", "--gt", str(out / "data" / "annotations.json"), "--pred",
                  str(out / "detections" / "detections.json"), "--subset", "validation",
                  "--json", str(out / "metrics.json")])
    titles = ["[3/5] gsmt train", f"[4/5] gsmt detect on the {len(held_out)} held-out clips", "[5/5] gsmt eval"]
    for i, argv in enumerate(steps):
        if i:
            print(titles[i - 1])
        if gsmt(argv) != 0:
            raise GsmtError(out, f"gsmt {argv[0]} failed (see above)")
    shown = Path(held_out[0]).stem
    vtt = out / "detections" / f"{shown}.vtt"
    print()
    print(f"subtitles of {shown} ({vtt}; a player shows them over clips/videos/{shown}.mp4):")
    print(vtt.read_text(encoding="utf-8").rstrip())
    print(f"ground truth: {db[shown]['annotations']}")
    # `gsmt detect` knows no ground truth; the demo does, so its timeline shows both.
    if gsmt(["visualize", "--gt", str(out / "data" / "annotations.json"), "--pred",
             str(out / "detections" / "detections.json"), "--video", shown, "--out", str(out / "timeline.png")]) != 0:
        raise GsmtError(out, "gsmt visualize failed (see above)")
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    return {"average_mAP": float(metrics["average_mAP"]), "video": shown}
