#!/usr/bin/env bash
# The GPU measurements of the README's performance section in one run, for a borrowed GPU machine:
# the batched augmentation (ms per batch of 128, operators, host syncs) and the seresnet50 training
# step (224 px, batch 128, bf16-mixed, channels_last) alone and fed by the fast path from JPEGs.
#
#   bash benchmarks/gpu_check.sh            # PYTHON, DATA and WORKERS override the defaults
#
# Every line printed is JSON naming the GPU; the synthetic data is generated under DATA first.
set -euo pipefail
PYTHON=${PYTHON:-python}
if [[ $PYTHON == */* ]]; then PYTHON="$(cd "$(dirname "$PYTHON")" && pwd)/$(basename "$PYTHON")"; fi
cd "$(dirname "$0")"
DATA=${DATA:-/tmp/fer_synth_gpu_check}
WORKERS=${WORKERS:-12}
"$PYTHON" -c "import torch; assert torch.cuda.is_available(), 'no GPU visible to torch'"
"$PYTHON" input_pipeline.py --only device --data "$DATA"
"$PYTHON" gpu_train_step.py --workers "$WORKERS"
