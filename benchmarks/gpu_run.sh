#!/usr/bin/env bash
# The GPU benchmark session (one device call): full-size semi-real THUMOS14 and ActivityNet runs and the
# ablations in parallel, then inference throughput of the trained presets. Writes markdown under $OUT.
# Needs the annotation files in .gpudata/ (a copy of ../shared/data/{thumos14,activitynet13}).
set -u
OUT=${OUT:-/tmp/gpu_out}; mkdir -p "$OUT"
mkdir -p ../shared && ln -sfn "$PWD/.gpudata" ../shared/data
export PYTHONPATH=src PYTHONUNBUFFERED=1 TQDM_DISABLE=1
LIMIT=${LIMIT:-360}
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader; nproc;
  python3 -c "import torch, numpy; print('torch', torch.__version__, 'numpy', numpy.__version__)"; } > "$OUT/machine.txt" 2>&1
start=$(date +%s)
timeout $LIMIT python3 benchmarks/semi_real.py --benchmark thumos --videos 0 --device cuda --threads 3 \
    --cache /tmp/cache --out /tmp/sr_thumos > /tmp/sr_thumos.log 2>&1 &
timeout $LIMIT python3 benchmarks/semi_real.py --benchmark anet --videos 0 --device cuda --threads 3 \
    --set train.num_workers=4 --cache /tmp/cache --out /tmp/sr_anet > /tmp/sr_anet.log 2>&1 &
timeout $LIMIT python3 benchmarks/ablations.py --device cuda --jobs ${JOBS:-8} ${ABL_ARGS:-} \
    --cache /tmp/abl_cache --out /tmp/abl > /tmp/abl.log 2>&1 &
wait
python3 benchmarks/ablations.py --device cuda ${ABL_ARGS:-} --cache /tmp/abl_cache --out /tmp/abl --aggregate-only \
    > /tmp/abl_table.log 2>&1
echo "parallel phase: $(( $(date +%s) - start )) s" >> "$OUT/machine.txt"
for b in thumos anet; do
  run=$(ls -d /tmp/sr_$b/${b}_s0 2>/dev/null); data=$(ls -d /tmp/cache/${b}_n0_* 2>/dev/null | head -1)
  if [ -n "$run" ] && [ -n "$data" ]; then
    timeout 60 python3 benchmarks/throughput.py --checkpoint "$run" --data "$data" --device cuda \
        --threads 8 --videos ${TP_VIDEOS:-1000} >> "$OUT/throughput.md" 2>&1
  fi
done
cat /tmp/sr_thumos/semi_real.md /tmp/sr_anet/semi_real.md > "$OUT/semi_real.md" 2>/dev/null
cp /tmp/abl/ablations.md "$OUT/ablations.md" 2>/dev/null; cp /tmp/abl/ablations.json "$OUT/ablations.json" 2>/dev/null
for f in sr_thumos sr_anet abl; do tail -c 20000 /tmp/$f.log > "$OUT/$f.log.txt"; done
echo "total: $(( $(date +%s) - start )) s" >> "$OUT/machine.txt"
cat "$OUT/machine.txt" "$OUT/throughput.md" 2>/dev/null; tail -5 /tmp/sr_thumos.log /tmp/sr_anet.log /tmp/abl.log
