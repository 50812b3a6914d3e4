"""Semi-real accuracy benchmarks: synthetic features rendered on the REAL THUMOS14 / ActivityNet timelines.

For each benchmark and seed: render features with `gsmt synth --timelines` (cached between runs),
train GSMT with the benchmark's preset and the context-free baseline (`peers/baseline.py`), predict
the evaluation subset, evaluate with the official protocol, and print a Table-1 style markdown
table (mAP at each tIoU and the average, train time, inference time per video, peak memory),
appended to `OUT/semi_real.md` with the raw numbers in `OUT/semi_real.json`. Rendering, the runs
and the table are `harness.py`'s (`BENCHMARKS`, `render_benchmark`, `run_gsmt`, `run_baseline`,
`table`); this is its command line.

- THUMOS14: grid fps 30 / stride 4 / window 16, D = 256; train on `validation`, evaluate on `test`;
  `thumos` preset (windows of T = 256, short-action decoding), tIoU 0.3:0.1:0.7.
- ActivityNet-1.3: grid fps 30 / stride 16 / window 16, D = 256; train on `training`, evaluate on
  `validation` with and without the 198 blocked ids; `anet` preset (resize to T = 100, long-action
  decoding), tIoU 0.5:0.05:0.95.

    # CPU subset (120 THUMOS14 / 3,000 ActivityNet videos), ~15 min per benchmark on 2 cores:
    python -m benchmarks.semi_real --benchmark both --threads 1 --set train.epochs=8 --out /tmp/gsmt_bench/runs
    # full size on a GPU:
    python -m benchmarks.semi_real --benchmark both --videos 0 --device cuda --threads 8 --out DIR
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from dataclasses import asdict
from pathlib import Path

import torch

from benchmarks.harness import (BENCHMARKS, FEATURE_DIM, Row, machine, render_benchmark, run_baseline, run_gsmt,
                                table, videos_per_benchmark)
from gsmt.engine.distributed import pick_device
from gsmt.evaluation import parse_tiou
from gsmt.synth.models.prototype import DEFAULT_DIFFICULTY


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
    sizes = videos_per_benchmark(args.videos, keys)
    out, cache = Path(args.out), Path(args.cache)
    out.mkdir(parents=True, exist_ok=True)
    command = "python -m benchmarks.semi_real " + " ".join(sys.argv[1:] if argv is None else argv)
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
            data_dir, synth_s, cached = render_benchmark(bench, videos=sizes[key], seed=seed,
                                                         difficulty=args.difficulty, cache=cache)
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
