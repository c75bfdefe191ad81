#!/usr/bin/env bash
# Times the pretrain stage (its 5 models) and one transfer row on a CUDA GPU, at the default scale, without and with AMP.
# Needs a finished data part of the pipeline (`dvc repro examples`). Skipped on machines without CUDA.
# params.yaml is never edited: each run reads a temporary copy with train.amp set, and writes its
# models and results into a temporary folder.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  echo "gpu_check: no CUDA device, skipped"; exit 0
fi
python -c "import torch; print('device:', torch.cuda.get_device_name(0))"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for amp in false true; do
  python - "$amp" "$tmp/params-$amp.yaml" <<'PY'
import sys, yaml
p = yaml.safe_load(open("params.yaml"))
p["train"]["amp"] = sys.argv[1] == "true"
yaml.safe_dump(p, open(sys.argv[2], "w"), sort_keys=False)
PY
  out="$tmp/$amp"
  /usr/bin/time -f "pretrain (every domain) amp=$amp: %e s wall" hrtem-ood --params "$tmp/params-$amp.yaml" \
    pretrain --domains-dir data/domains --models-out "$out/pretrain" --results-out "$out/pretrain" \
    --curves-out "$out/pretrain-curves" --timing-out "$out/pretrain-timing"
  /usr/bin/time -f "transfer@dfm10 (10 targets) amp=$amp: %e s wall" hrtem-ood --params "$tmp/params-$amp.yaml" \
    transfer --pretrain dfm10 --domains-dir data/domains --init "$out/pretrain/dfm10" --models-out "$out/transfer" \
    --results-out "$out/transfer.csv" --curves-out "$out/transfer.json" \
    --timing-out "$out/transfer-timing.csv"
done
