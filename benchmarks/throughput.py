"""Inference throughput: videos/s of the whole prediction path (features read, model, decoding,
Soft-NMS) for a trained run on a data folder, with the time split between model and post-processing.

    python benchmarks/throughput.py --checkpoint RUN --data DIR [--subset S] [--videos N] [--device cpu|cuda]

Prints one markdown row. Run from the repository root (`PYTHONPATH=src` without an install).
"""

from __future__ import annotations

import argparse
import platform
import resource
import time

import torch

from gsmt.engine import predictor
from gsmt.engine.checkpoint import load_checkpoint, model_from_checkpoint
from gsmt.engine.data import make_dataset, open_data, subset_videos
from gsmt.engine.trainer import pick_device


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{platform.processor() or platform.machine()} CPU, {torch.get_num_threads()} threads"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--subset", help="default: the run's evaluation subset")
    parser.add_argument("--videos", type=int, default=0, help="0 = all videos of the subset")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    device = pick_device(args.device)
    model, cfg, meta = model_from_checkpoint(load_checkpoint(args.checkpoint), args.checkpoint)
    model.to(device)
    source = open_data(args.data, cfg, feature_dim=meta["feature_dim"])
    videos = subset_videos(source.annotations, args.subset or cfg.data.eval_subset, args.data)
    videos = videos[: args.videos] if args.videos else videos
    dataset = make_dataset(videos, source.features, cfg, len(meta["classes"]), train=False)

    # Time the model alone by wrapping its forward; everything else is reading and post-processing.
    model_time = [0.0]
    forward = model.forward

    def timed_forward(*a, **k):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        out = forward(*a, **k)
        if device.type == "cuda":
            torch.cuda.synchronize()
        model_time[0] += time.perf_counter() - t0
        return out

    model.forward = timed_forward
    warm = make_dataset(videos[:2], source.features, cfg, len(meta["classes"]), train=False)
    predictor.predict_dataset(model, warm, cfg.decode, device=device)  # warm-up (kernels, caches)
    model_time[0] = 0.0
    t0 = time.perf_counter()
    found = predictor.predict_dataset(model, dataset, cfg.decode, device=device)
    total = time.perf_counter() - t0
    n = len(videos)
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    gpu = (f", GPU peak {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB" if device.type == "cuda" else "")
    print(f"| {cfg.name} | {cfg.data.temporal_mode} T={cfg.data.T} | {n} videos ({len(dataset)} samples) | "
          f"{device_name(device)} | {n / total:.1f} videos/s | model {model_time[0]:.1f} s, "
          f"reading + decoding + Soft-NMS {total - model_time[0]:.1f} s | peak RSS {peak_rss:.0f} MiB{gpu} | "
          f"{sum(len(d) for d in found.values())} detections |")


if __name__ == "__main__":
    main()
