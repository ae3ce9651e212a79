#!/usr/bin/env bash
# Fail if the environment of PYTHON holds a CUDA build of torch or any nvidia-*/CUDA package.
set -euo pipefail
py="${1:?usage: check_no_cuda.sh PYTHON}"
bad=$("$py" -m pip list --format=freeze 2>/dev/null | grep -iE '^(nvidia-|cuda-|cupy|triton==|torch==[^+]*\+cu)' || true)
if [ -n "$bad" ]; then
  echo "error: CUDA packages in $py's environment (v0lite installs a CPU torch only):" >&2
  echo "$bad" >&2
  echo "Fix: install torch==<version> from the CPU wheel first (see README, 'The lock')." >&2
  exit 1
fi
