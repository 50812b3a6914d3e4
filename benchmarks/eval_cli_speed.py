"""`gsmt eval` end to end (issue 14, item 4): wall time of the command in a fresh process.

ActivityNet-1.3 validation ground truth (the packaged annotations, 4,926 videos) and the seeded
predictions of `eval_speed` (100 per video: 492,600), written once as a submission JSON. Each
tree given runs `python -m gsmt.cli eval ... --json` in turn (rounds alternate, so a busy machine
slows every tree alike); the metrics JSON and the printed table must be byte-identical.

    python -m benchmarks.eval_cli_speed [--per-video 100] [--rounds 3] [--src OLD_SRC ...]

`--src DIR` adds a source tree to compare (a copy of an older `src/`); this checkout always runs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.eval_speed import GT_PATH, load_ground_truth, make_predictions
from benchmarks.harness import GSMT

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--per-video", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--src", action="append", default=[], help="another source tree to time")
    args = ap.parse_args()
    trees = {"this checkout": ROOT / "src", **{f"--src {s}": Path(s) for s in args.src}}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        database, ann = load_ground_truth(GT_PATH)
        pred = tmp / "pred.json"
        results = make_predictions(database, ann.classes, args.per_video, seed=0)
        pred.write_text(json.dumps({"version": "VERSION 1.3", "results": results, "external_data": {}}))
        times: dict[str, list[float]] = {name: [] for name in trees}
        outputs: dict[str, tuple[bytes, bytes]] = {}
        for _ in range(args.rounds):
            for i, (name, src) in enumerate(trees.items()):
                out = tmp / f"m{i}.json"
                env = {**os.environ, "PYTHONPATH": str(src)}
                start = time.perf_counter()
                done = subprocess.run([*GSMT, "eval", "--gt", str(GT_PATH), "--pred",
                                       str(pred), "--json", str(out)], env=env, capture_output=True, check=True)
                times[name].append(time.perf_counter() - start)
                outputs[name] = (out.read_bytes(), done.stdout)
    first = next(iter(outputs.values()))
    same = all(o == first for o in outputs.values())
    print(f"{len(results)} videos x {args.per_video} predictions, {args.rounds} rounds; "
          f"metrics JSON and table identical across trees: {same}\n")
    print("| tree | median wall time | all rounds |\n|---|---:|---|")
    for name, ts in times.items():
        print(f"| {name} | {statistics.median(ts):.2f} s | {', '.join(f'{t:.2f}' for t in ts)} |")
    if not same:
        sys.exit(1)


if __name__ == "__main__":
    main()
