#!/usr/bin/env bash
# GPU check of the neural V0 head (benchmarks/gpu_check.py) on a machine with no internet.
# Needs .gpu_bundle/ (benchmarks/make_gpu_bundle.py) carried with the working tree.
# Usage: bash benchmarks/gpu_check.sh [gpu_check.py options, e.g. --quick]
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
PY=${PYTHON:-python3}
if [ ! -d .gpu_bundle ]; then
  echo "error: .gpu_bundle/ is missing. Fix: run '.venv/bin/python benchmarks/make_gpu_bundle.py' and carry .gpu_bundle" >&2
  exit 2
fi
# carried wheels (lightgbm) only where the module is missing
if ls .gpu_bundle/wheels/*.whl >/dev/null 2>&1 && ! $PY -c "import lightgbm" 2>/dev/null; then
  SITE=/tmp/v0lite_site
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" .gpu_bundle/wheels/*.whl \
    && export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}" \
    || echo "warning: could not install the carried wheels; the baseline may fall back to knn" >&2
fi
if command -v nvidia-smi >/dev/null 2>&1; then nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv,noheader; fi
if [ -n "${OUT:-}" ]; then
  $PY benchmarks/gpu_check.py --bundle .gpu_bundle "$@" 2>&1 | tee "$OUT/gpu_check.log"
else
  $PY benchmarks/gpu_check.py --bundle .gpu_bundle "$@"
fi
