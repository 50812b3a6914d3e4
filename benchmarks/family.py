"""The benchmark family: every feature model x {context-free baseline, GSMT configs, ActionFormer}.

Renders features on real timelines with each feature model of `gsmt synth --feature-model`
(prototype, phases and the held-out motion; `gsmt.synth.models`), on the grids of the
independent check (D = 128, 30 fps, window 16):
- `--benchmark thumos14`: the packaged THUMOS14 timelines, stride 8, train on `validation`,
  evaluate on `test` (window mode);
- `--benchmark activitynet13`: the packaged ActivityNet-1.3 timelines, stride 16, train on
  `training`, evaluate on `validation` (resize mode);
and runs on the same files, as a user would:
- the context-free per-snippet baseline (`peers/baseline.py`);
- GSMT: `gsmt train` / `gsmt predict` / `gsmt eval` / `gsmt analyze`, once per named config
  (`--gsmt NAME=PRESET[,key=value...]`, e.g. `paper=thumos,model.boundary_gate=false`);
- ActionFormer (`peers/actionformer.py`, when `--peer` is given and set up by hand).
Each result is one JSON line in OUT/records.jsonl (a rerun skips what is there), and the table
(generator x system: average mAP, mAP at 0.3 / 0.5 / 0.7, train seconds, GSMT's error types
among its top G predictions from `gsmt analyze`) is
printed and written to OUT/family_<benchmark>.md. The held-out generator is marked: it is
reported, never used to choose anything. Rendering, the runs and the table are `harness.py`'s
(`FAMILY`, `render_family`, `run_baseline_record`, `run_gsmt_cli`, `run_actionformer_record`,
`family_table`); this is its command line.

    python -m benchmarks.family --out /tmp/family --videos 120 --threads 1 \\
        --gsmt paper=thumos,model.boundary_gate=false,decode.score=source --gsmt preset=thumos [--peer]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import signal
import sys
from pathlib import Path

from benchmarks.harness import (FAMILY, family_table, render_family, run_actionformer_record, run_baseline_record,
                                run_gsmt_cli)
from gsmt.synth.models import FEATURE_MODELS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--benchmark", choices=sorted(FAMILY), default="thumos14")
    parser.add_argument("--generators", default=",".join(FEATURE_MODELS))
    parser.add_argument("--videos", type=int, default=120, help="stratified sample of the benchmark's videos (0 = all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--gsmt", action="append", default=[], metavar="NAME=PRESET[,k=v...]")
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument("--peer", action="store_true", help="also run ActionFormer (benchmarks/peers/actionformer.py)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    # `kill` of the harness ends its runs too: SIGTERM unwinds like Ctrl-C, and a child training
    # (gsmt's `subprocess.run`, ActionFormer's `run_peer`) is killed on the way out, not orphaned.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    args.out.mkdir(parents=True, exist_ok=True)
    log = args.out / "records.jsonl"
    done = [json.loads(x) for x in log.read_text().splitlines()] if log.exists() else []
    have = {(r.get("benchmark", "thumos14"), r["generator"], r["system"]) for r in done}
    for model in args.generators.split(","):
        data = render_family(args.benchmark, model, args.videos, args.seed, args.out / "data")
        work = args.out / "runs" / (model if args.benchmark == "thumos14" else f"{args.benchmark}_{model}")
        work.mkdir(parents=True, exist_ok=True)
        jobs = [] if args.no_baseline else [("baseline (per snippet)", lambda: run_baseline_record(data))]
        for item in args.gsmt:
            name, spec = item.split("=", 1)
            jobs.append((f"gsmt {name}", lambda name=name, spec=spec: run_gsmt_cli(name, spec, data, work, args.threads)))
        if args.peer:
            jobs.append(("ActionFormer", lambda: run_actionformer_record(data, work, args.threads)))
        for system, job in jobs:
            if (args.benchmark, model, system) in have:
                continue
            record = {"benchmark": args.benchmark, "generator": model, "system": system, **job(), "videos": args.videos, "seed": args.seed,
                      "date": datetime.date.today().isoformat(), "machine": f"{platform.machine()}, {os.cpu_count()} cores"}
            with open(log, "a") as fh:
                fh.write(json.dumps(record) + "\n")
            done.append(record)
            print(family_table([record], args.benchmark).splitlines()[-1], flush=True)
    text = family_table(done, args.benchmark)
    (args.out / f"family_{args.benchmark}.md").write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
