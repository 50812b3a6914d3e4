"""The benchmark harness: render the benchmark data, run a system on it, tabulate the results.

The accuracy sweeps (`semi_real`, `family`, `ablations`, `calibrate`) and the speed benchmarks
that need rendered data (`gpu_speed.sh`) go through here; the peers it runs live in `peers/`.

- Render: synthetic features on the REAL packaged timelines (`gsmt.annotations.packaged`), one
  folder per setting, cached between runs (`render`). Two sets of settings:
  `BENCHMARKS`, the semi-real benchmarks (`render_benchmark`: the `prototype` feature model at
  D = 256, THUMOS14 stride 4 / ActivityNet-1.3 stride 16, difficulty swept), and `FAMILY`, the
  benchmark family (`render_family`: every feature model of `gsmt.synth.models`, the development
  ones and the held-out one, at D = 128 on the independent check's grids, stride 8 / 16).
- Run a system: GSMT in this process with its phases timed and their peak memory (`run_gsmt`) or
  through the `gsmt` command line as a user would (`run_gsmt_cli`), the context-free per-snippet
  baseline (`run_baseline`, `run_baseline_record`; `peers/baseline.py`), ActionFormer
  (`run_actionformer_record`; `peers/actionformer.py`).
- Tables: the paper's Table 1 layout over seeds (`table`, of `Row`s) and the family's
  generator x system table (`family_table`, of JSON records).

Everything here is a library: the command lines are `python -m benchmarks.semi_real`,
`python -m benchmarks.family` and the others, run from the repository root.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from benchmarks.peers import baseline
from gsmt.annotations.load import load_annotations
from gsmt.annotations.packaged import load_blocked
from gsmt.config import load_config
from gsmt.data.features import FeatureStore
from gsmt.engine.checkpoint import load_checkpoint, model_from_checkpoint
from gsmt.engine.predictor import predict_results
from gsmt.engine.trainer import train
from gsmt.evaluation import DetectionMetrics, evaluate_detection, load_predictions
from gsmt.synth.generate import generate
from gsmt.synth.models import HELD_OUT

# The `gsmt` command in a child process, as a user runs it (the speed benchmarks time it this way too).
GSMT = [sys.executable, "-m", "gsmt.cli"]

# ------------------------------------------------------------------------------------ benchmarks

FEATURE_DIM = 256  # semi-real benchmarks
FAMILY_FEATURE_DIM = 128  # benchmark family (the independent check's width)


@dataclass(frozen=True)
class Benchmark:
    """A semi-real benchmark: how its data is rendered, which GSMT preset runs on it, how it is evaluated."""

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


@dataclass(frozen=True)
class FamilyBenchmark:
    """A benchmark of the family, by its packaged timelines' name; subsets and tIoUs come from the
    rendered data's meta."""

    timelines: str
    synth_preset: str
    feature_stride: int
    table_tiou: tuple[str, str, str]  # the three tIoUs of `family_table`


FAMILY = {
    "thumos14": FamilyBenchmark("thumos14", "thumos-like", 8, ("0.3", "0.5", "0.7")),
    "activitynet13": FamilyBenchmark("activitynet13", "anet-like", 16, ("0.5", "0.75", "0.95")),
    # MultiTHUMOS: the THUMOS14 grid and split, 65 co-occurring classes, tIoU 0.1:0.9 (issue 32)
    "multithumos": FamilyBenchmark("multithumos", "thumos-like", 8, ("0.1", "0.5", "0.9")),
}


def videos_per_benchmark(values: list[int] | None, keys: list[str]) -> dict[str, int]:
    """`--videos`: nothing (each benchmark's default), one value for all, or one per benchmark in `keys`."""
    if not values:
        return {k: BENCHMARKS[k].default_videos for k in keys}
    if len(values) == 1:
        return {k: values[0] for k in keys}
    if len(values) != len(keys):
        raise SystemExit(f"--videos: give one value, or one per benchmark ({', '.join(keys)})")
    return dict(zip(keys, values))


def blocked_settings(bench: Benchmark) -> dict[str, list[str]]:
    """Evaluation settings: all videos of the subset, and (ActivityNet) without the blocked ids."""
    settings = {bench.eval_subset: []}
    if bench.blocked is not None:
        ids = load_blocked(bench.blocked)
        settings[f"{bench.eval_subset} minus {len(ids)} blocked"] = ids
    return settings


