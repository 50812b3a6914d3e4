"""`gsmt demo`: synthetic data -> train -> predict -> evaluate -> results table and pictures."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np

from gsmt.config import load_config
from gsmt.data.annotations import load_annotations
from gsmt.data.synth import generate
from gsmt.engine.checkpoint import load_checkpoint, model_from_checkpoint
from gsmt.engine.data import open_data, subset_videos
from gsmt.engine.predictor import submission
from gsmt.engine.trainer import pick_device, train
from gsmt.errors import GsmtError
from gsmt.io import atomic_write_text
from gsmt.viz import plot_curves
from gsmt.jobs import mask_picture, predict_results, run_eval, timeline_picture

# Sized so the whole demo runs in a few minutes on a 2-core laptop CPU.
DEMO_SIZES = {"thumos-like": {"videos": 120, "feature_dim": 64}, "anet-like": {"videos": 400, "feature_dim": 64}}


def _pick_video(videos, results: dict):
    """A video worth showing: a handful of ground-truth instances and some detections."""
    def badness(v):
        n = len(v.segments)
        return (not results.get(v.id), abs(n - 4))
    return min(videos, key=badness)


def run_demo(*, preset: str = "thumos-like", out: Path = Path("demo_out"), overwrite: bool = False,
             videos: int | None = None, seed: int = 0, overrides: list[str] = (), progress: bool = True) -> dict:
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise GsmtError(out, "output folder exists and is not empty (use --overwrite)")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    sizes = DEMO_SIZES[preset]
    timings = {}

    t0 = time.perf_counter()
    print(f"[1/4] synthetic {preset} dataset -> {out / 'data'}")
    generate(out / "data", preset=preset, videos=videos or sizes["videos"], feature_dim=sizes["feature_dim"],
             seed=seed)
    timings["synth_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    print(f"[2/4] training (demo preset) -> {out / 'run'}")
    cfg = load_config("demo", [f"train.seed={seed}", *overrides])
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
    print("  data/             the synthetic dataset (annotations.json, features/)")
    return {"metrics": metrics, "timings": timings, "video": video.id,
            "average_mAP": float(np.round(metrics.average_mAP, 6))}
