#!/usr/bin/env bash
# The GPU check of one session with a CUDA machine (never CI): Long Exposure's operators and
# FlexAttention on CUDA against the masked dense reference, then the small-scale LoRA step of the
# 125m-shaped model (trained here, on the GPU) and the small Fig 8 / Fig 13 cases on CUDA.
# Every step is time-boxed and the next runs regardless; results go under $OUT (default
# .benchlab/gpu): log.txt, store.jsonl (bench records: `benchlab publish` renders them), and
# model_step_*.{json,md}. Run from the repository root:  bash scripts/gpu_small.sh
set -uo pipefail
out=${OUT:-.benchlab/gpu}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 BENCHLAB_CACHE=${BENCHLAB_CACHE:-/tmp/benchlab-cache}
py=${PYTHON:-python3}
exec > >(tee "$out/log.txt") 2>&1
$py -c "import benchlab" 2>/dev/null \
    || $py -m pip install -q --no-deps --no-build-isolation --no-index -e . || exit 1
nvidia-smi -L
$py -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())"
step() { local t=$1; shift; echo "== $* (at most $t s)"; SECONDS=0; timeout "$t" "$@"
         echo "== rc=$? after $SECONDS s"; }

step 100 $py -m pytest -q -p no:cacheprovider tests/long_exposure/test_le_documents.py
ms=(benchlab long-exposure model-step --scale small --device cuda --rounds 10)
step 200 "${ms[@]}" --out "$out/model_step_small_trained.json"
step 90 "${ms[@]}" --masks synthetic --density 0.25 --out "$out/model_step_small_synthetic.json"
step 150 $py -m pytest -q -p no:cacheprovider bench/test_long_exposure.py -k "gpt2 or memory" \
    --bench-scale small --bench-device cuda --benchmark-disable --no-bench-report \
    --bench-store "$out/store.jsonl"
