#!/usr/bin/env bash
# Creates .venv and installs nnlandmark into it. On CPU machines torch 2.13.0 (CPU build) is installed
# explicitly first, with the torchvision that matches it, so that pip never pulls a multi-GB CUDA build. EXTRAS
# picks the optional dependencies: `make test` adds slicer (3D Slicer's libraries, ~800 MB, for the interop test).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
EXTRAS=${EXTRAS:-test}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
PIP=".venv/bin/python -m pip --disable-pip-version-check -q"
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
    $PIP install "torch==2.13.0"
fi
TORCH=$(.venv/bin/python -c "import torch; print(torch.__version__.split('+')[0])")
PIN=""
[ "$TORCH" = "2.13.0" ] && PIN="torchvision==0.28.0"
$PIP install -e ".[$EXTRAS]" $PIN
.venv/bin/python -c "import nnlandmark, nnunetv2, torch; print('nnlandmark ready (torch', torch.__version__ + ')')"
