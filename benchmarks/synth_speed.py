"""Synthetic data generation speed: `gsmt synth` on the real THUMOS14 timelines at the I3D grid.

413 videos (all of THUMOS14 validation + test), D = 512, fps 30, stride 4, window 16: about
660,000 snippets, 1.3 GB of float32 features. Runs the `gsmt` command in a child process (import
time included), into a temporary folder that is deleted afterwards, and prints a markdown row:
wall time, the child's peak resident memory (getrusage maxrss) and the size written.

    python -m benchmarks.synth_speed [--feature-dim 512] [--feature-stride 4]
"""

from __future__ import annotations

import argparse
import datetime
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.harness import GSMT

TIMELINES = "thumos14"  # the packaged real THUMOS14 timelines, by name
MACHINE = "2-core x86_64 CPU, 24 GiB"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--feature-dim", type=int, default=512)
    parser.add_argument("--feature-stride", type=int, default=4)
    args = parser.parse_args()

    out = Path(tempfile.mkdtemp(prefix="gsmt_synth_speed_"))
    shown = (f"gsmt synth --preset thumos-like --timelines {TIMELINES} "
             f"--feature-dim {args.feature_dim} --fps 30 --feature-stride {args.feature_stride} "
             f"--feature-window 16 --out DIR")
    cmd = [*GSMT, "synth", "--preset", "thumos-like", "--timelines", TIMELINES,
           "--feature-dim", str(args.feature_dim), "--fps", "30", "--feature-stride", str(args.feature_stride),
           "--feature-window", "16", "--out", str(out / "data")]
    try:
        start = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True)
        seconds = time.perf_counter() - start
        if done.returncode != 0:
            print(done.stderr, file=sys.stderr)
            return done.returncode
        size = sum(p.stat().st_size for p in (out / "data").rglob("*") if p.is_file())
    finally:
        shutil.rmtree(out, ignore_errors=True)
    peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # Linux: KiB
    print(done.stdout.strip(), file=sys.stderr)
    print("| command | date | machine | time | peak memory | written |")
    print("|---|---|---|---|---|---|")
    print(f"| `{shown}` | {datetime.date.today().isoformat()} | {MACHINE} | {seconds:.1f} s | "
          f"{peak_mib:.0f} MiB | {size / 2**30:.2f} GiB |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
