#!/usr/bin/env bash
# GPU smoke check (issue: self-configuration), under 8 minutes on one NVIDIA GPU, no internet needed:
#   1. a short CUDA training of the paper's trainer (nnU-Net's autocast) on the demo's spheres, its prediction of the
#      held-out cases and their MRE (benchmarks/gpu_smoke.py);
#   2. the cohort throughput ratio nnLandmark_predict / nnUNetv2_predict on the GPU (prediction_throughput.py).
# Needs python3 with a CUDA torch. nnunetv2, its pure-Python dependencies, SimpleITK and nnlandmark itself come as
# wheels in .whl/ (benchmarks/README.md, "GPU smoke check", says how to fetch them); they are installed with
# pip --target into /tmp/site. Figures go to $OUT (default gpu_smoke_out/): gpu_smoke.json, prediction_throughput.json.
#     bash benchmarks/gpu_smoke.sh
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu_smoke_out}
mkdir -p "$OUT"
if ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH} PATH=/tmp/site/bin:$PATH
fi
python3 -c "import torch; assert torch.cuda.is_available(), 'no CUDA GPU'; print(torch.cuda.get_device_name())"
export PYTHONUNBUFFERED=1
python3 benchmarks/gpu_smoke.py --workdir /tmp/gpu_smoke --out "$OUT/gpu_smoke.json"
python3 benchmarks/prediction_throughput.py --device cuda --cases 16 --workdir /tmp/gpu_throughput \
    --out "$OUT/prediction_throughput.json"
