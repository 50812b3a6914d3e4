"""Calibrate the synthetic difficulty with the context-free baseline alone (never with GSMT).

Runs `python -m benchmarks.semi_real --models baseline` at each difficulty and prints one
markdown table: the baseline's average mAP per benchmark and difficulty. The frozen default
(`gsmt.synth.models.prototype.DEFAULT_DIFFICULTY`) is the value where it lands in 5-25% on both
benchmarks.

    python -m benchmarks.calibrate --difficulties 0.5 0.7 0.75 0.8 1.0 --out /tmp/gsmt_bench/cal
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from benchmarks import semi_real
from benchmarks.harness import BENCHMARKS

BAND = (0.05, 0.25)


def summary(runs: list[dict]) -> str:
    """Markdown: one line per (difficulty, benchmark, sample size, evaluated videos), seeds averaged."""
    cells: dict[tuple, list[float]] = {}
    for run in runs:
        for row in run["rows"]:
            if row["model"] != "context-free baseline":
                continue
            key = (run["difficulty"], row["benchmark"], run["videos"][row["benchmark"]], row["setting"])
            cells.setdefault(key, []).append(row["average_mAP"])
    lines = ["| difficulty | benchmark | videos rendered | evaluated | baseline avg mAP | in 5-25% |",
             "|---|---|---|---|---|---|"]
    for (difficulty, bench, videos, setting), values in sorted(cells.items()):
        mean = float(np.mean(values))
        seeds = f" ({len(values)} seeds)" if len(values) > 1 else ""
        inside = "yes" if BAND[0] <= mean <= BAND[1] else "no"
        lines.append(f"| {difficulty:g} | {BENCHMARKS[bench].title} | {videos or 'all'} | {setting} | "
                     f"{100 * mean:.2f}{seeds} | {inside} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--difficulties", type=float, nargs="+", default=[0.5, 0.7, 0.75, 0.8, 1.0])
    parser.add_argument("--benchmark", choices=("thumos", "anet", "both"), default="both")
    parser.add_argument("--videos", type=int, nargs="+", metavar="N", help="as in benchmarks.semi_real")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--cache", default="/tmp/gsmt_bench/features")
    parser.add_argument("--out", required=True)
    parser.add_argument("--summary-only", action="store_true", help="only summarise OUT/semi_real.json")
    args = parser.parse_args(argv)
    if not args.summary_only:
        for d in args.difficulties:
            common = ["--benchmark", args.benchmark, "--models", "baseline", "--difficulty", str(d),
                      "--threads", str(args.threads), "--cache", args.cache, "--out", args.out, "--seeds",
                      *map(str, args.seeds)]
            semi_real.main(common + (["--videos", *map(str, args.videos)] if args.videos else []))
    print(summary(json.loads((Path(args.out) / "semi_real.json").read_text())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
