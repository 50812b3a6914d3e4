"""Semi-real accuracy benchmarks: synthetic features rendered on the REAL THUMOS14 / ActivityNet timelines.

For each benchmark and seed: render features with `gsmt synth --timelines` (cached between runs),
train GSMT with the benchmark's preset and the context-free baseline (`baseline.py`), predict the
evaluation subset, evaluate with the official protocol, and print a Table-1 style markdown table
(mAP at each tIoU and the average, train time, inference time per video, peak memory), appended to
`OUT/semi_real.md` with the raw numbers in `OUT/semi_real.json`.

- THUMOS14: grid fps 30 / stride 4 / window 16, D = 256; train on `validation`, evaluate on `test`;
  `thumos` preset (windows of T = 256, short-action decoding), tIoU 0.3:0.1:0.7.
- ActivityNet-1.3: grid fps 30 / stride 16 / window 16, D = 256; train on `training`, evaluate on
  `validation` with and without the 198 blocked ids; `anet` preset (resize to T = 100, long-action
  decoding), tIoU 0.5:0.05:0.95.

    # CPU subset (120 THUMOS14 / 3,000 ActivityNet videos), ~15 min per benchmark on 2 cores:
    python benchmarks/semi_real.py --benchmark both --threads 1 --set train.epochs=8 --out /tmp/gsmt_bench/runs
    # full size on a GPU:
    python benchmarks/semi_real.py --benchmark both --videos 0 --device cuda --threads 8 --out DIR
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

import baseline
from gsmt.config import load_config
from gsmt.annotations.load import load_annotations
from gsmt.data.features import FeatureStore
from gsmt.annotations.packaged import load_blocked
from gsmt.synth.generate import DEFAULT_DIFFICULTY, generate
from gsmt.engine.checkpoint import load_checkpoint, model_from_checkpoint
from gsmt.engine.distributed import pick_device
from gsmt.engine.trainer import train
from gsmt.evaluation import DetectionMetrics, evaluate_detection, parse_tiou
from gsmt.jobs import predict_results

FEATURE_DIM = 256


@dataclass(frozen=True)
class Benchmark:
    key: str
    title: str
    timelines: str  # packaged real timelines (gsmt.annotations.packaged), by name
    synth_preset: str
    config: str  # gsmt config preset
    feature_stride: int
    train_subset: str
    eval_subset: str
    tiou: str
    default_videos: int  # CPU subset size (training + evaluation videos, stratified)
    nms_sigma: float
    max_keep: int
    blocked: str | None = None  # packaged blocked-id list, by name


BENCHMARKS = {
    "thumos": Benchmark("thumos", "THUMOS14", "thumos14", "thumos-like", "thumos",
                        4, "validation", "test", "thumos", 120, 0.4, 200),
    "anet": Benchmark("anet", "ActivityNet-1.3", "activitynet13", "anet-like",
                      "anet", 16, "training", "validation", "anet", 3000, 0.6, 100,
                      "activitynet13"),
}


@dataclass
class Row:
    """One model evaluated on one benchmark, seed and evaluation setting."""

    benchmark: str
    model: str
    setting: str  # evaluated videos, e.g. "test" or "validation minus 198 blocked"
    seed: int
    tiou: list[float]
    mAP: list[float]
    average_mAP: float
    train_s: float
    infer_s_per_video: float
    peak_rss_mib: float
    peak_gpu_mib: float | None
    train_videos: int
    eval_videos: int
    notes: str = ""
    phases: dict = field(default_factory=dict)


# ------------------------------------------------------------------------------------ memory


def reset_peak_rss() -> None:
    """Restart the kernel's resident-set high-water mark (Linux >= 4.0), so each phase gets its own peak."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:  # elsewhere the peak is the process's so far
        pass


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def reset_peak_gpu(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_gpu_mib(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None


def machine() -> str:
    """e.g. `2-core x86_64 CPU, 24 GiB` (+ the GPU's name when CUDA is available)."""
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    text = f"{os.cpu_count()}-core {platform.machine()} CPU, {mem:.0f} GiB"
    if torch.cuda.is_available():
        text += f", {torch.cuda.get_device_name(0)}"
    return text


# ------------------------------------------------------------------------------------ phases


def render(bench: Benchmark, *, videos: int, seed: int, difficulty: float, cache: Path) -> tuple[Path, float, bool]:
    """Features for (benchmark, sample size, seed, difficulty), rendered once and cached: (folder, seconds, cached)."""
    size = "all" if videos == 0 else str(videos)
    folder = cache / f"{bench.key}_n{size}_s{seed}_d{difficulty:g}_D{FEATURE_DIM}"
    if (folder / "annotations.json").is_file():  # written last by generate: the folder is complete
        meta = json.loads((folder / "annotations.json").read_text()).get("gsmt", {})
        if meta.get("difficulty") == float(difficulty) and meta.get("seed") == seed:
            return folder, 0.0, True
    start = time.perf_counter()
    summary = generate(folder, preset=bench.synth_preset, timelines=bench.timelines, videos=videos or None,
                       feature_dim=FEATURE_DIM, difficulty=difficulty, seed=seed, fps=30.0,
                       feature_stride=bench.feature_stride, feature_window=16, overwrite=True)
    print(f"  synth: {summary.line()}", flush=True)
    return folder, time.perf_counter() - start, False


def blocked_settings(bench: Benchmark) -> dict[str, list[str]]:
    """Evaluation settings: all videos of the subset, and (ActivityNet) without the blocked ids."""
    settings = {bench.eval_subset: []}
    if bench.blocked is not None:
        ids = load_blocked(bench.blocked)
        settings[f"{bench.eval_subset} minus {len(ids)} blocked"] = ids
    return settings


def _rows(bench: Benchmark, model: str, seed: int, metrics: dict[str, DetectionMetrics], *, train_s: float,
          infer_s: float, rss: float, gpu: float | None, n_train: int, n_eval: dict[str, int], notes: str,
          phases: dict) -> list[Row]:
    return [Row(bench.key, model, name, seed, [float(t) for t in m.tiou], [float(x) for x in m.mAP],
                float(m.average_mAP), train_s, infer_s, rss, gpu, n_train, n_eval[name], notes, phases)
            for name, m in metrics.items()]


def eval_counts(data_dir: Path, bench: Benchmark) -> dict[str, int]:
    """Evaluated videos per setting (blocked ones removed)."""
    ids = [v.id for v in load_annotations(data_dir / "annotations.json").subset(bench.eval_subset)]
    return {name: sum(1 for i in ids if i not in set(block) and i.removeprefix("v_") not in set(block))
            for name, block in blocked_settings(bench).items()}


def run_baseline(bench: Benchmark, data_dir: Path, seed: int, device: torch.device) -> list[Row]:
    reset_peak_rss()
    reset_peak_gpu(device)
    cfg = baseline.BaselineConfig(seed=seed, nms_sigma=bench.nms_sigma, max_keep=bench.max_keep)
    out = baseline.run(data_dir, train_subset=bench.train_subset, eval_subset=bench.eval_subset, tiou=bench.tiou,
                       blocked=blocked_settings(bench), cfg=cfg, device=device)
    phases = {"train_s": out.train_s, "predict_s": out.predict_s, "eval_s": out.eval_s}
    print(f"  baseline: train {out.train_s:.1f} s ({out.train_snippets} snippets), predict {out.predict_s:.1f} s, "
          f"eval {out.eval_s:.1f} s, peak RSS {peak_rss_mib():.0f} MiB", flush=True)
    n_train = len(load_annotations(data_dir / "annotations.json").subset(bench.train_subset))
    notes = f"MLP {cfg.hidden} hidden, {cfg.epochs} epochs" if cfg.hidden else f"logistic regression, {cfg.epochs} epochs"
    return _rows(bench, "context-free baseline", seed, out.metrics, train_s=out.train_s,
                 infer_s=out.predict_s / max(1, out.eval_videos), rss=peak_rss_mib(), gpu=peak_gpu_mib(device),
                 n_train=n_train, n_eval=eval_counts(data_dir, bench), notes=notes, phases=phases)


def load_trained(bench: Benchmark, data_dir: Path, run_dir: Path, device: torch.device) -> tuple:
    """(model on `device`, its config, meta, annotations, features, evaluated videos) of a trained run.

    The model is the run's best.pt: chosen on the held-out share of the training subset
    (data.val_fraction), never on the evaluated one; the last epoch where that share is 0."""
    model, rcfg, meta = model_from_checkpoint(load_checkpoint(run_dir), run_dir)
    model.to(device)
    ann = load_annotations(data_dir / "annotations.json")
    features = FeatureStore(data_dir / "features", layout="TD", feature_dim=meta["feature_dim"])
    return model, rcfg, meta, ann, features, ann.subset(bench.eval_subset)


def run_gsmt(bench: Benchmark, data_dir: Path, run_dir: Path, seed: int, device: torch.device, threads: int,
             overrides: list[str]) -> list[Row]:
    reset_peak_rss()
    reset_peak_gpu(device)
    # `gsmt synth` writes [T, D]: "auto" cannot tell a 256-snippet video from its transpose at D = 256.
    cfg = load_config(bench.config, [f"train.seed={seed}", f"train.device={device.type}", f"train.threads={threads}",
                                     "data.feature_layout=TD", *overrides])
    t0 = time.perf_counter()
    result = train(cfg, data_dir, run_dir, overwrite=True, progress=True)
    t1 = time.perf_counter()
    train_rss, train_gpu = peak_rss_mib(), peak_gpu_mib(device)
    model, rcfg, meta, ann, features, videos = load_trained(bench, data_dir, run_dir, device)
    t2 = time.perf_counter()
    results = predict_results(model, rcfg, meta["classes"], videos, features, device=device)
    t3 = time.perf_counter()
    metrics = {name: evaluate_detection(ann, results, subset=bench.eval_subset, tiou=bench.tiou, blocked=ids)
               for name, ids in blocked_settings(bench).items()}
    t4 = time.perf_counter()
    phases = {"train_s": t1 - t0, "predict_s": t3 - t2, "eval_s": t4 - t3, "best_epoch": result.best_epoch,
              "parameters": result.num_parameters}
    print(f"  gsmt: train {t1 - t0:.1f} s (best epoch {result.best_epoch} of {rcfg.train.epochs}), predict "
          f"{t3 - t2:.1f} s, eval {t4 - t3:.1f} s, peak RSS {peak_rss_mib():.0f} MiB", flush=True)
    notes = f"`{bench.config}` preset, {rcfg.train.epochs} epochs" + (f", --set {' '.join(overrides)}" if overrides else "")
    gpu = peak_gpu_mib(device)
    n_train = len(ann.subset(bench.train_subset))
    return _rows(bench, "GSMT", seed, metrics, train_s=t1 - t0, infer_s=(t3 - t2) / max(1, len(videos)),
                 rss=max(train_rss, peak_rss_mib()), gpu=None if gpu is None else max(gpu, train_gpu),
                 n_train=n_train, n_eval=eval_counts(data_dir, bench), notes=notes, phases=phases)


# ------------------------------------------------------------------------------------ tables


def _mean_std(values: list[float], scale: float = 100.0, digits: int = 2) -> str:
    v = np.asarray(values, dtype=np.float64) * scale
    if len(v) == 1:
        return f"{v[0]:.{digits}f}"
    return f"{v.mean():.{digits}f} ± {v.std(ddof=1):.{digits}f}"


def table(rows: list[Row]) -> str:
    """Paper Table 1 layout: mAP (%) at each tIoU and the average, one line per (model, setting); seeds averaged."""
    if not rows:
        return ""
    tiou = rows[0].tiou
    head = (["method", "evaluated videos"] + [f"{t:.2f}" for t in tiou]
            + ["avg", "train", "inference / video", "peak RSS", "peak GPU mem"])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    groups: dict[tuple[str, str], list[Row]] = {}
    for r in rows:
        groups.setdefault((r.model, r.setting), []).append(r)
    for (model, setting), rs in groups.items():
        maps = [_mean_std([r.mAP[i] for r in rs]) for i in range(len(tiou))]
        gpu = [r.peak_gpu_mib for r in rs if r.peak_gpu_mib is not None]
        cells = ([model, f"{setting} ({rs[0].eval_videos})"] + maps
                 + [f"**{_mean_std([r.average_mAP for r in rs])}**",
                    f"{np.mean([r.train_s for r in rs]):.0f} s",
                    f"{1000 * np.mean([r.infer_s_per_video for r in rs]):.1f} ms",
                    f"{max(r.peak_rss_mib for r in rs):.0f} MiB",
                    f"{max(gpu):.0f} MiB" if gpu else "-"])
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------ main


def _sizes(values: list[int] | None, keys: list[str]) -> dict[str, int]:
    if not values:
        return {k: BENCHMARKS[k].default_videos for k in keys}
    if len(values) == 1:
        return {k: values[0] for k in keys}
    if len(values) != len(keys):
        raise SystemExit(f"--videos: give one value, or one per benchmark ({', '.join(keys)})")
    return dict(zip(keys, values))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--benchmark", choices=("thumos", "anet", "both"), default="both")
    parser.add_argument("--videos", type=int, nargs="+", metavar="N",
                        help="videos rendered per benchmark (a seeded sample stratified by subset), one value for "
                             "all or one per benchmark (thumos anet); 0 = all; default 120 THUMOS14, 3000 ActivityNet")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="seeds (sample, rendering, training)")
    parser.add_argument("--difficulty", type=float, default=DEFAULT_DIFFICULTY,
                        help=f"synthetic difficulty (frozen default {DEFAULT_DIFFICULTY})")
    parser.add_argument("--models", nargs="+", choices=("gsmt", "baseline"), default=["gsmt", "baseline"])
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="GSMT config override, e.g. train.epochs=5 (repeatable)")
    parser.add_argument("--device", default="cpu", help="cpu | cuda | auto")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--cache", default="/tmp/gsmt_bench/features", help="rendered features, reused between runs")
    parser.add_argument("--out", required=True, help="run folder: checkpoints, semi_real.json, semi_real.md")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    keys = ["thumos", "anet"] if args.benchmark == "both" else [args.benchmark]
    sizes = _sizes(args.videos, keys)
    out, cache = Path(args.out), Path(args.cache)
    out.mkdir(parents=True, exist_ok=True)
    command = "python benchmarks/semi_real.py " + " ".join(sys.argv[1:] if argv is None else argv)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    all_rows: list[Row] = []
    report = [f"### Semi-real run {stamp}", "",
              f"`{command}` on {machine()}, device {device}, difficulty {args.difficulty:g}, seeds "
              f"{' '.join(map(str, args.seeds))}, D = {FEATURE_DIM}.", ""]
    for key in keys:
        bench = BENCHMARKS[key]
        rows: list[Row] = []
        for seed in args.seeds:
            print(f"{bench.title}, seed {seed}, difficulty {args.difficulty:g}, videos {sizes[key] or 'all'}", flush=True)
            data_dir, synth_s, cached = render(bench, videos=sizes[key], seed=seed, difficulty=args.difficulty,
                                               cache=cache)
            print(f"  synth: {'cached ' + str(data_dir) if cached else f'{synth_s:.1f} s'}", flush=True)
            if "gsmt" in args.models:
                rows += run_gsmt(bench, data_dir, out / f"{key}_s{seed}", seed, device, args.threads, args.overrides)
            if "baseline" in args.models:
                rows += run_baseline(bench, data_dir, seed, device)
            for r in rows:
                r.phases.setdefault("synth_s", synth_s)
        first = rows[0]
        report += [f"**{bench.title}** (tIoU {', '.join(f'{t:.2f}' for t in parse_tiou(bench.tiou))}): "
                   f"{first.train_videos} `{bench.train_subset}` videos for training, evaluated on `{bench.eval_subset}`.",
                   "", table(rows), ""]
        report += [f"- {m}: {n}" for m, n in {r.model: r.notes for r in rows}.items()] + [""]
        all_rows += rows
    text = "\n".join(report)
    print(text)
    with open(out / "semi_real.md", "a") as fh:
        fh.write(text + "\n")
    previous = json.loads((out / "semi_real.json").read_text()) if (out / "semi_real.json").is_file() else []
    previous.append({"command": command, "date": stamp, "machine": machine(), "device": str(device),
                     "difficulty": args.difficulty, "seeds": args.seeds, "videos": sizes,
                     "rows": [asdict(r) for r in all_rows]})
    (out / "semi_real.json").write_text(json.dumps(previous, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
