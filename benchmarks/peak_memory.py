"""Peak memory of gsmt commands on the full ActivityNet-1.3 timelines (14,950 videos).

    python -m benchmarks.peak_memory [--feature-dim D] [--work DIR]

Renders features on the real timelines (`gsmt synth --timelines`), trains the `anet` preset for one
epoch with a small model (memory, not accuracy, is measured) and predicts the 4,926 validation
videos; prints one markdown row per command with its wall time and maximum resident set size.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import time
from pathlib import Path

from benchmarks.harness import GSMT

TIMELINES = "activitynet13"  # the packaged real ActivityNet-1.3 timelines, by name


def measure(name: str, args: list[str]) -> None:
    """Run `gsmt ARGS` as a child process; its own peak RSS is what getrusage(CHILDREN) reports."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    subprocess.run([*GSMT, *args], check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    note = "" if peak > before else " (not above an earlier command's peak)"
    print(f"| `gsmt {' '.join(args[:2])} ...` | {name} | {wall:.0f} s | {peak / 1024:.0f} MiB{note} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--feature-dim", type=int, default=16)
    parser.add_argument("--work", default="/tmp/gsmt_peak_memory")
    args = parser.parse_args()
    work = Path(args.work)
    data, run = work / "data", work / "run"
    print("| command | what | wall | peak RSS |\n|---|---|---:|---:|")
    measure(f"render 14,950 videos, D = {args.feature_dim}",
            ["synth", "--preset", "anet-like", "--timelines", str(TIMELINES), "--feature-dim", str(args.feature_dim),
             "--out", str(data), "--overwrite"])
    measure("train `anet` preset, 1 epoch, 10,024 training videos (hidden 32, 1 layer)",
            ["train", "anet", "--data", str(data), "--out", str(run), "--overwrite", "--quiet",
             "--set", "train.epochs=1", "--set", "model.hidden_dim=32", "--set", "model.num_layers=1"])
    measure("predict 4,926 validation videos",
            ["predict", "--checkpoint", str(run), "--data", str(data), "--out", str(work / "preds.json")])


if __name__ == "__main__":
    main()
