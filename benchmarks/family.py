"""The benchmark family: every feature model x {context-free baseline, GSMT configs, ActionFormer}.

Renders features on real timelines with each feature model of `gsmt synth --feature-model`
(prototype, phases and the held-out motion; `gsmt.synth.models`), on the grids of the
independent check (D = 128, 30 fps, window 16):
- `--benchmark thumos14`: the packaged THUMOS14 timelines, stride 8, train on `validation`,
  evaluate on `test` (window mode);
- `--benchmark activitynet13`: the packaged ActivityNet-1.3 timelines, stride 16, train on
  `training`, evaluate on `validation` (resize mode);
and runs on the same files, as a user would:
- the context-free per-snippet baseline (`baseline.py`);
- GSMT: `gsmt train` / `gsmt predict` / `gsmt eval` / `gsmt analyze`, once per named config
  (`--gsmt NAME=PRESET[,key=value...]`, e.g. `paper=thumos,model.boundary_gate=false`);
- ActionFormer (`actionformer_peer.py`, when `--peer` is given and set up by hand).
Each result is one JSON line in OUT/records.jsonl (a rerun skips what is there), and the table
(generator x system: average mAP, mAP at 0.3 / 0.5 / 0.7, train seconds, GSMT's error types
among its top G predictions from `gsmt analyze`) is
printed and written to OUT/family.md. The held-out generator is marked: it is reported, never
used to choose anything.

    python benchmarks/family.py --out /tmp/family --videos 120 --threads 1 \\
        --gsmt paper=thumos,model.boundary_gate=false,decode.score=source --gsmt preset=thumos [--peer]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import baseline
from gsmt.annotations.load import load_annotations
from gsmt.synth.models import FEATURE_MODELS, HELD_OUT
from gsmt.synth.generate import generate
from gsmt.evaluation import evaluate_detection, load_predictions

ROOT = Path(__file__).resolve().parents[1]
GSMT = [sys.executable, "-m", "gsmt.cli"]


# benchmark -> (synth preset, feature stride, the table's three tIoUs); subsets and tIoUs come from
# the rendered data's meta
BENCHMARKS = {
    "thumos14": ("thumos-like", 8, ("0.3", "0.5", "0.7")),
    "activitynet13": ("anet-like", 16, ("0.5", "0.75", "0.95")),
}


def render(benchmark: str, model: str, videos: int, seed: int, cache: Path) -> Path:
    """The generator's dataset on the benchmark's timelines, rendered once per (model, videos, seed)."""
    folder = cache / f"{benchmark}_{model}_{videos or 'all'}_s{seed}"
    if not (folder / "annotations.json").exists():
        preset, stride = BENCHMARKS[benchmark][:2]
        generate(folder, preset=preset, timelines=benchmark, videos=videos or None, feature_dim=128,
                 seed=seed, fps=30.0, feature_stride=stride, feature_window=16, feature_model=model, overwrite=True)
    return folder


def _row(metrics) -> dict:
    at = {f"{t:g}": float(m) for t, m in zip(metrics.tiou, metrics.mAP)}
    return {"average_mAP": float(metrics.average_mAP), "mAP": at}


def _evaluate(data: Path, pred: Path) -> dict:
    gt = load_annotations(data / "annotations.json")
    subset, tiou = gt.meta["eval_subset"], gt.meta["tiou"]
    return _row(evaluate_detection(gt, load_predictions(pred), subset=subset, tiou=tiou))


def run_gsmt(name: str, spec: str, data: Path, work: Path, threads: int) -> dict:
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


def run_baseline(data: Path) -> dict:
    meta = load_annotations(data / "annotations.json").meta
    out = baseline.run(data, train_subset=meta["train_subset"], eval_subset=meta["eval_subset"], tiou=meta["tiou"])
    return {**_row(next(iter(out.metrics.values()))), "train_s": out.train_s, "infer_s": out.predict_s}


def run_peer(data: Path, work: Path, threads: int) -> dict:
    import actionformer_peer

    result = actionformer_peer.run_actionformer(data, work / "actionformer", threads=threads)
    return {**_row(result.metrics), "train_s": result.train_s, "infer_s": result.infer_s}


def table(records: list[dict], benchmark: str) -> str:
    at = BENCHMARKS[benchmark][2]
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--benchmark", choices=sorted(BENCHMARKS), default="thumos14")
    parser.add_argument("--generators", default=",".join(FEATURE_MODELS))
    parser.add_argument("--videos", type=int, default=120, help="stratified sample of the benchmark's videos (0 = all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--gsmt", action="append", default=[], metavar="NAME=PRESET[,k=v...]")
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument("--peer", action="store_true", help="also run ActionFormer (benchmarks/actionformer_peer.py)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    args.out.mkdir(parents=True, exist_ok=True)
    log = args.out / "records.jsonl"
    done = [json.loads(x) for x in log.read_text().splitlines()] if log.exists() else []
    have = {(r.get("benchmark", "thumos14"), r["generator"], r["system"]) for r in done}
    for model in args.generators.split(","):
        data = render(args.benchmark, model, args.videos, args.seed, args.out / "data")
        work = args.out / "runs" / (model if args.benchmark == "thumos14" else f"{args.benchmark}_{model}")
        work.mkdir(parents=True, exist_ok=True)
        jobs = [] if args.no_baseline else [("baseline (per snippet)", lambda: run_baseline(data))]
        for item in args.gsmt:
            name, spec = item.split("=", 1)
            jobs.append((f"gsmt {name}", lambda name=name, spec=spec: run_gsmt(name, spec, data, work, args.threads)))
        if args.peer:
            jobs.append(("ActionFormer", lambda: run_peer(data, work, args.threads)))
        for system, job in jobs:
            if (args.benchmark, model, system) in have:
                continue
            record = {"benchmark": args.benchmark, "generator": model, "system": system, **job(), "videos": args.videos, "seed": args.seed,
                      "date": datetime.date.today().isoformat(), "machine": f"{platform.machine()}, {os.cpu_count()} cores"}
            with open(log, "a") as fh:
                fh.write(json.dumps(record) + "\n")
            done.append(record)
            print(table([record], args.benchmark).splitlines()[-1], flush=True)
    text = table(done, args.benchmark)
    (args.out / f"family_{args.benchmark}.md").write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
