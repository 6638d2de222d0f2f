#!/usr/bin/env bash
# The GPU path in one command, under 8 minutes on one H100/H200:
#   1. the CUDA lesson tests on the real GPU (CuPy backend);
#   2. lesson 06's kernel benchmark (benchmarks/cuda_kernels.py --small);
#   3. 200 steps of `llmc train --preset gpt2-124m` on random-token shards, printing tokens/s and MFU.
# Without an NVIDIA GPU (or without CuPy / a CUDA build of PyTorch) it says so and exits 0.
#
#   bash benchmarks/gpu_check.sh            (from the repository root; PYTHON=... picks the interpreter)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

reason=$("$PYTHON" - <<'PY'
import torch
from llmc_core.cuda import backend_name, backend_reason
if not torch.cuda.is_available():
    print("PyTorch sees no CUDA GPU")
elif backend_name() != "cupy":
    print(f"the CUDA lessons run on the CPU emulator here ({backend_reason()})")
PY
)
if [ -n "$reason" ]; then
    echo "gpu_check: no GPU: $reason; nothing was run or measured"
    exit 0
fi
"$PYTHON" -c "import torch; print('gpu_check:', torch.cuda.get_device_name(0), 'torch', torch.__version__)"

echo "== 1/3 CUDA lesson tests on the GPU"
timeout 240 "$PYTHON" -m pytest -q -x tests/test_cuda_lesson_kernels.py tests/test_cuda_lesson_step.py \
    tests/test_cuda_features.py tests/test_cuda_diagnostics.py tests/test_cuda_lesson_benchmark.py

echo "== 2/3 lesson kernel benchmark"
timeout 120 "$PYTHON" benchmarks/cuda_kernels.py --small

echo "== 3/3 gpt2-124m, 200 steps on random-token shards"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$PYTHON" - "$work" <<'PY'
import sys
import numpy as np
from llmc_core.train.shards import write_shard
rng = np.random.default_rng(0)
write_shard(f"{sys.argv[1]}/rand_train.bin", rng.integers(0, 50257, size=40_000_000))
write_shard(f"{sys.argv[1]}/rand_val.bin", rng.integers(0, 50257, size=2_000_000))
PY
# 16 x 1024 tokens per micro-batch, 8 micro-steps: 131,072 tokens per step keeps 200 steps short
timeout 300 "$PYTHON" -m llmc_core.train train --preset gpt2-124m --out "$work/run" --no-progress \
    --train-data "$work/rand_train.bin" --val-data "$work/rand_val.bin" --batch-size 16 \
    --total-batch-tokens 131072 --max-steps 200 --warmup-steps 20 --val-every 0 --sample-every 0 \
    --checkpoint-every 0 --hellaswag-every 0
"$PYTHON" - "$work/run" <<'PY'
import statistics, sys
from llmc_core.train.rundir import read_log
steps = [r for r in read_log(sys.argv[1]) if "tokens_per_s" in r][20:]  # after compile and warm-up
tps = statistics.median(r["tokens_per_s"] for r in steps)
mfu = [r["mfu"] for r in steps if r["mfu"] is not None]
print(f"gpt2-124m: median {tps:,.0f} tokens/s over steps 21-200; MFU "
      + (f"{100 * statistics.median(mfu):.1f}%" if mfu else "n/a (GPU peak unknown: pass --peak-tflops)"))
PY
