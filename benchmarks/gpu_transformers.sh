#!/usr/bin/env bash
# Issue 28's GPU run, on the lent device machine (one H200 or H100, no network): transformers serve on the GPU,
# serving a random-weight Llama-8B-shaped model built there from a config, measured through the plugin with
# --gpus-per-server 1 (GPU telemetry under load, energy per output token), then again with --client-procs 4.
# Carried: .whl/ (the serving and test wheels the image lacks: benchmarks/README.md lists them) and .gpu/tokenizer
# (the embedded SmolLM2's tokenizer files). Everything it brings back lies under $OUT.
set -uo pipefail
OUT=${OUT:-/tmp/gpu-out}
mkdir -p "$OUT" /tmp/site
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1
python3 -m pip install -q --no-index --no-deps --no-build-isolation --no-compile --upgrade --target /tmp/site . >/dev/null || exit 1
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader; nproc
  python3 -c "import sys, torch, transformers; print(sys.version.split()[0], 'torch', torch.__version__, 'transformers', transformers.__version__)"
} | tee "$OUT/machine.txt"
# the server's imports before anything slow: a wheel missing from .whl/ shows here, in seconds
python3 -c "import transformers.cli.serve, transformers.cli.serving.chat_completion, transformers.cli.serving.completion, transformers.cli.serving.model_manager, transformers.cli.serving.server, uvicorn, openai" || exit 1
python3 benchmarks/random_model.py --tokenizer .gpu/tokenizer --out /tmp/models/llama-8b-random | tee -a "$OUT/machine.txt" || exit 1
# nvidia-smi as the telemetry parser reads it, every 2 s through both runs: the loaded golden comes from here
( while true; do nvidia-smi --query-gpu=index,power.draw,utilization.gpu,memory.used,clocks.sm,temperature.gpu \
    --format=csv,noheader,nounits >> "$OUT/nvidia-smi-series.csv"; sleep 2; done ) &
SMI=$!
run() {  # run-id, then pytest arguments
  local id=$1; shift
  python3 -m pytest suites/transformers-gpu --gpus-per-server 1 --models-dir /tmp/models --results-dir /tmp/res \
    --run-id "$id" -p no:cacheprovider --server-start-timeout 600 "$@" > "/tmp/res-$id.log" 2>&1
  echo "$id: exit $?"; grep -E "inferencemax: (server ready|tfgpu-)|passed|failed" "/tmp/res-$id.log" | tail -12
}
run gpu
run gpu-procs4 --client-procs 4 -k c32
kill $SMI
cp /tmp/res-*.log /tmp/res/ 2>/dev/null
tar czf "$OUT/runs.tgz" -C /tmp/res .
ls -la "$OUT"
