#!/usr/bin/env bash
# Every GPU figure of docs/performance.md in one run, for a borrowed GPU machine
# (about 5-8 minutes on one H200, most of it torch.compile):
#   1. batched augmentation, ms per batch of 128 at 224 px (target <= 2 ms)  input_pipeline.py
#   2. seresnet50 training step, 224 px, batch 128, bf16-mixed, channels_last:
#      bare model (in-memory batch; fed by the fast path) and Lightning with the fast path,
#      each eager and compiled; steady state and including an epoch boundary; targets:
#      Lightning >= 90% of the bare model fed the same way, compiled / eager > 1   gpu_train_step.py
#   3. evaluation images/s over every default resolution, eager and compiled     eval_throughput.py
#   4. Lightning with DDP on 2 processes, if the machine has 2 GPUs (smoke: 2 CPU processes)
#
#   bash benchmarks/gpu_check.sh            # PYTHON, DATA, WORKERS and OUT override the defaults
#   bash benchmarks/gpu_check.sh --smoke    # every step with tiny sizes on the CPU (no GPU needed)
#
# Every line printed is JSON naming the GPU, torch and CUDA; the lines are also kept in $OUT
# (a .jsonl file, or a folder to write one into).
set -euo pipefail
PYTHON=${PYTHON:-python}
if [[ $PYTHON == */* ]]; then PYTHON="$(cd "$(dirname "$PYTHON")" && pwd)/$(basename "$PYTHON")"; fi
cd "$(dirname "$0")"
SMOKE=()
if [[ ${1:-} == --smoke ]]; then SMOKE=(--smoke); fi
DATA=${DATA:-/tmp/fer_synth_gpu_check}
WORKERS=${WORKERS:-12}
# OUT: a file, or a folder (e.g. the device tool's $OUT) to write gpu_check_<time>.jsonl into
OUT=${OUT:-/tmp}
if [[ -d $OUT ]]; then OUT="$OUT/gpu_check_$(date +%Y%m%d_%H%M%S).jsonl"; fi
export PYTHONWARNINGS=${PYTHONWARNINGS:-ignore}
run() { "$PYTHON" "$@" 2> >(grep -v -i warn >&2) | tee -a "$OUT"; }

if [[ ${#SMOKE[@]} -eq 0 ]]; then
    "$PYTHON" -c "import torch; assert torch.cuda.is_available(), 'no GPU visible to torch'"
fi
"$PYTHON" -c "import json, torch; print(json.dumps({'benchmark': 'environment',
    'gpu': torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    'gpus': torch.cuda.device_count(), 'torch': torch.__version__, 'cuda': torch.version.cuda}))" \
    | tee "$OUT"
if [[ ${#SMOKE[@]} -eq 0 ]]; then
    run input_pipeline.py --only device --data "$DATA"
else  # the device side of the input benchmark on the CPU (its own small sizes)
    run input_pipeline.py --only device --data "${DATA}_smoke_input" --batches 1
fi
run gpu_train_step.py --workers "$WORKERS" --data "$DATA" "${SMOKE[@]}"
run eval_throughput.py --workers "$WORKERS" --data "$DATA" "${SMOKE[@]}"
GPUS=$("$PYTHON" -c "import torch; print(torch.cuda.device_count())")
if [[ ${#SMOKE[@]} -gt 0 ]]; then  # DDP's code path on 2 CPU processes (gloo)
    run gpu_train_step.py --feeds lightning --compile eager --devices 2 --data "$DATA" --smoke
elif [[ $GPUS -ge 2 ]]; then
    run gpu_train_step.py --feeds lightning --devices 2 --workers "$((WORKERS / 2))" \
        --data "$DATA" "${SMOKE[@]}"
else
    echo "{\"benchmark\": \"train_step\", \"feed\": \"lightning_ddp2\", \"skipped\": \"$GPUS GPU(s)\"}" \
        | tee -a "$OUT"
fi
echo "{\"benchmark\": \"gpu_check\", \"done\": true, \"lines\": \"$OUT\"}"
