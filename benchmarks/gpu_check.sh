#!/usr/bin/env bash
# One-command GPU check (benchmarks/gpu_check.py): every main method on the Wan2.1-1.3B architecture
# with seeded random weights (no download) on one GPU; fills the GPU section of benchmarks/RESULTS.md.
#   bash benchmarks/gpu_check.sh            # needs CUDA; budgeted to finish in under 8 minutes
#   bash benchmarks/gpu_check.sh --dry-run  # same code on CPU at a tiny size (the tests run this)
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -z "${PYTHON:-}" ]]; then
  if [[ -x .venv/bin/python ]]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
exec "$PYTHON" -m benchmarks.gpu_check "$@"
