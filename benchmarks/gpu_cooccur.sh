#!/usr/bin/env bash
# Co-occurring actions (issue 32) at full size, one device call: the benchmark family on all 413
# videos of the THUMOS14 and MultiTHUMOS timelines (train on THUMOS14 validation, evaluate on test),
# on a GPU when there is one (`train.device: auto`), all jobs side by side:
#   1. THUMOS14, `prototype` and the held-out `motion`: the `thumos` preset (every label) beside its
#      paper form (one label per snippet, top-2 classes, m1 100), then the Diving / CliffDiving AP of
#      each (the twin collapse that the 120-video sample cannot show);
#   2. MultiTHUMOS, `prototype`, `phases` and `motion`: the `multithumos` preset, seeds 0-2, beside
#      the one-label form and the per-snippet baseline; frame mAP of every prediction file;
#   3. ActionFormer on the MultiTHUMOS files, when its release is set up on the machine in
#      .peers/actionformer (benchmarks/peers/actionformer.py: carry `.peers`, build its NMS there).
# Run from the repository root. Writes the family tables, per-class and frame-mAP lines and the logs
# under $OUT; a family stopped at LIMIT keeps the rows it finished (records.jsonl), and a rerun
# resumes it. ActionFormer's families render their own copy of the same files (rendering is
# deterministic). Knobs (environment): VIDEOS (0 = all), LIMIT (s for the runs; the whole call takes
# about LIMIT + 60 s), EPOCHS (empty: the presets'; a number only for a smoke test), THREADS.
# Smoke test on a CPU: VIDEOS=12 EPOCHS=1 THREADS=1 LIMIT=150 (about 5 min on 2 cores).
set -u
OUT=${OUT:-/tmp/cooccur_out}; mkdir -p "$OUT"
VIDEOS=${VIDEOS:-0}; LIMIT=${LIMIT:-420}; THREADS=${THREADS:-2}; WORK=${WORK:-/tmp/cooccur}
export PYTHONPATH=src:. PYTHONUNBUFFERED=1 TQDM_DISABLE=1
GSMT="python3 -m gsmt.cli"
E=${EPOCHS:+,train.epochs=$EPOCHS}
{ nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null || echo "no GPU"; nproc
  python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"; } > "$OUT/machine.txt" 2>&1
start=$(date +%s); since() { echo $(( $(date +%s) - start )); }
family() {  # family NAME ARGS...: one resumable family run in the background, its log in $OUT
  local name=$1; shift
  timeout "$LIMIT" python3 -m benchmarks.family --out "$WORK/$name" --videos "$VIDEOS" --threads "$THREADS" "$@" \
      > "$OUT/$name.log" 2>&1 &
}

for g in prototype motion; do
  family thumos_$g --benchmark thumos14 --generators $g --no-baseline \
      --gsmt "single=thumos,model.labels=single,decode.m1=100,decode.topk_classes=2$E" --gsmt "multi=thumos$E"
done
for g in prototype phases motion; do
  family multithumos_$g --benchmark multithumos --generators $g \
      --gsmt "multi=multithumos$E" --gsmt "multi_s1=multithumos,train.seed=1$E" \
      --gsmt "multi_s2=multithumos,train.seed=2$E" \
      --gsmt "single=multithumos,model.labels=single,decode.m1=100,decode.topk_classes=2$E"
done
if python3 -c "from benchmarks.peers.actionformer import check_peer, DEFAULT_PEER
import sys; sys.exit(1 if check_peer(DEFAULT_PEER, cpu=False) else 0)" 2> "$OUT/peer_check.txt"; then
  for g in prototype phases motion; do family af_$g --benchmark multithumos --generators $g --no-baseline --peer; done
else
  echo "ActionFormer: not set up here (peer_check.txt)" >> "$OUT/machine.txt"
fi
wait
echo "runs (every job side by side, each stopped at LIMIT): $(since) s" >> "$OUT/machine.txt"

# Per-class AP of the THUMOS14 twins and frame mAP of the MultiTHUMOS predictions, from the saved files.
for f in "$WORK"/thumos_*/runs/*/*.pred.json; do
  data=$(ls -d "$WORK"/thumos_*/data/thumos14_$(basename "$(dirname "$f")")_* | head -1)
  pc="$OUT/per_class_$(basename "$(dirname "$f")")_$(basename "$f" .pred.json).json"
  $GSMT eval --gt "$data/annotations.json" --pred "$f" --json "$pc" > /dev/null 2>&1 &&
    python3 -c "import json, sys; ap = json.load(open(sys.argv[2]))['per_class_ap']
print(sys.argv[1], {c: round(100 * sum(v) / len(v), 2) for c, v in ap.items() if c in ('Diving', 'CliffDiving')})" \
      "$f" "$pc" >> "$OUT/twins.txt"
done
for f in "$WORK"/multithumos_*/runs/*/*.pred.json "$WORK"/af_*/runs/*/actionformer/actionformer_predictions.json; do
  [ -f "$f" ] || continue
  dir=$(dirname "$f"); [ "$(basename "$dir")" = actionformer ] && dir=$(dirname "$dir")
  data=$(ls -d "$WORK"/*/data/$(basename "$dir")_* 2>/dev/null | head -1)
  [ -n "$data" ] && echo "$f: $($GSMT eval --gt "$data/annotations.json" --pred "$f" --frame-map 2>&1 | grep 'frame mAP')" \
      >> "$OUT/frame_map.txt"
done
for d in "$WORK"/*/; do cp "$d"/records.jsonl "$OUT/$(basename "$d").jsonl" 2>/dev/null; done
# The tables from the records (a family stopped by LIMIT writes no table of its own).
python3 -c "import json, sys; from pathlib import Path; from benchmarks.harness import family_table
for f in sorted(Path(sys.argv[1]).glob('*.jsonl')):
    rows = [json.loads(x) for x in f.read_text().splitlines()]
    if rows:
        print('==', f.stem); print(family_table(rows, rows[0]['benchmark']))" "$OUT" > "$OUT/tables.md" 2>&1
echo "total: $(since) s" >> "$OUT/machine.txt"
cat "$OUT/machine.txt" "$OUT"/twins.txt "$OUT"/frame_map.txt "$OUT/tables.md" 2>/dev/null
