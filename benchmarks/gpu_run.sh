#!/usr/bin/env bash
# The GPU benchmark session (one device call), in three phases:
#   1. full-size semi-real ActivityNet (GSMT) and THUMOS14 (GSMT and baseline) runs, the presets' epochs;
#   2. inference throughput of the two trained presets, alone on the machine;
#   3. the ablations (ABL_ARGS) until the deadline, under CUDA MPS when it starts (many small processes
#      then share the GPU instead of taking turns), else time-sliced; the harness is resumable.
# Run from the repository root (the scripts are modules of the `benchmarks` package).
# Writes markdown, logs and the raw results (results.tgz, for --aggregate-only elsewhere) under $OUT.
# The real THUMOS14 / ActivityNet-1.3 timelines ship with the package (src/gsmt/timelines/).
# Knobs (environment): DEVICE, SR_VIDEOS (0 = all), LIMIT1 (s, phase 1), TOTAL (s, all phases), JOBS,
# ABL_ARGS, TP_VIDEOS, MPS (1 = try it).
set -u
OUT=${OUT:-/tmp/gpu_out}; mkdir -p "$OUT"
DEVICE=${DEVICE:-cuda}; SR_VIDEOS=${SR_VIDEOS:-0}; LIMIT1=${LIMIT1:-330}; TOTAL=${TOTAL:-520}
export PYTHONPATH=src PYTHONUNBUFFERED=1 TQDM_DISABLE=1
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader; nproc;
  python3 -c "import torch, numpy; print('torch', torch.__version__, 'numpy', numpy.__version__)"; } > "$OUT/machine.txt" 2>&1
start=$(date +%s); since() { echo $(( $(date +%s) - start )); }

timeout $LIMIT1 python3 -m benchmarks.semi_real --benchmark anet --videos $SR_VIDEOS --models gsmt --device $DEVICE \
    --threads 2 --set train.num_workers=6 --cache /tmp/cache --out /tmp/sr_anet > /tmp/sr_anet.log 2>&1 &
timeout $LIMIT1 python3 -m benchmarks.semi_real --benchmark thumos --videos $SR_VIDEOS --device $DEVICE --threads 2 \
    --cache /tmp/cache --out /tmp/sr_thumos > /tmp/sr_thumos.log 2>&1 &
wait
echo "phase 1 (full-size runs): $(since) s" >> "$OUT/machine.txt"

for b in anet thumos; do
  run=$(ls -d /tmp/sr_$b/${b}_s0 2>/dev/null); data=$(ls -d /tmp/cache/${b}_n*_s0_* 2>/dev/null | head -1)
  if [ -n "$run" ] && [ -n "$data" ]; then
    timeout 45 python3 -m benchmarks.throughput --checkpoint "$run" --data "$data" --device $DEVICE \
        --threads 8 --videos ${TP_VIDEOS:-1000} >> "$OUT/throughput.md" 2>&1
  fi
done
echo "phase 2 (throughput) done: $(since) s" >> "$OUT/machine.txt"

if [ "${MPS:-1}" = 1 ] && command -v nvidia-cuda-mps-control > /dev/null; then
  export CUDA_MPS_PIPE_DIRECTORY=/tmp/mps_pipe CUDA_MPS_LOG_DIRECTORY=/tmp/mps_log
  mkdir -p /tmp/mps_pipe /tmp/mps_log
  if nvidia-cuda-mps-control -d && timeout 60 python3 -c \
      "import torch; assert (torch.ones(2, device='cuda') + 1).sum().item() == 4"; then
    echo "MPS: on" >> "$OUT/machine.txt"
  else
    echo quit | timeout 10 nvidia-cuda-mps-control; unset CUDA_MPS_PIPE_DIRECTORY CUDA_MPS_LOG_DIRECTORY
    echo "MPS: failed to start, time-sliced" >> "$OUT/machine.txt"
  fi
else
  echo "MPS: not used" >> "$OUT/machine.txt"
fi
left=$(( TOTAL - $(since) )); [ $left -lt 30 ] && left=30
timeout $left nice -n 5 python3 -m benchmarks.ablations --device $DEVICE --jobs ${JOBS:-12} ${ABL_ARGS:-} \
    --cache /tmp/abl_cache --out /tmp/abl > /tmp/abl.log 2>&1
echo "phase 3 (ablations, ${left} s given): $(since) s" >> "$OUT/machine.txt"
python3 -m benchmarks.ablations --device $DEVICE ${ABL_ARGS:-} --cache /tmp/abl_cache --out /tmp/abl --aggregate-only \
    > /tmp/abl_table.log 2>&1
[ -n "${CUDA_MPS_PIPE_DIRECTORY:-}" ] && { echo quit | timeout 10 nvidia-cuda-mps-control; }

cat /tmp/sr_thumos/semi_real.md /tmp/sr_anet/semi_real.md > "$OUT/semi_real.md" 2>/dev/null
cp /tmp/abl/ablations.md "$OUT/ablations.md" 2>/dev/null
(cd /tmp && tar czf "$OUT/results.tgz" sr_*/semi_real.json sr_*/*_s0/log.jsonl abl/runs/*/*.json abl/logs 2>/dev/null)
for f in sr_thumos sr_anet abl; do tail -c 30000 /tmp/$f.log > "$OUT/$f.log.txt"; done
echo "total: $(since) s" >> "$OUT/machine.txt"
cat "$OUT/machine.txt" "$OUT/throughput.md" 2>/dev/null
for f in sr_thumos sr_anet abl; do echo "== $f"; grep -a "^\[\|gsmt:\|baseline:\|Error\|error" /tmp/$f.log | tail -6; done