def eval_counts(data_dir: Path, bench: Benchmark) -> dict[str, int]:
    """Evaluated videos per setting (blocked ones removed)."""
    ids = [v.id for v in load_annotations(data_dir / "annotations.json").subset(bench.eval_subset)]
    return {name: sum(1 for i in ids if i not in set(block) and i.removeprefix("v_") not in set(block))
            for name, block in blocked_settings(bench).items()}


# ------------------------------------------------------------------------------------ machine and memory


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


# ------------------------------------------------------------------------------------ render


def render(folder: Path, *, timelines: str, preset: str, feature_stride: int, feature_dim: int, videos: int,
           seed: int, difficulty: float | None = None, feature_model: str = "prototype",
           echo: bool = True) -> tuple[Path, float, bool]:
    """`gsmt synth` features on the packaged `timelines` at fps 30 / `feature_stride` / window 16, in
    `folder`, rendered once: (folder, seconds, cached). A folder is reused when its data is complete
    (`annotations.json` is written last) and was rendered with the same seed, feature model and (when
    given) difficulty; `difficulty` None is the feature model's frozen one. `videos` 0 = all."""
    if (folder / "annotations.json").is_file():
        meta = json.loads((folder / "annotations.json").read_text()).get("gsmt", {})
        if (meta.get("seed") == seed and meta.get("feature_model", "prototype") == feature_model
                and (difficulty is None or meta.get("difficulty") == float(difficulty))):
            return folder, 0.0, True
    start = time.perf_counter()
    summary = generate(folder, preset=preset, timelines=timelines, videos=videos or None, feature_dim=feature_dim,
                       difficulty=difficulty, seed=seed, fps=30.0, feature_stride=feature_stride, feature_window=16,
                       feature_model=feature_model, overwrite=True)
    if echo:
        print(f"  synth: {summary.line()}", flush=True)
    return folder, time.perf_counter() - start, False


def render_benchmark(bench: Benchmark, *, videos: int, seed: int, difficulty: float,
                     cache: Path) -> tuple[Path, float, bool]:
    """A semi-real benchmark's features for (sample size, seed, difficulty), cached: (folder, seconds, cached)."""
    size = "all" if videos == 0 else str(videos)
    folder = cache / f"{bench.key}_n{size}_s{seed}_d{difficulty:g}_D{FEATURE_DIM}"
    return render(folder, timelines=bench.timelines, preset=bench.synth_preset, feature_stride=bench.feature_stride,
                  feature_dim=FEATURE_DIM, videos=videos, seed=seed, difficulty=difficulty)


def render_family(benchmark: str, model: str, videos: int, seed: int, cache: Path) -> Path:
    """Feature model `model`'s dataset on a family benchmark's timelines, rendered once per (model, videos, seed)."""
    spec = FAMILY[benchmark]
    folder, _, _ = render(cache / f"{benchmark}_{model}_{videos or 'all'}_s{seed}", timelines=spec.timelines,
                          preset=spec.synth_preset, feature_stride=spec.feature_stride,
                          feature_dim=FAMILY_FEATURE_DIM, videos=videos, seed=seed, feature_model=model, echo=False)
    return folder


# ------------------------------------------------------------------------------------ run a system: semi-real rows


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


def _rows(bench: Benchmark, model: str, seed: int, metrics: dict[str, DetectionMetrics], *, train_s: float,
          infer_s: float, rss: float, gpu: float | None, n_train: int, n_eval: dict[str, int], notes: str,
          phases: dict) -> list[Row]:
    return [Row(bench.key, model, name, seed, [float(t) for t in m.tiou], [float(x) for x in m.mAP],
                float(m.average_mAP), train_s, infer_s, rss, gpu, n_train, n_eval[name], notes, phases)
            for name, m in metrics.items()]


def run_baseline(bench: Benchmark, data_dir: Path, seed: int, device: torch.device) -> list[Row]:
    """The context-free baseline on a semi-real benchmark, one row per evaluation setting."""
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
    """GSMT in this process (train, predict, evaluate, each phase timed), one row per evaluation setting."""
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


# ------------------------------------------------------------------------------------ run a system: family records


