#!/usr/bin/env bash
# Times one pretrain and one transfer stage on a CUDA GPU, at the default scale and with AMP.
# Needs a finished data part of the pipeline (`dvc repro examples`). Skipped on machines without CUDA.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  echo "gpu_check: no CUDA device, skipped"; exit 0
fi
python -c "import torch; print('device:', torch.cuda.get_device_name(0))"
for amp in false true; do
  sed -i "s/^  amp: .*/  amp: $amp/" params.yaml
  /usr/bin/time -f "pretrain@dfm10 amp=$amp: %e s wall" hrtem-ood pretrain --domain dfm10
  /usr/bin/time -f "transfer@dfm10-to-dfp10 amp=$amp: %e s wall" hrtem-ood transfer --pair dfm10-to-dfp10
done
git checkout -q params.yaml
