#!/usr/bin/env bash
# One prepared command for a lent CUDA machine (benchmarks/README.md, GPU), in about 5 minutes: the card,
# benchmarks/gpu.py (the seed's configuration end to end), then the JAFFE defaults trained per seed with
# time_to_accuracy.py: training wall time, every epoch's seconds and held-out composition and transfer.
# benchmarks/epochs.py (epochs under process-level variants) is the tool to run next when an epoch stalls.
#
#   benchmarks/device.sh JAFFE_ZIP OUT_DIR          # EXTRA_PATH: folders of packages the machine lacks
#   DEVICE=cpu GPU_ARGS='--epochs 1 --size 64' SCALE=0.02 SEEDS=0 PARAMS=tiny.yaml benchmarks/device.sh ...  # smoke
set -uo pipefail
zip=$1
out=$2
budget=${BUDGET_S:-280}
export PYTHONUNBUFFERED=1 PYTHONPATH="src${EXTRA_PATH:+:$EXTRA_PATH}"
py=${PYTHON:-python3}
device=${DEVICE:-cuda}
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  lscpu | grep -E '^(Model name|CPU\(s\)|CPU family|Model):'
  $py -c 'import torch, torchvision; print("torch", torch.__version__, "torchvision", torchvision.__version__,
    "cudnn", torch.backends.cudnn.version())'
} >"$out/card.txt" 2>&1
cat "$out/card.txt"
timeout 120 $py benchmarks/gpu.py --device "$device" --seed-epochs 5 ${GPU_ARGS:-} --out "$out/gpu.json"
left=$((budget - SECONDS))
timeout $((left > 30 ? left : 30)) $py benchmarks/time_to_accuracy.py --device "$device" --archive "$zip" \
  --params "${PARAMS:-params.yaml}" --recipes defaults --seeds ${SEEDS:-0,1,2} --scale ${SCALE:-1} \
  --out "$out/time_to_accuracy.json"
echo "device.sh: $SECONDS s"