def _record(metrics: DetectionMetrics) -> dict:
    at = {f"{t:g}": float(m) for t, m in zip(metrics.tiou, metrics.mAP)}
    return {"average_mAP": float(metrics.average_mAP), "mAP": at}


def _evaluate(data: Path, pred: Path) -> dict:
    """A submission file scored on the data's recorded evaluation subset and tIoUs."""
    gt = load_annotations(data / "annotations.json")
    subset, tiou = gt.meta["eval_subset"], gt.meta["tiou"]
    return _record(evaluate_detection(gt, load_predictions(pred), subset=subset, tiou=tiou))


def run_gsmt_cli(name: str, spec: str, data: Path, work: Path, threads: int) -> dict:
    """GSMT as a user runs it: `gsmt train` / `gsmt predict` / `gsmt analyze` in child processes, scored by
    gsmt's evaluator; `spec` is `PRESET[,key=value...]` (the `decode.*` ones also go to predict)."""
    preset, *overrides = spec.split(",")
    run = work / name
    sets = [x for kv in overrides + [f"train.threads={threads}"] for x in ("--set", kv)]
    start = time.perf_counter()
    subprocess.run([*GSMT, "train", preset, "--data", str(data), "--out", str(run), "--overwrite", "--quiet", *sets],
                   check=True)
    train_s = time.perf_counter() - start
    pred = work / f"{name}.pred.json"
    decode_sets = [x for kv in overrides if kv.startswith("decode.") for x in ("--set", kv)]
    start = time.perf_counter()
    subprocess.run([*GSMT, "predict", "--checkpoint", str(run), "--data", str(data), "--out", str(pred),
                    *decode_sets], check=True, stdout=subprocess.DEVNULL)
    infer_s = time.perf_counter() - start
    subprocess.run([*GSMT, "analyze", "--gt", str(data / "annotations.json"), "--pred", str(pred),
                    "--out", str(work / f"{name}_analysis")], check=True, stdout=subprocess.DEVNULL)
    analysis = json.loads((work / f"{name}_analysis" / "analysis.json").read_text())
    top = analysis["profile"][0] if analysis["profile"] else {}
    return {**_evaluate(data, pred), "train_s": train_s, "infer_s": infer_s, "top1G_errors": top}


def run_baseline_record(data: Path) -> dict:
    """The context-free baseline with its fixed defaults on the data's recorded subsets and tIoUs."""
    meta = load_annotations(data / "annotations.json").meta
    out = baseline.run(data, train_subset=meta["train_subset"], eval_subset=meta["eval_subset"], tiou=meta["tiou"])
    return {**_record(next(iter(out.metrics.values()))), "train_s": out.train_s, "infer_s": out.predict_s}


def run_actionformer_record(data: Path, work: Path, threads: int) -> dict:
    """ActionFormer (set up by hand, see `peers/actionformer.py`) on the data, scored by gsmt's evaluator."""
    from benchmarks.peers import actionformer

    result = actionformer.run_actionformer(data, work / "actionformer", threads=threads)
    return {**_record(result.metrics), "train_s": result.train_s, "infer_s": result.infer_s}


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


def family_table(records: list[dict], benchmark: str) -> str:
    """Generator x system on one family benchmark: average mAP, mAP at three tIoUs, train seconds and
    GSMT's error types among its top G predictions; the held-out generator is marked."""
    at = FAMILY[benchmark].table_tiou
    lines = [f"| generator | system | avg mAP | {' | '.join(at)} | train s | top-G errors: background / localization / wrong label / confusion |",
             "|---|---|---:|---:|---:|---:|---:|---|"]
    for r in records:
        if r.get("benchmark", "thumos14") != benchmark:
            continue
        gen = r["generator"] + (" (held out)" if r["generator"] == HELD_OUT else "")
        top = r.get("top1G_errors") or {}
        errors = " / ".join(str(top.get(k, "–")) for k in ("background", "localization", "wrong_label", "confusion"))
        cells = " | ".join(f"{100 * r['mAP'][t]:.2f}" for t in at)
        lines.append(f"| {gen} | {r['system']} | **{100 * r['average_mAP']:.2f}** | {cells} | "
                     f"{r['train_s']:.0f} | {errors} |")
    return "\n".join(lines)
