"""Throughput, the old path beside the new one in one call (issue 14, item 5).

Inference: videos/s and samples/s of the whole prediction path (features read, model, decoding,
Soft-NMS) for a trained run, for `--old-src` (a copy of `src/` from before issue 14: one sample at
a time, per-sample decoding, per-video Soft-NMS) and for this checkout, each in a child process
on the same data, alternating `--rounds` times; the model-only time; whether both wrote the same
submission bytes; and the physical estimate: forward FLOPs per sample (`benchmarks.model_cost`'s
counter) / `--peak-gflops`, bytes per sample / `--bandwidth-gbs`.

Training (`--train-data`): the DataLoader path (`train.resident=never`) beside the resident path
(`always`), same seed and settings, wall time and samples/s of a short run, in this process.

    PYTHONPATH=src python -m benchmarks.throughput --checkpoint RUN --data DIR [--old-src OLD/src]
        [--train-data DIR --train-config demo --train-set train.epochs=2 ...]

Prints markdown tables. CPU defaults: --peak-gflops 100 (2 cores x ~3 GHz x 16 fp32 FLOP per cycle,
AVX2 FMA), --bandwidth-gbs 20 (one DDR4 channel); give the machine's own numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"


def measure(args) -> None:
    """Child process: time `predict_dataset` of whichever gsmt is on the path; print JSON."""
    import torch

    from gsmt.engine import predictor
    from gsmt.engine.checkpoint import load_checkpoint, model_from_checkpoint
    from gsmt.engine.resolve import make_dataset, open_data, subset_videos
    from gsmt.engine.distributed import pick_device

    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    path = Path(args.checkpoint)
    if path.is_dir():
        path = path / "best.pt" if (path / "best.pt").exists() else path / "last.pt"
    state = torch.load(path, map_location="cpu", weights_only=False)  # our own run's file
    _drop_unknown_keys(state["meta"]["config"])
    copy = Path(args.measure).with_suffix(".pt")
    torch.save(state, copy)
    model, cfg, meta = model_from_checkpoint(load_checkpoint(copy), args.checkpoint)
    model.to(device)
    source = open_data(args.data, cfg, feature_dim=meta["feature_dim"])
    videos = subset_videos(source.annotations, args.subset or cfg.data.eval_subset, args.data)
    videos = videos[: args.videos] if args.videos else videos
    dataset = make_dataset(videos, source.features, cfg, len(meta["classes"]), train=False)
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
    predictor.predict_dataset(model, warm, cfg.decode, device=device)  # kernels, caches
    model_time[0] = 0.0
    t0 = time.perf_counter()
    found = predictor.predict_dataset(model, dataset, cfg.decode, device=device)
    total = time.perf_counter() - t0
    Path(args.measure).write_text(json.dumps(predictor.to_results(found, meta["classes"])))
    print(json.dumps({"videos": len(videos), "samples": len(dataset), "total": total, "model": model_time[0],
                      "name": cfg.name, "mode": cfg.data.temporal_mode, "T": cfg.data.T,
                      "D": meta["feature_dim"], "K": len(meta["classes"])}))


def _drop_unknown_keys(config: dict) -> None:
    """The old code refuses config keys added since: drop those its Config lacks (new keys default
    to the old behaviour; the weights must still load, and the submissions are compared)."""
    import dataclasses

    from gsmt.config import Config

    for section in dataclasses.fields(Config):
        if isinstance(config.get(section.name), dict) and dataclasses.is_dataclass(section.default_factory()):
            known = {f.name for f in dataclasses.fields(section.default_factory())}
            for key in [k for k in config[section.name] if k not in known]:
                del config[section.name][key]


def child(args, src: Path, out: Path) -> dict:
    # This file run as a script: the child imports gsmt from `src` alone (`measure` needs nothing else).
    cmd = [sys.executable, __file__, "--checkpoint", args.checkpoint, "--data", args.data, "--device", args.device,
           "--threads", str(args.threads), "--videos", str(args.videos), "--measure", str(out)]
    if args.subset:
        cmd += ["--subset", args.subset]
    env = {**os.environ, "PYTHONPATH": str(src)}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def physical(args, shape: dict) -> tuple[float, float, float]:
    """(GFLOPs per sample, MB per sample, limit in samples/s) of the forward pass."""
    import torch

    from benchmarks.model_cost import flops_per_sample
    from gsmt.engine.checkpoint import load_checkpoint, model_from_checkpoint

    torch.set_num_threads(max(1, args.threads))
    model, _, _ = model_from_checkpoint(load_checkpoint(args.checkpoint), args.checkpoint)
    flops = flops_per_sample(model, shape["D"], shape["T"])
    T, D, K = shape["T"], shape["D"], shape["K"]
    params = sum(p.numel() for p in model.parameters())
    # Read: features; written and read back: class probabilities and the T x T mask (float32);
    # the weights once per batch of 32.
    nbytes = 4 * (D * T + 2 * (K + 1) * T + 2 * T * T) + 4 * params / 32
    limit = 1.0 / max(flops / (args.peak_gflops * 1e9), nbytes / (args.bandwidth_gbs * 1e9))
    return flops / 1e9, nbytes / 1e6, limit


def inference(args) -> None:
    # Without --old-src only this checkout's path is measured.
    paths = ([("old", Path(args.old_src))] if args.old_src else []) + [("new", SRC)]
    rows = {name: [] for name, _ in paths}
    with tempfile.TemporaryDirectory() as tmp:
        files = {}
        for r in range(args.rounds):
            for name, src in paths:
                files[name] = Path(tmp) / f"{name}.json"
                rows[name].append(child(args, src, files[name]))
        same = files["old"].read_bytes() == files["new"].read_bytes() if args.old_src else "no old path"
    first = rows["new"][0]
    gflops, mb, limit = physical(args, first)
    print(f"\n{first['name']} preset, {first['mode']} T={first['T']}, D={first['D']}, K={first['K']}: "
          f"{first['videos']} videos, {first['samples']} samples; submissions identical: {same}\n")
    print("| path | videos/s | samples/s | model | rest (reading, decoding, Soft-NMS) | rounds (videos/s) |")
    print("|---|---:|---:|---:|---:|---|")
    labels = {"old": "old: one sample at a time", "new": "new: batched"}
    for name, label in ((name, labels[name]) for name in rows):
        best = min(rows[name], key=lambda m: m["total"])
        rates = ", ".join(f"{m['videos'] / m['total']:.1f}" for m in rows[name])
        print(f"| {label} | {best['videos'] / best['total']:.1f} | {best['samples'] / best['total']:.1f} | "
              f"{best['model']:.2f} s | {best['total'] - best['model']:.2f} s | {rates} |")
    print(f"\nphysical estimate: {gflops:.3f} GFLOPs and {mb:.2f} MB per sample forward; at "
          f"{args.peak_gflops:g} GFLOP/s and {args.bandwidth_gbs:g} GB/s the limit is {limit:,.0f} samples/s")


def training(args) -> None:
    import torch

    from gsmt.config import load_config
    from gsmt.engine.trainer import train

    if args.threads:
        torch.set_num_threads(args.threads)
    print("\n| training path | wall | samples/s (mean of epochs) | final weights identical |")
    print("|---|---:|---:|---|")
    weights = {}
    with tempfile.TemporaryDirectory() as tmp:
        for policy in ("never", "always"):
            cfg = load_config(args.train_config, [*args.train_set, f"train.resident={policy}"])
            t0 = time.perf_counter()
            result = train(cfg, args.train_data, Path(tmp) / policy, progress=False)
            wall = time.perf_counter() - t0
            rate = sum(r["samples_per_s"] for r in result.history) / len(result.history)
            weights[policy] = result.model.state_dict()
            same = "" if policy == "never" else str(all(torch.equal(weights["never"][k], v)
                                                        for k, v in weights["always"].items()))
            label = "DataLoader (resident=never)" if policy == "never" else "resident (resident=always)"
            print(f"| {label} | {wall:.1f} s | {rate:.1f} | {same} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint")
    parser.add_argument("--data")
    parser.add_argument("--subset", help="default: the run's evaluation subset")
    parser.add_argument("--videos", type=int, default=0, help="0 = all videos of the subset")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--old-src", help="src/ folder of the code before issue 14 (the old path)")
    parser.add_argument("--rounds", type=int, default=2, help="alternating old/new rounds; the best is shown")
    parser.add_argument("--peak-gflops", type=float, default=100.0)
    parser.add_argument("--bandwidth-gbs", type=float, default=20.0)
    parser.add_argument("--train-data")
    parser.add_argument("--train-config", default="demo")
    parser.add_argument("--train-set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--measure", help=argparse.SUPPRESS)  # child mode: submission path
    args = parser.parse_args()
    if args.measure:
        return measure(args)
    name = (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
            f"{args.threads or 'default'} threads")
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {name}; load average "
          f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if args.checkpoint:
        inference(args)
    if args.train_data:
        training(args)


if __name__ == "__main__":
    main()
