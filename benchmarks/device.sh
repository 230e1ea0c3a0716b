#!/usr/bin/env bash
# One prepared command for a lent CUDA machine (benchmarks/README.md, GPU), within about BUDGET_S seconds:
# the card, benchmarks/gpu.py (the seed's configuration end to end), then the JAFFE defaults' epochs under
# variants in one fresh process (the first variant's first epoch is the cold one) and full runs of the
# defaults per seed with held-out accuracy, as many seeds as the budget allows.
#
#   benchmarks/device.sh JAFFE_ZIP OUT_DIR          # EXTRA_PATH: folders of packages the machine lacks
#   DEVICE=cpu GPU_ARGS='--epochs 1 --size 64' EPOCHS=2 FULL=3 BUDGET_S=150 benchmarks/device.sh ...   # a smoke run
set -uo pipefail
zip=$1
out=$2
budget=${BUDGET_S:-420}
variants=${VARIANTS:-nodet-nocudnn,base,nodet-bench}
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
timeout 150 $py benchmarks/gpu.py --device "$device" --seed-epochs 5 ${GPU_ARGS:-} --out "$out/gpu.json"
left=$((budget - SECONDS))
# the full runs start only while a seed of about 100 s still fits
timeout $((left + 60)) $py benchmarks/epochs.py --device "$device" --archive "$zip" --variants "$variants" --epochs ${EPOCHS:-8} \
  --full ${FULL:-160} --seeds 0,1,2 --stop-after $((left - 100)) --out "$out/epochs.json"
echo "device.sh: $SECONDS s"
