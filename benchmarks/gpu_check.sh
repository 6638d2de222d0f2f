#!/usr/bin/env bash
# The GPU path in one command, about 6.5 minutes on one H200 (benchmarks/RESULTS.md):
#   1. the CUDA lesson tests on the real GPU (CuPy backend);
#   2. lessons 06 and 07's kernel benchmark at GPT-2 small's sizes (benchmarks/cuda_kernels.py; its --small
#      sizes last tens of microseconds a launch, where launch latency rather than the kernel is measured);
#   3. 200 steps of `llmc train --preset gpt2-124m` on random-token shards, printing tokens/s and MFU;
#   4. the same 200 steps with `--recipe modern` (RoPE, RMSNorm, QK-norm, ReLU², soft-capping, untied
#      head, Muon), bf16 autocast and torch.compile, printing tokens/s and MFU.
# Without an NVIDIA GPU (or without CuPy / a CUDA build of PyTorch) it says so and exits 0.
# A part that fails does not stop the others (device time is scarce): the failures are listed at the
# end and the exit status is 1.
#
#   bash benchmarks/gpu_check.sh            (from the repository root; PYTHON=... picks the interpreter,
#                                            GPU_CHECK_LOGS=DIR keeps each training run's log.jsonl there)
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

failed=()
part() {  # part TITLE COMMAND...: run one part; a failure is remembered and reported at the end
    local title=$1
    shift
    echo "== $title"
    "$@" || { echo "gpu_check: FAILED (exit $?): $title"; failed+=("$title"); }
}

part "1/4 CUDA lesson tests on the GPU" timeout 240 "$PYTHON" -m pytest -q -x tests/test_cuda_lesson_kernels.py \
    tests/test_cuda_lesson_step.py tests/test_cuda_features.py tests/test_cuda_diagnostics.py \
    tests/test_cuda_lesson_benchmark.py

part "2/4 lesson kernel benchmark" timeout 120 "$PYTHON" benchmarks/cuda_kernels.py

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
steps() {  # steps RUN_NAME [more llmc train flags]: 200 steps of gpt2-124m's shape, bf16 and compile on
    local run="$work/$1"
    shift
    timeout 240 "$PYTHON" -m llmc_core.train train --preset gpt2-124m --out "$run" --no-progress \
        --train-data "$work/rand_train.bin" --val-data "$work/rand_val.bin" --batch-size 16 \
        --total-batch-tokens 131072 --max-steps 200 --warmup-steps 20 --val-every 0 --sample-every 0 \
        --checkpoint-every 0 --hellaswag-every 0 --dtype bfloat16 --compile on "$@" || return
    if [ -n "${GPU_CHECK_LOGS:-}" ]; then
        mkdir -p "$GPU_CHECK_LOGS" && cp "$run/log.jsonl" "$GPU_CHECK_LOGS/$(basename "$run").log.jsonl"
    fi
}
report() {  # report RUN_NAME: median tokens/s and MFU over steps 21-200
    "$PYTHON" - "$work/$1" <<'PY'
import json, statistics, sys
import torch
from llmc_core.modern import Recipe
from llmc_core.train.config import TrainConfig
from llmc_core.train.optim import peak_flops
from llmc_core.train.rundir import read_log
run = sys.argv[1]
config = TrainConfig.from_dict(json.load(open(f"{run}/config.json")))
steps = [r for r in read_log(run) if "tokens_per_s" in r][20:]  # after compile and warm-up
tps = statistics.median(r["tokens_per_s"] for r in steps)
L, C, T, Vp = config.n_layer, config.n_embd, config.seq_len, 50304
# llm.c's count, 6 FLOPs per matmul weight and token plus attention's 6 L C T, with the matmul weights
# written out (12 L C^2 in the blocks, Vp C in the head): an untied head's wte is a lookup, not a matmul.
flops = 6 * (12 * L * C * C + Vp * C) + 6 * L * C * T
peak = config.peak_tflops * 1e12 or peak_flops(torch.device("cuda"), torch.bfloat16)
mfu = f"{100 * tps * flops / peak:.1f}%" if peak else "n/a (GPU peak unknown: pass --peak-tflops)"
changes = Recipe.from_config(config).changes() + (["muon"] if config.optimizer == "muon" else [])
print(f"{'modern (' + ', '.join(changes) + ')' if changes else 'gpt2'}: median {tps:,.0f} tokens/s over steps "
      f"21-200; MFU {mfu} ({flops / 1e6:.0f} MFLOPs per token, bf16 peak {peak / 1e12 if peak else 0:.0f} TFLOPS)")
PY
}
part "3/4 gpt2-124m, 200 steps on random-token shards" eval 'steps gpt2 && report gpt2'
part "4/4 the modern recipe at gpt2-124m's size, 200 steps, bf16 and torch.compile" \
    eval 'steps modern --recipe modern && report modern'

if [ ${#failed[@]} -gt 0 ]; then
    printf 'gpu_check: %d part(s) failed:\n' ${#failed[@]}
    printf '  %s\n' "${failed[@]}"
    exit 1
fi
echo "gpu_check: all 4 parts passed"
