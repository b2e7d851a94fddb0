#!/usr/bin/env bash
# The GPU check on a fresh CUDA machine (never CI): a new virtual environment, torch and benchlab
# installed with their dependencies, then the whole bench suite at paper scale, smoke budget, on
# CUDA (`benchlab gpu-check`: every case kind's code path on the published shapes, the cases
# whose weights are absent skipped with the reason). One interpreter throughout ($VENV/bin/python);
# any failing step stops the script with a non-zero status, and so does any failed case.
#
#   bash scripts/gpu_check.sh                          # from the repository root
#   OUT=out/gpu MODELS=/data/models bash scripts/gpu_check.sh -k "long_exposure"
#
# Settings (environment): OUT (default .benchlab/gpu): gpu.json, store.jsonl, reports/,
# pytest.log, summary.md, install.log; VENV (default .venv-gpu); PYTHON (the interpreter that
# creates the venv, default python3); MODELS: a models folder, DIR/<org>--<name>/ per hub id
# (real weights, or `benchlab zoo paper-shapes DIR --layers 1`); HF_HUB_OFFLINE (default 1: only
# weights already here; 0 lets from_pretrained download). Arguments go to `benchlab gpu-check`.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-.benchlab/gpu}
VENV=${VENV:-.venv-gpu}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-1}
export BENCHLAB_CACHE=${BENCHLAB_CACHE:-$PWD/.benchlab/cache}

echo "== GPUs"
nvidia-smi -L
echo "== venv $VENV and install (log: $OUT/install.log)"
[ -x "$VENV/bin/python" ] || "${PYTHON:-python3}" -m venv "$VENV"
PY=$VENV/bin/python
{
    "$PY" -m pip install --upgrade pip
    "$PY" -m pip install torch==2.13.0
    "$PY" -m pip install -e '.[test]'
} 2>&1 | tee "$OUT/install.log"
"$PY" -c "import torch; assert torch.cuda.is_available(), 'torch sees no CUDA device'; \
print('torch', torch.__version__, 'CUDA', torch.version.cuda, torch.cuda.get_device_name(0))"

echo "== benchlab gpu-check (summary: $OUT/summary.md)"
args=(--out "$OUT" --device cuda)
if [ -n "${MODELS:-}" ]; then args+=(--models "$MODELS"); fi
"$PY" -m benchlab gpu-check "${args[@]}" "$@"
