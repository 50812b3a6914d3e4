"""Extraction throughput of `gsmt extract` and its peak memory on a 1-hour video (BENCHMARKS.md,
"Feature extraction (issue 15)").

    OMP_NUM_THREADS=1 python -m benchmarks.extract_speed [--work /tmp/gsmt_extract_bench]

Random-weight models (speed does not depend on the weights): a tiny DINOv2-shaped image encoder,
a tiny VideoMAE, and a base-size VideoMAE (ViT-B: 768 wide, 12 layers, 16 frames of 224 px).
Each runs `gsmt extract` in a child process on generated clips; the 1-hour video (64x48 px,
5 fps) is extracted with the tiny image encoder and the child's peak RSS is read with
`resource.getrusage(RUSAGE_CHILDREN)` (one child per measurement).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.harness import GSMT


def _child_run(argv: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of one `gsmt` child process (measured in a fresh helper)."""
    code = ("import resource, subprocess, sys, time, json; t = time.perf_counter(); "
            "r = subprocess.run(sys.argv[1:]); dt = time.perf_counter() - t; "
            "print(json.dumps([r.returncode, dt, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss]))")
    out = subprocess.run([sys.executable, "-c", code, *GSMT, *argv],
                         capture_output=True, text=True)
    rc, dt, rss_kib = json.loads(out.stdout.strip().splitlines()[-1])
    if rc != 0:
        raise SystemExit(f"gsmt {' '.join(argv)} failed: {out.stderr[-500:]}")
    return dt, rss_kib / 1024


def main() -> None:
    import torch
    from transformers import VideoMAEConfig, VideoMAEModel

    from gsmt.video.clips import ClipSpec, encode_mp4, save_random_image_encoder, save_random_video_encoder, write_clips

    ap = argparse.ArgumentParser()
    ap.add_argument("--work", default="/tmp/gsmt_extract_bench")
    ap.add_argument("--hour-fps", type=float, default=5.0)
    args = ap.parse_args()
    work = Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    torch.manual_seed(0)
    save_random_image_encoder(work / "tiny_image")
    save_random_video_encoder(work / "tiny_videomae", processor=None)
    VideoMAEModel(VideoMAEConfig()).save_pretrained(work / "base_videomae")  # ViT-B defaults, 16 frames, 224 px
    write_clips(work / "clips", videos=16, seed=0, spec=ClipSpec())  # 6 s, 10 fps, 64x48
    two = work / "two"
    two.mkdir()
    for name in ("clip_000.mp4", "clip_001.mp4"):
        shutil.copy(work / "clips" / "videos" / name, two / name)

    rows = []
    cases = [("tiny image encoder (DINOv2-shaped, D=48)", work / "tiny_image", work / "clips" / "videos", 16, 10, 2, 4),
             ("tiny VideoMAE (D=32, 4 frames)", work / "tiny_videomae", work / "clips" / "videos", 16, 10, 2, 4),
             ("base VideoMAE (ViT-B, D=768, 16 frames of 224 px)", work / "base_videomae", two, 2, 10, 8, 16)]
    for label, model, videos, n, fps, stride, window in cases:
        out = work / f"out_{model.name}"
        dt, rss = _child_run(["extract", "--videos", str(videos), "--backbone", str(model), "--fps", str(fps),
                              "--feature-stride", str(stride), "--feature-window", str(window), "--out", str(out),
                              "--quiet", "--batch-size", "8"])
        frames = sum(json.loads(p.read_text())["frames"] for p in (out / "extracted").glob("*.json"))
        rows.append({"backbone": label, "videos": n, "seconds": round(dt, 2), "videos_per_min": round(60 * n / dt, 1),
                     "frames_per_s": round(frames / dt, 1), "grid": f"{fps:g} fps, stride {stride}, window {window}",
                     "peak_rss_mib": round(rss)})
        print(json.dumps(rows[-1]), flush=True)

    # one hour of 64x48 video, in 60 one-minute pieces of frames so the generator stays small
    hour = work / "hour"
    hour.mkdir()
    fps = args.hour_fps
    n = int(3600 * fps)
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    base = rng.integers(0, 255, size=(48, 128, 3), dtype=np.uint8)
    frames = np.stack([np.roll(base, i % 64, axis=1)[:, :64] for i in range(n)])  # 3600 s * fps frames, 9 KB each
    encode_mp4(hour / "one_hour.mp4", frames, fps)
    del frames
    encode_s = time.perf_counter() - t0
    dt, rss = _child_run(["extract", "--videos", str(hour), "--backbone", str(work / "tiny_image"), "--fps", str(fps),
                          "--feature-stride", "4", "--feature-window", "8", "--out", str(work / "out_hour"),
                          "--quiet", "--batch-size", "64"])
    feats = np.load(work / "out_hour" / "features" / "one_hour.npy")
    rows.append({"backbone": "tiny image encoder, 1-hour video (64x48, %g fps)" % fps, "videos": 1,
                 "seconds": round(dt, 1), "frames_per_s": round(n / dt, 1), "peak_rss_mib": round(rss),
                 "features": list(feats.shape), "encode_s": round(encode_s, 1)})
    print(json.dumps(rows[-1]), flush=True)
    print(json.dumps({"date": time.strftime("%Y-%m-%d %H:%M"), "machine": platform.processor() or platform.machine(),
                      "cpus": os.cpu_count(), "threads": os.environ.get("OMP_NUM_THREADS"),
                      "load_average": os.getloadavg(), "torch": torch.__version__}))


if __name__ == "__main__":
    main()
