#!/usr/bin/env bash
# GPU speed check (one device call): inference throughput of trained `anet` / `thumos` checkpoints
# (.gpuckpt/{anet,thumos}.pt) on semi-real subsets rendered there, on the GPU and on the 16 CPU
# cores, and `anet` training throughput on the GPU. The real timelines ship with the package.
# Run from the repository root (the scripts are modules of the `benchmarks` package).
set -u
OUT=${OUT:-/tmp/gpu_out}; DEVICE=${DEVICE:-cuda}; mkdir -p "$OUT"
export PYTHONPATH=src PYTHONUNBUFFERED=1
python3 - <<'PY'
from pathlib import Path
from benchmarks.harness import BENCHMARKS, render_benchmark
for key, n in (("anet", 600), ("thumos", 100)):
    folder, seconds, _ = render_benchmark(BENCHMARKS[key], videos=n, seed=0, difficulty=0.8,
                                          cache=Path("/tmp/speed_cache"))
    Path(f"/tmp/speed_{key}").unlink(missing_ok=True); Path(f"/tmp/speed_{key}").symlink_to(folder)
PY
for b in anet thumos; do
  for dev in $DEVICE cpu; do
    timeout 90 python3 -m benchmarks.throughput --checkpoint .gpuckpt/$b.pt --data /tmp/speed_$b --device $dev \
        --threads ${THREADS:-16} >> "$OUT/throughput.md" 2>&1
  done
done
timeout 120 python3 -m gsmt.cli train anet --data /tmp/speed_anet --out /tmp/speed_train --overwrite --quiet \
    --set train.epochs=3 --set train.device=$DEVICE --set data.feature_layout=TD --set train.num_workers=6 \
    > /tmp/speed_train.log 2>&1
python3 - >> "$OUT/throughput.md" <<'PY'
import json
rows = [json.loads(l) for l in open("/tmp/speed_train/log.jsonl") if '"split": "train"' in l]
print("anet training samples/s per epoch:", [round(r["samples_per_s"], 1) for r in rows])
PY
tail -3 /tmp/speed_train.log >> "$OUT/throughput.md"
cat "$OUT/throughput.md"
